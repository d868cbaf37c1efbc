/* kv.h: one ordered key/value map, for environments and the pairs steps
 * write.
 *
 * Entries are "KEY=value" strings in insertion order, NULL-terminated so
 * that the array is an envp for execve as it stands; a hash index on the
 * keys makes setting a key that is there already replace it in place
 * (GitHub's rule for env and $GITHUB_OUTPUT alike: the later value wins)
 * without a walk through all of them. A map may borrow the strings of
 * another (kiln_kv_copy), so a step's environment starts from the worker's
 * own without copying a byte of it.
 *
 * Zero-initialise before first use (kiln_kv_t m = {0}); kiln_kv_free frees
 * and leaves it empty. Bounded: at most KILN_KV_MAX entries.
 */
#ifndef KILN_KV_H
#define KILN_KV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KILN_KV_MAX 4096

typedef struct {
    char **items;         /* "KEY=value", then NULL */
    bool *owned;          /* items[i] is the map's to free */
    size_t n, cap;
    uint32_t *index;      /* open addressing: item number + 1; 0 = free */
    size_t n_index;       /* a power of two, more than twice cap */
} kiln_kv_t;

/* Sets key to value (copied), replacing an earlier value of the same key
 * in its place. A key that is empty or holds '=' is refused (KILN_EINVAL):
 * it would read as another variable. -1 when out of memory, KILN_ETOOBIG
 * past KILN_KV_MAX. */
int kiln_kv_set(kiln_kv_t *self, const char *key, const char *value);
/* The same with the key given as key[0..klen). */
int kiln_kv_setn(kiln_kv_t *self, const char *key, size_t klen, const char *value, size_t vlen);
/* The value of key, or NULL. Borrowed. */
const char *kiln_kv_get(const kiln_kv_t *self, const char *key);
/* A map borrowing every entry of base (which must outlive it). */
int kiln_kv_copy(kiln_kv_t *self, const kiln_kv_t *base);
/* Entry i: its key (klen bytes, not terminated) and its value. */
const char *kiln_kv_key(const kiln_kv_t *self, size_t i, size_t *klen);
const char *kiln_kv_value(const kiln_kv_t *self, size_t i);
/* A copy of entry i's key, NUL-terminated, into out (cap bytes). */
void kiln_kv_key_copy(const kiln_kv_t *self, size_t i, char *out, size_t cap);
/* The NULL-terminated "KEY=value" array (for execve). Borrowed. */
char *const *kiln_kv_envp(kiln_kv_t *self);
/* Takes back the entries set after the first `keep` (that were new). */
void kiln_kv_truncate(kiln_kv_t *self, size_t keep);
void kiln_kv_free(kiln_kv_t *self);

#endif
