/* fuzz_layers.c: libFuzzer target for applying image layers.
 *
 * The input is a layer as a registry could serve it (verified by digest,
 * so its maker is who it is hostile to): kiln_layers_apply must accept it
 * or refuse it, and either way nothing may appear outside the root: the
 * scratch directory holds, afterwards, the layer file and the root, and
 * nothing else. Seeds: tests/fuzz/corpus/layers (small tar and tar + gzip
 * layers with whiteouts, links out and "..").
 */
#include <dirent.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fs.h"
#include "worker/layers.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char dir[] = "/tmp/kiln-fuzz-layers-XXXXXX", path[PATH_MAX], root[PATH_MAX], why[600];
    if (!mkdtemp(dir))
        return 0;
    snprintf(path, sizeof path, "%s/layer", dir);
    snprintf(root, sizeof root, "%s/root", dir);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, size, f) != size || mkdir(root, 0755) != 0) {
        if (f)
            fclose(f);
        kiln_fs_rmtree(dir);
        return 0;
    }
    fclose(f);
    uint64_t bytes = 0;
    (void)kiln_layers_apply(root, path, 16u << 20, &bytes, why, sizeof why);
    DIR *d = opendir(dir);
    struct dirent *e;
    int others = 0;
    while (d && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") || !strcmp(e->d_name, "root") ||
            !strcmp(e->d_name, "layer"))
            continue;
        others++;
    }
    if (d)
        closedir(d);
    if (others)
        abort();
    kiln_fs_rmtree(dir);
    return 0;
}
