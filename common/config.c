/* config.c: flag and config-file parsing (see config.h). Values read from
 * a file are kept for the life of the process: they are referenced by the
 * option targets. */
#include "common/config.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/error.h"

static const kiln_opt_t *s_find(const kiln_opt_t *opts, const char *name, size_t len)
{
    for (const kiln_opt_t *o = opts; o->name; o++)
        if (strlen(o->name) == len && strncmp(o->name, name, len) == 0)
            return o;
    return NULL;
}

static int s_set(const kiln_opt_t *o, const char *value, const char *where)
{
    char *end = NULL;
    long v;
    switch (o->kind) {
    case KILN_OPT_STRING:
        *(const char **)o->target = value;
        return 0;
    case KILN_OPT_LIST: {
        kiln_opt_list_t *l = o->target;
        if (l->n == KILN_OPT_LIST_MAX) {
            kiln_error_set("%s: --%s given more than %d times", where, o->name, KILN_OPT_LIST_MAX);
            return KILN_EINVAL;
        }
        l->items[l->n++] = value;
        return 0;
    }
    case KILN_OPT_INT:
        errno = 0;
        v = strtol(value, &end, 10);
        if (errno || !end || *end || end == value || v < -2147483647L || v > 2147483647L) {
            kiln_error_set("%s: --%s needs a whole number, not '%s'", where, o->name, value);
            return KILN_EINVAL;
        }
        *(int *)o->target = (int)v;
        return 0;
    case KILN_OPT_BOOL:
        if (!strcasecmp(value, "true") || !strcasecmp(value, "yes") || !strcmp(value, "1") ||
            !strcasecmp(value, "on")) {
            *(bool *)o->target = true;
        } else if (!strcasecmp(value, "false") || !strcasecmp(value, "no") ||
                   !strcmp(value, "0") || !strcasecmp(value, "off")) {
            *(bool *)o->target = false;
        } else {
            kiln_error_set("%s: --%s needs true or false, not '%s'", where, o->name, value);
            return KILN_EINVAL;
        }
        return 0;
    }
    return KILN_EINVAL;
}

/* String values read from a file are copies the option table points at for
 * the life of the program (a flag given later may replace the pointer); they
 * are kept here and freed at exit, so nothing leaks whichever wins. */
static char **s_owned;
static size_t s_n_owned, s_cap_owned;

static void s_release_owned(void)
{
    for (size_t i = 0; i < s_n_owned; i++)
        free(s_owned[i]);
    free(s_owned);
    s_owned = NULL;
    s_n_owned = s_cap_owned = 0;
}

static int s_own(char *value)
{
    if (s_n_owned == s_cap_owned) {
        size_t ncap = s_cap_owned ? s_cap_owned * 2 : 16;
        char **grown = realloc(s_owned, ncap * sizeof *grown);
        if (!grown)
            return -1;
        if (!s_owned)
            atexit(s_release_owned);
        s_owned = grown;
        s_cap_owned = ncap;
    }
    s_owned[s_n_owned++] = value;
    return 0;
}

