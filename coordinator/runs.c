/* runs.c: the coordinator's run and job table.
 *
 * A run is a parsed workflow (shared with the runs of the same text:
 * models.c), its graph (lang/rungraph.h: every job's state, what runs
 * next) and, per job of the graph, the coordinator's own record
 * (kiln_cjob_t: key, labels, lease, worker). kiln_runs_create is the one
 * way a run comes to be, for a submission and for recovery alike; after
 * anything that moves a run, kiln_runs_advance applies what its graph
 * decided: rows for new jobs, ready jobs to Redis and the ready list, jobs
 * that ended without running recorded with their reason, running jobs told
 * to stop. A run whose graph is done ends in kiln_runs_sweep (called after
 * every burst and timer), so no path can leave it running.
 */
#include "coordinator/coord.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/clock.h"
#include "common/error.h"
#include "common/log.h"
#include "lang/expr.h"
#include "lang/source.h"

/* ------------------------------------------------------------- lookups */

kiln_crun_t *kiln_runs_find(kiln_server_t *self, int64_t id)
{
    for (size_t i = 0; i < self->n_runs; i++)
        if (self->runs[i]->id == id)
            return self->runs[i];
    return NULL;
}

kiln_cjob_t *kiln_runs_find_job(kiln_server_t *self, const char *key)
{
    char *end = NULL;
    long long run_id = strtoll(key, &end, 10);
    if (!end || *end != '/')
        return NULL;
    kiln_crun_t *run = kiln_runs_find(self, run_id);
    if (!run)
        return NULL;
    long idx = kiln_rungraph_find(run->graph, end + 1);
    return idx < 0 || (size_t)idx >= run->n_jobs ? NULL : run->jobs[idx];
}

const kiln_plan_job_t *kiln_runs_plan(const kiln_cjob_t *job)
{
    return kiln_rungraph_job(job->run->graph, job->idx);
}

kiln_job_state_t kiln_runs_state(const kiln_cjob_t *job)
{
    return kiln_rungraph_state(job->run->graph, job->idx);
}

const kiln_job_t *kiln_runs_spec(const kiln_cjob_t *job)
{
    return kiln_rungraph_spec(job->run->graph, job->idx);
}

/* Duration history is keyed by workflow name and job id. */
const char *kiln_runs_workflow_key(const kiln_crun_t *run)
{
    return run->wf->name ? run->wf->name : run->file;
}

/* ------------------------------------------------------------- labels */

static int s_strcmp_p(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The canonical key of a label set: sorted, lower-case, comma-joined. */
static void s_labels_key(const kiln_plan_job_t *plan, char *out, size_t cap)
{
    char *sorted[KILN_PLAN_MAX_LABELS];
    size_t n = plan->n_labels < KILN_PLAN_MAX_LABELS ? plan->n_labels : KILN_PLAN_MAX_LABELS;
    for (size_t i = 0; i < n; i++)
        sorted[i] = plan->labels[i];
    qsort(sorted, n, sizeof *sorted, s_strcmp_p);
    size_t o = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n && o < cap; i++) {
        int w = snprintf(out + o, cap - o, "%s%s", i ? "," : "", sorted[i]);
        if (w < 0)
            break;
        o += (size_t)w;
    }
    for (char *c = out; *c; c++)
        *c = (char)tolower((unsigned char)*c);
}

/* A run's jobs share a handful of label sets: each key is kept once per run,
 * in a list freed with it (the job points into it). */
struct kiln_label_set {
    struct kiln_label_set *next;
    char key[];
};
typedef struct kiln_label_set s_label_set_t;

static const char *s_labels_intern(const char *key, s_label_set_t **list)
{
    for (s_label_set_t *l = *list; l; l = l->next)
        if (strcmp(l->key, key) == 0)
            return l->key;
    size_t n = strlen(key) + 1;
    s_label_set_t *l = malloc(sizeof *l + n);
    if (!l)
        return NULL;
    memcpy(l->key, key, n);
    l->next = *list;
    *list = l;
    return l->key;
}

/* ------------------------------------------------------------- the table */

