/* executor.c: runs one step as a child process and watches it (see
 * executor.h for the contract).
 *
 * How a step is started
 *   The program is looked up before the child is made, in the PATH of the
 *   step's own environment (opts->envp; "/usr/local/bin:/usr/bin:/bin" when it
 *   has none), relative entries and relative names resolving against
 *   opts->cwd, because that is where the child will be. What cannot be found,
 *   or is not an executable regular file, makes kiln_exec_start return
 *   KILN_ENOTFOUND, as does a cwd that cannot be opened. What only exec can
 *   discover (a missing script interpreter, a cwd removed since the check) is
 *   reported by the child on its stderr pipe, "kiln: cannot execute '...':
 *   reason", followed by _exit(127), so it reaches the user like any failing
 *   step with output.
 *
 *   The child is made with clone(CLONE_VM | CLONE_VFORK), as posix_spawn
 *   does: it borrows the worker's memory on a stack of its own and the
 *   calling thread waits until it has exec'd or died, so no page table is
 *   copied and none torn down again at exec (a fork of the worker, and the
 *   exec that undoes it, cost far more than the rest of starting a step).
 *   The child therefore runs only async-signal-safe code and writes to
 *   nothing of the worker's but its own stack and the launch record: it
 *   resets every signal disposition to SIG_DFL (ignored signals would survive
 *   exec, and a handler must not run in borrowed memory), makes itself the
 *   leader of a new process group, registers that group with the guard (see
 *   below), puts /dev/null and the two pipes on 0, 1 and 2, closes every
 *   other fd, clears the signal mask (the worker blocks SIGCHLD, SIGTERM and
 *   SIGINT for its signalfd, and a mask survives exec), enters cwd and
 *   execs. The parent blocks all signals around the clone so that no handler
 *   of the worker can run in the child before the dispositions are reset. An
 *   executable without a "#!" line (ENOEXEC) is run by /bin/sh, as execvp
 *   would.
 *
 * The guard: no step outlives its worker
 *   One guard process per worker (forked at the first step, in a process
 *   group of its own so that signals meant for the worker's group pass it
 *   by) keeps the list of the steps' process groups. Each child sends its
 *   group to the guard over a socket before it execs, and the worker takes
 *   it back just before reaping the step. When the worker dies, however it
 *   dies, the last descriptor of its end of the socket closes, the guard
 *   reads EOF (within KILN_EXEC_GUARD_NAP_MS: it reads in batches) and
 *   SIGKILLs every group still on its list, then exits: a job lost with its
 *   worker cannot go on running (and finish a second time) behind the
 *   attempt that replaces it. One guard for all steps, instead of one
 *   process per step waiting on it, saves a fork per step. Because the child registers itself
 *   and holds its own copy of the descriptor until it has done so, a worker
 *   killed between clone and exec still leaves a group the guard knows. If
 *   the guard itself disappears, the next message to it fails; another guard
 *   is started and every live group registered again.
 *
 * How a step ends
 *   The main process is reaped in two steps: waitid(WNOWAIT) sees that it
 *   exited while its zombie still holds the process-group id, the group gets
 *   SIGKILL (so orphans it left cannot keep the pipes open, and the id cannot
 *   have been reused by anyone), the guard forgets the group, then waitpid
 *   reaps it. A timeout or cancel sends SIGTERM (and SIGCONT, so a stopped
 *   step sees it) to the group and SIGKILL once the grace period has passed.
 *   Signals go to the group only while the leader is unreaped, for the same
 *   pid-reuse reason.
 *
 *   A process that left the group (setsid) can hold the pipes open forever.
 *   After the reap the executor therefore waits for EOF only for the grace
 *   period, then delivers what it holds and closes the pipes itself.
 *
 * Output
 *   Each stream reads straight into its own KILN_EXEC_CHUNK_MAX buffer. After
 *   each read everything up to the last newline is delivered as one chunk;
 *   the rest (a partial line) stays until a newline arrives, the buffer is
 *   full, KILN_EXEC_FLUSH_MS have passed since its first byte arrived, or
 *   EOF. One call of kiln_exec_on_readable reads at most KILN_EXEC_READ_BUDGET
 *   bytes so that one chatty step cannot starve the worker's event loop; the
 *   fd stays readable and poll brings the caller back.
 *   The output callback runs inside kiln_exec_on_readable / on_timer and must
 *   not destroy the executor.
 *
 * Nothing here sleeps or blocks, except kiln_exec_destroy reaping a step it
 * has just SIGKILLed. Not thread-safe: the executors of a process belong to
 * one event loop (they share the guard).
 */
#include "worker/executor.h"

#include "common/clock.h"
#include "common/error.h"
#include "common/log.h"

#include <assert.h>
#include <dirent.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Bytes one kiln_exec_on_readable call reads from one pipe at most. */
#define KILN_EXEC_READ_BUDGET (256 * 1024)
/* PATH used when the step's environment has none. */
#define KILN_EXEC_DEFAULT_PATH "/usr/local/bin:/usr/bin:/bin"
/* Exit status of a child that could not chdir or exec (as in POSIX shells). */
#define KILN_EXEC_EXIT_NOEXEC 127
/* Steps one process may run at once (the guard's list has this many). */
#define KILN_EXEC_MAX_LIVE 1024
/* The guard reads its messages in batches this far apart (see s_guard_main). */
#define KILN_EXEC_GUARD_NAP_MS 10
/* How long a message to the guard may wait for room before the guard is
 * taken for stuck (its socket holds some hundreds of messages). */
