/* fs.c: file-system helpers (see fs.h). */
#include "common/fs.h"

#include <errno.h>
#include <ftw.h>
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
