# JavaScript actions (runs.using: node20) from the farm's action sources,
# written with plain Node (no dependencies): inputs as INPUT_* (given and
# defaults), outputs through GITHUB_OUTPUT (the heredoc form @actions/core
# writes), state between pre, main and post through GITHUB_STATE and
# STATE_*, GITHUB_ACTION_PATH/REPOSITORY/REF; pre before the job's first
# step, post after its last, in reverse order; a post after a failed main
# step, a post-if: success() skipped then; one used inside a remote
# composite action (its post at the job's end, its pre not run); a local one found in the workspace when
# its step runs; failures a user can act on: the action's process failing,
# crashing or hanging past timeout-minutes, a script missing, a Node.js too old, a
# --node that is none, a worker with no Node.js, a malformed action.yml;
# an action built on @actions/core from npm; the
# legacy ::set-output and ::save-state commands; the tool cache filled by
# kiln toolcache add, found by @actions/tool-cache; the policy that
# requires actions pinned by a full commit SHA.
source "$(dirname "$0")/lib.sh"
export COORD_LOG_LEVEL=info
DIR=$T/actions
mkdir -p "$DIR/acme"
# The actions ask for the newest Node.js the machine's satisfies (Debian
# 12's own nodejs is 18), and one newer than it for the refusal.
NODE_MAJOR=$(node --version | sed 's/^v\([0-9]*\).*/\1/')
[ -n "$NODE_MAJOR" ] || fail "no node on this machine: make deps installs Debian's nodejs"
USING=node16
[ "$NODE_MAJOR" -ge 20 ] && USING=node20
NEWER=node24
[ "$NODE_MAJOR" -lt 20 ] && NEWER=node20

