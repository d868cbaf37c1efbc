/* registry.c: the registry client behind the native container runtime
 * (see registry.h). One easy handle per pull; a bearer token, once a
 * registry's 401 named where to get one, is kept for the rest of the pull.
 * Bodies are bounded: a manifest or token past 4 MiB, a blob past its
 * declared size, is an error rather than a buffer that grows. */
#include "worker/registry.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <sodium.h>

#include "common/digest.h"

#define S_BODY_MAX (4u << 20)

struct kiln_registry {
    CURL *curl;
    json_t *auths;
    char insecure[1024];
    char mirror[512];
    char token[8192];      /* "Authorization: Bearer ..." once known */
    char token_host[256];  /* the registry the token is for */
    char header_auth[1024]; /* the last 401's WWW-Authenticate */
};

/* What a transfer writes to: a bounded buffer, or a file with its hash. */
typedef struct {
    char *buf;
    size_t len, max;
    FILE *file;
    const char *path; /* the file's, for its errors */
    int err;          /* errno of a failed write */
    kiln_sha256_t *sha;
    bool over;
} s_sink_t;

static size_t s_write(char *data, size_t size, size_t n, void *arg)
{
    s_sink_t *s = arg;
    size_t len = size * n;
    if (s->len + len > s->max) {
        s->over = true;
        return 0;
    }
    if (s->file) {
        if (fwrite(data, 1, len, s->file) != len || fflush(s->file) != 0) {
            s->err = errno ? errno : EIO;
            return 0;
        }
        if (kiln_sha256_update(s->sha, data, len) != 0)
            return 0;
    } else {
        char *grown = realloc(s->buf, s->len + len + 1);
        if (!grown)
            return 0;
        s->buf = grown;
        memcpy(s->buf + s->len, data, len);
        s->buf[s->len + len] = '\0';
    }
    s->len += len;
    return len;
}

static size_t s_header(char *data, size_t size, size_t n, void *arg)
{
    kiln_registry_t *self = arg;
    size_t len = size * n;
    static const char name[] = "www-authenticate:";
    if (len > sizeof name - 1 && strncasecmp(data, name, sizeof name - 1) == 0) {
        size_t skip = sizeof name - 1;
        while (skip < len && data[skip] == ' ')
            skip++;
        size_t keep = len - skip;
        while (keep && (data[skip + keep - 1] == '\r' || data[skip + keep - 1] == '\n'))
            keep--;
        if (keep >= sizeof self->header_auth)
            keep = sizeof self->header_auth - 1;
        memcpy(self->header_auth, data + skip, keep);
        self->header_auth[keep] = '\0';
    }
    return len;
}

int kiln_registry_new(kiln_registry_t **out, const kiln_registry_opts_t *opts, char *why,
                      size_t cap)
{
    *out = NULL;
    kiln_registry_t *self = calloc(1, sizeof *self);
    if (!self || !(self->curl = curl_easy_init())) {
        snprintf(why, cap, "cannot start libcurl");
        free(self);
        return -1;
    }
    if (opts->auth_file && opts->auth_file[0]) {
        json_error_t je;
        self->auths = json_load_file(opts->auth_file, 0, &je);
        if (!self->auths || !json_is_object(json_object_get(self->auths, "auths"))) {
            snprintf(why, cap, "registry credentials %s:%d: %s", opts->auth_file, je.line,
                     self->auths ? "no \"auths\" object" : je.text);
            kiln_registry_destroy(&self);
            return -1;
        }
    }
    snprintf(self->insecure, sizeof self->insecure, "%s", opts->insecure ? opts->insecure : "");
    snprintf(self->mirror, sizeof self->mirror, "%s", opts->mirror ? opts->mirror : "");
    *out = self;
    return 0;
}

void kiln_registry_destroy(kiln_registry_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    kiln_registry_t *self = *self_p;
    if (self->curl)
        curl_easy_cleanup(self->curl);
    json_decref(self->auths);
    sodium_memzero(self->token, sizeof self->token);
    free(self);
    *self_p = NULL;
}

static bool s_plain_http(const kiln_registry_t *self, const char *host)
{
    char name[256];
    snprintf(name, sizeof name, "%s", host);
    char *colon = strrchr(name, ':');
    if (colon)
        *colon = '\0';
    if (strcmp(name, "localhost") == 0 || strncmp(name, "127.", 4) == 0)
        return true;
    for (const char *p = self->insecure; *p;) {
        size_t n = strcspn(p, ",");
        if (n == strlen(host) && strncmp(p, host, n) == 0)
            return true;
        p += n + (p[n] == ',');
    }
    return false;
}

