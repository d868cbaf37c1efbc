/* proto_store.c: the farm's store as the coordinator serves it: blob
 * chunks, cache entries and artifacts for workers' jobs (StoreRequest),
 * and artifacts and caches for clients (kiln artifacts, kiln artifact get,
 * kiln cache list|rm).
 *
 * A job sees what GitHub would let it see, decided here from the job its
 * worker holds the lease of: caches of its run's repository, from its own
 * ref, its pull request's base and the default branch (the first that has
 * a match wins, newest first within a ref); artifacts of its own run. A
 * request for a job the worker does not hold is refused, so a step cannot
 * reach another repository's caches by naming them.
 *
 * Every answer that says something was recorded follows the commit of its
 * row (history_store.c writes with KILN_HDB_NOW). Blob chunks are read and
 * written in the loop: at most KILN_STORE_CHUNK_MAX bytes each, so one
 * request costs a millisecond or so of the loop, and the worker's window
 * of chunks in flight bounds how many wait.
 */
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/digest.h"
#include "common/error.h"
#include "common/log.h"
#include "coordinator/coord.h"
#include "coordinator/store.h"

#define S_DAY_MS (24LL * 3600 * 1000)

static uint8_t s_chunk[KILN_STORE_CHUNK_MAX];

static void s_reply(kiln_server_t *self, const kiln_transport_msg_t *msg, Kiln__StoreReply *r)
{
    Kiln__Envelope env = KILN__ENVELOPE__INIT;
    env.body_case = KILN__ENVELOPE__BODY_STORE_REPLY;
    env.store_reply = r;
    kiln_server_send(self, msg->identity, msg->id_len, &env);
}

static void s_reply_error(kiln_server_t *self, const kiln_transport_msg_t *msg, uint64_t id,
                          int code, const char *error)
{
    Kiln__StoreReply r = KILN__STORE_REPLY__INIT;
    r.id = id;
    r.code = code ? code : KILN_ERROR;
    r.error = (char *)error;
    s_reply(self, msg, &r);
}

static void s_reply_json(kiln_server_t *self, const kiln_transport_msg_t *msg, uint64_t id,
                         json_t *j)
{
    Kiln__StoreReply r = KILN__STORE_REPLY__INIT;
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    r.id = id;
    r.json.data = (uint8_t *)text;
    r.json.len = text ? strlen(text) : 0;
    s_reply(self, msg, &r);
    free(text);
}

static const char *s_src(const kiln_crun_t *run, const char *field)
{
    const char *v = json_string_value(json_object_get(run->source, field));
    return v ? v : "";
}

/* The repository a run's caches belong to: owner/name, or "local" for
 * runs of files alone (kiln run in a directory that is no repository),
 * which share one scope as they share one machine's files. */
static void s_repository(const kiln_crun_t *run, char *out, size_t cap)
{
    const char *repo = s_src(run, "repository");
    snprintf(out, cap, "%s", repo[0] ? repo : "local");
}

/* Whether the job may read the blob or name it as its own: its
 * repository's caches or its run's artifacts name it, or the job sent its
 * bytes itself. A digest alone (they are printed in logs) is no key. */
static bool s_job_may(kiln_server_t *self, const kiln_cjob_t *job, const char *digest)
{
    for (unsigned i = 0; i < 256; i++)
        if (strcmp(self->sent[i].digest, digest) == 0 && strcmp(self->sent[i].job_key, job->key) == 0)
            return true;
    char repo[512];
    bool visible = false;
    s_repository(job->run, repo, sizeof repo);
    if (kiln_history_blob_visible(self->history, digest, repo, job->run->id, &visible) != 0) {
        kiln_log_warn("store: %s", kiln_error_last());
        return false;
    }
    return visible;
}

/* The complete blob the request names, if the job may name it as its own
 * (*size set); otherwise answered with why, and false. */
static bool s_own_blob(kiln_server_t *self, const kiln_transport_msg_t *msg,
                       const Kiln__StoreRequest *r, const kiln_cjob_t *job, uint64_t *size)
{
    uint64_t have = 0;
    char why[KILN_STORE_DIGEST_LEN + 96];
    if (kiln_store_stat(self->store, r->digest, size, &have) == 0 && *size != UINT64_MAX &&
        s_job_may(self, job, r->digest))
        return true;
    snprintf(why, sizeof why, "blob %.80s is not in the store for this job (its bytes were not "
                              "sent by it)", r->digest);
    s_reply_error(self, msg, r->id, KILN_ENOTFOUND, why);
    return false;
}

