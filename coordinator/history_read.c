/* history_read.c: every read of the history store: the rows behind the JSON
 * documents of `kiln status` and `kiln history` (document.c builds those), a
 * run's log chunks for `kiln logs`, what a restarted coordinator reads back
 * (the active runs, a job's state and latest attempt, the jobs' outputs),
 * and the scheduler's duration estimates. The contracts are in history.h;
 * the layout these queries rely on is explained in history.c.
 *
 * Reads hand out rows, not documents: each walker steps one query and calls
 * back with a record whose text is borrowed from SQLite for the callback
 * only, so a reader copies nothing it does not keep, and the shapes of the
 * documents live in one place (document.c) that a second front end can share.
 * The hot reads (the per-run ones behind `kiln status`, and the durations the
 * scheduler reads when a run is planned) use statements prepared once in
 * kiln_history_open; the rare ones prepare theirs per call, which also makes
 * them safe to nest in any callback.
 */
#include "coordinator/history.h"

#include <assert.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>
#include <sqlite3.h>

#include "common/error.h"
#include "coordinator/history_int.h"
#include "coordinator/document.h"

/* kiln_history_runs_each: limit 0 means the default, larger ones are cut. */
#define KILN_HISTORY_LIST_DEFAULT 50
#define KILN_HISTORY_LIST_MAX 1000

/* ---- columns ----------------------------------------------------------- */

/* Column `col` of the current row as stored text into *out; SQL NULL gives
 * ptr NULL. -1 (out of memory) when SQLite cannot produce the text. */
static int s_col_text(sqlite3_stmt *stmt, int col, kiln_history_text_t *out)
{
    out->ptr = NULL;
    out->len = 0;
    if (sqlite3_column_type(stmt, col) == SQLITE_NULL)
        return 0;
    const char *text = (const char *)sqlite3_column_text(stmt, col);
    int len = sqlite3_column_bytes(stmt, col);
    if (text == NULL)
        return kiln_hdb_oom();
    out->ptr = text;
    out->len = (size_t)len;
    return 0;
}

/* Column `col` as an integer that may be NULL. */
static kiln_history_int_t s_col_int(sqlite3_stmt *stmt, int col)
{
    kiln_history_int_t value = {0, false};
    if (sqlite3_column_type(stmt, col) != SQLITE_NULL) {
        value.value = sqlite3_column_int64(stmt, col);
        value.set = true;
    }
    return value;
}

/* ---- the rows behind the JSON documents -------------------------------- */

/* A run record from a row of KILN_HISTORY_STMT_RUNS_LIST or _RUN_GET (the
 * same first six columns). */
static int s_run_rec(sqlite3_stmt *stmt, kiln_history_run_rec_t *out)
{
    memset(out, 0, sizeof *out);
    out->id = sqlite3_column_int64(stmt, 0);
    if (s_col_text(stmt, 1, &out->name) != 0 || s_col_text(stmt, 2, &out->file) != 0
        || s_col_text(stmt, 3, &out->state) != 0)
        return -1;
    out->created_ms = sqlite3_column_int64(stmt, 4);
    out->finished_ms = s_col_int(stmt, 5);
    return 0;
}

int kiln_history_runs_each(kiln_history_t *self, unsigned limit, kiln_history_run_fn fn,
                           void *ctx)
{
    int rc = -1, step;
    kiln_history_run_rec_t run;
    assert(self);
    assert(fn);
    sqlite3_stmt *stmt = self->stmt[KILN_HISTORY_STMT_RUNS_LIST];
    if (limit == 0)
        limit = KILN_HISTORY_LIST_DEFAULT;
    if (limit > KILN_HISTORY_LIST_MAX)
        limit = KILN_HISTORY_LIST_MAX;
    if (sqlite3_bind_int64(stmt, 1, limit) != SQLITE_OK) {
        kiln_hdb_sql_error(self, "list runs");
        goto cleanup;
    }
    while ((step = sqlite3_step(stmt)) == SQLITE_ROW) {
        if (s_run_rec(stmt, &run) != 0)
            goto cleanup;
        run.n_jobs = sqlite3_column_int64(stmt, 6);
        run.n_failed = sqlite3_column_int64(stmt, 7);
        if ((rc = fn(ctx, &run)) != 0)
            goto cleanup;
        rc = -1;
    }
    if (step != SQLITE_DONE) {
        kiln_hdb_sql_error(self, "list runs");
        goto cleanup;
    }
    rc = 0;
cleanup:
    kiln_hdb_reset(stmt);
    return rc;
}

