/* test_pipeline.c: unit tests for coordinator/pipeline.c.
 *
 * Sample workflows live in $KILN_TEST_DATA/workflows (tests/data when the
 * variable is unset). Each error class is checked for its message and its
 * exact line and column, because that position is what a user of `kiln
 * lint` acts on; limits are checked at their boundary (the limit passes,
 * one more fails) so that a test fails when a limit drifts.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/error.h"
#include "lang/pipeline.h"

typedef struct {
    char path[512];
    kiln_diags_t diags;
    kiln_workflow_t *wf;
    int rc;
} result_t;

static const char *s_data_dir(void)
{
    const char *dir = getenv("KILN_TEST_DATA");
    return dir && dir[0] ? dir : "tests/data";
}

static void s_load(result_t *r, const char *name)
{
    memset(r, 0, sizeof *r);
    snprintf(r->path, sizeof r->path, "%s/workflows/%s", s_data_dir(), name);
    kiln_diags_init(&r->diags, r->path);
    kiln_error_clear();
    r->rc = kiln_pipeline_load(&r->wf, r->path, &r->diags);
}

static void s_parse(result_t *r, const char *text, size_t len)
{
    memset(r, 0, sizeof *r);
    snprintf(r->path, sizeof r->path, "ci/test.yml");
    kiln_diags_init(&r->diags, r->path);
    kiln_error_clear();
    r->rc = kiln_pipeline_parse(&r->wf, r->path, text, len, &r->diags);
}

static void s_parse_str(result_t *r, const char *text)
{
    s_parse(r, text, strlen(text));
}

static void s_done(result_t *r)
{
    kiln_pipeline_destroy(&r->wf);
    assert_null(r->wf);
    kiln_diags_free(&r->diags);
}

static size_t s_count(const kiln_diags_t *d, kiln_diag_severity_t sev)
{
    size_t n = 0;
    for (size_t i = 0; i < d->n; i++)
        n += d->items[i].severity == sev;
    return n;
}

/* The parse failed with exactly one error, at line:col, saying `message`,
 * and kiln_error_last() repeats it with the file name. */
static void s_expect_error(const result_t *r, int line, int col, const char *message)
{
    char want[1024];
    assert_int_equal(r->rc, KILN_EINVAL);
    assert_null(r->wf);
    assert_int_equal(r->diags.n_errors, 1);
    const kiln_diag_t *d = NULL;
    for (size_t i = 0; i < r->diags.n; i++)
        if (r->diags.items[i].severity == KILN_DIAG_ERROR)
            d = &r->diags.items[i];
    assert_non_null(d);
    assert_string_equal(d->message, message);
    assert_int_equal(d->line, line);
    assert_int_equal(d->col, col);
    snprintf(want, sizeof want, "%s:%d:%d: %s", r->path, line, col, message);
    assert_string_equal(kiln_error_last(), want);
}

/* One error whose message contains `part`, at `line`. */
static void s_expect_error_like(const result_t *r, int line, const char *part)
{
    assert_int_equal(r->rc, KILN_EINVAL);
    assert_null(r->wf);
    assert_int_equal(r->diags.n_errors, 1);
    const kiln_diag_t *d = NULL;
    for (size_t i = 0; i < r->diags.n; i++)
        if (r->diags.items[i].severity == KILN_DIAG_ERROR)
            d = &r->diags.items[i];
    assert_non_null(d);
    if (!strstr(d->message, part))
        fail_msg("message '%s' lacks '%s'", d->message, part);
    assert_int_equal(d->line, line);
    if (!strstr(kiln_error_last(), part))
        fail_msg("last error '%s' lacks '%s'", kiln_error_last(), part);
}

static void s_assert_env(const kiln_env_t *env, size_t i, const char *key, const char *value)
{
    assert_true(i < env->n);
    assert_string_equal(env->items[i].key, key);
    assert_string_equal(env->items[i].value, value);
}

/* malloc that fails the test on NULL; the attribute lets gcc -O2 see the
 * buffers below are never NULL (cmocka's asserts are not noreturn). */
static void *__attribute__((returns_nonnull)) s_alloc(size_t size)
{
    void *p = malloc(size);
    if (!p) {
        fail_msg("out of memory");
        abort();
    }
    return p;
}

static void __attribute__((format(printf, 4, 5)))
s_append(char *buf, size_t size, size_t *len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf + *len, size - *len, fmt, ap);
    va_end(ap);
    assert_true(n >= 0 && (size_t)n < size - *len);
    *len += (size_t)n;
}

static double s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

/* ---------------------------------------------------------------------- */

