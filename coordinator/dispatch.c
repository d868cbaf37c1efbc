/* dispatch.c: which ready job goes to which worker.
 *
 * Dispatch goes in passes: the run whose turn it is (fewest jobs on
 * workers, then least recently served, so a small run is not starved by a
 * big one) gives its best job (critical-path rank) to the least loaded free
 * worker with its labels, until slots or placeable jobs run out. A second
 * phase queues jobs on workers that take them beyond their slots while every
 * job they hold belongs to a run of short jobs and is about to end. Then one
 * pipelined write leases them all in Redis, one transaction records them,
 * and the assignments go out, without waiting for Redis's replies: a
 * refusal read later marks Redis for reconcile. max-parallel and job
 * concurrency groups are settled before a job is ready to place (the run
 * graph and concurrency.c), so a pass never looks at a job it cannot place
 * for those reasons.
 */
#include "coordinator/coord.h"
#include "coordinator/policy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/clock.h"
#include "common/error.h"
#include "common/log.h"

static int s_outgoing_add(kiln_server_t *self, kiln_cjob_t **placed, size_t n);

/* Whether worker w should get an assignment queued behind its running
 * jobs: all its slots are busy, it has room to queue, and each job it holds
 * belongs to a run of short jobs and is expected to end within the horizon.
 * Then the next job starts the moment one ends, instead of a round trip
 * later; with anything longer or unknown it waits for a free slot, so a
 * queued job never sits behind a long one while another worker frees up. */
static bool s_prefetchable(const kiln_cworker_t *w, int64_t now)
{
    kiln_policy_held_t held[KILN_SERVER_MAX_SLOTS + KILN_SERVER_MAX_LOOKAHEAD];
    size_t n = 0;
    if (w->draining || w->busy < w->slots || w->busy >= w->cap)
        return false;
    for (unsigned i = 0; i < w->cap && n < sizeof held / sizeof held[0]; i++) {
        const kiln_cjob_t *j = w->jobs[i];
        if (j)
            held[n++] = (kiln_policy_held_t){j->started_ms, j->run->recent_ms, j->run->n_recent};
    }
    return kiln_policy_prefetchable(w->slots, w->busy, w->cap, w->draining, held, n, now,
                                    KILN_SERVER_PREFETCH_SHORT_MS,
                                    KILN_SERVER_PREFETCH_HORIZON_MS);
}

/* Whether the job should wait for a busy worker warmer than the free one
 * it would get (best): it does when that worker is expected to free a slot
 * sooner than restoring its inputs here would take, and for no longer than
 * that (affinity.c: the rent-or-buy rule). Held, it is skipped for now:
 * the awaited worker's next free slot, or the timer at the hold's end,
 * brings it back. */
static bool s_hold(kiln_server_t *self, kiln_cjob_t *job, const kiln_cworker_t *best,
                   unsigned best_warmth)
{
    int64_t mono = kiln_clock_mono_ms();
    if (job->hold_until && mono >= job->hold_until)
        return false;
    const kiln_plan_job_t *plan = kiln_runs_plan(job);
    kiln_cworker_t *warm = NULL;
    unsigned top = best_warmth;
    for (size_t i = 0; i < self->n_workers; i++) {
        kiln_cworker_t *w = self->workers[i];
        if (w->draining || w->busy < w->slots || (w->unwell_until && w->unwell_until > mono))
            continue;
        /* Held: for the same worker only. New: for one nobody waits for. */
        if (job->hold_until ? strcmp(w->name, job->hold_for) != 0 : mono < w->awaited_until)
            continue;
        unsigned warmth = kiln_affinity_warmth(self, w, job);
        if (warmth > top && kiln_workers_matches(self, w, plan)) {
            top = warmth;
            warm = w;
        }
    }
    if (!warm)
        return false; /* nobody warmer is busy, or the awaited one left: now */
    if (job->hold_until)
        return true;
    kiln_affinity_cost_t c;
    kiln_affinity_weigh(self, job, best, warm, kiln_clock_wall_ms(), &c);
    if (c.wait_ms < 0 || c.wait_ms >= c.restore_ms)
        return false;
    char *name = strdup(warm->name);
    if (!name)
        return false;
    free(job->hold_for);
    job->hold_for = name;
    job->hold_cost = c;
    job->hold_since = mono;
    job->hold_until = mono + (c.restore_ms > 0 ? c.restore_ms : 1);
    warm->awaited_until = job->hold_until;
    if (job->hold_until < self->next_tick)
        self->next_tick = job->hold_until;
    kiln_log_info("job %s waits up to %lld ms for %s, which holds its inputs (expected free in "
                  "%lld ms)",
                  job->key, (long long)c.restore_ms, warm->name, (long long)c.wait_ms);
    return true;
}

