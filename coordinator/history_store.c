/* history_store.c: the history's record of the farm's store: cache entries
 * and artifacts, each naming a blob (coordinator/store.h) by digest.
 *
 * Writes are the history's like any other (prepared at open, through the
 * journal) but made with KILN_HDB_NOW: a store request is answered only
 * after its row committed, so one that cannot be written fails at once
 * rather than waiting for room. Reads build JSON for the store's callers
 * (proto_store.c) and the CLI.
 */
#include <sqlite3.h>
#include <string.h>

#include "common/error.h"
#include "coordinator/history.h"
#include "coordinator/history_int.h"

static json_t *s_text(sqlite3_stmt *stmt, int col)
{
    const unsigned char *t = sqlite3_column_text(stmt, col);
    return t ? json_string((const char *)t) : json_null();
}

static int s_write(kiln_history_t *self, int which, const char *what)
{
    sqlite3_stmt *stmt = self->stmt[which];
    int rc = kiln_hdb_write(self, stmt, KILN_HDB_NOW);
    if (rc != 0)
        kiln_hdb_sql_error(self, "%s", what);
    kiln_hdb_reset(stmt);
    return rc ? (rc < 0 ? rc : KILN_EINFRA) : 0;
}

int kiln_history_attempt_placement(kiln_history_t *self, int64_t run_id, const char *job_id,
                                   unsigned attempt, const char *why)
{
    sqlite3_stmt *stmt = self->stmt[KILN_HISTORY_STMT_ATTEMPT_PLACEMENT];
    int rc = -1;
    if (kiln_hdb_bind_int64(self, stmt, 1, run_id) != SQLITE_OK ||
        kiln_hdb_bind_text(self, stmt, 2, job_id, -1) != SQLITE_OK ||
        kiln_hdb_bind_int64(self, stmt, 3, attempt) != SQLITE_OK ||
        kiln_hdb_bind_text(self, stmt, 4, why, -1) != SQLITE_OK || kiln_hdb_write(self, stmt, 0) != 0) {
        kiln_hdb_sql_error(self, "placement of %lld/%s", (long long)run_id, job_id);
        goto cleanup;
    }
    rc = 0;
cleanup:
    kiln_hdb_reset(stmt);
    return rc;
}

int kiln_history_cache_add(kiln_history_t *self, const kiln_history_cache_t *c, int64_t *id)
{
    sqlite3_stmt *stmt = self->stmt[KILN_HISTORY_STMT_CACHE_ADD];
    if (kiln_hdb_bind_text(self, stmt, 1, c->repository, -1) != SQLITE_OK ||
        kiln_hdb_bind_text(self, stmt, 2, c->ref, -1) != SQLITE_OK ||
        kiln_hdb_bind_text(self, stmt, 3, c->key, -1) != SQLITE_OK ||
        kiln_hdb_bind_text(self, stmt, 4, c->version, -1) != SQLITE_OK ||
        kiln_hdb_bind_text(self, stmt, 5, c->digest, -1) != SQLITE_OK ||
        kiln_hdb_bind_int64(self, stmt, 6, (int64_t)c->size) != SQLITE_OK ||
        kiln_hdb_bind_int64(self, stmt, 7, c->created_ms) != SQLITE_OK ||
        kiln_hdb_bind_text(self, stmt, 8, c->meta ? c->meta : "{}", -1) != SQLITE_OK ||
        kiln_hdb_bind_int64(self, stmt, 9, c->run_id) != SQLITE_OK ||
        kiln_hdb_bind_text(self, stmt, 10, c->job_id ? c->job_id : "", -1) != SQLITE_OK) {
        kiln_hdb_sql_error(self, "cache entry %s", c->key);
        kiln_hdb_reset(stmt);
        return KILN_ERROR;
    }
    int rc = s_write(self, KILN_HISTORY_STMT_CACHE_ADD, "cache entry");
    if (rc == 0)
        *id = sqlite3_last_insert_rowid(self->db);
    return rc;
}

int kiln_history_cache_touch(kiln_history_t *self, int64_t id, int64_t used_ms)
{
    sqlite3_stmt *stmt = self->stmt[KILN_HISTORY_STMT_CACHE_TOUCH];
    if (kiln_hdb_bind_int64(self, stmt, 1, id) != SQLITE_OK ||
        kiln_hdb_bind_int64(self, stmt, 2, used_ms) != SQLITE_OK) {
        kiln_hdb_reset(stmt);
        kiln_hdb_sql_error(self, "cache entry %lld", (long long)id);
        return KILN_ERROR;
    }
    return s_write(self, KILN_HISTORY_STMT_CACHE_TOUCH, "cache entry's use");
}

