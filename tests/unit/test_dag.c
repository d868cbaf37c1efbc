/* test_dag.c: unit tests for coordinator/dag.c.
 *
 * Graphs are written as small workflows and parsed with kiln_pipeline_parse,
 * so the DAG is tested on exactly the structure the scheduler will give it
 * (needs resolved, topological order filled in).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lang/dag.h"
#include "common/error.h"
#include "lang/pipeline.h"

typedef struct {
    kiln_workflow_t *wf;
    kiln_dag_t *dag;
} graph_t;

/* `spec` lists jobs one per line as "id: needs..." (needs space separated,
 * optionally followed by "!" for continue-on-error), e.g. "d: b c". */
static void s_graph(graph_t *g, const char *spec)
{
    char text[8192];
    size_t len = (size_t)snprintf(text, sizeof text, "jobs:\n");
    char line[256];
    const char *p = spec;
    while (*p) {
        size_t n = strcspn(p, "\n");
        assert_true(n < sizeof line);
        memcpy(line, p, n);
        line[n] = '\0';
        p += n + (p[n] == '\n');
        char *colon = strchr(line, ':');
        assert_non_null(colon);
        *colon = '\0';
        len += (size_t)snprintf(text + len, sizeof text - len,
                                "  %s:\n    runs-on: l\n    steps: [{run: x}]\n    needs: [",
                                line);
        bool coe = false, first = true;
        for (char *tok = strtok(colon + 1, " "); tok; tok = strtok(NULL, " ")) {
            if (strcmp(tok, "!") == 0) {
                coe = true;
                continue;
            }
            len += (size_t)snprintf(text + len, sizeof text - len, "%s%s", first ? "" : ", ",
                                    tok);
            first = false;
        }
        len += (size_t)snprintf(text + len, sizeof text - len, "]\n");
        if (coe)
            len += (size_t)snprintf(text + len, sizeof text - len,
                                    "    continue-on-error: true\n");
        assert_true(len < sizeof text);
    }
    kiln_diags_t diags;
    kiln_diags_init(&diags, "dag.yml");
    g->wf = NULL;
    if (kiln_pipeline_parse(&g->wf, "dag.yml", text, len, &diags) != 0)
        fail_msg("workflow: %s\n%s", kiln_error_last(), text);
    kiln_diags_free(&diags);
    g->dag = kiln_dag_new(g->wf);
    assert_non_null(g->dag);
    assert_int_equal(kiln_dag_size(g->dag), g->wf->n_jobs);
}

static void s_free(graph_t *g)
{
    kiln_dag_destroy(&g->dag);
    assert_null(g->dag);
    kiln_dag_destroy(&g->dag); /* NULL is fine */
    kiln_pipeline_destroy(&g->wf);
}

static size_t s_job(const graph_t *g, const char *id)
{
    long i = kiln_pipeline_find_job(g->wf, id);
    assert_true(i >= 0);
    return (size_t)i;
}

static kiln_job_state_t s_state(const graph_t *g, const char *id)
{
    return kiln_dag_state(g->dag, s_job(g, id));
}

/* take_ready returns exactly the jobs named in `ids` (space separated), in
 * that order. */
static void s_expect_ready(graph_t *g, const char *ids)
{
    size_t out[64], want[64], n_want = 0;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", ids);
    for (char *tok = strtok(buf, " "); tok; tok = strtok(NULL, " "))
        want[n_want++] = s_job(g, tok);
    size_t got = kiln_dag_take_ready(g->dag, out, 64);
    if (got != n_want)
        fail_msg("take_ready gave %zu jobs, want %zu (%s)", got, n_want, ids);
    for (size_t i = 0; i < got; i++)
        if (out[i] != want[i])
            fail_msg("take_ready[%zu] = %s, want %s", i, g->wf->jobs[out[i]].id,
                     g->wf->jobs[want[i]].id);
}

