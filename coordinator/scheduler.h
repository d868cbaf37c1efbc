/* scheduler.h: the order in which ready jobs go to workers.
 *
 * With enough slots every ready job starts at once and order does not
 * matter; on a busy farm it decides how long a run takes. The default policy
 * is critical-path list scheduling: each job is ranked by the longest chain
 * of work still ahead of it, counting its own estimated duration and its
 * dependents', so the jobs that hold up the end of the run start first. It is
 * the classic heuristic for DAGs on a fixed number of machines and stays
 * close to the lower bound (max of critical path and total work / slots)
 * on real graphs, where FIFO can leave a long chain for last.
 *
 * Estimates come from each job's duration history (by workflow and job id,
 * kept by history.c); a job never seen before gets the median of its
 * workflow's known jobs, or KILN_SCHEDULER_DEFAULT_MS when none is known, which
 * makes the rank a count of jobs ahead. The ready queue itself, and fairness
 * between runs (a run with fewer jobs running goes first, so a huge run
 * cannot starve small ones), live in server.c, which owns the jobs.
 */
#ifndef KILN_SCHEDULER_H
#define KILN_SCHEDULER_H

#include <stddef.h>
#include <stdint.h>

#include "lang/rungraph.h"

#define KILN_SCHEDULER_DEFAULT_MS 10000

typedef enum {
    KILN_SCHEDULER_CRITICAL_PATH = 0, /* longest remaining path first, fair between runs */
    KILN_SCHEDULER_FIFO,              /* ready order, farm-wide (for comparison) */
} kiln_scheduler_policy_t;

/* "critical-path" or "fifo". Returns 0, or KILN_EINVAL naming the value. */
int kiln_scheduler_policy_parse(const char *name, kiln_scheduler_policy_t *out);
const char *kiln_scheduler_policy_name(kiln_scheduler_policy_t policy);

/* est_ms[i] < 0 means "no history": those get the median of the known ones,
 * or KILN_SCHEDULER_DEFAULT_MS. */
void kiln_scheduler_fill_estimates(int64_t *est_ms, size_t n);

/* rank_ms[i] = est_ms[i] + the largest rank among the jobs that need job i:
 * the work on the longest path from the start of job i to the end of the
 * run. Arrays have wf->n_jobs entries. */
void kiln_scheduler_ranks(const kiln_rungraph_t *rg, const int64_t *est_ms, int64_t *rank_ms);

#endif
