/* agent.h: a worker's session with its coordinator.
 *
 * The agent connects to the coordinator as a CURVE client, introduces itself
 * (name, labels, slots), and then waits for jobs to be pushed to it. Each job
 * runs its steps one after another through the executor, in a fresh
 * workspace, streaming output back as log chunks and reporting each step and
 * the job. Heartbeats carry the jobs it runs, so the coordinator can tell a
 * lost worker from a slow build.
 *
 * One thread, one zmq_poll loop: the coordinator socket, a signalfd
 * (SIGCHLD, SIGTERM, SIGINT) and the steps' output pipes, with timers for
 * heartbeats and step deadlines.
 *
 * Reliability: a job's result is kept and resent until the coordinator
 * acknowledges it, so a result survives a lost connection or a coordinator
 * restart; after a restart the worker re-introduces itself with the jobs it
 * holds, and the coordinator re-adopts them. Output is sent against credit
 * (bytes the coordinator has room for): without credit the worker stops
 * reading the step's pipes, and the step waits on its own writes.
 *
 * The null executor (`executor = null`) is for measuring the coordinator:
 * each assigned job is reported through the same messages as a real job
 * whose steps all end at once (each step succeeded with exit code 0, inside
 * the job's result, resent until acknowledged) without a workspace, a
 * process or a command file.
 *
 * Signals: SIGTERM drains (no new jobs; running ones may finish within the
 * drain grace, then exit 0; what is still running at the deadline is handed
 * back as worker_drained). A spot-interruption notice drains with a deadline
 * just before the machine goes. SIGINT, or a second SIGTERM, stops now:
 * running steps are killed and their jobs handed back.
 */
#ifndef KILN_AGENT_H
#define KILN_AGENT_H

#include <stdbool.h>

typedef struct kiln_agent kiln_agent_t;

typedef struct {
    const char *coordinator;  /* endpoint, e.g. tcp://10.0.0.1:7420 */
    const char *server_key;   /* coordinator's public key file */
    const char *key_path;     /* this worker's .key file */
    const char *name;         /* worker name: its key's (default: the key file's name) */
    /* Where the slots' cgroups are made (NULL: under the worker's own
     * cgroup; see cgroup.h). */
    const char *cgroup_root;
    const char *labels;       /* comma-separated extra labels */
    int slots;                /* concurrent jobs (default 1) */
    const char *work_dir;     /* where workspaces go */
    int heartbeat_ms;         /* until the coordinator says otherwise */
    int kill_grace_ms;        /* SIGTERM -> SIGKILL for steps */
    bool keep_workspaces;     /* leave job directories for inspection */
    int drain_grace_ms;       /* SIGTERM: how long running jobs may go on; 0: no limit */
    const char *spot_notice_file;    /* spot interruption notices (notice.h) */
    const char *spot_notice_url;
    const char *spot_notice_command;
    int spot_poll_ms;
    int spot_window_ms;       /* notice -> machine gone */
    int spot_margin_ms;       /* jobs are handed back this long before that */
    const char *executor;     /* "shell" (default) or "null" (benchmarks only: nothing runs) */
    int prefetch;             /* assignments queued beyond the slots (default 1) */
    /* The steps' environment beyond the defined one: NAME=VALUE each, and
     * names of the worker's own variables to pass on. */
    const char *const *env;
    size_t n_env;
    const char *const *pass_env;
    size_t n_pass_env;
    /* The farm's git credentials for checkouts and action downloads
     * (common/gitcreds.h), or NULL. */
    const char *git_credentials;
    int git_timeout_s;        /* a silent git server fails a checkout after this (120) */
    int cache_max_mb;         /* actions/cache's entries on this worker, LRU beyond (10240) */
    const char *node;         /* Node.js for JavaScript actions (NULL: `node` on PATH) */
    const char *container_engine; /* podman or docker for container jobs (NULL: found on PATH) */
    bool container_allow_privileged; /* container jobs may ask for --privileged, host mounts */
    const char *job_image;    /* jobs without a container run in this image (NULL: on the host) */
    const char *container_runtime; /* auto (NULL), engine or native (native.h) */
    const char *registry_auth;     /* Docker-style auths file for the native runtime's pulls */
    const char *registry_insecure; /* registries reached over plain HTTP, comma-separated */
    const char *registry_mirror;   /* a pull-through mirror for docker.io images */
    const char *image_pull;        /* missing (NULL) or always */
    int image_store_max_mb;        /* the native runtime's image store (20480) */
    const char *cache_registry;    /* KILN_CACHE_REGISTRY for image builds' layer caches */
} kiln_agent_config_t;

/* A step's PATH when the worker has none. */
#define KILN_AGENT_DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

#define KILN_AGENT_MAX_SLOTS 256
#define KILN_AGENT_MAX_PREFETCH 4
/* Finished jobs whose results await the coordinator's acknowledgement: at
 * least this many, and as many per slot as below (the coordinator
 * acknowledges after its commit, and short jobs can finish several times
 * over in the meantime). */
#define KILN_AGENT_MAX_RESULTS 256
#define KILN_AGENT_RESULTS_PER_SLOT 4
#define KILN_AGENT_RESEND_MS 2000
/* How long a step's start and the results of its job's finished steps may
 * wait to travel together (and a start be left out, when its step ends
 * first: the result carries the start time). Live status lags by at most
 * this; a one-step job of a few milliseconds costs one message, not two. */
#define KILN_AGENT_HOLD_MS 10
/* After a drain empties the worker: how long it waits for acknowledgements. */
#define KILN_AGENT_EXIT_LINGER_MS 3000
#define KILN_AGENT_DEFAULT_DRAIN_GRACE_MS (5 * 60 * 1000)
#define KILN_AGENT_DEFAULT_SPOT_WINDOW_MS (2 * 60 * 1000)
/* How long the end of a job waits for the processes it left to die. */
#define KILN_AGENT_SWEEP_TIMEOUT_MS 2000
/* A refused worker says hello again after 0.5 s, doubling up to this. */
#define KILN_AGENT_REFUSED_BACKOFF_MAX_MS 30000
#define KILN_AGENT_DEFAULT_SPOT_MARGIN_MS (15 * 1000)
#define KILN_AGENT_DEFAULT_LOG_WINDOW (1024 * 1024)

void kiln_agent_config_defaults(kiln_agent_config_t *cfg);
int kiln_agent_new(kiln_agent_t **out, const kiln_agent_config_t *cfg);
void kiln_agent_destroy(kiln_agent_t **self_p);
/* Runs until drained or stopped. Returns 0 on a clean exit. */
/* The worker's name (its key's). */
const char *kiln_agent_name(const kiln_agent_t *self);
int kiln_agent_run(kiln_agent_t *self);

#endif
