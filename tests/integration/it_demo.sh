# `kiln run`: the example workflow on a private farm (plain, --json and
# --keep), a failing workflow, and Ctrl-C, which stops the farm and every
# step it ran, exits 130 and leaves no process behind.
source "$(dirname "$0")/lib.sh"
mkdir -p "$T/tmp"
export TMPDIR=$T/tmp # private farms are made here, so they are easy to find
DEMO=$KILN_SRC/examples/demo.yml
[ -f "$DEMO" ] || fail "no $DEMO"

# No process may mention DIR once kiln run is over (bounded wait).
no_procs_for() {
    local left=""
    for _ in $(seq 1 100); do
        left=$(pgrep -f "$1" || true)
        [ -z "$left" ] && return 0
        sleep 0.05
    done
    for p in $left; do PIDS+=("$p"); done
    fail "processes left for $1: $(ps -o pid=,args= -p "$(echo $left | tr ' ' ,)")"
}

rc=0
timeout 50 "$KILN" run "$DEMO" --workers 2 >"$T/demo.out" 2>"$T/demo.err" || rc=$?
[ $rc -eq 0 ] || fail "kiln run demo exited $rc: $(cat "$T/demo.out" "$T/demo.err")"
grep -q "^run 1 success in [0-9]*\.[0-9][0-9]s$" "$T/demo.out" || fail "no 'run 1 success' summary: $(cat "$T/demo.out")"
for job in setup build lint test report; do
    grep -q "^==> $job: success" "$T/demo.out" || fail "no '==> $job: success' in: $(cat "$T/demo.out")"
done
grep -q "^setup | hello from kiln (run 1, job setup, worker worker-[12])$" "$T/demo.out" ||
    fail "no live output from setup: $(cat "$T/demo.out")"
grep -q "^test | test 3: ok$" "$T/demo.out" || fail "no live output from test"
[ -z "$(ls -A "$T/tmp")" ] || fail "kiln run left its farm directory: $(ls "$T/tmp")"
pass "kiln run demo.yml --workers 2: exit 0, live output, 'run 1 success', farm dir removed"

# make demo: the example project as a repository of its own, its CI run
# with kiln run inside it (checkout, matrix, outputs, summaries).
rc=0
timeout 50 bash "$KILN_SRC/examples/demo.sh" "$KILN" >"$T/project.out" 2>&1 || rc=$?
[ $rc -eq 0 ] || fail "examples/demo.sh exited $rc: $(tail -n 20 "$T/project.out")"
for job in "build (-O0)" "build (-O2)" release; do
    grep -qF "==> $job: success" "$T/project.out" || fail "no '==> $job: success': $(grep '==>' "$T/project.out")"
done
grep -qE "^release \| greet v1\.0-1-g[0-9a-f]+ is ready$" "$T/project.out" || fail "the release job did not read the builds' output: $(grep '^release' "$T/project.out")"
grep -qE "^build \(-O2\) \| built acme/greet at [0-9a-f]{12} on main$" "$T/project.out" || fail "the build did not see its repository: $(grep 'built' "$T/project.out")"
grep -qF "### greet v1.0-1-g" "$T/project.out" || fail "no summary from the builds"
grep -q "^release | dist/greet-O0/greet$" "$T/project.out" && grep -q "^release | dist/greet-O2/greet$" "$T/project.out" ||
    fail "the release job did not get the builds' artifacts: $(grep -iE '^release|artifact' "$T/project.out")"
[ -z "$(ls -A "$T/tmp")" ] || fail "the demo left files: $(ls "$T/tmp")"
pass "make demo: the example project's CI from a git repository (checkout, matrix, outputs, artifacts), nothing left behind"

rc=0
timeout 50 "$KILN" run "$DEMO" --workers 2 --json >"$T/demo.json" 2>"$T/demo.err" || rc=$?
[ $rc -eq 0 ] || fail "kiln run --json exited $rc: $(cat "$T/demo.json" "$T/demo.err")"
[ "$(sqlite3 :memory: "select json_valid(readfile('$T/demo.json'))")" = 1 ] || fail "not JSON: $(cat "$T/demo.json")"
[ "$(json_get "$T/demo.json" '$.state')" = success ] || fail "state $(json_get "$T/demo.json" '$.state')"
[ "$(json_get "$T/demo.json" '$.name')" = demo ] || fail "name $(json_get "$T/demo.json" '$.name')"
[ "$(sqlite3 :memory: "select json_array_length(readfile('$T/demo.json'), '\$.jobs')")" = 5 ] || fail "want 5 jobs"
[ "$(sqlite3 :memory: "select count(*) from json_each(json_extract(readfile('$T/demo.json'), '\$.jobs')) where json_extract(value, '\$.state') = 'success'")" = 5 ] ||
    fail "not all jobs succeeded"
pass "kiln run --json: valid JSON, state success, 5 jobs"

