# redis-server is killed with SIGKILL during a run and restarted from its
# append-only file: the coordinator rides out the outage (workers stay
# connected), reconciles Redis with what it knows, and every accepted job
# completes exactly once. A run submitted during the outage is accepted and
# runs once Redis is back.
source "$(dirname "$0")/lib.sh"
start_farm 2
LEDGER=$T/ledger
mkjob() {
    cat <<YML
  $1:
    runs-on: self-hosted
    ${2:+needs: $2}
    steps:
      - run: |
          sleep ${3:-0.3}
          echo "done \$KILN_RUN_ID $1" >> $LEDGER
YML
}
{
    printf 'name: redis\non: push\njobs:\n'
    for i in 1 2 3 4; do mkjob "a$i"; done
    for i in 1 2 3 4; do mkjob "b$i" "a$i" 1; done
    mkjob c "[b1, b2, b3, b4]"
} >"$T/wf.yml"
run=$("$KILN" submit "$T/wf.yml")
for _ in $(seq 1 200); do [ "$(cat "$LEDGER" 2>/dev/null | grep -c '^done')" -ge 2 ] && break; sleep 0.05; done
kill -9 "$REDIS_PID"
wait "$REDIS_PID" 2>/dev/null || true
pass "redis killed with $(grep -c '^done' "$LEDGER") jobs done"
# A submission while Redis is down is still accepted (history first).
run2=$("$KILN" submit "$T/wf.yml") || fail "submit during the outage failed"
sleep 1
kill -0 "$COORD_PID" || fail "the coordinator died with Redis"
[ "$("$KILN" workers --json | grep -c '"name"')" -eq 2 ] || fail "workers dropped during the outage"
pass "coordinator alive and workers connected during the outage"
start_redis
for r in "$run" "$run2"; do
    for _ in $(seq 1 300); do
        "$KILN" status "$r" --json >"$T/st.json" 2>/dev/null && [ "$(json_get "$T/st.json" '$.state')" != running ] && break
        sleep 0.1
    done
    [ "$(json_get "$T/st.json" '$.state')" = success ] || fail "run $r did not complete: $(cat "$T/st.json")"
    for j in a1 a2 a3 a4 b1 b2 b3 b4 c; do
        n=$(grep -c "^done $r $j\$" "$LEDGER" || true)
        [ "$n" -eq 1 ] || fail "run $r job $j completed $n times"
    done
done
pass "both runs completed, every job exactly once"
grep -q "reconciled" "$T/coordinator.log" || fail "no reconciliation logged"
"$KILN" stats --json >"$T/stats.json"
[ "$(json_get "$T/stats.json" '$.redis_reconnects')" -ge 1 ] || fail "no reconnect counted"
pass "coordinator reconnected and reconciled Redis"