static kiln_cjob_t *s_job_new(kiln_crun_t *run, size_t idx)
{
    const kiln_plan_job_t *plan = kiln_rungraph_job(run->graph, idx);
    char num[24];
    int nl = snprintf(num, sizeof num, "%lld/", (long long)run->id);
    size_t klen = (size_t)nl + strlen(plan->id) + 1;
    kiln_cjob_t *job = calloc(1, sizeof *job + klen);
    if (!job)
        return NULL;
    job->run = run;
    job->idx = idx;
    job->key = (char *)(job + 1);
    snprintf(job->key, klen, "%s%s", num, plan->id);
    return job;
}

void kiln_runs_set_worker_name(kiln_cjob_t *job, const char *name)
{
    if (job->worker_name && strcmp(job->worker_name, name) == 0)
        return;
    char *copy = strdup(name);
    if (!copy) {
        kiln_log_error("job %s: out of memory for its worker's name", job->key);
        return; /* the old name stays: a re-adoption by name may then fail */
    }
    free(job->worker_name);
    job->worker_name = copy;
}

void kiln_runs_free(kiln_crun_t **run_p)
{
    kiln_crun_t *run = *run_p;
    if (!run)
        return;
    for (size_t i = 0; i < run->n_jobs; i++) {
        free(run->jobs[i]->worker_name);
        free(run->jobs[i]->hold_for);
        free(run->jobs[i]);
    }
    free(run->jobs);
    s_label_set_t *l = run->label_sets;
    while (l) {
        s_label_set_t *next = l->next;
        free(l);
        l = next;
    }
    kiln_rungraph_destroy(&run->graph);
    kiln_model_release(&run->model);
    free(run->file);
    json_decref(run->inputs);
    json_decref(run->source);
    json_decref(run->github);
    json_decref(run->replay_outputs);
    free(run->ready);
    free(run);
    *run_p = NULL;
}

int kiln_runs_create(kiln_server_t *self, kiln_crun_t **out, kiln_model_t **model_p,
                     const char *file, json_t *inputs, const char *event, const char *actor,
                     const json_t *source, int64_t id, int64_t created_ms)
{
    kiln_crun_t *run = calloc(1, sizeof *run);
    *out = NULL;
    if (!run) {
        kiln_model_release(model_p);
        goto oom;
    }
    run->id = id;
    run->created_ms = created_ms;
    snprintf(run->actor, sizeof run->actor, "%s", actor);
    snprintf(run->event, sizeof run->event, "%s", event && event[0] ? event : "push");
    run->model = *model_p;
    *model_p = NULL;
    run->wf = kiln_model_workflow(run->model);
    run->file = strdup(file);
    run->inputs = inputs ? json_incref(inputs) : json_object();
    if (!run->file || !run->inputs)
        goto oom;
    if (source && !(run->source = json_deep_copy(source)))
        goto oom;
    /* What its repository and event put in the github context, once for
     * all its jobs. */
    if (!(run->github = kiln_source_github(run->source, run->event, run->actor, run->file,
                                           run->inputs)))
        goto oom;
    kiln_contexts_t c = {
        .run_id = id,
        .workflow = run->wf->name,
        .actor = run->actor,
        .event_name = run->event,
        .inputs = run->inputs,
        .vars = self->vars,
        .github = run->github,
    };
    if (kiln_rungraph_new(&run->graph, run->wf, &c) != 0)
        goto oom;
    /* The workflow's concurrency group: github, inputs and vars only. */
    if (run->wf->concurrency_group) {
        json_t *ctx = json_pack("{s:{s:s, s:s}, s:O, s:O}", "github", "workflow", run->wf->name,
                                "event_name", c.event_name, "inputs", run->inputs, "vars",
                                self->vars ? self->vars : json_null());
        kiln_expr_env_t env = {ctx, KILN_EXPR_SUCCESS, NULL, NULL};
        char *group = NULL, err[512];
        json_t *cancel = NULL;
        int rc = kiln_expr_interpolate(run->wf->concurrency_group, &env, &group, err, sizeof err);
        if (rc == 0 && run->wf->cancel_in_progress &&
            !(cancel = kiln_plan_value(run->wf->cancel_in_progress, ctx, err, sizeof err)))
            rc = KILN_EINVAL;
        json_decref(ctx);
        if (rc != 0) {
            kiln_error_set("%s: concurrency: %s", file, err);
            free(group);
            kiln_runs_free(&run);
            return KILN_EINVAL;
        }
        const char *cs = json_string_value(cancel);
        run->cancel_in_progress = cancel && kiln_expr_truthy(cancel) && !(cs && strcmp(cs, "false") == 0);
        json_decref(cancel);
        snprintf(run->group, sizeof run->group, "%s", group);
        free(group);
    }
    *out = run;
    return 0;
oom:
    kiln_runs_free(&run);
    kiln_error_set("coordinator out of memory");
    return -1;
}

