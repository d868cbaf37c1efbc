/* history.c: the history store's lifecycle: opening the SQLite file, the
 * schema and its upgrades, the statements prepared once, begin/commit, the
 * checkpoint thread, and closing (see history.h for the contract, and
 * history_int.h for how the store is split: writes in history_write.c, reads
 * in history_read.c, the JSON documents in document.c).
 *
 * Why SQLite: the record must outlive Redis flushes and coordinator restarts,
 * be readable by `kiln history` / `kiln logs` while the coordinator writes,
 * and need no server of its own. WAL mode lets readers in other processes see
 * committed rows while the single writer goes on; synchronous=NORMAL makes a
 * commit an append to the WAL without an fsync, so a power cut may lose the
 * last commits but never corrupts the file. That is the right trade for a
 * record that is written for every log chunk.
 *
 * The layout serves the reads, which are always "one run" or "the newest
 * runs". runs are listed by their INTEGER PRIMARY KEY, newest first. jobs,
 * attempts and steps are WITHOUT ROWID tables clustered on primary keys that
 * start with run_id, so one run's rows sit together and every per-run query
 * is a B-tree search whose cost does not grow with the other runs' rows; jobs
 * also have (run_id, seq) for insertion order, and logs (run_id, id) for
 * arrival order. The runs still running, which a restarted coordinator
 * recovers, are found through a partial index (runs_active) that holds only
 * them: a runs row carries its workflow text before its state, so a scan for
 * the state would read every workflow ever submitted, and start-up would slow
 * down as history grows.
 *
 * Besides the record, one small table serves the scheduler: durations keeps,
 * per (workflow, job), an estimate of how long the job takes (see
 * kiln_history_duration_record for the estimator).
 */
#include "coordinator/history.h"

#include <assert.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "common/error.h"
#include "common/log.h"
#include "coordinator/history_int.h"

#define KILN_HISTORY_SCHEMA_VERSION 7
#define KILN_HISTORY_BUSY_MS 5000

#define KILN_HISTORY_STR_(x) #x
#define KILN_HISTORY_STR(x) KILN_HISTORY_STR_(x)

/* The schema. user_version says which one a file holds; a file from a newer
 * Kiln is refused rather than written with the wrong layout. Everything here
 * is CREATE ... IF NOT EXISTS, so running it on an older file adds what that
 * file lacks (s_apply_schema). History of the versions:
 *   1  runs, jobs, attempts, steps, logs, audit;
 *   2  job outputs, run inputs/actions/matrices, annotations, summaries;
 *   3  durations (the scheduler's estimates), runs_active (recovery's index);
 *   4  the public key (Z85) of the worker of each attempt and of the actor
 *      of each audit event: a name is what an allow-list file is called,
 *      the key is who it was;
 *   5  each run's event (push, workflow_dispatch, ...) and the name of whoever
 *      submitted it, so a restarted coordinator plans it alike;
 *   6  each run's source: repository, ref and commit (JSON), or NULL for a
 *      run of a file alone;
 *   7  caches and artifacts: what each blob of the farm's store
 *      (coordinator/store.h) is, for whom, and until when. */
