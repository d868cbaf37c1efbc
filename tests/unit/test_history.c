/* test_history.c: unit tests for coordinator/history.c.
 *
 * Each test gets a fresh database in its own mkdtemp directory and looks at
 * it two ways: through the history API, and through a second, raw SQLite
 * connection (what `kiln history` in another process would see), so that
 * batching, persistence and the stored bytes are checked from outside.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <sqlite3.h>

#include "common/error.h"
#include "coordinator/history.h"

/* Mirrors of history.c's limits (not exported by history.h). */
#define CHUNK_MAX (1024 * 1024)
#define YAML_MAX (4 * 1024 * 1024)
#define TEXT_MAX (64 * 1024)
#define ID_MAX 256
#define WORKFLOW_MAX 1024
#define DURATION_MAX (366LL * 24 * 60 * 60 * 1000)

typedef struct {
    char dir[64];
    char path[128];
    kiln_history_t *history;
} fixture_t;

static int s_setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof *fx);
    assert_non_null(fx);
    snprintf(fx->dir, sizeof fx->dir, "/tmp/kiln-history-XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    snprintf(fx->path, sizeof fx->path, "%s/history.db", fx->dir);
    int rc = kiln_history_open(&fx->history, fx->path);
    if (rc != 0)
        fail_msg("open: %s", kiln_error_last());
    *state = fx;
    return 0;
}

static void s_remove(const char *dir, const char *name)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    unlink(path);
}

static int s_teardown(void **state)
{
    fixture_t *fx = *state;
    kiln_history_destroy(&fx->history);
    assert_null(fx->history);
    s_remove(fx->dir, "history.db");
    s_remove(fx->dir, "history.db-wal");
    s_remove(fx->dir, "history.db-shm");
    s_remove(fx->dir, "other.db");
    s_remove(fx->dir, "other.db-wal");
    s_remove(fx->dir, "other.db-shm");
    s_remove(fx->dir, "garbage.db");
    s_remove(fx->dir, "v1.db");
    s_remove(fx->dir, "v1.db-wal");
    s_remove(fx->dir, "v1.db-shm");
    s_remove(fx->dir, "v2.db");
    s_remove(fx->dir, "v2.db-wal");
    s_remove(fx->dir, "v2.db-shm");
    assert_int_equal(rmdir(fx->dir), 0);
    free(fx);
    return 0;
}

/* ---- helpers ------------------------------------------------------------ */

/* A second connection to the same file, as another process would open it. */
static sqlite3 *s_raw(const char *path)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    return db;
}

static int64_t s_query_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *stmt = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &stmt, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(stmt), SQLITE_ROW);
    int64_t value = sqlite3_column_int64(stmt, 0);
    sqlite3_finalize(stmt);
    return value;
}

/* The first column of the first row as a new string ("(null)" for NULL). */
static char *s_query_text(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *stmt = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &stmt, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(stmt), SQLITE_ROW);
    const char *text = (const char *)sqlite3_column_text(stmt, 0);
    char *copy = strdup(text ? text : "(null)");
    assert_non_null(copy);
    sqlite3_finalize(stmt);
    return copy;
}

static void s_assert_query_text(sqlite3 *db, const char *sql, const char *expected)
{
    char *got = s_query_text(db, sql);
    assert_string_equal(got, expected);
    free(got);
}

/* Compares got with the JSON text `expected`, written with ' for " so the
 * expectations stay readable; prints both on a mismatch. */
static void s_assert_json(json_t *got, const char *expected)
{
    char *text = strdup(expected);
    assert_non_null(text);
    for (char *p = text; *p; p++)
        if (*p == '\'')
            *p = '"';
    json_error_t error;
    json_t *want = json_loads(text, 0, &error);
    if (want == NULL)
        fail_msg("bad expectation at %d: %s", error.position, error.text);
    /* Fields added with schema 2 are checked by their own test; an older
     * expectation that does not mention them ignores them. */
    if (json_is_object(want) && json_is_object(got)) {
        got = json_deep_copy(got);
        const char *extra[] = {"annotations", "summaries"};
        for (int i = 0; i < 2; i++)
            if (!json_object_get(want, extra[i]))
                json_object_del(got, extra[i]);
        size_t k;
        json_t *job;
        json_t *wjobs = json_object_get(want, "jobs");
        json_array_foreach(json_object_get(got, "jobs"), k, job) {
            json_t *wjob = json_array_get(wjobs, k);
            if (!wjob || !json_object_get(wjob, "outputs"))
                json_object_del(job, "outputs");
        }
        if (!json_object_get(want, "outputs"))
            json_object_del(got, "outputs");
    } else {
        json_incref(got);
    }
    if (!json_equal(got, want)) {
        char *a = json_dumps(got, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
        char *b = json_dumps(want, JSON_INDENT(1));
        print_error("got:\n%s\nwant:\n%s\n", a ? a : "(null)", b ? b : "(null)");
        free(a);
        free(b);
        json_decref(want);
        json_decref(got);
        free(text);
        fail();
    }
    json_decref(want);
    json_decref(got);
    free(text);
}

static void s_ok(int rc)
{
    if (rc != 0)
        fail_msg("rc %d: %s", rc, kiln_error_last());
}

/* ---- the run used by several tests -------------------------------------- */

static const char s_yaml[] = "jobs:\n  build: {}\n";

/* Run "ci" with four jobs created in a non-alphabetical order (so insertion
 * order is distinguishable from key order), walked to the end:
 *   build:  attempt 1 lost its worker in its second step, attempt 2
 *           succeeded (so steps sort by attempt before index);
 *   test:   one attempt, a step exited 2 and one was killed by signal 9;
 *   lint:   cancelled before it started;  deploy: skipped. */
static int64_t s_make_run(kiln_history_t *h)
{
    int64_t run = 0;
    const char *linux_x86[] = {"linux", "x86_64"};
    const char *linux_only[] = {"linux"};
    const char *build[] = {"build"};
    const char *build_test[] = {"build", "test"};

    s_ok(kiln_history_run_create(h, "ci", ".kiln/ci.yml", s_yaml, strlen(s_yaml), 1000, "push", NULL, &run));
    s_ok(kiln_history_job_create(h, run, "build", "Build", NULL, 0, linux_x86, 2));
    s_ok(kiln_history_job_create(h, run, "test", "Test", build, 1, linux_only, 1));
    s_ok(kiln_history_job_create(h, run, "lint", "Lint", NULL, 0, NULL, 0));
    s_ok(kiln_history_job_create(h, run, "deploy", "Deploy", build_test, 2, linux_only, 1));

    /* build: pending -> ready -> running (attempt 1 on w1) */
    s_ok(kiln_history_job_set_state(h, run, "build", "ready", 0, NULL, 0, 0));
    s_ok(kiln_history_job_set_state(h, run, "build", "running", 1, "w1", 1100, 0));
    s_ok(kiln_history_attempt_start(h, run, "build", 1, 41, "w1", "KEYW1", 1100));
    s_ok(kiln_history_step_start(h, run, "build", 1, 0, "checkout", 1110));
    s_ok(kiln_history_log_append(h, run, "build", 1, 0, 2, "cloning\n", 8, 1120));
    s_ok(kiln_history_step_finish(h, run, "build", 1, 0, NULL, "success", 0, 0, 1110, 1200));
    s_ok(kiln_history_step_start(h, run, "build", 1, 1, "make", 1200));
    s_ok(kiln_history_attempt_finish(h, run, "build", 1, "worker_lost", "heartbeat missed", 1500));
    /* attempt 2 on w2: started_ms 0 must keep the job's first start */
    s_ok(kiln_history_job_set_state(h, run, "build", "running", 2, "w2", 0, 0));
    s_ok(kiln_history_attempt_start(h, run, "build", 2, 42, "w2", NULL, 1600));
    s_ok(kiln_history_step_start(h, run, "build", 2, 0, "checkout", 1610));
    /* started_ms 0: keep the start recorded by step_start */
    s_ok(kiln_history_step_finish(h, run, "build", 2, 0, NULL, "success", 0, 0, 0, 1700));
    s_ok(kiln_history_step_start(h, run, "build", 2, 1, "make", 1700));
    s_ok(kiln_history_log_append(h, run, "build", 2, 1, 0, "cc -c a.c\n", 10, 1800));
    s_ok(kiln_history_log_append(h, run, "build", 2, 1, 1, "warning\n", 8, 1900));
    s_ok(kiln_history_step_finish(h, run, "build", 2, 1, NULL, "success", 0, 0, 1700, 2600));
    s_ok(kiln_history_attempt_finish(h, run, "build", 2, "success", NULL, 2600));
    /* attempt 0, worker NULL, started 0: only state and finished_ms change */
    s_ok(kiln_history_job_set_state(h, run, "build", "success", 0, NULL, 0, 2600));

    s_ok(kiln_history_job_set_state(h, run, "test", "running", 1, "w1", 2700, 0));
    s_ok(kiln_history_attempt_start(h, run, "test", 1, 43, "w1", NULL, 2700));
    s_ok(kiln_history_step_start(h, run, "test", 1, 0, "unit", 2710));
    s_ok(kiln_history_log_append(h, run, "test", 1, 0, 1, "FAIL\n", 5, 2900));
    s_ok(kiln_history_step_finish(h, run, "test", 1, 0, NULL, "failure", 2, 0, 2710, 3000));
    s_ok(kiln_history_step_start(h, run, "test", 1, 1, "slow", 3000));
    s_ok(kiln_history_step_finish(h, run, "test", 1, 1, NULL, "timed_out", -1, 9, 3000, 4000));
    s_ok(kiln_history_attempt_finish(h, run, "test", 1, "failure", "step unit exited 2", 4000));
    s_ok(kiln_history_job_set_state(h, run, "test", "failure", 0, NULL, 0, 4000));

    s_ok(kiln_history_job_set_state(h, run, "lint", "cancelled", 0, NULL, 0, 4100));
    s_ok(kiln_history_job_set_state(h, run, "deploy", "skipped", 0, NULL, 0, 4100));
    s_ok(kiln_history_run_set_state(h, run, "failure", 4200));
    return run;
}

static const char s_run_expected[] =
    "{'id': 1, 'name': 'ci', 'file': '.kiln/ci.yml', 'state': 'failure',"
    " 'created_ms': 1000, 'finished_ms': 4200, 'jobs': ["
    "{'id': 'build', 'name': 'Build', 'state': 'success', 'attempt': 2, 'worker': 'w2',"
    " 'started_ms': 1100, 'finished_ms': 2600, 'duration_ms': 1500,"
    " 'needs': [], 'runs_on': ['linux', 'x86_64'],"
    " 'attempts': ["
    "  {'attempt': 1, 'token': 41, 'worker': 'w1', 'worker_key': 'KEYW1', 'state': 'worker_lost',"
    "   'message': 'heartbeat missed', 'started_ms': 1100, 'finished_ms': 1500},"
    "  {'attempt': 2, 'token': 42, 'worker': 'w2', 'worker_key': null, 'state': 'success',"
    "   'message': null, 'started_ms': 1600, 'finished_ms': 2600}],"
    " 'steps': ["
    "  {'attempt': 1, 'index': 0, 'name': 'checkout', 'state': 'success', 'exit_code': 0,"
    "   'signal': null, 'started_ms': 1110, 'finished_ms': 1200, 'duration_ms': 90},"
    "  {'attempt': 1, 'index': 1, 'name': 'make', 'state': 'running', 'exit_code': null,"
    "   'signal': null, 'started_ms': 1200, 'finished_ms': null, 'duration_ms': null},"
    "  {'attempt': 2, 'index': 0, 'name': 'checkout', 'state': 'success', 'exit_code': 0,"
    "   'signal': null, 'started_ms': 1610, 'finished_ms': 1700, 'duration_ms': 90},"
    "  {'attempt': 2, 'index': 1, 'name': 'make', 'state': 'success', 'exit_code': 0,"
    "   'signal': null, 'started_ms': 1700, 'finished_ms': 2600, 'duration_ms': 900}]},"
    "{'id': 'test', 'name': 'Test', 'state': 'failure', 'attempt': 1, 'worker': 'w1',"
    " 'started_ms': 2700, 'finished_ms': 4000, 'duration_ms': 1300,"
    " 'needs': ['build'], 'runs_on': ['linux'],"
    " 'attempts': ["
    "  {'attempt': 1, 'token': 43, 'worker': 'w1', 'worker_key': null, 'state': 'failure',"
    "   'message': 'step unit exited 2', 'started_ms': 2700, 'finished_ms': 4000}],"
    " 'steps': ["
    "  {'attempt': 1, 'index': 0, 'name': 'unit', 'state': 'failure', 'exit_code': 2,"
    "   'signal': null, 'started_ms': 2710, 'finished_ms': 3000, 'duration_ms': 290},"
    "  {'attempt': 1, 'index': 1, 'name': 'slow', 'state': 'timed_out', 'exit_code': -1,"
    "   'signal': 9, 'started_ms': 3000, 'finished_ms': 4000, 'duration_ms': 1000}]},"
    "{'id': 'lint', 'name': 'Lint', 'state': 'cancelled', 'attempt': 0, 'worker': null,"
    " 'started_ms': null, 'finished_ms': 4100, 'duration_ms': null,"
    " 'needs': [], 'runs_on': [], 'attempts': [], 'steps': []},"
    "{'id': 'deploy', 'name': 'Deploy', 'state': 'skipped', 'attempt': 0, 'worker': null,"
    " 'started_ms': null, 'finished_ms': 4100, 'duration_ms': null,"
    " 'needs': ['build', 'test'], 'runs_on': ['linux'], 'attempts': [], 'steps': []}]}";

/* ---- tests -------------------------------------------------------------- */

static void test_open_creates_schema(void **state)
{
    fixture_t *fx = *state;
    sqlite3 *db = s_raw(fx->path);
    assert_int_equal(s_query_int(db, "PRAGMA user_version"), 7);
    s_assert_query_text(db, "PRAGMA journal_mode", "wal");
    const char *names[] = {"runs",     "jobs",         "attempts",  "steps",
                           "logs",     "audit",        "logs_run",  "jobs_run_seq",
                           "durations", "runs_active"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char sql[128];
        snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM sqlite_schema WHERE name = '%s'",
                 names[i]);
        if (s_query_int(db, sql) != 1)
            fail_msg("no %s in the schema", names[i]);
    }
    s_assert_query_text(db, "PRAGMA integrity_check", "ok");
    sqlite3_close(db);
}

