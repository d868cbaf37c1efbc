/* history_write.c: every write to the history store: runs (and the inputs,
 * actions and matrices kept for a restart), jobs (created, planned, moved
 * through their states, their outputs), attempts, steps, log chunks,
 * annotations, step summaries, audit events, and the scheduler's duration
 * estimates. The contracts are in history.h; the store's layout and why it
 * is SQLite are in history.c.
 *
 * Writes are the hot path (a row per log chunk and per step edge): every
 * one uses a statement prepared once in kiln_history_open and reused with
 * kiln_hdb_reset. The rare ones too (a job's outputs, an annotation, a
 * run's inputs): a statement prepared per call could fail to prepare on a
 * failing disk, where its write could not wait for room with the others. Callers group writes
 * with kiln_history_begin/commit (history.c) so that a burst of chunks is one
 * commit.
 *
 * Every function here returns 0 or a negative code with kiln_error_last()
 * set, and the caller must look at it: a row that failed to be written is a
 * fact lost, and nothing may be acknowledged on the strength of it.
 *
 * Rows only move forward: attempts are inserted once (a second start of the
 * same attempt number is an error, not a reset), updates only set columns,
 * and nothing here deletes.
 */
#include "coordinator/history.h"

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sqlite3.h>

#include "common/error.h"
#include "coordinator/history_int.h"

/* Bounds on what is stored. The protocol and workflow layers enforce their
 * own (smaller) limits; these keep one bad caller from filling the disk with
 * a single row. A log chunk or workflow above its limit is refused
 * (KILN_ETOOBIG: the caller splits chunks); an attempt message or audit
 * detail is cut to KILN_HISTORY_TEXT_MAX bytes, because losing the end of a
 * message is better than losing the record that the attempt ended. */
#define KILN_HISTORY_CHUNK_MAX (1024 * 1024)
#define KILN_HISTORY_YAML_MAX (4 * 1024 * 1024)
#define KILN_HISTORY_TEXT_MAX (64 * 1024)
/* A recorded duration above a year (the longest timeout a workflow may set)
 * can only come from a clock jump; it is refused rather than let it swamp
 * the estimate. */
#define KILN_HISTORY_DURATION_MAX (366LL * 24 * 60 * 60 * 1000)

/* A timestamp or counter where 0 means "not set": bound as NULL. */
static int s_bind_opt(kiln_history_t *self, sqlite3_stmt *stmt, int col, int64_t value)
{
    return value > 0 ? kiln_hdb_bind_int64(self, stmt, col, value)
                     : kiln_hdb_bind_null(self, stmt, col);
}

/* ---- runs -------------------------------------------------------------- */

int kiln_history_run_create(kiln_history_t *self, const char *name, const char *file,
                            const char *yaml, size_t yaml_len, int64_t created_ms,
                            const char *event, const char *actor, int64_t *run_id)
{
    int rc = -1;
    assert(self);
    assert(run_id);
    assert(yaml || yaml_len == 0);
    sqlite3_stmt *stmt = self->stmt[KILN_HISTORY_STMT_RUN_CREATE];
    if (yaml_len > KILN_HISTORY_YAML_MAX) {
        kiln_error_set("history: workflow %s is %zu bytes, more than %d", file ? file : "?",
                       yaml_len, KILN_HISTORY_YAML_MAX);
        rc = KILN_ETOOBIG;
        goto cleanup;
    }
    if (kiln_hdb_bind_text(self, stmt, 1, name, -1) != SQLITE_OK
        || kiln_hdb_bind_text(self, stmt, 2, file, -1) != SQLITE_OK
        || (yaml ? kiln_hdb_bind_blob(self, stmt, 3, yaml, yaml_len)
                 : kiln_hdb_bind_null(self, stmt, 3)) != SQLITE_OK
        || kiln_hdb_bind_int64(self, stmt, 4, created_ms) != SQLITE_OK
        || kiln_hdb_bind_text(self, stmt, 5, event, -1) != SQLITE_OK
        || kiln_hdb_bind_text(self, stmt, 6, actor, -1) != SQLITE_OK) {
        kiln_hdb_sql_error(self, "create run");
        goto cleanup;
    }
    /* Its number is handed out at once: it must be on disk now, never
     * waiting for room. */
    if ((rc = kiln_hdb_write(self, stmt, KILN_HDB_NOW)) != 0) {
        if (rc != KILN_EINFRA)
            kiln_hdb_sql_error(self, "create run");
        goto cleanup;
    }
    *run_id = sqlite3_last_insert_rowid(self->db);
    rc = 0;
cleanup:
    kiln_hdb_reset(stmt);
    return rc;
}