static const char s_schema[] =
    "CREATE TABLE IF NOT EXISTS runs ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " name TEXT, file TEXT, yaml BLOB,"
    " state TEXT NOT NULL,"
    " created_ms INTEGER NOT NULL,"
    " finished_ms INTEGER, inputs TEXT, actions TEXT, matrices TEXT, event TEXT, actor TEXT,"
    " source TEXT);"
    /* Only the unfinished runs: a handful, whatever the size of the history. */
    "CREATE INDEX IF NOT EXISTS runs_active ON runs (id) WHERE state = 'running';"
    "CREATE TABLE IF NOT EXISTS jobs ("
    " run_id INTEGER NOT NULL, job_id TEXT NOT NULL, name TEXT,"
    " state TEXT NOT NULL, attempt INTEGER NOT NULL DEFAULT 0, worker TEXT,"
    " started_ms INTEGER, finished_ms INTEGER,"
    " needs TEXT NOT NULL DEFAULT '[]', runs_on TEXT NOT NULL DEFAULT '[]',"
    " seq INTEGER NOT NULL, outputs TEXT,"
    " PRIMARY KEY (run_id, job_id)) WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS jobs_run_seq ON jobs (run_id, seq);"
    "CREATE TABLE IF NOT EXISTS attempts ("
    " run_id INTEGER NOT NULL, job_id TEXT NOT NULL, attempt INTEGER NOT NULL,"
    " token INTEGER, worker TEXT, state TEXT NOT NULL, message TEXT,"
    " started_ms INTEGER, finished_ms INTEGER, worker_key TEXT, placement TEXT,"
    " PRIMARY KEY (run_id, job_id, attempt)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS steps ("
    " run_id INTEGER NOT NULL, job_id TEXT NOT NULL, attempt INTEGER NOT NULL,"
    " idx INTEGER NOT NULL, name TEXT, state TEXT NOT NULL,"
    " exit_code INTEGER, signal INTEGER, started_ms INTEGER, finished_ms INTEGER,"
    " PRIMARY KEY (run_id, job_id, attempt, idx)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS logs ("
    " id INTEGER PRIMARY KEY, run_id INTEGER NOT NULL, job_id TEXT NOT NULL,"
    " attempt INTEGER NOT NULL, step INTEGER NOT NULL, stream INTEGER NOT NULL,"
    " ts_ms INTEGER NOT NULL, data BLOB NOT NULL);"
    "CREATE INDEX IF NOT EXISTS logs_run ON logs (run_id, id);"
    "CREATE TABLE IF NOT EXISTS annotations ("
    " id INTEGER PRIMARY KEY, run_id INTEGER NOT NULL, job_id TEXT NOT NULL,"
    " attempt INTEGER NOT NULL, step INTEGER, level TEXT NOT NULL, message TEXT,"
    " title TEXT, file TEXT, line INTEGER, col INTEGER);"
    "CREATE INDEX IF NOT EXISTS annotations_run ON annotations (run_id, id);"
    "CREATE TABLE IF NOT EXISTS summaries ("
    " run_id INTEGER NOT NULL, job_id TEXT NOT NULL, attempt INTEGER NOT NULL,"
    " markdown TEXT NOT NULL, PRIMARY KEY (run_id, job_id, attempt)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS audit ("
    " id INTEGER PRIMARY KEY, ts_ms INTEGER NOT NULL, kind TEXT NOT NULL,"
    " actor TEXT, detail TEXT, actor_key TEXT);"
    /* One row per (workflow, job) ever recorded; the estimate is kept as a
     * REAL so that small steps towards a new duration are not lost to
     * integer rounding. Clustered on the key: a workflow's rows are one
     * B-tree range, read without touching the record tables. */
    "CREATE TABLE IF NOT EXISTS durations ("
    " workflow TEXT NOT NULL, job_id TEXT NOT NULL,"
    " estimate_ms REAL NOT NULL, samples INTEGER NOT NULL,"
    " PRIMARY KEY (workflow, job_id)) WITHOUT ROWID;"
    /* A cache entry per (repository, ref, key, version), as GitHub scopes
     * them; used_ms orders the eviction. Entries are removed when evicted
     * or removed by an operator (an audit row says so); runs keep theirs. */
    "CREATE TABLE IF NOT EXISTS caches ("
    " id INTEGER PRIMARY KEY, repository TEXT NOT NULL, ref TEXT NOT NULL,"
    " key TEXT NOT NULL, version TEXT NOT NULL, digest TEXT NOT NULL,"
    " size INTEGER NOT NULL, created_ms INTEGER NOT NULL, used_ms INTEGER NOT NULL,"
    " meta TEXT, run_id INTEGER, job_id TEXT,"
    " UNIQUE (repository, ref, key, version));"
    "CREATE INDEX IF NOT EXISTS caches_digest ON caches (digest);"
    /* Artifacts stay as rows when they expire or are replaced (state says
     * which): a run's record shows what it made even once the bytes are
     * gone. */
    "CREATE TABLE IF NOT EXISTS artifacts ("
    " id INTEGER PRIMARY KEY, run_id INTEGER NOT NULL, job_id TEXT NOT NULL,"
    " name TEXT NOT NULL, digest TEXT NOT NULL, size INTEGER NOT NULL,"
    " meta TEXT, created_ms INTEGER NOT NULL, expires_ms INTEGER NOT NULL,"
    " state TEXT NOT NULL DEFAULT 'kept');"
    "CREATE INDEX IF NOT EXISTS artifacts_run ON artifacts (run_id, name);"
    "CREATE INDEX IF NOT EXISTS artifacts_digest ON artifacts (digest);"
    "PRAGMA user_version = " KILN_HISTORY_STR(KILN_HISTORY_SCHEMA_VERSION) ";";

