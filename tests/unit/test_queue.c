/* test_queue.c: the Redis transitions against a real redis-server on a
 * private unix socket: a job is in exactly one of ready/leased/done, each
 * lease bumps the fencing token, and stale tokens change nothing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/error.h"
#include "common/fs.h"
#include "coordinator/queue.h"
#include "worker/workspace.h"

static char s_dir[64];
static pid_t s_redis;
static kiln_queue_t *s_q;

static int s_setup(void **state)
{
    (void)state;
    char sock[128];
    snprintf(s_dir, sizeof s_dir, "/tmp/kiln-queue-XXXXXX");
    if (!mkdtemp(s_dir))
        return -1;
    snprintf(sock, sizeof sock, "%s/redis.sock", s_dir);
    s_redis = fork();
    if (s_redis == 0) {
        freopen("/dev/null", "w", stdout);
        execlp("redis-server", "redis-server", "--port", "0", "--unixsocket", sock, "--dir", s_dir,
               "--save", "", "--appendonly", "no", (char *)NULL);
        _exit(127);
    }
    return kiln_queue_open(&s_q, sock, 10000) == 0 ? 0 : -1;
}

static int s_teardown(void **state)
{
    (void)state;
    kiln_queue_destroy(&s_q);
    kill(s_redis, SIGTERM);
    waitpid(s_redis, NULL, 0);
    return kiln_fs_rmtree(s_dir);
}

static void test_lifecycle(void **state)
{
    (void)state;
    uint64_t t1 = 0, t2 = 0;
    assert_int_equal(kiln_queue_push(s_q, "1/a", "linux", "payload", 7), 0);
    assert_int_equal(kiln_queue_depth(s_q, "linux"), 1);
    /* A job exists once. */
    assert_int_equal(kiln_queue_push(s_q, "1/a", "linux", NULL, 0), KILN_EINVAL);
    t1 = 1;
    assert_int_equal(kiln_queue_lease(s_q, "1/a", "linux", "w1", 1, 1000, t1), 0);
    assert_int_equal(kiln_queue_depth(s_q, "linux"), 0);
    /* Leased: cannot be leased again. */
    assert_int_equal(kiln_queue_lease(s_q, "1/a", "linux", "w2", 1, 1000, 2), KILN_ESTALE);
    assert_int_equal(kiln_queue_renew(s_q, "1/a", t1, 2000), 0);
    /* Back to the queue for a retry: a new lease gets a new token. */
    assert_int_equal(kiln_queue_requeue(s_q, "1/a", "linux", t1), 0);
    assert_int_equal(kiln_queue_depth(s_q, "linux"), 1);
    /* A proposal that is not newer than the stored token is refused. */
    assert_int_equal(kiln_queue_lease(s_q, "1/a", "linux", "w2", 1, 1000, t1), KILN_ESTALE);
    assert_non_null(strstr(kiln_error_last(), "newer token"));
    t2 = 2;
    assert_int_equal(kiln_queue_lease(s_q, "1/a", "linux", "w2", 1, 1000, t2), 0);
    /* The first attempt's token is stale now: fencing. */
    assert_int_equal(kiln_queue_renew(s_q, "1/a", t1, 3000), KILN_ESTALE);
    assert_int_equal(kiln_queue_finish(s_q, "1/a", t1, "success"), KILN_ESTALE);
    assert_int_equal(kiln_queue_requeue(s_q, "1/a", "linux", t1), KILN_ESTALE);
    assert_int_equal(kiln_queue_finish(s_q, "1/a", t2, "success"), 0);
    /* Done is final. */
    assert_int_equal(kiln_queue_finish(s_q, "1/a", t2, "success"), KILN_ESTALE);
    assert_int_equal(kiln_queue_lease(s_q, "1/a", "linux", "w1", 1, 1000, 3), KILN_ESTALE);
    const char *keys[] = {"1/a"};
    assert_int_equal(kiln_queue_forget(s_q, keys, 1), 0);
    assert_int_equal(kiln_queue_push(s_q, "1/a", "linux", NULL, 0), 0);
}

