/* agent.c: the worker's session with its coordinator (see agent.h).
 *
 * Hello (with the jobs it holds), heartbeats, assignments taken into free
 * slots or queued (prefetch), cancels, drains (SIGTERM, a request, a spot
 * notice), signals, and the loop that waits on the socket, the jobs' pipes
 * and the timers. A job's own life is job.c's; results kept until
 * acknowledged are outbox.c's.
 */
#include "worker/agent_int.h"
#include "worker/imagestore.h"

#include <assert.h>
#include <errno.h>
#include <pwd.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <sodium.h>
#include <zmq.h>

#include "common/clock.h"
#include "common/error.h"
#include "common/gitcreds.h"
#include "common/fs.h"
#include "common/labels.h"
#include "common/log.h"
#include "common/transport.h"
#include "lang/shell.h"
#include "lang/workflow.h"

extern char **environ;

void kiln_agent_config_defaults(kiln_agent_config_t *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->slots = 1;
    cfg->prefetch = 1;
    cfg->heartbeat_ms = 1000;
    cfg->kill_grace_ms = KILN_EXEC_DEFAULT_GRACE_MS;
    cfg->drain_grace_ms = KILN_AGENT_DEFAULT_DRAIN_GRACE_MS;
    cfg->spot_window_ms = KILN_AGENT_DEFAULT_SPOT_WINDOW_MS;
    cfg->spot_margin_ms = KILN_AGENT_DEFAULT_SPOT_MARGIN_MS;
}

void kiln_agent_send(kiln_agent_t *self, Kiln__Envelope *env)
{
    int rc = kiln_transport_send(self->sock, NULL, 0, env);
    /* Not connected (the coordinator is away, or refused us: said once by
     * the monitor) is the usual reason, not worth a line a second. */
    if (rc != 0 && (self->handshaken || rc != KILN_EAGAIN))
        kiln_log_warn("send to coordinator failed: %s", kiln_error_last());
    else if (rc != 0)
        kiln_log_debug("send to coordinator failed: %s", kiln_error_last());
}

size_t kiln_agent_n_jobs(const kiln_agent_t *self)
{
    size_t n = self->n_queued;
    for (int i = 0; i < self->cfg.slots; i++)
        n += self->jobs[i] != NULL;
    return n;
}

/* Where slot's emptied workspace tree waits for its next job. The name
 * cannot be a job's (those start with the run number). */
void kiln_agent_spare_path(const kiln_agent_t *self, int slot, char *out, size_t cap)
{
    snprintf(out, cap, "%s/.spare-%d", self->cfg.work_dir, slot);
}

/* ------------------------------------------------------------ messages */

/* The jobs running or queued here, as the coordinator knows them: fills
 * running[] (room for KILN_AGENT_MAX_SLOTS + KILN_AGENT_MAX_PREFETCH) and
 * ptrs[], returns how many. */
static size_t s_list_jobs(const kiln_agent_t *self, Kiln__RunningJob *running,
                          Kiln__RunningJob **ptrs)
{
    size_t n = 0;
    for (int i = 0; i < self->cfg.slots + (int)self->n_queued; i++) {
        const Kiln__JobAssign *a;
        if (i < self->cfg.slots) {
            if (!self->jobs[i])
                continue;
            a = self->jobs[i]->a;
        } else {
            a = self->queued[i - self->cfg.slots]->assign;
        }
        kiln__running_job__init(&running[n]);
        running[n].job_key = a->job_key;
        running[n].token = a->token;
        ptrs[n] = &running[n];
        n++;
    }
    return n;
}

static void s_send_hello(kiln_agent_t *self)
{
    Kiln__Envelope env = KILN__ENVELOPE__INIT;
    Kiln__Hello h = KILN__HELLO__INIT;
    Kiln__RunningJob running[KILN_AGENT_MAX_SLOTS + KILN_AGENT_MAX_PREFETCH];
    /* A new session: the next heartbeat says what is warm here again. */
    self->holds_sent = false;
    self->holds_at = 0;
    /* Jobs whose results are not yet acknowledged are still held here: they
     * are reported too, so a restarted coordinator keeps their leases. */
    Kiln__RunningJob *held = calloc(self->n_results + 1, sizeof *held);
    Kiln__RunningJob **all =
        calloc(KILN_AGENT_MAX_SLOTS + KILN_AGENT_MAX_PREFETCH + self->n_results + 1, sizeof *all);
    if (!held || !all) {
        kiln_log_error("worker: out of memory for a hello");
        free(held);
        free(all);
        return;
    }
    size_t n = s_list_jobs(self, running, all);
    for (size_t i = 0; i < self->n_results; i++) {
        kiln__running_job__init(&held[i]);
        held[i].job_key = self->results[i].job_key;
        held[i].token = self->results[i].token;
        all[n++] = &held[i];
    }
    h.name = self->name;
    h.lookahead = self->null_executor ? 0 : (uint32_t)self->cfg.prefetch;
    h.labels = self->labels;
    h.n_labels = self->n_labels;
    h.slots = (uint32_t)self->cfg.slots;
    h.version = (char *)KILN_VERSION;
    h.hostname = self->hostname;
    h.running = all;
    h.n_running = n;
    h.instance = self->instance;
    env.body_case = KILN__ENVELOPE__BODY_HELLO;
    env.hello = &h;
    kiln_agent_send(self, &env);
    free(held);
    free(all);
}

/* When jobs must stop for want of word from the coordinator (monotonic),
 * or -1 when nothing runs. */
static int64_t s_fence_deadline(const kiln_agent_t *self)
{
    if (!self->lease_ms || (kiln_agent_n_jobs(self) == 0 && self->n_queued == 0))
        return -1;
    int64_t margin = self->heartbeat_ms < self->lease_ms / 2 ? self->heartbeat_ms : self->lease_ms / 2;
    return self->last_heard + self->lease_ms - margin;
}

