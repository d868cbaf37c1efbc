/* digest.c: SHA-256 through libcrypto's EVP interface (see digest.h). */
#include "common/digest.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/error.h"

struct kiln_sha256 {
    EVP_MD_CTX *ctx;
};

int kiln_sha256_new(kiln_sha256_t **out)
{
    *out = NULL;
    kiln_sha256_t *self = calloc(1, sizeof *self);
    if (!self || !(self->ctx = EVP_MD_CTX_new()) || EVP_DigestInit_ex(self->ctx, EVP_sha256(), NULL) != 1) {
        kiln_error_set("sha256: cannot set up a digest");
        kiln_sha256_destroy(&self);
        return KILN_ERROR;
    }
    *out = self;
    return 0;
}

void kiln_sha256_destroy(kiln_sha256_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    EVP_MD_CTX_free((*self_p)->ctx);
    free(*self_p);
    *self_p = NULL;
}

int kiln_sha256_reset(kiln_sha256_t *self)
{
    if (EVP_DigestInit_ex(self->ctx, EVP_sha256(), NULL) != 1) {
        kiln_error_set("sha256: cannot start a digest");
        return KILN_ERROR;
    }
    return 0;
}

int kiln_sha256_update(kiln_sha256_t *self, const void *data, size_t len)
{
    if (len && EVP_DigestUpdate(self->ctx, data, len) != 1) {
        kiln_error_set("sha256: digest update failed");
        return KILN_ERROR;
    }
    return 0;
}

int kiln_sha256_final(kiln_sha256_t *self, char hex[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    static const char digits[] = "0123456789abcdef";
    if (EVP_DigestFinal_ex(self->ctx, md, &n) != 1 || n != 32) {
        kiln_error_set("sha256: digest failed");
        return KILN_ERROR;
    }
    for (unsigned i = 0; i < 32; i++) {
        hex[2 * i] = digits[md[i] >> 4];
        hex[2 * i + 1] = digits[md[i] & 15];
    }
    hex[64] = '\0';
    return 0;
}

int kiln_sha256_file(const char *path, char digest[72])
{
    static unsigned char buf[1 << 20];
    kiln_sha256_t *h = NULL;
    int rc = KILN_ERROR, fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        kiln_error_errno("cannot read %s", path);
        return KILN_ERROR;
    }
    if (kiln_sha256_new(&h) != 0)
        goto cleanup;
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0)
        if (kiln_sha256_update(h, buf, (size_t)n) != 0)
            goto cleanup;
    if (n < 0) {
        kiln_error_errno("cannot read %s", path);
        goto cleanup;
    }
    memcpy(digest, "sha256:", 7);
    rc = kiln_sha256_final(h, digest + 7);
cleanup:
    kiln_sha256_destroy(&h);
    close(fd);
    return rc;
}
