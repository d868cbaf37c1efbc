# Overload and bad peers: a job that floods its output is throttled by
# credit and truncated at the log limit with a visible marker, its status
# unaffected and the coordinator's memory bounded; 1,000 half-open or
# garbage TCP connections do not stop real workers from being served.
source "$(dirname "$0")/lib.sh"
start_redis
make_keys
admit_worker w1
admit_worker w2
start_coordinator --log-limit-mb 1 --log-window-kb 256
start_worker w1
start_worker w2
wait_workers 2

cat >"$T/flood.yml" <<'YML'
name: flood
on: push
jobs:
  flood:
    runs-on: self-hosted
    steps:
      - run: |
          head -c 40000000 /dev/zero | tr "\\0" a | fold -w 79
          echo "flood finished"
YML
"$KILN" submit --wait --json "$T/flood.yml" >"$T/flood.json" || fail "flood run failed: $(cat "$T/flood.json")"
[ "$(json_get "$T/flood.json" '$.jobs[0].state')" = success ] || fail "flood job not success"
stored=$(sqlite3 "$T/history.db" "select sum(length(data)) from logs where job_id='flood'")
[ "$stored" -lt $((2 * 1024 * 1024)) ] || fail "stored $stored bytes of a 1 MiB-limited log"
"$KILN" logs 1 flood >"$T/flood.log"
grep -q "log truncated: over the limit of 1048576 bytes" "$T/flood.log" || fail "no truncation marker"
rss_kb=$(awk '/VmRSS/ {print $2}' /proc/$COORD_PID/status)
[ "$rss_kb" -lt 200000 ] || fail "coordinator RSS ${rss_kb} kB after a 40 MB flood"
pass "40 MB flood: success, $stored bytes stored, marker shown, coordinator RSS ${rss_kb} kB"

# 1,000 connections that never complete a handshake, some sending garbage.
ulimit -n 4096 2>/dev/null || true
fds=()
for i in $(seq 1 1000); do
    exec {fd}<>"/dev/tcp/127.0.0.1/$PORT" || break
    fds+=("$fd")
    if [ $((i % 10)) -eq 0 ]; then head -c 300 /dev/urandom >&"$fd" 2>/dev/null || true; fi
done
pass "${#fds[@]} half-open or garbage connections open"
cat >"$T/ok.yml" <<'YML'
name: ok
on: push
jobs:
  a:
    runs-on: self-hosted
    steps:
      - run: echo served
  b:
    needs: a
    runs-on: self-hosted
    steps:
      - run: echo served too
YML
timeout 30 "$KILN" submit --wait "$T/ok.yml" >"$T/ok.out" 2>&1 || fail "a real run failed under the connection flood: $(cat "$T/ok.out")"
kill -0 "$COORD_PID" || fail "coordinator died"
pass "a real run was served while the connections were open"
for fd in "${fds[@]}"; do exec {fd}>&-; done
