# One coordinator per farm. A second coordinator started on the same
# history refuses at once, naming the one that holds it, and recovers
# nothing; one started on another history but the same Redis refuses too,
# naming the farm that holds Redis. The first goes on serving; once it is
# killed, a restart on the same history takes the farm over at once.
source "$(dirname "$0")/lib.sh"
start_redis
make_keys
admit_worker w1
start_coordinator
cat >"$T/wf.yml" <<'YML'
on: push
jobs:
  a:
    runs-on: self-hosted
    steps: [{run: echo hi}]
YML
run=$("$KILN" submit "$T/wf.yml")
first=$COORD_PID
second() {
    local db=$1 port
    port=$(free_port)
    rc=0
    timeout 20 "$KILN_BIN/kiln-coordinator" --listen "tcp://127.0.0.1:$port" --redis "$T/redis.sock" \
        --db "$db" --key "$T/keys/server.key" --allow "$T/allow" >"$T/second.out" 2>&1 || rc=$?
    [ $rc -ne 0 ] || fail "a second coordinator started: $(cat "$T/second.out")"
    [ $rc -ne 124 ] || fail "a second coordinator did not refuse at once"
}
second "$T/history.db"
grep -q "another coordinator owns this farm's history" "$T/second.out" || fail "no reason given: $(cat "$T/second.out")"
grep -q "pid $first" "$T/second.out" || fail "the holder is not named: $(cat "$T/second.out")"
grep -q "recovered" "$T/second.out" && fail "the second coordinator recovered runs: $(cat "$T/second.out")"
pass "a second coordinator on the same history refuses, naming pid $first"

second "$T/other.db"
grep -q "queue of another farm" "$T/second.out" || fail "no reason given: $(cat "$T/second.out")"
grep -q "$T/history.db" "$T/second.out" || fail "the farm holding Redis is not named: $(cat "$T/second.out")"
pass "a coordinator of another history on the same Redis refuses, naming the farm that holds it"

kill -0 "$first" || fail "the first coordinator died"
"$KILN" status "$run" --json >"$T/st.json" || fail "the first coordinator stopped answering"
[ "$(json_get "$T/st.json" '$.state')" = running ] || fail "the run changed: $(cat "$T/st.json")"
kill -9 "$first"
wait "$first" 2>/dev/null || true
start_coordinator
start_worker w1
wait_workers 1
for _ in $(seq 1 200); do
    "$KILN" status "$run" --json >"$T/st.json" 2>/dev/null && [ "$(json_get "$T/st.json" '$.state')" = success ] && break
    sleep 0.05
done
[ "$(json_get "$T/st.json" '$.state')" = success ] || fail "the run did not finish after the takeover: $(cat "$T/st.json")"
pass "after a kill -9 the restarted coordinator takes the farm over at once and the run finishes"
