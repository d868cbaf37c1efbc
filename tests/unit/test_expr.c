/* test_expr.c: the GitHub Actions expression language behaves as GitHub
 * documents it ("Expressions", "Contexts"): literals, the coercion table,
 * operators returning operands, case-insensitive comparison, object filters,
 * every function (hashFiles through a recording host: lang/ reads no file;
 * the worker's side is test_hashfiles.c), status functions and
 * the implicit success() of conditions, interpolation, and errors that name
 * their column, including the length and depth limits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/error.h"
#include "lang/expr.h"

static const char s_context_json[] =
    "{"
    " \"github\": {"
    "  \"actor\": \"octocat\", \"ref\": \"refs/heads/main\", \"event_name\": \"push\","
    "  \"event\": {"
    "   \"head_commit\": {\"id\": \"abc123\"},"
    "   \"commits\": ["
    "    {\"message\": \"first\", \"author\": {\"name\": \"ann\"}},"
    "    {\"message\": \"second\", \"author\": {\"name\": \"bob\"}},"
    "    {\"id\": 3}"
    "   ]"
    "  }"
    " },"
    " \"env\": {\"GREETING\": \"hello\", \"EMPTY\": \"\"},"
    " \"matrix\": {\"os\": \"ubuntu-latest\", \"node\": [14, 16]},"
    " \"needs\": {\"build\": {\"result\": \"success\", \"outputs\": {\"version\": \"1.2.3\"}}},"
    " \"steps\": {\"my-step\": {\"outputs\": {\"v\": \"7\"}}},"
    " \"inputs\": {"
    "  \"fruits\": [{\"name\": \"apple\", \"quantity\": 1}, {\"name\": \"orange\", \"quantity\": 2},"
    "              {\"name\": \"pear\", \"quantity\": 1}],"
    "  \"vegetables\": {"
    "   \"scallions\": {\"colors\": [\"green\", \"white\", \"red\"],"
    "                 \"ediblePortions\": [\"roots\", \"stalks\"]},"
    "   \"beets\": {\"colors\": [\"purple\", \"red\", \"gold\", \"white\", \"pink\"],"
    "             \"ediblePortions\": [\"roots\", \"stems\", \"leaves\"]},"
    "   \"artichokes\": {\"colors\": [\"green\", \"purple\", \"red\", \"black\"],"
    "                  \"ediblePortions\": [\"hearts\", \"stems\", \"leaves\"]}"
    "  }"
    " }"
    "}";

static json_t *s_ctx;
static kiln_expr_env_t s_env;

static int s_group_setup(void **state)
{
    json_error_t jerr;
    (void)state;
    s_ctx = json_loads(s_context_json, 0, &jerr);
    if (!s_ctx) {
        fprintf(stderr, "context: %s at %d\n", jerr.text, jerr.position);
        return -1;
    }
    return 0;
}

static int s_group_teardown(void **state)
{
    (void)state;
    json_decref(s_ctx);
    return 0;
}

/* Each test starts with the sample context, status success, no hashFiles
 * host. */
static int s_reset(void **state)
{
    (void)state;
    s_env.contexts = s_ctx;
    s_env.status = KILN_EXPR_SUCCESS;
    s_env.hash_files = NULL;
    s_env.hash_ctx = NULL;
    return 0;
}

/* Evaluates expr, failing the test on an error. New reference. */
static json_t *s_val(const char *expr)
{
    json_t *v = NULL;
    char err[512] = "";
    int rc = kiln_expr_eval(expr, &s_env, &v, err, sizeof err);
    if (rc != 0)
        fail_msg("%s: unexpected error %d: %s", expr, rc, err);
    assert_non_null(v);
    return v;
}

/* Evaluates expr and returns its string form (caller frees). */
static char *s_str(const char *expr)
{
    json_t *v = s_val(expr);
    char *s = kiln_expr_string(v);
    json_decref(v);
    assert_non_null(s);
    return s;
}

static void s_assert_str(const char *expr, const char *want)
{
    char *got = s_str(expr);
    if (strcmp(got, want) != 0)
        fail_msg("%s: got [%s], want [%s]", expr, got, want);
    free(got);
}

/* The value must be exactly the boolean want (not merely truthy). */
static void s_assert_bool(const char *expr, bool want)
{
    json_t *v = s_val(expr);
    if (!json_is_boolean(v) || json_is_true(v) != want)
        fail_msg("%s: want %s", expr, want ? "true" : "false");
    json_decref(v);
}

/* The value must equal the JSON text want (types included: 1 is not 1.0). */
static void s_assert_json(const char *expr, const char *want)
{
    json_error_t jerr;
    json_t *w = json_loads(want, JSON_DECODE_ANY, &jerr), *v = s_val(expr);
    assert_non_null(w);
    if (!json_equal(v, w)) {
        char *d = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
        fail_msg("%s: got %s, want %s", expr, d ? d : "?", want);
    }
    json_decref(v);
    json_decref(w);
}

/* eval fails with KILN_EINVAL and exactly this "column N: message". */
static void s_assert_err(const char *expr, const char *want)
{
    json_t *v = NULL;
    char err[512] = "";
    int rc = kiln_expr_eval(expr, &s_env, &v, err, sizeof err);
    assert_null(v);
    if (rc != KILN_EINVAL || strcmp(err, want) != 0)
        fail_msg("%s: got %d [%s], want [%s]", expr, rc, err, want);
    assert_string_equal(kiln_error_last(), want);
}

static void test_literals(void **state)
{
    json_t *v;
    (void)state;
    s_assert_json("null", "null");
    s_assert_json("true", "true");
    s_assert_json("false", "false");
    s_assert_json("42", "42");
    s_assert_json("-9", "-9");
    s_assert_json("1.5", "1.5");
    s_assert_json("1e3", "1000");
    s_assert_json("0xff", "255");
    s_assert_json("0o17", "15");
    s_assert_json(".5", "0.5");
    s_assert_json("-2.99e-2", "-0.0299");
    s_assert_json("'it''s'", "\"it's\"");
    s_assert_json("''", "\"\"");
    s_assert_json("'x''''y'", "\"x''y\"");
    /* whole numbers come back as JSON integers, others as reals */
    v = s_val("2.0");
    assert_true(json_is_integer(v));
    json_decref(v);
    v = s_val("2.25");
    assert_true(json_is_real(v));
    json_decref(v);
    s_assert_str("  'spaced'  ", "spaced");
}

