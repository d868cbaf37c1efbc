/* test_cmdfiles.c: the step files ($GITHUB_OUTPUT, $GITHUB_ENV,
 * $GITHUB_PATH, $GITHUB_STEP_SUMMARY) as the worker reads them: bounded,
 * never through a link or a FIFO (common/fs.c), parsed by lang/cmdfiles.c. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/error.h"
#include "common/fs.h"
#include "common/kv.h"
#include "lang/cmdfiles.h"

/* The worker's way: read, then parse. */
static int s_read_kv(const char *path, kiln_kv_t *out, size_t *n_refused, char *err, size_t errlen)
{
    char *text = NULL;
    size_t len = 0;
    int rc = kiln_fs_read_regular(path, KILN_CMD_MAX_FILE, &text, &len, err, errlen);
    if (rc == 0)
        rc = kiln_cmdfiles_parse_kv(path, text, len, out, n_refused, err, errlen);
    free(text);
    return rc;
}

static int s_read_path(const char *path, kiln_kv_t *out, char *err, size_t errlen)
{
    char *text = NULL;
    size_t len = 0;
    int rc = kiln_fs_read_regular(path, KILN_CMD_MAX_FILE, &text, &len, err, errlen);
    if (rc == 0)
        rc = kiln_cmdfiles_parse_path(path, text, len, out, err, errlen);
    free(text);
    return rc;
}

static char *s_repeat(char ch, size_t n)
{
    char *s = malloc(n + 1);
    assert_non_null(s);
    memset(s, ch, n);
    s[n] = '\0';
    return s;
}

static const char *s_key(const kiln_kv_t *l, size_t i)
{
    static char key[256];
    kiln_kv_key_copy(l, i, key, sizeof key);
    return key;
}

static char s_dir[64];

static int s_setup(void **state)
{
    (void)state;
    snprintf(s_dir, sizeof s_dir, "/tmp/kiln-commands-XXXXXX");
    return mkdtemp(s_dir) ? 0 : -1;
}

