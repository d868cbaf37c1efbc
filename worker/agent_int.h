/* agent_int.h: what the worker's files share (agent.c, job.c, outbox.c);
 * not for use outside worker/.
 *
 *   agent.c   the session: Hello, heartbeats, assignments, cancel, drain,
 *             signals, the loop, start-up and shutdown
 *   job.c     one job: its steps in order, their output, held step results,
 *             the job's result
 *   outbox.c  finished jobs' results, kept and resent until acknowledged
 */
#ifndef KILN_AGENT_INT_H
#define KILN_AGENT_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/keys.h"
#include "common/kv.h"
#include "common/transport.h"
#include "proto/kiln.pb-c.h"
#include "worker/agent.h"
#include "worker/cgroup.h"
#include "worker/container.h"
#include "worker/native.h"
#include "worker/executor.h"
#include "worker/jobctx.h"
#include "worker/node.h"
#include "worker/notice.h"
#include "worker/workspace.h"

#define KILN_AGENT_MAX_LABELS 32
#define KILN_AGENT_SECRET_LEN 32  /* hex characters of a job's store token */
#define KILN_AGENT_RELAY_MAX 256  /* store requests in flight (agent_store.c) */
#define KILN_AGENT_HOLDS_MAX 512  /* warm things reported in a heartbeat */
#define KILN_JOB_LAYERS_MAX 16   /* a native image's layers in a job's result */

typedef struct kiln_wjob {
    kiln_agent_t *agent;
    Kiln__Envelope *env;        /* owns the assignment */
    const Kiln__JobAssign *a;   /* env->assign */
    kiln_workspace_t ws;
    size_t step;                /* the step running or next to run */
    kiln_exec_t *exec;
    int64_t step_started_ms;    /* wall */
    int64_t started_ms;         /* wall */
    int64_t deadline;           /* monotonic; 0 = none */
    bool failed;                /* a step failed (without continue-on-error) */
    bool cancelled;
    bool job_timed_out;
    /* The worker could not start a step for reasons of its own (its disk is
     * full): the job goes back as an infrastructure error, to run elsewhere. */
    bool unwell;
    char unwell_why[320];
    Kiln__Outcome outcome;
    uint64_t log_sent;          /* output bytes sent for this job */
    bool log_truncated;
    uint64_t output_sent;         /* bytes of stdout and stderr sent (LogChunk.offset) */
    kiln_jobctx_t *jx;          /* contexts, steps.*, command files, masks */
    int slot;                   /* in agent->jobs */
    /* Step results and the current step's start, not sent yet: for up to
     * KILN_AGENT_HOLD_MS (hold_until), or until the job sends anything else
     * (they go first, so the coordinator sees the same order as ever:
     * s_held_flush). Those held when the job ends ride in its result, and a
     * start whose step ends first is left out: a short one-step job is one
     * message where it was three. */
    Kiln__StepResult *held;     /* n_steps of room, allocated on first use */
    size_t n_held;
    bool start_held;            /* job->step's start, ts step_started_ms */
    int64_t hold_until;         /* monotonic; 0: nothing held */
    /* Per step, as its own contexts evaluate them: its name (NULL: as
     * written) and continue-on-error. */
    char **step_names;
    bool *step_coe;
    /* KILN_STORE_TOKEN of its steps: how the store relay knows the job. */
    char store_secret[KILN_AGENT_SECRET_LEN + 1];
    /* jobs.<id>.container evaluated (container.c), its name, and whether a
     * step may have started it (it is removed at the job's end then). */
    json_t *ctr;                /* NULL: the job runs on the host */
    json_t *svc;                /* services: id -> evaluated spec */
    bool ctr_ready;             /* both evaluated */
    char ctr_name[200];
    bool ctr_maybe;
    bool native;                /* ctr runs with the native runtime (native.h) */
    bool native_used;           /* a step may have started it */
    bool ctr_auth;              /* registry credentials were written for it */
} kiln_wjob_t;

