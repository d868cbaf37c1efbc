/* value.c: GitHub's values (see value.h): numbers read and printed as
 * GitHub reads and prints them, the string form, truthiness, the loose
 * comparisons, and toJSON's layout.
 *
 * Kept apart from the parser and the evaluator because these rules are the
 * ones users meet in every expression ('1' == 1, '' || 'x', toJSON of a
 * context) and the ones GitHub documents as tables: a reader checking Kiln
 * against those tables finds them all here, and nothing else.
 *
 * Known, documented deviations: case folding is ASCII only; objects and
 * arrays turn into their JSON (toJSON's layout) where GitHub would print
 * "Object" or "Array".
 */
#include "lang/value.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lang/expr.h"

/* ------------------------------------------------------- case folding */

int kiln_value_casecmp(const char *a, size_t an, const char *b, size_t bn)
{
    size_t n = an < bn ? an : bn;
    for (size_t i = 0; i < n; i++) {
        unsigned char x = kiln_value_upper((unsigned char)a[i]);
        unsigned char y = kiln_value_upper((unsigned char)b[i]);
        if (x != y)
            return x < y ? -1 : 1;
    }
    return an == bn ? 0 : (an < bn ? -1 : 1);
}

bool kiln_value_caseeq(const char *a, size_t an, const char *b, size_t bn)
{
    return an == bn && kiln_value_casecmp(a, an, b, bn) == 0;
}

/* ------------------------------------------------------------- numbers */

/* GitHub's string-to-number: surrounding whitespace ignored, empty -> 0,
 * decimal with optional sign, fraction and exponent (".5" and "5." too),
 * 0x hex and 0o octal. false means NaN. */
bool kiln_value_parse_number(const char *s, size_t n, double *out)
{
    char small[128];
    char *copy = small;
    size_t i = 0, digits = 0;
    bool ok = false;
    while (n && kiln_value_is_space(*s)) {
        s++;
        n--;
    }
    while (n && kiln_value_is_space(s[n - 1]))
        n--;
    if (n == 0) {
        *out = 0;
        return true;
    }
    if (n > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'o')) {
        unsigned base = s[1] == 'x' ? 16 : 8;
        uint64_t v = 0;
        for (i = 2; i < n; i++) {
            char c = s[i];
            unsigned d;
            if (c >= '0' && c <= '9')
                d = (unsigned)(c - '0');
            else if (base == 16 && c >= 'a' && c <= 'f')
                d = (unsigned)(c - 'a' + 10);
            else if (base == 16 && c >= 'A' && c <= 'F')
                d = (unsigned)(c - 'A' + 10);
            else
                return false;
            if (d >= base || v > (UINT64_MAX - d) / base)
                return false;
            v = v * base + d;
        }
        *out = (double)v;
        return true;
    }
    if (s[i] == '+' || s[i] == '-')
        i++;
    while (i < n && kiln_value_is_digit(s[i])) {
        i++;
        digits++;
    }
    if (i < n && s[i] == '.') {
        i++;
        while (i < n && kiln_value_is_digit(s[i])) {
            i++;
            digits++;
        }
    }
    if (digits == 0)
        return false;
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        size_t exp_digits = 0;
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        while (i < n && kiln_value_is_digit(s[i])) {
            i++;
            exp_digits++;
        }
        if (exp_digits == 0)
            return false;
    }
    if (i != n)
        return false;
    /* The syntax is checked; strtod only needs a terminated copy. */
    if (n >= sizeof small) {
        copy = malloc(n + 1);
        if (!copy)
            return false;
    }
    memcpy(copy, s, n);
    copy[n] = '\0';
    *out = strtod(copy, NULL);
    ok = true;
    if (copy != small)
        free(copy);
    return ok;
}

/* The number in GitHub's string form. Whole numbers print without ".0";
 * others print the shortest digits that read back to the same double, laid
 * out as JavaScript's Number#toString does (0.5, 1e+21, 1e-7). */
