/* image.c: pulling into the image store and starting a step in its
 * sandbox (see image.h). A warm start reads one small file and mounts one
 * overlay, which is why it takes milliseconds: nothing is copied, no
 * daemon is asked. */
#include "worker/image.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/digest.h"
#include "common/fs.h"
#include "worker/imagestore.h"
#include "worker/layers.h"

#define S_LAYERS_MAX 128

static int s_mkdirs(const char *store, char *why, size_t cap)
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

static int s_write_file(const char *path, const char *data, size_t len, char *why, size_t cap)
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

static int s_write_json(const char *path, json_t *doc, char *why, size_t cap)
{
    char *text = json_dumps(doc, JSON_COMPACT);
    if (!text) {
        snprintf(why, cap, "out of memory");
        return -1;
    }
    int rc = s_write_file(path, text, strlen(text), why, cap);
    free(text);
    return rc;
}

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

static int s_hold(const char *store, const char *hold, const char *name, char *why, size_t cap)
{
    if (!hold || !hold[0])
        return 0;
    if (strchr(hold, '/') || hold[0] == '.') {
        snprintf(why, cap, "hold name '%s' is not a file name", hold);
        return -1;
    }
    char path[4200];
    snprintf(path, sizeof path, "%s/holds/%s", store, hold);
    char line[1100];
    int n = snprintf(line, sizeof line, "%s\n", name);
    return s_write_file(path, line, (size_t)n, why, cap);
}