/* A step's store request passed on to the coordinator (agent_store.c). */
typedef struct {
    bool used;
    uint64_t relay_id, step_id;
    unsigned char identity[KILN_IDENTITY_MAX];
    size_t id_len;
    int64_t expires; /* monotonic */
} kiln_relay_t;


/* A finished job's result, kept (packed, as sent) until acknowledged. */
typedef struct {
    char job_key[256];
    uint64_t token;
    uint8_t *packed;
    size_t len;
    int64_t resend_at;          /* monotonic */
    uint64_t seq;               /* order of arrival: the oldest goes when full */
} kiln_wresult_t;



struct kiln_agent {
    kiln_agent_config_t cfg;
    char name[128];
    char hostname[128];
    char *labels[KILN_AGENT_MAX_LABELS];
    size_t n_labels;
    kiln_keypair_t own;
    kiln_keypair_t server;
    void *zctx;
    void *sock;
    /* The connection's events (worker/agent.c: s_on_monitor): a refused
     * key or a failing handshake is said, and the connection made anew
     * after a backoff (libzmq does not try again after a refusal). */
    void *monitor;
    unsigned n_connections;       /* sockets made: each monitor's name */
    bool handshaken;
    unsigned failed_handshakes;
    int64_t reconnect_at;         /* monotonic; 0: none due */
    int64_t reconnect_backoff_ms;
    int sigfd;
    kiln_wjob_t *jobs[KILN_AGENT_MAX_SLOTS];
    /* Assignments taken while every slot was busy (Hello.lookahead), in
     * arrival order; each owns its envelope. */
    Kiln__Envelope *queued[KILN_AGENT_MAX_PREFETCH];
    size_t n_queued;
    int heartbeat_ms;
    int64_t next_heartbeat;
    bool draining;
    bool stopping;
    bool welcomed;
    uint64_t instance;            /* Hello.instance: random, this process's */
    /* Self-fencing: the last time anything came from the coordinator, and
     * the lease it set. Jobs stop once nothing has come for the lease less
     * a heartbeat: by then the coordinator may have given them to another
     * worker. */
    int64_t last_heard;           /* monotonic */
    int64_t lease_ms;
    /* Refused by the coordinator: no heartbeat or hello until then. */
    int64_t refused_until;        /* monotonic; 0: not refused */
    int64_t refuse_backoff_ms;
    bool sigterm_seen;
    int64_t drain_deadline;       /* monotonic; 0: none */
    int64_t drain_deadline_wall;
    int64_t exit_linger_until;    /* monotonic; 0: not yet empty */
    int64_t credit;               /* log bytes we may still send */
    int64_t log_window;
    kiln_wresult_t *results;          /* unordered; max_results of room */
    size_t n_results, max_results;
    uint64_t result_seq;
    kiln_notice_t *notice;
    kiln_cgroup_t *cgroup;        /* a group per slot, or NULL (none writable) */
    bool null_executor;           /* executor = null: jobs succeed without running */
    kiln_kv_t base_env;           /* what every step's environment starts from (s_base_env) */
    char tool_cache[PATH_MAX];    /* RUNNER_TOOL_CACHE: work_dir/tool-cache */
    char git_cache[PATH_MAX];     /* repository mirrors for checkouts: work_dir/git */
    char git_credentials[PATH_MAX]; /* the farm's credentials file (absolute), or "" */
    char git_timeout[16];         /* KILN_GIT_TIMEOUT_S for kiln-checkout */
    char cache_dir[PATH_MAX];     /* actions/cache's entries: work_dir/cache */
    char cache_max_mb[24];        /* their bound, KILN_CACHE_MAX_MB */
    char actions_dir[PATH_MAX];   /* remote actions' files by commit: work_dir/actions */
    char checkout_program[PATH_MAX]; /* kiln-checkout, beside this program */
    kiln_node_t node;             /* runs JavaScript actions (node.h) */
    kiln_container_engine_t engine; /* runs container jobs (container.h) */
    kiln_native_t native;         /* or this, without an engine (native.h) */
    /* The store relay: its ipc socket (work_dir/.store.sock), the requests
     * in flight. */
    char store_socket[PATH_MAX];
    void *store_sock;
    kiln_relay_t relay[KILN_AGENT_RELAY_MAX];
    uint64_t relay_seq;
    /* What it holds warm (Heartbeat.holds), scanned every 5 s and sent
     * when it changed, and again after each Hello. */
    char holds[KILN_AGENT_HOLDS_MAX][24];
    char *holds_ptr[KILN_AGENT_HOLDS_MAX];
    size_t n_holds;
    unsigned char holds_hash[16];
    bool holds_sent;
    int64_t holds_at;
    /* Each slot's workspace tree, emptied for its next job
     * (kiln_workspace_recycle): WORK/.spare-<slot>. */
    bool spare_ready[KILN_AGENT_MAX_SLOTS];
    unsigned spare_steps[KILN_AGENT_MAX_SLOTS]; /* its steps' command files kept */
};

