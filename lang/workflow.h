/* workflow.h: a workflow file (GitHub Actions syntax) as Kiln's model.
 *
 * The model is the workflow as written: one kiln_job_t per key under
 * `jobs:`, its fields as the file gives them. Values GitHub lets a workflow
 * compute (names, runs-on, timeouts, continue-on-error, a whole env, a
 * matrix or one of its keys, fail-fast, max-parallel, concurrency) are kept
 * as JSON values that may hold `${{ }}` templates; the planner (plan.h)
 * evaluates them for each job of a run, once the contexts they read are
 * known, and never writes back here. A parsed model is immutable: the
 * coordinator shares one between a run's planning, its graph and its
 * recovery, and the CLI's lint and graph read the same one.
 *
 * parse.h reads a file into this model; graph.c resolves needs and orders
 * the jobs; composite.c expands local composite actions into steps. The
 * model is plain data (callers walk it), owned by the workflow object:
 * kiln_workflow_destroy() frees everything reachable.
 */
#ifndef KILN_WORKFLOW_H
#define KILN_WORKFLOW_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lang/diag.h"

#define KILN_WF_MAX_BYTES (1024 * 1024)
#define KILN_WF_MAX_JOBS 1000        /* jobs of a run, matrices expanded */
#define KILN_WF_MAX_STEPS 1000       /* steps of a job, composite actions expanded */
#define KILN_WF_MAX_ID 100
#define KILN_WF_MAX_ATTEMPTS 20
#define KILN_WF_MAX_ACTIONS 50       /* local actions and called workflows a run brings */
#define KILN_WF_MAX_ACTION_DEPTH 5   /* composite actions within composite actions */
#define KILN_WF_MAX_ACTION_BYTES (256 * 1024)
/* Reusable workflows call reusable workflows up to four levels, and a run
 * has at most 20 workflows in all, as on GitHub. */
#define KILN_WF_MAX_CALL_DEPTH 4
#define KILN_WF_MAX_CALLED 20
/* Default job timeout, as on GitHub: 360 minutes. */
#define KILN_WF_DEFAULT_JOB_TIMEOUT_MS (360LL * 60 * 1000)
/* timeout-minutes above a year is surely a mistake, and the cap keeps the
 * milliseconds far from int64 overflow. */
#define KILN_WF_MAX_TIMEOUT_MIN (60.0 * 24 * 365)

typedef struct {
    char *key;
    char *value;
} kiln_env_var_t;

/* Ordered environment map (values are templates); later keys override
 * earlier ones when merged. */
typedef struct {
    kiln_env_var_t *items;
    size_t n;
} kiln_env_t;

typedef struct kiln_workflow kiln_workflow_t;

typedef struct {
    char *id;                /* `id:` or NULL */
    char *name;              /* `name:`, or derived: "Run <first line of run>"; a template */
    bool name_derived;       /* no name: the worker names it from the script as evaluated */
    char *run;               /* script text, or NULL */
    char *uses;              /* `uses:` of a step that is not expanded here, or NULL */
    char *shell;             /* `shell:` (a template only in composite actions), or NULL */
    char *working_directory; /* or NULL */
    char *if_expr;           /* `if:` verbatim, for the expression engine */
    kiln_env_t env;          /* `env:` as a mapping */
    char *env_expr;          /* `env:` as one expression giving a mapping, or NULL */
    json_t *timeout;         /* timeout-minutes: a number, a template string, or NULL */
    json_t *continue_on_error; /* a boolean, a template string, or NULL (false) */
    json_t *with;            /* `with:` inputs of a uses: step (object), or NULL */
    const char *builtin;     /* a built-in action's id ("checkout", lang/builtin.h), or NULL */
    /* A step that came from local composite actions: action_inputs is the
     * stack of their inputs, outermost first (each name -> template,
     * evaluated in the context of the level above: the last level is this
     * step's inputs context). An action's last step carries its end in
     * composite_ends: [{id, outputs: name -> template, level}], innermost
     * first; the outputs become steps.<id>.outputs when the uses: step has
     * an id. */
    json_t *action_inputs;
    json_t *composite_ends;
    /* On an action's first step: [{if, level}], outermost first, each the
     * if: of the uses: step that brought the action at that level (absent:
     * success()). */
    json_t *composite_begins;
    char *action_path;       /* a composite action's step: its action's directory, or NULL */
    /* A JavaScript action's step (builtin "node"): {phase: pre|main|post,
     * script, using, state, uses, repository, ref, sha}; state names the
     * action's instance (its main step's index), shared by its three
     * phases. with: holds its inputs (given or defaults, as templates). */
    json_t *js_action;
    int line, col;           /* where the step starts */
} kiln_step_t;

