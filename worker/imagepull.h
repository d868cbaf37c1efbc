/* imagepull.h: pulling an image into the worker's store for the native
 * runtime (kiln-image-pull; kiln-image runs it when an image is not held,
 * or --pull always asks). */
#ifndef KILN_IMAGEPULL_H
#define KILN_IMAGEPULL_H

#include <stddef.h>
#include <stdio.h>

#include "worker/image.h"

/* Pulls image (a reference) into opts->store, fetching what the store
 * lacks, building its roots and writing its record; an image whose
 * manifest is the one held is "up to date". Progress and figures go to
 * log. 0, or -1 with why. */
int kiln_image_pull(const kiln_image_opts_t *opts, const char *image, FILE *log, char *why,
                    size_t cap);

#endif
