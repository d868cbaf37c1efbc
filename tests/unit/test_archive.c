/* test_archive.c: unit tests for common/archive.c.
 *
 * A tree (nested directories, an empty file, an executable, a link inside
 * it) packed and unpacked comes back identical, modes included. Archives
 * crafted with libarchive for every hostile case (a "..", an absolute
 * path, a link out and a file written through it, a hard link out or to
 * nothing, a device, a FIFO, a setuid file, too many entries, too many
 * bytes, an expansion bomb, garbage, a truncated archive) are each
 * refused naming the entry, and after each the directory around the
 * target holds exactly what it held before: nothing outside was written,
 * nothing partial was left.
 */
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
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

#include "common/archive.h"
#include "common/error.h"
#include "common/fs.h"

static char s_dir[PATH_MAX]; /* everything of a test is under it */

static void s_write(const char *path, const char *text, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    assert_int_equal(close(fd), 0);
}

static void s_path(char *out, const char *rel)
{
    snprintf(out, PATH_MAX, "%s/%s", s_dir, rel);
}

static int s_setup(void **state)
{
    (void)state;
    snprintf(s_dir, sizeof s_dir, "/tmp/kiln-archive-XXXXXX");
    assert_non_null(mkdtemp(s_dir));
    return 0;
}

static int s_teardown(void **state)
{
    (void)state;
    assert_int_equal(kiln_fs_rmtree(s_dir), 0);
    return 0;
}

/* Every path under dir with its type, size, mode and content or link
 * target, sorted: what "the same tree" means here. */
static void s_listing(const char *dir, const char *rel, char *out, size_t cap)
{
    char full[PATH_MAX];
    snprintf(full, sizeof full, "%s%s%s", dir, rel[0] ? "/" : "", rel);
    DIR *d = opendir(full);
    assert_non_null(d);
    char *names[256];
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 256)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            names[n++] = strdup(e->d_name);
    closedir(d);
    for (size_t i = 0; i < n; i++)
        for (size_t k = i + 1; k < n; k++)
            if (strcmp(names[k], names[i]) < 0) {
                char *t = names[i];
                names[i] = names[k];
                names[k] = t;
            }
    for (size_t i = 0; i < n; i++) {
        char r[PATH_MAX], p[PATH_MAX], line[PATH_MAX + 600] = "";
        struct stat st;
        snprintf(r, sizeof r, "%s%s%s", rel, rel[0] ? "/" : "", names[i]);
        snprintf(p, sizeof p, "%s/%s", dir, r);
        assert_int_equal(lstat(p, &st), 0);
        if (S_ISLNK(st.st_mode)) {
            char t[PATH_MAX] = "";
            assert_true(readlink(p, t, sizeof t - 1) > 0);
            snprintf(line, sizeof line, "%s -> %s\n", r, t);
        } else if (S_ISDIR(st.st_mode)) {
            snprintf(line, sizeof line, "%s/ %o\n", r, st.st_mode & 07777);
        } else {
            char body[256] = "";
            int fd = open(p, O_RDONLY);
            ssize_t got = read(fd, body, sizeof body - 1);
            close(fd);
            body[got > 0 ? got : 0] = '\0';
            snprintf(line, sizeof line, "%s %o %lld links=%d [%s]\n", r, st.st_mode & 07777,
                     (long long)st.st_size, (int)st.st_nlink, body);
        }
        assert_true(strlen(out) + strlen(line) < cap);
        strcat(out, line);
        if (S_ISDIR(st.st_mode))
            s_listing(dir, r, out, cap);
        free(names[i]);
    }
}