typedef struct {
    char *id;                /* key under `jobs:` */
    char *name;              /* `name:` (a template) or NULL: the id */
    /* runs-on as written: a string, a list of strings, {group, labels}, or
     * a template string (an expression may give a string or a list). */
    json_t *runs_on;
    char **needs;            /* job ids */
    size_t n_needs;
    size_t *need_idx;        /* needs resolved to indexes into workflow->jobs */
    kiln_env_t env;          /* the job's own `env:` as a mapping */
    char *env_expr;          /* `env:` as one expression giving a mapping, or NULL */
    char *shell;             /* defaults.run.shell (job, else workflow), or NULL */
    char *working_directory; /* defaults.run.working-directory, or NULL */
    char *if_expr;
    json_t *timeout;         /* timeout-minutes: number, template, or NULL (360) */
    json_t *continue_on_error; /* boolean, template, or NULL (false) */
    kiln_step_t *steps;
    size_t n_steps;
    int line, col;
    /* Kiln's job extension (`kiln:` key):
     *   kiln:
     *     max-attempts: 5   # attempts lost to infrastructure before giving up
     *     retry: 2          # extra attempts when the script fails or times out
     * 0 means "the farm's default" for max_attempts and "never" for retry. */
    unsigned max_attempts;
    unsigned retry;
    /* strategy: the matrix as written (an object whose keys, include and
     * exclude may hold templates, or one template for the whole), fail-fast
     * and max-parallel (a value or a template each; NULL: true, no limit). */
    json_t *matrix;
    json_t *fail_fast;
    json_t *max_parallel;
    json_t *outputs;         /* `outputs:` name -> template (object), or NULL */
    /* concurrency: a group template, or {group, cancel-in-progress}. */
    char *concurrency_group;
    json_t *cancel_in_progress; /* boolean, template, or NULL (false) */
    /* Something of this job's planning reads `needs`: its jobs are planned
     * once its needs are done, not when the run is submitted. */
    bool plan_late;
    /* A call of a reusable workflow (`uses: ./.github/workflows/x.yml`):
     * the called workflow (owned), what it is given, and the path. */
    char *uses;
    kiln_workflow_t *callee;
    json_t *with;            /* `with:` (object of templates), or NULL */
    json_t *secrets;         /* `secrets:` object, or the string "inherit", or NULL */
    /* The job runs on no farm (runs-on windows-* or macos-*): kept, and
     * failed with this message if it is ever planned. */
    char *unsupported;
    /* `container:` as {image, env?, options?, volumes?, ports?,
     * credentials?} (strings templates, evaluated by the worker), or NULL. */
    json_t *container;
    /* `services:` id -> a spec as container's, or NULL. */
    json_t *services;
} kiln_job_t;

struct kiln_workflow {
    char *file;              /* name the diagnostics use */
    char *name;              /* `name:` or the file's base name */
    char *run_name;          /* `run-name:` template, or NULL */
    kiln_env_t env;          /* workflow `env:` */
    char *shell;             /* workflow defaults.run.shell or NULL */
    char *working_directory;
    kiln_job_t *jobs;        /* in file order, one per key under jobs: */
    size_t n_jobs;
    size_t *topo;            /* job indexes in a dependency order (needs first) */
    /* on.workflow_dispatch.inputs and on.workflow_call.inputs: name ->
     * {type, required, default, description, options} (object), or NULL */
    json_t *inputs;
    json_t *events;          /* on:'s event names, as written (array of strings) */
    /* on:'s filters by event: {"push": {"branches": [...], "paths-ignore":
     * [...], ...}, "pull_request": {"types": [...], ...}}, or NULL when none
     * are written (lang/trigger.h decides with them). */
    json_t *filters;
    json_t *call_inputs;
    json_t *call_outputs;    /* on.workflow_call.outputs: name -> {value: template} */
    json_t *call_secrets;    /* on.workflow_call.secrets, or NULL */
    bool callable;           /* on: holds workflow_call */
    char *concurrency_group;
    json_t *cancel_in_progress;
};

/* Frees the workflow and everything reachable from it. Accepts NULL. */
void kiln_workflow_destroy(kiln_workflow_t **self_p);
/* Index of job `id` (as written under jobs:), or -1. */
long kiln_workflow_find_job(const kiln_workflow_t *self, const char *id);
/* GitHub's name for a step without one: "Run " and the first non-blank
 * line of its script, cut at 60 bytes ("..."). malloc'd; NULL when out of
 * memory. */
char *kiln_step_derived_name(const char *script);
/* Whether text holds a `${{`. NULL is no template. */
bool kiln_is_template(const char *text);
/* Whether a model value (string, array, object) holds a template anywhere. */
bool kiln_value_has_template(const json_t *value);

#endif
