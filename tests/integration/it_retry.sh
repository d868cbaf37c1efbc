# Retry policy: a script failure is retried only when the workflow asks
# (kiln.retry), each attempt recorded with its class; without it, a failure
# fails the job at once. kiln.max-attempts bounds infrastructure retries.
source "$(dirname "$0")/lib.sh"
start_redis
make_keys
admit_worker w1
admit_worker w2
start_coordinator --heartbeat-ms 200 --lease-ms 1000
start_worker w1
W1=$LAST_PID
start_worker w2
W2=$LAST_PID
wait_workers 2
cat >"$T/retry.yml" <<'YML'
name: retry
on: push
jobs:
  flaky:
    runs-on: self-hosted
    kiln:
      retry: 2
    steps:
      - run: |
          echo "attempt $KILN_ATTEMPT"
          [ "$KILN_ATTEMPT" -ge 2 ]
  strict:
    runs-on: self-hosted
    steps:
      - run: exit 4
YML
rc=0
"$KILN" submit --wait --json "$T/retry.yml" >"$T/r.json" || rc=$?
[ $rc -eq 1 ] || fail "want exit 1 (strict fails), got $rc"
[ "$(json_get "$T/r.json" '$.jobs[0].state')" = success ] || fail "flaky not success after a retry"
[ "$(json_get "$T/r.json" '$.jobs[0].attempt')" = 2 ] || fail "flaky did not take 2 attempts"
[ "$(json_get "$T/r.json" '$.jobs[0].attempts[0].state')" = failure ] || fail "attempt 1 not failure"
[ "$(json_get "$T/r.json" '$.jobs[0].attempts[1].state')" = success ] || fail "attempt 2 not success"
[ "$(json_get "$T/r.json" '$.jobs[1].state')" = failure ] || fail "strict not failure"
[ "$(json_get "$T/r.json" '$.jobs[1].attempt')" = 1 ] || fail "strict was retried without asking"
pass "kiln.retry: flaky failed once and passed on attempt 2; strict failed at once"
"$KILN" logs 1 flaky >"$T/flaky.log"
grep -q -- "--- attempt 2 ---" "$T/flaky.log" || fail "kiln logs does not separate attempts"
grep -q "attempt 1" "$T/flaky.log" && grep -q "attempt 2" "$T/flaky.log" || fail "attempt output missing"
pass "kiln logs keeps each attempt's output apart"
"$KILN" status 1 >"$T/status.txt"
grep -q "attempt 1 on w[12]: failure" "$T/status.txt" || fail "kiln status does not show why it was retried"
pass "kiln status lists the attempts"

# max-attempts: 1 -> a lost worker is not retried; the job is infra_error.
cat >"$T/once.yml" <<'YML'
name: once
on: push
jobs:
  once:
    runs-on: self-hosted
    kiln:
      max-attempts: 1
    steps:
      - run: sleep 30
YML
# Followed by `kiln submit --wait`, which must exit 3 (infrastructure), not
# 1 (the build failed).
KILN_REQUEST_TIMEOUT_MS=15000 "$KILN" submit --wait "$T/once.yml" >"$T/once.out" 2>&1 &
WAITER=$!
PIDS+=($WAITER)
for _ in $(seq 1 100); do
    run=$(sqlite3 "$T/history.db" "select id from runs where name='once'" 2>/dev/null || true)
    [ -n "$run" ] && break
    sleep 0.05
done
[ -n "$run" ] || fail "the run of once.yml was not recorded"
for _ in $(seq 1 100); do
    "$KILN" status "$run" --json >"$T/o.json"
    [ "$(json_get "$T/o.json" '$.jobs[0].state')" = running ] && break
    sleep 0.05
done
holder=$(json_get "$T/o.json" '$.jobs[0].worker')
pid=$W1
[ "$holder" = w2 ] && pid=$W2
kill -9 "$pid"
for _ in $(seq 1 100); do
    "$KILN" status "$run" --json >"$T/o.json"
    [ "$(json_get "$T/o.json" '$.state')" != running ] && break
    sleep 0.1
done
[ "$(json_get "$T/o.json" '$.jobs[0].state')" = infra_error ] || fail "want infra_error: $(cat "$T/o.json")"
[ "$(json_get "$T/o.json" '$.jobs[0].attempts[0].state')" = worker_lost ] || fail "attempt not worker_lost"
pass "kiln.max-attempts 1: a lost worker ends the job as infra_error"
[ "$(json_get "$T/o.json" '$.state')" = infra_error ] || fail "the run is not infra_error: $(cat "$T/o.json")"
rc=0
wait "$WAITER" || rc=$?
[ $rc -eq 3 ] || fail "kiln submit --wait exited $rc for a run lost to infrastructure: $(cat "$T/once.out")"
pass "a run that failed only by infrastructure is infra_error, and kiln submit --wait exits 3"