void kiln_dispatch_unhold(kiln_server_t *self, kiln_cjob_t *job)
{
    if (job->hold_for)
        for (size_t i = 0; i < self->n_workers; i++) {
            kiln_cworker_t *w = self->workers[i];
            if (strcmp(w->name, job->hold_for) == 0 && w->awaited_until == job->hold_until)
                w->awaited_until = 0;
        }
    job->hold_since = job->hold_until = 0;
    free(job->hold_for);
    job->hold_for = NULL;
}

/* The matching worker with a free slot that holds most of what the job
 * used last (affinity.c), then the fewest busy slots; with queue set, one
 * that may queue it (s_prefetchable) instead. NULL with *held set: the job
 * waits for a busy warmer one (s_hold). */
static kiln_cworker_t *s_pick_worker(kiln_server_t *self, kiln_cjob_t *job, bool queue,
                                     int64_t now, bool *held)
{
    const kiln_plan_job_t *plan = kiln_runs_plan(job);
    kiln_cworker_t *best = NULL;
    kiln_policy_worker_t cur = {0}, top = {0};
    bool inputs = kiln_affinity_has_inputs(self, job);
    unsigned top_warmth = 0;
    *held = false;
    /* The policy's rule, applied worker by worker (no array of a thousand
     * candidates per job): the candidate replaces the best when it wins. */
    for (size_t i = 0; i < self->n_workers; i++) {
        kiln_cworker_t *w = self->workers[i];
        cur = (kiln_policy_worker_t){w->slots, w->busy, w->cap, w->draining, true,
                                     queue && s_prefetchable(w, now)};
        if (queue ? !cur.prefetchable : (w->draining || w->busy >= w->slots))
            continue;
        if (w->unwell_until && w->unwell_until > kiln_clock_mono_ms())
            continue;
        if (!kiln_workers_matches(self, w, plan))
            continue;
        unsigned warmth = inputs ? kiln_affinity_warmth(self, w, job) : 0;
        if (best && warmth < top_warmth)
            continue;
        kiln_policy_worker_t pair[2] = {top, cur};
        if (!best || warmth > top_warmth || kiln_policy_pick(pair, 2, queue) == 1) {
            best = w;
            top = cur;
            top_warmth = warmth;
        }
    }
    /* A job held for a warm worker is not queued behind another's jobs. */
    if (best && inputs && (queue ? job->hold_until && kiln_clock_mono_ms() < job->hold_until
                                 : s_hold(self, job, best, top_warmth))) {
        *held = true;
        return NULL;
    }
    return best;
}

/* Dispatch goes in passes (kiln_dispatch_now): choose every placement first,
 * taking the slot at once so later choices see it; lease them all from Redis
 * in one pipelined round trip; then record and send each. A placement whose
 * lease fails is put back as it was. */
static void s_place(kiln_server_t *self, kiln_cjob_t *job, kiln_cworker_t *w)
{
    kiln_runs_ready_remove(self, job);
    job->worker = w;
    kiln_rungraph_start(job->run->graph, job->idx);
    kiln_workers_take(w, job);
    job->run->served_seq = ++self->placements;
    job->lease_deadline = kiln_clock_wall_ms() + self->cfg.lease_ms;
    job->lease_token = job->token + 1;
    /* No verdict pointer: the reply may be read after this job is gone. A
     * refusal makes the flush fail, which marks Redis for reconcile. */
    kiln_queue_lease_defer(self->queue, job->key, job->labels, w->name, job->attempt + 1,
                           job->lease_deadline, job->lease_token, NULL);
}

static void s_unplace(kiln_server_t *self, kiln_cjob_t *job)
{
    kiln_workers_release(job->worker, job);
    job->worker = NULL;
    kiln_rungraph_requeue(job->run->graph, job->idx);
    kiln_runs_ready_append(self, job, true);
}

