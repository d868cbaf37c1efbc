/* commands.c: workflow commands in a step's output (see commands.h for the
 * contract; the step files are cmdfiles.c's).
 *
 * Lines
 *   Output arrives in arbitrary chunks. Bytes up to a newline collect in
 *   self->part; a complete line is then either a workflow command (parsed as
 *   GitHub's runner does: leading blanks skipped, "::", the name up to a
 *   blank, properties up to the next "::", the message after it) or text.
 *   self->part holds at most KILN_CMD_MAX_LINE bytes plus the longest mask
 *   minus one. When a line outgrows that it stops being a candidate command
 *   and is passed on in pieces ("long line" mode); each piece is masked up to
 *   the point where every mask starting there can still be seen whole, and
 *   the rest stays in part for the next piece.
 *
 * Masking
 *   Every byte covered by an occurrence of any mask is hidden; overlapping or
 *   nested occurrences merge into one run, shown as a single "***" (GitHub's
 *   masker merges likewise), so no part of any secret survives. A first-byte
 *   table skips positions no mask can start at. Masks never contain a
 *   newline (a multi-line value is registered line by line), so a run never
 *   crosses lines. In the rare case where a run reaches past what a piece
 *   may emit (more than a whole piece of back-to-back secrets), the run is
 *   emitted whole and the next longest-mask-minus-one bytes are masked
 *   unconditionally (self->debt): over-masking is harmless, a leak is not.
 */
#include "lang/commands.h"

#include <assert.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/error.h"

/* The visible marker for ::group::NAME (U+25B8, as GitHub's log viewer draws it). */
#define S_GROUP_MARK "\xe2\x96\xb8 "

#define S_DISABLED_FMT                                                                             \
    "The `%s` command is disabled. Please upgrade to using Environment Files or opt into "        \
    "unsecure command execution by setting the `ACTIONS_ALLOW_UNSECURE_COMMANDS` environment "    \
    "variable to `true`."

/* A growing output buffer; NUL-terminated whenever len > 0 or data != NULL. */
typedef struct {
    char *data;
    size_t len;
    size_t cap;
} s_text_t;

struct kiln_commands {
    char **masks;              /* KILN_CMD_MAX_MASKS slots */
    size_t *mask_lens;
    size_t n_masks;
    size_t max_mask;           /* length of the longest mask, 0 with none */
    bool first[UCHAR_MAX + 1]; /* first[c]: some mask starts with byte c */

    kiln_annotation_t *anns;   /* KILN_CMD_MAX_ANNOTATIONS slots */
    size_t n_anns;
    size_t dropped_anns;

    int group_depth;
    char *stop_token;          /* non-NULL while commands are stopped */

    char *part;                /* the current, incomplete line */
    size_t part_len;
    size_t part_cap;
    bool long_line;            /* pieces of this line went out: it is text */
    bool discard;              /* dropping the rest of an over-long ::add-mask:: line */
    size_t debt;               /* leading bytes of part to mask unconditionally */

    /* ::set-output and ::save-state, which the toolkit's older versions
     * still print: taken by the step's end (kiln_commands_take_legacy). */
    kiln_kv_t legacy_out, legacy_state;
};

/* ---------------------------------------------------------------- output */

static int s_text_add(s_text_t *t, const char *data, size_t len)
{
    if (t->len + len + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 256;
        while (cap < t->len + len + 1)
            cap *= 2;
        char *grown = realloc(t->data, cap);
        if (!grown)
            return -1;
        t->data = grown;
        t->cap = cap;
    }
    if (len)
        memcpy(t->data + t->len, data, len);
    t->len += len;
    t->data[t->len] = '\0';
    return 0;
}

static int s_text_str(s_text_t *t, const char *s)
{
    return s_text_add(t, s, strlen(s));
}

/* --------------------------------------------------------------- masking */

/* End (exclusive) of the longest mask occurrence starting at text[i] and
 * lying wholly inside text[0..n), or 0 when none does. */
