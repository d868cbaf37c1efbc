/* history_journal.c: what the history store does when its disk is full.
 *
 * The coordinator acts on a batch of worker messages before the batch
 * commits: jobs finish, their dependents are queued, Redis is told. A commit
 * that fails for want of room is rolled back whole, so the history would
 * fall behind what the farm did, for good (a finished run left "running",
 * its logs gone, a succeeded job run again after a restart). So the writes
 * of the open transaction are kept (each its statement and the values the
 * kiln_hdb_bind_* calls recorded) until it commits, and a failed one does
 * not lose them: they wait, the store is "down", and every later write joins
 * them in order. While down nothing new is accepted that must be on disk at
 * once (a run's creation, which hands out its number), and the server holds
 * back acknowledgements, so workers keep their results. kiln_history_retry,
 * on the server's timer, does the waiting writes in one transaction once
 * there is room.
 *
 * The waiting writes are bounded: log output that would take them past
 * KILN_HISTORY_WAIT_MAX is counted per step instead of kept, and once the
 * store is up a line in each such step's log says how many bytes were lost
 * and why. Everything else (states, attempts, outputs) is small per job and
 * is always kept.
 */
#include "coordinator/history.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include <sqlite3.h>

#include "common/clock.h"
#include "common/error.h"
#include "common/log.h"
#include "coordinator/history_int.h"

bool kiln_hdb_disk_error(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_FULL:
    case SQLITE_IOERR:
    case SQLITE_READONLY:
    case SQLITE_CANTOPEN:
    case SQLITE_BUSY:
        return true;
    default:
        return false;
    }
}

/* ---- write records ---------------------------------------------------- */

static int s_reserve(kiln_hdb_list_t *l, size_t bytes)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        kiln_hdb_rec_t *grown = realloc(l->recs, cap * sizeof *grown);
        if (!grown)
            return kiln_hdb_oom();
        l->recs = grown;
        l->cap = cap;
    }
    if (l->used + bytes > l->acap) {
        size_t cap = l->acap ? l->acap : 4096;
        while (cap < l->used + bytes)
            cap *= 2;
        char *grown = realloc(l->arena, cap);
        if (!grown)
            return kiln_hdb_oom();
        l->arena = grown;
        l->acap = cap;
    }
    return 0;
}

static size_t s_bytes(const kiln_hdb_list_t *l)
{
    return l->used + l->n * sizeof *l->recs;
}

/* Appends record r, whose bytes are in src's arena from r->base on (len
 * bytes), to l, moving its offsets. */
static int s_append(kiln_hdb_list_t *l, const kiln_hdb_rec_t *r, const char *src, size_t len)
{
    if (s_reserve(l, len) != 0)
        return -1;
    kiln_hdb_rec_t *d = &l->recs[l->n++];
    *d = *r;
    size_t shift = l->used;
    if (len)
        memcpy(l->arena + l->used, src + r->base, len);
    l->used += len;
    d->base = shift;
    for (unsigned k = 0; k < d->n; k++)
        if (d->v[k].type == SQLITE_TEXT || d->v[k].type == SQLITE_BLOB)
            d->v[k].off = d->v[k].off - r->base + shift;
    return 0;
}

/* Frees the records from index `from` on (their bytes too). */
static void s_truncate(kiln_hdb_list_t *l, size_t from)
{
    if (from < l->n) {
        l->used = l->recs[from].base;
        l->n = from;
    }
}

static void s_free_list(kiln_hdb_list_t *l)
{
    free(l->recs);
    free(l->arena);
    memset(l, 0, sizeof *l);
}

/* Moves every record of from to the end of to (from is left empty). */
static int s_move(kiln_hdb_list_t *to, kiln_hdb_list_t *from)
{
    int rc = 0;
    for (size_t i = 0; i < from->n && rc == 0; i++) {
        size_t end = i + 1 < from->n ? from->recs[i + 1].base : from->used;
        rc = s_append(to, &from->recs[i], from->arena, end - from->recs[i].base);
    }
    s_truncate(from, 0);
    return rc;
}

