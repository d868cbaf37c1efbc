/* keys.c: generating, writing and reading CURVE key pairs (see keys.h). */
#include "common/keys.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "common/error.h"

int kiln_keys_generate(kiln_keypair_t *out)
{
    unsigned char pk[crypto_box_PUBLICKEYBYTES], sk[crypto_box_SECRETKEYBYTES];
    int rc = -1;
    memset(out, 0, sizeof *out);
    if (sodium_init() < 0) {
        kiln_error_set("keys: libsodium failed to initialise");
        goto cleanup;
    }
    if (crypto_box_keypair(pk, sk) != 0) {
        kiln_error_set("keys: key generation failed");
        goto cleanup;
    }
    if (!zmq_z85_encode(out->public_z85, pk, sizeof pk) ||
        !zmq_z85_encode(out->secret_z85, sk, sizeof sk)) {
        kiln_error_set("keys: Z85 encoding failed");
        goto cleanup;
    }
    out->has_secret = true;
    rc = 0;
cleanup:
    sodium_memzero(sk, sizeof sk);
    return rc;
}

static int s_write_file(const char *path, const char *text, mode_t mode, bool exclusive)
{
    int flags = O_WRONLY | O_CREAT | O_CLOEXEC | (exclusive ? O_EXCL : O_TRUNC);
    int fd = open(path, flags, mode);
    int rc = -1;
    if (fd == -1) {
        if (errno == EEXIST) {
            kiln_error_set("keys: %s exists already; not overwriting a key", path);
            return KILN_EINVAL;
        }
        kiln_error_errno("keys: cannot create %s", path);
        return -1;
    }
    size_t len = strlen(text);
    if (write(fd, text, len) != (ssize_t)len) {
        kiln_error_errno("keys: cannot write %s", path);
        goto cleanup;
    }
    rc = 0;
cleanup:
    close(fd);
    return rc;
}

int kiln_keys_write_public(const kiln_keypair_t *kp, const char *path)
{
    char text[256];
    snprintf(text, sizeof text,
             "#   Kiln CURVE public key (Z85)\n"
             "curve\n"
             "    public-key = \"%s\"\n",
             kp->public_z85);
    return s_write_file(path, text, 0644, false);
}

int kiln_keys_write(const kiln_keypair_t *kp, const char *dir, const char *name)
{
    char path[4096], text[512];
    int rc;
    if (!kp->has_secret) {
        kiln_error_set("keys: no secret key to write for %s", name);
        return KILN_EINVAL;
    }
    snprintf(text, sizeof text,
             "#   Kiln CURVE key pair (Z85): keep this file secret\n"
             "curve\n"
             "    public-key = \"%s\"\n"
             "    secret-key = \"%s\"\n",
             kp->public_z85, kp->secret_z85);
    snprintf(path, sizeof path, "%s/%s.key", dir, name);
    rc = s_write_file(path, text, 0600, true);
    sodium_memzero(text, sizeof text);
    if (rc != 0)
        return rc;
    snprintf(path, sizeof path, "%s/%s.pub", dir, name);
    return kiln_keys_write_public(kp, path);
}

/* Finds `name = "<40 chars>"` in text and copies the value. */
static int s_find_value(const char *text, const char *name, char out[KILN_KEY_Z85_LEN + 1])
{
    const char *p = text;
    size_t nlen = strlen(name);
    while ((p = strstr(p, name)) != NULL) {
        const char *q = p + nlen;
        while (*q == ' ' || *q == '\t')
            q++;
        if (*q == '=') {
            q++;
            while (*q == ' ' || *q == '\t')
                q++;
            if (*q == '"')
                q++;
            size_t n = strspn(q, "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                 ".-:+=^!/*?&<>()[]{}@%$#");
            if (n != KILN_KEY_Z85_LEN)
                return -1;
            memcpy(out, q, KILN_KEY_Z85_LEN);
            out[KILN_KEY_Z85_LEN] = '\0';
            return 0;
        }
        p = q;
    }
    return KILN_ENOTFOUND;
}

int kiln_keys_decode(const char *z85, unsigned char out[32])
{
    if (strlen(z85) != KILN_KEY_Z85_LEN || !zmq_z85_decode(out, z85))
        return -1;
    return 0;
}

int kiln_keys_load(kiln_keypair_t *out, const char *path)
{
    char text[KILN_KEY_FILE_MAX + 1];
    unsigned char raw[32];
    int rc = -1;
    FILE *f = NULL;
    memset(out, 0, sizeof *out);
    f = fopen(path, "re");
    if (!f) {
        kiln_error_errno("keys: cannot open %s", path);
        rc = errno == ENOENT ? KILN_ENOTFOUND : -1;
        goto cleanup;
    }
    size_t n = fread(text, 1, KILN_KEY_FILE_MAX, f);
    if (!feof(f)) {
        kiln_error_set("keys: %s is larger than %d bytes", path, KILN_KEY_FILE_MAX);
        rc = KILN_EINVAL;
        goto cleanup;
    }
    text[n] = '\0';
    if (s_find_value(text, "public-key", out->public_z85) != 0) {
        /* A bare Z85 line. */
        char *s = text;
        while (*s == ' ' || *s == '\t' || *s == '\n')
            s++;
        size_t len = strcspn(s, " \t\r\n");
        if (len != KILN_KEY_Z85_LEN) {
            kiln_error_set("keys: %s holds no CURVE public key", path);
            rc = KILN_EINVAL;
            goto cleanup;
        }
        memcpy(out->public_z85, s, KILN_KEY_Z85_LEN);
        out->public_z85[KILN_KEY_Z85_LEN] = '\0';
    }
    if (kiln_keys_decode(out->public_z85, raw) != 0) {
        kiln_error_set("keys: %s: malformed public key", path);
        rc = KILN_EINVAL;
        goto cleanup;
    }
    int s = s_find_value(text, "secret-key", out->secret_z85);
    if (s == 0) {
        if (kiln_keys_decode(out->secret_z85, raw) != 0) {
            kiln_error_set("keys: %s: malformed secret key", path);
            rc = KILN_EINVAL;
            goto cleanup;
        }
        out->has_secret = true;
    } else if (s != KILN_ENOTFOUND) {
        kiln_error_set("keys: %s: malformed secret key", path);
        rc = KILN_EINVAL;
        goto cleanup;
    }
    rc = 0;
cleanup:
    sodium_memzero(text, sizeof text);
    if (f)
        fclose(f);
    return rc;
}