static void test_full_model(void **state)
{
    (void)state;
    result_t r;
    s_load(&r, "full.yml");
    if (r.rc != 0)
        fail_msg("%s", kiln_error_last());
    assert_int_equal(r.diags.n, 0); /* run-name, permissions, concurrency: no warning */
    kiln_workflow_t *wf = r.wf;
    assert_string_equal(wf->name, "Full example");
    assert_string_equal(wf->file, r.path);

    /* Workflow env: file order kept, scalars of every kind as text. */
    assert_int_equal(wf->env.n, 5);
    s_assert_env(&wf->env, 0, "ZED", "last");
    s_assert_env(&wf->env, 1, "ALPHA", "1");
    s_assert_env(&wf->env, 2, "NUMBER", "42");
    s_assert_env(&wf->env, 3, "FLAG", "true");
    s_assert_env(&wf->env, 4, "EMPTY", "");
    assert_string_equal(wf->shell, "bash");
    assert_string_equal(wf->working_directory, "src");

    assert_int_equal(wf->n_jobs, 4);
    assert_int_equal(kiln_pipeline_find_job(wf, "lint"), 0);
    assert_int_equal(kiln_pipeline_find_job(wf, "build"), 1);
    assert_int_equal(kiln_pipeline_find_job(wf, "test"), 2);
    assert_int_equal(kiln_pipeline_find_job(wf, "docs"), 3);
    assert_int_equal(kiln_pipeline_find_job(wf, "nope"), -1);

    const kiln_job_t *lint = &wf->jobs[0];
    assert_string_equal(lint->name, "Lint sources");
    assert_int_equal(lint->n_runs_on, 1);
    assert_string_equal(lint->runs_on[0], "linux");
    assert_int_equal(lint->timeout_ms, 90000); /* 1.5 minutes */
    assert_int_equal(lint->n_needs, 0);
    assert_string_equal(lint->shell, "bash"); /* the workflow's default */
    assert_string_equal(lint->working_directory, "src");
    assert_false(lint->continue_on_error);
    assert_null(lint->if_expr);
    assert_int_equal(lint->line, 22);
    assert_int_equal(lint->col, 3);
    assert_int_equal(lint->n_steps, 1);
    assert_string_equal(lint->steps[0].name, "Run make lint");
    assert_string_equal(lint->steps[0].run, "make lint");
    assert_null(lint->steps[0].shell);
    assert_int_equal(lint->steps[0].timeout_ms, 0);

    const kiln_job_t *build = &wf->jobs[1];
    assert_string_equal(build->name, "build"); /* no name: the id */
    assert_int_equal(build->n_runs_on, 3);
    assert_string_equal(build->runs_on[0], "linux");
    assert_string_equal(build->runs_on[1], "x64");
    assert_string_equal(build->runs_on[2], "big");
    assert_int_equal(build->n_needs, 1);
    assert_string_equal(build->needs[0], "lint");
    assert_int_equal(build->need_idx[0], 0);
    assert_int_equal(build->env.n, 2);
    s_assert_env(&build->env, 0, "CC", "clang");
    s_assert_env(&build->env, 1, "CFLAGS", "-O2");
    assert_int_equal(build->timeout_ms, 30 * 60 * 1000);
    assert_true(build->continue_on_error);
    assert_string_equal(build->if_expr, "github.event_name == 'push'");
    assert_string_equal(build->shell, "sh"); /* job defaults override */
    assert_string_equal(build->working_directory, "build");
    assert_int_equal(build->n_steps, 2);

    const kiln_step_t *compile = &build->steps[0];
    assert_string_equal(compile->name, "Compile");
    assert_string_equal(compile->id, "compile");
    assert_string_equal(compile->run, "make -j4\nmake install\n");
    assert_null(compile->uses);
    assert_string_equal(compile->shell, "python");
    assert_string_equal(compile->working_directory, "out");
    assert_int_equal(compile->env.n, 1);
    s_assert_env(&compile->env, 0, "V", "1");
    assert_int_equal(compile->timeout_ms, 10 * 60 * 1000);
    assert_true(compile->continue_on_error); /* "True" is a boolean too */
    assert_string_equal(compile->if_expr, "success()");
    assert_int_equal(compile->line, 46);
    assert_int_equal(compile->col, 9);

    /* Derived name: first non-blank line, trimmed, cut at 60 bytes. */
    const kiln_step_t *second = &build->steps[1];
    assert_string_equal(second->name,
                        "Run echo \"a rather long first line of a script that goes on and ...");
    assert_false(second->continue_on_error);

    const kiln_job_t *test = &wf->jobs[2];
    assert_int_equal(test->n_needs, 2);
    assert_int_equal(test->need_idx[0], 1);
    assert_int_equal(test->need_idx[1], 0);
    assert_string_equal(test->if_expr, "false"); /* a bool kept verbatim */
    assert_int_equal(test->timeout_ms, KILN_WF_DEFAULT_JOB_TIMEOUT_MS);
    assert_string_equal(test->steps[0].shell, "perl {0}");
    assert_int_equal(test->steps[0].timeout_ms, 30000);

    /* Needs first, otherwise file order: docs (independent) stays last. */
    assert_non_null(wf->topo);
    assert_int_equal(wf->topo[0], 0);
    assert_int_equal(wf->topo[1], 1);
    assert_int_equal(wf->topo[2], 2);
    assert_int_equal(wf->topo[3], 3);
    s_done(&r);
}

static void test_topo_needs_before_file_order(void **state)
{
    (void)state;
    result_t r;
    s_parse_str(&r, "jobs:\n"
                    "  late:\n    runs-on: l\n    needs: [mid]\n    steps: [{run: x}]\n"
                    "  mid:\n    runs-on: l\n    needs: early\n    steps: [{run: x}]\n"
                    "  free:\n    runs-on: l\n    steps: [{run: x}]\n"
                    "  early:\n    runs-on: l\n    steps: [{run: x}]\n");
    if (r.rc != 0)
        fail_msg("%s", kiln_error_last());
    /* free (2) is ready first by file order; early (3) then unlocks mid
     * (1) and late (0). */
    assert_int_equal(r.wf->topo[0], 2);
    assert_int_equal(r.wf->topo[1], 3);
    assert_int_equal(r.wf->topo[2], 1);
    assert_int_equal(r.wf->topo[3], 0);
    s_done(&r);
}

static void test_default_name_is_base_name(void **state)
{
    (void)state;
    result_t r;
    s_parse_str(&r, "jobs:\n  a:\n    runs-on: l\n    steps:\n      - run: x\n");
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.wf->name, "test.yml");
    assert_string_equal(r.wf->jobs[0].name, "a");
    assert_null(r.wf->jobs[0].shell);
    assert_null(r.wf->jobs[0].working_directory);
    s_done(&r);
}

static void test_unknown_keys_warn(void **state)
{
    (void)state;
    result_t r;
    s_load(&r, "unknown_key.yml");
    assert_int_equal(r.rc, 0);
    assert_non_null(r.wf);
    assert_int_equal(r.diags.n_errors, 0);
    assert_int_equal(r.diags.n, 3);
    assert_int_equal(s_count(&r.diags, KILN_DIAG_WARNING), 3);
    assert_string_equal(r.diags.items[0].message, "unknown key 'triggers' at top level");
    assert_int_equal(r.diags.items[0].line, 3);
    assert_int_equal(r.diags.items[0].col, 1);
    assert_string_equal(r.diags.items[1].message, "unknown key 'colour' in job 'build'");
    assert_int_equal(r.diags.items[1].line, 7);
    assert_int_equal(r.diags.items[1].col, 5);
    assert_string_equal(r.diags.items[2].message,
                        "unknown key 'retries' in step 'Run make' of job 'build'");
    assert_int_equal(r.diags.items[2].line, 10);
    assert_int_equal(r.diags.items[2].col, 9);
    s_done(&r);
}

static void test_syntax_error(void **state)
{
    (void)state;
    result_t r;
    s_load(&r, "syntax_error.yml");
    s_expect_error_like(&r, 6, "YAML syntax error: did not find expected node content");
    assert_int_equal(r.diags.items[0].col, 7);
    s_done(&r);

    /* A reader error (bad UTF-8) has an offset, not a mark: still a line. */
    s_parse_str(&r, "name: ok\njobs:\n  a: \xff\xfe\n");
    s_expect_error_like(&r, 3, "YAML syntax error: invalid");
    s_done(&r);
}

