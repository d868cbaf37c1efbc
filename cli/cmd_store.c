/* cmd_store.c: the farm's store from the command line: `kiln artifacts
 * RUN`, `kiln artifact get RUN NAME [-o DIR]`, `kiln cache list [REPO]`,
 * `kiln cache rm REPO [KEY|PREFIX*]`.
 *
 * An artifact is fetched in chunks (REQ_BLOB), its bytes checked against
 * the digest the run's record gives, and unpacked with the same checks a
 * worker applies (common/archive.h): a hostile archive leaves nothing.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/follow.h"
#include "common/clock.h"
#include "common/archive.h"
#include "common/digest.h"
#include "common/error.h"

static void s_size(json_int_t n, char *out, size_t cap)
{
    if (n >= 10 * 1024 * 1024)
        snprintf(out, cap, "%lld MB", (long long)(n >> 20));
    else if (n >= 10 * 1024)
        snprintf(out, cap, "%lld kB", (long long)(n >> 10));
    else
        snprintf(out, cap, "%lld B", (long long)n);
}

static void s_render_artifacts(json_t *doc)
{
    size_t i;
    json_t *a;
    if (json_array_size(doc) == 0) {
        printf("no artifacts\n");
        return;
    }
    printf("%-6s %-32s %-10s %-8s %-16s %s\n", "ID", "NAME", "SIZE", "FILES", "JOB", "STATE");
    json_array_foreach(doc, i, a) {
        char size[32];
        s_size(json_integer_value(json_object_get(a, "size")), size, sizeof size);
        printf("%-6lld %-32s %-10s %-8lld %-16s %s\n",
               (long long)json_integer_value(json_object_get(a, "id")),
               json_string_value(json_object_get(a, "name")), size,
               (long long)json_integer_value(json_object_get(json_object_get(a, "meta"), "files")),
               json_string_value(json_object_get(a, "job_id")),
               json_string_value(json_object_get(a, "state")));
    }
}

int kiln_cmd_artifacts(int argc, char **argv)
{
    kiln_cli_common_t c = {0};
    int npos = 0;
    kiln_opt_t opts[] = {KILN_CLI_TARGET_OPTS(c), {"json", KILN_OPT_BOOL, &c.json, "print JSON"},
                         {NULL, 0, NULL, NULL}};
    int rc = kiln_opts_parse(opts, argc, argv, 2, &npos);
    int64_t run = npos == 1 ? kiln_cli_parse_run(argv[2]) : -1;
    if (rc != 0 || run < 0) {
        if (rc == 0)
            kiln_error_set("expected one run number");
        return kiln_cli_usage_error("artifacts", "RUN [--json] [options]", opts, rc ? rc : -1);
    }
    Kiln__Request req = KILN__REQUEST__INIT;
    req.kind = KILN__REQUEST_KIND__REQ_ARTIFACTS;
    req.run_id = (uint64_t)run;
    return kiln_cli_query(&c, &req, s_render_artifacts);
}

/* The artifact's blob into path, in chunks, its digest checked. */
static int s_fetch(kiln_client_t *client, int64_t run, const char *digest, const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    kiln_sha256_t *hs = NULL;
    char hex[65];
    uint64_t off = 0, size = UINT64_MAX;
    int code = KILN_EXIT_INFRA;
    const char *env = getenv("KILN_FOLLOW_GIVE_UP_MS");
    int64_t give_up = env && atol(env) > 0 ? atol(env) : KILN_FOLLOW_GIVE_UP_MS, silent_since = 0;
    bool resumed = false;
    if (fd < 0) {
        fprintf(stderr, "kiln: cannot write %s: %s\n", path, strerror(errno));
        return KILN_EXIT_INFRA;
    }
    if (kiln_sha256_new(&hs) != 0) {
        fprintf(stderr, "kiln: %s\n", kiln_error_last());
        close(fd);
        return KILN_EXIT_INFRA;
    }
    while (off < size) {
        Kiln__Request req = KILN__REQUEST__INIT;
        Kiln__Envelope *reply = NULL;
        req.kind = KILN__REQUEST_KIND__REQ_BLOB;
        req.run_id = (uint64_t)run;
        req.digest = (char *)digest;
        req.offset = off;
        req.limit = 1024 * 1024;
        /* No answer (the coordinator restarting, the network gone): the
         * same offset asked again until the followers' patience runs out,
         * so a download goes on from where it stopped. */
        if (kiln_client_call(client, &req, KILN_CLI_REQUEST_TIMEOUT_MS, &reply) != 0) {
            int64_t now = kiln_clock_mono_ms();
            if (!silent_since)
                silent_since = now;
            if (now - silent_since >= give_up) {
                fprintf(stderr, "kiln: no answer for %lld s at byte %llu of %s: %s\n",
                        (long long)((now - silent_since) / 1000), (unsigned long long)off,
                        digest, kiln_error_last());
                code = KILN_EXIT_INFRA;
                goto cleanup;
            }
            fprintf(stderr, "kiln: %s; asking again for byte %llu on\n", kiln_error_last(),
                    (unsigned long long)off);
            resumed = true;
            continue;
        }
        silent_since = 0;
        if (reply->reply->code != 0) {
            fprintf(stderr, "kiln: %s\n", reply->reply->error);
            code = reply->reply->code == -3 || reply->reply->code == -2 ? KILN_EXIT_USAGE
                                                                        : KILN_EXIT_INFRA;
            kiln__envelope__free_unpacked(reply, NULL);
            goto cleanup;
        }
        const Kiln__Reply *r = reply->reply;
        size = r->size;
        if (r->data.len == 0 && off < size) {
            fprintf(stderr, "kiln: the coordinator sent no bytes of %s at %llu\n", digest,
                    (unsigned long long)off);
            kiln__envelope__free_unpacked(reply, NULL);
            code = KILN_EXIT_INFRA;
            goto cleanup;
        }
        if (write(fd, r->data.data, r->data.len) != (ssize_t)r->data.len) {
            fprintf(stderr, "kiln: cannot write %s: %s\n", path, strerror(errno));
            kiln__envelope__free_unpacked(reply, NULL);
            code = KILN_EXIT_INFRA;
            goto cleanup;
        }
        kiln_sha256_update(hs, r->data.data, r->data.len);
        off += r->data.len;
        kiln__envelope__free_unpacked(reply, NULL);
    }
    if (kiln_sha256_final(hs, hex) != 0)
        hex[0] = '\0';
    if (strncmp(digest, "sha256:", 7) != 0 || strcmp(hex, digest + 7) != 0) {
        fprintf(stderr, "kiln: the artifact's bytes hash to sha256:%s, not %s: refused\n", hex,
                digest);
        code = KILN_EXIT_INFRA;
        goto cleanup;
    }
    if (resumed)
        fprintf(stderr, "kiln: %s: %llu bytes, resumed after the coordinator stopped answering\n",
                digest, (unsigned long long)off);
    code = 0;
cleanup:
    kiln_sha256_destroy(&hs);
    if (close(fd) != 0 && code == 0) {
        fprintf(stderr, "kiln: cannot write %s: %s\n", path, strerror(errno));
        code = KILN_EXIT_INFRA;
    }
    return code;
}

