/* assign.c: a job's assignment (JobAssign): what a worker needs to run it.
 *
 * The job's own fields come from its plan (evaluated when it became ready:
 * env, timeout); its steps come from the model as written, templates
 * included, since a step's expressions see what only the worker knows
 * (runner, env, steps.<id>); the contexts document comes from the run's
 * graph (lang/contexts.h). Acknowledgements waiting for this worker ride
 * along.
 */
#include "coordinator/coord.h"

#include <stdlib.h>
#include <string.h>

#include "common/error.h"

static void s_kv_fill(Kiln__KeyValue *kv, Kiln__KeyValue **ptrs, size_t *n, const kiln_env_t *env,
                      size_t max)
{
    for (size_t i = 0; i < env->n && *n < max; i++) {
        kiln__key_value__init(&kv[*n]);
        kv[*n].key = env->items[i].key;
        kv[*n].value = env->items[i].value;
        ptrs[*n] = &kv[*n];
        (*n)++;
    }
}

/* Builds and sends the JobAssign for the job's current attempt. */
int kiln_assign_send(kiln_server_t *self, kiln_cjob_t *job, kiln_cworker_t *w)
{
    const kiln_workflow_t *wf = kiln_rungraph_workflow(job->run->graph, job->idx);
    const kiln_job_t *spec = kiln_runs_spec(job);
    const kiln_plan_job_t *plan = kiln_runs_plan(job);
    Kiln__Envelope env = KILN__ENVELOPE__INIT;
    Kiln__JobAssign a = KILN__JOB_ASSIGN__INIT;
    size_t n_env_max = plan->env.n, n_kv = 0, n_step_kv = 0;
    for (size_t s = 0; s < spec->n_steps; s++)
        n_step_kv += spec->steps[s].env.n;
    Kiln__KeyValue *kv = calloc(n_env_max + n_step_kv + 1, sizeof *kv);
    Kiln__KeyValue **kvp = calloc(n_env_max + n_step_kv + 1, sizeof *kvp);
    Kiln__StepSpec *steps = calloc(spec->n_steps + 1, sizeof *steps);
    Kiln__StepSpec **stepp = calloc(spec->n_steps + 1, sizeof *stepp);
    char *ctx_text = NULL, *outputs_text = NULL, *container_text = NULL, *services_text = NULL;
    int rc = -1;
    if (!kv || !kvp || !steps || !stepp) {
        kiln_error_set("out of memory");
        goto cleanup;
    }
    a.job_key = job->key;
    a.token = job->token;
    a.run_id = (uint64_t)job->run->id;
    a.job_id = plan->id;
    a.job_name = plan->name;
    a.attempt = job->attempt;
    a.workflow_name = wf->name;
    a.timeout_ms = (uint64_t)plan->timeout_ms;
    a.log_limit = self->cfg.log_limit;
    const char *src_url = json_string_value(json_object_get(job->run->source, "url"));
    a.source_url = (char *)(src_url ? src_url : "");
    ctx_text = kiln_rungraph_contexts_text(job->run->graph, job->idx, job->attempt);
    outputs_text = spec->outputs ? json_dumps(spec->outputs, JSON_COMPACT) : NULL;
    if (!ctx_text) {
        rc = KILN_ETOOBIG; /* larger than a job may be given (or no memory: the message says) */
        goto cleanup;
    }
    a.contexts.data = (uint8_t *)ctx_text;
    a.contexts.len = ctx_text ? strlen(ctx_text) : 0;
    a.outputs.data = (uint8_t *)outputs_text;
    a.outputs.len = outputs_text ? strlen(outputs_text) : 0;
    if (spec->container) {
        container_text = json_dumps(spec->container, JSON_COMPACT);
        a.container.data = (uint8_t *)container_text;
        a.container.len = container_text ? strlen(container_text) : 0;
    }
    if (spec->services && json_object_size(spec->services)) {
        services_text = json_dumps(spec->services, JSON_COMPACT);
        a.services.data = (uint8_t *)services_text;
        a.services.len = services_text ? strlen(services_text) : 0;
    }
    /* The workflow's env and the job's, evaluated when the job became
     * ready (the job's values win, as on GitHub). */
    s_kv_fill(kv, kvp, &n_kv, &plan->env, n_env_max);
    a.env = kvp;
    a.n_env = n_kv;
    size_t used = n_kv;
    for (size_t s = 0; s < spec->n_steps; s++) {
        const kiln_step_t *st = &spec->steps[s];
        Kiln__StepSpec *ss = &steps[s];
        kiln__step_spec__init(ss);
        ss->name = st->name ? st->name : (char *)"";
        ss->id = st->id ? st->id : (char *)"";
        ss->run = st->run ? st->run : (char *)"";
        ss->shell = st->shell ? st->shell : spec->shell ? spec->shell : (char *)"";
        ss->working_directory = st->working_directory   ? st->working_directory
                                : spec->working_directory ? spec->working_directory
                                                          : (char *)"";
        if (json_is_number(st->timeout)) {
            int64_t ms = (int64_t)(json_number_value(st->timeout) * 60000.0 + 0.5);
            ss->timeout_ms = (uint64_t)(ms > 0 ? ms : 1);
        } else if (json_is_string(st->timeout)) {
            ss->timeout_expr = (char *)json_string_value(st->timeout);
        }
        if (json_is_string(st->continue_on_error))
            ss->continue_on_error_expr = (char *)json_string_value(st->continue_on_error);
        else
            ss->continue_on_error = json_is_true(st->continue_on_error);
        ss->env_expr = st->env_expr ? st->env_expr : (char *)"";
        ss->uses = st->uses && !st->builtin ? st->uses : (char *)"";
        ss->name_derived = st->name_derived;
        ss->if_expr = st->if_expr ? st->if_expr : (char *)"";
        ss->builtin = st->builtin ? (char *)st->builtin : (char *)"";
        ss->action_path = st->action_path ? st->action_path : (char *)"";
        if (st->with) {
            char *t = json_dumps(st->with, JSON_COMPACT);
            ss->with.data = (uint8_t *)t;
            ss->with.len = t ? strlen(t) : 0;
        }
        if (st->action_inputs) {
            char *t = json_dumps(st->action_inputs, JSON_COMPACT);
            ss->action_inputs.data = (uint8_t *)t;
            ss->action_inputs.len = t ? strlen(t) : 0;
        }
        if (st->composite_ends) {
            char *t = json_dumps(st->composite_ends, JSON_COMPACT);
            ss->composite_ends.data = (uint8_t *)t;
            ss->composite_ends.len = t ? strlen(t) : 0;
        }
        if (st->js_action) {
            char *t = json_dumps(st->js_action, JSON_COMPACT);
            ss->js_action.data = (uint8_t *)t;
            ss->js_action.len = t ? strlen(t) : 0;
        }
        if (st->composite_begins) {
            char *t = json_dumps(st->composite_begins, JSON_COMPACT);
            ss->composite_begins.data = (uint8_t *)t;
            ss->composite_begins.len = t ? strlen(t) : 0;
        }
        size_t first = used;
        s_kv_fill(kv, kvp, &used, &st->env, n_env_max + n_step_kv);
        ss->env = kvp + first;
        ss->n_env = used - first;
        stepp[s] = ss;
    }
    a.steps = stepp;
    a.n_steps = spec->n_steps;
    /* The worker's acknowledgements waiting in this batch go along. */
    Kiln__ResultAck ack_v[KILN_ACKS_PER_ASSIGN], *ack_p[KILN_ACKS_PER_ASSIGN];
    while (w->ack_head >= 0 && a.n_acks < KILN_ACKS_PER_ASSIGN) {
        const kiln_pending_ack_t *pa = &self->acks[w->ack_head];
        Kiln__ResultAck *ra = &ack_v[a.n_acks];
        kiln__result_ack__init(ra);
        ra->job_key = (char *)pa->job_key;
        ra->token = pa->token;
        ack_p[a.n_acks++] = ra;
        w->ack_head = self->ack_next[w->ack_head];
    }
    a.acks = ack_p;
    env.body_case = KILN__ENVELOPE__BODY_ASSIGN;
    env.assign = &a;
    rc = kiln_server_send(self, w->identity, w->id_len, &env);
cleanup:
    for (size_t s = 0; steps && s < spec->n_steps; s++) {
        free(steps[s].action_inputs.data);
        free(steps[s].composite_ends.data);
        free(steps[s].composite_begins.data);
        free(steps[s].js_action.data);
        free(steps[s].with.data);
    }
    free(kv);
    free(kvp);
    free(steps);
    free(stepp);
    free(ctx_text);
    free(outputs_text);
    free(container_text);
    free(services_text);
    return rc;
}