int kiln_config_load(const kiln_opt_t *opts, const char *path)
{
    FILE *f = fopen(path, "re");
    char line[KILN_CONFIG_LINE_MAX];
    char where[4200];
    int rc = KILN_EINVAL, lineno = 0;
    size_t total = 0;
    if (!f) {
        kiln_error_errno("config %s", path);
        return KILN_ENOTFOUND;
    }
    while (fgets(line, sizeof line, f)) {
        lineno++;
        size_t len = strlen(line);
        total += len;
        snprintf(where, sizeof where, "%s:%d", path, lineno);
        if (total > KILN_CONFIG_FILE_MAX) {
            kiln_error_set("%s: config file larger than %d bytes", where, KILN_CONFIG_FILE_MAX);
            goto cleanup;
        }
        if (len == sizeof line - 1 && line[len - 1] != '\n') {
            kiln_error_set("%s: line longer than %d bytes", where, KILN_CONFIG_LINE_MAX);
            goto cleanup;
        }
        char *p = line;
        while (isspace((unsigned char)*p))
            p++;
        if (!*p || *p == '#')
            continue;
        char *eq = strchr(p, '=');
        if (!eq) {
            kiln_error_set("%s: expected 'name = value'", where);
            goto cleanup;
        }
        char *kend = eq;
        while (kend > p && isspace((unsigned char)kend[-1]))
            kend--;
        char *v = eq + 1;
        while (isspace((unsigned char)*v))
            v++;
        /* A comment may follow the value ("slots = 4  # per machine"):
         * from a '#' that starts a word, outside quotes. */
        char quote = (*v == '"' || *v == '\'') ? *v : 0;
        for (char *c = v + (quote ? 1 : 0); *c; c++) {
            if (quote && *c == quote) {
                quote = 0;
                continue;
            }
            if (!quote && *c == '#' && (c == v || isspace((unsigned char)c[-1]))) {
                *c = '\0';
                break;
            }
        }
        char *vend = v + strlen(v);
        while (vend > v && isspace((unsigned char)vend[-1]))
            vend--;
        *vend = '\0';
        if (vend - v >= 2 && ((*v == '"' && vend[-1] == '"') || (*v == '\'' && vend[-1] == '\''))) {
            v++;
            vend[-1] = '\0';
        }
        const kiln_opt_t *o = s_find(opts, p, (size_t)(kend - p));
        if (!o) {
            kiln_error_set("%s: unknown setting '%.*s'", where, (int)(kend - p), p);
            goto cleanup;
        }
        char *value = strdup(v);
        bool kept = o->kind == KILN_OPT_STRING || o->kind == KILN_OPT_LIST;
        if (!value || (kept && s_own(value) != 0)) {
            free(value);
            kiln_error_set("%s: out of memory", where);
            goto cleanup;
        }
        if (s_set(o, value, where) != 0) {
            if (!kept)
                free(value);
            goto cleanup;
        }
        if (!kept)
            free(value);
    }
    rc = 0;
cleanup:
    fclose(f);
    return rc;
}

int kiln_opts_parse(const kiln_opt_t *opts, int argc, char **argv, int start, int *n_positional)
{
    int npos = 0;
    /* The config file first, so that flags override it. */
    for (int i = start; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            break;
        const char *file = NULL;
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
            file = argv[i + 1];
        else if (strncmp(argv[i], "--config=", 9) == 0)
            file = argv[i] + 9;
        if (file) {
            int rc = kiln_config_load(opts, file);
            if (rc != 0)
                return KILN_EINVAL;
        }
    }
    bool only_pos = false;
    for (int i = start; i < argc; i++) {
        char *a = argv[i];
        if (only_pos || a[0] != '-' || a[1] == '\0') {
            argv[start + npos++] = a;
            continue;
        }
        if (strcmp(a, "--") == 0) {
            only_pos = true;
            continue;
        }
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
            return 1;
        if (a[1] != '-') {
            kiln_error_set("unknown option '%s' (options are --long-names; see --help)", a);
            return KILN_EINVAL;
        }
        const char *name = a + 2;
        const char *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        if (nlen == 6 && strncmp(name, "config", 6) == 0) {
            if (!eq)
                i++;
            continue;
        }
        const kiln_opt_t *o = s_find(opts, name, nlen);
        if (!o) {
            kiln_error_set("unknown option '--%.*s' (see --help)", (int)nlen, name);
            return KILN_EINVAL;
        }
        const char *value = NULL;
        if (eq) {
            value = eq + 1;
        } else if (o->kind == KILN_OPT_BOOL) {
            value = "true";
        } else if (i + 1 < argc) {
            value = argv[++i];
        } else {
            kiln_error_set("option '--%s' needs a value", o->name);
            return KILN_EINVAL;
        }
        char where[128];
        snprintf(where, sizeof where, "command line");
        if (s_set(o, value, where) != 0)
            return KILN_EINVAL;
    }
    if (n_positional)
        *n_positional = npos;
    return 0;
}

void kiln_opts_print(FILE *out, const kiln_opt_t *opts)
{
    for (const kiln_opt_t *o = opts; o->name; o++) {
        char left[64];
        snprintf(left, sizeof left, "--%s%s", o->name,
                 o->kind == KILN_OPT_STRING || o->kind == KILN_OPT_LIST ? " VALUE"
                 : o->kind == KILN_OPT_INT                              ? " N"
                                                                        : "");
        fprintf(out, "  %-26s %s\n", left, o->help ? o->help : "");
    }
    fprintf(out, "  %-26s %s\n", "--config FILE", "read 'name = value' settings from FILE");
    fprintf(out, "  %-26s %s\n", "--help", "show this help");
}