static void test_wrong_types(void **state)
{
    (void)state;
    result_t r;
    s_load(&r, "wrong_type.yml");
    assert_int_equal(r.rc, KILN_EINVAL);
    assert_int_equal(r.diags.n_errors, 3);
    assert_int_equal(r.diags.n, 3);
    assert_string_equal(r.diags.items[0].message,
                        "'timeout-minutes' of job 'build' must be a number");
    assert_int_equal(r.diags.items[0].line, 7);
    assert_int_equal(r.diags.items[0].col, 5);
    assert_string_equal(r.diags.items[1].message,
                        "'continue-on-error' of job 'build' must be a boolean (true or false)");
    assert_int_equal(r.diags.items[1].line, 8);
    assert_string_equal(r.diags.items[2].message, "'env' of job 'build' must be a mapping");
    assert_int_equal(r.diags.items[2].line, 9);
    char want[1024];
    snprintf(want, sizeof want, "%s:7:5: 'timeout-minutes' of job 'build' must be a number",
             r.path);
    assert_string_equal(kiln_error_last(), want);
    s_done(&r);
}

static void test_scalar_types(void **state)
{
    (void)state;
    result_t r;
    /* A quoted number is a string, not a number. */
    s_parse_str(&r, "jobs:\n  a:\n    runs-on: l\n    timeout-minutes: \"5\"\n"
                    "    steps: [{run: x}]\n");
    s_expect_error(&r, 4, 5, "'timeout-minutes' of job 'a' must be a number");
    s_done(&r);
    /* Zero and negative timeouts are refused. */
    s_parse_str(&r, "jobs:\n  a:\n    runs-on: l\n    steps:\n      - run: x\n"
                    "        timeout-minutes: 0\n");
    s_expect_error_like(&r, 6, "must be a number of minutes greater than 0");
    s_done(&r);
    /* A quoted "true" is not a boolean. */
    s_parse_str(&r, "jobs:\n  a:\n    runs-on: l\n    continue-on-error: 'true'\n"
                    "    steps: [{run: x}]\n");
    s_expect_error(&r, 4, 5,
                   "'continue-on-error' of job 'a' must be a boolean (true or false)");
    s_done(&r);
    /* FALSE and hex/inf are handled as the YAML core schema says. */
    s_parse_str(&r, "jobs:\n  a:\n    runs-on: l\n    continue-on-error: FALSE\n"
                    "    timeout-minutes: .inf\n    steps: [{run: x}]\n");
    s_expect_error(&r, 5, 5, "'timeout-minutes' of job 'a' must be a number");
    s_done(&r);
    /* runs-on as a mapping is the wrong type. */
    s_parse_str(&r, "jobs:\n  a:\n    runs-on: {group: big}\n    steps: [{run: x}]\n");
    s_expect_error(&r, 3, 5, "'runs-on' of job 'a' must be a string or a list of strings");
    s_done(&r);
    /* env values must be scalars. */
    s_parse_str(&r, "env:\n  A: [1]\njobs:\n  a:\n    runs-on: l\n    steps: [{run: x}]\n");
    s_expect_error(&r, 2, 3, "env 'A' of the workflow must be a string, not a list");
    s_done(&r);
}

static void test_unknown_needs(void **state)
{
    (void)state;
    result_t r;
    s_load(&r, "unknown_needs.yml");
    s_expect_error(&r, 10, 9, "job 'd' needs unknown job 'x'");
    s_done(&r);
}

static void test_self_need(void **state)
{
    (void)state;
    result_t r;
    s_load(&r, "self_need.yml");
    s_expect_error(&r, 4, 12, "cycle in needs: a -> a");
    s_done(&r);
}

static void test_cycle(void **state)
{
    (void)state;
    result_t r;
    s_load(&r, "cycle.yml");
    /* At a's needs entry for b: the cycle starts at its first job in the file. */
    s_expect_error(&r, 8, 20, "cycle in needs: a -> b -> c -> a");
    s_done(&r);
}

static void test_empty_jobs(void **state)
{
    (void)state;
    result_t r;
    s_load(&r, "empty_jobs.yml");
    s_expect_error(&r, 3, 1, "'jobs' is empty: a workflow needs at least one job");
    s_done(&r);
    s_parse_str(&r, "name: x\n");
    s_expect_error(&r, 1, 1, "the workflow has no 'jobs'");
    s_done(&r);
}

static void test_step_without_run(void **state)
{
    (void)state;
    result_t r;
    s_load(&r, "no_run.yml");
    s_expect_error(&r, 6, 9,
                   "step 'Forgot the command' of job 'build' has neither 'run' nor 'uses'; "
                   "a step needs exactly one");
    s_done(&r);
    s_parse_str(&r, "jobs:\n  j:\n    runs-on: l\n    steps:\n      - run: a\n        uses: b\n");
    assert_int_equal(r.rc, KILN_EINVAL);
    assert_int_equal(r.diags.n_errors, 1);
    assert_string_equal(r.diags.items[0].message,
                        "step 'Run a' of job 'j' has both 'run' and 'uses'; a step needs exactly "
                        "one");
    assert_int_equal(r.diags.items[0].line, 5);
    s_done(&r);
}

static void test_uses_not_supported(void **state)
{
    (void)state;
    result_t r;
    s_load(&r, "uses.yml");
    s_expect_error(&r, 5, 9,
                   "step 'Run actions/checkout@v4' of job 'build' uses 'actions/checkout@v4': "
                   "only local composite actions (uses: ./path) are supported; no actions are built in yet");
    s_done(&r);
}

static void test_bad_shell(void **state)
{
    (void)state;
    result_t r;
    s_load(&r, "bad_shell.yml");
    s_expect_error_like(&r, 9, "unsupported shell 'fish'");
    s_done(&r);
    s_parse_str(&r, "defaults:\n  run:\n    shell: zsh\njobs:\n  a:\n    runs-on: l\n"
                    "    steps: [{run: x}]\n");
    s_expect_error_like(&r, 3, "unsupported shell 'zsh'");
    s_done(&r);
}

static void test_duplicate_key(void **state)
{
    (void)state;
    result_t r;
    /* The repeat is reported and then ignored: its value (a mapping, the
     * wrong type for runs-on) adds no second error. */
    s_load(&r, "dup_key.yml");
    s_expect_error(&r, 6, 5, "duplicate key 'runs-on'");
    s_done(&r);
    /* Duplicate job ids are duplicate keys too; the first job stays. */
    s_parse_str(&r, "jobs:\n  a:\n    runs-on: l\n    steps: [{run: x}]\n"
                    "  a:\n    runs-on: l\n    steps: [{run: y}]\n");
    s_expect_error(&r, 5, 3, "duplicate key 'a'");
    s_done(&r);
}

static void test_bad_job_id(void **state)
{
    (void)state;
    result_t r;
    s_load(&r, "bad_job_id.yml");
    s_expect_error_like(&r, 6, "invalid job id '1bad'");
    assert_int_equal(r.diags.items[0].col, 3);
    s_done(&r);
}

