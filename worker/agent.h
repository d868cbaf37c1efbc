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
 * Signals: SIGTERM drains (no new jobs; running ones finish, then exit 0);
 * SIGINT, or a second SIGTERM, stops now: running steps are killed and their
 * jobs handed back to the coordinator as infrastructure failures.
 */
#ifndef KILN_AGENT_H
#define KILN_AGENT_H

#include <stdbool.h>

typedef struct kiln_agent kiln_agent_t;

typedef struct {
    const char *coordinator;  /* endpoint, e.g. tcp://10.0.0.1:7420 */
    const char *server_key;   /* coordinator's public key file */
    const char *key_path;     /* this worker's .key file */
    const char *name;         /* worker name (default: host name) */
    const char *labels;       /* comma-separated extra labels */
    int slots;                /* concurrent jobs (default 1) */
    const char *work_dir;     /* where workspaces go */
    int heartbeat_ms;         /* until the coordinator says otherwise */
    int kill_grace_ms;        /* SIGTERM -> SIGKILL for steps */
    bool keep_workspaces;     /* leave job directories for inspection */
} kiln_agent_config_t;

#define KILN_AGENT_MAX_SLOTS 256
#define KILN_AGENT_MAX_ENV 4096

void kiln_agent_config_defaults(kiln_agent_config_t *cfg);
int kiln_agent_new(kiln_agent_t **out, const kiln_agent_config_t *cfg);
void kiln_agent_destroy(kiln_agent_t **self_p);
/* Runs until drained or stopped. Returns 0 on a clean exit. */
int kiln_agent_run(kiln_agent_t *self);

#endif
