# A graceful stop costs a job nothing. A job of max-attempts 1 is handed
# back twice by workers stopped with SIGTERM (a short drain grace): each
# time it goes to another worker, never back to the one leaving, and the
# hand-backs are not counted against its attempts, so it succeeds on the
# third worker.
source "$(dirname "$0")/lib.sh"
start_redis
make_keys
for w in w1 w2 w3; do admit_worker $w; done
start_coordinator --heartbeat-ms 200 --lease-ms 3000
LEDGER=$T/ledger
cat >"$T/wf.yml" <<YML
name: graceful
on: push
jobs:
  deploy:
    runs-on: self-hosted
    kiln:
      max-attempts: 1
    steps:
      - run: |
          echo "start \$KILN_WORKER \$KILN_ATTEMPT" >> $LEDGER
          sleep 2
          echo "done \$KILN_WORKER \$KILN_ATTEMPT" >> $LEDGER
YML
start_worker w1 --drain-grace-ms 300
W1=$LAST_PID
wait_workers 1
run=$("$KILN" submit "$T/wf.yml")
for _ in $(seq 1 200); do grep -q '^start w1' "$LEDGER" 2>/dev/null && break; sleep 0.05; done
grep -q '^start w1' "$LEDGER" || fail "w1 never started the job"
start_worker w2 --drain-grace-ms 300
W2=$LAST_PID
wait_workers 2
kill -TERM "$W1"
for _ in $(seq 1 200); do grep -q '^start w2' "$LEDGER" && break; sleep 0.05; done
grep -q '^start w2' "$LEDGER" || fail "the handed-back job did not go to w2: $(cat "$LEDGER")"
start_worker w3
wait "$W1" 2>/dev/null || true
kill -TERM "$W2"
for _ in $(seq 1 200); do
    "$KILN" status "$run" --json >"$T/st.json" 2>/dev/null && [ "$(json_get "$T/st.json" '$.state')" != running ] && break
    sleep 0.05
done
[ "$(json_get "$T/st.json" '$.state')" = success ] || fail "run: $(cat "$T/st.json")"
[ "$(grep -c '^start w1' "$LEDGER")" = 1 ] || fail "the job went back to w1 after it handed it back: $(cat "$LEDGER")"
[ "$(grep -c '^start w2' "$LEDGER")" = 1 ] || fail "the job went back to w2 after it handed it back: $(cat "$LEDGER")"
grep -q '^done w3 3' "$LEDGER" || fail "attempt 3 did not finish on w3: $(cat "$LEDGER")"
for i in 0 1; do
    [ "$(json_get "$T/st.json" "\$.jobs[0].attempts[$i].state")" = worker_drained ] ||
        fail "attempt $((i + 1)) is not worker_drained: $(cat "$T/st.json")"
done
pass "two graceful stops handed a max-attempts 1 job back, each to another worker; it succeeded on attempt 3"
