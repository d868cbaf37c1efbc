/* image.c: the native runtime's warm path (see image.h): an image the
 * store holds is found from its record, held for the job, and the step
 * started in its sandbox. A warm start reads one small file and mounts one
 * overlay: nothing is copied, no daemon is asked, and the libraries a pull
 * needs are not even loaded (kiln-image-pull does the pulling). */
#include "worker/image.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/fs.h"
#include "common/imageref.h"
#include "worker/imagestore.h"

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
    return kiln_imagestore_write(path, line, (size_t)n, why, cap);
}

/* Builds the chains of layers[0..n) that are not there yet. */
/* Runs kiln-image-pull for image, its progress on log, its error (the
 * last of what it says on stderr) into why. */
static int s_run_pull(const kiln_image_opts_t *o, const char *image, FILE *log, char *why,
                      size_t cap)
{
    char max[32];
    snprintf(max, sizeof max, "%llu", (unsigned long long)(o->max_bytes >> 20));
    const char *argv[20];
    size_t n = 0;
    argv[n++] = o->pull_program;
    argv[n++] = "--store";
    argv[n++] = o->store;
    if (o->registry.auth_file && o->registry.auth_file[0]) {
        argv[n++] = "--auth";
        argv[n++] = o->registry.auth_file;
    }
    if (o->registry.insecure && o->registry.insecure[0]) {
        argv[n++] = "--insecure";
        argv[n++] = o->registry.insecure;
    }
    if (o->registry.mirror && o->registry.mirror[0]) {
        argv[n++] = "--mirror";
        argv[n++] = o->registry.mirror;
    }
    if (o->max_bytes) {
        argv[n++] = "--max-mb";
        argv[n++] = max;
    }
    argv[n++] = image;
    argv[n] = NULL;
    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC) != 0) {
        snprintf(why, cap, "cannot start %s: %s", o->pull_program, strerror(errno));
        return -1;
    }
    fflush(log);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fileno(log), 1);
        dup2(pipefd[1], 2);
        execv(o->pull_program, (char *const *)argv);
        fprintf(stderr, "cannot run %s: %s\n", o->pull_program, strerror(errno));
        _exit(127);
    }
    close(pipefd[1]);
    if (pid < 0) {
        close(pipefd[0]);
        snprintf(why, cap, "cannot start %s: %s", o->pull_program, strerror(errno));
        return -1;
    }
    /* What it says on stderr: its error, bounded. */
    char err[2048];
    size_t got = 0;
    ssize_t r;
    while ((r = read(pipefd[0], err + got, sizeof err - 1 - got)) != 0) {
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            break;
        got += (size_t)r;
        if (got == sizeof err - 1) {
            char drain[512];
            while (read(pipefd[0], drain, sizeof drain) > 0)
                ;
            break;
        }
    }
    close(pipefd[0]);
    err[got] = '\0';
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
        return 0;
    while (got && (err[got - 1] == '\n' || err[got - 1] == '\r'))
        err[--got] = '\0';
    const char *last = strrchr(err, '\n');
    snprintf(why, cap, "%s", got ? (last ? last + 1 : err) : "the pull failed");
    return -1;
}

int kiln_image_ensure(const kiln_image_opts_t *o, const char *name_text, const char *hold,
                      char *rootfs, size_t rootfs_cap, json_t **image, FILE *log, char *why,
                      size_t cap)
{
    *image = NULL;
    kiln_imageref_t ref;
    if (kiln_imageref_parse(name_text, &ref, why, cap) != 0 || kiln_imagestore_make(o->store, why, cap) != 0)
        return -1;
    char name[1100], path[4200];
    kiln_imagestore_ref_name(ref.canonical, name, sizeof name);
    int lock = kiln_imagestore_lock(o->store, LOCK_SH, why, cap);
    if (lock < 0)
        return -1;
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
        if (s_run_pull(o, ref.canonical, log, why, cap) != 0)
            goto cleanup;
        json_decref(doc);
        doc = json_load_file(path, 0, NULL);
        if (!doc) {
            snprintf(why, cap, "image %s: its record is missing after the pull", ref.canonical);
            goto cleanup;
        }
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
