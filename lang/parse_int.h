/* parse_int.h: what the parser's files share (parse.c, step.c, graph.c,
 * composite.c, call.c); not for use outside lang/.
 *
 * One s_parse_t lives for the parse of one file. A called workflow or a
 * composite action is parsed with a context of its own whose problems are
 * then reported at the step or job that uses it (kiln_parse_relay), quoting
 * the other file's own line.
 */
#ifndef KILN_PARSE_INT_H
#define KILN_PARSE_INT_H

#include <stdbool.h>

#include "lang/diag.h"
#include "lang/parse.h"
#include "lang/workflow.h"
#include "lang/yaml.h"

#define KILN_PARSE_WHO_MAX 256
#define s_q kiln_yaml_q

typedef kiln_yaml_node_t knode_t;

typedef struct kiln_parse {
    kiln_diags_t *diags;
    kiln_workflow_t *wf;
    knode_t ***need_nodes;      /* per job: where each needs entry was written */
    bool oom;
    const kiln_loader_t *loader;
    bool in_action;             /* walking a composite action's steps */
    int call_depth;             /* 0: the submitted workflow */
    size_t *n_called;           /* workflows called so far in the whole parse */
} kiln_parse_t;

void kiln_parse_error(kiln_parse_t *ctx, const knode_t *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void kiln_parse_error_at(kiln_parse_t *ctx, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void kiln_parse_warn(kiln_parse_t *ctx, const knode_t *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void kiln_parse_type_error(kiln_parse_t *ctx, const knode_t *key, const char *who,
                           const char *what);
char *kiln_parse_strdup(kiln_parse_t *ctx, const char *text);
/* A copy of scalar val's text, or NULL after a type error (or OOM). */
char *kiln_parse_string(kiln_parse_t *ctx, const knode_t *key, const knode_t *val,
                        const char *who);
/* Checks every ${{ }} in text for syntax, functions and contexts; the
 * error names who, the field and the column, at node `at`. */
void kiln_parse_template(kiln_parse_t *ctx, const knode_t *at, const char *who,
                         const char *field, const char *text);
void kiln_parse_condition(kiln_parse_t *ctx, const knode_t *at, const char *who,
                          const char *text);
/* A value that may be written as a template: a boolean, a number of
 * minutes, a whole number in [lo, hi]. *out: the JSON value (or the
 * template string); left alone after an error. */
void kiln_parse_bool_value(kiln_parse_t *ctx, const knode_t *key, const knode_t *val,
                           const char *who, json_t **out);
void kiln_parse_minutes_value(kiln_parse_t *ctx, const knode_t *key, const knode_t *val,
                              const char *who, json_t **out);
void kiln_parse_count_value(kiln_parse_t *ctx, const knode_t *key, const knode_t *val,
                            const char *who, unsigned lo, unsigned hi, json_t **out);
/* A mapping whose values are templates (with:, outputs:) into *out as
 * JSON, each value's expressions checked; `what` names the type wanted. */
void kiln_parse_template_map(kiln_parse_t *ctx, const knode_t *key, knode_t *val,
                             const char *who, const char *what, json_t **out);
/* env: a mapping of names to templates, or one template for the whole. */
void kiln_parse_env(kiln_parse_t *ctx, const knode_t *key, const knode_t *val, const char *who,
                    kiln_env_t *env, char **env_expr);
/* A shell name or custom template; expression_ok: where GitHub evaluates
 * one (defaults.run, composite action steps). */
char *kiln_parse_shell(kiln_parse_t *ctx, const knode_t *key, const knode_t *val,
                       const char *who, bool expression_ok);
bool kiln_parse_check_id(kiln_parse_t *ctx, const knode_t *at, const char *kind, const char *id,
                         const char *where);
bool kiln_parse_is_key(const char *name, const char *const *list);

/* The steps GitHub's runner adds at a job's ends (posts.c): each
 * JavaScript action's pre before the first step, and after the last, in
 * reverse order of their steps, JavaScript actions' posts and
 * actions/cache's saves. */
void kiln_parse_add_posts(kiln_parse_t *ctx, kiln_job_t *job);

/* One step of job `job_id` (the index for messages) into *step. */
void kiln_parse_step(kiln_parse_t *ctx, const char *job_id, size_t index, knode_t *slot,
                     kiln_step_t *step);
/* A list of steps; duplicate ids reported. */
void kiln_parse_steps(kiln_parse_t *ctx, const knode_t *key, knode_t *val, const char *who,
                      const char *job_id, kiln_step_t **steps, size_t *n_steps);
void kiln_step_clear(kiln_step_t *step);
void kiln_env_clear(kiln_env_t *env);

/* composite.c: replaces each `uses: ./x` step of the job by the steps of
 * x's action.yml, recursively. */
void kiln_parse_composite(kiln_parse_t *ctx, kiln_job_t *job, int depth);
/* call.c: reads the workflow a job calls (`uses: ./...yml`) into
 * job->callee, checking its with: against the callee's inputs. */
void kiln_parse_call(kiln_parse_t *ctx, kiln_job_t *job, const knode_t *uses_node);
/* graph.c: needs resolved to indexes, cycles reported, topological order. */
void kiln_parse_graph(kiln_parse_t *ctx);
/* Reports each problem of another file's list at node `at`, as
 * "<prefix>: <file>:<line>:<col>: <message>". */
void kiln_parse_relay(kiln_parse_t *ctx, const knode_t *at, const char *prefix,
                      const kiln_diags_t *other);

/* parse.c: the walk of a whole workflow, shared by called workflows. */
int kiln_parse_document(kiln_parse_t *ctx, const char *file, const char *text, size_t len);

#endif
