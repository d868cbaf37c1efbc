/* cgroup.c: the worker's control group, or its child-subreaper fallback
 * (see cgroup.h). */
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
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/error.h"
#include "common/log.h"

/* Processes read per round; a job that forks faster than this is killed
 * over several rounds. */
#define S_ROUND_MAX 1024
#define S_ROUNDS 64

struct kiln_cgroup {
    /* No writable hierarchy: the worker is its descendants' subreaper, and
     * its leftovers are its own children that are not steps (procs ""). */
    bool subreaper;
    char base[PATH_MAX];    /* the worker's own cgroup, where the group is made */
    char dir[PATH_MAX + 160];
    char procs[PATH_MAX + 180];
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

/* Makes the group and moves this process (every thread) into it. */
static int s_join(kiln_cgroup_t *self, const char *name)
{
    snprintf(self->dir, sizeof self->dir, "%s/kiln-%d-%s", self->base, (int)getpid(), name);
    snprintf(self->procs, sizeof self->procs, "%s/cgroup.procs", self->dir);
    if (mkdir(self->dir, 0755) != 0 && errno != EEXIST) {
        kiln_error_errno("cannot make the cgroup %s", self->dir);
        return -1;
    }
    int fd = open(self->procs, O_WRONLY | O_CLOEXEC);
    if (fd == -1 || write(fd, "0", 1) != 1) {
        kiln_error_errno("cannot join the cgroup %s", self->dir);
        if (fd != -1)
            close(fd);
        (void)rmdir(self->dir);
        return -1;
    }
    close(fd);
    return 0;
}

static int s_sweep_path(const char *path, const char *tracking_id, const pid_t *spare,
                        size_t n_spare, int timeout_ms, size_t *killed);

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
        if (sscanf(e->d_name, "kiln-%d-%n", &pid, &used) != 1 || used == 0 || pid <= 1)
            continue;
        if (pid == (int)getpid() || kill(pid, 0) == 0 || errno != ESRCH)
            continue;
        char dir[PATH_MAX + 300], procs[PATH_MAX + 320];
        snprintf(dir, sizeof dir, "%s/%s", self->base, e->d_name);
        snprintf(procs, sizeof procs, "%s/cgroup.procs", dir);
        size_t killed = 0;
        if (s_sweep_path(procs, NULL, NULL, 0, 2000, &killed) == 0 && rmdir(dir) == 0 && killed)
            kiln_log_warn("cgroup: killed %zu processes left by worker process %d", killed, pid);
    }
    closedir(d);
}

int kiln_cgroup_new(kiln_cgroup_t **out, const char *name, const char *root)
{
    *out = NULL;
    kiln_cgroup_t *self = calloc(1, sizeof *self);
    if (!self) {
        kiln_error_set("cgroup: out of memory");
        return -1;
    }
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
            if (access(probe, F_OK) != 0 ||
                (t == 0 && access("/sys/fs/cgroup/cgroup.controllers", F_OK) != 0))
                continue;
            if (s_own(tries[t].mount, tries[t].tag, self->base, sizeof self->base) != 0)
                continue;
        }
        if (s_join(self, name) == 0) {
            s_reap_stale(self);
            *out = self;
            return 0;
        }
        snprintf(why, sizeof why, "%s", kiln_error_last());
    }
    /* What leaves a step's process group re-parents to the nearest
     * subreaper instead of init: this process, which finds it among its
     * own children at the job's end. */
    if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) {
        kiln_error_set("no writable cgroup hierarchy (%s), and PR_SET_CHILD_SUBREAPER "
                       "failed (%s): processes a step leaves outside its process group may "
                       "outlive its job",
                       why[0] ? why : "neither cgroup v2 nor the v1 pids hierarchy is mounted",
                       strerror(errno));
        free(self);
        return 0;
    }
    self->subreaper = true;
    self->dir[0] = self->procs[0] = '\0';
    kiln_error_set("no writable cgroup hierarchy (%s): the worker is its steps' child subreaper "
                   "instead, so what a step leaves running (a double fork, setsid -f) is "
                   "re-parented to it and killed at the job's end; only a process another "
                   "service starts for a step (systemd-run, a container engine) escapes",
                   why[0] ? why : "neither cgroup v2 nor the v1 pids hierarchy is mounted");
    *out = self;
    return 0;
}

const char *kiln_cgroup_path(const kiln_cgroup_t *self)
{
    return self ? self->dir : "";
}

