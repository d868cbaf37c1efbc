/* coord.h: the coordinator's shared state, for its own files only.
 *
 * The coordinator is one event loop (server.c) over one state: the
 * workers connected (workers.c), the active runs and their jobs (runs.c),
 * and what is in flight to Redis and SQLite. Each file owns one part and
 * the functions that change it; this header is the map between them:
 *
 *   server.c        the loop, timers, signals, start-up and shutdown
 *   workers.c       the worker registry: Hello, heartbeats, loss
 *   runs.c          the run and job table: a run from a workflow (one way,
 *                   used by submit and recovery), the graph's changes
 *                   applied, a run's end
 *   dispatch.c      dispatch passes: which ready job goes to which worker
 *   policy.c        the pure decisions: fairness, placement, prefetch,
 *                   fencing, the retry policy (unit-tested on their own)
 *   assign.c        a job's assignment message
 *   attempts.c      fencing, leases, results, retry policy
 *   proto_worker.c  worker messages and the burst they arrive in
 *   proto_client.c  client requests
 *   watch.c         watchers: live events for clients
 *   concurrency.c   concurrency groups, of runs and of jobs
 *   recovery.c      active runs rebuilt at start-up
 *
 * Language questions (what runs next, what a job's contexts are) go to the
 * run's graph (lang/rungraph.h), which holds every job's state.
 */
#ifndef KILN_COORD_H
#define KILN_COORD_H

#include <jansson.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/keys.h"
#include "common/transport.h"
#include "coordinator/history.h"
#include "coordinator/models.h"
#include "coordinator/policy.h"
#include "coordinator/queue.h"
#include "coordinator/scheduler.h"
#include "coordinator/source.h"
#include "coordinator/server.h"
#include "common/auth.h"
#include "lang/parse.h"
#include "lang/rungraph.h"
#include "proto/kiln.pb-c.h"

#define KILN_JOB_KEY_MAX 160
#define KILN_LABELS_KEY_MAX 512
#define KILN_PEER_NAME_MAX 128
/* Malformed messages a peer may send before the server ignores it. */
#define KILN_PEER_STRIKES 20
#define KILN_SERVER_MAX_PENDING_ACKS 1024
/* Acknowledgements one assignment carries at most (the rest go alone). */
#define KILN_ACKS_PER_ASSIGN 64
#define KILN_REHELLO_SLOTS 256
#define KILN_WTAB_SIZE 32768 /* a power of two, > 2 * KILN_SERVER_MAX_WORKERS */

typedef struct kiln_cjob kiln_cjob_t;
typedef struct kiln_crun kiln_crun_t;

/* affinity.c: what jobs used last, and the pools' placement counters. */
#define KILN_AFFINITY_SLOTS 4096
#define KILN_AFFINITY_INPUTS 4
#define KILN_AFFINITY_LAYERS 8
#define KILN_AFFINITY_HOLDS_MAX 512
#define KILN_AFFINITY_POOLS_MAX 32
typedef struct {
    uint64_t key;                           /* the job's (repository, file, id) */
    uint64_t inputs[KILN_AFFINITY_INPUTS];  /* short digests, oldest first */
    uint64_t sizes[KILN_AFFINITY_INPUTS];   /* their bytes (0: unknown) */
    unsigned n;
    int64_t last_ms;                        /* how long it took when it last succeeded */
    /* The largest layers of its container's image, as its last result gave
     * them (the native runtime's). */
    uint64_t layers[KILN_AFFINITY_LAYERS];
    uint64_t layer_sizes[KILN_AFFINITY_LAYERS];
    unsigned n_layers;
} kiln_affinity_slot_t;
/* What placing a job on a free worker instead of a busy warm one costs
 * (kiln_affinity_weigh). */
typedef struct {
    int64_t wait_ms;                        /* until the busy one frees a slot; -1: unknown */
    int64_t restore_ms;                     /* fetching here what it holds warm */
    uint64_t bytes;                         /* that many bytes */
} kiln_affinity_cost_t;
/* The rate a restore is assumed to move at until the store measured one. */
#define KILN_AFFINITY_DEFAULT_RATE (32.0 * 1048576 / 1000) /* bytes per ms */
/* Each blob fetched costs this much beyond its bytes (its lookups). */
#define KILN_AFFINITY_BLOB_MS 30
/* The longest a job is held for a warm worker, whatever its caches' size. */
#define KILN_AFFINITY_HOLD_MAX_MS (10 * 60 * 1000)
typedef struct {
    char name[160];                         /* the workers' labels */
    uint64_t placed_warm, placed_cold, cache_hits, cache_misses;
} kiln_affinity_pool_t;

