/* test_workspace.c: unit tests for worker/workspace.c.
 *
 * A job's tree is built, or taken over from the spare an earlier job left,
 * and what a job may rely on is asserted: ws/ and tmp/ are empty, nothing
 * else is in the tree's root, the step files in cmd/ are empty (a script
 * holds one newline), and nothing an earlier job put anywhere in the tree,
 * whatever shape it took (nested and read-only directories, links, hard
 * links, FIFOs, files with other modes, step files beyond the kept ones), is
 * still there or was followed out of the tree.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/error.h"
#include "common/fs.h"
#include "worker/workspace.h"

static char s_dir[PATH_MAX];    /* the work directory */
static char s_spare[PATH_MAX];  /* the spare tree's name in it */

/* ---- helpers ------------------------------------------------------------ */

static void s_write(const char *path, const char *text, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    assert_int_equal(close(fd), 0);
    assert_int_equal(chmod(path, mode), 0);
}

/* The whole content of path (static buffer), or NULL when it cannot be read. */
static const char *s_read(const char *path)
{
    static char buf[4096];
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return NULL;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n < 0)
        return NULL;
    buf[n] = '\0';
    return buf;
}

static bool s_exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

/* Entries in dir besides . and .. */
static int s_count(const char *dir)
{
    char cmd[PATH_MAX + 64];
    snprintf(cmd, sizeof cmd, "ls -A '%s' | wc -l", dir);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    int n = -1;
    assert_int_equal(fscanf(p, "%d", &n), 1);
    pclose(p);
    return n;
}

static const char *s_path(const char *dir, const char *name)
{
    static char paths[8][PATH_MAX * 2];
    static int next;
    char *p = paths[next++ % 8];
    snprintf(p, PATH_MAX * 2, "%s/%s", dir, name);
    return p;
}

static const char *s_step_file(const kiln_workspace_t *ws, kiln_workspace_file_t kind,
                               size_t index)
{
    static char path[8][PATH_MAX * 2];
    static int next;
    char *p = path[next++ % 8];
    assert_int_equal(kiln_workspace_step_file(ws, kind, index, p, PATH_MAX * 2), 0);
    return p;
}

static void s_assert_fresh(const kiln_workspace_t *ws)
{
    struct stat st;
    const char *dirs[] = {ws->root, ws->ws, ws->tmp, ws->cmd};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(lstat(dirs[i], &st), 0);
        assert_true(S_ISDIR(st.st_mode));
        assert_int_equal(st.st_mode & 07777, 0700);
    }
    assert_int_equal(s_count(ws->root), 3);
    assert_int_equal(s_count(ws->ws), 0);
    assert_int_equal(s_count(ws->tmp), 0);
}

/* ---- fixtures ----------------------------------------------------------- */

static int s_setup(void **state)
{
    (void)state;
    const char *base = getenv("TMPDIR");
    snprintf(s_dir, sizeof s_dir, "%s/kiln-test-workspace-XXXXXX", base ? base : "/tmp");
    if (!mkdtemp(s_dir))
        return -1;
    snprintf(s_spare, sizeof s_spare, "%s/.spare-0", s_dir);
    return 0;
}

static int s_teardown(void **state)
{
    (void)state;
    return kiln_fs_rmtree(s_dir);
}

/* ---- tests -------------------------------------------------------------- */

static void test_fresh_tree(void **state)
{
    (void)state;
    kiln_workspace_t ws;
    assert_int_equal(kiln_workspace_create(&ws, s_dir, NULL, 0, 7, "build/linux x64", 2), 0);
    assert_string_equal(ws.root, s_path(s_dir, "7-build_linux_x64-2"));
    assert_string_equal(ws.ws, s_path(ws.root, "ws"));
    assert_string_equal(ws.tmp, s_path(ws.root, "tmp"));
    assert_string_equal(ws.cmd, s_path(ws.root, "cmd"));
    s_assert_fresh(&ws);
    assert_string_equal(s_step_file(&ws, KILN_WORKSPACE_SCRIPT, 3), s_path(ws.cmd, "step-3.sh"));
    assert_string_equal(s_step_file(&ws, KILN_WORKSPACE_OUTPUT, 0), s_path(ws.cmd, "set_output_0"));
    assert_string_equal(s_step_file(&ws, KILN_WORKSPACE_SUMMARY, 12),
                        s_path(ws.cmd, "step_summary_12"));
    /* An old tree of the same name goes first. */
    s_write(s_path(ws.ws, "old"), "x", 0600);
    kiln_workspace_t again;
    assert_int_equal(kiln_workspace_create(&again, s_dir, NULL, 0, 7, "build/linux x64", 2), 0);
    s_assert_fresh(&again);
    assert_int_equal(kiln_workspace_remove(&again), 0);
    assert_false(s_exists(again.root));
}