int kiln_history_run_read(kiln_history_t *self, int64_t run_id, kiln_history_run_fn fn,
                          void *ctx)
{
    int rc = -1, step;
    kiln_history_run_rec_t run;
    assert(self);
    assert(fn);
    sqlite3_stmt *stmt = self->stmt[KILN_HISTORY_STMT_RUN_GET];
    if (sqlite3_bind_int64(stmt, 1, run_id) != SQLITE_OK) {
        kiln_hdb_sql_error(self, "run %lld", (long long)run_id);
        goto cleanup;
    }
    step = sqlite3_step(stmt);
    if (step == SQLITE_DONE) {
        kiln_error_set("history: no run %lld", (long long)run_id);
        rc = KILN_ENOTFOUND;
        goto cleanup;
    }
    if (step != SQLITE_ROW) {
        kiln_hdb_sql_error(self, "run %lld", (long long)run_id);
        goto cleanup;
    }
    if (s_run_rec(stmt, &run) != 0 || s_col_text(stmt, 6, &run.source) != 0 ||
        s_col_text(stmt, 7, &run.pins) != 0)
        goto cleanup;
    rc = fn(ctx, &run);
cleanup:
    kiln_hdb_reset(stmt);
    return rc;
}

int kiln_history_jobs_each(kiln_history_t *self, int64_t run_id, kiln_history_job_fn fn,
                           void *ctx)
{
    int rc = -1, step;
    kiln_history_job_rec_t job;
    assert(self);
    assert(fn);
    sqlite3_stmt *stmt = self->stmt[KILN_HISTORY_STMT_RUN_JOBS];
    if (sqlite3_bind_int64(stmt, 1, run_id) != SQLITE_OK) {
        kiln_hdb_sql_error(self, "jobs of run %lld", (long long)run_id);
        goto cleanup;
    }
    while ((step = sqlite3_step(stmt)) == SQLITE_ROW) {
        memset(&job, 0, sizeof job);
        /* job_id is NOT NULL: no text here means SQLite ran out of memory. */
        job.job_id = (const char *)sqlite3_column_text(stmt, 0);
        if (job.job_id == NULL) {
            rc = kiln_hdb_oom();
            goto cleanup;
        }
        if (s_col_text(stmt, 0, &job.id) != 0 || s_col_text(stmt, 1, &job.name) != 0
            || s_col_text(stmt, 2, &job.state) != 0 || s_col_text(stmt, 4, &job.worker) != 0)
            goto cleanup;
        job.attempt = sqlite3_column_int64(stmt, 3);
        job.started_ms = s_col_int(stmt, 5);
        job.finished_ms = s_col_int(stmt, 6);
        job.needs = (const char *)sqlite3_column_text(stmt, 7);
        job.runs_on = (const char *)sqlite3_column_text(stmt, 8);
        job.outputs = (const char *)sqlite3_column_text(stmt, 9);
        if ((rc = fn(ctx, &job)) != 0)
            goto cleanup;
        rc = -1;
    }
    if (step != SQLITE_DONE) {
        kiln_hdb_sql_error(self, "jobs of run %lld", (long long)run_id);
        goto cleanup;
    }
    rc = 0;
cleanup:
    kiln_hdb_reset(stmt);
    return rc;
}

/* Readies cached statement `which` (attempts or steps, keyed by run and
 * job) for a walk; `key` names it in the error. job_id is copied, since it
 * may point into a row of another statement. */
static int s_bind_job(kiln_history_t *self, sqlite3_stmt *stmt, int64_t run_id,
                      const char *job_id, const char *key)
{
    if (sqlite3_bind_int64(stmt, 1, run_id) != SQLITE_OK
        || sqlite3_bind_text(stmt, 2, job_id, -1, SQLITE_TRANSIENT) != SQLITE_OK) {
        kiln_hdb_sql_error(self, "%s of job %s of run %lld", key, job_id, (long long)run_id);
        return -1;
    }
    return 0;
}

