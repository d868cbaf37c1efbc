/* test_scheduler.c: unit tests for coordinator/scheduler.c: duration estimates and
 * critical-path ranks on small workflows parsed by the real parser. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "lang/parse.h"
#include "lang/rungraph.h"
#include "coordinator/scheduler.h"

/* jobs: "id:needs,needs;id:..." (an empty needs list after the colon). */
typedef struct {
    kiln_workflow_t *wf;
    kiln_rungraph_t *g;
} s_run_t;

static void s_run_free(s_run_t *r)
{
    kiln_rungraph_destroy(&r->g);
    kiln_workflow_destroy(&r->wf);
}

static s_run_t s_parse(const char *spec)
{
    char text[8192], copy[1024];
    size_t len = (size_t)snprintf(text, sizeof text, "jobs:\n");
    snprintf(copy, sizeof copy, "%s", spec);
    char *save = NULL;
    for (char *job = strtok_r(copy, ";", &save); job; job = strtok_r(NULL, ";", &save)) {
        char *colon = strchr(job, ':');
        assert_non_null(colon);
        *colon = '\0';
        len += (size_t)snprintf(text + len, sizeof text - len,
                                "  %s:\n    runs-on: l\n    steps: [{run: x}]\n    needs: [%s]\n",
                                job, colon + 1);
    }
    kiln_diags_t diags;
    s_run_t r = {NULL, NULL};
    kiln_diags_init(&diags, "sched.yml");
    if (kiln_workflow_parse(&r.wf, "sched.yml", text, len, NULL, &diags) != 0)
        fail_msg("workflow: %s\n%s", kiln_error_last(), text);
    kiln_diags_free(&diags);
    kiln_contexts_t run = {.run_id = 1, .workflow = "sched"};
    assert_int_equal(kiln_rungraph_new(&r.g, r.wf, &run), 0);
    return r;
}

static int64_t s_rank_of(const s_run_t *r, const int64_t *rank, const char *id)
{
    long i = kiln_rungraph_find(r->g, id);
    assert_true(i >= 0);
    return rank[i];
}

static void test_policy_names(void **state)
{
    (void)state;
    kiln_scheduler_policy_t p = KILN_SCHEDULER_FIFO;
    assert_int_equal(kiln_scheduler_policy_parse("critical-path", &p), 0);
    assert_int_equal(p, KILN_SCHEDULER_CRITICAL_PATH);
    assert_int_equal(kiln_scheduler_policy_parse("fifo", &p), 0);
    assert_int_equal(p, KILN_SCHEDULER_FIFO);
    assert_string_equal(kiln_scheduler_policy_name(p), "fifo");
    assert_int_equal(kiln_scheduler_policy_parse("random", &p), KILN_EINVAL);
    assert_non_null(strstr(kiln_error_last(), "random"));
}

static void test_estimates_default_to_median(void **state)
{
    (void)state;
    int64_t est[5] = {-1, 100, 300, -1, 200};
    kiln_scheduler_fill_estimates(est, 5);
    assert_int_equal(est[0], 200);
    assert_int_equal(est[3], 200);
    assert_int_equal(est[1], 100);
    int64_t none[3] = {-1, -1, -1};
    kiln_scheduler_fill_estimates(none, 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(none[i], KILN_SCHEDULER_DEFAULT_MS);
    kiln_scheduler_fill_estimates(NULL, 0);
}

/* a -> b -> d and a -> c -> d, with c long: a's rank goes through c. */
static void test_ranks_follow_longest_path(void **state)
{
    (void)state;
    s_run_t r = s_parse("d:b,c;b:a;c:a;a:;e:");
    int64_t est[8], rank[8];
    assert_int_equal(kiln_rungraph_size(r.g), 5);
    for (size_t i = 0; i < kiln_rungraph_size(r.g); i++) {
        const char *id = kiln_rungraph_job(r.g, i)->id;
        est[i] = strcmp(id, "c") == 0 ? 500 : strcmp(id, "e") == 0 ? 50 : 10;
    }
    kiln_scheduler_ranks(r.g, est, rank);
    assert_int_equal(s_rank_of(&r, rank, "d"), 10);
    assert_int_equal(s_rank_of(&r, rank, "b"), 20);
    assert_int_equal(s_rank_of(&r, rank, "c"), 510);
    assert_int_equal(s_rank_of(&r, rank, "a"), 520);
    assert_int_equal(s_rank_of(&r, rank, "e"), 50);
    s_run_free(&r);
}

/* Without history every job weighs the same: the rank counts the jobs on
 * the longest chain ahead, so the head of a deep chain outranks wide
 * leaves. */
static void test_ranks_without_history_count_depth(void **state)
{
    (void)state;
    s_run_t r = s_parse("c1:;c2:c1;c3:c2;c4:c3;w1:;w2:;w3:");
    int64_t est[8], rank[8];
    size_t n = kiln_rungraph_size(r.g);
    for (size_t i = 0; i < n; i++)
        est[i] = -1;
    kiln_scheduler_fill_estimates(est, n);
    kiln_scheduler_ranks(r.g, est, rank);
    assert_int_equal(s_rank_of(&r, rank, "c1"), 4 * KILN_SCHEDULER_DEFAULT_MS);
    assert_int_equal(s_rank_of(&r, rank, "c4"), KILN_SCHEDULER_DEFAULT_MS);
    assert_int_equal(s_rank_of(&r, rank, "w2"), KILN_SCHEDULER_DEFAULT_MS);
    s_run_free(&r);
}

/* A matrix job's combinations each carry the rank of what needs the job. */
static void test_ranks_through_a_matrix(void **state)
{
    (void)state;
    const char *text = "jobs:\n"
                       "  build:\n    runs-on: l\n    strategy: {matrix: {v: [1, 2, 3]}}\n"
                       "    steps: [{run: x}]\n"
                       "  test:\n    runs-on: l\n    needs: build\n    steps: [{run: x}]\n";
    kiln_diags_t diags;
    s_run_t r = {NULL, NULL};
    kiln_diags_init(&diags, "m.yml");
    assert_int_equal(kiln_workflow_parse(&r.wf, "m.yml", text, strlen(text), NULL, &diags), 0);
    kiln_diags_free(&diags);
    kiln_contexts_t run = {.run_id = 1, .workflow = "m"};
    assert_int_equal(kiln_rungraph_new(&r.g, r.wf, &run), 0);
    size_t n = kiln_rungraph_size(r.g);
    assert_int_equal(n, 4);
    int64_t est[4] = {10, 20, 30, 100}, rank[4];
    kiln_scheduler_ranks(r.g, est, rank);
    assert_int_equal(s_rank_of(&r, rank, "build-1"), 110);
    assert_int_equal(s_rank_of(&r, rank, "build-3"), 130);
    assert_int_equal(s_rank_of(&r, rank, "test"), 100);
    s_run_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_policy_names),
        cmocka_unit_test(test_estimates_default_to_median),
        cmocka_unit_test(test_ranks_follow_longest_path),
        cmocka_unit_test(test_ranks_without_history_count_depth),
        cmocka_unit_test(test_ranks_through_a_matrix),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