static void test_id_length_limit(void **state)
{
    (void)state;
    result_t r;
    char id[KILN_WF_MAX_ID + 2];
    char text[512];
    memset(id, 'j', KILN_WF_MAX_ID);
    id[KILN_WF_MAX_ID] = '\0';
    snprintf(text, sizeof text, "jobs:\n  %s:\n    runs-on: l\n    steps: [{run: x}]\n", id);
    s_parse_str(&r, text);
    assert_int_equal(r.rc, 0);
    s_done(&r);
    id[KILN_WF_MAX_ID] = 'j';
    id[KILN_WF_MAX_ID + 1] = '\0';
    snprintf(text, sizeof text, "jobs:\n  %s:\n    runs-on: l\n    steps: [{run: x}]\n", id);
    s_parse_str(&r, text);
    s_expect_error_like(&r, 2, "is longer than 100 characters");
    s_done(&r);
}

static void test_no_runs_on(void **state)
{
    (void)state;
    result_t r;
    s_load(&r, "no_runs_on.yml");
    s_expect_error(&r, 2, 3, "job 'build' has no runs-on");
    s_done(&r);
}

static void test_billion_laughs(void **state)
{
    (void)state;
    result_t r;
    double t0 = s_now_ms();
    s_load(&r, "billion_laughs.yml");
    double took = s_now_ms() - t0;
    s_expect_error_like(&r, 6, "too many YAML nodes (alias expansion?)");
    /* Refused from the counts, not by expanding: milliseconds even under
     * sanitizers. */
    if (took > 200.0)
        fail_msg("took %.1f ms", took);
    s_done(&r);
}

static void test_alias_budget_boundary(void **state)
{
    (void)state;
    result_t r;
    /* Counting every node with aliases expanded: the mapping (1), x-a (1)
     * with its list (1 + 100), x-b (1) with its list (1 + 10 * 101), on (1)
     * with 97 uses of *b (1 + 97 * 1011), the 11 nodes of the jobs section,
     * and x-p (1) with a list (1 + pad): 99197 + pad. pad = 803 is exactly
     * KILN_WF_MAX_NODES; 804 is one too many. */
    size_t size = 64 * 1024;
    char *text = s_alloc(size);
    for (int pad = 803; pad <= 804; pad++) {
        size_t len = 0;
        s_append(text, size, &len, "x-a: &a [");
        for (int i = 0; i < 100; i++)
            s_append(text, size, &len, "%sz", i ? "," : "");
        s_append(text, size, &len, "]\nx-b: &b [");
        for (int i = 0; i < 10; i++)
            s_append(text, size, &len, "%s*a", i ? "," : "");
        s_append(text, size, &len, "]\non: [");
        for (int i = 0; i < 97; i++)
            s_append(text, size, &len, "%s*b", i ? "," : "");
        s_append(text, size, &len,
                 "]\njobs:\n  a:\n    runs-on: l\n    steps: [{run: x}]\nx-p: [");
        for (int i = 0; i < pad; i++)
            s_append(text, size, &len, "%sz", i ? "," : "");
        s_append(text, size, &len, "]\n");
        s_parse(&r, text, len);
        if (pad == 803) {
            if (r.rc != 0)
                fail_msg("at the limit: %s", kiln_error_last());
        } else {
            s_expect_error_like(&r, 8, "too many YAML nodes (alias expansion?)");
        }
        s_done(&r);
    }
    free(text);
}

static void test_anchors(void **state)
{
    (void)state;
    result_t r;
    s_load(&r, "anchors.yml");
    if (r.rc != 0)
        fail_msg("%s", kiln_error_last());
    assert_int_equal(r.diags.n_errors, 0);
    assert_int_equal(r.wf->n_jobs, 2);
    s_assert_env(&r.wf->jobs[1].env, 0, "LANG", "C");
    s_assert_env(&r.wf->jobs[1].env, 1, "TZ", "UTC");
    assert_string_equal(r.wf->jobs[1].steps[0].run, "make");
    s_done(&r);

    s_parse_str(&r, "jobs: *nowhere\n");
    s_expect_error(&r, 1, 7, "alias '*nowhere' refers to no complete anchor");
    s_done(&r);
    /* A structure that contains itself is refused, not followed forever. */
    s_parse_str(&r, "x: &loop [1, *loop]\njobs: {}\n");
    s_expect_error(&r, 1, 14, "alias '*loop' refers to no complete anchor");
    s_done(&r);
}

/* `on:` followed by `levels` nested flow sequences. */
static char *s_nested(int levels)
{
    size_t size = (size_t)levels * 2 + 256;
    char *text = s_alloc(size);
    size_t len = (size_t)sprintf(text, "on: ");
    for (int i = 0; i < levels; i++)
        text[len++] = '[';
    for (int i = 0; i < levels; i++)
        text[len++] = ']';
    sprintf(text + len, "\njobs:\n  a:\n    runs-on: l\n    steps: [{run: x}]\n");
    return text;
}

static void test_depth_limit(void **state)
{
    (void)state;
    result_t r;
    /* The top-level mapping is level 1, so `on:` holds 63 more levels. */
    char *text = s_nested(KILN_WF_MAX_DEPTH - 1);
    s_parse_str(&r, text);
    if (r.rc != 0)
        fail_msg("at the limit: %s", kiln_error_last());
    s_done(&r);
    free(text);

    text = s_nested(KILN_WF_MAX_DEPTH);
    s_parse_str(&r, text);
    /* The 64th '[' is the 65th level: column 5 + 63. */
    s_expect_error(&r, 1, 5 + KILN_WF_MAX_DEPTH - 1, "nesting deeper than 64 levels");
    s_done(&r);
    free(text);

    /* Far past the limit (as a fuzzer would send) fails the same way. */
    text = s_nested(100000);
    s_parse_str(&r, text);
    s_expect_error_like(&r, 1, "nesting deeper than 64 levels");
    s_done(&r);
    free(text);
}