void kiln_runs_add(kiln_server_t *self, kiln_crun_t *run)
{
    /* The caller checked KILN_SERVER_MAX_RUNS; the array grows ahead. */
    if (self->n_runs == self->cap_runs) {
        size_t ncap = self->cap_runs ? self->cap_runs * 2 : 16;
        kiln_crun_t **grown = realloc(self->runs, ncap * sizeof *grown);
        if (!grown) {
            kiln_log_error("run %lld: out of memory for the run table", (long long)run->id);
            return;
        }
        self->runs = grown;
        self->cap_runs = ncap;
    }
    self->runs[self->n_runs++] = run;
}

/* ------------------------------------------------------- the ready list */

/* Whether ready job a should start before b. Ties go to workflow order, so
 * equal ranks keep the order users wrote. */
static bool s_ready_before(const kiln_server_t *self, const kiln_cjob_t *a, const kiln_cjob_t *b)
{
    if (self->policy == KILN_SCHEDULER_CRITICAL_PATH && a->rank != b->rank)
        return a->rank > b->rank;
    if (a->ready_seq != b->ready_seq)
        return a->ready_seq < b->ready_seq;
    return a->idx < b->idx;
}

/* Into its run's ready array, kept sorted worst first. A job handed back
 * (front) comes before everything that was ready when it was first queued,
 * for FIFO; under critical path its rank decides. */
void kiln_runs_ready_append(kiln_server_t *self, kiln_cjob_t *job, bool front)
{
    kiln_crun_t *run = job->run;
    if (job->in_ready)
        return;
    if (run->n_ready == run->cap_ready) {
        size_t ncap = run->cap_ready ? run->cap_ready * 2 : 16;
        kiln_cjob_t **grown = realloc(run->ready, ncap * sizeof *grown);
        if (!grown) {
            /* Stays ready in the graph and Redis; reconcile finds it. */
            kiln_log_error("job %s: out of memory for the ready queue", job->key);
            self->redis_dirty = true;
            return;
        }
        run->ready = grown;
        run->cap_ready = ncap;
    }
    job->ready_seq = front ? -(++self->ready_seq) : ++self->ready_seq;
    size_t lo = 0, hi = run->n_ready;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s_ready_before(self, run->ready[mid], job))
            hi = mid;
        else
            lo = mid + 1;
    }
    memmove(&run->ready[lo + 1], &run->ready[lo], (run->n_ready - lo) * sizeof *run->ready);
    run->ready[lo] = job;
    run->n_ready++;
    job->in_ready = true;
    self->n_ready++;
}

void kiln_runs_ready_remove(kiln_server_t *self, kiln_cjob_t *job)
{
    kiln_crun_t *run = job->run;
    if (!job->in_ready)
        return;
    /* Most removals are the best job, at the end. */
    for (size_t i = run->n_ready; i-- > 0;) {
        if (run->ready[i] == job) {
            memmove(&run->ready[i], &run->ready[i + 1],
                    (run->n_ready - i - 1) * sizeof *run->ready);
            run->n_ready--;
            break;
        }
    }
    job->in_ready = false;
    self->n_ready--;
}

/* ------------------------------------------------------------- ranking */

typedef struct {
    const kiln_crun_t *run;
    int64_t *est;
} s_estimates_t;

