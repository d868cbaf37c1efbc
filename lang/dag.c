/* dag.c: the run-time state of one run's job graph (see dag.h).
 *
 * Pure state over a parsed workflow: one state per job, plus the reverse
 * edges (who needs me) computed once so that finishing a job touches only
 * its dependents. Everything finish and cancel need is allocated in
 * kiln_dag_new, so those calls cannot fail for lack of memory halfway
 * through a state change.
 *
 * A job "counts as success" for its dependents and for the run when it
 * succeeded, or when it failed, timed out or hit infrastructure errors with
 * continue-on-error set. A cancelled or skipped job never does: cancel
 * means stop, so what follows it is skipped even with continue-on-error.
 */
#include "lang/dag.h"

#include "common/error.h"

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct kiln_dag {
    const kiln_workflow_t *wf;  /* borrowed */
    size_t n;
    kiln_job_state_t *state;
    bool *reported;             /* READY job already handed out by take_ready */
    size_t *dep_start;          /* dependents of job i: deps[dep_start[i] .. dep_start[i+1]) */
    size_t *deps;
    size_t *order;              /* topological order (wf->topo, or file order) */
    size_t *rank;               /* position of each job in order[] */
    size_t *queue;              /* scratch for finish: jobs skipped by one call */
    bool *decides;              /* its if: calls a status function: it decides */
    /* No unreported READY job sits before this position of order[]: a
     * 1,000-job run costs take_ready a scan of what changed, not of the
     * whole run on every finish. */
    size_t scan_from;
};

static const char *const s_names[] = {
    [KILN_JOB_PENDING] = "pending",     [KILN_JOB_READY] = "ready",
    [KILN_JOB_RUNNING] = "running",     [KILN_JOB_SUCCESS] = "success",
    [KILN_JOB_FAILURE] = "failure",     [KILN_JOB_TIMED_OUT] = "timed_out",
    [KILN_JOB_CANCELLED] = "cancelled", [KILN_JOB_SKIPPED] = "skipped",
    [KILN_JOB_INFRA_ERROR] = "infra_error",
};
#define S_N_STATES (sizeof s_names / sizeof s_names[0])

const char *kiln_job_state_name(kiln_job_state_t state)
{
    if ((size_t)state >= S_N_STATES)
        return "unknown";
    return s_names[state];
}

int kiln_job_state_parse(const char *name, kiln_job_state_t *out)
{
    assert(name && out);
    for (size_t i = 0; i < S_N_STATES; i++) {
        if (strcmp(name, s_names[i]) == 0) {
            *out = (kiln_job_state_t)i;
            return 0;
        }
    }
    return -1;
}

bool kiln_job_state_is_final(kiln_job_state_t state)
{
    switch (state) {
    case KILN_JOB_SUCCESS:
    case KILN_JOB_FAILURE:
    case KILN_JOB_TIMED_OUT:
    case KILN_JOB_CANCELLED:
    case KILN_JOB_SKIPPED:
    case KILN_JOB_INFRA_ERROR:
        return true;
    default:
        return false;
    }
}

/* A final state that lets dependents run (see the file comment). */
static bool s_counts_as_success(const kiln_dag_t *self, size_t job)
{
    kiln_job_state_t st = self->state[job];
    if (st == KILN_JOB_SUCCESS)
        return true;
    return self->wf->jobs[job].continue_on_error &&
           (st == KILN_JOB_FAILURE || st == KILN_JOB_TIMED_OUT || st == KILN_JOB_INFRA_ERROR);
}

static void s_became_ready(kiln_dag_t *self, size_t job)
{
    self->state[job] = KILN_JOB_READY;
    if (self->rank[job] < self->scan_from)
        self->scan_from = self->rank[job];
}

