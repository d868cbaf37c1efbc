/* test_matrix.c: unit tests for coordinator/matrix.c.
 *
 * Matrices are written as JSON (what the evaluator hands over for
 * strategy.matrix), mostly GitHub's own examples from "Using a matrix for
 * your jobs", and the expansion is compared, combinations and key order, with
 * the result GitHub documents, as one compact JSON array.
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
#include "lang/matrix.h"

static json_t *s_parse(const char *text)
{
    json_error_t jerr;
    json_t *value = json_loads(text, JSON_DECODE_ANY, &jerr);
    if (!value)
        fail_msg("bad test JSON: %s: %s", jerr.text, text);
    return value;
}

/* Expands `matrix_json` (job "build"), expecting success. The matrix is
 * released before returning, so the combinations must stand on their own. */
static void s_expand(kiln_matrix_t *m, const char *matrix_json)
{
    json_t *matrix = s_parse(matrix_json);
    char err[256];
    int rc = kiln_matrix_expand(m, matrix, "build", err, sizeof err);
    if (rc != 0)
        fail_msg("expand failed (%d): %s", rc, err);
    json_decref(matrix);
}

/* The combinations as one compact JSON array, keys in their order. */
static char *s_dump(const kiln_matrix_t *m)
{
    json_t *all = json_array();
    assert_non_null(all);
    for (size_t i = 0; i < m->n; i++)
        assert_int_equal(json_array_append(all, m->combos[i]), 0);
    char *text = json_dumps(all, JSON_COMPACT);
    assert_non_null(text);
    json_decref(all);
    return text;
}

static void s_assert_expands(const char *matrix_json, const char *expected)
{
    kiln_matrix_t m;
    s_expand(&m, matrix_json);
    char *got = s_dump(&m);
    assert_string_equal(got, expected);
    free(got);
    kiln_matrix_free(&m);
    assert_null(m.combos);
    assert_int_equal(m.n, 0);
}

/* Expects failure with `code` and a message containing `needle`, in err and
 * in kiln_error_last(), and out left empty. */
static void s_assert_fails(const json_t *matrix, const char *job_id, int code, const char *needle)
{
    kiln_matrix_t m = {(json_t **)&m, 99};   /* garbage the call must reset */
    char err[256] = "untouched";
    kiln_error_clear();
    int rc = kiln_matrix_expand(&m, matrix, job_id, err, sizeof err);
    assert_int_equal(rc, code);
    assert_null(m.combos);
    assert_int_equal(m.n, 0);
    if (!strstr(err, needle))
        fail_msg("message '%s' lacks '%s'", err, needle);
    assert_string_equal(err, kiln_error_last());
}

static void s_assert_fails_json(const char *matrix_json, int code, const char *needle)
{
    json_t *matrix = s_parse(matrix_json);
    s_assert_fails(matrix, "build", code, needle);
    json_decref(matrix);
}

static double s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* GitHub: "version: [10, 12, 14], os: [ubuntu-latest, windows-latest]" runs
 * one job per combination, the first key varying slowest. */
static void test_product_order(void **state)
{
    (void)state;
    s_assert_expands("{\"version\": [10, 12, 14], \"os\": [\"ubuntu-latest\", \"windows-latest\"]}",
                     "[{\"version\":10,\"os\":\"ubuntu-latest\"},"
                     "{\"version\":10,\"os\":\"windows-latest\"},"
                     "{\"version\":12,\"os\":\"ubuntu-latest\"},"
                     "{\"version\":12,\"os\":\"windows-latest\"},"
                     "{\"version\":14,\"os\":\"ubuntu-latest\"},"
                     "{\"version\":14,\"os\":\"windows-latest\"}]");
    /* Key order as written, not alphabetical. */
    s_assert_expands("{\"os\": [\"a\", \"b\"], \"arch\": [\"x64\"]}",
                     "[{\"os\":\"a\",\"arch\":\"x64\"},{\"os\":\"b\",\"arch\":\"x64\"}]");
    /* One key, one value: one combination. */
    s_assert_expands("{\"os\": [\"linux\"]}", "[{\"os\":\"linux\"}]");
}

/* GitHub's exclude example: 12 combinations, an exact entry removes one, a
 * partial entry (no environment) removes both of its environments. */