static void s_note_sent(kiln_server_t *self, const kiln_cjob_t *job, const char *digest)
{
    unsigned i = self->n_sent++ % 256;
    snprintf(self->sent[i].digest, sizeof self->sent[i].digest, "%s", digest);
    snprintf(self->sent[i].job_key, sizeof self->sent[i].job_key, "%s", job->key);
}

/* A chunk of a blob the store has whole, sent by a job that may not name
 * it: hashed in order from the start, and the job noted as its sender once
 * the bytes, sent whole, have the blob's digest. The store keeps its copy;
 * the job learns nothing of it either way. */
static void s_prove_chunk(kiln_server_t *self, const kiln_cjob_t *job, const Kiln__StoreRequest *r,
                          bool last)
{
    unsigned n = sizeof self->proofs / sizeof self->proofs[0], i;
    for (i = 0; i < n; i++)
        if (self->proofs[i].hash && strcmp(self->proofs[i].digest, r->digest) == 0 &&
            strcmp(self->proofs[i].job_key, job->key) == 0)
            break;
    if (i == n) {
        if (r->offset != 0)
            return; /* its start went by unseen: the next attempt starts over */
        i = self->n_proofs++ % n;
        if (!self->proofs[i].hash && kiln_sha256_new(&self->proofs[i].hash) != 0) {
            kiln_log_warn("store: %s", kiln_error_last());
            return;
        }
        snprintf(self->proofs[i].digest, sizeof self->proofs[i].digest, "%s", r->digest);
        snprintf(self->proofs[i].job_key, sizeof self->proofs[i].job_key, "%s", job->key);
        self->proofs[i].next = 0;
        kiln_sha256_reset(self->proofs[i].hash);
    } else if (r->offset == 0) {
        self->proofs[i].next = 0;
        kiln_sha256_reset(self->proofs[i].hash);
    }
    if (r->offset != self->proofs[i].next)
        return;
    if (kiln_sha256_update(self->proofs[i].hash, r->data.data, r->data.len) != 0) {
        kiln_log_warn("store: %s", kiln_error_last());
        return;
    }
    self->proofs[i].next += r->data.len;
    if (!last)
        return;
    char hex[65], got[72];
    if (kiln_sha256_final(self->proofs[i].hash, hex) == 0) {
        snprintf(got, sizeof got, "sha256:%s", hex);
        if (strcmp(got, r->digest) == 0)
            s_note_sent(self, job, r->digest);
    }
    kiln_sha256_destroy(&self->proofs[i].hash);
    self->proofs[i].digest[0] = '\0';
}

/* A blob nothing names any more goes. */
static void s_drop_blob(kiln_server_t *self, const char *digest)
{
    bool used = true;
    if (kiln_history_blob_used(self->history, digest, &used) != 0) {
        kiln_log_warn("store: %s", kiln_error_last());
        return;
    }
    if (!used && kiln_store_remove(self->store, digest) != 0)
        kiln_log_warn("%s", kiln_error_last());
}

/* Removes a cache entry row (committed) and then its blob if unused. */
static int s_cache_remove(kiln_server_t *self, json_t *row, const char *why)
{
    int64_t id = json_integer_value(json_object_get(row, "id"));
    if (kiln_history_begin(self->history) != 0 || kiln_history_cache_delete(self->history, id) != 0 ||
        kiln_history_commit_whole(self->history) != 0) {
        kiln_history_abort(self->history);
        return KILN_EINFRA;
    }
    kiln_log_info("cache entry '%s' of %s (%s, %lld bytes) removed: %s",
                  json_string_value(json_object_get(row, "key")),
                  json_string_value(json_object_get(row, "repository")),
                  json_string_value(json_object_get(row, "ref")),
                  (long long)json_integer_value(json_object_get(row, "size")), why);
    s_drop_blob(self, json_string_value(json_object_get(row, "digest")));
    return 0;
}

/* The repository's entries, least recently used first, go until it is
 * within its quota. */
static void s_cache_quota(kiln_server_t *self, const char *repository)
{
    json_t *rows = NULL;
    if (kiln_history_caches_json(self->history, repository, NULL, &rows) != 0) {
        kiln_log_warn("cache quota: %s", kiln_error_last());
        return;
    }
    uint64_t total = 0;
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row) total += (uint64_t)json_integer_value(json_object_get(row, "size"));
    for (size_t k = json_array_size(rows); k > 0 && total > self->cfg.cache_quota; k--) {
        row = json_array_get(rows, k - 1); /* most recently used first: the end is the oldest */
        char why[128];
        snprintf(why, sizeof why, "the repository's caches are over their quota of %llu MB",
                 (unsigned long long)(self->cfg.cache_quota >> 20));
        if (s_cache_remove(self, row, why) != 0)
            break;
        total -= (uint64_t)json_integer_value(json_object_get(row, "size"));
        self->stats.cache_evictions++;
    }
    json_decref(rows);
}

