/* queue.c: Redis-backed ready queues and fenced leases (see queue.h). */
#include "coordinator/queue.h"

#include <hiredis.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/error.h"
#include "common/log.h"

#define KILN_REDIS_KEY_MAX 600
#define KILN_QUEUE_KEY_MAX 200
/* The ready jobs of a label set. A set, not a list: the scheduler takes
 * jobs in its own order (sched.h), and SREM is O(1) where LREM scanned the
 * whole queue. The name changed with the type, so a command never meets a
 * list left by an older Kiln (WRONGTYPE); nothing reads those any more. */
#define KILN_QUEUE_READY_PREFIX "kiln:ready-set:"
/* Transitions per script call. Redis runs a call to its end before serving
 * anyone else, so a group stays short (about a millisecond of its time). */
#define S_GROUP_MAX 256
/* The command text of one group: job keys are bounded, and so is a push's
 * payload, which is the only large argument. */
#define S_GROUP_BYTES_MAX (64u << 20)

/* Every transition is one step of a single script, so a dispatch pass or a
 * burst of results costs Redis one script call however many jobs it moves:
 * entering a script (its arguments made into Lua tables, its effects wrapped
 * for the append-only file) cost more than the commands of one transition.
 *
 * KEYS are each transition's keys in turn (its job's hash, and for some its
 * ready set). ARGV is the transitions in order: a
 * one-letter name, the job key, then that transition's arguments. The reply
 * is one integer per transition: >= 0 done (a lease answers its token, a
 * restore the token Redis keeps), -1 the job is not in the state the
 * transition needs, -2 a lease's token is not newer than the stored one
 * (tokens never go back). */