/* KILN_ENOTFOUND when the run does not exist. */
int kiln_history_run_set_state(kiln_history_t *self, int64_t run_id, const char *state,
                               int64_t finished_ms)
{
    int rc = -1;
    assert(self);
    assert(state);
    sqlite3_stmt *stmt = self->stmt[KILN_HISTORY_STMT_RUN_SET_STATE];
    if (kiln_hdb_bind_int64(self, stmt, 1, run_id) != SQLITE_OK
        || kiln_hdb_bind_text(self, stmt, 2, state, -1) != SQLITE_OK
        || s_bind_opt(self, stmt, 3, finished_ms) != SQLITE_OK) {
        kiln_hdb_sql_error(self, "run %lld state", (long long)run_id);
        goto cleanup;
    }
    if (kiln_hdb_write(self, stmt, 0) != 0) {
        kiln_hdb_sql_error(self, "run state");
        goto cleanup;
    }
    if (!self->journal.down && sqlite3_changes(self->db) == 0) {
        kiln_error_set("history: no run %lld", (long long)run_id);
        rc = KILN_ENOTFOUND;
        goto cleanup;
    }
    rc = 0;
cleanup:
    kiln_hdb_reset(stmt);
    return rc;
}

/* Stores v as compact JSON text in one column of a run: `sql` is an UPDATE
 * binding the run id as ?1 and the text as ?2; `what` names the column in
 * the error. Rare (once per run), so the statement is prepared per call. */
static int s_run_column(kiln_history_t *self, int64_t run_id, int which, const json_t *v,
                        const char *what)
{
    char *text = json_dumps(v, JSON_COMPACT);
    sqlite3_stmt *stmt = self->stmt[which];
    int rc = -1;
    if (!text)
        return kiln_hdb_oom();
    if (kiln_hdb_bind_int64(self, stmt, 1, run_id) != SQLITE_OK ||
        kiln_hdb_bind_text(self, stmt, 2, text, -1) != SQLITE_OK ||
        kiln_hdb_write(self, stmt, 0) != 0) {
        kiln_hdb_sql_error(self, "%s of run %lld", what, (long long)run_id);
        goto cleanup;
    }
    rc = 0;
cleanup:
    kiln_hdb_reset(stmt);
    free(text);
    return rc;
}

int kiln_history_run_matrices(kiln_history_t *self, int64_t run_id, const json_t *matrices)
{
    return s_run_column(self, run_id, KILN_HISTORY_STMT_RUN_MATRICES, matrices,
                        "matrices");
}

int kiln_history_run_actions(kiln_history_t *self, int64_t run_id, const json_t *actions)
{
    return s_run_column(self, run_id, KILN_HISTORY_STMT_RUN_ACTIONS, actions,
                        "actions");
}

int kiln_history_run_inputs(kiln_history_t *self, int64_t run_id, const json_t *inputs)
{
    return s_run_column(self, run_id, KILN_HISTORY_STMT_RUN_INPUTS, inputs,
                        "inputs");
}

int kiln_history_run_source(kiln_history_t *self, int64_t run_id, const json_t *source)
{
    return s_run_column(self, run_id, KILN_HISTORY_STMT_RUN_SOURCE, source, "source");
}

/* ---- jobs, attempts, steps, logs, audit -------------------------------- */

/* A list of strings as compact JSON text, in *out (caller frees). Strings
 * that are not UTF-8 are refused (KILN_EINVAL): they come from a workflow
 * file, which the parser has already checked. */
