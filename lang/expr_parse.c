/* expr_parse.c: the expression language's lexer and parser (see
 * expr_int.h for how the files fit).
 *
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
 *
 * Also here: the error record every stage fills (the parser is where most
 * errors are found), and what can be answered from the tree alone without
 * evaluating (kiln_expr_check, kiln_expr_has_status_call,
 * kiln_expr_refers_to). Known, documented deviations: the literals NaN and
 * Infinity (undocumented on GitHub) are not accepted; hex (0x) and octal
 * (0o) numbers may be any unsigned 64-bit value.
 */
#include <assert.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "lang/expr_int.h"

/* ---------------------------------------------------------------- errors */

void kiln_expr_fail(kiln_expr_err_t *e, int col, const char *fmt, ...)
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

int kiln_expr_oom(kiln_expr_err_t *e, int col)
{
    if (!e->set) {
        kiln_expr_fail(e, col, "out of memory");
        e->oom = true;
    }
    return -1;
}

int kiln_expr_report(const kiln_expr_err_t *e, char *err, size_t errlen)
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

/* -------------------------------------------------------- characters */

static bool s_is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
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

/* ---------------------------------------------------------------- lexer */

/* One token: where it is and, for a number, its value. */
typedef struct {
    kiln_expr_tok_kind_t kind;
    size_t pos, len; /* within the parser's src */
    double num;
} s_tok_t;

typedef struct {
    const char *src;
    size_t len;
    size_t base; /* offset of src within the caller's text, for columns */
    size_t pos;  /* lexer position */
    s_tok_t cur;
    int depth; /* parser recursion */
    kiln_expr_ast_t *ast;
    kiln_expr_err_t *err;
} s_parser_t;

/* The functions GitHub knows, with their arity (a call with another name
 * or count is a syntax error, as on GitHub). Indexed by KILN_EXPR_F_*. */
static const struct {
    const char *name;
    int min, max;
} s_funcs[] = {
    [KILN_EXPR_F_CONTAINS] = {"contains", 2, 2},
    [KILN_EXPR_F_STARTSWITH] = {"startsWith", 2, 2},
    [KILN_EXPR_F_ENDSWITH] = {"endsWith", 2, 2},
    [KILN_EXPR_F_FORMAT] = {"format", 1, INT_MAX},
    [KILN_EXPR_F_JOIN] = {"join", 1, 2},
    [KILN_EXPR_F_TOJSON] = {"toJSON", 1, 1},
    [KILN_EXPR_F_FROMJSON] = {"fromJSON", 1, 1},
    [KILN_EXPR_F_HASHFILES] = {"hashFiles", 1, INT_MAX},
    [KILN_EXPR_F_SUCCESS] = {"success", 0, 0},
    [KILN_EXPR_F_FAILURE] = {"failure", 0, 0},
    [KILN_EXPR_F_CANCELLED] = {"cancelled", 0, 0},
    [KILN_EXPR_F_ALWAYS] = {"always", 0, 0},
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
    return kiln_value_is_space(c) || strchr("([)],.!><=&|", c) != NULL;
}

static int s_lex_error(s_parser_t *p, size_t pos, size_t len, const char *what)
{
    char show[160];
    kiln_expr_fail(p->err, s_col(p, pos), "%s '%s'", what,
                   s_show(p->src + pos, len, show, sizeof show));
    p->cur.kind = KILN_EXPR_T_ERROR;
    return -1;
}

/* Reads the token at p->pos into p->cur. The token it replaces decides
 * what '.' and names mean. 0, or -1 with the error set (cur is KILN_EXPR_T_ERROR). */
