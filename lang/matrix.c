/* matrix.c: strategy.matrix expanded into combinations (see matrix.h).
 *
 * The product is walked as a mixed-radix counter over the keys' lists (the
 * last key is the fastest digit), so a combination is a vector of indexes
 * until it survives the excludes; only survivors are built as JSON objects.
 * The size of the product is known from the lists' lengths alone, which is
 * what lets an oversized matrix fail before anything is allocated for it.
 *
 * Includes are decided in two passes, as GitHub does: first which entries
 * fit some product combination (that depends only on the matrix keys, which
 * includes never change), so the final count is known and checked against
 * the limit; then the entries are applied in order.
 *
 * Values compare by deep equality, numbers by value (12 == 12.0), so that a
 * YAML integer in an exclude matches the same number written as a float.
 */
#include "lang/matrix.h"

#include "common/error.h"

#include <assert.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One matrix key and its list of values (both borrowed from the matrix). */
typedef struct {
    const char *key;
    const json_t *values;
} vector_t;

/* Sets the message (kiln_error_set), copies it into err, returns code. */
__attribute__((format(printf, 4, 5)))
static int s_fail(char *err, size_t errlen, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    kiln_error_vset(fmt, ap);
    va_end(ap);
    if (err && errlen > 0)
        snprintf(err, errlen, "%s", kiln_error_last());
    return code;
}

/* A string the evaluator should have replaced: "${{ ... }}". */
static bool s_is_expression(const json_t *value)
{
    if (!json_is_string(value))
        return false;
    const char *s = json_string_value(value);
    s += strspn(s, " \t\r\n");
    return strncmp(s, "${{", 3) == 0;
}

/* Deep equality; numbers compare by value whatever their JSON type. */
static bool s_equal(const json_t *a, const json_t *b)
{
    if (json_is_number(a) && json_is_number(b)) {
        if (json_is_integer(a) && json_is_integer(b))
            return json_integer_value(a) == json_integer_value(b);
        return json_number_value(a) == json_number_value(b);
    }
    if (json_typeof(a) != json_typeof(b))
        return false;
    switch (json_typeof(a)) {
    case JSON_STRING:
        return json_string_length(a) == json_string_length(b)
               && memcmp(json_string_value(a), json_string_value(b), json_string_length(a)) == 0;
    case JSON_ARRAY:
        if (json_array_size(a) != json_array_size(b))
            return false;
        for (size_t i = 0; i < json_array_size(a); i++)
            if (!s_equal(json_array_get(a, i), json_array_get(b, i)))
                return false;
        return true;
    case JSON_OBJECT: {
        if (json_object_size(a) != json_object_size(b))
            return false;
        const char *key;
        json_t *value;
        json_object_foreach((json_t *)a, key, value) {
            const json_t *other = json_object_get(b, key);
            if (!other || !s_equal(value, other))
                return false;
        }
        return true;
    }
    default:   /* true, false, null: the type is the value */
        return true;
    }
}

/* Index of `key` among the matrix keys, or -1. */
static ptrdiff_t s_vector_index(const vector_t *vec, size_t n_vec, const char *key)
{
    for (size_t i = 0; i < n_vec; i++)
        if (strcmp(vec[i].key, key) == 0)
            return (ptrdiff_t)i;
    return -1;
}

/* Checks that `list` (the value of "include" or "exclude", named `what`) is
 * an array of non-empty objects. */
static int s_check_entries(const json_t *list, const char *what, const char *job_id, char *err,
                           size_t errlen)
{
    if (!json_is_array(list)) {
        if (s_is_expression(list))
            return s_fail(err, errlen, KILN_EINVAL,
                          "job '%s': matrix %s is an unevaluated expression", job_id, what);
        return s_fail(err, errlen, KILN_EINVAL, "job '%s': matrix %s is not a list of mappings",
                      job_id, what);
    }
    for (size_t i = 0; i < json_array_size(list); i++) {
        const json_t *entry = json_array_get(list, i);
        if (!json_is_object(entry))
            return s_fail(err, errlen, KILN_EINVAL,
                          "job '%s': matrix %s entry %zu is not a mapping", job_id, what, i + 1);
        if (json_object_size(entry) == 0)
            return s_fail(err, errlen, KILN_EINVAL, "job '%s': matrix %s entry %zu is empty",
                          job_id, what, i + 1);
    }
    return 0;
}

/* Advances the mixed-radix counter `digit` (last key fastest). */
static void s_next(size_t *digit, const vector_t *vec, size_t n_vec)
{
    for (size_t i = n_vec; i-- > 0;) {
        if (++digit[i] < json_array_size(vec[i].values))
            return;
        digit[i] = 0;
    }
}

