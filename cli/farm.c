/* farm.c: starting and stopping a local farm (see farm.h). */
#include "cli/farm.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/error.h"
#include "common/fs.h"
#include "common/keys.h"
#include "worker/workspace.h"

#define KILN_FARM_STOP_GRACE_MS 5000
/* How long a coordinator may take to listen (it may first recover the
 * runs a large history holds). */
#define KILN_FARM_READY_MS 60000
/* sun_path is 108 bytes; ipc:// and Redis sockets must fit. */
#define KILN_UNIX_PATH_MAX 100

typedef struct {
    pid_t pid;
    int pidfd;
    char name[64];
    bool exited;
    /* Supervision (workers): when it started, when it is to start again,
     * and the wait before the next restart. */
    int64_t started_mono, restart_at, backoff_ms;
} s_proc_t;

struct kiln_farm {
    char dir[PATH_MAX];
    bool temporary;
    char endpoint[PATH_MAX + 16];
    s_proc_t redis;
    s_proc_t coordinator;
    s_proc_t workers[KILN_FARM_MAX_WORKERS];
    int n_workers;
    /* What a worker is started with, to start it again. */
    char keys[PATH_MAX + 16], slots[16], labels[1024], level[16];
};

static int s_pidfd_open(pid_t pid)
{
    return (int)syscall(SYS_pidfd_open, pid, 0);
}

/* A directory of the farm, private to its owner: made 0700, or, when it
 * exists (made beforehand, 0755, or a 1777 tmpfs), made 0700 if it is
 * ours and refused if it is not. Run logs, keys and the history are inside. */
static int s_mkdir(const char *path)
{
    if (mkdir(path, 0700) == 0)
        return 0;
    if (errno != EEXIST) {
        kiln_error_errno("cannot create %s", path);
        return -1;
    }
    struct stat st;
    if (lstat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
        kiln_error_set("%s exists and is not a directory", path);
        return KILN_EINVAL;
    }
    if (st.st_uid != geteuid()) {
        kiln_error_set("%s belongs to uid %u, not to this user (%u): a farm's data must be private "
                       "to the user running it",
                       path, (unsigned)st.st_uid, (unsigned)geteuid());
        return KILN_EINVAL;
    }
    if ((st.st_mode & 07777) != 0700 && chmod(path, 0700) != 0) {
        kiln_error_errno("cannot make %s private (0700)", path);
        return -1;
    }
    return 0;
}

/* The directory this program lives in: the daemons are installed beside
 * it (and built beside it). */
static void s_bin_path(const char *name, char *out, size_t cap)
{
    char self[PATH_MAX];
    const char *libexec = getenv("KILN_LIBEXEC");
    if (libexec) {
        snprintf(out, cap, "%s/%s", libexec, name);
        return;
    }
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
        self[n] = '\0';
        char *slash = strrchr(self, '/');
        if (slash) {
            *slash = '\0';
            snprintf(out, cap, "%s/%s", self, name);
            if (access(out, X_OK) == 0)
                return;
        }
    }
    snprintf(out, cap, "%s", name); /* from PATH */
}

/* Starts argv[0] in its own process group with its output in log_path.
 * keep_fd (-1: none) stays open across the exec. */
