/* test_hashfiles.c: hashFiles() over a job's workspace (worker/hashfiles.c)
 * behaves as GitHub documents it: SHA-256 over each matching file's SHA-256
 * in path order, '' for no match, @actions/glob's patterns (lines, '!'
 * exclusions, "**", dot files, implicit descendants), nothing outside the
 * workspace ever read, links followed only when asked, and every bound an
 * error with its message. The expression-side tests go through
 * kiln_expr_eval with the worker's callback, as jobctx.c wires it; the
 * direct ones call kiln_hashfiles_compute. */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include <sodium.h>

#include "common/error.h"
#include "lang/expr.h"
#include "worker/hashfiles.h"

static json_t *s_ctx;
static kiln_expr_env_t s_env;

static int s_group_setup(void **state)
{
    (void)state;
    s_ctx = json_pack("{s:{s:s}}", "matrix", "os", "linux");
    if (!s_ctx)
        return -1;
    return sodium_init() < 0 ? -1 : 0;
}

static int s_group_teardown(void **state)
{
    (void)state;
    json_decref(s_ctx);
    return 0;
}

/* Each test starts with a matrix context and no hashFiles host. */
static int s_reset(void **state)
{
    (void)state;
    s_env.contexts = s_ctx;
    s_env.status = KILN_EXPR_SUCCESS;
    s_env.hash_files = NULL;
    s_env.hash_ctx = NULL;
    return 0;
}

/* Evaluates expr and returns its string form (caller frees). */
static char *s_str(const char *expr)
{
    json_t *v = NULL;
    char err[512] = "", *s;
    int rc = kiln_expr_eval(expr, &s_env, &v, err, sizeof err);
    if (rc != 0)
        fail_msg("%s: unexpected error %d: %s", expr, rc, err);
    assert_non_null(v);
    s = kiln_expr_string(v);
    json_decref(v);
    assert_non_null(s);
    return s;
}

static void s_assert_str(const char *expr, const char *want)
{
    char *got = s_str(expr);
    if (strcmp(got, want) != 0)
        fail_msg("%s: got [%s], want [%s]", expr, got, want);
    free(got);
}

/* eval fails with KILN_EINVAL and exactly this "column N: message". */
static void s_assert_err(const char *expr, const char *want)
{
    json_t *v = NULL;
    char err[512] = "";
    int rc = kiln_expr_eval(expr, &s_env, &v, err, sizeof err);
    assert_null(v);
    if (rc != KILN_EINVAL || strcmp(err, want) != 0)
        fail_msg("%s: got %d [%s], want [%s]", expr, rc, err, want);
    assert_string_equal(kiln_error_last(), want);
}

