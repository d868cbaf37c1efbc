/* hashfiles.c: hashFiles() over a job's workspace (see hashfiles.h).
 *
 * Moved out of the expression language so that lang/ stays pure: the
 * language evaluates the arguments and calls the host; the host decides
 * what the patterns select and reads the files. Three parts:
 *   globs  each pattern line becomes segments ("." and ".." resolved, an
 *          absolute path made relative, one that climbs out of the
 *          workspace "dead"); matching is segment by segment with
 *          last-star backtracking, at both levels, so no pattern is
 *          exponential.
 *   walk   from the workspace root with openat/fstatat and O_NOFOLLOW, so
 *          a link or a rename cannot lead it outside; a directory no
 *          pattern can reach into is never opened; entries, depth, files
 *          and bytes are counted against KILN_HASHFILES_MAX_*.
 *   hash   SHA-256 (libsodium) of each selected file, then of the digests
 *          in byte order of the relative paths.
 * The result string, the empty-match result, the messages and the limits
 * are those GitHub's users rely on (and that the expression language had
 * when this code lived there).
 */
#include "worker/hashfiles.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "common/error.h"

#define S_MSG 512           /* longest error message */
#define S_CHUNK (64 * 1024) /* read size when hashing */

/* One pattern line, split into path segments. */
typedef struct {
    char *buf; /* the pattern's segments, NUL-separated */
    /* its segments, + the implicit trailing "*" (for "dir/") and "**" */
    const char *seg[KILN_HASHFILES_MAX_SEGMENTS + 2];
    size_t seglen[KILN_HASHFILES_MAX_SEGMENTS + 2];
    size_t n_seg;
    bool negate; /* a '!' pattern: excludes what it matches */
    bool dead;   /* names something outside the workspace: matches nothing */
} s_glob_t;

/* A selected file and the SHA-256 of its content. */
typedef struct {
    char *rel; /* its path from the workspace */
    unsigned char digest[crypto_hash_sha256_BYTES];
} s_hashed_t;

/* One hashFiles() call. */
typedef struct {
    s_glob_t globs[KILN_HASHFILES_MAX_PATTERNS];
    size_t n_globs;
    bool follow;               /* --follow-symbolic-links */
    char ws_real[PATH_MAX];    /* realpath of the workspace, when following */
    s_hashed_t *files;
    size_t n_files, cap_files;
    size_t visited;
    long long bytes;
    char rel[PATH_MAX];        /* path of the entry being looked at, from the workspace */
    size_t rel_len;
    unsigned char *chunk;
    bool failed;               /* msg holds the first error */
    bool oom;                  /* that error is "out of memory" */
    char msg[S_MSG];
} s_hash_t;