/* A job whose runs-on label reached its worker through an alias says so in
 * its log (and to its followers): runs-on: ubuntu-24.04 on a Debian worker
 * is the operator's choice, and should be visible. */
static void s_note_aliases(kiln_server_t *self, kiln_cjob_t *job, const kiln_cworker_t *w)
{
    const kiln_plan_job_t *plan = kiln_runs_plan(job);
    for (size_t i = 0; i < plan->n_labels; i++) {
        bool direct = false;
        for (size_t k = 0; k < self->n_universal && !direct; k++)
            direct = strcasecmp(self->universal[k], plan->labels[i]) == 0;
        for (size_t k = 0; k < w->n_labels && !direct; k++)
            direct = strcasecmp(w->labels[k], plan->labels[i]) == 0;
        const kiln_policy_alias_t *a =
            direct ? NULL : kiln_policy_alias_for(plan->labels[i], self->aliases, self->n_aliases);
        if (!a)
            continue;
        char text[600];
        int n = snprintf(text, sizeof text,
                         "runs-on '%s': running on %s, labelled '%s' (label alias %s=%s)\n",
                         plan->labels[i], w->name, a->label, a->pattern, a->label);
        if (n < 0 || (size_t)n >= sizeof text)
            continue;
        if (kiln_history_log_append(self->history, job->run->id, plan->id, job->attempt, 0, 2, text,
                                    (size_t)n, kiln_clock_wall_ms()) != 0)
            kiln_log_error("history: log of %s: %s", job->key, kiln_error_last());
        kiln_watch_emit_log(self, job, 0, KILN__STREAM__STREAM_SYSTEM, (const uint8_t *)text,
                            (size_t)n, 0);
    }
}

/* The lease is on its way to Redis: the job runs on its worker from now. */
static void s_commit_placement(kiln_server_t *self, kiln_cjob_t *job)
{
    kiln_crun_t *run = job->run;
    const char *id = kiln_runs_plan(job)->id;
    kiln_cworker_t *w = job->worker;
    job->token = job->lease_token;
    job->attempt++;
    kiln_runs_set_worker_name(job, w->name);
    job->orphan_deadline = 0;
    job->started_ms = kiln_clock_wall_ms();
    job->cancel_sent = false;
    job->cancel_deadline = 0;
    job->log_bytes = 0;
    job->output_offset = 0;
    job->step_reported = 0;
    job->log_truncated = false;
    int hrc = kiln_history_attempt_start(self->history, run->id, id, job->attempt, job->token,
                                         w->name, w->public_key, job->started_ms);
    if (hrc == 0)
        hrc = kiln_history_job_set_state(self->history, run->id, id, "running", job->attempt,
                                         w->name, job->started_ms, 0);
    if (hrc != 0)
        kiln_log_error("history: dispatch of %s: %s", job->key, kiln_error_last());
    s_note_aliases(self, job, w);
    char why[400];
    kiln_affinity_explain(self, job, why, sizeof why);
    kiln_dispatch_unhold(self, job);
    if (why[0]) {
        char text[sizeof why + KILN_PEER_NAME_MAX + 16];
        int n = snprintf(text, sizeof text, "placed on %s: %s\n", w->name, why);
        size_t len = n < 0 ? 0 : (size_t)n < sizeof text ? (size_t)n : sizeof text - 1;
        int prc = kiln_history_attempt_placement(self->history, run->id, id, job->attempt, why);
        if (prc == 0)
            prc = kiln_history_log_append(self->history, run->id, id, job->attempt, 0, 2, text, len,
                                          kiln_clock_wall_ms());
        if (prc != 0)
            kiln_log_error("history: placement of %s: %s", job->key, kiln_error_last());
        kiln_watch_emit_log(self, job, 0, KILN__STREAM__STREAM_SYSTEM, (const uint8_t *)text, len,
                            0);
    }
    self->stats.dispatches++;
    kiln_log_debug("dispatch %s attempt %u token %llu -> %s", job->key, job->attempt,
                   (unsigned long long)job->token, w->name);
}

