/* test_commands.c: workflow commands in step output (annotations, groups,
 * masks, stop-commands, partial and over-long lines) and the step files
 * ($GITHUB_OUTPUT, $GITHUB_ENV, $GITHUB_PATH, $GITHUB_STEP_SUMMARY). */
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

#include "lang/commands.h"
#include "common/error.h"

/* ------------------------------------------------------------ helpers */

/* Feeds len bytes and returns what the filter shows (malloc'd). */
static char *s_feedn(kiln_commands_t *c, const char *data, size_t len, bool flush)
{
    char *out = NULL;
    size_t out_len = 0;
    assert_int_equal(kiln_commands_filter(c, data, len, flush, &out, &out_len), 0);
    assert_non_null(out);
    assert_int_equal(strlen(out), out_len);
    return out;
}

static char *s_feed(kiln_commands_t *c, const char *text, bool flush)
{
    return s_feedn(c, text, strlen(text), flush);
}

/* Feeds text and checks the output is exactly expect. */
static void s_expect(kiln_commands_t *c, const char *text, bool flush, const char *expect)
{
    char *out = s_feed(c, text, flush);
    assert_string_equal(out, expect);
    free(out);
}

static char *s_repeat(char ch, size_t n)
{
    char *s = malloc(n + 1);
    assert_non_null(s);
    memset(s, ch, n);
    s[n] = '\0';
    return s;
}

/* An appendable string for collecting output across calls. */
typedef struct {
    char *data;
    size_t len;
} s_acc_t;

static void s_acc(s_acc_t *a, char *out)
{
    size_t n = strlen(out);
    a->data = realloc(a->data, a->len + n + 1);
    assert_non_null(a->data);
    memcpy(a->data + a->len, out, n + 1);
    a->len += n;
    free(out);
}

/* ------------------------------------------------------- annotations */

static void test_annotation_properties(void **state)
{
    (void)state;
    kiln_commands_t *c = kiln_commands_new();
    assert_non_null(c);
    s_expect(c,
             "::error file=src/app.c,line=10,endLine=12,col=5,endColumn=7,"
             "title=Build%2C failed%3A link::50%25 done%0Anext %3A kept%0D\n",
             false, "Error: 50% done\nnext %3A kept\r\n");
    assert_int_equal(kiln_commands_n_annotations(c), 1);
    const kiln_annotation_t *a = kiln_commands_annotation(c, 0);
    assert_int_equal(a->level, KILN_ANN_ERROR);
    /* Messages decode %25 %0D %0A only; property values also %3A and %2C. */
    assert_string_equal(a->message, "50% done\nnext %3A kept\r");
    assert_string_equal(a->title, "Build, failed: link");
    assert_string_equal(a->file, "src/app.c");
    assert_int_equal(a->line, 10);
    assert_int_equal(a->end_line, 12);
    assert_int_equal(a->col, 5);
    assert_int_equal(a->end_col, 7);

    /* Property names are case-insensitive, the last one given wins, bad
     * numbers read as absent, escapes decode in one pass. */
    s_expect(c, "::warning FILE=a.c,Line=3,line=4,col=-2,endLine=3x::%250A\n", false, "Warning: %0A\n");
    a = kiln_commands_annotation(c, 1);
    assert_int_equal(a->level, KILN_ANN_WARNING);
    assert_string_equal(a->message, "%0A");
    assert_string_equal(a->file, "a.c");
    assert_int_equal(a->line, 4);
    assert_int_equal(a->col, 0);
    assert_int_equal(a->end_line, 0);
    assert_null(a->title);

    /* No properties, leading blanks and CRLF, as GitHub's runner accepts. */
    s_expect(c, "  ::notice::all good\r\n", false, "Notice: all good\n");
    a = kiln_commands_annotation(c, 2);
    assert_int_equal(a->level, KILN_ANN_NOTICE);
    assert_string_equal(a->message, "all good");
    assert_null(a->file);
    assert_int_equal(a->line, 0);
    assert_int_equal(kiln_commands_dropped_annotations(c), 0);

    /* Annotations are masked too. */
    s_expect(c, "::add-mask::hunter2\n", false, "::add-mask::***\n");
    s_expect(c, "::error title=key hunter2,file=hunter2.txt::saw hunter2\n", false, "Error: saw ***\n");
    a = kiln_commands_annotation(c, 3);
    assert_string_equal(a->message, "saw ***");
    assert_string_equal(a->title, "key ***");
    assert_string_equal(a->file, "***.txt");
    kiln_commands_destroy(&c);
    assert_null(c);
    kiln_commands_destroy(&c); /* NULL is accepted */
}

