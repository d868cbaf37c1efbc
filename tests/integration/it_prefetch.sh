# Prefetch: a worker whose running job belongs to a run of short jobs and is
# about to end gets its next assignment queued (Hello.lookahead), and starts
# it the moment the slot frees. Every job still runs exactly once and
# succeeds; a worker started with --prefetch 0 never queues; jobs that are
# not short are never queued behind one another; an out-of-range value is
# refused.
source "$(dirname "$0")/lib.sh"
start_redis
make_keys
for w in eager plain; do admit_worker $w; done
start_coordinator
start_worker eager --labels eager --log-level debug
start_worker plain --labels plain --log-level debug --prefetch 0
wait_workers 2

# wide LABEL N CMD: N independent one-step jobs on the workers with LABEL.
wide() {
    {
        printf 'name: %s-%s\non: push\njobs:\n' "$1" "$2"
        for i in $(seq 1 "$2"); do
            printf '  j%d:\n    runs-on: [self-hosted, %s]\n    steps: [{run: "%s"}]\n' "$i" "$1" "$3"
        done
    } >"$T/$1-$2.yml"
}

wide eager 60 true
"$KILN" submit --wait "$T/eager-60.yml" >"$T/eager.txt" 2>&1 || fail "the eager run failed: $(cat "$T/eager.txt")"
run=$(sqlite3 "$T/history.db" "select id from runs where name = 'eager-60'")
[ "$(sqlite3 "$T/history.db" "select count(*) from jobs where run_id = $run and state = 'success' and attempt = 1")" = 60 ] ||
    fail "want 60 jobs successful at their first attempt: $(sqlite3 "$T/history.db" "select job_id, state, attempt from jobs where run_id = $run and not (state = 'success' and attempt = 1)")"
[ "$(sqlite3 "$T/history.db" "select count(*) from attempts where run_id = $run")" = 60 ] || fail "more attempts than jobs"
[ "$(sqlite3 "$T/history.db" "select count(*) from steps where run_id = $run and state = 'success'")" = 60 ] || fail "want 60 successful steps"
queued=$(grep -c "queued" "$T/eager.log" || true)
[ "$queued" -ge 1 ] || fail "no assignment was queued on the prefetching worker"
pass "60 short jobs on one worker: each ran once and succeeded; $queued were queued behind a running one"

wide plain 30 true
"$KILN" submit --wait "$T/plain-30.yml" >"$T/plain.txt" 2>&1 || fail "the plain run failed: $(cat "$T/plain.txt")"
grep -q "queued" "$T/plain.log" && fail "the --prefetch 0 worker queued an assignment"
grep -q "no free slot" "$T/coordinator.log" "$T/plain.log" && fail "an assignment was refused for want of a slot"
pass "a worker with --prefetch 0 is never sent more than its slots"

# Jobs of 50 ms are not short: never queued behind another (a queued job
# would hold a slot that a more urgent job becoming ready might need).
before=$(grep -c "queued" "$T/eager.log" || true)
wide eager 8 "sleep 0.05"
"$KILN" submit --wait "$T/eager-8.yml" >"$T/slow.txt" 2>&1 || fail "the slow run failed: $(cat "$T/slow.txt")"
after=$(grep -c "queued" "$T/eager.log" || true)
[ "$after" = "$before" ] || fail "$((after - before)) slow jobs were queued behind a running one"
pass "jobs that are not short wait for a free slot"

rc=0
"$KILN_BIN/kiln-worker" --coordinator "$ENDPOINT" --server-key "$T/keys/server.pub" \
    --key "$T/keys/plain.key" --work-dir "$T/work/bogus" --prefetch 9 >"$T/bogus.log" 2>&1 || rc=$?
[ $rc -eq 2 ] || fail "--prefetch 9 exited $rc, want 2"
grep -q "prefetch must be 0..4" "$T/bogus.log" || fail "no message for --prefetch 9: $(cat "$T/bogus.log")"
pass "an out-of-range --prefetch is refused (exit 2)"
