/* main.c: kiln-coordinator. Parses flags (or a config file) and runs the
 * server library; everything else lives in server.c so tests and fuzzers
 * link the same code. */
#include <errno.h>
#include <stdio.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/config.h"
#include "common/error.h"
#include "common/gitsrc.h"
#include "common/log.h"
#include "coordinator/server.h"

int main(int argc, char **argv)
{
    kiln_server_config_t cfg;
    kiln_server_t *server = NULL;
    const char *log_level = "info";
    int git_timeout = 0;
    int heartbeat = 0, lease = 0, attempts = 0, npos = 0, log_limit_mb = 0, log_window_kb = 0;
    int ready_fd = -1;
    int cache_quota_mb = -1, cache_days = -1, retention_days = -1, restore_mb_s = 0;
    kiln_opt_list_t aliases = {0};
    kiln_opt_list_t action_sources = {0};
    kiln_server_config_defaults(&cfg);
    /* The history (run logs, outputs, audit) and its lock are the
     * operator's alone. */
    umask(077);
    kiln_opt_t opts[] = {
        {"listen", KILN_OPT_STRING, &cfg.listen, "endpoint to bind (tcp://127.0.0.1:7420)"},
        {"redis", KILN_OPT_STRING, &cfg.redis, "Redis address: /path/redis.sock, unix:/path or host:port"},
        {"db", KILN_OPT_STRING, &cfg.db_path, "history database file (SQLite)"},
        {"key", KILN_OPT_STRING, &cfg.key_path, "the coordinator's CURVE key pair (.key)"},
        {"allow", KILN_OPT_STRING, &cfg.allow_dir,
         "allow-list directory with workers/ and clients/ *.pub keys"},
        {"universal-labels", KILN_OPT_STRING, &cfg.universal_labels,
         "labels every worker matches (self-hosted)"},
        {"label-alias", KILN_OPT_LIST, &aliases,
         "PATTERN=LABEL: jobs asking for PATTERN (a trailing * is a prefix) run on workers "
         "labelled LABEL; repeatable, first match wins, then ubuntu-*=linux"},
        {"actions-source", KILN_OPT_LIST, &action_sources,
         "DIR or URL: where uses: OWNER/REPO[/PATH]@REF is fetched from; a directory holding "
         "OWNER/REPO git repositories, or a base URL under which OWNER/REPO is cloned; "
         "OWNER=DIR|URL: the only source of OWNER's actions; repeatable, tried in order"},
        {"actions-require-sha", KILN_OPT_BOOL, &cfg.actions_require_sha,
         "refuse at submit time a remote uses: (action or reusable workflow) not pinned by a "
         "full commit SHA"},
        {"git-credentials", KILN_OPT_STRING, &cfg.git_credentials,
         "FILE of 'URL-PREFIX token TOKEN' / 'URL-PREFIX ssh-key KEYFILE [USER]' lines for "
         "fetching repositories and actions (mode 0600)"},
        {"git-timeout-s", KILN_OPT_INT, &git_timeout,
         "a git server silent this long fails the fetch (120)"},
        {"heartbeat-ms", KILN_OPT_INT, &heartbeat, "worker heartbeat interval (1000)"},
        {"lease-ms", KILN_OPT_INT, &lease, "a worker silent this long is lost (5000)"},
        {"max-attempts", KILN_OPT_INT, &attempts, "attempts per job on infrastructure failure (3)"},
        {"log-limit-mb", KILN_OPT_INT, &log_limit_mb,
         "output kept per job attempt before it is truncated (64)"},
        {"log-window-kb", KILN_OPT_INT, &log_window_kb,
         "log bytes a worker may have in flight (1024)"},
        {"vars", KILN_OPT_STRING, &cfg.vars_path,
         "JSON file of configuration variables (the vars context)"},
        {"scheduler", KILN_OPT_STRING, &cfg.scheduler,
         "ready-job order: critical-path (default) or fifo"},
        {"store-dir", KILN_OPT_STRING, &cfg.store_dir,
         "where the store keeps caches' and artifacts' blobs (store/ beside --db)"},
        {"cache-quota-mb", KILN_OPT_INT, &cache_quota_mb,
         "cache entries kept per repository, least recently used evicted first (10240)"},
        {"cache-max-age-days", KILN_OPT_INT, &cache_days,
         "a cache entry not used for this long is evicted (7)"},
        {"artifact-retention-days", KILN_OPT_INT, &retention_days,
         "artifacts' default and longest retention (90)"},
        {"restore-mb-s", KILN_OPT_INT, &restore_mb_s,
         "the rate restores are taken to move at when a job weighs waiting for a busy worker "
         "that holds its caches against restoring them elsewhere (measured from the store's "
         "transfers)"},
        {"ready-fd", KILN_OPT_INT, &ready_fd,
         "once listening, write a line to this inherited descriptor and close it "
         "(for a supervisor that starts workers and clients after it)"},
        {"log-level", KILN_OPT_STRING, &log_level, "debug, info, warn or error"},
        {NULL, 0, NULL, NULL},
    };
    int rc = kiln_opts_parse(opts, argc, argv, 1, &npos);
    if (rc == 1 || rc != 0 || npos != 0) {
        FILE *out = rc == 1 ? stdout : stderr;
        if (rc < 0)
            fprintf(stderr, "kiln-coordinator: %s\n", kiln_error_last());
        else if (npos)
            fprintf(stderr, "kiln-coordinator: unexpected argument '%s'\n", argv[1]);
        fprintf(out, "usage: kiln-coordinator --redis ADDR --db FILE --key FILE --allow DIR "
                     "[options]\n\n");
        kiln_opts_print(out, opts);
        return rc == 1 ? 0 : 2;
    }
    kiln_log_level_t level;
    if (kiln_log_parse_level(log_level, &level) != 0) {
        fprintf(stderr, "kiln-coordinator: unknown log level '%s'\n", log_level);
        return 2;
    }
    kiln_log_init("coordinator", level);
    cfg.label_aliases = aliases.items;
    cfg.n_label_aliases = aliases.n;
    if (git_timeout < 0) {
        fprintf(stderr, "kiln-coordinator: --git-timeout-s must be positive\n");
        return 2;
    }
    kiln_gitsrc_set_timeout(git_timeout);
    cfg.action_sources = action_sources.items;
    cfg.n_action_sources = action_sources.n;
    if (cache_quota_mb == 0 || cache_days == 0 || retention_days == 0 || cache_quota_mb < -1 ||
        cache_days < -1 || retention_days < -1) {
        fprintf(stderr, "kiln-coordinator: --cache-quota-mb, --cache-max-age-days and "
                        "--artifact-retention-days take a positive number\n");
        return 2;
    }
    if (restore_mb_s < 0) {
        fprintf(stderr, "kiln-coordinator: --restore-mb-s takes a positive number\n");
        return 2;
    }
    cfg.restore_mb_s = (unsigned)restore_mb_s;
    if (cache_quota_mb > 0)
        cfg.cache_quota = (uint64_t)cache_quota_mb << 20;
    if (cache_days > 0)
        cfg.cache_max_age_days = (unsigned)cache_days;
    if (retention_days > 0)
        cfg.artifact_retention_days = (unsigned)retention_days;
    if (heartbeat)
        cfg.heartbeat_ms = heartbeat;
    if (lease)
        cfg.lease_ms = lease;
    if (attempts)
        cfg.max_attempts = (unsigned)attempts;
    if (log_limit_mb > 0)
        cfg.log_limit = (uint64_t)log_limit_mb * 1024 * 1024;
    if (log_window_kb > 0)
        cfg.log_window = (uint64_t)log_window_kb * 1024;
    cfg.handle_signals = true;
    rc = kiln_server_new(&server, &cfg);
    if (rc != 0) {
        kiln_log_error("%s", kiln_error_last());
        return rc == KILN_EINVAL ? 2 : 3;
    }
    if (ready_fd > 2) {
        /* Whoever waits on it may connect now without a retry. */
        if (write(ready_fd, "ready\n", 6) != 6)
            kiln_log_warn("--ready-fd %d: %s", ready_fd, strerror(errno));
        close(ready_fd);
    }
    rc = kiln_server_run(server);
    kiln_server_destroy(&server);
    return rc == 0 ? 0 : 3;
}
