/* source.c: the coordinator's repository mirrors and the thread that
 * fetches them (see source.h).
 *
 * One thread serves every repository in turn: fetches are few next to
 * dispatches, and one at a time keeps the coordinator's network and disk
 * use for them bounded. The queue and the answers are guarded by one
 * mutex; the thread writes the eventfd once per answer.
 */
#include "coordinator/source.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/error.h"
#include "common/gitsrc.h"
#include "common/log.h"
#include "lang/parse.h"
#include "lang/source.h"
#include "lang/workflow.h"

struct kiln_source {
    pthread_t thread;
    bool started, stopping, git_ready;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    kiln_source_job_t *asked[KILN_SOURCE_QUEUE_MAX];
    size_t n_asked;
    kiln_source_job_t *done[KILN_SOURCE_QUEUE_MAX];
    size_t n_done;
    size_t busy; /* taken by the thread, not yet answered */
    int efd;
    char mirror_dir[4096];
    char *action_sources[KILN_SOURCE_ACTION_SOURCES_MAX];
    size_t n_action_sources;
    kiln_gitcreds_t *creds; /* the farm's, or NULL */
    bool require_sha;       /* remote uses: pinned by a full commit SHA only */
};

void kiln_source_job_free(kiln_source_job_t **job_p)
{
    kiln_source_job_t *job = *job_p;
    if (!job)
        return;
    free(job->yaml);
    free(job->url);
    free(job->ref);
    free(job->before);
    free(job->base);
    free(job->action);
    json_decref(job->changed);
    json_decref(job->workflows);
    json_decref(job->source);
    json_decref(job->paths);
    json_decref(job->files);
    free(job);
    *job_p = NULL;
}

/* ------------------------------------------------------ on the thread */

static void s_iso_time(const git_time *t, char *out, size_t cap)
{
    time_t when = (time_t)t->time + (time_t)t->offset * 60;
    struct tm tm;
    gmtime_r(&when, &tm);
    int off = t->offset < 0 ? -t->offset : t->offset;
    snprintf(out, cap, "%04d-%02d-%02dT%02d:%02d:%02d%c%02d:%02d", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, t->offset < 0 ? '-' : '+', off / 60,
             off % 60);
}

/* Every workflow file directly under .github/workflows, sorted by name. */
static int s_list_workflows(kiln_gitsrc_t *m, const git_oid *commit, json_t *out)
{
    int rc = -1;
    git_commit *c = NULL;
    git_tree *tree = NULL;
    git_tree_entry *e = NULL;
    git_tree *dir = NULL;
    git_repository *repo = kiln_gitsrc_repo(m);
    if (git_commit_lookup(&c, repo, commit) < 0 || git_commit_tree(&tree, c) < 0) {
        kiln_error_set("commit %s: %s", git_oid_tostr_s(commit), kiln_gitsrc_error());
        goto cleanup;
    }
    if (git_tree_entry_bypath(&e, tree, ".github/workflows") < 0 ||
        git_tree_entry_type(e) != GIT_OBJECT_TREE) {
        git_error_clear();
        rc = 0; /* none */
        goto cleanup;
    }
    if (git_tree_lookup(&dir, repo, git_tree_entry_id(e)) < 0) {
        kiln_error_set(".github/workflows: %s", kiln_gitsrc_error());
        goto cleanup;
    }
    for (size_t i = 0; i < git_tree_entrycount(dir); i++) {
        const git_tree_entry *it = git_tree_entry_byindex(dir, i);
        const char *name = git_tree_entry_name(it);
        size_t len = strlen(name);
        bool yml = (len > 4 && strcmp(name + len - 4, ".yml") == 0) ||
                   (len > 5 && strcmp(name + len - 5, ".yaml") == 0);
        if (!yml || git_tree_entry_type(it) != GIT_OBJECT_BLOB)
            continue;
        if (json_array_size(out) >= KILN_SOURCE_FILES_MAX) {
            kiln_error_set(".github/workflows holds more than %d workflows", KILN_SOURCE_FILES_MAX);
            goto cleanup;
        }
        char path[1024];
        snprintf(path, sizeof path, ".github/workflows/%s", name);
        json_array_append_new(out, json_string(path));
    }
    rc = 0;
cleanup:
    git_tree_free(dir);
    git_tree_entry_free(e);
    git_tree_free(tree);
    git_commit_free(c);
    return rc;
}

