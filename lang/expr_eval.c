/* expr_eval.c: evaluation of a parsed expression (see expr_int.h for how
 * the files fit).
 *
 * Walks the tree over jansson values, with GitHub's meanings from value.c:
 * && and || return an operand, comparisons coerce, a missing property is
 * null rather than an error, property names ignore case. Values produced
 * by an object filter (a.*, a[*]) carry a flag: indexing such a value
 * applies the index to each element and keeps what exists (GitHub's
 * FilteredArray), which is how a.*.b works. Every function is here too:
 * contains, startsWith, endsWith, format, join, toJSON, fromJSON, the
 * status functions, and hashFiles, which only hands its patterns to the
 * host (kiln_expr_env_t.hash_files) because lang/ reads no file.
 *
 * Recursion is bounded by the tree depth, which the parser capped; every
 * built string by KILN_EXPR_MAX_RESULT; an object filter's yield by
 * KILN_EXPR_MAX_FILTER.
 */
#include <assert.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "lang/expr_int.h"

const kiln_expr_env_t kiln_expr_env_none = {NULL, KILN_EXPR_SUCCESS, NULL, NULL};

/* Case-insensitive property lookup (GitHub's objects ignore case): the
 * exact key first, then a scan. Borrowed result or NULL. */
static json_t *s_object_get(const json_t *obj, const char *key, size_t len)
{
    json_t *v = json_object_getn(obj, key, len);
    if (v)
        return v;
    for (void *it = json_object_iter((json_t *)obj); it;
         it = json_object_iter_next((json_t *)obj, it)) {
        if (kiln_value_caseeq(json_object_iter_key(it), json_object_iter_key_len(it), key, len))
            return json_object_iter_value(it);
    }
    return NULL;
}

int kiln_expr_buf_check(const kiln_buf_t *b, kiln_expr_err_t *e, int col, const char *what)
{
    if (b->oom)
        return kiln_expr_oom(e, col);
    if (b->toobig) {
        kiln_expr_fail(e, col, "%s: result larger than %d bytes", what, KILN_EXPR_MAX_RESULT);
        return -1;
    }
    if (b->deep) {
        kiln_expr_fail(e, col, "%s: value nested deeper than %d levels", what,
                       KILN_VALUE_JSON_DEPTH);
        return -1;
    }
    return 0;
}

/* ----------------------------------------------------------- evaluation */

typedef struct {
    json_t *j;     /* owned reference; NULL only before a value is set */
    bool filtered; /* made by an object filter: indexing maps over it */
} s_val_t;

typedef struct {
    const kiln_expr_ast_t *ast;
    const kiln_expr_env_t *env;
    kiln_expr_err_t *err;
} s_eval_t;

static void s_drop(s_val_t *v)
{
    json_decref(v->j);
    v->j = NULL;
    v->filtered = false;
}

static int s_take(s_eval_t *ev, s_val_t *out, json_t *j, int col)
{
    if (!j)
        return kiln_expr_oom(ev->err, col);
    out->j = j;
    out->filtered = false;
    return 0;
}

static const kiln_expr_node_t *s_node(const s_eval_t *ev, int idx)
{
    return &ev->ast->nodes[idx];
}

static int s_eval(s_eval_t *ev, int idx, s_val_t *out);

/* What an index selects: a wildcard, a property name, an array position. */
typedef struct {
    bool wildcard;
    bool has_str;
    const char *str;
    size_t slen;
    bool has_int;
    size_t idx;
    char tmp[KILN_VALUE_NUMBUF];
} s_key_t;

/* GitHub's IndexHelper: a primitive names a property by its string form
 * and an array element by its number, floored, when that is >= 0. */
static void s_key_from(s_key_t *k, const json_t *v)
{
    double d;
    k->has_str = kiln_value_prim_str(v, k->tmp, &k->str, &k->slen);
    d = kiln_value_number_of(v);
    if (d == d && d >= 0 && d <= (double)INT_MAX) {
        k->has_int = true;
        k->idx = (size_t)d;
    }
}

