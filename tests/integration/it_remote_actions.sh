# Actions and reusable workflows of other repositories, from the farm's
# action sources: a directory of OWNER/REPO repositories tried first, then
# a git server on 127.0.0.1 (git daemon) as a base URL. A composite action
# by tag, by path and pinned by commit, one using another remote one, its
# files at GITHUB_ACTION_PATH on the worker; a remote reusable workflow
# with inputs and outputs; the commits they resolved to in the history and
# in kiln status, kept when the tag moves; the second use of a commit on a
# worker downloads nothing; a uses: step's if: and env: apply to the whole
# action; a JavaScript action of an unknown Node.js, a Docker action whose
# image is outside it and missing actions refused
# naming the action and every source tried; a run from a repository and
# kiln run --actions-source; kiln actions pull and list fill and show an
# offline mirror; per-owner overrides and full-URL uses:.
source "$(dirname "$0")/lib.sh"
export COORD_LOG_LEVEL=info
SRV=$T/srv
DIR=$T/actions
mkdir -p "$SRV/acme" "$DIR/acme"

# acme/greet, on the git server: a composite action at the root (a script
# beside it) and one under nested/ that uses acme/tools/upper from the
# directory source.
G=$T/greet
tgit init -q "$G"
cat >"$G/action.yml" <<'YML'
name: greet
inputs:
  who: {default: world}
outputs:
  greeting: {value: "${{ steps.g.outputs.greeting }}"}
runs:
  using: composite
  steps:
    - id: g
      shell: bash
      run: |
        "$GITHUB_ACTION_PATH/greet.sh" "${{ inputs.who }}"
        [ "${{ github.action_path }}" = "$GITHUB_ACTION_PATH" ] && same=true || same=false
        echo "path ${GITHUB_ACTION_PATH#$KILN_WORKER_DIR} $same"
YML
cat >"$G/greet.sh" <<'SH'
#!/bin/sh
echo "greet v1: hello $1"
echo "greeting=hello $1" >>"$GITHUB_OUTPUT"
SH
chmod +x "$G/greet.sh"
mkdir -p "$G/nested"
cat >"$G/nested/action.yml" <<'YML'
name: nested
inputs:
  text: {required: true}
runs:
  using: composite
  steps:
    - uses: acme/tools/upper@main
      with:
        text: "${{ inputs.text }}"
YML
tgit -C "$G" add -A && tgit -C "$G" commit -qm "greet: first"
tgit -C "$G" tag v1
GREET1=$(tgit -C "$G" rev-parse HEAD)
tgit clone -q --bare "$G" "$SRV/acme/greet.git"
tgit -C "$G" remote add origin "$SRV/acme/greet.git"

# acme/flows, on the git server: a reusable workflow.
F=$T/flows
tgit init -q "$F"
mkdir -p "$F/.github/workflows"
cat >"$F/.github/workflows/build.yml" <<'YML'
on:
  workflow_call:
    inputs:
      level: {type: string, required: true}
    outputs:
      built: {value: "${{ jobs.b.outputs.built }}"}
jobs:
  b:
    runs-on: linux
    outputs:
      built: ${{ steps.s.outputs.built }}
    steps:
      - id: s
        run: |
          echo "remote workflow builds at ${{ inputs.level }}"
          echo "built=yes-${{ inputs.level }}" >>"$GITHUB_OUTPUT"
YML
tgit -C "$F" add -A && tgit -C "$F" commit -qm "flows: first"
tgit -C "$F" tag v1
tgit clone -q --bare "$F" "$SRV/acme/flows.git"

# acme/tools, in the directory source (a work tree, as an operator keeps
# one): a composite action, a JavaScript one for a Node.js that is none, and a Docker one
# whose Dockerfile is outside it.
TL=$DIR/acme/tools
tgit init -q "$TL"
mkdir -p "$TL/upper" "$TL/js" "$TL/dock"
cat >"$TL/upper/action.yml" <<'YML'
name: upper
inputs:
  text: {required: true}
