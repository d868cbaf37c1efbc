/* commands.h: what a step tells the runner besides its exit code.
 *
 * GitHub Actions lets a step talk to the runner in two ways ("Workflow
 * commands for GitHub Actions"):
 *   - workflow commands, lines such as "::error file=a.c,line=3::boom" in the
 *     step's output: annotations, log groups, secret masks, stop-commands;
 *   - files named by $GITHUB_OUTPUT, $GITHUB_ENV, $GITHUB_PATH and
 *     $GITHUB_STEP_SUMMARY, read by the runner when the step ends.
 * The executor feeds every chunk of a step's output through
 * kiln_commands_filter() before it becomes a log chunk, and reads the four
 * files after the step exits. Everything here comes from the job's own code
 * and is hostile: every line, file, mask and annotation list is bounded.
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

#define KILN_CMD_MAX_ANNOTATIONS 200  /* per job; further ones are counted, not kept */
#define KILN_CMD_MAX_MASKS 256        /* per job; further values are refused with a warning */
#define KILN_CMD_MAX_FILE (1024 * 1024) /* GITHUB_OUTPUT/ENV/PATH per step; STEP_SUMMARY 1 MiB as GitHub */
#define KILN_CMD_MAX_LINE (64 * 1024) /* a longer output line is plain text, passed on in pieces */

/* What the user sees in place of a masked value. */
#define KILN_CMD_MASK "***"
/* GitHub's message for a NODE_OPTIONS line in $GITHUB_ENV (see kiln_commands_read_env_file). */
#define KILN_CMD_NODE_OPTIONS_MSG "Can't store NODE_OPTIONS output parameter using '$GITHUB_ENV' command."

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

/* Name/value pairs in file order. Zero-initialise before the first use. */
typedef struct {
    char **keys;
    char **values;
    size_t n;
} kiln_kvlist_t;

/* Frees the pairs and leaves an empty list. Accepts NULL. */
void kiln_kvlist_free(kiln_kvlist_t *l);
/* The value of the last pair named key, or NULL. Borrowed. */
const char *kiln_kvlist_get(const kiln_kvlist_t *l, const char *key);

/* The step files, read after the step exits.
 *
 * A missing file is empty (GitHub skips it too). The path must name a
 * regular file, not a symbolic link or a FIFO: the step chose what sits at
 * that path, and the worker must neither read its own files on the step's
 * behalf nor block on a pipe. Errors are written to err (errlen bytes, may
 * be 0) as "PATH:LINE: reason", also set as kiln_error_last(), and nothing is
 * appended: KILN_ETOOBIG for a file over KILN_CMD_MAX_FILE, KILN_EINVAL for
 * bad content, -1 for I/O errors or no memory.
 */

/* $GITHUB_OUTPUT (and $GITHUB_ENV): "name=value" lines and the multi-line
 * form "name<<DELIMITER", value lines, "DELIMITER". Lines may end in CRLF
 * (the CR is dropped, in values too); empty lines between pairs are ignored;
 * a multi-line value is its lines joined by "\n". Errors: a line that is
 * neither form, an empty name or delimiter, a name containing '=', a NUL
 * byte, a missing closing delimiter (the error names the opening line). */
int kiln_commands_read_kv_file(const char *path, kiln_kvlist_t *out, char *err, size_t errlen);
/* $GITHUB_ENV: as kiln_commands_read_kv_file, except that pairs named
 * NODE_OPTIONS (any case) are left out, as GitHub does, and counted in
 * *n_refused (may be NULL); the caller shows KILN_CMD_NODE_OPTIONS_MSG. */
int kiln_commands_read_env_file(const char *path, kiln_kvlist_t *out, size_t *n_refused, char *err,
                                size_t errlen);
/* $GITHUB_PATH: one directory per line, appended to paths in file order as
 * key = value = the directory; CRLF tolerated, empty lines ignored. Whoever
 * builds PATH puts later entries first, as GitHub does. */
int kiln_commands_read_path_file(const char *path, kiln_kvlist_t *paths, char *err, size_t errlen);
/* $GITHUB_STEP_SUMMARY: the markdown as written, at most KILN_CMD_MAX_FILE
 * bytes (GitHub drops a larger summary; so do we: KILN_ETOOBIG). *out is
 * malloc'd and NUL-terminated, *len its length; an empty or missing file
 * gives "". The caller masks it (kiln_commands_mask) before showing it. */
int kiln_commands_read_summary(const char *path, char **out, size_t *len, char *err, size_t errlen);

#endif
