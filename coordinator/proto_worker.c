/* proto_worker.c: worker messages, and the burst they arrive in.
 *
 * A message is checked for the worker role before anything else (a worker
 * key gets no answer to a client's request), looked up by routing id (an
 * unknown worker is asked once per heartbeat to say hello again) and
 * handed to its handler. History writes of a burst share one SQLite
 * transaction; result acknowledgements wait in a list and go out after the
 * commit, riding in the worker's next assignment where there is one, so a
 * worker stops resending only what is on disk.
 */
#include "coordinator/coord.h"

#include <stdio.h>
#include <string.h>

#include "common/clock.h"
#include "common/error.h"
#include "common/log.h"

/* Acknowledgements wait for the batch's commit: a worker stops resending a
 * result only once what it changed is on disk. */
void kiln_proto_worker_ack(kiln_server_t *self, kiln_cworker_t *w, const Kiln__JobResult *m)
{
    if (self->n_acks == KILN_SERVER_MAX_PENDING_ACKS) {
        /* Full: what is waiting goes now, and this message's writes open
         * the next batch, whose commit its acknowledgement waits for. */
        kiln_proto_worker_flush(self);
        if (kiln_history_begin(self->history) != 0)
            kiln_log_error("history: %s", kiln_error_last());
        kiln_queue_batch_begin(self->queue);
        self->in_batch = true;
    }
    kiln_pending_ack_t *a = &self->acks[self->n_acks++];
    memcpy(a->identity, w->identity, w->id_len);
    a->id_len = w->id_len;
    snprintf(a->job_key, sizeof a->job_key, "%s", m->job_key);
    a->token = m->token;
}

/* Commits the history written since the batch began, then sends the
 * acknowledgements that waited for it, and begins the next batch. */
void kiln_proto_worker_flush(kiln_server_t *self)
{
    if (self->in_batch) {
        /* A pass that loses a worker requeues its jobs: go again. */
        while (self->dispatch_pending) {
            self->dispatch_pending = false;
            kiln_dispatch_now(self);
        }
        /* Results are acknowledged once SQLite has them; Redis's replies
         * are read later (s_queue_settle), and reconcile writes our view
         * back over anything it refused. */
        if (kiln_queue_batch_send(self->queue) != 0) {
            kiln_log_warn("%s", kiln_error_last());
            self->redis_dirty = true;
        }
        int crc = kiln_history_commit(self->history);
        self->in_batch = false;
        if (crc != 0) {
            /* Not on disk: no acknowledgement goes out, so each worker keeps
             * its results and sends them again; they are acknowledged once
             * history has them (a result seen twice is acknowledged then).
             * The disk being full was logged once when it happened. */
            if (crc == KILN_EINFRA)
                kiln_log_debug("history: commit of a burst: %s", kiln_error_last());
            else
                kiln_log_error("history: commit of a burst: %s", kiln_error_last());
            self->stats.acks_held += self->n_acks;
            self->n_acks = 0;
        }
    } else if (self->n_acks) {
        /* Acknowledgements outside a batch: only while history is on disk. */
        kiln_history_health_t h;
        kiln_history_health(self->history, &h);
        if (!h.writable) {
            self->stats.acks_held += self->n_acks;
            self->n_acks = 0;
        }
    }
    /* Each acknowledgement rides with an assignment to its worker if one
     * is going out; the others go alone. */
    bool alone[KILN_SERVER_MAX_PENDING_ACKS];
    for (size_t i = self->n_acks; i-- > 0;) {
        kiln_cworker_t *w = self->n_outgoing
                            ? kiln_workers_find(self, self->acks[i].identity, self->acks[i].id_len)
                            : NULL;
        alone[i] = !w || !w->assign_outgoing;
        if (!alone[i]) {
            self->ack_next[i] = w->ack_head;
            w->ack_head = (int)i;
        }
    }
    if (self->n_outgoing) {
        size_t n = self->n_outgoing;
        self->n_outgoing = 0;
        kiln_dispatch_send_placed(self, self->outgoing, n);
        /* Any left over (more than the assignments carry, or for a worker
         * that could not be reached) go alone. */
        for (size_t i = 0; i < n; i++) {
            kiln_cworker_t *w = self->outgoing[i]->worker;
            for (; w && w->ack_head >= 0; w->ack_head = self->ack_next[w->ack_head])
                alone[w->ack_head] = true;
        }
    }
    for (size_t i = 0; i < self->n_acks; i++) {
        if (!alone[i])
            continue;
        Kiln__Envelope env = KILN__ENVELOPE__INIT;
        Kiln__ResultAck ack = KILN__RESULT_ACK__INIT;
        ack.job_key = self->acks[i].job_key;
        ack.token = self->acks[i].token;
        env.body_case = KILN__ENVELOPE__BODY_RESULT_ACK;
        env.result_ack = &ack;
        kiln_server_send(self, self->acks[i].identity, self->acks[i].id_len, &env);
    }
    self->n_acks = 0;
    kiln_dispatch_lose_undeliverable(self);
}

