/* storeclient.c: chunked, resumable blob transfers and store requests for
 * built-in steps (see storeclient.h).
 */
#include "worker/storeclient.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "common/digest.h"
#include "common/error.h"
#include "common/transport.h"

#define S_CHUNK (1024u * 1024)
#define S_PUT_WINDOW 4
#define S_GET_WINDOW 8
#define S_ANSWER_MS 10000       /* one request's answer */
#define S_PATIENCE_MS 300000    /* no progress at all for this long: give up */

struct kiln_storeclient {
    void *zctx, *sock;
    char secret[80];
    char endpoint[PATH_MAX + 8];
    uint64_t next_id;
};

static int64_t s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int s_connect(kiln_storeclient_t *self)
{
    if (self->sock)
        zmq_close(self->sock);
    self->sock = zmq_socket(self->zctx, ZMQ_DEALER);
    int linger = 0;
    int64_t maxmsg = KILN_MSG_MAX;
    if (!self->sock || zmq_setsockopt(self->sock, ZMQ_LINGER, &linger, sizeof linger) != 0 ||
        zmq_setsockopt(self->sock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg) != 0 ||
        zmq_connect(self->sock, self->endpoint) != 0) {
        kiln_error_set("store: cannot reach the worker at %s: %s", self->endpoint,
                       zmq_strerror(zmq_errno()));
        return KILN_EINFRA;
    }
    return 0;
}

int kiln_storeclient_new(kiln_storeclient_t **out)
{
    *out = NULL;
    const char *sock = getenv("KILN_STORE_SOCKET"), *secret = getenv("KILN_STORE_TOKEN");
    if (!sock || !sock[0] || !secret || !secret[0]) {
        kiln_error_set("the farm's store is reached through kiln-worker (KILN_STORE_SOCKET and "
                       "KILN_STORE_TOKEN are not set)");
        return KILN_EINVAL;
    }
    kiln_storeclient_t *self = calloc(1, sizeof *self);
    if (!self) {
        kiln_error_set("out of memory");
        return KILN_ERROR;
    }
    snprintf(self->secret, sizeof self->secret, "%s", secret);
    snprintf(self->endpoint, sizeof self->endpoint, "ipc://%s", sock);
    self->zctx = zmq_ctx_new();
    if (!self->zctx || s_connect(self) != 0) {
        kiln_storeclient_destroy(&self);
        return KILN_EINFRA;
    }
    *out = self;
    return 0;
}

void kiln_storeclient_destroy(kiln_storeclient_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    kiln_storeclient_t *self = *self_p;
    if (self->sock)
        zmq_close(self->sock);
    if (self->zctx)
        zmq_ctx_term(self->zctx);
    free(self);
    *self_p = NULL;
}

static int s_send(kiln_storeclient_t *self, Kiln__StoreRequest *req)
{
    Kiln__Envelope env = KILN__ENVELOPE__INIT;
    req->id = ++self->next_id;
    req->job_secret = self->secret;
    env.body_case = KILN__ENVELOPE__BODY_STORE_REQUEST;
    env.store_request = req;
    int rc = kiln_transport_send(self->sock, NULL, 0, &env);
    req->job_secret = NULL;
    return rc == KILN_EAGAIN ? 0 : rc; /* not delivered: its answer times out, it is asked again */
}

/* The next answer, waiting up to ms: 0 with *env, KILN_ETIMEOUT. */
static int s_recv(kiln_storeclient_t *self, int ms, Kiln__Envelope **env)
{
    *env = NULL;
    int64_t until = s_now() + ms;
    for (;;) {
        zmq_pollitem_t it = {self->sock, 0, ZMQ_POLLIN, 0};
        int64_t left = until - s_now();
        if (left < 0)
            left = 0;
        int n = zmq_poll(&it, 1, (long)left);
        if (n < 0 && zmq_errno() == EINTR)
            continue;
        if (n <= 0) {
            kiln_error_set("store: no answer from the worker in %d ms", ms);
            return KILN_ETIMEOUT;
        }
        kiln_transport_msg_t msg;
        int rc = kiln_transport_recv(self->sock, false, &msg);
        if (rc == KILN_EAGAIN)
            continue;
        if (rc != 0)
            return rc;
        if (msg.env->body_case != KILN__ENVELOPE__BODY_STORE_REPLY) {
            kiln_transport_msg_clear(&msg);
            continue;
        }
        *env = msg.env;
        msg.env = NULL;
        kiln_transport_msg_clear(&msg);
        return 0;
    }
}

