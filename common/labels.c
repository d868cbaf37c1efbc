/* labels.c: a worker's labels (see labels.h). */
#include "common/labels.h"

#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>

#include "common/error.h"

int kiln_labels_worker(const char *configured, char **out, size_t max, size_t *n)
{
    struct utsname u;
    *n = 0;
    if (max < 2)
        return 0;
    out[(*n)++] = strdup("linux");
    if (uname(&u) == 0)
        out[(*n)++] = strdup(strcmp(u.machine, "x86_64") == 0    ? "x64"
                             : strcmp(u.machine, "aarch64") == 0 ? "arm64"
                                                                 : u.machine);
    const char *p = configured ? configured : "";
    while (*p && *n < max) {
        p += strspn(p, ", ");
        size_t len = strcspn(p, ",");
        size_t trimmed = len;
        while (trimmed && p[trimmed - 1] == ' ')
            trimmed--;
        if (trimmed)
            out[(*n)++] = strndup(p, trimmed);
        p += len;
    }
    for (size_t i = 0; i < *n; i++) {
        if (!out[i]) {
            kiln_error_set("labels: out of memory");
            return -1;
        }
    }
    return 0;
}
