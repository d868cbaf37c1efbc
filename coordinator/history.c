/* history.c: the durable record of runs, jobs, attempts, steps, logs and
 * audit events, kept in one SQLite file (see history.h for the contract).
 *
 * Why SQLite: the record must outlive Redis flushes and coordinator restarts,
 * be readable by `kiln history` / `kiln logs` while the coordinator writes,
 * and need no server of its own. WAL mode lets readers in other processes see
 * committed rows while the single writer goes on; synchronous=NORMAL makes a
 * commit an append to the WAL without an fsync, so a power cut may lose the
 * last commits but never corrupts the file. That is the right trade for a
 * record that is written for every log chunk.
 *
 * Writes are the hot path (a row per log chunk and per step edge), so every
 * statement is prepared once in kiln_history_open and reused with
 * sqlite3_reset/sqlite3_clear_bindings; callers group writes with
 * kiln_history_begin/commit so that a burst of chunks is one commit.
 *
 * Reads are always "one run" or "the newest runs". runs are listed by their
 * INTEGER PRIMARY KEY, newest first. jobs, attempts and steps are WITHOUT
 * ROWID tables clustered on primary keys that start with run_id, so one run's
 * rows sit together and every per-run query is a B-tree search whose cost
 * does not grow with the other runs' rows; jobs also have (run_id, seq) for
 * insertion order, and logs (run_id, id) for arrival order. The runs still
 * running, which a restarted coordinator recovers, are found through a
 * partial index (runs_active) that holds only them: a runs row carries its
 * workflow text before its state, so a scan for the state would read every
 * workflow ever submitted, and start-up would slow down as history grows.
 *
 * Besides the record, one small table serves the scheduler: durations keeps,
 * per (workflow, job), an estimate of how long the job takes (see
 * kiln_history_duration_record for the estimator).
 *
 * Rows only move forward: attempts are inserted once (a second start of the
 * same attempt number is an error, not a reset), updates only set columns,
 * and nothing here deletes.
 */
#include "coordinator/history.h"

#include <assert.h>
#include <limits.h>
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

/* Bounds on what is stored. The protocol and workflow layers enforce their
 * own (smaller) limits; these keep one bad caller from filling the disk with
 * a single row. A log chunk or workflow above its limit is refused
 * (KILN_ETOOBIG: the caller splits chunks); an attempt message or audit
 * detail is cut to KILN_HISTORY_TEXT_MAX bytes, because losing the end of a
 * message is better than losing the record that the attempt ended. */
#define KILN_HISTORY_CHUNK_MAX (1024 * 1024)
#define KILN_HISTORY_YAML_MAX (4 * 1024 * 1024)
#define KILN_HISTORY_TEXT_MAX (64 * 1024)

/* Keys of the duration estimates. Job ids are at most 100 characters in a
 * workflow file (pipeline.h), longer once a matrix combination is appended;
 * workflows are keyed by name. An empty or longer key is refused
 * (KILN_EINVAL): it is a caller's bug or a hostile file, not a job to learn. */
#define KILN_HISTORY_ID_MAX 256
#define KILN_HISTORY_NAME_MAX 1024
/* A recorded duration above a year (the longest timeout a workflow may set)
 * can only come from a clock jump; it is refused rather than let it swamp
 * the estimate. */
#define KILN_HISTORY_DURATION_MAX (366LL * 24 * 60 * 60 * 1000)
/* The estimator's weight: each new duration moves the estimate 1/N of the
 * way towards itself (see kiln_history_duration_record). */
#define KILN_HISTORY_EWMA_N 4

/* kiln_history_runs_json: limit 0 means the default, larger ones are cut. */
#define KILN_HISTORY_LIST_DEFAULT 50
#define KILN_HISTORY_LIST_MAX 1000

#define KILN_HISTORY_SCHEMA_VERSION 3
#define KILN_HISTORY_BUSY_MS 5000

#define KILN_HISTORY_STR_(x) #x
#define KILN_HISTORY_STR(x) KILN_HISTORY_STR_(x)

/* The schema. user_version says which one a file holds; a file from a newer
 * Kiln is refused rather than written with the wrong layout. Everything here
 * is CREATE ... IF NOT EXISTS, so running it on an older file adds what that
 * file lacks (s_apply_schema). History of the versions:
 *   1  runs, jobs, attempts, steps, logs, audit;
 *   2  job outputs, run inputs/actions/matrices, annotations, summaries;
 *   3  durations (the scheduler's estimates), runs_active (recovery's index). */
static const char s_schema[] =
    "CREATE TABLE IF NOT EXISTS runs ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " name TEXT, file TEXT, yaml BLOB,"
    " state TEXT NOT NULL,"
    " created_ms INTEGER NOT NULL,"
    " finished_ms INTEGER, inputs TEXT, actions TEXT, matrices TEXT);"
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
    " started_ms INTEGER, finished_ms INTEGER,"
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
    " actor TEXT, detail TEXT);"
    /* One row per (workflow, job) ever recorded; the estimate is kept as a
     * REAL so that small steps towards a new duration are not lost to
     * integer rounding. Clustered on the key: a workflow's rows are one
     * B-tree range, read without touching the record tables. */
    "CREATE TABLE IF NOT EXISTS durations ("
    " workflow TEXT NOT NULL, job_id TEXT NOT NULL,"
    " estimate_ms REAL NOT NULL, samples INTEGER NOT NULL,"
    " PRIMARY KEY (workflow, job_id)) WITHOUT ROWID;"
    "PRAGMA user_version = " KILN_HISTORY_STR(KILN_HISTORY_SCHEMA_VERSION) ";";

/* The statements prepared once per connection. Optional arguments are bound
 * as NULL ("not set") and COALESCE keeps the stored value. */
enum {
    S_BEGIN,
    S_COMMIT,
    S_ROLLBACK,
    S_RUN_CREATE,
    S_RUN_SET_STATE,
    S_JOB_CREATE,
    S_JOB_SET_STATE,
    S_ATTEMPT_START,
    S_ATTEMPT_FINISH,
    S_STEP_START,
    S_STEP_FINISH,
    S_LOG_APPEND,
    S_AUDIT,
    S_RUNS_LIST,
    S_RUN_GET,
    S_RUN_JOBS,
    S_JOB_ATTEMPTS,
    S_JOB_STEPS,
    S_DURATION_RECORD,
    S_DURATIONS,
    S_COUNT
};

static const char *const s_sql[S_COUNT] = {
    [S_BEGIN] = "BEGIN IMMEDIATE",
    [S_COMMIT] = "COMMIT",
    [S_ROLLBACK] = "ROLLBACK",
    [S_RUN_CREATE] = "INSERT INTO runs (name, file, yaml, state, created_ms)"
                     " VALUES (?1, ?2, ?3, 'running', ?4)",
    [S_RUN_SET_STATE] = "UPDATE runs SET state = ?2, finished_ms = COALESCE(?3, finished_ms)"
                        " WHERE id = ?1",
    /* seq: the job's position in its run, found through jobs_run_seq. */
    [S_JOB_CREATE] = "INSERT INTO jobs (run_id, job_id, name, state, needs, runs_on, seq)"
                     " VALUES (?1, ?2, ?3, 'pending', ?4, ?5,"
                     " (SELECT COALESCE(MAX(seq), 0) + 1 FROM jobs WHERE run_id = ?1))",
    [S_JOB_SET_STATE] = "UPDATE jobs SET state = ?3, attempt = COALESCE(?4, attempt),"
                        " worker = COALESCE(?5, worker),"
                        " started_ms = COALESCE(?6, started_ms),"
                        " finished_ms = COALESCE(?7, finished_ms)"
                        " WHERE run_id = ?1 AND job_id = ?2",
    [S_ATTEMPT_START] = "INSERT INTO attempts (run_id, job_id, attempt, token, worker, state,"
                        " started_ms) VALUES (?1, ?2, ?3, ?4, ?5, 'running', ?6)",
    [S_ATTEMPT_FINISH] = "UPDATE attempts SET state = ?4, message = ?5, finished_ms = ?6"
                         " WHERE run_id = ?1 AND job_id = ?2 AND attempt = ?3",
    [S_STEP_START] = "INSERT OR REPLACE INTO steps (run_id, job_id, attempt, idx, name, state,"
                     " started_ms) VALUES (?1, ?2, ?3, ?4, ?5, 'running', ?6)",
    [S_STEP_FINISH] = "INSERT INTO steps (run_id, job_id, attempt, idx, state, exit_code, signal,"
                      " started_ms, finished_ms, name)"
                      " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
                      " ON CONFLICT (run_id, job_id, attempt, idx) DO UPDATE SET"
                      " name = COALESCE(excluded.name, name),"
                      " state = excluded.state, exit_code = excluded.exit_code,"
                      " signal = excluded.signal,"
                      " started_ms = COALESCE(excluded.started_ms, started_ms),"
                      " finished_ms = COALESCE(excluded.finished_ms, finished_ms)",
    [S_LOG_APPEND] = "INSERT INTO logs (run_id, job_id, attempt, step, stream, ts_ms, data)"
                     " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    [S_AUDIT] = "INSERT INTO audit (ts_ms, kind, actor, detail) VALUES (?1, ?2, ?3, ?4)",
    [S_RUNS_LIST] = "SELECT r.id, r.name, r.file, r.state, r.created_ms, r.finished_ms,"
                    " (SELECT COUNT(*) FROM jobs j WHERE j.run_id = r.id),"
                    " (SELECT COUNT(*) FROM jobs j WHERE j.run_id = r.id AND j.state IN"
                    " ('failure', 'timed_out', 'infra_error', 'cancelled'))"
                    " FROM runs r ORDER BY r.id DESC LIMIT ?1",
    [S_RUN_GET] = "SELECT id, name, file, state, created_ms, finished_ms FROM runs WHERE id = ?1",
    [S_RUN_JOBS] = "SELECT job_id, name, state, attempt, worker, started_ms, finished_ms,"
                   " needs, runs_on, outputs FROM jobs WHERE run_id = ?1 ORDER BY seq",
    [S_JOB_ATTEMPTS] = "SELECT attempt, token, worker, state, message, started_ms, finished_ms"
                       " FROM attempts WHERE run_id = ?1 AND job_id = ?2 ORDER BY attempt",
    [S_JOB_STEPS] = "SELECT attempt, idx, name, state, exit_code, signal, started_ms,"
                    " finished_ms FROM steps WHERE run_id = ?1 AND job_id = ?2"
                    " ORDER BY attempt, idx",
    /* The estimator of kiln_history_duration_record, in one statement so
     * that it is atomic in and out of a batch. On the right of SET every
     * column is the stored (old) value. */
    [S_DURATION_RECORD] = "INSERT INTO durations (workflow, job_id, estimate_ms, samples)"
                          " VALUES (?1, ?2, ?3, 1)"
                          " ON CONFLICT (workflow, job_id) DO UPDATE SET"
                          " estimate_ms = estimate_ms + (excluded.estimate_ms - estimate_ms)"
                          " / MIN(samples + 1, " KILN_HISTORY_STR(KILN_HISTORY_EWMA_N) "),"
                          " samples = samples + 1",
    /* Rounded to whole ms (half away from zero; estimates are never
     * negative). In primary-key order: no sort. */
    [S_DURATIONS] = "SELECT job_id, CAST(ROUND(estimate_ms) AS INTEGER), samples"
                    " FROM durations WHERE workflow = ?1 ORDER BY job_id",
};

