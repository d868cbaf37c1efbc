/* test_layers.c: unit tests for worker/layers.c and common/imageref.c.
 *
 * Layers written here with libarchive (gzip-compressed, as registries
 * serve them) are applied into a root as the native runtime does: files,
 * directories and their modes arrive; a whiteout deletes a file of the
 * layer below and an opaque whiteout empties a directory of what the layers
 * below put there but keeps what its own layer adds; a file a layer
 * replaces in a hard-link copy of a root leaves the original untouched.
 * Hostile layers: a link to / or up the tree followed by a file written
 * "through" it lands inside the root, never outside; a ".." path and a hard
 * link out are refused naming the entry. Image references get Docker's
 * defaults.
 */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/fs.h"
#include "common/imageref.h"
#include "worker/layers.h"

static char s_dir[PATH_MAX];

typedef struct {
    const char *path;
    char type;          /* f file, d directory, l symlink, h hard link */
    const char *data;   /* a file's text, a link's target */
    mode_t mode;
} s_entry_t;

/* Writes a tar.gz layer of the entries to s_dir/NAME; its path in out. */
static void s_layer(const char *name, const s_entry_t *e, size_t n, char *out)
{
    snprintf(out, PATH_MAX, "%s/%s", s_dir, name);
    struct archive *a = archive_write_new();
    assert_non_null(a);
    assert_int_equal(archive_write_set_format_pax_restricted(a), ARCHIVE_OK);
    assert_int_equal(archive_write_add_filter_gzip(a), ARCHIVE_OK);
    assert_int_equal(archive_write_open_filename(a, out), ARCHIVE_OK);
    for (size_t i = 0; i < n; i++) {
        struct archive_entry *ae = archive_entry_new();
        archive_entry_set_pathname(ae, e[i].path);
        archive_entry_set_mtime(ae, 1700000000, 0);
        archive_entry_set_perm(ae, e[i].mode ? e[i].mode : e[i].type == 'd' ? 0755 : 0644);
        size_t len = 0;
        switch (e[i].type) {
        case 'd': archive_entry_set_filetype(ae, AE_IFDIR); break;
        case 'l':
            archive_entry_set_filetype(ae, AE_IFLNK);
            archive_entry_set_symlink(ae, e[i].data);
            break;
        case 'h':
            archive_entry_set_filetype(ae, AE_IFREG);
            archive_entry_set_hardlink(ae, e[i].data);
            break;
        default:
            archive_entry_set_filetype(ae, AE_IFREG);
            len = e[i].data ? strlen(e[i].data) : 0;
            archive_entry_set_size(ae, (la_int64_t)len);
        }
        assert_int_equal(archive_write_header(a, ae), ARCHIVE_OK);
        if (len)
            assert_int_equal(archive_write_data(a, e[i].data, len), (la_ssize_t)len);
        archive_entry_free(ae);
    }
    assert_int_equal(archive_write_close(a), ARCHIVE_OK);
    archive_write_free(a);
}

static void s_root(const char *name, char *out)
{
    snprintf(out, PATH_MAX, "%s/%s", s_dir, name);
    assert_int_equal(mkdir(out, 0755), 0);
}

static void s_read(const char *root, const char *rel, char *out, size_t cap)
{
    char p[PATH_MAX * 2];
    snprintf(p, sizeof p, "%s/%s", root, rel);
    FILE *f = fopen(p, "r");
    out[0] = '\0';
    if (!f)
        return;
    size_t n = fread(out, 1, cap - 1, f);
    out[n] = '\0';
    fclose(f);
}

static int s_exists(const char *root, const char *rel)
{
    char p[PATH_MAX * 2];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", root, rel);
    return lstat(p, &st) == 0;
}

static int s_setup(void **state)
{
    (void)state;
    snprintf(s_dir, sizeof s_dir, "/tmp/kiln-layers-XXXXXX");
    assert_non_null(mkdtemp(s_dir));
    return 0;
}

static int s_teardown(void **state)
{
    (void)state;
    kiln_fs_rmtree(s_dir);
    return 0;
}

