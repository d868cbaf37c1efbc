# kiln up runs a persistent farm in a data directory; clients find it with
# --data-dir alone. Submit, status, logs -f, history, workers and cancel all
# work against it, and Ctrl-C stops every process of the farm.
source "$(dirname "$0")/lib.sh"
FARM=$T/farm
# A port taken meanwhile by a parallel test makes the coordinator (and so
# kiln up) exit: try another.
for try in 1 2 3 4 5; do
    PORT=$(free_port)
    "$KILN" up --data-dir "$FARM" --workers 2 --listen "tcp://127.0.0.1:$PORT" >"$T/up.out" 2>&1 &
    UP=$!
    PIDS+=($UP)
    until=$((SECONDS + 20))
    while [ $SECONDS -lt $until ] && kill -0 "$UP" 2>/dev/null; do
        [ "$("$KILN" workers --data-dir "$FARM" --json 2>/dev/null | grep -c '"name"')" -ge 2 ] && break 2
        sleep 0.05
    done
    kill -0 "$UP" 2>/dev/null && fail "kiln up did not bring 2 workers up in 20 s"
    wait "$UP" 2>/dev/null || true
done
grep -q "tcp://127.0.0.1:$PORT" "$T/up.out" || fail "kiln up did not print its endpoint: $(cat "$T/up.out")"
grep -q "$FARM/keys/server.pub" "$T/up.out" || fail "kiln up did not say where the server key is"
[ "$(cat "$FARM/endpoint")" = "tcp://127.0.0.1:$PORT" ] || fail "no endpoint file"
pass "kiln up: farm running with 2 workers; endpoint and keys announced"
k() { "$KILN" "$@" --data-dir "$FARM"; }
cat >"$T/quick.yml" <<'YML'
name: quick
on: push
jobs:
  hello:
    runs-on: self-hosted
    steps:
      - run: echo "hello from the farm"
YML
k submit --wait "$T/quick.yml" >"$T/q.out" || fail "submit --wait failed: $(cat "$T/q.out")"
grep -q "hello | hello from the farm" "$T/q.out" || fail "no live output"
pass "submit --wait follows the run"
cat >"$T/long.yml" <<YML
name: long
on: push
jobs:
  talk:
    runs-on: self-hosted
    steps:
      - run: |
          for i in 1 2 3; do echo "tick \$i"; sleep 0.3; done
  sleeper:
    runs-on: self-hosted
    steps:
      - run: |
          echo \$\$ > $T/sleeper.pid
          sleep 60
  after:
    needs: sleeper
    runs-on: self-hosted
    steps:
      - run: echo never
YML
run=$(k submit "$T/long.yml")
timeout 20 "$KILN" logs "$run" talk -f --data-dir "$FARM" >"$T/follow.out" || fail "logs -f failed"
[ "$(grep -c '^talk | tick' "$T/follow.out")" -eq 3 ] || fail "logs -f missed lines: $(cat "$T/follow.out")"
pass "logs -f followed a running job to its end"
for _ in $(seq 1 100); do [ -s "$T/sleeper.pid" ] && break; sleep 0.05; done
k status >"$T/status.txt" || fail "kiln status failed"
grep -q "running" "$T/status.txt" || fail "status does not list the running run: $(cat "$T/status.txt")"
k cancel "$run" >/dev/null || fail "cancel failed"
for _ in $(seq 1 100); do
    k status "$run" --json >"$T/st.json"
    [ "$(json_get "$T/st.json" '$.state')" != running ] && break
    sleep 0.1
done
[ "$(json_get "$T/st.json" '$.state')" = cancelled ] || fail "run not cancelled: $(cat "$T/st.json")"
[ "$(json_get "$T/st.json" '$.jobs[1].state')" = cancelled ] || fail "sleeper not cancelled"
[ "$(json_get "$T/st.json" '$.jobs[2].state')" = cancelled ] || fail "after not cancelled"
pid=$(cat "$T/sleeper.pid")
for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
kill -0 "$pid" 2>/dev/null && fail "the cancelled step is still running"
grep -q "run.cancel" <(sqlite3 "$FARM/history.db" "select kind from audit") || fail "cancel not audited"
pass "cancel: queued job dropped, running step killed, run cancelled, audited"
k history --json >"$T/h.json"
[ "$(sqlite3 :memory: "select json_array_length(readfile('$T/h.json'))")" = 2 ] || fail "history does not list 2 runs"
pass "history lists both runs"
kill -INT "$UP"
rc=0
wait "$UP" || rc=$?
[ $rc -eq 0 ] || fail "kiln up exited $rc on Ctrl-C"
left=$(pgrep -f "$FARM" || true)
[ -z "$left" ] || fail "farm processes left behind: $left"
pass "Ctrl-C stopped the farm; no process left"
