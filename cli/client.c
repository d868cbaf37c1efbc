/* client.c: request/reply and event streams over the CLI's CURVE socket
 * (see client.h). */
#include "cli/client.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "common/clock.h"
#include "common/error.h"
#include "common/keys.h"
#include "common/transport.h"

#define KILN_CLIENT_PENDING_MAX 10000

struct kiln_client {
    void *zctx;
    void *sock;
    uint64_t next_id;
    Kiln__Envelope **pending; /* events received while waiting for a reply */
    size_t n_pending, head;
    char endpoint[512];
    char key_path[4096], server_key_path[4096];
    void *monitor;            /* PAIR: the connection's events, or NULL */
    bool connected, handshaken;
    unsigned failed_handshakes, refused_connects;
};

/* A coordinator that fails this many handshakes, or refuses this many
 * connections, before any succeeded is not going to answer. */
#define KILN_CLIENT_HANDSHAKE_TRIES 3
#define KILN_CLIENT_CONNECT_TRIES 5

static char s_paths[3][4096];

int kiln_client_resolve(kiln_client_target_t *t)
{
    /* A farm's directory given (--data-dir, or kiln run's own farm) is
     * that farm: the environment's coordinator and keys are another's. */
    if (!t->data_dir) {
        if (!t->coordinator)
            t->coordinator = getenv("KILN_COORDINATOR");
        if (!t->server_key)
            t->server_key = getenv("KILN_SERVER_KEY");
        if (!t->key)
            t->key = getenv("KILN_CLIENT_KEY");
        if (t->coordinator && t->server_key && t->key)
            return 0;
    }
    const char *dir = t->data_dir ? t->data_dir : getenv("KILN_DATA_DIR");
    static char home_dir[4096];
    if (!dir && getenv("HOME")) {
        snprintf(home_dir, sizeof home_dir, "%s/.kiln", getenv("HOME"));
        dir = home_dir;
    }
    if (!dir) {
        kiln_error_set("no farm given: use --data-dir DIR, or --coordinator with --server-key "
                       "and --key");
        return KILN_EINVAL;
    }
    if (!t->coordinator) {
        char path[4200];
        snprintf(path, sizeof path, "%s/endpoint", dir);
        FILE *f = fopen(path, "re");
        if (!f) {
            kiln_error_set("no farm at %s (no %s; is `kiln up --data-dir %s` running?)", dir, path,
                           dir);
            return KILN_EINVAL;
        }
        if (!fgets(s_paths[0], sizeof s_paths[0], f))
            s_paths[0][0] = '\0';
        fclose(f);
        s_paths[0][strcspn(s_paths[0], "\r\n")] = '\0';
        t->coordinator = s_paths[0];
    }
    if (!t->server_key) {
        snprintf(s_paths[1], sizeof s_paths[1], "%s/keys/server.pub", dir);
        t->server_key = s_paths[1];
    }
    if (!t->key) {
        snprintf(s_paths[2], sizeof s_paths[2], "%s/keys/client.key", dir);
        t->key = s_paths[2];
    }
    return 0;
}

int kiln_client_open(kiln_client_t **out, const kiln_client_target_t *t)
{
    kiln_keypair_t own, server;
    int rc;
    *out = NULL;
    if ((rc = kiln_keys_load(&own, t->key)) != 0)
        return rc;
    if (!own.has_secret) {
        kiln_error_set("%s holds no secret key", t->key);
        return KILN_EINVAL;
    }
    if ((rc = kiln_keys_load(&server, t->server_key)) != 0)
        return rc;
    kiln_client_t *self = calloc(1, sizeof *self);
    if (!self || !(self->pending = calloc(KILN_CLIENT_PENDING_MAX, sizeof *self->pending))) {
        free(self);
        kiln_error_set("out of memory");
        return -1;
    }
    snprintf(self->endpoint, sizeof self->endpoint, "%s", t->coordinator);
    snprintf(self->key_path, sizeof self->key_path, "%s", t->key);
    snprintf(self->server_key_path, sizeof self->server_key_path, "%s", t->server_key);
    self->zctx = zmq_ctx_new();
    /* The connection's events say at once what a silent coordinator would
     * leave to a timeout: a refused key, a wrong server key, nothing there. */
    self->monitor = self->zctx ? zmq_socket(self->zctx, ZMQ_PAIR) : NULL;
    if (self->monitor && zmq_connect(self->monitor, "inproc://kiln-client-monitor") != 0) {
        zmq_close(self->monitor);
        self->monitor = NULL;
    }
    self->sock = self->zctx ? kiln_transport_connect_monitored(
                                  self->zctx, t->coordinator, &own, server.public_z85, NULL,
                                  self->monitor ? "inproc://kiln-client-monitor" : NULL)
                            : NULL;
    if (!self->sock) {
        kiln_client_destroy(&self);
        return KILN_EINFRA;
    }
    int linger = 200;
    zmq_setsockopt(self->sock, ZMQ_LINGER, &linger, sizeof linger);
    self->next_id = (uint64_t)kiln_clock_mono_us();
    *out = self;
    return 0;
}

void kiln_client_destroy(kiln_client_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    kiln_client_t *self = *self_p;
    for (size_t i = 0; i < self->n_pending; i++)
        kiln__envelope__free_unpacked(self->pending[(self->head + i) % KILN_CLIENT_PENDING_MAX],
                                      NULL);
    free(self->pending);
    if (self->sock)
        zmq_socket_monitor(self->sock, NULL, 0);
    if (self->monitor) {
        int zero = 0;
        zmq_setsockopt(self->monitor, ZMQ_LINGER, &zero, sizeof zero);
        zmq_close(self->monitor);
    }
    if (self->sock)
        zmq_close(self->sock);
    if (self->zctx)
        zmq_ctx_term(self->zctx);
    free(self);
    *self_p = NULL;
}

