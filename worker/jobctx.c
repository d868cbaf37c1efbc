/* jobctx.c: a job's expression state on the worker (see jobctx.h). */
#include "worker/jobctx.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "common/error.h"
#include "common/fs.h"
#include "common/termsafe.h"
#include "lang/cmdfiles.h"
#include "lang/workflow.h"
#include "common/log.h"
#include "worker/hashfiles.h"

/* Levels of steps contexts: the job's and nested composite actions'. */
#define S_SCOPES 12

struct kiln_jobctx {
    const Kiln__JobAssign *a;
    json_t *contexts;          /* what the coordinator sent, plus runner, env, steps */
    kiln_expr_status_t status;
    kiln_workspace_t ws;       /* ws.ws is GITHUB_WORKSPACE, ws.tmp RUNNER_TEMP */
    char event_path[KILN_WORKSPACE_PATH_MAX + 16]; /* GITHUB_EVENT_PATH */
    kiln_kv_t env_added;       /* from $GITHUB_ENV, job-wide from the next step on */
    kiln_kv_t paths;           /* from $GITHUB_PATH */
    kiln_commands_t *commands;
    char *summary;
    size_t summary_len;
    char files[5][KILN_WORKSPACE_PATH_MAX + 64]; /* this step's command files */
    /* JavaScript actions' instances (by their main step's index): whether
     * the main step ran, and the state their phases saved ({ran, state}). */
    json_t *actions;
    json_t *saved_inputs;      /* the job's inputs while a composite step runs */
    json_t *job_env;           /* the job's env as the coordinator evaluated it */
    /* The steps context of each level: [0] the job's, [k] that of the
     * composite action running at depth k. An action's steps see only
     * their own siblings, as on GitHub; its end clears its level. */
    json_t *scopes[S_SCOPES];
    /* Composite actions' own state: from which level on steps are skipped
     * (the uses: step's if: was false; -1: none), and whether a step of
     * the action running at each level failed (what success() and
     * failure() mean inside it). */
    int skip_level;
    bool level_failed[S_SCOPES];
};

/* runner.arch: the machine does not change under a running worker. */
static const char *s_arch(void)
{
    static const char *arch;
    if (!arch) {
        struct utsname u;
        arch = uname(&u) == 0 && strcmp(u.machine, "aarch64") == 0 ? "ARM64" : "X64";
    }
    return arch;
}

/* Writes the event payload over what a recycled workspace's last job left
 * (the same inode; see KILN_WORKSPACE_EVENT): padded with spaces to the old
 * length when shorter, never truncated. */
static int s_write_event(const char *path, const json_t *event)
{
    int rc = -1, fd = -1;
    char *text = json_dumps(event, JSON_COMPACT);
    char *buf = NULL;
    struct stat st;
    if (!text) {
        kiln_error_set("worker: out of memory");
        goto cleanup;
    }
    fd = open(path, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd == -1 || fstat(fd, &st) != 0)
        goto fail;
    size_t len = strlen(text), size = (size_t)st.st_size > len ? (size_t)st.st_size : len;
    if (!(buf = malloc(size + 1))) {
        kiln_error_set("worker: out of memory");
        goto cleanup;
    }
    memcpy(buf, text, len);
    memset(buf + len, ' ', size - len);
    if (pwrite(fd, buf, size, 0) != (ssize_t)size)
        goto fail;
    rc = 0;
    goto cleanup;
fail:
    kiln_error_set("worker: cannot write the event payload %s: %s", path, strerror(errno));
cleanup:
    if (fd != -1)
        close(fd);
    free(buf);
    free(text);
    return rc;
}

