/* graph.c: a workflow's needs graph, checked once it is parsed.
 *
 * needs are resolved to job indexes (unknown ones reported where they are
 * written), every cycle is named, and a topological order is computed:
 * needs first, otherwise file order, so that equal work keeps the order the
 * user wrote. Jobs are the jobs as written; a matrix job's combinations are
 * the planner's business and share their job's edges.
 */
#include "lang/parse_int.h"

#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int s_job_cmp(const void *a, const void *b)
{
    const kiln_job_t *x = *(const kiln_job_t *const *)a, *y = *(const kiln_job_t *const *)b;
    return strcmp(x->id, y->id);
}

/* Resolves needs to indexes (SIZE_MAX for unknown ones, reported). Ids are
 * looked up in a sorted array: needs lists may be long on hostile input. */
static void s_resolve_needs(kiln_parse_t *ctx)
{
    kiln_workflow_t *wf = ctx->wf;
    kiln_job_t **sorted = malloc((wf->n_jobs ? wf->n_jobs : 1) * sizeof *sorted);
    size_t *seen = calloc(wf->n_jobs ? wf->n_jobs : 1, sizeof *seen);
    if (!sorted || !seen) {
        ctx->oom = true;
        goto cleanup;
    }
    for (size_t i = 0; i < wf->n_jobs; i++)
        sorted[i] = &wf->jobs[i];
    qsort(sorted, wf->n_jobs, sizeof *sorted, s_job_cmp);
    for (size_t i = 0; i < wf->n_jobs; i++) {
        kiln_job_t *job = &wf->jobs[i];
        if (job->n_needs == 0)
            continue;
        job->need_idx = malloc(job->n_needs * sizeof *job->need_idx);
        if (!job->need_idx) {
            ctx->oom = true;
            goto cleanup;
        }
        for (size_t k = 0; k < job->n_needs; k++) {
            kiln_job_t probe = {.id = job->needs[k]}, *pp = &probe;
            kiln_job_t **hit = bsearch(&pp, sorted, wf->n_jobs, sizeof *sorted, s_job_cmp);
            knode_t *at = ctx->need_nodes[i][k];
            job->need_idx[k] = SIZE_MAX;
            if (!hit) {
                kiln_parse_error(ctx, at, "job '%.*s' needs unknown job '%.*s'", s_q(job->id), job->id,
                        s_q(job->needs[k]), job->needs[k]);
                continue;
            }
            size_t idx = (size_t)(*hit - wf->jobs);
            /* seen[] holds i + 1 for needs already listed by job i. */
            if (seen[idx] == i + 1)
                kiln_parse_warn(ctx, at, "job '%.*s' lists '%.*s' more than once in needs", s_q(job->id),
                       job->id, s_q(job->needs[k]), job->needs[k]);
            seen[idx] = i + 1;
            job->need_idx[k] = idx;
        }
    }
cleanup:
    free(sorted);
    free(seen);
}

static void s_report_cycle(kiln_parse_t *ctx, const size_t *cycle, size_t len)
{
    const kiln_workflow_t *wf = ctx->wf;
    char msg[KILN_DIAG_MSG_MAX];
    size_t used;
    /* Start at the job first in the file, so the message does not depend
     * on where the search happened to enter the cycle. */
    size_t first = 0;
    for (size_t i = 1; i < len; i++)
        if (cycle[i] < cycle[first])
            first = i;
    used = (size_t)snprintf(msg, sizeof msg, "cycle in needs:");
    for (size_t i = 0; i <= len && used < sizeof msg; i++) {
        const char *id = wf->jobs[cycle[(first + i) % len]].id;
        int w = snprintf(msg + used, sizeof msg - used, "%s%s", i ? " -> " : " ", id);
        if (w < 0)
            break;
        used += (size_t)w;
    }
    /* Point at the entry of the first job's needs that closes the loop. */
    size_t from = cycle[first], to = cycle[(first + 1) % len];
    const kiln_job_t *job = &wf->jobs[from];
    knode_t *at = NULL;
    for (size_t k = 0; k < job->n_needs && !at; k++)
        if (job->need_idx[k] == to)
            at = ctx->need_nodes[from][k];
    kiln_parse_error(ctx, at, "%s", msg);
}

/* Iterative depth-first search over needs (no recursion: the chain may be
 * as long as KILN_WF_MAX_JOBS); every back edge is one cycle, reported. */
