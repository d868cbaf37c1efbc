# drain_half.sh: 40 jobs of 1-2 s on 4 workers; after 2 s half of the busy
# workers get SIGTERM. Their running jobs finish on them, they take no new
# job after the signal, they exit 0, and no job is lost.
source "$(dirname "$0")/../integration/lib.sh"
RESULTS=${RESULTS:-$T/results}
start_redis
make_keys
for i in 1 2 3 4; do admit_worker "w$i"; done
start_coordinator --heartbeat-ms 200 --lease-ms 2000
declare -A WPID
for i in 1 2 3 4; do start_worker "w$i"; WPID[w$i]=$LAST_PID; done
wait_workers 4
LEDGER=$T/ledger
: >"$LEDGER"
RANDOM=3
{
    printf 'name: drain\non: push\njobs:\n'
    for j in $(seq 1 40); do
        printf '  j%d:\n    runs-on: self-hosted\n    steps:\n      - run: |\n' "$j"
        printf '          echo "start j%d $KILN_WORKER $(date +%%s%%N)" >> %s\n' "$j" "$LEDGER"
        printf '          sleep 1.%d\n' $((RANDOM % 10))
        printf '          echo "done j%d $KILN_WORKER $(date +%%s%%N)" >> %s\n' "$j" "$LEDGER"
    done
} >"$T/drain.yml"
run=$("$KILN" submit "$T/drain.yml")
sleep 2
drained=()
for w in w1 w2 w3 w4; do
    [ ${#drained[@]} -ge 2 ] && break
    drained+=("$w")
done
declare -A SIGNALLED
for w in "${drained[@]}"; do
    SIGNALLED[$w]=$(date +%s%N)
    kill -TERM "${WPID[$w]}"
done
exits_ok=0
for w in "${drained[@]}"; do
    rc=0
    wait "${WPID[$w]}" || rc=$?
    [ $rc -eq 0 ] && exits_ok=$((exits_ok + 1))
done
for _ in $(seq 1 600); do
    "$KILN" status "$run" --json >"$T/st.json" && [ "$(json_get "$T/st.json" '$.state')" != running ] && break
    sleep 0.1
done
succeeded=$(sqlite3 "$T/history.db" "select count(*) from jobs where run_id=$run and state='success'")
late=0
for w in "${drained[@]}"; do
    late=$((late + $(awk -v w="$w" -v t="${SIGNALLED[$w]}" '$1 == "start" && $3 == w && $4 > t + 100000000' "$LEDGER" | wc -l)))
done
unfinished=$(awk '$1 == "start" {s[$2 " " $3]++} $1 == "done" {d[$2 " " $3]++} END {n=0; for (k in s) if (!(k in d)) n++; print n}' "$LEDGER")
{
    echo "jobs 40"
    echo "workers_drained ${#drained[@]}"
    echo "drained_exit_0 $exits_ok"
    echo "succeeded $succeeded"
    echo "lost $((40 - succeeded))"
    echo "jobs_started_on_draining_workers $late"
    echo "running_jobs_cut_short $unfinished"
} | tee "$RESULTS"
[ "$succeeded" -eq 40 ] || fail "$((40 - succeeded)) jobs lost"
[ "$late" -eq 0 ] || fail "$late jobs went to a draining worker"
[ "$exits_ok" -eq ${#drained[@]} ] || fail "a drained worker did not exit 0"
[ "$unfinished" -eq 0 ] || fail "$unfinished running jobs were cut short"
pass "drain: running jobs finished, no new job to draining workers, none lost"
