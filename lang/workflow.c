/* workflow.c: the model's lifecycle and small questions about it (see
 * workflow.h), and the scan for the local files a workflow refers to. */
#include "lang/workflow.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "lang/builtin.h"
#include "lang/parse.h"
#include "lang/parse_int.h"
#include "lang/yaml.h"

static void s_env_free(kiln_env_t *env)
{
    kiln_env_clear(env);
}

void kiln_workflow_destroy(kiln_workflow_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    kiln_workflow_t *wf = *self_p;
    for (size_t i = 0; i < wf->n_jobs; i++) {
        kiln_job_t *job = &wf->jobs[i];
        free(job->id);
        free(job->name);
        json_decref(job->runs_on);
        for (size_t k = 0; k < job->n_needs; k++)
            free(job->needs[k]);
        free(job->needs);
        free(job->need_idx);
        s_env_free(&job->env);
        free(job->env_expr);
        free(job->shell);
        free(job->working_directory);
        free(job->if_expr);
        json_decref(job->timeout);
        json_decref(job->continue_on_error);
        for (size_t s = 0; s < job->n_steps; s++)
            kiln_step_clear(&job->steps[s]);
        free(job->steps);
        json_decref(job->matrix);
        json_decref(job->fail_fast);
        json_decref(job->max_parallel);
        json_decref(job->outputs);
        free(job->concurrency_group);
        json_decref(job->cancel_in_progress);
        free(job->uses);
        kiln_workflow_destroy(&job->callee);
        json_decref(job->with);
        json_decref(job->secrets);
        free(job->unsupported);
        json_decref(job->container);
        json_decref(job->services);
    }
    json_decref(wf->inputs);
    json_decref(wf->events);
    json_decref(wf->filters);
    json_decref(wf->call_inputs);
    json_decref(wf->call_outputs);
    json_decref(wf->call_secrets);
    free(wf->concurrency_group);
    json_decref(wf->cancel_in_progress);
    free(wf->jobs);
    free(wf->file);
    free(wf->name);
    free(wf->run_name);
    s_env_free(&wf->env);
    free(wf->shell);
    free(wf->working_directory);
    free(wf->topo);
    free(wf);
    *self_p = NULL;
}

long kiln_workflow_find_job(const kiln_workflow_t *self, const char *id)
{
    for (size_t i = 0; i < self->n_jobs; i++)
        if (strcmp(self->jobs[i].id, id) == 0)
            return (long)i;
    return -1;
}

bool kiln_is_template(const char *text)
{
    return text && strstr(text, "${{") != NULL;
}

bool kiln_value_has_template(const json_t *value)
{
    if (json_is_string(value))
        return kiln_is_template(json_string_value(value));
    if (json_is_array(value)) {
        size_t i;
        json_t *e;
        json_array_foreach(value, i, e) if (kiln_value_has_template(e)) return true;
    } else if (json_is_object(value)) {
        const char *k;
        json_t *e;
        json_object_foreach((json_t *)value, k, e) {
            if (kiln_is_template(k) || kiln_value_has_template(e))
                return true;
        }
    }
    return false;
}

char *kiln_workflow_local_path(const char *uses)
{
    if (strncmp(uses, "./", 2) != 0)
        return NULL;
    char *out = strdup(uses + 2);
    if (!out)
        return NULL;
    size_t n = strlen(out);
    while (n && out[n - 1] == '/')
        out[--n] = '\0';
    if (n == 0) {
        free(out);
        return NULL;
    }
    for (char *seg = out; seg && *seg;) {
        char *slash = strchr(seg, '/');
        size_t len = slash ? (size_t)(slash - seg) : strlen(seg);
        if (len == 2 && seg[0] == '.' && seg[1] == '.') {
            free(out);
            return NULL;
        }
        seg = slash ? slash + 1 : NULL;
    }
    return out;
}

static void s_add_use(json_t *out, const char *kind, const char *path, const char *alt)
{
    size_t j;
    json_t *e;
    json_array_foreach(out, j, e) {
        if (strcmp(json_string_value(json_object_get(e, "path")), path) == 0)
            return;
    }
    json_t *use = json_pack("{s:s, s:s}", "kind", kind, "path", path);
    if (use && alt)
        json_object_set_new(use, "alt", json_string(alt));
    json_array_append_new(out, use);
}

/* The `path:` of a step that checks the run's own repository out
 * (actions/checkout without `repository`), or NULL. */
static const char *s_checkout_path(knode_t *step)
{
    step = kiln_yaml_res(step);
    if (!step || step->kind != KILN_YAML_MAP)
        return NULL;
    knode_t *uses = kiln_yaml_get(step, "uses", NULL);
    if (!uses || uses->kind != KILN_YAML_SCALAR || strncmp(uses->value, "actions/checkout@", 17) != 0)
        return NULL;
    knode_t *with = kiln_yaml_get(step, "with", NULL);
    if (!with || with->kind != KILN_YAML_MAP || kiln_yaml_get(with, "repository", NULL))
        return NULL;
    knode_t *path = kiln_yaml_get(with, "path", NULL);
    if (!path || path->kind != KILN_YAML_SCALAR || !path->value[0] || strstr(path->value, "${{"))
        return NULL;
    return path->value;
}