#define KILN_EXEC_GUARD_SEND_TIMEOUT_MS 2000
/* The child's stack: its deepest frame holds a PATH_MAX message or a 4 KiB
 * directory buffer. */
#define KILN_EXEC_CHILD_STACK (64 * 1024)

typedef struct {
    int fd;                           /* our (non-blocking) read end; -1 once closed */
    size_t len;                       /* bytes held in buf, never a complete line */
    int64_t held_since_ms;            /* arrival of the oldest held byte, -1 when empty */
    char buf[KILN_EXEC_CHUNK_MAX];
} exec_stream_t;

struct kiln_exec {
    pid_t pid;                        /* also the process-group id */
    struct kiln_exec *prev, *next;    /* the live (unreaped) steps of this process */
    bool live;                        /* on that list (and the guard's) */
    exec_stream_t streams[2];         /* 0 = stdout, 1 = stderr */
    kiln_exec_output_fn on_output;
    void *ctx;
    int64_t start_ms;
    int64_t deadline_ms;              /* start + timeout, -1 without timeout */
    int64_t grace_ms;
    kiln_exec_status_t stopping;      /* TIMED_OUT/CANCELLED once we sent SIGTERM, else RUNNING */
    int64_t kill_at_ms;               /* when SIGKILL is due, -1 when none is pending */
    bool reaped;
    kiln_exec_status_t status;
    int exit_code;                    /* -1 unless status is EXITED */
    int term_signal;                  /* 0 unless the main process died of a signal */
    int64_t end_ms;                   /* when it was reaped */
    int64_t drain_until_ms;           /* after the reap: when we stop waiting for EOF */
};

/* What the child needs, prepared before the clone so the child allocates
 * nothing; the child writes back only guard_errno. */
typedef struct {
    const char *path;                 /* resolved program */
    char *const *argv;
    char *const *sh_argv;             /* "/bin/sh" path argv[1..] for ENOEXEC */
    char *const *envp;
    const char *cwd;
    int stdin_fd;
    int stdout_fd;
    int stderr_fd;
    int guard_fd;                     /* the worker's end of the guard's socket */
    int guard_errno;                  /* set by the child: 0 when its group was registered */
} exec_child_t;

/* A message to the guard: one fixed-size record per send (SOCK_SEQPACKET). */
typedef struct {
    int32_t op;                       /* KILN_GUARD_ADD or KILN_GUARD_REMOVE */
    int32_t pgid;
} exec_guard_msg_t;

/* ALIVE: pgid holds milliseconds: unless told again within them, the guard
 * kills every group it knows (the worker is frozen; see kiln_exec_guard_alive);
 * 0 disarms. */
enum { KILN_GUARD_ADD = 1, KILN_GUARD_REMOVE = 2, KILN_GUARD_ALIVE = 3 };

/* The process's guard and its live steps. owner: the process that started
 * the guard; a process forked from it (with fork, not through here) starts
 * its own. */
static struct {
    pid_t owner;
    pid_t pid;
    int fd;                           /* our end, close-on-exec; -1 without a guard */
    kiln_exec_t *live;                /* unreaped steps, for a guard started anew */
    size_t n_live;
    void *stack;                      /* the children's stack (one at a time: CLONE_VFORK) */
} s_proc = {0, -1, -1, NULL, 0, NULL};

/* ---- the child (async-signal-safe code only) ---------------------------- */

static size_t s_append(char *dst, size_t at, size_t cap, const char *src)
{
    while (*src && at + 1 < cap)
        dst[at++] = *src++;
    return at;
}

/* Tells the user why the step could not start, on the step's own stderr
 * ("kiln: what 'arg': reason[hint]"), and ends the child. strerrordesc_np
 * reads a static table: no locale, no allocation. */
static _Noreturn void s_child_fail(const char *what, const char *arg, int err,
                                   const char *hint)
{
    char msg[PATH_MAX + 256];
    size_t n = 0;
    n = s_append(msg, n, sizeof msg, "kiln: ");
    n = s_append(msg, n, sizeof msg, what);
    n = s_append(msg, n, sizeof msg, " '");
    n = s_append(msg, n, sizeof msg, arg);
    n = s_append(msg, n, sizeof msg, "': ");
    const char *desc = strerrordesc_np(err);
    n = s_append(msg, n, sizeof msg, desc ? desc : "unknown error");
    if (hint)
        n = s_append(msg, n, sizeof msg, hint);
    msg[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, msg, n);
    (void)w;
    _exit(KILN_EXEC_EXIT_NOEXEC);
}

/* Closes every fd from `from` up. close_range needs Linux 5.9; before that
 * we walk /proc/self/fd with the raw getdents64 (opendir would allocate),
 * and without /proc we close up to the fd limit. */
