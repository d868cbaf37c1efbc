/* attempts.c: a job's attempts on workers: fencing, results, retries.
 *
 * Every message about a job is accepted only from the worker holding its
 * current attempt's token (fencing); a repeated result is recognised as a
 * duplicate, a stale one recorded in the audit table. Infrastructure
 * failures (worker_lost, worker_drained, infra_error) run the job again
 * within its max-attempts; script failures only within kiln.retry. Log
 * chunks are checked against the job's limit and credited back to the
 * worker in quarter-window batches.
 */
#include "coordinator/coord.h"
#include "coordinator/policy.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/error.h"
#include "common/log.h"

/* Checks that a message about job_key comes from the worker holding the
 * current attempt; logs and counts stale ones (fencing). */
kiln_cjob_t *kiln_attempts_fenced(kiln_server_t *self, kiln_cworker_t *w, const char *job_key,
                             uint64_t token, const char *what)
{
    kiln_cjob_t *job = kiln_runs_find_job(self, job_key);
    if (!job || !kiln_policy_fenced(job->worker == w, job->token, token, kiln_runs_state(job))) {
        self->stats.stale_rejected++;
        kiln_log_warn("rejected %s for %s token %llu from worker %s: not the current attempt",
                      what, job_key, (unsigned long long)token, w->name);
        return NULL;
    }
    return job;
}

/* The retry budget of a job for infrastructure failures. */
static unsigned s_infra_limit(const kiln_server_t *self, const kiln_cjob_t *job)
{
    unsigned n = kiln_runs_spec(job)->max_attempts;
    return n ? n : self->cfg.max_attempts;
}

/* Puts a job whose attempt ended back on the queue for another attempt. */
void kiln_attempts_requeue(kiln_server_t *self, kiln_cjob_t *job)
{
    kiln_crun_t *run = job->run;
    if (kiln_queue_requeue(self->queue, job->key, job->labels, job->token) != 0) {
        kiln_log_warn("requeue %s: %s", job->key, kiln_error_last());
        self->redis_dirty = true;
    }
    job->worker = NULL;
    job->orphan_deadline = 0;
    if (kiln_rungraph_requeue(run->graph, job->idx) != 0)
        kiln_log_error("requeue %s: %s", job->key, kiln_error_last());
    if (kiln_history_job_set_state(self->history, run->id, kiln_runs_plan(job)->id, "ready", 0,
                                   NULL, 0, 0) != 0)
        kiln_log_error("history: requeue %s: %s", job->key, kiln_error_last());
    kiln_runs_ready_append(self, job, true);
}

/* An attempt ended without the script's own verdict: the worker was lost,
 * drained, or failed around the job. That is not a build failure: the job
 * runs again, up to its infrastructure budget. */
void kiln_attempts_lost(kiln_server_t *self, kiln_cjob_t *job, const char *klass,
                           const char *message)
{
    kiln_crun_t *run = job->run;
    int64_t now = kiln_clock_wall_ms();
    if (kiln_history_attempt_finish(self->history, run->id, kiln_runs_plan(job)->id, job->attempt,
                                    klass, message && message[0] ? message : NULL, now) != 0)
        kiln_log_error("history: attempt of %s: %s", job->key, kiln_error_last());
    job->worker = NULL;
    /* A hand-back by a worker that stops gracefully costs the job nothing:
     * it is not counted against max-attempts (each needs a worker to go
     * away, so they cannot repeat for ever). */
    bool handed_back = strcmp(klass, "worker_drained") == 0;
    if (!handed_back)
        job->infra_failures++;
    if (strcmp(klass, "worker_lost") == 0)
        self->stats.retries_worker_lost++;
    else if (handed_back)
        self->stats.retries_worker_drained++;
    else
        self->stats.retries_infra_error++;
    kiln_job_state_t final = KILN_JOB_INFRA_ERROR;
    bool stopping = run->cancel_requested || kiln_rungraph_stopping(run->graph, job->idx);
    if (kiln_policy_after_infra(job->infra_failures, s_infra_limit(self, job), stopping,
                                &final) == KILN_POLICY_REQUEUE) {
        kiln_log_info("job %s: attempt %u ended (%s); queued again", job->key, job->attempt,
                      klass);
        kiln_attempts_requeue(self, job);
        return;
    }
    if (kiln_queue_finish(self->queue, job->key, job->token, kiln_job_state_name(final)) != 0)
        self->redis_dirty = true;
    if (final == KILN_JOB_INFRA_ERROR)
        kiln_log_warn("job %s: attempt %u ended (%s); %u infrastructure failures, giving up",
                      job->key, job->attempt, klass, job->infra_failures);
    kiln_runs_job_final(self, job, final, now, NULL);
}

