/* swarm.c: kiln-swarm, many simulated workers in one process.
 *
 * The scale benchmark (bench/b_scale.sh) needs a thousand connected workers
 * on a machine that cannot run a thousand kiln-worker processes. A swarm
 * opens N DEALER connections to the coordinator, each a CURVE client that
 * introduces itself as a distinct worker exactly as worker/agent.c does
 * (Hello with name, labels, slots, version, host name, its instance and
 * the jobs it holds), all served by one zmq_poll loop in one thread.
 *
 * Nothing is run: an assignment is answered at once with what a real worker
 * sends for a job whose steps all succeed without output (StepStarted and
 * StepResult per step, then JobResult with the assignment's key and fencing
 * token, carrying the last step's result as the agent's does). Results are
 * kept and resent every 2 s until the coordinator acknowledges them (alone
 * or inside the next assignment), Welcome with rehello is answered with a
 * new Hello, heartbeats go out at the interval the coordinator sets, and a
 * Drain is honoured (assignments while draining are handed back as the
 * agent does). What the coordinator sends is decoded with the transport's
 * defensive receive; anything malformed or unexpected is counted and
 * dropped.
 *
 * A worker's name is its key's, so each connection needs a key of its own:
 * --key-dir DIR gives connection NAME the key DIR/NAME.key (the scale
 * benchmark makes and admits them). --key gives every connection one key,
 * which a coordinator accepts only for a swarm of one connection.
 *
 * One zmq_poll waits on two descriptors: a signalfd (SIGTERM, SIGINT) and an
 * epoll set holding every connection's ZMQ_FD. Polling the N sockets
 * themselves would cost O(N) per wake-up, and with 250 connections that made
 * a swarm spend as much CPU per job as the coordinator it is meant to
 * measure; epoll reports only the connections with something new. ZMQ_FD
 * only says that the socket's state may have changed, and any send on the
 * socket may consume that signal, so a connection is checked again
 * (ZMQ_EVENTS) after it is read or written, and kept on a pending list while
 * it has messages left.
 *
 * Counters (assignments, results sent and acknowledged, the wall-clock time
 * of the first assignment and of the last acknowledgement) are written as
 * JSON to --stats every second and at exit.
 *
 * usage: kiln-swarm --coordinator ENDPOINT --server-key FILE (--key FILE |
 *        --key-dir DIR) [--connections N] [--slots S] [--name-prefix P]
 *        [--labels L] [--stats FILE]
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <unistd.h>
#include <sodium.h>
#include <zmq.h>

#include "common/clock.h"
#include "common/config.h"
#include "common/error.h"
#include "common/keys.h"
#include "common/labels.h"
#include "common/log.h"
#include "common/transport.h"

#define SWARM_MAX_CONNECTIONS 4096
#define SWARM_MAX_SLOTS 256           /* the coordinator's KILN_SERVER_MAX_SLOTS */
#define SWARM_MAX_LABELS 32
#define SWARM_NAME_MAX 128
#define SWARM_JOB_KEY_MAX 256         /* assignments with longer keys are dropped */
#define SWARM_MAX_RESULTS 64          /* unacknowledged results kept per connection */
#define SWARM_MAX_STEPS 1000          /* step results reported per job, at most */
#define SWARM_RESEND_MS 2000          /* as the agent: results resent until acknowledged */
#define SWARM_BURST 256               /* messages read from one connection per wake-up */
#define SWARM_STATS_EVERY_MS 1000
#define SWARM_FDS_PER_CONNECTION 3    /* TCP socket, the socket's mailbox, slack */
#define SWARM_EPOLL_BATCH 512
#define SWARM_PATH_MAX 4096

/* A result sent and not yet acknowledged. */
typedef struct {
    char job_key[SWARM_JOB_KEY_MAX];
    uint64_t token;
    int64_t started_ms;   /* wall */
    int64_t finished_ms;  /* wall */
    int64_t resend_at;    /* monotonic */
    uint32_t n_steps;     /* the last one's result rides in the job's */
} s_result_t;

typedef struct {
    char name[SWARM_NAME_MAX];
    uint64_t instance;
    void *sock;
    bool pending;            /* on the pending list: to be read or checked */
    bool welcomed;
    bool draining;
    int heartbeat_ms;
    int64_t next_heartbeat;  /* monotonic */
    s_result_t *results;     /* SWARM_MAX_RESULTS entries */
    size_t n_results;
} s_conn_t;

