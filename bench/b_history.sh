#!/usr/bin/env bash
# b_history.sh: the history at scale. A history file holding 1,000,000 jobs
# (RUNS runs of JOBS jobs, default 10,000 x 100) with their attempts and
# steps, then the two reads people make of it through a running
# coordinator: `kiln history --limit 50` and one run's record
# (`kiln status RUN`, a run in the middle of the file). Figures are the wall
# time of the CLI process (connect, CURVE handshake, query, render), ms,
# median of REPS_Q (default 7) after one warm-up. Target: each <= 50 ms.
# Also the coordinator's start-up on that file (its recovery looks for
# unfinished runs and must not read the finished ones), the number of jobs,
# the file's size and how long making it took.
#
# The schema comes from the coordinator itself (started once on an empty
# file, then stopped); the rows are made by sqlite3 in one transaction with
# recursive CTEs, in the shapes the coordinator writes: five workflows, a
# job graph of chains of ten, mostly successes, some failed runs (one job
# failed, the last ten skipped), some cancelled ones (the second half
# cancelled), one job in fifty with a lost first attempt, three steps per
# final attempt, an audit row per run, and the newest ACTIVE runs still
# running (they are recovered at start-up like any unfinished run). Log
# chunks are left out: no read measured here touches them, and their volume
# depends only on what the steps print. KEEP=DIR keeps a copy of the file.
source "$(dirname "$0")/lib.sh"
RUNS=${RUNS:-10000}
JOBS=${JOBS:-100}
ACTIVE=${ACTIVE:-2}
REPS_Q=${REPS_Q:-7}
DB=$T/history.db
# A fixed epoch, so that every run of the benchmark makes the same file.
BASE_MS=1700000000000

# The workflow every run stores: jobs j000.., chains of ten (each job needs
# the one before it, except every tenth), three steps each. The running runs
# are parsed again from it at start-up, so it must be valid.
{
    printf 'name: ci\non: push\njobs:\n'
    for k in $(seq 0 $((JOBS - 1))); do
        printf '  j%03d:\n    name: Job %d\n    runs-on: self-hosted\n' "$k" "$k"
        [ $((k % 10)) -ne 0 ] && printf '    needs: j%03d\n' $((k - 1))
        printf '    steps:\n      - {name: checkout, run: "true"}\n'
        printf '      - {name: build, run: "make -j2"}\n      - {name: test, run: "make check"}\n'
    done
} >"$T/wf.yml"
"$KILN" lint "$T/wf.yml" >/dev/null || fail "the generated workflow does not lint"

start_redis
make_keys
start_coordinator
kill -INT "$COORD_PID"
wait "$COORD_PID" 2>/dev/null || true
[ "$(sqlite3 "$DB" 'select count(*) from runs')" = 0 ] || fail "the schema file is not empty"

# g: one row per job with what the three tables need, generated in (run,
# job) order so that every insert below appends to its B-trees. Run r was
# created at BASE_MS + r * 5 min; job k starts (k % 10) * 30 s after it
# and takes 20 to 60 s.
t0=$(ms)
sqlite3 "$DB" >"$T/gen.log" 2>&1 <<SQL || fail "generating the history: $(tail -n 3 "$T/gen.log")"
PRAGMA journal_mode = DELETE;
PRAGMA synchronous = OFF;
PRAGMA cache_size = -262144;
PRAGMA temp_store = MEMORY;
BEGIN;
CREATE TEMP TABLE g AS
WITH RECURSIVE i(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM i WHERE n < $RUNS * $JOBS - 1),
a AS (SELECT n / $JOBS + 1 AS r, n % $JOBS AS k FROM i),
b AS (SELECT r, k, CASE WHEN r > $RUNS - $ACTIVE THEN 'running' WHEN r % 97 = 0 THEN 'cancelled'
                        WHEN r % 13 = 0 THEN 'failure' ELSE 'success' END AS rs FROM a),
