/* parse.c: a workflow file read into the model (see parse.h).
 *
 * Two passes. The YAML tree (yaml.c) is built with every limit enforced;
 * then this walk checks it against the workflow schema and fills
 * kiln_workflow_t, reporting every problem it can find (lint wants all of
 * them) and giving up only on the tree's fatal problems and on allocation
 * failure. Each job is walked once, as written: a matrix is kept as written
 * (a static one is expanded here only to check it), so a job's problems are
 * reported once however many jobs its matrix makes.
 *
 * After the walk, local composite actions are expanded (composite.c),
 * called workflows read (call.c), needs resolved, cycles named and a
 * topological order computed (graph.c). The model is returned only when no
 * error was reported. Nothing here keeps global state.
 */
#include "lang/parse.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/error.h"
#include "lang/expr.h"
#include "lang/matrix.h"
#include "lang/parse_int.h"

/* Known GitHub keys Kiln accepts and does not act on yet: a warning each,
 * so that nobody believes them honoured. */
static const char *const s_job_not_acted[] = {"environment", "permissions", NULL};

/* -------------------------------------------------------------- container */

/* A list of strings (volumes, ports), each a template. */
static json_t *s_container_list(kiln_parse_t *ctx, const knode_t *key, knode_t *v, const char *who,
                                const char *field)
{
    if (v->kind != KILN_YAML_SEQ) {
        kiln_parse_type_error(ctx, key, who, "a list of strings");
        return NULL;
    }
    json_t *out = json_array();
    for (size_t i = 0; out && i < v->n; i++) {
        knode_t *item = kiln_yaml_res(v->items[i]);
        if (item->kind != KILN_YAML_SCALAR || !item->value[0]) {
            kiln_parse_error(ctx, item, "%s: each of container.%s must be a non-empty string", who,
                             field);
            continue;
        }
        kiln_parse_template(ctx, item, who, field, item->value);
        json_array_append_new(out, json_string(item->value));
    }
    if (!out)
        ctx->oom = true;
    return out;
}

/* container: an image (a string), or {image, env, options, volumes,
 * ports, credentials}, as GitHub's jobs.<id>.container; into *out. */
static void s_container_spec(kiln_parse_t *ctx, const knode_t *kslot, knode_t *v, const char *who,
                             json_t **out)
{
    static const char *const known[] = {"image", "env", "options", "volumes", "ports",
                                        "credentials", NULL};
    json_t *c = json_object();
    const knode_t *image = NULL;
    if (!c) {
        ctx->oom = true;
        return;
    }
    if (v->kind == KILN_YAML_SCALAR) {
        image = v;
    } else if (v->kind != KILN_YAML_MAP) {
        kiln_parse_type_error(ctx, kslot, who, "an image name or a mapping with image:");
        json_decref(c);
        return;
    }
    for (size_t i = 0; v->kind == KILN_YAML_MAP && i + 1 < v->n; i += 2) {
        knode_t *key = v->items[i];
        const char *k = kiln_yaml_res(key)->value;
        knode_t *val = kiln_yaml_res(v->items[i + 1]);
        if (strcmp(k, "image") == 0) {
            image = val;
        } else if (strcmp(k, "options") == 0) {
            char *o = kiln_parse_string(ctx, key, val, who);
            if (o) {
                kiln_parse_template(ctx, val, who, "container.options", o);
                json_object_set_new(c, "options", json_string(o));
            }
            free(o);
        } else if (strcmp(k, "env") == 0 || strcmp(k, "credentials") == 0) {
            json_t *m = NULL;
            kiln_parse_template_map(ctx, key, val, who, "a mapping of names to values", &m);
            if (m)
                json_object_set_new(c, k, m);
        } else if (strcmp(k, "volumes") == 0 || strcmp(k, "ports") == 0) {
            json_t *l = s_container_list(ctx, key, val, who, k);
            if (l)
                json_object_set_new(c, k, l);
        } else if (!kiln_parse_is_key(k, known)) {
            kiln_parse_warn(ctx, key, "unknown key '%.*s' in the container of %s", s_q(k), k, who);
        }
    }
    if (!image || image->kind != KILN_YAML_SCALAR || !image->value[0]) {
        kiln_parse_error(ctx, image ? image : kslot, "the container of %s needs an image", who);
        json_decref(c);
        return;
    }
    kiln_parse_template(ctx, image, who, "container.image", image->value);
    json_object_set_new(c, "image", json_string(image->value));
    json_decref(*out);
    *out = c;
}

static void s_walk_container(kiln_parse_t *ctx, const knode_t *kslot, knode_t *v, const char *who,
                             kiln_job_t *job)
{
    s_container_spec(ctx, kslot, v, who, &job->container);
}

/* services: id -> a container spec each, started beside the job. */
static void s_walk_services(kiln_parse_t *ctx, const knode_t *kslot, knode_t *v, const char *who,
                            kiln_job_t *job)
{
    if (v->kind != KILN_YAML_MAP) {
        kiln_parse_type_error(ctx, kslot, who, "a mapping of service names to containers");
        return;
    }
    json_t *all = json_object();
    for (size_t i = 0; all && i + 1 < v->n; i += 2) {
        knode_t *key = v->items[i];
        const char *id = kiln_yaml_res(key)->value;
        if (!kiln_parse_check_id(ctx, key, "service", id, who))
            continue;
        char swho[KILN_PARSE_WHO_MAX + 140];
        snprintf(swho, sizeof swho, "service '%.*s' of %s", s_q(id), id, who);
        json_t *spec = NULL;
        s_container_spec(ctx, key, kiln_yaml_res(v->items[i + 1]), swho, &spec);
        if (spec)
            json_object_set_new(all, id, spec);
    }
    if (!all)
        ctx->oom = true;
    json_decref(job->services);
    job->services = all;
}

/* ---------------------------------------------------------------- runs-on */

