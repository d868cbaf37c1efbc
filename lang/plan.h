/* plan.h: the jobs of a run, planned from the model without changing it.
 *
 * A job as written becomes one planned job, or one per combination of its
 * matrix. Planning happens in two steps, as on GitHub:
 *   - kiln_plan_strategy, when the job's jobs are made: its matrix
 *     (static, one expression, or keys given by expressions, from needs
 *     too), fail-fast and max-parallel are evaluated and the matrix
 *     expanded;
 *   - kiln_plan_finish, when a planned job is about to run (its needs are
 *     done): its name, runs-on, env (the workflow's, then the job's, as a
 *     mapping or one expression), timeout-minutes, continue-on-error and
 *     concurrency are evaluated with the contexts it sees then.
 * Every result goes into the planned job; the model is only read. An
 * expression that does not evaluate, or gives a value of the wrong type, is
 * an error naming the job and the field, for the caller to fail that job
 * with (the run goes on).
 */
#ifndef KILN_PLAN_H
#define KILN_PLAN_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lang/matrix.h"
#include "lang/workflow.h"

#define KILN_PLAN_MAX_LABELS 32
#define KILN_PLAN_ERR_MAX 600

typedef struct {
    kiln_matrix_t matrix;    /* the combinations; empty: the job has no matrix */
    bool has_matrix;
    bool fail_fast;          /* default true */
    unsigned max_parallel;   /* 0: no limit */
} kiln_strategy_t;

typedef struct {
    char *id;                /* unique in the run: "build", "build-2", "call.test-1" */
    char *name;              /* display name */
    json_t *matrix;          /* this combination (object), or NULL */
    size_t index, total;     /* strategy.job-index, job-total */
    /* Set by kiln_plan_finish: */
    char **labels;           /* runs-on: a worker must have them all (one block) */
    size_t n_labels;
    int64_t timeout_ms;
    bool continue_on_error;
    char *group;             /* job-level concurrency group, or NULL */
    bool cancel_in_progress;
    kiln_env_t env;          /* workflow env then job env, evaluated */
    bool finished;           /* kiln_plan_finish succeeded */
} kiln_plan_job_t;

/* Evaluates and expands a job's strategy with ctx (github, inputs, vars,
 * needs). Returns 0 and fills out (kiln_strategy_clear frees it), or
 * KILN_EINVAL / KILN_ETOOBIG with err naming the job and the field. */
int kiln_plan_strategy(const kiln_job_t *spec, const json_t *ctx, kiln_strategy_t *out,
                       char *err, size_t errlen);
void kiln_strategy_clear(kiln_strategy_t *self);

/* A planned job of spec: combination `index` of strategy (or the job
 * itself when it has no matrix), its id prefixed by `prefix` (a called
 * workflow's jobs carry their caller's id and a '.'; "" at top level) and
 * its name by `name_prefix` ("caller / " likewise). ctx (may be NULL): the
 * contexts to evaluate a templated name with now (needs may not be done:
 * kiln_plan_finish evaluates it again). NULL when out of memory. */
kiln_plan_job_t *kiln_plan_job_new(const kiln_job_t *spec, const kiln_strategy_t *strategy,
                                   size_t index, const char *prefix, const char *name_prefix,
                                   const json_t *ctx);
void kiln_plan_job_destroy(kiln_plan_job_t **self_p);

/* Evaluates what a job needs to run (see the file comment) with ctx, the
 * contexts it sees (github, inputs, vars, matrix, strategy, needs,
 * secrets). wf: the workflow holding spec (its env applies). Returns 0, or
 * KILN_EINVAL with err ("job 'x': runs-on: ...") and the job unchanged. */
int kiln_plan_finish(kiln_plan_job_t *job, const kiln_workflow_t *wf, const kiln_job_t *spec,
                     const json_t *ctx, const char *name_prefix, char *err, size_t errlen);

/* Only the job's concurrency group and cancel-in-progress, evaluated with
 * ctx into job (a call of a reusable workflow holds its group while its
 * called workflow runs, and is never finished for a worker). 0, or
 * KILN_EINVAL with err. */
int kiln_plan_group(kiln_plan_job_t *job, const kiln_job_t *spec, const json_t *ctx, char *err,
                    size_t errlen);

/* A model value with every template in it evaluated (strings that are one
 * expression keep the expression's type; see kiln_expr_value), arrays and
 * objects element by element. New reference, or NULL with err. */
json_t *kiln_plan_value(const json_t *value, const json_t *ctx, char *err, size_t errlen);

#endif
