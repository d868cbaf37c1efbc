/* fs.c: file-system helpers (see fs.h). */
#include "common/fs.h"

#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <ftw.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/error.h"

static int s_rm(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)ftw;
    if (flag == FTW_DP)
        return rmdir(path) == 0 || errno == ENOENT ? 0 : -1;
    return unlink(path) == 0 || errno == ENOENT ? 0 : -1;
}

/* A step may leave directories without write or search permission. */
static int s_chmod(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)ftw;
    if (flag == FTW_D && (sb->st_mode & 0700) != 0700)
        chmod(path, sb->st_mode | 0700);
    return 0;
}

int kiln_fs_rmtree(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return errno == ENOENT ? 0 : -1;
    if (!S_ISDIR(st.st_mode)) {
        if (unlink(path) != 0 && errno != ENOENT) {
            kiln_error_errno("cannot remove %s", path);
            return -1;
        }
        return 0;
    }
    nftw(path, s_chmod, 32, FTW_PHYS);
    if (nftw(path, s_rm, 32, FTW_DEPTH | FTW_PHYS) != 0) {
        kiln_error_errno("cannot remove %s", path);
        return -1;
    }
    return 0;
}

__attribute__((format(printf, 3, 4))) static void s_fail(char *err, size_t errlen,
                                                         const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    kiln_error_vset(fmt, ap);
    va_end(ap);
    if (err && errlen)
        snprintf(err, errlen, "%s", kiln_error_last());
}

int kiln_fs_read_regular(const char *path, size_t max, char **out, size_t *len, char *err,
                         size_t errlen)
{
    int rc = -1;
    char *buf = NULL;
    size_t n = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
    if (fd == -1 && errno != ENOENT) {
        int saved = errno;
        if (saved == ELOOP)
            s_fail(err, errlen, "%s: is a symbolic link; refusing to follow it", path);
        else
            s_fail(err, errlen, "%s: cannot open: %s", path, strerror(saved));
        goto cleanup;
    }
    off_t st_size = 0;
    if (fd != -1) {
        struct stat st;
        if (fstat(fd, &st) == -1) {
            s_fail(err, errlen, "%s: cannot stat: %s", path, strerror(errno));
            goto cleanup;
        }
        if (!S_ISREG(st.st_mode)) {
            s_fail(err, errlen, "%s: not a regular file", path);
            goto cleanup;
        }
        if ((uint64_t)st.st_size > (uint64_t)max) {
            s_fail(err, errlen, "%s: %lld bytes, more than the %zu allowed", path,
                   (long long)st.st_size, max);
            rc = KILN_ETOOBIG;
            goto cleanup;
        }
        st_size = st.st_size;
    }
    /* Sized by fstat, grown up to one byte more than allowed to notice a
     * file that grew since; one byte more for the NUL. */
    size_t cap = (fd == -1 ? 0 : (size_t)st_size) + 2;
    buf = malloc(cap);
    if (!buf) {
        rc = -1;
        s_fail(err, errlen, "%s: out of memory", path);
        goto cleanup;
    }
    while (fd != -1) {
        if (n == cap - 1) {
            if (n > max)
                break;
            size_t ncap = cap * 2 < max + 2 ? cap * 2 : max + 2;
            char *grown = realloc(buf, ncap);
            if (!grown) {
                rc = -1;
        s_fail(err, errlen, "%s: out of memory", path);
                goto cleanup;
            }
            buf = grown;
            cap = ncap;
        }
        ssize_t got = read(fd, buf + n, cap - 1 - n);
        if (got == -1 && errno == EINTR)
            continue;
        if (got == -1) {
            s_fail(err, errlen, "%s: cannot read: %s", path, strerror(errno));
            goto cleanup;
        }
        if (got == 0)
            break;
        n += (size_t)got;
    }
    if (n > max) {
        s_fail(err, errlen, "%s: more than the %zu bytes allowed", path, max);
        rc = KILN_ETOOBIG;
        goto cleanup;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    buf = NULL;
    rc = 0;
cleanup:
    if (fd != -1)
        close(fd);
    free(buf);
    return rc;
}


int kiln_fs_lock(const char *path, const char *holder, int *fd_out)
{
    int rc = -1;
    *fd_out = -1;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd == -1) {
        kiln_error_errno("cannot open the lock %s", path);
        return -1;
    }
    /* flock, not fcntl: SQLite's own locks on the database are fcntl locks
     * and would be released by any close of the file in this process. */
    if (flock(fd, LOCK_EX | LOCK_NB) == -1) {
        if (errno == EWOULDBLOCK) {
            char who[512];
            ssize_t n = pread(fd, who, sizeof who - 1, 0);
            who[n > 0 ? n : 0] = '\0';
            who[strcspn(who, "\n")] = '\0';
            kiln_error_set("%s is held by another process: %s", path,
                           who[0] ? who : "(it has not said who it is yet)");
            rc = KILN_EBUSY;
        } else {
            kiln_error_errno("cannot lock %s", path);
        }
        goto cleanup;
    }
    size_t len = strlen(holder);
    if (ftruncate(fd, 0) != 0 || pwrite(fd, holder, len, 0) != (ssize_t)len ||
        pwrite(fd, "\n", 1, (off_t)len) != 1) {
        kiln_error_errno("cannot write the lock %s", path);
        goto cleanup;
    }
    *fd_out = fd;
    fd = -1;
    rc = 0;
cleanup:
    if (fd != -1)
        close(fd);
    return rc;
}

int kiln_fs_find_program(const char *program, char *out, size_t cap)
{
    if (strchr(program, '/')) {
        snprintf(out, cap, "%s", program);
        return access(program, X_OK) == 0 ? 0 : -1;
    }
    const char *path = getenv("PATH");
    for (const char *p = path ? path : "/usr/bin:/bin"; *p;) {
        size_t n = strcspn(p, ":");
        if (n && (size_t)snprintf(out, cap, "%.*s/%s", (int)n, p, program) < cap &&
            access(out, X_OK) == 0)
            return 0;
        p += n;
        if (*p == ':')
            p++;
    }
    return -1;
}

static int s_name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void kiln_fs_names(const char *dir, int dirs_only, char ***names, size_t *n)
{
    DIR *d = opendir(dir);
    char **out = NULL;
    size_t cap = 0;
    struct dirent *de;
    *n = 0;
    while (d && *n < 100000 && (de = readdir(d))) {
        char p[PATH_MAX * 2];
        struct stat st;
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        if (de->d_name[0] == '.' || (dirs_only && (stat(p, &st) != 0 || !S_ISDIR(st.st_mode))))
            continue;
        if (*n == cap) {
            char **g = realloc(out, (cap = cap ? cap * 2 : 16) * sizeof *g);
            if (!g)
                break;
            out = g;
        }
        if (!(out[*n] = strdup(de->d_name)))
            break;
        (*n)++;
    }
    if (d)
        closedir(d);
    if (*n)
        qsort(out, *n, sizeof *out, s_name_cmp);
    *names = out;
}

void kiln_fs_names_free(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}
