/* test_rungraph.c: unit tests for lang/rungraph.c, the run rules.
 *
 * Each test writes a small workflow, parses it with the real parser, and
 * drives a run graph the way the coordinator does: advance, act on the
 * changes, "run" READY jobs by kiln_rungraph_start + kiln_rungraph_finish
 * with the end the test chooses, and advance again. The harness checks on
 * every advance what the host relies on: each job is ADDED once and before
 * anything else about it, READY / FINAL / STOP match the job's state, and a
 * run that is not over always has a job that is ready or running (else the
 * coordinator would wait forever). Every graph is driven to its end before
 * it is freed, so each workflow here also checks that the run always ends.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/error.h"
#include "lang/parse.h"
#include "lang/rungraph.h"

#define S_MAX_LOG 4096

typedef struct {
    kiln_workflow_t *wf;
    kiln_rungraph_t *g;
    json_t *inputs, *secrets;
    kiln_rg_change_t log[S_MAX_LOG]; /* every change handed out, in order */
    size_t n_log;
    size_t mark;                     /* where s_since starts */
    bool added[KILN_RUNGRAPH_MAX_JOBS + 64];
    size_t n_added;
} run_t;


static const char *s_id(const run_t *r, size_t job)
{
    return kiln_rungraph_job(r->g, job)->id;
}

/* Drains kiln_rungraph_advance, checking each change against the job's
 * state, and the invariant once nothing is left to hand out. */
static void s_advance(run_t *r)
{
    kiln_rg_change_t batch[3];
    size_t n;
    while ((n = kiln_rungraph_advance(r->g, batch, 3)) > 0) {
        for (size_t i = 0; i < n; i++) {
            const kiln_rg_change_t *c = &batch[i];
            assert_true(c->job < kiln_rungraph_size(r->g));
            kiln_job_state_t st = kiln_rungraph_state(r->g, c->job);
            switch (c->kind) {
            case KILN_RG_ADDED:
                if (r->added[c->job])
                    fail_msg("job %s ADDED twice", s_id(r, c->job));
                r->added[c->job] = true;
                r->n_added++;
                break;
            case KILN_RG_READY:
                if (st != KILN_JOB_READY)
                    fail_msg("READY for %s, which is %s", s_id(r, c->job),
                             kiln_job_state_name(st));
                break;
            case KILN_RG_FINAL:
                if (!kiln_job_state_is_final(st))
                    fail_msg("FINAL for %s, which is %s", s_id(r, c->job),
                             kiln_job_state_name(st));
                break;
            case KILN_RG_STOP:
                if (st != KILN_JOB_RUNNING)
                    fail_msg("STOP for %s, which is %s", s_id(r, c->job),
                             kiln_job_state_name(st));
                break;
            default:
                fail_msg("unknown change kind %d", (int)c->kind);
            }
            if (c->kind != KILN_RG_ADDED && !r->added[c->job])
                fail_msg("change %d for %s before it was ADDED", (int)c->kind, s_id(r, c->job));
            assert_true(r->n_log < S_MAX_LOG);
            r->log[r->n_log++] = *c;
        }
    }
    assert_int_equal(r->n_added, kiln_rungraph_size(r->g));
    if (kiln_rungraph_done(r->g))
        return;
    for (size_t j = 0; j < kiln_rungraph_size(r->g); j++) {
        kiln_job_state_t st = kiln_rungraph_state(r->g, j);
        if (st == KILN_JOB_READY || st == KILN_JOB_RUNNING)
            return;
    }
    fail_msg("the run is not over, yet no job is ready or running: it would hang");
}

static void s_new_with(run_t *r, const char *text, const json_t *files, const char *inputs,
                       const char *secrets)
{
    memset(r, 0, sizeof *r);
    kiln_diags_t diags;
    kiln_loader_t loader;
    if (files)
        kiln_loader_json(&loader, files, true);
    kiln_diags_init(&diags, "run.yml");
    if (kiln_workflow_parse(&r->wf, "run.yml", text, strlen(text), files ? &loader : NULL,
                            &diags) != 0) {
        char *d = kiln_diags_format(&diags);
        fail_msg("workflow: %s\n%s\n%s", kiln_error_last(), d ? d : "", text);
    }
    kiln_diags_free(&diags);
    if (inputs) {
        r->inputs = json_loads(inputs, 0, NULL);
        assert_non_null(r->inputs);
    }
    if (secrets) {
        r->secrets = json_loads(secrets, 0, NULL);
        assert_non_null(r->secrets);
    }
    kiln_contexts_t run = {.run_id = 7,
                           .workflow = "run",
                           .actor = "octo",
                           .event_name = "push",
                           .repository = "o/r",
                           .ref = "refs/heads/main",
                           .sha = "abc",
                           .inputs = r->inputs,
                           .secrets = r->secrets};
    assert_int_equal(kiln_rungraph_new(&r->g, r->wf, &run), 0);
    s_advance(r);
}

static void s_new(run_t *r, const char *text)
{
    s_new_with(r, text, NULL, NULL, NULL);
}

static long s_find(const run_t *r, const char *id)
{
    long j = kiln_rungraph_find(r->g, id);
    if (j < 0)
        fail_msg("no job '%s' in the run", id);
    return j;
}

static kiln_job_state_t s_state(const run_t *r, const char *id)
{
    return kiln_rungraph_state(r->g, (size_t)s_find(r, id));
}

static void s_expect_state(const run_t *r, const char *id, kiln_job_state_t want)
{
    kiln_job_state_t got = s_state(r, id);
    if (got != want)
        fail_msg("job %s is %s, want %s", id, kiln_job_state_name(got),
                 kiln_job_state_name(want));
}

/* The ids of the jobs in `state`, in index order, space separated. */
static void s_ids_in(const run_t *r, kiln_job_state_t state, char *out, size_t size)
{
    size_t len = 0;
    out[0] = '\0';
    for (size_t j = 0; j < kiln_rungraph_size(r->g); j++) {
        if (kiln_rungraph_state(r->g, j) != state)
            continue;
        int w = snprintf(out + len, size - len, "%s%s", len ? " " : "", s_id(r, j));
        assert_true(w >= 0 && (size_t)w < size - len);
        len += (size_t)w;
    }
}

static void s_expect_ready(const run_t *r, const char *ids)
{
    char got[2048];
    s_ids_in(r, KILN_JOB_READY, got, sizeof got);
    if (strcmp(got, ids) != 0)
        fail_msg("ready: '%s', want '%s'", got, ids);
}

/* The changes of one kind handed out since the last s_mark, as ids. */
static void s_since(const run_t *r, kiln_rg_kind_t kind, char *out, size_t size)
{
    size_t len = 0;
    out[0] = '\0';
    for (size_t i = r->mark; i < r->n_log; i++) {
        if (r->log[i].kind != kind)
            continue;
        int w = snprintf(out + len, size - len, "%s%s", len ? " " : "", s_id(r, r->log[i].job));
        assert_true(w >= 0 && (size_t)w < size - len);
        len += (size_t)w;
    }
}

static void s_expect_since(const run_t *r, kiln_rg_kind_t kind, const char *ids)
{
    char got[2048];
    s_since(r, kind, got, sizeof got);
    if (strcmp(got, ids) != 0)
        fail_msg("changes of kind %d since the mark: '%s', want '%s'", (int)kind, got, ids);
}

static void s_mark(run_t *r)
{
    r->mark = r->n_log;
}

static void s_start(run_t *r, const char *id)
{
    if (kiln_rungraph_start(r->g, (size_t)s_find(r, id)) != 0)
        fail_msg("start %s: %s", id, kiln_error_last());
    s_expect_state(r, id, KILN_JOB_RUNNING);
    s_advance(r);
}

/* A started (or ready) job ends in `end` with outputs (JSON text or NULL). */
static void s_finish(run_t *r, const char *id, kiln_job_state_t end, const char *outputs)
{
    json_t *o = outputs ? json_loads(outputs, 0, NULL) : NULL;
    if (outputs)
        assert_non_null(o);
    if (kiln_rungraph_finish(r->g, (size_t)s_find(r, id), end, o, false) != 0)
        fail_msg("finish %s: %s", id, kiln_error_last());
    json_decref(o);
    s_expect_state(r, id, end);
    s_advance(r);
}

