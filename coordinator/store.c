/* store.c: the farm's content-addressed blob store (see store.h) and its
 * disk backend.
 *
 * An upload's hash is carried chunk by chunk (one SHA-256 state per upload
 * in progress, a bounded table), so the check when the last chunk arrives
 * costs nothing more than the bytes already seen; after a restart the
 * state is rebuilt once by reading back what the upload had kept.
 */
#include "coordinator/store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/digest.h"
#include "common/error.h"
#include "common/log.h"

#define S_UPLOADS_MAX 64

typedef struct {
    char hex[65];
    uint64_t have; /* bytes hashed into state */
    kiln_sha256_t *state;
    bool used;
} s_upload_t;

struct kiln_store {
    const kiln_store_backend_t *ops;
    void *be;
    s_upload_t uploads[S_UPLOADS_MAX];
    unsigned next_victim;
    kiln_store_stats_t stats;
};

/* ------------------------------------------------------------ disk backend */

typedef struct {
    char dir[PATH_MAX];
} s_disk_t;

static void s_blob_path(const s_disk_t *d, const char *hex, char *out, size_t cap)
{
    snprintf(out, cap, "%s/blobs/%.2s/%s", d->dir, hex, hex);
}

static void s_part_path(const s_disk_t *d, const char *hex, char *out, size_t cap)
{
    snprintf(out, cap, "%s/partial/%s", d->dir, hex);
}

static int s_disk_stat(void *be, const char *hex, uint64_t *size, uint64_t *partial)
{
    char p[PATH_MAX + 160];
    struct stat sb;
    s_blob_path(be, hex, p, sizeof p);
    *size = stat(p, &sb) == 0 ? (uint64_t)sb.st_size : UINT64_MAX;
    s_part_path(be, hex, p, sizeof p);
    *partial = stat(p, &sb) == 0 ? (uint64_t)sb.st_size : 0;
    return 0;
}

static int s_pread_file(const char *p, uint64_t off, void *buf, size_t cap, size_t *got)
{
    int fd = open(p, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        if (errno == ENOENT) {
            kiln_error_set("store: no such blob");
            return KILN_ENOTFOUND;
        }
        kiln_error_errno("store: cannot open %s", p);
        return KILN_EINFRA;
    }
    ssize_t n = pread(fd, buf, cap, (off_t)off);
    int saved = errno;
    close(fd);
    if (n < 0) {
        errno = saved;
        kiln_error_errno("store: cannot read %s", p);
        return KILN_EINFRA;
    }
    *got = (size_t)n;
    return 0;
}

static int s_disk_read(void *be, const char *hex, uint64_t off, void *buf, size_t cap, size_t *got)
{
    char p[PATH_MAX + 160];
    s_blob_path(be, hex, p, sizeof p);
    return s_pread_file(p, off, buf, cap, got);
}

static int s_disk_read_partial(void *be, const char *hex, uint64_t off, void *buf, size_t cap,
                               size_t *got)
{
    char p[PATH_MAX + 160];
    s_part_path(be, hex, p, sizeof p);
    return s_pread_file(p, off, buf, cap, got);
}

static int s_disk_append(void *be, const char *hex, uint64_t off, const void *data, size_t len)
{
    char p[PATH_MAX + 160];
    s_part_path(be, hex, p, sizeof p);
    int fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        kiln_error_errno("store: cannot write %s", p);
        return KILN_EINFRA;
    }
    /* What a failed write may have left past off is cut, so the upload
     * holds exactly the bytes acknowledged. */
    const char *b = data;
    size_t done = 0;
    int rc = 0;
    if (ftruncate(fd, (off_t)off) != 0)
        rc = -1;
    while (rc == 0 && done < len) {
        ssize_t n = pwrite(fd, b + done, len - done, (off_t)(off + done));
        if (n <= 0)
            rc = -1;
        else
            done += (size_t)n;
    }
    if (rc != 0) {
        kiln_error_errno("store: cannot write %s", p);
        if (ftruncate(fd, (off_t)off) != 0) { /* best effort: the next chunk cuts again */
        }
        close(fd);
        return KILN_EINFRA;
    }
    if (close(fd) != 0) {
        kiln_error_errno("store: cannot write %s", p);
        return KILN_EINFRA;
    }
    return 0;
}

static int s_disk_seal(void *be, const char *hex)
{
    s_disk_t *d = be;
    char part[PATH_MAX + 160], blob[PATH_MAX + 160], sub[PATH_MAX + 16];
    s_part_path(d, hex, part, sizeof part);
    s_blob_path(d, hex, blob, sizeof blob);
    snprintf(sub, sizeof sub, "%s/blobs/%.2s", d->dir, hex);
    if (mkdir(sub, 0700) != 0 && errno != EEXIST) {
        kiln_error_errno("store: cannot make %s", sub);
        return KILN_EINFRA;
    }
    int fd = open(part, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) != 0) {
        kiln_error_errno("store: cannot sync %s", part);
        if (fd >= 0)
            close(fd);
        return KILN_EINFRA;
    }
    close(fd);
    if (rename(part, blob) != 0) {
        kiln_error_errno("store: cannot keep %s", blob);
        return KILN_EINFRA;
    }
    return 0;
}