static void test_open_errors(void **state)
{
    fixture_t *fx = *state;
    kiln_history_t *h = (kiln_history_t *)&h;
    char path[256];

    snprintf(path, sizeof path, "%s/no/such/dir/history.db", fx->dir);
    assert_true(kiln_history_open(&h, path) < 0);
    assert_null(h);
    assert_memory_equal(kiln_error_last(), "history: ", 9);

    /* a file that is not a database */
    snprintf(path, sizeof path, "%s/garbage.db", fx->dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (int i = 0; i < 256; i++)
        fputs("this is not an SQLite database\n", f);
    fclose(f);
    h = (kiln_history_t *)&h;
    assert_true(kiln_history_open(&h, path) < 0);
    assert_null(h);
    assert_non_null(strstr(kiln_error_last(), "garbage.db"));

    /* a file written by a newer Kiln (this one writes version 7) */
    snprintf(path, sizeof path, "%s/other.db", fx->dir);
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 8", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    assert_true(kiln_history_open(&h, path) < 0);
    assert_null(h);
    assert_non_null(strstr(kiln_error_last(), "newer"));
}

static void test_new_job_is_pending(void **state)
{
    fixture_t *fx = *state;
    int64_t run = 0;
    json_t *got = NULL;
    s_ok(kiln_history_run_create(fx->history, NULL, "wf.yml", NULL, 0, 500, "push", NULL, &run));
    assert_int_equal(run, 1);
    s_ok(kiln_history_job_create(fx->history, run, "only", "Only", NULL, 0, NULL, 0));
    s_ok(kiln_history_run_json(fx->history, run, &got));
    s_assert_json(got, "{'id': 1, 'name': null, 'file': 'wf.yml', 'state': 'running',"
                       " 'created_ms': 500, 'finished_ms': null, 'jobs': ["
                       "{'id': 'only', 'name': 'Only', 'state': 'pending', 'attempt': 0,"
                       " 'worker': null, 'started_ms': null, 'finished_ms': null,"
                       " 'duration_ms': null, 'needs': [], 'runs_on': [],"
                       " 'attempts': [], 'steps': []}]}");
    json_decref(got);
}

/* What a job leaves besides its state: outputs (needs.<job>.outputs),
 * annotations and the step summary, all in the run's record. */
static void test_outputs_annotations_summaries(void **state)
{
    fixture_t *fx = *state;
    int64_t run = 0;
    json_t *got = NULL, *outs = json_pack("{s:s, s:s}", "version", "1.2.3", "list", "[1,2]");
    s_ok(kiln_history_run_create(fx->history, NULL, "wf.yml", NULL, 0, 500, "push", NULL, &run));
    s_ok(kiln_history_job_create(fx->history, run, "plan", "Plan", NULL, 0, NULL, 0));
    s_ok(kiln_history_job_create(fx->history, run, "build", "Build", NULL, 0, NULL, 0));
    s_ok(kiln_history_job_outputs(fx->history, run, "plan", outs));
    s_ok(kiln_history_annotation(fx->history, run, "build", 1, 2, "error", "it broke", "Oops",
                                 "src/a.c", 12, 3));
    s_ok(kiln_history_annotation(fx->history, run, "build", 1, 2, "notice", "fyi", NULL, NULL,
                                 0, 0));
    s_ok(kiln_history_summary(fx->history, run, "build", 1, "## Results\n", 11));
    s_ok(kiln_history_run_json(fx->history, run, &got));
    assert_true(json_equal(json_object_get(json_array_get(json_object_get(got, "jobs"), 0),
                                           "outputs"),
                           outs));
    json_t *anns = json_object_get(got, "annotations");
    assert_int_equal(json_array_size(anns), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(anns, 0), "level")),
                        "error");
    assert_string_equal(json_string_value(json_object_get(json_array_get(anns, 0), "file")),
                        "src/a.c");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(anns, 0), "line")), 12);
    assert_true(json_is_null(json_object_get(json_array_get(anns, 1), "title")));
    json_t *sums = json_object_get(got, "summaries");
    assert_int_equal(json_array_size(sums), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(sums, 0), "markdown")),
                        "## Results\n");
    json_t *all = NULL;
    s_ok(kiln_history_run_outputs(fx->history, run, &all));
    assert_true(json_equal(json_object_get(all, "plan"), outs));
    assert_null(json_object_get(all, "build"));
    json_decref(all);
    json_decref(got);
    json_decref(outs);
}

/* A database written by schema 1 is upgraded in place. */
static void test_upgrade_from_schema_1(void **state)
{
    fixture_t *fx = *state;
    char path[600];
    snprintf(path, sizeof path, "%s/v1.db", fx->dir);
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "CREATE TABLE runs (id INTEGER PRIMARY KEY AUTOINCREMENT,"
                                  " name TEXT, file TEXT, yaml BLOB, state TEXT NOT NULL,"
                                  " created_ms INTEGER NOT NULL, finished_ms INTEGER);"
                                  "CREATE TABLE jobs (run_id INTEGER NOT NULL, job_id TEXT NOT NULL,"
                                  " name TEXT, state TEXT NOT NULL, attempt INTEGER NOT NULL DEFAULT 0,"
                                  " worker TEXT, started_ms INTEGER, finished_ms INTEGER,"
                                  " needs TEXT NOT NULL DEFAULT '[]', runs_on TEXT NOT NULL DEFAULT '[]',"
                                  " seq INTEGER NOT NULL, PRIMARY KEY (run_id, job_id)) WITHOUT ROWID;"
                                  "INSERT INTO jobs (run_id, job_id, state, seq) VALUES (7, 'old', 'success', 1);"
                                  "PRAGMA user_version = 1;",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    kiln_history_t *h = NULL;
    s_ok(kiln_history_open(&h, path));
    json_t *o = json_pack("{s:s}", "k", "v");
    s_ok(kiln_history_job_outputs(h, 7, "old", o));
    kiln_history_destroy(&h);
    db = s_raw(path);
    assert_int_equal(s_query_int(db, "PRAGMA user_version"), 7);
    s_assert_query_text(db, "SELECT outputs FROM jobs WHERE job_id = 'old'", "{\"k\":\"v\"}");
    sqlite3_close(db);
    json_decref(o);
}

