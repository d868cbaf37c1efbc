/* trigger.h: whether a workflow's on: starts for an event, with GitHub's
 * filters.
 *
 * A push from a repository starts only the workflows whose on: takes it:
 * its branch or tag through branches/tags (and their -ignore forms), the
 * files the push changed through paths/paths-ignore; a pull request by its
 * base branch, its activity type (types, default opened, synchronize,
 * reopened) and its files. The patterns are GitHub's filter globs: `*`
 * (not across `/`), `**`, `?` and `+` (zero-or-one and one-or-more of the
 * character before), `[...]`, a leading `!` excluding again; the last
 * pattern that matches decides.
 */
#ifndef KILN_TRIGGER_H
#define KILN_TRIGGER_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "lang/workflow.h"

typedef struct {
    const char *event;    /* push, pull_request, workflow_dispatch, ... */
    const char *ref;      /* push: the full ref (refs/heads/main, refs/tags/v1) */
    const char *base_ref; /* pull_request: the base branch */
    const char *action;   /* pull_request: its activity type ("" reads as opened) */
    const json_t *paths;  /* the files changed (array of strings), NULL when unknown */
} kiln_trigger_t;

/* Whether wf's on: starts for ev; when not, why (cap bytes) says which
 * filter kept it out. */
bool kiln_trigger_match(const kiln_workflow_t *wf, const kiln_trigger_t *ev, char *why,
                        size_t cap);

/* One filter pattern against a name (a branch, a tag or a path). */
bool kiln_trigger_glob(const char *pattern, const char *name);

#endif