/* A ready job runs and ends in `end`. */
static void s_run(run_t *r, const char *id, kiln_job_state_t end, const char *outputs)
{
    s_expect_state(r, id, KILN_JOB_READY);
    s_start(r, id);
    s_finish(r, id, end, outputs);
}

/* Runs every ready job (and ends every running one) with success until
 * the run is over; fails if it does not end. */
static void s_drive(run_t *r)
{
    for (int round = 0; round < 10000 && !kiln_rungraph_done(r->g); round++) {
        bool moved = false;
        for (size_t j = 0; j < kiln_rungraph_size(r->g); j++) {
            kiln_job_state_t st = kiln_rungraph_state(r->g, j);
            if (kiln_rungraph_is_call(r->g, j))
                continue; /* a call job ends with its callee's jobs */
            if (st == KILN_JOB_READY) {
                assert_int_equal(kiln_rungraph_start(r->g, j), 0);
                st = KILN_JOB_RUNNING;
            }
            if (st == KILN_JOB_RUNNING) {
                assert_int_equal(kiln_rungraph_finish(r->g, j, KILN_JOB_SUCCESS, NULL, false), 0);
                moved = true;
            }
            s_advance(r);
        }
        s_advance(r);
        if (!moved && !kiln_rungraph_done(r->g))
            fail_msg("the run does not end");
    }
    assert_true(kiln_rungraph_done(r->g));
    for (size_t j = 0; j < kiln_rungraph_size(r->g); j++)
        if (!kiln_job_state_is_final(kiln_rungraph_state(r->g, j)))
            fail_msg("run done but %s is %s", s_id(r, j),
                     kiln_job_state_name(kiln_rungraph_state(r->g, j)));
}

/* Drives the run to its end (the invariant: it always ends), then frees. */
static void s_free(run_t *r)
{
    s_drive(r);
    kiln_rungraph_destroy(&r->g);
    assert_null(r->g);
    kiln_rungraph_destroy(&r->g); /* NULL is fine */
    kiln_workflow_destroy(&r->wf);
    json_decref(r->inputs);
    json_decref(r->secrets);
}

static void s_expect_done(const run_t *r, const char *conclusion)
{
    assert_true(kiln_rungraph_done(r->g));
    assert_string_equal(kiln_rungraph_conclusion(r->g), conclusion);
}

/* The contexts job `id` sees, as JSON. */
static json_t *s_ctx(const run_t *r, const char *id)
{
    char *text = kiln_rungraph_contexts_text(r->g, (size_t)s_find(r, id), 1);
    assert_non_null(text);
    json_error_t jerr;
    json_t *ctx = json_loads(text, 0, &jerr);
    if (!ctx)
        fail_msg("contexts of %s are not JSON: %s: %s", id, jerr.text, text);
    free(text);
    return ctx;
}

/* A value inside job id's contexts, by a path like "needs.build.result",
 * compared as compact JSON. */
static void s_expect_ctx(const run_t *r, const char *id, const char *path, const char *want)
{
    json_t *ctx = s_ctx(r, id), *v = ctx;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *save = NULL, *k = strtok_r(buf, ".", &save); k && v; k = strtok_r(NULL, ".", &save))
        v = json_object_get(v, k);
    char *got = v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    if (!got || strcmp(got, want) != 0) {
        char *all = json_dumps(ctx, JSON_COMPACT);
        print_message("contexts of %s: %s\n", id, all ? all : "?");
        free(all);
        fail_msg("%s of %s is %s, want %s", path, id, got ? got : "(absent)", want);
    }
    free(got);
    json_decref(ctx);
}

static void s_expect_message(const run_t *r, const char *id, const char *part)
{
    const char *m = kiln_rungraph_message(r->g, (size_t)s_find(r, id));
    if (!m || !strstr(m, part))
        fail_msg("message of %s is '%s', want one holding '%s'", id, m ? m : "(none)", part);
}

/* One plain job under "jobs:" (runs-on: l, one step), then `extra`: more of
 * its keys, each line indented by four spaces. */
#define JOB(id, extra) "  " id ":\n    runs-on: l\n    steps: [{run: x}]\n" extra

/* ---------------------------------------------------------- needs */

static void test_diamond(void **state)
{
    (void)state;
    run_t r;
    s_new(&r, "jobs:\n" JOB("a", "") JOB("b", "    needs: a\n") JOB("c", "    needs: a\n")
                  JOB("d", "    needs: [b, c]\n"));
    /* Every job is shown from the start; only a may run. */
    assert_int_equal(kiln_rungraph_size(r.g), 4);
    s_expect_since(&r, KILN_RG_ADDED, "a b c d");
    s_expect_since(&r, KILN_RG_READY, "a");
    s_expect_ready(&r, "a");
    s_expect_state(&r, "d", KILN_JOB_PENDING);
    const char *needs[4];
    assert_int_equal(kiln_rungraph_needs(r.g, (size_t)s_find(&r, "d"), needs, 4), 2);
    assert_string_equal(needs[0], "b");
    assert_string_equal(needs[1], "c");
    size_t deps[4];
    assert_int_equal(kiln_rungraph_dependents(r.g, (size_t)s_find(&r, "a"), deps, 4), 2);
    assert_string_equal(s_id(&r, deps[0]), "b");
    assert_string_equal(s_id(&r, deps[1]), "c");
    /* READY is handed out once, not again on a later advance. */
    s_mark(&r);
    s_advance(&r);
    s_expect_since(&r, KILN_RG_READY, "");
    s_run(&r, "a", KILN_JOB_SUCCESS, NULL);
    s_expect_ready(&r, "b c");
    s_run(&r, "c", KILN_JOB_SUCCESS, NULL);
    /* d needs b as well. */
    s_expect_state(&r, "d", KILN_JOB_PENDING);
    assert_false(kiln_rungraph_done(r.g));
    s_mark(&r);
    s_run(&r, "b", KILN_JOB_SUCCESS, NULL);
    s_expect_since(&r, KILN_RG_READY, "d");
    s_run(&r, "d", KILN_JOB_SUCCESS, NULL);
    s_expect_done(&r, "success");
    s_free(&r);
}

/* A failed need skips its dependents, transitively; jobs that do not
 * depend on it go on; the run fails. */
static void test_failure_skips_dependents(void **state)
{
    (void)state;
    run_t r;
    s_new(&r, "jobs:\n" JOB("a", "") JOB("b", "    needs: a\n") JOB("x", "")
                  JOB("c", "    needs: b\n") JOB("y", "    needs: x\n")
                      JOB("z", "    needs: [c, y]\n"));
    s_expect_ready(&r, "a x");
    s_mark(&r);
    s_run(&r, "a", KILN_JOB_FAILURE, NULL);
    s_expect_since(&r, KILN_RG_FINAL, "b c z");
    s_expect_state(&r, "b", KILN_JOB_SKIPPED);
    s_expect_state(&r, "c", KILN_JOB_SKIPPED);
    s_expect_state(&r, "z", KILN_JOB_SKIPPED);
    s_expect_ready(&r, "x");
    assert_false(kiln_rungraph_done(r.g));
    s_run(&r, "x", KILN_JOB_SUCCESS, NULL);
    s_run(&r, "y", KILN_JOB_SUCCESS, NULL);
    s_expect_state(&r, "z", KILN_JOB_SKIPPED);
    s_expect_done(&r, "failure");
    s_free(&r);
    /* Every failing end fails the run: timed out, infrastructure (a run
     * that failed by infrastructure alone says so: the CLI exits 3). */
    const kiln_job_state_t bad[] = {KILN_JOB_TIMED_OUT, KILN_JOB_INFRA_ERROR};
    const char *concl[] = {"failure", "infra_error"};
    for (size_t i = 0; i < 2; i++) {
        s_new(&r, "jobs:\n" JOB("a", "") JOB("b", "    needs: a\n"));
        s_run(&r, "a", bad[i], NULL);
        s_expect_state(&r, "b", KILN_JOB_SKIPPED);
        s_expect_done(&r, concl[i]);
        s_free(&r);
    }
    /* Infrastructure and a build failure: the build failed. */
    s_new(&r, "jobs:\n" JOB("a", "") JOB("b", ""));
    s_run(&r, "a", KILN_JOB_INFRA_ERROR, NULL);
    s_run(&r, "b", KILN_JOB_FAILURE, NULL);
    s_expect_done(&r, "failure");
    s_free(&r);
}

/* Jobs whose if: calls a status function decide for themselves once their
 * needs are done. */
