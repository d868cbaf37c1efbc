/* image.h: the native container runtime: an image pulled into the
 * worker's store (registry.h, layers.h, imagestore.h) and a step run in a
 * fresh root file system from it, with bubblewrap and no engine.
 *
 * A job's root is an overlay: the image's chain (read only, shared by
 * every job and every image on that base) below, the job's own upper
 * directory above. Each step is its own sandbox on that same overlay, so
 * what one step installs the next one sees, and the job's end removes the
 * upper directory, so the next job starts from the image again.
 */
#ifndef KILN_IMAGE_H
#define KILN_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "worker/registry.h"

typedef struct {
    const char *store; /* the image store's directory */
    const char *pull_program; /* kiln-image-pull, run when a pull is needed */
    kiln_registry_opts_t registry;
    bool pull_always;   /* ask the registry even when the tag is held */
    uint64_t max_bytes; /* the store's quota (0: none) */
} kiln_image_opts_t;

/* Makes sure the image named is in the store with its root file system
 * built (running opts->pull_program when it is not, or when pull_always
 * asks the registry), and holds it for job hold (kept from eviction until
 * released).
 * rootfs: the root's path; image: its record ("env", "entrypoint", "cmd"
 * as its config gives them; the caller's to decref). Progress and figures
 * go to log. 0, or -1 with why. */
int kiln_image_ensure(const kiln_image_opts_t *opts, const char *name, const char *hold,
                      char *rootfs, size_t rootfs_cap, json_t **image, FILE *log, char *why,
                      size_t cap);

typedef struct {
    const char *rootfs;   /* from kiln_image_ensure */
    const char *state;    /* the job's directory for its upper layer */
    const char *bwrap;    /* the bubblewrap program */
    const char *cwd;      /* the step's directory, inside */
    const char *hostname; /* the sandbox's host name */
    const char *const *binds; /* "SRC:DST" or "SRC:DST:ro" */
    size_t n_binds;
    const json_t *env; /* the image's environment */
    const char *path_prepend; /* directories before the image's PATH, or NULL */
    char *const *argv; /* the command, NULL-terminated */
} kiln_image_run_t;

/* Replaces this process with the step's command in the sandbox; returns
 * only on failure, with why. */
int kiln_image_exec(const kiln_image_run_t *run, char *why, size_t cap);

#endif
