/* test_trigger.c: on: filters as GitHub applies them: the filter globs,
 * branches and tags (and -ignore), paths (and -ignore), pull request
 * types and base branches, and the filter rules between them. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/error.h"
#include "lang/parse.h"
#include "lang/trigger.h"

static void test_globs(void **state)
{
    (void)state;
    /* The examples of GitHub's filter pattern cheat sheet. */
    assert_true(kiln_trigger_glob("feature/*", "feature/my-branch"));
    assert_false(kiln_trigger_glob("feature/*", "feature/your/branch"));
    assert_true(kiln_trigger_glob("feature/**", "feature/your/branch"));
    assert_true(kiln_trigger_glob("main", "main"));
    assert_true(kiln_trigger_glob("releases/mona-the-octocat", "releases/mona-the-octocat"));
    assert_true(kiln_trigger_glob("*", "main"));
    assert_false(kiln_trigger_glob("*", "releases/1"));
    assert_true(kiln_trigger_glob("**", "all/the/branches"));
    assert_true(kiln_trigger_glob("*feature", "mona-feature"));
    assert_true(kiln_trigger_glob("v2*", "v2.0"));
    assert_true(kiln_trigger_glob("v[12].[0-9]+.[0-9]+", "v1.10.1"));
    assert_true(kiln_trigger_glob("v[12].[0-9]+.[0-9]+", "v2.0.0"));
    assert_false(kiln_trigger_glob("v[12].[0-9]+.[0-9]+", "v3.0.0"));
    assert_false(kiln_trigger_glob("v[12].[0-9]+.[0-9]+", "v1..0"));
    /* ? is zero or one of the character before it. */
    assert_true(kiln_trigger_glob("*.jsx?", "page.js"));
    assert_true(kiln_trigger_glob("*.jsx?", "page.jsx"));
    assert_false(kiln_trigger_glob("*.jsx?", "page.jsxx"));
    assert_true(kiln_trigger_glob("**.js", "app.js"));
    assert_true(kiln_trigger_glob("**.js", "js/index.js"));
    assert_true(kiln_trigger_glob("docs/*", "docs/README.md"));
    assert_false(kiln_trigger_glob("docs/*", "docs/mona/octocat.txt"));
    assert_true(kiln_trigger_glob("docs/**", "docs/mona/octocat.txt"));
    assert_true(kiln_trigger_glob("docs/**/*.md", "docs/a/b/c.md"));
    assert_true(kiln_trigger_glob("**/docs/**", "src/docs/x"));
    assert_true(kiln_trigger_glob("**/README.md", "README.md"));
    assert_true(kiln_trigger_glob("**/README.md", "server/README.md"));
    assert_true(kiln_trigger_glob("*.md", "README.md"));
    assert_false(kiln_trigger_glob("*.md", "docs/README.md"));
    /* A pattern built to backtrack gives up instead of running for ever. */
    char name[400];
    memset(name, 'a', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    assert_false(kiln_trigger_glob("**a**a**a**a**a**a**a**a**a**a**a**a**b", name));
}

static kiln_workflow_t *s_parse(const char *text)
{
    kiln_diags_t diags;
    kiln_workflow_t *wf = NULL;
    kiln_diags_init(&diags, "t.yml");
    int rc = kiln_workflow_parse(&wf, "t.yml", text, strlen(text), NULL, &diags);
    if (rc != 0)
        fail_msg("%s", kiln_error_last());
    kiln_diags_free(&diags);
    return wf;
}

static bool s_push(const kiln_workflow_t *wf, const char *ref, json_t *paths, char *why)
{
    kiln_trigger_t t = {.event = "push", .ref = ref, .paths = paths};
    return kiln_trigger_match(wf, &t, why, 512);
}