rc=0
timeout 50 "$KILN" run "$DEMO" --workers 2 --keep "$T/keep" >"$T/keep.out" 2>"$T/keep.err" || rc=$?
[ $rc -eq 0 ] || fail "kiln run --keep exited $rc: $(cat "$T/keep.out" "$T/keep.err")"
grep -q "farm data kept in $T/keep" "$T/keep.out" || fail "no 'farm data kept' line: $(cat "$T/keep.out")"
[ -f "$T/keep/history.db" ] || fail "no $T/keep/history.db"
[ "$(sqlite3 "$T/keep/history.db" "select count(*) || ':' || max(state) from runs")" = "1:success" ] ||
    fail "kept history: $(sqlite3 "$T/keep/history.db" 'select id, state from runs')"
[ "$(sqlite3 "$T/keep/history.db" "select count(*) from jobs where state = 'success'")" = 5 ] || fail "kept jobs"
no_procs_for "$T/keep"
pass "kiln run --keep: history.db with one run kept, no processes left"

cat >"$T/fails.yml" <<'YML'
name: fails
on: push
jobs:
  nope:
    runs-on: self-hosted
    steps:
      - run: echo failing on purpose; exit 7
YML
rc=0
timeout 50 "$KILN" run "$T/fails.yml" --workers 1 >"$T/fails.out" 2>&1 || rc=$?
[ $rc -eq 1 ] || fail "failing workflow: kiln run exited $rc, want 1: $(cat "$T/fails.out")"
grep -q "^run 1 failure" "$T/fails.out" || fail "no failure summary: $(cat "$T/fails.out")"
grep -q "^==> nope: failure" "$T/fails.out" || fail "no '==> nope: failure': $(cat "$T/fails.out")"
pass "failing workflow: kiln run exits 1"

# Ctrl-C. Job control on, so the background kiln gets SIGINT as it would
# in a terminal (a non-interactive shell would start it with SIGINT ignored).
[ -z "$(ls -A "$T/tmp")" ] || fail "leftover farm dirs: $(ls "$T/tmp")"
cat >"$T/long.yml" <<YML
name: long
on: push
jobs:
  sleeper:
    runs-on: self-hosted
    steps:
      - run: |
          sleep 60 &
          echo \$! > $T/sleep.pid
          echo \$\$ > $T/shell.pid
          echo "\$GITHUB_WORKSPACE" > $T/ws.txt
          wait
YML
set -m
"$KILN" run "$T/long.yml" --workers 1 >"$T/long.out" 2>"$T/long.err" &
KPID=$!
set +m
PIDS+=("$KPID")
for _ in $(seq 1 300); do
    [ -s "$T/ws.txt" ] && break
    kill -0 "$KPID" 2>/dev/null || break
    sleep 0.05
done
[ -s "$T/ws.txt" ] || fail "the sleeper step never started: $(cat "$T/long.out" "$T/long.err")"
FARM=$(ls -d "$T"/tmp/kiln-?????? 2>/dev/null || true)
[ -n "$FARM" ] && [ -d "$FARM" ] || fail "no farm dir in $T/tmp"
case $(cat "$T/ws.txt") in "$FARM"/*) ;; *) fail "workspace $(cat "$T/ws.txt") is not under $FARM" ;; esac
SLEEP_PID=$(cat "$T/sleep.pid") SHELL_PID=$(cat "$T/shell.pid")
kill -0 "$SLEEP_PID" || fail "the step's sleep is not running"
[ -n "$(pgrep -f "$FARM")" ] || fail "no farm processes found for $FARM"
kill -INT "$KPID"
for _ in $(seq 1 300); do kill -0 "$KPID" 2>/dev/null || break; sleep 0.05; done
if kill -0 "$KPID" 2>/dev/null; then
    fail "kiln run still running 15 s after SIGINT"
fi
rc=0
wait "$KPID" || rc=$?
[ $rc -eq 130 ] || fail "kiln run exited $rc after SIGINT, want 130: $(cat "$T/long.err")"
pass "SIGINT: kiln run exited 130"
no_procs_for "$FARM"
for p in "$SLEEP_PID" "$SHELL_PID"; do
    for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.05; done
    if kill -0 "$p" 2>/dev/null; then
        PIDS+=("$p")
        fail "step process $p ($(ps -o args= -p "$p")) survived the interrupt"
    fi
done
[ ! -e "$FARM" ] || fail "the farm directory $FARM was not removed"
pass "SIGINT: no farm process, step shell or sleep left; farm dir removed"

# An infrastructure failure is exit 3, not a pipeline failure: here the
# daemons cannot be found, so the farm never comes up.
mkdir -p "$T/nobin"
rc=0
KILN_LIBEXEC=$T/nobin KILN_REQUEST_TIMEOUT_MS=3000 timeout 60 "$KILN" run "$KILN_SRC/examples/demo.yml" --workers 1 \
    >"$T/infra.out" 2>"$T/infra.err" || rc=$?
[ $rc -eq 3 ] || fail "a farm that cannot start gave exit $rc, want 3: $(cat "$T/infra.err")"
pass "a farm that cannot start: exit 3"