static const char *S_SCRIPT =
    "local out, k, a = {}, 1, 1\n"
    "local function get(h)\n"
    "  local v = redis.call('HMGET', h, 'state', 'token')\n"
    "  return v[1], v[2]\n"
    "end\n"
    "while a <= #ARGV do\n"
    "  local op, j, h, r = ARGV[a], ARGV[a + 1], KEYS[k], -1\n"
    /* push: ready set; labels, payload */
    "  if op == 'P' then\n"
    "    if redis.call('EXISTS', h) == 0 then\n"
    "      redis.call('HSET', h, 'state', 'ready', 'labels', ARGV[a + 2], 'payload', ARGV[a + 3],"
    " 'token', 0)\n"
    "      redis.call('SADD', KEYS[k + 1], j)\n"
    "      r = 1\n"
    "    end\n"
    "    k, a = k + 2, a + 4\n"
    /* lease: ready set; worker, deadline, attempt, token */
    "  elseif op == 'L' then\n"
    "    local st, tok = get(h)\n"
    "    if st ~= 'ready' then r = -1\n"
    "    elseif tonumber(ARGV[a + 5]) <= tonumber(tok or '0') then r = -2\n"
    "    else\n"
    "      redis.call('SREM', KEYS[k + 1], j)\n"
    "      redis.call('HSET', h, 'state', 'leased', 'token', ARGV[a + 5], 'worker', ARGV[a + 2],"
    " 'deadline', ARGV[a + 3], 'attempt', ARGV[a + 4])\n"
    "      r = tonumber(ARGV[a + 5])\n"
    "    end\n"
    "    k, a = k + 2, a + 6\n"
    /* renew: token, deadline */
    "  elseif op == 'N' then\n"
    "    local st, tok = get(h)\n"
    "    if st == 'leased' and tok == ARGV[a + 2] then\n"
    "      redis.call('HSET', h, 'deadline', ARGV[a + 3])\n"
    "      r = 1\n"
    "    end\n"
    "    k, a = k + 1, a + 4\n"
    /* finish: token, result */
    "  elseif op == 'F' then\n"
    "    local st, tok = get(h)\n"
    "    if st == 'leased' and tok == ARGV[a + 2] then\n"
    "      redis.call('HSET', h, 'state', 'done', 'result', ARGV[a + 3])\n"
    "      r = 1\n"
    "    end\n"
    "    k, a = k + 1, a + 4\n"
    /* requeue: ready set; token */
    "  elseif op == 'Q' then\n"
    "    local st, tok = get(h)\n"
    "    if st == 'leased' and tok == ARGV[a + 2] then\n"
    "      redis.call('HSET', h, 'state', 'ready')\n"
    "      redis.call('HDEL', h, 'worker', 'deadline')\n"
    "      redis.call('SADD', KEYS[k + 1], j)\n"
    "      r = 1\n"
    "    end\n"
    "    k, a = k + 2, a + 3\n"
    /* drop: ready set; result */
    "  elseif op == 'D' then\n"
    "    if redis.call('HGET', h, 'state') == 'ready' then\n"
    "      redis.call('SREM', KEYS[k + 1], j)\n"
    "      redis.call('HSET', h, 'state', 'done', 'result', ARGV[a + 2])\n"
    "      r = 1\n"
    "    end\n"
    "    k, a = k + 2, a + 3\n"
    /* restore: ready set; labels, state, token, attempt, worker, deadline,
     * result. Whatever Redis held, the job ends in `state`, in the right
     * set, with a token that never goes back. */
    "  elseif op == 'R' then\n"
    "    local st, tok = get(h)\n"
    "    r = math.max(tonumber(tok or '0'), tonumber(ARGV[a + 4]))\n"
    "    redis.call('SREM', KEYS[k + 1], j)\n"
    "    redis.call('HSET', h, 'state', ARGV[a + 3], 'labels', ARGV[a + 2], 'token', r,"
    " 'attempt', ARGV[a + 5])\n"
    "    if ARGV[a + 3] == 'ready' then\n"
    "      redis.call('HDEL', h, 'worker', 'deadline')\n"
    "      redis.call('SADD', KEYS[k + 1], j)\n"
    "    elseif ARGV[a + 3] == 'leased' then\n"
    "      redis.call('HSET', h, 'worker', ARGV[a + 6], 'deadline', ARGV[a + 7])\n"
    "    else\n"
    "      redis.call('HSET', h, 'result', ARGV[a + 8])\n"
    "    end\n"
    "    k, a = k + 2, a + 9\n"
    "  else\n"
    "    return redis.error_reply('unknown transition ' .. tostring(op))\n"
    "  end\n"
    "  out[#out + 1] = r\n"
    "end\n"
    "return out\n";

/* A transition whose reply has not been read yet. */
typedef struct {
    const char *what;
    char job_key[KILN_QUEUE_KEY_MAX];
    uint64_t *token;            /* where a lease's or restore's token goes */
    int *rc;                    /* where its verdict goes */
    long long *raw;             /* a synchronous call's answer, uninterpreted */
    bool exists_ok;             /* push: "already there" is not a failure */
} s_pending_t;

struct kiln_queue {
    redisContext *redis;
    char *addr;
    char sha[41];               /* from SCRIPT LOAD; "" until loaded */
    bool batching;
    bool noscript;              /* a group met NOSCRIPT since this was cleared */
    /* Transitions whose replies are unread: those of the groups already
     * appended to the connection, then the open group's last n_open. */
    s_pending_t *pending;       /* KILN_QUEUE_MAX_PENDING */
    size_t n_pending, n_open;
    size_t *groups;             /* transitions per appended group, in order */
    size_t n_groups;
    /* The open group as RESP: its KEYS and its ARGV, and the command they
     * become when the group is appended. */
    kiln_buf_t keys, args, cmd;
    size_t n_keys, n_args;
};

/* After an I/O error a hiredis context is unusable: drop it, so that every
 * call fails fast until kiln_queue_reconnect makes a new one. */
static void s_drop_connection(kiln_queue_t *self);
static void s_load_script(kiln_queue_t *self);

static redisContext *s_connect_to(const char *addr, struct timeval tv);

