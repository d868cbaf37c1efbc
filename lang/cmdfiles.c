/* cmdfiles.c: the step files parsed (see cmdfiles.h). */
#include "lang/cmdfiles.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/buf.h"
#include "common/error.h"

__attribute__((format(printf, 3, 4))) static int s_fail(char *err, size_t errlen,
                                                        const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    kiln_error_vset(fmt, ap);
    va_end(ap);
    if (err && errlen)
        snprintf(err, errlen, "%s", kiln_error_last());
    return KILN_EINVAL;
}

/* The next line of text[0..len) from *pos: [*start, *start + *n) without
 * its "\n" or "\r\n". Returns false at the end of the text. */
static bool s_next_line(const char *text, size_t len, size_t *pos, const char **start, size_t *n)
{
    if (*pos >= len)
        return false;
    const char *s = text + *pos;
    const char *nl = memchr(s, '\n', len - *pos);
    size_t l = nl ? (size_t)(nl - s) : len - *pos;
    *pos += l + (nl ? 1 : 0);
    if (l && s[l - 1] == '\r')
        l--;
    *start = s;
    *n = l;
    return true;
}

static int s_nul(const char *name, const char *text, size_t len, char *err, size_t errlen)
{
    const char *nul = memchr(text, '\0', len);
    if (!nul)
        return 0;
    size_t lineno = 1;
    for (const char *p = text; p < nul; p++)
        lineno += *p == '\n';
    return s_fail(err, errlen, "%s:%zu: NUL byte", name, lineno);
}

/* Moves what a file added into out, once the whole file parsed. */
static int s_merge(kiln_kv_t *out, const kiln_kv_t *got, const char *name, char *err,
                   size_t errlen)
{
    for (size_t i = 0; i < got->n; i++) {
        size_t klen;
        const char *key = kiln_kv_key(got, i, &klen);
        const char *value = kiln_kv_value(got, i);
        if (kiln_kv_setn(out, key, klen, value, strlen(value)) != 0) {
            s_fail(err, errlen, "%s: %s", name, kiln_error_last());
            return -1;
        }
    }
    return 0;
}

static int s_parse_kv(const char *name, const char *text, size_t len, kiln_kv_t *out,
                      size_t *n_refused, char *err, size_t errlen)
{
    size_t pos = 0, lineno = 0;
    const char *s;
    size_t n;
    while (s_next_line(text, len, &pos, &s, &n)) {
        lineno++;
        if (n == 0)
            continue;
        const char *eq = memchr(s, '=', n);
        const char *heredoc = memmem(s, n, "<<", 2);
        size_t key_len;
        kiln_buf_t v = {.max = KILN_CMD_MAX_FILE};
        if (eq && (!heredoc || eq < heredoc)) {
            key_len = (size_t)(eq - s);
            if (key_len == 0)
                return s_fail(err, errlen, "%s:%zu: empty name before '='", name, lineno);
            kiln_buf_add(&v, eq + 1, n - key_len - 1);
        } else if (heredoc) {
            key_len = (size_t)(heredoc - s);
            const char *delim = heredoc + 2;
            size_t delim_len = n - key_len - 2;
            if (key_len == 0 || delim_len == 0)
                return s_fail(err, errlen, "%s:%zu: empty %s in 'name<<DELIMITER'", name, lineno,
                              key_len ? "delimiter" : "name");
            size_t opened = lineno;
            bool closed = false, first = true;
            const char *vs;
            size_t vn;
            while (s_next_line(text, len, &pos, &vs, &vn)) {
                lineno++;
                if (vn == delim_len && memcmp(vs, delim, vn) == 0) {
                    closed = true;
                    break;
                }
                if (!first)
                    kiln_buf_add(&v, "\n", 1);
                kiln_buf_add(&v, vs, vn);
                first = false;
            }
            if (!closed) {
                free(v.data);
                return s_fail(err, errlen, "%s:%zu: no closing delimiter '%.*s' for '%.*s'",
                              name, opened, (int)(delim_len > 64 ? 64 : delim_len), delim,
                              (int)(key_len > 64 ? 64 : key_len), s);
            }
        } else {
            return s_fail(err, errlen, "%s:%zu: expected 'name=value' or 'name<<DELIMITER'",
                          name, lineno);
        }
        if (kiln_buf_failed(&v)) {
            free(v.data);
            s_fail(err, errlen, "%s: out of memory", name);
            return -1;
        }
        static const char node_options[] = "NODE_OPTIONS";
        if (n_refused && key_len == sizeof node_options - 1 &&
            strncasecmp(s, node_options, key_len) == 0) {
            free(v.data);
            (*n_refused)++;
            continue;
        }
        int rc = kiln_kv_setn(out, s, key_len, v.data ? v.data : "", v.len);
        free(v.data);
        if (rc != 0)
            return s_fail(err, errlen, "%s:%zu: %s", name, lineno, kiln_error_last());
    }
    return 0;
}

int kiln_cmdfiles_parse_kv(const char *name, const char *text, size_t len, kiln_kv_t *out,
                           size_t *n_refused, char *err, size_t errlen)
{
    kiln_kv_t got = {0};
    size_t refused = 0;
    int rc = s_nul(name, text, len, err, errlen);
    if (rc == 0)
        rc = s_parse_kv(name, text, len, &got, n_refused ? &refused : NULL, err, errlen);
    if (rc == 0)
        rc = s_merge(out, &got, name, err, errlen);
    if (n_refused)
        *n_refused = rc == 0 ? refused : 0;
    kiln_kv_free(&got);
    return rc;
}

int kiln_cmdfiles_parse_path(const char *name, const char *text, size_t len, kiln_kv_t *paths,
                             char *err, size_t errlen)
{
    kiln_kv_t got = {0};
    size_t pos = 0;
    const char *s;
    size_t n;
    int rc = s_nul(name, text, len, err, errlen);
    while (rc == 0 && s_next_line(text, len, &pos, &s, &n)) {
        if (n == 0)
            continue;
        /* A directory with '=' cannot be a key; it is rare enough to
         * refuse with a message. */
        if (kiln_kv_setn(&got, s, n, s, n) != 0)
            rc = s_fail(err, errlen, "%s: %s", name, kiln_error_last());
    }
    if (rc == 0)
        rc = s_merge(paths, &got, name, err, errlen);
    kiln_kv_free(&got);
    return rc;
}