kiln_dag_t *kiln_dag_new(const kiln_workflow_t *wf)
{
    assert(wf);
    kiln_dag_t *self = calloc(1, sizeof *self);
    kiln_dag_t *result = NULL;
    if (!self)
        goto cleanup;
    size_t n = wf->n_jobs, alloc_n = n ? n : 1, n_edges = 0;
    self->wf = wf;
    self->n = n;
    for (size_t i = 0; i < n; i++)
        n_edges += wf->jobs[i].n_needs;
    self->state = calloc(alloc_n, sizeof *self->state);
    self->reported = calloc(alloc_n, sizeof *self->reported);
    self->dep_start = calloc(n + 1, sizeof *self->dep_start);
    self->deps = malloc((n_edges ? n_edges : 1) * sizeof *self->deps);
    self->order = malloc(alloc_n * sizeof *self->order);
    self->rank = malloc(alloc_n * sizeof *self->rank);
    self->queue = malloc(alloc_n * sizeof *self->queue);
    self->decides = calloc(alloc_n, sizeof *self->decides);
    if (!self->state || !self->reported || !self->dep_start || !self->deps || !self->order ||
        !self->rank || !self->queue || !self->decides)
        goto cleanup;

    /* Reverse edges in counting-sort form; queue[] is free scratch here. */
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < wf->jobs[i].n_needs; k++)
            self->dep_start[wf->jobs[i].need_idx[k] + 1]++;
    for (size_t i = 0; i < n; i++)
        self->dep_start[i + 1] += self->dep_start[i];
    memset(self->queue, 0, alloc_n * sizeof *self->queue);
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < wf->jobs[i].n_needs; k++) {
            size_t need = wf->jobs[i].need_idx[k];
            assert(need < n); /* a parsed workflow has every need resolved */
            self->deps[self->dep_start[need] + self->queue[need]++] = i;
        }

    for (size_t i = 0; i < n; i++) {
        self->order[i] = wf->topo ? wf->topo[i] : i;
        self->rank[self->order[i]] = i;
        self->state[i] = wf->jobs[i].n_needs == 0 ? KILN_JOB_READY : KILN_JOB_PENDING;
    }
    result = self;
    self = NULL;
cleanup:
    kiln_dag_destroy(&self);
    return result;
}

void kiln_dag_destroy(kiln_dag_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    kiln_dag_t *self = *self_p;
    free(self->state);
    free(self->reported);
    free(self->dep_start);
    free(self->deps);
    free(self->order);
    free(self->rank);
    free(self->queue);
    free(self->decides);
    free(self);
    *self_p = NULL;
}

size_t kiln_dag_size(const kiln_dag_t *self)
{
    assert(self);
    return self->n;
}

kiln_job_state_t kiln_dag_state(const kiln_dag_t *self, size_t job)
{
    assert(self && job < self->n);
    return self->state[job];
}

size_t kiln_dag_take_ready(kiln_dag_t *self, size_t *out, size_t max)
{
    assert(self && (out || max == 0));
    size_t got = 0, i;
    for (i = self->scan_from; i < self->n && got < max; i++) {
        size_t job = self->order[i];
        if (self->state[job] == KILN_JOB_READY && !self->reported[job]) {
            self->reported[job] = true;
            out[got++] = job;
        }
    }
    self->scan_from = got < max ? self->n : i;
    return got;
}

int kiln_dag_start(kiln_dag_t *self, size_t job)
{
    assert(self);
    if (job >= self->n || self->state[job] != KILN_JOB_READY)
        return KILN_EINVAL;
    self->state[job] = KILN_JOB_RUNNING;
    return 0;
}

void kiln_dag_set_decides(kiln_dag_t *self, size_t job, bool decides)
{
    assert(self && job < self->n);
    self->decides[job] = decides;
}

static bool s_needs_final(const kiln_dag_t *self, size_t dep)
{
    const kiln_job_t *j = &self->wf->jobs[dep];
    for (size_t k = 0; k < j->n_needs; k++)
        if (!kiln_job_state_is_final(self->state[j->need_idx[k]]))
            return false;
    return true;
}

/* Pending dependents of `job` whose needs now all count as success (or,
 * for a job that decides for itself, are all final). */
