# The scheduler's order on a farm with one slot, read from the history:
# critical path first (a deep chain's head before independent leaves listed
# above it); duration history (a job known to be long goes before a short
# one listed first); fairness (a small run submitted behind a big one gets
# the next free slot, not the big run's leftovers); --scheduler fifo keeps
# workflow order.
source "$(dirname "$0")/lib.sh"
start_redis
make_keys
admit_worker w1
start_coordinator --heartbeat-ms 200 --lease-ms 5000
start_worker w1 --slots 1
wait_workers 1

# order RUN: job ids by their first attempt's start.
order() {
    sqlite3 "$T/history.db" "select job_id from attempts where run_id = $1 and attempt = 1
        order by started_ms"
}
# wait_run ID: until the run ends; fails unless it succeeded.
wait_run() {
    local id=$1 st
    for _ in $(seq 1 200); do
        "$KILN" status "$id" --json >"$T/s.json" || fail "status $id"
        st=$(json_get "$T/s.json" '$.state')
        case $st in success) echo "$id"; return 0 ;; failure | cancelled) fail "run $id: $st" ;; esac
        sleep 0.05
    done
    fail "run $id did not finish"
}
# run FILE: submits it and waits for it; prints its id.
run() {
    local id
    id=$("$KILN" submit "$1") || fail "submit $1"
    wait_run "$id"
}
cat >"$T/deep.yml" <<'YML'
name: deep
on: push
jobs:
  leaf1: {runs-on: self-hosted, steps: [{run: "true"}]}
  leaf2: {runs-on: self-hosted, steps: [{run: "true"}]}
  head: {runs-on: self-hosted, steps: [{run: "true"}]}
  mid: {runs-on: self-hosted, needs: head, steps: [{run: "true"}]}
  tail: {runs-on: self-hosted, needs: mid, steps: [{run: "true"}]}
YML
r=$(run "$T/deep.yml")
first=$(order "$r" | head -n 1)
[ "$first" = head ] || fail "critical path: first job was $first, want head ($(order "$r" | tr '\n' ' '))"
pass "critical path: the chain's head ran before the leaves listed above it"

cat >"$T/dur.yml" <<'YML'
name: durations
on: push
jobs:
  short: {runs-on: self-hosted, steps: [{run: "true"}]}
  long: {runs-on: self-hosted, steps: [{run: "sleep 0.4"}]}
YML
r1=$(run "$T/dur.yml")
[ "$(order "$r1" | head -n 1)" = short ] || fail "without history, workflow order should hold"
r2=$(run "$T/dur.yml")
[ "$(order "$r2" | head -n 1)" = long ] ||
    fail "with history, the long job should go first: $(order "$r2" | tr '\n' ' ')"
pass "duration history: the job known to be long went first on the next run"

cat >"$T/big.yml" <<'YML'
name: big
on: push
jobs:
  b1: {runs-on: self-hosted, steps: [{run: "sleep 1.5"}]}
  b2: {runs-on: self-hosted, steps: [{run: "sleep 0.2"}]}
  b3: {runs-on: self-hosted, steps: [{run: "sleep 0.2"}]}
  b4: {runs-on: self-hosted, steps: [{run: "sleep 0.2"}]}
YML
cat >"$T/small.yml" <<'YML'
name: small
on: push
jobs:
  s1: {runs-on: self-hosted, steps: [{run: "true"}]}
YML
# The small run is submitted while the big run's first job (1.5 s) holds the
# only slot; the order, not any duration, is what is checked.
big=$("$KILN" submit "$T/big.yml")
small=$(run "$T/small.yml")
wait_run "$big" >/dev/null
started() { sqlite3 "$T/history.db" "select started_ms from attempts where run_id = $1 and job_id = '$2'"; }
s1=$(started "$small" s1)
later=$(sqlite3 "$T/history.db" "select count(*) from attempts where run_id = $big and started_ms > $s1")
[ "$later" -ge 3 ] || fail "fairness: the small run waited behind the big one ($later of its jobs started after)"
pass "fairness: the small run got the next free slot ($later jobs of the big run started after it)"

# FIFO, for comparison: workflow order, the deep chain's head third.
kill -TERM "$COORD_PID"; wait "$COORD_PID" 2>/dev/null || true
start_coordinator --heartbeat-ms 200 --lease-ms 5000 --scheduler fifo
wait_workers 1
r=$(run "$T/deep.yml")
[ "$(order "$r" | head -n 1)" = leaf1 ] || fail "fifo: first job was $(order "$r" | head -n 1)"
pass "--scheduler fifo keeps workflow order"
out=$("$KILN_BIN/kiln-coordinator" --listen tcp://127.0.0.1:1 --redis "$T/redis.sock" --db "$T/x.db" \
    --key "$T/keys/server.key" --allow "$T/allow" --scheduler lottery 2>&1) && fail "a bad scheduler was accepted"
grep -q "lottery" <<<"$out" || fail "the refusal does not name the value: $out"
pass "an unknown scheduler is refused by name"
