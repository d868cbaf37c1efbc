# The disk that holds history fills up mid-run, on a real tmpfs. Before, a
# run submitted while full was told "accepted" and then did not exist, a
# finished run stayed "running" for good, nothing repaired itself when space
# came back, and a succeeded job ran again after a restart. Now: the
# coordinator says so (log, kiln stats), refuses new runs naming the path
# and the cause, keeps what it accepted (its writes wait, acknowledgements
# are held so workers keep their results), and once there is room every run
# completes, each job ran once, and run numbers are never handed out twice.
#
# Then a worker whose own disk is full: the step cannot start, which is an
# infrastructure error; the job runs on the other worker and succeeds.
source "$(dirname "$0")/lib.sh"
export COORD_LOG_LEVEL=info
[ "$(id -u)" = 0 ] || skip "mounting a tmpfs needs root"
mkdir -p "$T/disk" "$T/wdisk"
mount -t tmpfs -o size=3m,mode=0700 kiln-it-disk "$T/disk" || skip "cannot mount a tmpfs here"
MOUNTS=("$T/disk")
test_cleanup() {
    for m in "${MOUNTS[@]}"; do umount -l "$m" 2>/dev/null || true; done
}
DB=$T/disk/history.db

cat >"$T/long.yml" <<EOF
name: long
on: push
jobs:
  a:
    runs-on: self-hosted
    steps:
      - run: |
          echo started >>"$T/ran.a"
          while [ ! -e "$T/go" ]; do sleep 0.1; done
          for i in \$(seq 1 6000); do echo "line \$i of the long output, padded to make it longer than it needs to be"; done
          echo "last line of a"
  b:
    needs: a
    runs-on: self-hosted
    steps:
      - run: echo once >>"$T/ran.b"
EOF
printf 'name: small\non: push\njobs:\n  s:\n    runs-on: self-hosted\n    steps: [{run: "echo small"}]\n' >"$T/small.yml"

start_redis
make_keys
admit_worker w1
start_coordinator --db "$DB"
start_worker w1
wait_workers 1

"$KILN" submit "$T/long.yml" >"$T/submit1.out" 2>&1 || fail "the first run was refused: $(cat "$T/submit1.out")"
for _ in $(seq 1 200); do [ -s "$T/ran.a" ] && break; sleep 0.05; done
[ -s "$T/ran.a" ] || fail "job a did not start"

# Fill the disk, then let job a write its output: history cannot take it.
dd if=/dev/zero of="$T/disk/fill" bs=64k 2>/dev/null || true
touch "$T/go"
down=""
for _ in $(seq 1 200); do
    "$KILN" stats --json >"$T/stats.json" 2>/dev/null || true
    [ "$(json_get "$T/stats.json" '$.history.writable')" = 0 ] && { down=1; break; }
    sleep 0.05
done
[ -n "$down" ] || fail "the coordinator never noticed the full disk: $(cat "$T/stats.json")"
err=$(json_get "$T/stats.json" '$.history.error')
case "$err" in *"$DB"*full*) ;; *) fail "kiln stats does not say which file and why: $err" ;; esac
grep -q "cannot write $DB: database or disk is full" "$T/coordinator.log" ||
    fail "the coordinator did not log the full disk"

# A submission now is refused, naming the path and the cause; exit 3.
set +e
"$KILN" submit "$T/small.yml" >"$T/refused.out" 2>&1
rc=$?
set -e
[ $rc = 3 ] || fail "a submission while the disk is full exited $rc: $(cat "$T/refused.out")"
grep -q "not accepted" "$T/refused.out" && grep -q "$DB" "$T/refused.out" &&
    grep -q "full" "$T/refused.out" || fail "the refusal does not say why: $(cat "$T/refused.out")"
"$KILN" status 1 --json >/dev/null 2>&1 || fail "status is not answered while the disk is full"

# Space comes back: everything completes by itself.
rm -f "$T/disk/fill"
state=""
for _ in $(seq 1 400); do
    state=$(sqlite3 -cmd '.timeout 2000' "$DB" "select state from runs where id = 1" 2>/dev/null || true)
    [ "$state" = success ] && break
    sleep 0.05
