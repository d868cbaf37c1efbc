/* auth.h: the coordinator's ZAP handler: who may talk to it, and as what.
 *
 * ZeroMQ asks a ZAP handler (RFC 27) on inproc://zeromq.zap.01 to approve
 * every CURVE handshake. Ours answers from an allow-list directory:
 *
 *   ALLOW/workers/NAME.pub   keys admitted as workers
 *   ALLOW/clients/NAME.pub   keys admitted as clients (CLI, API)
 *
 * An admitted peer gets the ZAP user id "worker:KEY:NAME" or
 * "client:KEY:NAME" (KEY its public key in Z85, so that what it does is
 * recorded against the key itself, not only the file's name); the
 * server reads it from every message (zmq_msg_gets "User-Id") and refuses
 * messages that do not fit the role, so a client key can never take jobs
 * and a worker key can never submit them. Every refusal is logged with the
 * peer's address and key. The handler must be bound before the server
 * socket, so that no handshake can happen without it.
 *
 * The handler is polled from the owner's loop (no thread of its own):
 * libzmq's I/O threads wait asynchronously for the reply.
 */
#ifndef KILN_AUTH_H
#define KILN_AUTH_H

#include <stddef.h>

#define KILN_AUTH_MAX_KEYS 100000
#define KILN_ZAP_DOMAIN "kiln"

typedef enum { KILN_ROLE_NONE = 0, KILN_ROLE_WORKER = 1, KILN_ROLE_CLIENT = 2 } kiln_role_t;

typedef struct kiln_auth kiln_auth_t;

/* Loads the allow-list and binds the ZAP socket in `zctx`. */
int kiln_auth_new(kiln_auth_t **out, void *zctx, const char *allow_dir);
void kiln_auth_destroy(kiln_auth_t **self_p);
/* The REP socket to poll for ZMQ_POLLIN. */
void *kiln_auth_socket(kiln_auth_t *self);
/* Answers every pending ZAP request without blocking. */
void kiln_auth_handle(kiln_auth_t *self);
/* Re-reads the allow-list (e.g. on SIGHUP). On failure the old list stays. */
int kiln_auth_reload(kiln_auth_t *self);
size_t kiln_auth_count(const kiln_auth_t *self, kiln_role_t role);
/* Splits a ZAP user id into role, name (borrowed from user_id) and public
 * key (Z85, into key_out of KILN_KEY_Z85_LEN + 1 bytes, when not NULL). */
kiln_role_t kiln_auth_role(const char *user_id, const char **name_out, char *key_out);

#endif
