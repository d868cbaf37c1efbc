/* rungraph.c: the state of one run (see rungraph.h).
 *
 * Nodes are jobs as written, grouped in scopes: scope 0 is the submitted
 * workflow; a called workflow's jobs form a scope of their own, made when
 * the job that calls it (a "call" job) starts, with its id and name as
 * prefixes. Planned jobs are the nodes' instances. Work is driven by a
 * queue of dirty nodes: a node is looked at again only when something it
 * depends on changed (a need ended, one of its jobs ended, the run was
 * cancelled), so a 1,000-job run costs a finish a few node visits, not a
 * scan. Changes for the host wait in a queue of their own until
 * kiln_rungraph_advance hands them out.
 */
#include "lang/rungraph.h"

#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "lang/expr.h"
#include "lang/parse.h"

#define S_NONE SIZE_MAX

typedef enum { S_WAITING, S_ACTIVE, S_DONE } s_phase_t;

typedef struct {
    kiln_plan_job_t *plan;
    size_t node;
    kiln_job_state_t state;
    json_t *outputs;
    char *message;
    size_t scope;           /* a call job: the scope of its callee's jobs, or S_NONE */
    bool stopping;          /* told to stop (fail-fast, cancel): it does not run again */
} s_inst_t;

typedef struct {
    const kiln_workflow_t *wf;
    const kiln_job_t *spec;
    size_t scope;
    size_t *needs;          /* node indexes */
    size_t n_needs;
    size_t *deps;           /* nodes that need this one */
    size_t n_deps, cap_deps;
    size_t *inst;           /* its planned jobs */
    size_t n_inst, cap_inst;
    s_phase_t phase;
    kiln_job_state_t result; /* once done */
    bool planned;
    bool decides;           /* its if: calls a status function */
    bool finish_static;     /* kiln_plan_finish reads no context */
    bool has_matrix, fail_fast;
    unsigned max_parallel;
    bool dirty;
    char *plan_error;       /* planning at submission failed: the job fails so */
} s_node_t;

typedef struct {
    const kiln_workflow_t *wf;
    size_t caller;          /* the call job, or S_NONE for the run's workflow */
    size_t first, n;        /* its nodes */
    size_t n_done;
    json_t *inputs;
    json_t *secrets;        /* what its jobs see as secrets */
    char *prefix, *name_prefix;
} s_scope_t;

struct kiln_rungraph {
    kiln_contexts_t run;
    char *strings[8];
    json_t *inputs, *vars, *secrets;
    s_node_t *nodes;
    size_t n_nodes, cap_nodes;
    s_inst_t *inst;
    size_t n_inst, cap_inst;
    s_scope_t *scopes;
    size_t n_scopes, cap_scopes;
    size_t *dirty;          /* queue of node indexes (a ring would not be simpler) */
    size_t n_dirty, cap_dirty;
    kiln_rg_change_t *changes;
    size_t head, n_changes, cap_changes;
    long *index;            /* open addressing over instance ids */
    size_t index_cap;
    bool cancelled;
    bool oom;
};

/* ------------------------------------------------------------ plumbing */

/* Grows *p to hold need entries. From a small start: most jobs as written
 * have one planned job and one dependent, and 100,000 queued jobs made the
 * slack of a larger start a quarter of the coordinator's memory. */
static bool s_grow(void **p, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return true;
    size_t ncap = *cap ? *cap * 2 : 1;
    while (ncap < need)
        ncap *= 2;
    void *grown = realloc(*p, ncap * size);
    if (!grown)
        return false;
    *p = grown;
    *cap = ncap;
    return true;
}

static void s_change(kiln_rungraph_t *self, kiln_rg_kind_t kind, size_t job)
{
    if (self->head > 0 && self->head == self->n_changes) {
        self->head = 0;
        self->n_changes = 0;
    }
    if (!s_grow((void **)&self->changes, &self->cap_changes, self->n_changes + 1,
                sizeof *self->changes)) {
        self->oom = true;
        return;
    }
    self->changes[self->n_changes].kind = kind;
    self->changes[self->n_changes].job = job;
    self->n_changes++;
}

static void s_dirty(kiln_rungraph_t *self, size_t node)
{
    if (self->nodes[node].dirty)
        return;
    if (!s_grow((void **)&self->dirty, &self->cap_dirty, self->n_dirty + 1,
                sizeof *self->dirty)) {
        self->oom = true;
        return;
    }
    self->nodes[node].dirty = true;
    self->dirty[self->n_dirty++] = node;
}

static size_t s_hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return (size_t)h;
}

static void s_index_put(kiln_rungraph_t *self, size_t job)
{
    if (self->n_inst * 2 >= self->index_cap) {
        size_t cap = self->index_cap ? self->index_cap * 2 : 64;
        while (cap <= self->n_inst * 2)
            cap *= 2;
        long *table = malloc(cap * sizeof *table);
        if (!table) {
            self->oom = true;
            return;
        }
        for (size_t i = 0; i < cap; i++)
            table[i] = -1;
        free(self->index);
        self->index = table;
        self->index_cap = cap;
        for (size_t i = 0; i < self->n_inst; i++)
            if (i != job)
                s_index_put(self, i);
    }
    size_t slot = s_hash(self->inst[job].plan->id) & (self->index_cap - 1);
    while (self->index[slot] >= 0)
        slot = (slot + 1) & (self->index_cap - 1);
    self->index[slot] = (long)job;
}

