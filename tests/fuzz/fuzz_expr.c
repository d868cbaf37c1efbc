/* fuzz_expr.c: libFuzzer target for the expression language.
 *
 * Feeds arbitrary bytes (up to the first NUL) as an expression to
 * kiln_expr_check and kiln_expr_eval, and as a template and an if: condition,
 * over a small fixed context with no hashFiles callback (so hashFiles() is
 * an error and never touches the disk). Besides "no crash, no leak, no sanitizer report", it checks what
 * callers rely on:
 *   - errors are KILN_EINVAL "column N: message" with N inside the text
 *     (1 .. length + 1);
 *   - a text the lint check rejects, evaluation rejects with the same error;
 *     one it accepts, evaluation either evaluates or fails at run time;
 *   - a value has a string form within the result bound;
 *   - a template the lint check rejects, interpolation rejects too.
 * Seeds: tests/fuzz/corpus/expr.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "lang/expr.h"

static const char s_context[] =
    "{\"github\": {\"ref\": \"refs/heads/main\", \"actor\": \"octocat\", \"event_name\": \"push\","
    "  \"event\": {\"commits\": [{\"message\": \"one\", \"id\": 1}, {\"message\": \"Two\"}, 3]}},"
    " \"env\": {\"CI\": \"true\", \"EMPTY\": \"\", \"N\": \"0x1f\"},"
    " \"matrix\": {\"os\": \"linux\", \"node\": [14, 16.5, null, true]},"
    " \"needs\": {\"build\": {\"result\": \"success\", \"outputs\": {\"json\": \"{\\\"a\\\": [1]}\"}}},"
    " \"steps\": {\"s-1\": {\"outputs\": {\"v\": \"7\"}}}}";

/* An error message must read "column N: ..." with N in [1, len + 1]. */
static void s_check_column(const char *err, size_t len)
{
    long col;
    char *end;
    if (strncmp(err, "column ", 7) != 0)
        abort();
    col = strtol(err + 7, &end, 10);
    if (col < 1 || (size_t)col > len + 1 || strncmp(end, ": ", 2) != 0 || end[2] == '\0')
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static json_t *ctx;
    kiln_expr_env_t env = {NULL, KILN_EXPR_SUCCESS, NULL, NULL};
    char cerr[512], eerr[512], want[600];
    char *text, *s, *interp = NULL;
    json_t *v = NULL;
    size_t len;
    int col = 0, crc, erc, trc, irc;
    bool b = false;
    if (!ctx) {
        json_error_t jerr;
        ctx = json_loads(s_context, 0, &jerr);
        if (!ctx)
            abort();
    }
    env.contexts = ctx;
    env.status = (kiln_expr_status_t)(size % 3);
    text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    len = strlen(text);

    /* an expression: check and eval agree */
    crc = kiln_expr_check(text, &col, cerr, sizeof cerr);
    erc = kiln_expr_eval(text, &env, &v, eerr, sizeof eerr);
    if ((crc != 0 && crc != KILN_EINVAL) || (erc != 0 && erc != KILN_EINVAL))
        abort();
    if (crc != 0) {
        snprintf(want, sizeof want, "column %d: %s", col, cerr);
        if (erc == 0 || v || strcmp(want, eerr) != 0 || col < 1 || (size_t)col > len + 1)
            abort();
        if (kiln_expr_has_status_call(text) || kiln_expr_refers_to(text, "github"))
            abort(); /* text that does not parse refers to nothing */
    }
    if (erc != 0) {
        if (v)
            abort();
        s_check_column(eerr, len);
    } else {
        if (!v || crc != 0)
            abort();
        s = kiln_expr_string(v);
        if (!s)
            abort(); /* nothing this small can exceed the result bound */
        free(s);
        (void)kiln_expr_truthy(v);
    }
    json_decref(v);

    /* a template: lint and interpolation agree */
    trc = kiln_expr_check_template(text, &col, cerr, sizeof cerr);
    irc = kiln_expr_interpolate(text, &env, &interp, eerr, sizeof eerr);
    if ((trc != 0 && trc != KILN_EINVAL) || (irc != 0 && irc != KILN_EINVAL))
        abort();
    if (trc != 0 && irc == 0)
        abort();
    if (irc != 0) {
        if (interp)
            abort();
        s_check_column(eerr, len);
    } else if (!interp || strlen(interp) > KILN_EXPR_MAX_RESULT) {
        abort();
    }
    free(interp);

    /* an if: condition */
    if (kiln_expr_condition(text, &env, &b, eerr, sizeof eerr) != 0)
        s_check_column(eerr, len);
    free(text);
    return 0;
}
