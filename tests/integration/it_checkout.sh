# Runs from repositories, as 28 of 30 real workflows need them: the
# coordinator fetches a repository (git daemon and smart HTTP on 127.0.0.1)
# into its mirror and reads the workflows from the commit; the built-in
# actions/checkout puts the commit in the workspace as a real repository
# (path, fetch-depth 0 with tags for git describe, submodules, sparse
# checkout), the second checkout on the same worker fetches nothing, a new
# commit brings only its own objects; tags, a force-pushed branch, on:
# filters by event, the github context and GITHUB_* variables checked
# against the repository the test made; kiln run in a work tree, --dirty.
source "$(dirname "$0")/lib.sh"
export COORD_LOG_LEVEL=info
SRV=$T/srv
mkdir -p "$SRV/acme"

# The repositories: acme/lib (a submodule of acme/widget) and acme/widget.
tgit init -q "$T/lib"
echo lib >"$T/lib/lib.txt"
tgit -C "$T/lib" add -A && tgit -C "$T/lib" commit -qm "lib: first"
tgit clone -q --bare "$T/lib" "$SRV/acme/lib.git"
W=$T/widget
tgit init -q "$W"
tgit init -q --bare "$SRV/acme/widget.git"
tgit -C "$W" remote add origin "$SRV/acme/widget.git"
mkdir -p "$W/.github/workflows" "$W/docs" "$W/src"
echo readme >"$W/README"
echo a >"$W/docs/a"
echo s >"$W/src/s"
cat >"$W/.github/workflows/ci.yml" <<'YML'
name: ci
on:
  push:
    branches: [main]
jobs:
  check:
    runs-on: ubuntu-24.04
    steps:
      - uses: actions/checkout@v4
        id: co
        with:
          path: src
          fetch-depth: 0
          submodules: recursive
      - name: the work tree is the run's commit
        run: |
          cd src
          bad() { echo "BAD: $*"; exit 1; }
          [ "$(git rev-parse HEAD)" = "$GITHUB_SHA" ] || bad "HEAD $(git rev-parse HEAD) is not $GITHUB_SHA"
          [ "${{ github.sha }}" = "$GITHUB_SHA" ] || bad github.sha
          [ "${{ steps.co.outputs.commit }}" = "$GITHUB_SHA" ] || bad outputs.commit
          [ "$GITHUB_REF_TYPE" = tag ] || [ "$(git branch --show-current)" = "$GITHUB_REF_NAME" ] || bad "branch $(git branch --show-current)"
          [ "$GITHUB_REF_TYPE" = tag ] || [ -f lib/lib.txt ] || bad "no submodule"
          [ -z "$(git status --porcelain)" ] || bad "not clean: $(git status --porcelain)"
          echo "describe $(git describe --tags)"
          echo "count $(git rev-list --count HEAD)"
          echo "vars $GITHUB_REPOSITORY $GITHUB_REPOSITORY_OWNER $GITHUB_REF $GITHUB_REF_NAME $GITHUB_REF_TYPE $GITHUB_SERVER_URL $GITHUB_WORKFLOW_REF"
          echo "ctx ${{ github.repository }} ${{ github.ref_name }} ${{ github.server_url }} ${{ github.event.head_commit.message }}/${{ github.event.repository.full_name }}/${{ github.event.after == github.sha }}"
      - uses: actions/checkout@v4
        with:
          path: sparse
          sparse-checkout: docs
      - run: |
          [ -f sparse/docs/a ] && [ -f sparse/README ] && [ ! -e sparse/src ] || { echo "BAD sparse: $(ls -R sparse)"; exit 1; }
          [ -z "$(git -C sparse status --porcelain)" ] || { echo "BAD sparse status: $(git -C sparse status --porcelain)"; exit 1; }
          echo "shallow $(git -C sparse rev-list --count HEAD)"
YML
cat >"$W/.github/workflows/manual.yml" <<'YML'
name: manual
on: workflow_dispatch
jobs:
  m:
    runs-on: linux
    steps: [{run: echo manual}]
