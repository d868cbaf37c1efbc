/* shell.h: how a step's script is run: GitHub's shells by name, and custom
 * templates ("perl {0}", "bash -c \"cat {0}; echo\"").
 *
 * A template is split as a POSIX shell splits words (single and double
 * quotes, backslashes), without expanding anything; every "{0}" in a word
 * becomes the script's path, as GitHub replaces it. The names are GitHub's:
 * no shell given is `bash -e {0}`; bash is `bash --noprofile --norc -eo
 * pipefail {0}`; sh is `sh -e {0}`; python runs python3; pwsh is
 * `pwsh -command ". '{0}'"` (its script needs the .ps1 suffix); powershell
 * and cmd exist only on Windows.
 */
#ifndef KILN_SHELL_H
#define KILN_SHELL_H

#include <stddef.h>

#define KILN_SHELL_MAX_ARGS 32
#define KILN_SHELL_MAX (4 * 1024)

/* The argv for running script with shell ("" for none given) into argv
 * (KILN_SHELL_MAX_ARGS + 1 entries, NULL-terminated); the strings live in
 * buf (cap bytes) or are script itself. Returns the argc, or KILN_EINVAL
 * with err: an unknown name, a shell only Windows has, unbalanced quotes,
 * too many words, a template without {0}. */
int kiln_shell_argv(const char *shell, const char *script, char *buf, size_t cap,
                    const char **argv, char *err, size_t errlen);
/* The suffix the script file needs for shell ("" for most; ".ps1" for pwsh). */
const char *kiln_shell_suffix(const char *shell);

#endif
