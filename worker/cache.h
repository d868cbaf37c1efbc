/* cache.h: actions/cache (and its restore and save halves) built in, on
 * the worker's own cache (kiln-checkout with KILN_BUILTIN=cache...).
 *
 * Semantics are GitHub's: an exact `key` is a hit (`cache-hit: true`);
 * else each of `restore-keys` in turn is a prefix, the newest entry
 * matching it restored; entries are scoped by repository and ref, and a
 * ref also sees its pull request's base and the default branch. The cache
 * step leaves what it found for the post step Kiln adds at the job's end,
 * which saves `path` under the key when there was no exact hit and the
 * job went well. Entries are tar + zstd archives (common/archive.h), with
 * a size bound per worker and the least recently used evicted first.
 *
 * What is not here yet (issue 13): the coordinator's store, so a cache
 * saved on one worker is restored on another, and `**` and `!` in paths.
 */
#ifndef KILN_CACHE_H
#define KILN_CACHE_H

#include <stdint.h>
#include <stdio.h>

typedef struct {
    const char *builtin;     /* cache, cache-restore, cache-save, cache-post */
    const char *cache_dir;   /* KILN_CACHE_DIR: the worker's cache */
    uint64_t max_bytes;      /* KILN_CACHE_MAX_MB, as bytes */
    const char *state_path;  /* where the cache step leaves what it found */
    const char *workspace, *home, *repository, *ref, *base_ref, *event_path;
    const char *output_path, *summary_path;
    /* Inputs. */
    const char *path, *key, *restore_keys, *fail_on_miss, *lookup_only;
} kiln_cache_opts_t;

/* Runs the step, printing progress to log. Returns 0, or -1 with the
 * message set. */
int kiln_cache_run(const kiln_cache_opts_t *o, FILE *log);

#endif
