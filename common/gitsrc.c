/* gitsrc.c: bare mirrors of repositories, fetched with libgit2 (see
 * gitsrc.h).
 *
 * A mirror lives at CACHE/<digest of its URL>.git, beside a lock file of
 * the same name. Its refs are the remote's own (refs/heads, refs/tags, and
 * any other ref a run asked for, such as a pull request's), forced and
 * pruned at every fetch, so a force-pushed branch follows the remote and
 * the objects it left stay until git's own gc (the mirror is a cache; a
 * commit a run recorded is still found when it was fetched before).
 */
#include "common/gitsrc.h"

#include <errno.h>
#include <fcntl.h>
#include <git2/sys/stream.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/error.h"

struct kiln_gitsrc {
    git_repository *repo;
    char url[KILN_GITSRC_URL_MAX];
    char path[4096];
    char default_branch[KILN_GITSRC_REF_MAX];
    int lock_fd;
};

static const char *const s_specs[] = {"+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"};

const char *kiln_gitsrc_error(void)
{
    const git_error *e = git_error_last();
    return e && e->message ? e->message : "unknown libgit2 error";
}

/* ------------------------------------------------- sockets with a timeout */

/* libgit2 1.5 waits on a silent server for ever: its sockets block with no
 * timeout and it has no option for one. Every plain socket it opens (git://,
 * http://, and the one under https:// and ssh) is this one instead, whose
 * connect, reads and writes give up after s_timeout_ms without progress,
 * so a frozen git server fails a fetch, naming it, instead of stalling the
 * thread or the step behind it. */
static int s_timeout_ms = KILN_GITSRC_TIMEOUT_DEFAULT_S * 1000;

/* Laid out as libgit2 1.5's own socket stream (parent, host, port, then
 * the descriptor): its ssh transport hands that descriptor to libssh2 by
 * reading the stream as one of its own. */
typedef struct {
    git_stream parent;
    char *host;
    char *port;
    int fd;
} s_sock_t;

static int s_sock_wait(s_sock_t *st, short events, const char *what)
{
    struct pollfd p = {.fd = st->fd, .events = events};
    for (;;) {
        int n = poll(&p, 1, s_timeout_ms);
        if (n > 0)
            return 0;
        if (n == 0) {
            char msg[512];
            snprintf(msg, sizeof msg, "%s %s:%s: no answer in %d s", what, st->host, st->port,
                     s_timeout_ms / 1000);
            git_error_set_str(GIT_ERROR_NET, msg);
            return -1;
        }
        if (errno != EINTR) {
            git_error_set_str(GIT_ERROR_OS, strerror(errno));
            return -1;
        }
    }
}

static int s_sock_connect(git_stream *stream)
{
    s_sock_t *st = (s_sock_t *)stream;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai = NULL;
    char msg[512];
    int rc = getaddrinfo(st->host, st->port, &hints, &ai);
    if (rc != 0) {
        snprintf(msg, sizeof msg, "cannot resolve %s: %s", st->host, gai_strerror(rc));
        git_error_set_str(GIT_ERROR_NET, msg);
        return -1;
    }
    int err = 0;
    bool timed_out = false;
    for (struct addrinfo *a = ai; a; a = a->ai_next) {
        st->fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
        if (st->fd < 0) {
            err = errno;
            continue;
        }
        if (connect(st->fd, a->ai_addr, a->ai_addrlen) == 0) {
            freeaddrinfo(ai);
            return 0;
        }
        err = errno;
        if (err == EINPROGRESS) {
            socklen_t len = sizeof err;
            if (s_sock_wait(st, POLLOUT, "connecting to") != 0) {
                timed_out = true; /* the message is set */
                err = 0;
            } else if (getsockopt(st->fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0) {
                freeaddrinfo(ai);
                return 0;
            }
        }
        close(st->fd);
        st->fd = -1;
    }
    freeaddrinfo(ai);
    if (err || !timed_out) {
        snprintf(msg, sizeof msg, "cannot connect to %s:%s: %s", st->host, st->port,
                 strerror(err ? err : ECONNREFUSED));
        git_error_set_str(GIT_ERROR_NET, msg);
    }
    return -1;
}

static ssize_t s_sock_read(git_stream *stream, void *data, size_t len)
{
    s_sock_t *st = (s_sock_t *)stream;
    for (;;) {
        ssize_t n = recv(st->fd, data, len, 0);
        if (n >= 0)
            return n;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            git_error_set_str(GIT_ERROR_NET, strerror(errno));
            return -1;
        }
        if (s_sock_wait(st, POLLIN, "reading from") != 0)
            return -1;
    }
}