static void test_size_limit(void **state)
{
    (void)state;
    result_t r;
    const char *head = "jobs:\n  a:\n    runs-on: l\n    steps: [{run: x}]\n";
    size_t size = KILN_WF_MAX_BYTES + 1;
    char *text = s_alloc(size);
    /* A valid workflow padded with a comment to exactly the limit. */
    memset(text, 'x', size);
    memcpy(text, head, strlen(head));
    text[strlen(head)] = '#';
    text[KILN_WF_MAX_BYTES - 1] = '\n';
    s_parse(&r, text, KILN_WF_MAX_BYTES);
    if (r.rc != 0)
        fail_msg("at the limit: %s", kiln_error_last());
    s_done(&r);

    text[KILN_WF_MAX_BYTES - 1] = 'x';
    text[KILN_WF_MAX_BYTES] = '\n';
    s_parse(&r, text, KILN_WF_MAX_BYTES + 1);
    assert_int_equal(r.rc, KILN_EINVAL);
    assert_int_equal(r.diags.n_errors, 1);
    assert_int_equal(r.diags.items[0].line, 0);
    assert_string_equal(r.diags.items[0].message,
                        "the workflow is 1048577 bytes; the limit is 1048576 bytes");
    assert_string_equal(kiln_error_last(),
                        "ci/test.yml: the workflow is 1048577 bytes; the limit is 1048576 bytes");
    s_done(&r);

    /* kiln_pipeline_load refuses such a file before parsing it. */
    char path[] = "/tmp/kiln-test-pipeline-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, size), (ssize_t)size);
    close(fd);
    kiln_diags_t diags;
    kiln_workflow_t *wf = NULL;
    kiln_diags_init(&diags, path);
    assert_int_equal(kiln_pipeline_load(&wf, path, &diags), KILN_ETOOBIG);
    assert_null(wf);
    assert_int_equal(diags.n_errors, 1);
    assert_non_null(strstr(kiln_error_last(), "larger than the limit of 1048576 bytes"));
    assert_non_null(strstr(kiln_error_last(), path));
    kiln_diags_free(&diags);
    unlink(path);
    free(text);
}

static void test_scalar_limit(void **state)
{
    (void)state;
    result_t r;
    const size_t limit = 256 * 1024;
    char *text = s_alloc(limit + 256);
    for (size_t extra = 0; extra <= 1; extra++) {
        size_t len =
            (size_t)sprintf(text, "jobs:\n  a:\n    runs-on: l\n    steps:\n      - run: ");
        memset(text + len, 'e', limit + extra);
        len += limit + extra;
        text[len++] = '\n';
        s_parse(&r, text, len);
        if (extra == 0)
            assert_int_equal(r.rc, 0);
        else
            s_expect_error(&r, 5, 14,
                           "a value of 262145 bytes is longer than the limit of 262144 bytes");
        s_done(&r);
    }
    free(text);
}

static void test_job_and_step_count_limits(void **state)
{
    (void)state;
    result_t r;
    size_t size = (size_t)(KILN_WF_MAX_JOBS + 1) * 64 + 64;
    char *text = s_alloc(size);
    for (int n = KILN_WF_MAX_JOBS; n <= KILN_WF_MAX_JOBS + 1; n++) {
        size_t len = (size_t)sprintf(text, "jobs:\n");
        for (int i = 0; i < n; i++)
            len += (size_t)sprintf(text + len, "  j%d: {runs-on: l, steps: [{run: x}]}\n", i);
        s_parse(&r, text, len);
        if (n == KILN_WF_MAX_JOBS) {
            assert_int_equal(r.rc, 0);
            assert_int_equal(r.wf->n_jobs, KILN_WF_MAX_JOBS);
        } else {
            s_expect_error(&r, 1, 1, "the workflow has 1001 jobs; the limit is 1000");
        }
        s_done(&r);
    }
    for (int n = KILN_WF_MAX_STEPS; n <= KILN_WF_MAX_STEPS + 1; n++) {
        size_t len = (size_t)sprintf(text, "jobs:\n  a:\n    runs-on: l\n    steps:\n");
        for (int i = 0; i < n; i++)
            len += (size_t)sprintf(text + len, "      - run: x\n");
        s_parse(&r, text, len);
        if (n == KILN_WF_MAX_STEPS) {
            assert_int_equal(r.rc, 0);
            assert_int_equal(r.wf->jobs[0].n_steps, KILN_WF_MAX_STEPS);
        } else {
            s_expect_error(&r, 4, 5, "job 'a' has 1001 steps; the limit is 1000");
        }
        s_done(&r);
    }
    free(text);
}

static void test_multiple_errors(void **state)
{
    (void)state;
    result_t r;
    s_load(&r, "many_errors.yml");
    assert_int_equal(r.rc, KILN_EINVAL);
    assert_null(r.wf);
    struct {
        kiln_diag_severity_t sev;
        int line;
        const char *part;
    } want[] = {
        {KILN_DIAG_WARNING, 2, "unknown key 'colour' at top level"},
        {KILN_DIAG_ERROR, 6, "'timeout-minutes' of job 'a' must be a number of minutes"},
        {KILN_DIAG_ERROR, 9, "unsupported shell 'fish'"},
        {KILN_DIAG_ERROR, 10, "job 'b' has no runs-on"},
        {KILN_DIAG_ERROR, 11, "job 'b' needs unknown job 'nope'"},
        {KILN_DIAG_ERROR, 13, "step 'nothing' of job 'b' has neither 'run' nor 'uses'"},
        {KILN_DIAG_ERROR, 16, "'steps' of job 'c' is empty"},
    };
    size_t n = sizeof want / sizeof want[0];
    assert_int_equal(r.diags.n, n);
    assert_int_equal(r.diags.n_errors, n - 1);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(r.diags.items[i].severity, want[i].sev);
        assert_int_equal(r.diags.items[i].line, want[i].line);
        if (!strstr(r.diags.items[i].message, want[i].part))
            fail_msg("diag %zu: '%s' lacks '%s'", i, r.diags.items[i].message, want[i].part);
    }
    /* The first error is kept, not the last. */
    char prefix[600];
    snprintf(prefix, sizeof prefix, "%s:6:5: 'timeout-minutes' of job 'a'", r.path);
    assert_memory_equal(kiln_error_last(), prefix, strlen(prefix));
    s_done(&r);
}

static void test_empty_and_non_mapping(void **state)
{
    (void)state;
    result_t r;
    const char *empty[] = {"", "# only a comment\n", "---\n", "~\n"};
    const int empty_line[] = {1, 1, 2}; /* "---" then an empty node on line 2 */
    for (size_t i = 0; i < 3; i++) {
        s_parse_str(&r, empty[i]);
        s_expect_error(&r, empty_line[i], 1, "the workflow is empty");
        s_done(&r);
    }
    s_parse_str(&r, empty[3]); /* a null is a scalar, not "nothing" */
    s_expect_error(&r, 1, 1, "a workflow must be a mapping at the top level, not a scalar");
    s_done(&r);
    s_parse_str(&r, "\n- a\n- b\n");
    s_expect_error(&r, 2, 1, "a workflow must be a mapping at the top level, not a list");
    s_done(&r);
    s_parse_str(&r, "jobs:\n  a:\n    runs-on: l\n    steps: [{run: x}]\n---\nname: two\n");
    s_expect_error_like(&r, 5, "one YAML document");
    s_done(&r);
    /* NULL text with length 0 is an empty document, not a crash. */
    s_parse(&r, NULL, 0);
    s_expect_error_like(&r, 1, "the workflow is empty");
    s_done(&r);
}

