/* archive.c: tar + zstd archives of trees, packed and unpacked with
 * libarchive (see archive.h). Unpacking checks each entry itself before
 * libarchive writes it, so a refusal names the entry and the reason, and
 * lets libarchive's own secure-extraction flags stand behind those checks
 * (a link followed on the way down, a path resolved outside). */
#include "common/archive.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "common/error.h"
#include "common/fs.h"
#include "common/log.h"

#define S_BLOCK (64 * 1024)
/* Directories nest at most this deep in what is packed. */
#define S_DEPTH_MAX 256

/* A relative path that stays where it is put: not empty or absolute, no
 * "..", no empty or "." segment but a trailing slash. */
static bool s_rel_ok(const char *p)
{
    if (!p || !p[0] || p[0] == '/' || strlen(p) >= PATH_MAX / 2)
        return false;
    for (const char *seg = p; *seg;) {
        const char *end = strchr(seg, '/');
        size_t n = end ? (size_t)(end - seg) : strlen(seg);
        if ((n == 2 && seg[0] == '.' && seg[1] == '.') || (n == 1 && seg[0] == '.' && end) ||
            (n == 0 && end && end[1]))
            return false;
        if (!end)
            break;
        seg = end + 1;
    }
    return true;
}

/* Whether a symbolic link at entry name with target stays inside: the
 * target, read from the link's directory, never climbs above the top. */
static bool s_link_inside(const char *name, const char *target)
{
    if (!target || !target[0] || target[0] == '/')
        return false;
    long depth = 0;
    for (const char *c = name; *c; c++)
        if (*c == '/' && c[1])
            depth++;
    for (const char *seg = target; *seg;) {
        const char *end = strchr(seg, '/');
        size_t n = end ? (size_t)(end - seg) : strlen(seg);
        if (n == 2 && seg[0] == '.' && seg[1] == '.') {
            if (--depth < 0)
                return false;
        } else if (n && !(n == 1 && seg[0] == '.')) {
            depth++;
        }
        if (!end)
            break;
        seg = end + 1;
    }
    return true;
}

/* ------------------------------------------------------------------ pack */

typedef struct {
    struct archive *a;
    kiln_archive_stats_t *stats;
    char buf[S_BLOCK];
} s_pack_t;

static int s_pack_error(s_pack_t *p, const char *what)
{
    kiln_error_set("cannot pack %s: %s", what, archive_error_string(p->a));
    return -1;
}