runs:
  using: composite
  steps:
    - run: echo "upper $(echo '${{ inputs.text }}' | tr a-z A-Z)"
      shell: bash
YML
printf 'name: js\nruns:\n  using: node10\n  main: index.js\n' >"$TL/js/action.yml"
printf 'name: dock\nruns:\n  using: docker\n  image: /etc/Dockerfile\n' >"$TL/dock/action.yml"
tgit -C "$TL" add -A && tgit -C "$TL" commit -qm "tools: first"
TOOLS=$(tgit -C "$TL" rev-parse HEAD)

start_git_servers "$SRV"
start_redis
make_keys
admit_worker w1
start_coordinator --actions-source "$DIR" --actions-source "git://127.0.0.1:$GIT_PORT"
start_worker w1
wait_workers 1
export KILN_WORKER_DIR=$T/work/w1/

cat >"$T/uses.yml" <<'YML'
name: uses
on: push
jobs:
  a:
    runs-on: linux
    env:
      KILN_WORKER_DIR: @WORKER_DIR@
    steps:
      - id: g
        uses: acme/greet@v1
        with:
          who: kiln
      - uses: acme/greet/nested@v1
        with:
          text: shout
      - id: pinned
        uses: acme/greet@@GREET1@
        with:
          who: pinned
      - run: echo "outputs ${{ steps.g.outputs.greeting }}/${{ steps.pinned.outputs.greeting }}"
  call:
    uses: acme/flows/.github/workflows/build.yml@v1
    with:
      level: O2
  after:
    needs: call
    runs-on: linux
    steps:
      - run: echo "called ${{ needs.call.outputs.built }}"
YML
sed -i "s|@WORKER_DIR@|$T/work/w1/|; s|@GREET1@|$GREET1|" "$T/uses.yml"

# 1. Resolved, fetched, run; recorded and shown.
"$KILN" lint "$T/uses.yml" >"$T/lint.out" 2>&1 || fail "kiln lint refused a workflow of remote actions: $(cat "$T/lint.out")"
RC=0
"$KILN" submit --wait "$T/uses.yml" >"$T/run1.out" 2>&1 || RC=$?
[ $RC = 0 ] || fail "the run of remote actions exited $RC: $(grep -E 'error|BAD|:::' "$T/run1.out" | head -n 8)"
for want in "greet v1: hello kiln" "path actions/acme/greet/$GREET1 true" "upper SHOUT" \
    "greet v1: hello pinned" "outputs hello kiln/hello pinned" "remote workflow builds at O2" \
    "called yes-O2" "Download action repository 'acme/greet@v1' (SHA:$GREET1)"; do
    grep -qF "$want" "$T/run1.out" || fail "run 1 lacks '$want': $(grep -vE '^\s*$' "$T/run1.out" | head -n 30)"
done
# Two steps use commit GREET1 (by tag and by pin): the second finds it there.
grep -q "acme/greet@$GREET1 at ${GREET1:0:12}: on this worker already" "$T/run1.out" ||
    fail "the second use of a commit on the worker downloaded it again: $(grep -iE 'download|already|fetched' "$T/run1.out")"
"$KILN" status 1 >"$T/status1.out"
grep -q "action: acme/greet@v1 -> ${GREET1:0:12}  (git://127.0.0.1:$GIT_PORT/acme/greet)" "$T/status1.out" ||
    fail "kiln status does not show what acme/greet@v1 resolved to: $(head -n 8 "$T/status1.out")"
grep -q "action: acme/tools/upper@main -> ${TOOLS:0:12}  ($DIR/acme/tools)" "$T/status1.out" ||
    fail "kiln status does not show the directory source's action: $(head -n 8 "$T/status1.out")"
grep -q "action: acme/flows/.github/workflows/build.yml@v1 -> " "$T/status1.out" ||
    fail "kiln status does not show the called workflow: $(head -n 8 "$T/status1.out")"
pass "remote composite actions by tag, path and commit, nested, and a remote reusable workflow; recorded and shown"