/* Labels no Linux worker has: a job that asks for them is kept (the rest
 * of the workflow runs) and fails, with this reason, if it is planned. */
static bool s_foreign_label(const char *label)
{
    return strncasecmp(label, "windows", 7) == 0 || strncasecmp(label, "macos", 5) == 0;
}

static void s_runs_on_label(kiln_parse_t *ctx, kiln_job_t *job, const knode_t *at,
                            const char *who, const char *label)
{
    if (label[0] == '\0') {
        kiln_parse_error(ctx, at, "'runs-on' of %s has an empty label", who);
        return;
    }
    kiln_parse_template(ctx, at, who, "runs-on", label);
    if (!kiln_is_template(label) && s_foreign_label(label) && !job->unsupported) {
        char why[KILN_PARSE_WHO_MAX + 160];
        snprintf(why, sizeof why,
                 "runs-on '%.*s': this farm runs Linux workers only, so the job cannot run",
                 s_q(label), label);
        job->unsupported = kiln_parse_strdup(ctx, why);
        kiln_parse_warn(ctx, at, "%s: %s", who, why);
    }
}

/* runs-on: a label, a list of labels, {group, labels}, or a template (an
 * expression may give a string or a list). */
static void s_walk_runs_on(kiln_parse_t *ctx, const knode_t *key, knode_t *val, const char *who,
                           kiln_job_t *job)
{
    knode_t *labels = val;
    if (val->kind == KILN_YAML_MAP) {
        knode_t *group = kiln_yaml_get(val, "group", NULL);
        labels = kiln_yaml_get(val, "labels", NULL);
        for (size_t i = 0; i + 1 < val->n; i += 2) {
            const char *k = kiln_yaml_res(val->items[i])->value;
            if (!val->items[i]->skip && strcmp(k, "group") != 0 && strcmp(k, "labels") != 0)
                kiln_parse_warn(ctx, val->items[i], "unknown key '%.*s' in 'runs-on' of %s",
                                s_q(k), k, who);
        }
        if (!group && !labels) {
            kiln_parse_error(ctx, key, "'runs-on' of %s has neither 'group' nor 'labels'", who);
            return;
        }
        if (group && group->kind != KILN_YAML_SCALAR) {
            kiln_parse_error(ctx, key, "'runs-on.group' of %s must be a string", who);
            return;
        }
        if (group)
            kiln_parse_template(ctx, group, who, "runs-on.group", group->value);
    }
    if (labels && labels->kind == KILN_YAML_SCALAR) {
        if (labels->len == 0) {
            kiln_parse_error(ctx, key, "'runs-on' of %s is empty", who);
            return;
        }
        s_runs_on_label(ctx, job, labels, who, labels->value);
    } else if (labels && labels->kind == KILN_YAML_SEQ) {
        if (labels->n == 0) {
            kiln_parse_error(ctx, key, "'runs-on' of %s is empty", who);
            return;
        }
        for (size_t i = 0; i < labels->n; i++) {
            knode_t *item = kiln_yaml_res(labels->items[i]);
            if (item->kind != KILN_YAML_SCALAR) {
                kiln_parse_error(ctx, labels->items[i],
                                 "entry %zu of 'runs-on' of %s must be a string, not %s", i + 1,
                                 who, kiln_yaml_kind_name(item->kind));
                return;
            }
            s_runs_on_label(ctx, job, item, who, item->value);
        }
    } else if (labels) {
        kiln_parse_type_error(ctx, key, who,
                              "a label, a list of labels, or a mapping (group, labels)");
        return;
    }
    json_decref(job->runs_on);
    if (!(job->runs_on = kiln_yaml_json(val)))
        ctx->oom = true;
}

/* --------------------------------------------------------------- strategy */

/* Every template anywhere in a matrix value (list items, include and
 * exclude entries), checked at its own position. */
static void s_check_matrix_templates(kiln_parse_t *ctx, knode_t *node, const char *who)
{
    node = kiln_yaml_res(node);
    if (node->kind == KILN_YAML_SCALAR) {
        kiln_parse_template(ctx, node, who, "strategy.matrix", node->value);
        return;
    }
    for (size_t i = 0; i < node->n; i++)
        if (node->kind == KILN_YAML_SEQ || (i % 2 == 1) || !node->items[i]->skip)
            s_check_matrix_templates(ctx, node->items[i], who);
}

/* Checks what is static in a matrix as written; a matrix with no template
 * at all is expanded, so its errors are reported here with a line. */
static void s_check_matrix(kiln_parse_t *ctx, const knode_t *mkey, knode_t *mval,
                           const char *who, kiln_job_t *job, size_t *n_combos)
{
    *n_combos = 1;
    if (mval->kind == KILN_YAML_SCALAR) {
        if (!kiln_is_template(mval->value)) {
            kiln_parse_error(ctx, mkey, "the matrix of %s must be a mapping or an expression",
                             who);
            return;
        }
        kiln_parse_template(ctx, mval, who, "strategy.matrix", mval->value);
        json_decref(job->matrix);
        if (!(job->matrix = json_string(mval->value)))
            ctx->oom = true;
        return;
    }
    if (mval->kind != KILN_YAML_MAP) {
        kiln_parse_type_error(ctx, mkey, who, "a mapping of lists, or an expression");
        return;
    }
    size_t errors_before = ctx->diags->n_errors;
    for (size_t i = 0; i + 1 < mval->n; i += 2) {
        if (mval->items[i]->skip)
            continue;
        const char *k = kiln_yaml_res(mval->items[i])->value;
        knode_t *v = kiln_yaml_res(mval->items[i + 1]);
        bool listish = strcmp(k, "include") == 0 || strcmp(k, "exclude") == 0;
        if (v->kind == KILN_YAML_SCALAR && kiln_is_template(v->value)) {
            char field[KILN_YAML_QUOTE_MAX + 32];
            snprintf(field, sizeof field, "strategy.matrix.%.*s", s_q(k), k);
            kiln_parse_template(ctx, v, who, field, v->value);
        } else if (v->kind != KILN_YAML_SEQ) {
            kiln_parse_error(ctx, mval->items[i],
                             listish ? "matrix '%.*s' of %s must be a list of mappings or an "
                                       "expression"
                                     : "matrix key '%.*s' of %s must be a list of values or an "
                                       "expression",
                             s_q(k), k, who);
        } else {
            s_check_matrix_templates(ctx, v, who);
        }
    }
    json_t *m = kiln_yaml_json(mval);
    if (!m) {
        ctx->oom = true;
        return;
    }
    /* A matrix without a template is expanded now, for its own errors
     * (once its keys are sound: a key already reported is not again). */
    if (!kiln_value_has_template(m) && ctx->diags->n_errors == errors_before) {
        kiln_matrix_t mx = {0};
        char err[512];
        if (kiln_matrix_expand(&mx, m, job->id, err, sizeof err) == 0)
            *n_combos = mx.n;
        else
            kiln_parse_error(ctx, mkey, "%s", err);
        kiln_matrix_free(&mx);
    }
    json_decref(job->matrix);
    job->matrix = m;
}

