/* template.c: expressions inside text (see expr_int.h for how the files
 * fit).
 *
 * Workflows write expressions as ${{ expr }} inside almost any string (run
 * scripts, env values, with: inputs, runs-on) and as if: conditions with or
 * without the braces. This file finds the spans, the way GitHub's reader
 * does (a "}}" inside a string literal never ends an expression), and
 * gives text its meaning: kiln_expr_interpolate replaces each span with its
 * value's string form, kiln_expr_value keeps the type of a value that is one
 * lone expression, and the if: functions apply GitHub's rules for
 * conditions (the implicit success() && (...), a condition with text around
 * its ${{ }} being a non-empty-string test). The lint checks of templates
 * and conditions, and the questions asked of a template without evaluating
 * it (does it call a status function, does it refer to a context), find
 * their expressions the same way, so lint and evaluation never disagree on
 * where an expression is.
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "lang/expr_int.h"

/* ---------------------------------------------------------------- spans */

/* One ${{ }} in a template: [start, end) is the whole of it, [expr,
 * expr+len) the trimmed text inside. */
typedef struct {
    size_t start, end, expr, len;
} s_span_t;

/* Finds the first ${{ at or after from in text[0..n). Its end is the first
 * "}}" outside a string literal (GitHub's reader toggles on every quote,
 * which handles '' too). 1 found, 0 none, -1 error. */
static int s_next_span(const char *text, size_t n, size_t from, s_span_t *sp, kiln_expr_err_t *e)
{
    const char *hit = from < n ? memmem(text + from, n - from, "${{", 3) : NULL;
    bool in_string = false;
    size_t i;
    if (!hit)
        return 0;
    sp->start = (size_t)(hit - text);
    for (i = sp->start + 3; i < n; i++) {
        if (text[i] == '\'')
            in_string = !in_string;
        else if (!in_string && text[i] == '}' && i + 1 < n && text[i + 1] == '}')
            break;
    }
    if (i >= n) {
        kiln_expr_fail(e, (int)sp->start + 1, "unclosed '${{' (no matching '}}')");
        return -1;
    }
    sp->end = i + 2;
    sp->expr = sp->start + 3;
    while (sp->expr < i && kiln_value_is_space(text[sp->expr]))
        sp->expr++;
    while (i > sp->expr && kiln_value_is_space(text[i - 1]))
        i--;
    sp->len = i - sp->expr;
    if (sp->len == 0) {
        kiln_expr_fail(e, (int)sp->start + 1, "empty expression in '${{ }}'");
        return -1;
    }
    return 1;
}

/* Parses every ${{ }} in text[from..to); *has_status: whether any calls a
 * status function. */
static int s_template_parse(const char *text, size_t from, size_t to, bool *has_status,
                            kiln_expr_err_t *e)
{
    s_span_t sp;
    int found;
    *has_status = false;
    while ((found = s_next_span(text, to, from, &sp, e)) == 1) {
        kiln_expr_ast_t ast = {0};
        int rc = kiln_expr_parse(text + sp.expr, sp.len, sp.expr, &ast, e);
        if (rc == 0 && kiln_expr_ast_has_status(&ast))
            *has_status = true;
        kiln_expr_ast_free(&ast);
        if (rc)
            return -1;
        from = sp.end;
    }
    return found;
}

/* Interpolates text[from..to) into b. */
static int s_interpolate(const char *text, size_t from, size_t to, const kiln_expr_env_t *env,
                         kiln_buf_t *b, kiln_expr_err_t *e)
{
    s_span_t sp;
    int found;
    while ((found = s_next_span(text, to, from, &sp, e)) == 1) {
        json_t *v = NULL;
        kiln_buf_add(b, text + from, sp.start - from);
        if (kiln_expr_run(text + sp.expr, sp.len, sp.expr, env, &v, NULL, e))
            return -1;
        kiln_value_append(b, v);
        json_decref(v);
        if (kiln_expr_buf_check(b, e, (int)sp.start + 1, "interpolation"))
            return -1;
        from = sp.end;
    }
    if (found < 0)
        return -1;
    kiln_buf_add(b, text + from, to - from);
    return kiln_expr_buf_check(b, e, (int)from + 1, "interpolation");
}

