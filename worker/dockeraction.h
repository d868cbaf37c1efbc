/* dockeraction.h: Docker actions' phases through the engine or natively. */
#ifndef KILN_DOCKERACTION_H
#define KILN_DOCKERACTION_H

#include <stddef.h>

#include <jansson.h>

#include "common/kv.h"
#include "proto/kiln.pb-c.h"

typedef struct kiln_wjob kiln_wjob_t;

/* Writes the host script that runs a Docker action's phase (js: its
 * js_action; its script the phase's entrypoint): the image pulled, or built
 * from the action's Dockerfile (apath), then run with the workspace at
 * /github/workspace, the job's directory at its own path, the step's
 * environment by name and the action's args and env evaluated with its
 * inputs. 0, or -1 with why. */
int kiln_dockeraction_wrap(kiln_wjob_t *job, const Kiln__StepSpec *st, const json_t *js,
                          const kiln_kv_t *env, const char *apath, const char *wrapper,
                          char *why, size_t cap);

#endif
