/* digest.h: SHA-256 for the farm's store (blobs are named by it, and
 * image layers will be), through OpenSSL's libcrypto.
 *
 * libsodium's SHA-256 is portable C, about 235 MB/s here; libcrypto uses
 * the CPU's SHA instructions, about 1.7 GB/s. A blob is hashed when it is
 * packed, when the coordinator takes it and whenever a worker reads its
 * copy, so the difference is most of a cache restore's own cost.
 */
#ifndef KILN_DIGEST_H
#define KILN_DIGEST_H

#include <stddef.h>

typedef struct kiln_sha256 kiln_sha256_t;

int kiln_sha256_new(kiln_sha256_t **out);
void kiln_sha256_destroy(kiln_sha256_t **self_p);
/* Starts over. */
int kiln_sha256_reset(kiln_sha256_t *self);
int kiln_sha256_update(kiln_sha256_t *self, const void *data, size_t len);
/* The digest as 64 lower-case hex digits; the state must be reset before
 * it is used again. */
int kiln_sha256_final(kiln_sha256_t *self, char hex[65]);
/* A file's digest as "sha256:<hex>". */
int kiln_sha256_file(const char *path, char digest[72]);

#endif
