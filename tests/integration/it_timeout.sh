# Timeouts: a step over its timeout-minutes, and a job over its own, end as
# timed_out within seconds, and the step's whole process group is killed,
# including a background child that would otherwise outlive it.
source "$(dirname "$0")/lib.sh"
start_farm 2
cat >"$T/slow.yml" <<YML
name: slow
on: push
jobs:
  step_limit:
    runs-on: self-hosted
    steps:
      - name: sleeps too long
        timeout-minutes: 0.02
        run: |
          sleep 300 &
          echo \$! > $T/bg.pid
          sleep 300
      - name: never reached
        run: touch $T/step2.ran
  job_limit:
    runs-on: self-hosted
    timeout-minutes: 0.02
    steps:
      - name: also sleeps
        run: |
          echo \$\$ > $T/job.pid
          sleep 300
YML
start=$SECONDS
rc=0
timeout 40 "$KILN" submit --wait --json "$T/slow.yml" >"$T/out.json" 2>"$T/err.txt" || rc=$?
took=$((SECONDS - start))
[ $rc -ne 124 ] || fail "the run did not end within 40 s"
[ $rc -eq 1 ] || fail "submit --wait exited $rc, want 1: $(cat "$T/out.json" "$T/err.txt")"
[ $took -le 20 ] || fail "the run took ${took}s, want <= 20 s"
pass "run with timeouts failed (exit 1) in ${took}s"

J=$T/out.json
q() { sqlite3 :memory: "select $1 from json_each(json_extract(readfile('$J'), '\$.jobs')) j $2;"; }
[ "$(json_get "$J" '$.state')" = failure ] || fail "run state $(json_get "$J" '$.state')"
st=$(q "json_extract(j.value, '\$.state')" "where json_extract(j.value, '\$.id') = 'step_limit'")
[ "$st" = timed_out ] || fail "step_limit job is '$st', want timed_out"
sst=$(q "json_extract(s.value, '\$.state')" ", json_each(json_extract(j.value, '\$.steps')) s where json_extract(j.value, '\$.id') = 'step_limit' and json_extract(s.value, '\$.index') = 0")
[ "$sst" = timed_out ] || fail "step_limit's first step is '$sst', want timed_out"
dur=$(q "json_extract(s.value, '\$.duration_ms')" ", json_each(json_extract(j.value, '\$.steps')) s where json_extract(j.value, '\$.id') = 'step_limit' and json_extract(s.value, '\$.index') = 0")
[ -n "$dur" ] && [ "$dur" -ge 1000 ] && [ "$dur" -lt 15000 ] || fail "timed-out step lasted '$dur' ms, want about 1200"
[ ! -e "$T/step2.ran" ] || fail "the step after the timed-out one ran"
pass "step timeout: job and step timed_out after ${dur} ms, later step not run"
st=$(q "json_extract(j.value, '\$.state')" "where json_extract(j.value, '\$.id') = 'job_limit'")
[ "$st" = timed_out ] || fail "job_limit job is '$st', want timed_out"
pass "job timeout: job_limit timed_out"

[ -s "$T/bg.pid" ] || fail "the step did not record its background pid"
BG=$(cat "$T/bg.pid")
for _ in $(seq 1 100); do kill -0 "$BG" 2>/dev/null || break; sleep 0.05; done
if kill -0 "$BG" 2>/dev/null; then
    PIDS+=("$BG")
    fail "background 'sleep 300' (pid $BG) survived the step timeout"
fi
JP=$(cat "$T/job.pid")
for _ in $(seq 1 100); do kill -0 "$JP" 2>/dev/null || break; sleep 0.05; done
if kill -0 "$JP" 2>/dev/null; then
    PIDS+=("$JP")
    fail "job_limit's step shell (pid $JP) survived the job timeout"
fi
left=$(pgrep -f "sleep 300" -a | while read -r pid _; do
    grep -qs "KILN_RUN_ID=" "/proc/$pid/environ" && tr '\0' '\n' <"/proc/$pid/environ" | grep -q "^RUNNER_TEMP=$T/" && echo "$pid"
done || true)
if [ -n "$left" ]; then
    PIDS+=($left)
    fail "step processes survived: $left"
fi
pass "the whole process group was killed (background pid $BG gone)"