static void test_exclude_partial(void **state)
{
    (void)state;
    s_assert_expands(
        "{\"os\": [\"macos-latest\", \"windows-latest\"],"
        " \"version\": [12, 14, 16],"
        " \"environment\": [\"staging\", \"production\"],"
        " \"exclude\": ["
        "   {\"os\": \"macos-latest\", \"version\": 12, \"environment\": \"production\"},"
        "   {\"os\": \"windows-latest\", \"version\": 16}]}",
        "[{\"os\":\"macos-latest\",\"version\":12,\"environment\":\"staging\"},"
        "{\"os\":\"macos-latest\",\"version\":14,\"environment\":\"staging\"},"
        "{\"os\":\"macos-latest\",\"version\":14,\"environment\":\"production\"},"
        "{\"os\":\"macos-latest\",\"version\":16,\"environment\":\"staging\"},"
        "{\"os\":\"macos-latest\",\"version\":16,\"environment\":\"production\"},"
        "{\"os\":\"windows-latest\",\"version\":12,\"environment\":\"staging\"},"
        "{\"os\":\"windows-latest\",\"version\":12,\"environment\":\"production\"},"
        "{\"os\":\"windows-latest\",\"version\":14,\"environment\":\"staging\"},"
        "{\"os\":\"windows-latest\",\"version\":14,\"environment\":\"production\"}]");
    /* An exclude entry matching nothing removes nothing; a number written
     * as 12.0 still matches 12. */
    s_assert_expands("{\"v\": [12, 14], \"exclude\": [{\"v\": 13}, {\"v\": 12.0}]}",
                     "[{\"v\":14}]");
    /* Excluding is by value: "12" (a string) is not 12. */
    s_assert_expands("{\"v\": [12, 14], \"exclude\": [{\"v\": \"12\"}]}", "[{\"v\":12},{\"v\":14}]");
}

/* GitHub's documented include example, result for result and in order:
 * {color: green} goes everywhere; {color: pink, animal: cat} overwrites the
 * added green on the cats; {fruit: apple, shape: circle} goes to the apples;
 * {fruit: banana} fits nowhere (it would change fruit) and stands alone;
 * {fruit: banana, animal: cat} is not merged into that banana (includes only
 * join product combinations) and stands alone too. */
static void test_include_documented_example(void **state)
{
    (void)state;
    s_assert_expands(
        "{\"fruit\": [\"apple\", \"pear\"], \"animal\": [\"cat\", \"dog\"],"
        " \"include\": ["
        "   {\"color\": \"green\"},"
        "   {\"color\": \"pink\", \"animal\": \"cat\"},"
        "   {\"fruit\": \"apple\", \"shape\": \"circle\"},"
        "   {\"fruit\": \"banana\"},"
        "   {\"fruit\": \"banana\", \"animal\": \"cat\"}]}",
        "[{\"fruit\":\"apple\",\"animal\":\"cat\",\"color\":\"pink\",\"shape\":\"circle\"},"
        "{\"fruit\":\"apple\",\"animal\":\"dog\",\"color\":\"green\",\"shape\":\"circle\"},"
        "{\"fruit\":\"pear\",\"animal\":\"cat\",\"color\":\"pink\"},"
        "{\"fruit\":\"pear\",\"animal\":\"dog\",\"color\":\"green\"},"
        "{\"fruit\":\"banana\"},"
        "{\"fruit\":\"banana\",\"animal\":\"cat\"}]");
}

