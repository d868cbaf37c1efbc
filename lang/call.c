/* call.c: reusable workflows (`jobs.<id>.uses: ./.github/workflows/x.yml`,
 * or OWNER/REPO/.github/workflows/x.yml@REF from the farm's action sources).
 *
 * The called workflow comes through the host's loader and is parsed like
 * any workflow, with a context of its own whose problems are reported at the
 * calling job's uses: line. It must declare on: workflow_call; the caller's
 * with: may name only inputs it declares and must give every required one
 * that has no default. Calls nest up to KILN_WF_MAX_CALL_DEPTH levels and a
 * run brings at most KILN_WF_MAX_CALLED workflows, as on GitHub. What the
 * inputs' values are is known only when the run is planned (plan.c).
 */
#include "lang/parse_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool s_ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static void s_check_with(kiln_parse_t *ctx, const kiln_job_t *job, const knode_t *at,
                         const char *who)
{
    const kiln_workflow_t *callee = job->callee;
    const char *name;
    json_t *v, *spec;
    json_object_foreach(job->with, name, v) {
        if (!json_object_get(callee->call_inputs, name))
            kiln_parse_error(ctx, at, "%s gives input '%.*s', which %s does not declare under "
                             "on.workflow_call.inputs",
                             who, s_q(name), name, job->uses);
    }
    json_object_foreach(callee->call_inputs, name, spec) {
        json_t *dflt = json_object_get(spec, "default");
        if (json_is_true(json_object_get(spec, "required")) && (!dflt || json_is_null(dflt)) &&
            !json_object_get(job->with, name))
            kiln_parse_error(ctx, at, "%s does not give input '%.*s', which %s requires", who,
                             s_q(name), name, job->uses);
    }
}

void kiln_parse_call(kiln_parse_t *ctx, kiln_job_t *job, const knode_t *uses_node)
{
    char who[KILN_PARSE_WHO_MAX];
    snprintf(who, sizeof who, "job '%.*s'", s_q(job->id), job->id);
    const char *uses = job->uses;
    char *path = NULL;
    const char *text = NULL;
    size_t len = 0;
    kiln_uses_ref_t ref;
    kiln_remote_t rm = {0};
    bool remote = strncmp(uses, "./", 2) != 0;
    if (remote) {
        size_t n = 0;
        if (kiln_uses_remote(uses, &ref) != 0 || (n = strlen(ref.path)) == 0 ||
            strncmp(ref.path, ".github/workflows/", 18) != 0 ||
            !(s_ends_with(ref.path, ".yml") || s_ends_with(ref.path, ".yaml"))) {
            kiln_parse_error(ctx, uses_node,
                             "%s uses '%.*s': a reusable workflow is ./.github/workflows/X.yml "
                             "or OWNER/REPO/.github/workflows/X.yml@REF",
                             who, s_q(uses), uses);
            return;
        }
        /* The host that holds the action sources checks it (see parse.h);
         * a model made without them never runs the call. */
        if (!ctx->loader || !ctx->loader->remote) {
            char why[KILN_PARSE_WHO_MAX + 160];
            snprintf(why, sizeof why,
                     "it calls '%.*s', which only a coordinator with action sources resolves",
                     s_q(uses), uses);
            job->unsupported = kiln_parse_strdup(ctx, why);
            return;
        }
        if (ctx->loader->remote(ctx->loader->ctx, uses, &rm) != 0 || !rm.text) {
            kiln_parse_error(ctx, uses_node, "%s uses '%.*s': %s", who, s_q(uses), uses,
                             rm.error ? rm.error : "it cannot be resolved");
            return;
        }
        size_t cap = strlen(uses) + 64;
        if (!(path = malloc(cap))) {
            ctx->oom = true;
            return;
        }
        snprintf(path, cap, "%s/%s@%.12s:%s", ref.owner, ref.repo, rm.sha, ref.path);
        text = rm.text;
        len = rm.len;
    } else {
        path = kiln_workflow_local_path(uses);
        if (!path || strncmp(path, ".github/workflows/", 18) != 0 ||
            !(s_ends_with(path, ".yml") || s_ends_with(path, ".yaml"))) {
            kiln_parse_error(ctx, uses_node,
                             "%s uses '%.*s': a reusable workflow is a .yml or .yaml file under "
                             "./.github/workflows/",
                             who, s_q(uses), uses);
            free(path);
            return;
        }
    }
    if (ctx->call_depth >= KILN_WF_MAX_CALL_DEPTH) {
        kiln_parse_error(ctx, uses_node, "%s: reusable workflows nest deeper than %d levels", who,
                         KILN_WF_MAX_CALL_DEPTH);
        free(path);
        return;
    }
    if (++*ctx->n_called > KILN_WF_MAX_CALLED) {
        kiln_parse_error(ctx, uses_node, "%s: the run calls more than %d reusable workflows", who,
                         KILN_WF_MAX_CALLED);
        free(path);
        return;
    }
    if (!remote)
        text = ctx->loader ? ctx->loader->read(ctx->loader->ctx, KILN_LOAD_WORKFLOW, path, &len)
                           : NULL;
    if (!text) {
        kiln_parse_error(ctx, uses_node, "%s uses '%.*s': the repository has no such file", who,
                         s_q(uses), uses);
        free(path);
        return;
    }
    kiln_diags_t cdiags;
    kiln_diags_init(&cdiags, path);
    kiln_parse_t sub = {.diags = &cdiags,
                        .loader = ctx->loader,
                        .call_depth = ctx->call_depth + 1,
                        .n_called = ctx->n_called};
    int rc = kiln_parse_document(&sub, path, text, len);
    for (size_t i = 0; sub.need_nodes && sub.wf && i < sub.wf->n_jobs; i++)
        free(sub.need_nodes[i]);
    free(sub.need_nodes);
    if (rc == -1 || sub.oom)
        ctx->oom = true;
    char prefix[KILN_PARSE_WHO_MAX + KILN_YAML_QUOTE_MAX + 16];
    snprintf(prefix, sizeof prefix, "%s calls '%.*s'", who, s_q(uses), uses);
    kiln_diags_sort(&cdiags, 0);
    kiln_parse_relay(ctx, uses_node, prefix, &cdiags);
    if (cdiags.n_errors == 0 && rc == 0 && sub.wf) {
        if (!sub.wf->callable) {
            kiln_parse_error(ctx, uses_node,
                             "%s uses '%.*s', which is not a reusable workflow (its on: has no "
                             "workflow_call)",
                             who, s_q(uses), uses);
        } else {
            job->callee = sub.wf;
            sub.wf = NULL;
            s_check_with(ctx, job, uses_node, who);
        }
    }
    kiln_workflow_destroy(&sub.wf);
    kiln_diags_free(&cdiags);
    free(path);
}