typedef struct {
    uint64_t assignments;
    uint64_t steps_reported;
    uint64_t results_sent;
    uint64_t results_resent;
    uint64_t results_acked;
    uint64_t results_dropped;  /* forgotten unacknowledged (list full) */
    uint64_t acks_unknown;
    uint64_t refused;          /* assignments handed back (draining) */
    uint64_t welcomes;
    uint64_t rehellos;
    uint64_t heartbeats;
    uint64_t malformed;
    uint64_t send_failures;
    int64_t started_ms;        /* wall: the swarm started connecting */
    int64_t all_welcomed_ms;   /* wall: the last connection's first welcome */
    int64_t first_assign_ms;   /* wall */
    int64_t last_assign_ms;
    int64_t last_result_ms;
    int64_t last_ack_ms;
} s_stats_t;

typedef struct {
    const char *coordinator;
    const char *server_key;
    const char *key;
    const char *key_dir;
    const char *name_prefix;
    const char *labels;
    const char *stats_path;
    const char *log_level;
    int connections;
    int slots;
    int io_threads;
} s_config_t;

typedef struct {
    s_config_t cfg;
    void *zctx;
    int sigfd;
    bool stopping;
    s_conn_t *conns;
    size_t n_conns;
    size_t n_welcomed;
    int epfd;                /* epoll set of the connections' ZMQ_FD */
    size_t *pending;         /* connections to read or check (n_conns entries) */
    size_t n_pending;
    char hostname[SWARM_NAME_MAX];
    char *labels[SWARM_MAX_LABELS];
    size_t n_labels;
    s_stats_t stats;
    int64_t next_stats;      /* monotonic */
} s_swarm_t;

/* -------------------------------------------------------------- sending */

/* Puts a connection on the pending list (once): its ZMQ_FD signal may be
 * gone while messages wait. */
static void s_mark(s_swarm_t *self, s_conn_t *c)
{
    if (c->pending)
        return;
    c->pending = true;
    self->pending[self->n_pending++] = (size_t)(c - self->conns);
}

static void s_send(s_swarm_t *self, s_conn_t *c, Kiln__Envelope *env)
{
    /* A send processes the socket's commands, which may swallow the
     * wake-up of a message that arrived meanwhile. */
    s_mark(self, c);
    if (kiln_transport_send(c->sock, NULL, 0, env) != 0) {
        self->stats.send_failures++;
        kiln_log_warn("%s: send failed: %s", c->name, kiln_error_last());
    }
}

/* Hello as the agent sends it: the jobs held are those whose results are
 * not yet acknowledged (a swarm never has one running). */
static void s_send_hello(s_swarm_t *self, s_conn_t *c)
{
    Kiln__Envelope env = KILN__ENVELOPE__INIT;
    Kiln__Hello h = KILN__HELLO__INIT;
    Kiln__RunningJob held[SWARM_MAX_RESULTS], *heldp[SWARM_MAX_RESULTS];
    for (size_t i = 0; i < c->n_results; i++) {
        kiln__running_job__init(&held[i]);
        held[i].job_key = c->results[i].job_key;
        held[i].token = c->results[i].token;
        heldp[i] = &held[i];
    }
    h.name = c->name;
    h.instance = c->instance;
    h.labels = self->labels;
    h.n_labels = self->n_labels;
    h.slots = (uint32_t)self->cfg.slots;
    h.version = (char *)KILN_VERSION;
    h.hostname = self->hostname;
    h.running = heldp;
    h.n_running = c->n_results;
    env.body_case = KILN__ENVELOPE__BODY_HELLO;
    env.hello = &h;
    s_send(self, c, &env);
}

static void s_send_heartbeat(s_swarm_t *self, s_conn_t *c, int64_t now)
{
    Kiln__Envelope env = KILN__ENVELOPE__INIT;
    Kiln__Heartbeat hb = KILN__HEARTBEAT__INIT;
    hb.draining = c->draining;
    env.body_case = KILN__ENVELOPE__BODY_HEARTBEAT;
    env.heartbeat = &hb;
    s_send(self, c, &env);
    self->stats.heartbeats++;
    c->next_heartbeat = now + c->heartbeat_ms;
}

