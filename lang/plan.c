/* plan.c: planned jobs from the model (see plan.h). */
#include "lang/plan.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/error.h"
#include "lang/expr.h"

__attribute__((format(printf, 4, 5))) static int s_fail(char *err, size_t errlen, int code,
                                                        const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    kiln_error_set("%s", err);
    return code;
}

json_t *kiln_plan_value(const json_t *value, const json_t *ctx, char *err, size_t errlen)
{
    kiln_expr_env_t env = {(json_t *)ctx, KILN_EXPR_SUCCESS, NULL, NULL};
    if (json_is_string(value)) {
        if (!kiln_is_template(json_string_value(value)))
            return json_incref((json_t *)value);
        json_t *out = NULL;
        if (kiln_expr_value(json_string_value(value), &env, &out, err, errlen) != 0)
            return NULL;
        return out;
    }
    if (json_is_array(value)) {
        json_t *out = json_array();
        size_t i;
        json_t *e;
        json_array_foreach(value, i, e) {
            json_t *v = out ? kiln_plan_value(e, ctx, err, errlen) : NULL;
            if (!v || json_array_append_new(out, v) != 0) {
                json_decref(out);
                return NULL;
            }
        }
        return out;
    }
    if (json_is_object(value)) {
        json_t *out = json_object();
        const char *k;
        json_t *e;
        json_object_foreach((json_t *)value, k, e) {
            json_t *v = out ? kiln_plan_value(e, ctx, err, errlen) : NULL;
            if (!v || json_object_set_new(out, k, v) != 0) {
                json_decref(out);
                return NULL;
            }
        }
        return out;
    }
    return json_incref((json_t *)value);
}

/* A value that should be a boolean: booleans as they are, "true"/"false"
 * strings (what an interpolated template gives), otherwise its truthiness. */
static bool s_as_bool(const json_t *v)
{
    const char *s = json_string_value(v);
    if (s && strcmp(s, "false") == 0)
        return false;
    return kiln_expr_truthy(v);
}

/* A value that should be a number: numbers, or strings that read as one. */
static bool s_as_number(const json_t *v, double *out)
{
    if (json_is_number(v)) {
        *out = json_number_value(v);
        return true;
    }
    const char *s = json_string_value(v);
    char *end = NULL;
    if (!s || !*s)
        return false;
    *out = strtod(s, &end);
    return end && *end == '\0' && isfinite(*out);
}

/* A field's value, evaluated: def when the field is absent. */
static int s_field(const json_t *value, const json_t *ctx, const char *job, const char *field,
                   json_t **out, char *err, size_t errlen)
{
    char inner[KILN_PLAN_ERR_MAX];
    *out = NULL;
    if (!value)
        return 0;
    *out = kiln_plan_value(value, ctx, inner, sizeof inner);
    if (!*out)
        return s_fail(err, errlen, KILN_EINVAL, "job '%s': %s: %s", job, field, inner);
    return 0;
}

void kiln_strategy_clear(kiln_strategy_t *self)
{
    kiln_matrix_free(&self->matrix);
    memset(self, 0, sizeof *self);
}

