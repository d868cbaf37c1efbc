/* policy.c: the coordinator's pure decisions (see policy.h). */
#include "coordinator/policy.h"

#include <string.h>
#include <strings.h>

bool kiln_policy_turn_before(kiln_scheduler_policy_t policy, const kiln_policy_run_t *a,
                             const kiln_policy_run_t *b)
{
    if (policy == KILN_SCHEDULER_FIFO)
        return a->best_ready_seq < b->best_ready_seq;
    if (a->n_leased != b->n_leased)
        return a->n_leased < b->n_leased;
    if (a->served_seq != b->served_seq)
        return a->served_seq < b->served_seq;
    return a->id < b->id;
}

static bool s_has(const char *label, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcasecmp(list[i], label) == 0)
            return true;
    return false;
}

const kiln_policy_alias_t *kiln_policy_alias_for(const char *label,
                                                 const kiln_policy_alias_t *aliases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const char *p = aliases[i].pattern;
        size_t len = strlen(p);
        if (len && p[len - 1] == '*' ? strncasecmp(p, label, len - 1) == 0
                                     : strcasecmp(p, label) == 0)
            return &aliases[i];
    }
    return NULL;
}

bool kiln_policy_labels_match(const char *const *need, size_t n_need, const char *const *have,
                              size_t n_have, const char *const *universal, size_t n_universal,
                              const kiln_policy_alias_t *aliases, size_t n_aliases)
{
    for (size_t i = 0; i < n_need; i++) {
        if (s_has(need[i], universal, n_universal) || s_has(need[i], have, n_have))
            continue;
        const kiln_policy_alias_t *a = kiln_policy_alias_for(need[i], aliases, n_aliases);
        if (!a || !s_has(a->label, have, n_have))
            return false;
    }
    return true;
}

long kiln_policy_pick(const kiln_policy_worker_t *workers, size_t n, bool queue)
{
    long best = -1;
    for (size_t i = 0; i < n; i++) {
        const kiln_policy_worker_t *w = &workers[i];
        if (!w->matches || w->draining || w->slots == 0)
            continue;
        if (queue ? !w->prefetchable : w->busy >= w->slots)
            continue;
        /* busy/slots compared without division. */
        if (best < 0 ||
            (uint64_t)w->busy * workers[best].slots < (uint64_t)workers[best].busy * w->slots)
            best = (long)i;
    }
    return best;
}

bool kiln_policy_prefetchable(unsigned slots, unsigned busy, unsigned cap, bool draining,
                              const kiln_policy_held_t *held, size_t n_held, int64_t now,
                              int64_t short_ms, int64_t horizon_ms)
{
    if (draining || busy < slots || busy >= cap)
        return false;
    for (size_t i = 0; i < n_held; i++) {
        const kiln_policy_held_t *h = &held[i];
        if (h->n_recent < KILN_POLICY_PREFETCH_SAMPLES || h->recent_ms > short_ms ||
            h->started_ms + h->recent_ms > now + horizon_ms)
            return false;
    }
    return true;
}

bool kiln_policy_fenced(bool same_worker, uint64_t job_token, uint64_t msg_token,
                        kiln_job_state_t state)
{
    return same_worker && job_token == msg_token && state == KILN_JOB_RUNNING;
}

kiln_policy_verdict_t kiln_policy_after_infra(unsigned infra_failures, unsigned budget,
                                              bool stopping, kiln_job_state_t *final)
{
    if (stopping) {
        *final = KILN_JOB_CANCELLED;
        return KILN_POLICY_FINISH;
    }
    if (infra_failures < budget)
        return KILN_POLICY_REQUEUE;
    *final = KILN_JOB_INFRA_ERROR;
    return KILN_POLICY_FINISH;
}

kiln_policy_verdict_t kiln_policy_after_script(kiln_job_state_t outcome, unsigned script_failures,
                                               unsigned retry, bool stopping)
{
    if ((outcome == KILN_JOB_FAILURE || outcome == KILN_JOB_TIMED_OUT) && !stopping &&
        script_failures < retry)
        return KILN_POLICY_REQUEUE;
    return KILN_POLICY_FINISH;
}