/* Every `uses: ./x` in the tree: under a job (called workflows: a .yml
 * file) or a step (actions). A step's ./P/x after a checkout with
 * `path: P` names the repository's x (libgit2's own CI does this), given
 * as its "alt". */
static void s_collect_uses(knode_t *node, json_t *out, int *bad, int depth,
                           const char *const *co, size_t n_co)
{
    node = kiln_yaml_res(node);
    if (!node || depth > KILN_YAML_MAX_DEPTH)
        return;
    if (node->kind == KILN_YAML_MAP) {
        for (size_t i = 0; i + 1 < node->n; i += 2) {
            knode_t *k = kiln_yaml_res(node->items[i]), *v = kiln_yaml_res(node->items[i + 1]);
            if (k->kind == KILN_YAML_SCALAR && strcmp(k->value, "uses") == 0 &&
                v->kind == KILN_YAML_SCALAR && strncmp(v->value, "./", 2) == 0) {
                char *path = kiln_workflow_local_path(v->value);
                if (!path) {
                    *bad = 1;
                    continue;
                }
                size_t n = strlen(path);
                bool wf = (n > 4 && strcmp(path + n - 4, ".yml") == 0) ||
                          (n > 5 && strcmp(path + n - 5, ".yaml") == 0);
                const char *alt = NULL;
                for (size_t c = 0; !wf && c < n_co && !alt; c++) {
                    size_t pl = strlen(co[c]);
                    while (pl && co[c][pl - 1] == '/')
                        pl--;
                    if (pl && strncmp(path, co[c], pl) == 0 && path[pl] == '/' && path[pl + 1])
                        alt = path + pl + 1;
                }
                s_add_use(out, wf ? "workflow" : "action", path, alt);
                free(path);
            } else {
                s_collect_uses(v, out, bad, depth + 1, co, n_co);
            }
        }
    } else if (node->kind == KILN_YAML_SEQ) {
        /* A list of steps: the checkouts before a step are what it sees. */
        const char *mine[16];
        size_t n_mine = 0;
        for (size_t i = 0; i < node->n; i++) {
            s_collect_uses(node->items[i], out, bad, depth + 1, n_mine ? mine : co,
                           n_mine ? n_mine : n_co);
            const char *p = s_checkout_path(node->items[i]);
            if (p && n_mine < 16) {
                if (n_mine == 0)
                    for (size_t c = 0; c < n_co && n_mine < 15; c++)
                        mine[n_mine++] = co[c];
                mine[n_mine++] = p;
            }
        }
    }
}

int kiln_workflow_local_uses(const char *text, size_t len, json_t *out)
{
    kiln_diags_t diags;
    kiln_yaml_t *tree = NULL;
    int bad = 0;
    kiln_diags_init(&diags, "scan");
    if (kiln_yaml_parse(&tree, text, len, &diags) == 0)
        s_collect_uses(kiln_yaml_root(tree), out, &bad, 0, NULL, 0);
    kiln_yaml_destroy(&tree);
    kiln_diags_free(&diags);
    if (bad) {
        kiln_error_set("a local action or workflow path climbs out of the repository (..)");
        return KILN_EINVAL;
    }
    return 0;
}

/* ------------------------------------------------------------ remote uses */

