/* server.c: the coordinator's event loop, timers and lifecycle.
 *
 * One thread runs everything from zmq_poll: a message, a signal or a timer
 * wakes it; handlers never block on a peer (sends are non-blocking, and a
 * peer that cannot take a message is treated as lost, not waited for).
 * After each burst of messages and each timer, runs whose graphs are done
 * end (kiln_runs_sweep). The parts of the state live in the files named in
 * coord.h; this file starts them, serves, and stops them.
 */
#include "coordinator/coord.h"

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
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "common/clock.h"
#include "common/digest.h"
#include "common/error.h"
#include "common/fs.h"
#include "common/keys.h"
#include "common/log.h"
#include "coordinator/store.h"

/* How long Redis keeps a dead coordinator's claim for another farm. */
#define S_CLAIM_TTL_MS 30000

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
    cfg->cache_quota = 10ull << 30;
    cfg->cache_max_age_days = 7;
    cfg->artifact_retention_days = 90;
}

int kiln_server_send(kiln_server_t *self, const unsigned char *id, size_t id_len,
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
        kiln_role_t role = kiln_auth_role(msg.user_id, &name, self->peer_key);
        if (role == KILN_ROLE_WORKER &&
            msg.env->body_case == KILN__ENVELOPE__BODY_STORE_REQUEST) {
            /* One that records something is answered only after its own
             * rows commit, outside the burst's batch (as a client's request
             * is); blob chunks write no row and leave the batch open. */
            if (msg.env->store_request->op != KILN__STORE_OP__STORE_STAT &&
                msg.env->store_request->op != KILN__STORE_OP__STORE_PUT &&
                msg.env->store_request->op != KILN__STORE_OP__STORE_GET)
                kiln_proto_worker_flush(self);
            kiln_proto_store_handle(self, &msg, name);
        } else if (role == KILN_ROLE_WORKER) {
            if (!self->in_batch) {
                if (kiln_history_begin(self->history) != 0)
                    kiln_log_error("history: %s", kiln_error_last());
                kiln_queue_batch_begin(self->queue);
                self->in_batch = true;
            }
            kiln_proto_worker_handle(self, &msg, name);
        } else if (role == KILN_ROLE_CLIENT) {
            /* A client sees committed state, and its own request commits
             * before it is answered. */
            kiln_proto_worker_flush(self);
            kiln_proto_client_handle(self, &msg, name);
        } else {
            self->stats.garbage_dropped++;
            kiln_log_warn("dropped a message from an unauthenticated peer (%s)", msg.peer_address);
        }
        kiln_transport_msg_clear(&msg);
    }
    kiln_proto_worker_flush(self);
    kiln_runs_sweep(self);
}

/* Writes the coordinator's view of every active job into Redis, after Redis
 * was unreachable or came back from an older append-only file. */
