/* transport.c: CURVE sockets and envelope framing (see transport.h). */
#include "common/transport.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <zmq.h>

#include "common/auth.h"
#include "common/curvemem.h"
#include "common/error.h"
#include "common/log.h"

/* libzmq 4.3 keeps this option behind its draft API; the value is stable. */
#ifndef ZMQ_ZAP_ENFORCE_DOMAIN
#define ZMQ_ZAP_ENFORCE_DOMAIN 93
#endif

static int s_setint(void *sock, int opt, int value)
{
    return zmq_setsockopt(sock, opt, &value, sizeof value);
}

static void s_common_opts(void *sock)
{
    static bool said;
    if (!said && !kiln_curvemem_active()) {
        kiln_log_warn("CURVE buffers come from guarded mappings (sodium_allocarray is not ours)");
        said = true;
    }
    int64_t maxmsg = KILN_MSG_MAX;
    zmq_setsockopt(sock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    s_setint(sock, ZMQ_SNDHWM, KILN_SNDHWM);
    s_setint(sock, ZMQ_RCVHWM, KILN_SNDHWM);
    s_setint(sock, ZMQ_HEARTBEAT_IVL, KILN_HEARTBEAT_IVL_MS);
    s_setint(sock, ZMQ_HEARTBEAT_TIMEOUT, KILN_HEARTBEAT_TIMEOUT_MS);
    s_setint(sock, ZMQ_LINGER, 1000);
}

void *kiln_transport_bind(void *zctx, const char *endpoint, const kiln_keypair_t *server)
{
    void *sock = zmq_socket(zctx, ZMQ_ROUTER);
    if (!sock) {
        kiln_error_set("transport: cannot create socket: %s", zmq_strerror(zmq_errno()));
        return NULL;
    }
    s_common_opts(sock);
    /* libzmq 4.3 keeps each connection's heartbeat timers in one list that
     * it searches linearly whenever a timer is cancelled, which every
     * message after a ping does: with a thousand workers that was a large
     * share of the coordinator's I/O thread. The server pings rarely (a dead
     * peer is still found, and lost workers are found by their heartbeats
     * and the socket monitor long before), and clients send no TTL, which
     * would arm another such timer here on every ping they send. */
    s_setint(sock, ZMQ_HEARTBEAT_IVL, KILN_SERVER_HEARTBEAT_IVL_MS);
    s_setint(sock, ZMQ_HEARTBEAT_TIMEOUT, KILN_SERVER_HEARTBEAT_IVL_MS * 3);
    s_setint(sock, ZMQ_ROUTER_MANDATORY, 1);
    /* No ZMQ_ROUTER_HANDOVER: peers do not name their connections (each
     * gets a routing id from libzmq), and a worker is known by its key, so
     * nothing needs a routing id taken over. libzmq 4.3.4 aborted
     * (stream_engine_base.cpp:331) when two peers handed one id back and
     * forth. */
    /* A connection that has not finished its CURVE handshake in 5 s is
     * closed, so idle or garbage connections do not pile up. */
    s_setint(sock, ZMQ_HANDSHAKE_IVL, 5000);
    /* Per peer: a flooding peer queues at most this many messages here. */
    s_setint(sock, ZMQ_RCVHWM, 1000);
    s_setint(sock, ZMQ_CURVE_SERVER, 1);
    zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, server->secret_z85, KILN_KEY_Z85_LEN);
    zmq_setsockopt(sock, ZMQ_ZAP_DOMAIN, KILN_ZAP_DOMAIN, strlen(KILN_ZAP_DOMAIN));
    if (s_setint(sock, ZMQ_ZAP_ENFORCE_DOMAIN, 1) != 0)
        kiln_log_debug("transport: ZMQ_ZAP_ENFORCE_DOMAIN unavailable; ZAP runs for CURVE anyway");
    if (zmq_bind(sock, endpoint) != 0) {
        kiln_error_set("transport: cannot bind %s: %s", endpoint, zmq_strerror(zmq_errno()));
        zmq_close(sock);
        return NULL;
    }
    return sock;
}

void *kiln_transport_connect(void *zctx, const char *endpoint, const kiln_keypair_t *own,
                             const char *server_public_z85, const char *routing_id)
{
    return kiln_transport_connect_monitored(zctx, endpoint, own, server_public_z85, routing_id,
                                            NULL);
}