/* Returns processed log bytes to the worker as credit once enough has
 * accumulated, so a chatty job streams steadily and a flood stalls at the
 * worker (its step blocks on a full pipe) instead of in our memory. */
static void s_credit(kiln_server_t *self, kiln_cworker_t *w, size_t len)
{
    w->credit_owed += len;
    if (w->credit_owed < self->cfg.log_window / 4)
        return;
    Kiln__Envelope env = KILN__ENVELOPE__INIT;
    Kiln__Credit c = KILN__CREDIT__INIT;
    c.log_bytes = w->credit_owed;
    env.body_case = KILN__ENVELOPE__BODY_CREDIT;
    env.credit = &c;
    if (kiln_server_send(self, w->identity, w->id_len, &env) == 0)
        w->credit_owed = 0;
}

void kiln_attempts_on_step_started(kiln_server_t *self, kiln_cworker_t *w, const Kiln__StepStarted *m)
{
    kiln_cjob_t *job = kiln_attempts_fenced(self, w, m->job_key, m->token, "step start");
    if (!job)
        return;
    const kiln_job_t *spec = kiln_runs_spec(job);
    if (m->step >= spec->n_steps)
        return;
    const char *name = m->name[0] ? m->name : spec->steps[m->step].name;
    if (kiln_history_step_start(self->history, job->run->id, kiln_runs_plan(job)->id,
                                job->attempt, m->step, name, (int64_t)m->ts_ms) != 0)
        kiln_log_error("history: step of %s: %s", job->key, kiln_error_last());
    kiln_watch_emit_step_started(self, job, m->step, name, m->ts_ms);
}