static int s_on_estimate(void *ctx, const char *job_id, int64_t estimate_ms, unsigned samples)
{
    s_estimates_t *e = ctx;
    (void)samples;
    long idx = kiln_rungraph_find(e->run->graph, job_id);
    if (idx >= 0)
        e->est[idx] = estimate_ms < 0 ? 0 : estimate_ms;
    return 0;
}

/* Ranks every job of a run by its critical path (scheduler.h), from the
 * workflow's duration history. Without memory every rank stays 0 and the
 * order falls back to FIFO: a slower schedule, not a wrong one. */
void kiln_runs_rank(kiln_server_t *self, kiln_crun_t *run)
{
    size_t n = kiln_rungraph_size(run->graph);
    s_estimates_t e = {run, malloc((n ? n : 1) * sizeof(int64_t))};
    int64_t *rank = malloc((n ? n : 1) * sizeof *rank);
    run->rank_stale = false;
    if (!e.est || !rank || self->policy != KILN_SCHEDULER_CRITICAL_PATH)
        goto cleanup;
    for (size_t i = 0; i < n; i++)
        e.est[i] = -1;
    if (kiln_history_durations(self->history, kiln_runs_workflow_key(run), s_on_estimate, &e) != 0)
        kiln_log_warn("run %lld: no duration history: %s", (long long)run->id,
                      kiln_error_last());
    kiln_scheduler_fill_estimates(e.est, n);
    kiln_scheduler_ranks(run->graph, e.est, rank);
    for (size_t i = 0; i < n && i < run->n_jobs; i++) {
        kiln_cjob_t *job = run->jobs[i];
        if (job->rank == rank[i])
            continue;
        /* A ready job moves to its new place. */
        bool was = job->in_ready;
        if (was)
            kiln_runs_ready_remove(self, job);
        job->rank = rank[i];
        if (was)
            kiln_runs_ready_append(self, job, false);
    }
cleanup:
    free(e.est);
    free(rank);
}

/* ------------------------------------------------- applying the graph */

/* Tells the worker running a job's current attempt to stop it; the job
 * ends when its result comes back. */
void kiln_runs_send_cancel(kiln_server_t *self, kiln_cjob_t *job)
{
    Kiln__Envelope env = KILN__ENVELOPE__INIT;
    Kiln__CancelJob c = KILN__CANCEL_JOB__INIT;
    c.job_key = job->key;
    c.token = job->token;
    env.body_case = KILN__ENVELOPE__BODY_CANCEL;
    env.cancel = &c;
    job->cancel_sent = true;
    job->cancel_deadline = kiln_clock_mono_ms() + KILN_SERVER_CANCEL_GRACE_MS + self->cfg.lease_ms;
    kiln_server_send(self, job->worker->identity, job->worker->id_len, &env);
}

static void s_history_failed(const char *what)
{
    kiln_log_error("history: %s: %s", what, kiln_error_last());
}

/* A job the graph made: its row. */
static void s_added(kiln_server_t *self, kiln_crun_t *run, size_t idx)
{
    if (idx >= run->cap_jobs) {
        size_t ncap = run->cap_jobs ? run->cap_jobs * 2 : 16;
        while (ncap <= idx)
            ncap *= 2;
        kiln_cjob_t **grown = realloc(run->jobs, ncap * sizeof *grown);
        if (!grown) {
            kiln_log_error("run %lld: out of memory for its jobs", (long long)run->id);
            return;
        }
        run->jobs = grown;
        run->cap_jobs = ncap;
    }
    kiln_cjob_t *job = s_job_new(run, idx);
    if (!job) {
        kiln_log_error("run %lld: out of memory for its jobs", (long long)run->id);
        return;
    }
    /* The graph hands jobs out in order. */
    run->jobs[run->n_jobs++] = job;
    run->rank_stale = true;
    kiln_history_job_row_t row;
    if (run->replaying && kiln_history_job_get(self->history, run->id, job->key + strcspn(job->key, "/") + 1, &row) == 0)
        return; /* recorded before the restart */
    const kiln_plan_job_t *plan = kiln_rungraph_job(run->graph, idx);
    const char *needs[64];
    size_t n_needs = kiln_rungraph_needs(run->graph, idx, needs, 64);
    if (kiln_history_job_create(self->history, run->id, plan->id, plan->name, needs, n_needs,
                                (const char *const *)plan->labels,
                                plan->finished ? plan->n_labels : 0) != 0)
        s_history_failed("job create");
    job->row_planned = plan->finished;
}

