/* error.c: thread-local last-error storage (see error.h). */
#include "common/error.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char s_last[KILN_ERROR_MAX];

void kiln_error_vset(const char *fmt, va_list ap)
{
    /* Through a copy: a caller may pass kiln_error_last() as an argument
     * ("job x: %s"), and formatting into the buffer it reads from is
     * undefined (it garbled such messages). */
    char text[KILN_ERROR_MAX];
    vsnprintf(text, sizeof text, fmt, ap);
    memcpy(s_last, text, sizeof text);
}

void kiln_error_set(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    kiln_error_vset(fmt, ap);
    va_end(ap);
}

void kiln_error_errno(const char *fmt, ...)
{
    int saved = errno;
    const char *why = strerror(saved);
    size_t room = sizeof s_last - strlen(why) - 3;
    va_list ap;
    char text[KILN_ERROR_MAX];
    va_start(ap, fmt);
    vsnprintf(text, room, fmt, ap);
    va_end(ap);
    memcpy(s_last, text, room);
    size_t len = strlen(s_last);
    /* Appended by hand so the compiler sees the bound is respected. */
    s_last[len++] = ':';
    s_last[len++] = ' ';
    memcpy(s_last + len, why, strlen(why) + 1);
    errno = saved;
}

const char *kiln_error_last(void)
{
    return s_last;
}

void kiln_error_clear(void)
{
    s_last[0] = '\0';
}

const char *kiln_error_name(int code)
{
    switch (code) {
    case KILN_OK: return "OK";
    case KILN_EINVAL: return "EINVAL";
    case KILN_ENOTFOUND: return "ENOTFOUND";
    case KILN_ETIMEOUT: return "ETIMEOUT";
    case KILN_EPROTO: return "EPROTO";
    case KILN_ETOOBIG: return "ETOOBIG";
    case KILN_EAGAIN: return "EAGAIN";
    case KILN_ESTALE: return "ESTALE";
    case KILN_EDENIED: return "EDENIED";
    case KILN_EINFRA: return "EINFRA";
    case KILN_EBUSY: return "EBUSY";
    default: return "ERROR";
    }
}
