/* expr_int.h: what the expression language's files share; not for use
 * outside them (callers see expr.h).
 *
 * The language behind expr.h is split by stage, each stage using only the
 * ones before it:
 *
 *   value.c       GitHub's values: numbers, string form, truthiness, the
 *                 loose comparisons, toJSON's layout (value.h)
 *   expr_parse.c  the lexer and the recursive-descent parser into the AST
 *                 below; unknown functions, wrong arity and unknown
 *                 contexts are syntax errors; kiln_expr_check and the
 *                 questions answered from the tree alone (has_status_call,
 *                 refers_to); the error record every stage fills
 *   expr_eval.c   evaluation of an AST over the contexts: operators, object
 *                 filters, every function (hashFiles through the host's
 *                 callback); kiln_expr_eval
 *   template.c    text around expressions: ${{ }} spans, interpolation,
 *                 kiln_expr_value, and if: conditions (the implicit
 *                 success(), a condition written as a template)
 *
 * Errors: every stage records the first error in a kiln_expr_err_t ("column
 * N" within the caller's text, a message); the entry points turn it into
 * their return code and err text with kiln_expr_report*.
 */
#ifndef KILN_EXPR_INT_H
#define KILN_EXPR_INT_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "common/buf.h"
#include "lang/expr.h"
#include "lang/value.h"

#define KILN_EXPR_MSG_MAX 256 /* longest error message, with its NUL */

/* ---------------------------------------------------------------- errors */

typedef struct {
    bool set;
    bool oom; /* out of memory: reported as -1, not KILN_EINVAL */
    int col;  /* 1-based, within the caller's text */
    char msg[KILN_EXPR_MSG_MAX];
} kiln_expr_err_t;

/* Records an error at column col; only the first counts (later ones are
 * consequences of it). kiln_expr_oom records "out of memory" and returns
 * -1, so a caller can `return kiln_expr_oom(e, col);`. (expr_parse.c) */
