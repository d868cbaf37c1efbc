/* notice.c: spot-interruption notices (see notice.h). */
#include "worker/notice.h"

#include <curl/curl.h>
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/select.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/error.h"
#include "worker/executor.h"
#include "common/log.h"

extern char **environ;

struct kiln_notice {
    int poll_ms;
    bool seen;
    char reason[512];
    /* file */
    char *file;
    char *file_base;
    int inotify_fd;
    /* url */
    char *url;
    CURLM *multi;
    CURL *easy;
    bool fetching;
    int64_t next_fetch;
    /* command */
    char *command;
    kiln_exec_t *exec;
    int64_t next_command;
};

/* libcurl is loaded when a notice URL is configured rather than linked:
 * linked, it (and GnuTLS and the rest it pulls in) cost every worker about
 * 7 ms of CPU before main, on every start, and most workers poll no URL. */
static struct {
    CURLcode (*global_init)(long flags);
    CURLM *(*multi_init)(void);
    CURL *(*easy_init)(void);
    CURLcode (*easy_setopt)(CURL *curl, CURLoption option, ...);
    CURLMcode (*multi_add_handle)(CURLM *multi, CURL *easy);
    CURLMcode (*multi_remove_handle)(CURLM *multi, CURL *easy);
    void (*easy_cleanup)(CURL *curl);
    CURLMcode (*multi_cleanup)(CURLM *multi);
    CURLMcode (*multi_fdset)(CURLM *multi, fd_set *r, fd_set *w, fd_set *e, int *max_fd);
    CURLMcode (*multi_timeout)(CURLM *multi, long *ms);
    CURLMcode (*multi_perform)(CURLM *multi, int *running);
    CURLMsg *(*multi_info_read)(CURLM *multi, int *left);
    CURLcode (*easy_getinfo)(CURL *curl, CURLINFO info, ...);
    const char *(*easy_strerror)(CURLcode code);
} s_curl;

/* Loads libcurl once (it stays loaded). */
static int s_curl_load(void)
{
    static void *lib;
    if (lib)
        return 0;
    void *h = dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        kiln_error_set("notice: cannot load libcurl: %s", dlerror());
        return -1;
    }
    struct {
        const char *name;
        void **slot;
    } syms[] = {
        {"curl_global_init", (void **)&s_curl.global_init},
        {"curl_multi_init", (void **)&s_curl.multi_init},
        {"curl_easy_init", (void **)&s_curl.easy_init},
        {"curl_easy_setopt", (void **)&s_curl.easy_setopt},
        {"curl_multi_add_handle", (void **)&s_curl.multi_add_handle},
        {"curl_multi_remove_handle", (void **)&s_curl.multi_remove_handle},
        {"curl_easy_cleanup", (void **)&s_curl.easy_cleanup},
        {"curl_multi_cleanup", (void **)&s_curl.multi_cleanup},
        {"curl_multi_fdset", (void **)&s_curl.multi_fdset},
        {"curl_multi_timeout", (void **)&s_curl.multi_timeout},
        {"curl_multi_perform", (void **)&s_curl.multi_perform},
        {"curl_multi_info_read", (void **)&s_curl.multi_info_read},
        {"curl_easy_getinfo", (void **)&s_curl.easy_getinfo},
        {"curl_easy_strerror", (void **)&s_curl.easy_strerror},
    };
    for (size_t i = 0; i < sizeof syms / sizeof *syms; i++) {
        *syms[i].slot = dlsym(h, syms[i].name);
        if (!*syms[i].slot) {
            kiln_error_set("notice: libcurl has no %s", syms[i].name);
            dlclose(h);
            return -1;
        }
    }
    lib = h;
    return 0;
}

static size_t s_discard(char *ptr, size_t size, size_t n, void *ctx)
{
    (void)ptr;
    (void)ctx;
    return size * n;
}