/* The workflows' texts and the local files they use, as the CLI gathers
 * them from a work tree (cli/workflow.c), here from the commit. */
static int s_gather(kiln_gitsrc_t *m, const git_oid *commit, kiln_source_job_t *job)
{
    json_t *queue = json_array();
    size_t bytes = 0, i;
    json_t *p;
    int rc = -1;
    char *text = NULL;
    size_t len;
    json_array_foreach(job->paths, i, p) {
        const char *path = json_string_value(p);
        int r = kiln_gitsrc_read(m, commit, path, KILN_WF_MAX_BYTES, &text, &len);
        if (r != 0) {
            job->rc = r == KILN_ENOTFOUND || r == KILN_ETOOBIG ? KILN_EINVAL : r;
            goto cleanup;
        }
        bytes += len;
        json_object_set_new(job->files, path, json_stringn(text, len));
        kiln_workflow_local_uses(text, len, queue);
        free(text);
        text = NULL;
    }
    for (i = 0; i < json_array_size(queue) && i < KILN_WF_MAX_ACTIONS; i++) {
        json_t *use = json_array_get(queue, i);
        const char *path = json_string_value(json_object_get(use, "path"));
        const char *kind = json_string_value(json_object_get(use, "kind"));
        if (!path || json_object_get(job->files, path))
            continue;
        char file[1200];
        int r = KILN_ENOTFOUND;
        if (strcmp(kind, "workflow") == 0) {
            r = kiln_gitsrc_read(m, commit, path, KILN_WF_MAX_BYTES, &text, &len);
        } else {
            static const char *names[] = {"action.yml", "action.yaml"};
            /* ./P/x after a checkout with path: P is the repository's x. */
            const char *alt = json_string_value(json_object_get(use, "alt"));
            for (int a = 0; a < (alt ? 2 : 1) && r == KILN_ENOTFOUND; a++) {
                for (int k = 0; k < 2 && r == KILN_ENOTFOUND; k++) {
                    snprintf(file, sizeof file, "%s/%s", a ? alt : path, names[k]);
                    r = kiln_gitsrc_read(m, commit, file, KILN_WF_MAX_ACTION_BYTES, &text, &len);
                }
            }
        }
        /* A file the commit lacks is the parser's to report, naming the
         * step, as for a submitted file. */
        if (r == KILN_ENOTFOUND) {
            git_error_clear();
            continue;
        }
        if (r != 0) {
            job->rc = r == KILN_ETOOBIG ? KILN_EINVAL : r;
            goto cleanup;
        }
        if ((bytes += len) > KILN_SOURCE_BYTES_MAX) {
            kiln_error_set("the workflows and the files they use are over %d bytes",
                           KILN_SOURCE_BYTES_MAX);
            job->rc = KILN_EINVAL;
            goto cleanup;
        }
        json_object_set_new(job->files, path, json_stringn(text, len));
        kiln_workflow_local_uses(text, len, queue);
        free(text);
        text = NULL;
    }
    rc = 0;
cleanup:
    free(text);
    json_decref(queue);
    return rc;
}

typedef struct {
    json_t *paths;
    bool over;
} s_diff_t;

static int s_diff_cb(const git_diff_delta *d, float progress, void *payload)
{
    (void)progress;
    s_diff_t *c = payload;
    if (json_array_size(c->paths) >= KILN_SOURCE_PATHS_MAX) {
        c->over = true;
        return 1; /* stop */
    }
    json_array_append_new(c->paths, json_string(d->new_file.path));
    if (d->status == GIT_DELTA_RENAMED)
        json_array_append_new(c->paths, json_string(d->old_file.path));
    return 0;
}

/* The files changed from `from` to `to` (NULL from: unknown, as for a
 * branch's first push), bounded: past KILN_SOURCE_PATHS_MAX unknown too. */