static size_t s_match_end(const kiln_commands_t *self, const char *text, size_t n, size_t i)
{
    if (!self->first[(unsigned char)text[i]])
        return 0;
    size_t best = 0;
    for (size_t k = 0; k < self->n_masks; k++) {
        size_t mlen = self->mask_lens[k];
        if (mlen <= n - i && i + mlen > best && memcmp(text + i, self->masks[k], mlen) == 0)
            best = i + mlen;
    }
    return best;
}

/* Appends text[0..n) to t with every masked run replaced by KILN_CMD_MASK.
 * debt: leading bytes to mask regardless (see the file comment).
 * final: text ends here (a whole line), so every byte is consumed. Otherwise
 * more of the line follows: scanning stops where a mask starting there might
 * reach past n, and *consumed says how far it got; *debt_out receives the
 * debt for what follows. Returns 0 or -1 (no memory). */
static int s_mask_into(const kiln_commands_t *self, s_text_t *t, const char *text, size_t n,
                       bool final, size_t debt, size_t *consumed, size_t *debt_out)
{
    size_t hold = (!final && self->max_mask) ? self->max_mask - 1 : 0;
    size_t lim = n > hold ? n - hold : 0;
    size_t i = 0, plain = 0;
    if (debt_out)
        *debt_out = 0;
    while (i < lim) {
        size_t end = s_match_end(self, text, n, i);
        if (i == 0 && debt > end)
            end = debt < n ? debt : n;
        if (!end) {
            i++;
            continue;
        }
        /* Grow the run by every occurrence starting inside it. */
        for (size_t j = i + 1; j < end; j++) {
            size_t e = s_match_end(self, text, n, j);
            if (e > end)
                end = e;
        }
        if (!final && end > lim) {
            /* An occurrence starting inside the run could reach past n. Keep
             * the run for the next piece unless nothing would go out at all. */
            if (i > 0)
                break;
            if (debt_out)
                *debt_out = hold;
        }
        if (s_text_add(t, text + plain, i - plain) != 0 || s_text_str(t, KILN_CMD_MASK) != 0)
            return -1;
        i = plain = end;
    }
    if (final)
        i = n;
    if (s_text_add(t, text + plain, i > plain ? i - plain : 0) != 0)
        return -1;
    if (consumed)
        *consumed = i;
    return 0;
}

static int s_mask_all(const kiln_commands_t *self, s_text_t *t, const char *text, size_t n)
{
    return s_mask_into(self, t, text, n, true, 0, NULL, NULL);
}

/* malloc'd masked copy of text[0..n). */
static char *s_masked(const kiln_commands_t *self, const char *text, size_t n)
{
    s_text_t t = {0};
    if (s_mask_all(self, &t, text, n) != 0 || s_text_add(&t, "", 0) != 0) {
        free(t.data);
        return NULL;
    }
    return t.data;
}

static bool s_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v';
}

static bool s_has_mask(const kiln_commands_t *self, const char *value, size_t len)
{
    for (size_t k = 0; k < self->n_masks; k++)
        if (self->mask_lens[k] == len && memcmp(self->masks[k], value, len) == 0)
            return true;
    return false;
}

/* Registers value[0..len) trimmed of blanks. Returns 1 when added or known,
 * 0 when blank, -2 when the table is full, -1 when out of memory. */
static int s_add_mask(kiln_commands_t *self, const char *value, size_t len)
{
    while (len && s_blank(value[0])) {
        value++;
        len--;
    }
    while (len && s_blank(value[len - 1]))
        len--;
    if (!len)
        return 0;
    if (s_has_mask(self, value, len))
        return 1;
    if (self->n_masks == KILN_CMD_MAX_MASKS)
        return -2;
    char *copy = strndup(value, len);
    if (!copy)
        return -1;
    self->masks[self->n_masks] = copy;
    self->mask_lens[self->n_masks] = len;
    self->n_masks++;
    self->first[(unsigned char)value[0]] = true;
    if (len > self->max_mask)
        self->max_mask = len;
    return 1;
}

/* ------------------------------------------------------------- lifecycle */

