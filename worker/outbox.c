/* outbox.c: a finished job's result, packed once and kept until the
 * coordinator acknowledges it (it is resent every KILN_AGENT_RESEND_MS), so
 * a coordinator that restarts or a message that is lost costs a resend,
 * not the job. Bounded: past max_results the oldest is forgotten, with a
 * warning. */
#include "worker/agent_int.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <zmq.h>

#include "common/clock.h"
#include "common/error.h"
#include "common/fs.h"
#include "common/labels.h"
#include "common/log.h"
#include "common/transport.h"
#include "lang/shell.h"
#include "lang/workflow.h"

void kiln_outbox_send(kiln_agent_t *self, kiln_wresult_t *res)
{
    if (zmq_send(self->sock, res->packed, res->len, ZMQ_DONTWAIT) == -1)
        kiln_log_warn("send to coordinator failed: %s", zmq_strerror(zmq_errno()));
    res->resend_at = kiln_clock_mono_ms() + KILN_AGENT_RESEND_MS;
}

/* Frees result i; the last takes its place (the order does not matter:
 * seq keeps the age). */
void kiln_outbox_remove(kiln_agent_t *self, size_t i)
{
    free(self->results[i].packed);
    self->results[i] = self->results[--self->n_results];
}

/* Records a result and sends it; it is resent until acknowledged. extra
 * (may be NULL) brings outputs, annotations and the summary. */
void kiln_outbox_add(kiln_agent_t *self, const char *job_key, uint64_t token,
                         Kiln__Outcome outcome, int64_t started_ms, const char *message,
                         const Kiln__JobResult *extra)
{
    Kiln__Envelope env = KILN__ENVELOPE__INIT;
    Kiln__JobResult r = KILN__JOB_RESULT__INIT;
    if (extra)
        r = *extra;
    r.job_key = (char *)job_key;
    r.token = token;
    r.outcome = outcome;
    r.started_ms = (uint64_t)started_ms;
    r.finished_ms = (uint64_t)kiln_clock_wall_ms();
    r.message = (char *)(message ? message : "");
    env.version = KILN_PROTO_VERSION;
    env.body_case = KILN__ENVELOPE__BODY_JOB_RESULT;
    env.job_result = &r;
    size_t len = kiln__envelope__get_packed_size(&env);
    /* The limits on what a job leaves keep its result within a message;
     * should it still not fit, what it carries goes, largest kind first,
     * and the result says so: a job is never left running by its own
     * result. */
    char cut[300];
    const char *dropped[4] = {NULL};
    size_t n_dropped = 0;
    for (int stage = 0; len > KILN_MSG_MAX && stage < 4; stage++) {
        switch (stage) {
        case 0: r.summary.len = 0, r.summary.data = NULL, dropped[n_dropped++] = "summary"; break;
        case 1: r.n_annotations = 0, dropped[n_dropped++] = "annotations"; break;
        case 2: r.n_outputs = 0, dropped[n_dropped++] = "outputs"; break;
        default: r.n_steps = 0, dropped[n_dropped++] = "step results"; break;
        }
        int n = snprintf(cut, sizeof cut, "%s%sthe job's result was too large to send (over %d "
                         "bytes): left out its",
                         message && message[0] ? message : "", message && message[0] ? "; " : "",
                         KILN_MSG_MAX);
        for (size_t i = 0; i < n_dropped && n > 0 && (size_t)n < sizeof cut; i++)
            n += snprintf(cut + n, sizeof cut - (size_t)n, "%s %s", i ? "," : "", dropped[i]);
        r.message = cut;
        len = kiln__envelope__get_packed_size(&env);
    }
    if (n_dropped)
        kiln_log_error("job %s: %s", job_key, r.message);
    uint8_t *packed = len <= KILN_MSG_MAX ? malloc(len) : NULL;
    if (!packed) {
        kiln_log_error("job %s: its result cannot be sent (%zu bytes)", job_key, len);
        return;
    }
    kiln__envelope__pack(&env, packed);
    if (self->n_results == self->max_results) {
        size_t oldest = 0;
        for (size_t i = 1; i < self->n_results; i++)
            if (self->results[i].seq < self->results[oldest].seq)
                oldest = i;
        kiln_log_warn("%zu results unacknowledged; forgetting %s", self->max_results,
                      self->results[oldest].job_key);
        kiln_outbox_remove(self, oldest);
    }
    kiln_wresult_t *res = &self->results[self->n_results++];
    memset(res, 0, sizeof *res);
    res->seq = ++self->result_seq;
    snprintf(res->job_key, sizeof res->job_key, "%s", job_key);
    res->token = token;
    res->packed = packed;
    res->len = len;
    kiln_outbox_send(self, res);
}

void kiln_outbox_ack(kiln_agent_t *self, const Kiln__ResultAck *ack)
{
    for (size_t i = 0; i < self->n_results; i++) {
        if (self->results[i].token == ack->token &&
            strcmp(self->results[i].job_key, ack->job_key) == 0) {
            kiln_outbox_remove(self, i);
            return;
        }
    }
}
