/* test_parse.c: unit tests for lang/parse.c (and the files it shares its
 * walk with: step.c, composite.c, call.c, graph.c, inputs.c, yaml.c, diag.c).
 *
 * Sample workflows live in $KILN_TEST_DATA/workflows (tests/data when the
 * variable is unset); the rest are written inline. Each error class is
 * checked for its message and its exact line and column, because that
 * position is what a user of `kiln lint` acts on; limits are checked at
 * their boundary (the limit passes, one more fails) so that a test fails
 * when a limit drifts. The model is the workflow as written: a matrix job is
 * one kiln_job_t, and values that may be templates are kept as JSON, so the
 * tests look at that JSON rather than at anything evaluated (plan.c and
 * rungraph.c have their own tests). Every parse also checks that no
 * diagnostic is listed twice.
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

#include <jansson.h>

#include "common/error.h"
#include "lang/diag.h"
#include "lang/parse.h"
#include "lang/workflow.h"
#include "lang/yaml.h"

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


static void s_parse_with(result_t *r, const char *text, size_t len, const kiln_loader_t *loader)
{
    memset(r, 0, sizeof *r);
    snprintf(r->path, sizeof r->path, "ci/test.yml");
    kiln_diags_init(&r->diags, r->path);
    kiln_error_clear();
    r->rc = kiln_workflow_parse(&r->wf, r->path, text, len, loader, &r->diags);
}

static void s_parse(result_t *r, const char *text, size_t len)
{
    s_parse_with(r, text, len, NULL);
}

static void s_parse_str(result_t *r, const char *text)
{
    s_parse(r, text, strlen(text));
}

/* Parses `text` with a loader over `files` (path -> text). */
static void s_parse_files(result_t *r, const char *text, const json_t *files)
{
    kiln_loader_t loader;
    kiln_loader_json(&loader, files, true);
    s_parse_with(r, text, strlen(text), &loader);
}

/* Reads a sample file and parses it under its full path (the name the
 * diagnostics use). */
static void s_load(result_t *r, const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/workflows/%s", s_data_dir(), name);
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s", path);
    char *text = s_alloc(KILN_WF_MAX_BYTES + 1);
    size_t len = fread(text, 1, KILN_WF_MAX_BYTES + 1, f);
    fclose(f);
    memset(r, 0, sizeof *r);
    snprintf(r->path, sizeof r->path, "%s", path);
    kiln_diags_init(&r->diags, r->path);
    kiln_error_clear();
    r->rc = kiln_workflow_parse(&r->wf, r->path, text, len, NULL, &r->diags);
    free(text);
}

/* No problem is listed twice (same severity, position and text). */
static void s_assert_no_duplicates(const kiln_diags_t *d)
{
    for (size_t i = 0; i < d->n; i++)
        for (size_t j = i + 1; j < d->n; j++)
            if (d->items[i].severity == d->items[j].severity &&
                d->items[i].line == d->items[j].line && d->items[i].col == d->items[j].col &&
                strcmp(d->items[i].message, d->items[j].message) == 0)
                fail_msg("diagnostic listed twice: %d:%d: %s", d->items[i].line,
                         d->items[i].col, d->items[i].message);
}

static void s_done(result_t *r)
{
    s_assert_no_duplicates(&r->diags);
    /* The model comes back exactly when there is no error. */
    if (r->rc == 0) {
        assert_non_null(r->wf);
        assert_int_equal(r->diags.n_errors, 0);
    } else {
        assert_null(r->wf);
    }
    kiln_workflow_destroy(&r->wf);
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

/* The first diagnostic of this severity whose message holds `part`. */
static const kiln_diag_t *s_find(const kiln_diags_t *d, kiln_diag_severity_t sev,
                                 const char *part)
{
    for (size_t i = 0; i < d->n; i++)
        if (d->items[i].severity == sev && strstr(d->items[i].message, part))
            return &d->items[i];
    return NULL;
}

static void s_dump(const kiln_diags_t *d)
{
    char *text = kiln_diags_format(d);
    print_message("%s", text ? text : "(no memory)\n");
    free(text);
}

static void s_assert_ok(const result_t *r)
{
    if (r->rc != 0) {
        s_dump(&r->diags);
        fail_msg("parse failed (%d): %s", r->rc, kiln_error_last());
    }
}

/* The parse failed with exactly one error, at line:col, saying `message`,
 * and kiln_error_last() repeats it with the file name. */
static void s_expect_error(const result_t *r, int line, int col, const char *message)
{
    char want[1024];
    if (r->rc != KILN_EINVAL || r->diags.n_errors != 1)
        s_dump(&r->diags);
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
    if (r->rc != KILN_EINVAL || r->diags.n_errors != 1)
        s_dump(&r->diags);
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

/* The parse succeeded with exactly one diagnostic, a warning at `line`
 * holding `part`. */
static void s_expect_warning_like(const result_t *r, int line, const char *part)
{
    s_assert_ok(r);
    if (r->diags.n != 1)
        s_dump(&r->diags);
    assert_int_equal(r->diags.n, 1);
    assert_int_equal(r->diags.items[0].severity, KILN_DIAG_WARNING);
    assert_int_equal(r->diags.items[0].line, line);
    if (!strstr(r->diags.items[0].message, part))
        fail_msg("warning '%s' lacks '%s'", r->diags.items[0].message, part);
}

static void s_assert_env(const kiln_env_t *env, size_t i, const char *key, const char *value)
{
    assert_true(i < env->n);
    assert_string_equal(env->items[i].key, key);
    assert_string_equal(env->items[i].value, value);
}

/* A model value compared as compact JSON (keys in their order). */
static void s_assert_json(const json_t *v, const char *want)
{
    assert_non_null(v);
    char *got = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER);
    assert_non_null(got);
    if (strcmp(got, want) != 0) {
        print_message("got  %s\nwant %s\n", got, want);
        free(got);
        fail();
    }
    free(got);
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

/* ------------------------------------------------------------ the model */

static void test_full_model(void **state)
{
    (void)state;
    result_t r;
    s_load(&r, "full.yml");
    s_assert_ok(&r);
    /* run-name and concurrency are acted on; permissions is not (yet). */
    assert_int_equal(r.diags.n, 1);
    assert_int_equal(r.diags.items[0].severity, KILN_DIAG_WARNING);
    assert_int_equal(r.diags.items[0].line, 8);
    assert_int_equal(r.diags.items[0].col, 1);
    assert_non_null(strstr(r.diags.items[0].message, "'permissions' is accepted but not acted on"));
    kiln_workflow_t *wf = r.wf;
    assert_string_equal(wf->name, "Full example");
    assert_string_equal(wf->file, r.path);
    assert_string_equal(wf->run_name, "Build ${{ github.ref }}");
    assert_string_equal(wf->concurrency_group, "ci-${{ github.ref }}");
    assert_null(wf->cancel_in_progress);
    assert_false(wf->callable);
    assert_null(wf->inputs);

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
    assert_int_equal(kiln_workflow_find_job(wf, "lint"), 0);
    assert_int_equal(kiln_workflow_find_job(wf, "build"), 1);
    assert_int_equal(kiln_workflow_find_job(wf, "test"), 2);
    assert_int_equal(kiln_workflow_find_job(wf, "docs"), 3);
    assert_int_equal(kiln_workflow_find_job(wf, "nope"), -1);

    const kiln_job_t *lint = &wf->jobs[0];
    assert_string_equal(lint->id, "lint");
    assert_string_equal(lint->name, "Lint sources");
    s_assert_json(lint->runs_on, "\"linux\"");
    assert_true(json_is_number(lint->timeout));
    assert_true(json_number_value(lint->timeout) == 1.5);
    assert_int_equal(lint->n_needs, 0);
    assert_string_equal(lint->shell, "bash"); /* the workflow's default */
    assert_string_equal(lint->working_directory, "src");
    assert_null(lint->continue_on_error);
    assert_null(lint->if_expr);
    assert_null(lint->matrix);
    assert_null(lint->unsupported);
    assert_null(lint->callee);
    assert_false(lint->plan_late);
    assert_int_equal(lint->line, 22);
    assert_int_equal(lint->col, 3);
    assert_int_equal(lint->n_steps, 1);
    assert_string_equal(lint->steps[0].name, "Run make lint");
    assert_true(lint->steps[0].name_derived);
    assert_string_equal(lint->steps[0].run, "make lint");
    assert_null(lint->steps[0].shell);
    assert_null(lint->steps[0].timeout);

    const kiln_job_t *build = &wf->jobs[1];
    assert_null(build->name); /* no name: the planner shows the id */
    s_assert_json(build->runs_on, "[\"linux\",\"x64\",\"big\"]");
    assert_int_equal(build->n_needs, 1);
    assert_string_equal(build->needs[0], "lint");
    assert_int_equal(build->need_idx[0], 0);
    assert_int_equal(build->env.n, 2);
    s_assert_env(&build->env, 0, "CC", "clang");
    s_assert_env(&build->env, 1, "CFLAGS", "-O2");
    assert_null(build->env_expr);
    assert_true(json_number_value(build->timeout) == 30);
    assert_true(json_is_true(build->continue_on_error));
    assert_string_equal(build->if_expr, "github.event_name == 'push'");
    assert_string_equal(build->shell, "sh"); /* job defaults override */
    assert_string_equal(build->working_directory, "build");
    s_assert_json(build->outputs, "{\"artifact\":\"${{ steps.compile.outputs.path }}\"}");
    assert_true(json_is_false(build->fail_fast));
    assert_null(build->matrix); /* a strategy without a matrix */
    assert_int_equal(build->n_steps, 2);

    const kiln_step_t *compile = &build->steps[0];
    assert_string_equal(compile->name, "Compile");
    assert_false(compile->name_derived);
    assert_string_equal(compile->id, "compile");
    assert_string_equal(compile->run, "make -j4\nmake install\n");
    assert_null(compile->uses);
    assert_string_equal(compile->shell, "python");
    assert_string_equal(compile->working_directory, "out");
    assert_int_equal(compile->env.n, 1);
    s_assert_env(&compile->env, 0, "V", "1");
    assert_true(json_number_value(compile->timeout) == 10);
    assert_true(json_is_true(compile->continue_on_error)); /* "True" is a boolean too */
    assert_string_equal(compile->if_expr, "success()");
    assert_int_equal(compile->line, 46);
    assert_int_equal(compile->col, 9);

    /* Derived name: first non-blank line, trimmed, cut at 60 bytes. */
    const kiln_step_t *second = &build->steps[1];
    assert_string_equal(second->name,
                        "Run echo \"a rather long first line of a script that goes on and ...");
    assert_null(second->continue_on_error);

    const kiln_job_t *test = &wf->jobs[2];
    assert_int_equal(test->n_needs, 2);
    assert_int_equal(test->need_idx[0], 1);
    assert_int_equal(test->need_idx[1], 0);
    assert_string_equal(test->if_expr, "false"); /* a bool kept verbatim */
    assert_null(test->timeout);                  /* the planner's default: 360 */
    assert_string_equal(test->steps[0].shell, "perl {0}");
    assert_true(json_number_value(test->steps[0].timeout) == 0.5);

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
    s_assert_ok(&r);
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
    s_assert_ok(&r);
    assert_int_equal(r.diags.n, 0);
    assert_string_equal(r.wf->name, "test.yml");
    assert_null(r.wf->jobs[0].name);
    assert_null(r.wf->jobs[0].shell);
    assert_null(r.wf->jobs[0].working_directory);
    s_done(&r);
}

/* ------------------------------------------------------ diagnostics */

static void test_unknown_keys_warn(void **state)
{
    (void)state;
    result_t r;
    s_load(&r, "unknown_key.yml");
    s_assert_ok(&r);
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
    /* Keys GitHub knows but Kiln does not act on warn so, naming the job. */
    s_parse_str(&r, "jobs:\n  a:\n    runs-on: l\n    permissions: {contents: read}\n"
                    "    steps: [{run: x}]\n");
    s_expect_warning_like(&r, 4, "'permissions' of job 'a' is accepted but not acted on yet");
    s_done(&r);
    /* services: each a container spec; an image each. */
    s_parse_str(&r, "jobs:\n  a:\n    runs-on: l\n    services:\n      db: {image: pg}\n"
                    "      cache:\n        image: redis\n        ports: ['6379:6379']\n"
                    "    steps: [{run: x}]\n");
    assert_int_equal(r.rc, 0);
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(r.wf->jobs[0].services, "cache"), "image")),
                        "redis");
    s_done(&r);
    s_parse_str(&r, "jobs:\n  a:\n    runs-on: l\n    services:\n      db: {ports: ['1']}\n"
                    "    steps: [{run: x}]\n");
    s_expect_error_like(&r, 5, "the container of service 'db' of job 'a' needs an image");
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
                        "'timeout-minutes' of job 'build' must be a number or an expression");
    assert_int_equal(r.diags.items[0].line, 7);
    assert_int_equal(r.diags.items[0].col, 5);
    assert_string_equal(r.diags.items[1].message,
                        "'continue-on-error' of job 'build' must be a boolean (true or false) "
                        "or an expression");
    assert_int_equal(r.diags.items[1].line, 8);
    assert_string_equal(r.diags.items[2].message,
                        "'env' of job 'build' must be a mapping or an expression");
    assert_int_equal(r.diags.items[2].line, 9);
    char want[1024];
    snprintf(want, sizeof want,
             "%s:7:5: 'timeout-minutes' of job 'build' must be a number or an expression",
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
    s_expect_error(&r, 4, 5, "'timeout-minutes' of job 'a' must be a number or an expression");
    s_done(&r);
    /* Zero and negative timeouts are refused. */
    s_parse_str(&r, "jobs:\n  a:\n    runs-on: l\n    steps:\n      - run: x\n"
                    "        timeout-minutes: 0\n");
    s_expect_error_like(&r, 6, "must be a number of minutes greater than 0");
    s_done(&r);
    s_parse_str(&r, "jobs:\n  a:\n    runs-on: l\n    timeout-minutes: -3\n"
                    "    steps: [{run: x}]\n");
    s_expect_error_like(&r, 4, "must be a number of minutes greater than 0 and at most a year");
    s_done(&r);
    /* A quoted "true" is not a boolean. */
    s_parse_str(&r, "jobs:\n  a:\n    runs-on: l\n    continue-on-error: 'true'\n"
                    "    steps: [{run: x}]\n");
    s_expect_error(&r, 4, 5,
                   "'continue-on-error' of job 'a' must be a boolean (true or false) or an "
                   "expression");
    s_done(&r);
    /* FALSE and hex/inf are handled as the YAML core schema says. */
    s_parse_str(&r, "jobs:\n  a:\n    runs-on: l\n    continue-on-error: FALSE\n"
                    "    timeout-minutes: .inf\n    steps: [{run: x}]\n");
    s_expect_error(&r, 5, 5, "'timeout-minutes' of job 'a' must be a number or an expression");
    s_done(&r);
    /* env values must be scalars. */
    s_parse_str(&r, "env:\n  A: [1]\njobs:\n  a:\n    runs-on: l\n    steps: [{run: x}]\n");
    s_expect_error(&r, 2, 3, "env 'A' of the workflow must be a string, not a list");
    s_done(&r);
    /* max-parallel is a whole number from 1 to 256. */
    s_parse_str(&r, "jobs:\n  a:\n    runs-on: l\n    strategy:\n      max-parallel: 0\n"
                    "    steps: [{run: x}]\n");
    s_expect_error(&r, 5, 7,
                   "'max-parallel' of job 'a' must be a whole number from 1 to 256, or an "
                   "expression");
    s_done(&r);
}