static int s_filter_add(s_eval_t *ev, int col, json_t *arr, json_t *item)
{
    if (json_array_size(arr) >= KILN_EXPR_MAX_FILTER) {
        kiln_expr_fail(ev->err, col, "object filter yields more than %d values",
                       KILN_EXPR_MAX_FILTER);
        return -1;
    }
    return json_array_append(arr, item) ? kiln_expr_oom(ev->err, col) : 0;
}

/* Adds what key selects in item (an object or array) to arr. */
static int s_filter_item(s_eval_t *ev, int col, json_t *arr, json_t *item, const s_key_t *k)
{
    json_t *v;
    if (json_is_object(item)) {
        if (k->wildcard) {
            for (void *it = json_object_iter(item); it; it = json_object_iter_next(item, it))
                if (s_filter_add(ev, col, arr, json_object_iter_value(it)))
                    return -1;
        } else if (k->has_str && (v = s_object_get(item, k->str, k->slen))) {
            return s_filter_add(ev, col, arr, v);
        }
    } else if (json_is_array(item)) {
        if (k->wildcard) {
            for (size_t i = 0; i < json_array_size(item); i++)
                if (s_filter_add(ev, col, arr, json_array_get(item, i)))
                    return -1;
        } else if (k->has_int && k->idx < json_array_size(item)) {
            return s_filter_add(ev, col, arr, json_array_get(item, k->idx));
        }
    }
    return 0;
}

static int s_index(s_eval_t *ev, int col, const s_val_t *left, const s_key_t *k, s_val_t *out)
{
    json_t *l = left->j, *arr, *v = NULL;
    if (!kiln_value_is_container(l)) {
        if (!k->wildcard) /* a missing property is null, never an error */
            return s_take(ev, out, json_null(), col);
        if (s_take(ev, out, json_array(), col))
            return -1;
        out->filtered = true;
        return 0;
    }
    if (left->filtered || k->wildcard) {
        if (s_take(ev, out, json_array(), col))
            return -1;
        out->filtered = true;
        arr = out->j;
        if (!left->filtered) /* a.* : the values themselves */
            return s_filter_item(ev, col, arr, l, &(s_key_t){.wildcard = true});
        for (size_t i = 0; i < json_array_size(l); i++)
            if (s_filter_item(ev, col, arr, json_array_get(l, i), k))
                return -1;
        return 0;
    }
    if (json_is_object(l) && k->has_str)
        v = s_object_get(l, k->str, k->slen);
    else if (json_is_array(l) && k->has_int && k->idx < json_array_size(l))
        v = json_array_get(l, k->idx);
    return s_take(ev, out, v ? json_incref(v) : json_null(), col);
}

static int s_eval_index(s_eval_t *ev, const kiln_expr_node_t *n, s_val_t *out)
{
    s_val_t left = {0}, keyv = {0};
    s_key_t k;
    int rc = -1;
    memset(&k, 0, sizeof k);
    if (s_eval(ev, n->first, &left))
        goto cleanup;
    if (n->flag) {
        k.wildcard = true;
    } else if (n->text) {
        k.has_str = true;
        k.str = n->text;
        k.slen = n->len;
    } else {
        if (s_eval(ev, s_node(ev, n->first)->next, &keyv))
            goto cleanup;
        s_key_from(&k, keyv.j);
    }
    rc = s_index(ev, n->col, &left, &k, out);
cleanup:
    s_drop(&left);
    s_drop(&keyv);
    return rc;
}

static int s_eval_string(s_eval_t *ev, const kiln_expr_node_t *n, s_val_t *out)
{
    char *body = malloc(n->len + 1);
    size_t o = 0;
    int rc;
    if (!body)
        return kiln_expr_oom(ev->err, n->col);
    for (size_t i = 0; i < n->len; i++) {
        body[o++] = n->text[i];
        if (n->text[i] == '\'')
            i++; /* '' stands for one quote */
    }
    /* checked as UTF-8 by the lexer */
    rc = s_take(ev, out, json_stringn_nocheck(body, o), n->col);
    free(body);
    return rc;
}

