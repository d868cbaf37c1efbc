/* agent.c: the worker's protocol loop and job runner (see agent.h).
 *
 * Reading order: job environment and step launch, step completion and job
 * completion, message handlers, then the loop.
 */
#include "worker/agent.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <zmq.h>

#include "common/clock.h"
#include "common/error.h"
#include "common/fs.h"
#include "worker/executor.h"
#include "common/kv.h"
#include "worker/jobctx.h"
#include "lang/shell.h"
#include "lang/workflow.h"
#include "common/keys.h"
#include "common/labels.h"
#include "common/log.h"
#include "worker/notice.h"
#include "common/transport.h"
#include "worker/workspace.h"

extern char **environ;

#define KILN_AGENT_MAX_LABELS 32

typedef struct kiln_agent kiln_agent_t;

typedef struct {
    kiln_agent_t *agent;
    Kiln__Envelope *env;        /* owns the assignment */
    const Kiln__JobAssign *a;   /* env->assign */
    kiln_workspace_t ws;
    size_t step;                /* the step running or next to run */
    kiln_exec_t *exec;
    int64_t step_started_ms;    /* wall */
    int64_t started_ms;         /* wall */
    int64_t deadline;           /* monotonic; 0 = none */
    bool failed;                /* a step failed (without continue-on-error) */
    bool cancelled;
    bool job_timed_out;
    Kiln__Outcome outcome;
    uint64_t log_sent;          /* output bytes sent for this job */
    bool log_truncated;
    kiln_jobctx_t *jx;          /* contexts, steps.*, command files, masks */
    int slot;                   /* in agent->jobs */
    /* Step results and the current step's start, not sent yet: for up to
     * KILN_AGENT_HOLD_MS (hold_until), or until the job sends anything else
     * (they go first, so the coordinator sees the same order as ever:
     * s_held_flush). Those held when the job ends ride in its result, and a
     * start whose step ends first is left out: a short one-step job is one
     * message where it was three. */
    Kiln__StepResult *held;     /* n_steps of room, allocated on first use */
    size_t n_held;
    bool start_held;            /* job->step's start, ts step_started_ms */
    int64_t hold_until;         /* monotonic; 0: nothing held */
    /* Per step, as its own contexts evaluate them: its name (NULL: as
     * written) and continue-on-error. */
    char **step_names;
    bool *step_coe;
} s_job_t;

static const char *s_step_name(const s_job_t *job, size_t step)
{
    if (job->step_names && step < job->a->n_steps && job->step_names[step])
        return job->step_names[step];
    return step < job->a->n_steps ? job->a->steps[step]->name : "";
}

static bool s_step_coe(const s_job_t *job, size_t step)
{
    if (job->step_coe && step < job->a->n_steps)
        return job->step_coe[step];
    return step < job->a->n_steps && job->a->steps[step]->continue_on_error;
}

/* A finished job's result, kept (packed, as sent) until acknowledged. */
typedef struct {
    char job_key[256];
    uint64_t token;
    uint8_t *packed;
    size_t len;
    int64_t resend_at;          /* monotonic */
    uint64_t seq;               /* order of arrival: the oldest goes when full */
} s_result_t;



struct kiln_agent {
    kiln_agent_config_t cfg;
    char name[128];
    char hostname[128];
    char *labels[KILN_AGENT_MAX_LABELS];
    size_t n_labels;
    kiln_keypair_t own;
    kiln_keypair_t server;
    void *zctx;
    void *sock;
    int sigfd;
    s_job_t *jobs[KILN_AGENT_MAX_SLOTS];
    /* Assignments taken while every slot was busy (Hello.lookahead), in
     * arrival order; each owns its envelope. */
    Kiln__Envelope *queued[KILN_AGENT_MAX_PREFETCH];
    size_t n_queued;
    int heartbeat_ms;
    int64_t next_heartbeat;
    bool draining;
    bool stopping;
    bool welcomed;
    bool sigterm_seen;
    int64_t drain_deadline;       /* monotonic; 0: none */
    int64_t drain_deadline_wall;
    int64_t exit_linger_until;    /* monotonic; 0: not yet empty */
    int64_t credit;               /* log bytes we may still send */
    int64_t log_window;
    s_result_t *results;          /* unordered; max_results of room */
    size_t n_results, max_results;
    uint64_t result_seq;
    kiln_notice_t *notice;
    bool null_executor;           /* executor = null: jobs succeed without running */
    kiln_kv_t base_env;           /* the worker's own environment, copied at start */
    /* Each slot's workspace tree, emptied for its next job
     * (kiln_workspace_recycle): WORK/.spare-<slot>. */
    bool spare_ready[KILN_AGENT_MAX_SLOTS];
    unsigned spare_steps[KILN_AGENT_MAX_SLOTS]; /* its steps' command files kept */
};

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

static void s_send(kiln_agent_t *self, Kiln__Envelope *env)
{
    int rc = kiln_transport_send(self->sock, NULL, 0, env);
    if (rc != 0)
        kiln_log_warn("send to coordinator failed: %s", kiln_error_last());
}

static size_t s_n_jobs(const kiln_agent_t *self)
{
    size_t n = self->n_queued;
    for (int i = 0; i < self->cfg.slots; i++)
        n += self->jobs[i] != NULL;
    return n;
}

/* Where slot's emptied workspace tree waits for its next job. The name
 * cannot be a job's (those start with the run number). */
static void s_spare_path(const kiln_agent_t *self, int slot, char *out, size_t cap)
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
    env.body_case = KILN__ENVELOPE__BODY_HELLO;
    env.hello = &h;
    s_send(self, &env);
    free(held);
    free(all);
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
    env.body_case = KILN__ENVELOPE__BODY_HEARTBEAT;
    env.heartbeat = &hb;
    s_send(self, &env);
    self->next_heartbeat = kiln_clock_mono_ms() + self->heartbeat_ms;
}

static void s_held_flush(s_job_t *job);