/* What one job leaves behind in every corner of its tree. */
static void s_litter(const kiln_workspace_t *ws, const char *outside)
{
    char path[PATH_MAX * 2];
    s_write(s_step_file(ws, KILN_WORKSPACE_SCRIPT, 0), "echo secret-token\n", 0700);
    s_write(s_step_file(ws, KILN_WORKSPACE_SCRIPT, 1), "x", 0700);
    s_write(s_step_file(ws, KILN_WORKSPACE_OUTPUT, 0), "result=secret\n", 0600);
    s_write(s_step_file(ws, KILN_WORKSPACE_ENV, 0), "", 0600);
    s_write(s_step_file(ws, KILN_WORKSPACE_PATH, 0), "/opt/bin\n", 0600);
    s_write(s_step_file(ws, KILN_WORKSPACE_SUMMARY, 0), "# summary\n", 0600);
    s_write(s_step_file(ws, KILN_WORKSPACE_STATE, 0), "saved=secret\n", 0600);
    /* Beyond the kept steps, an unknown name, another mode, a look-alike. */
    s_write(s_step_file(ws, KILN_WORKSPACE_SCRIPT, KILN_WORKSPACE_KEEP_STEPS), "late", 0700);
    s_write(s_path(ws->cmd, "notes"), "n", 0600);
    s_write(s_step_file(ws, KILN_WORKSPACE_OUTPUT, 1), "", 0644);
    s_write(s_path(ws->cmd, "set_output_01"), "", 0600);
    /* A link to a file outside, where a kept file would be. */
    assert_int_equal(symlink(outside, s_step_file(ws, KILN_WORKSPACE_ENV, 1)), 0);
    /* A hard link from outside the tree to a kept file. */
    s_write(s_step_file(ws, KILN_WORKSPACE_PATH, 1), "", 0600);
    snprintf(path, sizeof path, "%s.hardlink", outside);
    unlink(path);
    assert_int_equal(link(s_step_file(ws, KILN_WORKSPACE_PATH, 1), path), 0);
    assert_int_equal(mkfifo(s_step_file(ws, KILN_WORKSPACE_SUMMARY, 1), 0600), 0);
    /* The workspace: nested, read-only, a link out of the tree. */
    snprintf(path, sizeof path, "%s/src/deep", ws->ws);
    assert_int_equal(mkdir(s_path(ws->ws, "src"), 0700), 0);
    assert_int_equal(mkdir(path, 0700), 0);
    s_write(s_path(path, "a.o"), "obj", 0644);
    assert_int_equal(chmod(path, 0500), 0);
    assert_int_equal(symlink(s_dir, s_path(ws->ws, "link-out")), 0);
    s_write(s_path(ws->tmp, "cache"), "c", 0600);
    s_write(s_path(ws->root, "stray"), "s", 0600);
}

static void test_recycled_tree_is_as_new(void **state)
{
    (void)state;
    char outside[PATH_MAX];
    snprintf(outside, sizeof outside, "%s/outside", s_dir);
    s_write(outside, "keep me", 0600);

    kiln_workspace_t a;
    assert_int_equal(kiln_workspace_create(&a, s_dir, NULL, 0, 1, "a", 1), 0);
    s_litter(&a, outside);
    /* Step 0 keeps all five command files, step 1 not (see s_litter). */
    assert_int_equal(kiln_workspace_recycle(&a, s_spare), 1);
    assert_false(s_exists(a.root));
    assert_true(s_exists(s_spare));

    kiln_workspace_t b;
    assert_int_equal(kiln_workspace_create(&b, s_dir, s_spare, 1, 1, "b", 1), 0);
    assert_int_equal(b.ready_steps, 1);
    assert_false(s_exists(s_spare));
    s_assert_fresh(&b);
    /* Kept: step 0's files, emptied; the scripts of steps 0 and 1 hold one
     * newline. */
    assert_string_equal(s_read(s_step_file(&b, KILN_WORKSPACE_SCRIPT, 0)), "\n");
    assert_string_equal(s_read(s_step_file(&b, KILN_WORKSPACE_SCRIPT, 1)), "\n");
    assert_string_equal(s_read(s_step_file(&b, KILN_WORKSPACE_OUTPUT, 0)), "");
    assert_string_equal(s_read(s_step_file(&b, KILN_WORKSPACE_ENV, 0)), "");
    assert_string_equal(s_read(s_step_file(&b, KILN_WORKSPACE_PATH, 0)), "");
    assert_string_equal(s_read(s_step_file(&b, KILN_WORKSPACE_SUMMARY, 0)), "");
    assert_string_equal(s_read(s_step_file(&b, KILN_WORKSPACE_STATE, 0)), "");
    /* Gone: everything else. */
    assert_int_equal(s_count(b.cmd), 7);
    assert_false(s_exists(s_step_file(&b, KILN_WORKSPACE_SCRIPT, KILN_WORKSPACE_KEEP_STEPS)));
    assert_false(s_exists(s_step_file(&b, KILN_WORKSPACE_ENV, 1)));
    assert_false(s_exists(s_step_file(&b, KILN_WORKSPACE_PATH, 1)));
    /* Nothing outside was followed or changed. */
    assert_string_equal(s_read(outside), "keep me");
    char hard[PATH_MAX + 16];
    snprintf(hard, sizeof hard, "%s.hardlink", outside);
    assert_true(s_exists(hard));
    assert_true(s_exists(s_path(s_dir, "outside")));
    assert_int_equal(kiln_workspace_remove(&b), 0);
}