/* Every call on the connection is bounded too: a Redis that does not
 * answer (paused, swapping, a half-open connection) is an outage after
 * KILN_QUEUE_CALL_TIMEOUT_MS, handled as one (reconcile when it is back),
 * never a coordinator frozen with it. */
static redisContext *s_connect(const char *addr)
{
    /* Short: the coordinator's loop waits on this while reconnecting. */
    struct timeval tv = {0, KILN_QUEUE_CONNECT_TIMEOUT_MS * 1000};
    redisContext *c = s_connect_to(addr, tv);
    if (c && !c->err) {
        struct timeval call = {KILN_QUEUE_CALL_TIMEOUT_MS / 1000, (KILN_QUEUE_CALL_TIMEOUT_MS % 1000) * 1000};
        if (redisSetTimeout(c, call) != REDIS_OK)
            kiln_log_warn("queue: cannot bound calls to Redis at %s: %s", addr, c->errstr);
    }
    return c;
}

static redisContext *s_connect_to(const char *addr, struct timeval tv)
{
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
        !(self->pending = calloc(KILN_QUEUE_MAX_PENDING, sizeof *self->pending)) ||
        !(self->groups = calloc(KILN_QUEUE_MAX_PENDING, sizeof *self->groups))) {
        kiln_error_set("queue: out of memory");
        goto cleanup;
    }
    self->keys.max = self->args.max = S_GROUP_BYTES_MAX;
    self->cmd.max = 2 * S_GROUP_BYTES_MAX + 4096;
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
    /* A Redis that has just started answers -LOADING until it has read its
     * append-only file back: wait for it (bounded, like the connect). */
    bool said_loading = false;
    for (;;) {
        redisReply *r = redisCommand(self->redis, "PING");
        bool loading = r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "LOADING", 7) == 0;
        if (r && r->type != REDIS_REPLY_ERROR) {
            freeReplyObject(r);
            break;
        }
        if (!loading || kiln_clock_mono_ms() >= give_up) {
            kiln_error_set("queue: Redis at %s does not answer PING: %s", addr,
                           r ? r->str : self->redis->errstr);
            if (r)
                freeReplyObject(r);
            rc = KILN_EINFRA;
            goto cleanup;
        }
        freeReplyObject(r);
        if (!said_loading)
            kiln_log_info("queue: Redis at %s is loading its data; waiting for it", addr);
        said_loading = true;
        struct timespec ts = {backoff_ms / 1000, (backoff_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        backoff_ms = backoff_ms * 2 > 500 ? 500 : backoff_ms * 2;
    }
    s_load_script(self);
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
    free(self->groups);
    free(self->keys.data);
    free(self->args.data);
    free(self->cmd.data);
    free(self->addr);
    free(self);
    *self_p = NULL;
}

/* Loads the script into Redis's cache, so calls send a 40-byte digest
 * instead of the script. A failure leaves the digest empty and the script
 * is sent whole (EVAL), which also works. */
static void s_load_script(kiln_queue_t *self)
{
    self->sha[0] = '\0';
    if (!self->redis)
        return;
    redisReply *r = redisCommand(self->redis, "SCRIPT LOAD %s", S_SCRIPT);
    if (r && r->type == REDIS_REPLY_STRING && r->len == 40)
        memcpy(self->sha, r->str, 41);
    if (r)
        freeReplyObject(r);
    else
        s_drop_connection(self);
}

static void s_buf_reset(kiln_buf_t *b)
{
    b->len = 0;
    b->toobig = b->oom = b->deep = false;
}

/* One RESP bulk string. */
static void s_resp(kiln_buf_t *b, const char *p, size_t n)
{
    char head[32];
    int h = snprintf(head, sizeof head, "$%zu\r\n", n);
    kiln_buf_add(b, head, (size_t)h);
    kiln_buf_add(b, p, n);
    kiln_buf_add(b, "\r\n", 2);
}

/* Starts a new open group. */
static void s_open_reset(kiln_queue_t *self)
{
    self->n_open = 0;
    self->n_keys = self->n_args = 0;
    s_buf_reset(&self->keys);
    s_buf_reset(&self->args);
}