long kiln_rungraph_find(const kiln_rungraph_t *self, const char *id)
{
    if (!self->index_cap)
        return -1;
    for (size_t slot = s_hash(id) & (self->index_cap - 1);;
         slot = (slot + 1) & (self->index_cap - 1)) {
        long j = self->index[slot];
        if (j < 0)
            return -1;
        if (strcmp(self->inst[j].plan->id, id) == 0)
            return j;
    }
}

/* ------------------------------------------------------------ contexts */

/* needs.<id>: the result of each job needed and its jobs' outputs, merged
 * in their order (a matrix job's combinations under the job's own id). */
static json_t *s_needs_json(const kiln_rungraph_t *self, const s_node_t *node)
{
    json_t *needs = json_object();
    for (size_t k = 0; needs && k < node->n_needs; k++) {
        const s_node_t *n = &self->nodes[node->needs[k]];
        json_t *outs = json_object();
        for (size_t i = 0; outs && i < n->n_inst; i++) {
            const json_t *o = self->inst[n->inst[i]].outputs;
            if (o)
                json_object_update(outs, (json_t *)o);
        }
        json_object_set_new(needs, n->spec->id,
                            json_pack("{s:s, s:o*}", "result",
                                      n->phase == S_DONE ? kiln_job_state_name(n->result) : "",
                                      "outputs", outs));
    }
    return needs;
}

static void s_fill(const kiln_rungraph_t *self, const s_node_t *node, const s_inst_t *inst,
                   const json_t *needs, kiln_contexts_t *c)
{
    *c = self->run;
    c->job = node->spec->id;
    c->inputs = self->scopes[node->scope].inputs;
    c->secrets = self->scopes[node->scope].secrets;
    c->needs = needs;
    c->fail_fast = node->fail_fast;
    if (inst) {
        c->matrix = inst->plan->matrix;
        c->job_index = inst->plan->index;
        c->job_total = inst->plan->total;
        c->max_parallel = node->max_parallel ? node->max_parallel : inst->plan->total;
    } else {
        c->job_total = 1;
        c->max_parallel = 1;
    }
}

/* The contexts of a node (inst NULL) or of one of its jobs, as JSON. */
static json_t *s_ctx(const kiln_rungraph_t *self, const s_node_t *node, const s_inst_t *inst)
{
    json_t *needs = node->n_needs ? s_needs_json(self, node) : NULL;
    kiln_contexts_t c;
    s_fill(self, node, inst, needs, &c);
    json_t *ctx = kiln_contexts_json(&c);
    json_decref(needs);
    return ctx;
}

char *kiln_rungraph_contexts_text(const kiln_rungraph_t *self, size_t job, unsigned attempt)
{
    const s_inst_t *inst = &self->inst[job];
    const s_node_t *node = &self->nodes[inst->node];
    json_t *needs = node->n_needs ? s_needs_json(self, node) : NULL;
    kiln_contexts_t c;
    s_fill(self, node, inst, needs, &c);
    c.run_attempt = attempt;
    char *text = kiln_contexts_text(&c);
    json_decref(needs);
    return text;
}

/* ------------------------------------------------------------ building */

static size_t s_inst_add(kiln_rungraph_t *self, size_t node, kiln_plan_job_t *plan)
{
    s_node_t *n = &self->nodes[node];
    if (!plan || self->n_inst >= KILN_RUNGRAPH_MAX_JOBS + KILN_WF_MAX_CALLED ||
        !s_grow((void **)&self->inst, &self->cap_inst, self->n_inst + 1, sizeof *self->inst) ||
        !s_grow((void **)&n->inst, &n->cap_inst, n->n_inst + 1, sizeof *n->inst)) {
        kiln_plan_job_destroy(&plan);
        self->oom = true;
        return S_NONE;
    }
    size_t j = self->n_inst++;
    s_inst_t *inst = &self->inst[j];
    memset(inst, 0, sizeof *inst);
    inst->plan = plan;
    inst->node = node;
    inst->scope = S_NONE;
    inst->state = KILN_JOB_PENDING;
    n->inst[n->n_inst++] = j;
    s_index_put(self, j);
    s_change(self, KILN_RG_ADDED, j);
    return j;
}

/* Whether kiln_plan_finish needs contexts for this job: most jobs have no
 * template in what is settled when they become ready, and building their
 * contexts would be most of a large run's cost. */
static bool s_finish_static(const kiln_workflow_t *wf, const kiln_job_t *spec)
{
    if (kiln_is_template(spec->name) || kiln_value_has_template(spec->runs_on) ||
        kiln_value_has_template(spec->timeout) ||
        kiln_value_has_template(spec->continue_on_error) || spec->concurrency_group ||
        spec->env_expr)
        return false;
    for (size_t i = 0; i < spec->env.n; i++)
        if (kiln_is_template(spec->env.items[i].value))
            return false;
    for (size_t i = 0; i < wf->env.n; i++)
        if (kiln_is_template(wf->env.items[i].value))
            return false;
    return true;
}