static void test_status_functions(void **state)
{
    (void)state;
    run_t r;
    s_new(&r, "jobs:\n" JOB("a", "")
                  JOB("b", "    needs: a\n")
                      JOB("always", "    needs: b\n    if: always()\n")
                          JOB("failure", "    needs: b\n    if: failure()\n")
                              JOB("notcancelled", "    needs: b\n    if: ${{ !cancelled() }}\n")
                                  JOB("success", "    needs: b\n    if: success()\n")
                                      JOB("plain", "    needs: b\n    if: github.actor == 'octo'\n")
                                          JOB("after", "    needs: always\n"));
    s_run(&r, "a", KILN_JOB_FAILURE, NULL);
    /* b is skipped; the failure of a, further up, is what failure() sees. */
    s_expect_state(&r, "b", KILN_JOB_SKIPPED);
    s_expect_ready(&r, "always failure notcancelled");
    s_expect_state(&r, "success", KILN_JOB_SKIPPED);
    s_expect_state(&r, "plain", KILN_JOB_SKIPPED);
    s_expect_ctx(&r, "always", "needs.b.result", "\"skipped\"");
    s_run(&r, "always", KILN_JOB_SUCCESS, NULL);
    s_expect_ready(&r, "failure notcancelled after");
    s_run(&r, "failure", KILN_JOB_SUCCESS, NULL);
    s_run(&r, "notcancelled", KILN_JOB_SUCCESS, NULL);
    s_run(&r, "after", KILN_JOB_SUCCESS, NULL);
    s_expect_done(&r, "failure");
    s_free(&r);
    /* When everything succeeds, failure() is false and the others run. */
    s_new(&r, "jobs:\n" JOB("a", "") JOB("failure", "    needs: a\n    if: failure()\n")
                  JOB("always", "    needs: a\n    if: always()\n")
                      JOB("success", "    needs: a\n    if: ${{ success() }}\n"));
    s_run(&r, "a", KILN_JOB_SUCCESS, NULL);
    s_expect_state(&r, "failure", KILN_JOB_SKIPPED);
    s_expect_ready(&r, "always success");
    s_free(&r);
    /* failure() with several needs, the failed one listed last. (Listed
     * first, see test_failure_with_several_needs.) */
    s_new(&r, "jobs:\n" JOB("a", "") JOB("b", "") JOB("c", "    needs: [b, a]\n    if: failure()\n"));
    s_run(&r, "a", KILN_JOB_FAILURE, NULL);
    s_run(&r, "b", KILN_JOB_SUCCESS, NULL);
    s_expect_ready(&r, "c");
    s_free(&r);
}

/* failure() sees a failed need whatever the order of needs. */
static void test_failure_with_several_needs(void **state)
{
    (void)state;
    run_t r;
    s_new(&r, "jobs:\n" JOB("a", "") JOB("b", "") JOB("c", "    needs: [a, b]\n    if: failure()\n"));
    s_run(&r, "a", KILN_JOB_FAILURE, NULL);
    s_run(&r, "b", KILN_JOB_SUCCESS, NULL);
    s_expect_ready(&r, "c");
    s_free(&r);
}

static void test_if_false_skips(void **state)
{
    (void)state;
    run_t r;
    s_new(&r, "jobs:\n" JOB("no", "    if: false\n")
                  JOB("pr", "    if: github.event_name == 'pull_request'\n")
                      JOB("yes", "    if: github.event_name == 'push'\n")
                          JOB("after", "    needs: no\n"));
    s_expect_state(&r, "no", KILN_JOB_SKIPPED);
    s_expect_state(&r, "pr", KILN_JOB_SKIPPED);
    s_expect_state(&r, "after", KILN_JOB_SKIPPED);
    s_expect_ready(&r, "yes");
    s_run(&r, "yes", KILN_JOB_SUCCESS, NULL);
    /* Skipped jobs do not fail the run. */
    s_expect_done(&r, "success");
    s_free(&r);
}

/* An if: that does not evaluate fails its job, saying which and why; the
 * run goes on and ends. */
static void test_if_error_fails_job(void **state)
{
    (void)state;
    run_t r;
    s_new(&r, "jobs:\n" JOB("a", "")
                  JOB("bad", "    needs: a\n    if: ${{ fromJSON('{') }}\n")
                      JOB("after", "    needs: bad\n") JOB("other", "    needs: a\n"));
    s_mark(&r);
    s_run(&r, "a", KILN_JOB_SUCCESS, NULL);
    s_expect_since(&r, KILN_RG_FINAL, "bad after");
    s_expect_state(&r, "bad", KILN_JOB_FAILURE);
    s_expect_message(&r, "bad", "job 'bad'");
    s_expect_message(&r, "bad", "if:");
    s_expect_state(&r, "after", KILN_JOB_SKIPPED);
    s_run(&r, "other", KILN_JOB_SUCCESS, NULL);
    s_expect_done(&r, "failure");
    s_free(&r);
}

static void test_all_skipped(void **state)
{
    (void)state;
    run_t r;
    s_new(&r, "jobs:\n" JOB("a", "    if: false\n") JOB("b", "    needs: a\n"));
    s_expect_since(&r, KILN_RG_FINAL, "a b");
    s_expect_done(&r, "skipped");
    s_free(&r);
}

/* ------------------------------------------------------- matrices */

static void test_static_matrix(void **state)
{
    (void)state;
    run_t r;
    s_new(&r, "jobs:\n"
              "  build:\n"
              "    runs-on: l\n"
              "    strategy:\n"
              "      matrix: {os: [a, b], v: [1, 2]}\n"
              "    steps: [{run: x}]\n"
              "  named:\n"
              "    name: Test\n"
              "    runs-on: l\n"
              "    strategy:\n"
              "      matrix: {os: [x]}\n"
              "    steps: [{run: x}]\n");
    assert_int_equal(kiln_rungraph_size(r.g), 5);
    s_expect_ready(&r, "build-1 build-2 build-3 build-4 named-1");
    const char *names[] = {"build (a, 1)", "build (a, 2)", "build (b, 1)", "build (b, 2)",
                           "Test (x)"};
    for (size_t j = 0; j < 5; j++) {
        assert_string_equal(kiln_rungraph_job(r.g, j)->name, names[j]);
        assert_string_equal(kiln_rungraph_spec(r.g, j)->id, j < 4 ? "build" : "named");
    }
    assert_int_equal(kiln_rungraph_job(r.g, 2)->index, 2);
    assert_int_equal(kiln_rungraph_job(r.g, 2)->total, 4);
    s_expect_ctx(&r, "build-3", "matrix", "{\"os\":\"b\",\"v\":1}");
    s_expect_ctx(&r, "build-3", "strategy.job-index", "2");
    s_expect_ctx(&r, "build-3", "strategy.job-total", "4");
    s_expect_ctx(&r, "build-3", "github.job", "\"build\"");
    s_free(&r);
}

/* needs.<job>.result of a matrix job: failure if any failed, else
 * cancelled if any was, else skipped if all were, else success; its
 * outputs are its jobs' merged. */
static void test_needs_result_over_matrix(void **state)
{
    (void)state;
    struct {
        kiln_job_state_t ends[3];
        const char *result;
    } cases[] = {
        {{KILN_JOB_SUCCESS, KILN_JOB_FAILURE, KILN_JOB_CANCELLED}, "\"failure\""},
        {{KILN_JOB_SUCCESS, KILN_JOB_CANCELLED, KILN_JOB_SKIPPED}, "\"cancelled\""},
        {{KILN_JOB_SKIPPED, KILN_JOB_SKIPPED, KILN_JOB_SKIPPED}, "\"skipped\""},
        {{KILN_JOB_SUCCESS, KILN_JOB_SKIPPED, KILN_JOB_SUCCESS}, "\"success\""},
    };
    const char *ids[] = {"build-1", "build-2", "build-3"};
    const char *outputs[] = {"{\"a\": \"1\"}", "{\"b\": \"2\"}", NULL};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        run_t r;
        s_new(&r, "jobs:\n"
                  "  build:\n"
                  "    runs-on: l\n"
                  "    strategy: {fail-fast: false, matrix: {n: [1, 2, 3]}}\n"
                  "    steps: [{run: x}]\n" JOB("report", "    needs: build\n    if: always()\n"));
        for (size_t i = 0; i < 3; i++)
            s_run(&r, ids[i], cases[c].ends[i], outputs[i]);
        s_expect_ready(&r, "report");
        s_expect_ctx(&r, "report", "needs.build.result", cases[c].result);
        s_expect_ctx(&r, "report", "needs.build.outputs", "{\"a\":\"1\",\"b\":\"2\"}");
        s_free(&r);
    }
}