bool kiln_agent_sweep_job(kiln_agent_t *self, const kiln_wjob_t *job)
{
    if (!self->cgroup)
        return true;
    /* Spared: the guard and every step still running (another slot's). */
    pid_t spare[KILN_AGENT_MAX_SLOTS + 8];
    size_t n = kiln_exec_live_groups(spare, KILN_AGENT_MAX_SLOTS + 4);
    pid_t guard = kiln_exec_guard_pid();
    if (guard > 0)
        spare[n++] = guard;
    char id[300];
    kiln_job_tracking_id(job, id, sizeof id);
    size_t killed = 0;
    int rc = kiln_cgroup_sweep(self->cgroup, id, spare, n, KILN_AGENT_SWEEP_TIMEOUT_MS, &killed);
    if (killed)
        kiln_log_warn("job %s: killed %zu process%s it left running", job->a->job_key, killed,
                      killed == 1 ? "" : "es");
    if (rc != 0) {
        kiln_log_error("job %s: %s", job->a->job_key, kiln_error_last());
        return false;
    }
    return true;
}

/* A worker frozen past its fence cannot stop its steps itself: the guard
 * does, unless it is told again (every heartbeat) first. */
void kiln_agent_arm_guard(kiln_agent_t *self)
{
    int64_t fence = s_fence_deadline(self);
    kiln_exec_guard_alive(fence >= 0 ? fence - kiln_clock_mono_ms() : 0);
}

static void s_send_heartbeat(kiln_agent_t *self)
{
    Kiln__Envelope env = KILN__ENVELOPE__INIT;
    Kiln__Heartbeat hb = KILN__HEARTBEAT__INIT;
    Kiln__RunningJob running[KILN_AGENT_MAX_SLOTS + KILN_AGENT_MAX_PREFETCH];
    Kiln__RunningJob *rp[KILN_AGENT_MAX_SLOTS + KILN_AGENT_MAX_PREFETCH];
    hb.running = rp;
    hb.n_running = s_list_jobs(self, running, rp);
    hb.draining = self->draining;
    hb.drain_deadline_ms = (uint64_t)(self->drain_deadline_wall > 0 ? self->drain_deadline_wall : 0);
    kiln_agent_store_holdings(self, &hb);
    env.body_case = KILN__ENVELOPE__BODY_HEARTBEAT;
    env.heartbeat = &hb;
    kiln_agent_send(self, &env);
    self->next_heartbeat = kiln_clock_mono_ms() + self->heartbeat_ms;
    kiln_agent_arm_guard(self);
}

/* The null executor: each step reported as started and succeeded (exit
 * code 0) and the job's result recorded, in the order and form of a real
 * run, so that the coordinator does all its work; nothing is created or
 * started here. */
static void s_null_job(kiln_agent_t *self, const Kiln__JobAssign *a)
{
    kiln_wjob_t job = {.agent = self, .a = a};
    int64_t now = kiln_clock_wall_ms();
    /* Every step ends within the hold: their results ride in the job's. */
    for (size_t i = 0; i < a->n_steps; i++)
        kiln_job_step_result(&job, i, KILN__OUTCOME__OUTCOME_SUCCESS, 0, 0, now, now);
    Kiln__JobResult extra = KILN__JOB_RESULT__INIT;
    Kiln__StepResult **held = kiln_job_held_into(&job, &extra);
    kiln_outbox_add(self, a->job_key, a->token, KILN__OUTCOME__OUTCOME_SUCCESS, now, NULL, &extra);
    free(held);
    free(job.held);
    kiln_log_debug("job %s attempt %u: %zu steps reported without running (null executor)",
                   a->job_key, a->attempt, a->n_steps);
}

static void s_start_assigned(kiln_agent_t *self, Kiln__Envelope **env_p, int slot);

/* Starts queued assignments while slots are free. */
static void s_start_queued(kiln_agent_t *self)
{
    for (int i = 0; i < self->cfg.slots && self->n_queued; i++) {
        if (self->jobs[i])
            continue;
        Kiln__Envelope *env = self->queued[0];
        memmove(&self->queued[0], &self->queued[1], --self->n_queued * sizeof self->queued[0]);
        s_start_assigned(self, &env, i);
        if (env)
            kiln__envelope__free_unpacked(env, NULL);
    }
}

/* Hands every queued assignment back with outcome (cancelled, drained,
 * stopped): none of them started. */
static void s_queued_return(kiln_agent_t *self, Kiln__Outcome outcome, const char *why)
{
    for (size_t i = 0; i < self->n_queued; i++) {
        const Kiln__JobAssign *a = self->queued[i]->assign;
        kiln_outbox_add(self, a->job_key, a->token, outcome, kiln_clock_wall_ms(), why, NULL);
        kiln__envelope__free_unpacked(self->queued[i], NULL);
    }
    self->n_queued = 0;
}

static void s_on_assign(kiln_agent_t *self, kiln_transport_msg_t *msg)
{
    const Kiln__JobAssign *a = msg->env->assign;
    int slot = -1;
    for (size_t i = 0; i < a->n_acks; i++)
        kiln_outbox_ack(self, a->acks[i]);
    for (size_t i = 0; i < self->n_queued; i++) {
        if (strcmp(self->queued[i]->assign->job_key, a->job_key) == 0) {
            kiln_log_warn("assignment of %s while it is queued here; ignored", a->job_key);
            return;
        }
    }
    for (int i = 0; i < self->cfg.slots; i++) {
        if (self->jobs[i] && strcmp(self->jobs[i]->a->job_key, a->job_key) == 0) {
            kiln_log_warn("assignment of %s while it runs here; ignored", a->job_key);
            return;
        }
        if (!self->jobs[i] && slot < 0)
            slot = i;
    }
    if (slot < 0 && !self->draining && !self->stopping && !self->null_executor &&
        self->n_queued < (size_t)self->cfg.prefetch) {
        /* Every slot is busy and the coordinator expects one to free soon:
         * the job starts the moment one does. */
        self->queued[self->n_queued++] = msg->env;
        msg->env = NULL;
        kiln_log_debug("job %s attempt %u queued", a->job_key, a->attempt);
        return;
    }
    s_start_assigned(self, &msg->env, slot);
}

/* Starts the assignment *env_p in slot (-1: none free, so it is refused).
 * Takes the envelope when the job starts (*env_p becomes NULL). */