static void s_child_close_from(int from)
{
    if (close_range((unsigned)from, ~0U, 0) == 0)
        return;
    int dir = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir != -1) {
        char buf[4096] __attribute__((aligned(8)));
        ssize_t n;
        while ((n = getdents64(dir, buf, sizeof buf)) > 0) {
            for (ssize_t off = 0; off < n;) {
                struct dirent64 *d = (struct dirent64 *)(void *)(buf + off);
                off += d->d_reclen;
                int fd = 0;
                const char *p = d->d_name;
                if (*p < '0' || *p > '9')
                    continue;
                while (*p >= '0' && *p <= '9')
                    fd = fd * 10 + (*p++ - '0');
                if (fd >= from && fd != dir)
                    close(fd);
            }
        }
        close(dir);
        return;
    }
    struct rlimit rl;
    rlim_t max = 1024;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        max = rl.rlim_cur;
    for (rlim_t fd = (rlim_t)from; fd < max; fd++)
        close((int)fd);
}

/* The guard's life (see the file's comment): records the groups it is told
 * of until its socket reads EOF, then kills them all. Runs in a forked copy
 * of a threaded worker: async-signal-safe calls only. Every signal stays
 * blocked (the mask of the fork), so only SIGKILL ends it early. */
static _Noreturn void s_guard_main(int fd)
{
    (void)prctl(PR_SET_NAME, "kiln-guard");
    (void)setpgid(0, 0);
    /* Nothing of the worker's: not its output, not its sockets or pipes. */
    int keep = fcntl(fd, F_DUPFD, 10);
    int null = open("/dev/null", O_RDWR);
    if (keep == -1)
        _exit(1);
    if (null != -1) {
        dup2(null, 0);
        dup2(null, 1);
        dup2(null, 2);
    }
    if (dup2(keep, 3) == -1)
        _exit(1);
    fd = 3;
    s_child_close_from(4);
    static pid_t groups[KILN_EXEC_MAX_LIVE];
    size_t n = 0;
    /* Wait for a message, then nap and take what has gathered meanwhile: a
     * worker running short steps sends two messages a step, and waking up
     * for each would cost the machine a context switch each. The nap is
     * also how long the worker's death can go unnoticed. */
    int flags = 0;
    int64_t deadline = 0; /* monotonic ms; 0: not armed */
    for (;;) {
        exec_guard_msg_t m;
        if (!flags && deadline) {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            int64_t now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
            struct pollfd pfd = {fd, POLLIN, 0};
            int pr = now < deadline ? poll(&pfd, 1, (int)(deadline - now)) : 0;
            if (pr == -1 && errno == EINTR)
                continue;
            if (pr == 0) {
                /* The worker has said nothing for its whole fence: it is
                 * frozen (SIGSTOP, a paused machine) and its jobs may
                 * run elsewhere by now. */
                for (size_t i = 0; i < n; i++)
                    (void)kill(-groups[i], SIGKILL);
                n = 0;
                deadline = 0;
                continue;
            }
        }
        ssize_t r = recv(fd, &m, sizeof m, flags);
        if (r == -1 && errno == EINTR)
            continue;
        if (r == -1 && errno == EAGAIN && flags) {
            flags = 0;
            continue;
        }
        if (r <= 0)
            break;   /* EOF: the worker has gone (or an error we cannot wait out) */
        if (!flags) {
            struct timespec nap = {0, KILN_EXEC_GUARD_NAP_MS * 1000000L};
            while (nanosleep(&nap, &nap) == -1 && errno == EINTR)
                ;
            flags = MSG_DONTWAIT;
        }
        if (r == (ssize_t)sizeof m && m.op == KILN_GUARD_ALIVE) {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            deadline = m.pgid > 0 ? (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + m.pgid : 0;
            continue;
        }
        if (r != (ssize_t)sizeof m || m.pgid <= 1)
            continue;
        if (m.op == KILN_GUARD_ADD && n < KILN_EXEC_MAX_LIVE) {
            groups[n++] = m.pgid;
        } else if (m.op == KILN_GUARD_REMOVE) {
            for (size_t i = n; i-- > 0;) {
                if (groups[i] == m.pgid) {
                    groups[i] = groups[--n];
                    break;
                }
            }
        }
    }
    for (size_t i = 0; i < n; i++)
        (void)kill(-groups[i], SIGKILL);
    _exit(0);
}

/* The child, on its own stack in the worker's memory (CLONE_VM |
 * CLONE_VFORK): async-signal-safe calls only, and no writes to the
 * worker's memory except c->guard_errno. */
static int s_child(void *arg)
{
    exec_child_t *c = arg;
    /* Dispositions first: the mask is still full here (see the parent). */
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    for (int sig = 1; sig < NSIG; sig++) {
        if (sig != SIGKILL && sig != SIGSTOP)
            (void)sigaction(sig, &dfl, NULL);   /* glibc-reserved signals fail here... */
    }
    /* ...so those (32 and 33, below SIGRTMIN) are reset with the system call
     * itself: an ignored disposition would survive exec into the step. An
     * all-zero kernel sigaction is SIG_DFL with no flags and an empty mask. */
    for (int sig = 32; sig < SIGRTMIN; sig++) {
        unsigned long zero[8] = {0};
        (void)syscall(SYS_rt_sigaction, sig, zero, NULL, (size_t)8);
    }

    /* Move any source that sits on 0..2 out of the way first, so that no
     * dup2 below overwrites a source another one (or the guard's socket)
     * still needs. */
    int src[4] = {c->stdin_fd, c->stdout_fd, c->stderr_fd, c->guard_fd};
    for (int i = 0; i < 4; i++) {
        if (src[i] < 3) {
            src[i] = fcntl(src[i], F_DUPFD_CLOEXEC, 3);
            if (src[i] == -1)
                _exit(KILN_EXEC_EXIT_NOEXEC);
        }
    }
    for (int i = 0; i < 3; i++) {
        if (dup2(src[i], i) == -1)   /* the copy on i is not close-on-exec */
            _exit(KILN_EXEC_EXIT_NOEXEC);
    }

    /* A group of its own, known to the guard before anything of the step
     * runs. Without either, the step would not be contained: it does not
     * start. When the guard cannot be told, the parent sees guard_errno,
     * starts another guard and tries again: nothing is written to the
     * step's pipes then. */
    if (setpgid(0, 0) == -1)
        s_child_fail("cannot start", c->path, errno, " (setpgid)");
    exec_guard_msg_t m = {KILN_GUARD_ADD, (int32_t)getpid()};
    if (send(src[3], &m, sizeof m, MSG_NOSIGNAL) != (ssize_t)sizeof m) {
        c->guard_errno = errno ? errno : EIO;
        _exit(KILN_EXEC_EXIT_NOEXEC);
    }
    s_child_close_from(3);

    sigset_t none;
    sigemptyset(&none);
    (void)sigprocmask(SIG_SETMASK, &none, NULL);
    /* A step makes files as on a GitHub runner, whatever the worker's own
     * mask (a local farm keeps its data private with 077). */
    umask(022);

    if (chdir(c->cwd) == -1)
        s_child_fail("cannot enter directory", c->cwd, errno, NULL);
    execve(c->path, c->argv, c->envp);
    if (errno == ENOEXEC)
        execve("/bin/sh", c->sh_argv, c->envp);
    int err = errno;
    s_child_fail("cannot execute", c->path, err,
                 err == ENOENT ? " (its script interpreter may be missing)" : NULL);
}

/* ---- looking the program up --------------------------------------------- */

/* 0 when path (relative to dir_fd) is an executable regular file, else an
 * errno value saying why not. */
static int s_check_executable(int dir_fd, const char *path)
{
    struct stat st;
    if (fstatat(dir_fd, path, &st, 0) == -1)
        return errno;
    if (!S_ISREG(st.st_mode))
        return EACCES;   /* what execve says of a directory */
    if (faccessat(dir_fd, path, X_OK, 0) == -1)
        return errno;
    return 0;
}

static const char *s_env_path(const char *const *envp)
{
    for (size_t i = 0; envp[i]; i++) {
        if (strncmp(envp[i], "PATH=", 5) == 0)
            return envp[i] + 5;
    }
    return KILN_EXEC_DEFAULT_PATH;
}

/* Resolves name the way execvp would, but with the step's PATH and cwd.
 * Returns 0 and a malloc'd *out, or KILN_ENOTFOUND / -1 with the message set. */
static int s_resolve(char **out, int cwd_fd, const char *cwd, const char *name,
                     const char *const *envp)
{
    *out = NULL;
    if (name[0] == '\0') {
        kiln_error_set("step program: empty argv[0]");
        return KILN_ENOTFOUND;
    }
    if (strchr(name, '/')) {
        int err = s_check_executable(cwd_fd, name);
        if (err) {
            kiln_error_set("step program '%s' (in %s): %s", name, cwd, strerror(err));
            return KILN_ENOTFOUND;
        }
        *out = strdup(name);
        if (!*out) {
            kiln_error_set("step program '%s': out of memory", name);
            return -1;
        }
        return 0;
    }

    const char *path = s_env_path(envp);
    size_t name_len = strlen(name);
    bool denied = false;
    for (const char *p = path;; p++) {
        const char *end = strchrnul(p, ':');
        size_t dir_len = (size_t)(end - p);
        char candidate[PATH_MAX];
        if (dir_len == 0) {             /* an empty entry means the cwd */
            p = ".";
            dir_len = 1;
        }
        if (dir_len + 1 + name_len < sizeof candidate) {
            memcpy(candidate, p, dir_len);
            candidate[dir_len] = '/';
            memcpy(candidate + dir_len + 1, name, name_len + 1);
            int err = s_check_executable(cwd_fd, candidate);
            if (err == 0) {
                *out = strdup(candidate);
                if (!*out) {
                    kiln_error_set("step program '%s': out of memory", name);
                    return -1;
                }
                return 0;
            }
            if (err == EACCES)
                denied = true;
        }
        if (*end == '\0')
            break;
        p = end;
    }
    kiln_error_set("step program '%s': %s in PATH %s", name,
                   denied ? "not executable" : "not found", path);
    return KILN_ENOTFOUND;
}

/* ---- the guard, the worker's side ------------------------------------- */

/* Forgets the guard: kills it (a guard we cannot talk to may still be alive
 * but deaf) and reaps it. Only our own child is signalled: while unreaped
 * its pid cannot belong to anyone else. */
static void s_guard_drop(void)
{
    if (s_proc.fd != -1)
        close(s_proc.fd);
    s_proc.fd = -1;
    if (s_proc.pid > 0 && s_proc.owner == getpid()) {
        (void)kill(s_proc.pid, SIGKILL);
        while (waitpid(s_proc.pid, NULL, 0) == -1 && errno == EINTR)
            ;
    }
    s_proc.pid = -1;
}

static int s_guard_send(int op, pid_t pgid)
{
    exec_guard_msg_t m = {op, (int32_t)pgid};
    for (;;) {
        ssize_t r = send(s_proc.fd, &m, sizeof m, MSG_NOSIGNAL);
        if (r == (ssize_t)sizeof m)
            return 0;
        if (r == -1 && errno == EINTR)
            continue;
        return -1;
    }
}

/* Starts a guard and tells it of every live step. Returns 0, or -1 with the
 * message set. */
static int s_guard_start(void)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == -1) {
        kiln_error_errno("executor: socketpair for the step guard");
        return -1;
    }
    /* A full socket means the guard is napping or stuck: wait for room, but
     * not for ever (EAGAIN then, and another guard takes over). */
    struct timeval tv = {KILN_EXEC_GUARD_SEND_TIMEOUT_MS / 1000,
                         (KILN_EXEC_GUARD_SEND_TIMEOUT_MS % 1000) * 1000};
    if (setsockopt(sv[0], SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) == -1) {
        kiln_error_errno("executor: the step guard's socket");
        close(sv[0]);
        close(sv[1]);
        return -1;
    }
    /* As for a step: no handler of the worker may run in the copy. */
    sigset_t all, saved;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &saved);
    pid_t pid = fork();
    if (pid == 0)
        s_guard_main(sv[1]);
    int fork_errno = errno;
    pthread_sigmask(SIG_SETMASK, &saved, NULL);
    close(sv[1]);
    if (pid == -1) {
        close(sv[0]);
        errno = fork_errno;
        kiln_error_errno("executor: fork for the step guard");
        return -1;
    }
    s_proc.owner = getpid();
    s_proc.pid = pid;
    s_proc.fd = sv[0];
    for (kiln_exec_t *x = s_proc.live; x; x = x->next) {
        if (s_guard_send(KILN_GUARD_ADD, x->pid) != 0) {
            kiln_error_errno("executor: the new step guard (pid %d)", (int)pid);
            s_guard_drop();
            return -1;
        }
    }
    return 0;
}

