/* storeclient.h: a built-in step's side of the farm's store: blobs moved
 * in chunks through the worker's relay (worker/agent_store.c) to and from
 * the coordinator (coordinator/store.h), and the store's other requests.
 *
 * Chunks go with a window in flight (flow control: at most a few MiB
 * outstanding, the coordinator answers each in turn). A request that gets
 * no answer (the worker's connection dropped, the coordinator restarted)
 * is asked again; an upload resumes at what the coordinator says it holds
 * and a download at what was written, so a dropped connection costs the
 * chunks in flight, not the blob. Every blob read is checked against its
 * digest before it is used.
 *
 * In front of the coordinator sits the worker's own blob cache
 * (CACHE_DIR/blobs/<hex>, least recently used evicted past its bound).
 */
#ifndef KILN_STORECLIENT_H
#define KILN_STORECLIENT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "proto/kiln.pb-c.h"

typedef struct kiln_storeclient kiln_storeclient_t;

typedef struct {
    uint64_t bytes;     /* the blob's size */
    uint64_t moved;     /* bytes sent or received for it */
    int64_t ms;
    bool local;         /* a download served by the worker's blob cache */
    bool deduplicated;  /* an upload the coordinator already had */
    unsigned resumed;   /* times it went on after a lost answer */
} kiln_store_xfer_t;

/* From the step's environment (KILN_STORE_SOCKET, KILN_STORE_TOKEN). */
int kiln_storeclient_new(kiln_storeclient_t **out);
void kiln_storeclient_destroy(kiln_storeclient_t **self_p);

/* One request and its answer (*reply: the envelope, caller frees with
 * kiln__envelope__free_unpacked; NULL on failure). Returns the answer's
 * code (0, or a negative KILN_E* with the message set from its error),
 * KILN_ETIMEOUT when no answer came in the step's patience. */
int kiln_storeclient_call(kiln_storeclient_t *self, Kiln__StoreRequest *req,
                          Kiln__Envelope **reply);

/* The file's SHA-256 as "sha256:<hex>". */
int kiln_store_file_digest(const char *path, char digest[72]);

/* Uploads the file (its digest computed into digest). */
int kiln_storeclient_upload(kiln_storeclient_t *self, const char *path, char digest[72],
                            kiln_store_xfer_t *st);

/* Downloads the blob into path (written beside it, renamed into place
 * once its digest checks). */
int kiln_storeclient_download(kiln_storeclient_t *self, const char *digest, const char *path,
                              kiln_store_xfer_t *st);

/* The blob at out_path (a file of the worker's blob cache under
 * cache_dir, fetched from the coordinator when it is not there), its
 * digest checked; the cache is then trimmed to max_bytes. */
int kiln_storeclient_fetch(kiln_storeclient_t *self, const char *digest, const char *cache_dir,
                           uint64_t max_bytes, char *out_path, size_t cap, kiln_store_xfer_t *st);

#endif