static json_t *s_changed(git_repository *repo, const git_oid *from, const git_oid *to)
{
    git_commit *a = NULL, *b = NULL;
    git_tree *ta = NULL, *tb = NULL;
    git_diff *diff = NULL;
    s_diff_t c = {json_array(), false};
    bool ok = c.paths && from && git_commit_lookup(&a, repo, from) == 0 &&
              git_commit_lookup(&b, repo, to) == 0 && git_commit_tree(&ta, a) == 0 &&
              git_commit_tree(&tb, b) == 0 &&
              git_diff_tree_to_tree(&diff, repo, ta, tb, NULL) == 0;
    if (ok) {
        int r = git_diff_foreach(diff, s_diff_cb, NULL, NULL, NULL, &c);
        ok = (r == 0 || c.over) && !c.over;
    }
    git_error_clear();
    git_diff_free(diff);
    git_tree_free(ta);
    git_tree_free(tb);
    git_commit_free(a);
    git_commit_free(b);
    if (!ok) {
        json_decref(c.paths);
        return NULL;
    }
    return c.paths;
}

/* ----------------------------------------------------- remote actions */

/* Where OWNER/REPO is in one action source: a repository under a
 * directory, or the URL under a base. Returns false (why set) when a
 * directory source has no such repository. */
static bool s_source_url(const char *src, const kiln_uses_ref_t *r, char *url, size_t cap,
                         char *why, size_t why_cap)
{
    if (strstr(src, "://")) {
        size_t n = strlen(src);
        while (n && src[n - 1] == '/')
            n--;
        snprintf(url, cap, "%.*s/%s/%s", (int)n, src, r->owner, r->repo);
        return true;
    }
    for (size_t i = 0; i < 2; i++) {
        struct stat st;
        snprintf(url, cap, "%s/%s/%s%s", src, r->owner, r->repo, i ? ".git" : "");
        if (stat(url, &st) == 0 && S_ISDIR(st.st_mode))
            return true;
    }
    snprintf(why, why_cap, "%s/%s/%s: no such repository", src, r->owner, r->repo);
    return false;
}

/* An action source as it applies to owner: the source itself when it is
 * no override, the part after '=' of an override for owner, NULL for an
 * override for another owner. */
static const char *s_override(const char *src, const char *owner)
{
    const char *eq = strchr(src, '='), *scheme = strstr(src, "://"), *slash = strchr(src, '/');
    if (!eq || eq == src || (scheme && scheme < eq) || (slash && slash < eq))
        return src;
    size_t n = (size_t)(eq - src);
    return strlen(owner) == n && strncmp(src, owner, n) == 0 ? eq + 1 : NULL;
}

/* Two base URLs alike but for trailing slashes. */
static bool s_same_url(const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b);
    while (na && a[na - 1] == '/')
        na--;
    while (nb && b[nb - 1] == '/')
        nb--;
    return strstr(a, "://") && na == nb && strncmp(a, b, na) == 0;
}

/* A ref that is a commit's whole SHA-1 (what pinning means on GitHub). */
static bool s_full_sha(const char *ref)
{
    size_t n = 0;
    for (; ref[n]; n++)
        if (!isxdigit((unsigned char)ref[n]))
            return false;
    return n == 40;
}

/* One remote uses:, resolved against the sources in order into
 * {text, url, sha, file}, or {error} naming every source tried. fetched
 * holds the URLs fetched for this job already (each is fetched once). */