static void test_load_missing(void **state)
{
    (void)state;
    result_t r;
    s_load(&r, "does-not-exist.yml");
    assert_int_equal(r.rc, KILN_ENOTFOUND);
    assert_null(r.wf);
    assert_int_equal(r.diags.n_errors, 1);
    assert_non_null(strstr(kiln_error_last(), r.path));
    assert_non_null(strstr(kiln_error_last(), "No such file"));
    s_done(&r);
}

static void test_diags_format(void **state)
{
    (void)state;
    kiln_diags_t diags;
    kiln_diags_init(&diags, "w.yml");
    char *text = kiln_diags_format(&diags);
    assert_non_null(text);
    assert_string_equal(text, "");
    free(text);
    kiln_diags_add(&diags, KILN_DIAG_ERROR, 3, 7, "bad %s", "thing");
    kiln_diags_add(&diags, KILN_DIAG_WARNING, 9, 1, "odd");
    kiln_diags_add(&diags, KILN_DIAG_ERROR, 0, 0, "no place");
    assert_int_equal(diags.n, 3);
    assert_int_equal(diags.n_errors, 2);
    text = kiln_diags_format(&diags);
    assert_non_null(text);
    assert_string_equal(text, "w.yml:3:7: error: bad thing\n"
                              "w.yml:9:1: warning: odd\n"
                              "w.yml: error: no place\n");
    free(text);
    kiln_diags_free(&diags);
}

static void test_diags_bounded(void **state)
{
    (void)state;
    kiln_diags_t diags;
    kiln_diags_init(&diags, "w.yml");
    for (int i = 0; i < 5000; i++)
        kiln_diags_add(&diags, KILN_DIAG_ERROR, i + 1, 1, "e%d", i);
    assert_int_equal(diags.n_errors, 5000); /* every error counted */
    assert_true(diags.n <= 1001);            /* but the list stops growing */
    assert_non_null(strstr(diags.items[diags.n - 1].message, "too many problems"));
    kiln_diags_free(&diags);
}

static void test_parse_diags_bounded(void **state)
{
    (void)state;
    result_t r;
    /* 3000 unknown keys: the list stops at its cap, in file order, with the
     * note about the rest at the end; the workflow itself is still fine. */
    size_t size = 3000 * 16 + 128, len = 0;
    char *text = s_alloc(size);
    len += (size_t)sprintf(text, "jobs: {a: {runs-on: l, steps: [{run: x}]}}\n");
    for (int i = 0; i < 3000; i++)
        len += (size_t)sprintf(text + len, "k%d: v\n", i);
    s_parse(&r, text, len);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.diags.n, 1001);
    assert_int_equal(r.diags.items[0].line, 2);
    assert_int_equal(r.diags.items[999].line, 1001);
    assert_int_equal(r.diags.items[1000].line, 0);
    assert_string_equal(r.diags.items[1000].message,
                        "too many problems; only the first 1000 are listed");
    s_done(&r);
    free(text);
}

static void test_env_rules(void **state)
{
    (void)state;
    result_t r;
    s_parse_str(&r, "env:\n  A: 1\n  A: 2\njobs:\n  a:\n    runs-on: l\n    steps: [{run: x}]\n");
    s_expect_error(&r, 3, 3, "duplicate key 'A'");
    s_done(&r);
    /* User text in a message cannot break it over several lines. */
    s_parse_str(&r, "\"a\\nb\\tc\": 1\njobs: {a: {runs-on: l, steps: [{run: x}]}}\n");
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.diags.n, 1);
    assert_string_equal(r.diags.items[0].message, "unknown key 'a?b?c' at top level");
    s_done(&r);
    s_parse_str(&r, "env:\n  \"A=B\": 1\njobs:\n  a:\n    runs-on: l\n    steps: [{run: x}]\n");
    s_expect_error(&r, 2, 3,
                   "invalid environment variable name 'A=B' in env of the workflow");
    s_done(&r);
}

static void test_step_ids(void **state)
{
    (void)state;
    result_t r;
    s_parse_str(&r, "jobs:\n  a:\n    runs-on: l\n    steps:\n"
                    "      - {id: s1, run: x}\n      - {id: s1, run: y}\n");
    s_expect_error(&r, 6, 9, "duplicate step id 's1' in job 'a'");
    s_done(&r);
    s_parse_str(&r, "jobs:\n  a:\n    runs-on: l\n    steps:\n      - {id: 'has space', run: x}\n");
    s_expect_error_like(&r, 5, "invalid step id 'has space' in job 'a'");
    s_done(&r);
}

static void test_reusable_workflow_job(void **state)
{
    (void)state;
    result_t r;
    s_parse_str(&r, "jobs:\n  call:\n    uses: org/repo/.github/workflows/x.yml@main\n"
                    "    with: {a: 1}\n    secrets: inherit\n");
    s_expect_error(&r, 2, 3,
                   "job 'call' uses 'org/repo/.github/workflows/x.yml@main': reusable "
                   "workflows are not supported yet");
    s_done(&r);
}

/* The kiln: job extension: retry budgets, bounded, with errors that say
 * where. */
static void test_kiln_extension(void **state)
{
    (void)state;
    result_t r;
    s_parse_str(&r, "on: push\n"
                    "jobs:\n"
                    "  build:\n"
                    "    runs-on: self-hosted\n"
                    "    kiln:\n"
                    "      max-attempts: 5\n"
                    "      retry: 2\n"
                    "    steps:\n"
                    "      - run: make\n"
                    "  plain:\n"
                    "    runs-on: self-hosted\n"
                    "    steps:\n"
                    "      - run: true\n");
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.diags.n, 0);
    assert_int_equal(r.wf->jobs[0].max_attempts, 5);
    assert_int_equal(r.wf->jobs[0].retry, 2);
    assert_int_equal(r.wf->jobs[1].max_attempts, 0); /* the farm's default */
    assert_int_equal(r.wf->jobs[1].retry, 0);
    s_done(&r);
    s_parse_str(&r, "on: push\n"
                    "jobs:\n"
                    "  build:\n"
                    "    runs-on: self-hosted\n"
                    "    kiln:\n"
                    "      retry: 99\n"
                    "    steps:\n"
                    "      - run: make\n");
    s_expect_error(&r, 6, 7,
                   "'retry' of 'kiln' of job 'build' must be a whole number from 0 to 20");
    s_done(&r);
    s_parse_str(&r, "on: push\n"
                    "jobs:\n"
                    "  build:\n"
                    "    runs-on: self-hosted\n"
                    "    kiln:\n"
                    "      max-attempts: 0\n"
                    "      retries: 1\n"
                    "    steps:\n"
                    "      - run: make\n");
    assert_int_equal(r.rc, KILN_EINVAL);
    assert_int_equal(r.diags.n_errors, 1);
    assert_int_equal(r.diags.items[0].line, 6);
    assert_int_equal(s_count(&r.diags, KILN_DIAG_WARNING), 1);
    assert_int_equal(r.diags.items[1].line, 7);
    assert_non_null(strstr(r.diags.items[1].message, "unknown key 'retries'"));
    s_done(&r);
}

