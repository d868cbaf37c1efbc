/* source.h: runs from a repository (kiln submit --repo URL --ref REF).
 *
 * The coordinator keeps a bare mirror of each repository it has been asked
 * for (common/gitsrc.h, in DIR/mirrors beside the history), fetches only
 * what is new, resolves the ref to a commit, and reads the workflow files
 * and the local actions and called workflows they use from that commit.
 * A fetch can take seconds, so it happens on a thread of its own: the loop
 * hands a request over (kiln_source_ask), goes on serving, and is woken
 * through an eventfd (kiln_source_fd, in its zmq_poll) to take the answer
 * (kiln_source_take) and start the runs.
 */
#ifndef KILN_COORD_SOURCE_H
#define KILN_COORD_SOURCE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Repository requests waiting or being fetched at once. */
#define KILN_SOURCE_QUEUE_MAX 32
/* Workflows and local files read from one commit, and their bytes. */
#define KILN_SOURCE_FILES_MAX 256
#define KILN_SOURCE_BYTES_MAX (8 * 1024 * 1024)
/* Changed files a paths filter looks at; past it, filters let it run. */
#define KILN_SOURCE_PATHS_MAX 3000
/* Action sources a coordinator takes. */
#define KILN_SOURCE_ACTION_SOURCES_MAX 16

typedef struct kiln_source kiln_source_t;

typedef struct {
    /* Asked: a repository's commit (url set), or only the remote actions
     * of a submitted file (url NULL: yaml and the files it brings given;
     * the remote ones are added to files). */
    char *yaml;
    size_t yaml_len;
    char *url, *ref, *before;
    char *base, *action; /* a pull request's base branch ("" for a push) and type */
    unsigned number;     /* a pull request's number */
    json_t *workflows; /* array of paths, or empty: every one under .github/workflows */
    void *caller;      /* the loop's own state (the request), handed back */
    /* Answered: */
    int rc;            /* 0, KILN_EINVAL (no such ref or file), or another code */
    char error[1024];
    json_t *source;    /* url, repository, ref, sha, server_url, default_branch, commit_* */
    json_t *paths;     /* the workflows to consider, in order */
    json_t *files;     /* path -> text: the workflows and the local files they use;
                        * "uses:<uses>" -> {text, url, sha, file} or {error}: the remote
                        * actions and workflows they use (lang/parse.h) */
    json_t *changed;   /* the files the push or pull request changed, or NULL: unknown */
} kiln_source_job_t;

/* Starts the fetching thread; mirror_dir is made if missing. Remote
 * actions (uses: OWNER/REPO[/PATH]@REF) are looked for in the action
 * sources in order: a directory holding OWNER/REPO (or OWNER/REPO.git)
 * git repositories, or a base URL under which OWNER/REPO is fetched.
 * git_credentials (a file, or NULL) authenticates the fetches (gitsrc.h).
 * With require_sha, a remote uses: whose ref is not a full commit SHA is
 * answered with an error naming the commit it resolves to now. */
int kiln_source_new(kiln_source_t **out, const char *mirror_dir,
                    const char *const *action_sources, size_t n_action_sources,
                    const char *git_credentials, bool require_sha);
/* The action sources as the fetches use them (directories made absolute),
 * in order; fixed from kiln_source_new on. */
const char *const *kiln_source_action_sources(const kiln_source_t *self, size_t *n);
/* The checks kiln_source_new makes of its configuration, for a coordinator
 * to make before it touches its history or Redis. 0 or KILN_EINVAL. */
int kiln_source_check(const char *const *action_sources, size_t n_action_sources,
                      const char *git_credentials);
/* Stops the thread (a fetch under way is waited for) and frees what is
 * left, calling free_caller on each job's caller. */
void kiln_source_destroy(kiln_source_t **self_p, void (*free_caller)(void *));

/* The descriptor that is readable while answers wait. */
int kiln_source_fd(const kiln_source_t *self);
/* Hands job over (consumed on success). KILN_EAGAIN when the queue is
 * full. */
int kiln_source_ask(kiln_source_t *self, kiln_source_job_t *job);
/* An answered job (the caller frees it with kiln_source_job_free), or
 * NULL when none is waiting. */
kiln_source_job_t *kiln_source_take(kiln_source_t *self);
void kiln_source_job_free(kiln_source_job_t **job_p);

#endif