static ssize_t s_sock_write(git_stream *stream, const char *data, size_t len, int flags)
{
    s_sock_t *st = (s_sock_t *)stream;
    (void)flags;
    for (;;) {
        ssize_t n = send(st->fd, data, len, MSG_NOSIGNAL);
        if (n >= 0)
            return n;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            git_error_set_str(GIT_ERROR_NET, strerror(errno));
            return -1;
        }
        if (s_sock_wait(st, POLLOUT, "writing to") != 0)
            return -1;
    }
}

static int s_sock_close(git_stream *stream)
{
    s_sock_t *st = (s_sock_t *)stream;
    if (st->fd >= 0)
        close(st->fd);
    st->fd = -1;
    return 0;
}

static void s_sock_free(git_stream *stream)
{
    s_sock_t *st = (s_sock_t *)stream;
    s_sock_close(stream);
    free(st->host);
    free(st->port);
    free(st);
}

static int s_sock_new(git_stream **out, const char *host, const char *port)
{
    s_sock_t *st = calloc(1, sizeof *st);
    if (!st) {
        git_error_set_oom();
        return -1;
    }
    st->parent.version = GIT_STREAM_VERSION;
    st->parent.connect = s_sock_connect;
    st->parent.read = s_sock_read;
    st->parent.write = s_sock_write;
    st->parent.close = s_sock_close;
    st->parent.free = s_sock_free;
    st->fd = -1;
    st->host = strdup(host ? host : "");
    st->port = strdup(port ? port : "");
    if (!st->host || !st->port) {
        s_sock_free(&st->parent);
        git_error_set_oom();
        return -1;
    }
    *out = &st->parent;
    return 0;
}

void kiln_gitsrc_set_timeout(int seconds)
{
    if (seconds > 0)
        s_timeout_ms = seconds > INT32_MAX / 1000 ? INT32_MAX : seconds * 1000;
}

int kiln_gitsrc_init(void)
{
    if (git_libgit2_init() < 0) {
        kiln_error_set("libgit2: cannot initialise: %s", kiln_gitsrc_error());
        return -1;
    }
    git_stream_registration reg = {.version = GIT_STREAM_VERSION, .init = s_sock_new};
    if (git_stream_register(GIT_STREAM_STANDARD, &reg) < 0) {
        kiln_error_set("libgit2: cannot register its sockets: %s", kiln_gitsrc_error());
        return -1;
    }
    return 0;
}

/* Locks are taken blocking: another job on this machine fetching the same
 * repository finishes first, and then this one usually needs nothing. */
static int s_lock(const char *path)
{
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd == -1) {
        kiln_error_errno("cannot open the mirror lock %s", path);
        return -1;
    }
    while (flock(fd, LOCK_EX) == -1) {
        if (errno != EINTR) {
            kiln_error_errno("cannot lock %s", path);
            close(fd);
            return -1;
        }
    }
    return fd;
}

static void s_refresh_default(kiln_gitsrc_t *self)
{
    git_reference *head = NULL;
    self->default_branch[0] = '\0';
    if (git_reference_lookup(&head, self->repo, "HEAD") == 0 &&
        git_reference_type(head) == GIT_REFERENCE_SYMBOLIC) {
        const char *t = git_reference_symbolic_target(head);
        if (t && strncmp(t, "refs/heads/", 11) == 0) {
            git_reference *b = NULL;
            /* A mirror made before its first fetch points HEAD at a branch
             * that does not exist: unknown, not "master". */
            if (git_reference_lookup(&b, self->repo, t) == 0)
                snprintf(self->default_branch, sizeof self->default_branch, "%s", t + 11);
            git_reference_free(b);
        }
    }
    git_reference_free(head);
}

/* A repository on this machine lends its objects to the mirror
 * (objects/info/alternates, as `git clone --shared`): nothing is copied,
 * and any commit of it, a work tree's uncommitted state recorded by
 * kiln --dirty included, is there without a fetch. As with --shared, the
 * repository must not lose objects the mirror's refs still name. */
