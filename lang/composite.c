/* composite.c: composite actions (`uses: ./path`, or OWNER/REPO[/PATH]@REF
 * as the farm's action sources resolved it) expanded into the steps of the
 * job that uses them.
 *
 * The action's action.yml comes through the host's loader. Its steps take
 * the place of the uses: step, each carrying the stack of its actions'
 * inputs (evaluated by the worker level by level, since an input may refer
 * to the inputs of the action around it) and, on each action's last step,
 * its outputs. Problems in an action file are reported at the uses: step,
 * quoting the action file's own line; an action used by several jobs is
 * reported once (the diagnostics list drops repeats). A remote action's
 * steps follow a built-in step that puts its commit's files on the worker,
 * as GitHub's runner downloads an action before the job.
 */
#include "lang/parse_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lang/expr.h"


/* A step of another repository's action, which the loader can resolve. */
static bool s_remote_step(const kiln_parse_t *ctx, const kiln_step_t *st)
{
    kiln_uses_ref_t ref;
    return st->uses && !st->builtin && ctx->loader && ctx->loader->remote &&
           kiln_uses_remote(st->uses, &ref) == 0;
}

/* The step that puts a remote action's files where its steps find them
 * (GITHUB_ACTION_PATH), as GitHub's runner downloads them first. */
static bool s_download_step(kiln_parse_t *ctx, const kiln_step_t *uses_step,
                            const kiln_uses_ref_t *ref, const kiln_remote_t *rm, kiln_step_t *out)
{
    char name[1400], dir[600];
    snprintf(name, sizeof name, "Download action repository '%s' (SHA:%s)", uses_step->uses,
             rm->sha);
    snprintf(dir, sizeof dir, "%s/%s/%s", ref->owner, ref->repo, rm->sha);
    memset(out, 0, sizeof *out);
    out->name = kiln_parse_strdup(ctx, name);
    out->builtin = "action";
    out->with = json_pack("{s:s, s:s, s:s, s:s}", "repository", rm->url, "sha", rm->sha,
                          "dir", dir, "uses", uses_step->uses);
    out->line = uses_step->line;
    out->col = uses_step->col;
    if (!out->name || !out->with) {
        ctx->oom = true;
        kiln_step_clear(out);
        return false;
    }
    return true;
}

/* A JavaScript action's runs: main names its script; pre and post, when
 * there, too; each a path inside the action. */
static bool s_js_phases_ok(kiln_parse_t *ctx, const knode_t *runs, knode_t *const js[5])
{
    static const char *const keys[3] = {"main", "pre", "post"};
    for (size_t j = 0; j < 5; j++) {
        const knode_t *v = js[j];
        if (!v && j == 0) {
            kiln_parse_error_at(ctx, runs->line, runs->col,
                                "a JavaScript action needs runs.main: the script its step runs");
            return false;
        }
        if (!v)
            continue;
        if (v->kind != KILN_YAML_SCALAR || !v->value[0]) {
            kiln_parse_error_at(ctx, v->line, v->col, "runs.%s must be a non-empty string",
                                j < 3 ? keys[j] : j == 3 ? "pre-if" : "post-if");
            return false;
        }
        if (j < 3 && (v->value[0] == '/' || strstr(v->value, "..") || strchr(v->value, '\\'))) {
            kiln_parse_error_at(ctx, v->line, v->col,
                                "runs.%s: '%.200s' must be a path inside the action", keys[j],
                                v->value);
            return false;
        }
    }
    return true;
}

/* A Docker action's runs: image (docker://IMAGE, or a Dockerfile in the
 * action), entrypoint, args (strings), env (a mapping), pre- and
 * post-entrypoint. */