/* GitHub: "Expanding or adding matrix configurations". */
static void test_include_extends_and_adds(void **state)
{
    (void)state;
    /* An entry matching one combination adds its extra key there only. */
    s_assert_expands(
        "{\"os\": [\"windows-latest\", \"ubuntu-latest\"], \"node\": [14, 16],"
        " \"include\": [{\"os\": \"windows-latest\", \"node\": 16, \"npm\": 6}]}",
        "[{\"os\":\"windows-latest\",\"node\":14},"
        "{\"os\":\"windows-latest\",\"node\":16,\"npm\":6},"
        "{\"os\":\"ubuntu-latest\",\"node\":14},"
        "{\"os\":\"ubuntu-latest\",\"node\":16}]");
    /* An entry that would change an original value is a new combination,
     * after the product ones. */
    s_assert_expands(
        "{\"os\": [\"windows-latest\", \"ubuntu-latest\"], \"version\": [12, 14, 16],"
        " \"include\": [{\"os\": \"windows-latest\", \"version\": 17}]}",
        "[{\"os\":\"windows-latest\",\"version\":12},"
        "{\"os\":\"windows-latest\",\"version\":14},"
        "{\"os\":\"windows-latest\",\"version\":16},"
        "{\"os\":\"ubuntu-latest\",\"version\":12},"
        "{\"os\":\"ubuntu-latest\",\"version\":14},"
        "{\"os\":\"ubuntu-latest\",\"version\":16},"
        "{\"os\":\"windows-latest\",\"version\":17}]");
    /* Excludes apply first: an entry whose only match was excluded stands
     * alone, with its matrix keys first. */
    s_assert_expands(
        "{\"os\": [\"a\", \"b\"], \"exclude\": [{\"os\": \"b\"}],"
        " \"include\": [{\"x\": 1, \"os\": \"b\"}]}",
        "[{\"os\":\"a\"},{\"os\":\"b\",\"x\":1}]");
    /* A combination made from an include entry takes nothing from later
     * entries: {x: 1} joins the product combination only. */
    s_assert_expands("{\"os\": [\"a\"], \"include\": [{\"os\": \"b\"}, {\"x\": 1}]}",
                     "[{\"os\":\"a\",\"x\":1},{\"os\":\"b\"}]");
    /* An include never rewrites an original value, not even to an equal
     * one written differently (12.0 for 12). */
    s_assert_expands("{\"v\": [12], \"include\": [{\"v\": 12.0, \"x\": 1}]}",
                     "[{\"v\":12,\"x\":1}]");
    /* Exclude everything, include one: that one. */
    s_assert_expands("{\"os\": [\"a\"], \"exclude\": [{\"os\": \"a\"}], \"include\": [{\"os\": \"c\"}]}",
                     "[{\"os\":\"c\"}]");
}

/* A matrix of only include entries yields exactly those, none merged into
 * another even when their keys agree. */
static void test_include_only(void **state)
{
    (void)state;
    s_assert_expands(
        "{\"include\": ["
        "  {\"os\": \"linux\", \"cc\": \"gcc\"},"
        "  {\"os\": \"macos\", \"cc\": \"clang\"},"
        "  {\"os\": \"linux\"}]}",
        "[{\"os\":\"linux\",\"cc\":\"gcc\"},{\"os\":\"macos\",\"cc\":\"clang\"},{\"os\":\"linux\"}]");
    /* Include and exclude where the exclude has nothing to act on. */
    s_assert_expands("{\"include\": [{\"a\": 1}], \"exclude\": []}", "[{\"a\":1}]");
}

/* Object values travel whole into combinations and compare deeply. */
static void test_object_values(void **state)
{
    (void)state;
    const char *matrix =
        "{\"node\": [{\"version\": 14, \"npm\": 6}, {\"version\": 20, \"npm\": 10}],"
        " \"os\": [\"linux\", \"windows\"],"
        " \"exclude\": ["
        "   {\"node\": {\"npm\": 10, \"version\": 20}, \"os\": \"windows\"},"
        "   {\"node\": {\"version\": 14, \"npm\": 7}}],"
        " \"include\": [{\"node\": {\"version\": 14, \"npm\": 6}, \"experimental\": true}]}";
    s_assert_expands(matrix,
                     "[{\"node\":{\"version\":14,\"npm\":6},\"os\":\"linux\",\"experimental\":true},"
                     "{\"node\":{\"version\":14,\"npm\":6},\"os\":\"windows\",\"experimental\":true},"
                     "{\"node\":{\"version\":20,\"npm\":10},\"os\":\"linux\"}]");

    /* Each combination owns its values: changing one changes no other. */
    kiln_matrix_t m;
    s_expand(&m, matrix);
    assert_int_equal(m.n, 3);
    json_t *node0 = json_object_get(m.combos[0], "node");
    json_t *node1 = json_object_get(m.combos[1], "node");
    assert_ptr_not_equal(node0, node1);
    assert_int_equal(json_object_set_new(node0, "npm", json_integer(99)), 0);
    assert_int_equal(json_integer_value(json_object_get(node1, "npm")), 6);
    kiln_matrix_free(&m);
    kiln_matrix_free(&m);   /* twice is harmless */
    kiln_matrix_free(NULL);

    /* Equality is of whole values: an exclude naming part of an object
     * value, or more than it, or a prefix of an array value, does not match
     * it. */
    s_assert_expands("{\"node\": [{\"version\": 14, \"npm\": 6}, {\"version\": 20}],"
                     " \"exclude\": [{\"node\": {\"version\": 14}},"
                     "               {\"node\": {\"version\": 20, \"npm\": 10}}]}",
                     "[{\"node\":{\"version\":14,\"npm\":6}},{\"node\":{\"version\":20}}]");
    s_assert_expands("{\"flags\": [[\"-O2\", \"-g\"]], \"exclude\": [{\"flags\": [\"-O2\"]}]}",
                     "[{\"flags\":[\"-O2\",\"-g\"]}]");
    /* Array values compare deeply too. */
    s_assert_expands("{\"flags\": [[\"-O2\"], [\"-O0\", \"-g\"]], \"exclude\": [{\"flags\": [\"-O0\", \"-g\"]}]}",
                     "[{\"flags\":[\"-O2\"]}]");
}