int kiln_plan_strategy(const kiln_job_t *spec, const json_t *ctx, kiln_strategy_t *out,
                       char *err, size_t errlen)
{
    json_t *m = NULL, *v = NULL;
    int rc = KILN_EINVAL;
    memset(out, 0, sizeof *out);
    out->fail_fast = true;
    if (s_field(spec->fail_fast, ctx, spec->id, "strategy.fail-fast", &v, err, errlen) != 0)
        goto cleanup;
    if (v)
        out->fail_fast = s_as_bool(v);
    json_decref(v);
    v = NULL;
    if (s_field(spec->max_parallel, ctx, spec->id, "strategy.max-parallel", &v, err, errlen) != 0)
        goto cleanup;
    if (v) {
        double n = 0;
        if (!s_as_number(v, &n) || n < 1 || n > 256 || n != (double)(long long)n) {
            char *shown = kiln_expr_string(v);
            s_fail(err, errlen, KILN_EINVAL,
                   "job '%s': strategy.max-parallel must be a whole number from 1 to 256, not "
                   "'%s'",
                   spec->id, shown ? shown : "?");
            free(shown);
            goto cleanup;
        }
        out->max_parallel = (unsigned)n;
    }
    if (!spec->matrix) {
        rc = 0;
        goto cleanup;
    }
    if (s_field(spec->matrix, ctx, spec->id, "strategy.matrix", &m, err, errlen) != 0)
        goto cleanup;
    if (json_is_string(m)) {
        /* An expression that gave JSON text rather than fromJSON's object. */
        json_t *parsed = json_loads(json_string_value(m), 0, NULL);
        if (parsed) {
            json_decref(m);
            m = parsed;
        }
    }
    if (!json_is_object(m)) {
        s_fail(err, errlen, KILN_EINVAL,
               "job '%s': strategy.matrix must give a mapping of lists, not %s", spec->id,
               json_is_null(m)    ? "null"
               : json_is_array(m) ? "a list"
                                  : "a single value");
        goto cleanup;
    }
    char inner[KILN_PLAN_ERR_MAX];
    rc = kiln_matrix_expand(&out->matrix, m, spec->id, inner, sizeof inner);
    if (rc != 0) {
        s_fail(err, errlen, rc, "job '%s': strategy.matrix: %s", spec->id, inner);
        goto cleanup;
    }
    out->has_matrix = true;
    rc = 0;
cleanup:
    json_decref(m);
    json_decref(v);
    if (rc != 0)
        kiln_strategy_clear(out);
    return rc;
}

static char *s_join(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 1;
    char *out = malloc(n);
    if (out)
        snprintf(out, n, "%s%s", a, b);
    return out;
}

/* The display name: a template evaluated with ctx (on failure as written),
 * else the matrix combination's values after the job's name. */
static char *s_name(const kiln_job_t *spec, const json_t *combo, const json_t *ctx)
{
    const char *base = spec->name && spec->name[0] ? spec->name : spec->id;
    if (kiln_is_template(base)) {
        char *text = NULL, err[256];
        /* The job's contexts with this combination as its matrix. */
        json_t *own = ctx ? json_copy((json_t *)ctx) : NULL;
        if (own && combo)
            json_object_set(own, "matrix", (json_t *)combo);
        kiln_expr_env_t env = {own, KILN_EXPR_SUCCESS, NULL, NULL};
        int rc = own ? kiln_expr_interpolate(base, &env, &text, err, sizeof err) : -1;
        json_decref(own);
        if (rc == 0)
            return text;
        return strdup(base);
    }
    return combo ? kiln_matrix_name(base, combo) : strdup(base);
}

kiln_plan_job_t *kiln_plan_job_new(const kiln_job_t *spec, const kiln_strategy_t *strategy,
                                   size_t index, const char *prefix, const char *name_prefix,
                                   const json_t *ctx)
{
    kiln_plan_job_t *job = calloc(1, sizeof *job);
    char *id = NULL, *name = NULL;
    if (!job)
        return NULL;
    const json_t *combo = NULL;
    if (strategy && strategy->has_matrix) {
        combo = strategy->matrix.combos[index];
        job->matrix = json_incref((json_t *)combo);
        job->index = index;
        job->total = strategy->matrix.n;
        id = kiln_matrix_id(spec->id, index);
    } else {
        job->total = 1;
        id = strdup(spec->id);
    }
    name = s_name(spec, combo, ctx);
    if (!id || !name)
        goto oom;
    job->id = s_join(prefix ? prefix : "", id);
    /* Most jobs are named by their id: the two share one string. */
    job->name = job->id && strcmp(id, name) == 0 && strcmp(prefix ? prefix : "", "") == 0 &&
                        strcmp(name_prefix ? name_prefix : "", "") == 0
                    ? job->id
                    : s_join(name_prefix ? name_prefix : "", name);
    if (!job->id || !job->name)
        goto oom;
    job->timeout_ms = KILN_WF_DEFAULT_JOB_TIMEOUT_MS;
    free(id);
    free(name);
    return job;
oom:
    free(id);
    free(name);
    kiln_plan_job_destroy(&job);
    return NULL;
}

