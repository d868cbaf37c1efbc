/* main.c: kiln-worker. Parses flags (or a config file) and runs the agent
 * library (agent.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "worker/agent.h"
#include "worker/container.h"
#include "worker/native.h"
#include "worker/node.h"
#include "common/config.h"
#include "common/error.h"
#include "common/log.h"

/* --check: what this machine can run, said plainly, without connecting. */
static int s_check(const kiln_agent_config_t *cfg)
{
    kiln_container_engine_t e;
    kiln_node_t node;
    char report[1200];
    kiln_container_engine_find(&e, cfg->container_engine, cfg->container_allow_privileged);
    int crc = kiln_container_check(&e, report, sizeof report);
    printf("container jobs: %s\n", report);
    kiln_native_t native;
    int vrc = kiln_native_find(&native, cfg->container_runtime, cfg->work_dir ? cfg->work_dir : ".",
                               cfg->registry_auth, cfg->registry_insecure, cfg->registry_mirror,
                               cfg->image_pull, cfg->image_store_max_mb);
    if (vrc == 0 && strcmp(native.mode, "engine") == 0) {
        vrc = -1;
        snprintf(report, sizeof report, "not used (--container-runtime engine)");
    } else if (vrc == 0) {
        vrc = kiln_native_check(&native, report, sizeof report);
    }
    else
        snprintf(report, sizeof report, "no: %s", native.why);
    printf("native container runtime: %s\n", report);
    int nrc = kiln_node_probe(&node, cfg->node);
    if (nrc == 0)
        printf("JavaScript actions: yes: %s %s (actions up to runs.using node%d)\n", node.path,
               node.version, node.major >= 24 ? 24 : node.major >= 20 ? 20 : node.major >= 16 ? 16 : 12);
    else
        printf("JavaScript actions: no: %s\n", node.why);
    return (crc == 0 || vrc == 0) && nrc == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    kiln_agent_config_t cfg;
    kiln_agent_t *agent = NULL;
    const char *log_level = "info";
    bool check = false;
    int npos = 0;
    kiln_opt_list_t env = {0}, pass_env = {0};
    kiln_agent_config_defaults(&cfg);
    kiln_opt_t opts[] = {
        {"coordinator", KILN_OPT_STRING, &cfg.coordinator, "coordinator endpoint (tcp://HOST:7420)"},
        {"server-key", KILN_OPT_STRING, &cfg.server_key, "the coordinator's public key file (.pub)"},
        {"key", KILN_OPT_STRING, &cfg.key_path, "this worker's CURVE key pair (.key)"},
        {"name", KILN_OPT_STRING, &cfg.name, "worker name: the name its key is admitted under (default: the key file's name)"},
        {"cgroup-root", KILN_OPT_STRING, &cfg.cgroup_root, "a writable cgroup directory to make the worker's group in (default: under the worker's own cgroup)"},
        {"labels", KILN_OPT_STRING, &cfg.labels, "comma-separated labels jobs can ask for"},
        {"slots", KILN_OPT_INT, &cfg.slots, "jobs run at once (1)"},
        {"prefetch", KILN_OPT_INT, &cfg.prefetch,
         "assignments taken beyond the slots, started as slots free; the coordinator "
         "sends them only while the running jobs are about to end (1; 0: none)"},
        {"work-dir", KILN_OPT_STRING, &cfg.work_dir, "where job workspaces are created"},
        {"heartbeat-ms", KILN_OPT_INT, &cfg.heartbeat_ms, "heartbeat interval before the "
                                                          "coordinator sets one (1000)"},
        {"kill-grace-ms", KILN_OPT_INT, &cfg.kill_grace_ms,
         "time between SIGTERM and SIGKILL for a step (5000)"},
        {"keep-workspaces", KILN_OPT_BOOL, &cfg.keep_workspaces, "keep job directories"},
        {"drain-grace-ms", KILN_OPT_INT, &cfg.drain_grace_ms,
         "on SIGTERM, how long running jobs may go on; 0: no limit (300000)"},
        {"spot-notice-file", KILN_OPT_STRING, &cfg.spot_notice_file,
         "drain when this file appears (spot interruption notice)"},
        {"spot-notice-url", KILN_OPT_STRING, &cfg.spot_notice_url,
         "drain when this URL answers 200, e.g. http://169.254.169.254/latest/meta-data/"
         "spot/instance-action"},
        {"spot-notice-command", KILN_OPT_STRING, &cfg.spot_notice_command,
         "drain when this shell command exits 0"},
        {"spot-poll-ms", KILN_OPT_INT, &cfg.spot_poll_ms, "how often the URL or command is checked (5000)"},
        {"spot-window-ms", KILN_OPT_INT, &cfg.spot_window_ms,
         "time from a notice to the machine's end (120000)"},
        {"spot-margin-ms", KILN_OPT_INT, &cfg.spot_margin_ms,
         "unfinished jobs are handed back this long before the end (15000)"},
        {"env", KILN_OPT_LIST, &env,
         "NAME=VALUE: a variable every step gets (repeatable)"},
        {"pass-env", KILN_OPT_LIST, &pass_env,
         "NAME: pass the worker's own variable NAME on to every step (repeatable)"},
        {"git-credentials", KILN_OPT_STRING, &cfg.git_credentials,
         "FILE of 'URL-PREFIX token TOKEN' / 'URL-PREFIX ssh-key KEYFILE [USER]' lines for "
         "checkouts and action downloads (mode 0600)"},
        {"git-timeout-s", KILN_OPT_INT, &cfg.git_timeout_s,
         "a git server silent this long fails the checkout (120)"},
        {"cache-max-mb", KILN_OPT_INT, &cfg.cache_max_mb,
         "actions/cache entries this worker keeps, least recently used evicted beyond (10240)"},
        {"container-engine", KILN_OPT_STRING, &cfg.container_engine,
         "the podman or docker that runs container jobs (default: podman, then docker, on PATH)"},
        {"job-image", KILN_OPT_STRING, &cfg.job_image,
         "IMAGE: every job without a container of its own runs its steps in a fresh container "
         "of this image (recommended on shared farms)"},
        {"container-runtime", KILN_OPT_STRING, &cfg.container_runtime,
         "auto (default: without an engine when the job allows), engine, or native "
         "(bubblewrap on images this worker pulls itself)"},
        {"registry-auth", KILN_OPT_STRING, &cfg.registry_auth,
         "FILE: registry credentials for native pulls, as Docker's config.json \"auths\""},
        {"registry-insecure", KILN_OPT_STRING, &cfg.registry_insecure,
         "HOST[:PORT],...: registries native pulls reach over plain HTTP (loopback always)"},
        {"registry-mirror", KILN_OPT_STRING, &cfg.registry_mirror,
         "[HOST=]URL,...: pull-through mirrors native pulls use (HOST docker.io when not given)"},
        {"image-pull", KILN_OPT_STRING, &cfg.image_pull,
         "missing (default: a tag held is used as held) or always (ask the registry each job)"},
        {"image-store-max-mb", KILN_OPT_INT, &cfg.image_store_max_mb,
         "images the native runtime keeps, least recently used evicted beyond (20480)"},
        {"cache-registry", KILN_OPT_STRING, &cfg.cache_registry,
         "HOST[:PORT]/PREFIX: the farm's registry for image builds' layer caches, given to "
         "every step as KILN_CACHE_REGISTRY"},
        {"container-allow-privileged", KILN_OPT_BOOL, &cfg.container_allow_privileged,
         "let container jobs ask for privileged mode, added capabilities, host namespaces and "
         "host mounts (refused by default)"},
        {"check", KILN_OPT_BOOL, &check,
         "say whether this machine can run container jobs and JavaScript actions, and why not; "
         "then exit (0: both can)"},
        {"node", KILN_OPT_STRING, &cfg.node,
         "the Node.js that runs JavaScript actions (default: node on PATH)"},
        {"executor", KILN_OPT_STRING, &cfg.executor,
         "shell (default), or null: jobs succeed at once without running anything "
         "(for benchmarks only)"},
        {"log-level", KILN_OPT_STRING, &log_level, "debug, info, warn or error"},
        {NULL, 0, NULL, NULL},
    };
    int rc = kiln_opts_parse(opts, argc, argv, 1, &npos);
    cfg.env = env.items;
    cfg.n_env = env.n;
    cfg.pass_env = pass_env.items;
    cfg.n_pass_env = pass_env.n;
    if (rc != 0 || npos != 0) {
        FILE *out = rc == 1 ? stdout : stderr;
        if (rc < 0)
            fprintf(stderr, "kiln-worker: %s\n", kiln_error_last());
        else if (npos)
            fprintf(stderr, "kiln-worker: unexpected argument '%s'\n", argv[1]);
        fprintf(out, "usage: kiln-worker --coordinator ENDPOINT --server-key FILE --key FILE "
                     "--work-dir DIR [options]\n\n");
        kiln_opts_print(out, opts);
        return rc == 1 ? 0 : 2;
    }
    if (check)
        return s_check(&cfg);
    kiln_log_level_t level;
    if (kiln_log_parse_level(log_level, &level) != 0) {
        fprintf(stderr, "kiln-worker: unknown log level '%s'\n", log_level);
        return 2;
    }
    kiln_log_init("worker", level);
    rc = kiln_agent_new(&agent, &cfg);
    if (rc == 0) {
        char component[160];
        snprintf(component, sizeof component, "worker %s", kiln_agent_name(agent));
        kiln_log_init(component, level);
    }
    if (rc != 0) {
        kiln_log_error("%s", kiln_error_last());
        return rc == KILN_EINVAL ? 2 : 3;
    }
    rc = kiln_agent_run(agent);
    kiln_agent_destroy(&agent);
    return rc == 0 ? 0 : 3;
}