static void s_discard_cur(kiln_history_t *self)
{
    self->journal.cur.n = 0;
    self->journal.cur.used = 0;
    self->journal.cur_stmt = NULL;
}

/* The record being made: one per write, in cur (its first record). */
static kiln_hdb_rec_t *s_cur(kiln_history_t *self, sqlite3_stmt *stmt)
{
    kiln_hdb_journal_t *j = &self->journal;
    if (j->cur_stmt != stmt || j->cur.n == 0) {
        if (s_reserve(&j->cur, 0) != 0)
            return NULL;
        j->cur.n = 1;
        j->cur.used = 0;
        j->cur_stmt = stmt;
        memset(&j->cur.recs[0], 0, sizeof j->cur.recs[0]);
        j->cur.recs[0].stmt = -1;
    }
    return &j->cur.recs[0];
}

static kiln_hdb_val_t *s_val(kiln_history_t *self, sqlite3_stmt *stmt, int col)
{
    /* Every write binds its first parameter first: a record left by a
     * write that failed before it was made is not carried into this one. */
    if (col == 1)
        s_discard_cur(self);
    kiln_hdb_rec_t *r = s_cur(self, stmt);
    if (!r || col < 1 || col > KILN_HDB_MAX_PARAMS)
        return NULL;
    if ((unsigned)col > r->n)
        r->n = (unsigned)col;
    return &r->v[col - 1];
}

/* Copies bytes into cur's arena; their offset, or (size_t)-1. */
static size_t s_keep_bytes(kiln_history_t *self, const void *data, size_t len)
{
    kiln_hdb_list_t *c = &self->journal.cur;
    size_t n = c->n;
    c->n = 0; /* s_reserve would grow the records too: only the arena here */
    int rc = s_reserve(c, len);
    c->n = n;
    if (rc != 0)
        return (size_t)-1;
    size_t off = c->used;
    if (len)
        memcpy(c->arena + off, data, len);
    c->used += len;
    return off;
}

int kiln_hdb_bind_int64(kiln_history_t *self, sqlite3_stmt *stmt, int col, int64_t v)
{
    kiln_hdb_val_t *val = s_val(self, stmt, col);
    if (!val)
        return SQLITE_NOMEM;
    val->type = SQLITE_INTEGER;
    val->i = v;
    return sqlite3_bind_int64(stmt, col, v);
}

int kiln_hdb_bind_double(kiln_history_t *self, sqlite3_stmt *stmt, int col, double v)
{
    kiln_hdb_val_t *val = s_val(self, stmt, col);
    if (!val)
        return SQLITE_NOMEM;
    val->type = SQLITE_FLOAT;
    val->d = v;
    return sqlite3_bind_double(stmt, col, v);
}

int kiln_hdb_bind_null(kiln_history_t *self, sqlite3_stmt *stmt, int col)
{
    kiln_hdb_val_t *val = s_val(self, stmt, col);
    if (!val)
        return SQLITE_NOMEM;
    val->type = SQLITE_NULL;
    return sqlite3_bind_null(stmt, col);
}

int kiln_hdb_bind_text(kiln_history_t *self, sqlite3_stmt *stmt, int col, const char *text,
                       int len)
{
    if (!text)
        return kiln_hdb_bind_null(self, stmt, col);
    size_t n = len < 0 ? strlen(text) : (size_t)len;
    kiln_hdb_val_t *val = s_val(self, stmt, col);
    size_t off = val ? s_keep_bytes(self, text, n) : (size_t)-1;
    if (off == (size_t)-1)
        return SQLITE_NOMEM;
    val->type = SQLITE_TEXT;
    val->off = off;
    val->len = n;
    return sqlite3_bind_text(stmt, col, text, len, SQLITE_STATIC);
}