/* A connected worker as the coordinator sees it. */
typedef struct {
    unsigned char identity[KILN_IDENTITY_MAX];
    size_t id_len;
    char name[KILN_PEER_NAME_MAX];     /* from Hello */
    char key_name[KILN_PEER_NAME_MAX]; /* from the allow-list (ZAP user id) */
    char public_key[KILN_KEY_Z85_LEN + 1]; /* its key, Z85 (ZAP user id) */
    char hostname[KILN_PEER_NAME_MAX];
    char version[32];
    uint64_t instance;      /* Hello.instance: which process of that key */
    char address[64];       /* where its connection comes from */
    char *labels[KILN_SERVER_MAX_LABELS];
    size_t n_labels;
    unsigned slots;
    unsigned cap;           /* slots + the assignments it queues (lookahead) */
    unsigned busy;          /* jobs held: running or queued */
    bool draining;
    /* monotonic: it said it cannot run jobs for now (JobResult.worker_unwell),
     * so it gets none until then */
    int64_t unwell_until;
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
    kiln_cjob_t **jobs;     /* held here: `cap` entries, NULL = free */
    /* The batch's acknowledgements that ride with its next assignment:
     * first index in the server's acks (chained by ack_next), or -1. */
    int ack_head;
    bool assign_outgoing;   /* an assignment waits for the batch's commit */
    /* What it holds warm (Heartbeat.holds), sorted short digests. */
    uint64_t *holds;
    size_t n_holds;
    /* A ready job waits for its next slot until then (monotonic; one at a
     * time: a second would wait for the slot the first takes). */
    int64_t awaited_until;
} kiln_cworker_t;

typedef struct {
    unsigned char identity[KILN_IDENTITY_MAX];
    size_t id_len;
    char job_filter[KILN_JOB_KEY_MAX]; /* "" = all jobs */
    bool quiet;                     /* only the run's end */
} kiln_watcher_t;

/* What the coordinator keeps of one job beyond its state, which the run's
 * graph holds: where it runs and under which lease. One allocation with
 * its key and labels after it. */
struct kiln_cjob {
    kiln_crun_t *run;
    size_t idx;                     /* in the run's graph */
    char *key;                      /* "<run>/<job id>" */
    char *labels;                   /* canonical label-set key, once ready */
    unsigned attempt;
    uint64_t token;
    kiln_cworker_t *worker;
    /* The lease holder by name: after a coordinator restart a running job has
     * no connected worker yet; it waits (an orphan lease) until the worker
     * re-introduces itself and re-adopts it, or orphan_deadline passes. */
    char *worker_name;              /* malloc'd when leased; NULL before (a queued job
                                       carries no name: 100,000 of them did) */
    int64_t orphan_deadline;        /* monotonic; 0: not an orphan */
    /* Told to stop: unless its worker ends it by this (monotonic) time, the
     * coordinator does, so a cancel always ends a job and frees its slot. */
    int64_t cancel_deadline;
    int64_t started_ms;             /* wall, current attempt */
    unsigned infra_failures;        /* attempts lost to infrastructure */
    unsigned script_failures;       /* attempts whose script failed (retry policy) */
    uint64_t log_bytes;             /* output stored for the current attempt */
    /* Step output (stdout, stderr) of the current attempt received: where
     * the worker's next chunk should start (LogChunk.offset). */
    uint64_t output_offset;
    /* 1 + the step whose start the current attempt last reported; 0 none.
     * A worker leaves out the start of a step that ends within its hold
     * (the result carries the start time): watchers still see it begin. */
    unsigned step_reported;
    bool log_truncated;
    bool in_ready;
    bool cancel_sent;
    bool queued;                    /* pushed to Redis (ready, past its concurrency group) */
    bool group_wait;                /* ready, waiting for its concurrency group */
    bool row_planned;               /* its row got its labels when it was made */
    /* Ready, and no connected worker has its labels: the workers_epoch
     * when that was last reported to the run's watchers; 0 while served. */
    uint64_t unserved_epoch;
    int64_t rank;                   /* critical path from here to the run's end (ms) */
    /* A placement being leased in this dispatch pass. */
    uint64_t lease_token;
    int64_t lease_deadline;         /* wall */
    int64_t ready_seq;              /* when it became ready (FIFO order) */
    /* Held for a busy worker that holds its inputs warm (dispatch.c): since
     * and until (monotonic; 0: not held in this attempt), what was expected
     * then, and for whom (malloc'd). */
    int64_t hold_since, hold_until;
    kiln_affinity_cost_t hold_cost;
    char *hold_for;
};

