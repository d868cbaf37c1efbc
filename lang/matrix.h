/* matrix.h: a job's `strategy.matrix` expanded into its combinations.
 *
 * A matrix job is one job in the workflow and many jobs in the run: one per
 * combination of the matrix values. This module turns the matrix as written
 * (after expression evaluation, as JSON) into that list of combinations with
 * GitHub's rules ("Using a matrix for your jobs"):
 *
 *   - the cartesian product of every key's list, keys in the order written,
 *     the first key varying slowest;
 *   - `exclude` entries remove every combination they match (an entry may
 *     name only some keys; values compare deeply);
 *   - each `include` entry is added to every remaining product combination
 *     whose original values it would not change (keys that are not matrix
 *     keys are added, and may overwrite what an earlier include added); an
 *     entry that fits none becomes a combination of its own, after the
 *     product ones;
 *   - a matrix of only `include` entries yields exactly those.
 *
 * It also names the combinations as GitHub shows them ("build (ubuntu, 12)")
 * and gives each a stable job id suffix. It knows nothing about YAML, jobs or
 * scheduling; the pipeline calls it once per matrix job.
 *
 * Limits: at most KILN_MATRIX_MAX combinations per job, as on GitHub. The
 * size of the product is computed before anything is built, so a matrix of
 * millions of combinations fails at once rather than after allocating them.
 */
#ifndef KILN_MATRIX_H
#define KILN_MATRIX_H

#include <stddef.h>

#include <jansson.h>

#define KILN_MATRIX_MAX 256   /* combinations per job, as GitHub */
/* A product above KILN_MATRIX_MAX that has `exclude` entries is scanned
 * (without building anything) to count what the excludes leave, as GitHub
 * limits the jobs a matrix produces, not its product; a product above this
 * bound is refused without the scan. */
#define KILN_MATRIX_SCAN_MAX (64 * KILN_MATRIX_MAX)

typedef struct {
    json_t **combos;   /* each a JSON object: the matrix values of one combination (new refs) */
    size_t n;
} kiln_matrix_t;

/* Expands `matrix` (a JSON object as written under strategy.matrix, already
 * evaluated: values are arrays of scalars/objects, plus optional "include"
 * and "exclude" arrays of objects) into out (see the rules above). Each
 * combination's values are copies: combinations share nothing with `matrix`
 * or with each other. Keys in a combination: the matrix keys in matrix order,
 * then the keys added by include entries; a combination made from an include
 * entry alone has its matrix keys first, then its other keys, each in the
 * entry's order. job_id is only used in messages.
 *
 * Returns 0, and out owns the combinations (kiln_matrix_free); or on failure
 * a negative code with out left empty and the message set with
 * kiln_error_set and copied into err (when err is not NULL):
 *   KILN_EINVAL  matrix not an object; a key's value not an array (a string
 *                starting with "${{" is reported as an unevaluated
 *                expression); include/exclude not arrays of non-empty
 *                objects; an exclude key that is not a matrix key; no
 *                combinations at all (an empty list, everything excluded);
 *   KILN_ETOOBIG more than KILN_MATRIX_MAX combinations;
 *   -1           out of memory. */
int kiln_matrix_expand(kiln_matrix_t *out, const json_t *matrix, const char *job_id, char *err,
                       size_t errlen);
/* Releases the combinations and leaves self empty. Accepts NULL and an
 * already freed or empty matrix. */
void kiln_matrix_free(kiln_matrix_t *self);

/* GitHub's display name of a combination: "<name> (v1, v2, ...)" with the
 * combination's values in its key order (matrix keys first, then included
 * keys): strings raw, numbers without a trailing .0 (12, 12.5), booleans
 * true/false, objects and arrays as compact JSON. Empty strings and nulls are
 * left out, as GitHub does; a combination that is empty (or NULL) gives just
 * `name`. Returns a malloc'd string, or NULL when out of memory. */
char *kiln_matrix_name(const char *name, const json_t *combo);

/* A stable id for the combination at `index` (0-based, as in out->combos)
 * usable as a job id suffix: "<job_id>-<index + 1>", e.g. "build-1" for the
 * first. Returns a malloc'd string, or NULL when out of memory. */
char *kiln_matrix_id(const char *job_id, size_t index);

#endif