int kiln_hdb_bind_blob(kiln_history_t *self, sqlite3_stmt *stmt, int col, const void *data,
                       size_t len)
{
    kiln_hdb_val_t *val = s_val(self, stmt, col);
    size_t off = val ? s_keep_bytes(self, data, len) : (size_t)-1;
    if (off == (size_t)-1)
        return SQLITE_NOMEM;
    val->type = SQLITE_BLOB;
    val->off = off;
    val->len = len;
    return sqlite3_bind_blob64(stmt, col, len ? data : "", len, SQLITE_STATIC);
}

/* Files the record of the write just made (or to be made later) into l. */
static int s_file(kiln_history_t *self, sqlite3_stmt *stmt, kiln_hdb_list_t *l)
{
    kiln_hdb_journal_t *j = &self->journal;
    kiln_hdb_rec_t *r = s_cur(self, stmt);
    int rc = -1;
    if (!r)
        goto cleanup;
    r->stmt = -1;
    for (int i = 0; i < KILN_HISTORY_STMT_COUNT; i++)
        if (self->stmt[i] == stmt)
            r->stmt = i;
    if (r->stmt < 0) {
        /* Every write goes through a statement prepared at open (history.c):
         * one that is not could not be done again. */
        kiln_error_set("history: a write through a statement not prepared at open");
        s_discard_cur(self);
        return -1;
    }
    r->base = 0;
    rc = s_append(l, r, j->cur.arena, j->cur.used);
cleanup:
    j->cur.n = 0;
    j->cur.used = 0;
    j->cur_stmt = NULL;
    if (rc != 0)
        kiln_error_set("history: out of memory keeping a write");
    return rc;
}

/* Does record r again on the connection: SQLITE_DONE or SQLite's error. */
static int s_replay(kiln_history_t *self, const kiln_hdb_list_t *l, const kiln_hdb_rec_t *r)
{
    sqlite3_stmt *stmt = self->stmt[r->stmt];
    int rc = SQLITE_OK;
    for (unsigned k = 0; k < r->n && rc == SQLITE_OK; k++) {
        const kiln_hdb_val_t *v = &r->v[k];
        int col = (int)k + 1;
        switch (v->type) {
        case SQLITE_INTEGER: rc = sqlite3_bind_int64(stmt, col, v->i); break;
        case SQLITE_FLOAT: rc = sqlite3_bind_double(stmt, col, v->d); break;
        case SQLITE_NULL: rc = sqlite3_bind_null(stmt, col); break;
        case SQLITE_TEXT:
            rc = sqlite3_bind_text(stmt, col, l->arena + v->off, (int)v->len, SQLITE_STATIC);
            break;
        case SQLITE_BLOB:
            rc = sqlite3_bind_blob64(stmt, col, v->len ? l->arena + v->off : "", v->len,
                                     SQLITE_STATIC);
            break;
        default: break;
        }
        /* A parameter the statement does not have: nothing to bind. */
        if (rc == SQLITE_RANGE)
            rc = SQLITE_OK;
    }
    if (rc == SQLITE_OK)
        rc = sqlite3_step(stmt);
    kiln_hdb_reset(stmt);
    return rc;
}

/* Sets the reason from the connection's last error: the path and what the
 * disk said. */
static void s_set_why(kiln_history_t *self, int rc)
{
    kiln_hdb_journal_t *j = &self->journal;
    int err = sqlite3_system_errno(self->db);
    snprintf(j->why, sizeof j->why, "history: cannot write %s: %s%s%s%s",
             self->path ? self->path : "(memory)",
             rc == SQLITE_ABORT ? "a batch was rolled back after an error inside it"
                                : sqlite3_errstr(rc),
             err ? " (" : "", err ? strerror(err) : "", err ? ")" : "");
}