/* Whether the combination at `digit` matches some exclude entry: every key
 * of the entry (all matrix keys, checked before) equal to the combination's
 * value. */
static bool s_excluded(const size_t *digit, const vector_t *vec, size_t n_vec,
                       const json_t *exclude)
{
    for (size_t e = 0; e < json_array_size(exclude); e++) {
        const char *key;
        json_t *value;
        bool match = true;
        json_object_foreach(json_array_get(exclude, e), key, value) {
            ptrdiff_t k = s_vector_index(vec, n_vec, key);
            assert(k >= 0);
            if (!s_equal(json_array_get(vec[k].values, digit[k]), value)) {
                match = false;
                break;
            }
        }
        if (match)
            return true;
    }
    return false;
}

/* Sets key to a copy of value in obj; -1 when out of memory. */
static int s_set_copy(json_t *obj, const char *key, const json_t *value)
{
    json_t *copy = json_deep_copy(value);
    if (!copy)
        return -1;
    return json_object_set_new(obj, key, copy) == 0 ? 0 : -1;
}

/* The product combination at `digit` as a new object, or NULL. */
static json_t *s_product_combo(const size_t *digit, const vector_t *vec, size_t n_vec)
{
    json_t *combo = json_object();
    if (!combo)
        return NULL;
    for (size_t i = 0; i < n_vec; i++) {
        if (s_set_copy(combo, vec[i].key, json_array_get(vec[i].values, digit[i])) != 0) {
            json_decref(combo);
            return NULL;
        }
    }
    return combo;
}

/* Whether include `entry` can be added to product combination `combo`:
 * none of its matrix keys would change an original value. */
static bool s_fits(const json_t *combo, const json_t *entry, const vector_t *vec, size_t n_vec)
{
    const char *key;
    json_t *value;
    json_object_foreach((json_t *)entry, key, value) {
        if (s_vector_index(vec, n_vec, key) < 0)
            continue;
        const json_t *have = json_object_get(combo, key);
        if (!have || !s_equal(have, value))
            return false;
    }
    return true;
}

/* Adds (or overwrites) the entry's non-matrix keys into combo. */
static int s_add_extras(json_t *combo, const json_t *entry, const vector_t *vec, size_t n_vec)
{
    const char *key;
    json_t *value;
    json_object_foreach((json_t *)entry, key, value) {
        if (s_vector_index(vec, n_vec, key) < 0 && s_set_copy(combo, key, value) != 0)
            return -1;
    }
    return 0;
}

/* An include entry that fits no product combination, as a combination of its
 * own: its matrix keys first, then the others (GitHub's order), or NULL. */
static json_t *s_include_combo(const json_t *entry, const vector_t *vec, size_t n_vec)
{
    json_t *combo = json_object();
    if (!combo)
        return NULL;
    for (int pass = 0; pass < 2; pass++) {
        const char *key;
        json_t *value;
        json_object_foreach((json_t *)entry, key, value) {
            bool is_matrix_key = s_vector_index(vec, n_vec, key) >= 0;
            if (is_matrix_key == (pass == 0) && s_set_copy(combo, key, value) != 0) {
                json_decref(combo);
                return NULL;
            }
        }
    }
    return combo;
}