/* Pushes a ready job to Redis and the ready list, now that its concurrency
 * group lets it run. */
void kiln_runs_queue(kiln_server_t *self, kiln_cjob_t *job)
{
    kiln_crun_t *run = job->run;
    if (kiln_rungraph_is_call(run->graph, job->idx)) {
        /* A call its group lets through runs nowhere: its called workflow
         * starts, and holds the group until it ends. */
        job->group_wait = false;
        if (kiln_rungraph_start(run->graph, job->idx) != 0) {
            kiln_log_error("run %lld: %s", (long long)run->id, kiln_error_last());
            return;
        }
        if (kiln_history_job_set_state(self->history, run->id, kiln_runs_plan(job)->id, "running",
                                       0, NULL, kiln_clock_wall_ms(), 0) != 0)
            s_history_failed("call start");
        kiln_runs_advance(self, run);
        return;
    }
    int rc = kiln_queue_push(self->queue, job->key, job->labels, NULL, 0);
    if (rc == KILN_EINVAL) {
        /* Already queued (a recovered run): nothing to write. */
    } else if (rc != 0) {
        kiln_log_error("run %lld: %s", (long long)run->id, kiln_error_last());
        self->redis_dirty = true;
    }
    job->queued = true;
    job->group_wait = false;
    kiln_runs_ready_append(self, job, false);
    if (kiln_history_job_set_state(self->history, run->id, kiln_runs_plan(job)->id, "ready", 0,
                                   NULL, 0, 0) != 0)
        s_history_failed("job ready");
    kiln_watch_emit_job(self, job, KILN__EVENT_KIND__EVENT_JOB_QUEUED, 0);
}

/* A job the graph says may run. */
static void s_ready(kiln_server_t *self, kiln_crun_t *run, kiln_cjob_t *job)
{
    const kiln_plan_job_t *plan = kiln_runs_plan(job);
    char key[KILN_LABELS_KEY_MAX];
    s_labels_key(plan, key, sizeof key);
    job->labels = (char *)s_labels_intern(key, &run->label_sets);
    if (!job->labels) {
        kiln_log_error("job %s: out of memory for its labels", job->key);
        return;
    }
    if (run->replaying) {
        kiln_recovery_ready(self, run, job);
        return;
    }
    if (!job->row_planned) {
        if (kiln_history_job_plan(self->history, run->id, plan->id, plan->name,
                                  (const char *const *)plan->labels, plan->n_labels) != 0)
            s_history_failed("job plan");
    }
    job->row_planned = true;
    if (run->held)
        return; /* the whole run waits for its group: queued when admitted */
    if (plan->group && !kiln_concurrency_admit_job(self, job))
        return;
    kiln_runs_queue(self, job);
}

/* Records why a job ended without running where the user looks: its log,
 * and an annotation that kiln status and kiln run show. */
static void s_record_reason(kiln_server_t *self, kiln_crun_t *run, kiln_cjob_t *job,
                            const char *why, int64_t now)
{
    const kiln_plan_job_t *plan = kiln_runs_plan(job);
    char line[1024];
    int n = snprintf(line, sizeof line, "[kiln: %s]\n", why);
    if (n >= (int)sizeof line)
        n = (int)sizeof line - 1;
    kiln_log_info("job %s: %s", job->key, why);
    int hrc = kiln_history_log_append(self->history, run->id, plan->id, 0, 0, 2, line,
                                      (size_t)n, now);
    if (hrc == 0)
        hrc = kiln_history_annotation(self->history, run->id, plan->id, 0, 0, "error", why,
                                      "Kiln", NULL, 0, 0);
    if (hrc != 0)
        s_history_failed("job reason");
}