void kiln_value_format_number(double d, char out[KILN_VALUE_NUMBUF])
{
    char tmp[48], dig[24];
    char *o = out;
    int p, k = 0, e, n;
    const char *q;
    if (d != d) {
        strcpy(out, "NaN");
        return;
    }
    if (d > 1.7976931348623157e308 || d < -1.7976931348623157e308) {
        strcpy(out, d > 0 ? "Infinity" : "-Infinity");
        return;
    }
    if (d == 0) {
        strcpy(out, "0");
        return;
    }
    if (d < 0) {
        *o++ = '-';
        d = -d;
    }
    for (p = 1; p <= 17; p++) {
        snprintf(tmp, sizeof tmp, "%.*e", p - 1, d);
        if (strtod(tmp, NULL) == d)
            break;
    }
    for (q = tmp; *q && *q != 'e'; q++)
        if (kiln_value_is_digit(*q) && k < (int)sizeof dig)
            dig[k++] = *q;
    e = *q == 'e' ? atoi(q + 1) : 0;
    while (k > 1 && dig[k - 1] == '0')
        k--;
    n = e + 1; /* the decimal point goes after n digits */
    if (k <= n && n <= 21) {
        memcpy(o, dig, (size_t)k);
        o += k;
        for (int i = k; i < n; i++)
            *o++ = '0';
    } else if (0 < n && n <= 21) {
        memcpy(o, dig, (size_t)n);
        o += n;
        *o++ = '.';
        memcpy(o, dig + n, (size_t)(k - n));
        o += k - n;
    } else if (-6 < n && n <= 0) {
        *o++ = '0';
        *o++ = '.';
        for (int i = 0; i < -n; i++)
            *o++ = '0';
        memcpy(o, dig, (size_t)k);
        o += k;
    } else {
        *o++ = dig[0];
        if (k > 1) {
            *o++ = '.';
            memcpy(o, dig + 1, (size_t)(k - 1));
            o += k - 1;
        }
        o += snprintf(o, 8, "e%c%d", n - 1 >= 0 ? '+' : '-', n - 1 >= 0 ? n - 1 : 1 - n);
    }
    *o = '\0';
}

/* A JSON value for a finite number: an integer when whole and exactly
 * representable (so callers dumping it see 1, not 1.0), a real otherwise. */
json_t *kiln_value_number_json(double d)
{
    if (d >= -9007199254740992.0 && d <= 9007199254740992.0 && d == (double)(long long)d)
        return json_integer((json_int_t)d);
    return json_real(d);
}

double kiln_value_number_of(const json_t *v)
{
    double d = 0;
    switch (json_typeof(v)) {
    case JSON_NULL:
    case JSON_FALSE:
        return 0;
    case JSON_TRUE:
        return 1;
    case JSON_INTEGER:
        return (double)json_integer_value(v);
    case JSON_REAL:
        return json_real_value(v);
    case JSON_STRING:
        if (kiln_value_parse_number(json_string_value(v), json_string_length(v), &d))
            return d;
        return 0.0 / 0.0;
    default:
        return 0.0 / 0.0; /* arrays and objects */
    }
}

bool kiln_value_is_container(const json_t *v)
{
    return json_is_object(v) || json_is_array(v);
}

/* The string form of a primitive as (*p, *n), borrowed from v or held in
 * tmp. false for arrays and objects. */
bool kiln_value_prim_str(const json_t *v, char tmp[KILN_VALUE_NUMBUF], const char **p, size_t *n)
{
    switch (json_typeof(v)) {
    case JSON_NULL:
        *p = "";
        break;
    case JSON_TRUE:
        *p = "true";
        break;
    case JSON_FALSE:
        *p = "false";
        break;
    case JSON_INTEGER:
        snprintf(tmp, KILN_VALUE_NUMBUF, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        *p = tmp;
        break;
    case JSON_REAL:
        kiln_value_format_number(json_real_value(v), tmp);
        *p = tmp;
        break;
    case JSON_STRING:
        *p = json_string_value(v);
        *n = json_string_length(v);
        return true;
    default:
        return false;
    }
    *n = strlen(*p);
    return true;
}

/* ---------------------------------------------------- comparison rules */

typedef enum { S_K_NULL, S_K_BOOL, S_K_NUMBER, S_K_STRING, S_K_ARRAY, S_K_OBJECT } s_kind_t;

static s_kind_t s_kind(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_TRUE:
    case JSON_FALSE:
        return S_K_BOOL;
    case JSON_INTEGER:
    case JSON_REAL:
        return S_K_NUMBER;
    case JSON_STRING:
        return S_K_STRING;
    case JSON_ARRAY:
        return S_K_ARRAY;
    case JSON_OBJECT:
        return S_K_OBJECT;
    default:
        return S_K_NULL;
    }
}

/* GitHub's loose equality: same kinds compare directly (strings ignoring
 * case, arrays/objects by identity); different primitive kinds compare as
 * numbers; an array or object never equals another kind. NaN equals
 * nothing. */
bool kiln_value_equal(const json_t *a, const json_t *b)
{
    s_kind_t ka = s_kind(a), kb = s_kind(b);
    double x, y;
    if (ka == kb) {
        switch (ka) {
        case S_K_NULL:
            return true;
        case S_K_BOOL:
            return json_is_true(a) == json_is_true(b);
        case S_K_STRING:
            return kiln_value_caseeq(json_string_value(a), json_string_length(a),
                                     json_string_value(b), json_string_length(b));
        case S_K_ARRAY:
        case S_K_OBJECT:
            return a == b;
        case S_K_NUMBER:
            break;
        }
    } else if (ka >= S_K_ARRAY || kb >= S_K_ARRAY) {
        return false;
    }
    x = kiln_value_number_of(a);
    y = kiln_value_number_of(b);
    return x == y; /* false when either is NaN */
}

/* a > b under the same coercions: strings ignoring case, false < true,
 * anything involving NaN, null/null, arrays or objects is false. */