static int s_list_json(const char *what, const char *const *items, size_t n, char **out)
{
    int rc = -1;
    json_t *array = json_array();
    *out = NULL;
    if (array == NULL) {
        rc = kiln_hdb_oom();
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
            rc = kiln_hdb_oom();
            goto cleanup;
        }
    }
    *out = json_dumps(array, JSON_COMPACT);
    if (*out == NULL) {
        rc = kiln_hdb_oom();
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
    sqlite3_stmt *stmt = self->stmt[KILN_HISTORY_STMT_JOB_CREATE];
    if ((rc = s_list_json("needs", needs, n_needs, &needs_text)) != 0
        || (rc = s_list_json("runs_on", runs_on, n_runs_on, &runs_on_text)) != 0)
        goto cleanup;
    rc = -1;
    if (kiln_hdb_bind_int64(self, stmt, 1, run_id) != SQLITE_OK
        || kiln_hdb_bind_text(self, stmt, 2, job_id, -1) != SQLITE_OK
        || kiln_hdb_bind_text(self, stmt, 3, name, -1) != SQLITE_OK
        || kiln_hdb_bind_text(self, stmt, 4, needs_text, -1) != SQLITE_OK
        || kiln_hdb_bind_text(self, stmt, 5, runs_on_text, -1) != SQLITE_OK) {
        kiln_hdb_sql_error(self, "create job %s of run %lld", job_id, (long long)run_id);
        goto cleanup;
    }
    if (kiln_hdb_write(self, stmt, 0) != 0) {
        kiln_hdb_sql_error(self, "create job %s of run %lld", job_id, (long long)run_id);
        goto cleanup;
    }
    rc = 0;
cleanup:
    kiln_hdb_reset(stmt);
    free(needs_text);
    free(runs_on_text);
    return rc;
}

int kiln_history_job_plan(kiln_history_t *self, int64_t run_id, const char *job_id,
                          const char *name, const char *const *runs_on, size_t n_runs_on)
{
    int rc = -1;
    char *runs_on_text = NULL;
    sqlite3_stmt *stmt = self->stmt[KILN_HISTORY_STMT_JOB_PLAN];
    assert(self && job_id && name);
    if ((rc = s_list_json("runs_on", runs_on, n_runs_on, &runs_on_text)) != 0)
        goto cleanup;
    rc = -1;
    if (kiln_hdb_bind_text(self, stmt, 1, name, -1) != SQLITE_OK ||
        kiln_hdb_bind_text(self, stmt, 2, runs_on_text, -1) != SQLITE_OK ||
        kiln_hdb_bind_int64(self, stmt, 3, run_id) != SQLITE_OK ||
        kiln_hdb_bind_text(self, stmt, 4, job_id, -1) != SQLITE_OK ||
        kiln_hdb_write(self, stmt, 0) != 0) {
        kiln_hdb_sql_error(self, "plan job %s of run %lld", job_id, (long long)run_id);
        goto cleanup;
    }
    rc = 0;
cleanup:
    kiln_hdb_reset(stmt);
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
    sqlite3_stmt *stmt = self->stmt[KILN_HISTORY_STMT_JOB_SET_STATE];
    if (kiln_hdb_bind_int64(self, stmt, 1, run_id) != SQLITE_OK
        || kiln_hdb_bind_text(self, stmt, 2, job_id, -1) != SQLITE_OK
        || kiln_hdb_bind_text(self, stmt, 3, state, -1) != SQLITE_OK
        || s_bind_opt(self, stmt, 4, attempt) != SQLITE_OK
        || kiln_hdb_bind_text(self, stmt, 5, worker, -1) != SQLITE_OK
        || s_bind_opt(self, stmt, 6, started_ms) != SQLITE_OK
        || s_bind_opt(self, stmt, 7, finished_ms) != SQLITE_OK
        || kiln_hdb_write(self, stmt, 0) != 0) {
        kiln_hdb_sql_error(self, "job %s of run %lld state", job_id, (long long)run_id);
        goto cleanup;
    }
    if (!self->journal.down && sqlite3_changes(self->db) == 0) {
        kiln_error_set("history: no job %s in run %lld", job_id, (long long)run_id);
        rc = KILN_ENOTFOUND;
        goto cleanup;
    }
    rc = 0;
cleanup:
    kiln_hdb_reset(stmt);
    return rc;
}

/* An attempt is recorded once: starting the same attempt number again fails
 * (the primary key) instead of moving a finished attempt back to running.
 * The token is stored as a signed 64-bit integer; tokens above INT64_MAX
 * (which Redis INCR never produces) would read back negative in JSON. */
