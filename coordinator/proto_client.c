/* proto_client.c: client requests (kiln submit, status, logs, cancel,
 * workers, stats, drain, watch).
 *
 * A client sees committed state: the burst of worker messages before its
 * request is committed first (proto_worker.c), and its own request commits
 * before it is answered.
 */
#include "coordinator/coord.h"
#include "coordinator/source.h"
#include "lang/parse.h"
#include "lang/trigger.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/buf.h"
#include "common/error.h"
#include "common/log.h"

/* Answers a request; json (may be NULL) goes compact, or indented with
 * its "state" in Reply.state when the client asked for it pretty. */
static void s_reply_as(kiln_server_t *self, const kiln_transport_msg_t *msg, uint64_t request_id,
                       int code, const char *error, int64_t run_id, json_t *json, bool pretty)
{
    Kiln__Envelope env = KILN__ENVELOPE__INIT;
    Kiln__Reply reply = KILN__REPLY__INIT;
    char *text = NULL;
    reply.request_id = request_id;
    reply.code = code;
    reply.error = (char *)(error ? error : "");
    reply.run_id = (uint64_t)(run_id > 0 ? run_id : 0);
    if (json && pretty) {
        const char *state = json_string_value(json_object_get(json, "state"));
        reply.state = (char *)(state ? state : "");
    }
    if (json) {
        text = json_dumps(json, pretty ? JSON_INDENT(2) : JSON_COMPACT);
        reply.json.data = (uint8_t *)text;
        reply.json.len = text ? strlen(text) : 0;
    }
    env.body_case = KILN__ENVELOPE__BODY_REPLY;
    env.reply = &reply;
    kiln_server_send(self, msg->identity, msg->id_len, &env);
    free(text);
}

void kiln_proto_client_reply(kiln_server_t *self, const kiln_transport_msg_t *msg, uint64_t request_id,
                    int code, const char *error, int64_t run_id, json_t *json)
{
    s_reply_as(self, msg, request_id, code, error, run_id, json, false);
}

/* An event name as GitHub spells them: lower case letters and '_'. */
static bool s_event_name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > 31)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((name[i] >= 'a' && name[i] <= 'z') || name[i] == '_'))
            return false;
    return true;
}

/* Whether the workflow's on: lists the event (a workflow without on: is
 * taken to list anything: it has nothing to say). */
static bool s_event_listed(const kiln_workflow_t *wf, const char *event)
{
    size_t i;
    json_t *e;
    if (!wf->events)
        return true;
    json_array_foreach(wf->events, i, e) {
        if (strcmp(json_string_value(e), event) == 0)
            return true;
    }
    return false;
}

/* s_submit_one's answer for a workflow whose on: does not take the event. */
#define S_SKIPPED 1

/* A submission: parsed and checked again (the coordinator trusts no
 * client), recorded (the run, its jobs, the audit row) in one transaction,
 * and answered once that has committed. */