static json_t *s_resolve_one(kiln_source_t *self, const char *uses, const char *kind,
                             json_t *fetched)
{
    kiln_uses_ref_t r;
    char tried[2048] = "", why[1200];
    size_t used = 0;
    if (kiln_uses_remote(uses, &r) != 0)
        return json_pack("{s:s}", "error", "it names no action (owner/repo[/path]@ref)");
    if (self->n_action_sources == 0)
        return json_pack("{s:s}", "error",
                         "the farm has no action sources (--actions-source DIR or URL, on "
                         "kiln-coordinator, kiln up or kiln run); Kiln fetches actions of other "
                         "repositories only from them");
    bool is_wf = strcmp(kind, "workflow") == 0;
    /* Which sources this uses: may come from: a full URL's own base only
     * (when the farm has it); the owner's overrides (OWNER=SOURCE) when
     * there are any; else every source that is no override. */
    bool overridden = false, named = false;
    for (size_t i = 0; i < self->n_action_sources; i++) {
        const char *src = s_override(self->action_sources[i], r.owner);
        overridden = overridden || (src && src != self->action_sources[i]);
        named = named || (r.base[0] && src && s_same_url(src, r.base));
    }
    if (r.base[0] && !named) {
        char e[1400];
        snprintf(e, sizeof e, "%s is not one of the farm's action sources; Kiln fetches actions "
                              "only from them (--actions-source)", r.base);
        return json_pack("{s:s}", "error", e);
    }
    for (size_t i = 0; i < self->n_action_sources; i++) {
        char url[KILN_GITSRC_URL_MAX], full[KILN_GITSRC_REF_MAX];
        kiln_gitsrc_t *m = NULL;
        git_oid commit;
        why[0] = '\0';
        const char *src = s_override(self->action_sources[i], r.owner);
        if (!src || (r.base[0] && !s_same_url(src, r.base)) ||
            (!r.base[0] && overridden && src == self->action_sources[i]))
            continue;
        if (s_source_url(src, &r, url, sizeof url, why, sizeof why)) {
            /* A tag or branch may have moved: fetched once per submission;
             * a commit the mirror has is not. */
            bool again = !json_object_get(fetched, url);
            kiln_gitsrc_stats_t st = {0};
            int rc = kiln_gitsrc_open(&m, self->mirror_dir, url);
            kiln_gitsrc_auth_t auth;
            kiln_gitcreds_for(self->creds, url, &auth);
            if (rc == 0)
                rc = kiln_gitsrc_want(m, r.ref, again, &auth, &commit, full, sizeof full, &st);
            if (st.fetched) {
                json_object_set_new(fetched, url, json_true());
                kiln_log_info("fetched the action repository %s: %u objects, %llu bytes", url,
                              st.objects, (unsigned long long)st.bytes);
            }
            if (rc == 0) {
                static const char *names[] = {"action.yml", "action.yaml"};
                char file[1200], *text = NULL;
                size_t len = 0;
                int fr = KILN_ENOTFOUND;
                for (size_t k = 0; k < (is_wf ? 1 : 2) && fr == KILN_ENOTFOUND; k++) {
                    if (is_wf)
                        snprintf(file, sizeof file, "%s", r.path);
                    else
                        snprintf(file, sizeof file, "%s%s%s", r.path, r.path[0] ? "/" : "",
                                 names[k]);
                    fr = kiln_gitsrc_read(m, &commit, file,
                                          is_wf ? KILN_WF_MAX_BYTES : KILN_WF_MAX_ACTION_BYTES,
                                          &text, &len);
                }
                json_t *out = NULL;
                char sha[GIT_OID_HEXSZ + 1];
                git_oid_tostr(sha, sizeof sha, &commit);
                if (fr == 0 && self->require_sha && !s_full_sha(r.ref)) {
                    /* Resolved anyway, so the refusal can say what to pin. */
                    char e[1600];
                    snprintf(e, sizeof e, "the farm requires actions pinned by a full commit SHA "
                                          "(--actions-require-sha), and '%s' is a tag or branch: "
                                          "%s/%s%s%s@%s is what it names now",
                             r.ref, r.owner, r.repo, r.path[0] ? "/" : "", r.path, sha);
                    out = json_pack("{s:s}", "error", e);
                } else if (fr == 0) {
                    out = json_pack("{s:s%, s:s, s:s, s:s}", "text", text, len, "url", url, "sha",
                                    sha, "file", file);
                } else {
                    /* The repository and ref are there: the first source
                     * that has them is the action's, as an override is. */
                    char e[1600];
                    if (fr == KILN_ENOTFOUND)
                        snprintf(e, sizeof e, "%s at %s (%.12s) has no %s%s", url, r.ref, sha,
                                 is_wf ? "" : r.path[0] ? r.path : "",
                                 is_wf ? file : r.path[0] ? "/action.yml" : "action.yml");
                    else
                        snprintf(e, sizeof e, "%s at %.12s: %s", url, sha, kiln_error_last());
                    out = json_pack("{s:s}", "error", e);
                }
                free(text);
                git_error_clear();
                kiln_gitsrc_destroy(&m);
                if (!out)
                    return json_pack("{s:s}", "error", "its text is not UTF-8");
                return out;
            }
            snprintf(why, sizeof why, "%s", kiln_error_last());
            kiln_gitsrc_destroy(&m);
            git_error_clear();
        }
        int w = snprintf(tried + used, sizeof tried - used, "%s%s", used ? "; " : "", why);
        if (w > 0)
            used = (size_t)w >= sizeof tried - used ? sizeof tried - 1 : used + (size_t)w;
    }
    char e[2300];
    snprintf(e, sizeof e, "not found in the farm's action sources (tried: %s)", tried);
    return json_pack("{s:s}", "error", e);
}

