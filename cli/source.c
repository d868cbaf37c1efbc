/* source.c: the repository a workflow file given to kiln run or kiln
 * submit belongs to.
 *
 * A workflow run from a git work tree runs for that repository at HEAD:
 * its steps' actions/checkout checks HEAD out, and github.sha, github.ref
 * and the rest name it. A work tree with uncommitted changes is said so,
 * since the checkout will not hold them; with --dirty the work tree as it
 * is becomes a commit of its own (written to the repository's object store
 * only, as `git stash create` does: no branch, index or file changes) and
 * that is checked out instead.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "common/error.h"
#include "common/gitsrc.h"
#include "lang/source.h"

static char *s_dup(const char *s)
{
    return strdup(s ? s : "");
}

static void s_iso(const git_time *t, char *out, size_t cap)
{
    time_t when = (time_t)t->time + (time_t)t->offset * 60;
    struct tm tm;
    gmtime_r(&when, &tm);
    int off = t->offset < 0 ? -t->offset : t->offset;
    snprintf(out, cap, "%04d-%02d-%02dT%02d:%02d:%02d%c%02d:%02d", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, t->offset < 0 ? '-' : '+', off / 60,
             off % 60);
}

/* The work tree's changes: tracked files changed and files not ignored
 * that git does not know. */
static size_t s_changes(git_repository *repo)
{
    git_status_options so;
    git_status_list *list = NULL;
    git_status_options_init(&so, GIT_STATUS_OPTIONS_VERSION);
    so.show = GIT_STATUS_SHOW_INDEX_AND_WORKDIR;
    so.flags = GIT_STATUS_OPT_INCLUDE_UNTRACKED | GIT_STATUS_OPT_EXCLUDE_SUBMODULES;
    if (git_status_list_new(&list, repo, &so) < 0)
        return 0;
    size_t n = git_status_list_entrycount(list);
    git_status_list_free(list);
    return n;
}

/* The work tree as a commit whose parent is HEAD: every file git would
 * add (ignored ones left out), deleted ones gone. The repository's index
 * is read, changed in memory and never written back. The changes come
 * from a status list that leaves submodules out, not git_index_add_all:
 * that one (libgit2 1.5) loads the submodules' config with regular
 * expressions whose match data it leaks. */
static int s_commit_work_tree(git_repository *repo, git_commit *head, git_oid *out)
{
    int rc = -1;
    git_index *index = NULL;
    git_tree *tree = NULL;
    git_signature *sig = NULL;
    git_status_list *list = NULL;
    git_oid tree_id;
    git_status_options so;
    git_status_options_init(&so, GIT_STATUS_OPTIONS_VERSION);
    so.show = GIT_STATUS_SHOW_WORKDIR_ONLY;
    so.flags = GIT_STATUS_OPT_INCLUDE_UNTRACKED | GIT_STATUS_OPT_RECURSE_UNTRACKED_DIRS |
               GIT_STATUS_OPT_EXCLUDE_SUBMODULES;
    if (git_repository_index(&index, repo) < 0 || git_status_list_new(&list, repo, &so) < 0)
        goto git_failed;
    for (size_t i = 0, n = git_status_list_entrycount(list); i < n; i++) {
        const git_status_entry *e = git_status_byindex(list, i);
        const git_diff_delta *d = e->index_to_workdir;
        if (!d)
            continue;
        if (e->status & GIT_STATUS_WT_DELETED) {
            if (git_index_remove_bypath(index, d->old_file.path) < 0)
                goto git_failed;
        } else if (e->status & (GIT_STATUS_WT_NEW | GIT_STATUS_WT_MODIFIED |
                                GIT_STATUS_WT_TYPECHANGE | GIT_STATUS_WT_RENAMED)) {
            if (git_index_add_bypath(index, d->new_file.path) < 0)
                goto git_failed;
        }
    }
    if (git_index_write_tree(&tree_id, index) < 0 || git_tree_lookup(&tree, repo, &tree_id) < 0)
        goto git_failed;
    if (git_signature_default(&sig, repo) < 0 && git_signature_now(&sig, "kiln", "kiln@localhost") < 0) {
        kiln_error_set("--dirty: %s", kiln_gitsrc_error());
        goto cleanup;
    }
    const git_commit *parents[1] = {head};
    if (git_commit_create(out, repo, NULL, sig, sig, NULL,
                          "kiln --dirty: the work tree as it was, uncommitted changes included\n",
                          tree, 1, parents) < 0) {
        kiln_error_set("--dirty: cannot record the work tree: %s", kiln_gitsrc_error());
        goto cleanup;
    }
    rc = 0;
    goto cleanup;
git_failed:
    kiln_error_set("--dirty: cannot record the work tree: %s", kiln_gitsrc_error());
cleanup:
    git_status_list_free(list);
    git_signature_free(sig);
    git_tree_free(tree);
    /* Changed in memory only: dropped, never written. */
    git_index_free(index);
    return rc;
}

void kiln_cli_source_free(Kiln__Source **src_p)
{
    Kiln__Source *s = *src_p;
    if (!s)
        return;
    free(s->url);
    free(s->repository);
    free(s->ref);
    free(s->sha);
    free(s->server_url);
    free(s->before);
    free(s->default_branch);
    free(s->commit_message);
    free(s->commit_time);
    free(s->author_name);
    free(s->author_email);
    free(s);
    *src_p = NULL;
}