/* Evaluates the children of a call into vals (n->n_child entries). */
static int s_eval_args(s_eval_t *ev, const kiln_expr_node_t *n, s_val_t *vals)
{
    int i = 0;
    for (int c = n->first; c >= 0; c = s_node(ev, c)->next)
        if (s_eval(ev, c, &vals[i++]))
            return -1;
    return 0;
}

/* Case-insensitive substring search; linear via memmem on folded copies. */
static int s_ci_contains(const char *h, size_t hn, const char *nd, size_t nn, bool *found)
{
    char *fh, *fn;
    *found = nn == 0;
    if (nn == 0 || nn > hn)
        return 0;
    fh = malloc(hn);
    fn = malloc(nn);
    if (!fh || !fn) {
        free(fh);
        free(fn);
        return -1;
    }
    for (size_t i = 0; i < hn; i++)
        fh[i] = (char)kiln_value_upper((unsigned char)h[i]);
    for (size_t i = 0; i < nn; i++)
        fn[i] = (char)kiln_value_upper((unsigned char)nd[i]);
    *found = memmem(fh, hn, fn, nn) != NULL;
    free(fh);
    free(fn);
    return 0;
}

static int s_fn_contains(s_eval_t *ev, const kiln_expr_node_t *n, s_val_t *out)
{
    s_val_t a = {0}, b = {0};
    char ta[KILN_VALUE_NUMBUF], tb[KILN_VALUE_NUMBUF];
    const char *pa, *pb;
    size_t na, nb;
    bool r = false;
    int rc = -1, item = s_node(ev, n->first)->next;
    if (s_eval(ev, n->first, &a))
        goto cleanup;
    if (kiln_value_prim_str(a.j, ta, &pa, &na)) {
        /* search a string (a primitive's string form) for the item's */
        if (s_eval(ev, item, &b))
            goto cleanup;
        if (kiln_value_prim_str(b.j, tb, &pb, &nb) && s_ci_contains(pa, na, pb, nb, &r)) {
            kiln_expr_oom(ev->err, n->col);
            goto cleanup;
        }
    } else if (json_is_array(a.j) && json_array_size(a.j) > 0) {
        if (s_eval(ev, item, &b))
            goto cleanup;
        for (size_t i = 0; i < json_array_size(a.j) && !r; i++)
            r = kiln_value_equal(json_array_get(a.j, i), b.j);
    }
    out->j = json_boolean(r);
    rc = 0;
cleanup:
    s_drop(&a);
    s_drop(&b);
    return rc;
}

static int s_fn_affix(s_eval_t *ev, const kiln_expr_node_t *n, bool starts, s_val_t *out)
{
    s_val_t v[2] = {{0}};
    char ta[KILN_VALUE_NUMBUF], tb[KILN_VALUE_NUMBUF];
    const char *pa, *pb;
    size_t na, nb;
    bool r = false;
    int rc = -1;
    if (s_eval_args(ev, n, v))
        goto cleanup;
    if (kiln_value_prim_str(v[0].j, ta, &pa, &na) && kiln_value_prim_str(v[1].j, tb, &pb, &nb) &&
        nb <= na)
        r = kiln_value_caseeq(starts ? pa : pa + na - nb, nb, pb, nb);
    out->j = json_boolean(r);
    rc = 0;
cleanup:
    s_drop(&v[0]);
    s_drop(&v[1]);
    return rc;
}

/* format('{0} and {1}', a, b): {N} is argument N's string form, {{ and }}
 * are literal braces; any other brace, or an N without an argument, is an
 * error (as on GitHub). */