/* The SQL of the cached statements (history_int.h), prepared in
 * kiln_history_open. */
static const char *const s_sql[KILN_HISTORY_STMT_COUNT] = {
    [KILN_HISTORY_STMT_BEGIN] = "BEGIN IMMEDIATE",
    [KILN_HISTORY_STMT_COMMIT] = "COMMIT",
    [KILN_HISTORY_STMT_ROLLBACK] = "ROLLBACK",
    [KILN_HISTORY_STMT_RUN_CREATE] =
        "INSERT INTO runs (name, file, yaml, state, created_ms, event, actor)"
        " VALUES (?1, ?2, ?3, 'running', ?4, ?5, ?6)",
    [KILN_HISTORY_STMT_RUN_SET_STATE] =
        "UPDATE runs SET state = ?2, finished_ms = COALESCE(?3, finished_ms)"
        " WHERE id = ?1",
    /* seq: the job's position in its run, found through jobs_run_seq. */
    [KILN_HISTORY_STMT_JOB_CREATE] =
        "INSERT INTO jobs (run_id, job_id, name, state, needs, runs_on, seq)"
        " VALUES (?1, ?2, ?3, 'pending', ?4, ?5,"
        " (SELECT COALESCE(MAX(seq), 0) + 1 FROM jobs WHERE run_id = ?1))",
    [KILN_HISTORY_STMT_JOB_SET_STATE] =
        "UPDATE jobs SET state = ?3, attempt = COALESCE(?4, attempt),"
        " worker = COALESCE(?5, worker),"
        " started_ms = COALESCE(?6, started_ms),"
        " finished_ms = COALESCE(?7, finished_ms)"
        " WHERE run_id = ?1 AND job_id = ?2",
    [KILN_HISTORY_STMT_ATTEMPT_START] =
        "INSERT INTO attempts (run_id, job_id, attempt, token, worker, state,"
        " started_ms, worker_key) VALUES (?1, ?2, ?3, ?4, ?5, 'running', ?6, ?7)",
    [KILN_HISTORY_STMT_ATTEMPT_FINISH] =
        "UPDATE attempts SET state = ?4, message = ?5, finished_ms = ?6"
        " WHERE run_id = ?1 AND job_id = ?2 AND attempt = ?3",
    [KILN_HISTORY_STMT_STEP_START] =
        "INSERT OR REPLACE INTO steps (run_id, job_id, attempt, idx, name, state,"
        " started_ms) VALUES (?1, ?2, ?3, ?4, ?5, 'running', ?6)",
    [KILN_HISTORY_STMT_STEP_FINISH] =
        "INSERT INTO steps (run_id, job_id, attempt, idx, state, exit_code, signal,"
        " started_ms, finished_ms, name)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
        " ON CONFLICT (run_id, job_id, attempt, idx) DO UPDATE SET"
        " name = COALESCE(excluded.name, name),"
        " state = excluded.state, exit_code = excluded.exit_code,"
        " signal = excluded.signal,"
        " started_ms = COALESCE(excluded.started_ms, started_ms),"
        " finished_ms = COALESCE(excluded.finished_ms, finished_ms)",
    [KILN_HISTORY_STMT_LOG_APPEND] =
        "INSERT INTO logs (run_id, job_id, attempt, step, stream, ts_ms, data)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    [KILN_HISTORY_STMT_AUDIT] =
        "INSERT INTO audit (ts_ms, kind, actor, detail, actor_key) VALUES (?1, ?2, ?3, ?4, ?5)",
    [KILN_HISTORY_STMT_RUNS_LIST] =
        "SELECT r.id, r.name, r.file, r.state, r.created_ms, r.finished_ms,"
        " (SELECT COUNT(*) FROM jobs j WHERE j.run_id = r.id),"
        " (SELECT COUNT(*) FROM jobs j WHERE j.run_id = r.id AND j.state IN"
        " ('failure', 'timed_out', 'infra_error', 'cancelled'))"
        " FROM runs r ORDER BY r.id DESC LIMIT ?1",
    [KILN_HISTORY_STMT_RUN_GET] =
        "SELECT id, name, file, state, created_ms, finished_ms, source,"
        " (SELECT json_group_array(json_object('uses', substr(a.key, 6), 'url',"
        "  json_extract(a.value, '$.url'), 'sha', json_extract(a.value, '$.sha')))"
        "  FROM json_each(CASE WHEN json_valid(actions) THEN actions ELSE '{}' END) a"
        "  WHERE a.key LIKE 'uses:%' AND json_extract(a.value, '$.sha') IS NOT NULL)"
        " FROM runs WHERE id = ?1",
    [KILN_HISTORY_STMT_RUN_JOBS] =
        "SELECT job_id, name, state, attempt, worker, started_ms, finished_ms,"
        " needs, runs_on, outputs FROM jobs WHERE run_id = ?1 ORDER BY seq",
    [KILN_HISTORY_STMT_JOB_ATTEMPTS] =
        "SELECT attempt, token, worker, state, message, started_ms, finished_ms, worker_key,"
        " placement"
        " FROM attempts WHERE run_id = ?1 AND job_id = ?2 ORDER BY attempt",
    [KILN_HISTORY_STMT_JOB_STEPS] =
        "SELECT attempt, idx, name, state, exit_code, signal, started_ms,"
        " finished_ms FROM steps WHERE run_id = ?1 AND job_id = ?2"
        " ORDER BY attempt, idx",
    /* The estimator of kiln_history_duration_record, in one statement so
     * that it is atomic in and out of a batch. On the right of SET every
     * column is the stored (old) value. */
    [KILN_HISTORY_STMT_DURATION_RECORD] =
        "INSERT INTO durations (workflow, job_id, estimate_ms, samples)"
        " VALUES (?1, ?2, ?3, 1)"
        " ON CONFLICT (workflow, job_id) DO UPDATE SET"
        " estimate_ms = estimate_ms + (excluded.estimate_ms - estimate_ms)"
        " / MIN(samples + 1, " KILN_HISTORY_STR(KILN_HISTORY_EWMA_N) "),"
        " samples = samples + 1",
    /* Rounded to whole ms (half away from zero; estimates are never
     * negative). In primary-key order: no sort. */
    [KILN_HISTORY_STMT_DURATIONS] =
        "SELECT job_id, CAST(ROUND(estimate_ms) AS INTEGER), samples"
        " FROM durations WHERE workflow = ?1 ORDER BY job_id",
    /* The rarer writes, prepared once too: a statement prepared per call
     * can fail to prepare on a failing disk, and then its write could not
     * wait for room like the others. */
    [KILN_HISTORY_STMT_RUN_MATRICES] = "UPDATE runs SET matrices = ?2 WHERE id = ?1",
    [KILN_HISTORY_STMT_RUN_ACTIONS] = "UPDATE runs SET actions = ?2 WHERE id = ?1",
    [KILN_HISTORY_STMT_RUN_INPUTS] = "UPDATE runs SET inputs = ?2 WHERE id = ?1",
    [KILN_HISTORY_STMT_RUN_SOURCE] = "UPDATE runs SET source = ?2 WHERE id = ?1",
    [KILN_HISTORY_STMT_JOB_OUTPUTS] =
        "UPDATE jobs SET outputs = ?3 WHERE run_id = ?1 AND job_id = ?2",
    [KILN_HISTORY_STMT_ANNOTATION] =
        "INSERT INTO annotations (run_id, job_id, attempt, step, level, message, title, file,"
        " line, col) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    [KILN_HISTORY_STMT_SUMMARY] = "INSERT OR REPLACE INTO summaries (run_id, job_id, attempt,"
                                  " markdown) VALUES (?1, ?2, ?3, ?4)",
    [KILN_HISTORY_STMT_ATTEMPT_PLACEMENT] =
        "UPDATE attempts SET placement = ?4 WHERE run_id = ?1 AND job_id = ?2 AND attempt = ?3",
    [KILN_HISTORY_STMT_CACHE_ADD] =
        "INSERT INTO caches (repository, ref, key, version, digest, size, created_ms, used_ms,"
        " meta, run_id, job_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8, ?9, ?10)",
    [KILN_HISTORY_STMT_CACHE_TOUCH] = "UPDATE caches SET used_ms = ?2 WHERE id = ?1",
    [KILN_HISTORY_STMT_CACHE_DELETE] = "DELETE FROM caches WHERE id = ?1",
    [KILN_HISTORY_STMT_ARTIFACT_ADD] =
        "INSERT INTO artifacts (run_id, job_id, name, digest, size, meta, created_ms, expires_ms)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    [KILN_HISTORY_STMT_ARTIFACT_STATE] = "UPDATE artifacts SET state = ?2 WHERE id = ?1",
    [KILN_HISTORY_STMT_JOB_PLAN] =
        "UPDATE jobs SET name = ?1, runs_on = ?2 WHERE run_id = ?3 AND job_id = ?4",
};

/* ---- shared by the history files (contracts in history_int.h) ---------- */

void kiln_hdb_sql_error(kiln_history_t *self, const char *fmt, ...)
{
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    kiln_error_set("history: %s: %s", what, sqlite3_errmsg(self->db));
}

int kiln_hdb_oom(void)
{
    kiln_error_set("history: out of memory");
    return -1;
}

void kiln_hdb_reset(sqlite3_stmt *stmt)
{
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
}

int kiln_hdb_check_key(const char *what, const char *key, size_t max)
{
    size_t len = strnlen(key, max + 1);
    if (len == 0 || len > max) {
        kiln_error_set("history: duration: %s '%.40s%s' is %s (1 to %zu bytes)", what, key,
                       len > 40 ? "..." : "", len == 0 ? "empty" : "too long", max);
        return KILN_EINVAL;
    }
    return 0;
}

/* ---- the file, its mode and its schema --------------------------------- */

static int s_exec(kiln_history_t *self, const char *sql, const char *what)
{
    if (sqlite3_exec(self->db, sql, NULL, NULL, NULL) != SQLITE_OK) {
        kiln_hdb_sql_error(self, "%s", what);
        return -1;
    }
    return 0;
}

/* Reads an integer pragma (user_version) into *out. */
static int s_pragma_int(kiln_history_t *self, const char *sql, int64_t *out)
{
    int rc = -1;
    sqlite3_stmt *stmt = NULL;
    if (sqlite3_prepare_v2(self->db, sql, -1, &stmt, NULL) != SQLITE_OK
        || sqlite3_step(stmt) != SQLITE_ROW) {
        kiln_hdb_sql_error(self, "%s", sql);
        goto cleanup;
    }
    *out = sqlite3_column_int64(stmt, 0);
    rc = 0;
cleanup:
    sqlite3_finalize(stmt);
    return rc;
}

/* Switches to WAL. SQLite answers with the mode it ended in, which is not
 * WAL when the file system cannot do it; an in-memory database (tests) says
 * "memory" and is accepted. */
static int s_enable_wal(kiln_history_t *self, const char *path)
{
    int rc = -1;
    sqlite3_stmt *stmt = NULL;
    if (sqlite3_prepare_v2(self->db, "PRAGMA journal_mode = WAL", -1, &stmt, NULL) != SQLITE_OK
        || sqlite3_step(stmt) != SQLITE_ROW) {
        kiln_hdb_sql_error(self, "%s: journal_mode", path);
        goto cleanup;
    }
    const char *mode = (const char *)sqlite3_column_text(stmt, 0);
    self->wal = mode && strcmp(mode, "wal") == 0;
    if (mode == NULL || (strcmp(mode, "wal") != 0 && strcmp(mode, "memory") != 0)) {
        kiln_error_set("history: %s: cannot use WAL (journal_mode is %s)", path,
                       mode ? mode : "unknown");
        goto cleanup;
    }
    rc = 0;
cleanup:
    sqlite3_finalize(stmt);
    return rc;
}

/* Adds a TEXT column to a table that exists without it. */
static int s_add_column(kiln_history_t *self, const char *table, const char *column)
{
    char sql[256];
    int64_t n = 0;
    snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM sqlite_schema WHERE type = 'table' AND name = '%s'",
             table);
    if (s_pragma_int(self, sql, &n) != 0)
        return -1;
    if (n == 0)
        return 0;
    snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM pragma_table_info('%s') WHERE name = '%s'",
             table, column);
    if (s_pragma_int(self, sql, &n) != 0)
        return -1;
    if (n > 0)
        return 0;
    snprintf(sql, sizeof sql, "ALTER TABLE %s ADD COLUMN %s TEXT", table, column);
    return s_exec(self, sql, "schema upgrade");
}

