/* imageref.h: container image references ([host[:port]/]repository
 * [:tag][@sha256:hex]) parsed with Docker's defaults and made canonical,
 * so a worker's store, its heartbeat and the coordinator's placement all
 * name an image the same way ("debian:12" is docker.io/library/debian:12).
 */
#ifndef KILN_IMAGEREF_H
#define KILN_IMAGEREF_H

#include <stddef.h>

/* An image reference: [host[:port]/]repository[:tag][@sha256:hex], with
 * Docker's defaults (docker.io, library/, latest). */
typedef struct {
    char host[256];      /* "docker.io" or "127.0.0.1:5000" */
    char repo[512];      /* "library/debian" */
    char tag[128];       /* "" when only a digest was given */
    char digest[72];     /* "sha256:..." or "" */
    char canonical[960]; /* host/repo:tag or host/repo@digest */
} kiln_imageref_t;

/* Parses text (a leading docker:// allowed) into out. 0, or -1 with why
 * (cap bytes) naming the reference. */
int kiln_imageref_parse(const char *text, kiln_imageref_t *out, char *why, size_t cap);

/* The name the worker's heartbeat and the scheduler know an image by: 20
 * hex digits of a hash of its canonical reference. */
void kiln_imageref_hash(const char *canonical, char hex[21]);

#endif