static void test_drop_and_order(void **state)
{
    (void)state;
    assert_int_equal(kiln_queue_push(s_q, "2/x", "gpu", NULL, 0), 0);
    assert_int_equal(kiln_queue_push(s_q, "2/y", "gpu", NULL, 0), 0);
    assert_int_equal(kiln_queue_depth(s_q, "gpu"), 2);
    assert_int_equal(kiln_queue_drop(s_q, "2/x", "gpu", "cancelled"), 0);
    assert_int_equal(kiln_queue_depth(s_q, "gpu"), 1);
    assert_int_equal(kiln_queue_drop(s_q, "2/x", "gpu", "cancelled"), KILN_ESTALE);
    assert_int_equal(kiln_queue_lease(s_q, "2/x", "gpu", "w1", 1, 1000, 1), KILN_ESTALE);
    assert_int_equal(kiln_queue_lease(s_q, "2/y", "gpu", "w1", 1, 1000, 1), 0);
    assert_int_equal(kiln_queue_depth(s_q, "gpu"), 0);
}

/* Pipelined calls answer at once; their verdicts come with the flush, which
 * names the first refusal. Leaving a batch without waiting keeps the replies
 * for the next flush, and a synchronous call reads them first. */
static void test_batch(void **state)
{
    (void)state;
    int rc = 99;
    kiln_queue_batch_begin(s_q);
    assert_int_equal(kiln_queue_push(s_q, "3/a", "linux", NULL, 0), 0);
    assert_int_equal(kiln_queue_push(s_q, "3/a", "linux", NULL, 0), 0); /* exists: not a failure */
    assert_int_equal(kiln_queue_lease_defer(s_q, "3/a", "linux", "w1", 1, 1000, 1, &rc), 0);
    assert_int_equal(kiln_queue_pending(s_q), 3);
    assert_int_equal(kiln_queue_flush(s_q), 0);
    assert_int_equal(rc, 0);
    assert_int_equal(kiln_queue_pending(s_q), 0);
    /* A stale finish and a lease of a leased job: the flush reports it. */
    assert_int_equal(kiln_queue_finish(s_q, "3/a", 7, "success"), 0);
    assert_int_equal(kiln_queue_lease_defer(s_q, "3/a", "linux", "w1", 1, 1000, 2, &rc), 0);
    assert_int_equal(kiln_queue_flush(s_q), KILN_ESTALE);
    assert_non_null(strstr(kiln_error_last(), "3/a"));
    assert_int_equal(rc, KILN_ESTALE);
    /* Sent, not waited for: the next synchronous call settles them. */
    assert_int_equal(kiln_queue_finish(s_q, "3/a", 1, "success"), 0);
    assert_int_equal(kiln_queue_batch_send(s_q), 0);
    assert_int_equal(kiln_queue_pending(s_q), 1);
    kiln_queue_job_t job;
    assert_int_equal(kiln_queue_get(s_q, "3/a", &job), 0);
    assert_int_equal(kiln_queue_pending(s_q), 0);
    assert_string_equal(job.state, "done");
    assert_int_equal(job.token, 1);
    kiln_queue_batch_end(s_q);
    /* Restore never lowers a token, and says which one Redis keeps. */
    uint64_t stored = 0;
    assert_int_equal(kiln_queue_restore(s_q, "3/a", "linux", "ready", 0, 1, NULL, 0, NULL, &stored),
                     0);
    assert_int_equal(stored, 1);
    assert_int_equal(kiln_queue_lease(s_q, "3/a", "linux", "w1", 2, 1000, 1), KILN_ESTALE);
    assert_int_equal(kiln_queue_lease(s_q, "3/a", "linux", "w1", 2, 1000, stored + 1), 0);
}

/* A batch longer than one script call: every transition gets its own
 * verdict, in order, whichever call carried it. */
