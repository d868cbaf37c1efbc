/* gitcreds.h: the farm's git credentials.
 *
 * A repository or action source that needs a login gets it from a file
 * the operator gives the coordinator and the workers (--git-credentials
 * FILE), not from workflows: one entry per line, `URL-PREFIX token TOKEN`
 * (https: sent as the password of x-access-token) or `URL-PREFIX ssh-key
 * KEYFILE [USER]` (# comments); the longest prefix of a URL decides. The
 * file must be readable by its owner only, as ssh demands of a key.
 * Secrets are never put in a message: a bad line is named by its number.
 * Here rather than in gitsrc so that kiln-worker, which links no libgit2,
 * checks the file when it starts.
 */
#ifndef KILN_GITCREDS_H
#define KILN_GITCREDS_H

/* Credentials for a fetch, from the farm's configuration or a checkout's
 * inputs; never logged. Any may be NULL. */
typedef struct {
    const char *token;    /* https: sent as the password of x-access-token */
    const char *ssh_key;  /* ssh: a private key's text */
    const char *ssh_user; /* ssh: default "git" */
} kiln_gitsrc_auth_t;

typedef struct kiln_gitcreds kiln_gitcreds_t;

/* Reads path. Returns 0, or -1 with the message naming file (and line). */
int kiln_gitcreds_load(kiln_gitcreds_t **out, const char *path);
void kiln_gitcreds_destroy(kiln_gitcreds_t **self_p);

/* The credentials for url (all NULL when none matches, or self is NULL;
 * borrowed from self). */
void kiln_gitcreds_for(const kiln_gitcreds_t *self, const char *url, kiln_gitsrc_auth_t *out);

#endif