/* A guard of this process that is there to talk to, and the children's
 * stack. In a process forked from the guard's owner, what is inherited
 * belongs to the parent: it is let go (the parent keeps its guard). */
static int s_guard_ensure(void)
{
    if (s_proc.owner != getpid()) {
        if (s_proc.fd != -1)
            close(s_proc.fd);
        s_proc.fd = -1;
        s_proc.pid = -1;
        s_proc.live = NULL;
        s_proc.n_live = 0;
        s_proc.owner = getpid();
    }
    if (!s_proc.stack) {
        void *stack = mmap(NULL, KILN_EXEC_CHILD_STACK, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
        if (stack == MAP_FAILED) {
            kiln_error_errno("executor: a stack for the step's child");
            return -1;
        }
        s_proc.stack = stack;
    }
    return s_proc.fd != -1 ? 0 : s_guard_start();
}

/* Something went wrong with the guard: another one takes over, with every
 * live group. */
static void s_guard_restart(const char *why)
{
    kiln_log_warn("executor: the step guard (pid %d) %s: starting another", (int)s_proc.pid, why);
    s_guard_drop();
    if (s_guard_start() != 0)
        kiln_log_error("%s; steps are not protected against the worker's death until a "
                       "guard starts", kiln_error_last());
}

void kiln_exec_guard_alive(int64_t ms)
{
    if (s_proc.fd == -1 || s_proc.owner != getpid())
        return; /* no guard yet: no step has started */
    if (ms < 0)
        ms = 0;
    if (ms > INT32_MAX)
        ms = INT32_MAX;
    if (s_guard_send(KILN_GUARD_ALIVE, (pid_t)ms) != 0)
        s_guard_restart("cannot be told the worker is alive");
}

pid_t kiln_exec_guard_pid(void)
{
    return s_proc.owner == getpid() ? s_proc.pid : -1;
}

size_t kiln_exec_live_groups(pid_t *out, size_t max)
{
    size_t n = 0;
    for (kiln_exec_t *x = s_proc.live; x && n < max; x = x->next)
        out[n++] = x->pid;
    return n;
}

static void s_live_add(kiln_exec_t *self)
{
    self->live = true;
    self->prev = NULL;
    self->next = s_proc.live;
    if (s_proc.live)
        s_proc.live->prev = self;
    s_proc.live = self;
    s_proc.n_live++;
}

/* The step's leader is about to be reaped (its zombie still holds the
 * group id): the guard forgets the group, so that it can never kill a
 * group that reuses the id. */
static void s_live_remove(kiln_exec_t *self)
{
    if (!self->live)
        return;
    self->live = false;
    if (self->prev)
        self->prev->next = self->next;
    else if (s_proc.live == self)
        s_proc.live = self->next;
    if (self->next)
        self->next->prev = self->prev;
    self->prev = self->next = NULL;
    s_proc.n_live--;
    if (s_proc.fd != -1 && s_proc.owner == getpid() &&
        s_guard_send(KILN_GUARD_REMOVE, self->pid) != 0)
        s_guard_restart(errno == EAGAIN ? "is not keeping up" : "is gone");
}

/* ---- signals and reaping ------------------------------------------------ */

/* Signals the step's whole group. Only called while the leader is unreaped
 * (alive or a zombie), so the group id cannot belong to anyone else. */
static void s_signal_group(kiln_exec_t *self, int sig)
{
    assert(!self->reaped);
    if (killpg(self->pid, sig) == -1 && errno != ESRCH)
        kiln_log_warn("executor: killpg(%d, %d): %s", (int)self->pid, sig, strerror(errno));
}

/* Starts stopping the step for reason (TIMED_OUT or CANCELLED). */
static void s_stop(kiln_exec_t *self, kiln_exec_status_t reason, int64_t now_ms)
{
    if (self->reaped || self->stopping != KILN_EXEC_RUNNING)
        return;
    self->stopping = reason;
    self->kill_at_ms = now_ms + self->grace_ms;
    s_signal_group(self, SIGTERM);
    s_signal_group(self, SIGCONT);
}

static bool s_pipes_open(const kiln_exec_t *self)
{
    return self->streams[0].fd != -1 || self->streams[1].fd != -1;
}

/* Records the end of the main process; wait_status < 0 means unknown. */
static void s_mark_reaped(kiln_exec_t *self, int wait_status)
{
    self->reaped = true;
    self->end_ms = kiln_clock_mono_ms();
    self->kill_at_ms = -1;
    self->drain_until_ms = self->end_ms + self->grace_ms;
    self->exit_code = -1;
    self->term_signal = 0;
    bool exited = wait_status >= 0 && WIFEXITED(wait_status);
    if (wait_status >= 0 && WIFSIGNALED(wait_status))
        self->term_signal = WTERMSIG(wait_status);
    /* When we killed it, that is why it ended, whatever it died of. */
    if (self->stopping != KILN_EXEC_RUNNING) {
        self->status = self->stopping;
    } else if (self->term_signal) {
        self->status = KILN_EXEC_SIGNALED;
    } else {
        self->status = KILN_EXEC_EXITED;
        if (exited)
            self->exit_code = WEXITSTATUS(wait_status);
    }
}

/* ---- output ------------------------------------------------------------- */

static void s_deliver(kiln_exec_t *self, int stream, size_t len)
{
    exec_stream_t *s = &self->streams[stream];
    assert(len > 0 && len <= s->len);
    self->on_output(self->ctx, stream, s->buf, len);
    memmove(s->buf, s->buf + len, s->len - len);
    s->len -= len;
    s->held_since_ms = s->len ? kiln_clock_mono_ms() : -1;
}

/* n new bytes sit at the end of the stream's buffer. */
static void s_absorb(kiln_exec_t *self, int stream, size_t n)
{
    exec_stream_t *s = &self->streams[stream];
    size_t old_len = s->len;
    s->len += n;
    /* What was held has no newline: only the new bytes can hold one. */
    const char *nl = memrchr(s->buf + old_len, '\n', n);
    if (nl)
        s_deliver(self, stream, (size_t)(nl - s->buf) + 1);
    else if (s->len == sizeof s->buf)
        s_deliver(self, stream, s->len);   /* a line longer than a chunk */
    else if (old_len == 0)
        s->held_since_ms = kiln_clock_mono_ms();
}

static void s_flush(kiln_exec_t *self, int stream)
{
    if (self->streams[stream].len)
        s_deliver(self, stream, self->streams[stream].len);
}

static void s_close_stream(kiln_exec_t *self, int stream)
{
    exec_stream_t *s = &self->streams[stream];
    if (s->fd == -1)
        return;
    s_flush(self, stream);
    close(s->fd);
    s->fd = -1;
}

/* ---- the API ------------------------------------------------------------ */

int kiln_exec_start(kiln_exec_t **out, const kiln_exec_opts_t *opts)
{
    assert(out);
    assert(opts && opts->argv && opts->argv[0] && opts->envp && opts->cwd && opts->on_output);
    assert(opts->timeout_ms >= 0 && opts->grace_ms >= 0);
    *out = NULL;

    int rc = -1;
    kiln_exec_t *self = NULL;
    char *path = NULL;
    const char **sh_argv = NULL;
    int cwd_fd = -1, null_fd = -1;
    int out_pipe[2] = {-1, -1}, err_pipe[2] = {-1, -1};

    cwd_fd = open(opts->cwd, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (cwd_fd == -1) {
        kiln_error_errno("step cwd '%s'", opts->cwd);
        rc = (errno == ENOENT || errno == ENOTDIR) ? KILN_ENOTFOUND : -1;
        goto cleanup;
    }
    rc = s_resolve(&path, cwd_fd, opts->cwd, opts->argv[0], opts->envp);
    if (rc != 0)
        goto cleanup;
    rc = -1;

    size_t argc = 0;
    while (opts->argv[argc])
        argc++;
    sh_argv = calloc(argc + 2, sizeof *sh_argv);
    /* Not calloc: the two output buffers (32 KiB) need no zeroing; every
     * other field is set below. */
    self = malloc(sizeof *self);
    if (!sh_argv || !self) {
        kiln_error_set("executor: out of memory");
        goto cleanup;
    }
    sh_argv[0] = "/bin/sh";
    sh_argv[1] = path;
    for (size_t i = 1; i < argc; i++)
        sh_argv[i + 1] = opts->argv[i];

    null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null_fd == -1) {
        kiln_error_errno("executor: /dev/null");
        goto cleanup;
    }
    if (pipe2(out_pipe, O_CLOEXEC) == -1 || pipe2(err_pipe, O_CLOEXEC) == -1) {
        kiln_error_errno("executor: pipe");
        goto cleanup;
    }
    /* Only our ends: the step's ends stay blocking, as programs expect. */
    if (fcntl(out_pipe[0], F_SETFL, O_NONBLOCK) == -1 ||
        fcntl(err_pipe[0], F_SETFL, O_NONBLOCK) == -1) {
        kiln_error_errno("executor: O_NONBLOCK");
        goto cleanup;
    }

    if (s_guard_ensure() != 0)
        goto cleanup;
    if (s_proc.n_live >= KILN_EXEC_MAX_LIVE) {
        kiln_error_set("executor: %d steps are running already", KILN_EXEC_MAX_LIVE);
        goto cleanup;
    }

    /* The child only reads these until exec. The casts follow execve's
     * historical prototype; nothing writes through them. */
    exec_child_t child = {
        .path = path,
        .argv = (char *const *)opts->argv,
        .sh_argv = (char *const *)sh_argv,
        .envp = (char *const *)opts->envp,
        .cwd = opts->cwd,
        .stdin_fd = null_fd,
        .stdout_fd = out_pipe[1],
        .stderr_fd = err_pipe[1],
    };

    int64_t start_ms = 0;
    pid_t pid = -1;
    for (int attempt = 0; attempt < 2; attempt++) {
        child.guard_fd = s_proc.fd;
        child.guard_errno = 0;
        sigset_t all, saved;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &saved);
        start_ms = kiln_clock_mono_ms();
        /* Returns once the child has exec'd or died (CLONE_VFORK). */
        pid = clone(s_child, (char *)s_proc.stack + KILN_EXEC_CHILD_STACK,
                    CLONE_VM | CLONE_VFORK | SIGCHLD, &child);
        int clone_errno = errno;
        pthread_sigmask(SIG_SETMASK, &saved, NULL);
        if (pid == -1) {
            errno = clone_errno;
            kiln_error_errno("executor: cannot start '%s'", opts->argv[0]);
            goto cleanup;
        }
        if (child.guard_errno == 0)
            break;
        /* The guard could not take the group: the child has exited without
         * running anything; another guard, another try. */
        while (waitpid(pid, NULL, 0) == -1 && errno == EINTR)
            ;
        pid = -1;
        if (attempt == 0)
            s_guard_restart(child.guard_errno == EAGAIN ? "is not keeping up" : "is gone");
        if (attempt == 1 || s_proc.fd == -1) {
            kiln_error_set("executor: cannot start '%s': no step guard to contain it (%s)",
                           opts->argv[0], strerror(child.guard_errno));
            goto cleanup;
        }
    }

    self->pid = pid;
    s_live_add(self);
    self->reaped = false;
    self->on_output = opts->on_output;
    self->ctx = opts->ctx;
    self->start_ms = start_ms;
    self->deadline_ms = opts->timeout_ms > 0 ? start_ms + opts->timeout_ms : -1;
    self->grace_ms = opts->grace_ms > 0 ? opts->grace_ms : KILN_EXEC_DEFAULT_GRACE_MS;
    self->stopping = KILN_EXEC_RUNNING;
    self->kill_at_ms = -1;
    self->status = KILN_EXEC_RUNNING;
    self->exit_code = -1;
    self->term_signal = 0;
    self->end_ms = 0;
    self->drain_until_ms = -1;
    /* Field by field: a compound literal would zero the buffers too. */
    for (int i = 0; i < 2; i++) {
        self->streams[i].fd = i == 0 ? out_pipe[0] : err_pipe[0];
        self->streams[i].len = 0;
        self->streams[i].held_since_ms = -1;
    }
    out_pipe[0] = err_pipe[0] = -1;
    *out = self;
    self = NULL;
    rc = 0;

cleanup:
    for (int i = 0; i < 2; i++) {
        if (out_pipe[i] != -1)
            close(out_pipe[i]);
        if (err_pipe[i] != -1)
            close(err_pipe[i]);
    }
    if (null_fd != -1)
        close(null_fd);
    if (cwd_fd != -1)
        close(cwd_fd);
    free(sh_argv);
    free(path);
    free(self);
    return rc;
}