static void test_run_lifecycle(void **state)
{
    fixture_t *fx = *state;
    json_t *got = NULL;
    int64_t run = s_make_run(fx->history);
    assert_int_equal(run, 1);
    s_ok(kiln_history_run_json(fx->history, run, &got));
    s_assert_json(got, s_run_expected);
    json_decref(got);

    s_ok(kiln_history_runs_json(fx->history, 10, &got));
    s_assert_json(got, "[{'id': 1, 'name': 'ci', 'file': '.kiln/ci.yml', 'state': 'failure',"
                       " 'created_ms': 1000, 'finished_ms': 4200, 'duration_ms': 3200,"
                       " 'jobs': 4, 'failed': 2}]");
    json_decref(got);

    /* the workflow text is kept byte for byte */
    sqlite3 *db = s_raw(fx->path);
    s_assert_query_text(db, "SELECT yaml FROM runs WHERE id = 1", s_yaml);
    sqlite3_close(db);
}

static void test_job_set_state_keeps_unset_columns(void **state)
{
    fixture_t *fx = *state;
    kiln_history_t *h = fx->history;
    int64_t run = 0;
    json_t *got = NULL;
    s_ok(kiln_history_run_create(h, "r", "f", NULL, 0, 1, "push", NULL, &run));
    s_ok(kiln_history_job_create(h, run, "j", "J", NULL, 0, NULL, 0));
    s_ok(kiln_history_job_set_state(h, run, "j", "running", 3, "w9", 100, 900));
    s_ok(kiln_history_job_set_state(h, run, "j", "failure", 0, NULL, 0, 0));
    s_ok(kiln_history_run_json(h, run, &got));
    json_t *job = json_array_get(json_object_get(got, "jobs"), 0);
    assert_string_equal(json_string_value(json_object_get(job, "state")), "failure");
    assert_int_equal(json_integer_value(json_object_get(job, "attempt")), 3);
    assert_string_equal(json_string_value(json_object_get(job, "worker")), "w9");
    assert_int_equal(json_integer_value(json_object_get(job, "started_ms")), 100);
    assert_int_equal(json_integer_value(json_object_get(job, "finished_ms")), 900);
    assert_int_equal(json_integer_value(json_object_get(job, "duration_ms")), 800);
    json_decref(got);
}

static void test_runs_json_order_and_limit(void **state)
{
    fixture_t *fx = *state;
    kiln_history_t *h = fx->history;
    json_t *got = NULL;
    for (int i = 1; i <= 5; i++) {
        int64_t run = 0;
        char name[16];
        snprintf(name, sizeof name, "run%d", i);
        s_ok(kiln_history_run_create(h, name, "wf.yml", NULL, 0, 1000 * i, "push", NULL, &run));
        assert_int_equal(run, i);
        s_ok(kiln_history_job_create(h, run, "a", "A", NULL, 0, NULL, 0));
        s_ok(kiln_history_job_create(h, run, "b", "B", NULL, 0, NULL, 0));
    }
    s_ok(kiln_history_job_set_state(h, 4, "a", "infra_error", 0, NULL, 0, 4500));
    s_ok(kiln_history_job_set_state(h, 4, "b", "timed_out", 0, NULL, 0, 4500));
    s_ok(kiln_history_job_set_state(h, 5, "b", "success", 0, NULL, 0, 5500));
    s_ok(kiln_history_run_set_state(h, 4, "failure", 4600));

    s_ok(kiln_history_runs_json(h, 3, &got));
    s_assert_json(got,
                  "[{'id': 5, 'name': 'run5', 'file': 'wf.yml', 'state': 'running',"
                  "  'created_ms': 5000, 'finished_ms': null, 'duration_ms': null,"
                  "  'jobs': 2, 'failed': 0},"
                  " {'id': 4, 'name': 'run4', 'file': 'wf.yml', 'state': 'failure',"
                  "  'created_ms': 4000, 'finished_ms': 4600, 'duration_ms': 600,"
                  "  'jobs': 2, 'failed': 2},"
                  " {'id': 3, 'name': 'run3', 'file': 'wf.yml', 'state': 'running',"
                  "  'created_ms': 3000, 'finished_ms': null, 'duration_ms': null,"
                  "  'jobs': 2, 'failed': 0}]");
    json_decref(got);

    /* 0 means the default (50): all five, newest first */
    s_ok(kiln_history_runs_json(h, 0, &got));
    assert_int_equal(json_array_size(got), 5);
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(json_integer_value(json_object_get(json_array_get(got, i), "id")),
                         5 - (int)i);
    json_decref(got);

    s_ok(kiln_history_runs_json(h, 1, &got));
    assert_int_equal(json_array_size(got), 1);
    json_decref(got);
}

static void test_runs_json_empty(void **state)
{
    fixture_t *fx = *state;
    json_t *got = NULL;
    s_ok(kiln_history_runs_json(fx->history, 50, &got));
    assert_true(json_is_array(got));
    assert_int_equal(json_array_size(got), 0);
    json_decref(got);
}

typedef struct {
    char job[16];
    unsigned attempt;
    unsigned step;
    int stream;
    char data[16];
    size_t len;
    int64_t ts;
} chunk_t;

typedef struct {
    chunk_t chunks[16];
    size_t n;
    size_t stop_after;          /* return stop_rc from this call (1-based); 0 never */
    int stop_rc;
    kiln_history_t *append_to;  /* append a chunk to run 1 on every call */
} walk_t;

static int s_collect(void *ctx, const char *job_id, unsigned attempt, unsigned step, int stream,
                     const void *data, size_t len, int64_t ts_ms)
{
    walk_t *walk = ctx;
    assert_true(walk->n < sizeof walk->chunks / sizeof walk->chunks[0]);
    assert_non_null(data);
    chunk_t *c = &walk->chunks[walk->n++];
    assert_true(strlen(job_id) < sizeof c->job);
    assert_true(len <= sizeof c->data);
    snprintf(c->job, sizeof c->job, "%s", job_id);
    c->attempt = attempt;
    c->step = step;
    c->stream = stream;
    memcpy(c->data, data, len);
    c->len = len;
    c->ts = ts_ms;
    if (walk->append_to)
        s_ok(kiln_history_log_append(walk->append_to, 1, "a", 1, 0, 0, "more", 4, 99));
    if (walk->stop_after != 0 && walk->n == walk->stop_after)
        return walk->stop_rc;
    return 0;
}

static void s_assert_chunk(const chunk_t *c, const char *job, unsigned step, int stream,
                           const void *data, size_t len, int64_t ts)
{
    assert_string_equal(c->job, job);
    assert_int_equal(c->attempt, 1);
    assert_int_equal(c->step, step);
    assert_int_equal(c->stream, stream);
    assert_int_equal(c->len, len);
    assert_memory_equal(c->data, data, len);
    assert_int_equal(c->ts, ts);
}

static void s_make_log_runs(kiln_history_t *h)
{
    int64_t run = 0;
    s_ok(kiln_history_run_create(h, "one", "f", NULL, 0, 1, "push", NULL, &run));
    assert_int_equal(run, 1);
    s_ok(kiln_history_run_create(h, "two", "f", NULL, 0, 2, "push", NULL, &run));
    assert_int_equal(run, 2);
    /* timestamps deliberately out of order: arrival order is what counts */
    s_ok(kiln_history_log_append(h, 1, "b", 1, 0, 0, "first", 5, 50));
    s_ok(kiln_history_log_append(h, 2, "a", 1, 0, 0, "other run", 9, 10));
    s_ok(kiln_history_log_append(h, 1, "a", 1, 0, 1, "second", 6, 40));
    s_ok(kiln_history_log_append(h, 1, "a", 1, 1, 2, NULL, 0, 30));
    s_ok(kiln_history_log_append(h, 1, "b", 1, 1, 0, "x\0y", 3, 20));
    s_ok(kiln_history_log_append(h, 1, "a", 1, 2, 0, "fifth", 5, 10));
}

static void test_logs_each_order_and_filter(void **state)
{
    fixture_t *fx = *state;
    kiln_history_t *h = fx->history;
    s_make_log_runs(h);

    walk_t all = {0};
    s_ok(kiln_history_logs_each(h, 1, NULL, s_collect, &all));
    assert_int_equal(all.n, 5);
    s_assert_chunk(&all.chunks[0], "b", 0, 0, "first", 5, 50);
    s_assert_chunk(&all.chunks[1], "a", 0, 1, "second", 6, 40);
    s_assert_chunk(&all.chunks[2], "a", 1, 2, "", 0, 30);
    s_assert_chunk(&all.chunks[3], "b", 1, 0, "x\0y", 3, 20);
    s_assert_chunk(&all.chunks[4], "a", 2, 0, "fifth", 5, 10);

    walk_t only_a = {0};
    s_ok(kiln_history_logs_each(h, 1, "a", s_collect, &only_a));
    assert_int_equal(only_a.n, 3);
    s_assert_chunk(&only_a.chunks[0], "a", 0, 1, "second", 6, 40);
    s_assert_chunk(&only_a.chunks[1], "a", 1, 2, "", 0, 30);
    s_assert_chunk(&only_a.chunks[2], "a", 2, 0, "fifth", 5, 10);

    walk_t other = {0};
    s_ok(kiln_history_logs_each(h, 2, NULL, s_collect, &other));
    assert_int_equal(other.n, 1);
    s_assert_chunk(&other.chunks[0], "a", 0, 0, "other run", 9, 10);

    walk_t none = {0};
    s_ok(kiln_history_logs_each(h, 1, "nosuch", s_collect, &none));
    assert_int_equal(none.n, 0);
    s_ok(kiln_history_logs_each(h, 99, NULL, s_collect, &none));
    assert_int_equal(none.n, 0);
}