static int s_lex(s_parser_t *p)
{
    const char *s = p->src;
    size_t n = p->len, i, end;
    kiln_expr_tok_kind_t prev = p->cur.kind;
    s_tok_t *t = &p->cur;
    char c;
    while (p->pos < n && kiln_value_is_space(s[p->pos]))
        p->pos++;
    i = p->pos;
    t->pos = i;
    t->len = 1;
    t->num = 0;
    if (i >= n) {
        t->kind = KILN_EXPR_T_END;
        t->len = 0;
        return 0;
    }
    c = s[i];
    t->kind = KILN_EXPR_T_ERROR; /* not known yet */
    switch (c) {
    case '(': t->kind = KILN_EXPR_T_LPAREN; break;
    case ')': t->kind = KILN_EXPR_T_RPAREN; break;
    case '[': t->kind = KILN_EXPR_T_LBRACKET; break;
    case ']': t->kind = KILN_EXPR_T_RBRACKET; break;
    case ',': t->kind = KILN_EXPR_T_COMMA; break;
    case '*': t->kind = KILN_EXPR_T_STAR; break;
    case '.':
        /* After an operator, '(', '[', ',' or at the start, '.' begins a
         * number (.5); anywhere else it is a property access. */
        if (!(prev == KILN_EXPR_T_END || prev == KILN_EXPR_T_COMMA ||
              prev == KILN_EXPR_T_LPAREN || prev == KILN_EXPR_T_LBRACKET ||
              (prev >= KILN_EXPR_T_NOT && prev <= KILN_EXPR_T_OR)))
            t->kind = KILN_EXPR_T_DOT;
        break;
    case '!':
        t->kind = KILN_EXPR_T_NOT;
        if (i + 1 < n && s[i + 1] == '=') {
            t->kind = KILN_EXPR_T_NE;
            t->len = 2;
        }
        break;
    case '=':
        if (i + 1 >= n || s[i + 1] != '=')
            return s_lex_error(p, i, 1, "unexpected character");
        t->kind = KILN_EXPR_T_EQ;
        t->len = 2;
        break;
    case '<':
    case '>':
        t->kind = c == '<' ? KILN_EXPR_T_LT : KILN_EXPR_T_GT;
        if (i + 1 < n && s[i + 1] == '=') {
            t->kind = c == '<' ? KILN_EXPR_T_LE : KILN_EXPR_T_GE;
            t->len = 2;
        }
        break;
    case '&':
    case '|':
        if (i + 1 >= n || s[i + 1] != c)
            return s_lex_error(p, i, 1, "unexpected character");
        t->kind = c == '&' ? KILN_EXPR_T_AND : KILN_EXPR_T_OR;
        t->len = 2;
        break;
    case '\'':
        for (end = i + 1;; end++) {
            if (end >= n) {
                kiln_expr_fail(p->err, s_col(p, i), "unterminated string");
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
            kiln_expr_fail(p->err, s_col(p, i), "invalid UTF-8 in string");
            return -1;
        }
        t->kind = KILN_EXPR_T_STRING;
        t->len = end - i + 1;
        break;
    default:
        break;
    }
    if (t->kind == KILN_EXPR_T_ERROR &&
        (c == '.' || kiln_value_is_digit(c) || c == '-' || c == '+')) {
        for (end = i + 1; end < n && (!s_boundary(s[end]) || s[end] == '.'); end++)
            ;
        t->len = end - i;
        if (!kiln_value_parse_number(s + i, t->len, &t->num))
            return s_lex_error(p, i, t->len, "invalid number");
        if (t->num > 1.7976931348623157e308 || t->num < -1.7976931348623157e308)
            return s_lex_error(p, i, t->len, "number out of range");
        t->kind = KILN_EXPR_T_NUMBER;
    } else if (t->kind == KILN_EXPR_T_ERROR && (s_is_alpha(c) || c == '_')) {
        for (end = i + 1; end < n && !s_boundary(s[end]); end++)
            ;
        t->len = end - i;
        for (size_t k = i; k < end; k++)
            if (!s_is_alpha(s[k]) && !kiln_value_is_digit(s[k]) && s[k] != '_' && s[k] != '-')
                return s_lex_error(p, i, t->len, "invalid name");
        if (prev == KILN_EXPR_T_DOT) {
            t->kind = KILN_EXPR_T_PROP;
        } else if (t->len == 4 && !memcmp(s + i, "true", 4)) {
            t->kind = KILN_EXPR_T_TRUE;
        } else if (t->len == 5 && !memcmp(s + i, "false", 5)) {
            t->kind = KILN_EXPR_T_FALSE;
        } else if (t->len == 4 && !memcmp(s + i, "null", 4)) {
            t->kind = KILN_EXPR_T_NULL;
        } else {
            size_t k = end;
            while (k < n && kiln_value_is_space(s[k]))
                k++;
            t->kind = k < n && s[k] == '(' ? KILN_EXPR_T_FUNC : KILN_EXPR_T_NAME;
        }
    } else if (t->kind == KILN_EXPR_T_ERROR) {
        return s_lex_error(p, i, 1, "unexpected character");
    }
    p->pos = i + t->len;
    return 0;
}

/* --------------------------------------------------------------- parser */

static int s_node_new(s_parser_t *p, kiln_expr_node_kind_t kind, size_t pos)
{
    kiln_expr_ast_t *a = p->ast;
    kiln_expr_node_t *nd;
    if (a->n == a->cap) {
        int cap = a->cap ? a->cap * 2 : 16;
        kiln_expr_node_t *grown = realloc(a->nodes, (size_t)cap * sizeof *grown);
        if (!grown)
            return kiln_expr_oom(p->err, s_col(p, pos));
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
    kiln_expr_node_t *pa = &p->ast->nodes[parent], *ch = &p->ast->nodes[child];
    if (pa->last < 0)
        pa->first = child;
    else
        p->ast->nodes[pa->last].next = child;
    pa->last = child;
    pa->n_child++;
    if (ch->depth + 1 > pa->depth)
        pa->depth = ch->depth + 1;
    if (pa->depth > KILN_EXPR_MAX_DEPTH) {
        kiln_expr_fail(p->err, pa->col, "expression nested too deeply (limit %d)",
                       KILN_EXPR_MAX_DEPTH);
        return -1;
    }
    return 0;
}

static int s_enter(s_parser_t *p, size_t pos)
{
    if (++p->depth > KILN_EXPR_MAX_DEPTH) {
        kiln_expr_fail(p->err, s_col(p, pos), "expression nested too deeply (limit %d)",
                       KILN_EXPR_MAX_DEPTH);
        return -1;
    }
    return 0;
}

static int s_unexpected(s_parser_t *p)
{
    char show[160];
    if (p->cur.kind == KILN_EXPR_T_ERROR)
        return -1;
    if (p->cur.kind == KILN_EXPR_T_END)
        kiln_expr_fail(p->err, s_col(p, p->len), "unexpected end of expression");
    else
        kiln_expr_fail(p->err, s_col(p, p->cur.pos), "unexpected token '%s'",
                       s_show(p->src + p->cur.pos, p->cur.len, show, sizeof show));
    return -1;
}

static int s_expect(s_parser_t *p, kiln_expr_tok_kind_t kind)
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
        if (kiln_value_caseeq(text, name.len, s_funcs[i].name, strlen(s_funcs[i].name)))
            fn = (int)i;
    if (fn < 0) {
        kiln_expr_fail(p->err, s_col(p, name.pos), "unknown function '%s'",
                       s_show(text, name.len, show, sizeof show));
        return -1;
    }
    if ((node = s_node_new(p, KILN_EXPR_N_CALL, name.pos)) < 0)
        return -1;
    p->ast->nodes[node].fn = fn;
    if (s_lex(p) || s_expect(p, KILN_EXPR_T_LPAREN) || s_enter(p, name.pos))
        return -1;
    if (p->cur.kind != KILN_EXPR_T_RPAREN) {
        for (;;) {
            if ((arg = s_parse_or(p)) < 0 || s_node_add(p, node, arg))
                return -1;
            if (p->cur.kind != KILN_EXPR_T_COMMA)
                break;
            if (s_lex(p))
                return -1;
        }
    }
    if (s_expect(p, KILN_EXPR_T_RPAREN))
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
        kiln_expr_fail(p->err, s_col(p, name.pos),
                       "wrong number of arguments to '%s': expected %s, got %d", s_funcs[fn].name,
                       want, arg);
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
    case KILN_EXPR_T_NUMBER:
        if ((node = s_node_new(p, KILN_EXPR_N_NUMBER, t.pos)) < 0)
            return -1;
        p->ast->nodes[node].num = t.num;
        break;
    case KILN_EXPR_T_STRING:
        if ((node = s_node_new(p, KILN_EXPR_N_STRING, t.pos)) < 0)
            return -1;
        p->ast->nodes[node].text = p->src + t.pos + 1;
        p->ast->nodes[node].len = t.len - 2;
        break;
    case KILN_EXPR_T_TRUE:
    case KILN_EXPR_T_FALSE:
        if ((node = s_node_new(p, KILN_EXPR_N_BOOL, t.pos)) < 0)
            return -1;
        p->ast->nodes[node].flag = t.kind == KILN_EXPR_T_TRUE;
        break;
    case KILN_EXPR_T_NULL:
        if ((node = s_node_new(p, KILN_EXPR_N_NULL, t.pos)) < 0)
            return -1;
        break;
    case KILN_EXPR_T_NAME: {
        bool known = false;
        for (size_t i = 0; i < sizeof s_contexts / sizeof s_contexts[0]; i++)
            known = known ||
                    kiln_value_caseeq(p->src + t.pos, t.len, s_contexts[i], strlen(s_contexts[i]));
        if (!known) {
            kiln_expr_fail(p->err, s_col(p, t.pos), "unknown context '%s'",
                           s_show(p->src + t.pos, t.len, show, sizeof show));
            return -1;
        }
        if ((node = s_node_new(p, KILN_EXPR_N_CONTEXT, t.pos)) < 0)
            return -1;
        p->ast->nodes[node].text = p->src + t.pos;
        p->ast->nodes[node].len = t.len;
        break;
    }
    case KILN_EXPR_T_FUNC:
        return s_parse_call(p);
    case KILN_EXPR_T_LPAREN:
        if (s_enter(p, t.pos) || s_lex(p) || (node = s_parse_or(p)) < 0 ||
            s_expect(p, KILN_EXPR_T_RPAREN))
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
    while (left >= 0 && (p->cur.kind == KILN_EXPR_T_DOT || p->cur.kind == KILN_EXPR_T_LBRACKET)) {
        const s_tok_t op = p->cur;
        int node = s_node_new(p, KILN_EXPR_N_INDEX, op.pos), key;
        if (node < 0 || s_node_add(p, node, left) || s_lex(p))
            return -1;
        if (op.kind == KILN_EXPR_T_DOT) {
            if (p->cur.kind == KILN_EXPR_T_PROP) {
                p->ast->nodes[node].text = p->src + p->cur.pos;
                p->ast->nodes[node].len = p->cur.len;
            } else if (p->cur.kind == KILN_EXPR_T_STAR) {
                p->ast->nodes[node].flag = true;
            } else {
                return s_unexpected(p);
            }
            if (s_lex(p))
                return -1;
        } else {
            if (s_enter(p, op.pos))
                return -1;
            if (p->cur.kind == KILN_EXPR_T_STAR) {
                p->ast->nodes[node].flag = true;
                if (s_lex(p))
                    return -1;
            } else if ((key = s_parse_or(p)) < 0 || s_node_add(p, node, key)) {
                return -1;
            }
            if (s_expect(p, KILN_EXPR_T_RBRACKET))
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
    if (op.kind != KILN_EXPR_T_NOT)
        return s_parse_postfix(p);
    if ((node = s_node_new(p, KILN_EXPR_N_NOT, op.pos)) < 0 || s_enter(p, op.pos) || s_lex(p) ||
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
        bool mine = equality ? (op.kind == KILN_EXPR_T_EQ || op.kind == KILN_EXPR_T_NE)
                             : (op.kind >= KILN_EXPR_T_LT && op.kind <= KILN_EXPR_T_GE);
        if (left < 0 || !mine)
            return left;
        if ((node = s_node_new(p, KILN_EXPR_N_CMP, op.pos)) < 0 || s_lex(p))
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
    kiln_expr_tok_kind_t kind = and_level ? KILN_EXPR_T_AND : KILN_EXPR_T_OR;
    int left = and_level ? s_parse_binary(p, true) : s_parse_logical(p, true), node;
    if (left < 0 || p->cur.kind != kind)
        return left;
    if ((node = s_node_new(p, and_level ? KILN_EXPR_N_AND : KILN_EXPR_N_OR, p->cur.pos)) < 0 ||
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

int kiln_expr_parse(const char *src, size_t len, size_t base, kiln_expr_ast_t *ast,
                    kiln_expr_err_t *err)
{
    s_parser_t p = {.src = src, .len = len, .base = base, .ast = ast, .err = err};
    size_t i = 0;
    ast->root = -1;
    if (len > KILN_EXPR_MAX_LEN) {
        kiln_expr_fail(err, (int)base + 1, "expression too long (more than %d bytes)",
                       KILN_EXPR_MAX_LEN);
        return -1;
    }
    while (i < len && kiln_value_is_space(src[i]))
        i++;
    if (i == len) {
        kiln_expr_fail(err, (int)base + 1, "empty expression");
        return -1;
    }
    p.cur.kind = KILN_EXPR_T_END; /* no previous token */
    if (s_lex(&p) || (ast->root = s_parse_or(&p)) < 0)
        return -1;
    if (p.cur.kind != KILN_EXPR_T_END)
        return s_unexpected(&p);
    return 0;
}

void kiln_expr_ast_free(kiln_expr_ast_t *ast)
{
    free(ast->nodes);
    memset(ast, 0, sizeof *ast);
}

bool kiln_expr_ast_has_status(const kiln_expr_ast_t *ast)
{
    for (int i = 0; i < ast->n; i++)
        if (ast->nodes[i].kind == KILN_EXPR_N_CALL && ast->nodes[i].fn >= KILN_EXPR_F_SUCCESS)
            return true;
    return false;
}

/* ------------------------------------------------- answers from the tree */

int kiln_expr_report_check(const kiln_expr_err_t *e, int *col, char *err, size_t errlen)
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
    kiln_expr_err_t e = {0};
    kiln_expr_ast_t ast = {0};
    int rc;
    assert(expr);
    rc = kiln_expr_parse(expr, strnlen(expr, KILN_EXPR_MAX_LEN + 1), 0, &ast, &e);
    kiln_expr_ast_free(&ast);
    return rc ? kiln_expr_report_check(&e, col, err, errlen) : 0;
}

bool kiln_expr_has_status_call(const char *expr)
{
    kiln_expr_err_t e = {0};
    kiln_expr_ast_t ast = {0};
    bool any = false;
    assert(expr);
    if (kiln_expr_parse(expr, strnlen(expr, KILN_EXPR_MAX_LEN + 1), 0, &ast, &e) == 0)
        any = kiln_expr_ast_has_status(&ast);
    kiln_expr_ast_free(&ast);
    return any;
}

bool kiln_expr_refers_to(const char *expr, const char *context)
{
    kiln_expr_err_t e = {0};
    kiln_expr_ast_t ast = {0};
    bool any = false;
    assert(expr && context);
    if (kiln_expr_parse(expr, strnlen(expr, KILN_EXPR_MAX_LEN + 1), 0, &ast, &e) == 0)
        for (int i = 0; i < ast.n; i++)
            any = any || (ast.nodes[i].kind == KILN_EXPR_N_CONTEXT &&
                          kiln_value_caseeq(ast.nodes[i].text, ast.nodes[i].len, context,
                                            strlen(context)));
    kiln_expr_ast_free(&ast);
    return any;
}

