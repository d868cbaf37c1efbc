/* termsafe.c: step output made safe for a terminal (see termsafe.h). */
#include "common/termsafe.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* Length of the valid UTF-8 sequence at p (at most n bytes), or 0; *cp the
 * code point. Overlong forms and surrogates are invalid. */
static size_t s_utf8(const uint8_t *p, size_t n, uint32_t *cp)
{
    size_t len;
    uint32_t c, min;
    if (p[0] >= 0xc2 && p[0] <= 0xdf) {
        len = 2, c = p[0] & 0x1f, min = 0x80;
    } else if (p[0] >= 0xe0 && p[0] <= 0xef) {
        len = 3, c = p[0] & 0x0f, min = 0x800;
    } else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
        len = 4, c = p[0] & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        c = (c << 6) | (p[i] & 0x3f);
    }
    if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
        return 0;
    *cp = c;
    return len;
}

/* Where the escape sequence at data[i] (ESC) ends, and whether it is an
 * SGR one, which is kept. */
static size_t s_escape(const uint8_t *data, size_t len, size_t i, bool *keep)
{
    *keep = false;
    if (i + 1 >= len)
        return len;
    uint8_t kind = data[i + 1];
    size_t j = i + 2;
    if (kind == '[') {
        bool sgr_params = true;
        while (j < len && data[j] >= 0x30 && data[j] <= 0x3f) {
            sgr_params = sgr_params && ((data[j] >= '0' && data[j] <= '9') || data[j] == ';' ||
                                        data[j] == ':');
            j++;
        }
        bool inter = false;
        while (j < len && data[j] >= 0x20 && data[j] <= 0x2f) {
            inter = true;
            j++;
        }
        if (j >= len)
            return len;
        *keep = data[j] == 'm' && sgr_params && !inter;
        return data[j] >= 0x40 && data[j] <= 0x7e ? j + 1 : j;
    }
    if (kind == ']' || kind == 'P' || kind == '_' || kind == '^' || kind == 'X') {
        /* A string: up to BEL or ST (ESC \). */
        for (; j < len; j++) {
            if (data[j] == 0x07)
                return j + 1;
            if (data[j] == 0x1b && j + 1 < len && data[j + 1] == '\\')
                return j + 2;
        }
        return len;
    }
    /* ESC and one more byte (ESC c resets the terminal, ESC 7/8 save and
     * restore the cursor, ...); with intermediates, up to the final byte. */
    j = i + 1;
    while (j < len && data[j] >= 0x20 && data[j] <= 0x2f)
        j++;
    return j < len ? j + 1 : len;
}

void kiln_termsafe(const uint8_t *data, size_t len, kiln_buf_t *out)
{
    static const char replacement[] = "\xef\xbf\xbd";
    size_t i = 0, run = 0; /* data[run..i) is text still to append */
    while (i < len) {
        uint8_t c = data[i];
        if ((c >= 0x20 && c < 0x7f) || c == '\n' || c == '\t') {
            i++;
            continue;
        }
        if (c >= 0x80) {
            uint32_t cp = 0;
            size_t n = s_utf8(data + i, len - i, &cp);
            if (n && cp >= 0xa0) {
                i += n;
                continue;
            }
            kiln_buf_add(out, (const char *)data + run, i - run);
            if (!n)
                kiln_buf_add(out, replacement, 3);
            i += n ? n : 1; /* a C1 control is dropped */
            run = i;
            continue;
        }
        kiln_buf_add(out, (const char *)data + run, i - run);
        if (c == 0x1b) {
            bool keep;
            size_t end = s_escape(data, len, i, &keep);
            if (keep)
                kiln_buf_add(out, (const char *)data + i, end - i);
            i = end;
        } else if (c == '\r') {
            if (i + 1 >= len || data[i + 1] != '\n')
                kiln_buf_add(out, "\n", 1);
            i++;
        } else {
            i++; /* another control character, or DEL */
        }
        run = i;
    }
    kiln_buf_add(out, (const char *)data + run, i - run);
}

char *kiln_utf8_repair(const char *text, size_t len, size_t *out_len, bool *changed)
{
    const uint8_t *p = (const uint8_t *)text;
    kiln_buf_t b = {.max = 3 * len + 1};
    size_t run = 0, i = 0;
    *changed = false;
    while (i < len) {
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        uint32_t cp;
        size_t n = s_utf8(p + i, len - i, &cp);
        if (n) {
            i += n;
            continue;
        }
        kiln_buf_add(&b, text + run, i - run);
        kiln_buf_add(&b, "\xef\xbf\xbd", 3);
        *changed = true;
        run = ++i;
    }
    kiln_buf_add(&b, text + run, i - run);
    kiln_buf_add(&b, "", 0);
    if (kiln_buf_failed(&b)) {
        free(b.data);
        return NULL;
    }
    if (!b.data && !(b.data = strdup("")))
        return NULL;
    *out_len = b.len;
    return b.data;
}