/* Creates the tables if the file has none yet (user_version 0). Done in a
 * write transaction so two processes opening a new file at once do not
 * interleave; CREATE ... IF NOT EXISTS makes the loser's pass a no-op. */
static int s_apply_schema(kiln_history_t *self, const char *path)
{
    int rc = -1;
    int64_t version = 0;
    bool in_transaction = false;
    if (s_pragma_int(self, "PRAGMA user_version", &version) != 0)
        goto cleanup;
    if (version > KILN_HISTORY_SCHEMA_VERSION) {
        kiln_error_set("history: %s: schema version %lld is newer than this Kiln's (%d)", path,
                       (long long)version, KILN_HISTORY_SCHEMA_VERSION);
        goto cleanup;
    }
    if (version < KILN_HISTORY_SCHEMA_VERSION) {
        if (s_exec(self, "BEGIN IMMEDIATE", "schema") != 0)
            goto cleanup;
        in_transaction = true;
        /* 1 -> 2: job outputs, annotations and step summaries (the new
         * columns; the new tables come from s_schema). 2 -> 3: only new
         * tables and indexes, all in s_schema. Building runs_active reads
         * every run once, here, so that no start-up after it has to. */
        if (version == 1 &&
            (s_exec(self, "ALTER TABLE jobs ADD COLUMN outputs TEXT", "schema upgrade") != 0 ||
             s_exec(self, "ALTER TABLE runs ADD COLUMN inputs TEXT", "schema upgrade") != 0 ||
             s_exec(self, "ALTER TABLE runs ADD COLUMN actions TEXT", "schema upgrade") != 0 ||
             s_exec(self, "ALTER TABLE runs ADD COLUMN matrices TEXT", "schema upgrade") != 0))
            goto cleanup;
        /* 3 -> 4: the keys (rows from before have none: NULL). A table
         * the file lacks altogether comes from s_schema with them. */
        if (version >= 1 && (s_add_column(self, "attempts", "worker_key") != 0 ||
                             s_add_column(self, "audit", "actor_key") != 0 ||
                             s_add_column(self, "runs", "event") != 0 ||
                             s_add_column(self, "runs", "actor") != 0 ||
                             s_add_column(self, "runs", "source") != 0 ||
                             s_add_column(self, "attempts", "placement") != 0))
            goto cleanup;
        if (s_exec(self, s_schema, "schema") != 0 || s_exec(self, "COMMIT", "schema") != 0)
            goto cleanup;
        in_transaction = false;
    }
    rc = 0;
cleanup:
    /* Keeps the failing statement's message: ROLLBACK's own result is moot. */
    if (in_transaction && !sqlite3_get_autocommit(self->db))
        sqlite3_exec(self->db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

/* ---- the checkpoint thread --------------------------------------------- */

/* Checkpoints (copying the WAL back into the database, with an fsync) run
 * on a thread of their own with its own connection, woken by the WAL hook
 * when the log has grown: done by SQLite on the committing connection they
 * stalled the coordinator's loop every thousand pages. */
#define KILN_HISTORY_CHECKPOINT_PAGES 1000
/* Past this many frames a passive checkpoint is followed by a TRUNCATE one,
 * which waits for the writer (briefly) and empties the log: the WAL stays
 * near this size (KILN_HISTORY_WAL_BOUND_MB in history.h). */
#define KILN_HISTORY_WAL_FORCE_PAGES 4096
#define KILN_HISTORY_TRUNCATE_WAIT_MS 200

static void *s_checkpoint_main(void *arg)
{
    kiln_history_checkpointer_t *c = arg;
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(c->path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
        SQLITE_OK) {
        kiln_log_warn("history: checkpoints: cannot open %s: %s", c->path,
                      db ? sqlite3_errmsg(db) : "out of memory");
        sqlite3_close(db);
        return NULL;
    }
    sqlite3_busy_timeout(db, KILN_HISTORY_BUSY_MS);
    /* A connection that has read nothing yet does not know the file is in
     * WAL mode, and its checkpoints do nothing (they report a log of -1
     * frames): the first read tells it. */
    if (sqlite3_exec(db, "SELECT count(*) FROM sqlite_master", NULL, NULL, NULL) != SQLITE_OK)
        kiln_log_warn("history: checkpoints: cannot read %s: %s", c->path, sqlite3_errmsg(db));
    pthread_mutex_lock(&c->mu);
    for (;;) {
        while (!c->wanted && !c->stop)
            pthread_cond_wait(&c->cv, &c->mu);
        if (c->stop)
            break;
        c->wanted = false;
        pthread_mutex_unlock(&c->mu);
        /* PASSIVE first: it never waits for, nor blocks, the writer. It
         * copies the log into the database but does not start the log
         * over, and under a steady stream of commits nothing else does (a
         * WAL of 130-230 MB beside a database of 5): once the log is long,
         * TRUNCATE empties it, waiting a moment between the writer's
         * transactions. */
        int log = 0, done = 0;
        int rc = sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_PASSIVE, &log, &done);
        (void)done;
        if (rc == SQLITE_OK && log >= KILN_HISTORY_WAL_FORCE_PAGES) {
            /* It holds the writer back while it waits for readers: briefly
             * (a reader with an old snapshot makes it give up, BUSY, and
             * the next wake-up tries again). */
            sqlite3_busy_timeout(db, KILN_HISTORY_TRUNCATE_WAIT_MS);
            rc = sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
            sqlite3_busy_timeout(db, KILN_HISTORY_BUSY_MS);
        }
        if (rc != SQLITE_OK && rc != SQLITE_BUSY)
            kiln_log_warn("history: checkpoint: %s", sqlite3_errmsg(db));
        else if (log < 0)
            kiln_log_warn("history: checkpoint: %s is not in WAL mode for the checkpointer", c->path);
        pthread_mutex_lock(&c->mu);
    }
    pthread_mutex_unlock(&c->mu);
    sqlite3_close(db);
    return NULL;
}

/* Called by SQLite after each commit on the main connection. */
static int s_wal_hook(void *ctx, sqlite3 *db, const char *name, int pages)
{
    kiln_history_checkpointer_t *c = ctx;
    (void)db;
    (void)name;
    /* Once per KILN_HISTORY_CHECKPOINT_PAGES of growth, not on every commit
     * while the log stays long (a checkpoint that could not finish). */
    int crossed =
        pages / KILN_HISTORY_CHECKPOINT_PAGES != c->last_pages / KILN_HISTORY_CHECKPOINT_PAGES;
    c->last_pages = pages;
    if (pages >= KILN_HISTORY_CHECKPOINT_PAGES && crossed) {
        pthread_mutex_lock(&c->mu);
        c->wanted = true;
        pthread_cond_signal(&c->cv);
        pthread_mutex_unlock(&c->mu);
    }
    return SQLITE_OK;
}

/* Moves checkpoints off the main connection; without a thread SQLite's own
 * automatic checkpoints stay on. */
static void s_checkpointer_start(kiln_history_t *self, const char *path)
{
    kiln_history_checkpointer_t *c = &self->ckpt;
    if (!self->wal || !(c->path = strdup(path)))
        return;
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    /* The thread is born with every signal blocked: signals are the main
     * loop's business (a signalfd), and one delivered here would take the
     * default action (SIGHUP would end the process). */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int rc = pthread_create(&c->thread, NULL, s_checkpoint_main, c);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        kiln_log_warn("history: no checkpoint thread; checkpoints stay inline");
        return;
    }
    c->started = true;
    sqlite3_wal_autocheckpoint(self->db, 0);
    sqlite3_wal_hook(self->db, s_wal_hook, c);
}