static int s_fn_format(s_eval_t *ev, const kiln_expr_node_t *n, s_val_t *out)
{
    s_val_t *v = calloc((size_t)n->n_child, sizeof *v);
    kiln_buf_t fmt = {.max = KILN_EXPR_MAX_RESULT}, b = {.max = KILN_EXPR_MAX_RESULT};
    const char *f;
    size_t fl, i = 0;
    int rc = -1, n_args = n->n_child - 1;
    if (!v)
        return kiln_expr_oom(ev->err, n->col);
    if (s_eval_args(ev, n, v))
        goto cleanup;
    kiln_value_append(&fmt, v[0].j);
    if (kiln_expr_buf_check(&fmt, ev->err, n->col, "format"))
        goto cleanup;
    f = fmt.data ? fmt.data : "";
    fl = fmt.len;
    while (i < fl) {
        size_t run = i;
        while (run < fl && f[run] != '{' && f[run] != '}')
            run++;
        kiln_buf_add(&b, f + i, run - i);
        i = run;
        if (i >= fl)
            break;
        if (i + 1 < fl && f[i + 1] == f[i]) { /* {{ or }} */
            kiln_buf_add(&b, f + i, 1);
            i += 2;
        } else if (f[i] == '}') {
            kiln_expr_fail(ev->err, n->col,
                           "format: unmatched '}' at offset %zu of the format string", i);
            goto cleanup;
        } else {
            size_t j = i + 1;
            long idx = 0;
            while (j < fl && kiln_value_is_digit(f[j]) && j - i <= 9)
                idx = idx * 10 + (f[j++] - '0');
            if (j == i + 1 || j >= fl || f[j] != '}') {
                kiln_expr_fail(ev->err, n->col,
                               "format: invalid placeholder at offset %zu of the format string", i);
                goto cleanup;
            }
            if (idx >= n_args) {
                kiln_expr_fail(ev->err, n->col, "format: no argument for {%ld} (%d given)", idx,
                               n_args);
                goto cleanup;
            }
            kiln_value_append(&b, v[idx + 1].j);
            i = j + 1;
        }
        if (kiln_buf_failed(&b))
            break;
    }
    if (kiln_expr_buf_check(&b, ev->err, n->col, "format"))
        goto cleanup;
    rc = s_take(ev, out, json_stringn_nocheck(b.data ? b.data : "", b.len), n->col);
cleanup:
    for (int k = 0; k < n->n_child; k++)
        s_drop(&v[k]);
    free(v);
    free(fmt.data);
    free(b.data);
    return rc;
}

/* join(array, sep=','): the elements' string forms; a primitive is its own
 * string form; anything else is ''. */
static int s_fn_join(s_eval_t *ev, const kiln_expr_node_t *n, s_val_t *out)
{
    s_val_t a = {0}, sep = {0};
    kiln_buf_t b = {.max = KILN_EXPR_MAX_RESULT};
    char tmp[KILN_VALUE_NUMBUF];
    const char *sp = ",";
    size_t sn = 1;
    int rc = -1;
    if (s_eval(ev, n->first, &a))
        goto cleanup;
    if (json_is_array(a.j)) {
        size_t count = json_array_size(a.j);
        if (count > 1 && n->n_child > 1) {
            /* GitHub evaluates the separator only when it is needed */
            if (s_eval(ev, s_node(ev, n->first)->next, &sep))
                goto cleanup;
            if (!kiln_value_prim_str(sep.j, tmp, &sp, &sn)) {
                sp = ",";
                sn = 1;
            }
        }
        for (size_t i = 0; i < count && !kiln_buf_failed(&b); i++) {
            if (i)
                kiln_buf_add(&b, sp, sn);
            kiln_value_append(&b, json_array_get(a.j, i));
        }
    } else if (!json_is_object(a.j)) {
        kiln_value_append(&b, a.j);
    }
    if (kiln_expr_buf_check(&b, ev->err, n->col, "join"))
        goto cleanup;
    rc = s_take(ev, out, json_stringn_nocheck(b.data ? b.data : "", b.len), n->col);
cleanup:
    s_drop(&a);
    s_drop(&sep);
    free(b.data);
    return rc;
}

