#!/usr/bin/env bash
# b_dispatch.sh: dispatch latency, from a job becoming ready (its need
# finished) to its first step starting on an idle worker: a chain of 60
# one-step jobs on a local farm, read from the history (ms).
source "$(dirname "$0")/lib.sh"
{
    printf 'name: chain\non: push\njobs:\n  c1:\n    runs-on: self-hosted\n    steps: [{run: "true"}]\n'
    for i in $(seq 2 60); do
        printf '  c%d:\n    needs: c%d\n    runs-on: self-hosted\n    steps: [{run: "true"}]\n' "$i" $((i - 1))
    done
} >"$T/chain.yml"
"$KILN" run "$T/chain.yml" --workers 2 --json --keep "$T/farm" >/dev/null
sqlite3 "$T/farm/history.db" "
    select s.started_ms - p.finished_ms from jobs j
    join jobs p on p.run_id = j.run_id and p.job_id = 'c' || (cast(substr(j.job_id, 2) as integer) - 1)
    join steps s on s.run_id = j.run_id and s.job_id = j.job_id and s.idx = 0
    where j.job_id != 'c1'" >"$T/lat"
row dispatch_p50 "$(percentile 50 <"$T/lat")" ms 1 "<="
row dispatch_p99 "$(percentile 99 <"$T/lat")" ms 5 "<="
