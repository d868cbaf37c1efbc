# Told, not timed out: a client whose key the farm does not admit, one
# holding the wrong server key, and one pointed at a farm that is not
# running (a stale endpoint) are each told within a few seconds what is
# wrong, not "no answer" after the request timeout.
source "$(dirname "$0")/lib.sh"
start_redis
make_keys
start_coordinator
"$KILN" keygen stranger --dir "$T/keys" >/dev/null
"$KILN" keygen fake-server --dir "$T/keys" >/dev/null
told() { # NAME PATTERN CMD...
    local name=$1 pattern=$2
    shift 2
    local t0 rc=0
    t0=$(date +%s%3N)
    KILN_REQUEST_TIMEOUT_MS=15000 "$@" >"$T/told.out" 2>&1 || rc=$?
    local dt=$(($(date +%s%3N) - t0))
    [ $rc -ne 0 ] || fail "$name: the command succeeded"
    grep -q "$pattern" "$T/told.out" || fail "$name: not told why: $(cat "$T/told.out")"
    [ $dt -lt 5000 ] || fail "$name: told only after $dt ms"
    pass "$name: told in $dt ms: $(head -n 1 "$T/told.out")"
}
told "a key the farm does not admit" "refused this client's key" \
    env KILN_CLIENT_KEY="$T/keys/stranger.key" "$KILN" workers
told "the wrong server key" "CURVE handshake with .* fails" \
    env KILN_SERVER_KEY="$T/keys/fake-server.pub" "$KILN" workers
told "a farm that is not running" "nothing accepts connections at" \
    env KILN_COORDINATOR="tcp://127.0.0.1:$(free_port)" "$KILN" workers
"$KILN" workers >/dev/null || fail "an admitted client with the right keys is refused"

# A worker whose key is not admitted is told so (once per try, with
# backoff), and gets in once its key is added and the allow-list reloaded
# (SIGHUP), without a restart.
"$KILN" keygen late --dir "$T/keys" >/dev/null
start_worker late
for _ in $(seq 1 100); do grep -q "refused this worker's key" "$T/late.log" && break; sleep 0.05; done
grep -q "refused this worker's key" "$T/late.log" || fail "the refused worker was not told: $(tail -n 3 "$T/late.log")"
cp "$T/keys/late.pub" "$T/allow/workers/"
kill -HUP "$COORD_PID"
for _ in $(seq 1 200); do "$KILN" workers --json | grep -q '"late"' && break; sleep 0.05; done
"$KILN" workers --json | grep -q '"late"' || fail "the worker did not get in after the allow-list was fixed"
pass "a refused worker was told, kept trying with backoff, and got in once its key was admitted"