static void test_apply_and_whiteouts(void **state)
{
    (void)state;
    char l1[PATH_MAX], l2[PATH_MAX], root[PATH_MAX], copy[PATH_MAX], why[600], text[64];
    uint64_t bytes = 0;
    const s_entry_t base[] = {
        {"etc/", 'd', NULL, 0755},     {"etc/keep", 'f', "keep\n", 0600},
        {"etc/gone", 'f', "gone\n", 0}, {"var/lib/", 'd', NULL, 0},
        {"var/lib/old", 'f', "old\n", 0}, {"bin/", 'd', NULL, 0},
        {"bin/tool", 'f', "v1\n", 0755}, {"bin/alias", 'h', "bin/tool", 0},
        {"bin/sh", 'l', "tool", 0},
    };
    s_layer("l1.tar.gz", base, sizeof base / sizeof *base, l1);
    s_root("r1", root);
    if (kiln_layers_apply(root, l1, 0, &bytes, why, sizeof why) != 0)
        fail_msg("%s", why);
    assert_int_equal(bytes, 5 + 5 + 4 + 3);
    s_read(root, "etc/keep", text, sizeof text);
    assert_string_equal(text, "keep\n");
    struct stat st, st2;
    char p[PATH_MAX * 2], p2[PATH_MAX * 2];
    snprintf(p, sizeof p, "%s/etc/keep", root);
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    snprintf(p, sizeof p, "%s/bin/tool", root);
    snprintf(p2, sizeof p2, "%s/bin/alias", root);
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(stat(p2, &st2), 0);
    assert_int_equal(st.st_ino, st2.st_ino);

    /* The next layer on a hard-link copy: a whiteout, an opaque directory
     * with a file of its own, a replaced file. */
    snprintf(copy, sizeof copy, "%s/r2", s_dir);
    assert_int_equal(kiln_layers_link_copy(root, copy, why, sizeof why), 0);
    snprintf(p2, sizeof p2, "%s/bin/tool", copy);
    assert_int_equal(stat(p2, &st2), 0);
    assert_int_equal(st.st_ino, st2.st_ino);
    const s_entry_t next[] = {
        {"etc/.wh.gone", 'f', NULL, 0},
        {"var/lib/", 'd', NULL, 0},
        {"var/lib/.wh..wh..opq", 'f', NULL, 0},
        {"var/lib/new", 'f', "new\n", 0},
        {"bin/tool", 'f', "v2\n", 0755},
    };
    s_layer("l2.tar.gz", next, sizeof next / sizeof *next, l2);
    if (kiln_layers_apply(copy, l2, 0, &bytes, why, sizeof why) != 0)
        fail_msg("%s", why);
    assert_false(s_exists(copy, "etc/gone"));
    assert_true(s_exists(copy, "etc/keep"));
    assert_false(s_exists(copy, "etc/.wh.gone"));
    assert_false(s_exists(copy, "var/lib/old"));
    assert_true(s_exists(copy, "var/lib/new"));
    assert_false(s_exists(copy, "var/lib/.wh..wh..opq"));
    s_read(copy, "bin/tool", text, sizeof text);
    assert_string_equal(text, "v2\n");
    /* The parent root is as it was. */
    s_read(root, "bin/tool", text, sizeof text);
    assert_string_equal(text, "v1\n");
    assert_true(s_exists(root, "etc/gone"));
    assert_true(s_exists(root, "var/lib/old"));
}

static void test_links_stay_inside(void **state)
{
    (void)state;
    char layer[PATH_MAX], root[PATH_MAX], why[600], text[64];
    uint64_t bytes;
    char outside[PATH_MAX];
    snprintf(outside, sizeof outside, "%s/outside", s_dir);
    assert_int_equal(mkdir(outside, 0755), 0);
    char abs_target[PATH_MAX];
    snprintf(abs_target, sizeof abs_target, "%s", outside);
    const s_entry_t evil[] = {
        {"up", 'l', "../../../../../../..", 0},
        {"up/escaped-up", 'f', "x\n", 0},
        {"root", 'l', "/", 0},
        {"root/etc/through-root", 'f', "z\n", 0},
    };
    s_layer("evil.tar.gz", evil, sizeof evil / sizeof *evil, layer);
    s_root("r3", root);
    if (kiln_layers_apply(root, layer, 0, &bytes, why, sizeof why) != 0)
        fail_msg("%s", why);
    /* Each file landed inside the root, where its link leads there. */
    assert_true(s_exists(root, "escaped-up"));
    s_read(root, "etc/through-root", text, sizeof text);
    assert_string_equal(text, "z\n");
    /* A link to a directory outside (one the root does not have): the
     * file written through it is refused, naming it. */
    const s_entry_t abs[] = {
        {"abs", 'l', abs_target, 0},
        {"abs/escaped-abs", 'f', "y\n", 0},
    };
    s_layer("abs.tar.gz", abs, 2, layer);
    assert_int_equal(kiln_layers_apply(root, layer, 0, &bytes, why, sizeof why), -1);
    assert_non_null(strstr(why, "abs/escaped-abs"));
    /* Nothing outside. */
    char p[PATH_MAX * 2];
    snprintf(p, sizeof p, "%s/escaped-abs", outside);
    assert_int_equal(access(p, F_OK), -1);
    snprintf(p, sizeof p, "%s/escaped-up", s_dir);
    assert_int_equal(access(p, F_OK), -1);
    assert_int_equal(access("/escaped-up", F_OK), -1);
    assert_int_equal(access("/etc/through-root", F_OK), -1);
}

