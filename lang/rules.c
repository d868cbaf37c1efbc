/* rules.c: the run rules (see rules.h). */
#include "lang/rules.h"

#include <assert.h>
#include <string.h>

static const char *const s_names[] = {
    [KILN_JOB_PENDING] = "pending",     [KILN_JOB_READY] = "ready",
    [KILN_JOB_RUNNING] = "running",     [KILN_JOB_SUCCESS] = "success",
    [KILN_JOB_FAILURE] = "failure",     [KILN_JOB_TIMED_OUT] = "timed_out",
    [KILN_JOB_CANCELLED] = "cancelled", [KILN_JOB_SKIPPED] = "skipped",
    [KILN_JOB_INFRA_ERROR] = "infra_error",
};
#define S_N_STATES (sizeof s_names / sizeof s_names[0])

const char *kiln_job_state_name(kiln_job_state_t state)
{
    if ((size_t)state >= S_N_STATES)
        return "unknown";
    return s_names[state];
}

int kiln_job_state_parse(const char *name, kiln_job_state_t *out)
{
    assert(name && out);
    for (size_t i = 0; i < S_N_STATES; i++) {
        if (strcmp(name, s_names[i]) == 0) {
            *out = (kiln_job_state_t)i;
            return 0;
        }
    }
    return -1;
}

bool kiln_job_state_is_final(kiln_job_state_t state)
{
    return state >= KILN_JOB_SUCCESS && state <= KILN_JOB_INFRA_ERROR;
}

bool kiln_rules_failed(kiln_job_state_t state, bool continue_on_error)
{
    return !continue_on_error && (state == KILN_JOB_FAILURE || state == KILN_JOB_TIMED_OUT ||
                                  state == KILN_JOB_INFRA_ERROR);
}

void kiln_result_add(kiln_result_t *r, kiln_job_state_t state, bool continue_on_error)
{
    if (r->n == 0)
        r->all_skipped_so_far = true;
    r->n++;
    bool failed = kiln_rules_failed(state, continue_on_error);
    r->failed = r->failed || failed;
    r->failed_build = r->failed_build || (failed && state != KILN_JOB_INFRA_ERROR);
    r->cancelled = r->cancelled || state == KILN_JOB_CANCELLED;
    r->all_skipped_so_far = r->all_skipped_so_far && state == KILN_JOB_SKIPPED;
}

kiln_job_state_t kiln_result_state(const kiln_result_t *r)
{
    if (r->n == 0)
        return KILN_JOB_SKIPPED;
    return r->failed ? KILN_JOB_FAILURE
           : r->cancelled        ? KILN_JOB_CANCELLED
           : r->all_skipped_so_far ? KILN_JOB_SKIPPED
                                   : KILN_JOB_SUCCESS;
}

bool kiln_rules_need_met(kiln_job_state_t need_result)
{
    return need_result == KILN_JOB_SUCCESS;
}

const char *kiln_rules_conclusion(const kiln_result_t *jobs, bool cancel_requested)
{
    if (cancel_requested)
        return "cancelled";
    if (jobs->failed && !jobs->failed_build)
        return kiln_job_state_name(KILN_JOB_INFRA_ERROR);
    return kiln_job_state_name(kiln_result_state(jobs));
}