/* The mirror for host in the list ("[HOST=]URL,...", HOST docker.io when
 * not given) into out; false when it has none. */
static bool s_mirror(const kiln_registry_t *self, const char *host, char *out, size_t cap)
{
    for (const char *p = self->mirror; *p;) {
        size_t n = strcspn(p, ",");
        const char *eq = memchr(p, '=', n);
        const char *url = eq ? eq + 1 : p;
        size_t hl = eq ? (size_t)(eq - p) : 9;
        const char *h = eq ? p : "docker.io";
        if (hl == strlen(host) && strncmp(h, host, hl) == 0) {
            snprintf(out, cap, "%.*s", (int)(n - (size_t)(url - p)), url);
            return true;
        }
        p += n + (p[n] == ',');
    }
    return false;
}

/* The base URL for a registry: its mirror when one is set. */
static void s_base(const kiln_registry_t *self, const char *host, char *out, size_t cap)
{
    if (s_mirror(self, host, out, cap))
        ;
    else if (strcmp(host, "docker.io") == 0)
        snprintf(out, cap, "https://registry-1.docker.io");
    else
        snprintf(out, cap, "%s://%s", s_plain_http(self, host) ? "http" : "https", host);
    size_t n = strlen(out);
    while (n && out[n - 1] == '/')
        out[--n] = '\0';
}

/* "user:pass" for host from the auths file, or "" (into out, cap bytes). */
static void s_userpass(const kiln_registry_t *self, const char *host, char *out, size_t cap)
{
    out[0] = '\0';
    char url[512];
    if (s_mirror(self, host, url, sizeof url))
        return; /* a host's credentials are for it, not for its mirror */
    json_t *auths = json_object_get(self->auths, "auths");
    json_t *e = json_object_get(auths, host);
    if (!e && strcmp(host, "docker.io") == 0)
        e = json_object_get(auths, "https://index.docker.io/v1/");
    if (!e)
        return;
    const char *b64 = json_string_value(json_object_get(e, "auth"));
    const char *user = json_string_value(json_object_get(e, "username"));
    const char *pass = json_string_value(json_object_get(e, "password"));
    if (b64) {
        size_t len = 0;
        if (sodium_base642bin((unsigned char *)out, cap - 1, b64, strlen(b64), NULL, &len, NULL,
                              sodium_base64_VARIANT_ORIGINAL) != 0)
            len = 0;
        out[len] = '\0';
    } else if (user && pass) {
        snprintf(out, cap, "%s:%s", user, pass);
    }
}

/* A parameter of a WWW-Authenticate challenge: name="value". */
static void s_param(const char *challenge, const char *name, char *out, size_t cap)
{
    out[0] = '\0';
    size_t nl = strlen(name);
    for (const char *p = challenge; (p = strstr(p, name)) != NULL; p += nl) {
        if ((p != challenge && p[-1] != ' ' && p[-1] != ',') || p[nl] != '=' || p[nl + 1] != '"')
            continue;
        const char *v = p + nl + 2;
        const char *end = strchr(v, '"');
        if (!end)
            return;
        snprintf(out, cap, "%.*s", (int)(end - v), v);
        return;
    }
}

static void s_common(kiln_registry_t *self)
{
    CURL *c = self->curl;
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, 5L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 30L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 60L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "kiln-image");
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, s_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, self);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, s_write);
}