/* Records the first error only: later ones are consequences of it. */
static void s_fail(s_hash_t *h, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void s_fail(s_hash_t *h, const char *fmt, ...)
{
    va_list ap;
    if (h->failed)
        return;
    va_start(ap, fmt);
    vsnprintf(h->msg, sizeof h->msg, fmt, ap);
    va_end(ap);
    h->failed = true;
}

static int s_oom(s_hash_t *h)
{
    if (!h->failed) {
        s_fail(h, "hashFiles: out of memory");
        h->oom = true;
    }
    return -1;
}

/* @actions/glob trims pattern lines of this white space. */
static bool s_is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* ---------------------------------------------------------------- globs */

/* Whether the glob unit at p[pi] matches byte c; *adv: the unit's length.
 * Units: '?', '\x', '[set]' ('!' or '^' negates, a-z ranges), a byte. */
static bool s_glob_unit(const char *p, size_t pn, size_t pi, unsigned char c, size_t *adv)
{
    if (p[pi] == '?') {
        *adv = 1;
        return true;
    }
    if (p[pi] == '\\' && pi + 1 < pn) {
        *adv = 2;
        return (unsigned char)p[pi + 1] == c;
    }
    if (p[pi] == '[') {
        size_t i = pi + 1, first;
        bool neg = false, hit = false;
        if (i < pn && (p[i] == '!' || p[i] == '^')) {
            neg = true;
            i++;
        }
        first = i;
        while (i < pn && (p[i] != ']' || i == first)) {
            unsigned char lo = (unsigned char)p[i], hi;
            if (lo == '\\' && i + 1 < pn)
                lo = (unsigned char)p[++i];
            hi = lo;
            if (i + 2 < pn && p[i + 1] == '-' && p[i + 2] != ']') {
                hi = (unsigned char)p[i + 2];
                i += 2;
            }
            if (c >= lo && c <= hi)
                hit = true;
            i++;
        }
        if (i < pn) {
            *adv = i + 1 - pi;
            return hit != neg;
        }
        /* no closing ']': a literal '[' */
    }
    *adv = 1;
    return (unsigned char)p[pi] == c;
}

/* One path segment against one glob segment; '*' never crosses '/' since
 * segments hold none. Dot files match '*' (@actions/glob's dot: true).
 * Linear backtracking on the last '*', so no pattern is exponential. */
static bool s_glob_segment(const char *p, size_t pn, const char *s, size_t sn)
{
    size_t pi = 0, si = 0, star_p = SIZE_MAX, star_s = 0, adv;
    while (si < sn) {
        if (pi < pn && p[pi] == '*') {
            star_p = ++pi;
            star_s = si;
            continue;
        }
        if (pi < pn && s_glob_unit(p, pn, pi, (unsigned char)s[si], &adv)) {
            pi += adv;
            si++;
            continue;
        }
        if (star_p == SIZE_MAX)
            return false;
        pi = star_p;
        si = ++star_s;
    }
    while (pi < pn && p[pi] == '*')
        pi++;
    return pi == pn;
}

static bool s_is_globstar(const s_glob_t *g, size_t i)
{
    return g->seglen[i] == 2 && g->seg[i][0] == '*' && g->seg[i][1] == '*';
}

/* The glob's segments against the path's; "**" matches any number of
 * segments, by the same last-star backtracking one level up. The implicit
 * trailing "**" makes a pattern match everything under a directory it
 * matches (@actions/glob's implicitDescendants). */
static bool s_glob_match(const s_glob_t *g, const char *const *seg, const size_t *len, size_t n)
{
    size_t pi = 0, si = 0, star_p = SIZE_MAX, star_s = 0;
    if (g->dead)
        return false;
    while (si < n) {
        if (pi < g->n_seg && s_is_globstar(g, pi)) {
            star_p = ++pi;
            star_s = si;
            continue;
        }
        if (pi < g->n_seg && s_glob_segment(g->seg[pi], g->seglen[pi], seg[si], len[si])) {
            pi++;
            si++;
            continue;
        }
        if (star_p == SIZE_MAX)
            return false;
        pi = star_p;
        si = ++star_s;
    }
    while (pi < g->n_seg && s_is_globstar(g, pi))
        pi++;
    return pi == g->n_seg;
}

/* Whether g might match something under the directory whose path has the
 * segments seg[0..n): its segments up to the first "**" must match the
 * directory's (conservative past that). Lets the walk skip node_modules
 * when the patterns only name package-lock.json. */
static bool s_glob_may_descend(const s_glob_t *g, const char *const *seg, const size_t *len,
                               size_t n)
{
    if (g->dead || g->negate)
        return false; /* only an including pattern can select a file */
    for (size_t i = 0; i < n && i < g->n_seg; i++) {
        if (s_is_globstar(g, i))
            return true;
        if (!s_glob_segment(g->seg[i], g->seglen[i], seg[i], len[i]))
            return false;
    }
    return true;
}

/* Adds the pattern line p[0..n) (trimmed, not empty, not a comment).
 * Patterns are relative to the workspace; an absolute one must lie inside
 * it; "." and ".." are resolved, and a pattern that climbs out is dead. */
static int s_glob_add(s_hash_t *h, const char *p, size_t n, const char *ws)
{
    s_glob_t *g;
    size_t wl = strlen(ws), i = 0, o = 0;
    bool dir_only;
    if (h->n_globs == KILN_HASHFILES_MAX_PATTERNS) {
        s_fail(h, "hashFiles: more than %d patterns", KILN_HASHFILES_MAX_PATTERNS);
        return -1;
    }
    g = &h->globs[h->n_globs];
    memset(g, 0, sizeof *g);
    while (i < n && p[i] == '!') {
        g->negate = !g->negate;
        i++;
    }
    p += i;
    n -= i;
    if (n == 0)
        return 0; /* a lone '!' names nothing */
    if (n >= PATH_MAX) {
        s_fail(h, "hashFiles: pattern longer than %d bytes", PATH_MAX - 1);
        return -1;
    }
    while (wl > 1 && ws[wl - 1] == '/')
        wl--;
    if (n && p[0] == '/') {
        if (n >= wl && !memcmp(p, ws, wl) && (n == wl || p[wl] == '/')) {
            p += wl;
            n -= wl;
        } else {
            g->dead = true;
        }
    }
    if (!(g->buf = malloc(n + 1)))
        return s_oom(h);
    h->n_globs++;
    dir_only = n > 0 && p[n - 1] == '/';
    for (i = 0; i <= n; i++) {
        size_t start = i, sl;
        while (i < n && p[i] != '/')
            i++;
        sl = i - start;
        if (sl == 0 || (sl == 1 && p[start] == '.'))
            continue;
        if (sl == 2 && p[start] == '.' && p[start + 1] == '.') {
            if (g->n_seg == 0)
                g->dead = true;
            else
                g->n_seg--;
            continue;
        }
        if (g->n_seg == KILN_HASHFILES_MAX_SEGMENTS) {
            s_fail(h, "hashFiles: pattern deeper than %d segments", KILN_HASHFILES_MAX_SEGMENTS);
            return -1;
        }
        memcpy(g->buf + o, p + start, sl);
        g->seg[g->n_seg] = g->buf + o;
        g->seglen[g->n_seg++] = sl;
        o += sl;
    }
    /* "dir/" names only a directory: something must lie beneath it */
    if (dir_only) {
        g->seg[g->n_seg] = "*";
        g->seglen[g->n_seg++] = 1;
    }
    g->seg[g->n_seg] = "**";
    g->seglen[g->n_seg++] = 2;
    return 0;
}

/* Splits one argument into lines like @actions/glob: trimmed, blank lines
 * and '#' comments skipped. */
static int s_glob_add_all(s_hash_t *h, const char *p, size_t n, const char *ws)
{
    size_t i = 0;
    while (i < n) {
        size_t start = i, end;
        while (i < n && p[i] != '\n')
            i++;
        end = i++;
        while (start < end && s_is_space(p[start]))
            start++;
        while (end > start && s_is_space(p[end - 1]))
            end--;
        if (end > start && p[start] != '#' && s_glob_add(h, p + start, end - start, ws))
            return -1;
    }
    return 0;
}

/* ----------------------------------------------------------------- walk */

#define S_REL_SEGS (KILN_HASHFILES_MAX_DEPTH + 2)

/* Splits h->rel at '/' into at most S_REL_SEGS segments; returns how many. */
static size_t s_hash_split(const s_hash_t *h, const char **seg, size_t *len)
{
    size_t n = 0, i = 0;
    while (i < h->rel_len && n < S_REL_SEGS) {
        size_t start = i;
        while (i < h->rel_len && h->rel[i] != '/')
            i++;
        seg[n] = h->rel + start;
        len[n++] = i - start;
        i++;
    }
    return n;
}

/* Whether the file h->rel is selected: patterns in order, the last that
 * matches decides (a '!' pattern excludes what earlier ones included). */
static bool s_hash_selected(const s_hash_t *h)
{
    const char *seg[S_REL_SEGS];
    size_t len[S_REL_SEGS], n = s_hash_split(h, seg, len);
    bool in = false;
    for (size_t k = 0; k < h->n_globs; k++)
        if (h->globs[k].negate == in && s_glob_match(&h->globs[k], seg, len, n))
            in = !h->globs[k].negate;
    return in;
}

/* Whether the directory h->rel may hold a selected file. */
static bool s_hash_worth_entering(const s_hash_t *h)
{
    const char *seg[S_REL_SEGS];
    size_t len[S_REL_SEGS], n = s_hash_split(h, seg, len);
    for (size_t k = 0; k < h->n_globs; k++)
        if (s_glob_may_descend(&h->globs[k], seg, len, n))
            return true;
    return false;
}

/* Hashes the open file fd (closed here) as h->rel. */
static int s_hash_fd(s_hash_t *h, int fd)
{
    crypto_hash_sha256_state st;
    struct stat sb;
    int rc = -1;
    if (fstat(fd, &sb) == -1 || !S_ISREG(sb.st_mode)) {
        rc = 0; /* not a regular file after all: skipped */
        goto cleanup;
    }
    if (h->n_files == KILN_HASHFILES_MAX_FILES) {
        s_fail(h, "hashFiles: more than %d files match", KILN_HASHFILES_MAX_FILES);
        goto cleanup;
    }
    if (h->n_files == h->cap_files) {
        size_t cap = h->cap_files ? h->cap_files * 2 : 64;
        s_hashed_t *grown = realloc(h->files, cap * sizeof *grown);
        if (!grown) {
            s_oom(h);
            goto cleanup;
        }
        h->files = grown;
        h->cap_files = cap;
    }
    crypto_hash_sha256_init(&st);
    for (;;) {
        ssize_t got = read(fd, h->chunk, S_CHUNK);
        if (got == -1 && errno == EINTR)
            continue;
        if (got == -1) {
            s_fail(h, "hashFiles: cannot read '%s': %s", h->rel, strerror(errno));
            goto cleanup;
        }
        if (got == 0)
            break;
        h->bytes += got;
        if (h->bytes > KILN_HASHFILES_MAX_BYTES) {
            s_fail(h, "hashFiles: more than %lld bytes to hash",
                   (long long)KILN_HASHFILES_MAX_BYTES);
            goto cleanup;
        }
        crypto_hash_sha256_update(&st, h->chunk, (unsigned long long)got);
    }
    crypto_hash_sha256_final(&st, h->files[h->n_files].digest);
    if (!(h->files[h->n_files].rel = strdup(h->rel))) {
        s_oom(h);
        goto cleanup;
    }
    h->n_files++;
    rc = 0;
cleanup:
    close(fd);
    return rc;
}

/* A symbolic link, followed only on request and only to a regular file
 * whose real path lies inside the workspace. */
static int s_hash_link(s_hash_t *h)
{
    char full[PATH_MAX * 2], real[PATH_MAX];
    size_t wl = strlen(h->ws_real);
    int fd;
    snprintf(full, sizeof full, "%s/%s", h->ws_real, h->rel);
    if (!realpath(full, real))
        return 0; /* dangling */
    if (strncmp(real, h->ws_real, wl) != 0 || (real[wl] != '/' && wl > 1))
        return 0; /* outside the workspace: never read */
    fd = open(real, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd == -1)
        return 0;
    return s_hash_fd(h, fd);
}

/* Walks the directory dfd (consumed) at h->rel without following links. */
static int s_hash_walk(s_hash_t *h, int dfd, int depth)
{
    DIR *d = fdopendir(dfd);
    struct dirent *de;
    int rc = -1;
    if (!d) {
        close(dfd);
        s_fail(h, "hashFiles: cannot read directory '%s': %s",
               h->rel_len ? h->rel : ".", strerror(errno));
        return -1;
    }
    while ((errno = 0, de = readdir(d)) != NULL) {
        const char *name = de->d_name;
        size_t nl = strlen(name), save = h->rel_len;
        struct stat sb;
        int fd, step = 0;
        if (!strcmp(name, ".") || !strcmp(name, ".."))
            continue;
        if (++h->visited > KILN_HASHFILES_MAX_VISIT) {
            s_fail(h, "hashFiles: more than %d entries in the workspace",
                   KILN_HASHFILES_MAX_VISIT);
            goto cleanup;
        }
        if (save + 1 + nl >= sizeof h->rel) {
            s_fail(h, "hashFiles: path longer than %zu bytes under '%s'",
                   sizeof h->rel - 1, h->rel);
            goto cleanup;
        }
        if (save)
            h->rel[h->rel_len++] = '/';
        memcpy(h->rel + h->rel_len, name, nl + 1);
        h->rel_len += nl;
        if (fstatat(dirfd(d), name, &sb, AT_SYMLINK_NOFOLLOW) == -1) {
            if (errno != ENOENT) { /* gone since readdir: skipped */
                s_fail(h, "hashFiles: cannot stat '%s': %s", h->rel, strerror(errno));
                step = -1;
            }
        } else if (S_ISDIR(sb.st_mode)) {
            if (!s_hash_worth_entering(h)) {
                /* no pattern can select anything below: not read at all */
            } else if (depth + 1 >= KILN_HASHFILES_MAX_DEPTH) {
                s_fail(h, "hashFiles: directories nested deeper than %d",
                       KILN_HASHFILES_MAX_DEPTH);
                step = -1;
            } else if ((fd = openat(dirfd(d), name,
                                    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) == -1) {
                if (errno != ENOENT) {
                    s_fail(h, "hashFiles: cannot open '%s': %s", h->rel,
                           strerror(errno));
                    step = -1;
                }
            } else {
                step = s_hash_walk(h, fd, depth + 1);
            }
        } else if (S_ISREG(sb.st_mode) && s_hash_selected(h)) {
            fd = openat(dirfd(d), name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
            if (fd == -1 && errno != ENOENT) {
                s_fail(h, "hashFiles: cannot open '%s': %s", h->rel, strerror(errno));
                step = -1;
            } else if (fd != -1) {
                step = s_hash_fd(h, fd);
            }
        } else if (S_ISLNK(sb.st_mode) && h->follow && s_hash_selected(h)) {
            step = s_hash_link(h);
        }
        h->rel_len = save;
        h->rel[save] = '\0';
        if (step)
            goto cleanup;
    }
    if (errno) {
        s_fail(h, "hashFiles: cannot read directory '%s': %s",
               h->rel_len ? h->rel : ".", strerror(errno));
        goto cleanup;
    }
    rc = 0;
cleanup:
    closedir(d);
    return rc;
}

static int s_hashed_cmp(const void *a, const void *b)
{
    return strcmp(((const s_hashed_t *)a)->rel, ((const s_hashed_t *)b)->rel);
}


/* ------------------------------------------------------------------ API */

int kiln_hashfiles_compute(const char *workspace, const char *const *patterns, const size_t *lens,
                           size_t n_patterns, char out_hex[65], char *err, size_t errlen)
{
    const char *ws = workspace;
    s_hash_t *h = calloc(1, sizeof *h);
    char hex[crypto_hash_sha256_BYTES * 2 + 1] = "";
    int rc = -1, root;
    assert(workspace && (patterns || n_patterns == 0) && out_hex);
    out_hex[0] = '\0';
    if (!h) {
        kiln_error_set("hashFiles: out of memory");
        if (err && errlen)
            snprintf(err, errlen, "hashFiles: out of memory");
        return -1;
    }
    for (size_t i = 0; i < n_patterns; i++) {
        const char *p = patterns[i];
        size_t len = lens ? lens[i] : strlen(p);
        if (len == 23 && !memcmp(p, "--follow-symbolic-links", 23))
            h->follow = true;
        else if (s_glob_add_all(h, p, len, ws))
            goto cleanup;
    }
    if (h->n_globs == 0) {
        s_fail(h, "hashFiles: expects at least one pattern");
        goto cleanup;
    }
    if (sodium_init() < 0) {
        s_fail(h, "hashFiles: libsodium failed to initialise");
        goto cleanup;
    }
    if (h->follow && !realpath(ws, h->ws_real)) {
        s_fail(h, "hashFiles: workspace '%s': %s", ws, strerror(errno));
        goto cleanup;
    }
    if (!(h->chunk = malloc(S_CHUNK))) {
        s_oom(h);
        goto cleanup;
    }
    if ((root = open(ws, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1) {
        s_fail(h, "hashFiles: cannot open workspace '%s': %s", ws, strerror(errno));
        goto cleanup;
    }
    if (s_hash_walk(h, root, 0))
        goto cleanup;
    if (h->n_files) {
        crypto_hash_sha256_state st;
        unsigned char sum[crypto_hash_sha256_BYTES];
        qsort(h->files, h->n_files, sizeof *h->files, s_hashed_cmp);
        crypto_hash_sha256_init(&st);
        for (size_t i = 0; i < h->n_files; i++)
            crypto_hash_sha256_update(&st, h->files[i].digest, sizeof h->files[i].digest);
        crypto_hash_sha256_final(&st, sum);
        sodium_bin2hex(hex, sizeof hex, sum, sizeof sum);
    }
    memcpy(out_hex, hex, sizeof hex);
    rc = 0;
cleanup:
    if (rc) {
        if (!h->failed)
            s_fail(h, "hashFiles: failed");
        kiln_error_set("%s", h->msg);
        if (err && errlen)
            snprintf(err, errlen, "%s", h->msg);
        rc = h->oom ? -1 : KILN_EINVAL;
    }
    for (size_t i = 0; i < h->n_globs; i++)
        free(h->globs[i].buf);
    for (size_t i = 0; i < h->n_files; i++)
        free(h->files[i].rel);
    free(h->files);
    free(h->chunk);
    free(h);
    return rc;
}

int kiln_hashfiles_callback(void *ctx, const char *const *patterns, const size_t *lens,
                            size_t n_patterns, char out_hex[65], char *err, size_t errlen)
{
    return kiln_hashfiles_compute((const char *)ctx, patterns, lens, n_patterns, out_hex, err,
                                  errlen);
}