void kiln_exec_destroy(kiln_exec_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    kiln_exec_t *self = *self_p;
    if (!self->reaped) {
        s_signal_group(self, SIGKILL);
        s_live_remove(self);
        int status;
        pid_t r;
        do {
            r = waitpid(self->pid, &status, 0);   /* it is dying: short */
        } while (r == -1 && errno == EINTR);
        if (r == -1)
            kiln_log_warn("executor: waitpid(%d): %s", (int)self->pid, strerror(errno));
    }
    /* Held output is dropped: the caller is done listening. */
    for (int i = 0; i < 2; i++) {
        if (self->streams[i].fd != -1)
            close(self->streams[i].fd);
    }
    free(self);
    *self_p = NULL;
}

pid_t kiln_exec_pid(const kiln_exec_t *self)
{
    assert(self);
    return self->pid;
}

int kiln_exec_fds(const kiln_exec_t *self, int fds[2])
{
    assert(self && fds);
    int n = 0;
    for (int i = 0; i < 2; i++) {
        if (self->streams[i].fd != -1)
            fds[n++] = self->streams[i].fd;
    }
    return n;
}

/* A fd that is not (or no longer) one of ours is ignored: the caller may
 * still hold poll results from before a pipe was closed. */
void kiln_exec_on_readable(kiln_exec_t *self, int fd)
{
    assert(self);
    int stream = -1;
    for (int i = 0; i < 2; i++) {
        if (fd != -1 && self->streams[i].fd == fd)
            stream = i;
    }
    if (stream < 0)
        return;

    exec_stream_t *s = &self->streams[stream];
    size_t budget = KILN_EXEC_READ_BUDGET;
    while (budget > 0 && s->fd != -1) {
        size_t room = sizeof s->buf - s->len;   /* never 0: a full buffer is delivered */
        if (room > budget)
            room = budget;
        ssize_t n = read(s->fd, s->buf + s->len, room);
        if (n > 0) {
            budget -= (size_t)n;
            s_absorb(self, stream, (size_t)n);
            continue;
        }
        if (n == -1 && errno == EINTR)
            continue;
        if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n == -1)
            kiln_log_warn("executor: read from step %d: %s", (int)self->pid, strerror(errno));
        s_close_stream(self, stream);   /* EOF, or an error we cannot recover from */
    }
}