static void s_checkpointer_stop(kiln_history_t *self)
{
    kiln_history_checkpointer_t *c = &self->ckpt;
    if (c->started) {
        pthread_mutex_lock(&c->mu);
        c->stop = true;
        pthread_cond_signal(&c->cv);
        pthread_mutex_unlock(&c->mu);
        pthread_join(c->thread, NULL);
        sqlite3_wal_hook(self->db, NULL, NULL);
        pthread_mutex_destroy(&c->mu);
        pthread_cond_destroy(&c->cv);
        c->started = false;
    }
    free(c->path);
    c->path = NULL;
}

/* ---- opening and closing ----------------------------------------------- */

int kiln_history_open(kiln_history_t **out, const char *path)
{
    int rc = -1;
    kiln_history_t *self = NULL;
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    assert(out);
    assert(path);
    *out = NULL;

    self = calloc(1, sizeof *self);
    if (self == NULL) {
        rc = kiln_hdb_oom();
        goto cleanup;
    }
    self->path = strdup(path);
    if (self->path == NULL) {
        rc = kiln_hdb_oom();
        goto cleanup;
    }
    if (sqlite3_open_v2(path, &self->db, flags, NULL) != SQLITE_OK) {
        if (self->db == NULL) {
            rc = kiln_hdb_oom();
            goto cleanup;
        }
        kiln_hdb_sql_error(self, "open %s", path);
        goto cleanup;
    }
    sqlite3_extended_result_codes(self->db, 1);
    if (sqlite3_busy_timeout(self->db, KILN_HISTORY_BUSY_MS) != SQLITE_OK) {
        kiln_hdb_sql_error(self, "%s: busy_timeout", path);
        goto cleanup;
    }
    /* Opening is lazy in SQLite: this is where a non-database file or an
     * unwritable directory shows up. */
    if (s_enable_wal(self, path) != 0)
        goto cleanup;
    /* A WAL started over is cut back to this size, so a burst that made it
     * long does not hold the disk for good. */
    if (s_exec(self, "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = OFF; "
                     "PRAGMA journal_size_limit = 16777216", "pragmas") != 0)
        goto cleanup;
    if (s_apply_schema(self, path) != 0)
        goto cleanup;
    for (int i = 0; i < KILN_HISTORY_STMT_COUNT; i++) {
        if (sqlite3_prepare_v3(self->db, s_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &self->stmt[i],
                               NULL) != SQLITE_OK) {
            kiln_hdb_sql_error(self, "prepare \"%.40s...\"", s_sql[i]);
            goto cleanup;
        }
    }
    s_checkpointer_start(self, path);
    *out = self;
    self = NULL;
    rc = 0;
cleanup:
    kiln_history_destroy(&self);
    return rc;
}