static void test_annotation_limit(void **state)
{
    (void)state;
    kiln_commands_t *c = kiln_commands_new();
    size_t shown = 0;
    for (int i = 0; i < KILN_CMD_MAX_ANNOTATIONS + 5; i++) {
        char line[64], expect[64];
        snprintf(line, sizeof line, "::error::problem %d\n", i);
        snprintf(expect, sizeof expect, "Error: problem %d\n", i);
        char *out = s_feed(c, line, false);
        shown += strcmp(out, expect) == 0;
        free(out);
    }
    /* Every one is shown, the first 200 are kept, the rest counted. */
    assert_int_equal(shown, KILN_CMD_MAX_ANNOTATIONS + 5);
    assert_int_equal(kiln_commands_n_annotations(c), KILN_CMD_MAX_ANNOTATIONS);
    assert_int_equal(kiln_commands_dropped_annotations(c), 5);
    assert_string_equal(kiln_commands_annotation(c, KILN_CMD_MAX_ANNOTATIONS - 1)->message, "problem 199");
    kiln_commands_destroy(&c);
}

static void test_disabled_commands(void **state)
{
    (void)state;
    kiln_commands_t *c = kiln_commands_new();
    char *out = s_feed(c, "::set-env name=FOO::bar\n::debug::hidden detail\n::echo::on\n", false);
    assert_non_null(strstr(out, "Error: The `set-env` command is disabled"));
    assert_null(strstr(out, "hidden detail"));
    assert_null(strstr(out, "::echo"));
    free(out);
    assert_int_equal(kiln_commands_n_annotations(c), 1);
    assert_int_equal(kiln_commands_annotation(c, 0)->level, KILN_ANN_ERROR);
    kiln_commands_destroy(&c);
}

/* ------------------------------------------------------------- groups */

static void test_groups(void **state)
{
    (void)state;
    kiln_commands_t *c = kiln_commands_new();
    s_expect(c, "::group::Build %25 test\nmake\n", false, "\xe2\x96\xb8 Build % test\nmake\n");
    assert_int_equal(kiln_commands_group_depth(c), 1);
    s_expect(c, "::endgroup::\nafter\n", false, "after\n");
    assert_int_equal(kiln_commands_group_depth(c), 0);
    s_expect(c, "::endgroup::\n", false, "");
    assert_int_equal(kiln_commands_group_depth(c), 0);
    /* The group name is masked like everything else. */
    s_expect(c, "::add-mask::s3cr3t\n::group::deploy s3cr3t\n", false,
             "::add-mask::***\n\xe2\x96\xb8 deploy ***\n");
    kiln_commands_destroy(&c);
}

/* -------------------------------------------------------------- masks */

static void test_mask_same_chunk(void **state)
{
    (void)state;
    kiln_commands_t *c = kiln_commands_new();
    s_expect(c, "before hunter2\n::add-mask::hunter2\necho hunter2 and hunter2x\nxhunter2hunter2\n", false,
             "before hunter2\n::add-mask::***\necho *** and ***x\nx******\n");
    /* Short values are masked too; the mask lasts for the whole job. */
    s_expect(c, "::add-mask::ab\n", false, "::add-mask::***\n");
    s_expect(c, "cab hunter2\n", true, "c*** ***\n");
    /* Other text the worker shows. */
    char *m = kiln_commands_mask(c, "token=hunter2;ab");
    assert_string_equal(m, "token=***;***");
    free(m);
    kiln_commands_destroy(&c);
}