static int s_rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void s_rm_tree(const char *dir)
{
    nftw(dir, s_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* The hashFiles test's temporary trees, removed by its teardown even when
 * an assertion fails half way. */
static char s_tmp_dir[32], s_tmp_other[32], s_tmp_outside[32];

static int s_tmp_teardown(void **state)
{
    char *dirs[] = {s_tmp_dir, s_tmp_other, s_tmp_outside};
    (void)state;
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        if (dirs[i][0])
            s_rm_tree(dirs[i]);
        dirs[i][0] = '\0';
    }
    return 0;
}

static void s_write(const char *dir, const char *rel, const char *content)
{
    char path[512];
    FILE *f;
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    for (char *slash = strchr(path + strlen(dir) + 1, '/'); slash; slash = strchr(slash + 1, '/')) {
        *slash = '\0';
        mkdir(path, 0755);
        *slash = '/';
    }
    f = fopen(path, "w");
    assert_non_null(f);
    fputs(content, f);
    assert_int_equal(fclose(f), 0);
}

/* hashFiles' definition, computed independently: SHA-256 over each file's
 * SHA-256, files in path order (the caller lists contents in that order). */
static void s_expected(char hex[65], const char *const *contents, size_t n)
{
    crypto_hash_sha256_state st;
    unsigned char d[crypto_hash_sha256_BYTES];
    crypto_hash_sha256_init(&st);
    for (size_t i = 0; i < n; i++) {
        crypto_hash_sha256(d, (const unsigned char *)contents[i], strlen(contents[i]));
        crypto_hash_sha256_update(&st, d, sizeof d);
    }
    crypto_hash_sha256_final(&st, d);
    sodium_bin2hex(hex, 65, d, sizeof d);
}

static const char *const s_tree[][2] = {
    {"a.txt", "alpha\n"},
    {"src/b.c", "int b;\n"},
    {"src/deep/c.c", "int c;\n"},
    {"node_modules/x/x.c", "int x;\n"},
    {".hidden", "secret\n"},
};
#define S_TREE_N (sizeof s_tree / sizeof s_tree[0])

/* hashFiles() as a workflow calls it: through the expression language and
 * the worker's callback, over real temporary trees. */
static void test_hashfiles_expr(void **state)
{
    char *dir = s_tmp_dir, *other = s_tmp_other, *outside = s_tmp_outside;
    char want[65], path[512], target[512];
    char *all_c, *first, *again;
    (void)state;
    strcpy(dir, "/tmp/kiln-hash-XXXXXX");
    strcpy(other, "/tmp/kiln-hash-XXXXXX");
    strcpy(outside, "/tmp/kiln-hash-out-XXXXXX");
    assert_non_null(mkdtemp(dir));
    assert_non_null(mkdtemp(other));
    assert_non_null(mkdtemp(outside));
    for (size_t i = 0; i < S_TREE_N; i++)
        s_write(dir, s_tree[i][0], s_tree[i][1]);
    /* the same files created in the opposite order */
    for (size_t i = S_TREE_N; i-- > 0;)
        s_write(other, s_tree[i][0], s_tree[i][1]);

    s_assert_err("hashFiles('**/*.c')",
                 "column 1: hashFiles: no workspace (only available where a job runs)");
    s_env.hash_files = kiln_hashfiles_callback;
    s_env.hash_ctx = dir;

    /* stable, and exactly the documented digest: node_modules/x/x.c,
     * src/b.c, src/deep/c.c in path order */
    s_expected(want, (const char *const[]){"int x;\n", "int b;\n", "int c;\n"}, 3);
    all_c = s_str("hashFiles('**/*.c')");
    assert_string_equal(all_c, want);
    again = s_str("hashFiles('**/*.c')");
    assert_string_equal(again, all_c);
    free(again);
    s_env.hash_ctx = other;
    again = s_str("hashFiles('**/*.c')");
    assert_string_equal(again, all_c); /* creation order is irrelevant */
    free(again);
    s_env.hash_ctx = dir;

    /* a change in any matched file changes the hash; restoring restores it */
    s_write(dir, "src/b.c", "int b = 1;\n");
    again = s_str("hashFiles('**/*.c')");
    assert_string_not_equal(again, all_c);
    free(again);
    s_write(dir, "src/b.c", "int b;\n");
    again = s_str("hashFiles('**/*.c')");
    assert_string_equal(again, all_c);
    free(again);

    /* exclusions, with and without a trailing globstar (implicit descendants) */
    s_expected(want, (const char *const[]){"int b;\n", "int c;\n"}, 2);
    s_assert_str("hashFiles('**/*.c', '!node_modules/**')", want);
    s_assert_str("hashFiles('**/*.c', '!node_modules')", want);
    s_assert_str("hashFiles('**/*.c\n!**/node_modules/**')", want); /* one argument, two lines */
    s_assert_str("hashFiles('src')", want);                         /* a directory: its files */
    s_assert_str("hashFiles('src/')", want);
    s_assert_str("hashFiles('./src/**')", want);
    s_assert_str("hashFiles('src/b.c', 'src/deep/c.c')", want);
    s_assert_str("hashFiles('s?c/[a-c].c', 'src/*/c.c')", want);
    snprintf(path, sizeof path, "hashFiles('%s/src/**')", dir); /* absolute, inside */
    s_assert_str(path, want);
    /* a later pattern re-includes what an earlier one excluded */
    s_expected(want, (const char *const[]){"int x;\n"}, 1);
    s_assert_str("hashFiles('**/*.c', '!**/*.c', 'node_modules/x/x.c')", want);

    /* '*' matches dot files; no match is '' */
    s_expected(want, (const char *const[]){"secret\n"}, 1);
    s_assert_str("hashFiles('.h*')", want);
    s_assert_str("hashFiles('*hidden')", want);
    s_assert_str("hashFiles('*.nope')", "");
    s_assert_str("hashFiles('a.txt/')", ""); /* a file is not a directory */
    s_assert_str("hashFiles('', '*.nope')", "");

    /* nothing outside the workspace is ever read */
    s_write(outside, "evil.c", "outside\n");
    s_assert_str("hashFiles('../*')", "");
    s_assert_str("hashFiles('src/../../*')", "");
    snprintf(path, sizeof path, "hashFiles('%s/evil.c')", outside);
    s_assert_str(path, "");
    snprintf(target, sizeof target, "%s/evil.c", outside);
    snprintf(path, sizeof path, "%s/src/link.c", dir);
    assert_int_equal(symlink(target, path), 0);
    again = s_str("hashFiles('**/*.c')");
    assert_string_equal(again, all_c);
    free(again);
    again = s_str("hashFiles('**/*.c', '--follow-symbolic-links')");
    assert_string_equal(again, all_c);
    free(again);
    /* a link inside the workspace is followed only when asked */
    snprintf(path, sizeof path, "%s/l.txt", dir);
    assert_int_equal(symlink("a.txt", path), 0);
    s_assert_str("hashFiles('l.txt')", "");
    first = s_str("hashFiles('a.txt')");
    s_assert_str("hashFiles('l.txt', '--follow-symbolic-links')", first);
    free(first);

    /* directories deeper than the bound are an error when a pattern could
     * reach into them, and are never entered when none can */
    snprintf(path, sizeof path, "%s/tower", dir);
    assert_int_equal(mkdir(path, 0755), 0);
    for (int i = 0; i < KILN_HASHFILES_MAX_DEPTH + 2; i++) {
        strcat(path, "/d");
        assert_int_equal(mkdir(path, 0755), 0);
    }
    s_assert_err("hashFiles('**/*.c')", "column 1: hashFiles: directories nested deeper than 128");
    s_expected(want, (const char *const[]){"int b;\n", "int c;\n"}, 2);
    s_assert_str("hashFiles('src/**')", want);

    s_assert_err("hashFiles(matrix)", "column 1: hashFiles: a pattern must be a string");
    s_assert_err("hashFiles('')", "column 1: hashFiles: expects at least one pattern");
    s_env.hash_ctx = "/nonexistent/kiln-hash";
    s_assert_err("hashFiles('*')", "column 1: hashFiles: cannot open workspace "
                                   "'/nonexistent/kiln-hash': No such file or directory");
    free(all_c);
}


/* kiln_hashfiles_compute called directly: patterns as separate arguments
 * or lines, NUL-terminated (lens NULL) or counted, the flag among them;
 * messages without a column; the pattern bounds. */
static void test_hashfiles_compute(void **state)
{
    char *dir = s_tmp_dir;
    char want[65], hex[65], err[512], msg[128], *big;
    const char *pats[KILN_HASHFILES_MAX_PATTERNS + 1];
    size_t lens[2], n;
    (void)state;
    strcpy(dir, "/tmp/kiln-hash-XXXXXX");
    assert_non_null(mkdtemp(dir));
    for (size_t i = 0; i < S_TREE_N; i++)
        s_write(dir, s_tree[i][0], s_tree[i][1]);

    s_expected(want, (const char *const[]){"int b;\n", "int c;\n"}, 2);
    pats[0] = "**/*.c";
    pats[1] = "!node_modules";
    assert_int_equal(kiln_hashfiles_compute(dir, pats, NULL, 2, hex, err, sizeof err), 0);
    assert_string_equal(hex, want);
    /* counted patterns: only lens[i] bytes of each are the pattern */
    pats[0] = "src/**trailing";
    lens[0] = 6;
    assert_int_equal(kiln_hashfiles_compute(dir, pats, lens, 1, hex, err, sizeof err), 0);
    assert_string_equal(hex, want);
    /* a pattern with a NUL byte names no file: nothing matches, "" */
    lens[0] = strlen("src/\0x") + 2;
    pats[0] = "src/\0x";
    assert_int_equal(kiln_hashfiles_compute(dir, pats, lens, 1, hex, err, sizeof err), 0);
    assert_string_equal(hex, "");
    /* the callback is the same function with the workspace as ctx */
    pats[0] = "src";
    assert_int_equal(kiln_hashfiles_callback(dir, pats, NULL, 1, hex, err, sizeof err), 0);
    assert_string_equal(hex, want);

    /* no pattern at all: blank, comment and lone '!' lines name nothing */
    pats[0] = "  \n# a comment\n!\n";
    pats[1] = "--follow-symbolic-links";
    assert_int_equal(kiln_hashfiles_compute(dir, pats, NULL, 2, hex, err, sizeof err),
                     KILN_EINVAL);
    assert_string_equal(err, "hashFiles: expects at least one pattern");
    assert_string_equal(kiln_error_last(), "hashFiles: expects at least one pattern");
    assert_int_equal(kiln_hashfiles_compute(dir, pats, NULL, 0, hex, NULL, 0), KILN_EINVAL);

    /* the pattern bounds, at the boundary */
    for (n = 0; n < KILN_HASHFILES_MAX_PATTERNS; n++)
        pats[n] = "*.nope";
    assert_int_equal(kiln_hashfiles_compute(dir, pats, NULL, n, hex, err, sizeof err), 0);
    assert_string_equal(hex, "");
    pats[n++] = "*.nope";
    assert_int_equal(kiln_hashfiles_compute(dir, pats, NULL, n, hex, err, sizeof err),
                     KILN_EINVAL);
    assert_string_equal(err, "hashFiles: more than 256 patterns");
    big = malloc(KILN_HASHFILES_MAX_SEGMENTS * 2 + 2);
    assert_non_null(big);
    big[0] = '\0';
    for (int i = 0; i < KILN_HASHFILES_MAX_SEGMENTS; i++)
        strcat(big, i ? "/a" : "a");
    pats[0] = big;
    assert_int_equal(kiln_hashfiles_compute(dir, pats, NULL, 1, hex, err, sizeof err), 0);
    strcat(big, "/a");
    assert_int_equal(kiln_hashfiles_compute(dir, pats, NULL, 1, hex, err, sizeof err),
                     KILN_EINVAL);
    assert_string_equal(err, "hashFiles: pattern deeper than 128 segments");
    free(big);
    big = malloc(PATH_MAX + 1);
    assert_non_null(big);
    memset(big, 'a', PATH_MAX);
    big[PATH_MAX] = '\0';
    pats[0] = big;
    assert_int_equal(kiln_hashfiles_compute(dir, pats, NULL, 1, hex, err, sizeof err),
                     KILN_EINVAL);
    snprintf(msg, sizeof msg, "hashFiles: pattern longer than %d bytes", PATH_MAX - 1);
    assert_string_equal(err, msg);
    big[PATH_MAX - 1] = '\0'; /* the longest allowed */
    assert_int_equal(kiln_hashfiles_compute(dir, pats, NULL, 1, hex, err, sizeof err), 0);
    assert_string_equal(hex, "");
    free(big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_hashfiles_expr, s_reset, s_tmp_teardown),
        cmocka_unit_test_setup_teardown(test_hashfiles_compute, s_reset, s_tmp_teardown),
    };
    return cmocka_run_group_tests_name("hashfiles", tests, s_group_setup, s_group_teardown);
}