/* Which run's turn it is (policy.h: fairness). */
static bool s_run_turn_before(const kiln_server_t *self, const kiln_crun_t *a, const kiln_crun_t *b)
{
    kiln_policy_run_t x = {a->id, a->n_leased, a->served_seq, a->ready[a->n_ready - 1]->ready_seq};
    kiln_policy_run_t y = {b->id, b->n_leased, b->served_seq, b->ready[b->n_ready - 1]->ready_seq};
    return kiln_policy_turn_before(self->policy, &x, &y);
}

static size_t s_free_slots(const kiln_server_t *self)
{
    size_t n = 0;
    for (size_t i = 0; i < self->n_workers; i++) {
        const kiln_cworker_t *w = self->workers[i];
        if (!w->draining && w->busy < w->slots)
            n += w->slots - w->busy;
    }
    return n;
}

/* Room to queue jobs on workers about to free a slot (s_prefetchable);
 * with bound set, on any worker that queues at all (an upper bound). */
static size_t s_queue_room(const kiln_server_t *self, int64_t now, bool bound)
{
    size_t n = 0;
    for (size_t i = 0; i < self->n_workers; i++) {
        const kiln_cworker_t *w = self->workers[i];
        if (w->cap > w->slots && !w->draining && (bound || s_prefetchable(w, now)))
            n += bound ? w->cap - w->slots : w->cap - w->busy;
    }
    return n;
}

void kiln_dispatch_now(kiln_server_t *self)
{
    if (!kiln_queue_connected(self->queue) || !self->n_ready)
        return; /* Redis down: paused until it is back */
    /* History's disk full: nothing new starts until its writes are in, so
     * what waits in memory is bounded by the jobs already running. */
    kiln_history_health_t h;
    kiln_history_health(self->history, &h);
    if (!h.writable)
        return;
    int64_t now = kiln_clock_wall_ms();
    size_t free_slots = s_free_slots(self);
    size_t room = s_queue_room(self, now, true);
    if (!free_slots && !room)
        return;
    size_t cap = free_slots + room < self->n_ready ? free_slots + room : self->n_ready;
    kiln_cjob_t **placed = malloc(cap * sizeof *placed);
    size_t n_placed = 0;
    if (!placed) {
        kiln_log_error("dispatch: out of memory");
        return;
    }
    bool own_batch = !self->in_batch;
    if (own_batch)
        kiln_queue_batch_begin(self->queue);
    /* Free slots first; then, if jobs are left, queue them on workers about
     * to free one. */
    for (int phase = 0; phase < 2; phase++) {
        bool queue = phase == 1;
        /* The first phase may have just made some workers full. */
        size_t limit = n_placed + (queue ? s_queue_room(self, now, false) : free_slots);
        if (limit > cap)
            limit = cap;
        uint64_t pass = ++self->dispatch_pass;
        /* Label sets no free worker has: slots only fill up during a pass, so
         * their other jobs are skipped without asking every worker again. */
        const char *unplaceable[16];
        size_t n_unplaceable = 0;
        while (n_placed < limit) {
            kiln_crun_t *run = NULL;
            for (size_t r = 0; r < self->n_runs; r++) {
                kiln_crun_t *o = self->runs[r];
                if (o->n_ready && o->blocked_pass != pass &&
                    (!run || s_run_turn_before(self, o, run)))
                    run = o;
            }
            if (!run)
                break;
            bool found = false;
            for (size_t i = run->n_ready; i-- > 0 && !found;) {
                kiln_cjob_t *job = run->ready[i];
                bool known = false;
                for (size_t k = 0; k < n_unplaceable && !known; k++)
                    known = strcmp(unplaceable[k], job->labels) == 0;
                if (known)
                    continue;
                bool held;
                kiln_cworker_t *w = s_pick_worker(self, job, queue, now, &held);
                if (held)
                    continue;
                if (!w) {
                    if (n_unplaceable < 16)
                        unplaceable[n_unplaceable++] = job->labels;
                    continue;
                }
                s_place(self, job, w);
                placed[n_placed++] = job;
                found = true;
            }
            if (!found)
                run->blocked_pass = pass;
        }
    }
    /* The leases are written to Redis before any assignment goes out, so
     * even if we die now Redis applies them; their replies are read after
     * the assignments are sent: waiting for Redis to be scheduled was most
     * of the time between a job's end and the next one's start. */
    if (n_placed && kiln_queue_send(self->queue) != 0) {
        kiln_log_error("dispatch: %s", kiln_error_last());
        self->redis_dirty = true;
        for (size_t i = 0; i < n_placed; i++)
            s_unplace(self, placed[i]);
        n_placed = 0;
    }
    if (kiln_history_begin(self->history) != 0)
        kiln_log_error("dispatch: %s", kiln_error_last());
    for (size_t i = 0; i < n_placed; i++)
        s_commit_placement(self, placed[i]);
    if (kiln_history_commit(self->history) != 0)
        kiln_log_error("dispatch: the attempts could not be recorded: %s", kiln_error_last());
    if (!own_batch) {
        /* Inside a burst the assignments wait for its commit
         * (kiln_proto_worker_flush), so they can carry the acknowledgements that
         * wait for it too. */
        if (s_outgoing_add(self, placed, n_placed) == 0) {
            free(placed);
            return;
        }
        kiln_log_warn("dispatch: %s; assignments sent at once", kiln_error_last());
    }
    kiln_dispatch_send_placed(self, placed, n_placed);
    /* Redis's replies are read later (s_queue_settle): if it refused a
     * lease (it lost writes, or was cut off), the job still runs under our
     * token and reconcile writes our view back, as for any write it missed. */
    if (own_batch && kiln_queue_batch_send(self->queue) != 0) {
        kiln_log_warn("%s", kiln_error_last());
        self->redis_dirty = true;
    }
    free(placed);
    kiln_dispatch_lose_undeliverable(self);
}

