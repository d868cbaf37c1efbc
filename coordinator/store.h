/* store.h: the farm's content-addressed blob store, behind a backend
 * interface.
 *
 * Caches and artifacts are archives (common/archive.h) kept here as blobs
 * named by their SHA-256 ("sha256:<64 hex>"). A blob arrives in chunks at
 * increasing offsets and is kept only when the bytes hash to its name; an
 * upload cut short (a dropped connection, a restarted coordinator) keeps
 * what arrived, and kiln_store_stat says where to go on from. The reader
 * verifies what it reads against the name too (worker/storeclient.c,
 * cli/cmd_artifact.c), so a blob damaged at rest is refused at the other
 * end rather than restored.
 *
 * What a blob is for (which cache key, which run's artifact) is the
 * history's (history_store.c); this knows only bytes. The disk backend
 * keeps blobs under DIR/blobs/<2 hex>/<hex> and uploads in progress under
 * DIR/partial/; another backend (an S3-compatible object store on a large
 * farm, docs/ARCHITECTURE.md has the design) implements the same five
 * operations.
 *
 * Thread rules: the coordinator's loop only.
 */
#ifndef KILN_STORE_H
#define KILN_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KILN_STORE_CHUNK_MAX (1024u * 1024)
#define KILN_STORE_DIGEST_LEN 71 /* "sha256:" + 64 */

typedef struct kiln_store kiln_store_t;

/* What a backend provides. Every call returns 0 or a negative KILN_E*
 * code with the message set; hex is the 64-character digest. */
typedef struct {
    const char *name;
    /* *size: the complete blob's size, or UINT64_MAX when absent; *partial:
     * bytes of an upload in progress (0 when none). */
    int (*stat)(void *be, const char *hex, uint64_t *size, uint64_t *partial);
    /* Up to cap bytes from off of a complete blob. */
    int (*read)(void *be, const char *hex, uint64_t off, void *buf, size_t cap, size_t *got);
    /* Appends to the upload in progress, which holds exactly off bytes. */
    int (*append)(void *be, const char *hex, uint64_t off, const void *data, size_t len);
    /* The upload in progress becomes the blob (its digest already checked). */
    int (*seal)(void *be, const char *hex);
    /* The blob and any upload of it go. */
    int (*remove)(void *be, const char *hex);
    /* Reads an upload in progress from its start (to hash it again after a
     * restart): up to cap bytes from off. */
    int (*read_partial)(void *be, const char *hex, uint64_t off, void *buf, size_t cap,
                        size_t *got);
    /* Drops uploads in progress untouched for max_age_s (never finished:
     * their job died or gave up); *n how many. */
    int (*sweep_partial)(void *be, int64_t max_age_s, unsigned *n);
    void (*destroy)(void *be);
} kiln_store_backend_t;

/* The disk backend under dir (made if missing, mode 0700). */
int kiln_store_new_disk(kiln_store_t **out, const char *dir);
void kiln_store_destroy(kiln_store_t **self_p);

/* digest "sha256:<hex>" checked and its hex part copied to hex[65]. */
int kiln_store_parse_digest(const char *digest, char hex[65]);

/* *size: the blob's size, UINT64_MAX when it is not complete; *have: the
 * bytes held (the size when complete, else the upload's). */
int kiln_store_stat(kiln_store_t *self, const char *digest, uint64_t *size, uint64_t *have);

/* A chunk of an upload at off (must equal what is held: KILN_ESTALE
 * otherwise, with the held count in *have). With last, the blob is
 * complete at off + len bytes and kept only if it hashes to its name
 * (KILN_EINVAL otherwise, the upload dropped). A blob already complete
 * takes nothing and answers 0. */
int kiln_store_put(kiln_store_t *self, const char *digest, uint64_t off, const void *data,
                   size_t len, bool last, uint64_t *have);

/* Up to cap (<= KILN_STORE_CHUNK_MAX) bytes of a complete blob from off;
 * KILN_ENOTFOUND when there is none. */
int kiln_store_get(kiln_store_t *self, const char *digest, uint64_t off, void *buf, size_t cap,
                   size_t *got, uint64_t *size);

int kiln_store_remove(kiln_store_t *self, const char *digest);

/* Uploads left unfinished for max_age_s go (the retention sweep's). */
int kiln_store_sweep_partial(kiln_store_t *self, int64_t max_age_s, unsigned *n);

typedef struct {
    uint64_t puts, put_bytes, gets, get_bytes, blobs_kept, blobs_removed, refused;
} kiln_store_stats_t;
void kiln_store_stats(const kiln_store_t *self, kiln_store_stats_t *out);
const char *kiln_store_backend_name(const kiln_store_t *self);

#endif
