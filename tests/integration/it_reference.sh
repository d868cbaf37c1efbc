# The CLI and the README agree: every flag a command's --help lists is in
# its row of the README's CLI reference (the flags every command shares are
# described once below the table), every flag a row names is in --help, and
# the daemons' --help and configuration tables match the same way.
source "$(dirname "$0")/lib.sh"
README=$KILN_SRC/README.md
shared="--config --help --data-dir --coordinator --server-key --key"
flags_of() { grep -oE -- '--[a-z][a-z0-9-]*' | sort -u; }
check() { # name, help text file, readme text file, flags described elsewhere
    for f in $(flags_of <"$2"); do
        case " $4 " in *" $f "*) continue ;; esac
        grep -q -- "$f\b" "$3" || fail "$1: $f is in --help but not in the README"
    done
    for f in $(flags_of <"$3"); do
        grep -q -- "$f\b" "$2" || fail "$1: the README names $f, which --help does not list"
    done
}
for cmd in run up submit status logs history cancel workers "worker drain" stats keygen lint graph toolcache actions; do
    set -- $cmd
    "$KILN" "$1" --help >"$T/help" 2>&1 || true
    grep -F -- "| \`kiln $cmd" "$README" | head -n 1 | cut -d'|' -f2 >"$T/row"
    [ -s "$T/row" ] || fail "the README has no row for kiln $cmd"
    # Flags in the row's synopsis (its first column).
    grep -oE -- '--[a-z][a-z0-9-]*' "$T/row" >/dev/null || [ "$(flags_of <"$T/help" | grep -vcE -- '--(config|help|data-dir|coordinator|server-key|key)$')" = 0 ] ||
        fail "kiln $cmd: its README row names no flag"
    check "kiln $cmd" "$T/help" "$T/row" "$shared"
done
pass "every kiln command's --help and README row name the same flags"
for d in coordinator worker; do
    "$KILN_BIN/kiln-$d" --help >"$T/help" 2>&1 || true
    awk -v d="\`kiln-$d\`:" '$0 == d {on=1; next} on && /^`kiln-/ {on=0} on && /^\| `--/' "$README" |
        cut -d'|' -f2 >"$T/rows"
    [ -s "$T/rows" ] || fail "the README has no configuration table for kiln-$d"
    check "kiln-$d" "$T/help" "$T/rows" "--config --help"
done
pass "the daemons' --help and the README's configuration tables name the same flags"
