/* workers.c: the coordinator's worker registry.
 *
 * A worker is known from its Hello until it is lost: its heartbeat stops
 * for a lease, its connection closes and it does not come back within a
 * heartbeat and a half, a send to it fails, or it reconnects without jobs
 * it held. Its jobs' attempts are then lost (attempts.c) and run again.
 * Workers are found by a hash of their routing id: every worker message is
 * looked up, and a thousand workers made a scan the hot spot.
 */
#include "coordinator/coord.h"
#include "coordinator/policy.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/clock.h"
#include "common/error.h"
#include "common/log.h"

/* Splits a comma list into lower-cased, trimmed, malloc'd labels. */
size_t kiln_workers_split_labels(const char *list, char **out, size_t max)
{
    size_t n = 0;
    const char *p = list ? list : "";
    while (*p && n < max) {
        while (*p == ',' || *p == ' ')
            p++;
        size_t len = strcspn(p, ",");
        while (len && p[len - 1] == ' ')
            len--;
        if (len) {
            char *l = strndup(p, len);
            if (!l)
                break;
            for (char *c = l; *c; c++)
                *c = (char)tolower((unsigned char)*c);
            out[n++] = l;
        }
        p += strcspn(p, ",");
    }
    return n;
}

bool kiln_workers_matches(const kiln_server_t *self, const kiln_cworker_t *w,
                          const kiln_plan_job_t *job)
{
    return kiln_policy_labels_match((const char *const *)job->labels, job->n_labels,
                                    (const char *const *)w->labels, w->n_labels,
                                    (const char *const *)self->universal, self->n_universal,
                                    self->aliases, self->n_aliases);
}

bool kiln_workers_unserved_why(const kiln_server_t *self, const kiln_cjob_t *job, char *out,
                               size_t cap)
{
    const kiln_plan_job_t *plan = kiln_runs_plan(job);
    for (size_t i = 0; i < self->n_workers; i++)
        if (!self->workers[i]->draining && kiln_workers_matches(self, self->workers[i], plan))
            return false;
    size_t n = (size_t)snprintf(out, cap, "%s",
                                self->n_workers ? "no connected worker has the labels:"
                                                : "no worker is connected; it needs the labels:");
    for (size_t i = 0; i < plan->n_labels && n < cap; i++)
        n += (size_t)snprintf(out + n, cap - n, "%s %s", i ? "," : "", plan->labels[i]);
    if (plan->n_labels == 0 && n < cap)
        n += (size_t)snprintf(out + n, cap - n, " (none)");
    /* Say where an alias sent a label: the operator may have meant another. */
    for (size_t i = 0; i < plan->n_labels && n < cap; i++) {
        const kiln_policy_alias_t *a =
            kiln_policy_alias_for(plan->labels[i], self->aliases, self->n_aliases);
        if (a)
            n += (size_t)snprintf(out + n, cap - n, " (%s: workers labelled %s, by the alias %s=%s)",
                                  plan->labels[i], a->label, a->pattern, a->label);
    }
    return true;
}

void kiln_workers_check_unserved(kiln_server_t *self, int64_t now)
{
    /* A restarted coordinator gives its workers a heartbeat to reconnect. */
    if (now - self->up_since < self->cfg.heartbeat_ms)
        return;
    /* One answer per label set and pass: many ready jobs share a few. */
    struct {
        const char *labels;
        bool served;
    } seen[16];
    size_t n_seen = 0;
    for (size_t r = 0; r < self->n_runs; r++) {
        kiln_crun_t *run = self->runs[r];
        for (size_t i = 0; i < run->n_ready; i++) {
            kiln_cjob_t *job = run->ready[i];
            const char *key = job->labels ? job->labels : "";
            int known = -1;
            for (size_t k = 0; k < n_seen && known < 0; k++)
                if (strcmp(seen[k].labels, key) == 0)
                    known = (int)k;
            char why[512];
            bool unserved;
            if (known >= 0) {
                unserved = !seen[known].served;
            } else {
                unserved = kiln_workers_unserved_why(self, job, why, sizeof why);
                if (n_seen < 16) {
                    seen[n_seen].labels = key;
                    seen[n_seen++].served = !unserved;
                }
            }
            if (!unserved) {
                job->unserved_epoch = 0;
                continue;
            }
            /* Already told since the workers last changed: nothing to
             * work out again (a farm may hold 100,000 such jobs). */
            if (job->unserved_epoch == self->workers_epoch)
                continue;
            if (known >= 0)
                kiln_workers_unserved_why(self, job, why, sizeof why);
            if (!job->unserved_epoch)
                kiln_log_info("job %s waits: %s", job->key, why);
            job->unserved_epoch = self->workers_epoch;
            Kiln__RunEvent ev = KILN__RUN_EVENT__INIT;
            const kiln_plan_job_t *plan = kiln_runs_plan(job);
            ev.kind = KILN__EVENT_KIND__EVENT_JOB_WAITING;
            ev.job_id = plan->id;
            ev.job_name = plan->name;
            ev.state = (char *)"waiting";
            ev.message = why;
            ev.workers_connected = (uint32_t)self->n_workers;
            kiln_watch_emit(self, run, &ev);
        }
    }
}

