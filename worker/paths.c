/* paths.c: upload-artifact's path patterns (see paths.h). */
#include "worker/paths.h"

#include <dirent.h>
#include <errno.h>
#include <fnmatch.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/error.h"
#include "common/fs.h"

#define S_PATTERNS_MAX 256

/* One segment of pattern against one of path, then the rest. */
static bool s_match(const char *pat, const char *str)
{
    if (strncmp(pat, "**", 2) == 0 && (pat[2] == '/' || pat[2] == '\0')) {
        const char *rest = pat[2] == '/' ? pat + 3 : pat + 2;
        if (!*rest)
            return true;
        for (const char *s = str;;) {
            if (s_match(rest, s))
                return true;
            s = strchr(s, '/');
            if (!s)
                return false;
            s++;
        }
    }
    const char *pe = strchr(pat, '/'), *se = strchr(str, '/');
    size_t pl = pe ? (size_t)(pe - pat) : strlen(pat), sl = se ? (size_t)(se - str) : strlen(str);
    char ps[NAME_MAX * 4 + 1], ss[NAME_MAX + 1];
    if (pl >= sizeof ps || sl >= sizeof ss)
        return false;
    memcpy(ps, pat, pl);
    ps[pl] = '\0';
    memcpy(ss, str, sl);
    ss[sl] = '\0';
    if (fnmatch(ps, ss, 0) != 0)
        return false;
    if (!pe)
        return !se;
    if (!se)
        return false;
    return s_match(pe + 1, se + 1);
}

bool kiln_paths_match(const char *pattern, const char *path)
{
    if (pattern[0] != '/' || path[0] != '/')
        return false;
    return s_match(pattern + 1, path + 1);
}

/* The pattern or one of the path's directories down to root matches. */
static bool s_match_up(const char *pattern, const char *path, size_t root_len)
{
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s", path);
    for (;;) {
        if (kiln_paths_match(pattern, p))
            return true;
        char *slash = strrchr(p, '/');
        if (!slash || (size_t)(slash - p) < root_len || slash == p)
            return false;
        *slash = '\0';
    }
}

typedef struct {
    char pattern[PATH_MAX];
    char root[PATH_MAX]; /* the directory part without globs */
    bool exclude;
} s_pat_t;

/* nftw has no context argument: the walk's state. */
static struct {
    const s_pat_t *pat;
    const s_pat_t *pats;
    size_t n_pats;
    bool hidden;
    kiln_paths_t *out;
    int rc;
} s_walk;

static bool s_hidden(const char *path, size_t root_len)
{
    for (const char *c = path + root_len; *c; c++)
        if (c[0] == '/' && c[1] == '.')
            return true;
    return false;
}

static int s_visit(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb;
    (void)ftw;
    if (type != FTW_F && type != FTW_SL && type != FTW_SLN)
        return 0;
    size_t rl = strlen(s_walk.pat->root);
    if (!s_match_up(s_walk.pat->pattern, path, rl))
        return 0;
    if (!s_walk.hidden && s_hidden(path, rl))
        return 0;
    for (size_t i = 0; i < s_walk.n_pats; i++)
        if (s_walk.pats[i].exclude && s_match_up(s_walk.pats[i].pattern, path, 1))
            return 0;
    kiln_paths_t *o = s_walk.out;
    if (o->n == o->cap) {
        if (o->cap >= KILN_PATHS_MAX_FILES) {
            kiln_error_set("more than %d files match input 'path'", KILN_PATHS_MAX_FILES);
            s_walk.rc = KILN_ETOOBIG;
            return 1;
        }
        size_t cap = o->cap ? o->cap * 2 : 256;
        char **f = realloc(o->files, cap * sizeof *f);
        if (!f) {
            kiln_error_set("out of memory");
            s_walk.rc = KILN_ERROR;
            return 1;
        }
        o->files = f;
        o->cap = cap;
    }
    if (!(o->files[o->n] = strdup(path))) {
        kiln_error_set("out of memory");
        s_walk.rc = KILN_ERROR;
        return 1;
    }
    o->n++;
    return 0;
}

static int s_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

