/* queue.h: the farm's hot state in Redis: ready queues and leases.
 *
 * Every job of an accepted run lives in Redis as a small hash
 * (kiln:job:<run>/<job>) in exactly one state: ready (its key is on the
 * ready set of its label set, kiln:ready-set:<labels>), leased (a worker holds
 * it until the deadline in its hash), or done. Each transition is a step of
 * one Lua script, so it is atomic and a crash between two commands cannot
 * leave a job both queued and leased, or lost. Each lease bumps the job's
 * fencing token; a finish, renew or requeue must present the current token,
 * so a zombie worker's late result cannot overwrite a newer attempt. Lease
 * expiry is the coordinator's timer, not a Redis index: it holds every lease
 * in memory and recovers them from the job hashes.
 *
 * The coordinator mirrors the ready sets in memory to choose quickly; Redis
 * is the authority it recovers from.
 *
 * The connection is synchronous (hiredis) on a unix socket or TCP; the
 * coordinator is single-threaded. The script is loaded once (SCRIPT LOAD)
 * and called by digest. Outside a batch every call is one round trip; inside
 * one (see below) the transitions are gathered into script calls of up to
 * a few hundred, written together and answered later.
 */
#ifndef KILN_QUEUE_H
#define KILN_QUEUE_H

#include <stddef.h>
#include <stdint.h>

typedef struct kiln_queue kiln_queue_t;

/* addr: "/path/to/redis.sock", "unix:/path", or "host:port". Retries the
 * connection with backoff for up to connect_timeout_ms (Redis may still be
 * starting), then fails with KILN_EINFRA. */
/* Connecting, and any one call, may take this long before Redis is taken
 * for unreachable (the coordinator's loop waits on them). */
#define KILN_QUEUE_CONNECT_TIMEOUT_MS 200
#define KILN_QUEUE_CALL_TIMEOUT_MS 500

int kiln_queue_open(kiln_queue_t **out, const char *addr, int64_t connect_timeout_ms);
void kiln_queue_destroy(kiln_queue_t **self_p);

/* A new job enters the ready set of `labels` (a canonical label-set key).
 * Returns 0, or KILN_EINVAL if the job already exists. */
int kiln_queue_push(kiln_queue_t *self, const char *job_key, const char *labels,
                    const void *payload, size_t len);
/* ready -> leased by worker until deadline_ms for attempt number `attempt`
 * under fencing token `token`, which the coordinator proposes (its last
 * token for the job + 1). KILN_ESTALE if the job is not ready, or if Redis
 * holds a token as new: tokens never go back. */
int kiln_queue_lease(kiln_queue_t *self, const char *job_key, const char *labels,
                     const char *worker, unsigned attempt, int64_t deadline_ms, uint64_t token);
/* The same, pipelined when a batch is open: *rc (may be NULL) is set by
 * kiln_queue_flush (or now, outside a batch). Lets a dispatch pass lease
 * many jobs in one round trip. */
int kiln_queue_lease_defer(kiln_queue_t *self, const char *job_key, const char *labels,
                           const char *worker, unsigned attempt, int64_t deadline_ms,
                           uint64_t token, int *rc);
/* Writes the pipelined calls to Redis without reading their replies: once
 * it returns, Redis will apply them even if this process dies, so the
 * coordinator may act on them (send the assignments) before the flush. */
int kiln_queue_send(kiln_queue_t *self);
/* Extends a lease. KILN_ESTALE if token is not the job's current one. */
int kiln_queue_renew(kiln_queue_t *self, const char *job_key, uint64_t token,
                     int64_t deadline_ms);
/* leased(token) -> done with a result. KILN_ESTALE on a stale token. */
int kiln_queue_finish(kiln_queue_t *self, const char *job_key, uint64_t token,
                      const char *result);
/* leased(token) -> ready again (a retry). */
int kiln_queue_requeue(kiln_queue_t *self, const char *job_key, const char *labels,
                       uint64_t token);
/* ready -> done without running (cancelled or skipped while queued). */
int kiln_queue_drop(kiln_queue_t *self, const char *job_key, const char *labels,
                    const char *result);
/* Forgets a finished run's jobs. */
int kiln_queue_forget(kiln_queue_t *self, const char *const *job_keys, size_t n);
/* Number of jobs in the ready set of `labels`, or negative. */
long long kiln_queue_depth(kiln_queue_t *self, const char *labels);

/* What Redis holds for one job (recovery). */
typedef struct {
    char state[16];    /* "ready", "leased", "done", or "" when absent */
    uint64_t token;
    unsigned attempt;
    char worker[128];
    int64_t deadline_ms;
    char result[32];
} kiln_queue_job_t;

/* Claims Redis for one farm: the key kiln:owner names the farm (its
 * history, `farm`) and the coordinator holding it (`holder`) for ttl_ms.
 * 0 when it was free or already this farm's (a restarted coordinator of the
 * same history takes it over at once); KILN_EBUSY naming the other farm and
 * its holder; KILN_EINFRA when Redis cannot be asked. Renewed by the timer. */
int kiln_queue_claim(kiln_queue_t *self, const char *farm, const char *holder, int64_t ttl_ms);
int kiln_queue_get(kiln_queue_t *self, const char *job_key, kiln_queue_job_t *out);
/* Writes the coordinator's view of a job into Redis after Redis lost writes
 * (a restart from an older append-only file) or was unreachable: the job
 * ends in `state` (ready/leased/done) in the right set, and its token
 * becomes max(stored, token) so fencing never goes backwards; that token
 * goes to *stored_token (may be NULL; in a batch it is written at the
 * flush). */
int kiln_queue_restore(kiln_queue_t *self, const char *job_key, const char *labels,
                       const char *state, uint64_t token, unsigned attempt, const char *worker,
                       int64_t deadline_ms, const char *result, uint64_t *stored_token);

/* Batches. Between begin and end, push, renew, finish, requeue, drop,
 * restore and lease_defer are gathered (answered 0 at once) into script
 * calls of up to a few hundred transitions; kiln_queue_send writes them.
 * kiln_queue_flush reads their replies and returns the first failure
 * (KILN_ESTALE: a job was not in the state its transition needs;
 * KILN_EINFRA: Redis went away, or lost its script cache) with its message,
 * and gives each transition its own verdict (lease_defer's *rc, restore's
 * *stored_token); every other call flushes first, so replies are always read
 * in order. A burst of worker messages then costs the coordinator one write
 * to Redis and Redis one script call, not a round trip and a script per job. */
#define KILN_QUEUE_MAX_PENDING 4096
void kiln_queue_batch_begin(kiln_queue_t *self);
int kiln_queue_flush(kiln_queue_t *self);
/* Flushes and leaves batch mode. */
int kiln_queue_batch_end(kiln_queue_t *self);
/* Leaves batch mode after writing what is pending, without waiting for the
 * replies: they are read by the next flush (any synchronous call, or the
 * caller's timer). The coordinator's loop then never waits for Redis to be
 * scheduled; a failure found later is repaired the same way (reconcile). */
int kiln_queue_batch_send(kiln_queue_t *self);
/* Calls written or appended whose replies have not been read. */
size_t kiln_queue_pending(const kiln_queue_t *self);

/* Whether the connection is up. After an I/O error every call fails with
 * KILN_EINFRA until kiln_queue_reconnect succeeds. */
int kiln_queue_connected(const kiln_queue_t *self);
/* One reconnection attempt (bounded by a short timeout); 0 on success. */
int kiln_queue_reconnect(kiln_queue_t *self);

#endif