size_t kiln_workers_slot(const unsigned char *id, size_t id_len)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (size_t i = 0; i < id_len; i++)
        h = (h ^ id[i]) * 1099511628211ULL;
    return (size_t)h & (KILN_WTAB_SIZE - 1);
}

kiln_cworker_t *kiln_workers_find(kiln_server_t *self, const unsigned char *id, size_t id_len)
{
    for (size_t i = kiln_workers_slot(id, id_len);; i = (i + 1) & (KILN_WTAB_SIZE - 1)) {
        kiln_cworker_t *w = self->wtab[i];
        if (!w)
            return NULL;
        if (w->id_len == id_len && memcmp(w->identity, id, id_len) == 0)
            return w;
    }
}

static void s_wtab_put(kiln_server_t *self, kiln_cworker_t *w)
{
    size_t i = kiln_workers_slot(w->identity, w->id_len);
    while (self->wtab[i])
        i = (i + 1) & (KILN_WTAB_SIZE - 1);
    self->wtab[i] = w;
}

/* Removal shifts later entries of the probe run back, so lookups never
 * need tombstones. */
static void s_wtab_del(kiln_server_t *self, const kiln_cworker_t *w)
{
    size_t i = kiln_workers_slot(w->identity, w->id_len);
    while (self->wtab[i] && self->wtab[i] != w)
        i = (i + 1) & (KILN_WTAB_SIZE - 1);
    if (!self->wtab[i])
        return;
    self->wtab[i] = NULL;
    for (size_t j = (i + 1) & (KILN_WTAB_SIZE - 1); self->wtab[j]; j = (j + 1) & (KILN_WTAB_SIZE - 1)) {
        kiln_cworker_t *o = self->wtab[j];
        size_t home = kiln_workers_slot(o->identity, o->id_len);
        /* o may move to the hole at i if i lies on its probe path home..j. */
        bool movable = (j > i) ? (home <= i || home > j) : (home <= i && home > j);
        if (movable) {
            self->wtab[i] = o;
            self->wtab[j] = NULL;
            i = j;
        }
    }
}

/* Puts job in a free entry of w's (the caller checked busy < cap). */
void kiln_workers_take(kiln_cworker_t *w, kiln_cjob_t *job)
{
    for (unsigned i = 0; i < w->cap; i++) {
        if (!w->jobs[i]) {
            w->jobs[i] = job;
            break;
        }
    }
    w->busy++;
    job->run->n_leased++;
}

void kiln_workers_release(kiln_cworker_t *w, kiln_cjob_t *job)
{
    for (unsigned i = 0; i < w->cap; i++) {
        if (w->jobs[i] == job) {
            w->jobs[i] = NULL;
            w->busy--;
            if (job->run->n_leased)
                job->run->n_leased--;
            break;
        }
    }
}

void kiln_workers_free(kiln_cworker_t **w_p)
{
    kiln_cworker_t *w = *w_p;
    if (!w)
        return;
    for (size_t i = 0; i < w->n_labels; i++)
        free(w->labels[i]);
    free(w->jobs);
    free(w->holds);
    free(w);
    *w_p = NULL;
}

void kiln_workers_lost(kiln_server_t *self, kiln_cworker_t *w, const char *why)
{
    kiln_log_warn("worker %s lost: %s", w->name, why);
    self->stats.workers_lost++;
    self->workers_epoch++;
    for (size_t i = 0; i < self->n_workers; i++) {
        if (self->workers[i] == w) {
            self->workers[i] = self->workers[--self->n_workers];
            break;
        }
    }
    s_wtab_del(self, w);
    for (unsigned i = 0; i < w->cap; i++) {
        kiln_cjob_t *job = w->jobs[i];
        if (!job)
            continue;
        w->jobs[i] = NULL;
        if (job->run->n_leased)
            job->run->n_leased--;
        self->stats.lease_expiries++;
        kiln_attempts_lost(self, job, "worker_lost", why);
    }
    kiln_workers_free(&w);
}

