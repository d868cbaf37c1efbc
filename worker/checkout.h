/* checkout.h: actions/checkout, built in (kiln-checkout).
 *
 * The worker runs the step `uses: actions/checkout@v4` as the program
 * kiln-checkout, through the executor like any step (so its output is the
 * step's log, and timeouts and cancels stop it), with the step's inputs as
 * INPUT_* variables, as GitHub hands inputs to an action.
 *
 * Where the objects come from: the worker keeps a bare mirror of each
 * repository it has checked out (common/gitsrc.h) in WORK/git, and fetches
 * into it from the repository's URL directly, not through the coordinator.
 * git's own negotiation already sends only what the mirror lacks, the
 * coordinator stays out of every checkout's bandwidth, and a worker on a
 * build cluster reaches the git server as the coordinator does. A commit the
 * mirror already has costs no round trip at all.
 *
 * The work tree is a real repository: its .git borrows the mirror's objects
 * (objects/info/alternates, as `git clone --shared` does), so nothing is
 * copied, and fetch-depth N becomes a .git/shallow file at that depth, so
 * `git log` sees what a clone of that depth would.
 */
#ifndef KILN_CHECKOUT_H
#define KILN_CHECKOUT_H

#include <stdbool.h>
#include <stdio.h>

typedef struct {
    /* From the worker and the run. */
    const char *cache_dir;      /* KILN_GIT_CACHE: the mirrors */
    const char *workspace;      /* GITHUB_WORKSPACE */
    const char *source_url;     /* KILN_SOURCE_URL: the run's repository, or "" */
    const char *run_repository; /* GITHUB_REPOSITORY (owner/name) */
    const char *server_url;     /* GITHUB_SERVER_URL: other repositories are under it */
    const char *run_sha;        /* GITHUB_SHA */
    const char *run_ref;        /* GITHUB_REF */
    const char *output_path;    /* GITHUB_OUTPUT, or NULL */
    const char *summary_path;   /* GITHUB_STEP_SUMMARY, or NULL */
    const char *credentials;    /* KILN_GIT_CREDENTIALS: the farm's file, or NULL/"" */
    /* The step's inputs, as text ("" or NULL: the default). */
    const char *repository, *ref, *path, *fetch_depth, *fetch_tags, *clean, *submodules,
        *sparse_checkout, *sparse_cone, *persist_credentials, *lfs, *token, *ssh_key, *ssh_user,
        *filter;
} kiln_checkout_opts_t;

/* Checks out, printing progress lines to log. Returns 0, or -1 with the
 * message set (the caller prints it). */
int kiln_checkout_run(const kiln_checkout_opts_t *opts, FILE *log);

/* The built-in step before a remote composite action's steps: the files of
 * commit sha of the action repository at url into actions_dir/dir
 * (OWNER/REPO/SHA), fetched into the mirror only when it lacks the commit,
 * kept for the next job that uses the same commit. */
typedef struct {
    const char *cache_dir;   /* KILN_GIT_CACHE */
    const char *actions_dir; /* KILN_ACTIONS_DIR */
    const char *url, *sha, *dir, *uses; /* INPUT_REPOSITORY, INPUT_SHA, INPUT_DIR, INPUT_USES */
    const char *credentials; /* KILN_GIT_CREDENTIALS, or NULL/"" */
} kiln_action_opts_t;

int kiln_checkout_action(const kiln_action_opts_t *opts, FILE *log);

#endif