static int s_fn_tojson(s_eval_t *ev, const kiln_expr_node_t *n, s_val_t *out)
{
    s_val_t a = {0};
    kiln_buf_t b = {.max = KILN_EXPR_MAX_RESULT};
    int rc = -1;
    if (s_eval(ev, n->first, &a))
        goto cleanup;
    kiln_value_append_json(&b, a.j);
    if (kiln_expr_buf_check(&b, ev->err, n->col, "toJSON"))
        goto cleanup;
    rc = s_take(ev, out, json_stringn_nocheck(b.data, b.len), n->col);
cleanup:
    s_drop(&a);
    free(b.data);
    return rc;
}

/* Whole reals (fromJSON reads every number as a double, like GitHub) become
 * integers, so callers that dump the value see 1 rather than 1.0. */
static int s_normalize(json_t *v, int depth)
{
    json_t *item, *fixed;
    if (depth > KILN_VALUE_JSON_DEPTH)
        return 0;
    if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++) {
            item = json_array_get(v, i);
            if (json_is_real(item)) {
                if (!(fixed = kiln_value_number_json(json_real_value(item))) ||
                    json_array_set_new(v, i, fixed))
                    return -1;
            } else if (s_normalize(item, depth + 1)) {
                return -1;
            }
        }
    } else if (json_is_object(v)) {
        for (void *it = json_object_iter(v); it; it = json_object_iter_next(v, it)) {
            item = json_object_iter_value(it);
            if (json_is_real(item)) {
                if (!(fixed = kiln_value_number_json(json_real_value(item))) ||
                    json_object_iter_set_new(v, it, fixed))
                    return -1;
            } else if (s_normalize(item, depth + 1)) {
                return -1;
            }
        }
    }
    return 0;
}

static int s_fn_fromjson(s_eval_t *ev, const kiln_expr_node_t *n, s_val_t *out)
{
    s_val_t a = {0};
    char tmp[KILN_VALUE_NUMBUF];
    const char *p;
    size_t len;
    json_error_t jerr;
    json_t *v = NULL;
    int rc = -1;
    if (s_eval(ev, n->first, &a))
        goto cleanup;
    if (!kiln_value_prim_str(a.j, tmp, &p, &len)) {
        kiln_expr_fail(ev->err, n->col, "fromJSON: the argument is %s, not JSON text",
                       json_is_array(a.j) ? "an array" : "an object");
        goto cleanup;
    }
    v = json_loadb(p, len, JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL, &jerr);
    if (!v) {
        kiln_expr_fail(ev->err, n->col, "fromJSON: invalid JSON at offset %d: %s", jerr.position,
                       jerr.text);
        goto cleanup;
    }
    if (json_is_real(v)) {
        json_t *fixed = kiln_value_number_json(json_real_value(v));
        json_decref(v);
        v = fixed;
    }
    if (!v || s_normalize(v, 0)) {
        kiln_expr_oom(ev->err, n->col);
        goto cleanup;
    }
    out->j = v;
    v = NULL;
    rc = 0;
cleanup:
    json_decref(v);
    s_drop(&a);
    return rc;
}

/* hashFiles(pattern, ...): no file is read here (lang/ is pure). Each
 * argument's string form goes, in order, to the host's callback, which
 * gives the patterns their meaning (globs, '!' exclusions, the
 * --follow-symbolic-links flag) and reads the files; its hex digest (''
 * when nothing matches) is the value. Without a callback there is no
 * workspace to hash (the coordinator and the CLI have none): an error. */
