/* fuzz_pipeline.c: libFuzzer target for the workflow parser and the run
 * graph.
 *
 * Feeds arbitrary bytes to kiln_workflow_parse. Besides "no crash, no leak,
 * no sanitizer report", it checks what callers rely on: a failed parse has
 * an error diagnostic and a message; a successful one has a topological
 * order that is a permutation with every need before its dependent, and a
 * run graph over it that always ends (its ready jobs run, every other one
 * failing, and nothing is left running or waiting). Seeds:
 * tests/fuzz/corpus/pipeline.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "lang/parse.h"
#include "lang/rungraph.h"

static void s_check_model(const kiln_workflow_t *wf)
{
    size_t n = wf->n_jobs;
    size_t *rank = calloc(n ? n : 1, sizeof *rank);
    if (!rank)
        return;
    for (size_t i = 0; i < n; i++)
        rank[i] = SIZE_MAX;
    for (size_t i = 0; i < n; i++) {
        if (wf->topo[i] >= n || rank[wf->topo[i]] != SIZE_MAX)
            abort(); /* not a permutation */
        rank[wf->topo[i]] = i;
    }
    for (size_t i = 0; i < n; i++) {
        const kiln_job_t *job = &wf->jobs[i];
        if (!job->id || (!job->uses && (!job->runs_on || job->n_steps == 0)))
            abort();
        for (size_t k = 0; k < job->n_needs; k++)
            if (job->need_idx[k] >= n || rank[job->need_idx[k]] >= rank[i])
                abort(); /* a need after its dependent */
        for (size_t s = 0; s < job->n_steps; s++)
            if ((!job->steps[s].run && !job->steps[s].uses) || !job->steps[s].name)
                abort();
    }
    free(rank);
}

/* Runs the whole graph, failing every other job, and checks it ends. */
static void s_check_graph(const kiln_workflow_t *wf)
{
    kiln_contexts_t run = {.run_id = 1, .workflow = "fuzz", .event_name = "push"};
    kiln_rungraph_t *g = NULL;
    kiln_rg_change_t ch[64];
    size_t turn = 0;
    if (kiln_rungraph_new(&g, wf, &run) != 0)
        return;
    /* As the coordinator does: after each finish the changes are taken at
     * once (a fail-fast may end a job that was ready). */
    size_t ready[KILN_RUNGRAPH_MAX_JOBS + 64], n_ready = 0, n;
    for (size_t rounds = 0; rounds <= 4 * KILN_RUNGRAPH_MAX_JOBS; rounds++) {
        while ((n = kiln_rungraph_advance(g, ch, 64)) > 0)
            for (size_t i = 0; i < n; i++)
                if (ch[i].kind == KILN_RG_READY && n_ready < sizeof ready / sizeof ready[0])
                    ready[n_ready++] = ch[i].job;
        size_t j = SIZE_MAX;
        while (n_ready && j == SIZE_MAX) {
            size_t c = ready[--n_ready];
            if (kiln_rungraph_state(g, c) == KILN_JOB_READY)
                j = c;
        }
        if (j == SIZE_MAX)
            break;
        kiln_job_state_t end = turn++ % 2 ? KILN_JOB_FAILURE : KILN_JOB_SUCCESS;
        if (kiln_rungraph_start(g, j) != 0 || kiln_rungraph_finish(g, j, end, NULL, false) != 0)
            abort();
    }
    if (!kiln_rungraph_done(g))
        abort(); /* a run that never ends */
    kiln_rungraph_destroy(&g);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kiln_diags_t diags;
    kiln_workflow_t *wf = NULL;
    kiln_diags_init(&diags, "fuzz.yml");
    kiln_error_clear();
    int rc = kiln_workflow_parse(&wf, "fuzz.yml", (const char *)data, size, NULL, &diags);
    if (rc == 0) {
        if (!wf || diags.n_errors != 0)
            abort();
        s_check_model(wf);
        s_check_graph(wf);
    } else if (rc == KILN_EINVAL) {
        if (wf || diags.n_errors == 0 || kiln_error_last()[0] == '\0')
            abort();
    }
    char *text = kiln_diags_format(&diags);
    free(text);
    kiln_workflow_destroy(&wf);
    kiln_diags_free(&diags);
    return 0;
}
