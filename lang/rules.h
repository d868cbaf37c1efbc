/* rules.h: the run rules, each decided in one function that everyone calls.
 *
 * Is this job's end a failure? What does needs.<job>.result say of a job
 * whose matrix made several? Does a dependent run? Is the run over, and how
 * did it end? The coordinator, the run graph, the CLI's summaries and the
 * history all ask here, so the answers cannot drift apart.
 */
#ifndef KILN_RULES_H
#define KILN_RULES_H

#include <stdbool.h>
#include <stddef.h>

typedef enum {
    KILN_JOB_PENDING = 0,  /* waiting for needs (or for planning) */
    KILN_JOB_READY,        /* may run: waiting for a worker */
    KILN_JOB_RUNNING,
    KILN_JOB_SUCCESS,
    KILN_JOB_FAILURE,
    KILN_JOB_TIMED_OUT,
    KILN_JOB_CANCELLED,
    KILN_JOB_SKIPPED,
    KILN_JOB_INFRA_ERROR,  /* gave up after infrastructure failures */
} kiln_job_state_t;

/* "pending", "ready", "running", "success", "failure", "timed_out",
 * "cancelled", "skipped", "infra_error". */
const char *kiln_job_state_name(kiln_job_state_t state);
/* Inverse of kiln_job_state_name; -1 when unknown. */
int kiln_job_state_parse(const char *name, kiln_job_state_t *out);
/* success, failure, timed_out, cancelled, skipped, infra_error. */
bool kiln_job_state_is_final(kiln_job_state_t state);

/* A job's end is a failure (of the run, of needs.<job>.result): failure,
 * timed_out or infra_error, unless the job has continue-on-error. */
bool kiln_rules_failed(kiln_job_state_t state, bool continue_on_error);

/* GitHub's result of a group of jobs (a matrix job's combinations, a
 * called workflow's jobs, a whole run), folded one job at a time:
 * failure if any failed, else cancelled if any was, else skipped if every
 * one was, else success. Start with kiln_result_t r = {0}. */
typedef struct {
    size_t n;
    bool failed, cancelled, all_skipped_so_far;
    bool failed_build;       /* a job failed other than by infra_error */
} kiln_result_t;
void kiln_result_add(kiln_result_t *r, kiln_job_state_t state, bool continue_on_error);
/* The folded result as a state (SUCCESS, FAILURE, CANCELLED, SKIPPED); an
 * empty group is SKIPPED. */
kiln_job_state_t kiln_result_state(const kiln_result_t *r);

/* Whether a job that needs a job with this result runs when its if: calls
 * no status function: only after success. */
bool kiln_rules_need_met(kiln_job_state_t need_result);

/* The run's conclusion once every job is final: "cancelled" when a user
 * (or its concurrency group) cancelled it, "infra_error" when it failed
 * only because jobs ran out of attempts to infrastructure failures (Kiln's
 * own: the CLI exits 3 for it, not 1), else the folded result of its jobs:
 * "failure", "cancelled", "skipped" (every job skipped, as on GitHub),
 * "success". */
const char *kiln_rules_conclusion(const kiln_result_t *jobs, bool cancel_requested);

#endif
