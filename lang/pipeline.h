/* pipeline.h: a workflow file (GitHub Actions syntax) read into Kiln's model.
 *
 * The coordinator turns a submitted YAML document into a kiln_workflow_t:
 * jobs with their steps, environment, labels and dependencies, validated
 * before anything runs. The CLI links the same code so `kiln run` rejects a
 * bad file before it starts a farm. Every problem found is reported as a
 * diagnostic naming file:line:column; warnings (unknown keys) do not stop a
 * run, errors do.
 *
 * The model is a plain data structure (callers walk it) owned by the
 * workflow object: kiln_pipeline_destroy() frees everything reachable.
 *
 * Limits: the document is refused past KILN_WF_MAX_BYTES, nesting past
 * KILN_WF_MAX_DEPTH, more than KILN_WF_MAX_NODES YAML nodes (aliases count
 * the nodes they expand to, so an alias bomb fails fast), more than
 * KILN_WF_MAX_JOBS jobs or KILN_WF_MAX_STEPS steps per job.
 */
#ifndef KILN_PIPELINE_H
#define KILN_PIPELINE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KILN_WF_MAX_BYTES (1024 * 1024)
#define KILN_WF_MAX_DEPTH 64
#define KILN_WF_MAX_NODES 100000
#define KILN_WF_MAX_JOBS 1000
#define KILN_WF_MAX_STEPS 1000
#define KILN_WF_MAX_ID 100
/* Default job timeout, as on GitHub: 360 minutes. */
#define KILN_WF_DEFAULT_JOB_TIMEOUT_MS (360LL * 60 * 1000)

typedef enum { KILN_DIAG_WARNING = 1, KILN_DIAG_ERROR = 2 } kiln_diag_severity_t;

typedef struct {
    kiln_diag_severity_t severity;
    int line;   /* 1-based; 0 when the problem has no position */
    int col;    /* 1-based */
    char *message;
} kiln_diag_t;

/* A growable, bounded list of diagnostics for one file. */
typedef struct {
    char *file;          /* the file name the diagnostics refer to */
    kiln_diag_t *items;
    size_t n;
    size_t cap;
    size_t n_errors;
} kiln_diags_t;

void kiln_diags_init(kiln_diags_t *self, const char *file);
void kiln_diags_free(kiln_diags_t *self);
void kiln_diags_add(kiln_diags_t *self, kiln_diag_severity_t sev, int line, int col, const char *fmt,
                    ...) __attribute__((format(printf, 5, 6)));
/* Writes every diagnostic as "file:line:col: error|warning: message\n" into
 * a malloc'd string (caller frees); NULL on allocation failure. */
char *kiln_diags_format(const kiln_diags_t *self);

typedef struct {
    char *key;
    char *value;
} kiln_kv_t;

/* Ordered environment map; later keys override earlier ones when merged. */
typedef struct {
    kiln_kv_t *items;
    size_t n;
} kiln_env_t;

typedef struct {
    char *id;                /* `id:` or NULL */
    char *name;              /* `name:`, or derived: "Run <first line of run>" */
    char *run;               /* script text, or NULL */
    char *uses;              /* `uses:` or NULL (validation rejects it for now) */
    char *shell;             /* `shell:` or NULL (job/workflow default applies) */
    char *working_directory; /* or NULL */
    char *if_expr;           /* `if:` kept verbatim for the expression engine */
    kiln_env_t env;
    int64_t timeout_ms;      /* 0: none beyond the job's */
    bool continue_on_error;
    json_t *with;            /* `with:` inputs of a uses: step (object), or NULL */
    /* A step that came from local composite actions: action_inputs is the
     * stack of their inputs, outermost first (each name -> template,
     * evaluated in the context of the level above: the last level is this
     * step's inputs context). An action's last step carries its end in
     * composite_ends: [{id, outputs: name -> template, level}], innermost
     * first; the outputs become steps.<id>.outputs when the uses: step has
     * an id. */
    json_t *action_inputs;
    json_t *composite_ends;
    int line, col;           /* where the step starts */
} kiln_step_t;