bool kiln_paths_normalise(const char *in, char *out, size_t cap)
{
    size_t o = 0;
    const char *s = in;
    while (*s) {
        while (*s == '/')
            s++;
        const char *e = strchr(s, '/');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        if (n == 0)
            break;
        if (n == 1 && s[0] == '.') {
        } else if (n == 2 && s[0] == '.' && s[1] == '.') {
            if (o == 0)
                return false;
            while (o > 0 && out[o - 1] != '/')
                o--;
            if (o > 0)
                o--;
        } else {
            if (o + n + 2 > cap)
                return false;
            out[o++] = '/';
            memcpy(out + o, s, n);
            o += n;
        }
        s += n;
    }
    if (o == 0)
        out[o++] = '/';
    out[o] = '\0';
    return true;
}

int kiln_paths_find(const char *input, const char *workspace, const char *home,
                    bool include_hidden, kiln_paths_t *out)
{
    s_pat_t *pats = calloc(S_PATTERNS_MAX, sizeof *pats);
    size_t n = 0;
    int rc = KILN_EINVAL;
    char line[PATH_MAX], abs[PATH_MAX * 2];
    memset(out, 0, sizeof *out);
    if (!pats) {
        kiln_error_set("out of memory");
        return KILN_ERROR;
    }
    const char *cursor = input ? input : "";
    int got;
    while ((got = kiln_paths_next_line(&cursor, line, sizeof line)) != 0) {
        if (got < 0 || n == S_PATTERNS_MAX) {
            kiln_error_set("input 'path' has a line too long or more than %d lines", S_PATTERNS_MAX);
            goto cleanup;
        }
        s_pat_t *p = &pats[n];
        const char *body = line;
        if (body[0] == '!') {
            p->exclude = true;
            body++;
        }
        if (body[0] == '~' && (body[1] == '/' || !body[1]))
            snprintf(abs, sizeof abs, "%s%s", home ? home : "/", body + 1);
        else if (body[0] == '/')
            snprintf(abs, sizeof abs, "%s", body);
        else
            snprintf(abs, sizeof abs, "%s/%s", workspace ? workspace : ".", body);
        if (!kiln_paths_normalise(abs, p->pattern, sizeof p->pattern)) {
            kiln_error_set("input 'path': '%s' climbs above /", line);
            goto cleanup;
        }
        /* The directory part before the first segment with a glob. */
        snprintf(p->root, sizeof p->root, "%s", p->pattern);
        char *g = strpbrk(p->root, "*?[");
        if (g) {
            *g = '\0';
            char *slash = strrchr(p->root, '/');
            if (slash)
                slash[slash == p->root ? 1 : 0] = '\0';
        }
        n++;
    }
    size_t n_inc = 0;
    for (size_t i = 0; i < n; i++) {
        if (pats[i].exclude)
            continue;
        n_inc++;
        struct stat sb;
        if (lstat(pats[i].root, &sb) != 0)
            continue;
        s_walk.pat = &pats[i];
        s_walk.pats = pats;
        s_walk.n_pats = n;
        s_walk.hidden = include_hidden;
        s_walk.out = out;
        s_walk.rc = 0;
        if (nftw(pats[i].root, s_visit, 32, FTW_PHYS) != 0 && s_walk.rc == 0) {
            kiln_error_errno("cannot read %s", pats[i].root);
            rc = KILN_ERROR;
            goto cleanup;
        }
        if (s_walk.rc != 0) {
            rc = s_walk.rc;
            goto cleanup;
        }
    }
    if (n_inc == 0) {
        kiln_error_set("input 'path' names nothing to upload");
        goto cleanup;
    }
    out->n_patterns = n_inc;
    if (out->n)
        qsort(out->files, out->n, sizeof *out->files, s_cmp);
    size_t u = 0;
    for (size_t i = 0; i < out->n; i++) {
        if (u && strcmp(out->files[u - 1], out->files[i]) == 0)
            free(out->files[i]);
        else
            out->files[u++] = out->files[i];
    }
    out->n = u;
    /* The root: the common directory of the patterns' own directories (a
     * plain file stands for its directory). */
    bool first = true;
    for (size_t i = 0; i < n; i++) {
        if (pats[i].exclude)
            continue;
        char r[PATH_MAX];
        struct stat sb;
        snprintf(r, sizeof r, "%s", pats[i].root);
        if (strcmp(r, pats[i].pattern) == 0 && lstat(r, &sb) == 0 && !S_ISDIR(sb.st_mode)) {
            char *slash = strrchr(r, '/');
            if (slash)
                slash[slash == r ? 1 : 0] = '\0';
        }
        if (first) {
            snprintf(out->root, sizeof out->root, "%s", r);
            first = false;
            continue;
        }
        size_t k = 0;
        while (out->root[k] && out->root[k] == r[k])
            k++;
        /* Back to a whole directory name. */
        if (!((out->root[k] == '\0' && (r[k] == '/' || r[k] == '\0')) ||
              (r[k] == '\0' && out->root[k] == '/')))
            while (k > 0 && out->root[k - 1] != '/')
                k--;
        out->root[k] = '\0';
        if (k > 1 && out->root[k - 1] == '/')
            out->root[k - 1] = '\0';
        if (!out->root[0])
            snprintf(out->root, sizeof out->root, "/");
    }
    rc = 0;
cleanup:
    free(pats);
    if (rc != 0)
        kiln_paths_free(out);
    return rc;
}

