/* buf.c: the bounded text buffer (see buf.h). */
#include "common/buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool kiln_buf_failed(const kiln_buf_t *b)
{
    return b->toobig || b->oom || b->deep;
}

void kiln_buf_add(kiln_buf_t *b, const char *p, size_t n)
{
    if (kiln_buf_failed(b))
        return;
    if (n > b->max - b->len) {
        b->toobig = true;
        return;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        char *grown;
        while (cap < b->len + n + 1)
            cap *= 2;
        grown = realloc(b->data, cap);
        if (!grown) {
            b->oom = true;
            return;
        }
        b->data = grown;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void kiln_buf_str(kiln_buf_t *b, const char *s)
{
    kiln_buf_add(b, s, strlen(s));
}

void kiln_buf_json_string(kiln_buf_t *b, const char *s, size_t n)
{
    size_t run = 0;
    kiln_buf_add(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char u[8];
        const char *esc = NULL;
        size_t skip = 1;
        switch (c) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        case '\b': esc = "\\b"; break;
        case '\f': esc = "\\f"; break;
        default:
            if (c < 0x20) {
                snprintf(u, sizeof u, "\\u%04x", c);
                esc = u;
            } else if (c == 0xe2 && i + 2 < n && (unsigned char)s[i + 1] == 0x80 &&
                       ((unsigned char)s[i + 2] == 0xa8 || (unsigned char)s[i + 2] == 0xa9)) {
                /* U+2028/2029 end lines in JavaScript: escaped like Newtonsoft */
                esc = (unsigned char)s[i + 2] == 0xa8 ? "\\u2028" : "\\u2029";
                skip = 3;
            }
        }
        if (!esc) {
            run++;
            continue;
        }
        kiln_buf_add(b, s + i - run, run);
        run = 0;
        kiln_buf_str(b, esc);
        i += skip - 1;
    }
    kiln_buf_add(b, s + n - run, run);
    kiln_buf_add(b, "\"", 1);
}
