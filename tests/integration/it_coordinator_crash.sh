# The coordinator is killed with SIGKILL in the middle of a run and started
# again on the same Redis and database: the run completes, the job that was
# running when it died is re-adopted from its worker (it runs once), no
# history row is lost, and the database passes its integrity check.
source "$(dirname "$0")/lib.sh"
start_redis
make_keys
admit_worker w1
admit_worker w2
start_coordinator --heartbeat-ms 200 --lease-ms 3000
start_worker w1
start_worker w2
wait_workers 2
LEDGER=$T/ledger
cat >"$T/wf.yml" <<YML
name: crash
on: push
jobs:
  first:
    runs-on: self-hosted
    steps:
      - run: echo "done \$KILN_JOB \$KILN_ATTEMPT" >> $LEDGER
  long:
    needs: first
    runs-on: self-hosted
    steps:
      - run: |
          echo "start \$KILN_JOB \$KILN_ATTEMPT" >> $LEDGER
          sleep 2
          echo "done \$KILN_JOB \$KILN_ATTEMPT" >> $LEDGER
  side:
    needs: first
    runs-on: self-hosted
    steps:
      - run: echo "done \$KILN_JOB \$KILN_ATTEMPT" >> $LEDGER
  last:
    needs: [long, side]
    runs-on: self-hosted
    steps:
      - run: echo "done \$KILN_JOB \$KILN_ATTEMPT" >> $LEDGER
YML
run=$("$KILN" submit "$T/wf.yml")
for _ in $(seq 1 200); do grep -q '^start long' "$LEDGER" 2>/dev/null && break; sleep 0.05; done
grep -q '^start long' "$LEDGER" || fail "long never started"
kill -9 "$COORD_PID"
wait "$COORD_PID" 2>/dev/null || true
pass "coordinator killed while 'long' ran"
sleep 0.5
start_coordinator --heartbeat-ms 200 --lease-ms 3000
for _ in $(seq 1 300); do
    "$KILN" status "$run" --json >"$T/st.json" 2>/dev/null && [ "$(json_get "$T/st.json" '$.state')" != running ] && break
    sleep 0.1
done
[ "$(json_get "$T/st.json" '$.state')" = success ] || fail "run did not complete: $(cat "$T/st.json")"
pass "run $run completed after the restart"
for j in first long side last; do
    [ "$(grep -c "^done $j " "$LEDGER")" -eq 1 ] || fail "$j completed $(grep -c "^done $j " "$LEDGER") times: $(cat "$LEDGER")"
done
[ "$(grep -c '^start long' "$LEDGER")" -eq 1 ] || fail "long was started again instead of re-adopted"
pass "every job ran exactly once; 'long' was re-adopted, not re-run"
grep -q "re-adopted" "$T/coordinator.log" || fail "no re-adoption logged"
[ "$(sqlite3 "$T/history.db" 'PRAGMA integrity_check')" = ok ] || fail "integrity check failed"
[ "$(sqlite3 "$T/history.db" "select count(*) from jobs where run_id=$run and state='success'")" = 4 ] ||
    fail "history lost job rows"
[ "$(sqlite3 "$T/history.db" "select count(*) from logs where run_id=$run")" -ge 0 ] || fail "no logs"
pass "history intact (integrity_check ok, 4 successful jobs)"

# The same with a matrix computed at run time: the restarted coordinator
# plans the run with the matrix it had computed, and re-adopts the
# combinations that were running.
cat >"$T/dyn.yml" <<YML
name: dyn
on: push
jobs:
  plan:
    runs-on: self-hosted
    outputs:
      list: \${{ steps.p.outputs.list }}
    steps:
      - id: p
        run: echo 'list={"n":[1,2]}' >> "\$GITHUB_OUTPUT"
  work:
    needs: plan
    runs-on: self-hosted
    strategy:
      matrix: \${{ fromJSON(needs.plan.outputs.list) }}
    steps:
      - run: |
          echo "start dyn \${{ matrix.n }}" >> $LEDGER
          sleep 2
          echo "done dyn \${{ matrix.n }}" >> $LEDGER
  after:
    needs: work
    runs-on: self-hosted
    steps:
      - run: echo "done dyn after" >> $LEDGER
YML
run=$("$KILN" submit "$T/dyn.yml")
for _ in $(seq 1 200); do [ "$(grep -c '^start dyn' "$LEDGER")" -ge 2 ] && break; sleep 0.05; done
[ "$(grep -c '^start dyn' "$LEDGER")" -ge 2 ] || fail "the computed matrix did not start"
kill -9 "$COORD_PID"
wait "$COORD_PID" 2>/dev/null || true
start_coordinator --heartbeat-ms 200 --lease-ms 3000
for _ in $(seq 1 300); do
    "$KILN" status "$run" --json >"$T/st.json" 2>/dev/null && [ "$(json_get "$T/st.json" '$.state')" != running ] && break
    sleep 0.1
done
[ "$(json_get "$T/st.json" '$.state')" = success ] || fail "dyn run did not complete: $(cat "$T/st.json")"
for j in 1 2 after; do
    [ "$(grep -c "^done dyn $j\$" "$LEDGER")" -eq 1 ] || fail "dyn $j completed $(grep -c "^done dyn $j\$" "$LEDGER") times"
done
[ "$(grep -c '^start dyn [12]$' "$LEDGER")" -eq 2 ] || fail "a combination was started again"
pass "a run-time matrix survives a coordinator kill; its combinations ran once"
