# Draining: SIGTERM lets a busy worker finish its job, take no new one and
# exit 0; a drain with a deadline (kiln worker drain, or a spot interruption
# notice) hands back what cannot finish in time as worker_drained, and the
# job runs again elsewhere.
source "$(dirname "$0")/lib.sh"
start_redis
make_keys
for w in w1 w2 w3 w4; do admit_worker $w; done
start_coordinator --heartbeat-ms 200 --lease-ms 3000
start_worker w1
W1=$LAST_PID
wait_workers 1
LEDGER=$T/ledger

# 1. SIGTERM: the running job finishes on w1; later jobs go elsewhere.
cat >"$T/a.yml" <<YML
name: drain
on: push
jobs:
  busy:
    runs-on: self-hosted
    steps:
      - run: |
          echo "start busy \$KILN_WORKER" >> $LEDGER
          sleep 1.5
          echo "done busy \$KILN_WORKER" >> $LEDGER
  after:
    needs: busy
    runs-on: self-hosted
    steps:
      - run: echo "done after \$KILN_WORKER" >> $LEDGER
YML
run=$("$KILN" submit "$T/a.yml")
for _ in $(seq 1 200); do grep -q '^start busy' "$LEDGER" 2>/dev/null && break; sleep 0.05; done
kill -TERM "$W1"
start_worker w2
W2=$LAST_PID
rc=0
wait "$W1" || rc=$?
[ $rc -eq 0 ] || fail "draining worker exited $rc"
grep -q '^done busy w1' "$LEDGER" || fail "busy did not finish on w1: $(cat "$LEDGER")"
pass "SIGTERM: w1 finished its job and exited 0"
for _ in $(seq 1 200); do grep -q '^done after' "$LEDGER" 2>/dev/null && break; sleep 0.05; done
grep -q '^done after w2' "$LEDGER" || fail "the next job did not go to w2: $(cat "$LEDGER")"
"$KILN" status "$run" --json >"$T/st.json"
[ "$(json_get "$T/st.json" '$.state')" = success ] || fail "run 1 not success"
pass "no new job went to the draining worker"

# 2. kill worker drain with a deadline: the job is handed back in time.
cat >"$T/b.yml" <<YML
name: drain-deadline
on: push
jobs:
  long:
    runs-on: self-hosted
    steps:
      - run: |
          echo "start long \$KILN_WORKER \$KILN_ATTEMPT" >> $LEDGER
          sleep 4
          echo "done long \$KILN_WORKER \$KILN_ATTEMPT" >> $LEDGER
YML
run=$("$KILN" submit "$T/b.yml")
for _ in $(seq 1 200); do grep -q '^start long w2' "$LEDGER" 2>/dev/null && break; sleep 0.05; done
"$KILN" worker drain w2 --deadline 1 >/dev/null || fail "kiln worker drain failed"
start_worker w3
rc=0
wait "$W2" || rc=$?
[ $rc -eq 0 ] || fail "w2 exited $rc after its drain"
for _ in $(seq 1 200); do
    "$KILN" status "$run" --json >"$T/st.json"
    [ "$(json_get "$T/st.json" '$.state')" != running ] && break
    sleep 0.1
done
[ "$(json_get "$T/st.json" '$.state')" = success ] || fail "run 2 not success: $(cat "$T/st.json")"
[ "$(json_get "$T/st.json" '$.jobs[0].attempts[0].state')" = worker_drained ] ||
    fail "attempt 1 not worker_drained: $(cat "$T/st.json")"
[ "$(json_get "$T/st.json" '$.jobs[0].attempts[1].worker')" = w3 ] || fail "attempt 2 not on w3"
grep -q '^done long w2' "$LEDGER" && fail "w2 finished the job it handed back"
pass "drain deadline: the job was handed back (worker_drained) and ran on w3"

# 3. A spot interruption notice file drains with a deadline.
# A worker refuses a --spot-notice-file whose directory is missing, naming it.
start_worker w4 --spot-notice-file "$T/nodir/notice"
rc=0
wait "$LAST_PID" || rc=$?
[ $rc -ne 0 ] || fail "w4 started with a notice file in a missing directory"
grep -q "cannot watch $T/nodir" "$T/w4.log" || fail "w4 did not name the missing directory"
: >"$T/w4.log"
mkdir -p "$T/spot"
start_worker w4 --spot-notice-file "$T/spot/notice" --spot-window-ms 1500 --spot-margin-ms 500
W4=$LAST_PID
"$KILN" worker drain w3 >/dev/null # leave w4 as the only worker taking jobs
wait_workers 1
run=$("$KILN" submit "$T/b.yml")
for _ in $(seq 1 200); do grep -q '^start long w4' "$LEDGER" 2>/dev/null && break; sleep 0.05; done
grep -q '^start long w4' "$LEDGER" || fail "w4 never took the job"
touch "$T/spot/notice"
rc=0
wait "$W4" || rc=$?
[ $rc -eq 0 ] || fail "w4 exited $rc after the notice"
grep -q "notice file .* appeared" "$T/w4.log" || fail "w4 did not log the notice"
"$KILN" status "$run" --json >"$T/st.json"
[ "$(json_get "$T/st.json" '$.jobs[0].attempts[0].state')" = worker_drained ] ||
    fail "spot: attempt not worker_drained: $(cat "$T/st.json")"
pass "spot notice file: w4 drained, handed the job back and exited 0"
