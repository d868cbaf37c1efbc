/* executor.h: runs one step as a child process and watches it.
 *
 * A step runs in its own process group (so a timeout or cancel kills
 * everything it started), with its stdout and stderr on pipes the worker's
 * event loop polls. The executor never blocks and never sleeps: the worker
 * calls in when a pipe is readable, when SIGCHLD arrives, and when the
 * executor's next deadline passes.
 *
 * Output is delivered line-aware in bounded chunks: complete lines are
 * passed on as they arrive (several lines may share one chunk, never more than
 * KILN_EXEC_CHUNK_MAX bytes); a partial line is held until its newline, until
 * the chunk is full, or until it has waited KILN_EXEC_FLUSH_MS, so progress
 * output still streams.
 *
 * Timeouts: when the step's deadline passes, the whole group gets SIGTERM,
 * then SIGKILL after the grace period. When the main process exits, whatever
 * it left running in its group is killed (as GitHub's runner cleans up orphan
 * processes), so pipes reach EOF and the step ends.
 */
#ifndef KILN_EXECUTOR_H
#define KILN_EXECUTOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define KILN_EXEC_CHUNK_MAX (16 * 1024)
#define KILN_EXEC_FLUSH_MS 100
#define KILN_EXEC_DEFAULT_GRACE_MS 5000

typedef struct kiln_exec kiln_exec_t;

/* Called with each chunk of output; stream 0 = stdout, 1 = stderr. */
typedef void (*kiln_exec_output_fn)(void *ctx, int stream, const char *data, size_t len);

typedef struct {
    const char *const *argv;   /* argv[0] is looked up in PATH */
    const char *const *envp;   /* the complete environment */
    const char *cwd;           /* must exist */
    int64_t timeout_ms;        /* 0: no timeout */
    int64_t grace_ms;          /* SIGTERM -> SIGKILL; 0: KILN_EXEC_DEFAULT_GRACE_MS */
    kiln_exec_output_fn on_output;
    void *ctx;
} kiln_exec_opts_t;

typedef enum {
    KILN_EXEC_RUNNING = 0,
    KILN_EXEC_EXITED,      /* exit_code is set */
    KILN_EXEC_SIGNALED,    /* term_signal is set */
    KILN_EXEC_TIMED_OUT,   /* killed after its deadline */
    KILN_EXEC_CANCELLED,   /* killed by kiln_exec_cancel */
} kiln_exec_status_t;

/* Starts the process. stdin is /dev/null. Returns 0 and *out, or a negative
 * code (KILN_ENOTFOUND when argv[0] cannot be executed; the error message
 * says why). The options' strings are copied or used only during the call. */
int kiln_exec_start(kiln_exec_t **out, const kiln_exec_opts_t *opts);
/* Kills the group (SIGKILL) if still running, reaps, closes, frees. */
void kiln_exec_destroy(kiln_exec_t **self_p);
/* The guard's pid (-1 before the first step), and the process groups of the
 * live steps (each step's group is its leader's pid): what a sweep of the
 * worker's cgroup must spare (worker/cgroup.h). */
pid_t kiln_exec_guard_pid(void);
size_t kiln_exec_live_groups(pid_t *out, size_t max);
/* Arms the guard's watchdog: unless called again within ms, the guard
 * kills every step of this process, as the worker must be frozen (SIGSTOP,
 * a paused machine) while its jobs' leases run out; ms <= 0 disarms it.
 * Nothing happens before the first step (there is no guard yet). */
void kiln_exec_guard_alive(int64_t ms);

pid_t kiln_exec_pid(const kiln_exec_t *self);
/* The pipe fds still open (0, 1 or 2 of them) for the caller to poll for
 * POLLIN; writes up to 2 fds into fds[] and returns the count. */
int kiln_exec_fds(const kiln_exec_t *self, int fds[2]);
/* A polled fd is readable (or hung up): reads what is there, delivers
 * chunks. */
void kiln_exec_on_readable(kiln_exec_t *self, int fd);
/* Reaps the child if it has exited (call on SIGCHLD; cheap otherwise). */
void kiln_exec_on_sigchld(kiln_exec_t *self);
/* Monotonic ms of the next moment kiln_exec_on_timer must be called (the
 * timeout, the kill grace, or a held partial line's flush), or -1. */
int64_t kiln_exec_next_deadline(const kiln_exec_t *self);
void kiln_exec_on_timer(kiln_exec_t *self, int64_t now_ms);
/* Asks the step to stop: SIGTERM to the group, SIGKILL after the grace. */
void kiln_exec_cancel(kiln_exec_t *self);

/* The process has been reaped and both pipes are drained. */
bool kiln_exec_done(const kiln_exec_t *self);
kiln_exec_status_t kiln_exec_status(const kiln_exec_t *self);
int kiln_exec_exit_code(const kiln_exec_t *self);   /* -1 unless EXITED */
int kiln_exec_signal(const kiln_exec_t *self);      /* 0 unless killed by a signal */
int64_t kiln_exec_duration_ms(const kiln_exec_t *self);

#endif
