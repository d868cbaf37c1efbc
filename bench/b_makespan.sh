#!/usr/bin/env bash
# b_makespan.sh: how close the scheduler gets to the best possible schedule.
# Three DAGs of 200 jobs whose durations are known (each step sleeps), run
# on 4 slots (2 workers x 2): "wide" (independent jobs, a few of them long,
# listed last), "deep" (8 chains of 25 of different weights) and "skewed"
# (one long chain behind 170 short independent jobs). The lower bound is
# max(critical path, total work / 4); Kiln's makespan (first job start to
# last job end, from the history) should be within 10% of it. Each shape
# runs once to give the duration history something, then REPS times under
# the critical-path scheduler and REPS times under --scheduler fifo,
# alternating (the coordinator restarts between them, on the same history).
source "$(dirname "$0")/lib.sh"
SLOTS=4

# shape NAME: writes $T/NAME.yml and $T/NAME.dur ("job ms needs..." lines).
shape() {
    local name=$1 i c k
    : >"$T/$name.dur"
    case $name in
    wide)
        for i in $(seq 1 190); do echo "w$i $((20 + (i * 37) % 41)) " >>"$T/$name.dur"; done
        for i in $(seq 1 10); do echo "l$i $((500 + i * 30)) " >>"$T/$name.dur"; done ;;
    deep)
        for c in $(seq 0 7); do
            for k in $(seq 1 25); do
                echo "c${c}_$k $((20 + 15 * c)) $([ "$k" -gt 1 ] && echo "c${c}_$((k - 1))")" >>"$T/$name.dur"
            done
        done ;;
    skewed)
        for i in $(seq 1 170); do echo "s$i 50 " >>"$T/$name.dur"; done
        for k in $(seq 1 30); do
            echo "p$k 100 $([ "$k" -gt 1 ] && echo "p$((k - 1))")" >>"$T/$name.dur"
        done ;;
    esac
    {
        printf 'name: makespan-%s\non: push\njobs:\n' "$name"
        while read -r id ms need; do
            printf '  %s:\n    runs-on: self-hosted\n' "$id"
            [ -n "$need" ] && printf '    needs: %s\n' "$need"
            printf '    steps: [{run: "sleep %d.%03d"}]\n' $((ms / 1000)) $((ms % 1000))
        done <"$T/$name.dur"
    } >"$T/$name.yml"
}

# bound NAME: max(critical path, total work / slots), in ms.
bound() {
    awk -v slots=$SLOTS '
        { dur[$1] = $2; need[$1] = $3; order[NR] = $1; total += $2 }
        END {
            for (i = 1; i <= NR; i++) {
                j = order[i]; f[j] = dur[j] + (need[j] != "" ? f[need[j]] : 0)
                if (f[j] > cp) cp = f[j]
            }
            w = total / slots; printf "%d\n", (cp > w ? cp : w)
        }' "$T/$1.dur"
}

# makespan FILE: runs it, prints first start to last finish (ms).
makespan() {
    local id st
    id=$("$KILN" submit "$1") || fail "submit $1"
    for _ in $(seq 1 1200); do
        "$KILN" status "$id" --json >"$T/s.json" || fail "status $id"
        st=$(json_get "$T/s.json" '$.state')
        case $st in success) break ;; failure | cancelled) fail "run $id: $st" ;; esac
        sleep 0.1
    done
    [ "$st" = success ] || fail "run $id did not finish"
    sqlite3 "$T/history.db" "select max(finished_ms) - min(started_ms) from jobs where run_id = $id"
}

scheduler() {
    if [ -n "${COORD_PID:-}" ]; then kill -TERM "$COORD_PID"; wait "$COORD_PID" 2>/dev/null || true; fi
    start_coordinator --scheduler "$1"
    wait_workers 2
}

start_redis
make_keys
admit_worker w1
admit_worker w2
start_coordinator --scheduler critical-path
start_worker w1 --slots 2
start_worker w2 --slots 2
wait_workers 2
for s in wide deep skewed; do
    shape "$s"
    echo "makespan: $s (warm-up)" >&2
    makespan "$T/$s.yml" >/dev/null
done
declare -A cp fifo
for r in $(seq 1 "$REPS"); do
    for s in wide deep skewed; do cp[$s]+="$(makespan "$T/$s.yml") "; done
    scheduler fifo
    for s in wide deep skewed; do fifo[$s]+="$(makespan "$T/$s.yml") "; done
    scheduler critical-path
done
for s in wide deep skewed; do
    b=$(bound "$s")
    k=$(printf '%s\n' ${cp[$s]} | median)
    f=$(printf '%s\n' ${fifo[$s]} | median)
    row "makespan_${s}_bound" "$b" ms
    row "makespan_${s}_kiln" "$k" ms
    row "makespan_${s}_fifo" "$f" ms
    row "makespan_${s}_ratio" "$(awk -v k="$k" -v b="$b" 'BEGIN {printf "%.3f", k / b}')" x 1.10 "<="
    row "makespan_${s}_fifo_ratio" "$(awk -v k="$f" -v b="$b" 'BEGIN {printf "%.3f", k / b}')" x
done