void kiln_proto_worker_handle(kiln_server_t *self, kiln_transport_msg_t *msg,
                                const char *key_name)
{
    Kiln__Envelope *env = msg->env;
    switch (env->body_case) {
    case KILN__ENVELOPE__BODY_HELLO:
        kiln_workers_on_hello(self, msg, key_name);
        return;
    case KILN__ENVELOPE__BODY_HEARTBEAT:
    case KILN__ENVELOPE__BODY_ACCEPTED:
    case KILN__ENVELOPE__BODY_STEP_STARTED:
    case KILN__ENVELOPE__BODY_LOG:
    case KILN__ENVELOPE__BODY_STEP_RESULT:
    case KILN__ENVELOPE__BODY_JOB_RESULT:
        break;
    default:
        /* Checked before anything else: a worker key gets no answer to
         * a message only clients may send. */
        self->stats.garbage_dropped++;
        kiln_log_warn("worker key %s (%s) sent a message workers may not send (%d); dropped",
                      key_name, msg->peer_address, (int)env->body_case);
        return;
    }
    kiln_cworker_t *w = kiln_workers_find(self, msg->identity, msg->id_len);
    /* A routing id is only where a message came from: the worker it speaks
     * for is the one of its key, or none. */
    if (w && strcmp(w->key_name, key_name) != 0)
        w = NULL;
    if (!w) {
        /* We do not know this worker (we restarted, or it was declared
         * lost): ask it to introduce itself again, once per heartbeat: a
         * worker with many messages in flight would otherwise get (and
         * answer) one request per message. */
        size_t slot = kiln_workers_slot(msg->identity, msg->id_len) & (KILN_REHELLO_SLOTS - 1);
        int64_t now = kiln_clock_mono_ms();
        if (self->rehello_hash[slot] == kiln_workers_slot(msg->identity, msg->id_len) &&
            now - self->rehello_at[slot] < self->cfg.heartbeat_ms)
            return;
        self->rehello_hash[slot] = kiln_workers_slot(msg->identity, msg->id_len);
        self->rehello_at[slot] = now;
        Kiln__Envelope reply = KILN__ENVELOPE__INIT;
        Kiln__Welcome welcome = KILN__WELCOME__INIT;
        welcome.rehello = true;
        reply.body_case = KILN__ENVELOPE__BODY_WELCOME;
        reply.welcome = &welcome;
        kiln_server_send(self, msg->identity, msg->id_len, &reply);
        return;
    }
    w->last_seen = kiln_clock_mono_ms();
    w->suspect_deadline = 0;
    if (msg->src_fd >= 0)
        w->fd = msg->src_fd;
    switch (env->body_case) {
    case KILN__ENVELOPE__BODY_HEARTBEAT: kiln_workers_on_heartbeat(self, w, env->heartbeat); break;
    case KILN__ENVELOPE__BODY_ACCEPTED: break;
    case KILN__ENVELOPE__BODY_STEP_STARTED: kiln_attempts_on_step_started(self, w, env->step_started); break;
    case KILN__ENVELOPE__BODY_LOG: kiln_attempts_on_log(self, w, env->log); break;
    case KILN__ENVELOPE__BODY_STEP_RESULT: kiln_attempts_on_step_result(self, w, env->step_result); break;
    case KILN__ENVELOPE__BODY_JOB_RESULT: kiln_attempts_on_job_result(self, w, env->job_result); break;
    default: break;
    }
}