/* The length of a template text; an error in e past KILN_EXPR_MAX_RESULT. */
static size_t s_text_len(const char *text, kiln_expr_err_t *e)
{
    size_t len = strnlen(text, KILN_EXPR_MAX_RESULT + 1);
    if (len > KILN_EXPR_MAX_RESULT)
        kiln_expr_fail(e, 1, "text too long (more than %d bytes)", KILN_EXPR_MAX_RESULT);
    return len;
}

/* ------------------------------------------------------------ templates */

int kiln_expr_interpolate(const char *text, const kiln_expr_env_t *env, char **out, char *err,
                          size_t errlen)
{
    kiln_expr_err_t e = {0};
    kiln_buf_t b = {.max = KILN_EXPR_MAX_RESULT};
    size_t len;
    assert(text && out);
    *out = NULL;
    len = s_text_len(text, &e);
    if (e.set || s_interpolate(text, 0, len, env, &b, &e)) {
        free(b.data);
        return kiln_expr_report(&e, err, errlen);
    }
    *out = b.data ? b.data : strdup("");
    if (!*out) {
        kiln_expr_oom(&e, 1);
        return kiln_expr_report(&e, err, errlen);
    }
    return 0;
}

int kiln_expr_check_template(const char *text, int *col, char *err, size_t errlen)
{
    kiln_expr_err_t e = {0};
    bool has_status;
    size_t len;
    assert(text);
    len = s_text_len(text, &e);
    if (e.set || s_template_parse(text, 0, len, &has_status, &e) < 0)
        return kiln_expr_report_check(&e, col, err, errlen);
    return 0;
}

bool kiln_expr_template_refers_to(const char *text, const char *context)
{
    kiln_expr_err_t e = {0};
    s_span_t sp;
    size_t from = 0, n;
    if (!text)
        return false;
    n = strnlen(text, KILN_EXPR_MAX_RESULT + 1);
    while (s_next_span(text, n, from, &sp, &e) == 1) {
        char *inner = strndup(text + sp.expr, sp.len);
        bool hit = inner && kiln_expr_refers_to(inner, context);
        free(inner);
        if (hit)
            return true;
        from = sp.end;
    }
    return false;
}

int kiln_expr_value(const char *text, const kiln_expr_env_t *env, json_t **out, char *err,
                    size_t errlen)
{
    kiln_expr_err_t e = {0};
    s_span_t sp;
    size_t a = 0, z;
    assert(text && out);
    *out = NULL;
    z = s_text_len(text, &e);
    if (e.set)
        return kiln_expr_report(&e, err, errlen);
    while (a < z && kiln_value_is_space(text[a]))
        a++;
    while (z > a && kiln_value_is_space(text[z - 1]))
        z--;
    int found = s_next_span(text, z, a, &sp, &e);
    if (found < 0)
        return kiln_expr_report(&e, err, errlen);
    if (found == 1 && sp.start == a && sp.end == z) {
        /* The whole value is one expression: its value keeps its type
         * (a number of minutes, a boolean, the object fromJSON gives). */
        json_t *v = NULL;
        if (kiln_expr_run(text + sp.expr, sp.len, sp.expr, env, &v, NULL, &e))
            return kiln_expr_report(&e, err, errlen);
        *out = v ? v : json_null();
        return 0;
    }
    char *s = NULL;
    int rc = kiln_expr_interpolate(text, env, &s, err, errlen);
    if (rc != 0)
        return rc;
    *out = json_string(s);
    free(s);
    if (!*out) {
        kiln_expr_oom(&e, 1);
        return kiln_expr_report(&e, err, errlen);
    }
    return 0;
}

/* ----------------------------------------------------------------- if: */

