/* follow.c: live run output and summaries (see follow.h). */
#include "cli/follow.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/error.h"
#include "common/termsafe.h"
#include "common/transport.h"

#define KILN_FOLLOW_JOBS_MAX 1024

/* Whether each job's output stopped in the middle of a line, so the next
 * chunk continues it without a new prefix. */
static struct {
    char job[128];
    bool mid_line;
} s_lines[KILN_FOLLOW_JOBS_MAX];
static size_t s_n_lines;

static bool *s_mid_line(const char *job)
{
    for (size_t i = 0; i < s_n_lines; i++)
        if (strcmp(s_lines[i].job, job) == 0)
            return &s_lines[i].mid_line;
    if (s_n_lines == KILN_FOLLOW_JOBS_MAX)
        return &s_lines[0].mid_line;
    snprintf(s_lines[s_n_lines].job, sizeof s_lines[0].job, "%s", job);
    s_lines[s_n_lines].mid_line = false;
    return &s_lines[s_n_lines++].mid_line;
}

static bool s_raw;

void kiln_follow_set_raw(bool raw)
{
    s_raw = raw;
}

/* Whether what goes to stdout is filtered: a terminal, and not --raw. */
static bool s_filtered(void)
{
    static int tty = -1;
    if (tty < 0)
        tty = isatty(STDOUT_FILENO);
    return tty && !s_raw;
}

char *kiln_follow_safe_text(const char *text)
{
    if (!s_filtered())
        return strdup(text);
    kiln_buf_t b = {.max = 1 << 20};
    kiln_termsafe((const uint8_t *)text, strlen(text), &b);
    kiln_buf_add(&b, "", 0);
    if (kiln_buf_failed(&b)) {
        free(b.data);
        return NULL;
    }
    return b.data ? b.data : strdup("");
}

void kiln_follow_print_log(const char *job, int stream, const uint8_t *data, size_t len)
{
    kiln_buf_t safe = {.max = 4 * (len + 16)};
    if (s_filtered() && len) {
        kiln_termsafe(data, len, &safe);
        if (kiln_buf_failed(&safe) || !safe.data) {
            free(safe.data);
            return;
        }
        data = (const uint8_t *)safe.data;
        len = safe.len;
    }
    bool *mid = s_mid_line(job);
    const char *mark = stream == 2 ? "## " : "";
    size_t i = 0;
    while (i < len) {
        const uint8_t *nl = memchr(data + i, '\n', len - i);
        size_t n = nl ? (size_t)(nl - (data + i)) + 1 : len - i;
        if (!*mid)
            printf("%s | %s", job, mark);
        fwrite(data + i, 1, n, stdout);
        *mid = data[i + n - 1] != '\n';
        i += n;
    }
    fflush(stdout);
    free(safe.data);
}

static void s_end_line(const char *job)
{
    bool *mid = s_mid_line(job);
    if (*mid) {
        putchar('\n');
        *mid = false;
    }
}

static void s_print_event(const Kiln__RunEvent *ev, const char *job_filter)
{
    const char *job = ev->job_name[0] ? ev->job_name : ev->job_id;
    /* A job named by its id or by its name as kiln status shows it. */
    if (job_filter && ev->job_id[0] && strcmp(job_filter, ev->job_id) != 0 &&
        strcmp(job_filter, ev->job_name) != 0)
        return;
    switch (ev->kind) {
    case KILN__EVENT_KIND__EVENT_JOB_STARTED:
        printf("==> %s: started on %s%s\n", job, ev->worker,
               ev->attempt > 1 ? " (retry)" : "");
        break;
    case KILN__EVENT_KIND__EVENT_STEP_STARTED:
        s_end_line(job);
        printf("%s | ::: %s\n", job, ev->step_name);
        break;
    case KILN__EVENT_KIND__EVENT_LOG:
        kiln_follow_print_log(job, (int)ev->stream, ev->data.data, ev->data.len);
        break;
    case KILN__EVENT_KIND__EVENT_STEP_FINISHED:
        s_end_line(job);
        if (strcmp(ev->state, "success") != 0 && strcmp(ev->state, "skipped") != 0)
            printf("%s | ::: %s: %s\n", job, ev->step_name, ev->state);
        break;
    case KILN__EVENT_KIND__EVENT_JOB_WAITING:
        s_end_line(job);
        printf("==> %s: waiting: %s\n", job, ev->message);
        break;
    case KILN__EVENT_KIND__EVENT_JOB_FINISHED:
        s_end_line(job);
        if (ev->duration_ms)
            printf("==> %s: %s in %.2fs\n", job, ev->state, (double)ev->duration_ms / 1000.0);
        else if (ev->message[0])
            printf("==> %s: %s: %s\n", job, ev->state, ev->message);
        else
            printf("==> %s: %s\n", job, ev->state);
        break;
    default:
        break;
    }
    fflush(stdout);
}

