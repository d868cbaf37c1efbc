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

const char *kiln_builtin_for(const char *uses, char *why, size_t cap)
{
    static const char prefix[] = "actions/checkout@";
    if (cap)
        why[0] = '\0';
    if (!uses || strncmp(uses, prefix, sizeof prefix - 1) != 0)
        return NULL;
    const char *ver = uses + sizeof prefix - 1;
    /* v1 checked out into a different directory and took other inputs;
     * every later major (and a commit or branch pin, which is how
     * hardened workflows name v4) has v4's meaning. */
    if (ver[0] == '\0') {
        snprintf(why, cap, "'%s' names no version", uses);
        return NULL;
    }
    if (strcmp(ver, "v1") == 0 || strncmp(ver, "v1.", 3) == 0) {
        snprintf(why, cap,
                 "'%s': Kiln builds in actions/checkout v2 and later (v1 put the "
                 "repository elsewhere); use actions/checkout@v4",
                 uses);
        return NULL;
    }
    return "checkout";
}

bool kiln_builtin_input_known(const char *builtin, const char *name)
{
    if (strcmp(builtin, "checkout") != 0)
        return false;
    for (size_t i = 0; s_checkout_inputs[i]; i++)
        if (strcmp(s_checkout_inputs[i], name) == 0)
            return true;
    return false;
}

const char *kiln_builtin_inputs(const char *builtin)
{
    return strcmp(builtin, "checkout") == 0 ? s_checkout_list : "";
}
