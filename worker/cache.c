/* cache.c: actions/cache on the farm's store, with the worker's own cache
 * in front of it (see cache.h).
 *
 * The coordinator decides what a key finds (its entries are the farm's,
 * scoped by the job's repository and refs); the worker keeps copies of
 * entries it saved or restored: CACHE_DIR/<repository>/<id>.tar.zst and
 * <id>.json, id a digest of (ref, key, version); version a digest of the
 * paths as written, so a key saved with other paths is another entry, as
 * on GitHub. The JSON holds key, ref, version, the blob's digest, size,
 * created and last used times; the whole cache is locked (flock) while a
 * step reads or changes it. A local copy is used only when its bytes hash
 * to the digest the coordinator gave; otherwise the blob is fetched.
 * When the coordinator cannot be reached, a warning says so and the
 * worker's own copies are all there is (as a cache service that is down
 * is a warning on GitHub, never a failed step).
 */
#include "worker/cache.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <jansson.h>
#include <limits.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/archive.h"
#include "common/error.h"
#include "common/fs.h"
#include "worker/paths.h"
#include "worker/storeclient.h"

#define S_PATHS_MAX 64
#define S_KEYS_MAX 16
#define S_KEY_MAX 512

typedef struct {
    char *items[S_PATHS_MAX]; /* absolute, normalised */
    size_t n;
    char version[65];
    /* `**` or an exclusion: the files are found by upload-artifact's
     * rules (worker/paths.c) when saving, and a restore unpacks whatever
     * the entry holds over the job's files, as tar would. */
    bool patterns;
} s_paths_t;

static int64_t s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int s_mkdirs(const char *path, mode_t mode)
{
    char buf[PATH_MAX];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *c = buf + 1; *c; c++) {
        if (*c != '/')
            continue;
        *c = '\0';
        if (mkdir(buf, mode) != 0 && errno != EEXIST)
            return -1;
        *c = '/';
    }
    return mkdir(buf, mode) != 0 && errno != EEXIST ? -1 : 0;
}

static const char *s_or(const char *v, const char *def)
{
    return v && v[0] ? v : def;
}

static void s_hex(const void *in, size_t n, char out[65])
{
    unsigned char h[32];
    crypto_generichash(h, sizeof h, in, n, NULL, 0);
    sodium_bin2hex(out, 65, h, sizeof h);
}


static void s_paths_free(s_paths_t *p)
{
    for (size_t i = 0; i < p->n; i++)
        free(p->items[i]);
    p->n = 0;
}

static int s_paths_add(s_paths_t *p, const char *path)
{
    char norm[PATH_MAX];
    if (!kiln_paths_normalise(path, norm, sizeof norm) || strcmp(norm, "/") == 0) {
        kiln_error_set("path '%s' is not a directory or file a cache can hold", path);
        return -1;
    }
    if (p->n == S_PATHS_MAX) {
        kiln_error_set("input 'path' names more than %d paths", S_PATHS_MAX);
        return -1;
    }
    if (!(p->items[p->n++] = strdup(norm))) {
        kiln_error_set("out of memory");
        return -1;
    }
    return 0;
}

/* The input `path`: one per line, ~ for HOME, relative to the workspace,
 * * ? [..] globs matched now (a pattern nothing matches is kept as it is,
 * for a restore to put there). */