int kiln_jobctx_new(kiln_jobctx_t **out, const Kiln__JobAssign *a, const kiln_workspace_t *ws,
                    const char *worker, const char *tool_cache)
{
    const char *workspace = ws->ws, *temp = ws->tmp;
    kiln_jobctx_t *self = calloc(1, sizeof *self);
    if (self)
        self->skip_level = -1;
    json_error_t jerr;
    *out = NULL;
    if (!self)
        goto oom;
    self->a = a;
    self->ws = *ws;
    self->contexts = a->contexts.len
                         ? json_loadb((const char *)a->contexts.data, a->contexts.len, 0, &jerr)
                         : json_object();
    if (!json_is_object(self->contexts)) {
        json_decref(self->contexts);
        self->contexts = json_object();
    }
    if (!(self->commands = kiln_commands_new()) || !(self->summary = strdup("")) ||
        !(self->actions = json_object()))
        goto oom;
    /* Secrets are masked in everything the job shows, from its first line. */
    const char *sname;
    json_t *sval;
    json_object_foreach(json_object_get(self->contexts, "secrets"), sname, sval) {
        if (json_is_string(sval) && kiln_commands_add_mask(self->commands, json_string_value(sval)) != 0)
            kiln_log_warn("job: secret %s: %s", sname, kiln_error_last());
    }
    /* runner.workspace is the job's directory, the workspace's parent, as
     * on GitHub (where it holds the repository's directory): per job, so
     * ${{ runner.workspace }}/build is never another job's. */
    json_object_set_new(self->contexts, "runner",
                        json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "os", "Linux", "arch",
                                  s_arch(), "name", worker, "temp", temp, "workspace", ws->root,
                                  "tool_cache", tool_cache, "environment", "self-hosted"));
    self->scopes[0] = json_object();
    json_object_set(self->contexts, "steps", self->scopes[0]);
    json_t *gh = json_object_get(self->contexts, "github");
    if (!json_is_object(gh)) {
        gh = json_object();
        json_object_set_new(self->contexts, "github", gh);
    }
    json_object_set_new(gh, "workspace", json_string(workspace));
    /* The event: what Kiln knows of it (a workflow_dispatch's inputs), in
     * github.event and in the file $GITHUB_EVENT_PATH names. */
    /* A run from a repository brings its payload (lang/source.h); a run of
     * a file alone has only its inputs. */
    json_t *event = json_object_get(gh, "event");
    if (!json_is_object(event)) {
        event = json_object();
        const char *event_name = json_string_value(json_object_get(gh, "event_name"));
        if (event_name && strcmp(event_name, "workflow_dispatch") == 0)
            json_object_set(event, "inputs", json_object_get(self->contexts, "inputs"));
        json_object_set_new(gh, "event", event);
    }
    snprintf(self->event_path, sizeof self->event_path, "%s/%s", ws->root, KILN_WORKSPACE_EVENT);
    json_object_set_new(gh, "event_path", json_string(self->event_path));
    json_object_set_new(gh, "action", json_string(""));
    if (s_write_event(self->event_path, event) != 0) {
        kiln_jobctx_destroy(&self);
        return -1;
    }
    /* env: the workflow's and the job's, evaluated by the coordinator when
     * the job became ready (protocol 4): taken as they are. */
    self->job_env = json_object();
    if (!self->job_env)
        goto oom;
    for (size_t i = 0; i < a->n_env; i++)
        json_object_set_new(self->job_env, a->env[i]->key, json_string(a->env[i]->value));
    json_object_set_new(self->contexts, "env", json_deep_copy(self->job_env));
    *out = self;
    return 0;
oom:
    kiln_jobctx_destroy(&self);
    kiln_error_set("worker: out of memory");
    return -1;
}

const char *kiln_jobctx_github(const kiln_jobctx_t *self, const char *field)
{
    const char *v =
        json_string_value(json_object_get(json_object_get(self->contexts, "github"), field));
    return v ? v : "";
}

void kiln_jobctx_set_action(kiln_jobctx_t *self, const char *action, const char *action_path)
{
    json_t *gh = json_object_get(self->contexts, "github");
    if (!json_is_object(gh))
        return;
    json_object_set_new(gh, "action", json_string(action));
    /* A composite action's steps see its directory; others none. */
    if (action_path && action_path[0]) {
        json_object_set_new(gh, "action_path", json_string(action_path));
    } else {
        json_object_del(gh, "action_path");
    }
}

const char *kiln_jobctx_event_path(const kiln_jobctx_t *self)
{
    return self->event_path;
}

const char *kiln_jobctx_arch(void)
{
    return s_arch();
}

void kiln_jobctx_destroy(kiln_jobctx_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    kiln_jobctx_t *self = *self_p;
    json_decref(self->contexts);
    json_decref(self->actions);
    json_decref(self->saved_inputs);
    json_decref(self->job_env);
    for (size_t i = 0; i < S_SCOPES; i++)
        json_decref(self->scopes[i]);
    kiln_kv_free(&self->env_added);
    kiln_kv_free(&self->paths);
    kiln_commands_destroy(&self->commands);
    free(self->summary);
    free(self);
    *self_p = NULL;
}

void kiln_jobctx_set_status(kiln_jobctx_t *self, kiln_expr_status_t status)
{
    self->status = status;
    json_t *job = json_object_get(self->contexts, "job");
    if (!json_is_object(job)) {
        job = json_object();
        json_object_set_new(self->contexts, "job", job);
    }
    json_object_set_new(job, "status",
                        json_string(status == KILN_EXPR_SUCCESS   ? "success"
                                    : status == KILN_EXPR_FAILURE ? "failure"
                                                                  : "cancelled"));
}

void kiln_jobctx_set_containers(kiln_jobctx_t *self, json_t *container, json_t *services)
{
    json_t *job = json_object_get(self->contexts, "job");
    if (!json_is_object(job)) {
        job = json_object();
        json_object_set_new(self->contexts, "job", job);
    }
    if (container)
        json_object_set_new(job, "container", container);
    if (services)
        json_object_set_new(job, "services", services);
}