static int s_submit_one(kiln_server_t *self, const kiln_transport_msg_t *msg,
                        const Kiln__Request *req, const char *client, const char *file,
                        const char *yaml, size_t yaml_len, json_t *files, const json_t *source,
                        bool by_event, const json_t *changed, int64_t *run_out,
                        char **text_out)
{
    int code = 0;
    kiln_diags_t diags;
    kiln_model_t *model = NULL;
    const kiln_workflow_t *wf = NULL;
    kiln_crun_t *run = NULL;
    char *text = NULL;
    json_t *given = NULL, *typed = NULL, *none = NULL;
    int64_t run_id = 0;
    *run_out = 0;
    *text_out = NULL;
    kiln_diags_init(&diags, file);
    if (yaml_len > KILN_WF_MAX_BYTES) {
        char err[KILN_JOB_KEY_MAX + 128];
        snprintf(err, sizeof err, "%s: workflow is %zu bytes, over the limit of %d", file,
                 yaml_len, KILN_WF_MAX_BYTES);
        code = KILN_EINVAL;
        *text_out = strdup(err);
        goto cleanup;
    }
    int prc = kiln_models_parse(self->models, file, yaml, yaml_len, files, &diags, &model);
    if (prc != 0) {
        text = prc == KILN_EINVAL ? kiln_diags_format(&diags) : NULL;
        kiln_log_info("refused a workflow from %s: %s", client, kiln_error_last());
        code = prc == KILN_EINVAL ? KILN_EINVAL : -1;
        *text_out = strdup(text ? text : kiln_error_last());
        goto cleanup;
    }
    wf = kiln_model_workflow(model);
    /* A repository's workflows found by the event start only where on:
     * takes it (a named one runs regardless, with a note below). */
    const char *ev = req->event[0] ? req->event : req->n_inputs ? "workflow_dispatch" : "push";
    char filtered[600] = "";
    if (source && wf->events) {
        kiln_trigger_t trig = {
            .event = ev,
            .ref = json_string_value(json_object_get(source, "ref")),
            .base_ref = json_string_value(json_object_get(source, "base_ref")),
            .action = json_string_value(json_object_get(source, "action")),
            .paths = changed,
        };
        char why[512];
        if (!kiln_trigger_match(wf, &trig, why, sizeof why)) {
            if (by_event) {
                code = S_SKIPPED;
                char note[KILN_ERROR_MAX];
                snprintf(note, sizeof note, "%s: not started: %s", file, why);
                *text_out = strdup(note);
                goto cleanup;
            }
            snprintf(filtered, sizeof filtered,
                     "%s: warning: %s; the run goes ahead because the workflow was named\n",
                     file, why);
        }
    } else if (by_event && !wf->events) {
        code = S_SKIPPED;
        char note[KILN_ERROR_MAX];
        snprintf(note, sizeof note, "%s: not started: it has no on:", file);
        *text_out = strdup(note);
        goto cleanup;
    }
    if (self->n_runs >= KILN_SERVER_MAX_RUNS) {
        code = KILN_EAGAIN;
        *text_out = strdup("too many active runs; try later");
        goto cleanup;
    }
    given = json_object();
    none = json_object();
    for (size_t i = 0; i < req->n_inputs; i++)
        json_object_set_new(given, req->inputs[i]->key, json_string(req->inputs[i]->value));
    if (kiln_workflow_inputs(wf->inputs ? wf->inputs : none, "on.workflow_dispatch.inputs", given,
                             &typed) != 0) {
        char why[KILN_ERROR_MAX + 64];
        snprintf(why, sizeof why, "%s: %s", file, kiln_error_last());
        code = KILN_EINVAL;
        *text_out = strdup(why);
        goto cleanup;
    }
    if (req->event[0] && !s_event_name_ok(req->event)) {
        char why[KILN_ERROR_MAX];
        snprintf(why, sizeof why, "%s: --event '%.64s' is not an event name (push, pull_request, "
                 "workflow_dispatch, schedule, ...: lower case letters and _)", file, req->event);
        code = KILN_EINVAL;
        *text_out = strdup(why);
        goto cleanup;
    }
    int64_t created = kiln_clock_wall_ms();
    /* The run's row, with what a restart needs to plan it, is on disk
     * before anything acts on it: its number is handed out only then, and a
     * refused submission (the disk is full) leaves no trace. */
    if (kiln_history_begin(self->history) != 0) {
        char why[KILN_ERROR_MAX];
        snprintf(why, sizeof why, "%s", kiln_error_last());
        code = KILN_EINFRA;
        *text_out = strdup(why);
        goto cleanup;
    }
    /* The event the client names; else a run given inputs is a
     * workflow_dispatch, as on GitHub, and any other submission a push. */
    const char *event = req->event[0] ? req->event : req->n_inputs ? "workflow_dispatch" : "push";
    int wrc = kiln_history_run_create(self->history, wf->name, file, yaml, yaml_len, created,
                                      event, client, &run_id);
    if (wrc == 0)
        wrc = kiln_history_audit(self->history, "run.submit", client, self->peer_key, file,
                                 created);
    if (wrc == 0 && json_object_size(typed))
        wrc = kiln_history_run_inputs(self->history, run_id, typed);
    if (wrc == 0 && json_object_size(files))
        wrc = kiln_history_run_actions(self->history, run_id, files);
    if (wrc == 0 && source)
        wrc = kiln_history_run_source(self->history, run_id, source);
    char hwhy[KILN_ERROR_MAX + 64];
    if (wrc != 0)
        snprintf(hwhy, sizeof hwhy, "%s", kiln_error_last());
    /* All of it or none: a write that failed is a refusal, and what was
     * written before it goes too. */
    if (wrc != 0) {
        kiln_history_abort(self->history);
    } else if (kiln_history_commit_whole(self->history) != 0) {
        wrc = -1;
        snprintf(hwhy, sizeof hwhy, "%s", kiln_error_last());
    }
    if (wrc != 0) {
        char text_why[KILN_ERROR_MAX + 128];
        snprintf(text_why, sizeof text_why, "the run could not be recorded, so it was not accepted: %s", hwhy);
        kiln_log_error("refused a run from %s: %s", client, text_why);
        code = KILN_EINFRA;
        *text_out = strdup(text_why);
        goto cleanup;
    }
    if (kiln_history_begin(self->history) != 0)
        kiln_log_error("history: run %lld: %s", (long long)run_id, kiln_error_last());
    int rc = kiln_runs_create(self, &run, &model, file, typed, event, client, source, run_id,
                              created);
    if (rc != 0) {
        char why[KILN_ERROR_MAX];
        snprintf(why, sizeof why, "%s", kiln_error_last());
        /* Its number is taken: the row says why it never ran. */
        if (kiln_history_run_set_state(self->history, run_id, "failure", created) != 0)
            kiln_log_error("history: %s", kiln_error_last());
        if (kiln_history_commit(self->history) != 0)
            kiln_log_error("history: %s", kiln_error_last());
        code = rc == KILN_EINVAL ? KILN_EINVAL : -1;
        *text_out = strdup(why);
        goto cleanup;
    }
    kiln_runs_add(self, run);
    self->stats.runs_submitted++;
    if (req->follow)
        kiln_watch_add(run, msg, NULL, req->follow_quiet);
    if (kiln_concurrency_admit_run(self, run)) {
        run->held = true;
        kiln_log_info("run %lld waits for its concurrency group '%s'", (long long)run->id,
                      run->group);
    } else {
        run->started = true;
    }
    kiln_runs_advance(self, run);
    /* The run itself is on disk; its jobs' rows may wait for room, and are
     * written once there is some. */
    if (kiln_history_commit(self->history) != 0)
        kiln_log_warn("run %lld: %s", (long long)run_id, kiln_error_last());
    /* Warnings travel back with the accepted run; so does a named event
     * the workflow's on: does not list (it runs: the client named it). */
    text = diags.n ? kiln_diags_format(&diags) : NULL;
    if (filtered[0]) {
        size_t have = text ? strlen(text) : 0;
        char *joined = realloc(text, have + strlen(filtered) + 1);
        if (joined) {
            memcpy(joined + have, filtered, strlen(filtered) + 1);
            text = joined;
        }
    } else if (!s_event_listed(wf, event)) {
        char note[256];
        snprintf(note, sizeof note,
                 "%s: warning: on: does not list '%s'; the run goes ahead because its file was "
                 "submitted by name\n",
                 file, event);
        size_t have = text ? strlen(text) : 0;
        char *joined = realloc(text, have + strlen(note) + 1);
        if (joined) {
            memcpy(joined + have, note, strlen(note) + 1);
            text = joined;
        }
    }
    *text_out = text;
    text = NULL;
    *run_out = run->id;
    kiln_log_info("run %lld accepted from %s: %s, %zu jobs", (long long)run->id, client,
                  run->wf->name, kiln_rungraph_size(run->graph));
    run = NULL;
    kiln_dispatch(self);
cleanup:
    free(text);
    json_decref(given);
    json_decref(typed);
    json_decref(none);
    kiln_model_release(&model);
    kiln_diags_free(&diags);
    return code;
}