struct kiln_crun {
    int64_t id;
    char *file;
    json_t *inputs;                 /* typed run inputs (object) */
    char actor[KILN_PEER_NAME_MAX];
    char event[32];                 /* github.event_name: push, workflow_dispatch, ... */
    json_t *source;                 /* its repository and commit (proto Source's fields), or NULL */
    json_t *github;                 /* the github fields they give (lang/source.h) */
    kiln_model_t *model;            /* shared with runs of the same text (models.c) */
    const kiln_workflow_t *wf;      /* the model's */
    kiln_rungraph_t *graph;
    kiln_cjob_t **jobs;             /* parallel to the graph's jobs */
    size_t n_jobs, cap_jobs;
    int64_t created_ms;
    bool cancel_requested;
    bool held;                      /* waiting for its concurrency group */
    bool started;                   /* it held its group (was never held, or was let in) */
    bool cancel_in_progress;        /* its group's cancel-in-progress, evaluated */
    bool replaying;                 /* recovery: the graph is being brought to the record */
    json_t *replay_outputs;         /* recovery: job id -> outputs, as recorded */
    bool rank_stale;                /* new jobs: ranks to compute again */
    char group[256];                /* concurrency group, "" for none */
    struct kiln_label_set *label_sets; /* the label-set keys its jobs point into */
    /* Its ready jobs, worst first: the scheduler takes from the end. */
    kiln_cjob_t **ready;
    size_t n_ready, cap_ready;
    unsigned n_leased;              /* jobs running on a worker (fairness) */
    /* How long its jobs have been taking (moving average of the workers'
     * own timings, successful attempts), and over how many: whether its
     * workers should get their next job queued (kiln_dispatch_prefetchable). */
    int64_t recent_ms;
    unsigned n_recent;
    uint64_t served_seq;            /* when it last had a job placed (fairness) */
    uint64_t blocked_pass;          /* dispatch pass that found none placeable */
    kiln_watcher_t watchers[KILN_SERVER_MAX_WATCHERS];
    size_t n_watchers;
};

typedef struct {
    unsigned char identity[KILN_IDENTITY_MAX];
    size_t id_len;
    char job_key[KILN_JOB_KEY_MAX];
    uint64_t token;
} kiln_pending_ack_t;