static int s_spawn(s_proc_t *p, const char *name, const char *log_path, char *const argv[],
                   int keep_fd)
{
    snprintf(p->name, sizeof p->name, "%s", name);
    pid_t parent = getpid();
    p->pid = fork();
    if (p->pid == -1) {
        kiln_error_errno("cannot start %s", name);
        return -1;
    }
    if (p->pid == 0) {
        /* Own process group: a Ctrl-C in the terminal reaches the CLI only,
         * which then stops the farm in order. */
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        int null = open("/dev/null", O_RDONLY);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        if (null >= 0)
            dup2(null, 0);
        if (keep_fd >= 0)
            fcntl(keep_fd, F_SETFD, 0);
        execvp(argv[0], argv);
        dprintf(2, "kiln: cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    setpgid(p->pid, p->pid);
    p->pidfd = s_pidfd_open(p->pid);
    return 0;
}

/* Waits until the coordinator writes to its --ready-fd, or fails naming
 * its log when it dies (end of file) or takes too long. */
static int s_wait_ready(int fd)
{
    struct pollfd pfd = {fd, POLLIN, 0};
    char buf[16];
    int n;
    while ((n = poll(&pfd, 1, KILN_FARM_READY_MS)) == -1 && errno == EINTR)
        ;
    if (n == 1 && read(fd, buf, sizeof buf) > 0)
        return 0;
    kiln_error_set("the coordinator %s", n == 0 ? "did not start listening in time"
                                                 : "stopped before it listened");
    return -1;
}

static int s_ensure_key(const char *dir, const char *name)
{
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s.key", dir, name);
    if (access(path, R_OK) == 0)
        return 0;
    kiln_keypair_t kp;
    if (kiln_keys_generate(&kp) != 0)
        return -1;
    return kiln_keys_write(&kp, dir, name);
}

static int s_admit(const char *keys_dir, const char *name, const char *allow_sub)
{
    char src[PATH_MAX + 64], dst[PATH_MAX + 64];
    kiln_keypair_t kp;
    snprintf(src, sizeof src, "%s/%s.pub", keys_dir, name);
    snprintf(dst, sizeof dst, "%s/%s.pub", allow_sub, name);
    if (kiln_keys_load(&kp, src) != 0)
        return -1;
    return kiln_keys_write_public(&kp, dst);
}

static int s_wait_stop(s_proc_t *p, int sig)
{
    if (p->pid <= 0 || p->exited)
        return 0;
    kill(p->pid, sig);
    struct pollfd pfd = {p->pidfd, POLLIN, 0};
    if (p->pidfd < 0 || poll(&pfd, 1, KILN_FARM_STOP_GRACE_MS) <= 0) {
        kill(p->pid, SIGKILL);
    }
    int status;
    waitpid(p->pid, &status, 0);
    p->exited = true;
    if (p->pidfd >= 0)
        close(p->pidfd);
    p->pidfd = -1;
    return 0;
}

/* The last lines of a log (at most max bytes of them) into out. */
static void s_tail(const char *path, char *out, size_t cap)
{
    out[0] = '\0';
    FILE *f = fopen(path, "re");
    if (!f)
        return;
    char line[400], last[3][400] = {"", "", ""};
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        if (line[0])
            snprintf(last[n++ % 3], sizeof last[0], "%s", line);
    }
    fclose(f);
    size_t len = 0;
    for (int i = n > 3 ? n - 3 : 0; i < n && len < cap; i++)
        len += (size_t)snprintf(out + len, cap - len, "\n    %s", last[i % 3]);
}

/* A farm that could not start: its error gets what the daemons' logs said
 * last, since a temporary farm's logs go with it. */
static void s_explain(kiln_farm_t *self)
{
    if (!self->dir[0])
        return;
    char why[KILN_ERROR_MAX], coord[600], redis[600], path[PATH_MAX + 64];
    snprintf(why, sizeof why, "%s", kiln_error_last());
    snprintf(path, sizeof path, "%s/logs/coordinator.log", self->dir);
    s_tail(path, coord, sizeof coord);
    snprintf(path, sizeof path, "%s/logs/redis.log", self->dir);
    s_tail(path, redis, sizeof redis);
    if (!coord[0] && !redis[0])
        return;
    char where[PATH_MAX + 64];
    snprintf(where, sizeof where, "\n  its logs (%s/logs) end:", self->dir);
    kiln_error_set("%s%s%s%s%s%s", why,
                   self->temporary ? "\n  the farm's logs (removed with it) end:" : where,
                   coord[0] ? "\n  coordinator.log:" : "", coord, redis[0] ? "\n  redis.log:" : "",
                   redis);
}

/* Starts (or starts again) worker i of the farm. */
static int s_spawn_worker(kiln_farm_t *self, int i)
{
    char bin[PATH_MAX], name[32], wkey[PATH_MAX + 64], wlog[PATH_MAX + 64], wdir[PATH_MAX + 64],
        spub[PATH_MAX + 32];
    s_bin_path("kiln-worker", bin, sizeof bin);
    snprintf(name, sizeof name, "worker-%d", i + 1);
    snprintf(spub, sizeof spub, "%s/server.pub", self->keys);
    snprintf(wkey, sizeof wkey, "%s/%s.key", self->keys, name);
    snprintf(wlog, sizeof wlog, "%s/logs/%s.log", self->dir, name);
    snprintf(wdir, sizeof wdir, "%s/work/%s", self->dir, name);
    char *wargv[] = {bin,         "--coordinator", self->endpoint, "--server-key", spub,
                     "--key",     wkey,            "--name",       name,           "--slots",
                     self->slots, "--work-dir",    wdir,           "--labels",     self->labels,
                     "--log-level", self->level,   NULL};
    s_proc_t *p = &self->workers[i];
    int64_t backoff = p->backoff_ms;
    memset(p, 0, sizeof *p);
    p->pidfd = -1;
    p->backoff_ms = backoff;
    if (s_spawn(p, name, wlog, wargv, -1) != 0)
        return -1;
    p->started_mono = kiln_clock_mono_ms();
    return 0;
}

int kiln_farm_start(kiln_farm_t **out, const kiln_farm_opts_t *opts)
{
    int rc = -1;
    kiln_farm_t *self = calloc(1, sizeof *self);
    char path[PATH_MAX + 64], keys[PATH_MAX + 16], allow_w[PATH_MAX + 32], allow_c[PATH_MAX + 32];
    char bin[PATH_MAX];
    int ready[2] = {-1, -1};
    *out = NULL;
    if (!self) {
        kiln_error_set("out of memory");
        return -1;
    }
    self->redis.pidfd = self->coordinator.pidfd = -1;
    int n_workers = opts->workers > 0 ? opts->workers : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (n_workers < 1)
        n_workers = 1;
    if (n_workers > KILN_FARM_MAX_WORKERS) {
        kiln_error_set("at most %d local workers", KILN_FARM_MAX_WORKERS);
        rc = KILN_EINVAL;
        goto cleanup;
    }
    /* Whatever the farm writes (history, logs, Redis's files, keys) is
     * its user's alone. */
    umask(077);
    if (opts->data_dir) {
        int mrc = s_mkdir(opts->data_dir);
        if (mrc != 0) {
            rc = mrc;
            goto cleanup;
        }
        if (!realpath(opts->data_dir, self->dir)) {
            kiln_error_errno("cannot use data directory %s", opts->data_dir);
            goto cleanup;
        }
    } else {
        const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
        snprintf(self->dir, sizeof self->dir, "%s/kiln-XXXXXX", tmp);
        if (!mkdtemp(self->dir)) {
            kiln_error_errno("cannot create a temporary directory in %s", tmp);
            goto cleanup;
        }
        self->temporary = true;
    }
    if (strlen(self->dir) + 32 > KILN_UNIX_PATH_MAX) {
        kiln_error_set("data directory path %s is too long for unix sockets (keep it under %d "
                       "characters)",
                       self->dir, KILN_UNIX_PATH_MAX - 32);
        rc = KILN_EINVAL;
        goto cleanup;
    }
    snprintf(keys, sizeof keys, "%s/keys", self->dir);
    snprintf(path, sizeof path, "%s/allow", self->dir);
    snprintf(allow_w, sizeof allow_w, "%s/allow/workers", self->dir);
    snprintf(allow_c, sizeof allow_c, "%s/allow/clients", self->dir);
    if (s_mkdir(keys) || s_mkdir(path) || s_mkdir(allow_w) || s_mkdir(allow_c))
        goto cleanup;
    const char *subdirs[] = {"redis", "logs", "work"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", self->dir, subdirs[i]);
        if (s_mkdir(path) != 0)
            goto cleanup;
    }
    if (s_ensure_key(keys, "server") || s_ensure_key(keys, "client") ||
        s_admit(keys, "client", allow_c))
        goto cleanup;
    for (int i = 1; i <= n_workers; i++) {
        char name[32];
        snprintf(name, sizeof name, "worker-%d", i);
        if (s_ensure_key(keys, name) || s_admit(keys, name, allow_w))
            goto cleanup;
    }
    if (opts->listen)
        snprintf(self->endpoint, sizeof self->endpoint, "%s", opts->listen);
    else
        snprintf(self->endpoint, sizeof self->endpoint, "ipc://%s/coordinator.sock", self->dir);
    snprintf(path, sizeof path, "%s/endpoint", self->dir);
    FILE *f = fopen(path, "we");
    if (!f || fprintf(f, "%s\n", self->endpoint) < 0) {
        if (f)
            fclose(f);
        kiln_error_errno("cannot write %s", path);
        goto cleanup;
    }
    fclose(f);

    /* Redis: private unix socket, no TCP port, AOF on with fsync every
     * second so a crash of Redis loses at most a second of queue state. */
    char rsock[PATH_MAX + 32], rdir[PATH_MAX + 16], rlog[PATH_MAX + 32];
    snprintf(rsock, sizeof rsock, "%s/redis/redis.sock", self->dir);
    snprintf(rdir, sizeof rdir, "%s/redis", self->dir);
    snprintf(rlog, sizeof rlog, "%s/logs/redis.log", self->dir);
    char *redis_argv[] = {"redis-server", "--port", "0", "--unixsocket", rsock,
                          "--unixsocketperm", "700", "--dir", rdir, "--save", "",
                          "--appendonly", "yes", "--appendfsync", "everysec",
                          "--daemonize", "no", NULL};
    if (s_spawn(&self->redis, "redis-server", rlog, redis_argv, -1) != 0)
        goto cleanup;

    char db[PATH_MAX + 32], skey[PATH_MAX + 32], clog[PATH_MAX + 32], allow[PATH_MAX + 16];
    snprintf(db, sizeof db, "%s/history.db", self->dir);
    snprintf(skey, sizeof skey, "%s/server.key", keys);
    snprintf(clog, sizeof clog, "%s/logs/coordinator.log", self->dir);
    snprintf(allow, sizeof allow, "%s/allow", self->dir);
    const char *level = opts->log_level ? opts->log_level : "info";
    s_bin_path("kiln-coordinator", bin, sizeof bin);
    char vars[PATH_MAX];
    vars[0] = '\0';
    if (opts->vars && !realpath(opts->vars, vars)) {
        kiln_error_errno("vars file %s", opts->vars);
        goto cleanup;
    }
    /* The workers and the client connect once the coordinator says it
     * listens: a connection tried before would wait out a reconnect
     * interval. */
    if (pipe2(ready, O_CLOEXEC) != 0) {
        kiln_error_errno("cannot make a pipe");
        goto cleanup;
    }
    char ready_arg[16];
    snprintf(ready_arg, sizeof ready_arg, "%d", ready[1]);
    char *coord_argv[24 + 4 * KILN_OPT_LIST_MAX] = {
        bin,   "--listen",   self->endpoint, "--redis",     rsock,          "--db",
        db,    "--key",      skey,           "--allow",     allow,          "--ready-fd",
        ready_arg, "--log-level", (char *)level};
    size_t n_arg = 15;
    for (size_t i = 0; opts->label_aliases && i < opts->label_aliases->n; i++) {
        coord_argv[n_arg++] = "--label-alias";
        coord_argv[n_arg++] = (char *)opts->label_aliases->items[i];
    }
    for (size_t i = 0; opts->action_sources && i < opts->action_sources->n; i++) {
        coord_argv[n_arg++] = "--actions-source";
        coord_argv[n_arg++] = (char *)opts->action_sources->items[i];
    }
    if (vars[0]) {
        coord_argv[n_arg++] = "--vars";
        coord_argv[n_arg++] = vars;
    }
    coord_argv[n_arg] = NULL;
    if (s_spawn(&self->coordinator, "kiln-coordinator", clog, coord_argv, ready[1]) != 0)
        goto cleanup;
    close(ready[1]);
    ready[1] = -1;
    if (s_wait_ready(ready[0]) != 0)
        goto cleanup;

    char slots[16];
    snprintf(slots, sizeof slots, "%d", opts->slots > 0 ? opts->slots : 1);
    s_bin_path("kiln-worker", bin, sizeof bin);
    snprintf(self->keys, sizeof self->keys, "%s", keys);
    snprintf(self->slots, sizeof self->slots, "%s", slots);
    snprintf(self->labels, sizeof self->labels, "%s", opts->labels ? opts->labels : "");
    snprintf(self->level, sizeof self->level, "%s", level);
    for (int i = 0; i < n_workers; i++) {
        if (s_spawn_worker(self, i) != 0)
            goto cleanup;
        self->n_workers++;
    }
    *out = self;
    self = NULL;
    rc = 0;
cleanup:
    for (int i = 0; i < 2; i++)
        if (ready[i] != -1)
            close(ready[i]);
    if (self) {
        s_explain(self);
        kiln_farm_stop(&self, false);
    }
    return rc;
}

void kiln_farm_stop(kiln_farm_t **self_p, bool keep)
{
    if (!self_p || !*self_p)
        return;
    kiln_farm_t *self = *self_p;
    /* Workers first (SIGINT: kill running steps now), then the
     * coordinator, then Redis, so no component outlives what it needs. */
    for (int i = 0; i < self->n_workers; i++)
        if (self->workers[i].pid > 0 && !self->workers[i].exited)
            kill(self->workers[i].pid, SIGINT);
    for (int i = 0; i < self->n_workers; i++)
        s_wait_stop(&self->workers[i], SIGINT);
    /* A farm whose directory is about to be deleted needs nothing more
     * from its coordinator or Redis, so they are killed outright: the
     * coordinator's clean stop is a checkpoint of a history nobody will
     * read (30 ms after a 1,000-job run), and Redis acts on SIGTERM only at
     * its next timer tick (up to 100 ms later). A kept farm gets clean
     * stops. */
    bool discard = self->temporary && !keep;
    s_wait_stop(&self->coordinator, discard ? SIGKILL : SIGTERM);
    s_wait_stop(&self->redis, discard ? SIGKILL : SIGTERM);
    if (self->temporary && !keep && self->dir[0])
        kiln_fs_rmtree(self->dir);
    free(self);
    *self_p = NULL;
}

const char *kiln_farm_dir(const kiln_farm_t *self)
{
    return self->dir;
}

const char *kiln_farm_endpoint(const kiln_farm_t *self)
{
    return self->endpoint;
}

int kiln_farm_coordinator_fd(const kiln_farm_t *self)
{
    return self->coordinator.pidfd;
}

static bool s_proc_alive(s_proc_t *p)
{
    if (p->pid <= 0 || p->exited)
        return false;
    int status;
    pid_t r = waitpid(p->pid, &status, WNOHANG);
    if (r == p->pid) {
        p->exited = true;
        return false;
    }
    return true;
}

/* The next restart of p: 1 s, doubling to 30 s. */
static void s_backoff(s_proc_t *p, int64_t now)
{
    p->backoff_ms = p->backoff_ms ? p->backoff_ms * 2 : KILN_FARM_RESTART_MIN_MS;
    if (p->backoff_ms > KILN_FARM_RESTART_MAX_MS)
        p->backoff_ms = KILN_FARM_RESTART_MAX_MS;
    p->restart_at = now + p->backoff_ms;
}

unsigned kiln_farm_workers(const kiln_farm_t *self)
{
    return (unsigned)self->n_workers;
}

int kiln_farm_worker_fds(const kiln_farm_t *self, int *fds, int max)
{
    int n = 0;
    for (int i = 0; i < self->n_workers && n < max; i++)
        fds[n++] = self->workers[i].exited ? -1 : self->workers[i].pidfd;
    return n;
}

int64_t kiln_farm_supervise(kiln_farm_t *self, int64_t now)
{
    int64_t next = -1;
    for (int i = 0; i < self->n_workers; i++) {
        s_proc_t *p = &self->workers[i];
        if (!p->exited && p->pid > 0) {
            int status;
            if (waitpid(p->pid, &status, WNOHANG) != p->pid)
                continue;
            p->exited = true;
            if (p->pidfd >= 0)
                close(p->pidfd);
            p->pidfd = -1;
            /* Backoff doubles while it keeps dying young, and starts over
             * once it has run a minute. */
            if (now - p->started_mono > KILN_FARM_RESTART_RESET_MS)
                p->backoff_ms = 0;
            s_backoff(p, now);
            char how[64];
            if (WIFSIGNALED(status))
                snprintf(how, sizeof how, "was killed by signal %d", WTERMSIG(status));
            else
                snprintf(how, sizeof how, "exited with status %d", WEXITSTATUS(status));
            fprintf(stderr, "kiln up: %s %s; starting it again in %lld ms (its log: %s/logs/%s.log)\n",
                    p->name, how, (long long)p->backoff_ms, self->dir, p->name);
        }
        if (p->exited && p->restart_at) {
            if (now >= p->restart_at) {
                char name[64];
                snprintf(name, sizeof name, "%s", p->name);
                if (s_spawn_worker(self, i) != 0) {
                    fprintf(stderr, "kiln up: cannot start %s again: %s\n", name, kiln_error_last());
                    p->exited = true;
                    s_backoff(p, now);
                } else {
                    fprintf(stderr, "kiln up: %s started again (pid %d)\n", name, (int)p->pid);
                    continue;
                }
            }
            if (next < 0 || p->restart_at < next)
                next = p->restart_at;
        }
    }
    return next;
}

bool kiln_farm_alive(kiln_farm_t *self, const char **what)
{
    if (!s_proc_alive(&self->redis)) {
        *what = "redis-server";
        return false;
    }
    if (!s_proc_alive(&self->coordinator)) {
        *what = "kiln-coordinator";
        return false;
    }
    return true;
}
