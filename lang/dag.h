/* dag.h: the run-time state of one run's job graph.
 *
 * A run starts with every job pending. A job becomes ready when every job it
 * needs has succeeded; when a job ends in any other state, the jobs that need
 * it (transitively) are skipped, and independent jobs go on, as on GitHub.
 * The scheduler asks the DAG which jobs are ready, tells it when each starts
 * and ends, and learns when the run is over and whether it failed. The DAG
 * knows nothing about workers, Redis or history; it is pure state so that it
 * can be rebuilt after a coordinator restart and tested on its own.
 */
#ifndef KILN_DAG_H
#define KILN_DAG_H

#include <stdbool.h>
#include <stddef.h>

#include "lang/pipeline.h"

typedef enum {
    KILN_JOB_PENDING = 0,  /* waiting for needs */
    KILN_JOB_READY,        /* needs met, waiting for a worker */
    KILN_JOB_RUNNING,
    KILN_JOB_SUCCESS,
    KILN_JOB_FAILURE,
    KILN_JOB_TIMED_OUT,
    KILN_JOB_CANCELLED,
    KILN_JOB_SKIPPED,
    KILN_JOB_INFRA_ERROR,  /* gave up after infrastructure failures */
} kiln_job_state_t;

typedef struct kiln_dag kiln_dag_t;

/* "pending", "ready", "running", "success", "failure", "timed_out",
 * "cancelled", "skipped", "infra_error". */
const char *kiln_job_state_name(kiln_job_state_t state);
/* Inverse of kiln_job_state_name; -1 when unknown. */
int kiln_job_state_parse(const char *name, kiln_job_state_t *out);
/* success, failure, timed_out, cancelled, skipped, infra_error. */
bool kiln_job_state_is_final(kiln_job_state_t state);

/* A DAG over wf's jobs (borrowed: wf must outlive the DAG). Jobs without
 * needs are ready at once. NULL on allocation failure. */
kiln_dag_t *kiln_dag_new(const kiln_workflow_t *wf);
void kiln_dag_destroy(kiln_dag_t **self_p);

size_t kiln_dag_size(const kiln_dag_t *self);
kiln_job_state_t kiln_dag_state(const kiln_dag_t *self, size_t job);

/* Moves up to `max` ready jobs' indexes into out[] and returns how many; each
 * is reported once (it stays READY until kiln_dag_start). Order: workflow
 * topological order. */
size_t kiln_dag_take_ready(kiln_dag_t *self, size_t *out, size_t max);
/* READY -> RUNNING. Returns 0, or KILN_EINVAL if the job is not ready. */
int kiln_dag_start(kiln_dag_t *self, size_t job);
/* A job (ready or running) ends in a final state. A job with
 * continue-on-error that fails counts as success for its dependents and the
 * run. Dependents become ready or are skipped. Indexes of jobs skipped by this
 * call are written to skipped[] (up to max_skipped) and counted in
 * *n_skipped (may be NULL). Returns 0, or KILN_EINVAL for a bad transition. */
int kiln_dag_finish(kiln_dag_t *self, size_t job, kiln_job_state_t state, size_t *skipped,
                    size_t max_skipped, size_t *n_skipped);
/* Cancels every job not yet final: pending and ready ones become CANCELLED
 * at once and are written to cancelled[]; running ones are left to the caller
 * (which cancels them on their workers and then calls kiln_dag_finish). */
size_t kiln_dag_cancel(kiln_dag_t *self, size_t *cancelled, size_t max);

/* Marks a job whose if: calls a status function (always(), failure(),
 * cancelled(), success()): it is not skipped when a need fails; it becomes
 * ready once all its needs are final, whatever their state, and the caller
 * evaluates its condition (then starts it, or finishes it as SKIPPED). */
void kiln_dag_set_decides(kiln_dag_t *self, size_t job, bool decides);

/* Every job is in a final state. */
bool kiln_dag_done(const kiln_dag_t *self);
/* Some job ended failure/timed_out/cancelled/infra_error without
 * continue-on-error. Meaningful once done. */
bool kiln_dag_failed(const kiln_dag_t *self);

#endif