/* The best entry: key exact, else each restore key as a prefix in turn;
 * within one, the ref order (own, base, default), then the newest. */
static json_t *s_cache_match(json_t *rows, const Kiln__StoreRequest *r, const char *const *refs,
                             size_t n_refs, bool *exact)
{
    for (size_t k = 0; k <= r->n_names; k++) {
        const char *want = k == 0 ? r->name : r->names[k - 1];
        if (!want[0])
            continue;
        size_t wl = strlen(want);
        json_t *best = NULL;
        size_t best_rank = n_refs, i;
        json_t *row;
        json_array_foreach(rows, i, row) {
            const char *key = json_string_value(json_object_get(row, "key"));
            const char *ref = json_string_value(json_object_get(row, "ref"));
            bool match = k == 0 ? strcmp(key, want) == 0 : strncmp(key, want, wl) == 0;
            if (!match)
                continue;
            for (size_t f = 0; f < n_refs && f < best_rank; f++)
                if (strcmp(ref, refs[f]) == 0) {
                    best = row; /* rows come newest first: the first of a rank stays */
                    best_rank = f;
                }
        }
        if (best) {
            *exact = k == 0;
            return best;
        }
    }
    return NULL;
}

static void s_cache_find(kiln_server_t *self, const kiln_transport_msg_t *msg,
                         const Kiln__StoreRequest *r, kiln_cjob_t *job)
{
    char repo[512], base[300], def[300];
    const char *refs[3];
    size_t n_refs = 0;
    json_t *rows = NULL;
    s_repository(job->run, repo, sizeof repo);
    refs[n_refs++] = s_src(job->run, "ref");
    if (s_src(job->run, "base_ref")[0]) {
        snprintf(base, sizeof base, "refs/heads/%s", s_src(job->run, "base_ref"));
        refs[n_refs++] = base;
    }
    if (s_src(job->run, "default_branch")[0]) {
        snprintf(def, sizeof def, "refs/heads/%s", s_src(job->run, "default_branch"));
        refs[n_refs++] = def;
    }
    if (kiln_history_caches_json(self->history, repo, r->version, &rows) != 0) {
        s_reply_error(self, msg, r->id, KILN_EINFRA, kiln_error_last());
        return;
    }
    bool exact = false;
    json_t *best = s_cache_match(rows, r, refs, n_refs, &exact);
    kiln_affinity_pool_t *pool = job->worker ? kiln_affinity_pool(self, job->worker) : NULL;
    if (pool && best && exact)
        pool->cache_hits++;
    else if (pool)
        pool->cache_misses++;
    if (best)
        kiln_affinity_note(self, job, json_string_value(json_object_get(best, "digest")),
                           (uint64_t)json_integer_value(json_object_get(best, "size")));
    if (!best) {
        self->stats.cache_misses++;
        s_reply_error(self, msg, r->id, KILN_ENOTFOUND, "no cache entry matches");
        json_decref(rows);
        return;
    }
    if (exact)
        self->stats.cache_hits++;
    else
        self->stats.cache_partial_hits++;
    int64_t id = json_integer_value(json_object_get(best, "id"));
    if (kiln_history_begin(self->history) != 0 ||
        kiln_history_cache_touch(self->history, id, kiln_clock_wall_ms()) != 0 ||
        kiln_history_commit_whole(self->history) != 0) {
        /* Only the eviction order suffers: the entry is still good. */
        kiln_history_abort(self->history);
        kiln_log_warn("cache entry %lld: its use was not recorded: %s", (long long)id,
                      kiln_error_last());
    }
    json_object_set_new(best, "exact", json_boolean(exact));
    s_reply_json(self, msg, r->id, best);
    json_decref(rows);
}