void *kiln_client_socket(kiln_client_t *self)
{
    return self->sock;
}

/* Reads the connection's events; an error (set) when they say the
 * coordinator will never answer: KILN_EDENIED (our key refused),
 * KILN_EINFRA (the handshake fails again and again: a wrong server key;
 * nothing accepts the connection: no farm there). */
static int s_events(kiln_client_t *self)
{
    uint16_t event;
    uint32_t value;
    while (kiln_transport_monitor_event(self->monitor, &event, &value) == 0) {
        switch (event) {
        case ZMQ_EVENT_HANDSHAKE_SUCCEEDED: self->handshaken = true; break;
        case ZMQ_EVENT_CONNECTED: self->connected = true; break;
        case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
            kiln_error_set("the coordinator at %s refused this client's key (%s, status %u): it "
                           "is not in the farm's allow-list (ALLOW/clients/*.pub)",
                           self->endpoint, self->key_path, value);
            return KILN_EDENIED;
        case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
        case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
        case ZMQ_EVENT_DISCONNECTED:
            if (!self->handshaken && ++self->failed_handshakes >= KILN_CLIENT_HANDSHAKE_TRIES) {
                kiln_error_set("the CURVE handshake with %s fails: is %s the coordinator's public "
                               "key (KILN_SERVER_KEY, --server-key)?",
                               self->endpoint, self->server_key_path);
                return KILN_EINFRA;
            }
            break;
        case ZMQ_EVENT_CONNECT_RETRIED:
            if (!self->connected && ++self->refused_connects >= KILN_CLIENT_CONNECT_TRIES) {
                kiln_error_set("nothing accepts connections at %s: is the farm running? (a farm "
                               "that stopped leaves its endpoint file behind)",
                               self->endpoint);
                return KILN_EINFRA;
            }
            break;
        default: break;
        }
    }
    return 0;
}

/* Waits for one message; KILN_ETIMEOUT, KILN_EAGAIN (extra_fd ready). */
static int s_recv(kiln_client_t *self, int64_t deadline, int extra_fd, Kiln__Envelope **out)
{
    for (;;) {
        kiln_transport_msg_t msg;
        int rc = kiln_transport_recv(self->sock, false, &msg);
        if (rc == 0) {
            *out = msg.env;
            return 0;
        }
        if (rc != KILN_EAGAIN)
            return rc;
        if (self->monitor && (rc = s_events(self)) != 0)
            return rc;
        zmq_pollitem_t items[3] = {{self->sock, 0, ZMQ_POLLIN, 0}};
        int n_items = 1, extra_at = -1;
        if (self->monitor)
            items[n_items++] = (zmq_pollitem_t){self->monitor, 0, ZMQ_POLLIN, 0};
        if (extra_fd >= 0) {
            extra_at = n_items;
            items[n_items++] = (zmq_pollitem_t){NULL, extra_fd, ZMQ_POLLIN, 0};
        }
        long timeout = -1;
        if (deadline >= 0) {
            int64_t left = deadline - kiln_clock_mono_ms();
            if (left <= 0) {
                kiln_error_set("no answer from the coordinator at %s", self->endpoint);
                return KILN_ETIMEOUT;
            }
            timeout = (long)left;
        }
        if (zmq_poll(items, n_items, timeout) == -1) {
            if (zmq_errno() == EINTR)
                continue;
            kiln_error_set("zmq_poll: %s", zmq_strerror(zmq_errno()));
            return -1;
        }
        if (extra_at >= 0 && (items[extra_at].revents & ZMQ_POLLIN))
            return KILN_EAGAIN;
    }
}

int kiln_client_call(kiln_client_t *self, Kiln__Request *req, int timeout_ms,
                     Kiln__Envelope **out)
{
    Kiln__Envelope env = KILN__ENVELOPE__INIT;
    int64_t deadline = kiln_clock_mono_ms() + timeout_ms;
    int rc;
    *out = NULL;
    req->request_id = ++self->next_id;
    env.body_case = KILN__ENVELOPE__BODY_REQUEST;
    env.request = req;
    if ((rc = kiln_transport_send(self->sock, NULL, 0, &env)) != 0)
        return rc;
    for (;;) {
        Kiln__Envelope *m = NULL;
        if ((rc = s_recv(self, deadline, -1, &m)) != 0)
            return rc;
        if (m->body_case == KILN__ENVELOPE__BODY_REPLY && m->reply->request_id == req->request_id) {
            *out = m;
            return 0;
        }
        if (m->body_case == KILN__ENVELOPE__BODY_EVENT && self->n_pending < KILN_CLIENT_PENDING_MAX) {
            self->pending[(self->head + self->n_pending++) % KILN_CLIENT_PENDING_MAX] = m;
            continue;
        }
        kiln__envelope__free_unpacked(m, NULL);
    }
}

int kiln_client_next_event(kiln_client_t *self, int timeout_ms, int extra_fd,
                           Kiln__Envelope **out)
{
    *out = NULL;
    if (self->n_pending) {
        *out = self->pending[self->head];
        self->head = (self->head + 1) % KILN_CLIENT_PENDING_MAX;
        self->n_pending--;
        return 0;
    }
    int64_t deadline = timeout_ms < 0 ? -1 : kiln_clock_mono_ms() + timeout_ms;
    for (;;) {
        Kiln__Envelope *m = NULL;
        int rc = s_recv(self, deadline, extra_fd, &m);
        if (rc != 0)
            return rc;
        if (m->body_case == KILN__ENVELOPE__BODY_EVENT) {
            *out = m;
            return 0;
        }
        kiln__envelope__free_unpacked(m, NULL);
    }
}
