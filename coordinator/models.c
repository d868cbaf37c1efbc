/* models.c: parsed workflows shared by the runs that submitted the same text.
 *
 * Models are found by a BLAKE2b digest of what decides the parse: the file
 * name (it is in every message), the text and the local files. The table is
 * chained over a fixed number of buckets; it holds at most one entry per
 * active run, and those are bounded by KILN_SERVER_MAX_RUNS.
 */
#include "coordinator/models.h"

#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "lang/parse.h"

#define S_BUCKETS 1024

struct kiln_model {
    kiln_models_t *owner;
    unsigned char digest[crypto_generichash_BYTES];
    kiln_workflow_t *wf;
    kiln_diags_t warnings;  /* the parse's, added again for every run that shares it */
    size_t refs;
    kiln_model_t *next;     /* in its bucket */
};

struct kiln_models {
    kiln_model_t *buckets[S_BUCKETS];
    size_t count;
};

int kiln_models_new(kiln_models_t **out)
{
    *out = calloc(1, sizeof **out);
    if (!*out) {
        kiln_error_set("out of memory");
        return -1;
    }
    return 0;
}

void kiln_models_destroy(kiln_models_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free(*self_p);
    *self_p = NULL;
}

static void s_hash_part(crypto_generichash_state *st, const void *data, size_t len)
{
    /* Each part is preceded by its length: "ab"+"c" and "a"+"bc" differ. */
    uint64_t n = len;
    crypto_generichash_update(st, (const unsigned char *)&n, sizeof n);
    crypto_generichash_update(st, data, len);
}

static int s_digest(const char *file, const char *text, size_t len, const json_t *files,
                    unsigned char out[crypto_generichash_BYTES])
{
    char *dump = NULL;
    if (files && json_object_size(files)) {
        dump = json_dumps(files, JSON_COMPACT | JSON_SORT_KEYS);
        if (!dump)
            return -1;
    }
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, crypto_generichash_BYTES);
    s_hash_part(&st, file, strlen(file));
    s_hash_part(&st, text, len);
    s_hash_part(&st, dump ? dump : "", dump ? strlen(dump) : 0);
    crypto_generichash_final(&st, out, crypto_generichash_BYTES);
    free(dump);
    return 0;
}

static size_t s_bucket(const unsigned char *digest)
{
    size_t h;
    memcpy(&h, digest, sizeof h);
    return h % S_BUCKETS;
}

static void s_warnings_copy(kiln_diags_t *to, const kiln_diags_t *from, size_t first)
{
    for (size_t i = first; i < from->n; i++)
        kiln_diags_add(to, from->items[i].severity, from->items[i].line, from->items[i].col, "%s",
                       from->items[i].message);
}

int kiln_models_parse(kiln_models_t *self, const char *file, const char *text, size_t len,
                      const json_t *files, kiln_diags_t *diags, kiln_model_t **out)
{
    unsigned char digest[crypto_generichash_BYTES];
    *out = NULL;
    if (s_digest(file, text, len, files, digest) != 0) {
        kiln_error_set("out of memory");
        return -1;
    }
    size_t b = s_bucket(digest);
    for (kiln_model_t *m = self->buckets[b]; m; m = m->next)
        if (memcmp(m->digest, digest, sizeof digest) == 0) {
            s_warnings_copy(diags, &m->warnings, 0);
            m->refs++;
            *out = m;
            return 0;
        }
    kiln_model_t *m = calloc(1, sizeof *m);
    if (!m) {
        kiln_error_set("out of memory");
        return -1;
    }
    kiln_loader_t loader;
    kiln_loader_json(&loader, files, true);
    size_t first = diags->n;
    int rc = kiln_workflow_parse(&m->wf, file, text, len, &loader, diags);
    if (rc != 0) {
        free(m);
        return rc;
    }
    kiln_diags_init(&m->warnings, file);
    s_warnings_copy(&m->warnings, diags, first);
    memcpy(m->digest, digest, sizeof digest);
    m->owner = self;
    m->refs = 1;
    m->next = self->buckets[b];
    self->buckets[b] = m;
    self->count++;
    *out = m;
    return 0;
}

const kiln_workflow_t *kiln_model_workflow(const kiln_model_t *model)
{
    return model->wf;
}

void kiln_model_release(kiln_model_t **model_p)
{
    kiln_model_t *m = model_p ? *model_p : NULL;
    if (!m)
        return;
    *model_p = NULL;
    if (--m->refs > 0)
        return;
    kiln_models_t *self = m->owner;
    kiln_model_t **at = &self->buckets[s_bucket(m->digest)];
    while (*at != m)
        at = &(*at)->next;
    *at = m->next;
    self->count--;
    kiln_workflow_destroy(&m->wf);
    kiln_diags_free(&m->warnings);
    free(m);
}

size_t kiln_models_count(const kiln_models_t *self)
{
    return self->count;
}
