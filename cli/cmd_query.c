/* cmd_query.c: kiln status, history, logs, workers, stats. */
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/clock.h"
#include "common/error.h"
#include "common/keys.h"
#include "common/log.h"

int kiln_cmd_status(int argc, char **argv)
{
    kiln_cli_common_t c = {0};
    int npos = 0;
    kiln_opt_t opts[] = {
        KILN_CLI_TARGET_OPTS(c),
        {"json", KILN_OPT_BOOL, &c.json, "print JSON"},
        {NULL, 0, NULL, NULL},
    };
    int rc = kiln_opts_parse(opts, argc, argv, 2, &npos);
    int64_t run = npos == 1 ? kiln_cli_parse_run(argv[2]) : 0;
    if (rc != 0 || npos > 1 || run < 0) {
        if (rc == 0)
            kiln_error_set("RUN must be a run number");
        return kiln_cli_usage_error("status", "[RUN] [options]", opts, rc ? rc : -1);
    }
    Kiln__Request req = KILN__REQUEST__INIT;
    req.kind = KILN__REQUEST_KIND__REQ_STATUS;
    req.run_id = (uint64_t)run;
    req.limit = 20;
    return kiln_cli_query(&c, &req, run ? kiln_render_run : kiln_render_runs);
}

int kiln_cmd_history(int argc, char **argv)
{
    kiln_cli_common_t c = {0};
    int npos = 0, limit = 20;
    kiln_opt_t opts[] = {
        KILN_CLI_TARGET_OPTS(c),
        {"limit", KILN_OPT_INT, &limit, "how many runs, newest first (20, at most 1000)"},
        {"json", KILN_OPT_BOOL, &c.json, "print JSON"},
        {NULL, 0, NULL, NULL},
    };
    int rc = kiln_opts_parse(opts, argc, argv, 2, &npos);
    if (rc != 0 || npos != 0 || limit < 1 || limit > 1000) {
        if (rc == 0)
            kiln_error_set("--limit must be 1..1000 and no arguments are taken");
        return kiln_cli_usage_error("history", "[--limit N] [--json] [options]", opts, rc ? rc : -1);
    }
    Kiln__Request req = KILN__REQUEST__INIT;
    req.kind = KILN__REQUEST_KIND__REQ_HISTORY;
    req.limit = (uint32_t)limit;
    return kiln_cli_query(&c, &req, kiln_render_runs);
}

/* Whether this job#attempt was seen before (records it if not). */
static bool s_seen_attempt(const char *key)
{
    static char seen[1024][256];
    static size_t n;
    for (size_t i = 0; i < n; i++)
        if (strcmp(seen[i], key) == 0)
            return true;
    if (n < 1024)
        snprintf(seen[n++], sizeof seen[0], "%s", key);
    return false;
}

