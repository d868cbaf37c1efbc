/* test_models.c: the coordinator's table of shared workflow models. Runs of
 * the same text share one parsed model and get its warnings every time;
 * anything that changes the parse (the file name, the text, a local action)
 * gets a model of its own; a refused text is not kept; the last release
 * frees. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "coordinator/models.h"

static const char *s_wf = "on: push\n"
                          "jobs:\n"
                          "  build:\n"
                          "    runs-on: self-hosted\n"
                          "    steps:\n"
                          "      - uses: ./ci/hello\n"
                          "      - run: make\n";

static const char *s_action_a = "name: hello\nruns:\n  using: composite\n  steps:\n"
                                "    - run: echo a\n      shell: bash\n";
static const char *s_action_b = "name: hello\nruns:\n  using: composite\n  steps:\n"
                                "    - run: echo b\n      shell: bash\n";

static size_t s_warnings(const kiln_diags_t *d)
{
    size_t n = 0;
    for (size_t i = 0; i < d->n; i++)
        n += d->items[i].severity == KILN_DIAG_WARNING;
    return n;
}

static void test_shared(void **state)
{
    (void)state;
    kiln_models_t *models = NULL;
    assert_int_equal(kiln_models_new(&models), 0);

    /* No files: the action is missing, which is a warning, not a refusal. */
    kiln_diags_t d1, d2;
    kiln_diags_init(&d1, "ci.yml");
    kiln_diags_init(&d2, "ci.yml");
    kiln_model_t *m1 = NULL, *m2 = NULL;
    assert_int_equal(kiln_models_parse(models, "ci.yml", s_wf, strlen(s_wf), NULL, &d1, &m1), 0);
    assert_int_equal(kiln_models_parse(models, "ci.yml", s_wf, strlen(s_wf), NULL, &d2, &m2), 0);
    assert_ptr_equal(m1, m2);
    assert_int_equal(kiln_models_count(models), 1);
    assert_int_equal(s_warnings(&d1), 1);
    assert_int_equal(s_warnings(&d2), 1);
    assert_string_equal(d1.items[0].message, d2.items[0].message);
    assert_int_equal(d1.items[0].line, d2.items[0].line);
    const kiln_workflow_t *wf = kiln_model_workflow(m1);
    assert_int_equal(wf->n_jobs, 1);
    kiln_diags_free(&d1);
    kiln_diags_free(&d2);

    /* The same text under another name is another model: messages name it. */
    kiln_diags_init(&d1, "other.yml");
    kiln_model_t *m3 = NULL;
    assert_int_equal(kiln_models_parse(models, "other.yml", s_wf, strlen(s_wf), NULL, &d1, &m3), 0);
    assert_ptr_not_equal(m3, m1);
    assert_int_equal(kiln_models_count(models), 2);
    kiln_diags_free(&d1);

    /* Releasing one reference keeps the model for the other. */
    kiln_model_release(&m2);
    assert_null(m2);
    assert_int_equal(kiln_models_count(models), 2);
    assert_int_equal(kiln_model_workflow(m1)->n_jobs, 1);
    kiln_model_release(&m1);
    kiln_model_release(&m3);
    assert_int_equal(kiln_models_count(models), 0);
    kiln_model_release(&m3); /* NULL: nothing */
    kiln_models_destroy(&models);
    assert_null(models);
}

static void test_files_decide(void **state)
{
    (void)state;
    kiln_models_t *models = NULL;
    assert_int_equal(kiln_models_new(&models), 0);
    json_t *fa = json_pack("{s:s}", "ci/hello", s_action_a);
    json_t *fa2 = json_pack("{s:s}", "ci/hello", s_action_a);
    json_t *fb = json_pack("{s:s}", "ci/hello", s_action_b);
    kiln_diags_t d;
    kiln_diags_init(&d, "ci.yml");
    kiln_model_t *a = NULL, *a2 = NULL, *b = NULL;
    assert_int_equal(kiln_models_parse(models, "ci.yml", s_wf, strlen(s_wf), fa, &d, &a), 0);
    assert_int_equal(kiln_models_parse(models, "ci.yml", s_wf, strlen(s_wf), fa2, &d, &a2), 0);
    assert_int_equal(kiln_models_parse(models, "ci.yml", s_wf, strlen(s_wf), fb, &d, &b), 0);
    assert_int_equal(d.n, 0);
    /* Equal files (a different object) share; a different action does not. */
    assert_ptr_equal(a, a2);
    assert_ptr_not_equal(a, b);
    assert_int_equal(kiln_models_count(models), 2);
    /* Each model holds its own action's step. */
    assert_string_equal(kiln_model_workflow(a)->jobs[0].steps[0].run, "echo a");
    assert_string_equal(kiln_model_workflow(b)->jobs[0].steps[0].run, "echo b");
    kiln_model_release(&a);
    kiln_model_release(&a2);
    kiln_model_release(&b);
    assert_int_equal(kiln_models_count(models), 0);
    kiln_diags_free(&d);
    json_decref(fa);
    json_decref(fa2);
    json_decref(fb);
    kiln_models_destroy(&models);
}

static void test_refused(void **state)
{
    (void)state;
    kiln_models_t *models = NULL;
    assert_int_equal(kiln_models_new(&models), 0);
    const char *bad = "on: push\njobs:\n  a:\n    runs-on: x\n    needs: b\n    steps: [{run: x}]\n"
                      "  b:\n    runs-on: x\n    needs: a\n    steps: [{run: x}]\n";
    for (int i = 0; i < 2; i++) {
        kiln_diags_t d;
        kiln_diags_init(&d, "cycle.yml");
        kiln_model_t *m = (kiln_model_t *)&d; /* set to NULL on refusal */
        assert_int_not_equal(kiln_models_parse(models, "cycle.yml", bad, strlen(bad), NULL, &d, &m),
                             0);
        assert_null(m);
        /* Refused each time with the same reasons: nothing was kept. */
        assert_true(d.n > 0);
        assert_int_equal(d.items[0].severity, KILN_DIAG_ERROR);
        assert_int_equal(kiln_models_count(models), 0);
        kiln_diags_free(&d);
    }
    kiln_models_destroy(&models);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shared),
        cmocka_unit_test(test_files_decide),
        cmocka_unit_test(test_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