/* Makes the node's jobs from its strategy (ctx: its contexts). */
static int s_plan(kiln_rungraph_t *self, size_t node, const json_t *ctx, char *err,
                  size_t errlen)
{
    s_node_t *n = &self->nodes[node];
    kiln_strategy_t st;
    int rc = kiln_plan_strategy(n->spec, ctx, &st, err, errlen);
    if (rc != 0)
        return rc;
    size_t count = st.has_matrix ? st.matrix.n : 1;
    if (self->n_inst + count > KILN_RUNGRAPH_MAX_JOBS) {
        snprintf(err, errlen, "job '%s': its %zu jobs would take the run past %d jobs",
                 n->spec->id, count, KILN_RUNGRAPH_MAX_JOBS);
        kiln_strategy_clear(&st);
        return KILN_ETOOBIG;
    }
    n->has_matrix = st.has_matrix;
    n->fail_fast = st.fail_fast;
    n->max_parallel = st.max_parallel;
    const s_scope_t *sc = &self->scopes[n->scope];
    for (size_t c = 0; c < count && !self->oom; c++) {
        size_t j = s_inst_add(self, node,
                              kiln_plan_job_new(n->spec, &st, c, sc->prefix, sc->name_prefix, ctx));
        /* Nothing to evaluate later: settled now, so the host records its
         * labels with it (an error is met again when it would run). */
        if (j != S_NONE && n->finish_static && !n->spec->callee)
            kiln_plan_finish(self->inst[j].plan, n->wf, n->spec, NULL, sc->name_prefix, err,
                             errlen);
    }
    n->planned = true;
    kiln_strategy_clear(&st);
    return self->oom ? -1 : 0;
}

/* The nodes of one workflow, as a scope. */
static int s_scope_add(kiln_rungraph_t *self, const kiln_workflow_t *wf, size_t caller,
                       json_t *inputs, json_t *secrets, const char *prefix,
                       const char *name_prefix)
{
    if (!s_grow((void **)&self->scopes, &self->cap_scopes, self->n_scopes + 1,
                sizeof *self->scopes) ||
        !s_grow((void **)&self->nodes, &self->cap_nodes, self->n_nodes + wf->n_jobs,
                sizeof *self->nodes)) {
        json_decref(inputs);
        json_decref(secrets);
        return -1;
    }
    size_t sid = self->n_scopes++;
    s_scope_t *sc = &self->scopes[sid];
    memset(sc, 0, sizeof *sc);
    sc->wf = wf;
    sc->caller = caller;
    sc->first = self->n_nodes;
    sc->n = wf->n_jobs;
    sc->inputs = inputs;
    sc->secrets = secrets;
    sc->prefix = strdup(prefix);
    sc->name_prefix = strdup(name_prefix);
    if (!sc->prefix || !sc->name_prefix)
        return -1;
    for (size_t i = 0; i < wf->n_jobs; i++) {
        s_node_t *n = &self->nodes[self->n_nodes++];
        memset(n, 0, sizeof *n);
        n->wf = wf;
        n->spec = &wf->jobs[i];
        n->scope = sid;
        n->fail_fast = true;
        n->decides = n->spec->if_expr && kiln_expr_condition_has_status_call(n->spec->if_expr);
        n->finish_static = s_finish_static(wf, n->spec);
        if (n->spec->n_needs) {
            n->needs = malloc(n->spec->n_needs * sizeof *n->needs);
            if (!n->needs)
                return -1;
            for (size_t k = 0; k < n->spec->n_needs; k++)
                n->needs[n->n_needs++] = sc->first + n->spec->need_idx[k];
        }
    }
    for (size_t i = sc->first; i < sc->first + sc->n; i++) {
        s_node_t *n = &self->nodes[i];
        for (size_t k = 0; k < n->n_needs; k++) {
            s_node_t *need = &self->nodes[n->needs[k]];
            if (!s_grow((void **)&need->deps, &need->cap_deps, need->n_deps + 1,
                        sizeof *need->deps))
                return -1;
            need->deps[need->n_deps++] = i;
        }
    }
    /* Jobs whose matrix does not wait for needs are planned now, so the
     * run shows them from the start; a failure here fails the job when
     * its turn comes. */
    for (size_t t = 0; t < wf->n_jobs && !self->oom; t++) {
        size_t node = sc->first + wf->topo[t];
        s_node_t *n = &self->nodes[node];
        if (!n->spec->plan_late) {
            char err[KILN_PLAN_ERR_MAX];
            bool plain = !kiln_is_template(n->spec->name) &&
                         !kiln_value_has_template(n->spec->matrix) &&
                         !kiln_value_has_template(n->spec->fail_fast) &&
                         !kiln_value_has_template(n->spec->max_parallel);
            json_t *ctx = plain ? NULL : s_ctx(self, n, NULL);
            if (s_plan(self, node, ctx, err, sizeof err) != 0 && !self->oom) {
                n->plan_error = strdup(err);
                if (!n->plan_error)
                    self->oom = true;
            }
            json_decref(ctx);
        }
        s_dirty(self, node);
    }
    return self->oom ? -1 : 0;
}

int kiln_rungraph_new(kiln_rungraph_t **out, const kiln_workflow_t *wf, const kiln_contexts_t *run)
{
    kiln_rungraph_t *self = calloc(1, sizeof *self);
    *out = NULL;
    if (!self)
        goto oom;
    self->run = *run;
    const char **fields[] = {&self->run.workflow, &self->run.actor, &self->run.event_name,
                             &self->run.repository, &self->run.ref, &self->run.sha};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        if (!*fields[i])
            continue;
        self->strings[i] = strdup(*fields[i]);
        if (!self->strings[i])
            goto oom;
        *fields[i] = self->strings[i];
    }
    self->inputs = run->inputs ? json_deep_copy(run->inputs) : json_object();
    self->vars = run->vars ? json_incref((json_t *)run->vars) : NULL;
    self->secrets = run->secrets ? json_deep_copy(run->secrets) : NULL;
    self->run.inputs = self->inputs;
    self->run.vars = self->vars;
    self->run.secrets = self->secrets;
    self->run.needs = NULL;
    self->run.matrix = NULL;
    self->run.jobs = NULL;
    if (!self->inputs ||
        s_scope_add(self, wf, S_NONE, json_incref(self->inputs),
                    self->secrets ? json_incref(self->secrets) : NULL, "", "") != 0 ||
        self->oom)
        goto oom;
    *out = self;
    return 0;
