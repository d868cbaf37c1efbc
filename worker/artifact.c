/* artifact.c: upload-artifact and download-artifact on the farm's store
 * (see artifact.h).
 */
#include "worker/artifact.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/archive.h"
#include "common/error.h"
#include "common/fs.h"
#include "worker/paths.h"
#include "worker/storeclient.h"

static const char *s_or(const char *v, const char *def)
{
    return v && v[0] ? v : def;
}

static bool s_true(const char *v)
{
    return v && strcmp(v, "true") == 0;
}

static int64_t s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}


static int s_mkdirs(const char *path)
{
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s", path);
    for (char *c = p + 1; *c; c++) {
        if (*c != '/')
            continue;
        *c = '\0';
        if (mkdir(p, 0755) != 0 && errno != EEXIST)
            return -1;
        *c = '/';
    }
    return mkdir(p, 0755) != 0 && errno != EEXIST ? -1 : 0;
}

/* ---------------------------------------------------------------- upload */

static int s_upload(const kiln_artifact_opts_t *o, kiln_storeclient_t *sc, FILE *log)
{
    kiln_paths_t found = {0};
    kiln_archive_item_t *items = NULL;
    char arch[PATH_MAX], line[1024], out[600];
    int rc = -1;
    const char *name = s_or(o->name, "artifact");
    const char *ifnone = s_or(o->if_no_files_found, "warn");
    arch[0] = '\0';
    if (strcmp(ifnone, "warn") != 0 && strcmp(ifnone, "error") != 0 && strcmp(ifnone, "ignore") != 0) {
        kiln_error_set("input 'if-no-files-found' is '%s': warn, error or ignore", ifnone);
        return -1;
    }
    int level = 6;
    if (o->compression_level && o->compression_level[0]) {
        char *end = NULL;
        long v = strtol(o->compression_level, &end, 10);
        if (!end || *end || v < 0 || v > 9) {
            kiln_error_set("input 'compression-level' is '%s': a number from 0 to 9",
                           o->compression_level);
            return -1;
        }
        level = v == 0 ? 1 : (int)v; /* zstd has no "store": its fastest level */
    }
    unsigned days = 0;
    if (o->retention_days && o->retention_days[0]) {
        char *end = NULL;
        long v = strtol(o->retention_days, &end, 10);
        if (!end || *end || v < 1 || v > 90) {
            kiln_error_set("input 'retention-days' is '%s': a number of days from 1 to 90",
                           o->retention_days);
            return -1;
        }
        days = (unsigned)v;
    }
    if (!o->path || !o->path[0]) {
        kiln_error_set("Input required and not supplied: path");
        return -1;
    }
    if (kiln_paths_find(o->path, o->workspace, o->home, s_true(o->include_hidden), &found) != 0)
        return -1;
    if (found.n == 0) {
#define S_NONE "No files were found with the provided path: %s. No artifacts will be uploaded."
        if (strcmp(ifnone, "error") == 0) {
            kiln_error_set(S_NONE, o->path);
            goto cleanup;
        }
        if (strcmp(ifnone, "warn") == 0)
            fprintf(log, "::warning::");
        fprintf(log, S_NONE "\n", o->path);
#undef S_NONE
        rc = 0;
        goto cleanup;
    }
    size_t rl = strlen(found.root);
    if (!(items = calloc(found.n, sizeof *items))) {
        kiln_error_set("out of memory");
        goto cleanup;
    }
    for (size_t i = 0; i < found.n; i++) {
        items[i].path = found.files[i];
        items[i].name = found.files[i] + rl + (strcmp(found.root, "/") != 0);
    }
    fprintf(log, "With the provided path, there will be %zu files uploaded (root %s)\n", found.n,
            found.root);
    snprintf(arch, sizeof arch, "%s/.kiln-artifact-%ld.tar.zst", s_or(o->temp, "/tmp"),
             (long)getpid());
    int64_t t0 = s_now_ms();
    kiln_archive_stats_t st;
    if (kiln_archive_pack_items(items, found.n, arch, level, &st) != 0)
        goto cleanup;
    char digest[72];
    kiln_store_xfer_t xs;
    if (kiln_storeclient_upload(sc, arch, digest, &xs) != 0)
        goto cleanup;
    char meta[160];
    const char *step = getenv("KILN_STEP_INDEX");
    snprintf(meta, sizeof meta, "{\"files\":%zu,\"bytes\":%llu,\"step\":%d}", found.n,
             (unsigned long long)st.bytes, step ? atoi(step) : -1);
    Kiln__StoreRequest req = KILN__STORE_REQUEST__INIT;
    Kiln__Envelope *env = NULL;
    req.op = KILN__STORE_OP__STORE_ARTIFACT_ADD;
    req.name = (char *)name;
    req.digest = digest;
    req.meta = meta;
    req.overwrite = s_true(o->overwrite);
    req.retention_days = days;
    int arc = kiln_storeclient_call(sc, &req, &env);
    json_t *j = arc == 0 ? json_loadb((const char *)env->store_reply->json.data,
                                      env->store_reply->json.len, 0, NULL)
                         : NULL;
    if (env)
        kiln__envelope__free_unpacked(env, NULL);
    if (arc != 0)
        goto cleanup;
    long long id = (long long)json_integer_value(json_object_get(j, "id"));
    json_decref(j);
    /* The archive joins this worker's blob cache: a job here that
     * downloads it moves nothing, and the scheduler knows it is warm. */
    char kept[PATH_MAX + 80];
    snprintf(kept, sizeof kept, "%s/blobs", s_or(o->cache_dir, "/nonexistent"));
    if ((mkdir(o->cache_dir, 0700) == 0 || errno == EEXIST) && (mkdir(kept, 0700) == 0 || errno == EEXIST)) {
        snprintf(kept, sizeof kept, "%s/blobs/%s", o->cache_dir, digest + 7);
        if (rename(arch, kept) == 0)
            arch[0] = '\0';
    }
    fprintf(log, "Artifact %s has been successfully uploaded! Final size is %llu bytes. Artifact "
                 "ID is %lld (%zu files, %llu bytes unpacked, %lld ms, %llu bytes sent%s%s)\n",
            name, (unsigned long long)st.archive_bytes, id, found.n, (unsigned long long)st.bytes,
            (long long)(s_now_ms() - t0), (unsigned long long)xs.moved,
            xs.deduplicated ? ": the store already had it" : "",
            xs.resumed ? ", resumed where the store's copy stopped after a lost answer" : "");
    snprintf(out, sizeof out, "artifact-id=%lld\nartifact-digest=%s\nartifact-url=\n", id,
             digest + 7);
    snprintf(line, sizeof line, "Artifact `%s` uploaded: %zu files, %llu bytes (%llu archived)\n",
             name, found.n, (unsigned long long)st.bytes, (unsigned long long)st.archive_bytes);
    if (kiln_paths_append(o->output_path, out) != 0 || kiln_paths_append(o->summary_path, line) != 0)
        goto cleanup;
    rc = 0;
cleanup:
    if (arch[0])
        unlink(arch);
    free(items);
    kiln_paths_free(&found);
    return rc;
}

