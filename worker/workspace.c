/* workspace.c: per-job directories (see workspace.h).
 *
 * Cleaning for the next job works on directory descriptors (openat,
 * fstatat, unlinkat) and reads directories with getdents64 into a buffer on
 * the stack, so that a clean tree costs a handful of system calls. Whatever
 * is not exactly what this module made (a file where a directory belongs, a
 * symbolic link, a hard link, another owner or mode) is removed rather than
 * reasoned about.
 */
#include "worker/workspace.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/error.h"
#include "common/fs.h"

static const struct {
    const char *prefix;
    const char *suffix;
    mode_t mode;
} s_files[KILN_WORKSPACE_N_FILES] = {
    [KILN_WORKSPACE_SCRIPT] = {"step-", ".sh", 0700},
    [KILN_WORKSPACE_OUTPUT] = {"set_output_", "", 0600},
    [KILN_WORKSPACE_ENV] = {"set_env_", "", 0600},
    [KILN_WORKSPACE_PATH] = {"add_path_", "", 0600},
    [KILN_WORKSPACE_SUMMARY] = {"step_summary_", "", 0600},
    [KILN_WORKSPACE_STATE] = {"save_state_", "", 0600},
};

static const char *const s_dirs[] = {"ws", "tmp", "cmd"};
#define KILN_WORKSPACE_N_DIRS 3

static int s_paths(kiln_workspace_t *out, const char *work_dir, unsigned long long run_id,
                   const char *job_id, unsigned attempt)
{
    char safe[128];
    size_t n = 0;
    for (const char *p = job_id; *p && n < sizeof safe - 1; p++) {
        char c = *p;
        safe[n++] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                            c == '-' || c == '_'
                        ? c
                        : '_';
    }
    safe[n] = '\0';
    /* The longest subdirectory name plus the longest step file must fit. */
    if ((size_t)snprintf(out->root, sizeof out->root, "%s/%llu-%s-%u", work_dir, run_id, safe,
                         attempt) >= sizeof out->root - 64) {
        kiln_error_set("workspace: path too long under %s", work_dir);
        return KILN_EINVAL;
    }
    snprintf(out->ws, sizeof out->ws, "%s/ws", out->root);
    snprintf(out->tmp, sizeof out->tmp, "%s/tmp", out->root);
    snprintf(out->cmd, sizeof out->cmd, "%s/cmd", out->root);
    return 0;
}

static int s_build(const kiln_workspace_t *ws)
{
    if (kiln_fs_rmtree(ws->root) != 0)
        return -1;
    if (mkdir(ws->root, 0700) != 0 || mkdir(ws->ws, 0700) != 0 || mkdir(ws->tmp, 0700) != 0 ||
        mkdir(ws->cmd, 0700) != 0) {
        kiln_error_errno("workspace: cannot create %s", ws->root);
        return -1;
    }
    return 0;
}

static bool s_gone_or_taken(int err)
{
    return err == ENOTEMPTY || err == EEXIST || err == ENOTDIR || err == EISDIR;
}

int kiln_workspace_create(kiln_workspace_t *out, const char *work_dir, const char *spare,
                          unsigned spare_steps, unsigned long long run_id, const char *job_id,
                          unsigned attempt)
{
    int rc = s_paths(out, work_dir, run_id, job_id, attempt);
    out->ready_steps = 0;
    if (rc != 0) {
        if (spare)
            kiln_fs_rmtree(spare);
        return rc;
    }
    if (spare) {
        out->ready_steps = spare_steps;
        if (rename(spare, out->root) == 0)
            return 0;
        /* An old tree of the same name is in the way: it goes. */
        if (s_gone_or_taken(errno) && kiln_fs_rmtree(out->root) == 0 &&
            rename(spare, out->root) == 0)
            return 0;
        out->ready_steps = 0;
        kiln_fs_rmtree(spare);
    }
    return s_build(out);
}

int kiln_workspace_remove(const kiln_workspace_t *self)
{
    return kiln_fs_rmtree(self->root);
}