/* Checkpoints (copying the WAL back into the database, with an fsync) run
 * on a thread of their own with its own connection, woken by the WAL hook
 * when the log has grown: done by SQLite on the committing connection they
 * stalled the coordinator's loop every thousand pages. */
#define KILN_HISTORY_CHECKPOINT_PAGES 1000

typedef struct {
    pthread_t thread;
    bool started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool wanted, stop;
    char *path;
    int last_pages;             /* WAL size at the last commit (main thread only) */
} s_checkpointer_t;

struct kiln_history {
    sqlite3 *db;
    unsigned depth;              /* unmatched kiln_history_begin calls; > 0: in a transaction */
    sqlite3_stmt *stmt[S_COUNT]; /* prepared in open, finalized in destroy */
    bool wal;                    /* a file in WAL mode (not :memory:) */
    s_checkpointer_t ckpt;
};

/* Sets "history: <what>: <sqlite's message>" from the connection's last error. */
__attribute__((format(printf, 2, 3))) static void s_sql_error(kiln_history_t *self,
                                                              const char *fmt, ...)
{
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    kiln_error_set("history: %s: %s", what, sqlite3_errmsg(self->db));
}

static int s_oom(void)
{
    kiln_error_set("history: out of memory");
    return -1;
}

/* Readies a cached statement for its next use. Called on every exit path, so
 * a read statement never keeps its snapshot (and the WAL) pinned. */
static void s_reset(sqlite3_stmt *stmt)
{
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
}

/* A timestamp or counter where 0 means "not set": bound as NULL. */
static int s_bind_opt(sqlite3_stmt *stmt, int col, int64_t value)
{
    return value > 0 ? sqlite3_bind_int64(stmt, col, value) : sqlite3_bind_null(stmt, col);
}

/* Steps a write statement to completion. 0, or -1 with the message set. */
static int s_step_done(kiln_history_t *self, sqlite3_stmt *stmt, const char *what)
{
    if (sqlite3_step(stmt) != SQLITE_DONE) {
        s_sql_error(self, "%s", what);
        return -1;
    }
    return 0;
}

