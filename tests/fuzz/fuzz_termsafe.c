/* fuzz_termsafe.c: libFuzzer target for what step output keeps on its way
 * to a terminal (common/termsafe.c) and for the UTF-8 repair of output
 * values. Besides "no crash, no leak", it checks the contract: what comes
 * out holds no ESC except at the start of an SGR sequence (ESC [ digits
 * and ; or : then m), no control character but tab and newline, and is
 * valid UTF-8 (as the repair's output always is). */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/termsafe.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Whether p[0..n) is valid UTF-8: the repair, run on it, changes nothing. */
static bool s_valid(const char *p, size_t n)
{
    bool changed = true;
    size_t len = 0;
    char *again = kiln_utf8_repair(p, n, &len, &changed);
    if (!again)
        return true; /* out of memory: nothing to say */
    free(again);
    return !changed;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kiln_buf_t b = {.max = 8 * size + 64};
    kiln_termsafe(data, size, &b);
    if (kiln_buf_failed(&b)) {
        free(b.data);
        return 0;
    }
    const unsigned char *o = (const unsigned char *)(b.data ? b.data : "");
    for (size_t i = 0; i < b.len; i++) {
        if (o[i] == 0x1b) {
            size_t j = i + 1;
            if (j >= b.len || o[j] != '[')
                abort();
            for (j++; j < b.len && ((o[j] >= '0' && o[j] <= '9') || o[j] == ';' || o[j] == ':'); j++)
                ;
            if (j >= b.len || o[j] != 'm')
                abort();
            i = j;
            continue;
        }
        if ((o[i] < 0x20 && o[i] != '\t' && o[i] != '\n') || o[i] == 0x7f)
            abort();
    }
    if (!s_valid((const char *)o, b.len))
        abort();
    free(b.data);
    size_t len = 0;
    bool changed = false;
    char *fixed = kiln_utf8_repair((const char *)data, size, &len, &changed);
    if (fixed && (!s_valid(fixed, len) || (!changed && (len != size || memcmp(fixed, data, size)))))
        abort();
    free(fixed);
    return 0;
}