static void s_labels_free(kiln_plan_job_t *job)
{
    free(job->labels); /* one block with its strings */
    job->labels = NULL;
    job->n_labels = 0;
}

void kiln_plan_job_destroy(kiln_plan_job_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    kiln_plan_job_t *job = *self_p;
    if (job->name != job->id)
        free(job->name);
    free(job->id);
    json_decref(job->matrix);
    s_labels_free(job);
    free(job->group);
    for (size_t i = 0; i < job->env.n; i++) {
        free(job->env.items[i].key);
        free(job->env.items[i].value);
    }
    free(job->env.items);
    free(job);
    *self_p = NULL;
}

/* Labels from an evaluated runs-on: a label, a list, or {group, labels}
 * (a group is a label the farm's workers of that group carry). */
static int s_labels(const json_t *v, char ***out, size_t *n, const char *job, char *err,
                    size_t errlen)
{
    const json_t *list[2] = {NULL, NULL};
    size_t total = 0;
    if (json_is_object(v)) {
        list[0] = json_object_get(v, "group");
        list[1] = json_object_get(v, "labels");
    } else {
        list[0] = v;
    }
    /* One block: the pointers, then the strings (a job's labels are a
     * handful of short words; 100,000 queued jobs made one allocation each
     * worth saving). */
    size_t bytes = 0;
    for (int l = 0; l < 2; l++) {
        const json_t *x = list[l];
        size_t count = json_is_array(x) ? json_array_size(x) : x ? 1 : 0;
        for (size_t i = 0; i < count; i++) {
            const json_t *e = json_is_array(x) ? json_array_get(x, i) : x;
            const char *str = json_string_value(e);
            if (!str || !*str)
                return s_fail(err, errlen, KILN_EINVAL,
                              "job '%s': runs-on must give a label or a list of labels", job);
            if (++total > KILN_PLAN_MAX_LABELS)
                return s_fail(err, errlen, KILN_EINVAL, "job '%s': runs-on has more than %d labels",
                              job, KILN_PLAN_MAX_LABELS);
            bytes += strlen(str) + 1;
        }
    }
    if (total == 0)
        return s_fail(err, errlen, KILN_EINVAL, "job '%s': runs-on gives no label", job);
    char **labels = malloc(total * sizeof *labels + bytes);
    if (!labels)
        return s_fail(err, errlen, -1, "out of memory");
    char *at = (char *)(labels + total);
    size_t k = 0;
    for (int l = 0; l < 2; l++) {
        const json_t *x = list[l];
        size_t count = json_is_array(x) ? json_array_size(x) : x ? 1 : 0;
        for (size_t i = 0; i < count; i++) {
            const char *str = json_string_value(json_is_array(x) ? json_array_get(x, i) : x);
            size_t len = strlen(str) + 1;
            memcpy(at, str, len);
            labels[k++] = at;
            at += len;
        }
    }
    *out = labels;
    *n = total;
    return 0;
}

static int s_env_add(kiln_env_t *env, size_t *cap, const char *key, const char *value)
{
    for (size_t i = 0; i < env->n; i++) {
        if (strcmp(env->items[i].key, key) == 0) {
            char *v = strdup(value);
            if (!v)
                return -1;
            free(env->items[i].value);
            env->items[i].value = v;
            return 0;
        }
    }
    if (env->n == *cap) {
        size_t ncap = *cap ? *cap * 2 : 8;
        kiln_env_var_t *grown = realloc(env->items, ncap * sizeof *grown);
        if (!grown)
            return -1;
        env->items = grown;
        *cap = ncap;
    }
    env->items[env->n].key = strdup(key);
    env->items[env->n].value = strdup(value);
    if (!env->items[env->n].key || !env->items[env->n].value) {
        free(env->items[env->n].key);
        free(env->items[env->n].value);
        return -1;
    }
    env->n++;
    return 0;
}

