# lib.sh: shared by the benchmark scripts (b_*.sh). Sources the integration
# harness (private directory, real redis-server, coordinator and workers,
# every process stopped by pid on exit) and adds the reporting protocol:
# each benchmark prints its figures as lines
#     ROW|name|figure|unit|target|verdict
# on stdout, and anything else on stderr. bench/run.sh collects the rows.
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../tests/integration/lib.sh
source "$BENCH_DIR/../tests/integration/lib.sh"
REPS=${REPS:-3}

ms() { date +%s%3N; }
# Median of the numbers on stdin (one per line).
median() { sort -n | awk '{a[NR]=$1} END {if (NR == 0) print 0; else print (NR % 2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
# Percentile P (0-100) of the numbers on stdin, nearest rank.
percentile() { sort -n | awk -v p="$1" '{a[NR]=$1} END {i = int((NR - 1) * p / 100) + 1; print (NR ? a[i] : 0)}'; }

# row NAME FIGURE UNIT [TARGET OP]: OP is "<=" or ">=" (no target: "-").
row() {
    local name=$1 fig=$2 unit=$3 target=${4:-} op=${5:-} verdict=-
    if [ -n "$target" ]; then
        verdict=$(awk -v v="$fig" -v t="$target" -v op="$op" \
            'BEGIN {ok = (op == ">=") ? (v >= t) : (v <= t); print ok ? "pass" : "FAIL"}')
        target="$op $target"
    else
        target=-
    fi
    echo "ROW|$name|$fig|$unit|$target|$verdict"
}

# CPU time (user + system, ms) a process has used so far.
cpu_ms() {
    awk -v hz="$(getconf CLK_TCK)" '{print int(($14 + $15) * 1000 / hz)}' "/proc/$1/stat"
}
# Resident set size (MB) of a process.
rss_mb() { awk '/^VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }
# Peak resident set size (MB) of a process.
hwm_mb() { awk '/^VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }
