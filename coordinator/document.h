/* document.h: the JSON documents that describe runs, built in one place.
 *
 * `kiln status` shows one run (its jobs, their attempts and steps, the
 * run's annotations and step summaries) and `kiln history` a list of runs.
 * Both documents are built here, from the rows the history store reads
 * (history.h's row readers), so that every front end that shows a run (the
 * client protocol today, an HTTP API later) gives the same shape: the same
 * keys, in the same order, with the same types and nulls. The CLI and the
 * tests parse these documents; a change here is a change of interface.
 *
 * Stored text that is not UTF-8 (a worker's name, a failure message) is
 * shown with U+FFFD in place of each bad byte, rather than failing the
 * whole document.
 *
 * Thread rules: those of the history object passed in (its loop's thread).
 */
#ifndef KILN_DOCUMENT_H
#define KILN_DOCUMENT_H

#include <jansson.h>
#include <stdint.h>

#include "coordinator/history.h"

/* The newest `limit` runs (0: 50, at most 1000), newest first: an array of
 * {id, name, file, state, created_ms, finished_ms, duration_ms, jobs: n,
 * failed: n}. *out is a new reference; 0 or a negative code with
 * kiln_error_last() set. */
int kiln_document_runs(kiln_history_t *history, unsigned limit, json_t **out);

/* One run: {id, name, file, state, created_ms, finished_ms, jobs: [{id,
 * name, state, attempt, worker, started_ms, finished_ms, duration_ms, needs,
 * runs_on, outputs, attempts: [{attempt, token, worker, worker_key, state, message,
 * started_ms, finished_ms}], steps: [{attempt, index, name, state,
 * exit_code, signal, started_ms, finished_ms, duration_ms}]}], annotations,
 * summaries} (the last two as kiln_document_run_extras adds them). A duration
 * is null until both ends are known, and when the end recorded is older than
 * the start (a job retried after it finished). *out is a new reference.
 * KILN_ENOTFOUND ("history: no run N") when there is no such run. */
int kiln_document_run(kiln_history_t *history, int64_t run_id, json_t **out);

/* Sets run["annotations"] to [{job, attempt, step, level, message, title,
 * file, line, col}] in the order they were recorded and run["summaries"] to
 * [{job, attempt, markdown}] by job and attempt. When this fails run gets
 * neither. */
int kiln_document_run_extras(kiln_history_t *history, int64_t run_id, json_t *run);

#endif