done
[ "$state" = success ] || fail "run 1 did not complete once there was room (state '$state')"
[ "$(wc -l <"$T/ran.a")" = 1 ] || fail "job a ran $(wc -l <"$T/ran.a") times"
[ "$(wc -l <"$T/ran.b")" = 1 ] || fail "job b ran $(wc -l <"$T/ran.b") times"
"$KILN" logs 1 --raw >"$T/logs1.out" 2>&1 || fail "kiln logs 1 failed"
grep -q "last line of a" "$T/logs1.out" || grep -q "bytes of output lost here: the history disk was full" "$T/logs1.out" ||
    fail "the output of job a is gone without a marker"
grep -q "has room again" "$T/coordinator.log" || fail "the recovery was not logged"
"$KILN" stats --json >"$T/stats.json"
[ "$(json_get "$T/stats.json" '$.history.writable')" = 1 ] || fail "stats still say unwritable"
[ "$(json_get "$T/stats.json" '$.history.failures')" -ge 1 ] || fail "stats lost the failure count"

# The refused submission took no number; the next run is 2.
"$KILN" submit --wait "$T/small.yml" >"$T/submit2.out" 2>&1 || fail "a run after the disk recovered failed: $(cat "$T/submit2.out")"
[ "$(sqlite3 "$DB" "select group_concat(id) from runs")" = "1,2" ] ||
    fail "run numbers: $(sqlite3 "$DB" "select group_concat(id) from runs")"

# After a restart nothing that succeeded runs again.
kill -TERM "$COORD_PID"
wait "$COORD_PID" 2>/dev/null || true
start_coordinator --db "$DB"
wait_workers 1
"$KILN" submit --wait "$T/small.yml" >/dev/null 2>&1 || fail "a run after the restart failed"
[ "$(wc -l <"$T/ran.a")" = 1 ] && [ "$(wc -l <"$T/ran.b")" = 1 ] || fail "a succeeded job ran again after the restart"
pass "history disk full: refused with path and cause, nothing lost, each job ran once, numbers 1,2,3"

# A worker whose disk is full: its step cannot start; the job goes elsewhere.
mount -t tmpfs -o size=1m,mode=0700 kiln-it-wdisk "$T/wdisk" || skip "cannot mount a second tmpfs"
MOUNTS+=("$T/wdisk")
admit_worker w2
kill -HUP "$COORD_PID"
sleep 0.2
start_worker w2 --work-dir "$T/wdisk/w2"
wait_workers 2
dd if=/dev/zero of="$T/wdisk/fill" bs=64k 2>/dev/null || true
{
    printf 'name: wide\non: push\njobs:\n'
    for i in 1 2 3 4 5 6; do printf '  j%d:\n    runs-on: self-hosted\n    steps: [{run: "echo j%d >>%s/wide.ran"}]\n' "$i" "$i" "$T"; done
} >"$T/wide.yml"
"$KILN" submit --wait "$T/wide.yml" >"$T/wide.out" 2>&1 || fail "the run failed: $(tail -n 20 "$T/wide.out")"
[ "$(wc -l <"$T/wide.ran")" = 6 ] || fail "$(wc -l <"$T/wide.ran") of 6 jobs ran"
id=$(sqlite3 "$DB" "select max(id) from runs")
n_infra=$(sqlite3 "$DB" "select count(*) from attempts where run_id = $id and worker = 'w2' and state = 'infra_error'")
[ "$n_infra" -ge 1 ] || fail "no attempt went to the full worker (the test proved nothing)"
[ "$(sqlite3 "$DB" "select count(*) from jobs where run_id = $id and state = 'success' and worker = 'w1'")" = 6 ] ||
    fail "not every job ended on w1: $(sqlite3 "$DB" "select job_id, state, worker from jobs where run_id = $id")"
sqlite3 "$DB" "select message from attempts where run_id = $id and state = 'infra_error'" | grep -q "disk" ||
    fail "the infrastructure error does not say why: $(sqlite3 "$DB" "select message from attempts where run_id = $id")"
pass "worker disk full: $n_infra attempt(s) on w2 were infrastructure errors, all 6 jobs succeeded on w1"
