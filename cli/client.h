/* client.h: the CLI's connection to a coordinator.
 *
 * A client is a CURVE DEALER socket with an admitted client key. It finds
 * its farm from --data-dir (the directory `kiln up` or `kiln run --keep`
 * leaves: endpoint, keys/server.pub, keys/client.key), or from
 * --coordinator / KILN_COORDINATOR with --server-key / KILN_SERVER_KEY and
 * --key / KILN_CLIENT_KEY for a remote farm.
 */
#ifndef KILN_CLIENT_H
#define KILN_CLIENT_H

#include <stdint.h>

#include "proto/kiln.pb-c.h"

typedef struct kiln_client kiln_client_t;

typedef struct {
    const char *data_dir;
    const char *coordinator;
    const char *server_key;
    const char *key;
} kiln_client_target_t;

/* Fills unset fields from the environment and the data directory (default
 * $KILN_DATA_DIR, then ~/.kiln). Returns KILN_EINVAL when no farm can be
 * found, with a message saying what to pass. */
int kiln_client_resolve(kiln_client_target_t *t);
int kiln_client_open(kiln_client_t **out, const kiln_client_target_t *t);
void kiln_client_destroy(kiln_client_t **self_p);
void *kiln_client_socket(kiln_client_t *self);

/* Sends req (its request_id is set here) and waits up to timeout_ms for the
 * matching reply. Events arriving meanwhile are kept for next_event.
 * Returns 0 with *out (free with kiln__envelope__free_unpacked), or
 * KILN_ETIMEOUT / negative. */
int kiln_client_call(kiln_client_t *self, Kiln__Request *req, int timeout_ms,
                     Kiln__Envelope **out);
/* The next RunEvent envelope, waiting up to timeout_ms (-1: forever).
 * extra_fd (or -1) is polled too; if it becomes readable first, returns
 * KILN_EAGAIN so the caller can look at it. */
int kiln_client_next_event(kiln_client_t *self, int timeout_ms, int extra_fd,
                           Kiln__Envelope **out);

#endif
