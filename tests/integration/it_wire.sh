# Wire secrecy: with a recording relay between the coordinator and both
# the worker and the client, a run's output and its workflow text travel
# (the run works and its logs arrive) but never appear in plaintext.
source "$(dirname "$0")/lib.sh"
start_redis
make_keys
admit_worker w1
start_coordinator
PORT2=$(free_port)
while [ "$PORT2" = "$PORT" ]; do PORT2=$(free_port); done
"$KILN_BIN/kiln-tcptap" "$PORT2" "$PORT" "$T/cap.bin" >"$T/tap.log" 2>&1 &
PIDS+=($!)
TAP_PID=$!
for _ in $(seq 1 100); do
    (exec 3<>/dev/tcp/127.0.0.1/$PORT2) 2>/dev/null && break
    sleep 0.05
done
kill -0 "$TAP_PID" 2>/dev/null || fail "tap did not start: $(cat "$T/tap.log")"
WORKER_ENDPOINT=tcp://127.0.0.1:$PORT2
export KILN_COORDINATOR=tcp://127.0.0.1:$PORT2
start_worker w1
wait_workers 1

# The marker is only made at run time; neither it nor the comment below
# may appear on the wire.
cat >"$T/wire.yml" <<'YML'
# ZEBRA-QUOKKA-comment-7731 this sentence is only in the workflow text
name: wire
on: push
jobs:
  speak:
    runs-on: self-hosted
    steps:
      - name: say it
        run: |
          echo "PLAIN$((1000+2345))TEXT"
          echo "SECOND$((40+2))LINE" >&2
YML
grep -q PLAIN3345TEXT "$T/wire.yml" && fail "the marker is literally in the workflow"
"$KILN" submit --wait "$T/wire.yml" >"$T/out.txt" 2>&1 || fail "run failed: $(cat "$T/out.txt")"
grep -q "run 1 success" "$T/out.txt" || fail "no success summary: $(cat "$T/out.txt")"
"$KILN" logs 1 >"$T/logs.txt" || fail "kiln logs failed"
grep -q "^speak | PLAIN3345TEXT$" "$T/logs.txt" || fail "marker not in the logs: $(cat "$T/logs.txt")"
grep -q "SECOND42LINE" "$T/logs.txt" || fail "stderr marker not in the logs: $(cat "$T/logs.txt")"
pass "run through the tap succeeded and its output arrived"

# Let the relay flush what it has.
sleep 0.2
size=$(stat -c %s "$T/cap.bin")
[ "$size" -gt 1000 ] || fail "capture is only $size bytes"
grep -aq CURVE "$T/cap.bin" || fail "no CURVE handshake in the capture"
pass "capture holds $size bytes of CURVE traffic"
n=$(grep -ac PLAIN3345TEXT "$T/cap.bin" || true)
[ "$n" = 0 ] || fail "the step's output crossed the wire in plaintext ($n hits)"
n=$(grep -ac SECOND42LINE "$T/cap.bin" || true)
[ "$n" = 0 ] || fail "the step's stderr crossed the wire in plaintext ($n hits)"
n=$(grep -ac ZEBRA-QUOKKA "$T/cap.bin" || true)
[ "$n" = 0 ] || fail "the workflow text crossed the wire in plaintext ($n hits)"
n=$(grep -ac 'echo "PLAIN' "$T/cap.bin" || true)
[ "$n" = 0 ] || fail "the step script crossed the wire in plaintext ($n hits)"
pass "neither output, script nor workflow text is in plaintext on the wire"
