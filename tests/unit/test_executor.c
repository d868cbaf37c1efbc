/* test_executor.c: unit tests for worker/executor.c.
 *
 * These start real processes (sh, bash, sleep, coreutils) and drive the
 * executor the way the worker's event loop does: poll(2) on the executor's
 * pipes plus a signalfd for SIGCHLD (blocked first, as the worker does),
 * with the poll timeout taken from kiln_exec_next_deadline. The test process
 * makes itself a child subreaper so that processes a step leaves behind are
 * reparented to it and can be reaped, which lets a test prove that a step's
 * whole process group is gone (kill(-pgid, 0) fails with ESRCH).
 *
 * Timings are asserted only as hang guards and as lower bounds that follow
 * from the contract (a step cannot be SIGKILLed before timeout + grace).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <stdbool.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/clock.h"
#include "common/error.h"
#include "worker/executor.h"

/* Longest any step here may take before the test calls it a hang. */
#define HANG_GUARD_MS 10000
/* How long processes we killed may take to disappear. */
#define GONE_WITHIN_MS 3000

static int s_sfd = -1;              /* signalfd for SIGCHLD */
static char s_tmp[1024];            /* private directory for scripts and cwds */
static const char *const s_env[] = {"PATH=/usr/bin:/bin", NULL};

/* ---- capturing output --------------------------------------------------- */

typedef struct {
    char *data[2];                  /* everything received, per stream */
    size_t len[2];
    size_t cap[2];
    size_t n_chunks[2];
    size_t max_chunk[2];
    char first[2][64];              /* the first chunk, truncated */
    size_t first_len[2];
} capture_t;

static void s_on_output(void *ctx, int stream, const char *data, size_t len)
{
    capture_t *cap = ctx;
    assert_true(stream == 0 || stream == 1);
    assert_true(len > 0);
    if (cap->len[stream] + len + 1 > cap->cap[stream]) {
        size_t want = (cap->len[stream] + len + 1) * 2;
        char *grown = realloc(cap->data[stream], want);
        assert_non_null(grown);
        cap->data[stream] = grown;
        cap->cap[stream] = want;
    }
    memcpy(cap->data[stream] + cap->len[stream], data, len);
    cap->len[stream] += len;
    cap->data[stream][cap->len[stream]] = '\0';
    if (cap->n_chunks[stream] == 0) {
        size_t n = len < sizeof cap->first[0] - 1 ? len : sizeof cap->first[0] - 1;
        memcpy(cap->first[stream], data, n);
        cap->first[stream][n] = '\0';
        cap->first_len[stream] = len;
    }
    cap->n_chunks[stream]++;
    if (len > cap->max_chunk[stream])
        cap->max_chunk[stream] = len;
}

static const char *s_text(const capture_t *cap, int stream)
{
    return cap->data[stream] ? cap->data[stream] : "";
}

static void s_capture_free(capture_t *cap)
{
    free(cap->data[0]);
    free(cap->data[1]);
    memset(cap, 0, sizeof *cap);
}

/* ---- running steps ------------------------------------------------------ */

static kiln_exec_t *s_start(capture_t *cap, const char *const *argv, const char *const *envp,
                            const char *cwd, int64_t timeout_ms, int64_t grace_ms)
{
    memset(cap, 0, sizeof *cap);
    kiln_exec_opts_t opts = {
        .argv = argv,
        .envp = envp ? envp : s_env,
        .cwd = cwd ? cwd : s_tmp,
        .timeout_ms = timeout_ms,
        .grace_ms = grace_ms,
        .on_output = s_on_output,
        .ctx = cap,
    };
    kiln_exec_t *exec = NULL;
    int rc = kiln_exec_start(&exec, &opts);
    if (rc != 0)
        fail_msg("kiln_exec_start(%s): %d %s", argv[0], rc, kiln_error_last());
    assert_non_null(exec);
    assert_true(kiln_exec_pid(exec) > 0);
    return exec;
}

static void s_drain_signalfd(void)
{
    struct signalfd_siginfo info;
    while (read(s_sfd, &info, sizeof info) == (ssize_t)sizeof info)
        ;
}

/* The worker's loop in miniature. Runs until the step is done or stdout
 * holds at least min_stdout bytes; fails the test after HANG_GUARD_MS.
 * kiln_exec_on_sigchld is called only when the signalfd reports SIGCHLD, so
 * a test also fails if the executor relied on anything else to notice the
 * exit. Returns the elapsed ms. */