static void test_spare_in_the_way_is_replaced(void **state)
{
    (void)state;
    /* A spare left by an earlier worker, with content. */
    assert_int_equal(mkdir(s_spare, 0700), 0);
    s_write(s_path(s_spare, "old"), "o", 0600);
    kiln_workspace_t a;
    assert_int_equal(kiln_workspace_create(&a, s_dir, NULL, 0, 2, "a", 1), 0);
    s_write(s_path(a.ws, "new"), "n", 0600);
    assert_int_equal(kiln_workspace_recycle(&a, s_spare), 0);
    assert_false(s_exists(s_path(s_spare, "old")));
    assert_int_equal(s_count(s_path(s_spare, "ws")), 0);
    /* And a job's old tree in the spare's way on the other side. */
    kiln_workspace_t b;
    assert_int_equal(kiln_workspace_create(&b, s_dir, NULL, 0, 2, "b", 1), 0);
    s_write(s_path(b.ws, "stale"), "s", 0600);
    kiln_workspace_t b2;
    assert_int_equal(kiln_workspace_create(&b2, s_dir, s_spare, 0, 2, "b", 1), 0);
    s_assert_fresh(&b2);
    assert_false(s_exists(s_spare));
    assert_int_equal(kiln_workspace_remove(&b2), 0);
}

static void test_tree_not_ours_is_removed(void **state)
{
    (void)state;
    kiln_workspace_t a;
    assert_int_equal(kiln_workspace_create(&a, s_dir, NULL, 0, 3, "a", 1), 0);
    s_write(s_path(a.ws, "f"), "f", 0600);
    assert_int_equal(chmod(a.root, 0755), 0);
    assert_int_equal(kiln_workspace_recycle(&a, s_spare), -1);
    assert_false(s_exists(a.root));
    assert_false(s_exists(s_spare));
    /* Without a spare the next job builds its tree. */
    kiln_workspace_t b;
    assert_int_equal(kiln_workspace_create(&b, s_dir, NULL, 0, 3, "b", 1), 0);
    s_assert_fresh(&b);
    /* A subdirectory with another mode, or a file in its place, is made
     * again. */
    assert_int_equal(chmod(b.tmp, 0755), 0);
    assert_int_equal(kiln_fs_rmtree(b.cmd), 0);
    s_write(b.cmd, "not a directory", 0600);
    assert_int_equal(kiln_workspace_recycle(&b, s_spare), 0);
    kiln_workspace_t c;
    assert_int_equal(kiln_workspace_create(&c, s_dir, s_spare, 0, 3, "c", 1), 0);
    s_assert_fresh(&c);
    assert_int_equal(s_count(c.cmd), 0);
    assert_int_equal(kiln_workspace_remove(&c), 0);
}

static void test_spare_gone_falls_back_to_a_new_tree(void **state)
{
    (void)state;
    kiln_workspace_t a;
    assert_false(s_exists(s_spare));
    assert_int_equal(kiln_workspace_create(&a, s_dir, s_spare, 2, 4, "a", 1), 0);
    s_assert_fresh(&a);
    /* Built afresh: no command file is there to be taken as made. */
    assert_int_equal(a.ready_steps, 0);
    assert_int_equal(kiln_workspace_remove(&a), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fresh_tree),
        cmocka_unit_test(test_recycled_tree_is_as_new),
        cmocka_unit_test(test_spare_in_the_way_is_replaced),
        cmocka_unit_test(test_tree_not_ours_is_removed),
        cmocka_unit_test(test_spare_gone_falls_back_to_a_new_tree),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
