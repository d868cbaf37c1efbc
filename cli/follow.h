/* follow.h: showing a run as it happens, and its summary.
 *
 * Events from the coordinator become terminal lines: each output line is
 * prefixed with its job's name ("build | ..."), job starts and ends get a
 * line of their own, and when the run ends a table lists every job with its
 * state, duration, worker and attempts. With --json only the final summary
 * (the run as history records it) is printed, as one JSON document.
 */
#ifndef KILN_FOLLOW_H
#define KILN_FOLLOW_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "cli/client.h"

/* Exit codes shared by `kiln run`, `kiln submit --wait` and the rest. */
enum {
    KILN_EXIT_OK = 0,
    KILN_EXIT_FAILED = 1,  /* the pipeline failed */
    KILN_EXIT_USAGE = 2,   /* invalid input or usage */
    KILN_EXIT_INFRA = 3,   /* the farm could not do its job */
    KILN_EXIT_INTERRUPTED = 130,
};

/* A follower that hears nothing for KILN_FOLLOW_CHECK_MS asks again
 * (REQ_WATCH: a restarted coordinator knows no followers, and a run may have
 * ended while it was down); after KILN_FOLLOW_GIVE_UP_MS without an answer
 * it gives up (exit 3). */
#define KILN_FOLLOW_CHECK_MS 3000
#define KILN_FOLLOW_GIVE_UP_MS 120000

/* The follower's check: 1 (still running, watch renewed, or no answer yet:
 * *last_heard tells how long), 0 with state (the run ended), KILN_ETIMEOUT
 * (no answer for KILN_FOLLOW_GIVE_UP_MS), KILN_ENOTFOUND. */
int kiln_follow_renew(kiln_client_t *client, int64_t run_id, bool quiet, int64_t *last_heard,
                      char *state, size_t cap);
/* Follows run_id until it finishes. extra_fd (or -1) is polled too: when it
 * becomes readable, follow returns KILN_EAGAIN so the caller can react (a
 * signal, a dead coordinator). On RUN_FINISHED returns 0 and copies the
 * run's state ("success", ...) into state. live: print events as they come;
 * job_filter: only this job's output (NULL: all). */
int kiln_follow_run(kiln_client_t *client, int64_t run_id, bool live, const char *job_filter,
                    int extra_fd, char *state, size_t cap);
/* Fetches the run's record and prints the summary table or, with json, the
 * JSON document. Returns the exit code the run deserves. */
int kiln_follow_summary(kiln_client_t *client, int64_t run_id, bool json);
/* Maps a run state to an exit code. */
int kiln_follow_exit_code(const char *state);
/* Prints one log chunk with job prefixes ("job | line"). On a terminal the
 * chunk is made safe first (common/termsafe.h), unless raw was asked for. */
void kiln_follow_print_log(const char *job, int stream, const uint8_t *data, size_t len);
/* kiln run: its farm has `workers` workers (0: not a farm of its own). A
 * follower told that a job waits for labels none of them has, with all of
 * them connected, stops: kiln_follow_run returns KILN_EUNSERVED with the
 * labels in kiln_error_last(). */
#define KILN_EUNSERVED (-100)
void kiln_follow_set_own_farm(unsigned workers);
/* --raw: step output printed as its bytes came, even on a terminal. */
void kiln_follow_set_raw(bool raw);
/* text (from a job: an annotation, a step name) made safe for stdout as
 * kiln_follow_print_log makes output; malloc'd, or NULL when out of memory.
 * Off a terminal, or raw, a copy. */
char *kiln_follow_safe_text(const char *text);

/* A run's annotations (level, job, file:line, title, message) and step
 * summaries, as kiln run and kiln status show them. */
void kiln_follow_print_extras(const json_t *run);

#endif
