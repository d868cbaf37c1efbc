#!/usr/bin/env bash
# b_scale.sh: scale. 100 runs of 1,000 independent one-step jobs submitted
# with no worker connected (100,000 queued jobs), then 1,000 simulated
# workers (kiln-swarm: 4 processes of 250 connections, 1 slot each) take
# them all. Figures: the coordinator's RSS with the queue full and its peak,
# jobs completed per second from the first dispatch to the last job done (as
# the history records them), the workers connected (`kiln workers`) and the
# coordinator's CPU time per job. Targets: RSS <= 256 MB, >= 10,000 jobs/s.
# The swarms and Redis run on the same machine: the CPU each used while
# dispatching is printed on stderr beside the swarms' own counters.
#
# Quick runs: SCALE_RUNS, SCALE_JOBS (per run, <= 1000), SCALE_WORKERS,
# SCALE_SWARMS (processes), SCALE_SLOTS (per worker); SCALE_BUDGET_S bounds
# the dispatch phase (the figures then cover what was done in it).
source "$(dirname "$0")/lib.sh"
export COORD_LOG_LEVEL=info
RUNS=${SCALE_RUNS:-100}
JOBS=${SCALE_JOBS:-1000}
WORKERS=${SCALE_WORKERS:-1000}
SWARMS=${SCALE_SWARMS:-4}
SLOTS=${SCALE_SLOTS:-1}
BUDGET_S=${SCALE_BUDGET_S:-180}
SWARM=$KILN_BIN/kiln-swarm
[ -x "$SWARM" ] || fail "no $SWARM (build the bench directory)"
if [ "$SWARMS" -lt 1 ] || [ "$WORKERS" -lt "$SWARMS" ]; then
    fail "SCALE_WORKERS must be >= SCALE_SWARMS >= 1"
fi
TOTAL=$((RUNS * JOBS))

# Workers the coordinator lists as connected (0 when it does not answer).
workers_connected() {
    "$KILN" workers --json >"$T/workers.json" 2>/dev/null &&
        sqlite3 :memory: "select json_array_length(readfile('$T/workers.json'));" 2>/dev/null ||
        echo 0
}
# CPU time (ms) of a process's main thread alone (its I/O threads excluded).
main_cpu_ms() {
    awk -v hz="$(getconf CLK_TCK)" '{print int(($14 + $15) * 1000 / hz)}' "/proc/$1/task/$1/stat"
}
# Sum, min or max of one counter over the swarms' stats files.
swarm_agg() {
    local fn=$1 field=$2
    for f in "$T"/swarm*.json; do json_get "$f" "\$.$field"; done |
        awk -v fn="$fn" 'NR == 1 || (fn == "min" && $1 < v) || (fn == "max" && $1 > v) {v = $1}
                         {s += $1} END {printf "%.0f\n", (fn == "sum") ? s : v}'
}

{
    printf 'name: wide\non: push\njobs:\n'
    for i in $(seq 1 "$JOBS"); do printf '  j%d:\n    runs-on: self-hosted\n    steps: [{run: "true"}]\n' "$i"; done
} >"$T/wide.yml"

start_redis
make_keys
# One admitted key per simulated worker: a worker's name is its key's.
per=$((WORKERS / SWARMS))
mkdir -p "$T/swarm-keys"
for s in $(seq 1 "$SWARMS"); do
    n=$per
    [ "$s" -eq "$SWARMS" ] && n=$((WORKERS - per * (SWARMS - 1)))
    for i in $(seq 1 "$n"); do
        name=$(printf 's%d-%04d' "$s" "$i")
        "$KILN" keygen "$name" --dir "$T/swarm-keys" >/dev/null
        cp "$T/swarm-keys/$name.pub" "$T/allow/workers/"
    done
done
start_coordinator
rss_empty=$(rss_mb "$COORD_PID")

t0=$(ms)
for r in $(seq 1 "$RUNS"); do
    "$KILN" submit "$T/wide.yml" >/dev/null || fail "submit $r of $RUNS failed"
done
# A run is answered before its jobs are queued: wait for the last ones.
queued=0
for _ in $(seq 1 600); do
    queued=$(sqlite3 "$T/history.db" "select count(*) from jobs where state = 'ready'" 2>/dev/null || echo 0)
    [ "$queued" -ge "$TOTAL" ] && break
    sleep 0.05
done
submit_ms=$(($(ms) - t0))
[ "$queued" -eq "$TOTAL" ] || fail "$queued of $TOTAL jobs queued"
echo "b_scale: $TOTAL jobs queued in $submit_ms ms; coordinator RSS $rss_empty MB empty" >&2
row scale_rss_queued_mb "$(rss_mb "$COORD_PID")" MB 256 "<="
row scale_submit_jobs_per_s "$(awk -v n="$TOTAL" -v t="$submit_ms" 'BEGIN {printf "%.0f", n * 1000 / (t ? t : 1)}')" jobs/s