void kiln_attempts_on_log(kiln_server_t *self, kiln_cworker_t *w, const Kiln__LogChunk *m)
{
    s_credit(self, w, m->data.len);
    kiln_cjob_t *job = kiln_attempts_fenced(self, w, m->job_key, m->token, "log chunk");
    if (!job)
        return;
    const kiln_plan_job_t *spec = kiln_runs_plan(job);
    int stream = m->stream <= 2 ? (int)m->stream : 2;
    if (m->data.len > KILN_SERVER_LOG_CHUNK_MAX) {
        self->stats.garbage_dropped++;
        kiln_log_warn("worker %s: log chunk of %zu bytes for %s is over %d; dropped", w->name,
                      m->data.len, job->key, KILN_SERVER_LOG_CHUNK_MAX);
        return;
    }
    /* The worker truncates at the limit itself; this holds a worker that
     * does not. */
    if (job->log_truncated)
        return;
    if (job->log_bytes + m->data.len > self->cfg.log_limit + KILN_SERVER_LOG_CHUNK_MAX) {
        char marker[160];
        int n = snprintf(marker, sizeof marker,
                         "[kiln: log truncated: over the limit of %llu bytes]\n",
                         (unsigned long long)self->cfg.log_limit);
        job->log_truncated = true;
        self->stats.logs_truncated++;
        if (kiln_history_log_append(self->history, job->run->id, spec->id, job->attempt,
                                    m->step, 2, marker, (size_t)n, (int64_t)m->ts_ms) != 0)
            kiln_log_error("history: log of %s: %s", job->key, kiln_error_last());
        return;
    }
    if (stream != 2 && m->offset > job->output_offset) {
        /* Output the worker sent that never reached the history: it came
         * while this coordinator was down (or restarting). The log says
         * where and how much. */
        char marker[200];
        int n = snprintf(marker, sizeof marker,
                         "[kiln: %llu bytes of output lost here: the coordinator restarted "
                         "while the job ran]\n",
                         (unsigned long long)(m->offset - job->output_offset));
        kiln_log_warn("job %s: %llu bytes of output lost across a coordinator restart", job->key,
                      (unsigned long long)(m->offset - job->output_offset));
        if (kiln_history_log_append(self->history, job->run->id, spec->id, job->attempt, m->step,
                                    2, marker, (size_t)n, (int64_t)m->ts_ms) != 0)
            kiln_log_error("history: log of %s: %s", job->key, kiln_error_last());
    }
    if (stream != 2)
        job->output_offset = m->offset + m->data.len;
    job->log_bytes += m->data.len;
    if (kiln_history_log_append(self->history, job->run->id, spec->id, job->attempt, m->step,
                                stream, m->data.data, m->data.len, (int64_t)m->ts_ms) != 0)
        kiln_log_error("history: log of %s: %s", job->key, kiln_error_last());
    kiln_watch_emit_log(self, job, m->step, m->stream, m->data.data, m->data.len, m->ts_ms);
}

static const char *s_outcome_name(Kiln__Outcome o)
{
    switch (o) {
    case KILN__OUTCOME__OUTCOME_SUCCESS: return "success";
    case KILN__OUTCOME__OUTCOME_FAILURE: return "failure";
    case KILN__OUTCOME__OUTCOME_TIMED_OUT: return "timed_out";
    case KILN__OUTCOME__OUTCOME_CANCELLED: return "cancelled";
    case KILN__OUTCOME__OUTCOME_SKIPPED: return "skipped";
    case KILN__OUTCOME__OUTCOME_INFRA_ERROR: return "infra_error";
    default: return "failure";
    }
}

/* A step's result, for the current attempt of job: on its own (below) or
 * carried in the job's result. */
static void s_apply_step_result(kiln_server_t *self, kiln_cjob_t *job, const Kiln__StepResult *m)
{
    const kiln_job_t *spec = kiln_runs_spec(job);
    const char *job_id = kiln_runs_plan(job)->id;
    if (m->step >= spec->n_steps)
        return;
    const char *state = s_outcome_name(m->outcome);
    const char *name = m->name[0] ? m->name : spec->steps[m->step].name;
    /* A step that ended within its worker's hold comes without a start:
     * its row is made here, and watchers see it start before it ends. */
    bool unstarted = job->step_reported != m->step + 1;
    if (unstarted && m->outcome != KILN__OUTCOME__OUTCOME_SKIPPED)
        kiln_watch_emit_step_started(self, job, m->step, name, m->started_ms);
    if (kiln_history_step_finish(self->history, job->run->id, job_id, job->attempt, m->step,
                                 unstarted ? name : NULL, state, m->exit_code, m->signal,
                                 (int64_t)m->started_ms, (int64_t)m->finished_ms) != 0)
        kiln_log_error("history: step of %s: %s", job->key, kiln_error_last());
    if (job->run->n_watchers) {
        Kiln__RunEvent ev = KILN__RUN_EVENT__INIT;
        ev.kind = KILN__EVENT_KIND__EVENT_STEP_FINISHED;
        ev.job_id = (char *)job_id;
        ev.job_name = kiln_runs_plan(job)->name;
        ev.step = m->step;
        ev.step_name = (char *)name;
        ev.state = (char *)state;
        ev.exit_code = m->exit_code;
        ev.attempt = job->attempt;
        ev.duration_ms = m->finished_ms > m->started_ms ? m->finished_ms - m->started_ms : 0;
        kiln_watch_emit(self, job->run, &ev);
    }
}

