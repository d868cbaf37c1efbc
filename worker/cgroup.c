/* cgroup.c: one control group per slot (see cgroup.h). */
#include "worker/cgroup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/error.h"
#include "common/log.h"

/* Processes killed per round; a job that forks faster than this is
 * killed over several rounds. */
#define S_ROUND_MAX 1024
#define S_ROUNDS 64

struct kiln_cgroup {
    char base[PATH_MAX];
    int slots;
    int *fds;               /* cgroup.procs of each slot, for writing */
    char **procs;           /* its path, to read */
};

/* The worker's own cgroup, under mount: in the unified hierarchy (tag "",
 * the line "0::PATH" of /proc/self/cgroup) or the v1 one named tag. */
static int s_own(const char *mount, const char *tag, char *out, size_t cap)
{
    FILE *f = fopen("/proc/self/cgroup", "re");
    if (!f)
        return -1;
    char line[PATH_MAX + 64];
    int rc = -1;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        char *a = strchr(line, ':'), *b = a ? strchr(a + 1, ':') : NULL;
        if (!b)
            continue;
        *a = '\0';
        *b = '\0';
        bool v2 = strcmp(tag, "") == 0 && strcmp(line, "0") == 0 && a[1] == '\0';
        bool v1 = tag[0] && strcmp(a + 1, tag) == 0;
        if (!v2 && !v1)
            continue;
        const char *path = strcmp(b + 1, "/") == 0 ? "" : b + 1;
        rc = snprintf(out, cap, "%s%s", mount, path) < (int)cap ? 0 : -1;
        break;
    }
    fclose(f);
    return rc;
}

static int s_open_slots(kiln_cgroup_t *self, const char *name)
{
    for (int i = 0; i < self->slots; i++) {
        char dir[PATH_MAX + 128], procs[PATH_MAX + 160];
        snprintf(dir, sizeof dir, "%s/kiln-%d-%s-slot-%d", self->base, (int)getpid(), name, i);
        if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
            kiln_error_errno("cannot make the cgroup %s", dir);
            return -1;
        }
        snprintf(procs, sizeof procs, "%s/cgroup.procs", dir);
        self->fds[i] = open(procs, O_WRONLY | O_CLOEXEC);
        if (self->fds[i] == -1) {
            kiln_error_errno("cannot open %s", procs);
            return -1;
        }
        if (!(self->procs[i] = strdup(procs))) {
            kiln_error_set("cgroup: out of memory");
            return -1;
        }
    }
    return 0;
}

static void s_close_slots(kiln_cgroup_t *self)
{
    for (int i = 0; i < self->slots; i++) {
        if (self->fds[i] != -1)
            close(self->fds[i]);
        self->fds[i] = -1;
        free(self->procs[i]);
        self->procs[i] = NULL;
    }
}

static int s_sweep_path(const char *path, int timeout_ms, size_t *killed);

/* Groups of worker processes that are gone (killed, crashed): what is
 * still in them is killed, and they are removed. */
static void s_reap_stale(kiln_cgroup_t *self)
{
    DIR *d = opendir(self->base);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        int pid = 0, used = 0;
        if (sscanf(e->d_name, "kiln-%d-%n", &pid, &used) != 1 || used == 0 || pid <= 1 ||
            !strstr(e->d_name, "-slot-"))
            continue;
        if (pid == (int)getpid() || kill(pid, 0) == 0 || errno != ESRCH)
            continue;
        char dir[PATH_MAX + 300], procs[PATH_MAX + 320];
        snprintf(dir, sizeof dir, "%s/%s", self->base, e->d_name);
        snprintf(procs, sizeof procs, "%s/cgroup.procs", dir);
        size_t killed = 0;
        if (s_sweep_path(procs, 2000, &killed) == 0 && rmdir(dir) == 0 && killed)
            kiln_log_warn("cgroup: killed %zu processes left by worker process %d", killed, pid);
    }
    closedir(d);
}

int kiln_cgroup_new(kiln_cgroup_t **out, const char *name, int slots, const char *root)
{
    *out = NULL;
    kiln_cgroup_t *self = calloc(1, sizeof *self);
    if (!self || !(self->fds = malloc((size_t)slots * sizeof *self->fds)) ||
        !(self->procs = calloc((size_t)slots, sizeof *self->procs))) {
        if (self)
            free(self->fds);
        free(self);
        kiln_error_set("cgroup: out of memory");
        return -1;
    }
    self->slots = slots;
    for (int i = 0; i < slots; i++)
        self->fds[i] = -1;
    char why[KILN_ERROR_MAX] = "";
    struct {
        const char *mount, *tag;
    } tries[] = {{"/sys/fs/cgroup", ""}, {"/sys/fs/cgroup/pids", "pids"}};
    size_t n_tries = root ? 1 : sizeof tries / sizeof tries[0];
    for (size_t t = 0; t < n_tries; t++) {
        if (root) {
            snprintf(self->base, sizeof self->base, "%s", root);
        } else {
            char probe[PATH_MAX];
            snprintf(probe, sizeof probe, "%s/cgroup.procs", tries[t].mount);
            if (access(probe, F_OK) != 0 || (t == 0 && access("/sys/fs/cgroup/cgroup.controllers", F_OK) != 0))
                continue;
            if (s_own(tries[t].mount, tries[t].tag, self->base, sizeof self->base) != 0)
                continue;
        }
        if (s_open_slots(self, name) == 0) {
            s_reap_stale(self);
            *out = self;
            return 0;
        }
        snprintf(why, sizeof why, "%s", kiln_error_last());
        s_close_slots(self);
    }
    kiln_error_set("no writable cgroup hierarchy (%s): processes a step leaves outside its "
                   "process group may outlive its job",
                   why[0] ? why : "neither cgroup v2 nor the v1 pids hierarchy is mounted");
    free(self->fds);
    free(self->procs);
    free(self);
    return 0;
}

