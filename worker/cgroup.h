/* cgroup.h: one control group per slot, so that a job's processes end
 * with the job.
 *
 * A step runs in a process group of its own, which the executor kills when
 * the step ends; but a process may leave its group and session (`setsid -f`,
 * a double-forked daemon) and re-parent to init, out of reach of both. Every
 * step of a slot therefore joins the slot's cgroup before it execs (the
 * child writes "0" to the group's cgroup.procs), and what any process does
 * after that stays inside: at the end of a job, and before the next one,
 * everything still in the group is killed (through pidfds, so no pid can
 * have been reused) and waited for, before the workspace is recycled.
 *
 * The groups live under the worker's own cgroup: on a cgroup v2 system the
 * unified hierarchy, else the v1 `pids` hierarchy, whichever is writable
 * (root, or a delegated subtree such as systemd's Delegate=yes); they are
 * named kiln-PID-NAME-slot-N (two workers of one name on one host, such as
 * two local farms, must never share one). Groups of worker processes that
 * are gone are emptied and removed at start-up. Where neither is writable there are no groups and
 * kiln_cgroup_new says so: steps still run, and what leaves its process
 * group then may outlive the job.
 */
#ifndef KILN_CGROUP_H
#define KILN_CGROUP_H

#include <stddef.h>

typedef struct kiln_cgroup kiln_cgroup_t;

/* Groups for `slots` slots of worker `name`. root: the directory to make
 * them in, or NULL to find the worker's own cgroup. Returns 0 with *out
 * (NULL when no hierarchy is writable: the message says why), or -1. */
int kiln_cgroup_new(kiln_cgroup_t **out, const char *name, int slots, const char *root);
/* Kills what is left (as kiln_cgroup_sweep) and removes the groups. */
void kiln_cgroup_destroy(kiln_cgroup_t **self_p);

/* The slot's cgroup.procs opened for writing (the step's child writes "0"
 * to it), or -1 without groups. */
int kiln_cgroup_procs_fd(const kiln_cgroup_t *self, int slot);

/* Kills every process in the slot's group and waits (up to timeout_ms) for
 * them to be gone. *killed: how many. 0 when the group is empty at the end;
 * KILN_ETIMEOUT when something would not die (the message names a pid);
 * -1 when the group cannot be read. Accepts self NULL (nothing to do). */
int kiln_cgroup_sweep(kiln_cgroup_t *self, int slot, int timeout_ms, size_t *killed);

/* Where the groups are (for the log), or "". */
const char *kiln_cgroup_path(const kiln_cgroup_t *self);

#endif
