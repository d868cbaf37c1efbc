/* workspace.c: per-job directories (see workspace.h). */
#include "workspace.h"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"

static int s_rm(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)ftw;
    /* A step may leave directories without write permission. */
    if (flag == FTW_DP)
        return rmdir(path) == 0 || errno == ENOENT ? 0 : -1;
    return unlink(path) == 0 || errno == ENOENT ? 0 : -1;
}

static int s_chmod(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)ftw;
    if (flag == FTW_D && (sb->st_mode & 0700) != 0700)
        chmod(path, sb->st_mode | 0700);
    return 0;
}

int kiln_workspace_rmtree(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return errno == ENOENT ? 0 : -1;
    nftw(path, s_chmod, 32, FTW_PHYS);
    if (nftw(path, s_rm, 32, FTW_DEPTH | FTW_PHYS) != 0) {
        kiln_error_errno("workspace: cannot remove %s", path);
        return -1;
    }
    return 0;
}

int kiln_workspace_create(kiln_workspace_t *out, const char *work_dir, unsigned long long run_id,
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
    if ((size_t)snprintf(out->root, sizeof out->root, "%s/%llu-%s-%u", work_dir, run_id, safe,
                         attempt) >= sizeof out->root) {
        kiln_error_set("workspace: path too long under %s", work_dir);
        return KILN_EINVAL;
    }
    snprintf(out->ws, sizeof out->ws, "%s/ws", out->root);
    snprintf(out->tmp, sizeof out->tmp, "%s/tmp", out->root);
    if (kiln_workspace_rmtree(out->root) != 0)
        return -1;
    if (mkdir(out->root, 0700) != 0 || mkdir(out->ws, 0700) != 0 || mkdir(out->tmp, 0700) != 0) {
        kiln_error_errno("workspace: cannot create %s", out->root);
        return -1;
    }
    return 0;
}

int kiln_workspace_remove(const kiln_workspace_t *self)
{
    return kiln_workspace_rmtree(self->root);
}
