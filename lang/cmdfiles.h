/* cmdfiles.h: the files a step writes for the runner ($GITHUB_OUTPUT,
 * $GITHUB_ENV, $GITHUB_PATH, $GITHUB_STEP_SUMMARY), parsed.
 *
 * The worker reads each file after the step exits (bounded, refusing links
 * and FIFOs: common/fs.h) and hands the bytes here; this module only
 * parses, so it is pure and the same code serves any host. Everything comes
 * from the job's own code and is hostile. Errors name the file (as `name`
 * says) and the line: "NAME:LINE: reason", in err (errlen bytes, may be 0)
 * and kiln_error_last(); a file that fails adds nothing to the map.
 */
#ifndef KILN_CMDFILES_H
#define KILN_CMDFILES_H

#include <stddef.h>

#include "common/kv.h"

#define KILN_CMD_MAX_FILE (1024 * 1024) /* per step and file; STEP_SUMMARY 1 MiB as GitHub */
/* GitHub's message for a NODE_OPTIONS line in $GITHUB_ENV. */
#define KILN_CMD_NODE_OPTIONS_MSG "Can't store NODE_OPTIONS output parameter using '$GITHUB_ENV' command."

/* $GITHUB_OUTPUT (and $GITHUB_ENV): "name=value" lines and the multi-line
 * form "name<<DELIMITER", value lines, "DELIMITER". Lines may end in CRLF
 * (the CR is dropped, in values too); empty lines between pairs are ignored;
 * a multi-line value is its lines joined by "\n"; a later value of a name
 * replaces an earlier one. Errors (KILN_EINVAL): a line that is neither
 * form, an empty name or delimiter, a NUL byte, a missing closing delimiter
 * (the error names the opening line). n_refused (may be NULL): pairs named
 * NODE_OPTIONS (any case) are left out, as GitHub does for $GITHUB_ENV, and
 * counted; the caller shows KILN_CMD_NODE_OPTIONS_MSG. Pass NULL for
 * $GITHUB_OUTPUT, which keeps them. */
int kiln_cmdfiles_parse_kv(const char *name, const char *text, size_t len, kiln_kv_t *out,
                           size_t *n_refused, char *err, size_t errlen);
/* $GITHUB_PATH: one directory per line, appended to paths in file order (key
 * and value the directory); CRLF tolerated, empty lines ignored. Whoever
 * builds PATH puts later entries first, as GitHub does. */
int kiln_cmdfiles_parse_path(const char *name, const char *text, size_t len, kiln_kv_t *paths,
                             char *err, size_t errlen);

#endif