void kiln_hdb_go_down(kiln_history_t *self, int rc)
{
    kiln_hdb_journal_t *j = &self->journal;
    if (!sqlite3_get_autocommit(self->db)) {
        sqlite3_step(self->stmt[KILN_HISTORY_STMT_ROLLBACK]);
        kiln_hdb_reset(self->stmt[KILN_HISTORY_STMT_ROLLBACK]);
    }
    s_set_why(self, rc);
    /* The rolled-back transaction's writes go first: they happened first. */
    if (s_move(&j->wait, &j->txn) != 0)
        kiln_log_error("history: writes of the failed batch are lost: %s", kiln_error_last());
    if (!j->down) {
        j->down = true;
        j->since_ms = kiln_clock_wall_ms();
        j->failures++;
        kiln_log_error("%s; new runs are refused and the farm's writes wait in memory until "
                       "there is room", j->why);
    }
}

int kiln_hdb_write(kiln_history_t *self, sqlite3_stmt *stmt, unsigned flags)
{
    kiln_hdb_journal_t *j = &self->journal;
    if (j->down) {
        if (flags & KILN_HDB_NOW) {
            s_discard_cur(self);
            kiln_error_set("%s", j->why);
            return KILN_EINFRA;
        }
        return s_file(self, stmt, &j->wait);
    }
    /* SQLite may have rolled the batch back by itself after an error inside
     * it (out of memory, an I/O error on a read): what it held is not on
     * disk, and this write would run on its own. Both wait instead. */
    if (self->depth && sqlite3_get_autocommit(self->db)) {
        kiln_hdb_go_down(self, SQLITE_ABORT);
        if (flags & KILN_HDB_NOW) {
            s_discard_cur(self);
            kiln_error_set("%s", j->why);
            return KILN_EINFRA;
        }
        return s_file(self, stmt, &j->wait);
    }
    int rc = sqlite3_step(stmt);
    if (rc == SQLITE_DONE) {
        if (self->depth)
            return s_file(self, stmt, &j->txn);
        s_discard_cur(self);
        return 0;
    }
    if (!kiln_hdb_disk_error(rc)) {
        s_discard_cur(self);
        return -1;
    }
    kiln_hdb_go_down(self, rc);
    if (flags & KILN_HDB_NOW) {
        s_discard_cur(self);
        kiln_error_set("%s", j->why);
        return KILN_EINFRA;
    }
    /* Not done: it waits with the others, after its transaction's. */
    return s_file(self, stmt, &j->wait);
}

int kiln_hdb_journal_begin(kiln_history_t *self)
{
    kiln_hdb_journal_t *j = &self->journal;
    j->batch_mark = j->wait.n;
    return j->down ? 1 : 0;
}

int kiln_hdb_journal_commit(kiln_history_t *self, int rc)
{
    kiln_hdb_journal_t *j = &self->journal;
    if (!j->down && rc == SQLITE_DONE) {
        s_truncate(&j->txn, 0);
        return 0;
    }
    if (!j->down && kiln_hdb_disk_error(rc))
        kiln_hdb_go_down(self, rc);
    if (j->down) {
        kiln_error_set("%s (%zu writes wait for room)", j->why, j->wait.n);
        return KILN_EINFRA;
    }
    /* Not the disk: the batch is rolled back and its writes are not kept,
     * for doing them again would fail the same way. */
    kiln_hdb_sql_error(self, "commit");
    if (!sqlite3_get_autocommit(self->db)) {
        sqlite3_step(self->stmt[KILN_HISTORY_STMT_ROLLBACK]);
        kiln_hdb_reset(self->stmt[KILN_HISTORY_STMT_ROLLBACK]);
    }
    s_truncate(&j->txn, 0);
    return -1;
}