static void s_release(kiln_dag_t *self, size_t job)
{
    for (size_t e = self->dep_start[job]; e < self->dep_start[job + 1]; e++) {
        size_t dep = self->deps[e];
        if (self->state[dep] != KILN_JOB_PENDING)
            continue;
        const kiln_job_t *j = &self->wf->jobs[dep];
        bool ok = true;
        if (self->decides[dep])
            ok = s_needs_final(self, dep);
        for (size_t k = 0; k < j->n_needs && ok && !self->decides[dep]; k++)
            ok = s_counts_as_success(self, j->need_idx[k]);
        if (ok)
            s_became_ready(self, dep);
    }
}

/* Skips every not-yet-final job reachable through dependents of `job`;
 * returns how many, leaving them in queue[0..n) sorted by rank. */
static size_t s_skip_dependents(kiln_dag_t *self, size_t job)
{
    size_t head = 0, tail = 0;
    size_t from = job;
    for (;;) {
        for (size_t e = self->dep_start[from]; e < self->dep_start[from + 1]; e++) {
            size_t dep = self->deps[e];
            if (kiln_job_state_is_final(self->state[dep]))
                continue; /* includes the ones this loop already skipped */
            if (self->decides[dep]) {
                /* Its own if: (always(), failure(), ...) decides; it is
                 * not skipped, and what follows it waits for it. */
                if (self->state[dep] == KILN_JOB_PENDING && s_needs_final(self, dep))
                    s_became_ready(self, dep);
                continue;
            }
            /* A dependent of an unfinished job is pending: it cannot have
             * become ready or started. */
            assert(self->state[dep] == KILN_JOB_PENDING);
            self->state[dep] = KILN_JOB_SKIPPED;
            self->queue[tail++] = dep;
        }
        if (head == tail)
            break;
        from = self->queue[head++];
    }
    /* Report in topological order; n is at most KILN_WF_MAX_JOBS. */
    for (size_t i = 1; i < tail; i++) {
        size_t v = self->queue[i], j = i;
        while (j > 0 && self->rank[self->queue[j - 1]] > self->rank[v]) {
            self->queue[j] = self->queue[j - 1];
            j--;
        }
        self->queue[j] = v;
    }
    return tail;
}

int kiln_dag_finish(kiln_dag_t *self, size_t job, kiln_job_state_t state, size_t *skipped,
                    size_t max_skipped, size_t *n_skipped)
{
    assert(self && (skipped || max_skipped == 0));
    if (n_skipped)
        *n_skipped = 0;
    if (job >= self->n || !kiln_job_state_is_final(state))
        return KILN_EINVAL;
    if (self->state[job] != KILN_JOB_READY && self->state[job] != KILN_JOB_RUNNING)
        return KILN_EINVAL;
    self->state[job] = state;
    if (s_counts_as_success(self, job)) {
        s_release(self, job);
        return 0;
    }
    size_t n = s_skip_dependents(self, job);
    for (size_t i = 0; i < n && i < max_skipped; i++)
        skipped[i] = self->queue[i];
    if (n_skipped)
        *n_skipped = n;
    return 0;
}

size_t kiln_dag_cancel(kiln_dag_t *self, size_t *cancelled, size_t max)
{
    assert(self && (cancelled || max == 0));
    size_t n = 0;
    for (size_t i = 0; i < self->n; i++) {
        size_t job = self->order[i];
        kiln_job_state_t st = self->state[job];
        if (st != KILN_JOB_PENDING && st != KILN_JOB_READY)
            continue;
        self->state[job] = KILN_JOB_CANCELLED;
        if (n < max)
            cancelled[n] = job;
        n++;
    }
    return n;
}

bool kiln_dag_done(const kiln_dag_t *self)
{
    assert(self);
    for (size_t i = 0; i < self->n; i++)
        if (!kiln_job_state_is_final(self->state[i]))
            return false;
    return true;
}

bool kiln_dag_failed(const kiln_dag_t *self)
{
    assert(self);
    for (size_t i = 0; i < self->n; i++) {
        kiln_job_state_t st = self->state[i];
        bool bad = st == KILN_JOB_FAILURE || st == KILN_JOB_TIMED_OUT ||
                   st == KILN_JOB_CANCELLED || st == KILN_JOB_INFRA_ERROR;
        if (bad && !self->wf->jobs[i].continue_on_error)
            return true;
    }
    return false;
}