static int s_paths(const kiln_cache_opts_t *o, s_paths_t *p)
{
    const char *s = s_or(o->path, "");
    char line[PATH_MAX], abs[PATH_MAX * 2];
    crypto_generichash_state h;
    crypto_generichash_init(&h, NULL, 0, 32);
    int got;
    while ((got = kiln_paths_next_line(&s, line, sizeof line)) != 0) {
        if (got < 0) {
            kiln_error_set("a line of input 'path' is too long");
            return -1;
        }
        size_t len = strlen(line);
        crypto_generichash_update(&h, (const unsigned char *)line, len + 1);
        if (line[0] == '!' || strstr(line, "**")) {
            p->patterns = true;
            continue;
        }
        if (line[0] == '~' && (line[1] == '/' || !line[1]))
            snprintf(abs, sizeof abs, "%s%s", s_or(o->home, "/"), line + 1);
        else if (line[0] == '/')
            snprintf(abs, sizeof abs, "%s", line);
        else
            snprintf(abs, sizeof abs, "%s/%s", s_or(o->workspace, "."), line);
        if (strpbrk(abs, "*?[")) {
            glob_t g;
            int r = glob(abs, 0, NULL, &g);
            if (r == 0) {
                for (size_t i = 0; i < g.gl_pathc; i++)
                    if (s_paths_add(p, g.gl_pathv[i]) != 0) {
                        globfree(&g);
                        return -1;
                    }
                globfree(&g);
                continue;
            }
            if (r != GLOB_NOMATCH) {
                kiln_error_set("input 'path': cannot match '%s'", line);
                return -1;
            }
        }
        if (s_paths_add(p, abs) != 0)
            return -1;
    }
    unsigned char v[32];
    crypto_generichash_final(&h, v, sizeof v);
    sodium_bin2hex(p->version, sizeof p->version, v, sizeof v);
    if (p->n == 0 && !p->patterns) {
        kiln_error_set("input 'path' is required and names no path");
        return -1;
    }
    return 0;
}

/* A path's name in an entry: by where it is for the job, so that the next
 * job, in a workspace of its own, gets it back at its own: "ws/..." under
 * the workspace, "home/..." under HOME, "root/..." elsewhere. */
static void s_name(const kiln_cache_opts_t *o, const char *path, char *out, size_t cap)
{
    char ws[PATH_MAX] = "", home[PATH_MAX] = "";
    kiln_paths_normalise(s_or(o->workspace, "/nonexistent-workspace"), ws, sizeof ws);
    kiln_paths_normalise(s_or(o->home, "/nonexistent-home"), home, sizeof home);
    size_t nw = strlen(ws), nh = strlen(home);
    if (nw > 1 && strncmp(path, ws, nw) == 0 && path[nw] == '/')
        snprintf(out, cap, "ws%s", path + nw);
    else if (nh > 1 && strncmp(path, home, nh) == 0 && path[nh] == '/')
        snprintf(out, cap, "home%s", path + nh);
    else
        snprintf(out, cap, "root%s", path);
}

/* ---------------------------------------------------------------- entries */

typedef struct {
    char id[65], key[S_KEY_MAX], ref[256], digest[72];
    int64_t used_ms, created_ms;
    uint64_t size;
} s_entry_t;

static void s_entry_id(const char *ref, const char *key, const char *version, char out[65])
{
    char buf[S_KEY_MAX + 256 + 80];
    int n = snprintf(buf, sizeof buf, "%.255s%c%s%c%s", ref, 0, key, 0, version);
    s_hex(buf, n < 0 ? 0 : (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1, out);
}

static int s_read_entry(const char *json_path, const char *version, s_entry_t *e)
{
    json_t *j = json_load_file(json_path, 0, NULL);
    const char *v = json_string_value(json_object_get(j, "version"));
    const char *k = json_string_value(json_object_get(j, "key"));
    const char *r = json_string_value(json_object_get(j, "ref"));
    const char *d = json_string_value(json_object_get(j, "digest"));
    int rc = -1;
    if (k && r && v && (!version || strcmp(v, version) == 0)) {
        snprintf(e->digest, sizeof e->digest, "%s", d ? d : "");
        snprintf(e->key, sizeof e->key, "%s", k);
        snprintf(e->ref, sizeof e->ref, "%s", r);
        e->used_ms = json_integer_value(json_object_get(j, "used_ms"));
        e->created_ms = json_integer_value(json_object_get(j, "created_ms"));
        e->size = (uint64_t)json_integer_value(json_object_get(j, "size"));
        rc = 0;
    }
    json_decref(j);
    return rc;
}

static int s_write_entry(const char *json_path, const s_entry_t *e, const char *version)
{
    char tmp[PATH_MAX + 16];
    snprintf(tmp, sizeof tmp, "%s.tmp", json_path);
    json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:I}", "key", e->key, "ref", e->ref,
                          "version", version, "digest", e->digest, "size", (json_int_t)e->size, "created_ms",
                          (json_int_t)e->created_ms, "used_ms", (json_int_t)e->used_ms);
    int rc = j && json_dump_file(j, tmp, JSON_COMPACT) == 0 && rename(tmp, json_path) == 0 ? 0 : -1;
    json_decref(j);
    if (rc != 0)
        kiln_error_errno("cannot write %s", json_path);
    return rc;
}

