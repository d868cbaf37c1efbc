#!/usr/bin/env bash
# run.sh: the long fault tests (`make fault-test`). Each scenario runs on
# its own private farm; the figures are printed as one table.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export KILN_BIN=${KILN_BIN:-$here/../../build}
out=$(mktemp -d /tmp/kiln-fault.XXXXXX)
trap 'rm -rf "$out"' EXIT
status=0
run() {
    local name=$1 script=$2
    shift 2
    echo "== $name" >&2
    if env RESULTS="$out/$name" "$@" bash "$script" >"$out/$name.log" 2>&1; then
        echo "pass" >"$out/$name.verdict"
    else
        echo "FAIL" >"$out/$name.verdict"
        status=1
        tail -n 20 "$out/$name.log" >&2
    fi
}
run kill_storm "$here/kill_storm.sh" JOBS=200 WORKERS=4 MIN_MS=200 MAX_MS=2000 KILL_EVERY=1 LEASE_MS=2000
run drain_half "$here/drain_half.sh"
run coordinator_kill "$here/coordinator_crash.sh" TRIALS=10
run redis_kill "$here/../integration/it_redis_restart.sh"
run partition "$here/../integration/it_partition.sh"
run garbage "$here/../integration/it_wire_garbage.sh"
run overload "$here/../integration/it_overload.sh"
printf '\n%-18s %-8s %s\n' SCENARIO RESULT FIGURES
for v in "$out"/*.verdict; do
    name=$(basename "$v" .verdict)
    figures=$( [ -f "$out/$name" ] && tr '\n' ' ' <"$out/$name" || grep '^ok - ' "$out/$name.log" | sed 's/^ok - //' | tail -n 1)
    printf '%-18s %-8s %s\n' "$name" "$(cat "$v")" "$figures"
done
exit $status
