/* registry.h: pulling container images from a registry (the OCI
 * distribution API, "registry HTTP API v2") with libcurl, for the native
 * container runtime (kiln-image).
 *
 * Everything fetched is verified by digest before it is used: a manifest
 * named by digest must hash to it, a blob must hash to the digest its
 * manifest gives (and stay within its size), so a registry or mirror that
 * serves tampered bytes is refused, naming the digest. Credentials come
 * from the worker's configuration (a Docker-style auths file) and are sent
 * only to the registry they are for; no message here ever holds them.
 */
#ifndef KILN_REGISTRY_H
#define KILN_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

#include "common/imageref.h"

typedef struct {
    const char *auth_file; /* {"auths": {"host": {"auth": base64(user:pass)}}}, or NULL */
    const char *insecure;  /* hosts reached over plain HTTP, comma-separated; loopback always is */
    const char *mirror;    /* pull-through mirrors: "[HOST=]URL,..." (HOST docker.io when not given) */
} kiln_registry_opts_t;

typedef struct kiln_registry kiln_registry_t;

int kiln_registry_new(kiln_registry_t **out, const kiln_registry_opts_t *opts, char *why,
                      size_t cap);
void kiln_registry_destroy(kiln_registry_t **self_p);

/* The image's manifest for this machine's platform (an index is resolved
 * to its linux entry for this architecture): body (malloc'd, NUL-ended),
 * its digest. 0, or -1 with why. */
int kiln_registry_manifest(kiln_registry_t *self, const kiln_imageref_t *ref, char **body,
                           size_t *len, char digest[72], char *why, size_t cap);

/* Fetches a blob to path (written beside it and renamed into place only
 * when its digest matched). 0, or -1 with why. */
int kiln_registry_blob(kiln_registry_t *self, const kiln_imageref_t *ref, const char *digest,
                       uint64_t size, const char *path, char *why, size_t cap);

#endif
