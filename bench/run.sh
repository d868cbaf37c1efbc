#!/usr/bin/env bash
# run.sh BIN_DIR: Kiln's benchmarks (`make bench`). Each figure that has a
# baseline runs it in the same invocation, interleaved with Kiln, and
# reports medians of REPS repetitions. Prints one table (name, figure, unit,
# target, verdict) and writes the same as JSON to bench/results.json.
#
# Measured so far:
#   e2e_overhead      1,000 independent one-step jobs (`true`, through the
#                     shell invocation Kiln uses) on a local farm with 2
#                     workers, against the same 1,000 commands through
#                     xargs -P 2: the ratio of wall times (target <= 1.5).
#   dispatch_p50/p99  from a job becoming ready (its need finished) to its
#                     first step starting, on an idle farm: a chain of 60
#                     one-step jobs, read from the history (ms).
set -euo pipefail
BIN=$(cd "${1:?usage: run.sh BIN_DIR}" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
REPS=${REPS:-3}
JOBS=${JOBS:-1000}
T=$(mktemp -d /tmp/kiln-bench.XXXXXX)
trap 'rm -rf "$T"' EXIT
ms() { date +%s%3N; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : int((a[NR/2]+a[NR/2+1])/2)}'; }

# --- end-to-end overhead -------------------------------------------------
{
    printf 'name: overhead\non: push\njobs:\n'
    for i in $(seq 1 "$JOBS"); do printf '  j%d:\n    runs-on: self-hosted\n    steps: [{run: "true"}]\n' "$i"; done
} >"$T/wide.yml"
printf '%s\n' $(seq 1 "$JOBS") >"$T/list"
base=() kiln=()
for r in $(seq 1 "$REPS"); do
    t0=$(ms)
    xargs -P 2 -n 1 bash --noprofile --norc -eo pipefail -c true <"$T/list"
    base+=($(( $(ms) - t0 )))
    t0=$(ms)
    "$BIN/kiln" run "$T/wide.yml" --workers 2 --json >/dev/null
    kiln+=($(( $(ms) - t0 )))
done
base_ms=$(printf '%s\n' "${base[@]}" | median)
kiln_ms=$(printf '%s\n' "${kiln[@]}" | median)
ratio=$(awk -v k="$kiln_ms" -v b="$base_ms" 'BEGIN {printf "%.2f", k / b}')
per_job=$(awk -v k="$kiln_ms" -v b="$base_ms" -v n="$JOBS" 'BEGIN {printf "%.2f", (k - b) / n}')

# --- dispatch latency ----------------------------------------------------
{
    printf 'name: chain\non: push\njobs:\n  c1:\n    runs-on: self-hosted\n    steps: [{run: "true"}]\n'
    for i in $(seq 2 60); do
        printf '  c%d:\n    needs: c%d\n    runs-on: self-hosted\n    steps: [{run: "true"}]\n' "$i" $((i - 1))
    done
} >"$T/chain.yml"
rm -rf "$T/farm"
"$BIN/kiln" run "$T/chain.yml" --workers 2 --json --keep "$T/farm" >/dev/null
lat=$(sqlite3 "$T/farm/history.db" "
    select s.started_ms - p.finished_ms from jobs j
    join jobs p on p.run_id = j.run_id and p.job_id = 'c' || (cast(substr(j.job_id, 2) as integer) - 1)
    join steps s on s.run_id = j.run_id and s.job_id = j.job_id and s.idx = 0
    where j.job_id != 'c1' order by 1")
n_lat=$(echo "$lat" | grep -c .)
p50=$(echo "$lat" | awk -v n="$n_lat" 'NR == int((n - 1) * 0.50) + 1 {print; exit}')
p99=$(echo "$lat" | awk -v n="$n_lat" 'NR == int((n - 1) * 0.99) + 1 {print; exit}')

# --- the table -------------------------------------------------------------
verdict() { awk -v v="$1" -v t="$2" 'BEGIN {print (v <= t) ? "pass" : "FAIL"}'; }
rows=(
    "e2e_kiln_wall|$kiln_ms|ms|-|-"
    "e2e_xargs_wall|$base_ms|ms|-|-"
    "e2e_overhead_ratio|$ratio|x|<= 1.5|$(verdict "$ratio" 1.5)"
    "e2e_overhead_per_job|$per_job|ms|<= 1|$(verdict "$per_job" 1)"
    "dispatch_p50|$p50|ms|<= 1|$(verdict "$p50" 1)"
    "dispatch_p99|$p99|ms|<= 5|$(verdict "$p99" 5)"
)
printf '%-22s %10s %-5s %-8s %s\n' NAME FIGURE UNIT TARGET RESULT
json="["
for row in "${rows[@]}"; do
    IFS='|' read -r name fig unit target res <<<"$row"
    printf '%-22s %10s %-5s %-8s %s\n' "$name" "$fig" "$unit" "$target" "$res"
    json+="{\"name\":\"$name\",\"figure\":$fig,\"unit\":\"$unit\",\"target\":\"$target\",\"result\":\"$res\"},"
done
printf '%s]\n' "${json%,}" >"$HERE/results.json"
echo "(medians of $REPS; $JOBS jobs; results in bench/results.json)"