int kiln_workspace_step_file(const kiln_workspace_t *self, kiln_workspace_file_t kind,
                             size_t index, char *out, size_t cap)
{
    if ((unsigned)kind >= KILN_WORKSPACE_N_FILES ||
        (size_t)snprintf(out, cap, "%s/%s%zu%s", self->cmd, s_files[kind].prefix, index,
                         s_files[kind].suffix) >= cap) {
        kiln_error_set("workspace: step file path too long under %s", self->cmd);
        return KILN_EINVAL;
    }
    return 0;
}

/* ------------------------------------------------------------- recycling */

/* The process's effective user, asked once: the walk checks every entry. */
static uid_t s_euid(void)
{
    static uid_t euid = (uid_t)-1;
    if (euid == (uid_t)-1)
        euid = geteuid();
    return euid;
}

/* A directory of ours: a real directory (not a link to one), this user's,
 * mode 0700. */
static bool s_own_dir(const struct stat *st)
{
    return S_ISDIR(st->st_mode) && st->st_uid == s_euid() && (st->st_mode & 07777) == 0700;
}

/* Which kept step file name is (kind and index), if any. */
static bool s_step_file_name(const char *name, kiln_workspace_file_t *kind, size_t *step)
{
    for (int k = 0; k < KILN_WORKSPACE_N_FILES; k++) {
        size_t pl = strlen(s_files[k].prefix);
        if (strncmp(name, s_files[k].prefix, pl) != 0)
            continue;
        const char *p = name + pl;
        if (*p < '0' || *p > '9' || (p[0] == '0' && p[1] >= '0' && p[1] <= '9'))
            return false;
        size_t index = 0;
        while (*p >= '0' && *p <= '9' && index < KILN_WORKSPACE_KEEP_STEPS)
            index = index * 10 + (size_t)(*p++ - '0');
        if (index >= KILN_WORKSPACE_KEEP_STEPS || strcmp(p, s_files[k].suffix) != 0)
            return false;
        *kind = (kiln_workspace_file_t)k;
        *step = index;
        return true;
    }
    return false;
}

/* Removes dir/name, whatever it is. */
static int s_remove_entry(int dfd, const char *dir, const char *name)
{
    if (unlinkat(dfd, name, 0) == 0 || errno == ENOENT)
        return 0;
    if (errno != EISDIR && errno != EPERM)
        return -1;
    char path[KILN_WORKSPACE_PATH_MAX + 256];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path)
        return -1;
    return kiln_fs_rmtree(path);
}

/* Leaves a kept file of cmd/ as a new job's would be: a command file empty,
 * a script holding one newline. Neither truncation to nothing (which costs
 * a file system far more) nor a new inode for the script. */
