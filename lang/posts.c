/* posts.c: the steps GitHub's runner adds at a job's two ends (see
 * kiln_parse_add_posts in parse_int.h): JavaScript and Docker actions' pre
 * and post phases and actions/cache's save. They are steps of their own in the
 * plan, so each has its result, its log and its if:, like any other. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lang/parse_int.h"

/* A JavaScript action's main step with a pre or post script: a pre only
 * for one the job uses itself, a post also for one used inside composite
 * actions (as GitHub's runner runs their posts at the job's end). */
static const char *s_js_phase(const kiln_step_t *st, const char *phase)
{
    if (!st->builtin || (strcmp(st->builtin, "node") != 0 && strcmp(st->builtin, "docker") != 0) ||
        !st->js_action ||
        (st->action_inputs && strcmp(phase, "pre") == 0))
        return NULL;
    const char *own = json_string_value(json_object_get(st->js_action, "phase"));
    if (!own || strcmp(own, "main") != 0)
        return NULL;
    const char *script = json_string_value(json_object_get(st->js_action, phase));
    return script && script[0] ? script : NULL;
}

/* Whether step i follows its remote action's download (the step that puts
 * the action's files on the worker). */
static bool s_downloads(const kiln_job_t *job, size_t i)
{
    return i > 0 && job->steps[i - 1].builtin && strcmp(job->steps[i - 1].builtin, "action") == 0;
}

/* A copy of a JavaScript action's step for its pre or post phase: the same
 * inputs, env and action, its own name, if: and script; state is the main
 * step's index, which the three phases share. */
static bool s_js_phase_step(kiln_parse_t *ctx, const kiln_step_t *main, const char *phase,
                            size_t state, kiln_step_t *out)
{
    char name[KILN_PARSE_WHO_MAX + 16], idx[32];
    const char *title = main->name ? main->name : main->uses ? main->uses : "action";
    snprintf(name, sizeof name, "%s %s", strcmp(phase, "pre") == 0 ? "Pre" : "Post", title);
    snprintf(idx, sizeof idx, "%zu", state);
    const char *cond = json_string_value(
        json_object_get(main->js_action, strcmp(phase, "pre") == 0 ? "pre_if" : "post_if"));
    memset(out, 0, sizeof *out);
    out->name = kiln_parse_strdup(ctx, name);
    out->builtin = main->builtin;
    out->if_expr = kiln_parse_strdup(ctx, cond && cond[0] ? cond : "always()");
    /* A nested action's inputs are templates of its composite's inputs,
     * which the job's end does not have: its post takes the values its
     * main step had (the worker keeps them), as every post does. */
    out->with = main->action_inputs ? json_object() : json_deep_copy(main->with);
    out->action_path = main->action_path ? kiln_parse_strdup(ctx, main->action_path) : NULL;
    out->js_action = json_deep_copy(main->js_action);
    out->timeout = json_incref(main->timeout);
    out->line = main->line;
    out->col = main->col;
    if (out->js_action) {
        json_object_set_new(out->js_action, "phase", json_string(phase));
        json_object_set(out->js_action, "script", json_object_get(out->js_action, phase));
        json_object_set_new(out->js_action, "state", json_string(idx));
    }
    if (main->env.n && (out->env.items = calloc(main->env.n, sizeof *out->env.items))) {
        for (size_t k = 0; k < main->env.n; k++) {
            out->env.items[k].key = kiln_parse_strdup(ctx, main->env.items[k].key);
            out->env.items[k].value = kiln_parse_strdup(ctx, main->env.items[k].value);
        }
        out->env.n = main->env.n;
    }
    if (!out->name || !out->if_expr || !out->with || !out->js_action ||
        (main->env.n && !out->env.items)) {
        ctx->oom = true;
        return false;
    }
    return true;
}

/* Every JavaScript action's step knows its instance (its main step's
 * index), for its state (GITHUB_STATE) also without a pre or post. */
static void s_js_instances(kiln_job_t *job)
{
    for (size_t i = 0; i < job->n_steps; i++) {
        kiln_step_t *st = &job->steps[i];
        if (st->builtin && (strcmp(st->builtin, "node") == 0 || strcmp(st->builtin, "docker") == 0) &&
            st->js_action &&
            !json_object_get(st->js_action, "state"))
            json_object_set_new(st->js_action, "state", json_sprintf("%zu", i));
    }
}