int kiln_cmd_artifact(int argc, char **argv)
{
    kiln_cli_common_t c = {0};
    const char *dir = ".";
    int npos = 0, code;
    kiln_client_t *client = NULL;
    Kiln__Envelope *reply = NULL;
    json_t *list = NULL;
    char archive[PATH_MAX], dest[PATH_MAX];
    kiln_opt_t opts[] = {KILN_CLI_TARGET_OPTS(c),
                         {"o", KILN_OPT_STRING, &dir, "directory to put NAME/ in (.)"},
                         {"output", KILN_OPT_STRING, &dir, "the same as -o"},
                         {NULL, 0, NULL, NULL}};
    /* -o DIR as the usual spelling of --o. */
    for (int i = 2; i < argc; i++)
        if (strcmp(argv[i], "-o") == 0)
            argv[i] = (char *)"--o";
    int rc = kiln_opts_parse(opts, argc, argv, 2, &npos);
    int64_t run = npos == 3 ? kiln_cli_parse_run(argv[3]) : -1;
    if (rc != 0 || npos != 3 || strcmp(argv[2], "get") != 0 || run < 0) {
        if (rc == 0)
            kiln_error_set("expected: get RUN NAME");
        return kiln_cli_usage_error("artifact", "get RUN NAME [-o DIR] [options]", opts,
                                    rc ? rc : -1);
    }
    const char *name = argv[4];
    if ((code = kiln_cli_connect(&c, &client)) != 0)
        return code;
    Kiln__Request req = KILN__REQUEST__INIT;
    req.kind = KILN__REQUEST_KIND__REQ_ARTIFACTS;
    req.run_id = (uint64_t)run;
    if ((code = kiln_cli_call(client, &req, &reply)) != 0)
        goto cleanup;
    list = json_loadb((const char *)reply->reply->json.data, reply->reply->json.len, 0, NULL);
    json_t *art = NULL, *a;
    size_t i;
    json_array_foreach(list, i, a) {
        if (strcmp(json_string_value(json_object_get(a, "name")), name) == 0 &&
            strcmp(json_string_value(json_object_get(a, "state")), "kept") == 0)
            art = a;
    }
    if (!art) {
        fprintf(stderr, "kiln: run %lld has no artifact named '%s' (kiln artifacts %lld lists them)\n",
                (long long)run, name, (long long)run);
        code = KILN_EXIT_USAGE;
        goto cleanup;
    }
    snprintf(dest, sizeof dest, "%s/%s", dir, name);
    struct stat sb;
    if (lstat(dest, &sb) == 0) {
        fprintf(stderr, "kiln: %s exists: not overwritten\n", dest);
        code = KILN_EXIT_USAGE;
        goto cleanup;
    }
    snprintf(archive, sizeof archive, "%s/.kiln-artifact-%ld.tar.zst", dir, (long)getpid());
    if ((code = s_fetch(client, run, json_string_value(json_object_get(art, "digest")), archive)) != 0) {
        unlink(archive);
        goto cleanup;
    }
    kiln_archive_stats_t st;
    if (kiln_archive_unpack(archive, dest, NULL, &st) != 0) {
        fprintf(stderr, "kiln: artifact '%s': %s\n", name, kiln_error_last());
        unlink(archive);
        code = KILN_EXIT_INFRA;
        goto cleanup;
    }
    unlink(archive);
    printf("artifact '%s' of run %lld: %llu files, %llu bytes in %s\n", name, (long long)run,
           (unsigned long long)st.entries, (unsigned long long)st.bytes, dest);
    code = 0;
cleanup:
    json_decref(list);
    if (reply)
        kiln__envelope__free_unpacked(reply, NULL);
    kiln_client_destroy(&client);
    return code;
}