/* Every remote uses: of the texts in job->files (and job->yaml), and of
 * the remote actions and workflows they bring, into job->files. */
static int s_resolve_remote(kiln_source_t *self, kiln_source_job_t *job)
{
    json_t *queue = json_array(), *fetched = json_object();
    const char *key;
    json_t *v;
    int rc = -1;
    if (!queue || !fetched) {
        kiln_error_set("out of memory");
        goto cleanup;
    }
    if (job->yaml)
        kiln_workflow_remote_uses(job->yaml, job->yaml_len, queue);
    json_object_foreach(job->files, key, v) {
        if (json_is_string(v))
            kiln_workflow_remote_uses(json_string_value(v), json_string_length(v), queue);
    }
    for (size_t i = 0; i < json_array_size(queue); i++) {
        json_t *use = json_array_get(queue, i);
        const char *uses = json_string_value(json_object_get(use, "uses"));
        const char *kind = json_string_value(json_object_get(use, "kind"));
        char k[1100];
        snprintf(k, sizeof k, "uses:%s", uses);
        if (json_object_get(job->files, k))
            continue;
        if (i >= KILN_WF_MAX_ACTIONS) {
            kiln_error_set("the run uses more than %d actions and workflows of other repositories",
                           KILN_WF_MAX_ACTIONS);
            job->rc = KILN_EINVAL;
            goto cleanup;
        }
        json_t *got = s_resolve_one(self, uses, kind, fetched);
        if (!got) {
            kiln_error_set("out of memory");
            goto cleanup;
        }
        json_t *text = json_object_get(got, "text");
        if (json_is_string(text))
            kiln_workflow_remote_uses(json_string_value(text), json_string_length(text), queue);
        json_object_set_new(job->files, k, got);
    }
    rc = 0;
cleanup:
    json_decref(queue);
    json_decref(fetched);
    return rc;
}

/* A submitted file's remote actions only. */
static void s_serve_actions(kiln_source_t *self, kiln_source_job_t *job)
{
    job->rc = -1;
    if (s_resolve_remote(self, job) == 0)
        job->rc = 0;
    if (job->rc != 0)
        snprintf(job->error, sizeof job->error, "%s", kiln_error_last());
}