YML
cat >"$W/.github/workflows/docs.yml" <<'YML'
name: docs
on:
  push:
    paths: ['docs/**', '!docs/**.tmp']
jobs:
  d:
    runs-on: linux
    steps: [{run: echo docs run}]
YML
cat >"$W/.github/workflows/release.yml" <<'YML'
name: release
on:
  push:
    branches: ['release/**']
    tags: ['v[0-9]+.*']
jobs:
  r:
    runs-on: linux
    steps: [{run: echo release run for $GITHUB_REF_NAME}]
YML
cat >"$W/.github/workflows/pr.yml" <<'YML'
name: pr
on:
  pull_request:
    branches: [main]
    types: [opened, synchronize]
jobs:
  p:
    runs-on: linux
    steps:
      - uses: actions/checkout@v4
      - run: |
          echo "pr ${{ github.event.pull_request.number }} ${{ github.event.action }} $GITHUB_HEAD_REF->$GITHUB_BASE_REF ${{ github.head_ref }} $GITHUB_REF $(git rev-parse HEAD)"
YML
cat >"$W/.github/workflows/plain.yml" <<'YML'
name: plain
on: workflow_dispatch
jobs:
  p:
    runs-on: linux
    steps:
      - uses: actions/checkout@v4
      - run: |
          [ ! -e out.o ] || { echo "BAD: an earlier job's output is here"; exit 1; }
          [ "$(cat README)" = readme ] || { echo "BAD: README is $(cat README)"; exit 1; }
          [ -z "$(git config --get core.hooksPath)" ] || { echo "BAD: an earlier job's config"; exit 1; }
          [ -z "$(git status --porcelain)" ] || { echo "BAD: not clean: $(git status --porcelain)"; exit 1; }
          echo built >out.o; echo tampered >>README; git config core.hooksPath /nowhere
YML
mkdir -p "$W/.github/actions/hello"
cat >"$W/.github/actions/hello/action.yml" <<'YML'
name: hello
inputs:
  who: {default: world}
runs:
  using: composite
  steps:
    - run: echo "hello ${{ inputs.who }} from the repository's action at ${GITHUB_ACTION_PATH#$GITHUB_WORKSPACE/} ${{ github.action_path == env.AP }}"
      shell: bash
      env:
        AP: ${{ github.workspace }}/source/.github/actions/hello
YML
cat >"$W/.github/workflows/nested.yml" <<'YML'
name: nested
on: workflow_dispatch
jobs:
  n:
    runs-on: linux
    steps:
      - uses: actions/checkout@v4
        with:
          path: source
      - uses: ./source/.github/actions/hello
        with:
          who: libgit2
YML
tgit -C "$W" add -A && tgit -C "$W" commit -qm "widget: first"
tgit -C "$W" tag -a v1.0 -m "release 1.0"
tgit -C "$W" submodule -q add ../lib.git lib
tgit -C "$W" commit -qm "widget: the lib submodule"
tgit -C "$W" push -q origin main --tags
start_git_servers "$SRV"
REPO=git://127.0.0.1:$GIT_PORT/acme/widget.git

start_redis
make_keys
admit_worker w1
start_coordinator
start_worker w1
wait_workers 1

submit() { # OUT ARGS...: kiln submit --repo, its exit code in RC
    local out=$1
    shift
    RC=0
    "$KILN" submit --wait "$@" >"$T/$out" 2>&1 || RC=$?
}

# 1. A push of main: ci.yml starts (its on: takes it), manual.yml does not.
submit push1.out --repo "$REPO" --ref main
[ $RC = 0 ] || fail "the first run from the repository exited $RC: $(grep -E 'BAD|error|::' "$T/push1.out" | head -n 5)"
grep -q "^run 1: .github/workflows/ci.yml" "$T/push1.out" || fail "no line for the ci run: $(head -n 3 "$T/push1.out")"
grep -q "manual.yml: not started: on: does not take 'push'" "$T/push1.out" ||
    fail "the workflow_dispatch-only workflow was not named as not started: $(head -n 5 "$T/push1.out")"
