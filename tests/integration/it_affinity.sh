# Cache-aware placement: two workers; a job that saved its cache on w2
# (the worker the usual rule would not pick first) goes back to w2 when
# both are free (the placement says why, in kiln status and the job's
# log). With w2 busy: the job waits for it when w2 is expected to be free
# sooner than restoring on w1 would take (kiln status says so while it
# waits), but no longer than that restore would take; it goes to w1 at
# once when w2's work is of unknown length. The pools' counters in kiln
# stats. Restores are taken to move at 1 MB/s (--restore-mb-s), so the
# weighing does not depend on how fast this machine is. A waiting job
# cancelled lets the next job wait for the same worker at once.
source "$(dirname "$0")/lib.sh"
start_redis
make_keys
admit_worker w1
admit_worker w2
start_coordinator --restore-mb-s 1
start_worker w1 --labels pool-a
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
          [ -d deps ] || { mkdir deps && seq 1 20000 >deps/list && head -c 8M /dev/urandom >deps/blob; }
          echo "hit=${{ steps.c.outputs.cache-hit }}"
YML
sed -e 's/deps-1/late-1/' -e 's/8M/4M/' -e 's/^  deps:/  late:/' "$T/deps.yml" >"$T/late.yml"
cat >"$T/block.yml" <<'YML'
on: push
jobs:
  block:
    runs-on: pool-b
    steps:
      - run: sleep 30
YML
# A job on w2 that takes as long as the file quick.s says.
cat >"$T/quick.yml" <<YML
on: push
jobs:
  quick:
    runs-on: pool-b
    steps:
      - run: sleep "\$(cat '$T/quick.s')"