static void test_number_format(void **state)
{
    static const struct {
        double d;
        const char *want;
    } cases[] = {
        {1.0, "1"},          {0.5, "0.5"},         {-0.0, "0"},        {0.1, "0.1"},
        {1e21, "1e+21"},     {1e20, "100000000000000000000"},          {1e-7, "1e-7"},
        {0.000001, "0.000001"},                    {123.456, "123.456"},
        {-1.5, "-1.5"},      {1.0 / 3, "0.3333333333333333"},          {2.5e-10, "2.5e-10"},
        {9007199254740992.0, "9007199254740992"}, {1.7976931348623157e308, "1.7976931348623157e+308"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *v = json_real(cases[i].d);
        char *s = kiln_expr_string(v);
        if (!s || strcmp(s, cases[i].want) != 0)
            fail_msg("%.17g: got [%s], want [%s]", cases[i].d, s ? s : "(null)", cases[i].want);
        free(s);
        json_decref(v);
    }
    s_assert_str("1.0", "1");
    s_assert_str("0.5", "0.5");
    s_assert_str("1e21", "1e+21");
    s_assert_str("-0", "0");
}

static void test_string_forms(void **state)
{
    json_t *v;
    char *s;
    (void)state;
    s = kiln_expr_string(NULL);
    assert_string_equal(s, "");
    free(s);
    s_assert_str("null", "");
    s_assert_str("true", "true");
    s_assert_str("false", "false");
    v = json_integer(-42);
    s = kiln_expr_string(v);
    assert_string_equal(s, "-42");
    free(s);
    json_decref(v);
    s_assert_str("matrix", "{\n  \"os\": \"ubuntu-latest\",\n  \"node\": [\n    14,\n    16\n  ]\n}");
    s_assert_str("matrix.node", "[\n  14,\n  16\n]");
}

static void test_truthiness(void **state)
{
    json_t *v;
    (void)state;
    assert_false(kiln_expr_truthy(NULL));
    assert_false(kiln_expr_truthy(json_null()));
    assert_false(kiln_expr_truthy(json_false()));
    assert_true(kiln_expr_truthy(json_true()));
    v = json_integer(0);
    assert_false(kiln_expr_truthy(v));
    json_decref(v);
    v = json_real(-0.0);
    assert_false(kiln_expr_truthy(v));
    json_decref(v);
    v = json_real(0.5);
    assert_true(kiln_expr_truthy(v));
    json_decref(v);
    v = json_string("");
    assert_false(kiln_expr_truthy(v));
    json_decref(v);
    v = json_string("false");
    assert_true(kiln_expr_truthy(v));
    json_decref(v);
    v = json_array();
    assert_true(kiln_expr_truthy(v));
    json_decref(v);
    v = json_object();
    assert_true(kiln_expr_truthy(v));
    json_decref(v);
    s_assert_bool("!0", true);
    s_assert_bool("!'0'", false);
    s_assert_bool("!''", true);
    s_assert_bool("!null", true);
    s_assert_bool("!fromJSON('[]')", false);
}

/* GitHub's table: null -> 0, true -> 1, false -> 0, strings parsed as
 * numbers ('' -> 0, not numeric -> NaN), arrays and objects -> NaN. */
static void test_coercion_table(void **state)
{
    (void)state;
    s_assert_bool("null == 0", true);
    s_assert_bool("null == false", true);
    s_assert_bool("null == ''", true);
    s_assert_bool("null == 'null'", false);
    s_assert_bool("false == ''", true);
    s_assert_bool("false == 0", true);
    s_assert_bool("true == 1", true);
    s_assert_bool("true == 2", false);
    s_assert_bool("true == '1'", true);
    s_assert_bool("true == 'true'", false);
    s_assert_bool("'' == 0", true);
    s_assert_bool("'   ' == 0", true);
    s_assert_bool("' 42 ' == 42", true);
    s_assert_bool("'1.0' == 1", true);
    s_assert_bool("'0x10' == 16", true);
    s_assert_bool("'1e2' == 100", true);
    s_assert_bool("'abc' == 0", false);
    s_assert_bool("matrix.node == 0", false);
    s_assert_bool("matrix == 'ubuntu-latest'", false);
    s_assert_bool("matrix == null", false);
    /* strings compare ignoring case */
    s_assert_bool("'ABC' == 'abc'", true);
    s_assert_bool("'ABC' != 'abc'", false);
    s_assert_bool("'abc' == 'abd'", false);
    s_assert_bool("github.EVENT_NAME == 'PUSH'", true);
    /* arrays and objects: the same instance only */
    s_assert_bool("matrix.node == matrix.node", true);
    s_assert_bool("matrix == matrix", true);
    s_assert_bool("fromJSON('[]') == fromJSON('[]')", false);
    s_assert_bool("matrix.node != matrix.node", false);
}

/* NaN (a non-numeric string meeting a number) is equal to and ordered
 * against nothing; != is its negation. */
static void test_nan(void **state)
{
    (void)state;
    s_assert_bool("'x' == 1", false);
    s_assert_bool("'x' != 1", true);
    s_assert_bool("'x' < 1", false);
    s_assert_bool("'x' > 1", false);
    s_assert_bool("'x' <= 1", false);
    s_assert_bool("'x' >= 1", false);
    s_assert_bool("'x' == 'x'", true); /* both strings: no NaN involved */
    s_assert_bool("matrix.node < 1", false);
    s_assert_bool("matrix.node >= 1", false);
}

static void test_ordering(void **state)
{
    (void)state;
    s_assert_bool("1 < 2", true);
    s_assert_bool("2 < 1", false);
    s_assert_bool("1 <= 1", true);
    s_assert_bool("1 >= 2", false);
    s_assert_bool("'a' < 'B'", true); /* ignoring case */
    s_assert_bool("'B' > 'a'", true);
    s_assert_bool("'a' <= 'A'", true);
    s_assert_bool("'a' < 'A'", false);
    s_assert_bool("'2' > '10'", true); /* strings: text order */
    s_assert_bool("2 > '10'", false);  /* mixed: numbers */
    s_assert_bool("null < 1", true);
    s_assert_bool("false < true", true);
    s_assert_bool("true > false", true);
    s_assert_bool("null > null", false);
    s_assert_bool("null >= null", true);
    s_assert_bool("1 < 2 == true", true); /* comparison binds tighter than == */
}

static void test_logical_operators(void **state)
{
    (void)state;
    /* && and || return an operand, not a boolean */
    s_assert_json("'' || 'default'", "\"default\"");
    s_assert_json("1 && 'x'", "\"x\"");
    s_assert_json("0 && 'x'", "0");
    s_assert_json("'a' || 'b'", "\"a\"");
    s_assert_json("null || false", "false");
    s_assert_json("'' && 'x'", "\"\"");
    s_assert_json("env.EMPTY || env.GREETING", "\"hello\"");
    s_assert_json("github.ref == 'refs/heads/main' && 'prod' || 'dev'", "\"prod\"");
    s_assert_json("github.ref == 'refs/heads/next' && 'prod' || 'dev'", "\"dev\"");
    s_assert_json("1 && 2 && 3", "3");
    s_assert_json("0 || '' || null", "null");
    /* short circuit: the failing right side is never evaluated */
    s_assert_json("false && fromJSON('[')", "false");
    s_assert_json("true || fromJSON('[')", "true");
    /* precedence: ! over comparison over == over && over || */
    s_assert_bool("true || false && false", true);
    s_assert_bool("(true || false) && false", false);
    s_assert_bool("!true == false", true);
    s_assert_bool("1 == 1 && 2 == 2", true);
    s_assert_bool("!!'x'", true);
}

static void test_property_access(void **state)
{
    (void)state;
    s_assert_str("github.actor", "octocat");
    s_assert_str("github['actor']", "octocat");
    s_assert_str("github.event.commits[0].message", "first");
    s_assert_str("github['event']['commits'][1]['message']", "second");
    s_assert_str("github.event.commits['1'].message", "second"); /* index coerced */
    s_assert_str("github.event.commits[1.7].message", "second");  /* floored */
    s_assert_str("GITHUB.Event.HEAD_COMMIT.ID", "abc123");        /* any case */
    s_assert_str("steps.my-step.outputs.v", "7");
    s_assert_str("needs.build.outputs.version", "1.2.3");
    s_assert_str("matrix.node[1]", "16");
    /* missing things are null, never errors */
    s_assert_json("github.nope", "null");
    s_assert_json("github.nope.deeper.still", "null");
    s_assert_json("github.event.commits[5]", "null");
    s_assert_json("github.event.commits[-1]", "null");
    s_assert_json("github.event.commits.message", "null"); /* a name on an array */
    s_assert_json("github.actor.length", "null");
    s_assert_json("vars.ANYTHING", "null"); /* context absent */
    s_assert_json("matrix[matrix]", "null");
}

static void test_object_filters(void **state)
{
    (void)state;
    s_assert_json("github.event.commits.*.message", "[\"first\", \"second\"]");
    s_assert_json("github.event.commits[*].message", "[\"first\", \"second\"]");
    s_assert_json("github.event.commits.*.author.name", "[\"ann\", \"bob\"]");
    s_assert_json("(github.event.commits.*).message", "[\"first\", \"second\"]");
    s_assert_json("inputs.fruits.*.name", "[\"apple\", \"orange\", \"pear\"]");
    s_assert_json("inputs.vegetables.*.ediblePortions",
                  "[[\"roots\", \"stalks\"], [\"roots\", \"stems\", \"leaves\"],"
                  " [\"hearts\", \"stems\", \"leaves\"]]");
    s_assert_json("inputs.vegetables.*.ediblePortions.*",
                  "[\"roots\", \"stalks\", \"roots\", \"stems\", \"leaves\", \"hearts\", \"stems\","
                  " \"leaves\"]");
    s_assert_json("inputs.vegetables.*.colors[0]", "[\"green\", \"purple\", \"green\"]");
    s_assert_json("matrix.*", "[\"ubuntu-latest\", [14, 16]]");
    s_assert_json("github.actor.*", "[]");
    s_assert_json("github.nope.*.x", "[]");
    s_assert_bool("contains(inputs.vegetables.*.ediblePortions.*, 'HEARTS')", true);
    s_assert_str("join(inputs.fruits.*.quantity, '+')", "1+2+1");
}

static void test_contains_starts_ends(void **state)
{
    (void)state;
    s_assert_bool("contains('Hello world', 'llo')", true);
    s_assert_bool("contains('Hello world', 'LLO W')", true);
    s_assert_bool("contains('Hello world', 'xyz')", false);
    s_assert_bool("contains('abc', '')", true);
    s_assert_bool("contains(12345, 34)", true);   /* both coerced to strings */
    s_assert_bool("contains('true story', true)", true);
    s_assert_bool("contains(null, '')", true);
    s_assert_bool("contains(github.event.commits.*.message, 'SECOND')", true);
    s_assert_bool("contains(github.event.commits.*.message, 'third')", false);
    s_assert_bool("contains(matrix.node, '16')", true); /* loose equality */
    s_assert_bool("contains(matrix.node, 15)", false);
    s_assert_bool("contains(matrix, 'os')", false);     /* objects never contain */
    s_assert_bool("contains(fromJSON('[]'), '')", false);
    s_assert_bool("CONTAINS('abc', 'B')", true);         /* function names ignore case */
    s_assert_bool("startsWith('Hello', 'he')", true);
    s_assert_bool("startsWith('Hello', 'hello world')", false);
    s_assert_bool("startsWith(github.ref, 'refs/heads/')", true);
    s_assert_bool("startsWith(123, 12)", true);
    s_assert_bool("startsWith(matrix, 'a')", false);
    s_assert_bool("endsWith('Hello', 'LO')", true);
    s_assert_bool("endsWith('Hello', 'he')", false);
    s_assert_bool("endsWith('abc', '')", true);
    s_assert_bool("endsWith(1.5, '.5')", true);
}

static void test_format(void **state)
{
    (void)state;
    s_assert_str("format('Hello {0} {1} {2}', 'Mona', 'the', 'Octocat')", "Hello Mona the Octocat");
    s_assert_str("format('{{Hello {0} {1} {2}!}}', 'Mona', 'the', 'Octocat')",
                 "{Hello Mona the Octocat!}");
    s_assert_str("format('{{0}}', 1)", "{0}");
    s_assert_str("format('{0}}}', 'a')", "a}");
    s_assert_str("format('{0}{1}{0}', 'a', 'b')", "aba");
    s_assert_str("format('[{0}|{1}|{2}|{3}]', null, true, 1.5, 2)", "[|true|1.5|2]");
    s_assert_str("format('no placeholders')", "no placeholders");
    s_assert_str("format('{0}', matrix.node)", "[\n  14,\n  16\n]");
    s_assert_err("format('{1}', 'a')", "column 1: format: no argument for {1} (1 given)");
    s_assert_err("'a' && format('{0}')", "column 8: format: no argument for {0} (0 given)");
    s_assert_err("format('{', 1)",
                 "column 1: format: invalid placeholder at offset 0 of the format string");
    s_assert_err("format('ab}', 1)",
                 "column 1: format: unmatched '}' at offset 2 of the format string");
    s_assert_err("format('{x}', 1)",
                 "column 1: format: invalid placeholder at offset 0 of the format string");
    s_assert_err("format('{0:x}', 1)",
                 "column 1: format: invalid placeholder at offset 0 of the format string");
}

static void test_join(void **state)
{
    (void)state;
    s_assert_str("join(fromJSON('[\"a\", \"b\", \"c\"]'))", "a,b,c");
    s_assert_str("join(fromJSON('[\"a\", \"b\"]'), ' | ')", "a | b");
    s_assert_str("join(fromJSON('[1, true, null, 0.5]'), '/')", "1/true//0.5");
    s_assert_str("join(fromJSON('[\"only\"]'), '-')", "only");
    s_assert_str("join('abc', '-')", "abc");
    s_assert_str("join(7)", "7");
    s_assert_str("join(fromJSON('[]'))", "");
    s_assert_str("join(matrix)", "");
    s_assert_str("join(matrix.node, matrix)", "14,16"); /* a non-primitive separator: ',' */
}

static void test_tojson_fromjson(void **state)
{
    static const char pretty[] = "{\n  \"a\": [\n    1,\n    {\n      \"b\": null\n    }\n  ],\n"
                                 "  \"c\": {},\n  \"d\": [],\n  \"e\": \"q\\\"\\\\\\n\",\n"
                                 "  \"f\": 0.25\n}";
    char expr[512];
    json_t *v;
    (void)state;
    s_assert_str("toJSON('x')", "\"x\"");
    s_assert_str("toJSON(1)", "1");
    s_assert_str("toJSON(1.5)", "1.5");
    s_assert_str("toJSON(null)", "null");
    s_assert_str("toJSON(true)", "true");
    s_assert_str("toJSON(fromJSON('[]'))", "[]");
    s_assert_str("toJSON(github.event.head_commit)", "{\n  \"id\": \"abc123\"\n}");
    s_assert_str("toJSON('tab\there')", "\"tab\\there\"");
    /* fromJSON(toJSON(x)) is x, and toJSON(fromJSON(pretty)) is pretty */
    snprintf(expr, sizeof expr, "toJSON(fromJSON('%s'))", pretty);
    s_assert_str(expr, pretty);
    s_assert_json("fromJSON(toJSON(github.event)).commits[1].author.name", "\"bob\"");
    s_assert_json("fromJSON(toJSON(matrix))", "{\"os\": \"ubuntu-latest\", \"node\": [14, 16]}");
    s_assert_json("fromJSON('1')", "1");
    s_assert_json("fromJSON('2.5')", "2.5");
    s_assert_json("fromJSON('\"s\"')", "\"s\"");
    s_assert_json("fromJSON('true')", "true");
    s_assert_json("fromJSON('null')", "null");
    s_assert_json("fromJSON('{\"include\": [{\"n\": 1}]}').include[0].n", "1");
    s_assert_bool("fromJSON(steps.my-step.outputs.v) == 7", true);
    v = s_val("fromJSON('[1, 2.0, 1e2]')");
    assert_true(json_is_integer(json_array_get(v, 1))); /* whole numbers as integers */
    assert_true(json_is_integer(json_array_get(v, 2)));
    json_decref(v);
    s_assert_err("fromJSON('')", "column 1: fromJSON: invalid JSON at offset 0: unexpected token near "
                                 "end of file");
    s_assert_err("fromJSON('{')",
                 "column 1: fromJSON: invalid JSON at offset 1: string or '}' expected near end of "
                 "file");
    s_assert_err("fromJSON(matrix)", "column 1: fromJSON: the argument is an object, not JSON text");
    s_assert_err("fromJSON(matrix.node)", "column 1: fromJSON: the argument is an array, not JSON text");
}

/* ------------------------------------------------------------ hashFiles */

/* A hashFiles host that records what the language hands it and answers
 * what the test says. */
typedef struct {
    int calls;
    size_t n;
    char pattern[8][64];
    size_t len[8];
    int rc;             /* what to return */
    const char *answer; /* out_hex on success */
    const char *msg;    /* err on failure */
} s_host_t;

static int s_host(void *ctx, const char *const *patterns, const size_t *lens, size_t n_patterns,
                  char out_hex[65], char *err, size_t errlen)
{
    s_host_t *h = ctx;
    h->calls++;
    h->n = n_patterns;
    for (size_t i = 0; i < n_patterns && i < 8; i++) {
        assert_true(lens[i] < sizeof h->pattern[i]);
        memcpy(h->pattern[i], patterns[i], lens[i]);
        h->len[i] = lens[i];
    }
    if (h->rc == 0)
        snprintf(out_hex, 65, "%s", h->answer);
    else if (h->msg)
        snprintf(err, errlen, "%s", h->msg);
    return h->rc;
}

/* hashFiles() evaluates its arguments to their string forms, hands them in
 * order to the host, and returns the host's digest; the host's errors
 * become the call's, at its column. */
static void test_hashfiles_host(void **state)
{
    static const char hex[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    s_host_t h = {.answer = hex};
    json_t *v = NULL, *nul;
    char err[512];
    (void)state;
    s_assert_err("hashFiles('**/*.c')",
                 "column 1: hashFiles: no workspace (only available where a job runs)");
    s_env.hash_files = s_host;
    s_env.hash_ctx = &h;

    s_assert_str("hashFiles('**/*.c', '!x\n# c', 1.5, true, null, matrix.os)", hex);
    assert_int_equal(h.calls, 1);
    assert_int_equal(h.n, 6);
    assert_string_equal(h.pattern[0], "**/*.c");
    assert_string_equal(h.pattern[1], "!x\n# c"); /* lines are the host's to split */
    assert_string_equal(h.pattern[2], "1.5");
    assert_string_equal(h.pattern[3], "true");
    assert_int_equal(h.len[4], 0); /* null is '' */
    assert_string_equal(h.pattern[5], "ubuntu-latest");
    s_assert_str("HashFiles('a', '--follow-symbolic-links')", hex);
    assert_string_equal(h.pattern[1], "--follow-symbolic-links"); /* the host's flag */
    /* a string with a NUL byte keeps its length */
    nul = json_pack("{s:{s:s%}}", "env", "NUL", "a\0b", (size_t)3);
    assert_non_null(nul);
    s_env.contexts = nul;
    s_assert_str("hashFiles(env.NUL)", hex);
    s_env.contexts = s_ctx;
    json_decref(nul);
    assert_int_equal(h.len[0], 3);
    assert_memory_equal(h.pattern[0], "a\0b", 3);

    /* nothing matched: '' */
    h.answer = "";
    s_assert_str("hashFiles('*.nope')", "");

    /* a pattern that is no string, or fails, stops before the host */
    h.calls = 0;
    s_assert_err("hashFiles('a', matrix)", "column 1: hashFiles: a pattern must be a string");
    s_assert_err("hashFiles('a', fromJSON('{'))",
                 "column 16: fromJSON: invalid JSON at offset 1: string or '}' expected near end "
                 "of file");
    assert_int_equal(h.calls, 0);

    /* the host's errors, at the call's column */
    h.rc = KILN_EINVAL;
    h.msg = "hashFiles: more than 256 patterns";
    s_assert_err("'x' && hashFiles('a')", "column 8: hashFiles: more than 256 patterns");
    h.msg = NULL;
    s_assert_err("hashFiles('a')", "column 1: hashFiles: failed (no reason given)");
    h.rc = -1;
    assert_int_equal(kiln_expr_eval("hashFiles('a')", &s_env, &v, err, sizeof err), -1);
    assert_null(v);
    assert_string_equal(err, "column 1: out of memory");
}

/* ----------------------------------------------------- status, if: */

static void test_status_functions(void **state)
{
    static const struct {
        kiln_expr_status_t st;
        bool success, failure, cancelled;
    } rows[] = {
        {KILN_EXPR_SUCCESS, true, false, false},
        {KILN_EXPR_FAILURE, false, true, false},
        {KILN_EXPR_CANCELLED, false, false, true},
    };
    (void)state;
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        s_env.status = rows[i].st;
        s_assert_bool("success()", rows[i].success);
        s_assert_bool("failure()", rows[i].failure);
        s_assert_bool("cancelled()", rows[i].cancelled);
        s_assert_bool("always()", true);
        s_assert_bool("Success ( )", rows[i].success);
    }
}

static void s_assert_cond(const char *cond, kiln_expr_status_t st, bool want)
{
    bool got = !want;
    char err[512] = "";
    int rc;
    s_env.status = st;
    rc = kiln_expr_condition(cond, &s_env, &got, err, sizeof err);
    if (rc != 0)
        fail_msg("if: %s: unexpected error %d: %s", cond, rc, err);
    if (got != want)
        fail_msg("if: %s (status %d): got %d, want %d", cond, (int)st, got, want);
}

static void test_conditions(void **state)
{
    const kiln_expr_status_t S = KILN_EXPR_SUCCESS, F = KILN_EXPR_FAILURE,
                             C = KILN_EXPR_CANCELLED;
    bool got = true;
    char err[256];
    (void)state;
    /* no status function: success() && (expr) */
    s_assert_cond("true", S, true);
    s_assert_cond("true", F, false);
    s_assert_cond("true", C, false);
    s_assert_cond("github.ref == 'refs/heads/main'", S, true);
    s_assert_cond("github.ref == 'refs/heads/next'", S, false);
    s_assert_cond("'non-empty'", S, true);
    s_assert_cond("env.EMPTY", S, false);
    s_assert_cond("", S, true); /* no condition at all */
    s_assert_cond("  ", F, false);
    /* a status function turns the implicit success() off */
    s_assert_cond("always()", F, true);
    s_assert_cond("always()", C, true);
    s_assert_cond("failure()", F, true);
    s_assert_cond("failure()", S, false);
    s_assert_cond("failure() && github.actor == 'octocat'", F, true);
    s_assert_cond("failure() && github.actor == 'nobody'", F, false);
    s_assert_cond("cancelled()", C, true);
    s_assert_cond("!cancelled()", F, true);
    s_assert_cond("success() || failure()", F, true);
    s_assert_cond("success() || failure()", C, false);
    /* with the ${{ }} around it */
    s_assert_cond("${{ failure() }}", F, true);
    s_assert_cond("  ${{ github.actor == 'octocat' }}  ", S, true);
    s_assert_cond("${{ true }}", F, false);
    /* text around ${{ }} makes a string, truthy unless empty (GitHub's
     * format() behaviour) */
    s_assert_cond("${{ false }} || false", S, true);
    s_assert_cond("${{ env.EMPTY }}${{ env.EMPTY }}", S, false);
    s_assert_cond("${{ false }} && x", F, false);
    /* an unevaluated right side cannot fail, but syntax is always checked */
    s_assert_cond("fromJSON('[')", F, false);
    s_env.status = F;
    assert_int_equal(kiln_expr_condition("contains(", &s_env, &got, err, sizeof err), KILN_EINVAL);
    assert_string_equal(err, "column 10: unexpected end of expression");
    assert_false(got);
    s_env.status = S;
    assert_int_equal(kiln_expr_condition("fromJSON('[')", &s_env, &got, err, sizeof err),
                     KILN_EINVAL);
    assert_string_equal(err, "column 1: fromJSON: invalid JSON at offset 1: ']' expected near end "
                             "of file");
    assert_int_equal(kiln_expr_condition("${{ 1 == }}", &s_env, &got, err, sizeof err),
                     KILN_EINVAL);
    assert_string_equal(err, "column 9: unexpected end of expression");
    /* no env: status success, no contexts */
    assert_int_equal(kiln_expr_condition("github.ref == null", NULL, &got, err, sizeof err), 0);
    assert_true(got);
}

static void s_assert_interp(const char *text, const char *want)
{
    char *got = NULL, err[512] = "";
    int rc = kiln_expr_interpolate(text, &s_env, &got, err, sizeof err);
    if (rc != 0)
        fail_msg("%s: unexpected error %d: %s", text, rc, err);
    assert_string_equal(got, want);
    free(got);
}

static void s_assert_interp_err(const char *text, const char *want)
{
    char *got = NULL, err[512] = "";
    int rc = kiln_expr_interpolate(text, &s_env, &got, err, sizeof err);
    assert_null(got);
    if (rc != KILN_EINVAL || strcmp(err, want) != 0)
        fail_msg("%s: got %d [%s], want [%s]", text, rc, err, want);
}

static void test_interpolate(void **state)
{
    (void)state;
    s_assert_interp("Hello ${{ github.actor }}, on ${{ github.ref }}!",
                    "Hello octocat, on refs/heads/main!");
    s_assert_interp("no expressions here", "no expressions here");
    s_assert_interp("", "");
    s_assert_interp("${{1}}${{ 'a' }}${{ true }}${{ null }}|", "1atrue|");
    s_assert_interp("${{ '}}' }} and ${{ 'it''s' }}", "}} and it's");
    s_assert_interp("$ { { not one }} ${ {", "$ { { not one }} ${ {");
    s_assert_interp("v${{ matrix.node[0] }}-${{ 0.5 }}", "v14-0.5");
    s_assert_interp("${{ github.event.commits.*.author.name }}", "[\n  \"ann\",\n  \"bob\"\n]");
    s_assert_interp_err("echo ${{ foo.bar }}", "column 10: unknown context 'foo'");
    s_assert_interp_err("ok ${{ 1 }} then ${{ contains(1) }}",
                        "column 22: wrong number of arguments to 'contains': expected 2, got 1");
    s_assert_interp_err("abc ${{ 1", "column 5: unclosed '${{' (no matching '}}')");
    s_assert_interp_err("abc ${{ '}} ' ", "column 5: unclosed '${{' (no matching '}}')");
    s_assert_interp_err("x ${{   }}", "column 3: empty expression in '${{ }}'");
    s_assert_interp_err("${{ format('{3}') }}", "column 5: format: no argument for {3} (0 given)");
}

/* ------------------------------------------------------------- errors */

static const struct {
    const char *expr;
    int col;
    const char *msg;
} s_bad[] = {
    {"", 1, "empty expression"},
    {"   ", 1, "empty expression"},
    {"(1", 3, "unexpected end of expression"},
    {"1 == )", 6, "unexpected token ')'"},
    {"contains(github.ref, 'x'))", 26, "unexpected token ')'"},
    {"contain('a', 'b')", 1, "unknown function 'contain'"},
    {"github.ref && hashfile('x')", 15, "unknown function 'hashfile'"},
    {"1 && foo.bar", 6, "unknown context 'foo'"},
    {"! foo", 3, "unknown context 'foo'"},
    {"'abc", 1, "unterminated string"},
    {"github.ref == 'it''s", 15, "unterminated string"},
    {"1 = 2", 3, "unexpected character '='"},
    {"1 & 2", 3, "unexpected character '&'"},
    {"github.ref | 'x'", 12, "unexpected character '|'"},
    {"{", 1, "unexpected character '{'"},
    {"${{ 1 }}", 1, "unexpected character '$'"},
    {"github.$x", 8, "unexpected character '$'"},
    {"1.2.3", 1, "invalid number '1.2.3'"},
    {"0xfg", 1, "invalid number '0xfg'"},
    {"- 1", 1, "invalid number '-'"},
    {"1e999", 1, "number out of range '1e999'"},
    {"github.ref$", 8, "invalid name 'ref$'"},
    {"github..ref", 8, "unexpected token '.'"},
    {"github.event.5", 14, "unexpected token '5'"},
    {"github[0", 9, "unexpected end of expression"},
    {"github[*", 9, "unexpected end of expression"},
    {"github.*.*x", 11, "unexpected token 'x'"},
    {"* 1", 1, "unexpected token '*'"},
    {"success(1)", 1, "wrong number of arguments to 'success': expected none, got 1"},
    {"join()", 1, "wrong number of arguments to 'join': expected 1 or 2, got 0"},
    {"join(1, 2, 3)", 1, "wrong number of arguments to 'join': expected 1 or 2, got 3"},
    {"format()", 1, "wrong number of arguments to 'format': expected at least 1, got 0"},
    {"'x' || toJSON()", 8, "wrong number of arguments to 'toJSON': expected 1, got 0"},
    {"contains('a',)", 14, "unexpected token ')'"},
    {"toJSON('a' 'b')", 12, "unexpected token ''b''"},
    {"!", 2, "unexpected end of expression"},
    {"true false", 6, "unexpected token 'false'"},
    {"github.ref ==", 14, "unexpected end of expression"},
    {"'\xff'", 1, "invalid UTF-8 in string"},
    {"github.ref(1)", 11, "unexpected token '('"},
};

static void test_malformed(void **state)
{
    char want[512], err[256];
    (void)state;
    for (size_t i = 0; i < sizeof s_bad / sizeof s_bad[0]; i++) {
        int col = -1;
        snprintf(want, sizeof want, "column %d: %s", s_bad[i].col, s_bad[i].msg);
        s_assert_err(s_bad[i].expr, want);
        /* the lint entry point: the column apart, the message bare */
        err[0] = '\0';
        if (kiln_expr_check(s_bad[i].expr, &col, err, sizeof err) != KILN_EINVAL ||
            col != s_bad[i].col || strcmp(err, s_bad[i].msg) != 0)
            fail_msg("check %s: got col %d [%s]", s_bad[i].expr, col, err);
        assert_string_equal(kiln_error_last(), want);
    }
    /* a message that does not fit is cut, still terminated */
    {
        json_t *v = NULL;
        char small[12];
        assert_int_equal(kiln_expr_eval("nope", &s_env, &v, small, sizeof small), KILN_EINVAL);
        assert_string_equal(small, "column 1: u");
    }
}

static void test_check(void **state)
{
    int col = 0;
    char err[256] = "";
    (void)state;
    assert_int_equal(kiln_expr_check("github.ref == 'x' && contains(needs.*.result, 'failure')",
                                     &col, err, sizeof err),
                     0);
    assert_int_equal(kiln_expr_check("hashFiles('**/x')", NULL, NULL, 0), 0);
    assert_int_equal(kiln_expr_check("vars.X || inputs.y || jobs.j.result || runner.os || "
                                      "secrets.T || strategy.job-index || job.status",
                                      &col, err, sizeof err),
                     0);
    assert_int_equal(kiln_expr_check_template("run: ${{ github.ref }} and ${{ contain(1) }}", &col,
                                              err, sizeof err),
                     KILN_EINVAL);
    assert_int_equal(col, 32);
    assert_string_equal(err, "unknown function 'contain'");
    assert_int_equal(kiln_expr_check_template("no expressions", &col, err, sizeof err), 0);
    assert_int_equal(kiln_expr_check_template("${{ '}}' }} ${{ success() }}", &col, err, sizeof err), 0);
    assert_int_equal(kiln_expr_check_template("a ${{ 1 ", &col, err, sizeof err), KILN_EINVAL);
    assert_int_equal(col, 3);
    assert_string_equal(err, "unclosed '${{' (no matching '}}')");
    assert_int_equal(kiln_expr_check_template("ab${{}}", &col, err, sizeof err), KILN_EINVAL);
    assert_int_equal(col, 3);
    assert_string_equal(err, "empty expression in '${{ }}'");
    assert_int_equal(kiln_expr_check_template("x ${{ 1 == ) }}", &col, err, sizeof err), KILN_EINVAL);
    assert_int_equal(col, 12);
    assert_string_equal(err, "unexpected token ')'");
}

static void test_has_status_and_refers(void **state)
{
    (void)state;
    assert_true(kiln_expr_has_status_call("success() && github.ref == 'x'"));
    assert_true(kiln_expr_has_status_call("ALWAYS()"));
    assert_true(kiln_expr_has_status_call("github.x || !cancelled()"));
    assert_true(kiln_expr_has_status_call("contains(toJSON(failure()), 'x')"));
    assert_false(kiln_expr_has_status_call("github.ref == 'refs/heads/main'"));
    assert_false(kiln_expr_has_status_call("'failure()'"));     /* text in a string */
    assert_false(kiln_expr_has_status_call("github.failure")); /* a property */
    assert_false(kiln_expr_has_status_call("failure("));       /* does not parse */
    assert_true(kiln_expr_refers_to("needs.build.outputs.v", "needs"));
    assert_true(kiln_expr_refers_to("NEEDS.build.result == 'success'", "needs"));
    assert_true(kiln_expr_refers_to("github.ref == 'x' && contains(matrix.os, 'ubuntu')", "matrix"));
    assert_true(kiln_expr_refers_to("format('{0}', Matrix['os'])", "MATRIX"));
    assert_false(kiln_expr_refers_to("github.ref == 'x' && contains(matrix.os, 'ubuntu')", "needs"));
    assert_false(kiln_expr_refers_to("'needs.x'", "needs"));
    assert_false(kiln_expr_refers_to("github.needs", "needs"));
    assert_false(kiln_expr_refers_to("needs.", "needs")); /* does not parse */
}

/* ------------------------------------------------------------- limits */

static char *s_repeat(const char *head, const char *unit, size_t n, const char *tail)
{
    size_t hl = strlen(head), ul = strlen(unit), tl = strlen(tail);
    char *s = malloc(hl + ul * n + tl + 1), *o = s;
    assert_non_null(s);
    memcpy(o, head, hl);
    o += hl;
    for (size_t i = 0; i < n; i++, o += ul)
        memcpy(o, unit, ul);
    memcpy(o, tail, tl + 1);
    return s;
}

/* head, then open n times, mid, close n times: parses when err_col is 0,
 * else fails for its depth at err_col. */
static void s_assert_depth(const char *head, const char *open, size_t n, const char *mid,
                           const char *close, int err_col)
{
    char *front = s_repeat(head, open, n, mid), *s = s_repeat(front, close, n, ""), want[128];
    int col = 0;
    free(front);
    if (err_col == 0) {
        assert_int_equal(kiln_expr_check(s, &col, NULL, 0), 0);
    } else {
        snprintf(want, sizeof want, "column %d: expression nested too deeply (limit %d)", err_col,
                 KILN_EXPR_MAX_DEPTH);
        s_assert_err(s, want);
    }
    free(s);
}

static void test_limits(void **state)
{
    char *s, *t, *out = NULL, err[256];
    json_t *big, *v = NULL;
    (void)state;
    /* length: exactly the limit parses, one more byte does not */
    s = s_repeat("'", "a", KILN_EXPR_MAX_LEN - 2, "'");
    assert_int_equal(strlen(s), KILN_EXPR_MAX_LEN);
    assert_int_equal(kiln_expr_check(s, NULL, NULL, 0), 0);
    free(s);
    s = s_repeat("'", "a", KILN_EXPR_MAX_LEN - 1, "'");
    s_assert_err(s, "column 1: expression too long (more than 16384 bytes)");
    free(s);
    /* depth: parentheses, property chains, negations, calls */
    s_assert_depth("", "(", 64, "1", ")", 0);
    s = s_repeat("", "(", 64, "1");
    t = s_repeat(s, ")", 64, "");
    s_assert_str(t, "1");
    free(s);
    free(t);
    s_assert_depth("", "(", 65, "1", ")", 65);
    s_assert_depth("github", ".a", 63, "", "", 0);
    s_assert_depth("github", ".a", 64, "", "", 133); /* the 64th '.' makes it 65 deep */
    s_assert_depth("", "!", 63, "true", "", 0);
    s_assert_depth("", "!", 64, "true", "", 1);
    s_assert_depth("", "join(", 63, "1", ")", 0);
    s_assert_depth("", "join(", 64, "1", ")", 1); /* 64 calls over a literal: 65 deep */
    s_assert_depth("", "join(", 65, "1", ")", 321); /* the 65th call is one level too many */
    s_assert_depth("github", "[0]", 64, "", "", 196);
    /* a long && chain stays shallow */
    s = s_repeat("true", " && true", 2000, "");
    s_assert_bool(s, true);
    free(s);
    /* built strings are bounded */
    s = s_repeat("", "x", 600 * 1024, "");
    big = json_pack("{s:{s:s}}", "env", "BIG", s);
    assert_non_null(big);
    free(s);
    s_env.contexts = big;
    s_assert_str("format('{0}', env.BIG) == env.BIG", "true");
    s_assert_err("format('{0}{0}', env.BIG)", "column 1: format: result larger than 1048576 bytes");
    s_assert_err("join(fromJSON('[1, 2, 3]'), env.BIG)",
                 "column 1: join: result larger than 1048576 bytes");
    assert_int_equal(kiln_expr_interpolate("${{ env.BIG }}", &s_env, &out, err, sizeof err), 0);
    assert_int_equal(strlen(out), 600 * 1024);
    free(out);
    out = NULL;
    assert_int_equal(kiln_expr_interpolate("${{ env.BIG }}${{ env.BIG }}", &s_env, &out, err,
                                           sizeof err),
                     KILN_EINVAL);
    assert_null(out);
    assert_string_equal(err, "column 15: interpolation: result larger than 1048576 bytes");
    json_object_set_new(big, "matrix", json_pack("[oo]", json_incref(json_object_get(big, "env")),
                                                 json_incref(json_object_get(big, "env"))));
    assert_int_equal(kiln_expr_eval("toJSON(matrix)", &s_env, &v, err, sizeof err), KILN_EINVAL);
    assert_string_equal(err, "column 1: toJSON: result larger than 1048576 bytes");
    assert_null(kiln_expr_string(json_object_get(big, "matrix")));
    s_env.contexts = s_ctx;
    json_decref(big);
    /* a template longer than the result bound is refused whole */
    s = s_repeat("", "y", KILN_EXPR_MAX_RESULT + 1, "");
    assert_int_equal(kiln_expr_interpolate(s, &s_env, &out, err, sizeof err), KILN_EINVAL);
    assert_string_equal(err, "column 1: text too long (more than 1048576 bytes)");
    free(s);
}

static void test_env_null(void **state)
{
    json_t *v = NULL;
    char err[128];
    (void)state;
    assert_int_equal(kiln_expr_eval("github.ref", NULL, &v, err, sizeof err), 0);
    assert_true(json_is_null(v));
    json_decref(v);
    assert_int_equal(kiln_expr_eval("success() && !failure()", NULL, &v, err, sizeof err), 0);
    assert_true(json_is_true(v));
    json_decref(v);
    assert_int_equal(kiln_expr_eval("hashFiles('x')", NULL, &v, NULL, 0), KILN_EINVAL);
    assert_null(v);
}

/* An if: as written, with or without ${{ }}: found as the condition is
 * (a '}}' inside a string does not end it). */
static void test_condition_as_written(void **state)
{
    (void)state;
    int col = 0;
    char err[256];
    assert_int_equal(kiln_expr_check_condition("${{ always() && '}}' != 'x' }}", &col, err,
                                               sizeof err),
                     0);
    assert_true(kiln_expr_condition_has_status_call("${{ always() && '}}' != 'x' }}"));
    assert_true(kiln_expr_condition_has_status_call("  failure()  "));
    assert_false(kiln_expr_condition_has_status_call("${{ github.ref == 'main' }}"));
    assert_false(kiln_expr_condition_has_status_call("'always()'"));
    assert_int_equal(kiln_expr_check_condition("${{ 1 == }}", &col, err, sizeof err),
                     KILN_EINVAL);
    assert_true(col > 4); /* within the text as written, past the braces */
    assert_int_equal(kiln_expr_check_condition("github.ref ==", &col, err, sizeof err),
                     KILN_EINVAL);
    assert_int_equal(kiln_expr_check_condition("", &col, err, sizeof err), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_condition_as_written),
        cmocka_unit_test_setup(test_literals, s_reset),
        cmocka_unit_test_setup(test_number_format, s_reset),
        cmocka_unit_test_setup(test_string_forms, s_reset),
        cmocka_unit_test_setup(test_truthiness, s_reset),
        cmocka_unit_test_setup(test_coercion_table, s_reset),
        cmocka_unit_test_setup(test_nan, s_reset),
        cmocka_unit_test_setup(test_ordering, s_reset),
        cmocka_unit_test_setup(test_logical_operators, s_reset),
        cmocka_unit_test_setup(test_property_access, s_reset),
        cmocka_unit_test_setup(test_object_filters, s_reset),
        cmocka_unit_test_setup(test_contains_starts_ends, s_reset),
        cmocka_unit_test_setup(test_format, s_reset),
        cmocka_unit_test_setup(test_join, s_reset),
        cmocka_unit_test_setup(test_tojson_fromjson, s_reset),
        cmocka_unit_test_setup(test_hashfiles_host, s_reset),
        cmocka_unit_test_setup(test_status_functions, s_reset),
        cmocka_unit_test_setup(test_conditions, s_reset),
        cmocka_unit_test_setup(test_interpolate, s_reset),
        cmocka_unit_test_setup(test_malformed, s_reset),
        cmocka_unit_test_setup(test_check, s_reset),
        cmocka_unit_test_setup(test_has_status_and_refers, s_reset),
        cmocka_unit_test_setup(test_limits, s_reset),
        cmocka_unit_test_setup(test_env_null, s_reset),
    };
    return cmocka_run_group_tests_name("expr", tests, s_group_setup, s_group_teardown);
}
