/* artifact.h: actions/upload-artifact and actions/download-artifact built
 * in (kiln-checkout with KILN_BUILTIN=upload-artifact|download-artifact),
 * on the farm's store (worker/storeclient.h).
 *
 * An artifact is a tar + zstd archive of the files its `path` finds
 * (worker/paths.h), named by the root upload-artifact would use, recorded
 * by the coordinator for the job's run. Downloads unpack through the
 * archive checks into a staging directory and then move the files into
 * place, so a refused archive leaves nothing.
 */
#ifndef KILN_ARTIFACT_H
#define KILN_ARTIFACT_H

#include <stdint.h>
#include <stdio.h>

typedef struct {
    const char *builtin; /* upload-artifact, download-artifact */
    const char *workspace, *home, *temp, *output_path, *summary_path, *cache_dir;
    uint64_t cache_max_bytes;
    /* upload */
    const char *name, *path, *if_no_files_found, *retention_days, *compression_level,
        *overwrite, *include_hidden;
    /* download (name and path above) */
    const char *pattern, *merge_multiple, *run_id, *own_run_id, *repository, *own_repository;
} kiln_artifact_opts_t;

int kiln_artifact_run(const kiln_artifact_opts_t *o, FILE *log);

#endif
