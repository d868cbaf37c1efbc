# The history database: after a run, the SQLite file itself holds the run,
# its jobs, attempts, steps (exit codes, times), log chunks and an audit
# row, and the CLI's history/status/logs views agree with it.
source "$(dirname "$0")/lib.sh"
start_farm 2
cat >"$T/hist.yml" <<'YML'
name: recorded
on: push
jobs:
  printer:
    runs-on: self-hosted
    steps:
      - name: first words
        run: echo "alpha-line-one"
      - name: second words
        run: |
          echo "beta-line-two"
          sleep 0.2
  mixed:
    runs-on: self-hosted
    steps:
      - name: tolerated failure
        continue-on-error: true
        run: |
          echo "about to exit five"
          exit 5
      - name: carries on
        run: echo "gamma-after-failure"
YML
"$KILN" submit --wait "$T/hist.yml" >"$T/out.txt" 2>&1 || fail "run failed: $(cat "$T/out.txt")"
grep -q "run 1 success" "$T/out.txt" || fail "no success summary: $(cat "$T/out.txt")"
pass "run 1 succeeded"

DB=$T/history.db
sql() { sqlite3 "$DB" "$1"; }
[ "$(sql "select count(*) from runs")" = 1 ] || fail "want 1 run row, have $(sql 'select count(*) from runs')"
[ "$(sql "select id || '|' || name || '|' || state from runs")" = "1|recorded|success" ] ||
    fail "run row: $(sql 'select id, name, state from runs')"
[ "$(sql "select file from runs where id = 1")" = "$T/hist.yml" ] || fail "run file: $(sql 'select file from runs')"
[ "$(sql "select finished_ms >= created_ms and created_ms > 0 from runs where id = 1")" = 1 ] ||
    fail "run times: $(sql 'select created_ms, finished_ms from runs')"
[ "$(sql "select hex(yaml) from runs where id = 1")" = "$(od -An -v -tx1 "$T/hist.yml" | tr -d ' \n' | tr a-f A-F)" ] ||
    fail "stored workflow text differs from the file"
pass "runs row: success, file, times and the workflow text"

[ "$(sql "select count(*) from jobs where run_id = 1")" = 2 ] || fail "want 2 job rows"
bad=$(sql "select job_id || ':' || state || ':' || ifnull(worker, 'NULL') || ':' || ifnull(started_ms, 'NULL') || ':' || ifnull(finished_ms, 'NULL') from jobs where run_id = 1 and not (state = 'success' and worker in ('w1', 'w2') and started_ms > 0 and started_ms <= finished_ms and attempt = 1)")
[ -z "$bad" ] || fail "job rows not as expected: $bad"
[ "$(sql "select group_concat(job_id, ',') from (select job_id from jobs where run_id = 1 order by seq)")" = printer,mixed ] ||
    fail "job order: $(sql 'select job_id, seq from jobs')"
pass "jobs rows: success, worker set, started_ms <= finished_ms, in workflow order"

bad=$(sql "select job_id || ':' || attempt || ':' || ifnull(token, 'NULL') || ':' || state from attempts where run_id = 1 and not (token >= 1 and worker in ('w1', 'w2') and state = 'success' and started_ms <= finished_ms)")
[ "$(sql "select count(*) from attempts where run_id = 1")" = 2 ] || fail "want 2 attempt rows"
[ -z "$bad" ] || fail "attempt rows not as expected: $bad"
[ "$(sql "select count(*) from attempts a join jobs j using (run_id, job_id) where a.worker = j.worker")" = 2 ] ||
    fail "attempt and job workers differ"
pass "attempts rows: token >= 1, same worker as the job"

[ "$(sql "select count(*) from steps where run_id = 1")" = 4 ] || fail "want 4 step rows: $(sql 'select * from steps')"
steps=$(sql "select job_id || '/' || idx || ':' || exit_code from steps where run_id = 1 order by job_id, idx")
[ "$steps" = "$(printf 'mixed/0:5\nmixed/1:0\nprinter/0:0\nprinter/1:0')" ] || fail "step exit codes: $steps"
[ "$(sql "select state from steps where run_id = 1 and job_id = 'mixed' and idx = 0")" = failure ] ||
    fail "the exit-5 step is $(sql "select state from steps where job_id = 'mixed' and idx = 0")"
[ "$(sql "select count(*) from steps where run_id = 1 and state = 'success'")" = 3 ] || fail "want 3 successful steps"
[ "$(sql "select count(*) from steps where run_id = 1 and started_ms > 0 and finished_ms >= started_ms")" = 4 ] ||
    fail "step times: $(sql 'select job_id, idx, started_ms, finished_ms from steps')"