/* The expression of an if: as written, the one way every if: function
 * finds it: the text inside a lone ${{ }}, or the whole text (blanks
 * around it aside). Returns 1 when the if: is a template with text around
 * or between its ${{ }} (then a string, as GitHub's format(); [*a, *z) is
 * the trimmed text), 0 with [*a, *z) the expression (empty: no condition),
 * or -1 on an error in e. */
static int s_condition_span(const char *cond, size_t *a, size_t *z, kiln_expr_err_t *e)
{
    s_span_t sp;
    *a = 0;
    *z = s_text_len(cond, e);
    if (e->set)
        return -1;
    while (*a < *z && kiln_value_is_space(cond[*a]))
        (*a)++;
    while (*z > *a && kiln_value_is_space(cond[*z - 1]))
        (*z)--;
    if (!memmem(cond + *a, *z - *a, "${{", 3))
        return 0;
    if (s_next_span(cond, *z, *a, &sp, e) < 0)
        return -1;
    if (sp.start != *a || sp.end != *z)
        return 1;
    *a = sp.expr;
    *z = sp.expr + sp.len;
    return 0;
}

int kiln_expr_condition(const char *cond, const kiln_expr_env_t *env, bool *out, char *err,
                        size_t errlen)
{
    const kiln_expr_env_t *en = env ? env : &kiln_expr_env_none;
    kiln_expr_err_t e = {0};
    json_t *v = NULL;
    kiln_buf_t b = {.max = KILN_EXPR_MAX_RESULT};
    size_t a, z;
    bool has_status = false;
    int rc = -1, kind;
    assert(cond && out);
    *out = false;
    kind = s_condition_span(cond, &a, &z, &e);
    if (kind < 0)
        goto cleanup;
    if (kind == 1) {
        /* text around or between ${{ }}: a string, as GitHub's format() */
        if (s_template_parse(cond, a, z, &has_status, &e) < 0)
            goto cleanup;
        if (!has_status && en->status != KILN_EXPR_SUCCESS) {
            rc = 0;
            goto cleanup;
        }
        if (s_interpolate(cond, a, z, en, &b, &e))
            goto cleanup;
        *out = b.len > 0;
        rc = 0;
        goto cleanup;
    }
    if (a == z) { /* no condition: success() */
        *out = en->status == KILN_EXPR_SUCCESS;
        rc = 0;
        goto cleanup;
    }
    if (kiln_expr_run(cond + a, z - a, a, en, &v, &has_status, &e))
        goto cleanup;
    *out = kiln_expr_truthy(v);
    rc = 0;
cleanup:
    json_decref(v);
    free(b.data);
    return rc ? kiln_expr_report(&e, err, errlen) : 0;
}

int kiln_expr_check_condition(const char *cond, int *col, char *err, size_t errlen)
{
    kiln_expr_err_t e = {0};
    kiln_expr_ast_t ast = {0};
    size_t a, z;
    int kind = s_condition_span(cond, &a, &z, &e);
    if (kind < 0)
        return kiln_expr_report_check(&e, col, err, errlen);
    if (kind == 1)
        return kiln_expr_check_template(cond, col, err, errlen);
    if (a == z)
        return 0;
    int rc = kiln_expr_parse(cond + a, z - a, a, &ast, &e);
    kiln_expr_ast_free(&ast);
    return rc ? kiln_expr_report_check(&e, col, err, errlen) : 0;
}

bool kiln_expr_condition_has_status_call(const char *cond)
{
    kiln_expr_err_t e = {0};
    kiln_expr_ast_t ast = {0};
    bool has = false;
    size_t a, z;
    int kind = s_condition_span(cond, &a, &z, &e);
    if (kind == 1)
        return s_template_parse(cond, 0, strlen(cond), &has, &e) == 0 && has;
    if (kind < 0 || a == z)
        return false;
    if (kiln_expr_parse(cond + a, z - a, a, &ast, &e) == 0)
        has = kiln_expr_ast_has_status(&ast);
    kiln_expr_ast_free(&ast);
    return has;
}