cpu0=$(cpu_ms "$COORD_PID")
main0=$(main_cpu_ms "$COORD_PID")
redis_cpu0=$(cpu_ms "$REDIS_PID")
per=$((WORKERS / SWARMS))
SWARM_PIDS=()
for s in $(seq 1 "$SWARMS"); do
    n=$per
    [ "$s" -eq "$SWARMS" ] && n=$((WORKERS - per * (SWARMS - 1)))
    "$SWARM" --coordinator "$ENDPOINT" --server-key "$T/keys/server.pub" --key-dir "$T/swarm-keys" \
        --connections "$n" --slots "$SLOTS" --name-prefix "s$s-" --stats "$T/swarm$s.json" \
        --log-level warn >>"$T/swarm$s.log" 2>&1 &
    PIDS+=($!)
    SWARM_PIDS+=($!)
done

# Until every job is final in the history, or the budget is spent. The
# number of workers connected is sampled on the way (it is read from the
# coordinator, which answers between bursts).
deadline=$((SECONDS + BUDGET_S))
max_workers=0 done_jobs=0
while [ $SECONDS -lt $deadline ]; do
    kill -0 "$COORD_PID" 2>/dev/null || fail "the coordinator died"
    if [ "$max_workers" -lt "$WORKERS" ]; then
        w=$(workers_connected)
        [ "$w" -gt "$max_workers" ] && max_workers=$w
    fi
    done_jobs=$(sqlite3 "$T/history.db" "select count(*) from jobs where state = 'success'" 2>/dev/null || echo "$done_jobs")
    [ "$done_jobs" -ge "$TOTAL" ] && break
    sleep 0.5
done
[ "$max_workers" -ge "$WORKERS" ] || max_workers=$(workers_connected)
cpu1=$(cpu_ms "$COORD_PID")
main1=$(main_cpu_ms "$COORD_PID")
# Where the machine's time went meanwhile (the swarms and Redis share it).
swarm_cpu=0
for pid in "${SWARM_PIDS[@]}"; do swarm_cpu=$((swarm_cpu + $(cpu_ms "$pid"))); done
redis_cpu=$(($(cpu_ms "$REDIS_PID") - redis_cpu0))
hwm=$(hwm_mb "$COORD_PID")
for pid in "${SWARM_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
for pid in "${SWARM_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
done_jobs=$(sqlite3 "$T/history.db" "select count(*) from jobs where state = 'success'")

# The rate: jobs done over the time from the first dispatch to the last job
# done, both as the coordinator recorded them; the swarms' own counters
# (first assignment received, last result acknowledged) are shown beside.
read -r first_ms last_ms <<<"$(sqlite3 -separator ' ' "$T/history.db" "
    select (select min(started_ms) from attempts),
           (select max(finished_ms) from jobs where state = 'success')")"
span=$(( ${last_ms:-0} - ${first_ms:-0} ))
acked=$(swarm_agg sum results_acked)
swarm_first=$(for f in "$T"/swarm*.json; do json_get "$f" '$.first_assign_ms'; done | awk '$1 > 0' | sort -n | head -n 1)
swarm_span=0
[ -n "$swarm_first" ] && swarm_span=$(( $(swarm_agg max last_ack_ms) - swarm_first ))
welcomed=$(swarm_agg sum welcomed)
connect_ms=never
[ "$(swarm_agg min all_welcomed_ms)" -gt 0 ] &&
    connect_ms="$(( $(swarm_agg max all_welcomed_ms) - $(swarm_agg min started_ms) )) ms"
echo "b_scale: $done_jobs of $TOTAL jobs done in $span ms (first dispatch to last done);" \
    "swarms: $acked results acknowledged in $swarm_span ms, $welcomed of $WORKERS connections" \
    "welcomed (all within $connect_ms), $(swarm_agg sum results_resent) results resent," \
    "$(swarm_agg sum rehellos) re-hellos; CPU while dispatching: coordinator $((cpu1 - cpu0)) ms" \
    "(main thread $((main1 - main0)) ms, ZeroMQ I/O $((cpu1 - cpu0 - main1 + main0)) ms)," \
    "swarms $swarm_cpu ms, Redis $redis_cpu ms" >&2
[ "$done_jobs" -ge "$TOTAL" ] || echo "b_scale: budget of $BUDGET_S s spent before the queue was empty" >&2

row scale_workers "$max_workers" workers "$WORKERS" ">="
row scale_jobs_done "$done_jobs" jobs "$TOTAL" ">="
row scale_dispatch_jobs_per_s "$(awk -v n="$done_jobs" -v t="$span" 'BEGIN {printf "%.0f", (t > 0) ? n * 1000 / t : 0}')" jobs/s 10000 ">="
row scale_rss_peak_mb "$hwm" MB 256 "<="
row scale_coord_cpu_per_job "$(awk -v c=$((cpu1 - cpu0)) -v n="$done_jobs" 'BEGIN {printf "%.0f", n ? c * 1000 / n : 0}')" us
