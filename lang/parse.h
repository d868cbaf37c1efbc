/* parse.h: a workflow file read into the model (workflow.h).
 *
 * The coordinator parses every submitted workflow; the CLI parses the same
 * way so that `kiln lint` and `kiln run` reject a bad file before any farm
 * is involved. Every problem is a diagnostic naming file:line:column, each
 * reported once (a job is checked as written, not once per matrix
 * combination); warnings (keys accepted but not acted on yet, steps and
 * jobs that cannot run on Linux) do not stop a run, errors do.
 *
 * Files the workflow refers to (local composite actions, local reusable
 * workflows) come through the host's loader: the parser opens nothing.
 */
#ifndef KILN_PARSE_H
#define KILN_PARSE_H

#include <jansson.h>
#include <stddef.h>

#include "lang/diag.h"
#include "lang/workflow.h"

typedef enum {
    KILN_LOAD_ACTION = 1,   /* path: the action's directory ("ci/setup"); its action.yml */
    KILN_LOAD_WORKFLOW = 2, /* path: the workflow file (".github/workflows/build.yml") */
} kiln_load_kind_t;

/* Answers with the text of a repository file (borrowed until the parse
 * returns; *len its length), or NULL when there is none. Paths are
 * normalised and relative to the repository root, with no "..". */
typedef struct {
    const char *(*read)(void *ctx, kiln_load_kind_t kind, const char *path, size_t *len);
    void *ctx;
} kiln_loader_t;

/* A loader over a JSON object path -> text (what a submission carries:
 * an action by its directory, a workflow by its file). files is borrowed
 * and must outlive the loader's use. */
void kiln_loader_json(kiln_loader_t *out, const json_t *files);

/* Parses and validates text (len bytes, need not be NUL-terminated); file
 * is the name used in messages. loader may be NULL (no local actions or
 * called workflows). Every problem is added to diags (initialised by the
 * caller). Returns 0 and *out when there is no error (warnings allowed);
 * otherwise KILN_EINVAL with *out NULL and kiln_error_last() holding the
 * first error as "file:line:col: message", or -1 when out of memory. */
int kiln_workflow_parse(kiln_workflow_t **out, const char *file, const char *text, size_t len,
                        const kiln_loader_t *loader, kiln_diags_t *diags);

/* The local files a workflow or action text refers to, normalised and
 * appended to `out` (array of {kind, path}) when not there yet: actions
 * (`uses: ./ci/setup`, kind "action") and called workflows (`jobs.<id>.uses:
 * ./.github/workflows/x.yml`, kind "workflow"). Returns 0, or KILN_EINVAL
 * for a path that leaves the repository ("./../x"). */
int kiln_workflow_local_uses(const char *text, size_t len, json_t *out);

/* "./a/b/" -> "a/b" (malloc'd); NULL for a path that climbs out with ".."
 * or is empty. */
char *kiln_workflow_local_path(const char *uses);

/* Checks and completes run inputs against the declared ones (declared:
 * on.workflow_dispatch.inputs or on.workflow_call.inputs, an object name
 * -> spec): required ones present, types (string, boolean, number, choice,
 * environment) respected, defaults filled in. given: name -> value (object,
 * borrowed; strings from the command line, typed values from a caller).
 * *out: name -> typed value (new reference). KILN_EINVAL with a message
 * naming the input otherwise. `what` names the declaration in messages. */
int kiln_workflow_inputs(const json_t *declared, const char *what, const json_t *given,
                         json_t **out);

#endif