void kiln_expr_fail(kiln_expr_err_t *e, int col, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int kiln_expr_oom(kiln_expr_err_t *e, int col);
/* The error as an evaluating entry point reports it: "column N: msg" in
 * err (and kiln_error_set); returns -1 for out of memory, KILN_EINVAL
 * otherwise. */
int kiln_expr_report(const kiln_expr_err_t *e, char *err, size_t errlen);
/* The same for a lint check: the message without the column in err, the
 * column in *col (col may be NULL). */
int kiln_expr_report_check(const kiln_expr_err_t *e, int *col, char *err, size_t errlen);

/* ------------------------------------------------------------- the tree */

typedef enum {
    KILN_EXPR_T_END, /* also "no previous token" */
    KILN_EXPR_T_ERROR,
    KILN_EXPR_T_LPAREN,
    KILN_EXPR_T_RPAREN,
    KILN_EXPR_T_LBRACKET,
    KILN_EXPR_T_RBRACKET,
    KILN_EXPR_T_COMMA,
    KILN_EXPR_T_DOT,
    KILN_EXPR_T_STAR,
    KILN_EXPR_T_NOT, /* KILN_EXPR_T_NOT .. KILN_EXPR_T_OR: the operators */
    KILN_EXPR_T_EQ,
    KILN_EXPR_T_NE,
    KILN_EXPR_T_LT, /* KILN_EXPR_T_LT .. KILN_EXPR_T_GE: the orderings */
    KILN_EXPR_T_LE,
    KILN_EXPR_T_GT,
    KILN_EXPR_T_GE,
    KILN_EXPR_T_AND,
    KILN_EXPR_T_OR,
    KILN_EXPR_T_NUMBER,
    KILN_EXPR_T_STRING,
    KILN_EXPR_T_TRUE,
    KILN_EXPR_T_FALSE,
    KILN_EXPR_T_NULL,
    KILN_EXPR_T_NAME, /* a context */
    KILN_EXPR_T_FUNC, /* a name followed by '(' */
    KILN_EXPR_T_PROP, /* a name after '.' */
} kiln_expr_tok_kind_t;

typedef enum {
    KILN_EXPR_N_NULL,
    KILN_EXPR_N_BOOL,
    KILN_EXPR_N_NUMBER,
    KILN_EXPR_N_STRING,
    KILN_EXPR_N_CONTEXT,
    KILN_EXPR_N_INDEX, /* a.b, a[b], a.*, a[*]: first child the object, second the key */
    KILN_EXPR_N_NOT,
    KILN_EXPR_N_AND, /* n-ary, like GitHub's */
    KILN_EXPR_N_OR,
    KILN_EXPR_N_CMP,
    KILN_EXPR_N_CALL,
} kiln_expr_node_kind_t;

/* The functions, in the parser's table order. The status functions come
 * last: fn >= KILN_EXPR_F_SUCCESS is "calls a status function". */
enum {
    KILN_EXPR_F_CONTAINS,
    KILN_EXPR_F_STARTSWITH,
    KILN_EXPR_F_ENDSWITH,
    KILN_EXPR_F_FORMAT,
    KILN_EXPR_F_JOIN,
    KILN_EXPR_F_TOJSON,
    KILN_EXPR_F_FROMJSON,
    KILN_EXPR_F_HASHFILES,
    KILN_EXPR_F_SUCCESS,
    KILN_EXPR_F_FAILURE,
    KILN_EXPR_F_CANCELLED,
    KILN_EXPR_F_ALWAYS
};

typedef struct {
    kiln_expr_node_kind_t kind;
    int col;                 /* caller-text column of the token that names the node */
    int first, last;         /* children, -1 when none */
    int next;                /* next sibling */
    int n_child;
    int depth;               /* 1 for a leaf */
    kiln_expr_tok_kind_t op; /* N_CMP: which comparison */
    int fn;                  /* N_CALL: a KILN_EXPR_F_* */
    bool flag;               /* N_BOOL: the value; N_INDEX: a wildcard */
    double num;              /* N_NUMBER */
    const char *text;        /* N_STRING: body with '' escapes; N_CONTEXT: name;
                                N_INDEX: .name (borrowed from the parsed text) */
    size_t len;
} kiln_expr_node_t;

/* One growable node array; children are index lists, so a realloc moves
 * nothing that is pointed at. */
typedef struct {
    kiln_expr_node_t *nodes;
    int n, cap;
    int root;
} kiln_expr_ast_t;

/* ----------------------------------------------------------- expr_parse.c */

/* Parses src[0..len) into ast (zeroed by the caller, freed with
 * kiln_expr_ast_free even after an error). base: offset of src within the
 * caller's text (columns are reported within that text). Nodes borrow
 * src. 0, or -1 with err set. */
int kiln_expr_parse(const char *src, size_t len, size_t base, kiln_expr_ast_t *ast,
                    kiln_expr_err_t *err);
void kiln_expr_ast_free(kiln_expr_ast_t *ast);
/* Whether the tree calls success(), failure(), cancelled() or always(). */
bool kiln_expr_ast_has_status(const kiln_expr_ast_t *ast);

/* ------------------------------------------------------------ expr_eval.c */

/* What a NULL env means: no contexts, status success, no hashFiles. */
extern const kiln_expr_env_t kiln_expr_env_none;

/* Parses and evaluates src[0..len) (columns offset by base); env may be
 * NULL. With has_status (an if:), *has_status tells whether the expression
 * calls a status function, and one that calls none is success() && (...):
 * false without being evaluated when the status is not success. 0 and *out
 * (a new reference), or -1 with e set. */
int kiln_expr_run(const char *src, size_t len, size_t base, const kiln_expr_env_t *env,
                  json_t **out, bool *has_status, kiln_expr_err_t *e);
/* Turns a failed buffer into an error naming what was built; 0 when b is
 * fine. */
int kiln_expr_buf_check(const kiln_buf_t *b, kiln_expr_err_t *e, int col, const char *what);

#endif
