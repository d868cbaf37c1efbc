/* history.h: the durable record of every run, job, attempt, step and log.
 *
 * History lives in SQLite (WAL mode) in the coordinator's data directory.
 * It is the auditor's view: rows are only ever added or moved forward
 * (pending -> running -> final), never deleted by normal operation. Redis
 * holds the hot scheduling state; this holds what happened.
 *
 * All timestamps are wall-clock milliseconds since the epoch. Job and run
 * states are the names of kiln_job_state_t (dag.h) and "running",
 * "success", "failure", "cancelled" for runs.
 *
 * It also keeps what the scheduler learns from it: an estimate of each job's
 * duration per workflow (kiln_history_duration_record/kiln_history_durations).
 *
 * The store is split by what it does (history_int.h has the map): opening,
 * schema and batches in history.c, writes in history_write.c, reads in
 * history_read.c. The JSON documents of `kiln status` and `kiln history` are
 * built by document.c (document.h) from the rows the row readers below give it;
 * kiln_history_run_json and kiln_history_runs_json are that renderer's
 * documents, kept here for the callers that have only a history object.
 *
 * Every write returns 0 or a negative code with kiln_error_last() set, and
 * its result must be checked: a row that was not written is a fact lost.
 *
 * The WAL stays bounded while the farm runs: a thread checkpoints it as it
 * grows (passive; past 4,096 pages, 16 MB, truncating when the writer and
 * readers allow), and a log started over is cut back to 16 MB. Under a
 * steady write load it stays under KILN_HISTORY_WAL_BOUND_MB.
 *
 * Thread rules: one connection, used from one thread (the coordinator's
 * loop). Writers may group many calls in kiln_history_begin/commit.
 */
#ifndef KILN_HISTORY_H
#define KILN_HISTORY_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KILN_HISTORY_WAL_BOUND_MB 64

typedef struct kiln_history kiln_history_t;

/* Opens (creating if needed) the database at `path`, applies the schema,
 * enables WAL. Returns 0 or a negative code with kiln_error_last() set. */
int kiln_history_open(kiln_history_t **out, const char *path);
void kiln_history_destroy(kiln_history_t **self_p);

int kiln_history_begin(kiln_history_t *self);
/* 0 once the batch is on disk. Negative (KILN_EINFRA when the disk is full
 * or failing) when it is not: its writes then wait in memory and are done
 * by kiln_history_retry, so nothing that depends on them being on disk (an
 * acknowledgement) may go out. */
int kiln_history_commit(kiln_history_t *self);
/* Commits an outermost batch whose writes the caller answers for at once (a
 * submission told "accepted"): on failure none of them is kept to be done
 * later, so a refused submission leaves no trace. */
int kiln_history_commit_whole(kiln_history_t *self);

/* Ends the outermost batch (whatever its depth) with none of its writes
 * kept: rolled back, and nothing of it left to wait for room. For a batch
 * the caller has decided to refuse (a submission that cannot be recorded
 * whole). */
void kiln_history_abort(kiln_history_t *self);

/* ---- when the disk is full --------------------------------------------
 * A write that fails for want of room or with an I/O error takes the store
 * down: the writes of its transaction and all later ones wait in memory, in
 * order (log output past 64 MiB is counted, not kept, and a marker says how
 * much), and kiln_history_run_create is refused (KILN_EINFRA, with the
 * path and the cause), so no run is accepted that is not on disk. */
typedef struct {
    bool writable;
    const char *why;      /* "" while writable; borrowed */
    size_t waiting;       /* writes waiting for room */
    size_t waiting_bytes;
    uint64_t failures;    /* times the store went down */
    uint64_t lost_log_bytes;
    int64_t since_ms;     /* wall clock when it went down, 0 while writable */
} kiln_history_health_t;
void kiln_history_health(const kiln_history_t *self, kiln_history_health_t *out);
/* Caps the file at about max_bytes (0: no cap; never below its size now):
 * past it, writes fail as they do on a full disk. */
int kiln_history_limit(kiln_history_t *self, uint64_t max_bytes);
/* Outside any batch: tries the waiting writes again, all in one
 * transaction. 1 when they are on disk and the store is up again, 0 when it
 * is still down (or was not down). */
int kiln_history_retry(kiln_history_t *self);

/* A new run; its id (1, 2, ...) is written to *run_id. event: what started
 * it (push, workflow_dispatch, ...); actor: who submitted it (may be NULL). */
int kiln_history_run_create(kiln_history_t *self, const char *name, const char *file,
                            const char *yaml, size_t yaml_len, int64_t created_ms,
                            const char *event, const char *actor, int64_t *run_id);