static void test_push_filters(void **state)
{
    (void)state;
    char why[512];
    kiln_workflow_t *wf = s_parse("on:\n  push:\n    branches: [main, 'releases/**', '!releases/**-alpha']\n"
                                  "    paths: ['src/**', '!src/docs/**']\n"
                                  "jobs: {a: {runs-on: l, steps: [{run: x}]}}\n");
    json_t *src = json_pack("[s, s]", "README", "src/a.c");
    json_t *docs = json_pack("[s]", "src/docs/x.md");
    assert_true(s_push(wf, "refs/heads/main", src, why));
    assert_true(s_push(wf, "refs/heads/releases/1.0", src, why));
    assert_false(s_push(wf, "refs/heads/releases/1.0-alpha", src, why));
    assert_string_equal(why, "on.push: branch 'releases/1.0-alpha' is not in its branches");
    assert_false(s_push(wf, "refs/heads/feature", src, why));
    assert_false(s_push(wf, "refs/heads/main", docs, why));
    assert_string_equal(why, "on.push: its paths match none of the 1 files it changed");
    /* Unknown changes (a branch's first push): paths let it run. */
    assert_true(s_push(wf, "refs/heads/main", NULL, why));
    /* Only branches filtered: a tag push does not start it. */
    assert_false(s_push(wf, "refs/tags/v1", src, why));
    kiln_workflow_destroy(&wf);

    wf = s_parse("on:\n  push:\n    tags: ['v*']\n    paths-ignore: ['**.md']\n"
                 "jobs: {a: {runs-on: l, steps: [{run: x}]}}\n");
    assert_true(s_push(wf, "refs/tags/v1.0", docs, why)); /* paths are not looked at for tags */
    assert_false(s_push(wf, "refs/tags/nightly", src, why));
    assert_false(s_push(wf, "refs/heads/main", src, why));
    assert_string_equal(why, "on.push: its on.push filters tags only; this is a branch");
    kiln_workflow_destroy(&wf);

    wf = s_parse("on:\n  push:\n    paths-ignore: ['**.md']\n"
                 "jobs: {a: {runs-on: l, steps: [{run: x}]}}\n");
    assert_false(s_push(wf, "refs/heads/any", docs, why));
    assert_true(s_push(wf, "refs/heads/any", src, why));
    assert_true(s_push(wf, "refs/tags/v1", docs, why));
    kiln_workflow_destroy(&wf);

    wf = s_parse("on: [push, pull_request]\njobs: {a: {runs-on: l, steps: [{run: x}]}}\n");
    assert_true(s_push(wf, "refs/heads/x", NULL, why));
    kiln_trigger_t t = {.event = "workflow_dispatch"};
    assert_false(kiln_trigger_match(wf, &t, why, sizeof why));
    assert_string_equal(why, "on: does not take 'workflow_dispatch'");
    kiln_workflow_destroy(&wf);
    json_decref(src);
    json_decref(docs);
}

static void test_pull_request_filters(void **state)
{
    (void)state;
    char why[512];
    kiln_workflow_t *wf = s_parse("on:\n  pull_request:\n    branches: [main]\n"
                                  "jobs: {a: {runs-on: l, steps: [{run: x}]}}\n");
    kiln_trigger_t t = {.event = "pull_request", .base_ref = "main"};
    assert_true(kiln_trigger_match(wf, &t, why, sizeof why));
    t.action = "synchronize";
    assert_true(kiln_trigger_match(wf, &t, why, sizeof why));
    t.action = "closed"; /* not a default type */
    assert_false(kiln_trigger_match(wf, &t, why, sizeof why));
    assert_string_equal(why, "on.pull_request: its types do not take 'closed'");
    t.action = "opened";
    t.base_ref = "develop";
    assert_false(kiln_trigger_match(wf, &t, why, sizeof why));
    assert_string_equal(why, "on.pull_request: base branch 'develop' is not in its branches");
    kiln_workflow_destroy(&wf);
    wf = s_parse("on:\n  pull_request:\n    types: [labeled, closed]\n"
                 "jobs: {a: {runs-on: l, steps: [{run: x}]}}\n");
    t.base_ref = "develop";
    t.action = "closed";
    assert_true(kiln_trigger_match(wf, &t, why, sizeof why));
    t.action = "opened";
    assert_false(kiln_trigger_match(wf, &t, why, sizeof why));
    kiln_workflow_destroy(&wf);
}

/* A filter and its -ignore form together are refused, as GitHub does. */
static void test_filter_errors(void **state)
{
    (void)state;
    kiln_diags_t diags;
    kiln_workflow_t *wf = NULL;
    const char *text = "on:\n  push:\n    branches: [main]\n    branches-ignore: [x]\n"
                       "jobs: {a: {runs-on: l, steps: [{run: x}]}}\n";
    kiln_diags_init(&diags, "t.yml");
    assert_int_equal(kiln_workflow_parse(&wf, "t.yml", text, strlen(text), NULL, &diags),
                     KILN_EINVAL);
    assert_non_null(strstr(diags.items[0].message,
                           "on.push has both 'branches' and 'branches-ignore'"));
    assert_int_equal(diags.items[0].line, 4);
    kiln_diags_free(&diags);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_globs),
        cmocka_unit_test(test_push_filters),
        cmocka_unit_test(test_pull_request_filters),
        cmocka_unit_test(test_filter_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
