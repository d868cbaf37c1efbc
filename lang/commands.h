/* commands.h: what a step tells the runner besides its exit code.
 *
 * GitHub Actions lets a step talk to the runner in two ways ("Workflow
 * commands for GitHub Actions"):
 *   - workflow commands, lines such as "::error file=a.c,line=3::boom" in the
 *     step's output: annotations, log groups, secret masks, stop-commands;
 *   - files named by $GITHUB_OUTPUT, $GITHUB_ENV, $GITHUB_PATH and
 *     $GITHUB_STEP_SUMMARY, read by the runner when the step ends.
 * The worker feeds every chunk of a step's output through
 * kiln_commands_filter() before it becomes a log chunk; the four files are
 * read after the step exits and parsed by cmdfiles.h. Everything here comes
 * from the job's own code and is hostile: every line, mask and annotation
 * list is bounded.
 *
 * One kiln_commands_t lives for a whole job, as in GitHub's runner: a mask
 * added in step 1 still hides the value in step 5, annotations accumulate,
 * and a stop-commands token stays in force until its resume line. Not thread
 * safe; one thread drives one job's filter.
 */
#ifndef KILN_COMMANDS_H
#define KILN_COMMANDS_H

#include <stdbool.h>
#include <stddef.h>

#include "common/kv.h"

#define KILN_CMD_MAX_ANNOTATIONS 200  /* per job; further ones are counted, not kept */
/* A kept annotation's message and its title or file are cut to these, with
 * " [cut]" (200 of them then take under 1 MiB of the job's result). */
#define KILN_CMD_MAX_ANNOTATION_TEXT 4096
#define KILN_CMD_MAX_ANNOTATION_TITLE 512
#define KILN_CMD_MAX_MASKS 256        /* per job; further values are refused with a warning */
#define KILN_CMD_MAX_LINE (64 * 1024) /* a longer output line is plain text, passed on in pieces */

/* What the user sees in place of a masked value. */
#define KILN_CMD_MASK "***"

typedef enum { KILN_ANN_ERROR, KILN_ANN_WARNING, KILN_ANN_NOTICE } kiln_ann_level_t;

typedef struct {
    kiln_ann_level_t level;
    char *message; /* unescaped and masked; never NULL */
    char *title;   /* unescaped and masked; NULL when not given */
    char *file;    /* as given (masked); NULL when not given */
    int line, end_line, col, end_col; /* 0 when not given or not a positive number */
} kiln_annotation_t;

typedef struct kiln_commands kiln_commands_t;

/* A job's command state: no masks, no annotations, commands enabled.
 * Returns NULL when out of memory. */
kiln_commands_t *kiln_commands_new(void);
void kiln_commands_destroy(kiln_commands_t **self_p);

/* Processes one chunk of a step's output and returns the text to show.
 *
 * Feed one stream (the executor merges stdout and stderr into one pipe, or
 * flushes between them): a line may be split across calls and is held
 * until its newline, in a buffer bounded by KILN_CMD_MAX_LINE plus the
 * longest mask. A line longer than that is plain text and is passed on in
 * pieces, each masked, with enough of its tail held back that a secret
 * straddling two pieces is still hidden.
 *
 * What the user sees, line by line:
 *   - every value registered with ::add-mask:: replaced by "***";
 *   - "::group::NAME" as "▸ NAME"; "::endgroup::" removed;
 *   - "::error ...::MSG" as "Error: MSG" (likewise Warning, Notice), and the
 *     annotation recorded with its properties (title, file, line, endLine,
 *     col, endColumn; names case-insensitive as in GitHub's runner);
 *   - "::add-mask::VALUE" as "::add-mask::***": the value is never shown.
 *     Each line of a multi-line value is masked, trimmed of blanks;
 *   - "::stop-commands::TOKEN" removed; later lines pass through as text
 *     (still masked) until a line "::TOKEN::" (a command named TOKEN, any
 *     case, as GitHub's runner matches it), itself removed. An empty token
 *     stops nothing and is shown as a warning;
 *   - "::debug::" and "::echo::" removed (GitHub hides debug by default);
 *     "::set-env::" and "::add-path::" shown as GitHub's "disabled" error and
 *     recorded as error annotations;
 *   - any other line, unknown commands included, as it was.
 * Messages use GitHub's escapes: %25 %0D %0A, and in property values also
 * %3A and %2C. flush=true ends the step: a held partial line is processed
 * as a last line.
 *
 * *out (malloc'd, NUL-terminated, owned by the caller) and *out_len receive
 * the text; *out is never NULL on success. Returns 0, or -1 when out of
 * memory (*out is then NULL).
 */
int kiln_commands_filter(kiln_commands_t *self, const char *data, size_t len, bool flush, char **out,
                         size_t *out_len);

/* Registers value (each line, trimmed) as a mask, as ::add-mask:: does:
 * a job's secrets are masked from its first line. 0, KILN_ETOOBIG when the
 * table is full, -1 when out of memory. */
int kiln_commands_add_mask(kiln_commands_t *self, const char *value);
/* What ::set-output and ::save-state set since the last call (name ->
 * value, in order), moved to the caller, who frees them. */
void kiln_commands_take_legacy(kiln_commands_t *self, kiln_kv_t *outputs, kiln_kv_t *state);

/* text with every mask replaced by "***", for any other text the worker
 * shows (system messages, the step summary). malloc'd; NULL when out of
 * memory. */
char *kiln_commands_mask(const kiln_commands_t *self, const char *text);

size_t kiln_commands_n_annotations(const kiln_commands_t *self);
/* The i-th annotation kept, i < kiln_commands_n_annotations(). Borrowed. */
const kiln_annotation_t *kiln_commands_annotation(const kiln_commands_t *self, size_t i);
/* Annotations beyond KILN_CMD_MAX_ANNOTATIONS: shown in the log, not kept. */
size_t kiln_commands_dropped_annotations(const kiln_commands_t *self);
/* Groups opened and not yet closed (so the caller can close them at step end). */
int kiln_commands_group_depth(const kiln_commands_t *self);

#endif