/* The refs a run may restore from, best first: its own, its pull
 * request's base, the repository's default branch. */
static size_t s_refs(const kiln_cache_opts_t *o, char refs[3][256])
{
    size_t n = 0;
    snprintf(refs[n++], 256, "%s", s_or(o->ref, ""));
    if (o->base_ref && o->base_ref[0])
        snprintf(refs[n++], 256, "refs/heads/%s", o->base_ref);
    json_t *ev = o->event_path ? json_load_file(o->event_path, 0, NULL) : NULL;
    const char *def =
        json_string_value(json_object_get(json_object_get(ev, "repository"), "default_branch"));
    if (def && def[0])
        snprintf(refs[n++], 256, "refs/heads/%s", def);
    json_decref(ev);
    return n;
}

/* The best entry for key (exact) or, failing that, for each restore key as
 * a prefix in turn: ref order first, then the newest. */
static bool s_lookup(const char *scope, const kiln_cache_opts_t *o, const s_paths_t *p,
                     const char *const *keys, size_t n_keys, s_entry_t *best, bool *exact)
{
    char refs[3][256];
    size_t n_refs = s_refs(o, refs);
    for (size_t k = 0; k < n_keys; k++) {
        bool found = false;
        size_t best_rank = 0;
        DIR *d = opendir(scope);
        struct dirent *de;
        while (d && (de = readdir(d))) {
            size_t len = strlen(de->d_name);
            if (len != 64 + 5 || strcmp(de->d_name + 64, ".json") != 0)
                continue;
            char jp[PATH_MAX + 80];
            s_entry_t e = {0};
            snprintf(jp, sizeof jp, "%s/%s", scope, de->d_name);
            if (s_read_entry(jp, p->version, &e) != 0)
                continue;
            memcpy(e.id, de->d_name, 64);
            e.id[64] = '\0';
            bool match = k == 0 ? strcmp(e.key, keys[0]) == 0
                                : strncmp(e.key, keys[k], strlen(keys[k])) == 0;
            size_t rank = n_refs;
            for (size_t r = 0; r < n_refs; r++)
                if (strcmp(e.ref, refs[r]) == 0) {
                    rank = r;
                    break;
                }
            if (!match || rank == n_refs)
                continue;
            if (!found || rank < best_rank ||
                (rank == best_rank && e.created_ms > best->created_ms)) {
                *best = e;
                best_rank = rank;
                found = true;
            }
        }
        if (d)
            closedir(d);
        if (found) {
            *exact = k == 0;
            return true;
        }
    }
    return false;
}

/* Least recently used entries go until the cache is within its bound. */
static void s_evict(const kiln_cache_opts_t *o, FILE *log)
{
    for (;;) {
        uint64_t total = 0;
        s_entry_t oldest = {0};
        char oldest_scope[PATH_MAX] = "";
        DIR *top = opendir(o->cache_dir);
        struct dirent *sd;
        while (top && (sd = readdir(top))) {
            if (sd->d_name[0] == '.')
                continue;
            char scope[PATH_MAX];
            snprintf(scope, sizeof scope, "%s/%s", o->cache_dir, sd->d_name);
            DIR *d = opendir(scope);
            struct dirent *de;
            while (d && (de = readdir(d))) {
                if (strlen(de->d_name) != 69 || strcmp(de->d_name + 64, ".json") != 0)
                    continue;
                char jp[PATH_MAX + 80];
                s_entry_t e = {0};
                snprintf(jp, sizeof jp, "%s/%s", scope, de->d_name);
                if (s_read_entry(jp, NULL, &e) != 0)
                    continue;
                memcpy(e.id, de->d_name, 64);
                total += e.size;
                if (!oldest_scope[0] || e.used_ms < oldest.used_ms) {
                    oldest = e;
                    snprintf(oldest_scope, sizeof oldest_scope, "%s", scope);
                }
            }
            if (d)
                closedir(d);
        }
        if (top)
            closedir(top);
        if (total <= o->max_bytes || !oldest_scope[0])
            return;
        char f[PATH_MAX + 80];
        snprintf(f, sizeof f, "%s/%.64s.tar.zst", oldest_scope, oldest.id);
        unlink(f);
        snprintf(f, sizeof f, "%s/%.64s.json", oldest_scope, oldest.id);
        if (unlink(f) != 0)
            return; /* cannot make room: leave it to the next save */
        fprintf(log, "Evicted cache '%s' (%llu bytes, least recently used): the worker's cache "
                     "is bounded to %llu MB\n",
                oldest.key, (unsigned long long)oldest.size,
                (unsigned long long)(o->max_bytes >> 20));
    }
}