static void s_render_caches(json_t *doc)
{
    size_t i;
    json_t *e;
    if (json_array_size(doc) == 0) {
        printf("no cache entries\n");
        return;
    }
    printf("%-24s %-20s %-40s %-10s %s\n", "REPOSITORY", "REF", "KEY", "SIZE", "LAST USED");
    json_array_foreach(doc, i, e) {
        char size[32], used[64];
        s_size(json_integer_value(json_object_get(e, "size")), size, sizeof size);
        time_t t = (time_t)(json_integer_value(json_object_get(e, "used_ms")) / 1000);
        struct tm tm;
        strftime(used, sizeof used, "%Y-%m-%d %H:%M:%S", gmtime_r(&t, &tm));
        const char *ref = json_string_value(json_object_get(e, "ref"));
        printf("%-24s %-20s %-40s %-10s %s\n", json_string_value(json_object_get(e, "repository")),
               ref && ref[0] ? ref : "-", json_string_value(json_object_get(e, "key")), size, used);
    }
}

int kiln_cmd_cache(int argc, char **argv)
{
    kiln_cli_common_t c = {0};
    int npos = 0, code;
    kiln_opt_t opts[] = {KILN_CLI_TARGET_OPTS(c), {"json", KILN_OPT_BOOL, &c.json, "print JSON"},
                         {NULL, 0, NULL, NULL}};
    int rc = kiln_opts_parse(opts, argc, argv, 2, &npos);
    const char *sub = npos >= 1 ? argv[2] : "";
    bool list = strcmp(sub, "list") == 0 && npos <= 2;
    bool rm = strcmp(sub, "rm") == 0 && (npos == 2 || npos == 3);
    if (rc != 0 || (!list && !rm)) {
        if (rc == 0)
            kiln_error_set("expected: list [REPOSITORY] or rm REPOSITORY [KEY|PREFIX*]");
        return kiln_cli_usage_error("cache", "list [REPOSITORY] | rm REPOSITORY [KEY|PREFIX*]",
                                    opts, rc ? rc : -1);
    }
    Kiln__Request req = KILN__REQUEST__INIT;
    if (list) {
        req.kind = KILN__REQUEST_KIND__REQ_CACHES;
        req.worker = npos == 2 ? argv[3] : (char *)"";
        return kiln_cli_query(&c, &req, s_render_caches);
    }
    kiln_client_t *client = NULL;
    Kiln__Envelope *reply = NULL;
    if ((code = kiln_cli_connect(&c, &client)) != 0)
        return code;
    req.kind = KILN__REQUEST_KIND__REQ_CACHE_RM;
    req.worker = argv[3];
    req.job_id = npos == 3 ? argv[4] : (char *)"";
    if ((code = kiln_cli_call(client, &req, &reply)) == 0) {
        json_t *doc = json_loadb((const char *)reply->reply->json.data, reply->reply->json.len, 0, NULL);
        printf("removed %lld cache entries of %s\n",
               (long long)json_integer_value(json_object_get(doc, "removed")), argv[3]);
        json_decref(doc);
    }
    if (reply)
        kiln__envelope__free_unpacked(reply, NULL);
    kiln_client_destroy(&client);
    return code;
}
