/* queue.c: Redis-backed ready queues and fenced leases (see queue.h). */
#include "queue.h"

#include <hiredis.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "error.h"
#include "log.h"

#define KILN_REDIS_KEY_MAX 600
#define KILN_QUEUE_KEY_MAX 200
/* The ready jobs of a label set. A set, not a list: the scheduler takes
 * jobs in its own order (sched.h), and SREM is O(1) where LREM scanned the
 * whole queue. The name changed with the type, so a command never meets a
 * list left by an older Kiln (WRONGTYPE); nothing reads those any more. */
#define KILN_QUEUE_READY_PREFIX "kiln:ready-set:"

/* Each script returns an integer: >= 0 success (a token for LEASE), -1 the
 * job is not in the state the transition needs. */
static const char *S_PUSH =
    "if redis.call('EXISTS', KEYS[1]) == 1 then return -1 end\n"
    "redis.call('HSET', KEYS[1], 'state', 'ready', 'labels', ARGV[2], 'payload', ARGV[3],"
    " 'token', 0)\n"
    "redis.call('SADD', KEYS[2], ARGV[1])\n"
    "return 1\n";
/* The token is the coordinator's proposal (its last token for the job + 1,
 * so the assignment can go out without waiting for this reply); one that is
 * not newer than the stored token is refused (-2): tokens never go back. */
static const char *S_LEASE =
    "if redis.call('HGET', KEYS[1], 'state') ~= 'ready' then return -1 end\n"
    "if tonumber(ARGV[5]) <= tonumber(redis.call('HGET', KEYS[1], 'token') or '0') then"
    " return -2 end\n"
    "redis.call('SREM', KEYS[2], ARGV[1])\n"
    "redis.call('HSET', KEYS[1], 'state', 'leased', 'token', ARGV[5], 'worker', ARGV[2],"
    " 'deadline', ARGV[3], 'attempt', ARGV[4])\n"
    "redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])\n"
    "return tonumber(ARGV[5])\n";
static const char *S_RENEW =
    "if redis.call('HGET', KEYS[1], 'state') ~= 'leased' or"
    " redis.call('HGET', KEYS[1], 'token') ~= ARGV[2] then return -1 end\n"
    "redis.call('HSET', KEYS[1], 'deadline', ARGV[3])\n"
    "redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])\n"
    "return 1\n";
static const char *S_FINISH =
    "if redis.call('HGET', KEYS[1], 'state') ~= 'leased' or"
    " redis.call('HGET', KEYS[1], 'token') ~= ARGV[2] then return -1 end\n"
    "redis.call('HSET', KEYS[1], 'state', 'done', 'result', ARGV[3])\n"
    "redis.call('ZREM', KEYS[2], ARGV[1])\n"
    "return 1\n";
static const char *S_REQUEUE =
    "if redis.call('HGET', KEYS[1], 'state') ~= 'leased' or"
    " redis.call('HGET', KEYS[1], 'token') ~= ARGV[2] then return -1 end\n"
    "redis.call('HSET', KEYS[1], 'state', 'ready')\n"
    "redis.call('HDEL', KEYS[1], 'worker', 'deadline')\n"
    "redis.call('ZREM', KEYS[2], ARGV[1])\n"
    "redis.call('SADD', KEYS[3], ARGV[1])\n"
    "return 1\n";
static const char *S_DROP =
    "if redis.call('HGET', KEYS[1], 'state') ~= 'ready' then return -1 end\n"
    "redis.call('SREM', KEYS[2], ARGV[1])\n"
    "redis.call('HSET', KEYS[1], 'state', 'done', 'result', ARGV[2])\n"
    "return 1\n";

/* KEYS: job hash, ready list, leases. ARGV: job key, labels, state, token,
 * attempt, worker, deadline, result. */
