/* server.c: the coordinator's protocol state machine (see server.h).
 *
 * Reading order: the types (worker, run, job, watcher), then the loop
 * (kiln_server_run), then one handler per message kind. Handlers never
 * block on a peer: sends are non-blocking and a peer that cannot take a
 * message (gone, or its queue full) is treated as lost, not waited for.
 */
#include "coordinator/server.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "common/auth.h"
#include "common/buf.h"
#include "common/clock.h"
#include "lang/dag.h"
#include "common/error.h"
#include "lang/expr.h"
#include "coordinator/history.h"
#include "common/keys.h"
#include "common/log.h"
#include "lang/pipeline.h"
#include "coordinator/queue.h"
#include "coordinator/scheduler.h"
#include "common/transport.h"

#define KILN_JOB_KEY_MAX 160
#define KILN_LABELS_KEY_MAX 512
#define KILN_PEER_NAME_MAX 128
/* Malformed messages a peer may send before the server ignores it. */
#define KILN_PEER_STRIKES 20

typedef struct s_job s_job_t;
typedef struct s_run s_run_t;

typedef struct {
    unsigned char identity[KILN_IDENTITY_MAX];
    size_t id_len;
    char name[KILN_PEER_NAME_MAX];     /* from Hello */
    char key_name[KILN_PEER_NAME_MAX]; /* from the allow-list (ZAP user id) */
    char hostname[KILN_PEER_NAME_MAX];
    char version[32];
    char *labels[KILN_SERVER_MAX_LABELS];
    size_t n_labels;
    unsigned slots;
    unsigned cap;           /* slots + the assignments it queues (lookahead) */
    unsigned busy;          /* jobs held: running or queued */
    bool draining;
    bool undeliverable;     /* a send failed in this dispatch pass */
    int64_t drain_deadline_ms; /* wall; 0: none */
    uint64_t credit_owed;   /* log bytes processed, not yet credited back */
    int64_t connected_ms;   /* wall */
    int64_t last_seen;      /* monotonic */
    int fd;                 /* the connection its last message came on, or -1 */
    /* Its connection closed: unless it speaks again by this (monotonic)
     * time, it is lost. A process that dies is found in a heartbeat or two
     * this way, not after the whole lease. */
    int64_t suspect_deadline;
    s_job_t **jobs;         /* held here: `cap` entries, NULL = free */
    /* The batch's acknowledgements that ride with its next assignment:
     * first index in the server's acks (chained by ack_next), or -1. */
    int ack_head;
    bool assign_outgoing;   /* an assignment waits for the batch's commit */
} s_worker_t;

typedef struct {
    unsigned char identity[KILN_IDENTITY_MAX];
    size_t id_len;
    char job_filter[KILN_WF_MAX_ID + 1]; /* "" = all jobs */
    bool quiet;                     /* only the run's end */
} s_watcher_t;

struct s_job {
    s_run_t *run;
    size_t idx;                     /* into run->wf->jobs */
    /* In the run's names block (s_names_alloc): fixed buffers here made a
     * queued job cost a kilobyte. */
    char *key;                      /* "<run>/<job>" */
    char *labels;                   /* canonical label-set key */
    kiln_job_state_t state;
    unsigned attempt;
    uint64_t token;
    s_worker_t *worker;
    /* The lease holder by name: after a coordinator restart a running job has
     * no connected worker yet; it waits (an orphan lease) until the worker
     * re-introduces itself and re-adopts it, or orphan_deadline passes. */
    char worker_name[KILN_PEER_NAME_MAX];
    int64_t orphan_deadline;        /* monotonic; 0: not an orphan */
    int64_t started_ms;             /* wall, current attempt */
    unsigned infra_failures;        /* attempts lost to infrastructure */
    unsigned script_failures;       /* attempts whose script failed (retry policy) */
    uint64_t log_bytes;             /* output stored for the current attempt */
    /* 1 + the step whose start the current attempt last reported; 0 none.
     * A worker leaves out the start of a step that ends within its hold
     * (the result carries the start time): watchers still see it begin. */
    unsigned step_reported;
    bool log_truncated;
    bool in_ready;
    bool cancel_sent;
    char group[128];                /* job-level concurrency group, "" for none */
    int64_t rank;                   /* critical path from here to the run's end (ms) */
    /* A placement being leased in this dispatch pass. */
    uint64_t lease_token;
    int64_t lease_deadline;         /* wall */
    int64_t ready_seq;              /* when it became ready (FIFO order) */
};

struct s_run {
    int64_t id;
    /* What it was submitted with, kept to plan it again when a matrix is
     * computed at run time. */
    char *file;
    char *yaml;
    size_t yaml_len;
    json_t *actions;
    json_t *matrices;               /* job id -> matrix computed at run time */
    json_t *inputs;                 /* typed run inputs (object) */
    json_t *outputs;                /* job id -> outputs object */
    char actor[KILN_PEER_NAME_MAX];
    kiln_workflow_t *wf;
    kiln_dag_t *dag;
    s_job_t *jobs;
    int64_t created_ms;
    bool cancel_requested;
    bool held;                      /* waiting for its concurrency group */
    bool expand_pending;            /* a run-time matrix is ready to compute */
    char group[256];                /* concurrency group, "" for none */
    /* Its ready jobs, worst first: the scheduler takes from the end. */
    s_job_t **ready;
    size_t n_ready, cap_ready;
    size_t *by_id;                  /* job indexes sorted by id (s_job_find), or NULL */
    char *names;                    /* every job's key and labels */
    unsigned n_leased;              /* jobs running on a worker (fairness) */
    /* How long its jobs have been taking (moving average of the workers'
     * own timings, successful attempts), and over how many: whether its
     * workers should get their next job queued (s_prefetchable). */
    int64_t recent_ms;
    unsigned n_recent;
    uint64_t served_seq;            /* when it last had a job placed (fairness) */
    uint64_t blocked_pass;          /* dispatch pass that found none placeable */
    s_watcher_t watchers[KILN_SERVER_MAX_WATCHERS];
    size_t n_watchers;
};

#define KILN_SERVER_MAX_PENDING_ACKS 1024
/* Acknowledgements one assignment carries at most (the rest go alone). */
#define S_ACKS_PER_ASSIGN 64
#define S_REHELLO_SLOTS 256

typedef struct {
    unsigned char identity[KILN_IDENTITY_MAX];
    size_t id_len;
    char job_key[KILN_JOB_KEY_MAX];
    uint64_t token;
} s_pending_ack_t;

typedef struct {
    uint64_t dispatches;
    uint64_t retries_worker_lost;
    uint64_t retries_worker_drained;
    uint64_t retries_infra_error;
    uint64_t retries_failure;
    uint64_t lease_expiries;
    uint64_t stale_rejected;
    uint64_t duplicate_results;
    uint64_t garbage_dropped;
    uint64_t workers_lost;
    uint64_t runs_submitted;
    uint64_t runs_finished;
    uint64_t runs_recovered;
    uint64_t jobs_readopted;
    uint64_t logs_truncated;
    uint64_t redis_reconnects;
} s_stats_t;

struct kiln_server {
    kiln_server_config_t cfg;
    char *strings[8];               /* owned copies of cfg's strings */
    void *zctx;
    void *router;
    void *monitor;                  /* disconnect events of the router */
    int64_t next_tick;              /* monotonic: next timer run */
    kiln_auth_t *auth;
    kiln_queue_t *queue;
    kiln_history_t *history;
    int sigfd;
    bool stopping;
    int exit_code;
    s_worker_t **workers;
    size_t n_workers, cap_workers;
    /* Workers by routing id (open addressing, linear probing): every worker
     * message is looked up, and a thousand workers made a scan the hot spot. */
    s_worker_t **wtab;
    /* When an unknown routing id was last asked to say hello (by hash). */
    size_t rehello_hash[S_REHELLO_SLOTS];
    int64_t rehello_at[S_REHELLO_SLOTS];
    s_run_t **runs;
    size_t n_runs, cap_runs;
    size_t n_ready;                 /* over all runs */
    int64_t ready_seq;
    uint64_t dispatch_pass;
    uint64_t placements;
    kiln_scheduler_policy_t policy;
    char *universal[KILN_SERVER_MAX_LABELS];
    size_t n_universal;
    s_stats_t stats;
    json_t *vars;                   /* the farm's configuration variables (vars context) */
    bool redis_dirty;               /* Redis missed writes: reconcile on reconnect */
    bool expand_pending;            /* some run has a run-time matrix to compute */
    bool dispatch_pending;          /* dispatch at the end of this burst */
    /* One history transaction per burst of worker messages; results are
     * acknowledged after it commits. */
    bool in_batch;
    s_pending_ack_t acks[KILN_SERVER_MAX_PENDING_ACKS];
    int ack_next[KILN_SERVER_MAX_PENDING_ACKS];
    size_t n_acks;
    /* Jobs placed during the batch: their assignments go out after its
     * commit, each carrying its worker's acknowledgements. */
    s_job_t **outgoing;
    size_t n_outgoing, cap_outgoing;
    int64_t redis_retry_at;         /* monotonic */
    int64_t redis_backoff_ms;
};

void kiln_server_config_defaults(kiln_server_config_t *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->listen = KILN_SERVER_DEFAULT_LISTEN;
    cfg->universal_labels = KILN_SERVER_DEFAULT_LABELS;
    cfg->heartbeat_ms = KILN_SERVER_DEFAULT_HEARTBEAT_MS;
    cfg->lease_ms = KILN_SERVER_DEFAULT_LEASE_MS;
    cfg->max_attempts = KILN_SERVER_DEFAULT_MAX_ATTEMPTS;
    cfg->log_limit = KILN_SERVER_DEFAULT_LOG_LIMIT;
    cfg->log_window = KILN_SERVER_DEFAULT_LOG_WINDOW;
}

/* ---------------------------------------------------------------- labels */

/* Splits a comma list into lower-cased, trimmed, malloc'd labels. */
static size_t s_split_labels(const char *list, char **out, size_t max)
{
    size_t n = 0;
    const char *p = list ? list : "";
    while (*p && n < max) {
        while (*p == ',' || *p == ' ')
            p++;
        size_t len = strcspn(p, ",");
        while (len && p[len - 1] == ' ')
            len--;
        if (len) {
            char *l = strndup(p, len);
            if (!l)
                break;
            for (char *c = l; *c; c++)
                *c = (char)tolower((unsigned char)*c);
            out[n++] = l;
        }
        p += strcspn(p, ",");
    }
    return n;
}

static int s_strcmp_p(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The canonical key of a label set: sorted, lower-case, comma-joined. */
static void s_labels_key(const kiln_job_t *job, char *out, size_t cap)
{
    char *sorted[KILN_SERVER_MAX_LABELS];
    size_t n = job->n_runs_on < KILN_SERVER_MAX_LABELS ? job->n_runs_on : KILN_SERVER_MAX_LABELS;
    for (size_t i = 0; i < n; i++)
        sorted[i] = job->runs_on[i];
    qsort(sorted, n, sizeof *sorted, s_strcmp_p);
    size_t o = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n && o < cap; i++) {
        int w = snprintf(out + o, cap - o, "%s%s", i ? "," : "", sorted[i]);
        if (w < 0)
            break;
        o += (size_t)w;
    }
    for (char *c = out; *c; c++)
        *c = (char)tolower((unsigned char)*c);
}

/* One block for the keys and label sets of a workflow's jobs, sized before
 * the run has its number (20 digits are kept for it), so running out of
 * memory is found before anything is written. */
static char *s_names_alloc(const kiln_workflow_t *wf, size_t *size)
{
    char labels[KILN_LABELS_KEY_MAX];
    size_t total = 1;
    for (size_t i = 0; i < wf->n_jobs; i++) {
        s_labels_key(&wf->jobs[i], labels, sizeof labels);
        total += 20 + 1 + strlen(wf->jobs[i].id) + 1 + strlen(labels) + 1;
    }
    *size = total;
    return malloc(total);
}

static void s_names_fill(int64_t run_id, const kiln_workflow_t *wf, s_job_t *jobs, char *block,
                         size_t size)
{
    char *p = block, *end = block + size;
    for (size_t i = 0; i < wf->n_jobs; i++) {
        jobs[i].key = p;
        p += snprintf(p, (size_t)(end - p), "%lld/%s", (long long)run_id, wf->jobs[i].id) + 1;
        jobs[i].labels = p;
        s_labels_key(&wf->jobs[i], p, (size_t)(end - p));
        p += strlen(p) + 1;
    }
}

static bool s_worker_has_label(const kiln_server_t *self, const s_worker_t *w, const char *label)
{
    for (size_t i = 0; i < self->n_universal; i++)
        if (strcasecmp(self->universal[i], label) == 0)
            return true;
    for (size_t i = 0; i < w->n_labels; i++)
        if (strcasecmp(w->labels[i], label) == 0)
            return true;
    return false;
}

static bool s_worker_matches(const kiln_server_t *self, const s_worker_t *w, const kiln_job_t *job)
{
    for (size_t i = 0; i < job->n_runs_on; i++)
        if (!s_worker_has_label(self, w, job->runs_on[i]))
            return false;
    return true;
}

/* ------------------------------------------------------------- plumbing */

static int s_send(kiln_server_t *self, const unsigned char *id, size_t id_len,
                  Kiln__Envelope *env)
{
    int rc = kiln_transport_send(self->router, id, id_len, env);
    if (rc != 0) {
        char who[KILN_IDENTITY_MAX * 2 + 1];
        kiln_transport_identity_str(id, id_len, who, sizeof who);
        kiln_log_debug("send to %s failed: %s", who, kiln_error_last());
    }
    return rc;
}

/* Tells the worker running a job's current attempt to stop it; the job
 * ends when its result comes back. */
static void s_send_cancel(kiln_server_t *self, s_job_t *job)
{
    Kiln__Envelope env = KILN__ENVELOPE__INIT;
    Kiln__CancelJob c = KILN__CANCEL_JOB__INIT;
    c.job_key = job->key;
    c.token = job->token;
    env.body_case = KILN__ENVELOPE__BODY_CANCEL;
    env.cancel = &c;
    job->cancel_sent = true;
    s_send(self, job->worker->identity, job->worker->id_len, &env);
}

/* Answers a request; json (may be NULL) goes compact, or indented with
 * its "state" in Reply.state when the client asked for it pretty. */
static void s_reply_as(kiln_server_t *self, const kiln_transport_msg_t *msg, uint64_t request_id,
                       int code, const char *error, int64_t run_id, json_t *json, bool pretty)
{
    Kiln__Envelope env = KILN__ENVELOPE__INIT;
    Kiln__Reply reply = KILN__REPLY__INIT;
    char *text = NULL;
    reply.request_id = request_id;
    reply.code = code;
    reply.error = (char *)(error ? error : "");
    reply.run_id = (uint64_t)(run_id > 0 ? run_id : 0);
    if (json && pretty) {
        const char *state = json_string_value(json_object_get(json, "state"));
        reply.state = (char *)(state ? state : "");
    }
    if (json) {
        text = json_dumps(json, pretty ? JSON_INDENT(2) : JSON_COMPACT);
        reply.json.data = (uint8_t *)text;
        reply.json.len = text ? strlen(text) : 0;
    }
    env.body_case = KILN__ENVELOPE__BODY_REPLY;
    env.reply = &reply;
    s_send(self, msg->identity, msg->id_len, &env);
    free(text);
}

static void s_reply(kiln_server_t *self, const kiln_transport_msg_t *msg, uint64_t request_id,
                    int code, const char *error, int64_t run_id, json_t *json)
{
    s_reply_as(self, msg, request_id, code, error, run_id, json, false);
}

#define S_WTAB_SIZE 32768 /* a power of two, > 2 * KILN_SERVER_MAX_WORKERS */

static size_t s_wtab_slot(const unsigned char *id, size_t id_len)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (size_t i = 0; i < id_len; i++)
        h = (h ^ id[i]) * 1099511628211ULL;
    return (size_t)h & (S_WTAB_SIZE - 1);
}

static s_worker_t *s_worker_find(kiln_server_t *self, const unsigned char *id, size_t id_len)
{
    for (size_t i = s_wtab_slot(id, id_len);; i = (i + 1) & (S_WTAB_SIZE - 1)) {
        s_worker_t *w = self->wtab[i];
        if (!w)
            return NULL;
        if (w->id_len == id_len && memcmp(w->identity, id, id_len) == 0)
            return w;
    }
}

static void s_wtab_put(kiln_server_t *self, s_worker_t *w)
{
    size_t i = s_wtab_slot(w->identity, w->id_len);
    while (self->wtab[i])
        i = (i + 1) & (S_WTAB_SIZE - 1);
    self->wtab[i] = w;
}

/* Removal shifts later entries of the probe run back, so lookups never
 * need tombstones. */
static void s_wtab_del(kiln_server_t *self, const s_worker_t *w)
{
    size_t i = s_wtab_slot(w->identity, w->id_len);
    while (self->wtab[i] && self->wtab[i] != w)
        i = (i + 1) & (S_WTAB_SIZE - 1);
    if (!self->wtab[i])
        return;
    self->wtab[i] = NULL;
    for (size_t j = (i + 1) & (S_WTAB_SIZE - 1); self->wtab[j]; j = (j + 1) & (S_WTAB_SIZE - 1)) {
        s_worker_t *o = self->wtab[j];
        size_t home = s_wtab_slot(o->identity, o->id_len);
        /* o may move to the hole at i if i lies on its probe path home..j. */
        bool movable = (j > i) ? (home <= i || home > j) : (home <= i && home > j);
        if (movable) {
            self->wtab[i] = o;
            self->wtab[j] = NULL;
            i = j;
        }
    }
}

static s_run_t *s_run_find(kiln_server_t *self, int64_t id)
{
    for (size_t i = 0; i < self->n_runs; i++)
        if (self->runs[i]->id == id)
            return self->runs[i];
    return NULL;
}

/* Finds a job of an active run by its key "<run>/<job>". */
static s_job_t *s_job_find(kiln_server_t *self, const char *key)
{
    char *end = NULL;
    long long run_id = strtoll(key, &end, 10);
    if (!end || *end != '/')
        return NULL;
    s_run_t *run = s_run_find(self, run_id);
    if (!run)
        return NULL;
    if (!run->by_id) {
        long idx = kiln_pipeline_find_job(run->wf, end + 1);
        return idx < 0 ? NULL : &run->jobs[idx];
    }
    /* Every worker message names its job: a binary search, not a scan. */
    size_t lo = 0, hi = run->wf->n_jobs;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(run->wf->jobs[run->by_id[mid]].id, end + 1);
        if (c == 0)
            return &run->jobs[run->by_id[mid]];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* Whether ready job a should start before b. Ties go to workflow order, so
 * equal ranks keep the order users wrote. */
static bool s_ready_before(const kiln_server_t *self, const s_job_t *a, const s_job_t *b)
{
    if (self->policy == KILN_SCHEDULER_CRITICAL_PATH && a->rank != b->rank)
        return a->rank > b->rank;
    if (a->ready_seq != b->ready_seq)
        return a->ready_seq < b->ready_seq;
    return a->idx < b->idx;
}

/* Into its run's ready array, kept sorted worst first. A job handed back
 * (front) comes before everything that was ready when it was first queued,
 * for FIFO; under critical path its rank decides. */
static void s_ready_append(kiln_server_t *self, s_job_t *job, bool front)
{
    s_run_t *run = job->run;
    if (job->in_ready)
        return;
    if (run->n_ready == run->cap_ready) {
        size_t ncap = run->cap_ready ? run->cap_ready * 2 : 16;
        s_job_t **grown = realloc(run->ready, ncap * sizeof *grown);
        if (!grown) {
            /* Stays READY in the DAG and Redis; reconcile finds it. */
            kiln_log_error("job %s: out of memory for the ready queue", job->key);
            self->redis_dirty = true;
            return;
        }
        run->ready = grown;
        run->cap_ready = ncap;
    }
    job->ready_seq = front ? -(++self->ready_seq) : ++self->ready_seq;
    size_t lo = 0, hi = run->n_ready;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s_ready_before(self, run->ready[mid], job))
            hi = mid;
        else
            lo = mid + 1;
    }
    memmove(&run->ready[lo + 1], &run->ready[lo], (run->n_ready - lo) * sizeof *run->ready);
    run->ready[lo] = job;
    run->n_ready++;
    job->in_ready = true;
    self->n_ready++;
}

