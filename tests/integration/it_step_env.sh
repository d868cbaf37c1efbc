# A step's environment is defined, not inherited: PATH, HOME, USER, LANG,
# the GITHUB_*/RUNNER_*/KILN_* variables, the workflow's env and what the
# worker's --env and --pass-env name, and nothing else of the worker
# daemon's environment. The github and runner contexts agree with the
# variables (git's ci/lib.sh needs GITHUB_ACTIONS; fmt's
# ${{ runner.workspace }}/build must be the job's own), and the event
# payload is in $GITHUB_EVENT_PATH and github.event.
source "$(dirname "$0")/lib.sh"
cat >"$T/env.yml" <<'EOF'
name: env
on:
  push:
  workflow_dispatch:
    inputs:
      who: {type: string, default: nobody}
jobs:
  env:
    runs-on: self-hosted
    env:
      FROM_WORKFLOW: wf
    steps:
      - id: check
        shell: bash
        run: |
          set -eu
          fail() { echo "BAD: $*"; exit 1; }
          [ "$GITHUB_ACTIONS" = true ] || fail GITHUB_ACTIONS
          [ -z "${FOO_FROM_DAEMON:-}" ] || fail "the daemon's environment leaked: $FOO_FROM_DAEMON"
          [ "$KILN_TEST_SET" = given ] || fail "--env"
          [ "$PASSED_ON" = passed ] || fail "--pass-env"
          [ -z "${NOT_PASSED:-}" ] || fail "a variable --pass-env did not name"
          [ "$LANG" = C.UTF-8 ] || fail "LANG=$LANG"
          [ -n "$HOME" ] && [ -n "$PATH" ] && [ -n "$USER" ] || fail "HOME, PATH, USER"
          [ "$FROM_WORKFLOW" = wf ] || fail "the workflow's env"
          [ "$RUNNER_WORKSPACE" = "$(dirname "$GITHUB_WORKSPACE")" ] || fail "RUNNER_WORKSPACE=$RUNNER_WORKSPACE"
          [ "${{ runner.workspace }}" = "$RUNNER_WORKSPACE" ] || fail "runner.workspace"
          [ -d "$RUNNER_TOOL_CACHE" ] && [ "${{ runner.tool_cache }}" = "$RUNNER_TOOL_CACHE" ] || fail RUNNER_TOOL_CACHE
          [ "$RUNNER_ARCH" = "${{ runner.arch }}" ] && [ -n "$RUNNER_ARCH" ] || fail RUNNER_ARCH
          [ "$RUNNER_OS" = Linux ] && [ "$RUNNER_ENVIRONMENT" = self-hosted ] || fail "RUNNER_OS, RUNNER_ENVIRONMENT"
          [ "$GITHUB_EVENT_NAME" = "${{ github.event_name }}" ] || fail GITHUB_EVENT_NAME
          [ -f "$GITHUB_EVENT_PATH" ] && [ "${{ github.event_path }}" = "$GITHUB_EVENT_PATH" ] || fail GITHUB_EVENT_PATH
          [ "$GITHUB_ACTION" = check ] && [ "${{ github.action }}" = check ] || fail "GITHUB_ACTION=$GITHUB_ACTION"
          [ "$GITHUB_RUN_NUMBER" = "${{ github.run_number }}" ] || fail GITHUB_RUN_NUMBER
          [ "$GITHUB_ACTOR" = "${{ github.actor }}" ] && [ -n "$GITHUB_ACTOR" ] || fail GITHUB_ACTOR
          [ "$(sqlite3 :memory: "select json_valid(readfile('$GITHUB_EVENT_PATH'))")" = 1 ] || fail "the event payload is not JSON"
          echo "event ${{ github.event_name }}: $(cat "$GITHUB_EVENT_PATH")"
          echo "input '${{ github.event.inputs.who }}'"
          echo "all good"
      - shell: bash
        run: '[ "$GITHUB_ACTION" = __run ] && [ "${{ github.action }}" = __run ] && echo "first unnamed: $GITHUB_ACTION"'
      - shell: bash
        run: '[ "$GITHUB_ACTION" = __run_2 ] && echo "second unnamed: $GITHUB_ACTION"'
EOF
start_redis
make_keys
admit_worker w1
start_coordinator
mkdir -p "$T/work"
export FOO_FROM_DAEMON=leak PASSED_ON=passed NOT_PASSED=no
env -u LANG "$KILN_BIN/kiln-worker" --coordinator "$ENDPOINT" --server-key "$T/keys/server.pub" \
    --key "$T/keys/w1.key" --work-dir "$T/work/w1" --env KILN_TEST_SET=given --pass-env PASSED_ON \
    >>"$T/w1.log" 2>&1 &
