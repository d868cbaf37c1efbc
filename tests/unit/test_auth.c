/* test_auth.c: the ZAP allow-list over real CURVE sockets on 127.0.0.1:
 * admitted keys arrive tagged with their role, unknown keys never deliver
 * a message, a reload admits new keys, an oversized frame is dropped. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>
#include <zmq.h>

#include "common/auth.h"
#include "common/clock.h"
#include "common/error.h"
#include "common/fs.h"
#include "common/keys.h"
#include "common/transport.h"
#include "worker/workspace.h"

typedef struct {
    char dir[64];
    void *ctx;
    kiln_auth_t *auth;
    void *router;
    char endpoint[128];
    kiln_keypair_t server;
} s_fixture_t;

static void s_keypair(const char *dir, const char *name, kiln_keypair_t *kp)
{
    assert_int_equal(kiln_keys_generate(kp), 0);
    assert_int_equal(kiln_keys_write(kp, dir, name), 0);
}

static int s_setup(void **state)
{
    s_fixture_t *f = calloc(1, sizeof *f);
    char path[256];
    snprintf(f->dir, sizeof f->dir, "/tmp/kiln-auth-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(path, sizeof path, "%s/workers", f->dir);
    mkdir(path, 0700);
    snprintf(path, sizeof path, "%s/clients", f->dir);
    mkdir(path, 0700);
    assert_int_equal(kiln_keys_generate(&f->server), 0);
    f->ctx = zmq_ctx_new();
    assert_int_equal(kiln_auth_new(&f->auth, f->ctx, f->dir), 0);
    f->router = kiln_transport_bind(f->ctx, "tcp://127.0.0.1:*", &f->server);
    assert_non_null(f->router);
    size_t len = sizeof f->endpoint;
    zmq_getsockopt(f->router, ZMQ_LAST_ENDPOINT, f->endpoint, &len);
    *state = f;
    return 0;
}

static int s_teardown(void **state)
{
    s_fixture_t *f = *state;
    zmq_close(f->router);
    kiln_auth_destroy(&f->auth);
    zmq_ctx_term(f->ctx);
    kiln_fs_rmtree(f->dir);
    free(f);
    return 0;
}

/* Serves ZAP and waits up to ms for one message on the router. */
static int s_serve(s_fixture_t *f, int ms, kiln_transport_msg_t *msg)
{
    int64_t deadline = kiln_clock_mono_ms() + ms;
    for (;;) {
        int rc = kiln_transport_recv(f->router, true, msg);
        if (rc != KILN_EAGAIN)
            return rc;
        int64_t left = deadline - kiln_clock_mono_ms();
        if (left <= 0)
            return KILN_ETIMEOUT;
        zmq_pollitem_t items[2] = {{f->router, 0, ZMQ_POLLIN, 0},
                                   {kiln_auth_socket(f->auth), 0, ZMQ_POLLIN, 0}};
        zmq_poll(items, 2, (long)left);
        if (items[1].revents & ZMQ_POLLIN)
            kiln_auth_handle(f->auth);
    }
}

static void *s_client(s_fixture_t *f, const kiln_keypair_t *kp)
{
    void *s = kiln_transport_connect(f->ctx, f->endpoint, kp, f->server.public_z85, NULL);
    assert_non_null(s);
    int linger = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    return s;
}

static void s_ping(void *sock)
{
    Kiln__Envelope env = KILN__ENVELOPE__INIT;
    Kiln__Request req = KILN__REQUEST__INIT;
    req.kind = KILN__REQUEST_KIND__REQ_PING;
    env.body_case = KILN__ENVELOPE__BODY_REQUEST;
    env.request = &req;
    assert_int_equal(kiln_transport_send(sock, NULL, 0, &env), 0);
}

