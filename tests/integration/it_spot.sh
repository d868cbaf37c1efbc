# Spot interruption notices by URL (a metadata endpoint that starts
# answering 200) and by command (that starts exiting 0): the worker drains
# with a deadline, hands back the job it cannot finish as worker_drained,
# and exits 0; the job runs again on another worker.
source "$(dirname "$0")/lib.sh"
start_redis
make_keys
for w in spot1 spot2 steady; do admit_worker $w; done
start_coordinator --heartbeat-ms 200 --lease-ms 3000
# The metadata stand-in; another port if this one was taken meanwhile.
for _ in 1 2 3 4 5; do
    HPORT=$(free_port)
    "$KILN_BIN/kiln-httpstub" "$HPORT" "$T/interrupt" 2>>"$T/httpstub.log" &
    HPID=$!
    for _ in $(seq 1 100); do
        (exec 3<>/dev/tcp/127.0.0.1/$HPORT) 2>/dev/null && break
        kill -0 "$HPID" 2>/dev/null || break
        sleep 0.02
    done
    kill -0 "$HPID" 2>/dev/null && break
done
kill -0 "$HPID" 2>/dev/null || fail "the HTTP stand-in did not start: $(cat "$T/httpstub.log")"
PIDS+=($HPID)
# wait_exit PID NAME: its exit code, or a failure if it does not exit in 20 s.
wait_exit() {
    for _ in $(seq 1 400); do kill -0 "$1" 2>/dev/null || break; sleep 0.05; done
    kill -0 "$1" 2>/dev/null && fail "$2 did not exit after its notice"
    local rc=0
    wait "$1" || rc=$?
    return $rc
}
LEDGER=$T/ledger
cat >"$T/wf.yml" <<YML
name: spot
on: push
jobs:
  long:
    runs-on: [self-hosted, spot]
    steps:
      - run: |
          echo "start \$KILN_WORKER" >> $LEDGER
          sleep 30
YML
check_handed_back() {
    local run=$1 want=$2
    for _ in $(seq 1 100); do
        "$KILN" status "$run" --json >"$T/st.json"
        [ "$(json_get "$T/st.json" '$.jobs[0].attempts[0].state')" = worker_drained ] && return 0
        sleep 0.1
    done
    fail "$want: the job was not handed back as worker_drained: $(cat "$T/st.json")"
}

# 1. URL.
start_worker spot1 --labels spot --spot-notice-url "http://127.0.0.1:$HPORT/latest/meta-data/spot/instance-action" \
    --spot-poll-ms 200 --spot-window-ms 1500 --spot-margin-ms 500
S1=$LAST_PID
wait_workers 1
run=$("$KILN" submit "$T/wf.yml")
for _ in $(seq 1 100); do grep -q '^start spot1' "$LEDGER" 2>/dev/null && break; sleep 0.05; done
grep -q '^start spot1' "$LEDGER" || fail "spot1 did not start the job"
sleep 0.5 # several 404s first
touch "$T/interrupt"
rc=0
wait_exit "$S1" spot1 || rc=$?
[ $rc -eq 0 ] || fail "spot1 exited $rc"
grep -q "answered 200" "$T/spot1.log" || fail "spot1 did not log the notice"
check_handed_back "$run" url
pass "URL notice: spot1 drained, handed the job back, exited 0"
"$KILN" cancel "$run" >/dev/null
rm -f "$T/interrupt"

# 2. Command.
start_worker spot2 --labels spot --spot-notice-command "test -e $T/interrupt2" --spot-poll-ms 200 \
    --spot-window-ms 1500 --spot-margin-ms 500
S2=$LAST_PID
run=$("$KILN" submit "$T/wf.yml")
for _ in $(seq 1 100); do grep -q '^start spot2' "$LEDGER" 2>/dev/null && break; sleep 0.05; done
grep -q '^start spot2' "$LEDGER" || fail "spot2 did not start the job"
touch "$T/interrupt2"
rc=0
wait_exit "$S2" spot2 || rc=$?
[ $rc -eq 0 ] || fail "spot2 exited $rc"
grep -q "notice command .* exited 0" "$T/spot2.log" || fail "spot2 did not log the notice"
check_handed_back "$run" command
# It runs again on a steady worker.
start_worker steady --labels spot
for _ in $(seq 1 100); do grep -q '^start steady' "$LEDGER" 2>/dev/null && break; sleep 0.05; done
grep -q '^start steady' "$LEDGER" || fail "the handed-back job did not run again"
pass "command notice: spot2 drained, handed the job back, exited 0; it ran again on steady"
"$KILN" cancel "$run" >/dev/null
