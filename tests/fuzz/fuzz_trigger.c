/* fuzz_trigger.c: libFuzzer target for on: filter patterns.
 *
 * The input's first line is a pattern, the rest a name (a branch or a
 * path): kiln_trigger_glob must answer, bounded in time whatever the
 * pattern (patterns come from workflow files the coordinator evaluates),
 * and a pattern without any special character matches exactly itself.
 * Seeds: tests/fuzz/corpus/trigger.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lang/trigger.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096)
        return 0;
    char *buf = malloc(size + 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    buf[size] = '\0';
    char *nl = strchr(buf, '\n');
    const char *name = "";
    if (nl) {
        *nl = '\0';
        name = nl + 1;
    }
    bool hit = kiln_trigger_glob(buf, name);
    /* Plain text matches only itself. */
    if (strcspn(buf, "*?+[\\!") == strlen(buf) && hit != (strcmp(buf, name) == 0))
        abort();
    (void)kiln_trigger_glob(name, buf);
    free(buf);
    return 0;
}