/* A job ended: leave the queue and the group, tell watchers, record. */
static void s_ended(kiln_server_t *self, kiln_crun_t *run, kiln_cjob_t *job, int64_t now)
{
    const kiln_plan_job_t *plan = kiln_runs_plan(job);
    kiln_job_state_t state = kiln_runs_state(job);
    if (job->in_ready) {
        kiln_runs_ready_remove(self, job);
        kiln_queue_drop(self->queue, job->key, job->labels, kiln_job_state_name(state));
    }
    job->queued = false;
    kiln_dispatch_unhold(self, job);
    if (kiln_history_job_set_state(self->history, run->id, plan->id, kiln_job_state_name(state),
                                   0, NULL, 0, now) != 0)
        s_history_failed("job state");
    if (!run->replaying) {
        const json_t *outs = kiln_rungraph_outputs(run->graph, job->idx);
        if (kiln_rungraph_is_call(run->graph, job->idx) && json_object_size(outs) &&
            kiln_history_job_outputs(self->history, run->id, plan->id, outs) != 0)
            s_history_failed("job outputs");
        const char *why = kiln_rungraph_message(run->graph, job->idx);
        if (why)
            s_record_reason(self, run, job, why, now);
        kiln_watch_emit_job(self, job, KILN__EVENT_KIND__EVENT_JOB_FINISHED,
                            job->started_ms ? now - job->started_ms : 0);
    }
    bool held_group = plan->group && !job->group_wait;
    job->group_wait = false;
    if (held_group)
        kiln_concurrency_release_job(self, plan->group);
}

/* A running job must stop (fail-fast, a run cancel). */
static void s_stop(kiln_server_t *self, kiln_crun_t *run, kiln_cjob_t *job, int64_t now)
{
    if (kiln_runs_state(job) != KILN_JOB_RUNNING)
        return;
    if (job->worker) {
        if (!job->cancel_sent)
            kiln_runs_send_cancel(self, job);
        return;
    }
    /* An orphan lease has no worker to tell, and a job handed back for
     * another attempt none yet: both end now. */
    kiln_queue_finish(self->queue, job->key, job->token, "cancelled");
    if (job->attempt) {
        if (kiln_history_attempt_finish(self->history, run->id, kiln_runs_plan(job)->id,
                                        job->attempt, "cancelled", NULL, now) != 0)
            s_history_failed("attempt finish");
    }
    kiln_runs_job_final(self, job, KILN_JOB_CANCELLED, now, NULL);
}

void kiln_runs_advance(kiln_server_t *self, kiln_crun_t *run)
{
    kiln_rg_change_t ch[256];
    size_t n;
    bool own_batch = !self->in_batch;
    if (own_batch)
        kiln_queue_batch_begin(self->queue);
    if (kiln_history_begin(self->history) != 0)
        s_history_failed("begin");
    int64_t now = kiln_clock_wall_ms();
    while ((n = kiln_rungraph_advance(run->graph, ch, 256)) > 0) {
        for (size_t i = 0; i < n; i++) {
            size_t idx = ch[i].job;
            if (ch[i].kind == KILN_RG_ADDED) {
                s_added(self, run, idx);
                continue;
            }
            if (idx >= run->n_jobs)
                continue; /* its record could not be made (out of memory) */
            kiln_cjob_t *job = run->jobs[idx];
            switch (ch[i].kind) {
            case KILN_RG_READY: s_ready(self, run, job); break;
            case KILN_RG_FINAL: s_ended(self, run, job, now); break;
            case KILN_RG_STOP: s_stop(self, run, job, now); break;
            default: break;
            }
        }
    }
    if (run->rank_stale)
        kiln_runs_rank(self, run);
    if (own_batch && kiln_queue_batch_end(self->queue) != 0) {
        kiln_log_error("run %lld: %s", (long long)run->id, kiln_error_last());
        self->redis_dirty = true;
    }
    if (kiln_history_commit(self->history) != 0)
        s_history_failed("commit");
}

