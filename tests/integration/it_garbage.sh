# Hostile bytes on the coordinator's port: hundreds of connections of
# random bytes, some large, and half-open connections held during a run,
# neither crash the coordinator, stop it serving a real run, nor leak its
# file descriptors.
source "$(dirname "$0")/lib.sh"
start_farm 1
fds() { ls "/proc/$COORD_PID/fd" | wc -l; }
FDS_BEFORE=$(fds)

# A few half-open connections, held open during everything below: one
# silent, one with a partial ZMTP greeting, one with a full ZMTP 3.0
# greeting announcing CURVE and nothing more.
exec 4<>"/dev/tcp/127.0.0.1/$PORT"
exec 5<>"/dev/tcp/127.0.0.1/$PORT"
printf '\xff\x00\x00\x00\x00\x00\x00\x00\x01\x7f\x03' >&5
exec 6<>"/dev/tcp/127.0.0.1/$PORT"
{
    printf '\xff\x00\x00\x00\x00\x00\x00\x00\x01\x7f\x03\x00CURVE'
    head -c 15 /dev/zero
    printf '\x00'
    head -c 31 /dev/zero
} >&6

start=$SECONDS
sent=0
for i in $(seq 1 200); do
    n=512
    [ $((i % 50)) -eq 0 ] && n=65536
    # The coordinator may hang up mid-write (EPIPE): that is its right.
    if (exec 3<>"/dev/tcp/127.0.0.1/$PORT" || exit 1; head -c $n /dev/urandom >&3 || true) 2>/dev/null; then
        sent=$((sent + 1))
    fi
    [ $((SECONDS - start)) -lt 30 ] || fail "sending garbage took over 30 s (at connection $i)"
done
# Random bytes that start like a ZMTP greeting, so they get past the
# signature check.
for i in $(seq 1 20); do
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT" && { printf '\xff\x00\x00\x00\x00\x00\x00\x00\x01\x7f\x03\x00CURVE'; head -c 1024 /dev/urandom; } >&3) 2>/dev/null || true
done
[ $sent -ge 190 ] || fail "only $sent of 200 garbage connections were accepted"
kill -0 "$COORD_PID" 2>/dev/null || fail "coordinator died from garbage"
pass "$sent garbage connections sent in $((SECONDS - start))s, coordinator alive"

cat >"$T/ok.yml" <<'YML'
name: survives
on: push
jobs:
  a:
    runs-on: self-hosted
    steps:
      - run: echo still-serving
  b:
    needs: a
    runs-on: self-hosted
    steps:
      - run: echo after-a
YML
rc=0
KILN_REQUEST_TIMEOUT_MS=10000 timeout 40 "$KILN" submit --wait "$T/ok.yml" >"$T/out.txt" 2>&1 || rc=$?
[ $rc -eq 0 ] || fail "valid run after garbage exited $rc: $(cat "$T/out.txt")"
grep -q "run 1 success" "$T/out.txt" || fail "no success summary: $(cat "$T/out.txt")"
"$KILN" logs 1 a | grep -qx "a | still-serving" || fail "run 1 has no output"
kill -0 "$COORD_PID" 2>/dev/null || fail "coordinator died"
"$KILN" workers --json >"$T/w.json" || fail "kiln workers failed"
[ "$(json_get "$T/w.json" '$[0].name')" = w1 ] || fail "worker w1 no longer connected: $(cat "$T/w.json")"
pass "valid run succeeds with half-open connections held; worker still connected"

# Close the half-open connections; the coordinator's descriptors go back
# to about where they were.
exec 4>&- 5>&- 6>&-
n=$(fds)
for _ in $(seq 1 100); do
    n=$(fds)
    [ "$n" -le $((FDS_BEFORE + 5)) ] && break
    sleep 0.05
done
[ "$n" -le $((FDS_BEFORE + 5)) ] || fail "coordinator holds $n fds, had $FDS_BEFORE before the garbage"
kill -0 "$COORD_PID" 2>/dev/null || fail "coordinator died"
rc=0
KILN_REQUEST_TIMEOUT_MS=5000 timeout 20 "$KILN" history --json >"$T/h.json" || rc=$?
[ $rc -eq 0 ] && [ "$(json_get "$T/h.json" '$[0].state')" = success ] || fail "history after garbage: $rc $(cat "$T/h.json")"
pass "no descriptor leak ($FDS_BEFORE fds before, $n after), coordinator still answers"