int kiln_jobctx_path_additions(kiln_jobctx_t *self, char *out, size_t cap)
{
    size_t o = 0;
    out[0] = '\0';
    for (size_t i = self->paths.n; i-- > 0;) {
        int n = snprintf(out + o, cap - o, "%s%s", o ? ":" : "", kiln_kv_value(&self->paths, i));
        if (n < 0 || (size_t)n >= cap - o)
            return -1;
        o += (size_t)n;
    }
    return 0;
}

/* hashFiles() reads the job's workspace through worker/hashfiles.c. */
static kiln_expr_env_t s_env(kiln_jobctx_t *self)
{
    kiln_expr_env_t e = {self->contexts, self->status, kiln_hashfiles_callback, self->ws.ws};
    return e;
}

/* The inputs each level of a step's composite actions sees, outermost
 * first: level k's templates are evaluated with level k-1's values as the
 * inputs context (level 0: the job's). New array. */
static json_t *s_action_levels(kiln_jobctx_t *self, const Kiln__StepSpec *st)
{
    json_t *stack = json_loadb((const char *)st->action_inputs.data, st->action_inputs.len, 0,
                               NULL);
    json_t *levels = json_array();
    json_t *job_inputs = json_object_get(self->contexts, "inputs");
    json_t *saved = job_inputs ? json_incref(job_inputs) : json_null();
    size_t k;
    json_t *templates;
    json_array_foreach(stack, k, templates) {
        json_t *values = json_object();
        const char *name;
        json_t *t;
        json_object_foreach(templates, name, t) {
            char *v = NULL, err[256];
            kiln_expr_env_t e = s_env(self);
            if (kiln_expr_interpolate(json_string_value(t) ? json_string_value(t) : "", &e, &v,
                                      err, sizeof err) != 0)
                v = strdup("");
            json_object_set_new(values, name, json_string(v ? v : ""));
            free(v);
        }
        json_array_append(levels, values);
        json_object_set_new(self->contexts, "inputs", values); /* for the next level */
    }
    json_object_set_new(self->contexts, "inputs", saved);
    json_decref(stack);
    return levels;
}

/* The steps context of level depth (made when first entered). */
static json_t *s_scope(kiln_jobctx_t *self, size_t depth)
{
    if (depth >= S_SCOPES)
        depth = S_SCOPES - 1;
    if (!self->scopes[depth])
        self->scopes[depth] = json_object();
    json_object_set(self->contexts, "steps", self->scopes[depth]);
    return self->scopes[depth];
}

/* A step from composite actions sees its innermost action's inputs and
 * the steps of that action. */
static void s_enter_step(kiln_jobctx_t *self, const Kiln__StepSpec *st)
{
    if (!st->action_inputs.len) {
        s_scope(self, 0);
        return;
    }
    json_t *levels = s_action_levels(self, st);
    s_scope(self, json_array_size(levels));
    json_t *last = json_array_get(levels, json_array_size(levels) - 1);
    if (last) {
        json_decref(self->saved_inputs);
        json_t *old = json_object_get(self->contexts, "inputs");
        self->saved_inputs = old ? json_incref(old) : json_null();
        json_object_set(self->contexts, "inputs", last);
    }
    json_decref(levels);
}

/* After the step: the ends of the actions it closes (their outputs,
 * evaluated with their own inputs), then the job's inputs again. */
static void s_leave_step(kiln_jobctx_t *self, const Kiln__StepSpec *st, const char *outcome,
                         const char *conclusion)
{
    if (self->saved_inputs) {
        json_object_set_new(self->contexts, "inputs", self->saved_inputs);
        self->saved_inputs = NULL;
    }
    if (!st->composite_ends.len)
        return;
    json_t *ends = json_loadb((const char *)st->composite_ends.data, st->composite_ends.len, 0,
                              NULL);
    json_t *levels = s_action_levels(self, st);
    json_t *job_inputs = json_object_get(self->contexts, "inputs");
    json_t *saved = job_inputs ? json_incref(job_inputs) : json_null();
    size_t k;
    json_t *end;
    json_array_foreach(ends, k, end) {
        const char *id = json_string_value(json_object_get(end, "id"));
        json_t *level = json_array_get(levels, (size_t)json_integer_value(json_object_get(end, "level")));
        size_t depth = (size_t)json_integer_value(json_object_get(end, "level"));
        if (self->skip_level == (int)depth)
            self->skip_level = -1; /* the skipped action is over */
        if (!level)
            continue;
        /* Its outputs read its own steps; its uses: step is one of the
         * level around it; then its level is gone. */
        s_scope(self, depth + 1);
        json_object_set(self->contexts, "inputs", level);
        json_t *outs = json_object();
        const char *name;
        json_t *t;
        json_object_foreach(json_object_get(end, "outputs"), name, t) {
            char *v = NULL, err[256];
            kiln_expr_env_t e = s_env(self);
            if (kiln_expr_interpolate(json_string_value(t) ? json_string_value(t) : "", &e, &v,
                                      err, sizeof err) != 0)
                v = strdup("");
            json_object_set_new(outs, name, json_string(v ? v : ""));
            free(v);
        }
        if (depth + 1 < S_SCOPES) {
            json_decref(self->scopes[depth + 1]);
            self->scopes[depth + 1] = NULL;
        }
        json_t *around = s_scope(self, depth);
        if (id)
            json_object_set_new(around, id,
                                json_pack("{s:s, s:s, s:o}", "outcome", outcome, "conclusion",
                                          conclusion, "outputs", outs));
        else
            json_decref(outs);
    }
    s_scope(self, 0);
    json_object_set_new(self->contexts, "inputs", saved);
    json_decref(levels);
    json_decref(ends);
}