int kiln_cli_source_local(const char *workflow, bool dirty, Kiln__Source **out)
{
    int rc = KILN_EXIT_USAGE;
    git_repository *repo = NULL;
    git_reference *head = NULL;
    git_commit *commit = NULL;
    git_buf origin = {0};
    Kiln__Source *src = NULL;
    char dir[PATH_MAX];
    *out = NULL;
    if (!realpath(workflow, dir)) {
        if (dirty)
            fprintf(stderr, "kiln: --dirty: %s is not in a git work tree\n", workflow);
        return dirty ? KILN_EXIT_USAGE : 0;
    }
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    if (kiln_gitsrc_init() != 0) {
        fprintf(stderr, "kiln: %s\n", kiln_error_last());
        return KILN_EXIT_INFRA;
    }
    if (git_repository_open_ext(&repo, dir, 0, NULL) < 0 || git_repository_is_bare(repo)) {
        /* A file outside any repository runs alone, as before. */
        git_error_clear();
        rc = 0;
        if (dirty) {
            fprintf(stderr, "kiln: --dirty: %s is not in a git work tree\n", workflow);
            rc = KILN_EXIT_USAGE;
        }
        goto cleanup;
    }
    char root[PATH_MAX];
    snprintf(root, sizeof root, "%s", git_repository_workdir(repo));
    size_t rl = strlen(root);
    if (rl > 1 && root[rl - 1] == '/')
        root[rl - 1] = '\0';
    if (git_repository_head(&head, repo) < 0 ||
        git_reference_peel((git_object **)&commit, head, GIT_OBJECT_COMMIT) < 0) {
        fprintf(stderr, "kiln: note: %s has no commit yet; the run has no repository to check out\n",
                root);
        git_error_clear();
        rc = dirty ? KILN_EXIT_USAGE : 0;
        goto cleanup;
    }
    git_oid sha;
    git_oid_cpy(&sha, git_commit_id(commit));
    size_t changes = s_changes(repo);
    if (dirty) {
        if (s_commit_work_tree(repo, commit, &sha) != 0) {
            fprintf(stderr, "kiln: %s\n", kiln_error_last());
            goto cleanup;
        }
        fprintf(stderr, "kiln: --dirty: the run checks out the work tree as it is (%zu changes, "
                        "recorded as commit %.12s)\n",
                changes, git_oid_tostr_s(&sha));
    } else if (changes) {
        fprintf(stderr, "kiln: note: %s has %zu uncommitted changes; the run checks out HEAD "
                        "(%.12s); --dirty checks out the work tree as it is\n",
                root, changes, git_oid_tostr_s(&sha));
    }
    /* github.repository: the origin remote's owner/name, as on GitHub;
     * without one, the directory's name under "local". */
    char repository[1024], server[1024] = "";
    const char *origin_url = NULL;
    git_config *cfg = NULL;
    /* Read as a plain value: git_remote_lookup (libgit2 1.5) leaks the
     * match data of the regular expressions it runs over the config. */
    if (git_repository_config_snapshot(&cfg, repo) == 0 &&
        git_config_get_string_buf(&origin, cfg, "remote.origin.url") == 0)
        origin_url = origin.ptr;
    git_config_free(cfg);
    git_error_clear();
    if (!origin_url || kiln_source_split_url(origin_url, repository, server, sizeof repository) != 0) {
        const char *base = strrchr(root, '/');
        snprintf(repository, sizeof repository, "local/%s", base && base[1] ? base + 1 : "repository");
        server[0] = '\0';
    }
    /* Other repositories a checkout names sit beside it on the origin's
     * server; https for a scp-like ssh origin. */
    if (origin_url && strncmp(server, "git@", 4) == 0) {
        char host[1024];
        snprintf(host, sizeof host, "https://%.*s", (int)strcspn(server + 4, ":"), server + 4);
        snprintf(server, sizeof server, "%s", host);
    }
    const git_commit *shown = commit;
    const git_signature *author = git_commit_author(shown);
    char when[64];
    s_iso(&author->when, when, sizeof when);
    src = calloc(1, sizeof *src);
    if (!src) {
        fprintf(stderr, "kiln: out of memory\n");
        rc = KILN_EXIT_INFRA;
        goto cleanup;
    }
    kiln__source__init(src);
    src->url = s_dup(root);
    src->repository = s_dup(repository);
    src->ref = s_dup(git_reference_is_branch(head) ? git_reference_name(head) : "");
    src->sha = s_dup(git_oid_tostr_s(&sha));
    src->server_url = s_dup(server);
    src->before = s_dup("");
    src->default_branch = s_dup("");
    src->commit_message = s_dup(git_commit_message(shown));
    /* As GitHub shows it: without the newline git ends it with. */
    for (size_t n = src->commit_message ? strlen(src->commit_message) : 0;
         n && src->commit_message[n - 1] == '\n'; n--)
        src->commit_message[n - 1] = '\0';
    src->commit_time = s_dup(when);
    src->author_name = s_dup(author->name);
    src->author_email = s_dup(author->email);
    src->dirty = dirty;
    *out = src;
    src = NULL;
    rc = 0;
cleanup:
    kiln_cli_source_free(&src);
    git_buf_dispose(&origin);
    git_commit_free(commit);
    git_reference_free(head);
    git_repository_free(repo);
    return rc;
}