static void s_run(graph_t *g, const char *id, kiln_job_state_t end, size_t *n_skipped)
{
    size_t skipped[64];
    assert_int_equal(kiln_dag_start(g->dag, s_job(g, id)), 0);
    assert_int_equal(s_state(g, id), KILN_JOB_RUNNING);
    assert_int_equal(kiln_dag_finish(g->dag, s_job(g, id), end, skipped, 64, n_skipped), 0);
    assert_int_equal(s_state(g, id), end);
}

/* ---------------------------------------------------------------------- */

static void test_state_names(void **state)
{
    (void)state;
    const char *names[] = {"pending", "ready", "running", "success", "failure",
                           "timed_out", "cancelled", "skipped", "infra_error"};
    for (int i = 0; i <= KILN_JOB_INFRA_ERROR; i++) {
        kiln_job_state_t parsed;
        assert_string_equal(kiln_job_state_name((kiln_job_state_t)i), names[i]);
        assert_int_equal(kiln_job_state_parse(names[i], &parsed), 0);
        assert_int_equal(parsed, i);
    }
    kiln_job_state_t parsed = KILN_JOB_READY;
    assert_int_equal(kiln_job_state_parse("done", &parsed), -1);
    assert_int_equal(parsed, KILN_JOB_READY);
    assert_false(kiln_job_state_is_final(KILN_JOB_PENDING));
    assert_false(kiln_job_state_is_final(KILN_JOB_READY));
    assert_false(kiln_job_state_is_final(KILN_JOB_RUNNING));
    assert_true(kiln_job_state_is_final(KILN_JOB_SUCCESS));
    assert_true(kiln_job_state_is_final(KILN_JOB_FAILURE));
    assert_true(kiln_job_state_is_final(KILN_JOB_TIMED_OUT));
    assert_true(kiln_job_state_is_final(KILN_JOB_CANCELLED));
    assert_true(kiln_job_state_is_final(KILN_JOB_SKIPPED));
    assert_true(kiln_job_state_is_final(KILN_JOB_INFRA_ERROR));
}

static void test_diamond(void **state)
{
    (void)state;
    graph_t g;
    size_t n_skipped = 99;
    s_graph(&g, "a:\nb: a\nc: a\nd: b c");
    assert_int_equal(s_state(&g, "a"), KILN_JOB_READY);
    assert_int_equal(s_state(&g, "b"), KILN_JOB_PENDING);
    assert_int_equal(s_state(&g, "d"), KILN_JOB_PENDING);
    s_expect_ready(&g, "a");
    s_expect_ready(&g, ""); /* reported once, though still ready */
    assert_int_equal(s_state(&g, "a"), KILN_JOB_READY);
    s_run(&g, "a", KILN_JOB_SUCCESS, &n_skipped);
    assert_int_equal(n_skipped, 0);
    s_expect_ready(&g, "b c");
    s_run(&g, "c", KILN_JOB_SUCCESS, NULL);
    /* d needs b as well. */
    assert_int_equal(s_state(&g, "d"), KILN_JOB_PENDING);
    s_expect_ready(&g, "");
    assert_false(kiln_dag_done(g.dag));
    s_run(&g, "b", KILN_JOB_SUCCESS, NULL);
    s_expect_ready(&g, "d");
    s_run(&g, "d", KILN_JOB_SUCCESS, NULL);
    assert_true(kiln_dag_done(g.dag));
    assert_false(kiln_dag_failed(g.dag));
    s_free(&g);
}

/* A job that decides for itself (if: always() / failure()) is not skipped
 * when a need fails: it becomes ready once all its needs are final, while
 * ordinary dependents of the failure are still skipped. */
