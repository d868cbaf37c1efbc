/* policy.h: the coordinator's decisions that need no state of its own.
 *
 * Which run's turn it is (fairness), whether a worker may take a job
 * (labels, placement), whether it should get one queued behind its running
 * jobs (prefetch), whether a message comes from the current attempt
 * (fencing), and what happens to an attempt that ended (the retry policy).
 * The dispatch pass and the attempt handlers call these with plain values,
 * so each rule is decided in one place and tested on its own
 * (tests/unit/test_policy.c), without sockets, Redis or SQLite.
 */
#ifndef KILN_POLICY_H
#define KILN_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "coordinator/scheduler.h"
#include "lang/rules.h"

/* ---------------------------------------------------------- fairness */

/* What fairness looks at in a run that has ready jobs. */
typedef struct {
    int64_t id;
    unsigned n_leased;      /* its jobs on workers now */
    uint64_t served_seq;    /* when it last had a job placed */
    int64_t best_ready_seq; /* when its best ready job became ready (FIFO) */
} kiln_policy_run_t;

/* Whether run a's turn comes before b's. Critical path: the run with the
 * fewest jobs on workers, so a small run gets a slot as soon as one frees
 * however much a huge run has queued; between equals, the one served least
 * recently (round robin), then the older. FIFO: whoever's best job has
 * waited longest. */
bool kiln_policy_turn_before(kiln_scheduler_policy_t policy, const kiln_policy_run_t *a,
                             const kiln_policy_run_t *b);

/* --------------------------------------------------------- placement */

/* A label alias: a job asking for a label that `pattern` matches (the
 * same label, case-insensitively, or any label with its prefix when it ends
 * in '*') may run on workers labelled `label`. How GitHub's hosted labels
 * (ubuntu-24.04, ubuntu-latest, ...) reach a farm's own workers. */
typedef struct {
    const char *pattern;
    const char *label;
} kiln_policy_alias_t;

/* The first alias whose pattern matches label, or NULL. */
const kiln_policy_alias_t *kiln_policy_alias_for(const char *label,
                                                 const kiln_policy_alias_t *aliases, size_t n);

/* Whether a worker with labels have[] (and the farm's universal labels and
 * aliases) can run a job asking for need[]: every label, case-insensitively,
 * is universal, or the worker has it, or has the label of its first alias. */
bool kiln_policy_labels_match(const char *const *need, size_t n_need, const char *const *have,
                              size_t n_have, const char *const *universal, size_t n_universal,
                              const kiln_policy_alias_t *aliases, size_t n_aliases);

/* What placement looks at in a worker. */
typedef struct {
    unsigned slots, busy, cap; /* cap: slots plus what it may queue */
    bool draining;
    bool matches;              /* it has the job's labels */
    bool prefetchable;         /* kiln_policy_prefetchable said so */
} kiln_policy_worker_t;

/* The worker to place a job on, or -1: one that matches and is not
 * draining, with a free slot (queue false) or allowed to queue one (queue
 * true), and of those the least loaded by busy/slots (the first of equals). */
long kiln_policy_pick(const kiln_policy_worker_t *workers, size_t n, bool queue);

/* What prefetch looks at in one job a worker holds. */
typedef struct {
    int64_t started_ms;     /* wall */
    int64_t recent_ms;      /* its run's jobs' moving average duration */
    unsigned n_recent;      /* over how many */
} kiln_policy_held_t;

#define KILN_POLICY_PREFETCH_SAMPLES 3

/* Whether a worker whose slots are all busy should get its next job queued:
 * it has room to queue, and every job it holds belongs to a run of short
 * jobs (at least KILN_POLICY_PREFETCH_SAMPLES seen, average at most
 * short_ms) and is expected to end within horizon_ms of now. */
bool kiln_policy_prefetchable(unsigned slots, unsigned busy, unsigned cap, bool draining,
                              const kiln_policy_held_t *held, size_t n_held, int64_t now,
                              int64_t short_ms, int64_t horizon_ms);

/* ----------------------------------------------------------- fencing */

/* A message about a job is applied only from the worker holding its
 * current attempt, under that attempt's token, while it runs. */
bool kiln_policy_fenced(bool same_worker, uint64_t job_token, uint64_t msg_token,
                        kiln_job_state_t state);

/* -------------------------------------------------------- retry policy */

typedef enum {
    KILN_POLICY_FINISH = 0, /* the job ends in *final */
    KILN_POLICY_REQUEUE,    /* it runs again */
} kiln_policy_verdict_t;

/* An attempt that ended without the script's own verdict (worker lost,
 * drained, an infrastructure error): it runs again while its failures so
 * far (counting this one) are under the budget; ends cancelled when the run
 * was cancelled or the job told to stop; else infra_error. */
kiln_policy_verdict_t kiln_policy_after_infra(unsigned infra_failures, unsigned budget,
                                              bool stopping, kiln_job_state_t *final);
/* An attempt whose script failed or timed out: retried only while the
 * workflow's kiln.retry allows (script_failures so far, before this one)
 * and the job was not told to stop; any other outcome ends the job. */
kiln_policy_verdict_t kiln_policy_after_script(kiln_job_state_t outcome, unsigned script_failures,
                                               unsigned retry, bool stopping);

#endif