int kiln_history_cache_delete(kiln_history_t *self, int64_t id)
{
    sqlite3_stmt *stmt = self->stmt[KILN_HISTORY_STMT_CACHE_DELETE];
    if (kiln_hdb_bind_int64(self, stmt, 1, id) != SQLITE_OK) {
        kiln_hdb_reset(stmt);
        kiln_hdb_sql_error(self, "cache entry %lld", (long long)id);
        return KILN_ERROR;
    }
    return s_write(self, KILN_HISTORY_STMT_CACHE_DELETE, "cache entry's removal");
}

int kiln_history_artifact_add(kiln_history_t *self, const kiln_history_artifact_t *a,
                              int64_t *id)
{
    sqlite3_stmt *stmt = self->stmt[KILN_HISTORY_STMT_ARTIFACT_ADD];
    if (kiln_hdb_bind_int64(self, stmt, 1, a->run_id) != SQLITE_OK ||
        kiln_hdb_bind_text(self, stmt, 2, a->job_id, -1) != SQLITE_OK ||
        kiln_hdb_bind_text(self, stmt, 3, a->name, -1) != SQLITE_OK ||
        kiln_hdb_bind_text(self, stmt, 4, a->digest, -1) != SQLITE_OK ||
        kiln_hdb_bind_int64(self, stmt, 5, (int64_t)a->size) != SQLITE_OK ||
        kiln_hdb_bind_text(self, stmt, 6, a->meta ? a->meta : "{}", -1) != SQLITE_OK ||
        kiln_hdb_bind_int64(self, stmt, 7, a->created_ms) != SQLITE_OK ||
        kiln_hdb_bind_int64(self, stmt, 8, a->expires_ms) != SQLITE_OK) {
        kiln_hdb_reset(stmt);
        kiln_hdb_sql_error(self, "artifact %s", a->name);
        return KILN_ERROR;
    }
    int rc = s_write(self, KILN_HISTORY_STMT_ARTIFACT_ADD, "artifact");
    if (rc == 0)
        *id = sqlite3_last_insert_rowid(self->db);
    return rc;
}

int kiln_history_artifact_state(kiln_history_t *self, int64_t id, const char *state)
{
    sqlite3_stmt *stmt = self->stmt[KILN_HISTORY_STMT_ARTIFACT_STATE];
    if (kiln_hdb_bind_int64(self, stmt, 1, id) != SQLITE_OK ||
        kiln_hdb_bind_text(self, stmt, 2, state, -1) != SQLITE_OK) {
        kiln_hdb_reset(stmt);
        kiln_hdb_sql_error(self, "artifact %lld", (long long)id);
        return KILN_ERROR;
    }
    return s_write(self, KILN_HISTORY_STMT_ARTIFACT_STATE, "artifact's state");
}

/* Rows of a query as an array of objects, one member per column (named by
 * the query; integer columns as integers, meta parsed). */
static int s_query(kiln_history_t *self, const char *sql, const char *what, json_t **out,
                   int (*bind)(sqlite3_stmt *, const void *), const void *ctx)
{
    sqlite3_stmt *stmt = NULL;
    json_t *arr = json_array();
    int rc = KILN_ERROR, step;
    *out = NULL;
    if (!arr || sqlite3_prepare_v2(self->db, sql, -1, &stmt, NULL) != SQLITE_OK ||
        (bind && bind(stmt, ctx) != SQLITE_OK)) {
        kiln_hdb_sql_error(self, "%s", what);
        goto cleanup;
    }
    int n = sqlite3_column_count(stmt);
    while ((step = sqlite3_step(stmt)) == SQLITE_ROW) {
        json_t *row = json_object();
        for (int c = 0; row && c < n; c++) {
            const char *name = sqlite3_column_name(stmt, c);
            json_t *v;
            if (sqlite3_column_type(stmt, c) == SQLITE_INTEGER)
                v = json_integer(sqlite3_column_int64(stmt, c));
            else if (strcmp(name, "meta") == 0) {
                const char *t = (const char *)sqlite3_column_text(stmt, c);
                v = t ? json_loads(t, 0, NULL) : NULL;
                if (!v)
                    v = json_object();
            } else
                v = s_text(stmt, c);
            json_object_set_new(row, name, v);
        }
        if (!row || json_array_append_new(arr, row) != 0) {
            kiln_error_set("out of memory");
            goto cleanup;
        }
    }
    if (step != SQLITE_DONE) {
        kiln_hdb_sql_error(self, "%s", what);
        goto cleanup;
    }
    *out = arr;
    arr = NULL;
    rc = 0;
cleanup:
    sqlite3_finalize(stmt);
    json_decref(arr);
    return rc;
}

typedef struct {
    const char *s1, *s2;
    int64_t i1;
} s_args_t;

