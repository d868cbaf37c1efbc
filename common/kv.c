/* kv.c: the ordered key/value map (see kv.h). */
#include "common/kv.h"

#include <stdlib.h>
#include <string.h>

#include "common/error.h"

static uint32_t s_hash(const char *key, size_t klen)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < klen; i++)
        h = (h ^ (unsigned char)key[i]) * 16777619u;
    return h;
}

/* The index slot of key: the one holding it, or the free one it would go to. */
static size_t s_slot(const kiln_kv_t *self, const char *key, size_t klen)
{
    size_t mask = self->n_index - 1;
    for (size_t pos = s_hash(key, klen) & mask;; pos = (pos + 1) & mask) {
        uint32_t at = self->index[pos];
        if (at == 0)
            return pos;
        const char *item = self->items[at - 1];
        if (strncmp(item, key, klen) == 0 && item[klen] == '=')
            return pos;
    }
}

static size_t s_klen(const char *item)
{
    return (size_t)(strchr(item, '=') - item);
}

static void s_reindex(kiln_kv_t *self)
{
    memset(self->index, 0, self->n_index * sizeof *self->index);
    for (size_t i = 0; i < self->n; i++)
        self->index[s_slot(self, self->items[i], s_klen(self->items[i]))] = (uint32_t)i + 1;
}

static int s_grow(kiln_kv_t *self)
{
    size_t cap = self->cap ? self->cap * 2 : 32;
    char **items = realloc(self->items, (cap + 1) * sizeof *items);
    if (items)
        self->items = items;
    bool *owned = items ? realloc(self->owned, cap * sizeof *owned) : NULL;
    if (owned)
        self->owned = owned;
    uint32_t *index = owned ? calloc(cap * 4, sizeof *index) : NULL;
    if (!index) {
        kiln_error_set("out of memory for a key/value map");
        return -1;
    }
    free(self->index);
    self->index = index;
    self->n_index = cap * 4;
    self->cap = cap;
    s_reindex(self);
    return 0;
}

/* Puts kv ("KEY=value", key klen bytes long) in. owned: kv is the map's to
 * free (also on failure). */
static int s_put(kiln_kv_t *self, char *kv, size_t klen, bool owned)
{
    if (self->n == self->cap && self->n < KILN_KV_MAX && s_grow(self) != 0) {
        if (owned)
            free(kv);
        return -1;
    }
    size_t pos = self->cap ? s_slot(self, kv, klen) : 0;
    if (self->cap && self->index[pos]) {
        size_t i = self->index[pos] - 1;
        if (self->owned[i])
            free(self->items[i]);
        self->items[i] = kv;
        self->owned[i] = owned;
        return 0;
    }
    if (self->n >= KILN_KV_MAX) {
        if (owned)
            free(kv);
        kiln_error_set("more than %d entries", KILN_KV_MAX);
        return KILN_ETOOBIG;
    }
    self->items[self->n] = kv;
    self->owned[self->n] = owned;
    self->index[pos] = (uint32_t)++self->n;
    self->items[self->n] = NULL;
    return 0;
}

int kiln_kv_setn(kiln_kv_t *self, const char *key, size_t klen, const char *value, size_t vlen)
{
    if (klen == 0 || memchr(key, '=', klen) || memchr(key, '\0', klen)) {
        kiln_error_set("invalid name '%.*s'", (int)(klen > 80 ? 80 : klen), key);
        return KILN_EINVAL;
    }
    char *kv = malloc(klen + vlen + 2);
    if (!kv) {
        kiln_error_set("out of memory for a key/value map");
        return -1;
    }
    memcpy(kv, key, klen);
    kv[klen] = '=';
    memcpy(kv + klen + 1, value, vlen);
    kv[klen + 1 + vlen] = '\0';
    return s_put(self, kv, klen, true);
}

int kiln_kv_set(kiln_kv_t *self, const char *key, const char *value)
{
    return kiln_kv_setn(self, key, strlen(key), value, strlen(value));
}

const char *kiln_kv_get(const kiln_kv_t *self, const char *key)
{
    if (!self->cap)
        return NULL;
    size_t klen = strlen(key);
    uint32_t at = self->index[s_slot(self, key, klen)];
    return at ? self->items[at - 1] + klen + 1 : NULL;
}

int kiln_kv_copy(kiln_kv_t *self, const kiln_kv_t *base)
{
    memset(self, 0, sizeof *self);
    for (size_t i = 0; i < base->n; i++)
        if (s_put(self, base->items[i], s_klen(base->items[i]), false) != 0)
            return -1;
    if (self->cap == 0 && s_grow(self) != 0)
        return -1;
    self->items[self->n] = NULL;
    return 0;
}

const char *kiln_kv_key(const kiln_kv_t *self, size_t i, size_t *klen)
{
    *klen = s_klen(self->items[i]);
    return self->items[i];
}

const char *kiln_kv_value(const kiln_kv_t *self, size_t i)
{
    return self->items[i] + s_klen(self->items[i]) + 1;
}

void kiln_kv_key_copy(const kiln_kv_t *self, size_t i, char *out, size_t cap)
{
    size_t klen = s_klen(self->items[i]);
    if (cap == 0)
        return;
    if (klen >= cap)
        klen = cap - 1;
    memcpy(out, self->items[i], klen);
    out[klen] = '\0';
}

char *const *kiln_kv_envp(kiln_kv_t *self)
{
    if (self->cap == 0 && s_grow(self) != 0)
        return NULL;
    self->items[self->n] = NULL;
    return self->items;
}

void kiln_kv_truncate(kiln_kv_t *self, size_t keep)
{
    if (keep >= self->n)
        return;
    for (size_t i = keep; i < self->n; i++)
        if (self->owned[i])
            free(self->items[i]);
    self->n = keep;
    self->items[self->n] = NULL;
    s_reindex(self);
}

void kiln_kv_free(kiln_kv_t *self)
{
    if (!self)
        return;
    for (size_t i = 0; i < self->n; i++)
        if (self->owned[i])
            free(self->items[i]);
    free(self->items);
    free(self->owned);
    free(self->index);
    memset(self, 0, sizeof *self);
}
