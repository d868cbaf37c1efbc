/* imagestore.c: the native runtime's image store, the parts the worker
 * itself needs (listing for its heartbeat, holds, eviction); kiln-image
 * fills the store (see imagestore.h). */
#include "worker/imagestore.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "common/fs.h"
#include "common/imageref.h"

void kiln_imagestore_ref_name(const char *ref, char *out, size_t cap)
{
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)ref; *p && o + 4 < cap; p++) {
        if (isalnum(*p) || *p == '_' || *p == '-')
            out[o++] = (char)*p;
        else
            o += (size_t)snprintf(out + o, cap - o, "%%%02X", *p);
    }
    out[o] = '\0';
}

static json_t *s_load(const char *dir, const char *sub, const char *name)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s/%s", dir, sub, name);
    return json_load_file(path, 0, NULL);
}

static int s_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void kiln_imagestore_list(const char *dir, char ***refs, size_t *n)
{
    *refs = NULL;
    *n = 0;
    char sub[4200];
    snprintf(sub, sizeof sub, "%s/refs", dir);
    char **names = NULL;
    size_t n_names = 0;
    kiln_fs_names(sub, 0, &names, &n_names);
    char **out = n_names ? calloc(n_names, sizeof *out) : NULL;
    size_t k = 0;
    for (size_t i = 0; out && i < n_names; i++) {
        if (strchr(names[i], '.'))
            continue; /* a temporary file, being written */
        json_t *doc = s_load(dir, "refs", names[i]);
        const char *ref = json_string_value(json_object_get(doc, "ref"));
        if (ref && (out[k] = strdup(ref)) != NULL)
            k++;
        json_decref(doc);
    }
    kiln_fs_names_free(names, n_names);
    if (k)
        qsort(out, k, sizeof *out, s_cmp);
    *refs = out;
    *n = k;
}

void kiln_imagestore_list_free(char **refs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(refs[i]);
    free(refs);
}

void kiln_imagestore_release(const char *dir, const char *job)
{
    char path[4200];
    if (job) {
        snprintf(path, sizeof path, "%s/holds", dir);
        char **names = NULL;
        size_t n = 0, len = strlen(job);
        kiln_fs_names(path, 0, &names, &n);
        for (size_t i = 0; i < n; i++) {
            if (strncmp(names[i], job, len) != 0 || (names[i][len] && names[i][len] != '.'))
                continue;
            snprintf(path, sizeof path, "%s/holds/%s", dir, names[i]);
            unlink(path);
        }
        kiln_fs_names_free(names, n);
        return;
    }
    snprintf(path, sizeof path, "%s/holds", dir);
    kiln_fs_rmtree(path);
}

typedef struct {
    char *name;
    time_t used;
    json_t *doc;
    bool held, gone;
} s_ref_t;

static bool s_needs(const s_ref_t *refs, size_t n, const char *key, const char *value)
{
    for (size_t i = 0; i < n; i++) {
        if (refs[i].gone)
            continue;
        json_t *v = json_object_get(refs[i].doc, key);
        if (json_is_string(v) && strcmp(json_string_value(v), value) == 0)
            return true;
        size_t j;
        json_t *item;
        json_array_foreach(v, j, item) {
            if (strcmp(json_string_value(item) ?: "", value) == 0)
                return true;
        }
    }
    return false;
}

/* Whether a temporary name's writer (NAME.part-PID, tmp-HEX.PID) is gone:
 * a pull or a build cut short by a kill leaves them. */
static bool s_orphan(const char *name)
{
    const char *p = strrchr(name, strstr(name, ".part-") ? '-' : '.');
    if (!p || !p[1] || strspn(p + 1, "0123456789") != strlen(p + 1))
        return false;
    pid_t pid = (pid_t)atol(p + 1);
    return pid > 0 && kill(pid, 0) != 0 && errno == ESRCH;
}