typedef struct {
    char *id;                /* key under `jobs:` */
    char *name;              /* `name:` or the id */
    char **runs_on;          /* labels, all required */
    size_t n_runs_on;
    char **needs;            /* job ids */
    size_t n_needs;
    size_t *need_idx;        /* needs resolved to indexes into workflow->jobs */
    kiln_env_t env;          /* the job's own `env:` */
    char *shell;             /* defaults.run.shell (job, else workflow), or NULL */
    char *working_directory; /* defaults.run.working-directory, or NULL */
    char *if_expr;
    int64_t timeout_ms;      /* `timeout-minutes:` or the default */
    bool continue_on_error;
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
    /* strategy: matrix as written (an object, or a string holding one
     * expression such as fromJSON(needs.plan.outputs.list)), fail-fast
     * (default true) and max-parallel (0: no limit). */
    json_t *matrix;
    bool fail_fast;
    unsigned max_parallel;
    json_t *outputs;         /* `outputs:` name -> expression text (object), or NULL */
    /* A job with a static matrix is expanded into one job per combination:
     * id "<origin>-<n>", name "<name> (v1, v2)", its values in matrix_combo.
     * needs on the origin wait for every combination. */
    char *origin;            /* the job id as written, for a matrix combination; else NULL */
    /* strategy.matrix is an expression (e.g. fromJSON(needs.plan.outputs.x)):
     * the job stands as one placeholder until its needs are done; then the
     * coordinator evaluates it and plans the run again with the result. */
    char *matrix_expr;
    /* continue-on-error given as an expression (e.g. ${{ matrix.experimental
     * }}): evaluated when the run is planned. */
    char *continue_on_error_expr;
    json_t *matrix_combo;    /* this combination's values (object), or NULL */
    size_t matrix_index;     /* 0-based */
    size_t matrix_total;
    char *concurrency_group; /* `concurrency:` group (may hold expressions), or NULL */
    bool cancel_in_progress;
} kiln_job_t;

#define KILN_WF_MAX_ATTEMPTS 20

typedef struct {
    char *file;              /* name the diagnostics use */
    char *name;              /* `name:` or the file's base name */
    kiln_env_t env;          /* workflow `env:` */
    char *shell;             /* workflow defaults.run.shell or NULL */
    char *working_directory;
    kiln_job_t *jobs;        /* in file order */
    size_t n_jobs;
    size_t *topo;            /* job indexes in a dependency order (needs first) */
    /* on.workflow_dispatch.inputs: name -> {type, required, default,
     * description, options} (object), or NULL */
    json_t *inputs;
    char *concurrency_group;
    bool cancel_in_progress;
} kiln_workflow_t;

/* Checks and completes run inputs against the workflow's declared inputs:
 * required ones present, types (string, boolean, number, choice, environment)
 * respected, defaults filled in. given: name -> string (object, borrowed).
 * *out: name -> typed value (new reference). KILN_EINVAL with a message
 * naming the input otherwise. */
int kiln_pipeline_inputs(const kiln_workflow_t *self, const json_t *given, json_t **out);

/* Parses and validates `text` (len bytes, need not be NUL-terminated).
 * `file` is the name used in messages. Every problem is added to `diags`
 * (which the caller initialised). Returns 0 and sets *out when there is no
 * error (warnings allowed); otherwise KILN_EINVAL, *out NULL, and
 * kiln_error_last() holds the first error as "file:line:col: message". */
int kiln_pipeline_parse(kiln_workflow_t **out, const char *file, const char *text, size_t len,
                        kiln_diags_t *diags);
/* As kiln_pipeline_parse, with the local composite actions the workflow
 * uses: actions maps a normalised path ("ci/setup", no "./") to the text of
 * its action.yml (object, borrowed; may be NULL). A step `uses: ./ci/setup`
 * is replaced by the action's steps. */
int kiln_pipeline_parse_with(kiln_workflow_t **out, const char *file, const char *text, size_t len,
                             const json_t *actions, kiln_diags_t *diags);
/* As kiln_pipeline_parse_with, with matrices computed at run time:
 * matrices maps a job id to the evaluated matrix (object) of a job whose
 * strategy.matrix is an expression; that job is expanded like a static one. */
int kiln_pipeline_parse_planned(kiln_workflow_t **out, const char *file, const char *text,
                                size_t len, const json_t *actions, const json_t *matrices,
                                kiln_diags_t *diags);
/* The local actions a workflow or action text refers to (`uses: ./x`),
 * normalised, appended to `out` (array) when not there yet. Returns 0, or
 * KILN_EINVAL for a path that leaves the repository ("./../x"). */
int kiln_pipeline_local_uses(const char *text, size_t len, json_t *out);
#define KILN_WF_MAX_ACTIONS 50
#define KILN_WF_MAX_ACTION_DEPTH 5
#define KILN_WF_MAX_ACTION_BYTES (256 * 1024)

/* Reads the file at `path` (bounded by KILN_WF_MAX_BYTES) then parses it. */
int kiln_pipeline_load(kiln_workflow_t **out, const char *path, kiln_diags_t *diags);
void kiln_pipeline_destroy(kiln_workflow_t **self_p);

/* Index of job `id`, or -1. */
long kiln_pipeline_find_job(const kiln_workflow_t *self, const char *id);

#endif
