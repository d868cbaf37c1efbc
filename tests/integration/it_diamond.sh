# A diamond (a -> b, c -> d) on two workers over TCP: b and c run at the
# same time on different workers, and d starts only after both ended.
source "$(dirname "$0")/lib.sh"
start_farm 2
mkdir -p "$T/ledger"
cat >"$T/diamond.yml" <<YML
name: diamond
on: push
jobs:
  a:
    runs-on: self-hosted
    steps:
      - run: date +%s%N > $T/ledger/a.end
  b:
    needs: a
    runs-on: self-hosted
    steps:
      - run: |
          date +%s%N > $T/ledger/b.start
          echo "\$KILN_WORKER" > $T/ledger/b.worker
          sleep 1
          date +%s%N > $T/ledger/b.end
  c:
    needs: a
    runs-on: self-hosted
    steps:
      - run: |
          date +%s%N > $T/ledger/c.start
          echo "\$KILN_WORKER" > $T/ledger/c.worker
          sleep 1
          date +%s%N > $T/ledger/c.end
  d:
    needs: [b, c]
    runs-on: self-hosted
    steps:
      - run: date +%s%N > $T/ledger/d.start
YML
"$KILN" submit --wait "$T/diamond.yml" >"$T/out.txt" || fail "run failed: $(cat "$T/out.txt")"
L=$T/ledger
[ "$(cat "$L/b.worker")" != "$(cat "$L/c.worker")" ] || fail "b and c ran on the same worker"
pass "b ran on $(cat "$L/b.worker"), c on $(cat "$L/c.worker")"
# Overlap: each started before the other ended.
[ "$(cat "$L/b.start")" -lt "$(cat "$L/c.end")" ] && [ "$(cat "$L/c.start")" -lt "$(cat "$L/b.end")" ] ||
    fail "b and c did not overlap"
pass "b and c ran in parallel"
[ "$(cat "$L/b.start")" -gt "$(cat "$L/a.end")" ] && [ "$(cat "$L/c.start")" -gt "$(cat "$L/a.end")" ] ||
    fail "b or c started before a ended"
[ "$(cat "$L/d.start")" -gt "$(cat "$L/b.end")" ] && [ "$(cat "$L/d.start")" -gt "$(cat "$L/c.end")" ] ||
    fail "d started before b and c ended"
pass "d started after b and c"
grep -q "run 1 success" "$T/out.txt" || fail "no success summary"
pass "summary printed"