/* Fails the open group's transitions (nothing of them reached Redis). */
static void s_fail_open(kiln_queue_t *self)
{
    for (size_t i = self->n_pending - self->n_open; i < self->n_pending; i++)
        if (self->pending[i].rc)
            *self->pending[i].rc = KILN_EINFRA;
    self->n_pending -= self->n_open;
    s_open_reset(self);
}

/* Appends the open group to the connection as one script call. */
static int s_close_group(kiln_queue_t *self)
{
    if (!self->n_open)
        return 0;
    if (!self->redis) {
        kiln_error_set("queue: Redis at %s is unreachable", self->addr);
        s_fail_open(self);
        return KILN_EINFRA;
    }
    kiln_buf_t *c = &self->cmd;
    char head[32], nk[24];
    bool sha = self->sha[0] != '\0';
    s_buf_reset(c);
    int h = snprintf(head, sizeof head, "*%zu\r\n", 3 + self->n_keys + self->n_args);
    kiln_buf_add(c, head, (size_t)h);
    s_resp(c, sha ? "EVALSHA" : "EVAL", sha ? 7 : 4);
    s_resp(c, sha ? self->sha : S_SCRIPT, sha ? 40 : strlen(S_SCRIPT));
    h = snprintf(nk, sizeof nk, "%zu", self->n_keys);
    s_resp(c, nk, (size_t)h);
    kiln_buf_add(c, self->keys.data, self->keys.len);
    kiln_buf_add(c, self->args.data, self->args.len);
    if (kiln_buf_failed(&self->keys) || kiln_buf_failed(&self->args) || kiln_buf_failed(c) ||
        redisAppendFormattedCommand(self->redis, c->data, c->len) != REDIS_OK) {
        kiln_error_set("queue: out of memory for a call to Redis");
        s_fail_open(self);
        return KILN_EINFRA;
    }
    self->groups[self->n_groups++] = self->n_open;
    s_open_reset(self);
    return 0;
}

/* The verdict of one transition from its answer (or the failure of its
 * group): where the caller asked for it, and as the error when it is the
 * first failure of a flush. */
static int s_verdict(s_pending_t *p, int rc, long long res, const char *why)
{
    if (p->raw) {
        *p->raw = res;
    } else if (rc == 0 && res < 0 && p->exists_ok) {
        res = 0;
    } else if (rc == 0 && res < 0) {
        rc = KILN_ESTALE;
        why = res == -2 ? "Redis holds a newer token" : "the job was not in the state it needs";
    }
    if (rc != 0)
        kiln_error_set("queue: %s %s: %s", p->what, p->job_key, why);
    if (p->rc)
        *p->rc = rc;
    if (rc == 0 && p->token && res >= 0)
        *p->token = (uint64_t)res;
    return rc;
}