static void s_serve(kiln_source_t *self, kiln_source_job_t *job)
{
    kiln_gitsrc_t *m = NULL;
    git_commit *c = NULL;
    git_oid commit;
    char full_ref[KILN_GITSRC_REF_MAX], repository[1024], base[1024], when[64];
    kiln_gitsrc_stats_t st = {0};
    job->rc = -1;
    job->source = json_object();
    job->files = json_object();
    job->paths = json_array();
    if (!job->source || !job->files || !job->paths) {
        kiln_error_set("out of memory");
        goto cleanup;
    }
    if (kiln_gitsrc_open(&m, self->mirror_dir, job->url) != 0)
        goto cleanup;
    /* A branch may have moved since the last fetch: always asked; a
     * commit the mirror has is not. */
    kiln_gitsrc_auth_t auth;
    kiln_gitcreds_for(self->creds, job->url, &auth);
    int r = kiln_gitsrc_want(m, job->ref, true, &auth, &commit, full_ref, sizeof full_ref, &st);
    if (r != 0) {
        job->rc = r == KILN_ENOTFOUND || r == KILN_EINVAL ? KILN_EINVAL : -1;
        goto cleanup;
    }
    if (st.fetched)
        kiln_log_info("fetched %s: %u objects, %llu bytes", job->url, st.objects,
                      (unsigned long long)st.bytes);
    if (git_commit_lookup(&c, kiln_gitsrc_repo(m), &commit) < 0) {
        kiln_error_set("commit %s: %s", git_oid_tostr_s(&commit), kiln_gitsrc_error());
        goto cleanup;
    }
    if (kiln_source_split_url(job->url, repository, base, sizeof repository) != 0) {
        /* A repository directly under / or a host: named by its last part. */
        const char *slash = strrchr(job->url, '/');
        snprintf(repository, sizeof repository, "local/%s", slash ? slash + 1 : job->url);
        base[0] = '\0';
    }
    const git_signature *author = git_commit_author(c);
    s_iso_time(&author->when, when, sizeof when);
    json_object_set_new(job->source, "url", json_string(job->url));
    json_object_set_new(job->source, "repository", json_string(repository));
    json_object_set_new(job->source, "ref", json_string(full_ref));
    json_object_set_new(job->source, "sha", json_string(git_oid_tostr_s(&commit)));
    json_object_set_new(job->source, "server_url", json_string(base));
    json_object_set_new(job->source, "default_branch",
                        json_string(kiln_gitsrc_default_branch(m)));
    char message[4096];
    snprintf(message, sizeof message, "%s", git_commit_message(c));
    /* As GitHub shows it: without the newline git ends it with. */
    for (size_t n = strlen(message); n && message[n - 1] == '\n'; n--)
        message[n - 1] = '\0';
    json_object_set_new(job->source, "commit_message", json_string(message));
    json_object_set_new(job->source, "commit_time", json_string(when));
    json_object_set_new(job->source, "author_name", json_string(author->name));
    json_object_set_new(job->source, "author_email", json_string(author->email));
    if (job->before && job->before[0])
        json_object_set_new(job->source, "before", json_string(job->before));
    git_repository *repo = kiln_gitsrc_repo(m);
    if (job->base && job->base[0]) {
        /* A pull request: its base resolved too; its files are those
         * changed since the commit the two share. */
        git_oid base_id, fork;
        char base_ref[KILN_GITSRC_REF_MAX];
        if (kiln_gitsrc_resolve(m, job->base, &base_id, base_ref, sizeof base_ref) != 0) {
            job->rc = KILN_EINVAL;
            goto cleanup;
        }
        const char *head = strncmp(full_ref, "refs/heads/", 11) == 0 ? full_ref + 11 : job->ref;
        const char *base_name = strncmp(base_ref, "refs/heads/", 11) == 0 ? base_ref + 11 : job->base;
        char pr_ref[64];
        snprintf(pr_ref, sizeof pr_ref, "refs/pull/%u/head", job->number ? job->number : 1);
        json_object_set_new(job->source, "ref", json_string(pr_ref));
        json_object_set_new(job->source, "head_ref", json_string(head));
        json_object_set_new(job->source, "base_ref", json_string(base_name));
        json_object_set_new(job->source, "base_sha", json_string(git_oid_tostr_s(&base_id)));
        json_object_set_new(job->source, "number", json_integer(job->number ? job->number : 1));
        json_object_set_new(job->source, "action",
                            json_string(job->action && job->action[0] ? job->action : "opened"));
        if (git_merge_base(&fork, repo, &base_id, &commit) == 0)
            job->changed = s_changed(repo, &fork, &commit);
        git_error_clear();
    } else {
        /* A push: since the commit the ref was at (--before), else since
         * the commit's first parent. */
        git_oid before;
        bool have = false;
        if (job->before && job->before[0])
            have = git_oid_fromstr(&before, job->before) == 0;
        else if (git_commit_parentcount(c) > 0) {
            git_oid_cpy(&before, git_commit_parent_id(c, 0));
            have = true;
        }
        job->changed = s_changed(repo, have ? &before : NULL, &commit);
    }
    if (json_array_size(job->workflows)) {
        json_array_extend(job->paths, job->workflows);
    } else if (s_list_workflows(m, &commit, job->paths) != 0) {
        goto cleanup;
    }
    if (s_gather(m, &commit, job) != 0 || s_resolve_remote(self, job) != 0)
        goto cleanup;
    job->rc = 0;
cleanup:
    if (job->rc != 0)
        snprintf(job->error, sizeof job->error, "%s", kiln_error_last());
    git_commit_free(c);
    kiln_gitsrc_destroy(&m);
}