static void test_logs_each_stops(void **state)
{
    fixture_t *fx = *state;
    kiln_history_t *h = fx->history;
    s_make_log_runs(h);

    walk_t walk = {.stop_after = 2, .stop_rc = 7};
    assert_int_equal(kiln_history_logs_each(h, 1, NULL, s_collect, &walk), 7);
    assert_int_equal(walk.n, 2);

    walk_t negative = {.stop_after = 1, .stop_rc = -42};
    assert_int_equal(kiln_history_logs_each(h, 1, "b", s_collect, &negative), -42);
    assert_int_equal(negative.n, 1);

    /* a stopped walk leaves nothing open: writes and a new walk work */
    s_ok(kiln_history_log_append(h, 1, "a", 1, 3, 0, "after", 5, 60));
    walk_t again = {0};
    s_ok(kiln_history_logs_each(h, 1, NULL, s_collect, &again));
    assert_int_equal(again.n, 6);
}

static void test_logs_each_sees_chunks_stored_before_it(void **state)
{
    fixture_t *fx = *state;
    kiln_history_t *h = fx->history;
    s_make_log_runs(h);

    /* the callback appends to the walked run; the walk must still end */
    walk_t walk = {.append_to = h};
    s_ok(kiln_history_logs_each(h, 1, NULL, s_collect, &walk));
    assert_int_equal(walk.n, 5);

    walk_t after = {0};
    s_ok(kiln_history_logs_each(h, 1, "a", s_collect, &after));
    assert_int_equal(after.n, 3 + 5);
}

static void test_not_found(void **state)
{
    fixture_t *fx = *state;
    kiln_history_t *h = fx->history;
    json_t *got = (json_t *)&got;
    assert_int_equal(kiln_history_run_json(h, 999, &got), KILN_ENOTFOUND);
    assert_null(got);
    assert_string_equal(kiln_error_last(), "history: no run 999");

    assert_int_equal(kiln_history_run_set_state(h, 999, "success", 5), KILN_ENOTFOUND);
    assert_string_equal(kiln_error_last(), "history: no run 999");

    int64_t run = 0;
    s_ok(kiln_history_run_create(h, "r", "f", NULL, 0, 1, "push", NULL, &run));
    assert_int_equal(kiln_history_job_set_state(h, run, "ghost", "running", 1, "w", 2, 0),
                     KILN_ENOTFOUND);
    assert_non_null(strstr(kiln_error_last(), "ghost"));
    s_ok(kiln_history_job_create(h, run, "real", "Real", NULL, 0, NULL, 0));
    assert_int_equal(kiln_history_attempt_finish(h, run, "real", 1, "success", NULL, 3),
                     KILN_ENOTFOUND);
    /* the misses wrote nothing */
    s_ok(kiln_history_run_json(h, run, &got));
    json_t *job = json_array_get(json_object_get(got, "jobs"), 0);
    assert_int_equal(json_array_size(json_object_get(got, "jobs")), 1);
    assert_int_equal(json_array_size(json_object_get(job, "attempts")), 0);
    json_decref(got);
}

static void test_duplicates_refused(void **state)
{
    fixture_t *fx = *state;
    kiln_history_t *h = fx->history;
    int64_t run = 0;
    json_t *got = NULL;
    s_ok(kiln_history_run_create(h, "r", "f", NULL, 0, 1, "push", NULL, &run));
    s_ok(kiln_history_job_create(h, run, "j", "J", NULL, 0, NULL, 0));
    assert_true(kiln_history_job_create(h, run, "j", "J again", NULL, 0, NULL, 0) < 0);
    assert_memory_equal(kiln_error_last(), "history: ", 9);
    /* the same job id in another run is fine */
    int64_t run2 = 0;
    s_ok(kiln_history_run_create(h, "r2", "f", NULL, 0, 2, "push", NULL, &run2));
    s_ok(kiln_history_job_create(h, run2, "j", "J", NULL, 0, NULL, 0));

    /* a finished attempt cannot be restarted under the same number */
    s_ok(kiln_history_attempt_start(h, run, "j", 1, 7, "w1", NULL, 10));
    s_ok(kiln_history_attempt_finish(h, run, "j", 1, "failure", "boom", 20));
    assert_true(kiln_history_attempt_start(h, run, "j", 1, 8, "w2", NULL, 30) < 0);
    s_ok(kiln_history_run_json(h, run, &got));
    json_t *job = json_array_get(json_object_get(got, "jobs"), 0);
    assert_string_equal(json_string_value(json_object_get(job, "name")), "J");
    s_assert_json(json_object_get(job, "attempts"),
                  "[{'attempt': 1, 'token': 7, 'worker': 'w1', 'worker_key': null, 'state': 'failure',"
                  "  'message': 'boom', 'started_ms': 10, 'finished_ms': 20}]");
    json_decref(got);
}

static void test_step_finish_without_start(void **state)
{
    fixture_t *fx = *state;
    kiln_history_t *h = fx->history;
    int64_t run = 0;
    json_t *got = NULL;
    s_ok(kiln_history_run_create(h, "r", "f", NULL, 0, 1, "push", NULL, &run));
    s_ok(kiln_history_job_create(h, run, "j", "J", NULL, 0, NULL, 0));
    /* A skipped step, and one that ended before its start was reported:
     * the finish makes the row, name and start time included. */
    s_ok(kiln_history_step_finish(h, run, "j", 1, 3, "fourth", "skipped", 0, 0, 0, 50));
    s_ok(kiln_history_step_finish(h, run, "j", 1, 4, "fifth", "success", 0, 0, 60, 70));
    /* a restarted step starts over; a finish without a name keeps it */
    s_ok(kiln_history_step_start(h, run, "j", 1, 0, "first", 10));
    s_ok(kiln_history_step_finish(h, run, "j", 1, 0, NULL, "failure", 1, 0, 10, 20));
    s_ok(kiln_history_step_start(h, run, "j", 1, 0, "first", 30));
    s_ok(kiln_history_run_json(h, run, &got));
    s_assert_json(json_object_get(json_array_get(json_object_get(got, "jobs"), 0), "steps"),
                  "[{'attempt': 1, 'index': 0, 'name': 'first', 'state': 'running',"
                  "  'exit_code': null, 'signal': null, 'started_ms': 30,"
                  "  'finished_ms': null, 'duration_ms': null},"
                  " {'attempt': 1, 'index': 3, 'name': 'fourth', 'state': 'skipped',"
                  "  'exit_code': 0, 'signal': null, 'started_ms': null,"
                  "  'finished_ms': 50, 'duration_ms': null},"
                  " {'attempt': 1, 'index': 4, 'name': 'fifth', 'state': 'success',"
                  "  'exit_code': 0, 'signal': null, 'started_ms': 60,"
                  "  'finished_ms': 70, 'duration_ms': 10}]");
    json_decref(got);
}

static void test_batch_is_one_transaction(void **state)
{
    fixture_t *fx = *state;
    kiln_history_t *h = fx->history;
    sqlite3 *db = s_raw(fx->path);

    s_ok(kiln_history_begin(h));
    s_ok(kiln_history_begin(h)); /* nested: counted */
    for (int i = 0; i < 10; i++) {
        int64_t run = 0;
        s_ok(kiln_history_run_create(h, "r", "f", NULL, 0, i + 1, "push", NULL, &run));
        s_ok(kiln_history_log_append(h, run, "j", 1, 0, 0, "x", 1, i));
    }
    assert_int_equal(s_query_int(db, "SELECT COUNT(*) FROM runs"), 0);
    s_ok(kiln_history_commit(h)); /* inner: still open */
    assert_int_equal(s_query_int(db, "SELECT COUNT(*) FROM runs"), 0);
    s_ok(kiln_history_commit(h));
    assert_int_equal(s_query_int(db, "SELECT COUNT(*) FROM runs"), 10);
    assert_int_equal(s_query_int(db, "SELECT COUNT(*) FROM logs"), 10);

    /* without a batch every call commits on its own */
    int64_t run = 0;
    s_ok(kiln_history_run_create(h, "r", "f", NULL, 0, 11, "push", NULL, &run));
    assert_int_equal(s_query_int(db, "SELECT COUNT(*) FROM runs"), 11);

    /* a batch left open when the history is closed is rolled back */
    s_ok(kiln_history_begin(h));
    s_ok(kiln_history_run_create(h, "lost", "f", NULL, 0, 12, "push", NULL, &run));
    kiln_history_destroy(&fx->history);
    assert_int_equal(s_query_int(db, "SELECT COUNT(*) FROM runs"), 11);
    sqlite3_close(db);
    s_ok(kiln_history_open(&fx->history, fx->path));
}

static void test_persists_across_reopen(void **state)
{
    fixture_t *fx = *state;
    json_t *got = NULL;
    s_make_run(fx->history);
    s_ok(kiln_history_audit(fx->history, "approve", "alice", "KEYALICE", "run 1 gate prod", 5000));
    kiln_history_destroy(&fx->history);
    assert_null(fx->history);

    s_ok(kiln_history_open(&fx->history, fx->path));
    s_ok(kiln_history_run_json(fx->history, 1, &got));
    s_assert_json(got, s_run_expected);
    json_decref(got);

    walk_t walk = {0};
    s_ok(kiln_history_logs_each(fx->history, 1, NULL, s_collect, &walk));
    assert_int_equal(walk.n, 4);
    s_assert_chunk(&walk.chunks[0], "build", 0, 2, "cloning\n", 8, 1120);

    /* ids continue after the stored ones */
    int64_t run = 0;
    s_ok(kiln_history_run_create(fx->history, "next", "f", NULL, 0, 6000, "push", NULL, &run));
    assert_int_equal(run, 2);

    sqlite3 *db = s_raw(fx->path);
    s_assert_query_text(db, "SELECT kind || ' ' || actor || ' ' || detail || ' ' || ts_ms"
                            " FROM audit", "approve alice run 1 gate prod 5000");
    s_assert_query_text(db, "PRAGMA integrity_check", "ok");
    sqlite3_close(db);
}