typedef struct {
    uint64_t dispatches;
    uint64_t retries_worker_lost;
    uint64_t retries_worker_drained;
    uint64_t retries_infra_error;
    uint64_t retries_failure;
    uint64_t lease_expiries;
    uint64_t stale_rejected;
    uint64_t duplicate_results;
    uint64_t acks_held;          /* acknowledgements not sent: their commit failed */
    uint64_t garbage_dropped;
    uint64_t workers_lost;
    uint64_t workers_refused;
    uint64_t runs_submitted;
    uint64_t runs_finished;
    uint64_t runs_recovered;
    uint64_t jobs_readopted;
    uint64_t logs_truncated;
    uint64_t redis_reconnects;
    /* the farm's store (proto_store.c) */
    uint64_t cache_hits, cache_partial_hits, cache_misses, cache_saves, cache_evictions;
    uint64_t artifacts_added, artifacts_expired;
} kiln_cstats_t;

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
    struct kiln_store *store;       /* blobs of caches and artifacts (store.h) */
    kiln_affinity_slot_t affinity[KILN_AFFINITY_SLOTS];
    /* Blobs whose bytes a job sent whole (proto_store.c): the job may name
     * them in a cache entry or an artifact. A ring: the newest 256. */
    struct {
        char digest[72];
        char job_key[KILN_JOB_KEY_MAX];
    } sent[256];
    unsigned n_sent;
    /* A job sending the bytes of a blob the store has whole already, but
     * the job may not name: hashed as they come (proto_store.c), so that
     * the same bytes sent whole prove the job holds them. */
    struct {
        char digest[72];
        char job_key[KILN_JOB_KEY_MAX];
        uint64_t next;
        struct kiln_sha256 *hash;
    } proofs[16];
    unsigned n_proofs;
    kiln_affinity_pool_t pools[KILN_AFFINITY_POOLS_MAX];
    size_t n_pools;
    /* Transfers of blobs being timed (affinity.c), and the rate measured
     * (bytes per ms, a moving average; 0 until one is). */
    struct {
        uint64_t blob;
        const kiln_cjob_t *job;             /* compared, never followed */
        int64_t t0;                         /* monotonic */
        uint64_t off0;
    } xfer[16];
    double store_rate;
    int64_t store_sweep_at;         /* monotonic: next retention sweep */
    kiln_source_t *source;          /* repositories: mirrors and their fetching thread */
    kiln_models_t *models;
    int sigfd;
    int lock_fd;                    /* DB.lock, held for the process's life */
    char holder[512];               /* who we are, in the lock and in Redis */
    char farm_id[PATH_MAX];         /* the history's real path: Redis's owner */
    int64_t claim_renew_at;
    bool stopping;
    int exit_code;
    kiln_cworker_t **workers;
    size_t n_workers, cap_workers;
    /* Workers by routing id (open addressing, linear probing): every worker
     * message is looked up, and a thousand workers made a scan the hot spot. */
    kiln_cworker_t **wtab;
    /* When an unknown routing id was last asked to say hello (by hash). */
    size_t rehello_hash[KILN_REHELLO_SLOTS];
    int64_t rehello_at[KILN_REHELLO_SLOTS];
    kiln_crun_t **runs;
    size_t n_runs, cap_runs;
    size_t n_ready;                 /* over all runs */
    int64_t ready_seq;
    uint64_t dispatch_pass;
    uint64_t placements;
    kiln_scheduler_policy_t policy;
    char *universal[KILN_SERVER_MAX_LABELS];
    /* Label aliases, the operator's then the default; strings owned here. */
    kiln_policy_alias_t aliases[KILN_SERVER_MAX_LABELS + 1];
    size_t n_aliases;
    size_t n_universal;
    kiln_cstats_t stats;
    json_t *vars;                   /* the farm's configuration variables (vars context) */
    bool redis_dirty;               /* Redis missed writes: reconcile on reconnect */
    bool dispatch_pending;          /* dispatch at the end of this burst */
    /* One history transaction per burst of worker messages; results are
     * acknowledged after it commits. */
    bool in_batch;
    kiln_pending_ack_t acks[KILN_SERVER_MAX_PENDING_ACKS];
    int ack_next[KILN_SERVER_MAX_PENDING_ACKS];
    size_t n_acks;
    /* Jobs placed during the batch: their assignments go out after its
     * commit, each carrying its worker's acknowledgements. */
    kiln_cjob_t **outgoing;
    size_t n_outgoing, cap_outgoing;
    int64_t redis_retry_at;         /* monotonic */
    int64_t history_retry_at;       /* monotonic: next try of history's waiting writes */
    int64_t up_since;               /* monotonic: when this coordinator started */
    /* The public key (Z85) of the peer whose message is being handled. */
    char peer_key[KILN_KEY_Z85_LEN + 1];
    /* Counts workers joining and leaving: a job no worker serves is
     * reported again when the workers change (kiln_workers_check_unserved). */
    uint64_t workers_epoch;
    int64_t redis_backoff_ms;
};

/* server.c */
int kiln_server_send(kiln_server_t *self, const unsigned char *id, size_t id_len,
                     Kiln__Envelope *env);
void kiln_server_reconcile(kiln_server_t *self);

/* workers.c */
size_t kiln_workers_split_labels(const char *list, char **out, size_t max);
/* Ready jobs whose labels no connected worker has are reported (log, the
 * run's watchers, EVENT_JOB_WAITING), again whenever the workers change;
 * from a heartbeat after start-up, once workers had time to reconnect. */
void kiln_workers_check_unserved(kiln_server_t *self, int64_t now);
/* Why a ready job waits, when no connected worker has its labels: "no
 * connected worker has the labels: a, b" into out; false when it is served. */
bool kiln_workers_unserved_why(const kiln_server_t *self, const kiln_cjob_t *job, char *out,
                               size_t cap);
kiln_cworker_t *kiln_workers_find(kiln_server_t *self, const unsigned char *id, size_t id_len);
size_t kiln_workers_slot(const unsigned char *id, size_t id_len);
bool kiln_workers_matches(const kiln_server_t *self, const kiln_cworker_t *w,
                          const kiln_plan_job_t *job);
void kiln_workers_take(kiln_cworker_t *w, kiln_cjob_t *job);
void kiln_workers_release(kiln_cworker_t *w, kiln_cjob_t *job);
void kiln_workers_lost(kiln_server_t *self, kiln_cworker_t *w, const char *why);
void kiln_workers_free(kiln_cworker_t **w_p);
void kiln_workers_on_hello(kiln_server_t *self, const kiln_transport_msg_t *msg,
                           const char *key_name);