oom:
    kiln_rungraph_destroy(&self);
    kiln_error_set("out of memory planning the run");
    return -1;
}

void kiln_rungraph_destroy(kiln_rungraph_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    kiln_rungraph_t *self = *self_p;
    for (size_t i = 0; i < self->n_inst; i++) {
        kiln_plan_job_destroy(&self->inst[i].plan);
        json_decref(self->inst[i].outputs);
        free(self->inst[i].message);
    }
    for (size_t i = 0; i < self->n_nodes; i++) {
        free(self->nodes[i].needs);
        free(self->nodes[i].deps);
        free(self->nodes[i].inst);
        free(self->nodes[i].plan_error);
    }
    for (size_t i = 0; i < self->n_scopes; i++) {
        json_decref(self->scopes[i].inputs);
        json_decref(self->scopes[i].secrets);
        free(self->scopes[i].prefix);
        free(self->scopes[i].name_prefix);
    }
    for (size_t i = 0; i < sizeof self->strings / sizeof self->strings[0]; i++)
        free(self->strings[i]);
    json_decref(self->inputs);
    json_decref(self->vars);
    json_decref(self->secrets);
    free(self->inst);
    free(self->nodes);
    free(self->scopes);
    free(self->dirty);
    free(self->changes);
    free(self->index);
    free(self);
    *self_p = NULL;
}

/* --------------------------------------------------------------- rules */

static void s_scope_node_done(kiln_rungraph_t *self, size_t node);

/* A job of the run ended without the host: recorded with its reason. */
static void s_inst_end(kiln_rungraph_t *self, size_t j, kiln_job_state_t state, const char *why)
{
    s_inst_t *inst = &self->inst[j];
    if (kiln_job_state_is_final(inst->state))
        return;
    inst->state = state;
    if (why && !inst->message && !(inst->message = strdup(why)))
        self->oom = true;
    s_change(self, KILN_RG_FINAL, j);
    s_dirty(self, inst->node);
}

/* A node ends as a whole (skipped, cancelled, failed before running): each
 * of its jobs ends so; a node with none yet gets one, so the run shows it. */
static void s_node_end(kiln_rungraph_t *self, size_t node, kiln_job_state_t state, const char *why)
{
    s_node_t *n = &self->nodes[node];
    if (n->n_inst == 0) {
        const s_scope_t *sc = &self->scopes[n->scope];
        s_inst_add(self, node, kiln_plan_job_new(n->spec, NULL, 0, sc->prefix, sc->name_prefix, NULL));
    }
    for (size_t i = 0; i < n->n_inst; i++)
        s_inst_end(self, n->inst[i], state, why);
    n->planned = true;
    n->phase = S_DONE;
    n->result = state;
    for (size_t d = 0; d < n->n_deps; d++)
        s_dirty(self, n->deps[d]);
    s_scope_node_done(self, node);
}

/* failure() at job level: some job it needs, directly or not, failed. */
static bool s_ancestor_failed(const kiln_rungraph_t *self, size_t node)
{
    size_t n = self->n_nodes, top = 0;
    size_t *stack = malloc(n * sizeof *stack);
    bool *seen = calloc(n, sizeof *seen), failed = false;
    if (!stack || !seen) {
        free(stack);
        free(seen);
        return false;
    }
    stack[top++] = node;
    while (top && !failed) {
        const s_node_t *x = &self->nodes[stack[--top]];
        for (size_t k = 0; k < x->n_needs; k++) {
            size_t d = x->needs[k];
            if (seen[d])
                continue;
            seen[d] = true;
            failed = failed ||
                     (self->nodes[d].phase == S_DONE && self->nodes[d].result == KILN_JOB_FAILURE);
            stack[top++] = d;
        }
    }
    free(stack);
    free(seen);
    return failed;
}

