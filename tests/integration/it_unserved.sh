# A job whose labels no worker has says so, instead of waiting in silence:
# in the live output of a follower, in `kiln status`, and in the log; it
# runs as soon as a worker with those labels connects. `kiln run`, whose
# private farm is all the workers there will be, fails at once with exit 3
# naming the labels, instead of waiting for ever.
source "$(dirname "$0")/lib.sh"
export COORD_LOG_LEVEL=info
cat >"$T/gpu.yml" <<'EOF'
name: gpu
on: push
jobs:
  build:
    runs-on: self-hosted
    steps: [{run: echo built}]
  train:
    needs: build
    runs-on: [self-hosted, gpu]
    steps: [{run: echo trained}]
EOF
start_farm 1
"$KILN" submit --wait "$T/gpu.yml" >"$T/follow.out" 2>&1 &
FOLLOW=$!
PIDS+=($FOLLOW)
for _ in $(seq 1 200); do grep -q "train: waiting" "$T/follow.out" && break; sleep 0.05; done
grep -q "==> train: waiting: no connected worker has the labels: self-hosted, gpu" "$T/follow.out" ||
    fail "the live output does not say why train waits: $(cat "$T/follow.out")"
"$KILN" status 1 >"$T/status.out" || fail "kiln status failed"
grep -q "waiting: no connected worker has the labels: self-hosted, gpu" "$T/status.out" ||
    fail "kiln status does not say why train waits: $(cat "$T/status.out")"
"$KILN" status 1 --json >"$T/status.json"
[ "$(json_get "$T/status.json" '$.jobs[1].waiting')" = "no connected worker has the labels: self-hosted, gpu" ] ||
    fail "status --json: $(cat "$T/status.json")"
grep -q "job 1/train waits: no connected worker has the labels: self-hosted, gpu" "$T/coordinator.log" ||
    fail "the coordinator did not log it"
# A worker with the label arrives: the job runs, and no longer says it waits.
admit_worker w2
kill -HUP "$COORD_PID"
sleep 0.2
start_worker w2 --labels gpu
wait "$FOLLOW" || fail "the run failed once a gpu worker came: $(cat "$T/follow.out")"
grep -q "==> train: success" "$T/follow.out" || fail "train did not run: $(cat "$T/follow.out")"
"$KILN" status 1 --json >"$T/status.json"
[ "$(json_get "$T/status.json" '$.jobs[1].waiting')" = "" ] || fail "a finished job still says it waits"
pass "a job no worker serves says why (live, status, log) and runs once one connects"

# kiln run: its own farm cannot serve the labels; it says so and exits 3.
cd "$T"
set +e
timeout 60 "$KILN" run --workers 2 "$T/gpu.yml" >"$T/run.out" 2>&1
rc=$?
set -e
[ $rc = 3 ] || fail "kiln run exited $rc: $(cat "$T/run.out")"
grep -q "job 'train' cannot run on this farm: no connected worker has the labels: self-hosted, gpu; none of its 2 workers" "$T/run.out" ||
    fail "kiln run does not name the labels: $(cat "$T/run.out")"
grep -q "==> build: success" "$T/run.out" || fail "the job it could run did not run: $(cat "$T/run.out")"
# With the label given to its workers, the same run succeeds.
timeout 60 "$KILN" run --workers 1 --labels gpu "$T/gpu.yml" >"$T/run2.out" 2>&1 ||
    fail "kiln run --labels gpu failed: $(cat "$T/run2.out")"
pass "kiln run fails fast (exit 3) naming the labels its farm lacks"