SHA=$(tgit -C "$W" rev-parse HEAD)
grep -q "describe v1.0-1-g${SHA:0:7}" "$T/push1.out" || fail "git describe: $(grep describe "$T/push1.out")"
grep -q "count 2" "$T/push1.out" || fail "fetch-depth 0 did not give the whole history: $(grep count "$T/push1.out")"
grep -q "shallow 1" "$T/push1.out" || fail "fetch-depth 1 did not give one commit: $(grep shallow "$T/push1.out")"
grep -q "vars acme/widget acme refs/heads/main main branch git://127.0.0.1:$GIT_PORT acme/widget/.github/workflows/ci.yml@refs/heads/main" "$T/push1.out" ||
    fail "the GITHUB_* variables: $(grep 'vars ' "$T/push1.out")"
grep -q "ctx acme/widget main git://127.0.0.1:$GIT_PORT widget: the lib submodule/acme/widget/true" "$T/push1.out" ||
    fail "the github context: $(grep 'ctx ' "$T/push1.out")"
grep -qE "Checkout of acme/widget at .* [1-9][0-9]* objects" "$T/push1.out" ||
    fail "the first checkout does not say what it fetched: $(grep -i checkout "$T/push1.out" | head -n 5)"
[ "$(sqlite3 "$T/history.db" "select json_extract(source, '\$.sha') || ' ' || json_extract(source, '\$.ref') from runs where id = 1")" = "$SHA refs/heads/main" ] ||
    fail "the history does not record the run's commit and ref"
"$KILN" status 1 >"$T/status1.out"
grep -q "acme/widget refs/heads/main ${SHA:0:12}" "$T/status1.out" || fail "kiln status does not show the source: $(head -n 5 "$T/status1.out")"
pass "a push from git://: the commit's workflows by on:, checkout with path, fetch-depth 0, tags, submodules, sparse; context and variables"

