/* test_config.c: flags and config files set the same options; flags win;
 * unknown names and bad values are errors that say where. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/config.h"
#include "common/error.h"

typedef struct {
    const char *listen;
    int slots;
    bool keep;
} s_opts_t;

#define S_TABLE(o)                                                                             \
    kiln_opt_t opts[] = {{"listen", KILN_OPT_STRING, &(o).listen, "endpoint"},                 \
                         {"slots", KILN_OPT_INT, &(o).slots, "slots"},                        \
                         {"keep", KILN_OPT_BOOL, &(o).keep, "keep"},                          \
                         {NULL, 0, NULL, NULL}}

static void test_flags(void **state)
{
    (void)state;
    s_opts_t o = {0};
    S_TABLE(o);
    char *argv[] = {"prog", "sub", "--listen", "tcp://x:1", "file.yml", "--slots=4", "--keep",
                    NULL};
    int npos = -1;
    assert_int_equal(kiln_opts_parse(opts, 7, argv, 2, &npos), 0);
    assert_string_equal(o.listen, "tcp://x:1");
    assert_int_equal(o.slots, 4);
    assert_true(o.keep);
    assert_int_equal(npos, 1);
    assert_string_equal(argv[2], "file.yml");
}

static void test_errors(void **state)
{
    (void)state;
    s_opts_t o = {0};
    S_TABLE(o);
    char *a1[] = {"prog", "--nope", NULL};
    assert_int_equal(kiln_opts_parse(opts, 2, a1, 1, NULL), KILN_EINVAL);
    assert_non_null(strstr(kiln_error_last(), "--nope"));
    char *a2[] = {"prog", "--slots", "many", NULL};
    assert_int_equal(kiln_opts_parse(opts, 3, a2, 1, NULL), KILN_EINVAL);
    assert_non_null(strstr(kiln_error_last(), "whole number"));
    char *a3[] = {"prog", "--listen", NULL};
    assert_int_equal(kiln_opts_parse(opts, 2, a3, 1, NULL), KILN_EINVAL);
    char *a4[] = {"prog", "--help", NULL};
    assert_int_equal(kiln_opts_parse(opts, 2, a4, 1, NULL), 1);
}

static void test_file_and_precedence(void **state)
{
    (void)state;
    char path[] = "/tmp/kiln-config-XXXXXX";
    int fd = mkstemp(path);
    const char *text = "# a farm\nlisten = \"tcp://0.0.0.0:7420\"\n\nslots = 3\nkeep = yes\n";
    assert_int_equal(write(fd, text, strlen(text)), (int)strlen(text));
    close(fd);
    s_opts_t o = {0};
    S_TABLE(o);
    char *argv[] = {"prog", "--config", path, "--slots", "8", NULL};
    assert_int_equal(kiln_opts_parse(opts, 5, argv, 1, NULL), 0);
    assert_string_equal(o.listen, "tcp://0.0.0.0:7420");
    assert_int_equal(o.slots, 8); /* the flag wins */
    assert_true(o.keep);
    /* o.listen belongs to the config module until exit (no free here). */
    unlink(path);
}

/* A comment after a value is not part of it; a '#' inside quotes or a word is. */
static void test_file_comments(void **state)
{
    (void)state;
    char path[] = "/tmp/kiln-config-XXXXXX";
    int fd = mkstemp(path);
    const char *text = "slots = 4   # one per core\nlisten = \"tcp://h#1:7420\" # quoted\n"
                       "keep = yes#not-a-comment\n";
    assert_int_equal(write(fd, text, strlen(text)), (int)strlen(text));
    close(fd);
    s_opts_t o = {0};
    S_TABLE(o);
    /* keep = "yes#not-a-comment" is not a boolean: the '#' was kept. */
    assert_int_equal(kiln_config_load(opts, path), KILN_EINVAL);
    assert_int_equal(o.slots, 4);
    assert_string_equal(o.listen, "tcp://h#1:7420");
    unlink(path);
}

static void test_file_errors(void **state)
{
    (void)state;
    char path[] = "/tmp/kiln-config-XXXXXX";
    int fd = mkstemp(path);
    const char *text = "slots = 2\ncolour = blue\n";
    assert_int_equal(write(fd, text, strlen(text)), (int)strlen(text));
    close(fd);
    s_opts_t o = {0};
    S_TABLE(o);
    assert_int_equal(kiln_config_load(opts, path), KILN_EINVAL);
    char where[64];
    snprintf(where, sizeof where, "%s:2", path);
    assert_non_null(strstr(kiln_error_last(), where));
    assert_non_null(strstr(kiln_error_last(), "colour"));
    unlink(path);
    assert_int_equal(kiln_config_load(opts, "/nonexistent/kiln.conf"), KILN_ENOTFOUND);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_flags),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_file_and_precedence),
        cmocka_unit_test(test_file_comments),
        cmocka_unit_test(test_file_errors),
    };
    return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
