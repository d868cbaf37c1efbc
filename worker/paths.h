/* paths.h: the `path` input of actions/upload-artifact (and the pattern
 * language of @actions/glob it follows): one pattern per line, relative
 * to the workspace or absolute or under ~; `*`, `?` and `[...]` within a
 * name, `**` for any number of directories; a pattern that matches a
 * directory takes everything under it; a line starting with `!` excludes
 * what it matches. Files and directories whose names start with '.' are
 * left out unless asked for (include-hidden-files), as upload-artifact v4
 * does.
 *
 * The root of what is found (the names files get in the archive) is the
 * pattern's own directory part when there is one pattern (a file's
 * directory for a plain file), else the deepest directory common to them
 * all, as upload-artifact's "least common ancestor".
 */
#ifndef KILN_PATHS_H
#define KILN_PATHS_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

#define KILN_PATHS_MAX_FILES 1000000

typedef struct {
    char **files; /* absolute, sorted, unique: regular files and links */
    size_t n, cap;
    char root[PATH_MAX];
    size_t n_patterns;
} kiln_paths_t;

int kiln_paths_find(const char *input, const char *workspace, const char *home,
                    bool include_hidden, kiln_paths_t *out);
void kiln_paths_free(kiln_paths_t *p);

/* Moves the tree src into dest as tar would unpack it over dest: files of
 * the same name replaced, directories merged (a link where a directory
 * must go is refused, never followed). Same file system only (rename). */
int kiln_paths_merge(const char *src, const char *dest);

/* "/a/./b//c/../d/" -> "/a/b/d"; false when it climbs above / or is too
 * long for out. */
bool kiln_paths_normalise(const char *in, char *out, size_t cap);

/* The next line of a multi-line input into line: blanks around it and
 * empty and '#' lines skipped. 1 a line, 0 none left, -1 one too long
 * for cap. */
int kiln_paths_next_line(const char **cursor, char *line, size_t cap);

/* Appends text to a step file ($GITHUB_OUTPUT, $GITHUB_STEP_SUMMARY); no
 * path: nothing to do. */
int kiln_paths_append(const char *path, const char *text);

/* An absolute pattern against an absolute path, `**` spanning directories. */
bool kiln_paths_match(const char *pattern, const char *path);

#endif
