/* job.c: one job on the worker: its steps in order through the executor,
 * their output filtered (workflow commands, masks) and sent against
 * credit, step starts and results held briefly so that a short job costs
 * two messages, and the job's result built at the end.
 *
 * A step's if:, env, name, timeout and continue-on-error are evaluated
 * with the contexts it sees (jobctx.c); its script is written to the
 * workspace and run with its shell (lang/shell.h).
 */
#include "worker/agent_int.h"
#include "worker/dockeraction.h"
#include "worker/imagestore.h"
#include "lang/expr.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
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
#include <zmq.h>

#include "common/clock.h"
#include "common/error.h"
#include "common/fs.h"
#include "common/labels.h"
#include "common/log.h"
#include "common/transport.h"
#include "lang/shell.h"
#include "lang/workflow.h"

const char *kiln_job_step_name(const kiln_wjob_t *job, size_t step)
{
    if (job->step_names && step < job->a->n_steps && job->step_names[step])
        return job->step_names[step];
    return step < job->a->n_steps ? job->a->steps[step]->name : "";
}

bool kiln_job_step_coe(const kiln_wjob_t *job, size_t step)
{
    if (job->step_coe && step < job->a->n_steps)
        return job->step_coe[step];
    return step < job->a->n_steps && job->a->steps[step]->continue_on_error;
}

void kiln_job_flush_held(kiln_wjob_t *job);

static void s_send_log(kiln_wjob_t *job, Kiln__Stream stream, const void *data, size_t len)
{
    kiln_job_flush_held(job);
    Kiln__Envelope env = KILN__ENVELOPE__INIT;
    Kiln__LogChunk chunk = KILN__LOG_CHUNK__INIT;
    chunk.job_key = job->a->job_key;
    chunk.token = job->a->token;
    chunk.step = (uint32_t)job->step;
    chunk.stream = stream;
    chunk.data.data = (uint8_t *)data;
    chunk.data.len = len;
    chunk.ts_ms = (uint64_t)kiln_clock_wall_ms();
    chunk.offset = job->output_sent;
    if (stream != KILN__STREAM__STREAM_SYSTEM)
        job->output_sent += len;
    env.body_case = KILN__ENVELOPE__BODY_LOG;
    env.log = &chunk;
    job->agent->credit -= (int64_t)len;
    kiln_agent_send(job->agent, &env);
}