static int s_fn_hashfiles(s_eval_t *ev, const kiln_expr_node_t *n, s_val_t *out)
{
    const kiln_expr_env_t *env = ev->env;
    size_t count = (size_t)n->n_child, i = 0;
    s_val_t *vals = NULL;
    char (*tmp)[KILN_VALUE_NUMBUF] = NULL;
    const char **patterns = NULL;
    size_t *lens = NULL;
    char hex[65] = "", msg[KILN_EXPR_MSG_MAX] = "";
    int rc = -1, hrc;
    if (!env->hash_files) {
        kiln_expr_fail(ev->err, n->col,
                       "hashFiles: no workspace (only available where a job runs)");
        return -1;
    }
    vals = calloc(count, sizeof *vals);
    tmp = calloc(count, sizeof *tmp);
    patterns = calloc(count, sizeof *patterns);
    lens = calloc(count, sizeof *lens);
    if (!vals || !tmp || !patterns || !lens) {
        kiln_expr_oom(ev->err, n->col);
        goto cleanup;
    }
    for (int c = n->first; c >= 0; c = s_node(ev, c)->next, i++) {
        if (s_eval(ev, c, &vals[i]))
            goto cleanup;
        if (!kiln_value_prim_str(vals[i].j, tmp[i], &patterns[i], &lens[i])) {
            kiln_expr_fail(ev->err, n->col, "hashFiles: a pattern must be a string");
            goto cleanup;
        }
    }
    hrc = env->hash_files(env->hash_ctx, patterns, lens, count, hex, msg, sizeof msg);
    if (hrc == -1) {
        kiln_expr_oom(ev->err, n->col);
        goto cleanup;
    }
    if (hrc != 0) {
        kiln_expr_fail(ev->err, n->col, "%s", msg[0] ? msg : "hashFiles: failed (no reason given)");
        goto cleanup;
    }
    hex[64] = '\0';
    rc = s_take(ev, out, json_string(hex), n->col);
cleanup:
    for (i = 0; vals && i < count; i++)
        s_drop(&vals[i]);
    free(vals);
    free(tmp);
    free(patterns);
    free(lens);
    return rc;
}

/* ------------------------------------------------------------ dispatch */

static int s_eval_call(s_eval_t *ev, const kiln_expr_node_t *n, s_val_t *out)
{
    kiln_expr_status_t st = ev->env->status;
    switch (n->fn) {
    case KILN_EXPR_F_SUCCESS: out->j = json_boolean(st == KILN_EXPR_SUCCESS); return 0;
    case KILN_EXPR_F_FAILURE: out->j = json_boolean(st == KILN_EXPR_FAILURE); return 0;
    case KILN_EXPR_F_CANCELLED: out->j = json_boolean(st == KILN_EXPR_CANCELLED); return 0;
    case KILN_EXPR_F_ALWAYS: out->j = json_true(); return 0;
    case KILN_EXPR_F_CONTAINS: return s_fn_contains(ev, n, out);
    case KILN_EXPR_F_STARTSWITH: return s_fn_affix(ev, n, true, out);
    case KILN_EXPR_F_ENDSWITH: return s_fn_affix(ev, n, false, out);
    case KILN_EXPR_F_FORMAT: return s_fn_format(ev, n, out);
    case KILN_EXPR_F_JOIN: return s_fn_join(ev, n, out);
    case KILN_EXPR_F_TOJSON: return s_fn_tojson(ev, n, out);
    case KILN_EXPR_F_FROMJSON: return s_fn_fromjson(ev, n, out);
    case KILN_EXPR_F_HASHFILES: return s_fn_hashfiles(ev, n, out);
    default: break;
    }
    kiln_expr_fail(ev->err, n->col, "internal error: function %d", n->fn);
    return -1;
}

/* Evaluates node idx into *out (a new reference). Recursion is bounded by
 * the tree depth, which the parser capped. */