static void test_mask_never_echoed(void **state)
{
    (void)state;
    kiln_commands_t *c = kiln_commands_new();
    /* Escaped, surrounded by blanks, multi-line: each line is a mask. */
    s_expect(c, "::add-mask::  p%25ss  \n", false, "::add-mask::***\n");
    s_expect(c, "::add-mask::line-one%0Aline-two\n", false, "::add-mask::***\n");
    s_expect(c, "p%ss line-one line-two\n", false, "*** *** ***\n");
    /* Overlapping masks merge: no fragment of either survives. */
    s_expect(c, "::add-mask::abcdef\n::add-mask::defghi\n", false, "::add-mask::***\n::add-mask::***\n");
    s_expect(c, "xabcdefghiy\n", false, "x***y\n");
    /* A blank value adds nothing and says so. */
    char *out = s_feed(c, "::add-mask::   \n", false);
    assert_non_null(strstr(out, "Warning: Can't add secret mask for empty string"));
    free(out);
    s_expect(c, "a   b\n", false, "a   b\n");
    kiln_commands_destroy(&c);
}

static void test_mask_limit(void **state)
{
    (void)state;
    kiln_commands_t *c = kiln_commands_new();
    for (int i = 0; i < KILN_CMD_MAX_MASKS; i++) {
        char line[64];
        snprintf(line, sizeof line, "::add-mask::value-%03d\n", i);
        s_expect(c, line, false, "::add-mask::***\n");
    }
    /* Adding a known value again takes no slot. */
    s_expect(c, "::add-mask::value-000\n", false, "::add-mask::***\n");
    char *out = s_feed(c, "::add-mask::one-too-many\n", false);
    assert_null(strstr(out, "one-too-many"));
    assert_non_null(strstr(out, "Warning: too many masks"));
    free(out);
    s_expect(c, "value-255\n", false, "***\n");
    kiln_commands_destroy(&c);
}

static void test_mask_split_across_chunks(void **state)
{
    (void)state;
    kiln_commands_t *c = kiln_commands_new();
    s_expect(c, "::add-mask::hunter2\n", false, "::add-mask::***\n");
    /* The secret arrives in two chunks: nothing of it goes out early. */
    s_expect(c, "token is hun", false, "");
    s_expect(c, "ter2 ok\nnext hu", false, "token is *** ok\n");
    s_expect(c, "nter2", true, "next ***");
    /* The add-mask command itself split across chunks. */
    s_expect(c, "::add-m", false, "");
    s_expect(c, "ask::swordfish\nswordfish\n", false, "::add-mask::***\n***\n");
    kiln_commands_destroy(&c);
}

/* A secret at every offset around the point where a long line is cut into
 * pieces is still masked, and the rest of the line comes out unchanged. */
static void test_mask_long_line_boundary(void **state)
{
    (void)state;
    const char *secret = "SECRETVALUE";
    size_t slen = strlen(secret), tail = 70000;
    for (size_t off = KILN_CMD_MAX_LINE - 15; off <= KILN_CMD_MAX_LINE + 15; off++) {
        kiln_commands_t *c = kiln_commands_new();
        s_expect(c, "::add-mask::SECRETVALUE\n", false, "::add-mask::***\n");
        size_t n = off + slen + tail + 1;
        char *line = malloc(n);
        assert_non_null(line);
        memset(line, 'x', off);
        memcpy(line + off, secret, slen);
        memset(line + off + slen, 'y', tail);
        line[n - 1] = '\n';
        s_acc_t got = {0};
        for (size_t at = 0; at < n; at += 1000)
            s_acc(&got, s_feedn(c, line + at, n - at < 1000 ? n - at : 1000, false));
        /* Expected: the same line with the secret replaced. */
        char *expect = malloc(off + 3 + tail + 2);
        assert_non_null(expect);
        memset(expect, 'x', off);
        memcpy(expect + off, "***", 3);
        memset(expect + off + 3, 'y', tail);
        memcpy(expect + off + 3 + tail, "\n", 2);
        assert_int_equal(got.len, off + 3 + tail + 1);
        assert_true(strcmp(got.data, expect) == 0);
        assert_null(strstr(got.data, "SECRET"));
        assert_null(strstr(got.data, "VALUE"));
        free(expect);
        free(got.data);
        free(line);
        kiln_commands_destroy(&c);
    }
}