void kiln_attempts_on_step_result(kiln_server_t *self, kiln_cworker_t *w, const Kiln__StepResult *m)
{
    kiln_cjob_t *job = kiln_attempts_fenced(self, w, m->job_key, m->token, "step result");
    if (job)
        s_apply_step_result(self, job, m);
}

/* What a finished attempt leaves besides its state: outputs (for
 * needs.<job>.outputs), annotations, the step summary. */
static json_t *s_record_results(kiln_server_t *self, kiln_cjob_t *job, const Kiln__JobResult *m)
{
    kiln_crun_t *run = job->run;
    const kiln_plan_job_t *spec = kiln_runs_plan(job);
    json_t *outs = NULL;
    if (m->n_outputs) {
        outs = json_object();
        for (size_t i = 0; i < m->n_outputs; i++)
            json_object_set_new(outs, m->outputs[i]->key, json_string(m->outputs[i]->value));
        if (kiln_history_job_outputs(self->history, run->id, spec->id, outs) != 0)
            kiln_log_error("history: outputs of %s: %s", job->key, kiln_error_last());
    }
    static const char *levels[] = {"error", "warning", "notice"};
    for (size_t i = 0; i < m->n_annotations && i < 1000; i++) {
        const Kiln__Annotation *a = m->annotations[i];
        if (kiln_history_annotation(self->history, run->id, spec->id, job->attempt, a->step,
                                    levels[a->level <= 2 ? a->level : 0], a->message, a->title,
                                    a->file, a->line, a->col) != 0)
            kiln_log_error("history: annotation of %s: %s", job->key, kiln_error_last());
    }
    if (m->summary.len) {
        if (kiln_history_summary(self->history, run->id, spec->id, job->attempt,
                                 (const char *)m->summary.data, m->summary.len) != 0)
            kiln_log_error("history: summary of %s: %s", job->key, kiln_error_last());
    }
    return outs;
}