static int s_code(const Kiln__StoreReply *r)
{
    if (r->code)
        kiln_error_set("%s", r->error && r->error[0] ? r->error : "the store refused the request");
    return r->code;
}

int kiln_storeclient_call(kiln_storeclient_t *self, Kiln__StoreRequest *req, Kiln__Envelope **reply)
{
    *reply = NULL;
    int64_t give_up = s_now() + S_PATIENCE_MS / 5;
    while (s_now() < give_up) {
        int rc = s_send(self, req);
        if (rc != 0)
            return rc;
        uint64_t want = req->id;
        Kiln__Envelope *env = NULL;
        while ((rc = s_recv(self, S_ANSWER_MS, &env)) == 0 && env->store_reply->id != want) {
            kiln__envelope__free_unpacked(env, NULL);
            env = NULL;
        }
        if (rc == KILN_ETIMEOUT)
            continue;
        if (rc != 0)
            return rc;
        /* The coordinator did not know the worker yet (it restarted, and
         * the worker is saying hello again): ask again. */
        if (env->store_reply->code == KILN_EAGAIN) {
            kiln__envelope__free_unpacked(env, NULL);
            struct timespec ts = {0, 200 * 1000000};
            nanosleep(&ts, NULL);
            continue;
        }
        *reply = env;
        return s_code(env->store_reply);
    }
    kiln_error_set("the farm's store did not answer for %d s (is the coordinator reachable?)",
                   S_PATIENCE_MS / 5000);
    return KILN_ETIMEOUT;
}

int kiln_store_file_digest(const char *path, char digest[72])
{
    return kiln_sha256_file(path, digest);
}

/* The coordinator's count of the blob's bytes (complete: *done). */
static int s_stat(kiln_storeclient_t *self, const char *digest, uint64_t *have, bool *done)
{
    Kiln__StoreRequest req = KILN__STORE_REQUEST__INIT;
    Kiln__Envelope *env = NULL;
    req.op = KILN__STORE_OP__STORE_STAT;
    req.digest = (char *)digest;
    int rc = kiln_storeclient_call(self, &req, &env);
    if (env) {
        *have = env->store_reply->offset;
        *done = rc == 0;
        rc = rc == KILN_ENOTFOUND ? 0 : rc;
        kiln__envelope__free_unpacked(env, NULL);
    }
    return rc;
}

