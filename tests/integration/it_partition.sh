# A network partition: the coordinator and two workers live in their own
# network namespaces, joined by veth pairs. A busy worker's link is cut for
# longer than the lease: its job runs again on the other worker. When the
# link comes back, the cut-off worker's late result carries a stale fencing
# token and is rejected (and recorded), and the worker rejoins the farm.
source "$(dirname "$0")/lib.sh"
[ "$(id -u)" = 0 ] || skip "network namespaces need root"
command -v ip >/dev/null || skip "no ip command (iproute2)"
tag=$$
NS_C=kiln-c-$tag NS_1=kiln-w1-$tag NS_2=kiln-w2-$tag
ip netns add "$NS_C" 2>/dev/null || skip "cannot create network namespaces here"
test_cleanup() {
    for ns in "$NS_C" "$NS_1" "$NS_2"; do ip netns del "$ns" 2>/dev/null || true; done
}
ip netns add "$NS_1"
ip netns add "$NS_2"
NET=10.250.$((tag % 200))
for i in 1 2; do
    ns=NS_$i
    ip link add "kc$i-$tag" type veth peer name "kw$i-$tag"
    ip link set "kc$i-$tag" netns "$NS_C"
    ip link set "kw$i-$tag" netns "${!ns}"
    ip -n "$NS_C" addr add "$NET.$((i * 4 + 1))/30" dev "kc$i-$tag"
    ip -n "${!ns}" addr add "$NET.$((i * 4 + 2))/30" dev "kw$i-$tag"
    ip -n "$NS_C" link set "kc$i-$tag" up
    ip -n "${!ns}" link set "kw$i-$tag" up
    ip -n "${!ns}" link set lo up
done
ip -n "$NS_C" link set lo up
pass "namespaces $NS_C, $NS_1, $NS_2 joined by veth pairs"

start_redis
make_keys
admit_worker w1
admit_worker w2
PORT=7420
ENDPOINT=tcp://127.0.0.1:$PORT
export KILN_COORDINATOR=$ENDPOINT
ip netns exec "$NS_C" "$KILN_BIN/kiln-coordinator" --listen "tcp://0.0.0.0:$PORT" \
    --redis "$T/redis.sock" --db "$T/history.db" --key "$T/keys/server.key" --allow "$T/allow" \
    --heartbeat-ms 200 --lease-ms 1500 --log-level debug >>"$T/coordinator.log" 2>&1 &
PIDS+=($!)
kc() { ip netns exec "$NS_C" "$KILN" "$@"; }
start_ns_worker() {
    local i=$1 ns=NS_$1
    mkdir -p "$T/work"
    ip netns exec "${!ns}" "$KILN_BIN/kiln-worker" --coordinator "tcp://$NET.$((i * 4 + 1)):$PORT" \
        --server-key "$T/keys/server.pub" --key "$T/keys/w$i.key" --name "w$i" \
        --work-dir "$T/work/w$i" >>"$T/w$i.log" 2>&1 &
    PIDS+=($!)
}
start_ns_worker 1
for _ in $(seq 1 200); do [ "$(kc workers --json 2>/dev/null | grep -c '"name"')" -ge 1 ] && break; sleep 0.05; done
LEDGER=$T/ledger
cat >"$T/wf.yml" <<YML
name: partition
on: push
jobs:
  long:
    runs-on: self-hosted
    steps:
      - run: |
          echo "start \$KILN_WORKER \$KILN_ATTEMPT" >> $LEDGER
          sleep 3
          echo "done \$KILN_WORKER \$KILN_ATTEMPT" >> $LEDGER
YML
run=$(kc submit "$T/wf.yml")
for _ in $(seq 1 200); do grep -q '^start w1' "$LEDGER" 2>/dev/null && break; sleep 0.05; done
grep -q '^start w1' "$LEDGER" || fail "w1 never started the job"
start_ns_worker 2
ip -n "$NS_1" link set "kw1-$tag" down
pass "w1's link cut while it runs the job"
for _ in $(seq 1 200); do grep -q '^start w2' "$LEDGER" && break; sleep 0.05; done
grep -q '^start w2' "$LEDGER" || fail "the job was not re-dispatched to w2"
pass "the job runs again on w2"
# Cut off for longer than its lease, w1 stops its (now stale) attempt by
# itself; then the link returns.
for _ in $(seq 1 100); do grep -q "no word from the coordinator" "$T/w1.log" && break; sleep 0.05; done
grep -q "no word from the coordinator" "$T/w1.log" || fail "w1 did not stop its job when cut off"
grep -q '^done w1' "$LEDGER" && fail "w1 ran its job to the end while cut off, beside w2"
pass "w1, cut off past its lease, stopped its job by itself"
ip -n "$NS_1" link set "kw1-$tag" up
for _ in $(seq 1 300); do
    kc status "$run" --json >"$T/st.json" 2>/dev/null && [ "$(json_get "$T/st.json" '$.state')" != running ] && break
    sleep 0.1
done
[ "$(json_get "$T/st.json" '$.state')" = success ] || fail "run did not succeed: $(cat "$T/st.json")"
[ "$(json_get "$T/st.json" '$.jobs[0].attempts[0].state')" = worker_lost ] || fail "attempt 1 not worker_lost"
[ "$(json_get "$T/st.json" '$.jobs[0].attempts[1].worker')" = w2 ] || fail "attempt 2 not on w2"
for _ in $(seq 1 100); do
    [ "$(sqlite3 "$T/history.db" "select count(*) from audit where kind='result.stale' and actor='w1'")" -ge 1 ] && break
    sleep 0.1
done
[ "$(sqlite3 "$T/history.db" "select count(*) from audit where kind='result.stale' and actor='w1'")" -ge 1 ] ||
    fail "the zombie's late result was not recorded as stale"
grep -q "rejected job result for 1/long token 1 from worker w1" "$T/coordinator.log" ||
    fail "the stale result was not rejected by fencing"
pass "w1's late result (token 1) was rejected by fencing and recorded"
for _ in $(seq 1 100); do kc workers --json | grep -q '"w1"' && break; sleep 0.1; done
kc workers --json | grep -q '"w1"' || fail "w1 did not rejoin"
pass "w1 rejoined the farm"