/* env entries (templates) evaluated into out, later names replacing earlier. */
static int s_env_eval(const kiln_env_t *src, const json_t *ctx, kiln_env_t *out, size_t *cap,
                      const char *job, const char *who, char *err, size_t errlen)
{
    kiln_expr_env_t env = {(json_t *)ctx, KILN_EXPR_SUCCESS, NULL, NULL};
    for (size_t i = 0; i < src->n; i++) {
        char *v = NULL, inner[KILN_PLAN_ERR_MAX];
        if (!kiln_is_template(src->items[i].value)) {
            if (s_env_add(out, cap, src->items[i].key, src->items[i].value) != 0)
                return s_fail(err, errlen, -1, "out of memory");
            continue;
        }
        if (kiln_expr_interpolate(src->items[i].value, &env, &v, inner, sizeof inner) != 0)
            return s_fail(err, errlen, KILN_EINVAL, "job '%s': %s env %s: %s", job, who,
                          src->items[i].key, inner);
        int rc = s_env_add(out, cap, src->items[i].key, v);
        free(v);
        if (rc != 0)
            return s_fail(err, errlen, -1, "out of memory");
    }
    return 0;
}

/* A job's concurrency group and cancel-in-progress, evaluated. */
static int s_group(const kiln_job_t *spec, const json_t *ctx, char **group, bool *cancel,
                   char *err, size_t errlen)
{
    kiln_expr_env_t env = {(json_t *)ctx, KILN_EXPR_SUCCESS, NULL, NULL};
    char inner[KILN_PLAN_ERR_MAX];
    json_t *v = NULL;
    *group = NULL;
    *cancel = false;
    if (!spec->concurrency_group)
        return 0;
    if (kiln_expr_interpolate(spec->concurrency_group, &env, group, inner, sizeof inner) != 0)
        return s_fail(err, errlen, KILN_EINVAL, "job '%s': concurrency: %s", spec->id, inner);
    if (s_field(spec->cancel_in_progress, ctx, spec->id, "concurrency.cancel-in-progress", &v,
                err, errlen) != 0) {
        free(*group);
        *group = NULL;
        return KILN_EINVAL;
    }
    *cancel = v && s_as_bool(v);
    json_decref(v);
    return 0;
}

int kiln_plan_group(kiln_plan_job_t *job, const kiln_job_t *spec, const json_t *ctx, char *err,
                    size_t errlen)
{
    char *group = NULL;
    bool cancel = false;
    int rc = s_group(spec, ctx, &group, &cancel, err, errlen);
    if (rc != 0)
        return rc;
    free(job->group);
    job->group = group;
    job->cancel_in_progress = cancel;
    return 0;
}

