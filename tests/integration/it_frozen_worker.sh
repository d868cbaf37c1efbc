# A worker that loses its lease stops. A worker frozen (SIGSTOP) in the
# middle of a long step: its guard kills the step before the lease runs out,
# so when the job runs again elsewhere the two copies never run at once.
# Woken (SIGCONT), the worker learns it lost the job and says so, and the
# run succeeds on the other worker.
source "$(dirname "$0")/lib.sh"
start_redis
make_keys
admit_worker w1
admit_worker w2
start_coordinator --heartbeat-ms 200 --lease-ms 1500
start_worker w1 --heartbeat-ms 200
W1=$LAST_PID
wait_workers 1
LEDGER=$T/ledger
cat >"$T/wf.yml" <<YML
name: frozen
on: push
jobs:
  long:
    runs-on: self-hosted
    steps:
      - run: |
          for i in \$(seq 1 30); do
            echo "tick \$KILN_WORKER \$(date +%s%N)" >> $LEDGER
            sleep 0.1
          done
YML
run=$("$KILN" submit "$T/wf.yml")
for _ in $(seq 1 200); do grep -q '^tick w1' "$LEDGER" 2>/dev/null && break; sleep 0.05; done
grep -q '^tick w1' "$LEDGER" || fail "w1 never started the job"
kill -STOP "$W1"
start_worker w2 --heartbeat-ms 200
for _ in $(seq 1 200); do grep -q '^tick w2' "$LEDGER" && break; sleep 0.05; done
grep -q '^tick w2' "$LEDGER" || fail "the job did not run again on w2"
last_w1=$(grep '^tick w1' "$LEDGER" | tail -n 1 | cut -d' ' -f3)
first_w2=$(grep '^tick w2' "$LEDGER" | head -n 1 | cut -d' ' -f3)
[ "$last_w1" -lt "$first_w2" ] ||
    fail "w1's frozen step ran on beside w2's: last w1 tick $last_w1, first w2 tick $first_w2"
sleep 0.3
[ "$(grep '^tick w1' "$LEDGER" | tail -n 1 | cut -d' ' -f3)" = "$last_w1" ] || fail "w1's step is still running": $(awk "{print \$2, \$3}" "$LEDGER" | uniq -c -w 7)
pass "w1 frozen: its step was stopped $(( (first_w2 - last_w1) / 1000000 )) ms before the job ran again on w2"
kill -CONT "$W1"
for _ in $(seq 1 100); do grep -q "no word from the coordinator" "$T/w1.log" && break; sleep 0.05; done
grep -q "no word from the coordinator" "$T/w1.log" || fail "w1 did not say it lost the job: $(tail -n 5 "$T/w1.log")"
for _ in $(seq 1 200); do
    "$KILN" status "$run" --json >"$T/st.json" 2>/dev/null && [ "$(json_get "$T/st.json" '$.state')" != running ] && break
    sleep 0.05
done
[ "$(json_get "$T/st.json" '$.state')" = success ] || fail "run: $(cat "$T/st.json")"
[ "$(json_get "$T/st.json" '$.jobs[0].attempts[1].worker')" = w2 ] || fail "attempt 2 not on w2: $(cat "$T/st.json")"
[ "$(grep '^tick w1' "$LEDGER" | tail -n 1 | cut -d' ' -f3)" = "$last_w1" ] || fail "w1's step ran again after SIGCONT"
pass "woken, w1 said it had lost the job and did not run it on; the run succeeded on w2"