/* -------------------------------------------------------------- download */

static int s_download_one(const kiln_artifact_opts_t *o, kiln_storeclient_t *sc, json_t *art,
                          const char *dest, FILE *log)
{
    const char *name = json_string_value(json_object_get(art, "name"));
    const char *digest = json_string_value(json_object_get(art, "digest"));
    char blob[PATH_MAX], staging[PATH_MAX];
    kiln_store_xfer_t xs;
    int64_t t0 = s_now_ms();
    int rc = -1;
    if (!name || !digest) {
        kiln_error_set("the farm's store answered with an artifact without name or digest");
        return -1;
    }
    if (kiln_storeclient_fetch(sc, digest, o->cache_dir, o->cache_max_bytes, blob, sizeof blob, &xs) != 0)
        return -1;
    if (s_mkdirs(dest) != 0) {
        kiln_error_errno("cannot make %s", dest);
        return -1;
    }
    snprintf(staging, sizeof staging, "%s/.kiln-download-%ld", dest, (long)getpid());
    kiln_fs_rmtree(staging);
    kiln_archive_stats_t st;
    if (kiln_archive_unpack(blob, staging, NULL, &st) != 0) {
        char why[KILN_ERROR_MAX];
        snprintf(why, sizeof why, "%s", kiln_error_last());
        kiln_error_set("artifact '%s': %s", name, why);
        goto cleanup;
    }
    DIR *d = opendir(staging);
    struct dirent *de;
    rc = d ? 0 : -1;
    while (d && rc == 0 && (de = readdir(d))) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        char s2[PATH_MAX], d2[PATH_MAX];
        snprintf(s2, sizeof s2, "%s/%s", staging, de->d_name);
        snprintf(d2, sizeof d2, "%s/%s", dest, de->d_name);
        rc = kiln_paths_merge(s2, d2);
    }
    if (d)
        closedir(d);
    if (rc != 0)
        goto cleanup;
    fprintf(log, "Artifact '%s' downloaded to %s: %llu files, %llu bytes, %lld ms (%s)\n", name,
            dest, (unsigned long long)st.entries, (unsigned long long)st.bytes,
            (long long)(s_now_ms() - t0), xs.local ? "from this worker's cache" : "from the coordinator");
    char line[PATH_MAX + 200];
    snprintf(line, sizeof line, "Artifact `%s` downloaded: %llu bytes (%s)\n", name,
             (unsigned long long)st.bytes, xs.local ? "this worker's cache" : "the coordinator");
    rc = kiln_paths_append(o->summary_path, line);
