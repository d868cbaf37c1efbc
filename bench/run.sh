#!/usr/bin/env bash
# run.sh BIN_DIR [NAME...]: Kiln's benchmarks (`make bench`). Runs each
# bench/b_NAME.sh (all of them by default, in a fixed order), collects the
# rows they print (see lib.sh), prints one table (name, figure, unit,
# target, verdict) and writes the same as JSON to bench/results.json.
# Peers (bench/peers/*.sh) run only when named in PEERS, e.g.
# `make bench PEERS=buildbot`; their rows join the same table.
set -uo pipefail
BIN=$(cd "${1:?usage: run.sh BIN_DIR [NAME...]}" && pwd)
shift
HERE=$(cd "$(dirname "$0")" && pwd)
export KILN_BIN=$(dirname "$BIN") COORD_LOG_LEVEL=${COORD_LOG_LEVEL:-info}
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(e2e dispatch throughput scale history makespan checkout cache containers)
rows=$(mktemp /tmp/kiln-bench-rows.XXXXXX)
trap 'rm -f "$rows"' EXIT
status=0
for n in "${names[@]}"; do
    [ -f "$HERE/b_$n.sh" ] || { echo "run.sh: no benchmark $n" >&2; status=2; continue; }
    echo "== $n" >&2
    out=$(bash "$HERE/b_$n.sh") || { echo "run.sh: benchmark $n failed" >&2; status=1; }
    grep '^ROW|' <<<"$out" >>"$rows" || true
done
for p in ${PEERS:-}; do
    echo "== peer $p" >&2
    out=$(bash "$HERE/peers/$p.sh") || { echo "run.sh: peer $p failed" >&2; status=1; }
    grep '^ROW|' <<<"$out" >>"$rows" || true
done
printf '%-28s %12s %-7s %-10s %s\n' NAME FIGURE UNIT TARGET RESULT
json="["
while IFS='|' read -r _ name fig unit target res; do
    printf '%-28s %12s %-7s %-10s %s\n' "$name" "$fig" "$unit" "$target" "$res"
    json+="{\"name\":\"$name\",\"figure\":$fig,\"unit\":\"$unit\",\"target\":\"$target\",\"result\":\"$res\"},"
done <"$rows"
printf '%s]\n' "${json%,}" >"$HERE/results.json"
echo "(medians of ${REPS:-3} repetitions where repeated; results in bench/results.json)"
exit $status