static int64_t s_run_until(kiln_exec_t *exec, const capture_t *cap, size_t min_stdout)
{
    int64_t t0 = kiln_clock_mono_ms();
    while (!kiln_exec_done(exec) && cap->len[0] < min_stdout) {
        int64_t now = kiln_clock_mono_ms();
        if (now - t0 > HANG_GUARD_MS)
            fail_msg("step %d still running after %d ms", (int)kiln_exec_pid(exec),
                     HANG_GUARD_MS);
        int fds[2];
        int n = kiln_exec_fds(exec, fds);
        assert_true(n >= 0 && n <= 2);
        struct pollfd pfd[3];
        for (int i = 0; i < n; i++)
            pfd[i] = (struct pollfd){.fd = fds[i], .events = POLLIN};
        pfd[n] = (struct pollfd){.fd = s_sfd, .events = POLLIN};
        int64_t wait_ms = 1000;   /* wake up now and then for the hang guard */
        int64_t deadline = kiln_exec_next_deadline(exec);
        if (deadline >= 0)
            wait_ms = deadline <= now ? 0 : (deadline - now < 1000 ? deadline - now : 1000);
        int r = poll(pfd, (nfds_t)n + 1, (int)wait_ms);
        if (r == -1 && errno != EINTR)
            fail_msg("poll: %s", strerror(errno));
        for (int i = 0; r > 0 && i < n; i++) {
            if (pfd[i].revents)
                kiln_exec_on_readable(exec, pfd[i].fd);
        }
        if (r > 0 && (pfd[n].revents & POLLIN)) {
            s_drain_signalfd();
            kiln_exec_on_sigchld(exec);
        }
        kiln_exec_on_timer(exec, kiln_clock_mono_ms());
    }
    return kiln_clock_mono_ms() - t0;
}

static int64_t s_run(kiln_exec_t *exec, const capture_t *cap)
{
    return s_run_until(exec, cap, SIZE_MAX);
}

static void s_sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

/* Reaps whatever was reparented to us, then asks whether kill(target, 0)
 * fails with ESRCH (target = -pgid for a group). Waits up to
 * GONE_WITHIN_MS, since a SIGKILLed process takes a moment to go. */
static bool s_gone(pid_t target)
{
    int64_t t0 = kiln_clock_mono_ms();
    for (;;) {
        while (waitpid(-1, NULL, WNOHANG) > 0)
            ;
        if (kill(target, 0) == -1 && errno == ESRCH)
            return true;
        if (kiln_clock_mono_ms() - t0 > GONE_WITHIN_MS)
            return false;
        s_sleep_ms(10);
    }
}

/* ---- files -------------------------------------------------------------- */

/* Writes s_tmp/name with the given mode; returns the path (static buffer). */
static const char *s_write_file(const char *name, const char *text, mode_t mode)
{
    static char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", s_tmp, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(chmod(path, mode), 0);
    return path;
}