static void test_round_trip(void **state)
{
    (void)state;
    char p[PATH_MAX], src[PATH_MAX], out[PATH_MAX], dest[PATH_MAX];
    s_path(src, "src");
    assert_int_equal(mkdir(src, 0755), 0);
    s_path(p, "src/deps");
    assert_int_equal(mkdir(p, 0755), 0);
    s_path(p, "src/deps/nested");
    assert_int_equal(mkdir(p, 0700), 0);
    s_path(p, "src/deps/nested/a.txt");
    s_write(p, "alpha\n", 0644);
    s_path(p, "src/deps/empty");
    s_write(p, "", 0600);
    s_path(p, "src/deps/run.sh");
    s_write(p, "#!/bin/sh\necho hi\n", 0755);
    s_path(p, "src/deps/link");
    assert_int_equal(symlink("nested/a.txt", p), 0);
    s_path(p, "src/other");
    s_write(p, "not packed\n", 0644);
    const char *paths[] = {"deps/"};
    s_path(out, "deps.tar.zst");
    kiln_archive_stats_t st;
    assert_int_equal(kiln_archive_pack(src, paths, 1, out, 0, &st), 0);
    assert_int_equal(st.entries, 6);
    assert_int_equal(st.bytes, 6 + 18 + 0);
    assert_true(st.archive_bytes > 0);
    s_path(dest, "restored");
    kiln_archive_stats_t ust;
    assert_int_equal(kiln_archive_unpack(out, dest, NULL, &ust), 0);
    assert_int_equal(ust.entries, 6);
    assert_int_equal(ust.bytes, st.bytes);
    char *a = calloc(1, 8192), *b = calloc(1, 8192);
    s_path(p, "src/deps");
    s_listing(p, "", a, 8192);
    s_path(p, "restored/deps");
    s_listing(p, "", b, 8192);
    assert_string_equal(a, b);
    free(a);
    free(b);
    /* The target is never merged into. */
    assert_int_equal(kiln_archive_unpack(out, dest, NULL, NULL), -1);
    assert_non_null(strstr(kiln_error_last(), "there already"));
    /* Paths that leave the root are refused before anything is written. */
    const char *bad[] = {"../etc"};
    assert_int_equal(kiln_archive_pack(src, bad, 1, out, 0, NULL), KILN_EINVAL);
}

/* ---- crafted archives ---------------------------------------------------- */

typedef struct {
    const char *name;
    mode_t type, perm;
    const char *body;     /* a regular file's text, or NULL */
    const char *link;     /* a symbolic link's target, or NULL */
    const char *hardlink; /* a hard link's target, or NULL */
    size_t zeros;         /* a regular file of that many zero bytes instead of body */
} s_entry_t;

/* Crafted archives are tar + zstd unless this says plain tar. */
static bool s_plain;

static void s_craft(const char *path, const s_entry_t *entries, size_t n, size_t repeat)
{
    struct archive *a = archive_write_new();
    assert_int_equal(archive_write_set_format_pax_restricted(a), ARCHIVE_OK);
    if (!s_plain)
        assert_int_equal(archive_write_add_filter_zstd(a), ARCHIVE_OK);
    assert_int_equal(archive_write_open_filename(a, path), ARCHIVE_OK);
    static char zeros[65536];
    for (size_t k = 0; k < repeat; k++) {
        for (size_t i = 0; i < n; i++) {
            struct archive_entry *e = archive_entry_new();
            char name[512];
            snprintf(name, sizeof name, repeat > 1 ? "%s%zu" : "%s", entries[i].name, k);
            archive_entry_set_pathname(e, name);
            archive_entry_set_filetype(e, entries[i].type);
            archive_entry_set_perm(e, entries[i].perm ? entries[i].perm : 0644);
            if (entries[i].link)
                archive_entry_set_symlink(e, entries[i].link);
            if (entries[i].hardlink)
                archive_entry_set_hardlink(e, entries[i].hardlink);
            size_t size = entries[i].zeros ? entries[i].zeros
                          : entries[i].body ? strlen(entries[i].body)
                                            : 0;
            if (entries[i].type == AE_IFREG && !entries[i].hardlink)
                archive_entry_set_size(e, (la_int64_t)size);
            assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
            if (entries[i].zeros) {
                for (size_t left = size; left;) {
                    size_t chunk = left < sizeof zeros ? left : sizeof zeros;
                    assert_int_equal(archive_write_data(a, zeros, chunk), (la_ssize_t)chunk);
                    left -= chunk;
                }
            } else if (entries[i].body && size) {
                assert_int_equal(archive_write_data(a, entries[i].body, size), (la_ssize_t)size);
            }
            archive_entry_free(e);
        }
    }
    assert_int_equal(archive_write_close(a), ARCHIVE_OK);
    archive_write_free(a);
}

/* Unpacks path into s_dir/box/target and expects a refusal naming want;
 * the whole of s_dir (the box and the file beside it) is as it was. */
static void s_expect_refused(const char *path, const kiln_archive_limits_t *lim, const char *want)
{
    char box[PATH_MAX], dest[PATH_MAX], p[PATH_MAX];
    s_path(box, "box");
    mkdir(box, 0755);
    s_path(p, "box/sentinel");
    s_write(p, "untouched\n", 0644);
    char *before = calloc(1, 16384), *after = calloc(1, 16384);
    s_listing(s_dir, "", before, 16384);
    s_path(dest, "box/target");
    int rc = kiln_archive_unpack(path, dest, lim, NULL);
    if (rc != KILN_EINVAL || !strstr(kiln_error_last(), want))
        fail_msg("want a refusal naming '%s', got %d: %s", want, rc, kiln_error_last());
    assert_non_null(strstr(kiln_error_last(), "nothing was unpacked"));
    s_listing(s_dir, "", after, 16384);
    assert_string_equal(before, after);
    free(before);
    free(after);
}