static int s_exec(kiln_history_t *self, const char *sql, const char *what)
{
    if (sqlite3_exec(self->db, sql, NULL, NULL, NULL) != SQLITE_OK) {
        s_sql_error(self, "%s", what);
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
        s_sql_error(self, "%s", sql);
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
        s_sql_error(self, "%s: journal_mode", path);
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

static void *s_checkpoint_main(void *arg)
{
    s_checkpointer_t *c = arg;
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(c->path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
        SQLITE_OK) {
        kiln_log_warn("history: checkpoints: cannot open %s: %s", c->path,
                      db ? sqlite3_errmsg(db) : "out of memory");
        sqlite3_close(db);
        return NULL;
    }
    sqlite3_busy_timeout(db, KILN_HISTORY_BUSY_MS);
    pthread_mutex_lock(&c->mu);
    for (;;) {
        while (!c->wanted && !c->stop)
            pthread_cond_wait(&c->cv, &c->mu);
        if (c->stop)
            break;
        c->wanted = false;
        pthread_mutex_unlock(&c->mu);
        /* PASSIVE: never waits for, nor blocks, the writer. */
        int rc = sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
        if (rc != SQLITE_OK && rc != SQLITE_BUSY)
            kiln_log_warn("history: checkpoint: %s", sqlite3_errmsg(db));
        pthread_mutex_lock(&c->mu);
    }
    pthread_mutex_unlock(&c->mu);
    sqlite3_close(db);
    return NULL;
}

/* Called by SQLite after each commit on the main connection. */
static int s_wal_hook(void *ctx, sqlite3 *db, const char *name, int pages)
{
    s_checkpointer_t *c = ctx;
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
    s_checkpointer_t *c = &self->ckpt;
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
    s_checkpointer_t *c = &self->ckpt;
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
        rc = s_oom();
        goto cleanup;
    }
    if (sqlite3_open_v2(path, &self->db, flags, NULL) != SQLITE_OK) {
        if (self->db == NULL) {
            rc = s_oom();
            goto cleanup;
        }
        s_sql_error(self, "open %s", path);
        goto cleanup;
    }
    sqlite3_extended_result_codes(self->db, 1);
    if (sqlite3_busy_timeout(self->db, KILN_HISTORY_BUSY_MS) != SQLITE_OK) {
        s_sql_error(self, "%s: busy_timeout", path);
        goto cleanup;
    }
    /* Opening is lazy in SQLite: this is where a non-database file or an
     * unwritable directory shows up. */
    if (s_enable_wal(self, path) != 0)
        goto cleanup;
    if (s_exec(self, "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = OFF", "pragmas") != 0)
        goto cleanup;
    if (s_apply_schema(self, path) != 0)
        goto cleanup;
    for (int i = 0; i < S_COUNT; i++) {
        if (sqlite3_prepare_v3(self->db, s_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &self->stmt[i],
                               NULL) != SQLITE_OK) {
            s_sql_error(self, "prepare \"%.40s...\"", s_sql[i]);
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
    for (int i = 0; i < S_COUNT; i++)
        sqlite3_finalize(self->stmt[i]);
    /* Every statement is finalized, so close cannot be refused as busy. */
    sqlite3_close(self->db);
    free(self);
    *self_p = NULL;
}

/* Batches nest by counting: only the outermost begin opens the transaction
 * (BEGIN IMMEDIATE, so the write lock is taken up front and a busy database
 * waits busy_timeout here rather than failing halfway through the batch), and
 * only the matching outermost commit commits. There is no rollback call:
 * history rows are facts, so a write that fails inside a batch reports its
 * error and leaves the batch's other rows to be committed. */
int kiln_history_begin(kiln_history_t *self)
{
    int rc = -1;
    assert(self);
    if (self->depth == 0 && s_step_done(self, self->stmt[S_BEGIN], "begin") != 0)
        goto cleanup;
    self->depth++;
    rc = 0;
cleanup:
    s_reset(self->stmt[S_BEGIN]);
    return rc;
}

/* Returns -1 when the commit fails, and also when SQLite already rolled the
 * transaction back after an error inside the batch (a full disk, an I/O
 * error): the caller then knows the batch's rows are not all there. Either
 * way the batch is over afterwards. */
int kiln_history_commit(kiln_history_t *self)
{
    int rc = -1;
    assert(self);
    assert(self->depth > 0 && "kiln_history_commit without kiln_history_begin");
    if (self->depth == 0) {
        kiln_error_set("history: commit without begin");
        rc = KILN_EINVAL;
        goto cleanup;
    }
    if (--self->depth > 0) {
        rc = 0;
        goto cleanup;
    }
    if (sqlite3_get_autocommit(self->db)) {
        kiln_error_set("history: commit: the batch was rolled back after an earlier error");
        goto cleanup;
    }
    if (s_step_done(self, self->stmt[S_COMMIT], "commit") != 0) {
        /* Keep the commit's message; the rollback only ends the transaction. */
        if (!sqlite3_get_autocommit(self->db)) {
            sqlite3_step(self->stmt[S_ROLLBACK]);
            s_reset(self->stmt[S_ROLLBACK]);
        }
        goto cleanup;
    }
    rc = 0;
cleanup:
    s_reset(self->stmt[S_COMMIT]);
    return rc;
}

int kiln_history_run_create(kiln_history_t *self, const char *name, const char *file,
                            const char *yaml, size_t yaml_len, int64_t created_ms,
                            int64_t *run_id)
{
    int rc = -1;
    assert(self);
    assert(run_id);
    assert(yaml || yaml_len == 0);
    sqlite3_stmt *stmt = self->stmt[S_RUN_CREATE];
    if (yaml_len > KILN_HISTORY_YAML_MAX) {
        kiln_error_set("history: workflow %s is %zu bytes, more than %d", file ? file : "?",
                       yaml_len, KILN_HISTORY_YAML_MAX);
        rc = KILN_ETOOBIG;
        goto cleanup;
    }
    if (sqlite3_bind_text(stmt, 1, name, -1, SQLITE_STATIC) != SQLITE_OK
        || sqlite3_bind_text(stmt, 2, file, -1, SQLITE_STATIC) != SQLITE_OK
        || (yaml ? sqlite3_bind_blob64(stmt, 3, yaml, yaml_len, SQLITE_STATIC)
                 : sqlite3_bind_null(stmt, 3)) != SQLITE_OK
        || sqlite3_bind_int64(stmt, 4, created_ms) != SQLITE_OK) {
        s_sql_error(self, "create run");
        goto cleanup;
    }
    if (s_step_done(self, stmt, "create run") != 0)
        goto cleanup;
    *run_id = sqlite3_last_insert_rowid(self->db);
    rc = 0;
cleanup:
    s_reset(stmt);
    return rc;
}

/* KILN_ENOTFOUND when the run does not exist. */
int kiln_history_run_set_state(kiln_history_t *self, int64_t run_id, const char *state,
                               int64_t finished_ms)
{
    int rc = -1;
    assert(self);
    assert(state);
    sqlite3_stmt *stmt = self->stmt[S_RUN_SET_STATE];
    if (sqlite3_bind_int64(stmt, 1, run_id) != SQLITE_OK
        || sqlite3_bind_text(stmt, 2, state, -1, SQLITE_STATIC) != SQLITE_OK
        || s_bind_opt(stmt, 3, finished_ms) != SQLITE_OK) {
        s_sql_error(self, "run %lld state", (long long)run_id);
        goto cleanup;
    }
    if (s_step_done(self, stmt, "run state") != 0)
        goto cleanup;
    if (sqlite3_changes(self->db) == 0) {
        kiln_error_set("history: no run %lld", (long long)run_id);
        rc = KILN_ENOTFOUND;
        goto cleanup;
    }
    rc = 0;
cleanup:
    s_reset(stmt);
    return rc;
}

/* A list of strings as compact JSON text, in *out (caller frees). Strings
 * that are not UTF-8 are refused (KILN_EINVAL): they come from a workflow
 * file, which the parser has already checked. */
static int s_list_json(const char *what, const char *const *items, size_t n, char **out)
{
    int rc = -1;
    json_t *array = json_array();
    *out = NULL;
    if (array == NULL) {
        rc = s_oom();
        goto cleanup;
    }
    for (size_t i = 0; i < n; i++) {
        assert(items[i]);
        json_t *item = json_string(items[i]);
        if (item == NULL) {
            kiln_error_set("history: %s[%zu] is not a UTF-8 string", what, i);
            rc = KILN_EINVAL;
            goto cleanup;
        }
        if (json_array_append_new(array, item) != 0) {
            rc = s_oom();
            goto cleanup;
        }
    }
    *out = json_dumps(array, JSON_COMPACT);
    if (*out == NULL) {
        rc = s_oom();
        goto cleanup;
    }
    rc = 0;
cleanup:
    json_decref(array);
    return rc;
}

/* A duplicate job_id in the same run fails (the primary key). */
int kiln_history_job_create(kiln_history_t *self, int64_t run_id, const char *job_id,
                            const char *name, const char *const *needs, size_t n_needs,
                            const char *const *runs_on, size_t n_runs_on)
{
    int rc = -1;
    char *needs_text = NULL;
    char *runs_on_text = NULL;
    assert(self);
    assert(job_id);
    assert(needs || n_needs == 0);
    assert(runs_on || n_runs_on == 0);
    sqlite3_stmt *stmt = self->stmt[S_JOB_CREATE];
    if ((rc = s_list_json("needs", needs, n_needs, &needs_text)) != 0
        || (rc = s_list_json("runs_on", runs_on, n_runs_on, &runs_on_text)) != 0)
        goto cleanup;
    rc = -1;
    if (sqlite3_bind_int64(stmt, 1, run_id) != SQLITE_OK
        || sqlite3_bind_text(stmt, 2, job_id, -1, SQLITE_STATIC) != SQLITE_OK
        || sqlite3_bind_text(stmt, 3, name, -1, SQLITE_STATIC) != SQLITE_OK
        || sqlite3_bind_text(stmt, 4, needs_text, -1, SQLITE_STATIC) != SQLITE_OK
        || sqlite3_bind_text(stmt, 5, runs_on_text, -1, SQLITE_STATIC) != SQLITE_OK) {
        s_sql_error(self, "create job %s of run %lld", job_id, (long long)run_id);
        goto cleanup;
    }
    if (sqlite3_step(stmt) != SQLITE_DONE) {
        s_sql_error(self, "create job %s of run %lld", job_id, (long long)run_id);
        goto cleanup;
    }
    rc = 0;
cleanup:
    s_reset(stmt);
    free(needs_text);
    free(runs_on_text);
    return rc;
}

int kiln_history_job_plan(kiln_history_t *self, int64_t run_id, const char *job_id,
                          const char *name, const char *const *runs_on, size_t n_runs_on)
{
    int rc = -1;
    char *runs_on_text = NULL;
    sqlite3_stmt *stmt = NULL;
    assert(self && job_id && name);
    if ((rc = s_list_json("runs_on", runs_on, n_runs_on, &runs_on_text)) != 0)
        goto cleanup;
    rc = -1;
    /* Rare (a job whose name or runs-on holds an expression): not worth a
     * statement kept prepared. */
    if (sqlite3_prepare_v2(self->db,
                           "UPDATE jobs SET name = ?1, runs_on = ?2 WHERE run_id = ?3 AND "
                           "job_id = ?4",
                           -1, &stmt, NULL) != SQLITE_OK ||
        sqlite3_bind_text(stmt, 1, name, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_text(stmt, 2, runs_on_text, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_int64(stmt, 3, run_id) != SQLITE_OK ||
        sqlite3_bind_text(stmt, 4, job_id, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_step(stmt) != SQLITE_DONE) {
        s_sql_error(self, "plan job %s of run %lld", job_id, (long long)run_id);
        goto cleanup;
    }
    rc = 0;
cleanup:
    sqlite3_finalize(stmt);
    free(runs_on_text);
    return rc;
}

/* KILN_ENOTFOUND when the job does not exist. */
int kiln_history_job_set_state(kiln_history_t *self, int64_t run_id, const char *job_id,
                               const char *state, unsigned attempt, const char *worker,
                               int64_t started_ms, int64_t finished_ms)
{
    int rc = -1;
    assert(self);
    assert(job_id);
    assert(state);
    sqlite3_stmt *stmt = self->stmt[S_JOB_SET_STATE];
    if (sqlite3_bind_int64(stmt, 1, run_id) != SQLITE_OK
        || sqlite3_bind_text(stmt, 2, job_id, -1, SQLITE_STATIC) != SQLITE_OK
        || sqlite3_bind_text(stmt, 3, state, -1, SQLITE_STATIC) != SQLITE_OK
        || s_bind_opt(stmt, 4, attempt) != SQLITE_OK
        || sqlite3_bind_text(stmt, 5, worker, -1, SQLITE_STATIC) != SQLITE_OK
        || s_bind_opt(stmt, 6, started_ms) != SQLITE_OK
        || s_bind_opt(stmt, 7, finished_ms) != SQLITE_OK
        || sqlite3_step(stmt) != SQLITE_DONE) {
        s_sql_error(self, "job %s of run %lld state", job_id, (long long)run_id);
        goto cleanup;
    }
    if (sqlite3_changes(self->db) == 0) {
        kiln_error_set("history: no job %s in run %lld", job_id, (long long)run_id);
        rc = KILN_ENOTFOUND;
        goto cleanup;
    }
    rc = 0;
cleanup:
    s_reset(stmt);
    return rc;
}

/* An attempt is recorded once: starting the same attempt number again fails
 * (the primary key) instead of moving a finished attempt back to running.
 * The token is stored as a signed 64-bit integer; tokens above INT64_MAX
 * (which Redis INCR never produces) would read back negative in JSON. */
int kiln_history_attempt_start(kiln_history_t *self, int64_t run_id, const char *job_id,
                               unsigned attempt, uint64_t token, const char *worker,
                               int64_t started_ms)
{
    int rc = -1;
    assert(self);
    assert(job_id);
    sqlite3_stmt *stmt = self->stmt[S_ATTEMPT_START];
    if (sqlite3_bind_int64(stmt, 1, run_id) != SQLITE_OK
        || sqlite3_bind_text(stmt, 2, job_id, -1, SQLITE_STATIC) != SQLITE_OK
        || sqlite3_bind_int64(stmt, 3, attempt) != SQLITE_OK
        || sqlite3_bind_int64(stmt, 4, (int64_t)token) != SQLITE_OK
        || sqlite3_bind_text(stmt, 5, worker, -1, SQLITE_STATIC) != SQLITE_OK
        || s_bind_opt(stmt, 6, started_ms) != SQLITE_OK
        || sqlite3_step(stmt) != SQLITE_DONE) {
        s_sql_error(self, "start attempt %u of job %s of run %lld", attempt, job_id,
                    (long long)run_id);
        goto cleanup;
    }
    rc = 0;
cleanup:
    s_reset(stmt);
    return rc;
}

/* KILN_ENOTFOUND when the attempt was never started. message is cut to
 * KILN_HISTORY_TEXT_MAX bytes. */
int kiln_history_attempt_finish(kiln_history_t *self, int64_t run_id, const char *job_id,
                                unsigned attempt, const char *state, const char *message,
                                int64_t finished_ms)
{
    int rc = -1;
    assert(self);
    assert(job_id);
    assert(state);
    sqlite3_stmt *stmt = self->stmt[S_ATTEMPT_FINISH];
    int message_len = message ? (int)strnlen(message, KILN_HISTORY_TEXT_MAX) : 0;
    if (sqlite3_bind_int64(stmt, 1, run_id) != SQLITE_OK
        || sqlite3_bind_text(stmt, 2, job_id, -1, SQLITE_STATIC) != SQLITE_OK
        || sqlite3_bind_int64(stmt, 3, attempt) != SQLITE_OK
        || sqlite3_bind_text(stmt, 4, state, -1, SQLITE_STATIC) != SQLITE_OK
        || sqlite3_bind_text(stmt, 5, message, message_len, SQLITE_STATIC) != SQLITE_OK
        || s_bind_opt(stmt, 6, finished_ms) != SQLITE_OK
        || sqlite3_step(stmt) != SQLITE_DONE) {
        s_sql_error(self, "finish attempt %u of job %s of run %lld", attempt, job_id,
                    (long long)run_id);
        goto cleanup;
    }
    if (sqlite3_changes(self->db) == 0) {
        kiln_error_set("history: no attempt %u of job %s in run %lld", attempt, job_id,
                       (long long)run_id);
        rc = KILN_ENOTFOUND;
        goto cleanup;
    }
    rc = 0;
cleanup:
    s_reset(stmt);
    return rc;
}

/* Replaces any earlier row of the same step (a step restarted inside the
 * same attempt starts over). */
int kiln_history_step_start(kiln_history_t *self, int64_t run_id, const char *job_id,
                            unsigned attempt, unsigned step, const char *name, int64_t started_ms)
{
    int rc = -1;
    assert(self);
    assert(job_id);
    sqlite3_stmt *stmt = self->stmt[S_STEP_START];
    if (sqlite3_bind_int64(stmt, 1, run_id) != SQLITE_OK
        || sqlite3_bind_text(stmt, 2, job_id, -1, SQLITE_STATIC) != SQLITE_OK
        || sqlite3_bind_int64(stmt, 3, attempt) != SQLITE_OK
        || sqlite3_bind_int64(stmt, 4, step) != SQLITE_OK
        || sqlite3_bind_text(stmt, 5, name, -1, SQLITE_STATIC) != SQLITE_OK
        || s_bind_opt(stmt, 6, started_ms) != SQLITE_OK
        || sqlite3_step(stmt) != SQLITE_DONE) {
        s_sql_error(self, "start step %u of job %s of run %lld", step, job_id, (long long)run_id);
        goto cleanup;
    }
    rc = 0;
cleanup:
    s_reset(stmt);
    return rc;
}

/* Inserts the row when the start was never recorded (a skipped step, or a
 * start lost with a coordinator crash); its name is then null. started_ms 0
 * keeps the recorded start. exit_code is stored as given (-1: no normal
 * exit); signal 0 is stored as null ("no signal"). */
int kiln_history_step_finish(kiln_history_t *self, int64_t run_id, const char *job_id,
                             unsigned attempt, unsigned step, const char *name, const char *state,
                             int exit_code, int signal, int64_t started_ms, int64_t finished_ms)
{
    int rc = -1;
    assert(self);
    assert(job_id);
    assert(state);
    sqlite3_stmt *stmt = self->stmt[S_STEP_FINISH];
    if (sqlite3_bind_int64(stmt, 1, run_id) != SQLITE_OK
        || sqlite3_bind_text(stmt, 2, job_id, -1, SQLITE_STATIC) != SQLITE_OK
        || sqlite3_bind_int64(stmt, 3, attempt) != SQLITE_OK
        || sqlite3_bind_int64(stmt, 4, step) != SQLITE_OK
        || sqlite3_bind_text(stmt, 5, state, -1, SQLITE_STATIC) != SQLITE_OK
        || sqlite3_bind_int(stmt, 6, exit_code) != SQLITE_OK
        || (signal != 0 ? sqlite3_bind_int(stmt, 7, signal) : sqlite3_bind_null(stmt, 7))
               != SQLITE_OK
        || s_bind_opt(stmt, 8, started_ms) != SQLITE_OK
        || s_bind_opt(stmt, 9, finished_ms) != SQLITE_OK
        || (name ? sqlite3_bind_text(stmt, 10, name, -1, SQLITE_STATIC)
                 : sqlite3_bind_null(stmt, 10)) != SQLITE_OK
        || sqlite3_step(stmt) != SQLITE_DONE) {
        s_sql_error(self, "finish step %u of job %s of run %lld", step, job_id, (long long)run_id);
        goto cleanup;
    }
    rc = 0;
cleanup:
    s_reset(stmt);
    return rc;
}

/* KILN_EINVAL for a stream other than 0..2, KILN_ETOOBIG for a chunk above
 * KILN_HISTORY_CHUNK_MAX. An empty chunk is stored (as an empty blob). */
int kiln_history_log_append(kiln_history_t *self, int64_t run_id, const char *job_id,
                            unsigned attempt, unsigned step, int stream, const void *data,
                            size_t len, int64_t ts_ms)
{
    int rc = -1;
    assert(self);
    assert(job_id);
    assert(data || len == 0);
    sqlite3_stmt *stmt = self->stmt[S_LOG_APPEND];
    if (stream < 0 || stream > 2) {
        kiln_error_set("history: log chunk of job %s of run %lld: bad stream %d", job_id,
                       (long long)run_id, stream);
        rc = KILN_EINVAL;
        goto cleanup;
    }
    if (len > KILN_HISTORY_CHUNK_MAX) {
        kiln_error_set("history: log chunk of job %s of run %lld is %zu bytes, more than %d",
                       job_id, (long long)run_id, len, KILN_HISTORY_CHUNK_MAX);
        rc = KILN_ETOOBIG;
        goto cleanup;
    }
    /* A NULL pointer would bind SQL NULL, which data's NOT NULL refuses. */
    if (sqlite3_bind_int64(stmt, 1, run_id) != SQLITE_OK
        || sqlite3_bind_text(stmt, 2, job_id, -1, SQLITE_STATIC) != SQLITE_OK
        || sqlite3_bind_int64(stmt, 3, attempt) != SQLITE_OK
        || sqlite3_bind_int64(stmt, 4, step) != SQLITE_OK
        || sqlite3_bind_int(stmt, 5, stream) != SQLITE_OK
        || sqlite3_bind_int64(stmt, 6, ts_ms) != SQLITE_OK
        || sqlite3_bind_blob64(stmt, 7, len ? data : "", len, SQLITE_STATIC) != SQLITE_OK
        || sqlite3_step(stmt) != SQLITE_DONE) {
        s_sql_error(self, "log chunk of job %s of run %lld", job_id, (long long)run_id);
        goto cleanup;
    }
    rc = 0;
cleanup:
    s_reset(stmt);
    return rc;
}

/* detail is cut to KILN_HISTORY_TEXT_MAX bytes; actor and detail may be NULL. */
int kiln_history_audit(kiln_history_t *self, const char *kind, const char *actor,
                       const char *detail, int64_t ts_ms)
{
    int rc = -1;
    assert(self);
    assert(kind);
    sqlite3_stmt *stmt = self->stmt[S_AUDIT];
    int detail_len = detail ? (int)strnlen(detail, KILN_HISTORY_TEXT_MAX) : 0;
    if (sqlite3_bind_int64(stmt, 1, ts_ms) != SQLITE_OK
        || sqlite3_bind_text(stmt, 2, kind, -1, SQLITE_STATIC) != SQLITE_OK
        || sqlite3_bind_text(stmt, 3, actor, -1, SQLITE_STATIC) != SQLITE_OK
        || sqlite3_bind_text(stmt, 4, detail, detail_len, SQLITE_STATIC) != SQLITE_OK
        || sqlite3_step(stmt) != SQLITE_DONE) {
        s_sql_error(self, "audit %s", kind);
        goto cleanup;
    }
    rc = 0;
cleanup:
    s_reset(stmt);
    return rc;
}

/* ---- reading back as JSON ---------------------------------------------- */

/* Length of the well-formed UTF-8 sequence at p (at most n bytes), or 0.
 * Same rules as jansson: no overlong forms, surrogates or values above
 * U+10FFFF. */
static size_t s_utf8_seq(const unsigned char *p, size_t n)
{
    unsigned c = p[0];
    size_t len;
    unsigned min;
    unsigned cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2, min = 0x80, cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3, min = 0x800, cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4, min = 0x10000, cp = c & 0x07;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

/* A JSON string from stored text. Text from workers (a worker name, a
 * failure message) is not guaranteed to be UTF-8, and one bad byte must not
 * make a whole run unreadable: bytes that are not UTF-8 become U+FFFD. */
static json_t *s_json_text(const char *text, size_t len)
{
    char *clean = NULL;
    size_t used = 0;
    json_t *value = json_stringn(text, len);
    if (value != NULL || len > (SIZE_MAX - 1) / 3)
        goto cleanup;
    clean = malloc(len * 3 + 1);
    if (clean == NULL)
        goto cleanup;
    for (size_t i = 0; i < len;) {
        size_t seq = s_utf8_seq((const unsigned char *)text + i, len - i);
        if (seq == 0) {
            memcpy(clean + used, "\xEF\xBF\xBD", 3);
            used += 3;
            i++;
        } else {
            memcpy(clean + used, text + i, seq);
            used += seq;
            i += seq;
        }
    }
    value = json_stringn(clean, used);
cleanup:
    free(clean);
    return value;
}

/* Column as a JSON string, null for SQL NULL; NULL on allocation failure. */
static json_t *s_col_text(sqlite3_stmt *stmt, int col)
{
    if (sqlite3_column_type(stmt, col) == SQLITE_NULL)
        return json_null();
    const char *text = (const char *)sqlite3_column_text(stmt, col);
    int len = sqlite3_column_bytes(stmt, col);
    if (text == NULL)
        return NULL;
    return s_json_text(text, (size_t)len);
}

/* Column as a JSON integer, null for SQL NULL. */
static json_t *s_col_int(sqlite3_stmt *stmt, int col)
{
    if (sqlite3_column_type(stmt, col) == SQLITE_NULL)
        return json_null();
    return json_integer((json_int_t)sqlite3_column_int64(stmt, col));
}

/* finished - started, or null while either is unknown, or when the end
 * recorded is older than the start (a job retried after it was finished). */
static json_t *s_col_duration(sqlite3_stmt *stmt, int col_started, int col_finished)
{
    if (sqlite3_column_type(stmt, col_started) == SQLITE_NULL
        || sqlite3_column_type(stmt, col_finished) == SQLITE_NULL)
        return json_null();
    int64_t started = sqlite3_column_int64(stmt, col_started);
    int64_t finished = sqlite3_column_int64(stmt, col_finished);
    if (finished < started)
        return json_null();
    return json_integer((json_int_t)(finished - started));
}

/* Stored needs/runs_on text back to an array. */
static json_t *s_col_list(sqlite3_stmt *stmt, int col)
{
    const char *text = (const char *)sqlite3_column_text(stmt, col);
    if (text == NULL)
        return json_array();
    json_t *value = json_loads(text, 0, NULL);
    if (value != NULL && !json_is_array(value)) {
        json_decref(value);
        value = NULL;
    }
    return value;
}

/* json_object_set_new with the house error: it takes value even on failure,
 * and a NULL value (a failed allocation upstream) fails here. */
static int s_set(json_t *object, const char *key, json_t *value)
{
    if (json_object_set_new(object, key, value) != 0)
        return s_oom();
    return 0;
}

static int s_append(json_t *array, json_t *value)
{
    if (json_array_append_new(array, value) != 0)
        return s_oom();
    return 0;
}

/* The fields every run object has, from a row of S_RUNS_LIST or S_RUN_GET
 * (the same first six columns). */
static int s_run_fields(json_t *run, sqlite3_stmt *stmt)
{
    if (s_set(run, "id", s_col_int(stmt, 0)) != 0 || s_set(run, "name", s_col_text(stmt, 1)) != 0
        || s_set(run, "file", s_col_text(stmt, 2)) != 0
        || s_set(run, "state", s_col_text(stmt, 3)) != 0
        || s_set(run, "created_ms", s_col_int(stmt, 4)) != 0
        || s_set(run, "finished_ms", s_col_int(stmt, 5)) != 0)
        return -1;
    return 0;
}

int kiln_history_runs_json(kiln_history_t *self, unsigned limit, json_t **out)
{
    int rc = -1;
    json_t *runs = NULL;
    json_t *run = NULL;
    assert(self);
    assert(out);
    sqlite3_stmt *stmt = self->stmt[S_RUNS_LIST];
    int step;
    *out = NULL;
    if (limit == 0)
        limit = KILN_HISTORY_LIST_DEFAULT;
    if (limit > KILN_HISTORY_LIST_MAX)
        limit = KILN_HISTORY_LIST_MAX;

    runs = json_array();
    if (runs == NULL) {
        rc = s_oom();
        goto cleanup;
    }
    if (sqlite3_bind_int64(stmt, 1, limit) != SQLITE_OK) {
        s_sql_error(self, "list runs");
        goto cleanup;
    }
    while ((step = sqlite3_step(stmt)) == SQLITE_ROW) {
        run = json_object();
        if (run == NULL) {
            rc = s_oom();
            goto cleanup;
        }
        if (s_run_fields(run, stmt) != 0
            || s_set(run, "duration_ms", s_col_duration(stmt, 4, 5)) != 0
            || s_set(run, "jobs", s_col_int(stmt, 6)) != 0
            || s_set(run, "failed", s_col_int(stmt, 7)) != 0)
            goto cleanup;
        rc = s_append(runs, run);
        run = NULL;
        if (rc != 0)
            goto cleanup;
        rc = -1;
    }
    if (step != SQLITE_DONE) {
        s_sql_error(self, "list runs");
        goto cleanup;
    }
    *out = runs;
    runs = NULL;
    rc = 0;
cleanup:
    s_reset(stmt);
    json_decref(run);
    json_decref(runs);
    return rc;
}

/* One attempt / one step object from the current row of S_JOB_ATTEMPTS /
 * S_JOB_STEPS. */
static int s_attempt_row(json_t *attempt, sqlite3_stmt *stmt)
{
    if (s_set(attempt, "attempt", s_col_int(stmt, 0)) != 0
        || s_set(attempt, "token", s_col_int(stmt, 1)) != 0
        || s_set(attempt, "worker", s_col_text(stmt, 2)) != 0
        || s_set(attempt, "state", s_col_text(stmt, 3)) != 0
        || s_set(attempt, "message", s_col_text(stmt, 4)) != 0
        || s_set(attempt, "started_ms", s_col_int(stmt, 5)) != 0
        || s_set(attempt, "finished_ms", s_col_int(stmt, 6)) != 0)
        return -1;
    return 0;
}

static int s_step_row(json_t *step, sqlite3_stmt *stmt)
{
    if (s_set(step, "attempt", s_col_int(stmt, 0)) != 0
        || s_set(step, "index", s_col_int(stmt, 1)) != 0
        || s_set(step, "name", s_col_text(stmt, 2)) != 0
        || s_set(step, "state", s_col_text(stmt, 3)) != 0
        || s_set(step, "exit_code", s_col_int(stmt, 4)) != 0
        || s_set(step, "signal", s_col_int(stmt, 5)) != 0
        || s_set(step, "started_ms", s_col_int(stmt, 6)) != 0
        || s_set(step, "finished_ms", s_col_int(stmt, 7)) != 0
        || s_set(step, "duration_ms", s_col_duration(stmt, 6, 7)) != 0)
        return -1;
    return 0;
}

/* Sets job[key] to an array with one object per row of cached statement
 * `which` (S_JOB_ATTEMPTS or S_JOB_STEPS) for the job, each built by `row`. */
static int s_job_children(kiln_history_t *self, int which, int64_t run_id, const char *job_id,
                          json_t *job, const char *key, int (*row)(json_t *, sqlite3_stmt *))
{
    int rc = -1;
    sqlite3_stmt *stmt = self->stmt[which];
    json_t *list = json_array();
    json_t *item = NULL;
    int step;
    if (list == NULL) {
        rc = s_oom();
        goto cleanup;
    }
    if (sqlite3_bind_int64(stmt, 1, run_id) != SQLITE_OK
        || sqlite3_bind_text(stmt, 2, job_id, -1, SQLITE_TRANSIENT) != SQLITE_OK) {
        s_sql_error(self, "%s of job %s of run %lld", key, job_id, (long long)run_id);
        goto cleanup;
    }
    while ((step = sqlite3_step(stmt)) == SQLITE_ROW) {
        item = json_object();
        if (item == NULL) {
            rc = s_oom();
            goto cleanup;
        }
        if (row(item, stmt) != 0)
            goto cleanup;
        rc = s_append(list, item);
        item = NULL;
        if (rc != 0)
            goto cleanup;
        rc = -1;
    }
    if (step != SQLITE_DONE) {
        s_sql_error(self, "%s of job %s of run %lld", key, job_id, (long long)run_id);
        goto cleanup;
    }
    rc = s_set(job, key, list);
    list = NULL;
cleanup:
    s_reset(stmt);
    json_decref(item);
    json_decref(list);
    return rc;
}

/* One job object from the current row of S_RUN_JOBS. */
static int s_job_json(kiln_history_t *self, int64_t run_id, sqlite3_stmt *stmt, json_t **out)
{
    int rc = -1;
    json_t *job = json_object();
    json_t *list = NULL;
    const char *job_id = (const char *)sqlite3_column_text(stmt, 0);
    *out = NULL;
    if (job == NULL || job_id == NULL) {
        rc = s_oom();
        goto cleanup;
    }
    if (s_set(job, "id", s_col_text(stmt, 0)) != 0 || s_set(job, "name", s_col_text(stmt, 1)) != 0
        || s_set(job, "state", s_col_text(stmt, 2)) != 0
        || s_set(job, "attempt", s_col_int(stmt, 3)) != 0
        || s_set(job, "worker", s_col_text(stmt, 4)) != 0
        || s_set(job, "started_ms", s_col_int(stmt, 5)) != 0
        || s_set(job, "finished_ms", s_col_int(stmt, 6)) != 0
        || s_set(job, "duration_ms", s_col_duration(stmt, 5, 6)) != 0)
        goto cleanup;
    const char *list_keys[2] = {"needs", "runs_on"};
    for (int i = 0; i < 2; i++) {
        list = s_col_list(stmt, 7 + i);
        if (list == NULL) {
            kiln_error_set("history: job %s of run %lld: stored %s is not a JSON array", job_id,
                           (long long)run_id, list_keys[i]);
            goto cleanup;
        }
        rc = s_set(job, list_keys[i], list);
        list = NULL;
        if (rc != 0)
            goto cleanup;
        rc = -1;
    }
    const char *outputs = (const char *)sqlite3_column_text(stmt, 9);
    json_t *outs = outputs ? json_loads(outputs, 0, NULL) : NULL;
    if (s_set(job, "outputs", outs ? outs : json_object()) != 0)
        goto cleanup;
    if (s_job_children(self, S_JOB_ATTEMPTS, run_id, job_id, job, "attempts", s_attempt_row) != 0
        || s_job_children(self, S_JOB_STEPS, run_id, job_id, job, "steps", s_step_row) != 0)
        goto cleanup;
    *out = job;
    job = NULL;
    rc = 0;
cleanup:
    json_decref(list);
    json_decref(job);
    return rc;
}

/* KILN_ENOTFOUND with "history: no run N" when the run does not exist. */
int kiln_history_run_json(kiln_history_t *self, int64_t run_id, json_t **out)
{
    int rc = -1;
    json_t *run = NULL;
    json_t *jobs = NULL;
    json_t *job = NULL;
    assert(self);
    assert(out);
    sqlite3_stmt *get = self->stmt[S_RUN_GET];
    sqlite3_stmt *list = self->stmt[S_RUN_JOBS];
    int step;
    *out = NULL;

    if (sqlite3_bind_int64(get, 1, run_id) != SQLITE_OK) {
        s_sql_error(self, "run %lld", (long long)run_id);
        goto cleanup;
    }
    step = sqlite3_step(get);
    if (step == SQLITE_DONE) {
        kiln_error_set("history: no run %lld", (long long)run_id);
        rc = KILN_ENOTFOUND;
        goto cleanup;
    }
    if (step != SQLITE_ROW) {
        s_sql_error(self, "run %lld", (long long)run_id);
        goto cleanup;
    }
    run = json_object();
    jobs = json_array();
    if (run == NULL || jobs == NULL) {
        rc = s_oom();
        goto cleanup;
    }
    if (s_run_fields(run, get) != 0)
        goto cleanup;

    if (sqlite3_bind_int64(list, 1, run_id) != SQLITE_OK) {
        s_sql_error(self, "jobs of run %lld", (long long)run_id);
        goto cleanup;
    }
    while ((step = sqlite3_step(list)) == SQLITE_ROW) {
        if ((rc = s_job_json(self, run_id, list, &job)) != 0 || (rc = s_append(jobs, job)) != 0) {
            job = NULL;
            goto cleanup;
        }
        job = NULL;
        rc = -1;
    }
    if (step != SQLITE_DONE) {
        s_sql_error(self, "jobs of run %lld", (long long)run_id);
        goto cleanup;
    }
    rc = s_set(run, "jobs", jobs);
    jobs = NULL;
    if (rc != 0)
        goto cleanup;
    s_reset(get);
    s_reset(list);
    if ((rc = kiln_history_run_extras(self, run_id, run)) != 0)
        goto cleanup;
    *out = run;
    run = NULL;
    rc = 0;
cleanup:
    s_reset(get);
    s_reset(list);
    json_decref(jobs);
    json_decref(run);
    return rc;
}

/* The walk covers the chunks stored when it starts (ids up to the largest
 * one then), so a callback that appends to the same run cannot make it run
 * forever. The statement is prepared per call rather than cached so that fn
 * may use this history object, including another logs_each. job_id and data
 * passed to fn are borrowed for the call only; data is never NULL (an empty
 * chunk is "" with len 0). A run with no chunks, or no run, walks nothing
 * and returns 0. */
int kiln_history_logs_each(kiln_history_t *self, int64_t run_id, const char *job_id,
                           kiln_history_log_fn fn, void *ctx)
{
    static const char sql[] =
        "SELECT job_id, attempt, step, stream, data, ts_ms FROM logs"
        " WHERE run_id = ?1 AND (?2 IS NULL OR job_id = ?2)"
        " AND id <= (SELECT COALESCE(MAX(id), 0) FROM logs) ORDER BY id";
    int rc = -1;
    sqlite3_stmt *stmt = NULL;
    int step;
    assert(self);
    assert(fn);
    if (sqlite3_prepare_v2(self->db, sql, -1, &stmt, NULL) != SQLITE_OK
        || sqlite3_bind_int64(stmt, 1, run_id) != SQLITE_OK
        || sqlite3_bind_text(stmt, 2, job_id, -1, SQLITE_STATIC) != SQLITE_OK) {
        s_sql_error(self, "logs of run %lld", (long long)run_id);
        goto cleanup;
    }
    while ((step = sqlite3_step(stmt)) == SQLITE_ROW) {
        const char *chunk_job = (const char *)sqlite3_column_text(stmt, 0);
        const void *data = sqlite3_column_blob(stmt, 4);
        int len = sqlite3_column_bytes(stmt, 4);
        if (chunk_job == NULL || (data == NULL && len > 0)) {
            rc = s_oom();
            goto cleanup;
        }
        int stop = fn(ctx, chunk_job, (unsigned)sqlite3_column_int64(stmt, 1),
                      (unsigned)sqlite3_column_int64(stmt, 2), sqlite3_column_int(stmt, 3),
                      data ? data : "", (size_t)len, sqlite3_column_int64(stmt, 5));
        if (stop != 0) {
            rc = stop;
            goto cleanup;
        }
    }
    if (step != SQLITE_DONE) {
        s_sql_error(self, "logs of run %lld", (long long)run_id);
        goto cleanup;
    }
    rc = 0;
cleanup:
    sqlite3_finalize(stmt);
    return rc;
}

/* Prepared per call: recovery runs once at start-up, off every hot path.
 * The WHERE matches runs_active's, so SQLite reads the few unfinished runs
 * from that index instead of every row (and every workflow text) of runs. */
int kiln_history_active_runs(kiln_history_t *self, kiln_history_active_fn fn, void *ctx)
{
    static const char sql[] = "SELECT id, name, file, yaml, created_ms, inputs, actions, matrices"
                              " FROM runs"
                              " WHERE state = 'running' ORDER BY id";
    int rc = -1, step;
    sqlite3_stmt *stmt = NULL;
    assert(self);
    assert(fn);
    if (sqlite3_prepare_v2(self->db, sql, -1, &stmt, NULL) != SQLITE_OK) {
        s_sql_error(self, "active runs");
        goto cleanup;
    }
    while ((step = sqlite3_step(stmt)) == SQLITE_ROW) {
        kiln_history_active_t run = {
            .run_id = sqlite3_column_int64(stmt, 0),
            .name = (const char *)sqlite3_column_text(stmt, 1),
            .file = (const char *)sqlite3_column_text(stmt, 2),
            .yaml = (const char *)sqlite3_column_blob(stmt, 3),
            .yaml_len = (size_t)sqlite3_column_bytes(stmt, 3),
            .created_ms = sqlite3_column_int64(stmt, 4),
            .inputs = (const char *)sqlite3_column_text(stmt, 5),
            .actions = (const char *)sqlite3_column_text(stmt, 6),
            .matrices = (const char *)sqlite3_column_text(stmt, 7),
        };
        if (!run.name)
            run.name = "";
        if (!run.file)
            run.file = "";
        if (!run.yaml)
            run.yaml = "";
        int stop = fn(ctx, &run);
        if (stop != 0) {
            rc = stop;
            goto cleanup;
        }
    }
    if (step != SQLITE_DONE) {
        s_sql_error(self, "active runs");
        goto cleanup;
    }
    rc = 0;
cleanup:
    sqlite3_finalize(stmt);
    return rc;
}

int kiln_history_job_get(kiln_history_t *self, int64_t run_id, const char *job_id,
                         kiln_history_job_row_t *out)
{
    static const char sql[] =
        "SELECT j.state, j.attempt, j.worker, j.started_ms,"
        " (SELECT a.token FROM attempts a WHERE a.run_id = j.run_id AND a.job_id = j.job_id"
        "  ORDER BY a.attempt DESC LIMIT 1)"
        " FROM jobs j WHERE j.run_id = ?1 AND j.job_id = ?2";
    int rc = -1, step;
    sqlite3_stmt *stmt = NULL;
    assert(self);
    assert(out);
    memset(out, 0, sizeof *out);
    if (sqlite3_prepare_v2(self->db, sql, -1, &stmt, NULL) != SQLITE_OK ||
        sqlite3_bind_int64(stmt, 1, run_id) != SQLITE_OK ||
        sqlite3_bind_text(stmt, 2, job_id, -1, SQLITE_STATIC) != SQLITE_OK) {
        s_sql_error(self, "job %lld/%s", (long long)run_id, job_id);
        goto cleanup;
    }
    step = sqlite3_step(stmt);
    if (step == SQLITE_DONE) {
        kiln_error_set("history: no job %lld/%s", (long long)run_id, job_id);
        rc = KILN_ENOTFOUND;
        goto cleanup;
    }
    if (step != SQLITE_ROW) {
        s_sql_error(self, "job %lld/%s", (long long)run_id, job_id);
        goto cleanup;
    }
    const char *state = (const char *)sqlite3_column_text(stmt, 0);
    const char *worker = (const char *)sqlite3_column_text(stmt, 2);
    snprintf(out->state, sizeof out->state, "%s", state ? state : "");
    out->attempt = (unsigned)sqlite3_column_int64(stmt, 1);
    snprintf(out->worker, sizeof out->worker, "%s", worker ? worker : "");
    out->started_ms = sqlite3_column_int64(stmt, 3);
    out->token = (uint64_t)sqlite3_column_int64(stmt, 4);
    rc = 0;
cleanup:
    sqlite3_finalize(stmt);
    return rc;
}

/* ---- results beyond the state: outputs, annotations, summaries ---- */

int kiln_history_job_outputs(kiln_history_t *self, int64_t run_id, const char *job_id,
                             const json_t *outputs)
{
    static const char sql[] = "UPDATE jobs SET outputs = ?3 WHERE run_id = ?1 AND job_id = ?2";
    char *text = json_dumps(outputs, JSON_COMPACT);
    sqlite3_stmt *stmt = NULL;
    int rc = -1;
    if (!text)
        return s_oom();
    if (sqlite3_prepare_v2(self->db, sql, -1, &stmt, NULL) != SQLITE_OK ||
        sqlite3_bind_int64(stmt, 1, run_id) != SQLITE_OK ||
        sqlite3_bind_text(stmt, 2, job_id, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_text(stmt, 3, text, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_step(stmt) != SQLITE_DONE) {
        s_sql_error(self, "outputs of %lld/%s", (long long)run_id, job_id);
        goto cleanup;
    }
    rc = 0;
cleanup:
    sqlite3_finalize(stmt);
    free(text);
    return rc;
}

int kiln_history_annotation(kiln_history_t *self, int64_t run_id, const char *job_id,
                            unsigned attempt, unsigned step, const char *level,
                            const char *message, const char *title, const char *file, int line,
                            int col)
{
    static const char sql[] =
        "INSERT INTO annotations (run_id, job_id, attempt, step, level, message, title, file,"
        " line, col) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)";
    sqlite3_stmt *stmt = NULL;
    int rc = -1;
    if (sqlite3_prepare_v2(self->db, sql, -1, &stmt, NULL) != SQLITE_OK ||
        sqlite3_bind_int64(stmt, 1, run_id) != SQLITE_OK ||
        sqlite3_bind_text(stmt, 2, job_id, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_int64(stmt, 3, attempt) != SQLITE_OK ||
        sqlite3_bind_int64(stmt, 4, step) != SQLITE_OK ||
        sqlite3_bind_text(stmt, 5, level, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_text(stmt, 6, message, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_text(stmt, 7, title && title[0] ? title : NULL, -1, SQLITE_STATIC) !=
            SQLITE_OK ||
        sqlite3_bind_text(stmt, 8, file && file[0] ? file : NULL, -1, SQLITE_STATIC) !=
            SQLITE_OK ||
        (line > 0 ? sqlite3_bind_int(stmt, 9, line) : sqlite3_bind_null(stmt, 9)) != SQLITE_OK ||
        (col > 0 ? sqlite3_bind_int(stmt, 10, col) : sqlite3_bind_null(stmt, 10)) != SQLITE_OK ||
        sqlite3_step(stmt) != SQLITE_DONE) {
        s_sql_error(self, "annotation of %lld/%s", (long long)run_id, job_id);
        goto cleanup;
    }
    rc = 0;
cleanup:
    sqlite3_finalize(stmt);
    return rc;
}

int kiln_history_summary(kiln_history_t *self, int64_t run_id, const char *job_id,
                         unsigned attempt, const char *markdown, size_t len)
{
    static const char sql[] = "INSERT OR REPLACE INTO summaries (run_id, job_id, attempt,"
                              " markdown) VALUES (?1, ?2, ?3, ?4)";
    sqlite3_stmt *stmt = NULL;
    int rc = -1;
    if (sqlite3_prepare_v2(self->db, sql, -1, &stmt, NULL) != SQLITE_OK ||
        sqlite3_bind_int64(stmt, 1, run_id) != SQLITE_OK ||
        sqlite3_bind_text(stmt, 2, job_id, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_int64(stmt, 3, attempt) != SQLITE_OK ||
        sqlite3_bind_text(stmt, 4, markdown, (int)len, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_step(stmt) != SQLITE_DONE) {
        s_sql_error(self, "summary of %lld/%s", (long long)run_id, job_id);
        goto cleanup;
    }
    rc = 0;
cleanup:
    sqlite3_finalize(stmt);
    return rc;
}

/* Annotations and summaries of a run, added to its JSON record. */
int kiln_history_run_extras(kiln_history_t *self, int64_t run_id, json_t *run)
{
    static const char ann_sql[] = "SELECT job_id, attempt, step, level, message, title, file,"
                                  " line, col FROM annotations WHERE run_id = ?1 ORDER BY id";
    static const char sum_sql[] = "SELECT job_id, attempt, markdown FROM summaries"
                                  " WHERE run_id = ?1 ORDER BY job_id, attempt";
    sqlite3_stmt *stmt = NULL;
    json_t *anns = json_array(), *sums = json_array();
    int rc = -1, step;
    if (!anns || !sums) {
        rc = s_oom();
        goto cleanup;
    }
    if (sqlite3_prepare_v2(self->db, ann_sql, -1, &stmt, NULL) != SQLITE_OK ||
        sqlite3_bind_int64(stmt, 1, run_id) != SQLITE_OK) {
        s_sql_error(self, "annotations of run %lld", (long long)run_id);
        goto cleanup;
    }
    while ((step = sqlite3_step(stmt)) == SQLITE_ROW) {
        json_t *a = json_object();
        json_object_set_new(a, "job", s_col_text(stmt, 0));
        json_object_set_new(a, "attempt", s_col_int(stmt, 1));
        json_object_set_new(a, "step", s_col_int(stmt, 2));
        json_object_set_new(a, "level", s_col_text(stmt, 3));
        json_object_set_new(a, "message", s_col_text(stmt, 4));
        json_object_set_new(a, "title", s_col_text(stmt, 5));
        json_object_set_new(a, "file", s_col_text(stmt, 6));
        json_object_set_new(a, "line", s_col_int(stmt, 7));
        json_object_set_new(a, "col", s_col_int(stmt, 8));
        json_array_append_new(anns, a);
    }
    sqlite3_finalize(stmt);
    stmt = NULL;
    if (sqlite3_prepare_v2(self->db, sum_sql, -1, &stmt, NULL) != SQLITE_OK ||
        sqlite3_bind_int64(stmt, 1, run_id) != SQLITE_OK) {
        s_sql_error(self, "summaries of run %lld", (long long)run_id);
        goto cleanup;
    }
    while ((step = sqlite3_step(stmt)) == SQLITE_ROW) {
        json_t *m = json_object();
        json_object_set_new(m, "job", s_col_text(stmt, 0));
        json_object_set_new(m, "attempt", s_col_int(stmt, 1));
        json_object_set_new(m, "markdown", s_col_text(stmt, 2));
        json_array_append_new(sums, m);
    }
    json_object_set_new(run, "annotations", anns);
    json_object_set_new(run, "summaries", sums);
    anns = sums = NULL;
    rc = 0;
cleanup:
    sqlite3_finalize(stmt);
    json_decref(anns);
    json_decref(sums);
    return rc;
}

/* The stored outputs of every job of a run: job id -> object. */
int kiln_history_run_outputs(kiln_history_t *self, int64_t run_id, json_t **out)
{
    static const char sql[] = "SELECT job_id, outputs FROM jobs WHERE run_id = ?1"
                              " AND outputs IS NOT NULL";
    sqlite3_stmt *stmt = NULL;
    json_t *all = json_object();
    int rc = -1, step;
    *out = NULL;
    if (!all)
        return s_oom();
    if (sqlite3_prepare_v2(self->db, sql, -1, &stmt, NULL) != SQLITE_OK ||
        sqlite3_bind_int64(stmt, 1, run_id) != SQLITE_OK) {
        s_sql_error(self, "outputs of run %lld", (long long)run_id);
        goto cleanup;
    }
    while ((step = sqlite3_step(stmt)) == SQLITE_ROW) {
        json_t *o = json_loads((const char *)sqlite3_column_text(stmt, 1), 0, NULL);
        if (o)
            json_object_set_new(all, (const char *)sqlite3_column_text(stmt, 0), o);
    }
    *out = all;
    all = NULL;
    rc = 0;
cleanup:
    sqlite3_finalize(stmt);
    json_decref(all);
    return rc;
}

static int s_run_column(kiln_history_t *self, int64_t run_id, const char *sql, const json_t *v,
                        const char *what)
{
    char *text = json_dumps(v, JSON_COMPACT);
    sqlite3_stmt *stmt = NULL;
    int rc = -1;
    if (!text)
        return s_oom();
    if (sqlite3_prepare_v2(self->db, sql, -1, &stmt, NULL) != SQLITE_OK ||
        sqlite3_bind_int64(stmt, 1, run_id) != SQLITE_OK ||
        sqlite3_bind_text(stmt, 2, text, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_step(stmt) != SQLITE_DONE) {
        s_sql_error(self, "%s of run %lld", what, (long long)run_id);
        goto cleanup;
    }
    rc = 0;
cleanup:
    sqlite3_finalize(stmt);
    free(text);
    return rc;
}

int kiln_history_run_matrices(kiln_history_t *self, int64_t run_id, const json_t *matrices)
{
    return s_run_column(self, run_id, "UPDATE runs SET matrices = ?2 WHERE id = ?1", matrices,
                        "matrices");
}

int kiln_history_run_actions(kiln_history_t *self, int64_t run_id, const json_t *actions)
{
    return s_run_column(self, run_id, "UPDATE runs SET actions = ?2 WHERE id = ?1", actions,
                        "actions");
}

int kiln_history_run_inputs(kiln_history_t *self, int64_t run_id, const json_t *inputs)
{
    return s_run_column(self, run_id, "UPDATE runs SET inputs = ?2 WHERE id = ?1", inputs,
                        "inputs");
}

/* ---- the scheduler's duration estimates -------------------------------- */

/* Checks a key of the durations table: 1..max bytes. KILN_EINVAL otherwise,
 * with a message that names what it is. */
static int s_check_key(const char *what, const char *key, size_t max)
{
    size_t len = strnlen(key, max + 1);
    if (len == 0 || len > max) {
        kiln_error_set("history: duration: %s '%.40s%s' is %s (1 to %zu bytes)", what, key,
                       len > 40 ? "..." : "", len == 0 ? "empty" : "too long", max);
        return KILN_EINVAL;
    }
    return 0;
}

/* The estimate is an exponentially weighted moving average: each new
 * duration d moves it a fixed share of the way, e += (d - e) / N with
 * N = KILN_HISTORY_EWMA_N (4), so the newest run counts for a quarter, the
 * one before for 3/16, and so on; the last four runs carry about two
 * thirds of the weight. Why: job durations drift (a test suite grows, a
 * cache goes cold) and the scheduler should follow within a few runs, while
 * one slow outlier moves the estimate by only a quarter of its excess. A
 * plain mean would stop following after a while; the last value alone would
 * jump at every outlier.
 *
 * The first N durations use weight 1/samples instead, which makes the
 * estimate their plain mean: the first run's duration is the estimate, not a
 * quarter of it (a moving average started from 0 would badly underestimate
 * a new job), and the next ones are not outweighed by that first one.
 *
 * KILN_EINVAL for an empty or over-long workflow or job id, or ms outside
 * 0..a year; nothing is written then. Works inside a kiln_history_begin/
 * commit batch (the row is part of it) and outside (it commits alone). */
int kiln_history_duration_record(kiln_history_t *self, const char *workflow, const char *job_id,
                                 int64_t ms)
{
    int rc = -1;
    assert(self);
    assert(workflow);
    assert(job_id);
    sqlite3_stmt *stmt = self->stmt[S_DURATION_RECORD];
    if ((rc = s_check_key("workflow", workflow, KILN_HISTORY_NAME_MAX)) != 0
        || (rc = s_check_key("job id", job_id, KILN_HISTORY_ID_MAX)) != 0)
        goto cleanup;
    if (ms < 0 || ms > KILN_HISTORY_DURATION_MAX) {
        kiln_error_set("history: duration of job %s of %s: %lld ms is out of range (0 to %lld)",
                       job_id, workflow, (long long)ms, KILN_HISTORY_DURATION_MAX);
        rc = KILN_EINVAL;
        goto cleanup;
    }
    rc = -1;
    if (sqlite3_bind_text(stmt, 1, workflow, -1, SQLITE_STATIC) != SQLITE_OK
        || sqlite3_bind_text(stmt, 2, job_id, -1, SQLITE_STATIC) != SQLITE_OK
        || sqlite3_bind_double(stmt, 3, (double)ms) != SQLITE_OK
        || sqlite3_step(stmt) != SQLITE_DONE) {
        s_sql_error(self, "duration of job %s of %s", job_id, workflow);
        goto cleanup;
    }
    rc = 0;
cleanup:
    s_reset(stmt);
    return rc;
}

/* A primary-key range search on durations: its cost depends on the
 * workflow's own jobs, never on the size of the history. Jobs come in
 * job-id order (byte order). job_id is borrowed for the call; samples above
 * UINT_MAX read as UINT_MAX. fn returning non-zero stops the walk (that value
 * is returned). The statement is cached, so fn must not call
 * kiln_history_durations or kiln_history_duration_record; other history
 * calls are fine. An unknown workflow walks nothing and returns 0;
 * KILN_EINVAL for an empty or over-long one. */
int kiln_history_durations(kiln_history_t *self, const char *workflow,
                           kiln_history_duration_fn fn, void *ctx)
{
    int rc = -1, step;
    assert(self);
    assert(workflow);
    assert(fn);
    sqlite3_stmt *stmt = self->stmt[S_DURATIONS];
    if ((rc = s_check_key("workflow", workflow, KILN_HISTORY_NAME_MAX)) != 0)
        goto cleanup;
    rc = -1;
    if (sqlite3_bind_text(stmt, 1, workflow, -1, SQLITE_STATIC) != SQLITE_OK) {
        s_sql_error(self, "durations of %s", workflow);
        goto cleanup;
    }
    while ((step = sqlite3_step(stmt)) == SQLITE_ROW) {
        const char *job_id = (const char *)sqlite3_column_text(stmt, 0);
        sqlite3_int64 samples = sqlite3_column_int64(stmt, 2);
        if (job_id == NULL) {
            rc = s_oom();
            goto cleanup;
        }
        int stop = fn(ctx, job_id, sqlite3_column_int64(stmt, 1),
                      samples > (sqlite3_int64)UINT_MAX ? UINT_MAX : (unsigned)samples);
        if (stop != 0) {
            rc = stop;
            goto cleanup;
        }
    }
    if (step != SQLITE_DONE) {
        s_sql_error(self, "durations of %s", workflow);
        goto cleanup;
    }
    rc = 0;
cleanup:
    s_reset(stmt);
    return rc;
}