static void s_walk_strategy(kiln_parse_t *ctx, const knode_t *key, knode_t *val, const char *who,
                            kiln_job_t *job, size_t *n_combos)
{
    if (val->kind != KILN_YAML_MAP) {
        kiln_parse_type_error(ctx, key, who, "a mapping (matrix, fail-fast, max-parallel)");
        return;
    }
    for (size_t i = 0; i + 1 < val->n && !ctx->oom; i += 2) {
        knode_t *kslot = val->items[i];
        if (kslot->skip)
            continue;
        const char *k = kiln_yaml_res(kslot)->value;
        knode_t *v = kiln_yaml_res(val->items[i + 1]);
        if (strcmp(k, "matrix") == 0) {
            s_check_matrix(ctx, kslot, v, who, job, n_combos);
        } else if (strcmp(k, "fail-fast") == 0) {
            kiln_parse_bool_value(ctx, kslot, v, who, &job->fail_fast);
        } else if (strcmp(k, "max-parallel") == 0) {
            kiln_parse_count_value(ctx, kslot, v, who, 1, 256, &job->max_parallel);
        } else {
            kiln_parse_warn(ctx, kslot, "unknown key '%.*s' in 'strategy' of %s", s_q(k), k,
                            who);
        }
    }
}

/* ------------------------------------------------------------ other keys */

/* `concurrency:` as a string (the group) or {group, cancel-in-progress}. */
static void s_walk_concurrency(kiln_parse_t *ctx, const knode_t *key, knode_t *val,
                               const char *who, char **group, json_t **cancel)
{
    if (val->kind == KILN_YAML_SCALAR) {
        free(*group);
        *group = kiln_parse_string(ctx, key, val, who);
        kiln_parse_template(ctx, val, who, "concurrency", *group);
        return;
    }
    if (val->kind != KILN_YAML_MAP) {
        kiln_parse_type_error(ctx, key, who,
                              "a group name or a mapping (group, cancel-in-progress)");
        return;
    }
    for (size_t i = 0; i + 1 < val->n && !ctx->oom; i += 2) {
        knode_t *kslot = val->items[i];
        if (kslot->skip)
            continue;
        const char *k = kiln_yaml_res(kslot)->value;
        knode_t *v = kiln_yaml_res(val->items[i + 1]);
        if (strcmp(k, "group") == 0) {
            free(*group);
            *group = kiln_parse_string(ctx, kslot, v, who);
            kiln_parse_template(ctx, v, who, "concurrency.group", *group);
        } else if (strcmp(k, "cancel-in-progress") == 0) {
            kiln_parse_bool_value(ctx, kslot, v, who, cancel);
        } else {
            kiln_parse_warn(ctx, kslot, "unknown key '%.*s' in 'concurrency' of %s", s_q(k), k,
                            who);
        }
    }
    if (!*group)
        kiln_parse_error(ctx, key, "'concurrency' of %s has no group", who);
}

static void s_walk_defaults(kiln_parse_t *ctx, const knode_t *key, knode_t *val, const char *who,
                            char **shell, char **wd)
{
    if (val->kind != KILN_YAML_MAP) {
        kiln_parse_type_error(ctx, key, who, "a mapping");
        return;
    }
    for (size_t i = 0; i + 1 < val->n && !ctx->oom; i += 2) {
        knode_t *kslot = val->items[i];
        if (kslot->skip)
            continue;
        const char *name = kiln_yaml_res(kslot)->value;
        knode_t *v = kiln_yaml_res(val->items[i + 1]);
        if (strcmp(name, "run") != 0) {
            kiln_parse_warn(ctx, kslot, "unknown key '%.*s' in defaults of %s", s_q(name), name,
                            who);
            continue;
        }
        if (v->kind != KILN_YAML_MAP) {
            kiln_parse_error(ctx, kslot, "'defaults.run' of %s must be a mapping", who);
            continue;
        }
        for (size_t j = 0; j + 1 < v->n && !ctx->oom; j += 2) {
            knode_t *rslot = v->items[j];
            if (rslot->skip)
                continue;
            const char *rname = kiln_yaml_res(rslot)->value;
            knode_t *rv = kiln_yaml_res(v->items[j + 1]);
            if (strcmp(rname, "shell") == 0) {
                free(*shell);
                *shell = kiln_parse_shell(ctx, rslot, rv, who, true);
            } else if (strcmp(rname, "working-directory") == 0) {
                free(*wd);
                *wd = kiln_parse_string(ctx, rslot, rv, who);
                kiln_parse_template(ctx, rv, who, "defaults.run.working-directory", *wd);
            } else {
                kiln_parse_warn(ctx, rslot, "unknown key '%.*s' in defaults.run of %s",
                                s_q(rname), rname, who);
            }
        }
    }
}

