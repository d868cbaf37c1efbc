/* test_termsafe.c: what step output keeps on its way to a terminal. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/termsafe.h"

static void s_expect(const char *in, size_t len, const char *want)
{
    kiln_buf_t b = {.max = 1 << 20};
    kiln_termsafe((const uint8_t *)in, len, &b);
    assert_false(kiln_buf_failed(&b));
    assert_int_equal(b.len, strlen(want));
    assert_memory_equal(b.data ? b.data : "", want, b.len);
    free(b.data);
}
#define EXPECT(in, want) s_expect(in, sizeof in - 1, want)

static void test_text_and_colours(void **state)
{
    (void)state;
    EXPECT("plain text\tand tabs\n", "plain text\tand tabs\n");
    EXPECT("\x1b[1;31merror\x1b[0m: \x1b[38;5;208mx\x1b[m\n",
           "\x1b[1;31merror\x1b[0m: \x1b[38;5;208mx\x1b[m\n");
    EXPECT("caf\xc3\xa9 \xe2\x9c\x93 \xf0\x9f\x94\xa5\n", "caf\xc3\xa9 \xe2\x9c\x93 \xf0\x9f\x94\xa5\n");
}

static void test_sequences_dropped(void **state)
{
    (void)state;
    /* The window title, with BEL and with ST. */
    EXPECT("a\x1b]0;pwned\x07" "b\n", "ab\n");
    EXPECT("a\x1b]2;pwned\x1b\\b\n", "ab\n");
    /* Cursor moves, erasing, a private mode, a full reset. */
    EXPECT("x\x1b[2A\x1b[2K\x1b[?25l\x1b" "cy\n", "xy\n");
    /* A CSI that ends in m but is not SGR (private parameters). */
    EXPECT("\x1b[>4;2mz", "z");
    /* DCS and a sequence cut by the chunk's end. */
    EXPECT("d\x1bPq#0;2;0\x1b\\e\x1b[31", "de");
    /* Controls: BEL, backspace, NUL, DEL; a carriage return that would
     * overwrite the line becomes a newline; CRLF is one newline. */
    EXPECT("o\x07k\x08!\x00?\x7f\n", "ok!?\n");
    EXPECT("10%\r20%\r\n", "10%\n20%\n");
}

static void test_utf8(void **state)
{
    (void)state;
    /* Invalid bytes, an overlong slash, a surrogate, a cut sequence. */
    EXPECT("a\xff" "b\xc0\xaf" "c\xed\xa0\x80" "d\xe2\x9c", "a\xef\xbf\xbd" "b\xef\xbf\xbd\xef\xbf\xbd"
                                                           "c\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
                                                           "d\xef\xbf\xbd\xef\xbf\xbd");
    /* C1 controls (U+009B is a one-character CSI on some terminals). */
    EXPECT("p\xc2\x9b" "2Jq", "p2Jq");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_and_colours),
        cmocka_unit_test(test_sequences_dropped),
        cmocka_unit_test(test_utf8),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