kiln_commands_t *kiln_commands_new(void)
{
    kiln_commands_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->masks = calloc(KILN_CMD_MAX_MASKS, sizeof *self->masks);
    self->mask_lens = calloc(KILN_CMD_MAX_MASKS, sizeof *self->mask_lens);
    self->anns = calloc(KILN_CMD_MAX_ANNOTATIONS, sizeof *self->anns);
    if (!self->masks || !self->mask_lens || !self->anns)
        kiln_commands_destroy(&self);
    return self;
}

void kiln_commands_destroy(kiln_commands_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    kiln_commands_t *self = *self_p;
    if (self->masks)
        for (size_t k = 0; k < self->n_masks; k++)
            free(self->masks[k]);
    free(self->masks);
    free(self->mask_lens);
    kiln_kv_free(&self->legacy_out);
    kiln_kv_free(&self->legacy_state);
    if (self->anns)
        for (size_t i = 0; i < self->n_anns; i++) {
            free(self->anns[i].message);
            free(self->anns[i].title);
            free(self->anns[i].file);
        }
    free(self->anns);
    free(self->stop_token);
    free(self->part);
    free(self);
    *self_p = NULL;
}

size_t kiln_commands_n_annotations(const kiln_commands_t *self)
{
    assert(self);
    return self->n_anns;
}

const kiln_annotation_t *kiln_commands_annotation(const kiln_commands_t *self, size_t i)
{
    assert(self);
    assert(i < self->n_anns);
    return &self->anns[i];
}

size_t kiln_commands_dropped_annotations(const kiln_commands_t *self)
{
    assert(self);
    return self->dropped_anns;
}

int kiln_commands_group_depth(const kiln_commands_t *self)
{
    assert(self);
    return self->group_depth;
}

char *kiln_commands_mask(const kiln_commands_t *self, const char *text)
{
    assert(self);
    assert(text);
    return s_masked(self, text, strlen(text));
}

/* ------------------------------------------------------ command parsing */

/* A workflow command as found in a line; pointers into the line. */
typedef struct {
    const char *name;
    size_t name_len;
    const char *props; /* after the first blank of the command part */
    size_t props_len;
    const char *data;  /* the message, still escaped */
    size_t data_len;
} s_cmd_t;

/* Splits "  ::name props::data" as GitHub's runner does (TryParseV2).
 * Returns false when the line is not shaped as a command. */
static bool s_parse(const char *line, size_t n, s_cmd_t *cmd)
{
    const char *p = line, *end = line + n;
    while (p < end && s_blank(*p))
        p++;
    if (end - p < 2 || p[0] != ':' || p[1] != ':')
        return false;
    p += 2;
    const char *sep = memmem(p, (size_t)(end - p), "::", 2);
    if (!sep)
        return false;
    const char *space = memchr(p, ' ', (size_t)(sep - p));
    cmd->name = p;
    cmd->name_len = (size_t)((space ? space : sep) - p);
    cmd->props = space ? space + 1 : sep;
    cmd->props_len = (size_t)(sep - cmd->props);
    cmd->data = sep + 2;
    cmd->data_len = (size_t)(end - cmd->data);
    return true;
}

static bool s_is(const s_cmd_t *cmd, const char *name)
{
    return cmd->name_len == strlen(name) && strncasecmp(cmd->name, name, cmd->name_len) == 0;
}

/* malloc'd unescaped copy of s[0..n): %25 %0D %0A, and with property=true
 * also %3A %2C. Anything else stays as written. */
static char *s_unescape(const char *s, size_t n, bool property)
{
    char *out = malloc(n + 1);
    if (!out)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%' && n - i >= 3) {
            char a = s[i + 1], b = s[i + 2], c = 0;
            if (b >= 'A' && b <= 'Z')
                b = (char)(b - 'A' + 'a'); /* hex letters in either case */
            if (a == '2' && b == '5')
                c = '%';
            else if (a == '0' && b == 'd')
                c = '\r';
            else if (a == '0' && b == 'a')
                c = '\n';
            else if (property && a == '3' && b == 'a')
                c = ':';
            else if (property && a == '2' && b == 'c')
                c = ',';
            if (c) {
                out[o++] = c;
                i += 2;
                continue;
            }
        }
        out[o++] = s[i];
    }
    out[o] = '\0';
    return out;
}