static void s_start_assigned(kiln_agent_t *self, Kiln__Envelope **env_p, int slot)
{
    const Kiln__JobAssign *a = (*env_p)->assign;
    int rc;
    Kiln__Envelope reply = KILN__ENVELOPE__INIT;
    Kiln__JobResult refused = KILN__JOB_RESULT__INIT;
    refused.job_key = a->job_key;
    refused.token = a->token;
    refused.outcome = KILN__OUTCOME__OUTCOME_INFRA_ERROR;
    reply.body_case = KILN__ENVELOPE__BODY_JOB_RESULT;
    reply.job_result = &refused;
    if (slot < 0 || self->draining || self->stopping) {
        refused.message = (char *)(slot < 0 ? "no free slot" : "worker is draining");
        kiln_agent_send(self, &reply);
        return;
    }
    if (self->null_executor) {
        s_null_job(self, a);
        return;
    }
    kiln_wjob_t *job = calloc(1, sizeof *job);
    if (!job) {
        refused.message = (char *)"worker out of memory";
        kiln_agent_send(self, &reply);
        return;
    }
    job->agent = self;
    job->slot = slot;
    job->env = *env_p;
    *env_p = NULL; /* the job owns the assignment now */
    job->a = job->env->assign;
    kiln_agent_store_secret(job->store_secret);
    job->started_ms = kiln_clock_wall_ms();
    if (job->a->timeout_ms)
        job->deadline = kiln_clock_mono_ms() + (int64_t)job->a->timeout_ms;
    char spare[KILN_WORKSPACE_PATH_MAX];
    kiln_agent_spare_path(self, slot, spare, sizeof spare);
    rc = kiln_workspace_create(&job->ws, self->cfg.work_dir,
                               self->spare_ready[slot] ? spare : NULL, self->spare_steps[slot],
                               (unsigned long long)job->a->run_id, job->a->job_id,
                               job->a->attempt);
    self->spare_ready[slot] = false;
    if (rc != 0) {
        int e = errno;
        kiln_log_error("job %s: %s", job->a->job_key, kiln_error_last());
        refused.message = (char *)kiln_error_last();
        /* A full or failing disk is this worker's trouble, not the job's. */
        refused.worker_unwell = e == ENOSPC || e == EDQUOT || e == EROFS || e == EIO;
        kiln_agent_send(self, &reply);
        kiln_job_free(&job);
        return;
    }
    if (kiln_jobctx_new(&job->jx, job->a, &job->ws, self->name, self->tool_cache) != 0) {
        int e = errno;
        kiln_log_error("job %s: %s", job->a->job_key, kiln_error_last());
        refused.message = (char *)kiln_error_last();
        refused.worker_unwell = e == ENOSPC || e == EDQUOT || e == EROFS || e == EIO;
        kiln_agent_send(self, &reply);
        kiln_workspace_remove(&job->ws);
        kiln_job_free(&job);
        return;
    }
    job->step_names = calloc(job->a->n_steps ? job->a->n_steps : 1, sizeof *job->step_names);
    job->step_coe = calloc(job->a->n_steps ? job->a->n_steps : 1, sizeof *job->step_coe);
    for (size_t i = 0; job->step_coe && i < job->a->n_steps; i++)
        job->step_coe[i] = job->a->steps[i]->continue_on_error;
    /* No JobAccepted: the first StepStarted (or the result) follows at once
     * and says as much; the coordinator only ever ignored it. */
    self->jobs[slot] = job;
    kiln_log_info("job %s attempt %u: %zu steps", job->a->job_key, job->a->attempt,
                  job->a->n_steps);
    kiln_job_advance(job);
}

static void s_on_cancel(kiln_agent_t *self, const Kiln__CancelJob *c)
{
    for (size_t i = 0; i < self->n_queued; i++) {
        const Kiln__JobAssign *a = self->queued[i]->assign;
        if (strcmp(a->job_key, c->job_key) != 0 || a->token != c->token)
            continue;
        kiln_log_info("job %s: cancelled by the coordinator before it started", c->job_key);
        kiln_outbox_add(self, a->job_key, a->token, KILN__OUTCOME__OUTCOME_CANCELLED,
                     kiln_clock_wall_ms(), "cancelled before it started", NULL);
        kiln__envelope__free_unpacked(self->queued[i], NULL);
        memmove(&self->queued[i], &self->queued[i + 1],
                (--self->n_queued - i) * sizeof self->queued[0]);
        return;
    }
    for (int i = 0; i < self->cfg.slots; i++) {
        kiln_wjob_t *job = self->jobs[i];
        if (!job || strcmp(job->a->job_key, c->job_key) != 0 || job->a->token != c->token)
            continue;
        kiln_log_info("job %s: cancelled by the coordinator", c->job_key);
        job->cancelled = true;
        if (job->exec)
            kiln_exec_cancel(job->exec);
        else
            kiln_job_advance(job);
        return;
    }
}

/* Enters drain (or tightens its deadline): no new jobs; what still runs at
 * the deadline is handed back. deadline_wall 0: no deadline. */
static void s_start_drain(kiln_agent_t *self, int64_t deadline_wall, const char *why)
{
    int64_t now_wall = kiln_clock_wall_ms();
    bool tighter = deadline_wall && (!self->drain_deadline_wall ||
                                     deadline_wall < self->drain_deadline_wall);
    if (self->draining && !tighter)
        return;
    self->draining = true;
    if (tighter) {
        self->drain_deadline_wall = deadline_wall;
        int64_t left = deadline_wall - now_wall;
        self->drain_deadline = kiln_clock_mono_ms() + (left > 0 ? left : 0);
    }
    /* The coordinator hears that we drain before it gets anything back, so
     * that it gives nothing back to us. */
    s_send_heartbeat(self);
    s_queued_return(self, KILN__OUTCOME__OUTCOME_DRAINED, "the worker is draining");
    kiln_log_info("draining (%s): %zu jobs running%s", why, kiln_agent_n_jobs(self),
                  self->drain_deadline ? ", with a deadline" : "");
}

static void s_abandon_jobs(kiln_agent_t *self, Kiln__Outcome outcome, const char *why);

/* Doubles *backoff_ms (from first, up to KILN_AGENT_REFUSED_BACKOFF_MAX_MS)
 * and returns when the next try is due (monotonic). */
static int64_t s_backoff(int64_t *backoff_ms, int64_t first)
{
    *backoff_ms = *backoff_ms ? *backoff_ms * 2 : first;
    if (*backoff_ms > KILN_AGENT_REFUSED_BACKOFF_MAX_MS)
        *backoff_ms = KILN_AGENT_REFUSED_BACKOFF_MAX_MS;
    return kiln_clock_mono_ms() + *backoff_ms;
}

/* The coordinator will not have this worker (its name is not its key's,
 * or another process with its key is connected): what it runs is no
 * longer its to run, so it stops at once; it says hello again later, with
 * backoff, in case the cause is fixed (the other process gone, the
 * allow-list reloaded). */