static void s_assert_name(const char *name, const char *combo_json, const char *expected)
{
    json_t *combo = combo_json ? s_parse(combo_json) : NULL;
    char *got = kiln_matrix_name(name, combo);
    assert_non_null(got);
    assert_string_equal(got, expected);
    free(got);
    json_decref(combo);
}

static void test_name(void **state)
{
    (void)state;
    s_assert_name("build", "{\"os\": \"ubuntu\", \"node\": 12}", "build (ubuntu, 12)");
    s_assert_name("build", "{\"node\": 12.5}", "build (12.5)");
    s_assert_name("build", "{\"node\": 12.0}", "build (12)");
    s_assert_name("build", "{\"n\": -3, \"big\": 10000000000}", "build (-3, 10000000000)");
    s_assert_name("t", "{\"a\": true, \"b\": false}", "t (true, false)");
    s_assert_name("t", "{\"node\": {\"version\": 14, \"npm\": 6}, \"os\": \"linux\"}",
                  "t ({\"version\":14,\"npm\":6}, linux)");
    s_assert_name("t", "{\"flags\": [\"-O2\", 1]}", "t ([\"-O2\",1])");
    /* Strings raw, commas and all. */
    s_assert_name("t", "{\"s\": \"a, b (c)\"}", "t (a, b (c))");
    /* Nothing to show: just the name. */
    s_assert_name("build", "{}", "build");
    s_assert_name("build", NULL, "build");
    s_assert_name("build", "{\"a\": null, \"b\": \"\"}", "build");
    s_assert_name("build", "{\"a\": null, \"b\": \"x\"}", "build (x)");

    /* On an expansion: original keys first, then the included ones. */
    kiln_matrix_t m;
    s_expand(&m, "{\"os\": [\"ubuntu\"], \"node\": [12, 12.5],"
                 " \"include\": [{\"node\": 12.5, \"experimental\": true}]}");
    assert_int_equal(m.n, 2);
    char *n0 = kiln_matrix_name("build", m.combos[0]);
    char *n1 = kiln_matrix_name("build", m.combos[1]);
    assert_string_equal(n0, "build (ubuntu, 12)");
    assert_string_equal(n1, "build (ubuntu, 12.5, true)");
    free(n0);
    free(n1);
    kiln_matrix_free(&m);
}

static void test_id(void **state)
{
    (void)state;
    char *id = kiln_matrix_id("build", 0);
    assert_string_equal(id, "build-1");
    free(id);
    id = kiln_matrix_id("build", 9);
    assert_string_equal(id, "build-10");
    free(id);
    id = kiln_matrix_id("lint-and-test", 255);
    assert_string_equal(id, "lint-and-test-256");
    free(id);
}

/* A matrix with one key of n values 0..n-1 (and an optional tail). */
static json_t *s_range_matrix(size_t n)
{
    json_t *values = json_array();
    assert_non_null(values);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(json_array_append_new(values, json_integer((json_int_t)i)), 0);
    json_t *matrix = json_object();
    assert_non_null(matrix);
    assert_int_equal(json_object_set_new(matrix, "i", values), 0);
    return matrix;
}

