/* render.c: runs, jobs, workers and stats as the tables kiln prints. */
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

void kiln_render_ms(json_t *v, char *out, size_t cap)
{
    if (json_is_integer(v))
        snprintf(out, cap, "%.2fs", (double)json_integer_value(v) / 1000.0);
    else
        snprintf(out, cap, "-");
}

void kiln_render_runs(json_t *runs)
{
    size_t i;
    json_t *r;
    printf("%-6s  %-10s  %5s  %6s  %9s  %s\n", "RUN", "STATE", "JOBS", "FAILED", "DURATION",
           "WORKFLOW");
    json_array_foreach(runs, i, r) {
        char dur[32];
        kiln_render_ms(json_object_get(r, "duration_ms"), dur, sizeof dur);
        printf("%-6lld  %-10s  %5lld  %6lld  %9s  %s\n",
               (long long)json_integer_value(json_object_get(r, "id")),
               json_string_value(json_object_get(r, "state")),
               (long long)json_integer_value(json_object_get(r, "jobs")),
               (long long)json_integer_value(json_object_get(r, "failed")), dur,
               json_string_value(json_object_get(r, "name")));
    }
}

void kiln_render_run_jobs(json_t *run)
{
    size_t i, k;
    json_t *job, *at;
    printf("run %lld  %s  %s  (%s)\n", (long long)json_integer_value(json_object_get(run, "id")),
           json_string_value(json_object_get(run, "name")),
           json_string_value(json_object_get(run, "state")),
           json_string_value(json_object_get(run, "file")));
    json_t *src = json_object_get(run, "source");
    if (src) {
        const char *ref = json_string_value(json_object_get(src, "ref"));
        const char *sha = json_string_value(json_object_get(src, "sha"));
        printf("source: %s %s %.12s%s  (%s)\n",
               json_string_value(json_object_get(src, "repository")), ref && ref[0] ? ref : "-",
               sha ? sha : "", json_is_true(json_object_get(src, "dirty")) ? " (work tree, --dirty)" : "",
               json_string_value(json_object_get(src, "url")));
    }
    json_t *pin;
    json_array_foreach(json_object_get(run, "actions"), i, pin) {
        printf("action: %s -> %.12s  (%s)\n", json_string_value(json_object_get(pin, "uses")),
               json_string_value(json_object_get(pin, "sha")),
               json_string_value(json_object_get(pin, "url")));
    }
    printf("\n%-24s  %-11s  %9s  %-14s  %s\n", "JOB", "STATE", "DURATION", "WORKER", "ATTEMPTS");
    json_array_foreach(json_object_get(run, "jobs"), i, job) {
        char dur[32];
        const char *worker = json_string_value(json_object_get(job, "worker"));
        kiln_render_ms(json_object_get(job, "duration_ms"), dur, sizeof dur);
        printf("%-24s  %-11s  %9s  %-14s  %lld\n", json_string_value(json_object_get(job, "name")),
               json_string_value(json_object_get(job, "state")), dur, worker ? worker : "-",
               (long long)json_integer_value(json_object_get(job, "attempt")));
        const char *waiting = json_string_value(json_object_get(job, "waiting"));
        if (waiting)
            printf("    waiting: %s\n", waiting);
        json_t *attempts = json_object_get(job, "attempts");
        json_t *last = json_array_get(attempts, json_array_size(attempts) - 1);
        const char *placement = json_string_value(json_object_get(last, "placement"));
        if (placement && json_array_size(attempts) <= 1)
            printf("    placed: %s\n", placement);
        if (json_array_size(attempts) > 1) {
            json_array_foreach(attempts, k, at) {
                const char *msg = json_string_value(json_object_get(at, "message"));
                const char *pl = json_string_value(json_object_get(at, "placement"));
                printf("    attempt %lld on %s: %s%s%s%s%s\n",
                       (long long)json_integer_value(json_object_get(at, "attempt")),
                       json_string_value(json_object_get(at, "worker")),
                       json_string_value(json_object_get(at, "state")), msg ? " - " : "",
                       msg ? msg : "", pl ? "; placed: " : "", pl ? pl : "");
            }
        }
    }
}

void kiln_render_run(json_t *doc)
{
    kiln_render_run_jobs(doc);
    kiln_follow_print_extras(doc);
}

void kiln_render_workers(json_t *doc)
{
    size_t i, k;
    json_t *w, *l;
    printf("%-16s  %-10s  %-8s  %-40s  %s\n", "WORKER", "BUSY", "STATE", "KEY", "LABELS");
    json_array_foreach(doc, i, w) {
        char busy[32], labels[512] = "";
        size_t o = 0;
        snprintf(busy, sizeof busy, "%lld/%lld",
                 (long long)json_integer_value(json_object_get(w, "busy")),
                 (long long)json_integer_value(json_object_get(w, "slots")));
        json_array_foreach(json_object_get(w, "labels"), k, l) {
            int n = snprintf(labels + o, sizeof labels - o, "%s%s", k ? "," : "",
                             json_string_value(l));
            if (n < 0 || (size_t)n >= sizeof labels - o)
                break;
            o += (size_t)n;
        }
        const char *key = json_string_value(json_object_get(w, "public_key"));
        printf("%-16s  %-10s  %-8s  %-40s  %s\n", json_string_value(json_object_get(w, "name")),
               busy, json_is_true(json_object_get(w, "draining")) ? "draining" : "ready",
               key && key[0] ? key : "-", labels);
    }
}

void kiln_render_stats(json_t *doc)
{
    const char *key;
    json_t *v;
    json_object_foreach(doc, key, v) {
        if (json_is_object(v)) {
            const char *k2;
            json_t *v2;
            json_object_foreach(v, k2, v2) {
                char *t = json_dumps(v2, JSON_ENCODE_ANY);
                printf("%s.%s %s\n", key, k2, t ? t : "?");
                free(t);
            }
        } else {
            char *t = json_dumps(v, JSON_ENCODE_ANY);
            printf("%s %s\n", key, t ? t : "?");
            free(t);
        }
    }
}