static void s_send_result(s_swarm_t *self, s_conn_t *c, s_result_t *r, Kiln__Outcome outcome,
                          const char *message)
{
    Kiln__Envelope env = KILN__ENVELOPE__INIT;
    Kiln__JobResult jr = KILN__JOB_RESULT__INIT;
    jr.job_key = r->job_key;
    jr.token = r->token;
    jr.outcome = outcome;
    jr.started_ms = (uint64_t)r->started_ms;
    jr.finished_ms = (uint64_t)r->finished_ms;
    jr.message = (char *)message;
    Kiln__StepResult *sr = r->n_steps ? calloc(r->n_steps, sizeof *sr) : NULL;
    Kiln__StepResult **srp = r->n_steps ? calloc(r->n_steps, sizeof *srp) : NULL;
    for (uint32_t i = 0; sr && srp && i < r->n_steps; i++) {
        kiln__step_result__init(&sr[i]);
        sr[i].step = i;
        sr[i].outcome = KILN__OUTCOME__OUTCOME_SUCCESS;
        sr[i].conclusion = KILN__OUTCOME__OUTCOME_SUCCESS;
        sr[i].started_ms = (uint64_t)r->started_ms;
        sr[i].finished_ms = (uint64_t)r->finished_ms;
        srp[i] = &sr[i];
    }
    if (sr && srp) {
        jr.steps = srp;
        jr.n_steps = r->n_steps;
    }
    env.body_case = KILN__ENVELOPE__BODY_JOB_RESULT;
    env.job_result = &jr;
    s_send(self, c, &env);
    free(sr);
    free(srp);
    r->resend_at = kiln_clock_mono_ms() + SWARM_RESEND_MS;
}

/* ------------------------------------------------------------- handlers */

static void s_on_result_ack(s_swarm_t *self, s_conn_t *c, const Kiln__ResultAck *ack);

/* An assignment: every step started and succeeded, the job done.
 * The result is kept until acknowledged. */
static void s_on_assign(s_swarm_t *self, s_conn_t *c, const Kiln__JobAssign *a)
{
    for (size_t i = 0; i < a->n_acks; i++)
        s_on_result_ack(self, c, a->acks[i]);
    int64_t now = kiln_clock_wall_ms();
    size_t key_len = strlen(a->job_key);
    if (key_len == 0 || key_len >= SWARM_JOB_KEY_MAX) {
        /* Not a key we can hold for resending; nothing sane to answer. */
        self->stats.malformed++;
        kiln_log_warn("%s: assignment with a job key of %zu bytes; dropped", c->name, key_len);
        return;
    }
    self->stats.assignments++;
    if (!self->stats.first_assign_ms)
        self->stats.first_assign_ms = now;
    self->stats.last_assign_ms = now;
    if (c->draining) {
        /* As the agent: handed back at once, not kept for resending. */
        Kiln__Envelope env = KILN__ENVELOPE__INIT;
        Kiln__JobResult refused = KILN__JOB_RESULT__INIT;
        refused.job_key = a->job_key;
        refused.token = a->token;
        refused.outcome = KILN__OUTCOME__OUTCOME_INFRA_ERROR;
        refused.message = (char *)"worker is draining";
        env.body_case = KILN__ENVELOPE__BODY_JOB_RESULT;
        env.job_result = &refused;
        s_send(self, c, &env);
        self->stats.refused++;
        return;
    }
    /* As the agent: steps that end at once are reported inside the job's
     * result, their starts left out. */
    self->stats.steps_reported += a->n_steps < SWARM_MAX_STEPS ? a->n_steps : SWARM_MAX_STEPS;
    if (c->n_results == SWARM_MAX_RESULTS) {
        /* As the agent: the oldest unacknowledged result is forgotten. */
        kiln_log_warn("%s: %d results unacknowledged; forgetting %s", c->name, SWARM_MAX_RESULTS,
                      c->results[0].job_key);
        memmove(&c->results[0], &c->results[1], (SWARM_MAX_RESULTS - 1) * sizeof c->results[0]);
        c->n_results--;
        self->stats.results_dropped++;
    }
    s_result_t *r = &c->results[c->n_results++];
    memcpy(r->job_key, a->job_key, key_len + 1);
    r->token = a->token;
    r->started_ms = now;
    r->finished_ms = now;
    r->n_steps = (uint32_t)(a->n_steps < SWARM_MAX_STEPS ? a->n_steps : SWARM_MAX_STEPS);
    s_send_result(self, c, r, KILN__OUTCOME__OUTCOME_SUCCESS, "");
    self->stats.results_sent++;
    self->stats.last_result_ms = now;
}