/* Finds property key in "k=v,k=v" (names case-insensitive, the last one
 * given wins, entries without '=' or with an empty side ignored, as GitHub).
 * Returns the raw value span or NULL. */
static const char *s_prop(const s_cmd_t *cmd, const char *key, size_t *len)
{
    const char *found = NULL;
    const char *p = cmd->props, *end = cmd->props + cmd->props_len;
    size_t klen = strlen(key);
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *item_end = comma ? comma : end;
        const char *k = p;
        while (k < item_end && s_blank(*k))
            k++;
        const char *eq = memchr(k, '=', (size_t)(item_end - k));
        if (eq) {
            const char *k_end = eq;
            while (k_end > k && s_blank(k_end[-1]))
                k_end--;
            const char *v_end = item_end;
            while (v_end > eq + 1 && s_blank(v_end[-1]))
                v_end--;
            if ((size_t)(k_end - k) == klen && strncasecmp(k, key, klen) == 0 && v_end > eq + 1) {
                found = eq + 1;
                *len = (size_t)(v_end - found);
            }
        }
        p = comma ? comma + 1 : end;
    }
    return found;
}

/* Masked, unescaped property value, NULL when absent; *oom on failure. */
static char *s_prop_str(const kiln_commands_t *self, const s_cmd_t *cmd, const char *key, bool *oom)
{
    size_t len = 0;
    const char *raw = s_prop(cmd, key, &len);
    if (!raw)
        return NULL;
    char *plain = s_unescape(raw, len, true);
    char *masked = plain ? s_masked(self, plain, strlen(plain)) : NULL;
    free(plain);
    if (!masked)
        *oom = true;
    return masked;
}

/* A positive decimal property, 0 when absent or anything else. */
static int s_prop_int(const s_cmd_t *cmd, const char *key)
{
    size_t len = 0;
    const char *raw = s_prop(cmd, key, &len);
    if (!raw || len == 0 || len > 9)
        return 0;
    int v = 0;
    for (size_t i = 0; i < len; i++) {
        if (raw[i] < '0' || raw[i] > '9')
            return 0;
        v = v * 10 + (raw[i] - '0');
    }
    return v;
}

/* Shows "Error: message" (masked) and records the annotation. message is
 * already unescaped; props come from cmd (NULL for the runner's own). */
/* Cuts text (malloc'd, at least max + 1 bytes of room when longer) to max
 * bytes ending in a mark, on a UTF-8 character boundary. */
static void s_cut(char *text, size_t max)
{
    static const char mark[] = " [cut]";
    size_t len = strlen(text);
    if (len <= max)
        return;
    size_t keep = max - (sizeof mark - 1);
    while (keep > 0 && ((unsigned char)text[keep] & 0xc0) == 0x80)
        keep--;
    memcpy(text + keep, mark, sizeof mark);
}

static int s_annotate(kiln_commands_t *self, s_text_t *t, kiln_ann_level_t level, const char *message,
                      const s_cmd_t *cmd)
{
    static const char *const labels[] = {"Error: ", "Warning: ", "Notice: "};
    char *masked = s_masked(self, message, strlen(message));
    if (!masked)
        return -1;
    int rc = -1;
    if (s_text_str(t, labels[level]) != 0 || s_text_str(t, masked) != 0 || s_text_add(t, "\n", 1) != 0)
        goto cleanup;
    if (self->n_anns == KILN_CMD_MAX_ANNOTATIONS) {
        self->dropped_anns++;
        rc = 0;
        goto cleanup;
    }
    /* Kept annotations travel in the job's result: each is cut to a size
     * that lets all of them fit, with a visible mark (the log line above
     * keeps the whole text). */
    s_cut(masked, KILN_CMD_MAX_ANNOTATION_TEXT);
    kiln_annotation_t a = {.level = level, .message = masked};
    bool oom = false;
    if (cmd) {
        a.title = s_prop_str(self, cmd, "title", &oom);
        a.file = s_prop_str(self, cmd, "file", &oom);
        if (a.title)
            s_cut(a.title, KILN_CMD_MAX_ANNOTATION_TITLE);
        if (a.file)
            s_cut(a.file, KILN_CMD_MAX_ANNOTATION_TITLE);
        a.line = s_prop_int(cmd, "line");
        a.end_line = s_prop_int(cmd, "endLine");
        a.col = s_prop_int(cmd, "col");
        a.end_col = s_prop_int(cmd, "endColumn");
    }
    if (oom) {
        free(a.title);
        free(a.file);
        goto cleanup;
    }
    self->anns[self->n_anns++] = a;
    masked = NULL;
    rc = 0;
cleanup:
    free(masked);
    return rc;
}