static const char *S_RESTORE =
    "local old = tonumber(redis.call('HGET', KEYS[1], 'token') or '0')\n"
    "local tok = math.max(old, tonumber(ARGV[4]))\n"
    "redis.call('SREM', KEYS[2], ARGV[1])\n"
    "redis.call('ZREM', KEYS[3], ARGV[1])\n"
    "redis.call('HSET', KEYS[1], 'state', ARGV[3], 'labels', ARGV[2], 'token', tok,"
    " 'attempt', ARGV[5])\n"
    "if ARGV[3] == 'ready' then\n"
    "  redis.call('HDEL', KEYS[1], 'worker', 'deadline')\n"
    "  redis.call('SADD', KEYS[2], ARGV[1])\n"
    "elseif ARGV[3] == 'leased' then\n"
    "  redis.call('HSET', KEYS[1], 'worker', ARGV[6], 'deadline', ARGV[7])\n"
    "  redis.call('ZADD', KEYS[3], ARGV[7], ARGV[1])\n"
    "else\n"
    "  redis.call('HSET', KEYS[1], 'result', ARGV[8])\n"
    "end\n"
    "return tok\n";

enum { S_PUSH_I, S_LEASE_I, S_RENEW_I, S_FINISH_I, S_REQUEUE_I, S_DROP_I, S_RESTORE_I, S_N };

/* A pipelined call whose reply has not been read yet. */
typedef struct {
    const char *what;
    char job_key[KILN_QUEUE_KEY_MAX];
    uint64_t *token;            /* lease: where the new token goes */
    int *rc;                    /* lease: where its verdict goes */
    bool exists_ok;             /* push: "already there" is not a failure */
} s_pending_t;

struct kiln_queue {
    redisContext *redis;
    char *addr;
    const char *scripts[S_N];
    char sha[S_N][41];          /* from SCRIPT LOAD; "" until loaded */
    bool batching;
    s_pending_t *pending;       /* KILN_QUEUE_MAX_PENDING */
    size_t n_pending;
};

/* After an I/O error a hiredis context is unusable: drop it, so that every
 * call fails fast until kiln_queue_reconnect makes a new one. */
static void s_drop_connection(kiln_queue_t *self);
static void s_load_scripts(kiln_queue_t *self);

static redisContext *s_connect(const char *addr)
{
    /* Short: the coordinator's loop waits on this while reconnecting. */
    struct timeval tv = {0, 500000};
    const char *path = NULL;
    if (strncmp(addr, "unix:", 5) == 0)
        path = addr + 5;
    else if (addr[0] == '/' || addr[0] == '.')
        path = addr;
    if (path)
        return redisConnectUnixWithTimeout(path, tv);
    char host[256];
    const char *colon = strrchr(addr, ':');
    int port = 6379;
    if (colon) {
        size_t n = (size_t)(colon - addr) < sizeof host - 1 ? (size_t)(colon - addr)
                                                            : sizeof host - 1;
        memcpy(host, addr, n);
        host[n] = '\0';
        port = atoi(colon + 1);
    } else {
        snprintf(host, sizeof host, "%s", addr);
    }
    return redisConnectWithTimeout(host, port, tv);
}