static void test_limits(void **state)
{
    fixture_t *fx = *state;
    kiln_history_t *h = fx->history;
    int64_t run = 0;
    s_ok(kiln_history_run_create(h, "r", "f", NULL, 0, 1, "push", NULL, &run));
    s_ok(kiln_history_job_create(h, run, "j", "J", NULL, 0, NULL, 0));

    char *big = malloc(YAML_MAX + 1);
    assert_non_null(big);
    memset(big, 'x', YAML_MAX + 1);

    s_ok(kiln_history_log_append(h, run, "j", 1, 0, 0, big, CHUNK_MAX, 1));
    assert_int_equal(kiln_history_log_append(h, run, "j", 1, 0, 0, big, CHUNK_MAX + 1, 2),
                     KILN_ETOOBIG);
    assert_int_equal(kiln_history_log_append(h, run, "j", 1, 0, 3, "x", 1, 3), KILN_EINVAL);
    assert_int_equal(kiln_history_log_append(h, run, "j", 1, 0, -1, "x", 1, 3), KILN_EINVAL);

    int64_t other = 0;
    assert_int_equal(kiln_history_run_create(h, "r", "f", big, YAML_MAX + 1, 2, "push", NULL, &other),
                     KILN_ETOOBIG);
    s_ok(kiln_history_run_create(h, "r", "f", big, YAML_MAX, 2, "push", NULL, &other));

    /* an over-long message or detail is cut, not refused */
    big[TEXT_MAX + 10] = '\0';
    s_ok(kiln_history_attempt_start(h, run, "j", 1, 1, "w", NULL, 5));
    s_ok(kiln_history_attempt_finish(h, run, "j", 1, "failure", big, 6));
    s_ok(kiln_history_audit(h, "note", NULL, NULL, big, 7));

    sqlite3 *db = s_raw(fx->path);
    assert_int_equal(s_query_int(db, "SELECT length(data) FROM logs"), CHUNK_MAX);
    assert_int_equal(s_query_int(db, "SELECT COUNT(*) FROM logs"), 1);
    assert_int_equal(s_query_int(db, "SELECT length(yaml) FROM runs WHERE id = 2"), YAML_MAX);
    assert_int_equal(s_query_int(db, "SELECT COUNT(*) FROM runs"), 2);
    assert_int_equal(s_query_int(db, "SELECT length(message) FROM attempts"), TEXT_MAX);
    assert_int_equal(s_query_int(db, "SELECT length(detail) FROM audit"), TEXT_MAX);
    s_assert_query_text(db, "SELECT actor FROM audit", "(null)");
    sqlite3_close(db);
    free(big);
}

static void test_text_not_utf8(void **state)
{
    fixture_t *fx = *state;
    kiln_history_t *h = fx->history;
    int64_t run = 0;
    json_t *got = NULL;
    s_ok(kiln_history_run_create(h, "r", "f", NULL, 0, 1, "push", NULL, &run));
    s_ok(kiln_history_job_create(h, run, "j", "J", NULL, 0, NULL, 0));
    /* worker names and messages come from workers: keep them, repair on output */
    s_ok(kiln_history_job_set_state(h, run, "j", "running", 1, "w\xff" "1", 1, 0));
    s_ok(kiln_history_attempt_start(h, run, "j", 1, 1, "w\xff" "1", NULL, 1));
    s_ok(kiln_history_attempt_finish(h, run, "j", 1, "failure", "bad \xc3(\xe2\x82", 2));
    s_ok(kiln_history_run_json(h, run, &got));
    json_t *job = json_array_get(json_object_get(got, "jobs"), 0);
    assert_string_equal(json_string_value(json_object_get(job, "worker")), "w\xef\xbf\xbd" "1");
    json_t *attempt = json_array_get(json_object_get(job, "attempts"), 0);
    assert_string_equal(json_string_value(json_object_get(attempt, "message")),
                        "bad \xef\xbf\xbd(\xef\xbf\xbd\xef\xbf\xbd");
    json_decref(got);

    /* needs and runs_on come from the parsed workflow: refuse, do not repair */
    const char *bad[] = {"ok", "b\xffx"};
    assert_int_equal(kiln_history_job_create(h, run, "k", "K", bad, 2, NULL, 0), KILN_EINVAL);
    assert_non_null(strstr(kiln_error_last(), "needs[1]"));
    assert_int_equal(kiln_history_job_create(h, run, "k", "K", NULL, 0, bad, 2), KILN_EINVAL);
    assert_non_null(strstr(kiln_error_last(), "runs_on[1]"));
}

/* 100,000 job rows over 2,000 runs in one batch, then the two reads the UI
 * makes. Correctness only: timings are for bench/. */
#define SCALE_RUNS 2000
#define SCALE_JOBS 50

static void test_scale(void **state)
{
    fixture_t *fx = *state;
    kiln_history_t *h = fx->history;
    sqlite3 *db = s_raw(fx->path);
    const char *linux_only[] = {"linux"};

    s_ok(kiln_history_begin(h));
    for (int r = 1; r <= SCALE_RUNS; r++) {
        int64_t run = 0;
        char name[32];
        snprintf(name, sizeof name, "run-%d", r);
        s_ok(kiln_history_run_create(h, name, "wf.yml", NULL, 0, 1000 + r, "push", NULL, &run));
        assert_int_equal(run, r);
        /* created from job-49 down to job-00: insertion order is not key order */
        for (int j = SCALE_JOBS - 1; j >= 0; j--) {
            char job[16];
            char prev[16];
            const char *needs[] = {prev};
            snprintf(job, sizeof job, "job-%02d", j);
            snprintf(prev, sizeof prev, "job-%02d", j + 1);
            s_ok(kiln_history_job_create(h, run, job, job, needs, j == SCALE_JOBS - 1 ? 0 : 1,
                                         linux_only, 1));
        }
        s_ok(kiln_history_job_set_state(h, run, "job-00", "failure", 1, "w", 5, 9));
    }
    /* nothing is visible to another connection until the commit */
    assert_int_equal(s_query_int(db, "SELECT COUNT(*) FROM jobs"), 0);
    s_ok(kiln_history_commit(h));
    assert_int_equal(s_query_int(db, "SELECT COUNT(*) FROM jobs"), SCALE_RUNS * SCALE_JOBS);

    json_t *got = NULL;
    s_ok(kiln_history_runs_json(h, 50, &got));
    assert_int_equal(json_array_size(got), 50);
    for (size_t i = 0; i < 50; i++) {
        json_t *run = json_array_get(got, i);
        assert_int_equal(json_integer_value(json_object_get(run, "id")), SCALE_RUNS - (int)i);
        assert_int_equal(json_integer_value(json_object_get(run, "jobs")), SCALE_JOBS);
        assert_int_equal(json_integer_value(json_object_get(run, "failed")), 1);
    }
    json_decref(got);

    s_ok(kiln_history_runs_json(h, 0, &got));
    assert_int_equal(json_array_size(got), 50);
    json_decref(got);

    s_ok(kiln_history_runs_json(h, 5000, &got));
    assert_int_equal(json_array_size(got), 1000);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(got, 999), "id")),
                     SCALE_RUNS - 999);
    json_decref(got);

    s_ok(kiln_history_run_json(h, 1234, &got));
    assert_string_equal(json_string_value(json_object_get(got, "name")), "run-1234");
    json_t *jobs = json_object_get(got, "jobs");
    assert_int_equal(json_array_size(jobs), SCALE_JOBS);
    for (size_t i = 0; i < SCALE_JOBS; i++) {
        char want[16];
        snprintf(want, sizeof want, "job-%02d", SCALE_JOBS - 1 - (int)i);
        json_t *job = json_array_get(jobs, i);
        assert_string_equal(json_string_value(json_object_get(job, "id")), want);
    }
    s_assert_json(json_object_get(json_array_get(jobs, 1), "needs"), "['job-49']");
    s_assert_json(json_array_get(jobs, SCALE_JOBS - 1),
                  "{'id': 'job-00', 'name': 'job-00', 'state': 'failure', 'attempt': 1,"
                  " 'worker': 'w', 'started_ms': 5, 'finished_ms': 9, 'duration_ms': 4,"
                  " 'needs': ['job-01'], 'runs_on': ['linux'], 'attempts': [], 'steps': []}");
    json_decref(got);

    s_assert_query_text(db, "PRAGMA integrity_check", "ok");
    sqlite3_close(db);
}

/* ---- duration estimates --------------------------------------------------- */

typedef struct {
    size_t n;
    char job[8][300];
    int64_t estimate[8];
    unsigned samples[8];
    size_t stop_after; /* return 7 from this call (1-based); 0 never */
} est_walk_t;

static int s_collect_estimate(void *ctx, const char *job_id, int64_t estimate_ms,
                              unsigned samples)
{
    est_walk_t *walk = ctx;
    assert_true(walk->n < sizeof walk->job / sizeof walk->job[0]);
    assert_true(strlen(job_id) < sizeof walk->job[0]);
    snprintf(walk->job[walk->n], sizeof walk->job[0], "%s", job_id);
    walk->estimate[walk->n] = estimate_ms;
    walk->samples[walk->n] = samples;
    walk->n++;
    return walk->stop_after != 0 && walk->n == walk->stop_after ? 7 : 0;
}

/* The estimate of one job as kiln_history_durations reports it; -1 if none.
 * *samples (if not NULL) gets its sample count. */
static int64_t s_estimate(kiln_history_t *h, const char *workflow, const char *job,
                          unsigned *samples)
{
    est_walk_t walk = {0};
    s_ok(kiln_history_durations(h, workflow, s_collect_estimate, &walk));
    for (size_t i = 0; i < walk.n; i++) {
        if (strcmp(walk.job[i], job) == 0) {
            if (samples)
                *samples = walk.samples[i];
            return walk.estimate[i];
        }
    }
    return -1;
}