/* The status functions' answer at level depth: the job's at the top,
 * inside an action that action's own (it began because its if: held). */
static kiln_expr_status_t s_level_status(const kiln_jobctx_t *self, size_t depth)
{
    if (self->status == KILN_EXPR_CANCELLED || depth == 0)
        return self->status;
    if (depth >= S_SCOPES)
        depth = S_SCOPES - 1;
    return self->level_failed[depth] ? KILN_EXPR_FAILURE : KILN_EXPR_SUCCESS;
}

/* The number of composite action levels a step is in. */
static size_t s_depth(const Kiln__StepSpec *st)
{
    if (!st->action_inputs.len)
        return 0;
    json_t *stack = json_loadb((const char *)st->action_inputs.data, st->action_inputs.len, 0,
                               NULL);
    size_t n = json_array_size(stack);
    json_decref(stack);
    return n;
}

/* The if: of each action this step begins, outermost first, evaluated where
 * the action is used (that level's inputs and steps); the first false one
 * skips the action's steps until its end. */
static int s_begin_actions(kiln_jobctx_t *self, const Kiln__StepSpec *st, size_t depth, char *err,
                           size_t errlen)
{
    int rc = 0;
    json_t *begins = json_loadb((const char *)st->composite_begins.data,
                                st->composite_begins.len, 0, NULL);
    json_t *levels = s_action_levels(self, st);
    json_t *job_inputs = json_object_get(self->contexts, "inputs");
    json_t *saved = job_inputs ? json_incref(job_inputs) : json_null();
    kiln_expr_status_t status = self->status;
    size_t i;
    json_t *b;
    json_array_foreach(begins, i, b) {
        size_t level = (size_t)json_integer_value(json_object_get(b, "level"));
        if (self->skip_level >= 0 && (size_t)self->skip_level <= level)
            break;
        const char *cond = json_string_value(json_object_get(b, "if"));
        bool run = true;
        s_scope(self, level);
        json_t *in = level ? json_array_get(levels, level - 1) : saved;
        json_object_set(self->contexts, "inputs", in ? in : json_null());
        self->status = s_level_status(self, level);
        kiln_expr_env_t e = s_env(self);
        rc = kiln_expr_condition(cond && cond[0] ? cond : "success()", &e, &run, err, errlen);
        self->status = status;
        if (rc != 0)
            break;
        if (!run) {
            self->skip_level = (int)level;
            break;
        }
        if (level + 1 < S_SCOPES)
            self->level_failed[level + 1] = false;
    }
    json_object_set_new(self->contexts, "inputs", saved);
    s_scope(self, depth);
    json_decref(levels);
    json_decref(begins);
    return rc;
}

int kiln_jobctx_step_condition(kiln_jobctx_t *self, const Kiln__StepSpec *st, bool *run,
                               char *err, size_t errlen)
{
    size_t depth = s_depth(st);
    if (st->composite_begins.len && s_begin_actions(self, st, depth, err, errlen) != 0)
        return KILN_EINVAL;
    s_enter_step(self, st);
    if (self->skip_level >= 0 && depth > (size_t)self->skip_level) {
        *run = false;
        return 0;
    }
    kiln_expr_status_t status = self->status;
    self->status = s_level_status(self, depth);
    kiln_expr_env_t e = s_env(self);
    const char *cond = st->if_expr && st->if_expr[0] ? st->if_expr : "success()";
    int rc = kiln_expr_condition(cond, &e, run, err, errlen);
    self->status = status;
    return rc;
}

