# Garbage from authenticated peers: random bytes, truncated and oversized
# frames, another protocol version, multi-frame messages, messages of the
# wrong role and results for jobs never held, sent with an admitted worker
# key and an admitted client key. The coordinator logs and drops each, and
# keeps serving real work.
source "$(dirname "$0")/lib.sh"
start_farm 1
admit_worker poke
kill -HUP "$COORD_PID" # reload the allow-list with the new key
"$KILN" keygen pokeclient --dir "$T/keys" >/dev/null
cp "$T/keys/pokeclient.pub" "$T/allow/clients/"
kill -HUP "$COORD_PID"
sleep 0.3
# The tool's own end does not matter (libzmq 4.3.4 may abort a socket whose
# peer cut it off mid-write); what matters is the coordinator.
n=$("$KILN_BIN/kiln-wirepoke" "$ENDPOINT" "$T/keys/server.pub" "$T/keys/poke.key" 2>/dev/null || echo "some")
n2=$("$KILN_BIN/kiln-wirepoke" "$ENDPOINT" "$T/keys/server.pub" "$T/keys/pokeclient.key" 2>/dev/null || echo "some")
pass "sent $n hostile messages as a worker and $n2 as a client"
cat >"$T/ok.yml" <<'YML'
name: ok
on: push
jobs:
  a:
    runs-on: self-hosted
    steps:
      - run: echo still serving
YML
timeout 30 "$KILN" submit --wait "$T/ok.yml" >"$T/ok.out" 2>&1 || fail "real run failed: $(cat "$T/ok.out")"
kill -0 "$COORD_PID" || fail "the coordinator died"
pass "the coordinator kept serving"
"$KILN" stats --json >"$T/stats.json"
dropped=$(json_get "$T/stats.json" '$.garbage_dropped')
[ "$dropped" -ge 100 ] || fail "only $dropped messages counted as dropped"
grep -q "undecodable message" "$T/coordinator.log" || fail "random bytes not logged"
grep -q "protocol version 99" "$T/coordinator.log" || fail "wrong version not logged"
grep -q "multi-frame message" "$T/coordinator.log" || fail "multi-frame not logged"
grep -q "longer than 65536 bytes" "$T/coordinator.log" || fail "oversized field not logged"
grep -q "worker key poke .* may not send" "$T/coordinator.log" || fail "wrong-role message not logged"
[ "$(sqlite3 "$T/history.db" "select count(*) from audit where kind='run.submit' and actor='poke'")" = 0 ] ||
    fail "a worker key created a run"
[ "$(sqlite3 "$T/history.db" "select count(*) from audit where kind='run.submit' and actor='pokeclient'")" = 1 ] ||
    fail "the client key's (valid) submission was not accepted"
pass "$dropped messages dropped, each kind logged with its peer"