/* A matrix from a need's outputs is planned once that need has ended with
 * them; so is one matrix key given by an expression. */
static void test_matrix_from_needs(void **state)
{
    (void)state;
    run_t r;
    s_new(&r, "jobs:\n" JOB("plan", "")
              "  build:\n"
              "    needs: plan\n"
              "    runs-on: l\n"
              "    strategy:\n"
              "      matrix: ${{ fromJSON(needs.plan.outputs.m) }}\n"
              "    steps: [{run: x}]\n"
              "  keyed:\n"
              "    needs: plan\n"
              "    runs-on: l\n"
              "    strategy:\n"
              "      matrix:\n"
              "        v: ${{ fromJSON(needs.plan.outputs.vs) }}\n"
              "    steps: [{run: x}]\n" JOB("report", "    needs: [build, keyed]\n"));
    /* build and keyed have no jobs yet. */
    assert_int_equal(kiln_rungraph_size(r.g), 2);
    assert_true(kiln_rungraph_find(r.g, "build-1") < 0);
    assert_true(kiln_rungraph_find(r.g, "build") < 0);
    s_expect_ready(&r, "plan");
    s_mark(&r);
    s_run(&r, "plan", KILN_JOB_SUCCESS,
          "{\"m\": \"{\\\"os\\\": [\\\"x\\\", \\\"y\\\"]}\", \"vs\": \"[10, 20, 30]\"}");
    s_expect_since(&r, KILN_RG_ADDED, "build-1 build-2 keyed-1 keyed-2 keyed-3");
    s_expect_ready(&r, "build-1 build-2 keyed-1 keyed-2 keyed-3");
    assert_string_equal(kiln_rungraph_job(r.g, (size_t)s_find(&r, "build-2"))->name,
                        "build (y)");
    assert_string_equal(kiln_rungraph_job(r.g, (size_t)s_find(&r, "keyed-3"))->name,
                        "keyed (30)");
    s_expect_ctx(&r, "keyed-2", "matrix", "{\"v\":20}");
    s_run(&r, "build-1", KILN_JOB_SUCCESS, NULL);
    s_run(&r, "build-2", KILN_JOB_SUCCESS, NULL);
    s_run(&r, "keyed-1", KILN_JOB_SUCCESS, NULL);
    s_run(&r, "keyed-2", KILN_JOB_SUCCESS, NULL);
    s_expect_state(&r, "report", KILN_JOB_PENDING);
    s_run(&r, "keyed-3", KILN_JOB_SUCCESS, NULL);
    s_expect_ready(&r, "report");
    s_free(&r);
}

/* A matrix that does not evaluate fails its job with a message; the run
 * still ends. */
static void test_bad_matrix_from_needs(void **state)
{
    (void)state;
    const char *outputs[] = {"{\"m\": \"not json\"}", "{\"m\": \"[1, 2]\"}", "{}",
                             "{\"m\": \"{\\\"os\\\": []}\"}"};
    for (size_t i = 0; i < sizeof outputs / sizeof outputs[0]; i++) {
        run_t r;
        s_new(&r, "jobs:\n" JOB("plan", "")
                  "  build:\n"
                  "    needs: plan\n"
                  "    runs-on: l\n"
                  "    strategy:\n"
                  "      matrix: ${{ fromJSON(needs.plan.outputs.m) }}\n"
                  "    steps: [{run: x}]\n" JOB("report", "    needs: build\n")
                      JOB("always", "    needs: build\n    if: always()\n"));
        s_mark(&r);
        s_run(&r, "plan", KILN_JOB_SUCCESS, outputs[i]);
        s_expect_since(&r, KILN_RG_FINAL, "build report");
        s_expect_state(&r, "build", KILN_JOB_FAILURE);
        s_expect_message(&r, "build", "job 'build': strategy.matrix");
        s_expect_state(&r, "report", KILN_JOB_SKIPPED);
        s_expect_ready(&r, "always");
        s_expect_ctx(&r, "always", "needs.build.result", "\"failure\"");
        s_run(&r, "always", KILN_JOB_SUCCESS, NULL);
        s_expect_done(&r, "failure");
        s_free(&r);
    }
}

/* fail-fast: a failed combination cancels the siblings not yet running
 * and stops the running ones; other jobs are not touched. */
static void test_fail_fast(void **state)
{
    (void)state;
    run_t r;
    s_new(&r, "jobs:\n"
              "  build:\n"
              "    runs-on: l\n"
              "    strategy: {matrix: {n: [1, 2, 3, 4]}}\n"
              "    steps: [{run: x}]\n" JOB("other", ""));
    s_start(&r, "build-1");
    s_start(&r, "build-2");
    s_mark(&r);
    s_finish(&r, "build-1", KILN_JOB_FAILURE, NULL);
    s_expect_since(&r, KILN_RG_STOP, "build-2");
    s_expect_since(&r, KILN_RG_FINAL, "build-3 build-4");
    s_expect_state(&r, "build-3", KILN_JOB_CANCELLED);
    s_expect_state(&r, "build-4", KILN_JOB_CANCELLED);
    s_expect_state(&r, "build-2", KILN_JOB_RUNNING);
    s_expect_ready(&r, "other");
    s_finish(&r, "build-2", KILN_JOB_CANCELLED, NULL);
    s_run(&r, "other", KILN_JOB_SUCCESS, NULL);
    s_expect_done(&r, "failure");
    s_free(&r);
    /* Pending combinations (held back by max-parallel) end cancelled too. */
    s_new(&r, "jobs:\n"
              "  build:\n"
              "    runs-on: l\n"
              "    strategy: {max-parallel: 1, matrix: {n: [1, 2, 3]}}\n"
              "    steps: [{run: x}]\n");
    s_expect_ready(&r, "build-1");
    s_mark(&r);
    s_run(&r, "build-1", KILN_JOB_FAILURE, NULL);
    s_expect_since(&r, KILN_RG_FINAL, "build-2 build-3");
    s_expect_since(&r, KILN_RG_READY, "");
    s_expect_done(&r, "failure");
    s_free(&r);
    /* fail-fast: false lets the others run. */
    s_new(&r, "jobs:\n"
              "  build:\n"
              "    runs-on: l\n"
              "    strategy: {fail-fast: false, matrix: {n: [1, 2, 3]}}\n"
              "    steps: [{run: x}]\n");
    s_start(&r, "build-2");
    s_mark(&r);
    s_run(&r, "build-1", KILN_JOB_FAILURE, NULL);
    s_expect_since(&r, KILN_RG_STOP, "");
    s_expect_since(&r, KILN_RG_FINAL, "");
    s_expect_ready(&r, "build-3");
    s_finish(&r, "build-2", KILN_JOB_SUCCESS, NULL);
    s_run(&r, "build-3", KILN_JOB_SUCCESS, NULL);
    s_expect_done(&r, "failure");
    s_free(&r);
    /* fail-fast as an expression. */
    s_new(&r, "jobs:\n"
              "  build:\n"
              "    runs-on: l\n"
              "    strategy:\n"
              "      fail-fast: ${{ github.event_name == 'pull_request' }}\n"
              "      matrix: {n: [1, 2]}\n"
              "    steps: [{run: x}]\n");
    s_expect_ctx(&r, "build-1", "strategy.fail-fast", "false");
    s_run(&r, "build-1", KILN_JOB_FAILURE, NULL);
    s_expect_ready(&r, "build-2");
    s_free(&r);
}

/* max-parallel 2 of 5: never more than two ready or running at once, and
 * all five run. */
