/* source.h: what a run's repository and event put in the github context.
 *
 * A run from a repository knows its URL, its ref and its commit; from them
 * come github.repository, ref_name, ref_type, server_url, workflow_ref and
 * the rest, and the event's payload (github.event, $GITHUB_EVENT_PATH) as
 * GitHub shapes it, with the fields Kiln can know. One builder, so the
 * coordinator's plan and the worker's steps see the same values.
 */
#ifndef KILN_SOURCE_H
#define KILN_SOURCE_H

#include <jansson.h>

/* The github fields for a run: a new object holding repository,
 * repository_owner, ref, ref_name, ref_type, sha, head_ref, base_ref,
 * server_url, api_url (github.com only), workflow_ref, workflow_sha and
 * event. source is the run's source as recorded (an object with the
 * fields of proto Source: url, repository, ref, sha, ...) or NULL for a run
 * of a file alone. NULL when out of memory. */
json_t *kiln_source_github(const json_t *source, const char *event_name, const char *actor,
                           const char *workflow_file, const json_t *inputs);

/* owner/name from a repository URL (https://host/owner/name.git,
 * git@host:owner/name.git, /srv/git/owner/name): out gets it, and base the
 * URL it sits under (https://host, /srv/git), each cap bytes. Returns 0,
 * or -1 when the URL has no two path components. */
int kiln_source_split_url(const char *url, char *repository, char *base, size_t cap);

#endif
