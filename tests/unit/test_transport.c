/* test_transport.c: the wire format and its bounds: envelopes round-trip,
 * and every malformed frame (garbage, wrong version, no body, oversized
 * field, too many repeats, extra frames) is refused with KILN_EPROTO. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <zmq.h>

#include "common/error.h"
#include "common/transport.h"

static Kiln__Envelope *s_roundtrip(Kiln__Envelope *env)
{
    env->version = KILN_PROTO_VERSION;
    size_t len = kiln__envelope__get_packed_size(env);
    uint8_t *buf = malloc(len);
    kiln__envelope__pack(env, buf);
    Kiln__Envelope *out = kiln__envelope__unpack(NULL, len, buf);
    free(buf);
    return out;
}

static void test_assign_roundtrip(void **state)
{
    (void)state;
    Kiln__Envelope env = KILN__ENVELOPE__INIT;
    Kiln__JobAssign a = KILN__JOB_ASSIGN__INIT;
    Kiln__StepSpec s0 = KILN__STEP_SPEC__INIT, *steps[1] = {&s0};
    Kiln__KeyValue kv = KILN__KEY_VALUE__INIT, *kvs[1] = {&kv};
    kv.key = "GREETING";
    kv.value = "hello";
    s0.name = "build";
    s0.run = "make -j2";
    s0.timeout_ms = 60000;
    a.job_key = "7/build";
    a.token = 3;
    a.run_id = 7;
    a.attempt = 2;
    a.env = kvs;
    a.n_env = 1;
    a.steps = steps;
    a.n_steps = 1;
    env.body_case = KILN__ENVELOPE__BODY_ASSIGN;
    env.assign = &a;
    Kiln__Envelope *out = s_roundtrip(&env);
    assert_non_null(out);
    assert_int_equal(kiln_transport_check(out), 0);
    assert_int_equal(out->body_case, KILN__ENVELOPE__BODY_ASSIGN);
    assert_string_equal(out->assign->job_key, "7/build");
    assert_int_equal(out->assign->token, 3);
    assert_int_equal(out->assign->attempt, 2);
    assert_int_equal(out->assign->n_steps, 1);
    assert_string_equal(out->assign->steps[0]->run, "make -j2");
    assert_int_equal(out->assign->steps[0]->timeout_ms, 60000);
    assert_string_equal(out->assign->env[0]->value, "hello");
    kiln__envelope__free_unpacked(out, NULL);
}

static void test_check_version_and_body(void **state)
{
    (void)state;
    Kiln__Envelope env = KILN__ENVELOPE__INIT;
    Kiln__Heartbeat hb = KILN__HEARTBEAT__INIT;
    env.body_case = KILN__ENVELOPE__BODY_HEARTBEAT;
    env.heartbeat = &hb;
    env.version = KILN_PROTO_VERSION + 1;
    assert_int_equal(kiln_transport_check(&env), KILN_EPROTO);
    assert_non_null(strstr(kiln_error_last(), "protocol version"));
    env.version = KILN_PROTO_VERSION;
    assert_int_equal(kiln_transport_check(&env), 0);
    Kiln__Envelope empty = KILN__ENVELOPE__INIT;
    empty.version = KILN_PROTO_VERSION;
    assert_int_equal(kiln_transport_check(&empty), KILN_EPROTO);
    assert_non_null(strstr(kiln_error_last(), "without a body"));
}

static void test_check_bounds(void **state)
{
    (void)state;
    Kiln__Envelope env = KILN__ENVELOPE__INIT;
    Kiln__Hello h = KILN__HELLO__INIT;
    char *big = malloc(KILN_WIRE_STRING_MAX + 2);
    memset(big, 'x', KILN_WIRE_STRING_MAX + 1);
    big[KILN_WIRE_STRING_MAX + 1] = '\0';
    h.name = big;
    env.body_case = KILN__ENVELOPE__BODY_HELLO;
    env.hello = &h;
    env.version = KILN_PROTO_VERSION;
    assert_int_equal(kiln_transport_check(&env), KILN_EPROTO);
    assert_non_null(strstr(kiln_error_last(), "'name'"));
    big[KILN_WIRE_STRING_MAX] = '\0'; /* exactly at the bound: fine */
    assert_int_equal(kiln_transport_check(&env), 0);
    h.name = "w1";
    char **labels = calloc(KILN_WIRE_REPEATED_MAX + 1, sizeof *labels);
    for (size_t i = 0; i <= KILN_WIRE_REPEATED_MAX; i++)
        labels[i] = "l";
    h.labels = labels;
    h.n_labels = KILN_WIRE_REPEATED_MAX + 1;
    assert_int_equal(kiln_transport_check(&env), KILN_EPROTO);
    assert_non_null(strstr(kiln_error_last(), "repeats"));
    h.n_labels = KILN_WIRE_REPEATED_MAX;
    assert_int_equal(kiln_transport_check(&env), 0);
    /* Nested fields are checked too. */
    Kiln__Envelope e2 = KILN__ENVELOPE__INIT;
    Kiln__JobAssign a = KILN__JOB_ASSIGN__INIT;
    Kiln__StepSpec s0 = KILN__STEP_SPEC__INIT, *steps[1] = {&s0};
    big[KILN_WIRE_STRING_MAX] = 'x';
    s0.run = big;
    a.steps = steps;
    a.n_steps = 1;
    e2.version = KILN_PROTO_VERSION;
    e2.body_case = KILN__ENVELOPE__BODY_ASSIGN;
    e2.assign = &a;
    assert_int_equal(kiln_transport_check(&e2), KILN_EPROTO);
    assert_non_null(strstr(kiln_error_last(), "'run'"));
    free(labels);
    free(big);
}

