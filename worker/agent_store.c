/* agent_store.c: the worker's relay between its jobs' built-in steps and
 * the farm's store (coordinator/proto_store.c).
 *
 * kiln-checkout, running a cache or artifact step, speaks StoreRequest
 * over a ZeroMQ ipc socket in the worker's own directory (mode 0700). It
 * names its job by a secret the worker gave that job's steps
 * (KILN_STORE_TOKEN); the worker puts in the job's key and fencing token
 * and passes the request on over its one encrypted connection, and the
 * answer back to the step. So the coordinator sees every request as the
 * worker's, for a job it leased to that worker, and scopes it by that job.
 *
 * Requests in flight are bounded (S_RELAY_MAX); a request the coordinator
 * never answers (the connection dropped) is forgotten after S_RELAY_TTL_MS
 * and the step, which times out sooner, asks again.
 */
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "common/clock.h"
#include "common/error.h"
#include "common/fs.h"
#include "common/log.h"
#include "common/transport.h"
#include "worker/agent_int.h"
#include "worker/imagestore.h"
#include "common/imageref.h"

#define S_RELAY_TTL_MS 120000

int kiln_agent_store_open(kiln_agent_t *self)
{
    char endpoint[PATH_MAX + 16];
    snprintf(self->store_socket, sizeof self->store_socket, "%s/.store.sock", self->cfg.work_dir);
    if (strlen(self->store_socket) > 100) {
        kiln_error_set("worker: %s: the work directory's path is too long for the store's socket "
                       "(at most 100 bytes with /.store.sock)",
                       self->store_socket);
        return KILN_EINVAL;
    }
    unlink(self->store_socket);
    snprintf(endpoint, sizeof endpoint, "ipc://%s", self->store_socket);
    self->store_sock = zmq_socket(self->zctx, ZMQ_ROUTER);
    int linger = 0, hwm = 1000;
    int64_t maxmsg = KILN_MSG_MAX;
    if (!self->store_sock || zmq_setsockopt(self->store_sock, ZMQ_LINGER, &linger, sizeof linger) != 0 ||
        zmq_setsockopt(self->store_sock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg) != 0 ||
        zmq_setsockopt(self->store_sock, ZMQ_SNDHWM, &hwm, sizeof hwm) != 0 ||
        zmq_bind(self->store_sock, endpoint) != 0) {
        kiln_error_set("worker: cannot listen on %s: %s", endpoint, zmq_strerror(zmq_errno()));
        return KILN_EINFRA;
    }
    chmod(self->store_socket, 0600);
    return 0;
}

void kiln_agent_store_close(kiln_agent_t *self)
{
    if (self->store_sock) {
        zmq_close(self->store_sock);
        self->store_sock = NULL;
        unlink(self->store_socket);
    }
}

void kiln_agent_store_secret(char out[KILN_AGENT_SECRET_LEN + 1])
{
    unsigned char raw[KILN_AGENT_SECRET_LEN / 2];
    randombytes_buf(raw, sizeof raw);
    sodium_bin2hex(out, KILN_AGENT_SECRET_LEN + 1, raw, sizeof raw);
}

static void s_to_step(kiln_agent_t *self, const unsigned char *id, size_t id_len, uint64_t req_id,
                      int code, const char *error)
{
    Kiln__Envelope env = KILN__ENVELOPE__INIT;
    Kiln__StoreReply r = KILN__STORE_REPLY__INIT;
    r.id = req_id;
    r.code = code;
    r.error = (char *)error;
    env.body_case = KILN__ENVELOPE__BODY_STORE_REPLY;
    env.store_reply = &r;
    kiln_transport_send(self->store_sock, id, id_len, &env);
}