bool kiln_value_greater(const json_t *a, const json_t *b)
{
    s_kind_t ka = s_kind(a), kb = s_kind(b);
    if (ka == kb) {
        switch (ka) {
        case S_K_STRING:
            return kiln_value_casecmp(json_string_value(a), json_string_length(a),
                                      json_string_value(b), json_string_length(b)) > 0;
        case S_K_BOOL:
            return json_is_true(a) && !json_is_true(b);
        case S_K_NUMBER:
            break;
        default:
            return false;
        }
    } else if (ka >= S_K_ARRAY || kb >= S_K_ARRAY) {
        return false;
    }
    return kiln_value_number_of(a) > kiln_value_number_of(b);
}

bool kiln_expr_truthy(const json_t *v)
{
    double d;
    if (!v)
        return false;
    switch (json_typeof(v)) {
    case JSON_NULL:
    case JSON_FALSE:
        return false;
    case JSON_TRUE:
        return true;
    case JSON_INTEGER:
        return json_integer_value(v) != 0;
    case JSON_REAL:
        d = json_real_value(v);
        return d == d && d != 0;
    case JSON_STRING:
        return json_string_length(v) > 0;
    default:
        return true;
    }
}

/* ---------------------------------------------------------------- JSON */

static void s_json_indent(kiln_buf_t *b, int level)
{
    static const char spaces[] = "                                "; /* 32 */
    size_t n = (size_t)level * 2;
    while (n && !kiln_buf_failed(b)) {
        size_t k = n < sizeof spaces - 1 ? n : sizeof spaces - 1;
        kiln_buf_add(b, spaces, k);
        n -= k;
    }
}

/* toJSON's layout: Newtonsoft's indented JSON, two spaces, "key": value,
 * {} and [] when empty; numbers in the string form above. */
static void s_json_write(kiln_buf_t *b, const json_t *v, int level)
{
    char tmp[KILN_VALUE_NUMBUF];
    const char *p;
    size_t n, i = 0;
    if (kiln_buf_failed(b))
        return;
    if (level >= KILN_VALUE_JSON_DEPTH) {
        b->deep = true;
        return;
    }
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        if (json_object_size(v) == 0) {
            kiln_buf_str(b, "{}");
            return;
        }
        kiln_buf_str(b, "{\n");
        for (void *it = json_object_iter((json_t *)v); it && !kiln_buf_failed(b);
             it = json_object_iter_next((json_t *)v, it)) {
            s_json_indent(b, level + 1);
            kiln_buf_json_string(b, json_object_iter_key(it), json_object_iter_key_len(it));
            kiln_buf_str(b, ": ");
            s_json_write(b, json_object_iter_value(it), level + 1);
            kiln_buf_str(b, ++i < json_object_size(v) ? ",\n" : "\n");
        }
        s_json_indent(b, level);
        kiln_buf_str(b, "}");
        return;
    case JSON_ARRAY:
        if (json_array_size(v) == 0) {
            kiln_buf_str(b, "[]");
            return;
        }
        kiln_buf_str(b, "[\n");
        for (i = 0; i < json_array_size(v) && !kiln_buf_failed(b); i++) {
            s_json_indent(b, level + 1);
            s_json_write(b, json_array_get(v, i), level + 1);
            kiln_buf_str(b, i + 1 < json_array_size(v) ? ",\n" : "\n");
        }
        s_json_indent(b, level);
        kiln_buf_str(b, "]");
        return;
    case JSON_STRING:
        kiln_buf_json_string(b, json_string_value(v), json_string_length(v));
        return;
    case JSON_NULL:
        kiln_buf_str(b, "null");
        return;
    default:
        kiln_value_prim_str(v, tmp, &p, &n);
        kiln_buf_add(b, p, n);
        return;
    }
}

void kiln_value_append_json(kiln_buf_t *b, const json_t *v)
{
    s_json_write(b, v, 0);
}

void kiln_value_append(kiln_buf_t *b, const json_t *v)
{
    char tmp[KILN_VALUE_NUMBUF];
    const char *p;
    size_t n;
    if (kiln_value_prim_str(v, tmp, &p, &n))
        kiln_buf_add(b, p, n);
    else
        s_json_write(b, v, 0);
}

char *kiln_expr_string(const json_t *v)
{
    char tmp[KILN_VALUE_NUMBUF];
    const char *p;
    size_t n;
    char *out;
    kiln_buf_t b = {.max = KILN_EXPR_MAX_RESULT};
    if (!v)
        return strdup("");
    if (kiln_value_prim_str(v, tmp, &p, &n)) {
        /* a string keeps its full length: only built JSON is bounded */
        out = malloc(n + 1);
        if (out) {
            memcpy(out, p, n);
            out[n] = '\0';
        }
        return out;
    }
    s_json_write(&b, v, 0);
    if (kiln_buf_failed(&b)) {
        free(b.data);
        return NULL;
    }
    return b.data ? b.data : strdup("");
}