static int s_bind_repo_version(sqlite3_stmt *stmt, const void *ctx)
{
    const s_args_t *a = ctx;
    int rc = sqlite3_bind_text(stmt, 1, a->s1, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK && a->s2)
        rc = sqlite3_bind_text(stmt, 2, a->s2, -1, SQLITE_STATIC);
    return rc;
}

static int s_bind_i1(sqlite3_stmt *stmt, const void *ctx)
{
    const s_args_t *a = ctx;
    return sqlite3_bind_int64(stmt, 1, a->i1);
}

#define S_CACHE_COLS                                                                        \
    "id, repository, ref, key, version, digest, size, created_ms, used_ms, meta, run_id, " \
    "job_id"

int kiln_history_caches_json(kiln_history_t *self, const char *repository, const char *version,
                             json_t **out)
{
    s_args_t a = {.s1 = repository ? repository : "", .s2 = version};
    if (!repository)
        return s_query(self, "SELECT " S_CACHE_COLS " FROM caches ORDER BY repository, used_ms DESC",
                       "cache entries", out, NULL, NULL);
    if (!version)
        return s_query(self,
                       "SELECT " S_CACHE_COLS " FROM caches WHERE repository = ?1"
                       " ORDER BY used_ms DESC",
                       "cache entries", out, s_bind_repo_version, &a);
    return s_query(self,
                   "SELECT " S_CACHE_COLS " FROM caches WHERE repository = ?1 AND version = ?2"
                   " ORDER BY created_ms DESC LIMIT 100000",
                   "cache entries", out, s_bind_repo_version, &a);
}

int kiln_history_caches_older(kiln_history_t *self, int64_t used_before_ms, json_t **out)
{
    s_args_t a = {.i1 = used_before_ms};
    return s_query(self, "SELECT " S_CACHE_COLS " FROM caches WHERE used_ms < ?1 LIMIT 1000",
                   "cache entries", out, s_bind_i1, &a);
}

#define S_ARTIFACT_COLS \
    "id, run_id, job_id, name, digest, size, meta, created_ms, expires_ms, state"

int kiln_history_artifacts_json(kiln_history_t *self, int64_t run_id, json_t **out)
{
    s_args_t a = {.i1 = run_id};
    return s_query(self,
                   "SELECT " S_ARTIFACT_COLS " FROM artifacts WHERE run_id = ?1 ORDER BY id",
                   "artifacts", out, s_bind_i1, &a);
}

int kiln_history_artifacts_expired(kiln_history_t *self, int64_t now_ms, json_t **out)
{
    s_args_t a = {.i1 = now_ms};
    return s_query(self,
                   "SELECT " S_ARTIFACT_COLS " FROM artifacts WHERE state = 'kept'"
                   " AND expires_ms <= ?1 LIMIT 1000",
                   "artifacts", out, s_bind_i1, &a);
}

int kiln_history_blob_used(kiln_history_t *self, const char *digest, bool *used)
{
    static const char sql[] =
        "SELECT EXISTS (SELECT 1 FROM caches WHERE digest = ?1) OR"
        " EXISTS (SELECT 1 FROM artifacts WHERE digest = ?1 AND state = 'kept')";
    sqlite3_stmt *stmt = NULL;
    int rc = KILN_ERROR;
    if (sqlite3_prepare_v2(self->db, sql, -1, &stmt, NULL) != SQLITE_OK ||
        sqlite3_bind_text(stmt, 1, digest, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_step(stmt) != SQLITE_ROW) {
        kiln_hdb_sql_error(self, "uses of %s", digest);
        goto cleanup;
    }
    *used = sqlite3_column_int(stmt, 0) != 0;
    rc = 0;
cleanup:
    sqlite3_finalize(stmt);
    return rc;
}

int kiln_history_blob_visible(kiln_history_t *self, const char *digest, const char *repository,
                              int64_t run_id, bool *visible)
{
    static const char sql[] =
        "SELECT EXISTS (SELECT 1 FROM caches WHERE digest = ?1 AND repository = ?2) OR"
        " EXISTS (SELECT 1 FROM artifacts WHERE digest = ?1 AND run_id = ?3 AND state = 'kept')";
    sqlite3_stmt *stmt = NULL;
    int rc = KILN_ERROR;
    if (sqlite3_prepare_v2(self->db, sql, -1, &stmt, NULL) != SQLITE_OK ||
        sqlite3_bind_text(stmt, 1, digest, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_text(stmt, 2, repository, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_int64(stmt, 3, run_id) != SQLITE_OK || sqlite3_step(stmt) != SQLITE_ROW) {
        kiln_hdb_sql_error(self, "who may read %s", digest);
        goto cleanup;
    }
    *visible = sqlite3_column_int(stmt, 0) != 0;
    rc = 0;
cleanup:
    sqlite3_finalize(stmt);
    return rc;
}