/* A client's word on the source of a file it read from a work tree:
 * checked as any peer's input is, then recorded as it is. */
static json_t *s_source_json(const Kiln__Source *src, char *why, size_t cap)
{
    size_t hex = strspn(src->sha, "0123456789abcdef");
    if (!src->url[0] || hex != 40 || src->sha[hex] != '\0') {
        snprintf(why, cap, "source: a url and a 40-digit commit id are needed (got '%.64s')",
                 src->sha);
        return NULL;
    }
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:b}", "url",
                          src->url, "repository", src->repository, "ref", src->ref, "sha",
                          src->sha, "server_url", src->server_url, "before", src->before,
                          "default_branch", src->default_branch, "commit_message",
                          src->commit_message, "commit_time", src->commit_time, "author_name",
                          src->author_name, "author_email", src->author_email, "dirty",
                          src->dirty);
    if (!o)
        snprintf(why, cap, "source: its fields are not UTF-8");
    return o;
}

/* A request waiting for its repository (source.c), with what answering it
 * needs: the peer, and the request itself packed again. */
typedef struct {
    kiln_transport_msg_t msg; /* env NULL */
    uint8_t *req;
    size_t req_len;
    char client[KILN_PEER_NAME_MAX];
    char peer_key[KILN_KEY_Z85_LEN + 1];
} s_pending_t;

void kiln_proto_client_pending_free(void *p)
{
    s_pending_t *pending = p;
    if (pending)
        free(pending->req);
    free(pending);
}

/* The request, packed again, and who asked: what answering it needs once
 * the fetching thread is done. NULL when out of memory. */
static s_pending_t *s_pending_new(kiln_server_t *self, const kiln_transport_msg_t *msg,
                                  const Kiln__Request *req, const char *client)
{
    s_pending_t *pending = calloc(1, sizeof *pending);
    if (!pending)
        return NULL;
    pending->msg = *msg;
    pending->msg.env = NULL;
    snprintf(pending->client, sizeof pending->client, "%s", client);
    snprintf(pending->peer_key, sizeof pending->peer_key, "%s", self->peer_key);
    pending->req_len = kiln__request__get_packed_size(req);
    pending->req = malloc(pending->req_len ? pending->req_len : 1);
    if (!pending->req) {
        free(pending);
        return NULL;
    }
    kiln__request__pack(req, pending->req);
    return pending;
}

/* Hands job (with its pending request) to the fetching thread; both are
 * consumed, and the client answered when they cannot be. */
static int s_ask(kiln_server_t *self, const kiln_transport_msg_t *msg, const Kiln__Request *req,
                 kiln_source_job_t *job, s_pending_t *pending)
{
    job->caller = pending;
    if (kiln_source_ask(self->source, job) == 0)
        return 0;
    kiln_proto_client_reply(self, msg, req->request_id, KILN_EAGAIN, kiln_error_last(), 0, NULL);
    kiln_proto_client_pending_free(pending);
    job->caller = NULL;
    kiln_source_job_free(&job);
    return -1;
}

