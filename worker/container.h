/* container.h: jobs.<id>.container through a container engine's CLI.
 *
 * A container job's run: steps execute in one container per job attempt,
 * started by the first step that needs it (inside that step's own process,
 * so the worker's loop never waits for an image pull) and removed when the
 * job ends however it ends (kiln_container_remove, detached), or at the
 * worker's next start if the worker died first. The job's directory (its
 * workspace, RUNNER_TEMP and command files) and the worker's actions
 * directory are mounted at the same paths, so GITHUB_WORKSPACE,
 * GITHUB_OUTPUT and the rest mean the same inside and out. JavaScript
 * actions run inside too, with the worker's Node.js (node.h); built-in
 * actions run on the worker's host, on that same workspace.
 */
#ifndef KILN_CONTAINER_H
#define KILN_CONTAINER_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <jansson.h>

#include "common/kv.h"
#include "proto/kiln.pb-c.h"

typedef struct kiln_wjob kiln_wjob_t;

/* The worker's engine: --container-engine, or podman then docker on PATH;
 * path "" with why when there is none. */
typedef struct {
    char path[PATH_MAX];
    char name[16]; /* "podman" or "docker" (or the program's own name) */
    char why[300];
    /* The worker's own engine settings (CONTAINERS_CONF, DOCKER_HOST, ...),
     * "NAME=VALUE" lines given to every engine call. */
    char settings[2048];
    bool allow_privileged;
} kiln_container_engine_t;

void kiln_container_engine_find(kiln_container_engine_t *out, const char *configured,
                                bool allow_privileged);

/* The job's container, evaluated with its contexts and checked against the
 * worker's policy (made once, at the first step that needs it). 0, or -1
 * with why (cap bytes) for the step's log. */
int kiln_container_prepare(kiln_wjob_t *job, char *why, size_t cap);

/* Writes the host script that runs a step in the job's container (starting
 * the container first if it is not there): argv (the step's command in the
 * container, NULL-terminated) or, with default_shell, bash when the image
 * has it and sh otherwise, on script; the step's environment names passed
 * through. out: the script's path (wrapper, cap bytes). */
int kiln_container_wrap(kiln_wjob_t *job, const kiln_kv_t *env, const char *const *argv,
                        bool default_shell, const char *script, const char *cwd,
                        const char *wrapper, char *why, size_t cap);

/* Removes the job's containers (its own, its services', its Docker
 * actions'), if it may have any, without waiting. */
void kiln_container_remove(kiln_wjob_t *job);

/* kiln-worker --check: whether the engine can run containers here, in
 * report ("yes: ..." or "no: ...why"). 0 or -1. Waits for the engine. */
int kiln_container_check(const kiln_container_engine_t *e, char *report, size_t cap);

/* Removes containers an earlier run of this worker left (its label), without
 * waiting, then lists the engine's images for the heartbeat (as every
 * container job's removal does). */
void kiln_container_sweep(const kiln_container_engine_t *e, const char *worker,
                          const char *work_dir);

/* Where the list of the engine's images is kept: WORK_DIR/engine-images.txt. */
void kiln_container_images_path(const char *work_dir, char *out, size_t cap);

/* Writes the registry credentials of container c (the job's, k 0, or
 * service k) to a file of the job's own (mode 0600, removed at the job's
 * end) in Docker's config.json form; out: its path, "" when c has none. 0,
 * or -1 with why. */
int kiln_container_authfile(kiln_wjob_t *job, const json_t *c, size_t k, char *out,
                            size_t out_cap, char *why, size_t cap);

/* The worker's own mounts of every job container, each after flag (" -v "
 * for an engine, " --bind " for kiln-image): the tool cache at its path,
 * and the host's /usr read only at KILN_NODE_HOST/usr when JavaScript
 * actions' Node.js runs from there. */
void kiln_container_host_mounts(FILE *f, const kiln_wjob_t *job, const char *flag);

/* Opens a step's host script for writing (mode 0700, never through a
 * link), or NULL with why. */
FILE *kiln_container_script_open(const char *wrapper, char *why, size_t cap);

/* Closes a step's host script, 0, or -1 with why when any of it was not
 * written. */
int kiln_container_script_close(FILE *f, const char *wrapper, char *why, size_t cap);

/* Writes a step's command to f, each word quoted: argv, or with
 * default_shell the image's bash (else sh -e) on script. */
void kiln_container_command(FILE *f, const char *const *argv, bool default_shell,
                            const char *script);

/* Splits text as a shell splits words (blanks; quotes and backslashes
 * quote; nothing expanded) into words (at most max, their text in buf).
 * The count, or -1. */
int kiln_container_words(const char *text, char **words, size_t max, char *buf, size_t cap);

/* " --label kiln.worker=... --label kiln.job=...": what marks a job's
 * containers for their removal. */
void kiln_container_labels(FILE *f, const kiln_wjob_t *job);

/* value, single-quoted for sh, to f. */
void kiln_container_quote(FILE *f, const char *value);

/* Runs argv detached (owned by init, its output discarded), without
 * waiting: for clean-ups that must not hold up the worker's loop. */
void kiln_container_detached(char *const *argv);

#endif