/* state: "running", "success", "failure", "cancelled". finished_ms 0 = unset. */
int kiln_history_run_set_state(kiln_history_t *self, int64_t run_id, const char *state,
                               int64_t finished_ms);

/* A job of a run, in state "pending". needs and runs_on are lists. */
int kiln_history_job_create(kiln_history_t *self, int64_t run_id, const char *job_id,
                            const char *name, const char *const *needs, size_t n_needs,
                            const char *const *runs_on, size_t n_runs_on);
/* A job planned when it became ready: its name and runs-on as evaluated then. */
int kiln_history_job_plan(kiln_history_t *self, int64_t run_id, const char *job_id,
                          const char *name, const char *const *runs_on, size_t n_runs_on);
/* Moves a job to `state`. worker may be NULL (unchanged); attempt 0 and
 * started_ms/finished_ms 0 leave those columns unchanged. */
int kiln_history_job_set_state(kiln_history_t *self, int64_t run_id, const char *job_id,
                               const char *state, unsigned attempt, const char *worker,
                               int64_t started_ms, int64_t finished_ms);

/* One dispatch of a job: attempt number, fencing token, worker and its
 * public key (Z85; NULL or "" when not known, as for a lease recovered
 * before its worker reconnected). */
int kiln_history_attempt_start(kiln_history_t *self, int64_t run_id, const char *job_id,
                               unsigned attempt, uint64_t token, const char *worker,
                               const char *worker_key, int64_t started_ms);
/* An attempt's end. state: a job state name or an infrastructure class
 * ("worker_lost", ...); message may be NULL. */
int kiln_history_attempt_finish(kiln_history_t *self, int64_t run_id, const char *job_id,
                                unsigned attempt, const char *state, const char *message,
                                int64_t finished_ms);

int kiln_history_step_start(kiln_history_t *self, int64_t run_id, const char *job_id,
                            unsigned attempt, unsigned step, const char *name, int64_t started_ms);
/* state: "success", "failure", "timed_out", "cancelled", "skipped". exit_code
 * -1 when the process did not exit normally (then signal is set). A step
 * whose start was not recorded (skipped, or one that ended before its
 * worker reported the start) gets its row here, with `name`; NULL keeps the
 * name recorded at the start. */
int kiln_history_step_finish(kiln_history_t *self, int64_t run_id, const char *job_id,
                             unsigned attempt, unsigned step, const char *name, const char *state,
                             int exit_code, int signal, int64_t started_ms, int64_t finished_ms);

/* stream: 0 stdout, 1 stderr, 2 system (Kiln's own messages). */
int kiln_history_log_append(kiln_history_t *self, int64_t run_id, const char *job_id,
                            unsigned attempt, unsigned step, int stream, const void *data,
                            size_t len, int64_t ts_ms);

/* An audit event (who did what), kept forever: actor is the name its key
 * is admitted under (or "kiln" for the coordinator's own), actor_key that
 * key (Z85), NULL for the coordinator. */
int kiln_history_audit(kiln_history_t *self, const char *kind, const char *actor,
                       const char *actor_key, const char *detail, int64_t ts_ms);

/* The newest `limit` runs, newest first, as a JSON array of objects
 * {id, name, file, state, created_ms, finished_ms, duration_ms, jobs: n,
 * failed: n}. *out is a new reference. Built by kiln_document_runs. */
int kiln_history_runs_json(kiln_history_t *self, unsigned limit, json_t **out);
/* One run: {id, name, file, state, created_ms, finished_ms, jobs: [{id,
 * name, state, attempt, worker, started_ms, finished_ms, duration_ms, needs,
 * runs_on, outputs, attempts: [{attempt, token, worker, worker_key, state,
 * message, started_ms, finished_ms}], steps: [{attempt, index, name, state,
 * exit_code, signal, started_ms, finished_ms, duration_ms}]}], annotations:
 * [...], summaries: [...]}. KILN_ENOTFOUND if no such run. Built by
 * kiln_document_run (document.h has the whole shape). */
int kiln_history_run_json(kiln_history_t *self, int64_t run_id, json_t **out);
/* Every commit remote uses: resolved to in the history: [{uses, url, sha,
 * runs, last_run, last_ms}], by uses:, newest first within one. */
int kiln_history_actions_used(kiln_history_t *self, json_t **out);

typedef int (*kiln_history_log_fn)(void *ctx, const char *job_id, unsigned attempt,
                                   unsigned step, int stream, const void *data, size_t len,
                                   int64_t ts_ms);
