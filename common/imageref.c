/* imageref.c: container image references, Docker's way (see imageref.h). */
#include "common/imageref.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>

int kiln_imageref_parse(const char *text, kiln_imageref_t *out, char *why, size_t cap)
{
    memset(out, 0, sizeof *out);
    if (strncmp(text, "docker://", 9) == 0)
        text += 9;
    size_t n = strlen(text);
    if (n == 0 || n >= sizeof out->canonical - 32) {
        snprintf(why, cap, "image '%.200s': %s", text, n ? "too long" : "empty");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)text[i];
        if (!isalnum(c) && !strchr("._-/:@", c)) {
            snprintf(why, cap, "image '%.200s': character '%c' is not allowed in a reference",
                     text, c);
            return -1;
        }
    }
    char rest[960];
    snprintf(rest, sizeof rest, "%s", text);
    char *at = strchr(rest, '@');
    if (at) {
        *at = '\0';
        const char *d = at + 1;
        if (strncmp(d, "sha256:", 7) != 0 || strlen(d) != 71 ||
            strspn(d + 7, "0123456789abcdef") != 64) {
            snprintf(why, cap, "image '%.200s': a digest is sha256: and 64 hex digits", text);
            return -1;
        }
        snprintf(out->digest, sizeof out->digest, "%s", d);
    }
    /* The first part is a host when it looks like one (Docker's rule). */
    char *slash = strchr(rest, '/');
    const char *path = rest;
    if (slash) {
        *slash = '\0';
        if (strchr(rest, '.') || strchr(rest, ':') || strcmp(rest, "localhost") == 0) {
            snprintf(out->host, sizeof out->host, "%s", rest);
            path = slash + 1;
        } else {
            *slash = '/';
        }
    }
    if (!out->host[0])
        snprintf(out->host, sizeof out->host, "docker.io");
    char repo[512];
    snprintf(repo, sizeof repo, "%s", path);
    char *colon = strrchr(repo, ':');
    if (colon) {
        *colon = '\0';
        snprintf(out->tag, sizeof out->tag, "%s", colon + 1);
    } else if (!out->digest[0]) {
        snprintf(out->tag, sizeof out->tag, "latest");
    }
    if (!repo[0] || (colon && !out->tag[0]) || strstr(repo, "//") || repo[0] == '/' ||
        repo[strlen(repo) - 1] == '/') {
        snprintf(why, cap, "image '%.200s': not a repository name", text);
        return -1;
    }
    for (char *p = repo; *p; p++)
        if (isupper((unsigned char)*p)) {
            snprintf(why, cap, "image '%.200s': repository names are lower case", text);
            return -1;
        }
    if (strcmp(out->host, "docker.io") == 0 && !strchr(repo, '/'))
        snprintf(out->repo, sizeof out->repo, "library/%s", repo);
    else
        snprintf(out->repo, sizeof out->repo, "%s", repo);
    if (out->digest[0])
        snprintf(out->canonical, sizeof out->canonical, "%s/%s@%s", out->host, out->repo,
                 out->digest);
    else
        snprintf(out->canonical, sizeof out->canonical, "%s/%s:%s", out->host, out->repo,
                 out->tag);
    return 0;
}

void kiln_imageref_hash(const char *canonical, char hex[21])
{
    unsigned char d[10];
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, sizeof d);
    crypto_generichash_update(&st, (const unsigned char *)"image", 6);
    crypto_generichash_update(&st, (const unsigned char *)canonical, strlen(canonical));
    crypto_generichash_final(&st, d, sizeof d);
    sodium_bin2hex(hex, 21, d, sizeof d);
}