/* ::add-mask::VALUE. The value never reaches t. */
int kiln_commands_add_mask(kiln_commands_t *self, const char *value)
{
    for (const char *p = value; *p;) {
        size_t len = strcspn(p, "\r\n");
        int r = s_add_mask(self, p, len);
        if (r == -2) {
            kiln_error_set("more than %d masks", KILN_CMD_MAX_MASKS);
            return KILN_ETOOBIG;
        }
        if (r == -1) {
            kiln_error_set("out of memory");
            return -1;
        }
        p += len;
        p += strspn(p, "\r\n");
    }
    return 0;
}

static int s_cmd_add_mask(kiln_commands_t *self, s_text_t *t, const char *value)
{
    bool any = false, full = false;
    const char *p = value;
    for (;;) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        int r = s_add_mask(self, p, len);
        if (r == -1)
            return -1;
        any = any || r != 0;
        full = full || r == -2;
        if (!nl)
            break;
        p = nl + 1;
    }
    if (!any)
        return s_text_str(t, "Warning: Can't add secret mask for empty string in ::add-mask:: command.\n");
    if (s_text_str(t, "::add-mask::" KILN_CMD_MASK "\n") != 0)
        return -1;
    if (full) {
        char warn[128];
        snprintf(warn, sizeof warn, "Warning: too many masks in this job (at most %d); "
                 "a value given to ::add-mask:: is not masked.\n", KILN_CMD_MAX_MASKS);
        return s_text_str(t, warn);
    }
    return 0;
}

/* Acts on a command line. Returns 1 when handled (the line is consumed),
 * 0 when the line is not a command Kiln knows (shown as text), -1 when out
 * of memory. */
