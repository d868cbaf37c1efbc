# Artifacts on the farm's store: a build job on one worker uploads (a
# directory with an exclusion, hidden files left out, single files, a glob,
# nothing found as a warning), a test job on another worker downloads by
# name, by pattern merged, and all; a missing artifact, a second upload
# under a taken name, if-no-files-found: error and a run-id of another run
# fail their steps with clear messages; a run step has no store token and a
# forged one is refused; kiln artifacts lists, kiln artifact
# get downloads the same tree; an upload cut by a coordinator killed
# mid-transfer resumes where it stopped; expired artifacts are gone after
# the retention sweep; a hostile artifact is refused by kiln artifact get
# with nothing written.
source "$(dirname "$0")/lib.sh"
start_farm 1 --labels builder
admit_worker w2
kill -HUP "$COORD_PID"
start_worker w2 --labels tester
wait_workers 2

cat >"$T/pass.yml" <<'YML'
on: push
jobs:
  build:
    runs-on: [linux, builder]
    steps:
      - run: |
          mkdir -p dist/sub logs p2
          echo one >dist/a.txt; echo two >dist/sub/b.txt; echo skip >dist/sub/c.log
          echo secret >dist/.env; echo x >logs/x.log; echo y >p2/y.log
      - id: up
        uses: actions/upload-artifact@v4
        with:
          name: dist
          path: |
            dist
            !dist/**/*.log
      - run: echo "id=${{ steps.up.outputs.artifact-id }} digest=${{ steps.up.outputs.artifact-digest }}"
      - uses: actions/upload-artifact@v4
        with: {name: part-1, path: logs/x.log, retention-days: 1}
      - uses: actions/upload-artifact@v4
        with: {name: part-2, path: 'p2/*.log'}
      - uses: actions/upload-artifact@v4
        with: {name: none, path: 'nothing-here/*'}
  test:
    needs: build
    runs-on: [linux, tester]
    steps:
      - uses: actions/download-artifact@v4
        with: {name: dist, path: got}
      - run: echo "got $(cd got && find . -type f | sort | tr '\n' ' ')$(cat got/a.txt got/sub/b.txt | tr '\n' ' ')"
      - id: parts
        uses: actions/download-artifact@v4
        with: {pattern: 'part-*', path: parts, merge-multiple: true}
      - run: echo "parts $(ls parts | tr '\n' ' ')path=${{ steps.parts.outputs.download-path }}"
      - uses: actions/download-artifact@v4
        with: {path: every}
      - run: echo "every $(ls every | tr '\n' ' ')"
YML
RC=0
"$KILN" submit --wait "$T/pass.yml" >"$T/pass.out" 2>&1 || RC=$?
[ $RC = 0 ] || fail "the artifact run exited $RC: $(grep -iE 'error|warn|artifact' "$T/pass.out" | head -n 10)"
grep -q "^build | id=[0-9][0-9]* digest=[0-9a-f]\{64\}" "$T/pass.out" || fail "no artifact-id/digest outputs: $(grep 'id=' "$T/pass.out")"
grep -q "^test | got ./a.txt ./sub/b.txt one two" "$T/pass.out" ||
    fail "download by name: $(grep -E '^test \| got|Artifact' "$T/pass.out")"
grep -q "^test | parts x.log y.log path=.*/parts" "$T/pass.out" || fail "pattern, merged: $(grep -E 'parts' "$T/pass.out")"
grep -q "^test | every dist part-1 part-2" "$T/pass.out" || fail "all: $(grep -E 'every' "$T/pass.out")"
grep -q "No files were found with the provided path: nothing-here/\*. No artifacts will be uploaded." "$T/pass.out" ||
    fail "nothing found was not a warning: $(grep -i 'no files' "$T/pass.out")"
grep -q "Artifact 'dist' downloaded to .* (from the coordinator)" "$T/pass.out" || fail "the download does not say where from"
[ -d "$T/work/w2" ] && grep -q "w2" <("$KILN" status 1) || fail "the test job did not run on w2"
pass "artifacts from a build job on one worker to a test job on another: by name, by pattern merged, all; exclusions and hidden files left out; nothing found a warning"