int kiln_queue_open(kiln_queue_t **out, const char *addr, int64_t connect_timeout_ms)
{
    int rc = -1;
    kiln_queue_t *self = calloc(1, sizeof *self);
    *out = NULL;
    if (!self || !(self->addr = strdup(addr)) ||
        !(self->pending = calloc(KILN_QUEUE_MAX_PENDING, sizeof *self->pending))) {
        kiln_error_set("queue: out of memory");
        goto cleanup;
    }
    const char *scripts[S_N] = {S_PUSH, S_LEASE, S_RENEW, S_FINISH, S_REQUEUE, S_DROP, S_RESTORE};
    memcpy(self->scripts, scripts, sizeof scripts);
    /* Redis may still be coming up when a local farm starts everything at
     * once: retry with exponential backoff, bounded in time. */
    int64_t give_up = kiln_clock_mono_ms() + connect_timeout_ms;
    long backoff_ms = 2;
    for (;;) {
        self->redis = s_connect(addr);
        if (self->redis && !self->redis->err)
            break;
        char why[256];
        snprintf(why, sizeof why, "%s", self->redis ? self->redis->errstr : "out of memory");
        if (self->redis)
            redisFree(self->redis);
        self->redis = NULL;
        if (kiln_clock_mono_ms() >= give_up) {
            kiln_error_set("queue: cannot connect to Redis at %s: %s", addr, why);
            rc = KILN_EINFRA;
            goto cleanup;
        }
        struct timespec ts = {backoff_ms / 1000, (backoff_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        backoff_ms = backoff_ms * 2 > 500 ? 500 : backoff_ms * 2;
    }
    redisReply *r = redisCommand(self->redis, "PING");
    if (!r || r->type == REDIS_REPLY_ERROR) {
        kiln_error_set("queue: Redis at %s does not answer PING", addr);
        if (r)
            freeReplyObject(r);
        rc = KILN_EINFRA;
        goto cleanup;
    }
    freeReplyObject(r);
    s_load_scripts(self);
    *out = self;
    self = NULL;
    rc = 0;
cleanup:
    kiln_queue_destroy(&self);
    return rc;
}

void kiln_queue_destroy(kiln_queue_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    kiln_queue_t *self = *self_p;
    if (self->redis)
        redisFree(self->redis);
    free(self->pending);
    free(self->addr);
    free(self);
    *self_p = NULL;
}

/* Loads every script into Redis's cache, so calls send a 40-byte digest
 * instead of the script. A failure leaves the digest empty and that script
 * is sent whole (EVAL), which also works. */
static void s_load_scripts(kiln_queue_t *self)
{
    for (int i = 0; i < S_N && self->redis; i++) {
        self->sha[i][0] = '\0';
        redisReply *r = redisCommand(self->redis, "SCRIPT LOAD %s", self->scripts[i]);
        if (r && r->type == REDIS_REPLY_STRING && r->len == 40)
            memcpy(self->sha[i], r->str, 41);
        if (r)
            freeReplyObject(r);
        else
            s_drop_connection(self);
    }
}

/* Appends one script call to the connection's output buffer. */
static void s_append(kiln_queue_t *self, int script, int nkeys, const char **argv,
                     const size_t *lens, int argc)
{
    const char *args[16];
    size_t alens[16];
    char nk[16];
    snprintf(nk, sizeof nk, "%d", nkeys);
    bool sha = self->sha[script][0] != '\0';
    args[0] = sha ? "EVALSHA" : "EVAL";
    alens[0] = strlen(args[0]);
    args[1] = sha ? self->sha[script] : self->scripts[script];
    alens[1] = strlen(args[1]);
    args[2] = nk;
    alens[2] = strlen(nk);
    for (int i = 0; i < argc && i < 13; i++) {
        args[3 + i] = argv[i];
        alens[3 + i] = lens && lens[i] ? lens[i] : strlen(argv[i]);
    }
    redisAppendCommandArgv(self->redis, 3 + (argc < 13 ? argc : 13), args, alens);
}

/* Reads one script's reply: 0 with *result, or KILN_EINFRA naming `what`.
 * NOSCRIPT (Redis restarted and lost its cache) reloads the scripts and
 * reports *noscript so a synchronous caller can send it again. */
static int s_read_reply(kiln_queue_t *self, const char *what, long long *result, bool *noscript)
{
    redisReply *r = NULL;
    int rc = KILN_EINFRA;
    if (redisGetReply(self->redis, (void **)&r) != REDIS_OK || !r) {
        kiln_error_set("queue: %s: Redis connection lost: %s", what, self->redis->errstr);
        s_drop_connection(self);
        return KILN_EINFRA;
    }
    if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0) {
        if (noscript)
            *noscript = true;
        kiln_error_set("queue: %s: Redis lost its script cache", what);
        for (int i = 0; i < S_N; i++)
            self->sha[i][0] = '\0';
        goto cleanup;
    }
    if (r->type != REDIS_REPLY_INTEGER) {
        kiln_error_set("queue: %s: unexpected Redis reply: %s", what,
                       r->type == REDIS_REPLY_ERROR ? r->str : "non-integer");
        goto cleanup;
    }
    *result = r->integer;
    rc = 0;
cleanup:
    freeReplyObject(r);
    return rc;
}

int kiln_queue_flush(kiln_queue_t *self)
{
    int first = 0;
    char why[KILN_ERROR_MAX] = "";
    for (size_t i = 0; i < self->n_pending; i++) {
        s_pending_t *p = &self->pending[i];
        long long res = 0;
        int rc = self->redis ? s_read_reply(self, p->what, &res, NULL) : KILN_EINFRA;
        if (rc == 0 && res < 0 && p->exists_ok) {
            res = 0;
        } else if (rc == 0 && res < 0) {
            kiln_error_set("queue: %s %s: %s", p->what, p->job_key,
                           res == -2 ? "Redis holds a newer token"
                                     : "the job was not in the state it needs");
            rc = KILN_ESTALE;
        } else if (rc != 0 && !self->redis) {
            kiln_error_set("queue: %s %s: Redis at %s is unreachable", p->what, p->job_key,
                           self->addr);
        }
        if (p->rc)
            *p->rc = rc;
        if (rc == 0 && p->token)
            *p->token = (uint64_t)res;
        if (rc != 0 && !first) {
            first = rc;
            snprintf(why, sizeof why, "%s", kiln_error_last());
        }
    }
    self->n_pending = 0;
    if (first)
        kiln_error_set("%s", why);
    return first;
}

void kiln_queue_batch_begin(kiln_queue_t *self)
{
    self->batching = true;
}

int kiln_queue_batch_end(kiln_queue_t *self)
{
    self->batching = false;
    return kiln_queue_flush(self);
}

int kiln_queue_batch_send(kiln_queue_t *self)
{
    self->batching = false;
    return self->n_pending ? kiln_queue_send(self) : 0;
}

size_t kiln_queue_pending(const kiln_queue_t *self)
{
    return self->n_pending;
}

/* Replies to earlier pipelined calls are read before a synchronous call. */
static void s_settle(kiln_queue_t *self)
{
    if (self->n_pending && kiln_queue_flush(self) != 0)
        kiln_log_warn("%s", kiln_error_last());
}

/* How a script call goes. */
typedef enum {
    S_SYNC,          /* one round trip, always */
    S_DEFER,         /* pipelined in a batch; failures reported by flush */
    S_DEFER_EXISTS,  /* the same, and a negative answer is not a failure */
} s_mode_t;

/* Runs a script. In a batch a deferrable call is only appended (its verdict
 * comes from kiln_queue_flush, and lands in *rc_out / *token_out when
 * given); otherwise it is one round trip and *result gets the answer. */
static int s_eval(kiln_queue_t *self, const char *what, const char *job_key, int script,
                  s_mode_t mode, int nkeys, const char **argv, const size_t *lens, int argc,
                  long long *result, uint64_t *token_out, int *rc_out)
{
    if (!self->redis) {
        kiln_error_set("queue: %s: Redis at %s is unreachable", what, self->addr);
        return KILN_EINFRA;
    }
    if (self->batching && mode != S_SYNC) {
        if (self->n_pending == KILN_QUEUE_MAX_PENDING && kiln_queue_flush(self) != 0)
            kiln_log_warn("%s", kiln_error_last());
        if (!self->redis) {
            kiln_error_set("queue: %s: Redis at %s is unreachable", what, self->addr);
            return KILN_EINFRA;
        }
        s_pending_t *p = &self->pending[self->n_pending++];
        p->what = what;
        snprintf(p->job_key, sizeof p->job_key, "%s", job_key);
        p->token = token_out;
        p->rc = rc_out;
        p->exists_ok = mode == S_DEFER_EXISTS;
        if (rc_out)
            *rc_out = KILN_EAGAIN;
        s_append(self, script, nkeys, argv, lens, argc);
        *result = 0;
        return 0;
    }
    s_settle(self);
    if (!self->redis) {
        kiln_error_set("queue: %s: Redis at %s is unreachable", what, self->addr);
        return KILN_EINFRA;
    }
    bool noscript = false;
    s_append(self, script, nkeys, argv, lens, argc);
    int rc = s_read_reply(self, what, result, &noscript);
    if (noscript) {
        /* Digests are cleared: this goes whole, and reloads the cache. */
        s_append(self, script, nkeys, argv, lens, argc);
        rc = s_read_reply(self, what, result, NULL);
        s_load_scripts(self);
    }
    return rc;
}

int kiln_queue_push(kiln_queue_t *self, const char *job_key, const char *labels,
                    const void *payload, size_t len)
{
    char k1[KILN_REDIS_KEY_MAX], k2[KILN_REDIS_KEY_MAX];
    long long res = 0;
    snprintf(k1, sizeof k1, "kiln:job:%s", job_key);
    snprintf(k2, sizeof k2, KILN_QUEUE_READY_PREFIX "%s", labels);
    const char *argv[] = {k1, k2, job_key, labels, payload ? payload : ""};
    size_t lens[] = {0, 0, 0, 0, payload ? len : 0};
    int rc = s_eval(self, "push", job_key, S_PUSH_I, S_DEFER_EXISTS, 2, argv, lens, 5, &res, NULL, NULL);
    if (rc != 0)
        return rc;
    if (res < 0) {
        kiln_error_set("queue: job %s exists already", job_key);
        return KILN_EINVAL;
    }
    return 0;
}

/* Shared by the two lease calls: the script's arguments. */
typedef struct {
    char k1[KILN_REDIS_KEY_MAX], k2[KILN_REDIS_KEY_MAX], dl[32], at[16], tok[32];
    const char *argv[8];
} s_lease_args_t;

static void s_lease_args(s_lease_args_t *a, const char *job_key, const char *labels,
                         const char *worker, unsigned attempt, int64_t deadline_ms,
                         uint64_t token)
{
    snprintf(a->k1, sizeof a->k1, "kiln:job:%s", job_key);
    snprintf(a->k2, sizeof a->k2, KILN_QUEUE_READY_PREFIX "%s", labels);
    snprintf(a->dl, sizeof a->dl, "%lld", (long long)deadline_ms);
    snprintf(a->at, sizeof a->at, "%u", attempt);
    snprintf(a->tok, sizeof a->tok, "%llu", (unsigned long long)token);
    const char *argv[8] = {a->k1, a->k2, "kiln:leases", job_key, worker, a->dl, a->at, a->tok};
    memcpy(a->argv, argv, sizeof argv);
}

int kiln_queue_lease(kiln_queue_t *self, const char *job_key, const char *labels,
                     const char *worker, unsigned attempt, int64_t deadline_ms, uint64_t token)
{
    s_lease_args_t a;
    long long res = 0;
    s_lease_args(&a, job_key, labels, worker, attempt, deadline_ms, token);
    int rc = s_eval(self, "lease", job_key, S_LEASE_I, S_SYNC, 3, a.argv, NULL, 8, &res, NULL,
                    NULL);
    if (rc != 0)
        return rc;
    if (res < 0) {
        kiln_error_set("queue: job %s %s", job_key,
                       res == -2 ? "has a newer token in Redis" : "is not ready");
        return KILN_ESTALE;
    }
    return 0;
}

int kiln_queue_lease_defer(kiln_queue_t *self, const char *job_key, const char *labels,
                           const char *worker, unsigned attempt, int64_t deadline_ms,
                           uint64_t token, int *rc)
{
    if (!self->batching) {
        int lrc = kiln_queue_lease(self, job_key, labels, worker, attempt, deadline_ms, token);
        if (rc)
            *rc = lrc;
        return lrc;
    }
    s_lease_args_t a;
    long long res = 0;
    s_lease_args(&a, job_key, labels, worker, attempt, deadline_ms, token);
    int erc = s_eval(self, "lease", job_key, S_LEASE_I, S_DEFER, 3, a.argv, NULL, 8, &res, NULL,
                     rc);
    if (erc != 0 && rc)
        *rc = erc;
    return erc;
}

int kiln_queue_send(kiln_queue_t *self)
{
    int done = 0;
    if (!self->redis) {
        kiln_error_set("queue: Redis at %s is unreachable", self->addr);
        return KILN_EINFRA;
    }
    while (!done) {
        if (redisBufferWrite(self->redis, &done) != REDIS_OK) {
            kiln_error_set("queue: cannot write to Redis at %s: %s", self->addr,
                           self->redis->errstr);
            s_drop_connection(self);
            return KILN_EINFRA;
        }
    }
    return 0;
}

int kiln_queue_renew(kiln_queue_t *self, const char *job_key, uint64_t token,
                     int64_t deadline_ms)
{
    char k1[KILN_REDIS_KEY_MAX], tok[32], dl[32];
    long long res = 0;
    snprintf(k1, sizeof k1, "kiln:job:%s", job_key);
    snprintf(tok, sizeof tok, "%llu", (unsigned long long)token);
    snprintf(dl, sizeof dl, "%lld", (long long)deadline_ms);
    const char *argv[] = {k1, "kiln:leases", job_key, tok, dl};
    int rc = s_eval(self, "renew", job_key, S_RENEW_I, S_DEFER, 2, argv, NULL, 5, &res, NULL, NULL);
    if (rc != 0)
        return rc;
    if (res < 0) {
        kiln_error_set("queue: stale token %s for %s", tok, job_key);
        return KILN_ESTALE;
    }
    return 0;
}

int kiln_queue_finish(kiln_queue_t *self, const char *job_key, uint64_t token, const char *result)
{
    char k1[KILN_REDIS_KEY_MAX], tok[32];
    long long res = 0;
    snprintf(k1, sizeof k1, "kiln:job:%s", job_key);
    snprintf(tok, sizeof tok, "%llu", (unsigned long long)token);
    const char *argv[] = {k1, "kiln:leases", job_key, tok, result};
    int rc = s_eval(self, "finish", job_key, S_FINISH_I, S_DEFER, 2, argv, NULL, 5, &res, NULL, NULL);
    if (rc != 0)
        return rc;
    if (res < 0) {
        kiln_error_set("queue: stale token %s for %s", tok, job_key);
        return KILN_ESTALE;
    }
    return 0;
}

int kiln_queue_requeue(kiln_queue_t *self, const char *job_key, const char *labels,
                       uint64_t token)
{
    char k1[KILN_REDIS_KEY_MAX], k3[KILN_REDIS_KEY_MAX], tok[32];
    long long res = 0;
    snprintf(k1, sizeof k1, "kiln:job:%s", job_key);
    snprintf(k3, sizeof k3, KILN_QUEUE_READY_PREFIX "%s", labels);
    snprintf(tok, sizeof tok, "%llu", (unsigned long long)token);
    const char *argv[] = {k1, "kiln:leases", k3, job_key, tok};
    int rc = s_eval(self, "requeue", job_key, S_REQUEUE_I, S_DEFER, 3, argv, NULL, 5, &res, NULL, NULL);
    if (rc != 0)
        return rc;
    if (res < 0) {
        kiln_error_set("queue: stale token %s for %s", tok, job_key);
        return KILN_ESTALE;
    }
    return 0;
}

int kiln_queue_drop(kiln_queue_t *self, const char *job_key, const char *labels,
                    const char *result)
{
    char k1[KILN_REDIS_KEY_MAX], k2[KILN_REDIS_KEY_MAX];
    long long res = 0;
    snprintf(k1, sizeof k1, "kiln:job:%s", job_key);
    snprintf(k2, sizeof k2, KILN_QUEUE_READY_PREFIX "%s", labels);
    const char *argv[] = {k1, k2, job_key, result};
    int rc = s_eval(self, "drop", job_key, S_DROP_I, S_DEFER, 2, argv, NULL, 4, &res, NULL, NULL);
    if (rc != 0)
        return rc;
    if (res < 0) {
        kiln_error_set("queue: job %s is not ready", job_key);
        return KILN_ESTALE;
    }
    return 0;
}

int kiln_queue_forget(kiln_queue_t *self, const char *const *job_keys, size_t n)
{
    int rc = 0;
    if (!self->redis) {
        kiln_error_set("queue: forget: Redis at %s is unreachable", self->addr);
        return KILN_EINFRA;
    }
    s_settle(self);
    if (!self->redis)
        return KILN_EINFRA;
    /* One pipelined batch: a run's cleanup costs one round trip. */
    for (size_t i = 0; i < n; i++)
        redisAppendCommand(self->redis, "DEL kiln:job:%s", job_keys[i]);
    for (size_t i = 0; i < n; i++) {
        redisReply *r = NULL;
        if (redisGetReply(self->redis, (void **)&r) != REDIS_OK) {
            kiln_error_set("queue: forget: Redis connection lost");
            s_drop_connection(self);
            return KILN_EINFRA;
        }
        if (r->type == REDIS_REPLY_ERROR)
            rc = KILN_EINFRA;
        freeReplyObject(r);
    }
    return rc;
}

long long kiln_queue_depth(kiln_queue_t *self, const char *labels)
{
 s_settle(self);
    if (!self->redis)
        return -1;
    redisReply *r = redisCommand(self->redis, "SCARD " KILN_QUEUE_READY_PREFIX "%s", labels);
    if (!r)
        s_drop_connection(self);
    long long n = -1;
    if (r && r->type == REDIS_REPLY_INTEGER)
        n = r->integer;
    if (r)
        freeReplyObject(r);
    return n;
}

static void s_drop_connection(kiln_queue_t *self)
{
    if (self->redis) {
        kiln_log_warn("queue: lost the connection to Redis at %s: %s", self->addr,
                      self->redis->errstr);
        redisFree(self->redis);
    }
    self->redis = NULL;
}

int kiln_queue_connected(const kiln_queue_t *self)
{
    return self->redis != NULL;
}

int kiln_queue_reconnect(kiln_queue_t *self)
{
    if (self->redis)
        return 0;
    redisContext *c = s_connect(self->addr);
    if (!c || c->err) {
        kiln_error_set("queue: cannot reconnect to Redis at %s: %s", self->addr,
                       c ? c->errstr : "out of memory");
        if (c)
            redisFree(c);
        return KILN_EINFRA;
    }
    redisReply *r = redisCommand(c, "PING");
    /* A Redis still loading its append-only file answers LOADING. */
    if (!r || r->type == REDIS_REPLY_ERROR) {
        kiln_error_set("queue: Redis at %s is not ready: %s", self->addr,
                       r ? r->str : c->errstr);
        if (r)
            freeReplyObject(r);
        redisFree(c);
        return KILN_EAGAIN;
    }
    freeReplyObject(r);
    self->redis = c;
    s_load_scripts(self);
    kiln_log_info("queue: reconnected to Redis at %s", self->addr);
    return 0;
}

int kiln_queue_get(kiln_queue_t *self, const char *job_key, kiln_queue_job_t *out)
{
    memset(out, 0, sizeof *out);
    if (!self->redis) {
        kiln_error_set("queue: get: Redis at %s is unreachable", self->addr);
        return KILN_EINFRA;
    }
    s_settle(self);
    if (!self->redis)
        return KILN_EINFRA;
    redisReply *r = redisCommand(self->redis, "HMGET kiln:job:%s state token attempt worker "
                                              "deadline result", job_key);
    if (!r) {
        kiln_error_set("queue: get %s: Redis connection lost", job_key);
        s_drop_connection(self);
        return KILN_EINFRA;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 6) {
        kiln_error_set("queue: get %s: unexpected reply", job_key);
        freeReplyObject(r);
        return KILN_EINFRA;
    }
    redisReply **e = r->element;
#define S_FIELD(i) (e[i]->type == REDIS_REPLY_STRING ? e[i]->str : "")
    snprintf(out->state, sizeof out->state, "%s", S_FIELD(0));
    out->token = strtoull(S_FIELD(1), NULL, 10);
    out->attempt = (unsigned)strtoul(S_FIELD(2), NULL, 10);
    snprintf(out->worker, sizeof out->worker, "%s", S_FIELD(3));
    out->deadline_ms = strtoll(S_FIELD(4), NULL, 10);
    snprintf(out->result, sizeof out->result, "%s", S_FIELD(5));
#undef S_FIELD
    freeReplyObject(r);
    return 0;
}

int kiln_queue_restore(kiln_queue_t *self, const char *job_key, const char *labels,
                       const char *state, uint64_t token, unsigned attempt, const char *worker,
                       int64_t deadline_ms, const char *result, uint64_t *stored_token)
{
    char k1[KILN_REDIS_KEY_MAX], k2[KILN_REDIS_KEY_MAX], tok[32], at[16], dl[32];
    long long res = 0;
    snprintf(k1, sizeof k1, "kiln:job:%s", job_key);
    snprintf(k2, sizeof k2, KILN_QUEUE_READY_PREFIX "%s", labels);
    snprintf(tok, sizeof tok, "%llu", (unsigned long long)token);
    snprintf(at, sizeof at, "%u", attempt);
    snprintf(dl, sizeof dl, "%lld", (long long)deadline_ms);
    const char *argv[] = {k1, k2, "kiln:leases", job_key, labels, state, tok, at,
                          worker ? worker : "", dl, result ? result : ""};
    int rc =
        s_eval(self, "restore", job_key, S_RESTORE_I, S_SYNC, 3, argv, NULL, 11, &res, NULL, NULL);
    if (rc == 0 && stored_token)
        *stored_token = res > 0 ? (uint64_t)res : 0;
    return rc;
}