static void test_deciding_job(void **state)
{
    (void)state;
    graph_t g;
    size_t n_skipped = 0;
    s_graph(&g, "a:\nb: a\nc: b\nreport: a b c\nafter: report");
    kiln_dag_set_decides(g.dag, s_job(&g, "report"), true);
    s_expect_ready(&g, "a");
    s_run(&g, "a", KILN_JOB_SUCCESS, NULL);
    s_expect_ready(&g, "b");
    s_run(&g, "b", KILN_JOB_FAILURE, &n_skipped);
    /* c is skipped; report is not, and is ready: its needs are all final. */
    assert_int_equal(n_skipped, 1);
    assert_int_equal(s_state(&g, "c"), KILN_JOB_SKIPPED);
    assert_int_equal(s_state(&g, "report"), KILN_JOB_READY);
    assert_int_equal(s_state(&g, "after"), KILN_JOB_PENDING);
    s_expect_ready(&g, "report");
    s_run(&g, "report", KILN_JOB_SUCCESS, NULL);
    s_expect_ready(&g, "after");
    s_run(&g, "after", KILN_JOB_SUCCESS, NULL);
    assert_true(kiln_dag_done(g.dag));
    assert_true(kiln_dag_failed(g.dag)); /* b still failed the run */
    s_free(&g);
    /* The caller may decide to skip it: its dependents follow. */
    s_graph(&g, "a:\nreport: a\nafter: report");
    kiln_dag_set_decides(g.dag, s_job(&g, "report"), true);
    s_expect_ready(&g, "a");
    s_run(&g, "a", KILN_JOB_SUCCESS, NULL);
    s_expect_ready(&g, "report");
    size_t skipped[8];
    assert_int_equal(kiln_dag_finish(g.dag, s_job(&g, "report"), KILN_JOB_SKIPPED, skipped, 8,
                                     &n_skipped), 0);
    assert_int_equal(s_state(&g, "after"), KILN_JOB_SKIPPED);
    assert_true(kiln_dag_done(g.dag));
    assert_false(kiln_dag_failed(g.dag));
    s_free(&g);
}

static void test_take_ready_order_is_topological(void **state)
{
    (void)state;
    graph_t g;
    /* Topological order: second, third, first (first needs third). */
    s_graph(&g, "first: third\nsecond:\nthird:");
    assert_int_equal(g.wf->topo[0], 1);
    /* Finish third without handing it out (e.g. a cached result). */
    assert_int_equal(kiln_dag_finish(g.dag, s_job(&g, "third"), KILN_JOB_SUCCESS, NULL, 0, NULL),
                     0);
    /* Both ready now: topological order, not file order. */
    s_expect_ready(&g, "second first");
    /* max bounds the batch and the rest stays for the next call. */
    s_free(&g);
    s_graph(&g, "a:\nb:\nc:");
    size_t out[2];
    assert_int_equal(kiln_dag_take_ready(g.dag, out, 2), 2);
    assert_int_equal(out[0], 0);
    assert_int_equal(out[1], 1);
    s_expect_ready(&g, "c");
    s_free(&g);
}

static void test_failure_skips_dependents(void **state)
{
    (void)state;
    graph_t g;
    size_t skipped[8], n_skipped = 0;
    s_graph(&g, "a:\nb: a\nx:\nc: b\ny: x\nz: c y");
    s_expect_ready(&g, "a x");
    assert_int_equal(kiln_dag_start(g.dag, s_job(&g, "a")), 0);
    assert_int_equal(kiln_dag_finish(g.dag, s_job(&g, "a"), KILN_JOB_FAILURE, skipped, 8,
                                     &n_skipped),
                     0);
    /* b, c and z (through c) are skipped, in topological order; the
     * independent branch x -> y goes on. */
    assert_int_equal(n_skipped, 3);
    assert_int_equal(skipped[0], s_job(&g, "b"));
    assert_int_equal(skipped[1], s_job(&g, "c"));
    assert_int_equal(skipped[2], s_job(&g, "z"));
    assert_int_equal(s_state(&g, "b"), KILN_JOB_SKIPPED);
    assert_int_equal(s_state(&g, "c"), KILN_JOB_SKIPPED);
    assert_int_equal(s_state(&g, "z"), KILN_JOB_SKIPPED);
    assert_int_equal(s_state(&g, "x"), KILN_JOB_READY);
    assert_false(kiln_dag_done(g.dag));
    s_run(&g, "x", KILN_JOB_SUCCESS, &n_skipped);
    assert_int_equal(n_skipped, 0);
    s_expect_ready(&g, "y");
    s_run(&g, "y", KILN_JOB_SUCCESS, NULL);
    /* z needed c too: it stays skipped. */
    assert_int_equal(s_state(&g, "z"), KILN_JOB_SKIPPED);
    assert_true(kiln_dag_done(g.dag));
    assert_true(kiln_dag_failed(g.dag));
    s_free(&g);
}