static int s_disk_remove(void *be, const char *hex)
{
    char p[PATH_MAX + 160];
    s_blob_path(be, hex, p, sizeof p);
    if (unlink(p) != 0 && errno != ENOENT) {
        kiln_error_errno("store: cannot remove %s", p);
        return KILN_EINFRA;
    }
    s_part_path(be, hex, p, sizeof p);
    unlink(p);
    return 0;
}

static int s_disk_sweep_partial(void *be, int64_t max_age_s, unsigned *n)
{
    s_disk_t *d = be;
    char dir[PATH_MAX + 16];
    *n = 0;
    snprintf(dir, sizeof dir, "%s/partial", d->dir);
    DIR *dp = opendir(dir);
    if (!dp) {
        kiln_error_errno("store: cannot read %s", dir);
        return KILN_EINFRA;
    }
    time_t now = time(NULL);
    struct dirent *de;
    while ((de = readdir(dp))) {
        char p[PATH_MAX + 300];
        struct stat sb;
        if (strlen(de->d_name) != 64)
            continue;
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        if (lstat(p, &sb) == 0 && now - sb.st_mtime > max_age_s && unlink(p) == 0)
            (*n)++;
    }
    closedir(dp);
    return 0;
}

static void s_disk_destroy(void *be)
{
    free(be);
}

static const kiln_store_backend_t s_disk_ops = {
    .name = "disk",
    .stat = s_disk_stat,
    .read = s_disk_read,
    .append = s_disk_append,
    .seal = s_disk_seal,
    .remove = s_disk_remove,
    .read_partial = s_disk_read_partial,
    .sweep_partial = s_disk_sweep_partial,
    .destroy = s_disk_destroy,
};

int kiln_store_new_disk(kiln_store_t **out, const char *dir)
{
    *out = NULL;
    s_disk_t *d = calloc(1, sizeof *d);
    kiln_store_t *self = calloc(1, sizeof *self);
    char p[PATH_MAX + 16];
    int rc = KILN_ERROR;
    if (!d || !self) {
        kiln_error_set("out of memory");
        goto cleanup;
    }
    if (strlen(dir) >= sizeof d->dir - 100) {
        kiln_error_set("store: directory name too long: %s", dir);
        goto cleanup;
    }
    snprintf(d->dir, sizeof d->dir, "%s", dir);
    const char *subs[] = {"", "/blobs", "/partial"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s%s", dir, subs[i]);
        if (mkdir(p, 0700) != 0 && errno != EEXIST) {
            kiln_error_errno("store: cannot make %s", p);
            goto cleanup;
        }
    }
    self->ops = &s_disk_ops;
    self->be = d;
    *out = self;
    return 0;
cleanup:
    free(d);
    free(self);
    return rc;
}

void kiln_store_destroy(kiln_store_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    kiln_store_t *self = *self_p;
    for (size_t i = 0; i < S_UPLOADS_MAX; i++)
        kiln_sha256_destroy(&self->uploads[i].state);
    self->ops->destroy(self->be);
    free(self);
    *self_p = NULL;
}

int kiln_store_parse_digest(const char *digest, char hex[65])
{
    if (!digest || strncmp(digest, "sha256:", 7) != 0 || strlen(digest) != KILN_STORE_DIGEST_LEN) {
        kiln_error_set("store: '%.80s' is not a digest (sha256:<64 hex digits>)",
                       digest ? digest : "");
        return KILN_EINVAL;
    }
    for (size_t i = 0; i < 64; i++) {
        char c = digest[7 + i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            kiln_error_set("store: '%.80s' is not a digest (lower-case hex)", digest);
            return KILN_EINVAL;
        }
        hex[i] = c;
    }
    hex[64] = '\0';
    return 0;
}

int kiln_store_stat(kiln_store_t *self, const char *digest, uint64_t *size, uint64_t *have)
{
    char hex[65];
    uint64_t partial = 0;
    int rc = kiln_store_parse_digest(digest, hex);
    if (rc == 0)
        rc = self->ops->stat(self->be, hex, size, &partial);
    if (rc == 0)
        *have = *size != UINT64_MAX ? *size : partial;
    return rc;
}

/* The hashing state of an upload at `have` bytes: found, or made by
 * reading back what the upload holds (after a restart, or when the table
 * had to give its slot to another upload). */
