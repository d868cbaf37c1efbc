# Invalid workflows are refused with exit 2 and a "file:line:col: error"
# diagnostic pointing at the offending line, by `kiln submit` and by
# `kiln run` alike, and nothing is recorded or enqueued. A billion-laughs
# alias bomb and random bytes are refused quickly, and the coordinator goes
# on serving valid runs.
source "$(dirname "$0")/lib.sh"
start_farm 1
mkdir -p "$T/wf" "$T/tmp"
W=$T/wf

# Each file's error is on a known line (the comment says which).
cat >"$W/syntax.yml" <<'YML'
name: syntax
on: push
jobs:
  a:
    runs-on: self-hosted
    steps:
      - run: echo fine
        bad: : x: [
YML
SYNTAX_LINE=8
cat >"$W/cycle.yml" <<'YML'
name: cycle
on: push
jobs:
  a:
    runs-on: self-hosted
    needs: b
    steps:
      - run: echo a
  b:
    runs-on: self-hosted
    needs: a
    steps:
      - run: echo b
YML
CYCLE_LINE=6
cat >"$W/unknown.yml" <<'YML'
name: unknown
on: push
jobs:
  a:
    runs-on: self-hosted
    steps:
      - run: echo a
  b:
    runs-on: self-hosted
    needs: [a, nosuch]
    steps:
      - run: echo b
YML
UNKNOWN_LINE=10
cat >"$W/nosteps.yml" <<'YML'
name: nosteps
on: push
jobs:
  a:
    runs-on: self-hosted
    steps:
      - run: echo a
  empty:
    runs-on: self-hosted
YML
NOSTEPS_LINE=8
cat >"$W/uses.yml" <<'YML'
name: uses
on: push
jobs:
  a:
    runs-on: self-hosted
    steps:
      - run: echo a
      - uses: actions/setup-node
YML
USES_LINE=8

check_refused() { # NAME LINE WHAT
    local f=$W/$1.yml line=$2 what=$3 rc=0
    "$KILN" submit "$f" >"$T/$1.out" 2>"$T/$1.err" || rc=$?
    [ $rc -eq 2 ] || fail "$what: kiln submit exited $rc, want 2 ($(cat "$T/$1.out" "$T/$1.err"))"
    [ ! -s "$T/$1.out" ] || fail "$what: kiln submit printed a run id: $(cat "$T/$1.out")"
    grep -q "^$f:$line:[0-9]*: error: " "$T/$1.err" ||
        fail "$what: no '$f:$line:COL: error:' diagnostic in: $(cat "$T/$1.err")"
    rc=0
    TMPDIR=$T/tmp timeout 30 "$KILN" run "$f" --workers 1 >"$T/$1.run.out" 2>"$T/$1.run.err" || rc=$?
    [ $rc -eq 2 ] || fail "$what: kiln run exited $rc, want 2 ($(cat "$T/$1.run.out" "$T/$1.run.err"))"
    cmp -s "$T/$1.err" "$T/$1.run.err" ||
        fail "$what: kiln run said '$(cat "$T/$1.run.err")', kiln submit said '$(cat "$T/$1.err")'"
    [ -z "$(ls -A "$T/tmp")" ] || fail "$what: kiln run started a farm: $(ls "$T/tmp")"
    pass "$what refused with exit 2 at $1.yml:$line ($(head -n 1 "$T/$1.err" | sed 's/.*error: //'))"
}
check_refused syntax $SYNTAX_LINE "YAML syntax error"
check_refused cycle $CYCLE_LINE "needs cycle"
grep -q "cycle" "$T/cycle.err" || fail "cycle diagnostic does not say cycle: $(cat "$T/cycle.err")"
check_refused unknown $UNKNOWN_LINE "needs of an unknown job"
grep -q "nosuch" "$T/unknown.err" || fail "unknown-job diagnostic does not name it: $(cat "$T/unknown.err")"
check_refused nosteps $NOSTEPS_LINE "job without steps"
grep -q "empty" "$T/nosteps.err" || fail "no-steps diagnostic does not name the job: $(cat "$T/nosteps.err")"
check_refused uses $USES_LINE "step with uses:"
grep -q "uses" "$T/uses.err" || fail "uses diagnostic does not mention uses: $(cat "$T/uses.err")"

# Billion laughs: 9 levels of 10 aliases each (10^9 nodes if expanded).
{
    echo 'name: lol'
    echo 'on: push'
    echo 'x0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]'
    for i in $(seq 1 8); do
        p=$((i - 1))
        echo "x$i: &a$i [*a$p,*a$p,*a$p,*a$p,*a$p,*a$p,*a$p,*a$p,*a$p,*a$p]"
    done
    echo 'jobs:'
    echo '  a:'
    echo '    runs-on: self-hosted'
    echo '    env:'
    echo '      X: *a8'
    echo '    steps:'
    echo '      - run: echo hi'
} >"$W/lol.yml"
rc=0
start=$SECONDS
timeout 10 "$KILN" submit "$W/lol.yml" >"$T/lol.out" 2>"$T/lol.err" || rc=$?
[ $rc -eq 2 ] || fail "billion laughs: kiln submit exited $rc, want 2 ($(cat "$T/lol.err"))"
grep -q "^$W/lol.yml:[0-9]*:[0-9]*: error: " "$T/lol.err" || fail "billion laughs: no diagnostic: $(cat "$T/lol.err")"
rc=0
TMPDIR=$T/tmp timeout 10 "$KILN" run "$W/lol.yml" --workers 1 >/dev/null 2>"$T/lol.run.err" || rc=$?
[ $rc -eq 2 ] || fail "billion laughs: kiln run exited $rc, want 2"
pass "billion laughs refused in $((SECONDS - start))s ($(sed 's/.*error: //' "$T/lol.err"))"

# Random bytes (with an invalid UTF-8 lead byte first, so they can never be
# a valid workflow by chance).
{ printf '\xff\xfe'; head -c 2000 /dev/urandom; } >"$W/garbage.yml"
rc=0
timeout 10 "$KILN" submit "$W/garbage.yml" >"$T/garbage.out" 2>"$T/garbage.err" || rc=$?
[ $rc -eq 2 ] || fail "garbage: kiln submit exited $rc, want 2"
grep -q "^$W/garbage.yml:[0-9]*:[0-9]*: error: ..." "$T/garbage.err" || fail "garbage: no diagnostic: $(cat "$T/garbage.err")"
pass "random bytes refused with exit 2 ($(head -n 1 "$T/garbage.err" | sed 's/.*error: //'))"

# The coordinator checks what it receives on its own: the same files sent
# without the client's check are refused there, with file:line.
for f in "$W"/*.yml; do
    case $f in *garbage.yml | *ok.yml) continue ;; esac
    rc=0
    timeout 20 "$KILN" submit --no-check "$f" >"$T/nc.out" 2>"$T/nc.err" || rc=$?
    [ $rc -eq 2 ] || fail "coordinator accepted $(basename "$f") (exit $rc): $(cat "$T/nc.err")"
    grep -q "$(basename "$f"):[0-9]*:[0-9]*: error" "$T/nc.err" ||
        fail "coordinator refusal of $(basename "$f") names no file:line: $(cat "$T/nc.err")"
done
rc=0
timeout 20 "$KILN" submit --no-check "$W/garbage.yml" >"$T/nc.out" 2>"$T/nc.err" || rc=$?
[ $rc -eq 2 ] || fail "coordinator accepted garbage (exit $rc)"
grep -q "refused a workflow" "$T/coordinator.log" || fail "coordinator did not log the refusals"
pass "the coordinator refuses the same files itself (exit 2, file:line)"

# Nothing was recorded or enqueued.
"$KILN" history --json >"$T/hist.json" || fail "kiln history failed"
[ "$(json_get "$T/hist.json" '$')" = "[]" ] || fail "history is not empty: $(cat "$T/hist.json")"
[ "$(sqlite3 "$T/history.db" 'select count(*) from runs')" = 0 ] || fail "runs table not empty"
keys=$(redis --scan --pattern 'kiln:*' | grep -vx 'kiln:owner' || true)
[ -z "$keys" ] || fail "redis has job keys: $keys"
pass "nothing recorded in history, nothing enqueued in redis"

# The coordinator still serves a valid run.
cat >"$W/ok.yml" <<'YML'
name: ok
on: push
jobs:
  a:
    runs-on: self-hosted
    steps:
      - run: echo still alive
YML
timeout 30 "$KILN" submit --wait "$W/ok.yml" >"$T/ok.out" 2>&1 || fail "valid run failed: $(cat "$T/ok.out")"
grep -q "run 1 success" "$T/ok.out" || fail "valid run is not run 1: $(cat "$T/ok.out")"
kill -0 "$COORD_PID" || fail "coordinator died"
pass "coordinator still serves a valid run"

# A vars file that is too large, not JSON, or not an object stops a
# coordinator at start-up with a message naming the file.
head -c $((300 * 1024)) /dev/zero | tr '\0' ' ' >"$T/vars-big.json"
printf '{"a": \n  [1,\n' >"$T/vars-broken.json"
printf '[1, 2]\n' >"$T/vars-array.json"
check_vars_refused() { # FILE PATTERN
    local rc=0
    timeout 20 "$KILN_BIN/kiln-coordinator" --listen "tcp://127.0.0.1:$(free_port)" \
        --redis "$T/redis.sock" --db "$T/vars-history.db" --key "$T/keys/server.key" \
        --allow "$T/allow" --vars "$1" >"$T/vars.err" 2>&1 || rc=$?
    [ $rc -ne 0 ] && [ $rc -ne 124 ] || fail "coordinator started with $1 (exit $rc)"
    grep -q "$2" "$T/vars.err" || fail "refusal of $1 does not say \"$2\": $(cat "$T/vars.err")"
}
check_vars_refused "$T/vars-big.json" "vars-big.json is 307200 bytes, more than 262144"
check_vars_refused "$T/vars-broken.json" "vars-broken.json:[0-9]*: "
check_vars_refused "$T/vars-array.json" "vars-array.json: vars must be a JSON object"
check_vars_refused "$T/no-such-vars.json" "no-such-vars.json"
kill -0 "$COORD_PID" || fail "the running coordinator died"
pass "bad vars files are refused at start-up, naming the file"

# A local action whose directory is a link out of the repository is refused
# like "./../x", by lint and by submit, naming the file, the line and where
# the link leads; nothing of it is read or run.
mkdir -p "$T/linkrepo/.git" "$T/linkrepo/.github/workflows" "$T/linkrepo/ci" "$T/outside"
cat >"$T/outside/action.yml" <<'YML'
name: outside
runs:
  using: composite
  steps:
    - run: echo "RAN FROM OUTSIDE"
      shell: bash
YML
ln -s "$T/outside" "$T/linkrepo/ci/evil"
cat >"$T/linkrepo/.github/workflows/ci.yml" <<'YML'
on: push
jobs:
  a:
    runs-on: self-hosted
    steps:
      - uses: ./ci/evil
YML
for cmd in lint submit; do
    rc=0
    "$KILN" $cmd "$T/linkrepo/.github/workflows/ci.yml" >"$T/link.out" 2>&1 || rc=$?
    [ $rc -eq 2 ] || fail "kiln $cmd of a linked-out action exited $rc: $(cat "$T/link.out")"
    grep -q "ci.yml:6: error: uses: ./ci/evil leads to $T/outside/action.yml, outside the repository" "$T/link.out" ||
        fail "kiln $cmd does not say why: $(cat "$T/link.out")"
done
pass "a local action linked out of the repository is refused by lint and submit (file:line, where it leads)"
