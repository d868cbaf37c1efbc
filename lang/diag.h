/* diag.h: problems found in a workflow, each naming file, line and column.
 *
 * Lint wants every problem at once, the coordinator a refusal that names the
 * first; both read one list. Warnings (keys Kiln accepts but does not act
 * on, constructs that cannot run on this farm) do not stop a run; errors do.
 * The list is bounded (KILN_DIAGS_MAX): garbage input cannot grow it
 * without end, and errors are counted even past the bound, so a run is
 * refused even when the text of its problems was lost.
 */
#ifndef KILN_DIAG_H
#define KILN_DIAG_H

#include <stdarg.h>
#include <stddef.h>

#define KILN_DIAGS_MAX 1000
#define KILN_DIAG_MSG_MAX 1024

typedef enum { KILN_DIAG_WARNING = 1, KILN_DIAG_ERROR = 2 } kiln_diag_severity_t;

typedef struct {
    kiln_diag_severity_t severity;
    int line;   /* 1-based; 0 when the problem has no position */
    int col;    /* 1-based */
    char *message;
} kiln_diag_t;

/* A growable, bounded list of diagnostics for one file. */
typedef struct {
    char *file;          /* the file name the diagnostics refer to */
    kiln_diag_t *items;
    size_t n;
    size_t cap;
    size_t n_errors;
} kiln_diags_t;

void kiln_diags_init(kiln_diags_t *self, const char *file);
void kiln_diags_free(kiln_diags_t *self);
void kiln_diags_add(kiln_diags_t *self, kiln_diag_severity_t sev, int line, int col, const char *fmt,
                    ...) __attribute__((format(printf, 5, 6)));
void kiln_diags_vadd(kiln_diags_t *self, kiln_diag_severity_t sev, int line, int col,
                     const char *fmt, va_list ap) __attribute__((format(printf, 5, 0)));
/* Whether the list already holds this exact problem (same severity,
 * position and text): a rule checked once per matrix combination or per
 * caller reports once. */
int kiln_diags_has(const kiln_diags_t *self, kiln_diag_severity_t sev, int line, int col,
                   const char *message);
/* Puts the diagnostics from index `from` on in file order (stable) and
 * returns the first error among them, or NULL. */
const kiln_diag_t *kiln_diags_sort(kiln_diags_t *self, size_t from);
/* Writes every diagnostic as "file:line:col: error|warning: message\n" into
 * a malloc'd string (caller frees); NULL on allocation failure. */
char *kiln_diags_format(const kiln_diags_t *self);

#endif