static void s_cache_add(kiln_server_t *self, const kiln_transport_msg_t *msg,
                        const Kiln__StoreRequest *r, kiln_cjob_t *job)
{
    char repo[512], why[KILN_ERROR_MAX + 64];
    uint64_t size = 0;
    json_t *rows = NULL;
    s_repository(job->run, repo, sizeof repo);
    const char *ref = s_src(job->run, "ref");
    if (!r->name[0] || !r->version[0]) {
        s_reply_error(self, msg, r->id, KILN_EINVAL, "a cache entry needs a key and a version");
        return;
    }
    if (!s_own_blob(self, msg, r, job, &size))
        return;
    if (kiln_history_caches_json(self->history, repo, r->version, &rows) != 0) {
        s_reply_error(self, msg, r->id, KILN_EINFRA, kiln_error_last());
        return;
    }
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row) {
        if (strcmp(json_string_value(json_object_get(row, "key")), r->name) == 0 &&
            strcmp(json_string_value(json_object_get(row, "ref")), ref) == 0) {
            /* The same job's add asked again (its answer was lost). */
            if (strcmp(json_string_value(json_object_get(row, "digest")), r->digest) == 0 &&
                json_integer_value(json_object_get(row, "run_id")) == job->run->id &&
                strcmp(json_string_value(json_object_get(row, "job_id")), kiln_runs_plan(job)->id) == 0) {
                json_t *j = json_pack("{s:O, s:s, s:s, s:O}", "id", json_object_get(row, "id"),
                                      "repository", repo, "ref", ref, "size", json_object_get(row, "size"));
                s_reply_json(self, msg, r->id, j);
                json_decref(j);
                json_decref(rows);
                return;
            }
            snprintf(why, sizeof why,
                     "Unable to reserve cache with key %s, another job may be creating this cache.",
                     r->name);
            json_decref(rows);
            s_reply_error(self, msg, r->id, KILN_EBUSY, why);
            return;
        }
    }
    json_decref(rows);
    if (size > self->cfg.cache_quota) {
        snprintf(why, sizeof why,
                 "Cache size of ~%llu MB is over the repository's quota of %llu MB: not saved",
                 (unsigned long long)(size >> 20), (unsigned long long)(self->cfg.cache_quota >> 20));
        s_reply_error(self, msg, r->id, KILN_ETOOBIG, why);
        return;
    }
    kiln_history_cache_t c = {.repository = repo, .ref = ref, .key = r->name,
                              .version = r->version, .digest = r->digest, .meta = r->meta,
                              .job_id = kiln_runs_plan(job)->id, .size = size,
                              .created_ms = kiln_clock_wall_ms(), .run_id = job->run->id};
    int64_t id = 0;
    if (kiln_history_begin(self->history) != 0 || kiln_history_cache_add(self->history, &c, &id) != 0 ||
        kiln_history_commit_whole(self->history) != 0) {
        snprintf(why, sizeof why, "the cache entry could not be recorded: %s", kiln_error_last());
        kiln_history_abort(self->history);
        s_reply_error(self, msg, r->id, KILN_EINFRA, why);
        return;
    }
    self->stats.cache_saves++;
    kiln_affinity_note(self, job, r->digest, size);
    kiln_affinity_held(job->worker, r->digest);
    json_t *j = json_pack("{s:I, s:s, s:s, s:I}", "id", (json_int_t)id, "repository", repo, "ref",
                          ref, "size", (json_int_t)size);
    s_reply_json(self, msg, r->id, j);
    json_decref(j);
    s_cache_quota(self, repo);
}

/* GitHub's rule for artifact names. */
static bool s_artifact_name_ok(const char *name, char *why, size_t cap)
{
    if (!name[0] || strlen(name) > 255 || strcmp(name, ".") == 0 || strcmp(name, "..") == 0) {
        snprintf(why, cap, "The artifact name '%s' is empty, '.', '..' or longer than 255 "
                           "characters", name);
        return false;
    }
    const char *bad = strpbrk(name, "\":<>|*?\r\n\\/");
    if (bad) {
        snprintf(why, cap,
                 "The artifact name '%s' contains '%c': \" : < > | * ? \\r \\n \\ / are not allowed",
                 name, *bad == '\r' || *bad == '\n' ? ' ' : *bad);
        return false;
    }
    return true;
}