static void s_ready_remove(kiln_server_t *self, s_job_t *job)
{
    s_run_t *run = job->run;
    if (!job->in_ready)
        return;
    /* Most removals are the best job, at the end. */
    for (size_t i = run->n_ready; i-- > 0;) {
        if (run->ready[i] == job) {
            memmove(&run->ready[i], &run->ready[i + 1],
                    (run->n_ready - i - 1) * sizeof *run->ready);
            run->n_ready--;
            break;
        }
    }
    job->in_ready = false;
    self->n_ready--;
}

/* ------------------------------------------------------------- watchers */

static void s_watcher_add(s_run_t *run, const kiln_transport_msg_t *msg, const char *job_filter,
                          bool quiet)
{
    for (size_t i = 0; i < run->n_watchers; i++)
        if (run->watchers[i].id_len == msg->id_len &&
            memcmp(run->watchers[i].identity, msg->identity, msg->id_len) == 0)
            return;
    if (run->n_watchers >= KILN_SERVER_MAX_WATCHERS) {
        kiln_log_warn("run %lld: watcher limit (%d) reached", (long long)run->id,
                      KILN_SERVER_MAX_WATCHERS);
        return;
    }
    s_watcher_t *w = &run->watchers[run->n_watchers++];
    memcpy(w->identity, msg->identity, msg->id_len);
    w->id_len = msg->id_len;
    snprintf(w->job_filter, sizeof w->job_filter, "%s", job_filter ? job_filter : "");
    w->quiet = quiet;
}

/* Whether some watcher wants more than the run's end. */
static bool s_any_loud(const s_run_t *run)
{
    for (size_t i = 0; i < run->n_watchers; i++)
        if (!run->watchers[i].quiet)
            return true;
    return false;
}

/* Sends an event to every watcher of the run; a watcher that cannot take it
 * (gone, or so slow its queue is full) is dropped rather than waited for. */
static void s_emit(kiln_server_t *self, s_run_t *run, Kiln__RunEvent *ev)
{
    Kiln__Envelope env = KILN__ENVELOPE__INIT;
    env.body_case = KILN__ENVELOPE__BODY_EVENT;
    env.event = ev;
    ev->run_id = (uint64_t)run->id;
    if (!ev->ts_ms)
        ev->ts_ms = (uint64_t)kiln_clock_wall_ms();
    for (size_t i = 0; i < run->n_watchers;) {
        s_watcher_t *w = &run->watchers[i];
        bool end = ev->kind == KILN__EVENT_KIND__EVENT_RUN_FINISHED ||
                   ev->kind == KILN__EVENT_KIND__EVENT_END;
        bool wanted = end || (!w->quiet && (!w->job_filter[0] ||
                                            strcmp(w->job_filter, ev->job_id) == 0));
        if (wanted && s_send(self, w->identity, w->id_len, &env) != 0) {
            run->watchers[i] = run->watchers[--run->n_watchers];
            continue;
        }
        i++;
    }
}

static void s_emit_job(kiln_server_t *self, s_job_t *job, Kiln__EventKind kind,
                       int64_t duration_ms)
{
    Kiln__RunEvent ev = KILN__RUN_EVENT__INIT;
    const kiln_job_t *spec = &job->run->wf->jobs[job->idx];
    if (!s_any_loud(job->run))
        return;
    ev.kind = kind;
    ev.job_id = spec->id;
    ev.job_name = spec->name;
    ev.state = (char *)kiln_job_state_name(job->state);
    ev.attempt = job->attempt;
    ev.worker = job->worker ? job->worker->name : (char *)"";
    ev.duration_ms = duration_ms > 0 ? (uint64_t)duration_ms : 0;
    s_emit(self, job->run, &ev);
}

/* ----------------------------------------------------------- run life */

static void s_run_free(s_run_t **run_p)
{
    s_run_t *run = *run_p;
    if (!run)
        return;
    kiln_dag_destroy(&run->dag);
    kiln_pipeline_destroy(&run->wf);
    free(run->file);
    free(run->yaml);
    json_decref(run->actions);
    json_decref(run->matrices);
    json_decref(run->inputs);
    json_decref(run->outputs);
    free(run->ready);
    free(run->by_id);
    free(run->names);
    free(run->jobs);
    free(run);
    *run_p = NULL;
}

static void s_concurrency_release(kiln_server_t *self, const char *group);
static bool s_concurrency_admit(kiln_server_t *self, s_run_t *run);

static void s_run_remove(kiln_server_t *self, s_run_t *run)
{
    for (size_t i = 0; i < self->n_runs; i++) {
        if (self->runs[i] == run) {
            self->runs[i] = self->runs[--self->n_runs];
            break;
        }
    }
    const char *keys[KILN_WF_MAX_JOBS];
    size_t n = 0;
    for (size_t i = 0; i < run->wf->n_jobs && n < KILN_WF_MAX_JOBS; i++) {
        s_job_t *job = &run->jobs[i];
        s_ready_remove(self, job);
        keys[n++] = job->key;
    }
    if (kiln_queue_forget(self->queue, keys, n) != 0)
        kiln_log_warn("run %lld: %s", (long long)run->id, kiln_error_last());
    char group[sizeof run->group];
    snprintf(group, sizeof group, "%s", run->group);
    s_run_free(&run);
    s_concurrency_release(self, group);
}

static void s_run_check_done(kiln_server_t *self, s_run_t *run)
{
    if (!kiln_dag_done(run->dag))
        return;
    /* A run whose jobs only failed by being cancelled (by a user, a
     * concurrency group or fail-fast alone) is cancelled, not failed. */
    bool failed = false, cancelled = false;
    for (size_t i = 0; i < run->wf->n_jobs; i++) {
        kiln_job_state_t st = run->jobs[i].state;
        if ((st == KILN_JOB_FAILURE || st == KILN_JOB_TIMED_OUT || st == KILN_JOB_INFRA_ERROR) &&
            !run->wf->jobs[i].continue_on_error)
            failed = true;
        cancelled = cancelled || st == KILN_JOB_CANCELLED;
    }
    const char *state = run->cancel_requested       ? "cancelled"
                        : failed                      ? "failure"
                        : cancelled                   ? "cancelled"
                        : kiln_dag_failed(run->dag)   ? "failure"
                                                      : "success";
    int64_t now = kiln_clock_wall_ms();
    if (kiln_history_run_set_state(self->history, run->id, state, now) != 0)
        kiln_log_error("history: %s", kiln_error_last());
    kiln_log_info("run %lld finished: %s", (long long)run->id, state);
    self->stats.runs_finished++;
    Kiln__RunEvent ev = KILN__RUN_EVENT__INIT;
    ev.kind = KILN__EVENT_KIND__EVENT_RUN_FINISHED;
    ev.state = (char *)state;
    ev.duration_ms = (uint64_t)(now - run->created_ms);
    s_emit(self, run, &ev);
    s_run_remove(self, run);
}

/* ---------------------------------------------------------- expressions */

/* What needs.<id>.result says of a job, or of a matrix job's combinations
 * together: failure if any failed, else cancelled, else skipped if all were,
 * else success. */
static const char *s_need_result(const s_run_t *run, const char *id)
{
    bool any = false, failed = false, cancelled = false, all_skipped = true;
    for (size_t i = 0; i < run->wf->n_jobs; i++) {
        const kiln_job_t *j = &run->wf->jobs[i];
        if (strcmp(j->id, id) != 0 && !(j->origin && strcmp(j->origin, id) == 0))
            continue;
        any = true;
        kiln_job_state_t st = run->jobs[i].state;
        if ((st == KILN_JOB_FAILURE || st == KILN_JOB_TIMED_OUT || st == KILN_JOB_INFRA_ERROR) &&
            !j->continue_on_error)
            failed = true;
        if (st == KILN_JOB_CANCELLED)
            cancelled = true;
        if (st != KILN_JOB_SKIPPED)
            all_skipped = false;
    }
    return !any ? "" : failed ? "failure" : cancelled ? "cancelled" : all_skipped ? "skipped"
                                                                                  : "success";
}

/* The vars context rides in every job's contexts, so the file is bounded
 * well below one wire message; a larger file is an operator mistake worth
 * refusing at start-up rather than a dispatch that fails later. */
static int s_load_vars(kiln_server_t *self, const char *path)
{
    int rc = KILN_EINVAL;
    json_error_t jerr;
    struct stat st;
    FILE *f = fopen(path, "r");
    if (!f) {
        kiln_error_errno("coordinator: vars file %s", path);
        goto cleanup;
    }
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        kiln_error_set("coordinator: vars file %s is not a regular file", path);
        goto cleanup;
    }
    if (st.st_size > KILN_SERVER_VARS_FILE_MAX) {
        kiln_error_set("coordinator: vars file %s is %lld bytes, more than %d", path,
                       (long long)st.st_size, KILN_SERVER_VARS_FILE_MAX);
        goto cleanup;
    }
    self->vars = json_loadf(f, 0, &jerr);
    if (!self->vars) {
        kiln_error_set("coordinator: %s:%d: %s", path, jerr.line, jerr.text);
        goto cleanup;
    }
    if (!json_is_object(self->vars)) {
        kiln_error_set("coordinator: %s: vars must be a JSON object", path);
        goto cleanup;
    }
    rc = 0;
cleanup:
    if (f)
        fclose(f);
    return rc;
}

/* The contexts a job's expressions see: github, inputs, vars, matrix,
 * strategy, needs (results and outputs of its direct needs, a matrix job's
 * combinations merged under its own id), job, secrets. */
/* The needs context: each job needed (a matrix by its origin), with its
 * result and outputs. */
static json_t *s_needs_json(const s_run_t *run, const kiln_job_t *spec)
{
    json_t *needs = json_object();
    for (size_t k = 0; needs && k < spec->n_needs; k++) {
        const kiln_job_t *n = &run->wf->jobs[spec->need_idx[k]];
        const char *key = n->origin ? n->origin : n->id;
        json_t *entry = json_object_get(needs, key);
        if (!entry) {
            entry = json_pack("{s:s, s:o}", "result", s_need_result(run, key), "outputs",
                              json_object());
            json_object_set_new(needs, key, entry);
        }
        json_t *outs = json_object_get(run->outputs, n->id);
        if (outs)
            json_object_update(json_object_get(entry, "outputs"), outs);
    }
    return needs;
}

static json_t *s_contexts(kiln_server_t *self, const s_run_t *run, const kiln_job_t *spec,
                          unsigned attempt)
{
    char num[32], at[16];
    snprintf(num, sizeof num, "%lld", (long long)run->id);
    snprintf(at, sizeof at, "%u", attempt ? attempt : 1);
    json_t *needs = s_needs_json(run, spec);
    json_t *ctx = json_pack(
        "{s:{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}, s:O, s:O, s:O, s:{s:b, s:I, s:I, s:I},"
        " s:o, s:{s:s}, s:{}}",
        "github", "run_id", num, "run_number", num, "run_attempt", at, "job",
        spec->origin ? spec->origin : spec->id, "workflow", run->wf->name, "event_name",
        json_object_size(run->inputs) ? "workflow_dispatch" : "push", "actor", run->actor,
        "repository", "", "ref", "", "sha", "", "inputs", run->inputs ? run->inputs : json_null(),
        "vars", self->vars ? self->vars : json_null(), "matrix",
        spec->matrix_combo ? spec->matrix_combo : json_null(), "strategy", "fail-fast",
        spec->fail_fast, "max-parallel",
        (json_int_t)(spec->max_parallel ? spec->max_parallel : spec->matrix_total),
        "job-index", (json_int_t)spec->matrix_index, "job-total",
        (json_int_t)(spec->matrix_total ? spec->matrix_total : 1), "needs", needs, "job",
        "status", "success", "secrets");
    return ctx;
}

/* A value in the contexts text: null and {} without a dump. */
static void s_text_json(kiln_buf_t *t, const json_t *v)
{
    if (!v || json_is_null(v) || (json_is_object(v) && json_object_size(v) == 0)) {
        kiln_buf_str(t, !v || json_is_null(v) ? "null" : "{}");
        return;
    }
    char *d = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!d)
        t->oom = true;
    else
        kiln_buf_str(t, d);
    free(d);
}

static void s_text_str(kiln_buf_t *t, const char *s)
{
    kiln_buf_json_string(t, s, strlen(s));
}

/* The same document as s_contexts, written as text for the job message:
 * building it as a jansson tree and dumping it was a large share of the
 * coordinator's work per job. */
static char *s_contexts_text(kiln_server_t *self, const s_run_t *run, const kiln_job_t *spec,
                             unsigned attempt)
{
    kiln_buf_t t = {.max = KILN_MSG_MAX};
    char num[32], at[16], n1[32], n2[32], n3[32];
    snprintf(num, sizeof num, "%lld", (long long)run->id);
    snprintf(at, sizeof at, "%u", attempt ? attempt : 1);
    snprintf(n1, sizeof n1, "%zu",
             spec->max_parallel ? (size_t)spec->max_parallel : spec->matrix_total);
    snprintf(n2, sizeof n2, "%zu", spec->matrix_index);
    snprintf(n3, sizeof n3, "%zu", spec->matrix_total ? spec->matrix_total : (size_t)1);
    kiln_buf_str(&t, "{\"github\":{\"run_id\":");
    s_text_str(&t, num);
    kiln_buf_str(&t, ",\"run_number\":");
    s_text_str(&t, num);
    kiln_buf_str(&t, ",\"run_attempt\":");
    s_text_str(&t, at);
    kiln_buf_str(&t, ",\"job\":");
    s_text_str(&t, spec->origin ? spec->origin : spec->id);
    kiln_buf_str(&t, ",\"workflow\":");
    s_text_str(&t, run->wf->name);
    kiln_buf_str(&t, ",\"event_name\":");
    kiln_buf_str(&t, json_object_size(run->inputs) ? "\"workflow_dispatch\"" : "\"push\"");
    kiln_buf_str(&t, ",\"actor\":");
    s_text_str(&t, run->actor);
    kiln_buf_str(&t, ",\"repository\":\"\",\"ref\":\"\",\"sha\":\"\"},\"inputs\":");
    s_text_json(&t, run->inputs);
    kiln_buf_str(&t, ",\"vars\":");
    s_text_json(&t, self->vars);
    kiln_buf_str(&t, ",\"matrix\":");
    s_text_json(&t, spec->matrix_combo);
    kiln_buf_str(&t, ",\"strategy\":{\"fail-fast\":");
    kiln_buf_str(&t, spec->fail_fast ? "true" : "false");
    kiln_buf_str(&t, ",\"max-parallel\":");
    kiln_buf_str(&t, n1);
    kiln_buf_str(&t, ",\"job-index\":");
    kiln_buf_str(&t, n2);
    kiln_buf_str(&t, ",\"job-total\":");
    kiln_buf_str(&t, n3);
    kiln_buf_str(&t, "},\"needs\":");
    if (spec->n_needs) {
        json_t *needs = s_needs_json(run, spec);
        s_text_json(&t, needs);
        json_decref(needs);
    } else {
        kiln_buf_str(&t, "{}");
    }
    kiln_buf_str(&t, ",\"job\":{\"status\":\"success\"},\"secrets\":{}}");
    if (kiln_buf_failed(&t)) {
        free(t.data);
        return NULL;
    }
    return t.data;
}

/* failure() at job level: an ancestor failed; cancelled(): the run was. */
static kiln_expr_status_t s_job_status(const s_run_t *run, size_t idx)
{
    if (run->cancel_requested)
        return KILN_EXPR_CANCELLED;
    size_t stack[KILN_WF_MAX_JOBS], n = 0;
    bool seen[KILN_WF_MAX_JOBS] = {false};
    stack[n++] = idx;
    while (n) {
        const kiln_job_t *j = &run->wf->jobs[stack[--n]];
        for (size_t k = 0; k < j->n_needs; k++) {
            size_t d = j->need_idx[k];
            if (seen[d])
                continue;
            seen[d] = true;
            kiln_job_state_t st = run->jobs[d].state;
            if ((st == KILN_JOB_FAILURE || st == KILN_JOB_TIMED_OUT ||
                 st == KILN_JOB_INFRA_ERROR) &&
                !run->wf->jobs[d].continue_on_error)
                return KILN_EXPR_FAILURE;
            stack[n++] = d;
        }
    }
    return KILN_EXPR_SUCCESS;
}

/* Evaluates ${{ }} in a job's name and runs-on once the run's inputs are
 * known (matrix values, inputs, vars). An error is returned for the
 * submitter, naming the job. */
/* Whether planning has anything to evaluate in a job: most jobs have no
 * ${{ }} in the fields settled at plan time, and building their contexts
 * would be most of a large run's submission cost. */
static bool s_needs_planning(const kiln_job_t *spec)
{
    if ((spec->name && strstr(spec->name, "${{")) || spec->continue_on_error_expr ||
        spec->concurrency_group)
        return true;
    for (size_t k = 0; k < spec->n_steps; k++)
        if (spec->steps[k].name && strstr(spec->steps[k].name, "${{"))
            return true;
    for (size_t k = 0; k < spec->n_runs_on; k++)
        if (strstr(spec->runs_on[k], "${{"))
            return true;
    return false;
}

