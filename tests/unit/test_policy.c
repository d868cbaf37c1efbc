/* test_policy.c: the coordinator's pure decisions: fairness between runs,
 * label matching and placement, prefetch, fencing, the retry policy. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>

#include <cmocka.h>

#include "coordinator/policy.h"

static void test_fairness(void **state)
{
    (void)state;
    /* A small run with nothing on workers goes before a big one that has. */
    kiln_policy_run_t big = {1, 8, 100, 5}, small = {2, 0, 0, 50};
    assert_true(kiln_policy_turn_before(KILN_SCHEDULER_CRITICAL_PATH, &small, &big));
    assert_false(kiln_policy_turn_before(KILN_SCHEDULER_CRITICAL_PATH, &big, &small));
    /* Between equals, the one served least recently, then the older. */
    kiln_policy_run_t a = {3, 1, 10, 0}, b = {4, 1, 20, 0}, c = {5, 1, 10, 0};
    assert_true(kiln_policy_turn_before(KILN_SCHEDULER_CRITICAL_PATH, &a, &b));
    assert_true(kiln_policy_turn_before(KILN_SCHEDULER_CRITICAL_PATH, &a, &c));
    assert_false(kiln_policy_turn_before(KILN_SCHEDULER_CRITICAL_PATH, &c, &a));
    /* FIFO: whoever's best job waited longest, whatever runs. */
    assert_true(kiln_policy_turn_before(KILN_SCHEDULER_FIFO, &big, &small));
}

static void test_labels(void **state)
{
    (void)state;
    const char *need[] = {"Linux", "big"}, *have[] = {"linux", "BIG", "gpu"}, *uni[] = {"self-hosted"};
    assert_true(kiln_policy_labels_match(need, 2, have, 3, uni, 1, NULL, 0));
    assert_false(kiln_policy_labels_match(need, 2, have, 1, uni, 1, NULL, 0));
    const char *only_uni[] = {"self-hosted"};
    assert_true(kiln_policy_labels_match(only_uni, 1, NULL, 0, uni, 1, NULL, 0));
    assert_true(kiln_policy_labels_match(NULL, 0, NULL, 0, NULL, 0, NULL, 0));
}

/* GitHub's hosted labels reach the farm's workers through aliases: the
 * first that matches decides, a '*' is a prefix, and a label the worker
 * has itself needs no alias. */
static void test_label_aliases(void **state)
{
    (void)state;
    const kiln_policy_alias_t aliases[] = {
        {"ubuntu-20.04", "old-glibc"}, {"ubuntu-*", "linux"}, {"windows-latest", "windows"}};
    const char *linux_w[] = {"linux", "x64"}, *old_w[] = {"old-glibc"}, *uni[] = {"self-hosted"};
    const char *u24[] = {"self-hosted", "ubuntu-24.04"}, *u20[] = {"ubuntu-20.04"};
    const char *latest[] = {"Ubuntu-Latest"}, *mac[] = {"macos-14"}, *win[] = {"windows-latest"};
    assert_true(kiln_policy_labels_match(u24, 2, linux_w, 2, uni, 1, aliases, 3));
    assert_true(kiln_policy_labels_match(latest, 1, linux_w, 2, uni, 1, aliases, 3));
    assert_false(kiln_policy_labels_match(u24, 2, old_w, 1, uni, 1, aliases, 3));
    /* The first alias that matches decides: 20.04 goes to old-glibc only. */
    assert_false(kiln_policy_labels_match(u20, 1, linux_w, 2, uni, 1, aliases, 3));
    assert_true(kiln_policy_labels_match(u20, 1, old_w, 1, uni, 1, aliases, 3));
    /* No alias: only a worker that declares the label. */
    assert_false(kiln_policy_labels_match(mac, 1, linux_w, 2, uni, 1, aliases, 3));
    const char *mac_w[] = {"macos-14"};
    assert_true(kiln_policy_labels_match(mac, 1, mac_w, 1, uni, 1, aliases, 3));
    assert_false(kiln_policy_labels_match(win, 1, linux_w, 2, uni, 1, aliases, 3));
    assert_string_equal(kiln_policy_alias_for("UBUNTU-22.04", aliases, 3)->label, "linux");
    assert_null(kiln_policy_alias_for("ubuntu", aliases, 3));
}