static int s_empty_file(int dfd, const char *name, kiln_workspace_file_t kind,
                        const struct stat *st)
{
    if (kind != KILN_WORKSPACE_SCRIPT) {
        if (st->st_size == 0)
            return 0;
        int fd = openat(dfd, name, O_WRONLY | O_TRUNC | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        if (fd == -1)
            return -1;
        close(fd);
        return 0;
    }
    int fd = openat(dfd, name, O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd == -1)
        return -1;
    char c = 0;
    int rc = 0;
    if (st->st_size != 1 || pread(fd, &c, 1, 0) != 1 || c != '\n')
        rc = pwrite(fd, "\n", 1, 0) == 1 && ftruncate(fd, 1) == 0 ? 0 : -1;
    close(fd);
    return rc;
}

/* Calls fn for every entry of the directory at dfd but . and ..; stops at
 * the first non-zero return. Entries removed by fn do not disturb the walk
 * (getdents64 goes on from its position; what is left is seen once). */
static int s_each_entry(int dfd, int (*fn)(int dfd, const char *name, void *ctx), void *ctx)
{
    char buf[4096] __attribute__((aligned(8)));
    if (lseek(dfd, 0, SEEK_SET) == -1)
        return -1;
    for (;;) {
        ssize_t n = getdents64(dfd, buf, sizeof buf);
        if (n == -1 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            return 0;
        for (ssize_t off = 0; off < n;) {
            struct dirent64 *d = (struct dirent64 *)(void *)(buf + off);
            off += d->d_reclen;
            if (strcmp(d->d_name, ".") == 0 || strcmp(d->d_name, "..") == 0)
                continue;
            int rc = fn(dfd, d->d_name, ctx);
            if (rc != 0)
                return rc;
        }
    }
}

static int s_count_entry(int dfd, const char *name, void *ctx)
{
    (void)dfd;
    (void)name;
    ++*(size_t *)ctx;
    return 1;   /* one is enough */
}

typedef struct {
    const char *path;   /* of the directory walked */
    unsigned kept[KILN_WORKSPACE_KEEP_STEPS]; /* cmd/: per step, a bit per kind kept */
} s_walk_t;

/* cmd/: kept files emptied, anything else removed. */
static int s_clean_cmd_entry(int dfd, const char *name, void *ctx)
{
    s_walk_t *w = ctx;
    kiln_workspace_file_t kind;
    size_t step;
    struct stat st;
    if (s_step_file_name(name, &kind, &step) && fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
        S_ISREG(st.st_mode) && st.st_nlink == 1 && st.st_uid == s_euid() &&
        (st.st_mode & 07777) == s_files[kind].mode && s_empty_file(dfd, name, kind, &st) == 0) {
        w->kept[step] |= 1u << kind;
        return 0;
    }
    return s_remove_entry(dfd, w->path, name) == 0 ? 0 : -1;
}

/* The tree's root: only ws, tmp and cmd, each a directory of ours. */
static int s_clean_root_entry(int dfd, const char *name, void *ctx)
{
    const s_walk_t *w = ctx;
    struct stat st;
    for (int i = 0; i < KILN_WORKSPACE_N_DIRS; i++) {
        if (strcmp(name, s_dirs[i]) == 0 && fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
            s_own_dir(&st))
            return 0;
    }
    /* The event payload is written over in place by the next job (see
     * KILN_WORKSPACE_EVENT): a new inode per job cost more than the rest of
     * the recycling. */
    if (strcmp(name, KILN_WORKSPACE_EVENT) == 0 &&
        fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) &&
        st.st_uid == s_euid() && st.st_nlink == 1)
        return 0;
    return s_remove_entry(dfd, w->path, name) == 0 ? 0 : -1;
}

/* Opens root/name as a directory of ours, making it (mode 0700) if it is
 * missing. Returns the fd or -1. */
static int s_open_subdir(int root_fd, const char *name)
{
    int fd = openat(root_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd == -1 && errno == ENOENT) {
        if (mkdirat(root_fd, name, 0700) != 0)
            return -1;
        fd = openat(root_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    }
    struct stat st;
    if (fd != -1 && (fstat(fd, &st) != 0 || !s_own_dir(&st))) {
        close(fd);
        fd = -1;
    }
    return fd;
}

/* Empties the tree for another job. Returns how many leading steps keep
 * all four command files, or -1 when it could not be brought back to what
 * a new job must find. */
static int s_clean(const kiln_workspace_t *self)
{
    int rc = -1, root_fd = -1, fd = -1;
    struct stat st;
    root_fd = open(self->root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (root_fd == -1 || fstat(root_fd, &st) != 0 || !s_own_dir(&st))
        goto cleanup;
    s_walk_t w = {self->root, {0}};
    if (s_each_entry(root_fd, s_clean_root_entry, &w) != 0)
        goto cleanup;
    /* ws/ and tmp/ hold what the steps made, usually nothing: a look is all
     * an empty one costs; one that is not empty is removed and made again. */
    const char *paths[2] = {self->ws, self->tmp};
    for (int i = 0; i < 2; i++) {
        size_t n = 0;
        fd = s_open_subdir(root_fd, s_dirs[i]);
        if (fd == -1 || s_each_entry(fd, s_count_entry, &n) < 0)
            goto cleanup;
        close(fd);
        fd = -1;
        if (n > 0 && (kiln_fs_rmtree(paths[i]) != 0 || mkdirat(root_fd, s_dirs[i], 0700) != 0))
            goto cleanup;
    }
    fd = s_open_subdir(root_fd, "cmd");
    w.path = self->cmd;
    if (fd == -1 || s_each_entry(fd, s_clean_cmd_entry, &w) != 0)
        goto cleanup;
    const unsigned all = (1u << KILN_WORKSPACE_OUTPUT) | (1u << KILN_WORKSPACE_ENV) |
                         (1u << KILN_WORKSPACE_PATH) | (1u << KILN_WORKSPACE_SUMMARY) |
                         (1u << KILN_WORKSPACE_STATE);
    rc = 0;
    while (rc < KILN_WORKSPACE_KEEP_STEPS && (w.kept[rc] & all) == all)
        rc++;
cleanup:
    if (fd != -1)
        close(fd);
    if (root_fd != -1)
        close(root_fd);
    return rc;
}

/* Work trees the job's checkouts made (kiln-checkout lists them in the
 * job directory's `checkouts`: "DEST\tTREES" per line) go to TREES/t<N>
 * for the next job of that repository on this worker, instead of being
 * deleted with the workspace. Only a DEST inside this job's workspace and
 * a TREES inside this worker's git cache are taken; the last checkout
 * first, so a tree inside another leaves before it. */
#define S_KEPT_TREES_MAX 4
static void s_keep_trees(const kiln_workspace_t *self)
{
    char path[KILN_WORKSPACE_PATH_MAX + 16], cache[KILN_WORKSPACE_PATH_MAX + 8];
    char *text = NULL, err[256];
    size_t len = 0;
    snprintf(path, sizeof path, "%s/checkouts", self->root);
    if (kiln_fs_read_regular(path, 64 * 1024, &text, &len, err, sizeof err) != 0 || !len) {
        free(text);
        return;
    }
    snprintf(cache, sizeof cache, "%s", self->root);
    char *slash = strrchr(cache, '/');
    if (slash)
        snprintf(slash, sizeof cache - (size_t)(slash - cache), "/git/");
    size_t ws_len = strlen(self->ws), cache_len = strlen(cache);
    char *lines[64];
    size_t n = 0;
    for (char *line = strtok(text, "\n"); line && n < 64; line = strtok(NULL, "\n"))
        lines[n++] = line;
    while (n--) {
        char *tab = strchr(lines[n], '\t');
        if (!tab)
            continue;
        *tab = '\0';
        const char *dest = lines[n], *trees = tab + 1;
        size_t tl = strlen(trees);
        bool ok = strncmp(dest, self->ws, ws_len) == 0 && (dest[ws_len] == '\0' || dest[ws_len] == '/') &&
                  !strstr(dest, "/../") && strncmp(trees, cache, cache_len) == 0 &&
                  !strchr(trees + cache_len, '/') && tl > 6 && strcmp(trees + tl - 6, ".trees") == 0;
        struct stat st;
        if (!ok || lstat(dest, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != s_euid())
            continue;
        if (mkdir(trees, 0700) != 0 && errno != EEXIST)
            continue;
        for (int k = 0; k < S_KEPT_TREES_MAX; k++) {
            char slot[KILN_WORKSPACE_PATH_MAX + 16];
            snprintf(slot, sizeof slot, "%s/t%d", trees, k);
            if (rename(dest, slot) == 0)
                break;
        }
    }
    free(text);
}

int kiln_workspace_recycle(const kiln_workspace_t *self, const char *spare)
{
    s_keep_trees(self);
    int ready = s_clean(self);
    if (ready >= 0) {
        if (rename(self->root, spare) == 0)
            return ready;
        /* A spare left by an earlier worker is in the way. */
        if (s_gone_or_taken(errno) && kiln_fs_rmtree(spare) == 0 &&
            rename(self->root, spare) == 0)
            return ready;
    }
    kiln_error_errno("workspace: cannot clean %s for another job", self->root);
    kiln_fs_rmtree(self->root);
    return -1;
}
