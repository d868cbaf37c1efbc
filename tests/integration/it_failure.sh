# Failure propagation: a failing job skips everything downstream of it but
# not the jobs beside it, its exit code is recorded, and the run fails (exit
# 1). A failing job with continue-on-error lets its dependents run and the
# run succeed.
source "$(dirname "$0")/lib.sh"
start_farm 2

cat >"$T/fail.yml" <<'YML'
name: failing
on: push
jobs:
  bad:
    runs-on: self-hosted
    steps:
      - run: exit 3
  after_bad:
    needs: bad
    runs-on: self-hosted
    steps:
      - run: echo should not run
  after_after:
    needs: after_bad
    runs-on: self-hosted
    steps:
      - run: echo should not run either
  independent:
    runs-on: self-hosted
    steps:
      - run: sleep 0.5; echo independent done
YML
rc=0
"$KILN" submit --wait --json "$T/fail.yml" >"$T/fail.json" 2>"$T/fail.err" || rc=$?
[ $rc -eq 1 ] || fail "submit --wait exited $rc, want 1: $(cat "$T/fail.err")"
pass "failing run exits 1"

J=$T/fail.json
job_field() { # JOB FIELD: a field of the job with id JOB
    sqlite3 :memory: "select json_extract(j.value, '\$.$2') from json_each(json_extract(readfile('$J'), '\$.jobs')) j where json_extract(j.value, '\$.id') = '$1';"
}
[ "$(json_get "$J" '$.state')" = failure ] || fail "run state $(json_get "$J" '$.state'), want failure"
[ "$(json_get "$J" '$.id')" = 1 ] || fail "run id $(json_get "$J" '$.id'), want 1"
[ "$(sqlite3 :memory: "select json_array_length(readfile('$J'), '\$.jobs')")" = 4 ] ||
    fail "want 4 jobs in $(cat "$J")"
for want in bad:failure after_bad:skipped after_after:skipped independent:success; do
    job=${want%%:*} st=${want#*:}
    got=$(job_field "$job" state)
    [ "$got" = "$st" ] || fail "job $job is '$got', want $st"
done
pass "bad failure, after_bad and after_after skipped, independent success"

code=$(sqlite3 :memory: "select json_extract(s.value, '\$.exit_code') from json_each(json_extract(readfile('$J'), '\$.jobs')) j, json_each(json_extract(j.value, '\$.steps')) s where json_extract(j.value, '\$.id') = 'bad';")
[ "$code" = 3 ] || fail "bad's step exit_code is '$code', want 3"
st=$(sqlite3 :memory: "select json_extract(s.value, '\$.state') from json_each(json_extract(readfile('$J'), '\$.jobs')) j, json_each(json_extract(j.value, '\$.steps')) s where json_extract(j.value, '\$.id') = 'bad';")
[ "$st" = failure ] || fail "bad's step state is '$st', want failure"
pass "bad's step recorded exit code 3"

# Skipped jobs never ran: no attempts, no worker, no steps.
for job in after_bad after_after; do
    n=$(sqlite3 :memory: "select json_array_length(j.value, '\$.attempts') + json_array_length(j.value, '\$.steps') from json_each(json_extract(readfile('$J'), '\$.jobs')) j where json_extract(j.value, '\$.id') = '$job';")
    [ "$n" = 0 ] || fail "skipped job $job has $n attempts/steps"
    [ -z "$(job_field "$job" worker)" ] || fail "skipped job $job has a worker"
done
[ -n "$(job_field independent worker)" ] || fail "independent has no worker"
pass "skipped jobs never ran"
"$KILN" logs 1 >"$T/logs1.txt" || fail "kiln logs 1 failed"
grep -q "should not run" "$T/logs1.txt" && fail "a skipped job printed output"
grep -q "^independent | independent done" "$T/logs1.txt" || fail "no output from independent: $(cat "$T/logs1.txt")"
pass "only jobs that ran have output"

cat >"$T/coe.yml" <<'YML'
name: tolerant
on: push
jobs:
  flaky:
    runs-on: self-hosted
    continue-on-error: true
    steps:
      - run: exit 4
  downstream:
    needs: flaky
    runs-on: self-hosted
    steps:
      - run: echo downstream ran
YML
rc=0
"$KILN" submit --wait --json "$T/coe.yml" >"$T/coe.json" 2>"$T/coe.err" || rc=$?
[ $rc -eq 0 ] || fail "continue-on-error run exited $rc, want 0: $(cat "$T/coe.json" "$T/coe.err")"
J=$T/coe.json
[ "$(json_get "$J" '$.state')" = success ] || fail "run state $(json_get "$J" '$.state'), want success"
[ "$(job_field downstream state)" = success ] || fail "downstream is $(job_field downstream state)"
fl=$(job_field flaky state)
[ "$fl" = failure ] || [ "$fl" = success ] || fail "flaky is '$fl'"
code=$(sqlite3 :memory: "select json_extract(s.value, '\$.exit_code') from json_each(json_extract(readfile('$J'), '\$.jobs')) j, json_each(json_extract(j.value, '\$.steps')) s where json_extract(j.value, '\$.id') = 'flaky';")
[ "$code" = 4 ] || fail "flaky's step exit_code '$code', want 4"
"$KILN" logs 2 downstream | grep -q "^downstream | downstream ran" || fail "downstream printed nothing"
pass "continue-on-error job failed (state $fl), its dependent ran, run succeeded"
