# actions/cache built in, on the farm's store with each worker's copies in
# front: a miss builds a 1,000-file tree and the post step saves it; the
# next run restores it by exact key (cache-hit true, the same digest, no
# save), a changed key by restore-keys (cache-hit false, matched key
# given, saved anew); fail-on-cache-miss, lookup-only, actions/cache/restore
# and /save; the worker's size bound evicts the least recently used; a
# damaged copy on the worker is fetched again, a damaged blob in the store
# refused by digest, a hostile archive refused entry by entry with nothing
# written outside; a second, cold worker restores what the first saved;
# kiln cache list|rm; the store's counters; `**` and `!` patterns.
source "$(dirname "$0")/lib.sh"
start_farm 1 --cache-max-mb 1
CACHE=$T/work/w1/cache

cat >"$T/cache.yml" <<'YML'
on:
  workflow_dispatch:
    inputs:
      key: {required: true}
      restore: {default: ''}
      files: {default: '1000'}
      extra: {default: ''}
jobs:
  a:
    runs-on: linux
    steps:
      - id: c
        uses: actions/cache@v4
        with:
          path: |
            deps
            ~/.kiln-it-cache-absent
          key: ${{ inputs.key }}
          restore-keys: ${{ inputs.restore }}
      - run: |
          echo "hit=${{ steps.c.outputs.cache-hit }} matched=${{ steps.c.outputs.cache-matched-key }} primary=${{ steps.c.outputs.cache-primary-key }}"
          if [ ! -d deps ]; then
            mkdir -p deps/sub
            for i in $(seq 1 ${{ inputs.files }}); do echo "file $i" >deps/sub/f$i; done
            ln -s sub/f1 deps/first
            [ -z "${{ inputs.extra }}" ] || head -c ${{ inputs.extra }} /dev/urandom >deps/extra
            echo built
          fi
          echo "digest $(cd deps && find . -type f -o -type l | sort | xargs cat | sha256sum | cut -c1-16) $(find deps | wc -l)"
YML
run() { # OUT KEY [RESTORE [FILES [EXTRA]]]
    RC=0
    "$KILN" submit --wait "$T/cache.yml" --input key="$2" --input restore="${3:-}" \
        --input files="${4:-1000}" --input extra="${5:-}" >"$T/$1" 2>&1 || RC=$?
}

# 1. A miss, then the post step saves.
run r1.out deps-A
[ $RC = 0 ] || fail "run 1 exited $RC: $(tail -n 5 "$T/r1.out")"
grep -q "hit=false matched= primary=deps-A" "$T/r1.out" && grep -q "^a | built" "$T/r1.out" &&
    grep -q "Cache saved with key: deps-A (1003 files" "$T/r1.out" || fail "run 1: $(grep -iE 'cache|hit=' "$T/r1.out")"
D1=$(sed -n 's/^a | digest \([0-9a-f]*\) .*/\1/p' "$T/r1.out")

# 2. The same key: restored whole, nothing saved.
run r2.out deps-A
[ $RC = 0 ] || fail "run 2 exited $RC"
grep -q "hit=true matched=deps-A" "$T/r2.out" && ! grep -q "^a | built" "$T/r2.out" &&
    grep -q "Cache restored from key: deps-A" "$T/r2.out" &&
    grep -q "not saving cache" "$T/r2.out" || fail "run 2: $(tail -n 25 "$T/r2.out")"
grep -q "^a | digest $D1 1003" "$T/r2.out" || fail "the restored tree differs: $(grep digest "$T/r2.out") vs $D1"
grep -q "Cache hit, restored from \`deps-A\`: [0-9]* bytes in [0-9]* ms (from this worker" "$T/r2.out" && grep -q "Cache miss for \`deps-A\`" "$T/r1.out" || fail "the summary does not say what was restored: $(grep -i "^cache" "$T/r2.out")"
pass "a miss saves after the job; the same key restores the 1,000-file tree byte for byte (cache-hit true), saving nothing"

# 3. A new key restores by prefix and saves under the new key.
run r3.out deps-B deps-
grep -q "hit=false matched=deps-A primary=deps-B" "$T/r3.out" && grep -q "^a | digest $D1" "$T/r3.out" &&
    grep -q "Cache saved with key: deps-B" "$T/r3.out" || fail "run 3: $(grep -iE 'cache|hit=' "$T/r3.out")"
pass "restore-keys: the newest entry with the prefix, cache-hit false, saved under the new key"

# 4. fail-on-cache-miss, lookup-only, restore and save halves.
cat >"$T/halves.yml" <<'YML'
on: push
jobs:
  a:
    runs-on: linux
    steps:
      # The same paths as cache.yml's: a cache's version is its paths.
      - id: look
        uses: actions/cache/restore@v4
        with:
          path: |
            deps
            ~/.kiln-it-cache-absent
          key: deps-B
          lookup-only: true
      - run: echo "lookup ${{ steps.look.outputs.cache-hit }} $([ -e deps ] && echo restored || echo absent)"
      - run: mkdir -p out && echo one >out/o
      - uses: actions/cache/save@v4
        with: {path: out, key: out-1}
      - id: back
        uses: actions/cache/restore@v4
        with: {path: out, key: out-1}
      - run: echo "back ${{ steps.back.outputs.cache-hit }} $(cat out/o)"
      - uses: actions/cache/restore@v4
        with: {path: deps, key: nothing-like-it, fail-on-cache-miss: true}
