/* wirepoke.c: a test tool that connects to a coordinator with an admitted
 * CURVE key and sends it everything a broken or hostile peer might: random
 * bytes, truncated envelopes, another protocol version, multi-frame
 * messages, messages of the wrong role, results for jobs it does not hold,
 * oversized fields and, last, a frame over the size limit. The coordinator
 * must log, drop and keep serving.
 *
 * usage: kiln-wirepoke ENDPOINT SERVER_PUB KEY_FILE
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "common/keys.h"
#include "common/transport.h"

static void s_raw(void *sock, const void *data, size_t len, int flags)
{
    zmq_send(sock, data, len, flags);
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: kiln-wirepoke ENDPOINT SERVER_PUB KEY_FILE\n");
        return 2;
    }
    kiln_keypair_t own, server;
    if (kiln_keys_load(&own, argv[3]) != 0 || kiln_keys_load(&server, argv[2]) != 0) {
        fprintf(stderr, "wirepoke: cannot read keys\n");
        return 2;
    }
    void *ctx = zmq_ctx_new();
    void *sock = kiln_transport_connect(ctx, argv[1], &own, server.public_z85, "poke");
    if (!sock)
        return 2;
    unsigned seed = 7;
    int sent = 0;
    /* Random bytes. */
    for (int i = 0; i < 100; i++) {
        size_t len = 1 + (size_t)(rand_r(&seed) % 4096);
        unsigned char *buf = malloc(len);
        for (size_t k = 0; k < len; k++)
            buf[k] = (unsigned char)rand_r(&seed);
        s_raw(sock, buf, len, 0);
        free(buf);
        sent++;
    }
    /* Truncated envelopes. */
    Kiln__Envelope env = KILN__ENVELOPE__INIT;
    Kiln__JobResult jr = KILN__JOB_RESULT__INIT;
    jr.job_key = "999/nope";
    jr.token = 12345;
    jr.outcome = KILN__OUTCOME__OUTCOME_SUCCESS;
    jr.message = "a result for a job this peer never held";
    env.body_case = KILN__ENVELOPE__BODY_JOB_RESULT;
    env.job_result = &jr;
    env.version = KILN_PROTO_VERSION;
    unsigned char packed[512];
    size_t plen = kiln__envelope__pack(&env, packed);
    for (size_t cut = 1; cut < plen; cut += 3) {
        s_raw(sock, packed, cut, 0);
        sent++;
    }
    /* The whole thing: a stale result, fenced off. */
    s_raw(sock, packed, plen, 0);
    sent++;
    /* Another protocol version. */
    env.version = 99;
    plen = kiln__envelope__pack(&env, packed);
    s_raw(sock, packed, plen, 0);
    sent++;
    /* Multi-frame. */
    s_raw(sock, "part one", 8, ZMQ_SNDMORE);
    s_raw(sock, "part two", 8, 0);
    sent++;
    /* A message of the other role (a worker key submitting, or a client
     * key sending a heartbeat). */
    Kiln__Envelope req = KILN__ENVELOPE__INIT;
    Kiln__Request r = KILN__REQUEST__INIT;
    r.kind = KILN__REQUEST_KIND__REQ_SUBMIT;
    r.workflow_file = "poke.yml";
    r.workflow_yaml.data = (uint8_t *)"jobs: {a: {runs-on: x, steps: [{run: 'true'}]}}";
    r.workflow_yaml.len = strlen((const char *)r.workflow_yaml.data);
    req.body_case = KILN__ENVELOPE__BODY_REQUEST;
    req.request = &r;
    kiln_transport_send(sock, NULL, 0, &req);
    Kiln__Envelope hb = KILN__ENVELOPE__INIT;
    Kiln__Heartbeat h = KILN__HEARTBEAT__INIT;
    hb.body_case = KILN__ENVELOPE__BODY_HEARTBEAT;
    hb.heartbeat = &h;
    kiln_transport_send(sock, NULL, 0, &hb);
    sent += 2;
    /* A field over its bound (a 100 KiB job key). */
    char *big = malloc(100 * 1024 + 1);
    memset(big, 'k', 100 * 1024);
    big[100 * 1024] = '\0';
    jr.job_key = big;
    env.version = KILN_PROTO_VERSION;
    kiln_transport_send(sock, NULL, 0, &env);
    sent++;
    free(big);
    /* Last: a frame over ZMQ_MAXMSGSIZE; the coordinator drops the
     * connection. */
    size_t huge = KILN_MSG_MAX + 4096;
    char *h2 = calloc(1, huge);
    s_raw(sock, h2, huge, 0);
    free(h2);
    sent++;
    int linger = 2000;
    zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof linger);
    zmq_close(sock);
    zmq_ctx_term(ctx);
    printf("%d\n", sent);
    return 0;
}