void kiln_attempts_on_job_result(kiln_server_t *self, kiln_cworker_t *w, const Kiln__JobResult *m)
{
    kiln_cjob_t *cur = kiln_runs_find_job(self, m->job_key);
    if (cur && cur->token == m->token && kiln_runs_state(cur) != KILN_JOB_RUNNING &&
        cur->worker_name && strcmp(cur->worker_name, w->name) == 0) {
        /* Our acknowledgement was lost and the worker sent it again. */
        self->stats.duplicate_results++;
        kiln_proto_worker_ack(self, w, m);
        return;
    }
    kiln_cjob_t *job = kiln_attempts_fenced(self, w, m->job_key, m->token, "job result");
    if (!job) {
        /* A zombie's late result: recorded, never applied, and acknowledged
         * so that it stops. */
        char detail[256];
        snprintf(detail, sizeof detail, "%s token %llu outcome %d", m->job_key,
                 (unsigned long long)m->token, (int)m->outcome);
        if (kiln_history_audit(self->history, "result.stale", w->name, w->public_key, detail,
                               kiln_clock_wall_ms()) != 0)
            kiln_log_error("history: audit: %s", kiln_error_last());
        kiln_proto_worker_ack(self, w, m);
        return;
    }
    /* The steps that ended with the job come first, as their own messages
     * would have. */
    for (size_t i = 0; i < m->n_steps; i++)
        s_apply_step_result(self, job, m->steps[i]);
    kiln_crun_t *run = job->run;
    const kiln_job_t *spec = kiln_runs_spec(job);
    const char *job_id = kiln_runs_plan(job)->id;
    int64_t now = kiln_clock_wall_ms();
    kiln_workers_release(w, job);
    if (m->outcome == KILN__OUTCOME__OUTCOME_INFRA_ERROR ||
        m->outcome == KILN__OUTCOME__OUTCOME_DRAINED) {
        bool drained = m->outcome == KILN__OUTCOME__OUTCOME_DRAINED;
        /* A worker that hands a job back is going away: nothing goes back
         * to it, even before its draining heartbeat arrives. */
        if (drained && !w->draining) {
            w->draining = true;
            kiln_log_info("worker %s is draining (it handed a job back)", w->name);
        }
        kiln_log_warn("job %s: worker %s %s: %s", job->key, w->name,
                      drained ? "handed it back while draining" : "reports an infrastructure error",
                      m->message);
        if (m->worker_unwell) {
            w->unwell_until = kiln_clock_mono_ms() + KILN_SERVER_UNWELL_MS;
            kiln_log_warn("worker %s cannot run jobs for now; none goes to it for %d s",
                          w->name, KILN_SERVER_UNWELL_MS / 1000);
        }
        kiln_attempts_lost(self, job, drained ? "worker_drained" : "infra_error", m->message);
        kiln_proto_worker_ack(self, w, m);
        kiln_dispatch(self);
        return;
    }
    if (m->n_image_layers && m->n_image_layers == m->n_image_layer_sizes)
        kiln_affinity_layers(self, job, m->image_layers, m->image_layer_sizes,
                             m->n_image_layers);
    if (m->outcome == KILN__OUTCOME__OUTCOME_SUCCESS && m->finished_ms >= m->started_ms) {
        int64_t took = (int64_t)(m->finished_ms - m->started_ms);
        run->recent_ms = run->n_recent ? run->recent_ms + (took - run->recent_ms) / 4 : took;
        if (run->n_recent < UINT_MAX)
            run->n_recent++;
        kiln_affinity_done(self, job, took);
    }
    kiln_job_state_t state;
    switch (m->outcome) {
    case KILN__OUTCOME__OUTCOME_SUCCESS: state = KILN_JOB_SUCCESS; break;
    case KILN__OUTCOME__OUTCOME_TIMED_OUT: state = KILN_JOB_TIMED_OUT; break;
    case KILN__OUTCOME__OUTCOME_CANCELLED: state = KILN_JOB_CANCELLED; break;
    default: state = KILN_JOB_FAILURE; break;
    }
    const char *name = kiln_job_state_name(state);
    if (kiln_history_attempt_finish(self->history, run->id, job_id, job->attempt, name,
                                    m->message[0] ? m->message : NULL, now) != 0)
        kiln_log_error("history: attempt of %s: %s", job->key, kiln_error_last());
    json_t *outs = s_record_results(self, job, m);
    /* A script failure is the build's verdict: retried only when the
     * workflow asks (kiln.retry). */
    bool stopping = run->cancel_requested || kiln_rungraph_stopping(run->graph, job->idx);
    if (kiln_policy_after_script(state, job->script_failures, spec->retry, stopping) ==
        KILN_POLICY_REQUEUE) {
        job->script_failures++;
        self->stats.retries_failure++;
        kiln_log_info("job %s: attempt %u %s; retry %u of %u", job->key, job->attempt, name,
                      job->script_failures, spec->retry);
        json_decref(outs);
        kiln_attempts_requeue(self, job);
        kiln_proto_worker_ack(self, w, m);
        kiln_dispatch(self);
        return;
    }
    if (kiln_queue_finish(self->queue, job->key, job->token, name) != 0) {
        kiln_log_warn("job %s: %s", job->key, kiln_error_last());
        self->redis_dirty = true;
    }
    kiln_log_info("job %s finished: %s on %s", job->key, name, w->name);
    job->worker = NULL;
    kiln_runs_job_final(self, job, state, now, outs);
    json_decref(outs);
    kiln_proto_worker_ack(self, w, m);
    kiln_dispatch(self);
}

/* Orphan leases (recovered after a restart) whose worker never came back:
 * the job runs again elsewhere. Collected first because losing an attempt
 * may change the run's jobs. */