/* ------------------------------------------------------------ the steps */


/* The farm's entry for the keys (the first exact, the others prefixes):
 * 0 with *e and *exact, KILN_ENOTFOUND, or another code when the farm's
 * store could not answer. */
static int s_farm_find(kiln_storeclient_t *sc, const char *const *keys, size_t n_keys,
                       const char *version, s_entry_t *e, bool *exact)
{
    Kiln__StoreRequest req = KILN__STORE_REQUEST__INIT;
    Kiln__Envelope *env = NULL;
    req.op = KILN__STORE_OP__STORE_CACHE_FIND;
    req.name = (char *)keys[0];
    req.names = (char **)(keys + 1);
    req.n_names = n_keys - 1;
    req.version = (char *)version;
    int rc = kiln_storeclient_call(sc, &req, &env);
    if (rc == 0) {
        const Kiln__StoreReply *r = env->store_reply;
        json_t *j = json_loadb((const char *)r->json.data, r->json.len, 0, NULL);
        const char *k = json_string_value(json_object_get(j, "key"));
        const char *ref = json_string_value(json_object_get(j, "ref"));
        const char *d = json_string_value(json_object_get(j, "digest"));
        if (!k || !ref || !d) {
            kiln_error_set("the farm's store answered a cache lookup with no entry");
            rc = KILN_EPROTO;
        } else {
            memset(e, 0, sizeof *e);
            snprintf(e->key, sizeof e->key, "%s", k);
            snprintf(e->ref, sizeof e->ref, "%s", ref);
            snprintf(e->digest, sizeof e->digest, "%s", d);
            e->size = (uint64_t)json_integer_value(json_object_get(j, "size"));
            e->created_ms = json_integer_value(json_object_get(j, "created_ms"));
            *exact = json_is_true(json_object_get(j, "exact"));
        }
        json_decref(j);
    }
    if (env)
        kiln__envelope__free_unpacked(env, NULL);
    return rc;
}

/* scope/<id>.tar.zst made to hold the farm's entry: the worker's own copy
 * when its bytes hash to the entry's digest, else the blob fetched from
 * the coordinator. from says which, for the log. */
static int s_local_copy(kiln_storeclient_t *sc, const char *scope, const s_paths_t *p,
                        s_entry_t *e, char *from, size_t cap, FILE *log)
{
    char arch[PATH_MAX + 80], jp[PATH_MAX + 80], got[72] = "";
    s_entry_id(e->ref, e->key, p->version, e->id);
    snprintf(arch, sizeof arch, "%s/%s.tar.zst", scope, e->id);
    snprintf(jp, sizeof jp, "%s/%s.json", scope, e->id);
    s_entry_t local = {0};
    if (s_read_entry(jp, p->version, &local) == 0 && strcmp(local.digest, e->digest) == 0) {
        if (kiln_store_file_digest(arch, got) == 0 && strcmp(got, e->digest) == 0) {
            snprintf(from, cap, "this worker's cache");
            return 0;
        }
        fprintf(log, "This worker's copy of cache '%s' does not match its digest %s: fetching "
                     "it again from the coordinator\n",
                e->key, e->digest);
    }
    if (s_mkdirs(scope, 0700) != 0) {
        kiln_error_errno("cannot make %s", scope);
        return -1;
    }
    kiln_store_xfer_t xs;
    memset(&xs, 0, sizeof xs);
    if (kiln_storeclient_download(sc, e->digest, arch, &xs) != 0)
        return -1;
    snprintf(from, cap, "the coordinator: %llu bytes in %lld ms%s", (unsigned long long)xs.moved,
             (long long)xs.ms, xs.resumed ? ", resumed after a lost answer" : "");
    e->used_ms = s_now_ms();
    return s_write_entry(jp, e, p->version);
}