static void test_hostile_paths_refused(void **state)
{
    (void)state;
    char layer[PATH_MAX], root[PATH_MAX], why[600];
    uint64_t bytes;
    const s_entry_t dots[] = {{"a/../../x", 'f', "x\n", 0}};
    s_layer("dots.tar.gz", dots, 1, layer);
    s_root("r4", root);
    assert_int_equal(kiln_layers_apply(root, layer, 0, &bytes, why, sizeof why), -1);
    assert_non_null(strstr(why, "a/../../x"));
    const s_entry_t hard[] = {{"h", 'h', "../../etc/passwd", 0}};
    s_layer("hard.tar.gz", hard, 1, layer);
    assert_int_equal(kiln_layers_apply(root, layer, 0, &bytes, why, sizeof why), -1);
    assert_non_null(strstr(why, "hard link"));
    /* Not a layer at all. */
    char junk[PATH_MAX];
    snprintf(junk, sizeof junk, "%s/junk", s_dir);
    FILE *f = fopen(junk, "w");
    assert_non_null(f);
    fputs("this is not a tar archive, not compressed either, and far too short", f);
    fclose(f);
    assert_int_equal(kiln_layers_apply(root, junk, 0, &bytes, why, sizeof why), -1);
    assert_non_null(strstr(why, "junk"));
    /* A layer past the bound (a bomb, in small). */
    const s_entry_t big[] = {{"big", 'f', "0123456789012345678901234567890123456789", 0}};
    s_layer("big.tar.gz", big, 1, layer);
    assert_int_equal(kiln_layers_apply(root, layer, 16, &bytes, why, sizeof why), -1);
    assert_non_null(strstr(why, "expands past 16 bytes"));
}

static void test_imageref(void **state)
{
    (void)state;
    kiln_imageref_t r;
    char why[300];
    assert_int_equal(kiln_imageref_parse("debian:12", &r, why, sizeof why), 0);
    assert_string_equal(r.canonical, "docker.io/library/debian:12");
    assert_int_equal(kiln_imageref_parse("node", &r, why, sizeof why), 0);
    assert_string_equal(r.canonical, "docker.io/library/node:latest");
    assert_int_equal(kiln_imageref_parse("docker://ghcr.io/owner/img:v1", &r, why, sizeof why), 0);
    assert_string_equal(r.host, "ghcr.io");
    assert_string_equal(r.repo, "owner/img");
    assert_int_equal(kiln_imageref_parse("127.0.0.1:5000/kiln/bb:1", &r, why, sizeof why), 0);
    assert_string_equal(r.host, "127.0.0.1:5000");
    assert_string_equal(r.tag, "1");
    assert_int_equal(kiln_imageref_parse("localhost/x", &r, why, sizeof why), 0);
    assert_string_equal(r.canonical, "localhost/x:latest");
    assert_int_equal(kiln_imageref_parse("user/repo@sha256:"
                                         "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                                         &r, why, sizeof why),
                     0);
    assert_string_equal(r.canonical, "docker.io/user/repo@sha256:"
                                     "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
    assert_int_equal(kiln_imageref_parse("Debian:12", &r, why, sizeof why), -1);
    assert_non_null(strstr(why, "lower case"));
    assert_int_equal(kiln_imageref_parse("x@sha256:12", &r, why, sizeof why), -1);
    assert_int_equal(kiln_imageref_parse("a b", &r, why, sizeof why), -1);
    assert_int_equal(kiln_imageref_parse("", &r, why, sizeof why), -1);
    char h1[21], h2[21];
    kiln_imageref_hash("docker.io/library/debian:12", h1);
    kiln_imageref_hash("docker.io/library/debian:11", h2);
    assert_int_equal(strlen(h1), 20);
    assert_string_not_equal(h1, h2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_apply_and_whiteouts, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_links_stay_inside, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_hostile_paths_refused, s_setup, s_teardown),
        cmocka_unit_test(test_imageref),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