/* Kiln's own job settings, under `kiln:` so that GitHub's keys stay
 * GitHub's: max-attempts (infrastructure failures) and retry (script
 * failures). */
static void s_walk_kiln(kiln_parse_t *ctx, const knode_t *key, knode_t *val, const char *who,
                        kiln_job_t *job)
{
    char inner[KILN_PARSE_WHO_MAX];
    if (val->kind != KILN_YAML_MAP) {
        kiln_parse_type_error(ctx, key, who, "a mapping (max-attempts, retry)");
        return;
    }
    snprintf(inner, sizeof inner, "'kiln' of %s", who);
    for (size_t i = 0; i + 1 < val->n && !ctx->oom; i += 2) {
        knode_t *kslot = val->items[i];
        if (kslot->skip)
            continue;
        const char *k = kiln_yaml_res(kslot)->value;
        knode_t *v = kiln_yaml_res(val->items[i + 1]);
        double n;
        unsigned lo = strcmp(k, "retry") == 0 ? 0 : 1;
        unsigned *out = strcmp(k, "max-attempts") == 0 ? &job->max_attempts
                        : strcmp(k, "retry") == 0      ? &job->retry
                                                       : NULL;
        if (!out) {
            kiln_parse_warn(ctx, kslot, "unknown key '%.*s' in %s (known: max-attempts, retry)",
                            s_q(k), k, inner);
            continue;
        }
        if (!kiln_yaml_number(v, &n) || n != (double)(long long)n || n < lo ||
            n > KILN_WF_MAX_ATTEMPTS) {
            char want[64];
            snprintf(want, sizeof want, "a whole number from %u to %d", lo, KILN_WF_MAX_ATTEMPTS);
            kiln_parse_type_error(ctx, kslot, inner, want);
            continue;
        }
        *out = (unsigned)n;
    }
}

/* A string or a list of strings into a new array; `nodes` gets where each
 * entry was written, for later messages. */
static void s_string_list(kiln_parse_t *ctx, const knode_t *key, knode_t *val, const char *who,
                          char ***out, size_t *n_out, knode_t ***nodes)
{
    size_t cap = val->kind == KILN_YAML_SEQ ? val->n : 1;
    if (val->kind == KILN_YAML_MAP) {
        kiln_parse_type_error(ctx, key, who, "a string or a list of strings");
        return;
    }
    if (cap == 0 || (val->kind == KILN_YAML_SCALAR && kiln_yaml_null(val)))
        return;
    *out = calloc(cap, sizeof **out);
    *nodes = calloc(cap, sizeof **nodes);
    if (!*out || !*nodes) {
        ctx->oom = true;
        return;
    }
    for (size_t i = 0; i < cap && !ctx->oom; i++) {
        knode_t *slot = val->kind == KILN_YAML_SEQ ? val->items[i] : val;
        knode_t *item = kiln_yaml_res(slot);
        if (item->kind != KILN_YAML_SCALAR) {
            const char *name = kiln_yaml_res((knode_t *)key)->value;
            kiln_parse_error(ctx, slot, "entry %zu of '%.*s' of %s must be a string, not %s",
                             i + 1, s_q(name), name, who, kiln_yaml_kind_name(item->kind));
            continue;
        }
        (*nodes)[*n_out] = slot;
        (*out)[(*n_out)++] = kiln_parse_strdup(ctx, item->value);
    }
}

/* Whether planning the job's jobs (its matrix and strategy) reads needs:
 * then they are made when its needs are done, not at submission. */
static bool s_reads_needs(const json_t *v)
{
    if (json_is_string(v))
        return kiln_expr_template_refers_to(json_string_value(v), "needs");
    if (json_is_array(v)) {
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e) if (s_reads_needs(e)) return true;
    } else if (json_is_object(v)) {
        const char *k;
        json_t *e;
        json_object_foreach((json_t *)v, k, e) if (s_reads_needs(e)) return true;
    }
    return false;
}

/* ------------------------------------------------------------------ jobs */