/* A waiting node whose needs may be done: does it run? */
static void s_decide(kiln_rungraph_t *self, size_t node)
{
    s_node_t *n = &self->nodes[node];
    bool all_done = true, unmet = false;
    for (size_t k = 0; k < n->n_needs; k++) {
        const s_node_t *need = &self->nodes[n->needs[k]];
        if (need->phase != S_DONE)
            all_done = false;
        else if (!kiln_rules_need_met(need->result))
            unmet = true;
    }
    if (unmet && !n->decides) {
        s_node_end(self, node, self->cancelled ? KILN_JOB_CANCELLED : KILN_JOB_SKIPPED, NULL);
        return;
    }
    if (!all_done)
        return;
    if (self->cancelled && !n->decides) {
        s_node_end(self, node, KILN_JOB_CANCELLED, NULL);
        return;
    }
    json_t *ctx = NULL;
    char err[KILN_PLAN_ERR_MAX + 64];
    if (n->spec->if_expr) {
        char inner[KILN_PLAN_ERR_MAX];
        bool ok = false;
        ctx = s_ctx(self, n, NULL);
        kiln_expr_env_t env = {ctx,
                               self->cancelled               ? KILN_EXPR_CANCELLED
                               : s_ancestor_failed(self, node) ? KILN_EXPR_FAILURE
                                                               : KILN_EXPR_SUCCESS,
                               NULL, NULL};
        if (!ctx) {
            self->oom = true;
            return;
        }
        if (kiln_expr_condition(n->spec->if_expr, &env, &ok, inner, sizeof inner) != 0) {
            snprintf(err, sizeof err, "job '%s': if: %s", n->spec->id, inner);
            json_decref(ctx);
            s_node_end(self, node, KILN_JOB_FAILURE, err);
            return;
        }
        if (!ok) {
            json_decref(ctx);
            s_node_end(self, node, KILN_JOB_SKIPPED, NULL);
            return;
        }
    }
    if (n->plan_error || n->spec->unsupported) {
        json_decref(ctx);
        if (n->spec->unsupported)
            snprintf(err, sizeof err, "job '%s': %s", n->spec->id, n->spec->unsupported);
        s_node_end(self, node, KILN_JOB_FAILURE, n->plan_error ? n->plan_error : err);
        return;
    }
    if (!n->planned) {
        if (!ctx)
            ctx = s_ctx(self, n, NULL);
        int rc = ctx ? s_plan(self, node, ctx, err, sizeof err) : -1;
        json_decref(ctx);
        ctx = NULL;
        if (rc != 0 && !self->oom) {
            s_node_end(self, node, KILN_JOB_FAILURE, err);
            return;
        }
    }
    json_decref(ctx);
    n->phase = S_ACTIVE;
}

