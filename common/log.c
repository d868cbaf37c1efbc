/* log.c: see log.h. A single write(2) per line keeps lines whole when
 * several processes of a local farm share one terminal or file. */
#include "common/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static char s_component[64] = "kiln";
static kiln_log_level_t s_level = KILN_LOG_INFO;

void kiln_log_init(const char *component, kiln_log_level_t level)
{
    snprintf(s_component, sizeof s_component, "%s", component ? component : "kiln");
    s_level = level;
}

int kiln_log_parse_level(const char *text, kiln_log_level_t *out)
{
    static const char *names[] = {"debug", "info", "warn", "error"};
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(text, names[i]) == 0) {
            *out = (kiln_log_level_t)i;
            return 0;
        }
    }
    return -1;
}

void kiln_log_write(kiln_log_level_t level, const char *fmt, ...)
{
    static const char *tags[] = {"debug", "info", "warn", "error"};
    if (level < s_level)
        return;
    char line[2048];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "%02d:%02d:%02d.%03ld %s %s: ", tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ts.tv_nsec / 1000000L, s_component, tags[level]);
    if (n < 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (m < 0)
        return;
    size_t len = strlen(line);
    line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}
