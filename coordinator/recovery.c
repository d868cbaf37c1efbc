/* recovery.c: the active runs rebuilt when the coordinator starts.
 *
 * Every run SQLite holds as running is created again the one way runs are
 * created (runs.c), from its stored workflow, files and inputs, and its
 * graph is replayed: as the graph makes its jobs and they become ready,
 * each is brought to what the history and Redis recorded of it (a final
 * state in either wins, since SQLite is written after Redis; a lease in
 * Redis becomes an orphan lease that its worker re-adopts when it says
 * hello again, or that expires after the lease; anything else is queued
 * again). Matrices computed from needs come out the same, from the outputs
 * the history kept.
 */
#include "coordinator/coord.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/error.h"
#include "common/log.h"

typedef struct {
    int64_t id;
    char *file;
    char *yaml;
    size_t len;
    int64_t created_ms;
    char *inputs;
    char *actions;
    char *matrices;
    char *source;
    char event[32];
    char actor[128];
} s_saved_run_t;

typedef struct {
    s_saved_run_t *items;
    size_t n;
} s_saved_t;

static int s_collect_run(void *ctx, const kiln_history_active_t *row)
{
    s_saved_t *saved = ctx;
    if (saved->n >= KILN_SERVER_MAX_RUNS)
        return 0;
    s_saved_run_t *r = &saved->items[saved->n];
    r->file = strdup(row->file);
    r->yaml = malloc(row->yaml_len + 1);
    if (!r->file || !r->yaml) {
        free(r->file);
        free(r->yaml);
        kiln_error_set("recovery: out of memory");
        return -1;
    }
    memcpy(r->yaml, row->yaml, row->yaml_len);
    r->yaml[row->yaml_len] = '\0';
    r->len = row->yaml_len;
    r->id = row->run_id;
    r->created_ms = row->created_ms;
    r->inputs = row->inputs ? strdup(row->inputs) : NULL;
    r->actions = row->actions ? strdup(row->actions) : NULL;
    r->matrices = row->matrices ? strdup(row->matrices) : NULL;
    r->source = row->source ? strdup(row->source) : NULL;
    /* Runs recorded before the event was: as they were planned then. */
    snprintf(r->event, sizeof r->event, "%s",
             row->event ? row->event : row->inputs && strcmp(row->inputs, "{}") != 0 ? "workflow_dispatch" : "push");
    snprintf(r->actor, sizeof r->actor, "%s", row->actor ? row->actor : "");
    saved->n++;
    return 0;
}

void kiln_recovery_ready(kiln_server_t *self, kiln_crun_t *run, kiln_cjob_t *job)
{
    const char *id = kiln_runs_plan(job)->id;
    kiln_history_job_row_t hist;
    kiln_queue_job_t red;
    kiln_job_state_t final = KILN_JOB_PENDING, st;
    int64_t now = kiln_clock_wall_ms();
    if (kiln_history_job_get(self->history, run->id, id, &hist) != 0)
        memset(&hist, 0, sizeof hist);
    if (kiln_queue_get(self->queue, job->key, &red) != 0)
        memset(&red, 0, sizeof red);
    job->attempt = hist.attempt > red.attempt ? hist.attempt : red.attempt;
    job->token = hist.token > red.token ? hist.token : red.token;
    job->started_ms = hist.started_ms;
    kiln_runs_set_worker_name(job, red.worker[0] ? red.worker : hist.worker);
    if (kiln_job_state_parse(hist.state, &st) == 0 && kiln_job_state_is_final(st)) {
        final = st;
    } else if (strcmp(red.state, "done") == 0) {
        if (kiln_job_state_parse(red.result, &final) != 0 || !kiln_job_state_is_final(final))
            final = KILN_JOB_FAILURE;
        int hrc = kiln_history_attempt_finish(self->history, run->id, id, job->attempt,
                                              kiln_job_state_name(final), NULL, now);
        if (hrc == 0)
            hrc = kiln_history_job_set_state(self->history, run->id, id,
                                             kiln_job_state_name(final), 0, NULL, 0, now);
        if (hrc != 0)
            kiln_log_error("recovery: %s: %s", job->key, kiln_error_last());
    }
    if (final != KILN_JOB_PENDING) {
        const json_t *outs = json_object_get(run->replay_outputs, id);
        kiln_rungraph_finish(run->graph, job->idx, final, outs, true);
        return;
    }
    if (strcmp(red.state, "leased") == 0) {
        kiln_rungraph_start(run->graph, job->idx);
        job->worker = NULL;
        job->orphan_deadline = kiln_clock_mono_ms() + self->cfg.lease_ms;
        if (hist.attempt < red.attempt) {
            /* Leased in Redis, not yet recorded: the crash fell between. */
            /* Its worker's key is learnt when it reconnects; not before. */
            int hrc = kiln_history_attempt_start(self->history, run->id, id, red.attempt,
                                                 red.token, red.worker, NULL, now);
            if (hrc == 0)
                hrc = kiln_history_job_set_state(self->history, run->id, id, "running",
                                                 red.attempt, red.worker, now, 0);
            if (hrc != 0)
                kiln_log_error("recovery: %s: %s", job->key, kiln_error_last());
        }
        kiln_log_info("job %s: lease of attempt %u (token %llu) held for %s", job->key,
                      job->attempt, (unsigned long long)job->token, job->worker_name);
        return;
    }
    if (run->held)
        return;
    const kiln_plan_job_t *plan = kiln_runs_plan(job);
    if (plan->group && !kiln_concurrency_admit_job(self, job))
        return;
    kiln_runs_queue(self, job);
}

