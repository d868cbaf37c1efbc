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
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

typedef struct {
    struct archive *r, *w;
    const char *path;
    char staging[PATH_MAX];
    kiln_archive_limits_t lim;
    kiln_archive_stats_t *stats;
} s_unpack_t;

/* The archive's fault: KILN_EINVAL with the entry named. */
static int s_refuse(s_unpack_t *u, const char *entry, const char *why)
{
    kiln_error_set("%s: entry '%.200s': %s; nothing was unpacked", u->path, entry, why);
    return KILN_EINVAL;
}

static int s_unpack_entry(s_unpack_t *u, struct archive_entry *e)
{
    /* A copy: setting the entry's path below replaces the entry's own. */
    char name[PATH_MAX], full[PATH_MAX * 2];
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
        /* A hard link: to a regular file unpacked before it, inside. */
        char target[PATH_MAX * 2];
        struct stat st;
        if (!s_rel_ok(hard))
            return s_refuse(u, name, "a hard link to a path outside the target");
        snprintf(target, sizeof target, "%s/%s", u->staging, hard);
        if (lstat(target, &st) != 0 || !S_ISREG(st.st_mode))
            return s_refuse(u, name, "a hard link to no regular file of the archive");
        archive_entry_set_hardlink(e, target);
    } else if (type == AE_IFLNK) {
        if (!s_link_inside(name, archive_entry_symlink(e)))
            return s_refuse(u, name, "a symbolic link that leads out of the target");
    } else if (type != AE_IFREG && type != AE_IFDIR) {
        return s_refuse(u, name, "a device, FIFO or socket");
    }
    snprintf(full, sizeof full, "%s/%s", u->staging, name);
    archive_entry_set_pathname(e, full);
    if (archive_write_header(u->w, e) != ARCHIVE_OK)
        return s_refuse(u, name, archive_error_string(u->w));
    if (type == AE_IFREG && !hard) {
        const void *buf;
        size_t len;
        la_int64_t off;
        int r;
        uint64_t ratio_cap = u->lim.max_ratio * (u->stats->archive_bytes > 4096
                                                     ? u->stats->archive_bytes
                                                     : 4096);
        while ((r = archive_read_data_block(u->r, &buf, &len, &off)) == ARCHIVE_OK) {
            u->stats->bytes += len;
            if (u->stats->bytes > u->lim.max_bytes) {
                char why[128];
                snprintf(why, sizeof why, "the files are over %llu bytes",
                         (unsigned long long)u->lim.max_bytes);
                return s_refuse(u, name, why);
            }
            if (u->stats->bytes > ratio_cap) {
                char why[128];
                snprintf(why, sizeof why, "it expands more than %llu times its archive",
                         (unsigned long long)u->lim.max_ratio);
                return s_refuse(u, name, why);
            }
            if (archive_write_data_block(u->w, buf, len, off) != ARCHIVE_OK) {
                kiln_error_set("cannot unpack %s into %s: %s", name, u->staging,
                               archive_error_string(u->w));
                return -1;
            }
        }
        if (r != ARCHIVE_EOF)
            return s_refuse(u, name, archive_error_string(u->r));
    }
    if (archive_write_finish_entry(u->w) != ARCHIVE_OK)
        return s_refuse(u, name, archive_error_string(u->w));
    return 0;
}

int kiln_archive_unpack(const char *path, const char *dest, const kiln_archive_limits_t *limits,
                        kiln_archive_stats_t *stats)
{
    int rc = -1;
    kiln_archive_stats_t local = {0};
    s_unpack_t u = {.path = path, .stats = stats ? stats : &local};
    struct stat st;
    bool made = false;
    memset(u.stats, 0, sizeof *u.stats);
    u.lim.max_entries = limits && limits->max_entries ? limits->max_entries
                                                      : KILN_ARCHIVE_MAX_ENTRIES_DEFAULT;
    u.lim.max_bytes = limits && limits->max_bytes ? limits->max_bytes
                                                  : KILN_ARCHIVE_MAX_BYTES_DEFAULT;
    u.lim.max_ratio = limits && limits->max_ratio ? limits->max_ratio
                                                  : KILN_ARCHIVE_MAX_RATIO_DEFAULT;
    if (lstat(dest, &st) == 0 || errno != ENOENT) {
        kiln_error_set("cannot unpack %s into %s: it is there already", path, dest);
        return -1;
    }
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
        kiln_error_errno("cannot unpack %s", path);
        return -1;
    }
    u.stats->archive_bytes = (uint64_t)st.st_size;
    /* Beside the target, so the last step is one rename. */
    if ((size_t)snprintf(u.staging, sizeof u.staging, "%s.unpack-XXXXXX", dest) >= sizeof u.staging) {
        kiln_error_set("cannot unpack into %s: the path is too long", dest);
        return -1;
    }
    if (!mkdtemp(u.staging)) {
        kiln_error_errno("cannot unpack into %s", dest);
        return -1;
    }
    made = true;
    u.r = archive_read_new();
    u.w = archive_write_disk_new();
    if (!u.r || !u.w) {
        kiln_error_set("out of memory");
        goto cleanup;
    }
    archive_read_support_filter_zstd(u.r);
    archive_read_support_filter_none(u.r);
    archive_read_support_format_tar(u.r);
    /* The entries' paths are made absolute under the staging directory
     * once checked, so libarchive's absolute-path refusal cannot apply. */
    archive_write_disk_set_options(u.w, ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_PERM |
                                            ARCHIVE_EXTRACT_SECURE_SYMLINKS |
                                            ARCHIVE_EXTRACT_SECURE_NODOTDOT |
                                            ARCHIVE_EXTRACT_NO_OVERWRITE);
    if (archive_read_open_filename(u.r, path, S_BLOCK) != ARCHIVE_OK) {
        kiln_error_set("%s: not a tar + zstd archive: %s; nothing was unpacked", path,
                       archive_error_string(u.r));
        rc = KILN_EINVAL;
        goto cleanup;
    }
    struct archive_entry *e;
    int r;
    while ((r = archive_read_next_header(u.r, &e)) == ARCHIVE_OK) {
        if ((rc = s_unpack_entry(&u, e)) != 0)
            goto cleanup;
        rc = -1;
    }
    if (r != ARCHIVE_EOF) {
        kiln_error_set("%s: a damaged archive: %s; nothing was unpacked", path,
                       archive_error_string(u.r));
        rc = KILN_EINVAL;
        goto cleanup;
    }
    if (archive_write_close(u.w) != ARCHIVE_OK) {
        kiln_error_set("cannot unpack %s: %s", path, archive_error_string(u.w));
        goto cleanup;
    }
    if (rename(u.staging, dest) != 0) {
        kiln_error_errno("cannot move %s to %s", u.staging, dest);
        goto cleanup;
    }
    made = false;
    rc = 0;
cleanup:
    if (u.r)
        archive_read_free(u.r);
    if (u.w)
        archive_write_free(u.w);
    /* A refusal's message stands; a staging directory that cannot go is
     * logged, since it holds nothing anyone uses. */
    if (made && kiln_fs_rmtree(u.staging) != 0)
        kiln_log_warn("cannot remove %s: %s", u.staging, strerror(errno));
    return rc;
}