static void s_walk_job(kiln_parse_t *ctx, knode_t *key, knode_t *val, kiln_job_t *job,
                       knode_t ***need_nodes, size_t *n_combos)
{
    char who[KILN_PARSE_WHO_MAX];
    const char *id = kiln_yaml_res(key)->value;
    job->line = key->line;
    job->col = key->col;
    job->id = kiln_parse_strdup(ctx, id);
    *n_combos = 1;
    if (!job->id)
        return;
    kiln_parse_check_id(ctx, key, "job", id, "");
    snprintf(who, sizeof who, "job '%.*s'", s_q(id), id);
    if (val->kind != KILN_YAML_MAP) {
        kiln_parse_error(ctx, key, "job '%.*s' must be a mapping, not %s", s_q(id), id,
                         kiln_yaml_kind_name(val->kind));
        return;
    }
    knode_t *runs_on_key = NULL, *steps_key = NULL, *uses_key = NULL, *uses_v = NULL;
    for (size_t i = 0; i + 1 < val->n && !ctx->oom; i += 2) {
        knode_t *kslot = val->items[i];
        if (kslot->skip)
            continue;
        const char *k = kiln_yaml_res(kslot)->value;
        knode_t *v = kiln_yaml_res(val->items[i + 1]);
        if (strcmp(k, "name") == 0) {
            free(job->name);
            job->name = kiln_parse_string(ctx, kslot, v, who);
            kiln_parse_template(ctx, v, who, "name", job->name);
        } else if (strcmp(k, "runs-on") == 0) {
            runs_on_key = kslot;
            s_walk_runs_on(ctx, kslot, v, who, job);
        } else if (strcmp(k, "needs") == 0) {
            s_string_list(ctx, kslot, v, who, &job->needs, &job->n_needs, need_nodes);
        } else if (strcmp(k, "env") == 0) {
            kiln_parse_env(ctx, kslot, v, who, &job->env, &job->env_expr);
        } else if (strcmp(k, "timeout-minutes") == 0) {
            kiln_parse_minutes_value(ctx, kslot, v, who, &job->timeout);
        } else if (strcmp(k, "continue-on-error") == 0) {
            kiln_parse_bool_value(ctx, kslot, v, who, &job->continue_on_error);
        } else if (strcmp(k, "steps") == 0) {
            steps_key = kslot;
            kiln_parse_steps(ctx, kslot, v, who, job->id, &job->steps, &job->n_steps);
        } else if (strcmp(k, "defaults") == 0) {
            s_walk_defaults(ctx, kslot, v, who, &job->shell, &job->working_directory);
        } else if (strcmp(k, "if") == 0) {
            if (v->kind != KILN_YAML_SCALAR) {
                kiln_parse_type_error(ctx, kslot, who, "a string");
            } else if (v->len > 0) {
                free(job->if_expr);
                job->if_expr = kiln_parse_strdup(ctx, v->value);
                kiln_parse_condition(ctx, v, who, job->if_expr);
            }
        } else if (strcmp(k, "uses") == 0) {
            uses_key = kslot;
            uses_v = v;
        } else if (strcmp(k, "with") == 0) {
            kiln_parse_template_map(ctx, kslot, v, who, "a mapping of inputs", &job->with);
        } else if (strcmp(k, "secrets") == 0) {
            if (v->kind == KILN_YAML_SCALAR && strcmp(v->value, "inherit") == 0) {
                json_decref(job->secrets);
                job->secrets = json_string("inherit");
            } else if (v->kind == KILN_YAML_MAP) {
                json_decref(job->secrets);
                job->secrets = kiln_yaml_json(v);
            } else {
                kiln_parse_type_error(ctx, kslot, who, "a mapping or 'inherit'");
            }
        } else if (strcmp(k, "kiln") == 0) {
            s_walk_kiln(ctx, kslot, v, who, job);
        } else if (strcmp(k, "strategy") == 0) {
            s_walk_strategy(ctx, kslot, v, who, job, n_combos);
        } else if (strcmp(k, "outputs") == 0) {
            kiln_parse_template_map(ctx, kslot, v, who, "a mapping of names to values",
                                    &job->outputs);
        } else if (strcmp(k, "concurrency") == 0) {
            s_walk_concurrency(ctx, kslot, v, who, &job->concurrency_group,
                               &job->cancel_in_progress);
        } else if (strcmp(k, "container") == 0) {
            s_walk_container(ctx, kslot, v, who, job);
        } else if (strcmp(k, "services") == 0) {
            s_walk_services(ctx, kslot, v, who, job);
        } else if (kiln_parse_is_key(k, s_job_not_acted)) {
            kiln_parse_warn(ctx, kslot,
                            "'%s' of %s is accepted but not acted on yet: the job runs without it",
                            k, who);
        } else {
            kiln_parse_warn(ctx, kslot, "unknown key '%.*s' in %s", s_q(k), k, who);
        }
    }
    if (ctx->oom)
        return;
    if (uses_key) {
        /* A call of a reusable workflow: runs-on and steps are the callee's. */
        if (runs_on_key)
            kiln_parse_error(ctx, runs_on_key,
                             "%s calls a reusable workflow and cannot have runs-on", who);
        if (steps_key)
            kiln_parse_error(ctx, steps_key,
                             "%s calls a reusable workflow and cannot have steps", who);
        if (uses_v->kind != KILN_YAML_SCALAR) {
            kiln_parse_type_error(ctx, uses_key, who, "a string");
            return;
        }
        job->uses = kiln_parse_strdup(ctx, uses_v->value);
        kiln_parse_call(ctx, job, uses_v);
    } else {
        if (job->with)
            kiln_parse_error(ctx, key, "%s has 'with' but calls no reusable workflow (uses:)",
                             who);
        if (!runs_on_key)
            kiln_parse_error(ctx, key, "job '%.*s' has no runs-on", s_q(id), id);
        if (!steps_key)
            kiln_parse_error(ctx, key, "job '%.*s' has no steps", s_q(id), id);
    }
    job->plan_late = s_reads_needs(job->matrix) || s_reads_needs(job->fail_fast) ||
                     s_reads_needs(job->max_parallel);
}

static void s_walk_jobs(kiln_parse_t *ctx, const knode_t *key, knode_t *val)
{
    kiln_workflow_t *wf = ctx->wf;
    if (val->kind == KILN_YAML_SCALAR && kiln_yaml_null(val)) {
        kiln_parse_error(ctx, key, "'jobs' is empty: a workflow needs at least one job");
        return;
    }
    if (val->kind != KILN_YAML_MAP) {
        kiln_parse_error(ctx, key, "'jobs' must be a mapping of job ids to jobs, not %s",
                         kiln_yaml_kind_name(val->kind));
        return;
    }
    size_t n_pairs = val->n / 2;
    if (n_pairs == 0) {
        kiln_parse_error(ctx, key, "'jobs' is empty: a workflow needs at least one job");
        return;
    }
    if (n_pairs > KILN_WF_MAX_JOBS) {
        kiln_parse_error(ctx, key, "the workflow has %zu jobs; the limit is %d", n_pairs,
                         KILN_WF_MAX_JOBS);
        return;
    }
    wf->jobs = calloc(n_pairs, sizeof *wf->jobs);
    ctx->need_nodes = calloc(n_pairs, sizeof *ctx->need_nodes);
    if (!wf->jobs || !ctx->need_nodes) {
        ctx->oom = true;
        return;
    }
    size_t total = 0;
    for (size_t i = 0; i + 1 < val->n && !ctx->oom; i += 2) {
        if (val->items[i]->skip)
            continue;
        size_t j = wf->n_jobs++, combos = 1;
        s_walk_job(ctx, val->items[i], kiln_yaml_res(val->items[i + 1]), &wf->jobs[j],
                   &ctx->need_nodes[j], &combos);
        total += combos;
    }
    if (total > KILN_WF_MAX_JOBS)
        kiln_parse_error(ctx, key,
                         "the workflow has %zu jobs once its matrices are expanded; the limit "
                         "is %d",
                         total, KILN_WF_MAX_JOBS);
}