static bool s_docker_ok(kiln_parse_t *ctx, const knode_t *runs, knode_t *const dk[6])
{
    static const char *const keys[6] = {"image", "entrypoint", "args", "env", "pre-entrypoint",
                                        "post-entrypoint"};
    if (!dk[0] || dk[0]->kind != KILN_YAML_SCALAR || !dk[0]->value[0]) {
        kiln_parse_error_at(ctx, dk[0] ? dk[0]->line : runs->line, dk[0] ? dk[0]->col : runs->col,
                            "a Docker action needs runs.image: docker://IMAGE or a Dockerfile");
        return false;
    }
    if (strncmp(dk[0]->value, "docker://", 9) != 0 &&
        (dk[0]->value[0] == '/' || strstr(dk[0]->value, ".."))) {
        kiln_parse_error_at(ctx, dk[0]->line, dk[0]->col,
                            "runs.image: '%.200s' must be docker://IMAGE or a Dockerfile inside "
                            "the action", dk[0]->value);
        return false;
    }
    for (size_t j = 1; j < 6; j++) {
        const knode_t *v = dk[j];
        bool bad = v && (j == 2   ? v->kind != KILN_YAML_SEQ
                         : j == 3 ? v->kind != KILN_YAML_MAP
                                  : v->kind != KILN_YAML_SCALAR);
        for (size_t i = 0; v && j == 2 && !bad && i < v->n; i++)
            bad = kiln_yaml_res(v->items[i])->kind != KILN_YAML_SCALAR;
        if (bad) {
            kiln_parse_error_at(ctx, v->line, v->col, "runs.%s must be %s", keys[j],
                                j == 2 ? "a list of strings" : j == 3 ? "a mapping" : "a string");
            return false;
        }
    }
    return true;
}

/* A Docker action's part of its step's js_action: its image, entrypoints
 * (as script, pre and post: its phases), args and env as templates. */
static json_t *s_docker_meta(kiln_parse_t *ctx, knode_t *const dk[6], knode_t *const js[5])
{
    json_t *args = json_array(), *env = dk[3] ? kiln_yaml_json(dk[3]) : json_object();
    for (size_t i = 0; args && dk[2] && i < dk[2]->n; i++)
        json_array_append_new(args, json_string(kiln_yaml_res(dk[2]->items[i])->value));
    json_t *meta = json_pack("{s:s, s:s?, s:s?, s:s?, s:s?, s:s?, s:s, s:o, s:o}", "image",
                             dk[0]->value, "script", dk[1] ? dk[1]->value : NULL, "pre",
                             dk[4] ? dk[4]->value : NULL, "post", dk[5] ? dk[5]->value : NULL,
                             "pre_if", js[3] ? js[3]->value : NULL, "post_if",
                             js[4] ? js[4]->value : NULL, "using", "docker", "args",
                             args ? args : json_array(), "env", env ? env : json_object());
    if (!meta)
        ctx->oom = true;
    return meta;
}

static char *s_dup(kiln_parse_t *ctx, const char *s)
{
    return s ? kiln_parse_strdup(ctx, s) : NULL;
}

/* The step that runs a JavaScript action's main script: the uses: step
 * itself (its id, if:, env:, name, timeout, continue-on-error) with the
 * action's inputs as with: templates, evaluated where it runs; a remote
 * action's download before it. Its pre and post phases are added at the
 * job's start and end (parse.c). */