void kiln_exec_on_sigchld(kiln_exec_t *self)
{
    assert(self);
    if (self->reaped)
        return;
    siginfo_t info;
    memset(&info, 0, sizeof info);
    int r;
    do {
        r = waitid(P_PID, (id_t)self->pid, &info, WEXITED | WNOHANG | WNOWAIT);
    } while (r == -1 && errno == EINTR);
    if (r == -1) {
        /* ECHILD: someone else reaped it (waitpid(-1), SIGCHLD ignored). */
        kiln_log_error("executor: waitid(%d): %s; exit status lost", (int)self->pid,
                       strerror(errno));
        s_live_remove(self);
        s_mark_reaped(self, -1);   /* the group id may be reused now: no killpg */
        return;
    }
    if (info.si_pid == 0)
        return;   /* still running */

    /* The zombie still holds the group id: kill what it left behind. */
    s_signal_group(self, SIGKILL);
    s_live_remove(self);
    int status = 0;
    pid_t w;
    do {
        w = waitpid(self->pid, &status, WNOHANG);   /* a zombie: returns at once */
    } while (w == -1 && errno == EINTR);
    if (w == 0)
        return;   /* cannot happen after waitid said it exited; retry next time */
    if (w == -1) {
        kiln_log_error("executor: waitpid(%d): %s; exit status lost", (int)self->pid,
                       strerror(errno));
        status = -1;
    }
    s_mark_reaped(self, status);
}

