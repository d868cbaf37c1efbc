# The issue's figure, as a test: a generated dependency tree of 10,000
# files and about 100 MB, saved by a first run on w1, restored by exact
# key on w1 (its own copy) and on w2 (from the coordinator), and by
# restore-keys under a changed key; every restored tree is byte for byte
# the one generated (a digest of every path and content).
source "$(dirname "$0")/lib.sh"
start_farm 1 --labels one
admit_worker w2
kill -HUP "$COORD_PID"
start_worker w2 --labels two
wait_workers 2

SRC=$T/src/deps
mkdir -p "$SRC"
head -c $((75 * 1024 * 1024)) /dev/urandom | base64 -w 0 >"$T/stream"
split -n 10000 -a 5 -d "$T/stream" "$T/src/p-"
rm -f "$T/stream"
i=0
for f in "$T"/src/p-*; do
    d=$SRC/d$((i % 100))
    [ -d "$d" ] || mkdir -p "$d"
    mv "$f" "$d/f$i"
    i=$((i + 1))
done
tree_digest() { (cd "$1" && find . -type f | sort | xargs sha256sum | sha256sum | cut -c1-16); }
WANT=$(tree_digest "$SRC")
[ "$(find "$SRC" -type f | wc -l)" = 10000 ] || fail "the tree was not generated"

cat >"$T/big.yml" <<YML
on: {workflow_dispatch: {inputs: {on: {required: true}, key: {required: true}, restore: {default: ''}}}}
jobs:
  deps:
    runs-on: \${{ inputs.on }}
    steps:
      - id: c
        uses: actions/cache@v4
        with:
          path: node_modules
          key: \${{ inputs.key }}
          restore-keys: \${{ inputs.restore }}
      - run: |
          [ -d node_modules ] || cp -a "$SRC" node_modules
          echo "hit=\${{ steps.c.outputs.cache-hit }} matched=\${{ steps.c.outputs.cache-matched-key }}"
          echo "tree \$(cd node_modules && find . -type f | sort | xargs sha256sum | sha256sum | cut -c1-16) \$(find node_modules -type f | wc -l)"
YML
go() { # OUT ON KEY [RESTORE]
    RC=0
    "$KILN" submit --wait "$T/big.yml" --input on="$2" --input key="$3" --input restore="${4:-}" >"$T/$1" 2>&1 || RC=$?
    [ $RC = 0 ] || fail "$1 exited $RC: $(tail -n 6 "$T/$1")"
}
go r1.out one deps-linux-aaaa
grep -q "Cache saved with key: deps-linux-aaaa (10101 files" "$T/r1.out" || fail "run 1: $(grep -i cache "$T/r1.out")"
go r2.out one deps-linux-aaaa
grep -q "hit=true matched=deps-linux-aaaa" "$T/r2.out" && grep -q "^deps | tree $WANT 10000" "$T/r2.out" &&
    grep -q "from this worker's cache" "$T/r2.out" || fail "run 2 (same worker): $(grep -E 'hit=|tree|restored' "$T/r2.out")"
go r3.out two deps-linux-aaaa
grep -q "hit=true matched=deps-linux-aaaa" "$T/r3.out" && grep -q "^deps | tree $WANT 10000" "$T/r3.out" &&
    grep -q "from the coordinator" "$T/r3.out" || fail "run 3 (other worker): $(grep -E 'hit=|tree|restored' "$T/r3.out")"
go r4.out two deps-linux-bbbb deps-linux-
grep -q "hit=false matched=deps-linux-aaaa" "$T/r4.out" && grep -q "^deps | tree $WANT 10000" "$T/r4.out" ||
    fail "run 4 (restore-keys): $(grep -E 'hit=|tree|restored' "$T/r4.out")"
grep -h "Cache restored from key" "$T"/r[234].out | sed 's/^deps | //' >&2
pass "a 10,000-file, ~100 MB tree: saved, restored by exact key on the same worker and on another, and by restore-keys; byte for byte each time"

# The upload and the download above were timed: the rate a job's wait for
# a warm worker is weighed against is measured, not assumed.
"$KILN" stats --json >"$T/stats.json"
[ "$(json_get "$T/stats.json" '$.store.restore_rate.from')" = measured ] ||
    fail "the store's transfers were not measured: $(cat "$T/stats.json")"
rate=$(json_get "$T/stats.json" '$.store.restore_rate.mb_per_s')
awk -v r="$rate" 'BEGIN { exit !(r > 0) }' || fail "measured restore rate $rate MB/s"
echo "measured restore rate: $rate MB/s" >&2
pass "the store measures the rate of its transfers ($rate MB/s here)"
