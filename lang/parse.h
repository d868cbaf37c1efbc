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
#include <stdbool.h>
#include <stddef.h>

#include "lang/diag.h"
#include "lang/workflow.h"

typedef enum {
    KILN_LOAD_ACTION = 1,   /* path: the action's directory ("ci/setup"); its action.yml */
    KILN_LOAD_WORKFLOW = 2, /* path: the workflow file (".github/workflows/build.yml") */
} kiln_load_kind_t;

/* A remote `uses:` as the host resolved it: the action's action.yml (or
 * the called workflow) read from `sha` of the repository at `url`; or
 * `error` saying why it could not be (every source tried). */
typedef struct {
    const char *text;
    size_t len;
    const char *url, *sha, *file;
    const char *error;
} kiln_remote_t;

/* Answers with the text of a repository file (borrowed until the parse
 * returns; *len its length), or NULL when there is none. Paths are
 * normalised and relative to the repository root, with no "..".
 * remote answers for `uses: owner/repo[/path]@ref` (0 with *out filled,
 * text or error set); a loader without it leaves such steps and calls
 * unexpanded and unchecked, for the host that resolves them (the CLI
 * checks a file before the coordinator, which holds the action sources). */
typedef struct {
    const char *(*read)(void *ctx, kiln_load_kind_t kind, const char *path, size_t *len);
    int (*remote)(void *ctx, const char *uses, kiln_remote_t *out);
    void *ctx;
} kiln_loader_t;

/* A loader over a JSON object path -> text (what a submission carries:
 * an action by its directory, a workflow by its file). files is borrowed
 * and must outlive the loader's use. With remote, uses: owner/repo@ref
 * are answered from files' "uses:<uses>" entries ({text, url, sha, file}
 * or {error}), as the coordinator's action sources filled them. */
void kiln_loader_json(kiln_loader_t *out, const json_t *files, bool remote);

/* `uses: owner/repo[/path]@ref` or `uses: scheme://host[/prefix]/owner/repo@ref`
 * (http, https, git, ssh, file), split. */
typedef struct {
    char owner[128], repo[128], path[512], ref[256];
    /* For uses: SCHEME://HOST[/PREFIX]/OWNER/REPO@REF (as Forgejo takes
     * them): SCHEME://HOST[/PREFIX], the source it names; else "". */
    char base[512];
} kiln_uses_ref_t;

/* 0 and *out when uses names an action or workflow in another repository
 * (owner/repo[/path]@ref, path without ".."); KILN_EINVAL otherwise
 * (local ./x, docker://, malformed). */
int kiln_uses_remote(const char *uses, kiln_uses_ref_t *out);

/* The remote uses: of a workflow or action text (not built-in ones),
 * appended to out (array of {kind: "action"|"workflow", uses}) when not
 * there yet. */
void kiln_workflow_remote_uses(const char *text, size_t len, json_t *out);

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