static void *s_thread(void *arg)
{
    kiln_source_t *self = arg;
    pthread_mutex_lock(&self->mu);
    for (;;) {
        while (!self->stopping && self->n_asked == 0)
            pthread_cond_wait(&self->cv, &self->mu);
        if (self->stopping)
            break;
        kiln_source_job_t *job = self->asked[0];
        memmove(self->asked, self->asked + 1, --self->n_asked * sizeof *self->asked);
        self->busy++;
        pthread_mutex_unlock(&self->mu);
        if (job->url)
            s_serve(self, job);
        else
            s_serve_actions(self, job);
        pthread_mutex_lock(&self->mu);
        self->busy--;
        self->done[self->n_done++] = job;
        uint64_t one = 1;
        if (write(self->efd, &one, sizeof one) != sizeof one)
            kiln_log_error("source: cannot wake the loop: %s", strerror(errno));
    }
    pthread_mutex_unlock(&self->mu);
    return NULL;
}

/* ------------------------------------------------------- on the loop */

int kiln_source_check(const char *const *action_sources, size_t n_action_sources,
                      const char *git_credentials)
{
    if (n_action_sources > KILN_SOURCE_ACTION_SOURCES_MAX) {
        kiln_error_set("more than %d --actions-source", KILN_SOURCE_ACTION_SOURCES_MAX);
        return KILN_EINVAL;
    }
    for (size_t i = 0; i < n_action_sources; i++) {
        struct stat st;
        const char *src = s_override(action_sources[i], "");
        src = src ? src : strchr(action_sources[i], '=') + 1;
        if (!strstr(src, "://") && (stat(src, &st) != 0 || !S_ISDIR(st.st_mode))) {
            kiln_error_set("--actions-source %s: not a directory (a directory of OWNER/REPO "
                           "repositories, or a base URL such as https://host)",
                           src);
            return KILN_EINVAL;
        }
    }
    kiln_gitcreds_t *creds = NULL;
    if (git_credentials && git_credentials[0] && kiln_gitcreds_load(&creds, git_credentials) != 0)
        return KILN_EINVAL;
    kiln_gitcreds_destroy(&creds);
    return 0;
}