/* Steps that run at the job's ends, as GitHub's runner adds them: each
 * JavaScript action's pre script before the first step, in order; after
 * the last, in reverse order of their steps, each JavaScript action's post
 * script and, for each actions/cache step, the built-in save that reads
 * what its step found (the state it left under the step's index) and
 * saves when the job went well. */
void kiln_parse_add_posts(kiln_parse_t *ctx, kiln_job_t *job)
{
    size_t n_pres = 0, n_posts = 0;
    for (size_t i = 0; i < job->n_steps; i++) {
        const kiln_step_t *st = &job->steps[i];
        const char *pre = st->js_action && st->action_inputs
                              ? json_string_value(json_object_get(st->js_action, "pre"))
                              : NULL;
        if (pre && pre[0])
            kiln_diags_add(ctx->diags, KILN_DIAG_WARNING, st->line, st->col,
                           "`pre` of '%s' is not run: it is used inside a composite action, "
                           "where GitHub's runner runs no pre either",
                           json_string_value(json_object_get(st->js_action, "uses")));
        /* A remote action's pre needs its files first: its download too. */
        n_pres += s_js_phase(&job->steps[i], "pre") ? 1 + s_downloads(job, i) : 0;
        n_posts += (job->steps[i].builtin && strcmp(job->steps[i].builtin, "cache") == 0) ||
                   s_js_phase(&job->steps[i], "post");
    }
    if (!n_posts && !n_pres) {
        s_js_instances(job);
        return;
    }
    if (job->n_steps + n_pres + n_posts > KILN_WF_MAX_STEPS) {
        kiln_parse_error_at(ctx, job->steps[0].line, job->steps[0].col,
                            "job '%s' has more than %d steps with its pre and post steps", job->id,
                            KILN_WF_MAX_STEPS);
        return;
    }
    kiln_step_t *grown = realloc(job->steps, (job->n_steps + n_pres + n_posts) * sizeof *grown);
    if (!grown) {
        ctx->oom = true;
        return;
    }
    job->steps = grown;
    if (n_pres) {
        memmove(job->steps + n_pres, job->steps, job->n_steps * sizeof *job->steps);
        job->n_steps += n_pres;
        size_t at = 0;
        for (size_t i = n_pres; i < job->n_steps && !ctx->oom; i++)
            if (s_js_phase(&job->steps[i], "pre")) {
                json_object_set_new(job->steps[i].js_action, "state", json_sprintf("%zu", i));
                if (s_downloads(job, i)) {
                    const kiln_step_t *d = &job->steps[i - 1];
                    kiln_step_t *c = &job->steps[at++];
                    memset(c, 0, sizeof *c);
                    c->name = kiln_parse_strdup(ctx, d->name);
                    c->builtin = d->builtin;
                    c->with = json_deep_copy(d->with);
                    c->line = d->line;
                    c->col = d->col;
                    if (!c->with)
                        ctx->oom = true;
                }
                s_js_phase_step(ctx, &job->steps[i], "pre", i, &job->steps[at++]);
            }
    }
    size_t n = job->n_steps;
    for (size_t i = n; i-- > 0 && !ctx->oom;) {
        kiln_step_t *st = &job->steps[i];
        if (s_js_phase(st, "post")) {
            json_object_set_new(st->js_action, "state", json_sprintf("%zu", i));
            s_js_phase_step(ctx, st, "post", i, &job->steps[job->n_steps++]);
            continue;
        }
        if (!st->builtin || strcmp(st->builtin, "cache") != 0)
            continue;
        kiln_step_t *post = &job->steps[job->n_steps++];
        memset(post, 0, sizeof *post);
        char name[KILN_PARSE_WHO_MAX + 16], state[32];
        snprintf(name, sizeof name, "Post %s", st->name ? st->name : st->uses);
        snprintf(state, sizeof state, "%zu", i);
        post->name = kiln_parse_strdup(ctx, name);
        post->builtin = "cache-post";
        post->if_expr = kiln_parse_strdup(ctx, "success()");
        post->with = json_pack("{s:s}", "state", state);
        post->line = st->line;
        post->col = st->col;
        if (!post->with)
            ctx->oom = true;
    }
    s_js_instances(job);
}
