/* history_int.h: what the history files share, for their own use only.
 *
 * The store behind history.h is one object over one SQLite connection,
 * split by what a reader looks for:
 *
 *   history.c        its lifecycle: open, the schema and its upgrades, the
 *                    statements prepared once, begin/commit, the checkpoint
 *                    thread, destroy
 *   history_write.c  every write: runs, jobs, attempts, steps, logs,
 *                    annotations, summaries, audit, durations
 *   history_read.c   every read: the rows behind the JSON documents (which
 *                    document.c builds), logs, recovery's rows, the
 *                    scheduler's durations
 *
 * Nothing outside these three files includes this header: callers see
 * history.h, and kiln_history_t stays opaque to them.
 */
#ifndef KILN_HISTORY_INT_H
#define KILN_HISTORY_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

#include "coordinator/history.h"

/* Keys of the duration estimates. Job ids are at most 100 characters in a
 * workflow file (pipeline.h), longer once a matrix combination is appended;
 * workflows are keyed by name. An empty or longer key is refused
 * (KILN_EINVAL): it is a caller's bug or a hostile file, not a job to learn.
 * Checked by the write (kiln_history_duration_record) and the read
 * (kiln_history_durations) alike. */
#define KILN_HISTORY_ID_MAX 256
#define KILN_HISTORY_NAME_MAX 1024
/* The estimator's weight: each new duration moves the estimate 1/N of the
 * way towards itself (see kiln_history_duration_record in history_write.c;
 * the arithmetic is the statement KILN_HISTORY_STMT_DURATION_RECORD). */
#define KILN_HISTORY_EWMA_N 4

/* The statements prepared once per connection (their SQL is in history.c).
 * Optional arguments are bound as NULL ("not set") and COALESCE keeps the
 * stored value. A cached statement is in use from its first step until
 * kiln_hdb_reset, so a function that walks one must not be re-entered
 * from its own callback. */
enum {
    KILN_HISTORY_STMT_BEGIN,
    KILN_HISTORY_STMT_COMMIT,
    KILN_HISTORY_STMT_ROLLBACK,
    KILN_HISTORY_STMT_RUN_CREATE,
    KILN_HISTORY_STMT_RUN_SET_STATE,
    KILN_HISTORY_STMT_JOB_CREATE,
    KILN_HISTORY_STMT_JOB_SET_STATE,
    KILN_HISTORY_STMT_ATTEMPT_START,
    KILN_HISTORY_STMT_ATTEMPT_FINISH,
    KILN_HISTORY_STMT_STEP_START,
    KILN_HISTORY_STMT_STEP_FINISH,
    KILN_HISTORY_STMT_LOG_APPEND,
    KILN_HISTORY_STMT_AUDIT,
    KILN_HISTORY_STMT_RUNS_LIST,
    KILN_HISTORY_STMT_RUN_GET,
    KILN_HISTORY_STMT_RUN_JOBS,
    KILN_HISTORY_STMT_JOB_ATTEMPTS,
    KILN_HISTORY_STMT_JOB_STEPS,
    KILN_HISTORY_STMT_DURATION_RECORD,
    KILN_HISTORY_STMT_DURATIONS,
    KILN_HISTORY_STMT_RUN_MATRICES,
    KILN_HISTORY_STMT_RUN_ACTIONS,
    KILN_HISTORY_STMT_RUN_INPUTS,
    KILN_HISTORY_STMT_RUN_SOURCE,
    KILN_HISTORY_STMT_JOB_OUTPUTS,
    KILN_HISTORY_STMT_ANNOTATION,
    KILN_HISTORY_STMT_SUMMARY,
    KILN_HISTORY_STMT_JOB_PLAN,
    KILN_HISTORY_STMT_ATTEMPT_PLACEMENT,
    KILN_HISTORY_STMT_CACHE_ADD,
    KILN_HISTORY_STMT_CACHE_TOUCH,
    KILN_HISTORY_STMT_CACHE_DELETE,
    KILN_HISTORY_STMT_ARTIFACT_ADD,
    KILN_HISTORY_STMT_ARTIFACT_STATE,
    KILN_HISTORY_STMT_COUNT
};

/* The checkpoint thread's side of the store (history.c). mu guards wanted
 * and stop; the rest is set before the thread starts. */
typedef struct {
    pthread_t thread;
    bool started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool wanted, stop;
    char *path;
    int last_pages; /* WAL size at the last commit (main thread only) */
} kiln_history_checkpointer_t;

/* Writes that wait for the disk (history_journal.c). While the store is up
 * the open transaction's writes are kept (txn) until it commits: a commit
 * that fails for want of room loses the whole transaction, and the loop
 * above has already acted on it (jobs moved on, Redis told), so those writes
 * must be done again, not forgotten. They move to `wait`, the store is down,
 * and every later write joins them until kiln_history_retry gets them all in
 * one transaction. A write is kept as its statement and the values bound to
 * it (recorded by the kiln_hdb_bind_* calls, copied into an arena), which
 * costs a few copies per write rather than SQL text formatted for each. Log
 * output past KILN_HISTORY_WAIT_MAX is not kept but counted per step (loss),
 * and a marker with the count is written in its place. */
#define KILN_HISTORY_WAIT_MAX (64u * 1024 * 1024)
#define KILN_HISTORY_LOSS_MAX 64
#define KILN_HDB_MAX_PARAMS 12

