# A farm's data is its user's alone: a data directory that existed before
# (0755, or 1777 as on a tmpfs) is made 0700, and what the farm writes in it
# (history, logs, Redis's files, keys) is 0600; a directory that belongs to
# another user is refused with a message that says so. Steps still make
# their files with the usual 022 mask.
source "$(dirname "$0")/lib.sh"
cat >"$T/wf.yml" <<'YML'
on: push
jobs:
  a:
    runs-on: self-hosted
    steps:
      - run: touch made && stat -c 'step file %a' made
YML
mkdir -m 1777 "$T/data"
"$KILN" run "$T/wf.yml" --workers 1 --keep "$T/data" >"$T/run.out" 2>&1 || fail "kiln run failed: $(cat "$T/run.out")"
[ "$(stat -c %a "$T/data")" = 700 ] || fail "the data directory is $(stat -c %a "$T/data")"
grep -q "step file 644" "$T/run.out" || fail "the step's file mode: $(grep 'step file' "$T/run.out")"
open=$(find "$T/data" \( -type f -perm /077 \) -o \( -type d -perm /077 \) | head -n 5)
[ -z "$open" ] || fail "readable by others: $(for f in $open; do stat -c '%a %n' "$f"; done)"
[ -n "$(find "$T/data" -name history.db)" ] || fail "no history.db in the data directory"
pass "a 1777 data directory became 0700 and everything the farm wrote is private"
if [ "$(id -u)" = 0 ] && id nobody >/dev/null 2>&1; then
    mkdir "$T/theirs"
    chown nobody "$T/theirs"
    rc=0
    "$KILN" run "$T/wf.yml" --workers 1 --keep "$T/theirs" >"$T/run2.out" 2>&1 || rc=$?
    [ $rc -ne 0 ] || fail "a data directory of another user was used"
    grep -q "belongs to uid $(id -u nobody), not to this user" "$T/run2.out" || fail "no reason: $(cat "$T/run2.out")"
    pass "a data directory of another user is refused, saying whose it is"
fi

# A private farm that cannot start says why from its logs, which go with it.
printf '[1, 2]\n' >"$T/bad-vars.json"
rc=0
"$KILN" run "$T/wf.yml" --workers 1 --vars "$T/bad-vars.json" >"$T/bad.out" 2>&1 || rc=$?
[ $rc -eq 3 ] || fail "a farm that cannot start exited $rc"
grep -q "vars must be a JSON object" "$T/bad.out" || fail "the cause is not shown: $(cat "$T/bad.out")"
grep -q "see /" "$T/bad.out" && fail "it points at a log that was removed: $(cat "$T/bad.out")"
pass "a private farm that cannot start prints the end of its logs: $(grep -m1 'vars must' "$T/bad.out" | sed 's/^ *//')"