/* Jobs placed inside a burst, kept for kiln_proto_worker_flush. */
static int s_outgoing_add(kiln_server_t *self, kiln_cjob_t **placed, size_t n)
{
    if (self->n_outgoing + n > self->cap_outgoing) {
        size_t cap = self->cap_outgoing ? self->cap_outgoing : 64;
        while (cap < self->n_outgoing + n)
            cap *= 2;
        kiln_cjob_t **grown = realloc(self->outgoing, cap * sizeof *grown);
        if (!grown) {
            kiln_error_set("out of memory");
            return -1;
        }
        self->outgoing = grown;
        self->cap_outgoing = cap;
    }
    for (size_t i = 0; i < n; i++) {
        placed[i]->worker->assign_outgoing = true;
        self->outgoing[self->n_outgoing++] = placed[i];
    }
    return 0;
}

/* Sends the placed jobs' assignments. A worker we cannot deliver to is
 * marked; it is lost (kiln_dispatch_lose_undeliverable) only after every send, since
 * losing it frees it and later placements may name it. */
void kiln_dispatch_send_placed(kiln_server_t *self, kiln_cjob_t **placed, size_t n_placed)
{
    for (size_t i = 0; i < n_placed; i++) {
        kiln_cjob_t *job = placed[i];
        job->worker->assign_outgoing = false;
        if (job->worker->undeliverable)
            continue;
        int rc = kiln_assign_send(self, job, job->worker);
        if (rc == KILN_ETOOBIG) {
            /* The job's own doing (what it is given is over a message):
             * it fails, saying so; its worker is not to blame. */
            kiln_attempts_undeliverable(self, job, kiln_error_last());
        } else if (rc != 0) {
            kiln_log_warn("dispatch: job %s to worker %s: %s", job->key, job->worker->name,
                          kiln_error_last());
            job->worker->undeliverable = true;
        } else {
            kiln_watch_emit_job(self, job, KILN__EVENT_KIND__EVENT_JOB_STARTED, 0);
        }
    }
}

void kiln_dispatch_lose_undeliverable(kiln_server_t *self)
{
    for (;;) {
        kiln_cworker_t *gone = NULL;
        for (size_t i = 0; i < self->n_workers && !gone; i++)
            if (self->workers[i]->undeliverable)
                gone = self->workers[i];
        if (!gone)
            break;
        kiln_workers_lost(self, gone, "cannot deliver a job");
    }
}

/* Inside a burst of worker messages dispatch waits for the burst's end, so
 * that one pass places everything the burst freed. */
void kiln_dispatch(kiln_server_t *self)
{
    if (self->in_batch) {
        self->dispatch_pending = true;
        return;
    }
    kiln_dispatch_now(self);
}