static void s_on_result_ack(s_swarm_t *self, s_conn_t *c, const Kiln__ResultAck *ack)
{
    for (size_t i = 0; i < c->n_results; i++) {
        if (c->results[i].token == ack->token && strcmp(c->results[i].job_key, ack->job_key) == 0) {
            memmove(&c->results[i], &c->results[i + 1],
                    (c->n_results - i - 1) * sizeof c->results[0]);
            c->n_results--;
            self->stats.results_acked++;
            self->stats.last_ack_ms = kiln_clock_wall_ms();
            return;
        }
    }
    /* A second acknowledgement of a resent result, or garbage. */
    self->stats.acks_unknown++;
}

static void s_on_welcome(s_swarm_t *self, s_conn_t *c, const Kiln__Welcome *w)
{
    if (w->rehello) {
        /* The coordinator does not know this worker (it restarted, or it
         * declared us lost): introduce ourselves again. */
        self->stats.rehellos++;
        s_send_hello(self, c);
        return;
    }
    self->stats.welcomes++;
    if (!c->welcomed) {
        c->welcomed = true;
        if (++self->n_welcomed == self->n_conns) {
            self->stats.all_welcomed_ms = kiln_clock_wall_ms();
            kiln_log_info("all %zu connections welcomed in %" PRId64 " ms", self->n_conns,
                          self->stats.all_welcomed_ms - self->stats.started_ms);
        }
    }
    if (w->heartbeat_ms >= 10)
        c->heartbeat_ms = (int)w->heartbeat_ms;
    /* A new session: what it has not acknowledged goes again. */
    for (size_t r = 0; r < c->n_results; r++) {
        s_send_result(self, c, &c->results[r], KILN__OUTCOME__OUTCOME_SUCCESS, "");
        self->stats.results_resent++;
    }
    if (c->draining)
        s_send_heartbeat(self, c, kiln_clock_mono_ms());
}

/* Reads up to SWARM_BURST messages. Returns true when it stopped at the
 * burst (more may wait). */
static bool s_on_socket(s_swarm_t *self, s_conn_t *c)
{
    for (int i = 0; i < SWARM_BURST; i++) {
        kiln_transport_msg_t msg;
        int rc = kiln_transport_recv(c->sock, false, &msg);
        if (rc == KILN_EAGAIN)
            return false;
        if (rc != 0) {
            self->stats.malformed++;
            kiln_log_warn("%s: dropped a message from the coordinator: %s", c->name,
                          kiln_error_last());
            continue;
        }
        switch (msg.env->body_case) {
        case KILN__ENVELOPE__BODY_WELCOME: s_on_welcome(self, c, msg.env->welcome); break;
        case KILN__ENVELOPE__BODY_ASSIGN: s_on_assign(self, c, msg.env->assign); break;
        case KILN__ENVELOPE__BODY_RESULT_ACK: s_on_result_ack(self, c, msg.env->result_ack); break;
        case KILN__ENVELOPE__BODY_CANCEL:
        case KILN__ENVELOPE__BODY_CREDIT:
        case KILN__ENVELOPE__BODY_HEARTBEAT: /* the coordinator still hears us */
            /* Nothing runs here and nothing is logged: no job to stop, no
             * output waiting for credit. */
            break;
        case KILN__ENVELOPE__BODY_DRAIN:
            if (!c->draining) {
                c->draining = true;
                kiln_log_info("%s: draining (%s)", c->name,
                              msg.env->drain->reason[0] ? msg.env->drain->reason
                                                        : "coordinator asked");
                s_send_heartbeat(self, c, kiln_clock_mono_ms());
            }
            break;
        default:
            self->stats.malformed++;
            kiln_log_warn("%s: unexpected message %d from the coordinator; dropped", c->name,
                          (int)msg.env->body_case);
            break;
        }
        kiln_transport_msg_clear(&msg);
    }
    return true;
}

/* Serves the pending connections: reads what waits, then asks each one
 * whether something arrived meanwhile (ZMQ_EVENTS); those stay pending.
 * Connections marked while this runs (by sends) are served in the same
 * call. */
static void s_on_pending(s_swarm_t *self)
{
    size_t i = 0;
    while (i < self->n_pending) {
        s_conn_t *c = &self->conns[self->pending[i]];
        bool more = s_on_socket(self, c);
        int events = 0;
        size_t len = sizeof events;
        if (!more && zmq_getsockopt(c->sock, ZMQ_EVENTS, &events, &len) == 0)
            more = (events & ZMQ_POLLIN) != 0;
        if (more) {
            i++;
            continue;
        }
        c->pending = false;
        self->pending[i] = self->pending[--self->n_pending];
    }
}