# 2. The same commit again on the same worker: no object fetched, twice.
submit push2.out --repo "$REPO" --ref main --workflow .github/workflows/ci.yml
[ $RC = 0 ] || fail "the second run exited $RC"
# (fetch-depth 0 asks for the branches and tags as they are now: 0 objects.)
[ "$(grep -cE "nothing fetched \(the worker's mirror had it\)|: 0 objects, [0-9]+ bytes fetched" "$T/push2.out")" = 2 ] ||
    fail "the second checkout of the same commit fetched something: $(grep -i 'checkout of' "$T/push2.out")"
# 3. A new commit: only its own objects come over (commit, tree, blob).
echo more >>"$W/docs/a"
tgit -C "$W" commit -qam "widget: more docs" && tgit -C "$W" push -q origin main
submit push3.out --repo "$REPO" --ref main --workflow .github/workflows/ci.yml
[ $RC = 0 ] || fail "the run of a new commit exited $RC: $(grep BAD "$T/push3.out")"
n=$(grep -oE "Checkout of acme/widget at [^:]*: [0-9]+ objects" "$T/push3.out" | head -n 1 | grep -oE "[0-9]+ objects" | cut -d' ' -f1)
[ -n "$n" ] && [ "$n" -ge 1 ] && [ "$n" -le 5 ] || fail "a one-file commit brought ${n:-?} objects: $(grep -i 'checkout of' "$T/push3.out")"
pass "on a warm worker the same commit fetches nothing, a new one only its $n objects"

# A warm worker keeps the last job's work tree and brings it to the next
# commit, writing only what differs; what that job left (build output, a
# changed file, its git config) is gone.
submit warm1.out --repo "$REPO" --ref main --workflow .github/workflows/plain.yml --event workflow_dispatch
[ $RC = 0 ] && grep -q "Work tree: written afresh" "$T/warm1.out" || fail "the first plain checkout: $(grep -E 'BAD|Work tree' "$T/warm1.out")"
submit warm2.out --repo "$REPO" --ref main --workflow .github/workflows/plain.yml --event workflow_dispatch
[ $RC = 0 ] || fail "the second plain checkout saw the first job's leavings: $(grep BAD "$T/warm2.out")"
grep -q "Work tree: an earlier job's, brought to this commit" "$T/warm2.out" || fail "the work tree was not kept: $(grep 'Work tree' "$T/warm2.out")"
pass "a warm worker reuses the last job's work tree, cleaned: no output, changed file or config of that job left"

# A local action under a checkout's path: ./source/.github/actions/hello
# after `path: source` is the repository's .github/actions/hello.
submit nested.out --repo "$REPO" --ref main --workflow .github/workflows/nested.yml --event workflow_dispatch
[ $RC = 0 ] && grep -q "hello libgit2 from the repository's action at source/.github/actions/hello true" "$T/nested.out" ||
    fail "a local action under the checkout's path: $(grep -E 'hello|error|fails' "$T/nested.out")"
pass "uses: ./source/.github/actions/x after a checkout into source: the repository's action"

# 4. A tag, named: the workflow runs although on: filters branches.
submit tag.out --repo "$REPO" --ref v1.0 --workflow .github/workflows/ci.yml
[ $RC = 0 ] || fail "the tag's run exited $RC: $(grep -E 'BAD|error' "$T/tag.out")"
grep -q "describe v1.0$" "$T/tag.out" && grep -q "vars acme/widget acme refs/tags/v1.0 v1.0 tag " "$T/tag.out" ||
    fail "the tag's run: $(grep -E 'describe|vars' "$T/tag.out")"
# 5. A force-pushed main: the mirror follows.
tgit -C "$W" reset -q --hard HEAD~1
echo rewritten >"$W/src/s"
tgit -C "$W" commit -qam "widget: rewritten" && tgit -C "$W" push -q -f origin main
NEW=$(tgit -C "$W" rev-parse HEAD)
submit force.out --repo "$REPO" --ref main --workflow .github/workflows/ci.yml
[ $RC = 0 ] || fail "the run after a force-push exited $RC: $(grep -E 'BAD|error' "$T/force.out")"
grep -q "HEAD is now at ${NEW:0:12}" "$T/force.out" || fail "the force-pushed main was not followed: $(grep 'HEAD is now' "$T/force.out")"
pass "a tag (detached, git describe), and a force-pushed branch"

# 6. Smart HTTP.
submit http.out --repo "http://127.0.0.1:$HTTP_PORT/acme/widget.git" --ref main --workflow .github/workflows/ci.yml
[ $RC = 0 ] || fail "the run over smart HTTP exited $RC: $(grep -E 'BAD|error|::' "$T/http.out" | head -n 5)"
grep -q "vars acme/widget acme refs/heads/main main branch http://127.0.0.1:$HTTP_PORT " "$T/http.out" ||
    fail "over HTTP: $(grep 'vars ' "$T/http.out")"
pass "smart HTTP (git http-backend)"

# 7. What cannot be: a ref the repository lacks (exit 2), a repository
# that cannot be fetched (exit 3); the coordinator serves on.
submit noref.out --repo "$REPO" --ref nosuch
[ $RC = 2 ] && grep -q "'nosuch' names no branch, tag or commit of $REPO" "$T/noref.out" ||
    fail "an unknown ref: exit $RC: $(cat "$T/noref.out")"
submit nofile.out --repo "$REPO" --ref main --workflow .github/workflows/nosuch.yml
[ $RC = 2 ] && grep -q ".github/workflows/nosuch.yml is not a file in commit" "$T/nofile.out" ||
    fail "an unknown workflow: exit $RC: $(cat "$T/nofile.out")"
submit nohost.out --repo "git://127.0.0.1:$(free_port)/acme/widget.git" --ref main
[ $RC = 3 ] && grep -q "cannot fetch" "$T/nohost.out" || fail "an unreachable repository: exit $RC: $(cat "$T/nohost.out")"
kill -0 "$COORD_PID" || fail "the coordinator died"
pass "an unknown ref or workflow is exit 2, an unreachable repository exit 3, naming them"

# 8. on: filters decide what a push starts: paths (with a '!' pattern),
# branch and tag globs, and pull requests by base branch and type.
echo s2 >"$W/src/s"
tgit -C "$W" commit -qam "widget: src only" && tgit -C "$W" push -q origin main
submit src.out --repo "$REPO" --ref main
[ $RC = 0 ] || fail "the src-only push exited $RC"
grep -q "docs.yml: not started: on.push: its paths match none of the 1 files it changed" "$T/src.out" &&
    grep -q "^run [0-9]*: .github/workflows/ci.yml" "$T/src.out" ||
    fail "a push missing docs/** started docs.yml, or not ci.yml: $(grep -E '^run|not started' "$T/src.out")"
echo tmp >"$W/docs/x.tmp"
tgit -C "$W" add -A && tgit -C "$W" commit -qm "widget: a tmp file" && tgit -C "$W" push -q origin main
submit tmp.out --repo "$REPO" --ref main
grep -q "docs.yml: not started" "$T/tmp.out" || fail "docs/**.tmp is excluded, yet docs.yml started"
echo b >"$W/docs/b"
tgit -C "$W" add -A && tgit -C "$W" commit -qm "widget: docs b" && tgit -C "$W" push -q origin main
submit docs.out --repo "$REPO" --ref main
grep -q "^run [0-9]*: .github/workflows/docs.yml" "$T/docs.out" && grep -q "docs run" "$T/docs.out" ||
    fail "a push touching docs/b did not start docs.yml: $(grep -E '^run|not started' "$T/docs.out")"
tgit -C "$W" push -q origin main:release/1.0
submit rel.out --repo "$REPO" --ref release/1.0
grep -q "^run [0-9]*: .github/workflows/release.yml" "$T/rel.out" &&
    grep -q "ci.yml: not started: on.push: branch 'release/1.0' is not in its branches" "$T/rel.out" &&
    grep -q "release run for release/1.0" "$T/rel.out" || fail "the release/1.0 push: $(grep -E '^run|not started|release run' "$T/rel.out")"
tgit -C "$W" tag v2.1 && tgit -C "$W" tag nightly && tgit -C "$W" push -q origin --tags
submit v21.out --repo "$REPO" --ref v2.1
grep -q "^run [0-9]*: .github/workflows/release.yml" "$T/v21.out" || fail "the v2.1 tag did not start release.yml"
submit nightly.out --repo "$REPO" --ref nightly
grep -q "release.yml: not started: on.push: tag 'nightly' is not in its tags" "$T/nightly.out" ||
    fail "the nightly tag: $(grep -E '^run|not started' "$T/nightly.out")"
tgit -C "$W" checkout -q -b feature
echo feature >"$W/src/f"
tgit -C "$W" add -A && tgit -C "$W" commit -qm "widget: feature" && tgit -C "$W" push -q origin feature
FEAT=$(tgit -C "$W" rev-parse HEAD)
tgit -C "$W" checkout -q main
submit pr.out --repo "$REPO" --event pull_request --ref feature --base main --pr 7
[ $RC = 0 ] || fail "the pull request exited $RC: $(grep -E 'BAD|error|::' "$T/pr.out")"
grep -q "^run [0-9]*: .github/workflows/pr.yml" "$T/pr.out" && grep -q "ci.yml: not started: on: does not take 'pull_request'" "$T/pr.out" ||
    fail "the pull request started: $(grep -E '^run|not started' "$T/pr.out")"
grep -q "pr 7 opened feature->main feature refs/pull/7/head $FEAT" "$T/pr.out" || fail "the pull request's payload: $(grep '^p |.*pr ' "$T/pr.out")"
submit prc.out --repo "$REPO" --event pull_request --ref feature --base main --pr 7 --action closed
grep -q "pr.yml: not started: on.pull_request: its types do not take 'closed'" "$T/prc.out" || fail "a closed pull request: $(cat "$T/prc.out")"
submit named.out --repo "$REPO" --ref nightly --workflow .github/workflows/release.yml
grep -q "release.yml: warning: on.push: tag 'nightly' is not in its tags; the run goes ahead because the workflow was named" "$T/named.out" &&
    grep -q "release run for nightly" "$T/named.out" || fail "a named workflow outside its filters: $(head -n 3 "$T/named.out")"
pass "on: filters: paths with '!', branch and tag globs, pull requests by base and type; a named workflow runs and says so"

# A coordinator killed while a run from a repository goes on: restarted, it
# plans the rest of the run for the same commit and ref.
cat >"$W/.github/workflows/slow.yml" <<'YML'
name: slow
on: workflow_dispatch
jobs:
  first:
    runs-on: linux
    steps: [{run: sleep 2}]
  second:
    needs: first
    runs-on: linux
    steps:
      - uses: actions/checkout@v4
      - run: echo "after the restart $GITHUB_SHA $GITHUB_REF_NAME ${{ github.repository }} $(git rev-parse HEAD)"
YML
tgit -C "$W" add -A && tgit -C "$W" commit -qm "widget: slow" && tgit -C "$W" push -q origin main
SLOW=$(tgit -C "$W" rev-parse HEAD)
"$KILN" submit --repo "$REPO" --ref main --workflow .github/workflows/slow.yml --event workflow_dispatch >"$T/slow.out" 2>&1 ||
    fail "submitting slow.yml: $(cat "$T/slow.out")"
SLOW_RUN=$(grep -oE '^run [0-9]+' "$T/slow.out" | cut -d' ' -f2)
sleep 0.5
kill -KILL "$COORD_PID"
wait "$COORD_PID" 2>/dev/null || true
start_coordinator
until_s=$((SECONDS + 30))
while [ "$("$KILN" status "$SLOW_RUN" --json 2>/dev/null | sed -n 's/.*"state": *"\([a-z_]*\)".*/\1/p' | head -n 1)" != success ]; do
    [ $SECONDS -lt $until_s ] || fail "the run did not finish after the restart: $("$KILN" status "$SLOW_RUN" 2>&1 | head -n 8)"
    sleep 0.2
done
"$KILN" logs "$SLOW_RUN" second >"$T/slow.log" 2>&1 || true
grep -q "after the restart $SLOW main acme/widget $SLOW" "$T/slow.log" || fail "after the restart: $(grep -E 'after|error' "$T/slow.log")"
pass "a coordinator restart mid-run keeps the run's repository, ref and commit"

# 9. kiln run inside the work tree: HEAD, said when the tree is dirty;
# --dirty checks the work tree out as it is.
cat >"$W/.github/workflows/local.yml" <<'YML'
name: local
on: push
jobs:
  l:
    runs-on: linux
    steps:
      - uses: actions/checkout@v4
      - run: echo "s is $(cat src/s) at ${{ github.sha }} for ${{ github.repository }}"
YML
tgit -C "$W" add -A && tgit -C "$W" commit -qm "widget: local workflow"
echo uncommitted >"$W/src/s"
HEADSHA=$(tgit -C "$W" rev-parse HEAD)
(cd "$W" && TMPDIR=$T "$KILN" run --workers 1 .github/workflows/local.yml) >"$T/local.out" 2>&1 ||
    fail "kiln run in the work tree: $(tail -n 5 "$T/local.out")"
grep -q "has 1 uncommitted changes; the run checks out HEAD (${HEADSHA:0:12})" "$T/local.out" ||
    fail "no word on the uncommitted change: $(head -n 3 "$T/local.out")"
grep -q "s is $(tgit -C "$W" show HEAD:src/s) at $HEADSHA for acme/widget" "$T/local.out" || fail "kiln run did not check out HEAD: $(grep 's is' "$T/local.out")"
(cd "$W" && TMPDIR=$T "$KILN" run --workers 1 --dirty .github/workflows/local.yml) >"$T/dirty.out" 2>&1 ||
    fail "kiln run --dirty: $(tail -n 5 "$T/dirty.out")"
grep -q "s is uncommitted at " "$T/dirty.out" || fail "--dirty did not check out the work tree: $(grep -E 's is|dirty' "$T/dirty.out")"
[ "$(tgit -C "$W" rev-parse HEAD)" = "$HEADSHA" ] && [ "$(tgit -C "$W" status --porcelain)" = " M src/s" ] ||
    fail "--dirty changed the repository: $(tgit -C "$W" status --porcelain)"
pass "kiln run in a work tree checks out HEAD and says the tree is dirty; --dirty runs the work tree, leaving the repository as it was"