/* A request from a step: whose job, then on to the coordinator. */
void kiln_agent_store_on_step(kiln_agent_t *self)
{
    for (int n = 0; n < 256; n++) {
        kiln_transport_msg_t msg;
        int rc = kiln_transport_recv(self->store_sock, true, &msg);
        if (rc == KILN_EAGAIN)
            return;
        if (rc != 0) {
            kiln_log_warn("store socket: dropped a message: %s", kiln_error_last());
            continue;
        }
        if (msg.env->body_case != KILN__ENVELOPE__BODY_STORE_REQUEST) {
            kiln_log_warn("store socket: dropped a message that is not a store request");
            kiln_transport_msg_clear(&msg);
            continue;
        }
        Kiln__StoreRequest *r = msg.env->store_request;
        kiln_wjob_t *job = NULL;
        for (int i = 0; i < self->cfg.slots && !job; i++)
            if (self->jobs[i] && strlen(r->job_secret) == KILN_AGENT_SECRET_LEN &&
                sodium_memcmp(self->jobs[i]->store_secret, r->job_secret,
                              KILN_AGENT_SECRET_LEN) == 0)
                job = self->jobs[i];
        if (!job) {
            s_to_step(self, msg.identity, msg.id_len, r->id, KILN_EDENIED,
                      "no job of this worker has that store token");
            kiln_transport_msg_clear(&msg);
            continue;
        }
        int64_t now = kiln_clock_mono_ms();
        kiln_relay_t *slot = NULL;
        for (size_t i = 0; i < KILN_AGENT_RELAY_MAX && !slot; i++)
            if (!self->relay[i].used || self->relay[i].expires < now)
                slot = &self->relay[i];
        if (!slot) {
            s_to_step(self, msg.identity, msg.id_len, r->id, KILN_EAGAIN,
                      "the worker has too many store requests in flight; try again");
            kiln_transport_msg_clear(&msg);
            continue;
        }
        slot->used = true;
        slot->expires = now + S_RELAY_TTL_MS;
        slot->step_id = r->id;
        slot->relay_id = ++self->relay_seq;
        memcpy(slot->identity, msg.identity, msg.id_len);
        slot->id_len = msg.id_len;
        /* The job's strings go in for the send only: the message's own
         * are put back before it is freed. */
        char *own_key = r->job_key, *own_secret = r->job_secret;
        r->id = slot->relay_id;
        r->job_key = job->a->job_key;
        r->token = job->a->token;
        r->job_secret = (char *)"";
        kiln_agent_send(self, msg.env);
        r->job_key = own_key;
        r->job_secret = own_secret;
        kiln_transport_msg_clear(&msg);
    }
}

/* The coordinator's answer, back to the step that asked. */
void kiln_agent_store_on_reply(kiln_agent_t *self, Kiln__StoreReply *r)
{
    for (size_t i = 0; i < KILN_AGENT_RELAY_MAX; i++) {
        kiln_relay_t *slot = &self->relay[i];
        if (!slot->used || slot->relay_id != r->id)
            continue;
        slot->used = false;
        r->id = slot->step_id;
        Kiln__Envelope env = KILN__ENVELOPE__INIT;
        env.body_case = KILN__ENVELOPE__BODY_STORE_REPLY;
        env.store_reply = r;
        if (kiln_transport_send(self->store_sock, slot->identity, slot->id_len, &env) != 0)
            kiln_log_debug("store socket: the step that asked is gone: %s", kiln_error_last());
        return;
    }
    kiln_log_debug("store reply %llu: nobody waits for it", (unsigned long long)r->id);
}

/* ---- what the worker holds warm ----------------------------------------- */