static void s_on_refused(kiln_agent_t *self, const char *why)
{
    self->refused_until = s_backoff(&self->refuse_backoff_ms, 500);
    self->welcomed = false;
    kiln_log_error("the coordinator refused this worker: %s; trying again in %lld ms", why,
                   (long long)self->refuse_backoff_ms);
    if (kiln_agent_n_jobs(self) > 0 || self->n_queued > 0)
        s_abandon_jobs(self, KILN__OUTCOME__OUTCOME_INFRA_ERROR,
                       "the coordinator refused the worker running it");
}

/* Checked as soon as the loop wakes, before any message is read: after a
 * freeze (SIGSTOP, a paused VM) what waits in the socket arrived while the
 * lease ran out, and must not count as having been heard in time. */
static bool s_self_fence(kiln_agent_t *self, int64_t now)
{
    int64_t deadline = s_fence_deadline(self);
    if (deadline < 0 || now < deadline)
        return false;
    char why[200];
    snprintf(why, sizeof why,
             "no word from the coordinator for %lld ms (its lease is %lld ms): stopped, as "
             "another worker may be running it now",
             (long long)(now - self->last_heard), (long long)self->lease_ms);
    kiln_log_error("%s", why);
    s_abandon_jobs(self, KILN__OUTCOME__OUTCOME_INFRA_ERROR, why);
    return true;
}

static void s_on_socket(kiln_agent_t *self)
{
    for (int i = 0; i < 1000; i++) {
        kiln_transport_msg_t msg;
        int rc = kiln_transport_recv(self->sock, false, &msg);
        if (rc == KILN_EAGAIN)
            return;
        if (rc != 0) {
            kiln_log_warn("dropped a message from the coordinator: %s", kiln_error_last());
            continue;
        }
        self->last_heard = kiln_clock_mono_ms();
        switch (msg.env->body_case) {
        case KILN__ENVELOPE__BODY_HEARTBEAT: break; /* heard: that is all it says */
        case KILN__ENVELOPE__BODY_WELCOME:
            if (msg.env->welcome->refused[0]) {
                s_on_refused(self, msg.env->welcome->refused);
            } else if (msg.env->welcome->rehello) {
                if (!self->refused_until)
                    s_send_hello(self);
            } else {
                self->refuse_backoff_ms = 0;
                if (!self->welcomed)
                    kiln_log_info("registered with the coordinator as %s",
                                  msg.env->welcome->worker_id);
                self->welcomed = true;
                if (msg.env->welcome->heartbeat_ms >= 10)
                    self->heartbeat_ms = (int)msg.env->welcome->heartbeat_ms;
                if (msg.env->welcome->lease_ms)
                    self->lease_ms = (int64_t)msg.env->welcome->lease_ms;
                /* A new session: whatever credit was in flight is gone. */
                if (msg.env->welcome->log_window)
                    self->log_window = (int64_t)msg.env->welcome->log_window;
                self->credit = self->log_window;
                for (size_t r = 0; r < self->n_results; r++)
                    kiln_outbox_send(self, &self->results[r]);
                if (self->draining)
                    s_send_heartbeat(self);
            }
            break;
        case KILN__ENVELOPE__BODY_ASSIGN: s_on_assign(self, &msg); break;
        case KILN__ENVELOPE__BODY_CANCEL: s_on_cancel(self, msg.env->cancel); break;
        case KILN__ENVELOPE__BODY_RESULT_ACK: kiln_outbox_ack(self, msg.env->result_ack); break;
        case KILN__ENVELOPE__BODY_STORE_REPLY: kiln_agent_store_on_reply(self, msg.env->store_reply); break;
        case KILN__ENVELOPE__BODY_CREDIT:
            self->credit += (int64_t)msg.env->credit->log_bytes;
            if (self->credit > self->log_window)
                self->credit = self->log_window;
            break;
        case KILN__ENVELOPE__BODY_DRAIN: {
            const Kiln__Drain *d = msg.env->drain;
            int64_t deadline = (int64_t)d->deadline_ms;
            if (!deadline && self->cfg.drain_grace_ms > 0)
                deadline = kiln_clock_wall_ms() + self->cfg.drain_grace_ms;
            s_start_drain(self, deadline, d->reason[0] ? d->reason : "coordinator asked");
            break;
        }
        default:
            kiln_log_warn("unexpected message %d from the coordinator; dropped",
                          (int)msg.env->body_case);
            break;
        }
        kiln_transport_msg_clear(&msg);
    }
}

/* Kills every running step and hands the jobs back (as infrastructure
 * failures when stopping, as drained at a drain deadline), so the
 * coordinator re-dispatches them elsewhere at once. */
static void s_abandon_jobs(kiln_agent_t *self, Kiln__Outcome outcome, const char *why)
{
    s_queued_return(self, outcome, why);
    for (int i = 0; i < self->cfg.slots; i++) {
        kiln_wjob_t *job = self->jobs[i];
        if (!job)
            continue;
        kiln_exec_destroy(&job->exec);
        (void)kiln_agent_sweep_job(self, job);
        kiln_job_flush_held(job);
        kiln_outbox_add(self, job->a->job_key, job->a->token, outcome, job->started_ms, why, NULL);
        if (!self->cfg.keep_workspaces)
            kiln_workspace_remove(&job->ws);
        kiln_job_free(&self->jobs[i]);
    }
}

static void s_on_signal(kiln_agent_t *self)
{
    struct signalfd_siginfo si;
    while (read(self->sigfd, &si, sizeof si) == sizeof si) {
        if (si.ssi_signo == SIGCHLD) {
            for (int i = 0; i < self->cfg.slots; i++)
                if (self->jobs[i] && self->jobs[i]->exec)
                    kiln_exec_on_sigchld(self->jobs[i]->exec);
            kiln_notice_on_sigchld(self->notice);
        } else if (si.ssi_signo == SIGTERM && !self->sigterm_seen) {
            self->sigterm_seen = true;
            s_start_drain(self,
                          self->cfg.drain_grace_ms > 0
                              ? kiln_clock_wall_ms() + self->cfg.drain_grace_ms
                              : 0,
                          "SIGTERM");
        } else {
            kiln_log_info("signal %u: stopping now", si.ssi_signo);
            self->stopping = true;
        }
    }
}

/* Whether a draining worker is done: no jobs, and its results acknowledged
 * (or it has waited long enough for that). */
