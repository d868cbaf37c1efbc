/* cmd_actions.c: `kiln actions pull OWNER/REPO@REF --into DIR [--from URL]`
 * and `kiln actions list [--dir DIR]`: filling and reading a directory of
 * OWNER/REPO git repositories, the offline mirror a farm behind a firewall
 * gives its coordinator as an action source (--actions-source DIR); list
 * without --dir asks the farm for its sources and every commit its
 * history ran (REQ_ACTIONS).
 *
 * A pull mirrors every branch and tag of the repository (bare, as
 * OWNER/REPO.git) through the same mirror code the coordinator fetches
 * with (common/gitsrc.c: its timeouts, the farm's credentials file), so a
 * second pull moves only what is new; it prints the commit REF names, the
 * pin to write in a workflow under --actions-require-sha.
 */
#include <errno.h>
#include <git2.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "cli/follow.h"
#include "common/error.h"
#include "common/fs.h"
#include "common/gitcreds.h"
#include "common/gitsrc.h"
#include "lang/parse.h"

#define S_DEFAULT_FROM "https://github.com"

static int s_pull(const char *spec, const char *from, const char *into, const char *creds_file)
{
    kiln_uses_ref_t r;
    kiln_gitsrc_t *m = NULL;
    kiln_gitcreds_t *creds = NULL;
    int code = KILN_EXIT_INFRA;
    if (kiln_uses_remote(spec, &r) != 0 || r.path[0]) {
        fprintf(stderr, "kiln actions pull: '%s' is no OWNER/REPO@REF\n", spec);
        return KILN_EXIT_USAGE;
    }
    char url[KILN_GITSRC_URL_MAX], owner_dir[PATH_MAX], path[PATH_MAX + 8], tree[PATH_MAX + 8];
    size_t n = strlen(from);
    while (n && from[n - 1] == '/')
        n--;
    snprintf(url, sizeof url, "%.*s/%s/%s", (int)n, from, r.owner, r.repo);
    snprintf(owner_dir, sizeof owner_dir, "%s/%s", into, r.owner);
    snprintf(path, sizeof path, "%s/%s.git", owner_dir, r.repo);
    snprintf(tree, sizeof tree, "%s/%s", owner_dir, r.repo);
    struct stat st;
    if (stat(into, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "kiln actions pull: --into %s is not a directory\n", into);
        return KILN_EXIT_USAGE;
    }
    if (stat(tree, &st) == 0) {
        fprintf(stderr, "kiln actions pull: %s is there already (an operator's own copy): "
                        "update it with git, or remove it\n",
                tree);
        return KILN_EXIT_USAGE;
    }
    if (mkdir(owner_dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "kiln actions pull: cannot make %s: %s\n", owner_dir, strerror(errno));
        return KILN_EXIT_INFRA;
    }
    kiln_gitsrc_auth_t auth = {0};
    if (creds_file && creds_file[0]) {
        if (kiln_gitcreds_load(&creds, creds_file) != 0) {
            fprintf(stderr, "kiln actions pull: %s\n", kiln_error_last());
            return KILN_EXIT_USAGE;
        }
        kiln_gitcreds_for(creds, url, &auth);
    }
    git_oid commit;
    char full[KILN_GITSRC_REF_MAX], sha[GIT_OID_HEXSZ + 1];
    kiln_gitsrc_stats_t gs = {0};
    int rc = -1;
    if (kiln_gitsrc_init() != 0 || kiln_gitsrc_open_at(&m, path, url) != 0 ||
        (rc = kiln_gitsrc_want(m, r.ref, true, &auth, &commit, full, sizeof full, &gs)) != 0) {
        fprintf(stderr, "kiln actions pull: %s\n", kiln_error_last());
        code = rc == KILN_ENOTFOUND ? KILN_EXIT_USAGE : KILN_EXIT_INFRA;
        goto cleanup;
    }
    git_oid_tostr(sha, sizeof sha, &commit);
    printf("%s/%s@%s -> %s  (from %s into %s: %u objects, %llu bytes)\n", r.owner, r.repo, r.ref,
           sha, url, path, gs.objects, (unsigned long long)gs.bytes);
    code = 0;
cleanup:
    kiln_gitsrc_destroy(&m);
    kiln_gitcreds_destroy(&creds);
    return code;
}



/* One repository's tags and branches, each with the commit it names. */
static void s_list_repo(const char *owner, const char *name, const char *path)
{
    git_repository *repo = NULL;
    git_reference_iterator *it = NULL;
    git_reference *ref;
    size_t len = strlen(name);
    int shown = 0;
    printf("%s/%.*s\n", owner, (int)(len > 4 && strcmp(name + len - 4, ".git") == 0 ? len - 4 : len),
           name);
    if (git_repository_open_ext(&repo, path, GIT_REPOSITORY_OPEN_NO_SEARCH, NULL) != 0) {
        printf("  (not a git repository: %s)\n", kiln_gitsrc_error());
        return;
    }
    if (git_reference_iterator_new(&it, repo) == 0) {
        while (git_reference_next(&ref, it) == 0) {
            const char *full = git_reference_name(ref);
            git_object *target = NULL;
            bool tag = strncmp(full, "refs/tags/", 10) == 0;
            bool head = strncmp(full, "refs/heads/", 11) == 0;
            if ((tag || head) && git_reference_peel(&target, ref, GIT_OBJECT_COMMIT) == 0) {
                char sha[GIT_OID_HEXSZ + 1];
                git_oid_tostr(sha, sizeof sha, git_object_id(target));
                printf("  %-7s %-30s %s\n", tag ? "tag" : "branch", full + (tag ? 10 : 11), sha);
                shown++;
            }
            git_object_free(target);
            git_reference_free(ref);
        }
        git_reference_iterator_free(it);
    }
    if (!shown)
        printf("  (no branches or tags)\n");
    git_repository_free(repo);
}