typedef struct {
    int type; /* SQLITE_INTEGER, _FLOAT, _TEXT, _BLOB, _NULL; 0: not bound */
    int64_t i;
    double d;
    size_t off, len; /* text or blob bytes, in the list's arena */
} kiln_hdb_val_t;

typedef struct {
    int stmt;          /* index into kiln_history.stmt (every write's is prepared at open) */
    size_t base;       /* where this write's bytes start in the arena */
    unsigned n;        /* parameters 1..n recorded */
    kiln_hdb_val_t v[KILN_HDB_MAX_PARAMS];
} kiln_hdb_rec_t;

typedef struct {
    kiln_hdb_rec_t *recs;
    size_t n, cap;
    char *arena;
    size_t used, acap;
} kiln_hdb_list_t;

typedef struct {
    int64_t run_id;
    char job_id[KILN_HISTORY_ID_MAX + 1];
    unsigned attempt, step;
    uint64_t bytes;
} kiln_hdb_loss_t;

typedef struct {
    kiln_hdb_list_t txn;  /* the open transaction's writes, while up */
    kiln_hdb_list_t cur;  /* the values bound for the write being made (one record) */
    sqlite3_stmt *cur_stmt; /* the statement they are bound to */
    kiln_hdb_list_t wait; /* writes waiting for room, oldest first */
    size_t batch_mark;    /* wait.n when the outermost batch began */
    bool down;
    char why[512];
    int64_t since_ms; /* wall clock when it went down */
    uint64_t failures; /* times it went down */
    kiln_hdb_loss_t loss[KILN_HISTORY_LOSS_MAX];
    size_t n_loss;
    uint64_t lost_bytes; /* log bytes not kept while down, all steps */
} kiln_hdb_journal_t;

struct kiln_history {
    sqlite3 *db;
    char *path;
    unsigned depth; /* unmatched kiln_history_begin calls; > 0: in a transaction */
    sqlite3_stmt *stmt[KILN_HISTORY_STMT_COUNT]; /* prepared in open, finalized in destroy */
    bool wal;                                    /* a file in WAL mode (not :memory:) */
    kiln_history_checkpointer_t ckpt;
    kiln_hdb_journal_t journal;
};

/* Sets "history: <what>: <sqlite's message>" from the connection's last
 * error. */
__attribute__((format(printf, 2, 3))) void kiln_hdb_sql_error(kiln_history_t *self,
                                                                  const char *fmt, ...);

/* Sets "history: out of memory"; returns -1. */
int kiln_hdb_oom(void);

/* Readies a cached statement for its next use. Called on every exit path, so
 * a read statement never keeps its snapshot (and the WAL) pinned. */
void kiln_hdb_reset(sqlite3_stmt *stmt);

/* Steps a bound write statement through the journal (history_journal.c).
 * While the store is down the write joins those waiting and 0 is returned;
 * a write that fails for want of room (or an I/O error) takes the store
 * down, its transaction's writes and itself waiting, and also returns 0:
 * it will be done, and the batch's commit reports that it is not yet. With
 * KILN_HDB_NOW the write must happen now (its row id is read back): it is
 * refused with KILN_EINFRA and the store's reason instead of waiting.
 * Otherwise -1 for an SQL error, for the caller to describe with
 * kiln_hdb_sql_error. */
#define KILN_HDB_NOW 1u
int kiln_hdb_write(kiln_history_t *self, sqlite3_stmt *stmt, unsigned flags);

/* Bind a value to a write statement and record it for the journal; the
 * results are sqlite3_bind_*'s. Text and blobs are SQLITE_STATIC: they must
 * live until the write (kiln_hdb_write) is made. text NULL binds NULL. */
int kiln_hdb_bind_int64(kiln_history_t *self, sqlite3_stmt *stmt, int col, int64_t v);
int kiln_hdb_bind_double(kiln_history_t *self, sqlite3_stmt *stmt, int col, double v);
int kiln_hdb_bind_null(kiln_history_t *self, sqlite3_stmt *stmt, int col);
int kiln_hdb_bind_text(kiln_history_t *self, sqlite3_stmt *stmt, int col, const char *text,
                       int len);
int kiln_hdb_bind_blob(kiln_history_t *self, sqlite3_stmt *stmt, int col, const void *data,
                       size_t len);

/* The journal's side of begin and commit (history.c calls them). */
int kiln_hdb_journal_begin(kiln_history_t *self);
/* rc: the COMMIT statement's SQLite result, or SQLITE_DONE. Returns 0 when
 * the batch is on disk, otherwise a negative code with the message set. */
int kiln_hdb_journal_commit(kiln_history_t *self, int rc);
/* True for SQLite results that mean the file cannot be written now (full,
 * I/O error, read-only, busy) rather than a wrong statement. */
bool kiln_hdb_disk_error(int rc);
/* Takes the store down after `rc` (rolls back an open transaction, moves its
 * writes to wait). */
void kiln_hdb_go_down(kiln_history_t *self, int rc);
/* True when a log chunk of len bytes would take the waiting writes past
 * their bound; the chunk is then counted as lost instead. */
bool kiln_hdb_log_lost(kiln_history_t *self, int64_t run_id, const char *job_id,
                       unsigned attempt, unsigned step, size_t len);
void kiln_hdb_journal_free(kiln_history_t *self);

/* Checks a key of the durations table: 1..max bytes. KILN_EINVAL otherwise,
 * with a message that names what it is (`what`: "workflow", "job id"). */
int kiln_hdb_check_key(const char *what, const char *key, size_t max);

#endif