int kiln_jobctx_interpolate(kiln_jobctx_t *self, const char *text, char **out, char *err,
                            size_t errlen)
{
    kiln_expr_env_t e = s_env(self);
    if (!strstr(text, "${{")) {
        *out = strdup(text);
        return *out ? 0 : -1;
    }
    return kiln_expr_interpolate(text, &e, out, err, errlen);
}

int kiln_jobctx_interpolate_inputs(kiln_jobctx_t *self, const char *text, json_t *inputs,
                                   char **out, char *err, size_t errlen)
{
    json_t *saved = json_object_get(self->contexts, "inputs");
    saved = saved ? json_incref(saved) : json_null();
    json_object_set(self->contexts, "inputs", inputs);
    int rc = kiln_jobctx_interpolate(self, text, out, err, errlen);
    json_object_set_new(self->contexts, "inputs", saved);
    return rc;
}

/* Makes path an empty regular file of ours. A recycled workspace holds it
 * already, emptied: then it is only opened, since O_TRUNC would change its
 * times (a journalled inode update) even when there is nothing to cut. Not
 * through a link or FIFO an earlier step put in its place. */
static void s_empty_file(const char *path)
{
    int flags = O_WRONLY | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC;
    struct stat st;
    int fd = open(path, flags, 0600);
    if (fd != -1 && (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))) {
        close(fd);
        fd = -1;
    }
    if (fd == -1) {
        if ((unlink(path) != 0 && errno != ENOENT) ||
            (fd = open(path, flags | O_EXCL, 0600)) == -1) {
            kiln_log_warn("cannot make %s: %s", path, strerror(errno));
            return;
        }
        st.st_size = 0;
    }
    if (st.st_size > 0 && ftruncate(fd, 0) != 0)
        kiln_log_warn("cannot empty %s: %s", path, strerror(errno));
    close(fd);
}

/* Whether the command file at path is certainly empty (a regular file of
 * no bytes): then there is nothing to read. Anything else is left to the
 * reader, which reports what is wrong. */
static bool s_empty(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0 && S_ISREG(st.st_mode) && st.st_size == 0;
}

/* The env context between steps: the job's env and what $GITHUB_ENV added. */
static json_t *s_job_env(const kiln_jobctx_t *self)
{
    json_t *env = json_deep_copy(self->job_env);
    for (size_t i = 0; env && i < self->env_added.n; i++) {
        char key[KILN_JOBCTX_NAME_MAX];
        kiln_kv_key_copy(&self->env_added, i, key, sizeof key);
        json_object_set_new(env, key, json_string(kiln_kv_value(&self->env_added, i)));
    }
    return env;
}

int kiln_jobctx_step_begin(kiln_jobctx_t *self, const Kiln__StepSpec *st, char *err,
                           size_t errlen)
{
    json_t *env = s_job_env(self), *v = NULL;
    int rc = KILN_EINVAL;
    if (!env) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    /* A step's env values see the job's env (and each other, in order). */
    json_object_set(self->contexts, "env", env);
    for (size_t i = 0; i < st->n_env; i++) {
        char *val = NULL;
        if (kiln_jobctx_interpolate(self, st->env[i]->value, &val, err, errlen) != 0)
            goto cleanup;
        json_object_set_new(env, st->env[i]->key, json_string(val));
        free(val);
    }
    if (st->env_expr && st->env_expr[0]) {
        kiln_expr_env_t e = s_env(self);
        char inner[400];
        if (kiln_expr_value(st->env_expr, &e, &v, inner, sizeof inner) != 0) {
            snprintf(err, errlen, "env: %s", inner);
            goto cleanup;
        }
        if (json_is_string(v)) {
            json_t *parsed = json_loads(json_string_value(v), 0, NULL);
            json_decref(v);
            v = parsed;
        }
        if (!json_is_object(v) && !json_is_null(v)) {
            snprintf(err, errlen, "env: the expression must give a mapping of names to values");
            goto cleanup;
        }
        const char *k;
        json_t *x;
        json_object_foreach(v, k, x) {
            char *text = json_is_null(x) ? strdup("") : kiln_expr_string(x);
            json_object_set_new(env, k, json_string(text ? text : ""));
            free(text);
        }
    }
    rc = 0;
cleanup:
    json_decref(v);
    json_decref(env);
    return rc;
}

