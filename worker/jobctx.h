/* jobctx.h: a job's expression state on the worker.
 *
 * The coordinator sends each job the contexts its expressions see (github,
 * inputs, vars, matrix, strategy, needs, ...). As the steps run, the worker
 * adds to them what only it knows: runner, env, and steps.<id> (outcome,
 * conclusion and the outputs a step wrote to $GITHUB_OUTPUT). This module
 * keeps that state for one job: it decides whether a step runs (its if:,
 * with the implicit success()), interpolates ${{ }} in what a step is given,
 * builds each step's environment (job env, $GITHUB_ENV additions, step env,
 * $GITHUB_PATH additions, the per-step command files), reads the command
 * files after the step, collects the step summaries and finally evaluates
 * the job's outputs.
 */
#ifndef KILN_JOBCTX_H
#define KILN_JOBCTX_H

#include <stdbool.h>
#include <stddef.h>

#include "common/kv.h"
#include "lang/commands.h"
#include "lang/expr.h"
#include "proto/kiln.pb-c.h"
#include "worker/workspace.h"

#define KILN_JOBCTX_MAX_SUMMARY (1024 * 1024)
#define KILN_JOBCTX_MAX_OUTPUT (1024 * 1024)       /* one job output */
#define KILN_JOBCTX_MAX_OUTPUTS (2 * 1024 * 1024)  /* all of a job's */
/* A name in a command file (GITHUB_OUTPUT, GITHUB_ENV) longer than this is cut in the contexts. */
#define KILN_JOBCTX_NAME_MAX 1024

typedef struct kiln_jobctx kiln_jobctx_t;

/* a: the assignment (borrowed; outlives the context). ws: the job's
 * directories (copied); worker: this worker's name; tool_cache: the
 * worker's RUNNER_TOOL_CACHE. Writes the event payload (github.event) to
 * ws->root/event.json: -1 with the message when it cannot. */
int kiln_jobctx_new(kiln_jobctx_t **out, const Kiln__JobAssign *a, const kiln_workspace_t *ws,
                    const char *worker, const char *tool_cache);
/* A field of the github context as a string ("" when absent). */
const char *kiln_jobctx_github(const kiln_jobctx_t *self, const char *field);
/* github.action for the step about to run (its id, or __run, __run_2...),
 * and github.action_path: its composite action's directory (absolute), or
 * "" / NULL for a step of no action. */
void kiln_jobctx_set_action(kiln_jobctx_t *self, const char *action, const char *action_path);
/* Where the event payload is ($GITHUB_EVENT_PATH). */
const char *kiln_jobctx_event_path(const kiln_jobctx_t *self);
/* runner.arch: X64 or ARM64. */
const char *kiln_jobctx_arch(void);
void kiln_jobctx_destroy(kiln_jobctx_t **self_p);

/* The job's status as status functions see it. */
void kiln_jobctx_set_status(kiln_jobctx_t *self, kiln_expr_status_t status);
/* job.container ({id, network}) and job.services (id -> {id, network,
 * ports: container port -> host port}), once the job's containers are
 * known; each taken (NULL: left as it is). */
void kiln_jobctx_set_containers(kiln_jobctx_t *self, json_t *container, json_t *services);
/* The directories $GITHUB_PATH added so far, latest first, ':'-joined
 * into out ("" when none): a container's steps get them before the
 * image's own PATH. 0, or -1 when they do not fit. */
int kiln_jobctx_path_additions(kiln_jobctx_t *self, char *out, size_t cap);
/* Whether step `st` runs: its if: (implicit success() without a status
 * function). KILN_EINVAL with err on an expression error. */
int kiln_jobctx_step_condition(kiln_jobctx_t *self, const Kiln__StepSpec *st, bool *run,
                               char *err, size_t errlen);
/* Before a step that runs: its own env (mapping or one expression) is
 * evaluated, and the env context its expressions see becomes the job's
 * env, $GITHUB_ENV additions, then the step's env; kiln_jobctx_step_done
 * puts the job's back. KILN_EINVAL with err naming the problem. */
int kiln_jobctx_step_begin(kiln_jobctx_t *self, const Kiln__StepSpec *st, char *err,
                           size_t errlen);
/* ${{ }} in text, with the contexts as they are now. *out malloc'd. */
int kiln_jobctx_interpolate(kiln_jobctx_t *self, const char *text, char **out, char *err,
                            size_t errlen);
/* The same with the inputs context set to inputs for the call (a Docker
 * action's args speak of its own inputs). */
int kiln_jobctx_interpolate_inputs(kiln_jobctx_t *self, const char *text, json_t *inputs,
                                   char **out, char *err, size_t errlen);
/* The environment step `index` adds to the worker's own, in order (later
 * wins): standard variables are the caller's; this gives the job env,
 * $GITHUB_ENV additions so far, the step env (all evaluated), PATH with
 * $GITHUB_PATH additions first, and GITHUB_OUTPUT, GITHUB_ENV, GITHUB_PATH,
 * GITHUB_STEP_SUMMARY, GITHUB_STATE pointing at this step's files in the workspace's cmd/,
 * made empty here. */
int kiln_jobctx_step_env(kiln_jobctx_t *self, size_t index, const Kiln__StepSpec *st,
                         kiln_kv_t *out, char *err, size_t errlen);
/* After step `index`: reads its command files and records steps.<id>.
 * outcome/conclusion: "success", "failure", "cancelled", "skipped". Problems
 * with the files are reported in err and returned as KILN_EINVAL; the step's
 * record is kept regardless. */
int kiln_jobctx_step_done(kiln_jobctx_t *self, size_t index, const Kiln__StepSpec *st,
                          const char *outcome, const char *conclusion, char *err, size_t errlen);
/* JavaScript actions' instances (a main step's index, as its phases name
 * it): that the main step ran (its post runs only then), whether it did,
 * and what the phases saved to $GITHUB_STATE so far, as STATE_<name>. */
void kiln_jobctx_action_ran(kiln_jobctx_t *self, const char *instance);
bool kiln_jobctx_action_has_run(kiln_jobctx_t *self, const char *instance);
int kiln_jobctx_action_state(kiln_jobctx_t *self, const char *instance, kiln_kv_t *out);
/* The INPUT_* its main step ran with, kept for its post (which runs where
 * the main step's with: templates may mean nothing any more); _inputs sets
 * them in out: 0, or 1 when none were kept, -1 out of memory. */
int kiln_jobctx_action_keep_inputs(kiln_jobctx_t *self, const char *instance,
                                   const kiln_kv_t *env);
int kiln_jobctx_action_inputs(kiln_jobctx_t *self, const char *instance, kiln_kv_t *out);
/* The job's outputs, evaluated. */
int kiln_jobctx_outputs(kiln_jobctx_t *self, kiln_kv_t *out, char *err, size_t errlen);
/* The output filter (masks, annotations) of this job. Borrowed. */
kiln_commands_t *kiln_jobctx_commands(kiln_jobctx_t *self);
/* The steps' summaries joined, masked. Borrowed; "" if none. */
const char *kiln_jobctx_summary(const kiln_jobctx_t *self, size_t *len);

#endif