static int64_t s_earliest(int64_t a, int64_t b)
{
    if (a < 0)
        return b;
    if (b < 0)
        return a;
    return a < b ? a : b;
}

int64_t kiln_exec_next_deadline(const kiln_exec_t *self)
{
    assert(self);
    int64_t next = -1;
    if (!self->reaped) {
        if (self->stopping == KILN_EXEC_RUNNING)
            next = s_earliest(next, self->deadline_ms);
        next = s_earliest(next, self->kill_at_ms);
    } else if (s_pipes_open(self)) {
        next = s_earliest(next, self->drain_until_ms);
    }
    for (int i = 0; i < 2; i++) {
        const exec_stream_t *s = &self->streams[i];
        if (s->len)
            next = s_earliest(next, s->held_since_ms + KILN_EXEC_FLUSH_MS);
    }
    return next;
}

void kiln_exec_on_timer(kiln_exec_t *self, int64_t now_ms)
{
    assert(self);
    if (!self->reaped) {
        if (self->stopping == KILN_EXEC_RUNNING && self->deadline_ms >= 0 &&
            now_ms >= self->deadline_ms)
            s_stop(self, KILN_EXEC_TIMED_OUT, now_ms);
        if (self->kill_at_ms >= 0 && now_ms >= self->kill_at_ms) {
            self->kill_at_ms = -1;
            s_signal_group(self, SIGKILL);
        }
    }
    for (int i = 0; i < 2; i++) {
        const exec_stream_t *s = &self->streams[i];
        if (s->len && now_ms >= s->held_since_ms + KILN_EXEC_FLUSH_MS)
            s_flush(self, i);
    }
    if (self->reaped && s_pipes_open(self) && now_ms >= self->drain_until_ms) {
        kiln_log_warn("executor: step %d exited but something outside its process group "
                      "still holds its output open; closing it", (int)self->pid);
        s_close_stream(self, 0);
        s_close_stream(self, 1);
    }
}

void kiln_exec_cancel(kiln_exec_t *self)
{
    assert(self);
    s_stop(self, KILN_EXEC_CANCELLED, kiln_clock_mono_ms());
}

bool kiln_exec_done(const kiln_exec_t *self)
{
    assert(self);
    return self->reaped && !s_pipes_open(self);
}

kiln_exec_status_t kiln_exec_status(const kiln_exec_t *self)
{
    assert(self);
    return self->reaped ? self->status : KILN_EXEC_RUNNING;
}

int kiln_exec_exit_code(const kiln_exec_t *self)
{
    assert(self);
    return self->reaped ? self->exit_code : -1;
}

int kiln_exec_signal(const kiln_exec_t *self)
{
    assert(self);
    return self->reaped ? self->term_signal : 0;
}

int64_t kiln_exec_duration_ms(const kiln_exec_t *self)
{
    assert(self);
    return (self->reaped ? self->end_ms : kiln_clock_mono_ms()) - self->start_ms;
}