void kiln_server_reconcile(kiln_server_t *self)
{
    size_t n = 0;
    int64_t deadline = kiln_clock_wall_ms() + self->cfg.lease_ms;
    /* One batch: a farm with 100,000 queued jobs is written back in a few
     * hundred script calls, not 100,000 round trips. */
    int rc = 0;
    kiln_queue_batch_begin(self->queue);
    for (size_t r = 0; r < self->n_runs && rc == 0; r++) {
        kiln_crun_t *run = self->runs[r];
        for (size_t i = 0; i < run->n_jobs && rc == 0; i++) {
            kiln_cjob_t *job = run->jobs[i];
            kiln_job_state_t state = kiln_runs_state(job);
            const char *labels = job->labels ? job->labels : "";
            if (state == KILN_JOB_PENDING || (state == KILN_JOB_READY && !job->queued))
                continue;
            if (state == KILN_JOB_READY) {
                /* Redis may hold a newer token than we do (tokens we
                 * propose must be newer to be taken): the flush sets ours
                 * to the one it keeps, the larger, so the next lease starts
                 * above it. A running job keeps its token, the one its
                 * worker presents. */
                rc = kiln_queue_restore(self->queue, job->key, labels, "ready", job->token,
                                        job->attempt, NULL, 0, NULL, &job->token);
            } else if (state == KILN_JOB_RUNNING) {
                rc = kiln_queue_restore(self->queue, job->key, labels, "leased", job->token,
                                        job->attempt, job->worker_name ? job->worker_name : "", deadline, NULL,
                                        NULL);
            } else {
                rc = kiln_queue_restore(self->queue, job->key, labels, "done", job->token,
                                        job->attempt, NULL, 0, kiln_job_state_name(state), NULL);
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
        kiln_server_reconcile(self);
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

/* The Redis claim is renewed well within its time to live; losing it to
 * another farm is said loudly (an operator pointed two farms at one Redis). */
static void s_renew_claim(kiln_server_t *self, int64_t now)
{
    if (now < self->claim_renew_at || !kiln_queue_connected(self->queue))
        return;
    self->claim_renew_at = now + S_CLAIM_TTL_MS / 4;
    int rc = kiln_queue_claim(self->queue, self->farm_id, self->holder, S_CLAIM_TTL_MS);
    if (rc == KILN_EBUSY)
        kiln_log_error("%s", kiln_error_last());
    else if (rc != 0)
        self->redis_dirty = true;
}

/* History's disk was full: its waiting writes are tried again each second
 * (kiln_history_retry does nothing until the disk has room for them), and
 * once they are in, the farm goes on where it stopped. */
static void s_check_history(kiln_server_t *self, int64_t now)
{
    kiln_history_health_t h;
    kiln_history_health(self->history, &h);
    if (h.writable || now < self->history_retry_at)
        return;
    self->history_retry_at = now + 1000;
    if (kiln_history_retry(self->history) == 1)
        kiln_dispatch(self);
}

static void s_on_timer(kiln_server_t *self)
{
    int64_t now = kiln_clock_mono_ms();
    s_queue_settle(self);
    s_renew_claim(self, now);
    kiln_workers_check(self, now);
    kiln_attempts_expire_orphans(self, now);
    s_check_redis(self, now);
    s_check_history(self, now);
    kiln_workers_check_unserved(self, now);
    kiln_proto_store_tick(self, now);
    kiln_dispatch(self);
    kiln_runs_sweep(self);
}

/* A connection of the router closed (ZMQ_EVENT_DISCONNECTED, reported by
 * file descriptor). The worker that last spoke on it is given a heartbeat
 * and a half to speak again: enough for a worker that merely reconnected,
 * far shorter than the lease for one whose process died. The fd may already
 * belong to a new connection, hence suspicion rather than a verdict. */
static void s_on_monitor(kiln_server_t *self)
{
    uint16_t event;
    uint32_t value;
    while (kiln_transport_monitor_event(self->monitor, &event, &value) == 0) {
        int64_t deadline = kiln_clock_mono_ms() + self->cfg.heartbeat_ms * 3 / 2;
        for (size_t i = 0; event == ZMQ_EVENT_DISCONNECTED && i < self->n_workers; i++) {
            kiln_cworker_t *w = self->workers[i];
            if (w->fd == (int)value && !w->suspect_deadline) {
                w->suspect_deadline = deadline;
                kiln_log_debug("worker %s: its connection closed", w->name);
                if (deadline < self->next_tick)
                    self->next_tick = deadline;
            }
        }
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
        zmq_pollitem_t items[5] = {
            {self->router, 0, ZMQ_POLLIN, 0},
            {kiln_auth_socket(self->auth), 0, ZMQ_POLLIN, 0},
            {self->monitor, 0, ZMQ_POLLIN, 0},
            {NULL, kiln_source_fd(self->source), ZMQ_POLLIN, 0},
            {NULL, self->sigfd, ZMQ_POLLIN, 0},
        };
        int n_items = self->sigfd >= 0 ? 5 : 4;
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
        if (items[3].revents & ZMQ_POLLIN) {
            kiln_source_job_t *job;
            while ((job = kiln_source_take(self->source))) {
                kiln_proto_client_on_source(self, job);
                kiln_source_job_free(&job);
            }
            kiln_runs_sweep(self);
        }
        if (n_items == 5 && (items[4].revents & ZMQ_POLLIN))
            s_on_signal(self);
        if (kiln_clock_mono_ms() >= self->next_tick) {
            self->next_tick = kiln_clock_mono_ms() + self->cfg.heartbeat_ms / 2;
            s_on_timer(self);
        }
    }
    return self->exit_code;
}

/* The operator's label aliases ("PATTERN=LABEL"), then the default one. A
 * malformed alias is refused here, naming it, rather than never matching. */
static int s_load_aliases(kiln_server_t *self, const kiln_server_config_t *cfg)
{
    if (cfg->n_label_aliases > KILN_SERVER_MAX_LABELS) {
        kiln_error_set("coordinator: more than %d label aliases", KILN_SERVER_MAX_LABELS);
        return KILN_EINVAL;
    }
    for (size_t i = 0; i <= cfg->n_label_aliases; i++) {
        const char *text = i < cfg->n_label_aliases ? cfg->label_aliases[i]
                                                    : KILN_SERVER_DEFAULT_ALIAS;
        const char *eq = strchr(text, '=');
        const char *star = strchr(text, '*');
        if (!eq || eq == text || !eq[1] || strchr(eq + 1, '=') || strchr(eq + 1, '*') ||
            (star && star != eq - 1)) {
            kiln_error_set("coordinator: label alias '%s': expected PATTERN=LABEL (a '*' only "
                           "at the end of PATTERN, e.g. ubuntu-*=linux)",
                           text);
            return KILN_EINVAL;
        }
        char *copy = strdup(text);
        if (!copy) {
            kiln_error_set("coordinator: out of memory");
            return -1;
        }
        copy[eq - text] = '\0';
        self->aliases[self->n_aliases].pattern = copy;
        self->aliases[self->n_aliases++].label = copy + (eq - text) + 1;
    }
    return 0;
}

static const char *s_keep(kiln_server_t *self, int slot, const char *s)
{
    if (!s)
        return NULL;
    self->strings[slot] = strdup(s);
    return self->strings[slot];
}

/* Takes DB.lock, writing who holds it for whoever finds it taken. */
static int s_lock_farm(kiln_server_t *self)
{
    char host[256] = "?", lock[PATH_MAX];
    gethostname(host, sizeof host - 1);
    char since[32];
    time_t t = time(NULL);
    struct tm tm;
    strftime(since, sizeof since, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
    snprintf(self->holder, sizeof self->holder, "coordinator pid %d on %s, listening on %s, since %s",
             (int)getpid(), host, self->cfg.listen, since);
    if (snprintf(lock, sizeof lock, "%s.lock", self->cfg.db_path) >= (int)sizeof lock) {
        kiln_error_set("coordinator: history path too long");
        return KILN_EINVAL;
    }
    int rc = kiln_fs_lock(lock, self->holder, &self->lock_fd);
    if (rc == KILN_EBUSY) {
        char why[KILN_ERROR_MAX];
        snprintf(why, sizeof why, "%s", kiln_error_last());
        kiln_error_set("coordinator: another coordinator owns this farm's history (%s)", why);
    }
    return rc;
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
    self->lock_fd = -1;
    self->cfg = *cfg;
    self->wtab = calloc(KILN_WTAB_SIZE, sizeof *self->wtab);
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
    self->up_since = kiln_clock_mono_ms();
    self->workers_epoch = 1;
    if ((rc = s_load_aliases(self, cfg)) != 0)
        goto cleanup;
    self->n_universal =
        kiln_workers_split_labels(self->cfg.universal_labels, self->universal, KILN_SERVER_MAX_LABELS);
    if ((rc = kiln_keys_load(&kp, self->cfg.key_path)) != 0)
        goto cleanup;
    if (!kp.has_secret) {
        kiln_error_set("coordinator: %s holds no secret key", self->cfg.key_path);
        rc = KILN_EINVAL;
        goto cleanup;
    }
    if ((rc = kiln_models_new(&self->models)) != 0)
        goto cleanup;
    if (cfg->vars_path && (rc = s_load_vars(self, cfg->vars_path)) != 0)
        goto cleanup;
    if ((rc = kiln_source_check(cfg->action_sources, cfg->n_action_sources,
                                cfg->git_credentials)) != 0)
        goto cleanup;
    /* One coordinator per farm: the history's lock, then Redis's, both
     * before anything is recovered, so a second coordinator started by
     * mistake changes nothing. */
    if ((rc = s_lock_farm(self)) != 0)
        goto cleanup;
    if ((rc = kiln_history_open(&self->history, self->cfg.db_path)) != 0)
        goto cleanup;
    if ((rc = kiln_queue_open(&self->queue, self->cfg.redis, 10000)) != 0)
        goto cleanup;
    if (!realpath(self->cfg.db_path, self->farm_id)) {
        kiln_error_errno("coordinator: %s", self->cfg.db_path);
        rc = -1;
        goto cleanup;
    }
    if ((rc = kiln_queue_claim(self->queue, self->farm_id, self->holder, S_CLAIM_TTL_MS)) != 0)
        goto cleanup;
    if ((rc = kiln_recovery_run(self)) != 0)
        goto cleanup;
    /* Repositories' mirrors live beside the history. */
    char mirrors[PATH_MAX + 16];
    snprintf(mirrors, sizeof mirrors, "%s", self->farm_id);
    char *slash = strrchr(mirrors, '/');
    snprintf(slash ? slash + 1 : mirrors, sizeof mirrors - (size_t)(slash ? slash + 1 - mirrors : 0),
             "mirrors");
    if ((rc = kiln_source_new(&self->source, mirrors, cfg->action_sources, cfg->n_action_sources,
                              cfg->git_credentials, cfg->actions_require_sha)) != 0)
        goto cleanup;
    /* So is the store, unless it was put elsewhere. */
    char store[PATH_MAX + 16];
    snprintf(store, sizeof store, "%s", mirrors);
    snprintf(store + (slash ? (size_t)(slash + 1 - mirrors) : 0),
             sizeof store - (size_t)(slash ? slash + 1 - mirrors : 0), "store");
    if ((rc = kiln_store_new_disk(&self->store, cfg->store_dir ? cfg->store_dir : store)) != 0)
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
        kiln_runs_free(&self->runs[i]);
    free(self->runs);
    kiln_models_destroy(&self->models); /* after the runs that hold them */
    for (size_t i = 0; i < self->n_workers; i++)
        kiln_workers_free(&self->workers[i]);
    free(self->workers);
    free(self->outgoing);
    free(self->wtab);
    for (size_t i = 0; i < self->n_universal; i++)
        free(self->universal[i]);
    for (size_t i = 0; i < self->n_aliases; i++)
        free((char *)self->aliases[i].pattern); /* one allocation: pattern, then label */
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
    kiln_source_destroy(&self->source, kiln_proto_client_pending_free);
    kiln_history_destroy(&self->history);
    kiln_store_destroy(&self->store);
    for (size_t i = 0; i < sizeof self->proofs / sizeof self->proofs[0]; i++)
        kiln_sha256_destroy(&self->proofs[i].hash);
    if (self->sigfd >= 0)
        close(self->sigfd);
    if (self->lock_fd >= 0)
        close(self->lock_fd); /* last: the farm is free once all else is closed */
    for (size_t i = 0; i < sizeof self->strings / sizeof self->strings[0]; i++)
        free(self->strings[i]);
    free(self);
    *self_p = NULL;
}