static void s_free_saved(s_saved_t *saved)
{
    for (size_t r = 0; r < saved->n; r++) {
        free(saved->items[r].file);
        free(saved->items[r].yaml);
        free(saved->items[r].inputs);
        free(saved->items[r].actions);
        free(saved->items[r].matrices);
        free(saved->items[r].source);
    }
    free(saved->items);
}

/* One saved run back in the table; a run that no longer parses is marked
 * failed (its workflow was accepted by an older coordinator). */
static int s_recover_run(kiln_server_t *self, s_saved_run_t *sv)
{
    kiln_diags_t diags;
    kiln_model_t *model = NULL;
    kiln_crun_t *run = NULL;
    kiln_diags_init(&diags, sv->file);
    json_t *files = sv->actions ? json_loads(sv->actions, 0, NULL) : json_object();
    json_t *inputs = sv->inputs ? json_loads(sv->inputs, 0, NULL) : json_object();
    json_t *source = sv->source ? json_loads(sv->source, 0, NULL) : NULL;
    int rc = kiln_models_parse(self->models, sv->file, sv->yaml, sv->len, files, &diags, &model);
    kiln_diags_free(&diags);
    if (rc == 0)
        rc = kiln_runs_create(self, &run, &model, sv->file, inputs, sv->event, sv->actor, source,
                              sv->id, sv->created_ms);
    json_decref(source);
    json_decref(files);
    json_decref(inputs);
    kiln_model_release(&model);
    if (rc == -1)
        return -1;
    if (rc != 0) {
        kiln_log_error("recovery: run %lld no longer parses (%s); marked failed",
                       (long long)sv->id, kiln_error_last());
        if (kiln_history_run_set_state(self->history, sv->id, "failure", kiln_clock_wall_ms()) != 0)
            kiln_log_error("recovery: %s", kiln_error_last());
        return 0;
    }
    if (kiln_history_run_outputs(self->history, run->id, &run->replay_outputs) != 0)
        kiln_log_warn("recovery: run %lld: no outputs: %s", (long long)run->id,
                      kiln_error_last());
    for (size_t k = 0; run->group[0] && k < self->n_runs; k++)
        if (strcmp(self->runs[k]->group, run->group) == 0)
            run->held = true;
    run->started = !run->held;
    kiln_runs_add(self, run);
    self->stats.runs_recovered++;
    run->replaying = true;
    if (kiln_history_begin(self->history) != 0)
        kiln_log_error("recovery: run %lld: %s", (long long)run->id, kiln_error_last());
    kiln_runs_advance(self, run);
    run->replaying = false;
    if (kiln_history_commit(self->history) != 0)
        kiln_log_error("recovery: run %lld: %s", (long long)run->id, kiln_error_last());
    json_decref(run->replay_outputs);
    run->replay_outputs = NULL;
    kiln_log_info("recovered run %lld (%s, %zu jobs)", (long long)run->id, run->wf->name,
                  kiln_rungraph_size(run->graph));
    return 0;
}

int kiln_recovery_run(kiln_server_t *self)
{
    s_saved_t saved = {calloc(KILN_SERVER_MAX_RUNS, sizeof(s_saved_run_t)), 0};
    int rc = -1;
    if (!saved.items) {
        kiln_error_set("recovery: out of memory");
        return -1;
    }
    if (kiln_history_active_runs(self->history, s_collect_run, &saved) != 0)
        goto cleanup;
    for (size_t r = 0; r < saved.n; r++)
        if (s_recover_run(self, &saved.items[r]) != 0) {
            kiln_error_set("recovery: out of memory");
            goto cleanup;
        }
    kiln_runs_sweep(self);
    rc = 0;
cleanup:
    s_free_saved(&saved);
    return rc;
}