int kiln_queue_flush(kiln_queue_t *self)
{
    int first = s_close_group(self);
    char why[KILN_ERROR_MAX] = "";
    if (first)
        snprintf(why, sizeof why, "%s", kiln_error_last());
    size_t base = 0;
    for (size_t g = 0; g < self->n_groups; g++) {
        size_t n = self->groups[g];
        redisReply *r = NULL;
        int grc = KILN_EINFRA;
        char reason[256] = "Redis is unreachable";
        if (self->redis && (redisGetReply(self->redis, (void **)&r) != REDIS_OK || !r)) {
            snprintf(reason, sizeof reason, "Redis connection lost: %s", self->redis->errstr);
            s_drop_connection(self);
        } else if (r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0) {
            snprintf(reason, sizeof reason, "Redis lost its script cache");
            self->noscript = true;
            self->sha[0] = '\0';
        } else if (r && (r->type != REDIS_REPLY_ARRAY || r->elements != n)) {
            snprintf(reason, sizeof reason, "unexpected Redis reply: %s",
                     r->type == REDIS_REPLY_ERROR ? r->str : "not one answer per transition");
        } else if (r) {
            grc = 0;
        }
        for (size_t i = 0; i < n; i++) {
            long long res = 0;
            int rc = grc;
            if (rc == 0 && r->element[i]->type == REDIS_REPLY_INTEGER)
                res = r->element[i]->integer;
            else if (rc == 0)
                rc = KILN_EINFRA;
            rc = s_verdict(&self->pending[base + i], rc, res,
                           grc ? reason : "unexpected Redis reply");
            if (rc != 0 && !first) {
                first = rc;
                snprintf(why, sizeof why, "%s", kiln_error_last());
            }
        }
        if (r)
            freeReplyObject(r);
        base += n;
    }
    self->n_groups = 0;
    self->n_pending = 0;
    /* Lost with a restart, or never loaded: the digest is fetched again
     * now that no reply is outstanding. */
    if (!self->sha[0] && self->redis)
        s_load_script(self);
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

/* Replies to earlier calls are read before a synchronous call. */
static void s_settle(kiln_queue_t *self)
{
    if (self->n_pending && kiln_queue_flush(self) != 0)
        kiln_log_warn("%s", kiln_error_last());
}

/* A transition: its name (for messages), its letter in the script, its job,
 * its keys, and its arguments after its letter and job key. */
typedef struct {
    const char *what;
    char letter;
    const char *job_key;
    const char *keys[2];
    size_t n_keys;
    const char *args[8];
    size_t lens[8];             /* 0: strlen */
    size_t n_args;
} s_op_t;

/* Adds a transition to the open group; its verdict comes with the flush
 * that reads the group's reply. */
static int s_add(kiln_queue_t *self, const s_op_t *op, s_pending_t how)
{
    size_t bytes = strlen(op->job_key) + 64;
    size_t lens[8];
    for (size_t i = 0; i < op->n_keys; i++)
        bytes += strlen(op->keys[i]) + 24;
    for (size_t i = 0; i < op->n_args; i++) {
        lens[i] = op->lens[i] ? op->lens[i] : strlen(op->args[i]);
        bytes += lens[i] + 24;
    }
    if (bytes > S_GROUP_BYTES_MAX) {
        kiln_error_set("queue: %s %s: %zu bytes is too large for Redis", op->what, op->job_key,
                       bytes);
        return KILN_EINVAL;
    }
    if (self->n_open == S_GROUP_MAX ||
        self->keys.len + self->args.len + bytes > S_GROUP_BYTES_MAX) {
        if (s_close_group(self) != 0)
            kiln_log_warn("%s", kiln_error_last());
    }
    if (self->n_pending == KILN_QUEUE_MAX_PENDING && kiln_queue_flush(self) != 0)
        kiln_log_warn("%s", kiln_error_last());
    if (!self->redis) {
        kiln_error_set("queue: %s %s: Redis at %s is unreachable", op->what, op->job_key,
                       self->addr);
        return KILN_EINFRA;
    }
    s_pending_t *p = &self->pending[self->n_pending++];
    *p = how;
    p->what = op->what;
    snprintf(p->job_key, sizeof p->job_key, "%s", op->job_key);
    if (p->rc)
        *p->rc = KILN_EAGAIN;
    self->n_open++;
    for (size_t i = 0; i < op->n_keys; i++)
        s_resp(&self->keys, op->keys[i], strlen(op->keys[i]));
    self->n_keys += op->n_keys;
    s_resp(&self->args, &op->letter, 1);
    s_resp(&self->args, op->job_key, strlen(op->job_key));
    for (size_t i = 0; i < op->n_args; i++)
        s_resp(&self->args, op->args[i], lens[i]);
    self->n_args += 2 + op->n_args;
    return 0;
}

/* How a transition goes. */
typedef enum {
    S_SYNC,          /* one round trip, always */
    S_DEFER,         /* in a batch, with the others; failures reported by flush */
    S_DEFER_EXISTS,  /* the same, and a negative answer is not a failure */
} s_mode_t;

/* Runs a transition. In a batch a deferrable one is only added (its
 * verdict lands in *rc_out / *token_out, when given, at the flush);
 * otherwise it is one round trip and *result gets the script's answer. */
static int s_eval(kiln_queue_t *self, const s_op_t *op, s_mode_t mode, long long *result,
                  uint64_t *token_out, int *rc_out)
{
    *result = 0;
    if (!self->redis) {
        kiln_error_set("queue: %s: Redis at %s is unreachable", op->what, self->addr);
        return KILN_EINFRA;
    }
    if (self->batching && mode != S_SYNC)
        return s_add(self, op,
                     (s_pending_t){.token = token_out, .rc = rc_out,
                                   .exists_ok = mode == S_DEFER_EXISTS});
    s_settle(self);
    int rc = KILN_EINFRA;
    self->noscript = false;
    /* NOSCRIPT (Redis restarted and lost its cache): the flush loads the
     * script again, and the call is made once more. */
    for (int attempt = 0; attempt < 2; attempt++) {
        int erc = s_add(self, op, (s_pending_t){.rc = &rc, .raw = result});
        if (erc != 0)
            return erc;
        kiln_queue_flush(self);
        if (!self->noscript)
            break;
        self->noscript = false;
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
    /* A payload is bytes, not text: its length is given (0 means strlen). */
    bool has = payload && len;
    s_op_t op = {"push", 'P', job_key, {k1, k2}, 2, {labels, has ? (const char *)payload : ""},
                 {0, has ? len : 0}, 2};
    int rc = s_eval(self, &op, S_DEFER_EXISTS, &res, NULL, NULL);
    if (rc != 0)
        return rc;
    if (res < 0) {
        kiln_error_set("queue: job %s exists already", job_key);
        return KILN_EINVAL;
    }
    return 0;
}

/* Shared by the two lease calls: the transition and its arguments. */
typedef struct {
    char k1[KILN_REDIS_KEY_MAX], k2[KILN_REDIS_KEY_MAX], dl[32], at[16], tok[32];
    s_op_t op;
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
    a->op = (s_op_t){"lease", 'L', job_key, {a->k1, a->k2}, 2, {worker, a->dl, a->at, a->tok},
                     {0}, 4};
}

int kiln_queue_lease(kiln_queue_t *self, const char *job_key, const char *labels,
                     const char *worker, unsigned attempt, int64_t deadline_ms, uint64_t token)
{
    s_lease_args_t a;
    long long res = 0;
    s_lease_args(&a, job_key, labels, worker, attempt, deadline_ms, token);
    int rc = s_eval(self, &a.op, S_SYNC, &res, NULL, NULL);
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
    int erc = s_eval(self, &a.op, S_DEFER, &res, NULL, rc);
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
    int rc = s_close_group(self);
    if (rc != 0)
        return rc;
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

/* The three transitions that present a token and answer only yes or no. */
static int s_fenced(kiln_queue_t *self, s_op_t *op, const char *tok)
{
    long long res = 0;
    int rc = s_eval(self, op, S_DEFER, &res, NULL, NULL);
    if (rc != 0)
        return rc;
    if (res < 0) {
        kiln_error_set("queue: stale token %s for %s", tok, op->job_key);
        return KILN_ESTALE;
    }
    return 0;
}

int kiln_queue_renew(kiln_queue_t *self, const char *job_key, uint64_t token,
                     int64_t deadline_ms)
{
    char k1[KILN_REDIS_KEY_MAX], tok[32], dl[32];
    snprintf(k1, sizeof k1, "kiln:job:%s", job_key);
    snprintf(tok, sizeof tok, "%llu", (unsigned long long)token);
    snprintf(dl, sizeof dl, "%lld", (long long)deadline_ms);
    s_op_t op = {"renew", 'N', job_key, {k1}, 1, {tok, dl}, {0}, 2};
    return s_fenced(self, &op, tok);
}

int kiln_queue_finish(kiln_queue_t *self, const char *job_key, uint64_t token, const char *result)
{
    char k1[KILN_REDIS_KEY_MAX], tok[32];
    snprintf(k1, sizeof k1, "kiln:job:%s", job_key);
    snprintf(tok, sizeof tok, "%llu", (unsigned long long)token);
    s_op_t op = {"finish", 'F', job_key, {k1}, 1, {tok, result}, {0}, 2};
    return s_fenced(self, &op, tok);
}

int kiln_queue_requeue(kiln_queue_t *self, const char *job_key, const char *labels,
                       uint64_t token)
{
    char k1[KILN_REDIS_KEY_MAX], k2[KILN_REDIS_KEY_MAX], tok[32];
    snprintf(k1, sizeof k1, "kiln:job:%s", job_key);
    snprintf(k2, sizeof k2, KILN_QUEUE_READY_PREFIX "%s", labels);
    snprintf(tok, sizeof tok, "%llu", (unsigned long long)token);
    s_op_t op = {"requeue", 'Q', job_key, {k1, k2}, 2, {tok}, {0}, 1};
    return s_fenced(self, &op, tok);
}

int kiln_queue_drop(kiln_queue_t *self, const char *job_key, const char *labels,
                    const char *result)
{
    char k1[KILN_REDIS_KEY_MAX], k2[KILN_REDIS_KEY_MAX];
    long long res = 0;
    snprintf(k1, sizeof k1, "kiln:job:%s", job_key);
    snprintf(k2, sizeof k2, KILN_QUEUE_READY_PREFIX "%s", labels);
    s_op_t op = {"drop", 'D', job_key, {k1, k2}, 2, {result}, {0}, 1};
    int rc = s_eval(self, &op, S_DEFER, &res, NULL, NULL);
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
    s_load_script(self);
    kiln_log_info("queue: reconnected to Redis at %s", self->addr);
    return 0;
}

/* The claim is one script, so that two coordinators starting at once
 * cannot both find the key free. */
static const char *S_CLAIM_LUA =
    "local v = redis.call('GET', KEYS[1]) "
    "if v and string.sub(v, 1, #ARGV[1] + 1) ~= ARGV[1] .. '\\n' then return v end "
    "redis.call('SET', KEYS[1], ARGV[1] .. '\\n' .. ARGV[2], 'PX', ARGV[3]) "
    "return 1";

int kiln_queue_claim(kiln_queue_t *self, const char *farm, const char *holder, int64_t ttl_ms)
{
    if (!self->redis) {
        kiln_error_set("queue: claim: Redis at %s is unreachable", self->addr);
        return KILN_EINFRA;
    }
    s_settle(self);
    if (!self->redis)
        return KILN_EINFRA;
    redisReply *r = redisCommand(self->redis, "EVAL %s 1 kiln:owner %s %s %lld", S_CLAIM_LUA, farm,
                                 holder, (long long)ttl_ms);
    if (!r) {
        kiln_error_set("queue: claim: Redis connection lost");
        s_drop_connection(self);
        return KILN_EINFRA;
    }
    int rc = 0;
    if (r->type == REDIS_REPLY_STRING) {
        const char *nl = strchr(r->str, '\n');
        kiln_error_set("Redis at %s is the queue of another farm: history %.*s, held by %s",
                       self->addr, nl ? (int)(nl - r->str) : (int)r->len, r->str,
                       nl ? nl + 1 : "(unknown)");
        rc = KILN_EBUSY;
    } else if (r->type != REDIS_REPLY_INTEGER) {
        kiln_error_set("queue: claim: %s", r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
        rc = KILN_EINFRA;
    }
    freeReplyObject(r);
    return rc;
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
    s_op_t op = {"restore", 'R', job_key, {k1, k2}, 2,
                 {labels, state, tok, at, worker ? worker : "", dl, result ? result : ""},
                 {0}, 7};
    int rc = s_eval(self, &op, S_DEFER, &res, stored_token, NULL);
    if (rc == 0 && !self->batching && stored_token)
        *stored_token = res > 0 ? (uint64_t)res : 0;
    return rc;
}
