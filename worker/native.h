/* native.h: container jobs without an engine: kiln-image pulls the image
 * into the worker's store and runs each step with bubblewrap in a fresh
 * overlay of it (image.h). This side decides, per job, whether the native
 * runtime can run it, writes the step's host script and cleans up after
 * the job.
 *
 * The trade-offs (README, Container jobs): native starts in milliseconds,
 * needs no daemon or engine and shares the worker's network; services,
 * port mappings, engine options and named volumes need an engine, and
 * images come from a registry (not an engine's local store). With
 * --container-runtime auto (the default) a job goes native when it can
 * and to the engine when it cannot.
 */
#ifndef KILN_NATIVE_H
#define KILN_NATIVE_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

typedef struct kiln_wjob kiln_wjob_t;

typedef struct {
    char program[PATH_MAX]; /* kiln-image, beside kiln-worker */
    char bwrap[PATH_MAX];
    char store[PATH_MAX];   /* the image store: work_dir/images */
    char why[300];          /* why the native runtime cannot run here; "" when it can */
    char mode[8];           /* auto, engine or native */
    /* The worker's registry settings, passed to kiln-image. */
    char auth[PATH_MAX], insecure[512], mirror[512];
    bool pull_always;
    int max_mb;
} kiln_native_t;

/* Fills out from the worker's settings; mode NULL is auto. -1 with why
 * for a mode that is not one. */
int kiln_native_find(kiln_native_t *out, const char *mode, const char *work_dir,
                     const char *auth, const char *insecure, const char *mirror,
                     const char *pull, int max_mb);

/* Whether the job's evaluated container goes native (sets job->native):
 * 0, or -1 with why when neither runtime can run it. */
int kiln_native_choose(kiln_wjob_t *job, char *why, size_t cap);

/* Writes the host script that runs a step in the job's sandbox (see
 * kiln_container_wrap, which calls it for native jobs). */
int kiln_native_wrap(kiln_wjob_t *job, const char *const *argv, bool default_shell,
                     const char *script, const char *cwd, const char *wrapper, char *why,
                     size_t cap);

/* Writes the host script that runs a Docker action's phase natively: the
 * image (a reference, without docker://) with its entrypoint (or entry),
 * args, the action's runs.env evaluated with its inputs, the workspace at
 * /github/workspace on an overlay of the step's own. 0, or -1 with why. */
int kiln_native_docker(kiln_wjob_t *job, const json_t *js, json_t *inputs, const json_t *args,
                       const char *image, const char *entry, const char *wrapper, char *why,
                       size_t cap);

/* Releases the job's image and removes its upper layer, without waiting. */
void kiln_native_remove(kiln_wjob_t *job);

/* Removes, without waiting, the upper layers a worker that died left in
 * its work_dir's trash. */
void kiln_native_sweep(const char *work_dir);

/* kiln-worker --check's line for the native runtime. 0 or -1. */
int kiln_native_check(const kiln_native_t *n, char *report, size_t cap);

#endif