/* A call job starts: its callee's jobs become a scope of the run. */
static int s_call_start(kiln_rungraph_t *self, size_t j, const json_t *ctx, char *err,
                        size_t errlen)
{
    s_inst_t *inst = &self->inst[j];
    const s_node_t *n = &self->nodes[inst->node];
    const kiln_workflow_t *callee = n->spec->callee;
    json_t *given = NULL, *typed = NULL;
    char inner[KILN_PLAN_ERR_MAX];
    if (n->spec->with) {
        given = kiln_plan_value(n->spec->with, ctx, inner, sizeof inner);
        if (!given) {
            snprintf(err, errlen, "job '%s': with: %s", n->spec->id, inner);
            return KILN_EINVAL;
        }
    }
    json_t *none = json_object();
    int rc = kiln_workflow_inputs(callee->call_inputs ? callee->call_inputs : none,
                                  "on.workflow_call.inputs", given ? given : none, &typed);
    json_decref(given);
    json_decref(none);
    if (rc != 0) {
        snprintf(err, errlen, "job '%s': %s: %s", n->spec->id, n->spec->uses, kiln_error_last());
        return rc;
    }
    char prefix[KILN_WF_MAX_ID * 8], name_prefix[1024];
    snprintf(prefix, sizeof prefix, "%s.", inst->plan->id);
    snprintf(name_prefix, sizeof name_prefix, "%s / ", inst->plan->name);
    if (self->n_scopes >= KILN_WF_MAX_CALLED * 16 ||
        self->n_inst + callee->n_jobs > KILN_RUNGRAPH_MAX_JOBS + KILN_WF_MAX_CALLED) {
        json_decref(typed);
        snprintf(err, errlen, "job '%s': the run would have more than %d jobs", n->spec->id,
                 KILN_RUNGRAPH_MAX_JOBS);
        return KILN_ETOOBIG;
    }
    /* Secrets: the caller's own (inherit), the ones it names, or none. */
    json_t *secrets = NULL;
    const json_t *parent = self->scopes[n->scope].secrets;
    if (json_is_string(n->spec->secrets)) {
        secrets = parent ? json_incref((json_t *)parent) : json_object();
    } else if (n->spec->secrets) {
        secrets = kiln_plan_value(n->spec->secrets, ctx, inner, sizeof inner);
        if (!secrets) {
            json_decref(typed);
            snprintf(err, errlen, "job '%s': secrets: %s", n->spec->id, inner);
            return KILN_EINVAL;
        }
    } else {
        secrets = json_object();
    }
    size_t sid = self->n_scopes;
    if (s_scope_add(self, callee, j, typed, secrets, prefix, name_prefix) != 0) {
        self->oom = true;
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    self->inst[j].scope = sid;
    return 0;
}

/* What a called workflow gives its caller: on.workflow_call.outputs,
 * evaluated with its jobs' results and outputs (the jobs context). */
static json_t *s_call_outputs(kiln_rungraph_t *self, const s_scope_t *sc, char *err,
                              size_t errlen)
{
    json_t *jobs = json_object(), *outs = json_object();
    for (size_t i = sc->first; i < sc->first + sc->n; i++) {
        const s_node_t *n = &self->nodes[i];
        json_t *o = json_object();
        for (size_t k = 0; k < n->n_inst; k++)
            if (self->inst[n->inst[k]].outputs)
                json_object_update(o, self->inst[n->inst[k]].outputs);
        json_object_set_new(jobs, n->spec->id,
                            json_pack("{s:s, s:o}", "result", kiln_job_state_name(n->result),
                                      "outputs", o));
    }
    kiln_contexts_t c = self->run;
    c.inputs = sc->inputs;
    c.secrets = sc->secrets;
    c.jobs = jobs;
    c.job = "";
    json_t *ctx = kiln_contexts_json(&c);
    kiln_expr_env_t env = {ctx, KILN_EXPR_SUCCESS, NULL, NULL};
    const char *name;
    json_t *spec;
    json_object_foreach(sc->wf->call_outputs, name, spec) {
        const char *t = json_string_value(json_object_get(spec, "value"));
        char *v = NULL;
        if (!t)
            continue;
        if (kiln_expr_interpolate(t, &env, &v, err, errlen) != 0) {
            json_decref(outs);
            outs = NULL;
            break;
        }
        json_object_set_new(outs, name, json_string(v));
        free(v);
    }
    json_decref(ctx);
    json_decref(jobs);
    return outs;
}

static void s_scope_node_done(kiln_rungraph_t *self, size_t node)
{
    s_scope_t *sc = &self->scopes[self->nodes[node].scope];
    if (++sc->n_done < sc->n || sc->caller == S_NONE)
        return;
    /* The called workflow is over: its caller's job ends with it. */
    kiln_result_t r = {0};
    for (size_t i = sc->first; i < sc->first + sc->n; i++)
        kiln_result_add(&r, self->nodes[i].result, false);
    char err[KILN_PLAN_ERR_MAX], why[KILN_PLAN_ERR_MAX + 64];
    s_inst_t *caller = &self->inst[sc->caller];
    json_t *outs = s_call_outputs(self, sc, err, sizeof err);
    kiln_job_state_t state = kiln_result_state(&r);
    if (!outs) {
        snprintf(why, sizeof why, "outputs of %s: %s", self->nodes[caller->node].spec->uses, err);
        state = KILN_JOB_FAILURE;
    }
    caller->outputs = outs;
    caller->state = state;
    if (!outs && !caller->message && !(caller->message = strdup(why)))
        self->oom = true;
    s_change(self, KILN_RG_FINAL, sc->caller);
    s_dirty(self, caller->node);
}

/* An active node: its next jobs become ready, within max-parallel; when
 * all have ended, so has the node. */
static void s_promote(kiln_rungraph_t *self, size_t node)
{
    s_node_t *n = &self->nodes[node];
    size_t active = 0, final = 0;
    for (size_t i = 0; i < n->n_inst; i++) {
        kiln_job_state_t st = self->inst[n->inst[i]].state;
        active += st == KILN_JOB_READY || st == KILN_JOB_RUNNING;
        final += kiln_job_state_is_final(st);
    }
    for (size_t i = 0; i < n->n_inst && !self->oom; i++) {
        size_t j = n->inst[i];
        s_inst_t *inst = &self->inst[j];
        if (inst->state != KILN_JOB_PENDING)
            continue;
        if (n->max_parallel && active >= n->max_parallel)
            break;
        char err[KILN_PLAN_ERR_MAX + 64];
        const s_scope_t *sc = &self->scopes[n->scope];
        json_t *ctx = NULL;
        if (n->spec->callee || !n->finish_static) {
            ctx = s_ctx(self, n, inst);
            if (!ctx) {
                self->oom = true;
                break;
            }
        }
        if (n->spec->callee && n->spec->concurrency_group) {
            /* A call in a concurrency group: the host starts it when the
             * group lets it (kiln_rungraph_start), as it queues a job. */
            if (kiln_plan_group(inst->plan, n->spec, ctx, err, sizeof err) != 0) {
                s_inst_end(self, j, KILN_JOB_FAILURE, err);
                final++;
            } else {
                inst->state = KILN_JOB_READY;
                s_change(self, KILN_RG_READY, j);
                active++;
            }
        } else if (n->spec->callee) {
            if (s_call_start(self, j, ctx, err, sizeof err) != 0) {
                s_inst_end(self, j, KILN_JOB_FAILURE, err);
                final++;
            } else {
                self->inst[j].state = KILN_JOB_RUNNING;
                active++;
            }
            /* Both arrays may have moved. */
            n = &self->nodes[node];
            inst = &self->inst[j];
        } else if (!inst->plan->finished &&
                   kiln_plan_finish(inst->plan, n->wf, n->spec, ctx, sc->name_prefix, err,
                                    sizeof err) != 0) {
            s_inst_end(self, j, KILN_JOB_FAILURE, err);
            final++;
        } else {
            inst->state = KILN_JOB_READY;
            s_change(self, KILN_RG_READY, j);
            active++;
        }
        json_decref(ctx);
    }
    if (final < n->n_inst || n->phase == S_DONE)
        return;
    kiln_result_t r = {0};
    for (size_t i = 0; i < n->n_inst; i++) {
        const s_inst_t *inst = &self->inst[n->inst[i]];
        kiln_result_add(&r, inst->state, inst->plan->continue_on_error);
    }
    n->phase = S_DONE;
    n->result = kiln_result_state(&r);
    for (size_t d = 0; d < n->n_deps; d++)
        s_dirty(self, n->deps[d]);
    s_scope_node_done(self, node);
}

static void s_process(kiln_rungraph_t *self)
{
    size_t head = 0;
    while (head < self->n_dirty && !self->oom) {
        size_t node = self->dirty[head++];
        self->nodes[node].dirty = false;
        if (self->nodes[node].phase == S_WAITING)
            s_decide(self, node);
        if (self->nodes[node].phase == S_ACTIVE)
            s_promote(self, node);
        /* Keep the queue short when a long run settles. */
        if (head == self->n_dirty) {
            self->n_dirty = 0;
            head = 0;
        }
    }
    if (head) {
        memmove(self->dirty, self->dirty + head, (self->n_dirty - head) * sizeof *self->dirty);
        self->n_dirty -= head;
    }
}

size_t kiln_rungraph_advance(kiln_rungraph_t *self, kiln_rg_change_t *out, size_t max)
{
    s_process(self);
    size_t n = 0;
    while (n < max && self->head < self->n_changes)
        out[n++] = self->changes[self->head++];
    if (self->head == self->n_changes)
        self->head = self->n_changes = 0;
    return n;
}

/* --------------------------------------------------------- host events */

int kiln_rungraph_start(kiln_rungraph_t *self, size_t job)
{
    assert(job < self->n_inst);
    if (self->inst[job].state != KILN_JOB_READY) {
        kiln_error_set("job %s is %s, not ready", self->inst[job].plan->id,
                       kiln_job_state_name(self->inst[job].state));
        return KILN_EINVAL;
    }
    s_inst_t *inst = &self->inst[job];
    const s_node_t *n = &self->nodes[inst->node];
    if (n->spec->callee && inst->scope == S_NONE) {
        /* A call its group let through: its called workflow starts now. */
        json_t *ctx = s_ctx(self, n, inst);
        char err[KILN_PLAN_ERR_MAX + 64];
        if (!ctx) {
            self->oom = true;
            kiln_error_set("out of memory");
            return -1;
        }
        int rc = s_call_start(self, job, ctx, err, sizeof err);
        json_decref(ctx);
        if (rc != 0) {
            s_inst_end(self, job, KILN_JOB_FAILURE, err);
            return 0;
        }
        inst = &self->inst[job]; /* s_call_start may have moved the array */
    }
    inst->state = KILN_JOB_RUNNING;
    return 0;
}

int kiln_rungraph_stop_call(kiln_rungraph_t *self, size_t job)
{
    assert(job < self->n_inst);
    s_inst_t *caller = &self->inst[job];
    if (caller->state != KILN_JOB_RUNNING || caller->scope == S_NONE) {
        kiln_error_set("job %s is not a running call", caller->plan->id);
        return KILN_EINVAL;
    }
    caller->stopping = true;
    const s_scope_t *sc = &self->scopes[caller->scope];
    for (size_t node = sc->first; node < sc->first + sc->n; node++) {
        s_node_t *n = &self->nodes[node];
        if (n->phase == S_DONE)
            continue;
        if (n->phase == S_WAITING) {
            s_node_end(self, node, KILN_JOB_CANCELLED, NULL);
            continue;
        }
        for (size_t i = 0; i < n->n_inst; i++) {
            size_t j = n->inst[i];
            s_inst_t *inst = &self->inst[j];
            if (kiln_job_state_is_final(inst->state) || inst->stopping)
                continue;
            if (inst->state == KILN_JOB_RUNNING && inst->scope != S_NONE) {
                kiln_rungraph_stop_call(self, j); /* a nested call */
            } else if (inst->state == KILN_JOB_RUNNING) {
                inst->stopping = true;
                s_change(self, KILN_RG_STOP, j);
            } else {
                s_inst_end(self, j, KILN_JOB_CANCELLED, NULL);
            }
        }
        s_dirty(self, node);
    }
    return 0;
}

int kiln_rungraph_requeue(kiln_rungraph_t *self, size_t job)
{
    assert(job < self->n_inst);
    if (self->inst[job].state != KILN_JOB_RUNNING) {
        kiln_error_set("job %s is %s, not running", self->inst[job].plan->id,
                       kiln_job_state_name(self->inst[job].state));
        return KILN_EINVAL;
    }
    self->inst[job].state = KILN_JOB_READY;
    return 0;
}

/* fail-fast: a failed matrix combination cancels its siblings that have
 * not finished, as GitHub does by default. */
static void s_fail_fast(kiln_rungraph_t *self, size_t job)
{
    const s_node_t *n = &self->nodes[self->inst[job].node];
    if (!n->has_matrix || !n->fail_fast)
        return;
    for (size_t i = 0; i < n->n_inst; i++) {
        size_t j = n->inst[i];
        kiln_job_state_t st = self->inst[j].state;
        if (j == job || kiln_job_state_is_final(st))
            continue;
        if (st == KILN_JOB_RUNNING) {
            if (!self->inst[j].stopping)
                s_change(self, KILN_RG_STOP, j);
            self->inst[j].stopping = true;
        } else {
            s_inst_end(self, j, KILN_JOB_CANCELLED, NULL);
        }
    }
}

int kiln_rungraph_finish(kiln_rungraph_t *self, size_t job, kiln_job_state_t state,
                         const json_t *outputs, bool quiet)
{
    assert(job < self->n_inst);
    s_inst_t *inst = &self->inst[job];
    if (!kiln_job_state_is_final(state) ||
        (inst->state != KILN_JOB_READY && inst->state != KILN_JOB_RUNNING &&
         !(quiet && inst->state == KILN_JOB_PENDING))) {
        kiln_error_set("job %s: %s -> %s is not a transition", inst->plan->id,
                       kiln_job_state_name(inst->state), kiln_job_state_name(state));
        return KILN_EINVAL;
    }
    inst->state = state;
    json_decref(inst->outputs);
    inst->outputs = outputs ? json_deep_copy(outputs) : NULL;
    if (!quiet && kiln_rules_failed(state, inst->plan->continue_on_error))
        s_fail_fast(self, job);
    s_dirty(self, inst->node);
    return 0;
}

/* On a cancel, a job whose if: calls a status function is asked again
 * (with cancelled() true): `if: always()` keeps running, as on GitHub. */
static bool s_keeps_on_cancel(kiln_rungraph_t *self, size_t node)
{
    const s_node_t *n = &self->nodes[node];
    if (!n->decides)
        return false;
    char err[KILN_PLAN_ERR_MAX];
    bool ok = false;
    json_t *ctx = s_ctx(self, n, NULL);
    kiln_expr_env_t env = {ctx, KILN_EXPR_CANCELLED, NULL, NULL};
    if (!ctx || kiln_expr_condition(n->spec->if_expr, &env, &ok, err, sizeof err) != 0)
        ok = false;
    json_decref(ctx);
    return ok;
}

void kiln_rungraph_cancel(kiln_rungraph_t *self)
{
    if (self->cancelled)
        return;
    self->cancelled = true;
    unsigned char *keep = calloc(self->n_nodes ? self->n_nodes : 1, 1); /* 0 ?, 1 no, 2 yes */
    for (size_t j = 0; j < self->n_inst; j++) {
        s_inst_t *inst = &self->inst[j];
        const s_node_t *n = &self->nodes[inst->node];
        if (kiln_job_state_is_final(inst->state))
            continue;
        if (n->phase == S_WAITING && n->decides)
            continue; /* decided when its needs are done */
        if (keep && !keep[inst->node])
            keep[inst->node] = s_keeps_on_cancel(self, inst->node) ? 2 : 1;
        if (keep && keep[inst->node] == 2)
            continue;
        if (inst->state == KILN_JOB_RUNNING) {
            if (inst->scope == S_NONE && !inst->stopping)
                s_change(self, KILN_RG_STOP, j);
            inst->stopping = true;
        } else {
            s_inst_end(self, j, KILN_JOB_CANCELLED, NULL);
        }
    }
    free(keep);
    for (size_t i = 0; i < self->n_nodes; i++)
        s_dirty(self, i);
}

bool kiln_rungraph_stopping(const kiln_rungraph_t *self, size_t job)
{
    return self->inst[job].stopping;
}

/* ------------------------------------------------------------- queries */

bool kiln_rungraph_cancelled(const kiln_rungraph_t *self)
{
    return self->cancelled;
}

bool kiln_rungraph_done(const kiln_rungraph_t *self)
{
    return self->n_dirty == 0 && self->scopes[0].n_done == self->scopes[0].n;
}

const char *kiln_rungraph_conclusion(const kiln_rungraph_t *self)
{
    kiln_result_t r = {0};
    const s_scope_t *sc = &self->scopes[0];
    for (size_t i = sc->first; i < sc->first + sc->n; i++)
        kiln_result_add(&r, self->nodes[i].result, false);
    /* Nodes fold their jobs to GitHub's four results; whether anything but
     * infrastructure failed is read off the jobs themselves. */
    r.failed_build = false;
    for (size_t j = 0; r.failed && j < self->n_inst && !r.failed_build; j++) {
        const s_inst_t *inst = &self->inst[j];
        /* A call that failed by itself (its with:, its outputs) counts; one
         * whose called workflow failed is decided by that workflow's jobs. */
        bool by_callee = self->nodes[inst->node].spec->callee && inst->scope != S_NONE &&
                         !inst->message;
        r.failed_build = !by_callee &&
                         kiln_rules_failed(inst->state, inst->plan->continue_on_error) &&
                         inst->state != KILN_JOB_INFRA_ERROR;
    }
    return kiln_rules_conclusion(&r, self->cancelled);
}

size_t kiln_rungraph_size(const kiln_rungraph_t *self)
{
    return self->n_inst;
}

const kiln_plan_job_t *kiln_rungraph_job(const kiln_rungraph_t *self, size_t job)
{
    return self->inst[job].plan;
}

kiln_job_state_t kiln_rungraph_state(const kiln_rungraph_t *self, size_t job)
{
    return self->inst[job].state;
}

const kiln_job_t *kiln_rungraph_spec(const kiln_rungraph_t *self, size_t job)
{
    return self->nodes[self->inst[job].node].spec;
}

const kiln_workflow_t *kiln_rungraph_workflow(const kiln_rungraph_t *self, size_t job)
{
    return self->nodes[self->inst[job].node].wf;
}

bool kiln_rungraph_is_call(const kiln_rungraph_t *self, size_t job)
{
    return self->nodes[self->inst[job].node].spec->callee != NULL;
}

const char *kiln_rungraph_message(const kiln_rungraph_t *self, size_t job)
{
    return self->inst[job].message;
}

const json_t *kiln_rungraph_outputs(const kiln_rungraph_t *self, size_t job)
{
    return self->inst[job].outputs;
}

size_t kiln_rungraph_needs(const kiln_rungraph_t *self, size_t job, const char **out,
                           size_t max)
{
    const s_node_t *n = &self->nodes[self->inst[job].node];
    size_t k = 0;
    for (; k < n->spec->n_needs && k < max; k++)
        out[k] = n->spec->needs[k];
    return k;
}

size_t kiln_rungraph_dependents(const kiln_rungraph_t *self, size_t job, size_t *out,
                                size_t max)
{
    const s_node_t *n = &self->nodes[self->inst[job].node];
    size_t count = 0;
    for (size_t d = 0; d < n->n_deps; d++) {
        const s_node_t *dep = &self->nodes[n->deps[d]];
        for (size_t i = 0; i < dep->n_inst && count < max; i++)
            out[count++] = dep->inst[i];
    }
    return count;
}
