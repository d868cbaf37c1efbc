/* termsafe.h: step output made safe for a terminal.
 *
 * A job's output is written by the job: shown raw in the terminal of
 * whoever runs `kiln logs`, an escape sequence can set the window title,
 * move the cursor to overwrite earlier lines, or, on some terminals, answer
 * back into the shell's input. What reaches a terminal keeps text, tabs,
 * newlines and SGR colour sequences (ESC [ ... m), which build logs use;
 * every other escape sequence (CSI, OSC, DCS and the rest) and control
 * character is dropped, a carriage return not followed by a newline becomes
 * one (progress bars stay readable, lines cannot be overwritten), C1
 * controls are dropped, and bytes that are not UTF-8 become U+FFFD.
 */
#ifndef KILN_TERMSAFE_H
#define KILN_TERMSAFE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

/* Appends data[0..len) to out, made safe. A sequence cut by the end of
 * data is dropped (the next chunk starts afresh). */
void kiln_termsafe(const uint8_t *data, size_t len, kiln_buf_t *out);

/* text[0..len) with every byte that is not part of valid UTF-8 replaced
 * by U+FFFD, malloc'd and NUL-terminated (*out_len its length); NULL when
 * out of memory. *changed: whether anything was replaced. Values that must
 * become JSON (outputs) cannot carry invalid UTF-8. */
char *kiln_utf8_repair(const char *text, size_t len, size_t *out_len, bool *changed);

#endif