/* Removes the chains and blobs no remaining image needs; the bytes left. */
static uint64_t s_sweep(const char *dir, const s_ref_t *refs, size_t n)
{
    uint64_t total = 0;
    char sub[4200], path[4400];
    char **names = NULL;
    size_t n_names = 0;
    snprintf(sub, sizeof sub, "%s/chains", dir);
    kiln_fs_names(sub, 0, &names, &n_names);
    for (size_t i = 0; i < n_names; i++) {
        const char *nm = names[i];
        size_t len = strlen(nm);
        if (len == 64 + 5 && strcmp(nm + 64, ".json") == 0) {
            char hex[65];
            snprintf(hex, sizeof hex, "%.64s", nm);
            snprintf(path, sizeof path, "%s/%s", sub, hex);
            if (s_needs(refs, n, "chains", hex)) {
                json_t *meta = s_load(dir, "chains", nm);
                total += (uint64_t)json_integer_value(json_object_get(meta, "bytes"));
                json_decref(meta);
                continue;
            }
            kiln_fs_rmtree(path);
            snprintf(path, sizeof path, "%s/%s", sub, nm);
            unlink(path);
        } else if (strncmp(nm, "tmp-", 4) == 0 && s_orphan(nm)) {
            snprintf(path, sizeof path, "%s/%s", sub, nm);
            kiln_fs_rmtree(path);
        } else if (len == 64 && !s_needs(refs, n, "chains", nm)) {
            /* A chain whose description is gone (an eviction cut short). */
            snprintf(path, sizeof path, "%s/%s.json", sub, nm);
            if (access(path, F_OK) != 0) {
                snprintf(path, sizeof path, "%s/%s", sub, nm);
                kiln_fs_rmtree(path);
            }
        }
    }
    kiln_fs_names_free(names, n_names);
    snprintf(sub, sizeof sub, "%s/blobs/sha256", dir);
    kiln_fs_names(sub, 0, &names, &n_names);
    for (size_t i = 0; i < n_names; i++) {
        char digest[80];
        snprintf(digest, sizeof digest, "sha256:%s", names[i]);
        snprintf(path, sizeof path, "%s/%s", sub, names[i]);
        if (strlen(names[i]) == 64 &&
            (s_needs(refs, n, "layers", digest) || s_needs(refs, n, "manifest", digest) ||
             s_needs(refs, n, "config", digest))) {
            struct stat st;
            if (stat(path, &st) == 0)
                total += (uint64_t)st.st_size;
            continue;
        }
        if (strlen(names[i]) == 64 || (strstr(names[i], ".part-") && s_orphan(names[i])))
            unlink(path);
    }
    kiln_fs_names_free(names, n_names);
    return total;
}

int kiln_imagestore_lock(const char *dir, int how, char *why, size_t cap)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/lock", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd >= 0 && flock(fd, how) == 0)
        return fd;
    int e = errno;
    if (fd >= 0)
        close(fd);
    if (fd >= 0 && (how & LOCK_NB) && e == EWOULDBLOCK)
        return -2;
    snprintf(why, cap, "cannot lock %s: %s", path, strerror(e));
    return -1;
}