/* Back-to-back occurrences longer than a piece: nothing of them shows, even
 * when what is left after a piece is shorter than the mask itself. */
static void test_mask_run_longer_than_piece(void **state)
{
    (void)state;
    const size_t counts[] = {KILN_CMD_MAX_LINE + 2 + 2, 100000};
    for (size_t k = 0; k < sizeof counts / sizeof counts[0]; k++) {
        size_t n = counts[k];
        kiln_commands_t *c = kiln_commands_new();
        s_expect(c, "::add-mask::aaa\n", false, "::add-mask::***\n");
        char *as = s_repeat('a', n);
        s_acc_t got = {0};
        for (size_t at = 0; at < n; at += 4096)
            s_acc(&got, s_feedn(c, as + at, n - at < 4096 ? n - at : 4096, false));
        s_acc(&got, s_feed(c, "+zzz\n", false));
        assert_null(strchr(got.data, 'a'));
        assert_string_equal(got.data, "******+zzz\n");
        free(got.data);
        free(as);
        kiln_commands_destroy(&c);
    }
}

/* --------------------------------------------------- stop-commands */

static void test_stop_commands(void **state)
{
    (void)state;
    kiln_commands_t *c = kiln_commands_new();
    s_expect(c, "::add-mask::hunter2\n", false, "::add-mask::***\n");
    s_expect(c,
             "::stop-commands::pause-7f3a\n"
             "::error::not an error\n"
             "::group::not a group hunter2\n"
             "::add-mask::not-a-mask\n"
             "::pause-7f3a::\n"
             "::error::real\n",
             false,
             "::error::not an error\n"
             "::group::not a group ***\n"
             "::add-mask::not-a-mask\n"
             "Error: real\n");
    assert_int_equal(kiln_commands_n_annotations(c), 1);
    assert_string_equal(kiln_commands_annotation(c, 0)->message, "real");
    /* The stopped add-mask registered nothing. */
    s_expect(c, "not-a-mask\n", false, "not-a-mask\n");
    /* The token holds across chunks and steps until its line. */
    s_expect(c, "::stop-commands::tok\n", true, "");
    s_expect(c, "::warning::still text\n", false, "::warning::still text\n");
    s_expect(c, "::tok::\n::warning::now\n", false, "Warning: now\n");
    /* An empty token does not stop anything. */
    char *out = s_feed(c, "::stop-commands::\n::notice::on\n", false);
    assert_non_null(strstr(out, "Notice: on\n"));
    free(out);
    kiln_commands_destroy(&c);
}

static void test_unknown_commands(void **state)
{
    (void)state;
    kiln_commands_t *c = kiln_commands_new();
    const char *text = "::frobnicate::z\n"
                       "::\n"
                       "::no separator\n"
                       "a::error::b\n"
                       "plain text\n";
    s_expect(c, text, false, text);
    assert_int_equal(kiln_commands_n_annotations(c), 0);
    kiln_commands_destroy(&c);
}

/* ::set-output and ::save-state: carried out, with GitHub's deprecation
 * warning; without a name, an error. */
static void test_legacy_commands(void **state)
{
    (void)state;
    kiln_commands_t *c = kiln_commands_new();
    const char *text = "::set-output name=answer::forty%0Atwo\n"
                       "::save-state name=kept::s1\n"
                       "::set-output::no name\n";
    char *out = NULL;
    size_t len = 0;
    assert_int_equal(kiln_commands_filter(c, text, strlen(text), true, &out, &len), 0);
    assert_non_null(strstr(out, "Warning: The `set-output` command is deprecated"));
    assert_non_null(strstr(out, "Warning: The `save-state` command is deprecated"));
    assert_non_null(strstr(out, "Invalid `set-output` command: it needs a name=NAME property"));
    assert_null(strstr(out, "forty"));
    free(out);
    kiln_kv_t outs = {0}, st = {0};
    kiln_commands_take_legacy(c, &outs, &st);
    assert_int_equal(outs.n, 1);
    assert_string_equal(kiln_kv_get(&outs, "answer"), "forty\ntwo");
    assert_int_equal(st.n, 1);
    assert_string_equal(kiln_kv_get(&st, "kept"), "s1");
    kiln_kv_free(&outs);
    kiln_kv_free(&st);
    /* Taken: the next step starts with none. */
    kiln_commands_take_legacy(c, &outs, &st);
    assert_int_equal(outs.n + st.n, 0);
    kiln_commands_destroy(&c);
}