int kiln_jobctx_step_env(kiln_jobctx_t *self, size_t index, const Kiln__StepSpec *st,
                         kiln_kv_t *out, char *err, size_t errlen)
{
    const char *names[5] = {"GITHUB_OUTPUT", "GITHUB_ENV", "GITHUB_PATH", "GITHUB_STEP_SUMMARY",
                            "GITHUB_STATE"};
    const kiln_workspace_file_t kinds[5] = {KILN_WORKSPACE_OUTPUT, KILN_WORKSPACE_ENV,
                                            KILN_WORKSPACE_PATH, KILN_WORKSPACE_SUMMARY,
                                            KILN_WORKSPACE_STATE};
    const char *key;
    json_t *v;
    (void)st;
    /* The env context of this step (kiln_jobctx_step_begin): the job's
     * env, $GITHUB_ENV additions so far, then the step's own. */
    json_object_foreach(json_object_get(self->contexts, "env"), key, v) {
        /* A name that cannot be a variable ('=' in it) is left out, as a
         * shell would never see it. */
        if (kiln_kv_set(out, key, json_string_value(v)) == -1) {
            snprintf(err, errlen, "%s", kiln_error_last());
            return -1;
        }
    }
    if (self->paths.n) {
        /* Later additions first, then the worker's own PATH. */
        size_t cap = 64;
        for (size_t i = 0; i < self->paths.n; i++)
            cap += strlen(kiln_kv_value(&self->paths, i)) + 1;
        const char *base = getenv("PATH") ? getenv("PATH") : "/usr/bin:/bin";
        cap += strlen(base);
        char *path = malloc(cap);
        if (path) {
            size_t o = 0;
            for (size_t i = self->paths.n; i-- > 0;)
                o += (size_t)snprintf(path + o, cap - o, "%s:", kiln_kv_value(&self->paths, i));
            snprintf(path + o, cap - o, "%s", base);
            kiln_kv_set(out, "PATH", path);
            free(path);
        }
    }
    for (int f = 0; f < 5; f++) {
        if (kiln_workspace_step_file(&self->ws, kinds[f], index, self->files[f],
                                     sizeof self->files[f]) != 0) {
            snprintf(err, errlen, "%s", kiln_error_last());
            return KILN_EINVAL;
        }
        /* A recycled tree holds them already, checked and emptied. */
        if (index >= self->ws.ready_steps)
            s_empty_file(self->files[f]);
        kiln_kv_set(out, names[f], self->files[f]);
    }
    return 0;
}

/* A step file read (bounded, not through a link) and parsed: name=value
 * pairs into kv, or directories into paths. A file that fails adds
 * nothing; $GITHUB_ENV's NODE_OPTIONS lines are refused, as GitHub does. */
/* A warning annotation of the job's, as a step's ::warning:: would make. */
static void s_warn(kiln_jobctx_t *self, const char *msg)
{
    char line[600];
    snprintf(line, sizeof line, "::warning title=Kiln::%s\n", msg);
    char *shown = NULL;
    size_t shown_len = 0;
    (void)kiln_commands_filter(self->commands, line, strlen(line), true, &shown, &shown_len);
    free(shown);
}

static int s_read_file(kiln_jobctx_t *self, const Kiln__StepSpec *st, const char *path,
                       const char *name, kiln_kv_t *kv, kiln_kv_t *paths, char *err,
                       size_t errlen)
{
    char *text = NULL;
    size_t len = 0, refused = 0;
    int rc = kiln_fs_read_regular(path, KILN_CMD_MAX_FILE, &text, &len, err, errlen);
    bool changed = false;
    char *fixed = rc == 0 ? kiln_utf8_repair(text, len, &len, &changed) : NULL;
    if (rc == 0 && !fixed) {
        snprintf(err, errlen, "%s: out of memory", name);
        rc = -1;
    }
    free(text);
    text = fixed;
    if (changed) {
        char msg[300];
        snprintf(msg, sizeof msg,
                 "%s of step '%s' is not valid UTF-8: the bytes that are not were replaced by "
                 "U+FFFD",
                 name, st->name[0] ? st->name : st->id);
        s_warn(self, msg);
    }
    if (rc == 0 && kv)
        rc = kiln_cmdfiles_parse_kv(name, text, len, kv,
                                    strcmp(name, "GITHUB_ENV") == 0 ? &refused : NULL, err,
                                    errlen);
    else if (rc == 0)
        rc = kiln_cmdfiles_parse_path(name, text, len, paths, err, errlen);
    if (refused)
        kiln_log_warn("%s", KILN_CMD_NODE_OPTIONS_MSG);
    free(text);
    return rc;
}

/* The instance a JavaScript action's step belongs to (malloc'd), or NULL. */
static const char *s_js_instance(const Kiln__StepSpec *st)
{
    if (!st->js_action.len)
        return NULL;
    json_t *js = json_loadb((const char *)st->js_action.data, st->js_action.len, 0, NULL);
    const char *v = json_string_value(json_object_get(js, "state"));
    char *out = v ? strdup(v) : NULL;
    json_decref(js);
    return out;
}

/* The record of a JavaScript action's instance, made when first asked. */
static json_t *s_action_rec(kiln_jobctx_t *self, const char *instance)
{
    json_t *rec = json_object_get(self->actions, instance);
    if (!rec && (rec = json_pack("{s:b, s:{}}", "ran", 0, "state")) &&
        json_object_set_new(self->actions, instance, rec) != 0)
        rec = NULL;
    return rec;
}

