/* contexts.h: the contexts document a job's expressions see, built in one
 * place.
 *
 * The coordinator evaluates a job's planning expressions (its name,
 * runs-on, env, timeout, concurrency, if:) and sends the worker the same
 * document in the job's assignment; the worker adds runner, env, steps and
 * job.status as the steps run. Both forms come from kiln_contexts_text: the
 * JSON object is that text, parsed, so the two cannot disagree. The text
 * is written directly (no jansson tree built and dumped per job on the
 * dispatch path).
 */
#ifndef KILN_CONTEXTS_H
#define KILN_CONTEXTS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The largest contexts document: it rides in one job message. */
/* Room for one needed job's outputs at their limit (2 MiB) and the rest,
 * within one 4 MiB message. */
#define KILN_CONTEXTS_MAX (3 * 1024 * 1024)

typedef struct {
    /* github */
    int64_t run_id;
    unsigned run_attempt;   /* 0 reads as 1 */
    const char *workflow;
    const char *actor;
    const char *event_name;
    const char *repository, *ref, *sha; /* NULL reads as "" */
    /* The fields a run's repository and event give (lang/source.h: ref_name,
     * server_url, event, ...); when set, they replace the three above. */
    const json_t *github;
    const char *job;        /* github.job: the job's id as written */
    /* inputs, vars, secrets: objects or NULL (null; secrets {}) */
    const json_t *inputs, *vars, *secrets;
    /* matrix and strategy: the job's combination (NULL: null) */
    const json_t *matrix;
    bool fail_fast;
    size_t max_parallel, job_index, job_total;
    /* needs: id -> {result, outputs} (NULL: {}) */
    const json_t *needs;
    /* jobs: a called workflow's jobs id -> {result, outputs}, for its
     * on.workflow_call.outputs; NULL leaves the context out */
    const json_t *jobs;
} kiln_contexts_t;

/* The document as JSON text, malloc'd; NULL when out of memory or past
 * KILN_CONTEXTS_MAX (the message is set). */
char *kiln_contexts_text(const kiln_contexts_t *c);
/* The same document as a jansson object (new reference), or NULL. */
json_t *kiln_contexts_json(const kiln_contexts_t *c);

#endif