static void test_hostile(void **state)
{
    (void)state;
    char arch[PATH_MAX];
    s_path(arch, "evil.tar.zst");
    struct {
        s_entry_t e[4];
        size_t n;
        const char *want;
    } cases[] = {
        {{{"../escaped", AE_IFREG, 0, "x", NULL, NULL, 0}}, 1, "entry '../escaped': its path is absolute"},
        {{{"ok/../../escaped", AE_IFREG, 0, "x", NULL, NULL, 0}}, 1, "leaves the target"},
        {{{"/tmp/kiln-escaped-abs", AE_IFREG, 0, "x", NULL, NULL, 0}}, 1, "its path is absolute"},
        {{{"up", AE_IFLNK, 0, NULL, "../../", NULL, 0},
          {"up/escaped", AE_IFREG, 0, "x", NULL, NULL, 0}},
         2, "entry 'up': a symbolic link that leads out"},
        {{{"abs", AE_IFLNK, 0, NULL, "/etc", NULL, 0}}, 1, "a symbolic link that leads out"},
        {{{"d", AE_IFDIR, 0755, NULL, NULL, NULL, 0}, {"d/l", AE_IFLNK, 0, NULL, "../..", NULL, 0}},
         2, "entry 'd/l': a symbolic link that leads out"},
        {{{"hard", AE_IFREG, 0, NULL, NULL, "/etc/passwd", 0}}, 1, "a hard link to a path outside"},
        {{{"hard", AE_IFREG, 0, NULL, NULL, "../sentinel", 0}}, 1, "a hard link to a path outside"},
        {{{"hard", AE_IFREG, 0, NULL, NULL, "missing", 0}}, 1, "a hard link to no regular file"},
        {{{"dev", AE_IFCHR, 0, NULL, NULL, NULL, 0}}, 1, "a device, FIFO or socket"},
        {{{"blk", AE_IFBLK, 0, NULL, NULL, NULL, 0}}, 1, "a device, FIFO or socket"},
        {{{"fifo", AE_IFIFO, 0, NULL, NULL, NULL, 0}}, 1, "a device, FIFO or socket"},
        {{{"suid", AE_IFREG, 04755, "x", NULL, NULL, 0}}, 1, "setuid, setgid or sticky"},
        {{{"sgid", AE_IFDIR, 02755, NULL, NULL, NULL, 0}}, 1, "setuid, setgid or sticky"},
        /* Each link alone stays inside; followed through the first, the
         * second climbs out. */
        {{{"a", AE_IFDIR, 0755, NULL, NULL, NULL, 0},
          {"a/b", AE_IFDIR, 0755, NULL, NULL, NULL, 0},
          {"a/b/up", AE_IFLNK, 0, NULL, "../..", NULL, 0},
          {"w", AE_IFLNK, 0, NULL, "a/b/up/..", NULL, 0}},
         4, "entry 'w': a symbolic link that leads out of the target through other links"},
        /* A file under an archived link to a directory: not written
         * through it. */
        {{{"d", AE_IFDIR, 0755, NULL, NULL, NULL, 0},
          {"s", AE_IFLNK, 0, NULL, "d", NULL, 0},
          {"s/f", AE_IFREG, 0, "x", NULL, NULL, 0}},
         3, "entry 's/f': its path leads through a symbolic link"},
        {{{"d", AE_IFDIR, 0755, NULL, NULL, NULL, 0},
          {"d/f", AE_IFREG, 0, "x", NULL, NULL, 0},
          {"s", AE_IFLNK, 0, NULL, "d", NULL, 0},
          {"h", AE_IFREG, 0, NULL, NULL, "s/f", 0}},
         4, "entry 'h': its path leads through a symbolic link"},
        {{{"twice", AE_IFREG, 0, "one", NULL, NULL, 0}, {"twice", AE_IFREG, 0, "two", NULL, NULL, 0}},
         2, "entry 'twice': the archive has it twice"},
        {{{"f", AE_IFREG, 0, "x", NULL, NULL, 0}, {"f/g", AE_IFREG, 0, "x", NULL, NULL, 0}},
         2, "entry 'f/g': its path leads through a symbolic link or a file"},
        /* An entry after a good one: the good one is not left either. */
        {{{"fine", AE_IFREG, 0, "kept?", NULL, NULL, 0}, {"../late", AE_IFREG, 0, "x", NULL, NULL, 0}},
         2, "entry '../late'"},
    };
    for (int plain = 0; plain < 2; plain++) {
        s_plain = plain;
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            s_craft(arch, cases[i].e, cases[i].n, 1);
            s_expect_refused(arch, NULL, cases[i].want);
        }
    }
    s_plain = false;
    struct stat st;
    assert_int_equal(lstat("/tmp/kiln-escaped-abs", &st), -1);
}