bool kiln_cgroup_is_subreaper(const kiln_cgroup_t *self)
{
    return self && self->subreaper;
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

/* The subreaper's leftovers: this process's children (by /proc/N/stat's
 * ppid), at most max; how many, or -1. */
static long s_read_children(pid_t *out, size_t max)
{
    DIR *d = opendir("/proc");
    if (!d) {
        kiln_error_errno("cgroup: cannot read /proc");
        return -1;
    }
    pid_t self = getpid();
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < max) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        if (*end || pid <= 1 || pid == (long)self)
            continue;
        char path[64], stat[512];
        snprintf(path, sizeof path, "/proc/%ld/stat", pid);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd == -1)
            continue;
        ssize_t r = read(fd, stat, sizeof stat - 1);
        close(fd);
        if (r <= 0)
            continue;
        stat[r] = '\0';
        /* "pid (comm) state ppid ...": comm may hold anything, ')' too. */
        char *paren = strrchr(stat, ')');
        char state;
        long ppid;
        if (paren && sscanf(paren + 1, " %c %ld", &state, &ppid) == 2 && ppid == (long)self)
            out[n++] = (pid_t)pid;
    }
    closedir(d);
    return (long)n;
}

int kiln_cgroup_sweep(kiln_cgroup_t *self, const char *tracking_id, const pid_t *spare,
                      size_t n_spare, int timeout_ms, size_t *killed)
{
    *killed = 0;
    if (!self)
        return 0;
    return s_sweep_path(self->procs, tracking_id, spare, n_spare, timeout_ms, killed);
}

/* Whether pid's environment names another job than tracking_id. */
static bool s_other_job(pid_t pid, const char *tracking_id)
{
    if (!tracking_id)
        return false;
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/environ", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1)
        return false;
    static char env[65536];
    ssize_t n = read(fd, env, sizeof env - 1);
    close(fd);
    if (n <= 0)
        return false;
    env[n] = '\0';
    static const char key[] = "KILN_TRACKING_ID=";
    for (char *p = env; p < env + n; p += strlen(p) + 1)
        if (strncmp(p, key, sizeof key - 1) == 0)
            return strcmp(p + sizeof key - 1, tracking_id) != 0;
    return false;
}

/* Whether pid is spared: listed, or in a listed process group. */
static bool s_spared(pid_t pid, const pid_t *spare, size_t n_spare)
{
    pid_t group = getpgid(pid);
    for (size_t i = 0; i < n_spare; i++)
        if (spare[i] == pid || (group > 0 && spare[i] == group))
            return true;
    return false;
}

static int s_sweep_path(const char *path, const char *tracking_id, const pid_t *spare,
                        size_t n_spare, int timeout_ms, size_t *killed)
{
    *killed = 0;
    static pid_t pids[S_ROUND_MAX];
    static struct pollfd fds[S_ROUND_MAX];
    static pid_t fd_pid[S_ROUND_MAX];
    for (int round = 0; round < S_ROUNDS; round++) {
        long n = path[0] ? s_read_pids(path, pids, S_ROUND_MAX)
                         : s_read_children(pids, S_ROUND_MAX);
        if (n < 0)
            return -1;
        size_t n_fds = 0;
        for (long i = 0; i < n; i++) {
            if (s_spared(pids[i], spare, n_spare) || s_other_job(pids[i], tracking_id))
                continue;
            int fd = s_pidfd_open(pids[i]);
            if (fd == -1)
                continue; /* gone already */
            if (s_pidfd_kill(fd) == -1) {
                close(fd);
                continue;
            }
            fd_pid[n_fds] = pids[i];
            fds[n_fds++] = (struct pollfd){fd, POLLIN, 0};
            (*killed)++;
        }
        if (n_fds == 0)
            return 0; /* nothing, or only what is spared */
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
                kiln_error_set("cgroup: processes in %s did not end within %d ms of SIGKILL",
                               path[0] ? path : "the worker's children", timeout_ms);
                return KILN_ETIMEOUT;
            }
            for (size_t i = 0; i < n_fds; i++) {
                if (fds[i].fd >= 0 && fds[i].revents) {
                    close(fds[i].fd);
                    fds[i].fd = -1;
                    left--;
                    /* The subreaper's own child: reaped, or it stays a
                     * zombie in the process table. */
                    if (!path[0])
                        (void)waitpid(fd_pid[i], NULL, WNOHANG);
                }
            }
        }
    }
    kiln_error_set("cgroup: %s still has processes after %d rounds of killing",
                   path[0] ? path : "the worker's children", S_ROUNDS);
    return KILN_ETIMEOUT;
}

void kiln_cgroup_destroy(kiln_cgroup_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    kiln_cgroup_t *self = *self_p;
    if (self->subreaper) {
        free(self);
        *self_p = NULL;
        return;
    }
    /* Back to where it was, so the group can go once what is left in it
     * (nothing, normally) is killed. */
    char procs[PATH_MAX + 32];
    snprintf(procs, sizeof procs, "%s/cgroup.procs", self->base);
    int fd = open(procs, O_WRONLY | O_CLOEXEC);
    if (fd != -1) {
        if (write(fd, "0", 1) != 1)
            kiln_log_warn("cgroup: cannot leave %s: %s", self->dir, strerror(errno));
        close(fd);
    }
    size_t killed;
    (void)s_sweep_path(self->procs, NULL, NULL, 0, 2000, &killed);
    (void)rmdir(self->dir);
    free(self);
    *self_p = NULL;
}
