# The allow-list: a worker whose key is not admitted never gets work; a
# client whose key is not admitted cannot submit; and a worker key cannot be
# used as a client key.
source "$(dirname "$0")/lib.sh"
start_redis
make_keys
"$KILN" keygen rogue --dir "$T/keys" >/dev/null # NOT copied to allow/workers
admit_worker good
start_coordinator
start_worker rogue

cat >"$T/one.yml" <<'YML'
name: one
on: push
jobs:
  only:
    runs-on: self-hosted
    steps:
      - run: echo "ran on $KILN_WORKER"
YML
RUN=$("$KILN" submit "$T/one.yml") || fail "submit failed"
[ "$RUN" = 1 ] || fail "run id '$RUN', want 1"
sleep 2
"$KILN" status "$RUN" --json >"$T/st.json" || fail "status failed"
st=$(json_get "$T/st.json" '$.jobs[0].state')
case $st in ready | pending) ;; *) fail "job is '$st' with only a refused worker" ;; esac
[ "$(json_get "$T/st.json" '$.jobs[0].attempts')" = "[]" ] || fail "job has attempts: $(cat "$T/st.json")"
[ -z "$(json_get "$T/st.json" '$.jobs[0].worker')" ] || fail "job has a worker: $(cat "$T/st.json")"
[ "$(json_get "$T/st.json" '$.state')" = running ] || fail "run is $(json_get "$T/st.json" '$.state')"
"$KILN" workers --json >"$T/workers.json" || fail "kiln workers failed"
[ "$(json_get "$T/workers.json" '$')" = "[]" ] || fail "workers not empty: $(cat "$T/workers.json")"
grep -q "refused key" "$T/coordinator.log" || fail "coordinator did not log a refused key"
ROGUE_Z85=$(sed -n 's/^ *public-key *= *"\(.*\)"$/\1/p' "$T/keys/rogue.pub")
[ -n "$ROGUE_Z85" ] || fail "cannot read rogue.pub"
grep -F "refused key $ROGUE_Z85" "$T/coordinator.log" >/dev/null || fail "the refused key is not rogue's"
grep -q "1/only" "$T/rogue.log" && fail "the refused worker saw the job: $(cat "$T/rogue.log")"
pass "refused worker got no work ($st, no attempts, no workers listed, 'refused key' logged)"

start_worker good
wait_workers 1
"$KILN" workers --json >"$T/workers.json"
[ "$(json_get "$T/workers.json" '$[0].name')" = good ] || fail "listed workers: $(cat "$T/workers.json")"
[ "$(json_get "$T/workers.json" '$[1].name')" = "" ] || fail "more than one worker: $(cat "$T/workers.json")"
for _ in $(seq 1 200); do
    "$KILN" status "$RUN" --json >"$T/st.json" 2>/dev/null || true
    [ "$(json_get "$T/st.json" '$.state')" = running ] || break
    sleep 0.05
done
[ "$(json_get "$T/st.json" '$.state')" = success ] || fail "run did not succeed: $(cat "$T/st.json")"
[ "$(json_get "$T/st.json" '$.jobs[0].worker')" = good ] || fail "job ran on $(json_get "$T/st.json" '$.jobs[0].worker')"
"$KILN" logs "$RUN" >"$T/logs.txt"
grep -qx "only | ran on good" "$T/logs.txt" || fail "logs: $(cat "$T/logs.txt")"
pass "the admitted worker ran the job"

runs() { sqlite3 "$T/history.db" 'select count(*) from runs'; }
# (b) A client key that is not admitted.
"$KILN" keygen other --dir "$T/keys" >/dev/null
before=$(runs)
rc=0
KILN_CLIENT_KEY=$T/keys/other.key KILN_REQUEST_TIMEOUT_MS=2000 timeout 20 "$KILN" submit "$T/one.yml" \
    >"$T/other.out" 2>"$T/other.err" || rc=$?
[ $rc -ne 0 ] || fail "an unadmitted client submitted run $(cat "$T/other.out")"
[ $rc -ne 124 ] || fail "KILN_REQUEST_TIMEOUT_MS=2000 not honoured: kiln submit ran into timeout 20"
[ ! -s "$T/other.out" ] || fail "unadmitted client got: $(cat "$T/other.out")"
sleep 0.3
[ "$(runs)" = "$before" ] || fail "a run was recorded for an unadmitted client"
rc2=0
KILN_CLIENT_KEY=$T/keys/other.key KILN_REQUEST_TIMEOUT_MS=2000 timeout 20 "$KILN" history --json >/dev/null 2>&1 || rc2=$?
[ $rc2 -ne 0 ] && [ $rc2 -ne 124 ] || fail "an unadmitted client read the history (exit $rc2)"
pass "unadmitted client refused (submit exit $rc: $(head -n 1 "$T/other.err")), nothing recorded"

# (c) A worker's key used as a client key.
before=$(runs)
rc=0
KILN_CLIENT_KEY=$T/keys/good.key KILN_REQUEST_TIMEOUT_MS=2000 timeout 20 "$KILN" submit "$T/one.yml" \
    >"$T/wk.out" 2>"$T/wk.err" || rc=$?
[ $rc -ne 0 ] || fail "a worker key submitted run $(cat "$T/wk.out")"
[ $rc -ne 124 ] || fail "KILN_REQUEST_TIMEOUT_MS=2000 not honoured: kiln submit ran into timeout 20"
sleep 0.3
[ "$(runs)" = "$before" ] || fail "a run was recorded for a worker key acting as a client"
kill -0 "$COORD_PID" || fail "coordinator died"
"$KILN" workers --json >"$T/workers.json"
[ "$(json_get "$T/workers.json" '$[0].name')" = good ] && [ "$(json_get "$T/workers.json" '$[1].name')" = "" ] ||
    fail "workers after the worker-key client: $(cat "$T/workers.json")"
pass "worker key cannot submit (exit $rc), nothing recorded"
grep -q "workers may not send" "$T/coordinator.log" ||
    fail "coordinator did not log dropping the worker key's request ('workers may not send')"
pass "the worker key's request was dropped and logged"
