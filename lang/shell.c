/* shell.c: a step's shell as an argv (see shell.h). */
#include "lang/shell.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "common/error.h"

static const char *const s_builtin[][2] = {
    {"", "bash -e {0}"},
    {"bash", "bash --noprofile --norc -eo pipefail {0}"},
    {"sh", "sh -e {0}"},
    {"python", "python3 {0}"},
    {"pwsh", "pwsh -command \". '{0}'\""},
};

const char *kiln_shell_suffix(const char *shell)
{
    return shell && strcmp(shell, "pwsh") == 0 ? ".ps1" : "";
}

/* Appends c to the word being built in buf; false when buf is full. */
static bool s_put(char *buf, size_t cap, size_t *o, char c)
{
    if (*o + 1 >= cap)
        return false;
    buf[(*o)++] = c;
    return true;
}

static bool s_put_str(char *buf, size_t cap, size_t *o, const char *s)
{
    for (; *s; s++)
        if (!s_put(buf, cap, o, *s))
            return false;
    return true;
}

int kiln_shell_argv(const char *shell, const char *script, char *buf, size_t cap,
                    const char **argv, char *err, size_t errlen)
{
    const char *tmpl = NULL;
    shell = shell ? shell : "";
    for (size_t i = 0; i < sizeof s_builtin / sizeof s_builtin[0]; i++)
        if (strcmp(shell, s_builtin[i][0]) == 0)
            tmpl = s_builtin[i][1];
    if (!tmpl && (strcmp(shell, "powershell") == 0 || strcmp(shell, "cmd") == 0)) {
        snprintf(err, errlen, "shell '%s' runs only on Windows; this worker runs Linux", shell);
        return KILN_EINVAL;
    }
    if (!tmpl && !strstr(shell, "{0}")) {
        snprintf(err, errlen,
                 "unsupported shell '%.80s' (use bash, sh, python, pwsh, or a command containing "
                 "{0})",
                 shell);
        return KILN_EINVAL;
    }
    if (!tmpl)
        tmpl = shell;
    if (strlen(tmpl) > KILN_SHELL_MAX) {
        snprintf(err, errlen, "shell is longer than %d bytes", KILN_SHELL_MAX);
        return KILN_EINVAL;
    }
    size_t o = 0;
    int argc = 0;
    const char *p = tmpl;
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == '\n')
            p++;
        if (!*p)
            break;
        if (argc == KILN_SHELL_MAX_ARGS) {
            snprintf(err, errlen, "shell has more than %d words", KILN_SHELL_MAX_ARGS);
            return KILN_EINVAL;
        }
        size_t start = o;
        char quote = 0;
        for (; *p && (quote || (*p != ' ' && *p != '\t' && *p != '\n')); p++) {
            bool ok = true;
            if (quote == '\'') {
                if (*p == '\'')
                    quote = 0;
                else if (strncmp(p, "{0}", 3) == 0) {
                    ok = s_put_str(buf, cap, &o, script);
                    p += 2;
                } else
                    ok = s_put(buf, cap, &o, *p);
            } else if (*p == '\\' && p[1] && (!quote || strchr("\"\\$`", p[1]))) {
                ok = s_put(buf, cap, &o, *++p);
            } else if (!quote && (*p == '\'' || *p == '"')) {
                quote = *p;
            } else if (quote == '"' && *p == '"') {
                quote = 0;
            } else if (strncmp(p, "{0}", 3) == 0) {
                ok = s_put_str(buf, cap, &o, script);
                p += 2;
            } else {
                ok = s_put(buf, cap, &o, *p);
            }
            if (!ok) {
                snprintf(err, errlen, "shell is too long once {0} is replaced");
                return KILN_EINVAL;
            }
        }
        if (quote) {
            snprintf(err, errlen, "shell '%.80s' has an unclosed %c quote", shell, quote);
            return KILN_EINVAL;
        }
        if (!s_put(buf, cap, &o, '\0')) {
            snprintf(err, errlen, "shell is too long once {0} is replaced");
            return KILN_EINVAL;
        }
        argv[argc++] = buf + start;
    }
    if (argc == 0) {
        snprintf(err, errlen, "shell is empty");
        return KILN_EINVAL;
    }
    argv[argc] = NULL;
    return argc;
}