void kiln_paths_free(kiln_paths_t *p)
{
    for (size_t i = 0; i < p->n; i++)
        free(p->files[i]);
    free(p->files);
    p->files = NULL;
    p->n = p->cap = 0;
}

/* Moves the tree src into dest, entry by entry (dest's files of the same
 * name are replaced; its directories are kept, never followed when they
 * are links). */
int kiln_paths_merge(const char *src, const char *dest)
{
    struct stat ss, ds;
    if (lstat(src, &ss) != 0) {
        kiln_error_errno("cannot read %s", src);
        return -1;
    }
    bool dest_exists = lstat(dest, &ds) == 0;
    if (!S_ISDIR(ss.st_mode) || !dest_exists) {
        if (dest_exists && S_ISDIR(ds.st_mode) && kiln_fs_rmtree(dest) != 0) {
            kiln_error_errno("cannot replace %s", dest);
            return -1;
        }
        if (rename(src, dest) != 0) {
            kiln_error_errno("cannot put %s in place", dest);
            return -1;
        }
        return 0;
    }
    if (!S_ISDIR(ds.st_mode)) {
        kiln_error_set("%s is in the way of a directory of the artifact (a %s)", dest,
                       S_ISLNK(ds.st_mode) ? "symbolic link, not followed" : "file");
        return -1;
    }
    DIR *d = opendir(src);
    if (!d) {
        kiln_error_errno("cannot read %s", src);
        return -1;
    }
    struct dirent *de;
    int rc = 0;
    while (rc == 0 && (de = readdir(d))) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        char s2[PATH_MAX], d2[PATH_MAX];
        if (snprintf(s2, sizeof s2, "%s/%s", src, de->d_name) >= (int)sizeof s2 ||
            snprintf(d2, sizeof d2, "%s/%s", dest, de->d_name) >= (int)sizeof d2) {
            kiln_error_set("path too long under %s", dest);
            rc = -1;
            break;
        }
        rc = kiln_paths_merge(s2, d2);
    }
    closedir(d);
    return rc;
}

int kiln_paths_append(const char *path, const char *text)
{
    if (!path || !path[0])
        return 0;
    FILE *f = fopen(path, "a");
    if (!f) {
        kiln_error_errno("cannot write %s", path);
        return -1;
    }
    int bad = fputs(text, f) < 0;
    if (fclose(f) != 0 || bad) {
        kiln_error_errno("cannot write %s", path);
        return -1;
    }
    return 0;
}

int kiln_paths_next_line(const char **cursor, char *line, size_t cap)
{
    const char *s = *cursor;
    while (*s) {
        size_t len = strcspn(s, "\n");
        const char *l = s;
        s += len + (s[len] == '\n');
        while (len && (*l == ' ' || *l == '\t'))
            l++, len--;
        while (len && (l[len - 1] == ' ' || l[len - 1] == '\t' || l[len - 1] == '\r'))
            len--;
        if (!len || l[0] == '#')
            continue;
        *cursor = s;
        if (len >= cap)
            return -1;
        memcpy(line, l, len);
        line[len] = '\0';
        return 1;
    }
    *cursor = s;
    return 0;
}
