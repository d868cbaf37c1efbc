/* gitsrc.h: a repository's source through a local bare mirror (libgit2).
 *
 * The coordinator reads a run's workflows from a commit, and every worker
 * checks commits out; both keep one bare mirror per repository URL in a
 * cache directory and fetch into it only what is new, so the second run of
 * a repository (or the next commit of a branch) moves almost nothing. A
 * mirror is locked (flock) while open, so two processes sharing a cache
 * never fetch into one mirror at once.
 *
 * Built as its own library (kiln_gitsrc): only the programs that touch
 * repositories link libgit2.
 */
#ifndef KILN_GITSRC_H
#define KILN_GITSRC_H

#include <git2.h>

#include "common/gitcreds.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The longest repository URL or ref name accepted. */
#define KILN_GITSRC_URL_MAX 1024
#define KILN_GITSRC_REF_MAX 256

typedef struct kiln_gitsrc kiln_gitsrc_t;

typedef struct {
    unsigned objects;  /* objects that came over */
    uint64_t bytes;    /* bytes that came over */
    bool fetched;      /* a fetch was made (false: the mirror had what was asked) */
} kiln_gitsrc_stats_t;

/* Once per process, before anything else here. */
int kiln_gitsrc_init(void);

/* A fetch whose server gives no sign of life for this long (connecting,
 * or between reads and writes) fails, naming the server. */
#define KILN_GITSRC_TIMEOUT_DEFAULT_S 120
/* Sets that time (seconds > 0), before any fetch. */
void kiln_gitsrc_set_timeout(int seconds);

/* Opens (creating it if missing) the mirror of url under cache_dir, locked
 * for this process until destroyed. A URL is a path, file://, git://,
 * http(s):// or ssh. Returns 0, or -1 with the message set. */
int kiln_gitsrc_open(kiln_gitsrc_t **out, const char *cache_dir, const char *url);
/* The same for a mirror at path itself (made bare if missing; its parent
 * must exist), locked by path.lock beside it. */
int kiln_gitsrc_open_at(kiln_gitsrc_t **out, const char *path, const char *url);
void kiln_gitsrc_destroy(kiln_gitsrc_t **self_p);

/* The mirror's repository, borrowed. */
git_repository *kiln_gitsrc_repo(kiln_gitsrc_t *self);
/* The mirror's directory (its objects are a checkout's alternates). */
const char *kiln_gitsrc_path(const kiln_gitsrc_t *self);

/* Fetches every branch and tag (forced: a force-pushed ref follows), and
 * the extra refspecs given (such as refs/pull/1/head), adding to stats.
 * Returns 0 or -1 with the message naming the URL. */
int kiln_gitsrc_fetch(kiln_gitsrc_t *self, const char *const *extra, size_t n_extra,
                      const kiln_gitsrc_auth_t *auth, kiln_gitsrc_stats_t *stats);

/* Resolves ref in the mirror: a full ref (refs/...), a branch, a tag, or a
 * commit id (40 hex digits, or fewer as a prefix), to the commit it names;
 * full_ref (cap bytes) gets the full name ("" for a commit id). Returns 0,
 * KILN_ENOTFOUND (message set), or -1. */
int kiln_gitsrc_resolve(kiln_gitsrc_t *self, const char *ref, git_oid *commit, char *full_ref,
                        size_t cap);

/* Resolves ref, fetching first when the mirror cannot resolve it or when
 * fetch_always (a branch may have moved) and the ref is not a commit id the
 * mirror has. Returns as kiln_gitsrc_resolve. */
int kiln_gitsrc_want(kiln_gitsrc_t *self, const char *ref, bool fetch_always,
                     const kiln_gitsrc_auth_t *auth, git_oid *commit, char *full_ref, size_t cap,
                     kiln_gitsrc_stats_t *stats);

/* The default branch the remote's HEAD named at the last fetch (such as
 * "main"), or "" when unknown. */
const char *kiln_gitsrc_default_branch(const kiln_gitsrc_t *self);

/* Reads the file at path in commit's tree: a malloc'd NUL-terminated copy
 * of at most max bytes. Returns 0, KILN_ENOTFOUND (no such file),
 * KILN_ETOOBIG, or -1. */
int kiln_gitsrc_read(kiln_gitsrc_t *self, const git_oid *commit, const char *path, size_t max,
                     char **out, size_t *len);

/* Sets repo's origin remote (url, and one fetch refspec). Returns 0, or -1
 * with libgit2's error (kiln_gitsrc_error) set. */
int kiln_gitsrc_set_origin(git_repository *repo, const char *url, const char *fetchspec);

/* The message of the last libgit2 error, or a fallback. */
const char *kiln_gitsrc_error(void);

#endif