/* `keys` keys of `width` values each. */
static json_t *s_square_matrix(size_t keys, size_t width)
{
    json_t *matrix = json_object();
    assert_non_null(matrix);
    for (size_t k = 0; k < keys; k++) {
        json_t *values = json_array();
        assert_non_null(values);
        for (size_t i = 0; i < width; i++)
            assert_int_equal(json_array_append_new(values, json_integer((json_int_t)i)), 0);
        char key[32];
        snprintf(key, sizeof key, "k%zu", k);
        assert_int_equal(json_object_set_new(matrix, key, values), 0);
    }
    return matrix;
}

static void test_limits(void **state)
{
    (void)state;
    /* 256 is allowed, in order. */
    json_t *matrix = s_range_matrix(KILN_MATRIX_MAX);
    kiln_matrix_t m;
    char err[256];
    assert_int_equal(kiln_matrix_expand(&m, matrix, "big", err, sizeof err), 0);
    assert_int_equal(m.n, KILN_MATRIX_MAX);
    assert_int_equal(json_integer_value(json_object_get(m.combos[255], "i")), 255);
    kiln_matrix_free(&m);
    json_decref(matrix);

    /* 257 is refused, with the count. */
    matrix = s_range_matrix(KILN_MATRIX_MAX + 1);
    s_assert_fails(matrix, "big", KILN_ETOOBIG,
                   "matrix of job 'big' has 257 combinations; the limit is 256");
    json_decref(matrix);

    /* 10x10x10x10, and 10^16 (which could never be built): refused from
     * the product alone, at once. */
    matrix = s_square_matrix(4, 10);
    s_assert_fails(matrix, "x", KILN_ETOOBIG,
                   "matrix of job 'x' has 10000 combinations; the limit is 256");
    json_decref(matrix);
    matrix = s_square_matrix(16, 10);
    double start = s_now();
    s_assert_fails(matrix, "x", KILN_ETOOBIG,
                   "matrix of job 'x' has 10000000000000000 combinations; the limit is 256");
    assert_true(s_now() - start < 1.0);
    json_decref(matrix);
    /* A product past 2^64 does not wrap around into an accepted size. */
    matrix = s_square_matrix(64, 4);
    s_assert_fails(matrix, "x", KILN_ETOOBIG, "matrix of job 'x' has more than");
    json_decref(matrix);
    /* An empty list makes the product empty, however large the rest. */
    matrix = s_square_matrix(64, 4);
    assert_int_equal(json_object_set_new(matrix, "empty", json_array()), 0);
    s_assert_fails(matrix, "x", KILN_EINVAL, "job 'x': matrix has no combinations");
    json_decref(matrix);
    /* Huge even with excludes: not scanned either. */
    matrix = s_square_matrix(16, 10);
    assert_int_equal(json_object_set_new(matrix, "exclude", s_parse("[{\"k0\": 1}]")), 0);
    start = s_now();
    s_assert_fails(matrix, "x", KILN_ETOOBIG, "has 10000000000000000 combinations");
    assert_true(s_now() - start < 1.0);
    json_decref(matrix);

    /* The limit is on what the matrix produces: 260 with 10 excluded runs,
     * 260 with 3 excluded does not. */
    matrix = s_range_matrix(260);
    json_t *exclude = json_array();
    for (int i = 0; i < 10; i++)
        json_array_append_new(exclude, json_pack("{s:i}", "i", 100 + i));
    json_object_set_new(matrix, "exclude", exclude);
    assert_int_equal(kiln_matrix_expand(&m, matrix, "big", err, sizeof err), 0);
    assert_int_equal(m.n, 250);
    assert_int_equal(json_integer_value(json_object_get(m.combos[100], "i")), 110);
    kiln_matrix_free(&m);
    json_array_clear(exclude);
    for (int i = 0; i < 3; i++)
        json_array_append_new(exclude, json_pack("{s:i}", "i", i));
    s_assert_fails(matrix, "big", KILN_ETOOBIG,
                   "matrix of job 'big' has 257 combinations; the limit is 256");
    json_decref(matrix);

    /* Includes that stand alone count: 256 + 1 is refused. */
    matrix = s_range_matrix(KILN_MATRIX_MAX);
    json_object_set_new(matrix, "include", s_parse("[{\"i\": -1}]"));
    s_assert_fails(matrix, "big", KILN_ETOOBIG,
                   "matrix of job 'big' has 257 combinations; the limit is 256");
    json_decref(matrix);
    /* ... and so do include-only entries. */
    matrix = json_object();
    json_t *include = json_array();
    for (int i = 0; i < KILN_MATRIX_MAX + 1; i++)
        json_array_append_new(include, json_pack("{s:i}", "i", i));
    json_object_set_new(matrix, "include", include);
    s_assert_fails(matrix, "big", KILN_ETOOBIG, "has 257 combinations");
    json_decref(matrix);
}