/* Calls fn for each stored log chunk of the run in arrival order, only for
 * job_id when it is not NULL. fn returning non-zero stops the walk (that value
 * is returned). */
int kiln_history_logs_each(kiln_history_t *self, int64_t run_id, const char *job_id,
                           kiln_history_log_fn fn, void *ctx);

/* ---- what a job leaves besides its state ---- */

/* The matrices a run computed at run time (job id -> matrix), kept so a
 * restart plans the run alike. */
int kiln_history_run_matrices(kiln_history_t *self, int64_t run_id, const json_t *matrices);
/* A run's local composite actions (path -> text), kept for a restart. */
int kiln_history_run_actions(kiln_history_t *self, int64_t run_id, const json_t *actions);
/* The run's source (repository, ref, commit: an object), in the run's row. */
int kiln_history_run_source(kiln_history_t *self, int64_t run_id, const json_t *source);
/* A run's inputs (object), kept so a restarted coordinator plans it alike. */
int kiln_history_run_inputs(kiln_history_t *self, int64_t run_id, const json_t *inputs);
/* A job's outputs (object name -> string), as needs.<job>.outputs sees them. */
int kiln_history_job_outputs(kiln_history_t *self, int64_t run_id, const char *job_id,
                             const json_t *outputs);
/* An ::error / ::warning / ::notice annotation. level: "error", "warning",
 * "notice"; title, file may be NULL; line, col 0 when unset. */
int kiln_history_annotation(kiln_history_t *self, int64_t run_id, const char *job_id,
                            unsigned attempt, unsigned step, const char *level,
                            const char *message, const char *title, const char *file, int line,
                            int col);
/* A job attempt's step summary markdown. */
int kiln_history_summary(kiln_history_t *self, int64_t run_id, const char *job_id,
                         unsigned attempt, const char *markdown, size_t len);
/* Adds "annotations" and "summaries" arrays to a run's JSON record
 * (kiln_document_run_extras). */
int kiln_history_run_extras(kiln_history_t *self, int64_t run_id, json_t *run);
/* Every job's stored outputs: job id -> object (new reference). */
int kiln_history_run_outputs(kiln_history_t *self, int64_t run_id, json_t **out);

/* ---- rows behind the JSON documents (document.c builds them) ---- */

/* A stored text column, borrowed for the callback only. ptr is NULL when
 * the column is NULL (not set); otherwise it is NUL-terminated, len bytes
 * long, may hold NUL bytes before len (a summary is bytes from a worker)
 * and is not checked to be UTF-8 (a worker name or failure message need not
 * be). */
typedef struct {
    const char *ptr;
    size_t len;
} kiln_history_text_t;

/* A stored integer column that may be NULL: set is false then. */
typedef struct {
    int64_t value;
    bool set;
} kiln_history_int_t;

/* A row of runs. Text fields and the record are borrowed for the callback. */
typedef struct {
    int64_t id;
    kiln_history_text_t name;
    kiln_history_text_t file;
    kiln_history_text_t state;
    int64_t created_ms;
    kiln_history_int_t finished_ms;
    int64_t n_jobs;   /* kiln_history_runs_each only (0 from kiln_history_run_read) */
    int64_t n_failed; /* of those, jobs in failure, timed_out, infra_error, cancelled */
    kiln_history_text_t source; /* kiln_history_run_read only: the run's source (JSON) or NULL */
    /* kiln_history_run_read only: the remote actions and workflows the run
     * uses, as resolved ([{uses, url, sha}], JSON) */
    kiln_history_text_t pins;
} kiln_history_run_rec_t;

typedef struct {
    const char *job_id; /* never NULL; the same text as id.ptr */
    kiln_history_text_t id;
    kiln_history_text_t name;
    kiln_history_text_t state;
    int64_t attempt; /* 0: never dispatched */
    kiln_history_text_t worker;
    kiln_history_int_t started_ms;
    kiln_history_int_t finished_ms;
    const char *needs;   /* the stored JSON text (an array of strings), NULL if none */
    const char *runs_on; /* likewise */
    const char *outputs; /* the stored JSON text (an object), NULL if none */
} kiln_history_job_rec_t;

typedef struct {
    int64_t attempt;
    kiln_history_int_t token;
    kiln_history_text_t worker;
    kiln_history_text_t worker_key; /* Z85; not set for rows from before schema 4 */
    kiln_history_text_t placement;  /* why it went to its worker, or not set */
    kiln_history_text_t state;
    kiln_history_text_t message;
    kiln_history_int_t started_ms;
    kiln_history_int_t finished_ms;
} kiln_history_attempt_rec_t;

