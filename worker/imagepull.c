/* imagepull.c: an image into the worker's store (see imagepull.h): the
 * registry's manifest, config and missing layers (registry.c), each chain
 * of layers not built yet (layers.c), then the image's record. Its own
 * program (kiln-image-pull) links libcurl and libarchive, which cost
 * milliseconds to load; a warm start never loads them. */
#include "worker/imagepull.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/digest.h"
#include "common/fs.h"
#include "worker/imagestore.h"
#include "worker/layers.h"
#include "worker/registry.h"

#define S_LAYERS_MAX 128

static bool s_digest_ok(const char *d)
{
    return d && strncmp(d, "sha256:", 7) == 0 && strlen(d) == 71 &&
           strspn(d + 7, "0123456789abcdef") == 64;
}

static void s_blob_path(const char *store, const char *digest, char *out, size_t cap)
{
    snprintf(out, cap, "%s/blobs/sha256/%s", store, digest + 7);
}

/* The chain after parent (hex or "") with layer digest: sha256 of both. */
static int s_chain(const char *parent, const char *layer, char out[65])
{
    kiln_sha256_t *sha = NULL;
    char text[200];
    int n = snprintf(text, sizeof text, "%s %s", parent, layer);
    int rc = kiln_sha256_new(&sha) == 0 && kiln_sha256_update(sha, text, (size_t)n) == 0 &&
                     kiln_sha256_final(sha, out) == 0
                 ? 0
                 : -1;
    kiln_sha256_destroy(&sha);
    return rc;
}

static int s_build(const char *store, json_t *layers, json_t *chains, uint64_t max_bytes,
                   FILE *log, char *why, size_t cap)
{
    size_t n = json_array_size(layers);
    size_t have = n;
    char path[4200];
    /* The longest chain already built. */
    while (have > 0) {
        snprintf(path, sizeof path, "%s/chains/%s", store,
                 json_string_value(json_array_get(chains, have - 1)));
        if (access(path, F_OK) == 0)
            break;
        have--;
    }
    for (size_t i = have; i < n; i++) {
        const char *hex = json_string_value(json_array_get(chains, i));
        const char *layer = json_string_value(json_array_get(layers, i));
        char tmp[4300], final[4200], blob[4200];
        snprintf(final, sizeof final, "%s/chains/%s", store, hex);
        snprintf(tmp, sizeof tmp, "%s/chains/tmp-%s.%d", store, hex, (int)getpid());
        kiln_fs_rmtree(tmp);
        if (i == 0) {
            if (mkdir(tmp, 0755) != 0) {
                snprintf(why, cap, "cannot make %s: %s", tmp, strerror(errno));
                return -1;
            }
        } else {
            char parent[4200];
            snprintf(parent, sizeof parent, "%s/chains/%s", store,
                     json_string_value(json_array_get(chains, i - 1)));
            if (kiln_layers_link_copy(parent, tmp, why, cap) != 0) {
                kiln_fs_rmtree(tmp);
                return -1;
            }
        }
        s_blob_path(store, layer, blob, sizeof blob);
        uint64_t bytes = 0;
        int64_t t0 = kiln_clock_mono_ms();
        if (kiln_layers_apply(tmp, blob, max_bytes, &bytes, why, cap) != 0) {
            kiln_fs_rmtree(tmp);
            return -1;
        }
        json_t *meta = json_pack("{s:s,s:s,s:I}", "parent",
                                 i ? json_string_value(json_array_get(chains, i - 1)) : "",
                                 "layer", layer, "bytes", (json_int_t)bytes);
        char mpath[4300];
        snprintf(mpath, sizeof mpath, "%s.json", final);
        int w = meta ? kiln_imagestore_write_json(mpath, meta, why, cap) : -1;
        json_decref(meta);
        if (w != 0) {
            kiln_fs_rmtree(tmp);
            return -1;
        }
        if (rename(tmp, final) != 0) {
            /* Built meanwhile by another job's pull: theirs stands. */
            if (errno != EEXIST && errno != ENOTEMPTY) {
                snprintf(why, cap, "cannot store %s: %s", final, strerror(errno));
                kiln_fs_rmtree(tmp);
                return -1;
            }
            kiln_fs_rmtree(tmp);
        }
        fprintf(log, "  applied layer %.19s (%llu bytes) in %lld ms\n", layer,
                (unsigned long long)bytes, (long long)(kiln_clock_mono_ms() - t0));
    }
    return 0;
}