static kiln_cworker_t *s_find_name(kiln_server_t *self, const char *name)
{
    for (size_t i = 0; i < self->n_workers; i++)
        if (strcmp(self->workers[i]->name, name) == 0)
            return self->workers[i];
    return NULL;
}

/* Tells a peer its Hello is refused, and why (it stops its jobs and tries
 * again later). */
static void s_refuse(kiln_server_t *self, const kiln_transport_msg_t *msg, const char *why)
{
    self->stats.workers_refused++;
    kiln_log_warn("refused worker hello from %s: %s", msg->peer_address[0] ? msg->peer_address : "local",
                  why);
    Kiln__Envelope env = KILN__ENVELOPE__INIT;
    Kiln__Welcome welcome = KILN__WELCOME__INIT;
    welcome.refused = (char *)why;
    env.body_case = KILN__ENVELOPE__BODY_WELCOME;
    env.welcome = &welcome;
    kiln_server_send(self, msg->identity, msg->id_len, &env);
}

/* The worker a connection's Hello speaks for, found by its key. Its name
 * must be its key's: a valid key cannot pass itself off as another worker.
 * A worker already connected under that key on another connection is the
 * same process reconnecting (its instance), which takes the entry over; a
 * process that is gone (its connection closed, or silent for two
 * heartbeats), which is lost now; or a second live process with the same
 * key, which is refused. NULL: refused, or a new worker. */
static kiln_cworker_t *s_hello_worker(kiln_server_t *self, const kiln_transport_msg_t *msg,
                                      const char *key_name, bool *refused)
{
    const Kiln__Hello *h = msg->env->hello;
    char why[600];
    *refused = false;
    if (h->name[0] && strcmp(h->name, key_name) != 0) {
        kiln_cworker_t *owner = s_find_name(self, h->name);
        if (owner)
            snprintf(why, sizeof why,
                     "worker key '%s' (%s) claims the name '%s', which is the name of the worker "
                     "of key '%s' (%s) connected from %s; a worker's name is its key's",
                     key_name, self->peer_key, h->name, owner->key_name, owner->public_key,
                     owner->address);
        else
            snprintf(why, sizeof why,
                     "worker key '%s' (%s) claims the name '%s'; a worker's name is its key's "
                     "(start it with --name %s, or without --name)",
                     key_name, self->peer_key, h->name, key_name);
        s_refuse(self, msg, why);
        *refused = true;
        return NULL;
    }
    kiln_cworker_t *w = kiln_workers_find(self, msg->identity, msg->id_len);
    if (w && strcmp(w->key_name, key_name) == 0)
        return w;
    w = s_find_name(self, key_name);
    if (!w)
        return NULL;
    int64_t now = kiln_clock_mono_ms();
    if (h->instance && h->instance == w->instance) {
        /* The same process on a new connection. */
        s_wtab_del(self, w);
        memcpy(w->identity, msg->identity, msg->id_len);
        w->id_len = msg->id_len;
        s_wtab_put(self, w);
        snprintf(w->address, sizeof w->address, "%s", msg->peer_address[0] ? msg->peer_address : "local");
        kiln_log_info("worker %s reconnected from %s", w->name, w->address);
        return w;
    }
    bool alive = !w->suspect_deadline && now - w->last_seen < 2 * self->cfg.heartbeat_ms;
    if (alive) {
        snprintf(why, sizeof why,
                 "worker '%s' is connected already from %s (another process with the same key); "
                 "refused until that one is gone",
                 key_name, w->address);
        s_refuse(self, msg, why);
        *refused = true;
        return NULL;
    }
    kiln_workers_lost(self, w, "a new process with its key connected");
    return NULL;
}