int kiln_history_attempts_each(kiln_history_t *self, int64_t run_id, const char *job_id,
                               kiln_history_attempt_fn fn, void *ctx)
{
    int rc = -1, step;
    kiln_history_attempt_rec_t attempt;
    assert(self);
    assert(job_id);
    assert(fn);
    sqlite3_stmt *stmt = self->stmt[KILN_HISTORY_STMT_JOB_ATTEMPTS];
    if (s_bind_job(self, stmt, run_id, job_id, "attempts") != 0)
        goto cleanup;
    while ((step = sqlite3_step(stmt)) == SQLITE_ROW) {
        memset(&attempt, 0, sizeof attempt);
        attempt.attempt = sqlite3_column_int64(stmt, 0);
        attempt.token = s_col_int(stmt, 1);
        if (s_col_text(stmt, 2, &attempt.worker) != 0 || s_col_text(stmt, 3, &attempt.state) != 0
            || s_col_text(stmt, 4, &attempt.message) != 0
            || s_col_text(stmt, 7, &attempt.worker_key) != 0
            || s_col_text(stmt, 8, &attempt.placement) != 0)
            goto cleanup;
        attempt.started_ms = s_col_int(stmt, 5);
        attempt.finished_ms = s_col_int(stmt, 6);
        if ((rc = fn(ctx, &attempt)) != 0)
            goto cleanup;
        rc = -1;
    }
    if (step != SQLITE_DONE) {
        kiln_hdb_sql_error(self, "attempts of job %s of run %lld", job_id,
                               (long long)run_id);
        goto cleanup;
    }
    rc = 0;
cleanup:
    kiln_hdb_reset(stmt);
    return rc;
}

int kiln_history_steps_each(kiln_history_t *self, int64_t run_id, const char *job_id,
                            kiln_history_step_fn fn, void *ctx)
{
    int rc = -1, step;
    kiln_history_step_rec_t rec;
    assert(self);
    assert(job_id);
    assert(fn);
    sqlite3_stmt *stmt = self->stmt[KILN_HISTORY_STMT_JOB_STEPS];
    if (s_bind_job(self, stmt, run_id, job_id, "steps") != 0)
        goto cleanup;
    while ((step = sqlite3_step(stmt)) == SQLITE_ROW) {
        memset(&rec, 0, sizeof rec);
        rec.attempt = sqlite3_column_int64(stmt, 0);
        rec.index = sqlite3_column_int64(stmt, 1);
        if (s_col_text(stmt, 2, &rec.name) != 0 || s_col_text(stmt, 3, &rec.state) != 0)
            goto cleanup;
        rec.exit_code = s_col_int(stmt, 4);
        rec.signal = s_col_int(stmt, 5);
        rec.started_ms = s_col_int(stmt, 6);
        rec.finished_ms = s_col_int(stmt, 7);
        if ((rc = fn(ctx, &rec)) != 0)
            goto cleanup;
        rc = -1;
    }
    if (step != SQLITE_DONE) {
        kiln_hdb_sql_error(self, "steps of job %s of run %lld", job_id, (long long)run_id);
        goto cleanup;
    }
    rc = 0;
cleanup:
    kiln_hdb_reset(stmt);
    return rc;
}

/* Annotations and summaries are read once per `kiln status`, not per job:
 * prepared per call. */
int kiln_history_annotations_each(kiln_history_t *self, int64_t run_id,
                                  kiln_history_annotation_fn fn, void *ctx)
{
    static const char sql[] = "SELECT job_id, attempt, step, level, message, title, file,"
                              " line, col FROM annotations WHERE run_id = ?1 ORDER BY id";
    int rc = -1, step;
    sqlite3_stmt *stmt = NULL;
    kiln_history_annotation_rec_t a;
    assert(self);
    assert(fn);
    if (sqlite3_prepare_v2(self->db, sql, -1, &stmt, NULL) != SQLITE_OK
        || sqlite3_bind_int64(stmt, 1, run_id) != SQLITE_OK) {
        kiln_hdb_sql_error(self, "annotations of run %lld", (long long)run_id);
        goto cleanup;
    }
    while ((step = sqlite3_step(stmt)) == SQLITE_ROW) {
        memset(&a, 0, sizeof a);
        if (s_col_text(stmt, 0, &a.job_id) != 0 || s_col_text(stmt, 3, &a.level) != 0
            || s_col_text(stmt, 4, &a.message) != 0 || s_col_text(stmt, 5, &a.title) != 0
            || s_col_text(stmt, 6, &a.file) != 0)
            goto cleanup;
        a.attempt = sqlite3_column_int64(stmt, 1);
        a.step = s_col_int(stmt, 2);
        a.line = s_col_int(stmt, 7);
        a.col = s_col_int(stmt, 8);
        if ((rc = fn(ctx, &a)) != 0)
            goto cleanup;
        rc = -1;
    }
    if (step != SQLITE_DONE) {
        kiln_hdb_sql_error(self, "annotations of run %lld", (long long)run_id);
        goto cleanup;
    }
    rc = 0;
cleanup:
    sqlite3_finalize(stmt);
    return rc;
}