static bool s_drained(kiln_agent_t *self, int64_t now)
{
    if (!self->draining || kiln_agent_n_jobs(self) > 0)
        return false;
    if (self->n_results == 0)
        return true;
    if (!self->exit_linger_until)
        self->exit_linger_until = now + KILN_AGENT_EXIT_LINGER_MS;
    return now >= self->exit_linger_until;
}

static void s_disconnect(kiln_agent_t *self)
{
    if (self->sock)
        zmq_socket_monitor(self->sock, NULL, 0);
    if (self->monitor) {
        int zero = 0;
        zmq_setsockopt(self->monitor, ZMQ_LINGER, &zero, sizeof zero);
        zmq_close(self->monitor);
    }
    if (self->sock)
        zmq_close(self->sock);
    self->sock = self->monitor = NULL;
}

/* The connection to the coordinator, watched by a monitor. No routing id
 * of our own: the coordinator knows us by our key. */
static int s_connect(kiln_agent_t *self)
{
    char ep[64];
    snprintf(ep, sizeof ep, "inproc://kiln-worker-monitor-%u", ++self->n_connections);
    self->monitor = zmq_socket(self->zctx, ZMQ_PAIR);
    if (self->monitor && zmq_connect(self->monitor, ep) != 0) {
        zmq_close(self->monitor);
        self->monitor = NULL;
    }
    self->sock = kiln_transport_connect_monitored(self->zctx, self->cfg.coordinator, &self->own,
                                                  self->server.public_z85, NULL,
                                                  self->monitor ? ep : NULL);
    self->handshaken = false;
    self->failed_handshakes = 0;
    return self->sock ? 0 : -1;
}

static void s_schedule_reconnect(kiln_agent_t *self, const char *why)
{
    self->reconnect_at = s_backoff(&self->reconnect_backoff_ms, 1000);
    kiln_log_error("%s; trying again in %lld ms", why, (long long)self->reconnect_backoff_ms);
}

/* The connection's events: a key the coordinator refuses, or handshakes
 * that keep failing (a wrong server key), are said, and the connection is
 * made again later (the allow-list may be fixed and reloaded meanwhile). */
static void s_on_monitor(kiln_agent_t *self)
{
    uint16_t event;
    uint32_t value;
    while (kiln_transport_monitor_event(self->monitor, &event, &value) == 0) {
        char why[600];
        if (event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
            self->handshaken = true;
            self->failed_handshakes = 0;
            self->reconnect_backoff_ms = 0;
        } else if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH && !self->reconnect_at) {
            snprintf(why, sizeof why,
                     "the coordinator at %s refused this worker's key (%s): it is not in the "
                     "farm's allow-list (ALLOW/workers/*.pub)",
                     self->cfg.coordinator, self->cfg.key_path);
            s_schedule_reconnect(self, why);
        } else if ((event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL ||
                    event == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL) &&
                   !self->handshaken && ++self->failed_handshakes == 3) {
            snprintf(why, sizeof why,
                     "the CURVE handshake with %s keeps failing: is %s the coordinator's public "
                     "key?",
                     self->cfg.coordinator, self->cfg.server_key);
            kiln_log_error("%s", why);
        }
    }
}

