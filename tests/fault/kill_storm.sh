# kill_storm.sh: many short jobs on a few workers while a random busy worker
# is killed with SIGKILL every KILL_EVERY seconds and replaced. Every job
# appends (run, job, attempt, worker) to a ledger outside Kiln, so loss and
# duplicates are counted by something Kiln does not control.
#
# Environment: JOBS (200) WORKERS (4) MIN_MS (200) MAX_MS (2000)
# KILL_EVERY (1 s) LEASE_MS (2000) HB_MS (250) RESULTS (file for "key value"
# lines). Exit 0 when no job was lost.
source "$(dirname "$0")/../integration/lib.sh"
JOBS=${JOBS:-200} WORKERS=${WORKERS:-4} MIN_MS=${MIN_MS:-200} MAX_MS=${MAX_MS:-2000}
KILL_EVERY=${KILL_EVERY:-1} LEASE_MS=${LEASE_MS:-2000} HB_MS=${HB_MS:-250}
RESULTS=${RESULTS:-$T/results}
SPARE=$((JOBS / 2 + 20))
start_redis
make_keys
for i in $(seq 1 $((WORKERS + SPARE))); do admit_worker "w$i"; done
start_coordinator --heartbeat-ms "$HB_MS" --lease-ms "$LEASE_MS" --max-attempts 20
declare -A WPID
for i in $(seq 1 "$WORKERS"); do start_worker "w$i"; WPID[w$i]=$LAST_PID; done
next=$((WORKERS + 1))
wait_workers "$WORKERS"
LEDGER=$T/ledger
KILLS=$T/kills
: >"$KILLS"
: >"$LEDGER"
RANDOM=42
{
    printf 'name: storm\non: push\njobs:\n'
    for j in $(seq 1 "$JOBS"); do
        ms=$((MIN_MS + RANDOM % (MAX_MS - MIN_MS + 1)))
        cat <<YML
  j$j:
    runs-on: self-hosted
    steps:
      - run: |
          echo "start \$KILN_RUN_ID j$j \$KILN_ATTEMPT \$KILN_WORKER \$(date +%s%N)" >> $LEDGER
          sleep $(printf '%d.%03d' $((ms / 1000)) $((ms % 1000)))
          echo "done \$KILN_RUN_ID j$j \$KILN_ATTEMPT \$KILN_WORKER" >> $LEDGER
YML
    done
} >"$T/storm.yml"
t0=$(date +%s%N)
run=$("$KILN" submit "$T/storm.yml")
kills=0
while :; do
    "$KILN" status "$run" --json >"$T/st.json" 2>/dev/null || true
    [ "$(json_get "$T/st.json" '$.state')" = running ] || break
    # The storm lasts while work is queued: once the last jobs run, killing
    # the only busy worker again and again would measure the harness.
    queued=$(sqlite3 :memory: "select count(*) from json_each(readfile('$T/st.json'), '\$.jobs') where json_extract(value, '\$.state') in ('ready', 'pending')")
    if [ "$queued" -eq 0 ]; then sleep 0.2; continue; fi
    # A random busy worker, by what the coordinator reports.
    "$KILN" workers --json >"$T/workers.json" 2>/dev/null || true
    victim=$(sqlite3 :memory: "select json_extract(value,'\$.name') from json_each(readfile('$T/workers.json')) where json_extract(value,'\$.busy') > 0 order by random() limit 1;" 2>/dev/null || true)
    if [ -n "$victim" ] && [ -n "${WPID[$victim]:-}" ] && [ $next -le $((WORKERS + SPARE)) ]; then
        echo "kill $victim $(date +%s%N)" >>"$KILLS"
        kill -9 "${WPID[$victim]}" 2>/dev/null || true
        unset "WPID[$victim]"
        kills=$((kills + 1))
        start_worker "w$next"
        WPID[w$next]=$LAST_PID
        next=$((next + 1))
    fi
    sleep "$KILL_EVERY"
    [ $(( ($(date +%s%N) - t0) / 1000000000 )) -lt 600 ] || fail "the storm did not finish in 10 minutes"
done
wall_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
"$KILN" status "$run" --json >"$T/st.json"
succeeded=$(sqlite3 "$T/history.db" "select count(*) from jobs where run_id=$run and state='success'")
infra=$(sqlite3 "$T/history.db" "select count(*) from jobs where run_id=$run and state='infra_error'")
lost=$((JOBS - succeeded - infra))
twice=$(awk '/^done/ {n[$3]++} END {c=0; for (j in n) if (n[j] > 1) c++; print c}' "$LEDGER")
never=$(for j in $(seq 1 "$JOBS"); do grep -q "^done $run j$j " "$LEDGER" || echo "j$j"; done | wc -l)
# Re-dispatch delay: from the kill of the worker holding attempt k-1 to the
# start of attempt k.
delays=$(awk -v run="$run" '
    FILENAME ~ /kills$/ {killed[$2] = $3; next}
    /^start/ {start[$3, $4] = $6; worker[$3, $4] = $5}
    END {
        for (key in start) {
            split(key, p, SUBSEP); prev = p[2] - 1
            if (prev < 1 || !((p[1], prev) in worker)) continue
            w = worker[p[1], prev]
            if (w in killed) print int((start[key] - killed[w]) / 1000000)
        }
    }' "$KILLS" "$LEDGER" 2>/dev/null | sort -n)
n_delays=$(echo "$delays" | grep -c . || true)
pct() { [ "$n_delays" -gt 0 ] && echo "$delays" | awk -v p="$1" -v n="$n_delays" 'NR == int((n - 1) * p / 100) + 1 {print; exit}' || echo -; }
{
    echo "jobs $JOBS"
    echo "workers $WORKERS"
    echo "kills $kills"
    echo "wall_ms $wall_ms"
    echo "succeeded $succeeded"
    echo "infra_error $infra"
    echo "lost $lost"
    echo "never_completed $never"
    echo "completed_twice $twice"
    echo "redispatch_p50_ms $(pct 50)"
    echo "redispatch_p99_ms $(pct 99)"
    echo "redispatch_max_ms $(echo "$delays" | tail -n 1)"
} | tee "$RESULTS"
if [ "$infra" -gt 0 ]; then
    echo "attempts of the jobs given up on:"
    sqlite3 "$T/history.db" "select job_id, attempt, worker, state, coalesce(message, '') from attempts
        where run_id=$run and job_id in (select job_id from jobs where run_id=$run and state='infra_error')"
    grep -E "giving up|infrastructure" "$T/coordinator.log" | tail -n 5
fi
[ "$lost" -eq 0 ] || fail "$lost jobs lost"
[ "$never" -eq "$infra" ] || fail "$never jobs never completed but only $infra were given up on"
pass "kill storm: $JOBS jobs, $kills workers killed, none lost"