void kiln_job_log(kiln_wjob_t *job, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void kiln_job_log(kiln_wjob_t *job, const char *fmt, ...)
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

void kiln_job_on_output(void *ctx, int stream, const char *data, size_t len)
{
    kiln_wjob_t *job = ctx;
    uint64_t limit = job->a->log_limit;
    if (job->log_truncated)
        return;
    if (limit && job->log_sent + len > limit) {
        /* The rest is dropped here, where it is cheapest, with a marker the
         * user sees; the job's status is unaffected. */
        job->log_truncated = true;
        kiln_job_log(job, "[kiln: log truncated: over the limit of %llu bytes]",
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
void kiln_job_flush_output(kiln_wjob_t *job)
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
void kiln_job_flush_held(kiln_wjob_t *job)
{
    for (size_t i = 0; i < job->n_held; i++) {
        Kiln__Envelope env = KILN__ENVELOPE__INIT;
        env.body_case = KILN__ENVELOPE__BODY_STEP_RESULT;
        env.step_result = &job->held[i];
        kiln_agent_send(job->agent, &env);
    }
    job->n_held = 0;
    if (job->start_held) {
        Kiln__Envelope m = KILN__ENVELOPE__INIT;
        Kiln__StepStarted ss = KILN__STEP_STARTED__INIT;
        ss.job_key = job->a->job_key;
        ss.token = job->a->token;
        ss.step = (uint32_t)job->step;
        ss.ts_ms = (uint64_t)job->step_started_ms;
        ss.name = (char *)kiln_job_step_name(job, job->step);
        m.body_case = KILN__ENVELOPE__BODY_STEP_STARTED;
        m.step_started = &ss;
        job->start_held = false;
        kiln_agent_send(job->agent, &m);
    }
    job->hold_until = 0;
}

static void s_hold(kiln_wjob_t *job)
{
    if (!job->hold_until)
        job->hold_until = kiln_clock_mono_ms() + KILN_AGENT_HOLD_MS;
}

/* A step's result, held back with the step's start (see held). */
void kiln_job_step_result(kiln_wjob_t *job, size_t step, Kiln__Outcome outcome, int exit_code,
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
    r.name = (char *)kiln_job_step_name(job, step);
    /* continue-on-error: a failed step concludes as a success. */
    r.conclusion = outcome;
    if (kiln_job_step_coe(job, step) &&
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
        kiln_job_flush_held(job);
        Kiln__Envelope env = KILN__ENVELOPE__INIT;
        env.body_case = KILN__ENVELOPE__BODY_STEP_RESULT;
        env.step_result = &r;
        kiln_agent_send(job->agent, &env);
        return;
    }
    job->held[job->n_held++] = r;
    s_hold(job);
}

/* Moves the held step results into the job's result r: they travel
 * inside it, under its key and token. Returns the pointer array r->steps
 * uses (the caller frees it after sending), NULL when nothing was held or
 * memory is short (they are then sent on their own). */
Kiln__StepResult **kiln_job_held_into(kiln_wjob_t *job, Kiln__JobResult *r)
{
    /* A step that started and has no result (the job ended around it): its
     * start goes now, after the results before it, ahead of the job's. */
    Kiln__StepResult **ptrs =
        job->n_held && !job->start_held ? calloc(job->n_held, sizeof *ptrs) : NULL;
    if (!ptrs) {
        kiln_job_flush_held(job);
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
void kiln_job_tracking_id(const kiln_wjob_t *job, char *out, size_t cap)
{
    snprintf(out, cap, "%s#%llu", job->a->job_key, (unsigned long long)job->a->token);
}

/* A composite action's directory as its steps see it: a local action's
 * under the workspace; a remote one's ("@actions/OWNER/REPO/SHA[/PATH]",
 * lang/composite.c) in the worker's actions directory. */
static void s_action_dir(const kiln_wjob_t *job, const char *action_path, char *out, size_t cap)
{
    if (strncmp(action_path, "@actions/", 9) == 0)
        snprintf(out, cap, "%s/%s", job->agent->actions_dir, action_path + 9);
    else
        snprintf(out, cap, "%s/%s", job->ws.ws, action_path);
}

/* GITHUB_ACTION (and github.action) of a step without an id, as GitHub
 * names it: __run for the first such step, __run_2 for the second, ... */
static void s_action_name(const kiln_wjob_t *job, size_t step, char *out, size_t cap)
{
    unsigned n = 0;
    for (size_t i = 0; i < step; i++)
        n += job->a->steps[i]->id[0] == '\0';
    if (n == 0)
        snprintf(out, cap, "__run");
    else
        snprintf(out, cap, "__run_%u", n + 1);
}

static int s_build_env(kiln_wjob_t *job, const Kiln__StepSpec *st, kiln_kv_t *e)
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
    /* What GitHub's runner sets that Kiln knows too (the README has the
     * table); the repository's (GITHUB_SHA, GITHUB_REF, ...) when the run
     * has one. */
    const kiln_jobctx_t *jx = job->jx;
    if (kiln_kv_set(e, "GITHUB_ACTIONS", "true") ||
        kiln_kv_set(e, "GITHUB_RUN_NUMBER", num) ||
        kiln_kv_set(e, "GITHUB_EVENT_NAME", kiln_jobctx_github(jx, "event_name")) ||
        kiln_kv_set(e, "GITHUB_EVENT_PATH", kiln_jobctx_event_path(jx)) ||
        kiln_kv_set(e, "GITHUB_ACTOR", kiln_jobctx_github(jx, "actor")) ||
        kiln_kv_set(e, "RUNNER_ARCH", kiln_jobctx_arch()) ||
        kiln_kv_set(e, "RUNNER_WORKSPACE", job->ws.root) ||
        kiln_kv_set(e, "RUNNER_TOOL_CACHE", job->agent->tool_cache) ||
        kiln_kv_set(e, "RUNNER_ENVIRONMENT", "self-hosted"))
        return -1;
    static const char *const repo_vars[][2] = {
        {"GITHUB_REPOSITORY", "repository"}, {"GITHUB_REF", "ref"}, {"GITHUB_SHA", "sha"},
        {"GITHUB_REF_NAME", "ref_name"},     {"GITHUB_REF_TYPE", "ref_type"},
        {"GITHUB_HEAD_REF", "head_ref"},     {"GITHUB_BASE_REF", "base_ref"},
        {"GITHUB_REPOSITORY_OWNER", "repository_owner"}, {"GITHUB_SERVER_URL", "server_url"},
        {"GITHUB_API_URL", "api_url"}, {"GITHUB_GRAPHQL_URL", "graphql_url"},
        {"GITHUB_WORKFLOW_REF", "workflow_ref"}, {"GITHUB_WORKFLOW_SHA", "workflow_sha"}};
    for (size_t i = 0; i < sizeof repo_vars / sizeof repo_vars[0]; i++) {
        const char *v = kiln_jobctx_github(jx, repo_vars[i][1]);
        if (v[0] && kiln_kv_set(e, repo_vars[i][0], v))
            return -1;
    }
    /* Which job a process left behind belongs to (the worker's cgroup
     * holds every slot's), as GitHub's runner marks its steps. */
    char tracking[300];
    kiln_job_tracking_id(job, tracking, sizeof tracking);
    if (kiln_kv_set(e, "KILN_TRACKING_ID", tracking))
        return -1;
    char action[64];
    s_action_name(job, job->step, action, sizeof action);
    if (kiln_kv_set(e, "GITHUB_ACTION", st->id[0] ? st->id : action))
        return -1;
    if (st->action_path && st->action_path[0]) {
        char apath[KILN_WORKSPACE_PATH_MAX + 1100];
        s_action_dir(job, st->action_path, apath, sizeof apath);
        if (kiln_kv_set(e, "GITHUB_ACTION_PATH", apath))
            return -1;
    }
    char err[512];
    if (kiln_jobctx_step_env(job->jx, job->step, st, e, err, sizeof err) != 0) {
        kiln_error_set("%s", err);
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- steps */

/* An action's inputs (its step's with:), evaluated now with the step's
 * contexts, as INPUT_<NAME> (GitHub's convention: upper case, spaces as
 * '_'). */
static int s_inputs_env(kiln_wjob_t *job, const Kiln__StepSpec *st, kiln_kv_t *e)
{
    int rc = -1;
    json_t *with = NULL;
    char err[512];
    if (st->with.len) {
        json_error_t jerr;
        with = json_loadb((const char *)st->with.data, st->with.len, 0, &jerr);
        if (!json_is_object(with)) {
            kiln_job_log(job, "the step's with: does not decode: %s", jerr.text);
            goto cleanup;
        }
    }
    const char *name;
    json_t *v;
    json_object_foreach(with, name, v) {
        char key[300], *value = NULL;
        size_t n = 0;
        n += (size_t)snprintf(key, sizeof key, "INPUT_");
        for (const char *c = name; *c && n + 1 < sizeof key; c++)
            key[n++] = *c == ' ' ? '_' : (char)toupper((unsigned char)*c);
        key[n] = '\0';
        /* with: fetch-depth: 0 is a YAML number; an input is its text. */
        char *plain = json_is_string(v) ? NULL : kiln_expr_string(v);
        const char *text = json_is_string(v) ? json_string_value(v) : plain ? plain : "";
        int irc = kiln_jobctx_interpolate(job->jx, text, &value, err, sizeof err);
        free(plain);
        if (irc != 0) {
            kiln_job_log(job, "with.%s: %s", name, err);
            goto cleanup;
        }
        int set = kiln_kv_set(e, key, value);
        free(value);
        if (set != 0) {
            kiln_job_log(job, "cannot build the step environment: out of memory");
            goto cleanup;
        }
    }
    rc = 0;
cleanup:
    json_decref(with);
    return rc;
}

/* A built-in action's inputs and what kiln-checkout needs of the worker
 * and the run. */
static int s_builtin_env(kiln_wjob_t *job, const Kiln__StepSpec *st, kiln_kv_t *e)
{
    if (s_inputs_env(job, st, e) != 0)
        return -1;
    char index[24];
    snprintf(index, sizeof index, "%zu", job->step);
    if (kiln_kv_set(e, "KILN_BUILTIN", st->builtin) || kiln_kv_set(e, "KILN_STEP_INDEX", index) ||
        kiln_kv_set(e, "KILN_CACHE_DIR", job->agent->cache_dir) ||
        kiln_kv_set(e, "KILN_STORE_SOCKET", job->agent->store_socket) ||
        kiln_kv_set(e, "KILN_STORE_TOKEN", job->store_secret) ||
        kiln_kv_set(e, "KILN_CACHE_MAX_MB", job->agent->cache_max_mb) ||
        kiln_kv_set(e, "KILN_GIT_CREDENTIALS", job->agent->git_credentials) ||
        kiln_kv_set(e, "KILN_GIT_TIMEOUT_S", job->agent->git_timeout) ||
        kiln_kv_set(e, "KILN_ACTIONS_DIR", job->agent->actions_dir) ||
        kiln_kv_set(e, "KILN_GIT_CACHE", job->agent->git_cache) ||
        kiln_kv_set(e, "KILN_SOURCE_URL", job->a->source_url ? job->a->source_url : "")) {
        kiln_job_log(job, "cannot build the step environment: out of memory");
        return -1;
    }
    return 0;
}

/* A JavaScript action's phase: its inputs, which action it is, and the
 * state its earlier phases saved. No store token: the action is the
 * user's code, like a run: step. */
static int s_node_env(kiln_wjob_t *job, const Kiln__StepSpec *st, const json_t *js,
                      kiln_kv_t *e)
{
    const char *instance = json_string_value(json_object_get(js, "state"));
    const char *repo = json_string_value(json_object_get(js, "repository"));
    const char *ref = json_string_value(json_object_get(js, "ref"));
    const char *phase = json_string_value(json_object_get(js, "phase"));
    bool post = phase && strcmp(phase, "post") == 0;
    int kept = post && instance ? kiln_jobctx_action_inputs(job->jx, instance, e) : 1;
    if (kept < 0 || (kept == 1 && s_inputs_env(job, st, e) != 0))
        return -1;
    if (phase && strcmp(phase, "main") == 0 && instance &&
        kiln_jobctx_action_keep_inputs(job->jx, instance, e) != 0) {
        kiln_job_log(job, "cannot keep the action's inputs for its post: out of memory");
        return -1;
    }
    if ((repo && repo[0] && kiln_kv_set(e, "GITHUB_ACTION_REPOSITORY", repo)) ||
        (ref && ref[0] && kiln_kv_set(e, "GITHUB_ACTION_REF", ref)) ||
        (instance && kiln_jobctx_action_state(job->jx, instance, e) != 0)) {
        kiln_job_log(job, "cannot build the step environment: out of memory");
        return -1;
    }
    return 0;
}

/* The command of a JavaScript action's phase: this worker's Node.js and
 * the phase's script, both checked so that a step that cannot run says
 * why, naming the action. */
static int s_node_argv(kiln_wjob_t *job, const json_t *js, const char *apath, char *script,
                       size_t cap, const char **argv)
{
    const kiln_node_t *node = &job->agent->node;
    const char *uses = json_string_value(json_object_get(js, "uses"));
    const char *using = json_string_value(json_object_get(js, "using"));
    const char *phase = json_string_value(json_object_get(js, "phase"));
    const char *file = json_string_value(json_object_get(js, "script"));
    int need = kiln_node_using_major(using);
    uses = uses ? uses : "?";
    if (!node->major) {
        kiln_job_log(job, "the JavaScript action '%s' (runs.using: %s) cannot run on this worker: %s",
                     uses, using ? using : "?", node->why);
        return -1;
    }
    if (!need || !file || !phase) {
        kiln_job_log(job, "the JavaScript action '%s': this worker does not know runs.using %s; "
                     "it is older than its coordinator", uses, using ? using : "?");
        return -1;
    }
    if (node->major < need) {
        kiln_job_log(job, "the JavaScript action '%s' (runs.using: %s) needs Node.js %d or newer; "
                     "this worker's %s is %s (start kiln-worker with --node for a newer one)",
                     uses, using, need, node->path, node->version);
        return -1;
    }
    struct stat sb;
    if ((size_t)snprintf(script, cap, "%s/%s", apath, file) >= cap || stat(script, &sb) != 0 ||
        !S_ISREG(sb.st_mode)) {
        kiln_job_log(job, "the JavaScript action '%s' has no file %s (its runs.%s)", uses, file,
                     phase);
        return -1;
    }
    argv[0] = node->path;
    argv[1] = script;
    argv[2] = NULL;
    return 0;
}

void kiln_job_finish(kiln_wjob_t *job);

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
static bool s_step_record(kiln_wjob_t *job, size_t index, Kiln__Outcome outcome)
{
    const Kiln__StepSpec *st = job->a->steps[index];
    Kiln__Outcome conclusion = outcome;
    char err[512];
    if (kiln_job_step_coe(job, index) && (outcome == KILN__OUTCOME__OUTCOME_FAILURE ||
                                   outcome == KILN__OUTCOME__OUTCOME_TIMED_OUT))
        conclusion = KILN__OUTCOME__OUTCOME_SUCCESS;
    if (kiln_jobctx_step_done(job->jx, index, st, s_outcome_word(outcome),
                              s_outcome_word(conclusion), err, sizeof err) != 0) {
        kiln_job_log(job, "%s", err);
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
static void s_name_step(kiln_wjob_t *job, const Kiln__StepSpec *st)
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
static int s_step_settings(kiln_wjob_t *job, const Kiln__StepSpec *st, int64_t *timeout)
{
    char *text = NULL, err[512];
    if (st->continue_on_error_expr[0]) {
        if (kiln_jobctx_interpolate(job->jx, st->continue_on_error_expr, &text, err,
                                    sizeof err) != 0) {
            kiln_job_log(job, "continue-on-error: %s", err);
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
            kiln_job_log(job, "timeout-minutes: %s", err);
            return -1;
        }
        char *end = NULL;
        double minutes = strtod(text, &end);
        if (!end || end == text || *end || !(minutes > 0) || minutes > 60.0 * 24 * 365) {
            kiln_job_log(job, "timeout-minutes must be a number of minutes greater than 0, not '%s'",
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
    char found[PATH_MAX];
    return kiln_fs_find_program(program, found, sizeof found) == 0;
}

/* A step that cannot start because this worker's disk is full or failing
 * says nothing about the build: the job stops and goes back as an
 * infrastructure error (job->unwell), so it runs on another worker. */
static bool s_disk_trouble(kiln_wjob_t *job, int err, const char *what)
{
    if (err != ENOSPC && err != EDQUOT && err != EROFS && err != EIO)
        return false;
    snprintf(job->unwell_why, sizeof job->unwell_why, "this worker's disk: %s: %s", what,
             strerror(err));
    job->unwell = true;
    kiln_log_error("job %s: %s", job->a->job_key, job->unwell_why);
    return true;
}

/* Starts the job's current step. Returns 0 when a process is running, 1
 * when the step's if: skipped it, and -1 when it failed to start (reported
 * failed). */
static int s_step_start(kiln_wjob_t *job)
{
    kiln_agent_t *self = job->agent;
    const Kiln__StepSpec *st = job->a->steps[job->step];
    char script[KILN_WORKSPACE_PATH_MAX + 64], cwd[PATH_MAX * 2], err[512];
    char jsfile[KILN_WORKSPACE_PATH_MAX + 1100 + PATH_MAX];
    char wrapper[KILN_WORKSPACE_PATH_MAX + 80];
    bool in_container = false, wrapped = false, default_shell = false;
    bool node_in_container = false;
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
    char action[64];
    s_action_name(job, job->step, action, sizeof action);
    char apath[KILN_WORKSPACE_PATH_MAX + 1100] = "";
    if (st->action_path && st->action_path[0])
        s_action_dir(job, st->action_path, apath, sizeof apath);
    kiln_jobctx_set_action(job->jx, st->id[0] ? st->id : action, apath);
    /* The job's containers are made known before its first step's
     * expressions (job.services.<id>.ports); an error here is the first
     * container step's to report. */
    if (!job->ctr_ready && (job->a->container.len > 0 || job->a->services.len > 0 ||
                            (job->agent->cfg.job_image && job->agent->cfg.job_image[0])))
        (void)kiln_container_prepare(job, err, sizeof err);
    /* A JavaScript action's post runs only when its main step ran. */
    json_t *js = st->js_action.len
                     ? json_loadb((const char *)st->js_action.data, st->js_action.len, 0, NULL)
                     : NULL;
    const char *js_phase = json_string_value(json_object_get(js, "phase"));
    const char *instance = json_string_value(json_object_get(js, "state"));
    bool unrun = js_phase && strcmp(js_phase, "post") == 0 &&
                 (!instance || !kiln_jobctx_action_has_run(job->jx, instance));
    int crc = unrun ? 0 : kiln_jobctx_step_condition(job->jx, st, &runs, err, sizeof err);
    if (crc == 0 && (unrun || !runs)) {
        s_name_step(job, st);
        kiln_job_step_result(job, job->step, KILN__OUTCOME__OUTCOME_SKIPPED, -1, 0,
                           job->step_started_ms, job->step_started_ms);
        s_step_record(job, job->step, KILN__OUTCOME__OUTCOME_SKIPPED);
        json_decref(js);
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
        kiln_job_log(job, "if: %s", err);
        goto cleanup;
    }
    if (brc != 0) {
        int e = errno;
        kiln_job_log(job, "%s", err);
        s_disk_trouble(job, e, "cannot prepare the step's files");
        goto cleanup;
    }
    int64_t step_timeout = (int64_t)st->timeout_ms;
    if (s_step_settings(job, st, &step_timeout) != 0)
        goto cleanup;
    if (st->uses && st->uses[0]) {
        kiln_job_log(job,
                     "the action '%s' was not in the repository when the run was submitted; "
                     "Kiln reads local actions from the repository, not from the workspace",
                     st->uses);
        goto cleanup;
    }
    bool builtin = st->builtin && st->builtin[0];
    bool node = builtin && strcmp(st->builtin, "node") == 0;
    bool docker = builtin && strcmp(st->builtin, "docker") == 0;
    if (docker) {
        /* Its container's name and the job's services come from there. */
        if (!js || kiln_container_prepare(job, err, sizeof err) != 0) {
            kiln_job_log(job, "%s", js ? err : "the Docker action's step does not decode");
            goto cleanup;
        }
        if (instance && strcmp(js_phase, "main") == 0)
            kiln_jobctx_action_ran(job->jx, instance);
        snprintf(cwd, sizeof cwd, "%s", job->ws.ws);
        goto environment;
    }
    if (node) {
        if (!js || s_node_argv(job, js, apath, jsfile, sizeof jsfile, argv) != 0) {
            if (!js)
                kiln_job_log(job, "the JavaScript action's step does not decode");
            goto cleanup;
        }
        /* In a container job the action runs in the container, as on
         * GitHub, with the worker's Node.js (node.h). */
        if (self->node.contained &&
            (job->a->container.len > 0 ||
             (job->agent->cfg.job_image && job->agent->cfg.job_image[0]))) {
            if (kiln_container_prepare(job, err, sizeof err) != 0) {
                kiln_job_log(job, "%s", err);
                goto cleanup;
            }
            node_in_container = job->ctr != NULL;
        }
        if (instance && strcmp(js_phase, "main") == 0)
            kiln_jobctx_action_ran(job->jx, instance);
        snprintf(cwd, sizeof cwd, "%s", job->ws.ws);
        goto environment;
    }
    if (builtin) {
        if (strcmp(st->builtin, "checkout") != 0 && strcmp(st->builtin, "action") != 0 &&
            strcmp(st->builtin, "docker") != 0 &&
            strncmp(st->builtin, "cache", 5) != 0 && strcmp(st->builtin, "upload-artifact") != 0 &&
            strcmp(st->builtin, "download-artifact") != 0) {
            kiln_job_log(job, "this worker has no built-in action '%s'; it is older than its "
                         "coordinator", st->builtin);
            goto cleanup;
        }
        if (!self->checkout_program[0] || access(self->checkout_program, X_OK) != 0) {
            kiln_job_log(job, "%s: kiln-checkout is not installed beside kiln-worker (%s)",
                         strcmp(st->builtin, "checkout") == 0 ? "actions/checkout"
                         : strcmp(st->builtin, "action") == 0 ? "downloading an action"
                                                              : st->builtin,
                         self->checkout_program);
            goto cleanup;
        }
        argv[0] = self->checkout_program;
        argv[1] = NULL;
        snprintf(cwd, sizeof cwd, "%s", job->ws.ws);
        goto environment;
    }
    /* ${{ }} in the script, the directory and the shell, with the contexts
     * as they are now (earlier steps' outputs included). */
    if (kiln_jobctx_interpolate(job->jx, st->run, &run_text, err, sizeof err) != 0 ||
        kiln_jobctx_interpolate(job->jx, st->working_directory, &wd, err, sizeof err) != 0 ||
        kiln_jobctx_interpolate(job->jx, st->shell, &shell, err, sizeof err) != 0) {
        kiln_job_log(job, "%s", err);
        goto cleanup;
    }
    if (kiln_workspace_step_file(&job->ws, KILN_WORKSPACE_SCRIPT, job->step, script,
                                 sizeof script) != 0) {
        kiln_job_log(job, "%s", kiln_error_last());
        goto cleanup;
    }
    /* PowerShell runs only scripts named .ps1. */
    strncat(script, kiln_shell_suffix(shell), sizeof script - strlen(script) - 1);
    if (s_write_script(script, run_text) != 0) {
        int e = errno;
        kiln_job_log(job, "cannot write the step script: %s", strerror(e));
        s_disk_trouble(job, e, "cannot write the step script");
        goto cleanup;
    }
    if (kiln_shell_argv(shell, script, shellbuf, sizeof shellbuf, argv, err, sizeof err) < 0) {
        kiln_job_log(job, "%s", err);
        goto cleanup;
    }
    /* In a container, or beside services (on the host): the step goes
     * through a script that starts them first (container.c). */
    wrapped = job->a->container.len > 0 || job->a->services.len > 0 ||
              (job->agent->cfg.job_image && job->agent->cfg.job_image[0]);
    if (wrapped && kiln_container_prepare(job, err, sizeof err) != 0) {
        kiln_job_log(job, "%s", err);
        goto cleanup;
    }
    in_container = wrapped && job->ctr;
    /* In a container the shell is the image's, and so is an absolute
     * working-directory: both are checked there. */
    if (!in_container && !s_on_path(argv[0])) {
        kiln_job_log(job, "shell '%s': '%s' is not installed on this worker", shell[0] ? shell : "bash",
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
    if (!(in_container && wd[0] == '/') && (stat(cwd, &sb) != 0 || !S_ISDIR(sb.st_mode))) {
        kiln_job_log(job, "working-directory '%s' does not exist", wd);
        goto cleanup;
    }
    default_shell = !shell[0];
environment:
    if (s_build_env(job, st, &env) != 0) {
        int e = errno;
        kiln_job_log(job, "cannot build the step environment: %s", kiln_error_last());
        s_disk_trouble(job, e, "cannot build the step environment");
        goto cleanup;
    }
    if ((node || docker) ? s_node_env(job, st, js, &env) != 0
                         : builtin && s_builtin_env(job, st, &env) != 0)
        goto cleanup;
    if (docker) {
        char dwrap[KILN_WORKSPACE_PATH_MAX + 80];
        if (kiln_workspace_step_file(&job->ws, KILN_WORKSPACE_SCRIPT, job->step, dwrap,
                                     sizeof dwrap - 16) != 0) {
            kiln_job_log(job, "%s", kiln_error_last());
            goto cleanup;
        }
        strcat(dwrap, ".docker");
        snprintf(wrapper, sizeof wrapper, "%s", dwrap);
        if (kiln_dockeraction_wrap(job, st, js, &env, apath, wrapper, err, sizeof err) != 0) {
            kiln_job_log(job, "%s", err);
            goto cleanup;
        }
        argv[0] = "/bin/sh";
        argv[1] = wrapper;
        argv[2] = NULL;
    }
    if (node_in_container) {
        char nwrap[KILN_WORKSPACE_PATH_MAX + 80];
        if (kiln_workspace_step_file(&job->ws, KILN_WORKSPACE_SCRIPT, job->step, nwrap,
                                     sizeof nwrap - 16) != 0) {
            kiln_job_log(job, "%s", kiln_error_last());
            goto cleanup;
        }
        strcat(nwrap, ".node");
        const char *nargv[] = {self->node.contained_loader, "--library-path",
                               self->node.contained_libs, self->node.contained_node, jsfile,
                               NULL};
        if (kiln_container_wrap(job, &env, nargv, false, "", cwd, nwrap, err, sizeof err) != 0) {
            int e = errno;
            kiln_job_log(job, "%s", err);
            s_disk_trouble(job, e, "cannot write the step's container script");
            goto cleanup;
        }
        snprintf(wrapper, sizeof wrapper, "%s", nwrap);
        argv[0] = "/bin/sh";
        argv[1] = wrapper;
        argv[2] = NULL;
    }
    if (wrapped) {
        /* The host runs the engine; the step runs in the container (or
         * here, beside its services), in the directory it asked for. */
        snprintf(wrapper, sizeof wrapper, "%s.host", script);
        if (kiln_container_wrap(job, &env, argv, default_shell, script, cwd, wrapper, err,
                                sizeof err) != 0) {
            int e = errno;
            kiln_job_log(job, "%s", err);
            s_disk_trouble(job, e, "cannot write the step's container script");
            goto cleanup;
        }
        argv[0] = "/bin/sh";
        argv[1] = wrapper;
        argv[2] = NULL;
        snprintf(cwd, sizeof cwd, "%s", job->ws.ws);
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
        .on_output = kiln_job_on_output,
        .ctx = job,
    };
    if (kiln_exec_start(&job->exec, &opts) != 0) {
        kiln_job_log(job, "cannot start the step: %s", kiln_error_last());
        goto cleanup;
    }
    /* The guard exists now: armed from the step's first moment, not from
     * the next heartbeat. */
    kiln_agent_arm_guard(self);
    rc = 0;
cleanup:
    kiln_kv_free(&env);
    json_decref(js);
    free(run_text);
    free(wd);
    free(shell);
    if (rc != 0) {
        kiln_job_step_result(job, job->step, KILN__OUTCOME__OUTCOME_FAILURE, -1, 0,
                           job->step_started_ms, kiln_clock_wall_ms());
        s_step_record(job, job->step, KILN__OUTCOME__OUTCOME_FAILURE);
        if (!kiln_job_step_coe(job, job->step))
            job->failed = true;
    }
    return rc;
}

/* Collects a finished step's result and reports it. */
static void s_step_done(kiln_wjob_t *job)
{
    kiln_exec_status_t status = kiln_exec_status(job->exec);
    int code = kiln_exec_exit_code(job->exec), sig = kiln_exec_signal(job->exec);
    Kiln__Outcome outcome = KILN__OUTCOME__OUTCOME_FAILURE;
    int64_t now = kiln_clock_wall_ms();
    switch (status) {
    case KILN_EXEC_EXITED:
        outcome = code == 0 ? KILN__OUTCOME__OUTCOME_SUCCESS : KILN__OUTCOME__OUTCOME_FAILURE;
        if (code != 0)
            kiln_job_log(job, "step '%s' exited with code %d", kiln_job_step_name(job, job->step), code);
        break;
    case KILN_EXEC_SIGNALED:
        kiln_job_log(job, "step '%s' was killed by signal %d", kiln_job_step_name(job, job->step), sig);
        break;
    case KILN_EXEC_TIMED_OUT:
        outcome = KILN__OUTCOME__OUTCOME_TIMED_OUT;
        if (job->deadline && kiln_clock_mono_ms() >= job->deadline)
            job->job_timed_out = true;
        kiln_job_log(job, "step '%s' timed out after %lld ms; its process group was killed",
                     kiln_job_step_name(job, job->step), (long long)kiln_exec_duration_ms(job->exec));
        break;
    case KILN_EXEC_CANCELLED:
        outcome = KILN__OUTCOME__OUTCOME_CANCELLED;
        kiln_job_log(job, "step '%s' was cancelled", kiln_job_step_name(job, job->step));
        break;
    default:
        break;
    }
    kiln_exec_destroy(&job->exec);
    kiln_job_flush_output(job);
    if (s_step_record(job, job->step, outcome) && outcome == KILN__OUTCOME__OUTCOME_SUCCESS)
        outcome = KILN__OUTCOME__OUTCOME_FAILURE; /* a malformed command file */
    kiln_job_step_result(job, job->step, outcome, code, sig, job->step_started_ms, now);
    if (outcome != KILN__OUTCOME__OUTCOME_SUCCESS && !job->cancelled) {
        if (kiln_job_step_coe(job, job->step) && !job->job_timed_out) {
            kiln_job_log(job, "continue-on-error: the job goes on");
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
void kiln_job_advance(kiln_wjob_t *job)
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
                kiln_job_step_result(job, s, KILN__OUTCOME__OUTCOME_SKIPPED, -1, 0, now, now);
            kiln_job_finish(job);
            return;
        }
        if (s_step_start(job) != 0) {
            if (job->unwell) {
                kiln_job_finish(job);
                return;
            }
            job->step++;
            continue;
        }
    }
}

void kiln_job_free(kiln_wjob_t **job_p)
{
    kiln_wjob_t *job = *job_p;
    if (!job)
        return;
    kiln_job_flush_held(job);
    free(job->held);
    kiln_exec_destroy(&job->exec);
    kiln_container_remove(job);
    json_decref(job->ctr);
    json_decref(job->svc);
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

void kiln_job_finish(kiln_wjob_t *job)
{
    kiln_agent_t *self = job->agent;
    /* What it restored or saved is warm here now: said at the next heartbeat. */
    self->holds_at = 0;
    Kiln__Outcome outcome;
    if (job->cancelled)
        outcome = KILN__OUTCOME__OUTCOME_CANCELLED;
    else if (job->job_timed_out)
        outcome = KILN__OUTCOME__OUTCOME_TIMED_OUT;
    else if (job->unwell)
        outcome = KILN__OUTCOME__OUTCOME_INFRA_ERROR;
    else if (job->failed)
        outcome = job->outcome ? job->outcome : KILN__OUTCOME__OUTCOME_FAILURE;
    else
        outcome = KILN__OUTCOME__OUTCOME_SUCCESS;
    /* What the job leaves besides its outcome. */
    Kiln__JobResult extra = KILN__JOB_RESULT__INIT;
    kiln_kv_t outs = {0};
    char err[512], **keys = NULL;
    if (kiln_jobctx_outputs(job->jx, &outs, err, sizeof err) != 0)
        kiln_job_log(job, "outputs: %s", err);
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
    Kiln__StepResult **held = kiln_job_held_into(job, &extra);
    extra.worker_unwell = job->unwell;
    /* The native image's layers, for the scheduler's next placement. */
    char layers[KILN_JOB_LAYERS_MAX][72];
    char *layer_ptr[KILN_JOB_LAYERS_MAX];
    uint64_t layer_sizes[KILN_JOB_LAYERS_MAX];
    if (job->native && job->ctr) {
        size_t nl = kiln_imagestore_layers(self->native.store,
                                           json_string_value(json_object_get(job->ctr, "image")),
                                           layers, layer_sizes, KILN_JOB_LAYERS_MAX);
        for (size_t i = 0; i < nl; i++)
            layer_ptr[i] = layers[i];
        extra.image_layers = layer_ptr;
        extra.n_image_layers = nl;
        extra.image_layer_sizes = layer_sizes;
        extra.n_image_layer_sizes = nl;
    }
    kiln_outbox_add(self, job->a->job_key, job->a->token, outcome, job->started_ms,
                    job->unwell ? job->unwell_why : NULL, &extra);
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
    /* Nothing of the job outlives it: what its steps left running (a
     * daemon that left its process group) is killed, and the tree is
     * recycled only once it is gone. */
    bool swept = kiln_agent_sweep_job(self, job);
    /* However the job ended (cancelled, timed out, drained), once what it
     * left running is gone (the removal is no process of the job's). */
    kiln_container_remove(job);
    if (!swept && !self->cfg.keep_workspaces) {
        kiln_workspace_remove(&job->ws);
        self->spare_ready[job->slot] = false;
    } else if (!self->cfg.keep_workspaces) {
        char spare[KILN_WORKSPACE_PATH_MAX];
        kiln_agent_spare_path(self, job->slot, spare, sizeof spare);
        int kept = kiln_workspace_recycle(&job->ws, spare);
        self->spare_ready[job->slot] = kept >= 0;
        self->spare_steps[job->slot] = kept > 0 ? (unsigned)kept : 0;
        if (!self->spare_ready[job->slot])
            kiln_log_warn("%s", kiln_error_last());
    }
    assert(self->jobs[job->slot] == job);
    self->jobs[job->slot] = NULL;
    kiln_job_free(&job);
}
