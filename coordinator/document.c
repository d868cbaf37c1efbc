/* document.c: the JSON documents of runs (see document.h for their shapes).
 *
 * Why a module of its own: the store (history_*.c) knows tables and rows,
 * the client protocol knows requests and replies, and neither should decide
 * what a run looks like to a user. Here each document has one builder, made
 * of one function per object (run, job, attempt, step, annotation, summary),
 * fed by the store's row walkers; nested objects come from nested walks
 * (a job's attempts are read while the job's row is current), so a document
 * is read in one pass without copying rows.
 *
 * Every allocation and every insertion is checked: a document that cannot be
 * built whole is an error ("history: out of memory"), never a document with
 * holes. Stored data that cannot be shown faithfully is an error too (needs
 * that are not a JSON array), except text that is not UTF-8, which is shown
 * with U+FFFD so that one bad byte from a worker does not hide a whole run.
 */
#include "coordinator/document.h"

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"

static int s_oom(void)
{
    kiln_error_set("history: out of memory");
    return -1;
}

/* ---- values ------------------------------------------------------------ */

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
 * make a whole run unreadable: bytes that are not UTF-8 become U+FFFD. NULL
 * on allocation failure. */
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

/* A stored text as a JSON string, null when not set; NULL on allocation
 * failure. */
static json_t *s_text(kiln_history_text_t text)
{
    if (text.ptr == NULL)
        return json_null();
    return s_json_text(text.ptr, text.len);
}

/* A stored integer as a JSON integer, null when not set. */
static json_t *s_int(kiln_history_int_t value)
{
    if (!value.set)
        return json_null();
    return json_integer((json_int_t)value.value);
}

static json_t *s_int64(int64_t value)
{
    return json_integer((json_int_t)value);
}

/* finished - started, or null while either is unknown, or when the end
 * recorded is older than the start (a job retried after it was finished). */
static json_t *s_duration(kiln_history_int_t started, kiln_history_int_t finished)
{
    if (!started.set || !finished.set || finished.value < started.value)
        return json_null();
    return json_integer((json_int_t)(finished.value - started.value));
}

/* Stored needs/runs_on text back to an array (none stored: empty). NULL
 * when the text is not a JSON array, or on allocation failure. */