static void s_artifact_add(kiln_server_t *self, const kiln_transport_msg_t *msg,
                           const Kiln__StoreRequest *r, kiln_cjob_t *job)
{
    char why[KILN_ERROR_MAX + 300];
    uint64_t size = 0;
    json_t *rows = NULL, *old = NULL;
    if (!s_artifact_name_ok(r->name, why, sizeof why)) {
        s_reply_error(self, msg, r->id, KILN_EINVAL, why);
        return;
    }
    if (!s_own_blob(self, msg, r, job, &size))
        return;
    if (kiln_history_artifacts_json(self->history, job->run->id, &rows) != 0) {
        s_reply_error(self, msg, r->id, KILN_EINFRA, kiln_error_last());
        return;
    }
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row) {
        if (strcmp(json_string_value(json_object_get(row, "name")), r->name) == 0 &&
            strcmp(json_string_value(json_object_get(row, "state")), "kept") == 0)
            old = row;
    }
    /* The same upload asked again (its answer was lost: the same job and
     * step, the same bytes): the same answer. */
    json_t *meta = json_loads(r->meta, 0, NULL);
    bool again = old && json_integer_value(json_object_get(meta, "step")) ==
                            json_integer_value(json_object_get(json_object_get(old, "meta"), "step")) &&
                 json_object_get(meta, "step") &&
                 strcmp(json_string_value(json_object_get(old, "digest")), r->digest) == 0 &&
                 strcmp(json_string_value(json_object_get(old, "job_id")), kiln_runs_plan(job)->id) == 0;
    json_decref(meta);
    if (again) {
        json_t *j = json_pack("{s:O, s:s, s:O, s:O}", "id", json_object_get(old, "id"), "name",
                              r->name, "size", json_object_get(old, "size"), "expires_ms",
                              json_object_get(old, "expires_ms"));
        s_reply_json(self, msg, r->id, j);
        json_decref(j);
        json_decref(rows);
        return;
    }
    if (old && !r->overwrite) {
        snprintf(why, sizeof why,
                 "Failed to CreateArtifact: an artifact with the name '%s' already exists in "
                 "run %lld (uploaded by job %s); set overwrite: true to replace it",
                 r->name, (long long)job->run->id, json_string_value(json_object_get(old, "job_id")));
        json_decref(rows);
        s_reply_error(self, msg, r->id, KILN_EBUSY, why);
        return;
    }
    unsigned days = r->retention_days ? r->retention_days : self->cfg.artifact_retention_days;
    if (days > self->cfg.artifact_retention_days)
        days = self->cfg.artifact_retention_days;
    int64_t now = kiln_clock_wall_ms(), id = 0;
    kiln_history_artifact_t a = {.job_id = kiln_runs_plan(job)->id, .name = r->name,
                                 .digest = r->digest, .meta = r->meta, .size = size,
                                 .run_id = job->run->id, .created_ms = now,
                                 .expires_ms = now + (int64_t)days * S_DAY_MS};
    int64_t old_id = old ? json_integer_value(json_object_get(old, "id")) : 0;
    char old_digest[KILN_STORE_DIGEST_LEN + 1] = "";
    if (old)
        snprintf(old_digest, sizeof old_digest, "%s", json_string_value(json_object_get(old, "digest")));
    json_decref(rows);
    if (kiln_history_begin(self->history) != 0 ||
        (old_id && kiln_history_artifact_state(self->history, old_id, "replaced") != 0) ||
        kiln_history_artifact_add(self->history, &a, &id) != 0 ||
        kiln_history_commit_whole(self->history) != 0) {
        snprintf(why, sizeof why, "the artifact could not be recorded: %s", kiln_error_last());
        kiln_history_abort(self->history);
        s_reply_error(self, msg, r->id, KILN_EINFRA, why);
        return;
    }
    if (old_digest[0] && strcmp(old_digest, r->digest) != 0)
        s_drop_blob(self, old_digest);
    self->stats.artifacts_added++;
    kiln_affinity_held(job->worker, r->digest);
    json_t *j = json_pack("{s:I, s:s, s:I, s:I}", "id", (json_int_t)id, "name", r->name, "size",
                          (json_int_t)size, "expires_ms", (json_int_t)a.expires_ms);
    s_reply_json(self, msg, r->id, j);
    json_decref(j);
}

/* The run's kept artifacts that the request names (names: each must
 * exist), matches (name as a pattern) or all. */
static void s_artifact_find(kiln_server_t *self, const kiln_transport_msg_t *msg,
                            const Kiln__StoreRequest *r, kiln_cjob_t *job)
{
    json_t *rows = NULL, *out = json_array();
    char why[600];
    if (kiln_history_artifacts_json(self->history, job->run->id, &rows) != 0) {
        s_reply_error(self, msg, r->id, KILN_EINFRA, kiln_error_last());
        json_decref(out);
        return;
    }
    for (size_t k = 0; k < r->n_names; k++) {
        bool found = false;
        size_t i;
        json_t *row;
        json_array_foreach(rows, i, row) {
            if (strcmp(json_string_value(json_object_get(row, "state")), "kept") == 0 &&
                strcmp(json_string_value(json_object_get(row, "name")), r->names[k]) == 0) {
                json_array_append(out, row);
                found = true;
            }
        }
        if (!found) {
            snprintf(why, sizeof why, "Unable to download artifact(s): Artifact not found for name: %s",
                     r->names[k]);
            s_reply_error(self, msg, r->id, KILN_ENOTFOUND, why);
            json_decref(rows);
            json_decref(out);
            return;
        }
    }
    if (r->n_names == 0) {
        size_t i;
        json_t *row;
        json_array_foreach(rows, i, row) {
            if (strcmp(json_string_value(json_object_get(row, "state")), "kept") == 0 &&
                (!r->name[0] || fnmatch(r->name, json_string_value(json_object_get(row, "name")), 0) == 0))
                json_array_append(out, row);
        }
    }
    size_t ai;
    json_t *arow;
    json_array_foreach(out, ai, arow) {
        kiln_affinity_note(self, job, json_string_value(json_object_get(arow, "digest")),
                           (uint64_t)json_integer_value(json_object_get(arow, "size")));
    }
    json_t *doc = json_pack("{s:o}", "artifacts", out);
    s_reply_json(self, msg, r->id, doc);
    json_decref(doc);
    json_decref(rows);
}