d=$(sql "select finished_ms - started_ms from steps where run_id = 1 and job_id = 'printer' and idx = 1")
[ "$d" -ge 150 ] || fail "the sleep 0.2 step lasted only ${d} ms"
[ "$(sql "select name from steps where run_id = 1 and job_id = 'printer' and idx = 0")" = "first words" ] ||
    fail "step name: $(sql "select name from steps where job_id = 'printer' and idx = 0")"
pass "steps rows: exit codes 5/0/0/0, states, durations (sleep step ${d} ms)"

for want in printer:0:alpha-line-one printer:1:beta-line-two mixed:0:"about to exit five" mixed:1:gamma-after-failure; do
    IFS=: read -r job step text <<<"$want"
    n=$(sql "select count(*) from logs where run_id = 1 and job_id = '$job' and step = $step and attempt = 1 and instr(cast(data as text), '$text') > 0")
    [ "$n" -ge 1 ] || fail "no log row with '$text' for $job step $step: $(sql "select job_id, step, cast(data as text) from logs")"
done
pass "logs rows hold each step's output under its job and step"

[ "$(sql "select count(*) from audit where kind = 'run.submit' and actor = 'client'")" = 1 ] ||
    fail "audit rows: $(sql 'select * from audit')"
[ "$(sql "select detail from audit where kind = 'run.submit'")" = "$T/hist.yml" ] ||
    fail "audit detail: $(sql "select detail from audit where kind = 'run.submit'")"
pass "audit row run.submit by client"

"$KILN" history --json >"$T/h.json" || fail "kiln history failed"
[ "$(json_get "$T/h.json" '$[0].id')" = 1 ] || fail "history: $(cat "$T/h.json")"
[ "$(json_get "$T/h.json" '$[0].jobs')" = 2 ] || fail "history jobs: $(json_get "$T/h.json" '$[0].jobs')"
[ "$(json_get "$T/h.json" '$[0].failed')" = 0 ] || fail "history failed: $(json_get "$T/h.json" '$[0].failed')"
[ "$(json_get "$T/h.json" '$[0].state')" = success ] || fail "history state"
[ "$(json_get "$T/h.json" '$[0].name')" = recorded ] || fail "history name"
[ "$(json_get "$T/h.json" '$[1].id')" = "" ] || fail "history has more than one run"
pass "kiln history --json: run 1, 2 jobs, success"

"$KILN" status 1 --json >"$T/s.json" || fail "kiln status failed"
n=$(sqlite3 :memory: "select count(*) from json_each(json_extract(readfile('$T/s.json'), '\$.jobs')) j, json_each(json_extract(j.value, '\$.steps')) s where json_extract(j.value, '\$.id') = 'mixed' and json_extract(s.value, '\$.exit_code') = 5 and json_extract(s.value, '\$.index') = 0")
[ "$n" = 1 ] || fail "status has no step with exit_code 5: $(cat "$T/s.json")"
tok=$(sqlite3 :memory: "select min(json_extract(a.value, '\$.token')) from json_each(json_extract(readfile('$T/s.json'), '\$.jobs')) j, json_each(json_extract(j.value, '\$.attempts')) a")
[ "$tok" -ge 1 ] || fail "status attempts have token $tok"
pass "kiln status 1 --json shows the exit-5 step"

"$KILN" logs 1 printer >"$T/printer.txt" || fail "kiln logs 1 printer failed"
grep -qx "printer | alpha-line-one" "$T/printer.txt" || fail "logs: $(cat "$T/printer.txt")"
grep -qx "printer | beta-line-two" "$T/printer.txt" || fail "logs: $(cat "$T/printer.txt")"
grep -q "gamma\|five" "$T/printer.txt" && fail "kiln logs 1 printer shows another job's output"
grep -qv "^printer | " "$T/printer.txt" && fail "unprefixed lines: $(cat "$T/printer.txt")"
"$KILN" logs 1 mixed >"$T/mixed.txt" || fail "kiln logs 1 mixed failed"
grep -qx "mixed | gamma-after-failure" "$T/mixed.txt" || fail "logs: $(cat "$T/mixed.txt")"
pass "kiln logs 1 JOB prints that job's lines with 'JOB | '"

[ "$(sql 'PRAGMA integrity_check')" = ok ] || fail "integrity_check: $(sql 'PRAGMA integrity_check')"
pass "integrity_check ok"

