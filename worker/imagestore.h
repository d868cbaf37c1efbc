/* imagestore.h: a worker's container images for the native runtime, on
 * its own disk, content-addressed.
 *
 * Layout under the store's directory:
 *   blobs/sha256/HEX   manifests, configs and layers as the registry gave
 *                      them, named by their digest (verified on arrival)
 *   chains/HEX/        a root file system: an image's layers applied in
 *                      order, named by the chain of their digests, so two
 *                      images on one base share the base's root (and a
 *                      chain one layer longer is a hard-link copy of it
 *                      with that layer applied)
 *   chains/HEX.json    {"parent", "layer", "bytes"}: what the chain adds
 *   refs/NAME          one pulled image: {"ref", "manifest", "config",
 *                      "layers", "chains", "env"}; its time is its last use
 *   holds/JOB          a job using an image (its ref's NAME): never evicted
 *   lock               shared while pulling or starting, exclusive to evict
 *
 * Eviction (kiln_imagestore_gc) keeps the store under its quota by
 * dropping the least recently used images no job holds, then every chain
 * and blob no remaining image needs.
 */
#ifndef KILN_IMAGESTORE_H
#define KILN_IMAGESTORE_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* A ref as a file name (refs/NAME): [A-Za-z0-9_-] kept, the rest %XX (so
 * a name never holds a dot, which temporary files do). */
void kiln_imagestore_ref_name(const char *ref, char *out, size_t cap);

/* The images held (canonical references, sorted), for the worker's
 * heartbeat. The caller frees with kiln_imagestore_list_free. */
void kiln_imagestore_list(const char *dir, char ***refs, size_t *n);
void kiln_imagestore_list_free(char **refs, size_t n);

/* The layers of image (a reference) as the store holds it: at most max
 * digests ("sha256:HEX") with their sizes; how many (0: not held). */
size_t kiln_imagestore_layers(const char *dir, const char *image, char (*digests)[72],
                              uint64_t *sizes, size_t max);

/* The blobs' names (hex digests, and temporary files) for the heartbeat;
 * freed with kiln_fs_names_free. */
void kiln_imagestore_blobs(const char *dir, char ***names, size_t *n);

/* Drops job's holds (the job ended): JOB and JOB.* (its Docker actions');
 * every hold when job is NULL (the worker starts, so no job of its holds
 * any). */
void kiln_imagestore_release(const char *dir, const char *job);

/* Evicts least recently used images until the store (blobs and chains'
 * own bytes) is within max_bytes; evicted: how many images went. Waits for
 * no pull: when one is running it does nothing. 0, or -1 with why. */
int kiln_imagestore_gc(const char *dir, uint64_t max_bytes, int *evicted, char *why, size_t cap);

/* Takes the store's lock (how: flock's LOCK_SH or LOCK_EX, | LOCK_NB): its
 * descriptor, to close to let go; -2 when LOCK_NB found it taken; -1 with
 * why. */
int kiln_imagestore_lock(const char *dir, int how, char *why, size_t cap);

/* Makes the store's directories (those missing). 0, or -1 with why. */
int kiln_imagestore_make(const char *dir, char *why, size_t cap);

/* Writes path whole or not at all (a temporary beside it, synced, renamed).
 * 0, or -1 with why. */
int kiln_imagestore_write(const char *path, const char *data, size_t len, char *why, size_t cap);
int kiln_imagestore_write_json(const char *path, json_t *doc, char *why, size_t cap);

#endif
