/* workspace.h: each job's private directories on a worker.
 *
 * Every attempt of every job gets a fresh directory tree under the worker's
 * work directory: ws/ (the workspace, GITHUB_WORKSPACE, where steps start)
 * and tmp/ (RUNNER_TEMP, where the step scripts are written). Nothing leaks
 * from one job into the next; the tree is removed when the job ends.
 */
#ifndef KILN_WORKSPACE_H
#define KILN_WORKSPACE_H

#include <stddef.h>

#define KILN_WORKSPACE_PATH_MAX 1024

typedef struct {
    char root[KILN_WORKSPACE_PATH_MAX]; /* work_dir/<run>-<job>-<attempt> */
    char ws[KILN_WORKSPACE_PATH_MAX];
    char tmp[KILN_WORKSPACE_PATH_MAX];
} kiln_workspace_t;

/* Creates a fresh tree for (run, job, attempt); an old tree with the same
 * name is removed first. Job ids are sanitised for the file system. */
int kiln_workspace_create(kiln_workspace_t *out, const char *work_dir, unsigned long long run_id,
                          const char *job_id, unsigned attempt);
/* Removes the tree (whatever the steps left in it). */
int kiln_workspace_remove(const kiln_workspace_t *self);
/* Removes any directory tree at path (like rm -rf, without following links). */
int kiln_workspace_rmtree(const char *path);

#endif