/* Connections whose ZMQ_FD fired go on the pending list. */
static int s_on_epoll(s_swarm_t *self)
{
    struct epoll_event ev[SWARM_EPOLL_BATCH];
    int n;
    do {
        n = epoll_wait(self->epfd, ev, SWARM_EPOLL_BATCH, 0);
        if (n == -1) {
            if (errno == EINTR)
                continue;
            kiln_error_errno("swarm: epoll_wait");
            return -1;
        }
        for (int i = 0; i < n; i++)
            if (ev[i].data.u64 < self->n_conns)
                s_mark(self, &self->conns[ev[i].data.u64]);
    } while (n == SWARM_EPOLL_BATCH);
    return 0;
}

/* ---------------------------------------------------------------- stats */

/* Writes the counters to cfg.stats_path (through a temporary file and a
 * rename, so a reader never sees half a document). */
static int s_write_stats(s_swarm_t *self)
{
    char tmp[SWARM_PATH_MAX + 8];
    const s_stats_t *s = &self->stats;
    if (!self->cfg.stats_path)
        return 0;
    snprintf(tmp, sizeof tmp, "%s.tmp", self->cfg.stats_path);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        kiln_error_errno("swarm: cannot write %s", tmp);
        return -1;
    }
    fprintf(f,
            "{\"connections\":%zu,\"welcomed\":%zu,\"slots\":%d,"
            "\"assignments\":%" PRIu64 ",\"steps_reported\":%" PRIu64
            ",\"results_sent\":%" PRIu64 ",\"results_resent\":%" PRIu64
            ",\"results_acked\":%" PRIu64 ",\"results_dropped\":%" PRIu64
            ",\"acks_unknown\":%" PRIu64 ",\"refused\":%" PRIu64 ",\"welcomes\":%" PRIu64
            ",\"rehellos\":%" PRIu64 ",\"heartbeats\":%" PRIu64 ",\"malformed\":%" PRIu64
            ",\"send_failures\":%" PRIu64 ",\"started_ms\":%" PRId64
            ",\"all_welcomed_ms\":%" PRId64 ",\"first_assign_ms\":%" PRId64
            ",\"last_assign_ms\":%" PRId64 ",\"last_result_ms\":%" PRId64
            ",\"last_ack_ms\":%" PRId64 "}\n",
            self->n_conns, self->n_welcomed, self->cfg.slots, s->assignments, s->steps_reported,
            s->results_sent, s->results_resent, s->results_acked, s->results_dropped,
            s->acks_unknown, s->refused, s->welcomes, s->rehellos, s->heartbeats, s->malformed,
            s->send_failures, s->started_ms, s->all_welcomed_ms, s->first_assign_ms,
            s->last_assign_ms, s->last_result_ms, s->last_ack_ms);
    if (fclose(f) != 0 || rename(tmp, self->cfg.stats_path) != 0) {
        kiln_error_errno("swarm: cannot write %s", self->cfg.stats_path);
        return -1;
    }
    return 0;
}

/* ----------------------------------------------------------------- loop */

/* Heartbeats and resends that are due; returns the next deadline
 * (monotonic). */
static int64_t s_on_timers(s_swarm_t *self, int64_t now)
{
    int64_t next = now + 1000;
    for (size_t i = 0; i < self->n_conns; i++) {
        s_conn_t *c = &self->conns[i];
        if (now >= c->next_heartbeat)
            s_send_heartbeat(self, c, now);
        if (c->next_heartbeat < next)
            next = c->next_heartbeat;
        for (size_t r = 0; r < c->n_results; r++) {
            s_result_t *res = &c->results[r];
            if (now >= res->resend_at) {
                s_send_result(self, c, res, KILN__OUTCOME__OUTCOME_SUCCESS, "");
                self->stats.results_resent++;
            }
            if (res->resend_at < next)
                next = res->resend_at;
        }
    }
    if (self->cfg.stats_path) {
        if (now >= self->next_stats) {
            if (s_write_stats(self) != 0)
                kiln_log_warn("%s", kiln_error_last());
            self->next_stats = now + SWARM_STATS_EVERY_MS;
        }
        if (self->next_stats < next)
            next = self->next_stats;
    }
    return next;
}

