/* value.h: GitHub's values, the rules that concern values alone.
 *
 * An expression computes over jansson values (the contexts are JSON), but
 * GitHub gives them meanings JSON does not have: strings turn into numbers
 * ('0x1f' is 31, '' is 0), numbers print as JavaScript prints them, ==
 * coerces types and ignores case, an object or array is always truthy.
 * These conversions follow the tables of GitHub's "Expressions" page and
 * the actions/runner sources behind them, and they are decided here, once:
 * the lexer reads number literals with kiln_value_parse_number, the
 * evaluator (expr_eval.c) compares with kiln_value_equal/greater, and
 * format(), join(), toJSON() and interpolation print with
 * kiln_value_append/append_json. kiln_expr_string and kiln_expr_truthy
 * (expr.h) are the public face of the same rules and live in value.c.
 *
 * Case folding is ASCII only (a documented deviation: .NET folds Unicode).
 * No state; everything here may be called from any thread.
 */
#ifndef KILN_VALUE_H
#define KILN_VALUE_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "common/buf.h"

#define KILN_VALUE_NUMBUF 64          /* string form of any number, with its NUL */
#define KILN_VALUE_JSON_DEPTH 2048    /* JSON nesting we print (jansson parses as deep) */

/* GitHub's white space: around numbers, around ${{ }} bodies, between tokens. */
static inline bool kiln_value_is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static inline bool kiln_value_is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* ASCII upper case: .NET's OrdinalIgnoreCase compares upper-cased chars. */
static inline unsigned char kiln_value_upper(unsigned char c)
{
    return (c >= 'a' && c <= 'z') ? (unsigned char)(c - 32) : c;
}

/* a[0..an) against b[0..bn) ignoring ASCII case: <0, 0, >0. */
int kiln_value_casecmp(const char *a, size_t an, const char *b, size_t bn);
bool kiln_value_caseeq(const char *a, size_t an, const char *b, size_t bn);

/* GitHub's string-to-number: surrounding white space ignored, empty -> 0,
 * decimal with optional sign, fraction and exponent (".5" and "5." too),
 * 0x hex and 0o octal (any unsigned 64-bit value). false means NaN. */
bool kiln_value_parse_number(const char *s, size_t n, double *out);
/* d in GitHub's string form (JavaScript's Number#toString): whole numbers
 * without ".0", others the shortest digits that read back the same. */
void kiln_value_format_number(double d, char out[KILN_VALUE_NUMBUF]);
/* A new JSON value for a finite number: an integer when whole and exactly
 * representable (so a dump shows 1, not 1.0), a real otherwise. NULL when
 * out of memory. */
json_t *kiln_value_number_json(double d);
/* GitHub's conversion to number: null/false 0, true 1, strings as
 * kiln_value_parse_number reads them (NaN when it cannot), arrays and
 * objects NaN. */
double kiln_value_number_of(const json_t *v);
bool kiln_value_is_container(const json_t *v);
/* The string form of a primitive as (*p, *n), borrowed from v or held in
 * tmp. false for arrays and objects (nothing is set). */
bool kiln_value_prim_str(const json_t *v, char tmp[KILN_VALUE_NUMBUF], const char **p, size_t *n);

/* GitHub's loose a == b and a > b (a < b is b > a). See value.c. */
bool kiln_value_equal(const json_t *a, const json_t *b);
bool kiln_value_greater(const json_t *a, const json_t *b);

/* Appends to b v's string form (kiln_expr_string's) / toJSON's text of v.
 * Failures (too big, out of memory, deeper than KILN_VALUE_JSON_DEPTH) are
 * marked in b, as for every kiln_buf_t writer. */
void kiln_value_append(kiln_buf_t *b, const json_t *v);
void kiln_value_append_json(kiln_buf_t *b, const json_t *v);

#endif