static int s_borrow_local(const char *mirror, const char *url)
{
    const char *path = strncmp(url, "file://", 7) == 0 ? url + 7 : url;
    if (path[0] != '/')
        return 0;
    char objects[4200], alt[4300];
    struct stat sb;
    snprintf(objects, sizeof objects, "%s/.git/objects", path);
    if (stat(objects, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        snprintf(objects, sizeof objects, "%s/objects", path);
        if (stat(objects, &sb) != 0 || !S_ISDIR(sb.st_mode))
            return 0; /* not a repository: the fetch says so */
    }
    snprintf(alt, sizeof alt, "%s/objects/info/alternates", mirror);
    FILE *f = fopen(alt, "w");
    bool ok = f && fprintf(f, "%s\n", objects) > 0;
    if (f && fclose(f) != 0)
        ok = false;
    if (!ok) {
        kiln_error_errno("cannot write %s", alt);
        return -1;
    }
    return 0;
}

/* Written as plain config values: git_remote_create (libgit2 1.5) leaks
 * the regular expression match data of its config lookups in every
 * process that calls it. The fetches name their refspecs themselves; this
 * one is for git commands run in the repository later. */
int kiln_gitsrc_set_origin(git_repository *repo, const char *url, const char *fetchspec)
{
    git_config *cfg = NULL;
    int rc = git_repository_config(&cfg, repo);
    if (rc == 0)
        rc = git_config_set_string(cfg, "remote.origin.url", url);
    if (rc == 0)
        rc = git_config_set_string(cfg, "remote.origin.fetch", fetchspec);
    git_config_free(cfg);
    return rc < 0 ? -1 : 0;
}

static int s_open(kiln_gitsrc_t **out, const char *cache_dir, const char *at, const char *url)
{
    int rc = -1;
    kiln_gitsrc_t *self = calloc(1, sizeof *self);
    git_remote *remote = NULL;
    char lock[4200];
    *out = NULL;
    if (!self) {
        kiln_error_set("out of memory");
        return -1;
    }
    self->lock_fd = -1;
    if (!url[0] || strlen(url) >= sizeof self->url) {
        kiln_error_set("repository URL '%.80s' is empty or longer than %d bytes", url,
                       KILN_GITSRC_URL_MAX - 1);
        goto cleanup;
    }
    snprintf(self->url, sizeof self->url, "%s", url);
    if (at) {
        /* A mirror where the caller names it (an action source's
         * OWNER/REPO.git), its lock beside it. */
        if ((size_t)snprintf(self->path, sizeof self->path, "%s", at) >= sizeof self->path) {
            kiln_error_set("mirror %s: path too long", at);
            goto cleanup;
        }
        snprintf(lock, sizeof lock, "%s.lock", at);
    } else {
        unsigned char digest[10];
        crypto_generichash(digest, sizeof digest, (const unsigned char *)url, strlen(url), NULL,
                           0);
        char hex[sizeof digest * 2 + 1];
        sodium_bin2hex(hex, sizeof hex, digest, sizeof digest);
        if (mkdir(cache_dir, 0700) != 0 && errno != EEXIST) {
            kiln_error_errno("cannot make the mirror directory %s", cache_dir);
            goto cleanup;
        }
        if ((size_t)snprintf(self->path, sizeof self->path, "%s/%s.git", cache_dir, hex) >=
            sizeof self->path) {
            kiln_error_set("mirror directory %s: path too long", cache_dir);
            goto cleanup;
        }
        snprintf(lock, sizeof lock, "%s/%s.lock", cache_dir, hex);
    }
    if ((self->lock_fd = s_lock(lock)) < 0)
        goto cleanup;
    struct stat sb;
    if (stat(self->path, &sb) == 0) {
        if (git_repository_open_bare(&self->repo, self->path) < 0) {
            kiln_error_set("mirror %s of %s: %s", self->path, url, kiln_gitsrc_error());
            goto cleanup;
        }
    } else {
        /* Made under a temporary name and renamed, so a process killed
         * half-way leaves no mirror without its remote. */
        char tmp[4200];
        snprintf(tmp, sizeof tmp, "%s.new", self->path);
        git_repository *r = NULL;
        bool ok = git_repository_init(&r, tmp, 1) == 0 &&
                  kiln_gitsrc_set_origin(r, url, s_specs[0]) == 0;
        if (!ok)
            kiln_error_set("cannot make the mirror of %s in %s: %s", url, tmp,
                           kiln_gitsrc_error());
        git_repository_free(r);
        if (!ok)
            goto cleanup;
        if (s_borrow_local(tmp, url) != 0)
            goto cleanup;
        if (rename(tmp, self->path) != 0) {
            kiln_error_errno("cannot rename the mirror %s", tmp);
            goto cleanup;
        }
        if (git_repository_open_bare(&self->repo, self->path) < 0) {
            kiln_error_set("mirror %s of %s: %s", self->path, url, kiln_gitsrc_error());
            goto cleanup;
        }
    }
    s_refresh_default(self);
    *out = self;
    self = NULL;
    rc = 0;
cleanup:
    git_remote_free(remote);
    kiln_gitsrc_destroy(&self);
    return rc;
}

int kiln_gitsrc_open(kiln_gitsrc_t **out, const char *cache_dir, const char *url)
{
    return s_open(out, cache_dir, NULL, url);
}

int kiln_gitsrc_open_at(kiln_gitsrc_t **out, const char *path, const char *url)
{
    return s_open(out, NULL, path, url);
}

void kiln_gitsrc_destroy(kiln_gitsrc_t **self_p)
{
    kiln_gitsrc_t *self = *self_p;
    if (!self)
        return;
    git_repository_free(self->repo);
    if (self->lock_fd >= 0)
        close(self->lock_fd);
    free(self);
    *self_p = NULL;
}

git_repository *kiln_gitsrc_repo(kiln_gitsrc_t *self)
{
    return self->repo;
}

const char *kiln_gitsrc_path(const kiln_gitsrc_t *self)
{
    return self->path;
}

const char *kiln_gitsrc_default_branch(const kiln_gitsrc_t *self)
{
    return self->default_branch;
}

static int s_credentials(git_credential **out, const char *url, const char *user_from_url,
                         unsigned int allowed, void *payload)
{
    (void)url;
    const kiln_gitsrc_auth_t *auth = payload;
    if (!auth)
        return GIT_PASSTHROUGH;
    if ((allowed & GIT_CREDENTIAL_USERPASS_PLAINTEXT) && auth->token && auth->token[0])
        return git_credential_userpass_plaintext_new(out, "x-access-token", auth->token);
    const char *user = user_from_url && user_from_url[0] ? user_from_url
                       : auth->ssh_user && auth->ssh_user[0] ? auth->ssh_user
                                                             : "git";
    if ((allowed & GIT_CREDENTIAL_SSH_MEMORY) && auth->ssh_key && auth->ssh_key[0])
        return git_credential_ssh_key_memory_new(out, user, NULL, auth->ssh_key, NULL);
    if (allowed & GIT_CREDENTIAL_USERNAME)
        return git_credential_username_new(out, user);
    return GIT_PASSTHROUGH;
}

/* The bytes that came over, as the transfer reports them (the indexer's
 * totals leave them out for some transports). */
static int s_progress(const git_indexer_progress *p, void *payload)
{
    uint64_t *bytes = payload;
    if (p->received_bytes > *bytes)
        *bytes = p->received_bytes;
    return 0;
}

typedef struct {
    const kiln_gitsrc_auth_t *auth;
    uint64_t bytes;
} s_fetch_ctx_t;

static int s_cred_cb(git_credential **out, const char *url, const char *user, unsigned int allowed,
                     void *payload)
{
    return s_credentials(out, url, user, allowed, (void *)((s_fetch_ctx_t *)payload)->auth);
}

static int s_progress_cb(const git_indexer_progress *p, void *payload)
{
    return s_progress(p, &((s_fetch_ctx_t *)payload)->bytes);
}

int kiln_gitsrc_fetch(kiln_gitsrc_t *self, const char *const *extra, size_t n_extra,
                      const kiln_gitsrc_auth_t *auth, kiln_gitsrc_stats_t *stats)
{
    int rc = -1;
    git_remote *remote = NULL;
    const char *specs[2 + 8];
    char extra_specs[8][2 * KILN_GITSRC_REF_MAX + 4];
    size_t n = 0;
    for (; n < 2; n++)
        specs[n] = s_specs[n];
    for (size_t i = 0; i < n_extra && i < 8; i++) {
        snprintf(extra_specs[i], sizeof extra_specs[i], "+%s:%s", extra[i], extra[i]);
        specs[n++] = extra_specs[i];
    }
    git_strarray refspecs = {(char **)specs, n};
    git_fetch_options fo;
    git_fetch_options_init(&fo, GIT_FETCH_OPTIONS_VERSION);
    s_fetch_ctx_t fctx = {auth, 0};
    fo.callbacks.credentials = s_cred_cb;
    fo.callbacks.transfer_progress = s_progress_cb;
    fo.callbacks.payload = &fctx;
    fo.prune = GIT_FETCH_PRUNE;
    fo.download_tags = GIT_REMOTE_DOWNLOAD_TAGS_NONE;
    fo.update_fetchhead = 0;
    /* Anonymous and without url rewriting: looking the named remote up
     * (libgit2 1.5) runs regular expressions over the config whose match
     * data it never frees. The mirror's url is self->url anyway. */
    git_remote_create_options ro;
    git_remote_create_options_init(&ro, GIT_REMOTE_CREATE_OPTIONS_VERSION);
    ro.repository = self->repo;
    ro.flags = GIT_REMOTE_CREATE_SKIP_INSTEADOF | GIT_REMOTE_CREATE_SKIP_DEFAULT_FETCHSPEC;
    if (git_remote_create_with_opts(&remote, self->url, &ro) < 0) {
        kiln_error_set("mirror %s: %s", self->path, kiln_gitsrc_error());
        goto cleanup;
    }
    if (git_remote_fetch(remote, &refspecs, &fo, NULL) < 0) {
        kiln_error_set("cannot fetch %s: %s", self->url, kiln_gitsrc_error());
        goto cleanup;
    }
    const git_indexer_progress *p = git_remote_stats(remote);
    if (stats) {
        stats->fetched = true;
        stats->objects += p->received_objects;
        stats->bytes += p->received_bytes > fctx.bytes ? p->received_bytes : fctx.bytes;
    }
    /* The remote's HEAD names its default branch; the mirror's HEAD keeps
     * it for the next process. */
    git_buf def = {0};
    if (git_remote_default_branch(&def, remote) == 0 && def.ptr &&
        strncmp(def.ptr, "refs/heads/", 11) == 0)
        git_repository_set_head(self->repo, def.ptr);
    git_buf_dispose(&def);
    git_error_clear();
    s_refresh_default(self);
    rc = 0;
cleanup:
    git_remote_free(remote);
    return rc;
}

static bool s_hex(const char *s, size_t min)
{
    size_t n = strspn(s, "0123456789abcdefABCDEF");
    return s[n] == '\0' && n >= min && n <= GIT_OID_HEXSZ;
}

static int s_peel_ref(git_repository *repo, const char *name, git_oid *commit)
{
    git_reference *ref = NULL;
    git_object *obj = NULL;
    int rc = git_reference_lookup(&ref, repo, name);
    if (rc == 0)
        rc = git_reference_peel(&obj, ref, GIT_OBJECT_COMMIT);
    if (rc == 0)
        git_oid_cpy(commit, git_object_id(obj));
    git_object_free(obj);
    git_reference_free(ref);
    return rc;
}

int kiln_gitsrc_resolve(kiln_gitsrc_t *self, const char *ref, git_oid *commit, char *full_ref,
                        size_t cap)
{
    char name[KILN_GITSRC_REF_MAX + 16];
    if (cap)
        full_ref[0] = '\0';
    if (!ref[0] || strlen(ref) >= KILN_GITSRC_REF_MAX) {
        kiln_error_set("ref '%.80s' is empty or longer than %d bytes", ref, KILN_GITSRC_REF_MAX - 1);
        return KILN_EINVAL;
    }
    if (strncmp(ref, "refs/", 5) == 0) {
        if (s_peel_ref(self->repo, ref, commit) == 0) {
            snprintf(full_ref, cap, "%s", ref);
            return 0;
        }
    } else {
        const char *const prefixes[] = {"refs/heads/", "refs/tags/"};
        /* A full commit id names a commit, whatever a branch is called. */
        bool full_id = s_hex(ref, GIT_OID_HEXSZ);
        for (size_t i = 0; !full_id && i < 2; i++) {
            snprintf(name, sizeof name, "%s%s", prefixes[i], ref);
            if (s_peel_ref(self->repo, name, commit) == 0) {
                snprintf(full_ref, cap, "%s", name);
                return 0;
            }
        }
        if (s_hex(ref, 4)) {
            git_oid prefix;
            git_object *obj = NULL, *peeled = NULL;
            size_t len = strlen(ref);
            int found = git_oid_fromstrn(&prefix, ref, len) == 0 &&
                        git_object_lookup_prefix(&obj, self->repo, &prefix, len, GIT_OBJECT_ANY) == 0 &&
                        git_object_peel(&peeled, obj, GIT_OBJECT_COMMIT) == 0;
            if (found)
                git_oid_cpy(commit, git_object_id(peeled));
            git_object_free(peeled);
            git_object_free(obj);
            if (found)
                return 0;
        }
    }
    git_error_clear();
    kiln_error_set("'%s' names no branch, tag or commit of %s", ref, self->url);
    return KILN_ENOTFOUND;
}

int kiln_gitsrc_want(kiln_gitsrc_t *self, const char *ref, bool fetch_always,
                     const kiln_gitsrc_auth_t *auth, git_oid *commit, char *full_ref, size_t cap,
                     kiln_gitsrc_stats_t *stats)
{
    /* A commit the mirror has cannot move: nothing to ask the remote. */
    bool is_id = s_hex(ref, GIT_OID_HEXSZ);
    int rc = kiln_gitsrc_resolve(self, ref, commit, full_ref, cap);
    if (rc == 0 && (is_id || !fetch_always))
        return 0;
    if (rc != 0 && rc != KILN_ENOTFOUND)
        return rc;
    /* Refs outside heads and tags (a pull request's) are asked for by
     * name; the mirror keeps them from then on. */
    const char *extra[1] = {ref};
    size_t n_extra = strncmp(ref, "refs/", 5) == 0 && strncmp(ref, "refs/heads/", 11) != 0 &&
                     strncmp(ref, "refs/tags/", 10) != 0;
    if (kiln_gitsrc_fetch(self, extra, n_extra, auth, stats) != 0)
        return -1;
    rc = kiln_gitsrc_resolve(self, ref, commit, full_ref, cap);
    if (rc == KILN_ENOTFOUND && is_id)
        kiln_error_set("commit %s is not reachable from any branch or tag of %s (was it "
                       "force-pushed away?)",
                       ref, self->url);
    return rc;
}

int kiln_gitsrc_read(kiln_gitsrc_t *self, const git_oid *commit, const char *path, size_t max,
                     char **out, size_t *len)
{
    int rc = -1;
    git_commit *c = NULL;
    git_tree *tree = NULL;
    git_tree_entry *entry = NULL;
    git_blob *blob = NULL;
    *out = NULL;
    *len = 0;
    if (git_commit_lookup(&c, self->repo, commit) < 0 || git_commit_tree(&tree, c) < 0) {
        kiln_error_set("commit %s: %s", git_oid_tostr_s(commit), kiln_gitsrc_error());
        goto cleanup;
    }
    if (git_tree_entry_bypath(&entry, tree, path) < 0 ||
        git_tree_entry_type(entry) != GIT_OBJECT_BLOB) {
        git_error_clear();
        kiln_error_set("%s is not a file in commit %.12s", path, git_oid_tostr_s(commit));
        rc = KILN_ENOTFOUND;
        goto cleanup;
    }
    if (git_blob_lookup(&blob, self->repo, git_tree_entry_id(entry)) < 0) {
        kiln_error_set("%s in commit %.12s: %s", path, git_oid_tostr_s(commit), kiln_gitsrc_error());
        goto cleanup;
    }
    git_object_size_t size = git_blob_rawsize(blob);
    if (size > max) {
        kiln_error_set("%s in commit %.12s is %llu bytes; the limit is %zu", path,
                       git_oid_tostr_s(commit), (unsigned long long)size, max);
        rc = KILN_ETOOBIG;
        goto cleanup;
    }
    if (!(*out = malloc((size_t)size + 1))) {
        kiln_error_set("out of memory");
        goto cleanup;
    }
    memcpy(*out, git_blob_rawcontent(blob), (size_t)size);
    (*out)[size] = '\0';
    *len = (size_t)size;
    rc = 0;
cleanup:
    git_blob_free(blob);
    git_tree_entry_free(entry);
    git_tree_free(tree);
    git_commit_free(c);
    return rc;
}