/* Closing with a batch still open (begin without commit) rolls the batch
 * back, as SQLite does; it is logged because it loses rows. */
void kiln_history_destroy(kiln_history_t **self_p)
{
    assert(self_p);
    kiln_history_t *self = *self_p;
    if (self == NULL)
        return;
    if (self->depth > 0)
        kiln_log_warn("history: closed inside a batch; its uncommitted rows are rolled back");
    s_checkpointer_stop(self);
    kiln_hdb_journal_free(self);
    for (int i = 0; i < KILN_HISTORY_STMT_COUNT; i++)
        sqlite3_finalize(self->stmt[i]);
    /* Every statement is finalized, so close cannot be refused as busy. */
    sqlite3_close(self->db);
    free(self->path);
    free(self);
    *self_p = NULL;
}

/* ---- batches ----------------------------------------------------------- */

/* Batches nest by counting: only the outermost begin opens the transaction
 * (BEGIN IMMEDIATE, so the write lock is taken up front and a busy database
 * waits busy_timeout here rather than failing halfway through the batch), and
 * only the matching outermost commit commits. History rows are facts, so a
 * write that fails inside a batch reports its error and leaves the batch's
 * other rows to be committed; only a batch the caller refuses whole (a
 * submission that cannot be recorded) is dropped, with kiln_history_abort. */