static void test_max_parallel(void **state)
{
    (void)state;
    run_t r;
    s_new(&r, "jobs:\n"
              "  build:\n"
              "    runs-on: l\n"
              "    strategy: {max-parallel: 2, matrix: {n: [1, 2, 3, 4, 5]}}\n"
              "    steps: [{run: x}]\n");
    assert_int_equal(kiln_rungraph_size(r.g), 5);
    s_expect_ready(&r, "build-1 build-2");
    s_expect_ctx(&r, "build-1", "strategy.max-parallel", "2");
    size_t ran = 0;
    while (!kiln_rungraph_done(r.g)) {
        size_t busy = 0, pick = SIZE_MAX;
        for (size_t j = 0; j < kiln_rungraph_size(r.g); j++) {
            kiln_job_state_t st = kiln_rungraph_state(r.g, j);
            busy += st == KILN_JOB_READY || st == KILN_JOB_RUNNING;
            if (st == KILN_JOB_READY && pick == SIZE_MAX)
                pick = j;
        }
        if (busy > 2)
            fail_msg("%zu jobs ready or running with max-parallel 2", busy);
        assert_true(pick != SIZE_MAX);
        s_run(&r, s_id(&r, pick), KILN_JOB_SUCCESS, NULL);
        ran++;
    }
    assert_int_equal(ran, 5);
    s_expect_done(&r, "success");
    s_free(&r);
    /* max-parallel as an expression. */
    s_new(&r, "jobs:\n"
              "  build:\n"
              "    runs-on: l\n"
              "    strategy:\n"
              "      max-parallel: ${{ github.event_name == 'push' && 1 || 3 }}\n"
              "      matrix: {n: [1, 2]}\n"
              "    steps: [{run: x}]\n");
    s_expect_ready(&r, "build-1");
    s_free(&r);
}

/* continue-on-error at job level: the job's failure fails neither the run
 * nor needs.<job>.result, and triggers no fail-fast. */
static void test_continue_on_error(void **state)
{
    (void)state;
    run_t r;
    s_new(&r, "jobs:\n" JOB("a", "    continue-on-error: true\n") JOB("b", "    needs: a\n"));
    assert_true(kiln_rungraph_job(r.g, (size_t)s_find(&r, "a"))->continue_on_error);
    s_run(&r, "a", KILN_JOB_FAILURE, NULL);
    s_expect_ready(&r, "b");
    s_expect_ctx(&r, "b", "needs.a.result", "\"success\"");
    s_run(&r, "b", KILN_JOB_SUCCESS, NULL);
    s_expect_done(&r, "success");
    s_free(&r);
    /* From the matrix: only the experimental combination may fail. */
    s_new(&r, "jobs:\n"
              "  build:\n"
              "    runs-on: l\n"
              "    continue-on-error: ${{ matrix.experimental }}\n"
              "    strategy:\n"
              "      matrix: {v: [1], experimental: [false], include: [{v: 2, experimental: true}]}\n"
              "    steps: [{run: x}]\n");
    assert_false(kiln_rungraph_job(r.g, (size_t)s_find(&r, "build-1"))->continue_on_error);
    assert_true(kiln_rungraph_job(r.g, (size_t)s_find(&r, "build-2"))->continue_on_error);
    s_mark(&r);
    s_run(&r, "build-2", KILN_JOB_FAILURE, NULL);
    s_expect_since(&r, KILN_RG_FINAL, ""); /* no fail-fast */
    s_run(&r, "build-1", KILN_JOB_SUCCESS, NULL);
    s_expect_done(&r, "success");
    s_free(&r);
    s_new(&r, "jobs:\n"
              "  build:\n"
              "    runs-on: l\n"
              "    continue-on-error: ${{ matrix.experimental }}\n"
              "    strategy:\n"
              "      matrix: {v: [1], experimental: [false], include: [{v: 2, experimental: true}]}\n"
              "    steps: [{run: x}]\n");
    s_run(&r, "build-1", KILN_JOB_FAILURE, NULL);
    s_expect_state(&r, "build-2", KILN_JOB_CANCELLED);
    s_expect_done(&r, "failure");
    s_free(&r);
}

/* ---------------------------------------------------------- cancel */

static void test_cancel(void **state)
{
    (void)state;
    run_t r;
    s_new(&r, "jobs:\n" JOB("a", "") JOB("b", "") JOB("c", "    needs: a\n")
                  JOB("d", "    needs: a\n    if: always()\n")
                      JOB("e", "    needs: a\n    if: ${{ !cancelled() }}\n")
                          JOB("f", "    needs: a\n    if: cancelled()\n") JOB("done", ""));
    s_start(&r, "a");
    s_run(&r, "done", KILN_JOB_SUCCESS, NULL);
    s_mark(&r);
    kiln_rungraph_cancel(r.g);
    assert_true(kiln_rungraph_cancelled(r.g));
    s_advance(&r);
    /* b (ready) and c (waiting) end cancelled; a runs until stopped. */
    s_expect_since(&r, KILN_RG_STOP, "a");
    s_expect_state(&r, "a", KILN_JOB_RUNNING);
    s_expect_state(&r, "b", KILN_JOB_CANCELLED);
    s_expect_state(&r, "c", KILN_JOB_CANCELLED);
    s_expect_state(&r, "done", KILN_JOB_SUCCESS);
    assert_false(kiln_rungraph_done(r.g));
    /* A cancelled job cannot start. */
    assert_int_equal(kiln_rungraph_start(r.g, (size_t)s_find(&r, "b")), KILN_EINVAL);
    /* Cancelling twice changes nothing. */
    s_mark(&r);
    kiln_rungraph_cancel(r.g);
    s_advance(&r);
    s_expect_since(&r, KILN_RG_STOP, "");
    s_finish(&r, "a", KILN_JOB_CANCELLED, NULL);
    /* always() and cancelled() still run; !cancelled() is false: skipped. */
    s_expect_ready(&r, "d f");
    s_expect_state(&r, "e", KILN_JOB_SKIPPED);
    s_run(&r, "d", KILN_JOB_SUCCESS, NULL);
    s_run(&r, "f", KILN_JOB_SUCCESS, NULL);
    s_expect_done(&r, "cancelled");
    s_free(&r);
}

/* A run cancel leaves `if: always()` jobs running or ready, as GitHub does. */
static void test_cancel_keeps_always_jobs(void **state)
{
    (void)state;
    run_t r;
    s_new(&r, "jobs:\n" JOB("a", "    if: always()\n") JOB("b", "    if: always()\n"));
    s_start(&r, "a");
    s_mark(&r);
    kiln_rungraph_cancel(r.g);
    s_advance(&r);
    s_expect_since(&r, KILN_RG_STOP, "");
    s_expect_ready(&r, "b");
    s_finish(&r, "a", KILN_JOB_SUCCESS, NULL);
    s_run(&r, "b", KILN_JOB_SUCCESS, NULL);
    s_expect_done(&r, "cancelled");
    s_free(&r);
}

/* A matrix being run when the run is cancelled: each running combination
 * gets one STOP (not one from fail-fast and one from the cancel). */
static void test_cancel_matrix(void **state)
{
    (void)state;
    run_t r;
    s_new(&r, "jobs:\n"
              "  build:\n"
              "    runs-on: l\n"
              "    strategy: {max-parallel: 2, matrix: {n: [1, 2, 3]}}\n"
              "    steps: [{run: x}]\n" JOB("after", "    needs: build\n"));
    s_start(&r, "build-1");
    s_mark(&r);
    kiln_rungraph_cancel(r.g);
    s_advance(&r);
    s_expect_since(&r, KILN_RG_STOP, "build-1");
    /* The waiting dependent ends cancelled at once too. */
    s_expect_since(&r, KILN_RG_FINAL, "build-2 build-3 after");
    s_expect_state(&r, "after", KILN_JOB_CANCELLED);
    assert_false(kiln_rungraph_done(r.g));
    s_finish(&r, "build-1", KILN_JOB_CANCELLED, NULL);
    s_expect_done(&r, "cancelled");
    s_free(&r);
}

/* ----------------------------------------------- host transitions */

