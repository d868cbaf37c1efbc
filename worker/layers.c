/* layers.c: image layers into root file systems (see layers.h). Paths are
 * resolved from the root's descriptor on every entry rather than kept as
 * open directories: a layer may replace a directory with a link halfway
 * through, and only a fresh in-root resolution sees that. */
#include "worker/layers.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>

#define S_DEPTH_MAX 256
#define S_ENTRIES_MAX 2000000u

#define S_HOPS_MAX 40

/* RESOLVE_IN_ROOT by hand, for kernels (and tools such as valgrind) that
 * lack openat2: one component at a time, never following a link by the
 * kernel; a link's target is walked from the root (absolute) or from
 * where it is, and ".." stops at the root. Directories only, as here. */
static int s_walk_in(int rootfd, const char *rel, int flags)
{
    int stack[S_DEPTH_MAX + 1];
    size_t depth = 0;
    int hops = 0, rc = -1, err = 0;
    char todo[8192];
    snprintf(todo, sizeof todo, "%s", rel);
    stack[0] = rootfd;
    char *p = todo;
    for (;;) {
        while (*p == '/')
            p++;
        if (!*p)
            break;
        size_t n = strcspn(p, "/");
        char name[256];
        if (n >= sizeof name) {
            err = ENAMETOOLONG;
            goto cleanup;
        }
        memcpy(name, p, n);
        name[n] = '\0';
        p += n;
        bool last = strspn(p, "/") == strlen(p);
        if (strcmp(name, ".") == 0)
            continue;
        if (strcmp(name, "..") == 0) {
            if (depth > 0)
                close(stack[depth--]);
            continue;
        }
        struct stat st;
        if (fstatat(stack[depth], name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
            err = errno;
            goto cleanup;
        }
        if (S_ISLNK(st.st_mode)) {
            if ((last && (flags & O_NOFOLLOW)) || ++hops > S_HOPS_MAX) {
                err = ELOOP;
                goto cleanup;
            }
            char target[4096];
            ssize_t len = readlinkat(stack[depth], name, target, sizeof target - 1);
            if (len < 0) {
                err = errno;
                goto cleanup;
            }
            target[len] = '\0';
            char rest[8192];
            if ((size_t)snprintf(rest, sizeof rest, "%s/%s", target, p) >= sizeof rest) {
                err = ENAMETOOLONG;
                goto cleanup;
            }
            snprintf(todo, sizeof todo, "%s", rest);
            p = todo;
            if (target[0] == '/')
                while (depth > 0)
                    close(stack[depth--]);
            continue;
        }
        if (!S_ISDIR(st.st_mode)) {
            err = ENOTDIR;
            goto cleanup;
        }
        if (depth == S_DEPTH_MAX) {
            err = ELOOP;
            goto cleanup;
        }
        int fd = openat(stack[depth], name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) {
            err = errno;
            goto cleanup;
        }
        stack[++depth] = fd;
    }
    rc = openat(stack[depth], ".", (flags & ~O_NOFOLLOW) | O_CLOEXEC);
    err = errno;
cleanup:
    while (depth > 0)
        close(stack[depth--]);
    errno = err;
    return rc;
}

static int s_open_in(int rootfd, const char *rel, int flags)
{
    struct open_how how = {
        .flags = (unsigned long long)(flags | O_CLOEXEC),
        .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
    };
    int fd = (int)syscall(SYS_openat2, rootfd, rel[0] ? rel : ".", &how, sizeof how);
    if (fd < 0 && errno == ENOSYS)
        return s_walk_in(rootfd, rel, flags);
    return fd;
}

/* Removes name in dirfd, a whole tree if it is a directory. */
static int s_remove_at(int at, const char *name, int depth)
{
    if (unlinkat(at, name, 0) == 0 || errno == ENOENT)
        return 0;
    if ((errno != EISDIR && errno != EPERM) || depth > S_DEPTH_MAX)
        return -1;
    int fd = openat(at, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    int rc = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (s_remove_at(dirfd(d), de->d_name, depth + 1) != 0)
            rc = -1;
    }
    closedir(d);
    if (rc == 0 && unlinkat(at, name, AT_REMOVEDIR) != 0 && errno != ENOENT)
        rc = -1;
    return rc;
}

/* Paths this layer wrote, for opaque whiteouts: an open-addressing set. */
typedef struct {
    char **slot;
    size_t cap, n;
} s_set_t;

static uint64_t s_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static bool s_set_has(const s_set_t *set, const char *path)
{
    if (!set->cap)
        return false;
    for (size_t i = s_hash(path) & (set->cap - 1);; i = (i + 1) & (set->cap - 1)) {
        if (!set->slot[i])
            return false;
        if (strcmp(set->slot[i], path) == 0)
            return true;
    }
}

static int s_set_add(s_set_t *set, const char *path)
{
    if (s_set_has(set, path))
        return 0;
    if ((set->n + 1) * 2 > set->cap) {
        size_t cap = set->cap ? set->cap * 2 : 1024;
        char **slot = calloc(cap, sizeof *slot);
        if (!slot)
            return -1;
        for (size_t j = 0; j < set->cap; j++) {
            if (!set->slot[j])
                continue;
            size_t i = s_hash(set->slot[j]) & (cap - 1);
            while (slot[i])
                i = (i + 1) & (cap - 1);
            slot[i] = set->slot[j];
        }
        free(set->slot);
        set->slot = slot;
        set->cap = cap;
    }
    size_t i = s_hash(path) & (set->cap - 1);
    while (set->slot[i])
        i = (i + 1) & (set->cap - 1);
    if (!(set->slot[i] = strdup(path)))
        return -1;
    set->n++;
    return 0;
}

static void s_set_free(s_set_t *set)
{
    for (size_t i = 0; i < set->cap; i++)
        free(set->slot[i]);
    free(set->slot);
}

/* An entry's path normalized: no leading "/" or "./", no "." parts, no
 * trailing "/"; -1 for a ".." part. */
static int s_clean(const char *in, char *out, size_t cap)
{
    size_t o = 0;
    for (const char *p = in; *p;) {
        while (*p == '/')
            p++;
        size_t n = strcspn(p, "/");
        if (n == 0)
            break;
        if (n == 2 && p[0] == '.' && p[1] == '.')
            return -1;
        if (!(n == 1 && p[0] == '.')) {
            if (o + n + 2 > cap)
                return -1;
            if (o)
                out[o++] = '/';
            memcpy(out + o, p, n);
            o += n;
        }
        p += n;
    }
    out[o] = '\0';
    return 0;
}

/* Splits path into its parent (into parent, cap bytes; "" at the top) and
 * its last part, which is returned (a pointer into path). */
static const char *s_split(const char *path, char *parent, size_t cap)
{
    snprintf(parent, cap, "%s", path);
    char *slash = strrchr(parent, '/');
    if (!slash) {
        parent[0] = '\0';
        return path;
    }
    *slash = '\0';
    return path + (slash - parent) + 1;
}

/* Opens (making what is missing) the directory rel inside the root. */
static int s_dir_in(int rootfd, const char *rel)
{
    int fd = s_open_in(rootfd, rel, O_RDONLY | O_DIRECTORY);
    if (fd >= 0 || errno != ENOENT || !rel[0])
        return fd;
    char parent[4096];
    const char *base = s_split(rel, parent, sizeof parent);
    int pfd = s_dir_in(rootfd, parent);
    if (pfd < 0)
        return -1;
    if (mkdirat(pfd, base, 0755) != 0 && errno != EEXIST) {
        close(pfd);
        return -1;
    }
    close(pfd);
    return s_open_in(rootfd, rel, O_RDONLY | O_DIRECTORY);
}

typedef struct {
    char *path;
    mode_t mode;
    struct timespec mtime;
} s_dirmeta_t;

static int s_copy_data(struct archive *a, int fd, la_int64_t size, uint64_t *bytes,
                       uint64_t max)
{
    if (size > 0 && max && *bytes + (uint64_t)size > max)
        return -3;
    const void *buf;
    size_t len;
    la_int64_t off;
    int r;
    while ((r = archive_read_data_block(a, &buf, &len, &off)) == ARCHIVE_OK) {
        if (lseek(fd, off, SEEK_SET) < 0)
            return -1;
        for (size_t done = 0; done < len;) {
            ssize_t w = write(fd, (const char *)buf + done, len - done);
            if (w < 0) {
                if (errno == EINTR)
                    continue;
                return -1;
            }
            done += (size_t)w;
        }
        *bytes += len;
        if (max && *bytes > max)
            return -3;
    }
    if (r != ARCHIVE_EOF)
        return -2;
    /* A sparse file's hole at its end. */
    return size > 0 && ftruncate(fd, size) != 0 ? -1 : 0;
}

int kiln_layers_apply(const char *root, const char *layer, uint64_t max_bytes, uint64_t *bytes,
                      char *why, size_t cap)
{
    *bytes = 0;
    int rc = -1;
    bool owner = geteuid() == 0;
    s_set_t written = {0};
    s_dirmeta_t *dirs = NULL;
    size_t n_dirs = 0, cap_dirs = 0;
    int rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    struct archive *a = archive_read_new();
    if (rootfd < 0 || !a) {
        snprintf(why, cap, "cannot open %s: %s", root, strerror(errno));
        goto cleanup;
    }
    archive_read_support_filter_all(a);
    archive_read_support_format_tar(a);
    archive_read_support_format_gnutar(a);
    if (archive_read_open_filename(a, layer, 1 << 20) != ARCHIVE_OK) {
        snprintf(why, cap, "layer %s: %s", layer, archive_error_string(a));
        goto cleanup;
    }
    struct archive_entry *e;
    int r;
    uint64_t entries = 0;
    while ((r = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
        if (++entries > S_ENTRIES_MAX) {
            snprintf(why, cap, "layer %s: more than %u entries", layer, S_ENTRIES_MAX);
            goto cleanup;
        }
        char path[4096];
        const char *raw = archive_entry_pathname(e);
        if (!raw || s_clean(raw, path, sizeof path) != 0) {
            snprintf(why, cap, "layer entry '%.300s': a path that climbs out of the image",
                     raw ? raw : "(none)");
            goto cleanup;
        }
        if (!path[0])
            continue;
        char parent[4096];
        const char *base = s_split(path, parent, sizeof parent);
        int pfd = s_dir_in(rootfd, parent);
        if (pfd < 0) {
            snprintf(why, cap, "layer entry '%.300s': cannot make its directory: %s", path,
                     strerror(errno));
            goto cleanup;
        }
        int fail = 0;
        if (strcmp(base, ".wh..wh..opq") == 0) {
            /* Opaque: what the layers below put here goes. */
            int dfd = dup(pfd);
            DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
            struct dirent *de;
            while (d && (de = readdir(d)) != NULL) {
                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                    continue;
                char child[4400];
                snprintf(child, sizeof child, "%s%s%s", parent, parent[0] ? "/" : "",
                         de->d_name);
                if (!s_set_has(&written, child) && s_remove_at(pfd, de->d_name, 0) != 0)
                    fail = -1;
            }
            if (d)
                closedir(d);
            else
                fail = -1;
        } else if (strncmp(base, ".wh.", 4) == 0) {
            if (!base[4] || strchr(base + 4, '/'))
                fail = -1;
            else
                fail = s_remove_at(pfd, base + 4, 0);
        } else {
            mode_t type = archive_entry_filetype(e);
            mode_t mode = archive_entry_perm(e);
            const char *hard = archive_entry_hardlink(e);
            struct stat st;
            bool exists = fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0;
            if (exists && !(type == AE_IFDIR && S_ISDIR(st.st_mode)) &&
                s_remove_at(pfd, base, 0) != 0)
                fail = -1;
            else if (hard) {
                char target[4096], tparent[4096];
                if (s_clean(hard, target, sizeof target) != 0 || !target[0]) {
                    snprintf(why, cap, "layer entry '%.300s': a hard link out of the image",
                             path);
                    close(pfd);
                    goto cleanup;
                }
                const char *tbase = s_split(target, tparent, sizeof tparent);
                int tfd = s_open_in(rootfd, tparent, O_RDONLY | O_DIRECTORY);
                fail = tfd >= 0 && linkat(tfd, tbase, pfd, base, 0) == 0 ? 0 : -1;
                if (tfd >= 0)
                    close(tfd);
            } else if (type == AE_IFDIR) {
                if (!exists && mkdirat(pfd, base, 0700) != 0)
                    fail = -1;
            } else if (type == AE_IFREG) {
                int fd = openat(pfd, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                                0600);
                if (fd < 0)
                    fail = -1;
                else {
                    fail = s_copy_data(a, fd, archive_entry_size(e), bytes, max_bytes);
                    if (fail == 0 && owner &&
                        fchown(fd, (uid_t)archive_entry_uid(e), (gid_t)archive_entry_gid(e)) !=
                            0)
                        fail = -1;
                    if (fail == 0 && fchmod(fd, mode) != 0)
                        fail = -1;
                    if (fail == 0) {
                        struct timespec t[2] = {{.tv_sec = archive_entry_mtime(e)},
                                                {.tv_sec = archive_entry_mtime(e)}};
                        futimens(fd, t);
                    }
                    if (close(fd) != 0 && fail == 0)
                        fail = -1;
                    if (fail == -2 || fail == -3) {
                        if (fail == -2)
                            snprintf(why, cap, "layer %s: entry '%.300s': %s", layer, path,
                                     archive_error_string(a));
                        else
                            snprintf(why, cap, "layer %s: entry '%.300s': the layer expands "
                                               "past %llu bytes (the image store's bound)",
                                     layer, path, (unsigned long long)max_bytes);
                        close(pfd);
                        goto cleanup;
                    }
                }
            } else if (type == AE_IFLNK) {
                const char *to = archive_entry_symlink(e);
                fail = to && symlinkat(to, pfd, base) == 0 ? 0 : -1;
            } else if (type == AE_IFIFO) {
                fail = mkfifoat(pfd, base, mode);
            } else if (type == AE_IFCHR || type == AE_IFBLK) {
                /* A device node needs privilege; the sandbox gives its own
                 * /dev, so an image's nodes are left out when it lacks it. */
                if (mknodat(pfd, base, type | mode, archive_entry_rdev(e)) != 0 &&
                    errno != EPERM)
                    fail = -1;
            }
            if (fail == 0 && type != AE_IFREG && !hard && owner &&
                fchownat(pfd, base, (uid_t)archive_entry_uid(e), (gid_t)archive_entry_gid(e),
                         AT_SYMLINK_NOFOLLOW) != 0 &&
                errno != ENOENT)
                fail = -1;
            if (fail == 0 && type == AE_IFDIR) {
                if (n_dirs == cap_dirs) {
                    size_t nc = cap_dirs ? cap_dirs * 2 : 256;
                    s_dirmeta_t *grown = realloc(dirs, nc * sizeof *dirs);
                    if (!grown) {
                        close(pfd);
                        snprintf(why, cap, "out of memory");
                        goto cleanup;
                    }
                    dirs = grown;
                    cap_dirs = nc;
                }
                dirs[n_dirs] = (s_dirmeta_t){.path = strdup(path), .mode = mode,
                                             .mtime = {.tv_sec = archive_entry_mtime(e)}};
                if (dirs[n_dirs].path)
                    n_dirs++;
            } else if (fail == 0 && type == AE_IFLNK) {
                struct timespec t[2] = {{.tv_sec = archive_entry_mtime(e)},
                                        {.tv_sec = archive_entry_mtime(e)}};
                utimensat(pfd, base, t, AT_SYMLINK_NOFOLLOW);
            }
        }
        int saved = errno;
        close(pfd);
        if (fail != 0) {
            snprintf(why, cap, "layer %s: entry '%.300s': %s", layer, path, strerror(saved));
            goto cleanup;
        }
        if (s_set_add(&written, path) != 0) {
            snprintf(why, cap, "out of memory");
            goto cleanup;
        }
    }
    if (r != ARCHIVE_EOF) {
        snprintf(why, cap, "layer %s: %s", layer, archive_error_string(a));
        goto cleanup;
    }
    /* Directories' modes and times last, deepest first, once nothing more
     * is written into them. */
    for (size_t i = n_dirs; i-- > 0;) {
        int fd = s_open_in(rootfd, dirs[i].path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
        if (fd < 0)
            continue;
        struct timespec t[2] = {dirs[i].mtime, dirs[i].mtime};
        if (fchmod(fd, dirs[i].mode) != 0) {
            snprintf(why, cap, "layer %s: directory '%.300s': %s", layer, dirs[i].path,
                     strerror(errno));
            close(fd);
            goto cleanup;
        }
        futimens(fd, t);
        close(fd);
    }
    rc = 0;
cleanup:
    for (size_t i = 0; i < n_dirs; i++)
        free(dirs[i].path);
    free(dirs);
    s_set_free(&written);
    if (a)
        archive_read_free(a);
    if (rootfd >= 0)
        close(rootfd);
    return rc;
}

static int s_link_copy(int sfd, int dfd, int depth, char *why, size_t cap)
{
    if (depth > S_DEPTH_MAX) {
        snprintf(why, cap, "an image tree deeper than %d directories", S_DEPTH_MAX);
        return -1;
    }
    int fd = dup(sfd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0)
            close(fd);
        snprintf(why, cap, "cannot read an image directory: %s", strerror(errno));
        return -1;
    }
    int rc = -1;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        const char *n = de->d_name;
        if (strcmp(n, ".") == 0 || strcmp(n, "..") == 0)
            continue;
        struct stat st;
        if (fstatat(sfd, n, &st, AT_SYMLINK_NOFOLLOW) != 0)
            goto fail;
        if (S_ISDIR(st.st_mode)) {
            if (mkdirat(dfd, n, 0700) != 0)
                goto fail;
            int cs = openat(sfd, n, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            int cd = openat(dfd, n, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            int sub = cs >= 0 && cd >= 0 ? s_link_copy(cs, cd, depth + 1, why, cap) : -2;
            if (sub == 0) {
                struct timespec t[2] = {st.st_atim, st.st_mtim};
                if (geteuid() == 0 && fchown(cd, st.st_uid, st.st_gid) != 0)
                    sub = -2;
                if (sub == 0 && fchmod(cd, st.st_mode & 07777) != 0)
                    sub = -2;
                futimens(cd, t);
            }
            if (cs >= 0)
                close(cs);
            if (cd >= 0)
                close(cd);
            if (sub == -1)
                goto cleanup;
            if (sub != 0)
                goto fail;
        } else if (S_ISREG(st.st_mode)) {
            if (linkat(sfd, n, dfd, n, 0) != 0)
                goto fail;
        } else if (S_ISLNK(st.st_mode)) {
            char to[4096];
            ssize_t len = readlinkat(sfd, n, to, sizeof to - 1);
            if (len < 0)
                goto fail;
            to[len] = '\0';
            if (symlinkat(to, dfd, n) != 0)
                goto fail;
            if (geteuid() == 0)
                fchownat(dfd, n, st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW);
        } else if (mknodat(dfd, n, st.st_mode, st.st_rdev) != 0 && errno != EPERM) {
            goto fail;
        }
    }
    rc = 0;
    goto cleanup;
fail:
    snprintf(why, cap, "cannot copy image entry '%.200s': %s", de ? de->d_name : "?",
             strerror(errno));
cleanup:
    closedir(d);
    return rc;
}

int kiln_layers_link_copy(const char *src, const char *dst, char *why, size_t cap)
{
    int rc = -1;
    struct stat st;
    int sfd = open(src, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int dfd = -1;
    if (sfd < 0 || fstat(sfd, &st) != 0 || mkdir(dst, 0700) != 0 ||
        (dfd = open(dst, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
        snprintf(why, cap, "cannot copy %s to %s: %s", src, dst, strerror(errno));
        goto cleanup;
    }
    if (s_link_copy(sfd, dfd, 0, why, cap) != 0)
        goto cleanup;
    if (fchmod(dfd, st.st_mode & 07777) != 0) {
        snprintf(why, cap, "cannot copy %s to %s: %s", src, dst, strerror(errno));
        goto cleanup;
    }
    rc = 0;
cleanup:
    if (sfd >= 0)
        close(sfd);
    if (dfd >= 0)
        close(dfd);
    return rc;
}
