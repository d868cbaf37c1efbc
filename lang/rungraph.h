/* rungraph.h: the state of one run, as GitHub's run rules move it.
 *
 * A run graph holds the run's jobs as written (nodes: a workflow's jobs, a
 * called workflow's jobs once their caller starts) and the jobs planned
 * from them (one per matrix combination). It decides everything the rules
 * decide: when a job's needs are done, whether its if: lets it run (with
 * the status functions' view of its ancestors), what its matrix makes,
 * what needs.<job>.result and .outputs say, fail-fast, max-parallel, what a
 * run cancel does, when a called workflow is over and what its outputs
 * are, and when the run is over. It holds each planned job's state: the
 * host (the coordinator) keeps no second copy.
 *
 * The host drives it with what only the host knows (a job started, ended,
 * went back to the queue, the run was cancelled) and then asks
 * kiln_rungraph_advance for the changes to act on: a job to record, a job
 * to queue, a job that ended without running (with the reason), a running
 * job to stop. The graph is pure: no I/O, no clock; recovery rebuilds it by
 * replaying what the history recorded through the same calls.
 *
 * The invariant it keeps, and its tests check: a run that is not over has
 * a job that is ready or running, or a job the host has not yet been told
 * about through kiln_rungraph_advance.
 */
#ifndef KILN_RUNGRAPH_H
#define KILN_RUNGRAPH_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "lang/contexts.h"
#include "lang/plan.h"
#include "lang/rules.h"
#include "lang/workflow.h"

/* Planned jobs in one run (matrices expanded, called workflows included). */
#define KILN_RUNGRAPH_MAX_JOBS 1000

typedef struct kiln_rungraph kiln_rungraph_t;

typedef enum {
    KILN_RG_ADDED = 1, /* a job exists: record it */
    KILN_RG_READY,     /* it may run (planned to the end): queue it */
    KILN_RG_FINAL,     /* it ended without running (skipped, cancelled, failed to plan, a
                          called workflow that ended): record it; drop it if queued */
    KILN_RG_STOP,      /* it runs and must stop (fail-fast, a run cancel) */
} kiln_rg_kind_t;

typedef struct {
    kiln_rg_kind_t kind;
    size_t job;
} kiln_rg_change_t;

/* A graph for wf (borrowed: it must outlive the graph). run: the run's
 * github fields, inputs, vars and secrets (copied; the job-level fields are
 * the graph's). Jobs whose matrices are known now are planned at once.
 * Returns 0, or -1 when out of memory. */
int kiln_rungraph_new(kiln_rungraph_t **out, const kiln_workflow_t *wf,
                      const kiln_contexts_t *run);
void kiln_rungraph_destroy(kiln_rungraph_t **self_p);

/* The next changes, up to max, into out; 0 when there are none. Call it
 * after anything that may move the run, until it returns 0. */
size_t kiln_rungraph_advance(kiln_rungraph_t *self, kiln_rg_change_t *out, size_t max);

/* READY -> RUNNING (a worker took it; a call in a concurrency group: its
 * group let it start, and its called workflow's jobs are added, or it
 * fails with the reason when they cannot be). KILN_EINVAL otherwise. */
int kiln_rungraph_start(kiln_rungraph_t *self, size_t job);
/* RUNNING -> READY (its attempt was lost; it runs again). */
int kiln_rungraph_requeue(kiln_rungraph_t *self, size_t job);
/* A ready or running job ended in a final state, with its outputs
 * (object, borrowed; may be NULL). quiet: a recorded end replayed at
 * recovery (no fail-fast acts on it). KILN_EINVAL for a bad transition. */
int kiln_rungraph_finish(kiln_rungraph_t *self, size_t job, kiln_job_state_t state,
                         const json_t *outputs, bool quiet);
/* A running call is stopped (cancel-in-progress of its concurrency
 * group): its called workflow's jobs not yet running end cancelled,
 * running ones are to be stopped, and the call ends when they have.
 * KILN_EINVAL when job is not a running call. */
int kiln_rungraph_stop_call(kiln_rungraph_t *self, size_t job);
/* The run is cancelled: jobs not yet running end cancelled, running ones
 * are to be stopped; a job whose if: calls a status function is asked
 * again with cancelled() true (`if: always()` keeps running or waiting),
 * and one still waiting for its needs decides by it when they are done. */
void kiln_rungraph_cancel(kiln_rungraph_t *self);
bool kiln_rungraph_cancelled(const kiln_rungraph_t *self);
/* The job was told to stop (fail-fast, a cancel): when its attempt ends
 * without a result (its worker lost), it ends cancelled, not queued again. */
bool kiln_rungraph_stopping(const kiln_rungraph_t *self, size_t job);

/* Every job is final and nothing is left to plan. */
bool kiln_rungraph_done(const kiln_rungraph_t *self);
/* The run's conclusion once done: success, failure, cancelled, skipped. */
const char *kiln_rungraph_conclusion(const kiln_rungraph_t *self);

size_t kiln_rungraph_size(const kiln_rungraph_t *self);
const kiln_plan_job_t *kiln_rungraph_job(const kiln_rungraph_t *self, size_t job);
kiln_job_state_t kiln_rungraph_state(const kiln_rungraph_t *self, size_t job);
/* The job as written that job was planned from, and its workflow. */
const kiln_job_t *kiln_rungraph_spec(const kiln_rungraph_t *self, size_t job);
const kiln_workflow_t *kiln_rungraph_workflow(const kiln_rungraph_t *self, size_t job);
/* A called workflow's caller: it never runs on a worker. */
bool kiln_rungraph_is_call(const kiln_rungraph_t *self, size_t job);
/* Why a job ended without running (planning error, if: error), or NULL. */
const char *kiln_rungraph_message(const kiln_rungraph_t *self, size_t job);
/* Its outputs as recorded (object or NULL). Borrowed. */
const json_t *kiln_rungraph_outputs(const kiln_rungraph_t *self, size_t job);
/* Index of the job with this id, or -1. */
long kiln_rungraph_find(const kiln_rungraph_t *self, const char *id);
/* The ids of the jobs it needs, as written (prefixed inside a called
 * workflow), into out (up to max); how many. Borrowed. */
size_t kiln_rungraph_needs(const kiln_rungraph_t *self, size_t job, const char **out,
                           size_t max);
/* Every job that needs job directly (planned ones), into out (up to max). */
size_t kiln_rungraph_dependents(const kiln_rungraph_t *self, size_t job, size_t *out,
                                size_t max);
/* The contexts document job's steps see (contexts.h), malloc'd text. */
char *kiln_rungraph_contexts_text(const kiln_rungraph_t *self, size_t job, unsigned attempt);

#endif