static void test_requeue_and_bad_transitions(void **state)
{
    (void)state;
    run_t r;
    s_new(&r, "jobs:\n" JOB("a", "") JOB("b", "    needs: a\n"));
    size_t a = (size_t)s_find(&r, "a"), b = (size_t)s_find(&r, "b");
    /* b is pending: it can neither start nor finish. */
    assert_int_equal(kiln_rungraph_start(r.g, b), KILN_EINVAL);
    assert_non_null(strstr(kiln_error_last(), "not ready"));
    assert_int_equal(kiln_rungraph_finish(r.g, b, KILN_JOB_SUCCESS, NULL, false), KILN_EINVAL);
    assert_int_equal(kiln_rungraph_requeue(r.g, a), KILN_EINVAL); /* ready, not running */
    s_start(&r, "a");
    assert_int_equal(kiln_rungraph_start(r.g, a), KILN_EINVAL);
    /* Its attempt was lost: ready again, and it may start again. */
    s_mark(&r);
    assert_int_equal(kiln_rungraph_requeue(r.g, a), 0);
    s_expect_state(&r, "a", KILN_JOB_READY);
    s_advance(&r);
    s_start(&r, "a");
    /* A non-final end is not an end. */
    assert_int_equal(kiln_rungraph_finish(r.g, a, KILN_JOB_RUNNING, NULL, false), KILN_EINVAL);
    assert_int_equal(kiln_rungraph_finish(r.g, a, KILN_JOB_READY, NULL, false), KILN_EINVAL);
    s_expect_state(&r, "a", KILN_JOB_RUNNING);
    s_finish(&r, "a", KILN_JOB_SUCCESS, NULL);
    /* Finishing twice. */
    assert_int_equal(kiln_rungraph_finish(r.g, a, KILN_JOB_FAILURE, NULL, false), KILN_EINVAL);
    s_expect_state(&r, "a", KILN_JOB_SUCCESS);
    s_expect_ready(&r, "b");
    s_free(&r);
}

/* A recorded end replayed at recovery (quiet) triggers no fail-fast. */
static void test_quiet_finish(void **state)
{
    (void)state;
    run_t r;
    s_new(&r, "jobs:\n"
              "  build:\n"
              "    runs-on: l\n"
              "    strategy: {matrix: {n: [1, 2]}}\n"
              "    steps: [{run: x}]\n");
    s_start(&r, "build-1");
    s_start(&r, "build-2");
    s_mark(&r);
    assert_int_equal(kiln_rungraph_finish(r.g, (size_t)s_find(&r, "build-1"), KILN_JOB_FAILURE,
                                          NULL, true),
                     0);
    s_advance(&r);
    s_expect_since(&r, KILN_RG_STOP, "");
    s_expect_state(&r, "build-2", KILN_JOB_RUNNING);
    s_free(&r);
}

/* -------------------------------------------------- other systems */

static void test_windows_job_fails(void **state)
{
    (void)state;
    run_t r;
    s_new(&r, "jobs:\n"
              "  win:\n    runs-on: windows-latest\n    steps: [{run: x}]\n" JOB(
                  "after", "    needs: win\n") JOB("lin", ""));
    s_expect_state(&r, "win", KILN_JOB_FAILURE);
    s_expect_message(&r, "win", "job 'win'");
    s_expect_message(&r, "win", "windows-latest");
    s_expect_state(&r, "after", KILN_JOB_SKIPPED);
    s_expect_ready(&r, "lin");
    s_run(&r, "lin", KILN_JOB_SUCCESS, NULL);
    s_expect_done(&r, "failure");
    s_free(&r);
    /* One an expression sends there fails when planned. */
    s_new(&r, "jobs:\n"
              "  build:\n"
              "    runs-on: ${{ matrix.os }}\n"
              "    strategy: {matrix: {os: [ubuntu-latest, macos-14]}}\n"
              "    steps: [{run: x}]\n");
    s_expect_ready(&r, "build-1");
    s_expect_state(&r, "build-2", KILN_JOB_FAILURE);
    s_expect_message(&r, "build-2", "macos-14");
    s_free(&r);
    /* A remote reusable workflow likewise. */
    s_new(&r, "jobs:\n  call:\n    uses: o/r/.github/workflows/x.yml@v1\n" JOB("lin", ""));
    s_expect_state(&r, "call", KILN_JOB_FAILURE);
    s_expect_message(&r, "call", "only a coordinator with action sources resolves");
    s_expect_ready(&r, "lin");
    s_free(&r);
}

/* ---------------------------------------------- per-job planning */

static void s_expect_labels(const run_t *r, const char *id, const char *want)
{
    const kiln_plan_job_t *job = kiln_rungraph_job(r->g, (size_t)s_find(r, id));
    char got[512];
    size_t len = 0;
    got[0] = '\0';
    for (size_t i = 0; i < job->n_labels; i++)
        len += (size_t)snprintf(got + len, sizeof got - len, "%s%s", i ? " " : "", job->labels[i]);
    if (strcmp(got, want) != 0)
        fail_msg("labels of %s: '%s', want '%s'", id, got, want);
}

static const char *s_env(const kiln_plan_job_t *job, const char *key)
{
    for (size_t i = 0; i < job->env.n; i++)
        if (strcmp(job->env.items[i].key, key) == 0)
            return job->env.items[i].value;
    return NULL;
}

/* runs-on, timeout-minutes, env and continue-on-error evaluated per job. */
static void test_job_fields_evaluated(void **state)
{
    (void)state;
    run_t r;
    s_new(&r, "env: {W: wf, SHARED: wf}\n"
              "jobs:\n"
              "  build:\n"
              "    runs-on: ${{ matrix.os }}\n"
              "    timeout-minutes: ${{ matrix.slow && 20 || 10 }}\n"
              "    env: ${{ matrix.env }}\n"
              "    strategy:\n"
              "      matrix:\n"
              "        include:\n"
              "          - {os: small, slow: false, env: {A: '1', SHARED: job}}\n"
              "          - {os: big, slow: true, env: {A: '2', N: 3}}\n"
              "    steps: [{run: x}]\n"
              "  list:\n"
              "    runs-on: ${{ fromJSON('[\"self-hosted\",\"big\"]') }}\n"
              "    timeout-minutes: 1.5\n"
              "    env: {J: '${{ github.actor }}-${{ github.event_name }}'}\n"
              "    steps: [{run: x}]\n"
              "  group:\n"
              "    runs-on: {group: farm, labels: [gpu]}\n"
              "    steps: [{run: x}]\n"
              "  plain:\n"
              "    runs-on: [self-hosted, x64]\n"
              "    steps: [{run: x}]\n");
    s_expect_ready(&r, "build-1 build-2 list group plain");
    const kiln_plan_job_t *b1 = kiln_rungraph_job(r.g, (size_t)s_find(&r, "build-1"));
    const kiln_plan_job_t *b2 = kiln_rungraph_job(r.g, (size_t)s_find(&r, "build-2"));
    const kiln_plan_job_t *list = kiln_rungraph_job(r.g, (size_t)s_find(&r, "list"));
    const kiln_plan_job_t *plain = kiln_rungraph_job(r.g, (size_t)s_find(&r, "plain"));
    assert_true(b1->finished && b2->finished && list->finished && plain->finished);
    s_expect_labels(&r, "build-1", "small");
    s_expect_labels(&r, "build-2", "big");
    s_expect_labels(&r, "list", "self-hosted big");
    s_expect_labels(&r, "group", "farm gpu");
    s_expect_labels(&r, "plain", "self-hosted x64");
    assert_int_equal(b1->timeout_ms, 10 * 60 * 1000);
    assert_int_equal(b2->timeout_ms, 20 * 60 * 1000);
    assert_int_equal(list->timeout_ms, 90 * 1000);
    assert_int_equal(plain->timeout_ms, KILN_WF_DEFAULT_JOB_TIMEOUT_MS);
    /* The workflow's env, then the job's: the job's values win. */
    assert_string_equal(s_env(b1, "W"), "wf");
    assert_string_equal(s_env(b1, "A"), "1");
    assert_string_equal(s_env(b1, "SHARED"), "job");
    assert_string_equal(s_env(b2, "A"), "2");
    assert_string_equal(s_env(b2, "N"), "3");
    assert_string_equal(s_env(b2, "SHARED"), "wf");
    assert_string_equal(s_env(list, "J"), "octo-push");
    assert_false(b1->continue_on_error);
    s_free(&r);
    /* A value of the wrong type fails that job only, naming the field. */
    s_new(&r, "jobs:\n"
              "  t:\n    runs-on: l\n    timeout-minutes: ${{ 'soon' }}\n    steps: [{run: x}]\n"
              "  e:\n    runs-on: l\n    env: ${{ fromJSON('[1]') }}\n    steps: [{run: x}]\n"
              "  o:\n    runs-on: ${{ fromJSON('{}') }}\n    steps: [{run: x}]\n" JOB("ok", ""));
    s_expect_state(&r, "t", KILN_JOB_FAILURE);
    s_expect_message(&r, "t", "timeout-minutes");
    s_expect_state(&r, "e", KILN_JOB_FAILURE);
    s_expect_message(&r, "e", "env");
    s_expect_state(&r, "o", KILN_JOB_FAILURE);
    s_expect_message(&r, "o", "runs-on");
    s_expect_ready(&r, "ok");
    s_free(&r);
}