/* kiln run: the number of workers its own farm has; 0 for any other farm. */
static unsigned s_own_workers;

void kiln_follow_set_own_farm(unsigned workers)
{
    s_own_workers = workers;
}

int kiln_follow_renew(kiln_client_t *client, int64_t run_id, bool quiet, int64_t *last_heard,
                      char *state, size_t cap)
{
    Kiln__Request req = KILN__REQUEST__INIT;
    Kiln__Envelope *reply = NULL;
    req.kind = KILN__REQUEST_KIND__REQ_WATCH;
    req.run_id = (uint64_t)run_id;
    req.follow_quiet = quiet;
    const char *env = getenv("KILN_FOLLOW_GIVE_UP_MS");
    long give_up = env && atol(env) > 0 ? atol(env) : KILN_FOLLOW_GIVE_UP_MS;
    if (kiln_client_call(client, &req, KILN_FOLLOW_CHECK_MS, &reply) != 0) {
        if (kiln_clock_mono_ms() - *last_heard < give_up)
            return 1;
        kiln_error_set("the coordinator has not answered for %ld s; giving up on run %lld (it may "
                       "still finish: kiln status %lld)",
                       give_up / 1000, (long long)run_id, (long long)run_id);
        return KILN_ETIMEOUT;
    }
    *last_heard = kiln_clock_mono_ms();
    int rc = 1;
    const Kiln__Reply *r = reply->reply;
    if (r->code != 0 && r->json.len) {
        /* Not active any more: it ended while we did not hear (the
         * coordinator restarted, or its end event was lost). */
        json_t *doc = json_loadb((const char *)r->json.data, r->json.len, 0, NULL);
        const char *st = json_string_value(json_object_get(doc, "state"));
        if (st && strcmp(st, "running") != 0) {
            snprintf(state, cap, "%s", st);
            rc = 0;
        }
        json_decref(doc);
    } else if (r->code != 0) {
        kiln_error_set("run %lld: %s", (long long)run_id, r->error);
        rc = KILN_ENOTFOUND;
    }
    kiln__envelope__free_unpacked(reply, NULL);
    return rc;
}

int kiln_follow_run(kiln_client_t *client, int64_t run_id, bool live, const char *job_filter,
                    int extra_fd, char *state, size_t cap)
{
    int64_t last_heard = kiln_clock_mono_ms();
    for (;;) {
        Kiln__Envelope *m = NULL;
        int rc = kiln_client_next_event(client, KILN_FOLLOW_CHECK_MS, extra_fd, &m);
        if (rc == KILN_ETIMEOUT) {
            /* Quiet for a while: make sure the coordinator still knows we
             * follow (a restarted one knows no followers), and whether the
             * run ended meanwhile. */
            rc = kiln_follow_renew(client, run_id, !live, &last_heard, state, cap);
            if (rc <= 0)
                return rc;
            continue;
        }
        if (rc != 0)
            return rc;
        last_heard = kiln_clock_mono_ms();
        const Kiln__RunEvent *ev = m->event;
        if ((int64_t)ev->run_id != run_id) {
            kiln__envelope__free_unpacked(m, NULL);
            continue;
        }
        if (ev->kind == KILN__EVENT_KIND__EVENT_RUN_FINISHED ||
            ev->kind == KILN__EVENT_KIND__EVENT_END) {
            snprintf(state, cap, "%s", ev->state);
            kiln__envelope__free_unpacked(m, NULL);
            return 0;
        }
        if (live)
            s_print_event(ev, job_filter);
        /* A farm of our own whose workers are all there and none of which
         * can run a job will never run it: say so now, not never. */
        if (ev->kind == KILN__EVENT_KIND__EVENT_JOB_WAITING && s_own_workers &&
            ev->workers_connected >= s_own_workers) {
            kiln_error_set("job '%s' cannot run on this farm: %s; none of its %u workers has "
                           "them (kiln run --labels gives its workers more)",
                           ev->job_name[0] ? ev->job_name : ev->job_id, ev->message,
                           s_own_workers);
            kiln__envelope__free_unpacked(m, NULL);
            return KILN_EUNSERVED;
        }
        kiln__envelope__free_unpacked(m, NULL);
    }
}

int kiln_follow_exit_code(const char *state)
{
    /* A run whose jobs were all skipped did what its workflow asked. */
    if (strcmp(state, "success") == 0 || strcmp(state, "skipped") == 0)
        return KILN_EXIT_OK;
    if (strcmp(state, "failure") == 0 || strcmp(state, "cancelled") == 0)
        return KILN_EXIT_FAILED;
    return KILN_EXIT_INFRA;
}