void kiln_workers_on_hello(kiln_server_t *self, const kiln_transport_msg_t *msg, const char *key_name)
{
    const Kiln__Hello *h = msg->env->hello;
    bool refused;
    kiln_cworker_t *w = s_hello_worker(self, msg, key_name, &refused);
    if (refused)
        return;
    if (w) {
        /* A known worker says hello again (it reconnected). Jobs it no
         * longer reports were lost with the old connection. */
        for (unsigned i = 0; i < w->cap; i++) {
            kiln_cjob_t *job = w->jobs[i];
            bool reported = false;
            for (size_t k = 0; job && k < h->n_running; k++)
                reported = reported || (strcmp(h->running[k]->job_key, job->key) == 0 &&
                                        h->running[k]->token == job->token);
            if (job && !reported) {
                kiln_workers_release(w, job);
                kiln_attempts_lost(self, job, "worker_lost", "the worker reconnected without it");
            }
        }
        w->last_seen = kiln_clock_mono_ms();
        w->suspect_deadline = 0;
        if (msg->src_fd >= 0)
            w->fd = msg->src_fd;
    } else {
        if (self->n_workers >= KILN_SERVER_MAX_WORKERS) {
            kiln_log_warn("refusing worker %s: %d workers connected", h->name,
                          KILN_SERVER_MAX_WORKERS);
            return;
        }
        unsigned slots = h->slots;
        if (slots < 1 || slots > KILN_SERVER_MAX_SLOTS) {
            kiln_log_warn("worker %s (%s): %u slots is out of range 1..%d; dropped", h->name,
                          msg->peer_address, h->slots, KILN_SERVER_MAX_SLOTS);
            return;
        }
        unsigned lookahead = h->lookahead < KILN_SERVER_MAX_LOOKAHEAD ? h->lookahead
                                                                      : KILN_SERVER_MAX_LOOKAHEAD;
        w = calloc(1, sizeof *w);
        if (!w || !(w->jobs = calloc(slots + lookahead, sizeof *w->jobs))) {
            free(w);
            return;
        }
        memcpy(w->identity, msg->identity, msg->id_len);
        w->id_len = msg->id_len;
        w->slots = slots;
        w->cap = slots + lookahead;
        w->ack_head = -1;
        snprintf(w->name, sizeof w->name, "%s", key_name);
        snprintf(w->key_name, sizeof w->key_name, "%s", key_name);
        snprintf(w->public_key, sizeof w->public_key, "%s", self->peer_key);
        w->instance = h->instance;
        snprintf(w->address, sizeof w->address, "%s", msg->peer_address[0] ? msg->peer_address : "local");
        snprintf(w->hostname, sizeof w->hostname, "%s", h->hostname);
        snprintf(w->version, sizeof w->version, "%s", h->version);
        for (size_t i = 0; i < h->n_labels && w->n_labels < KILN_SERVER_MAX_LABELS; i++) {
            char *l = strdup(h->labels[i]);
            if (l)
                w->labels[w->n_labels++] = l;
        }
        w->connected_ms = kiln_clock_wall_ms();
        w->last_seen = kiln_clock_mono_ms();
        w->fd = msg->src_fd;
        if (self->n_workers == self->cap_workers) {
            size_t ncap = self->cap_workers ? self->cap_workers * 2 : 16;
            kiln_cworker_t **grown = realloc(self->workers, ncap * sizeof *grown);
            if (!grown) {
                kiln_workers_free(&w);
                return;
            }
            self->workers = grown;
            self->cap_workers = ncap;
        }
        self->workers[self->n_workers++] = w;
        self->workers_epoch++;
        s_wtab_put(self, w);
        kiln_log_info("worker %s connected from %s (key %s, %u slots)", w->name,
                      msg->peer_address[0] ? msg->peer_address : "local", key_name, w->slots);
        /* Jobs it runs under a lease we hold for it (we restarted, or it
         * reconnected) are adopted, so they finish instead of running
         * twice; anything else it runs is cancelled. */
        for (size_t k = 0; k < h->n_running; k++) {
            kiln_cjob_t *job = kiln_runs_find_job(self, h->running[k]->job_key);
            if (job && kiln_runs_state(job) == KILN_JOB_RUNNING && !job->worker &&
                job->token == h->running[k]->token && job->worker_name && strcmp(job->worker_name, w->name) == 0 &&
                w->busy < w->cap) {
                job->worker = w;
                job->orphan_deadline = 0;
                kiln_workers_take(w, job);
                self->stats.jobs_readopted++;
                /* Where its output stands in the history: a worker's chunk
                 * past it means output was lost while we were away. */
                if (kiln_history_output_bytes(self->history, job->run->id, kiln_runs_plan(job)->id,
                                              job->attempt, &job->output_offset) != 0)
                    kiln_log_warn("job %s: %s", job->key, kiln_error_last());
                kiln_log_info("job %s re-adopted from worker %s (token %llu)", job->key, w->name,
                              (unsigned long long)job->token);
                continue;
            }
            Kiln__Envelope env = KILN__ENVELOPE__INIT;
            Kiln__CancelJob c = KILN__CANCEL_JOB__INIT;
            c.job_key = h->running[k]->job_key;
            c.token = h->running[k]->token;
            env.body_case = KILN__ENVELOPE__BODY_CANCEL;
            env.cancel = &c;
            kiln_server_send(self, w->identity, w->id_len, &env);
        }
    }
    Kiln__Envelope env = KILN__ENVELOPE__INIT;
    Kiln__Welcome welcome = KILN__WELCOME__INIT;
    welcome.worker_id = w->name;
    welcome.heartbeat_ms = (uint32_t)self->cfg.heartbeat_ms;
    welcome.lease_ms = (uint32_t)self->cfg.lease_ms;
    welcome.log_window = self->cfg.log_window;
    w->credit_owed = 0;
    env.body_case = KILN__ENVELOPE__BODY_WELCOME;
    env.welcome = &welcome;
    kiln_server_send(self, w->identity, w->id_len, &env);
    kiln_dispatch(self);
}

