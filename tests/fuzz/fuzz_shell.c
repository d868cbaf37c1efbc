/* fuzz_shell.c: libFuzzer target for a step's shell template ("bash -c
 * \"cat {0}; echo\""), split as a shell splits words. Checks: a template
 * that is accepted gives a NULL-terminated argv of at most
 * KILN_SHELL_MAX_ARGS words, all inside the buffer or the script path.
 * Seeds: tests/fuzz/corpus/shell. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lang/shell.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *shell = malloc(size + 1), buf[KILN_SHELL_MAX * 2], err[256];
    const char *argv[KILN_SHELL_MAX_ARGS + 1];
    const char *script = "/tmp/step-1.sh";
    if (!shell)
        return 0;
    memcpy(shell, data, size);
    shell[size] = '\0';
    int argc = kiln_shell_argv(shell, script, buf, sizeof buf, argv, err, sizeof err);
    if (argc > KILN_SHELL_MAX_ARGS)
        abort();
    for (int i = 0; argc > 0 && i < argc; i++)
        if (!argv[i] || (argv[i] != script && (argv[i] < buf || argv[i] >= buf + sizeof buf)))
            abort();
    if (argc > 0 && argv[argc] != NULL)
        abort();
    free(shell);
    return 0;
}
