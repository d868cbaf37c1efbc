/* checkout_main.c: kiln-checkout, the program behind the built-in
 * actions/checkout step. The worker runs it with the step's inputs as
 * INPUT_* variables (GitHub's convention for actions) and the run's
 * repository in KILN_SOURCE_URL; it is not meant to be run by hand. With
 * KILN_BUILTIN=action it puts a remote action's files in place instead. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/gitsrc.h"
#include "worker/artifact.h"
#include "worker/cache.h"
#include "worker/checkout.h"

static int s_action(void)
{
    kiln_action_opts_t o = {
        .cache_dir = getenv("KILN_GIT_CACHE"),
        .actions_dir = getenv("KILN_ACTIONS_DIR"),
        .url = getenv("INPUT_REPOSITORY"),
        .sha = getenv("INPUT_SHA"),
        .dir = getenv("INPUT_DIR"),
        .uses = getenv("INPUT_USES"),
        .credentials = getenv("KILN_GIT_CREDENTIALS"),
    };
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (kiln_gitsrc_init() != 0 || kiln_checkout_action(&o, stdout) != 0) {
        printf("::error title=%s::%s\n", o.uses ? o.uses : "action", kiln_error_last());
        return 1;
    }
    return 0;
}

static int s_cache(const char *builtin)
{
    char state[4096] = "";
    const char *tmp = getenv("RUNNER_TEMP");
    const char *index = strcmp(builtin, "cache-post") == 0 ? getenv("INPUT_STATE")
                                                            : getenv("KILN_STEP_INDEX");
    if (tmp && index)
        snprintf(state, sizeof state, "%s/.kiln-cache-state-%s.json", tmp, index);
    const char *mb = getenv("KILN_CACHE_MAX_MB");
    kiln_cache_opts_t o = {
        .builtin = builtin,
        .cache_dir = getenv("KILN_CACHE_DIR"),
        .max_bytes = (uint64_t)(mb && atoll(mb) > 0 ? atoll(mb) : 10240) << 20,
        .state_path = state[0] ? state : NULL,
        .workspace = getenv("GITHUB_WORKSPACE"),
        .home = getenv("HOME"),
        .repository = getenv("GITHUB_REPOSITORY"),
        .ref = getenv("GITHUB_REF"),
        .base_ref = getenv("GITHUB_BASE_REF"),
        .event_path = getenv("GITHUB_EVENT_PATH"),
        .output_path = getenv("GITHUB_OUTPUT"),
        .summary_path = getenv("GITHUB_STEP_SUMMARY"),
        .path = getenv("INPUT_PATH"),
        .key = getenv("INPUT_KEY"),
        .restore_keys = getenv("INPUT_RESTORE-KEYS"),
        .fail_on_miss = getenv("INPUT_FAIL-ON-CACHE-MISS"),
        .lookup_only = getenv("INPUT_LOOKUP-ONLY"),
    };
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (kiln_cache_run(&o, stdout) != 0) {
        printf("::error title=actions/cache::%s\n", kiln_error_last());
        return 1;
    }
    return 0;
}

static int s_artifact(const char *builtin)
{
    const char *mb = getenv("KILN_CACHE_MAX_MB");
    kiln_artifact_opts_t o = {
        .builtin = builtin,
        .workspace = getenv("GITHUB_WORKSPACE"),
        .home = getenv("HOME"),
        .temp = getenv("RUNNER_TEMP"),
        .output_path = getenv("GITHUB_OUTPUT"),
        .summary_path = getenv("GITHUB_STEP_SUMMARY"),
        .cache_dir = getenv("KILN_CACHE_DIR"),
        .cache_max_bytes = (uint64_t)(mb && atoll(mb) > 0 ? atoll(mb) : 10240) << 20,
        .name = getenv("INPUT_NAME"),
        .path = getenv("INPUT_PATH"),
        .if_no_files_found = getenv("INPUT_IF-NO-FILES-FOUND"),
        .retention_days = getenv("INPUT_RETENTION-DAYS"),
        .compression_level = getenv("INPUT_COMPRESSION-LEVEL"),
        .overwrite = getenv("INPUT_OVERWRITE"),
        .include_hidden = getenv("INPUT_INCLUDE-HIDDEN-FILES"),
        .pattern = getenv("INPUT_PATTERN"),
        .merge_multiple = getenv("INPUT_MERGE-MULTIPLE"),
        .run_id = getenv("INPUT_RUN-ID"),
        .own_run_id = getenv("GITHUB_RUN_ID"),
        .repository = getenv("INPUT_REPOSITORY"),
        .own_repository = getenv("GITHUB_REPOSITORY"),
    };
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (!o.cache_dir || !o.cache_dir[0]) {
        printf("::error title=actions/%s::runs as a step of kiln-worker (KILN_CACHE_DIR is not "
               "set)\n",
               builtin);
        return 1;
    }
    if (kiln_artifact_run(&o, stdout) != 0) {
        printf("::error title=actions/%s::%s\n", builtin, kiln_error_last());
        return 1;
    }
    return 0;
}

int main(void)
{
    const char *timeout = getenv("KILN_GIT_TIMEOUT_S");
    if (timeout && timeout[0])
        kiln_gitsrc_set_timeout(atoi(timeout));
    /* The worker names the built-in step it runs. */
    const char *builtin = getenv("KILN_BUILTIN");
    if (builtin && strcmp(builtin, "action") == 0)
        return s_action();
    if (builtin && strncmp(builtin, "cache", 5) == 0)
        return s_cache(builtin);
    if (builtin && strstr(builtin, "-artifact"))
        return s_artifact(builtin);
    kiln_checkout_opts_t o = {
        .cache_dir = getenv("KILN_GIT_CACHE"),
        .workspace = getenv("GITHUB_WORKSPACE"),
        .source_url = getenv("KILN_SOURCE_URL"),
        .run_repository = getenv("GITHUB_REPOSITORY"),
        .server_url = getenv("GITHUB_SERVER_URL"),
        .run_sha = getenv("GITHUB_SHA"),
        .run_ref = getenv("GITHUB_REF"),
        .output_path = getenv("GITHUB_OUTPUT"),
        .summary_path = getenv("GITHUB_STEP_SUMMARY"),
        .credentials = getenv("KILN_GIT_CREDENTIALS"),
        .repository = getenv("INPUT_REPOSITORY"),
        .ref = getenv("INPUT_REF"),
        .path = getenv("INPUT_PATH"),
        .fetch_depth = getenv("INPUT_FETCH-DEPTH"),
        .fetch_tags = getenv("INPUT_FETCH-TAGS"),
        .clean = getenv("INPUT_CLEAN"),
        .submodules = getenv("INPUT_SUBMODULES"),
        .sparse_checkout = getenv("INPUT_SPARSE-CHECKOUT"),
        .sparse_cone = getenv("INPUT_SPARSE-CHECKOUT-CONE-MODE"),
        .persist_credentials = getenv("INPUT_PERSIST-CREDENTIALS"),
        .lfs = getenv("INPUT_LFS"),
        .token = getenv("INPUT_TOKEN"),
        .ssh_key = getenv("INPUT_SSH-KEY"),
        .ssh_user = getenv("INPUT_SSH-USER"),
        .filter = getenv("INPUT_FILTER"),
    };
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (kiln_gitsrc_init() != 0 || kiln_checkout_run(&o, stdout) != 0) {
        /* A workflow command: the failure becomes the job's annotation. */
        printf("::error title=actions/checkout::%s\n", kiln_error_last());
        return 1;
    }
    return 0;
}
