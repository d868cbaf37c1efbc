/* fuzz_archive.c: libFuzzer target for unpacking archives.
 *
 * The input is an archive file as a cache or an artifact could bring it:
 * kiln_archive_unpack must accept it or refuse it, and either way nothing
 * may appear outside its target: the scratch directory holds, afterwards,
 * the target (only on success) and nothing else. Seeds:
 * tests/fuzz/corpus/archive (small tar + zstd files, some hostile).
 */
#include <dirent.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/archive.h"
#include "common/fs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char dir[] = "/tmp/kiln-fuzz-archive-XXXXXX", path[PATH_MAX], dest[PATH_MAX];
    if (!mkdtemp(dir))
        return 0;
    snprintf(path, sizeof path, "%s/in.tar.zst", dir);
    snprintf(dest, sizeof dest, "%s/out", dir);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, size, f) != size) {
        if (f)
            fclose(f);
        kiln_fs_rmtree(dir);
        return 0;
    }
    fclose(f);
    kiln_archive_limits_t lim = {.max_entries = 1000, .max_bytes = 16u << 20};
    int rc = kiln_archive_unpack(path, dest, &lim, NULL);
    unlink(path);
    /* What is left: the target when it was accepted, else nothing. */
    DIR *d = opendir(dir);
    struct dirent *e;
    int others = 0, target = 0;
    while (d && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        if (!strcmp(e->d_name, "out"))
            target++;
        else
            others++;
    }
    if (d)
        closedir(d);
    if (others || (rc == 0) != (target == 1))
        abort();
    kiln_fs_rmtree(dir);
    return 0;
}