/* -------------------------------------------------------------- on: */

static const char *const s_input_types[] = {"string", "boolean", "number", "choice",
                                            "environment", NULL};

/* Inputs declared under a trigger (workflow_dispatch or workflow_call). */
static json_t *s_walk_inputs(kiln_parse_t *ctx, const knode_t *ikey, knode_t *inputs,
                             const char *trigger)
{
    char who[64];
    snprintf(who, sizeof who, "on.%s", trigger);
    if (inputs->kind != KILN_YAML_MAP) {
        if (!kiln_yaml_null(inputs))
            kiln_parse_type_error(ctx, ikey, who, "a mapping of inputs");
        return NULL;
    }
    for (size_t k = 0; k + 1 < inputs->n; k += 2) {
        knode_t *name = inputs->items[k];
        knode_t *spec = kiln_yaml_res(inputs->items[k + 1]);
        if (name->skip)
            continue;
        const char *n = kiln_yaml_res(name)->value;
        if (spec->kind != KILN_YAML_MAP) {
            if (!kiln_yaml_null(spec))
                kiln_parse_error(ctx, name, "input '%.*s' must be a mapping", s_q(n), n);
            continue;
        }
        knode_t *type = kiln_yaml_get(spec, "type", NULL);
        if (type && (type->kind != KILN_YAML_SCALAR || !kiln_parse_is_key(type->value, s_input_types)))
            kiln_parse_error(ctx, type,
                             "input '%.*s' has an unknown type (string, boolean, number, "
                             "choice, environment)",
                             s_q(n), n);
    }
    json_t *out = kiln_yaml_json(inputs);
    if (!out)
        ctx->oom = true;
    return out;
}

/* on: in all its forms; what matters to a farm: workflow_dispatch's
 * inputs (kiln run --input name=value) and workflow_call (a reusable
 * workflow's inputs, outputs and secrets). */
static void s_on_event(kiln_parse_t *ctx, const char *name)
{
    kiln_workflow_t *wf = ctx->wf;
    if (!wf->events && !(wf->events = json_array()))
        ctx->oom = true;
    else if (json_array_append_new(wf->events, json_string(name)) != 0)
        ctx->oom = true;
}

/* An event's filters (branches, tags, paths, their -ignore forms, types):
 * each a string or a list of strings, and a filter and its -ignore form
 * not both, as GitHub refuses. Kept for lang/trigger.c. */
static void s_walk_filters(kiln_parse_t *ctx, const char *event, knode_t *t)
{
    static const char *const names[] = {"branches", "branches-ignore", "tags", "tags-ignore",
                                        "paths",    "paths-ignore",    "types"};
    kiln_workflow_t *wf = ctx->wf;
    json_t *mine = NULL;
    char who[128];
    snprintf(who, sizeof who, "on.%.64s", event);
    for (size_t i = 0; i + 1 < t->n && !ctx->oom; i += 2) {
        knode_t *kslot = t->items[i];
        const char *k = kiln_yaml_res(kslot)->value;
        knode_t *v = kiln_yaml_res(t->items[i + 1]);
        size_t n;
        for (n = 0; n < sizeof names / sizeof names[0]; n++)
            if (strcmp(k, names[n]) == 0)
                break;
        if (n == sizeof names / sizeof names[0])
            continue;
        json_t *list = json_array();
        if (!list) {
            ctx->oom = true;
            break;
        }
        if (v->kind == KILN_YAML_SCALAR && !kiln_yaml_null(v)) {
            json_array_append_new(list, json_string(v->value));
        } else if (v->kind == KILN_YAML_SEQ) {
            for (size_t e = 0; e < v->n; e++) {
                knode_t *item = kiln_yaml_res(v->items[e]);
                if (item->kind != KILN_YAML_SCALAR) {
                    kiln_parse_type_error(ctx, kslot, who, "a list of strings");
                    break;
                }
                json_array_append_new(list, json_string(item->value));
            }
        } else {
            kiln_parse_type_error(ctx, kslot, who, "a string or a list of strings");
            json_decref(list);
            continue;
        }
        if (!mine && !(mine = json_object())) {
            json_decref(list);
            ctx->oom = true;
            break;
        }
        json_object_set_new(mine, k, list);
        /* branches with branches-ignore (and paths, tags): GitHub refuses. */
        if (n < 6) {
            const char *other = names[n % 2 ? n - 1 : n + 1];
            if (json_object_get(mine, other))
                kiln_parse_error(ctx, kslot,
                                 "%s has both '%s' and '%s'; use one (a '!' pattern excludes)",
                                 who, n % 2 ? other : k, n % 2 ? k : other);
        }
    }
    if (!mine)
        return;
    if (!wf->filters && !(wf->filters = json_object())) {
        json_decref(mine);
        ctx->oom = true;
        return;
    }
    json_object_set_new(wf->filters, event, mine);
}