int kiln_imagestore_gc(const char *dir, uint64_t max_bytes, int *evicted, char *why, size_t cap)
{
    *evicted = 0;
    char path[4200];
    int lock = kiln_imagestore_lock(dir, LOCK_EX | LOCK_NB, why, cap);
    if (lock == -2)
        return 0; /* a pull or a start is under way; the next one evicts */
    if (lock < 0)
        return -1;
    char sub[4200];
    snprintf(sub, sizeof sub, "%s/refs", dir);
    char **names = NULL, **holds = NULL;
    size_t n = 0, n_holds = 0;
    kiln_fs_names(sub, 0, &names, &n);
    snprintf(path, sizeof path, "%s/holds", dir);
    kiln_fs_names(path, 0, &holds, &n_holds);
    s_ref_t *refs = n ? calloc(n, sizeof *refs) : NULL;
    size_t k = 0;
    for (size_t i = 0; refs && i < n; i++) {
        if (strchr(names[i], '.'))
            continue;
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", sub, names[i]);
        json_t *doc = stat(path, &st) == 0 ? json_load_file(path, 0, NULL) : NULL;
        if (!doc)
            continue;
        refs[k] = (s_ref_t){.name = names[i], .used = st.st_mtime, .doc = doc};
        for (size_t h = 0; h < n_holds; h++) {
            char held[512] = "";
            snprintf(path, sizeof path, "%s/holds/%s", dir, holds[h]);
            FILE *f = fopen(path, "re");
            if (f) {
                if (!fgets(held, sizeof held, f))
                    held[0] = '\0';
                fclose(f);
            }
            held[strcspn(held, "\n")] = '\0';
            if (strcmp(held, names[i]) == 0)
                refs[k].held = true;
        }
        k++;
    }
    int rc = 0;
    uint64_t total = s_sweep(dir, refs, k);
    while (total > max_bytes) {
        s_ref_t *oldest = NULL;
        for (size_t i = 0; i < k; i++)
            if (!refs[i].gone && !refs[i].held && (!oldest || refs[i].used < oldest->used))
                oldest = &refs[i];
        if (!oldest)
            break; /* everything left is in use */
        snprintf(path, sizeof path, "%s/%s", sub, oldest->name);
        if (unlink(path) != 0 && errno != ENOENT) {
            snprintf(why, cap, "cannot evict %s: %s", path, strerror(errno));
            rc = -1;
            break;
        }
        oldest->gone = true;
        (*evicted)++;
        total = s_sweep(dir, refs, k);
    }
    for (size_t i = 0; i < k; i++)
        json_decref(refs[i].doc);
    free(refs);
    kiln_fs_names_free(names, n);
    kiln_fs_names_free(holds, n_holds);
    close(lock);
    return rc;
}

size_t kiln_imagestore_layers(const char *dir, const char *image, char (*digests)[72],
                              uint64_t *sizes, size_t max)
{
    kiln_imageref_t ref;
    char why[300], name[1100];
    if (kiln_imageref_parse(image, &ref, why, sizeof why) != 0)
        return 0;
    kiln_imagestore_ref_name(ref.canonical, name, sizeof name);
    json_t *doc = s_load(dir, "refs", name);
    size_t n = 0, i;
    json_t *l;
    json_array_foreach(json_object_get(doc, "layers"), i, l) {
        const char *d = json_string_value(l);
        if (n == max || !d || strlen(d) != 71)
            break;
        char path[4200];
        struct stat st;
        snprintf(path, sizeof path, "%s/blobs/sha256/%s", dir, d + 7);
        snprintf(digests[n], 72, "%s", d);
        sizes[n++] = stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
    }
    json_decref(doc);
    return n;
}

void kiln_imagestore_blobs(const char *dir, char ***names, size_t *n)
{
    char sub[4200];
    snprintf(sub, sizeof sub, "%s/blobs/sha256", dir);
    kiln_fs_names(sub, 0, names, n);
}

int kiln_imagestore_make(const char *store, char *why, size_t cap)
{
    static const char *const subs[] = {"", "/blobs", "/blobs/sha256", "/chains", "/refs",
                                       "/holds"};
    for (size_t i = 0; i < sizeof subs / sizeof *subs; i++) {
        char path[4200];
        snprintf(path, sizeof path, "%s%s", store, subs[i]);
        if (mkdir(path, 0700) != 0 && errno != EEXIST) {
            snprintf(why, cap, "cannot make %s: %s", path, strerror(errno));
            return -1;
        }
    }
    return 0;
}

int kiln_imagestore_write(const char *path, const char *data, size_t len, char *why, size_t cap)
{
    char tmp[4300];
    snprintf(tmp, sizeof tmp, "%s.tmp-%d", path, (int)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    bool ok = fd >= 0 && write(fd, data, len) == (ssize_t)len && fsync(fd) == 0;
    if (fd >= 0 && close(fd) != 0)
        ok = false;
    if (!ok || rename(tmp, path) != 0) {
        snprintf(why, cap, "cannot write %s: %s", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

int kiln_imagestore_write_json(const char *path, json_t *doc, char *why, size_t cap)
{
    char *text = json_dumps(doc, JSON_COMPACT);
    if (!text) {
        snprintf(why, cap, "out of memory");
        return -1;
    }
    int rc = kiln_imagestore_write(path, text, strlen(text), why, cap);
    free(text);
    return rc;
}

