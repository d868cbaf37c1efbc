/* watch.c: watchers, the clients following a run live (kiln run, kiln
 * submit --wait, kiln logs --follow).
 *
 * Events go to each watcher without waiting: a watcher that cannot take one
 * (gone, or so slow its queue is full) is dropped. A quiet watcher gets only
 * the run's end, so a follower that shows nothing costs no event per job.
 */
#include "coordinator/coord.h"

#include <stdio.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"

void kiln_watch_add(kiln_crun_t *run, const kiln_transport_msg_t *msg, const char *job_filter,
                    bool quiet)
{
    for (size_t i = 0; i < run->n_watchers; i++)
        if (run->watchers[i].id_len == msg->id_len &&
            memcmp(run->watchers[i].identity, msg->identity, msg->id_len) == 0)
            return;
    if (run->n_watchers >= KILN_SERVER_MAX_WATCHERS) {
        kiln_log_warn("run %lld: watcher limit (%d) reached", (long long)run->id,
                      KILN_SERVER_MAX_WATCHERS);
        return;
    }
    kiln_watcher_t *w = &run->watchers[run->n_watchers++];
    memcpy(w->identity, msg->identity, msg->id_len);
    w->id_len = msg->id_len;
    snprintf(w->job_filter, sizeof w->job_filter, "%s", job_filter ? job_filter : "");
    w->quiet = quiet;
}

bool kiln_watch_any_loud(const kiln_crun_t *run)
{
    for (size_t i = 0; i < run->n_watchers; i++)
        if (!run->watchers[i].quiet)
            return true;
    return false;
}

void kiln_watch_emit(kiln_server_t *self, kiln_crun_t *run, Kiln__RunEvent *ev)
{
    Kiln__Envelope env = KILN__ENVELOPE__INIT;
    env.body_case = KILN__ENVELOPE__BODY_EVENT;
    env.event = ev;
    ev->run_id = (uint64_t)run->id;
    if (!ev->ts_ms)
        ev->ts_ms = (uint64_t)kiln_clock_wall_ms();
    for (size_t i = 0; i < run->n_watchers;) {
        kiln_watcher_t *w = &run->watchers[i];
        /* A job no worker can run is news for every follower: kiln run
         * stops on it when its own farm cannot serve the labels. */
        bool to_all = ev->kind == KILN__EVENT_KIND__EVENT_RUN_FINISHED ||
                      ev->kind == KILN__EVENT_KIND__EVENT_END ||
                      ev->kind == KILN__EVENT_KIND__EVENT_JOB_WAITING;
        bool wanted = to_all || (!w->quiet && (!w->job_filter[0] ||
                                            strcmp(w->job_filter, ev->job_id) == 0));
        if (wanted && kiln_server_send(self, w->identity, w->id_len, &env) != 0) {
            run->watchers[i] = run->watchers[--run->n_watchers];
            continue;
        }
        i++;
    }
}

void kiln_watch_emit_job(kiln_server_t *self, kiln_cjob_t *job, Kiln__EventKind kind,
                         int64_t duration_ms)
{
    Kiln__RunEvent ev = KILN__RUN_EVENT__INIT;
    const kiln_plan_job_t *plan = kiln_runs_plan(job);
    if (!kiln_watch_any_loud(job->run))
        return;
    ev.kind = kind;
    ev.job_id = plan->id;
    ev.job_name = plan->name;
    ev.state = (char *)kiln_job_state_name(kiln_runs_state(job));
    ev.attempt = job->attempt;
    ev.worker = job->worker ? job->worker->name : (char *)"";
    ev.duration_ms = duration_ms > 0 ? (uint64_t)duration_ms : 0;
    const char *why = kiln_rungraph_message(job->run->graph, job->idx);
    if (why && kind == KILN__EVENT_KIND__EVENT_JOB_FINISHED)
        ev.message = (char *)why;
    kiln_watch_emit(self, job->run, &ev);
}

void kiln_watch_emit_log(kiln_server_t *self, kiln_cjob_t *job, unsigned step, int stream,
                         const uint8_t *data, size_t len, uint64_t ts_ms)
{
    if (!job->run->n_watchers)
        return;
    /* The job's name as planned (build (gcc)), as its other events give
     * it, not the template it was written as. */
    const kiln_job_t *spec = kiln_runs_spec(job);
    const kiln_plan_job_t *plan = kiln_runs_plan(job);
    Kiln__RunEvent ev = KILN__RUN_EVENT__INIT;
    ev.kind = KILN__EVENT_KIND__EVENT_LOG;
    ev.job_id = spec->id;
    ev.job_name = plan && plan->name ? plan->name : spec->name;
    ev.step = step;
    ev.stream = (Kiln__Stream)stream;
    ev.data.data = (uint8_t *)data;
    ev.data.len = len;
    ev.attempt = job->attempt;
    ev.ts_ms = ts_ms;
    kiln_watch_emit(self, job->run, &ev);
}

void kiln_watch_emit_step_started(kiln_server_t *self, kiln_cjob_t *job, unsigned step,
                                  const char *name, uint64_t ts_ms)
{
    const kiln_plan_job_t *plan = kiln_runs_plan(job);
    job->step_reported = step + 1;
    if (!job->run->n_watchers)
        return;
    Kiln__RunEvent ev = KILN__RUN_EVENT__INIT;
    ev.kind = KILN__EVENT_KIND__EVENT_STEP_STARTED;
    ev.job_id = plan->id;
    ev.job_name = plan->name;
    ev.step = step;
    ev.step_name = (char *)name;
    ev.attempt = job->attempt;
    ev.ts_ms = ts_ms;
    kiln_watch_emit(self, job->run, &ev);
}