void kiln_history_abort(kiln_history_t *self)
{
    assert(self);
    kiln_hdb_journal_t *j = &self->journal;
    if (self->depth == 0)
        return;
    if (!sqlite3_get_autocommit(self->db)) {
        sqlite3_step(self->stmt[KILN_HISTORY_STMT_ROLLBACK]);
        kiln_hdb_reset(self->stmt[KILN_HISTORY_STMT_ROLLBACK]);
    }
    s_truncate(&j->txn, 0);
    s_truncate(&j->wait, j->batch_mark);
    s_discard_cur(self);
    self->depth = 0;
}

int kiln_history_commit_whole(kiln_history_t *self)
{
    assert(self);
    if (self->depth != 1) {
        /* A caller's mistake: the inner batch ends as an ordinary one. */
        if (self->depth > 0 && kiln_history_commit(self) != 0)
            kiln_log_warn("history: %s", kiln_error_last());
        kiln_error_set("history: a whole batch must be the outermost one");
        return KILN_EINVAL;
    }
    kiln_hdb_journal_t *j = &self->journal;
    size_t mark = j->batch_mark;
    int rc = kiln_history_commit(self);
    if (rc != 0)
        s_truncate(&j->wait, mark);
    return rc;
}

bool kiln_hdb_log_lost(kiln_history_t *self, int64_t run_id, const char *job_id,
                       unsigned attempt, unsigned step, size_t len)
{
    kiln_hdb_journal_t *j = &self->journal;
    if (!j->down || s_bytes(&j->wait) + len + sizeof(kiln_hdb_rec_t) <= KILN_HISTORY_WAIT_MAX)
        return false;
    j->lost_bytes += len;
    for (size_t i = 0; i < j->n_loss; i++) {
        kiln_hdb_loss_t *l = &j->loss[i];
        if (l->run_id == run_id && l->attempt == attempt && l->step == step &&
            strcmp(l->job_id, job_id) == 0) {
            l->bytes += len;
            return true;
        }
    }
    if (j->n_loss < KILN_HISTORY_LOSS_MAX) {
        kiln_hdb_loss_t *l = &j->loss[j->n_loss++];
        l->run_id = run_id;
        snprintf(l->job_id, sizeof l->job_id, "%s", job_id);
        l->attempt = attempt;
        l->step = step;
        l->bytes = len;
    }
    return true;
}

/* The markers for output that was not kept, in the open transaction. */
static int s_write_losses(kiln_history_t *self)
{
    kiln_hdb_journal_t *j = &self->journal;
    sqlite3_stmt *stmt = self->stmt[KILN_HISTORY_STMT_LOG_APPEND];
    int64_t now = kiln_clock_wall_ms();
    for (size_t i = 0; i < j->n_loss; i++) {
        const kiln_hdb_loss_t *l = &j->loss[i];
        char text[200];
        int n = snprintf(text, sizeof text,
                         "[kiln: %llu bytes of output lost here: the history disk was full]\n",
                         (unsigned long long)l->bytes);
        int rc = SQLITE_OK;
        if (sqlite3_bind_int64(stmt, 1, l->run_id) != SQLITE_OK ||
            sqlite3_bind_text(stmt, 2, l->job_id, -1, SQLITE_STATIC) != SQLITE_OK ||
            sqlite3_bind_int64(stmt, 3, l->attempt) != SQLITE_OK ||
            sqlite3_bind_int64(stmt, 4, l->step) != SQLITE_OK ||
            sqlite3_bind_int(stmt, 5, 2) != SQLITE_OK ||
            sqlite3_bind_int64(stmt, 6, now) != SQLITE_OK ||
            sqlite3_bind_blob(stmt, 7, text, n, SQLITE_STATIC) != SQLITE_OK ||
            (rc = sqlite3_step(stmt)) != SQLITE_DONE) {
            kiln_hdb_reset(stmt);
            return rc == SQLITE_OK ? SQLITE_ERROR : rc;
        }
        kiln_hdb_reset(stmt);
    }
    return SQLITE_DONE;
}

