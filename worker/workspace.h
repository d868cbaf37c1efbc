/* workspace.h: each job's private directories on a worker.
 *
 * Every attempt of every job gets its own directory tree under the worker's
 * work directory, named work_dir/<run>-<job>-<attempt>, holding
 *   ws/   the workspace (GITHUB_WORKSPACE), where steps start;
 *   tmp/  RUNNER_TEMP, for the steps;
 *   cmd/  the runner's own files: each step's script and its command files
 *         ($GITHUB_OUTPUT, $GITHUB_ENV, $GITHUB_PATH, $GITHUB_STEP_SUMMARY).
 * ws/ and tmp/ are empty when the job starts; nothing of one job is there
 * for the next.
 *
 * Building a tree and removing it again costs a file system a dozen inodes
 * created and freed per job, which for short jobs outweighs the rest of what
 * the worker does. So when a job ends its tree is emptied instead: ws/ and
 * tmp/ lose everything in them, anything unexpected anywhere is removed, and
 * the files in cmd/ of the first KILN_WORKSPACE_KEEP_STEPS steps stay, each
 * emptied (a script is left holding one newline, which costs less than
 * truncating it to nothing). The tree is then renamed to a spare name, and
 * the next job in the same slot renames it into place. A tree that cannot
 * be cleaned that way is removed as a whole.
 */
#ifndef KILN_WORKSPACE_H
#define KILN_WORKSPACE_H

#include <stddef.h>

#define KILN_WORKSPACE_PATH_MAX 1024
/* Steps whose files in cmd/ are kept (emptied) from one job to the next. */
#define KILN_WORKSPACE_KEEP_STEPS 8

typedef struct {
    char root[KILN_WORKSPACE_PATH_MAX]; /* work_dir/<run>-<job>-<attempt> */
    char ws[KILN_WORKSPACE_PATH_MAX];
    char tmp[KILN_WORKSPACE_PATH_MAX];
    char cmd[KILN_WORKSPACE_PATH_MAX];
    /* Steps 0..ready_steps-1 have their four command files in cmd/ already,
     * empty and this user's (a recycled tree): they need not be made. */
    unsigned ready_steps;
} kiln_workspace_t;

/* The event payload file ($GITHUB_EVENT_PATH) in the job's root: kept by
 * recycling and written over by the next job, padded with spaces to its
 * old length rather than truncated (JSON ends where its value does). */
#define KILN_WORKSPACE_EVENT "event.json"

/* The files of a step in cmd/. */
typedef enum {
    KILN_WORKSPACE_SCRIPT = 0,  /* step-<i>.sh, mode 0700 */
    KILN_WORKSPACE_OUTPUT,      /* set_output_<i>, mode 0600, as all below */
    KILN_WORKSPACE_ENV,         /* set_env_<i> */
    KILN_WORKSPACE_PATH,        /* add_path_<i> */
    KILN_WORKSPACE_SUMMARY,     /* step_summary_<i> */
    KILN_WORKSPACE_STATE,       /* save_state_<i> */
    KILN_WORKSPACE_N_FILES
} kiln_workspace_file_t;

/* Sets out's paths and makes the tree for (run, job, attempt), with empty
 * ws/ and tmp/. spare (may be NULL) names a tree this process made ready
 * with kiln_workspace_recycle, which said spare_steps: it is renamed into
 * place and is gone afterwards, whatever happens; without one, or when it
 * cannot be used, the tree is built (and out->ready_steps is 0). An old tree
 * with the same name is removed first. Job ids are sanitised for the file
 * system. */
int kiln_workspace_create(kiln_workspace_t *out, const char *work_dir, const char *spare,
                          unsigned spare_steps, unsigned long long run_id, const char *job_id,
                          unsigned attempt);
/* Empties the tree (see above) and renames it to spare. Returns how many
 * leading steps' command files the spare holds (>= 0; for
 * kiln_workspace_create) when spare is ready; otherwise the tree is removed
 * and -1 returned with the message set. */
int kiln_workspace_recycle(const kiln_workspace_t *self, const char *spare);
/* Removes the tree (whatever the steps left in it). */
int kiln_workspace_remove(const kiln_workspace_t *self);
/* The path of step index's file of the given kind, in out (cap bytes).
 * Returns 0, or KILN_EINVAL when it does not fit. */
int kiln_workspace_step_file(const kiln_workspace_t *self, kiln_workspace_file_t kind,
                             size_t index, char *out, size_t cap);

#endif
