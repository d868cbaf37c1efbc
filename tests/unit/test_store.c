/* test_store.c: unit tests for coordinator/store.c, the farm's blob store.
 *
 * A blob sent in chunks is kept only once complete and only when its bytes
 * hash to its name; a chunk at the wrong offset is refused with what the
 * store holds; an upload cut short is resumed by a new store over the same
 * directory (after a restart) from the bytes it kept, its hash rebuilt; a
 * blob whose bytes do not match its name is refused and dropped; reads at
 * offsets come back as written; an upload left unfinished is swept once
 * old enough.
 */
#include <limits.h>
#include <setjmp.h>
#include <sodium.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/error.h"
#include "common/fs.h"
#include "coordinator/store.h"

static char s_dir[PATH_MAX];
static unsigned char s_data[3 * 1024 * 1024 + 17];

static void s_digest(const unsigned char *d, size_t n, char out[72])
{
    unsigned char md[32];
    crypto_hash_sha256(md, d, n);
    memcpy(out, "sha256:", 7);
    sodium_bin2hex(out + 7, 65, md, sizeof md);
}

static int s_setup(void **state)
{
    (void)state;
    snprintf(s_dir, sizeof s_dir, "/tmp/kiln-test-store.XXXXXX");
    assert_non_null(mkdtemp(s_dir));
    assert_true(sodium_init() >= 0);
    for (size_t i = 0; i < sizeof s_data; i++)
        s_data[i] = (unsigned char)(i * 7 + i / 251);
    return 0;
}

static int s_teardown(void **state)
{
    (void)state;
    kiln_fs_rmtree(s_dir);
    return 0;
}

static void test_chunks_resume_and_verify(void **state)
{
    (void)state;
    kiln_store_t *st = NULL;
    char dig[72], store[PATH_MAX + 8];
    uint64_t have = 0, size = 0;
    const size_t chunk = KILN_STORE_CHUNK_MAX, total = sizeof s_data;
    snprintf(store, sizeof store, "%s/s", s_dir);
    s_digest(s_data, total, dig);
    assert_int_equal(kiln_store_new_disk(&st, store), 0);
    assert_int_equal(kiln_store_stat(st, dig, &size, &have), 0);
    assert_true(size == UINT64_MAX && have == 0);
    /* Two chunks, then a chunk at the wrong offset: refused, with the count. */
    assert_int_equal(kiln_store_put(st, dig, 0, s_data, chunk, false, &have), 0);
    assert_int_equal(kiln_store_put(st, dig, chunk, s_data + chunk, chunk, false, &have), 0);
    assert_int_equal(have, 2 * chunk);
    assert_int_equal(kiln_store_put(st, dig, chunk, s_data + chunk, chunk, false, &have), KILN_ESTALE);
    assert_int_equal(have, 2 * chunk);
    /* Not readable before it is complete. */
    unsigned char buf[64];
    size_t got = 0;
    assert_int_equal(kiln_store_get(st, dig, 0, buf, sizeof buf, &got, &size), KILN_ENOTFOUND);
    /* A restart: a new store over the same directory goes on from 2 MiB. */
    kiln_store_destroy(&st);
    assert_int_equal(kiln_store_new_disk(&st, store), 0);
    assert_int_equal(kiln_store_stat(st, dig, &size, &have), 0);
    assert_int_equal(have, 2 * chunk);
    assert_int_equal(kiln_store_put(st, dig, have, s_data + have, chunk, false, &have), 0);
    assert_int_equal(kiln_store_put(st, dig, have, s_data + have, total - have, true, &have), 0);
    assert_int_equal(have, total);
    assert_int_equal(kiln_store_stat(st, dig, &size, &have), 0);
    assert_int_equal(size, total);
    /* Read back at an offset across a chunk boundary. */
    assert_int_equal(kiln_store_get(st, dig, chunk - 10, buf, sizeof buf, &got, &size), 0);
    assert_int_equal(got, sizeof buf);
    assert_memory_equal(buf, s_data + chunk - 10, sizeof buf);
    /* Sending a complete blob again takes nothing. */
    assert_int_equal(kiln_store_put(st, dig, 0, s_data, 10, false, &have), 0);
    assert_int_equal(have, total);
    kiln_store_destroy(&st);
}

static void test_wrong_bytes_refused(void **state)
{
    (void)state;
    kiln_store_t *st = NULL;
    char dig[72], store[PATH_MAX + 8];
    uint64_t have = 0, size = 0;
    snprintf(store, sizeof store, "%s/w", s_dir);
    s_digest((const unsigned char *)"the real bytes", 14, dig);
    assert_int_equal(kiln_store_new_disk(&st, store), 0);
    assert_int_equal(kiln_store_put(st, dig, 0, "other bytes!!!", 14, true, &have), KILN_EINVAL);
    assert_non_null(strstr(kiln_error_last(), "refused"));
    assert_int_equal(kiln_store_stat(st, dig, &size, &have), 0);
    assert_true(size == UINT64_MAX && have == 0); /* dropped, not kept half */
    assert_int_equal(kiln_store_put(st, dig, 0, "the real bytes", 14, true, &have), 0);
    assert_int_equal(kiln_store_stat(st, dig, &size, &have), 0);
    assert_int_equal(size, 14);
    /* Names that are not digests are refused before any file is named. */
    assert_int_equal(kiln_store_stat(st, "sha256:../../etc/passwd", &size, &have), KILN_EINVAL);
    assert_int_equal(kiln_store_stat(st, "md5:abc", &size, &have), KILN_EINVAL);
    /* An upload left unfinished goes once it is old enough, not before. */
    char other[72];
    unsigned n = 9;
    s_digest((const unsigned char *)"left behind", 11, other);
    assert_int_equal(kiln_store_put(st, other, 0, "left", 4, false, &have), 0);
    assert_int_equal(kiln_store_sweep_partial(st, 3600, &n), 0);
    assert_int_equal(n, 0);
    char part[PATH_MAX + 100];
    snprintf(part, sizeof part, "%s/partial/%s", store, other + 7);
    struct timespec old[2] = {{.tv_sec = time(NULL) - 7200}, {.tv_sec = time(NULL) - 7200}};
    assert_int_equal(utimensat(AT_FDCWD, part, old, 0), 0);
    assert_int_equal(kiln_store_sweep_partial(st, 3600, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(kiln_store_stat(st, other, &size, &have), 0);
    assert_true(size == UINT64_MAX && have == 0);
    assert_int_equal(kiln_store_remove(st, dig), 0);
    assert_int_equal(kiln_store_stat(st, dig, &size, &have), 0);
    assert_true(size == UINT64_MAX);
    kiln_store_destroy(&st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chunks_resume_and_verify),
        cmocka_unit_test(test_wrong_bytes_refused),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