cleanup:
    kiln_fs_rmtree(staging);
    return rc;
}

static int s_download(const kiln_artifact_opts_t *o, kiln_storeclient_t *sc, FILE *log)
{
    char dest[PATH_MAX], out[PATH_MAX + 32];
    const char *path = s_or(o->path, "");
    json_t *doc = NULL;
    int rc = -1;
    if (o->run_id && o->run_id[0] && strcmp(o->run_id, s_or(o->own_run_id, "")) != 0) {
        kiln_error_set("run-id %s: Kiln downloads artifacts of the job's own run only (%s)",
                       o->run_id, s_or(o->own_run_id, "?"));
        return -1;
    }
    if (o->repository && o->repository[0] && strcmp(o->repository, s_or(o->own_repository, "")) != 0) {
        kiln_error_set("repository %s: Kiln downloads artifacts of the job's own run only",
                       o->repository);
        return -1;
    }
    if (o->name && o->name[0] && o->pattern && o->pattern[0])
        fprintf(log, "::warning::name and pattern given: pattern is ignored, as on GitHub\n");
    if (!path[0])
        snprintf(dest, sizeof dest, "%s", s_or(o->workspace, "."));
    else if (path[0] == '~' && (path[1] == '/' || !path[1]))
        snprintf(dest, sizeof dest, "%s%s", s_or(o->home, "/"), path + 1);
    else if (path[0] == '/')
        snprintf(dest, sizeof dest, "%s", path);
    else
        snprintf(dest, sizeof dest, "%s/%s", s_or(o->workspace, "."), path);
    Kiln__StoreRequest req = KILN__STORE_REQUEST__INIT;
    Kiln__Envelope *env = NULL;
    char *names[1] = {(char *)o->name};
    bool by_name = o->name && o->name[0];
    req.op = KILN__STORE_OP__STORE_ARTIFACT_FIND;
    if (by_name) {
        req.names = names;
        req.n_names = 1;
    } else
        req.name = (char *)s_or(o->pattern, "");
    int frc = kiln_storeclient_call(sc, &req, &env);
    if (frc == 0)
        doc = json_loadb((const char *)env->store_reply->json.data, env->store_reply->json.len, 0,
                         NULL);
    if (env)
        kiln__envelope__free_unpacked(env, NULL);
    if (frc != 0)
        return -1;
    json_t *arts = json_object_get(doc, "artifacts");
    size_t n = json_array_size(arts), i;
    json_t *a;
    if (n == 0) {
        fprintf(log, "No artifacts found%s%s\n", o->pattern && o->pattern[0] ? " matching " : "",
                s_or(o->pattern, ""));
    }
    json_array_foreach(arts, i, a) {
        char d[PATH_MAX + 260];
        /* One named: into path itself; several: each in a directory of its
         * name, unless merged. */
        if (by_name || s_true(o->merge_multiple))
            snprintf(d, sizeof d, "%s", dest);
        else
            snprintf(d, sizeof d, "%s/%s", dest, json_string_value(json_object_get(a, "name")));
        if (s_download_one(o, sc, a, d, log) != 0)
            goto cleanup;
    }
    fprintf(log, "Total of %zu artifact(s) downloaded\n", n);
    snprintf(out, sizeof out, "download-path=%s\n", dest);
    if (kiln_paths_append(o->output_path, out) != 0)
        goto cleanup;
    rc = 0;
cleanup:
    json_decref(doc);
    return rc;
}

int kiln_artifact_run(const kiln_artifact_opts_t *o, FILE *log)
{
    kiln_storeclient_t *sc = NULL;
    if (kiln_storeclient_new(&sc) != 0)
        return -1;
    int rc = strcmp(o->builtin, "upload-artifact") == 0 ? s_upload(o, sc, log) : s_download(o, sc, log);
    kiln_storeclient_destroy(&sc);
    return rc;
}
