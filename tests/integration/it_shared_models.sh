# Runs of the same workflow share one parsed model in the coordinator (the
# queue of a busy farm is mostly pushes of a few files), and runs whose
# local actions differ do not: each runs its own action. A restarted
# coordinator shares them again when it recovers its runs, and the models
# go when their runs end.
source "$(dirname "$0")/lib.sh"
start_redis
make_keys
admit_worker w1
start_coordinator
mkrepo() {
    mkdir -p "$1/.git" "$1/.github/workflows" "$1/ci/hello"
    cat >"$1/.github/workflows/ci.yml" <<'YML'
name: shared
on: push
jobs:
  build:
    runs-on: self-hosted
    steps:
      - uses: ./ci/hello
      - run: echo "build done"
YML
    cat >"$1/ci/hello/action.yml" <<YML
name: hello
runs:
  using: composite
  steps:
    - run: echo "hello from $2"
      shell: bash
YML
}
mkrepo "$T/a" alpha
mkrepo "$T/b" beta
r1=$("$KILN" submit "$T/a/.github/workflows/ci.yml")
r2=$("$KILN" submit "$T/a/.github/workflows/ci.yml")
r3=$("$KILN" submit "$T/b/.github/workflows/ci.yml")
stats() { "$KILN" stats --json >"$T/stats.json"; }
stats
[ "$(json_get "$T/stats.json" '$.runs_active')" = 3 ] || fail "not 3 runs active: $(cat "$T/stats.json")"
[ "$(json_get "$T/stats.json" '$.workflows_held')" = 2 ] || fail "3 runs of 2 texts hold $(json_get "$T/stats.json" '$.workflows_held') models"
pass "two runs of one text share a model; a different action is a model of its own"

kill -9 "$COORD_PID"
wait "$COORD_PID" 2>/dev/null || true
start_coordinator
stats
[ "$(json_get "$T/stats.json" '$.runs_active')" = 3 ] || fail "recovery lost runs: $(cat "$T/stats.json")"
[ "$(json_get "$T/stats.json" '$.workflows_held')" = 2 ] || fail "recovered runs hold $(json_get "$T/stats.json" '$.workflows_held') models"
pass "a restarted coordinator shares the models of the runs it recovers"

start_worker w1
wait_workers 1
for r in $r1 $r2 $r3; do
    for _ in $(seq 1 200); do
        "$KILN" status "$r" --json >"$T/st.json" 2>/dev/null && [ "$(json_get "$T/st.json" '$.state')" != running ] &&
            [ "$(json_get "$T/st.json" '$.state')" != queued ] && break
        sleep 0.05
    done
    [ "$(json_get "$T/st.json" '$.state')" = success ] || fail "run $r: $(cat "$T/st.json")"
done
for r in $r1 $r2; do
    "$KILN" logs "$r" build >"$T/log" 2>&1 || fail "no logs for $r"
    grep -q "hello from alpha" "$T/log" || fail "run $r did not run its own action: $(cat "$T/log")"
done
"$KILN" logs "$r3" build >"$T/log" 2>&1 || fail "no logs for $r3"
grep -q "hello from beta" "$T/log" || fail "run $r3 ran another repository's action: $(cat "$T/log")"
pass "each run ran its own repository's action"
stats
[ "$(json_get "$T/stats.json" '$.workflows_held')" = 0 ] || fail "models outlive their runs: $(cat "$T/stats.json")"
pass "no model is held once its runs have ended"