/* A submitted file whose remote actions the fetching thread resolves
 * first (kiln_proto_client_on_source submits it then). files and source
 * stay the caller's. */
static void s_on_submit_actions(kiln_server_t *self, const kiln_transport_msg_t *msg,
                                const Kiln__Request *req, const char *client, json_t *files,
                                json_t *source)
{
    kiln_source_job_t *job = calloc(1, sizeof *job);
    s_pending_t *pending = self->source ? s_pending_new(self, msg, req, client) : NULL;
    const char *file = req->workflow_file[0] ? req->workflow_file : "workflow.yml";
    if (job) {
        job->yaml = malloc(req->workflow_yaml.len + 1);
        job->yaml_len = req->workflow_yaml.len;
        job->files = json_deep_copy(files);
        job->paths = json_pack("[s]", file);
        job->source = source ? json_incref(source) : NULL;
    }
    if (!job || !pending || !job->yaml || !job->files || !job->paths) {
        kiln_proto_client_reply(self, msg, req->request_id, -1,
                                self->source ? "coordinator out of memory"
                                             : "this coordinator resolves no remote actions",
                                0, NULL);
        kiln_proto_client_pending_free(pending);
        kiln_source_job_free(&job);
        return;
    }
    memcpy(job->yaml, req->workflow_yaml.data, req->workflow_yaml.len);
    job->yaml[job->yaml_len] = '\0';
    s_ask(self, msg, req, job, pending);
}

static void s_on_submit_repo(kiln_server_t *self, const kiln_transport_msg_t *msg,
                             const Kiln__Request *req, const char *client)
{
    kiln_source_job_t *job = calloc(1, sizeof *job);
    s_pending_t *pending = self->source ? s_pending_new(self, msg, req, client) : NULL;
    const Kiln__Source *src = req->source;
    if (!job || !pending) {
        kiln_proto_client_reply(self, msg, req->request_id, -1,
                                self->source ? "coordinator out of memory"
                                             : "this coordinator reads no repositories",
                                0, NULL);
        goto fail;
    }
    if (src->base_ref[0] && strcmp(req->event, "pull_request") != 0 &&
        strcmp(req->event, "pull_request_target") != 0) {
        kiln_proto_client_reply(self, msg, req->request_id, KILN_EINVAL,
                                "--base is for --event pull_request", 0, NULL);
        goto fail;
    }
    job->url = strdup(src->url);
    job->ref = strdup(src->ref[0] ? src->ref : "HEAD");
    job->before = strdup(src->before);
    job->base = strdup(src->base_ref);
    job->action = strdup(src->action);
    job->number = src->number;
    job->workflows = json_array();
    if (!job->url || !job->ref || !job->before || !job->base || !job->action || !job->workflows) {
        kiln_proto_client_reply(self, msg, req->request_id, -1, "coordinator out of memory", 0,
                                NULL);
        goto fail;
    }
    for (size_t i = 0; i < req->n_workflows && i < KILN_SOURCE_FILES_MAX; i++)
        json_array_append_new(job->workflows, json_string(req->workflows[i]));
    if (s_ask(self, msg, req, job, pending) == 0)
        kiln_log_info("%s asks for %s at %s", client, src->url, src->ref[0] ? src->ref : "HEAD");
    return;
fail:
    kiln_proto_client_pending_free(pending);
    kiln_source_job_free(&job);
}

/* A repository fetched: one run per workflow (named, or every one whose
 * on: takes the event), answered together. */
