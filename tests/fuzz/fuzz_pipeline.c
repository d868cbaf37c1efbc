/* fuzz_pipeline.c: libFuzzer target for the workflow parser.
 *
 * Feeds arbitrary bytes to kiln_pipeline_parse. Besides "no crash, no leak,
 * no sanitizer report", it checks what callers rely on: a failed parse has
 * an error diagnostic and a message; a successful one has a topological
 * order that is a permutation with every need before its dependent, and a
 * DAG over it that runs to completion. Seeds: tests/fuzz/corpus/pipeline.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lang/dag.h"
#include "common/error.h"
#include "lang/pipeline.h"

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
        if (!job->id || !job->name || job->n_runs_on == 0 || job->n_steps == 0)
            abort();
        for (size_t k = 0; k < job->n_needs; k++)
            if (job->need_idx[k] >= n || rank[job->need_idx[k]] >= rank[i])
                abort(); /* a need after its dependent */
        for (size_t s = 0; s < job->n_steps; s++)
            if (!job->steps[s].run || job->steps[s].uses || !job->steps[s].name)
                abort();
    }
    free(rank);
}

/* Runs the whole graph, failing every other job, and checks it ends. */
static void s_check_dag(const kiln_workflow_t *wf)
{
    kiln_dag_t *dag = kiln_dag_new(wf);
    size_t *ready = NULL, *skipped = NULL;
    size_t n = wf->n_jobs, turn = 0;
    if (!dag)
        return;
    ready = malloc((n ? n : 1) * sizeof *ready);
    skipped = malloc((n ? n : 1) * sizeof *skipped);
    if (!ready || !skipped)
        goto cleanup;
    for (size_t round = 0; round <= n && !kiln_dag_done(dag); round++) {
        size_t got = kiln_dag_take_ready(dag, ready, n);
        for (size_t i = 0; i < got; i++) {
            kiln_job_state_t end = turn++ % 2 ? KILN_JOB_FAILURE : KILN_JOB_SUCCESS;
            if (kiln_dag_start(dag, ready[i]) != 0 ||
                kiln_dag_finish(dag, ready[i], end, skipped, n, NULL) != 0)
                abort();
        }
    }
    if (!kiln_dag_done(dag))
        abort();
cleanup:
    free(ready);
    free(skipped);
    kiln_dag_destroy(&dag);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kiln_diags_t diags;
    kiln_workflow_t *wf = NULL;
    kiln_diags_init(&diags, "fuzz.yml");
    kiln_error_clear();
    int rc = kiln_pipeline_parse(&wf, "fuzz.yml", (const char *)data, size, &diags);
    if (rc == 0) {
        if (!wf || diags.n_errors != 0)
            abort();
        s_check_model(wf);
        s_check_dag(wf);
    } else if (rc == KILN_EINVAL) {
        if (wf || diags.n_errors == 0 || kiln_error_last()[0] == '\0')
            abort();
    }
    char *text = kiln_diags_format(&diags);
    free(text);
    kiln_pipeline_destroy(&wf);
    kiln_diags_free(&diags);
    return 0;
}