int kiln_history_retry(kiln_history_t *self)
{
    assert(self);
    kiln_hdb_journal_t *j = &self->journal;
    if (!j->down || self->depth > 0)
        return 0;
    /* Replaying everything only to fail at the commit would cost the loop a
     * lot each second while the disk stays full: look first. */
    if (self->path && strcmp(self->path, ":memory:") != 0) {
        char dir[4096];
        snprintf(dir, sizeof dir, "%s", self->path);
        char *slash = strrchr(dir, '/');
        if (slash)
            *(slash == dir ? slash + 1 : slash) = '\0';
        else
            snprintf(dir, sizeof dir, ".");
        struct statvfs vfs;
        if (statvfs(dir, &vfs) == 0 &&
            (uint64_t)vfs.f_bavail * vfs.f_frsize < s_bytes(&j->wait) + (1u << 20))
            return 0;
    }
    int rc = sqlite3_exec(self->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    size_t skipped = 0;
    for (size_t i = 0; rc == SQLITE_OK && i < j->wait.n; i++) {
        rc = s_replay(self, &j->wait, &j->wait.recs[i]);
        if (rc == SQLITE_DONE) {
            rc = SQLITE_OK;
        } else if (!kiln_hdb_disk_error(rc)) {
            /* A write that cannot be done is reported and left out, so one
             * bad row does not hold back all the others for good. */
            kiln_log_error("history: a write that waited for room is refused: %s",
                           sqlite3_errmsg(self->db));
            skipped++;
            rc = SQLITE_OK;
        }
    }
    if (rc == SQLITE_OK)
        rc = s_write_losses(self) == SQLITE_DONE ? SQLITE_OK : SQLITE_FULL;
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(self->db, "COMMIT", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        if (!sqlite3_get_autocommit(self->db))
            sqlite3_exec(self->db, "ROLLBACK", NULL, NULL, NULL);
        s_set_why(self, rc);
        return 0;
    }
    kiln_log_info("history: %s has room again: %zu writes that waited are on disk "
                  "(%zu refused, %llu bytes of output lost), after %lld s",
                  self->path ? self->path : "(memory)", j->wait.n - skipped, skipped,
                  (unsigned long long)j->lost_bytes,
                  (long long)((kiln_clock_wall_ms() - j->since_ms) / 1000));
    s_truncate(&j->wait, 0);
    j->down = false;
    j->why[0] = '\0';
    j->since_ms = 0;
    j->n_loss = 0;
    return 1;
}

int kiln_history_limit(kiln_history_t *self, uint64_t max_bytes)
{
    assert(self);
    char sql[96];
    uint64_t pages = max_bytes ? max_bytes / 4096 + 1 : 0xfffffffeu;
    if (pages > 0xfffffffeu)
        pages = 0xfffffffeu;
    snprintf(sql, sizeof sql, "PRAGMA max_page_count = %llu", (unsigned long long)pages);
    if (sqlite3_exec(self->db, sql, NULL, NULL, NULL) != SQLITE_OK) {
        kiln_hdb_sql_error(self, "max_page_count");
        return -1;
    }
    return 0;
}

void kiln_history_health(const kiln_history_t *self, kiln_history_health_t *out)
{
    assert(self);
    assert(out);
    const kiln_hdb_journal_t *j = &self->journal;
    out->writable = !j->down;
    out->why = j->down ? j->why : "";
    out->waiting = j->wait.n;
    out->waiting_bytes = s_bytes(&j->wait);
    out->failures = j->failures;
    out->lost_log_bytes = j->lost_bytes;
    out->since_ms = j->since_ms;
}

void kiln_hdb_journal_free(kiln_history_t *self)
{
    kiln_hdb_journal_t *j = &self->journal;
    if (j->wait.n)
        kiln_log_error("history: closed with %zu writes still waiting for room; they are lost",
                       j->wait.n);
    s_free_list(&j->txn);
    s_free_list(&j->wait);
    s_free_list(&j->cur);
}