/* Expressions are checked before anything runs: every bad one is
 * reported, at the line of its job or step, naming the field and column. */
static void test_expression_errors(void **state)
{
    (void)state;
    result_t r;
    s_parse_str(&r, "on: push\n"                                   /* 1 */
                    "jobs:\n"                                       /* 2 */
                    "  build:\n"                                    /* 3 */
                    "    runs-on: self-hosted\n"                    /* 4 */
                    "    if: github.ref == 'main' &&\n"            /* 5 */
                    "    steps:\n"                                  /* 6 */
                    "      - run: echo ${{ contain('a', 'b') }}\n"  /* 7 */
                    "      - name: fine\n"                          /* 8 */
                    "        run: echo ${{ matrix.os }}\n"          /* 9 */
                    "      - run: echo ${{ foo.bar }}\n"            /* 10 */
                    "        if: ${{ always() }}\n");               /* 11 */
    assert_int_equal(r.rc, KILN_EINVAL);
    assert_int_equal(r.diags.n_errors, 3);
    assert_int_equal(r.diags.items[0].line, 3);
    assert_non_null(strstr(r.diags.items[0].message, "job 'build': if: expression error"));
    assert_int_equal(r.diags.items[1].line, 7);
    assert_non_null(strstr(r.diags.items[1].message, "run: expression error"));
    assert_non_null(strstr(r.diags.items[1].message, "contain"));
    assert_int_equal(r.diags.items[2].line, 10);
    assert_non_null(strstr(r.diags.items[2].message, "foo"));
    s_done(&r);
}

/* A matrix that cannot expand is refused with its line. */
static void test_matrix_errors(void **state)
{
    (void)state;
    result_t r;
    s_parse_str(&r, "on: push\n"
                    "jobs:\n"
                    "  build:\n"
                    "    runs-on: self-hosted\n"
                    "    strategy:\n"
                    "      matrix:\n"
                    "        os: []\n"
                    "    steps:\n"
                    "      - run: true\n"
                    "  big:\n"
                    "    runs-on: self-hosted\n"
                    "    strategy:\n"
                    "      matrix:\n"
                    "        a: [1,2,3,4,5,6,7,8,9,10]\n"
                    "        b: [1,2,3,4,5,6,7,8,9,10]\n"
                    "        c: [1,2,3]\n"
                    "    steps:\n"
                    "      - run: true\n");
    assert_int_equal(r.rc, KILN_EINVAL);
    assert_int_equal(r.diags.n_errors, 2);
    assert_int_equal(r.diags.items[0].line, 6);
    assert_non_null(strstr(r.diags.items[0].message, "no combinations"));
    assert_int_equal(r.diags.items[1].line, 13);
    assert_non_null(strstr(r.diags.items[1].message, "300 combinations; the limit is 256"));
    s_done(&r);
}

/* Local composite actions: expanded in place; every problem reported at the
 * uses: step, quoting the action file's own line. */
static void test_composite_actions(void **state)
{
    (void)state;
    const char *wf = "on: push\n"                                  /* 1 */
                     "jobs:\n"                                      /* 2 */
                     "  build:\n"                                   /* 3 */
                     "    runs-on: self-hosted\n"                   /* 4 */
                     "    steps:\n"                                 /* 5 */
                     "      - uses: ./ci/setup\n"                   /* 6 */
                     "        id: setup\n"                          /* 7 */
                     "        with: {version: '12'}\n"              /* 8 */
                     "      - run: make\n";                         /* 9 */
    json_t *actions = json_pack(
        "{s:s}", "ci/setup",
        "name: setup\ninputs:\n  version: {required: true}\n  mode: {default: fast}\n"
        "outputs:\n  path: {value: '${{ steps.p.outputs.path }}'}\n"
        "runs:\n  using: composite\n  steps:\n"
        "    - id: p\n      run: echo path=/opt >> $GITHUB_OUTPUT\n"
        "    - run: echo ${{ inputs.version }}\n      shell: sh\n");
    kiln_workflow_t *w = NULL;
    kiln_diags_t d;
    kiln_diags_init(&d, "ci.yml");
    assert_int_equal(kiln_pipeline_parse_with(&w, "ci.yml", wf, strlen(wf), actions, &d), 0);
    assert_int_equal(w->jobs[0].n_steps, 3); /* two from the action, then make */
    assert_string_equal(w->jobs[0].steps[0].shell, "bash"); /* composite run default */
    assert_string_equal(w->jobs[0].steps[2].run, "make");
    json_t *level0 = json_array_get(w->jobs[0].steps[1].action_inputs, 0);
    assert_string_equal(json_string_value(json_object_get(level0, "version")), "12");
    assert_string_equal(json_string_value(json_object_get(level0, "mode")), "fast");
    json_t *end = json_array_get(w->jobs[0].steps[1].composite_ends, 0);
    assert_string_equal(json_string_value(json_object_get(end, "id")), "setup");
    assert_null(w->jobs[0].steps[0].composite_ends);
    kiln_pipeline_destroy(&w);
    kiln_diags_free(&d);

    /* Missing file, wrong kind, missing required input, a marketplace action. */
    const char *bad = "on: push\n"
                      "jobs:\n"
                      "  build:\n"
                      "    runs-on: self-hosted\n"
                      "    steps:\n"
                      "      - uses: ./ci/nowhere\n"     /* 6 */
                      "      - uses: ./ci/node\n"        /* 7 */
                      "      - uses: ./ci/setup\n"       /* 8 */
                      "      - uses: actions/checkout@v4\n"; /* 9 */
    json_object_set_new(actions, "ci/node", json_string("runs:\n  using: node20\n  main: x.js\n"));
    kiln_diags_init(&d, "ci.yml");
    assert_int_equal(kiln_pipeline_parse_with(&w, "ci.yml", bad, strlen(bad), actions, &d),
                     KILN_EINVAL);
    assert_int_equal(d.n_errors, 4);
    assert_int_equal(d.items[0].line, 6);
    assert_non_null(strstr(d.items[0].message, "no action.yml"));
    assert_int_equal(d.items[1].line, 7);
    assert_non_null(strstr(d.items[1].message, "ci/node/action.yml:2:"));
    assert_non_null(strstr(d.items[1].message, "only composite actions"));
    assert_int_equal(d.items[2].line, 8);
    assert_non_null(strstr(d.items[2].message, "input 'version' is required"));
    assert_int_equal(d.items[3].line, 9);
    assert_non_null(strstr(d.items[3].message, "only local composite actions"));
    kiln_diags_free(&d);

    /* An action that uses itself stops at the depth limit. */
    json_object_set_new(actions, "ci/loop",
                        json_string("runs:\n  using: composite\n  steps:\n    - uses: ./ci/loop\n"));
    const char *loop = "on: push\njobs:\n  a:\n    runs-on: x\n    steps:\n      - uses: ./ci/loop\n";
    kiln_diags_init(&d, "ci.yml");
    assert_int_equal(kiln_pipeline_parse_with(&w, "ci.yml", loop, strlen(loop), actions, &d),
                     KILN_EINVAL);
    assert_non_null(strstr(kiln_error_last(), "nest deeper than"));
    kiln_diags_free(&d);
    json_t *uses = json_array();
    assert_int_equal(kiln_pipeline_local_uses(bad, strlen(bad), uses), 0);
    assert_int_equal(json_array_size(uses), 3); /* ./ci/nowhere, ./ci/node, ./ci/setup */
    assert_int_equal(kiln_pipeline_local_uses("steps: [{uses: ./../x}]", 23, uses), KILN_EINVAL);
    json_decref(uses);
    json_decref(actions);
}

