# Clients ride out a coordinator restart. kiln submit --wait and kiln logs
# -f follow a run while the coordinator is killed (SIGKILL) and started
# again: both finish with the run (submit --wait with its exit code), also
# when the run ended while the coordinator was down. With the coordinator
# gone for good they give up after KILN_FOLLOW_GIVE_UP_MS with exit 3.
source "$(dirname "$0")/lib.sh"
start_redis
make_keys
admit_worker w1
start_coordinator --heartbeat-ms 200 --lease-ms 5000
start_worker w1 --heartbeat-ms 200
wait_workers 1
LEDGER=$T/ledger
cat >"$T/wf.yml" <<YML
name: ride
on: push
jobs:
  slow:
    runs-on: self-hosted
    steps:
      - run: |
          echo "start" >> $LEDGER
          sleep 2
          echo "slow done"
YML
follow_case() { # DOWN_S: how long the coordinator stays down
    rm -f "$LEDGER"
    KILN_REQUEST_TIMEOUT_MS=15000 "$KILN" submit --wait "$T/wf.yml" >"$T/wait.out" 2>&1 &
    local waiter=$!
    PIDS+=($waiter)
    for _ in $(seq 1 200); do grep -q start "$LEDGER" 2>/dev/null && break; sleep 0.05; done
    local run
    run=$(sqlite3 "$T/history.db" "select max(id) from runs")
    timeout 60 "$KILN" logs "$run" -f >"$T/logs.out" 2>&1 &
    local follower=$!
    PIDS+=($follower)
    sleep 0.3
    kill -9 "$COORD_PID"
    wait "$COORD_PID" 2>/dev/null || true
    sleep "$1"
    start_coordinator --heartbeat-ms 200 --lease-ms 5000
    local rc=0
    wait "$waiter" || rc=$?
    [ $rc -eq 0 ] || fail "submit --wait exited $rc across a restart ($1 s down): $(tail -n 5 "$T/wait.out")"
    grep -q "run $run success" "$T/wait.out" || fail "submit --wait did not report the run's end: $(tail -n 5 "$T/wait.out")"
    rc=0
    wait "$follower" || rc=$?
    [ $rc -eq 0 ] || fail "logs -f exited $rc across a restart: $(tail -n 5 "$T/logs.out")"
}
follow_case 0.5
pass "submit --wait and logs -f followed a run across a coordinator restart and ended with it"
follow_case 3
pass "... also when the run ended while the coordinator was down"

run=$("$KILN" submit "$T/wf.yml")
KILN_FOLLOW_GIVE_UP_MS=4000 KILN_REQUEST_TIMEOUT_MS=2000 "$KILN" logs "$run" -f >"$T/gone.out" 2>&1 &
follower=$!
PIDS+=($follower)
sleep 0.3
kill -9 "$COORD_PID"
wait "$COORD_PID" 2>/dev/null || true
t0=$SECONDS
rc=0
timeout 30 bash -c "while kill -0 $follower 2>/dev/null; do sleep 0.1; done" || true
wait "$follower" || rc=$?
[ $rc -eq 3 ] || fail "a follower of a coordinator gone for good exited $rc: $(cat "$T/gone.out")"
grep -q "has not answered for" "$T/gone.out" || fail "no reason given: $(cat "$T/gone.out")"
pass "with the coordinator gone for good, logs -f gave up after $((SECONDS - t0)) s with exit 3, saying why"