int kiln_history_summaries_each(kiln_history_t *self, int64_t run_id, kiln_history_summary_fn fn,
                                void *ctx)
{
    static const char sql[] = "SELECT job_id, attempt, markdown FROM summaries"
                              " WHERE run_id = ?1 ORDER BY job_id, attempt";
    int rc = -1, step;
    sqlite3_stmt *stmt = NULL;
    kiln_history_summary_rec_t m;
    assert(self);
    assert(fn);
    if (sqlite3_prepare_v2(self->db, sql, -1, &stmt, NULL) != SQLITE_OK
        || sqlite3_bind_int64(stmt, 1, run_id) != SQLITE_OK) {
        kiln_hdb_sql_error(self, "summaries of run %lld", (long long)run_id);
        goto cleanup;
    }
    while ((step = sqlite3_step(stmt)) == SQLITE_ROW) {
        memset(&m, 0, sizeof m);
        if (s_col_text(stmt, 0, &m.job_id) != 0 || s_col_text(stmt, 2, &m.markdown) != 0)
            goto cleanup;
        m.attempt = sqlite3_column_int64(stmt, 1);
        if ((rc = fn(ctx, &m)) != 0)
            goto cleanup;
        rc = -1;
    }
    if (step != SQLITE_DONE) {
        kiln_hdb_sql_error(self, "summaries of run %lld", (long long)run_id);
        goto cleanup;
    }
    rc = 0;
cleanup:
    sqlite3_finalize(stmt);
    return rc;
}

/* ---- the documents, for callers that hold only the store --------------- */

/* The shapes are document.c's; these keep history.h's entry points. */
int kiln_history_runs_json(kiln_history_t *self, unsigned limit, json_t **out)
{
    return kiln_document_runs(self, limit, out);
}

int kiln_history_run_json(kiln_history_t *self, int64_t run_id, json_t **out)
{
    return kiln_document_run(self, run_id, out);
}

int kiln_history_actions_used(kiln_history_t *self, json_t **out)
{
    /* Every commit a remote uses: resolved to, over the whole history:
     * what the farm has run, for an auditor as for `kiln actions list`. */
    static const char sql[] =
        "SELECT substr(a.key, 6), json_extract(a.value, '$.url'), json_extract(a.value, '$.sha'),"
        " count(*), max(r.id), max(r.created_ms)"
        " FROM runs r, json_each(CASE WHEN json_valid(r.actions) THEN r.actions ELSE '{}' END) a"
        " WHERE a.key LIKE 'uses:%' AND json_extract(a.value, '$.sha') IS NOT NULL"
        " GROUP BY 1, 2, 3 ORDER BY 1, 5 DESC LIMIT 2000";
    sqlite3_stmt *stmt = NULL;
    json_t *list = json_array();
    int step, rc = -1;
    if (!list) {
        kiln_error_set("out of memory");
        return -1;
    }
    if (sqlite3_prepare_v2(self->db, sql, -1, &stmt, NULL) != SQLITE_OK) {
        kiln_hdb_sql_error(self, "actions used");
        goto cleanup;
    }
    while ((step = sqlite3_step(stmt)) == SQLITE_ROW) {
        json_t *row = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I}", "uses",
                                (const char *)sqlite3_column_text(stmt, 0), "url",
                                sqlite3_column_text(stmt, 1)
                                    ? (const char *)sqlite3_column_text(stmt, 1)
                                    : "",
                                "sha", (const char *)sqlite3_column_text(stmt, 2), "runs",
                                (json_int_t)sqlite3_column_int64(stmt, 3), "last_run",
                                (json_int_t)sqlite3_column_int64(stmt, 4), "last_ms",
                                (json_int_t)sqlite3_column_int64(stmt, 5));
        if (!row || json_array_append_new(list, row) != 0) {
            kiln_error_set("out of memory");
            goto cleanup;
        }
    }
    if (step != SQLITE_DONE) {
        kiln_hdb_sql_error(self, "actions used");
        goto cleanup;
    }
    *out = list;
    list = NULL;
    rc = 0;
cleanup:
    sqlite3_finalize(stmt);
    json_decref(list);
    return rc;
}

int kiln_history_run_extras(kiln_history_t *self, int64_t run_id, json_t *run)
{
    return kiln_document_run_extras(self, run_id, run);
}

/* ---- logs -------------------------------------------------------------- */

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
        kiln_hdb_sql_error(self, "logs of run %lld", (long long)run_id);
        goto cleanup;
    }
    while ((step = sqlite3_step(stmt)) == SQLITE_ROW) {
        const char *chunk_job = (const char *)sqlite3_column_text(stmt, 0);
        const void *data = sqlite3_column_blob(stmt, 4);
        int len = sqlite3_column_bytes(stmt, 4);
        if (chunk_job == NULL || (data == NULL && len > 0)) {
            rc = kiln_hdb_oom();
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
        kiln_hdb_sql_error(self, "logs of run %lld", (long long)run_id);
        goto cleanup;
    }
    rc = 0;
cleanup:
    sqlite3_finalize(stmt);
    return rc;
}

