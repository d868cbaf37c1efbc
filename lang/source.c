/* source.c: the github context of a run's repository and event (see
 * source.h). */
#include "lang/source.h"

#include <stdio.h>
#include <string.h>

static const char *s_get(const json_t *o, const char *key)
{
    const char *v = json_string_value(json_object_get(o, key));
    return v ? v : "";
}

int kiln_source_split_url(const char *url, char *repository, char *base, size_t cap)
{
    char buf[2048];
    snprintf(buf, sizeof buf, "%s", url);
    size_t len = strlen(buf);
    while (len && buf[len - 1] == '/')
        buf[--len] = '\0';
    if (len > 4 && strcmp(buf + len - 4, ".git") == 0)
        buf[len -= 4] = '\0';
    /* scp-like ssh (git@host:owner/name): the path starts after ':'. */
    char *path = buf;
    char *scheme = strstr(buf, "://");
    char *colon = strchr(buf, ':');
    if (!scheme && colon && (!strchr(buf, '/') || colon < strchr(buf, '/')))
        *colon = '/';
    char *name = strrchr(path, '/');
    if (!name || name == path)
        return -1;
    char *owner_end = name;
    char *owner = owner_end - 1;
    while (owner > path && *owner != '/')
        owner--;
    if (*owner != '/' || owner + 1 == owner_end || (scheme && owner <= scheme + 2))
        return -1;
    snprintf(repository, cap, "%.*s/%s", (int)(owner_end - owner - 1), owner + 1, name + 1);
    if (!scheme && colon)
        *colon = ':'; /* the base keeps the host's form */
    snprintf(base, cap, "%.*s", (int)(owner - buf), buf);
    return 0;
}

static void s_set(json_t *o, const char *key, const char *v)
{
    json_object_set_new(o, key, json_string(v ? v : ""));
}

json_t *kiln_source_github(const json_t *source, const char *event_name, const char *actor,
                           const char *workflow_file, const json_t *inputs)
{
    json_t *gh = json_object(), *event = json_object();
    if (!gh || !event) {
        json_decref(gh);
        json_decref(event);
        return NULL;
    }
    const char *repository = s_get(source, "repository"), *ref = s_get(source, "ref"),
               *sha = s_get(source, "sha"), *server = s_get(source, "server_url");
    char owner[256] = "", name[256] = "", ref_name[512] = "";
    const char *slash = strchr(repository, '/');
    if (slash) {
        snprintf(owner, sizeof owner, "%.*s", (int)(slash - repository), repository);
        snprintf(name, sizeof name, "%s", slash + 1);
    }
    const char *ref_type = "";
    if (strncmp(ref, "refs/heads/", 11) == 0) {
        ref_type = "branch";
        snprintf(ref_name, sizeof ref_name, "%s", ref + 11);
    } else if (strncmp(ref, "refs/tags/", 10) == 0) {
        ref_type = "tag";
        snprintf(ref_name, sizeof ref_name, "%s", ref + 10);
    } else if (strncmp(ref, "refs/pull/", 10) == 0) {
        snprintf(ref_name, sizeof ref_name, "%s", ref + 10); /* 12/merge, as GitHub's */
    } else {
        snprintf(ref_name, sizeof ref_name, "%s", ref);
    }
    /* A run of a file alone still has the fields, empty, as GitHub's
     * context always does. */
    {
        s_set(gh, "repository", repository);
        s_set(gh, "repository_owner", owner);
        s_set(gh, "repositoryUrl", s_get(source, "url"));
        s_set(gh, "ref", ref);
        s_set(gh, "ref_name", ref_name);
        s_set(gh, "ref_type", ref_type);
        s_set(gh, "sha", sha);
        s_set(gh, "head_ref", s_get(source, "head_ref"));
        s_set(gh, "base_ref", s_get(source, "base_ref"));
        s_set(gh, "server_url", server);
        /* Only github.com has an API Kiln can name; Kiln serves none. */
        if (strcmp(server, "https://github.com") == 0) {
            s_set(gh, "api_url", "https://api.github.com");
            s_set(gh, "graphql_url", "https://api.github.com/graphql");
        }
        char wref[1024] = "";
        if (source)
            snprintf(wref, sizeof wref, "%s/%s@%s", repository, workflow_file ? workflow_file : "",
                     ref[0] ? ref : sha);
        s_set(gh, "workflow_ref", wref);
        s_set(gh, "workflow_sha", sha);
    }
    /* The payload: what GitHub's has that Kiln knows. */
    json_t *repo = NULL;
    if (source) {
        char html[1200];
        snprintf(html, sizeof html, "%s/%s", server, repository);
        repo = json_pack("{s:s, s:s, s:{s:s, s:s}, s:s, s:s, s:s, s:s}", "name", name,
                         "full_name", repository, "owner", "login", owner, "name", owner,
                         "default_branch", s_get(source, "default_branch"), "master_branch",
                         s_get(source, "default_branch"), "clone_url", s_get(source, "url"),
                         "html_url", html);
        if (repo)
            json_object_set_new(event, "repository", repo);
    }
    json_object_set_new(event, "sender", json_pack("{s:s}", "login", actor ? actor : ""));
    if (event_name && strcmp(event_name, "workflow_dispatch") == 0) {
        json_object_set(event, "inputs", inputs ? (json_t *)inputs : json_object());
        if (source)
            s_set(event, "ref", ref);
        s_set(event, "workflow", workflow_file);
    } else if (source && event_name && strcmp(event_name, "push") == 0) {
        const char *before = s_get(source, "before");
        s_set(event, "ref", ref);
        s_set(event, "before", before[0] ? before : "0000000000000000000000000000000000000000");
        s_set(event, "after", sha);
        json_object_set_new(event, "created", json_boolean(!before[0]));
        json_object_set_new(event, "deleted", json_false());
        json_object_set_new(event, "forced", json_false());
        json_object_set_new(event, "base_ref", json_null());
        json_t *author = json_pack("{s:s, s:s}", "name", s_get(source, "author_name"), "email",
                                   s_get(source, "author_email"));
        json_t *head = json_pack("{s:s, s:s, s:s, s:o, s:O}", "id", sha, "message",
                                 s_get(source, "commit_message"), "timestamp",
                                 s_get(source, "commit_time"), "author", author, "committer",
                                 author);
        if (head) {
            json_object_set(event, "head_commit", head);
            json_object_set_new(event, "commits", json_pack("[o]", head));
        }
        json_object_set_new(event, "pusher", json_pack("{s:s}", "name", actor ? actor : ""));
    } else if (source && event_name &&
               (strcmp(event_name, "pull_request") == 0 ||
                strcmp(event_name, "pull_request_target") == 0)) {
        json_int_t number = json_integer_value(json_object_get(source, "number"));
        json_t *pr = json_pack("{s:I, s:{s:s, s:s, s:O?}, s:{s:s, s:s, s:O?}}", "number", number,
                               "head", "ref", s_get(source, "head_ref"), "sha", sha, "repo", repo,
                               "base", "ref", s_get(source, "base_ref"), "sha",
                               s_get(source, "base_sha"), "repo", repo);
        if (pr)
            json_object_set_new(event, "pull_request", pr);
        json_object_set_new(event, "number", json_integer(number));
        s_set(event, "action", s_get(source, "action"));
    } else if (source) {
        s_set(event, "ref", ref);
    }
    json_object_set_new(gh, "event", event);
    return gh;
}