# action NAME ACTION_YML [FILE TEXT]...: a repository in the directory
# source, tagged v1.
action() {
    local r=$DIR/acme/$1
    tgit init -q "$r"
    printf '%s\n' "$2" >"$r/action.yml"
    shift 2
    while [ $# -ge 2 ]; do
        printf '%s\n' "$2" >"$r/$1"
        shift 2
    done
    tgit -C "$r" add -A && tgit -C "$r" commit -qm first && tgit -C "$r" tag v1
}
action hello "name: hello
inputs:
  who: {default: world}
  count: {required: true}
outputs:
  greeting: {description: the greeting}
runs:
  using: $USING
  pre: pre.js
  main: main.js
  post: post.js" \
    pre.js 'const fs = require("fs");
fs.appendFileSync(process.env.GITHUB_STATE, "from_pre=pre saw " + process.env.INPUT_WHO + "\n");
console.log("pre: who=" + process.env.INPUT_WHO);' \
    main.js 'const fs = require("fs"), path = require("path");
const e = process.env;
console.log(`main: who=${e.INPUT_WHO} count=${e.INPUT_COUNT} state=${e.STATE_from_pre} ` +
    `repo=${e.GITHUB_ACTION_REPOSITORY} ref=${e.GITHUB_ACTION_REF} ` +
    `here=${fs.existsSync(path.join(e.GITHUB_ACTION_PATH, "main.js"))} ` +
    `cwd=${process.cwd() === e.GITHUB_WORKSPACE} token=${e.KILN_STORE_TOKEN === undefined ? "none" : "LEAKED"}`);
fs.appendFileSync(e.GITHUB_OUTPUT, `greeting<<ghadelimiter_1\nhello ${e.INPUT_WHO}\nghadelimiter_1\n`);
fs.appendFileSync(e.GITHUB_STATE, "from_main=main ran\n");
if (e.INPUT_COUNT === "fail") {
    console.log("::error::main failed as asked");
    process.exitCode = 1;
}' \
    post.js 'console.log(`post: ${process.env.STATE_from_pre} / ${process.env.STATE_from_main}`);'
action strict 'name: strict
runs:
  using: node16
  main: main.js
  post: post.js
  post-if: success()' \
    main.js 'console.log("strict main");' \
    post.js 'console.log("strict post");'
action wrap 'name: wrap
runs:
  using: composite
  steps:
    - run: echo "wrap begins"
      shell: bash
    - id: inner
      uses: acme/hello@v1
      with:
        count: "7"
    - run: echo "wrap got ${{ steps.inner.outputs.greeting }}"
      shell: bash'
action future "name: future
runs:
  using: $NEWER
  main: main.js" main.js 'console.log("from the future");'
action hang "name: hang
runs:
  using: $USING
  main: main.js" main.js 'console.log("hanging"); setInterval(() => {}, 1000);'
action legacy "name: legacy
runs:
  using: $USING
  main: main.js
  post: post.js" main.js 'console.log("::set-output name=old::legacy value");
console.log("::save-state name=s::saved the old way");' \
    post.js 'console.log("legacy post: " + process.env.STATE_s);'
action crash "name: crash
runs:
  using: $USING
  main: main.js" main.js 'throw new Error("the action crashed on purpose");'
action broken "name: broken
runs:
  using: $USING
  main: [one.js, two.js]"
action nofile "name: nofile
runs:
  using: $USING
  main: dist/missing.js"

# acme/core: built on @actions/core and @actions/tool-cache from npm
# (tests/fixtures/node, installed by make test), vendored as real actions
# bundle them.
MODS=$KILN_SRC/tests/fixtures/node/node_modules
[ -f "$MODS/@actions/core/package.json" ] || fail "no @actions/core in $MODS: make fixtures installs it"
C=$DIR/acme/core
tgit init -q "$C"
cp -r "$MODS" "$C/node_modules"
cat >"$C/action.yml" <<YML
name: core
inputs:
  secret: {required: true}
  fail: {default: "false"}
outputs:
  answer: {description: the answer}
runs:
  using: $USING
  main: main.js
  post: post.js
YML
cat >"$C/main.js" <<'JS'
const core = require("@actions/core");
const tc = require("@actions/tool-cache");
const secret = core.getInput("secret", { required: true });
core.setSecret(secret);
console.log("core: the secret is " + secret);
core.setOutput("answer", "forty-two");
core.saveState("kept", "state via core");
core.exportVariable("FROM_CORE", "exported");
core.addPath("/opt/from-core/bin");
const found = tc.find("faketool", "1.2.3");
console.log("toolcache: " + (found ? found.replace(process.env.RUNNER_TOOL_CACHE, "TOOLCACHE") : "missing"));
if (core.getInput("fail") === "true") core.setFailed("core says no");
JS
echo 'console.log("core post: " + require("@actions/core").getState("kept"));' >"$C/post.js"
tgit -C "$C" add -A && tgit -C "$C" commit -qm first && tgit -C "$C" tag v1

# acme/served: a JavaScript action on a git server on 127.0.0.1 (the
# farm's second source), not in the directory.
SRV=$T/srv
mkdir -p "$SRV/acme"
tgit clone -q --bare "$DIR/acme/strict" "$SRV/acme/served.git"
start_git_servers "$SRV"

start_redis
make_keys
admit_worker w1
start_coordinator --actions-source "$DIR" --actions-source "git://127.0.0.1:$GIT_PORT"
start_worker w1
wait_workers 1

cat >"$T/ok.yml" <<'YML'
on: push
jobs:
  a:
    runs-on: linux
    steps:
      - run: echo first
      - id: h
        uses: acme/hello@v1
        with:
          who: kiln
          count: 3
      - run: echo "got ${{ steps.h.outputs.greeting }}"
      - uses: acme/wrap@v1
      - uses: acme/served@v1
      - run: echo last
YML
RC=0
"$KILN" submit --wait "$T/ok.yml" >"$T/ok.out" 2>&1 || RC=$?
[ $RC = 0 ] || fail "the JavaScript action run exited $RC: $(tail -n 15 "$T/ok.out")"
lines() { grep -E "^a \| (pre|main|post|first|got|last|wrap)" "$1" | sed 's/^a | //'; }
lines "$T/ok.out" >"$T/ok.lines"
cat >"$T/ok.want" <<'TXT'
pre: who=kiln
first
main: who=kiln count=3 state=pre saw kiln repo=acme/hello ref=v1 here=true cwd=true token=none
got hello kiln
wrap begins
main: who=world count=7 state=undefined repo=acme/hello ref=v1 here=true cwd=true token=none
wrap got hello world
last
post: undefined / main ran
post: pre saw kiln / main ran
TXT
diff "$T/ok.want" "$T/ok.lines" >"$T/ok.diff" || fail "the phases ran otherwise: $(cat "$T/ok.diff")"
grep -qF "\`pre\` of 'acme/hello@v1' is not run: it is used inside a composite action" "$T/ok.out" ||
    fail "no warning that the nested action's pre is not run: $(grep -v '^a |' "$T/ok.out" | head -n 20)"
grep -q "^a | strict main" "$T/ok.out" && grep -q "^a | strict post" "$T/ok.out" ||
    fail "the action from the git server: $(grep -E 'strict|served' "$T/ok.out")"
"$KILN" status "$("$KILN" history --limit 1 --json | sed -n 's/.*"id": \([0-9]*\).*/\1/p' | head -n 1)" >"$T/ok.status"
HELLO=$(tgit -C "$DIR/acme/hello" rev-parse HEAD)
grep -q "action: acme/hello@v1 -> ${HELLO:0:12}" "$T/ok.status" || fail "kiln status does not show the commit acme/hello@v1 resolved to: $(cat "$T/ok.status")"
pass "a JavaScript action's pre, main and post run in GitHub's order with its inputs, outputs and state; nested in a composite action its main and post run; one from a git server on 127.0.0.1 runs; no store token reaches it"

cat >"$T/fail.yml" <<'YML'
on: push
jobs:
  a:
    runs-on: linux
    steps:
      - uses: acme/strict@v1
      - uses: acme/hello@v1
        with: {count: fail}
      - run: echo never
YML
RC=0
"$KILN" submit --wait "$T/fail.yml" >"$T/fail.out" 2>&1 || RC=$?
[ $RC = 1 ] || fail "the failing run exited $RC: $(tail -n 15 "$T/fail.out")"
grep -q "main failed as asked" "$T/fail.out" || fail "the action's error annotation: $(grep -i error "$T/fail.out")"
grep -q "^a | strict main" "$T/fail.out" && grep -q "^a | post: pre saw world / main ran" "$T/fail.out" ||
    fail "the post step after a failure did not run: $(grep -E '^a \|' "$T/fail.out")"
! grep -q "strict post" "$T/fail.out" || fail "post-if: success() ran after a failure"
! grep -q "^a | never" "$T/fail.out" || fail "a step after the failure ran"
pass "a failed main step's post runs (post-if defaults to always()), a post-if: success() is skipped"

# Failures a user can act on, each failing its step.
failing() { # NAME USES WANT [STEP-KEYS]
    printf 'on: push\njobs:\n  a:\n    runs-on: linux\n    steps:\n      - uses: %s\n%s' "$2" "${4:-}" >"$T/$1.yml"
    RC=0
    "$KILN" submit --wait "$T/$1.yml" >"$T/$1.out" 2>&1 || RC=$?
    [ $RC = 1 ] && grep -qF "$3" "$T/$1.out" || fail "$2: exit $RC, want 1 and '$3': $(tail -n 8 "$T/$1.out")"
}
if [ "$NODE_MAJOR" -lt 24 ]; then
    failing future acme/future@v1 "the JavaScript action 'acme/future@v1' (runs.using: $NEWER) needs Node.js ${NEWER#node} or newer; this worker's"
else
    echo "# Node.js $NODE_MAJOR here is newer than any runs.using: the too-old refusal is not tested" >&2
fi
failing crash acme/crash@v1 "Error: the action crashed on purpose"
grep -q "exited with code 1" "$T/crash.out" || fail "a crashed node process: $(tail -n 5 "$T/crash.out")"
failing nofile acme/nofile@v1 "the JavaScript action 'acme/nofile@v1' has no file dist/missing.js (its runs.main)"
failing hang acme/hang@v1 "timed out after" '        timeout-minutes: 0.03
'
grep -q "^a | hanging" "$T/hang.out" || fail "the hanging action never started: $(tail -n 5 "$T/hang.out")"
pass "a Node.js too old, a crashing, a missing and a hanging script fail their steps, saying why"

# A tool an operator provides: kiln toolcache add puts it where
# @actions/tool-cache's find looks (TOOL/VERSION/ARCH and its .complete).
mkdir -p "$T/faketool/bin"
printf '#!/bin/sh\necho faketool 1.2.3\n' >"$T/faketool/bin/faketool"
chmod +x "$T/faketool/bin/faketool"
ln -s faketool "$T/faketool/bin/ft"
ARCH=x64
[ "$(uname -m)" = aarch64 ] && ARCH=arm64
"$KILN" toolcache add faketool 1.2.3 "$T/faketool" --work-dir "$T/work/w1" >"$T/tc.out" 2>&1 ||
    fail "kiln toolcache add: $(cat "$T/tc.out")"
[ -x "$T/work/w1/tool-cache/faketool/1.2.3/$ARCH/bin/faketool" ] && [ -L "$T/work/w1/tool-cache/faketool/1.2.3/$ARCH/bin/ft" ] &&
    [ -f "$T/work/w1/tool-cache/faketool/1.2.3/$ARCH.complete" ] || fail "the tool cache's layout: $(find "$T/work/w1/tool-cache")"
"$KILN" toolcache list --work-dir "$T/work/w1" >"$T/tcl.out" 2>&1
grep -qE "^faketool +1\.2\.3 +$ARCH +complete" "$T/tcl.out" || fail "kiln toolcache list: $(cat "$T/tcl.out")"
RC=0
"$KILN" toolcache add faketool 1.2.3 "$T/faketool" --work-dir "$T/work/w1" >"$T/tc2.out" 2>&1 || RC=$?
[ $RC = 2 ] && grep -q "is there already" "$T/tc2.out" || fail "a second add: exit $RC: $(cat "$T/tc2.out")"
ln -s /etc "$T/faketool/escape"
RC=0
"$KILN" toolcache add faketool 9.9.9 "$T/faketool" --work-dir "$T/work/w1" >"$T/tc3.out" 2>&1 || RC=$?
[ $RC = 3 ] && grep -q "a symbolic link that leads out" "$T/tc3.out" && [ ! -e "$T/work/w1/tool-cache/faketool/9.9.9/$ARCH" ] ||
    fail "a tool with a link out of it: exit $RC: $(cat "$T/tc3.out")"
pass "kiln toolcache add lays a tool out as @actions/tool-cache expects, list shows it; a second add and a link out of the tool are refused"

# @actions/core end to end: an input, a masked secret, an output, state,
# an exported variable and a path, setFailed; @actions/tool-cache's find
# finds the tool added above.
cat >"$T/core.yml" <<'YML'
on: push
jobs:
  a:
    runs-on: linux
    steps:
      - id: c
        uses: acme/core@v1
        with:
          secret: hunter2-secret
      - run: echo "answer ${{ steps.c.outputs.answer }} env $FROM_CORE path ${PATH%%:*}"
      - uses: acme/core@v1
        with:
          secret: s2
          fail: true
YML
RC=0
"$KILN" submit --wait "$T/core.yml" >"$T/core.out" 2>&1 || RC=$?
[ $RC = 1 ] || fail "the @actions/core run exited $RC, want 1: $(tail -n 15 "$T/core.out")"
grep -q "^a | core: the secret is \*\*\*" "$T/core.out" && ! grep -q hunter2 "$T/core.out" ||
    fail "core.setSecret did not mask: $(grep -E 'secret|hunter' "$T/core.out")"
grep -q "^a | answer forty-two env exported path /opt/from-core/bin" "$T/core.out" ||
    fail "core's output, variable or path: $(grep -E '^a \| answer' "$T/core.out")"
[ "$(grep -c "^a | core post: state via core" "$T/core.out")" = 2 ] ||
    fail "core's state in the posts: $(grep -E 'core post' "$T/core.out")"
grep -q "core says no" "$T/core.out" || fail "core.setFailed: $(tail -n 10 "$T/core.out")"
grep -q "^a | toolcache: TOOLCACHE/faketool/1.2.3/$ARCH" "$T/core.out" || fail "tool-cache's find: $(grep toolcache "$T/core.out")"
pass "an action built on @actions/core: inputs, setSecret, setOutput, saveState/getState, exportVariable, addPath and setFailed work end to end; @actions/tool-cache finds the operator's tool"

# The workflow commands older toolkits print: carried out with GitHub's
# deprecation warning.
cat >"$T/legacy.yml" <<'YML'
on: push
jobs:
  a:
    runs-on: linux
    steps:
      - id: l
        uses: acme/legacy@v1
      - id: r
        run: echo "::set-output name=mine::from a run step"
      - run: echo "legacy ${{ steps.l.outputs.old }} / ${{ steps.r.outputs.mine }}"
YML
RC=0
"$KILN" submit --wait "$T/legacy.yml" >"$T/legacy.out" 2>&1 || RC=$?
[ $RC = 0 ] || fail "the legacy commands run exited $RC: $(tail -n 10 "$T/legacy.out")"
grep -q "^a | legacy legacy value / from a run step" "$T/legacy.out" && grep -q "^a | legacy post: saved the old way" "$T/legacy.out" ||
    fail "::set-output or ::save-state: $(grep -E '^a \|' "$T/legacy.out")"
grep -q "The \`set-output\` command is deprecated and will be disabled soon" "$T/legacy.out" &&
    grep -q "The \`save-state\` command is deprecated" "$T/legacy.out" || fail "no deprecation warnings: $(grep -i deprecat "$T/legacy.out")"
pass "::set-output and ::save-state still work, with GitHub's deprecation warning"

# A malformed action.yml is refused when the run is submitted, naming the
# action's file and line.
printf 'on: push\njobs:\n  a:\n    runs-on: linux\n    steps:\n      - uses: acme/broken@v1\n' >"$T/broken.yml"
BROKEN=$(tgit -C "$DIR/acme/broken" rev-parse HEAD)
RC=0
"$KILN" submit "$T/broken.yml" >"$T/broken.out" 2>&1 || RC=$?
[ $RC = 2 ] && grep -qF "uses 'acme/broken@v1': acme/broken@${BROKEN:0:12}:action.yml:4:9: runs.main must be a non-empty string" "$T/broken.out" ||
    fail "a malformed action.yml: exit $RC: $(cat "$T/broken.out")"
pass "a malformed action.yml is refused at submit time naming its file and line"

# A worker with no Node.js (none on its PATH) runs other steps; a
# JavaScript action's step there fails, saying what to do.
admit_worker bare
kill -HUP "$COORD_PID"
mkdir -p "$T/nopath"
env PATH="$T/nopath" "$KILN_BIN/kiln-worker" --coordinator "$ENDPOINT" --server-key "$T/keys/server.pub" \
    --key "$T/keys/bare.key" --name bare --work-dir "$T/work/bare" --labels bare-only >>"$T/bare.log" 2>&1 &
BARE_PID=$!
PIDS+=($BARE_PID)
wait_workers 2
grep -q "no Node.js: JavaScript actions' steps fail here" "$T/bare.log" || fail "the worker did not say it has no Node.js: $(cat "$T/bare.log")"
printf 'on: push\njobs:\n  a:\n    runs-on: bare-only\n    steps:\n      - uses: acme/strict@v1\n' >"$T/bare.yml"
RC=0
"$KILN" submit --wait "$T/bare.yml" >"$T/bare.out" 2>&1 || RC=$?
[ $RC = 1 ] && grep -qF "the JavaScript action 'acme/strict@v1' (runs.using: node16) cannot run on this worker: there is no 'node' on this worker's PATH (install Debian's nodejs, or start kiln-worker with --node PATH)" "$T/bare.out" ||
    fail "a JavaScript action on a worker without Node.js: exit $RC: $(tail -n 8 "$T/bare.out")"
kill "$BARE_PID"
wait "$BARE_PID" 2>/dev/null || true
pass "a worker without Node.js says so at its start, and a JavaScript action's step there fails naming the action and the remedy"

# A local JavaScript action: its action.yml read when the run is
# submitted, its script found in the workspace when its step runs.
mkdir -p "$T/repo/.git" "$T/repo/ci/local"
printf 'name: local\ninputs:\n  x: {default: dflt}\nruns:\n  using: %s\n  main: index.js\n' "$USING" >"$T/repo/ci/local/action.yml"
cat >"$T/repo/ci.yml" <<'YML'
on: push
jobs:
  a:
    runs-on: linux
    steps:
      - run: |
          mkdir -p ci/local
          echo 'console.log("local: " + process.env.INPUT_X)' >ci/local/index.js
      - uses: ./ci/local
YML
RC=0
"$KILN" submit --wait "$T/repo/ci.yml" >"$T/local.out" 2>&1 || RC=$?
[ $RC = 0 ] && grep -q "^a | local: dflt" "$T/local.out" || fail "the local JavaScript action: exit $RC: $(tail -n 8 "$T/local.out")"
pass "a local JavaScript action runs from the workspace with its inputs' defaults"

# A --node that is none stops the worker at its start, saying so.
admit_worker w2
RC=0
timeout 20 "$KILN_BIN/kiln-worker" --coordinator "$ENDPOINT" --server-key "$T/keys/server.pub" \
    --key "$T/keys/w2.key" --name w2 --work-dir "$T/work/w2" --node "$T/no/node" >"$T/w2.out" 2>&1 || RC=$?
[ $RC = 2 ] && grep -q "node $T/no/node is not an executable program" "$T/w2.out" ||
    fail "a worker with a --node that is none: exit $RC: $(cat "$T/w2.out")"
pass "a worker whose --node is no program refuses to start, naming it"

# The pinning policy: with --actions-require-sha a remote uses: by tag is
# refused at submit time, saying which commit to pin; pinned, it runs.
kill "$COORD_PID"
wait "$COORD_PID" 2>/dev/null || true
start_coordinator --actions-source "$DIR" --actions-source "git://127.0.0.1:$GIT_PORT" --actions-require-sha
wait_workers 1
RC=0
"$KILN" submit "$T/ok.yml" >"$T/unpinned.out" 2>&1 || RC=$?
[ $RC = 2 ] && grep -qF "uses 'acme/hello@v1': the farm requires actions pinned by a full commit SHA (--actions-require-sha), and 'v1' is a tag or branch: acme/hello@$HELLO is what it names now" "$T/unpinned.out" ||
    fail "an unpinned action under the policy: exit $RC: $(cat "$T/unpinned.out")"
cat >"$T/pinned.yml" <<YML
on: push
jobs:
  a:
    runs-on: linux
    steps:
      - uses: acme/hello@$HELLO
        with:
          count: 1
YML
RC=0
"$KILN" submit --wait "$T/pinned.yml" >"$T/pinned.out" 2>&1 || RC=$?
[ $RC = 0 ] && grep -q "^a | main: who=world count=1 .* ref=$HELLO " "$T/pinned.out" ||
    fail "a pinned action under the policy: exit $RC: $(tail -n 8 "$T/pinned.out")"
pass "under --actions-require-sha an action by tag is refused naming the commit to pin; pinned by SHA it runs"

# What the farm has run: kiln actions list asks the coordinator for its
# sources and every commit its history's runs resolved.
"$KILN" actions list >"$T/farm-actions.out" 2>&1 || fail "kiln actions list: $(cat "$T/farm-actions.out")"
grep -q "^  $(realpath "$DIR")$" "$T/farm-actions.out" && grep -q "^  git://127.0.0.1:$GIT_PORT$" "$T/farm-actions.out" &&
    grep -q "^policy: actions pinned by a full commit SHA only" "$T/farm-actions.out" ||
    fail "kiln actions list's sources: $(cat "$T/farm-actions.out")"
grep -qE "^acme/hello@v1 +${HELLO:0:12} +[0-9]+ +[0-9]+  $(realpath "$DIR")/acme/hello$" "$T/farm-actions.out" &&
    grep -qE "^acme/hello@$HELLO +${HELLO:0:12} +1 " "$T/farm-actions.out" &&
    grep -qE "^acme/served@v1 .* git://127.0.0.1:$GIT_PORT/acme/served$" "$T/farm-actions.out" ||
    fail "kiln actions list's actions: $(cat "$T/farm-actions.out")"
pass "kiln actions list shows the farm's sources, its policy and every commit its runs resolved, with where from"