typedef struct {
    int64_t attempt;
    int64_t index;
    kiln_history_text_t name;
    kiln_history_text_t state;
    kiln_history_int_t exit_code; /* not set while running */
    kiln_history_int_t signal;    /* not set: no signal */
    kiln_history_int_t started_ms;
    kiln_history_int_t finished_ms;
} kiln_history_step_rec_t;

typedef struct {
    kiln_history_text_t job_id;
    int64_t attempt;
    kiln_history_int_t step;
    kiln_history_text_t level;
    kiln_history_text_t message;
    kiln_history_text_t title;
    kiln_history_text_t file;
    kiln_history_int_t line;
    kiln_history_int_t col;
} kiln_history_annotation_rec_t;

typedef struct {
    kiln_history_text_t job_id;
    int64_t attempt;
    kiln_history_text_t markdown;
} kiln_history_summary_rec_t;

/* The walkers below call fn once per row, in the order given; fn returning
 * non-zero stops the walk and that value is returned, so fn reports its own
 * errors as negative codes with kiln_error_last() set. Otherwise 0, or a
 * negative code with the message set (an empty walk is 0). Each walker that
 * reads through a cached statement (runs_each, run_read, jobs_each,
 * attempts_each, steps_each) must not be called again from its own fn; any
 * other history call is fine, so a walk may nest another walker. */
typedef int (*kiln_history_run_fn)(void *ctx, const kiln_history_run_rec_t *run);
typedef int (*kiln_history_job_fn)(void *ctx, const kiln_history_job_rec_t *job);
typedef int (*kiln_history_attempt_fn)(void *ctx, const kiln_history_attempt_rec_t *attempt);
typedef int (*kiln_history_step_fn)(void *ctx, const kiln_history_step_rec_t *step);
typedef int (*kiln_history_annotation_fn)(void *ctx,
                                          const kiln_history_annotation_rec_t *annotation);
typedef int (*kiln_history_summary_fn)(void *ctx, const kiln_history_summary_rec_t *summary);

/* The newest `limit` runs, newest first (limit 0: 50; above 1000: 1000),
 * with n_jobs and n_failed. */
int kiln_history_runs_each(kiln_history_t *self, unsigned limit, kiln_history_run_fn fn,
                           void *ctx);
/* Calls fn once with the run's row. KILN_ENOTFOUND ("history: no run N")
 * when there is no such run. */
int kiln_history_run_read(kiln_history_t *self, int64_t run_id, kiln_history_run_fn fn,
                          void *ctx);
/* A run's jobs in the order they were created. */
int kiln_history_jobs_each(kiln_history_t *self, int64_t run_id, kiln_history_job_fn fn,
                           void *ctx);
/* A job's attempts, by attempt number. */
int kiln_history_attempts_each(kiln_history_t *self, int64_t run_id, const char *job_id,
                               kiln_history_attempt_fn fn, void *ctx);
/* A job's steps, by attempt then step index. */
int kiln_history_steps_each(kiln_history_t *self, int64_t run_id, const char *job_id,
                            kiln_history_step_fn fn, void *ctx);
/* A run's annotations in the order they were recorded. */
int kiln_history_annotations_each(kiln_history_t *self, int64_t run_id,
                                  kiln_history_annotation_fn fn, void *ctx);
/* A run's step summaries, by job id then attempt. */
int kiln_history_summaries_each(kiln_history_t *self, int64_t run_id, kiln_history_summary_fn fn,
                                void *ctx);

/* ---- recovery: what a restarted coordinator reads back ---- */

typedef struct {
    int64_t run_id;
    const char *name;
    const char *file;
    const char *yaml;    /* borrowed for the callback only */
    size_t yaml_len;
    int64_t created_ms;
    const char *inputs;  /* the run's inputs as JSON text, or NULL */
    const char *actions; /* its local actions (path -> text) as JSON, or NULL */
    const char *matrices;/* matrices computed at run time (job id -> matrix), or NULL */
    const char *event;   /* NULL for runs from before schema 5 */
    const char *actor;   /* likewise */
    const char *source;  /* the run's repository and commit (JSON), or NULL */
} kiln_history_active_t;

typedef int (*kiln_history_active_fn)(void *ctx, const kiln_history_active_t *run);
/* Calls fn for every run still in state "running", oldest first. fn
 * returning non-zero stops the walk (that value is returned). fn must not
 * write to this history object. */
int kiln_history_active_runs(kiln_history_t *self, kiln_history_active_fn fn, void *ctx);