void kiln_proto_client_on_source(kiln_server_t *self, kiln_source_job_t *job)
{
    s_pending_t *pending = job->caller;
    Kiln__Request *req = kiln__request__unpack(NULL, pending->req_len, pending->req);
    kiln_buf_t notes = {.max = 64 * 1024};
    uint64_t ids[KILN_SOURCE_FILES_MAX];
    char *names[KILN_SOURCE_FILES_MAX];
    size_t n_runs = 0;
    int worst = 0;
    if (!req) {
        kiln_log_error("source: a pending request does not decode");
        goto cleanup;
    }
    snprintf(self->peer_key, sizeof self->peer_key, "%s", pending->peer_key);
    if (job->rc != 0) {
        char why[sizeof job->error + 64];
        snprintf(why, sizeof why, "%s", job->error);
        kiln_log_info("refused a run from %s: %s", pending->client, why);
        kiln_proto_client_reply(self, &pending->msg, req->request_id,
                                job->rc == KILN_EINVAL ? KILN_EINVAL : KILN_EINFRA, why, 0, NULL);
        goto cleanup;
    }
    if (!job->url) {
        /* A submitted file, its remote actions resolved: answered as a
         * file's submission is. */
        int64_t run_id = 0;
        char *note = NULL;
        const char *path = json_string_value(json_array_get(job->paths, 0));
        int code = s_submit_one(self, &pending->msg, req, pending->client, path, job->yaml,
                                job->yaml_len, job->files, job->source, false, NULL, &run_id,
                                &note);
        kiln_proto_client_reply(self, &pending->msg, req->request_id, code, note, run_id, NULL);
        free(note);
        goto cleanup;
    }
    bool by_event = req->n_workflows == 0;
    size_t i;
    json_t *p;
    json_array_foreach(job->paths, i, p) {
        const char *path = json_string_value(p);
        json_t *text = json_object_get(job->files, path);
        int64_t run_id = 0;
        char *note = NULL;
        int code = s_submit_one(self, &pending->msg, req, pending->client, path,
                                json_string_value(text), json_string_length(text), job->files,
                                job->source, by_event, job->changed, &run_id, &note);
        if (code == 0 && run_id > 0) {
            ids[n_runs] = (uint64_t)run_id;
            names[n_runs++] = (char *)path;
        } else if (code != S_SKIPPED && worst == 0) {
            worst = code;
        }
        if (note && note[0]) {
            kiln_buf_str(&notes, note);
            if (note[strlen(note) - 1] != '\n')
                kiln_buf_str(&notes, "\n");
        }
        free(note);
    }
    if (n_runs == 0 && worst == 0) {
        char none[256];
        snprintf(none, sizeof none, "%s at %.12s: no workflow under .github/workflows takes '%s'\n",
                 json_string_value(json_object_get(job->source, "repository")),
                 json_string_value(json_object_get(job->source, "sha")),
                 req->event[0] ? req->event : "push");
        kiln_buf_str(&notes, none);
    }
    Kiln__Envelope env = KILN__ENVELOPE__INIT;
    Kiln__Reply reply = KILN__REPLY__INIT;
    reply.request_id = req->request_id;
    reply.code = n_runs ? 0 : worst;
    reply.error = notes.data ? notes.data : (char *)"";
    reply.run_id = n_runs ? ids[0] : 0;
    reply.run_ids = ids;
    reply.n_run_ids = n_runs;
    reply.run_files = names;
    reply.n_run_files = n_runs;
    env.body_case = KILN__ENVELOPE__BODY_REPLY;
    env.reply = &reply;
    if (kiln_server_send(self, pending->msg.identity, pending->msg.id_len, &env) != 0)
        kiln_log_warn("source: cannot answer %s: %s", pending->client, kiln_error_last());
cleanup:
    free(notes.data);
    if (req)
        kiln__request__free_unpacked(req, NULL);
    kiln_proto_client_pending_free(pending);
    job->caller = NULL;
}

static void s_on_submit(kiln_server_t *self, const kiln_transport_msg_t *msg,
                        const Kiln__Request *req, const char *client)
{
    if (req->source && req->source->url[0] && req->workflow_yaml.len == 0) {
        s_on_submit_repo(self, msg, req, client);
        return;
    }
    const char *file = req->workflow_file[0] ? req->workflow_file : "workflow.yml";
    json_t *files = json_object(), *source = NULL, *remote = json_array();
    char *text = NULL, why[512];
    int64_t run_id = 0;
    for (size_t i = 0; files && i < req->n_actions && i < KILN_WF_MAX_ACTIONS; i++) {
        /* "uses:" entries are the coordinator's own to fill. */
        if (strncmp(req->actions[i]->key, "uses:", 5) != 0)
            json_object_set_new(files, req->actions[i]->key, json_string(req->actions[i]->value));
    }
    if (req->source && req->source->url[0] && !(source = s_source_json(req->source, why, sizeof why))) {
        kiln_proto_client_reply(self, msg, req->request_id, KILN_EINVAL, why, 0, NULL);
        goto cleanup;
    }
    /* Actions of other repositories come from the action sources, on the
     * fetching thread; the run is submitted when they are in. */
    if (remote && req->workflow_yaml.len <= KILN_WF_MAX_BYTES) {
        const char *k;
        json_t *v;
        kiln_workflow_remote_uses((const char *)req->workflow_yaml.data, req->workflow_yaml.len,
                                  remote);
        json_object_foreach(files, k, v) kiln_workflow_remote_uses(
            json_string_value(v), json_string_length(v), remote);
    }
    if (json_array_size(remote)) {
        s_on_submit_actions(self, msg, req, client, files, source);
        goto cleanup;
    }
    int code = s_submit_one(self, msg, req, client, file, (const char *)req->workflow_yaml.data,
                            req->workflow_yaml.len, files, source, false, NULL, &run_id, &text);
    kiln_proto_client_reply(self, msg, req->request_id, code, text, run_id, NULL);
cleanup:
    free(text);
    json_decref(files);
    json_decref(source);
    json_decref(remote);
}

static void s_on_cancel(kiln_server_t *self, const kiln_transport_msg_t *msg,
                        const Kiln__Request *req, const char *client)
{
    kiln_crun_t *run = kiln_runs_find(self, (int64_t)req->run_id);
    if (!run) {
        kiln_proto_client_reply(self, msg, req->request_id, KILN_ENOTFOUND, "no active run with that id", 0,
                NULL);
        return;
    }
    kiln_runs_cancel(self, run, client, self->peer_key, NULL);
    kiln_proto_client_reply(self, msg, req->request_id, 0, NULL, (int64_t)req->run_id, NULL);
}