static void test_unknown_needs(void **state)
{
    (void)state;
    result_t r;
    s_load(&r, "unknown_needs.yml");
    s_expect_error(&r, 10, 9, "job 'd' needs unknown job 'x'");
    s_done(&r);
    /* A need listed twice is a warning, not an error. */
    s_parse_str(&r, "jobs:\n  a: {runs-on: l, steps: [{run: x}]}\n"
                    "  b: {runs-on: l, needs: [a, a], steps: [{run: x}]}\n");
    s_expect_warning_like(&r, 3, "job 'b' lists 'a' more than once in needs");
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

static void test_remote_action_not_supported(void **state)
{
    (void)state;
    result_t r;
    /* Without action sources (the CLI's check) it is left for the farm. */
    s_parse_str(&r, "jobs:\n  build:\n    runs-on: linux\n    steps:\n"
                    "      - uses: actions/setup-node@v4\n");
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.diags.n, 0);
    assert_string_equal(r.wf->jobs[0].steps[0].uses, "actions/setup-node@v4");
    s_done(&r);
    /* With them, one they did not resolve is refused with their reason. */
    json_t *files = json_pack("{s:{s:s}}", "uses:actions/setup-node@v4", "error",
                              "not found in the farm's action sources (tried: x)");
    static const char *const cases[][2] = {
        {"actions/setup-node@v4", "uses 'actions/setup-node@v4': not found in the farm's action "
                                  "sources (tried: x)"},
        {"other/one@v1", "uses 'other/one@v1': the farm did not resolve it"},
        {"setup-node", "which names no action"},
        {"o/r/../x@v1", "which names no action"},
        {"o/r@", "which names no action"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char wf[256];
        snprintf(wf, sizeof wf, "jobs:\n  build:\n    runs-on: linux\n    steps:\n"
                                "      - uses: %s\n", cases[i][0]);
        s_parse_files(&r, wf, files);
        s_expect_error_like(&r, 5, cases[i][1]);
        s_done(&r);
    }
    /* An image run as a step: a Docker action whose with.entrypoint and
     * with.args are the runner's, not inputs. */
    s_parse_str(&r, "jobs:\n  build:\n    runs-on: linux\n    steps:\n"
                    "      - uses: docker://alpine:3\n        with: {entrypoint: /bin/sh, args: -c x, "
                    "k: v}\n");
    assert_int_equal(r.rc, 0);
    const kiln_step_t *ds = &r.wf->jobs[0].steps[0];
    assert_string_equal(ds->builtin, "docker");
    assert_string_equal(json_string_value(json_object_get(ds->js_action, "image")),
                        "docker://alpine:3");
    assert_string_equal(json_string_value(json_object_get(ds->js_action, "script")), "/bin/sh");
    assert_string_equal(json_string_value(json_object_get(ds->js_action, "args_line")), "-c x");
    assert_null(json_object_get(ds->with, "args"));
    assert_string_equal(json_string_value(json_object_get(ds->with, "k")), "v");
    s_done(&r);
    json_decref(files);
    /* v1 put the repository elsewhere: refused, saying which to use. */
    s_parse_str(&r, "jobs:\n  build:\n    runs-on: linux\n    steps:\n"
                    "      - uses: actions/checkout@v1\n");
    s_expect_error_like(&r, 5, "use actions/checkout@v4");
    s_done(&r);
}

/* A remote composite action the farm resolved: a download step first,
 * then its steps, whose action_path names the commit's files. */
static void test_remote_composite(void **state)
{
    (void)state;
    result_t r;
    const char *sha = "0123456789abcdef0123456789abcdef01234567";
    json_t *files = json_pack(
        "{s:{s:s, s:s, s:s, s:s}, s:{s:s, s:s, s:s, s:s}}", "uses:acme/greet/sub@v1", "text",
        "inputs: {who: {default: w}}\nruns:\n  using: composite\n  steps:\n"
        "    - run: echo ${{ inputs.who }}\n      shell: bash\n    - uses: acme/js@v2\n",
        "url", "git://h/acme/greet", "sha", sha, "file", "sub/action.yml", "uses:acme/js@v2",
        "text", "runs: {using: node10, main: x.js}\n", "url", "git://h/acme/js", "sha", sha,
        "file", "action.yml");
    s_parse_files(&r, "jobs:\n  a:\n    runs-on: l\n    steps:\n      - uses: acme/greet/sub@v1\n",
                  files);
    s_expect_error_like(&r, 5, "uses 'acme/js@v2': acme/js@0123456789ab:action.yml:1:15: "
                               "runs.using: node10 is no Node.js version Kiln knows");
    s_done(&r);
    json_object_set_new(json_object_get(files, "uses:acme/js@v2"), "text",
                        json_string("runs:\n  using: composite\n  steps: [{run: js, shell: sh}]\n"));
    s_parse_files(&r, "jobs:\n  a:\n    runs-on: l\n    steps:\n      - uses: acme/greet/sub@v1\n",
                  files);
    assert_int_equal(r.rc, 0);
    const kiln_job_t *job = &r.wf->jobs[0];
    assert_int_equal(job->n_steps, 4);
    assert_string_equal(job->steps[0].builtin, "action");
    assert_string_equal(json_string_value(json_object_get(job->steps[0].with, "sha")), sha);
    assert_string_equal(json_string_value(json_object_get(job->steps[0].with, "dir")),
                        "acme/greet/0123456789abcdef0123456789abcdef01234567");
    assert_non_null(strstr(job->steps[0].name, "Download action repository 'acme/greet/sub@v1'"));
    assert_string_equal(job->steps[1].action_path,
                        "@actions/acme/greet/0123456789abcdef0123456789abcdef01234567/sub");
    assert_string_equal(job->steps[2].builtin, "action");
    assert_string_equal(job->steps[3].action_path,
                        "@actions/acme/js/0123456789abcdef0123456789abcdef01234567");
    /* Each action begins at its first step (its download), with its level. */
    assert_int_equal(json_array_size(job->steps[0].composite_begins), 1);
    assert_int_equal(json_integer_value(json_object_get(
                         json_array_get(job->steps[0].composite_begins, 0), "level")), 0);
    assert_null(job->steps[1].composite_begins);
    assert_int_equal(json_integer_value(json_object_get(
                         json_array_get(job->steps[2].composite_begins, 0), "level")), 1);
    s_done(&r);
    /* The uses: step's if: and env: go with it. */
    s_parse_files(&r, "jobs:\n  a:\n    runs-on: l\n    steps:\n      - uses: acme/greet/sub@v1\n"
                      "        if: failure()\n        env: {A: b}\n",
                  files);
    assert_int_equal(r.rc, 0);
    job = &r.wf->jobs[0];
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(job->steps[0].composite_begins, 0), "if")),
                        "failure()");
    assert_int_equal(job->steps[3].env.n, 1);
    assert_string_equal(job->steps[3].env.items[0].key, "A");
    s_done(&r);
    json_decref(files);
}

/* container: an image, or {image, env, options, volumes, ports,
 * credentials}; an image is required, other keys are warned of. */
static void test_container(void **state)
{
    (void)state;
    result_t r;
    s_parse_str(&r, "jobs:\n  a:\n    runs-on: l\n    container: debian:${{ matrix.v }}\n"
                    "    strategy: {matrix: {v: ['11', '12']}}\n    steps: [{run: x}]\n");
    assert_int_equal(r.rc, 0);
    assert_string_equal(json_string_value(json_object_get(r.wf->jobs[0].container, "image")),
                        "debian:${{ matrix.v }}");
    s_done(&r);
    s_parse_str(&r, "jobs:\n  a:\n    runs-on: l\n    container:\n      image: node:20\n"
                    "      env: {A: b}\n      options: --cpus 1\n      volumes: [cache:/c]\n"
                    "      ports: ['80']\n      credentials: {username: u, password: p}\n"
                    "      shm: 1\n    steps: [{run: x}]\n");
    assert_int_equal(r.rc, 0);
    json_t *c = r.wf->jobs[0].container;
    assert_string_equal(json_string_value(json_object_get(json_object_get(c, "env"), "A")), "b");
    assert_string_equal(json_string_value(json_object_get(c, "options")), "--cpus 1");
    assert_string_equal(json_string_value(json_array_get(json_object_get(c, "volumes"), 0)),
                        "cache:/c");
    s_expect_warning_like(&r, 11, "unknown key 'shm' in the container");
    s_done(&r);
    s_parse_str(&r, "jobs:\n  a:\n    runs-on: l\n    container:\n      env: {A: b}\n"
                    "    steps: [{run: x}]\n");
    s_expect_error_like(&r, 4, "the container of job 'a' needs an image");
    s_done(&r);
    s_parse_str(&r, "jobs:\n  a:\n    runs-on: l\n    container:\n      image: x\n"
                    "      volumes: /a:/b\n    steps: [{run: x}]\n");
    s_expect_error_like(&r, 6, "a list of strings");
    s_done(&r);
}

