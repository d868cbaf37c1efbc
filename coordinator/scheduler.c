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

void kiln_scheduler_ranks(const kiln_rungraph_t *rg, const int64_t *est_ms, int64_t *rank_ms)
{
    size_t n = kiln_rungraph_size(rg);
    unsigned char *state = calloc(n ? n : 1, 1); /* 0 new, 1 open, 2 ranked */
    size_t *stack = malloc((n ? n : 1) * sizeof *stack);
    size_t *deps = malloc(KILN_RUNGRAPH_MAX_JOBS * sizeof *deps);
    for (size_t i = 0; i < n; i++)
        rank_ms[i] = est_ms[i];
    if (!state || !stack || !deps)
        goto cleanup; /* estimates alone: a slower schedule, not a wrong one */
    /* Depth first over "is needed by": a job is ranked once every job that
     * needs it is, so each settles in one visit (the graph has no cycle). */
    for (size_t root = 0; root < n; root++) {
        size_t top = 0;
        if (state[root])
            continue;
        stack[top++] = root;
        while (top) {
            size_t j = stack[top - 1];
            size_t nd = kiln_rungraph_dependents(rg, j, deps, KILN_RUNGRAPH_MAX_JOBS);
            if (state[j] == 0) {
                state[j] = 1;
                for (size_t k = 0; k < nd; k++)
                    if (state[deps[k]] == 0 && top < n)
                        stack[top++] = deps[k];
                continue;
            }
            top--;
            if (state[j] == 2)
                continue;
            for (size_t k = 0; k < nd; k++)
                if (est_ms[j] + rank_ms[deps[k]] > rank_ms[j])
                    rank_ms[j] = est_ms[j] + rank_ms[deps[k]];
            state[j] = 2;
        }
    }
cleanup:
    free(state);
    free(stack);
    free(deps);
}