/* Fields that read needs are evaluated when the job is about to run. */
static void test_job_fields_from_needs(void **state)
{
    (void)state;
    run_t r;
    s_new(&r, "jobs:\n" JOB("plan", "")
              "  build:\n"
              "    needs: plan\n"
              "    name: Build ${{ needs.plan.outputs.v }}\n"
              "    runs-on: ${{ needs.plan.outputs.label }}\n"
              "    env: {V: '${{ needs.plan.outputs.v }}'}\n"
              "    steps: [{run: x}]\n");
    s_run(&r, "plan", KILN_JOB_SUCCESS, "{\"v\": \"7\", \"label\": \"fast\"}");
    s_expect_ready(&r, "build");
    const kiln_plan_job_t *b = kiln_rungraph_job(r.g, (size_t)s_find(&r, "build"));
    assert_string_equal(b->name, "Build 7");
    s_expect_labels(&r, "build", "fast");
    assert_string_equal(s_env(b, "V"), "7");
    s_free(&r);
}

/* Job-level concurrency: the group and cancel-in-progress evaluated. */
static void test_job_concurrency(void **state)
{
    (void)state;
    run_t r;
    s_new(&r, "jobs:\n"
              "  deploy:\n"
              "    runs-on: l\n"
              "    strategy: {matrix: {target: [staging, prod]}}\n"
              "    concurrency:\n"
              "      group: deploy-${{ matrix.target }}\n"
              "      cancel-in-progress: ${{ matrix.target == 'staging' }}\n"
              "    steps: [{run: x}]\n"
              "  one:\n"
              "    runs-on: l\n"
              "    concurrency: ${{ github.workflow }}-one\n"
              "    steps: [{run: x}]\n" JOB("none", ""));
    const kiln_plan_job_t *d1 = kiln_rungraph_job(r.g, (size_t)s_find(&r, "deploy-1"));
    const kiln_plan_job_t *d2 = kiln_rungraph_job(r.g, (size_t)s_find(&r, "deploy-2"));
    const kiln_plan_job_t *one = kiln_rungraph_job(r.g, (size_t)s_find(&r, "one"));
    const kiln_plan_job_t *none = kiln_rungraph_job(r.g, (size_t)s_find(&r, "none"));
    assert_string_equal(d1->group, "deploy-staging");
    assert_true(d1->cancel_in_progress);
    assert_string_equal(d2->group, "deploy-prod");
    assert_false(d2->cancel_in_progress);
    assert_string_equal(one->group, "run-one");
    assert_false(one->cancel_in_progress);
    assert_null(none->group);
    s_free(&r);
}

/* --------------------------------------------- reusable workflows */

static const char *const s_callee =
    "on:\n"
    "  workflow_call:\n"
    "    inputs:\n"
    "      who: {type: string, required: true}\n"
    "      loud: {type: boolean, default: false}\n"
    "    outputs:\n"
    "      greeting: {value: '${{ jobs.hello.outputs.g }}'}\n"
    "      result: {value: '${{ jobs.hello.result }}'}\n"
    "jobs:\n"
    "  hello:\n"
    "    name: Say hello\n"
    "    runs-on: l\n"
    "    outputs: {g: '${{ steps.s.outputs.g }}'}\n"
    "    steps: [{id: s, run: 'echo ${{ inputs.who }}'}]\n"
    "  bye:\n"
    "    needs: hello\n"
    "    runs-on: l\n"
    "    steps: [{run: 'echo bye'}]\n";

/* A local reusable workflow: its jobs join the run under the caller's id
 * and name, see the caller's with: as inputs, and their outputs become the
 * caller's, which a job that needs the caller sees. */
static void test_reusable_workflow(void **state)
{
    (void)state;
    run_t r;
    json_t *files = json_pack("{s:s}", ".github/workflows/greet.yml", s_callee);
    s_new_with(&r,
               "jobs:\n"
               "  call:\n"
               "    name: Caller\n"
               "    uses: ./.github/workflows/greet.yml\n"
               "    with: {who: '${{ github.actor }}'}\n" JOB("after", "    needs: call\n"),
               files, NULL, NULL);
    long call = s_find(&r, "call");
    assert_true(kiln_rungraph_is_call(r.g, (size_t)call));
    /* The caller never runs on a worker: it is running while its jobs are. */
    s_expect_state(&r, "call", KILN_JOB_RUNNING);
    s_expect_ready(&r, "call.hello");
    const kiln_plan_job_t *hello = kiln_rungraph_job(r.g, (size_t)s_find(&r, "call.hello"));
    assert_string_equal(hello->name, "Caller / Say hello");
    assert_false(kiln_rungraph_is_call(r.g, (size_t)s_find(&r, "call.hello")));
    assert_string_equal(kiln_rungraph_spec(r.g, (size_t)s_find(&r, "call.hello"))->id, "hello");
    assert_ptr_equal(kiln_rungraph_workflow(r.g, (size_t)s_find(&r, "call.hello")),
                     r.wf->jobs[0].callee);
    s_expect_ctx(&r, "call.hello", "inputs", "{\"who\":\"octo\",\"loud\":false}");
    s_expect_state(&r, "call.bye", KILN_JOB_PENDING);
    const char *needs[2];
    assert_int_equal(kiln_rungraph_needs(r.g, (size_t)s_find(&r, "call.bye"), needs, 2), 1);
    s_run(&r, "call.hello", KILN_JOB_SUCCESS, "{\"g\": \"hi octo\"}");
    s_expect_state(&r, "call", KILN_JOB_RUNNING);
    s_expect_ready(&r, "call.bye");
    s_mark(&r);
    s_run(&r, "call.bye", KILN_JOB_SUCCESS, NULL);
    s_expect_since(&r, KILN_RG_FINAL, "call");
    s_expect_state(&r, "call", KILN_JOB_SUCCESS);
    const json_t *outs = kiln_rungraph_outputs(r.g, (size_t)call);
    assert_non_null(outs);
    assert_string_equal(json_string_value(json_object_get(outs, "greeting")), "hi octo");
    assert_string_equal(json_string_value(json_object_get(outs, "result")), "success");
    s_expect_ready(&r, "after");
    s_expect_ctx(&r, "after", "needs.call.outputs.greeting", "\"hi octo\"");
    s_expect_ctx(&r, "after", "needs.call.result", "\"success\"");
    s_run(&r, "after", KILN_JOB_SUCCESS, NULL);
    s_expect_done(&r, "success");
    s_free(&r);
    json_decref(files);
}

/* A failing callee job fails the caller; its dependents are skipped. */
static void test_reusable_workflow_failure(void **state)
{
    (void)state;
    run_t r;
    json_t *files = json_pack("{s:s}", ".github/workflows/greet.yml", s_callee);
    s_new_with(&r,
               "jobs:\n"
               "  call:\n"
               "    uses: ./.github/workflows/greet.yml\n"
               "    with: {who: me}\n" JOB("after", "    needs: call\n")
                   JOB("report", "    needs: call\n    if: always()\n"),
               files, NULL, NULL);
    s_run(&r, "call.hello", KILN_JOB_FAILURE, NULL);
    s_expect_state(&r, "call.bye", KILN_JOB_SKIPPED);
    s_expect_state(&r, "call", KILN_JOB_FAILURE);
    s_expect_state(&r, "after", KILN_JOB_SKIPPED);
    s_expect_ready(&r, "report");
    s_expect_ctx(&r, "report", "needs.call.result", "\"failure\"");
    s_run(&r, "report", KILN_JOB_SUCCESS, NULL);
    s_expect_done(&r, "failure");
    s_free(&r);
    /* A with: that does not type-check fails the caller at run time. */
    s_new_with(&r,
               "jobs:\n"
               "  call:\n"
               "    uses: ./.github/workflows/greet.yml\n"
               "    with: {who: me, loud: '${{ github.actor }}'}\n" JOB("other", ""),
               files, NULL, NULL);
    s_expect_state(&r, "call", KILN_JOB_FAILURE);
    s_expect_message(&r, "call", "input 'loud' is a boolean");
    s_expect_ready(&r, "other");
    s_free(&r);
    /* Cancelled while its jobs run: they stop, the caller ends cancelled. */
    s_new_with(&r,
               "jobs:\n"
               "  call:\n"
               "    uses: ./.github/workflows/greet.yml\n"
               "    with: {who: me}\n",
               files, NULL, NULL);
    s_start(&r, "call.hello");
    s_mark(&r);
    kiln_rungraph_cancel(r.g);
    s_advance(&r);
    s_expect_since(&r, KILN_RG_STOP, "call.hello");
    s_finish(&r, "call.hello", KILN_JOB_CANCELLED, NULL);
    s_expect_state(&r, "call.bye", KILN_JOB_CANCELLED);
    s_expect_state(&r, "call", KILN_JOB_CANCELLED);
    s_expect_done(&r, "cancelled");
    s_free(&r);
    json_decref(files);
}