int kiln_agent_run(kiln_agent_t *self)
{
    enum { MAX_ITEMS = 4 + 2 * KILN_AGENT_MAX_SLOTS + KILN_NOTICE_MAX_FDS };
    s_send_hello(self);
    self->next_heartbeat = kiln_clock_mono_ms() + self->heartbeat_ms;
    while (!self->stopping) {
        int64_t now = kiln_clock_mono_ms();
        if (s_drained(self, now))
            break;
        zmq_pollitem_t items[MAX_ITEMS];
        kiln_wjob_t *owner[MAX_ITEMS];
        int n = 0, first_notice = 0;
        if (self->reconnect_at && now >= self->reconnect_at) {
            self->reconnect_at = 0;
            s_disconnect(self);
            if (s_connect(self) != 0) {
                kiln_log_error("%s", kiln_error_last());
                return -1;
            }
            kiln_log_info("connecting to %s again", self->cfg.coordinator);
            s_send_hello(self);
        }
        items[n++] = (zmq_pollitem_t){self->sock, 0, ZMQ_POLLIN, 0};
        items[n++] = (zmq_pollitem_t){NULL, self->sigfd, ZMQ_POLLIN, 0};
        int64_t next = self->refused_until ? self->refused_until : self->next_heartbeat;
        if (self->reconnect_at && self->reconnect_at < next)
            next = self->reconnect_at;
        for (int i = 0; i < self->cfg.slots; i++) {
            kiln_wjob_t *job = self->jobs[i];
            if (!job || !job->exec)
                continue;
            /* Without credit the pipes are not read: the step waits on its
             * own writes until the coordinator has caught up. */
            if (self->credit > 0) {
                int fds[2];
                int k = kiln_exec_fds(job->exec, fds);
                for (int f = 0; f < k; f++) {
                    owner[n] = job;
                    items[n++] = (zmq_pollitem_t){NULL, fds[f], ZMQ_POLLIN, 0};
                }
            }
            int64_t d = kiln_exec_next_deadline(job->exec);
            if (d >= 0 && d < next)
                next = d;
        }
        for (int i = 0; i < self->cfg.slots; i++)
            if (self->jobs[i] && self->jobs[i]->hold_until && self->jobs[i]->hold_until < next)
                next = self->jobs[i]->hold_until;
        first_notice = n;
        if (self->notice && !self->draining) {
            int fds[KILN_NOTICE_MAX_FDS];
            short ev[KILN_NOTICE_MAX_FDS];
            int k = kiln_notice_fds(self->notice, fds, ev, KILN_NOTICE_MAX_FDS);
            for (int f = 0; f < k; f++)
                items[n++] = (zmq_pollitem_t){NULL, fds[f], ev[f], 0};
            int64_t d = kiln_notice_next_deadline(self->notice);
            if (d >= 0 && d < next)
                next = d;
        }
        for (size_t r = 0; r < self->n_results; r++)
            if (self->results[r].resend_at < next)
                next = self->results[r].resend_at;
        if (self->drain_deadline && self->drain_deadline < next)
            next = self->drain_deadline;
        if (self->exit_linger_until && self->exit_linger_until < next)
            next = self->exit_linger_until;
        int64_t fence = s_fence_deadline(self);
        if (fence >= 0 && fence < next)
            next = fence;
        int monitor_at = -1, store_at = -1;
        if (self->monitor) {
            monitor_at = n;
            items[n++] = (zmq_pollitem_t){self->monitor, 0, ZMQ_POLLIN, 0};
        }
        if (self->store_sock) {
            store_at = n;
            items[n++] = (zmq_pollitem_t){self->store_sock, 0, ZMQ_POLLIN, 0};
        }
        long timeout = next > now ? (long)(next - now) : 0;
        if (zmq_poll(items, n, timeout) == -1) {
            if (zmq_errno() == EINTR)
                continue;
            kiln_log_error("zmq_poll: %s", zmq_strerror(zmq_errno()));
            return -1;
        }
        if (s_self_fence(self, kiln_clock_mono_ms()))
            continue; /* the jobs polled for are gone */
        if (monitor_at >= 0 && (items[monitor_at].revents & ZMQ_POLLIN))
            s_on_monitor(self);
        if (items[1].revents & ZMQ_POLLIN)
            s_on_signal(self);
        for (int i = 2; i < first_notice; i++)
            if (items[i].revents & (ZMQ_POLLIN | ZMQ_POLLERR))
                kiln_exec_on_readable(owner[i]->exec, items[i].fd);
        now = kiln_clock_mono_ms();
        if (self->notice && !self->draining && kiln_notice_work(self->notice, now)) {
            int64_t wall = kiln_clock_wall_ms();
            int64_t left = self->cfg.spot_window_ms - self->cfg.spot_margin_ms;
            s_start_drain(self, wall + (left > 0 ? left : 0), kiln_notice_reason(self->notice));
        }
        for (int i = 0; i < self->cfg.slots; i++) {
            kiln_wjob_t *job = self->jobs[i];
            if (!job)
                continue;
            if (job->exec) {
                int64_t d = kiln_exec_next_deadline(job->exec);
                if (d >= 0 && d <= now)
                    kiln_exec_on_timer(job->exec, now);
            }
            if (job->hold_until && now >= job->hold_until)
                kiln_job_flush_held(job);
            kiln_job_advance(job); /* may free the job */
        }
        if (items[0].revents & ZMQ_POLLIN)
            s_on_socket(self);
        if (store_at >= 0 && (items[store_at].revents & ZMQ_POLLIN))
            kiln_agent_store_on_step(self);
        s_start_queued(self);
        now = kiln_clock_mono_ms();
        if (self->drain_deadline && now >= self->drain_deadline && kiln_agent_n_jobs(self) > 0) {
            kiln_log_warn("drain deadline reached: handing back %zu jobs", kiln_agent_n_jobs(self));
            s_abandon_jobs(self, KILN__OUTCOME__OUTCOME_DRAINED,
                           "the worker was drained before the job finished");
        }
        for (size_t r = 0; r < self->n_results; r++)
            if (self->results[r].resend_at <= now)
                kiln_outbox_send(self, &self->results[r]);
        if (self->refused_until && now >= self->refused_until) {
            self->refused_until = 0;
            s_send_hello(self);
        }
        if (now >= self->next_heartbeat && !self->refused_until)
            s_send_heartbeat(self);
    }
    if (self->stopping) {
        self->draining = true;
        s_send_heartbeat(self);
        s_abandon_jobs(self, KILN__OUTCOME__OUTCOME_DRAINED, "the worker stopped");
    }
    else
        s_send_heartbeat(self);
    kiln_log_info("worker %s exits", self->name);
    return 0;
}

const char *kiln_agent_name(const kiln_agent_t *self)
{
    return self->name;
}

/* What every step's environment starts from: PATH, HOME, USER and LOGNAME,
 * LANG (C.UTF-8 unless the worker has its own) and LC_ALL when set, then
 * the variables --pass-env names (from the worker's environment, when set)
 * and --env NAME=VALUE. Everything else of the daemon's environment stays
 * out of the steps, as a hosted runner gives a defined one. */
static int s_base_env(kiln_agent_t *self, const kiln_agent_config_t *cfg)
{
    struct passwd *pw = getpwuid(geteuid());
    const char *path = getenv("PATH"), *home = getenv("HOME"), *lang = getenv("LANG");
    const char *user = pw ? pw->pw_name : getenv("USER");
    if (kiln_kv_set(&self->base_env, "PATH", path && path[0] ? path : KILN_AGENT_DEFAULT_PATH) ||
        kiln_kv_set(&self->base_env, "HOME", home && home[0] ? home : pw ? pw->pw_dir : "/") ||
        kiln_kv_set(&self->base_env, "LANG", lang && lang[0] ? lang : "C.UTF-8") ||
        (user && (kiln_kv_set(&self->base_env, "USER", user) ||
                  kiln_kv_set(&self->base_env, "LOGNAME", user))) ||
        (getenv("LC_ALL") && kiln_kv_set(&self->base_env, "LC_ALL", getenv("LC_ALL")))) {
        kiln_error_set("worker: out of memory");
        return -1;
    }
    for (size_t i = 0; i < cfg->n_pass_env; i++) {
        const char *v = getenv(cfg->pass_env[i]);
        if (!cfg->pass_env[i][0] || strchr(cfg->pass_env[i], '=')) {
            kiln_error_set("worker: --pass-env '%s': expected a variable's name", cfg->pass_env[i]);
            return KILN_EINVAL;
        }
        if (v && kiln_kv_set(&self->base_env, cfg->pass_env[i], v)) {
            kiln_error_set("worker: out of memory");
            return -1;
        }
    }
    for (size_t i = 0; i < cfg->n_env; i++) {
        const char *eq = strchr(cfg->env[i], '=');
        if (!eq || eq == cfg->env[i]) {
            kiln_error_set("worker: --env '%s': expected NAME=VALUE", cfg->env[i]);
            return KILN_EINVAL;
        }
        int rc = kiln_kv_setn(&self->base_env, cfg->env[i], (size_t)(eq - cfg->env[i]), eq + 1,
                              strlen(eq + 1));
        if (rc != 0) {
            kiln_error_set("worker: --env '%s': %s", cfg->env[i],
                           rc == KILN_ETOOBIG ? "too long" : "out of memory");
            return rc == KILN_ETOOBIG ? KILN_EINVAL : -1;
        }
    }
    /* The farm's cache registry for image builds' layers (--cache-to,
     * --cache-from), named to every step. */
    if (cfg->cache_registry && cfg->cache_registry[0] &&
        kiln_kv_set(&self->base_env, "KILN_CACHE_REGISTRY", cfg->cache_registry) != 0) {
        kiln_error_set("worker: --cache-registry: too long");
        return KILN_EINVAL;
    }
    return 0;
}