void kiln_runs_job_final(kiln_server_t *self, kiln_cjob_t *job, kiln_job_state_t state,
                         int64_t finished_ms, const json_t *outputs)
{
    kiln_crun_t *run = job->run;
    const kiln_plan_job_t *plan = kiln_runs_plan(job);
    if (kiln_rungraph_finish(run->graph, job->idx, state, outputs, false) != 0) {
        kiln_log_error("run %lld: %s", (long long)run->id, kiln_error_last());
        return;
    }
    if (kiln_history_job_set_state(self->history, run->id, plan->id, kiln_job_state_name(state),
                                   0, NULL, 0, finished_ms) != 0)
        s_history_failed("job state");
    /* What the scheduler will expect of this job next time. */
    if (state == KILN_JOB_SUCCESS && job->started_ms && finished_ms >= job->started_ms) {
        if (kiln_history_duration_record(self->history, kiln_runs_workflow_key(run), plan->id,
                                         finished_ms - job->started_ms) != 0)
            s_history_failed("duration");
    }
    if (job->in_ready)
        kiln_runs_ready_remove(self, job);
    job->queued = false;
    kiln_watch_emit_job(self, job, KILN__EVENT_KIND__EVENT_JOB_FINISHED,
                        job->started_ms ? finished_ms - job->started_ms : 0);
    if (plan->group && !job->group_wait)
        kiln_concurrency_release_job(self, plan->group);
    kiln_runs_advance(self, run);
}

void kiln_runs_cancel(kiln_server_t *self, kiln_crun_t *run, const char *actor,
                      const char *actor_key, const char *why)
{
    char detail[160];
    snprintf(detail, sizeof detail, "run %lld%s%s", (long long)run->id, why ? ": " : "",
             why ? why : "");
    if (kiln_history_audit(self->history, "run.cancel", actor, actor_key, detail,
                           kiln_clock_wall_ms()) != 0)
        s_history_failed("audit");
    run->cancel_requested = true;
    run->held = false;
    kiln_rungraph_cancel(run->graph);
    kiln_runs_advance(self, run);
}

static void s_run_remove(kiln_server_t *self, kiln_crun_t *run)
{
    for (size_t i = 0; i < self->n_runs; i++) {
        if (self->runs[i] == run) {
            self->runs[i] = self->runs[--self->n_runs];
            break;
        }
    }
    const char **keys = malloc((run->n_jobs ? run->n_jobs : 1) * sizeof *keys);
    size_t n = 0;
    for (size_t i = 0; i < run->n_jobs; i++) {
        kiln_runs_ready_remove(self, run->jobs[i]);
        if (keys)
            keys[n++] = run->jobs[i]->key;
    }
    if (kiln_queue_forget(self->queue, keys, n) != 0)
        kiln_log_warn("run %lld: %s", (long long)run->id, kiln_error_last());
    free(keys);
    char group[sizeof run->group];
    snprintf(group, sizeof group, "%s", run->group);
    bool held = run->held;
    kiln_runs_free(&run);
    if (!held)
        kiln_concurrency_release_run(self, group);
}

int kiln_runs_check_done(kiln_server_t *self, kiln_crun_t *run)
{
    if (!kiln_rungraph_done(run->graph))
        return 0;
    const char *state = kiln_rungraph_conclusion(run->graph);
    if (run->cancel_requested)
        state = "cancelled";
    int64_t now = kiln_clock_wall_ms();
    if (kiln_history_run_set_state(self->history, run->id, state, now) != 0)
        s_history_failed("run state");
    kiln_log_info("run %lld finished: %s", (long long)run->id, state);
    self->stats.runs_finished++;
    Kiln__RunEvent ev = KILN__RUN_EVENT__INIT;
    ev.kind = KILN__EVENT_KIND__EVENT_RUN_FINISHED;
    ev.state = (char *)state;
    ev.duration_ms = (uint64_t)(now - run->created_ms);
    kiln_watch_emit(self, run, &ev);
    s_run_remove(self, run);
    return 1;
}

void kiln_runs_sweep(kiln_server_t *self)
{
    for (size_t i = 0; i < self->n_runs;) {
        if (kiln_runs_check_done(self, self->runs[i]))
            continue; /* the array was compacted */
        i++;
    }
}