static void s_duration(json_t *v, char *out, size_t cap)
{
    if (json_is_integer(v))
        snprintf(out, cap, "%.2fs", (double)json_integer_value(v) / 1000.0);
    else
        snprintf(out, cap, "-");
}

/* Text from a job, printed as its output is (made safe on a terminal). */
static void s_put_safe(const char *text)
{
    char *safe = text ? kiln_follow_safe_text(text) : NULL;
    fputs(safe ? safe : "", stdout);
    free(safe);
}

void kiln_follow_print_extras(const json_t *run)
{
    size_t i;
    json_t *a;
    json_array_foreach(json_object_get(run, "annotations"), i, a) {
        const char *file = json_string_value(json_object_get(a, "file"));
        const char *title = json_string_value(json_object_get(a, "title"));
        json_int_t line = json_integer_value(json_object_get(a, "line"));
        if (i == 0)
            printf("\nannotations:\n");
        printf("  %-7s %s", json_string_value(json_object_get(a, "level")),
               json_string_value(json_object_get(a, "job")));
        if (file) {
            putchar(' ');
            s_put_safe(file);
            if (line)
                printf(":%lld", (long long)line);
        }
        fputs(": ", stdout);
        if (title) {
            s_put_safe(title);
            fputs(": ", stdout);
        }
        s_put_safe(json_string_value(json_object_get(a, "message")));
        putchar('\n');
    }
    json_array_foreach(json_object_get(run, "summaries"), i, a) {
        printf("\nsummary of %s:\n", json_string_value(json_object_get(a, "job")));
        s_put_safe(json_string_value(json_object_get(a, "markdown")));
    }
}

int kiln_follow_summary(kiln_client_t *client, int64_t run_id, bool json)
{
    Kiln__Request req = KILN__REQUEST__INIT;
    Kiln__Envelope *reply = NULL;
    json_t *doc = NULL;
    int code = KILN_EXIT_INFRA;
    req.kind = KILN__REQUEST_KIND__REQ_STATUS;
    req.run_id = (uint64_t)run_id;
    req.pretty = json;
    if (kiln_client_call(client, &req, 10000, &reply) != 0 || reply->reply->code != 0) {
        fprintf(stderr, "kiln: cannot read run %lld: %s\n", (long long)run_id,
                reply ? reply->reply->error : kiln_error_last());
        goto cleanup;
    }
    if (json && reply->reply->state[0]) {
        /* Already as we print it: decoding and encoding a large run's
         * record again took longer than the coordinator took to make it. */
        fwrite(reply->reply->json.data, 1, reply->reply->json.len, stdout);
        putchar('\n');
        code = kiln_follow_exit_code(reply->reply->state);
        goto cleanup;
    }
    doc = json_loadb((const char *)reply->reply->json.data, reply->reply->json.len, 0, NULL);
    if (!doc) {
        fprintf(stderr, "kiln: the coordinator sent an unreadable summary\n");
        goto cleanup;
    }
    const char *state = json_string_value(json_object_get(doc, "state"));
    code = kiln_follow_exit_code(state ? state : "");
    if (json) {
        char *text = json_dumps(doc, JSON_INDENT(2));
        if (text)
            printf("%s\n", text);
        free(text);
        goto cleanup;
    }
    json_t *jobs = json_object_get(doc, "jobs");
    size_t width = 3, i;
    json_t *job;
    json_array_foreach(jobs, i, job) {
        const char *name = json_string_value(json_object_get(job, "name"));
        if (name && strlen(name) > width)
            width = strlen(name);
    }
    printf("\n%-*s  %-11s  %9s  %-14s  %s\n", (int)width, "JOB", "STATE", "DURATION", "WORKER",
           "ATTEMPTS");
    json_array_foreach(jobs, i, job) {
        char dur[32];
        const char *worker = json_string_value(json_object_get(job, "worker"));
        s_duration(json_object_get(job, "duration_ms"), dur, sizeof dur);
        printf("%-*s  %-11s  %9s  %-14s  %lld\n", (int)width,
               json_string_value(json_object_get(job, "name")),
               json_string_value(json_object_get(job, "state")), dur, worker ? worker : "-",
               (long long)json_integer_value(json_object_get(job, "attempt")));
    }
    char dur[32];
    json_t *created = json_object_get(doc, "created_ms"), *finished = json_object_get(doc, "finished_ms");
    json_t *span = json_is_integer(finished)
                       ? json_integer(json_integer_value(finished) - json_integer_value(created))
                       : json_null();
    s_duration(span, dur, sizeof dur);
    json_decref(span);
    kiln_follow_print_extras(doc);
    printf("\nrun %lld %s in %s\n", (long long)run_id, state ? state : "?", dur);
cleanup:
    json_decref(doc);
    if (reply)
        kiln__envelope__free_unpacked(reply, NULL);
    return code;
}