/* Recorded estimates read back per workflow, in job-id order, and kept. */
static void test_durations_record_and_read(void **state)
{
    fixture_t *fx = *state;
    kiln_history_t *h = fx->history;
    est_walk_t walk = {0};
    s_ok(kiln_history_duration_record(h, "ci", "test", 2000));
    s_ok(kiln_history_duration_record(h, "ci", "build", 1000));
    s_ok(kiln_history_duration_record(h, "nightly", "build", 9000));
    s_ok(kiln_history_duration_record(h, "ci", "a-first", 0));

    s_ok(kiln_history_durations(h, "ci", s_collect_estimate, &walk));
    assert_int_equal(walk.n, 3);
    assert_string_equal(walk.job[0], "a-first");
    assert_int_equal(walk.estimate[0], 0);
    assert_string_equal(walk.job[1], "build");
    assert_int_equal(walk.estimate[1], 1000);
    assert_int_equal(walk.samples[1], 1);
    assert_string_equal(walk.job[2], "test");
    assert_int_equal(walk.estimate[2], 2000);

    /* workflows do not see each other's jobs */
    unsigned samples = 0;
    assert_int_equal(s_estimate(h, "nightly", "build", &samples), 9000);
    assert_int_equal(samples, 1);
    assert_int_equal(s_estimate(h, "nightly", "test", NULL), -1);
    memset(&walk, 0, sizeof walk);
    s_ok(kiln_history_durations(h, "no such workflow", s_collect_estimate, &walk));
    assert_int_equal(walk.n, 0);

    /* a walk stops when fn says so, with fn's value */
    memset(&walk, 0, sizeof walk);
    walk.stop_after = 2;
    assert_int_equal(kiln_history_durations(h, "ci", s_collect_estimate, &walk), 7);
    assert_int_equal(walk.n, 2);

    /* kept across a reopen, and visible to another connection */
    kiln_history_destroy(&fx->history);
    s_ok(kiln_history_open(&fx->history, fx->path));
    assert_int_equal(s_estimate(fx->history, "ci", "build", NULL), 1000);
    sqlite3 *db = s_raw(fx->path);
    assert_int_equal(s_query_int(db, "SELECT COUNT(*) FROM durations"), 4);
    sqlite3_close(db);
}

/* The estimator: the plain mean of the first four durations, then each new
 * one moves the estimate a quarter of the way (an EWMA with alpha 1/4). */
static void test_durations_ewma(void **state)
{
    fixture_t *fx = *state;
    kiln_history_t *h = fx->history;
    unsigned samples = 0;

    /* warm-up: the mean, not a fraction of the first duration */
    const int64_t warm[][2] = {{100, 100}, {200, 150}, {300, 200}, {400, 250}};
    for (size_t i = 0; i < 4; i++) {
        s_ok(kiln_history_duration_record(h, "ci", "job", warm[i][0]));
        assert_int_equal(s_estimate(h, "ci", "job", &samples), warm[i][1]);
        assert_int_equal(samples, i + 1);
    }
    /* then weight 1/4: 250 -> 287.5 (shown rounded, 288) -> 315.625 (316);
     * the stored value is not rounded, or the second step would start at 288 */
    s_ok(kiln_history_duration_record(h, "ci", "job", 400));
    assert_int_equal(s_estimate(h, "ci", "job", NULL), 288);
    s_ok(kiln_history_duration_record(h, "ci", "job", 400));
    assert_int_equal(s_estimate(h, "ci", "job", &samples), 316);
    assert_int_equal(samples, 6);

    /* one outlier moves a steady estimate by a quarter of its excess, and
     * its effect fades as normal runs follow */
    for (int i = 0; i < 8; i++)
        s_ok(kiln_history_duration_record(h, "ci", "steady", 1000));
    assert_int_equal(s_estimate(h, "ci", "steady", NULL), 1000);
    s_ok(kiln_history_duration_record(h, "ci", "steady", 5000));
    assert_int_equal(s_estimate(h, "ci", "steady", NULL), 2000);
    s_ok(kiln_history_duration_record(h, "ci", "steady", 1000));
    assert_int_equal(s_estimate(h, "ci", "steady", NULL), 1750);
    s_ok(kiln_history_duration_record(h, "ci", "steady", 1000));
    assert_int_equal(s_estimate(h, "ci", "steady", NULL), 1563); /* 1562.5 */

    /* a job that got slower for good is followed within a few runs:
     * 2000 - 1000 * 0.75^n */
    for (int i = 0; i < 10; i++)
        s_ok(kiln_history_duration_record(h, "ci", "grew", 1000));
    s_ok(kiln_history_duration_record(h, "ci", "grew", 2000));
    assert_int_equal(s_estimate(h, "ci", "grew", NULL), 1250);
    for (int i = 1; i < 10; i++)
        s_ok(kiln_history_duration_record(h, "ci", "grew", 2000));
    assert_int_equal(s_estimate(h, "ci", "grew", &samples), 1944); /* 1943.68 */
    assert_int_equal(samples, 20);

    /* small steps are not lost to rounding: 10 towards 13 ends at 13 */
    for (int i = 0; i < 4; i++)
        s_ok(kiln_history_duration_record(h, "ci", "tiny", 10));
    for (int i = 0; i < 30; i++)
        s_ok(kiln_history_duration_record(h, "ci", "tiny", 13));
    assert_int_equal(s_estimate(h, "ci", "tiny", NULL), 13);
}

/* Inside a batch the estimate is part of the batch: this connection reads
 * it at once, others after the commit. Outside, each record commits alone. */
static void test_durations_in_batch(void **state)
{
    fixture_t *fx = *state;
    kiln_history_t *h = fx->history;
    sqlite3 *db = s_raw(fx->path);
    int64_t run = 0;
    unsigned samples = 0;

    s_ok(kiln_history_begin(h));
    s_ok(kiln_history_run_create(h, "ci", "ci.yml", NULL, 0, 1, "push", NULL, &run));
    s_ok(kiln_history_duration_record(h, "ci", "build", 100));
    s_ok(kiln_history_duration_record(h, "ci", "build", 300));
    assert_int_equal(s_estimate(h, "ci", "build", &samples), 200);
    assert_int_equal(samples, 2);
    assert_int_equal(s_query_int(db, "SELECT COUNT(*) FROM durations"), 0);
    s_ok(kiln_history_commit(h));
    assert_int_equal(s_query_int(db, "SELECT samples FROM durations WHERE job_id = 'build'"), 2);
    assert_int_equal(s_query_int(db, "SELECT COUNT(*) FROM runs"), 1);

    s_ok(kiln_history_duration_record(h, "ci", "test", 50));
    assert_int_equal(s_query_int(db, "SELECT estimate_ms FROM durations WHERE job_id = 'test'"),
                     50);

    /* a refused record inside a batch leaves the batch's other rows */
    s_ok(kiln_history_begin(h));
    s_ok(kiln_history_duration_record(h, "ci", "lint", 10));
    assert_int_equal(kiln_history_duration_record(h, "ci", "lint", -5), KILN_EINVAL);
    s_ok(kiln_history_commit(h));
    assert_int_equal(s_query_int(db, "SELECT COUNT(*) FROM durations WHERE job_id = 'lint'"), 1);
    sqlite3_close(db);
}

/* Keys and durations are bounded; a refusal writes nothing and says why. */
static void test_durations_limits(void **state)
{
    fixture_t *fx = *state;
    kiln_history_t *h = fx->history;
    char name[WORKFLOW_MAX + 2];
    char id[ID_MAX + 2];
    est_walk_t walk = {0};

    memset(name, 'w', sizeof name - 1);
    name[sizeof name - 1] = '\0'; /* WORKFLOW_MAX + 1 bytes */
    memset(id, 'j', sizeof id - 1);
    id[sizeof id - 1] = '\0'; /* ID_MAX + 1 bytes */

    assert_int_equal(kiln_history_duration_record(h, name, "j", 1), KILN_EINVAL);
    assert_non_null(strstr(kiln_error_last(), "workflow"));
    assert_int_equal(kiln_history_duration_record(h, "", "j", 1), KILN_EINVAL);
    assert_int_equal(kiln_history_duration_record(h, "ci", id, 1), KILN_EINVAL);
    assert_non_null(strstr(kiln_error_last(), "job id"));
    assert_int_equal(kiln_history_duration_record(h, "ci", "", 1), KILN_EINVAL);
    assert_int_equal(kiln_history_duration_record(h, "ci", "j", -1), KILN_EINVAL);
    assert_non_null(strstr(kiln_error_last(), "-1 ms"));
    assert_int_equal(kiln_history_duration_record(h, "ci", "j", DURATION_MAX + 1), KILN_EINVAL);
    assert_int_equal(kiln_history_duration_record(h, "ci", "j", INT64_MAX), KILN_EINVAL);
    assert_int_equal(kiln_history_durations(h, name, s_collect_estimate, &walk), KILN_EINVAL);
    assert_int_equal(kiln_history_durations(h, "", s_collect_estimate, &walk), KILN_EINVAL);
    assert_int_equal(walk.n, 0);

    sqlite3 *db = s_raw(fx->path);
    assert_int_equal(s_query_int(db, "SELECT COUNT(*) FROM durations"), 0);

    /* the bounds themselves are accepted */
    name[WORKFLOW_MAX] = '\0';
    id[ID_MAX] = '\0';
    s_ok(kiln_history_duration_record(h, name, id, DURATION_MAX));
    assert_int_equal(s_estimate(h, name, id, NULL), DURATION_MAX);
    assert_int_equal(s_query_int(db, "SELECT COUNT(*) FROM durations"), 1);
    sqlite3_close(db);
}

/* The schema of version 2, as Kiln wrote it, for the upgrade test. */
static const char s_schema_v2[] =
    "CREATE TABLE runs (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT, file TEXT, yaml BLOB,"
    " state TEXT NOT NULL, created_ms INTEGER NOT NULL, finished_ms INTEGER, inputs TEXT,"
    " actions TEXT, matrices TEXT);"
    "CREATE TABLE jobs (run_id INTEGER NOT NULL, job_id TEXT NOT NULL, name TEXT,"
    " state TEXT NOT NULL, attempt INTEGER NOT NULL DEFAULT 0, worker TEXT,"
    " started_ms INTEGER, finished_ms INTEGER, needs TEXT NOT NULL DEFAULT '[]',"
    " runs_on TEXT NOT NULL DEFAULT '[]', seq INTEGER NOT NULL, outputs TEXT,"
    " PRIMARY KEY (run_id, job_id)) WITHOUT ROWID;"
    "CREATE INDEX jobs_run_seq ON jobs (run_id, seq);"
    "CREATE TABLE attempts (run_id INTEGER NOT NULL, job_id TEXT NOT NULL,"
    " attempt INTEGER NOT NULL, token INTEGER, worker TEXT, state TEXT NOT NULL, message TEXT,"
    " started_ms INTEGER, finished_ms INTEGER,"
    " PRIMARY KEY (run_id, job_id, attempt)) WITHOUT ROWID;"
    "CREATE TABLE steps (run_id INTEGER NOT NULL, job_id TEXT NOT NULL,"
    " attempt INTEGER NOT NULL, idx INTEGER NOT NULL, name TEXT, state TEXT NOT NULL,"
    " exit_code INTEGER, signal INTEGER, started_ms INTEGER, finished_ms INTEGER,"
    " PRIMARY KEY (run_id, job_id, attempt, idx)) WITHOUT ROWID;"
    "CREATE TABLE logs (id INTEGER PRIMARY KEY, run_id INTEGER NOT NULL, job_id TEXT NOT NULL,"
    " attempt INTEGER NOT NULL, step INTEGER NOT NULL, stream INTEGER NOT NULL,"
    " ts_ms INTEGER NOT NULL, data BLOB NOT NULL);"
    "CREATE INDEX logs_run ON logs (run_id, id);"
    "CREATE TABLE annotations (id INTEGER PRIMARY KEY, run_id INTEGER NOT NULL,"
    " job_id TEXT NOT NULL, attempt INTEGER NOT NULL, step INTEGER, level TEXT NOT NULL,"
    " message TEXT, title TEXT, file TEXT, line INTEGER, col INTEGER);"
    "CREATE INDEX annotations_run ON annotations (run_id, id);"
    "CREATE TABLE summaries (run_id INTEGER NOT NULL, job_id TEXT NOT NULL,"
    " attempt INTEGER NOT NULL, markdown TEXT NOT NULL,"
    " PRIMARY KEY (run_id, job_id, attempt)) WITHOUT ROWID;"
    "CREATE TABLE audit (id INTEGER PRIMARY KEY, ts_ms INTEGER NOT NULL, kind TEXT NOT NULL,"
    " actor TEXT, detail TEXT);";