static int s_plan_run(kiln_server_t *self, s_run_t *run)
{
    char err[512];
    for (size_t i = 0; i < run->wf->n_jobs; i++) {
        kiln_job_t *spec = &run->wf->jobs[i];
        if (spec->if_expr && kiln_expr_condition_has_status_call(spec->if_expr))
            kiln_dag_set_decides(run->dag, i, true);
        if (!s_needs_planning(spec))
            continue;
        json_t *ctx = s_contexts(self, run, spec, 1);
        kiln_expr_env_t env = {ctx, KILN_EXPR_SUCCESS, NULL};
        char *text = NULL;
        if (spec->name && strstr(spec->name, "${{")) {
            if (kiln_expr_interpolate(spec->name, &env, &text, err, sizeof err) != 0) {
                kiln_error_set("job '%s': name: %s", spec->id, err);
                json_decref(ctx);
                return KILN_EINVAL;
            }
            free(spec->name);
            spec->name = text;
        }
        if (spec->continue_on_error_expr) {
            if (kiln_expr_interpolate(spec->continue_on_error_expr, &env, &text, err,
                                      sizeof err) != 0) {
                kiln_error_set("job '%s': continue-on-error: %s", spec->id, err);
                json_decref(ctx);
                return KILN_EINVAL;
            }
            /* GitHub reads the result as a boolean: "true" or "false". */
            spec->continue_on_error = strcmp(text, "true") == 0;
            free(text);
        }
        /* Step names shown while the run goes: ${{ matrix.* }}, inputs, ... */
        for (size_t k = 0; k < spec->n_steps; k++) {
            kiln_step_t *st = &spec->steps[k];
            if (!st->name || !strstr(st->name, "${{"))
                continue;
            if (kiln_expr_interpolate(st->name, &env, &text, err, sizeof err) == 0) {
                free(st->name);
                st->name = text;
            }
        }
        if (spec->concurrency_group) {
            if (kiln_expr_interpolate(spec->concurrency_group, &env, &text, err, sizeof err) !=
                0) {
                kiln_error_set("job '%s': concurrency: %s", spec->id, err);
                json_decref(ctx);
                return KILN_EINVAL;
            }
            snprintf(run->jobs[i].group, sizeof run->jobs[i].group, "%s", text);
            free(text);
        }
        for (size_t k = 0; k < spec->n_runs_on; k++) {
            if (!strstr(spec->runs_on[k], "${{"))
                continue;
            if (kiln_expr_interpolate(spec->runs_on[k], &env, &text, err, sizeof err) != 0) {
                kiln_error_set("job '%s': runs-on: %s", spec->id, err);
                json_decref(ctx);
                return KILN_EINVAL;
            }
            free(spec->runs_on[k]);
            spec->runs_on[k] = text;
        }
        json_decref(ctx);
    }
    if (run->wf->concurrency_group) {
        json_t *ctx = json_pack("{s:{s:s, s:s}, s:O, s:O}", "github", "workflow", run->wf->name,
                                "event_name",
                                json_object_size(run->inputs) ? "workflow_dispatch" : "push",
                                "inputs", run->inputs ? run->inputs : json_null(), "vars",
                                self->vars ? self->vars : json_null());
        kiln_expr_env_t env = {ctx, KILN_EXPR_SUCCESS, NULL};
        char *group = NULL;
        int rc = kiln_expr_interpolate(run->wf->concurrency_group, &env, &group, err, sizeof err);
        json_decref(ctx);
        if (rc != 0) {
            kiln_error_set("concurrency: %s", err);
            return KILN_EINVAL;
        }
        snprintf(run->group, sizeof run->group, "%s", group);
        free(group);
    }
    return 0;
}

static void s_job_final(kiln_server_t *self, s_job_t *job, kiln_job_state_t state,
                        int64_t finished_ms);

/* ------------------------------------------------------------- ranking */

/* Duration history is keyed by workflow name and job id. */
static const char *s_workflow_key(const s_run_t *run)
{
    return run->wf->name ? run->wf->name : run->file;
}

typedef struct {
    const kiln_workflow_t *wf;
    const size_t *by_id;            /* job indexes sorted by id */
    int64_t *est;
} s_estimates_t;

static int s_cmp_job_id(const void *a, const void *b, void *wf_p)
{
    const kiln_workflow_t *wf = wf_p;
    return strcmp(wf->jobs[*(const size_t *)a].id, wf->jobs[*(const size_t *)b].id);
}