int kiln_matrix_expand(kiln_matrix_t *out, const json_t *matrix, const char *job_id, char *err,
                       size_t errlen)
{
    assert(out);
    int rc = -1;
    vector_t *vec = NULL;
    size_t n_vec = 0;
    size_t *digit = NULL;
    bool *fits = NULL;
    json_t **combos = NULL;
    size_t n = 0;
    const json_t *include = NULL;
    const json_t *exclude = NULL;

    out->combos = NULL;
    out->n = 0;
    if (!job_id)
        job_id = "";
    if (err && errlen > 0)
        err[0] = '\0';

    if (!json_is_object(matrix)) {
        if (s_is_expression(matrix))
            rc = s_fail(err, errlen, KILN_EINVAL,
                        "job '%s': matrix is an unevaluated expression", job_id);
        else
            rc = s_fail(err, errlen, KILN_EINVAL, "job '%s': matrix is not a mapping", job_id);
        goto cleanup;
    }

    /* Shape: every key a list; include/exclude lists of mappings. */
    vec = calloc(json_object_size(matrix) + 1, sizeof *vec);
    if (!vec) {
        rc = s_fail(err, errlen, -1, "job '%s': out of memory expanding the matrix", job_id);
        goto cleanup;
    }
    const char *key;
    json_t *value;
    json_object_foreach((json_t *)matrix, key, value) {
        bool is_include = strcmp(key, "include") == 0;
        if (is_include || strcmp(key, "exclude") == 0) {
            rc = s_check_entries(value, key, job_id, err, errlen);
            if (rc != 0)
                goto cleanup;
            if (is_include)
                include = value;
            else
                exclude = value;
            continue;
        }
        if (!json_is_array(value)) {
            if (s_is_expression(value))
                rc = s_fail(err, errlen, KILN_EINVAL,
                            "job '%s': matrix value of '%s' is an unevaluated expression", job_id,
                            key);
            else
                rc = s_fail(err, errlen, KILN_EINVAL,
                            "job '%s': matrix value of '%s' is not a list", job_id, key);
            goto cleanup;
        }
        vec[n_vec].key = key;
        vec[n_vec].values = value;
        n_vec++;
    }
    /* An exclude key that is no matrix key could never match: a typo that
     * GitHub refuses too, rather than silently excluding nothing. */
    for (size_t e = 0; exclude && e < json_array_size(exclude); e++) {
        json_object_foreach(json_array_get(exclude, e), key, value) {
            if (s_vector_index(vec, n_vec, key) < 0) {
                rc = s_fail(err, errlen, KILN_EINVAL,
                            "job '%s': matrix exclude entry %zu: '%s' is not a matrix key", job_id,
                            e + 1, key);
                goto cleanup;
            }
        }
    }

    /* Size of the product, before building any of it. No keys (an
     * include-only matrix) means no product combinations, not one empty
     * one. */
    uint64_t product = n_vec > 0 ? 1 : 0;
    bool overflow = false;
    for (size_t i = 0; i < n_vec; i++)
        if (json_array_size(vec[i].values) == 0)
            product = 0;
    for (size_t i = 0; product > 0 && i < n_vec; i++) {
        if (__builtin_mul_overflow(product, (uint64_t)json_array_size(vec[i].values), &product)) {
            overflow = true;
            break;
        }
    }
    size_t n_exclude = exclude ? json_array_size(exclude) : 0;
    if (overflow) {
        rc = s_fail(err, errlen, KILN_ETOOBIG,
                    "matrix of job '%s' has more than %" PRIu64 " combinations; the limit is %d",
                    job_id, UINT64_MAX, KILN_MATRIX_MAX);
        goto cleanup;
    }
    if (product > KILN_MATRIX_MAX && (n_exclude == 0 || product > KILN_MATRIX_SCAN_MAX)) {
        rc = s_fail(err, errlen, KILN_ETOOBIG,
                    "matrix of job '%s' has %" PRIu64 " combinations; the limit is %d", job_id,
                    product, KILN_MATRIX_MAX);
        goto cleanup;
    }

    digit = calloc(n_vec + 1, sizeof *digit);
    if (!digit) {
        rc = s_fail(err, errlen, -1, "job '%s': out of memory expanding the matrix", job_id);
        goto cleanup;
    }
    /* Over the limit before excludes: count what they leave, building
     * nothing, since GitHub's limit is on the jobs produced. */
    if (product > KILN_MATRIX_MAX) {
        size_t left = 0;
        for (uint64_t p = 0; p < product; p++, s_next(digit, vec, n_vec))
            left += !s_excluded(digit, vec, n_vec, exclude);
        if (left > KILN_MATRIX_MAX) {
            rc = s_fail(err, errlen, KILN_ETOOBIG,
                        "matrix of job '%s' has %zu combinations; the limit is %d", job_id, left,
                        KILN_MATRIX_MAX);
            goto cleanup;
        }
        memset(digit, 0, (n_vec + 1) * sizeof *digit);
    }

    size_t n_include = include ? json_array_size(include) : 0;
    size_t cap = (size_t)(product < KILN_MATRIX_MAX ? product : KILN_MATRIX_MAX) + n_include;
    combos = calloc(cap + 1, sizeof *combos);
    fits = calloc(n_include + 1, sizeof *fits);
    if (!combos || !fits) {
        rc = s_fail(err, errlen, -1, "job '%s': out of memory expanding the matrix", job_id);
        goto cleanup;
    }
    for (uint64_t p = 0; p < product; p++, s_next(digit, vec, n_vec)) {
        if (n_exclude > 0 && s_excluded(digit, vec, n_vec, exclude))
            continue;
        assert(n < cap);
        combos[n] = s_product_combo(digit, vec, n_vec);
        if (!combos[n]) {
            rc = s_fail(err, errlen, -1, "job '%s': out of memory expanding the matrix", job_id);
            goto cleanup;
        }
        n++;
    }
    size_t n_product = n;

    /* Which includes fit a product combination decides the final count. */
    size_t total = n_product;
    for (size_t i = 0; i < n_include; i++) {
        const json_t *entry = json_array_get(include, i);
        for (size_t c = 0; c < n_product && !fits[i]; c++)
            fits[i] = s_fits(combos[c], entry, vec, n_vec);
        total += !fits[i];
    }
    if (total == 0) {
        rc = s_fail(err, errlen, KILN_EINVAL, "job '%s': matrix has no combinations", job_id);
        goto cleanup;
    }
    if (total > KILN_MATRIX_MAX) {
        rc = s_fail(err, errlen, KILN_ETOOBIG,
                    "matrix of job '%s' has %zu combinations; the limit is %d", job_id, total,
                    KILN_MATRIX_MAX);
        goto cleanup;
    }
    for (size_t i = 0; i < n_include; i++) {
        const json_t *entry = json_array_get(include, i);
        if (!fits[i]) {
            assert(n < cap);
            combos[n] = s_include_combo(entry, vec, n_vec);
            if (!combos[n]) {
                rc = s_fail(err, errlen, -1, "job '%s': out of memory expanding the matrix",
                            job_id);
                goto cleanup;
            }
            n++;
            continue;
        }
        for (size_t c = 0; c < n_product; c++) {
            if (s_fits(combos[c], entry, vec, n_vec)
                && s_add_extras(combos[c], entry, vec, n_vec) != 0) {
                rc = s_fail(err, errlen, -1, "job '%s': out of memory expanding the matrix",
                            job_id);
                goto cleanup;
            }
        }
    }

    out->combos = combos;
    out->n = n;
    combos = NULL;
    n = 0;
    rc = 0;

cleanup:
    for (size_t i = 0; i < n; i++)
        json_decref(combos[i]);
    free(combos);
    free(fits);
    free(digit);
    free(vec);
    return rc;
}