static void s_walk_on(kiln_parse_t *ctx, knode_t *val)
{
    kiln_workflow_t *wf = ctx->wf;
    if (val->kind == KILN_YAML_SCALAR) {
        wf->callable = strcmp(val->value, "workflow_call") == 0;
        s_on_event(ctx, val->value);
        return;
    }
    if (val->kind == KILN_YAML_SEQ) {
        for (size_t i = 0; i < val->n; i++) {
            knode_t *e = kiln_yaml_res(val->items[i]);
            if (e->kind == KILN_YAML_SCALAR && strcmp(e->value, "workflow_call") == 0)
                wf->callable = true;
            if (e->kind == KILN_YAML_SCALAR)
                s_on_event(ctx, e->value);
        }
        return;
    }
    if (val->kind != KILN_YAML_MAP)
        return;
    for (size_t i = 0; i + 1 < val->n && !ctx->oom; i += 2) {
        if (val->items[i]->skip)
            continue;
        const char *trigger = kiln_yaml_res(val->items[i])->value;
        s_on_event(ctx, trigger);
        knode_t *t = kiln_yaml_res(val->items[i + 1]);
        bool dispatch = strcmp(trigger, "workflow_dispatch") == 0;
        bool call = strcmp(trigger, "workflow_call") == 0;
        if (call)
            wf->callable = true;
        if (t->kind == KILN_YAML_MAP)
            s_walk_filters(ctx, trigger, t);
        if ((!dispatch && !call) || t->kind != KILN_YAML_MAP)
            continue;
        knode_t *ikey = NULL;
        knode_t *inputs = kiln_yaml_get(t, "inputs", &ikey);
        if (inputs) {
            json_t *j = s_walk_inputs(ctx, ikey, inputs, trigger);
            json_t **slot = dispatch ? &wf->inputs : &wf->call_inputs;
            json_decref(*slot);
            *slot = j;
        }
        if (call) {
            knode_t *okey = NULL, *outputs = kiln_yaml_get(t, "outputs", &okey);
            if (outputs && outputs->kind == KILN_YAML_MAP) {
                json_decref(wf->call_outputs);
                if (!(wf->call_outputs = kiln_yaml_json(outputs)))
                    ctx->oom = true;
                for (size_t o = 0; o + 1 < outputs->n; o += 2) {
                    knode_t *ov = kiln_yaml_get(outputs->items[o + 1], "value", NULL);
                    if (ov && ov->kind == KILN_YAML_SCALAR)
                        kiln_parse_template(ctx, ov, "on.workflow_call", "outputs", ov->value);
                }
            } else if (outputs && !kiln_yaml_null(outputs)) {
                kiln_parse_type_error(ctx, okey, "on.workflow_call", "a mapping of outputs");
            }
            knode_t *secrets = kiln_yaml_get(t, "secrets", NULL);
            if (secrets && secrets->kind == KILN_YAML_MAP) {
                json_decref(wf->call_secrets);
                wf->call_secrets = kiln_yaml_json(secrets);
            }
        }
    }
}


/* ------------------------------------------------------------- workflow */

static void s_walk_workflow(kiln_parse_t *ctx, knode_t *root)
{
    kiln_workflow_t *wf = ctx->wf;
    knode_t *jobs_key = NULL, *jobs_val = NULL;
    root = kiln_yaml_res(root);
    if (!root || (root->kind == KILN_YAML_SCALAR && kiln_yaml_null(root))) {
        kiln_parse_error_at(ctx, root ? root->line : 1, root ? root->col : 1,
                            "the workflow is empty");
        return;
    }
    if (root->kind != KILN_YAML_MAP) {
        kiln_parse_error(ctx, root, "a workflow must be a mapping at the top level, not %s",
                         kiln_yaml_kind_name(root->kind));
        return;
    }
    for (size_t i = 0; i + 1 < root->n && !ctx->oom; i += 2) {
        knode_t *kslot = root->items[i];
        if (kslot->skip)
            continue;
        const char *k = kiln_yaml_res(kslot)->value;
        knode_t *v = kiln_yaml_res(root->items[i + 1]);
        if (strcmp(k, "name") == 0) {
            char *name = kiln_parse_string(ctx, kslot, v, "the workflow");
            if (name && name[0]) {
                free(wf->name);
                wf->name = name;
            } else {
                free(name);
            }
        } else if (strcmp(k, "run-name") == 0) {
            free(wf->run_name);
            wf->run_name = kiln_parse_string(ctx, kslot, v, "the workflow");
            kiln_parse_template(ctx, v, "the workflow", "run-name", wf->run_name);
        } else if (strcmp(k, "env") == 0) {
            char *expr = NULL;
            kiln_parse_env(ctx, kslot, v, "the workflow", &wf->env, &expr);
            if (expr) {
                kiln_parse_error(ctx, kslot,
                                 "the workflow's env must be a mapping (an expression is "
                                 "allowed for a job's or a step's env)");
                free(expr);
            }
        } else if (strcmp(k, "defaults") == 0) {
            s_walk_defaults(ctx, kslot, v, "the workflow", &wf->shell, &wf->working_directory);
        } else if (strcmp(k, "jobs") == 0) {
            jobs_key = kslot;
            jobs_val = v;
        } else if (strcmp(k, "on") == 0 || strcmp(k, "true") == 0) {
            /* YAML 1.1 reads a bare `on` key as the boolean true. */
            s_walk_on(ctx, v);
        } else if (strcmp(k, "concurrency") == 0) {
            s_walk_concurrency(ctx, kslot, v, "the workflow", &wf->concurrency_group,
                               &wf->cancel_in_progress);
        } else if (strcmp(k, "permissions") == 0) {
            kiln_parse_warn(ctx, kslot,
                            "'permissions' is accepted but not acted on yet: jobs get no "
                            "GITHUB_TOKEN here");
        } else {
            kiln_parse_warn(ctx, kslot, "unknown key '%.*s' at top level", s_q(k), k);
        }
    }
    if (ctx->oom)
        return;
    if (!jobs_key)
        kiln_parse_error(ctx, root, "the workflow has no 'jobs'");
    else
        s_walk_jobs(ctx, jobs_key, jobs_val);
}