static int s_on_estimate(void *ctx, const char *job_id, int64_t estimate_ms, unsigned samples)
{
    s_estimates_t *e = ctx;
    (void)samples;
    size_t lo = 0, hi = e->wf->n_jobs;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(e->wf->jobs[e->by_id[mid]].id, job_id);
        if (c == 0) {
            e->est[e->by_id[mid]] = estimate_ms < 0 ? 0 : estimate_ms;
            break;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return 0;
}

/* Ranks every job of a run by its critical path (scheduler.h), from the
 * workflow's duration history. Without memory every rank stays 0 and the
 * order falls back to FIFO: a slower schedule, not a wrong one. */
static void s_rank_run(kiln_server_t *self, s_run_t *run)
{
    size_t n = run->wf->n_jobs;
    size_t *by_id = malloc((n ? n : 1) * sizeof *by_id);
    s_estimates_t e = {run->wf, by_id, malloc((n ? n : 1) * sizeof(int64_t))};
    int64_t *rank = malloc((n ? n : 1) * sizeof *rank);
    free(run->by_id);
    run->by_id = NULL;
    if (!by_id || !e.est || !rank)
        goto cleanup;
    for (size_t i = 0; i < n; i++) {
        by_id[i] = i;
        e.est[i] = -1;
    }
    qsort_r(by_id, n, sizeof *by_id, s_cmp_job_id, run->wf);
    run->by_id = by_id;
    by_id = NULL;
    if (kiln_history_durations(self->history, s_workflow_key(run), s_on_estimate, &e) != 0)
        kiln_log_warn("run %lld: no duration history: %s", (long long)run->id,
                      kiln_error_last());
    kiln_scheduler_fill_estimates(e.est, n);
    kiln_scheduler_ranks(run->wf, e.est, rank);
    for (size_t i = 0; i < n; i++)
        run->jobs[i].rank = rank[i];
cleanup:
    free(by_id);
    free(e.est);
    free(rank);
}

/* A matrix computed at run time: its expression is evaluated now that the
 * job's needs are done, the run's workflow is parsed again with it (the job
 * becomes one job per combination), and every job's state carries over by
 * id: the ready list, the workers' slots and the DAG point at the new jobs.
 * On an error the job fails with the reason in its log. */
static int s_expand_runtime_matrix(kiln_server_t *self, s_run_t *run, s_job_t *job)
{
    const kiln_job_t *spec = &run->wf->jobs[job->idx];
    char err[512], *inner = NULL;
    int64_t now = kiln_clock_wall_ms();
    json_t *value = NULL, *ctx = s_contexts(self, run, spec, 1);
    kiln_workflow_t *wf2 = NULL;
    kiln_dag_t *dag2 = NULL;
    s_job_t *jobs2 = NULL;
    char *names2 = NULL;
    kiln_diags_t diags;
    int rc = -1;
    kiln_diags_init(&diags, run->file);
    /* strategy.matrix: ${{ expr }} -> the value of expr. */
    const char *open = strstr(spec->matrix_expr, "${{");
    const char *close = open ? strstr(open, "}}") : NULL;
    if (!close) {
        snprintf(err, sizeof err, "strategy.matrix: not an expression");
        goto fail;
    }
    inner = strndup(open + 3, (size_t)(close - open - 3));
    kiln_expr_env_t env = {ctx, KILN_EXPR_SUCCESS, NULL};
    if (!inner || kiln_expr_eval(inner, &env, &value, err, sizeof err) != 0)
        goto fail;
    if (json_is_string(value)) {
        json_t *parsed = json_loads(json_string_value(value), 0, NULL);
        json_decref(value);
        value = parsed;
    }
    if (!json_is_object(value)) {
        snprintf(err, sizeof err, "strategy.matrix: the expression must give an object");
        goto fail;
    }
    json_object_set(run->matrices, spec->id, value);
    if (kiln_pipeline_parse_planned(&wf2, run->file, run->yaml, run->yaml_len, run->actions,
                                    run->matrices, &diags) != 0) {
        json_object_del(run->matrices, spec->id);
        snprintf(err, sizeof err, "%s", kiln_error_last());
        goto fail;
    }
    size_t names_size = 0;
    jobs2 = calloc(wf2->n_jobs, sizeof *jobs2);
    dag2 = kiln_dag_new(wf2);
    names2 = s_names_alloc(wf2, &names_size);
    if (!jobs2 || !dag2 || !names2) {
        json_object_del(run->matrices, spec->id);
        snprintf(err, sizeof err, "coordinator out of memory");
        goto fail;
    }
    /* Old jobs leave the ready list; their states go to the new ones. */
    for (size_t i = 0; i < run->wf->n_jobs; i++)
        s_ready_remove(self, &run->jobs[i]);
    bool was_ready[KILN_WF_MAX_JOBS] = {false};
    for (size_t i = 0; i < wf2->n_jobs; i++) {
        long old = kiln_pipeline_find_job(run->wf, wf2->jobs[i].id);
        s_job_t *n = &jobs2[i];
        if (old >= 0) {
            *n = run->jobs[old];
            was_ready[i] = n->state == KILN_JOB_READY;
            for (size_t w = 0; w < self->n_workers; w++)
                for (unsigned k = 0; k < self->workers[w]->cap; k++)
                    if (self->workers[w]->jobs[k] == &run->jobs[old])
                        self->workers[w]->jobs[k] = n;
        }
        n->run = run;
        n->idx = i;
        n->in_ready = false;
        if (old < 0)
            kiln_history_job_create(self->history, run->id, wf2->jobs[i].id, wf2->jobs[i].name,
                                    (const char *const *)wf2->jobs[i].needs, wf2->jobs[i].n_needs,
                                    (const char *const *)wf2->jobs[i].runs_on,
                                    wf2->jobs[i].n_runs_on);
    }
    s_names_fill(run->id, wf2, jobs2, names2, names_size);
    kiln_history_run_matrices(self->history, run->id, run->matrices);
    /* The DAG replays what happened, in dependency order. */
    kiln_workflow_t *old_wf = run->wf;
    kiln_dag_t *old_dag = run->dag;
    s_job_t *old_jobs = run->jobs;
    char *old_names = run->names;
    run->names = names2;
    names2 = NULL;
    run->wf = wf2;
    run->dag = dag2;
    run->jobs = jobs2;
    wf2 = NULL;
    dag2 = NULL;
    jobs2 = NULL;
    s_plan_run(self, run);
    s_rank_run(self, run);
    for (size_t t = 0; t < run->wf->n_jobs; t++) {
        size_t i = run->wf->topo[t];
        kiln_job_state_t st = run->jobs[i].state;
        size_t skipped[KILN_WF_MAX_JOBS], n_skipped = 0;
        if (kiln_job_state_is_final(st)) {
            if (kiln_dag_state(run->dag, i) == KILN_JOB_READY) {
                kiln_dag_start(run->dag, i);
                kiln_dag_finish(run->dag, i, st, skipped, KILN_WF_MAX_JOBS, &n_skipped);
            }
        } else if (st == KILN_JOB_RUNNING && kiln_dag_state(run->dag, i) == KILN_JOB_READY) {
            kiln_dag_start(run->dag, i);
        }
    }
    /* Jobs that were ready stay so (the DAG reports them again; their
     * condition was met already and Redis has them). */
    for (size_t i = 0; i < run->wf->n_jobs; i++)
        if (was_ready[i])
            s_ready_append(self, &run->jobs[i], false);
    kiln_log_info("run %lld: job '%s' expanded into %zu jobs at run time", (long long)run->id,
                  spec == NULL ? "?" : old_wf->jobs[job->idx].id,
                  run->wf->n_jobs - old_wf->n_jobs + 1);
    kiln_pipeline_destroy(&old_wf);
    kiln_dag_destroy(&old_dag);
    free(old_jobs);
    free(old_names);
    rc = 0;
    goto cleanup;
fail: {
    char line[700];
    int n = snprintf(line, sizeof line, "[kiln: %s]\n", err);
    kiln_history_job_create(self->history, run->id, spec->id, spec->name,
                            (const char *const *)spec->needs, spec->n_needs,
                            (const char *const *)spec->runs_on, spec->n_runs_on);
    kiln_history_log_append(self->history, run->id, spec->id, 0, 0, 2, line, (size_t)n, now);
    kiln_log_info("job %s: %s", job->key, err);
    s_job_final(self, job, KILN_JOB_FAILURE, now);
}
cleanup:
    free(inner);
    json_decref(value);
    json_decref(ctx);
    kiln_pipeline_destroy(&wf2);
    kiln_dag_destroy(&dag2);
    free(jobs2);
    free(names2);
    kiln_diags_free(&diags);
    return rc;
}

static void s_dispatch(kiln_server_t *self);
static void s_enqueue_ready(kiln_server_t *self, s_run_t *run);

/* Computes the run-time matrices whose jobs became ready. Called only where
 * no job pointer is held (between messages, after a timer, after recovery). */
static void s_expand_pending(kiln_server_t *self)
{
    while (self->expand_pending) {
        self->expand_pending = false;
        int64_t ids[KILN_SERVER_MAX_RUNS];
        size_t n = 0;
        for (size_t r = 0; r < self->n_runs; r++)
            if (self->runs[r]->expand_pending)
                ids[n++] = self->runs[r]->id;
        for (size_t k = 0; k < n; k++) {
            s_run_t *run = s_run_find(self, ids[k]);
            if (!run)
                continue;
            run->expand_pending = false;
            for (size_t i = 0; i < run->wf->n_jobs; i++) {
                if (!run->wf->jobs[i].matrix_expr ||
                    kiln_dag_state(run->dag, i) != KILN_JOB_READY)
                    continue;
                if (s_expand_runtime_matrix(self, run, &run->jobs[i]) == 0) {
                    s_enqueue_ready(self, run);
                    /* Another placeholder of this run, if any, comes next
                     * time round (the run's jobs are new). */
                    run->expand_pending = self->expand_pending = true;
                }
                break; /* the run may have ended, or changed */
            }
        }
    }
    s_dispatch(self);
}

/* A ready job's if: decides whether it runs. Returns true to run it; false
 * when it was finished here (skipped, or failed on an expression error). */
static bool s_job_condition(kiln_server_t *self, s_job_t *job)
{
    s_run_t *run = job->run;
    const kiln_job_t *spec = &run->wf->jobs[job->idx];
    if (!spec->if_expr)
        return true;
    char err[512];
    bool ok = false;
    json_t *ctx = s_contexts(self, run, spec, 1);
    kiln_expr_env_t env = {ctx, s_job_status(run, job->idx), NULL};
    int rc = kiln_expr_condition(spec->if_expr, &env, &ok, err, sizeof err);
    json_decref(ctx);
    int64_t now = kiln_clock_wall_ms();
    if (rc != 0) {
        char line[700];
        int n = snprintf(line, sizeof line, "[kiln: job if: %s]\n", err);
        kiln_history_log_append(self->history, run->id, spec->id, 0, 0, 2, line, (size_t)n, now);
        kiln_log_info("job %s: if: %s", job->key, err);
        s_job_final(self, job, KILN_JOB_FAILURE, now);
        return false;
    }
    if (!ok) {
        s_job_final(self, job, KILN_JOB_SKIPPED, now);
        return false;
    }
    return true;
}

/* Job-level concurrency, farm-wide: a job entering its group supersedes
 * the one waiting there, and with cancel-in-progress stops the one
 * running. Dispatch holds a job while another of its group runs. */
static void s_run_check_done(kiln_server_t *self, s_run_t *run);

static void s_job_concurrency(kiln_server_t *self, s_job_t *job)
{
    bool cancel_running = job->run->wf->jobs[job->idx].cancel_in_progress;
    int64_t now = kiln_clock_wall_ms();
    int64_t touched[64];
    size_t n_touched = 0;
    for (size_t r = 0; r < self->n_runs; r++) {
        s_run_t *run = self->runs[r];
        for (size_t i = 0; i < run->wf->n_jobs; i++) {
            s_job_t *o = &run->jobs[i];
            if (o == job || strcmp(o->group, job->group) != 0)
                continue;
            if (o->state == KILN_JOB_READY && o->in_ready) {
                s_ready_remove(self, o);
                kiln_queue_drop(self->queue, o->key, o->labels, "cancelled");
                kiln_log_info("job %s superseded in concurrency group '%s'", o->key, o->group);
                s_job_final(self, o, KILN_JOB_CANCELLED, now);
                if (run != job->run && n_touched < 64)
                    touched[n_touched++] = run->id;
            } else if (cancel_running && o->state == KILN_JOB_RUNNING && o->worker &&
                       !o->cancel_sent) {
                s_send_cancel(self, o);
            }
        }
    }
    /* Runs whose last job was just superseded are over. */
    for (size_t k = 0; k < n_touched; k++) {
        s_run_t *run = s_run_find(self, touched[k]);
        if (run)
            s_run_check_done(self, run);
    }
}

static bool s_group_busy(kiln_server_t *self, const s_job_t *job)
{
    if (!job->group[0])
        return false;
    for (size_t r = 0; r < self->n_runs; r++)
        for (size_t i = 0; i < self->runs[r]->wf->n_jobs; i++) {
            const s_job_t *o = &self->runs[r]->jobs[i];
            if (o != job && o->state == KILN_JOB_RUNNING && strcmp(o->group, job->group) == 0)
                return true;
        }
    return false;
}

/* Jobs the DAG reports ready go onto Redis and the in-memory ready list. */
static void s_enqueue_ready(kiln_server_t *self, s_run_t *run)
{
    size_t ready[64], n;
    if (run->held)
        return;
    /* One transaction and one Redis round trip however many become ready
     * (a new run: all its roots). */
    bool own_batch = !self->in_batch;
    if (own_batch)
        kiln_queue_batch_begin(self->queue);
    kiln_history_begin(self->history);
    while ((n = kiln_dag_take_ready(run->dag, ready, 64)) > 0) {
        for (size_t i = 0; i < n; i++) {
            s_job_t *job = &run->jobs[ready[i]];
            if (!s_job_condition(self, job))
                continue;
            if (run->wf->jobs[job->idx].matrix_expr) {
                /* Its needs are done. Computing the matrix replaces the
                 * run's jobs, so it waits for a point where nobody holds
                 * one: s_expand_pending, after the current message. */
                run->expand_pending = self->expand_pending = true;
                continue;
            }
            if (job->group[0])
                s_job_concurrency(self, job);
            int rc = kiln_queue_push(self->queue, job->key, job->labels, NULL, 0);
            if (rc == KILN_EINVAL) {
                /* Already queued (a recovered run): nothing to write. */
            } else if (rc != 0) {
                kiln_log_error("run %lld: %s", (long long)run->id, kiln_error_last());
                self->redis_dirty = true;
            }
            job->state = KILN_JOB_READY;
            s_ready_append(self, job, false);
            kiln_history_job_set_state(self->history, run->id, run->wf->jobs[job->idx].id,
                                       "ready", 0, NULL, 0, 0);
            s_emit_job(self, job, KILN__EVENT_KIND__EVENT_JOB_QUEUED, 0);
        }
    }
    if (own_batch && kiln_queue_batch_end(self->queue) != 0) {
        kiln_log_error("run %lld: %s", (long long)run->id, kiln_error_last());
        self->redis_dirty = true;
    }
    kiln_history_commit(self->history);
}

/* Records a job's final state and moves the DAG on (skips, new ready). */
static void s_job_final(kiln_server_t *self, s_job_t *job, kiln_job_state_t state,
                        int64_t finished_ms)
{
    s_run_t *run = job->run;
    const kiln_job_t *spec = &run->wf->jobs[job->idx];
    size_t skipped[KILN_WF_MAX_JOBS], n_skipped = 0;
    job->state = state;
    kiln_history_job_set_state(self->history, run->id, spec->id, kiln_job_state_name(state), 0,
                               NULL, 0, finished_ms);
    /* What the scheduler will expect of this job next time. */
    if (state == KILN_JOB_SUCCESS && job->started_ms && finished_ms >= job->started_ms)
        kiln_history_duration_record(self->history, s_workflow_key(run), spec->id,
                                     finished_ms - job->started_ms);
    s_emit_job(self, job, KILN__EVENT_KIND__EVENT_JOB_FINISHED,
               job->started_ms ? finished_ms - job->started_ms : 0);
    if (kiln_dag_finish(run->dag, job->idx, state, skipped, KILN_WF_MAX_JOBS, &n_skipped) != 0)
        kiln_log_error("run %lld: dag: %s", (long long)run->id, kiln_error_last());
    for (size_t i = 0; i < n_skipped && i < KILN_WF_MAX_JOBS; i++) {
        s_job_t *sk = &run->jobs[skipped[i]];
        sk->state = KILN_JOB_SKIPPED;
        kiln_history_job_set_state(self->history, run->id, run->wf->jobs[sk->idx].id, "skipped",
                                   0, NULL, 0, finished_ms);
        s_emit_job(self, sk, KILN__EVENT_KIND__EVENT_JOB_FINISHED, 0);
    }
    s_enqueue_ready(self, run);
}

/* Puts job in a free entry of w's (the caller checked busy < cap). */
static void s_worker_take(s_worker_t *w, s_job_t *job)
{
    for (unsigned i = 0; i < w->cap; i++) {
        if (!w->jobs[i]) {
            w->jobs[i] = job;
            break;
        }
    }
    w->busy++;
    job->run->n_leased++;
}

static void s_worker_release(s_worker_t *w, s_job_t *job)
{
    for (unsigned i = 0; i < w->cap; i++) {
        if (w->jobs[i] == job) {
            w->jobs[i] = NULL;
            w->busy--;
            if (job->run->n_leased)
                job->run->n_leased--;
            break;
        }
    }
}

/* ------------------------------------------------------------- dispatch */

static void s_kv_fill(Kiln__KeyValue *kv, Kiln__KeyValue **ptrs, size_t *n, const kiln_env_t *env,
                      size_t max)
{
    for (size_t i = 0; i < env->n && *n < max; i++) {
        kiln__key_value__init(&kv[*n]);
        kv[*n].key = env->items[i].key;
        kv[*n].value = env->items[i].value;
        ptrs[*n] = &kv[*n];
        (*n)++;
    }
}

/* Builds and sends the JobAssign for the job's current attempt. */
static int s_send_assign(kiln_server_t *self, s_job_t *job, s_worker_t *w)
{
    const kiln_workflow_t *wf = job->run->wf;
    const kiln_job_t *spec = &wf->jobs[job->idx];
    Kiln__Envelope env = KILN__ENVELOPE__INIT;
    Kiln__JobAssign a = KILN__JOB_ASSIGN__INIT;
    size_t n_env_max = wf->env.n + spec->env.n, n_kv = 0, n_step_kv = 0;
    for (size_t s = 0; s < spec->n_steps; s++)
        n_step_kv += spec->steps[s].env.n;
    Kiln__KeyValue *kv = calloc(n_env_max + n_step_kv + 1, sizeof *kv);
    Kiln__KeyValue **kvp = calloc(n_env_max + n_step_kv + 1, sizeof *kvp);
    Kiln__StepSpec *steps = calloc(spec->n_steps + 1, sizeof *steps);
    Kiln__StepSpec **stepp = calloc(spec->n_steps + 1, sizeof *stepp);
    char *ctx_text = NULL, *outputs_text = NULL;
    int rc = -1;
    if (!kv || !kvp || !steps || !stepp) {
        kiln_error_set("out of memory");
        goto cleanup;
    }
    a.job_key = job->key;
    a.token = job->token;
    a.run_id = (uint64_t)job->run->id;
    a.job_id = spec->id;
    a.job_name = spec->name;
    a.attempt = job->attempt;
    a.workflow_name = wf->name;
    a.timeout_ms = (uint64_t)spec->timeout_ms;
    a.log_limit = self->cfg.log_limit;
    ctx_text = s_contexts_text(self, job->run, spec, job->attempt);
    outputs_text = spec->outputs ? json_dumps(spec->outputs, JSON_COMPACT) : NULL;
    if (!ctx_text) {
        kiln_error_set("job %s: contexts: out of memory", job->key);
        goto cleanup;
    }
    a.contexts.data = (uint8_t *)ctx_text;
    a.contexts.len = ctx_text ? strlen(ctx_text) : 0;
    a.outputs.data = (uint8_t *)outputs_text;
    a.outputs.len = outputs_text ? strlen(outputs_text) : 0;
    /* Workflow env first, then the job's: the worker applies them in order,
     * so the job's values win, as on GitHub. */
    s_kv_fill(kv, kvp, &n_kv, &wf->env, n_env_max);
    s_kv_fill(kv, kvp, &n_kv, &spec->env, n_env_max);
    a.env = kvp;
    a.n_env = n_kv;
    size_t used = n_kv;
    for (size_t s = 0; s < spec->n_steps; s++) {
        const kiln_step_t *st = &spec->steps[s];
        Kiln__StepSpec *ss = &steps[s];
        kiln__step_spec__init(ss);
        ss->name = st->name ? st->name : (char *)"";
        ss->id = st->id ? st->id : (char *)"";
        ss->run = st->run ? st->run : (char *)"";
        ss->shell = st->shell ? st->shell : spec->shell ? spec->shell : (char *)"";
        ss->working_directory = st->working_directory   ? st->working_directory
                                : spec->working_directory ? spec->working_directory
                                                          : (char *)"";
        ss->timeout_ms = (uint64_t)st->timeout_ms;
        ss->continue_on_error = st->continue_on_error;
        ss->if_expr = st->if_expr ? st->if_expr : (char *)"";
        if (st->action_inputs) {
            char *t = json_dumps(st->action_inputs, JSON_COMPACT);
            ss->action_inputs.data = (uint8_t *)t;
            ss->action_inputs.len = t ? strlen(t) : 0;
        }
        if (st->composite_ends) {
            char *t = json_dumps(st->composite_ends, JSON_COMPACT);
            ss->composite_ends.data = (uint8_t *)t;
            ss->composite_ends.len = t ? strlen(t) : 0;
        }
        size_t first = used;
        s_kv_fill(kv, kvp, &used, &st->env, n_env_max + n_step_kv);
        ss->env = kvp + first;
        ss->n_env = used - first;
        stepp[s] = ss;
    }
    a.steps = stepp;
    a.n_steps = spec->n_steps;
    /* The worker's acknowledgements waiting in this batch go along. */
    Kiln__ResultAck ack_v[S_ACKS_PER_ASSIGN], *ack_p[S_ACKS_PER_ASSIGN];
    while (w->ack_head >= 0 && a.n_acks < S_ACKS_PER_ASSIGN) {
        const s_pending_ack_t *pa = &self->acks[w->ack_head];
        Kiln__ResultAck *ra = &ack_v[a.n_acks];
        kiln__result_ack__init(ra);
        ra->job_key = (char *)pa->job_key;
        ra->token = pa->token;
        ack_p[a.n_acks++] = ra;
        w->ack_head = self->ack_next[w->ack_head];
    }
    a.acks = ack_p;
    env.body_case = KILN__ENVELOPE__BODY_ASSIGN;
    env.assign = &a;
    rc = s_send(self, w->identity, w->id_len, &env);
cleanup:
    for (size_t s = 0; steps && s < spec->n_steps; s++) {
        free(steps[s].action_inputs.data);
        free(steps[s].composite_ends.data);
    }
    free(kv);
    free(kvp);
    free(steps);
    free(stepp);
    free(ctx_text);
    free(outputs_text);
    return rc;
}

/* Runs whose jobs take longer than this many samples say are not judged
 * short yet (s_prefetchable). */
#define S_PREFETCH_SAMPLES 3

/* Whether worker w should get an assignment queued behind its running
 * jobs: all its slots are busy, it has room to queue, and each job it holds
 * belongs to a run of short jobs and is expected to end within the horizon.
 * Then the next job starts the moment one ends, instead of a round trip
 * later; with anything longer or unknown it waits for a free slot, so a
 * queued job never sits behind a long one while another worker frees up. */
static bool s_prefetchable(const s_worker_t *w, int64_t now)
{
    if (w->draining || w->busy < w->slots || w->busy >= w->cap)
        return false;
    for (unsigned i = 0; i < w->cap; i++) {
        const s_job_t *j = w->jobs[i];
        if (!j)
            continue;
        const s_run_t *r = j->run;
        if (r->n_recent < S_PREFETCH_SAMPLES || r->recent_ms > KILN_SERVER_PREFETCH_SHORT_MS ||
            j->started_ms + r->recent_ms > now + KILN_SERVER_PREFETCH_HORIZON_MS)
            return false;
    }
    return true;
}

/* The matching worker with a free slot and the fewest busy slots; with
 * queue set, one that may queue it (s_prefetchable) instead. */
static s_worker_t *s_pick_worker(kiln_server_t *self, const s_job_t *job, bool queue,
                                 int64_t now)
{
    const kiln_job_t *spec = &job->run->wf->jobs[job->idx];
    s_worker_t *best = NULL;
    for (size_t i = 0; i < self->n_workers; i++) {
        s_worker_t *w = self->workers[i];
        if (queue ? !s_prefetchable(w, now) : (w->draining || w->busy >= w->slots))
            continue;
        if (!s_worker_matches(self, w, spec))
            continue;
        if (!best || w->busy * best->slots < best->busy * w->slots)
            best = w;
    }
    return best;
}

static void s_worker_lost(kiln_server_t *self, s_worker_t *w, const char *why);

/* Dispatch goes in passes (s_dispatch_now): choose every placement first,
 * taking the slot at once so later choices see it; lease them all from Redis
 * in one pipelined round trip; then record and send each. A placement whose
 * lease fails is put back as it was. */
static void s_place(kiln_server_t *self, s_job_t *job, s_worker_t *w)
{
    s_ready_remove(self, job);
    job->worker = w;
    job->state = KILN_JOB_RUNNING;
    s_worker_take(w, job);
    job->run->served_seq = ++self->placements;
    job->lease_deadline = kiln_clock_wall_ms() + self->cfg.lease_ms;
    job->lease_token = job->token + 1;
    /* No verdict pointer: the reply may be read after this job is gone. A
     * refusal makes the flush fail, which marks Redis for reconcile. */
    kiln_queue_lease_defer(self->queue, job->key, job->labels, w->name, job->attempt + 1,
                           job->lease_deadline, job->lease_token, NULL);
}

static void s_unplace(kiln_server_t *self, s_job_t *job)
{
    s_worker_release(job->worker, job);
    job->worker = NULL;
    job->state = KILN_JOB_READY;
    s_ready_append(self, job, true);
}

/* The lease is on its way to Redis: the job runs on its worker from now. */
static void s_commit_placement(kiln_server_t *self, s_job_t *job)
{
    s_run_t *run = job->run;
    const kiln_job_t *spec = &run->wf->jobs[job->idx];
    s_worker_t *w = job->worker;
    job->token = job->lease_token;
    job->attempt++;
    snprintf(job->worker_name, sizeof job->worker_name, "%s", w->name);
    job->orphan_deadline = 0;
    job->started_ms = kiln_clock_wall_ms();
    job->cancel_sent = false;
    job->log_bytes = 0;
    job->step_reported = 0;
    job->log_truncated = false;
    if (kiln_dag_state(run->dag, job->idx) == KILN_JOB_READY)
        kiln_dag_start(run->dag, job->idx);
    kiln_history_attempt_start(self->history, run->id, spec->id, job->attempt, job->token,
                               w->name, job->started_ms);
    kiln_history_job_set_state(self->history, run->id, spec->id, "running", job->attempt,
                               w->name, job->started_ms, 0);
    self->stats.dispatches++;
    kiln_log_debug("dispatch %s attempt %u token %llu -> %s", job->key, job->attempt,
                   (unsigned long long)job->token, w->name);
}

/* strategy.max-parallel: how many combinations of this job's matrix run. */
static bool s_matrix_saturated(const s_job_t *job)
{
    const kiln_job_t *spec = &job->run->wf->jobs[job->idx];
    if (!spec->origin || !spec->max_parallel)
        return false;
    unsigned running = 0;
    for (size_t i = 0; i < job->run->wf->n_jobs; i++) {
        const kiln_job_t *o = &job->run->wf->jobs[i];
        if (o->origin && strcmp(o->origin, spec->origin) == 0 &&
            job->run->jobs[i].state == KILN_JOB_RUNNING)
            running++;
    }
    return running >= spec->max_parallel;
}

/* Which run's turn it is. Critical path: the run with the fewest jobs on
 * workers, so a small run gets a slot as soon as one frees however much a
 * huge run has queued; between equals, the one served least recently
 * (round robin), then the older. FIFO: whoever's best job has waited
 * longest. */
static bool s_run_turn_before(const kiln_server_t *self, const s_run_t *a, const s_run_t *b)
{
    if (self->policy == KILN_SCHEDULER_FIFO)
        return a->ready[a->n_ready - 1]->ready_seq < b->ready[b->n_ready - 1]->ready_seq;
    if (a->n_leased != b->n_leased)
        return a->n_leased < b->n_leased;
    if (a->served_seq != b->served_seq)
        return a->served_seq < b->served_seq;
    return a->id < b->id;
}

static size_t s_free_slots(const kiln_server_t *self)
{
    size_t n = 0;
    for (size_t i = 0; i < self->n_workers; i++) {
        const s_worker_t *w = self->workers[i];
        if (!w->draining && w->busy < w->slots)
            n += w->slots - w->busy;
    }
    return n;
}

/* Room to queue jobs on workers about to free a slot (s_prefetchable);
 * with bound set, on any worker that queues at all (an upper bound). */
static size_t s_queue_room(const kiln_server_t *self, int64_t now, bool bound)
{
    size_t n = 0;
    for (size_t i = 0; i < self->n_workers; i++) {
        const s_worker_t *w = self->workers[i];
        if (w->cap > w->slots && !w->draining && (bound || s_prefetchable(w, now)))
            n += bound ? w->cap - w->slots : w->cap - w->busy;
    }
    return n;
}

/* Places ready jobs on free slots: pick the run whose turn it is, then its
 * best job that some free worker can take, until slots or placeable jobs
 * run out (a run with nothing placeable sits out the rest of the pass).
 * Then one round trip leases them all, one transaction records them, and
 * the assignments go out. */
static int s_outgoing_add(kiln_server_t *self, s_job_t **placed, size_t n);
static void s_send_placed(kiln_server_t *self, s_job_t **placed, size_t n_placed);
static void s_lose_undeliverable(kiln_server_t *self);

static void s_dispatch_now(kiln_server_t *self)
{
    if (!kiln_queue_connected(self->queue) || !self->n_ready)
        return; /* Redis down: paused until it is back */
    int64_t now = kiln_clock_wall_ms();
    size_t free_slots = s_free_slots(self);
    size_t room = s_queue_room(self, now, true);
    if (!free_slots && !room)
        return;
    size_t cap = free_slots + room < self->n_ready ? free_slots + room : self->n_ready;
    s_job_t **placed = malloc(cap * sizeof *placed);
    size_t n_placed = 0;
    if (!placed) {
        kiln_log_error("dispatch: out of memory");
        return;
    }
    bool own_batch = !self->in_batch;
    if (own_batch)
        kiln_queue_batch_begin(self->queue);
    /* Free slots first; then, if jobs are left, queue them on workers about
     * to free one. */
    for (int phase = 0; phase < 2; phase++) {
        bool queue = phase == 1;
        /* The first phase may have just made some workers full. */
        size_t limit = n_placed + (queue ? s_queue_room(self, now, false) : free_slots);
        if (limit > cap)
            limit = cap;
        uint64_t pass = ++self->dispatch_pass;
        /* Label sets no free worker has: slots only fill up during a pass, so
         * their other jobs are skipped without asking every worker again. */
        const char *unplaceable[16];
        size_t n_unplaceable = 0;
        while (n_placed < limit) {
            s_run_t *run = NULL;
            for (size_t r = 0; r < self->n_runs; r++) {
                s_run_t *o = self->runs[r];
                if (o->n_ready && o->blocked_pass != pass &&
                    (!run || s_run_turn_before(self, o, run)))
                    run = o;
            }
            if (!run)
                break;
            bool found = false;
            for (size_t i = run->n_ready; i-- > 0 && !found;) {
                s_job_t *job = run->ready[i];
                bool known = false;
                for (size_t k = 0; k < n_unplaceable && !known; k++)
                    known = strcmp(unplaceable[k], job->labels) == 0;
                if (known || s_matrix_saturated(job) || s_group_busy(self, job))
                    continue;
                s_worker_t *w = s_pick_worker(self, job, queue, now);
                if (!w) {
                    if (n_unplaceable < 16)
                        unplaceable[n_unplaceable++] = job->labels;
                    continue;
                }
                s_place(self, job, w);
                placed[n_placed++] = job;
                found = true;
            }
            if (!found)
                run->blocked_pass = pass;
        }
    }
    /* The leases are written to Redis before any assignment goes out, so
     * even if we die now Redis applies them; their replies are read after
     * the assignments are sent: waiting for Redis to be scheduled was most
     * of the time between a job's end and the next one's start. */
    if (n_placed && kiln_queue_send(self->queue) != 0) {
        kiln_log_error("dispatch: %s", kiln_error_last());
        self->redis_dirty = true;
        for (size_t i = 0; i < n_placed; i++)
            s_unplace(self, placed[i]);
        n_placed = 0;
    }
    kiln_history_begin(self->history);
    for (size_t i = 0; i < n_placed; i++)
        s_commit_placement(self, placed[i]);
    kiln_history_commit(self->history);
    if (!own_batch) {
        /* Inside a burst the assignments wait for its commit
         * (s_flush_batch), so they can carry the acknowledgements that
         * wait for it too. */
        if (s_outgoing_add(self, placed, n_placed) == 0) {
            free(placed);
            return;
        }
        kiln_log_warn("dispatch: %s; assignments sent at once", kiln_error_last());
    }
    s_send_placed(self, placed, n_placed);
    /* Redis's replies are read later (s_queue_settle): if it refused a
     * lease (it lost writes, or was cut off), the job still runs under our
     * token and reconcile writes our view back, as for any write it missed. */
    if (own_batch && kiln_queue_batch_send(self->queue) != 0) {
        kiln_log_warn("%s", kiln_error_last());
        self->redis_dirty = true;
    }
    free(placed);
    s_lose_undeliverable(self);
}

/* Jobs placed inside a burst, kept for s_flush_batch. */
static int s_outgoing_add(kiln_server_t *self, s_job_t **placed, size_t n)
{
    if (self->n_outgoing + n > self->cap_outgoing) {
        size_t cap = self->cap_outgoing ? self->cap_outgoing : 64;
        while (cap < self->n_outgoing + n)
            cap *= 2;
        s_job_t **grown = realloc(self->outgoing, cap * sizeof *grown);
        if (!grown) {
            kiln_error_set("out of memory");
            return -1;
        }
        self->outgoing = grown;
        self->cap_outgoing = cap;
    }
    for (size_t i = 0; i < n; i++) {
        placed[i]->worker->assign_outgoing = true;
        self->outgoing[self->n_outgoing++] = placed[i];
    }
    return 0;
}

/* Sends the placed jobs' assignments. A worker we cannot deliver to is
 * marked; it is lost (s_lose_undeliverable) only after every send, since
 * losing it frees it and later placements may name it. */
static void s_send_placed(kiln_server_t *self, s_job_t **placed, size_t n_placed)
{
    for (size_t i = 0; i < n_placed; i++) {
        s_job_t *job = placed[i];
        job->worker->assign_outgoing = false;
        if (job->worker->undeliverable)
            continue;
        if (s_send_assign(self, job, job->worker) != 0)
            job->worker->undeliverable = true;
        else
            s_emit_job(self, job, KILN__EVENT_KIND__EVENT_JOB_STARTED, 0);
    }
}

static void s_lose_undeliverable(kiln_server_t *self)
{
    for (;;) {
        s_worker_t *gone = NULL;
        for (size_t i = 0; i < self->n_workers && !gone; i++)
            if (self->workers[i]->undeliverable)
                gone = self->workers[i];
        if (!gone)
            break;
        s_worker_lost(self, gone, "cannot deliver a job");
    }
}

/* Inside a burst of worker messages dispatch waits for the burst's end, so
 * that one pass places everything the burst freed. */
static void s_dispatch(kiln_server_t *self)
{
    if (self->in_batch) {
        self->dispatch_pending = true;
        return;
    }
    s_dispatch_now(self);
}

/* The retry budget of a job for infrastructure failures. */
static unsigned s_infra_limit(const kiln_server_t *self, const s_job_t *job)
{
    unsigned n = job->run->wf->jobs[job->idx].max_attempts;
    return n ? n : self->cfg.max_attempts;
}

/* Puts a job whose attempt ended back on the queue for another attempt. */
static void s_requeue(kiln_server_t *self, s_job_t *job)
{
    s_run_t *run = job->run;
    if (kiln_queue_requeue(self->queue, job->key, job->labels, job->token) != 0) {
        kiln_log_warn("requeue %s: %s", job->key, kiln_error_last());
        self->redis_dirty = true;
    }
    job->worker = NULL;
    job->orphan_deadline = 0;
    job->state = KILN_JOB_READY;
    kiln_history_job_set_state(self->history, run->id, run->wf->jobs[job->idx].id, "ready", 0,
                               NULL, 0, 0);
    s_ready_append(self, job, true);
}

/* An attempt ended without the script's own verdict: the worker was lost,
 * drained, or failed around the job. That is not a build failure: the job
 * runs again, up to its infrastructure budget. */
static void s_attempt_lost(kiln_server_t *self, s_job_t *job, const char *klass,
                           const char *message)
{
    s_run_t *run = job->run;
    const kiln_job_t *spec = &run->wf->jobs[job->idx];
    int64_t now = kiln_clock_wall_ms();
    kiln_history_attempt_finish(self->history, run->id, spec->id, job->attempt, klass,
                                message && message[0] ? message : NULL, now);
    job->worker = NULL;
    job->infra_failures++;
    if (strcmp(klass, "worker_lost") == 0)
        self->stats.retries_worker_lost++;
    else if (strcmp(klass, "worker_drained") == 0)
        self->stats.retries_worker_drained++;
    else
        self->stats.retries_infra_error++;
    if (run->cancel_requested) {
        kiln_queue_finish(self->queue, job->key, job->token, "cancelled");
        s_job_final(self, job, KILN_JOB_CANCELLED, now);
        return;
    }
    if (job->infra_failures < s_infra_limit(self, job)) {
        kiln_log_info("job %s: attempt %u ended (%s); queued again", job->key, job->attempt,
                      klass);
        s_requeue(self, job);
        return;
    }
    if (kiln_queue_finish(self->queue, job->key, job->token, "infra_error") != 0)
        self->redis_dirty = true;
    kiln_log_warn("job %s: attempt %u ended (%s); %u infrastructure failures, giving up",
                  job->key, job->attempt, klass, job->infra_failures);
    s_job_final(self, job, KILN_JOB_INFRA_ERROR, now);
}

static void s_worker_free(s_worker_t **w_p)
{
    s_worker_t *w = *w_p;
    if (!w)
        return;
    for (size_t i = 0; i < w->n_labels; i++)
        free(w->labels[i]);
    free(w->jobs);
    free(w);
    *w_p = NULL;
}

static void s_worker_lost(kiln_server_t *self, s_worker_t *w, const char *why)
{
    kiln_log_warn("worker %s lost: %s", w->name, why);
    self->stats.workers_lost++;
    for (size_t i = 0; i < self->n_workers; i++) {
        if (self->workers[i] == w) {
            self->workers[i] = self->workers[--self->n_workers];
            break;
        }
    }
    s_wtab_del(self, w);
    for (unsigned i = 0; i < w->cap; i++) {
        s_job_t *job = w->jobs[i];
        if (!job)
            continue;
        w->jobs[i] = NULL;
        s_run_t *run = job->run;
        if (run->n_leased)
            run->n_leased--;
        self->stats.lease_expiries++;
        s_attempt_lost(self, job, "worker_lost", why);
        s_run_check_done(self, run);
    }
    s_worker_free(&w);
}

/* ------------------------------------------------------ worker messages */

static void s_on_hello(kiln_server_t *self, const kiln_transport_msg_t *msg, const char *key_name)
{
    const Kiln__Hello *h = msg->env->hello;
    s_worker_t *w = s_worker_find(self, msg->identity, msg->id_len);
    if (w) {
        /* A known worker says hello again (it reconnected). Jobs it no
         * longer reports were lost with the old connection. */
        for (unsigned i = 0; i < w->cap; i++) {
            s_job_t *job = w->jobs[i];
            bool reported = false;
            for (size_t k = 0; job && k < h->n_running; k++)
                reported = reported || (strcmp(h->running[k]->job_key, job->key) == 0 &&
                                        h->running[k]->token == job->token);
            if (job && !reported) {
                s_worker_release(w, job);
                s_run_t *run = job->run;
                s_attempt_lost(self, job, "worker_lost", "the worker reconnected without it");
                s_run_check_done(self, run);
            }
        }
        w->last_seen = kiln_clock_mono_ms();
        w->suspect_deadline = 0;
        if (msg->src_fd >= 0)
            w->fd = msg->src_fd;
    } else {
        if (self->n_workers >= KILN_SERVER_MAX_WORKERS) {
            kiln_log_warn("refusing worker %s: %d workers connected", h->name,
                          KILN_SERVER_MAX_WORKERS);
            return;
        }
        unsigned slots = h->slots;
        if (slots < 1 || slots > KILN_SERVER_MAX_SLOTS) {
            kiln_log_warn("worker %s (%s): %u slots is out of range 1..%d; dropped", h->name,
                          msg->peer_address, h->slots, KILN_SERVER_MAX_SLOTS);
            return;
        }
        unsigned lookahead = h->lookahead < KILN_SERVER_MAX_LOOKAHEAD ? h->lookahead
                                                                      : KILN_SERVER_MAX_LOOKAHEAD;
        w = calloc(1, sizeof *w);
        if (!w || !(w->jobs = calloc(slots + lookahead, sizeof *w->jobs))) {
            free(w);
            return;
        }
        memcpy(w->identity, msg->identity, msg->id_len);
        w->id_len = msg->id_len;
        w->slots = slots;
        w->cap = slots + lookahead;
        w->ack_head = -1;
        snprintf(w->name, sizeof w->name, "%s", h->name[0] ? h->name : key_name);
        snprintf(w->key_name, sizeof w->key_name, "%s", key_name);
        snprintf(w->hostname, sizeof w->hostname, "%s", h->hostname);
        snprintf(w->version, sizeof w->version, "%s", h->version);
        for (size_t i = 0; i < h->n_labels && w->n_labels < KILN_SERVER_MAX_LABELS; i++) {
            char *l = strdup(h->labels[i]);
            if (l)
                w->labels[w->n_labels++] = l;
        }
        w->connected_ms = kiln_clock_wall_ms();
        w->last_seen = kiln_clock_mono_ms();
        w->fd = msg->src_fd;
        if (self->n_workers == self->cap_workers) {
            size_t ncap = self->cap_workers ? self->cap_workers * 2 : 16;
            s_worker_t **grown = realloc(self->workers, ncap * sizeof *grown);
            if (!grown) {
                s_worker_free(&w);
                return;
            }
            self->workers = grown;
            self->cap_workers = ncap;
        }
        self->workers[self->n_workers++] = w;
        s_wtab_put(self, w);
        kiln_log_info("worker %s connected from %s (key %s, %u slots)", w->name,
                      msg->peer_address[0] ? msg->peer_address : "local", key_name, w->slots);
        /* Jobs it runs under a lease we hold for it (we restarted, or it
         * reconnected) are adopted, so they finish instead of running
         * twice; anything else it runs is cancelled. */
        for (size_t k = 0; k < h->n_running; k++) {
            s_job_t *job = s_job_find(self, h->running[k]->job_key);
            if (job && job->state == KILN_JOB_RUNNING && !job->worker &&
                job->token == h->running[k]->token && strcmp(job->worker_name, w->name) == 0 &&
                w->busy < w->cap) {
                job->worker = w;
                job->orphan_deadline = 0;
                s_worker_take(w, job);
                self->stats.jobs_readopted++;
                kiln_log_info("job %s re-adopted from worker %s (token %llu)", job->key, w->name,
                              (unsigned long long)job->token);
                continue;
            }
            Kiln__Envelope env = KILN__ENVELOPE__INIT;
            Kiln__CancelJob c = KILN__CANCEL_JOB__INIT;
            c.job_key = h->running[k]->job_key;
            c.token = h->running[k]->token;
            env.body_case = KILN__ENVELOPE__BODY_CANCEL;
            env.cancel = &c;
            s_send(self, w->identity, w->id_len, &env);
        }
    }
    Kiln__Envelope env = KILN__ENVELOPE__INIT;
    Kiln__Welcome welcome = KILN__WELCOME__INIT;
    welcome.worker_id = w->name;
    welcome.heartbeat_ms = (uint32_t)self->cfg.heartbeat_ms;
    welcome.lease_ms = (uint32_t)self->cfg.lease_ms;
    welcome.log_window = self->cfg.log_window;
    w->credit_owed = 0;
    env.body_case = KILN__ENVELOPE__BODY_WELCOME;
    env.welcome = &welcome;
    s_send(self, w->identity, w->id_len, &env);
    s_dispatch(self);
}

/* Checks that a message about job_key comes from the worker holding the
 * current attempt; logs and counts stale ones (fencing). */
static s_job_t *s_fenced_job(kiln_server_t *self, s_worker_t *w, const char *job_key,
                             uint64_t token, const char *what)
{
    s_job_t *job = s_job_find(self, job_key);
    if (!job || job->worker != w || job->token != token || job->state != KILN_JOB_RUNNING) {
        self->stats.stale_rejected++;
        kiln_log_warn("rejected %s for %s token %llu from worker %s: not the current attempt",
                      what, job_key, (unsigned long long)token, w->name);
        return NULL;
    }
    return job;
}

/* Tells a worker its result was taken (applied, a duplicate, or refused
 * for good), so it stops resending it. */
static void s_flush_batch(kiln_server_t *self);

/* Acknowledgements wait for the batch's commit: a worker stops resending a
 * result only once what it changed is on disk. */
static void s_ack_result(kiln_server_t *self, s_worker_t *w, const Kiln__JobResult *m)
{
    if (self->n_acks == KILN_SERVER_MAX_PENDING_ACKS)
        s_flush_batch(self);
    s_pending_ack_t *a = &self->acks[self->n_acks++];
    memcpy(a->identity, w->identity, w->id_len);
    a->id_len = w->id_len;
    snprintf(a->job_key, sizeof a->job_key, "%s", m->job_key);
    a->token = m->token;
}

/* Commits the history written since the batch began, then sends the
 * acknowledgements that waited for it, and begins the next batch. */
static void s_flush_batch(kiln_server_t *self)
{
    if (self->in_batch) {
        /* A pass that loses a worker requeues its jobs: go again. */
        while (self->dispatch_pending) {
            self->dispatch_pending = false;
            s_dispatch_now(self);
        }
        /* Results are acknowledged once SQLite has them; Redis's replies
         * are read later (s_queue_settle), and reconcile writes our view
         * back over anything it refused. */
        if (kiln_queue_batch_send(self->queue) != 0) {
            kiln_log_warn("%s", kiln_error_last());
            self->redis_dirty = true;
        }
        kiln_history_commit(self->history);
        self->in_batch = false;
    }
    /* Each acknowledgement rides with an assignment to its worker if one
     * is going out; the others go alone. */
    bool alone[KILN_SERVER_MAX_PENDING_ACKS];
    for (size_t i = self->n_acks; i-- > 0;) {
        s_worker_t *w = self->n_outgoing
                            ? s_worker_find(self, self->acks[i].identity, self->acks[i].id_len)
                            : NULL;
        alone[i] = !w || !w->assign_outgoing;
        if (!alone[i]) {
            self->ack_next[i] = w->ack_head;
            w->ack_head = (int)i;
        }
    }
    if (self->n_outgoing) {
        size_t n = self->n_outgoing;
        self->n_outgoing = 0;
        s_send_placed(self, self->outgoing, n);
        /* Any left over (more than the assignments carry, or for a worker
         * that could not be reached) go alone. */
        for (size_t i = 0; i < n; i++) {
            s_worker_t *w = self->outgoing[i]->worker;
            for (; w && w->ack_head >= 0; w->ack_head = self->ack_next[w->ack_head])
                alone[w->ack_head] = true;
        }
    }
    for (size_t i = 0; i < self->n_acks; i++) {
        if (!alone[i])
            continue;
        Kiln__Envelope env = KILN__ENVELOPE__INIT;
        Kiln__ResultAck ack = KILN__RESULT_ACK__INIT;
        ack.job_key = self->acks[i].job_key;
        ack.token = self->acks[i].token;
        env.body_case = KILN__ENVELOPE__BODY_RESULT_ACK;
        env.result_ack = &ack;
        s_send(self, self->acks[i].identity, self->acks[i].id_len, &env);
    }
    self->n_acks = 0;
    s_lose_undeliverable(self);
}

static void s_on_heartbeat(kiln_server_t *self, s_worker_t *w, const Kiln__Heartbeat *hb)
{
    bool was_draining = w->draining;
    w->draining = hb->draining;
    w->drain_deadline_ms = (int64_t)hb->drain_deadline_ms;
    if (w->draining && !was_draining)
        kiln_log_info("worker %s is draining%s", w->name,
                      hb->drain_deadline_ms ? " with a deadline" : "");
    int64_t deadline = kiln_clock_wall_ms() + self->cfg.lease_ms;
    for (unsigned i = 0; i < w->cap; i++) {
        s_job_t *job = w->jobs[i];
        if (job && kiln_queue_renew(self->queue, job->key, job->token, deadline) != 0)
            kiln_log_warn("lease renewal for %s: %s", job->key, kiln_error_last());
    }
}

static void s_emit_step_started(kiln_server_t *self, s_job_t *job, unsigned step, uint64_t ts_ms)
{
    const kiln_job_t *spec = &job->run->wf->jobs[job->idx];
    job->step_reported = step + 1;
    if (!job->run->n_watchers)
        return;
    Kiln__RunEvent ev = KILN__RUN_EVENT__INIT;
    ev.kind = KILN__EVENT_KIND__EVENT_STEP_STARTED;
    ev.job_id = spec->id;
    ev.job_name = spec->name;
    ev.step = step;
    ev.step_name = spec->steps[step].name;
    ev.attempt = job->attempt;
    ev.ts_ms = ts_ms;
    s_emit(self, job->run, &ev);
}

static void s_on_step_started(kiln_server_t *self, s_worker_t *w, const Kiln__StepStarted *m)
{
    s_job_t *job = s_fenced_job(self, w, m->job_key, m->token, "step start");
    if (!job)
        return;
    const kiln_job_t *spec = &job->run->wf->jobs[job->idx];
    if (m->step >= spec->n_steps)
        return;
    kiln_history_step_start(self->history, job->run->id, spec->id, job->attempt, m->step,
                            spec->steps[m->step].name, (int64_t)m->ts_ms);
    s_emit_step_started(self, job, m->step, m->ts_ms);
}

/* Returns processed log bytes to the worker as credit once enough has
 * accumulated, so a chatty job streams steadily and a flood stalls at the
 * worker (its step blocks on a full pipe) instead of in our memory. */
static void s_credit(kiln_server_t *self, s_worker_t *w, size_t len)
{
    w->credit_owed += len;
    if (w->credit_owed < self->cfg.log_window / 4)
        return;
    Kiln__Envelope env = KILN__ENVELOPE__INIT;
    Kiln__Credit c = KILN__CREDIT__INIT;
    c.log_bytes = w->credit_owed;
    env.body_case = KILN__ENVELOPE__BODY_CREDIT;
    env.credit = &c;
    if (s_send(self, w->identity, w->id_len, &env) == 0)
        w->credit_owed = 0;
}

static void s_on_log(kiln_server_t *self, s_worker_t *w, const Kiln__LogChunk *m)
{
    s_credit(self, w, m->data.len);
    s_job_t *job = s_fenced_job(self, w, m->job_key, m->token, "log chunk");
    if (!job)
        return;
    const kiln_job_t *spec = &job->run->wf->jobs[job->idx];
    int stream = m->stream <= 2 ? (int)m->stream : 2;
    if (m->data.len > KILN_SERVER_LOG_CHUNK_MAX) {
        self->stats.garbage_dropped++;
        kiln_log_warn("worker %s: log chunk of %zu bytes for %s is over %d; dropped", w->name,
                      m->data.len, job->key, KILN_SERVER_LOG_CHUNK_MAX);
        return;
    }
    /* The worker truncates at the limit itself; this holds a worker that
     * does not. */
    if (job->log_truncated)
        return;
    if (job->log_bytes + m->data.len > self->cfg.log_limit + KILN_SERVER_LOG_CHUNK_MAX) {
        char marker[160];
        int n = snprintf(marker, sizeof marker,
                         "[kiln: log truncated: over the limit of %llu bytes]\n",
                         (unsigned long long)self->cfg.log_limit);
        job->log_truncated = true;
        self->stats.logs_truncated++;
        kiln_history_log_append(self->history, job->run->id, spec->id, job->attempt, m->step, 2,
                                marker, (size_t)n, (int64_t)m->ts_ms);
        return;
    }
    job->log_bytes += m->data.len;
    kiln_history_log_append(self->history, job->run->id, spec->id, job->attempt, m->step, stream,
                            m->data.data, m->data.len, (int64_t)m->ts_ms);
    if (job->run->n_watchers) {
        Kiln__RunEvent ev = KILN__RUN_EVENT__INIT;
        ev.kind = KILN__EVENT_KIND__EVENT_LOG;
        ev.job_id = spec->id;
        ev.job_name = spec->name;
        ev.step = m->step;
        ev.stream = m->stream;
        ev.data = m->data;
        ev.attempt = job->attempt;
        ev.ts_ms = m->ts_ms;
        s_emit(self, job->run, &ev);
    }
}

static const char *s_outcome_name(Kiln__Outcome o)
{
    switch (o) {
    case KILN__OUTCOME__OUTCOME_SUCCESS: return "success";
    case KILN__OUTCOME__OUTCOME_FAILURE: return "failure";
    case KILN__OUTCOME__OUTCOME_TIMED_OUT: return "timed_out";
    case KILN__OUTCOME__OUTCOME_CANCELLED: return "cancelled";
    case KILN__OUTCOME__OUTCOME_SKIPPED: return "skipped";
    case KILN__OUTCOME__OUTCOME_INFRA_ERROR: return "infra_error";
    default: return "failure";
    }
}

/* A step's result, for the current attempt of job: on its own (below) or
 * carried in the job's result. */
static void s_apply_step_result(kiln_server_t *self, s_job_t *job, const Kiln__StepResult *m)
{
    const kiln_job_t *spec = &job->run->wf->jobs[job->idx];
    if (m->step >= spec->n_steps)
        return;
    const char *state = s_outcome_name(m->outcome);
    /* A step that ended within its worker's hold comes without a start:
     * its row is made here, and watchers see it start before it ends. */
    bool unstarted = job->step_reported != m->step + 1;
    if (unstarted && m->outcome != KILN__OUTCOME__OUTCOME_SKIPPED)
        s_emit_step_started(self, job, m->step, m->started_ms);
    kiln_history_step_finish(self->history, job->run->id, spec->id, job->attempt, m->step,
                             unstarted ? spec->steps[m->step].name : NULL, state, m->exit_code,
                             m->signal, (int64_t)m->started_ms, (int64_t)m->finished_ms);
    if (job->run->n_watchers) {
        Kiln__RunEvent ev = KILN__RUN_EVENT__INIT;
        ev.kind = KILN__EVENT_KIND__EVENT_STEP_FINISHED;
        ev.job_id = spec->id;
        ev.job_name = spec->name;
        ev.step = m->step;
        ev.step_name = spec->steps[m->step].name;
        ev.state = (char *)state;
        ev.exit_code = m->exit_code;
        ev.attempt = job->attempt;
        ev.duration_ms = m->finished_ms > m->started_ms ? m->finished_ms - m->started_ms : 0;
        s_emit(self, job->run, &ev);
    }
}

static void s_on_step_result(kiln_server_t *self, s_worker_t *w, const Kiln__StepResult *m)
{
    s_job_t *job = s_fenced_job(self, w, m->job_key, m->token, "step result");
    if (job)
        s_apply_step_result(self, job, m);
}

/* What a finished attempt leaves besides its state: outputs (for
 * needs.<job>.outputs), annotations, the step summary. */
static void s_record_results(kiln_server_t *self, s_job_t *job, const Kiln__JobResult *m)
{
    s_run_t *run = job->run;
    const kiln_job_t *spec = &run->wf->jobs[job->idx];
    if (m->n_outputs) {
        json_t *outs = json_object();
        for (size_t i = 0; i < m->n_outputs; i++)
            json_object_set_new(outs, m->outputs[i]->key, json_string(m->outputs[i]->value));
        if (!run->outputs)
            run->outputs = json_object();
        json_object_set(run->outputs, spec->id, outs);
        kiln_history_job_outputs(self->history, run->id, spec->id, outs);
        json_decref(outs);
    }
    static const char *levels[] = {"error", "warning", "notice"};
    for (size_t i = 0; i < m->n_annotations && i < 1000; i++) {
        const Kiln__Annotation *a = m->annotations[i];
        kiln_history_annotation(self->history, run->id, spec->id, job->attempt, a->step,
                                levels[a->level <= 2 ? a->level : 0], a->message, a->title,
                                a->file, a->line, a->col);
    }
    if (m->summary.len)
        kiln_history_summary(self->history, run->id, spec->id, job->attempt,
                             (const char *)m->summary.data, m->summary.len);
}

/* fail-fast: a failed matrix combination cancels its siblings that have not
 * finished, as GitHub does by default. */
static void s_fail_fast(kiln_server_t *self, s_job_t *failed)
{
    s_run_t *run = failed->run;
    const char *origin = run->wf->jobs[failed->idx].origin;
    int64_t now = kiln_clock_wall_ms();
    for (size_t i = 0; i < run->wf->n_jobs; i++) {
        s_job_t *job = &run->jobs[i];
        const kiln_job_t *spec = &run->wf->jobs[i];
        if (job == failed || !spec->origin || strcmp(spec->origin, origin) != 0 ||
            kiln_job_state_is_final(job->state))
            continue;
        if (job->state == KILN_JOB_READY) {
            s_ready_remove(self, job);
            kiln_queue_drop(self->queue, job->key, job->labels, "cancelled");
            s_job_final(self, job, KILN_JOB_CANCELLED, now);
        } else if (job->state == KILN_JOB_RUNNING && job->worker && !job->cancel_sent) {
            s_send_cancel(self, job);
        }
    }
}

static void s_on_job_result(kiln_server_t *self, s_worker_t *w, const Kiln__JobResult *m)
{
    s_job_t *cur = s_job_find(self, m->job_key);
    if (cur && cur->token == m->token && cur->state != KILN_JOB_RUNNING &&
        strcmp(cur->worker_name, w->name) == 0) {
        /* Our acknowledgement was lost and the worker sent it again. */
        self->stats.duplicate_results++;
        s_ack_result(self, w, m);
        return;
    }
    s_job_t *job = s_fenced_job(self, w, m->job_key, m->token, "job result");
    if (!job) {
        /* A zombie's late result: recorded, never applied, and acknowledged
         * so that it stops. */
        char detail[256];
        snprintf(detail, sizeof detail, "%s token %llu outcome %d", m->job_key,
                 (unsigned long long)m->token, (int)m->outcome);
        kiln_history_audit(self->history, "result.stale", w->name, detail, kiln_clock_wall_ms());
        s_ack_result(self, w, m);
        return;
    }
    /* The steps that ended with the job come first, as their own messages
     * would have. */
    for (size_t i = 0; i < m->n_steps; i++)
        s_apply_step_result(self, job, m->steps[i]);
    s_run_t *run = job->run;
    const kiln_job_t *spec = &run->wf->jobs[job->idx];
    int64_t now = kiln_clock_wall_ms();
    s_worker_release(w, job);
    if (m->outcome == KILN__OUTCOME__OUTCOME_INFRA_ERROR ||
        m->outcome == KILN__OUTCOME__OUTCOME_DRAINED) {
        bool drained = m->outcome == KILN__OUTCOME__OUTCOME_DRAINED;
        kiln_log_warn("job %s: worker %s %s: %s", job->key, w->name,
                      drained ? "handed it back while draining" : "reports an infrastructure error",
                      m->message);
        s_attempt_lost(self, job, drained ? "worker_drained" : "infra_error", m->message);
        s_ack_result(self, w, m);
        s_run_check_done(self, run);
        s_dispatch(self);
        return;
    }
    if (m->outcome == KILN__OUTCOME__OUTCOME_SUCCESS && m->finished_ms >= m->started_ms) {
        int64_t took = (int64_t)(m->finished_ms - m->started_ms);
        run->recent_ms = run->n_recent ? run->recent_ms + (took - run->recent_ms) / 4 : took;
        if (run->n_recent < UINT_MAX)
            run->n_recent++;
    }
    kiln_job_state_t state;
    switch (m->outcome) {
    case KILN__OUTCOME__OUTCOME_SUCCESS: state = KILN_JOB_SUCCESS; break;
    case KILN__OUTCOME__OUTCOME_TIMED_OUT: state = KILN_JOB_TIMED_OUT; break;
    case KILN__OUTCOME__OUTCOME_CANCELLED: state = KILN_JOB_CANCELLED; break;
    default: state = KILN_JOB_FAILURE; break;
    }
    const char *name = kiln_job_state_name(state);
    kiln_history_attempt_finish(self->history, run->id, spec->id, job->attempt, name,
                                m->message[0] ? m->message : NULL, now);
    s_record_results(self, job, m);
    /* A script failure is the build's verdict: retried only when the
     * workflow asks (kiln.retry). */
    if ((state == KILN_JOB_FAILURE || state == KILN_JOB_TIMED_OUT) && !run->cancel_requested &&
        job->script_failures < spec->retry) {
        job->script_failures++;
        self->stats.retries_failure++;
        kiln_log_info("job %s: attempt %u %s; retry %u of %u", job->key, job->attempt, name,
                      job->script_failures, spec->retry);
        s_requeue(self, job);
        s_ack_result(self, w, m);
        s_dispatch(self);
        return;
    }
    if (kiln_queue_finish(self->queue, job->key, job->token, name) != 0) {
        kiln_log_warn("job %s: %s", job->key, kiln_error_last());
        self->redis_dirty = true;
    }
    kiln_log_info("job %s finished: %s on %s", job->key, name, w->name);
    s_job_final(self, job, state, now);
    job->worker = NULL;
    if ((state == KILN_JOB_FAILURE || state == KILN_JOB_TIMED_OUT) && spec->origin &&
        spec->fail_fast && !spec->continue_on_error)
        s_fail_fast(self, job);
    s_ack_result(self, w, m);
    s_run_check_done(self, run);
    s_dispatch(self);
}

static void s_on_worker_message(kiln_server_t *self, kiln_transport_msg_t *msg,
                                const char *key_name)
{
    Kiln__Envelope *env = msg->env;
    switch (env->body_case) {
    case KILN__ENVELOPE__BODY_HELLO:
        s_on_hello(self, msg, key_name);
        return;
    case KILN__ENVELOPE__BODY_HEARTBEAT:
    case KILN__ENVELOPE__BODY_ACCEPTED:
    case KILN__ENVELOPE__BODY_STEP_STARTED:
    case KILN__ENVELOPE__BODY_LOG:
    case KILN__ENVELOPE__BODY_STEP_RESULT:
    case KILN__ENVELOPE__BODY_JOB_RESULT:
        break;
    default:
        /* Checked before anything else: a worker key gets no answer to
         * a message only clients may send. */
        self->stats.garbage_dropped++;
        kiln_log_warn("worker key %s (%s) sent a message workers may not send (%d); dropped",
                      key_name, msg->peer_address, (int)env->body_case);
        return;
    }
    s_worker_t *w = s_worker_find(self, msg->identity, msg->id_len);
    if (!w) {
        /* We do not know this worker (we restarted, or it was declared
         * lost): ask it to introduce itself again, once per heartbeat: a
         * worker with many messages in flight would otherwise get (and
         * answer) one request per message. */
        size_t slot = s_wtab_slot(msg->identity, msg->id_len) & (S_REHELLO_SLOTS - 1);
        int64_t now = kiln_clock_mono_ms();
        if (self->rehello_hash[slot] == s_wtab_slot(msg->identity, msg->id_len) &&
            now - self->rehello_at[slot] < self->cfg.heartbeat_ms)
            return;
        self->rehello_hash[slot] = s_wtab_slot(msg->identity, msg->id_len);
        self->rehello_at[slot] = now;
        Kiln__Envelope reply = KILN__ENVELOPE__INIT;
        Kiln__Welcome welcome = KILN__WELCOME__INIT;
        welcome.rehello = true;
        reply.body_case = KILN__ENVELOPE__BODY_WELCOME;
        reply.welcome = &welcome;
        s_send(self, msg->identity, msg->id_len, &reply);
        return;
    }
    w->last_seen = kiln_clock_mono_ms();
    w->suspect_deadline = 0;
    if (msg->src_fd >= 0)
        w->fd = msg->src_fd;
    switch (env->body_case) {
    case KILN__ENVELOPE__BODY_HEARTBEAT: s_on_heartbeat(self, w, env->heartbeat); break;
    case KILN__ENVELOPE__BODY_ACCEPTED: break;
    case KILN__ENVELOPE__BODY_STEP_STARTED: s_on_step_started(self, w, env->step_started); break;
    case KILN__ENVELOPE__BODY_LOG: s_on_log(self, w, env->log); break;
    case KILN__ENVELOPE__BODY_STEP_RESULT: s_on_step_result(self, w, env->step_result); break;
    case KILN__ENVELOPE__BODY_JOB_RESULT: s_on_job_result(self, w, env->job_result); break;
    default: break;
    }
}

/* ------------------------------------------------------ client messages */

static void s_on_submit(kiln_server_t *self, const kiln_transport_msg_t *msg,
                        const Kiln__Request *req, const char *client)
{
    kiln_diags_t diags;
    kiln_workflow_t *wf = NULL;
    s_run_t *run = NULL;
    char *text = NULL;
    json_t *actions = NULL;
    const char *file = req->workflow_file[0] ? req->workflow_file : "workflow.yml";
    kiln_diags_init(&diags, file);
    if (req->workflow_yaml.len > KILN_WF_MAX_BYTES) {
        char err[128];
        snprintf(err, sizeof err, "%s: workflow is %zu bytes, over the limit of %d", file,
                 req->workflow_yaml.len, KILN_WF_MAX_BYTES);
        s_reply(self, msg, req->request_id, KILN_EINVAL, err, 0, NULL);
        goto cleanup;
    }
    actions = json_object();
    for (size_t i = 0; i < req->n_actions && i < KILN_WF_MAX_ACTIONS; i++)
        json_object_set_new(actions, req->actions[i]->key, json_string(req->actions[i]->value));
    if (kiln_pipeline_parse_with(&wf, file, (const char *)req->workflow_yaml.data,
                                 req->workflow_yaml.len, actions, &diags) != 0) {
        text = kiln_diags_format(&diags);
        kiln_log_info("refused a workflow from %s: %s", client, kiln_error_last());
        s_reply(self, msg, req->request_id, KILN_EINVAL, text ? text : kiln_error_last(), 0, NULL);
        goto cleanup;
    }
    if (self->n_runs >= KILN_SERVER_MAX_RUNS) {
        s_reply(self, msg, req->request_id, KILN_EAGAIN, "too many active runs; try later", 0,
                NULL);
        goto cleanup;
    }
    run = calloc(1, sizeof *run);
    if (!run || !(run->jobs = calloc(wf->n_jobs, sizeof *run->jobs)) ||
        !(run->dag = kiln_dag_new(wf))) {
        s_reply(self, msg, req->request_id, -1, "coordinator out of memory", 0, NULL);
        goto cleanup;
    }
    run->created_ms = kiln_clock_wall_ms();
    snprintf(run->actor, sizeof run->actor, "%s", client);
    run->file = strdup(file);
    run->yaml = malloc(req->workflow_yaml.len + 1);
    if (!run->file || !run->yaml) {
        s_reply(self, msg, req->request_id, -1, "coordinator out of memory", 0, NULL);
        goto cleanup;
    }
    memcpy(run->yaml, req->workflow_yaml.data, req->workflow_yaml.len);
    run->yaml[req->workflow_yaml.len] = '\0';
    run->yaml_len = req->workflow_yaml.len;
    run->actions = json_incref(actions);
    run->matrices = json_object();
    {
        json_t *given = json_object();
        for (size_t i = 0; i < req->n_inputs; i++)
            json_object_set_new(given, req->inputs[i]->key, json_string(req->inputs[i]->value));
        int irc = kiln_pipeline_inputs(wf, given, &run->inputs);
        json_decref(given);
        if (irc == 0) {
            /* Names and labels with ${{ }} are settled now that the inputs
             * are known; planning needs the run to see its workflow. */
            run->wf = wf;
            irc = s_plan_run(self, run);
            run->wf = NULL;
        }
        if (irc != 0) {
            char why[KILN_ERROR_MAX + 64];
            snprintf(why, sizeof why, "%s: %s", file, kiln_error_last());
            s_reply(self, msg, req->request_id, KILN_EINVAL, why, 0, NULL);
            goto cleanup;
        }
    }
    size_t names_size = 0;
    if (!(run->names = s_names_alloc(wf, &names_size))) {
        s_reply(self, msg, req->request_id, -1, "coordinator out of memory", 0, NULL);
        goto cleanup;
    }
    kiln_history_begin(self->history);
    if (kiln_history_run_create(self->history, wf->name, file, (const char *)req->workflow_yaml.data,
                                req->workflow_yaml.len, run->created_ms, &run->id) != 0) {
        kiln_history_commit(self->history);
        s_reply(self, msg, req->request_id, KILN_EINFRA, kiln_error_last(), 0, NULL);
        goto cleanup;
    }
    for (size_t i = 0; i < wf->n_jobs; i++) {
        const kiln_job_t *spec = &wf->jobs[i];
        s_job_t *job = &run->jobs[i];
        job->run = run;
        job->idx = i;
        /* A matrix computed at run time gets its rows when it is. */
        if (!spec->matrix_expr)
            kiln_history_job_create(self->history, run->id, spec->id, spec->name,
                                    (const char *const *)spec->needs, spec->n_needs,
                                    (const char *const *)spec->runs_on, spec->n_runs_on);
    }
    s_names_fill(run->id, wf, run->jobs, run->names, names_size);
    kiln_history_audit(self->history, "run.submit", client, file, run->created_ms);
    if (json_object_size(run->inputs))
        kiln_history_run_inputs(self->history, run->id, run->inputs);
    if (json_object_size(actions))
        kiln_history_run_actions(self->history, run->id, actions);
    kiln_history_commit(self->history);
    run->wf = wf;
    wf = NULL;
    s_rank_run(self, run);
    if (self->n_runs == self->cap_runs) {
        size_t ncap = self->cap_runs ? self->cap_runs * 2 : 16;
        s_run_t **grown = realloc(self->runs, ncap * sizeof *grown);
        if (!grown) {
            s_reply(self, msg, req->request_id, -1, "coordinator out of memory", 0, NULL);
            goto cleanup;
        }
        self->runs = grown;
        self->cap_runs = ncap;
    }
    self->runs[self->n_runs++] = run;
    self->stats.runs_submitted++;
    if (req->follow)
        s_watcher_add(run, msg, NULL, req->follow_quiet);
    /* Warnings travel back with the accepted run. */
    text = diags.n ? kiln_diags_format(&diags) : NULL;
    s_reply(self, msg, req->request_id, 0, text, run->id, NULL);
    kiln_log_info("run %lld accepted from %s: %s, %zu jobs", (long long)run->id, client,
                  run->wf->name, run->wf->n_jobs);
    s_run_t *r = run;
    run = NULL;
    if (s_concurrency_admit(self, r)) {
        r->held = true;
        kiln_log_info("run %lld waits for its concurrency group '%s'", (long long)r->id, r->group);
    }
    s_enqueue_ready(self, r);
    s_dispatch(self);
cleanup:
    free(text);
    json_decref(actions);
    s_run_free(&run);
    kiln_pipeline_destroy(&wf);
    kiln_diags_free(&diags);
}

/* Cancels a run: queued jobs end now, running ones are told to stop; the
 * run finishes when they have. May free the run (when nothing runs). */
static void s_cancel_run(kiln_server_t *self, s_run_t *run, const char *actor, const char *why)
{
    char detail[160];
    snprintf(detail, sizeof detail, "run %lld%s%s", (long long)run->id, why ? ": " : "",
             why ? why : "");
    kiln_history_audit(self->history, "run.cancel", actor, detail, kiln_clock_wall_ms());
    run->cancel_requested = true;
    run->held = false;
    size_t cancelled[KILN_WF_MAX_JOBS];
    size_t n = kiln_dag_cancel(run->dag, cancelled, KILN_WF_MAX_JOBS);
    int64_t now = kiln_clock_wall_ms();
    for (size_t i = 0; i < n; i++) {
        s_job_t *job = &run->jobs[cancelled[i]];
        if (job->in_ready) {
            s_ready_remove(self, job);
            kiln_queue_drop(self->queue, job->key, job->labels, "cancelled");
        }
        job->state = KILN_JOB_CANCELLED;
        kiln_history_job_set_state(self->history, run->id, run->wf->jobs[job->idx].id,
                                   "cancelled", 0, NULL, 0, now);
        s_emit_job(self, job, KILN__EVENT_KIND__EVENT_JOB_FINISHED, 0);
    }
    /* A job re-queued after a lost attempt is ready here but still running
     * in the DAG's eyes, and an orphan lease has no worker to tell: both end
     * now. */
    for (size_t i = 0; i < run->wf->n_jobs; i++) {
        s_job_t *job = &run->jobs[i];
        if (job->state == KILN_JOB_READY && job->in_ready) {
            s_ready_remove(self, job);
            kiln_queue_drop(self->queue, job->key, job->labels, "cancelled");
            s_job_final(self, job, KILN_JOB_CANCELLED, now);
        } else if (job->state == KILN_JOB_RUNNING && !job->worker) {
            kiln_queue_finish(self->queue, job->key, job->token, "cancelled");
            kiln_history_attempt_finish(self->history, run->id, run->wf->jobs[i].id,
                                        job->attempt, "cancelled", NULL, now);
            s_job_final(self, job, KILN_JOB_CANCELLED, now);
        }
    }
    for (size_t i = 0; i < run->wf->n_jobs; i++) {
        s_job_t *job = &run->jobs[i];
        if (job->state != KILN_JOB_RUNNING || !job->worker || job->cancel_sent)
            continue;
        s_send_cancel(self, job);
    }
    s_run_check_done(self, run);
}

static void s_on_cancel(kiln_server_t *self, const kiln_transport_msg_t *msg,
                        const Kiln__Request *req, const char *client)
{
    s_run_t *run = s_run_find(self, (int64_t)req->run_id);
    if (!run) {
        s_reply(self, msg, req->request_id, KILN_ENOTFOUND, "no active run with that id", 0,
                NULL);
        return;
    }
    s_reply(self, msg, req->request_id, 0, NULL, run->id, NULL);
    s_cancel_run(self, run, client, NULL);
}

/* Workflow-level concurrency, farm-wide, as GitHub: in a group at most one
 * run runs and one waits. A new run cancels the one waiting; with
 * cancel-in-progress it cancels the running one too. Returns true when the
 * new run must wait for the group. */
static bool s_concurrency_admit(kiln_server_t *self, s_run_t *run)
{
    if (!run->group[0])
        return false;
    bool wait = false;
    for (size_t i = 0; i < self->n_runs; i++) {
        s_run_t *other = self->runs[i];
        if (other == run || other->cancel_requested || strcmp(other->group, run->group) != 0)
            continue;
        if (other->held) {
            s_cancel_run(self, other, run->actor, "superseded in its concurrency group");
            i = (size_t)-1; /* the run list may have changed */
            continue;
        }
        if (run->wf->cancel_in_progress) {
            s_cancel_run(self, other, run->actor, "cancel-in-progress in its concurrency group");
            i = (size_t)-1;
            continue;
        }
        wait = true;
    }
    /* A cancelled run still finishing keeps the group busy. */
    for (size_t i = 0; i < self->n_runs && !wait; i++)
        wait = self->runs[i] != run && strcmp(self->runs[i]->group, run->group) == 0 &&
               !self->runs[i]->held;
    return wait;
}

/* A run of the group finished: the one waiting starts. */
static void s_concurrency_release(kiln_server_t *self, const char *group)
{
    if (!group[0])
        return;
    for (size_t i = 0; i < self->n_runs; i++) {
        s_run_t *r = self->runs[i];
        if (r->held && strcmp(r->group, group) == 0) {
            r->held = false;
            kiln_log_info("run %lld: its concurrency group '%s' is free", (long long)r->id,
                          group);
            s_enqueue_ready(self, r);
            return;
        }
    }
}

static json_t *s_workers_json(kiln_server_t *self)
{
    json_t *arr = json_array();
    int64_t now = kiln_clock_mono_ms();
    for (size_t i = 0; arr && i < self->n_workers; i++) {
        s_worker_t *w = self->workers[i];
        json_t *labels = json_array(), *jobs = json_array();
        for (size_t k = 0; k < w->n_labels; k++)
            json_array_append_new(labels, json_string(w->labels[k]));
        for (unsigned k = 0; k < w->cap; k++)
            if (w->jobs[k])
                json_array_append_new(jobs, json_string(w->jobs[k]->key));
        json_array_append_new(
            arr, json_pack("{s:s, s:s, s:s, s:s, s:o, s:i, s:i, s:b, s:I, s:I, s:o}", "name",
                           w->name, "key", w->key_name, "hostname", w->hostname, "version",
                           w->version, "labels", labels, "slots", (int)w->slots, "busy",
                           (int)w->busy, "draining", w->draining, "connected_ms",
                           (json_int_t)w->connected_ms, "last_seen_ms_ago",
                           (json_int_t)(now - w->last_seen), "jobs", jobs));
    }
    return arr;
}

/* Counters and gauges for operators (kiln stats; the Prometheus endpoint
 * reads the same document). */
static json_t *s_stats_json(kiln_server_t *self)
{
    const s_stats_t *st = &self->stats;
    json_t *depth = json_object();
    unsigned busy = 0, slots = 0;
    for (size_t r = 0; r < self->n_runs; r++) {
        for (size_t i = 0; i < self->runs[r]->n_ready; i++) {
            const s_job_t *j = self->runs[r]->ready[i];
            const char *key = j->labels[0] ? j->labels : "(any)";
            json_t *n = json_object_get(depth, key);
            json_object_set_new(depth, key, json_integer(n ? json_integer_value(n) + 1 : 1));
        }
    }
    for (size_t i = 0; i < self->n_workers; i++) {
        busy += self->workers[i]->busy;
        slots += self->workers[i]->slots;
    }
    return json_pack(
        "{s:I, s:{s:I, s:I, s:I, s:I}, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I,"
        " s:I, s:I, s:I, s:o, s:I, s:b}",
        "dispatches", (json_int_t)st->dispatches, "retries", "worker_lost",
        (json_int_t)st->retries_worker_lost, "worker_drained", (json_int_t)st->retries_worker_drained,
        "infra_error", (json_int_t)st->retries_infra_error, "failure",
        (json_int_t)st->retries_failure, "lease_expiries", (json_int_t)st->lease_expiries,
        "stale_rejected", (json_int_t)st->stale_rejected, "duplicate_results",
        (json_int_t)st->duplicate_results, "garbage_dropped", (json_int_t)st->garbage_dropped,
        "workers_lost", (json_int_t)st->workers_lost, "runs_submitted",
        (json_int_t)st->runs_submitted, "runs_finished", (json_int_t)st->runs_finished,
        "runs_recovered", (json_int_t)st->runs_recovered, "jobs_readopted",
        (json_int_t)st->jobs_readopted, "logs_truncated", (json_int_t)st->logs_truncated,
        "redis_reconnects", (json_int_t)st->redis_reconnects, "workers_connected",
        (json_int_t)self->n_workers, "slots_busy", (json_int_t)busy, "slots_total",
        (json_int_t)slots, "queue_depth", depth, "runs_active", (json_int_t)self->n_runs,
        "redis_connected", kiln_queue_connected(self->queue) != 0);
}

static void s_on_drain(kiln_server_t *self, const kiln_transport_msg_t *msg,
                       const Kiln__Request *req, const char *client)
{
    s_worker_t *w = NULL;
    for (size_t i = 0; i < self->n_workers && !w; i++)
        if (strcmp(self->workers[i]->name, req->worker) == 0)
            w = self->workers[i];
    if (!w) {
        s_reply(self, msg, req->request_id, KILN_ENOTFOUND, "no connected worker by that name", 0,
                NULL);
        return;
    }
    Kiln__Envelope env = KILN__ENVELOPE__INIT;
    Kiln__Drain d = KILN__DRAIN__INIT;
    d.deadline_ms = req->deadline_ms;
    d.reason = (char *)"requested by an operator";
    env.body_case = KILN__ENVELOPE__BODY_DRAIN;
    env.drain = &d;
    if (s_send(self, w->identity, w->id_len, &env) != 0) {
        s_reply(self, msg, req->request_id, KILN_EINFRA, "cannot reach the worker", 0, NULL);
        return;
    }
    w->draining = true;
    char detail[200];
    snprintf(detail, sizeof detail, "worker %s", w->name);
    kiln_history_audit(self->history, "worker.drain", client, detail, kiln_clock_wall_ms());
    kiln_log_info("worker %s: drain requested by %s", w->name, client);
    s_reply(self, msg, req->request_id, 0, NULL, 0, NULL);
}

typedef struct {
    kiln_server_t *self;
    const kiln_transport_msg_t *msg;
    int64_t run_id;
} s_replay_t;

static int s_replay_log(void *ctx, const char *job_id, unsigned attempt, unsigned step,
                        int stream, const void *data, size_t len, int64_t ts_ms)
{
    s_replay_t *r = ctx;
    Kiln__Envelope env = KILN__ENVELOPE__INIT;
    Kiln__RunEvent ev = KILN__RUN_EVENT__INIT;
    ev.run_id = (uint64_t)r->run_id;
    ev.kind = KILN__EVENT_KIND__EVENT_LOG;
    ev.job_id = (char *)job_id;
    ev.attempt = attempt;
    ev.step = step;
    ev.stream = (Kiln__Stream)stream;
    ev.data.data = (uint8_t *)data;
    ev.data.len = len;
    ev.ts_ms = (uint64_t)ts_ms;
    env.body_case = KILN__ENVELOPE__BODY_EVENT;
    env.event = &ev;
    /* A client too slow for its own log replay is cut off, not waited for. */
    return s_send(r->self, r->msg->identity, r->msg->id_len, &env) != 0 ? 1 : 0;
}

static void s_on_logs(kiln_server_t *self, const kiln_transport_msg_t *msg,
                      const Kiln__Request *req)
{
    json_t *probe = NULL;
    int rc = kiln_history_run_json(self->history, (int64_t)req->run_id, &probe);
    json_decref(probe);
    if (rc != 0) {
        s_reply(self, msg, req->request_id, rc, kiln_error_last(), 0, NULL);
        return;
    }
    s_reply(self, msg, req->request_id, 0, NULL, (int64_t)req->run_id, NULL);
    s_replay_t ctx = {self, msg, (int64_t)req->run_id};
    const char *job = req->job_id[0] ? req->job_id : NULL;
    if (kiln_history_logs_each(self->history, (int64_t)req->run_id, job, s_replay_log, &ctx) != 0)
        return;
    s_run_t *run = s_run_find(self, (int64_t)req->run_id);
    bool job_over = false;
    if (run && job) {
        long idx = kiln_pipeline_find_job(run->wf, job);
        job_over = idx < 0 || kiln_job_state_is_final(run->jobs[idx].state);
    }
    if (req->follow && run && !job_over) {
        s_watcher_add(run, msg, job, false);
        return;
    }
    Kiln__Envelope env = KILN__ENVELOPE__INIT;
    Kiln__RunEvent ev = KILN__RUN_EVENT__INIT;
    ev.run_id = req->run_id;
    ev.kind = KILN__EVENT_KIND__EVENT_END;
    env.body_case = KILN__ENVELOPE__BODY_EVENT;
    env.event = &ev;
    s_send(self, msg->identity, msg->id_len, &env);
}

static void s_on_client_message(kiln_server_t *self, kiln_transport_msg_t *msg,
                                const char *client)
{
    if (msg->env->body_case != KILN__ENVELOPE__BODY_REQUEST) {
        self->stats.garbage_dropped++;
        kiln_log_warn("client %s (%s) sent a message clients may not send (%d); dropped", client,
                      msg->peer_address, (int)msg->env->body_case);
        return;
    }
    const Kiln__Request *req = msg->env->request;
    json_t *json = NULL;
    int rc;
    switch (req->kind) {
    case KILN__REQUEST_KIND__REQ_PING:
        s_reply(self, msg, req->request_id, 0, NULL, 0, NULL);
        break;
    case KILN__REQUEST_KIND__REQ_SUBMIT:
        s_on_submit(self, msg, req, client);
        break;
    case KILN__REQUEST_KIND__REQ_STATUS:
        if (req->run_id)
            rc = kiln_history_run_json(self->history, (int64_t)req->run_id, &json);
        else
            rc = kiln_history_runs_json(self->history, req->limit ? req->limit : 20, &json);
        s_reply_as(self, msg, req->request_id, rc, rc ? kiln_error_last() : NULL,
                   (int64_t)req->run_id, json, req->pretty && req->run_id);
        break;
    case KILN__REQUEST_KIND__REQ_HISTORY:
        rc = kiln_history_runs_json(self->history, req->limit, &json);
        s_reply(self, msg, req->request_id, rc, rc ? kiln_error_last() : NULL, 0, json);
        break;
    case KILN__REQUEST_KIND__REQ_LOGS:
        s_on_logs(self, msg, req);
        break;
    case KILN__REQUEST_KIND__REQ_CANCEL:
        s_on_cancel(self, msg, req, client);
        break;
    case KILN__REQUEST_KIND__REQ_WORKERS:
        json = s_workers_json(self);
        s_reply(self, msg, req->request_id, 0, NULL, 0, json);
        break;
    case KILN__REQUEST_KIND__REQ_STATS:
        json = s_stats_json(self);
        s_reply(self, msg, req->request_id, 0, NULL, 0, json);
        break;
    case KILN__REQUEST_KIND__REQ_DRAIN:
        s_on_drain(self, msg, req, client);
        break;
    case KILN__REQUEST_KIND__REQ_WATCH: {
        s_run_t *run = s_run_find(self, (int64_t)req->run_id);
        if (run) {
            s_watcher_add(run, msg, NULL, req->follow_quiet);
            s_reply(self, msg, req->request_id, 0, NULL, run->id, NULL);
        } else {
            rc = kiln_history_run_json(self->history, (int64_t)req->run_id, &json);
            s_reply(self, msg, req->request_id, rc ? rc : KILN_ENOTFOUND,
                    rc ? kiln_error_last() : "run is not active", (int64_t)req->run_id, json);
        }
        break;
    }
    default:
        s_reply(self, msg, req->request_id, KILN_EINVAL, "unknown request", 0, NULL);
        break;
    }
    json_decref(json);
}

/* ----------------------------------------------------------------- loop */

static void s_on_router(kiln_server_t *self)
{
    /* Bounded batch per wake-up so timers and signals are not starved. */
    for (int i = 0; i < 1000; i++) {
        kiln_transport_msg_t msg;
        int rc = kiln_transport_recv(self->router, true, &msg);
        if (rc == KILN_EAGAIN)
            break;
        if (rc != 0) {
            self->stats.garbage_dropped++;
            kiln_log_warn("dropped a message: %s", kiln_error_last());
            continue;
        }
        const char *name = NULL;
        kiln_role_t role = kiln_auth_role(msg.user_id, &name);
        if (role == KILN_ROLE_WORKER) {
            if (!self->in_batch) {
                kiln_history_begin(self->history);
                kiln_queue_batch_begin(self->queue);
                self->in_batch = true;
            }
            s_on_worker_message(self, &msg, name);
        } else if (role == KILN_ROLE_CLIENT) {
            /* A client sees committed state, and its own request commits
             * before it is answered. */
            s_flush_batch(self);
            s_on_client_message(self, &msg, name);
        } else {
            self->stats.garbage_dropped++;
            kiln_log_warn("dropped a message from an unauthenticated peer (%s)", msg.peer_address);
        }
        kiln_transport_msg_clear(&msg);
        if (self->expand_pending)
            s_expand_pending(self);
    }
    s_flush_batch(self);
}

/* Writes the coordinator's view of every active job into Redis, after Redis
 * was unreachable or came back from an older append-only file. */
static void s_reconcile(kiln_server_t *self)
{
    size_t n = 0;
    int64_t deadline = kiln_clock_wall_ms() + self->cfg.lease_ms;
    /* One batch: a farm with 100,000 queued jobs is written back in a few
     * hundred script calls, not 100,000 round trips. */
    int rc = 0;
    kiln_queue_batch_begin(self->queue);
    for (size_t r = 0; r < self->n_runs && rc == 0; r++) {
        s_run_t *run = self->runs[r];
        for (size_t i = 0; i < run->wf->n_jobs && rc == 0; i++) {
            s_job_t *job = &run->jobs[i];
            if (job->state == KILN_JOB_PENDING)
                continue;
            if (job->state == KILN_JOB_READY) {
                /* Redis may hold a newer token than we do (tokens we
                 * propose must be newer to be taken): the flush sets ours
                 * to the one it keeps, the larger, so the next lease starts
                 * above it. A running job keeps its token, the one its
                 * worker presents. */
                rc = kiln_queue_restore(self->queue, job->key, job->labels, "ready", job->token,
                                        job->attempt, NULL, 0, NULL, &job->token);
            } else if (job->state == KILN_JOB_RUNNING) {
                rc = kiln_queue_restore(self->queue, job->key, job->labels, "leased", job->token,
                                        job->attempt, job->worker_name, deadline, NULL, NULL);
            } else {
                rc = kiln_queue_restore(self->queue, job->key, job->labels, "done", job->token,
                                        job->attempt, NULL, 0, kiln_job_state_name(job->state),
                                        NULL);
            }
            n += rc == 0;
        }
    }
    if (kiln_queue_batch_end(self->queue) != 0 || rc != 0) {
        kiln_log_warn("reconcile: %s", kiln_error_last());
        return; /* still dirty; the next tick tries again */
    }
    self->redis_dirty = false;
    kiln_log_info("reconciled %zu jobs into Redis", n);
}

static void s_check_redis(kiln_server_t *self, int64_t now)
{
    if (!kiln_queue_connected(self->queue)) {
        self->redis_dirty = true;
        if (now < self->redis_retry_at)
            return;
        if (kiln_queue_reconnect(self->queue) != 0) {
            kiln_log_debug("%s", kiln_error_last());
            self->redis_backoff_ms = self->redis_backoff_ms ? self->redis_backoff_ms * 2 : 50;
            if (self->redis_backoff_ms > 2000)
                self->redis_backoff_ms = 2000;
            self->redis_retry_at = now + self->redis_backoff_ms;
            return;
        }
        self->redis_backoff_ms = 0;
        self->stats.redis_reconnects++;
    }
    if (self->redis_dirty)
        s_reconcile(self);
}

/* Reads the replies of pipelined Redis calls; a refusal or a lost
 * connection marks Redis for reconcile. */
static void s_queue_settle(kiln_server_t *self)
{
    if (kiln_queue_pending(self->queue) && kiln_queue_flush(self->queue) != 0) {
        kiln_log_warn("%s", kiln_error_last());
        self->redis_dirty = true;
    }
}

static void s_on_timer(kiln_server_t *self)
{
    int64_t now = kiln_clock_mono_ms();
    s_queue_settle(self);
    for (size_t i = 0; i < self->n_workers;) {
        s_worker_t *w = self->workers[i];
        if (now - w->last_seen > self->cfg.lease_ms) {
            s_worker_lost(self, w, "no heartbeat within the lease");
            continue; /* the array was compacted */
        }
        if (w->suspect_deadline && now >= w->suspect_deadline) {
            s_worker_lost(self, w, "its connection closed and it did not come back");
            continue;
        }
        i++;
    }
    /* Orphan leases (recovered after a restart) whose worker never came
     * back: the job runs again elsewhere. Collected first because finishing
     * a run changes the run list. */
    char expired[64][KILN_JOB_KEY_MAX];
    size_t n_expired = 0;
    for (size_t r = 0; r < self->n_runs && n_expired < 64; r++) {
        s_run_t *run = self->runs[r];
        for (size_t i = 0; i < run->wf->n_jobs && n_expired < 64; i++) {
            s_job_t *job = &run->jobs[i];
            if (job->state == KILN_JOB_RUNNING && !job->worker && job->orphan_deadline &&
                now >= job->orphan_deadline)
                snprintf(expired[n_expired++], KILN_JOB_KEY_MAX, "%s", job->key);
        }
    }
    for (size_t k = 0; k < n_expired; k++) {
        s_job_t *job = s_job_find(self, expired[k]);
        if (!job)
            continue;
        s_run_t *run = job->run;
        self->stats.lease_expiries++;
        s_attempt_lost(self, job, "worker_lost", "its worker did not return within the lease");
        s_run_check_done(self, run);
    }
    s_check_redis(self, now);
    s_dispatch(self);
    if (self->expand_pending)
        s_expand_pending(self);
}

/* A connection of the router closed (ZMQ_EVENT_DISCONNECTED, reported by
 * file descriptor). The worker that last spoke on it is given a heartbeat
 * and a half to speak again: enough for a worker that merely reconnected,
 * far shorter than the lease for one whose process died. The fd may already
 * belong to a new connection, hence suspicion rather than a verdict. */
static void s_on_monitor(kiln_server_t *self)
{
    for (;;) {
        zmq_msg_t ev, addr;
        zmq_msg_init(&ev);
        zmq_msg_init(&addr);
        if (zmq_msg_recv(&ev, self->monitor, ZMQ_DONTWAIT) == -1) {
            zmq_msg_close(&ev);
            zmq_msg_close(&addr);
            return;
        }
        if (zmq_msg_more(&ev))
            zmq_msg_recv(&addr, self->monitor, 0);
        if (zmq_msg_size(&ev) >= 6) {
            const uint8_t *d = zmq_msg_data(&ev);
            uint16_t event;
            uint32_t value;
            memcpy(&event, d, sizeof event);
            memcpy(&value, d + 2, sizeof value);
            int64_t deadline = kiln_clock_mono_ms() + self->cfg.heartbeat_ms * 3 / 2;
            for (size_t i = 0; event == ZMQ_EVENT_DISCONNECTED && i < self->n_workers; i++) {
                s_worker_t *w = self->workers[i];
                if (w->fd == (int)value && !w->suspect_deadline) {
                    w->suspect_deadline = deadline;
                    kiln_log_debug("worker %s: its connection closed", w->name);
                    if (deadline < self->next_tick)
                        self->next_tick = deadline;
                }
            }
        }
        zmq_msg_close(&ev);
        zmq_msg_close(&addr);
    }
}

static void s_on_signal(kiln_server_t *self)
{
    struct signalfd_siginfo si;
    while (read(self->sigfd, &si, sizeof si) == sizeof si) {
        if (si.ssi_signo == SIGHUP) {
            kiln_log_info("SIGHUP: reloading the allow-list");
            if (kiln_auth_reload(self->auth) != 0)
                kiln_log_error("%s", kiln_error_last());
        } else {
            kiln_log_info("signal %u: stopping", si.ssi_signo);
            self->stopping = true;
        }
    }
}

int kiln_server_run(kiln_server_t *self)
{
    self->next_tick = kiln_clock_mono_ms() + self->cfg.heartbeat_ms;
    while (!self->stopping) {
        zmq_pollitem_t items[4] = {
            {self->router, 0, ZMQ_POLLIN, 0},
            {kiln_auth_socket(self->auth), 0, ZMQ_POLLIN, 0},
            {self->monitor, 0, ZMQ_POLLIN, 0},
            {NULL, self->sigfd, ZMQ_POLLIN, 0},
        };
        int n_items = self->sigfd >= 0 ? 4 : 3;
        int64_t now = kiln_clock_mono_ms();
        long timeout = self->next_tick > now ? (long)(self->next_tick - now) : 0;
        if (zmq_poll(items, n_items, timeout) == -1) {
            if (zmq_errno() == EINTR)
                continue;
            kiln_log_error("zmq_poll: %s", zmq_strerror(zmq_errno()));
            return -1;
        }
        if (items[1].revents & ZMQ_POLLIN)
            kiln_auth_handle(self->auth);
        if (items[0].revents & ZMQ_POLLIN)
            s_on_router(self);
        if (items[2].revents & ZMQ_POLLIN)
            s_on_monitor(self);
        if (n_items == 4 && (items[3].revents & ZMQ_POLLIN))
            s_on_signal(self);
        if (kiln_clock_mono_ms() >= self->next_tick) {
            self->next_tick = kiln_clock_mono_ms() + self->cfg.heartbeat_ms / 2;
            s_on_timer(self);
        }
    }
    return self->exit_code;
}

/* ------------------------------------------------------------- recovery */

typedef struct {
    int64_t id;
    char *file;
    char *yaml;
    size_t len;
    int64_t created_ms;
    char *inputs;
    char *actions;
    char *matrices;
} s_saved_run_t;

typedef struct {
    s_saved_run_t *items;
    size_t n;
} s_saved_t;

static int s_collect_run(void *ctx, const kiln_history_active_t *row)
{
    s_saved_t *saved = ctx;
    if (saved->n >= KILN_SERVER_MAX_RUNS)
        return 0;
    s_saved_run_t *r = &saved->items[saved->n];
    r->file = strdup(row->file);
    r->yaml = malloc(row->yaml_len + 1);
    if (!r->file || !r->yaml) {
        free(r->file);
        free(r->yaml);
        kiln_error_set("recovery: out of memory");
        return -1;
    }
    memcpy(r->yaml, row->yaml, row->yaml_len);
    r->yaml[row->yaml_len] = '\0';
    r->len = row->yaml_len;
    r->id = row->run_id;
    r->created_ms = row->created_ms;
    r->inputs = row->inputs ? strdup(row->inputs) : NULL;
    r->actions = row->actions ? strdup(row->actions) : NULL;
    r->matrices = row->matrices ? strdup(row->matrices) : NULL;
    saved->n++;
    return 0;
}

/* Brings one job of a recovered run to what SQLite and Redis say of it. A
 * final state in either wins (SQLite is written after Redis, so Redis may be
 * ahead); a lease in Redis becomes an orphan lease awaiting its worker;
 * anything else is left to the DAG (ready jobs are queued again). */
static void s_recover_job(kiln_server_t *self, s_run_t *run, s_job_t *job)
{
    const kiln_job_t *spec = &run->wf->jobs[job->idx];
    kiln_history_job_row_t hist;
    kiln_queue_job_t red;
    kiln_job_state_t final = KILN_JOB_PENDING;
    int64_t now = kiln_clock_wall_ms();
    if (kiln_history_job_get(self->history, run->id, spec->id, &hist) != 0)
        memset(&hist, 0, sizeof hist);
    if (kiln_queue_get(self->queue, job->key, &red) != 0)
        memset(&red, 0, sizeof red);
    job->attempt = hist.attempt > red.attempt ? hist.attempt : red.attempt;
    job->token = hist.token > red.token ? hist.token : red.token;
    job->started_ms = hist.started_ms;
    snprintf(job->worker_name, sizeof job->worker_name, "%s", red.worker[0] ? red.worker : hist.worker);
    kiln_job_state_t st;
    if (kiln_job_state_parse(hist.state, &st) == 0 && kiln_job_state_is_final(st)) {
        final = st;
    } else if (strcmp(red.state, "done") == 0) {
        if (kiln_job_state_parse(red.result, &final) != 0 || !kiln_job_state_is_final(final))
            final = KILN_JOB_FAILURE;
        kiln_history_attempt_finish(self->history, run->id, spec->id, job->attempt,
                                    kiln_job_state_name(final), NULL, now);
        kiln_history_job_set_state(self->history, run->id, spec->id, kiln_job_state_name(final),
                                   0, NULL, 0, now);
    }
    kiln_job_state_t dstate = kiln_dag_state(run->dag, job->idx);
    if (final != KILN_JOB_PENDING) {
        if (dstate == KILN_JOB_READY) {
            size_t skipped[KILN_WF_MAX_JOBS], n_skipped = 0;
            kiln_dag_start(run->dag, job->idx);
            kiln_dag_finish(run->dag, job->idx, final, skipped, KILN_WF_MAX_JOBS, &n_skipped);
            for (size_t k = 0; k < n_skipped; k++) {
                run->jobs[skipped[k]].state = KILN_JOB_SKIPPED;
                kiln_history_job_set_state(self->history, run->id,
                                           run->wf->jobs[skipped[k]].id, "skipped", 0, NULL, 0,
                                           now);
            }
        }
        job->state = kiln_dag_state(run->dag, job->idx);
        return;
    }
    if (strcmp(red.state, "leased") == 0 &&
        (dstate == KILN_JOB_READY || dstate == KILN_JOB_RUNNING)) {
        if (dstate == KILN_JOB_READY)
            kiln_dag_start(run->dag, job->idx);
        job->state = KILN_JOB_RUNNING;
        job->worker = NULL;
        job->orphan_deadline = kiln_clock_mono_ms() + self->cfg.lease_ms;
        if (hist.attempt < red.attempt) {
            /* Leased in Redis, not yet recorded: the crash fell between. */
            kiln_history_attempt_start(self->history, run->id, spec->id, red.attempt, red.token,
                                       red.worker, now);
            kiln_history_job_set_state(self->history, run->id, spec->id, "running", red.attempt,
                                       red.worker, now, 0);
        }
        kiln_log_info("job %s: lease of attempt %u (token %llu) held for %s", job->key,
                      job->attempt, (unsigned long long)job->token, job->worker_name);
    }
}

/* Rebuilds the active runs after a restart: every run SQLite holds as
 * running is parsed again from its stored workflow, its DAG replayed from
 * the jobs' recorded states, and its queue state read back from Redis. */
static int s_recover(kiln_server_t *self)
{
    s_saved_t saved = {calloc(KILN_SERVER_MAX_RUNS, sizeof(s_saved_run_t)), 0};
    int rc = -1;
    if (!saved.items) {
        kiln_error_set("recovery: out of memory");
        return -1;
    }
    if (kiln_history_active_runs(self->history, s_collect_run, &saved) != 0)
        goto cleanup;
    for (size_t r = 0; r < saved.n; r++) {
        s_saved_run_t *sv = &saved.items[r];
        kiln_diags_t diags;
        kiln_workflow_t *wf = NULL;
        kiln_diags_init(&diags, sv->file);
        json_t *actions = sv->actions ? json_loads(sv->actions, 0, NULL) : NULL;
        json_t *matrices = sv->matrices ? json_loads(sv->matrices, 0, NULL) : NULL;
        int prc = kiln_pipeline_parse_planned(&wf, sv->file, sv->yaml, sv->len, actions, matrices,
                                              &diags);
        kiln_diags_free(&diags);
        if (prc != 0) {
            json_decref(actions);
            json_decref(matrices);
            kiln_log_error("recovery: run %lld no longer parses (%s); marked failed",
                           (long long)sv->id, kiln_error_last());
            kiln_history_run_set_state(self->history, sv->id, "failure", kiln_clock_wall_ms());
            continue;
        }
        s_run_t *run = calloc(1, sizeof *run);
        if (!run || !(run->jobs = calloc(wf->n_jobs, sizeof *run->jobs)) ||
            !(run->dag = kiln_dag_new(wf)) || self->n_runs == self->cap_runs) {
            if (self->n_runs == self->cap_runs && run) {
                size_t ncap = self->cap_runs ? self->cap_runs * 2 : 16;
                s_run_t **grown = realloc(self->runs, ncap * sizeof *grown);
                if (grown) {
                    self->runs = grown;
                    self->cap_runs = ncap;
                }
            }
            if (!run || !run->jobs || !run->dag || self->n_runs == self->cap_runs) {
                if (run)
                    run->wf = wf;
                s_run_free(&run);
                kiln_error_set("recovery: out of memory");
                goto cleanup;
            }
        }
        run->wf = wf;
        run->id = sv->id;
        run->created_ms = sv->created_ms;
        run->file = strdup(sv->file);
        run->yaml = strdup(sv->yaml);
        run->yaml_len = sv->len;
        run->actions = actions;
        run->matrices = matrices ? matrices : json_object();
        run->inputs = sv->inputs ? json_loads(sv->inputs, 0, NULL) : NULL;
        if (!run->inputs)
            run->inputs = json_object();
        kiln_history_run_outputs(self->history, run->id, &run->outputs);
        if (s_plan_run(self, run) != 0)
            kiln_log_warn("recovery: run %lld: %s", (long long)run->id, kiln_error_last());
        size_t names_size = 0;
        if (!(run->names = s_names_alloc(wf, &names_size))) {
            s_run_free(&run);
            kiln_error_set("recovery: out of memory");
            goto cleanup;
        }
        for (size_t i = 0; i < wf->n_jobs; i++) {
            run->jobs[i].run = run;
            run->jobs[i].idx = i;
        }
        s_names_fill(run->id, wf, run->jobs, run->names, names_size);
        s_rank_run(self, run);
        kiln_history_begin(self->history);
        for (size_t t = 0; t < wf->n_jobs; t++)
            s_recover_job(self, run, &run->jobs[wf->topo[t]]);
        kiln_history_commit(self->history);
        self->runs[self->n_runs++] = run;
        self->stats.runs_recovered++;
        for (size_t k = 0; run->group[0] && k + 1 < self->n_runs; k++)
            if (strcmp(self->runs[k]->group, run->group) == 0)
                run->held = true;
        kiln_log_info("recovered run %lld (%s, %zu jobs)", (long long)run->id, wf->name,
                      wf->n_jobs);
        s_enqueue_ready(self, run);
        s_run_check_done(self, run);
    }
    if (self->expand_pending)
        s_expand_pending(self);
    rc = 0;
cleanup:
    for (size_t r = 0; r < saved.n; r++) {
        free(saved.items[r].file);
        free(saved.items[r].yaml);
        free(saved.items[r].inputs);
        free(saved.items[r].actions);
        free(saved.items[r].matrices);
    }
    free(saved.items);
    return rc;
}

/* ------------------------------------------------------------ lifecycle */

static const char *s_keep(kiln_server_t *self, int slot, const char *s)
{
    if (!s)
        return NULL;
    self->strings[slot] = strdup(s);
    return self->strings[slot];
}

int kiln_server_new(kiln_server_t **out, const kiln_server_config_t *cfg)
{
    int rc = -1;
    kiln_keypair_t kp;
    kiln_server_t *self = calloc(1, sizeof *self);
    *out = NULL;
    if (!self) {
        kiln_error_set("coordinator: out of memory");
        return -1;
    }
    self->sigfd = -1;
    self->cfg = *cfg;
    self->wtab = calloc(S_WTAB_SIZE, sizeof *self->wtab);
    if (!self->wtab) {
        kiln_error_set("coordinator: out of memory");
        goto cleanup;
    }
    /* A peer or Redis that goes away mid-write must be an error return,
     * not the end of the process. */
    signal(SIGPIPE, SIG_IGN);
    self->cfg.listen = s_keep(self, 0, cfg->listen);
    self->cfg.redis = s_keep(self, 1, cfg->redis);
    self->cfg.db_path = s_keep(self, 2, cfg->db_path);
    self->cfg.key_path = s_keep(self, 3, cfg->key_path);
    self->cfg.allow_dir = s_keep(self, 4, cfg->allow_dir);
    self->cfg.universal_labels = s_keep(self, 5, cfg->universal_labels);
    if (!self->cfg.listen || !self->cfg.redis || !self->cfg.db_path || !self->cfg.key_path ||
        !self->cfg.allow_dir) {
        kiln_error_set("coordinator: listen, redis, db, key and allow are all required");
        rc = KILN_EINVAL;
        goto cleanup;
    }
    if (self->cfg.heartbeat_ms < 10 || self->cfg.lease_ms < self->cfg.heartbeat_ms) {
        kiln_error_set("coordinator: heartbeat must be >= 10 ms and lease >= heartbeat");
        rc = KILN_EINVAL;
        goto cleanup;
    }
    if (self->cfg.max_attempts < 1)
        self->cfg.max_attempts = 1;
    if (cfg->scheduler && (rc = kiln_scheduler_policy_parse(cfg->scheduler, &self->policy)) != 0)
        goto cleanup;
    self->cfg.scheduler = NULL;
    self->n_universal =
        s_split_labels(self->cfg.universal_labels, self->universal, KILN_SERVER_MAX_LABELS);
    if ((rc = kiln_keys_load(&kp, self->cfg.key_path)) != 0)
        goto cleanup;
    if (!kp.has_secret) {
        kiln_error_set("coordinator: %s holds no secret key", self->cfg.key_path);
        rc = KILN_EINVAL;
        goto cleanup;
    }
    if ((rc = kiln_history_open(&self->history, self->cfg.db_path)) != 0)
        goto cleanup;
    if ((rc = kiln_queue_open(&self->queue, self->cfg.redis, 10000)) != 0)
        goto cleanup;
    if (cfg->vars_path && (rc = s_load_vars(self, cfg->vars_path)) != 0)
        goto cleanup;
    if ((rc = s_recover(self)) != 0)
        goto cleanup;
    /* Every connection is a file descriptor: take all the kernel allows,
     * so a burst of half-open connections cannot starve real peers. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    self->zctx = zmq_ctx_new();
    if (!self->zctx) {
        kiln_error_set("coordinator: cannot create a ZeroMQ context");
        rc = -1;
        goto cleanup;
    }
    /* The ZAP handler first: no handshake may happen before it listens. */
    if ((rc = kiln_auth_new(&self->auth, self->zctx, self->cfg.allow_dir)) != 0)
        goto cleanup;
    self->router = kiln_transport_bind(self->zctx, self->cfg.listen, &kp);
    if (!self->router) {
        rc = KILN_EINFRA;
        goto cleanup;
    }
    self->monitor = zmq_socket(self->zctx, ZMQ_PAIR);
    if (!self->monitor ||
        zmq_socket_monitor(self->router, "inproc://kiln-router-monitor",
                           ZMQ_EVENT_DISCONNECTED) != 0 ||
        zmq_connect(self->monitor, "inproc://kiln-router-monitor") != 0) {
        kiln_error_set("coordinator: cannot monitor the socket: %s", zmq_strerror(zmq_errno()));
        rc = -1;
        goto cleanup;
    }
    if (cfg->handle_signals) {
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGINT);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGHUP);
        sigprocmask(SIG_BLOCK, &set, NULL);
        self->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    }
    kiln_log_info("listening on %s (CURVE, %zu worker keys, %zu client keys)", self->cfg.listen,
                  kiln_auth_count(self->auth, KILN_ROLE_WORKER),
                  kiln_auth_count(self->auth, KILN_ROLE_CLIENT));
    *out = self;
    self = NULL;
    rc = 0;