# Failures a user can act on.
cat >"$T/fail.yml" <<'YML'
on: push
jobs:
  a:
    runs-on: [linux, builder]
    steps:
      - run: echo one >f.txt
      - uses: actions/upload-artifact@v4
        with: {name: same, path: f.txt}
      - id: again
        continue-on-error: true
        uses: actions/upload-artifact@v4
        with: {name: same, path: f.txt}
      - uses: actions/upload-artifact@v4
        with: {name: same, path: f.txt, overwrite: true}
      - uses: actions/download-artifact@v4
        with: {name: same, path: back}
      - continue-on-error: true
        uses: actions/upload-artifact@v4
        with: {name: empty, path: nothing/, if-no-files-found: error}
      - continue-on-error: true
        uses: actions/download-artifact@v4
        with: {name: dist, run-id: '999'}
      - uses: actions/download-artifact@v4
        with: {name: nope}
YML
RC=0
"$KILN" submit --wait "$T/fail.yml" >"$T/fail.out" 2>&1 || RC=$?
[ $RC = 1 ] || fail "the failing run exited $RC"
grep -q "an artifact with the name 'same' already exists in run 2" "$T/fail.out" ||
    fail "a taken name: $(grep -i 'same' "$T/fail.out" | head -n 3)"
grep -q "No files were found with the provided path: nothing/. No artifacts will be uploaded." "$T/fail.out" &&
    grep -q "Unable to download artifact(s): Artifact not found for name: nope" "$T/fail.out" &&
    grep -q "run-id 999: Kiln downloads artifacts of the job's own run only" "$T/fail.out" ||
    fail "failure messages: $(grep -iE 'error' "$T/fail.out" | head -n 8)"
[ "$("$KILN" artifacts 2 --json | grep -c '"state": "replaced"')" = 1 ] || fail "overwrite did not replace: $("$KILN" artifacts 2)"
grep -q "Artifact 'same' downloaded to .*/back: .* (from this worker's cache)" "$T/fail.out" ||
    fail "an artifact uploaded on this worker was fetched again: $(grep "Artifact 'same' downloaded" "$T/fail.out")"
pass "a taken name (and overwrite), if-no-files-found: error, another run's id and a missing artifact fail with clear messages; what a worker uploaded it downloads from its own cache"

# A run step that speaks the store's protocol itself, at its worker's
# socket, has no token (only built-in steps are given their job's), and a
# made-up one is refused by the worker.
cat >"$T/forged.yml" <<YML
on: push
jobs:
  a:
    runs-on: [linux, builder]
    steps:
      - run: |
          echo "token=\${KILN_STORE_TOKEN:-none}"
          export KILN_BUILTIN=download-artifact INPUT_NAME=dist KILN_CACHE_DIR=\$RUNNER_TEMP/c
          KILN_STORE_SOCKET=$T/work/w1/.store.sock KILN_STORE_TOKEN=00000000000000000000000000000000 "$KILN_BIN/kiln-checkout" || true
YML
"$KILN" submit --wait "$T/forged.yml" >"$T/forged.out" 2>&1 || fail "the forged-token run failed: $(tail -n 5 "$T/forged.out")"
grep -q "^a | token=none" "$T/forged.out" || fail "a run step was given the job's store token: $(grep token= "$T/forged.out")"
grep -q "no job of this worker has that store token" "$T/forged.out" ||
    fail "a forged store token was not refused: $(grep -iE "error|token" "$T/forged.out")"
pass "a run step has no store token, and a forged one is refused by the worker"

# The same bytes uploaded by a later run: the store has the blob whole
# already, under another run's artifact; the job sends it again, which
# proves it holds it, and the upload is the new run's.
cat >"$T/same.yml" <<'YML'
on: push
jobs:
  build:
    runs-on: [linux, builder]
    steps:
      - run: mkdir -p same && echo fixed >same/f && touch -d @1700000000 same/f same
      - id: up
        uses: actions/upload-artifact@v4
        with: {name: same, path: same}
      - run: echo "digest=${{ steps.up.outputs.artifact-digest }}"
YML
for n in 1 2; do
    "$KILN" submit --wait "$T/same.yml" >"$T/same$n.out" 2>&1 ||
        fail "upload $n of the same bytes failed: $(grep -iE 'error|artifact' "$T/same$n.out" | head -n 5)"
