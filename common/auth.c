/* auth.c: the ZAP allow-list handler (see auth.h). */
#include "common/auth.h"

#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "common/error.h"
#include "common/keys.h"
#include "common/log.h"

#define KILN_AUTH_NAME_MAX 64
#define KILN_ZAP_FRAMES_MAX 16

typedef struct {
    unsigned char key[32];
    kiln_role_t role;
    char name[KILN_AUTH_NAME_MAX];
} s_entry_t;

struct kiln_auth {
    void *sock;
    char *allow_dir;
    s_entry_t *entries; /* sorted by key for bsearch */
    size_t n_entries;
};

static int s_cmp(const void *a, const void *b)
{
    return memcmp(((const s_entry_t *)a)->key, ((const s_entry_t *)b)->key, 32);
}

/* Reads the .pub files of ALLOW/<sub> into list (grown, bounded by KILN_AUTH_MAX_KEYS). */
static int s_load_dir(const char *allow_dir, const char *sub, kiln_role_t role, s_entry_t **list,
                      size_t *n, size_t *cap)
{
    char dirpath[4096];
    int rc = -1;
    snprintf(dirpath, sizeof dirpath, "%s/%s", allow_dir, sub);
    DIR *d = opendir(dirpath);
    if (!d)
        return 0; /* an absent role directory admits nobody in that role */
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        if (len < 5 || strcmp(de->d_name + len - 4, ".pub") != 0)
            continue;
        char path[4096 + 256];
        snprintf(path, sizeof path, "%s/%s", dirpath, de->d_name);
        kiln_keypair_t kp;
        if (kiln_keys_load(&kp, path) != 0) {
            kiln_log_warn("auth: skipping %s: %s", path, kiln_error_last());
            continue;
        }
        if (*n >= KILN_AUTH_MAX_KEYS) {
            kiln_error_set("auth: more than %d keys in %s", KILN_AUTH_MAX_KEYS, allow_dir);
            goto cleanup;
        }
        if (*n == *cap) {
            size_t ncap = *cap ? *cap * 2 : 64;
            s_entry_t *grown = realloc(*list, ncap * sizeof *grown);
            if (!grown) {
                kiln_error_set("auth: out of memory");
                goto cleanup;
            }
            *list = grown;
            *cap = ncap;
        }
        s_entry_t *e = &(*list)[(*n)++];
        kiln_keys_decode(kp.public_z85, e->key);
        e->role = role;
        size_t nlen = len - 4 < KILN_AUTH_NAME_MAX - 1 ? len - 4 : KILN_AUTH_NAME_MAX - 1;
        memcpy(e->name, de->d_name, nlen);
        e->name[nlen] = '\0';
    }
    rc = 0;
cleanup:
    closedir(d);
    return rc;
}

int kiln_auth_reload(kiln_auth_t *self)
{
    s_entry_t *list = NULL;
    size_t n = 0, cap = 0;
    if (s_load_dir(self->allow_dir, "workers", KILN_ROLE_WORKER, &list, &n, &cap) != 0 ||
        s_load_dir(self->allow_dir, "clients", KILN_ROLE_CLIENT, &list, &n, &cap) != 0) {
        free(list);
        return -1;
    }
    if (n > 1)
        qsort(list, n, sizeof *list, s_cmp);
    free(self->entries);
    self->entries = list;
    self->n_entries = n;
    kiln_log_info("auth: %zu worker keys, %zu client keys admitted",
                  kiln_auth_count(self, KILN_ROLE_WORKER), kiln_auth_count(self, KILN_ROLE_CLIENT));
    return 0;
}

int kiln_auth_new(kiln_auth_t **out, void *zctx, const char *allow_dir)
{
    int rc = -1;
    kiln_auth_t *self = calloc(1, sizeof *self);
    *out = NULL;
    if (!self || !(self->allow_dir = strdup(allow_dir))) {
        kiln_error_set("auth: out of memory");
        goto cleanup;
    }
    if (kiln_auth_reload(self) != 0)
        goto cleanup;
    self->sock = zmq_socket(zctx, ZMQ_REP);
    if (!self->sock || zmq_bind(self->sock, "inproc://zeromq.zap.01") != 0) {
        kiln_error_set("auth: cannot bind the ZAP handler: %s", zmq_strerror(zmq_errno()));
        goto cleanup;
    }
    *out = self;
    self = NULL;
    rc = 0;
cleanup:
    kiln_auth_destroy(&self);
    return rc;
}

void kiln_auth_destroy(kiln_auth_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    kiln_auth_t *self = *self_p;
    if (self->sock)
        zmq_close(self->sock);
    free(self->entries);
    free(self->allow_dir);
    free(self);
    *self_p = NULL;
}

void *kiln_auth_socket(kiln_auth_t *self)
{
    return self->sock;
}

size_t kiln_auth_count(const kiln_auth_t *self, kiln_role_t role)
{
    size_t n = 0;
    for (size_t i = 0; i < self->n_entries; i++)
        n += self->entries[i].role == role;
    return n;
}

