/* buf.h: a growing text buffer with a bound.
 *
 * Appends never fail loudly: the first one that would pass `max` bytes, or
 * find no memory, marks the buffer failed and every later append is ignored,
 * so a writer builds its whole text and checks once at the end. A writer of
 * nested values that stops at its own depth limit marks `deep` the same way.
 * `data` is always NUL-terminated once anything was added; the owner frees
 * it.
 */
#ifndef KILN_BUF_H
#define KILN_BUF_H

#include <stdbool.h>
#include <stddef.h>

typedef struct {
    char *data;
    size_t len, cap, max;
    bool toobig, oom, deep;
} kiln_buf_t;

bool kiln_buf_failed(const kiln_buf_t *b);
void kiln_buf_add(kiln_buf_t *b, const char *p, size_t n);
void kiln_buf_str(kiln_buf_t *b, const char *s);
/* s[0..n) as a JSON string: quotes, backslashes and control characters
 * escaped, and U+2028/U+2029 too (they end lines in JavaScript). */
void kiln_buf_json_string(kiln_buf_t *b, const char *s, size_t n);

#endif