void *kiln_transport_connect_monitored(void *zctx, const char *endpoint, const kiln_keypair_t *own,
                                       const char *server_public_z85, const char *routing_id,
                                       const char *monitor)
{
    void *sock = zmq_socket(zctx, ZMQ_DEALER);
    if (!sock) {
        kiln_error_set("transport: cannot create socket: %s", zmq_strerror(zmq_errno()));
        return NULL;
    }
    s_common_opts(sock);
    zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, server_public_z85, KILN_KEY_Z85_LEN);
    zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, own->public_z85, KILN_KEY_Z85_LEN);
    zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, own->secret_z85, KILN_KEY_Z85_LEN);
    /* Short first retries: a local farm starts its coordinator and workers
     * together, and a worker that came up first should not sit out 100 ms;
     * the interval doubles up to the maximum, so a dead coordinator is not
     * hammered. */
    s_setint(sock, ZMQ_RECONNECT_IVL, 10);
    s_setint(sock, ZMQ_RECONNECT_IVL_MAX, 2000);
    if (routing_id)
        zmq_setsockopt(sock, ZMQ_ROUTING_ID, routing_id, strlen(routing_id));
    /* Before the connect, so that the first handshake's fate is seen. */
    if (monitor &&
        zmq_socket_monitor(sock, monitor,
                           ZMQ_EVENT_CONNECTED | ZMQ_EVENT_CONNECT_RETRIED |
                               ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |
                               ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                               ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_DISCONNECTED) != 0) {
        kiln_error_set("transport: cannot monitor the connection: %s", zmq_strerror(zmq_errno()));
        zmq_close(sock);
        return NULL;
    }
    if (zmq_connect(sock, endpoint) != 0) {
        kiln_error_set("transport: cannot connect to %s: %s", endpoint, zmq_strerror(zmq_errno()));
        zmq_close(sock);
        return NULL;
    }
    return sock;
}

int kiln_transport_monitor_event(void *monitor, uint16_t *event, uint32_t *value)
{
    zmq_msg_t ev, addr;
    zmq_msg_init(&ev);
    zmq_msg_init(&addr);
    if (zmq_msg_recv(&ev, monitor, ZMQ_DONTWAIT) == -1) {
        zmq_msg_close(&ev);
        zmq_msg_close(&addr);
        return KILN_EAGAIN;
    }
    /* Two frames: the event and value, then the peer's address. */
    if (zmq_msg_more(&ev))
        zmq_msg_recv(&addr, monitor, 0);
    *event = 0;
    *value = 0;
    if (zmq_msg_size(&ev) >= 6) {
        memcpy(event, zmq_msg_data(&ev), sizeof *event);
        memcpy(value, (const uint8_t *)zmq_msg_data(&ev) + 2, sizeof *value);
    }
    zmq_msg_close(&ev);
    zmq_msg_close(&addr);
    return 0;
}

bool kiln_transport_is_curve(void *sock)
{
    int mech = 0;
    size_t len = sizeof mech;
    return zmq_getsockopt(sock, ZMQ_MECHANISM, &mech, &len) == 0 && mech == ZMQ_CURVE;
}

int kiln_transport_send(void *sock, const void *identity, size_t id_len, Kiln__Envelope *env)
{
    zmq_msg_t msg;
    env->version = KILN_PROTO_VERSION;
    size_t len = kiln__envelope__get_packed_size(env);
    if (len > KILN_MSG_MAX) {
        kiln_error_set("transport: message of %zu bytes exceeds %d", len, KILN_MSG_MAX);
        return KILN_ETOOBIG;
    }
    if (identity) {
        if (zmq_send(sock, identity, id_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) == -1) {
            int e = zmq_errno();
            kiln_error_set("transport: send: %s", zmq_strerror(e));
            return e == EHOSTUNREACH ? KILN_ENOTFOUND : e == EAGAIN ? KILN_EAGAIN : -1;
        }
    }
    if (zmq_msg_init_size(&msg, len) != 0) {
        kiln_error_set("transport: out of memory");
        return -1;
    }
    kiln__envelope__pack(env, zmq_msg_data(&msg));
    if (zmq_msg_send(&msg, sock, ZMQ_DONTWAIT) == -1) {
        int e = zmq_errno();
        zmq_msg_close(&msg);
        kiln_error_set("transport: send: %s", zmq_strerror(e));
        return e == EAGAIN ? KILN_EAGAIN : -1;
    }
    return 0;
}

void kiln_transport_msg_clear(kiln_transport_msg_t *msg)
{
    if (msg->env)
        kiln__envelope__free_unpacked(msg->env, NULL);
    msg->env = NULL;
}

static void s_copy_meta(zmq_msg_t *msg, const char *prop, char *out, size_t cap)
{
    const char *v = zmq_msg_gets(msg, prop);
    snprintf(out, cap, "%s", v ? v : "");
}

