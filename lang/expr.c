/* expr.c: GitHub Actions expressions (see expr.h).
 *
 * Three stages, each bounded:
 *   lexer   on demand, one token of lookahead, so errors come out in the
 *           order they appear in the text. Whether '.' starts a number or a
 *           property access, and whether a name is a context, a function or a
 *           property, depends on the previous token, as in GitHub's lexer.
 *   parser  recursive descent into an AST held in one growable node array
 *           (children as index lists, so a realloc moves nothing that is
 *           pointed at). && and || are n-ary like GitHub's, so long chains
 *           stay shallow; everything else nests, and both the recursion and
 *           the tree depth are capped at KILN_EXPR_MAX_DEPTH. Unknown
 *           functions, wrong arity and unknown contexts are parse errors, as
 *           they are on GitHub, so `kiln lint` catches them.
 *   eval    walks the tree over jansson values. Values produced by an object
 *           filter (a.*, a[*]) carry a flag: indexing such a value applies the
 *           index to each element and keeps what exists (GitHub's
 *           FilteredArray), which is how a.*.b works.
 *
 * The conversions (number, string, truthiness, loose equality) follow the
 * tables of GitHub's "Expressions" page and the actions/runner sources they
 * describe. Known, documented deviations: case folding is ASCII only; the
 * literals NaN and Infinity (undocumented on GitHub) are not accepted; hex
 * (0x) and octal (0o) numbers may be any unsigned 64-bit value; objects and
 * arrays turn into their JSON where GitHub would print "Object"/"Array".
 */
#include "lang/expr.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "common/buf.h"
#include "common/error.h"

#define S_MSG 256           /* longest error message */
#define S_NUMBUF 64         /* string form of any number */
#define S_JSON_DEPTH 2048   /* JSON nesting we print (jansson parses as deep) */
#define S_GLOB_MAX 256      /* patterns one hashFiles() call may have */
#define S_GLOB_MAX_SEG 128  /* path segments in one pattern */
#define S_CHUNK (64 * 1024) /* read size when hashing */

/* ---------------------------------------------------------------- errors */

typedef struct {
    bool set;
    bool oom;          /* out of memory: reported as -1, not KILN_EINVAL */
    int col;           /* 1-based, within the caller's text */
    char msg[S_MSG];
} s_err_t;