static s_upload_t *s_upload(kiln_store_t *self, const char *hex, uint64_t have)
{
    s_upload_t *u = NULL;
    for (size_t i = 0; i < S_UPLOADS_MAX; i++)
        if (self->uploads[i].used && strcmp(self->uploads[i].hex, hex) == 0)
            u = &self->uploads[i];
    if (u && u->have == have)
        return u;
    if (!u) {
        for (size_t i = 0; i < S_UPLOADS_MAX && !u; i++)
            if (!self->uploads[i].used)
                u = &self->uploads[i];
        if (!u)
            u = &self->uploads[self->next_victim++ % S_UPLOADS_MAX];
    }
    kiln_sha256_t *state = u->state;
    memset(u, 0, sizeof *u);
    u->state = state;
    snprintf(u->hex, sizeof u->hex, "%s", hex);
    if ((!u->state && kiln_sha256_new(&u->state) != 0) || kiln_sha256_reset(u->state) != 0)
        return NULL;
    static unsigned char buf[256 * 1024];
    while (u->have < have) {
        size_t got = 0;
        size_t want = have - u->have < sizeof buf ? (size_t)(have - u->have) : sizeof buf;
        if (self->ops->read_partial(self->be, hex, u->have, buf, want, &got) != 0 || got == 0)
            return NULL;
        if (kiln_sha256_update(u->state, buf, got) != 0)
            return NULL;
        u->have += got;
    }
    u->used = true;
    return u;
}

int kiln_store_put(kiln_store_t *self, const char *digest, uint64_t off, const void *data,
                   size_t len, bool last, uint64_t *have)
{
    char hex[65];
    uint64_t size = 0, partial = 0;
    int rc = kiln_store_parse_digest(digest, hex);
    if (rc != 0)
        return rc;
    if (len > KILN_STORE_CHUNK_MAX) {
        kiln_error_set("store: chunk of %zu bytes (at most %u)", len, KILN_STORE_CHUNK_MAX);
        return KILN_ETOOBIG;
    }
    if ((rc = self->ops->stat(self->be, hex, &size, &partial)) != 0)
        return rc;
    if (size != UINT64_MAX) {
        *have = size;
        return 0;
    }
    *have = partial;
    if (off != partial) {
        kiln_error_set("store: %s holds %llu bytes, not %llu", digest, (unsigned long long)partial,
                       (unsigned long long)off);
        return KILN_ESTALE;
    }
    s_upload_t *u = s_upload(self, hex, partial);
    if (!u) {
        /* What the upload held cannot be read back: it starts over. */
        self->ops->remove(self->be, hex);
        *have = 0;
        kiln_error_set("store: the upload of %s could not be read back; start again", digest);
        return KILN_ESTALE;
    }
    if (len && (rc = self->ops->append(self->be, hex, off, data, len)) != 0)
        return rc;
    if ((rc = kiln_sha256_update(u->state, data, len)) != 0)
        return rc;
    u->have += len;
    *have = u->have;
    self->stats.puts++;
    self->stats.put_bytes += len;
    if (!last)
        return 0;
    char got[65];
    u->used = false;
    if ((rc = kiln_sha256_final(u->state, got)) != 0)
        return rc;
    if (strcmp(got, hex) != 0) {
        self->ops->remove(self->be, hex);
        self->stats.refused++;
        *have = 0;
        kiln_error_set("store: the %llu bytes sent as %s hash to sha256:%s; refused",
                       (unsigned long long)u->have, digest, got);
        return KILN_EINVAL;
    }
    if ((rc = self->ops->seal(self->be, hex)) != 0)
        return rc;
    self->stats.blobs_kept++;
    return 0;
}

int kiln_store_get(kiln_store_t *self, const char *digest, uint64_t off, void *buf, size_t cap,
                   size_t *got, uint64_t *size)
{
    char hex[65];
    uint64_t partial = 0;
    int rc = kiln_store_parse_digest(digest, hex);
    if (rc != 0)
        return rc;
    if ((rc = self->ops->stat(self->be, hex, size, &partial)) != 0)
        return rc;
    if (*size == UINT64_MAX) {
        kiln_error_set("store: no blob %s", digest);
        return KILN_ENOTFOUND;
    }
    if (cap > KILN_STORE_CHUNK_MAX)
        cap = KILN_STORE_CHUNK_MAX;
    *got = 0;
    if (off >= *size)
        return 0;
    if ((rc = self->ops->read(self->be, hex, off, buf, cap, got)) != 0)
        return rc;
    self->stats.gets++;
    self->stats.get_bytes += *got;
    return 0;
}

int kiln_store_remove(kiln_store_t *self, const char *digest)
{
    char hex[65];
    int rc = kiln_store_parse_digest(digest, hex);
    if (rc == 0 && (rc = self->ops->remove(self->be, hex)) == 0)
        self->stats.blobs_removed++;
    return rc;
}

int kiln_store_sweep_partial(kiln_store_t *self, int64_t max_age_s, unsigned *n)
{
    int rc = self->ops->sweep_partial(self->be, max_age_s, n);
    /* A dropped upload's hashing state is stale: rebuilt (from nothing) if
     * the upload is ever resumed. */
    for (size_t i = 0; rc == 0 && *n && i < S_UPLOADS_MAX; i++)
        self->uploads[i].used = false;
    return rc;
}

void kiln_store_stats(const kiln_store_t *self, kiln_store_stats_t *out)
{
    *out = self->stats;
}

const char *kiln_store_backend_name(const kiln_store_t *self)
{
    return self->ops->name;
}