static bool s_name_ok(const char *s, size_t n)
{
    if (n == 0 || (n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!(isalnum((unsigned char)s[i]) || s[i] == '-' || s[i] == '_' || s[i] == '.'))
            return false;
    return true;
}

/* SCHEME://HOST[/PREFIX]/OWNER/REPO before at: the repository's URL, its
 * last two segments its owner and name (a trailing .git dropped). */
static int s_uses_url(const char *uses, const char *at, kiln_uses_ref_t *out)
{
    static const char *const schemes[] = {"http://", "https://", "git://", "ssh://", "file://"};
    bool known = false;
    for (size_t i = 0; i < sizeof schemes / sizeof schemes[0]; i++)
        known = known || strncmp(uses, schemes[i], strlen(schemes[i])) == 0;
    size_t n = (size_t)(at - uses);
    if (!known || n >= sizeof out->base)
        return KILN_EINVAL;
    char url[sizeof out->base];
    memcpy(url, uses, n);
    url[n] = '\0';
    while (n && url[n - 1] == '/')
        url[--n] = '\0';
    if (n > 4 && strcmp(url + n - 4, ".git") == 0)
        url[n -= 4] = '\0';
    char *repo = strrchr(url, '/');
    if (!repo || repo < strstr(url, "://") + 3)
        return KILN_EINVAL;
    *repo++ = '\0';
    char *owner = strrchr(url, '/');
    const char *host = strstr(url, "://") + 3;
    if (!owner || owner < host || !host[0] || host[0] == '/')
        return KILN_EINVAL;
    *owner++ = '\0';
    if (!s_name_ok(owner, strlen(owner)) || !s_name_ok(repo, strlen(repo)) ||
        strlen(owner) >= sizeof out->owner || strlen(repo) >= sizeof out->repo || !url[0] ||
        strlen(url) <= (size_t)(host - url))
        return KILN_EINVAL;
    snprintf(out->owner, sizeof out->owner, "%s", owner);
    snprintf(out->repo, sizeof out->repo, "%s", repo);
    snprintf(out->base, sizeof out->base, "%s", url);
    snprintf(out->ref, sizeof out->ref, "%s", at + 1);
    return 0;
}

int kiln_uses_remote(const char *uses, kiln_uses_ref_t *out)
{
    memset(out, 0, sizeof *out);
    if (!uses || strncmp(uses, "./", 2) == 0 || strncmp(uses, "docker://", 9) == 0)
        return KILN_EINVAL;
    const char *at = strrchr(uses, '@');
    if (!at || !at[1] || strlen(at + 1) >= sizeof out->ref)
        return KILN_EINVAL;
    for (const char *c = at + 1; *c; c++)
        if ((unsigned char)*c <= ' ' || *c == '~' || *c == '^' || *c == ':' || *c == '\\')
            return KILN_EINVAL;
    const char *scheme = strstr(uses, "://");
    if (scheme && scheme < at)
        return s_uses_url(uses, at, out);
    const char *slash = memchr(uses, '/', (size_t)(at - uses));
    if (!slash || !s_name_ok(uses, (size_t)(slash - uses)) ||
        (size_t)(slash - uses) >= sizeof out->owner)
        return KILN_EINVAL;
    const char *repo = slash + 1;
    const char *end = memchr(repo, '/', (size_t)(at - repo));
    size_t rlen = (size_t)((end ? end : at) - repo);
    if (!s_name_ok(repo, rlen) || rlen >= sizeof out->repo)
        return KILN_EINVAL;
    memcpy(out->owner, uses, (size_t)(slash - uses));
    memcpy(out->repo, repo, rlen);
    if (end) {
        /* A path inside the repository: no empty, "." or ".." segment. */
        const char *p = end + 1;
        size_t plen = (size_t)(at - p);
        if (plen == 0 || plen >= sizeof out->path)
            return KILN_EINVAL;
        for (const char *seg = p; seg < at;) {
            const char *next = memchr(seg, '/', (size_t)(at - seg));
            size_t slen = (size_t)((next ? next : at) - seg);
            if (slen == 0 || (slen == 1 && seg[0] == '.') ||
                (slen == 2 && seg[0] == '.' && seg[1] == '.'))
                return KILN_EINVAL;
            seg = next ? next + 1 : at;
        }
        memcpy(out->path, p, plen);
    }
    snprintf(out->ref, sizeof out->ref, "%s", at + 1);
    return 0;
}

static void s_add_remote(json_t *out, const char *kind, const char *uses)
{
    size_t j;
    json_t *e;
    json_array_foreach(out, j, e) {
        if (strcmp(json_string_value(json_object_get(e, "uses")), uses) == 0)
            return;
    }
    json_array_append_new(out, json_pack("{s:s, s:s}", "kind", kind, "uses", uses));
}

static void s_collect_remote(knode_t *node, json_t *out, int depth)
{
    node = kiln_yaml_res(node);
    if (!node || depth > KILN_YAML_MAX_DEPTH)
        return;
    if (node->kind == KILN_YAML_MAP) {
        for (size_t i = 0; i + 1 < node->n; i += 2) {
            knode_t *k = kiln_yaml_res(node->items[i]), *v = kiln_yaml_res(node->items[i + 1]);
            kiln_uses_ref_t ref;
            char why[256];
            if (k->kind == KILN_YAML_SCALAR && strcmp(k->value, "uses") == 0 &&
                v->kind == KILN_YAML_SCALAR && kiln_uses_remote(v->value, &ref) == 0) {
                if (kiln_builtin_for(v->value, why, sizeof why) || why[0])
                    continue;
                size_t n = strlen(ref.path);
                bool wf = (n > 4 && strcmp(ref.path + n - 4, ".yml") == 0) ||
                          (n > 5 && strcmp(ref.path + n - 5, ".yaml") == 0);
                s_add_remote(out, wf ? "workflow" : "action", v->value);
            } else {
                s_collect_remote(v, out, depth + 1);
            }
        }
    } else if (node->kind == KILN_YAML_SEQ) {
        for (size_t i = 0; i < node->n; i++)
            s_collect_remote(node->items[i], out, depth + 1);
    }
}

void kiln_workflow_remote_uses(const char *text, size_t len, json_t *out)
{
    kiln_diags_t diags;
    kiln_yaml_t *tree = NULL;
    kiln_diags_init(&diags, "scan");
    if (kiln_yaml_parse(&tree, text, len, &diags) == 0)
        s_collect_remote(kiln_yaml_root(tree), out, 0);
    kiln_yaml_destroy(&tree);
    kiln_diags_free(&diags);
}
