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

struct kiln_history {
    sqlite3 *db;
    unsigned depth; /* unmatched kiln_history_begin calls; > 0: in a transaction */
    sqlite3_stmt *stmt[KILN_HISTORY_STMT_COUNT]; /* prepared in open, finalized in destroy */
    bool wal;                                    /* a file in WAL mode (not :memory:) */
    kiln_history_checkpointer_t ckpt;
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

/* Steps a write statement to completion. 0, or -1 with the message set
 * ("history: <what>: ..."). */
int kiln_hdb_step_done(kiln_history_t *self, sqlite3_stmt *stmt, const char *what);

/* Checks a key of the durations table: 1..max bytes. KILN_EINVAL otherwise,
 * with a message that names what it is (`what`: "workflow", "job id"). */
int kiln_hdb_check_key(const char *what, const char *key, size_t max);

#endif