int kiln_notice_new(kiln_notice_t **out, const kiln_notice_config_t *cfg)
{
    int rc = -1;
    *out = NULL;
    if (!cfg->file && !cfg->url && !cfg->command)
        return 0;
    kiln_notice_t *self = calloc(1, sizeof *self);
    if (!self) {
        kiln_error_set("notice: out of memory");
        return -1;
    }
    self->inotify_fd = -1;
    self->poll_ms = cfg->poll_ms > 0 ? cfg->poll_ms : KILN_NOTICE_DEFAULT_POLL_MS;
    if (cfg->file) {
        char dir[PATH_MAX];
        self->file = strdup(cfg->file);
        if (!self->file)
            goto cleanup;
        snprintf(dir, sizeof dir, "%s", cfg->file);
        char *slash = strrchr(dir, '/');
        self->file_base = strrchr(self->file, '/') ? strrchr(self->file, '/') + 1 : self->file;
        if (slash)
            *slash = '\0';
        else
            snprintf(dir, sizeof dir, ".");
        self->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        if (self->inotify_fd == -1 ||
            inotify_add_watch(self->inotify_fd, dir[0] ? dir : "/",
                              IN_CREATE | IN_MOVED_TO | IN_CLOSE_WRITE) == -1) {
            kiln_error_errno("notice: cannot watch %s", dir);
            goto cleanup;
        }
    }
    if (cfg->url) {
        if (s_curl_load() != 0)
            goto cleanup;
        if (s_curl.global_init(CURL_GLOBAL_DEFAULT) != 0 || !(self->multi = s_curl.multi_init()) ||
            !(self->easy = s_curl.easy_init()) || !(self->url = strdup(cfg->url))) {
            kiln_error_set("notice: cannot set up libcurl");
            goto cleanup;
        }
        s_curl.easy_setopt(self->easy, CURLOPT_URL, self->url);
        s_curl.easy_setopt(self->easy, CURLOPT_TIMEOUT_MS, 2000L);
        s_curl.easy_setopt(self->easy, CURLOPT_NOSIGNAL, 1L);
        /* An instance metadata endpoint is local: never through a proxy. */
        s_curl.easy_setopt(self->easy, CURLOPT_PROXY, "");
        s_curl.easy_setopt(self->easy, CURLOPT_WRITEFUNCTION, s_discard);
    }
    if (cfg->command && !(self->command = strdup(cfg->command)))
        goto cleanup;
    /* The file may be there already. */
    struct stat st;
    if (self->file && stat(self->file, &st) == 0) {
        self->seen = true;
        snprintf(self->reason, sizeof self->reason, "notice file %s exists", self->file);
    }
    *out = self;
    self = NULL;
    rc = 0;
cleanup:
    kiln_notice_destroy(&self);
    return rc;
}

void kiln_notice_destroy(kiln_notice_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    kiln_notice_t *self = *self_p;
    if (self->inotify_fd >= 0)
        close(self->inotify_fd);
    if (self->multi && self->easy && self->fetching)
        s_curl.multi_remove_handle(self->multi, self->easy);
    if (self->easy)
        s_curl.easy_cleanup(self->easy);
    if (self->multi)
        s_curl.multi_cleanup(self->multi);
    kiln_exec_destroy(&self->exec);
    free(self->file);
    free(self->url);
    free(self->command);
    free(self);
    *self_p = NULL;
}

int kiln_notice_fds(kiln_notice_t *self, int *fds, short *events, int max)
{
    int n = 0;
    if (!self || self->seen)
        return 0;
    if (self->inotify_fd >= 0 && n < max) {
        fds[n] = self->inotify_fd;
        events[n++] = 1; /* POLLIN */
    }
    if (self->fetching) {
        fd_set r, w, e;
        int maxfd = -1;
        FD_ZERO(&r);
        FD_ZERO(&w);
        FD_ZERO(&e);
        s_curl.multi_fdset(self->multi, &r, &w, &e, &maxfd);
        for (int fd = 0; fd <= maxfd && n < max; fd++) {
            short ev = (short)((FD_ISSET(fd, &r) ? 1 : 0) | (FD_ISSET(fd, &w) ? 2 : 0));
            if (ev) {
                fds[n] = fd;
                events[n++] = ev;
            }
        }
    }
    if (self->exec) {
        int efds[2];
        int k = kiln_exec_fds(self->exec, efds);
        for (int i = 0; i < k && n < max; i++) {
            fds[n] = efds[i];
            events[n++] = 1;
        }
    }
    return n;
}