/* Gets a bearer token for the last challenge. 0, or -1 with why. */
static int s_token(kiln_registry_t *self, const kiln_imageref_t *ref, char *why, size_t cap)
{
    char realm[512], service[256], scope[600];
    s_param(self->header_auth, "realm", realm, sizeof realm);
    s_param(self->header_auth, "service", service, sizeof service);
    s_param(self->header_auth, "scope", scope, sizeof scope);
    if (!scope[0])
        snprintf(scope, sizeof scope, "repository:%s:pull", ref->repo);
    if (strncmp(realm, "https://", 8) != 0 && strncmp(realm, "http://", 7) != 0) {
        snprintf(why, cap, "registry %s: its challenge names no token service", ref->host);
        return -1;
    }
    char *es = curl_easy_escape(self->curl, service, 0);
    char *ec = curl_easy_escape(self->curl, scope, 0);
    char url[2048];
    snprintf(url, sizeof url, "%s%sservice=%s&scope=%s", realm, strchr(realm, '?') ? "&" : "?",
             es ? es : "", ec ? ec : "");
    curl_free(es);
    curl_free(ec);
    s_common(self);
    s_sink_t sink = {.max = S_BODY_MAX};
    char userpass[512];
    s_userpass(self, ref->host, userpass, sizeof userpass);
    curl_easy_setopt(self->curl, CURLOPT_URL, url);
    curl_easy_setopt(self->curl, CURLOPT_WRITEDATA, &sink);
    if (userpass[0]) {
        curl_easy_setopt(self->curl, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(self->curl, CURLOPT_USERPWD, userpass);
    }
    CURLcode cc = curl_easy_perform(self->curl);
    sodium_memzero(userpass, sizeof userpass);
    curl_easy_setopt(self->curl, CURLOPT_USERPWD, NULL);
    long status = 0;
    curl_easy_getinfo(self->curl, CURLINFO_RESPONSE_CODE, &status);
    int rc = -1;
    json_t *doc = NULL;
    if (cc != CURLE_OK || status != 200) {
        snprintf(why, cap, "registry %s: token service: %s", ref->host,
                 cc != CURLE_OK ? curl_easy_strerror(cc)
                 : status == 401 || status == 403 ? "credentials refused"
                                                  : "unexpected answer");
        goto cleanup;
    }
    doc = json_loads(sink.buf ? sink.buf : "", 0, NULL);
    const char *tok = json_string_value(json_object_get(doc, "token"));
    if (!tok)
        tok = json_string_value(json_object_get(doc, "access_token"));
    if (!tok || strlen(tok) + 32 > sizeof self->token) {
        snprintf(why, cap, "registry %s: the token service gave no usable token", ref->host);
        goto cleanup;
    }
    snprintf(self->token, sizeof self->token, "Authorization: Bearer %s", tok);
    snprintf(self->token_host, sizeof self->token_host, "%s", ref->host);
    rc = 0;
cleanup:
    json_decref(doc);
    if (sink.buf)
        sodium_memzero(sink.buf, sink.len);
    free(sink.buf);
    return rc;
}

/* One GET of path on ref's registry into sink, authenticating once when
 * challenged. status: the HTTP status. 0, or -1 with why. */
static int s_get(kiln_registry_t *self, const kiln_imageref_t *ref, const char *path,
                 const char *accept, s_sink_t *sink, long *status, char *why, size_t cap)
{
    char base[600], url[2048];
    s_base(self, ref->host, base, sizeof base);
    snprintf(url, sizeof url, "%s/v2/%s", base, path);
    for (int round = 0; round < 2; round++) {
        s_common(self);
        struct curl_slist *h = NULL;
        if (accept)
            h = curl_slist_append(h, accept);
        char userpass[512] = "";
        if (self->token[0] && strcmp(self->token_host, ref->host) == 0)
            h = curl_slist_append(h, self->token);
        else if (round == 1)
            s_userpass(self, ref->host, userpass, sizeof userpass);
        curl_easy_setopt(self->curl, CURLOPT_URL, url);
        curl_easy_setopt(self->curl, CURLOPT_HTTPHEADER, h);
        curl_easy_setopt(self->curl, CURLOPT_WRITEDATA, sink);
        if (userpass[0]) {
            curl_easy_setopt(self->curl, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
            curl_easy_setopt(self->curl, CURLOPT_USERPWD, userpass);
        }
        self->header_auth[0] = '\0';
        CURLcode cc = curl_easy_perform(self->curl);
        sodium_memzero(userpass, sizeof userpass);
        curl_easy_setopt(self->curl, CURLOPT_USERPWD, NULL);
        curl_easy_setopt(self->curl, CURLOPT_HTTPHEADER, NULL);
        curl_slist_free_all(h);
        curl_easy_getinfo(self->curl, CURLINFO_RESPONSE_CODE, status);
        if (cc == CURLE_WRITE_ERROR && sink->err) {
            snprintf(why, cap, "cannot write %s: %s", sink->path ? sink->path : "a download",
                     strerror(sink->err));
            return -1;
        }
        if (cc != CURLE_OK && !(cc == CURLE_WRITE_ERROR && sink->over)) {
            snprintf(why, cap, "registry %s: %s", ref->host, curl_easy_strerror(cc));
            return -1;
        }
        if (sink->over) {
            snprintf(why, cap, "registry %s: %s is larger than %zu bytes", ref->host, path,
                     sink->max);
            return -1;
        }
        if (*status != 401 || round == 1)
            return 0;
        /* Challenged: a bearer token, or basic credentials on the retry. */
        if (strncasecmp(self->header_auth, "Bearer", 6) == 0) {
            if (s_token(self, ref, why, cap) != 0)
                return -1;
        } else {
            char up[512];
            s_userpass(self, ref->host, up, sizeof up);
            bool have = up[0] != '\0';
            sodium_memzero(up, sizeof up);
            if (!have)
                return 0;
        }
        free(sink->buf);
        sink->buf = NULL;
        sink->len = 0;
        if (sink->file && (fflush(sink->file) != 0 || ftruncate(fileno(sink->file), 0) != 0 ||
                           fseek(sink->file, 0, SEEK_SET) != 0 ||
                           kiln_sha256_reset(sink->sha) != 0)) {
            snprintf(why, cap, "cannot rewind a download: %s", strerror(errno));
            return -1;
        }
    }
    return 0;
}

static const char *s_arch(void)
{
    static struct utsname u;
    if (uname(&u) != 0)
        return "amd64";
    if (strcmp(u.machine, "x86_64") == 0)
        return "amd64";
    if (strcmp(u.machine, "aarch64") == 0)
        return "arm64";
    if (strncmp(u.machine, "arm", 3) == 0)
        return "arm";
    return u.machine;
}

static int s_status_why(const kiln_imageref_t *ref, const char *what, long status, char *why,
                        size_t cap)
{
    snprintf(why, cap, "registry %s: %s: %s (HTTP %ld)", ref->host, what,
             status == 404   ? "not found"
             : status == 401 ? "authentication required (no or refused credentials)"
             : status == 403 ? "access denied"
                             : "unexpected answer",
             status);
    return -1;
}

/* sha256 of a buffer, "sha256:<hex>". */
static int s_digest_of(const char *buf, size_t len, char out[72])
{
    kiln_sha256_t *sha = NULL;
    char hex[65];
    int rc = -1;
    if (kiln_sha256_new(&sha) == 0 && kiln_sha256_update(sha, buf, len) == 0 &&
        kiln_sha256_final(sha, hex) == 0) {
        snprintf(out, 72, "sha256:%s", hex);
        rc = 0;
    }
    kiln_sha256_destroy(&sha);
    return rc;
}

#define S_ACCEPT                                                                                  \
    "Accept: application/vnd.oci.image.index.v1+json, "                                           \
    "application/vnd.docker.distribution.manifest.list.v2+json, "                                 \
    "application/vnd.oci.image.manifest.v1+json, "                                                \
    "application/vnd.docker.distribution.manifest.v2+json"

int kiln_registry_manifest(kiln_registry_t *self, const kiln_imageref_t *ref, char **body,
                           size_t *len, char digest[72], char *why, size_t cap)
{
    *body = NULL;
    *len = 0;
    char want[72];
    snprintf(want, sizeof want, "%s", ref->digest);
    const char *name = ref->digest[0] ? ref->digest : ref->tag;
    json_t *doc = NULL;
    int rc = -1;
    for (int depth = 0; depth < 2; depth++) {
        char path[800];
        snprintf(path, sizeof path, "%s/manifests/%s", ref->repo, name);
        s_sink_t sink = {.max = S_BODY_MAX};
        long status = 0;
        if (s_get(self, ref, path, S_ACCEPT, &sink, &status, why, cap) != 0) {
            free(sink.buf);
            goto cleanup;
        }
        if (status != 200) {
            free(sink.buf);
            char what[700];
            snprintf(what, sizeof what, "manifest %s", name);
            s_status_why(ref, what, status, why, cap);
            goto cleanup;
        }
        if (!sink.buf || s_digest_of(sink.buf, sink.len, digest) != 0) {
            free(sink.buf);
            snprintf(why, cap, "registry %s: empty manifest for %s", ref->host, name);
            goto cleanup;
        }
        if (want[0] && strcmp(want, digest) != 0) {
            free(sink.buf);
            snprintf(why, cap,
                     "registry %s: the manifest served for %s has the digest %s: refused",
                     ref->host, want, digest);
            goto cleanup;
        }
        json_decref(doc);
        doc = json_loadb(sink.buf, sink.len, 0, NULL);
        json_t *list = json_object_get(doc, "manifests");
        if (!json_is_array(list)) {
            if (!json_is_array(json_object_get(doc, "layers"))) {
                free(sink.buf);
                snprintf(why, cap, "registry %s: %s is not an image manifest", ref->host, name);
                goto cleanup;
            }
            *body = sink.buf;
            *len = sink.len;
            rc = 0;
            goto cleanup;
        }
        free(sink.buf);
        /* An index: this machine's platform, by digest (verified above on
         * the next round). */
        size_t i;
        json_t *m;
        const char *pick = NULL;
        json_array_foreach(list, i, m) {
            json_t *p = json_object_get(m, "platform");
            if (strcmp(json_string_value(json_object_get(p, "os")) ?: "", "linux") == 0 &&
                strcmp(json_string_value(json_object_get(p, "architecture")) ?: "", s_arch()) ==
                    0) {
                pick = json_string_value(json_object_get(m, "digest"));
                break;
            }
        }
        if (!pick || strlen(pick) >= sizeof want) {
            snprintf(why, cap, "registry %s: %s has no image for linux/%s", ref->host, name,
                     s_arch());
            goto cleanup;
        }
        snprintf(want, sizeof want, "%s", pick);
        name = want;
    }
    snprintf(why, cap, "registry %s: an index names another index", ref->host);
cleanup:
    json_decref(doc);
    return rc;
}

int kiln_registry_blob(kiln_registry_t *self, const kiln_imageref_t *ref, const char *digest,
                       uint64_t size, const char *path, char *why, size_t cap)
{
    if (strncmp(digest, "sha256:", 7) != 0 || strlen(digest) != 71 ||
        strspn(digest + 7, "0123456789abcdef") != 64) {
        snprintf(why, cap, "registry %s: blob digest '%.80s' is not sha256", ref->host, digest);
        return -1;
    }
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.part-%d", path, (int)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
    s_sink_t sink = {.max = (size_t)size, .path = tmp};
    int rc = -1;
    if (fd < 0 || !(sink.file = fdopen(fd, "w"))) {
        snprintf(why, cap, "cannot write %s: %s", tmp, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    if (kiln_sha256_new(&sink.sha) != 0) {
        snprintf(why, cap, "cannot hash a download");
        goto cleanup;
    }
    char rel[800];
    snprintf(rel, sizeof rel, "%s/blobs/%s", ref->repo, digest);
    long status = 0;
    if (s_get(self, ref, rel, NULL, &sink, &status, why, cap) != 0)
        goto cleanup;
    if (status != 200) {
        char what[120];
        snprintf(what, sizeof what, "blob %.71s", digest);
        s_status_why(ref, what, status, why, cap);
        goto cleanup;
    }
    char hex[65];
    if (kiln_sha256_final(sink.sha, hex) != 0) {
        snprintf(why, cap, "cannot hash a download");
        goto cleanup;
    }
    if (strcmp(hex, digest + 7) != 0 || sink.len != size) {
        snprintf(why, cap,
                 "registry %s: blob %s: the bytes served hash to sha256:%s (%zu of %llu "
                 "bytes): refused",
                 ref->host, digest, hex, sink.len, (unsigned long long)size);
        goto cleanup;
    }
    if (fflush(sink.file) != 0 || fsync(fileno(sink.file)) != 0) {
        snprintf(why, cap, "cannot write %s: %s", tmp, strerror(errno));
        goto cleanup;
    }
    if (fclose(sink.file) != 0) {
        sink.file = NULL;
        snprintf(why, cap, "cannot write %s: %s", tmp, strerror(errno));
        goto cleanup;
    }
    sink.file = NULL;
    if (rename(tmp, path) != 0) {
        snprintf(why, cap, "cannot store %s: %s", path, strerror(errno));
        goto cleanup;
    }
    rc = 0;
cleanup:
    if (sink.file)
        fclose(sink.file);
    if (rc != 0)
        unlink(tmp);
    kiln_sha256_destroy(&sink.sha);
    return rc;
}