done
D1=$(sed -n 's/^build | digest=//p' "$T/same1.out")
D2=$(sed -n 's/^build | digest=//p' "$T/same2.out")
[ -n "$D1" ] && [ "$D1" = "$D2" ] || fail "the two uploads are not the same bytes ($D1, $D2): the case is not tested"
"$KILN" history --limit 1 --json >"$T/h-same.json"
SAME=$(json_get "$T/h-same.json" '$[0].id')
mkdir -p "$T/dl-same"
"$KILN" artifact get "$SAME" same -o "$T/dl-same" >"$T/get-same.out" 2>&1 && [ "$(cat "$T/dl-same/same/f")" = fixed ] ||
    fail "the second run's artifact cannot be fetched: $(cat "$T/get-same.out")"
pass "a later run uploading bytes the store already holds (digest ${D1:0:12}) sends them again as proof and gets its artifact"

# kiln artifacts and kiln artifact get.
"$KILN" artifacts 1 >"$T/list.out" || fail "kiln artifacts failed"
grep -q "dist .* 2 .* build .* kept" "$T/list.out" && grep -q "part-2" "$T/list.out" || fail "kiln artifacts: $(cat "$T/list.out")"
mkdir -p "$T/dl"
"$KILN" artifact get 1 dist -o "$T/dl" >"$T/get.out" 2>&1 || fail "kiln artifact get: $(cat "$T/get.out")"
[ "$(cd "$T/dl/dist" && find . -type f | sort | tr '\n' ' ')" = "./a.txt ./sub/b.txt " ] && [ "$(cat "$T/dl/dist/sub/b.txt")" = two ] ||
    fail "kiln artifact get gave: $(cd "$T/dl" && find . | sort | tr '\n' ' ')"
"$KILN" artifact get 1 dist -o "$T/dl" >"$T/get2.out" 2>&1 && fail "an existing directory was overwritten"
grep -q "exists: not overwritten" "$T/get2.out" || fail "kiln artifact get over an existing one: $(cat "$T/get2.out")"
pass "kiln artifacts lists a run's artifacts; kiln artifact get downloads the same tree and never overwrites"

# A hostile artifact (its digest right, its entries not) refused by the client.
mkdir -p "$T/evil/in"
echo pwned >"$T/evil/in/x"
tar --zstd -cf "$T/evil.tar.zst" -C "$T/evil" --transform 's|^in/x|../../escaped-artifact|' in/x
EHEX=$(sha256sum "$T/evil.tar.zst" | cut -c1-64)
mkdir -p "$T/store/blobs/${EHEX:0:2}" && cp "$T/evil.tar.zst" "$T/store/blobs/${EHEX:0:2}/$EHEX"
sqlite3 "$T/history.db" "PRAGMA busy_timeout = 5000; update artifacts set digest = 'sha256:$EHEX' where name = 'part-2'"
mkdir -p "$T/dl2/inner"
RC=0
"$KILN" artifact get 1 part-2 -o "$T/dl2/inner" >"$T/evil.out" 2>&1 || RC=$?
[ $RC = 3 ] && grep -q "entry '../../escaped-artifact': its path is absolute or leaves the target" "$T/evil.out" ||
    fail "a hostile artifact: exit $RC: $(cat "$T/evil.out")"
[ -z "$(find "$T/dl2" -mindepth 2)" ] && ! find /tmp -xdev -name escaped-artifact 2>/dev/null | grep -q . ||
    fail "the hostile artifact left: $(find "$T/dl2"; find /tmp -xdev -name escaped-artifact 2>/dev/null)"
pass "a hostile artifact is refused by kiln artifact get naming the entry; nothing written anywhere"

# 5. An upload cut short: the coordinator killed mid-transfer, started
# again; the step goes on from what the store kept.
cat >"$T/big.yml" <<'YML'
on: push
jobs:
  a:
    runs-on: [linux, builder]
    steps:
      - run: mkdir -p big && head -c 150000000 /dev/urandom >big/blob && echo "sum $(sha256sum big/blob | cut -c1-64)"
      - uses: actions/upload-artifact@v4
        with: {name: big, path: big, compression-level: 0}