static void test_roles(void **state)
{
    s_fixture_t *f = *state;
    kiln_keypair_t w, c;
    char dir[128];
    snprintf(dir, sizeof dir, "%s/workers", f->dir);
    s_keypair(dir, "w1", &w);
    snprintf(dir, sizeof dir, "%s/clients", f->dir);
    s_keypair(dir, "alice", &c);
    assert_int_equal(kiln_auth_reload(f->auth), 0);
    assert_int_equal(kiln_auth_count(f->auth, KILN_ROLE_WORKER), 1);
    assert_int_equal(kiln_auth_count(f->auth, KILN_ROLE_CLIENT), 1);
    void *ws = s_client(f, &w), *cs = s_client(f, &c);
    kiln_transport_msg_t msg;
    s_ping(ws);
    assert_int_equal(s_serve(f, 5000, &msg), 0);
    char want[128], key[KILN_KEY_Z85_LEN + 1];
    snprintf(want, sizeof want, "worker:%s:w1", w.public_z85);
    assert_string_equal(msg.user_id, want);
    const char *name = NULL;
    assert_int_equal(kiln_auth_role(msg.user_id, &name, key), KILN_ROLE_WORKER);
    assert_string_equal(name, "w1");
    assert_string_equal(key, w.public_z85);
    /* A user id without a whole key is no role at all. */
    assert_int_equal(kiln_auth_role("worker:short:w1", &name, key), KILN_ROLE_NONE);
    assert_int_equal(kiln_auth_role("worker:", NULL, NULL), KILN_ROLE_NONE);
    kiln_transport_msg_clear(&msg);
    s_ping(cs);
    assert_int_equal(s_serve(f, 5000, &msg), 0);
    snprintf(want, sizeof want, "client:%s:alice", c.public_z85);
    assert_string_equal(msg.user_id, want);
    kiln_transport_msg_clear(&msg);
    assert_true(kiln_transport_is_curve(ws));
    zmq_close(ws);
    zmq_close(cs);
}

static void test_unknown_key_refused(void **state)
{
    s_fixture_t *f = *state;
    kiln_keypair_t stranger;
    assert_int_equal(kiln_keys_generate(&stranger), 0);
    void *s = s_client(f, &stranger);
    kiln_transport_msg_t msg;
    s_ping(s);
    assert_int_equal(s_serve(f, 800, &msg), KILN_ETIMEOUT);
    zmq_close(s);
    /* Admitted after a reload: the allow-list is read again. */
    char dir[128];
    snprintf(dir, sizeof dir, "%s/clients/late.pub", f->dir);
    assert_int_equal(kiln_keys_write_public(&stranger, dir), 0);
    assert_int_equal(kiln_auth_reload(f->auth), 0);
    s = s_client(f, &stranger);
    s_ping(s);
    assert_int_equal(s_serve(f, 5000, &msg), 0);
    char want[128];
    snprintf(want, sizeof want, "client:%s:late", stranger.public_z85);
    assert_string_equal(msg.user_id, want);
    kiln_transport_msg_clear(&msg);
    zmq_close(s);
}

static void test_wrong_server_key(void **state)
{
    s_fixture_t *f = *state;
    kiln_keypair_t c, impostor;
    char dir[128];
    snprintf(dir, sizeof dir, "%s/clients", f->dir);
    s_keypair(dir, "bob", &c);
    kiln_auth_reload(f->auth);
    assert_int_equal(kiln_keys_generate(&impostor), 0);
    /* A client that trusts another server key cannot complete the
     * handshake: nothing is delivered. */
    void *s = kiln_transport_connect(f->ctx, f->endpoint, &c, impostor.public_z85, NULL);
    int linger = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    kiln_transport_msg_t msg;
    s_ping(s);
    assert_int_equal(s_serve(f, 800, &msg), KILN_ETIMEOUT);
    zmq_close(s);
}

static void test_oversized_dropped(void **state)
{
    s_fixture_t *f = *state;
    kiln_keypair_t c;
    char dir[128];
    snprintf(dir, sizeof dir, "%s/clients", f->dir);
    s_keypair(dir, "carol", &c);
    kiln_auth_reload(f->auth);
    void *s = s_client(f, &c);
    size_t big = KILN_MSG_MAX + 1024;
    char *junk = calloc(1, big);
    assert_int_equal(zmq_send(s, junk, big, 0), (int)big);
    kiln_transport_msg_t msg;
    assert_int_equal(s_serve(f, 1500, &msg), KILN_ETIMEOUT);
    free(junk);
    zmq_close(s);
    /* The server keeps serving others. */
    void *s2 = s_client(f, &c);
    s_ping(s2);
    assert_int_equal(s_serve(f, 5000, &msg), 0);
    kiln_transport_msg_clear(&msg);
    zmq_close(s2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_roles, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_unknown_key_refused, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_wrong_server_key, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_oversized_dropped, s_setup, s_teardown),
    };
    return cmocka_run_group_tests_name("auth", tests, NULL, NULL);
}
