/* transport.h: CURVE-encrypted ZeroMQ sockets carrying protobuf envelopes.
 *
 * The coordinator binds one ROUTER socket as CURVE server; workers and
 * clients connect DEALER sockets as CURVE clients. Every message is one
 * frame holding one kiln.Envelope (proto/kiln.proto); on the ROUTER it is
 * preceded by the peer's routing id. The socket options here are the
 * protocol's safety rails: ZMQ_MAXMSGSIZE drops a peer that sends an
 * oversized frame, heartbeats find dead TCP peers, ROUTER_MANDATORY makes
 * sends to a vanished peer fail loudly instead of vanishing.
 *
 * Decoding is defensive: a frame that does not unpack, carries another
 * protocol version, has no body, or has a field over its bound is refused
 * with KILN_EPROTO and a message naming the peer, and the caller drops it.
 */
#ifndef KILN_TRANSPORT_H
#define KILN_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>

#include "common/keys.h"
#include "proto/kiln.pb-c.h"

/* 2: a job's result carries the results of the steps that ended with it.
 * 3: a worker may leave out the start of a step that ended within its hold
 * (the coordinator then records the start from the step's result).
 * 4: a job's env comes evaluated; steps carry their timeout, continue-on-error
 * and env as templates, and the worker names each step as it evaluates it.
 * 5: a worker's name is its key's; workers no longer choose their routing id,
 * and say which process they are (Hello.instance); Welcome.refused. */
#define KILN_PROTO_VERSION 5
#define KILN_MSG_MAX (4 * 1024 * 1024)
/* Bounds on every decoded field, checked by kiln_transport_check. */
#define KILN_WIRE_STRING_MAX (64 * 1024)
/* A KeyValue's value: as long as a job output may be (1 MiB, as on GitHub). */
#define KILN_WIRE_VALUE_MAX (1024 * 1024)
#define KILN_WIRE_REPEATED_MAX 10000
#define KILN_WIRE_DEPTH_MAX 8
#define KILN_IDENTITY_MAX 255
#define KILN_SNDHWM 100000
#define KILN_HEARTBEAT_IVL_MS 1000
#define KILN_HEARTBEAT_TIMEOUT_MS 5000
/* The coordinator's own pings (see kiln_transport_bind). */
#define KILN_SERVER_HEARTBEAT_IVL_MS 10000

typedef struct {
    unsigned char identity[KILN_IDENTITY_MAX];
    size_t id_len;
    char user_id[128];      /* ZAP user id ("worker:KEY:NAME"), "" on DEALER side */
    char peer_address[64];  /* "127.0.0.1" etc., "" when unknown */
    int src_fd;             /* the connection's file descriptor (ZMQ_SRCFD), or -1 */
    Kiln__Envelope *env;    /* owned; freed by kiln_transport_msg_clear */
} kiln_transport_msg_t;

/* A ROUTER bound at `endpoint` as CURVE server with `server` (secret
 * needed). The ZAP handler must already be bound. NULL on failure with
 * kiln_error_last() set. */
void *kiln_transport_bind(void *zctx, const char *endpoint, const kiln_keypair_t *server);
/* A DEALER connected to `endpoint` as CURVE client with key pair `own`,
 * trusting `server_public_z85`. routing_id may be NULL (random). */
/* The next event of a socket monitor (zmq_socket_monitor's PAIR), without
 * waiting: 0 with its number and value, or KILN_EAGAIN when none waits. */
int kiln_transport_monitor_event(void *monitor, uint16_t *event, uint32_t *value);

/* As kiln_transport_connect, with the connection's events (connected,
 * retried, handshake succeeded or failed, disconnected) sent to the inproc
 * endpoint monitor, whose PAIR the caller has connected already. */
void *kiln_transport_connect_monitored(void *zctx, const char *endpoint, const kiln_keypair_t *own,
                                       const char *server_public_z85, const char *routing_id,
                                       const char *monitor);
void *kiln_transport_connect(void *zctx, const char *endpoint, const kiln_keypair_t *own,
                             const char *server_public_z85, const char *routing_id);
/* Whether the socket negotiated CURVE (ZMQ_MECHANISM). */
bool kiln_transport_is_curve(void *sock);

/* Stamps the version, packs and sends without blocking. identity is NULL on
 * a DEALER. Returns 0, KILN_EAGAIN (high-water mark reached), KILN_ENOTFOUND
 * (no such peer on a ROUTER), or -1. */
int kiln_transport_send(void *sock, const void *identity, size_t id_len, Kiln__Envelope *env);
/* Receives one message without blocking. Returns 0 with out->env set,
 * KILN_EAGAIN when nothing is waiting, KILN_EPROTO for a malformed message
 * (out's identity, user_id and peer_address are still filled so the caller
 * can log and account it; out->env is NULL). */
int kiln_transport_recv(void *sock, bool router, kiln_transport_msg_t *out);
void kiln_transport_msg_clear(kiln_transport_msg_t *msg);

/* Checks a decoded envelope: version, body present, every string and
 * repeated field within bounds. Returns 0 or KILN_EPROTO with a message. */
int kiln_transport_check(const Kiln__Envelope *env);

/* A printable form of a routing id for logs (hex if not printable). */
void kiln_transport_identity_str(const unsigned char *id, size_t len, char *out, size_t cap);

#endif