/* A plain (no CURVE) ROUTER/DEALER pair over inproc exercises the framing
 * rules of kiln_transport_recv without the handshake. */
typedef struct {
    void *ctx, *router, *dealer;
} s_pair_t;

static int s_pair_setup(void **state)
{
    s_pair_t *p = calloc(1, sizeof *p);
    p->ctx = zmq_ctx_new();
    p->router = zmq_socket(p->ctx, ZMQ_ROUTER);
    p->dealer = zmq_socket(p->ctx, ZMQ_DEALER);
    assert_int_equal(zmq_bind(p->router, "inproc://t"), 0);
    assert_int_equal(zmq_connect(p->dealer, "inproc://t"), 0);
    *state = p;
    return 0;
}

static int s_pair_teardown(void **state)
{
    s_pair_t *p = *state;
    int linger = 0;
    zmq_setsockopt(p->router, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(p->dealer, ZMQ_LINGER, &linger, sizeof linger);
    zmq_close(p->router);
    zmq_close(p->dealer);
    zmq_ctx_term(p->ctx);
    free(p);
    return 0;
}

static int s_recv_wait(void *sock, kiln_transport_msg_t *msg)
{
    zmq_pollitem_t it = {sock, 0, ZMQ_POLLIN, 0};
    zmq_poll(&it, 1, 2000);
    return kiln_transport_recv(sock, true, msg);
}

static void test_recv_refuses_malformed(void **state)
{
    s_pair_t *p = *state;
    kiln_transport_msg_t msg;
    /* Garbage bytes. */
    const char junk[] = "\xff\xff\xff\xff\x0f garbage";
    zmq_send(p->dealer, junk, sizeof junk, 0);
    assert_int_equal(s_recv_wait(p->router, &msg), KILN_EPROTO);
    assert_null(msg.env);
    assert_non_null(strstr(kiln_error_last(), "undecodable"));
    /* A valid envelope with another version. */
    Kiln__Envelope env = KILN__ENVELOPE__INIT;
    Kiln__Heartbeat hb = KILN__HEARTBEAT__INIT;
    env.body_case = KILN__ENVELOPE__BODY_HEARTBEAT;
    env.heartbeat = &hb;
    env.version = 99;
    uint8_t buf[64];
    size_t len = kiln__envelope__pack(&env, buf);
    zmq_send(p->dealer, buf, len, 0);
    assert_int_equal(s_recv_wait(p->router, &msg), KILN_EPROTO);
    assert_non_null(strstr(kiln_error_last(), "version 99"));
    /* Two frames where one is expected; both are swallowed. */
    zmq_send(p->dealer, "a", 1, ZMQ_SNDMORE);
    zmq_send(p->dealer, "b", 1, 0);
    assert_int_equal(s_recv_wait(p->router, &msg), KILN_EPROTO);
    assert_non_null(strstr(kiln_error_last(), "multi-frame"));
    /* The socket still carries good messages afterwards. */
    assert_int_equal(kiln_transport_send(p->dealer, NULL, 0, &env), 0);
    assert_int_equal(s_recv_wait(p->router, &msg), 0);
    assert_int_equal(msg.env->body_case, KILN__ENVELOPE__BODY_HEARTBEAT);
    kiln_transport_msg_clear(&msg);
    assert_int_equal(kiln_transport_recv(p->router, true, &msg), KILN_EAGAIN);
}

static void test_send_unknown_peer(void **state)
{
    s_pair_t *p = *state;
    int one = 1;
    zmq_setsockopt(p->router, ZMQ_ROUTER_MANDATORY, &one, sizeof one);
    Kiln__Envelope env = KILN__ENVELOPE__INIT;
    Kiln__Heartbeat hb = KILN__HEARTBEAT__INIT;
    env.body_case = KILN__ENVELOPE__BODY_HEARTBEAT;
    env.heartbeat = &hb;
    assert_int_equal(kiln_transport_send(p->router, "nobody", 6, &env), KILN_ENOTFOUND);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_assign_roundtrip),
        cmocka_unit_test(test_check_version_and_body),
        cmocka_unit_test(test_check_bounds),
        cmocka_unit_test_setup_teardown(test_recv_refuses_malformed, s_pair_setup, s_pair_teardown),
        cmocka_unit_test_setup_teardown(test_send_unknown_peer, s_pair_setup, s_pair_teardown),
    };
    return cmocka_run_group_tests_name("transport", tests, NULL, NULL);
}