static void s_send_log(s_job_t *job, Kiln__Stream stream, const void *data, size_t len)
{
    s_held_flush(job);
    Kiln__Envelope env = KILN__ENVELOPE__INIT;
    Kiln__LogChunk chunk = KILN__LOG_CHUNK__INIT;
    chunk.job_key = job->a->job_key;
    chunk.token = job->a->token;
    chunk.step = (uint32_t)job->step;
    chunk.stream = stream;
    chunk.data.data = (uint8_t *)data;
    chunk.data.len = len;
    chunk.ts_ms = (uint64_t)kiln_clock_wall_ms();
    env.body_case = KILN__ENVELOPE__BODY_LOG;
    env.log = &chunk;
    job->agent->credit -= (int64_t)len;
    s_send(job->agent, &env);
}

static void s_system_log(s_job_t *job, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void s_system_log(s_job_t *job, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    size_t len = strlen(line);
    line[len++] = '\n';
    s_send_log(job, KILN__STREAM__STREAM_SYSTEM, line, len);
}

static void s_on_output(void *ctx, int stream, const char *data, size_t len)
{
    s_job_t *job = ctx;
    uint64_t limit = job->a->log_limit;
    if (job->log_truncated)
        return;
    if (limit && job->log_sent + len > limit) {
        /* The rest is dropped here, where it is cheapest, with a marker the
         * user sees; the job's status is unaffected. */
        job->log_truncated = true;
        s_system_log(job, "[kiln: log truncated: over the limit of %llu bytes]",
                     (unsigned long long)limit);
        return;
    }
    job->log_sent += len;
    /* Workflow commands are taken out, masked values hidden. */
    char *shown = NULL;
    size_t shown_len = 0;
    if (job->jx && kiln_commands_filter(kiln_jobctx_commands(job->jx), data, len, false, &shown,
                                        &shown_len) == 0) {
        if (shown_len)
            s_send_log(job,
                       stream == 1 ? KILN__STREAM__STREAM_STDERR : KILN__STREAM__STREAM_STDOUT,
                       shown, shown_len);
        free(shown);
        return;
    }
    free(shown);
    s_send_log(job, stream == 1 ? KILN__STREAM__STREAM_STDERR : KILN__STREAM__STREAM_STDOUT, data,
               len);
}

/* At a step's end: what the filter still holds (a last line without a
 * newline) goes out. */
static void s_flush_output(s_job_t *job)
{
    char *shown = NULL;
    size_t shown_len = 0;
    if (job->jx && kiln_commands_filter(kiln_jobctx_commands(job->jx), "", 0, true, &shown,
                                        &shown_len) == 0 &&
        shown_len)
        s_send_log(job, KILN__STREAM__STREAM_STDOUT, shown, shown_len);
    free(shown);
}

/* Sends what is held back, in order: the results of earlier steps, then
 * the current step's start. */
static void s_held_flush(s_job_t *job)
{
    for (size_t i = 0; i < job->n_held; i++) {
        Kiln__Envelope env = KILN__ENVELOPE__INIT;
        env.body_case = KILN__ENVELOPE__BODY_STEP_RESULT;
        env.step_result = &job->held[i];
        s_send(job->agent, &env);
    }
    job->n_held = 0;
    if (job->start_held) {
        Kiln__Envelope m = KILN__ENVELOPE__INIT;
        Kiln__StepStarted ss = KILN__STEP_STARTED__INIT;
        ss.job_key = job->a->job_key;
        ss.token = job->a->token;
        ss.step = (uint32_t)job->step;
        ss.ts_ms = (uint64_t)job->step_started_ms;
        ss.name = (char *)s_step_name(job, job->step);
        m.body_case = KILN__ENVELOPE__BODY_STEP_STARTED;
        m.step_started = &ss;
        job->start_held = false;
        s_send(job->agent, &m);
    }
    job->hold_until = 0;
}

static void s_hold(s_job_t *job)
{
    if (!job->hold_until)
        job->hold_until = kiln_clock_mono_ms() + KILN_AGENT_HOLD_MS;
}

/* A step's result, held back with the step's start (see held). */
static void s_send_step_result(s_job_t *job, size_t step, Kiln__Outcome outcome, int exit_code,
                               int sig, int64_t started, int64_t finished)
{
    Kiln__StepResult r = KILN__STEP_RESULT__INIT;
    r.job_key = job->a->job_key;
    r.token = job->a->token;
    r.step = (uint32_t)step;
    r.outcome = outcome;
    r.exit_code = exit_code;
    r.signal = sig;
    r.started_ms = (uint64_t)started;
    r.finished_ms = (uint64_t)finished;
    r.name = (char *)s_step_name(job, step);
    /* continue-on-error: a failed step concludes as a success. */
    r.conclusion = outcome;
    if (s_step_coe(job, step) &&
        (outcome == KILN__OUTCOME__OUTCOME_FAILURE || outcome == KILN__OUTCOME__OUTCOME_TIMED_OUT))
        r.conclusion = KILN__OUTCOME__OUTCOME_SUCCESS;
    if (!job->held)
        job->held = calloc(job->a->n_steps ? job->a->n_steps : 1, sizeof *job->held);
    /* The result says when the step started: a start not sent yet is not
     * needed any more. */
    if (job->start_held && step == job->step)
        job->start_held = false;
    if (!job->held || job->n_held >= job->a->n_steps) {
        /* No room to hold it (out of memory): as it is, at once. */
        s_held_flush(job);
        Kiln__Envelope env = KILN__ENVELOPE__INIT;
        env.body_case = KILN__ENVELOPE__BODY_STEP_RESULT;
        env.step_result = &r;
        s_send(job->agent, &env);
        return;
    }
    job->held[job->n_held++] = r;
    s_hold(job);
}

/* Moves the held step results into the job's result r: they travel
 * inside it, under its key and token. Returns the pointer array r->steps
 * uses (the caller frees it after sending), NULL when nothing was held or
 * memory is short (they are then sent on their own). */
static Kiln__StepResult **s_held_into(s_job_t *job, Kiln__JobResult *r)
{
    /* A step that started and has no result (the job ended around it): its
     * start goes now, after the results before it, ahead of the job's. */
    Kiln__StepResult **ptrs =
        job->n_held && !job->start_held ? calloc(job->n_held, sizeof *ptrs) : NULL;
    if (!ptrs) {
        s_held_flush(job);
        return NULL;
    }
    for (size_t i = 0; i < job->n_held; i++) {
        job->held[i].job_key = (char *)"";
        job->held[i].token = 0;
        ptrs[i] = &job->held[i];
    }
    r->steps = ptrs;
    r->n_steps = job->n_held;
    job->n_held = 0;
    return ptrs;
}

/* ---------------------------------------------------------- environment */

/* A step's environment, in one map: the worker's own (borrowed), the
 * runner's variables, then the job's and the step's (jobctx). */
static int s_build_env(s_job_t *job, const Kiln__StepSpec *st, kiln_kv_t *e)
{
    const Kiln__JobAssign *a = job->a;
    char num[32];
    if (kiln_kv_copy(e, &job->agent->base_env) != 0)
        return -1;
    snprintf(num, sizeof num, "%llu", (unsigned long long)a->run_id);
    char attempt[16];
    snprintf(attempt, sizeof attempt, "%u", a->attempt);
    if (kiln_kv_set(e, "CI", "true") || kiln_kv_set(e, "KILN", "true") ||
        kiln_kv_set(e, "KILN_RUN_ID", num) || kiln_kv_set(e, "KILN_JOB", a->job_id) ||
        kiln_kv_set(e, "KILN_ATTEMPT", attempt) || kiln_kv_set(e, "KILN_WORKER", job->agent->name) ||
        kiln_kv_set(e, "GITHUB_WORKSPACE", job->ws.ws) || kiln_kv_set(e, "GITHUB_RUN_ID", num) ||
        kiln_kv_set(e, "GITHUB_RUN_ATTEMPT", attempt) || kiln_kv_set(e, "GITHUB_JOB", a->job_id) ||
        kiln_kv_set(e, "GITHUB_WORKFLOW", a->workflow_name) || kiln_kv_set(e, "RUNNER_OS", "Linux") ||
        kiln_kv_set(e, "RUNNER_NAME", job->agent->name) || kiln_kv_set(e, "RUNNER_TEMP", job->ws.tmp))
        return -1;
    if (st->id[0] && kiln_kv_set(e, "GITHUB_ACTION", st->id))
        return -1;
    char err[512];
    if (kiln_jobctx_step_env(job->jx, job->step, st, e, err, sizeof err) != 0) {
        kiln_error_set("%s", err);
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- steps */

static void s_job_finish(s_job_t *job);

static const char *s_outcome_word(Kiln__Outcome o)
{
    switch (o) {
    case KILN__OUTCOME__OUTCOME_SUCCESS: return "success";
    case KILN__OUTCOME__OUTCOME_CANCELLED: return "cancelled";
    case KILN__OUTCOME__OUTCOME_SKIPPED: return "skipped";
    default: return "failure";
    }
}

/* Records steps.<id> and reads the step's command files; a malformed file
 * fails the step (returns true then). */
static bool s_step_record(s_job_t *job, size_t index, Kiln__Outcome outcome)
{
    const Kiln__StepSpec *st = job->a->steps[index];
    Kiln__Outcome conclusion = outcome;
    char err[512];
    if (s_step_coe(job, index) && (outcome == KILN__OUTCOME__OUTCOME_FAILURE ||
                                   outcome == KILN__OUTCOME__OUTCOME_TIMED_OUT))
        conclusion = KILN__OUTCOME__OUTCOME_SUCCESS;
    if (kiln_jobctx_step_done(job->jx, index, st, s_outcome_word(outcome),
                              s_outcome_word(conclusion), err, sizeof err) != 0) {
        s_system_log(job, "%s", err);
        return true;
    }
    return false;
}

/* Writes a step's script (text and a newline) to path. A recycled
 * workspace holds the file already (one newline, or an earlier step's text
 * of this job): it is overwritten and cut to length, never truncated to
 * nothing first, which costs a file system far more than the write. Not
 * through a link or a FIFO a step put in its place. */
static int s_write_script(const char *path, const char *text)
{
    int flags = O_WRONLY | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC;
    int fd = open(path, flags, 0700);
    if (fd == -1 && errno != ENOENT && unlink(path) == 0)
        fd = open(path, flags, 0700);
    if (fd == -1)
        return -1;
    struct stat st;
    size_t len = strlen(text);
    struct iovec iov[2] = {{(void *)text, len}, {"\n", 1}};
    int rc = -1;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
        pwritev(fd, iov, 2, 0) == (ssize_t)(len + 1) &&
        ((size_t)st.st_size <= len + 1 || ftruncate(fd, (off_t)(len + 1)) == 0))
        rc = 0;
    int saved = errno;
    close(fd);
    errno = saved;
    return rc;
}

/* The step's name as its contexts evaluate it (as written when they
 * cannot: a name is worth showing even then). */
static void s_name_step(s_job_t *job, const Kiln__StepSpec *st)
{
    char *name = NULL, err[256];
    if (!job->step_names || !strstr(st->name, "${{"))
        return;
    if (st->name_derived) {
        /* "Run " and the script's first line as it will run. */
        char *script = NULL;
        if (kiln_jobctx_interpolate(job->jx, st->run, &script, err, sizeof err) == 0)
            name = kiln_step_derived_name(script);
        free(script);
        if (name) {
            free(job->step_names[job->step]);
            job->step_names[job->step] = name;
        }
        return;
    }
    if (kiln_jobctx_interpolate(job->jx, st->name, &name, err, sizeof err) == 0) {
        free(job->step_names[job->step]);
        job->step_names[job->step] = name;
    }
}

/* timeout-minutes and continue-on-error written as expressions. */
static int s_step_settings(s_job_t *job, const Kiln__StepSpec *st, int64_t *timeout)
{
    char *text = NULL, err[512];
    if (st->continue_on_error_expr[0]) {
        if (kiln_jobctx_interpolate(job->jx, st->continue_on_error_expr, &text, err,
                                    sizeof err) != 0) {
            s_system_log(job, "continue-on-error: %s", err);
            return -1;
        }
        /* GitHub reads the result as a boolean. */
        if (job->step_coe)
            job->step_coe[job->step] = strcmp(text, "true") == 0;
        free(text);
        text = NULL;
    }
    if (st->timeout_expr[0]) {
        if (kiln_jobctx_interpolate(job->jx, st->timeout_expr, &text, err, sizeof err) != 0) {
            s_system_log(job, "timeout-minutes: %s", err);
            return -1;
        }
        char *end = NULL;
        double minutes = strtod(text, &end);
        if (!end || end == text || *end || !(minutes > 0) || minutes > 60.0 * 24 * 365) {
            s_system_log(job, "timeout-minutes must be a number of minutes greater than 0, not '%s'",
                         text);
            free(text);
            return -1;
        }
        int64_t ms = (int64_t)(minutes * 60000.0 + 0.5);
        *timeout = ms > 0 ? ms : 1;
        free(text);
    }
    return 0;
}

/* Whether program runs from PATH (or is a path that exists). */
static bool s_on_path(const char *program)
{
    if (strchr(program, '/'))
        return access(program, X_OK) == 0;
    const char *path = getenv("PATH");
    char probe[PATH_MAX];
    for (const char *p = path ? path : "/usr/bin:/bin"; *p;) {
        size_t n = strcspn(p, ":");
        if (n && (size_t)snprintf(probe, sizeof probe, "%.*s/%s", (int)n, p, program) <
                     sizeof probe &&
            access(probe, X_OK) == 0)
            return true;
        p += n;
        if (*p == ':')
            p++;
    }
    return false;
}

/* Starts the job's current step. Returns 0 when a process is running, 1
 * when the step's if: skipped it, and -1 when it failed to start (reported
 * failed). */
static int s_step_start(s_job_t *job)
{
    kiln_agent_t *self = job->agent;
    const Kiln__StepSpec *st = job->a->steps[job->step];
    char script[KILN_WORKSPACE_PATH_MAX + 64], cwd[PATH_MAX * 2], err[512];
    char shellbuf[KILN_SHELL_MAX + KILN_WORKSPACE_PATH_MAX * 4];
    const char *argv[KILN_SHELL_MAX_ARGS + 1];
    kiln_kv_t env = {0};
    char *run_text = NULL, *wd = NULL, *shell = NULL;
    int rc = -1;
    bool runs = true;
    job->step_started_ms = kiln_clock_wall_ms();
    kiln_jobctx_set_status(job->jx, job->cancelled ? KILN_EXPR_CANCELLED
                                    : job->failed  ? KILN_EXPR_FAILURE
                                                   : KILN_EXPR_SUCCESS);
    int crc = kiln_jobctx_step_condition(job->jx, st, &runs, err, sizeof err);
    if (crc == 0 && !runs) {
        s_name_step(job, st);
        s_send_step_result(job, job->step, KILN__OUTCOME__OUTCOME_SKIPPED, -1, 0,
                           job->step_started_ms, job->step_started_ms);
        s_step_record(job, job->step, KILN__OUTCOME__OUTCOME_SKIPPED);
        return 1;
    }
    /* Its env first: the step's other expressions see it in env. */
    int brc = crc == 0 ? kiln_jobctx_step_begin(job->jx, st, err, sizeof err) : crc;
    s_name_step(job, st);
    /* Held (see start_held): sent with anything else the job sends, when
     * the hold ends, or left out if the step ends first. */
    job->start_held = true;
    s_hold(job);
    if (crc != 0) {
        s_system_log(job, "if: %s", err);
        goto cleanup;
    }
    if (brc != 0) {
        s_system_log(job, "%s", err);
        goto cleanup;
    }
    int64_t step_timeout = (int64_t)st->timeout_ms;
    if (s_step_settings(job, st, &step_timeout) != 0)
        goto cleanup;
    if (st->uses && st->uses[0]) {
        s_system_log(job,
                     "the action '%s' was not in the repository when the run was submitted; "
                     "Kiln reads local actions from the repository, not from the workspace",
                     st->uses);
        goto cleanup;
    }
    /* ${{ }} in the script, the directory and the shell, with the contexts
     * as they are now (earlier steps' outputs included). */
    if (kiln_jobctx_interpolate(job->jx, st->run, &run_text, err, sizeof err) != 0 ||
        kiln_jobctx_interpolate(job->jx, st->working_directory, &wd, err, sizeof err) != 0 ||
        kiln_jobctx_interpolate(job->jx, st->shell, &shell, err, sizeof err) != 0) {
        s_system_log(job, "%s", err);
        goto cleanup;
    }
    if (kiln_workspace_step_file(&job->ws, KILN_WORKSPACE_SCRIPT, job->step, script,
                                 sizeof script) != 0) {
        s_system_log(job, "%s", kiln_error_last());
        goto cleanup;
    }
    /* PowerShell runs only scripts named .ps1. */
    strncat(script, kiln_shell_suffix(shell), sizeof script - strlen(script) - 1);
    if (s_write_script(script, run_text) != 0) {
        s_system_log(job, "cannot write the step script: %s", strerror(errno));
        goto cleanup;
    }
    if (kiln_shell_argv(shell, script, shellbuf, sizeof shellbuf, argv, err, sizeof err) < 0) {
        s_system_log(job, "%s", err);
        goto cleanup;
    }
    if (!s_on_path(argv[0])) {
        s_system_log(job, "shell '%s': '%s' is not installed on this worker", shell[0] ? shell : "bash",
                     argv[0]);
        goto cleanup;
    }
    if (wd[0] == '/')
        snprintf(cwd, sizeof cwd, "%s", wd);
    else if (wd[0])
        snprintf(cwd, sizeof cwd, "%s/%s", job->ws.ws, wd);
    else
        snprintf(cwd, sizeof cwd, "%s", job->ws.ws);
    struct stat sb;
    if (stat(cwd, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        s_system_log(job, "working-directory '%s' does not exist", wd);
        goto cleanup;
    }
    if (s_build_env(job, st, &env) != 0) {
        s_system_log(job, "cannot build the step environment: %s", kiln_error_last());
        goto cleanup;
    }
    int64_t timeout = step_timeout;
    if (job->deadline) {
        int64_t left = job->deadline - kiln_clock_mono_ms();
        if (left < 1)
            left = 1;
        if (!timeout || left < timeout)
            timeout = left;
    }
    kiln_exec_opts_t opts = {
        .argv = argv,
        .envp = (const char *const *)kiln_kv_envp(&env),
        .cwd = cwd,
        .timeout_ms = timeout,
        .grace_ms = self->cfg.kill_grace_ms,
        .on_output = s_on_output,
        .ctx = job,
    };
    if (kiln_exec_start(&job->exec, &opts) != 0) {
        s_system_log(job, "cannot start the step: %s", kiln_error_last());
        goto cleanup;
    }
    rc = 0;
cleanup:
    kiln_kv_free(&env);
    free(run_text);
    free(wd);
    free(shell);
    if (rc != 0) {
        s_send_step_result(job, job->step, KILN__OUTCOME__OUTCOME_FAILURE, -1, 0,
                           job->step_started_ms, kiln_clock_wall_ms());
        s_step_record(job, job->step, KILN__OUTCOME__OUTCOME_FAILURE);
        if (!s_step_coe(job, job->step))
            job->failed = true;
    }
    return rc;
}

/* Collects a finished step's result and reports it. */
static void s_step_done(s_job_t *job)
{
    kiln_exec_status_t status = kiln_exec_status(job->exec);
    int code = kiln_exec_exit_code(job->exec), sig = kiln_exec_signal(job->exec);
    Kiln__Outcome outcome = KILN__OUTCOME__OUTCOME_FAILURE;
    int64_t now = kiln_clock_wall_ms();
    switch (status) {
    case KILN_EXEC_EXITED:
        outcome = code == 0 ? KILN__OUTCOME__OUTCOME_SUCCESS : KILN__OUTCOME__OUTCOME_FAILURE;
        if (code != 0)
            s_system_log(job, "step '%s' exited with code %d", s_step_name(job, job->step), code);
        break;
    case KILN_EXEC_SIGNALED:
        s_system_log(job, "step '%s' was killed by signal %d", s_step_name(job, job->step), sig);
        break;
    case KILN_EXEC_TIMED_OUT:
        outcome = KILN__OUTCOME__OUTCOME_TIMED_OUT;
        if (job->deadline && kiln_clock_mono_ms() >= job->deadline)
            job->job_timed_out = true;
        s_system_log(job, "step '%s' timed out after %lld ms; its process group was killed",
                     s_step_name(job, job->step), (long long)kiln_exec_duration_ms(job->exec));
        break;
    case KILN_EXEC_CANCELLED:
        outcome = KILN__OUTCOME__OUTCOME_CANCELLED;
        s_system_log(job, "step '%s' was cancelled", s_step_name(job, job->step));
        break;
    default:
        break;
    }
    kiln_exec_destroy(&job->exec);
    s_flush_output(job);
    if (s_step_record(job, job->step, outcome) && outcome == KILN__OUTCOME__OUTCOME_SUCCESS)
        outcome = KILN__OUTCOME__OUTCOME_FAILURE; /* a malformed command file */
    s_send_step_result(job, job->step, outcome, code, sig, job->step_started_ms, now);
    if (outcome != KILN__OUTCOME__OUTCOME_SUCCESS && !job->cancelled) {
        if (s_step_coe(job, job->step) && !job->job_timed_out) {
            s_system_log(job, "continue-on-error: the job goes on");
        } else {
            job->failed = true;
            if (job->outcome == KILN__OUTCOME__OUTCOME_NONE)
                job->outcome = outcome == KILN__OUTCOME__OUTCOME_TIMED_OUT
                                   ? KILN__OUTCOME__OUTCOME_TIMED_OUT
                                   : KILN__OUTCOME__OUTCOME_FAILURE;
        }
    }
}

/* Moves a job forward as far as it can go without waiting. */
static void s_job_advance(s_job_t *job)
{
    for (;;) {
        if (job->exec) {
            if (!kiln_exec_done(job->exec))
                return;
            s_step_done(job);
            job->step++;
        }
        /* After a failure each step's if: decides (success() by default,
         * so they are skipped unless they ask for always() or failure());
         * a job past its timeout stops there. */
        if (job->step >= job->a->n_steps || job->job_timed_out) {
            int64_t now = kiln_clock_wall_ms();
            for (size_t s = job->step; s < job->a->n_steps; s++)
                s_send_step_result(job, s, KILN__OUTCOME__OUTCOME_SKIPPED, -1, 0, now, now);
            s_job_finish(job);
            return;
        }
        if (s_step_start(job) != 0) {
            job->step++;
            continue;
        }
    }
}

static void s_job_free(s_job_t **job_p)
{
    s_job_t *job = *job_p;
    if (!job)
        return;
    s_held_flush(job);
    free(job->held);
    kiln_exec_destroy(&job->exec);
    kiln_jobctx_destroy(&job->jx);
    for (size_t i = 0; job->step_names && job->a && i < job->a->n_steps; i++)
        free(job->step_names[i]);
    free(job->step_names);
    free(job->step_coe);
    if (job->env)
        kiln__envelope__free_unpacked(job->env, NULL);
    free(job);
    *job_p = NULL;
}

static void s_send_result(kiln_agent_t *self, s_result_t *res)
{
    if (zmq_send(self->sock, res->packed, res->len, ZMQ_DONTWAIT) == -1)
        kiln_log_warn("send to coordinator failed: %s", zmq_strerror(zmq_errno()));
    res->resend_at = kiln_clock_mono_ms() + KILN_AGENT_RESEND_MS;
}

/* Frees result i; the last takes its place (the order does not matter:
 * seq keeps the age). */
static void s_result_remove(kiln_agent_t *self, size_t i)
{
    free(self->results[i].packed);
    self->results[i] = self->results[--self->n_results];
}

/* Records a result and sends it; it is resent until acknowledged. extra
 * (may be NULL) brings outputs, annotations and the summary. */
static void s_add_result(kiln_agent_t *self, const char *job_key, uint64_t token,
                         Kiln__Outcome outcome, int64_t started_ms, const char *message,
                         const Kiln__JobResult *extra)
{
    Kiln__Envelope env = KILN__ENVELOPE__INIT;
    Kiln__JobResult r = KILN__JOB_RESULT__INIT;
    if (extra)
        r = *extra;
    r.job_key = (char *)job_key;
    r.token = token;
    r.outcome = outcome;
    r.started_ms = (uint64_t)started_ms;
    r.finished_ms = (uint64_t)kiln_clock_wall_ms();
    r.message = (char *)(message ? message : "");
    env.version = KILN_PROTO_VERSION;
    env.body_case = KILN__ENVELOPE__BODY_JOB_RESULT;
    env.job_result = &r;
    size_t len = kiln__envelope__get_packed_size(&env);
    uint8_t *packed = len <= KILN_MSG_MAX ? malloc(len) : NULL;
    if (!packed) {
        kiln_log_error("job %s: its result cannot be sent (%zu bytes)", job_key, len);
        return;
    }
    kiln__envelope__pack(&env, packed);
    if (self->n_results == self->max_results) {
        size_t oldest = 0;
        for (size_t i = 1; i < self->n_results; i++)
            if (self->results[i].seq < self->results[oldest].seq)
                oldest = i;
        kiln_log_warn("%zu results unacknowledged; forgetting %s", self->max_results,
                      self->results[oldest].job_key);
        s_result_remove(self, oldest);
    }
    s_result_t *res = &self->results[self->n_results++];
    memset(res, 0, sizeof *res);
    res->seq = ++self->result_seq;
    snprintf(res->job_key, sizeof res->job_key, "%s", job_key);
    res->token = token;
    res->packed = packed;
    res->len = len;
    s_send_result(self, res);
}

static void s_on_result_ack(kiln_agent_t *self, const Kiln__ResultAck *ack)
{
    for (size_t i = 0; i < self->n_results; i++) {
        if (self->results[i].token == ack->token &&
            strcmp(self->results[i].job_key, ack->job_key) == 0) {
            s_result_remove(self, i);
            return;
        }
    }
}

static void s_job_finish(s_job_t *job)
{
    kiln_agent_t *self = job->agent;
    Kiln__Outcome outcome;
    if (job->cancelled)
        outcome = KILN__OUTCOME__OUTCOME_CANCELLED;
    else if (job->job_timed_out)
        outcome = KILN__OUTCOME__OUTCOME_TIMED_OUT;
    else if (job->failed)
        outcome = job->outcome ? job->outcome : KILN__OUTCOME__OUTCOME_FAILURE;
    else
        outcome = KILN__OUTCOME__OUTCOME_SUCCESS;
    /* What the job leaves besides its outcome. */
    Kiln__JobResult extra = KILN__JOB_RESULT__INIT;
    kiln_kv_t outs = {0};
    char err[512], **keys = NULL;
    if (kiln_jobctx_outputs(job->jx, &outs, err, sizeof err) != 0)
        s_system_log(job, "outputs: %s", err);
    Kiln__KeyValue *kv = calloc(outs.n + 1, sizeof *kv);
    Kiln__KeyValue **kvp = calloc(outs.n + 1, sizeof *kvp);
    kiln_commands_t *cmds = kiln_jobctx_commands(job->jx);
    size_t n_ann = kiln_commands_n_annotations(cmds);
    Kiln__Annotation *an = calloc(n_ann + 1, sizeof *an);
    Kiln__Annotation **anp = calloc(n_ann + 1, sizeof *anp);
    keys = calloc(outs.n + 1, sizeof *keys);
    if (kv && kvp && an && anp && keys) {
        for (size_t i = 0; i < outs.n; i++) {
            size_t klen;
            const char *key = kiln_kv_key(&outs, i, &klen);
            kiln__key_value__init(&kv[i]);
            keys[i] = strndup(key, klen);
            kv[i].key = keys[i] ? keys[i] : (char *)"";
            kv[i].value = (char *)kiln_kv_value(&outs, i);
            kvp[i] = &kv[i];
        }
        extra.outputs = kvp;
        extra.n_outputs = outs.n;
        for (size_t i = 0; i < n_ann; i++) {
            const kiln_annotation_t *a = kiln_commands_annotation(cmds, i);
            kiln__annotation__init(&an[i]);
            an[i].level = (Kiln__AnnotationLevel)a->level;
            an[i].message = a->message ? a->message : (char *)"";
            an[i].title = a->title ? a->title : (char *)"";
            an[i].file = a->file ? a->file : (char *)"";
            an[i].line = a->line;
            an[i].end_line = a->end_line;
            an[i].col = a->col;
            an[i].end_col = a->end_col;
            anp[i] = &an[i];
        }
        extra.annotations = anp;
        extra.n_annotations = n_ann;
        size_t slen = 0;
        const char *summary = kiln_jobctx_summary(job->jx, &slen);
        extra.summary.data = (uint8_t *)summary;
        extra.summary.len = slen;
    }
    Kiln__StepResult **held = s_held_into(job, &extra);
    s_add_result(self, job->a->job_key, job->a->token, outcome, job->started_ms, NULL, &extra);
    free(held);
    free(kv);
    free(kvp);
    free(an);
    free(anp);
    for (size_t i = 0; keys && i < outs.n; i++)
        free(keys[i]);
    free(keys);
    kiln_kv_free(&outs);
    kiln_log_info("job %s attempt %u done", job->a->job_key, job->a->attempt);
    if (!self->cfg.keep_workspaces) {
        char spare[KILN_WORKSPACE_PATH_MAX];
        s_spare_path(self, job->slot, spare, sizeof spare);
        int kept = kiln_workspace_recycle(&job->ws, spare);
        self->spare_ready[job->slot] = kept >= 0;
        self->spare_steps[job->slot] = kept > 0 ? (unsigned)kept : 0;
        if (!self->spare_ready[job->slot])
            kiln_log_warn("%s", kiln_error_last());
    }
    assert(self->jobs[job->slot] == job);
    self->jobs[job->slot] = NULL;
    s_job_free(&job);
}

/* The null executor: each step reported as started and succeeded (exit
 * code 0) and the job's result recorded, in the order and form of a real
 * run, so that the coordinator does all its work; nothing is created or
 * started here. */
static void s_null_job(kiln_agent_t *self, const Kiln__JobAssign *a)
{
    s_job_t job = {.agent = self, .a = a};
    int64_t now = kiln_clock_wall_ms();
    /* Every step ends within the hold: their results ride in the job's. */
    for (size_t i = 0; i < a->n_steps; i++)
        s_send_step_result(&job, i, KILN__OUTCOME__OUTCOME_SUCCESS, 0, 0, now, now);
    Kiln__JobResult extra = KILN__JOB_RESULT__INIT;
    Kiln__StepResult **held = s_held_into(&job, &extra);
    s_add_result(self, a->job_key, a->token, KILN__OUTCOME__OUTCOME_SUCCESS, now, NULL, &extra);
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
        s_add_result(self, a->job_key, a->token, outcome, kiln_clock_wall_ms(), why, NULL);
        kiln__envelope__free_unpacked(self->queued[i], NULL);
    }
    self->n_queued = 0;
}

static void s_on_assign(kiln_agent_t *self, kiln_transport_msg_t *msg)
{
    const Kiln__JobAssign *a = msg->env->assign;
    int slot = -1;
    for (size_t i = 0; i < a->n_acks; i++)
        s_on_result_ack(self, a->acks[i]);
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
        s_send(self, &reply);
        return;
    }
    if (self->null_executor) {
        s_null_job(self, a);
        return;
    }
    s_job_t *job = calloc(1, sizeof *job);
    if (!job) {
        refused.message = (char *)"worker out of memory";
        s_send(self, &reply);
        return;
    }
    job->agent = self;
    job->slot = slot;
    job->env = *env_p;
    *env_p = NULL; /* the job owns the assignment now */
    job->a = job->env->assign;
    job->started_ms = kiln_clock_wall_ms();
    if (job->a->timeout_ms)
        job->deadline = kiln_clock_mono_ms() + (int64_t)job->a->timeout_ms;
    char spare[KILN_WORKSPACE_PATH_MAX];
    s_spare_path(self, slot, spare, sizeof spare);
    rc = kiln_workspace_create(&job->ws, self->cfg.work_dir,
                               self->spare_ready[slot] ? spare : NULL, self->spare_steps[slot],
                               (unsigned long long)job->a->run_id, job->a->job_id,
                               job->a->attempt);
    self->spare_ready[slot] = false;
    if (rc != 0) {
        kiln_log_error("job %s: %s", job->a->job_key, kiln_error_last());
        refused.message = (char *)kiln_error_last();
        s_send(self, &reply);
        s_job_free(&job);
        return;
    }
    if (kiln_jobctx_new(&job->jx, job->a, &job->ws, self->name) != 0) {
        refused.message = (char *)"worker out of memory";
        s_send(self, &reply);
        kiln_workspace_remove(&job->ws);
        s_job_free(&job);
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
    s_job_advance(job);
}

static void s_on_cancel(kiln_agent_t *self, const Kiln__CancelJob *c)
{
    for (size_t i = 0; i < self->n_queued; i++) {
        const Kiln__JobAssign *a = self->queued[i]->assign;
        if (strcmp(a->job_key, c->job_key) != 0 || a->token != c->token)
            continue;
        kiln_log_info("job %s: cancelled by the coordinator before it started", c->job_key);
        s_add_result(self, a->job_key, a->token, KILN__OUTCOME__OUTCOME_CANCELLED,
                     kiln_clock_wall_ms(), "cancelled before it started", NULL);
        kiln__envelope__free_unpacked(self->queued[i], NULL);
        memmove(&self->queued[i], &self->queued[i + 1],
                (--self->n_queued - i) * sizeof self->queued[0]);
        return;
    }
    for (int i = 0; i < self->cfg.slots; i++) {
        s_job_t *job = self->jobs[i];
        if (!job || strcmp(job->a->job_key, c->job_key) != 0 || job->a->token != c->token)
            continue;
        kiln_log_info("job %s: cancelled by the coordinator", c->job_key);
        job->cancelled = true;
        if (job->exec)
            kiln_exec_cancel(job->exec);
        else
            s_job_advance(job);
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
    s_queued_return(self, KILN__OUTCOME__OUTCOME_DRAINED, "the worker is draining");
    kiln_log_info("draining (%s): %zu jobs running%s", why, s_n_jobs(self),
                  self->drain_deadline ? ", with a deadline" : "");
    s_send_heartbeat(self);
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
        switch (msg.env->body_case) {
        case KILN__ENVELOPE__BODY_WELCOME:
            if (msg.env->welcome->rehello) {
                s_send_hello(self);
            } else {
                if (!self->welcomed)
                    kiln_log_info("registered with the coordinator as %s",
                                  msg.env->welcome->worker_id);
                self->welcomed = true;
                if (msg.env->welcome->heartbeat_ms >= 10)
                    self->heartbeat_ms = (int)msg.env->welcome->heartbeat_ms;
                /* A new session: whatever credit was in flight is gone. */
                if (msg.env->welcome->log_window)
                    self->log_window = (int64_t)msg.env->welcome->log_window;
                self->credit = self->log_window;
                for (size_t r = 0; r < self->n_results; r++)
                    s_send_result(self, &self->results[r]);
                if (self->draining)
                    s_send_heartbeat(self);
            }
            break;
        case KILN__ENVELOPE__BODY_ASSIGN: s_on_assign(self, &msg); break;
        case KILN__ENVELOPE__BODY_CANCEL: s_on_cancel(self, msg.env->cancel); break;
        case KILN__ENVELOPE__BODY_RESULT_ACK: s_on_result_ack(self, msg.env->result_ack); break;
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
        s_job_t *job = self->jobs[i];
        if (!job)
            continue;
        kiln_exec_destroy(&job->exec);
        s_held_flush(job);
        s_add_result(self, job->a->job_key, job->a->token, outcome, job->started_ms, why, NULL);
        if (!self->cfg.keep_workspaces)
            kiln_workspace_remove(&job->ws);
        s_job_free(&self->jobs[i]);
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
    if (!self->draining || s_n_jobs(self) > 0)
        return false;
    if (self->n_results == 0)
        return true;
    if (!self->exit_linger_until)
        self->exit_linger_until = now + KILN_AGENT_EXIT_LINGER_MS;
    return now >= self->exit_linger_until;
}

int kiln_agent_run(kiln_agent_t *self)
{
    enum { MAX_ITEMS = 2 + 2 * KILN_AGENT_MAX_SLOTS + KILN_NOTICE_MAX_FDS };
    s_send_hello(self);
    self->next_heartbeat = kiln_clock_mono_ms() + self->heartbeat_ms;
    while (!self->stopping) {
        int64_t now = kiln_clock_mono_ms();
        if (s_drained(self, now))
            break;
        zmq_pollitem_t items[MAX_ITEMS];
        s_job_t *owner[MAX_ITEMS];
        int n = 0, first_notice = 0;
        items[n++] = (zmq_pollitem_t){self->sock, 0, ZMQ_POLLIN, 0};
        items[n++] = (zmq_pollitem_t){NULL, self->sigfd, ZMQ_POLLIN, 0};
        int64_t next = self->next_heartbeat;
        for (int i = 0; i < self->cfg.slots; i++) {
            s_job_t *job = self->jobs[i];
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
        long timeout = next > now ? (long)(next - now) : 0;
        if (zmq_poll(items, n, timeout) == -1) {
            if (zmq_errno() == EINTR)
                continue;
            kiln_log_error("zmq_poll: %s", zmq_strerror(zmq_errno()));
            return -1;
        }
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
            s_job_t *job = self->jobs[i];
            if (!job)
                continue;
            if (job->exec) {
                int64_t d = kiln_exec_next_deadline(job->exec);
                if (d >= 0 && d <= now)
                    kiln_exec_on_timer(job->exec, now);
            }
            if (job->hold_until && now >= job->hold_until)
                s_held_flush(job);
            s_job_advance(job); /* may free the job */
        }
        if (items[0].revents & ZMQ_POLLIN)
            s_on_socket(self);
        s_start_queued(self);
        now = kiln_clock_mono_ms();
        if (self->drain_deadline && now >= self->drain_deadline && s_n_jobs(self) > 0) {
            kiln_log_warn("drain deadline reached: handing back %zu jobs", s_n_jobs(self));
            s_abandon_jobs(self, KILN__OUTCOME__OUTCOME_DRAINED,
                           "the worker was drained before the job finished");
        }
        for (size_t r = 0; r < self->n_results; r++)
            if (self->results[r].resend_at <= now)
                s_send_result(self, &self->results[r]);
        if (now >= self->next_heartbeat)
            s_send_heartbeat(self);
    }
    if (self->stopping)
        s_abandon_jobs(self, KILN__OUTCOME__OUTCOME_INFRA_ERROR, "worker stopped");
    else
        s_send_heartbeat(self);
    kiln_log_info("worker %s exits", self->name);
    return 0;
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
    /* The steps' environments start from this worker's own, copied once. */
    for (char **p = environ; *p; p++) {
        const char *eq = strchr(*p, '=');
        if (!eq || eq == *p)
            continue;
        char *kv = strdup(*p);
        if (!kv) {
            kiln_error_set("worker: out of memory");
            goto cleanup;
        }
        rc = kiln_kv_setn(&self->base_env, *p, (size_t)(eq - *p), eq + 1, strlen(eq + 1));
        free(kv);
        if (rc == -1 || rc == KILN_ETOOBIG)
            goto cleanup;
    }
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
    snprintf(self->name, sizeof self->name, "%s", cfg->name ? cfg->name : self->hostname);
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
    char routing[160];
    snprintf(routing, sizeof routing, "w:%s", self->name);
    self->sock = self->zctx ? kiln_transport_connect(self->zctx, cfg->coordinator, &self->own,
                                                     self->server.public_z85, routing)
                            : NULL;
    if (!self->sock) {
        rc = KILN_EINFRA;
        goto cleanup;
    }
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
        s_job_free(&self->jobs[i]);
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
            s_spare_path(self, i, spare, sizeof spare);
            kiln_fs_rmtree(spare);
        }
    }
    kiln_kv_free(&self->base_env);
    kiln_notice_destroy(&self->notice);
    if (self->sock)
        zmq_close(self->sock);
    if (self->zctx)
        zmq_ctx_term(self->zctx);
    if (self->sigfd >= 0)
        close(self->sigfd);
    free(self);
    *self_p = NULL;
}