int kiln_source_new(kiln_source_t **out, const char *mirror_dir,
                    const char *const *action_sources, size_t n_action_sources,
                    const char *git_credentials, bool require_sha)
{
    kiln_source_t *self = calloc(1, sizeof *self);
    *out = NULL;
    if (!self) {
        kiln_error_set("out of memory");
        return -1;
    }
    self->efd = -1;
    self->require_sha = require_sha;
    pthread_mutex_init(&self->mu, NULL);
    pthread_cond_init(&self->cv, NULL);
    int rc = -1;
    if (n_action_sources > KILN_SOURCE_ACTION_SOURCES_MAX) {
        kiln_error_set("more than %d --actions-source", KILN_SOURCE_ACTION_SOURCES_MAX);
        rc = KILN_EINVAL;
        goto fail;
    }
    for (size_t i = 0; i < n_action_sources; i++) {
        const char *given = action_sources[i], *src = s_override(given, "");
        src = src ? src : strchr(given, '=') + 1;
        char dir[PATH_MAX], kept[PATH_MAX + 160];
        struct stat st;
        /* A directory by its absolute path: mirrors are named by it. */
        if (!strstr(src, "://") && (stat(src, &st) != 0 || !S_ISDIR(st.st_mode) ||
                                    !realpath(src, dir))) {
            kiln_error_set("--actions-source %s: not a directory (a directory of OWNER/REPO "
                           "repositories, or a base URL such as https://host)",
                           src);
            rc = KILN_EINVAL;
            goto fail;
        }
        snprintf(kept, sizeof kept, "%.*s%s", (int)(src - given), given,
                 strstr(src, "://") ? src : dir);
        if (!(self->action_sources[i] = strdup(kept))) {
            kiln_error_set("out of memory");
            goto fail;
        }
        self->n_action_sources++;
    }
    if (git_credentials && git_credentials[0] &&
        kiln_gitcreds_load(&self->creds, git_credentials) != 0) {
        rc = KILN_EINVAL;
        goto fail;
    }
    snprintf(self->mirror_dir, sizeof self->mirror_dir, "%s", mirror_dir);
    if (mkdir(mirror_dir, 0700) != 0 && errno != EEXIST) {
        kiln_error_errno("cannot make the mirror directory %s", mirror_dir);
        goto fail;
    }
    if (kiln_gitsrc_init() != 0)
        goto fail;
    self->git_ready = true;
    if ((self->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) == -1) {
        kiln_error_errno("source: eventfd");
        goto fail;
    }
    /* Signals are the loop's (its signalfd): the thread takes none, or a
     * SIGHUP meant for the allow-list would end the process. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int prc = pthread_create(&self->thread, NULL, s_thread, self);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (prc != 0) {
        kiln_error_set("source: cannot start the fetching thread");
        goto fail;
    }
    self->started = true;
    *out = self;
    return 0;
fail:
    kiln_source_destroy(&self, NULL);
    return rc;
}

void kiln_source_destroy(kiln_source_t **self_p, void (*free_caller)(void *))
{
    kiln_source_t *self = *self_p;
    if (!self)
        return;
    if (self->started) {
        pthread_mutex_lock(&self->mu);
        self->stopping = true;
        pthread_cond_signal(&self->cv);
        pthread_mutex_unlock(&self->mu);
        pthread_join(self->thread, NULL);
    }
    for (size_t i = 0; i < self->n_asked; i++) {
        if (free_caller)
            free_caller(self->asked[i]->caller);
        kiln_source_job_free(&self->asked[i]);
    }
    for (size_t i = 0; i < self->n_done; i++) {
        if (free_caller)
            free_caller(self->done[i]->caller);
        kiln_source_job_free(&self->done[i]);
    }
    if (self->efd >= 0)
        close(self->efd);
    pthread_mutex_destroy(&self->mu);
    pthread_cond_destroy(&self->cv);
    for (size_t i = 0; i < self->n_action_sources; i++)
        free(self->action_sources[i]);
    kiln_gitcreds_destroy(&self->creds);
    if (self->git_ready)
        git_libgit2_shutdown();
    free(self);
    *self_p = NULL;
}

const char *const *kiln_source_action_sources(const kiln_source_t *self, size_t *n)
{
    *n = self->n_action_sources;
    return (const char *const *)self->action_sources;
}

int kiln_source_fd(const kiln_source_t *self)
{
    return self->efd;
}

int kiln_source_ask(kiln_source_t *self, kiln_source_job_t *job)
{
    int rc = 0;
    pthread_mutex_lock(&self->mu);
    if (self->n_asked + self->n_done + self->busy >= KILN_SOURCE_QUEUE_MAX) {
        kiln_error_set("the coordinator is fetching %d repositories already; try later",
                       KILN_SOURCE_QUEUE_MAX);
        rc = KILN_EAGAIN;
    } else {
        self->asked[self->n_asked++] = job;
        pthread_cond_signal(&self->cv);
    }
    pthread_mutex_unlock(&self->mu);
    return rc;
}

kiln_source_job_t *kiln_source_take(kiln_source_t *self)
{
    uint64_t n;
    kiln_source_job_t *job = NULL;
    if (read(self->efd, &n, sizeof n) < 0 && errno != EAGAIN)
        kiln_log_error("source: eventfd: %s", strerror(errno));
    pthread_mutex_lock(&self->mu);
    if (self->n_done) {
        job = self->done[0];
        memmove(self->done, self->done + 1, --self->n_done * sizeof *self->done);
        /* More answers than this one: stay readable for the next. */
        if (self->n_done) {
            uint64_t one = 1;
            if (write(self->efd, &one, sizeof one) != sizeof one)
                kiln_log_error("source: eventfd: %s", strerror(errno));
        }
    }
    pthread_mutex_unlock(&self->mu);
    return job;
}