typedef struct {
    char state[32];
    unsigned attempt;      /* 0: never dispatched */
    char worker[128];      /* "" if none */
    uint64_t token;        /* token of the latest attempt, 0 if none */
    int64_t started_ms;
} kiln_history_job_row_t;

/* A job's recorded state and latest attempt. KILN_ENOTFOUND if absent. */
/* Bytes of step output (stdout, stderr) stored for one attempt of a job. */
int kiln_history_output_bytes(kiln_history_t *self, int64_t run_id, const char *job_id,
                              unsigned attempt, uint64_t *out);
int kiln_history_job_get(kiln_history_t *self, int64_t run_id, const char *job_id,
                         kiln_history_job_row_t *out);

/* ---- duration estimates, for the scheduler ---- */

/* Records that a job of a workflow took `ms` (a successful attempt, wall time
 * from start to finish); the estimate kept per (workflow, job) is updated.
 * workflow is any stable key for the workflow (its name); the estimate is a
 * moving average that favours recent runs (see history_write.c). KILN_EINVAL
 * for an empty workflow or job id, one longer than the history's bound
 * (1024 / 256 bytes), or ms outside 0..a year. Inside or outside a
 * begin/commit. */
int kiln_history_duration_record(kiln_history_t *self, const char *workflow, const char *job_id,
                                 int64_t ms);
/* job_id is borrowed for the call; samples: how many durations were recorded.
 * Returning non-zero stops the walk. */
typedef int (*kiln_history_duration_fn)(void *ctx, const char *job_id, int64_t estimate_ms,
                                        unsigned samples);
/* Calls fn for each job of `workflow` with a duration estimate, in job-id
 * order; an indexed lookup whatever the size of the history. fn must not
 * call the two duration functions. Returns 0, fn's non-zero value, or a
 * negative code (KILN_EINVAL for a bad workflow key). */
int kiln_history_durations(kiln_history_t *self, const char *workflow, kiln_history_duration_fn fn,
                           void *ctx);

/* Why an attempt went to its worker (coordinator/affinity.c), in the
 * attempt's row; a write of the batch like the attempt's own. */
int kiln_history_attempt_placement(kiln_history_t *self, int64_t run_id, const char *job_id,
                                   unsigned attempt, const char *why);

/* ---- the farm's store: caches and artifacts (history_store.c) ----
 * Each write commits at once or fails (KILN_EINFRA when the disk is full):
 * a store request is answered only after its row is on disk. */
typedef struct {
    const char *repository, *ref, *key, *version, *digest, *meta, *job_id;
    uint64_t size;
    int64_t created_ms, run_id;
} kiln_history_cache_t;
int kiln_history_cache_add(kiln_history_t *self, const kiln_history_cache_t *c, int64_t *id);
int kiln_history_cache_touch(kiln_history_t *self, int64_t id, int64_t used_ms);
int kiln_history_cache_delete(kiln_history_t *self, int64_t id);
/* Entries as an array of {id, repository, ref, key, version, digest, size,
 * created_ms, used_ms, meta, run_id, job_id}: all (repository NULL, by
 * repository then most recently used first), a repository's (most
 * recently used first) or, with version, those a lookup considers (newest
 * first). */
int kiln_history_caches_json(kiln_history_t *self, const char *repository, const char *version,
                             json_t **out);
/* Entries last used before the time (at most 1,000). */
int kiln_history_caches_older(kiln_history_t *self, int64_t used_before_ms, json_t **out);

typedef struct {
    const char *job_id, *name, *digest, *meta;
    uint64_t size;
    int64_t run_id, created_ms, expires_ms;
} kiln_history_artifact_t;
int kiln_history_artifact_add(kiln_history_t *self, const kiln_history_artifact_t *a,
                              int64_t *id);
/* state: "kept", "replaced" (a later upload took its name), "expired". */
int kiln_history_artifact_state(kiln_history_t *self, int64_t id, const char *state);
/* A run's artifacts, every state, oldest first: [{id, run_id, job_id,
 * name, digest, size, meta, created_ms, expires_ms, state}]. */
int kiln_history_artifacts_json(kiln_history_t *self, int64_t run_id, json_t **out);
/* Kept artifacts whose time is up (at most 1,000). */
int kiln_history_artifacts_expired(kiln_history_t *self, int64_t now_ms, json_t **out);
/* Whether a job may read the blob: a cache entry of its repository or a
 * kept artifact of its run names it. */
int kiln_history_blob_visible(kiln_history_t *self, const char *digest, const char *repository,
                              int64_t run_id, bool *visible);
/* Whether a cache entry or a kept artifact names the blob. */
int kiln_history_blob_used(kiln_history_t *self, const char *digest, bool *used);

#endif