static void s_on_signal(s_swarm_t *self)
{
    struct signalfd_siginfo si;
    while (read(self->sigfd, &si, sizeof si) == sizeof si) {
        kiln_log_info("signal %u: stopping", si.ssi_signo);
        self->stopping = true;
    }
}

static int s_run(s_swarm_t *self)
{
    int64_t next = s_on_timers(self, kiln_clock_mono_ms());
    while (!self->stopping) {
        zmq_pollitem_t items[2] = {
            {NULL, self->epfd, ZMQ_POLLIN, 0},
            {NULL, self->sigfd, ZMQ_POLLIN, 0},
        };
        int64_t now = kiln_clock_mono_ms();
        /* Connections left with messages are served again at once. */
        long timeout = self->n_pending ? 0 : next > now ? (long)(next - now) : 0;
        if (zmq_poll(items, 2, timeout) == -1) {
            if (zmq_errno() == EINTR)
                continue;
            kiln_error_set("swarm: zmq_poll: %s", zmq_strerror(zmq_errno()));
            return -1;
        }
        if ((items[0].revents & ZMQ_POLLIN) && s_on_epoll(self) != 0)
            return -1;
        s_on_pending(self);
        if (items[1].revents & ZMQ_POLLIN)
            s_on_signal(self);
        now = kiln_clock_mono_ms();
        if (now >= next)
            next = s_on_timers(self, now);
    }
    return 0;
}

/* ------------------------------------------------------------ lifecycle */

static void s_swarm_destroy(s_swarm_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    s_swarm_t *self = *self_p;
    for (size_t i = 0; self->conns && i < self->n_conns; i++) {
        s_conn_t *c = &self->conns[i];
        if (c->sock) {
            int linger = 0;
            zmq_setsockopt(c->sock, ZMQ_LINGER, &linger, sizeof linger);
            zmq_close(c->sock);
        }
        free(c->results);
    }
    free(self->conns);
    free(self->pending);
    if (self->epfd >= 0)
        close(self->epfd);
    for (size_t i = 0; i < self->n_labels; i++)
        free(self->labels[i]);
    if (self->zctx)
        zmq_ctx_term(self->zctx);
    if (self->sigfd >= 0)
        close(self->sigfd);
    free(self);
    *self_p = NULL;
}

/* Labels as the agent has them: OS and architecture, then the configured
 * ones. */
static int s_labels(s_swarm_t *self)
{
    return kiln_labels_worker(self->cfg.labels, self->labels, SWARM_MAX_LABELS, &self->n_labels);
}

/* Every connection costs descriptors (its TCP socket and its mailbox):
 * raise the soft limit as far as needed, within the hard one. */
static int s_raise_fd_limit(size_t n_conns)
{
    struct rlimit rl;
    rlim_t want = (rlim_t)(n_conns * SWARM_FDS_PER_CONNECTION + 64);
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        kiln_error_errno("swarm: getrlimit");
        return -1;
    }
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
        if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want) {
            kiln_error_set("swarm: %zu connections need %llu descriptors; the hard limit is %llu",
                           n_conns, (unsigned long long)want, (unsigned long long)rl.rlim_max);
            return KILN_EINVAL;
        }
        rl.rlim_cur = want;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
            kiln_error_errno("swarm: setrlimit(RLIMIT_NOFILE, %llu)", (unsigned long long)want);
            return -1;
        }
    }
    return 0;
}