/* ---- recovery: what a restarted coordinator reads back ----------------- */

/* Prepared per call: recovery runs once at start-up, off every hot path.
 * The WHERE matches runs_active's, so SQLite reads the few unfinished runs
 * from that index instead of every row (and every workflow text) of runs. */
int kiln_history_active_runs(kiln_history_t *self, kiln_history_active_fn fn, void *ctx)
{
    static const char sql[] = "SELECT id, name, file, yaml, created_ms, inputs, actions, matrices,"
                              " event, actor, source FROM runs"
                              " WHERE state = 'running' ORDER BY id";
    int rc = -1, step;
    sqlite3_stmt *stmt = NULL;
    assert(self);
    assert(fn);
    if (sqlite3_prepare_v2(self->db, sql, -1, &stmt, NULL) != SQLITE_OK) {
        kiln_hdb_sql_error(self, "active runs");
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
            .event = (const char *)sqlite3_column_text(stmt, 8),
            .actor = (const char *)sqlite3_column_text(stmt, 9),
            .source = (const char *)sqlite3_column_text(stmt, 10),
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
        kiln_hdb_sql_error(self, "active runs");
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
        kiln_hdb_sql_error(self, "job %lld/%s", (long long)run_id, job_id);
        goto cleanup;
    }
    step = sqlite3_step(stmt);
    if (step == SQLITE_DONE) {
        kiln_error_set("history: no job %lld/%s", (long long)run_id, job_id);
        rc = KILN_ENOTFOUND;
        goto cleanup;
    }
    if (step != SQLITE_ROW) {
        kiln_hdb_sql_error(self, "job %lld/%s", (long long)run_id, job_id);
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

int kiln_history_output_bytes(kiln_history_t *self, int64_t run_id, const char *job_id,
                              unsigned attempt, uint64_t *out)
{
    static const char sql[] = "SELECT coalesce(sum(length(data)), 0) FROM logs"
                              " WHERE run_id = ?1 AND job_id = ?2 AND attempt = ?3"
                              " AND stream IN (0, 1)";
    sqlite3_stmt *stmt = NULL;
    int rc = -1;
    *out = 0;
    if (sqlite3_prepare_v2(self->db, sql, -1, &stmt, NULL) != SQLITE_OK ||
        sqlite3_bind_int64(stmt, 1, run_id) != SQLITE_OK ||
        sqlite3_bind_text(stmt, 2, job_id, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_int64(stmt, 3, attempt) != SQLITE_OK || sqlite3_step(stmt) != SQLITE_ROW) {
        kiln_hdb_sql_error(self, "output of %lld/%s", (long long)run_id, job_id);
        goto cleanup;
    }
    *out = (uint64_t)sqlite3_column_int64(stmt, 0);
    rc = 0;
cleanup:
    sqlite3_finalize(stmt);
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
        return kiln_hdb_oom();
    if (sqlite3_prepare_v2(self->db, sql, -1, &stmt, NULL) != SQLITE_OK ||
        sqlite3_bind_int64(stmt, 1, run_id) != SQLITE_OK) {
        kiln_hdb_sql_error(self, "outputs of run %lld", (long long)run_id);
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

/* ---- the scheduler's duration estimates -------------------------------- */

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
    sqlite3_stmt *stmt = self->stmt[KILN_HISTORY_STMT_DURATIONS];
    if ((rc = kiln_hdb_check_key("workflow", workflow, KILN_HISTORY_NAME_MAX)) != 0)
        goto cleanup;
    rc = -1;
    if (sqlite3_bind_text(stmt, 1, workflow, -1, SQLITE_STATIC) != SQLITE_OK) {
        kiln_hdb_sql_error(self, "durations of %s", workflow);
        goto cleanup;
    }
    while ((step = sqlite3_step(stmt)) == SQLITE_ROW) {
        const char *job_id = (const char *)sqlite3_column_text(stmt, 0);
        sqlite3_int64 samples = sqlite3_column_int64(stmt, 2);
        if (job_id == NULL) {
            rc = kiln_hdb_oom();
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
        kiln_hdb_sql_error(self, "durations of %s", workflow);
        goto cleanup;
    }
    rc = 0;
cleanup:
    kiln_hdb_reset(stmt);
    return rc;
}
