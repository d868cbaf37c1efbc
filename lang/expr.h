/* expr.h: the GitHub Actions expression language (the text inside ${{ }}).
 *
 * Workflows put expressions in `if:` conditions and inside ${{ }} in almost
 * any string (run scripts, env values, with: inputs, runs-on). Kiln has to
 * give them the meaning GitHub gives them, or workflows written for GitHub
 * would quietly do something else here: && and || return an operand, ==
 * coerces types and ignores case, a missing property is null rather than an
 * error, an if: without a status function means success() && (...).
 *
 * Values are jansson values (the contexts are JSON: github, env, matrix,
 * needs, ...). Numbers are doubles as in GitHub; results come back as JSON
 * integers when they are whole and exactly representable, reals otherwise.
 *
 * Every entry point is bounded: expression length (KILN_EXPR_MAX_LEN),
 * nesting (KILN_EXPR_MAX_DEPTH), the size of built strings
 * (KILN_EXPR_MAX_RESULT). A malformed or failing expression is an error
 * value ("column N: message"), never a crash. Columns are 1-based byte
 * offsets.
 *
 * The language reads no file: hashFiles() hands its patterns to the host
 * (kiln_expr_env_t.hash_files), which owns the workspace and its limits;
 * the worker's is worker/hashfiles.h.
 *
 * Files: value.c (GitHub's values), expr_parse.c (lexer, parser, lint
 * checks), expr_eval.c (evaluation, the functions), template.c (${{ }} in
 * text, if: conditions); expr_int.h is what they share.
 *
 * Thread rules: no global state; calls on different envs may run
 * concurrently; the env's contexts are only read; the hash_files callback
 * runs on the calling thread.
 */
#ifndef KILN_EXPR_H
#define KILN_EXPR_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

typedef enum { KILN_EXPR_SUCCESS = 0, KILN_EXPR_FAILURE, KILN_EXPR_CANCELLED } kiln_expr_status_t;

/* The host's hashFiles(pattern, ...). patterns[i] (lens[i] bytes, not
 * necessarily NUL-terminated) is the string form of argument i, in the
 * order written; their meaning (globs, '!' exclusions, lines, the
 * --follow-symbolic-links flag) is the host's. On success writes the
 * digest as 64 lower-case hex digits, or "" when nothing matches, to
 * out_hex and returns 0; -1 when out of memory; any other negative code
 * with a one-line message in err (errlen bytes, "hashFiles: ..."), which
 * becomes the expression's error at the call's column. */
typedef int (*kiln_expr_hash_files_t)(void *ctx, const char *const *patterns, const size_t *lens,
                                      size_t n_patterns, char out_hex[65], char *err,
                                      size_t errlen);

typedef struct {
    json_t *contexts;          /* borrowed object: github, env, vars, job, jobs, steps, runner,
                                  secrets, strategy, matrix, needs, inputs (absent -> null) */
    kiln_expr_status_t status; /* what success()/failure()/cancelled() see */
    kiln_expr_hash_files_t hash_files; /* NULL: no workspace, hashFiles is an error */
    void *hash_ctx;                    /* hash_files' first argument */
} kiln_expr_env_t;

#define KILN_EXPR_MAX_LEN (16 * 1024)      /* longer expression text -> error */
#define KILN_EXPR_MAX_DEPTH 64             /* nesting of parens/calls/indexing/operators */
#define KILN_EXPR_MAX_RESULT (1024 * 1024) /* format/join/toJSON/interpolation results, and
                                              the length of a template text */
#define KILN_EXPR_MAX_FILTER (1024 * 1024) /* elements an object filter (a.*.b) may yield */

/* Evaluates one expression (the text inside ${{ }}, without the braces).
 * env may be NULL (no contexts, status success, no hashFiles).
 * Returns 0 and *out (a new reference), or KILN_EINVAL with err = "column N:
 * message" (also stored with kiln_error_set); -1 when out of memory. err may
 * be NULL when errlen is 0. */
int kiln_expr_eval(const char *expr, const kiln_expr_env_t *env, json_t **out, char *err,
                   size_t errlen);

/* An if: condition. Accepts text with or without a surrounding ${{ }}; text
 * that mixes ${{ }} with other characters is a string (GitHub's format()),
 * truthy when not empty. Empty text means success(). When the expression calls
 * none of success(), failure(), always(), cancelled(), it is evaluated as
 * success() && (expr), as GitHub does: with a failed or cancelled status it is
 * false without being evaluated. *out: its truthiness. Errors as for
 * kiln_expr_eval, columns within cond. */
int kiln_expr_condition(const char *cond, const kiln_expr_env_t *env, bool *out, char *err,
                        size_t errlen);

/* Replaces every ${{ expr }} in text with kiln_expr_string() of its value;
 * text without any is copied. *out is malloc'd, the caller frees it. Errors
 * name the column within text; an unclosed ${{ or an empty one is an error.
 * The text and the output are bounded by KILN_EXPR_MAX_RESULT (an embedded
 * NUL in a string value ends the C string). */
int kiln_expr_interpolate(const char *text, const kiln_expr_env_t *env, char **out, char *err,
                          size_t errlen);

/* Syntax-only check of an expression / of every ${{ }} in a template (for
 * `kiln lint`): 0, or KILN_EINVAL with *col (1-based within the given text)
 * and the message in err (without the "column N: " prefix, which the caller
 * formats with its own file and line). Also checks function names and arity,
 * and that context names are known. col and err may be NULL/0. */
int kiln_expr_check(const char *expr, int *col, char *err, size_t errlen);
int kiln_expr_check_template(const char *text, int *col, char *err, size_t errlen);

/* GitHub's conversion to string, malloc'd: null -> "", true/false, numbers
 * integers without ".0" otherwise the shortest form that reads back the same
 * (JavaScript's Number#toString: 0.5, 1e+21, 1e-7), strings as they are,
 * objects/arrays -> their JSON as toJSON() prints it. NULL when out of memory
 * or when the JSON of an object/array would exceed KILN_EXPR_MAX_RESULT. */
char *kiln_expr_string(const json_t *v);

/* false, 0, -0, "", null (and a NULL pointer) are falsy; NaN is falsy;
 * everything else, including every array and object, is truthy. */
bool kiln_expr_truthy(const json_t *v);

/* Whether expr (without braces) calls a status function; whether it refers to
 * a context (e.g. "needs", "matrix", case-insensitive) anywhere - used to know
 * when an expression can be evaluated. Both are false for text that does not
 * parse (evaluating it reports the error). */
bool kiln_expr_has_status_call(const char *expr);
/* The same two for an if: as written (with or without ${{ }} around it),
 * found the way kiln_expr_condition finds its expression; *col is within
 * cond. */
int kiln_expr_check_condition(const char *cond, int *col, char *err, size_t errlen);
bool kiln_expr_condition_has_status_call(const char *cond);
bool kiln_expr_refers_to(const char *expr, const char *context);
/* The same for every ${{ }} of a template text (false for none). */
bool kiln_expr_template_refers_to(const char *text, const char *context);

/* A value a workflow may compute (timeout-minutes, continue-on-error, a
 * matrix, env, runs-on): text that is exactly one ${{ expr }} (blanks
 * around it aside) gives the expression's value with its type; any other
 * text gives the interpolated string. *out is a new reference. Errors as
 * for kiln_expr_eval. */
int kiln_expr_value(const char *text, const kiln_expr_env_t *env, json_t **out, char *err,
                    size_t errlen);

#endif
