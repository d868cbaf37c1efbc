# Runner labels as users write them. 28 of 30 real workflows ask for a
# GitHub hosted label other than ubuntu-latest (ubuntu-24.04, ubuntu-22.04),
# and such a job used to wait for ever without a word. GitHub's Ubuntu
# labels now reach any Linux worker (the default alias ubuntu-*=linux), and
# the job's log says so; an operator's --label-alias comes first; macos-*
# and windows-* fail at once, saying why (Kiln's workers are Linux), and a
# job no worker can serve says so; a malformed alias is refused at start-up.
source "$(dirname "$0")/lib.sh"
export COORD_LOG_LEVEL=info
cat >"$T/hosted.yml" <<'EOF'
name: hosted
on: push
jobs:
  noble:
    runs-on: ubuntu-24.04
    steps: [{run: echo on noble}]
  latest:
    runs-on: ubuntu-latest
    steps: [{run: echo on latest}]
  jammy:
    runs-on: [self-hosted, ubuntu-22.04]
    steps: [{run: echo on jammy}]
  matrix:
    strategy:
      matrix:
        os: [ubuntu-22.04, ubuntu-24.04]
    runs-on: ${{ matrix.os }}
    steps: [{run: "echo on ${{ matrix.os }}"}]
EOF
start_redis
make_keys
admit_worker w1
admit_worker mac
# A malformed alias is refused, naming it.
set +e
"$KILN_BIN/kiln-coordinator" --listen tcp://127.0.0.1:1 --redis "$T/redis.sock" --db "$T/bad.db" \
    --key "$T/keys/server.key" --allow "$T/allow" --label-alias 'ubuntu*x=linux' >"$T/bad.out" 2>&1
rc=$?
set -e
[ $rc != 0 ] && grep -q "label alias 'ubuntu\*x=linux': expected PATTERN=LABEL" "$T/bad.out" ||
    fail "a malformed alias was not refused (exit $rc): $(cat "$T/bad.out")"

start_coordinator --label-alias 'ubuntu-20.04=focal'
start_worker w1
wait_workers 1
"$KILN" submit --wait "$T/hosted.yml" >"$T/hosted.out" 2>&1 || fail "the hosted-label run failed: $(cat "$T/hosted.out")"
for j in noble latest jammy; do
    grep -q "==> $j: success" "$T/hosted.out" || fail "$j did not run: $(cat "$T/hosted.out")"
done
[ "$(grep -c '==> matrix.*: success' "$T/hosted.out")" = 2 ] || fail "the matrix did not run: $(cat "$T/hosted.out")"
grep -q "noble | ## runs-on 'ubuntu-24.04': running on w1, labelled 'linux' (label alias ubuntu-\*=linux)" "$T/hosted.out" ||
    fail "the live output does not say where ubuntu-24.04 went: $(cat "$T/hosted.out")"
"$KILN" logs 1 jammy >"$T/jammy.log"
grep -q "runs-on 'ubuntu-22.04': running on w1, labelled 'linux'" "$T/jammy.log" || fail "kiln logs does not say it: $(cat "$T/jammy.log")"
pass "ubuntu-24.04, ubuntu-22.04, ubuntu-latest and a matrix of them ran on a Linux worker, saying so"

# The operator's alias comes first: ubuntu-20.04 goes only to 'focal'
# workers, of which there is none until one comes; macos-14 cannot run on
# a farm of Linux workers, and fails at once saying so.
cat >"$T/other.yml" <<'EOF'
name: other
on: push
jobs:
  focal:
    runs-on: ubuntu-20.04
    steps: [{run: echo focal}]
  mac:
    runs-on: macos-14
    steps: [{run: echo mac}]
EOF
"$KILN" submit --wait "$T/other.yml" >"$T/other.out" 2>&1 &
FOLLOW=$!
PIDS+=($FOLLOW)
for _ in $(seq 1 200); do grep -q "focal: waiting:" "$T/other.out" && break; sleep 0.05; done
grep -q "==> focal: waiting: no connected worker has the labels: ubuntu-20.04 (ubuntu-20.04: workers labelled focal, by the alias ubuntu-20.04=focal)" "$T/other.out" ||
    fail "focal does not say why it waits: $(cat "$T/other.out")"
grep -q "==> mac: failure: job 'mac': runs-on 'macos-14': this farm runs Linux workers only" "$T/other.out" ||
    fail "mac does not say why it cannot run: $(cat "$T/other.out")"
kill -HUP "$COORD_PID"
sleep 0.2
start_worker mac --labels focal
set +e
wait "$FOLLOW"
rc=$?
set -e
[ $rc = 1 ] || fail "the run exited $rc (mac cannot run: 1): $(cat "$T/other.out")"
grep -q "==> focal: success" "$T/other.out" || fail "focal did not run once a focal worker came: $(cat "$T/other.out")"
[ "$(sqlite3 "$T/history.db" "select worker from jobs where run_id = 2 and job_id = 'focal'")" = mac ] ||
    fail "ubuntu-20.04 ran on $(sqlite3 "$T/history.db" "select worker from jobs where run_id = 2 and job_id = 'focal'")"
pass "an operator's alias wins over the default, and its job waits, saying so, for a worker that has it; macos-14 fails at once"