static void test_skipped_in_topological_order(void **state)
{
    (void)state;
    graph_t g;
    size_t skipped[8], n_skipped = 0;
    /* Breadth-first from a would find b, d, then c; the report follows the
     * workflow's order instead. */
    s_graph(&g, "a:\nb: a\nc: b\nd: a");
    assert_int_equal(kiln_dag_finish(g.dag, 0, KILN_JOB_INFRA_ERROR, skipped, 8, &n_skipped), 0);
    assert_int_equal(n_skipped, 3);
    assert_int_equal(skipped[0], s_job(&g, "b"));
    assert_int_equal(skipped[1], s_job(&g, "c"));
    assert_int_equal(skipped[2], s_job(&g, "d"));
    s_free(&g);
}

static void test_skipped_array_bounded(void **state)
{
    (void)state;
    graph_t g;
    size_t skipped[2] = {99, 99}, n_skipped = 0;
    s_graph(&g, "a:\nb: a\nc: a\nd: a");
    assert_int_equal(kiln_dag_finish(g.dag, 0, KILN_JOB_TIMED_OUT, skipped, 1, &n_skipped), 0);
    assert_int_equal(n_skipped, 3); /* all counted */
    assert_int_equal(skipped[0], 1);
    assert_int_equal(skipped[1], 99); /* beyond max_skipped: untouched */
    assert_true(kiln_dag_done(g.dag));
    assert_true(kiln_dag_failed(g.dag));
    s_free(&g);
}

static void test_continue_on_error(void **state)
{
    (void)state;
    graph_t g;
    size_t n_skipped = 99;
    s_graph(&g, "a: !\nb: a\nc: b !\nd: c");
    s_expect_ready(&g, "a");
    s_run(&g, "a", KILN_JOB_FAILURE, &n_skipped);
    /* a failed but may: b runs. */
    assert_int_equal(n_skipped, 0);
    s_expect_ready(&g, "b");
    s_run(&g, "b", KILN_JOB_SUCCESS, NULL);
    s_expect_ready(&g, "c");
    s_run(&g, "c", KILN_JOB_TIMED_OUT, &n_skipped);
    assert_int_equal(n_skipped, 0);
    s_expect_ready(&g, "d");
    s_run(&g, "d", KILN_JOB_SUCCESS, NULL);
    assert_true(kiln_dag_done(g.dag));
    assert_false(kiln_dag_failed(g.dag));
    s_free(&g);

    /* Without continue-on-error the same failure fails the run. */
    s_graph(&g, "a:\nb: a");
    s_run(&g, "a", KILN_JOB_FAILURE, &n_skipped);
    assert_int_equal(n_skipped, 1);
    assert_true(kiln_dag_done(g.dag));
    assert_true(kiln_dag_failed(g.dag));
    s_free(&g);

    /* Cancellation is not a failure to continue past: dependents are
     * skipped, but the job's continue-on-error keeps the run from failing. */
    s_graph(&g, "a: !\nb: a");
    s_run(&g, "a", KILN_JOB_CANCELLED, &n_skipped);
    assert_int_equal(n_skipped, 1);
    assert_int_equal(s_state(&g, "b"), KILN_JOB_SKIPPED);
    assert_false(kiln_dag_failed(g.dag));
    s_free(&g);
}

