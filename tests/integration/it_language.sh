# The workflow-language corpus (tests/data/lang): each workflow runs on a
# private local farm with `kiln run`, and its .expect file says what must
# come of it:
#   input NAME=VALUE          passed with --input
#   vars JSON                 the farm's vars (kiln run --vars)
#   run success|failure|skipped  the run's state (exit 0, 1, 0)
#   state JOB STATE           a job's final state
#   name JOB TEXT             a job's display name
#   stepname JOB TEXT         the name of the job's first step
#   step JOB N TEXT           the name of the job's step N (0-based), as it ran
#   output JOB NAME VALUE     a job's output
#   log JOB TEXT              TEXT appears in the job's output
#   logre JOB REGEX           a line of the job's output matches REGEX
#   nolog JOB TEXT            TEXT never appears in the job's output
#   annotation JOB LEVEL TEXT an annotation of that level whose message has TEXT
#   summary JOB TEXT          the job's step summary contains TEXT
# A .graph file holds the expected `kiln graph` output. A case that needs
# a repository of its own (called workflows) is a directory under repos/
# holding .github/workflows/ci.yml and ci.expect beside .github.
source "$(dirname "$0")/lib.sh"
DATA=$KILN_SRC/tests/data/lang
q() { sqlite3 "$T/farm/history.db" "$1"; }
n=0
for wf in "$DATA"/*.yml "$DATA"/repos/*/.github/workflows/ci.yml; do
    name=$(basename "$wf" .yml)
    exp=$DATA/$name.expect
    case $wf in
    */repos/*)
        dir=${wf%/.github/workflows/ci.yml}
        name=$(basename "$dir")
        exp=$dir/ci.expect
        ;;
    esac
    [ -f "$exp" ] || continue
    if [ -f "$DATA/$name.graph" ]; then
        "$KILN" graph "$wf" >"$T/graph.out" || fail "$name: kiln graph failed"
        diff -u "$DATA/$name.graph" "$T/graph.out" >&2 || fail "$name: graph differs"
    fi
    args=()
    vars="{}"
    while read -r kind rest; do
        [ "$kind" = input ] && args+=(--input "$rest")
        [ "$kind" = vars ] && vars=$rest
    done <"$exp"
    printf '%s' "$vars" >"$T/vars.json"
    args+=(--vars "$T/vars.json")
    rm -rf "$T/farm"
    rc=0
    "$KILN" run "$wf" --workers 2 --json --keep "$T/farm" "${args[@]}" >"$T/run.json" 2>"$T/run.err" || rc=$?
    while read -r kind a b c; do
        case $kind in
        run)
            want=0
            [ "$a" = success ] || [ "$a" = skipped ] || want=1
            [ $rc -eq $want ] || fail "$name: kiln run exited $rc, want $want: $(cat "$T/run.err")"
            [ "$(json_get "$T/run.json" '$.state')" = "$a" ] || fail "$name: run state is not $a"
            ;;
        state)
            got=$(q "select state from jobs where job_id='$a'")
            [ "$got" = "$b" ] || fail "$name: job $a is '$got', want '$b'"
            ;;
        name)
            want="$b${c:+ $c}"
            got=$(q "select name from jobs where job_id='$a'")
            [ "$got" = "$want" ] || fail "$name: job $a is named '$got', want '$want'"
            ;;
        stepname)
            want="$b${c:+ $c}"
            got=$(q "select name from steps where job_id='$a' and idx=0 order by attempt limit 1")
            [ "$got" = "$want" ] || fail "$name: first step of $a is named '$got', want '$want'"
            ;;
        step)
            read -r idx text <<<"$b${c:+ $c}"
            got=$(q "select name from steps where job_id='$a' and idx=$idx order by attempt limit 1")
            [ "$got" = "$text" ] || fail "$name: step $idx of $a is named '$got', want '$text'"
            ;;
        output)
            got=$(q "select json_extract(outputs, '\$.$b') from jobs where job_id='$a'")
            [ "$got" = "$c" ] || fail "$name: output $a.$b is '$got', want '$c'"
            ;;
        log | logre | nolog)
            text="$b${c:+ $c}"
            q "select data from logs where job_id='$a' order by id" >"$T/log.txt"
            case $kind in
            log) grep -qF -- "$text" "$T/log.txt" || fail "$name: '$text' not in $a's output: $(cat "$T/log.txt")" ;;
            logre) grep -qE -- "$text" "$T/log.txt" || fail "$name: no line of $a's output matches '$text'" ;;
            nolog) grep -qF -- "$text" "$T/log.txt" && fail "$name: '$text' appears in $a's output" ;;
            esac
            ;;
        annotation)
            got=$(q "select count(*) from annotations where job_id='$a' and level='$b' and instr(message, '$c') > 0")
            [ "$got" -ge 1 ] || fail "$name: no $b annotation '$c' on $a"
            ;;
        summary)
            text="$b${c:+ $c}"
            got=$(q "select count(*) from summaries where job_id='$a' and instr(markdown, '$text') > 0")
            [ "$got" -ge 1 ] || fail "$name: $a's summary lacks '$text'"
            ;;
        esac
    done <"$exp"
    pass "$name"
    n=$((n + 1))
done
[ $n -ge 6 ] || fail "only $n workflows in the corpus"
"$KILN" graph --dot "$DATA/matrix_build.yml" >"$T/g.dot" || fail "kiln graph --dot failed"
grep -q '^digraph "matrix build" {' "$T/g.dot" && grep -q '"build-3" -> "test";' "$T/g.dot" &&
    grep -q '"test" -> "summary";' "$T/g.dot" || fail "graph --dot is wrong: $(cat "$T/g.dot")"
pass "kiln graph --dot"