int kiln_history_begin(kiln_history_t *self)
{
    assert(self);
    /* While the store is down (history_journal.c) no transaction is open:
     * the batch's writes join those waiting for room. */
    if (self->depth == 0 && kiln_hdb_journal_begin(self) == 0) {
        sqlite3_stmt *stmt = self->stmt[KILN_HISTORY_STMT_BEGIN];
        /* Whatever stops the transaction from opening, the batch still
         * counts (every caller commits it): its writes wait. */
        int rc = sqlite3_step(stmt);
        kiln_hdb_reset(stmt);
        if (rc != SQLITE_DONE)
            kiln_hdb_go_down(self, rc);
    }
    self->depth++;
    return 0;
}

/* Returns 0 only when the batch is on disk. A commit that fails for want of
 * room leaves the batch's writes waiting (history_journal.c) and returns
 * KILN_EINFRA; one that fails otherwise, or a batch SQLite already rolled
 * back after an error inside it, returns -1. Either way the batch is over
 * afterwards. */
int kiln_history_commit(kiln_history_t *self)
{
    assert(self);
    assert(self->depth > 0 && "kiln_history_commit without kiln_history_begin");
    if (self->depth == 0) {
        kiln_error_set("history: commit without begin");
        return KILN_EINVAL;
    }
    if (--self->depth > 0)
        return 0;
    if (self->journal.down)
        return kiln_hdb_journal_commit(self, SQLITE_DONE);
    if (sqlite3_get_autocommit(self->db)) {
        /* SQLite rolled the batch back after an error inside it: its
         * writes are not on disk, so they wait to be done again. */
        kiln_hdb_go_down(self, SQLITE_ABORT);
        return kiln_hdb_journal_commit(self, SQLITE_DONE);
    }
    sqlite3_stmt *stmt = self->stmt[KILN_HISTORY_STMT_COMMIT];
    int rc = kiln_hdb_journal_commit(self, sqlite3_step(stmt));
    kiln_hdb_reset(stmt);
    return rc;
}