static int s_restore(const kiln_cache_opts_t *o, const char *scope, const s_paths_t *p,
                     const s_entry_t *e, bool exact, const char *from, FILE *log)
{
    int rc = -1;
    char arch[PATH_MAX + 80], staging[PATH_MAX + 32], jp[PATH_MAX + 80];
    snprintf(arch, sizeof arch, "%s/%s.tar.zst", scope, e->id);
    snprintf(staging, sizeof staging, "%s/.restore-%ld", o->cache_dir, (long)getpid());
    kiln_fs_rmtree(staging);
    int64_t t0 = s_now_ms();
    kiln_archive_stats_t st;
    if (kiln_archive_unpack(arch, staging, NULL, &st) != 0)
        goto cleanup;
    if (p->patterns) {
        const char *tops[3][2] = {{"ws", s_or(o->workspace, "")}, {"home", s_or(o->home, "")},
                                  {"root", "/"}};
        for (size_t t = 0; t < 3; t++) {
            char src[PATH_MAX + 40];
            struct stat sb;
            snprintf(src, sizeof src, "%s/%s", staging, tops[t][0]);
            if (lstat(src, &sb) != 0)
                continue;
            if (!tops[t][1][0] || kiln_paths_merge(src, tops[t][1]) != 0) {
                if (!tops[t][1][0])
                    kiln_error_set("the entry has %s/ but the job has no such directory", tops[t][0]);
                goto cleanup;
            }
        }
    }
    for (size_t i = 0; i < p->n && !p->patterns; i++) {
        char src[PATH_MAX * 2], name[PATH_MAX + 8];
        struct stat sb;
        s_name(o, p->items[i], name, sizeof name);
        snprintf(src, sizeof src, "%s/%s", staging, name);
        if (lstat(src, &sb) != 0)
            continue;
        /* What the job has there is replaced, as tar over it would. */
        char parent[PATH_MAX];
        snprintf(parent, sizeof parent, "%s", p->items[i]);
        char *slash = strrchr(parent, '/');
        if (slash && slash != parent) {
            *slash = '\0';
            if (s_mkdirs(parent, 0755) != 0) {
                kiln_error_errno("cannot make %s", parent);
                goto cleanup;
            }
        }
        if (kiln_fs_rmtree(p->items[i]) != 0) {
            kiln_error_errno("cannot replace %s", p->items[i]);
            goto cleanup;
        }
        if (rename(src, p->items[i]) != 0) {
            kiln_error_errno("cannot restore %s (the cache is on %s)", p->items[i], o->cache_dir);
            goto cleanup;
        }
    }
    s_entry_t used = *e;
    used.used_ms = s_now_ms();
    snprintf(jp, sizeof jp, "%s/%s.json", scope, e->id);
    s_write_entry(jp, &used, p->version);
    fprintf(log, "Cache restored from key: %s (%llu files, %llu bytes, %lld ms, from %s)\n",
            e->key, (unsigned long long)st.entries, (unsigned long long)st.bytes,
            (long long)(s_now_ms() - t0), from);
    char line[S_KEY_MAX + 400];
    snprintf(line, sizeof line, "Cache %s `%s`: %llu bytes in %lld ms (from %s)\n",
             exact ? "hit, restored from" : "restored by a restore key from", e->key, (unsigned long long)st.bytes, (long long)(s_now_ms() - t0), from);
    rc = kiln_paths_append(o->summary_path, line);
cleanup:
    kiln_fs_rmtree(staging);
    return rc;
}

/* The archive at arch given to the farm as the job's entry for key. A
 * failure is the step's warning, not its failure (GitHub's rule). */