PIDS+=($!)
WPID=$!
unset FOO_FROM_DAEMON PASSED_ON NOT_PASSED
sleep 0.5
kill -0 "$WPID" 2>/dev/null || fail "the worker did not start: $(cat "$T/w1.log")"
wait_workers 1
"$KILN" submit --wait "$T/env.yml" >"$T/push.out" 2>&1 || fail "the step saw the wrong environment: $(grep -E 'BAD|error' "$T/push.out")"
grep -q "all good" "$T/push.out" && grep -q "first unnamed: __run" "$T/push.out" &&
    grep -q "second unnamed: __run_2" "$T/push.out" || fail "$(cat "$T/push.out")"
grep -q 'event push: {"sender":{"login":"client"}}' "$T/push.out" || fail "the push event payload: $(grep event "$T/push.out")"
pass "a push's steps get the defined environment, GITHUB_*/RUNNER_* agree with the contexts, nothing of the daemon leaks"
"$KILN" submit --wait --input who=octocat "$T/env.yml" >"$T/wd.out" 2>&1 || fail "workflow_dispatch: $(grep -E 'BAD|error' "$T/wd.out")"
grep -q 'event workflow_dispatch: {"sender":{"login":"client"},"inputs":{"who":"octocat"},"workflow":' "$T/wd.out" && grep -q "input 'octocat'" "$T/wd.out" ||
    fail "the workflow_dispatch payload: $(grep -E 'event|input' "$T/wd.out")"
# The next job in the recycled workspace writes its shorter payload over
# the longer one: still one JSON document.
"$KILN" submit --wait "$T/env.yml" >"$T/push2.out" 2>&1 || fail "a push after a dispatch: $(grep -E 'BAD|error' "$T/push2.out")"
grep -q 'event push: {"sender":{"login":"client"}} *$' "$T/push2.out" || fail "the recycled payload: $(grep event "$T/push2.out")"
[ "$(sqlite3 "$T/history.db" "select group_concat(event || '/' || actor, ' ') from runs")" = "push/client workflow_dispatch/client push/client" ] ||
    fail "the history does not keep each run's event and actor: $(sqlite3 "$T/history.db" "select id, event, actor from runs")"
pass "a workflow_dispatch's payload carries its inputs, in the file and in github.event; the history keeps each run's event"

# --event: the run is for that event, and a workflow whose on: does not
# list it runs anyway (it was named), saying so; a malformed name is refused.
"$KILN" submit --wait --event pull_request "$T/env.yml" >"$T/pr.out" 2>&1 || fail "--event pull_request: $(grep -E 'BAD|error' "$T/pr.out")"
grep -q "on: does not list 'pull_request'; the run goes ahead because its file was submitted by name" "$T/pr.out" ||
    fail "no word on the unlisted event: $(head -n 3 "$T/pr.out")"
grep -q 'event pull_request: {"sender":{"login":"client"}}' "$T/pr.out" || fail "the step did not see pull_request: $(grep event "$T/pr.out")"
"$KILN" submit --wait --event workflow_dispatch "$T/env.yml" >"$T/wd2.out" 2>&1 || fail "--event workflow_dispatch"
grep -q "does not list" "$T/wd2.out" && fail "a listed event was warned about: $(head -n 3 "$T/wd2.out")"
set +e
"$KILN" submit --event Pull-Request "$T/env.yml" >"$T/badev.out" 2>&1
rc=$?
set -e
[ $rc = 2 ] && grep -q "is not an event name" "$T/badev.out" || fail "a malformed event: exit $rc: $(cat "$T/badev.out")"
pass "--event: the run is for it, an unlisted one runs saying so, a malformed one is refused"

# A malformed --env is refused at start-up, naming it.
set +e
"$KILN_BIN/kiln-worker" --coordinator "$ENDPOINT" --server-key "$T/keys/server.pub" --key "$T/keys/w1.key" \
    --work-dir "$T/work/bad" --env NOEQUALS >"$T/bad.out" 2>&1
rc=$?
set -e
[ $rc != 0 ] && grep -q "\-\-env 'NOEQUALS': expected NAME=VALUE" "$T/bad.out" || fail "a bad --env: exit $rc: $(cat "$T/bad.out")"
pass "a malformed --env is refused, naming it"
