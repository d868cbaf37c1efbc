/* test_curvemem.c: libzmq's CURVE scratch buffers come from curvemem.c:
 * the process resolves sodium_allocarray to it, a CURVE exchange over
 * loopback TCP is served from it and carries messages intact, and the
 * allocator keeps libsodium's contract (overflow refused, NULL freed). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <sodium.h>
#include <zmq.h>

#include "common/curvemem.h"

static void test_resolved_here(void **state)
{
    (void)state;
    assert_true(kiln_curvemem_active());
}

static void test_contract(void **state)
{
    (void)state;
    assert_null(sodium_allocarray(SIZE_MAX / 2, 4));
    unsigned char *p = sodium_allocarray(100, 3);
    assert_non_null(p);
    assert_int_equal((uintptr_t)p % _Alignof(max_align_t), 0);
    memset(p, 0xab, 300);
    sodium_free(p);
    sodium_free(NULL);
    void *z = sodium_malloc(0);
    assert_non_null(z);
    sodium_free(z);
}

static void s_set_key(void *sock, int opt, const char *z85)
{
    assert_int_equal(zmq_setsockopt(sock, opt, z85, 40), 0);
}

static void test_curve_exchange(void **state)
{
    (void)state;
    char spub[41], ssec[41], cpub[41], csec[41], ep[64];
    assert_int_equal(zmq_curve_keypair(spub, ssec), 0);
    assert_int_equal(zmq_curve_keypair(cpub, csec), 0);
    void *ctx = zmq_ctx_new();
    void *srv = zmq_socket(ctx, ZMQ_ROUTER), *cli = zmq_socket(ctx, ZMQ_DEALER);
    int one = 1, zero = 0;
    zmq_setsockopt(srv, ZMQ_CURVE_SERVER, &one, sizeof one);
    s_set_key(srv, ZMQ_CURVE_SECRETKEY, ssec);
    assert_int_equal(zmq_bind(srv, "tcp://127.0.0.1:*"), 0);
    size_t eplen = sizeof ep;
    zmq_getsockopt(srv, ZMQ_LAST_ENDPOINT, ep, &eplen);
    s_set_key(cli, ZMQ_CURVE_SERVERKEY, spub);
    s_set_key(cli, ZMQ_CURVE_PUBLICKEY, cpub);
    s_set_key(cli, ZMQ_CURVE_SECRETKEY, csec);
    /* Counted from before the connect: the handshake is part of what is
     * counted, and read after it (it may be over by then) the count was
     * short under load. */
    unsigned long before = kiln_curvemem_served();
    assert_int_equal(zmq_connect(cli, ep), 0);
    /* Sizes across the small, batched and large paths of the codec. */
    static const size_t sizes[] = {1, 200, 8191, 70000};
    char *out = malloc(70000), *in = malloc(70000 + 1);
    for (size_t i = 0; i < 70000; i++)
        out[i] = (char)(i * 7);
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        assert_int_equal(zmq_send(cli, out, sizes[i], 0), (int)sizes[i]);
        char id[256];
        int idlen = zmq_recv(srv, id, sizeof id, 0);
        assert_true(idlen > 0);
        assert_int_equal(zmq_recv(srv, in, 70001, 0), (int)sizes[i]);
        assert_memory_equal(in, out, sizes[i]);
        /* And back, through the server's encoder. */
        zmq_send(srv, id, (size_t)idlen, ZMQ_SNDMORE);
        assert_int_equal(zmq_send(srv, out, sizes[i], 0), (int)sizes[i]);
        assert_int_equal(zmq_recv(cli, in, 70001, 0), (int)sizes[i]);
        assert_memory_equal(in, out, sizes[i]);
    }
    /* The handshake and eight messages each went through at least one
     * scratch buffer of ours. */
    assert_true(kiln_curvemem_served() - before >= 8);
    free(out);
    free(in);
    zmq_setsockopt(srv, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(cli, ZMQ_LINGER, &zero, sizeof zero);
    zmq_close(srv);
    zmq_close(cli);
    zmq_ctx_term(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resolved_here),
        cmocka_unit_test(test_contract),
        cmocka_unit_test(test_curve_exchange),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