static void test_cancel(void **state)
{
    (void)state;
    graph_t g;
    size_t cancelled[8], n_skipped = 99;
    s_graph(&g, "a:\nb: a\nc:\nd:");
    s_expect_ready(&g, "a c d");
    assert_int_equal(kiln_dag_start(g.dag, s_job(&g, "a")), 0);
    assert_int_equal(kiln_dag_finish(g.dag, s_job(&g, "d"), KILN_JOB_SUCCESS, NULL, 0, NULL), 0);
    /* b (pending) and c (ready) are cancelled now; a runs on until the
     * caller has stopped it; d is already final. */
    assert_int_equal(kiln_dag_cancel(g.dag, cancelled, 8), 2);
    assert_int_equal(cancelled[0], s_job(&g, "b"));
    assert_int_equal(cancelled[1], s_job(&g, "c"));
    assert_int_equal(s_state(&g, "a"), KILN_JOB_RUNNING);
    assert_int_equal(s_state(&g, "b"), KILN_JOB_CANCELLED);
    assert_int_equal(s_state(&g, "c"), KILN_JOB_CANCELLED);
    assert_int_equal(s_state(&g, "d"), KILN_JOB_SUCCESS);
    assert_false(kiln_dag_done(g.dag));
    s_expect_ready(&g, "");
    /* A cancelled ready job cannot start any more. */
    assert_int_equal(kiln_dag_start(g.dag, s_job(&g, "c")), KILN_EINVAL);
    assert_int_equal(kiln_dag_finish(g.dag, s_job(&g, "a"), KILN_JOB_CANCELLED, NULL, 0,
                                     &n_skipped),
                     0);
    assert_int_equal(n_skipped, 0); /* b was already final */
    assert_int_equal(s_state(&g, "b"), KILN_JOB_CANCELLED);
    assert_true(kiln_dag_done(g.dag));
    assert_true(kiln_dag_failed(g.dag));
    /* Nothing left to cancel. */
    assert_int_equal(kiln_dag_cancel(g.dag, cancelled, 8), 0);
    s_free(&g);

    /* cancel counts every job even past max. */
    s_graph(&g, "a:\nb:\nc:");
    assert_int_equal(kiln_dag_cancel(g.dag, cancelled, 1), 3);
    assert_int_equal(cancelled[0], 0);
    s_free(&g);
}

static void test_failed(void **state)
{
    (void)state;
    graph_t g;
    size_t n_skipped = 0;
    /* A job skipped (e.g. by its if:) skips its dependents without failing
     * the run. */
    s_graph(&g, "a:\nb: a\nc:");
    s_run(&g, "a", KILN_JOB_SKIPPED, &n_skipped);
    assert_int_equal(n_skipped, 1);
    s_run(&g, "c", KILN_JOB_SUCCESS, NULL);
    assert_true(kiln_dag_done(g.dag));
    assert_false(kiln_dag_failed(g.dag));
    s_free(&g);

    const kiln_job_state_t bad[] = {KILN_JOB_FAILURE, KILN_JOB_TIMED_OUT, KILN_JOB_CANCELLED,
                                    KILN_JOB_INFRA_ERROR};
    for (size_t i = 0; i < 4; i++) {
        s_graph(&g, "a:\nb:");
        s_run(&g, "b", KILN_JOB_SUCCESS, NULL);
        assert_false(kiln_dag_failed(g.dag));
        s_run(&g, "a", bad[i], NULL);
        assert_true(kiln_dag_done(g.dag));
        if (!kiln_dag_failed(g.dag))
            fail_msg("%s did not fail the run", kiln_job_state_name(bad[i]));
        s_free(&g);
    }
}