int kiln_cmd_logs(int argc, char **argv)
{
    kiln_cli_common_t c = {0};
    bool follow = false, raw = false;
    int npos = 0, code;
    kiln_client_t *client = NULL;
    Kiln__Envelope *reply = NULL;
    kiln_opt_t opts[] = {
        KILN_CLI_TARGET_OPTS(c),
        {"follow", KILN_OPT_BOOL, &follow, "keep following a running run (also -f)"},
        {"raw", KILN_OPT_BOOL, &raw, "print the output as it came, terminal sequences included"},
        {NULL, 0, NULL, NULL},
    };
    for (int i = 2; i < argc; i++)
        if (strcmp(argv[i], "-f") == 0)
            argv[i] = "--follow";
    int rc = kiln_opts_parse(opts, argc, argv, 2, &npos);
    kiln_follow_set_raw(raw);
    int64_t run = npos >= 1 ? kiln_cli_parse_run(argv[2]) : -1;
    if (rc != 0 || npos < 1 || npos > 2 || run < 0) {
        if (rc == 0)
            kiln_error_set("expected RUN [JOB]");
        return kiln_cli_usage_error("logs", "RUN [JOB] [-f] [options]", opts, rc ? rc : -1);
    }
    const char *job = npos == 2 ? argv[3] : NULL;
    if ((code = kiln_cli_connect(&c, &client)) != 0)
        return code;
    Kiln__Request req = KILN__REQUEST__INIT;
    req.kind = KILN__REQUEST_KIND__REQ_LOGS;
    req.run_id = (uint64_t)run;
    req.job_id = (char *)(job ? job : "");
    req.follow = follow;
    if ((code = kiln_cli_call(client, &req, &reply)) == 0) {
        int sigfd = -1;
        int wake = kiln_cli_interrupt_fd(-1, &sigfd);
        int64_t last_heard = kiln_clock_mono_ms();
        for (;;) {
            Kiln__Envelope *m = NULL;
            rc = kiln_client_next_event(client, follow ? KILN_FOLLOW_CHECK_MS : KILN_CLI_REQUEST_TIMEOUT_MS,
                                        wake, &m);
            if (rc == KILN_ETIMEOUT && follow) {
                /* Quiet: is the coordinator (perhaps restarted) still
                 * sending us the run, and is the run still going? */
                char state[64];
                rc = kiln_follow_renew(client, run, false, &last_heard, state, sizeof state);
                if (rc == 1)
                    continue;
                if (rc == 0)
                    break;
            }
            if (rc != 0) {
                if (rc != KILN_EAGAIN) {
                    fprintf(stderr, "kiln: %s\n", kiln_error_last());
                    code = KILN_EXIT_INFRA;
                }
                break;
            }
            last_heard = kiln_clock_mono_ms();
            const Kiln__RunEvent *ev = m->event;
            /* A renewed watch sends every job's events: keep to the one asked. */
            if (job && ev->kind == KILN__EVENT_KIND__EVENT_LOG && strcmp(ev->job_id, job) != 0 &&
                strcmp(ev->job_name, job) != 0) {
                kiln__envelope__free_unpacked(m, NULL);
                continue;
            }
            /* Following one job ends with that job. */
            bool end = ev->kind == KILN__EVENT_KIND__EVENT_END ||
                       ev->kind == KILN__EVENT_KIND__EVENT_RUN_FINISHED ||
                       (job && ev->kind == KILN__EVENT_KIND__EVENT_JOB_FINISHED &&
                        strcmp(ev->job_id, job) == 0);
            if (ev->kind == KILN__EVENT_KIND__EVENT_LOG) {
                /* Each attempt's output is kept apart: a header marks where
                 * a retry's output begins. */
                char key[256];
                snprintf(key, sizeof key, "%s#%u", ev->job_id, ev->attempt);
                if (!s_seen_attempt(key) && ev->attempt > 1)
                    printf("%s | --- attempt %u ---\n", ev->job_id, ev->attempt);
                kiln_follow_print_log(ev->job_id, (int)ev->stream, ev->data.data, ev->data.len);
            }
            kiln__envelope__free_unpacked(m, NULL);
            if (end)
                break;
        }
        close(wake);
        close(sigfd);
    }
    if (reply)
        kiln__envelope__free_unpacked(reply, NULL);
    kiln_client_destroy(&client);
    return code;
}

int kiln_cmd_workers(int argc, char **argv)
{
    kiln_cli_common_t c = {0};
    int npos = 0;
    kiln_opt_t opts[] = {KILN_CLI_TARGET_OPTS(c), {"json", KILN_OPT_BOOL, &c.json, "print JSON"},
                         {NULL, 0, NULL, NULL}};
    int rc = kiln_opts_parse(opts, argc, argv, 2, &npos);
    if (rc != 0 || npos != 0)
        return kiln_cli_usage_error("workers", "[--json] [options]", opts, rc ? rc : -1);
    Kiln__Request req = KILN__REQUEST__INIT;
    req.kind = KILN__REQUEST_KIND__REQ_WORKERS;
    return kiln_cli_query(&c, &req, kiln_render_workers);
}

int kiln_cmd_stats(int argc, char **argv)
{
    kiln_cli_common_t c = {0};
    int npos = 0;
    kiln_opt_t opts[] = {KILN_CLI_TARGET_OPTS(c), {"json", KILN_OPT_BOOL, &c.json, "print JSON"},
                         {NULL, 0, NULL, NULL}};
    int rc = kiln_opts_parse(opts, argc, argv, 2, &npos);
    if (rc != 0 || npos != 0)
        return kiln_cli_usage_error("stats", "[--json] [options]", opts, rc ? rc : -1);
    Kiln__Request req = KILN__REQUEST__INIT;
    req.kind = KILN__REQUEST_KIND__REQ_STATS;
    return kiln_cli_query(&c, &req, kiln_render_stats);
}