void kiln_jobctx_action_ran(kiln_jobctx_t *self, const char *instance)
{
    json_t *rec = s_action_rec(self, instance);
    if (rec)
        json_object_set_new(rec, "ran", json_true());
}

bool kiln_jobctx_action_has_run(kiln_jobctx_t *self, const char *instance)
{
    return json_is_true(json_object_get(json_object_get(self->actions, instance), "ran"));
}

int kiln_jobctx_action_keep_inputs(kiln_jobctx_t *self, const char *instance,
                                   const kiln_kv_t *env)
{
    json_t *rec = s_action_rec(self, instance), *in = json_object();
    for (size_t i = 0; rec && in && i < env->n; i++) {
        char key[KILN_JOBCTX_NAME_MAX + 8];
        kiln_kv_key_copy(env, i, key, sizeof key);
        if (strncmp(key, "INPUT_", 6) == 0)
            json_object_set_new(in, key, json_string(kiln_kv_value(env, i)));
    }
    if (!rec || !in || json_object_set_new(rec, "inputs", in) != 0)
        return -1;
    return 0;
}

int kiln_jobctx_action_inputs(kiln_jobctx_t *self, const char *instance, kiln_kv_t *out)
{
    json_t *in = json_object_get(json_object_get(self->actions, instance), "inputs");
    const char *name;
    json_t *v;
    if (!in)
        return 1;
    json_object_foreach(in, name, v) if (kiln_kv_set(out, name, json_string_value(v)) == -1)
        return -1;
    return 0;
}

int kiln_jobctx_action_state(kiln_jobctx_t *self, const char *instance, kiln_kv_t *out)
{
    const char *name;
    json_t *v;
    json_object_foreach(json_object_get(json_object_get(self->actions, instance), "state"), name,
                        v) {
        char key[KILN_JOBCTX_NAME_MAX + 8];
        snprintf(key, sizeof key, "STATE_%s", name);
        if (kiln_kv_set(out, key, json_string_value(v)) == -1)
            return -1;
    }
    return 0;
}

int kiln_jobctx_step_done(kiln_jobctx_t *self, size_t index, const Kiln__StepSpec *st,
                          const char *outcome, const char *conclusion, char *err, size_t errlen)
{
    kiln_kv_t outputs = {0};
    char *summary = NULL;
    size_t len = 0;
    int rc = 0;
    (void)index;
    err[0] = '\0';
    /* Most steps write none of them: a look at each is then all it takes. */
    if (!s_empty(self->files[0]) &&
        s_read_file(self, st, self->files[0], "GITHUB_OUTPUT", &outputs, NULL, err, errlen) != 0)
        rc = KILN_EINVAL;
    if (rc == 0 && !s_empty(self->files[1]) &&
        s_read_file(self, st, self->files[1], "GITHUB_ENV", &self->env_added, NULL, err, errlen) != 0)
        rc = KILN_EINVAL;
    if (rc == 0 && !s_empty(self->files[2]) &&
        s_read_file(self, st, self->files[2], "GITHUB_PATH", NULL, &self->paths, err, errlen) != 0)
        rc = KILN_EINVAL;
    if (rc == 0 && !s_empty(self->files[3]) &&
        kiln_fs_read_regular(self->files[3], KILN_CMD_MAX_FILE, &summary, &len, err, errlen) != 0)
        rc = KILN_EINVAL;
    /* What ::set-output and ::save-state set in the step's output: below
     * what its files set (which are read last on GitHub too). */
    kiln_kv_t legacy_out = {0}, state = {0};
    kiln_commands_take_legacy(self->commands, &legacy_out, &state);
    for (size_t i = 0; i < legacy_out.n; i++) {
        char key[KILN_JOBCTX_NAME_MAX];
        kiln_kv_key_copy(&legacy_out, i, key, sizeof key);
        if (!kiln_kv_get(&outputs, key))
            kiln_kv_set(&outputs, key, kiln_kv_value(&legacy_out, i));
    }
    kiln_kv_free(&legacy_out);
    /* A JavaScript action's state: its later phases' STATE_*. */
    const char *instance = s_js_instance(st);
    if (rc == 0 && instance && !s_empty(self->files[4]) &&
        s_read_file(self, st, self->files[4], "GITHUB_STATE", &state, NULL, err, errlen) != 0)
        rc = KILN_EINVAL;
    if (instance) {
        json_t *rec = s_action_rec(self, instance), *vars = json_object_get(rec, "state");
        for (size_t i = 0; rec && i < state.n; i++) {
            char key[KILN_JOBCTX_NAME_MAX];
            kiln_kv_key_copy(&state, i, key, sizeof key);
            json_object_set_new(vars, key, json_string(kiln_kv_value(&state, i)));
        }
    }
    kiln_kv_free(&state);
    free((char *)instance);
    if (summary && len && self->summary_len + len + 1 <= KILN_JOBCTX_MAX_SUMMARY) {
        char *masked = kiln_commands_mask(self->commands, summary);
        const char *text = masked ? masked : summary;
        size_t tl = strlen(text);
        char *grown = realloc(self->summary, self->summary_len + tl + 2);
        if (grown) {
            self->summary = grown;
            memcpy(self->summary + self->summary_len, text, tl);
            self->summary_len += tl;
            if (self->summary_len && self->summary[self->summary_len - 1] != '\n')
                self->summary[self->summary_len++] = '\n';
            self->summary[self->summary_len] = '\0';
        }
        free(masked);
    }
    if (st->id && st->id[0]) {
        json_t *outs = json_object();
        for (size_t i = 0; i < outputs.n; i++) {
            char key[KILN_JOBCTX_NAME_MAX];
            kiln_kv_key_copy(&outputs, i, key, sizeof key);
            json_object_set_new(outs, key, json_string(kiln_kv_value(&outputs, i)));
        }
        json_object_set_new(json_object_get(self->contexts, "steps"), st->id,
                            json_pack("{s:s, s:s, s:o}", "outcome", outcome, "conclusion",
                                      conclusion, "outputs", outs));
    }
    kiln_kv_free(&outputs);
    free(summary);
    /* A failure inside actions is theirs, every level out. */
    if (strcmp(conclusion, "failure") == 0) {
        size_t depth = s_depth(st);
        for (size_t k = 1; k <= depth && k < S_SCOPES; k++)
            self->level_failed[k] = true;
    }
    s_leave_step(self, st, outcome, conclusion);
    /* A step's env is its own: the next step sees the job's again, with
     * what this one added to $GITHUB_ENV. */
    json_t *job_env = s_job_env(self);
    if (job_env)
        json_object_set_new(self->contexts, "env", job_env);
    return rc;
}

