/* error.h: Kiln's error codes and the thread-local "last error" message.
 *
 * Functions return 0 on success and a negative KILN_E* code on failure; the
 * human-readable reason travels beside the code (libgit2's giterr model): the
 * failing function calls kiln_error_set(), the caller that reports reads
 * kiln_error_last(). Callers propagate the code and never overwrite a message
 * they did not produce.
 */
#ifndef KILN_ERROR_H
#define KILN_ERROR_H

#include <stdarg.h>

enum {
    KILN_OK = 0,
    KILN_ERROR = -1,     /* anything not named below */
    KILN_EINVAL = -2,    /* bad input from a file, a peer or a user */
    KILN_ENOTFOUND = -3,
    KILN_ETIMEOUT = -4,
    KILN_EPROTO = -5,    /* a peer broke the protocol */
    KILN_ETOOBIG = -6,   /* a bounded buffer or queue would overflow */
    KILN_EAGAIN = -7,
    KILN_ESTALE = -8,    /* a fencing token no longer current */
    KILN_EDENIED = -9,   /* authentication or authorisation refused */
    KILN_EINFRA = -10,   /* an infrastructure dependency failed */
    KILN_EBUSY = -11,    /* held by another process (a lock, a keyspace) */
};

#define KILN_ERROR_MAX 1024

/* Stores a one-line message for this thread, replacing the previous one. */
void kiln_error_set(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void kiln_error_vset(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));
/* Like kiln_error_set, with ": strerror(errno)" appended. */
void kiln_error_errno(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The last message set on this thread, or "" (never NULL). Borrowed. */
const char *kiln_error_last(void);
void kiln_error_clear(void);
/* A short name for a KILN_E* code ("EINVAL"). */
const char *kiln_error_name(int code);

#endif
