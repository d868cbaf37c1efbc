/* history_journal.c: what the history store does when its disk is full.
 *
 * The coordinator acts on a batch of worker messages before the batch
 * commits: jobs finish, their dependents are queued, Redis is told. A commit
 * that fails for want of room is rolled back whole, so the history would
 * fall behind what the farm did, for good (a finished run left "running",
 * its logs gone, a succeeded job run again after a restart). So the writes
 * of the open transaction are kept as SQL text (sqlite3_expanded_sql, the
 * statement with its values) until it commits, and a failed one does not
 * lose them: they wait, the store is "down", and every later write joins
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

/* Takes ownership of sql (NULL: out of memory, reported). */
static int s_push(kiln_hdb_list_t *l, char *sql)
{
    if (!sql)
        return kiln_hdb_oom();
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        char **grown = realloc(l->sql, cap * sizeof *grown);
        if (!grown) {
            sqlite3_free(sql);
            return kiln_hdb_oom();
        }
        l->sql = grown;
        l->cap = cap;
    }
    l->sql[l->n++] = sql;
    l->bytes += strlen(sql);
    return 0;
}

/* Frees the entries from index `from` on. */
static void s_truncate(kiln_hdb_list_t *l, size_t from)
{
    for (size_t i = from; i < l->n; i++) {
        l->bytes -= strlen(l->sql[i]);
        sqlite3_free(l->sql[i]);
    }
    if (from < l->n)
        l->n = from;
}

static void s_free_list(kiln_hdb_list_t *l)
{
    s_truncate(l, 0);
    free(l->sql);
    memset(l, 0, sizeof *l);
}

/* Sets the reason from the connection's last error: the path and what the
 * disk said. */
static void s_set_why(kiln_history_t *self, int rc)
{
    kiln_hdb_journal_t *j = &self->journal;
    int err = sqlite3_system_errno(self->db);
    snprintf(j->why, sizeof j->why, "history: cannot write %s: %s%s%s%s",
             self->path ? self->path : "(memory)", sqlite3_errstr(rc), err ? " (" : "",
             err ? strerror(err) : "", err ? ")" : "");
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
    for (size_t i = 0; i < j->txn.n; i++) {
        if (s_push(&j->wait, j->txn.sql[i]) != 0) {
            kiln_log_error("history: a write of the failed batch is lost: %s",
                           kiln_error_last());
            continue;
        }
    }
    free(j->txn.sql);
    memset(&j->txn, 0, sizeof j->txn);
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
            kiln_error_set("%s", j->why);
            return KILN_EINFRA;
        }
        return s_push(&j->wait, sqlite3_expanded_sql(stmt));
    }
    int rc = sqlite3_step(stmt);
    if (rc == SQLITE_DONE)
        return self->depth ? s_push(&j->txn, sqlite3_expanded_sql(stmt)) : 0;
    if (!kiln_hdb_disk_error(rc))
        return -1;
    /* The bindings outlive the failed step: the write can wait. */
    char *sql = (flags & KILN_HDB_NOW) ? NULL : sqlite3_expanded_sql(stmt);
    kiln_hdb_go_down(self, rc);
    if (flags & KILN_HDB_NOW) {
        kiln_error_set("%s", j->why);
        return KILN_EINFRA;
    }
    return s_push(&j->wait, sql);
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

int kiln_history_commit_whole(kiln_history_t *self)
{
    assert(self);
    if (self->depth != 1) {
        kiln_error_set("history: a whole batch must be the outermost one");
        if (self->depth > 0)
            kiln_history_commit(self);
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
    /* Hex doubles a chunk in its SQL text. */
    if (!j->down || j->wait.bytes + 2 * len + 256 <= KILN_HISTORY_WAIT_MAX)
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
            (uint64_t)vfs.f_bavail * vfs.f_frsize < j->wait.bytes + (1u << 20))
            return 0;
    }
    int rc = sqlite3_exec(self->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    size_t skipped = 0;
    for (size_t i = 0; rc == SQLITE_OK && i < j->wait.n; i++) {
        rc = sqlite3_exec(self->db, j->wait.sql[i], NULL, NULL, NULL);
        if (rc != SQLITE_OK && !kiln_hdb_disk_error(rc)) {
            /* A write that cannot be done is reported and left out, so one
             * bad row does not hold back all the others for good. */
            kiln_log_error("history: a write that waited for room is refused: %s: %.120s",
                           sqlite3_errmsg(self->db), j->wait.sql[i]);
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
    out->waiting_bytes = j->wait.bytes;
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
}
