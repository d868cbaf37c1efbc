/* cgroup.h: a control group for the worker, so that a job's processes end
 * with the job.
 *
 * A step runs in a process group of its own, which the executor kills when
 * the step ends; but a process may leave its group and session (`setsid -f`,
 * a double-forked daemon) and re-parent to init, out of reach of both. The
 * worker therefore moves itself into a cgroup of its own when it starts, and
 * everything it starts is born inside it and cannot leave: at the end of a
 * job, whatever is in the group that is not the worker, its guard or a step
 * still running (another slot's) is the job's leftover, and is killed
 * (through pidfds, so no pid can have been reused) and waited for before the
 * workspace is recycled. Joining once at start-up, not once per step, keeps
 * the kernel's cgroup migration (an RCU grace period, milliseconds on an idle
 * machine, in cgroup v1) off every step's start.
 *
 * With several slots a leftover is told apart by KILN_TRACKING_ID in its
 * environment (each job's steps have their own, as GitHub's runner does):
 * one that carries another running job's is spared; one whose environment
 * was cleared is taken for the ending job's.
 *
 * The group lives under the worker's own cgroup: on a cgroup v2 system the
 * unified hierarchy, else the v1 `pids` hierarchy, whichever is writable
 * (root, or a delegated subtree such as systemd's Delegate=yes), named
 * kiln-PID-NAME. Groups of worker processes that are gone are emptied and
 * removed at start-up. Where neither hierarchy is writable (no root, no
 * delegation, an unprivileged container) the worker becomes a child
 * subreaper (PR_SET_CHILD_SUBREAPER) instead: a process that leaves its
 * step's group re-parents to the worker, not to init, and the sweep kills
 * (and reaps) the worker's children that are neither the guard nor a live
 * step; kiln_cgroup_new says so in its message. Only a process started for a
 * step by another service (systemd-run, a container engine) escapes then.
 */
#ifndef KILN_CGROUP_H
#define KILN_CGROUP_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct kiln_cgroup kiln_cgroup_t;

/* Moves this process into a new group for worker `name`. root: the
 * directory to make it in, or NULL to find the worker's own cgroup.
 * Returns 0 with *out: a group, or the subreaper fallback when no hierarchy
 * is writable (kiln_cgroup_is_subreaper; the message says why), or NULL
 * when even that failed (the message says so); or -1. */
int kiln_cgroup_new(kiln_cgroup_t **out, const char *name, const char *root);
/* Moves this process back where it was and removes the group (what is
 * still in it is killed first). */
void kiln_cgroup_destroy(kiln_cgroup_t **self_p);

/* Kills the ending job's leftovers: every process in the group but this
 * one and those in `spare` (pids, and process groups of live steps), and
 * those whose environment names another job (KILN_TRACKING_ID=... other
 * than tracking_id); waits up to timeout_ms for them to be gone. *killed:
 * how many. 0; KILN_ETIMEOUT when something would not die; -1 when the
 * group cannot be read. Accepts self NULL (nothing to do). */
int kiln_cgroup_sweep(kiln_cgroup_t *self, const char *tracking_id, const pid_t *spare,
                      size_t n_spare, int timeout_ms, size_t *killed);

/* Where the group is (for the log), or "" (none, or the subreaper). */
const char *kiln_cgroup_path(const kiln_cgroup_t *self);
bool kiln_cgroup_is_subreaper(const kiln_cgroup_t *self);

#endif
