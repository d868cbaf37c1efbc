# coordinator_crash.sh: a 50-job pipeline (10 waves of 5) during which the
# coordinator is killed with SIGKILL at a random moment and restarted, TRIALS
# times. Every run must complete; a job may complete twice only when a worker
# really ran it twice, and then both attempts are in the history; the
# database passes its integrity check after every trial.
source "$(dirname "$0")/../integration/lib.sh"
TRIALS=${TRIALS:-10}
RESULTS=${RESULTS:-$T/results}
start_redis
make_keys
for i in 1 2 3 4; do admit_worker "w$i"; done
start_coordinator --heartbeat-ms 200 --lease-ms 2000
for i in 1 2 3 4; do start_worker "w$i"; done
wait_workers 4
LEDGER=$T/ledger
: >"$LEDGER"
RANDOM=7
{
    printf 'name: waves\non: push\njobs:\n'
    for wave in $(seq 0 9); do
        for k in $(seq 1 5); do
            printf '  j%d_%d:\n    runs-on: self-hosted\n' "$wave" "$k"
            if [ "$wave" -gt 0 ]; then
                printf '    needs: [%s]\n' "$(for p in 1 2 3 4 5; do printf 'j%d_%d,' $((wave - 1)) "$p"; done | sed 's/,$//')"
            fi
            printf '    steps:\n      - run: |\n          sleep 0.%d\n' $((1 + RANDOM % 4))
            printf '          echo "done $KILN_RUN_ID j%d_%d $KILN_ATTEMPT $KILN_WORKER" >> %s\n' "$wave" "$k" "$LEDGER"
        done
    done
} >"$T/waves.yml"
completed=0 twice_real=0 unexplained=0 bad_db=0
for trial in $(seq 1 "$TRIALS"); do
    run=$("$KILN" submit "$T/waves.yml")
    sleep "0.$((2 + RANDOM % 8))$((RANDOM % 10))"
    kill -9 "$COORD_PID"
    wait "$COORD_PID" 2>/dev/null || true
    start_coordinator --heartbeat-ms 200 --lease-ms 2000
    for _ in $(seq 1 600); do
        "$KILN" status "$run" --json >"$T/st.json" 2>/dev/null &&
            [ "$(json_get "$T/st.json" '$.state')" != running ] && break
        sleep 0.1
    done
    [ "$(json_get "$T/st.json" '$.state')" = success ] && completed=$((completed + 1))
    for job in $(sqlite3 "$T/history.db" "select job_id from jobs where run_id=$run"); do
        dones=$(grep -c "^done $run $job " "$LEDGER" || true)
        attempts=$(sqlite3 "$T/history.db" "select count(*) from attempts where run_id=$run and job_id='$job'")
        if [ "$dones" -gt 1 ]; then
            if [ "$attempts" -ge "$dones" ]; then twice_real=$((twice_real + 1)); else unexplained=$((unexplained + 1)); fi
        fi
    done
    [ "$(sqlite3 "$T/history.db" 'PRAGMA integrity_check')" = ok ] || bad_db=$((bad_db + 1))
done
{
    echo "trials $TRIALS"
    echo "runs_completed $completed"
    echo "jobs_completed_twice_both_recorded $twice_real"
    echo "jobs_completed_twice_unrecorded $unexplained"
    echo "integrity_failures $bad_db"
} | tee "$RESULTS"
[ "$completed" -eq "$TRIALS" ] || fail "$((TRIALS - completed)) runs did not complete"
[ "$unexplained" -eq 0 ] || fail "$unexplained jobs completed twice without both attempts recorded"
[ "$bad_db" -eq 0 ] || fail "integrity check failed"
pass "$TRIALS coordinator kills: every run completed, history intact"
