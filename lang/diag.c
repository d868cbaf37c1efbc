/* diag.c: the bounded list of a workflow's problems (see diag.h). */
#include "lang/diag.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void kiln_diags_init(kiln_diags_t *self, const char *file)
{
    assert(self);
    memset(self, 0, sizeof *self);
    /* On allocation failure the list still works, naming the file "?". */
    self->file = strdup(file ? file : "");
}

void kiln_diags_free(kiln_diags_t *self)
{
    if (!self)
        return;
    for (size_t i = 0; i < self->n; i++)
        free(self->items[i].message);
    free(self->items);
    free(self->file);
    memset(self, 0, sizeof *self);
}

/* Errors are always counted, so a run is refused even when the list is full
 * or its memory ran out; only the text can be lost. */
void kiln_diags_vadd(kiln_diags_t *self, kiln_diag_severity_t sev, int line, int col,
                     const char *fmt, va_list ap)
{
    char msg[KILN_DIAG_MSG_MAX];
    if (sev == KILN_DIAG_ERROR)
        self->n_errors++;
    if (self->n > KILN_DIAGS_MAX)
        return;
    if (self->n == KILN_DIAGS_MAX) {
        snprintf(msg, sizeof msg, "too many problems; only the first %d are listed", KILN_DIAGS_MAX);
        sev = KILN_DIAG_WARNING;
        line = 0;
        col = 0;
    } else {
        vsnprintf(msg, sizeof msg, fmt, ap);
        /* Messages quote user text (a key may be "a\nb"); a control
         * character would break the one-line-per-problem format. */
        for (char *p = msg; *p; p++)
            if ((unsigned char)*p < 0x20 || *p == 0x7f)
                *p = '?';
    }
    /* A rule met again (a composite action used twice, a callee called from
     * two jobs) is one problem to the reader. */
    if (kiln_diags_has(self, sev, line, col, msg))
        return;
    if (self->n == self->cap) {
        size_t cap = self->cap ? self->cap * 2 : 16;
        kiln_diag_t *items = realloc(self->items, cap * sizeof *items);
        if (!items)
            return;
        self->items = items;
        self->cap = cap;
    }
    char *copy = strdup(msg);
    if (!copy)
        return;
    self->items[self->n].severity = sev;
    self->items[self->n].line = line;
    self->items[self->n].col = col;
    self->items[self->n].message = copy;
    self->n++;
}

void kiln_diags_add(kiln_diags_t *self, kiln_diag_severity_t sev, int line, int col,
                    const char *fmt, ...)
{
    assert(self && fmt);
    va_list ap;
    va_start(ap, fmt);
    kiln_diags_vadd(self, sev, line, col, fmt, ap);
    va_end(ap);
}

char *kiln_diags_format(const kiln_diags_t *self)
{
    assert(self);
    const char *file = self->file ? self->file : "?";
    char *out = NULL;
    size_t total = 1;
    for (size_t i = 0; i < self->n; i++)
        total += strlen(file) + strlen(self->items[i].message) + 48;
    out = malloc(total);
    if (!out)
        return NULL;
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < self->n; i++) {
        const kiln_diag_t *d = &self->items[i];
        const char *sev = d->severity == KILN_DIAG_ERROR ? "error" : "warning";
        int w;
        if (d->line > 0)
            w = snprintf(out + used, total - used, "%s:%d:%d: %s: %s\n", file, d->line, d->col,
                         sev, d->message);
        else
            w = snprintf(out + used, total - used, "%s: %s: %s\n", file, sev, d->message);
        if (w < 0 || (size_t)w >= total - used)
            break; /* cannot happen: total allows for two ints per line */
        used += (size_t)w;
    }
    return out;
}

int kiln_diags_has(const kiln_diags_t *self, kiln_diag_severity_t sev, int line, int col,
                   const char *message)
{
    for (size_t i = 0; i < self->n; i++) {
        const kiln_diag_t *d = &self->items[i];
        if (d->severity == sev && d->line == line && d->col == col &&
            strcmp(d->message, message) == 0)
            return 1;
    }
    return 0;
}

static int s_diag_cmp(const void *a, const void *b)
{
    const kiln_diag_t *x = a, *y = b;
    if (x->line != y->line)
        return x->line < y->line ? -1 : 1;
    if (x->col != y->col)
        return x->col < y->col ? -1 : 1;
    return 0;
}

/* Puts this parse's diagnostics in file order (the walk finds duplicate
 * keys and needs problems out of order) keeping equal positions in the
 * order found, then returns the first error among them, or NULL. */
const kiln_diag_t *kiln_diags_sort(kiln_diags_t *diags, size_t from)
{
    size_t n = diags->n - from;
    if (n == 0)
        return NULL; /* items may be NULL: no pointer arithmetic on it */
    kiln_diag_t *items = diags->items + from;
    /* When the list is full its last item says so; it stays last. */
    if (diags->n > KILN_DIAGS_MAX)
        n--;
    /* Insertion sort: stable, and the list is short and nearly sorted. */
    for (size_t i = 1; i < n; i++) {
        kiln_diag_t d = items[i];
        size_t j = i;
        while (j > 0 && s_diag_cmp(&items[j - 1], &d) > 0) {
            items[j] = items[j - 1];
            j--;
        }
        items[j] = d;
    }
    for (size_t i = 0; i < n; i++)
        if (items[i].severity == KILN_DIAG_ERROR)
            return &items[i];
    return NULL;
}

