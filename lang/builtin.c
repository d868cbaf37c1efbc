/* builtin.c: recognising the built-in actions (see builtin.h). */
#include "lang/builtin.h"

#include <stdio.h>
#include <string.h>

/* actions/checkout's inputs, as its action.yml (v4) lists them. v2 and v3
 * take a subset with the same meaning, so one list serves. */
static const char *const s_checkout_inputs[] = {
    "repository", "ref", "token", "ssh-key", "ssh-known-hosts", "ssh-strict", "ssh-user",
    "persist-credentials", "path", "clean", "filter", "sparse-checkout",
    "sparse-checkout-cone-mode", "fetch-depth", "fetch-tags", "show-progress", "lfs",
    "submodules", "set-safe-directory", "github-server-url", NULL};

static const char s_checkout_list[] =
    "repository, ref, token, ssh-key, ssh-known-hosts, ssh-strict, ssh-user, "
    "persist-credentials, path, clean, filter, sparse-checkout, sparse-checkout-cone-mode, "
    "fetch-depth, fetch-tags, show-progress, lfs, submodules, set-safe-directory, "
    "github-server-url";

/* actions/cache's inputs (v4; v3 takes the same), and those of its
 * restore and save halves. */
static const char *const s_cache_inputs[] = {
    "path", "key", "restore-keys", "upload-chunk-size", "enableCrossOsArchive",
    "fail-on-cache-miss", "lookup-only", "save-always", NULL};
static const char s_cache_list[] = "path, key, restore-keys, upload-chunk-size, "
                                   "enableCrossOsArchive, fail-on-cache-miss, lookup-only, "
                                   "save-always";
static const char *const s_restore_inputs[] = {
    "path", "key", "restore-keys", "enableCrossOsArchive", "fail-on-cache-miss", "lookup-only",
    NULL};
static const char s_restore_list[] = "path, key, restore-keys, enableCrossOsArchive, "
                                     "fail-on-cache-miss, lookup-only";
static const char *const s_save_inputs[] = {"path", "key", "upload-chunk-size",
                                            "enableCrossOsArchive", NULL};
static const char s_save_list[] = "path, key, upload-chunk-size, enableCrossOsArchive";

/* actions/upload-artifact and download-artifact (v4; v2 and v3 take a
 * subset with the same meaning). */
static const char *const s_upload_inputs[] = {
    "name", "path", "if-no-files-found", "retention-days", "compression-level", "overwrite",
    "include-hidden-files", NULL};
static const char s_upload_list[] = "name, path, if-no-files-found, retention-days, "
                                    "compression-level, overwrite, include-hidden-files";
static const char *const s_download_inputs[] = {
    "name", "path", "pattern", "merge-multiple", "github-token", "repository", "run-id", NULL};
static const char s_download_list[] = "name, path, pattern, merge-multiple, github-token, "
                                      "repository, run-id";

typedef struct {
    const char *prefix; /* uses: up to the version */
    const char *id;
    const char *const *inputs;
    const char *list;
} s_builtin_t;

static const s_builtin_t s_builtins[] = {
    {"actions/checkout@", "checkout", s_checkout_inputs, s_checkout_list},
    {"actions/cache@", "cache", s_cache_inputs, s_cache_list},
    {"actions/cache/restore@", "cache-restore", s_restore_inputs, s_restore_list},
    {"actions/cache/save@", "cache-save", s_save_inputs, s_save_list},
    {"actions/upload-artifact@", "upload-artifact", s_upload_inputs, s_upload_list},
    {"actions/download-artifact@", "download-artifact", s_download_inputs, s_download_list},
    /* The step Kiln adds at the job's end for each actions/cache step. */
    {NULL, "cache-post", s_cache_inputs, s_cache_list},
};

static const s_builtin_t *s_find(const char *id)
{
    for (size_t i = 0; i < sizeof s_builtins / sizeof s_builtins[0]; i++)
        if (strcmp(s_builtins[i].id, id) == 0)
            return &s_builtins[i];
    return NULL;
}

const char *kiln_builtin_for(const char *uses, char *why, size_t cap)
{
    if (cap)
        why[0] = '\0';
    for (size_t i = 0; uses && i < sizeof s_builtins / sizeof s_builtins[0]; i++) {
        const char *prefix = s_builtins[i].prefix;
        if (!prefix || strncmp(uses, prefix, strlen(prefix)) != 0)
            continue;
        const char *ver = uses + strlen(prefix);
        /* v1 of both took other inputs (checkout@v1 put the repository
         * elsewhere); every later major, and a commit or branch pin (how
         * hardened workflows name v4), has v4's meaning. */
        if (ver[0] == '\0') {
            snprintf(why, cap, "'%s' names no version", uses);
            return NULL;
        }
        if (strcmp(ver, "v1") == 0 || strncmp(ver, "v1.", 3) == 0) {
            snprintf(why, cap, "'%s': Kiln builds in %.*s v2 and later; use %.*sv4", uses,
                     (int)(strlen(prefix) - 1), prefix, (int)strlen(prefix), prefix);
            return NULL;
        }
        return s_builtins[i].id;
    }
    return NULL;
}

bool kiln_builtin_input_known(const char *builtin, const char *name)
{
    const s_builtin_t *b = s_find(builtin);
    for (size_t i = 0; b && b->inputs[i]; i++)
        if (strcmp(b->inputs[i], name) == 0)
            return true;
    return false;
}

const char *kiln_builtin_inputs(const char *builtin)
{
    const s_builtin_t *b = s_find(builtin);
    return b ? b->list : "";
}