/* agent.c */
void kiln_agent_send(kiln_agent_t *self, Kiln__Envelope *env);
size_t kiln_agent_n_jobs(const kiln_agent_t *self);
/* Tells the step guard how long until the jobs' fence (see agent.c). */
void kiln_agent_arm_guard(kiln_agent_t *self);
/* Kills what is left of a job in the worker's cgroup (nothing of a job may
 * outlive it); false when something would not die. */
bool kiln_agent_sweep_job(kiln_agent_t *self, const kiln_wjob_t *job);
void kiln_agent_spare_path(const kiln_agent_t *self, int slot, char *out, size_t cap);

/* agent_store.c */
int kiln_agent_store_open(kiln_agent_t *self);
void kiln_agent_store_close(kiln_agent_t *self);
void kiln_agent_store_secret(char out[KILN_AGENT_SECRET_LEN + 1]);
void kiln_agent_store_on_step(kiln_agent_t *self);
void kiln_agent_store_on_reply(kiln_agent_t *self, Kiln__StoreReply *r);
void kiln_agent_store_holdings(kiln_agent_t *self, Kiln__Heartbeat *hb);

/* job.c */
const char *kiln_job_step_name(const kiln_wjob_t *job, size_t step);
bool kiln_job_step_coe(const kiln_wjob_t *job, size_t step);
void kiln_job_log(kiln_wjob_t *job, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* KILN_TRACKING_ID of the job's steps: its key and fencing token. */
void kiln_job_tracking_id(const kiln_wjob_t *job, char *out, size_t cap);
void kiln_job_on_output(void *ctx, int stream, const char *data, size_t len);
void kiln_job_flush_output(kiln_wjob_t *job);
void kiln_job_flush_held(kiln_wjob_t *job);
void kiln_job_step_result(kiln_wjob_t *job, size_t step, Kiln__Outcome outcome, int exit_code,
                          int sig, int64_t started, int64_t finished);
Kiln__StepResult **kiln_job_held_into(kiln_wjob_t *job, Kiln__JobResult *r);
void kiln_job_advance(kiln_wjob_t *job);
void kiln_job_finish(kiln_wjob_t *job);
void kiln_job_free(kiln_wjob_t **job_p);

/* outbox.c */
void kiln_outbox_send(kiln_agent_t *self, kiln_wresult_t *res);
void kiln_outbox_remove(kiln_agent_t *self, size_t i);
void kiln_outbox_add(kiln_agent_t *self, const char *job_key, uint64_t token,
                     Kiln__Outcome outcome, int64_t started_ms, const char *message,
                     const Kiln__JobResult *extra);
void kiln_outbox_ack(kiln_agent_t *self, const Kiln__ResultAck *ack);

#endif
