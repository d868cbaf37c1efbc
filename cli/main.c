/* main.c: the `kiln` command: its table of subcommands and its help. Each
 * command family lives in a cmd_<verb>.c of its own (see cli.h). */
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/clock.h"
#include "common/error.h"
#include "common/keys.h"
#include "common/log.h"

static void s_help(FILE *out)
{
    fprintf(out,
            "kiln %s: a distributed build farm for GitHub Actions workflows\n\n"
            "usage: kiln COMMAND [options]   (kiln COMMAND --help for its options)\n\n"
            "  run FILE       run a workflow on a private local farm and show it live\n"
            "  up             run a persistent local farm until Ctrl-C\n"
            "  submit FILE    submit a workflow to a running farm (--wait to follow it)\n"
            "  status [RUN]   recent runs, or one run's jobs and attempts\n"
            "  logs RUN [JOB] a run's output (-f to follow)\n"
            "  history        finished and running runs (--limit, --json)\n"
            "  cancel RUN     cancel a run\n"
            "  workers        connected workers, labels and busy slots\n"
            "  worker drain NAME  stop giving NAME jobs; it exits when they are done\n"
            "  stats          counters: dispatches, retries by class, queue depth, ...\n"
            "  keygen NAME    write a CURVE key pair NAME.key / NAME.pub\n"
            "  lint FILE...   validate workflows without a farm\n"
            "  graph FILE     the job graph, matrices expanded (--dot for Graphviz)\n"
            "  artifacts RUN  a run's artifacts\n"
            "  artifact get RUN NAME  download an artifact into NAME/ (-o DIR)\n"
            "  cache list [REPO]      the farm's cache entries\n"
            "  cache rm REPO [KEY]    remove cache entries (KEY* a prefix)\n"
            "  toolcache add TOOL VERSION DIR  put a tool in a worker's tool cache\n"
            "  toolcache list         the tools a worker's tool cache holds\n"
            "  actions pull OWNER/REPO@REF  mirror an action into an offline action source\n"
            "  actions list           what an offline action source holds\n"
            "  version        print the version\n\n"
            "exit status: 0 success, 1 pipeline failed, 2 invalid input or usage,\n"
            "3 infrastructure failure\n",
            KILN_VERSION);
}

int main(int argc, char **argv)
{
    kiln_log_init("kiln", KILN_LOG_WARN);
    if (argc < 2) {
        s_help(stderr);
        return KILN_EXIT_USAGE;
    }
    const char *cmd = argv[1];
    static const struct {
        const char *name;
        int (*fn)(int, char **);
    } cmds[] = {
        {"run", kiln_cmd_run},         {"up", kiln_cmd_up},           {"submit", kiln_cmd_submit},
        {"status", kiln_cmd_status},   {"logs", kiln_cmd_logs},       {"history", kiln_cmd_history},
        {"cancel", kiln_cmd_cancel},   {"workers", kiln_cmd_workers}, {"keygen", kiln_cmd_keygen},
        {"lint", kiln_cmd_lint},       {"stats", kiln_cmd_stats},     {"worker", kiln_cmd_worker},
        {"graph", kiln_cmd_graph},     {"artifacts", kiln_cmd_artifacts},
        {"artifact", kiln_cmd_artifact}, {"cache", kiln_cmd_cache},
        {"toolcache", kiln_cmd_toolcache}, {"actions", kiln_cmd_actions},
    };
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        if (strcmp(cmd, cmds[i].name) == 0)
            return cmds[i].fn(argc, argv);
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        s_help(stdout);
        return KILN_EXIT_OK;
    }
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("kiln %s\n", KILN_VERSION);
        return KILN_EXIT_OK;
    }
    fprintf(stderr, "kiln: unknown command '%s'\n\n", cmd);
    s_help(stderr);
    return KILN_EXIT_USAGE;
}