int kiln_cgroup_procs_fd(const kiln_cgroup_t *self, int slot)
{
    return self && slot >= 0 && slot < self->slots ? self->fds[slot] : -1;
}

const char *kiln_cgroup_path(const kiln_cgroup_t *self)
{
    return self ? self->base : "";
}

static int s_pidfd_open(pid_t pid)
{
    return (int)syscall(SYS_pidfd_open, pid, 0);
}

static int s_pidfd_kill(int fd)
{
    return (int)syscall(SYS_pidfd_send_signal, fd, SIGKILL, NULL, 0);
}

/* Reads the pids in a cgroup.procs (at most max) into out; how many, or
 * -1. */
static long s_read_pids(const char *path, pid_t *out, size_t max)
{
    int in = open(path, O_RDONLY | O_CLOEXEC);
    if (in == -1) {
        kiln_error_errno("cgroup: cannot read %s", path);
        return -1;
    }
    static char buf[S_ROUND_MAX * 12];
    size_t have = 0;
    for (;;) {
        ssize_t r = read(in, buf + have, sizeof buf - 1 - have);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        have += (size_t)r;
        if (have == sizeof buf - 1)
            break; /* the rest in the next round */
    }
    close(in);
    buf[have] = '\0';
    size_t n = 0;
    for (char *p = buf, *end; *p && n < max; p = end) {
        long pid = strtol(p, &end, 10);
        if (end == p)
            break;
        /* A line cut by the buffer's end is left for the next round. */
        if (*end != '\n')
            break;
        end++;
        if (pid > 1 && pid != (long)getpid())
            out[n++] = (pid_t)pid;
    }
    return (long)n;
}

int kiln_cgroup_sweep(kiln_cgroup_t *self, int slot, int timeout_ms, size_t *killed)
{
    *killed = 0;
    if (!self || slot < 0 || slot >= self->slots)
        return 0;
    return s_sweep_path(self->procs[slot], timeout_ms, killed);
}

static int s_sweep_path(const char *path, int timeout_ms, size_t *killed)
{
    *killed = 0;
    static pid_t pids[S_ROUND_MAX];
    static struct pollfd fds[S_ROUND_MAX];
    for (int round = 0; round < S_ROUNDS; round++) {
        long n = s_read_pids(path, pids, S_ROUND_MAX);
        if (n < 0)
            return -1;
        size_t n_fds = 0;
        for (long i = 0; i < n; i++) {
            int fd = s_pidfd_open(pids[i]);
            if (fd == -1)
                continue; /* gone already */
            if (s_pidfd_kill(fd) == -1) {
                close(fd);
                continue;
            }
            fds[n_fds++] = (struct pollfd){fd, POLLIN, 0};
            (*killed)++;
        }
        if (n == 0)
            return 0;
        /* A pidfd is readable once its process has exited. */
        size_t left = n_fds;
        while (left > 0) {
            int pr = poll(fds, n_fds, timeout_ms);
            if (pr == -1 && errno == EINTR)
                continue;
            if (pr <= 0) {
                for (size_t i = 0; i < n_fds; i++)
                    if (fds[i].fd >= 0)
                        close(fds[i].fd);
                kiln_error_set("cgroup: processes in %s did not end within %d ms of SIGKILL", path,
                               timeout_ms);
                return KILN_ETIMEOUT;
            }
            for (size_t i = 0; i < n_fds; i++) {
                if (fds[i].fd >= 0 && fds[i].revents) {
                    close(fds[i].fd);
                    fds[i].fd = -1;
                    left--;
                }
            }
        }
    }
    kiln_error_set("cgroup: %s still has processes after %d rounds of killing", path, S_ROUNDS);
    return KILN_ETIMEOUT;
}

void kiln_cgroup_destroy(kiln_cgroup_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    kiln_cgroup_t *self = *self_p;
    for (int i = 0; i < self->slots; i++) {
        size_t killed;
        (void)kiln_cgroup_sweep(self, i, 2000, &killed);
        if (self->procs[i]) {
            char *slash = strrchr(self->procs[i], '/');
            if (slash) {
                *slash = '\0';
                (void)rmdir(self->procs[i]);
            }
        }
    }
    s_close_slots(self);
    free(self->fds);
    free(self->procs);
    free(self);
    *self_p = NULL;
}