/* Packs the file or tree at full as the entry rel. */
static int s_pack_one(s_pack_t *p, const char *full, const char *rel, int depth)
{
    struct stat st;
    int rc = -1, fd = -1;
    DIR *dir = NULL;
    struct archive_entry *e = NULL;
    if (depth > S_DEPTH_MAX) {
        kiln_error_set("cannot pack %s: directories nest deeper than %d", rel, S_DEPTH_MAX);
        return -1;
    }
    if (lstat(full, &st) != 0) {
        kiln_error_errno("cannot pack %s", full);
        return -1;
    }
    if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode) && !S_ISLNK(st.st_mode))
        return 0; /* sockets and devices are no part of a cache or artifact */
    if (S_ISREG(st.st_mode) && (fd = open(full, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
        kiln_error_errno("cannot pack %s", full);
        return -1;
    }
    e = archive_entry_new();
    archive_entry_copy_stat(e, &st);
    archive_entry_set_pathname(e, rel);
    archive_entry_set_uid(e, 0);
    archive_entry_set_gid(e, 0);
    archive_entry_set_perm(e, st.st_mode & 0777);
    if (S_ISLNK(st.st_mode)) {
        char target[PATH_MAX];
        ssize_t n = readlink(full, target, sizeof target - 1);
        if (n < 0) {
            kiln_error_errno("cannot pack %s", full);
            goto cleanup;
        }
        target[n] = '\0';
        archive_entry_set_symlink(e, target);
    }
    if (archive_write_header(p->a, e) != ARCHIVE_OK) {
        s_pack_error(p, rel);
        goto cleanup;
    }
    p->stats->entries++;
    if (fd >= 0) {
        ssize_t n;
        while ((n = read(fd, p->buf, sizeof p->buf)) > 0) {
            if (archive_write_data(p->a, p->buf, (size_t)n) != n) {
                s_pack_error(p, rel);
                goto cleanup;
            }
            p->stats->bytes += (uint64_t)n;
        }
        if (n < 0) {
            kiln_error_errno("cannot read %s", full);
            goto cleanup;
        }
    }
    if (S_ISDIR(st.st_mode)) {
        if (!(dir = opendir(full))) {
            kiln_error_errno("cannot pack %s", full);
            goto cleanup;
        }
        struct dirent *d;
        while ((d = readdir(dir))) {
            if (strcmp(d->d_name, ".") == 0 || strcmp(d->d_name, "..") == 0)
                continue;
            char child[PATH_MAX], child_full[PATH_MAX];
            if ((size_t)snprintf(child, sizeof child, "%s/%s", rel, d->d_name) >= sizeof child ||
                (size_t)snprintf(child_full, sizeof child_full, "%s/%s", full, d->d_name) >=
                    sizeof child_full) {
                kiln_error_set("cannot pack %s/%s: the path is too long", rel, d->d_name);
                goto cleanup;
            }
            if (s_pack_one(p, child_full, child, depth + 1) != 0)
                goto cleanup;
        }
    }
    rc = 0;
cleanup:
    if (dir)
        closedir(dir);
    if (fd >= 0)
        close(fd);
    archive_entry_free(e);
    return rc;
}

int kiln_archive_pack_items(const kiln_archive_item_t *items, size_t n_items, const char *out,
                            int level, kiln_archive_stats_t *stats)
{
    int rc = -1;
    char tmp[PATH_MAX + 32], opt[16];
    kiln_archive_stats_t local = {0};
    s_pack_t *p = calloc(1, sizeof *p);
    struct stat st;
    if (!stats)
        stats = &local;
    memset(stats, 0, sizeof *stats);
    if (!p) {
        kiln_error_set("out of memory");
        return -1;
    }
    p->stats = stats;
    for (size_t i = 0; i < n_items; i++) {
        if (!s_rel_ok(items[i].name)) {
            kiln_error_set("cannot pack %s as '%s': an entry's name is relative, without '..'",
                           items[i].path, items[i].name);
            free(p);
            return KILN_EINVAL;
        }
    }
    snprintf(tmp, sizeof tmp, "%s.tmp%ld", out, (long)getpid());
    snprintf(opt, sizeof opt, "%d", level > 0 && level <= 19 ? level : 3);
    p->a = archive_write_new();
    if (!p->a || archive_write_set_format_pax_restricted(p->a) != ARCHIVE_OK ||
        archive_write_add_filter_zstd(p->a) != ARCHIVE_OK ||
        archive_write_set_filter_option(p->a, "zstd", "compression-level", opt) != ARCHIVE_OK ||
        archive_write_open_filename(p->a, tmp) != ARCHIVE_OK) {
        kiln_error_set("cannot write %s: %s", tmp, p->a ? archive_error_string(p->a) : "out of memory");
        goto cleanup;
    }
    for (size_t i = 0; i < n_items; i++) {
        /* "dir/" and "dir" are one entry. */
        char rel[PATH_MAX];
        snprintf(rel, sizeof rel, "%s", items[i].name);
        for (size_t n = strlen(rel); n > 1 && rel[n - 1] == '/'; n--)
            rel[n - 1] = '\0';
        if (s_pack_one(p, items[i].path, rel, 0) != 0)
            goto cleanup;
    }
    if (archive_write_close(p->a) != ARCHIVE_OK) {
        kiln_error_set("cannot write %s: %s", tmp, archive_error_string(p->a));
        goto cleanup;
    }
    if (stat(tmp, &st) != 0 || rename(tmp, out) != 0) {
        kiln_error_errno("cannot write %s", out);
        goto cleanup;
    }
    stats->archive_bytes = (uint64_t)st.st_size;
    rc = 0;
cleanup:
    if (p->a)
        archive_write_free(p->a);
    if (rc != 0)
        unlink(tmp);
    free(p);
    return rc;
}

int kiln_archive_pack(const char *root, const char *const *paths, size_t n_paths,
                      const char *out, int level, kiln_archive_stats_t *stats)
{
    kiln_archive_item_t *items = calloc(n_paths ? n_paths : 1, sizeof *items);
    char (*full)[PATH_MAX] = calloc(n_paths ? n_paths : 1, PATH_MAX);
    int rc = -1;
    if (!items || !full) {
        kiln_error_set("out of memory");
        goto cleanup;
    }
    for (size_t i = 0; i < n_paths; i++) {
        if (!s_rel_ok(paths[i])) {
            kiln_error_set("cannot pack '%s': a path inside %s is needed (relative, no '..')",
                           paths[i], root);
            rc = KILN_EINVAL;
            goto cleanup;
        }
        snprintf(full[i], PATH_MAX, "%s/%s", root, paths[i]);
        items[i].path = full[i];
        items[i].name = paths[i];
    }
    rc = kiln_archive_pack_items(items, n_paths, out, level, stats);
cleanup:
    free(items);
    free(full);
    return rc;
}

/* ---------------------------------------------------------------- unpack */

/* Restoring a cache is mostly the kernel creating files, so unpacking
 * overlaps the two halves of the work the way `tar --zstd -xf` does with
 * its zstd child: a feeder thread reads and decompresses the archive into
 * a few bounded blocks while the caller's thread parses the tar stream and
 * writes the files. The files are written here rather than through
 * libarchive's disk writer, whose secure-symlink checks cost a dozen
 * system calls per entry: every name is created with openat() relative to
 * an open directory that was itself opened without following links, and
 * nothing existing is ever opened for writing, so no link, planted or
 * archived, can redirect a write. */

#define S_FEED_SLOTS 4
#define S_FEED_BLOCK (1024 * 1024)
#define S_FEED_IN (128 * 1024)
/* Links followed when checking where an archived link resolves. */
#define S_HOPS_MAX 40

static const unsigned char S_ZSTD_MAGIC[4] = {0x28, 0xb5, 0x2f, 0xfd};

typedef struct {
    int fd;
    pthread_t thread;
    bool started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char *slot[S_FEED_SLOTS];
    size_t len[S_FEED_SLOTS];
    size_t head, count; /* slots filled, head first; the reader's is counted */
    bool held;          /* the reader holds slot head */
    bool eof, stop;     /* the feeder finished; the reader gave up */
    char err[256];      /* the feeder's failure, or "" */
} s_feed_t;

/* The next free slot, or NULL when the reader stopped. */
static char *s_feed_wait_free(s_feed_t *f, size_t *idx)
{
    pthread_mutex_lock(&f->mu);
    while (f->count == S_FEED_SLOTS && !f->stop)
        pthread_cond_wait(&f->cv, &f->mu);
    bool stop = f->stop;
    *idx = (f->head + f->count) % S_FEED_SLOTS;
    pthread_mutex_unlock(&f->mu);
    return stop ? NULL : f->slot[*idx];
}

static void s_feed_publish(s_feed_t *f, size_t idx, size_t len, bool eof, const char *err)
{
    pthread_mutex_lock(&f->mu);
    if (len) {
        f->len[idx] = len;
        f->count++;
    }
    if (err && !f->err[0])
        snprintf(f->err, sizeof f->err, "%s", err);
    f->eof = f->eof || eof || err;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

/* Reads len bytes or to the end of the file: the count, or -1. */
static ssize_t s_read_full(int fd, char *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = read(fd, buf + got, len - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            break;
        got += (size_t)n;
    }
    return (ssize_t)got;
}

static void *s_feed_main(void *arg)
{
    s_feed_t *f = arg;
    char *in = malloc(S_FEED_IN), err[200] = "";
    ZSTD_DStream *z = NULL;
    size_t idx, fill = 0, zret = 1;
    char *out = NULL;
    ssize_t n = -1;
    if (!in) {
        snprintf(err, sizeof err, "out of memory");
        goto done;
    }
    if ((n = s_read_full(f->fd, in, S_FEED_IN)) < 0) {
        snprintf(err, sizeof err, "cannot read it: %s", strerror(errno));
        goto done;
    }
    if (n < 4 || memcmp(in, S_ZSTD_MAGIC, 4) != 0) {
        /* A plain tar (or garbage the tar reader names): passed as read. */
        while (n > 0) {
            if (!(out = s_feed_wait_free(f, &idx)))
                goto done;
            memcpy(out, in, (size_t)n);
            s_feed_publish(f, idx, (size_t)n, false, NULL);
            if ((n = s_read_full(f->fd, in, S_FEED_IN)) < 0) {
                snprintf(err, sizeof err, "cannot read it: %s", strerror(errno));
                goto done;
            }
        }
        goto done;
    }
    if (!(z = ZSTD_createDStream())) {
        snprintf(err, sizeof err, "out of memory");
        goto done;
    }
    ZSTD_initDStream(z);
    ZSTD_inBuffer ib = {in, (size_t)n, 0};
    if (!(out = s_feed_wait_free(f, &idx)))
        goto done;
    /* Once the input has ended, zstd is called on nothing until it gives
     * no more: what it held back comes out, and a frame cut short is
     * damage, not an end. */
    bool input_done = false;
    for (;;) {
        if (ib.pos == ib.size && !input_done) {
            if ((n = s_read_full(f->fd, in, S_FEED_IN)) < 0) {
                snprintf(err, sizeof err, "cannot read it: %s", strerror(errno));
                goto done;
            }
            input_done = n == 0;
            ib = (ZSTD_inBuffer){in, (size_t)n, 0};
        }
        ZSTD_outBuffer ob = {out, S_FEED_BLOCK, fill};
        size_t r = ZSTD_decompressStream(z, &ob, &ib);
        if (ZSTD_isError(r)) {
            snprintf(err, sizeof err, "damaged zstd data: %s", ZSTD_getErrorName(r));
            goto done;
        }
        /* With nothing to give, zstd answers for the next frame; after the
         * input only a call that gave out data speaks for this one. */
        bool gave = ob.pos > fill;
        if (!input_done || gave)
            zret = r;
        fill = ob.pos;
        if (fill == S_FEED_BLOCK) {
            s_feed_publish(f, idx, fill, false, NULL);
            fill = 0;
            if (!(out = s_feed_wait_free(f, &idx)))
                goto done;
            continue;
        }
        if (input_done && !gave)
            break;
    }
    if (zret != 0)
        snprintf(err, sizeof err, "the zstd data is cut short");
    else if (fill)
        s_feed_publish(f, idx, fill, false, NULL);
done:
    s_feed_publish(f, 0, 0, true, err[0] ? err : NULL);
    ZSTD_freeDStream(z);
    free(in);
    return NULL;
}

/* libarchive's read callback: the next decompressed block. */
static la_ssize_t s_feed_read(struct archive *a, void *arg, const void **buf)
{
    s_feed_t *f = arg;
    pthread_mutex_lock(&f->mu);
    if (f->held) {
        f->head = (f->head + 1) % S_FEED_SLOTS;
        f->count--;
        f->held = false;
        pthread_cond_broadcast(&f->cv);
    }
    while (!f->count && !f->eof)
        pthread_cond_wait(&f->cv, &f->mu);
    la_ssize_t n = 0;
    if (f->err[0]) {
        archive_set_error(a, EIO, "%s", f->err);
        n = -1;
    } else if (f->count) {
        *buf = f->slot[f->head];
        n = (la_ssize_t)f->len[f->head];
        f->held = true;
    }
    pthread_mutex_unlock(&f->mu);
    return n;
}

static int s_feed_start(s_feed_t *f, int fd)
{
    memset(f, 0, sizeof *f);
    f->fd = fd;
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->cv, NULL);
    for (size_t i = 0; i < S_FEED_SLOTS; i++)
        if (!(f->slot[i] = malloc(S_FEED_BLOCK))) {
            kiln_error_set("out of memory");
            return -1;
        }
    int e = pthread_create(&f->thread, NULL, s_feed_main, f);
    if (e != 0) {
        kiln_error_set("cannot start the archive reader: %s", strerror(e));
        return -1;
    }
    f->started = true;
    return 0;
}

static void s_feed_stop(s_feed_t *f)
{
    if (f->started) {
        pthread_mutex_lock(&f->mu);
        f->stop = true;
        pthread_cond_broadcast(&f->cv);
        pthread_mutex_unlock(&f->mu);
        pthread_join(f->thread, NULL);
    }
    for (size_t i = 0; i < S_FEED_SLOTS; i++)
        free(f->slot[i]);
    pthread_cond_destroy(&f->cv);
    pthread_mutex_destroy(&f->mu);
}

typedef struct {
    char *rel;
    mode_t mode;
    struct timespec mtime;
} s_fixup_t;

typedef struct {
    struct archive *r;
    const char *path;
    char staging[PATH_MAX];
    int root;             /* the staging directory */
    char cur[PATH_MAX];   /* the directory curfd is open on, relative */
    int curfd;            /* -1 when none */
    s_fixup_t *dirs;      /* directories' modes and times, set at the end */
    size_t n_dirs, cap_dirs;
    char **links;         /* symbolic links, checked at the end */
    size_t n_links, cap_links;
    char buf[S_BLOCK];
    kiln_archive_limits_t lim;
    kiln_archive_stats_t *stats;
} s_unpack_t;

/* The archive's fault: KILN_EINVAL with the entry named. */
static int s_refuse(s_unpack_t *u, const char *entry, const char *why)
{
    kiln_error_set("%s: entry '%.200s': %s; nothing was unpacked", u->path, entry, why);
    return KILN_EINVAL;
}

static int s_write_fail(s_unpack_t *u, const char *entry)
{
    kiln_error_set("cannot unpack %s into %s: %s: %s", u->path, u->staging, entry,
                   strerror(errno));
    return -1;
}

/* Opens the directory rel (n bytes of it; "" is the top) one component at
 * a time without following links, making the missing ones when make. A
 * new descriptor in *fd, or the refusal. */
static int s_open_dir(s_unpack_t *u, const char *entry, const char *rel, size_t n, bool make,
                      int *fd)
{
    int at = dup(u->root);
    if (at < 0)
        return s_write_fail(u, entry);
    for (size_t i = 0; i < n;) {
        char comp[NAME_MAX + 1];
        size_t k = 0;
        while (i < n && rel[i] != '/') {
            if (k == NAME_MAX) {
                close(at);
                return s_refuse(u, entry, "a name in its path is too long");
            }
            comp[k++] = rel[i++];
        }
        comp[k] = '\0';
        while (i < n && rel[i] == '/')
            i++;
        if (!k || (k == 1 && comp[0] == '.'))
            continue;
        int next = openat(at, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (next < 0 && errno == ENOENT && make) {
            if (mkdirat(at, comp, 0755) != 0 && errno != EEXIST) {
                int rc = s_write_fail(u, entry);
                close(at);
                return rc;
            }
            next = openat(at, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        }
        if (next < 0) {
            int e = errno;
            close(at);
            if (e == ELOOP || e == ENOTDIR)
                return s_refuse(u, entry, "its path leads through a symbolic link or a file");
            if (e == ENOENT)
                return s_refuse(u, entry, "its path leads through a directory not in the archive");
            errno = e;
            return s_write_fail(u, entry);
        }
        close(at);
        at = next;
    }
    *fd = at;
    return 0;
}

/* The directory holding name, opened (kept open for the entries after it,
 * which are mostly its siblings); *leaf points at the last component. */
static int s_parent(s_unpack_t *u, const char *name, int *fd, const char **leaf)
{
    const char *slash = strrchr(name, '/');
    size_t n = slash ? (size_t)(slash - name) : 0;
    *leaf = slash ? slash + 1 : name;
    if (u->curfd >= 0 && strlen(u->cur) == n && strncmp(u->cur, name, n) == 0) {
        *fd = u->curfd;
        return 0;
    }
    int nfd, rc = s_open_dir(u, name, name, n, true, &nfd);
    if (rc != 0)
        return rc;
    if (u->curfd >= 0)
        close(u->curfd);
    u->curfd = nfd;
    memcpy(u->cur, name, n);
    u->cur[n] = '\0';
    *fd = nfd;
    return 0;
}

static int s_grow(void **arr, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return 0;
    size_t ncap = *cap ? *cap * 2 : 64;
    void *p = realloc(*arr, ncap * size);
    if (!p) {
        kiln_error_set("out of memory");
        return -1;
    }
    *arr = p;
    *cap = ncap;
    return 0;
}

static int s_write_file(s_unpack_t *u, struct archive_entry *e, const char *name, int dfd,
                        const char *leaf)
{
    int fd = openat(dfd, leaf, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return errno == EEXIST ? s_refuse(u, name, "the archive has it twice")
                               : s_write_fail(u, name);
    int rc = -1;
    const void *buf;
    size_t len;
    la_int64_t off, end = 0;
    int r;
    uint64_t ratio_cap = u->lim.max_ratio *
                         (u->stats->archive_bytes > 4096 ? u->stats->archive_bytes : 4096);
    while ((r = archive_read_data_block(u->r, &buf, &len, &off)) == ARCHIVE_OK) {
        u->stats->bytes += len;
        if (u->stats->bytes > u->lim.max_bytes) {
            char why[128];
            snprintf(why, sizeof why, "the files are over %llu bytes",
                     (unsigned long long)u->lim.max_bytes);
            rc = s_refuse(u, name, why);
            goto cleanup;
        }
        if (u->stats->bytes > ratio_cap) {
            char why[128];
            snprintf(why, sizeof why, "it expands more than %llu times its archive",
                     (unsigned long long)u->lim.max_ratio);
            rc = s_refuse(u, name, why);
            goto cleanup;
        }
        for (size_t done = 0; done < len;) {
            ssize_t w = pwrite(fd, (const char *)buf + done, len - done, off + (off_t)done);
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0) {
                rc = s_write_fail(u, name);
                goto cleanup;
            }
            done += (size_t)w;
        }
        end = off + (la_int64_t)len;
    }
    if (r != ARCHIVE_EOF) {
        rc = s_refuse(u, name, archive_error_string(u->r));
        goto cleanup;
    }
    /* A sparse file's hole at its end is no data block. */
    if (archive_entry_size_is_set(e) && archive_entry_size(e) > end &&
        ftruncate(fd, (off_t)archive_entry_size(e)) != 0) {
        rc = s_write_fail(u, name);
        goto cleanup;
    }
    struct timespec ts[2] = {{.tv_nsec = UTIME_OMIT},
                             {archive_entry_mtime(e), archive_entry_mtime_nsec(e)}};
    if (fchmod(fd, archive_entry_perm(e) & 0777) != 0 ||
        (archive_entry_mtime_is_set(e) && futimens(fd, ts) != 0)) {
        rc = s_write_fail(u, name);
        goto cleanup;
    }
    rc = 0;
cleanup:
    if (close(fd) != 0 && rc == 0)
        rc = s_write_fail(u, name);
    return rc;
}

static int s_unpack_entry(s_unpack_t *u, struct archive_entry *e)
{
    char name[PATH_MAX];
    const char *given = archive_entry_pathname(e);
    if (!given || (size_t)snprintf(name, sizeof name, "%s", given) >= sizeof name)
        return s_refuse(u, given ? "?" : "(no name)", "it has no name, or too long a one");
    if (++u->stats->entries > u->lim.max_entries) {
        char why[128];
        snprintf(why, sizeof why, "more than %llu entries", (unsigned long long)u->lim.max_entries);
        return s_refuse(u, name, why);
    }
    if (!s_rel_ok(name))
        return s_refuse(u, name, "its path is absolute or leaves the target with '..'");
    mode_t type = archive_entry_filetype(e);
    const char *hard = archive_entry_hardlink(e);
    if (archive_entry_mode(e) & (S_ISUID | S_ISGID | S_ISVTX))
        return s_refuse(u, name, "it has a setuid, setgid or sticky bit");
    if (hard) {
        if (!s_rel_ok(hard))
            return s_refuse(u, name, "a hard link to a path outside the target");
    } else if (type == AE_IFLNK) {
        if (!s_link_inside(name, archive_entry_symlink(e)))
            return s_refuse(u, name, "a symbolic link that leads out of the target");
    } else if (type != AE_IFREG && type != AE_IFDIR) {
        return s_refuse(u, name, "a device, FIFO or socket");
    }
    /* A directory's trailing slash is no part of its name. */
    size_t nl = strlen(name);
    while (nl > 1 && name[nl - 1] == '/')
        name[--nl] = '\0';
    int dfd, rc;
    const char *leaf;
    if ((rc = s_parent(u, name, &dfd, &leaf)) != 0)
        return rc;
    if (hard) {
        const char *hs = strrchr(hard, '/');
        const char *hleaf = hs ? hs + 1 : hard;
        int hfd;
        struct stat st;
        if ((rc = s_open_dir(u, name, hard, hs ? (size_t)(hs - hard) : 0, false, &hfd)) != 0)
            return rc;
        if (fstatat(hfd, hleaf, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode)) {
            close(hfd);
            return s_refuse(u, name, "a hard link to no regular file of the archive");
        }
        rc = linkat(hfd, hleaf, dfd, leaf, 0);
        int e2 = errno;
        close(hfd);
        errno = e2;
        if (rc != 0)
            return errno == EEXIST ? s_refuse(u, name, "the archive has it twice")
                                   : s_write_fail(u, name);
        return 0;
    }
    if (type == AE_IFREG)
        return s_write_file(u, e, name, dfd, leaf);
    if (type == AE_IFLNK) {
        if (symlinkat(archive_entry_symlink(e), dfd, leaf) != 0)
            return errno == EEXIST ? s_refuse(u, name, "the archive has it twice")
                                   : s_write_fail(u, name);
        if (s_grow((void **)&u->links, &u->cap_links, u->n_links + 1, sizeof *u->links) != 0 ||
            !(u->links[u->n_links] = strdup(name))) {
            kiln_error_set("out of memory");
            return -1;
        }
        u->n_links++;
        return 0;
    }
    /* A directory: made private now, given its own mode and time at the
     * end, since the entries made in it would change its time. */
    struct stat st;
    if (strcmp(leaf, ".") != 0 && mkdirat(dfd, leaf, 0700) != 0) {
        if (errno != EEXIST)
            return s_write_fail(u, name);
        if (fstatat(dfd, leaf, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISDIR(st.st_mode))
            return s_refuse(u, name, "the archive has it twice");
    }
    if (s_grow((void **)&u->dirs, &u->cap_dirs, u->n_dirs + 1, sizeof *u->dirs) != 0 ||
        !(u->dirs[u->n_dirs].rel = strdup(name))) {
        kiln_error_set("out of memory");
        return -1;
    }
    u->dirs[u->n_dirs].mode = archive_entry_perm(e) & 0777;
    u->dirs[u->n_dirs].mtime = (struct timespec){archive_entry_mtime(e),
                                                 archive_entry_mtime_nsec(e)};
    u->n_dirs++;
    return 0;
}

/* Whether the link at rel, followed through every link it meets in the
 * tree as the kernel would, stays in the tree: each link alone was checked
 * as its entry came, but a chain (a link to a directory's link that climbs)
 * can lead out where none alone does. */
static bool s_link_resolves_inside(s_unpack_t *u, const char *rel)
{
    char at[PATH_MAX] = "", todo[PATH_MAX], target[PATH_MAX];
    const char *slash = strrchr(rel, '/');
    if (slash)
        snprintf(at, sizeof at, "%.*s", (int)(slash - rel), rel);
    ssize_t n = readlinkat(u->root, rel, todo, sizeof todo - 1);
    if (n < 0)
        return false;
    todo[n] = '\0';
    int hops = 0;
    while (todo[0]) {
        char comp[NAME_MAX + 1], *rest = strchr(todo, '/');
        size_t k = rest ? (size_t)(rest - todo) : strlen(todo);
        if (k > NAME_MAX)
            return false;
        memcpy(comp, todo, k);
        comp[k] = '\0';
        memmove(todo, rest ? rest + 1 : todo + k, strlen(rest ? rest + 1 : todo + k) + 1);
        if (!k || strcmp(comp, ".") == 0)
            continue;
        if (strcmp(comp, "..") == 0) {
            if (!at[0])
                return false;
            char *up = strrchr(at, '/');
            if (up)
                *up = '\0';
            else
                at[0] = '\0';
            continue;
        }
        char next[PATH_MAX];
        if ((size_t)snprintf(next, sizeof next, "%s%s%s", at, at[0] ? "/" : "", comp) >=
            sizeof next)
            return false;
        struct stat st;
        if (fstatat(u->root, next, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode)) {
            if (++hops > S_HOPS_MAX)
                return false;
            n = readlinkat(u->root, next, target, sizeof target - 1);
            if (n <= 0 || target[0] == '/')
                return false;
            target[n] = '\0';
            char joined[PATH_MAX];
            if ((size_t)snprintf(joined, sizeof joined, "%s/%s", target, todo) >= sizeof joined)
                return false;
            snprintf(todo, sizeof todo, "%s", joined);
            continue;
        }
        snprintf(at, sizeof at, "%s", next);
    }
    return true;
}

/* What could only be done once every entry was in: the links' chains
 * checked, the directories given their modes and times. */
static int s_unpack_finish(s_unpack_t *u)
{
    for (size_t i = 0; i < u->n_links; i++)
        if (!s_link_resolves_inside(u, u->links[i]))
            return s_refuse(u, u->links[i],
                            "a symbolic link that leads out of the target through other links");
    for (size_t i = u->n_dirs; i-- > 0;) {
        int fd, rc;
        if ((rc = s_open_dir(u, u->dirs[i].rel, u->dirs[i].rel, strlen(u->dirs[i].rel), false,
                             &fd)) != 0)
            return rc;
        struct timespec ts[2] = {{.tv_nsec = UTIME_OMIT}, u->dirs[i].mtime};
        rc = fchmod(fd, u->dirs[i].mode) != 0 || futimens(fd, ts) != 0;
        int e = errno;
        close(fd);
        errno = e;
        if (rc)
            return s_write_fail(u, u->dirs[i].rel);
    }
    return 0;
}

int kiln_archive_unpack(const char *path, const char *dest, const kiln_archive_limits_t *limits,
                        kiln_archive_stats_t *stats)
{
    int rc = -1, fd = -1;
    kiln_archive_stats_t local = {0};
    s_unpack_t *u = calloc(1, sizeof *u);
    s_feed_t feed;
    bool made = false, fed = false;
    struct stat st;
    if (!u) {
        kiln_error_set("out of memory");
        return -1;
    }
    u->path = path;
    u->stats = stats ? stats : &local;
    u->root = u->curfd = -1;
    memset(u->stats, 0, sizeof *u->stats);
    u->lim.max_entries = limits && limits->max_entries ? limits->max_entries
                                                       : KILN_ARCHIVE_MAX_ENTRIES_DEFAULT;
    u->lim.max_bytes = limits && limits->max_bytes ? limits->max_bytes
                                                   : KILN_ARCHIVE_MAX_BYTES_DEFAULT;
    u->lim.max_ratio = limits && limits->max_ratio ? limits->max_ratio
                                                   : KILN_ARCHIVE_MAX_RATIO_DEFAULT;
    if (lstat(dest, &st) == 0 || errno != ENOENT) {
        kiln_error_set("cannot unpack %s into %s: it is there already", path, dest);
        goto cleanup;
    }
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0 || fstat(fd, &st) != 0 ||
        !S_ISREG(st.st_mode)) {
        if (fd >= 0)
            errno = EINVAL;
        kiln_error_errno("cannot unpack %s", path);
        goto cleanup;
    }
    u->stats->archive_bytes = (uint64_t)st.st_size;
    /* Beside the target, so the last step is one rename. */
    if ((size_t)snprintf(u->staging, sizeof u->staging, "%s.unpack-XXXXXX", dest) >=
        sizeof u->staging) {
        kiln_error_set("cannot unpack into %s: the path is too long", dest);
        goto cleanup;
    }
    if (!mkdtemp(u->staging)) {
        kiln_error_errno("cannot unpack into %s", dest);
        goto cleanup;
    }
    made = true;
    if ((u->root = open(u->staging, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
        kiln_error_errno("cannot open %s", u->staging);
        goto cleanup;
    }
    fed = true;
    if (s_feed_start(&feed, fd) != 0)
        goto cleanup;
    if (!(u->r = archive_read_new())) {
        kiln_error_set("out of memory");
        goto cleanup;
    }
    archive_read_support_filter_none(u->r);
    archive_read_support_format_tar(u->r);
    if (archive_read_open(u->r, &feed, NULL, s_feed_read, NULL) != ARCHIVE_OK) {
        kiln_error_set("%s: not a tar + zstd archive: %s; nothing was unpacked", path,
                       archive_error_string(u->r));
        rc = KILN_EINVAL;
        goto cleanup;
    }
    struct archive_entry *e;
    int r;
    while ((r = archive_read_next_header(u->r, &e)) == ARCHIVE_OK) {
        if ((rc = s_unpack_entry(u, e)) != 0)
            goto cleanup;
        rc = -1;
    }
    if (r != ARCHIVE_EOF) {
        kiln_error_set("%s: a damaged archive: %s; nothing was unpacked", path,
                       archive_error_string(u->r));
        rc = KILN_EINVAL;
        goto cleanup;
    }
    if ((rc = s_unpack_finish(u)) != 0)
        goto cleanup;
    rc = -1;
    if (rename(u->staging, dest) != 0) {
        kiln_error_errno("cannot move %s to %s", u->staging, dest);
        goto cleanup;
    }
    made = false;
    rc = 0;
cleanup:
    if (u->r)
        archive_read_free(u->r);
    if (fed)
        s_feed_stop(&feed);
    if (fd >= 0)
        close(fd);
    if (u->curfd >= 0)
        close(u->curfd);
    if (u->root >= 0)
        close(u->root);
    /* A refusal's message stands; a staging directory that cannot go is
     * logged, since it holds nothing anyone uses. */
    if (made && kiln_fs_rmtree(u->staging) != 0)
        kiln_log_warn("cannot remove %s: %s", u->staging, strerror(errno));
    for (size_t i = 0; i < u->n_dirs; i++)
        free(u->dirs[i].rel);
    for (size_t i = 0; i < u->n_links; i++)
        free(u->links[i]);
    free(u->dirs);
    free(u->links);
    free(u);
    return rc;
}