int kiln_transport_recv(void *sock, bool router, kiln_transport_msg_t *out)
{
    zmq_msg_t part;
    int rc = KILN_EPROTO, nparts = 0;
    bool more = true;
    char who[300];
    memset(out, 0, offsetof(kiln_transport_msg_t, env));
    out->env = NULL;
    out->src_fd = -1;
    zmq_msg_init(&part);
    if (zmq_msg_recv(&part, sock, ZMQ_DONTWAIT) == -1) {
        zmq_msg_close(&part);
        return KILN_EAGAIN;
    }
    if (router) {
        size_t n = zmq_msg_size(&part);
        out->id_len = n < KILN_IDENTITY_MAX ? n : KILN_IDENTITY_MAX;
        memcpy(out->identity, zmq_msg_data(&part), out->id_len);
        more = zmq_msg_more(&part);
        zmq_msg_close(&part);
        zmq_msg_init(&part);
        if (!more || zmq_msg_recv(&part, sock, ZMQ_DONTWAIT) == -1) {
            kiln_error_set("transport: empty message");
            goto cleanup;
        }
    }
    nparts = 1;
    /* Which connection it came on: a socket monitor reports disconnects by
     * file descriptor. ZMQ_SRCFD is deprecated but the only way there. */
    out->src_fd = zmq_msg_get(&part, ZMQ_SRCFD);
    s_copy_meta(&part, "User-Id", out->user_id, sizeof out->user_id);
    s_copy_meta(&part, "Peer-Address", out->peer_address, sizeof out->peer_address);
    more = zmq_msg_more(&part);
    kiln_transport_identity_str(out->identity, out->id_len, who, sizeof who);
    if (more) {
        kiln_error_set("transport: multi-frame message from %s (%s)", who, out->peer_address);
        goto cleanup;
    }
    out->env = kiln__envelope__unpack(NULL, zmq_msg_size(&part), zmq_msg_data(&part));
    if (!out->env) {
        kiln_error_set("transport: undecodable message of %zu bytes from %s (%s)",
                       zmq_msg_size(&part), who, out->peer_address);
        goto cleanup;
    }
    if (kiln_transport_check(out->env) != 0) {
        char why[KILN_ERROR_MAX];
        snprintf(why, sizeof why, "%s", kiln_error_last());
        kiln_error_set("transport: %s from %s (%s)", why, who, out->peer_address);
        kiln_transport_msg_clear(out);
        goto cleanup;
    }
    rc = 0;
cleanup:
    /* Swallow any trailing frames of a malformed multi-part message. */
    while (more) {
        zmq_msg_close(&part);
        zmq_msg_init(&part);
        if (zmq_msg_recv(&part, sock, ZMQ_DONTWAIT) == -1)
            break;
        more = zmq_msg_more(&part);
    }
    (void)nparts;
    zmq_msg_close(&part);
    return rc;
}

/* Walks a decoded message with its descriptor and checks every bound. */
static int s_check_message(const ProtobufCMessage *m, int depth)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    if (depth > KILN_WIRE_DEPTH_MAX) {
        kiln_error_set("message nested too deeply");
        return KILN_EPROTO;
    }
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        const char *base = (const char *)m + f->offset;
        size_t count = 1;
        const char *items = base;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            count = *(const size_t *)((const char *)m + f->quantifier_offset);
            items = *(const char *const *)base;
            if (count > KILN_WIRE_REPEATED_MAX) {
                kiln_error_set("field '%s' repeats %zu times (max %d)", f->name, count,
                               KILN_WIRE_REPEATED_MAX);
                return KILN_EPROTO;
            }
        } else if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            uint32_t which = *(const uint32_t *)((const char *)m + f->quantifier_offset);
            if (which != f->id)
                continue;
        }
        /* A key/value's value may be a job output (1 MiB, as on GitHub);
         * every other string is a name, a key or a message. */
        size_t max = d == &kiln__key_value__descriptor && strcmp(f->name, "value") == 0
                         ? KILN_WIRE_VALUE_MAX
                         : KILN_WIRE_STRING_MAX;
        for (size_t k = 0; k < count; k++) {
            if (f->type == PROTOBUF_C_TYPE_STRING) {
                const char *s = ((const char *const *)items)[k];
                if (s && strlen(s) > max) {
                    kiln_error_set("field '%s' longer than %zu bytes", f->name, max);
                    return KILN_EPROTO;
                }
            } else if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
                const ProtobufCMessage *sub = ((const ProtobufCMessage *const *)items)[k];
                if (sub && s_check_message(sub, depth + 1) != 0)
                    return KILN_EPROTO;
            }
        }
    }
    return 0;
}

int kiln_transport_check(const Kiln__Envelope *env)
{
    if (env->version != KILN_PROTO_VERSION) {
        kiln_error_set("protocol version %u (this side speaks %d)", env->version,
                       KILN_PROTO_VERSION);
        return KILN_EPROTO;
    }
    if (env->body_case == KILN__ENVELOPE__BODY__NOT_SET) {
        kiln_error_set("message without a body");
        return KILN_EPROTO;
    }
    return s_check_message(&env->base, 0);
}

void kiln_transport_identity_str(const unsigned char *id, size_t len, char *out, size_t cap)
{
    bool printable = len > 0;
    for (size_t i = 0; i < len; i++)
        printable = printable && isprint(id[i]);
    if (printable) {
        snprintf(out, cap, "%.*s", (int)len, (const char *)id);
        return;
    }
    size_t o = 0;
    for (size_t i = 0; i < len && o + 3 < cap; i++)
        o += (size_t)snprintf(out + o, cap - o, "%02x", id[i]);
    if (o == 0 && cap)
        out[0] = '\0';
}
