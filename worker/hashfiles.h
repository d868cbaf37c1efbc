/* hashfiles.h: hashFiles() over a job's workspace, on the worker.
 *
 * GitHub's hashFiles(pattern, ...) is the SHA-256 over the SHA-256 of each
 * matching file, files in byte order of their workspace-relative paths,
 * and '' when nothing matches; workflows key caches with it. The
 * expression language (lang/) is pure and reads no file, so it hands the
 * patterns to its host through kiln_expr_env_t.hash_files; this module is
 * the worker's side of that callback: the glob matcher (@actions/glob's
 * rules: one pattern per line, '#' comments, '!' excludes, the last
 * matching pattern decides, '*' matches dot files, "**" any depth, a
 * matched directory stands for everything under it), a bounded walk of the
 * workspace that never leaves it (links are followed only with
 * --follow-symbolic-links and only to files inside it), and the hashing.
 *
 * Everything the walk may do is bounded by the KILN_HASHFILES_MAX_*
 * limits; passing one is an error, never a partial hash. Thread rules: no
 * state between calls (libsodium's one-time init aside); calls may run
 * concurrently.
 */
#ifndef KILN_HASHFILES_H
#define KILN_HASHFILES_H

#include <stddef.h>

#define KILN_HASHFILES_MAX_PATTERNS 256    /* pattern lines one hashFiles() call may have */
#define KILN_HASHFILES_MAX_SEGMENTS 128    /* path segments in one pattern */
#define KILN_HASHFILES_MAX_FILES 100000    /* files hashFiles() may match */
#define KILN_HASHFILES_MAX_VISIT 1000000   /* directory entries hashFiles() may look at */
#define KILN_HASHFILES_MAX_BYTES (1024LL * 1024 * 1024) /* bytes hashFiles() may read */
#define KILN_HASHFILES_MAX_DEPTH 128       /* directory levels hashFiles() descends */

/* hashFiles(patterns...) over the directory workspace. patterns[i] is
 * lens[i] bytes (lens NULL: each is NUL-terminated), one argument of the
 * call as written: lines of patterns relative to the workspace (an
 * absolute one must lie inside it), or the flag --follow-symbolic-links.
 * Returns 0 with out_hex the 64 lower-case hex digits, or "" when nothing
 * matches; -1 when out of memory; KILN_EINVAL for a bad pattern, a limit
 * passed or a file or directory that cannot be read, with the message
 * ("hashFiles: ...") in err (may be NULL when errlen is 0) and in
 * kiln_error_set. */
int kiln_hashfiles_compute(const char *workspace, const char *const *patterns, const size_t *lens,
                           size_t n_patterns, char out_hex[65], char *err, size_t errlen);

/* kiln_hashfiles_compute as a kiln_expr_hash_files_t (lang/expr.h): ctx is
 * the workspace path (a const char *, borrowed; it must outlive the env
 * that carries it). */
int kiln_hashfiles_callback(void *ctx, const char *const *patterns, const size_t *lens,
                            size_t n_patterns, char out_hex[65], char *err, size_t errlen);

#endif