/* uses: split: OWNER/REPO[/PATH]@REF, and a full URL (its last two
 * segments the owner and name, the rest the source it names). */
static void test_uses_remote(void **state)
{
    (void)state;
    kiln_uses_ref_t r;
    assert_int_equal(kiln_uses_remote("acme/greet/sub/dir@v1", &r), 0);
    assert_string_equal(r.owner, "acme");
    assert_string_equal(r.repo, "greet");
    assert_string_equal(r.path, "sub/dir");
    assert_string_equal(r.ref, "v1");
    assert_string_equal(r.base, "");
    assert_int_equal(kiln_uses_remote("https://git.example.com/forge/acme/tool.git@v2.1", &r), 0);
    assert_string_equal(r.base, "https://git.example.com/forge");
    assert_string_equal(r.owner, "acme");
    assert_string_equal(r.repo, "tool");
    assert_string_equal(r.path, "");
    assert_string_equal(r.ref, "v2.1");
    assert_int_equal(kiln_uses_remote("ssh://git@host:22/acme/tool@main", &r), 0);
    assert_string_equal(r.base, "ssh://git@host:22");
    const char *bad[] = {"https://host/tool@v1", "https://acme/tool@v1", "ftp://h/a/b@v1",
                         "https:///a/b@v1", "https://h/a/../b@v1", "acme@v1", "acme/x@",
                         "https://h/a/b@v:1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (kiln_uses_remote(bad[i], &r) == 0)
            fail_msg("'%s' was taken as an action", bad[i]);
}

/* A JavaScript action is one step that runs its main script with its
 * inputs (given, else defaults); its pre runs before the job's first
 * step, its post after the last, in reverse order with actions/cache's
 * saves, all three naming the main step's index as their instance. */
static void test_js_action(void **state)
{
    (void)state;
    result_t r;
    json_t *files = json_pack(
        "{s:s, s:s}", "ci/js",
        "inputs:\n  who: {default: world}\n  need: {required: true}\n"
        "runs:\n  using: node20\n  main: dist/main.js\n  pre: dist/pre.js\n"
        "  post: dist/post.js\n  post-if: success()\n",
        "ci/plain", "runs: {using: node16, main: index.js}\n");
    s_parse_files(&r, "jobs:\n  a:\n    runs-on: l\n    steps:\n      - run: echo one\n"
                      "      - id: j\n        uses: ./ci/js\n        with: {need: yes}\n"
                      "        env: {E: f}\n"
                      "      - uses: actions/cache@v4\n        with: {path: p, key: k}\n"
                      "      - uses: ./ci/plain\n",
                  files);
    if (r.rc != 0)
        s_dump(&r.diags);
    assert_int_equal(r.rc, 0);
    const kiln_job_t *job = &r.wf->jobs[0];
    assert_int_equal(job->n_steps, 7);
    const kiln_step_t *pre = &job->steps[0], *main = &job->steps[2], *post = &job->steps[6];
    assert_string_equal(pre->builtin, "node");
    assert_string_equal(json_string_value(json_object_get(pre->js_action, "phase")), "pre");
    assert_string_equal(json_string_value(json_object_get(pre->js_action, "script")), "dist/pre.js");
    assert_string_equal(pre->if_expr, "always()");
    assert_string_equal(job->steps[1].run, "echo one");
    assert_string_equal(main->id, "j");
    assert_string_equal(main->builtin, "node");
    assert_string_equal(main->action_path, "ci/js");
    assert_string_equal(json_string_value(json_object_get(main->js_action, "script")), "dist/main.js");
    assert_string_equal(json_string_value(json_object_get(main->js_action, "using")), "node20");
    assert_string_equal(json_string_value(json_object_get(main->with, "who")), "world");
    assert_string_equal(json_string_value(json_object_get(main->with, "need")), "yes");
    assert_int_equal(main->env.n, 1);
    assert_string_equal(job->steps[3].builtin, "cache");
    assert_string_equal(job->steps[4].builtin, "node");
    assert_string_equal(json_string_value(json_object_get(job->steps[4].js_action, "state")), "4");
    /* Posts: the last step's first (the cache's), then the action's. */
    assert_string_equal(job->steps[5].builtin, "cache-post");
    assert_string_equal(json_string_value(json_object_get(job->steps[5].with, "state")), "3");
    assert_string_equal(post->builtin, "node");
    assert_string_equal(json_string_value(json_object_get(post->js_action, "phase")), "post");
    assert_string_equal(json_string_value(json_object_get(post->js_action, "script")), "dist/post.js");
    assert_string_equal(post->if_expr, "success()");
    assert_null(post->id);
    for (size_t i = 0; i < 7; i += 2)
        if (i != 4)
            assert_string_equal(
                json_string_value(json_object_get(job->steps[i].js_action, "state")), "2");
    assert_string_equal(json_string_value(json_object_get(post->with, "need")), "yes");
    s_done(&r);
    /* A required input not given; runs.main missing; a script outside. */
    json_object_set_new(files, "ci/nomain", json_string("runs:\n  using: node20\n  post: p.js\n"));
    s_parse_files(&r, "jobs:\n  a:\n    runs-on: l\n    steps:\n      - uses: ./ci/js\n", files);
    s_expect_error_like(&r, 5, "input 'need' is required");
    s_done(&r);
    s_parse_files(&r, "jobs:\n  a:\n    runs-on: l\n    steps:\n      - uses: ./ci/nomain\n",
                  files);
    s_expect_error_like(&r, 5, "ci/nomain/action.yml:2:3: a JavaScript action needs runs.main");
    s_done(&r);
    json_decref(files);
}

/* actions/cache is built in; each cache step gets a post step at the
 * job's end, the last one's first; restore and save have none. */
static void test_builtin_cache(void **state)
{
    (void)state;
    result_t r;
    s_parse_str(&r, "jobs:\n  a:\n    runs-on: l\n    steps:\n"
                    "      - uses: actions/cache@v4\n        with: {path: a, key: k1}\n"
                    "      - uses: actions/cache/restore@v4\n        with: {path: b, key: k2}\n"
                    "      - name: second\n        uses: actions/cache@v3\n"
                    "        with: {path: c, key: k3, depth: 1}\n"
                    "      - run: echo\n");
    assert_int_equal(r.rc, 0);
    const kiln_job_t *job = &r.wf->jobs[0];
    assert_int_equal(job->n_steps, 6);
    assert_string_equal(job->steps[0].builtin, "cache");
    assert_string_equal(job->steps[1].builtin, "cache-restore");
    assert_string_equal(job->steps[4].builtin, "cache-post");
    assert_string_equal(job->steps[4].name, "Post second");
    assert_string_equal(json_string_value(json_object_get(job->steps[4].with, "state")), "2");
    assert_string_equal(job->steps[4].if_expr, "success()");
    assert_string_equal(job->steps[5].builtin, "cache-post");
    assert_string_equal(json_string_value(json_object_get(job->steps[5].with, "state")), "0");
    s_expect_warning_like(&r, 9, "has no input 'depth'");
    s_done(&r);
    s_parse_str(&r, "jobs:\n  a:\n    runs-on: l\n    steps:\n      - uses: actions/cache@v1\n");
    s_expect_error_like(&r, 5, "use actions/cache@v4");
    s_done(&r);
}

/* upload-artifact and download-artifact are built in (v2 and later); their
 * with: is checked against the actions' inputs, and neither adds a post
 * step. */
static void test_builtin_artifacts(void **state)
{
    (void)state;
    result_t r;
    s_parse_str(&r, "jobs:\n  a:\n    runs-on: l\n    steps:\n"
                    "      - uses: actions/upload-artifact@v4\n"
                    "        with: {name: d, path: dist, retention-days: 3, include-hidden-files: true}\n"
                    "      - uses: actions/download-artifact@v3\n"
                    "        with: {pattern: 'x-*', merge-multiple: true, zip: 1}\n");
    assert_int_equal(r.rc, 0);
    const kiln_job_t *job = &r.wf->jobs[0];
    assert_int_equal(job->n_steps, 2);
    assert_string_equal(job->steps[0].builtin, "upload-artifact");
    assert_string_equal(job->steps[1].builtin, "download-artifact");
    s_expect_warning_like(&r, 7, "has no input 'zip'");
    s_done(&r);
    s_parse_str(&r, "jobs:\n  a:\n    runs-on: l\n    steps:\n      - uses: actions/upload-artifact@v1\n");
    s_expect_error_like(&r, 5, "use actions/upload-artifact@v4");
    s_done(&r);
}

/* actions/checkout is built in: v2 and later, a commit pin too; its with:
 * is checked against the action's inputs. */
static void test_builtin_checkout(void **state)
{
    (void)state;
    result_t r;
    s_load(&r, "uses.yml");
    s_assert_ok(&r);
    const kiln_step_t *st = &r.wf->jobs[0].steps[0];
    assert_non_null(st->builtin);
    assert_string_equal(st->builtin, "checkout");
    assert_int_equal(json_integer_value(json_object_get(st->with, "fetch-depth")), 0);
    assert_null(r.wf->jobs[0].steps[1].builtin);
    s_done(&r);
    const char *pins[] = {"v2", "v3", "v4.2.2", "11bd71901bbe5b1630ceea73d27597364c9af683"};
    for (size_t i = 0; i < 4; i++) {
        char text[512];
        snprintf(text, sizeof text,
                 "jobs:\n  b:\n    runs-on: linux\n    steps:\n      - uses: actions/checkout@%s\n",
                 pins[i]);
        s_parse_str(&r, text);
        s_assert_ok(&r);
        assert_string_equal(r.wf->jobs[0].steps[0].builtin, "checkout");
        s_done(&r);
    }
    s_parse_str(&r, "jobs:\n  b:\n    runs-on: linux\n    steps:\n"
                    "      - uses: actions/checkout@v4\n        with: {depth: 1}\n");
    s_expect_warning_like(&r, 5, "'actions/checkout@v4' has no input 'depth'");
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

/* Windows shells are accepted, with a warning that they fail on Linux
 * workers unless PowerShell is there. */
static void test_windows_shells_warn(void **state)
{
    (void)state;
    result_t r;
    const char *shells[] = {"pwsh", "powershell", "cmd"};
    const char *says[] = {"needs PowerShell on the worker", "runs only on Windows",
                          "runs only on Windows"};
    for (size_t i = 0; i < 3; i++) {
        char text[256];
        snprintf(text, sizeof text,
                 "jobs:\n  a:\n    runs-on: l\n    steps:\n      - run: x\n        shell: %s\n",
                 shells[i]);
        s_parse_str(&r, text);
        s_expect_warning_like(&r, 6, says[i]);
        assert_int_equal(r.diags.items[0].col, 16);
        assert_string_equal(r.wf->jobs[0].steps[0].shell, shells[i]);
        s_done(&r);
    }
}

/* GitHub evaluates shell: only in defaults.run and composite actions: an
 * expression in a workflow step's own shell: is an error that says where
 * to put it; in defaults.run it is kept as a template. */
static void test_shell_expression(void **state)
{
    (void)state;
    result_t r;
    s_parse_str(&r, "jobs:\n  a:\n    runs-on: l\n    steps:\n      - run: x\n"
                    "        shell: ${{ matrix.shell }}\n");
    s_expect_error_like(&r, 6, "defaults.run");
    assert_non_null(strstr(r.diags.items[0].message, "'shell' of step 'Run x' of job 'a'"));
    s_done(&r);
    s_parse_str(&r, "defaults:\n  run:\n    shell: ${{ vars.shell }}\njobs:\n  a:\n"
                    "    runs-on: l\n    defaults:\n      run:\n        shell: ${{ matrix.sh }}\n"
                    "    steps: [{run: x}]\n  b:\n    runs-on: l\n    steps: [{run: x}]\n");
    s_assert_ok(&r);
    assert_int_equal(r.diags.n, 0);
    assert_string_equal(r.wf->shell, "${{ vars.shell }}");
    assert_string_equal(r.wf->jobs[0].shell, "${{ matrix.sh }}");
    assert_string_equal(r.wf->jobs[1].shell, "${{ vars.shell }}");
    s_done(&r);
    /* Its syntax is still checked. */
    s_parse_str(&r, "defaults:\n  run:\n    shell: ${{ vars.shell ) }}\njobs:\n  a:\n"
                    "    runs-on: l\n    steps: [{run: x}]\n");
    s_expect_error_like(&r, 3, "shell: expression error");
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
    s_assert_ok(&r);
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

/* ----------------------------------------------------------- runs-on */

/* runs-on as a label, a list, {group, labels}, or a template, kept as
 * written for the planner. */
static void test_runs_on_forms(void **state)
{
    (void)state;
    result_t r;
    s_parse_str(&r, "jobs:\n"
                    "  a: {runs-on: self-hosted, steps: [{run: x}]}\n"
                    "  b: {runs-on: [self-hosted, big], steps: [{run: x}]}\n"
                    "  c: {runs-on: {group: farm, labels: [big]}, steps: [{run: x}]}\n"
                    "  d: {runs-on: {group: farm}, steps: [{run: x}]}\n"
                    "  e: {runs-on: '${{ matrix.os }}', steps: [{run: x}]}\n"
                    "  f: {runs-on: [self-hosted, '${{ inputs.size }}'], steps: [{run: x}]}\n");
    s_assert_ok(&r);
    assert_int_equal(r.diags.n, 0);
    s_assert_json(r.wf->jobs[0].runs_on, "\"self-hosted\"");
    s_assert_json(r.wf->jobs[1].runs_on, "[\"self-hosted\",\"big\"]");
    s_assert_json(r.wf->jobs[2].runs_on, "{\"group\":\"farm\",\"labels\":[\"big\"]}");
    s_assert_json(r.wf->jobs[3].runs_on, "{\"group\":\"farm\"}");
    s_assert_json(r.wf->jobs[4].runs_on, "\"${{ matrix.os }}\"");
    s_assert_json(r.wf->jobs[5].runs_on, "[\"self-hosted\",\"${{ inputs.size }}\"]");
    s_done(&r);
    /* A mapping with neither group nor labels. */
    s_parse_str(&r, "jobs:\n  a:\n    runs-on: {os: linux}\n    steps: [{run: x}]\n");
    assert_int_equal(r.rc, KILN_EINVAL);
    assert_int_equal(r.diags.n_errors, 1);
    assert_non_null(s_find(&r.diags, KILN_DIAG_ERROR,
                           "'runs-on' of job 'a' has neither 'group' nor 'labels'"));
    assert_non_null(s_find(&r.diags, KILN_DIAG_WARNING, "unknown key 'os' in 'runs-on'"));
    s_done(&r);
    /* Empty lists and labels, and non-string entries. */
    s_parse_str(&r, "jobs:\n  a:\n    runs-on: []\n    steps: [{run: x}]\n");
    s_expect_error(&r, 3, 5, "'runs-on' of job 'a' is empty");
    s_done(&r);
    s_parse_str(&r, "jobs:\n  a:\n    runs-on: [l, [x]]\n    steps: [{run: x}]\n");
    s_expect_error(&r, 3, 18, "entry 2 of 'runs-on' of job 'a' must be a string, not a list");
    s_done(&r);
    /* A bad expression is reported at the field. */
    s_parse_str(&r, "jobs:\n  a:\n    runs-on: ${{ matrix.os ==  }}\n    steps: [{run: x}]\n");
    s_expect_error_like(&r, 3, "job 'a': runs-on: expression error at column");
    s_done(&r);
}

/* Jobs for other systems are kept with a warning and marked: the rest of
 * the workflow runs, and they fail (with this reason) if planned. */
static void test_runs_on_other_systems(void **state)
{
    (void)state;
    result_t r;
    s_parse_str(&r, "jobs:\n"
                    "  win:\n    runs-on: windows-latest\n    steps: [{run: x}]\n"
                    "  mac:\n    runs-on: [self-hosted, macos-14]\n    steps: [{run: x}]\n"
                    "  lin:\n    runs-on: ubuntu-latest\n    steps: [{run: x}]\n");
    s_assert_ok(&r);
    assert_int_equal(r.diags.n, 2);
    assert_int_equal(s_count(&r.diags, KILN_DIAG_WARNING), 2);
    assert_int_equal(r.diags.items[0].line, 3);
    assert_string_equal(r.diags.items[0].message,
                        "job 'win': runs-on 'windows-latest': this farm runs Linux workers only, "
                        "so the job cannot run");
    assert_int_equal(r.diags.items[1].line, 6);
    assert_non_null(strstr(r.diags.items[1].message, "runs-on 'macos-14'"));
    assert_non_null(r.wf->jobs[0].unsupported);
    assert_non_null(strstr(r.wf->jobs[0].unsupported, "windows-latest"));
    assert_non_null(r.wf->jobs[1].unsupported);
    assert_null(r.wf->jobs[2].unsupported);
    s_done(&r);
}

/* ------------------------------------------------------------- limits */

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
     * KILN_YAML_MAX_NODES; 804 is one too many. */
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
    s_assert_ok(&r);
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

static void test_anchor_count_limit(void **state)
{
    (void)state;
    result_t r;
    size_t size = (KILN_YAML_MAX_ANCHORS + 1) * 24 + 256;
    char *text = s_alloc(size);
    for (int n = KILN_YAML_MAX_ANCHORS; n <= KILN_YAML_MAX_ANCHORS + 1; n++) {
        size_t len = 0;
        s_append(text, size, &len, "jobs:\n  a:\n    runs-on: l\n    steps: [{run: x}]\nx-a: [");
        for (int i = 0; i < n; i++)
            s_append(text, size, &len, "%s&a%d z", i ? "," : "", i);
        s_append(text, size, &len, "]\n");
        s_parse(&r, text, len);
        if (n == KILN_YAML_MAX_ANCHORS)
            s_assert_ok(&r);
        else
            s_expect_error_like(&r, 5, "too many YAML anchors (the limit is 1000)");
        s_done(&r);
    }
    free(text);
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
    char *text = s_nested(KILN_YAML_MAX_DEPTH - 1);
    s_parse_str(&r, text);
    if (r.rc != 0)
        fail_msg("at the limit: %s", kiln_error_last());
    s_done(&r);
    free(text);

    text = s_nested(KILN_YAML_MAX_DEPTH);
    s_parse_str(&r, text);
    /* The 64th '[' is the 65th level: column 5 + 63. */
    s_expect_error(&r, 1, 5 + KILN_YAML_MAX_DEPTH - 1, "nesting deeper than 64 levels");
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
    free(text);
}

static void test_scalar_limit(void **state)
{
    (void)state;
    result_t r;
    const size_t limit = KILN_YAML_MAX_SCALAR;
    char *text = s_alloc(limit + 256);
    for (size_t extra = 0; extra <= 1; extra++) {
        size_t len =
            (size_t)sprintf(text, "jobs:\n  a:\n    runs-on: l\n    steps:\n      - run: ");
        memset(text + len, 'e', limit + extra);
        len += limit + extra;
        text[len++] = '\n';
        s_parse(&r, text, len);
        if (extra == 0)
            s_assert_ok(&r);
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
            s_assert_ok(&r);
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
            s_assert_ok(&r);
            assert_int_equal(r.wf->jobs[0].n_steps, KILN_WF_MAX_STEPS);
        } else {
            s_expect_error(&r, 4, 5, "job 'a' has 1001 steps; the limit is 1000");
        }
        s_done(&r);
    }
    free(text);
}

/* Static matrices count toward the run's job limit with every combination:
 * 1000 jobs in all pass, 1001 do not. */
static void test_expanded_job_limit(void **state)
{
    (void)state;
    result_t r;
    char text[2048];
    for (int extra = 0; extra <= 1; extra++) {
        size_t len = 0;
        s_append(text, sizeof text, &len, "jobs:\n");
        /* Four matrix jobs of 10 x 25 = 250 combinations: 1000 jobs. */
        for (int j = 0; j < 4; j++) {
            s_append(text, sizeof text, &len,
                     "  m%d:\n    runs-on: l\n    strategy:\n      matrix:\n"
                     "        a: [0,1,2,3,4,5,6,7,8,9]\n        b: [", j);
            for (int k = 0; k < 25; k++)
                s_append(text, sizeof text, &len, "%s%d", k ? "," : "", k);
            s_append(text, sizeof text, &len, "]\n    steps: [{run: x}]\n");
        }
        if (extra) /* and one plain job more: 1001 */
            s_append(text, sizeof text, &len, "  one: {runs-on: l, steps: [{run: x}]}\n");
        s_parse(&r, text, len);
        if (!extra) {
            s_assert_ok(&r);
            assert_int_equal(r.wf->n_jobs, 4); /* one job per key, as written */
        } else {
            s_expect_error(&r, 1, 1,
                           "the workflow has 1001 jobs once its matrices are expanded; the "
                           "limit is 1000");
        }
        s_done(&r);
    }
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
    if (r.diags.n != n)
        s_dump(&r.diags);
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
    /* A document that is only a null is empty too; another scalar is not. */
    s_parse_str(&r, empty[3]);
    s_expect_error(&r, 1, 1, "the workflow is empty");
    s_done(&r);
    s_parse_str(&r, "hello\n");
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
    /* The same problem again is listed once (and counted once). */
    kiln_diags_add(&diags, KILN_DIAG_WARNING, 9, 1, "odd");
    assert_int_equal(diags.n, 3);
    assert_true(kiln_diags_has(&diags, KILN_DIAG_WARNING, 9, 1, "odd"));
    assert_false(kiln_diags_has(&diags, KILN_DIAG_ERROR, 9, 1, "odd"));
    assert_false(kiln_diags_has(&diags, KILN_DIAG_WARNING, 9, 2, "odd"));
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
    assert_int_equal(diags.n, KILN_DIAGS_MAX + 1); /* but the list stops growing */
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
    s_assert_ok(&r);
    assert_int_equal(r.diags.n, 1001);
    assert_int_equal(r.diags.items[0].line, 2);
    assert_int_equal(r.diags.items[999].line, 1001);
    assert_int_equal(r.diags.items[1000].line, 0);
    assert_string_equal(r.diags.items[1000].message,
                        "too many problems; only the first 1000 are listed");
    s_done(&r);
    /* 3000 errors: every one counted, the run refused. */
    len = (size_t)sprintf(text, "jobs:\n  a:\n    runs-on: l\n    steps:\n");
    for (int i = 0; i < 3000; i++)
        len += (size_t)sprintf(text + len, "      - {}\n");
    s_parse(&r, text, len);
    assert_int_equal(r.rc, KILN_EINVAL);
    assert_int_equal(r.diags.n_errors, 1); /* "3000 steps; the limit is 1000" */
    s_done(&r);
    len = (size_t)sprintf(text, "jobs:\n  a:\n    runs-on: l\n    steps:\n");
    for (int i = 0; i < 1000; i++)
        len += (size_t)sprintf(text + len, "      - {shell: fish}\n");
    s_parse(&r, text, len);
    assert_int_equal(r.rc, KILN_EINVAL);
    assert_int_equal(r.diags.n_errors, 2000); /* a bad shell and no run, per step */
    assert_int_equal(r.diags.n, KILN_DIAGS_MAX + 1);
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
    s_assert_ok(&r);
    assert_int_equal(r.diags.n, 1);
    assert_string_equal(r.diags.items[0].message, "unknown key 'a?b?c' at top level");
    s_done(&r);
    s_parse_str(&r, "env:\n  \"A=B\": 1\njobs:\n  a:\n    runs-on: l\n    steps: [{run: x}]\n");
    s_expect_error(&r, 2, 3, "invalid environment variable name 'A=B' in env of the workflow");
    s_done(&r);
}

/* env: as one expression giving a mapping: a job's (and a step's) may be,
 * the workflow's may not. */
static void test_env_expression(void **state)
{
    (void)state;
    result_t r;
    s_parse_str(&r, "jobs:\n  a:\n    runs-on: l\n    strategy:\n"
                    "      matrix:\n        env: [{A: '1'}, {A: '2'}]\n"
                    "    env: ${{ matrix.env }}\n"
                    "    steps:\n      - run: x\n        env: ${{ fromJSON(vars.e) }}\n");
    s_assert_ok(&r);
    assert_int_equal(r.diags.n, 0);
    assert_string_equal(r.wf->jobs[0].env_expr, "${{ matrix.env }}");
    assert_int_equal(r.wf->jobs[0].env.n, 0);
    assert_string_equal(r.wf->jobs[0].steps[0].env_expr, "${{ fromJSON(vars.e) }}");
    s_done(&r);
    s_parse_str(&r, "env: ${{ vars.e }}\njobs:\n  a:\n    runs-on: l\n    steps: [{run: x}]\n");
    s_expect_error_like(&r, 1, "the workflow's env must be a mapping");
    s_done(&r);
    s_parse_str(&r, "jobs:\n  a:\n    runs-on: l\n    env: ${{ matrix.env. }}\n"
                    "    steps: [{run: x}]\n");
    s_expect_error_like(&r, 4, "job 'a': env: expression error");
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
    s_assert_ok(&r);
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
    s_expect_error(&r, 6, 7, "'retry' of 'kiln' of job 'build' must be a whole number from 0 to 20");
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
    assert_non_null(strstr(r.diags.items[0].message,
                           "'max-attempts' of 'kiln' of job 'build' must be a whole number from "
                           "1 to 20"));
    assert_int_equal(s_count(&r.diags, KILN_DIAG_WARNING), 1);
    assert_int_equal(r.diags.items[1].line, 7);
    assert_non_null(strstr(r.diags.items[1].message, "unknown key 'retries'"));
    s_done(&r);
}

/* ------------------------------------------------------- expressions */

/* Expressions are checked before anything runs: every bad one is
 * reported, at the line of its field, naming the field and column. */
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
    if (r.diags.n_errors != 3)
        s_dump(&r.diags);
    assert_int_equal(r.diags.n_errors, 3);
    assert_int_equal(r.diags.items[0].line, 5);
    assert_int_equal(r.diags.items[0].col, 9);
    assert_non_null(strstr(r.diags.items[0].message, "job 'build': if: expression error"));
    assert_int_equal(r.diags.items[1].line, 7);
    assert_non_null(strstr(r.diags.items[1].message, "run: expression error at column"));
    assert_non_null(strstr(r.diags.items[1].message, "contain"));
    assert_int_equal(r.diags.items[2].line, 10);
    assert_non_null(strstr(r.diags.items[2].message, "foo"));
    s_done(&r);
}

/* Fields GitHub lets a workflow compute take a template (kept as the JSON
 * string, checked for syntax now) or a literal value. */
static void test_templated_fields(void **state)
{
    (void)state;
    result_t r;
    s_parse_str(&r, "on: push\n"
                    "jobs:\n"
                    "  t:\n"
                    "    runs-on: l\n"
                    "    timeout-minutes: ${{ matrix.slow && 20 || 10 }}\n"
                    "    continue-on-error: ${{ matrix.experimental }}\n"
                    "    strategy:\n"
                    "      fail-fast: ${{ github.ref == 'main' }}\n"
                    "      max-parallel: ${{ vars.width }}\n"
                    "      matrix: {slow: [true, false], experimental: [false]}\n"
                    "    concurrency:\n"
                    "      group: g-${{ matrix.slow }}\n"
                    "      cancel-in-progress: ${{ github.event_name == 'push' }}\n"
                    "    steps:\n"
                    "      - run: x\n"
                    "        timeout-minutes: ${{ inputs.minutes }}\n"
                    "        continue-on-error: ${{ matrix.experimental }}\n"
                    "  l:\n"
                    "    runs-on: l\n"
                    "    timeout-minutes: 5\n"
                    "    continue-on-error: false\n"
                    "    strategy:\n"
                    "      fail-fast: true\n"
                    "      max-parallel: 3\n"
                    "    concurrency: {group: one, cancel-in-progress: true}\n"
                    "    steps: [{run: x}]\n");
    s_assert_ok(&r);
    assert_int_equal(r.diags.n, 0);
    const kiln_job_t *t = &r.wf->jobs[0], *l = &r.wf->jobs[1];
    s_assert_json(t->timeout, "\"${{ matrix.slow && 20 || 10 }}\"");
    s_assert_json(t->continue_on_error, "\"${{ matrix.experimental }}\"");
    s_assert_json(t->fail_fast, "\"${{ github.ref == 'main' }}\"");
    s_assert_json(t->max_parallel, "\"${{ vars.width }}\"");
    assert_string_equal(t->concurrency_group, "g-${{ matrix.slow }}");
    s_assert_json(t->cancel_in_progress, "\"${{ github.event_name == 'push' }}\"");
    s_assert_json(t->steps[0].timeout, "\"${{ inputs.minutes }}\"");
    s_assert_json(t->steps[0].continue_on_error, "\"${{ matrix.experimental }}\"");
    assert_false(t->plan_late);
    assert_true(json_number_value(l->timeout) == 5);
    assert_true(json_is_false(l->continue_on_error));
    assert_true(json_is_true(l->fail_fast));
    s_assert_json(l->max_parallel, "3");
    assert_string_equal(l->concurrency_group, "one");
    assert_true(json_is_true(l->cancel_in_progress));
    s_done(&r);
    /* A bad expression in any of them is an error at its line. */
    const char *fields[] = {"timeout-minutes", "continue-on-error"};
    for (size_t i = 0; i < 2; i++) {
        char text[256];
        snprintf(text, sizeof text,
                 "jobs:\n  a:\n    runs-on: l\n    %s: ${{ matrix.x == }}\n    steps: [{run: x}]\n",
                 fields[i]);
        s_parse_str(&r, text);
        s_expect_error_like(&r, 4, "expression error");
        assert_non_null(strstr(r.diags.items[0].message, fields[i]));
        s_done(&r);
    }
    s_parse_str(&r, "jobs:\n  a:\n    runs-on: l\n    strategy:\n      fail-fast: ${{ ( }}\n"
                    "    steps: [{run: x}]\n");
    s_expect_error_like(&r, 5, "fail-fast: expression error");
    s_done(&r);
    s_parse_str(&r, "jobs:\n  a:\n    runs-on: l\n    concurrency:\n      group: x\n"
                    "      cancel-in-progress: maybe\n    steps: [{run: x}]\n");
    s_expect_error_like(&r, 6, "'cancel-in-progress' of job 'a' must be a boolean");
    s_done(&r);
    s_parse_str(&r, "jobs:\n  a:\n    runs-on: l\n    concurrency:\n"
                    "      cancel-in-progress: true\n    steps: [{run: x}]\n");
    s_expect_error(&r, 4, 5, "'concurrency' of job 'a' has no group");
    s_done(&r);
}

/* A `}}` inside a string literal does not end the expression. */
static void test_braces_in_string_literal(void **state)
{
    (void)state;
    result_t r;
    s_parse_str(&r, "jobs:\n  a:\n    runs-on: l\n    if: ${{ contains('a}}b', 'x') }}\n"
                    "    steps:\n      - run: echo ${{ format('{0}}}', 'x') }} done\n"
                    "        if: \"${{ 'x}}' == 'x}}' }}\"\n");
    s_assert_ok(&r);
    assert_int_equal(r.diags.n, 0);
    assert_string_equal(r.wf->jobs[0].if_expr, "${{ contains('a}}b', 'x') }}");
    s_done(&r);
    /* While a `}}` that does end it leaves the rest as text: this one is
     * an unterminated string. */
    s_parse_str(&r, "jobs:\n  a:\n    runs-on: l\n    steps:\n      - run: echo ${{ 'a }}\n");
    s_expect_error_like(&r, 5, "run: expression error");
    s_done(&r);
}

/* ---------------------------------------------------------- matrices */

/* A matrix job is one job whose matrix is the JSON as written; a static
 * one is expanded at parse time only to check it. */
static void test_matrix_as_written(void **state)
{
    (void)state;
    result_t r;
    s_parse_str(&r, "jobs:\n"
                    "  build:\n"
                    "    runs-on: l\n"
                    "    strategy:\n"
                    "      matrix:\n"
                    "        os: [a, b]\n"
                    "        v: [1, 2]\n"
                    "        include: [{os: c, v: 3}]\n"
                    "        exclude: [{os: a, v: 2}]\n"
                    "    steps: [{run: 'echo ${{ matrix.os }}'}]\n"
                    "  after:\n"
                    "    needs: build\n"
                    "    runs-on: l\n"
                    "    steps: [{run: x}]\n");
    s_assert_ok(&r);
    assert_int_equal(r.wf->n_jobs, 2);
    s_assert_json(r.wf->jobs[0].matrix,
                  "{\"os\":[\"a\",\"b\"],\"v\":[1,2],\"include\":[{\"os\":\"c\",\"v\":3}],"
                  "\"exclude\":[{\"os\":\"a\",\"v\":2}]}");
    assert_false(r.wf->jobs[0].plan_late);
    assert_int_equal(r.wf->jobs[1].n_needs, 1);
    assert_int_equal(r.wf->jobs[1].need_idx[0], 0);
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
    if (r.diags.n_errors != 2)
        s_dump(&r.diags);
    assert_int_equal(r.diags.n_errors, 2);
    assert_int_equal(r.diags.items[0].line, 6);
    assert_non_null(strstr(r.diags.items[0].message, "no combinations"));
    assert_int_equal(r.diags.items[1].line, 13);
    assert_non_null(strstr(r.diags.items[1].message, "300 combinations; the limit is 256"));
    s_done(&r);
    /* A matrix that is neither a mapping nor an expression; a key that is
     * neither a list nor an expression. */
    s_parse_str(&r, "jobs:\n  a:\n    runs-on: l\n    strategy:\n      matrix: linux\n"
                    "    steps: [{run: x}]\n");
    s_expect_error(&r, 5, 7, "the matrix of job 'a' must be a mapping or an expression");
    s_done(&r);
    s_parse_str(&r, "jobs:\n  a:\n    runs-on: l\n    strategy:\n      matrix: ${{ fromJSON( }}\n"
                    "    steps: [{run: x}]\n");
    s_expect_error_like(&r, 5, "strategy.matrix: expression error");
    s_done(&r);
}

/* A matrix key whose value is not a list is reported once, at the key. */
static void test_matrix_key_not_a_list_reported_once(void **state)
{
    (void)state;
    result_t r;
    s_parse_str(&r, "jobs:\n  a:\n    runs-on: l\n    strategy:\n      matrix:\n        os: linux\n"
                    "    steps: [{run: x}]\n");
    s_expect_error(&r, 6, 9,
                   "matrix key 'os' of job 'a' must be a list of values or an expression");
    s_done(&r);
}

/* A template inside a matrix's include or exclude entries is checked when the workflow is read. */
static void test_matrix_include_template_checked(void **state)
{
    (void)state;
    result_t r;
    s_parse_str(&r, "jobs:\n  a:\n    runs-on: l\n    strategy:\n      matrix:\n"
                    "        v: [1]\n        include: [{os: '${{ bad( }}'}]\n"
                    "    steps: [{run: x}]\n");
    assert_int_equal(r.rc, KILN_EINVAL);
    assert_int_equal(r.diags.n_errors, 1);
    assert_non_null(s_find(&r.diags, KILN_DIAG_ERROR, "strategy.matrix"));
    s_done(&r);
}

/* A matrix computed from needs is kept as its expression and makes the job
 * planned late; so does one key given by an expression. */
static void test_matrix_from_needs(void **state)
{
    (void)state;
    result_t r;
    s_parse_str(&r, "on: push\n"
                    "jobs:\n"
                    "  plan:\n"
                    "    runs-on: x\n"
                    "    outputs: {m: '${{ steps.s.outputs.m }}'}\n"
                    "    steps: [{id: s, run: 'true'}]\n"
                    "  build:\n"
                    "    needs: plan\n"
                    "    runs-on: x\n"
                    "    strategy:\n"
                    "      matrix: ${{ fromJSON(needs.plan.outputs.m) }}\n"
                    "    steps: [{run: 'true'}]\n"
                    "  keyed:\n"
                    "    needs: plan\n"
                    "    runs-on: x\n"
                    "    strategy:\n"
                    "      matrix:\n"
                    "        v: ${{ fromJSON(needs.plan.outputs.vs) }}\n"
                    "        os: [a]\n"
                    "    steps: [{run: 'true'}]\n"
                    "  inputs:\n"
                    "    runs-on: x\n"
                    "    strategy:\n"
                    "      matrix: ${{ fromJSON(inputs.m) }}\n"
                    "    steps: [{run: 'true'}]\n"
                    "  report:\n"
                    "    needs: [build, keyed]\n"
                    "    runs-on: x\n"
                    "    steps: [{run: 'true'}]\n");
    s_assert_ok(&r);
    assert_int_equal(r.wf->n_jobs, 5);
    s_assert_json(r.wf->jobs[1].matrix, "\"${{ fromJSON(needs.plan.outputs.m) }}\"");
    assert_true(r.wf->jobs[1].plan_late);
    s_assert_json(r.wf->jobs[2].matrix,
                  "{\"v\":\"${{ fromJSON(needs.plan.outputs.vs) }}\",\"os\":[\"a\"]}");
    assert_true(r.wf->jobs[2].plan_late);
    assert_false(r.wf->jobs[3].plan_late); /* inputs are known at submission */
    assert_false(r.wf->jobs[0].plan_late);
    assert_int_equal(r.wf->jobs[4].n_needs, 2);
    s_done(&r);
    /* A fail-fast from needs also waits for them. */
    s_parse_str(&r, "jobs:\n  a: {runs-on: l, steps: [{run: x}]}\n"
                    "  b:\n    needs: a\n    runs-on: l\n"
                    "    strategy: {fail-fast: '${{ needs.a.outputs.ff }}'}\n"
                    "    steps: [{run: x}]\n");
    s_assert_ok(&r);
    assert_true(r.wf->jobs[1].plan_late);
    s_done(&r);
}

/* A job is checked as written, not once per combination: a 3x3 matrix
 * with a bad expression in a step gives exactly one error. */
static void test_matrix_job_problem_reported_once(void **state)
{
    (void)state;
    result_t r;
    s_parse_str(&r, "jobs:\n"
                    "  build:\n"
                    "    name: build ${{ matrix.os }}\n"
                    "    runs-on: l\n"
                    "    strategy:\n"
                    "      matrix:\n"
                    "        os: [a, b, c]\n"
                    "        v: [1, 2, 3]\n"
                    "    colour: red\n"
                    "    steps:\n"
                    "      - run: echo ${{ matrix.os ++ matrix.v }}\n");
    assert_int_equal(r.rc, KILN_EINVAL);
    if (r.diags.n != 2)
        s_dump(&r.diags);
    assert_int_equal(r.diags.n_errors, 1);
    assert_int_equal(s_count(&r.diags, KILN_DIAG_ERROR), 1);
    assert_int_equal(s_count(&r.diags, KILN_DIAG_WARNING), 1);
    assert_int_equal(r.diags.n, 2);
    const kiln_diag_t *e = s_find(&r.diags, KILN_DIAG_ERROR, "run: expression error");
    assert_non_null(e);
    assert_int_equal(e->line, 11);
    s_done(&r);
}

/* --------------------------------------------------- composite actions */

static const char *const s_setup_action =
    "name: setup\n"                                                    /* 1 */
    "inputs:\n"                                                        /* 2 */
    "  version: {required: true}\n"                                    /* 3 */
    "  mode: {default: fast}\n"                                        /* 4 */
    "outputs:\n"                                                       /* 5 */
    "  path: {value: '${{ steps.p.outputs.path }}'}\n"                 /* 6 */
    "runs:\n"                                                          /* 7 */
    "  using: composite\n"                                             /* 8 */
    "  steps:\n"                                                       /* 9 */
    "    - id: p\n"                                                    /* 10 */
    "      run: echo path=/opt >> $GITHUB_OUTPUT\n"                    /* 11 */
    "    - run: echo ${{ inputs.version }}\n"                          /* 12 */
    "      shell: sh\n";                                               /* 13 */

/* Local composite actions: expanded in place, with their inputs and
 * outputs. */
static void test_composite_actions(void **state)
{
    (void)state;
    result_t r;
    const char *wf = "on: push\n"                                  /* 1 */
                     "jobs:\n"                                      /* 2 */
                     "  build:\n"                                   /* 3 */
                     "    runs-on: self-hosted\n"                   /* 4 */
                     "    steps:\n"                                 /* 5 */
                     "      - uses: ./ci/setup\n"                   /* 6 */
                     "        id: setup\n"                          /* 7 */
                     "        with: {version: '12'}\n"              /* 8 */
                     "      - run: make\n";                         /* 9 */
    json_t *files = json_pack("{s:s}", "ci/setup", s_setup_action);
    s_parse_files(&r, wf, files);
    s_assert_ok(&r);
    assert_int_equal(r.diags.n, 0);
    const kiln_job_t *job = &r.wf->jobs[0];
    assert_int_equal(job->n_steps, 3); /* two from the action, then make */
    assert_string_equal(job->steps[0].shell, "bash"); /* composite run default */
    assert_string_equal(job->steps[0].id, "p");
    assert_string_equal(job->steps[1].shell, "sh");
    assert_string_equal(job->steps[2].run, "make");
    assert_null(job->steps[2].action_inputs);
    assert_int_equal(json_array_size(job->steps[1].action_inputs), 1);
    json_t *level0 = json_array_get(job->steps[1].action_inputs, 0);
    assert_string_equal(json_string_value(json_object_get(level0, "version")), "12");
    assert_string_equal(json_string_value(json_object_get(level0, "mode")), "fast");
    /* The last step ends the action: its outputs go to steps.setup. */
    assert_null(job->steps[0].composite_ends);
    json_t *end = json_array_get(job->steps[1].composite_ends, 0);
    assert_non_null(end);
    assert_string_equal(json_string_value(json_object_get(end, "id")), "setup");
    assert_int_equal(json_integer_value(json_object_get(end, "level")), 0);
    s_assert_json(json_object_get(end, "outputs"),
                  "{\"path\":\"${{ steps.p.outputs.path }}\"}");
    s_done(&r);

    /* The action used without a loader is missing: a warning. */
    s_parse_str(&r, wf);
    s_expect_warning_like(&r, 6, "the repository has no action.yml or action.yaml there");
    s_done(&r);
    json_decref(files);
}

/* An action inside an action: each step carries its actions' inputs,
 * outermost first, and each action's end, innermost first. */
static void test_composite_nesting(void **state)
{
    (void)state;
    result_t r;
    json_t *files = json_pack(
        "{s:s, s:s}", "ci/outer",
        "inputs:\n  version: {default: '1'}\n"
        "outputs:\n  v: {value: '${{ steps.in.outputs.v }}'}\n"
        "runs:\n  using: composite\n  steps:\n"
        "    - uses: ./ci/inner\n      id: in\n      with: {v: '${{ inputs.version }}'}\n"
        "    - run: echo outer\n",
        "ci/inner",
        "inputs:\n  v: {required: true}\n"
        "outputs:\n  v: {value: '${{ inputs.v }}'}\n"
        "runs:\n  using: composite\n  steps:\n    - run: echo ${{ inputs.v }}\n      shell: "
        "${{ inputs.shell || 'bash' }}\n");
    s_parse_files(&r, "jobs:\n  a:\n    runs-on: l\n    steps:\n"
                      "      - uses: ./ci/outer/\n        id: o\n        with: {version: '2'}\n"
                      "      - run: make\n",
                  files);
    s_assert_ok(&r);
    const kiln_job_t *job = &r.wf->jobs[0];
    assert_int_equal(job->n_steps, 3);
    assert_string_equal(job->steps[0].run, "echo ${{ inputs.v }}");
    /* shell: is a template in a composite action. */
    assert_string_equal(job->steps[0].shell, "${{ inputs.shell || 'bash' }}");
    s_assert_json(job->steps[0].action_inputs,
                  "[{\"version\":\"2\"},{\"v\":\"${{ inputs.version }}\"}]");
    s_assert_json(job->steps[0].composite_ends,
                  "[{\"id\":\"in\",\"outputs\":{\"v\":\"${{ inputs.v }}\"},\"level\":1}]");
    assert_string_equal(job->steps[1].run, "echo outer");
    s_assert_json(job->steps[1].action_inputs, "[{\"version\":\"2\"}]");
    s_assert_json(job->steps[1].composite_ends,
                  "[{\"id\":\"o\",\"outputs\":{\"v\":\"${{ steps.in.outputs.v }}\"},"
                  "\"level\":0}]");
    s_done(&r);
    json_decref(files);
}

/* Every problem of an action is reported at the uses: step, quoting the
 * action file's own line. */
static void test_composite_problems(void **state)
{
    (void)state;
    result_t r;
    json_t *files = json_pack("{s:s, s:s, s:s}", "ci/setup", s_setup_action, "ci/node",
                              "runs:\n  using: node20\n  main: ../x.js\n", "ci/loop",
                              "runs:\n  using: composite\n  steps:\n    - uses: ./ci/loop\n");
    const char *bad = "on: push\n"
                      "jobs:\n"
                      "  build:\n"
                      "    runs-on: self-hosted\n"
                      "    steps:\n"
                      "      - uses: ./ci/nowhere\n"          /* 6: a warning */
                      "      - uses: ./ci/node\n"             /* 7 */
                      "      - uses: ./ci/setup\n"            /* 8 */
                      "      - uses: actions/setup-go@v5\n"   /* 9 */
                      "      - uses: ./../outside\n";         /* 10 */
    s_parse_files(&r, bad, files);
    assert_int_equal(r.rc, KILN_EINVAL);
    if (r.diags.n != 5)
        s_dump(&r.diags);
    assert_int_equal(r.diags.n, 5);
    assert_int_equal(r.diags.n_errors, 4);
    assert_int_equal(r.diags.items[0].severity, KILN_DIAG_WARNING);
    assert_int_equal(r.diags.items[0].line, 6);
    assert_non_null(strstr(r.diags.items[0].message, "no action.yml"));
    assert_non_null(strstr(r.diags.items[0].message, "the step fails if it runs"));
    assert_int_equal(r.diags.items[1].line, 7);
    assert_non_null(strstr(r.diags.items[1].message, "ci/node/action.yml:3:"));
    assert_non_null(strstr(r.diags.items[1].message, "runs.main: '../x.js' must be a path inside"));
    assert_int_equal(r.diags.items[2].line, 8);
    assert_non_null(strstr(r.diags.items[2].message, "ci/setup/action.yml:3:"));
    assert_non_null(strstr(r.diags.items[2].message, "input 'version' is required"));
    assert_int_equal(r.diags.items[3].line, 9);
    assert_non_null(strstr(r.diags.items[3].message, "the farm did not resolve it"));
    assert_int_equal(r.diags.items[4].line, 10);
    assert_non_null(strstr(r.diags.items[4].message, "the path leaves the repository"));
    s_done(&r);

    /* An action that uses itself stops at the depth limit. */
    s_parse_files(&r, "on: push\njobs:\n  a:\n    runs-on: x\n    steps:\n      - uses: ./ci/loop\n",
                  files);
    assert_int_equal(r.rc, KILN_EINVAL);
    assert_non_null(strstr(kiln_error_last(), "nest deeper than 5"));
    s_done(&r);

    /* A with: that is no input of the action is a warning. */
    s_parse_files(&r, "jobs:\n  a:\n    runs-on: x\n    steps:\n"
                      "      - uses: ./ci/setup\n        with: {version: '1', colour: red}\n",
                  files);
    s_expect_warning_like(&r, 5, "with: 'colour' is not an input of this action");
    s_done(&r);
    json_decref(files);
}

/* An action's size and the steps it brings are bounded. */
static void test_composite_limits(void **state)
{
    (void)state;
    result_t r;
    const char *wf = "jobs:\n  a:\n    runs-on: l\n    steps:\n      - uses: ./ci/big\n";
    /* (With outputs: see test_composite_without_outputs_leaks.) */
    const char *head = "outputs: {o: {value: x}}\nruns:\n  using: composite\n  steps: [{run: x}]\n";
    size_t limit = KILN_WF_MAX_ACTION_BYTES;
    char *text = s_alloc(limit + 2);
    for (size_t extra = 0; extra <= 1; extra++) {
        size_t len = limit + extra;
        /* The action padded with a comment to the limit, then one more. */
        memset(text, 'x', len);
        memcpy(text, head, strlen(head));
        text[strlen(head)] = '#';
        text[len - 1] = '\n';
        text[len] = '\0';
        json_t *files = json_pack("{s:s}", "ci/big", text);
        s_parse_files(&r, wf, files);
        if (extra == 0)
            s_assert_ok(&r);
        else
            s_expect_error_like(&r, 5, "the action is larger than 262144 bytes");
        s_done(&r);
        json_decref(files);
    }
    free(text);
    /* 600 steps used twice: more than 1000 steps once expanded. */
    size_t size = 600 * 16 + 64, len = 0;
    text = s_alloc(size);
    s_append(text, size, &len, "outputs: {o: {value: x}}\nruns:\n  using: composite\n  steps:\n");
    for (int i = 0; i < 600; i++)
        s_append(text, size, &len, "    - run: x\n");
    json_t *files = json_pack("{s:s}", "ci/many", text);
    s_parse_files(&r, "jobs:\n  a:\n    runs-on: l\n    steps:\n"
                      "      - uses: ./ci/many\n      - uses: ./ci/many\n",
                  files);
    s_expect_error(&r, 6, 9, "job 'a' has more than 1000 steps once its actions are expanded");
    s_done(&r);
    s_parse_files(&r, "jobs:\n  a:\n    runs-on: l\n    steps:\n      - uses: ./ci/many\n",
                  files);
    s_assert_ok(&r);
    assert_int_equal(r.wf->jobs[0].n_steps, 600);
    s_done(&r);
    json_decref(files);
    free(text);
}

/* A composite action that declares no outputs expands without a leak (the sanitizer build checks). */
static void test_composite_without_outputs_leaks(void **state)
{
    (void)state;
    result_t r;
    json_t *files = json_pack("{s:s}", "ci/plain", "runs:\n  using: composite\n  steps: [{run: x}]\n");
    s_parse_files(&r, "jobs:\n  a:\n    runs-on: l\n    steps:\n      - uses: ./ci/plain\n", files);
    s_assert_ok(&r);
    s_assert_json(json_array_get(r.wf->jobs[0].steps[0].composite_ends, 0),
                  "{\"id\":null,\"outputs\":{},\"level\":0}");
    s_done(&r);
    json_decref(files);
}

/* The local files a workflow refers to, for a submission to carry. */
static void test_local_uses(void **state)
{
    (void)state;
    const char *text = "jobs:\n"
                       "  a:\n    runs-on: l\n    steps:\n"
                       "      - uses: ./ci/nowhere\n      - uses: ./ci/node/\n"
                       "      - uses: ./ci/nowhere\n      - uses: actions/checkout@v4\n"
                       "  b:\n    uses: ./.github/workflows/b.yml\n"
                       "  c:\n    uses: org/repo/.github/workflows/c.yml@v1\n";
    json_t *uses = json_array();
    assert_int_equal(kiln_workflow_local_uses(text, strlen(text), uses), 0);
    s_assert_json(uses, "[{\"kind\":\"action\",\"path\":\"ci/nowhere\"},"
                        "{\"kind\":\"action\",\"path\":\"ci/node\"},"
                        "{\"kind\":\"workflow\",\"path\":\".github/workflows/b.yml\"}]");
    const char *out = "steps: [{uses: ./../x}]";
    assert_int_equal(kiln_workflow_local_uses(out, strlen(out), uses), KILN_EINVAL);
    json_decref(uses);
    char *p = kiln_workflow_local_path("./a/b/");
    assert_string_equal(p, "a/b");
    free(p);
    assert_null(kiln_workflow_local_path("./a/../../b"));
    assert_null(kiln_workflow_local_path("./"));
}

/* ------------------------------------------------- reusable workflows */

static const char *const s_callee =
    "on:\n"                                                   /* 1 */
    "  workflow_call:\n"                                      /* 2 */
    "    inputs:\n"                                           /* 3 */
    "      who: {type: string, required: true}\n"             /* 4 */
    "      loud: {type: boolean, default: false}\n"           /* 5 */
    "    outputs:\n"                                          /* 6 */
    "      greeting: {value: '${{ jobs.hello.outputs.g }}'}\n" /* 7 */
    "jobs:\n"                                                 /* 8 */
    "  hello:\n"                                              /* 9 */
    "    name: Say hello\n"                                   /* 10 */
    "    runs-on: l\n"                                        /* 11 */
    "    outputs: {g: '${{ steps.s.outputs.g }}'}\n"          /* 12 */
    "    steps: [{id: s, run: 'echo ${{ inputs.who }}'}]\n";  /* 13 */

/* A local reusable workflow is parsed into the calling job's callee. */
static void test_local_reusable_workflow(void **state)
{
    (void)state;
    result_t r;
    json_t *files = json_pack("{s:s}", ".github/workflows/b.yml", s_callee);
    s_parse_files(&r, "jobs:\n"
                      "  call:\n"
                      "    name: Caller\n"
                      "    uses: ./.github/workflows/b.yml\n"
                      "    with: {who: '${{ github.actor }}'}\n"
                      "    secrets: inherit\n"
                      "  after:\n"
                      "    needs: call\n"
                      "    runs-on: l\n"
                      "    steps: [{run: 'echo ${{ needs.call.outputs.greeting }}'}]\n",
                  files);
    s_assert_ok(&r);
    assert_int_equal(r.diags.n, 0);
    const kiln_job_t *call = &r.wf->jobs[0];
    assert_string_equal(call->uses, "./.github/workflows/b.yml");
    assert_null(call->unsupported);
    assert_null(call->runs_on);
    assert_int_equal(call->n_steps, 0);
    s_assert_json(call->with, "{\"who\":\"${{ github.actor }}\"}");
    s_assert_json(call->secrets, "\"inherit\"");
    assert_non_null(call->callee);
    const kiln_workflow_t *callee = call->callee;
    assert_true(callee->callable);
    assert_string_equal(callee->file, ".github/workflows/b.yml");
    assert_int_equal(callee->n_jobs, 1);
    assert_string_equal(callee->jobs[0].id, "hello");
    assert_non_null(json_object_get(callee->call_inputs, "who"));
    s_assert_json(callee->call_outputs, "{\"greeting\":{\"value\":\"${{ jobs.hello.outputs.g }}\"}}");
    s_done(&r);
    json_decref(files);
}

static void test_reusable_workflow_problems(void **state)
{
    (void)state;
    result_t r;
    json_t *files = json_pack("{s:s, s:s, s:s}", ".github/workflows/b.yml", s_callee,
                              ".github/workflows/push.yml",
                              "on: push\njobs:\n  a: {runs-on: l, steps: [{run: x}]}\n",
                              ".github/workflows/broken.yml",
                              "on: workflow_call\njobs:\n  a: {runs-on: l}\n");
    /* with: naming an input the callee does not declare; a required input
     * missing. */
    s_parse_files(&r, "jobs:\n  call:\n    uses: ./.github/workflows/b.yml\n"
                      "    with: {who: me, colour: red}\n",
                  files);
    s_expect_error(&r, 3, 11,
                   "job 'call' gives input 'colour', which ./.github/workflows/b.yml does not "
                   "declare under on.workflow_call.inputs");
    s_done(&r);
    s_parse_files(&r, "jobs:\n  call:\n    uses: ./.github/workflows/b.yml\n", files);
    s_expect_error(&r, 3, 11,
                   "job 'call' does not give input 'who', which ./.github/workflows/b.yml "
                   "requires");
    s_done(&r);
    /* Not callable; missing; not under .github/workflows; a problem of the
     * callee quoted with its own line. */
    s_parse_files(&r, "jobs:\n  call:\n    uses: ./.github/workflows/push.yml\n", files);
    s_expect_error_like(&r, 3, "which is not a reusable workflow (its on: has no workflow_call)");
    s_done(&r);
    s_parse_files(&r, "jobs:\n  call:\n    uses: ./.github/workflows/none.yml\n", files);
    s_expect_error_like(&r, 3, "the repository has no such file");
    s_done(&r);
    s_parse_files(&r, "jobs:\n  call:\n    uses: ./ci/b.yml\n", files);
    s_expect_error_like(&r, 3, "a reusable workflow is a .yml or .yaml file under "
                               "./.github/workflows/");
    s_done(&r);
    s_parse_files(&r, "jobs:\n  call:\n    uses: ./.github/workflows/broken.yml\n", files);
    s_expect_error_like(&r, 3, ".github/workflows/broken.yml:3:3: job 'a' has no steps");
    s_done(&r);
    /* A caller has neither runs-on nor steps of its own; with: needs uses:. */
    s_parse_files(&r, "jobs:\n  call:\n    uses: ./.github/workflows/b.yml\n    runs-on: l\n"
                      "    with: {who: me}\n",
                  files);
    s_expect_error(&r, 4, 5, "job 'call' calls a reusable workflow and cannot have runs-on");
    s_done(&r);
    s_parse_str(&r, "jobs:\n  a:\n    runs-on: l\n    with: {x: 1}\n    steps: [{run: x}]\n");
    s_expect_error(&r, 2, 3, "job 'a' has 'with' but calls no reusable workflow (uses:)");
    s_done(&r);
    json_decref(files);
}

/* Calls nest at most KILN_WF_MAX_CALL_DEPTH levels (a workflow that calls
 * itself stops there), and a run calls at most KILN_WF_MAX_CALLED. */
static void test_reusable_workflow_limits(void **state)
{
    (void)state;
    result_t r;
    json_t *files = json_pack("{s:s}", ".github/workflows/self.yml",
                              "on: workflow_call\njobs:\n  again:\n"
                              "    uses: ./.github/workflows/self.yml\n");
    s_parse_files(&r, "jobs:\n  c:\n    uses: ./.github/workflows/self.yml\n", files);
    s_expect_error_like(&r, 3, "job 'again': reusable workflows nest deeper than 4 levels");
    s_done(&r);
    json_decref(files);
    /* on: in its list form declares workflow_call too. */
    files = json_pack("{s:s}", ".github/workflows/b.yml",
                      "on: [push, workflow_call]\njobs:\n  a: {runs-on: l, steps: [{run: x}]}\n");
    char text[4096];
    for (int n = KILN_WF_MAX_CALLED; n <= KILN_WF_MAX_CALLED + 1; n++) {
        size_t len = 0;
        s_append(text, sizeof text, &len, "jobs:\n");
        for (int i = 0; i < n; i++)
            s_append(text, sizeof text, &len, "  c%d: {uses: ./.github/workflows/b.yml}\n", i);
        s_parse_files(&r, text, files);
        if (n == KILN_WF_MAX_CALLED) {
            s_assert_ok(&r);
            assert_non_null(r.wf->jobs[n - 1].callee);
        } else {
            s_expect_error(&r, 22, 15, "job 'c20': the run calls more than 20 reusable workflows");
        }
        s_done(&r);
    }
    json_decref(files);
}

/* A remote reusable workflow is accepted with a warning; the job is marked
 * and fails, saying why, if it is planned. */
static void test_remote_reusable_workflow(void **state)
{
    (void)state;
    result_t r;
    /* Without action sources: left for the coordinator, never run here. */
    s_parse_str(&r, "jobs:\n  call:\n    uses: org/repo/.github/workflows/x.yml@main\n"
                    "    with: {a: 1}\n    secrets: inherit\n"
                    "  other:\n    runs-on: l\n    steps: [{run: x}]\n");
    assert_int_equal(r.rc, 0);
    assert_non_null(r.wf->jobs[0].unsupported);
    assert_null(r.wf->jobs[0].callee);
    assert_null(r.wf->jobs[1].unsupported);
    s_done(&r);
    /* Resolved: parsed as a local one is, with its inputs checked. */
    json_t *files = json_pack("{s:{s:s, s:s, s:s, s:s}}", "uses:org/repo/.github/workflows/x.yml@main",
                              "text",
                              "on: {workflow_call: {inputs: {a: {type: number, required: true}}}}\n"
                              "jobs:\n  j:\n    runs-on: l\n    steps: [{run: x}]\n",
                              "url", "git://h/org/repo", "sha",
                              "0123456789abcdef0123456789abcdef01234567", "file",
                              ".github/workflows/x.yml");
    s_parse_files(&r, "jobs:\n  call:\n    uses: org/repo/.github/workflows/x.yml@main\n"
                      "    with: {a: 1}\n",
                  files);
    assert_int_equal(r.rc, 0);
    assert_non_null(r.wf->jobs[0].callee);
    assert_null(r.wf->jobs[0].unsupported);
    s_done(&r);
    s_parse_files(&r, "jobs:\n  call:\n    uses: org/repo/.github/workflows/x.yml@main\n", files);
    s_expect_error_like(&r, 3, "does not give input 'a'");
    s_done(&r);
    /* Not a workflow path. */
    s_parse_files(&r, "jobs:\n  call:\n    uses: org/repo/x.yml@main\n", files);
    s_expect_error_like(&r, 3, "a reusable workflow is ./.github/workflows/X.yml");
    s_done(&r);
    json_decref(files);
}

/* ----------------------------------------------------------- inputs */

/* on.workflow_dispatch.inputs typed with kiln_workflow_inputs, as `kiln
 * run --input` gives them (strings). */
static void test_dispatch_inputs(void **state)
{
    (void)state;
    result_t r;
    s_parse_str(&r, "on:\n"
                    "  workflow_dispatch:\n"
                    "    inputs:\n"
                    "      name: {type: string, required: true}\n"
                    "      debug: {type: boolean}\n"
                    "      level: {type: choice, options: [low, high], default: low}\n"
                    "      count: {type: number, default: 3}\n"
                    "      note: {description: free text}\n"
                    "jobs:\n  a: {runs-on: l, steps: [{run: x}]}\n");
    s_assert_ok(&r);
    const json_t *declared = r.wf->inputs;
    const char *what = "on.workflow_dispatch.inputs";
    assert_non_null(declared);
    json_t *out = NULL;
    json_t *given = json_pack("{s:s, s:s, s:s}", "name", "kiln", "debug", "true", "count", "2.5");
    assert_int_equal(kiln_workflow_inputs(declared, what, given, &out), 0);
    s_assert_json(out, "{\"name\":\"kiln\",\"debug\":true,\"level\":\"low\",\"count\":2.5,"
                       "\"note\":\"\"}");
    json_decref(out);
    json_decref(given);
    /* A caller's typed values are taken as they are. */
    given = json_pack("{s:s, s:b, s:i}", "name", "kiln", "debug", 1, "count", 5);
    assert_int_equal(kiln_workflow_inputs(declared, what, given, &out), 0);
    s_assert_json(out, "{\"name\":\"kiln\",\"debug\":true,\"level\":\"low\",\"count\":5,"
                       "\"note\":\"\"}");
    json_decref(out);
    json_decref(given);
    /* An unset boolean is false; a default number stays a number. */
    given = json_pack("{s:s, s:s}", "name", "x", "level", "high");
    assert_int_equal(kiln_workflow_inputs(declared, what, given, &out), 0);
    s_assert_json(out, "{\"name\":\"x\",\"debug\":false,\"level\":\"high\",\"count\":3,"
                       "\"note\":\"\"}");
    json_decref(out);
    json_decref(given);
    struct {
        const char *json;
        const char *says;
    } bad[] = {
        {"{}", "input 'name' is required"},
        {"{\"name\": \"x\", \"debug\": \"yes\"}", "input 'debug' is a boolean: true or false, not 'yes'"},
        {"{\"name\": \"x\", \"count\": \"many\"}", "input 'count' is a number, not 'many'"},
        {"{\"name\": \"x\", \"level\": \"mid\"}", "input 'level' must be one of its options, not 'mid'"},
        {"{\"name\": \"x\", \"colour\": \"red\"}",
         "input 'colour' is not declared under on.workflow_dispatch.inputs"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        given = json_loads(bad[i].json, 0, NULL);
        assert_non_null(given);
        out = (json_t *)1;
        assert_int_equal(kiln_workflow_inputs(declared, what, given, &out), KILN_EINVAL);
        assert_null(out);
        assert_string_equal(kiln_error_last(), bad[i].says);
        json_decref(given);
    }
    s_done(&r);
    /* An unknown input type is refused at parse. */
    s_parse_str(&r, "on:\n  workflow_dispatch:\n    inputs:\n      x: {type: colour}\n"
                    "jobs:\n  a: {runs-on: l, steps: [{run: x}]}\n");
    s_expect_error_like(&r, 4, "input 'x' has an unknown type");
    s_done(&r);
}

/* ------------------------------------------------------------ garbage */

static void test_garbage_does_not_crash(void **state)
{
    (void)state;
    result_t r;
    const char *inputs[] = {
        "{", "jobs: [", "? [a]\n: b\n", "jobs:\n  ? [x]\n  : y\n", "&a *a", "!!binary x",
        "jobs: {a: {steps: [1, [2], {run: {}}], runs-on: [[]]}}",
        "jobs: {a: {needs: [{}], runs-on: l, steps: [{run: x}]}}",
        "\"\\0\": x\njobs: {}\n", "%YAML 1.1\n---\njobs:\n",
        "jobs: {a: {runs-on: l, strategy: {matrix: {include: 3}}, steps: [{run: x}]}}",
        "jobs: {a: {runs-on: {group: [x]}, steps: [{run: x}]}}",
        "jobs: {a: {uses: [x]}}",
        "jobs: {a: {uses: ./.github/workflows/x.yml, secrets: [1]}}",
        "on: {workflow_call: {inputs: [1], outputs: 3}}\njobs: {a: {runs-on: l}}",
        "jobs: {a: {runs-on: l, if: [1], steps: [{run: x, if: {}, env: 3}]}}",
        "jobs: {a: {runs-on: l, kiln: 3, defaults: {run: 4}, steps: [{run: x}]}}",
        "jobs: {a: {runs-on: l, steps: [{run: '${{'}]}}",
    };
    for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++) {
        s_parse_str(&r, inputs[i]);
        if (r.rc != KILN_EINVAL)
            fail_msg("input %zu accepted: %s", i, inputs[i]);
        assert_true(r.diags.n_errors > 0);
        assert_true(kiln_error_last()[0] != '\0');
        s_done(&r);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_model),
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
        cmocka_unit_test(test_remote_action_not_supported),
        cmocka_unit_test(test_remote_composite),
        cmocka_unit_test(test_js_action),
        cmocka_unit_test(test_uses_remote),
        cmocka_unit_test(test_container),
        cmocka_unit_test(test_builtin_checkout),
        cmocka_unit_test(test_builtin_cache),
        cmocka_unit_test(test_builtin_artifacts),
        cmocka_unit_test(test_bad_shell),
        cmocka_unit_test(test_windows_shells_warn),
        cmocka_unit_test(test_shell_expression),
        cmocka_unit_test(test_duplicate_key),
        cmocka_unit_test(test_bad_job_id),
        cmocka_unit_test(test_id_length_limit),
        cmocka_unit_test(test_no_runs_on),
        cmocka_unit_test(test_runs_on_forms),
        cmocka_unit_test(test_runs_on_other_systems),
        cmocka_unit_test(test_billion_laughs),
        cmocka_unit_test(test_alias_budget_boundary),
        cmocka_unit_test(test_anchors),
        cmocka_unit_test(test_anchor_count_limit),
        cmocka_unit_test(test_depth_limit),
        cmocka_unit_test(test_size_limit),
        cmocka_unit_test(test_scalar_limit),
        cmocka_unit_test(test_job_and_step_count_limits),
        cmocka_unit_test(test_expanded_job_limit),
        cmocka_unit_test(test_multiple_errors),
        cmocka_unit_test(test_empty_and_non_mapping),
        cmocka_unit_test(test_diags_format),
        cmocka_unit_test(test_diags_bounded),
        cmocka_unit_test(test_parse_diags_bounded),
        cmocka_unit_test(test_env_rules),
        cmocka_unit_test(test_env_expression),
        cmocka_unit_test(test_step_ids),
        cmocka_unit_test(test_kiln_extension),
        cmocka_unit_test(test_expression_errors),
        cmocka_unit_test(test_templated_fields),
        cmocka_unit_test(test_braces_in_string_literal),
        cmocka_unit_test(test_matrix_as_written),
        cmocka_unit_test(test_matrix_errors),
        cmocka_unit_test(test_matrix_key_not_a_list_reported_once),
        cmocka_unit_test(test_matrix_include_template_checked),
        cmocka_unit_test(test_matrix_from_needs),
        cmocka_unit_test(test_matrix_job_problem_reported_once),
        cmocka_unit_test(test_composite_actions),
        cmocka_unit_test(test_composite_nesting),
        cmocka_unit_test(test_composite_problems),
        cmocka_unit_test(test_composite_limits),
        cmocka_unit_test(test_composite_without_outputs_leaks),
        cmocka_unit_test(test_local_uses),
        cmocka_unit_test(test_local_reusable_workflow),
        cmocka_unit_test(test_reusable_workflow_problems),
        cmocka_unit_test(test_reusable_workflow_limits),
        cmocka_unit_test(test_remote_reusable_workflow),
        cmocka_unit_test(test_dispatch_inputs),
        cmocka_unit_test(test_garbage_does_not_crash),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
