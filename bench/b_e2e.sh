#!/usr/bin/env bash
# b_e2e.sh: end-to-end overhead. 1,000 independent one-step jobs (`true`,
# through the shell invocation Kiln uses) on a local farm with 2 workers
# (`kiln run`), against the same 1,000 commands through xargs -P 2, the two
# interleaved; medians of REPS. Target: Kiln's wall time <= 1.5x xargs'.
source "$(dirname "$0")/lib.sh"
JOBS=${JOBS:-1000}
{
    printf 'name: overhead\non: push\njobs:\n'
    for i in $(seq 1 "$JOBS"); do printf '  j%d:\n    runs-on: self-hosted\n    steps: [{run: "true"}]\n' "$i"; done
} >"$T/wide.yml"
seq 1 "$JOBS" >"$T/list"
base=() kiln=()
for _ in $(seq 1 "$REPS"); do
    t0=$(ms)
    xargs -P 2 -n 1 bash --noprofile --norc -eo pipefail -c true <"$T/list"
    base+=($(($(ms) - t0)))
    t0=$(ms)
    "$KILN" run "$T/wide.yml" --workers 2 --json >/dev/null
    kiln+=($(($(ms) - t0)))
done
base_ms=$(printf '%s\n' "${base[@]}" | median)
kiln_ms=$(printf '%s\n' "${kiln[@]}" | median)
row e2e_kiln_wall "$kiln_ms" ms
row e2e_xargs_wall "$base_ms" ms
row e2e_overhead_ratio "$(awk -v k="$kiln_ms" -v b="$base_ms" 'BEGIN {printf "%.2f", k / b}')" x 1.5 "<="
row e2e_overhead_per_job "$(awk -v k="$kiln_ms" -v b="$base_ms" -v n="$JOBS" 'BEGIN {printf "%.2f", (k - b) / n}')" ms 1 "<="
echo "$kiln_ms" >"${E2E_OUT:-/dev/null}"
