# Workspace reuse: a worker empties a finished job's tree and hands it to
# the next job in the same slot. Nothing of one job reaches the next: not
# its files in the workspace or RUNNER_TEMP, not what it wrote to its
# command files ($GITHUB_OUTPUT, $GITHUB_ENV, $GITHUB_PATH, the step
# summary). The next job's command files, kept from the first, work as new
# ones do: what it writes there arrives, for steps the first job had and for
# steps it did not.
source "$(dirname "$0")/lib.sh"
start_farm 1 --prefetch 0
cat >"$T/reuse.yml" <<'YML'
name: reuse
on: push
jobs:
  first:
    runs-on: self-hosted
    steps:
      - run: |
          echo "left=behind" >> "$GITHUB_OUTPUT"
          echo "LEAKED=yes" >> "$GITHUB_ENV"
          echo "/leaked/bin" >> "$GITHUB_PATH"
          echo "# first summary" >> "$GITHUB_STEP_SUMMARY"
          echo data > stray-file
          mkdir -p nested/dir && echo x > nested/dir/f
          echo t > "$RUNNER_TEMP/temp-file"
      - run: echo "second=step" >> "$GITHUB_OUTPUT"
  second:
    needs: first
    runs-on: self-hosted
    outputs:
      a: ${{ steps.one.outputs.a }}
      c: ${{ steps.three.outputs.c }}
    steps:
      - id: one
        run: |
          for f in "$GITHUB_OUTPUT" "$GITHUB_ENV" "$GITHUB_PATH" "$GITHUB_STEP_SUMMARY"; do
            [ -f "$f" ] && [ ! -s "$f" ] || { echo "not an empty file: $f"; exit 1; }
          done
          [ -z "${LEAKED:-}" ] || { echo "env leaked"; exit 1; }
          case ":$PATH:" in *:/leaked/bin:*) echo "path leaked"; exit 1;; esac
          [ -z "$(ls -A .)" ] || { echo "workspace not empty: $(ls -A .)"; exit 1; }
          [ -z "$(ls -A "$RUNNER_TEMP")" ] || { echo "temp not empty"; exit 1; }
          echo "a=from-one" >> "$GITHUB_OUTPUT"
      - run: '[ ! -s "$GITHUB_OUTPUT" ] || { echo "step 2 output not empty"; exit 1; }'
      - id: three
        run: echo "c=from-three" >> "$GITHUB_OUTPUT"
  third:
    needs: second
    runs-on: self-hosted
    steps:
      - run: |
          [ "${{ needs.second.outputs.a }}" = from-one ] || { echo "a: ${{ needs.second.outputs.a }}"; exit 1; }
          [ "${{ needs.second.outputs.c }}" = from-three ] || { echo "c: ${{ needs.second.outputs.c }}"; exit 1; }
YML
"$KILN" submit --wait "$T/reuse.yml" >"$T/out.txt" 2>&1 || fail "the run failed: $(cat "$T/out.txt")"
# All three ran on the one worker, one after another in its one slot.
[ "$(sqlite3 "$T/history.db" "select count(distinct worker) || ':' || count(*) from attempts")" = 1:3 ] ||
    fail "attempts: $(sqlite3 "$T/history.db" 'select job_id, worker from attempts')"
ls -a "$T/work/w1" | grep -q '^\.spare-0$' || fail "no spare tree was kept: $(ls -a "$T/work/w1")"
pass "the second job found empty command files, workspace and temp; its outputs and the third's checks held"