int kiln_jobctx_outputs(kiln_jobctx_t *self, kiln_kv_t *out, char *err, size_t errlen)
{
    json_t *spec = self->a->outputs.len ? json_loadb((const char *)self->a->outputs.data,
                                                     self->a->outputs.len, 0, NULL)
                                        : NULL;
    const char *name;
    json_t *v;
    int rc = 0;
    size_t total = 0;
    json_object_foreach(spec, name, v) {
        char *val = NULL;
        const char *text = json_is_string(v) ? json_string_value(v) : "";
        if (kiln_jobctx_interpolate(self, text, &val, err, errlen) != 0) {
            rc = KILN_EINVAL;
            break;
        }
        /* As GitHub does: an output that holds a masked value is not passed
         * on (nor stored), and a warning says which. */
        char *masked = kiln_commands_mask(self->commands, val);
        if (!masked || strcmp(masked, val) != 0) {
            char line[KILN_WF_MAX_ID + 128];
            snprintf(line, sizeof line,
                     "::warning title=Kiln::Skip output '%.*s' since it may contain secret.\n",
                     KILN_WF_MAX_ID, name);
            char *shown = NULL;
            size_t shown_len = 0;
            (void)kiln_commands_filter(self->commands, line, strlen(line), true, &shown, &shown_len);
            free(shown);
            free(masked);
            free(val);
            continue;
        }
        free(masked);
        /* Outputs travel in the job's result: each at most 1 MiB (as on
         * GitHub), all of a job's together at most 2 MiB. */
        size_t vlen = strlen(val);
        if (vlen > KILN_JOBCTX_MAX_OUTPUT || total + vlen > KILN_JOBCTX_MAX_OUTPUTS) {
            char msg[KILN_WF_MAX_ID + 200];
            snprintf(msg, sizeof msg,
                     "Skip output '%.*s': %zu bytes, past the limit of %d per output and %d "
                     "for a job's outputs together",
                     KILN_WF_MAX_ID, name, vlen, KILN_JOBCTX_MAX_OUTPUT, KILN_JOBCTX_MAX_OUTPUTS);
            s_warn(self, msg);
            free(val);
            continue;
        }
        total += vlen;
        int src = kiln_kv_set(out, name, val);
        free(val);
        if (src == -1) {
            snprintf(err, errlen, "%s", kiln_error_last());
            rc = -1;
            break;
        }
    }
    json_decref(spec);
    return rc;
}

kiln_commands_t *kiln_jobctx_commands(kiln_jobctx_t *self)
{
    return self->commands;
}

const char *kiln_jobctx_summary(const kiln_jobctx_t *self, size_t *len)
{
    *len = self->summary_len;
    return self->summary;
}