static void s_farm_save(kiln_storeclient_t *sc, const char *arch, const char *key,
                        const char *version, const kiln_archive_stats_t *st, s_entry_t *e,
                        FILE *log)
{
    kiln_store_xfer_t xs;
    if (kiln_storeclient_upload(sc, arch, e->digest, &xs) != 0) {
        fprintf(log, "::warning::Failed to save: %s\n", kiln_error_last());
        return;
    }
    char meta[128];
    snprintf(meta, sizeof meta, "{\"files\":%llu,\"bytes\":%llu}",
             (unsigned long long)st->entries, (unsigned long long)st->bytes);
    Kiln__StoreRequest req = KILN__STORE_REQUEST__INIT;
    Kiln__Envelope *env = NULL;
    req.op = KILN__STORE_OP__STORE_CACHE_ADD;
    req.name = (char *)key;
    req.version = (char *)version;
    req.digest = e->digest;
    req.meta = meta;
    int rc = kiln_storeclient_call(sc, &req, &env);
    if (rc != 0)
        fprintf(log, "::warning::Failed to save: %s\n", kiln_error_last());
    else
        fprintf(log, "Cache uploaded to the coordinator: %s (%llu bytes sent in %lld ms%s)\n",
                e->digest, (unsigned long long)xs.moved, (long long)xs.ms,
                xs.deduplicated ? ", the store already had it" : "");
    if (env)
        kiln__envelope__free_unpacked(env, NULL);
}

static int s_save(const kiln_cache_opts_t *o, kiln_storeclient_t *sc, const char *scope,
                  const s_paths_t *p, const char *key, FILE *log)
{
    char id[65], arch[PATH_MAX + 80], jp[PATH_MAX + 80];
    kiln_archive_item_t items[S_PATHS_MAX];
    char names[S_PATHS_MAX][PATH_MAX + 8];
    size_t n = 0;
    s_entry_id(s_or(o->ref, ""), key, p->version, id);
    snprintf(jp, sizeof jp, "%s/%s.json", scope, id);
    struct stat sb;
    /* The farm says whether the ref has the key; without it, this worker. */
    s_entry_t fe;
    bool exact = false, farm = true;
    const char *k1[1] = {key};
    int frc = s_farm_find(sc, k1, 1, p->version, &fe, &exact);
    if (frc == 0 && strcmp(fe.ref, s_or(o->ref, "")) == 0) {
        fprintf(log, "Cache hit occurred on the primary key %s, not saving cache.\n", key);
        return 0;
    }
    if (frc != 0 && frc != KILN_ENOTFOUND) {
        fprintf(log, "::warning::The farm's cache service did not answer (%s): the cache is "
                     "saved on this worker only\n",
                kiln_error_last());
        farm = false;
        if (stat(jp, &sb) == 0) {
            fprintf(log, "Cache hit occurred on the primary key %s, not saving cache.\n", key);
            return 0;
        }
    }
    kiln_paths_t found = {0};
    kiln_archive_item_t *fitems = NULL;
    char *fnames = NULL;
    int rc = -1;
    if (p->patterns) {
        if (kiln_paths_find(o->path, o->workspace, o->home, true, &found) != 0)
            return -1;
        fitems = calloc(found.n ? found.n : 1, sizeof *fitems);
        fnames = calloc(found.n ? found.n : 1, PATH_MAX + 8);
        if (!fitems || !fnames) {
            kiln_error_set("out of memory");
            goto cleanup;
        }
        for (size_t i = 0; i < found.n; i++) {
            s_name(o, found.files[i], fnames + i * (PATH_MAX + 8), PATH_MAX + 8);
            fitems[i].path = found.files[i];
            fitems[i].name = fnames + i * (PATH_MAX + 8);
        }
        n = found.n;
    }
    for (size_t i = 0; i < p->n && !p->patterns; i++) {
        if (lstat(p->items[i], &sb) != 0)
            continue;
        s_name(o, p->items[i], names[n], sizeof names[n]);
        items[n].path = p->items[i];
        items[n].name = names[n];
        n++;
    }
    if (n == 0) {
        fprintf(log, "::warning::Path Validation Error: Path(s) specified in the action for "
                     "caching do(es) not exist, hence no cache is being saved.\n");
        rc = 0;
        goto cleanup;
    }
    if (s_mkdirs(scope, 0700) != 0) {
        kiln_error_errno("cannot make %s", scope);
        goto cleanup;
    }
    snprintf(arch, sizeof arch, "%s/%s.tar.zst", scope, id);
    int64_t t0 = s_now_ms();
    kiln_archive_stats_t st;
    if (kiln_archive_pack_items(p->patterns ? fitems : items, n, arch, 3, &st) != 0)
        goto cleanup;
    s_entry_t e = {.size = st.archive_bytes, .created_ms = s_now_ms(), .used_ms = s_now_ms()};
    snprintf(e.key, sizeof e.key, "%s", key);
    snprintf(e.ref, sizeof e.ref, "%s", s_or(o->ref, ""));
    fprintf(log, "Cache saved with key: %s (%llu files, %llu bytes, %llu archived, %lld ms)\n",
            key, (unsigned long long)st.entries, (unsigned long long)st.bytes,
            (unsigned long long)st.archive_bytes, (long long)(s_now_ms() - t0));
    if (farm)
        s_farm_save(sc, arch, key, p->version, &st, &e, log);
    else if (kiln_store_file_digest(arch, e.digest) != 0)
        goto cleanup;
    if (s_write_entry(jp, &e, p->version) != 0) {
        unlink(arch);
        goto cleanup;
    }
    char line[S_KEY_MAX + 200];
    snprintf(line, sizeof line, "Cache saved as `%s`: %llu bytes (%llu archived)\n", key,
             (unsigned long long)st.bytes, (unsigned long long)st.archive_bytes);
    s_evict(o, log);
    rc = kiln_paths_append(o->summary_path, line);
cleanup:
    free(fitems);
    free(fnames);
    kiln_paths_free(&found);
    return rc;
}

