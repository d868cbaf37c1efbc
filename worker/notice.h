/* notice.h: spot-interruption notices, the warning a cloud gives before it
 * takes a machine back.
 *
 * A worker on a spot or preemptible instance learns of its end in one of
 * three ways, each configurable:
 *   - a file that appears (an agent or hook touches it): watched with
 *     inotify, so it is seen at once without polling;
 *   - an HTTP URL that starts answering 200 (the EC2 instance-action
 *     metadata endpoint answers 404 until an interruption is scheduled):
 *     fetched every poll interval with libcurl's multi interface, never
 *     blocking the worker's loop;
 *   - a command that starts exiting 0: run every poll interval through the
 *     executor, without blocking.
 * The agent polls the descriptors this module hands out and calls in on
 * readiness and on its deadline; when a notice is seen the agent drains.
 */
#ifndef KILN_NOTICE_H
#define KILN_NOTICE_H

#include <stdbool.h>
#include <stdint.h>

#define KILN_NOTICE_MAX_FDS 16
#define KILN_NOTICE_DEFAULT_POLL_MS 5000

typedef struct kiln_notice kiln_notice_t;

typedef struct {
    const char *file;     /* path whose appearance is the notice, or NULL */
    const char *url;      /* URL answering 200 on notice, or NULL */
    const char *command;  /* shell command exiting 0 on notice, or NULL */
    int poll_ms;          /* for url and command; <= 0: the default */
} kiln_notice_config_t;

/* Returns 0 and *out (NULL when nothing is configured), or an error. */
int kiln_notice_new(kiln_notice_t **out, const kiln_notice_config_t *cfg);
void kiln_notice_destroy(kiln_notice_t **self_p);

/* Descriptors to poll now, with the events wanted (ZMQ_POLLIN/OUT bits are
 * the same as POLLIN/POLLOUT). Returns how many were written. */
int kiln_notice_fds(kiln_notice_t *self, int *fds, short *events, int max);
/* Monotonic ms of the next time kiln_notice_work must run, or -1. */
int64_t kiln_notice_next_deadline(kiln_notice_t *self);
/* Does whatever is due (readable descriptors, timers, a reaped command).
 * Returns true once a notice has been seen; the reason is then set. */
bool kiln_notice_work(kiln_notice_t *self, int64_t now_ms);
void kiln_notice_on_sigchld(kiln_notice_t *self);
const char *kiln_notice_reason(const kiln_notice_t *self);

#endif
