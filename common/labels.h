/* labels.h: the labels a worker introduces itself with.
 *
 * As GitHub's self-hosted runners: the OS ("linux") and the architecture
 * ("x64", "arm64", or uname's machine name), then the configured ones from a
 * comma-separated list. Shared by the worker and the benchmark's simulated
 * workers, so both say the same in their Hello.
 */
#ifndef KILN_LABELS_H
#define KILN_LABELS_H

#include <stddef.h>

/* Fills out[] (up to max malloc'd strings) and *n. Returns 0, or -1 with
 * kiln_error_last() set when out of memory (what was filled stays in out[]
 * for the caller to free). */
int kiln_labels_worker(const char *configured, char **out, size_t max, size_t *n);

#endif