kiln_role_t kiln_auth_role(const char *user_id, const char **name_out, char *key_out)
{
    kiln_role_t role = KILN_ROLE_NONE;
    if (!user_id)
        return KILN_ROLE_NONE;
    if (strncmp(user_id, "worker:", 7) == 0)
        role = KILN_ROLE_WORKER;
    else if (strncmp(user_id, "client:", 7) == 0)
        role = KILN_ROLE_CLIENT;
    /* "ROLE:KEY:NAME", the key 40 characters of Z85 (which has ':' in its
     * alphabet, hence found by length, not by separator). */
    if (role == KILN_ROLE_NONE || strnlen(user_id + 7, KILN_KEY_Z85_LEN + 1) <= KILN_KEY_Z85_LEN ||
        user_id[7 + KILN_KEY_Z85_LEN] != ':')
        return KILN_ROLE_NONE;
    if (name_out)
        *name_out = user_id + 7 + KILN_KEY_Z85_LEN + 1;
    if (key_out) {
        memcpy(key_out, user_id + 7, KILN_KEY_Z85_LEN);
        key_out[KILN_KEY_Z85_LEN] = '\0';
    }
    return role;
}

static void s_send_str(void *sock, const char *s, bool more)
{
    zmq_send(sock, s, strlen(s), more ? ZMQ_SNDMORE : 0);
}

/* Handles one request that has arrived on the REP socket. */
static void s_handle_one(kiln_auth_t *self, zmq_msg_t *frames, int n)
{
    /* RFC 27: version, request id, domain, address, identity, mechanism,
     * credentials... */
    const char *status = "400", *text = "refused";
    char user_id[KILN_AUTH_NAME_MAX + KILN_KEY_Z85_LEN + 16] = "";
    char address[128] = "?", domain[64] = "";
    if (n >= 6) {
        size_t alen = zmq_msg_size(&frames[3]) < sizeof address - 1 ? zmq_msg_size(&frames[3])
                                                                      : sizeof address - 1;
        memcpy(address, zmq_msg_data(&frames[3]), alen);
        address[alen] = '\0';
        size_t dlen = zmq_msg_size(&frames[2]) < sizeof domain - 1 ? zmq_msg_size(&frames[2])
                                                                    : sizeof domain - 1;
        memcpy(domain, zmq_msg_data(&frames[2]), dlen);
        domain[dlen] = '\0';
    }
    bool curve = n == 7 && zmq_msg_size(&frames[5]) == 5 &&
                 memcmp(zmq_msg_data(&frames[5]), "CURVE", 5) == 0 &&
                 zmq_msg_size(&frames[6]) == 32;
    if (!curve) {
        kiln_log_warn("auth: refused a non-CURVE handshake from %s", address);
        text = "CURVE required";
    } else if (strcmp(domain, KILN_ZAP_DOMAIN) != 0) {
        kiln_log_warn("auth: refused a handshake for domain '%s' from %s", domain, address);
        text = "wrong domain";
    } else {
        s_entry_t probe;
        memcpy(probe.key, zmq_msg_data(&frames[6]), 32);
        s_entry_t *e = self->n_entries
                           ? bsearch(&probe, self->entries, self->n_entries, sizeof probe, s_cmp)
                           : NULL;
        if (e) {
            char z85[KILN_KEY_Z85_LEN + 1];
            zmq_z85_encode(z85, probe.key, 32);
            status = "200";
            text = "OK";
            snprintf(user_id, sizeof user_id, "%s:%s:%s",
                     e->role == KILN_ROLE_WORKER ? "worker" : "client", z85, e->name);
            kiln_log_debug("auth: admitted %s from %s", user_id, address);
        } else {
            char z85[KILN_KEY_Z85_LEN + 1];
            zmq_z85_encode(z85, probe.key, 32);
            kiln_log_warn("auth: refused key %s from %s: not in the allow-list", z85, address);
            text = "key not allowed";
        }
    }
    s_send_str(self->sock, "1.0", true);
    if (n >= 2)
        zmq_send(self->sock, zmq_msg_data(&frames[1]), zmq_msg_size(&frames[1]), ZMQ_SNDMORE);
    else
        s_send_str(self->sock, "", true);
    s_send_str(self->sock, status, true);
    s_send_str(self->sock, text, true);
    s_send_str(self->sock, user_id, true);
    s_send_str(self->sock, "", false);
}

void kiln_auth_handle(kiln_auth_t *self)
{
    for (;;) {
        zmq_msg_t frames[KILN_ZAP_FRAMES_MAX];
        int n = 0, more = 1;
        while (more) {
            zmq_msg_t part;
            zmq_msg_init(&part);
            if (zmq_msg_recv(&part, self->sock, ZMQ_DONTWAIT) == -1) {
                zmq_msg_close(&part);
                if (n == 0)
                    return; /* nothing pending */
                break;
            }
            more = zmq_msg_more(&part);
            if (n < KILN_ZAP_FRAMES_MAX)
                frames[n++] = part;
            else
                zmq_msg_close(&part);
        }
        s_handle_one(self, frames, n);
        for (int i = 0; i < n; i++)
            zmq_msg_close(&frames[i]);
    }
}