void kiln_attempts_undeliverable(kiln_server_t *self, kiln_cjob_t *job, const char *why)
{
    kiln_crun_t *run = job->run;
    int64_t now = kiln_clock_wall_ms();
    char msg[KILN_ERROR_MAX + 64];
    snprintf(msg, sizeof msg, "the job cannot be sent to a worker: %s", why);
    kiln_log_warn("job %s: %s", job->key, msg);
    kiln_workers_release(job->worker, job);
    job->worker = NULL;
    if (kiln_queue_finish(self->queue, job->key, job->token, "failure") != 0)
        self->redis_dirty = true;
    int hrc = kiln_history_attempt_finish(self->history, run->id, kiln_runs_plan(job)->id,
                                          job->attempt, "failure", msg, now);
    if (hrc == 0)
        hrc = kiln_history_annotation(self->history, run->id, kiln_runs_plan(job)->id,
                                      job->attempt, 0, "error", msg, "Kiln", NULL, 0, 0);
    if (hrc != 0)
        kiln_log_error("history: attempt of %s: %s", job->key, kiln_error_last());
    kiln_runs_job_final(self, job, KILN_JOB_FAILURE, now, NULL);
}

/* A job its worker was told to stop and did not end in time (the worker is
 * stuck, or its result cannot reach us): ended here, cancelled, and its
 * slot freed. A result that comes later carries a token that is no longer
 * current. */
static void s_cancel_overdue(kiln_server_t *self, kiln_cjob_t *job)
{
    kiln_crun_t *run = job->run;
    int64_t now = kiln_clock_wall_ms();
    char why[200];
    snprintf(why, sizeof why,
             "its worker %s did not end it within %d ms of being told to stop: ended by the "
             "coordinator",
             job->worker->name, KILN_SERVER_CANCEL_GRACE_MS + (int)self->cfg.lease_ms);
    kiln_log_warn("job %s: %s", job->key, why);
    kiln_workers_release(job->worker, job);
    job->worker = NULL;
    job->cancel_deadline = 0;
    if (kiln_queue_finish(self->queue, job->key, job->token, "cancelled") != 0)
        self->redis_dirty = true;
    if (kiln_history_attempt_finish(self->history, run->id, kiln_runs_plan(job)->id, job->attempt,
                                    "cancelled", why, now) != 0)
        kiln_log_error("history: attempt of %s: %s", job->key, kiln_error_last());
    kiln_runs_job_final(self, job, KILN_JOB_CANCELLED, now, NULL);
}

void kiln_attempts_expire_orphans(kiln_server_t *self, int64_t now)
{
    char expired[64][KILN_JOB_KEY_MAX];
    bool overdue[64];
    size_t n_expired = 0;
    for (size_t r = 0; r < self->n_runs && n_expired < 64; r++) {
        kiln_crun_t *run = self->runs[r];
        for (size_t i = 0; i < run->n_jobs && n_expired < 64; i++) {
            kiln_cjob_t *job = run->jobs[i];
            if (kiln_runs_state(job) != KILN_JOB_RUNNING)
                continue;
            bool orphan = !job->worker && job->orphan_deadline && now >= job->orphan_deadline;
            bool late = job->worker && job->cancel_deadline && now >= job->cancel_deadline;
            if (orphan || late) {
                overdue[n_expired] = late;
                snprintf(expired[n_expired++], KILN_JOB_KEY_MAX, "%s", job->key);
            }
        }
    }
    for (size_t k = 0; k < n_expired; k++) {
        kiln_cjob_t *job = kiln_runs_find_job(self, expired[k]);
        if (!job || kiln_runs_state(job) != KILN_JOB_RUNNING)
            continue;
        if (overdue[k]) {
            if (job->worker)
                s_cancel_overdue(self, job);
            continue;
        }
        self->stats.lease_expiries++;
        kiln_attempts_lost(self, job, "worker_lost", "its worker did not return within the lease");
    }
}
