/* cmd_toolcache.c: `kiln toolcache add TOOL VERSION DIR` and `kiln
 * toolcache list`, on a worker's tool cache (RUNNER_TOOL_CACHE,
 * WORK_DIR/tool-cache) on this machine.
 *
 * The layout is @actions/tool-cache's, which setup-python, setup-node,
 * setup-go and the rest read before they download anything:
 * TOOL/VERSION/ARCH/ holding the tool, and TOOL/VERSION/ARCH.complete
 * beside it, written last, so a half-copied version is never found. The
 * copy goes through the archive code (common/archive.c): links that leave
 * the tool's directory, devices and setuid bits are refused rather than
 * planted into every job's reach.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/follow.h"
#include "common/archive.h"
#include "common/error.h"
#include "common/fs.h"

/* @actions/tool-cache names architectures as Node's os.arch() does. */
static const char *s_arch(void)
{
    struct utsname u;
    if (uname(&u) == 0 && strcmp(u.machine, "aarch64") == 0)
        return "arm64";
    return "x64";
}

/* A tool's or version's name: one path segment of plain characters. */
static bool s_name_ok(const char *s)
{
    if (!s[0] || strlen(s) > 128 || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
        return false;
    for (const char *c = s; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              strchr("._+-", *c)))
            return false;
    return true;
}

static int s_mkdirs(const char *path)
{
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s", path);
    for (char *s = p + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        if (mkdir(p, 0755) != 0 && errno != EEXIST)
            return -1;
        *s = '/';
    }
    return mkdir(p, 0755) != 0 && errno != EEXIST ? -1 : 0;
}

static int s_add(const char *cache, const char *tool, const char *version, const char *arch,
                 const char *src)
{
    char dest[PATH_MAX], marker[PATH_MAX + 16], parent[PATH_MAX], archive[PATH_MAX + 32];
    char real[PATH_MAX];
    struct stat st;
    int code = KILN_EXIT_INFRA;
    if (!s_name_ok(tool) || !s_name_ok(version) || !s_name_ok(arch)) {
        fprintf(stderr, "kiln toolcache: TOOL, VERSION and --arch are plain names (letters, "
                        "digits, '.', '_', '+', '-'): got '%s' '%s' '%s'\n",
                tool, version, arch);
        return KILN_EXIT_USAGE;
    }
    if (!realpath(src, real) || stat(real, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "kiln toolcache: %s is not a directory\n", src);
        return KILN_EXIT_USAGE;
    }
    snprintf(parent, sizeof parent, "%s/%s/%s", cache, tool, version);
    snprintf(dest, sizeof dest, "%s/%s", parent, arch);
    snprintf(marker, sizeof marker, "%s.complete", dest);
    if (lstat(dest, &st) == 0 || lstat(marker, &st) == 0) {
        fprintf(stderr, "kiln toolcache: %s %s (%s) is there already: %s (remove it and its "
                        ".complete marker to replace it)\n",
                tool, version, arch, dest);
        return KILN_EXIT_USAGE;
    }
    if (s_mkdirs(parent) != 0) {
        fprintf(stderr, "kiln toolcache: cannot make %s: %s\n", parent, strerror(errno));
        return KILN_EXIT_INFRA;
    }
    /* Packed from the source's parent under the source's own name, then
     * unpacked beside the destination and renamed in. */
    char *slash = strrchr(real, '/');
    const char *base = slash[1] ? slash + 1 : ".";
    char root[PATH_MAX];
    snprintf(root, sizeof root, "%.*s", slash == real ? 1 : (int)(slash - real), real);
    snprintf(archive, sizeof archive, "%s/.kiln-toolcache-%ld.tar", parent, (long)getpid());
    char staging[PATH_MAX + 32];
    snprintf(staging, sizeof staging, "%s/.kiln-toolcache-%ld", parent, (long)getpid());
    const char *paths[] = {base};
    kiln_archive_stats_t as;
    if (kiln_archive_pack(root, paths, 1, archive, 1, &as) != 0 ||
        kiln_archive_unpack(archive, staging, NULL, NULL) != 0) {
        fprintf(stderr, "kiln toolcache: cannot copy %s: %s\n", real, kiln_error_last());
        goto cleanup;
    }
    char inner[PATH_MAX * 2];
    snprintf(inner, sizeof inner, "%s/%s", staging, base);
    if (rename(inner, dest) != 0) {
        fprintf(stderr, "kiln toolcache: cannot move the copy to %s: %s\n", dest, strerror(errno));
        goto cleanup;
    }
    int fd = open(marker, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0 || fsync(fd) != 0 || close(fd) != 0) {
        fprintf(stderr, "kiln toolcache: cannot write %s: %s\n", marker, strerror(errno));
        goto cleanup;
    }
    printf("%s %s (%s): %llu files and directories, %llu bytes in %s\n", tool, version, arch,
           (unsigned long long)as.entries, (unsigned long long)as.bytes, dest);
    code = 0;
cleanup:
    unlink(archive);
    kiln_fs_rmtree(staging);
    return code;
}