static int s_teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", s_dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Writes len bytes to s_dir/name; returns the path (static buffer). */
static const char *s_write(const char *name, const char *data, size_t len)
{
    static char path[128];
    snprintf(path, sizeof path, "%s/%s", s_dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
    return path;
}

static const char *s_writes(const char *name, const char *text)
{
    return s_write(name, text, strlen(text));
}

static void test_kv_simple(void **state)
{
    (void)state;
    kiln_kv_t l = {0};
    char err[256] = "";
    const char *p = s_writes("out1", "name=value\n\nempty=\nurl=a=b<<c\nname=second\n");
    assert_int_equal(s_read_kv(p, &l, NULL, err, sizeof err), 0);
    /* A later value of a name replaces the earlier one in its place. */
    assert_int_equal(l.n, 3);
    assert_string_equal(s_key(&l, 0), "name");
    assert_string_equal(kiln_kv_value(&l, 0), "second");
    assert_string_equal(kiln_kv_get(&l, "empty"), "");
    /* The first '=' splits; a later "<<" is part of the value. */
    assert_string_equal(kiln_kv_get(&l, "url"), "a=b<<c");
    /* The last one wins. */
    assert_string_equal(kiln_kv_get(&l, "name"), "second");
    assert_null(kiln_kv_get(&l, "missing"));
    kiln_kv_free(&l);
    assert_int_equal(l.n, 0);
    assert_null(l.items);

    /* A missing file is empty. */
    char missing[128];
    snprintf(missing, sizeof missing, "%s/none", s_dir);
    assert_int_equal(s_read_kv(missing, &l, NULL, err, sizeof err), 0);
    assert_int_equal(l.n, 0);
    kiln_kv_free(&l);
}

static void test_kv_multiline(void **state)
{
    (void)state;
    kiln_kv_t l = {0};
    char err[256] = "";
    const char *p = s_writes("out2", "json<<EOF_1\n{\n  \"a\": 1\n\n}\nEOF_1\n"
                                      "empty<<X\nX\n"
                                      "key<<ghadelimiter_9c1=\nvalue with = and <<\nghadelimiter_9c1=\n"
                                      "after=1");
    assert_int_equal(s_read_kv(p, &l, NULL, err, sizeof err), 0);
    assert_int_equal(l.n, 4);
    /* Empty lines inside a value are kept; the last newline is not. */
    assert_string_equal(kiln_kv_get(&l, "json"), "{\n  \"a\": 1\n\n}");
    assert_string_equal(kiln_kv_get(&l, "empty"), "");
    assert_string_equal(kiln_kv_get(&l, "key"), "value with = and <<");
    assert_string_equal(kiln_kv_get(&l, "after"), "1");
    kiln_kv_free(&l);
}

static void test_kv_crlf(void **state)
{
    (void)state;
    kiln_kv_t l = {0};
    char err[256] = "";
    const char *p = s_writes("out3", "a=1\r\n\r\nm<<END\r\nx\r\ny\r\nEND\r\nb=2\r\n");
    assert_int_equal(s_read_kv(p, &l, NULL, err, sizeof err), 0);
    assert_int_equal(l.n, 3);
    assert_string_equal(kiln_kv_get(&l, "a"), "1");
    assert_string_equal(kiln_kv_get(&l, "m"), "x\ny");
    assert_string_equal(kiln_kv_get(&l, "b"), "2");
    kiln_kv_free(&l);
}

static void test_kv_errors(void **state)
{
    (void)state;
    kiln_kv_t l = {0};
    char err[256] = "";
    /* Pairs already in the list stay; a failing file adds none. */
    const char *p = s_writes("ok", "keep=me\n");
    assert_int_equal(s_read_kv(p, &l, NULL, err, sizeof err), 0);

    p = s_writes("bad1", "a=1\n\nbody<<EOF\nline\nEOF \n");
    assert_int_equal(s_read_kv(p, &l, NULL, err, sizeof err), KILN_EINVAL);
    assert_non_null(strstr(err, "bad1:3:"));
    assert_non_null(strstr(err, "EOF"));
    assert_string_equal(kiln_error_last(), err);
    assert_int_equal(l.n, 1);
    assert_null(kiln_kv_get(&l, "a"));

    p = s_writes("bad2", "a=1\n=value\n");
    assert_int_equal(s_read_kv(p, &l, NULL, err, sizeof err), KILN_EINVAL);
    assert_non_null(strstr(err, "bad2:2:"));
    assert_non_null(strstr(err, "name"));

    p = s_writes("bad3", "<<EOF\nx\nEOF\n");
    assert_int_equal(s_read_kv(p, &l, NULL, err, sizeof err), KILN_EINVAL);
    assert_non_null(strstr(err, "bad3:1:"));

    p = s_writes("bad4", "ok=1\nname<<\n");
    assert_int_equal(s_read_kv(p, &l, NULL, err, sizeof err), KILN_EINVAL);
    assert_non_null(strstr(err, "bad4:2:"));
    assert_non_null(strstr(err, "delimiter"));

    p = s_writes("bad5", "ok=1\nok=2\njust a line\n");
    assert_int_equal(s_read_kv(p, &l, NULL, err, sizeof err), KILN_EINVAL);
    assert_non_null(strstr(err, "bad5:3:"));

    p = s_write("bad6", "a=1\nb=x\0y\n", 10);
    assert_int_equal(s_read_kv(p, &l, NULL, err, sizeof err), KILN_EINVAL);
    assert_non_null(strstr(err, "bad6:2:"));

    assert_int_equal(l.n, 1);
    assert_string_equal(kiln_kv_get(&l, "keep"), "me");
    kiln_kv_free(&l);
}

static void test_kv_size_limit(void **state)
{
    (void)state;
    kiln_kv_t l = {0};
    char err[256] = "";
    char *data = s_repeat('v', KILN_CMD_MAX_FILE + 1);
    memcpy(data, "big=", 4);
    data[KILN_CMD_MAX_FILE - 1] = '\n';
    /* Exactly the limit is accepted... */
    const char *p = s_write("max", data, KILN_CMD_MAX_FILE);
    assert_int_equal(s_read_kv(p, &l, NULL, err, sizeof err), 0);
    assert_int_equal(strlen(kiln_kv_get(&l, "big")), KILN_CMD_MAX_FILE - 5);
    kiln_kv_free(&l);
    /* ...one byte more is not. */
    data[KILN_CMD_MAX_FILE] = '\n';
    p = s_write("over", data, KILN_CMD_MAX_FILE + 1);
    assert_int_equal(s_read_kv(p, &l, NULL, err, sizeof err), KILN_ETOOBIG);
    assert_non_null(strstr(err, "over"));
    assert_int_equal(l.n, 0);
    free(data);
}

static void test_kv_not_regular(void **state)
{
    (void)state;
    kiln_kv_t l = {0};
    char err[256] = "";
    char link[128], fifo[128];
    const char *target = s_writes("target", "a=1\n");
    snprintf(link, sizeof link, "%s/link", s_dir);
    assert_int_equal(symlink(target, link), 0);
    assert_int_equal(s_read_kv(link, &l, NULL, err, sizeof err), KILN_ERROR);
    assert_non_null(strstr(err, "symbolic link"));
    /* A FIFO is refused at once instead of blocking the worker. */
    snprintf(fifo, sizeof fifo, "%s/fifo", s_dir);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    assert_int_equal(s_read_kv(fifo, &l, NULL, err, sizeof err), KILN_ERROR);
    assert_non_null(strstr(err, "not a regular file"));
    assert_int_equal(l.n, 0);
}

static void test_env_file(void **state)
{
    (void)state;
    kiln_kv_t l = {0};
    char err[256] = "";
    size_t refused = 99;
    const char *p = s_writes("env", "FOO=bar\nNODE_OPTIONS=--require evil.js\n"
                                     "node_options<<E\nx\nE\nBAZ=1\n");
    assert_int_equal(s_read_kv(p, &l, &refused, err, sizeof err), 0);
    assert_int_equal(refused, 2);
    assert_int_equal(l.n, 2);
    assert_string_equal(kiln_kv_get(&l, "FOO"), "bar");
    assert_string_equal(kiln_kv_get(&l, "BAZ"), "1");
    assert_null(kiln_kv_get(&l, "NODE_OPTIONS"));
    kiln_kv_free(&l);
    /* As an output name it is just a name. */
    assert_int_equal(s_read_kv(p, &l, NULL, err, sizeof err), 0);
    assert_int_equal(l.n, 4);
    kiln_kv_free(&l);
}

static void test_path_file(void **state)
{
    (void)state;
    kiln_kv_t l = {0};
    char err[256] = "";
    const char *p = s_writes("path1", "/opt/tool/bin\r\n\n/home/runner/.cargo/bin\n/with space/bin");
    assert_int_equal(s_read_path(p, &l, err, sizeof err), 0);
    p = s_writes("path2", "/second/step\n");
    assert_int_equal(s_read_path(p, &l, err, sizeof err), 0);
    assert_int_equal(l.n, 4);
    assert_string_equal(s_key(&l, 0), "/opt/tool/bin");
    assert_string_equal(s_key(&l, 1), "/home/runner/.cargo/bin");
    assert_string_equal(s_key(&l, 2), "/with space/bin");
    assert_string_equal(s_key(&l, 3), "/second/step");
    assert_string_equal(kiln_kv_value(&l, 3), "/second/step");
    p = s_write("path3", "/ok\n/b\0d\n", 9);
    assert_int_equal(s_read_path(p, &l, err, sizeof err), KILN_EINVAL);
    assert_non_null(strstr(err, "path3:2:"));
    assert_int_equal(l.n, 4);
    kiln_kv_free(&l);
}

static void test_summary_file(void **state)
{
    (void)state;
    char err[256] = "";
    char *out = NULL;
    size_t len = 99;
    const char *md = "# Results :rocket:\n\n| test | ok |\n|---|---|\n| a | \xe2\x9c\x85 |\n";
    const char *p = s_writes("summary", md);
    assert_int_equal(kiln_fs_read_regular(p, KILN_CMD_MAX_FILE, &out, &len, err, sizeof err), 0);
    assert_int_equal(len, strlen(md));
    assert_string_equal(out, md);
    free(out);

    char missing[128];
    snprintf(missing, sizeof missing, "%s/nosummary", s_dir);
    assert_int_equal(kiln_fs_read_regular(missing, KILN_CMD_MAX_FILE, &out, &len, err, sizeof err), 0);
    assert_int_equal(len, 0);
    assert_string_equal(out, "");
    free(out);

    char *big = s_repeat('#', KILN_CMD_MAX_FILE + 1);
    p = s_write("bigsummary", big, KILN_CMD_MAX_FILE + 1);
    out = NULL;
    assert_int_equal(kiln_fs_read_regular(p, KILN_CMD_MAX_FILE, &out, &len, err, sizeof err), KILN_ETOOBIG);
    assert_null(out);
    assert_non_null(strstr(err, "bigsummary"));
    p = s_write("maxsummary", big, KILN_CMD_MAX_FILE);
    assert_int_equal(kiln_fs_read_regular(p, KILN_CMD_MAX_FILE, &out, &len, err, sizeof err), 0);
    assert_int_equal(len, KILN_CMD_MAX_FILE);
    free(out);
    free(big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kv_simple),
        cmocka_unit_test(test_kv_multiline),
        cmocka_unit_test(test_kv_crlf),
        cmocka_unit_test(test_kv_errors),
        cmocka_unit_test(test_kv_size_limit),
        cmocka_unit_test(test_kv_not_regular),
        cmocka_unit_test(test_env_file),
        cmocka_unit_test(test_path_file),
        cmocka_unit_test(test_summary_file),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