/* ------------------------------------------------------ partial lines */

static void test_partial_lines(void **state)
{
    (void)state;
    kiln_commands_t *c = kiln_commands_new();
    s_expect(c, "::warn", false, "");
    s_expect(c, "ing::car", false, "");
    s_expect(c, "eful\nplain", false, "Warning: careful\n");
    s_expect(c, " end", true, "plain end");
    assert_int_equal(kiln_commands_n_annotations(c), 1);
    /* A command without its newline at the end of a step still counts. */
    s_expect(c, "::notice::last", true, "Notice: last\n");
    assert_int_equal(kiln_commands_n_annotations(c), 2);
    /* Flushing nothing shows nothing; an empty chunk is fine. */
    s_expect(c, "", true, "");
    s_expect(c, "\n\n", false, "\n\n");
    kiln_commands_destroy(&c);
}

static void test_long_lines(void **state)
{
    (void)state;
    kiln_commands_t *c = kiln_commands_new();
    /* Three times the line limit without a newline: pieces go out as it
     * comes, so at most a line's worth is ever held. */
    size_t n = 3 * KILN_CMD_MAX_LINE;
    char *big = s_repeat('q', n);
    s_acc_t got = {0};
    for (size_t at = 0; at < n; at += 4096) {
        s_acc(&got, s_feedn(c, big + at, 4096, false));
        assert_true(at + 4096 - got.len <= KILN_CMD_MAX_LINE);
    }
    s_acc(&got, s_feed(c, "\n", false));
    assert_int_equal(got.len, n + 1);
    assert_memory_equal(got.data, big, n);
    free(got.data);

    /* A command line over the limit is text, not a command. */
    size_t cmd_len = strlen("::error::") + KILN_CMD_MAX_LINE;
    char *line = malloc(cmd_len + 2);
    assert_non_null(line);
    memcpy(line, "::error::", 9);
    memset(line + 9, 'e', KILN_CMD_MAX_LINE);
    memcpy(line + cmd_len, "\n", 2);
    char *out = s_feed(c, line, false);
    assert_string_equal(out, line);
    free(out);
    assert_int_equal(kiln_commands_n_annotations(c), 0);

    /* An over-long add-mask is not processed, yet its value is never shown. */
    memcpy(line, "::add-mask::", 12);
    memset(line + 12, 'S', cmd_len - 12);
    got = (s_acc_t){0};
    for (size_t at = 0; at < cmd_len + 1; at += 5000)
        s_acc(&got, s_feedn(c, line + at, cmd_len + 1 - at < 5000 ? cmd_len + 1 - at : 5000, false));
    s_acc(&got, s_feed(c, "after\n", false));
    assert_null(strstr(got.data, "SSSS"));
    assert_non_null(strstr(got.data, "::add-mask::***\n"));
    assert_non_null(strstr(got.data, "\nafter\n"));
    free(got.data);
    free(line);
    free(big);
    kiln_commands_destroy(&c);
}

/* ------------------------------------------------------------- files */

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_annotation_properties),
        cmocka_unit_test(test_annotation_limit),
        cmocka_unit_test(test_disabled_commands),
        cmocka_unit_test(test_groups),
        cmocka_unit_test(test_mask_same_chunk),
        cmocka_unit_test(test_mask_never_echoed),
        cmocka_unit_test(test_mask_limit),
        cmocka_unit_test(test_mask_split_across_chunks),
        cmocka_unit_test(test_mask_long_line_boundary),
        cmocka_unit_test(test_mask_run_longer_than_piece),
        cmocka_unit_test(test_stop_commands),
        cmocka_unit_test(test_unknown_commands),
        cmocka_unit_test(test_legacy_commands),
        cmocka_unit_test(test_partial_lines),
        cmocka_unit_test(test_long_lines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