/* Builds the chains of layers[0..n) that are not there yet. */
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
        int w = meta ? s_write_json(mpath, meta, why, cap) : -1;
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
    if (s_write_file(path, body, len, why, cap) != 0)
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
    if (s_write_json(path, doc, why, cap) != 0) {
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

int kiln_image_ensure(const kiln_image_opts_t *o, const char *name_text, const char *hold,
                      char *rootfs, size_t rootfs_cap, json_t **image, FILE *log, char *why,
                      size_t cap)
{
    *image = NULL;
    kiln_imageref_t ref;
    if (kiln_imageref_parse(name_text, &ref, why, cap) != 0 || s_mkdirs(o->store, why, cap) != 0)
        return -1;
    char name[1100], path[4200];
    kiln_imagestore_ref_name(ref.canonical, name, sizeof name);
    snprintf(path, sizeof path, "%s/lock", o->store);
    int lock = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (lock < 0 || flock(lock, LOCK_SH) != 0) {
        snprintf(why, cap, "cannot lock %s: %s", path, strerror(errno));
        if (lock >= 0)
            close(lock);
        return -1;
    }
    int rc = -1;
    snprintf(path, sizeof path, "%s/refs/%s", o->store, name);
    json_t *doc = json_load_file(path, 0, NULL);
    json_t *chains = json_object_get(doc, "chains");
    const char *last = json_string_value(json_array_get(chains, json_array_size(chains) - 1));
    char root[4200] = "";
    if (last)
        snprintf(root, sizeof root, "%s/chains/%s", o->store, last);
    bool warm = last && access(root, F_OK) == 0;
    if (!warm || (o->pull_always && !ref.digest[0])) {
        json_t *fresh = NULL;
        if (s_pull(o, &ref, name, doc, &fresh, log, why, cap) != 0)
            goto cleanup;
        json_decref(doc);
        doc = fresh;
        chains = json_object_get(doc, "chains");
        last = json_string_value(json_array_get(chains, json_array_size(chains) - 1));
        snprintf(root, sizeof root, "%s/chains/%s", o->store, last ?: "-");
    } else {
        /* Its last use, for eviction. */
        utimensat(AT_FDCWD, path, NULL, 0);
        fprintf(log, "Image %s (%s) is on this worker\n", ref.canonical,
                json_string_value(json_object_get(doc, "manifest")) ?: "?");
    }
    if (s_hold(o->store, hold, name, why, cap) != 0)
        goto cleanup;
    if ((size_t)snprintf(rootfs, rootfs_cap, "%s", root) >= rootfs_cap) {
        snprintf(why, cap, "the image store's path is too long");
        goto cleanup;
    }
    *image = json_incref(doc);
    rc = 0;
cleanup:
    json_decref(doc);
    close(lock);
    if (rc == 0 && o->max_bytes) {
        int evicted = 0;
        char gwhy[600];
        if (kiln_imagestore_gc(o->store, o->max_bytes, &evicted, gwhy, sizeof gwhy) != 0)
            fprintf(log, "image store: %s\n", gwhy);
        else if (evicted)
            fprintf(log, "image store: %d least recently used images evicted (quota %llu "
                         "bytes)\n",
                    evicted, (unsigned long long)o->max_bytes);
    }
    return rc;
}

static int s_map(const char *file, const char *text)
{
    int fd = open(file, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = write(fd, text, strlen(text));
    close(fd);
    return n == (ssize_t)strlen(text) ? 0 : -1;
}

/* Docker's default capabilities: a job's root may install packages, never
 * load modules, trace the host or mount. */
static const char *const s_caps[] = {
    "CAP_CHOWN",  "CAP_DAC_OVERRIDE", "CAP_FSETID",          "CAP_FOWNER",      "CAP_MKNOD",
    "CAP_NET_RAW", "CAP_SETGID",      "CAP_SETUID",          "CAP_SETFCAP",     "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",           "CAP_SYS_CHROOT",      "CAP_KILL",        "CAP_AUDIT_WRITE",
};

int kiln_image_exec(const kiln_image_run_t *r, char *why, size_t cap)
{
    char upper[4200], work[4200], merged[4200];
    snprintf(upper, sizeof upper, "%s/upper", r->state);
    snprintf(work, sizeof work, "%s/work", r->state);
    snprintf(merged, sizeof merged, "%s/merged", r->state);
    /* The upper directory is the root's own inode in the overlay: 0755,
     * as an image's root is, so a user other than root may walk it. */
    const char *paths[] = {r->state, upper, work, merged};
    const mode_t modes[] = {0700, 0755, 0700, 0755};
    for (size_t i = 0; i < 4; i++)
        if (mkdir(paths[i], modes[i]) != 0 && errno != EEXIST) {
            snprintf(why, cap, "cannot make %s: %s", paths[i], strerror(errno));
            return -1;
        }
    if (strpbrk(r->rootfs, ",:") || strpbrk(r->state, ",:")) {
        snprintf(why, cap, "the image store and job paths must not hold ',' or ':'");
        return -1;
    }
    uid_t uid = geteuid();
    gid_t gid = getegid();
    bool root = uid == 0;
    /* The overlay lives in a mount namespace of this step's own, so it goes
     * away with the step; the upper directory stays for the next one. */
    if (unshare(CLONE_NEWNS | (root ? 0 : CLONE_NEWUSER)) != 0) {
        snprintf(why, cap, "cannot make a mount namespace: %s", strerror(errno));
        return -1;
    }
    if (!root) {
        char map[64];
        snprintf(map, sizeof map, "0 %u 1\n", (unsigned)uid);
        int m = s_map("/proc/self/setgroups", "deny");
        if (m == 0)
            m = s_map("/proc/self/uid_map", map);
        snprintf(map, sizeof map, "0 %u 1\n", (unsigned)gid);
        if (m == 0)
            m = s_map("/proc/self/gid_map", map);
        if (m != 0) {
            snprintf(why, cap, "cannot map this user into a namespace: %s", strerror(errno));
            return -1;
        }
    }
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) {
        snprintf(why, cap, "cannot make mounts private: %s", strerror(errno));
        return -1;
    }
    char opts[13000];
    snprintf(opts, sizeof opts, "lowerdir=%s,upperdir=%s,workdir=%s", r->rootfs, upper, work);
    if (mount("overlay", merged, "overlay", 0, opts) != 0) {
        snprintf(why, cap, "cannot mount the job's overlay on %s: %s", merged, strerror(errno));
        return -1;
    }
    size_t max = 64 + 4 * r->n_binds + 3 * json_array_size(r->env) + 2 * 16;
    for (size_t i = 0; r->argv[i]; i++)
        max++;
    const char **av = calloc(max, sizeof *av);
    char **owned = calloc(r->n_binds * 2 + json_array_size(r->env) * 3 + 2, sizeof *owned);
    size_t n = 0, n_owned = 0;
    if (!av || !owned) {
        snprintf(why, cap, "out of memory");
        return -1;
    }
    av[n++] = r->bwrap;
    av[n++] = "--bind";
    av[n++] = merged;
    av[n++] = "/";
    av[n++] = "--proc";
    av[n++] = "/proc";
    av[n++] = "--dev";
    av[n++] = "/dev";
    av[n++] = "--unshare-pid";
    av[n++] = "--unshare-ipc";
    av[n++] = "--unshare-uts";
    av[n++] = "--unshare-cgroup-try";
    av[n++] = "--die-with-parent";
    av[n++] = "--hostname";
    av[n++] = r->hostname;
    if (root) {
        av[n++] = "--cap-drop";
        av[n++] = "ALL";
        for (size_t i = 0; i < sizeof s_caps / sizeof *s_caps; i++) {
            av[n++] = "--cap-add";
            av[n++] = s_caps[i];
        }
    }
    av[n++] = "--ro-bind-try";
    av[n++] = "/etc/resolv.conf";
    av[n++] = "/etc/resolv.conf";
    for (size_t i = 0; i < r->n_binds; i++) {
        char *src = strdup(r->binds[i]);
        if (!src) {
            snprintf(why, cap, "out of memory");
            return -1;
        }
        owned[n_owned++] = src;
        char *dst = strchr(src, ':');
        if (!dst || dst == src || dst[1] != '/') {
            snprintf(why, cap, "mount '%s' is not SOURCE:/TARGET[:ro]", r->binds[i]);
            return -1;
        }
        *dst++ = '\0';
        char *mode = strchr(dst, ':');
        if (mode)
            *mode++ = '\0';
        av[n++] = mode && strcmp(mode, "ro") == 0 ? "--ro-bind" : "--bind";
        av[n++] = src;
        av[n++] = dst;
    }
    size_t i;
    json_t *item;
    bool path_set = false;
    json_array_foreach(r->env, i, item) {
        const char *kv = json_string_value(item);
        const char *eq = kv ? strchr(kv, '=') : NULL;
        if (!eq || eq == kv)
            continue;
        char *key = strndup(kv, (size_t)(eq - kv));
        if (!key)
            continue;
        owned[n_owned++] = key;
        /* The image's PATH stays (as `docker exec` keeps it); its other
         * settings give way to the step's. */
        if (strcmp(key, "PATH") != 0 && getenv(key))
            continue;
        const char *value = eq + 1;
        if (strcmp(key, "PATH") == 0 && r->path_prepend && r->path_prepend[0]) {
            char *joined = NULL;
            if (asprintf(&joined, "%s:%s", r->path_prepend, value) < 0) {
                snprintf(why, cap, "out of memory");
                return -1;
            }
            owned[n_owned++] = joined;
            value = joined;
            path_set = true;
        }
        av[n++] = "--setenv";
        av[n++] = key;
        av[n++] = value;
    }
    if (r->path_prepend && r->path_prepend[0] && !path_set) {
        /* An image without a PATH of its own: the usual one after them. */
        char *joined = NULL;
        if (asprintf(&joined, "%s:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                     r->path_prepend) < 0) {
            snprintf(why, cap, "out of memory");
            return -1;
        }
        owned[n_owned++] = joined;
        av[n++] = "--setenv";
        av[n++] = "PATH";
        av[n++] = joined;
    }
    av[n++] = "--setenv";
    av[n++] = "HOSTNAME";
    av[n++] = r->hostname;
    av[n++] = "--chdir";
    av[n++] = r->cwd;
    av[n++] = "--";
    for (size_t a = 0; r->argv[a]; a++)
        av[n++] = r->argv[a];
    av[n] = NULL;
    execv(r->bwrap, (char *const *)av);
    snprintf(why, cap, "cannot run %s: %s", r->bwrap, strerror(errno));
    for (size_t k = 0; k < n_owned; k++)
        free(owned[k]);
    free(owned);
    free(av);
    return -1;
}