static int s_list(const char *dir)
{
    size_t no = 0, shown = 0;
    char **owners;
    kiln_fs_names(dir, 1, &owners, &no);
    if (kiln_gitsrc_init() != 0) {
        fprintf(stderr, "kiln actions list: %s\n", kiln_error_last());
        return KILN_EXIT_INFRA;
    }
    for (size_t i = 0; i < no; i++) {
        char od[PATH_MAX];
        size_t nr = 0;
        char **repos;
        snprintf(od, sizeof od, "%s/%s", dir, owners[i]);
        kiln_fs_names(od, 1, &repos, &nr);
        for (size_t k = 0; k < nr; k++) {
            char rp[PATH_MAX * 2];
            snprintf(rp, sizeof rp, "%s/%s", od, repos[k]);
            s_list_repo(owners[i], repos[k], rp);
            shown++;
        }
        kiln_fs_names_free(repos, nr);
    }
    kiln_fs_names_free(owners, no);
    if (!shown)
        printf("(no OWNER/REPO repositories in %s)\n", dir);
    return 0;
}

/* The farm's word: its sources and every commit its history ran. */
static void s_render_farm(json_t *doc)
{
    size_t i;
    json_t *v;
    printf("sources:%s\n", json_array_size(json_object_get(doc, "sources")) ? "" : " none");
    json_array_foreach(json_object_get(doc, "sources"), i, v) printf("  %s\n", json_string_value(v));
    if (json_is_true(json_object_get(doc, "require_sha")))
        printf("policy: actions pinned by a full commit SHA only (--actions-require-sha)\n");
    json_t *used = json_object_get(doc, "actions");
    if (!json_array_size(used)) {
        printf("no remote actions in the history yet\n");
        return;
    }
    printf("%-44s %-12s %6s %8s  %s\n", "USES", "COMMIT", "RUNS", "LAST RUN", "FROM");
    json_array_foreach(used, i, v) {
        printf("%-44s %-12.12s %6lld %8lld  %s\n", json_string_value(json_object_get(v, "uses")),
               json_string_value(json_object_get(v, "sha")),
               (long long)json_integer_value(json_object_get(v, "runs")),
               (long long)json_integer_value(json_object_get(v, "last_run")),
               json_string_value(json_object_get(v, "url")));
    }
}

int kiln_cmd_actions(int argc, char **argv)
{
    const char *from = NULL, *into = NULL, *dir = NULL, *creds = NULL;
    kiln_cli_common_t c = {0};
    int npos = 0;
    kiln_opt_t opts[] = {
        KILN_CLI_TARGET_OPTS(c),
        {"json", KILN_OPT_BOOL, &c.json, "list from the farm: print JSON"},
        {"from", KILN_OPT_STRING, &from, "the base URL OWNER/REPO is fetched under (" S_DEFAULT_FROM ")"},
        {"into", KILN_OPT_STRING, &into, "pull: the directory of OWNER/REPO repositories to fill"},
        {"dir", KILN_OPT_STRING, &dir,
         "list: the directory of OWNER/REPO repositories to read (default: ask the farm)"},
        {"git-credentials", KILN_OPT_STRING, &creds,
         "FILE of 'URL-PREFIX token TOKEN' / 'URL-PREFIX ssh-key KEYFILE [USER]' lines"},
        {NULL, 0, NULL, NULL},
    };
    static const char usage[] = "pull OWNER/REPO@REF --into DIR [--from URL] | list [--dir DIR]";
    int rc = kiln_opts_parse(opts, argc, argv, 2, &npos);
    const char *sub = npos >= 1 ? argv[2] : "";
    bool pull = strcmp(sub, "pull") == 0 && npos == 2, list = strcmp(sub, "list") == 0 && npos == 1;
    if (rc == 0 && !pull && !list)
        kiln_error_set("expected: pull OWNER/REPO@REF, or list");
    else if (rc == 0 && pull && !(into && into[0]))
        kiln_error_set("pull needs --into DIR: the directory of OWNER/REPO repositories to fill");
    else if (rc == 0 && list && !(dir && dir[0])) {
        Kiln__Request req = KILN__REQUEST__INIT;
        req.kind = KILN__REQUEST_KIND__REQ_ACTIONS;
        return kiln_cli_query(&c, &req, s_render_farm);
    } else if (rc == 0)
        return pull ? s_pull(argv[3], from && from[0] ? from : S_DEFAULT_FROM, into, creds)
                    : s_list(dir);
    return kiln_cli_usage_error("actions", usage, opts, rc ? rc : -1);
}