YML
"$KILN" submit "$T/big.yml" >"$T/big.sub" 2>&1 || fail "submit: $(cat "$T/big.sub")"
BIG=$(grep -o '[0-9]\+' "$T/big.sub" | head -n 1)
[ -n "$BIG" ] || fail "no run number from submit: $(cat "$T/big.sub")"
for _ in $(seq 1 600); do
    P=$(find "$T/store/partial" -type f -size +20M 2>/dev/null | head -n 1)
    [ -n "$P" ] && break
    sleep 0.02
done
[ -n "$P" ] || fail "the upload never reached 20 MB in the store"
kill -9 "$COORD_PID"
wait "$COORD_PID" 2>/dev/null || true
HELD=$(stat -c %s "$P")
start_coordinator
wait_workers 2
for _ in $(seq 1 600); do
    "$KILN" status "$BIG" --json >"$T/st3.json" 2>/dev/null || true
    [ "$(json_get "$T/st3.json" '$.state')" = running ] || break
    sleep 0.1
done
"$KILN" logs "$BIG" >"$T/big.out" 2>&1
grep -q "Artifact big has been successfully uploaded.*resumed" "$T/big.out" ||
    fail "the upload did not resume (the store held $HELD bytes): $(grep -iE 'artifact|error|warn' "$T/big.out" | head -n 5)"
# The download cut the same way: kiln artifact get asks again at the
# same byte until the coordinator is back.
mkdir -p "$T/dl3"
KILN_REQUEST_TIMEOUT_MS=1000 "$KILN" artifact get "$BIG" big -o "$T/dl3" >"$T/get3.out" 2>&1 &
GET_PID=$!
PIDS+=($GET_PID)
for _ in $(seq 1 600); do
    P=$(find "$T/dl3" -name '.kiln-artifact-*' -size +20M 2>/dev/null | head -n 1)
    [ -n "$P" ] && break
    sleep 0.02
done
[ -n "$P" ] || fail "the download never reached 20 MB: $(cat "$T/get3.out")"
kill -9 "$COORD_PID"
wait "$COORD_PID" 2>/dev/null || true
GOT_AT=$(stat -c %s "$P")
sleep 1.5 # the client's request, one second's patience, goes unanswered
start_coordinator
RC=0
wait "$GET_PID" || RC=$?
[ $RC = 0 ] && grep -q "resumed after the coordinator stopped answering" "$T/get3.out" ||
    fail "the cut download: exit $RC: $(cat "$T/get3.out")"
WANT=$(sed -n 's/^a | sum \([0-9a-f]*\)$/\1/p' "$T/big.out")
GOT=$(sha256sum "$T/dl3/big/blob" | cut -c1-64)
[ -n "$WANT" ] && [ "$WANT" = "$GOT" ] || fail "the resumed artifact differs: $WANT vs $GOT"
pass "an upload cut by a killed coordinator (at $HELD bytes) resumed from what the store kept, a kiln artifact get cut the same way (at $GOT_AT bytes) went on; the blob is whole"

# 6. Retention: an artifact past its time is gone after the sweep (at the
# coordinator's start, then each minute).
sqlite3 "$T/history.db" "PRAGMA busy_timeout = 5000; update artifacts set expires_ms = 1 where name = 'part-1'"
kill "$COORD_PID"
wait "$COORD_PID" 2>/dev/null || true
start_coordinator
for _ in $(seq 1 100); do
    "$KILN" artifacts 1 --json 2>/dev/null | grep -q '"state": "expired"' && break
    sleep 0.1
done
"$KILN" artifacts 1 >"$T/list2.out"
grep -q "part-1 .* expired" "$T/list2.out" || fail "part-1 did not expire: $(cat "$T/list2.out")"
RC=0
"$KILN" artifact get 1 part-1 -o "$T/dl" >"$T/exp.out" 2>&1 || RC=$?
[ $RC = 2 ] && grep -q "no artifact named 'part-1'" "$T/exp.out" || fail "an expired artifact: exit $RC: $(cat "$T/exp.out")"
pass "an artifact past its retention is expired by the sweep and cannot be fetched; its row stays"