c AS (SELECT r, k, rs, CASE
        WHEN rs = 'running' THEN CASE WHEN k < $JOBS / 2 THEN 'success'
                                      WHEN k < $JOBS / 2 + 2 THEN 'running' ELSE 'pending' END
        WHEN rs = 'cancelled' AND k >= $JOBS / 2 THEN 'cancelled'
        WHEN rs = 'failure' AND k = 37 THEN 'failure'
        WHEN rs = 'failure' AND k >= $JOBS - 10 THEN 'skipped'
        ELSE 'success' END AS st FROM b),
d AS (SELECT r, k, rs, st, $BASE_MS + r * 300000 + 2000 + (k % 10) * 30000 AS started FROM c)
SELECT r, k, rs, st,
       CASE WHEN st IN ('pending', 'skipped', 'cancelled') THEN 0
            WHEN (r * $JOBS + k) % 50 = 0 THEN 2 ELSE 1 END AS att,
       'w' || ((r + k) % 8 + 1) AS worker,
       started,
       started + 20000 + (r * 7 + k * 13) % 40000 AS ended
FROM d;

INSERT INTO runs (id, name, file, yaml, state, created_ms, finished_ms)
SELECT r, w, '.kiln/' || w || '.yml', readfile('$T/wf.yml'), rs, $BASE_MS + r * 300000,
       CASE WHEN rs = 'running' THEN NULL ELSE $BASE_MS + r * 300000 + 290000 END
FROM (SELECT r, rs, CASE r % 5 WHEN 0 THEN 'ci' WHEN 1 THEN 'nightly' WHEN 2 THEN 'release'
                     WHEN 3 THEN 'docs' ELSE 'deploy' END AS w FROM g WHERE k = 0);

INSERT INTO jobs (run_id, job_id, name, state, attempt, worker, started_ms, finished_ms,
                  needs, runs_on, seq)
SELECT r, printf('j%03d', k), printf('Job %d', k), st, att,
       CASE WHEN att > 0 THEN worker END,
       CASE WHEN att > 0 THEN started END,
       CASE WHEN st IN ('running', 'pending') THEN NULL ELSE ended END,
       CASE WHEN k % 10 = 0 THEN '[]' ELSE printf('["j%03d"]', k - 1) END,
       '["self-hosted"]', k + 1
FROM g;

INSERT INTO attempts (run_id, job_id, attempt, token, worker, state, message, started_ms,
                      finished_ms)
SELECT r, printf('j%03d', k), a.n, r * 1000 + k * 3 + a.n,
       CASE WHEN a.n < att THEN 'w' || ((r + k + 3) % 8 + 1) ELSE worker END,
       CASE WHEN a.n < att THEN 'worker_lost' ELSE st END,
       CASE WHEN a.n < att THEN 'heartbeat missed'
            WHEN st = 'failure' THEN 'step test exited 2' END,
       CASE WHEN a.n < att THEN started - 15000 ELSE started END,
       CASE WHEN a.n < att THEN started - 5000 WHEN st = 'running' THEN NULL ELSE ended END
FROM g CROSS JOIN (SELECT 1 AS n UNION ALL SELECT 2) AS a
WHERE a.n <= att;

INSERT INTO steps (run_id, job_id, attempt, idx, name, state, exit_code, signal, started_ms,
                   finished_ms)
SELECT r, printf('j%03d', k), att, s.idx, s.name,
       CASE WHEN st = 'running' THEN 'running'
            WHEN st = 'failure' AND s.idx = 2 THEN 'failure' ELSE 'success' END,
       CASE WHEN st = 'running' THEN NULL WHEN st = 'failure' AND s.idx = 2 THEN 2 ELSE 0 END,
       NULL, started + s.idx * (ended - started) / 3,
       CASE WHEN st = 'running' THEN NULL ELSE started + (s.idx + 1) * (ended - started) / 3 END
FROM g CROSS JOIN (SELECT 0 AS idx, 'checkout' AS name UNION ALL SELECT 1, 'build'
                   UNION ALL SELECT 2, 'test') AS s
