/* checkout.c: actions/checkout on the worker with libgit2 (see checkout.h).
 *
 * The order of the work: what to check out (repository, URL, ref), the
 * mirror brought up to date only when it lacks the commit or a moving ref
 * was asked for, the destination emptied (clean), a repository made there
 * that borrows the mirror's objects, its refs (the branch checked out as
 * GitHub's does: a local branch and origin/<branch>; all branches and tags
 * for fetch-depth 0, tags for fetch-tags), the shallow boundary, the files
 * (all, or a sparse set with the rest marked skip-worktree), then the
 * submodules the same way, each from a mirror of its own.
 *
 * One file past the house's 1,200 lines on purpose: these steps share the
 * checkout's state (the options, the mirror, the destination repository)
 * and run in this one order; the remote actions' download
 * (kiln_checkout_action) is the seam along which it would split next.
 */
#include "worker/checkout.h"

#include <dirent.h>
#include <errno.h>
#include <fnmatch.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/error.h"
#include "common/fs.h"
#include "common/gitsrc.h"

/* Submodules nest at most this deep (recursive), and a tree may name at
 * most this many. */
#define S_SUBMODULE_DEPTH 8
#define S_SUBMODULES_MAX 256
/* Patterns of sparse-checkout, and the commits a shallow walk visits. */
#define S_SPARSE_MAX 256
#define S_SHALLOW_WALK_MAX 200000

typedef struct {
    bool fetch_tags, clean, lfs, persist, cone;
    long depth;     /* 0: all history */
    int submodules; /* 0 no, 1 top level, 2 recursive */
    const char *token, *ssh_key, *ssh_user;
    char *sparse[S_SPARSE_MAX];
    size_t n_sparse;
    kiln_gitsrc_auth_t auth;   /* the step's token or ssh-key */
    kiln_gitcreds_t *creds;    /* the farm's, for URLs the step gives none for */
    kiln_gitsrc_stats_t stats; /* every mirror's fetches, added up */
    const char *cache_dir;
    const char *job_dir; /* the job's directory (the workspace's parent) */
    FILE *log;
} s_ctx_t;

static const char *s_or(const char *v, const char *def)
{
    return v && v[0] ? v : def;
}

static int s_bool(const char *name, const char *text, bool def, bool *out)
{
    if (!text || !text[0])
        *out = def;
    else if (strcasecmp(text, "true") == 0)
        *out = true;
    else if (strcasecmp(text, "false") == 0)
        *out = false;
    else {
        kiln_error_set("input '%s' must be true or false, not '%.64s'", name, text);
        return -1;
    }
    return 0;
}

static int s_inputs(s_ctx_t *c, const kiln_checkout_opts_t *o)
{
    if (s_bool("fetch-tags", o->fetch_tags, false, &c->fetch_tags) ||
        s_bool("clean", o->clean, true, &c->clean) || s_bool("lfs", o->lfs, false, &c->lfs) ||
        s_bool("persist-credentials", o->persist_credentials, true, &c->persist) ||
        s_bool("sparse-checkout-cone-mode", o->sparse_cone, true, &c->cone))
        return -1;
    const char *d = s_or(o->fetch_depth, "1");
    char *end;
    errno = 0;
    c->depth = strtol(d, &end, 10);
    if (errno || *end || c->depth < 0) {
        kiln_error_set("input 'fetch-depth' must be a number of commits (0: all), not '%.64s'", d);
        return -1;
    }
    const char *sm = s_or(o->submodules, "false");
    if (strcasecmp(sm, "false") == 0)
        c->submodules = 0;
    else if (strcasecmp(sm, "true") == 0)
        c->submodules = 1;
    else if (strcasecmp(sm, "recursive") == 0)
        c->submodules = 2;
    else {
        kiln_error_set("input 'submodules' must be true, false or recursive, not '%.64s'", sm);
        return -1;
    }
    if (c->lfs) {
        kiln_error_set("input 'lfs: true': Kiln's checkout does not fetch Git LFS objects; "
                       "run `git lfs pull` in a later step on a worker with git-lfs installed");
        return -1;
    }
    if (o->filter && o->filter[0]) {
        kiln_error_set("input 'filter: %.64s': Kiln's checkout makes no partial clones; the "
                       "worker's mirror holds whole objects (use sparse-checkout for fewer files)",
                       o->filter);
        return -1;
    }
    /* One pattern per line, as GitHub's input is written. */
    const char *s = o->sparse_checkout ? o->sparse_checkout : "";
    while (*s) {
        size_t len = strcspn(s, "\n");
        const char *line = s;
        s += len + (s[len] == '\n');
        while (len && (line[0] == ' ' || line[0] == '\t'))
            line++, len--;
        while (len && (line[len - 1] == ' ' || line[len - 1] == '\t' || line[len - 1] == '\r'))
            len--;
        if (!len || line[0] == '#')
            continue;
        if (c->n_sparse == S_SPARSE_MAX) {
            kiln_error_set("input 'sparse-checkout' has more than %d patterns", S_SPARSE_MAX);
            return -1;
        }
        if (!(c->sparse[c->n_sparse] = strndup(line, len))) {
            kiln_error_set("out of memory");
            return -1;
        }
        c->n_sparse++;
    }
    c->auth.token = o->token;
    c->auth.ssh_key = o->ssh_key;
    c->auth.ssh_user = o->ssh_user;
    return 0;
}

/* ------------------------------------------------------------- files */

static int s_write_file(const char *path, const char *text, const char *mode)
{
    FILE *f = fopen(path, mode);
    if (!f) {
        kiln_error_errno("cannot write %s", path);
        return -1;
    }
    bool ok = fputs(text, f) >= 0;
    ok = fclose(f) == 0 && ok;
    if (!ok) {
        kiln_error_errno("cannot write %s", path);
        return -1;
    }
    return 0;
}

/* Empties dir, keeping the directory itself (the step's working directory
 * may be inside the workspace's tree). */
static int s_empty_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return errno == ENOENT ? 0 : (kiln_error_errno("cannot open %s", dir), -1);
    int rc = 0;
    struct dirent *e;
    char path[PATH_MAX];
    while (rc == 0 && (e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        rc = kiln_fs_rmtree(path);
    }
    closedir(d);
    return rc;
}