cleanup:
    kiln_server_destroy(&self);
    return rc;
}

void kiln_server_destroy(kiln_server_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    kiln_server_t *self = *self_p;
    for (size_t i = 0; i < self->n_runs; i++)
        s_run_free(&self->runs[i]);
    free(self->runs);
    for (size_t i = 0; i < self->n_workers; i++)
        s_worker_free(&self->workers[i]);
    free(self->workers);
    free(self->outgoing);
    free(self->wtab);
    for (size_t i = 0; i < self->n_universal; i++)
        free(self->universal[i]);
    json_decref(self->vars);
    if (self->router)
        zmq_socket_monitor(self->router, NULL, 0);
    if (self->monitor) {
        int linger = 0;
        zmq_setsockopt(self->monitor, ZMQ_LINGER, &linger, sizeof linger);
        zmq_close(self->monitor);
    }
    if (self->router)
        zmq_close(self->router);
    kiln_auth_destroy(&self->auth);
    if (self->zctx)
        zmq_ctx_term(self->zctx);
    kiln_queue_destroy(&self->queue);
    kiln_history_destroy(&self->history);
    if (self->sigfd >= 0)
        close(self->sigfd);
    for (size_t i = 0; i < sizeof self->strings / sizeof self->strings[0]; i++)
        free(self->strings[i]);
    free(self);
    *self_p = NULL;
}