/* A running run's ready jobs that no connected worker can run, or that
 * wait for a busy worker holding their caches, say why, in the job's
 * "waiting" (the record alone cannot know). The timer marked them
 * (kiln_workers_check_unserved), so a run of many ready jobs costs a pass. */
static void s_add_waiting(kiln_server_t *self, int64_t run_id, json_t *doc)
{
    kiln_crun_t *run = kiln_runs_find(self, run_id);
    json_t *why_of = NULL;
    size_t i;
    json_t *j;
    if (!run)
        return;
    for (size_t k = 0; k < run->n_ready; k++) {
        char why[512];
        if ((run->ready[k]->unserved_epoch &&
             kiln_workers_unserved_why(self, run->ready[k], why, sizeof why)) ||
            (run->ready[k]->hold_until && kiln_clock_mono_ms() < run->ready[k]->hold_until &&
             kiln_affinity_waiting_why(run->ready[k], why, sizeof why))) {
            if (!why_of && !(why_of = json_object()))
                return;
            json_object_set_new(why_of, kiln_runs_plan(run->ready[k])->id, json_string(why));
        }
    }
    if (!why_of)
        return;
    json_array_foreach(json_object_get(doc, "jobs"), i, j) {
        const char *id = json_string_value(json_object_get(j, "id"));
        json_t *why = id ? json_object_get(why_of, id) : NULL;
        if (why)
            json_object_set(j, "waiting", why);
    }
    json_decref(why_of);
}

/* Counters and gauges for operators (kiln stats; the Prometheus endpoint
 * reads the same document). */
static json_t *s_stats_json(kiln_server_t *self)
{
    const kiln_cstats_t *st = &self->stats;
    json_t *depth = json_object();
    unsigned busy = 0, slots = 0;
    for (size_t r = 0; r < self->n_runs; r++) {
        for (size_t i = 0; i < self->runs[r]->n_ready; i++) {
            const kiln_cjob_t *j = self->runs[r]->ready[i];
            const char *key = j->labels[0] ? j->labels : "(any)";
            json_t *n = json_object_get(depth, key);
            json_object_set_new(depth, key, json_integer(n ? json_integer_value(n) + 1 : 1));
        }
    }
    for (size_t i = 0; i < self->n_workers; i++) {
        busy += self->workers[i]->busy;
        slots += self->workers[i]->slots;
    }
    json_t *doc = json_pack(
        "{s:I, s:{s:I, s:I, s:I, s:I}, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I,"
        " s:I, s:I, s:I, s:I, s:o, s:I, s:I, s:b}",
        "dispatches", (json_int_t)st->dispatches, "retries", "worker_lost",
        (json_int_t)st->retries_worker_lost, "worker_drained", (json_int_t)st->retries_worker_drained,
        "infra_error", (json_int_t)st->retries_infra_error, "failure",
        (json_int_t)st->retries_failure, "lease_expiries", (json_int_t)st->lease_expiries,
        "stale_rejected", (json_int_t)st->stale_rejected, "duplicate_results",
        (json_int_t)st->duplicate_results, "garbage_dropped", (json_int_t)st->garbage_dropped,
        "workers_lost", (json_int_t)st->workers_lost, "workers_refused",
        (json_int_t)st->workers_refused, "runs_submitted",
        (json_int_t)st->runs_submitted, "runs_finished", (json_int_t)st->runs_finished,
        "runs_recovered", (json_int_t)st->runs_recovered, "jobs_readopted",
        (json_int_t)st->jobs_readopted, "logs_truncated", (json_int_t)st->logs_truncated,
        "redis_reconnects", (json_int_t)st->redis_reconnects, "workers_connected",
        (json_int_t)self->n_workers, "slots_busy", (json_int_t)busy, "slots_total",
        (json_int_t)slots, "queue_depth", depth, "runs_active", (json_int_t)self->n_runs,
        "workflows_held", (json_int_t)kiln_models_count(self->models), "redis_connected", kiln_queue_connected(self->queue) != 0);
    kiln_history_health_t h;
    kiln_history_health(self->history, &h);
    json_t *hist = json_pack("{s:b, s:s, s:I, s:I, s:I, s:I, s:I, s:I}", "writable", h.writable,
                             "error", h.why, "waiting_writes", (json_int_t)h.waiting,
                             "waiting_bytes", (json_int_t)h.waiting_bytes, "failures",
                             (json_int_t)h.failures, "lost_log_bytes",
                             (json_int_t)h.lost_log_bytes, "down_since_ms",
                             (json_int_t)h.since_ms, "acks_held", (json_int_t)st->acks_held);
    if (doc && hist)
        json_object_set_new(doc, "history", hist);
    else
        json_decref(hist);
    json_t *store = kiln_proto_store_stats(self);
    if (doc && store)
        json_object_set_new(doc, "store", store);
    else
        json_decref(store);
    return doc;
}