void kiln_workers_on_heartbeat(kiln_server_t *self, kiln_cworker_t *w, const Kiln__Heartbeat *hb)
{
    /* Answered, so that the worker knows it is still heard: one that hears
     * nothing for its lease stops its jobs by itself (worker/agent.c). */
    Kiln__Envelope env = KILN__ENVELOPE__INIT;
    Kiln__Heartbeat back = KILN__HEARTBEAT__INIT;
    env.body_case = KILN__ENVELOPE__BODY_HEARTBEAT;
    env.heartbeat = &back;
    kiln_server_send(self, w->identity, w->id_len, &env);
    kiln_affinity_on_holds(w, hb);
    bool was_draining = w->draining;
    w->draining = hb->draining;
    w->drain_deadline_ms = (int64_t)hb->drain_deadline_ms;
    if (w->draining && !was_draining)
        kiln_log_info("worker %s is draining%s", w->name,
                      hb->drain_deadline_ms ? " with a deadline" : "");
    int64_t deadline = kiln_clock_wall_ms() + self->cfg.lease_ms;
    for (unsigned i = 0; i < w->cap; i++) {
        kiln_cjob_t *job = w->jobs[i];
        if (job && kiln_queue_renew(self->queue, job->key, job->token, deadline) != 0)
            kiln_log_warn("lease renewal for %s: %s", job->key, kiln_error_last());
    }
}

json_t *kiln_workers_json(kiln_server_t *self)
{
    json_t *arr = json_array();
    int64_t now = kiln_clock_mono_ms();
    for (size_t i = 0; arr && i < self->n_workers; i++) {
        kiln_cworker_t *w = self->workers[i];
        json_t *labels = json_array(), *jobs = json_array();
        for (size_t k = 0; k < w->n_labels; k++)
            json_array_append_new(labels, json_string(w->labels[k]));
        for (unsigned k = 0; k < w->cap; k++)
            if (w->jobs[k])
                json_array_append_new(jobs, json_string(w->jobs[k]->key));
        json_array_append_new(
            arr, json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:i, s:i, s:b, s:I, s:I, s:o, s:I}", "name",
                           w->name, "key", w->key_name, "public_key", w->public_key, "hostname", w->hostname, "version",
                           w->version, "labels", labels, "slots", (int)w->slots, "busy",
                           (int)w->busy, "draining", w->draining, "connected_ms",
                           (json_int_t)w->connected_ms, "last_seen_ms_ago",
                           (json_int_t)(now - w->last_seen), "jobs", jobs, "warm",
                           (json_int_t)w->n_holds));
    }
    return arr;
}

/* The timer's look at every worker: lost when silent past the lease, or
 * when its connection closed and it did not come back. */
void kiln_workers_check(kiln_server_t *self, int64_t now)
{
    for (size_t i = 0; i < self->n_workers;) {
        kiln_cworker_t *w = self->workers[i];
        if (now - w->last_seen > self->cfg.lease_ms) {
            kiln_workers_lost(self, w, "no heartbeat within the lease");
            continue; /* the array was compacted */
        }
        if (w->suspect_deadline && now >= w->suspect_deadline) {
            kiln_workers_lost(self, w, "its connection closed and it did not come back");
            continue;
        }
        i++;
    }
}
