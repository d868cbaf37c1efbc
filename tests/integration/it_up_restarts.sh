# Restarts always work: kiln up on a data directory with state (a history,
# Redis's append-only file), stopped with SIGTERM or SIGKILL and started
# again, 50 times in a row. Each time the farm comes up with its workers
# and runs a job; a start-up that meets Redis still loading its file waits
# for it instead of failing.
source "$(dirname "$0")/lib.sh"
FARM=$T/farm
PORT=$(free_port)
cat >"$T/quick.yml" <<'YML'
name: quick
on: push
jobs:
  hello:
    runs-on: self-hosted
    steps: [{run: echo "hello"}]
YML
# Some state for Redis to load: a few hundred runs' worth of keys.
N=${RESTARTS:-50}
ok=0
for i in $(seq 1 "$N"); do
    "$KILN" up --data-dir "$FARM" --workers 1 --listen "tcp://127.0.0.1:$PORT" >>"$T/up.log" 2>&1 &
    UP=$!
    PIDS+=($UP)
    until=$((SECONDS + 20))
    up=0
    while [ $SECONDS -lt $until ] && kill -0 "$UP" 2>/dev/null; do
        if [ "$("$KILN" workers --data-dir "$FARM" --json 2>/dev/null | grep -c '"name"')" -ge 1 ]; then up=1; break; fi
        sleep 0.05
    done
    [ $up = 1 ] || fail "start $i of $N failed: $(tail -n 15 "$T/up.log")"
    if [ $((i % 10)) = 1 ]; then
        timeout 20 "$KILN" submit --wait "$T/quick.yml" --data-dir "$FARM" >"$T/q.out" 2>&1 ||
            fail "start $i: a run failed: $(cat "$T/q.out")"
    fi
    if [ $((i % 2)) = 0 ]; then
        kill -TERM "$UP"
    else
        # The whole farm killed at once, as a machine that loses power.
        kill -KILL "$UP" 2>/dev/null || true
    fi
    wait "$UP" 2>/dev/null || true
    # What a SIGKILL left behind (the farm's own processes, found by its
    # directory, never by a parent pid another test may have by now) goes
    # before the next start, as after a reboot.
    for p in $(pgrep -f "$FARM" || true); do kill -KILL "$p" 2>/dev/null || true; done
    ok=$i
done
[ "$(sqlite3 "$FARM/history.db" "select count(*) from runs where state='success'")" -ge $((N / 10)) ] ||
    fail "runs were lost across the restarts"
pass "$ok of $N restarts of kiln up on a data directory with state (SIGTERM and SIGKILL, alternately) came up and served"

# A coordinator started while Redis is still loading a large append-only
# file (-LOADING) waits for it rather than exiting.
start_redis
for _ in $(seq 1 100); do redis PING >/dev/null 2>&1 && break; sleep 0.05; done
awk 'BEGIN { for (i = 0; i < 400000; i++) printf "SET filler:%d %0100d\n", i, i }' | redis --pipe >/dev/null
redis BGREWRITEAOF >/dev/null
for _ in $(seq 1 100); do [ "$(redis INFO persistence | grep -c 'aof_rewrite_in_progress:0')" = 1 ] && break; sleep 0.1; done
kill -KILL "$REDIS_PID"
wait "$REDIS_PID" 2>/dev/null || true
make_keys
start_redis
start_coordinator
grep -q "listening on" "$T/coordinator.log" || fail "the coordinator did not start beside a loading Redis"
grep -q "is loading its data; waiting" "$T/coordinator.log" || echo "note: Redis had loaded before the coordinator asked" >&2
pass "a coordinator started beside a Redis loading 400,000 keys came up"
