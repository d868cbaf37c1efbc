# Redis paused (SIGSTOP) never freezes the coordinator: every call to it is
# bounded, an unanswered call is an outage (logged, reconciled when Redis is
# back), and requests that need only the history (history, status, logs)
# are answered throughout. Once Redis is back the run finishes.
source "$(dirname "$0")/lib.sh"
start_farm 1
cat >"$T/wf.yml" <<'YML'
name: paused
on: push
jobs:
  first:
    runs-on: self-hosted
    steps: [{run: echo first}]
  second:
    needs: first
    runs-on: self-hosted
    steps: [{run: sleep 1; echo second}]
YML
run=$("$KILN" submit "$T/wf.yml")
for _ in $(seq 1 100); do
    "$KILN" status "$run" --json >"$T/st.json" && [ "$(json_get "$T/st.json" '$.jobs[0].state')" = success ] && break
    sleep 0.05
done
kill -STOP "$REDIS_PID"
test_cleanup() { kill -CONT "$REDIS_PID" 2>/dev/null || true; }
worst=0
for i in $(seq 1 8); do
    for cmd in "history --limit 5" "status $run" "logs $run"; do
        t0=$(date +%s%3N)
        KILN_REQUEST_TIMEOUT_MS=5000 "$KILN" $cmd >/dev/null 2>"$T/err" || fail "kiln $cmd failed with Redis paused: $(cat "$T/err")"
        dt=$(($(date +%s%3N) - t0))
        [ $dt -gt $worst ] && worst=$dt
    done
    sleep 0.5
done
[ $worst -lt 2000 ] || fail "a request took $worst ms with Redis paused"
grep -Eq "Redis.*(unreachable|timed out|Resource temporarily unavailable|connection lost)" "$T/coordinator.log" ||
    fail "no log line says Redis stopped answering: $(grep -i redis "$T/coordinator.log" | tail -n 3)"
pass "Redis paused for 6 s: history, status and logs answered in at most $worst ms; the outage was logged"
kill -CONT "$REDIS_PID"
for _ in $(seq 1 200); do
    "$KILN" status "$run" --json >"$T/st.json" && [ "$(json_get "$T/st.json" '$.state')" != running ] && break
    sleep 0.1
done
[ "$(json_get "$T/st.json" '$.state')" = success ] || fail "the run did not finish after Redis came back: $(cat "$T/st.json")"
pass "Redis back: reconciled, and the run finished"
