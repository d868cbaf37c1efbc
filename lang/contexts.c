/* contexts.c: the contexts document of a job (see contexts.h). */
#include "lang/contexts.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/error.h"

/* A value: null and {} without a dump. */
static void s_json(kiln_buf_t *t, const json_t *v, const char *absent)
{
    if (!v || json_is_null(v)) {
        kiln_buf_str(t, absent);
        return;
    }
    if (json_is_object(v) && json_object_size(v) == 0) {
        kiln_buf_str(t, "{}");
        return;
    }
    char *d = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!d)
        t->oom = true;
    else
        kiln_buf_str(t, d);
    free(d);
}

static void s_str(kiln_buf_t *t, const char *key, const char *s, bool first)
{
    if (!first)
        kiln_buf_str(t, ",");
    kiln_buf_json_string(t, key, strlen(key));
    kiln_buf_str(t, ":");
    s = s ? s : "";
    kiln_buf_json_string(t, s, strlen(s));
}

static void s_num(kiln_buf_t *t, const char *key, size_t n)
{
    char v[32];
    snprintf(v, sizeof v, "%zu", n);
    kiln_buf_str(t, ",\"");
    kiln_buf_str(t, key);
    kiln_buf_str(t, "\":");
    kiln_buf_str(t, v);
}

char *kiln_contexts_text(const kiln_contexts_t *c)
{
    kiln_buf_t t = {.max = KILN_CONTEXTS_MAX};
    char num[32], at[16];
    snprintf(num, sizeof num, "%lld", (long long)c->run_id);
    snprintf(at, sizeof at, "%u", c->run_attempt ? c->run_attempt : 1);
    kiln_buf_str(&t, "{\"github\":{");
    s_str(&t, "run_id", num, true);
    s_str(&t, "run_number", num, false);
    s_str(&t, "run_attempt", at, false);
    s_str(&t, "job", c->job, false);
    s_str(&t, "workflow", c->workflow, false);
    s_str(&t, "event_name", c->event_name, false);
    s_str(&t, "actor", c->actor, false);
    if (c->github) {
        const char *key;
        json_t *v;
        json_object_foreach((json_t *)c->github, key, v) {
            kiln_buf_str(&t, ",");
            kiln_buf_json_string(&t, key, strlen(key));
            kiln_buf_str(&t, ":");
            s_json(&t, v, "null");
        }
    } else {
        s_str(&t, "repository", c->repository, false);
        s_str(&t, "ref", c->ref, false);
        s_str(&t, "sha", c->sha, false);
    }
    kiln_buf_str(&t, "},\"inputs\":");
    s_json(&t, c->inputs, "null");
    kiln_buf_str(&t, ",\"vars\":");
    s_json(&t, c->vars, "null");
    kiln_buf_str(&t, ",\"matrix\":");
    s_json(&t, c->matrix, "null");
    kiln_buf_str(&t, ",\"strategy\":{\"fail-fast\":");
    kiln_buf_str(&t, c->fail_fast ? "true" : "false");
    s_num(&t, "max-parallel", c->max_parallel);
    s_num(&t, "job-index", c->job_index);
    s_num(&t, "job-total", c->job_total ? c->job_total : 1);
    kiln_buf_str(&t, "},\"needs\":");
    s_json(&t, c->needs, "{}");
    if (c->jobs) {
        kiln_buf_str(&t, ",\"jobs\":");
        s_json(&t, c->jobs, "{}");
    }
    kiln_buf_str(&t, ",\"job\":{\"status\":\"success\"},\"secrets\":");
    s_json(&t, c->secrets, "{}");
    kiln_buf_str(&t, "}");
    if (kiln_buf_failed(&t)) {
        if (t.toobig)
            kiln_error_set("the job's contexts are larger than %d bytes", KILN_CONTEXTS_MAX);
        else
            kiln_error_set("out of memory for the job's contexts");
        free(t.data);
        return NULL;
    }
    return t.data;
}

json_t *kiln_contexts_json(const kiln_contexts_t *c)
{
    char *text = kiln_contexts_text(c);
    if (!text)
        return NULL;
    json_error_t jerr;
    json_t *out = json_loads(text, 0, &jerr);
    if (!out)
        kiln_error_set("contexts: %s", jerr.text);
    free(text);
    return out;
}
