#!/usr/bin/env bash
# b_throughput.sh: the coordinator's dispatch throughput. JOBS independent
# one-step jobs (RUNS of up to 1,000, the most a workflow may hold) are
# submitted while no worker is connected; then WORKERS workers with the null
# executor (jobs succeed at once, through the whole protocol, without
# running anything) and SLOTS slots each connect, and the clock runs from
# their start to the last run's finish as the history records it. The
# figures are jobs per second, the CPU time (user + system) the
# coordinator, the workers and Redis spent per job over that phase, and the
# largest size the history's WAL reached.
source "$(dirname "$0")/lib.sh"
JOBS=${JOBS:-20000}
PER_RUN=${PER_RUN:-1000}
WORKERS=${WORKERS:-2}
SLOTS=${SLOTS:-32}
DEADLINE_S=${DEADLINE_S:-45}
export COORD_LOG_LEVEL=${COORD_LOG_LEVEL:-info}
[ "$PER_RUN" -ge 1 ] && [ "$PER_RUN" -le 1000 ] || fail "PER_RUN must be 1..1000"
RUNS=$(((JOBS + PER_RUN - 1) / PER_RUN))
JOBS=$((RUNS * PER_RUN))

{
    printf 'name: throughput\non: push\njobs:\n'
    for i in $(seq 1 "$PER_RUN"); do printf '  j%d:\n    runs-on: self-hosted\n    steps: [{run: "true"}]\n' "$i"; done
} >"$T/wide.yml"
start_redis
make_keys
for i in $(seq 1 "$WORKERS"); do admit_worker "w$i"; done
start_coordinator
t0=$(ms)
for _ in $(seq 1 "$RUNS"); do "$KILN" submit "$T/wide.yml" >/dev/null || fail "submit failed"; done
echo "b_throughput: $RUNS runs of $PER_RUN jobs submitted in $(($(ms) - t0)) ms" >&2
db() { sqlite3 -cmd '.timeout 2000' "$T/history.db" "$1"; }
[ "$(db "select count(*) from runs where finished_ms is null")" = "$RUNS" ] ||
    fail "not all $RUNS runs are waiting before the workers start"

coord0=$(cpu_ms "$COORD_PID")
redis0=$(cpu_ms "$REDIS_PID")
start_ms=$(date +%s%3N)
wpids=()
for i in $(seq 1 "$WORKERS"); do
    start_worker "w$i" --executor null --slots "$SLOTS" --log-level warn
    wpids+=("$LAST_PID")
done
# Polled sparingly: each look is a process on the machine being measured.
until=$((SECONDS + DEADLINE_S))
left=$RUNS
wal_max=0
while [ "$left" -gt 0 ] && [ $SECONDS -lt $until ]; do
    sleep 0.25
    kill -0 "$COORD_PID" 2>/dev/null || fail "the coordinator died"
    left=$(db "select count(*) from runs where finished_ms is null")
    wal=$(stat -c %s "$T/history.db-wal" 2>/dev/null || echo 0)
    [ "$wal" -gt "$wal_max" ] && wal_max=$wal
done
coord1=$(cpu_ms "$COORD_PID")
redis1=$(cpu_ms "$REDIS_PID")
wcpu=0
for p in "${wpids[@]}"; do wcpu=$((wcpu + $(cpu_ms "$p"))); done
[ "$(db "select count(*) from runs where state != 'success' and finished_ms is not null")" = 0 ] ||
    fail "a run did not succeed: $(db "select id, state from runs where state != 'success'")"
done_jobs=$(db "select count(*) from jobs where state = 'success'")
end_ms=$(db "select max(finished_ms) from runs")
# The clock starts at the first dispatch: worker start-up is not dispatch.
first=$(db "select min(started_ms) from attempts")
[ -n "$first" ] && start_ms=$first
if [ "$left" -gt 0 ]; then
    # Unfinished at the deadline: the rate of what did finish, said aloud.
    end_ms=$(date +%s%3N)
    echo "b_throughput: only $done_jobs of $JOBS jobs finished within ${DEADLINE_S} s" >&2
fi
span=$((end_ms - start_ms))
[ "$span" -gt 0 ] && [ "$done_jobs" -gt 0 ] || fail "no jobs finished"
echo "b_throughput: $done_jobs jobs in $span ms; CPU ms: coordinator $((coord1 - coord0)), workers $wcpu, redis $((redis1 - redis0))" >&2
per_job() { awk -v c="$1" -v n="$done_jobs" 'BEGIN {printf "%.1f", c * 1000 / n}'; }
row throughput_jobs_per_s "$(awk -v n="$done_jobs" -v s="$span" 'BEGIN {printf "%.0f", n * 1000 / s}')" jobs/s 20000 ">="
row coord_cpu_per_job "$(per_job $((coord1 - coord0)))" us
row throughput_worker_cpu_per_job "$(per_job "$wcpu")" us
row throughput_redis_cpu_per_job "$(per_job $((redis1 - redis0)))" us
# The history's write-ahead log while the farm runs flat out (sampled at
# each look): bounded by the checkpoint thread (coordinator/history.h).
row throughput_wal_max_mb "$(awk -v b="$wal_max" 'BEGIN {printf "%.1f", b / 1048576}')" MB 64 "<="