int kiln_plan_finish(kiln_plan_job_t *job, const kiln_workflow_t *wf, const kiln_job_t *spec,
                     const json_t *ctx, const char *name_prefix, char *err, size_t errlen)
{
    kiln_plan_job_t next = {0};
    json_t *v = NULL;
    size_t env_cap = 0;
    int rc = KILN_EINVAL;
    kiln_expr_env_t env = {(json_t *)ctx, KILN_EXPR_SUCCESS, NULL, NULL};
    char inner[KILN_PLAN_ERR_MAX];
    if (spec->unsupported) {
        s_fail(err, errlen, KILN_EINVAL, "job '%s': %s", spec->id, spec->unsupported);
        goto cleanup;
    }
    const char *base = spec->name && spec->name[0] ? spec->name : NULL;
    if (kiln_is_template(base)) {
        char *text = NULL;
        if (kiln_expr_interpolate(base, &env, &text, inner, sizeof inner) != 0) {
            s_fail(err, errlen, KILN_EINVAL, "job '%s': name: %s", spec->id, inner);
            goto cleanup;
        }
        next.name = s_join(name_prefix ? name_prefix : "", text);
        free(text);
        if (!next.name)
            goto oom;
    }
    if (s_field(spec->runs_on, ctx, spec->id, "runs-on", &v, err, errlen) != 0)
        goto cleanup;
    if (v && s_labels(v, &next.labels, &next.n_labels, spec->id, err, errlen) != 0)
        goto cleanup;
    for (size_t i = 0; i < next.n_labels; i++) {
        if (strncasecmp(next.labels[i], "windows", 7) == 0 ||
            strncasecmp(next.labels[i], "macos", 5) == 0) {
            s_fail(err, errlen, KILN_EINVAL,
                   "job '%s': runs-on '%s': this farm runs Linux workers only, so the job "
                   "cannot run",
                   spec->id, next.labels[i]);
            goto cleanup;
        }
    }
    json_decref(v);
    v = NULL;
    next.timeout_ms = KILN_WF_DEFAULT_JOB_TIMEOUT_MS;
    if (s_field(spec->timeout, ctx, spec->id, "timeout-minutes", &v, err, errlen) != 0)
        goto cleanup;
    if (v) {
        double minutes = 0;
        if (!s_as_number(v, &minutes) || !(minutes > 0) || minutes > KILN_WF_MAX_TIMEOUT_MIN) {
            char *shown = kiln_expr_string(v);
            s_fail(err, errlen, KILN_EINVAL,
                   "job '%s': timeout-minutes must be a number of minutes greater than 0 and "
                   "at most a year, not '%s'",
                   spec->id, shown ? shown : "?");
            free(shown);
            goto cleanup;
        }
        int64_t ms = (int64_t)(minutes * 60000.0 + 0.5);
        next.timeout_ms = ms > 0 ? ms : 1;
    }
    json_decref(v);
    v = NULL;
    if (s_field(spec->continue_on_error, ctx, spec->id, "continue-on-error", &v, err, errlen) !=
        0)
        goto cleanup;
    next.continue_on_error = v && s_as_bool(v);
    json_decref(v);
    v = NULL;
    if (s_group(spec, ctx, &next.group, &next.cancel_in_progress, err, errlen) != 0)
        goto cleanup;
    /* The workflow's env, then the job's: the job's values win. */
    if (s_env_eval(&wf->env, ctx, &next.env, &env_cap, spec->id, "workflow", err, errlen) != 0 ||
        s_env_eval(&spec->env, ctx, &next.env, &env_cap, spec->id, "job", err, errlen) != 0)
        goto cleanup;
    if (spec->env_expr) {
        if (kiln_expr_value(spec->env_expr, &env, &v, inner, sizeof inner) != 0) {
            s_fail(err, errlen, KILN_EINVAL, "job '%s': env: %s", spec->id, inner);
            goto cleanup;
        }
        if (json_is_string(v)) {
            json_t *parsed = json_loads(json_string_value(v), 0, NULL);
            json_decref(v);
            v = parsed;
        }
        if (!json_is_object(v) && !json_is_null(v)) {
            s_fail(err, errlen, KILN_EINVAL, "job '%s': env must give a mapping of names to values",
                   spec->id);
            goto cleanup;
        }
        const char *k;
        json_t *e;
        json_object_foreach(v, k, e) {
            char *s = json_is_null(e) ? strdup("") : kiln_expr_string(e);
            int arc = s ? s_env_add(&next.env, &env_cap, k, s) : -1;
            free(s);
            if (arc != 0)
                goto oom;
        }
        json_decref(v);
        v = NULL;
    }
    /* Everything evaluated: it replaces what the job had. */
    if (next.name) {
        if (job->name != job->id)
            free(job->name);
        job->name = next.name;
        next.name = NULL;
    }
    s_labels_free(job);
    job->labels = next.labels;
    job->n_labels = next.n_labels;
    next.labels = NULL;
    next.n_labels = 0;
    job->timeout_ms = next.timeout_ms;
    job->continue_on_error = next.continue_on_error;
    free(job->group);
    job->group = next.group;
    next.group = NULL;
    job->cancel_in_progress = next.cancel_in_progress;
    for (size_t i = 0; i < job->env.n; i++) {
        free(job->env.items[i].key);
        free(job->env.items[i].value);
    }
    free(job->env.items);
    job->env = next.env;
    next.env.items = NULL;
    next.env.n = 0;
    job->finished = true;
    rc = 0;
    goto cleanup;
oom:
    s_fail(err, errlen, -1, "out of memory");
    rc = -1;
cleanup:
    json_decref(v);
    free(next.name);
    s_labels_free(&next);
    free(next.group);
    for (size_t i = 0; i < next.env.n; i++) {
        free(next.env.items[i].key);
        free(next.env.items[i].value);
    }
    free(next.env.items);
    return rc;
}