void kiln_proto_store_handle(kiln_server_t *self, kiln_transport_msg_t *msg, const char *key_name)
{
    const Kiln__StoreRequest *r = msg->env->store_request;
    kiln_cworker_t *w = kiln_workers_find(self, msg->identity, msg->id_len);
    char why[KILN_ERROR_MAX + 128];
    if (!w || strcmp(w->key_name, key_name) != 0) {
        s_reply_error(self, msg, r->id, KILN_EAGAIN, "the coordinator does not know this worker yet");
        return;
    }
    w->last_seen = kiln_clock_mono_ms();
    kiln_cjob_t *job = kiln_attempts_fenced(self, w, r->job_key, r->token, "store request");
    if (!job) {
        snprintf(why, sizeof why, "job %.200s (token %llu) is not this worker's to run",
                 r->job_key, (unsigned long long)r->token);
        s_reply_error(self, msg, r->id, KILN_ESTALE, why);
        return;
    }
    Kiln__StoreReply rep = KILN__STORE_REPLY__INIT;
    rep.id = r->id;
    rep.digest = r->digest;
    int rc;
    switch (r->op) {
    case KILN__STORE_OP__STORE_STAT: {
        uint64_t size = 0, have = 0;
        rc = kiln_store_stat(self->store, r->digest, &size, &have);
        /* A blob of another repository's or run's is not said to be here:
         * the job sends its bytes like any other (and learns nothing). */
        if (rc == 0 && size != UINT64_MAX && !s_job_may(self, job, r->digest)) {
            size = UINT64_MAX;
            have = 0;
        }
        rep.offset = have;
        if (rc == 0 && size == UINT64_MAX) {
            rc = KILN_ENOTFOUND;
            kiln_error_set("not complete");
        }
        rep.size = size == UINT64_MAX ? 0 : size;
        break;
    }
    case KILN__STORE_OP__STORE_PUT: {
        uint64_t have = 0;
        bool last = r->size && r->offset + r->data.len == r->size;
        /* Every chunk says the whole size, bounded like a repository's
         * caches: a job cannot grow an upload without end. */
        if (r->size == 0 || r->size > self->cfg.cache_quota) {
            rc = KILN_ETOOBIG;
            kiln_error_set("a blob of %llu bytes: a blob has a size, at most the cache quota "
                           "(%llu MB)",
                           (unsigned long long)r->size,
                           (unsigned long long)(self->cfg.cache_quota >> 20));
        } else if (r->offset + r->data.len > r->size) {
            rc = KILN_EINVAL;
            kiln_error_set("chunk past the blob's size");
        } else {
            uint64_t size = 0, held = 0;
            bool complete = kiln_store_stat(self->store, r->digest, &size, &held) == 0 &&
                            size != UINT64_MAX;
            rc = kiln_store_put(self->store, r->digest, r->offset, r->data.data, r->data.len, last,
                                &have);
            /* Sent whole and checked by this upload: the job's to name. A
             * blob that was complete already took nothing; its bytes sent
             * again prove the job has them (s_prove_chunk). */
            if (rc == 0 && last && !complete)
                s_note_sent(self, job, r->digest);
            if (rc == 0 && !complete)
                kiln_affinity_transfer(self, job, r->digest, r->offset, r->data.len, r->size);
            else if (rc == 0 && complete && !s_job_may(self, job, r->digest)) {
                have = r->offset + r->data.len; /* as if taken: the job learns nothing */
                s_prove_chunk(self, job, r, last);
            }
        }
        if (rc == KILN_EINVAL && last)
            kiln_log_warn("worker %s, job %s: %s", w->name, job->key, kiln_error_last());
        rep.offset = have;
        break;
    }
    case KILN__STORE_OP__STORE_GET: {
        size_t got = 0;
        uint64_t size = 0;
        size_t cap = r->size && r->size < sizeof s_chunk ? (size_t)r->size : sizeof s_chunk;
        if (!s_job_may(self, job, r->digest)) {
            rc = KILN_ENOTFOUND;
            kiln_error_set("no blob %s for this job", r->digest);
        } else
            rc = kiln_store_get(self->store, r->digest, r->offset, s_chunk, cap, &got, &size);
        if (rc == 0)
            kiln_affinity_transfer(self, job, r->digest, r->offset, got, size);
        if (rc == 0 && got && r->offset + got == size)
            kiln_affinity_held(w, r->digest);
        rep.data.data = s_chunk;
        rep.data.len = got;
        rep.offset = r->offset;
        rep.size = size == UINT64_MAX ? 0 : size;
        break;
    }
    case KILN__STORE_OP__STORE_CACHE_FIND: s_cache_find(self, msg, r, job); return;
    case KILN__STORE_OP__STORE_CACHE_ADD: s_cache_add(self, msg, r, job); return;
    case KILN__STORE_OP__STORE_ARTIFACT_ADD: s_artifact_add(self, msg, r, job); return;
    case KILN__STORE_OP__STORE_ARTIFACT_FIND: s_artifact_find(self, msg, r, job); return;
    default:
        rc = KILN_EINVAL;
        kiln_error_set("unknown store operation %d", (int)r->op);
        break;
    }
    rep.code = rc;
    rep.error = rc ? (char *)kiln_error_last() : (char *)"";
    s_reply(self, msg, &rep);
}