int kiln_history_attempt_start(kiln_history_t *self, int64_t run_id, const char *job_id,
                               unsigned attempt, uint64_t token, const char *worker,
                               const char *worker_key, int64_t started_ms)
{
    int rc = -1;
    assert(self);
    assert(job_id);
    sqlite3_stmt *stmt = self->stmt[KILN_HISTORY_STMT_ATTEMPT_START];
    if (kiln_hdb_bind_int64(self, stmt, 1, run_id) != SQLITE_OK
        || kiln_hdb_bind_text(self, stmt, 2, job_id, -1) != SQLITE_OK
        || kiln_hdb_bind_int64(self, stmt, 3, attempt) != SQLITE_OK
        || kiln_hdb_bind_int64(self, stmt, 4, (int64_t)token) != SQLITE_OK
        || kiln_hdb_bind_text(self, stmt, 5, worker, -1) != SQLITE_OK
        || s_bind_opt(self, stmt, 6, started_ms) != SQLITE_OK
        || kiln_hdb_bind_text(self, stmt, 7, worker_key && worker_key[0] ? worker_key : NULL, -1) != SQLITE_OK
        || kiln_hdb_write(self, stmt, 0) != 0) {
        kiln_hdb_sql_error(self, "start attempt %u of job %s of run %lld", attempt, job_id,
                               (long long)run_id);
        goto cleanup;
    }
    rc = 0;
cleanup:
    kiln_hdb_reset(stmt);
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
    sqlite3_stmt *stmt = self->stmt[KILN_HISTORY_STMT_ATTEMPT_FINISH];
    int message_len = message ? (int)strnlen(message, KILN_HISTORY_TEXT_MAX) : 0;
    if (kiln_hdb_bind_int64(self, stmt, 1, run_id) != SQLITE_OK
        || kiln_hdb_bind_text(self, stmt, 2, job_id, -1) != SQLITE_OK
        || kiln_hdb_bind_int64(self, stmt, 3, attempt) != SQLITE_OK
        || kiln_hdb_bind_text(self, stmt, 4, state, -1) != SQLITE_OK
        || kiln_hdb_bind_text(self, stmt, 5, message, message_len) != SQLITE_OK
        || s_bind_opt(self, stmt, 6, finished_ms) != SQLITE_OK
        || kiln_hdb_write(self, stmt, 0) != 0) {
        kiln_hdb_sql_error(self, "finish attempt %u of job %s of run %lld", attempt, job_id,
                               (long long)run_id);
        goto cleanup;
    }
    if (!self->journal.down && sqlite3_changes(self->db) == 0) {
        kiln_error_set("history: no attempt %u of job %s in run %lld", attempt, job_id,
                       (long long)run_id);
        rc = KILN_ENOTFOUND;
        goto cleanup;
    }
    rc = 0;
cleanup:
    kiln_hdb_reset(stmt);
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
    sqlite3_stmt *stmt = self->stmt[KILN_HISTORY_STMT_STEP_START];
    if (kiln_hdb_bind_int64(self, stmt, 1, run_id) != SQLITE_OK
        || kiln_hdb_bind_text(self, stmt, 2, job_id, -1) != SQLITE_OK
        || kiln_hdb_bind_int64(self, stmt, 3, attempt) != SQLITE_OK
        || kiln_hdb_bind_int64(self, stmt, 4, step) != SQLITE_OK
        || kiln_hdb_bind_text(self, stmt, 5, name, -1) != SQLITE_OK
        || s_bind_opt(self, stmt, 6, started_ms) != SQLITE_OK
        || kiln_hdb_write(self, stmt, 0) != 0) {
        kiln_hdb_sql_error(self, "start step %u of job %s of run %lld", step, job_id,
                               (long long)run_id);
        goto cleanup;
    }
    rc = 0;
cleanup:
    kiln_hdb_reset(stmt);
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
    sqlite3_stmt *stmt = self->stmt[KILN_HISTORY_STMT_STEP_FINISH];
    if (kiln_hdb_bind_int64(self, stmt, 1, run_id) != SQLITE_OK
        || kiln_hdb_bind_text(self, stmt, 2, job_id, -1) != SQLITE_OK
        || kiln_hdb_bind_int64(self, stmt, 3, attempt) != SQLITE_OK
        || kiln_hdb_bind_int64(self, stmt, 4, step) != SQLITE_OK
        || kiln_hdb_bind_text(self, stmt, 5, state, -1) != SQLITE_OK
        || kiln_hdb_bind_int64(self, stmt, 6, exit_code) != SQLITE_OK
        || (signal != 0 ? kiln_hdb_bind_int64(self, stmt, 7, signal) : kiln_hdb_bind_null(self, stmt, 7))
               != SQLITE_OK
        || s_bind_opt(self, stmt, 8, started_ms) != SQLITE_OK
        || s_bind_opt(self, stmt, 9, finished_ms) != SQLITE_OK
        || (name ? kiln_hdb_bind_text(self, stmt, 10, name, -1)
                 : kiln_hdb_bind_null(self, stmt, 10)) != SQLITE_OK
        || kiln_hdb_write(self, stmt, 0) != 0) {
        kiln_hdb_sql_error(self, "finish step %u of job %s of run %lld", step, job_id,
                               (long long)run_id);
        goto cleanup;
    }
    rc = 0;
cleanup:
    kiln_hdb_reset(stmt);
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
    sqlite3_stmt *stmt = self->stmt[KILN_HISTORY_STMT_LOG_APPEND];
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
    /* While the disk is full, output past what may wait in memory is
     * counted, and a marker says so once there is room. */
    if (kiln_hdb_log_lost(self, run_id, job_id, attempt, step, len)) {
        rc = 0;
        goto cleanup;
    }
    /* A NULL pointer would bind SQL NULL, which data's NOT NULL refuses. */
    if (kiln_hdb_bind_int64(self, stmt, 1, run_id) != SQLITE_OK
        || kiln_hdb_bind_text(self, stmt, 2, job_id, -1) != SQLITE_OK
        || kiln_hdb_bind_int64(self, stmt, 3, attempt) != SQLITE_OK
        || kiln_hdb_bind_int64(self, stmt, 4, step) != SQLITE_OK
        || kiln_hdb_bind_int64(self, stmt, 5, stream) != SQLITE_OK
        || kiln_hdb_bind_int64(self, stmt, 6, ts_ms) != SQLITE_OK
        || kiln_hdb_bind_blob(self, stmt, 7, len ? data : "", len) != SQLITE_OK
        || kiln_hdb_write(self, stmt, 0) != 0) {
        kiln_hdb_sql_error(self, "log chunk of job %s of run %lld", job_id, (long long)run_id);
        goto cleanup;
    }
    rc = 0;
cleanup:
    kiln_hdb_reset(stmt);
    return rc;
}

