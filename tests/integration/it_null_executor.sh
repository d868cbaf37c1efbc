# The null executor (a worker for benchmarks): jobs assigned to a worker
# started with `--executor null`, or with `executor = null` in its config
# file, succeed through the whole protocol (steps started and finished with
# exit code 0, job results acknowledged, the DAG moving on) without anything
# being run; the worker warns about it at start-up. A normal worker on the
# same farm still runs its steps, and an unknown executor is refused.
source "$(dirname "$0")/lib.sh"
start_redis
make_keys
for w in nullflag nullcfg real; do admit_worker $w; done
start_coordinator
start_worker nullflag --labels nullflag --executor null
printf 'executor = null\nlabels = nullcfg\n' >"$T/nullcfg.conf"
start_worker nullcfg --config "$T/nullcfg.conf"
start_worker real --labels real
wait_workers 3

# workflow LABEL: two jobs, b after a, whose steps would leave markers.
workflow() {
    mkdir -p "$T/marks-$1"
    cat >"$T/$1.yml" <<YML
name: null-$1
on: push
jobs:
  a:
    runs-on: [self-hosted, $1]
    steps:
      - run: touch $T/marks-$1/a.1
      - run: touch $T/marks-$1/a.2
  b:
    needs: a
    runs-on: [self-hosted, $1]
    steps:
      - run: touch $T/marks-$1/b.1
YML
}

for label in nullflag nullcfg; do
    workflow $label
    "$KILN" submit --wait "$T/$label.yml" >"$T/out-$label.txt" 2>&1 ||
        fail "$label: run failed: $(cat "$T/out-$label.txt")"
    run=$(sqlite3 "$T/history.db" "select id from runs where name = 'null-$label'")
    [ "$(sqlite3 "$T/history.db" "select state from runs where id = $run")" = success ] ||
        fail "$label: run $run is not success"
    [ -z "$(ls -A "$T/marks-$label")" ] || fail "$label: steps ran: $(ls "$T/marks-$label")"
    steps=$(sqlite3 "$T/history.db" "select job_id || idx || ':' || s.state || ':' || s.exit_code || ':' || a.worker
        from steps s join attempts a using (run_id, job_id, attempt) where run_id = $run order by job_id, idx" | tr '\n' ' ')
    [ "$steps" = "a0:success:0:$label a1:success:0:$label b0:success:0:$label " ] ||
        fail "$label: steps recorded as '$steps'"
    [ "$(sqlite3 "$T/history.db" "select count(*) from jobs where run_id = $run and state = 'success'")" = 2 ] ||
        fail "$label: both jobs should be success"
    pass "$label: 2 jobs, 3 steps reported successful with exit code 0, nothing run"
done
[ -z "$(ls -A "$T/work/nullflag" 2>/dev/null)" ] || fail "the null worker made workspaces: $(ls "$T/work/nullflag")"
pass "no workspace was created"
for w in nullflag nullcfg; do
    grep -q "NULL EXECUTOR" "$T/$w.log" || fail "$w did not warn at start-up: $(cat "$T/$w.log")"
done
grep -q "NULL EXECUTOR" "$T/real.log" && fail "the normal worker warned about a null executor"
pass "both null workers warned at start-up"

workflow real
"$KILN" submit --wait "$T/real.yml" >"$T/out-real.txt" 2>&1 || fail "real: run failed: $(cat "$T/out-real.txt")"
for m in a.1 a.2 b.1; do [ -e "$T/marks-real/$m" ] || fail "the normal worker did not run the step making $m"; done
pass "a normal worker on the same farm still runs steps"

rc=0
"$KILN_BIN/kiln-worker" --coordinator "$ENDPOINT" --server-key "$T/keys/server.pub" \
    --key "$T/keys/real.key" --work-dir "$T/work/bogus" --executor bogus >"$T/bogus.log" 2>&1 || rc=$?
[ $rc -eq 2 ] || fail "--executor bogus exited $rc, want 2"
grep -q "unknown executor 'bogus'" "$T/bogus.log" || fail "no message for --executor bogus: $(cat "$T/bogus.log")"
pass "an unknown executor is refused (exit 2)"