/* What other tar writers make: a file before its directory's entry, a
 * hard link, a link to a directory, a file far larger than the reader's
 * blocks, in tar + zstd and in plain tar. */
static void test_crafted(void **state)
{
    (void)state;
    char arch[PATH_MAX], dest[PATH_MAX], p[PATH_MAX];
    s_entry_t e[] = {
        {"late/x", AE_IFREG, 0640, "first\n", NULL, NULL, 0},
        {"late", AE_IFDIR, 0750, NULL, NULL, NULL, 0},
        {"late/h", AE_IFREG, 0, NULL, NULL, "late/x", 0},
        {"tolate", AE_IFLNK, 0, NULL, "late", NULL, 0},
        {"big", AE_IFREG, 0600, NULL, NULL, NULL, 5u << 20},
    };
    for (int plain = 0; plain < 2; plain++) {
        s_plain = plain;
        s_path(arch, plain ? "ok.tar" : "ok.tar.zst");
        s_craft(arch, e, sizeof e / sizeof e[0], 1);
        s_path(dest, plain ? "plain" : "zstd");
        kiln_archive_stats_t st;
        if (kiln_archive_unpack(arch, dest, NULL, &st) != 0)
            fail_msg("%s", kiln_error_last());
        assert_int_equal(st.entries, 5);
        assert_int_equal(st.bytes, 6 + (5u << 20));
        struct stat sb;
        snprintf(p, sizeof p, "%s/late", dest);
        assert_int_equal(lstat(p, &sb), 0);
        assert_true(S_ISDIR(sb.st_mode));
        assert_int_equal(sb.st_mode & 07777, 0750);
        snprintf(p, sizeof p, "%s/late/h", dest);
        assert_int_equal(lstat(p, &sb), 0);
        assert_int_equal(sb.st_nlink, 2);
        assert_int_equal(sb.st_mode & 07777, 0640);
        assert_int_equal(sb.st_size, 6);
        snprintf(p, sizeof p, "%s/tolate/x", dest);
        assert_int_equal(stat(p, &sb), 0);
        snprintf(p, sizeof p, "%s/big", dest);
        assert_int_equal(lstat(p, &sb), 0);
        assert_int_equal(sb.st_size, 5u << 20);
        assert_int_equal(sb.st_mode & 07777, 0600);
    }
    s_plain = false;
}

static void test_limits(void **state)
{
    (void)state;
    char arch[PATH_MAX];
    s_path(arch, "big.tar.zst");
    /* Too many entries. */
    s_entry_t many = {"f", AE_IFREG, 0, "x", NULL, NULL, 0};
    s_craft(arch, &many, 1, 50);
    kiln_archive_limits_t lim = {.max_entries = 20};
    s_expect_refused(arch, &lim, "more than 20 entries");
    /* Too many bytes. */
    s_entry_t big = {"big", AE_IFREG, 0, NULL, NULL, NULL, 200000};
    s_craft(arch, &big, 1, 1);
    lim = (kiln_archive_limits_t){.max_bytes = 100000};
    s_expect_refused(arch, &lim, "the files are over 100000 bytes");
    /* A bomb: 64 MB of zeros are a few KB of zstd. */
    s_entry_t bomb = {"bomb", AE_IFREG, 0, NULL, NULL, NULL, 64u << 20};
    s_craft(arch, &bomb, 1, 1);
    struct stat st;
    assert_int_equal(stat(arch, &st), 0);
    assert_true(st.st_size < 100000);
    s_expect_refused(arch, NULL, "expands more than 2000 times");
}

static void test_garbage(void **state)
{
    (void)state;
    char arch[PATH_MAX];
    s_path(arch, "garbage.tar.zst");
    s_write(arch, "this is not an archive at all, only some words of text\n", 0644);
    s_expect_refused(arch, NULL, "garbage.tar.zst");
    /* A real archive cut short. */
    s_entry_t e = {"file", AE_IFREG, 0, NULL, NULL, NULL, 100000};
    s_craft(arch, &e, 1, 1);
    struct stat st;
    assert_int_equal(stat(arch, &st), 0);
    assert_int_equal(truncate(arch, st.st_size / 2), 0);
    s_expect_refused(arch, NULL, "garbage.tar.zst");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_hostile, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_crafted, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_limits, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_garbage, s_setup, s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
