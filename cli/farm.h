/* farm.h: a complete Kiln farm on this machine, as child processes.
 *
 * `kiln run` starts a private farm for one workflow and removes it after;
 * `kiln up` runs a persistent one in a data directory until stopped. Both
 * are the same thing: a redis-server on a private unix socket (AOF on), a
 * kiln-coordinator, and N kiln-worker processes, each with its own CURVE
 * key pair admitted by the coordinator's allow-list, plus a client key for
 * the CLI. Children run in their own process group, log to DIR/logs, and
 * get SIGKILL if the CLI dies (PR_SET_PDEATHSIG), so no process is left
 * behind whatever happens to the CLI.
 *
 * Data directory layout:
 *   endpoint                  the coordinator endpoint clients use
 *   keys/server.{key,pub}     coordinator key pair
 *   keys/client.{key,pub}     the CLI's key pair
 *   keys/worker-N.{key,pub}   worker key pairs
 *   allow/{workers,clients}/  the allow-list the coordinator reads
 *   redis/                    Redis socket and append-only file
 *   history.db                the run history (SQLite)
 *   logs/                     coordinator.log, worker-N.log, redis.log
 *   work/worker-N/            workspaces
 */
#ifndef KILN_FARM_H
#define KILN_FARM_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define KILN_FARM_MAX_WORKERS 256

#include "common/config.h"

typedef struct kiln_farm kiln_farm_t;

typedef struct {
    const char *data_dir;  /* NULL: a new temporary directory */
    const char *listen;    /* NULL: ipc:// socket in the data directory */
    int workers;           /* <= 0: number of CPUs */
    int slots;             /* per worker; <= 0: 1 */
    const char *labels;    /* extra worker labels */
    const char *log_level; /* for the daemons */
    const char *vars;      /* JSON file of configuration variables, or NULL */
    const kiln_opt_list_t *label_aliases; /* the coordinator's --label-alias, or NULL */
    const kiln_opt_list_t *action_sources; /* the coordinator's --actions-source, or NULL */
} kiln_farm_opts_t;

int kiln_farm_start(kiln_farm_t **out, const kiln_farm_opts_t *opts);
/* Stops every process (workers first), waits for them, and removes the data
 * directory if it was temporary and keep is false. */
void kiln_farm_stop(kiln_farm_t **self_p, bool keep);

const char *kiln_farm_dir(const kiln_farm_t *self);
const char *kiln_farm_endpoint(const kiln_farm_t *self);
/* A pidfd that becomes readable when the coordinator exits (for polling). */
int kiln_farm_coordinator_fd(const kiln_farm_t *self);
/* kiln up's supervision of its workers: a worker that exits is reported
 * and started again after a backoff (1 s, doubling to 30 s while it keeps
 * dying within a minute of its start). */
#define KILN_FARM_RESTART_MIN_MS 1000
#define KILN_FARM_RESTART_MAX_MS 30000
#define KILN_FARM_RESTART_RESET_MS 60000
/* How many workers the farm has. */
unsigned kiln_farm_workers(const kiln_farm_t *self);
/* The workers' pidfds (-1 for one waiting to start again), up to max. */
int kiln_farm_worker_fds(const kiln_farm_t *self, int *fds, int max);
/* Reaps workers that exited (saying so on stderr) and starts those whose
 * backoff has passed; the next restart's time (monotonic ms), or -1. */
int64_t kiln_farm_supervise(kiln_farm_t *self, int64_t now);
/* Whether every daemon still runs; if not, *what names the first that died. */
bool kiln_farm_alive(kiln_farm_t *self, const char **what);

#endif
