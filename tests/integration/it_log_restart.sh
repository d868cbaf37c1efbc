# Every line survives a coordinator restart, or the log says what was lost.
# A job prints a line every 0.4 s; the coordinator is killed after the
# second and started again a second and a half later: the job is re-adopted
# and finishes, and `kiln logs` holds the lines before and after, with a
# marker where the lines sent while no coordinator listened are missing,
# saying how many bytes and why.
source "$(dirname "$0")/lib.sh"
start_redis
make_keys
admit_worker w1
start_coordinator --heartbeat-ms 200 --lease-ms 5000
start_worker w1 --heartbeat-ms 200
wait_workers 1
cat >"$T/wf.yml" <<'YML'
name: talk
on: push
jobs:
  talk:
    runs-on: self-hosted
    steps:
      - run: for i in 1 2 3 4 5 6 7 8 9 10; do echo "line $i"; sleep 0.4; done
YML
run=$("$KILN" submit "$T/wf.yml")
for _ in $(seq 1 100); do
    "$KILN" logs "$run" 2>/dev/null | grep -q "line 2" && break
    sleep 0.05
done
kill -9 "$COORD_PID"
wait "$COORD_PID" 2>/dev/null || true
sleep 1.5
start_coordinator --heartbeat-ms 200 --lease-ms 5000
for _ in $(seq 1 200); do
    "$KILN" status "$run" --json >"$T/st.json" 2>/dev/null && [ "$(json_get "$T/st.json" '$.state')" != running ] && break
    sleep 0.1
done
[ "$(json_get "$T/st.json" '$.state')" = success ] || fail "the run: $(cat "$T/st.json")"
"$KILN" logs "$run" >"$T/logs.out"
grep -q "line 1" "$T/logs.out" && grep -q "line 10" "$T/logs.out" || fail "lines before or after are missing: $(cat "$T/logs.out")"
missing=$(for i in $(seq 1 10); do grep -q "line $i\$" "$T/logs.out" || echo $i; done | tr '\n' ' ')
if [ -n "$missing" ]; then
    grep -q "bytes of output lost here: the coordinator restarted while the job ran" "$T/logs.out" ||
        fail "lines $missing are missing with no marker: $(cat "$T/logs.out")"
    pass "lines $missing were sent while no coordinator listened; the log says so where they were"
else
    pass "every line survived the restart"
fi