int kiln_storeclient_upload(kiln_storeclient_t *self, const char *path, char digest[72],
                            kiln_store_xfer_t *st)
{
    static unsigned char buf[S_PUT_WINDOW][S_CHUNK];
    struct {
        uint64_t id, off;
        size_t len;
    } fly[S_PUT_WINDOW];
    size_t n_fly = 0;
    int rc = KILN_ERROR, fd = -1;
    int64_t t0 = s_now(), last_progress = t0;
    struct stat sb;
    bool done = false;
    uint64_t have = 0, next;
    unsigned stale = 0;          /* refusals in a row at the same offset */
    uint64_t stale_at = UINT64_MAX;
    memset(st, 0, sizeof *st);
    if ((rc = kiln_store_file_digest(path, digest)) != 0)
        return rc;
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0 || fstat(fd, &sb) != 0 || sb.st_size == 0) {
        kiln_error_errno("cannot read %s", path);
        rc = KILN_ERROR;
        goto cleanup;
    }
    uint64_t size = (uint64_t)sb.st_size;
    st->bytes = size;
    if ((rc = s_stat(self, digest, &have, &done)) != 0)
        goto cleanup;
    if (done) {
        st->deduplicated = true;
        goto finished;
    }
    if (have)
        st->resumed++;
    next = have;
    for (;;) {
        /* Every byte held but the blob not kept (its seal failed, or the
         * coordinator stopped between the two): an empty last chunk asks
         * for the check and the seal again. */
        if (n_fly == 0 && next >= size) {
            Kiln__StoreRequest req = KILN__STORE_REQUEST__INIT;
            req.op = KILN__STORE_OP__STORE_PUT;
            req.digest = digest;
            req.offset = size;
            req.size = size;
            if ((rc = s_send(self, &req)) != 0)
                goto cleanup;
            fly[0].id = req.id;
            fly[0].off = size;
            fly[0].len = 0;
            n_fly = 1;
        }
        while (n_fly < S_PUT_WINDOW && next < size) {
            size_t len = size - next < S_CHUNK ? (size_t)(size - next) : S_CHUNK;
            unsigned char *b = buf[n_fly];
            ssize_t got = pread(fd, b, len, (off_t)next);
            if (got != (ssize_t)len) {
                kiln_error_errno("cannot read %s", path);
                rc = KILN_ERROR;
                goto cleanup;
            }
            Kiln__StoreRequest req = KILN__STORE_REQUEST__INIT;
            req.op = KILN__STORE_OP__STORE_PUT;
            req.digest = digest;
            req.offset = next;
            req.data.data = b;
            req.data.len = len;
            req.size = size;
            if ((rc = s_send(self, &req)) != 0)
                goto cleanup;
            fly[n_fly].id = req.id;
            fly[n_fly].off = next;
            fly[n_fly].len = len;
            n_fly++;
            next += len;
            st->moved += len;
        }
        if (n_fly == 0)
            break;
        Kiln__Envelope *env = NULL;
        rc = s_recv(self, S_ANSWER_MS, &env);
        if (rc == KILN_ETIMEOUT) {
            if (s_now() - last_progress > S_PATIENCE_MS) {
                kiln_error_set("the farm's store took no bytes of %s for %d s", digest,
                               S_PATIENCE_MS / 1000);
                goto cleanup;
            }
            /* Answers lost: ask where the coordinator is, go on from there. */
            n_fly = 0;
            if ((rc = s_stat(self, digest, &have, &done)) != 0)
                goto cleanup;
            if (done)
                goto finished;
            next = have;
            st->resumed++;
            continue;
        }
        if (rc != 0)
            goto cleanup;
        const Kiln__StoreReply *r = env->store_reply;
        if (r->id != fly[0].id) {
            kiln__envelope__free_unpacked(env, NULL); /* for chunks given up on */
            continue;
        }
        /* Answers come in order: the first in flight is this one. */
        uint64_t end = fly[0].off + fly[0].len;
        memmove(fly, fly + 1, (n_fly - 1) * sizeof fly[0]);
        n_fly--;
        if (r->code == KILN_ESTALE || r->code == KILN_EAGAIN) {
            int code = r->code;
            uint64_t held = r->offset;
            kiln__envelope__free_unpacked(env, NULL);
            n_fly = 0;
            /* Where the store is, asked outright: a refusal that is not
             * about the offset (the job is no longer this worker's) ends
             * the upload there, rather than sending the same bytes again. */
            if ((rc = s_stat(self, digest, &have, &done)) != 0)
                goto cleanup;
            if (done)
                goto finished;
            if (code == KILN_ESTALE && have == stale_at && ++stale > 3) {
                kiln_error_set("the farm's store keeps refusing %s at %llu bytes", digest,
                               (unsigned long long)held);
                rc = KILN_ESTALE;
                goto cleanup;
            }
            if (have != stale_at)
                stale = 0;
            stale_at = have;
            (void)held;
            next = have;
            st->resumed++;
            continue;
        }
        if (r->code != 0) {
            rc = s_code(r);
            kiln__envelope__free_unpacked(env, NULL);
            goto cleanup;
        }
        last_progress = s_now();
        bool complete = end == size;
        kiln__envelope__free_unpacked(env, NULL);
        if (complete)
            break;
    }