static bool s_js_step(kiln_parse_t *ctx, const kiln_step_t *uses_step, json_t *inputs,
                      const char *path, const char *builtin, json_t *meta,
                      const kiln_uses_ref_t *ref, const kiln_remote_t *rm, kiln_job_t *tmp)
{
    size_t n = ref ? 2 : 1;
    tmp->steps = calloc(n, sizeof *tmp->steps);
    if (!tmp->steps) {
        ctx->oom = true;
        return false;
    }
    if (ref && !s_download_step(ctx, uses_step, ref, rm, &tmp->steps[0]))
        return false;
    tmp->n_steps = n;
    if (ref && uses_step->if_expr)
        tmp->steps[0].if_expr = s_dup(ctx, uses_step->if_expr);
    kiln_step_t *st = &tmp->steps[n - 1];
    char repository[600] = "";
    if (ref)
        snprintf(repository, sizeof repository, "%s/%s", ref->owner, ref->repo);
    st->id = s_dup(ctx, uses_step->id);
    st->name = s_dup(ctx, uses_step->name);
    st->name_derived = uses_step->name_derived;
    st->if_expr = s_dup(ctx, uses_step->if_expr);
    st->env_expr = s_dup(ctx, uses_step->env_expr);
    st->timeout = json_incref(uses_step->timeout);
    st->continue_on_error = json_incref(uses_step->continue_on_error);
    st->builtin = builtin;
    st->with = json_deep_copy(inputs);
    st->action_path = s_dup(ctx, path);
    st->line = uses_step->line;
    st->col = uses_step->col;
    /* The action's own part (its scripts, or its image) is the caller's;
     * which action it is, ours. */
    st->js_action = meta;
    json_t *which = json_pack("{s:s, s:s, s:s, s:s, s:s}", "phase", "main", "uses",
                              uses_step->uses, "repository", repository, "ref",
                              ref ? ref->ref : "", "sha", ref && rm->sha ? rm->sha : "");
    if (!meta || !which || json_object_update(meta, which) != 0)
        ctx->oom = true;
    json_decref(which);
    if (uses_step->env.n) {
        st->env.items = calloc(uses_step->env.n, sizeof *st->env.items);
        if (!st->env.items) {
            ctx->oom = true;
            return false;
        }
        for (size_t k = 0; k < uses_step->env.n; k++) {
            st->env.items[k].key = s_dup(ctx, uses_step->env.items[k].key);
            st->env.items[k].value = s_dup(ctx, uses_step->env.items[k].value);
        }
        st->env.n = uses_step->env.n;
    }
    if (!st->with || !st->js_action || (uses_step->id && !st->id) || (uses_step->name && !st->name) ||
        !st->action_path) {
        ctx->oom = true;
        return false;
    }
    return true;
}