static void s_on_drain(kiln_server_t *self, const kiln_transport_msg_t *msg,
                       const Kiln__Request *req, const char *client)
{
    kiln_cworker_t *w = NULL;
    for (size_t i = 0; i < self->n_workers && !w; i++)
        if (strcmp(self->workers[i]->name, req->worker) == 0)
            w = self->workers[i];
    if (!w) {
        kiln_proto_client_reply(self, msg, req->request_id, KILN_ENOTFOUND, "no connected worker by that name", 0,
                NULL);
        return;
    }
    Kiln__Envelope env = KILN__ENVELOPE__INIT;
    Kiln__Drain d = KILN__DRAIN__INIT;
    d.deadline_ms = req->deadline_ms;
    d.reason = (char *)"requested by an operator";
    env.body_case = KILN__ENVELOPE__BODY_DRAIN;
    env.drain = &d;
    if (kiln_server_send(self, w->identity, w->id_len, &env) != 0) {
        kiln_proto_client_reply(self, msg, req->request_id, KILN_EINFRA, "cannot reach the worker", 0, NULL);
        return;
    }
    w->draining = true;
    char detail[200];
    snprintf(detail, sizeof detail, "worker %s", w->name);
    if (kiln_history_audit(self->history, "worker.drain", client, self->peer_key, detail,
                           kiln_clock_wall_ms()) !=
        0)
        kiln_log_error("history: audit: %s", kiln_error_last());
    kiln_log_info("worker %s: drain requested by %s", w->name, client);
    kiln_proto_client_reply(self, msg, req->request_id, 0, NULL, 0, NULL);
}

typedef struct {
    kiln_server_t *self;
    const kiln_transport_msg_t *msg;
    int64_t run_id;
} s_replay_t;

static int s_replay_log(void *ctx, const char *job_id, unsigned attempt, unsigned step,
                        int stream, const void *data, size_t len, int64_t ts_ms)
{
    s_replay_t *r = ctx;
    Kiln__Envelope env = KILN__ENVELOPE__INIT;
    Kiln__RunEvent ev = KILN__RUN_EVENT__INIT;
    ev.run_id = (uint64_t)r->run_id;
    ev.kind = KILN__EVENT_KIND__EVENT_LOG;
    ev.job_id = (char *)job_id;
    ev.attempt = attempt;
    ev.step = step;
    ev.stream = (Kiln__Stream)stream;
    ev.data.data = (uint8_t *)data;
    ev.data.len = len;
    ev.ts_ms = (uint64_t)ts_ms;
    env.body_case = KILN__ENVELOPE__BODY_EVENT;
    env.event = &ev;
    /* A client too slow for its own log replay is cut off, not waited for. */
    return kiln_server_send(r->self, r->msg->identity, r->msg->id_len, &env) != 0 ? 1 : 0;
}

static void s_on_logs(kiln_server_t *self, const kiln_transport_msg_t *msg,
                      const Kiln__Request *req)
{
    json_t *probe = NULL;
    int rc = kiln_history_run_json(self->history, (int64_t)req->run_id, &probe);
    if (rc != 0) {
        kiln_proto_client_reply(self, msg, req->request_id, rc, kiln_error_last(), 0, NULL);
        return;
    }
    /* A job by its id or by its name as kiln status shows it. */
    const char *job = NULL;
    char job_id[KILN_JOB_KEY_MAX] = "";
    if (req->job_id[0]) {
        size_t i;
        json_t *j;
        json_array_foreach(json_object_get(probe, "jobs"), i, j) {
            const char *id = json_string_value(json_object_get(j, "id"));
            const char *name = json_string_value(json_object_get(j, "name"));
            if (id && (strcmp(id, req->job_id) == 0 || (name && strcmp(name, req->job_id) == 0))) {
                snprintf(job_id, sizeof job_id, "%s", id);
                if (strcmp(id, req->job_id) == 0)
                    break;
            }
        }
        if (!job_id[0]) {
            char err[KILN_JOB_KEY_MAX + 64];
            snprintf(err, sizeof err, "run %llu has no job '%s'", (unsigned long long)req->run_id,
                     req->job_id);
            json_decref(probe);
            kiln_proto_client_reply(self, msg, req->request_id, KILN_ENOTFOUND, err, 0, NULL);
            return;
        }
        job = job_id;
    }
    json_decref(probe);
    kiln_proto_client_reply(self, msg, req->request_id, 0, NULL, (int64_t)req->run_id, NULL);
    s_replay_t ctx = {self, msg, (int64_t)req->run_id};
    if (kiln_history_logs_each(self->history, (int64_t)req->run_id, job, s_replay_log, &ctx) != 0)
        return;
    kiln_crun_t *run = kiln_runs_find(self, (int64_t)req->run_id);
    bool job_over = false;
    if (run && job) {
        long idx = kiln_rungraph_find(run->graph, job);
        job_over = idx < 0 || kiln_job_state_is_final(kiln_rungraph_state(run->graph, (size_t)idx));
    }
    if (req->follow && run && !job_over) {
        kiln_watch_add(run, msg, job, false);
        return;
    }
    Kiln__Envelope env = KILN__ENVELOPE__INIT;
    Kiln__RunEvent ev = KILN__RUN_EVENT__INIT;
    ev.run_id = req->run_id;
    ev.kind = KILN__EVENT_KIND__EVENT_END;
    env.body_case = KILN__ENVELOPE__BODY_EVENT;
    env.event = &ev;
    kiln_server_send(self, msg->identity, msg->id_len, &env);
}