typedef struct {
    size_t n;
    int64_t ids[4];
    char yaml[4][32];
} active_walk_t;

static int s_collect_active(void *ctx, const kiln_history_active_t *run)
{
    active_walk_t *walk = ctx;
    assert_true(walk->n < 4);
    assert_true(run->yaml_len < sizeof walk->yaml[0]);
    walk->ids[walk->n] = run->run_id;
    memcpy(walk->yaml[walk->n], run->yaml, run->yaml_len);
    walk->yaml[walk->n][run->yaml_len] = '\0';
    walk->n++;
    return 0;
}

/* A file written by schema 2 is upgraded in place: its rows are all still
 * there and readable, the duration table works, and recovery still finds
 * the unfinished runs (now through the new index, built for the old rows). */
static void test_upgrade_from_schema_2(void **state)
{
    fixture_t *fx = *state;
    char path[600];
    snprintf(path, sizeof path, "%s/v2.db", fx->dir);
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "PRAGMA journal_mode = WAL", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, s_schema_v2, NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(
        sqlite3_exec(db,
                     "INSERT INTO runs (name, file, yaml, state, created_ms, finished_ms, inputs)"
                     " VALUES ('ci', 'ci.yml', 'jobs: {a: {}}', 'success', 10, 90, '{}'),"
                     " ('ci', 'ci.yml', 'jobs: {b: {}}', 'running', 100, NULL, NULL),"
                     " ('ci', 'ci.yml', 'jobs: {c: {}}', 'failure', 200, 250, NULL),"
                     " ('ci', 'ci.yml', 'jobs: {d: {}}', 'running', 300, NULL, NULL);"
                     "INSERT INTO jobs (run_id, job_id, name, state, attempt, worker, started_ms,"
                     " finished_ms, needs, runs_on, seq, outputs) VALUES (1, 'a', 'A', 'success',"
                     " 1, 'w1', 20, 80, '[]', '[\"linux\"]', 1, '{\"v\":\"1\"}');"
                     "INSERT INTO attempts VALUES (1, 'a', 1, 5, 'w1', 'success', NULL, 20, 80);"
                     "INSERT INTO steps VALUES (1, 'a', 1, 0, 'make', 'success', 0, NULL, 20, 80);"
                     "INSERT INTO logs (run_id, job_id, attempt, step, stream, ts_ms, data)"
                     " VALUES (1, 'a', 1, 0, 0, 30, 'hello\n');"
                     "INSERT INTO annotations (run_id, job_id, attempt, step, level, message)"
                     " VALUES (1, 'a', 1, 0, 'warning', 'careful');"
                     "INSERT INTO summaries VALUES (1, 'a', 1, '# done');"
                     "INSERT INTO audit (ts_ms, kind, actor, detail)"
                     " VALUES (10, 'run.submit', 'client:me', 'ci.yml');"
                     "PRAGMA user_version = 2;",
                     NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(db);

    kiln_history_t *h = NULL;
    s_ok(kiln_history_open(&h, path));

    /* the new table works, in and out of a batch */
    s_ok(kiln_history_duration_record(h, "ci", "a", 60));
    s_ok(kiln_history_begin(h));
    s_ok(kiln_history_duration_record(h, "ci", "a", 80));
    s_ok(kiln_history_commit(h));
    unsigned samples = 0;
    assert_int_equal(s_estimate(h, "ci", "a", &samples), 70);
    assert_int_equal(samples, 2);

    /* the old rows survived and read as before */
    json_t *got = NULL;
    s_ok(kiln_history_run_json(h, 1, &got));
    s_assert_json(got,
                  "{'id': 1, 'name': 'ci', 'file': 'ci.yml', 'state': 'success',"
                  " 'created_ms': 10, 'finished_ms': 90, 'jobs': ["
                  "{'id': 'a', 'name': 'A', 'state': 'success', 'attempt': 1, 'worker': 'w1',"
                  " 'started_ms': 20, 'finished_ms': 80, 'duration_ms': 60, 'needs': [],"
                  " 'runs_on': ['linux'], 'outputs': {'v': '1'},"
                  " 'attempts': [{'attempt': 1, 'token': 5, 'worker': 'w1', 'worker_key': null, 'state': 'success',"
                  "  'message': null, 'started_ms': 20, 'finished_ms': 80}],"
                  " 'steps': [{'attempt': 1, 'index': 0, 'name': 'make', 'state': 'success',"
                  "  'exit_code': 0, 'signal': null, 'started_ms': 20, 'finished_ms': 80,"
                  "  'duration_ms': 60}]}],"
                  " 'annotations': [{'job': 'a', 'attempt': 1, 'step': 0, 'level': 'warning',"
                  "  'message': 'careful', 'title': null, 'file': null, 'line': null,"
                  "  'col': null}],"
                  " 'summaries': [{'job': 'a', 'attempt': 1, 'markdown': '# done'}]}");
    json_decref(got);
    walk_t logs = {0};
    s_ok(kiln_history_logs_each(h, 1, NULL, s_collect, &logs));
    assert_int_equal(logs.n, 1);
    s_assert_chunk(&logs.chunks[0], "a", 0, 0, "hello\n", 6, 30);

    /* recovery finds the two unfinished runs, old and new alike */
    int64_t run = 0;
    s_ok(kiln_history_run_create(h, "ci", "ci.yml", "jobs: {e: {}}", 13, 400, "push", NULL, &run));
    assert_int_equal(run, 5);
    s_ok(kiln_history_run_set_state(h, 4, "cancelled", 410));
    active_walk_t active = {0};
    s_ok(kiln_history_active_runs(h, s_collect_active, &active));
    assert_int_equal(active.n, 2);
    assert_int_equal(active.ids[0], 2);
    assert_string_equal(active.yaml[0], "jobs: {b: {}}");
    assert_int_equal(active.ids[1], 5);
    kiln_history_destroy(&h);

    db = s_raw(path);
    assert_int_equal(s_query_int(db, "PRAGMA user_version"), 7);
    assert_int_equal(s_query_int(db, "SELECT COUNT(*) FROM sqlite_schema WHERE name IN"
                                     " ('durations', 'runs_active')"),
                     2);
    s_assert_query_text(db, "SELECT kind || ' ' || actor FROM audit", "run.submit client:me");
    assert_int_equal(s_query_int(db, "SELECT COUNT(*) FROM runs"), 5);
    s_assert_query_text(db, "PRAGMA integrity_check", "ok");
    sqlite3_close(db);

    /* opening an upgraded file again changes nothing */
    s_ok(kiln_history_open(&h, path));
    assert_int_equal(s_estimate(h, "ci", "a", NULL), 70);
    kiln_history_destroy(&h);
}

/* The lookups that must not grow with the history are index searches:
 * a workflow's estimates (the duration table's primary key) and the
 * unfinished runs (the partial index). Checked on the schema a new file
 * gets, with the statements' shapes as history.c writes them. */
static void test_indexed_lookups(void **state)
{
    fixture_t *fx = *state;
    sqlite3 *db = s_raw(fx->path);
    struct {
        const char *sql;
        const char *want;
    } plans[] = {
        {"SELECT job_id, CAST(ROUND(estimate_ms) AS INTEGER), samples FROM durations"
         " WHERE workflow = ?1 ORDER BY job_id",
         "SEARCH durations USING PRIMARY KEY (workflow=?)"},
        {"SELECT id, name, file, yaml, created_ms, inputs, actions, matrices FROM runs"
         " WHERE state = 'running' ORDER BY id",
         "SCAN runs USING INDEX runs_active"},
    };
    for (size_t i = 0; i < sizeof plans / sizeof plans[0]; i++) {
        char sql[512];
        snprintf(sql, sizeof sql, "EXPLAIN QUERY PLAN %s", plans[i].sql);
        sqlite3_stmt *stmt = NULL;
        assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &stmt, NULL), SQLITE_OK);
        char plan[512] = "";
        size_t used = 0;
        while (sqlite3_step(stmt) == SQLITE_ROW && used < sizeof plan - 1) {
            int n = snprintf(plan + used, sizeof plan - used, "%s; ",
                             (const char *)sqlite3_column_text(stmt, 3));
            used += n > 0 ? (size_t)n : 0;
        }
        sqlite3_finalize(stmt);
        /* one step, the index one: no scan of the table, no sort */
        char want[256];
        snprintf(want, sizeof want, "%s; ", plans[i].want);
        if (strcmp(plan, want) != 0)
            fail_msg("plan of \"%s\": %s", plans[i].sql, plan);
    }
    sqlite3_close(db);
}


/* ---- a full disk: writes wait, nothing is lost or accepted twice ------- */

/* The file is capped at its size (as a full disk would): a burst that
 * needs room fails at its commit, its writes wait in order, the next run is
 * refused, and once there is room the retry writes them all, once. */