static bool s_expand_one(kiln_parse_t *ctx, kiln_job_t *job, const kiln_step_t *uses_step,
                         kiln_step_t **out, size_t *n_out, int depth)
{
    bool remote = strncmp(uses_step->uses, "./", 2) != 0;
    kiln_uses_ref_t ref;
    kiln_remote_t rm = {0};
    char *path = NULL, afile[1400];
    size_t text_len = 0;
    const char *text = NULL;
    char who[300];
    snprintf(who, sizeof who, "step '%.*s' of job '%.*s'", s_q(uses_step->name), uses_step->name,
             s_q(job->id), job->id);
    if (remote) {
        /* Its files are the worker's copy of the commit it resolved to
         * ("@actions/OWNER/REPO/SHA[/PATH]", see worker/job.c). */
        kiln_uses_remote(uses_step->uses, &ref);
        if (ctx->loader->remote(ctx->loader->ctx, uses_step->uses, &rm) != 0 || !rm.text) {
            kiln_parse_error_at(ctx, uses_step->line, uses_step->col, "%s uses '%.*s': %s", who,
                                s_q(uses_step->uses), uses_step->uses,
                                rm.error ? rm.error : "it cannot be resolved");
            return false;
        }
        text = rm.text;
        text_len = rm.len;
        size_t cap = strlen(ref.owner) + strlen(ref.repo) + strlen(rm.sha) + strlen(ref.path) + 16;
        if (!(path = malloc(cap))) {
            ctx->oom = true;
            return false;
        }
        snprintf(path, cap, "@actions/%s/%s/%s%s%s", ref.owner, ref.repo, rm.sha,
                 ref.path[0] ? "/" : "", ref.path);
        snprintf(afile, sizeof afile, "%s/%s@%.12s:%s", ref.owner, ref.repo, rm.sha, rm.file);
    } else {
        path = kiln_workflow_local_path(uses_step->uses);
        text = path && ctx->loader
                   ? ctx->loader->read(ctx->loader->ctx, KILN_LOAD_ACTION, path, &text_len)
                   : NULL;
        if (path)
            snprintf(afile, sizeof afile, "%s/action.yml", path);
    }
    if (!path) {
        kiln_parse_error_at(ctx, uses_step->line, uses_step->col,
                            "%s uses '%.*s': the path leaves the repository", who,
                            s_q(uses_step->uses), uses_step->uses);
        return false;
    }
    if (!text) {
        /* GitHub finds a local action in the workspace when the step runs
         * (an earlier step may have put it there); Kiln reads actions from
         * the repository when the run is submitted. The workflow stays
         * valid and this step fails, saying why, if it runs. */
        kiln_diags_add(ctx->diags, KILN_DIAG_WARNING, uses_step->line, uses_step->col,
                       "%s uses '%.*s': the repository has no action.yml or action.yaml there; "
                       "the step fails if it runs",
                       who, s_q(uses_step->uses), uses_step->uses);
        free(path);
        return false;
    }
    if (depth >= KILN_WF_MAX_ACTION_DEPTH) {
        kiln_parse_error_at(ctx, uses_step->line, uses_step->col,
                   "%s: composite actions nest deeper than %d", who, KILN_WF_MAX_ACTION_DEPTH);
        free(path);
        return false;
    }
    /* The action's own problems go to a list of their own, then are reported
     * at the uses: step with the action file's line. */
    kiln_diags_t adiags, *saved = ctx->diags;
    kiln_diags_init(&adiags, afile);
    ctx->diags = &adiags;
    kiln_yaml_t *tree = NULL;
    bool saved_in_action = ctx->in_action;
    kiln_job_t tmp = {.id = job->id};
    json_t *inputs = json_object(), *outputs = NULL;
    bool ok = false;
    if (text_len > KILN_WF_MAX_ACTION_BYTES) {
        kiln_parse_error_at(ctx, 0, 0, "the action is larger than %d bytes", KILN_WF_MAX_ACTION_BYTES);
        goto report;
    }
    int yrc = kiln_yaml_parse(&tree, text, text_len, ctx->diags);
    if (yrc == -1)
        ctx->oom = true;
    if (yrc != 0)
        goto report;
    knode_t *root = kiln_yaml_res(kiln_yaml_root(tree)), *runs = NULL, *in_spec = NULL, *out_spec = NULL;
    for (size_t i = 0; root && root->kind == KILN_YAML_MAP && i + 1 < root->n; i += 2) {
        const char *k = kiln_yaml_res(root->items[i])->value;
        if (strcmp(k, "runs") == 0)
            runs = kiln_yaml_res(root->items[i + 1]);
        else if (strcmp(k, "inputs") == 0)
            in_spec = kiln_yaml_res(root->items[i + 1]);
        else if (strcmp(k, "outputs") == 0)
            out_spec = kiln_yaml_res(root->items[i + 1]);
    }
    knode_t *using = NULL, *steps = NULL, *js[5] = {NULL}, *dk[6] = {NULL};
    static const char *const js_keys[5] = {"main", "pre", "post", "pre-if", "post-if"};
    static const char *const dk_keys[6] = {"image", "entrypoint", "args", "env",
                                           "pre-entrypoint", "post-entrypoint"};
    for (size_t i = 0; runs && runs->kind == KILN_YAML_MAP && i + 1 < runs->n; i += 2) {
        const char *k = kiln_yaml_res(runs->items[i])->value;
        if (strcmp(k, "using") == 0)
            using = kiln_yaml_res(runs->items[i + 1]);
        else if (strcmp(k, "steps") == 0)
            steps = kiln_yaml_res(runs->items[i + 1]);
        for (size_t j = 0; j < 5; j++)
            if (strcmp(k, js_keys[j]) == 0)
                js[j] = kiln_yaml_res(runs->items[i + 1]);
        for (size_t j = 0; j < 6; j++)
            if (strcmp(k, dk_keys[j]) == 0)
                dk[j] = kiln_yaml_res(runs->items[i + 1]);
    }
    const char *u = using && using->kind == KILN_YAML_SCALAR ? using->value : "";
    bool node = strcmp(u, "node12") == 0 || strcmp(u, "node16") == 0 || strcmp(u, "node20") == 0 ||
                strcmp(u, "node24") == 0;
    bool docker = strcmp(u, "docker") == 0;
    if (node && !s_js_phases_ok(ctx, runs, js))
        goto report;
    if (docker && !s_docker_ok(ctx, runs, dk))
        goto report;
    if (!node && !docker && strcmp(u, "composite") != 0) {
        if (strncmp(u, "node", 4) == 0)
            kiln_parse_error_at(ctx, using->line, using->col,
                                "runs.using: %.20s is no Node.js version Kiln knows (node12, "
                                "node16, node20, node24)",
                                u);
        else if (strcmp(u, "docker") == 0)
            kiln_parse_error_at(ctx, using->line, using->col,
                                "a Docker action (runs.using: docker); Kiln does not run Docker "
                                "actions yet");
        else
            kiln_parse_error_at(ctx, runs ? runs->line : 1, runs ? runs->col : 1,
                                "only composite actions (runs.using: composite) can be used");
        goto report;
    }
    if (!node && !docker && (!steps || steps->kind != KILN_YAML_SEQ || steps->n == 0)) {
        kiln_parse_error_at(ctx, using->line, using->col, "runs.steps must be a non-empty list");
        goto report;
    }
    /* inputs: with: values, else defaults; a required one missing is an error. */
    for (size_t i = 0; in_spec && in_spec->kind == KILN_YAML_MAP && i + 1 < in_spec->n; i += 2) {
        const char *name = kiln_yaml_res(in_spec->items[i])->value;
        knode_t *spec = kiln_yaml_res(in_spec->items[i + 1]);
        json_t *given = json_object_get(uses_step->with, name);
        json_t *dflt = NULL;
        bool required = false;
        for (size_t k = 0; spec->kind == KILN_YAML_MAP && k + 1 < spec->n; k += 2) {
            const char *sk = kiln_yaml_res(spec->items[k])->value;
            if (strcmp(sk, "default") == 0)
                dflt = kiln_yaml_json(spec->items[k + 1]);
            else if (strcmp(sk, "required") == 0)
                kiln_yaml_bool(kiln_yaml_res(spec->items[k + 1]), &required);
        }
        if (given) {
            char *t = kiln_expr_string(given);
            json_object_set_new(inputs, name, json_string(t ? t : ""));
            free(t);
        } else if (dflt && !json_is_null(dflt)) {
            char *t = kiln_expr_string(dflt);
            json_object_set_new(inputs, name, json_string(t ? t : ""));
            free(t);
        } else if (required) {
            kiln_parse_error_at(ctx, in_spec->items[i]->line, in_spec->items[i]->col,
                       "input '%s' is required and the step gives no with: value for it", name);
        } else {
            json_object_set_new(inputs, name, json_string(""));
        }
        json_decref(dflt);
    }
    const char *wname;
    json_t *wv;
    json_object_foreach(uses_step->with, wname, wv) if (!json_object_get(inputs, wname))
        kiln_parse_warn(ctx, root, "with: '%s' is not an input of this action", wname);
    if (node || docker) {
        json_t *meta = node ? json_pack("{s:s, s:s?, s:s?, s:s?, s:s?, s:s}", "script",
                                        js[0]->value, "pre", js[1] ? js[1]->value : NULL, "post",
                                        js[2] ? js[2]->value : NULL, "pre_if",
                                        js[3] ? js[3]->value : NULL, "post_if",
                                        js[4] ? js[4]->value : NULL, "using", u)
                            : s_docker_meta(ctx, dk, js);
        ok = adiags.n_errors == 0 && meta &&
             s_js_step(ctx, uses_step, inputs, path, node ? "node" : "docker", meta,
                       remote ? &ref : NULL, &rm, &tmp);
        if (!ok && meta && !(tmp.n_steps && tmp.steps[tmp.n_steps - 1].js_action == meta))
            json_decref(meta);
        goto report;
    }
    if (out_spec && out_spec->kind == KILN_YAML_MAP) {
        outputs = json_object();
        for (size_t i = 0; i + 1 < out_spec->n; i += 2) {
            knode_t *spec = kiln_yaml_res(out_spec->items[i + 1]);
            for (size_t k = 0; spec->kind == KILN_YAML_MAP && k + 1 < spec->n; k += 2)
                if (strcmp(kiln_yaml_res(spec->items[k])->value, "value") == 0)
                    json_object_set_new(outputs, kiln_yaml_res(out_spec->items[i])->value,
                                        json_string(kiln_yaml_res(spec->items[k + 1])->value));
        }
    }
    tmp.steps = calloc(steps->n, sizeof *tmp.steps);
    if (!tmp.steps) {
        ctx->oom = true;
        goto report;
    }
    for (size_t i = 0; i < steps->n && !ctx->oom; i++) {
        ctx->in_action = true;
        kiln_parse_step(ctx, job->id, i, steps->items[i], &tmp.steps[i]);
        ctx->in_action = saved_in_action;
        tmp.n_steps++;
        if (!tmp.steps[i].shell && tmp.steps[i].run)
            tmp.steps[i].shell = kiln_parse_strdup(ctx, "bash");
    }
    ok = adiags.n_errors == 0;
    if (ok)
        kiln_parse_composite(ctx, &tmp, depth + 1);
    ok = adiags.n_errors == 0;
    if (ok && remote) {
        kiln_step_t *grown = realloc(tmp.steps, (tmp.n_steps + 1) * sizeof *grown);
        if (!grown) {
            ctx->oom = true;
            ok = false;
        } else {
            memmove(grown + 1, grown, tmp.n_steps * sizeof *grown);
            tmp.steps = grown;
            tmp.n_steps++;
            ok = s_download_step(ctx, uses_step, &ref, &rm, &grown[0]);
        }
    }
    /* This action's inputs go under whatever nested actions put there. */
    for (size_t i = 0; ok && i < tmp.n_steps; i++) {
        kiln_step_t *st = &tmp.steps[i];
        if (!st->action_inputs)
            st->action_inputs = json_array();
        json_array_insert(st->action_inputs, 0, inputs);
        /* GITHUB_ACTION_PATH: the innermost action's directory. */
        if (!st->action_path && !(st->action_path = kiln_parse_strdup(ctx, path)))
            break;
        size_t k;
        json_t *end;
        json_array_foreach(st->composite_ends, k, end) json_object_set_new(
            end, "level", json_integer(json_integer_value(json_object_get(end, "level")) + 1));
        json_array_foreach(st->composite_begins, k, end) json_object_set_new(
            end, "level", json_integer(json_integer_value(json_object_get(end, "level")) + 1));
    }
    /* The uses: step's env: is the action's steps' too, under their own. */
    for (size_t i = 0; ok && uses_step->env.n && i < tmp.n_steps; i++) {
        kiln_env_t *e = &tmp.steps[i].env;
        kiln_env_var_t *items = calloc(uses_step->env.n + e->n, sizeof *items);
        if (!items) {
            ctx->oom = true;
            break;
        }
        for (size_t k = 0; k < uses_step->env.n; k++) {
            items[k].key = strdup(uses_step->env.items[k].key);
            items[k].value = strdup(uses_step->env.items[k].value);
            if (!items[k].key || !items[k].value)
                ctx->oom = true;
        }
        if (e->n)
            memcpy(items + uses_step->env.n, e->items, e->n * sizeof *items);
        free(e->items);
        e->items = items;
        e->n += uses_step->env.n;
    }
    if (ok && uses_step->env_expr)
        kiln_diags_add(saved, KILN_DIAG_WARNING, uses_step->line, uses_step->col,
                       "%s: env: as one expression is not passed to the steps of '%.*s'", who,
                       s_q(uses_step->uses), uses_step->uses);
    /* The uses: step's if: decides, once, whether the action runs. */
    if (ok && tmp.n_steps) {
        kiln_step_t *first = &tmp.steps[0];
        if (!first->composite_begins)
            first->composite_begins = json_array();
        json_t *begin = json_pack("{s:s?, s:i}", "if", uses_step->if_expr, "level", 0);
        if (!first->composite_begins || !begin || json_array_insert_new(first->composite_begins, 0, begin) != 0)
            ctx->oom = true;
    }
report:
    ctx->diags = saved;
    {
        char prefix[KILN_PARSE_WHO_MAX + KILN_YAML_QUOTE_MAX + 16];
        knode_t at = {.line = uses_step->line, .col = uses_step->col};
        snprintf(prefix, sizeof prefix, "%s uses '%.*s'", who, s_q(uses_step->uses),
                 uses_step->uses);
        kiln_parse_relay(ctx, &at, prefix, &adiags);
    }
    kiln_diags_free(&adiags);
    kiln_yaml_destroy(&tree);
    if (ok && tmp.n_steps && (node || docker)) {
        *out = tmp.steps;
        *n_out = tmp.n_steps;
    } else if (ok && tmp.n_steps) {
        /* The action's last step ends it: there its outputs are evaluated
         * (with its own inputs) into steps.<id> of the uses: step. */
        kiln_step_t *last = &tmp.steps[tmp.n_steps - 1];
        if (!last->composite_ends)
            last->composite_ends = json_array();
        json_array_append_new(last->composite_ends,
                              json_pack("{s:s?, s:o, s:i}", "id", uses_step->id, "outputs",
                                        outputs ? json_incref(outputs) : json_object(), "level",
                                        0));
        *out = tmp.steps;
        *n_out = tmp.n_steps;
    } else {
        *out = tmp.steps;
        *n_out = tmp.n_steps;
        ok = false;
    }
    json_decref(inputs);
    json_decref(outputs);
    free(path);
    return ok;
}