YML
RC=0
"$KILN" submit --wait "$T/halves.yml" >"$T/halves.out" 2>&1 || RC=$?
[ $RC = 1 ] && grep -q "^a | lookup true absent" "$T/halves.out" && grep -q "^a | back true one" "$T/halves.out" &&
    grep -q "Failed to restore cache entry. Exiting as fail-on-cache-miss is set. Input key: nothing-like-it" "$T/halves.out" ||
    fail "restore/save halves: exit $RC: $(grep -E 'a \| (lookup|back)|Failed|error' "$T/halves.out")"
pass "lookup-only, actions/cache/save and /restore, fail-on-cache-miss"

# 5. The bound (1 MB): a 2 MB entry saved evicts the others, least recently used first.
run r5.out big-1 "" 10 2000000
grep -q "Evicted cache 'deps-A'" "$T/r5.out" || fail "nothing was evicted past the bound: $(grep -iE 'evict|saved' "$T/r5.out")"
[ "$(du -sm "$CACHE" | cut -f1)" -le 3 ] || fail "the cache holds $(du -sh "$CACHE")"
pass "past --cache-max-mb the least recently used entries are evicted"

# 6. The worker's copy damaged: its digest does not match the farm's
# entry, so the blob comes again from the coordinator.
run r6.out deps-C
J=$(grep -l '"key":"deps-C"' "$CACHE"/*/*.json)
D6=$(sed -n 's/^a | digest \([0-9a-f]*\) .*/\1/p' "$T/r6.out")
echo garbage >"${J%.json}.tar.zst"
run r6b.out deps-C
[ $RC = 0 ] && grep -q "does not match its digest" "$T/r6b.out" && grep -q "^a | digest $D6 1003" "$T/r6b.out" &&
    grep -q "Cache restored from key: deps-C (.*from the coordinator: [0-9]* bytes" "$T/r6b.out" ||
    fail "a damaged local copy: exit $RC: $(grep -iE 'cache|digest|error' "$T/r6b.out" | head -n 6)"
pass "a damaged copy on the worker is not used: the blob comes again from the coordinator, checked"

# The coordinator's blob damaged too: refused by its digest at the worker.
DIG=$(sqlite3 "$T/history.db" "select digest from caches where key = 'deps-C'")
HEX=${DIG#sha256:}
BLOB=$T/store/blobs/${HEX:0:2}/$HEX
[ -f "$BLOB" ] || fail "no blob $BLOB in the coordinator's store"
echo garbage >"${J%.json}.tar.zst"
chmod u+w "$BLOB" && echo rotten >"$BLOB"
run r6c.out deps-C
[ $RC = 1 ] && grep -q "the blob $DIG from the coordinator hashes to sha256:" "$T/r6c.out" ||
    fail "a damaged blob in the store: exit $RC: $(grep -iE 'error|hashes' "$T/r6c.out" | head -n 4)"
pass "a blob damaged in the coordinator's store is refused by its digest, naming it"

# A hostile archive that is what the farm's entry names (a job that spoke
# the store's protocol itself could make one): refused entry by entry,
# nothing written outside.
mkdir -p "$T/evil/in"
echo pwned >"$T/evil/in/x"
tar --zstd -cf "$T/evil.tar.zst" -C "$T/evil" --transform 's|^in/x|../../../../escaped|' in/x
EHEX=$(sha256sum "$T/evil.tar.zst" | cut -c1-64)
mkdir -p "$T/store/blobs/${EHEX:0:2}" && cp "$T/evil.tar.zst" "$T/store/blobs/${EHEX:0:2}/$EHEX"
sqlite3 "$T/history.db" "PRAGMA busy_timeout = 5000; update caches set digest = 'sha256:$EHEX' where key = 'deps-C'"
run r7.out deps-C
[ $RC = 1 ] && grep -q "entry '../../../../escaped': its path is absolute or leaves the target" "$T/r7.out" ||
    fail "a hostile cache entry: exit $RC: $(grep -iE 'error|cache' "$T/r7.out" | head -n 4)"
# Nowhere under /tmp (the test and its workers are there), and no staging directory left in the cache.
! find /tmp -xdev -name escaped -newer "$T/cache.yml" 2>/dev/null | grep -q . ||
    fail "the hostile archive wrote outside its target: $(find /tmp -xdev -name escaped -newer "$T/cache.yml" 2>/dev/null)"
[ -z "$(ls -A "$CACHE" | grep -v -E -e '^\.lock$' -e '-[0-9a-f]{16}$')" ] || fail "left in the cache: $(ls -A "$CACHE")"
pass "an entry whose blob is a hostile archive fails the step naming the entry; nothing is written outside"

# 8. Another worker, cold: the entry comes from the coordinator, the same tree.
admit_worker w2
kill -HUP "$COORD_PID"
start_worker w2 --labels cold
wait_workers 2
sed 's/runs-on: linux/runs-on: [linux, cold]/' "$T/cache.yml" >"$T/cold.yml"
RC=0
"$KILN" submit --wait "$T/cold.yml" --input key=deps-A --input restore= --input files=1000 --input extra= >"$T/r8.out" 2>&1 || RC=$?
[ $RC = 0 ] && grep -q "hit=true matched=deps-A" "$T/r8.out" && grep -q "^a | digest $D1 1003" "$T/r8.out" &&
    grep -q "Cache restored from key: deps-A (.*from the coordinator" "$T/r8.out" &&
    [ -d "$T/work/w2/cache" ] || fail "restore on the other worker: exit $RC: $(grep -iE 'cache|hit=|digest' "$T/r8.out" | head -n 6)"
"$KILN" submit --wait "$T/cold.yml" --input key=deps-A2 --input restore=deps-A --input files=1000 --input extra= >"$T/r9.out" 2>&1 || RC=$?
[ $RC = 0 ] && grep -q "hit=false matched=deps-A primary=deps-A2" "$T/r9.out" && grep -q "^a | digest $D1 1003" "$T/r9.out" &&
    grep -q "from this worker's cache" "$T/r9.out" || fail "restore-keys on the other worker: $(grep -iE 'cache|hit=' "$T/r9.out" | head -n 6)"
pass "a cold worker restores the entry another worker saved (from the coordinator, then from its own copy), the same tree"

# 9. kiln cache list and rm, and the store's counters in kiln stats.
"$KILN" cache list >"$T/list.out" || fail "kiln cache list failed"
grep -q "deps-A2" "$T/list.out" && grep -q "^local " "$T/list.out" || fail "kiln cache list: $(cat "$T/list.out")"
"$KILN" cache rm local 'deps-A*' >"$T/rm.out" || fail "kiln cache rm failed: $(cat "$T/rm.out")"
grep -q "removed 2 cache entries" "$T/rm.out" || fail "kiln cache rm: $(cat "$T/rm.out")"
"$KILN" cache list --json | grep -q '"deps-A' && fail "removed entries are still listed"
RC=0
"$KILN" submit --wait "$T/cold.yml" --input key=deps-A --input restore= --input files=10 --input extra= >"$T/r10.out" 2>&1 || RC=$?
grep -q "hit=false matched= primary=deps-A" "$T/r10.out" || fail "a removed entry was still restored: $(grep -iE 'hit=|restored' "$T/r10.out")"
"$KILN" stats --json >"$T/stats.json"
for k in cache_hits cache_misses cache_saves bytes_in bytes_out; do
    [ "$(json_get "$T/stats.json" "\$.store.$k")" -gt 0 ] || fail "kiln stats: store.$k is not counted: $(cat "$T/stats.json")"
done
sqlite3 "$T/history.db" "select count(*) from audit where kind = 'cache_rm'" | grep -q '^1$' || fail "no audit row for the removal"
pass "kiln cache list and rm (audited; a removed entry is not restored), the store's counters in kiln stats"

# 10. `**` and exclusions: only what the patterns find is saved, and a
# restore puts it back over what the job has.
cat >"$T/glob.yml" <<'YML'
on: {workflow_dispatch: {inputs: {key: {required: true}}}}
jobs:
  a:
    runs-on: [linux, self-hosted]
    steps:
      - id: c
        uses: actions/cache@v4
        with:
          path: |
            tree/**/*.txt
            !tree/b/**
          key: ${{ inputs.key }}
      - run: |
          if [ "${{ steps.c.outputs.cache-hit }}" != true ]; then
            mkdir -p tree/a/deep tree/b && echo x >tree/a/x.txt && echo d >tree/a/deep/d.txt
            echo y >tree/a/y.log && echo z >tree/b/z.txt
          fi
          echo "tree $(find tree -type f | sort | tr '\n' ' ')"
YML
RC=0
"$KILN" submit --wait "$T/glob.yml" --input key=glob-1 >"$T/g1.out" 2>&1 || RC=$?
[ $RC = 0 ] && grep -q "Cache saved with key: glob-1 (2 files" "$T/g1.out" ||
    fail "a ** cache: exit $RC: $(grep -iE 'cache|error' "$T/g1.out" | head -n 4)"
RC=0
"$KILN" submit --wait "$T/glob.yml" --input key=glob-1 >"$T/g2.out" 2>&1 || RC=$?
[ $RC = 0 ] && grep -q "^a | tree tree/a/deep/d.txt tree/a/x.txt $" "$T/g2.out" ||
    fail "the ** cache restored: $(grep -E 'tree|Cache' "$T/g2.out")"
pass "'**' and '!' in path: the matching files saved, the excluded and unmatched not; restored in place"