void kiln_workers_on_heartbeat(kiln_server_t *self, kiln_cworker_t *w, const Kiln__Heartbeat *hb);
void kiln_workers_check(kiln_server_t *self, int64_t now);
json_t *kiln_workers_json(kiln_server_t *self);

/* runs.c */
int kiln_runs_create(kiln_server_t *self, kiln_crun_t **out, kiln_model_t **model_p,
                     const char *file, json_t *inputs, const char *event, const char *actor,
                     const json_t *source, int64_t id, int64_t created_ms);
void kiln_runs_add(kiln_server_t *self, kiln_crun_t *run);
void kiln_runs_free(kiln_crun_t **run_p);
kiln_crun_t *kiln_runs_find(kiln_server_t *self, int64_t id);
kiln_cjob_t *kiln_runs_find_job(kiln_server_t *self, const char *key);
const kiln_plan_job_t *kiln_runs_plan(const kiln_cjob_t *job);
kiln_job_state_t kiln_runs_state(const kiln_cjob_t *job);
const kiln_job_t *kiln_runs_spec(const kiln_cjob_t *job);
void kiln_runs_advance(kiln_server_t *self, kiln_crun_t *run);
void kiln_runs_job_final(kiln_server_t *self, kiln_cjob_t *job, kiln_job_state_t state,
                         int64_t finished_ms, const json_t *outputs);
int kiln_runs_check_done(kiln_server_t *self, kiln_crun_t *run);
void kiln_runs_sweep(kiln_server_t *self);
void kiln_runs_ready_append(kiln_server_t *self, kiln_cjob_t *job, bool front);
void kiln_runs_ready_remove(kiln_server_t *self, kiln_cjob_t *job);
void kiln_runs_queue(kiln_server_t *self, kiln_cjob_t *job);
void kiln_runs_cancel(kiln_server_t *self, kiln_crun_t *run, const char *actor,
                      const char *actor_key, const char *why);
void kiln_runs_rank(kiln_server_t *self, kiln_crun_t *run);
const char *kiln_runs_workflow_key(const kiln_crun_t *run);
/* The job's lease holder, by name (kept for re-adoption after a restart). */
void kiln_runs_set_worker_name(kiln_cjob_t *job, const char *name);
void kiln_runs_send_cancel(kiln_server_t *self, kiln_cjob_t *job);

/* dispatch.c */
void kiln_dispatch(kiln_server_t *self);
void kiln_dispatch_now(kiln_server_t *self);
/* The job waits for no worker any more (placed, or ended while held): the
 * worker it waited for may be awaited by another. */
void kiln_dispatch_unhold(kiln_server_t *self, kiln_cjob_t *job);
void kiln_dispatch_send_placed(kiln_server_t *self, kiln_cjob_t **placed, size_t n_placed);
void kiln_dispatch_lose_undeliverable(kiln_server_t *self);

/* assign.c */
int kiln_assign_send(kiln_server_t *self, kiln_cjob_t *job, kiln_cworker_t *w);

/* attempts.c */
kiln_cjob_t *kiln_attempts_fenced(kiln_server_t *self, kiln_cworker_t *w, const char *job_key,
                                  uint64_t token, const char *what);
void kiln_attempts_requeue(kiln_server_t *self, kiln_cjob_t *job);
/* A placed job whose assignment is over a message: it fails, saying why
 * (its worker is not lost). */
void kiln_attempts_undeliverable(kiln_server_t *self, kiln_cjob_t *job, const char *why);
void kiln_attempts_lost(kiln_server_t *self, kiln_cjob_t *job, const char *klass,
                        const char *message);
void kiln_attempts_on_step_started(kiln_server_t *self, kiln_cworker_t *w,
                                   const Kiln__StepStarted *m);
void kiln_attempts_on_log(kiln_server_t *self, kiln_cworker_t *w, const Kiln__LogChunk *m);
void kiln_attempts_on_step_result(kiln_server_t *self, kiln_cworker_t *w,
                                  const Kiln__StepResult *m);
void kiln_attempts_on_job_result(kiln_server_t *self, kiln_cworker_t *w, const Kiln__JobResult *m);
void kiln_attempts_expire_orphans(kiln_server_t *self, int64_t now);

/* proto_worker.c */
void kiln_proto_worker_handle(kiln_server_t *self, kiln_transport_msg_t *msg,
                              const char *key_name);