static void s_find_cycles(kiln_parse_t *ctx)
{
    const kiln_workflow_t *wf = ctx->wf;
    size_t n = wf->n_jobs;
    unsigned char *color = calloc(n ? n : 1, 1); /* 0 new, 1 on the path, 2 done */
    size_t *path = malloc((n ? n : 1) * sizeof *path);
    size_t *next = malloc((n ? n : 1) * sizeof *next);   /* next need to follow, per depth */
    size_t *where = malloc((n ? n : 1) * sizeof *where); /* depth of a job on the path */
    if (!color || !path || !next || !where) {
        ctx->oom = true;
        goto cleanup;
    }
    for (size_t root = 0; root < n; root++) {
        if (color[root])
            continue;
        size_t depth = 0;
        path[0] = root;
        next[0] = 0;
        where[root] = 0;
        color[root] = 1;
        depth = 1;
        while (depth > 0) {
            size_t u = path[depth - 1];
            const kiln_job_t *job = &wf->jobs[u];
            if (next[depth - 1] >= job->n_needs) {
                color[u] = 2;
                depth--;
                continue;
            }
            size_t v = job->need_idx[next[depth - 1]++];
            if (v == SIZE_MAX || color[v] == 2)
                continue;
            if (color[v] == 1) {
                s_report_cycle(ctx, path + where[v], depth - where[v]);
                continue;
            }
            color[v] = 1;
            where[v] = depth;
            path[depth] = v;
            next[depth] = 0;
            depth++;
        }
    }
cleanup:
    free(color);
    free(path);
    free(next);
    free(where);
}

/* Kahn's algorithm, always taking the ready job first in the file, so the
 * order is needs-first and otherwise file order. Called only on an acyclic
 * graph with every need resolved. */
static void s_topo(kiln_parse_t *ctx)
{
    kiln_workflow_t *wf = ctx->wf;
    size_t n = wf->n_jobs;
    size_t *indeg = calloc(n ? n : 1, sizeof *indeg);
    size_t *dep_start = calloc(n + 1, sizeof *dep_start);
    size_t *deps = NULL, *fill = NULL, n_edges = 0;
    bool *placed = calloc(n ? n : 1, sizeof *placed);
    wf->topo = malloc((n ? n : 1) * sizeof *wf->topo);
    if (!indeg || !dep_start || !placed || !wf->topo) {
        ctx->oom = true;
        goto cleanup;
    }
    for (size_t i = 0; i < n; i++) {
        indeg[i] = wf->jobs[i].n_needs;
        for (size_t k = 0; k < wf->jobs[i].n_needs; k++)
            dep_start[wf->jobs[i].need_idx[k] + 1]++;
        n_edges += wf->jobs[i].n_needs;
    }
    for (size_t i = 0; i < n; i++)
        dep_start[i + 1] += dep_start[i];
    deps = malloc((n_edges ? n_edges : 1) * sizeof *deps);
    fill = calloc(n ? n : 1, sizeof *fill);
    if (!deps || !fill) {
        ctx->oom = true;
        goto cleanup;
    }
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < wf->jobs[i].n_needs; k++) {
            size_t need = wf->jobs[i].need_idx[k];
            deps[dep_start[need] + fill[need]++] = i;
        }
    for (size_t out = 0; out < n; out++) {
        size_t pick = SIZE_MAX;
        for (size_t i = 0; i < n && pick == SIZE_MAX; i++)
            if (!placed[i] && indeg[i] == 0)
                pick = i;
        assert(pick != SIZE_MAX); /* cycles were refused before */
        if (pick == SIZE_MAX)
            break;
        placed[pick] = true;
        wf->topo[out] = pick;
        for (size_t e = dep_start[pick]; e < dep_start[pick + 1]; e++)
            indeg[deps[e]]--;
    }
cleanup:
    free(indeg);
    free(dep_start);
    free(deps);
    free(fill);
    free(placed);
}

void kiln_parse_graph(kiln_parse_t *ctx)
{
    size_t errors_before = ctx->diags->n_errors;
    s_resolve_needs(ctx);
    if (!ctx->oom)
        s_find_cycles(ctx);
    if (!ctx->oom && ctx->diags->n_errors == errors_before)
        s_topo(ctx);
}