/* ---- clients ------------------------------------------------------------ */

void kiln_proto_store_client(kiln_server_t *self, const kiln_transport_msg_t *msg,
                             const Kiln__Request *req, const char *client)
{
    json_t *rows = NULL;
    char why[KILN_ERROR_MAX + 128];
    int rc = 0;
    switch (req->kind) {
    case KILN__REQUEST_KIND__REQ_ARTIFACTS:
        rc = kiln_history_artifacts_json(self->history, (int64_t)req->run_id, &rows);
        kiln_proto_client_reply(self, msg, req->request_id, rc, rc ? kiln_error_last() : NULL,
                                (int64_t)req->run_id, rows);
        break;
    case KILN__REQUEST_KIND__REQ_BLOB: {
        /* Only a kept artifact of the named run: a client reads artifacts,
         * not whatever blob it can name. */
        bool allowed = false;
        size_t i;
        json_t *row;
        if ((rc = kiln_history_artifacts_json(self->history, (int64_t)req->run_id, &rows)) == 0)
            json_array_foreach(rows, i, row) allowed =
                allowed || (strcmp(json_string_value(json_object_get(row, "digest")), req->digest) == 0 &&
                            strcmp(json_string_value(json_object_get(row, "state")), "kept") == 0);
        if (rc != 0 || !allowed) {
            snprintf(why, sizeof why, "%s", rc ? kiln_error_last() : "no such artifact in that run");
            kiln_proto_client_reply(self, msg, req->request_id, rc ? rc : KILN_ENOTFOUND, why,
                                    (int64_t)req->run_id, NULL);
            break;
        }
        size_t got = 0;
        uint64_t size = 0;
        size_t cap = req->limit && req->limit < sizeof s_chunk ? req->limit : sizeof s_chunk;
        rc = kiln_store_get(self->store, req->digest, req->offset, s_chunk, cap, &got, &size);
        Kiln__Envelope env = KILN__ENVELOPE__INIT;
        Kiln__Reply reply = KILN__REPLY__INIT;
        reply.request_id = req->request_id;
        reply.code = rc;
        reply.error = rc ? (char *)kiln_error_last() : (char *)"";
        reply.run_id = req->run_id;
        reply.data.data = s_chunk;
        reply.data.len = rc ? 0 : got;
        reply.size = size == UINT64_MAX ? 0 : size;
        env.body_case = KILN__ENVELOPE__BODY_REPLY;
        env.reply = &reply;
        kiln_server_send(self, msg->identity, msg->id_len, &env);
        break;
    }
    case KILN__REQUEST_KIND__REQ_CACHES:
        rc = kiln_history_caches_json(self->history, req->worker[0] ? req->worker : NULL, NULL, &rows);
        kiln_proto_client_reply(self, msg, req->request_id, rc, rc ? kiln_error_last() : NULL, 0,
                                rows);
        break;
    case KILN__REQUEST_KIND__REQ_CACHE_RM: {
        if (!req->worker[0]) {
            kiln_proto_client_reply(self, msg, req->request_id, KILN_EINVAL,
                                    "name the repository whose caches go", 0, NULL);
            break;
        }
        if ((rc = kiln_history_caches_json(self->history, req->worker, NULL, &rows)) != 0) {
            kiln_proto_client_reply(self, msg, req->request_id, rc, kiln_error_last(), 0, NULL);
            break;
        }
        size_t i, n = 0, kl = strlen(req->job_id);
        bool prefix = kl && req->job_id[kl - 1] == '*';
        json_t *row;
        json_array_foreach(rows, i, row) {
            const char *key = json_string_value(json_object_get(row, "key"));
            bool match = !kl || (prefix ? strncmp(key, req->job_id, kl - 1) == 0
                                        : strcmp(key, req->job_id) == 0);
            if (!match)
                continue;
            char by[200];
            snprintf(by, sizeof by, "removed by %s", client);
            if ((rc = s_cache_remove(self, row, by)) != 0)
                break;
            n++;
        }
        if (n) {
            char detail[1200];
            snprintf(detail, sizeof detail, "%zu cache entries of %s%s%s", n, req->worker,
                     kl ? " matching " : "", req->job_id);
            if (kiln_history_begin(self->history) != 0 ||
                kiln_history_audit(self->history, "cache_rm", client, NULL, detail,
                                   kiln_clock_wall_ms()) != 0 ||
                kiln_history_commit(self->history) != 0)
                kiln_log_error("history: audit of a cache removal: %s", kiln_error_last());
        }
        json_t *j = json_pack("{s:I}", "removed", (json_int_t)n);
        kiln_proto_client_reply(self, msg, req->request_id, rc, rc ? kiln_error_last() : NULL, 0, j);
        json_decref(j);
        break;
    }
    default: break;
    }
    json_decref(rows);
}

