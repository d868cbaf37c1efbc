/* concurrency.c: concurrency groups, farm-wide, as GitHub has them.
 *
 * In a group at most one runs and one waits. Runs: a workflow's
 * `concurrency:` holds a new run (`held`) while another run of its group
 * runs; a newer one cancels the one waiting; with cancel-in-progress it
 * cancels the running one too. Jobs: a job's `concurrency:` works the same
 * between any two jobs of the farm, of one run or of several: the first to
 * be ready holds the group, the next waits (ready in its graph, not yet
 * queued), a newer one supersedes the one waiting, and when the holder ends
 * the waiting one is queued.
 */
#include "coordinator/coord.h"

#include <string.h>

#include "common/clock.h"
#include "common/log.h"

bool kiln_concurrency_admit_run(kiln_server_t *self, kiln_crun_t *run)
{
    if (!run->group[0])
        return false;
    bool wait = false;
    bool cancel = run->cancel_in_progress;
    for (size_t i = 0; i < self->n_runs; i++) {
        kiln_crun_t *other = self->runs[i];
        if (other == run || other->cancel_requested || strcmp(other->group, run->group) != 0)
            continue;
        if (other->held) {
            kiln_runs_cancel(self, other, run->actor, NULL, "superseded in its concurrency group");
            continue;
        }
        if (cancel) {
            kiln_runs_cancel(self, other, run->actor, NULL,
                             "cancel-in-progress in its concurrency group");
            continue;
        }
        wait = true;
    }
    /* A cancelled run still finishing keeps the group busy. */
    for (size_t i = 0; i < self->n_runs && !wait; i++)
        wait = self->runs[i] != run && strcmp(self->runs[i]->group, run->group) == 0 &&
               self->runs[i]->started && !kiln_rungraph_done(self->runs[i]->graph);
    return wait;
}

/* The run waiting in the group starts: its ready jobs are queued. */
void kiln_concurrency_release_run(kiln_server_t *self, const char *group)
{
    if (!group[0])
        return;
    /* Another run of the group still holds it (a run cancelled while it
     * waited never did). */
    for (size_t i = 0; i < self->n_runs; i++) {
        const kiln_crun_t *r = self->runs[i];
        if (!r->held && strcmp(r->group, group) == 0 && !kiln_rungraph_done(r->graph) &&
            r->started)
            return;
    }
    for (size_t i = 0; i < self->n_runs; i++) {
        kiln_crun_t *r = self->runs[i];
        if (!r->held || strcmp(r->group, group) != 0)
            continue;
        r->held = false;
        r->started = true;
        kiln_log_info("run %lld: its concurrency group '%s' is free", (long long)r->id, group);
        for (size_t j = 0; j < r->n_jobs; j++) {
            kiln_cjob_t *job = r->jobs[j];
            if (kiln_runs_state(job) != KILN_JOB_READY || job->queued || job->group_wait)
                continue;
            const kiln_plan_job_t *plan = kiln_runs_plan(job);
            if (plan->group && !kiln_concurrency_admit_job(self, job))
                continue;
            kiln_runs_queue(self, job);
        }
        return;
    }
}

/* Visits the jobs of the farm in group `group`, other than `except`. */
typedef bool (*s_visit_fn)(kiln_server_t *self, kiln_cjob_t *job, void *ctx);

static kiln_cjob_t *s_find(kiln_server_t *self, const char *group, const kiln_cjob_t *except,
                           s_visit_fn fn, void *ctx)
{
    for (size_t r = 0; r < self->n_runs; r++) {
        kiln_crun_t *run = self->runs[r];
        for (size_t i = 0; i < run->n_jobs; i++) {
            kiln_cjob_t *o = run->jobs[i];
            const kiln_plan_job_t *plan = kiln_runs_plan(o);
            if (o == except || !plan->group || strcmp(plan->group, group) != 0)
                continue;
            if (fn(self, o, ctx))
                return o;
        }
    }
    return NULL;
}

/* Holds the group: ready and queued, or running. */
static bool s_holds(kiln_server_t *self, kiln_cjob_t *job, void *ctx)
{
    (void)self;
    (void)ctx;
    kiln_job_state_t st = kiln_runs_state(job);
    return !job->group_wait && (st == KILN_JOB_RUNNING || (st == KILN_JOB_READY && job->queued));
}

static bool s_waits(kiln_server_t *self, kiln_cjob_t *job, void *ctx)
{
    (void)self;
    (void)ctx;
    return job->group_wait && kiln_runs_state(job) == KILN_JOB_READY;
}

/* cancel-in-progress: the holder stops (or, not started yet, ends). */
static bool s_cancel_holder(kiln_server_t *self, kiln_cjob_t *job, void *ctx)
{
    (void)ctx;
    if (!s_holds(self, job, NULL))
        return false;
    if (kiln_runs_state(job) == KILN_JOB_RUNNING) {
        kiln_crun_t *run = job->run;
        if (kiln_rungraph_is_call(run->graph, job->idx)) {
            if (!kiln_rungraph_stopping(run->graph, job->idx) &&
                kiln_rungraph_stop_call(run->graph, job->idx) == 0) {
                kiln_log_info("job %s: its called workflow cancelled in progress by its "
                              "concurrency group", job->key);
                kiln_runs_advance(self, run);
            }
            return false;
        }
        if (job->worker && !job->cancel_sent) {
            kiln_log_info("job %s: cancelled in progress by its concurrency group", job->key);
            kiln_runs_send_cancel(self, job);
        }
        return false;
    }
    kiln_log_info("job %s: cancelled by its concurrency group before it started", job->key);
    kiln_queue_drop(self->queue, job->key, job->labels, "cancelled");
    job->group_wait = true; /* it no longer holds: its end releases nothing */
    kiln_runs_job_final(self, job, KILN_JOB_CANCELLED, kiln_clock_wall_ms(), NULL);
    return false;
}

bool kiln_concurrency_admit_job(kiln_server_t *self, kiln_cjob_t *job)
{
    const kiln_plan_job_t *plan = kiln_runs_plan(job);
    if (!s_find(self, plan->group, job, s_holds, NULL))
        return true;
    /* A newer job supersedes the one waiting. */
    kiln_cjob_t *waiting;
    while ((waiting = s_find(self, plan->group, job, s_waits, NULL)) != NULL) {
        kiln_log_info("job %s superseded in concurrency group '%s'", waiting->key, plan->group);
        kiln_runs_job_final(self, waiting, KILN_JOB_CANCELLED, kiln_clock_wall_ms(), NULL);
    }
    job->group_wait = true;
    if (plan->cancel_in_progress)
        s_find(self, plan->group, job, s_cancel_holder, NULL);
    /* A holder cancelled before it started released the group already. */
    if (job->group_wait && !s_find(self, plan->group, job, s_holds, NULL)) {
        job->group_wait = false;
        return true;
    }
    return false;
}

void kiln_concurrency_release_job(kiln_server_t *self, const char *group)
{
    if (s_find(self, group, NULL, s_holds, NULL))
        return;
    kiln_cjob_t *next = s_find(self, group, NULL, s_waits, NULL);
    if (!next || next->run->held)
        return;
    kiln_log_info("job %s: its concurrency group '%s' is free", next->key, group);
    kiln_runs_queue(self, next);
}