# 2. The tag moves: a new run takes the new commit, the first keeps its own,
# and the worker downloads only what is new.
sed -i 's/greet v1/greet v2/' "$G/greet.sh"
tgit -C "$G" commit -qam "greet: v2"
tgit -C "$G" tag -f v1 >/dev/null
tgit -C "$G" push -q -f origin main v1
GREET2=$(tgit -C "$G" rev-parse HEAD)
RC=0
"$KILN" submit --wait "$T/uses.yml" >"$T/run2.out" 2>&1 || RC=$?
[ $RC = 0 ] || fail "the second run exited $RC: $(grep -E 'error|BAD' "$T/run2.out" | head -n 5)"
grep -q "greet v2: hello kiln" "$T/run2.out" || fail "the moved tag was not followed: $(grep greet "$T/run2.out")"
grep -q "greet v1: hello pinned" "$T/run2.out" || fail "the pinned commit did not stay: $(grep greet "$T/run2.out")"
grep -q "acme/tools/upper@main at ${TOOLS:0:12}: on this worker already" "$T/run2.out" ||
    fail "an unchanged action was downloaded again: $(grep -iE 'download|already' "$T/run2.out")"
"$KILN" status 2 | grep -q "action: acme/greet@v1 -> ${GREET2:0:12}" || fail "run 2 does not record the new commit"
"$KILN" status 1 | grep -q "action: acme/greet@v1 -> ${GREET1:0:12}" || fail "run 1 lost the commit it ran"
pass "a moved tag gives the next run its new commit; the first run keeps its own; unchanged actions stay on the worker"

# 3. The uses: step's if: decides once whether the action runs (inside it,
# success() and failure() are the action's own); its env: reaches the
# action's steps.
cat >"$TL/upper/action.yml" <<'YML'
name: upper
inputs:
  text: {required: true}
runs:
  using: composite
  steps:
    - run: echo "upper $(echo '${{ inputs.text }}' | tr a-z A-Z) env=${OUTER:-none}"
      shell: bash
    - run: echo "upper's second step"
      shell: bash
YML
tgit -C "$TL" commit -qam "tools: env"
cat >"$T/gate.yml" <<'YML'
on: push
jobs:
  a:
    runs-on: linux
    steps:
      - uses: acme/tools/upper@main
        if: false
        with: {text: never}
      - uses: acme/tools/upper@main
        env: {OUTER: given}
        with: {text: with env}
      - run: exit 3
      - id: late
        uses: acme/tools/upper@main
        if: failure()
        with: {text: after a failure}
      - if: always()
        run: echo "outcome ${{ steps.late.outcome }}"
