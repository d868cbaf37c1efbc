/* builtin.h: the actions Kiln carries itself.
 *
 * Nearly every real workflow starts with `uses: actions/checkout@v4`, and
 * it needs nothing of GitHub's servers: Kiln implements it on the worker
 * (kiln-checkout, with libgit2) instead of running the action's
 * JavaScript. The language only recognises such a step and checks its
 * inputs against the action's metadata, so the CLI and the coordinator
 * refuse the same workflows.
 */
#ifndef KILN_BUILTIN_H
#define KILN_BUILTIN_H

#include <stdbool.h>
#include <stddef.h>

/* The built-in behind `uses:` ("checkout"), a static string; NULL when
 * uses names no built-in action. A known action at a version Kiln does not
 * implement (actions/checkout@v1) gives NULL with why set; otherwise why
 * is "". */
const char *kiln_builtin_for(const char *uses, char *why, size_t cap);

/* Whether builtin takes the input name (GitHub's action.yml of it). */
bool kiln_builtin_input_known(const char *builtin, const char *name);

/* The inputs of builtin, comma-separated, for messages. */
const char *kiln_builtin_inputs(const char *builtin);

#endif