void kiln_proto_worker_ack(kiln_server_t *self, kiln_cworker_t *w, const Kiln__JobResult *m);
void kiln_proto_worker_flush(kiln_server_t *self);

/* proto_client.c */
void kiln_proto_client_handle(kiln_server_t *self, kiln_transport_msg_t *msg, const char *client);
/* A repository request answered by source.c: its runs started and the
 * client answered. */
void kiln_proto_client_on_source(kiln_server_t *self, kiln_source_job_t *job);
void kiln_proto_client_pending_free(void *pending);
void kiln_proto_client_reply(kiln_server_t *self, const kiln_transport_msg_t *msg,
                             uint64_t request_id, int code, const char *error, int64_t run_id,
                             json_t *json);

/* affinity.c */
void kiln_affinity_on_holds(kiln_cworker_t *w, const Kiln__Heartbeat *hb);
void kiln_affinity_note(kiln_server_t *self, const kiln_cjob_t *job, const char *digest,
                        uint64_t size);
void kiln_affinity_held(kiln_cworker_t *w, const char *digest);
void kiln_affinity_done(kiln_server_t *self, const kiln_cjob_t *job, int64_t took_ms);
/* The job's image layers from its result (digests, sizes; n each). */
void kiln_affinity_layers(kiln_server_t *self, const kiln_cjob_t *job, char *const *digests,
                          const uint64_t *sizes, size_t n);
void kiln_affinity_transfer(kiln_server_t *self, const kiln_cjob_t *job, const char *digest,
                            uint64_t offset, size_t len, uint64_t size);
double kiln_affinity_rate(const kiln_server_t *self);
void kiln_affinity_weigh(const kiln_server_t *self, const kiln_cjob_t *job,
                         const kiln_cworker_t *here, const kiln_cworker_t *warm, int64_t now,
                         kiln_affinity_cost_t *out);
bool kiln_affinity_waiting_why(const kiln_cjob_t *job, char *out, size_t cap);
unsigned kiln_affinity_warmth(const kiln_server_t *self, const kiln_cworker_t *w,
                              const kiln_cjob_t *job);
bool kiln_affinity_has_inputs(const kiln_server_t *self, const kiln_cjob_t *job);
void kiln_affinity_explain(kiln_server_t *self, const kiln_cjob_t *job, char *out, size_t cap);
kiln_affinity_pool_t *kiln_affinity_pool(kiln_server_t *self, const kiln_cworker_t *w);
json_t *kiln_affinity_pools_json(const kiln_server_t *self);

/* proto_store.c */
void kiln_proto_store_handle(kiln_server_t *self, kiln_transport_msg_t *msg, const char *key_name);
void kiln_proto_store_client(kiln_server_t *self, const kiln_transport_msg_t *msg,
                             const Kiln__Request *req, const char *client);
void kiln_proto_store_tick(kiln_server_t *self, int64_t now_mono);
json_t *kiln_proto_store_stats(kiln_server_t *self);

/* watch.c */
void kiln_watch_add(kiln_crun_t *run, const kiln_transport_msg_t *msg, const char *job_filter,
                    bool quiet);
bool kiln_watch_any_loud(const kiln_crun_t *run);
void kiln_watch_emit(kiln_server_t *self, kiln_crun_t *run, Kiln__RunEvent *ev);
void kiln_watch_emit_job(kiln_server_t *self, kiln_cjob_t *job, Kiln__EventKind kind,
                         int64_t duration_ms);
void kiln_watch_emit_step_started(kiln_server_t *self, kiln_cjob_t *job, unsigned step,
                                  const char *name, uint64_t ts_ms);
/* A chunk of a job's log to its run's followers (ts_ms 0: now). */
void kiln_watch_emit_log(kiln_server_t *self, kiln_cjob_t *job, unsigned step, int stream,
                         const uint8_t *data, size_t len, uint64_t ts_ms);

/* concurrency.c */
bool kiln_concurrency_admit_run(kiln_server_t *self, kiln_crun_t *run);
void kiln_concurrency_release_run(kiln_server_t *self, const char *group);
bool kiln_concurrency_admit_job(kiln_server_t *self, kiln_cjob_t *job);
void kiln_concurrency_release_job(kiln_server_t *self, const char *group);

/* recovery.c */
int kiln_recovery_run(kiln_server_t *self);
/* A job of a run being replayed became ready: brought to what the history
 * and Redis recorded of it. */
void kiln_recovery_ready(kiln_server_t *self, kiln_crun_t *run, kiln_cjob_t *job);

#endif