YML
RC=0
"$KILN" submit --wait "$T/gate.yml" >"$T/gate.out" 2>&1 || RC=$?
[ $RC = 1 ] || fail "the gated run exited $RC, want 1 (its exit 3 step): $(tail -n 5 "$T/gate.out")"
! grep -q "NEVER" "$T/gate.out" || fail "an action whose uses: step has if: false ran: $(grep -i never "$T/gate.out")"
grep -q "upper WITH ENV env=given" "$T/gate.out" || fail "the uses: step's env: did not reach the action's steps: $(grep upper "$T/gate.out")"
grep -q "upper AFTER A FAILURE env=none" "$T/gate.out" || fail "an action under if: failure() did not run its steps: $(grep upper "$T/gate.out")"
[ "$(grep -c "^a | upper's second step$" "$T/gate.out")" = 2 ] || fail "the actions' second steps: $(grep -c "second step" "$T/gate.out")"
grep -q "outcome success" "$T/gate.out" || fail "steps.late.outcome: $(grep outcome "$T/gate.out")"
pass "a uses: step's if: skips or runs the whole action, its own success() inside; its env: reaches the action's steps"

# 4. Refusals name the action and why, and every source tried.
refused() { # NAME USES WANT...
    local name=$1 uses=$2 out
    shift 2
    printf 'on: push\njobs:\n  a:\n    runs-on: linux\n    steps:\n      - uses: %s\n' "$uses" >"$T/$name.yml"
    RC=0
    out=$("$KILN" submit "$T/$name.yml" 2>&1) || RC=$?
    [ $RC = 2 ] || fail "$uses: exit $RC, want 2: $out"
    for want in "$@"; do
        echo "$out" | grep -qF "$want" || fail "$uses: the refusal lacks '$want': $out"
    done
}
refused js acme/tools/js@main "uses 'acme/tools/js@main'" "runs.using: node10 is no Node.js version Kiln knows"
refused dock acme/tools/dock@main "uses 'acme/tools/dock@main'" "runs.image: '/etc/Dockerfile' must be docker://IMAGE or a Dockerfile inside the action"
refused missing acme/nothing@v1 "uses 'acme/nothing@v1': not found in the farm's action sources" \
    "$DIR/acme/nothing: no such repository" "git://127.0.0.1:$GIT_PORT/acme/nothing"
refused noref acme/greet@v9 "uses 'acme/greet@v9'" "v9"
refused nofile acme/greet/none@v1 "acme/greet at v1" "has no none/action.yml"
"$KILN" workers --json >/dev/null || fail "the coordinator stopped serving after the refusals"
pass "unknown Node.js versions, a Docker action's image outside it, missing actions, refs and files refused naming the action and the sources tried"

# 5. A run from a repository whose workflow uses a remote action.
A=$T/app
tgit init -q "$A"
mkdir -p "$A/.github/workflows"
cat >"$A/.github/workflows/ci.yml" <<'YML'
on: push
jobs:
  a:
    runs-on: linux
    steps:
      - uses: acme/tools/upper@main
        with: {text: from the repository}
YML
tgit -C "$A" add -A && tgit -C "$A" commit -qm "app: first"
tgit clone -q --bare "$A" "$SRV/acme/app.git"
RC=0
"$KILN" submit --wait --repo "git://127.0.0.1:$GIT_PORT/acme/app.git" --ref main >"$T/repo.out" 2>&1 || RC=$?
[ $RC = 0 ] || fail "the repository's run exited $RC: $(grep -E 'error' "$T/repo.out" | head -n 5)"
grep -q "upper FROM THE REPOSITORY" "$T/repo.out" || fail "the repository's workflow did not run the action: $(tail -n 5 "$T/repo.out")"
pass "a run from a repository uses a remote action"

# 6. kiln run --actions-source: the local farm's coordinator takes it.
cat >"$T/local.yml" <<'YML'
on: push
jobs:
  a:
    runs-on: ubuntu-latest
    steps:
      - uses: acme/tools/upper@main
        with: {text: local farm}
YML
RC=0
(cd "$T" && "$KILN" run local.yml --workers 1 --actions-source "$DIR") >"$T/local.out" 2>&1 || RC=$?
[ $RC = 0 ] || fail "kiln run --actions-source exited $RC: $(tail -n 5 "$T/local.out")"
grep -q "upper LOCAL FARM" "$T/local.out" || fail "kiln run did not run the remote action: $(tail -n 5 "$T/local.out")"
RC=0
(cd "$T" && "$KILN" run local.yml --workers 1) >"$T/local2.out" 2>&1 || RC=$?
[ $RC = 2 ] && grep -q "the farm has no action sources" "$T/local2.out" ||
    fail "kiln run without action sources: exit $RC: $(tail -n 3 "$T/local2.out")"
pass "kiln run --actions-source; without one the message says what to give"

# 7. An offline mirror: kiln actions pull fills a directory source from a
# base URL (every branch and tag, bare), kiln actions list shows it, and a
# farm whose only source it is runs the action.
mkdir -p "$T/offline"
V1=$(git --git-dir="$SRV/acme/greet.git" rev-parse 'v1^{commit}')
"$KILN" actions pull acme/greet@v1 --from "git://127.0.0.1:$GIT_PORT" --into "$T/offline" >"$T/pull.out" 2>&1 ||
    fail "kiln actions pull: $(cat "$T/pull.out")"
grep -q "^acme/greet@v1 -> $V1  (from git://127.0.0.1:$GIT_PORT/acme/greet into $T/offline/acme/greet.git" "$T/pull.out" ||
    fail "kiln actions pull said: $(cat "$T/pull.out")"
"$KILN" actions pull acme/greet@v1 --from "git://127.0.0.1:$GIT_PORT" --into "$T/offline" >"$T/pull2.out" 2>&1 ||
    fail "a second pull: $(cat "$T/pull2.out")"
grep -q ": 0 objects" "$T/pull2.out" || fail "a second pull moved objects again: $(cat "$T/pull2.out")"
RC=0
"$KILN" actions pull acme/greet@v9 --from "git://127.0.0.1:$GIT_PORT" --into "$T/offline" >"$T/pull3.out" 2>&1 || RC=$?
[ $RC = 2 ] && grep -q "v9" "$T/pull3.out" || fail "a pull of a missing ref: exit $RC: $(cat "$T/pull3.out")"
"$KILN" actions list --dir "$T/offline" >"$T/alist.out" 2>&1 || fail "kiln actions list: $(cat "$T/alist.out")"
grep -q "^acme/greet$" "$T/alist.out" && grep -qE "^  tag +v1 +$V1$" "$T/alist.out" ||
    fail "kiln actions list: $(cat "$T/alist.out")"
cat >"$T/offline.yml" <<'YML'
on: push
jobs:
  a:
    runs-on: ubuntu-latest
    steps:
      - uses: acme/greet@v1
        with: {who: offline}
YML
RC=0
(cd "$T" && "$KILN" run offline.yml --workers 1 --actions-source "$T/offline") >"$T/offline.out" 2>&1 || RC=$?
[ $RC = 0 ] && grep -q "hello offline" "$T/offline.out" || fail "a farm on the offline mirror: exit $RC: $(tail -n 5 "$T/offline.out")"
pass "kiln actions pull fills an offline mirror (a second pull moves nothing, a missing ref is named), list shows its tags, a farm runs from it"

# 8. A per-owner override (OWNER=SOURCE) is the only source for that owner,
# wherever it stands in the list; a full-URL uses: (as Forgejo takes them)
# is fetched only from a base the farm has.
mkdir -p "$T/empty"
run_local() { # OUT WORKFLOW SOURCES...
    local out=$1 wf=$2
    shift 2
    local args=()
    for s in "$@"; do args+=(--actions-source "$s"); done
    RC=0
    (cd "$T" && "$KILN" run "$wf" --workers 1 "${args[@]}") >"$T/$out" 2>&1 || RC=$?
}
run_local over1.out offline.yml "git://127.0.0.1:$GIT_PORT" "acme=$T/offline"
[ $RC = 0 ] && grep -q "hello offline" "$T/over1.out" || fail "an override to the offline mirror: exit $RC: $(tail -n 5 "$T/over1.out")"
run_local over2.out offline.yml "git://127.0.0.1:$GIT_PORT" "acme=$T/empty"
[ $RC = 2 ] && grep -q "uses 'acme/greet@v1': not found in the farm's action sources (tried: $T/empty/acme/greet: no such repository)" "$T/over2.out" ||
    fail "an override that lacks the action fell through: exit $RC: $(tail -n 5 "$T/over2.out")"
sed "s|acme/greet@v1|git://127.0.0.1:$GIT_PORT/acme/greet@v1|" "$T/offline.yml" >"$T/url.yml"
run_local url1.out url.yml "$T/empty" "git://127.0.0.1:$GIT_PORT/"
[ $RC = 0 ] && grep -q "hello offline" "$T/url1.out" || fail "a full-URL uses: exit $RC: $(tail -n 5 "$T/url1.out")"
run_local url2.out url.yml "$T/offline"
[ $RC = 2 ] && grep -q "git://127.0.0.1:$GIT_PORT is not one of the farm's action sources" "$T/url2.out" ||
    fail "a full-URL uses: of a host the farm lacks: exit $RC: $(tail -n 5 "$T/url2.out")"
pass "an OWNER=SOURCE override is the owner's only source; a full-URL uses: comes from that base only when the farm has it"