static void test_full_disk_writes_wait(void **state)
{
    fixture_t *fx = *state;
    kiln_history_t *h = fx->history;
    int64_t run = 0, run2 = 0;
    kiln_history_health_t hh;
    char chunk[2048];
    memset(chunk, 'x', sizeof chunk);
    s_ok(kiln_history_run_create(h, "r", "f", NULL, 0, 1, "push", NULL, &run));
    s_ok(kiln_history_job_create(h, run, "j", "J", NULL, 0, NULL, 0));
    s_ok(kiln_history_limit(h, 1));
    kiln_history_health(h, &hh);
    assert_true(hh.writable);

    s_ok(kiln_history_begin(h));
    s_ok(kiln_history_job_set_state(h, run, "j", "running", 1, "w1", 5, 0));
    for (int i = 0; i < 200; i++)
        s_ok(kiln_history_log_append(h, run, "j", 1, 0, 0, chunk, sizeof chunk, 10 + i));
    s_ok(kiln_history_job_set_state(h, run, "j", "success", 0, NULL, 0, 900));
    s_ok(kiln_history_run_set_state(h, run, "success", 901));
    /* The rarer writes (outputs, annotations, summaries), a REAL and bytes with
     * a NUL in them wait too, and come back alike. */
    json_t *outs = json_pack("{s:s}", "version", "1.2.3");
    s_ok(kiln_history_job_outputs(h, run, "j", outs));
    json_decref(outs);
    s_ok(kiln_history_annotation(h, run, "j", 1, 0, "warning", "mind the gap", "gap", "a.c", 3, 0));
    s_ok(kiln_history_summary(h, run, "j", 1, "# sum\0mary", 10));
    s_ok(kiln_history_duration_record(h, "wf", "j", 1234));
    int rc = kiln_history_commit(h);
    assert_int_equal(rc, KILN_EINFRA);
    assert_non_null(strstr(kiln_error_last(), fx->path));
    assert_non_null(strstr(kiln_error_last(), "full"));
    kiln_history_health(h, &hh);
    assert_false(hh.writable);
    assert_int_equal(hh.failures, 1);
    assert_true(hh.waiting >= 207);
    assert_non_null(strstr(hh.why, fx->path));

    /* Nothing new is handed a number while writes wait. */
    rc = kiln_history_run_create(h, "r2", "f", NULL, 0, 2, "push", NULL, &run2);
    assert_int_equal(rc, KILN_EINFRA);
    assert_non_null(strstr(kiln_error_last(), "full"));
    /* Later writes join the queue, in order. */
    s_ok(kiln_history_audit(h, "late", "me", NULL, "after the failure", 1000));

    sqlite3 *db = s_raw(fx->path);
    s_assert_query_text(db, "SELECT state FROM jobs WHERE job_id = 'j'", "pending");
    assert_int_equal(s_query_int(db, "SELECT count(*) FROM logs"), 0);

    /* Still no room: the retry leaves everything waiting. */
    assert_int_equal(kiln_history_retry(h), 0);
    kiln_history_health(h, &hh);
    assert_false(hh.writable);

    s_ok(kiln_history_limit(h, 0));
    assert_int_equal(kiln_history_retry(h), 1);
    kiln_history_health(h, &hh);
    assert_true(hh.writable);
    assert_int_equal(hh.waiting, 0);
    s_assert_query_text(db, "SELECT state FROM jobs WHERE job_id = 'j'", "success");
    s_assert_query_text(db, "SELECT state FROM runs WHERE id = 1", "success");
    assert_int_equal(s_query_int(db, "SELECT count(*) FROM logs"), 200);
    assert_int_equal(s_query_int(db, "SELECT sum(length(data)) FROM logs"), 200 * 2048);
    assert_int_equal(s_query_int(db, "SELECT count(*) FROM audit WHERE kind = 'late'"), 1);
    s_assert_query_text(db, "SELECT outputs FROM jobs WHERE job_id = 'j'", "{\"version\":\"1.2.3\"}");
    s_assert_query_text(db, "SELECT message || '|' || title || '|' || file || '|' || line FROM annotations",
                        "mind the gap|gap|a.c|3");
    assert_int_equal(s_query_int(db, "SELECT length(CAST(markdown AS BLOB)) FROM summaries"), 10);
    assert_int_equal(s_query_int(db, "SELECT CAST(ROUND(estimate_ms) AS INTEGER) FROM durations"), 1234);
    /* The next run gets the next number, never one handed out before. */
    s_ok(kiln_history_run_create(h, "r2", "f", NULL, 0, 2, "push", NULL, &run2));
    assert_int_equal(run2, 2);
    sqlite3_close(db);
}

/* A submission's batch that cannot be written leaves no trace: no row
 * appears later, and its number is not used. */
static void test_full_disk_whole_batch_forgotten(void **state)
{
    fixture_t *fx = *state;
    kiln_history_t *h = fx->history;
    int64_t run = 0;
    char yaml[64 * 1024];
    memset(yaml, 'y', sizeof yaml);
    s_ok(kiln_history_run_create(h, "r", "f", NULL, 0, 1, "push", NULL, &run));
    s_ok(kiln_history_limit(h, 1));
    s_ok(kiln_history_begin(h));
    int rc = kiln_history_run_create(h, "big", "f", yaml, sizeof yaml, 2, "push", NULL, &run);
    if (rc == 0)
        rc = kiln_history_audit(h, "run.submit", "me", NULL, "f", 2);
    int crc = kiln_history_commit_whole(h);
    assert_true(rc != 0 || crc != 0);
    kiln_history_health_t hh;
    kiln_history_health(h, &hh);
    assert_false(hh.writable);
    assert_int_equal(hh.waiting, 0);
    s_ok(kiln_history_limit(h, 0));
    assert_int_equal(kiln_history_retry(h), 1);
    sqlite3 *db = s_raw(fx->path);
    assert_int_equal(s_query_int(db, "SELECT count(*) FROM runs"), 1);
    assert_int_equal(s_query_int(db, "SELECT count(*) FROM audit"), 0);
    sqlite3_close(db);
    s_ok(kiln_history_run_create(h, "next", "f", NULL, 0, 3, "push", NULL, &run));
    assert_int_equal(run, 2);
}

/* A batch the caller refuses whole (a submission whose later write failed)
 * leaves nothing: the run created in it is not on disk, and its number was
 * never handed out. */
static void test_abort_leaves_nothing(void **state)
{
    fixture_t *fx = *state;
    kiln_history_t *h = fx->history;
    int64_t run = 0;
    s_ok(kiln_history_begin(h));
    s_ok(kiln_history_run_create(h, "r", "f", NULL, 0, 1, "push", NULL, &run));
    s_ok(kiln_history_audit(h, "run.submit", "me", NULL, "f", 1));
    kiln_history_abort(h);
    sqlite3 *db = s_raw(fx->path);
    assert_int_equal(s_query_int(db, "SELECT count(*) FROM runs"), 0);
    assert_int_equal(s_query_int(db, "SELECT count(*) FROM audit"), 0);
    sqlite3_close(db);
    kiln_history_health_t hh;
    kiln_history_health(h, &hh);
    assert_true(hh.writable);
    /* The batch is over: the next one is a batch of its own. */
    s_ok(kiln_history_begin(h));
    s_ok(kiln_history_run_create(h, "r", "f", NULL, 0, 2, "push", NULL, &run));
    s_ok(kiln_history_commit(h));
    assert_int_equal(run, 1);
}

/* Output past what may wait in memory is counted, and a marker says how
 * much was lost once there is room. */
static void test_full_disk_output_bound(void **state)
{
    fixture_t *fx = *state;
    kiln_history_t *h = fx->history;
    int64_t run = 0;
    char *chunk = malloc(CHUNK_MAX);
    assert_non_null(chunk);
    memset(chunk, 'z', CHUNK_MAX);
    s_ok(kiln_history_run_create(h, "r", "f", NULL, 0, 1, "push", NULL, &run));
    s_ok(kiln_history_job_create(h, run, "j", "J", NULL, 0, NULL, 0));
    s_ok(kiln_history_limit(h, 1));
    s_ok(kiln_history_begin(h));
    for (int i = 0; i < 80; i++)
        s_ok(kiln_history_log_append(h, run, "j", 1, 2, 0, chunk, CHUNK_MAX, i));
    assert_int_equal(kiln_history_commit(h), KILN_EINFRA);
    kiln_history_health_t hh;
    kiln_history_health(h, &hh);
    assert_true(hh.lost_log_bytes > 0);
    assert_true(hh.waiting_bytes <= 64u * 1024 * 1024);
    uint64_t lost = hh.lost_log_bytes;
    s_ok(kiln_history_limit(h, 0));
    assert_int_equal(kiln_history_retry(h), 1);
    sqlite3 *db = s_raw(fx->path);
    int64_t kept = s_query_int(db, "SELECT sum(length(data)) FROM logs WHERE stream = 0");
    assert_int_equal((uint64_t)kept + lost, 80ull * CHUNK_MAX);
    char want[160];
    snprintf(want, sizeof want,
             "[kiln: %llu bytes of output lost here: the history disk was full]\n",
             (unsigned long long)lost);
    s_assert_query_text(db, "SELECT CAST(data AS TEXT) FROM logs WHERE stream = 2 AND step = 2",
                        want);
    sqlite3_close(db);
    free(chunk);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_open_creates_schema, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_open_errors, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_new_job_is_pending, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_run_lifecycle, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_outputs_annotations_summaries, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_upgrade_from_schema_1, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_job_set_state_keeps_unset_columns, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_runs_json_order_and_limit, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_runs_json_empty, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_logs_each_order_and_filter, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_logs_each_stops, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_logs_each_sees_chunks_stored_before_it, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_not_found, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_duplicates_refused, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_step_finish_without_start, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_batch_is_one_transaction, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_persists_across_reopen, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_limits, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_text_not_utf8, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_scale, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_durations_record_and_read, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_durations_ewma, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_durations_in_batch, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_durations_limits, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_upgrade_from_schema_2, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_indexed_lookups, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_full_disk_writes_wait, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_full_disk_whole_batch_forgotten, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_full_disk_output_bound, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_abort_leaves_nothing, s_setup, s_teardown),
    };
    return cmocka_run_group_tests_name("history", tests, NULL, NULL);
}
