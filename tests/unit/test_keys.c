/* test_keys.c: key pairs survive a round trip through their files, are
 * never overwritten, and malformed key files are refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "common/error.h"
#include "common/fs.h"
#include "common/keys.h"
#include "worker/workspace.h"

static char s_dir[64];

static int s_setup(void **state)
{
    (void)state;
    snprintf(s_dir, sizeof s_dir, "/tmp/kiln-keys-XXXXXX");
    return mkdtemp(s_dir) ? 0 : -1;
}

static int s_teardown(void **state)
{
    (void)state;
    return kiln_fs_rmtree(s_dir);
}

static void s_write(const char *name, const char *text)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", s_dir, name);
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
}

static void test_roundtrip(void **state)
{
    (void)state;
    kiln_keypair_t kp, back, pub;
    char path[128];
    struct stat st;
    assert_int_equal(kiln_keys_generate(&kp), 0);
    assert_int_equal(strlen(kp.public_z85), KILN_KEY_Z85_LEN);
    assert_int_equal(kiln_keys_write(&kp, s_dir, "node"), 0);
    snprintf(path, sizeof path, "%s/node.key", s_dir);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(kiln_keys_load(&back, path), 0);
    assert_true(back.has_secret);
    assert_string_equal(back.public_z85, kp.public_z85);
    assert_string_equal(back.secret_z85, kp.secret_z85);
    snprintf(path, sizeof path, "%s/node.pub", s_dir);
    assert_int_equal(kiln_keys_load(&pub, path), 0);
    assert_false(pub.has_secret);
    assert_string_equal(pub.public_z85, kp.public_z85);
    /* Two key pairs are different. */
    kiln_keypair_t other;
    assert_int_equal(kiln_keys_generate(&other), 0);
    assert_string_not_equal(other.public_z85, kp.public_z85);
}

static void test_no_overwrite(void **state)
{
    (void)state;
    kiln_keypair_t kp;
    assert_int_equal(kiln_keys_generate(&kp), 0);
    assert_int_equal(kiln_keys_write(&kp, s_dir, "once"), 0);
    assert_int_equal(kiln_keys_write(&kp, s_dir, "once"), KILN_EINVAL);
    assert_non_null(strstr(kiln_error_last(), "exists already"));
}

static void test_bare_and_malformed(void **state)
{
    (void)state;
    kiln_keypair_t kp, back;
    char path[128], text[128];
    assert_int_equal(kiln_keys_generate(&kp), 0);
    snprintf(text, sizeof text, "  %s\n", kp.public_z85);
    s_write("bare.pub", text);
    snprintf(path, sizeof path, "%s/bare.pub", s_dir);
    assert_int_equal(kiln_keys_load(&back, path), 0);
    assert_string_equal(back.public_z85, kp.public_z85);
    s_write("short.pub", "curve\n    public-key = \"abc\"\n");
    snprintf(path, sizeof path, "%s/short.pub", s_dir);
    assert_int_equal(kiln_keys_load(&back, path), KILN_EINVAL);
    s_write("junk.pub", "not a key at all\n");
    snprintf(path, sizeof path, "%s/junk.pub", s_dir);
    assert_int_equal(kiln_keys_load(&back, path), KILN_EINVAL);
    assert_non_null(strstr(kiln_error_last(), "junk.pub"));
    snprintf(path, sizeof path, "%s/missing.pub", s_dir);
    assert_int_equal(kiln_keys_load(&back, path), KILN_ENOTFOUND);
    /* Oversized files are refused before parsing. */
    char *big = malloc(KILN_KEY_FILE_MAX + 10);
    memset(big, '#', KILN_KEY_FILE_MAX + 9);
    big[KILN_KEY_FILE_MAX + 9] = '\0';
    s_write("big.pub", big);
    free(big);
    snprintf(path, sizeof path, "%s/big.pub", s_dir);
    assert_int_equal(kiln_keys_load(&back, path), KILN_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_no_overwrite),
        cmocka_unit_test(test_bare_and_malformed),
    };
    return cmocka_run_group_tests_name("keys", tests, s_setup, s_teardown);
}