/* A matrix computed at run time stands as one placeholder job until the
 * coordinator plans the run again with the computed matrix. */
static void test_runtime_matrix(void **state)
{
    (void)state;
    const char *wf = "on: push\n"
                     "jobs:\n"
                     "  plan:\n"
                     "    runs-on: x\n"
                     "    steps: [{run: 'true'}]\n"
                     "  build:\n"
                     "    needs: plan\n"
                     "    runs-on: x\n"
                     "    strategy:\n"
                     "      matrix: ${{ fromJSON(needs.plan.outputs.m) }}\n"
                     "    steps: [{run: 'true'}]\n"
                     "  report:\n"
                     "    needs: build\n"
                     "    runs-on: x\n"
                     "    steps: [{run: 'true'}]\n";
    kiln_workflow_t *w = NULL;
    kiln_diags_t d;
    kiln_diags_init(&d, "ci.yml");
    assert_int_equal(kiln_pipeline_parse(&w, "ci.yml", wf, strlen(wf), &d), 0);
    assert_int_equal(w->n_jobs, 3);
    assert_non_null(w->jobs[1].matrix_expr);
    assert_int_equal(w->jobs[2].n_needs, 1);
    kiln_pipeline_destroy(&w);
    kiln_diags_free(&d);
    json_t *m = json_pack("{s:{s:[s,s,s]}}", "build", "os", "a", "b", "c");
    kiln_diags_init(&d, "ci.yml");
    assert_int_equal(kiln_pipeline_parse_planned(&w, "ci.yml", wf, strlen(wf), NULL, m, &d), 0);
    assert_int_equal(w->n_jobs, 5);
    assert_string_equal(w->jobs[1].id, "build-1");
    assert_string_equal(w->jobs[3].name, "build (c)");
    assert_null(w->jobs[1].matrix_expr);
    assert_int_equal(w->jobs[4].n_needs, 3); /* report waits for every combination */
    kiln_pipeline_destroy(&w);
    kiln_diags_free(&d);
    /* A computed matrix is held to the same rules. */
    json_object_set_new(m, "build", json_pack("{s:[]}", "os"));
    kiln_diags_init(&d, "ci.yml");
    assert_int_equal(kiln_pipeline_parse_planned(&w, "ci.yml", wf, strlen(wf), NULL, m, &d),
                     KILN_EINVAL);
    assert_non_null(strstr(kiln_error_last(), "no combinations"));
    kiln_diags_free(&d);
    json_decref(m);
}

static void test_garbage_does_not_crash(void **state)
{
    (void)state;
    result_t r;
    const char *inputs[] = {
        "{", "jobs: [", "? [a]\n: b\n", "jobs:\n  ? [x]\n  : y\n", "&a *a", "!!binary x",
        "jobs: {a: {steps: [1, [2], {run: {}}], runs-on: [[]]}}",
        "jobs: {a: {needs: [{}], runs-on: l, steps: [{run: x}]}}",
        "\"\\0\": x\njobs: {}\n", "%YAML 1.1\n---\njobs:\n",
    };
    for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++) {
        s_parse_str(&r, inputs[i]);
        assert_int_equal(r.rc, KILN_EINVAL);
        assert_true(r.diags.n_errors > 0);
        assert_true(kiln_error_last()[0] != '\0');
        s_done(&r);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_model),
        cmocka_unit_test(test_kiln_extension),
        cmocka_unit_test(test_expression_errors),
        cmocka_unit_test(test_matrix_errors),
        cmocka_unit_test(test_composite_actions),
        cmocka_unit_test(test_runtime_matrix),
        cmocka_unit_test(test_topo_needs_before_file_order),
        cmocka_unit_test(test_default_name_is_base_name),
        cmocka_unit_test(test_unknown_keys_warn),
        cmocka_unit_test(test_syntax_error),
        cmocka_unit_test(test_wrong_types),
        cmocka_unit_test(test_scalar_types),
        cmocka_unit_test(test_unknown_needs),
        cmocka_unit_test(test_self_need),
        cmocka_unit_test(test_cycle),
        cmocka_unit_test(test_empty_jobs),
        cmocka_unit_test(test_step_without_run),
        cmocka_unit_test(test_uses_not_supported),
        cmocka_unit_test(test_bad_shell),
        cmocka_unit_test(test_duplicate_key),
        cmocka_unit_test(test_bad_job_id),
        cmocka_unit_test(test_id_length_limit),
        cmocka_unit_test(test_no_runs_on),
        cmocka_unit_test(test_billion_laughs),
        cmocka_unit_test(test_alias_budget_boundary),
        cmocka_unit_test(test_anchors),
        cmocka_unit_test(test_depth_limit),
        cmocka_unit_test(test_size_limit),
        cmocka_unit_test(test_scalar_limit),
        cmocka_unit_test(test_job_and_step_count_limits),
        cmocka_unit_test(test_multiple_errors),
        cmocka_unit_test(test_empty_and_non_mapping),
        cmocka_unit_test(test_load_missing),
        cmocka_unit_test(test_diags_format),
        cmocka_unit_test(test_diags_bounded),
        cmocka_unit_test(test_parse_diags_bounded),
        cmocka_unit_test(test_env_rules),
        cmocka_unit_test(test_step_ids),
        cmocka_unit_test(test_reusable_workflow_job),
        cmocka_unit_test(test_garbage_does_not_crash),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