void kiln_parse_composite(kiln_parse_t *ctx, kiln_job_t *job, int depth)
{
    bool any = false;
    for (size_t i = 0; i < job->n_steps; i++)
        any = any || (job->steps[i].uses && strncmp(job->steps[i].uses, "./", 2) == 0) ||
              s_remote_step(ctx, &job->steps[i]);
    if (!any)
        return;
    size_t cap = job->n_steps, n = 0;
    kiln_step_t *steps = calloc(cap, sizeof *steps);
    if (!steps) {
        ctx->oom = true;
        return;
    }
    for (size_t i = 0; i < job->n_steps && !ctx->oom; i++) {
        kiln_step_t *st = &job->steps[i];
        if (!st->uses || (strncmp(st->uses, "./", 2) != 0 && !s_remote_step(ctx, st))) {
            steps[n++] = *st;
            memset(st, 0, sizeof *st);
            continue;
        }
        kiln_step_t *inner = NULL;
        size_t n_inner = 0;
        bool ok = s_expand_one(ctx, job, st, &inner, &n_inner, depth);
        if (!ok || n + n_inner + (job->n_steps - i) > KILN_WF_MAX_STEPS) {
            if (ok)
                kiln_parse_error_at(ctx, st->line, st->col, "job '%.*s' has more than %d steps once its "
                           "actions are expanded", s_q(job->id), job->id, KILN_WF_MAX_STEPS);
            for (size_t k = 0; k < n_inner; k++)
                kiln_step_clear(&inner[k]);
            free(inner);
            steps[n++] = *st; /* keep it, so the model stays whole for the error path */
            memset(st, 0, sizeof *st);
            continue;
        }
        kiln_step_t *grown = realloc(steps, (cap + n_inner) * sizeof *steps);
        if (!grown) {
            for (size_t k = 0; k < n_inner; k++)
                kiln_step_clear(&inner[k]);
            free(inner);
            ctx->oom = true;
            break;
        }
        steps = grown;
        cap += n_inner;
        for (size_t k = 0; k < n_inner; k++)
            steps[n++] = inner[k];
        free(inner);
        kiln_step_clear(st);
    }
    for (size_t i = 0; i < job->n_steps; i++)
        kiln_step_clear(&job->steps[i]);
    free(job->steps);
    job->steps = steps;
    job->n_steps = n;
}

