/* scheduler.c: duration estimates and critical-path ranks (see scheduler.h). */
#include "coordinator/scheduler.h"

#include <stdlib.h>
#include <string.h>

#include "common/error.h"

int kiln_scheduler_policy_parse(const char *name, kiln_scheduler_policy_t *out)
{
    if (strcmp(name, "critical-path") == 0)
        *out = KILN_SCHEDULER_CRITICAL_PATH;
    else if (strcmp(name, "fifo") == 0)
        *out = KILN_SCHEDULER_FIFO;
    else {
        kiln_error_set("scheduler '%s': expected critical-path or fifo", name);
        return KILN_EINVAL;
    }
    return 0;
}

const char *kiln_scheduler_policy_name(kiln_scheduler_policy_t policy)
{
    return policy == KILN_SCHEDULER_FIFO ? "fifo" : "critical-path";
}

static int s_cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

void kiln_scheduler_fill_estimates(int64_t *est_ms, size_t n)
{
    int64_t *known = malloc((n ? n : 1) * sizeof *known);
    size_t n_known = 0;
    int64_t fallback = KILN_SCHEDULER_DEFAULT_MS;
    if (known) {
        for (size_t i = 0; i < n; i++)
            if (est_ms[i] >= 0)
                known[n_known++] = est_ms[i];
        if (n_known) {
            qsort(known, n_known, sizeof *known, s_cmp_i64);
            fallback = known[n_known / 2];
        }
        free(known);
    }
    for (size_t i = 0; i < n; i++)
        if (est_ms[i] < 0)
            est_ms[i] = fallback;
}

void kiln_scheduler_ranks(const kiln_workflow_t *wf, const int64_t *est_ms, int64_t *rank_ms)
{
    for (size_t i = 0; i < wf->n_jobs; i++)
        rank_ms[i] = est_ms[i];
    /* In reverse dependency order a job's rank is final before any of its
     * needs is looked at, so one pass settles the longest paths. */
    for (size_t t = wf->n_jobs; t-- > 0;) {
        size_t j = wf->topo[t];
        const kiln_job_t *job = &wf->jobs[j];
        for (size_t k = 0; k < job->n_needs; k++) {
            size_t need = job->need_idx[k];
            if (est_ms[need] + rank_ms[j] > rank_ms[need])
                rank_ms[need] = est_ms[need] + rank_ms[j];
        }
    }
}