static void test_pick(void **state)
{
    (void)state;
    kiln_policy_worker_t w[] = {
        {2, 2, 3, false, true, true},  /* full, may queue */
        {4, 1, 4, false, true, false}, /* 1/4 busy */
        {2, 0, 2, true, true, false},  /* draining */
        {1, 0, 1, false, false, false}, /* wrong labels */
        {2, 0, 2, false, true, false}, /* idle */
    };
    assert_int_equal(kiln_policy_pick(w, 5, false), 4);
    w[4].busy = 1; /* 1/2 busy now: 1/4 is less loaded */
    assert_int_equal(kiln_policy_pick(w, 5, false), 1);
    assert_int_equal(kiln_policy_pick(w, 5, true), 0);
    w[0].prefetchable = false;
    assert_int_equal(kiln_policy_pick(w, 5, true), -1);
    assert_int_equal(kiln_policy_pick(w, 0, false), -1);
}

static void test_prefetch(void **state)
{
    (void)state;
    kiln_policy_held_t short_job = {1000, 5, 10}, long_job = {1000, 500, 10},
                       unknown = {1000, 5, 1}, late = {1000, 15, 10};
    /* All slots busy, room to queue, short jobs ending soon. */
    assert_true(kiln_policy_prefetchable(1, 1, 2, false, &short_job, 1, 1002, 20, 20));
    assert_false(kiln_policy_prefetchable(2, 1, 3, false, &short_job, 1, 1002, 20, 20));
    assert_false(kiln_policy_prefetchable(1, 2, 2, false, &short_job, 1, 1002, 20, 20));
    assert_false(kiln_policy_prefetchable(1, 1, 2, true, &short_job, 1, 1002, 20, 20));
    assert_false(kiln_policy_prefetchable(1, 1, 2, false, &long_job, 1, 1002, 20, 20));
    assert_false(kiln_policy_prefetchable(1, 1, 2, false, &unknown, 1, 1002, 20, 20));
    /* Expected to end past the horizon: 1000 + 15 > 980 + 20. */
    assert_false(kiln_policy_prefetchable(1, 1, 2, false, &late, 1, 980, 20, 20));
}

static void test_fencing(void **state)
{
    (void)state;
    assert_true(kiln_policy_fenced(true, 7, 7, KILN_JOB_RUNNING));
    assert_false(kiln_policy_fenced(false, 7, 7, KILN_JOB_RUNNING)); /* an impostor */
    assert_false(kiln_policy_fenced(true, 8, 7, KILN_JOB_RUNNING)); /* a stale attempt */
    assert_false(kiln_policy_fenced(true, 7, 7, KILN_JOB_SUCCESS)); /* already over */
    assert_false(kiln_policy_fenced(true, 7, 7, KILN_JOB_READY));   /* requeued */
}

static void test_retry_policy(void **state)
{
    (void)state;
    kiln_job_state_t final = KILN_JOB_PENDING;
    assert_int_equal(kiln_policy_after_infra(1, 3, false, &final), KILN_POLICY_REQUEUE);
    assert_int_equal(kiln_policy_after_infra(2, 3, false, &final), KILN_POLICY_REQUEUE);
    assert_int_equal(kiln_policy_after_infra(3, 3, false, &final), KILN_POLICY_FINISH);
    assert_int_equal(final, KILN_JOB_INFRA_ERROR);
    assert_int_equal(kiln_policy_after_infra(1, 3, true, &final), KILN_POLICY_FINISH);
    assert_int_equal(final, KILN_JOB_CANCELLED);
    /* Script failures: only within kiln.retry, never for a success or a cancel. */
    assert_int_equal(kiln_policy_after_script(KILN_JOB_FAILURE, 0, 0, false), KILN_POLICY_FINISH);
    assert_int_equal(kiln_policy_after_script(KILN_JOB_FAILURE, 0, 2, false), KILN_POLICY_REQUEUE);
    assert_int_equal(kiln_policy_after_script(KILN_JOB_TIMED_OUT, 1, 2, false), KILN_POLICY_REQUEUE);
    assert_int_equal(kiln_policy_after_script(KILN_JOB_FAILURE, 2, 2, false), KILN_POLICY_FINISH);
    assert_int_equal(kiln_policy_after_script(KILN_JOB_FAILURE, 0, 2, true), KILN_POLICY_FINISH);
    assert_int_equal(kiln_policy_after_script(KILN_JOB_SUCCESS, 0, 2, false), KILN_POLICY_FINISH);
    assert_int_equal(kiln_policy_after_script(KILN_JOB_CANCELLED, 0, 2, false), KILN_POLICY_FINISH);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fairness),  cmocka_unit_test(test_labels), cmocka_unit_test(test_label_aliases),
        cmocka_unit_test(test_pick),      cmocka_unit_test(test_prefetch),
        cmocka_unit_test(test_fencing),   cmocka_unit_test(test_retry_policy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