WHERE att > 0 AND (st != 'running' OR s.idx = 0);

INSERT INTO audit (ts_ms, kind, actor, detail)
SELECT created_ms, 'run.submit', 'client:bench', file FROM runs ORDER BY id;
DROP TABLE g;
COMMIT;
PRAGMA journal_mode = WAL;
SQL
gen_ms=$(($(ms) - t0))
n_jobs=$(sqlite3 "$DB" 'select count(*) from jobs')
echo "generated $n_jobs jobs, $(sqlite3 "$DB" 'select count(*) from attempts') attempts," \
    "$(sqlite3 "$DB" 'select count(*) from steps') steps in $gen_ms ms" >&2
[ "$n_jobs" -eq $((RUNS * JOBS)) ] || fail "expected $((RUNS * JOBS)) jobs, found $n_jobs"
db_mb=$(awk -v b="$(stat -c %s "$DB")" 'BEGIN {printf "%.0f", b / 1048576}')

# Start-up: from launching the coordinator to its "listening on" line (the
# line's own timestamp, so the polling in start_coordinator does not count).
line_ms() { date -d "$(date +%F) $1" +%s%3N; }
t0=$(ms)
start_coordinator
stamp=$(grep "listening on" "$T/coordinator.log" | tail -n 1 | cut -d' ' -f1)
start_ms=$(($(line_ms "$stamp") - t0))
recovered=$(grep -c "recovered run" "$T/coordinator.log" || true)
[ "$recovered" -eq "$ACTIVE" ] || fail "recovered $recovered runs, expected $ACTIVE"

# wall_ms CMD...: the command's wall time in ms (one decimal); it must succeed.
wall_ms() {
    local t0 t1
    t0=$(date +%s%N)
    "$@" >/dev/null || fail "$* failed"
    t1=$(date +%s%N)
    awk -v d=$((t1 - t0)) 'BEGIN {printf "%.1f\n", d / 1e6}'
}
json_len() { sqlite3 :memory: "select json_array_length(readfile('$1'), '$2');"; }
mid=$((RUNS / 2))
# Both reads answer what was asked: 50 runs, newest first; the whole run.
"$KILN" history --limit 50 --json >"$T/list.json" || fail "kiln history --limit 50 failed"
[ "$(json_len "$T/list.json" '$')" = 50 ] || fail "kiln history --limit 50: not 50 runs"
[ "$(json_get "$T/list.json" '$[0].id')" = "$RUNS" ] || fail "kiln history: not newest first"
"$KILN" status "$mid" --json >"$T/run.json" || fail "kiln status $mid failed"
[ "$(json_get "$T/run.json" '$.id')" = "$mid" ] || fail "kiln status $mid: wrong run"
[ "$(json_len "$T/run.json" '$.jobs')" = "$JOBS" ] || fail "kiln status $mid: not $JOBS jobs"

list=() lookup=()
for i in $(seq 0 "$REPS_Q"); do
    l=$(wall_ms "$KILN" history --limit 50)
    s=$(wall_ms "$KILN" status "$mid")
    [ "$i" -eq 0 ] && continue # the warm-up
    list+=("$l") lookup+=("$s")
done
echo "history --limit 50: ${list[*]} ms; status $mid: ${lookup[*]} ms" >&2

if [ -n "${KEEP:-}" ]; then
    mkdir -p "$KEEP" || fail "cannot make $KEEP"
    sqlite3 "$DB" ".backup '$KEEP/history.db'" || fail "cannot keep the file in $KEEP"
fi

row history_jobs "$n_jobs" jobs
row history_db_mb "$db_mb" MB
row history_generate "$gen_ms" ms
row history_coord_start "$start_ms" ms
row history_list_50 "$(printf '%s\n' "${list[@]}" | median)" ms 50 "<="
row history_run_lookup "$(printf '%s\n' "${lookup[@]}" | median)" ms 50 "<="