# A run too large for a 64 KiB string still has its record delivered whole.
{
    printf 'name: wide\non: push\njobs:\n'
    for j in $(seq 1 300); do printf '  j%d:\n    runs-on: self-hosted\n    steps:\n      - run: "true"\n' "$j"; done
} >"$T/wide.yml"
"$KILN" submit --wait --json "$T/wide.yml" >"$T/wide.json" || fail "wide run failed"
[ "$(json_get "$T/wide.json" '$.state')" = success ] || fail "wide run not success"
[ "$(json_get "$T/wide.json" 'json_array_length($.jobs)')" = 300 ] 2>/dev/null ||
    [ "$(sqlite3 :memory: "select json_array_length(readfile('$T/wide.json'), '\$.jobs')")" = 300 ] ||
    fail "the wide run's record does not list 300 jobs"
[ "$(stat -c %s "$T/wide.json")" -gt 65536 ] || fail "the record is not larger than 64 KiB; the check proves nothing"
pass "a 300-job run's record ($(stat -c %s "$T/wide.json") bytes) arrives whole"

# The steps that end with a job travel inside its result: the last step run
# and every step skipped after it each get their row, state and times, as
# do the skipped steps in the middle that go out on their own.
cat >"$T/tail.yml" <<'YML'
name: tails
on: push
jobs:
  stops:
    runs-on: self-hosted
    steps:
      - run: exit 3
      - run: echo never-one
      - run: echo never-two
  recovers:
    runs-on: self-hosted
    steps:
      - run: exit 4
      - run: echo never-three
      - if: always()
        run: echo cleaned-up
YML
"$KILN" submit --wait "$T/tail.yml" >"$T/tail.txt" 2>&1 && fail "the tails run succeeded: $(cat "$T/tail.txt")"
run=$(sql "select id from runs where name = 'tails'")
got=$(sql "select job_id || '/' || idx || ':' || state || ':' || (finished_ms >= started_ms) from steps where run_id = $run order by job_id, idx" | tr '\n' ' ')
[ "$got" = "recovers/0:failure:1 recovers/1:skipped:1 recovers/2:success:1 stops/0:failure:1 stops/1:skipped:1 stops/2:skipped:1 " ] ||
    fail "step rows of the tails run: $got"
pass "the last step and the skipped steps after it are recorded from the job's result"

# A step that ends within the worker's hold is reported by its result
# alone (no start message): its row still has its name and start time, and
# a follower still sees it start. A long step's start is reported while it
# runs.
cat >"$T/quiet.yml" <<'YML'
name: quiet
on: push
jobs:
  hush:
    runs-on: self-hosted
    steps:
      - name: silent step
        run: "true"
      - name: long step
        run: sleep 1.5
YML
"$KILN" submit --wait "$T/quiet.yml" >"$T/quiet.txt" 2>&1 &
QPID=$!
PIDS+=($QPID)
live=""
for _ in $(seq 1 100); do
    run=$(sql "select id from runs where name = 'quiet'")
    [ -n "$run" ] && live=$(sql "select state from steps where run_id = $run and idx = 1")
    [ "$live" = running ] && break
    sleep 0.01
done
[ "$live" = running ] || fail "the long step was never seen running (last: '$live')"
wait "$QPID" || fail "the quiet run failed: $(cat "$T/quiet.txt")"
grep -qx "hush | ::: silent step" "$T/quiet.txt" || fail "no start line for the silent step: $(cat "$T/quiet.txt")"
got=$(sql "select idx || ':' || name || ':' || state || ':' || (started_ms > 0) || ':' || (finished_ms >= started_ms) from steps where run_id = $run order by idx" | tr '\n' ' ')
[ "$got" = "0:silent step:success:1:1 1:long step:success:1:1 " ] || fail "quiet run's step rows: $got"
pass "a step that ends at once has its row, name and start; a long one shows as running"

# Every result was acknowledged, most of them inside the worker's next
# assignment: past the workers' resend interval (2 s) none came back.
sleep 2.5
"$KILN" stats --json >"$T/stats.json" || fail "kiln stats failed"
# (A resent result of a finished run counts as stale, of a live one as a
# duplicate.)
[ "$(json_get "$T/stats.json" '$.duplicate_results')" = 0 ] &&
    [ "$(json_get "$T/stats.json" '$.stale_rejected')" = 0 ] ||
    fail "results were resent: $(cat "$T/stats.json")"
pass "no result was sent twice: every acknowledgement arrived"
