/* log.h: one-line, timestamped diagnostics for the daemons.
 *
 * Every line carries the component name ("coordinator", "worker w1") so the
 * interleaved output of a local farm stays readable. Logging goes to stderr
 * unless a file is set; it is for operators, not for job output (that goes
 * through the log chunks of the protocol).
 */
#ifndef KILN_LOG_H
#define KILN_LOG_H

typedef enum {
    KILN_LOG_DEBUG = 0,
    KILN_LOG_INFO = 1,
    KILN_LOG_WARN = 2,
    KILN_LOG_ERROR = 3,
} kiln_log_level_t;

void kiln_log_init(const char *component, kiln_log_level_t level);
/* Parses "debug", "info", "warn", "error"; returns -1 on anything else. */
int kiln_log_parse_level(const char *text, kiln_log_level_t *out);
void kiln_log_write(kiln_log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define kiln_log_debug(...) kiln_log_write(KILN_LOG_DEBUG, __VA_ARGS__)
#define kiln_log_info(...) kiln_log_write(KILN_LOG_INFO, __VA_ARGS__)
#define kiln_log_warn(...) kiln_log_write(KILN_LOG_WARN, __VA_ARGS__)
#define kiln_log_error(...) kiln_log_write(KILN_LOG_ERROR, __VA_ARGS__)

#endif