/* detail is cut to KILN_HISTORY_TEXT_MAX bytes; actor and detail may be NULL. */
int kiln_history_audit(kiln_history_t *self, const char *kind, const char *actor,
                       const char *actor_key, const char *detail, int64_t ts_ms)
{
    int rc = -1;
    assert(self);
    assert(kind);
    sqlite3_stmt *stmt = self->stmt[KILN_HISTORY_STMT_AUDIT];
    int detail_len = detail ? (int)strnlen(detail, KILN_HISTORY_TEXT_MAX) : 0;
    if (kiln_hdb_bind_int64(self, stmt, 1, ts_ms) != SQLITE_OK
        || kiln_hdb_bind_text(self, stmt, 2, kind, -1) != SQLITE_OK
        || kiln_hdb_bind_text(self, stmt, 3, actor, -1) != SQLITE_OK
        || kiln_hdb_bind_text(self, stmt, 4, detail, detail_len) != SQLITE_OK
        || kiln_hdb_bind_text(self, stmt, 5, actor_key && actor_key[0] ? actor_key : NULL, -1) != SQLITE_OK
        || kiln_hdb_write(self, stmt, 0) != 0) {
        kiln_hdb_sql_error(self, "audit %s", kind);
        goto cleanup;
    }
    rc = 0;
cleanup:
    kiln_hdb_reset(stmt);
    return rc;
}

/* ---- results beyond the state: outputs, annotations, summaries --------- */

int kiln_history_job_outputs(kiln_history_t *self, int64_t run_id, const char *job_id,
                             const json_t *outputs)
{
    char *text = json_dumps(outputs, JSON_COMPACT);
    sqlite3_stmt *stmt = self->stmt[KILN_HISTORY_STMT_JOB_OUTPUTS];
    int rc = -1;
    if (!text)
        return kiln_hdb_oom();
    if (kiln_hdb_bind_int64(self, stmt, 1, run_id) != SQLITE_OK ||
        kiln_hdb_bind_text(self, stmt, 2, job_id, -1) != SQLITE_OK ||
        kiln_hdb_bind_text(self, stmt, 3, text, -1) != SQLITE_OK ||
        kiln_hdb_write(self, stmt, 0) != 0) {
        kiln_hdb_sql_error(self, "outputs of %lld/%s", (long long)run_id, job_id);
        goto cleanup;
    }
    rc = 0;
cleanup:
    kiln_hdb_reset(stmt);
    free(text);
    return rc;
}