static void test_invalid_transitions(void **state)
{
    (void)state;
    graph_t g;
    size_t n_skipped = 7;
    s_graph(&g, "a:\nb: a");
    size_t a = s_job(&g, "a"), b = s_job(&g, "b");
    /* b is pending: it can neither start nor finish. */
    assert_int_equal(kiln_dag_start(g.dag, b), KILN_EINVAL);
    assert_int_equal(kiln_dag_finish(g.dag, b, KILN_JOB_SUCCESS, NULL, 0, &n_skipped),
                     KILN_EINVAL);
    assert_int_equal(s_state(&g, "b"), KILN_JOB_PENDING);
    /* Out of range. */
    assert_int_equal(kiln_dag_start(g.dag, 2), KILN_EINVAL);
    assert_int_equal(kiln_dag_finish(g.dag, 2, KILN_JOB_SUCCESS, NULL, 0, NULL), KILN_EINVAL);
    /* A non-final end state. */
    assert_int_equal(kiln_dag_start(g.dag, a), 0);
    assert_int_equal(kiln_dag_start(g.dag, a), KILN_EINVAL); /* already running */
    assert_int_equal(kiln_dag_finish(g.dag, a, KILN_JOB_RUNNING, NULL, 0, NULL), KILN_EINVAL);
    assert_int_equal(kiln_dag_finish(g.dag, a, KILN_JOB_PENDING, NULL, 0, NULL), KILN_EINVAL);
    assert_int_equal(kiln_dag_finish(g.dag, a, KILN_JOB_READY, NULL, 0, NULL), KILN_EINVAL);
    assert_int_equal(s_state(&g, "a"), KILN_JOB_RUNNING);
    assert_int_equal(s_state(&g, "b"), KILN_JOB_PENDING);
    /* Finishing twice. */
    assert_int_equal(kiln_dag_finish(g.dag, a, KILN_JOB_SUCCESS, NULL, 0, NULL), 0);
    assert_int_equal(kiln_dag_finish(g.dag, a, KILN_JOB_FAILURE, NULL, 0, &n_skipped),
                     KILN_EINVAL);
    assert_int_equal(s_state(&g, "a"), KILN_JOB_SUCCESS);
    assert_int_equal(s_state(&g, "b"), KILN_JOB_READY);
    assert_int_equal(kiln_dag_start(g.dag, a), KILN_EINVAL);
    s_free(&g);
}

static void test_long_chain(void **state)
{
    (void)state;
    /* A chain as long as the job limit: failure at the head skips all of
     * it without recursion. */
    size_t n = KILN_WF_MAX_JOBS;
    size_t size = n * 80 + 64, len = 0;
    char *text = malloc(size);
    assert_non_null(text);
    len += (size_t)snprintf(text + len, size - len,
                            "jobs:\n  j0: {runs-on: l, steps: [{run: x}]}\n");
    for (size_t i = 1; i < n; i++)
        len += (size_t)snprintf(text + len, size - len,
                                "  j%zu: {runs-on: l, needs: j%zu, steps: [{run: x}]}\n", i,
                                i - 1);
    kiln_diags_t diags;
    kiln_workflow_t *wf = NULL;
    kiln_diags_init(&diags, "chain.yml");
    if (kiln_pipeline_parse(&wf, "chain.yml", text, len, &diags) != 0)
        fail_msg("%s", kiln_error_last());
    kiln_dag_t *dag = kiln_dag_new(wf);
    assert_non_null(dag);
    size_t *skipped = calloc(n, sizeof *skipped), n_skipped = 0;
    assert_non_null(skipped);
    assert_int_equal(kiln_dag_finish(dag, 0, KILN_JOB_FAILURE, skipped, n, &n_skipped), 0);
    assert_int_equal(n_skipped, n - 1);
    for (size_t i = 0; i < n - 1; i++)
        assert_int_equal(skipped[i], i + 1);
    assert_true(kiln_dag_done(dag));
    free(skipped);
    kiln_dag_destroy(&dag);
    kiln_pipeline_destroy(&wf);
    kiln_diags_free(&diags);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_state_names),
        cmocka_unit_test(test_diamond),
        cmocka_unit_test(test_deciding_job),
        cmocka_unit_test(test_take_ready_order_is_topological),
        cmocka_unit_test(test_failure_skips_dependents),
        cmocka_unit_test(test_skipped_in_topological_order),
        cmocka_unit_test(test_skipped_array_bounded),
        cmocka_unit_test(test_continue_on_error),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_failed),
        cmocka_unit_test(test_invalid_transitions),
        cmocka_unit_test(test_long_chain),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