int kiln_parse_document(kiln_parse_t *ctx, const char *file, const char *text, size_t len)
{
    kiln_yaml_t *tree = NULL;
    ctx->wf = calloc(1, sizeof *ctx->wf);
    if (!ctx->wf) {
        ctx->oom = true;
        return -1;
    }
    ctx->wf->file = kiln_parse_strdup(ctx, file);
    const char *base = strrchr(file, '/');
    ctx->wf->name = kiln_parse_strdup(ctx, base && base[1] ? base + 1 : file);
    if (ctx->oom)
        return -1;
    if (len > KILN_WF_MAX_BYTES) {
        kiln_parse_error_at(ctx, 0, 0, "the workflow is %zu bytes; the limit is %d bytes", len,
                            KILN_WF_MAX_BYTES);
        return KILN_EINVAL;
    }
    int rc = kiln_yaml_parse(&tree, text, len, ctx->diags);
    if (rc == -1)
        ctx->oom = true;
    if (rc != 0)
        return rc;
    s_walk_workflow(ctx, kiln_yaml_root(tree));
    if (ctx->oom) {
        kiln_yaml_destroy(&tree);
        return -1;
    }
    kiln_workflow_t *wf = ctx->wf;
    for (size_t i = 0; i < wf->n_jobs && !ctx->oom; i++) {
        kiln_job_t *job = &wf->jobs[i];
        /* The effective defaults are stored so the executor need not know
         * where they came from. */
        if (!job->shell && wf->shell)
            job->shell = kiln_parse_strdup(ctx, wf->shell);
        if (!job->working_directory && wf->working_directory)
            job->working_directory = kiln_parse_strdup(ctx, wf->working_directory);
        kiln_parse_composite(ctx, job, 0);
        kiln_parse_add_posts(ctx, job);
    }
    /* The tree lives on for the graph's messages: they point at needs. */
    if (!ctx->oom)
        kiln_parse_graph(ctx);
    kiln_yaml_destroy(&tree);
    return ctx->oom ? -1 : 0;
}

void kiln_parse_relay(kiln_parse_t *ctx, const knode_t *at, const char *prefix,
                      const kiln_diags_t *other)
{
    for (size_t i = 0; i < other->n; i++)
        kiln_diags_add(ctx->diags, other->items[i].severity, at ? at->line : 0, at ? at->col : 0,
                       "%s: %s:%d:%d: %s", prefix, other->file ? other->file : "?",
                       other->items[i].line, other->items[i].col, other->items[i].message);
    /* Errors past the other list's bound still count. */
    size_t listed = 0;
    for (size_t i = 0; i < other->n; i++)
        listed += other->items[i].severity == KILN_DIAG_ERROR;
    if (other->n_errors > listed)
        ctx->diags->n_errors += other->n_errors - listed;
}

static void s_free_need_nodes(kiln_parse_t *ctx)
{
    for (size_t i = 0; ctx->need_nodes && ctx->wf && i < ctx->wf->n_jobs; i++)
        free(ctx->need_nodes[i]);
    free(ctx->need_nodes);
    ctx->need_nodes = NULL;
}

int kiln_workflow_parse(kiln_workflow_t **out, const char *file, const char *text, size_t len,
                        const kiln_loader_t *loader, kiln_diags_t *diags)
{
    assert(out && file && diags && (text || len == 0));
    size_t n_called = 0, first_diag = diags->n, errors_before = diags->n_errors;
    kiln_parse_t ctx = {.diags = diags, .loader = loader, .n_called = &n_called};
    int rc = kiln_parse_document(&ctx, file, text ? text : "", len);
    *out = NULL;
    s_free_need_nodes(&ctx);
    if (ctx.oom || rc == -1) {
        kiln_error_set("%s: out of memory while reading the workflow", file);
        kiln_workflow_destroy(&ctx.wf);
        return -1;
    }
    const kiln_diag_t *first = kiln_diags_sort(diags, first_diag);
    if (diags->n_errors > errors_before) {
        if (!first)
            kiln_error_set("%s: invalid workflow", file); /* its text was lost to OOM */
        else if (first->line > 0)
            kiln_error_set("%s:%d:%d: %s", file, first->line, first->col, first->message);
        else
            kiln_error_set("%s: %s", file, first->message);
        kiln_workflow_destroy(&ctx.wf);
        return KILN_EINVAL;
    }
    *out = ctx.wf;
    return 0;
}

/* ---------------------------------------------------------------- loader */

static const char *s_json_read(void *ctx, kiln_load_kind_t kind, const char *path, size_t *len)
{
    (void)kind;
    json_t *v = json_object_get((const json_t *)ctx, path);
    if (!json_is_string(v))
        return NULL;
    *len = json_string_length(v);
    return json_string_value(v);
}

static int s_json_remote(void *ctx, const char *uses, kiln_remote_t *out)
{
    char key[1100];
    snprintf(key, sizeof key, "uses:%s", uses);
    json_t *v = json_object_get((const json_t *)ctx, key);
    memset(out, 0, sizeof *out);
    if (!json_is_object(v)) {
        out->error = "the farm did not resolve it (no action sources reached)";
        return 0;
    }
    json_t *text = json_object_get(v, "text");
    if (json_is_string(text)) {
        out->text = json_string_value(text);
        out->len = json_string_length(text);
        out->url = json_string_value(json_object_get(v, "url"));
        out->sha = json_string_value(json_object_get(v, "sha"));
        out->file = json_string_value(json_object_get(v, "file"));
    }
    if (!out->text || !out->url || !out->sha || !out->file) {
        out->text = NULL;
        out->error = json_string_value(json_object_get(v, "error"));
        if (!out->error)
            out->error = "its resolution is incomplete";
    }
    return 0;
}

void kiln_loader_json(kiln_loader_t *out, const json_t *files, bool remote)
{
    out->read = s_json_read;
    out->remote = remote ? s_json_remote : NULL;
    out->ctx = (void *)files;
}