static int s_cmp_str(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

static void s_hold(kiln_agent_t *self, const char *kind, const char *hex, size_t len)
{
    if (self->n_holds >= KILN_AGENT_HOLDS_MAX || strlen(hex) < len)
        return;
    snprintf(self->holds[self->n_holds++], sizeof self->holds[0], "%s:%.*s", kind, (int)len, hex);
}

/* Scans the worker's caches (entries' and artifacts' blobs) and mirrors:
 * a handful of directories, at most once every few seconds. */
static void s_scan_holds(kiln_agent_t *self)
{
    self->n_holds = 0;
    DIR *top = opendir(self->cache_dir);
    struct dirent *sd;
    while (top && (sd = readdir(top))) {
        if (sd->d_name[0] == '.')
            continue;
        char dir[PATH_MAX + 256];
        snprintf(dir, sizeof dir, "%s/%s", self->cache_dir, sd->d_name);
        bool blobs = strcmp(sd->d_name, "blobs") == 0;
        DIR *d = opendir(dir);
        struct dirent *de;
        while (d && (de = readdir(d))) {
            size_t n = strlen(de->d_name);
            if (blobs && n == 64) {
                s_hold(self, "c", de->d_name, 16);
            } else if (!blobs && n > 5 && strcmp(de->d_name + n - 5, ".json") == 0) {
                char p[PATH_MAX * 2];
                snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
                json_t *j = json_load_file(p, 0, NULL);
                const char *dg = json_string_value(json_object_get(j, "digest"));
                if (dg && strncmp(dg, "sha256:", 7) == 0)
                    s_hold(self, "c", dg + 7, 16);
                json_decref(j);
            }
        }
        if (d)
            closedir(d);
    }
    if (top)
        closedir(top);
    DIR *g = opendir(self->git_cache);
    while (g && (sd = readdir(g))) {
        size_t n = strlen(sd->d_name);
        if (n > 4 && strcmp(sd->d_name + n - 4, ".git") == 0) {
            char hex[64];
            snprintf(hex, sizeof hex, "%.*s", (int)(n - 4), sd->d_name);
            s_hold(self, "m", hex, strlen(hex));
        }
    }
    if (g)
        closedir(g);
    /* The native runtime's images, by the hash of their reference (the
     * coordinator hashes a job's container image the same way). */
    char **refs;
    size_t n_refs;
    kiln_imagestore_list(self->native.store, &refs, &n_refs);
    for (size_t i = 0; i < n_refs; i++) {
        char hex[21];
        kiln_imageref_hash(refs[i], hex);
        s_hold(self, "i", hex, 16);
    }
    kiln_imagestore_list_free(refs, n_refs);
    /* And their blobs: the layers, by which a worker holding an image's
     * base is warmer for it than one holding nothing. */
    char **blobs;
    size_t n_blobs;
    kiln_imagestore_blobs(self->native.store, &blobs, &n_blobs);
    for (size_t i = 0; i < n_blobs; i++)
        if (strlen(blobs[i]) == 64)
            s_hold(self, "l", blobs[i], 16);
    kiln_fs_names_free(blobs, n_blobs);
    /* The engine's, as its last listing has them (unless the worker never
     * runs containers through it). */
    char list[PATH_MAX + 32], err[256];
    char *text = NULL;
    size_t len = 0;
    kiln_container_images_path(self->cfg.work_dir, list, sizeof list);
    if (self->engine.path[0] && strcmp(self->native.mode, "native") != 0 &&
        kiln_fs_read_regular(list, 1u << 20, &text, &len, err, sizeof err) == 0) {
        for (char *line = text; line && *line;) {
            char *nl = strchr(line, '\n');
            if (nl)
                *nl = '\0';
            kiln_imageref_t ref;
            char why[300], hex[21];
            if (kiln_imageref_parse(line, &ref, why, sizeof why) == 0) {
                kiln_imageref_hash(ref.canonical, hex);
                s_hold(self, "i", hex, 16);
            }
            line = nl ? nl + 1 : NULL;
        }
    }
    free(text);
    qsort(self->holds, self->n_holds, sizeof self->holds[0], s_cmp_str);
}

void kiln_agent_store_holdings(kiln_agent_t *self, Kiln__Heartbeat *hb)
{
    int64_t now = kiln_clock_mono_ms();
    if (self->null_executor || now < self->holds_at)
        return;
    self->holds_at = now + 5000;
    s_scan_holds(self);
    unsigned char h[16];
    crypto_generichash(h, sizeof h, (const unsigned char *)self->holds,
                       self->n_holds * sizeof self->holds[0], NULL, 0);
    if (self->holds_sent && memcmp(h, self->holds_hash, sizeof h) == 0)
        return;
    memcpy(self->holds_hash, h, sizeof h);
    self->holds_sent = true;
    for (size_t i = 0; i < self->n_holds; i++)
        self->holds_ptr[i] = self->holds[i];
    hb->holds_set = true;
    hb->holds = self->holds_ptr;
    hb->n_holds = self->n_holds;
}