static int s_remove(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* ---- fixtures ----------------------------------------------------------- */

static int s_setup(void **state)
{
    (void)state;
    /* As the worker: SIGCHLD blocked and read through a signalfd, SIGPIPE
     * ignored. A step must inherit neither. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    if (sigprocmask(SIG_BLOCK, &set, NULL) == -1)
        return -1;
    s_sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (s_sfd == -1)
        return -1;
    signal(SIGPIPE, SIG_IGN);
    if (prctl(PR_SET_CHILD_SUBREAPER, 1) == -1)
        return -1;
    const char *base = getenv("TMPDIR");
    snprintf(s_tmp, sizeof s_tmp, "%s/kiln-test-executor-XXXXXX", base ? base : "/tmp");
    if (!mkdtemp(s_tmp))
        return -1;
    char bin[PATH_MAX];
    snprintf(bin, sizeof bin, "%s/bin", s_tmp);
    if (mkdir(bin, 0755) == -1)
        return -1;
    return 0;
}

static int s_teardown(void **state)
{
    (void)state;
    while (waitpid(-1, NULL, WNOHANG) > 0)
        ;
    if (s_tmp[0])
        nftw(s_tmp, s_remove, 16, FTW_DEPTH | FTW_PHYS);
    if (s_sfd != -1)
        close(s_sfd);
    return 0;
}

/* ---- output and exit status --------------------------------------------- */

static void test_stdout_and_stderr_arrive_per_stream(void **state)
{
    (void)state;
    capture_t cap;
    const char *argv[] = {"sh", "-c", "echo out; echo err >&2", NULL};
    kiln_exec_t *exec = s_start(&cap, argv, NULL, NULL, 0, 0);
    s_run(exec, &cap);
    assert_string_equal(s_text(&cap, 0), "out\n");
    assert_string_equal(s_text(&cap, 1), "err\n");
    assert_int_equal(kiln_exec_status(exec), KILN_EXEC_EXITED);
    assert_int_equal(kiln_exec_exit_code(exec), 0);
    assert_int_equal(kiln_exec_signal(exec), 0);
    int fds[2];
    assert_int_equal(kiln_exec_fds(exec, fds), 0);
    kiln_exec_destroy(&exec);
    assert_null(exec);
    s_capture_free(&cap);
}

static void test_exit_code(void **state)
{
    (void)state;
    capture_t cap;
    const char *argv[] = {"sh", "-c", "exit 3", NULL};
    kiln_exec_t *exec = s_start(&cap, argv, NULL, NULL, 0, 0);
    assert_int_equal(kiln_exec_status(exec), KILN_EXEC_RUNNING);
    s_run(exec, &cap);
    assert_int_equal(kiln_exec_status(exec), KILN_EXEC_EXITED);
    assert_int_equal(kiln_exec_exit_code(exec), 3);
    assert_true(kiln_exec_duration_ms(exec) >= 0);
    /* Too late to cancel: it ended on its own. */
    kiln_exec_cancel(exec);
    assert_int_equal(kiln_exec_status(exec), KILN_EXEC_EXITED);
    assert_int_equal(kiln_exec_exit_code(exec), 3);
    kiln_exec_destroy(&exec);
    s_capture_free(&cap);
}

static void test_killed_by_own_signal(void **state)
{
    (void)state;
    capture_t cap;
    const char *argv[] = {"sh", "-c", "kill -USR1 $$", NULL};
    kiln_exec_t *exec = s_start(&cap, argv, NULL, NULL, 0, 0);
    s_run(exec, &cap);
    assert_int_equal(kiln_exec_status(exec), KILN_EXEC_SIGNALED);
    assert_int_equal(kiln_exec_signal(exec), SIGUSR1);
    assert_int_equal(kiln_exec_exit_code(exec), -1);
    kiln_exec_destroy(&exec);
    s_capture_free(&cap);
}

/* ---- timeouts, cancel, orphans ------------------------------------------ */

static void test_timeout_kills_whole_group(void **state)
{
    (void)state;
    s_write_file("script.sh", "sleep 30 & sleep 30; \n", 0644);
    capture_t cap;
    const char *argv[] = {"bash", "--noprofile", "--norc", "-eo", "pipefail", "script.sh", NULL};
    kiln_exec_t *exec = s_start(&cap, argv, NULL, NULL, 300, 200);
    pid_t pgid = kiln_exec_pid(exec);
    int64_t elapsed = s_run(exec, &cap);
    assert_int_equal(kiln_exec_status(exec), KILN_EXEC_TIMED_OUT);
    assert_int_equal(kiln_exec_signal(exec), SIGTERM);   /* bash obeys SIGTERM */
    assert_int_equal(kiln_exec_exit_code(exec), -1);
    assert_true(kiln_exec_duration_ms(exec) >= 300);
    assert_true(elapsed < HANG_GUARD_MS);
    assert_true(s_gone(-pgid));   /* the background sleep went too */
    kiln_exec_destroy(&exec);
    s_capture_free(&cap);
}

static void test_sigterm_ignored_gets_sigkill_after_grace(void **state)
{
    (void)state;
    capture_t cap;
    const char *argv[] = {"sh", "-c", "trap '' TERM; echo ready; sleep 30", NULL};
    kiln_exec_t *exec = s_start(&cap, argv, NULL, NULL, 300, 200);
    pid_t pgid = kiln_exec_pid(exec);
    s_run(exec, &cap);
    assert_string_equal(s_text(&cap, 0), "ready\n");
    assert_int_equal(kiln_exec_status(exec), KILN_EXEC_TIMED_OUT);
    assert_int_equal(kiln_exec_signal(exec), SIGKILL);
    assert_true(kiln_exec_duration_ms(exec) >= 300 + 200);
    assert_true(s_gone(-pgid));
    kiln_exec_destroy(&exec);
    s_capture_free(&cap);
}

static void test_cancel(void **state)
{
    (void)state;
    capture_t cap;
    const char *argv[] = {"sh", "-c", "echo ready; sleep 30", NULL};
    kiln_exec_t *exec = s_start(&cap, argv, NULL, NULL, 0, 0);
    pid_t pgid = kiln_exec_pid(exec);
    s_run_until(exec, &cap, 6);
    assert_string_equal(s_text(&cap, 0), "ready\n");
    assert_false(kiln_exec_done(exec));
    kiln_exec_cancel(exec);
    kiln_exec_cancel(exec);   /* twice is harmless */
    int64_t elapsed = s_run(exec, &cap);
    assert_int_equal(kiln_exec_status(exec), KILN_EXEC_CANCELLED);
    assert_int_equal(kiln_exec_signal(exec), SIGTERM);
    /* Default grace is 5 s: sh and sleep obey SIGTERM well before. */
    assert_true(elapsed < KILN_EXEC_DEFAULT_GRACE_MS);
    assert_true(s_gone(-pgid));
    kiln_exec_destroy(&exec);
    s_capture_free(&cap);
}

static void test_orphan_is_killed_when_step_exits(void **state)
{
    (void)state;
    capture_t cap;
    const char *argv[] = {"sh", "-c", "sleep 30 & echo $!", NULL};
    /* A long grace, so only the orphan kill can end this step in time. */
    kiln_exec_t *exec = s_start(&cap, argv, NULL, NULL, 0, 60000);
    pid_t pgid = kiln_exec_pid(exec);
    int64_t elapsed = s_run(exec, &cap);
    assert_int_equal(kiln_exec_status(exec), KILN_EXEC_EXITED);
    assert_int_equal(kiln_exec_exit_code(exec), 0);
    assert_true(elapsed < HANG_GUARD_MS);
    pid_t orphan = (pid_t)atoi(s_text(&cap, 0));
    assert_true(orphan > 0);
    assert_true(s_gone(orphan));
    assert_true(s_gone(-pgid));
    kiln_exec_destroy(&exec);
    s_capture_free(&cap);
}

static void s_noop_output(void *ctx, int stream, const char *data, size_t len)
{
    (void)ctx;
    (void)stream;
    (void)data;
    (void)len;
}

/* A worker killed with SIGKILL takes its steps with it: the step's guard
 * gets the parent-death signal and kills the whole group, so a lost job
 * cannot finish behind the attempt that replaces it. */
static void test_step_dies_with_its_worker(void **state)
{
    (void)state;
    char pidfile[PATH_MAX + 16];
    snprintf(pidfile, sizeof pidfile, "%s/bg.pid", s_tmp);
    unlink(pidfile);
    pid_t worker = fork();
    assert_true(worker >= 0);
    if (worker == 0) {
        char script[PATH_MAX * 2];
        snprintf(script, sizeof script, "sleep 300 & echo $! > %s.tmp; mv %s.tmp %s; sleep 300",
                 pidfile, pidfile, pidfile);
        const char *argv[] = {"sh", "-c", script, NULL};
        const char *envp[] = {"PATH=/usr/bin:/bin", NULL};
        kiln_exec_opts_t opts = {.argv = argv, .envp = envp, .cwd = "/",
                                 .on_output = s_noop_output};
        kiln_exec_t *exec = NULL;
        if (kiln_exec_start(&exec, &opts) != 0)
            _exit(2);
        pause(); /* a worker busy with its step, until it is killed */
        _exit(0);
    }
    pid_t bg = 0;
    for (int i = 0; i < 500 && bg <= 0; i++) {
        FILE *f = fopen(pidfile, "r");
        if (f) {
            if (fscanf(f, "%d", &bg) != 1)
                bg = 0;
            fclose(f);
        }
        if (bg <= 0)
            s_sleep_ms(10);
    }
    assert_true(bg > 0);
    assert_int_equal(kill(bg, 0), 0);
    assert_int_equal(kill(worker, SIGKILL), 0);
    waitpid(worker, NULL, 0);
    assert_true(s_gone(bg));
}

/* The step guard of process parent: its child named kiln-guard that has
 * not been reaped, or 0. */
static pid_t s_guard_of(pid_t parent)
{
    DIR *d = opendir("/proc");
    pid_t found = 0;
    assert_non_null(d);
    struct dirent *e;
    while (!found && (e = readdir(d))) {
        char path[64], buf[512];
        if (e->d_name[0] < '1' || e->d_name[0] > '9')
            continue;
        snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = '\0';
        char *close_paren = strrchr(buf, ')');
        int ppid = 0;
        char st = 0;
        if (strstr(buf, "(kiln-guard)") && close_paren &&
            sscanf(close_paren + 1, " %c %d", &st, &ppid) == 2 && ppid == parent)
            found = (pid_t)atoi(e->d_name);
    }
    closedir(d);
    return found;
}

/* Waits until path holds a pid; returns it (0 after the hang guard). */
static pid_t s_wait_pidfile(const char *path)
{
    pid_t pid = 0;
    for (int i = 0; i < 500 && pid <= 0; i++) {
        FILE *f = fopen(path, "r");
        if (f) {
            if (fscanf(f, "%d", &pid) != 1)
                pid = 0;
            fclose(f);
        }
        if (pid <= 0)
            s_sleep_ms(10);
    }
    return pid;
}

/* A step that starts a background process and records its pid in pidfile. */
static kiln_exec_t *s_start_bg_step(const char *pidfile)
{
    static char script[PATH_MAX * 2];
    snprintf(script, sizeof script, "sleep 300 & echo $! > %s.tmp; mv %s.tmp %s; sleep 300",
             pidfile, pidfile, pidfile);
    const char *argv[] = {"sh", "-c", script, NULL};
    const char *envp[] = {"PATH=/usr/bin:/bin", NULL};
    kiln_exec_opts_t opts = {.argv = argv, .envp = envp, .cwd = "/", .on_output = s_noop_output};
    kiln_exec_t *exec = NULL;
    return kiln_exec_start(&exec, &opts) == 0 ? exec : NULL;
}

/* The guard is one process for all of a worker's steps. If it is killed,
 * the next step start notices, starts another and hands it every live
 * group, so a worker killed afterwards still takes the step that started
 * under the first guard with it, as well as the one under the second. */
static void test_guard_replaced_when_killed(void **state)
{
    (void)state;
    char first[PATH_MAX + 16], second[PATH_MAX + 16];
    snprintf(first, sizeof first, "%s/first.pid", s_tmp);
    snprintf(second, sizeof second, "%s/second.pid", s_tmp);
    unlink(first);
    unlink(second);
    pid_t worker = fork();
    assert_true(worker >= 0);
    if (worker == 0) {
        if (!s_start_bg_step(first) || s_wait_pidfile(first) <= 0)
            _exit(2);
        pid_t guard = s_guard_of(getpid());
        if (guard <= 0 || kill(guard, SIGKILL) != 0)
            _exit(3);
        /* Dead (a zombie of ours) before the next step starts. */
        char path[64], buf[256];
        snprintf(path, sizeof path, "/proc/%d/stat", (int)guard);
        for (int i = 0; i < 500; i++) {
            FILE *f = fopen(path, "r");
            size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
            if (f)
                fclose(f);
            buf[n] = '\0';
            char *p = strrchr(buf, ')');
            if (p && p[1] == ' ' && p[2] == 'Z')
                break;
            s_sleep_ms(10);
        }
        if (!s_start_bg_step(second))
            _exit(4);
        pid_t again = s_guard_of(getpid());
        if (again <= 0 || again == guard)
            _exit(5);
        pause();
        _exit(0);
    }
    pid_t bg1 = s_wait_pidfile(first), bg2 = s_wait_pidfile(second);
    int status = 0;
    if (bg1 <= 0 || bg2 <= 0) {
        kill(worker, SIGKILL);
        waitpid(worker, &status, 0);
        fail_msg("steps did not start (worker exit %d)", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    }
    assert_int_equal(kill(bg1, 0), 0);
    assert_int_equal(kill(bg2, 0), 0);
    assert_int_equal(kill(worker, SIGKILL), 0);
    waitpid(worker, NULL, 0);
    assert_true(s_gone(bg1));
    assert_true(s_gone(bg2));
}

static void test_process_escaping_group_does_not_hang_step(void **state)
{
    (void)state;
    capture_t cap;
    /* The fifo makes the step wait until the escapee has its own session. */
    const char *argv[] = {"sh", "-c",
                          "rm -f esc.fifo; mkfifo esc.fifo;"
                          " setsid sh -c 'echo $$ >esc.fifo; exec sleep 30' &"
                          " read p <esc.fifo; rm -f esc.fifo; echo $p",
                          NULL};
    kiln_exec_t *exec = s_start(&cap, argv, NULL, NULL, 0, 300);
    int64_t elapsed = s_run(exec, &cap);
    pid_t escaped = (pid_t)atoi(s_text(&cap, 0));
    assert_true(escaped > 0);
    /* It really escaped (it still holds our stdout pipe), yet we finished. */
    int alive = kill(escaped, 0);
    if (escaped > 0)
        kill(escaped, SIGKILL);
    assert_int_equal(alive, 0);
    assert_int_equal(kiln_exec_status(exec), KILN_EXEC_EXITED);
    assert_int_equal(kiln_exec_exit_code(exec), 0);
    assert_true(elapsed < HANG_GUARD_MS);
    assert_true(s_gone(escaped));
    kiln_exec_destroy(&exec);
    s_capture_free(&cap);
}

static void test_destroy_kills_running_group(void **state)
{
    (void)state;
    capture_t cap;
    const char *argv[] = {"sh", "-c", "sleep 30 & echo $!; sleep 30", NULL};
    kiln_exec_t *exec = s_start(&cap, argv, NULL, NULL, 0, 0);
    pid_t pgid = kiln_exec_pid(exec);
    s_run_until(exec, &cap, 2);   /* a whole line: lines arrive whole */
    assert_int_equal(cap.data[0][cap.len[0] - 1], '\n');
    pid_t orphan = (pid_t)atoi(s_text(&cap, 0));
    assert_true(orphan > 0);
    int64_t t0 = kiln_clock_mono_ms();
    kiln_exec_destroy(&exec);
    assert_null(exec);
    assert_true(kiln_clock_mono_ms() - t0 < HANG_GUARD_MS);
    assert_true(s_gone(pgid));
    assert_true(s_gone(orphan));
    assert_true(s_gone(-pgid));
    kiln_exec_destroy(&exec);   /* NULL is accepted */
    s_capture_free(&cap);
}

/* ---- chunking ----------------------------------------------------------- */

static void test_partial_line_is_flushed_by_timer(void **state)
{
    (void)state;
    capture_t cap;
    const char *argv[] = {"sh", "-c", "printf abc; sleep 0.5; echo def", NULL};
    kiln_exec_t *exec = s_start(&cap, argv, NULL, NULL, 0, 0);

    /* Wait for "abc" to be read and held (no timeout: the only deadline
     * the executor can have is the flush). */
    int64_t t0 = kiln_clock_mono_ms();
    while (kiln_exec_next_deadline(exec) < 0 && cap.n_chunks[0] == 0) {
        if (kiln_clock_mono_ms() - t0 > HANG_GUARD_MS)
            fail_msg("no output from the step");
        int fds[2];
        int n = kiln_exec_fds(exec, fds);
        struct pollfd pfd[2];
        for (int i = 0; i < n; i++)
            pfd[i] = (struct pollfd){.fd = fds[i], .events = POLLIN};
        if (poll(pfd, (nfds_t)n, 100) > 0) {
            for (int i = 0; i < n; i++) {
                if (pfd[i].revents)
                    kiln_exec_on_readable(exec, pfd[i].fd);
            }
        }
    }
    int64_t arrived = kiln_clock_mono_ms();
    assert_int_equal(cap.n_chunks[0], 0);   /* held, not passed on at once */
    int64_t deadline = kiln_exec_next_deadline(exec);
    assert_true(deadline >= 0);
    assert_true(deadline <= arrived + KILN_EXEC_FLUSH_MS);
    kiln_exec_on_timer(exec, deadline - 1);
    assert_int_equal(cap.n_chunks[0], 0);   /* not before its time */
    kiln_exec_on_timer(exec, deadline);
    assert_int_equal(cap.n_chunks[0], 1);
    assert_string_equal(cap.first[0], "abc");
    assert_int_equal(kiln_exec_next_deadline(exec), -1);
    /* ...and that happened while the step was still running. */
    siginfo_t info;
    memset(&info, 0, sizeof info);
    int r = waitid(P_PID, (id_t)kiln_exec_pid(exec), &info, WEXITED | WNOHANG | WNOWAIT);
    assert_int_equal(r, 0);
    assert_int_equal(info.si_pid, 0);

    s_run(exec, &cap);
    assert_string_equal(s_text(&cap, 0), "abcdef\n");
    assert_int_equal(cap.n_chunks[0], 2);
    assert_int_equal(kiln_exec_status(exec), KILN_EXEC_EXITED);
    assert_int_equal(kiln_exec_exit_code(exec), 0);
    kiln_exec_destroy(&exec);
    s_capture_free(&cap);
}

static void test_complete_lines_pass_and_tail_is_held(void **state)
{
    (void)state;
    capture_t cap;
    const char *argv[] = {"sh", "-c", "printf 'one\\ntwo\\nth'; sleep 0.3; echo ree", NULL};
    kiln_exec_t *exec = s_start(&cap, argv, NULL, NULL, 0, 0);
    s_run(exec, &cap);
    assert_int_equal(kiln_exec_exit_code(exec), 0);
    /* One read, two lines, one chunk; the partial "th" waits. */
    assert_string_equal(cap.first[0], "one\ntwo\n");
    assert_string_equal(s_text(&cap, 0), "one\ntwo\nthree\n");
    kiln_exec_destroy(&exec);
    s_capture_free(&cap);
}

static void test_megabyte_of_lines_in_order_and_bounded(void **state)
{
    (void)state;
    enum { N_LINES = 200000 };
    size_t cap_expected = (size_t)N_LINES * 8;
    char *expected = malloc(cap_expected);
    assert_non_null(expected);
    size_t len = 0;
    for (int i = 1; i <= N_LINES; i++)
        len += (size_t)snprintf(expected + len, cap_expected - len, "%d\n", i);
    assert_true(len > 1024 * 1024);

    capture_t cap;
    const char *argv[] = {"seq", "1", "200000", NULL};
    kiln_exec_t *exec = s_start(&cap, argv, NULL, NULL, 0, 0);
    s_run(exec, &cap);
    assert_int_equal(kiln_exec_status(exec), KILN_EXEC_EXITED);
    assert_int_equal(kiln_exec_exit_code(exec), 0);
    assert_int_equal(cap.len[0], len);
    assert_memory_equal(cap.data[0], expected, len);
    assert_true(cap.max_chunk[0] <= KILN_EXEC_CHUNK_MAX);
    assert_true(cap.n_chunks[0] >= len / KILN_EXEC_CHUNK_MAX);
    assert_true(cap.n_chunks[0] < N_LINES / 10);   /* lines share chunks */
    assert_int_equal(cap.len[1], 0);
    kiln_exec_destroy(&exec);
    s_capture_free(&cap);
    free(expected);
}

static void test_line_longer_than_chunk_is_split(void **state)
{
    (void)state;
    capture_t cap;
    const char *argv[] = {"sh", "-c", "head -c 40000 /dev/zero | tr '\\0' x; echo", NULL};
    kiln_exec_t *exec = s_start(&cap, argv, NULL, NULL, 0, 0);
    s_run(exec, &cap);
    assert_int_equal(kiln_exec_exit_code(exec), 0);
    assert_int_equal(cap.len[0], 40001);
    assert_int_equal(cap.first_len[0], KILN_EXEC_CHUNK_MAX);   /* full chunk goes out */
    assert_int_equal(cap.max_chunk[0], KILN_EXEC_CHUNK_MAX);
    assert_true(cap.n_chunks[0] >= 3);
    assert_int_equal(strspn(cap.data[0], "x"), 40000);
    assert_int_equal(cap.data[0][40000], '\n');
    kiln_exec_destroy(&exec);
    s_capture_free(&cap);
}

/* ---- what the child gets ------------------------------------------------ */

static void test_environment_is_exactly_as_passed(void **state)
{
    (void)state;
    setenv("KILN_TEST_PARENT_ONLY", "1", 1);
    capture_t cap;
    const char *env[] = {"PATH=/usr/bin:/bin", "KILN_TEST_VAR=hello world", NULL};
    const char *argv[] = {"env", NULL};
    kiln_exec_t *exec = s_start(&cap, argv, env, NULL, 0, 0);
    s_run(exec, &cap);
    assert_int_equal(kiln_exec_exit_code(exec), 0);
    assert_string_equal(s_text(&cap, 0), "PATH=/usr/bin:/bin\nKILN_TEST_VAR=hello world\n");
    kiln_exec_destroy(&exec);
    s_capture_free(&cap);
    unsetenv("KILN_TEST_PARENT_ONLY");
}

static void test_cwd_is_as_passed(void **state)
{
    (void)state;
    char dir[PATH_MAX], real[PATH_MAX], want[PATH_MAX + 1];
    snprintf(dir, sizeof dir, "%s/work dir", s_tmp);
    assert_int_equal(mkdir(dir, 0755), 0);
    assert_non_null(realpath(dir, real));
    snprintf(want, sizeof want, "%s\n", real);
    capture_t cap;
    const char *argv[] = {"pwd", "-P", NULL};
    kiln_exec_t *exec = s_start(&cap, argv, NULL, dir, 0, 0);
    s_run(exec, &cap);
    assert_int_equal(kiln_exec_exit_code(exec), 0);
    assert_string_equal(s_text(&cap, 0), want);
    kiln_exec_destroy(&exec);
    s_capture_free(&cap);
    rmdir(dir);
}

static void test_signal_mask_and_dispositions_are_reset(void **state)
{
    (void)state;
    /* The precondition: this process blocks SIGCHLD and ignores SIGPIPE. */
    sigset_t cur;
    assert_int_equal(sigprocmask(SIG_BLOCK, NULL, &cur), 0);
    assert_int_equal(sigismember(&cur, SIGCHLD), 1);
    struct sigaction sa;
    assert_int_equal(sigaction(SIGPIPE, NULL, &sa), 0);
    assert_true(sa.sa_handler == SIG_IGN);

    capture_t cap;
    const char *argv[] = {"grep", "-E", "^Sig(Blk|Ign):", "/proc/self/status", NULL};
    kiln_exec_t *exec = s_start(&cap, argv, NULL, NULL, 0, 0);
    s_run(exec, &cap);
    assert_int_equal(kiln_exec_exit_code(exec), 0);
    assert_string_equal(s_text(&cap, 0), "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n");
    kiln_exec_destroy(&exec);
    s_capture_free(&cap);
}

static void test_child_gets_only_stdio_and_dev_null_stdin(void **state)
{
    (void)state;
    int leak = open("/dev/null", O_RDONLY);   /* deliberately not close-on-exec */
    assert_true(leak > 2);
    capture_t cap;
    /* ls holds fd 3 for the directory it lists; nothing else may be open. */
    const char *argv[] = {"ls", "/proc/self/fd", NULL};
    kiln_exec_t *exec = s_start(&cap, argv, NULL, NULL, 0, 0);
    s_run(exec, &cap);
    assert_int_equal(kiln_exec_exit_code(exec), 0);
    assert_string_equal(s_text(&cap, 0), "0\n1\n2\n3\n");
    kiln_exec_destroy(&exec);
    s_capture_free(&cap);
    close(leak);

    const char *argv2[] = {"readlink", "/proc/self/fd/0", NULL};
    exec = s_start(&cap, argv2, NULL, NULL, 0, 0);
    s_run(exec, &cap);
    assert_string_equal(s_text(&cap, 0), "/dev/null\n");
    kiln_exec_destroy(&exec);
    s_capture_free(&cap);
}

/* ---- finding the program ------------------------------------------------ */

static void test_missing_program_is_not_found_at_start(void **state)
{
    (void)state;
    capture_t cap = {0};
    const char *argv[] = {"kiln-no-such-program", "arg", NULL};
    kiln_exec_opts_t opts = {
        .argv = argv, .envp = s_env, .cwd = s_tmp, .on_output = s_on_output, .ctx = &cap,
    };
    kiln_exec_t *exec = (kiln_exec_t *)&cap;   /* must be reset to NULL */
    assert_int_equal(kiln_exec_start(&exec, &opts), KILN_ENOTFOUND);
    assert_null(exec);
    assert_non_null(strstr(kiln_error_last(), "kiln-no-such-program"));
    assert_non_null(strstr(kiln_error_last(), "not found"));

    /* A path that exists but is not executable. */
    s_write_file("plain.txt", "echo no\n", 0644);
    const char *argv2[] = {"./plain.txt", NULL};
    opts.argv = argv2;
    assert_int_equal(kiln_exec_start(&exec, &opts), KILN_ENOTFOUND);
    assert_null(exec);
    assert_non_null(strstr(kiln_error_last(), "plain.txt"));

    /* A cwd that does not exist. */
    const char *argv3[] = {"true", NULL};
    opts.argv = argv3;
    opts.cwd = "/nonexistent/kiln/dir";
    assert_int_equal(kiln_exec_start(&exec, &opts), KILN_ENOTFOUND);
    assert_null(exec);
    assert_non_null(strstr(kiln_error_last(), "/nonexistent/kiln/dir"));
    assert_int_equal(cap.n_chunks[0] + cap.n_chunks[1], 0);
}

static void test_program_found_in_step_path_and_cwd(void **state)
{
    (void)state;
    char bin[PATH_MAX], path_var[PATH_MAX + 32];
    snprintf(bin, sizeof bin, "%s/bin", s_tmp);
    s_write_file("bin/kiln-probe", "#!/bin/sh\necho probed \"$@\"\n", 0755);
    const char *own_path = getenv("PATH");
    assert_true(!own_path || !strstr(own_path, bin));   /* only the step's PATH has it */

    snprintf(path_var, sizeof path_var, "PATH=%s:/usr/bin:/bin", bin);
    const char *env[] = {path_var, NULL};
    capture_t cap;
    const char *argv[] = {"kiln-probe", "one", NULL};
    kiln_exec_t *exec = s_start(&cap, argv, env, NULL, 0, 0);
    s_run(exec, &cap);
    assert_int_equal(kiln_exec_exit_code(exec), 0);
    assert_string_equal(s_text(&cap, 0), "probed one\n");
    kiln_exec_destroy(&exec);
    s_capture_free(&cap);

    /* A relative name is relative to the step's cwd, not to ours. */
    const char *argv2[] = {"./kiln-probe", "two", NULL};
    exec = s_start(&cap, argv2, NULL, bin, 0, 0);
    s_run(exec, &cap);
    assert_int_equal(kiln_exec_exit_code(exec), 0);
    assert_string_equal(s_text(&cap, 0), "probed two\n");
    kiln_exec_destroy(&exec);
    s_capture_free(&cap);
}

/* Under valgrind the child is valgrind itself until exec, and valgrind
 * cannot survive a failing execve ("EXEC FAILED: I can't recover"), so the
 * child never reaches our error path there; the ASan run covers it. */
static bool s_under_valgrind(void)
{
    const char *preload = getenv("LD_PRELOAD");
    return preload && strstr(preload, "vgpreload");
}

static void test_exec_failure_in_child_exits_127_with_message(void **state)
{
    (void)state;
    if (s_under_valgrind())
        skip();
    s_write_file("bad-interp.sh", "#!/nonexistent/interpreter\necho never\n", 0755);
    capture_t cap;
    const char *argv[] = {"./bad-interp.sh", NULL};
    kiln_exec_t *exec = s_start(&cap, argv, NULL, NULL, 0, 0);
    s_run(exec, &cap);
    assert_int_equal(kiln_exec_status(exec), KILN_EXEC_EXITED);
    assert_int_equal(kiln_exec_exit_code(exec), 127);
    assert_non_null(strstr(s_text(&cap, 1), "kiln: cannot execute './bad-interp.sh'"));
    assert_int_equal(cap.len[0], 0);
    kiln_exec_destroy(&exec);
    s_capture_free(&cap);
}

static void test_script_without_shebang_runs_with_sh(void **state)
{
    (void)state;
    s_write_file("no-shebang", "echo from-sh \"$1\"\n", 0755);
    capture_t cap;
    const char *argv[] = {"./no-shebang", "arg", NULL};
    kiln_exec_t *exec = s_start(&cap, argv, NULL, NULL, 0, 0);
    s_run(exec, &cap);
    assert_int_equal(kiln_exec_exit_code(exec), 0);
    assert_string_equal(s_text(&cap, 0), "from-sh arg\n");
    kiln_exec_destroy(&exec);
    s_capture_free(&cap);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stdout_and_stderr_arrive_per_stream),
        cmocka_unit_test(test_exit_code),
        cmocka_unit_test(test_killed_by_own_signal),
        cmocka_unit_test(test_timeout_kills_whole_group),
        cmocka_unit_test(test_sigterm_ignored_gets_sigkill_after_grace),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_orphan_is_killed_when_step_exits),
        cmocka_unit_test(test_process_escaping_group_does_not_hang_step),
        cmocka_unit_test(test_step_dies_with_its_worker),
        cmocka_unit_test(test_guard_replaced_when_killed),
        cmocka_unit_test(test_destroy_kills_running_group),
        cmocka_unit_test(test_partial_line_is_flushed_by_timer),
        cmocka_unit_test(test_complete_lines_pass_and_tail_is_held),
        cmocka_unit_test(test_megabyte_of_lines_in_order_and_bounded),
        cmocka_unit_test(test_line_longer_than_chunk_is_split),
        cmocka_unit_test(test_environment_is_exactly_as_passed),
        cmocka_unit_test(test_cwd_is_as_passed),
        cmocka_unit_test(test_signal_mask_and_dispositions_are_reset),
        cmocka_unit_test(test_child_gets_only_stdio_and_dev_null_stdin),
        cmocka_unit_test(test_missing_program_is_not_found_at_start),
        cmocka_unit_test(test_program_found_in_step_path_and_cwd),
        cmocka_unit_test(test_exec_failure_in_child_exits_127_with_message),
        cmocka_unit_test(test_script_without_shebang_runs_with_sh),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