static int s_eval(s_eval_t *ev, int idx, s_val_t *out)
{
    const kiln_expr_node_t *n = s_node(ev, idx);
    s_val_t a = {0}, b = {0};
    json_t *found;
    bool r = false;
    int rc = -1;
    out->j = NULL;
    out->filtered = false;
    switch (n->kind) {
    case KILN_EXPR_N_NULL:
        out->j = json_null();
        return 0;
    case KILN_EXPR_N_BOOL:
        out->j = json_boolean(n->flag);
        return 0;
    case KILN_EXPR_N_NUMBER:
        return s_take(ev, out, kiln_value_number_json(n->num), n->col);
    case KILN_EXPR_N_STRING:
        return s_eval_string(ev, n, out);
    case KILN_EXPR_N_CONTEXT:
        found = ev->env->contexts && json_is_object(ev->env->contexts)
                    ? s_object_get(ev->env->contexts, n->text, n->len)
                    : NULL;
        out->j = found ? json_incref(found) : json_null();
        return 0;
    case KILN_EXPR_N_INDEX:
        return s_eval_index(ev, n, out);
    case KILN_EXPR_N_CALL:
        return s_eval_call(ev, n, out);
    case KILN_EXPR_N_NOT:
        if (s_eval(ev, n->first, &a))
            return -1;
        out->j = json_boolean(!kiln_expr_truthy(a.j));
        s_drop(&a);
        return 0;
    case KILN_EXPR_N_AND:
    case KILN_EXPR_N_OR:
        /* the first operand that decides, itself: '' || 'x' is 'x' */
        for (int c = n->first; c >= 0; c = s_node(ev, c)->next) {
            bool t;
            s_drop(out);
            if (s_eval(ev, c, out))
                return -1;
            t = kiln_expr_truthy(out->j);
            if (n->kind == KILN_EXPR_N_AND ? !t : t)
                break;
        }
        return 0;
    case KILN_EXPR_N_CMP:
        if (s_eval(ev, n->first, &a) || s_eval(ev, s_node(ev, n->first)->next, &b))
            goto cleanup;
        switch (n->op) {
        case KILN_EXPR_T_EQ: r = kiln_value_equal(a.j, b.j); break;
        case KILN_EXPR_T_NE: r = !kiln_value_equal(a.j, b.j); break;
        case KILN_EXPR_T_LT: r = kiln_value_greater(b.j, a.j); break;
        case KILN_EXPR_T_LE: r = kiln_value_greater(b.j, a.j) || kiln_value_equal(a.j, b.j); break;
        case KILN_EXPR_T_GT: r = kiln_value_greater(a.j, b.j); break;
        default: r = kiln_value_greater(a.j, b.j) || kiln_value_equal(a.j, b.j); break;
        }
        out->j = json_boolean(r);
        rc = 0;
    cleanup:
        s_drop(&a);
        s_drop(&b);
        return rc;
    }
    return -1;
}

/* --------------------------------------------------------------- API */

int kiln_expr_run(const char *src, size_t len, size_t base, const kiln_expr_env_t *env,
                  json_t **out, bool *has_status, kiln_expr_err_t *e)
{
    kiln_expr_ast_t ast = {0};
    s_eval_t ev = {.ast = &ast, .env = env ? env : &kiln_expr_env_none, .err = e};
    s_val_t v = {0};
    int rc = -1;
    *out = NULL;
    if (kiln_expr_parse(src, len, base, &ast, e))
        goto cleanup;
    if (has_status) {
        /* an if: without a status function is success() && (...) */
        *has_status = kiln_expr_ast_has_status(&ast);
        if (!*has_status && ev.env->status != KILN_EXPR_SUCCESS) {
            *out = json_false();
            rc = 0;
            goto cleanup;
        }
    }
    rc = s_eval(&ev, ast.root, &v);
    if (rc)
        s_drop(&v);
    *out = v.j;
cleanup:
    kiln_expr_ast_free(&ast);
    return rc;
}

int kiln_expr_eval(const char *expr, const kiln_expr_env_t *env, json_t **out, char *err,
                   size_t errlen)
{
    kiln_expr_err_t e = {0};
    assert(expr && out);
    *out = NULL;
    if (kiln_expr_run(expr, strnlen(expr, KILN_EXPR_MAX_LEN + 1), 0, env, out, NULL, &e))
        return kiln_expr_report(&e, err, errlen);
    return 0;
}