finished:
    st->ms = s_now() - t0;
    rc = 0;
cleanup:
    if (fd >= 0)
        close(fd);
    return rc;
}

int kiln_storeclient_download(kiln_storeclient_t *self, const char *digest, const char *path,
                              kiln_store_xfer_t *st)
{
    struct {
        uint64_t id, off;
    } fly[S_GET_WINDOW];
    size_t n_fly = 0;
    char part[PATH_MAX + 16], got_hex[65];
    int rc = KILN_ERROR, fd = -1;
    uint64_t size = UINT64_MAX, written = 0, next = 0;
    int64_t t0 = s_now(), last_progress = t0;
    kiln_sha256_t *hs = NULL;
    /* A name of this process's: two jobs of a worker fetching the same
     * blob each write their own, and the last rename wins with the same
     * bytes. */
    snprintf(part, sizeof part, "%s.part-%ld", path, (long)getpid());
    if (kiln_sha256_new(&hs) != 0)
        return KILN_ERROR;
    if ((fd = open(part, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0) {
        kiln_error_errno("cannot write %s", part);
        goto cleanup;
    }
    for (;;) {
        /* Until the first answer says how big it is, one chunk at a time. */
        size_t window = size == UINT64_MAX ? 1 : S_GET_WINDOW;
        while (n_fly < window && next < size) {
            Kiln__StoreRequest req = KILN__STORE_REQUEST__INIT;
            req.op = KILN__STORE_OP__STORE_GET;
            req.digest = (char *)digest;
            req.offset = next;
            req.size = S_CHUNK;
            if ((rc = s_send(self, &req)) != 0)
                goto cleanup;
            fly[n_fly].id = req.id;
            fly[n_fly].off = next;
            n_fly++;
            next += S_CHUNK;
            if (size == UINT64_MAX)
                break;
        }
        if (n_fly == 0)
            break;
        Kiln__Envelope *env = NULL;
        rc = s_recv(self, S_ANSWER_MS, &env);
        if (rc == KILN_ETIMEOUT) {
            if (s_now() - last_progress > S_PATIENCE_MS) {
                kiln_error_set("the farm's store sent no bytes of %s for %d s", digest,
                               S_PATIENCE_MS / 1000);
                goto cleanup;
            }
            n_fly = 0;
            next = written; /* on from what arrived */
            st->resumed++;
            continue;
        }
        if (rc != 0)
            goto cleanup;
        const Kiln__StoreReply *r = env->store_reply;
        if (n_fly == 0 || r->id != fly[0].id) {
            kiln__envelope__free_unpacked(env, NULL);
            continue;
        }
        memmove(fly, fly + 1, (n_fly - 1) * sizeof fly[0]);
        n_fly--;
        if (r->code == KILN_EAGAIN) {
            kiln__envelope__free_unpacked(env, NULL);
            n_fly = 0;
            next = written;
            struct timespec ts = {0, 200 * 1000000};
            nanosleep(&ts, NULL);
            continue;
        }
        if (r->code != 0) {
            rc = s_code(r);
            kiln__envelope__free_unpacked(env, NULL);
            goto cleanup;
        }
        if (r->offset != written || (r->data.len == 0 && written < r->size)) {
            kiln__envelope__free_unpacked(env, NULL);
            kiln_error_set("store: chunk of %s at %llu, expected %llu", digest,
                           (unsigned long long)r->offset, (unsigned long long)written);
            rc = KILN_EPROTO;
            goto cleanup;
        }
        size = r->size;
        if (r->data.len && pwrite(fd, r->data.data, r->data.len, (off_t)written) != (ssize_t)r->data.len) {
            kiln__envelope__free_unpacked(env, NULL);
            kiln_error_errno("cannot write %s", part);
            rc = KILN_ERROR;
            goto cleanup;
        }
        kiln_sha256_update(hs, r->data.data, r->data.len);
        written += r->data.len;
        st->moved += r->data.len;
        last_progress = s_now();
        kiln__envelope__free_unpacked(env, NULL);
        if (written >= size) {
            n_fly = 0;
            break;
        }
    }
    if (kiln_sha256_final(hs, got_hex) != 0) {
        rc = KILN_ERROR;
        goto cleanup;
    }
    if (strcmp(got_hex, digest + 7) != 0) {
        kiln_error_set("the blob %s from the coordinator hashes to sha256:%s: refused", digest,
                       got_hex);
        rc = KILN_EINVAL;
        goto cleanup;
    }
    if (close(fd) != 0 || rename(part, path) != 0) {
        fd = -1;
        kiln_error_errno("cannot keep %s", path);
        rc = KILN_ERROR;
        goto cleanup;
    }
    fd = -1;
    st->bytes = size;
    st->ms = s_now() - t0;
    rc = 0;
cleanup:
    kiln_sha256_destroy(&hs);
    if (fd >= 0)
        close(fd);
    if (rc != 0)
        unlink(part);
    return rc;
}

/* Oldest used first, until the blobs are within max_bytes. */
static void s_trim(const char *dir, uint64_t max_bytes, const char *keep)
{
    for (int round = 0; round < 10000; round++) {
        DIR *d = opendir(dir);
        struct dirent *de;
        uint64_t total = 0;
        time_t oldest = 0;
        char victim[PATH_MAX] = "";
        while (d && (de = readdir(d))) {
            if (strlen(de->d_name) != 64)
                continue;
            char p[PATH_MAX];
            struct stat sb;
            snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
            if (stat(p, &sb) != 0)
                continue;
            total += (uint64_t)sb.st_size;
            if (strcmp(de->d_name, keep) != 0 && (!victim[0] || sb.st_mtime < oldest)) {
                oldest = sb.st_mtime;
                snprintf(victim, sizeof victim, "%s", p);
            }
        }
        if (d)
            closedir(d);
        if (total <= max_bytes || !victim[0] || unlink(victim) != 0)
            return;
    }
}

int kiln_storeclient_fetch(kiln_storeclient_t *self, const char *digest, const char *cache_dir,
                           uint64_t max_bytes, char *out_path, size_t cap, kiln_store_xfer_t *st)
{
    char dir[PATH_MAX], got[72];
    int64_t t0 = s_now();
    memset(st, 0, sizeof *st);
    if (strncmp(digest, "sha256:", 7) != 0 || strlen(digest) != 71 ||
        strspn(digest + 7, "0123456789abcdef") != 64) {
        kiln_error_set("store: '%.80s' is not a digest", digest);
        return KILN_EINVAL;
    }
    snprintf(dir, sizeof dir, "%s/blobs", cache_dir);
    if ((mkdir(cache_dir, 0700) != 0 && errno != EEXIST) || (mkdir(dir, 0700) != 0 && errno != EEXIST)) {
        kiln_error_errno("cannot make %s", dir);
        return KILN_ERROR;
    }
    snprintf(out_path, cap, "%s/%s", dir, digest + 7);
    struct stat sb;
    if (stat(out_path, &sb) == 0) {
        /* The worker's own copy is checked too: a disk can rot. */
        if (kiln_store_file_digest(out_path, got) == 0 && strcmp(got, digest) == 0) {
            utimensat(AT_FDCWD, out_path, NULL, 0);
            st->local = true;
            st->bytes = (uint64_t)sb.st_size;
            st->ms = s_now() - t0;
            return 0;
        }
        unlink(out_path);
    }
    int rc = kiln_storeclient_download(self, digest, out_path, st);
    if (rc == 0)
        s_trim(dir, max_bytes, digest + 7);
    st->ms = s_now() - t0;
    return rc;
}