/* The built-in actions/checkout runs as kiln-checkout, installed beside
 * kiln-worker; a worker without it fails such steps, saying so. */
static void s_find_checkout(kiln_agent_t *self)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    self->checkout_program[0] = '\0';
    if (n <= 0)
        return;
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (!slash)
        return;
    *slash = '\0';
    snprintf(self->checkout_program, sizeof self->checkout_program, "%s/kiln-checkout", exe);
}

int kiln_agent_new(kiln_agent_t **out, const kiln_agent_config_t *cfg)
{
    int rc = -1;
    kiln_agent_t *self = calloc(1, sizeof *self);
    *out = NULL;
    if (!self) {
        kiln_error_set("worker: out of memory");
        return -1;
    }
    self->sigfd = -1;
    self->cfg = *cfg;
    /* A peer or Redis that goes away mid-write must be an error return,
     * not the end of the process. */
    signal(SIGPIPE, SIG_IGN);
    if (!cfg->coordinator || !cfg->server_key || !cfg->key_path || !cfg->work_dir) {
        kiln_error_set("worker: coordinator, server-key, key and work-dir are required");
        rc = KILN_EINVAL;
        goto cleanup;
    }
    if (cfg->prefetch < 0 || cfg->prefetch > KILN_AGENT_MAX_PREFETCH) {
        kiln_error_set("worker: prefetch must be 0..%d", KILN_AGENT_MAX_PREFETCH);
        rc = KILN_EINVAL;
        goto cleanup;
    }
    if (cfg->slots < 1 || cfg->slots > KILN_AGENT_MAX_SLOTS) {
        kiln_error_set("worker: slots must be 1..%d", KILN_AGENT_MAX_SLOTS);
        rc = KILN_EINVAL;
        goto cleanup;
    }
    if (!cfg->executor || strcmp(cfg->executor, "shell") == 0) {
        self->null_executor = false;
    } else if (strcmp(cfg->executor, "null") == 0) {
        self->null_executor = true;
    } else {
        kiln_error_set("worker: unknown executor '%s' (shell or null)", cfg->executor);
        rc = KILN_EINVAL;
        goto cleanup;
    }
    /* The steps' environments start from a defined one, not the daemon's
     * whole environment (whatever the operator's shell had). */
    if ((rc = s_base_env(self, cfg)) != 0)
        goto cleanup;
    rc = -1;
    self->max_results = (size_t)cfg->slots * KILN_AGENT_RESULTS_PER_SLOT;
    if (self->max_results < KILN_AGENT_MAX_RESULTS)
        self->max_results = KILN_AGENT_MAX_RESULTS;
    if (!(self->results = calloc(self->max_results, sizeof *self->results))) {
        kiln_error_set("worker: out of memory");
        rc = -1;
        goto cleanup;
    }
    self->heartbeat_ms = cfg->heartbeat_ms >= 10 ? cfg->heartbeat_ms : 1000;
    self->log_window = KILN_AGENT_DEFAULT_LOG_WINDOW;
    kiln_notice_config_t nc = {cfg->spot_notice_file, cfg->spot_notice_url,
                               cfg->spot_notice_command, cfg->spot_poll_ms};
    if ((rc = kiln_notice_new(&self->notice, &nc)) != 0)
        goto cleanup;
    if (gethostname(self->hostname, sizeof self->hostname - 1) != 0)
        snprintf(self->hostname, sizeof self->hostname, "unknown");
    /* A worker's name is its key's (the coordinator admits NAME.pub as
     * worker NAME and refuses any other name for it): by default the key
     * file's name, so two workers of one host have two names. */
    if (cfg->name) {
        snprintf(self->name, sizeof self->name, "%s", cfg->name);
    } else {
        const char *base = strrchr(cfg->key_path, '/');
        base = base ? base + 1 : cfg->key_path;
        size_t len = strlen(base);
        if (len > 4 && strcmp(base + len - 4, ".key") == 0)
            len -= 4;
        snprintf(self->name, sizeof self->name, "%.*s", (int)len, base);
    }
    randombytes_buf(&self->instance, sizeof self->instance);
    if (!self->null_executor) {
        if ((rc = kiln_cgroup_new(&self->cgroup, self->name, cfg->cgroup_root)) != 0)
            goto cleanup;
        if (self->cgroup && !kiln_cgroup_is_subreaper(self->cgroup))
            kiln_log_info("jobs' processes are kept in the cgroup %s",
                          kiln_cgroup_path(self->cgroup));
        else
            kiln_log_warn("%s", kiln_error_last());
    }
    /* Labels: OS and architecture, then the configured ones. */
    if (kiln_labels_worker(cfg->labels, self->labels, KILN_AGENT_MAX_LABELS, &self->n_labels) !=
        0) {
        rc = -1;
        goto cleanup;
    }
    if ((rc = kiln_keys_load(&self->own, cfg->key_path)) != 0)
        goto cleanup;
    if (!self->own.has_secret) {
        kiln_error_set("worker: %s holds no secret key", cfg->key_path);
        rc = KILN_EINVAL;
        goto cleanup;
    }
    if ((rc = kiln_keys_load(&self->server, cfg->server_key)) != 0)
        goto cleanup;
    if (mkdir(cfg->work_dir, 0700) != 0 && errno != EEXIST) {
        kiln_error_errno("worker: cannot create %s", cfg->work_dir);
        rc = -1;
        goto cleanup;
    }
    /* RUNNER_TOOL_CACHE: kept from job to job, as tools set up once are
     * meant to be. */
    snprintf(self->tool_cache, sizeof self->tool_cache, "%s/tool-cache", cfg->work_dir);
    if (!self->null_executor && mkdir(self->tool_cache, 0700) != 0 && errno != EEXIST) {
        kiln_error_errno("worker: cannot create %s", self->tool_cache);
        rc = -1;
        goto cleanup;
    }
    /* Mirrors of the repositories jobs check out, kept from job to job (a
     * second checkout fetches only what is new); kiln-checkout makes it. */
    snprintf(self->git_cache, sizeof self->git_cache, "%s/git", cfg->work_dir);
    /* Checked now, so a bad file stops the worker instead of every checkout;
     * kiln-checkout reads it again (it holds no secret of it meanwhile). */
    if (cfg->git_credentials && cfg->git_credentials[0]) {
        kiln_gitcreds_t *creds = NULL;
        if (kiln_gitcreds_load(&creds, cfg->git_credentials) != 0 ||
            !realpath(cfg->git_credentials, self->git_credentials)) {
            rc = KILN_EINVAL;
            goto cleanup;
        }
        kiln_gitcreds_destroy(&creds);
    }
    if (cfg->git_timeout_s < 0) {
        kiln_error_set("worker: --git-timeout-s must be positive");
        rc = KILN_EINVAL;
        goto cleanup;
    }
    snprintf(self->git_timeout, sizeof self->git_timeout, "%d",
             cfg->git_timeout_s ? cfg->git_timeout_s : 120);
    if (cfg->cache_max_mb < 0) {
        kiln_error_set("worker: --cache-max-mb must be positive");
        rc = KILN_EINVAL;
        goto cleanup;
    }
    snprintf(self->cache_dir, sizeof self->cache_dir, "%s/cache", cfg->work_dir);
    snprintf(self->cache_max_mb, sizeof self->cache_max_mb, "%d",
             cfg->cache_max_mb ? cfg->cache_max_mb : 10240);
    /* Remote actions' files, one directory per commit, shared by the jobs
     * (GitHub's _actions): kiln-checkout makes them. */
    snprintf(self->actions_dir, sizeof self->actions_dir, "%s/actions", cfg->work_dir);
    s_find_checkout(self);
    kiln_container_engine_find(&self->engine, cfg->container_engine,
                               cfg->container_allow_privileged);
    if (kiln_native_find(&self->native, cfg->container_runtime, cfg->work_dir,
                         cfg->registry_auth, cfg->registry_insecure, cfg->registry_mirror,
                         cfg->image_pull, cfg->image_store_max_mb) != 0) {
        kiln_error_set("worker: %s", self->native.why);
        rc = KILN_EINVAL;
        goto cleanup;
    }
    bool native_ok = !self->native.why[0] && strcmp(self->native.mode, "engine") != 0;
    if (strcmp(self->native.mode, "native") == 0 && !native_ok) {
        kiln_error_set("worker: --container-runtime native: %s", self->native.why);
        rc = KILN_EINVAL;
        goto cleanup;
    }
    if (native_ok) {
        kiln_log_info("native container runtime: %s with %s", self->native.program,
                      self->native.bwrap);
        /* No job of an earlier run of this worker holds an image now, and
         * what it was removing goes. */
        if (!self->null_executor) {
            kiln_imagestore_release(self->native.store, NULL);
            kiln_native_sweep(cfg->work_dir);
        }
    }
    bool job_image = cfg->job_image && cfg->job_image[0];
    if (self->engine.path[0]) {
        kiln_log_info("container jobs run with %s", self->engine.path);
        if (!self->null_executor)
            kiln_container_sweep(&self->engine, self->name, cfg->work_dir);
    } else if ((cfg->container_engine && cfg->container_engine[0]) ||
               (job_image && (!native_ok || strncmp(cfg->job_image, "localhost/", 10) == 0))) {
        kiln_error_set("worker: %s%s", job_image ? "--job-image: " : "", self->engine.why);
        rc = KILN_EINVAL;
        goto cleanup;
    } else {
        kiln_log_info("no container engine: container jobs %s (%s)",
                      native_ok ? "run natively when they can, and fail when not" : "fail here",
                      self->engine.why);
    }
    if (kiln_node_probe(&self->node, cfg->node) == 0)
        kiln_log_info("JavaScript actions run with %s (%s)", self->node.path, self->node.version);
    else if (cfg->node && cfg->node[0]) {
        kiln_error_set("worker: %s", self->node.why);
        rc = KILN_EINVAL;
        goto cleanup;
    } else
        kiln_log_info("no Node.js: JavaScript actions' steps fail here (%s)", self->node.why);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigprocmask(SIG_BLOCK, &set, NULL);
    self->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (self->sigfd == -1) {
        kiln_error_errno("worker: signalfd");
        rc = -1;
        goto cleanup;
    }
    self->zctx = zmq_ctx_new();
    if (!self->zctx || s_connect(self) != 0) {
        rc = KILN_EINFRA;
        goto cleanup;
    }
    /* Steps reach the farm's store through it; a null executor runs none. */
    if (!self->null_executor && (rc = kiln_agent_store_open(self)) != 0)
        goto cleanup;
    kiln_log_info("worker %s: %d slots, connecting to %s", self->name, cfg->slots,
                  cfg->coordinator);
    if (self->null_executor)
        kiln_log_warn("NULL EXECUTOR: jobs are reported successful WITHOUT RUNNING ANY STEP; "
                      "for benchmarks only, never on a real farm");
    *out = self;
    self = NULL;
    rc = 0;
cleanup:
    kiln_agent_destroy(&self);
    return rc;
}