static int s_command(kiln_commands_t *self, s_text_t *t, const s_cmd_t *cmd)
{
    static const struct {
        const char *name;
        kiln_ann_level_t level;
    } issues[] = {{"error", KILN_ANN_ERROR}, {"warning", KILN_ANN_WARNING}, {"notice", KILN_ANN_NOTICE}};

    int rc = -1;
    char *data = s_unescape(cmd->data, cmd->data_len, false);
    if (!data)
        return -1;
    for (size_t k = 0; k < sizeof issues / sizeof issues[0]; k++)
        if (s_is(cmd, issues[k].name)) {
            rc = s_annotate(self, t, issues[k].level, data, cmd) == 0 ? 1 : -1;
            goto cleanup;
        }
    if (s_is(cmd, "group")) {
        char *masked = s_masked(self, data, strlen(data));
        if (!masked)
            goto cleanup;
        rc = (s_text_str(t, S_GROUP_MARK) == 0 && s_text_str(t, masked) == 0 && s_text_add(t, "\n", 1) == 0)
                 ? 1
                 : -1;
        free(masked);
        if (rc == 1 && self->group_depth < INT_MAX)
            self->group_depth++;
    } else if (s_is(cmd, "endgroup")) {
        if (self->group_depth > 0)
            self->group_depth--;
        rc = 1;
    } else if (s_is(cmd, "add-mask")) {
        rc = s_cmd_add_mask(self, t, data) == 0 ? 1 : -1;
    } else if (s_is(cmd, "stop-commands")) {
        if (data[0] == '\0') {
            static const char warn[] = "Warning: ::stop-commands:: needs a token; commands stay enabled.\n";
            rc = s_text_str(t, warn) == 0 ? 1 : -1;
        } else {
            free(self->stop_token);
            self->stop_token = data;
            data = NULL;
            rc = 1;
        }
    } else if (s_is(cmd, "debug") || s_is(cmd, "echo")) {
        rc = 1;
    } else if (s_is(cmd, "set-output") || s_is(cmd, "save-state")) {
        /* As GitHub's runner does today: still carried out, with a
         * deprecation warning. */
        bool output = s_is(cmd, "set-output");
        const char *which = output ? "set-output" : "save-state";
        size_t nlen = 0;
        const char *raw = s_prop(cmd, "name", &nlen);
        char *name = raw ? s_unescape(raw, nlen, true) : NULL, msg[400];
        if (raw && !name)
            goto cleanup;
        int set = name && name[0]
                      ? kiln_kv_set(output ? &self->legacy_out : &self->legacy_state, name, data)
                      : KILN_EINVAL;
        free(name);
        if (set == -1)
            goto cleanup;
        if (set != 0)
            snprintf(msg, sizeof msg, "Invalid `%s` command: it needs a name=NAME property (and "
                     "at most %d of them in a step)", which, KILN_KV_MAX);
        else
            snprintf(msg, sizeof msg, "The `%s` command is deprecated and will be disabled soon. "
                     "Please upgrade to using Environment Files. For more information see: "
                     "https://github.blog/changelog/2022-10-11-github-actions-deprecating-"
                     "save-state-and-set-output-commands/", which);
        rc = s_annotate(self, t, set != 0 ? KILN_ANN_ERROR : KILN_ANN_WARNING, msg, NULL) == 0 ? 1 : -1;
    } else if (s_is(cmd, "set-env") || s_is(cmd, "add-path")) {
        char msg[512];
        snprintf(msg, sizeof msg, S_DISABLED_FMT, s_is(cmd, "set-env") ? "set-env" : "add-path");
        rc = s_annotate(self, t, KILN_ANN_ERROR, msg, NULL) == 0 ? 1 : -1;
    } else {
        rc = 0;
    }
cleanup:
    free(data);
    return rc;
}

void kiln_commands_take_legacy(kiln_commands_t *self, kiln_kv_t *outputs, kiln_kv_t *state)
{
    *outputs = self->legacy_out;
    *state = self->legacy_state;
    memset(&self->legacy_out, 0, sizeof self->legacy_out);
    memset(&self->legacy_state, 0, sizeof self->legacy_state);
}

/* ------------------------------------------------------------ the lines */

static size_t s_hold(const kiln_commands_t *self)
{
    return self->max_mask ? self->max_mask - 1 : 0;
}

/* True when part (over KILN_CMD_MAX_LINE, so text) starts as an add-mask
 * command: its value must not be shown even though it is not processed. */
static bool s_oversized_mask(const kiln_commands_t *self)
{
    if (self->stop_token)
        return false;
    static const char prefix[] = "::add-mask::";
    const char *p = self->part, *end = self->part + self->part_len;
    while (p < end && s_blank(*p))
        p++;
    return (size_t)(end - p) >= sizeof prefix - 1 && strncasecmp(p, prefix, sizeof prefix - 1) == 0;
}

static int s_refuse_oversized_mask(kiln_commands_t *self, s_text_t *t)
{
    char warn[128];
    snprintf(warn, sizeof warn, "Warning: ::add-mask:: line longer than %d bytes; the value is not masked.\n",
             KILN_CMD_MAX_LINE);
    self->part_len = 0;
    return s_text_str(t, "::add-mask::" KILN_CMD_MASK "\n") == 0 ? s_text_str(t, warn) : -1;
}

