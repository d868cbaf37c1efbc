/* keys.h: CURVE key pairs on disk.
 *
 * Every coordinator, worker and client has a CURVE key pair generated from
 * libsodium's CSPRNG. Keys are stored as Z85 text in the ZeroMQ certificate
 * layout so CZMQ tools can read them too:
 *
 *   NAME.pub   curve / public-key = "<40 chars>"           (shareable)
 *   NAME.key   curve / public-key = "...", secret-key = "..." (mode 0600)
 *
 * A file holding just the 40-character Z85 text on one line is also read as
 * a public key, so an operator can paste a key into a file.
 */
#ifndef KILN_KEYS_H
#define KILN_KEYS_H

#include <stdbool.h>

#define KILN_KEY_Z85_LEN 40
#define KILN_KEY_FILE_MAX 4096

typedef struct {
    char public_z85[KILN_KEY_Z85_LEN + 1];
    char secret_z85[KILN_KEY_Z85_LEN + 1];
    bool has_secret;
} kiln_keypair_t;

/* A fresh key pair. Returns 0 or -1 (libsodium failure). */
int kiln_keys_generate(kiln_keypair_t *out);
/* Writes dir/NAME.key (0600) and dir/NAME.pub. Refuses to overwrite an
 * existing NAME.key (KILN_EINVAL). */
int kiln_keys_write(const kiln_keypair_t *kp, const char *dir, const char *name);
/* Writes only the public half to `path` (0644). */
int kiln_keys_write_public(const kiln_keypair_t *kp, const char *path);
/* Reads a .key or .pub file. has_secret tells which it was. */
int kiln_keys_load(kiln_keypair_t *out, const char *path);
/* Decodes a Z85 public key into 32 bytes; -1 if malformed. */
int kiln_keys_decode(const char *z85, unsigned char out[32]);

#endif