void kiln_agent_destroy(kiln_agent_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    kiln_agent_t *self = *self_p;
    for (int i = 0; i < self->cfg.slots && i < KILN_AGENT_MAX_SLOTS; i++)
        kiln_job_free(&self->jobs[i]);
    for (size_t i = 0; i < self->n_queued; i++)
        kiln__envelope__free_unpacked(self->queued[i], NULL);
    for (size_t i = 0; i < self->n_results; i++)
        free(self->results[i].packed);
    free(self->results);
    for (size_t i = 0; i < self->n_labels; i++)
        free(self->labels[i]);
    for (int i = 0; i < self->cfg.slots && i < KILN_AGENT_MAX_SLOTS; i++) {
        if (self->spare_ready[i]) {
            char spare[KILN_WORKSPACE_PATH_MAX];
            kiln_agent_spare_path(self, i, spare, sizeof spare);
            kiln_fs_rmtree(spare);
        }
    }
    kiln_kv_free(&self->base_env);
    kiln_notice_destroy(&self->notice);
    kiln_cgroup_destroy(&self->cgroup);
    s_disconnect(self);
    kiln_agent_store_close(self);
    if (self->zctx)
        zmq_ctx_term(self->zctx);
    if (self->sigfd >= 0)
        close(self->sigfd);
    free(self);
    *self_p = NULL;
}
