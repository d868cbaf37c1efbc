/* cmd_farm.c: kiln cancel, worker drain, keygen. */
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

int kiln_cmd_cancel(int argc, char **argv)
{
    kiln_cli_common_t c = {0};
    int npos = 0, code;
    kiln_client_t *client = NULL;
    Kiln__Envelope *reply = NULL;
    kiln_opt_t opts[] = {KILN_CLI_TARGET_OPTS(c), {NULL, 0, NULL, NULL}};
    int rc = kiln_opts_parse(opts, argc, argv, 2, &npos);
    int64_t run = npos == 1 ? kiln_cli_parse_run(argv[2]) : -1;
    if (rc != 0 || npos != 1 || run < 0) {
        if (rc == 0)
            kiln_error_set("expected one run number");
        return kiln_cli_usage_error("cancel", "RUN [options]", opts, rc ? rc : -1);
    }
    if ((code = kiln_cli_connect(&c, &client)) != 0)
        return code;
    Kiln__Request req = KILN__REQUEST__INIT;
    req.kind = KILN__REQUEST_KIND__REQ_CANCEL;
    req.run_id = (uint64_t)run;
    if ((code = kiln_cli_call(client, &req, &reply)) == 0)
        printf("run %lld: cancel requested\n", (long long)run);
    if (reply)
        kiln__envelope__free_unpacked(reply, NULL);
    kiln_client_destroy(&client);
    return code;
}

/* kiln worker drain NAME: the only worker subcommand so far. */
int kiln_cmd_worker(int argc, char **argv)
{
    kiln_cli_common_t c = {0};
    int npos = 0, code, deadline_s = 0;
    kiln_client_t *client = NULL;
    Kiln__Envelope *reply = NULL;
    kiln_opt_t opts[] = {KILN_CLI_TARGET_OPTS(c),
                         {"deadline", KILN_OPT_INT, &deadline_s,
                          "seconds the worker has before unfinished jobs are handed back "
                          "(default: the worker's drain grace)"},
                         {NULL, 0, NULL, NULL}};
    int rc = kiln_opts_parse(opts, argc, argv, 2, &npos);
    if (rc != 0 || npos != 2 || strcmp(argv[2], "drain") != 0 || deadline_s < 0) {
        if (rc == 0)
            kiln_error_set("expected: drain NAME");
        return kiln_cli_usage_error("worker", "drain NAME [--deadline SECONDS] [options]", opts,
                             rc ? rc : -1);
    }
    if ((code = kiln_cli_connect(&c, &client)) != 0)
        return code;
    Kiln__Request req = KILN__REQUEST__INIT;
    req.kind = KILN__REQUEST_KIND__REQ_DRAIN;
    req.worker = argv[3];
    req.deadline_ms = deadline_s ? (uint64_t)(kiln_clock_wall_ms() + deadline_s * 1000LL) : 0;
    if ((code = kiln_cli_call(client, &req, &reply)) == 0)
        printf("worker %s: draining\n", argv[3]);
    if (reply)
        kiln__envelope__free_unpacked(reply, NULL);
    kiln_client_destroy(&client);
    return code;
}

int kiln_cmd_keygen(int argc, char **argv)
{
    const char *dir = ".";
    int npos = 0;
    kiln_opt_t opts[] = {{"dir", KILN_OPT_STRING, &dir, "where to write the files (.)"},
                         {NULL, 0, NULL, NULL}};
    int rc = kiln_opts_parse(opts, argc, argv, 2, &npos);
    if (rc != 0 || npos != 1) {
        if (rc == 0)
            kiln_error_set("expected one NAME");
        return kiln_cli_usage_error("keygen", "NAME [--dir DIR]", opts, rc ? rc : -1);
    }
    const char *name = argv[2];
    if (!name[0] || strchr(name, '/')) {
        fprintf(stderr, "kiln keygen: NAME must be a plain file name\n");
        return KILN_EXIT_USAGE;
    }
    kiln_keypair_t kp;
    if (kiln_keys_generate(&kp) != 0 || kiln_keys_write(&kp, dir, name) != 0) {
        fprintf(stderr, "kiln keygen: %s\n", kiln_error_last());
        return KILN_EXIT_USAGE;
    }
    printf("wrote %s/%s.key (secret) and %s/%s.pub\npublic key: %s\n", dir, name, dir, name,
           kp.public_z85);
    return KILN_EXIT_OK;
}