void kiln_proto_client_handle(kiln_server_t *self, kiln_transport_msg_t *msg,
                                const char *client)
{
    if (msg->env->body_case != KILN__ENVELOPE__BODY_REQUEST) {
        self->stats.garbage_dropped++;
        kiln_log_warn("client %s (%s) sent a message clients may not send (%d); dropped", client,
                      msg->peer_address, (int)msg->env->body_case);
        return;
    }
    const Kiln__Request *req = msg->env->request;
    json_t *json = NULL;
    int rc;
    switch (req->kind) {
    case KILN__REQUEST_KIND__REQ_PING:
        kiln_proto_client_reply(self, msg, req->request_id, 0, NULL, 0, NULL);
        break;
    case KILN__REQUEST_KIND__REQ_SUBMIT:
        s_on_submit(self, msg, req, client);
        break;
    case KILN__REQUEST_KIND__REQ_STATUS:
        if (req->run_id) {
            rc = kiln_history_run_json(self->history, (int64_t)req->run_id, &json);
            if (rc == 0)
                s_add_waiting(self, (int64_t)req->run_id, json);
        } else
            rc = kiln_history_runs_json(self->history, req->limit ? req->limit : 20, &json);
        s_reply_as(self, msg, req->request_id, rc, rc ? kiln_error_last() : NULL,
                   (int64_t)req->run_id, json, req->pretty && req->run_id);
        break;
    case KILN__REQUEST_KIND__REQ_HISTORY:
        rc = kiln_history_runs_json(self->history, req->limit, &json);
        kiln_proto_client_reply(self, msg, req->request_id, rc, rc ? kiln_error_last() : NULL, 0, json);
        break;
    case KILN__REQUEST_KIND__REQ_LOGS:
        s_on_logs(self, msg, req);
        break;
    case KILN__REQUEST_KIND__REQ_CANCEL:
        s_on_cancel(self, msg, req, client);
        break;
    case KILN__REQUEST_KIND__REQ_WORKERS:
        json = kiln_workers_json(self);
        kiln_proto_client_reply(self, msg, req->request_id, 0, NULL, 0, json);
        break;
    case KILN__REQUEST_KIND__REQ_STATS:
        json = s_stats_json(self);
        kiln_proto_client_reply(self, msg, req->request_id, 0, NULL, 0, json);
        break;
    case KILN__REQUEST_KIND__REQ_DRAIN:
        s_on_drain(self, msg, req, client);
        break;
    case KILN__REQUEST_KIND__REQ_ACTIONS: {
        json_t *used = NULL;
        if ((rc = kiln_history_actions_used(self->history, &used)) == 0) {
            json_t *sources = json_array();
            size_t n = 0;
            const char *const *src = kiln_source_action_sources(self->source, &n);
            for (size_t i = 0; i < n; i++)
                json_array_append_new(sources, json_string(src[i]));
            json = json_pack("{s:o, s:o, s:b}", "sources", sources, "actions", used,
                             "require_sha", self->cfg.actions_require_sha);
        }
        kiln_proto_client_reply(self, msg, req->request_id, rc, rc ? kiln_error_last() : NULL, 0,
                                json);
        break;
    }
    case KILN__REQUEST_KIND__REQ_ARTIFACTS:
    case KILN__REQUEST_KIND__REQ_BLOB:
    case KILN__REQUEST_KIND__REQ_CACHES:
    case KILN__REQUEST_KIND__REQ_CACHE_RM:
        kiln_proto_store_client(self, msg, req, client);
        break;
    case KILN__REQUEST_KIND__REQ_WATCH: {
        kiln_crun_t *run = kiln_runs_find(self, (int64_t)req->run_id);
        if (run) {
            kiln_watch_add(run, msg, NULL, req->follow_quiet);
            kiln_proto_client_reply(self, msg, req->request_id, 0, NULL, run->id, NULL);
        } else {
            rc = kiln_history_run_json(self->history, (int64_t)req->run_id, &json);
            kiln_proto_client_reply(self, msg, req->request_id, rc ? rc : KILN_ENOTFOUND,
                    rc ? kiln_error_last() : "run is not active", (int64_t)req->run_id, json);
        }
        break;
    }
    default:
        kiln_proto_client_reply(self, msg, req->request_id, KILN_EINVAL, "unknown request", 0, NULL);
        break;
    }
    json_decref(json);
}