static int s_list(const char *cache)
{
    size_t nt = 0, shown = 0;
    char **tools;
    kiln_fs_names(cache, 1, &tools, &nt);
    printf("%-20s %-16s %-8s %s\n", "TOOL", "VERSION", "ARCH", "STATE");
    for (size_t i = 0; i < nt; i++) {
        char tdir[PATH_MAX];
        size_t nv = 0;
        snprintf(tdir, sizeof tdir, "%s/%s", cache, tools[i]);
        char **versions;
        kiln_fs_names(tdir, 1, &versions, &nv);
        for (size_t v = 0; v < nv; v++) {
            char vdir[PATH_MAX * 2];
            size_t na = 0;
            snprintf(vdir, sizeof vdir, "%s/%s", tdir, versions[v]);
            char **arches;
            kiln_fs_names(vdir, 0, &arches, &na);
            for (size_t a = 0; a < na; a++) {
                char marker[PATH_MAX * 3];
                struct stat st;
                size_t len = strlen(arches[a]);
                if (len > 9 && strcmp(arches[a] + len - 9, ".complete") == 0)
                    continue;
                snprintf(marker, sizeof marker, "%s/%s.complete", vdir, arches[a]);
                printf("%-20s %-16s %-8s %s\n", tools[i], versions[v], arches[a],
                       stat(marker, &st) == 0 ? "complete" : "incomplete (no .complete marker: "
                                                             "not found by actions)");
                shown++;
            }
            kiln_fs_names_free(arches, na);
        }
        kiln_fs_names_free(versions, nv);
    }
    kiln_fs_names_free(tools, nt);
    if (!shown)
        printf("(no tools in %s)\n", cache);
    return 0;
}

int kiln_cmd_toolcache(int argc, char **argv)
{
    const char *work_dir = NULL, *tool_cache = NULL, *arch = NULL;
    int npos = 0;
    kiln_opt_t opts[] = {
        {"work-dir", KILN_OPT_STRING, &work_dir,
         "the worker's --work-dir (its tool cache is WORK_DIR/tool-cache)"},
        {"tool-cache", KILN_OPT_STRING, &tool_cache, "the tool cache directory itself"},
        {"arch", KILN_OPT_STRING, &arch, "x64 or arm64 (default: this machine's)"},
        {NULL, 0, NULL, NULL},
    };
    static const char usage[] = "add TOOL VERSION DIR | list  (--work-dir DIR | --tool-cache DIR)";
    int rc = kiln_opts_parse(opts, argc, argv, 2, &npos);
    const char *sub = npos >= 1 ? argv[2] : "";
    bool add = strcmp(sub, "add") == 0 && npos == 4, list = strcmp(sub, "list") == 0 && npos == 1;
    if (rc == 0 && !add && !list)
        kiln_error_set("expected: add TOOL VERSION DIR, or list");
    else if (rc == 0 && !(work_dir && work_dir[0]) == !(tool_cache && tool_cache[0]))
        kiln_error_set("give the worker's --work-dir or the --tool-cache directory (one of them)");
    else if (rc == 0)
        goto run;
    return kiln_cli_usage_error("toolcache", usage, opts, rc ? rc : -1);
run:;
    char cache[PATH_MAX];
    if (tool_cache && tool_cache[0])
        snprintf(cache, sizeof cache, "%s", tool_cache);
    else
        snprintf(cache, sizeof cache, "%s/tool-cache", work_dir);
    if (list)
        return s_list(cache);
    return s_add(cache, argv[3], argv[4], arch && arch[0] ? arch : s_arch(), argv[5]);
}