int kiln_history_annotation(kiln_history_t *self, int64_t run_id, const char *job_id,
                            unsigned attempt, unsigned step, const char *level,
                            const char *message, const char *title, const char *file, int line,
                            int col)
{
    sqlite3_stmt *stmt = self->stmt[KILN_HISTORY_STMT_ANNOTATION];
    int rc = -1;
    if (kiln_hdb_bind_int64(self, stmt, 1, run_id) != SQLITE_OK ||
        kiln_hdb_bind_text(self, stmt, 2, job_id, -1) != SQLITE_OK ||
        kiln_hdb_bind_int64(self, stmt, 3, attempt) != SQLITE_OK ||
        kiln_hdb_bind_int64(self, stmt, 4, step) != SQLITE_OK ||
        kiln_hdb_bind_text(self, stmt, 5, level, -1) != SQLITE_OK ||
        kiln_hdb_bind_text(self, stmt, 6, message, -1) != SQLITE_OK ||
        kiln_hdb_bind_text(self, stmt, 7, title && title[0] ? title : NULL, -1) !=
            SQLITE_OK ||
        kiln_hdb_bind_text(self, stmt, 8, file && file[0] ? file : NULL, -1) !=
            SQLITE_OK ||
        (line > 0 ? kiln_hdb_bind_int64(self, stmt, 9, line) : kiln_hdb_bind_null(self, stmt, 9)) != SQLITE_OK ||
        (col > 0 ? kiln_hdb_bind_int64(self, stmt, 10, col) : kiln_hdb_bind_null(self, stmt, 10)) != SQLITE_OK ||
        kiln_hdb_write(self, stmt, 0) != 0) {
        kiln_hdb_sql_error(self, "annotation of %lld/%s", (long long)run_id, job_id);
        goto cleanup;
    }
    rc = 0;
cleanup:
    kiln_hdb_reset(stmt);
    return rc;
}

int kiln_history_summary(kiln_history_t *self, int64_t run_id, const char *job_id,
                         unsigned attempt, const char *markdown, size_t len)
{
    sqlite3_stmt *stmt = self->stmt[KILN_HISTORY_STMT_SUMMARY];
    int rc = -1;
    if (kiln_hdb_bind_int64(self, stmt, 1, run_id) != SQLITE_OK ||
        kiln_hdb_bind_text(self, stmt, 2, job_id, -1) != SQLITE_OK ||
        kiln_hdb_bind_int64(self, stmt, 3, attempt) != SQLITE_OK ||
        kiln_hdb_bind_text(self, stmt, 4, markdown, (int)len) != SQLITE_OK ||
        kiln_hdb_write(self, stmt, 0) != 0) {
        kiln_hdb_sql_error(self, "summary of %lld/%s", (long long)run_id, job_id);
        goto cleanup;
    }
    rc = 0;
cleanup:
    kiln_hdb_reset(stmt);
    return rc;
}

/* ---- the scheduler's duration estimates -------------------------------- */

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
    sqlite3_stmt *stmt = self->stmt[KILN_HISTORY_STMT_DURATION_RECORD];
    if ((rc = kiln_hdb_check_key("workflow", workflow, KILN_HISTORY_NAME_MAX)) != 0
        || (rc = kiln_hdb_check_key("job id", job_id, KILN_HISTORY_ID_MAX)) != 0)
        goto cleanup;
    if (ms < 0 || ms > KILN_HISTORY_DURATION_MAX) {
        kiln_error_set("history: duration of job %s of %s: %lld ms is out of range (0 to %lld)",
                       job_id, workflow, (long long)ms, KILN_HISTORY_DURATION_MAX);
        rc = KILN_EINVAL;
        goto cleanup;
    }
    rc = -1;
    if (kiln_hdb_bind_text(self, stmt, 1, workflow, -1) != SQLITE_OK
        || kiln_hdb_bind_text(self, stmt, 2, job_id, -1) != SQLITE_OK
        || kiln_hdb_bind_double(self, stmt, 3, (double)ms) != SQLITE_OK
        || kiln_hdb_write(self, stmt, 0) != 0) {
        kiln_hdb_sql_error(self, "duration of job %s of %s", job_id, workflow);
        goto cleanup;
    }
    rc = 0;
cleanup:
    kiln_hdb_reset(stmt);
    return rc;
}