/* Pulls ref into the store and writes its record (refs/NAME). */
static int s_pull(const kiln_image_opts_t *o, const kiln_imageref_t *ref, const char *name,
                  json_t *old, json_t **out, FILE *log, char *why, size_t cap)
{
    int rc = -1;
    kiln_registry_t *reg = NULL;
    char *body = NULL;
    size_t len = 0;
    char digest[72], path[4200];
    json_t *man = NULL, *cfg = NULL, *layers = json_array(), *chains = json_array();
    int64_t t0 = kiln_clock_mono_ms();
    if (!layers || !chains || kiln_registry_new(&reg, &o->registry, why, cap) != 0 ||
        kiln_registry_manifest(reg, ref, &body, &len, digest, why, cap) != 0)
        goto cleanup;
    const char *held = json_string_value(json_object_get(old, "manifest"));
    if (held && strcmp(held, digest) == 0) {
        json_t *c = json_object_get(old, "chains");
        snprintf(path, sizeof path, "%s/chains/%s", o->store,
                 json_string_value(json_array_get(c, json_array_size(c) - 1)) ?: "-");
        if (access(path, F_OK) == 0) {
            fprintf(log, "Image %s is up to date (%s)\n", ref->canonical, digest);
            *out = json_incref(old);
            rc = 0;
            goto cleanup;
        }
    }
    man = json_loadb(body, len, 0, NULL);
    json_t *cdesc = json_object_get(man, "config");
    json_t *ldesc = json_object_get(man, "layers");
    const char *cdig = json_string_value(json_object_get(cdesc, "digest"));
    if (!s_digest_ok(cdig) || !json_is_array(ldesc) || json_array_size(ldesc) == 0 ||
        json_array_size(ldesc) > S_LAYERS_MAX) {
        snprintf(why, cap, "image %s: its manifest names no config or 1 to %d layers",
                 ref->canonical, S_LAYERS_MAX);
        goto cleanup;
    }
    s_blob_path(o->store, digest, path, sizeof path);
    if (kiln_imagestore_write(path, body, len, why, cap) != 0)
        goto cleanup;
    s_blob_path(o->store, cdig, path, sizeof path);
    if (access(path, F_OK) != 0 &&
        kiln_registry_blob(reg, ref, cdig,
                           (uint64_t)json_integer_value(json_object_get(cdesc, "size")), path,
                           why, cap) != 0)
        goto cleanup;
    cfg = json_load_file(path, 0, NULL);
    if (!json_is_object(cfg)) {
        snprintf(why, cap, "image %s: its config %s is not JSON", ref->canonical, cdig);
        goto cleanup;
    }
    size_t i, fetched = 0;
    uint64_t fetched_bytes = 0;
    json_t *l;
    char parent[65] = "";
    json_array_foreach(ldesc, i, l) {
        const char *ld = json_string_value(json_object_get(l, "digest"));
        const char *mt = json_string_value(json_object_get(l, "mediaType")) ?: "";
        json_int_t size = json_integer_value(json_object_get(l, "size"));
        if (!s_digest_ok(ld) || size < 0) {
            snprintf(why, cap, "image %s: layer %zu has no sha256 digest", ref->canonical, i);
            goto cleanup;
        }
        if (!strstr(mt, "tar")) {
            snprintf(why, cap, "image %s: layer %s is of type '%s', not a tar archive",
                     ref->canonical, ld, mt);
            goto cleanup;
        }
        s_blob_path(o->store, ld, path, sizeof path);
        if (access(path, F_OK) != 0) {
            if (kiln_registry_blob(reg, ref, ld, (uint64_t)size, path, why, cap) != 0)
                goto cleanup;
            fetched++;
            fetched_bytes += (uint64_t)size;
        }
        char hex[65];
        if (s_chain(parent, ld, hex) != 0) {
            snprintf(why, cap, "cannot hash a layer chain");
            goto cleanup;
        }
        json_array_append_new(layers, json_string(ld));
        json_array_append_new(chains, json_string(hex));
        memcpy(parent, hex, sizeof parent);
    }
    fprintf(log, "Pulled %s (%s): %zu layers, %zu fetched (%llu bytes), %zu present\n",
            ref->canonical, digest, json_array_size(ldesc), fetched,
            (unsigned long long)fetched_bytes, json_array_size(ldesc) - fetched);
    if (s_build(o->store, layers, chains, o->max_bytes, log, why, cap) != 0)
        goto cleanup;
    json_t *cc = json_object_get(cfg, "config");
    json_t *env = json_object_get(cc, "Env");
    json_t *ep = json_object_get(cc, "Entrypoint"), *cmd = json_object_get(cc, "Cmd");
    json_t *doc = json_pack("{s:s,s:s,s:s,s:O,s:O,s:o,s:o,s:o}", "ref", ref->canonical,
                            "manifest", digest, "config", cdig, "layers", layers, "chains",
                            chains, "env", json_is_array(env) ? json_incref(env) : json_array(),
                            "entrypoint", json_is_array(ep) ? json_incref(ep) : json_array(),
                            "cmd", json_is_array(cmd) ? json_incref(cmd) : json_array());
    if (!doc) {
        snprintf(why, cap, "out of memory");
        goto cleanup;
    }
    snprintf(path, sizeof path, "%s/refs/%s", o->store, name);
    if (kiln_imagestore_write_json(path, doc, why, cap) != 0) {
        json_decref(doc);
        goto cleanup;
    }
    fprintf(log, "Image %s ready in %lld ms\n", ref->canonical,
            (long long)(kiln_clock_mono_ms() - t0));
    *out = doc;
    rc = 0;
cleanup:
    free(body);
    json_decref(man);
    json_decref(cfg);
    json_decref(layers);
    json_decref(chains);
    kiln_registry_destroy(&reg);
    return rc;
}

int kiln_image_pull(const kiln_image_opts_t *o, const char *image, FILE *log, char *why,
                    size_t cap)
{
    kiln_imageref_t ref;
    if (kiln_imageref_parse(image, &ref, why, cap) != 0 ||
        kiln_imagestore_make(o->store, why, cap) != 0)
        return -1;
    char name[1100], path[4200];
    kiln_imagestore_ref_name(ref.canonical, name, sizeof name);
    int lock = kiln_imagestore_lock(o->store, LOCK_SH, why, cap);
    if (lock < 0)
        return -1;
    snprintf(path, sizeof path, "%s/refs/%s", o->store, name);
    json_t *old = json_load_file(path, 0, NULL), *fresh = NULL;
    int rc = s_pull(o, &ref, name, old, &fresh, log, why, cap);
    json_decref(old);
    json_decref(fresh);
    close(lock);
    return rc;
}