static int s_swarm_new(s_swarm_t **out, const s_config_t *cfg)
{
    int rc = -1;
    kiln_keypair_t shared, server;
    s_swarm_t *self = calloc(1, sizeof *self);
    *out = NULL;
    if (!self) {
        kiln_error_set("swarm: out of memory");
        return -1;
    }
    self->sigfd = -1;
    self->epfd = -1;
    self->cfg = *cfg;
    if (!cfg->coordinator || !cfg->server_key || (!cfg->key == !cfg->key_dir)) {
        kiln_error_set("swarm: --coordinator, --server-key and one of --key or --key-dir "
                       "are required");
        rc = KILN_EINVAL;
        goto cleanup;
    }
    if (cfg->connections < 1 || cfg->connections > SWARM_MAX_CONNECTIONS) {
        kiln_error_set("swarm: --connections must be 1..%d", SWARM_MAX_CONNECTIONS);
        rc = KILN_EINVAL;
        goto cleanup;
    }
    if (cfg->slots < 1 || cfg->slots > SWARM_MAX_SLOTS) {
        kiln_error_set("swarm: --slots must be 1..%d", SWARM_MAX_SLOTS);
        rc = KILN_EINVAL;
        goto cleanup;
    }
    if (cfg->io_threads < 1 || cfg->io_threads > 16) {
        kiln_error_set("swarm: --io-threads must be 1..16");
        rc = KILN_EINVAL;
        goto cleanup;
    }
    if ((cfg->stats_path && strlen(cfg->stats_path) >= SWARM_PATH_MAX) ||
        (cfg->key_dir && strlen(cfg->key_dir) >= SWARM_PATH_MAX)) {
        kiln_error_set("swarm: --stats and --key-dir must be shorter than %d bytes",
                       SWARM_PATH_MAX);
        rc = KILN_EINVAL;
        goto cleanup;
    }
    if (strlen(cfg->name_prefix) > SWARM_NAME_MAX - 16) {
        kiln_error_set("swarm: --name-prefix is longer than %d bytes", SWARM_NAME_MAX - 16);
        rc = KILN_EINVAL;
        goto cleanup;
    }
    if ((rc = kiln_keys_load(&server, cfg->server_key)) != 0)
        goto cleanup;
    if (cfg->key) {
        if ((rc = kiln_keys_load(&shared, cfg->key)) != 0)
            goto cleanup;
        if (!shared.has_secret) {
            kiln_error_set("swarm: %s holds no secret key", cfg->key);
            rc = KILN_EINVAL;
            goto cleanup;
        }
    }
    if (gethostname(self->hostname, sizeof self->hostname - 1) != 0)
        snprintf(self->hostname, sizeof self->hostname, "unknown");
    rc = -1;
    if (s_labels(self) != 0)
        goto cleanup;
    if ((rc = s_raise_fd_limit((size_t)cfg->connections)) != 0)
        goto cleanup;
    rc = -1;
    self->n_conns = (size_t)cfg->connections;
    self->conns = calloc(self->n_conns, sizeof *self->conns);
    self->pending = calloc(self->n_conns, sizeof *self->pending);
    if (!self->conns || !self->pending) {
        kiln_error_set("swarm: out of memory");
        goto cleanup;
    }
    self->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (self->epfd == -1) {
        kiln_error_errno("swarm: epoll_create1");
        goto cleanup;
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigprocmask(SIG_BLOCK, &set, NULL);
    self->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (self->sigfd == -1) {
        kiln_error_errno("swarm: signalfd");
        goto cleanup;
    }
    self->zctx = zmq_ctx_new();
    if (!self->zctx || zmq_ctx_set(self->zctx, ZMQ_IO_THREADS, cfg->io_threads) != 0 ||
        zmq_ctx_set(self->zctx, ZMQ_MAX_SOCKETS, cfg->connections + 16) != 0) {
        kiln_error_set("swarm: cannot set up a ZeroMQ context: %s", zmq_strerror(zmq_errno()));
        goto cleanup;
    }
    self->stats.started_ms = kiln_clock_wall_ms();
    int64_t now = kiln_clock_mono_ms();
    for (size_t i = 0; i < self->n_conns; i++) {
        s_conn_t *c = &self->conns[i];
        kiln_keypair_t own;
        snprintf(c->name, sizeof c->name, "%s%04zu", cfg->name_prefix, i + 1);
        if (cfg->key_dir) {
            char path[SWARM_PATH_MAX + SWARM_NAME_MAX + 8];
            snprintf(path, sizeof path, "%s/%s.key", cfg->key_dir, c->name);
            if ((rc = kiln_keys_load(&own, path)) != 0)
                goto cleanup;
            rc = -1;
            if (!own.has_secret) {
                kiln_error_set("swarm: %s holds no secret key", path);
                goto cleanup;
            }
        } else {
            own = shared;
        }
        c->results = calloc(SWARM_MAX_RESULTS, sizeof *c->results);
        if (!c->results) {
            kiln_error_set("swarm: out of memory");
            goto cleanup;
        }
        /* As the agent: no routing id of its own; one instance per
         * connection, as each is a worker process of its own. */
        randombytes_buf(&c->instance, sizeof c->instance);
        c->sock = kiln_transport_connect(self->zctx, cfg->coordinator, &own, server.public_z85,
                                         NULL);
        if (!c->sock)
            goto cleanup;
        c->heartbeat_ms = 1000;
        /* Spread over one interval, so heartbeats do not arrive in waves. */
        c->next_heartbeat = now + 1000 + (int64_t)(1000 * i / self->n_conns);
        int zfd = -1;
        size_t zlen = sizeof zfd;
        struct epoll_event ev = {.events = EPOLLIN, .data.u64 = i};
        if (zmq_getsockopt(c->sock, ZMQ_FD, &zfd, &zlen) != 0 ||
            epoll_ctl(self->epfd, EPOLL_CTL_ADD, zfd, &ev) != 0) {
            kiln_error_set("swarm: cannot watch connection %s: %s", c->name, strerror(errno));
            goto cleanup;
        }
        /* Queued until the connection is up, as the agent's first Hello. */
        s_send_hello(self, c);
    }
    kiln_log_info("%zu connections (%d slots each) to %s", self->n_conns, cfg->slots,
                  cfg->coordinator);
    *out = self;
    self = NULL;
    rc = 0;
cleanup:
    s_swarm_destroy(&self);
    return rc;
}

int main(int argc, char **argv)
{
    s_config_t cfg = {
        .name_prefix = "swarm-",
        .log_level = "info",
        .connections = 250,
        .slots = 1,
        .io_threads = 1,
    };
    s_swarm_t *swarm = NULL;
    int npos = 0;
    kiln_opt_t opts[] = {
        {"coordinator", KILN_OPT_STRING, &cfg.coordinator, "coordinator endpoint (tcp://HOST:7420)"},
        {"server-key", KILN_OPT_STRING, &cfg.server_key, "the coordinator's public key file (.pub)"},
        {"key", KILN_OPT_STRING, &cfg.key, "one admitted worker key pair (.key) for every connection"},
        {"key-dir", KILN_OPT_STRING, &cfg.key_dir, "or a directory with NAME.key per connection"},
        {"connections", KILN_OPT_INT, &cfg.connections, "simulated workers (250)"},
        {"slots", KILN_OPT_INT, &cfg.slots, "slots each worker announces (1)"},
        {"name-prefix", KILN_OPT_STRING, &cfg.name_prefix,
         "worker names are PREFIX0001, PREFIX0002, ... (swarm-)"},
        {"labels", KILN_OPT_STRING, &cfg.labels, "comma-separated extra labels"},
        {"stats", KILN_OPT_STRING, &cfg.stats_path,
         "JSON counters, rewritten every second and at exit"},
        {"io-threads", KILN_OPT_INT, &cfg.io_threads, "ZeroMQ I/O threads (1)"},
        {"log-level", KILN_OPT_STRING, &cfg.log_level, "debug, info, warn or error"},
        {NULL, 0, NULL, NULL},
    };
    int rc = kiln_opts_parse(opts, argc, argv, 1, &npos);
    if (rc != 0 || npos != 0) {
        FILE *out = rc == 1 ? stdout : stderr;
        if (rc < 0)
            fprintf(stderr, "kiln-swarm: %s\n", kiln_error_last());
        else if (npos)
            fprintf(stderr, "kiln-swarm: unexpected argument '%s'\n", argv[1]);
        fprintf(out, "usage: kiln-swarm --coordinator ENDPOINT --server-key FILE "
                     "(--key FILE | --key-dir DIR) [options]\n\n");
        kiln_opts_print(out, opts);
        return rc == 1 ? 0 : 2;
    }
    kiln_log_level_t level;
    if (kiln_log_parse_level(cfg.log_level, &level) != 0) {
        fprintf(stderr, "kiln-swarm: unknown log level '%s'\n", cfg.log_level);
        return 2;
    }
    char component[SWARM_NAME_MAX + 8];
    snprintf(component, sizeof component, "swarm %s", cfg.name_prefix);
    kiln_log_init(component, level);
    /* A coordinator that goes away mid-write must not end the process. */
    signal(SIGPIPE, SIG_IGN);
    rc = s_swarm_new(&swarm, &cfg);
    if (rc != 0) {
        kiln_log_error("%s", kiln_error_last());
        return rc == KILN_EINVAL ? 2 : 3;
    }
    rc = s_run(swarm);
    if (rc != 0)
        kiln_log_error("%s", kiln_error_last());
    if (s_write_stats(swarm) != 0) {
        kiln_log_error("%s", kiln_error_last());
        rc = -1;
    }
    kiln_log_info("exits: %" PRIu64 " assignments, %" PRIu64 " results acknowledged",
                  swarm->stats.assignments, swarm->stats.results_acked);
    s_swarm_destroy(&swarm);
    return rc == 0 ? 0 : 3;
}