static void s_fail(s_err_t *e, int col, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Records the first error only: later ones are consequences of it. */
static void s_fail(s_err_t *e, int col, const char *fmt, ...)
{
    va_list ap;
    if (e->set)
        return;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    e->col = col;
    e->set = true;
}

static int s_oom(s_err_t *e, int col)
{
    if (!e->set) {
        s_fail(e, col, "out of memory");
        e->oom = true;
    }
    return -1;
}

/* Copies "column N: msg" to err, stores it as the thread's last error, and
 * returns the code for it. */
static int s_report(const s_err_t *e, char *err, size_t errlen)
{
    kiln_error_set("column %d: %s", e->col, e->msg);
    if (err && errlen)
        snprintf(err, errlen, "column %d: %s", e->col, e->msg);
    return e->oom ? -1 : KILN_EINVAL;
}

/* Bytes as printable text for a message: at most 32, others as \xNN. */
static const char *s_show(const char *p, size_t n, char *out, size_t outlen)
{
    size_t o = 0;
    assert(outlen >= 160);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (i == 32) {
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        if (c >= 0x20 && c < 0x7f)
            out[o++] = (char)c;
        else
            o += (size_t)snprintf(out + o, outlen - o, "\\x%02x", c);
    }
    out[o] = '\0';
    return out;
}

/* -------------------------------------------------------- small helpers */

static bool s_is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static bool s_is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool s_is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* ASCII upper case: .NET's OrdinalIgnoreCase compares upper-cased chars. */
static unsigned char s_upper(unsigned char c)
{
    return (c >= 'a' && c <= 'z') ? (unsigned char)(c - 32) : c;
}

static int s_casecmp(const char *a, size_t an, const char *b, size_t bn)
{
    size_t n = an < bn ? an : bn;
    for (size_t i = 0; i < n; i++) {
        unsigned char x = s_upper((unsigned char)a[i]), y = s_upper((unsigned char)b[i]);
        if (x != y)
            return x < y ? -1 : 1;
    }
    return an == bn ? 0 : (an < bn ? -1 : 1);
}

static bool s_caseeq(const char *a, size_t an, const char *b, size_t bn)
{
    return an == bn && s_casecmp(a, an, b, bn) == 0;
}

/* Whether p[0..n) is well-formed UTF-8 (no overlongs, surrogates, > U+10FFFF). */
static bool s_utf8_ok(const unsigned char *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = p[i];
        size_t need;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xc2 && c <= 0xdf) {
            need = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            need = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            need = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (n - i - 1 < need)
            return false;
        for (size_t k = 1; k <= need; k++) {
            if ((p[i + k] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (p[i + k] & 0x3f);
        }
        if ((need == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
            (need == 3 && (cp < 0x10000 || cp > 0x10ffff)))
            return false;
        i += need + 1;
    }
    return true;
}

/* Case-insensitive property lookup (GitHub's objects ignore case): the
 * exact key first, then a scan. Borrowed result or NULL. */
static json_t *s_object_get(const json_t *obj, const char *key, size_t len)
{
    json_t *v = json_object_getn(obj, key, len);
    if (v)
        return v;
    for (void *it = json_object_iter((json_t *)obj); it;
         it = json_object_iter_next((json_t *)obj, it)) {
        if (s_caseeq(json_object_iter_key(it), json_object_iter_key_len(it), key, len))
            return json_object_iter_value(it);
    }
    return NULL;
}

/* ------------------------------------------------------------- numbers */

/* GitHub's string-to-number: surrounding whitespace ignored, empty -> 0,
 * decimal with optional sign, fraction and exponent (".5" and "5." too),
 * 0x hex and 0o octal. false means NaN. */
static bool s_parse_number(const char *s, size_t n, double *out)
{
    char small[128];
    char *copy = small;
    size_t i = 0, digits = 0;
    bool ok = false;
    while (n && s_is_space(*s)) {
        s++;
        n--;
    }
    while (n && s_is_space(s[n - 1]))
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
    while (i < n && s_is_digit(s[i])) {
        i++;
        digits++;
    }
    if (i < n && s[i] == '.') {
        i++;
        while (i < n && s_is_digit(s[i])) {
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
        while (i < n && s_is_digit(s[i])) {
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
static void s_format_number(double d, char out[S_NUMBUF])
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
        if (s_is_digit(*q) && k < (int)sizeof dig)
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
static json_t *s_number_json(double d)
{
    if (d >= -9007199254740992.0 && d <= 9007199254740992.0 && d == (double)(long long)d)
        return json_integer((json_int_t)d);
    return json_real(d);
}

static double s_number_of(const json_t *v)
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
        if (s_parse_number(json_string_value(v), json_string_length(v), &d))
            return d;
        return 0.0 / 0.0;
    default:
        return 0.0 / 0.0; /* arrays and objects */
    }
}

static bool s_is_container(const json_t *v)
{
    return json_is_object(v) || json_is_array(v);
}

/* The string form of a primitive as (*p, *n), borrowed from v or held in
 * tmp. false for arrays and objects. */
static bool s_prim_str(const json_t *v, char tmp[S_NUMBUF], const char **p, size_t *n)
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
        snprintf(tmp, S_NUMBUF, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        *p = tmp;
        break;
    case JSON_REAL:
        s_format_number(json_real_value(v), tmp);
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
static bool s_equal(const json_t *a, const json_t *b)
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
            return s_caseeq(json_string_value(a), json_string_length(a), json_string_value(b),
                            json_string_length(b));
        case S_K_ARRAY:
        case S_K_OBJECT:
            return a == b;
        case S_K_NUMBER:
            break;
        }
    } else if (ka >= S_K_ARRAY || kb >= S_K_ARRAY) {
        return false;
    }
    x = s_number_of(a);
    y = s_number_of(b);
    return x == y; /* false when either is NaN */
}

/* a > b under the same coercions: strings ignoring case, false < true,
 * anything involving NaN, null/null, arrays or objects is false. */
static bool s_greater(const json_t *a, const json_t *b)
{
    s_kind_t ka = s_kind(a), kb = s_kind(b);
    if (ka == kb) {
        switch (ka) {
        case S_K_STRING:
            return s_casecmp(json_string_value(a), json_string_length(a), json_string_value(b),
                             json_string_length(b)) > 0;
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
    return s_number_of(a) > s_number_of(b);
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

/* ------------------------------------------------------ bounded buffer */

typedef kiln_buf_t s_buf_t;

/* Turns a failed buffer into an error naming what was built. */
static int s_buf_check(const s_buf_t *b, s_err_t *e, int col, const char *what)
{
    if (b->oom)
        return s_oom(e, col);
    if (b->toobig) {
        s_fail(e, col, "%s: result larger than %d bytes", what, KILN_EXPR_MAX_RESULT);
        return -1;
    }
    if (b->deep) {
        s_fail(e, col, "%s: value nested deeper than %d levels", what, S_JSON_DEPTH);
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- JSON */

static void s_json_indent(s_buf_t *b, int level)
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
static void s_json_write(s_buf_t *b, const json_t *v, int level)
{
    char tmp[S_NUMBUF];
    const char *p;
    size_t n, i = 0;
    if (kiln_buf_failed(b))
        return;
    if (level >= S_JSON_DEPTH) {
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
        s_prim_str(v, tmp, &p, &n);
        kiln_buf_add(b, p, n);
        return;
    }
}

/* Appends GitHub's string form of v. */
static void s_buf_form(s_buf_t *b, const json_t *v)
{
    char tmp[S_NUMBUF];
    const char *p;
    size_t n;
    if (s_prim_str(v, tmp, &p, &n))
        kiln_buf_add(b, p, n);
    else
        s_json_write(b, v, 0);
}

char *kiln_expr_string(const json_t *v)
{
    char tmp[S_NUMBUF];
    const char *p;
    size_t n;
    char *out;
    s_buf_t b = {.max = KILN_EXPR_MAX_RESULT};
    if (!v)
        return strdup("");
    if (s_prim_str(v, tmp, &p, &n)) {
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

/* ---------------------------------------------------------------- lexer */

typedef enum {
    T_END,  /* also "no previous token" */
    T_ERROR,
    T_LPAREN, T_RPAREN, T_LBRACKET, T_RBRACKET, T_COMMA, T_DOT, T_STAR,
    T_NOT, T_EQ, T_NE, T_LT, T_LE, T_GT, T_GE, T_AND, T_OR,
    T_NUMBER, T_STRING, T_TRUE, T_FALSE, T_NULL,
    T_NAME, /* a context */
    T_FUNC, /* a name followed by '(' */
    T_PROP, /* a name after '.' */
} s_tok_kind_t;

typedef struct {
    s_tok_kind_t kind;
    size_t pos, len; /* within the parser's src */
    double num;
} s_tok_t;

typedef enum {
    N_NULL, N_BOOL, N_NUMBER, N_STRING, N_CONTEXT, N_INDEX, N_NOT, N_AND, N_OR, N_CMP, N_CALL
} s_node_kind_t;

typedef struct {
    s_node_kind_t kind;
    int col;              /* caller-text column of the token that names the node */
    int first, last;      /* children, -1 when none */
    int next;             /* next sibling */
    int n_child;
    int depth;            /* 1 for a leaf */
    s_tok_kind_t op;      /* N_CMP: which comparison */
    int fn;               /* N_CALL: index in s_funcs */
    bool flag;            /* N_BOOL: the value; N_INDEX: a wildcard */
    double num;           /* N_NUMBER */
    const char *text;     /* N_STRING: body with '' escapes; N_CONTEXT: name; N_INDEX: .name */
    size_t len;
} s_node_t;

typedef struct {
    s_node_t *nodes;
    int n, cap;
    int root;
} s_ast_t;

typedef struct {
    const char *src;
    size_t len;
    size_t base;   /* offset of src within the caller's text, for columns */
    size_t pos;    /* lexer position */
    s_tok_t cur;
    int depth;     /* parser recursion */
    s_ast_t *ast;
    s_err_t *err;
} s_parser_t;

enum {
    F_CONTAINS, F_STARTSWITH, F_ENDSWITH, F_FORMAT, F_JOIN, F_TOJSON, F_FROMJSON, F_HASHFILES,
    F_SUCCESS, F_FAILURE, F_CANCELLED, F_ALWAYS
};

static const struct {
    const char *name;
    int min, max;
} s_funcs[] = {
    [F_CONTAINS] = {"contains", 2, 2},    [F_STARTSWITH] = {"startsWith", 2, 2},
    [F_ENDSWITH] = {"endsWith", 2, 2},    [F_FORMAT] = {"format", 1, INT_MAX},
    [F_JOIN] = {"join", 1, 2},            [F_TOJSON] = {"toJSON", 1, 1},
    [F_FROMJSON] = {"fromJSON", 1, 1},    [F_HASHFILES] = {"hashFiles", 1, INT_MAX},
    [F_SUCCESS] = {"success", 0, 0},      [F_FAILURE] = {"failure", 0, 0},
    [F_CANCELLED] = {"cancelled", 0, 0},  [F_ALWAYS] = {"always", 0, 0},
};

static const char *const s_contexts[] = {"github",  "env",      "vars",   "job",   "jobs",
                                         "steps",   "runner",   "secrets", "strategy",
                                         "matrix",  "needs",    "inputs"};

static int s_col(const s_parser_t *p, size_t pos)
{
    return (int)(p->base + pos + 1);
}

/* Characters that end a name or a number (GitHub's token boundaries). */
static bool s_boundary(char c)
{
    return s_is_space(c) || strchr("([)],.!><=&|", c) != NULL;
}

static int s_lex_error(s_parser_t *p, size_t pos, size_t len, const char *what)
{
    char show[160];
    s_fail(p->err, s_col(p, pos), "%s '%s'", what, s_show(p->src + pos, len, show, sizeof show));
    p->cur.kind = T_ERROR;
    return -1;
}

/* Reads the token at p->pos into p->cur. The token it replaces decides
 * what '.' and names mean. 0, or -1 with the error set (cur is T_ERROR). */
static int s_lex(s_parser_t *p)
{
    const char *s = p->src;
    size_t n = p->len, i, end;
    s_tok_kind_t prev = p->cur.kind;
    s_tok_t *t = &p->cur;
    char c;
    while (p->pos < n && s_is_space(s[p->pos]))
        p->pos++;
    i = p->pos;
    t->pos = i;
    t->len = 1;
    t->num = 0;
    if (i >= n) {
        t->kind = T_END;
        t->len = 0;
        return 0;
    }
    c = s[i];
    t->kind = T_ERROR; /* not known yet */
    switch (c) {
    case '(': t->kind = T_LPAREN; break;
    case ')': t->kind = T_RPAREN; break;
    case '[': t->kind = T_LBRACKET; break;
    case ']': t->kind = T_RBRACKET; break;
    case ',': t->kind = T_COMMA; break;
    case '*': t->kind = T_STAR; break;
    case '.':
        /* After an operator, '(', '[', ',' or at the start, '.' begins a
         * number (.5); anywhere else it is a property access. */
        if (!(prev == T_END || prev == T_COMMA || prev == T_LPAREN || prev == T_LBRACKET ||
              (prev >= T_NOT && prev <= T_OR)))
            t->kind = T_DOT;
        break;
    case '!':
        t->kind = T_NOT;
        if (i + 1 < n && s[i + 1] == '=') {
            t->kind = T_NE;
            t->len = 2;
        }
        break;
    case '=':
        if (i + 1 >= n || s[i + 1] != '=')
            return s_lex_error(p, i, 1, "unexpected character");
        t->kind = T_EQ;
        t->len = 2;
        break;
    case '<':
    case '>':
        t->kind = c == '<' ? T_LT : T_GT;
        if (i + 1 < n && s[i + 1] == '=') {
            t->kind = c == '<' ? T_LE : T_GE;
            t->len = 2;
        }
        break;
    case '&':
    case '|':
        if (i + 1 >= n || s[i + 1] != c)
            return s_lex_error(p, i, 1, "unexpected character");
        t->kind = c == '&' ? T_AND : T_OR;
        t->len = 2;
        break;
    case '\'':
        for (end = i + 1;; end++) {
            if (end >= n) {
                s_fail(p->err, s_col(p, i), "unterminated string");
                return -1;
            }
            if (s[end] == '\'') {
                if (end + 1 < n && s[end + 1] == '\'') {
                    end++;
                    continue;
                }
                break;
            }
        }
        if (!s_utf8_ok((const unsigned char *)s + i + 1, end - i - 1)) {
            s_fail(p->err, s_col(p, i), "invalid UTF-8 in string");
            return -1;
        }
        t->kind = T_STRING;
        t->len = end - i + 1;
        break;
    default:
        break;
    }
    if (t->kind == T_ERROR && (c == '.' || s_is_digit(c) || c == '-' || c == '+')) {
        for (end = i + 1; end < n && (!s_boundary(s[end]) || s[end] == '.'); end++)
            ;
        t->len = end - i;
        if (!s_parse_number(s + i, t->len, &t->num))
            return s_lex_error(p, i, t->len, "invalid number");
        if (t->num > 1.7976931348623157e308 || t->num < -1.7976931348623157e308)
            return s_lex_error(p, i, t->len, "number out of range");
        t->kind = T_NUMBER;
    } else if (t->kind == T_ERROR && (s_is_alpha(c) || c == '_')) {
        for (end = i + 1; end < n && !s_boundary(s[end]); end++)
            ;
        t->len = end - i;
        for (size_t k = i; k < end; k++)
            if (!s_is_alpha(s[k]) && !s_is_digit(s[k]) && s[k] != '_' && s[k] != '-')
                return s_lex_error(p, i, t->len, "invalid name");
        if (prev == T_DOT) {
            t->kind = T_PROP;
        } else if (t->len == 4 && !memcmp(s + i, "true", 4)) {
            t->kind = T_TRUE;
        } else if (t->len == 5 && !memcmp(s + i, "false", 5)) {
            t->kind = T_FALSE;
        } else if (t->len == 4 && !memcmp(s + i, "null", 4)) {
            t->kind = T_NULL;
        } else {
            size_t k = end;
            while (k < n && s_is_space(s[k]))
                k++;
            t->kind = k < n && s[k] == '(' ? T_FUNC : T_NAME;
        }
    } else if (t->kind == T_ERROR) {
        return s_lex_error(p, i, 1, "unexpected character");
    }
    p->pos = i + t->len;
    return 0;
}

/* --------------------------------------------------------------- parser */

static int s_node_new(s_parser_t *p, s_node_kind_t kind, size_t pos)
{
    s_ast_t *a = p->ast;
    s_node_t *nd;
    if (a->n == a->cap) {
        int cap = a->cap ? a->cap * 2 : 16;
        s_node_t *grown = realloc(a->nodes, (size_t)cap * sizeof *grown);
        if (!grown)
            return s_oom(p->err, s_col(p, pos));
        a->nodes = grown;
        a->cap = cap;
    }
    nd = &a->nodes[a->n];
    memset(nd, 0, sizeof *nd);
    nd->kind = kind;
    nd->col = s_col(p, pos);
    nd->first = nd->last = nd->next = -1;
    nd->depth = 1;
    return a->n++;
}

/* Appends child to parent; the tree may not grow deeper than the limit. */
static int s_node_add(s_parser_t *p, int parent, int child)
{
    s_node_t *pa = &p->ast->nodes[parent], *ch = &p->ast->nodes[child];
    if (pa->last < 0)
        pa->first = child;
    else
        p->ast->nodes[pa->last].next = child;
    pa->last = child;
    pa->n_child++;
    if (ch->depth + 1 > pa->depth)
        pa->depth = ch->depth + 1;
    if (pa->depth > KILN_EXPR_MAX_DEPTH) {
        s_fail(p->err, pa->col, "expression nested too deeply (limit %d)", KILN_EXPR_MAX_DEPTH);
        return -1;
    }
    return 0;
}

static int s_enter(s_parser_t *p, size_t pos)
{
    if (++p->depth > KILN_EXPR_MAX_DEPTH) {
        s_fail(p->err, s_col(p, pos), "expression nested too deeply (limit %d)",
               KILN_EXPR_MAX_DEPTH);
        return -1;
    }
    return 0;
}

static int s_unexpected(s_parser_t *p)
{
    char show[160];
    if (p->cur.kind == T_ERROR)
        return -1;
    if (p->cur.kind == T_END)
        s_fail(p->err, s_col(p, p->len), "unexpected end of expression");
    else
        s_fail(p->err, s_col(p, p->cur.pos), "unexpected token '%s'",
               s_show(p->src + p->cur.pos, p->cur.len, show, sizeof show));
    return -1;
}

static int s_expect(s_parser_t *p, s_tok_kind_t kind)
{
    if (p->cur.kind != kind)
        return s_unexpected(p);
    return s_lex(p);
}

static int s_parse_or(s_parser_t *p);

static int s_parse_call(s_parser_t *p)
{
    const s_tok_t name = p->cur;
    char show[160], want[48];
    int node, fn = -1, arg;
    const char *text = p->src + name.pos;
    for (size_t i = 0; i < sizeof s_funcs / sizeof s_funcs[0]; i++)
        if (s_caseeq(text, name.len, s_funcs[i].name, strlen(s_funcs[i].name)))
            fn = (int)i;
    if (fn < 0) {
        s_fail(p->err, s_col(p, name.pos), "unknown function '%s'",
               s_show(text, name.len, show, sizeof show));
        return -1;
    }
    if ((node = s_node_new(p, N_CALL, name.pos)) < 0)
        return -1;
    p->ast->nodes[node].fn = fn;
    if (s_lex(p) || s_expect(p, T_LPAREN) || s_enter(p, name.pos))
        return -1;
    if (p->cur.kind != T_RPAREN) {
        for (;;) {
            if ((arg = s_parse_or(p)) < 0 || s_node_add(p, node, arg))
                return -1;
            if (p->cur.kind != T_COMMA)
                break;
            if (s_lex(p))
                return -1;
        }
    }
    if (s_expect(p, T_RPAREN))
        return -1;
    p->depth--;
    arg = p->ast->nodes[node].n_child;
    if (arg < s_funcs[fn].min || arg > s_funcs[fn].max) {
        if (s_funcs[fn].max == 0)
            snprintf(want, sizeof want, "none");
        else if (s_funcs[fn].max == INT_MAX)
            snprintf(want, sizeof want, "at least %d", s_funcs[fn].min);
        else if (s_funcs[fn].min == s_funcs[fn].max)
            snprintf(want, sizeof want, "%d", s_funcs[fn].min);
        else
            snprintf(want, sizeof want, "%d or %d", s_funcs[fn].min, s_funcs[fn].max);
        s_fail(p->err, s_col(p, name.pos), "wrong number of arguments to '%s': expected %s, got %d",
               s_funcs[fn].name, want, arg);
        return -1;
    }
    return node;
}

static int s_parse_primary(s_parser_t *p)
{
    const s_tok_t t = p->cur;
    char show[160];
    int node = -1;
    switch (t.kind) {
    case T_NUMBER:
        if ((node = s_node_new(p, N_NUMBER, t.pos)) < 0)
            return -1;
        p->ast->nodes[node].num = t.num;
        break;
    case T_STRING:
        if ((node = s_node_new(p, N_STRING, t.pos)) < 0)
            return -1;
        p->ast->nodes[node].text = p->src + t.pos + 1;
        p->ast->nodes[node].len = t.len - 2;
        break;
    case T_TRUE:
    case T_FALSE:
        if ((node = s_node_new(p, N_BOOL, t.pos)) < 0)
            return -1;
        p->ast->nodes[node].flag = t.kind == T_TRUE;
        break;
    case T_NULL:
        if ((node = s_node_new(p, N_NULL, t.pos)) < 0)
            return -1;
        break;
    case T_NAME: {
        bool known = false;
        for (size_t i = 0; i < sizeof s_contexts / sizeof s_contexts[0]; i++)
            known = known || s_caseeq(p->src + t.pos, t.len, s_contexts[i], strlen(s_contexts[i]));
        if (!known) {
            s_fail(p->err, s_col(p, t.pos), "unknown context '%s'",
                   s_show(p->src + t.pos, t.len, show, sizeof show));
            return -1;
        }
        if ((node = s_node_new(p, N_CONTEXT, t.pos)) < 0)
            return -1;
        p->ast->nodes[node].text = p->src + t.pos;
        p->ast->nodes[node].len = t.len;
        break;
    }
    case T_FUNC:
        return s_parse_call(p);
    case T_LPAREN:
        if (s_enter(p, t.pos) || s_lex(p) || (node = s_parse_or(p)) < 0 || s_expect(p, T_RPAREN))
            return -1;
        p->depth--;
        return node;
    default:
        return s_unexpected(p);
    }
    return s_lex(p) ? -1 : node;
}

/* primary ( '.' name | '.' '*' | '[' expr ']' | '[' '*' ']' )* */
static int s_parse_postfix(s_parser_t *p)
{
    int left = s_parse_primary(p);
    while (left >= 0 && (p->cur.kind == T_DOT || p->cur.kind == T_LBRACKET)) {
        const s_tok_t op = p->cur;
        int node = s_node_new(p, N_INDEX, op.pos), key;
        if (node < 0 || s_node_add(p, node, left) || s_lex(p))
            return -1;
        if (op.kind == T_DOT) {
            if (p->cur.kind == T_PROP) {
                p->ast->nodes[node].text = p->src + p->cur.pos;
                p->ast->nodes[node].len = p->cur.len;
            } else if (p->cur.kind == T_STAR) {
                p->ast->nodes[node].flag = true;
            } else {
                return s_unexpected(p);
            }
            if (s_lex(p))
                return -1;
        } else {
            if (s_enter(p, op.pos))
                return -1;
            if (p->cur.kind == T_STAR) {
                p->ast->nodes[node].flag = true;
                if (s_lex(p))
                    return -1;
            } else if ((key = s_parse_or(p)) < 0 || s_node_add(p, node, key)) {
                return -1;
            }
            if (s_expect(p, T_RBRACKET))
                return -1;
            p->depth--;
        }
        left = node;
    }
    return left;
}

static int s_parse_unary(s_parser_t *p)
{
    const s_tok_t op = p->cur;
    int node, child;
    if (op.kind != T_NOT)
        return s_parse_postfix(p);
    if ((node = s_node_new(p, N_NOT, op.pos)) < 0 || s_enter(p, op.pos) || s_lex(p) ||
        (child = s_parse_unary(p)) < 0 || s_node_add(p, node, child))
        return -1;
    p->depth--;
    return node;
}

/* Left-associative binary levels: comparisons, then equality. */
static int s_parse_binary(s_parser_t *p, bool equality)
{
    int left = equality ? s_parse_binary(p, false) : s_parse_unary(p);
    for (;;) {
        const s_tok_t op = p->cur;
        int node, right;
        bool mine = equality ? (op.kind == T_EQ || op.kind == T_NE)
                             : (op.kind >= T_LT && op.kind <= T_GE);
        if (left < 0 || !mine)
            return left;
        if ((node = s_node_new(p, N_CMP, op.pos)) < 0 || s_lex(p))
            return -1;
        p->ast->nodes[node].op = op.kind;
        right = equality ? s_parse_binary(p, false) : s_parse_unary(p);
        if (right < 0 || s_node_add(p, node, left) || s_node_add(p, node, right))
            return -1;
        left = node;
    }
}

/* n-ary && (and_level true) or ||. */
static int s_parse_logical(s_parser_t *p, bool and_level)
{
    s_tok_kind_t kind = and_level ? T_AND : T_OR;
    int left = and_level ? s_parse_binary(p, true) : s_parse_logical(p, true), node;
    if (left < 0 || p->cur.kind != kind)
        return left;
    if ((node = s_node_new(p, and_level ? N_AND : N_OR, p->cur.pos)) < 0 ||
        s_node_add(p, node, left))
        return -1;
    while (p->cur.kind == kind) {
        int right;
        if (s_lex(p))
            return -1;
        right = and_level ? s_parse_binary(p, true) : s_parse_logical(p, true);
        if (right < 0 || s_node_add(p, node, right))
            return -1;
    }
    return node;
}

static int s_parse_or(s_parser_t *p)
{
    return s_parse_logical(p, false);
}

/* Parses src[0..len) into ast. base: offset of src within the caller's text
 * (columns are reported within that text). 0, or -1 with err set. */
static int s_parse(const char *src, size_t len, size_t base, s_ast_t *ast, s_err_t *err)
{
    s_parser_t p = {.src = src, .len = len, .base = base, .ast = ast, .err = err};
    size_t i = 0;
    ast->root = -1;
    if (len > KILN_EXPR_MAX_LEN) {
        s_fail(err, (int)base + 1, "expression too long (more than %d bytes)", KILN_EXPR_MAX_LEN);
        return -1;
    }
    while (i < len && s_is_space(src[i]))
        i++;
    if (i == len) {
        s_fail(err, (int)base + 1, "empty expression");
        return -1;
    }
    p.cur.kind = T_END; /* no previous token */
    if (s_lex(&p) || (ast->root = s_parse_or(&p)) < 0)
        return -1;
    if (p.cur.kind != T_END)
        return s_unexpected(&p);
    return 0;
}

static void s_ast_free(s_ast_t *ast)
{
    free(ast->nodes);
    memset(ast, 0, sizeof *ast);
}

/* ----------------------------------------------------------- evaluation */

typedef struct {
    json_t *j;     /* owned reference; NULL only before a value is set */
    bool filtered; /* made by an object filter: indexing maps over it */
} s_val_t;

typedef struct {
    const s_ast_t *ast;
    const kiln_expr_env_t *env;
    s_err_t *err;
} s_eval_t;

static const kiln_expr_env_t s_no_env = {NULL, KILN_EXPR_SUCCESS, NULL};

static void s_drop(s_val_t *v)
{
    json_decref(v->j);
    v->j = NULL;
    v->filtered = false;
}

static int s_take(s_eval_t *ev, s_val_t *out, json_t *j, int col)
{
    if (!j)
        return s_oom(ev->err, col);
    out->j = j;
    out->filtered = false;
    return 0;
}

static const s_node_t *s_node(const s_eval_t *ev, int idx)
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
    char tmp[S_NUMBUF];
} s_key_t;

/* GitHub's IndexHelper: a primitive names a property by its string form
 * and an array element by its number, floored, when that is >= 0. */
static void s_key_from(s_key_t *k, const json_t *v)
{
    double d;
    k->has_str = s_prim_str(v, k->tmp, &k->str, &k->slen);
    d = s_number_of(v);
    if (d == d && d >= 0 && d <= (double)INT_MAX) {
        k->has_int = true;
        k->idx = (size_t)d;
    }
}

static int s_filter_add(s_eval_t *ev, int col, json_t *arr, json_t *item)
{
    if (json_array_size(arr) >= KILN_EXPR_MAX_FILTER) {
        s_fail(ev->err, col, "object filter yields more than %d values", KILN_EXPR_MAX_FILTER);
        return -1;
    }
    return json_array_append(arr, item) ? s_oom(ev->err, col) : 0;
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
    if (!s_is_container(l)) {
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

static int s_eval_index(s_eval_t *ev, const s_node_t *n, s_val_t *out)
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

static int s_eval_string(s_eval_t *ev, const s_node_t *n, s_val_t *out)
{
    char *body = malloc(n->len + 1);
    size_t o = 0;
    int rc;
    if (!body)
        return s_oom(ev->err, n->col);
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
static int s_eval_args(s_eval_t *ev, const s_node_t *n, s_val_t *vals)
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
        fh[i] = (char)s_upper((unsigned char)h[i]);
    for (size_t i = 0; i < nn; i++)
        fn[i] = (char)s_upper((unsigned char)nd[i]);
    *found = memmem(fh, hn, fn, nn) != NULL;
    free(fh);
    free(fn);
    return 0;
}

static int s_fn_contains(s_eval_t *ev, const s_node_t *n, s_val_t *out)
{
    s_val_t a = {0}, b = {0};
    char ta[S_NUMBUF], tb[S_NUMBUF];
    const char *pa, *pb;
    size_t na, nb;
    bool r = false;
    int rc = -1, item = s_node(ev, n->first)->next;
    if (s_eval(ev, n->first, &a))
        goto cleanup;
    if (s_prim_str(a.j, ta, &pa, &na)) {
        /* search a string (a primitive's string form) for the item's */
        if (s_eval(ev, item, &b))
            goto cleanup;
        if (s_prim_str(b.j, tb, &pb, &nb) && s_ci_contains(pa, na, pb, nb, &r)) {
            s_oom(ev->err, n->col);
            goto cleanup;
        }
    } else if (json_is_array(a.j) && json_array_size(a.j) > 0) {
        if (s_eval(ev, item, &b))
            goto cleanup;
        for (size_t i = 0; i < json_array_size(a.j) && !r; i++)
            r = s_equal(json_array_get(a.j, i), b.j);
    }
    out->j = json_boolean(r);
    rc = 0;
cleanup:
    s_drop(&a);
    s_drop(&b);
    return rc;
}

static int s_fn_affix(s_eval_t *ev, const s_node_t *n, bool starts, s_val_t *out)
{
    s_val_t v[2] = {{0}};
    char ta[S_NUMBUF], tb[S_NUMBUF];
    const char *pa, *pb;
    size_t na, nb;
    bool r = false;
    int rc = -1;
    if (s_eval_args(ev, n, v))
        goto cleanup;
    if (s_prim_str(v[0].j, ta, &pa, &na) && s_prim_str(v[1].j, tb, &pb, &nb) && nb <= na)
        r = s_caseeq(starts ? pa : pa + na - nb, nb, pb, nb);
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
static int s_fn_format(s_eval_t *ev, const s_node_t *n, s_val_t *out)
{
    s_val_t *v = calloc((size_t)n->n_child, sizeof *v);
    s_buf_t fmt = {.max = KILN_EXPR_MAX_RESULT}, b = {.max = KILN_EXPR_MAX_RESULT};
    const char *f;
    size_t fl, i = 0;
    int rc = -1, n_args = n->n_child - 1;
    if (!v)
        return s_oom(ev->err, n->col);
    if (s_eval_args(ev, n, v))
        goto cleanup;
    s_buf_form(&fmt, v[0].j);
    if (s_buf_check(&fmt, ev->err, n->col, "format"))
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
            s_fail(ev->err, n->col, "format: unmatched '}' at offset %zu of the format string", i);
            goto cleanup;
        } else {
            size_t j = i + 1;
            long idx = 0;
            while (j < fl && s_is_digit(f[j]) && j - i <= 9)
                idx = idx * 10 + (f[j++] - '0');
            if (j == i + 1 || j >= fl || f[j] != '}') {
                s_fail(ev->err, n->col, "format: invalid placeholder at offset %zu of the format string",
                       i);
                goto cleanup;
            }
            if (idx >= n_args) {
                s_fail(ev->err, n->col, "format: no argument for {%ld} (%d given)", idx, n_args);
                goto cleanup;
            }
            s_buf_form(&b, v[idx + 1].j);
            i = j + 1;
        }
        if (kiln_buf_failed(&b))
            break;
    }
    if (s_buf_check(&b, ev->err, n->col, "format"))
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
static int s_fn_join(s_eval_t *ev, const s_node_t *n, s_val_t *out)
{
    s_val_t a = {0}, sep = {0};
    s_buf_t b = {.max = KILN_EXPR_MAX_RESULT};
    char tmp[S_NUMBUF];
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
            if (!s_prim_str(sep.j, tmp, &sp, &sn)) {
                sp = ",";
                sn = 1;
            }
        }
        for (size_t i = 0; i < count && !kiln_buf_failed(&b); i++) {
            if (i)
                kiln_buf_add(&b, sp, sn);
            s_buf_form(&b, json_array_get(a.j, i));
        }
    } else if (!json_is_object(a.j)) {
        s_buf_form(&b, a.j);
    }
    if (s_buf_check(&b, ev->err, n->col, "join"))
        goto cleanup;
    rc = s_take(ev, out, json_stringn_nocheck(b.data ? b.data : "", b.len), n->col);
cleanup:
    s_drop(&a);
    s_drop(&sep);
    free(b.data);
    return rc;
}

static int s_fn_tojson(s_eval_t *ev, const s_node_t *n, s_val_t *out)
{
    s_val_t a = {0};
    s_buf_t b = {.max = KILN_EXPR_MAX_RESULT};
    int rc = -1;
    if (s_eval(ev, n->first, &a))
        goto cleanup;
    s_json_write(&b, a.j, 0);
    if (s_buf_check(&b, ev->err, n->col, "toJSON"))
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
    if (depth > S_JSON_DEPTH)
        return 0;
    if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++) {
            item = json_array_get(v, i);
            if (json_is_real(item)) {
                if (!(fixed = s_number_json(json_real_value(item))) ||
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
                if (!(fixed = s_number_json(json_real_value(item))) ||
                    json_object_iter_set_new(v, it, fixed))
                    return -1;
            } else if (s_normalize(item, depth + 1)) {
                return -1;
            }
        }
    }
    return 0;
}

static int s_fn_fromjson(s_eval_t *ev, const s_node_t *n, s_val_t *out)
{
    s_val_t a = {0};
    char tmp[S_NUMBUF];
    const char *p;
    size_t len;
    json_error_t jerr;
    json_t *v = NULL;
    int rc = -1;
    if (s_eval(ev, n->first, &a))
        goto cleanup;
    if (!s_prim_str(a.j, tmp, &p, &len)) {
        s_fail(ev->err, n->col, "fromJSON: the argument is %s, not JSON text",
               json_is_array(a.j) ? "an array" : "an object");
        goto cleanup;
    }
    v = json_loadb(p, len, JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL, &jerr);
    if (!v) {
        s_fail(ev->err, n->col, "fromJSON: invalid JSON at offset %d: %s", jerr.position, jerr.text);
        goto cleanup;
    }
    if (json_is_real(v)) {
        json_t *fixed = s_number_json(json_real_value(v));
        json_decref(v);
        v = fixed;
    }
    if (!v || s_normalize(v, 0)) {
        s_oom(ev->err, n->col);
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

/* ------------------------------------------------------------ hashFiles */

typedef struct {
    char *buf;                           /* the pattern's segments, NUL-separated */
    const char *seg[S_GLOB_MAX_SEG + 2]; /* + the implicit trailing "*" and "**" */
    size_t seglen[S_GLOB_MAX_SEG + 2];
    size_t n_seg;
    bool negate;
    bool dead; /* names something outside the workspace: matches nothing */
} s_glob_t;

typedef struct {
    char *rel;
    unsigned char digest[crypto_hash_sha256_BYTES];
} s_hashed_t;

typedef struct {
    s_glob_t globs[S_GLOB_MAX];
    size_t n_globs;
    bool follow;               /* --follow-symbolic-links */
    char ws_real[PATH_MAX];    /* realpath of the workspace, when following */
    s_hashed_t *files;
    size_t n_files, cap_files;
    size_t visited;
    long long bytes;
    char rel[PATH_MAX];        /* path of the entry being looked at, from the workspace */
    size_t rel_len;
    unsigned char *chunk;
    s_err_t *err;
    int col;
} s_hash_t;

/* Whether the glob unit at p[pi] matches byte c; *adv: the unit's length.
 * Units: '?', '\x', '[set]' ('!' or '^' negates, a-z ranges), a byte. */
static bool s_glob_unit(const char *p, size_t pn, size_t pi, unsigned char c, size_t *adv)
{
    if (p[pi] == '?') {
        *adv = 1;
        return true;
    }
    if (p[pi] == '\\' && pi + 1 < pn) {
        *adv = 2;
        return (unsigned char)p[pi + 1] == c;
    }
    if (p[pi] == '[') {
        size_t i = pi + 1, first;
        bool neg = false, hit = false;
        if (i < pn && (p[i] == '!' || p[i] == '^')) {
            neg = true;
            i++;
        }
        first = i;
        while (i < pn && (p[i] != ']' || i == first)) {
            unsigned char lo = (unsigned char)p[i], hi;
            if (lo == '\\' && i + 1 < pn)
                lo = (unsigned char)p[++i];
            hi = lo;
            if (i + 2 < pn && p[i + 1] == '-' && p[i + 2] != ']') {
                hi = (unsigned char)p[i + 2];
                i += 2;
            }
            if (c >= lo && c <= hi)
                hit = true;
            i++;
        }
        if (i < pn) {
            *adv = i + 1 - pi;
            return hit != neg;
        }
        /* no closing ']': a literal '[' */
    }
    *adv = 1;
    return (unsigned char)p[pi] == c;
}

/* One path segment against one glob segment; '*' never crosses '/' since
 * segments hold none. Dot files match '*' (@actions/glob's dot: true).
 * Linear backtracking on the last '*', so no pattern is exponential. */
static bool s_glob_segment(const char *p, size_t pn, const char *s, size_t sn)
{
    size_t pi = 0, si = 0, star_p = SIZE_MAX, star_s = 0, adv;
    while (si < sn) {
        if (pi < pn && p[pi] == '*') {
            star_p = ++pi;
            star_s = si;
            continue;
        }
        if (pi < pn && s_glob_unit(p, pn, pi, (unsigned char)s[si], &adv)) {
            pi += adv;
            si++;
            continue;
        }
        if (star_p == SIZE_MAX)
            return false;
        pi = star_p;
        si = ++star_s;
    }
    while (pi < pn && p[pi] == '*')
        pi++;
    return pi == pn;
}

static bool s_is_globstar(const s_glob_t *g, size_t i)
{
    return g->seglen[i] == 2 && g->seg[i][0] == '*' && g->seg[i][1] == '*';
}

/* The glob's segments against the path's; "**" matches any number of
 * segments, by the same last-star backtracking one level up. The implicit
 * trailing "**" makes a pattern match everything under a directory it
 * matches (@actions/glob's implicitDescendants). */
static bool s_glob_match(const s_glob_t *g, const char *const *seg, const size_t *len, size_t n)
{
    size_t pi = 0, si = 0, star_p = SIZE_MAX, star_s = 0;
    if (g->dead)
        return false;
    while (si < n) {
        if (pi < g->n_seg && s_is_globstar(g, pi)) {
            star_p = ++pi;
            star_s = si;
            continue;
        }
        if (pi < g->n_seg && s_glob_segment(g->seg[pi], g->seglen[pi], seg[si], len[si])) {
            pi++;
            si++;
            continue;
        }
        if (star_p == SIZE_MAX)
            return false;
        pi = star_p;
        si = ++star_s;
    }
    while (pi < g->n_seg && s_is_globstar(g, pi))
        pi++;
    return pi == g->n_seg;
}

/* Whether g might match something under the directory whose path has the
 * segments seg[0..n): its segments up to the first "**" must match the
 * directory's (conservative past that). Lets the walk skip node_modules
 * when the patterns only name package-lock.json. */
static bool s_glob_may_descend(const s_glob_t *g, const char *const *seg, const size_t *len,
                               size_t n)
{
    if (g->dead || g->negate)
        return false; /* only an including pattern can select a file */
    for (size_t i = 0; i < n && i < g->n_seg; i++) {
        if (s_is_globstar(g, i))
            return true;
        if (!s_glob_segment(g->seg[i], g->seglen[i], seg[i], len[i]))
            return false;
    }
    return true;
}

/* Adds the pattern line p[0..n) (trimmed, not empty, not a comment).
 * Patterns are relative to the workspace; an absolute one must lie inside
 * it; "." and ".." are resolved, and a pattern that climbs out is dead. */
static int s_glob_add(s_hash_t *h, const char *p, size_t n, const char *ws)
{
    s_glob_t *g;
    size_t wl = strlen(ws), i = 0, o = 0;
    bool dir_only;
    if (h->n_globs == S_GLOB_MAX) {
        s_fail(h->err, h->col, "hashFiles: more than %d patterns", S_GLOB_MAX);
        return -1;
    }
    g = &h->globs[h->n_globs];
    memset(g, 0, sizeof *g);
    while (i < n && p[i] == '!') {
        g->negate = !g->negate;
        i++;
    }
    p += i;
    n -= i;
    if (n == 0)
        return 0; /* a lone '!' names nothing */
    if (n >= PATH_MAX) {
        s_fail(h->err, h->col, "hashFiles: pattern longer than %d bytes", PATH_MAX - 1);
        return -1;
    }
    while (wl > 1 && ws[wl - 1] == '/')
        wl--;
    if (n && p[0] == '/') {
        if (n >= wl && !memcmp(p, ws, wl) && (n == wl || p[wl] == '/')) {
            p += wl;
            n -= wl;
        } else {
            g->dead = true;
        }
    }
    if (!(g->buf = malloc(n + 1)))
        return s_oom(h->err, h->col);
    h->n_globs++;
    dir_only = n > 0 && p[n - 1] == '/';
    for (i = 0; i <= n; i++) {
        size_t start = i, sl;
        while (i < n && p[i] != '/')
            i++;
        sl = i - start;
        if (sl == 0 || (sl == 1 && p[start] == '.'))
            continue;
        if (sl == 2 && p[start] == '.' && p[start + 1] == '.') {
            if (g->n_seg == 0)
                g->dead = true;
            else
                g->n_seg--;
            continue;
        }
        if (g->n_seg == S_GLOB_MAX_SEG) {
            s_fail(h->err, h->col, "hashFiles: pattern deeper than %d segments", S_GLOB_MAX_SEG);
            return -1;
        }
        memcpy(g->buf + o, p + start, sl);
        g->seg[g->n_seg] = g->buf + o;
        g->seglen[g->n_seg++] = sl;
        o += sl;
    }
    /* "dir/" names only a directory: something must lie beneath it */
    if (dir_only) {
        g->seg[g->n_seg] = "*";
        g->seglen[g->n_seg++] = 1;
    }
    g->seg[g->n_seg] = "**";
    g->seglen[g->n_seg++] = 2;
    return 0;
}

/* Splits one argument into lines like @actions/glob: trimmed, blank lines
 * and '#' comments skipped. */
static int s_glob_add_all(s_hash_t *h, const char *p, size_t n, const char *ws)
{
    size_t i = 0;
    while (i < n) {
        size_t start = i, end;
        while (i < n && p[i] != '\n')
            i++;
        end = i++;
        while (start < end && s_is_space(p[start]))
            start++;
        while (end > start && s_is_space(p[end - 1]))
            end--;
        if (end > start && p[start] != '#' && s_glob_add(h, p + start, end - start, ws))
            return -1;
    }
    return 0;
}

#define S_REL_SEGS (KILN_EXPR_HASH_MAX_DEPTH + 2)

/* Splits h->rel at '/' into at most S_REL_SEGS segments; returns how many. */
static size_t s_hash_split(const s_hash_t *h, const char **seg, size_t *len)
{
    size_t n = 0, i = 0;
    while (i < h->rel_len && n < S_REL_SEGS) {
        size_t start = i;
        while (i < h->rel_len && h->rel[i] != '/')
            i++;
        seg[n] = h->rel + start;
        len[n++] = i - start;
        i++;
    }
    return n;
}

/* Whether the file h->rel is selected: patterns in order, the last that
 * matches decides (a '!' pattern excludes what earlier ones included). */
static bool s_hash_selected(const s_hash_t *h)
{
    const char *seg[S_REL_SEGS];
    size_t len[S_REL_SEGS], n = s_hash_split(h, seg, len);
    bool in = false;
    for (size_t k = 0; k < h->n_globs; k++)
        if (h->globs[k].negate == in && s_glob_match(&h->globs[k], seg, len, n))
            in = !h->globs[k].negate;
    return in;
}

/* Whether the directory h->rel may hold a selected file. */
static bool s_hash_worth_entering(const s_hash_t *h)
{
    const char *seg[S_REL_SEGS];
    size_t len[S_REL_SEGS], n = s_hash_split(h, seg, len);
    for (size_t k = 0; k < h->n_globs; k++)
        if (s_glob_may_descend(&h->globs[k], seg, len, n))
            return true;
    return false;
}

/* Hashes the open file fd (closed here) as h->rel. */
static int s_hash_fd(s_hash_t *h, int fd)
{
    crypto_hash_sha256_state st;
    struct stat sb;
    int rc = -1;
    if (fstat(fd, &sb) == -1 || !S_ISREG(sb.st_mode)) {
        rc = 0; /* not a regular file after all: skipped */
        goto cleanup;
    }
    if (h->n_files == KILN_EXPR_HASH_MAX_FILES) {
        s_fail(h->err, h->col, "hashFiles: more than %d files match", KILN_EXPR_HASH_MAX_FILES);
        goto cleanup;
    }
    if (h->n_files == h->cap_files) {
        size_t cap = h->cap_files ? h->cap_files * 2 : 64;
        s_hashed_t *grown = realloc(h->files, cap * sizeof *grown);
        if (!grown) {
            s_oom(h->err, h->col);
            goto cleanup;
        }
        h->files = grown;
        h->cap_files = cap;
    }
    crypto_hash_sha256_init(&st);
    for (;;) {
        ssize_t got = read(fd, h->chunk, S_CHUNK);
        if (got == -1 && errno == EINTR)
            continue;
        if (got == -1) {
            s_fail(h->err, h->col, "hashFiles: cannot read '%s': %s", h->rel, strerror(errno));
            goto cleanup;
        }
        if (got == 0)
            break;
        h->bytes += got;
        if (h->bytes > KILN_EXPR_HASH_MAX_BYTES) {
            s_fail(h->err, h->col, "hashFiles: more than %lld bytes to hash",
                   (long long)KILN_EXPR_HASH_MAX_BYTES);
            goto cleanup;
        }
        crypto_hash_sha256_update(&st, h->chunk, (unsigned long long)got);
    }
    crypto_hash_sha256_final(&st, h->files[h->n_files].digest);
    if (!(h->files[h->n_files].rel = strdup(h->rel))) {
        s_oom(h->err, h->col);
        goto cleanup;
    }
    h->n_files++;
    rc = 0;
cleanup:
    close(fd);
    return rc;
}

/* A symbolic link, followed only on request and only to a regular file
 * whose real path lies inside the workspace. */
static int s_hash_link(s_hash_t *h)
{
    char full[PATH_MAX * 2], real[PATH_MAX];
    size_t wl = strlen(h->ws_real);
    int fd;
    snprintf(full, sizeof full, "%s/%s", h->ws_real, h->rel);
    if (!realpath(full, real))
        return 0; /* dangling */
    if (strncmp(real, h->ws_real, wl) != 0 || (real[wl] != '/' && wl > 1))
        return 0; /* outside the workspace: never read */
    fd = open(real, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd == -1)
        return 0;
    return s_hash_fd(h, fd);
}

/* Walks the directory dfd (consumed) at h->rel without following links. */
static int s_hash_walk(s_hash_t *h, int dfd, int depth)
{
    DIR *d = fdopendir(dfd);
    struct dirent *de;
    int rc = -1;
    if (!d) {
        close(dfd);
        s_fail(h->err, h->col, "hashFiles: cannot read directory '%s': %s",
               h->rel_len ? h->rel : ".", strerror(errno));
        return -1;
    }
    while ((errno = 0, de = readdir(d)) != NULL) {
        const char *name = de->d_name;
        size_t nl = strlen(name), save = h->rel_len;
        struct stat sb;
        int fd, step = 0;
        if (!strcmp(name, ".") || !strcmp(name, ".."))
            continue;
        if (++h->visited > KILN_EXPR_HASH_MAX_VISIT) {
            s_fail(h->err, h->col, "hashFiles: more than %d entries in the workspace",
                   KILN_EXPR_HASH_MAX_VISIT);
            goto cleanup;
        }
        if (save + 1 + nl >= sizeof h->rel) {
            s_fail(h->err, h->col, "hashFiles: path longer than %zu bytes under '%s'",
                   sizeof h->rel - 1, h->rel);
            goto cleanup;
        }
        if (save)
            h->rel[h->rel_len++] = '/';
        memcpy(h->rel + h->rel_len, name, nl + 1);
        h->rel_len += nl;
        if (fstatat(dirfd(d), name, &sb, AT_SYMLINK_NOFOLLOW) == -1) {
            if (errno != ENOENT) { /* gone since readdir: skipped */
                s_fail(h->err, h->col, "hashFiles: cannot stat '%s': %s", h->rel, strerror(errno));
                step = -1;
            }
        } else if (S_ISDIR(sb.st_mode)) {
            if (!s_hash_worth_entering(h)) {
                /* no pattern can select anything below: not read at all */
            } else if (depth + 1 >= KILN_EXPR_HASH_MAX_DEPTH) {
                s_fail(h->err, h->col, "hashFiles: directories nested deeper than %d",
                       KILN_EXPR_HASH_MAX_DEPTH);
                step = -1;
            } else if ((fd = openat(dirfd(d), name,
                                    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) == -1) {
                if (errno != ENOENT) {
                    s_fail(h->err, h->col, "hashFiles: cannot open '%s': %s", h->rel,
                           strerror(errno));
                    step = -1;
                }
            } else {
                step = s_hash_walk(h, fd, depth + 1);
            }
        } else if (S_ISREG(sb.st_mode) && s_hash_selected(h)) {
            fd = openat(dirfd(d), name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
            if (fd == -1 && errno != ENOENT) {
                s_fail(h->err, h->col, "hashFiles: cannot open '%s': %s", h->rel, strerror(errno));
                step = -1;
            } else if (fd != -1) {
                step = s_hash_fd(h, fd);
            }
        } else if (S_ISLNK(sb.st_mode) && h->follow && s_hash_selected(h)) {
            step = s_hash_link(h);
        }
        h->rel_len = save;
        h->rel[save] = '\0';
        if (step)
            goto cleanup;
    }
    if (errno) {
        s_fail(h->err, h->col, "hashFiles: cannot read directory '%s': %s",
               h->rel_len ? h->rel : ".", strerror(errno));
        goto cleanup;
    }
    rc = 0;
cleanup:
    closedir(d);
    return rc;
}

static int s_hashed_cmp(const void *a, const void *b)
{
    return strcmp(((const s_hashed_t *)a)->rel, ((const s_hashed_t *)b)->rel);
}

/* hashFiles(pattern, ...): SHA-256 over the SHA-256 of each matching file,
 * files in byte order of their workspace-relative paths; '' when none. */
static int s_fn_hashfiles(s_eval_t *ev, const s_node_t *n, s_val_t *out)
{
    const char *ws = ev->env->workspace;
    s_hash_t *h = calloc(1, sizeof *h);
    s_val_t arg = {0};
    char hex[crypto_hash_sha256_BYTES * 2 + 1] = "", tmp[S_NUMBUF];
    int rc = -1, root;
    if (!h)
        return s_oom(ev->err, n->col);
    h->err = ev->err;
    h->col = n->col;
    if (!ws) {
        s_fail(ev->err, n->col, "hashFiles: no workspace (only available where a job runs)");
        goto cleanup;
    }
    for (int c = n->first; c >= 0; c = s_node(ev, c)->next) {
        const char *p;
        size_t len;
        if (s_eval(ev, c, &arg))
            goto cleanup;
        if (!s_prim_str(arg.j, tmp, &p, &len)) {
            s_fail(ev->err, n->col, "hashFiles: a pattern must be a string");
            goto cleanup;
        }
        if (len == 23 && !memcmp(p, "--follow-symbolic-links", 23))
            h->follow = true;
        else if (s_glob_add_all(h, p, len, ws))
            goto cleanup;
        s_drop(&arg);
    }
    if (h->n_globs == 0) {
        s_fail(ev->err, n->col, "hashFiles: expects at least one pattern");
        goto cleanup;
    }
    if (sodium_init() < 0) {
        s_fail(ev->err, n->col, "hashFiles: libsodium failed to initialise");
        goto cleanup;
    }
    if (h->follow && !realpath(ws, h->ws_real)) {
        s_fail(ev->err, n->col, "hashFiles: workspace '%s': %s", ws, strerror(errno));
        goto cleanup;
    }
    if (!(h->chunk = malloc(S_CHUNK))) {
        s_oom(ev->err, n->col);
        goto cleanup;
    }
    if ((root = open(ws, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1) {
        s_fail(ev->err, n->col, "hashFiles: cannot open workspace '%s': %s", ws, strerror(errno));
        goto cleanup;
    }
    if (s_hash_walk(h, root, 0))
        goto cleanup;
    if (h->n_files) {
        crypto_hash_sha256_state st;
        unsigned char sum[crypto_hash_sha256_BYTES];
        qsort(h->files, h->n_files, sizeof *h->files, s_hashed_cmp);
        crypto_hash_sha256_init(&st);
        for (size_t i = 0; i < h->n_files; i++)
            crypto_hash_sha256_update(&st, h->files[i].digest, sizeof h->files[i].digest);
        crypto_hash_sha256_final(&st, sum);
        sodium_bin2hex(hex, sizeof hex, sum, sizeof sum);
    }
    rc = s_take(ev, out, json_string(hex), n->col);
cleanup:
    s_drop(&arg);
    for (size_t i = 0; i < h->n_globs; i++)
        free(h->globs[i].buf);
    for (size_t i = 0; i < h->n_files; i++)
        free(h->files[i].rel);
    free(h->files);
    free(h->chunk);
    free(h);
    return rc;
}

/* ------------------------------------------------------------ dispatch */

static int s_eval_call(s_eval_t *ev, const s_node_t *n, s_val_t *out)
{
    kiln_expr_status_t st = ev->env->status;
    switch (n->fn) {
    case F_SUCCESS: out->j = json_boolean(st == KILN_EXPR_SUCCESS); return 0;
    case F_FAILURE: out->j = json_boolean(st == KILN_EXPR_FAILURE); return 0;
    case F_CANCELLED: out->j = json_boolean(st == KILN_EXPR_CANCELLED); return 0;
    case F_ALWAYS: out->j = json_true(); return 0;
    case F_CONTAINS: return s_fn_contains(ev, n, out);
    case F_STARTSWITH: return s_fn_affix(ev, n, true, out);
    case F_ENDSWITH: return s_fn_affix(ev, n, false, out);
    case F_FORMAT: return s_fn_format(ev, n, out);
    case F_JOIN: return s_fn_join(ev, n, out);
    case F_TOJSON: return s_fn_tojson(ev, n, out);
    case F_FROMJSON: return s_fn_fromjson(ev, n, out);
    case F_HASHFILES: return s_fn_hashfiles(ev, n, out);
    default: break;
    }
    s_fail(ev->err, n->col, "internal error: function %d", n->fn);
    return -1;
}

/* Evaluates node idx into *out (a new reference). Recursion is bounded by
 * the tree depth, which the parser capped. */
static int s_eval(s_eval_t *ev, int idx, s_val_t *out)
{
    const s_node_t *n = s_node(ev, idx);
    s_val_t a = {0}, b = {0};
    json_t *found;
    bool r = false;
    int rc = -1;
    out->j = NULL;
    out->filtered = false;
    switch (n->kind) {
    case N_NULL:
        out->j = json_null();
        return 0;
    case N_BOOL:
        out->j = json_boolean(n->flag);
        return 0;
    case N_NUMBER:
        return s_take(ev, out, s_number_json(n->num), n->col);
    case N_STRING:
        return s_eval_string(ev, n, out);
    case N_CONTEXT:
        found = ev->env->contexts && json_is_object(ev->env->contexts)
                    ? s_object_get(ev->env->contexts, n->text, n->len)
                    : NULL;
        out->j = found ? json_incref(found) : json_null();
        return 0;
    case N_INDEX:
        return s_eval_index(ev, n, out);
    case N_CALL:
        return s_eval_call(ev, n, out);
    case N_NOT:
        if (s_eval(ev, n->first, &a))
            return -1;
        out->j = json_boolean(!kiln_expr_truthy(a.j));
        s_drop(&a);
        return 0;
    case N_AND:
    case N_OR:
        /* the first operand that decides, itself: '' || 'x' is 'x' */
        for (int c = n->first; c >= 0; c = s_node(ev, c)->next) {
            bool t;
            s_drop(out);
            if (s_eval(ev, c, out))
                return -1;
            t = kiln_expr_truthy(out->j);
            if (n->kind == N_AND ? !t : t)
                break;
        }
        return 0;
    case N_CMP:
        if (s_eval(ev, n->first, &a) || s_eval(ev, s_node(ev, n->first)->next, &b))
            goto cleanup;
        switch (n->op) {
        case T_EQ: r = s_equal(a.j, b.j); break;
        case T_NE: r = !s_equal(a.j, b.j); break;
        case T_LT: r = s_greater(b.j, a.j); break;
        case T_LE: r = s_greater(b.j, a.j) || s_equal(a.j, b.j); break;
        case T_GT: r = s_greater(a.j, b.j); break;
        default: r = s_greater(a.j, b.j) || s_equal(a.j, b.j); break;
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

/* Parses and evaluates src[0..len) (columns offset by base). */
static int s_run(const char *src, size_t len, size_t base, const kiln_expr_env_t *env,
                 s_val_t *out, bool *has_status, s_err_t *e)
{
    s_ast_t ast = {0};
    s_eval_t ev = {.ast = &ast, .env = env ? env : &s_no_env, .err = e};
    int rc = -1;
    out->j = NULL;
    if (s_parse(src, len, base, &ast, e))
        goto cleanup;
    if (has_status) {
        /* an if: without a status function is success() && (...) */
        bool any = false;
        for (int i = 0; i < ast.n; i++)
            any = any || (ast.nodes[i].kind == N_CALL && ast.nodes[i].fn >= F_SUCCESS);
        *has_status = any;
        if (!any && ev.env->status != KILN_EXPR_SUCCESS) {
            out->j = json_false();
            rc = 0;
            goto cleanup;
        }
    }
    rc = s_eval(&ev, ast.root, out);
    if (rc)
        s_drop(out);
cleanup:
    s_ast_free(&ast);
    return rc;
}

int kiln_expr_eval(const char *expr, const kiln_expr_env_t *env, json_t **out, char *err,
                   size_t errlen)
{
    s_err_t e = {0};
    s_val_t v = {0};
    assert(expr && out);
    *out = NULL;
    if (s_run(expr, strnlen(expr, KILN_EXPR_MAX_LEN + 1), 0, env, &v, NULL, &e))
        return s_report(&e, err, errlen);
    *out = v.j;
    return 0;
}

/* One ${{ }} in a template: [start, end) is the whole of it, [expr,
 * expr+len) the trimmed text inside. */
typedef struct {
    size_t start, end, expr, len;
} s_span_t;

/* Finds the first ${{ at or after from in text[0..n). Its end is the first
 * "}}" outside a string literal (GitHub's reader toggles on every quote,
 * which handles '' too). 1 found, 0 none, -1 error. */
static int s_next_span(const char *text, size_t n, size_t from, s_span_t *sp, s_err_t *e)
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
        s_fail(e, (int)sp->start + 1, "unclosed '${{' (no matching '}}')");
        return -1;
    }
    sp->end = i + 2;
    sp->expr = sp->start + 3;
    while (sp->expr < i && s_is_space(text[sp->expr]))
        sp->expr++;
    while (i > sp->expr && s_is_space(text[i - 1]))
        i--;
    sp->len = i - sp->expr;
    if (sp->len == 0) {
        s_fail(e, (int)sp->start + 1, "empty expression in '${{ }}'");
        return -1;
    }
    return 1;
}

/* Parses every ${{ }} in text[from..to); *has_status: whether any calls a
 * status function. */
static int s_template_parse(const char *text, size_t from, size_t to, bool *has_status,
                            s_err_t *e)
{
    s_span_t sp;
    int found;
    *has_status = false;
    while ((found = s_next_span(text, to, from, &sp, e)) == 1) {
        s_ast_t ast = {0};
        int rc = s_parse(text + sp.expr, sp.len, sp.expr, &ast, e);
        for (int i = 0; rc == 0 && i < ast.n; i++)
            *has_status = *has_status || (ast.nodes[i].kind == N_CALL && ast.nodes[i].fn >= F_SUCCESS);
        s_ast_free(&ast);
        if (rc)
            return -1;
        from = sp.end;
    }
    return found;
}

/* Interpolates text[from..to) into b. */
static int s_interpolate(const char *text, size_t from, size_t to, const kiln_expr_env_t *env,
                         s_buf_t *b, s_err_t *e)
{
    s_span_t sp;
    int found;
    while ((found = s_next_span(text, to, from, &sp, e)) == 1) {
        s_val_t v = {0};
        kiln_buf_add(b, text + from, sp.start - from);
        if (s_run(text + sp.expr, sp.len, sp.expr, env, &v, NULL, e))
            return -1;
        s_buf_form(b, v.j);
        s_drop(&v);
        if (s_buf_check(b, e, (int)sp.start + 1, "interpolation"))
            return -1;
        from = sp.end;
    }
    if (found < 0)
        return -1;
    kiln_buf_add(b, text + from, to - from);
    return s_buf_check(b, e, (int)from + 1, "interpolation");
}

static size_t s_text_len(const char *text, s_err_t *e)
{
    size_t len = strnlen(text, KILN_EXPR_MAX_RESULT + 1);
    if (len > KILN_EXPR_MAX_RESULT)
        s_fail(e, 1, "text too long (more than %d bytes)", KILN_EXPR_MAX_RESULT);
    return len;
}

int kiln_expr_interpolate(const char *text, const kiln_expr_env_t *env, char **out, char *err,
                          size_t errlen)
{
    s_err_t e = {0};
    s_buf_t b = {.max = KILN_EXPR_MAX_RESULT};
    size_t len;
    assert(text && out);
    *out = NULL;
    len = s_text_len(text, &e);
    if (e.set || s_interpolate(text, 0, len, env, &b, &e)) {
        free(b.data);
        return s_report(&e, err, errlen);
    }
    *out = b.data ? b.data : strdup("");
    if (!*out) {
        s_oom(&e, 1);
        return s_report(&e, err, errlen);
    }
    return 0;
}

int kiln_expr_condition(const char *cond, const kiln_expr_env_t *env, bool *out, char *err,
                        size_t errlen)
{
    const kiln_expr_env_t *en = env ? env : &s_no_env;
    s_err_t e = {0};
    s_val_t v = {0};
    s_buf_t b = {.max = KILN_EXPR_MAX_RESULT};
    s_span_t sp;
    size_t a = 0, z;
    bool has_status = false;
    int rc = -1;
    assert(cond && out);
    *out = false;
    z = s_text_len(cond, &e);
    if (e.set)
        goto cleanup;
    while (a < z && s_is_space(cond[a]))
        a++;
    while (z > a && s_is_space(cond[z - 1]))
        z--;
    if (a == z) { /* no condition: success() */
        *out = en->status == KILN_EXPR_SUCCESS;
        rc = 0;
        goto cleanup;
    }
    if (memmem(cond + a, z - a, "${{", 3)) {
        if (s_next_span(cond, z, a, &sp, &e) < 0)
            goto cleanup;
        if (sp.start != a || sp.end != z) {
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
        a = sp.expr;
        z = sp.expr + sp.len;
    }
    if (s_run(cond + a, z - a, a, en, &v, &has_status, &e))
        goto cleanup;
    *out = kiln_expr_truthy(v.j);
    rc = 0;
cleanup:
    s_drop(&v);
    free(b.data);
    return rc ? s_report(&e, err, errlen) : 0;
}

static int s_check_report(const s_err_t *e, int *col, char *err, size_t errlen)
{
    kiln_error_set("column %d: %s", e->col, e->msg);
    if (col)
        *col = e->col;
    if (err && errlen)
        snprintf(err, errlen, "%s", e->msg);
    return e->oom ? -1 : KILN_EINVAL;
}

int kiln_expr_check(const char *expr, int *col, char *err, size_t errlen)
{
    s_err_t e = {0};
    s_ast_t ast = {0};
    int rc;
    assert(expr);
    rc = s_parse(expr, strnlen(expr, KILN_EXPR_MAX_LEN + 1), 0, &ast, &e);
    s_ast_free(&ast);
    return rc ? s_check_report(&e, col, err, errlen) : 0;
}

int kiln_expr_check_template(const char *text, int *col, char *err, size_t errlen)
{
    s_err_t e = {0};
    bool has_status;
    size_t len;
    assert(text);
    len = s_text_len(text, &e);
    if (e.set || s_template_parse(text, 0, len, &has_status, &e) < 0)
        return s_check_report(&e, col, err, errlen);
    return 0;
}

/* The expression of an if:, found as kiln_expr_condition finds it: the
 * text inside a lone ${{ }}, or the whole text. Returns 1 when the if: is a
 * template with text around its ${{ }} (checked as a template), 0 with
 * [*a, *z) set, or -1 on an error in e. */
static int s_condition_span(const char *cond, size_t *a, size_t *z, s_err_t *e)
{
    s_span_t sp;
    *a = 0;
    *z = s_text_len(cond, e);
    if (e->set)
        return -1;
    while (*a < *z && s_is_space(cond[*a]))
        (*a)++;
    while (*z > *a && s_is_space(cond[*z - 1]))
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

int kiln_expr_check_condition(const char *cond, int *col, char *err, size_t errlen)
{
    s_err_t e = {0};
    s_ast_t ast = {0};
    size_t a, z;
    int kind = s_condition_span(cond, &a, &z, &e);
    if (kind < 0)
        return s_check_report(&e, col, err, errlen);
    if (kind == 1)
        return kiln_expr_check_template(cond, col, err, errlen);
    if (a == z)
        return 0;
    int rc = s_parse(cond + a, z - a, a, &ast, &e);
    s_ast_free(&ast);
    return rc ? s_check_report(&e, col, err, errlen) : 0;
}

bool kiln_expr_condition_has_status_call(const char *cond)
{
    s_err_t e = {0};
    s_ast_t ast = {0};
    bool has = false;
    size_t a, z;
    int kind = s_condition_span(cond, &a, &z, &e);
    if (kind == 1)
        return s_template_parse(cond, 0, strlen(cond), &has, &e) == 0 && has;
    if (kind < 0 || a == z)
        return false;
    if (s_parse(cond + a, z - a, a, &ast, &e) == 0)
        for (int i = 0; i < ast.n; i++)
            has = has || (ast.nodes[i].kind == N_CALL && ast.nodes[i].fn >= F_SUCCESS);
    s_ast_free(&ast);
    return has;
}

bool kiln_expr_has_status_call(const char *expr)
{
    s_err_t e = {0};
    s_ast_t ast = {0};
    bool any = false;
    assert(expr);
    if (s_parse(expr, strnlen(expr, KILN_EXPR_MAX_LEN + 1), 0, &ast, &e) == 0)
        for (int i = 0; i < ast.n; i++)
            any = any || (ast.nodes[i].kind == N_CALL && ast.nodes[i].fn >= F_SUCCESS);
    s_ast_free(&ast);
    return any;
}

bool kiln_expr_refers_to(const char *expr, const char *context)
{
    s_err_t e = {0};
    s_ast_t ast = {0};
    bool any = false;
    assert(expr && context);
    if (s_parse(expr, strnlen(expr, KILN_EXPR_MAX_LEN + 1), 0, &ast, &e) == 0)
        for (int i = 0; i < ast.n; i++)
            any = any || (ast.nodes[i].kind == N_CONTEXT &&
                          s_caseeq(ast.nodes[i].text, ast.nodes[i].len, context, strlen(context)));
    s_ast_free(&ast);
    return any;
}

bool kiln_expr_template_refers_to(const char *text, const char *context)
{
    s_err_t e = {0};
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
    s_err_t e = {0};
    s_span_t sp;
    size_t a = 0, z;
    assert(text && out);
    *out = NULL;
    z = s_text_len(text, &e);
    if (e.set)
        return s_report(&e, err, errlen);
    while (a < z && s_is_space(text[a]))
        a++;
    while (z > a && s_is_space(text[z - 1]))
        z--;
    int found = s_next_span(text, z, a, &sp, &e);
    if (found < 0)
        return s_report(&e, err, errlen);
    if (found == 1 && sp.start == a && sp.end == z) {
        /* The whole value is one expression: its value keeps its type
         * (a number of minutes, a boolean, the object fromJSON gives). */
        s_val_t v = {0};
        if (s_run(text + sp.expr, sp.len, sp.expr, env, &v, NULL, &e))
            return s_report(&e, err, errlen);
        *out = v.j ? v.j : json_null();
        return 0;
    }
    char *s = NULL;
    int rc = kiln_expr_interpolate(text, env, &s, err, errlen);
    if (rc != 0)
        return rc;
    *out = json_string(s);
    free(s);
    if (!*out) {
        s_oom(&e, 1);
        return s_report(&e, err, errlen);
    }
    return 0;
}