static bool s_true(const char *v)
{
    return v && strcmp(v, "true") == 0;
}

int kiln_cache_run(const kiln_cache_opts_t *o, FILE *log)
{
    int rc = -1, lock = -1;
    s_paths_t p = {0};
    json_t *state = NULL;
    kiln_storeclient_t *sc = NULL;
    char scope[PATH_MAX], repo[256], lockp[PATH_MAX + 8];
    const char *b = s_or(o->builtin, "");
    bool post = strcmp(b, "cache-post") == 0;
    if (!o->cache_dir || !o->cache_dir[0]) {
        kiln_error_set("actions/cache runs as a step of kiln-worker (KILN_CACHE_DIR is not set)");
        return -1;
    }
    kiln_cache_opts_t in = *o;
    if (post) {
        /* The cache step's own inputs, as it left them. */
        state = o->state_path ? json_load_file(o->state_path, 0, NULL) : NULL;
        if (!state) {
            fprintf(log, "The cache step did not run: nothing to save.\n");
            return 0;
        }
        if (json_is_true(json_object_get(state, "hit"))) {
            fprintf(log, "Cache hit occurred on the primary key %s, not saving cache.\n",
                    json_string_value(json_object_get(state, "key")));
            json_decref(state);
            return 0;
        }
        in.path = json_string_value(json_object_get(state, "path"));
        in.key = json_string_value(json_object_get(state, "key"));
    }
    if (!in.key || !in.key[0]) {
        kiln_error_set("input 'key' is required");
        goto cleanup;
    }
    if (strlen(in.key) >= S_KEY_MAX || strchr(in.key, ',')) {
        kiln_error_set("key '%.64s': a key is under %d characters and has no comma", in.key,
                       S_KEY_MAX);
        goto cleanup;
    }
    if (s_paths(&in, &p) != 0)
        goto cleanup;
    {
        /* The directory of the repository's copies: its name made a file
         * name (readable for an operator), and a digest of the name, so
         * "a_b/c" and "a/b_c" (or two long names alike in their first
         * characters) never share one. */
        const char *name = s_or(o->repository, "local");
        unsigned char h[8];
        char hex[17];
        crypto_generichash(h, sizeof h, (const unsigned char *)name, strlen(name), NULL, 0);
        sodium_bin2hex(hex, sizeof hex, h, sizeof h);
        snprintf(repo, sizeof repo, "%.64s-%s", name, hex);
        for (char *c = repo; *c && c < repo + 64; c++)
            if (*c == '/' || *c == '.')
                *c = '_';
    }
    if (s_mkdirs(o->cache_dir, 0700) != 0) {
        kiln_error_errno("cannot make %s", o->cache_dir);
        goto cleanup;
    }
    snprintf(scope, sizeof scope, "%s/%s", o->cache_dir, repo);
    snprintf(lockp, sizeof lockp, "%s/.lock", o->cache_dir);
    if ((lock = open(lockp, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0 || flock(lock, LOCK_EX) != 0) {
        kiln_error_errno("cannot lock %s", lockp);
        goto cleanup;
    }
    if (kiln_storeclient_new(&sc) != 0)
        goto cleanup;
    if (strcmp(b, "cache-save") == 0 || post) {
        rc = s_save(&in, sc, scope, &p, in.key, log);
        goto cleanup;
    }
    /* cache and cache-restore: the key, then the restore keys. */
    const char *keys[S_KEYS_MAX + 1];
    char rk[4096];
    size_t n_keys = 0;
    keys[n_keys++] = in.key;
    snprintf(rk, sizeof rk, "%s", s_or(in.restore_keys, ""));
    for (char *save = NULL, *l = strtok_r(rk, "\n", &save); l && n_keys <= S_KEYS_MAX;
         l = strtok_r(NULL, "\n", &save)) {
        while (*l == ' ' || *l == '\t')
            l++;
        size_t len = strlen(l);
        while (len && (l[len - 1] == ' ' || l[len - 1] == '\r'))
            l[--len] = '\0';
        if (len)
            keys[n_keys++] = l;
    }
    s_entry_t e = {0};
    bool exact = false, found = false, farm = true;
    int frc = s_farm_find(sc, keys, n_keys, p.version, &e, &exact);
    char from[256] = "this worker's cache";
    if (frc == 0)
        found = true;
    else if (frc != KILN_ENOTFOUND) {
        fprintf(log, "::warning::The farm's cache service did not answer (%s): looking in this "
                     "worker's cache only\n",
                kiln_error_last());
        farm = false;
        found = s_lookup(scope, &in, &p, keys, n_keys, &e, &exact);
    }
    char out[S_KEY_MAX * 2 + 128];
    snprintf(out, sizeof out, "cache-hit=%s\ncache-primary-key=%s\ncache-matched-key=%s\n",
             found && exact ? "true" : "false", in.key, found ? e.key : "");
    if (!found) {
        fprintf(log, "Cache not found for input keys: %s%s%s\n", in.key,
                in.restore_keys && in.restore_keys[0] ? ", " : "",
                in.restore_keys ? in.restore_keys : "");
        char miss[S_KEY_MAX + 64];
        snprintf(miss, sizeof miss, "Cache miss for `%s`\n", in.key);
        if (kiln_paths_append(o->summary_path, miss) != 0)
            goto cleanup;
        if (s_true(o->fail_on_miss)) {
            kiln_error_set("Failed to restore cache entry. Exiting as fail-on-cache-miss is set. "
                           "Input key: %s", in.key);
            goto cleanup;
        }
    } else if (s_true(o->lookup_only)) {
        fprintf(log, "Cache found and can be restored from key: %s (lookup-only: not restored)\n",
                e.key);
    } else if ((farm && s_local_copy(sc, scope, &p, &e, from, sizeof from, log) != 0) ||
               s_restore(&in, scope, &p, &e, exact, from, log) != 0) {
        goto cleanup;
    } else if (farm) {
        s_evict(&in, log);
    }
    if (kiln_paths_append(o->output_path, out) != 0)
        goto cleanup;
    if (strcmp(b, "cache") == 0 && o->state_path) {
        json_t *st = json_pack("{s:s, s:s, s:b}", "key", in.key, "path", s_or(in.path, ""), "hit",
                               found && exact);
        int w = st ? json_dump_file(st, o->state_path, JSON_COMPACT) : -1;
        json_decref(st);
        if (w != 0) {
            kiln_error_errno("cannot write %s", o->state_path);
            goto cleanup;
        }
    }
    rc = 0;
cleanup:
    if (lock >= 0)
        close(lock);
    kiln_storeclient_destroy(&sc);
    s_paths_free(&p);
    json_decref(state);
    return rc;
}