static int s_mkdirs(const char *path)
{
    char buf[PATH_MAX];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST) {
            kiln_error_errno("cannot make %s", buf);
            return -1;
        }
        *p = '/';
    }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST) {
        kiln_error_errno("cannot make %s", buf);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------- the shallow file */

typedef struct {
    git_oid *slots;
    bool *used;
    size_t cap, n;
} s_oidset_t;

static bool s_oidset_add(s_oidset_t *s, const git_oid *id)
{
    size_t h;
    memcpy(&h, id->id, sizeof h);
    for (size_t i = h % s->cap;; i = (i + 1) % s->cap) {
        if (!s->used[i]) {
            s->used[i] = true;
            git_oid_cpy(&s->slots[i], id);
            s->n++;
            return true;
        }
        if (git_oid_equal(&s->slots[i], id))
            return false;
    }
}

/* Writes GITDIR/shallow: the commits at depth whose parents a clone of
 * that depth would not have. */
static int s_write_shallow(git_repository *repo, const git_oid *tip, long depth)
{
    int rc = -1;
    s_oidset_t seen = {.cap = 2 * S_SHALLOW_WALK_MAX + 1};
    git_oid *level = NULL, *next = NULL;
    size_t n_level = 1, n_next = 0;
    char *text = NULL;
    size_t text_len = 0, text_cap = 0;
    seen.slots = calloc(seen.cap, sizeof *seen.slots);
    seen.used = calloc(seen.cap, sizeof *seen.used);
    level = malloc(sizeof *level);
    if (!seen.slots || !seen.used || !level) {
        kiln_error_set("out of memory");
        goto cleanup;
    }
    git_oid_cpy(&level[0], tip);
    s_oidset_add(&seen, tip);
    for (long d = 1; n_level > 0; d++) {
        free(next);
        next = NULL;
        n_next = 0;
        size_t cap_next = 0;
        for (size_t i = 0; i < n_level; i++) {
            git_commit *c = NULL;
            if (git_commit_lookup(&c, repo, &level[i]) < 0) {
                kiln_error_set("commit %s: %s", git_oid_tostr_s(&level[i]), kiln_gitsrc_error());
                goto cleanup;
            }
            unsigned np = git_commit_parentcount(c);
            if (d == depth && np > 0) {
                if (text_len + GIT_OID_HEXSZ + 2 > text_cap) {
                    text_cap = text_cap ? text_cap * 2 : 4096;
                    char *g = realloc(text, text_cap);
                    if (!g) {
                        git_commit_free(c);
                        kiln_error_set("out of memory");
                        goto cleanup;
                    }
                    text = g;
                }
                git_oid_fmt(text + text_len, &level[i]);
                text_len += GIT_OID_HEXSZ;
                text[text_len++] = '\n';
                text[text_len] = '\0';
            } else if (d < depth) {
                for (unsigned p = 0; p < np; p++) {
                    const git_oid *pid = git_commit_parent_id(c, p);
                    if (seen.n >= S_SHALLOW_WALK_MAX || !s_oidset_add(&seen, pid))
                        continue;
                    if (n_next == cap_next) {
                        cap_next = cap_next ? cap_next * 2 : 16;
                        git_oid *g = realloc(next, cap_next * sizeof *g);
                        if (!g) {
                            git_commit_free(c);
                            kiln_error_set("out of memory");
                            goto cleanup;
                        }
                        next = g;
                    }
                    git_oid_cpy(&next[n_next++], pid);
                }
            }
            git_commit_free(c);
        }
        if (d >= depth)
            break;
        git_oid *t = level;
        level = next;
        n_level = n_next;
        next = t;
    }
    rc = 0;
    if (text) {
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%sshallow", git_repository_path(repo));
        rc = s_write_file(path, text, "w");
    }
cleanup:
    free(seen.slots);
    free(seen.used);
    free(level);
    free(next);
    free(text);
    return rc;
}

/* ------------------------------------------------------ sparse checkout */

/* Cone mode, as git's: every file at the top, everything under each
 * directory named, and the files directly inside each of its parents. */
static bool s_sparse_cone(const s_ctx_t *c, const char *path)
{
    const char *slash = strrchr(path, '/');
    size_t dir_len = slash ? (size_t)(slash - path) : 0;
    if (dir_len == 0)
        return true;
    for (size_t i = 0; i < c->n_sparse; i++) {
        const char *p = c->sparse[i];
        while (*p == '/')
            p++;
        size_t len = strlen(p);
        while (len && p[len - 1] == '/')
            len--;
        if (!len)
            return true;
        if (strncmp(path, p, len) == 0 && path[len] == '/')
            return true; /* under the directory */
        if (dir_len < len && strncmp(p, path, dir_len) == 0 && p[dir_len] == '/')
            return true; /* directly in one of its parents */
    }
    return false;
}

/* Non-cone mode: the patterns as .gitignore writes them, naming what to
 * include; a later '!' pattern excludes again. */
static bool s_sparse_patterns(const s_ctx_t *c, const char *path)
{
    bool in = false;
    for (size_t i = 0; i < c->n_sparse; i++) {
        const char *p = c->sparse[i];
        bool neg = p[0] == '!';
        if (neg)
            p++;
        char pat[PATH_MAX];
        snprintf(pat, sizeof pat, "%s", p);
        size_t len = strlen(pat);
        bool dir_only = len && pat[len - 1] == '/';
        if (dir_only)
            pat[--len] = '\0';
        bool anchored = strchr(pat, '/') != NULL;
        const char *q = pat[0] == '/' ? pat + 1 : pat;
        bool match = false;
        /* A pattern matches the path or any directory leading to it. */
        char prefix[PATH_MAX];
        snprintf(prefix, sizeof prefix, "%s", path);
        for (char *end = prefix + strlen(prefix);; ) {
            bool is_dir = end != prefix + strlen(path);
            const char *base = strrchr(prefix, '/');
            base = base ? base + 1 : prefix;
            if ((!dir_only || is_dir) &&
                fnmatch(q, anchored ? prefix : base, anchored ? FNM_PATHNAME : 0) == 0) {
                match = true;
                break;
            }
            char *s = strrchr(prefix, '/');
            if (!s)
                break;
            *s = '\0';
            end = s;
        }
        if (match)
            in = !neg;
    }
    return in;
}

typedef struct {
    const s_ctx_t *c;
    char **paths;
    size_t n, cap;
    git_index *index; /* excluded files are added here, skip-worktree */
    int err;
} s_walk_t;

static int s_walk_cb(const char *root, const git_tree_entry *entry, void *payload)
{
    s_walk_t *w = payload;
    if (git_tree_entry_type(entry) == GIT_OBJECT_TREE)
        return 0;
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s%s", root, git_tree_entry_name(entry));
    bool in = w->c->cone ? s_sparse_cone(w->c, path) : s_sparse_patterns(w->c, path);
    if (in) {
        if (w->n == w->cap) {
            size_t ncap = w->cap ? w->cap * 2 : 256;
            char **g = realloc(w->paths, ncap * sizeof *g);
            if (!g)
                return (w->err = -1);
            w->paths = g;
            w->cap = ncap;
        }
        if (!(w->paths[w->n] = strdup(path)))
            return (w->err = -1);
        w->n++;
        return 0;
    }
    git_index_entry ie;
    memset(&ie, 0, sizeof ie);
    ie.path = path;
    ie.mode = git_tree_entry_filemode(entry);
    git_oid_cpy(&ie.id, git_tree_entry_id(entry));
    ie.flags_extended = GIT_INDEX_ENTRY_SKIP_WORKTREE;
    if (git_index_add(w->index, &ie) < 0)
        return (w->err = -2);
    return 0;
}

static int s_sparse_files(s_ctx_t *c, git_repository *repo)
{
    char path[PATH_MAX], text[16384] = "";
    size_t used = 0;
    snprintf(path, sizeof path, "%sinfo", git_repository_path(repo));
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%sinfo/sparse-checkout", git_repository_path(repo));
    if (c->cone)
        used += (size_t)snprintf(text + used, sizeof text - used, "/*\n!/*/\n");
    for (size_t i = 0; i < c->n_sparse && used < sizeof text; i++) {
        const char *p = c->sparse[i];
        while (c->cone && *p == '/')
            p++;
        used += (size_t)snprintf(text + used, sizeof text - used, c->cone ? "/%s/\n" : "%s\n", p);
    }
    git_config *cfg = NULL;
    int rc = s_write_file(path, text, "w");
    if (rc == 0 && (git_repository_config(&cfg, repo) < 0 ||
                    git_config_set_bool(cfg, "core.sparseCheckout", 1) < 0 ||
                    git_config_set_bool(cfg, "core.sparseCheckoutCone", c->cone) < 0)) {
        kiln_error_set("sparse-checkout config: %s", kiln_gitsrc_error());
        rc = -1;
    }
    git_config_free(cfg);
    return rc;
}

/* ---------------------------------------------------------------- refs */

typedef struct {
    git_repository *dst;
    const char *from, *to; /* prefixes */
    int err;
} s_copy_t;

static int s_copy_ref(git_reference *ref, void *payload)
{
    s_copy_t *cp = payload;
    const char *name = git_reference_name(ref);
    const git_oid *id = git_reference_target(ref);
    char dst[KILN_GITSRC_REF_MAX * 2];
    if (id && strncmp(name, cp->from, strlen(cp->from)) == 0) {
        snprintf(dst, sizeof dst, "%s%s", cp->to, name + strlen(cp->from));
        git_reference *out = NULL;
        if (git_reference_create(&out, cp->dst, dst, id, 1, NULL) < 0)
            cp->err = -1;
        git_reference_free(out);
    }
    git_reference_free(ref);
    return cp->err;
}

static int s_copy_refs(git_repository *src, git_repository *dst, const char *from, const char *to)
{
    s_copy_t cp = {dst, from, to, 0};
    char glob[64];
    snprintf(glob, sizeof glob, "%s*", from);
    git_reference_iterator *it = NULL;
    git_reference *ref;
    int rc = git_reference_iterator_glob_new(&it, src, glob);
    while (rc == 0 && cp.err == 0 && git_reference_next(&ref, it) == 0)
        s_copy_ref(ref, &cp);
    git_reference_iterator_free(it);
    if (rc < 0 || cp.err) {
        kiln_error_set("cannot copy %s refs: %s", from, kiln_gitsrc_error());
        return -1;
    }
    return 0;
}

/* Points HEAD where GitHub's checkout leaves it: on a local branch for a
 * branch, detached for a tag, a commit or any other ref. */
static int s_refs(s_ctx_t *c, kiln_gitsrc_t *mirror, git_repository *repo, const char *full_ref,
                  const git_oid *commit, bool top)
{
    git_reference *r = NULL;
    git_repository *src = kiln_gitsrc_repo(mirror);
    char name[KILN_GITSRC_REF_MAX * 2];
    int rc = -1;
    if (top && (c->depth == 0 || c->fetch_tags) &&
        s_copy_refs(src, repo, "refs/tags/", "refs/tags/") != 0)
        goto cleanup;
    if (top && c->depth == 0 && s_copy_refs(src, repo, "refs/heads/", "refs/remotes/origin/") != 0)
        goto cleanup;
    if (strncmp(full_ref, "refs/heads/", 11) == 0) {
        const char *branch = full_ref + 11;
        snprintf(name, sizeof name, "refs/remotes/origin/%s", branch);
        if (git_reference_create(&r, repo, name, commit, 1, NULL) < 0)
            goto fail;
        git_reference_free(r);
        r = NULL;
        if (git_reference_create(&r, repo, full_ref, commit, 1, NULL) < 0 ||
            git_repository_set_head(repo, full_ref) < 0)
            goto fail;
    } else {
        if (strncmp(full_ref, "refs/tags/", 10) == 0) {
            git_reference *t = NULL;
            /* The tag object itself, so `git describe` sees an annotated
             * tag as one. */
            if (git_reference_lookup(&t, src, full_ref) == 0 && git_reference_target(t) &&
                git_reference_create(&r, repo, full_ref, git_reference_target(t), 1, NULL) < 0) {
                git_reference_free(t);
                goto fail;
            }
            git_reference_free(t);
        } else if (strncmp(full_ref, "refs/pull/", 10) == 0) {
            snprintf(name, sizeof name, "refs/remotes/pull/%s", full_ref + 10);
            if (git_reference_create(&r, repo, name, commit, 1, NULL) < 0)
                goto fail;
        }
        if (git_repository_set_head_detached(repo, commit) < 0)
            goto fail;
    }
    rc = 0;
    goto cleanup;
fail:
    kiln_error_set("cannot set the refs of %s: %s", git_repository_workdir(repo),
                   kiln_gitsrc_error());
cleanup:
    git_reference_free(r);
    return rc;
}

/* --------------------------------------------------------- one repository */

static int s_checkout_repo(s_ctx_t *c, const char *url, const char *ref, const char *ref_name,
                           const char *dest, const char *gitdir, int level, char *sha_out,
                           char *ref_out, size_t ref_cap);

typedef struct {
    char name[256], path[PATH_MAX], url[KILN_GITSRC_URL_MAX];
    git_oid id;
} s_sub_t;

typedef struct {
    s_sub_t *subs;
    size_t n;
    int err;
} s_subs_t;

/* Submodules are read from .gitmodules with git_config_foreach rather
 * than git_submodule_foreach: the latter (libgit2 1.5) leaks the match
 * data of the regular expressions it runs over the file. */
static s_sub_t *s_sub_named(s_subs_t *s, const char *name, size_t len)
{
    for (size_t i = 0; i < s->n; i++)
        if (strlen(s->subs[i].name) == len && memcmp(s->subs[i].name, name, len) == 0)
            return &s->subs[i];
    if (s->n == S_SUBMODULES_MAX) {
        kiln_error_set("more than %d submodules", S_SUBMODULES_MAX);
        return NULL;
    }
    if (len >= sizeof s->subs[0].name) {
        kiln_error_set("a submodule's name is longer than %zu bytes", sizeof s->subs[0].name - 1);
        return NULL;
    }
    s_sub_t *t = &s->subs[s->n++];
    memcpy(t->name, name, len);
    t->name[len] = '\0';
    return t;
}

static int s_sub_entry(const git_config_entry *e, void *payload)
{
    s_subs_t *s = payload;
    if (strncmp(e->name, "submodule.", 10) != 0)
        return 0;
    const char *name = e->name + 10, *dot = strrchr(name, '.');
    if (!dot || dot == name)
        return 0;
    bool is_path = strcmp(dot, ".path") == 0, is_url = strcmp(dot, ".url") == 0;
    if (!is_path && !is_url)
        return 0;
    s_sub_t *t = s_sub_named(s, name, (size_t)(dot - name));
    if (!t)
        return (s->err = -1);
    char *field = is_path ? t->path : t->url;
    size_t cap = is_path ? sizeof t->path : sizeof t->url;
    if (snprintf(field, cap, "%s", e->value ? e->value : "") >= (int)cap) {
        kiln_error_set("submodule %s: %s is longer than %zu bytes", t->name, dot + 1, cap - 1);
        return (s->err = -1);
    }
    return 0;
}

/* A relative submodule url ("../lib.git", "./x") is relative to the url
 * the superproject came from, as git resolves it. */
static int s_sub_url(const char *super, const char *url, char *out, size_t cap)
{
    if (strncmp(url, "./", 2) != 0 && strncmp(url, "../", 3) != 0) {
        if (snprintf(out, cap, "%s", url) >= (int)cap)
            goto too_long;
        return 0;
    }
    char base[KILN_GITSRC_URL_MAX];
    if (snprintf(base, sizeof base, "%s", super) >= (int)sizeof base)
        goto too_long;
    size_t n = strlen(base);
    while (n && base[n - 1] == '/')
        base[--n] = '\0';
    for (;;) {
        if (strncmp(url, "./", 2) == 0) {
            url += 2;
        } else if (strncmp(url, "../", 3) == 0) {
            url += 3;
            char *cut = strrchr(base, '/');
            char *colon = strrchr(base, ':');
            if (colon && (!cut || colon > cut) && strstr(base, "://") == NULL)
                cut = colon; /* host:path */
            if (!cut || cut == base || (cut > base && cut[-1] == '/')) {
                kiln_error_set("the submodule url '%s' climbs above %s", url, super);
                return -1;
            }
            *cut = '\0';
        } else {
            break;
        }
    }
    const char *sep = base[strlen(base) - 1] == ':' ? "" : "/";
    if (snprintf(out, cap, "%s%s%s", base, sep, url) >= (int)cap)
        goto too_long;
    return 0;
too_long:
    kiln_error_set("the submodule url '%s' is longer than %zu bytes", url, cap - 1);
    return -1;
}

static int s_submodules(s_ctx_t *c, git_repository *repo, const char *super_url, const char *dest,
                        int level)
{
    int rc = -1;
    s_subs_t s = {calloc(S_SUBMODULES_MAX, sizeof(s_sub_t)), 0, 0};
    git_config *cfg = NULL, *mods = NULL;
    git_tree *head = NULL;
    if (!s.subs) {
        kiln_error_set("out of memory");
        return -1;
    }
    char modules[PATH_MAX];
    snprintf(modules, sizeof modules, "%s/.gitmodules", dest);
    if (access(modules, F_OK) != 0) {
        rc = 0;
        goto cleanup;
    }
    if (git_config_open_ondisk(&mods, modules) < 0 || git_config_foreach(mods, s_sub_entry, &s) < 0 ||
        s.err) {
        if (!s.err)
            kiln_error_set("%s: %s", modules, kiln_gitsrc_error());
        goto cleanup;
    }
    if (git_revparse_single((git_object **)&head, repo, "HEAD^{tree}") < 0) {
        kiln_error_set("the tree of %s: %s", dest, kiln_gitsrc_error());
        goto cleanup;
    }
    /* Only those the commit has as a gitlink are checked out, as git does. */
    size_t kept = 0;
    for (size_t i = 0; i < s.n; i++) {
        s_sub_t *t = &s.subs[i];
        git_tree_entry *e = NULL;
        if (!t->path[0] || !t->url[0] || git_tree_entry_bypath(&e, head, t->path) < 0 ||
            git_tree_entry_filemode(e) != GIT_FILEMODE_COMMIT) {
            git_tree_entry_free(e);
            git_error_clear();
            continue;
        }
        git_oid_cpy(&t->id, git_tree_entry_id(e));
        git_tree_entry_free(e);
        char resolved[KILN_GITSRC_URL_MAX];
        if (s_sub_url(super_url, t->url, resolved, sizeof resolved) != 0) {
            char why[KILN_ERROR_MAX];
            snprintf(why, sizeof why, "%s", kiln_error_last());
            kiln_error_set("submodule %s: %s", t->name, why);
            goto cleanup;
        }
        snprintf(t->url, sizeof t->url, "%s", resolved);
        if (kept != i)
            s.subs[kept] = *t;
        kept++;
    }
    s.n = kept;
    if (s.n && git_repository_config(&cfg, repo) < 0) {
        kiln_error_set("config of %s: %s", dest, kiln_gitsrc_error());
        goto cleanup;
    }
    for (size_t i = 0; i < s.n; i++) {
        char sub_dest[PATH_MAX], sub_gitdir[PATH_MAX], key[600], sha[GIT_OID_HEXSZ + 1];
        char ignored[KILN_GITSRC_REF_MAX];
        snprintf(sub_dest, sizeof sub_dest, "%s/%s", dest, s.subs[i].path);
        snprintf(sub_gitdir, sizeof sub_gitdir, "%smodules/%s", git_repository_path(repo),
                 s.subs[i].name);
        git_oid_tostr(sha, sizeof sha, &s.subs[i].id);
        fprintf(c->log, "Submodule '%s' (%s) at %s\n", s.subs[i].path, s.subs[i].url, sha);
        snprintf(key, sizeof key, "submodule.%s.url", s.subs[i].name);
        if (git_config_set_string(cfg, key, s.subs[i].url) < 0) {
            kiln_error_set("config of %s: %s", dest, kiln_gitsrc_error());
            goto cleanup;
        }
        snprintf(key, sizeof key, "submodule.%s.active", s.subs[i].name);
        if (git_config_set_bool(cfg, key, 1) < 0) {
            kiln_error_set("config of %s: %s", dest, kiln_gitsrc_error());
            goto cleanup;
        }
        if (s_checkout_repo(c, s.subs[i].url, sha, "", sub_dest, sub_gitdir, level + 1, sha,
                            ignored, sizeof ignored) != 0) {
            char why[KILN_ERROR_MAX];
            snprintf(why, sizeof why, "%s", kiln_error_last());
            kiln_error_set("submodule '%s': %s", s.subs[i].path, why);
            goto cleanup;
        }
    }
    rc = 0;
cleanup:
    git_tree_free(head);
    git_config_free(mods);
    git_config_free(cfg);
    free(s.subs);
    return rc;
}

/* --------------------------------------------------------- warm trees */

/* A worker keeps up to this many work trees of each repository between
 * jobs, in MIRROR.trees/t<N>. */
#define S_TREES_MAX 4

/* Takes a kept work tree of the mirror's repository into dest (an empty
 * directory): rename(2) of a whole tree, so two slots never take the same
 * one and nothing is copied. */
static bool s_take_tree(kiln_gitsrc_t *mirror, const char *dest)
{
    char tree[PATH_MAX + 64];
    for (int k = 0; k < S_TREES_MAX; k++) {
        snprintf(tree, sizeof tree, "%s.trees/t%d", kiln_gitsrc_path(mirror), k);
        if (rename(tree, dest) == 0)
            return true;
        if (errno == ENOTEMPTY || errno == EEXIST)
            return false; /* dest holds something: not ours to replace */
    }
    return false;
}

/* A kept tree's .git is made anew but for its index (the stat data that
 * makes the next checkout cheap) and its borrowed objects: the job that
 * used it could have changed its config, hooks or refs. */
static int s_strip_git(const char *dest)
{
    static const char *const drop[] = {"config", "hooks", "refs", "packed-refs", "shallow",
                                       "logs", "info", "FETCH_HEAD", "ORIG_HEAD", "modules",
                                       "HEAD"};
    char path[PATH_MAX + 64];
    for (size_t i = 0; i < sizeof drop / sizeof drop[0]; i++) {
        snprintf(path, sizeof path, "%s/.git/%s", dest, drop[i]);
        if (kiln_fs_rmtree(path) != 0)
            return -1;
    }
    return 0;
}

/* Says where the job's work tree of this repository is, for the worker to
 * keep it when the job ends (worker/workspace.c): a line "DEST\tTREES" in
 * the job's directory's `checkouts` file. */
static int s_record_tree(s_ctx_t *c, kiln_gitsrc_t *mirror, const char *dest)
{
    char path[PATH_MAX + 32], line[2 * PATH_MAX + 80];
    if (!c->job_dir || !c->job_dir[0])
        return 0;
    snprintf(path, sizeof path, "%s/checkouts", c->job_dir);
    snprintf(line, sizeof line, "%s\t%s.trees\n", dest, kiln_gitsrc_path(mirror));
    return s_write_file(path, line, "a");
}

/* Checks ref of url out into dest (its git directory dest/.git, or gitdir
 * for a submodule). ref_name is the ref a commit was asked for by (the
 * run's GITHUB_REF), "" when ref says it all. The commit's id goes to
 * sha_out (41 bytes), the ref it was reached by to ref_out. */
static int s_checkout_repo(s_ctx_t *c, const char *url, const char *ref, const char *ref_name,
                           const char *dest, const char *gitdir, int level, char *sha_out,
                           char *ref_out, size_t ref_cap)
{
    int rc = -1;
    kiln_gitsrc_t *mirror = NULL;
    git_repository *repo = NULL;
    git_commit *commit_obj = NULL;
    git_tree *tree = NULL;
    git_index *index = NULL;
    git_config *cfg = NULL;
    s_walk_t walk = {.c = c};
    git_oid commit;
    char full_ref[KILN_GITSRC_REF_MAX], path[PATH_MAX + 64];
    kiln_gitsrc_stats_t st = {0};
    if (level > S_SUBMODULE_DEPTH) {
        kiln_error_set("submodules nest more than %d deep", S_SUBMODULE_DEPTH);
        goto cleanup;
    }
    if (kiln_gitsrc_open(&mirror, c->cache_dir, url) != 0)
        goto cleanup;
    /* The step's own token or key, else the farm's for this URL. */
    kiln_gitsrc_auth_t auth = c->auth;
    if (!(auth.token && auth.token[0]) && !(auth.ssh_key && auth.ssh_key[0]))
        kiln_gitcreds_for(c->creds, url, &auth);
    if (ref[0]) {
        if (kiln_gitsrc_want(mirror, ref, true, &auth, &commit, full_ref, sizeof full_ref, &st) != 0)
            goto cleanup;
        /* All branches and tags (fetch-depth 0, fetch-tags) are the
         * remote's as they are now, even when the commit needed none. */
        if (level == 0 && (c->depth == 0 || c->fetch_tags) && !st.fetched &&
            kiln_gitsrc_fetch(mirror, NULL, 0, &auth, &st) != 0)
            goto cleanup;
    } else {
        /* Another repository without a ref: its default branch, as the
         * remote's HEAD names it now. */
        if (kiln_gitsrc_fetch(mirror, NULL, 0, &auth, &st) != 0)
            goto cleanup;
        const char *def = kiln_gitsrc_default_branch(mirror);
        if (!def[0]) {
            kiln_error_set("%s names no default branch; give the checkout a ref", url);
            goto cleanup;
        }
        if (kiln_gitsrc_resolve(mirror, def, &commit, full_ref, sizeof full_ref) != 0)
            goto cleanup;
    }
    /* A commit asked for by id keeps the ref the run names it by, so the
     * branch checked out is the run's. */
    if (!full_ref[0] && ref_name && ref_name[0])
        snprintf(full_ref, sizeof full_ref, "%s", ref_name);
    git_oid_tostr(sha_out, GIT_OID_HEXSZ + 1, &commit);
    snprintf(ref_out, ref_cap, "%s", full_ref);
    if (st.fetched)
        fprintf(c->log, "Fetched %s: %u objects, %llu bytes\n", url, st.objects,
                (unsigned long long)st.bytes);
    else
        fprintf(c->log, "The worker's mirror of %s has %.12s: nothing fetched\n", url, sha_out);
    c->stats.objects += st.objects;
    c->stats.bytes += st.bytes;
    c->stats.fetched = c->stats.fetched || st.fetched;

    /* The destination: emptied unless clean is false; or, on a warm
     * worker, a work tree an earlier job of this repository left (see
     * s_take_tree), whose files that did not change stay as they are. */
    if (s_mkdirs(dest) != 0)
        goto cleanup;
    bool reused = level == 0 && c->clean && c->n_sparse == 0 && !c->submodules &&
                  s_take_tree(mirror, dest);
    if (reused) {
        if (s_strip_git(dest) != 0)
            goto cleanup;
    } else if (level == 0 && c->clean) {
        if (s_empty_dir(dest) != 0)
            goto cleanup;
    } else {
        snprintf(path, sizeof path, "%s/.git", dest);
        if (kiln_fs_rmtree(path) != 0)
            goto cleanup;
    }
    git_repository_init_options io;
    git_repository_init_options_init(&io, GIT_REPOSITORY_INIT_OPTIONS_VERSION);
    io.flags = GIT_REPOSITORY_INIT_MKPATH;
    io.initial_head = "kiln-unborn";
    const char *repo_path = dest;
    if (gitdir) {
        io.flags |= GIT_REPOSITORY_INIT_NO_DOTGIT_DIR | GIT_REPOSITORY_INIT_RELATIVE_GITLINK;
        io.workdir_path = dest;
        repo_path = gitdir;
        if (kiln_fs_rmtree(gitdir) != 0)
            goto cleanup;
    }
    if (git_repository_init_ext(&repo, repo_path, &io) < 0) {
        kiln_error_set("cannot make a repository in %s: %s", dest, kiln_gitsrc_error());
        goto cleanup;
    }
    /* The mirror's objects, borrowed; then opened again so the object
     * database reads them. */
    snprintf(path, sizeof path, "%sobjects/info/alternates", git_repository_path(repo));
    char alt[PATH_MAX + 16];
    snprintf(alt, sizeof alt, "%s/objects\n", kiln_gitsrc_path(mirror));
    if (s_write_file(path, alt, "w") != 0)
        goto cleanup;
    git_repository_free(repo);
    repo = NULL;
    if (git_repository_open(&repo, dest) < 0) {
        kiln_error_set("cannot open %s: %s", dest, kiln_gitsrc_error());
        goto cleanup;
    }
    if (kiln_gitsrc_set_origin(repo, url, "+refs/heads/*:refs/remotes/origin/*") != 0) {
        kiln_error_set("cannot add the remote %s in %s: %s", url, dest, kiln_gitsrc_error());
        goto cleanup;
    }
    if (level == 0 && c->persist && c->auth.token && c->auth.token[0]) {
        /* As GitHub's checkout leaves it: later git commands in the job
         * authenticate with the token, which stays in this job's .git. */
        char key[KILN_GITSRC_URL_MAX + 32];
        char cred[512], b64[800], header[900];
        snprintf(cred, sizeof cred, "x-access-token:%s", c->auth.token);
        static const char tbl[] =
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        size_t n = strlen(cred), o = 0;
        for (size_t i = 0; i < n && o + 5 < sizeof b64; i += 3) {
            unsigned v = (unsigned char)cred[i] << 16 |
                         (i + 1 < n ? (unsigned char)cred[i + 1] << 8 : 0) |
                         (i + 2 < n ? (unsigned char)cred[i + 2] : 0);
            b64[o++] = tbl[v >> 18 & 63];
            b64[o++] = tbl[v >> 12 & 63];
            b64[o++] = i + 1 < n ? tbl[v >> 6 & 63] : '=';
            b64[o++] = i + 2 < n ? tbl[v & 63] : '=';
        }
        b64[o] = '\0';
        snprintf(header, sizeof header, "AUTHORIZATION: basic %s", b64);
        snprintf(key, sizeof key, "http.%s.extraheader", url);
        if (git_repository_config(&cfg, repo) < 0 || git_config_set_string(cfg, key, header) < 0) {
            kiln_error_set("cannot keep the credentials in %s: %s", dest, kiln_gitsrc_error());
            goto cleanup;
        }
    }
    if (s_refs(c, mirror, repo, full_ref, &commit, level == 0) != 0)
        goto cleanup;
    if (c->depth > 0 && s_write_shallow(repo, &commit, c->depth) != 0)
        goto cleanup;
    if (git_commit_lookup(&commit_obj, repo, &commit) < 0 || git_commit_tree(&tree, commit_obj) < 0) {
        kiln_error_set("commit %s: %s", sha_out, kiln_gitsrc_error());
        goto cleanup;
    }
    git_checkout_options co;
    git_checkout_options_init(&co, GIT_CHECKOUT_OPTIONS_VERSION);
    co.checkout_strategy = GIT_CHECKOUT_FORCE;
    git_index *baseline = NULL;
    if (reused) {
        /* What the tree held is what its index says (with the files'
         * stat data): only what differs from the commit is written, and
         * everything else (build output, ignored files) goes, as `git
         * clean -ffdx` would. */
        co.checkout_strategy |= GIT_CHECKOUT_REMOVE_UNTRACKED | GIT_CHECKOUT_REMOVE_IGNORED;
        if (git_repository_index(&baseline, repo) == 0)
            co.baseline_index = baseline;
    }
    bool sparse = level == 0 && c->n_sparse > 0;
    if (sparse) {
        if (git_repository_index(&index, repo) < 0) {
            kiln_error_set("index of %s: %s", dest, kiln_gitsrc_error());
            goto cleanup;
        }
        walk.index = index;
        if (git_tree_walk(tree, GIT_TREEWALK_PRE, s_walk_cb, &walk) < 0 || walk.err) {
            kiln_error_set("sparse checkout of %s: %s", dest,
                           walk.err == -1 ? "out of memory" : kiln_gitsrc_error());
            goto cleanup;
        }
        co.paths.strings = walk.paths;
        co.paths.count = walk.n;
        co.checkout_strategy |= GIT_CHECKOUT_DISABLE_PATHSPEC_MATCH;
        if (walk.n == 0)
            co.checkout_strategy = GIT_CHECKOUT_NONE;
    }
    int crc = git_checkout_tree(repo, (git_object *)commit_obj, &co);
    git_index_free(baseline);
    if (crc < 0) {
        kiln_error_set("cannot check %.12s out into %s: %s", sha_out, dest, kiln_gitsrc_error());
        goto cleanup;
    }
    if (level == 0) {
        fprintf(c->log, "%s\n", reused ? "Work tree: an earlier job's, brought to this commit"
                                       : "Work tree: written afresh");
        /* Only a whole tree without submodules is kept: a sparse one's
         * index and a submodule's nested repositories would not come back
         * clean. */
        if (c->n_sparse == 0 && !c->submodules && s_record_tree(c, mirror, dest) != 0)
            goto cleanup;
    }
    if (sparse) {
        /* The files left out stay in the index, marked skip-worktree, so
         * git status shows them as git's own sparse checkout does. */
        git_index_free(index);
        index = NULL;
        if (git_repository_index(&index, repo) < 0 || git_index_read(index, 1) < 0) {
            kiln_error_set("index of %s: %s", dest, kiln_gitsrc_error());
            goto cleanup;
        }
        walk.index = index;
        for (size_t i = 0; i < walk.n; i++)
            free(walk.paths[i]);
        walk.n = 0;
        if (git_tree_walk(tree, GIT_TREEWALK_PRE, s_walk_cb, &walk) < 0 || walk.err ||
            git_index_write(index) < 0) {
            kiln_error_set("index of %s: %s", dest, kiln_gitsrc_error());
            goto cleanup;
        }
        if (s_sparse_files(c, repo) != 0)
            goto cleanup;
    }
    if (c->submodules && (level == 0 || c->submodules == 2) &&
        s_submodules(c, repo, url, dest, level) != 0)
        goto cleanup;
    rc = 0;
cleanup:
    for (size_t i = 0; i < walk.n; i++)
        free(walk.paths[i]);
    free(walk.paths);
    git_config_free(cfg);
    git_index_free(index);
    git_tree_free(tree);
    git_commit_free(commit_obj);
    git_repository_free(repo);
    kiln_gitsrc_destroy(&mirror);
    return rc;
}

/* ------------------------------------------------------------ the step */

/* The URL of repository (owner/name): the run's own is its source; any
 * other sits beside it under the server URL, spelt the same way (with
 * .git when the run's is). */
static int s_url(const kiln_checkout_opts_t *o, const char *repository, bool *own, char *out,
                 size_t cap)
{
    const char *run_repo = s_or(o->run_repository, "");
    *own = !repository[0] || strcasecmp(repository, run_repo) == 0;
    if (*own) {
        if (!o->source_url || !o->source_url[0]) {
            kiln_error_set("this run has no repository to check out: it was submitted as a "
                           "workflow file; run `kiln run` inside a git work tree, or "
                           "`kiln submit --repo URL`");
            return -1;
        }
        snprintf(out, cap, "%s", o->source_url);
        return 0;
    }
    const char *server = s_or(o->server_url, "");
    if (!server[0]) {
        kiln_error_set("cannot find repository '%s': the run has no server URL to find it under",
                       repository);
        return -1;
    }
    size_t sl = strlen(o->source_url ? o->source_url : "");
    bool dotgit = sl > 4 && strcmp(o->source_url + sl - 4, ".git") == 0;
    if ((size_t)snprintf(out, cap, "%s/%s%s", server, repository, dotgit ? ".git" : "") >= cap) {
        kiln_error_set("repository URL of '%s' is too long", repository);
        return -1;
    }
    return 0;
}

static bool s_path_ok(const char *p)
{
    if (p[0] == '/')
        return false;
    for (const char *s = p; *s;) {
        size_t len = strcspn(s, "/");
        if (len == 2 && strncmp(s, "..", 2) == 0)
            return false;
        s += len + (s[len] == '/');
    }
    return true;
}

int kiln_checkout_run(const kiln_checkout_opts_t *o, FILE *log)
{
    int rc = -1;
    s_ctx_t c = {.log = log, .cache_dir = o->cache_dir};
    char job_dir[PATH_MAX];
    snprintf(job_dir, sizeof job_dir, "%s", o->workspace ? o->workspace : "");
    char *last = strrchr(job_dir, '/');
    if (last && last != job_dir)
        *last = '\0';
    c.job_dir = last ? job_dir : NULL;
    char url[KILN_GITSRC_URL_MAX], dest[PATH_MAX], sha[GIT_OID_HEXSZ + 1] = "";
    char full_ref[KILN_GITSRC_REF_MAX] = "";
    if (s_inputs(&c, o) != 0)
        goto cleanup;
    if (o->credentials && o->credentials[0] && kiln_gitcreds_load(&c.creds, o->credentials) != 0)
        goto cleanup;
    if (!o->cache_dir || !o->cache_dir[0] || !o->workspace || !o->workspace[0]) {
        kiln_error_set("kiln-checkout runs as a step of kiln-worker (KILN_GIT_CACHE and "
                       "GITHUB_WORKSPACE are not set)");
        goto cleanup;
    }
    const char *repository = s_or(o->repository, "");
    bool own;
    if (s_url(o, repository, &own, url, sizeof url) != 0)
        goto cleanup;
    const char *path = s_or(o->path, "");
    if (!s_path_ok(path)) {
        kiln_error_set("input 'path: %s' must be a relative path inside the workspace", path);
        goto cleanup;
    }
    if ((size_t)snprintf(dest, sizeof dest, "%s%s%s", o->workspace, path[0] ? "/" : "", path) >=
        sizeof dest) {
        kiln_error_set("input 'path' is too long");
        goto cleanup;
    }
    /* The run's own repository at the run's commit, named by the run's
     * ref; an explicit ref (or another repository) is resolved now. */
    const char *ref = s_or(o->ref, "");
    const char *ref_name = "";
    if (own && !ref[0]) {
        ref = s_or(o->run_sha, s_or(o->run_ref, ""));
        ref_name = s_or(o->run_ref, "");
        if (!ref[0]) {
            kiln_error_set("the run names no commit (GITHUB_SHA is empty)");
            goto cleanup;
        }
    }
    fprintf(log, "Checking out %s%s%s into %s\n", own ? s_or(o->run_repository, url) : repository,
            ref[0] ? " at " : "", ref, path[0] ? path : "the workspace");
    if (s_checkout_repo(&c, url, ref, ref_name, dest, NULL, 0, sha, full_ref, sizeof full_ref) != 0)
        goto cleanup;
    fprintf(log, "HEAD is now at %.12s%s%s\n", sha, full_ref[0] ? " " : "", full_ref);
    char line[KILN_GITSRC_URL_MAX + 512];
    if (o->output_path && o->output_path[0]) {
        snprintf(line, sizeof line, "ref=%s\ncommit=%s\n", full_ref, sha);
        if (s_write_file(o->output_path, line, "a") != 0)
            goto cleanup;
    }
    if (o->summary_path && o->summary_path[0]) {
        if (c.stats.fetched)
            snprintf(line, sizeof line,
                     "Checkout of %s at `%.12s` into `%s`: %u objects, %llu bytes fetched\n",
                     own ? s_or(o->run_repository, url) : repository, sha, path[0] ? path : ".",
                     c.stats.objects, (unsigned long long)c.stats.bytes);
        else
            snprintf(line, sizeof line,
                     "Checkout of %s at `%.12s` into `%s`: nothing fetched (the worker's mirror "
                     "had it)\n",
                     own ? s_or(o->run_repository, url) : repository, sha, path[0] ? path : ".");
        if (s_write_file(o->summary_path, line, "a") != 0)
            goto cleanup;
    }
    rc = 0;
cleanup:
    for (size_t i = 0; i < c.n_sparse; i++)
        free(c.sparse[i]);
    kiln_gitcreds_destroy(&c.creds);
    return rc;
}

/* ------------------------------------------------------- remote actions */

int kiln_checkout_action(const kiln_action_opts_t *o, FILE *log)
{
    int rc = -1;
    kiln_gitsrc_t *mirror = NULL;
    kiln_gitcreds_t *creds = NULL;
    git_commit *commit = NULL;
    git_tree *tree = NULL;
    git_oid id;
    char dest[PATH_MAX], tmp[PATH_MAX + 32], full[KILN_GITSRC_REF_MAX];
    struct stat st;
    kiln_gitsrc_stats_t stats = {0};
    if (!o->cache_dir || !o->cache_dir[0] || !o->actions_dir || !o->actions_dir[0] || !o->url ||
        !o->url[0] || !o->sha || strlen(o->sha) != GIT_OID_HEXSZ || !o->dir ||
        !s_path_ok(o->dir)) {
        kiln_error_set("kiln-checkout: an action download needs KILN_GIT_CACHE, "
                       "KILN_ACTIONS_DIR and the inputs repository, sha and dir");
        goto cleanup;
    }
    snprintf(dest, sizeof dest, "%s/%s", o->actions_dir, o->dir);
    /* The directory appears whole (renamed into place) or not at all, so
     * one that is there is the commit's files. */
    if (stat(dest, &st) == 0 && S_ISDIR(st.st_mode)) {
        fprintf(log, "Action %s at %.12s: on this worker already\n", o->uses ? o->uses : o->url,
                o->sha);
        rc = 0;
        goto cleanup;
    }
    fprintf(log, "Download action repository '%s' (SHA:%s) from %s\n", o->uses ? o->uses : "",
            o->sha, o->url);
    if (kiln_gitsrc_open(&mirror, o->cache_dir, o->url) != 0)
        goto cleanup;
    if (o->credentials && o->credentials[0] && kiln_gitcreds_load(&creds, o->credentials) != 0)
        goto cleanup;
    kiln_gitsrc_auth_t auth;
    kiln_gitcreds_for(creds, o->url, &auth);
    int w = kiln_gitsrc_want(mirror, o->sha, false, &auth, &id, full, sizeof full, &stats);
    if (w != 0) {
        char why[KILN_ERROR_MAX];
        snprintf(why, sizeof why, "%s", kiln_error_last());
        kiln_error_set("the action's commit %.12s from %s: %s", o->sha, o->url, why);
        goto cleanup;
    }
    if (stats.fetched)
        fprintf(log, "Fetched %s: %u objects, %llu bytes\n", o->url, stats.objects,
                (unsigned long long)stats.bytes);
    snprintf(tmp, sizeof tmp, "%s.tmp%ld", dest, (long)getpid());
    char *slash = strrchr(tmp, '/');
    *slash = '\0';
    if (s_mkdirs(tmp) != 0)
        goto cleanup;
    *slash = '/';
    if (kiln_fs_rmtree(tmp) != 0 && errno != ENOENT) {
        kiln_error_errno("cannot remove %s", tmp);
        goto cleanup;
    }
    if (mkdir(tmp, 0755) != 0) {
        kiln_error_errno("cannot make %s", tmp);
        goto cleanup;
    }
    git_repository *repo = kiln_gitsrc_repo(mirror);
    git_checkout_options co;
    git_checkout_options_init(&co, GIT_CHECKOUT_OPTIONS_VERSION);
    co.checkout_strategy = GIT_CHECKOUT_FORCE | GIT_CHECKOUT_DONT_UPDATE_INDEX;
    co.target_directory = tmp;
    if (git_commit_lookup(&commit, repo, &id) < 0 || git_commit_tree(&tree, commit) < 0 ||
        git_checkout_tree(repo, (const git_object *)tree, &co) < 0) {
        kiln_error_set("cannot write the action's files into %s: %s", tmp, kiln_gitsrc_error());
        kiln_fs_rmtree(tmp);
        goto cleanup;
    }
    if (rename(tmp, dest) != 0) {
        int e = errno;
        kiln_fs_rmtree(tmp);
        /* Another slot put the same commit there first: the same files. */
        if (!(e == EEXIST || e == ENOTEMPTY)) {
            errno = e;
            kiln_error_errno("cannot move the action's files to %s", dest);
            goto cleanup;
        }
    }
    fprintf(log, "Action files in %s\n", dest);
    rc = 0;
cleanup:
    git_tree_free(tree);
    git_commit_free(commit);
    kiln_gitsrc_destroy(&mirror);
    kiln_gitcreds_destroy(&creds);
    return rc;
}
