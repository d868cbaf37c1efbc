/* fs.h: file-system helpers every program needs.
 *
 * The worker empties and removes job trees, the CLI removes a throwaway
 * farm's data directory, tests remove their scratch directories. One
 * implementation serves them all, so the CLI need not link the worker's
 * library for it.
 */
#ifndef KILN_FS_H
#define KILN_FS_H

#include <stddef.h>

/* Removes whatever is at path, a directory tree included (like rm -rf,
 * without following links; directories a step left without write
 * permission are opened up first). A missing path is not an error. Returns
 * 0, or -1 with the message set naming the path. */
int kiln_fs_rmtree(const char *path);

/* Reads the regular file at path, at most max bytes, into a malloc'd
 * NUL-terminated buffer (*out, *len). The file comes from a job: it is
 * opened without following a link (refused, naming it) or blocking on a
 * FIFO, and must be a regular file. A missing file reads as empty. Returns
 * 0; KILN_ETOOBIG past max; -1 otherwise, with err (errlen bytes) and the
 * message naming the path. */
int kiln_fs_read_regular(const char *path, size_t max, char **out, size_t *len, char *err,
                         size_t errlen);

/* Takes an exclusive lock on path (created 0600 if missing) for as long as
 * the process keeps *fd_out open, and writes holder (one line: who and
 * where) into it. A lock another process holds is KILN_EBUSY, with the
 * message naming the path and what its holder wrote; other failures -1.
 * The lock goes with the process however it ends, so a killed holder never
 * leaves a stale one behind. */
int kiln_fs_lock(const char *path, const char *holder, int *fd_out);

/* Where program runs from: a name with a '/' as it is, else the first
 * executable of that name on PATH (/usr/bin:/bin without one), into out
 * (cap bytes). 0, or -1 when there is none. */
int kiln_fs_find_program(const char *program, char *out, size_t cap);

/* The names in dir (dot files left out; with dirs_only, directories only,
 * links followed), sorted, malloc'd each and the array (*names, *n; NULL
 * and 0 when none or unreadable); kiln_fs_names_free frees them. At most
 * 100,000 names. */
void kiln_fs_names(const char *dir, int dirs_only, char ***names, size_t *n);
void kiln_fs_names_free(char **names, size_t n);

#endif