/* The run's github fields, inputs and secrets reach its jobs' contexts. */
static void test_run_contexts(void **state)
{
    (void)state;
    run_t r;
    s_new_with(&r, "jobs:\n" JOB("a", "    if: inputs.go\n") JOB("b", "    if: ${{ !inputs.go }}\n"),
               NULL, "{\"go\": true, \"who\": \"me\"}", "{\"A\": \"1\"}");
    s_expect_ready(&r, "a");
    s_expect_state(&r, "b", KILN_JOB_SKIPPED);
    s_expect_ctx(&r, "a", "inputs.who", "\"me\"");
    s_expect_ctx(&r, "a", "secrets", "{\"A\":\"1\"}");
    s_expect_ctx(&r, "a", "github.actor", "\"octo\"");
    s_expect_ctx(&r, "a", "github.run_id", "\"7\"");
    s_expect_ctx(&r, "a", "needs", "{}");
    char *text = kiln_rungraph_contexts_text(r.g, (size_t)s_find(&r, "a"), 2);
    assert_non_null(strstr(text, "\"run_attempt\":\"2\""));
    free(text);
    s_free(&r);
}

/* A called workflow sees the secrets its caller passes (or inherits), and no others. */
static void test_callee_secrets(void **state)
{
    (void)state;
    json_t *files = json_pack("{s:s}", ".github/workflows/greet.yml",
                              "on:\n  workflow_call:\n    secrets: {tok: {required: false}}\n"
                              "jobs:\n  hello: {runs-on: l, steps: [{run: x}]}\n");
    run_t r;
    /* inherit: all of them (this part holds). */
    s_new_with(&r,
               "jobs:\n  call:\n    uses: ./.github/workflows/greet.yml\n    secrets: inherit\n",
               files, NULL, "{\"A\": \"1\"}");
    s_expect_ctx(&r, "call.hello", "secrets", "{\"A\":\"1\"}");
    s_free(&r);
    s_new_with(&r,
               "jobs:\n"
               "  none:\n    uses: ./.github/workflows/greet.yml\n"
               "  some:\n    uses: ./.github/workflows/greet.yml\n"
               "    secrets: {tok: '${{ secrets.A }}'}\n",
               files, NULL, "{\"A\": \"1\"}");
    s_expect_ctx(&r, "none.hello", "secrets", "{}");
    s_expect_ctx(&r, "some.hello", "secrets", "{\"tok\":\"1\"}");
    s_free(&r);
    json_decref(files);
}

/* --------------------------------------------------- the invariant */

/* A small deterministic generator, so a failure can be replayed. */
static uint32_t s_rand(uint32_t *seed)
{
    *seed = *seed * 1103515245u + 12345u;
    return (*seed >> 16) & 0x7fff;
}

/* Whatever the jobs' ends, requeues and cancels, the run ends. */
static void test_run_always_ends(void **state)
{
    (void)state;
    json_t *files = json_pack("{s:s}", ".github/workflows/greet.yml", s_callee);
    const char *text =
        "jobs:\n" JOB("plan", "")
        "  build:\n"
        "    needs: plan\n"
        "    runs-on: l\n"
        "    strategy:\n"
        "      max-parallel: 2\n"
        "      matrix: ${{ fromJSON(needs.plan.outputs.m || '{\"n\":[1]}') }}\n"
        "    steps: [{run: x}]\n"
        "  free:\n"
        "    runs-on: l\n"
        "    continue-on-error: ${{ matrix.n == 2 }}\n"
        "    strategy: {matrix: {n: [1, 2, 3]}}\n"
        "    steps: [{run: x}]\n"
        "  call:\n"
        "    needs: free\n"
        "    uses: ./.github/workflows/greet.yml\n"
        "    with: {who: me}\n" JOB("report", "    needs: [build, call]\n    if: always()\n")
            JOB("notify", "    needs: report\n    if: failure()\n")
        "  win:\n    needs: plan\n    runs-on: windows-latest\n    steps: [{run: x}]\n";
    const kiln_job_state_t ends[] = {KILN_JOB_SUCCESS,   KILN_JOB_SUCCESS,     KILN_JOB_SUCCESS,
                                     KILN_JOB_SUCCESS,   KILN_JOB_SUCCESS,     KILN_JOB_FAILURE,
                                     KILN_JOB_TIMED_OUT, KILN_JOB_CANCELLED,   KILN_JOB_INFRA_ERROR,
                                     KILN_JOB_SKIPPED};
    for (uint32_t s = 1; s <= 200; s++) {
        uint32_t seed = s;
        run_t r;
        s_new_with(&r, text, files, NULL, NULL);
        for (int step = 0; step < 1000 && !kiln_rungraph_done(r.g); step++) {
            size_t n = kiln_rungraph_size(r.g), j = s_rand(&seed) % n;
            kiln_job_state_t st = kiln_rungraph_state(r.g, j);
            uint32_t roll = s_rand(&seed) % 100;
            if (roll == 0 && s % 4 == 0) {
                kiln_rungraph_cancel(r.g); /* a quarter of the runs may be cancelled */
            } else if (st == KILN_JOB_READY) {
                assert_int_equal(kiln_rungraph_start(r.g, j), 0);
            } else if (st == KILN_JOB_RUNNING && !kiln_rungraph_is_call(r.g, j)) {
                if (roll < 10) {
                    assert_int_equal(kiln_rungraph_requeue(r.g, j), 0);
                } else {
                    kiln_job_state_t end = ends[s_rand(&seed) % 10];
                    json_t *o = NULL;
                    if (strcmp(s_id(&r, j), "plan") == 0 && roll < 60)
                        o = json_pack("{s:s}", "m", roll < 40 ? "{\"n\": [1, 2, 3, 4]}" : "x");
                    assert_int_equal(kiln_rungraph_finish(r.g, j, end, o, false), 0);
                    json_decref(o);
                }
            }
            s_advance(&r);
        }
        if (getenv("KILN_TEST_VERBOSE"))
            print_message("seed %u: %s after %zu jobs, %s\n", s,
                          kiln_rungraph_done(r.g) ? kiln_rungraph_conclusion(r.g) : "not done",
                          kiln_rungraph_size(r.g), kiln_rungraph_cancelled(r.g) ? "cancelled" : "");
        s_free(&r); /* drives the rest with success and checks it ends */
    }
    json_decref(files);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_diamond),
        cmocka_unit_test(test_failure_skips_dependents),
        cmocka_unit_test(test_status_functions),
        cmocka_unit_test(test_failure_with_several_needs),
        cmocka_unit_test(test_if_false_skips),
        cmocka_unit_test(test_if_error_fails_job),
        cmocka_unit_test(test_all_skipped),
        cmocka_unit_test(test_static_matrix),
        cmocka_unit_test(test_needs_result_over_matrix),
        cmocka_unit_test(test_matrix_from_needs),
        cmocka_unit_test(test_bad_matrix_from_needs),
        cmocka_unit_test(test_fail_fast),
        cmocka_unit_test(test_max_parallel),
        cmocka_unit_test(test_continue_on_error),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_cancel_keeps_always_jobs),
        cmocka_unit_test(test_cancel_matrix),
        cmocka_unit_test(test_requeue_and_bad_transitions),
        cmocka_unit_test(test_quiet_finish),
        cmocka_unit_test(test_windows_job_fails),
        cmocka_unit_test(test_job_fields_evaluated),
        cmocka_unit_test(test_job_fields_from_needs),
        cmocka_unit_test(test_job_concurrency),
        cmocka_unit_test(test_reusable_workflow),
        cmocka_unit_test(test_reusable_workflow_failure),
        cmocka_unit_test(test_run_contexts),
        cmocka_unit_test(test_callee_secrets),
        cmocka_unit_test(test_run_always_ends),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
