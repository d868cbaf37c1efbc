# Cache-aware placement: two workers; a job that saved its cache on w2
# (the worker the usual rule would not pick first) goes back to w2 when
# both are free (the placement says why, in kiln status and the job's
# log), and to w1 at once when w2 is busy (restoring from the coordinator
# rather than waiting); the pools' counters in kiln stats.
source "$(dirname "$0")/lib.sh"
start_farm 1 --labels pool-a
admit_worker w2
kill -HUP "$COORD_PID"
start_worker w2 --labels pool-b
wait_workers 2

cat >"$T/deps.yml" <<'YML'
on: {workflow_dispatch: {inputs: {on: {required: true}}}}
jobs:
  deps:
    runs-on: ${{ inputs.on }}
    steps:
      - id: c
        uses: actions/cache@v4
        with:
          path: deps
          key: deps-1
      - run: |
          [ -d deps ] || { mkdir deps && seq 1 20000 >deps/list; }
          echo "hit=${{ steps.c.outputs.cache-hit }}"
YML
cat >"$T/block.yml" <<'YML'
on: push
jobs:
  block:
    runs-on: pool-b
    steps:
      - run: sleep 30
YML
submit() { # OUT ON: waits; the run's number in RUN
    RC=0
    "$KILN" submit --wait "$T/deps.yml" --input on="$2" >"$T/$1" 2>&1 || RC=$?
    [ $RC = 0 ] || fail "run of deps on $2 exited $RC: $(tail -n 5 "$T/$1")"
    "$KILN" history --limit 1 --json >"$T/h.json"
    RUN=$(json_get "$T/h.json" '$[0].id')
}
worker_of() { "$KILN" status "$1" --json >"$T/st.json"; json_get "$T/st.json" '$.jobs[0].worker'; }
warm_count() { "$KILN" workers --json >"$T/w.json"; sqlite3 :memory: "select json_extract(j.value, '\$.warm') from json_each(readfile('$T/w.json')) j where json_extract(j.value, '\$.name') = '$1'"; }

# The first run can only go to w2: it saves there.
submit r1.out pool-b
grep -q "Cache saved with key: deps-1" "$T/r1.out" || fail "run 1 did not save: $(grep -i cache "$T/r1.out")"
for _ in $(seq 1 100); do [ "$(warm_count w2)" -gt 0 ] && break; sleep 0.05; done
[ "$(warm_count w2)" -gt 0 ] || fail "w2 never said what it holds: $(cat "$T/w.json")"

# Both free: three runs in a row go to w2, and say why.
for i in 2 3 4; do
    submit r$i.out linux
    [ "$(worker_of "$RUN")" = w2 ] || fail "run $RUN went to $(worker_of "$RUN") though w2 holds its cache"
    grep -q "hit=true" "$T/r$i.out" && grep -q "from this worker's cache" "$T/r$i.out" || fail "run $RUN: $(grep -iE 'hit=|restored' "$T/r$i.out")"
done
"$KILN" status "$RUN" >"$T/status.out"
grep -q "placed: warm: w2 holds 1 of the 1 cache this job used last" "$T/status.out" ||
    fail "kiln status does not say why: $(tr "\n" "|" <"$T/status.out")"
grep -q "placed on w2: warm" "$T/r4.out" || fail "the job's log does not say why: $(head -n 5 "$T/r4.out")"
pass "with both workers free the job goes to the worker that holds its cache (3 of 3), and says why"

# w2 busy: the job goes to w1 at once and restores from the coordinator.
"$KILN" submit "$T/block.yml" >/dev/null || fail "cannot submit the blocker"
for _ in $(seq 1 100); do
    "$KILN" workers --json >"$T/w.json"
    [ "$(sqlite3 :memory: "select json_extract(j.value, '\$.busy') from json_each(readfile('$T/w.json')) j where json_extract(j.value, '\$.name') = 'w2'")" = 1 ] && break
    sleep 0.05
done
t0=$SECONDS
submit r5.out linux
[ "$(worker_of "$RUN")" = w1 ] || fail "with w2 busy the job went to $(worker_of "$RUN")"
[ $((SECONDS - t0)) -lt 20 ] || fail "the job waited for the busy warm worker"
grep -q "hit=true" "$T/r5.out" && grep -q "from the coordinator" "$T/r5.out" || fail "run $RUN on w1: $(grep -iE 'hit=|restored' "$T/r5.out")"
"$KILN" status "$RUN" | grep -q "placed: cold: w2 holds what this job used last but has no free slot; placed at once rather than wait for it" ||
    fail "the cold placement does not say why: $("$KILN" status "$RUN")"
pass "with the warm worker busy the job goes to the cold one at once, restores from the coordinator, and says why"

"$KILN" stats --json >"$T/stats.json"
sqlite3 :memory: "select key, json_extract(value, '\$.placed_warm'), json_extract(value, '\$.placed_cold') from json_each(json_extract(readfile('$T/stats.json'), '\$.store.pools'))" >"$T/pools.txt"
grep -q "pool-b|3|" "$T/pools.txt" && grep -q "pool-a|0|1" "$T/pools.txt" || fail "kiln stats pools: $(cat "$T/pools.txt")"
[ "$(sqlite3 :memory: "select json_extract(value, '\$.cache_hit_rate') > 0 from json_each(json_extract(readfile('$T/stats.json'), '\$.store.pools')) where key like '%pool-b%'")" = 1 ] ||
    fail "no hit rate for pool-b: $(cat "$T/stats.json")"
pass "kiln stats counts warm and cold placements and the cache hit rate per pool"