/* part is full and the line goes on: send out a piece of it. */
static int s_piece(kiln_commands_t *self, s_text_t *t)
{
    if (!self->long_line && s_oversized_mask(self)) {
        self->discard = true;
        return s_refuse_oversized_mask(self, t);
    }
    size_t consumed = 0, debt = 0;
    if (s_mask_into(self, t, self->part, self->part_len, false, self->debt, &consumed, &debt) != 0)
        return -1;
    assert(consumed > 0);
    memmove(self->part, self->part + consumed, self->part_len - consumed);
    self->part_len -= consumed;
    self->debt = debt;
    self->long_line = true;
    return 0;
}

/* part holds a whole line (has_nl: it ended with a newline, not at flush). */
static int s_line(kiln_commands_t *self, s_text_t *t, bool has_nl)
{
    int rc = -1;
    const char *line = self->part;
    size_t n = self->part_len;
    if (!self->long_line && n > KILN_CMD_MAX_LINE && s_oversized_mask(self)) {
        rc = s_refuse_oversized_mask(self, t);
        goto cleanup;
    }
    if (!self->long_line && n <= KILN_CMD_MAX_LINE) {
        size_t cn = (n && line[n - 1] == '\r') ? n - 1 : n;
        s_cmd_t cmd;
        if (s_parse(line, cn, &cmd)) {
            if (self->stop_token) {
                if (cmd.name_len == strlen(self->stop_token) &&
                    strncasecmp(cmd.name, self->stop_token, cmd.name_len) == 0) {
                    free(self->stop_token);
                    self->stop_token = NULL;
                    rc = 0;
                    goto cleanup;
                }
            } else {
                int handled = s_command(self, t, &cmd);
                if (handled != 0) {
                    rc = handled == 1 ? 0 : -1;
                    goto cleanup;
                }
            }
        }
    }
    if (s_mask_into(self, t, line, n, true, self->debt, NULL, NULL) != 0 ||
        (has_nl && s_text_add(t, "\n", 1) != 0))
        goto cleanup;
    rc = 0;
cleanup:
    self->part_len = 0;
    self->long_line = false;
    self->debt = 0;
    return rc;
}

static int s_part_add(kiln_commands_t *self, const char *data, size_t len)
{
    if (self->part_len + len + 1 > self->part_cap) {
        size_t cap = self->part_cap ? self->part_cap : 1024;
        while (cap < self->part_len + len + 1)
            cap *= 2;
        char *grown = realloc(self->part, cap);
        if (!grown)
            return -1;
        self->part = grown;
        self->part_cap = cap;
    }
    memcpy(self->part + self->part_len, data, len);
    self->part_len += len;
    self->part[self->part_len] = '\0';
    return 0;
}

int kiln_commands_filter(kiln_commands_t *self, const char *data, size_t len, bool flush, char **out,
                         size_t *out_len)
{
    assert(self);
    assert(data || len == 0);
    assert(out && out_len);
    int rc = -1;
    s_text_t t = {0};
    size_t i = 0;
    *out = NULL;
    *out_len = 0;
    while (i < len) {
        const char *nl = memchr(data + i, '\n', len - i);
        size_t take = nl ? (size_t)(nl - (data + i)) : len - i;
        if (self->discard) {
            i += take + (nl ? 1 : 0);
            self->discard = !nl;
            continue;
        }
        size_t limit = KILN_CMD_MAX_LINE + s_hold(self);
        size_t room = limit - self->part_len;
        if (take > room) {
            if (s_part_add(self, data + i, room) != 0 || s_piece(self, &t) != 0)
                goto cleanup;
            i += room;
            continue;
        }
        if (s_part_add(self, data + i, take) != 0)
            goto cleanup;
        i += take;
        if (nl) {
            if (s_line(self, &t, true) != 0)
                goto cleanup;
            i++;
        }
    }
    if (flush) {
        if ((self->part_len > 0 || self->long_line) && s_line(self, &t, false) != 0)
            goto cleanup;
        self->discard = false;
    }
    if (s_text_add(&t, "", 0) != 0)
        goto cleanup;
    *out = t.data;
    *out_len = t.len;
    t.data = NULL;
    rc = 0;
cleanup:
    free(t.data);
    return rc;
}

