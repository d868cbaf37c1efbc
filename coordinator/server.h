/* server.h: the coordinator: protocol state machine around one event loop.
 *
 * The server owns the CURVE ROUTER socket that workers and clients talk to,
 * the ZAP handler that admits them, the Redis queue (hot state) and the
 * SQLite history (the record). One thread runs everything from zmq_poll:
 * a message, a signal or a timer wakes it, it moves runs forward, and it
 * pushes ready jobs to workers with free slots at once (no polling by
 * workers, so dispatch takes a round trip, not a poll interval).
 *
 * A job's life: submit -> parsed and validated (pipeline) -> run and jobs
 * recorded (history) -> ready jobs pushed on Redis (queue) and mirrored in
 * the in-memory ready list -> leased to a matching worker with a fencing
 * token -> assigned over the wire -> steps, logs and the result come back,
 * are checked against the token, recorded, and drive the DAG forward.
 */
#ifndef KILN_SERVER_H
#define KILN_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct kiln_server kiln_server_t;

typedef struct {
    const char *listen;           /* endpoint to bind, e.g. tcp://127.0.0.1:7420 */
    const char *redis;            /* Redis address (see queue.h) */
    const char *db_path;          /* history database */
    const char *key_path;         /* the server's .key file */
    const char *allow_dir;        /* allow-list (workers/, clients/) */
    const char *universal_labels; /* comma-separated labels every worker matches */
    /* "PATTERN=LABEL" each (policy.h: kiln_policy_alias_t), tried in order
     * before the default KILN_SERVER_DEFAULT_ALIAS. */
    const char *const *label_aliases;
    size_t n_label_aliases;
    /* Where uses: OWNER/REPO@REF is looked for, in order (source.h). */
    const char *const *action_sources;
    size_t n_action_sources;
    /* Refuse remote uses: not pinned by a full commit SHA (source.h). */
    bool actions_require_sha;
    /* The farm's git credentials file for its fetches, or NULL (gitsrc.h). */
    const char *git_credentials;
    int heartbeat_ms;             /* expected worker heartbeat interval */
    int lease_ms;                 /* a worker silent this long is lost */
    unsigned max_attempts;        /* attempts per job for infrastructure failures */
    uint64_t log_limit;           /* output bytes kept per job attempt */
    uint64_t log_window;          /* log bytes a worker may have in flight */
    bool handle_signals;          /* SIGINT/SIGTERM stop, SIGHUP reloads keys */
    const char *vars_path;        /* JSON object file: the vars context, or NULL */
    const char *scheduler;        /* "critical-path" (default) or "fifo" (sched.h) */
    const char *store_dir;        /* the store's blobs; NULL: "store" beside the history */
    uint64_t cache_quota;         /* bytes of cache entries per repository (10 GiB) */
    unsigned cache_max_age_days;  /* an entry unused this long goes (7) */
    unsigned artifact_retention_days; /* default and most an upload may ask (90) */
    /* MB/s a restore is taken to move at when a job weighs waiting for a
     * busy warm worker; 0: what the store measures (affinity.c). */
    unsigned restore_mb_s;
} kiln_server_config_t;

#define KILN_SERVER_DEFAULT_LISTEN "tcp://127.0.0.1:7420"
#define KILN_SERVER_DEFAULT_LABELS "self-hosted"
/* GitHub's hosted Ubuntu labels (ubuntu-latest, ubuntu-24.04, ...) run on
 * any Linux worker unless an alias of the operator's says otherwise. */
#define KILN_SERVER_DEFAULT_ALIAS "ubuntu-*=linux"
#define KILN_SERVER_DEFAULT_HEARTBEAT_MS 1000
#define KILN_SERVER_DEFAULT_LEASE_MS 5000
#define KILN_SERVER_DEFAULT_MAX_ATTEMPTS 3
#define KILN_SERVER_DEFAULT_LOG_LIMIT (64ULL * 1024 * 1024)
#define KILN_SERVER_DEFAULT_LOG_WINDOW (1024ULL * 1024)
/* A worker that sends this much past its credit is flooding: excess is
 * dropped, not stored. */
#define KILN_SERVER_LOG_FLOOD_SLACK (4ULL * 1024 * 1024)
/* Largest log chunk a worker may send. */
#define KILN_SERVER_LOG_CHUNK_MAX (64 * 1024)
/* Bound on the --vars file: its object is copied into every job message. */
#define KILN_SERVER_VARS_FILE_MAX (256 * 1024)
/* Bounds on what the server keeps for clients. */
#define KILN_SERVER_MAX_WORKERS 10000
#define KILN_SERVER_MAX_RUNS 10000
#define KILN_SERVER_MAX_WATCHERS 64
#define KILN_SERVER_MAX_LABELS 32
#define KILN_SERVER_MAX_SLOTS 256
/* A job told to stop that its worker has not ended after this plus the
 * lease is ended by the coordinator (cancelled), and its slot freed: the
 * worker's own grace between SIGTERM and SIGKILL is 5 s by default. */
#define KILN_SERVER_CANCEL_GRACE_MS 5000
/* A worker that reports it cannot run jobs (its disk is full) gets none for
 * this long; then it is tried again. */
#define KILN_SERVER_UNWELL_MS 30000
/* Assignments a worker may queue beyond its slots (Hello.lookahead). */
#define KILN_SERVER_MAX_LOOKAHEAD 4
/* A worker gets a queued assignment only while each job it runs is
 * expected to end within the horizon and belongs to a run of short jobs.
 * Past that the round trip saved is noise beside the job, and a queued job
 * holds a slot that a more urgent job becoming ready meanwhile (the next
 * link of a critical chain) would have taken: at 250 ms the makespan
 * benchmark's 50 ms jobs were queued and its chain waited behind them. */
#define KILN_SERVER_PREFETCH_HORIZON_MS 20
#define KILN_SERVER_PREFETCH_SHORT_MS 20

void kiln_server_config_defaults(kiln_server_config_t *cfg);

/* Opens everything: keys, ZAP handler, Redis, history, then binds. */
int kiln_server_new(kiln_server_t **out, const kiln_server_config_t *cfg);
void kiln_server_destroy(kiln_server_t **self_p);
/* Serves until stopped (a signal when handle_signals, or an infrastructure
 * failure). Returns 0 on a clean stop. */
int kiln_server_run(kiln_server_t *self);

#endif