static void test_bad_shapes(void **state)
{
    (void)state;
    s_assert_fails(NULL, "build", KILN_EINVAL, "job 'build': matrix is not a mapping");
    s_assert_fails_json("[\"a\"]", KILN_EINVAL, "job 'build': matrix is not a mapping");
    s_assert_fails_json("\"${{ fromJSON(needs.setup.outputs.matrix) }}\"", KILN_EINVAL,
                        "job 'build': matrix is an unevaluated expression");
    s_assert_fails_json("{\"os\": \"linux\"}", KILN_EINVAL,
                        "job 'build': matrix value of 'os' is not a list");
    s_assert_fails_json("{\"os\": {\"a\": 1}}", KILN_EINVAL, "matrix value of 'os' is not a list");
    s_assert_fails_json("{\"os\": [\"a\"], \"node\": \"${{ fromJSON(inputs.nodes) }}\"}",
                        KILN_EINVAL, "matrix value of 'node' is an unevaluated expression");
    s_assert_fails_json("{\"include\": {\"os\": \"a\"}}", KILN_EINVAL,
                        "matrix include is not a list of mappings");
    s_assert_fails_json("{\"os\": [\"a\"], \"include\": \"${{ x }}\"}", KILN_EINVAL,
                        "matrix include is an unevaluated expression");
    s_assert_fails_json("{\"include\": [{\"os\": \"a\"}, \"b\"]}", KILN_EINVAL,
                        "matrix include entry 2 is not a mapping");
    s_assert_fails_json("{\"include\": [{}]}", KILN_EINVAL, "matrix include entry 1 is empty");
    s_assert_fails_json("{\"os\": [\"a\"], \"exclude\": 3}", KILN_EINVAL,
                        "matrix exclude is not a list of mappings");
    s_assert_fails_json("{\"os\": [\"a\"], \"exclude\": [[\"os\"]]}", KILN_EINVAL,
                        "matrix exclude entry 1 is not a mapping");
    s_assert_fails_json("{\"os\": [\"a\"], \"exclude\": [{}]}", KILN_EINVAL,
                        "matrix exclude entry 1 is empty");
    s_assert_fails_json("{\"os\": [\"a\", \"b\"], \"exclude\": [{\"os\": \"a\"}, {\"oss\": \"b\"}]}",
                        KILN_EINVAL, "matrix exclude entry 2: 'oss' is not a matrix key");
    /* No combinations: an empty list, everything excluded, nothing at all. */
    s_assert_fails_json("{\"os\": [\"a\", \"b\"], \"node\": []}", KILN_EINVAL,
                        "job 'build': matrix has no combinations");
    s_assert_fails_json("{\"os\": [\"a\"], \"exclude\": [{\"os\": \"a\"}]}", KILN_EINVAL,
                        "matrix has no combinations");
    s_assert_fails_json("{}", KILN_EINVAL, "matrix has no combinations");
    s_assert_fails_json("{\"include\": []}", KILN_EINVAL, "matrix has no combinations");

    /* err may be NULL or short; the message is still set. */
    json_t *matrix = s_parse("{\"os\": \"linux\"}");
    kiln_matrix_t m;
    kiln_error_clear();
    assert_int_equal(kiln_matrix_expand(&m, matrix, "build", NULL, 0), KILN_EINVAL);
    assert_non_null(strstr(kiln_error_last(), "matrix value of 'os' is not a list"));
    char small[8];
    assert_int_equal(kiln_matrix_expand(&m, matrix, "build", small, sizeof small), KILN_EINVAL);
    assert_string_equal(small, "job 'bu");
    json_decref(matrix);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_product_order),
        cmocka_unit_test(test_exclude_partial),
        cmocka_unit_test(test_include_documented_example),
        cmocka_unit_test(test_include_extends_and_adds),
        cmocka_unit_test(test_include_only),
        cmocka_unit_test(test_object_values),
        cmocka_unit_test(test_name),
        cmocka_unit_test(test_id),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_bad_shapes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
