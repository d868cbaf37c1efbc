# kiln up supervises its workers: both workers killed, kiln up says so and
# starts them again (after a backoff), and a submission made meanwhile
# runs once they are back instead of waiting for ever.
source "$(dirname "$0")/lib.sh"
FARM=$T/farm
PORT=$(free_port)
"$KILN" up --data-dir "$FARM" --workers 2 --listen "tcp://127.0.0.1:$PORT" >"$T/up.out" 2>&1 &
UP=$!
PIDS+=($UP)
workers() { "$KILN" workers --data-dir "$FARM" --json 2>/dev/null | grep -c '"name"' || true; }
for _ in $(seq 1 200); do [ "$(workers)" -ge 2 ] && break; sleep 0.05; done
[ "$(workers)" -ge 2 ] || fail "kiln up did not bring 2 workers up"
for w in worker-1 worker-2; do
    pid=$(pgrep -f -- "--work-dir $FARM/work/$w" | head -n 1)
    [ -n "$pid" ] || fail "no pid for $w"
    kill -9 "$pid"
done
cat >"$T/quick.yml" <<'YML'
name: quick
on: push
jobs:
  hello:
    runs-on: self-hosted
    steps: [{run: echo "back again"}]
YML
timeout 30 "$KILN" submit --wait "$T/quick.yml" --data-dir "$FARM" >"$T/q.out" 2>&1 || fail "the run after the workers died: $(cat "$T/q.out")"
grep -q "back again" "$T/q.out" || fail "the job did not run"
# The run needed one worker back; the other may still be in its backoff.
for w in worker-1 worker-2; do
    for _ in $(seq 1 200); do grep -q "$w started again" "$T/up.out" && break; sleep 0.05; done
    grep -q "$w was killed by signal 9; starting it again in" "$T/up.out" || fail "kiln up did not report $w: $(cat "$T/up.out")"
    grep -q "$w started again" "$T/up.out" || fail "kiln up did not start $w again: $(cat "$T/up.out")"
done
kill -0 "$UP" || fail "kiln up exited"
pass "both workers killed: kiln up reported it, started them again, and the run made meanwhile ran"
kill -TERM "$UP"
wait "$UP" 2>/dev/null || true