static void test_long_batch(void **state)
{
    (void)state;
    enum { N = 600 };
    static int rc[N];
    char key[32];
    kiln_queue_batch_begin(s_q);
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof key, "4/j%d", i);
        assert_int_equal(kiln_queue_push(s_q, key, "long", NULL, 0), 0);
    }
    assert_int_equal(kiln_queue_flush(s_q), 0);
    assert_int_equal(kiln_queue_depth(s_q, "long"), N);
    kiln_queue_batch_begin(s_q);
    /* Every other lease proposes token 0, which is never newer. */
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof key, "4/j%d", i);
        assert_int_equal(kiln_queue_lease_defer(s_q, key, "long", "w1", 1, 1000,
                                                (uint64_t)(i % 2), &rc[i]), 0);
    }
    assert_int_equal(kiln_queue_send(s_q), 0);
    assert_int_equal(kiln_queue_pending(s_q), N);
    assert_int_equal(kiln_queue_batch_end(s_q), KILN_ESTALE);
    assert_non_null(strstr(kiln_error_last(), "4/j0"));
    for (int i = 0; i < N; i++)
        assert_int_equal(rc[i], i % 2 ? 0 : KILN_ESTALE);
    assert_int_equal(kiln_queue_depth(s_q, "long"), N / 2);
    /* Restores in a batch say the token Redis keeps at the flush. */
    uint64_t kept[2] = {0, 0};
    kiln_queue_batch_begin(s_q);
    assert_int_equal(kiln_queue_restore(s_q, "4/j1", "long", "ready", 0, 1, NULL, 0, NULL,
                                        &kept[0]), 0);
    assert_int_equal(kiln_queue_restore(s_q, "4/j2", "long", "ready", 5, 1, NULL, 0, NULL,
                                        &kept[1]), 0);
    assert_int_equal(kiln_queue_batch_end(s_q), 0);
    assert_int_equal(kept[0], 1);
    assert_int_equal(kept[1], 5);
    assert_int_equal(kiln_queue_depth(s_q, "long"), N / 2 + 1);
}

/* Redis can lose its script cache (a restart, SCRIPT FLUSH): a synchronous
 * call still goes through, a batch reports the loss, and the next works. */
static void test_script_cache_lost(void **state)
{
    (void)state;
    char cmd[256];
    int rc = 99;
    snprintf(cmd, sizeof cmd, "redis-cli -s %s/redis.sock SCRIPT FLUSH >/dev/null", s_dir);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(kiln_queue_push(s_q, "5/a", "cache", NULL, 0), 0);
    assert_int_equal(kiln_queue_depth(s_q, "cache"), 1);
    assert_int_equal(system(cmd), 0);
    kiln_queue_batch_begin(s_q);
    assert_int_equal(kiln_queue_lease_defer(s_q, "5/a", "cache", "w1", 1, 1000, 1, &rc), 0);
    assert_int_equal(kiln_queue_batch_end(s_q), KILN_EINFRA);
    assert_int_equal(rc, KILN_EINFRA);
    assert_non_null(strstr(kiln_error_last(), "script cache"));
    assert_int_equal(kiln_queue_lease(s_q, "5/a", "cache", "w1", 1, 1000, 1), 0);
    kiln_queue_batch_begin(s_q);
    assert_int_equal(kiln_queue_finish(s_q, "5/a", 1, "success"), 0);
    assert_int_equal(kiln_queue_batch_end(s_q), 0);
}

static void test_unreachable(void **state)
{
    (void)state;
    kiln_queue_t *q = NULL;
    assert_int_equal(kiln_queue_open(&q, "/nonexistent/redis.sock", 50), KILN_EINFRA);
    assert_null(q);
    assert_non_null(strstr(kiln_error_last(), "cannot connect to Redis"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lifecycle),
        cmocka_unit_test(test_drop_and_order),
        cmocka_unit_test(test_batch),
        cmocka_unit_test(test_long_batch),
        cmocka_unit_test(test_script_cache_lost),
        cmocka_unit_test(test_unreachable),
    };
    return cmocka_run_group_tests_name("queue", tests, s_setup, s_teardown);
}