/* Artifacts past their retention and caches unused for the configured days
 * go; from the timer, at most once a minute. */
void kiln_proto_store_tick(kiln_server_t *self, int64_t now_mono)
{
    if (now_mono < self->store_sweep_at)
        return;
    self->store_sweep_at = now_mono + 60000;
    int64_t now = kiln_clock_wall_ms();
    json_t *rows = NULL;
    size_t i;
    json_t *row;
    if (kiln_history_artifacts_expired(self->history, now, &rows) == 0) {
        json_array_foreach(rows, i, row) {
            int64_t id = json_integer_value(json_object_get(row, "id"));
            if (kiln_history_begin(self->history) != 0 ||
                kiln_history_artifact_state(self->history, id, "expired") != 0 ||
                kiln_history_commit_whole(self->history) != 0) {
                kiln_history_abort(self->history);
                break;
            }
            self->stats.artifacts_expired++;
            kiln_log_info("artifact '%s' of run %lld expired",
                          json_string_value(json_object_get(row, "name")),
                          (long long)json_integer_value(json_object_get(row, "run_id")));
            s_drop_blob(self, json_string_value(json_object_get(row, "digest")));
        }
        json_decref(rows);
        rows = NULL;
    }
    unsigned dropped = 0;
    if (kiln_store_sweep_partial(self->store, 24 * 3600, &dropped) != 0)
        kiln_log_warn("%s", kiln_error_last());
    else if (dropped)
        kiln_log_info("store: %u uploads left unfinished for a day dropped", dropped);
    if (kiln_history_caches_older(self->history, now - (int64_t)self->cfg.cache_max_age_days * S_DAY_MS,
                                  &rows) == 0) {
        char why[96];
        snprintf(why, sizeof why, "not used for %u days", self->cfg.cache_max_age_days);
        json_array_foreach(rows, i, row) {
            if (s_cache_remove(self, row, why) != 0)
                break;
            self->stats.cache_evictions++;
        }
        json_decref(rows);
    }
}

json_t *kiln_proto_store_stats(kiln_server_t *self)
{
    json_t *pools = kiln_affinity_pools_json(self);
    kiln_store_stats_t s;
    kiln_store_stats(self->store, &s);
    const kiln_cstats_t *st = &self->stats;
    /* The rate a job's wait for a warm worker is weighed against, and
     * whether it was measured (affinity.c). */
    json_t *rate = json_pack("{s:f, s:s}", "mb_per_s", kiln_affinity_rate(self) * 1000.0 / 1048576.0,
                             "from", self->cfg.restore_mb_s ? "configured"
                                     : self->store_rate > 0 ? "measured" : "assumed");
    return json_pack("{s:o, s:o, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
                     "pools", pools, "restore_rate", rate,
                     "backend", kiln_store_backend_name(self->store), "cache_hits",
                     (json_int_t)st->cache_hits, "cache_partial_hits",
                     (json_int_t)st->cache_partial_hits, "cache_misses",
                     (json_int_t)st->cache_misses, "cache_saves", (json_int_t)st->cache_saves,
                     "cache_evictions", (json_int_t)st->cache_evictions, "artifacts_added",
                     (json_int_t)st->artifacts_added, "artifacts_expired",
                     (json_int_t)st->artifacts_expired, "bytes_in", (json_int_t)s.put_bytes,
                     "bytes_out", (json_int_t)s.get_bytes, "blobs_kept", (json_int_t)s.blobs_kept,
                     "blobs_removed", (json_int_t)s.blobs_removed, "blobs_refused",
                     (json_int_t)s.refused);
}