void kiln_matrix_free(kiln_matrix_t *self)
{
    if (!self)
        return;
    for (size_t i = 0; i < self->n; i++)
        json_decref(self->combos[i]);
    free(self->combos);
    self->combos = NULL;
    self->n = 0;
}

/* A growing string for kiln_matrix_name. */
typedef struct {
    char *s;
    size_t len;
    size_t cap;
} strbuf_t;

static int s_append(strbuf_t *b, const char *s, size_t len)
{
    if (b->len + len + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + len + 1)
            cap *= 2;
        char *grown = realloc(b->s, cap);
        if (!grown)
            return -1;
        b->s = grown;
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, len);
    b->len += len;
    b->s[b->len] = '\0';
    return 0;
}

char *kiln_matrix_name(const char *name, const json_t *combo)
{
    assert(name);
    strbuf_t b = {0};
    bool first = true;
    if (s_append(&b, name, strlen(name)) != 0)
        goto fail;
    if (json_is_object(combo)) {
        const char *key;
        json_t *value;
        json_object_foreach((json_t *)combo, key, value) {
            char num[64];
            const char *seg = NULL;
            size_t seg_len = 0;
            char *dumped = NULL;
            switch (json_typeof(value)) {
            case JSON_STRING:
                seg = json_string_value(value);
                seg_len = json_string_length(value);
                break;
            case JSON_INTEGER:
                seg_len = (size_t)snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT,
                                           json_integer_value(value));
                seg = num;
                break;
            case JSON_REAL:
                /* GitHub formats numbers with 15 significant digits: 12.5,
                 * and 12 for 12.0. */
                seg_len = (size_t)snprintf(num, sizeof num, "%.15g", json_real_value(value));
                seg = num;
                break;
            case JSON_TRUE:
                seg = "true";
                seg_len = 4;
                break;
            case JSON_FALSE:
                seg = "false";
                seg_len = 5;
                break;
            case JSON_OBJECT:
            case JSON_ARRAY:
                dumped = json_dumps(value, JSON_COMPACT);
                if (!dumped)
                    goto fail;
                seg = dumped;
                seg_len = strlen(dumped);
                break;
            default:   /* null: nothing to show, as on GitHub */
                break;
            }
            if (seg_len == 0) {
                free(dumped);
                continue;
            }
            int rc = s_append(&b, first ? " (" : ", ", 2);
            if (rc == 0)
                rc = s_append(&b, seg, seg_len);
            free(dumped);
            if (rc != 0)
                goto fail;
            first = false;
        }
    }
    if (!first && s_append(&b, ")", 1) != 0)
        goto fail;
    return b.s;

fail:
    free(b.s);
    return NULL;
}

char *kiln_matrix_id(const char *job_id, size_t index)
{
    assert(job_id);
    int len = snprintf(NULL, 0, "%s-%zu", job_id, index + 1);
    if (len < 0)
        return NULL;
    char *id = malloc((size_t)len + 1);
    if (id)
        snprintf(id, (size_t)len + 1, "%s-%zu", job_id, index + 1);
    return id;
}
