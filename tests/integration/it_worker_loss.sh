# A busy worker is killed with SIGKILL: its job runs again on another worker
# within seconds, the lost attempt is recorded as worker_lost (not a build
# failure), and the killed worker's step does not go on running.
source "$(dirname "$0")/lib.sh"
start_redis
make_keys
admit_worker w1
admit_worker w2
start_coordinator --heartbeat-ms 200 --lease-ms 1500
start_worker w1
W1=$LAST_PID
start_worker w2
W2=$LAST_PID
wait_workers 2
LEDGER=$T/ledger
cat >"$T/slow.yml" <<YML
name: loss
on: push
jobs:
  slow:
    runs-on: self-hosted
    steps:
      - run: |
          echo "start \$KILN_RUN_ID slow \$KILN_ATTEMPT \$KILN_WORKER \$(date +%s%N)" >> $LEDGER
          sleep 3
          echo "done \$KILN_RUN_ID slow \$KILN_ATTEMPT \$KILN_WORKER" >> $LEDGER
YML
run=$("$KILN" submit "$T/slow.yml")
for _ in $(seq 1 200); do grep -q '^start' "$LEDGER" 2>/dev/null && break; sleep 0.05; done
first=$(awk '/^start/ {print $5; exit}' "$LEDGER")
[ -n "$first" ] || fail "the job never started"
victim=$W1
[ "$first" = w2 ] && victim=$W2
kill_ns=$(date +%s%N)
kill -9 "$victim"
wait "$victim" 2>/dev/null || true
pass "killed $first (pid $victim) while it ran the job"
for _ in $(seq 1 300); do [ "$(grep -c '^start' "$LEDGER")" -ge 2 ] && break; sleep 0.05; done
[ "$(grep -c '^start' "$LEDGER")" -ge 2 ] || fail "the job was not re-dispatched"
second=$(awk '/^start/ {n++; if (n == 2) {print $5, $6}}' "$LEDGER")
delay_ms=$(( (${second#* } - kill_ns) / 1000000 ))
[ "${second% *}" != "$first" ] || fail "re-dispatched to the dead worker"
pass "re-dispatched to ${second% *} ${delay_ms} ms after the kill (lease 1500 ms)"
for _ in $(seq 1 200); do
    "$KILN" status "$run" --json >"$T/st.json"
    [ "$(json_get "$T/st.json" '$.state')" != running ] && break
    sleep 0.1
done
[ "$(json_get "$T/st.json" '$.state')" = success ] || fail "run not successful: $(cat "$T/st.json")"
[ "$(json_get "$T/st.json" '$.jobs[0].attempts[0].state')" = worker_lost ] ||
    fail "attempt 1 not recorded as worker_lost: $(cat "$T/st.json")"
[ "$(json_get "$T/st.json" '$.jobs[0].attempts[1].state')" = success ] || fail "attempt 2 not success"
[ "$(json_get "$T/st.json" '$.jobs[0].attempts[0].worker')" = "$first" ] || fail "attempt 1 worker wrong"
pass "attempts recorded: worker_lost on $first, then success"
sleep 3.5
[ "$(grep -c '^done' "$LEDGER")" -eq 1 ] || fail "the job completed $(grep -c '^done' "$LEDGER") times: $(cat "$LEDGER")"
pass "the killed worker's step did not finish behind the new attempt"
"$KILN" stats --json >"$T/stats.json"
[ "$(json_get "$T/stats.json" '$.retries.worker_lost')" -ge 1 ] || fail "no worker_lost retry counted"
[ "$(json_get "$T/stats.json" '$.lease_expiries')" -ge 1 ] || fail "no lease expiry counted"
pass "stats count the retry and the lease expiry"