static json_t *s_list(const char *text)
{
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

/* json_array_append_new likewise. */
static int s_append(json_t *array, json_t *value)
{
    if (json_array_append_new(array, value) != 0)
        return s_oom();
    return 0;
}

/* ---- kiln history: the list of runs ------------------------------------ */

/* The fields every run object starts with, in both documents. */
static int s_run_fields(json_t *run, const kiln_history_run_rec_t *rec)
{
    if (s_set(run, "id", s_int64(rec->id)) != 0 || s_set(run, "name", s_text(rec->name)) != 0
        || s_set(run, "file", s_text(rec->file)) != 0
        || s_set(run, "state", s_text(rec->state)) != 0
        || s_set(run, "created_ms", s_int64(rec->created_ms)) != 0
        || s_set(run, "finished_ms", s_int(rec->finished_ms)) != 0)
        return -1;
    return 0;
}

/* Appends one run of the list to the array ctx. */
static int s_on_listed_run(void *ctx, const kiln_history_run_rec_t *rec)
{
    json_t *runs = ctx;
    json_t *run = json_object();
    kiln_history_int_t created = {rec->created_ms, true};
    if (run == NULL)
        return s_oom();
    if (s_run_fields(run, rec) != 0
        || s_set(run, "duration_ms", s_duration(created, rec->finished_ms)) != 0
        || s_set(run, "jobs", s_int64(rec->n_jobs)) != 0
        || s_set(run, "failed", s_int64(rec->n_failed)) != 0) {
        json_decref(run);
        return -1;
    }
    return s_append(runs, run);
}

int kiln_document_runs(kiln_history_t *history, unsigned limit, json_t **out)
{
    int rc = -1;
    json_t *runs = NULL;
    assert(history);
    assert(out);
    *out = NULL;
    runs = json_array();
    if (runs == NULL) {
        rc = s_oom();
        goto cleanup;
    }
    if ((rc = kiln_history_runs_each(history, limit, s_on_listed_run, runs)) != 0)
        goto cleanup;
    *out = runs;
    runs = NULL;
cleanup:
    json_decref(runs);
    return rc;
}

/* ---- kiln status: one run ---------------------------------------------- */

/* Appends one attempt object to the array ctx. */
static int s_on_attempt(void *ctx, const kiln_history_attempt_rec_t *rec)
{
    json_t *attempts = ctx;
    json_t *attempt = json_object();
    if (attempt == NULL)
        return s_oom();
    if (s_set(attempt, "attempt", s_int64(rec->attempt)) != 0
        || s_set(attempt, "token", s_int(rec->token)) != 0
        || s_set(attempt, "worker", s_text(rec->worker)) != 0
        || s_set(attempt, "worker_key", s_text(rec->worker_key)) != 0
        || s_set(attempt, "state", s_text(rec->state)) != 0
        || s_set(attempt, "message", s_text(rec->message)) != 0
        || (rec->placement.ptr && s_set(attempt, "placement", s_text(rec->placement)) != 0)
        || s_set(attempt, "started_ms", s_int(rec->started_ms)) != 0
        || s_set(attempt, "finished_ms", s_int(rec->finished_ms)) != 0) {
        json_decref(attempt);
        return -1;
    }
    return s_append(attempts, attempt);
}

/* Appends one step object to the array ctx. */
static int s_on_step(void *ctx, const kiln_history_step_rec_t *rec)
{
    json_t *steps = ctx;
    json_t *step = json_object();
    if (step == NULL)
        return s_oom();
    if (s_set(step, "attempt", s_int64(rec->attempt)) != 0
        || s_set(step, "index", s_int64(rec->index)) != 0
        || s_set(step, "name", s_text(rec->name)) != 0
        || s_set(step, "state", s_text(rec->state)) != 0
        || s_set(step, "exit_code", s_int(rec->exit_code)) != 0
        || s_set(step, "signal", s_int(rec->signal)) != 0
        || s_set(step, "started_ms", s_int(rec->started_ms)) != 0
        || s_set(step, "finished_ms", s_int(rec->finished_ms)) != 0
        || s_set(step, "duration_ms", s_duration(rec->started_ms, rec->finished_ms)) != 0) {
        json_decref(step);
        return -1;
    }
    return s_append(steps, step);
}

typedef struct {
    kiln_history_t *history;
    int64_t run_id;
    json_t *jobs; /* the run's "jobs" array, being filled */
} s_jobs_ctx_t;

/* The job's stored needs and runs_on, as arrays. */
static int s_job_lists(json_t *job, const kiln_history_job_rec_t *rec, int64_t run_id)
{
    const char *keys[2] = {"needs", "runs_on"};
    const char *texts[2] = {rec->needs, rec->runs_on};
    for (int i = 0; i < 2; i++) {
        json_t *list = s_list(texts[i]);
        if (list == NULL) {
            kiln_error_set("history: job %s of run %lld: stored %s is not a JSON array",
                           rec->job_id, (long long)run_id, keys[i]);
            return -1;
        }
        if (s_set(job, keys[i], list) != 0)
            return -1;
    }
    return 0;
}

/* The job's attempts and steps, read while its row is current. */
static int s_job_children(json_t *job, const kiln_history_job_rec_t *rec, s_jobs_ctx_t *c)
{
    int rc = -1;
    json_t *attempts = json_array();
    json_t *steps = json_array();
    if (attempts == NULL || steps == NULL) {
        rc = s_oom();
        goto cleanup;
    }
    if ((rc = kiln_history_attempts_each(c->history, c->run_id, rec->job_id, s_on_attempt,
                                         attempts)) != 0
        || (rc = kiln_history_steps_each(c->history, c->run_id, rec->job_id, s_on_step, steps))
               != 0)
        goto cleanup;
    rc = s_set(job, "attempts", attempts);
    attempts = NULL;
    if (rc != 0)
        goto cleanup;
    rc = s_set(job, "steps", steps);
    steps = NULL;
cleanup:
    json_decref(attempts);
    json_decref(steps);
    return rc;
}

/* Appends one job object, with its attempts and steps, to c->jobs. */
static int s_on_job(void *ctx, const kiln_history_job_rec_t *rec)
{
    s_jobs_ctx_t *c = ctx;
    int rc = -1;
    json_t *job = json_object();
    if (job == NULL)
        return s_oom();
    if (s_set(job, "id", s_text(rec->id)) != 0 || s_set(job, "name", s_text(rec->name)) != 0
        || s_set(job, "state", s_text(rec->state)) != 0
        || s_set(job, "attempt", s_int64(rec->attempt)) != 0
        || s_set(job, "worker", s_text(rec->worker)) != 0
        || s_set(job, "started_ms", s_int(rec->started_ms)) != 0
        || s_set(job, "finished_ms", s_int(rec->finished_ms)) != 0
        || s_set(job, "duration_ms", s_duration(rec->started_ms, rec->finished_ms)) != 0
        || s_job_lists(job, rec, c->run_id) != 0)
        goto cleanup;
    /* Outputs that are not JSON (never written so) show as none. */
    json_t *outputs = rec->outputs ? json_loads(rec->outputs, 0, NULL) : NULL;
    if (s_set(job, "outputs", outputs ? outputs : json_object()) != 0)
        goto cleanup;
    if ((rc = s_job_children(job, rec, c)) != 0)
        goto cleanup;
    rc = s_append(c->jobs, job);
    job = NULL;
cleanup:
    json_decref(job);
    return rc;
}

typedef struct {
    kiln_history_t *history;
    json_t *run; /* the document, once its row is read */
} s_run_ctx_t;

/* Builds the run object and its jobs while the run's row is current. */
static int s_on_run(void *ctx, const kiln_history_run_rec_t *rec)
{
    s_run_ctx_t *c = ctx;
    int rc = -1;
    json_t *run = json_object();
    s_jobs_ctx_t jobs = {c->history, rec->id, json_array()};
    if (run == NULL || jobs.jobs == NULL) {
        rc = s_oom();
        goto cleanup;
    }
    if (s_run_fields(run, rec) != 0)
        goto cleanup;
    /* Which repository and commit: the fields a reader looks for, not the
     * commit message. */
    if (rec->source.ptr) {
        json_t *src = json_loadb(rec->source.ptr, rec->source.len, 0, NULL);
        json_t *shown = src ? json_pack("{s:O?, s:O?, s:O?, s:O?, s:b}", "url",
                                        json_object_get(src, "url"), "repository",
                                        json_object_get(src, "repository"), "ref",
                                        json_object_get(src, "ref"), "sha",
                                        json_object_get(src, "sha"), "dirty",
                                        json_is_true(json_object_get(src, "dirty")))
                            : NULL;
        json_decref(src);
        if (shown && s_set(run, "source", shown) != 0)
            goto cleanup;
    }
    /* The commits its remote actions resolved to, for an audit. */
    if (rec->pins.ptr) {
        json_t *pins = json_loadb(rec->pins.ptr, rec->pins.len, 0, NULL);
        if (json_array_size(pins) && s_set(run, "actions", pins) != 0)
            goto cleanup;
        if (!json_array_size(pins))
            json_decref(pins);
    }
    if ((rc = kiln_history_jobs_each(c->history, rec->id, s_on_job, &jobs)) != 0)
        goto cleanup;
    rc = s_set(run, "jobs", jobs.jobs);
    jobs.jobs = NULL;
    if (rc != 0)
        goto cleanup;
    c->run = run;
    run = NULL;
cleanup:
    json_decref(jobs.jobs);
    json_decref(run);
    return rc;
}

int kiln_document_run(kiln_history_t *history, int64_t run_id, json_t **out)
{
    int rc = -1;
    s_run_ctx_t c = {history, NULL};
    assert(history);
    assert(out);
    *out = NULL;
    if ((rc = kiln_history_run_read(history, run_id, s_on_run, &c)) != 0)
        goto cleanup;
    if ((rc = kiln_document_run_extras(history, run_id, c.run)) != 0)
        goto cleanup;
    *out = c.run;
    c.run = NULL;
cleanup:
    json_decref(c.run);
    return rc;
}

/* ---- what a run's jobs reported besides their state -------------------- */

/* Appends one annotation object to the array ctx. */
static int s_on_annotation(void *ctx, const kiln_history_annotation_rec_t *rec)
{
    json_t *annotations = ctx;
    json_t *a = json_object();
    if (a == NULL)
        return s_oom();
    if (s_set(a, "job", s_text(rec->job_id)) != 0
        || s_set(a, "attempt", s_int64(rec->attempt)) != 0
        || s_set(a, "step", s_int(rec->step)) != 0 || s_set(a, "level", s_text(rec->level)) != 0
        || s_set(a, "message", s_text(rec->message)) != 0
        || s_set(a, "title", s_text(rec->title)) != 0 || s_set(a, "file", s_text(rec->file)) != 0
        || s_set(a, "line", s_int(rec->line)) != 0 || s_set(a, "col", s_int(rec->col)) != 0) {
        json_decref(a);
        return -1;
    }
    return s_append(annotations, a);
}

/* Appends one summary object to the array ctx. */
static int s_on_summary(void *ctx, const kiln_history_summary_rec_t *rec)
{
    json_t *summaries = ctx;
    json_t *m = json_object();
    if (m == NULL)
        return s_oom();
    if (s_set(m, "job", s_text(rec->job_id)) != 0
        || s_set(m, "attempt", s_int64(rec->attempt)) != 0
        || s_set(m, "markdown", s_text(rec->markdown)) != 0) {
        json_decref(m);
        return -1;
    }
    return s_append(summaries, m);
}

int kiln_document_run_extras(kiln_history_t *history, int64_t run_id, json_t *run)
{
    int rc = -1;
    json_t *annotations = json_array();
    json_t *summaries = json_array();
    assert(history);
    assert(run);
    if (annotations == NULL || summaries == NULL) {
        rc = s_oom();
        goto cleanup;
    }
    if ((rc = kiln_history_annotations_each(history, run_id, s_on_annotation, annotations)) != 0
        || (rc = kiln_history_summaries_each(history, run_id, s_on_summary, summaries)) != 0)
        goto cleanup;
    /* Both or neither: a document never shows one without the other. */
    if (json_object_set(run, "annotations", annotations) != 0) {
        rc = s_oom();
        goto cleanup;
    }
    if (json_object_set(run, "summaries", summaries) != 0) {
        json_object_del(run, "annotations");
        rc = s_oom();
        goto cleanup;
    }
    rc = 0;
cleanup:
    json_decref(annotations);
    json_decref(summaries);
    return rc;
}