YML
submit() { # OUT ON: waits; the run's number in RUN
    RC=0
    "$KILN" submit --wait "$T/deps.yml" --input on="$2" >"$T/$1" 2>&1 || RC=$?
    [ $RC = 0 ] || fail "run of deps on $2 exited $RC: $(tail -n 5 "$T/$1")"
    "$KILN" history --limit 1 --json >"$T/h.json"
    RUN=$(json_get "$T/h.json" '$[0].id')
}
w2_busy() { # [N]: until w2 holds N jobs (1)
    for _ in $(seq 1 200); do
        "$KILN" workers --json >"$T/w.json"
        [ "$(sqlite3 :memory: "select json_extract(j.value, '\$.busy') from json_each(readfile('$T/w.json')) j where json_extract(j.value, '\$.name') = 'w2'")" = "${1:-1}" ] && return 0
        sleep 0.05
    done
    fail "w2 never held ${1:-1} jobs: $(cat "$T/w.json")"
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

# w2 busy with a job that took 2 s last time: restoring the 8 MB cache on
# w1 would take ~8 s, so the job waits for w2, and says so while it waits.
echo 2 >"$T/quick.s"
"$KILN" submit --wait "$T/quick.yml" >"$T/q1.out" 2>&1 || fail "quick: $(tail -n 5 "$T/q1.out")"
"$KILN" submit "$T/quick.yml" >/dev/null || fail "cannot submit quick"
w2_busy
RUN=$("$KILN" submit "$T/deps.yml" --input on=linux) || fail "cannot submit deps"
seen=
for _ in $(seq 1 60); do
    "$KILN" status "$RUN" >"$T/status.out"
    grep -q "waiting: for w2, which holds what this job used last: expected free in" "$T/status.out" && { seen=1; break; }
    grep -q "placed:" "$T/status.out" && break
    sleep 0.05
done
[ -n "$seen" ] || fail "kiln status did not say the job waits for w2: $(tr "\n" "|" <"$T/status.out")"
"$KILN" logs "$RUN" -f >"$T/r5.out" 2>&1 || fail "run $RUN: $(tail -n 5 "$T/r5.out")"
[ "$(worker_of "$RUN")" = w2 ] || fail "the job went to $(worker_of "$RUN") rather than wait for w2: $("$KILN" status "$RUN")"
"$KILN" status "$RUN" | grep -qE "placed: warm: w2 holds 1 of the 1 cache this job used last; waited [0-9.]+ s for it rather than restore 8\.0 MB elsewhere \(~8\.[0-9] s\)" ||
    fail "the warm placement after a wait does not say why: $("$KILN" status "$RUN")"
grep -q "hit=true" "$T/r5.out" && grep -q "from this worker's cache" "$T/r5.out" || fail "run $RUN: $(grep -iE 'hit=|restored' "$T/r5.out")"
pass "with the warm worker expected free sooner than a restore elsewhere, the job waits for it, and says so"

# w2 busy past what it took last time: a job whose 4 MB cache only w2
# holds waits for it ~4 s, as long as restoring on w1 takes, then goes to
# w1. (late's first run teaches what it uses.)
"$KILN" submit --wait "$T/late.yml" --input on=pool-b >"$T/l1.out" 2>&1 || fail "late: $(tail -n 5 "$T/l1.out")"
echo 30 >"$T/quick.s"
"$KILN" submit "$T/quick.yml" >/dev/null || fail "cannot submit quick"
w2_busy
t0=$SECONDS
RC=0
"$KILN" submit --wait "$T/late.yml" --input on=linux >"$T/l2.out" 2>&1 || RC=$?
[ $RC = 0 ] || fail "late on linux exited $RC: $(tail -n 5 "$T/l2.out")"
"$KILN" history --limit 1 --json >"$T/h.json"
RUN=$(json_get "$T/h.json" '$[0].id')
[ "$(worker_of "$RUN")" = w1 ] || fail "with w2 overdue the job went to $(worker_of "$RUN")"
[ $((SECONDS - t0)) -ge 3 ] || fail "the job did not wait for w2 (done in $((SECONDS - t0)) s)"
"$KILN" status "$RUN" | grep -qE "placed: cold: waited 4\.[0-9] s for w2, which holds what this job used last, as long as restoring 4\.0 MB here was expected to take; it did not free up in time" ||
    fail "the cold placement after a wait does not say why: $("$KILN" status "$RUN")"
grep -q "hit=true" "$T/l2.out" && grep -q "from the coordinator" "$T/l2.out" || fail "run $RUN on w1: $(grep -iE 'hit=|restored' "$T/l2.out")"
pass "a job waits for a busy warm worker no longer than restoring elsewhere takes, then goes cold"
"$KILN" cancel "$((RUN - 1))" >"$T/cancel.out" 2>&1 || fail "cannot cancel quick: $(cat "$T/cancel.out")"
w2_busy 0

# A waiting job cancelled: the worker it waited for can be waited for by
# the next job at once (one waiter per worker), not only after the
# cancelled one's wait would have ended. w2's work takes 5 s (as last
# time); restoring deps' 8 MB on w1 would take 8 s.
waits_for_w2() { # RUN
    for _ in $(seq 1 60); do
        "$KILN" status "$1" >"$T/status.out"
        grep -q "waiting: for w2" "$T/status.out" && return 0
        sleep 0.05
    done
    fail "run $1 does not wait for w2: $(tr "\n" "|" <"$T/status.out")"
}
echo 5 >"$T/quick.s"
"$KILN" submit --wait "$T/quick.yml" >"$T/q5.out" 2>&1 || fail "quick: $(tail -n 5 "$T/q5.out")"
echo 30 >"$T/quick.s"
QUICK=$("$KILN" submit "$T/quick.yml") || fail "cannot submit quick"
w2_busy
A=$("$KILN" submit "$T/deps.yml" --input on=linux) || fail "cannot submit deps"
waits_for_w2 "$A"
"$KILN" cancel "$A" >"$T/cancel.out" 2>&1 || fail "cannot cancel run $A: $(cat "$T/cancel.out")"
B=$("$KILN" submit "$T/deps.yml" --input on=linux) || fail "cannot submit deps"
waits_for_w2 "$B"
"$KILN" cancel "$B" >"$T/cancel.out" 2>&1 || fail "cannot cancel run $B: $(cat "$T/cancel.out")"
"$KILN" cancel "$QUICK" >"$T/cancel.out" 2>&1 || fail "cannot cancel quick: $(cat "$T/cancel.out")"
w2_busy 0
pass "a waiting job cancelled frees its worker to be waited for by the next job at once"

# w2 busy with work of unknown length (never timed): the job goes to w1
# at once and restores from the coordinator.
"$KILN" submit "$T/block.yml" >/dev/null || fail "cannot submit the blocker"
w2_busy
t0=$SECONDS
submit r6.out linux
[ "$(worker_of "$RUN")" = w1 ] || fail "with w2 busy the job went to $(worker_of "$RUN")"
[ $((SECONDS - t0)) -lt 20 ] || fail "the job waited for the busy warm worker"
grep -q "hit=true" "$T/r6.out" && grep -q "from the coordinator" "$T/r6.out" || fail "run $RUN on w1: $(grep -iE 'hit=|restored' "$T/r6.out")"
"$KILN" status "$RUN" | grep -qE "placed: cold: w2 holds what this job used last but has no free slot and its work is of unknown length; placed at once rather than wait for it \(restoring 8\.0 MB here, ~8\.[0-9] s\)" ||
    fail "the cold placement does not say why: $("$KILN" status "$RUN")"
pass "with the warm worker busy for an unknown time the job goes to the cold one at once, restores from the coordinator, and says why"

"$KILN" stats --json >"$T/stats.json"
sqlite3 :memory: "select key, json_extract(value, '\$.placed_warm'), json_extract(value, '\$.placed_cold') from json_each(json_extract(readfile('$T/stats.json'), '\$.store.pools'))" >"$T/pools.txt"
grep -q "pool-b|4|" "$T/pools.txt" && grep -q "pool-a|0|2" "$T/pools.txt" || fail "kiln stats pools: $(cat "$T/pools.txt")"
[ "$(sqlite3 :memory: "select json_extract(value, '\$.cache_hit_rate') > 0 from json_each(json_extract(readfile('$T/stats.json'), '\$.store.pools')) where key like '%pool-b%'")" = 1 ] ||
    fail "no hit rate for pool-b: $(cat "$T/stats.json")"
[ "$(json_get "$T/stats.json" '$.store.restore_rate.from')" = configured ] ||
    fail "kiln stats does not say the restore rate was configured: $(cat "$T/stats.json")"
pass "kiln stats counts warm and cold placements and the cache hit rate per pool"
