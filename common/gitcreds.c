/* gitcreds.c: the farm's git credentials file (see gitcreds.h). */
#include "common/gitcreds.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/error.h"

#define S_CREDS_MAX 64
#define S_CRED_TEXT_MAX (16 * 1024)

typedef struct {
    char *prefix, *token, *ssh_key, *ssh_user;
} s_cred_t;

struct kiln_gitcreds {
    s_cred_t items[S_CREDS_MAX];
    size_t n;
};

void kiln_gitcreds_destroy(kiln_gitcreds_t **self_p)
{
    kiln_gitcreds_t *self = *self_p;
    if (!self)
        return;
    for (size_t i = 0; i < self->n; i++) {
        free(self->items[i].prefix);
        if (self->items[i].token)
            sodium_memzero(self->items[i].token, strlen(self->items[i].token));
        if (self->items[i].ssh_key)
            sodium_memzero(self->items[i].ssh_key, strlen(self->items[i].ssh_key));
        free(self->items[i].token);
        free(self->items[i].ssh_key);
        free(self->items[i].ssh_user);
    }
    free(self);
    *self_p = NULL;
}

/* A whole small file's text, for a private key. */
static char *s_read_small(const char *path, char *why, size_t cap)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(why, cap, "cannot open the key %s: %s", path, strerror(errno));
        return NULL;
    }
    char *text = calloc(1, S_CRED_TEXT_MAX + 1);
    size_t n = text ? fread(text, 1, S_CRED_TEXT_MAX + 1, f) : 0;
    fclose(f);
    if (!text || n == 0 || n > S_CRED_TEXT_MAX) {
        snprintf(why, cap, "the key %s is %s", path, !text ? "not readable: out of memory"
                                                 : n ? "larger than 16 KB" : "empty");
        free(text);
        return NULL;
    }
    return text;
}

int kiln_gitcreds_load(kiln_gitcreds_t **out, const char *path)
{
    int rc = -1, lineno = 0;
    char line[S_CRED_TEXT_MAX], why[512] = "";
    struct stat st;
    kiln_gitcreds_t *self = calloc(1, sizeof *self);
    FILE *f = fopen(path, "r");
    *out = NULL;
    if (!self || !f) {
        kiln_error_errno("cannot read the git credentials %s", path);
        goto cleanup;
    }
    /* As ssh treats a private key: one others can read is refused. */
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode) || (st.st_mode & 077)) {
        kiln_error_set("the git credentials %s must be a regular file only its owner can read "
                       "(chmod 600)",
                       path);
        goto cleanup;
    }
    while (fgets(line, sizeof line, f)) {
        lineno++;
        char *save = NULL, *prefix = strtok_r(line, " \t\r\n", &save);
        if (!prefix || prefix[0] == '#')
            continue;
        char *kind = strtok_r(NULL, " \t\r\n", &save), *value = strtok_r(NULL, " \t\r\n", &save);
        char *user = strtok_r(NULL, " \t\r\n", &save);
        if (!kind || !value || (strcmp(kind, "token") != 0 && strcmp(kind, "ssh-key") != 0) ||
            (user && strcmp(kind, "ssh-key") != 0)) {
            snprintf(why, sizeof why, "want 'URL-PREFIX token TOKEN' or 'URL-PREFIX ssh-key "
                                      "KEYFILE [USER]'");
            goto bad;
        }
        if (self->n == S_CREDS_MAX) {
            snprintf(why, sizeof why, "more than %d entries", S_CREDS_MAX);
            goto bad;
        }
        s_cred_t *c = &self->items[self->n++];
        c->prefix = strdup(prefix);
        if (strcmp(kind, "token") == 0) {
            c->token = strdup(value);
        } else {
            c->ssh_key = s_read_small(value, why, sizeof why);
            if (!c->ssh_key)
                goto bad;
            c->ssh_user = user ? strdup(user) : NULL;
        }
        if (!c->prefix || (!c->token && !c->ssh_key)) {
            snprintf(why, sizeof why, "out of memory");
            goto bad;
        }
    }
    sodium_memzero(line, sizeof line);
    *out = self;
    self = NULL;
    rc = 0;
    goto cleanup;
bad:
    /* The line may hold a secret: only its number is named. */
    sodium_memzero(line, sizeof line);
    kiln_error_set("%s:%d: %s", path, lineno, why);
cleanup:
    if (f)
        fclose(f);
    kiln_gitcreds_destroy(&self);
    return rc;
}

void kiln_gitcreds_for(const kiln_gitcreds_t *self, const char *url,
                           kiln_gitsrc_auth_t *out)
{
    const s_cred_t *best = NULL;
    size_t best_len = 0;
    for (size_t i = 0; self && url && i < self->n; i++) {
        size_t n = strlen(self->items[i].prefix);
        if (n > best_len && strncmp(url, self->items[i].prefix, n) == 0) {
            best = &self->items[i];
            best_len = n;
        }
    }
    memset(out, 0, sizeof *out);
    if (best) {
        out->token = best->token;
        out->ssh_key = best->ssh_key;
        out->ssh_user = best->ssh_user;
    }
}