int64_t kiln_notice_next_deadline(kiln_notice_t *self)
{
    if (!self || self->seen)
        return -1;
    int64_t next = -1;
    int64_t now = kiln_clock_mono_ms();
    if (self->url) {
        int64_t at = self->next_fetch;
        if (self->fetching) {
            long t = -1;
            s_curl.multi_timeout(self->multi, &t);
            at = t >= 0 ? now + t : now + 100;
        }
        next = at;
    }
    if (self->command) {
        int64_t at = self->exec ? kiln_exec_next_deadline(self->exec) : self->next_command;
        if (at >= 0 && (next < 0 || at < next))
            next = at;
    }
    return next;
}

static void s_discard_output(void *ctx, int stream, const char *data, size_t len)
{
    (void)ctx;
    (void)stream;
    (void)data;
    (void)len;
}

static void s_work_url(kiln_notice_t *self, int64_t now)
{
    int running = 0;
    if (!self->fetching) {
        if (now < self->next_fetch)
            return;
        s_curl.multi_add_handle(self->multi, self->easy);
        self->fetching = true;
    }
    s_curl.multi_perform(self->multi, &running);
    CURLMsg *m;
    int left;
    while ((m = s_curl.multi_info_read(self->multi, &left)) != NULL) {
        if (m->msg != CURLMSG_DONE)
            continue;
        long code = 0;
        s_curl.easy_getinfo(self->easy, CURLINFO_RESPONSE_CODE, &code);
        s_curl.multi_remove_handle(self->multi, self->easy);
        self->fetching = false;
        self->next_fetch = now + self->poll_ms;
        kiln_log_debug("notice: %s answered %ld (%s)", self->url, code,
                       s_curl.easy_strerror(m->data.result));
        /* The status is the notice; a short or odd body does not matter. */
        if (code == 200) {
            self->seen = true;
            snprintf(self->reason, sizeof self->reason, "%s answered 200", self->url);
        }
        break;
    }
}

static void s_work_command(kiln_notice_t *self, int64_t now)
{
    if (!self->exec) {
        if (now < self->next_command)
            return;
        const char *argv[] = {"sh", "-c", self->command, NULL};
        kiln_exec_opts_t opts = {
            .argv = argv,
            .envp = (const char *const *)environ,
            .cwd = "/",
            .timeout_ms = self->poll_ms,
            .grace_ms = 1000,
            .on_output = s_discard_output,
        };
        if (kiln_exec_start(&self->exec, &opts) != 0) {
            kiln_log_warn("notice: cannot run '%s': %s", self->command, kiln_error_last());
            self->next_command = now + self->poll_ms;
        }
        return;
    }
    int64_t d = kiln_exec_next_deadline(self->exec);
    if (d >= 0 && d <= now)
        kiln_exec_on_timer(self->exec, now);
    if (!kiln_exec_done(self->exec))
        return;
    if (kiln_exec_status(self->exec) == KILN_EXEC_EXITED && kiln_exec_exit_code(self->exec) == 0) {
        self->seen = true;
        snprintf(self->reason, sizeof self->reason, "notice command '%s' exited 0",
                 self->command);
    }
    kiln_exec_destroy(&self->exec);
    self->next_command = now + self->poll_ms;
}

void kiln_notice_on_sigchld(kiln_notice_t *self)
{
    if (self && self->exec)
        kiln_exec_on_sigchld(self->exec);
}

bool kiln_notice_work(kiln_notice_t *self, int64_t now_ms)
{
    if (!self)
        return false;
    if (self->seen)
        return true;
    if (self->inotify_fd >= 0) {
        char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
        ssize_t n;
        while ((n = read(self->inotify_fd, buf, sizeof buf)) > 0) {
            for (char *p = buf; p < buf + n;) {
                struct inotify_event *ev = (struct inotify_event *)p;
                if (ev->len && strcmp(ev->name, self->file_base) == 0) {
                    self->seen = true;
                    snprintf(self->reason, sizeof self->reason, "notice file %s appeared",
                             self->file);
                }
                p += sizeof *ev + ev->len;
            }
        }
    }
    if (!self->seen && self->url)
        s_work_url(self, now_ms);
    if (!self->seen && self->command) {
        if (self->exec) {
            int fds[2];
            int k = kiln_exec_fds(self->exec, fds);
            for (int i = 0; i < k; i++)
                kiln_exec_on_readable(self->exec, fds[i]);
        }
        s_work_command(self, now_ms);
    }
    return self->seen;
}

const char *kiln_notice_reason(const kiln_notice_t *self)
{
    return self ? self->reason : "";
}
