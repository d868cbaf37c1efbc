/* fuzz_cmdfiles.c: libFuzzer target for the step files' parsers
 * ($GITHUB_OUTPUT, $GITHUB_ENV, $GITHUB_PATH), which read what a job's own
 * code wrote. Besides "no crash, no leak", it checks the contract: a file
 * that fails adds nothing to the map, and every name that is added can be
 * read back. Seeds: tests/fuzz/corpus/cmdfiles. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/kv.h"
#include "lang/cmdfiles.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kiln_kv_t kv = {0}, paths = {0};
    char err[256];
    size_t refused = 0;
    if (kiln_kv_set(&kv, "KEEP", "me") != 0)
        return 0;
    int rc = kiln_cmdfiles_parse_kv("fuzz", (const char *)data, size, &kv, &refused, err,
                                    sizeof err);
    if (rc != 0 && (kv.n != 1 || strcmp(kiln_kv_get(&kv, "KEEP"), "me") != 0))
        abort(); /* a failing file added something */
    for (size_t i = 0; rc == 0 && i < kv.n; i++) {
        char key[4096];
        kiln_kv_key_copy(&kv, i, key, sizeof key);
        if (strlen(key) < sizeof key - 1 && !kiln_kv_get(&kv, key))
            abort();
    }
    rc = kiln_cmdfiles_parse_path("fuzz", (const char *)data, size, &paths, err, sizeof err);
    if (rc != 0 && paths.n != 0)
        abort();
    kiln_kv_free(&kv);
    kiln_kv_free(&paths);
    return 0;
}
