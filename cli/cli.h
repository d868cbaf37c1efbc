/* cli.h: what the kiln command's files share.
 *
 *   main.c       the command table and help
 *   cmd_run.c    run (a private farm), up (a persistent one), submit
 *   cmd_query.c  status, history, logs, workers, stats
 *   cmd_farm.c   cancel, worker drain, keygen
 *   cmd_lint.c   lint and graph, without a farm
 *   workflow.c   reading a workflow and the files it refers to, checking
 *                it and its inputs as the coordinator will
 *   session.c    finding and calling a farm; submit and follow
 *   render.c     runs, jobs, workers and stats as tables
 *   client.c, farm.c, follow.c  the connection, local farms, live output
 */
#ifndef KILN_CLI_H
#define KILN_CLI_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cli/client.h"
#include "cli/farm.h"
#include "cli/follow.h"
#include "common/config.h"
#include "lang/parse.h"
#include "proto/kiln.pb-c.h"

/* How long a client waits for an answer; KILN_REQUEST_TIMEOUT_MS overrides
 * it (scripts that probe a farm want to give up sooner). A fresh local farm
 * needs a moment before the coordinator answers, hence the longer wait for
 * the first request of `kiln run`. */
#define KILN_REQUEST_TIMEOUT_DEFAULT_MS 15000
#define KILN_FARM_START_TIMEOUT_MS 30000
#define KILN_CLI_REQUEST_TIMEOUT_MS kiln_cli_request_timeout_ms()
#define KILN_CLI_MAX_INPUTS 100

typedef struct {
    kiln_client_target_t target;
    bool json;
} kiln_cli_common_t;

#define KILN_CLI_TARGET_OPTS(c)                                                                \
    {"data-dir", KILN_OPT_STRING, &(c).target.data_dir, "the farm's data directory (~/.kiln)"}, \
        {"coordinator", KILN_OPT_STRING, &(c).target.coordinator,                              \
         "coordinator endpoint (or KILN_COORDINATOR)"},                                        \
        {"server-key", KILN_OPT_STRING, &(c).target.server_key,                                \
         "coordinator public key file (or KILN_SERVER_KEY)"},                                  \
        {"key", KILN_OPT_STRING, &(c).target.key, "client key pair file (or KILN_CLIENT_KEY)"}

/* Run inputs: every --input name=value (or --input=name=value) is taken out
 * of argv (options allow one value each) and kept in order. */
typedef struct {
    Kiln__KeyValue kv[KILN_CLI_MAX_INPUTS];
    Kiln__KeyValue *ptrs[KILN_CLI_MAX_INPUTS];
    char *text[KILN_CLI_MAX_INPUTS];
    size_t n;
    const char *event; /* --event: what the run is for (NULL: the coordinator's default) */
    /* The repository and commit the workflow file belongs to (source.c),
     * or NULL for a file outside any work tree. */
    Kiln__Source *source;
} kiln_cli_inputs_t;

/* commands */
int kiln_cmd_run(int argc, char **argv);
int kiln_cmd_up(int argc, char **argv);
int kiln_cmd_submit(int argc, char **argv);
int kiln_cmd_status(int argc, char **argv);
int kiln_cmd_history(int argc, char **argv);
int kiln_cmd_logs(int argc, char **argv);
int kiln_cmd_workers(int argc, char **argv);
int kiln_cmd_stats(int argc, char **argv);
int kiln_cmd_cancel(int argc, char **argv);
int kiln_cmd_worker(int argc, char **argv);
int kiln_cmd_keygen(int argc, char **argv);
int kiln_cmd_lint(int argc, char **argv);
int kiln_cmd_graph(int argc, char **argv);
int kiln_cmd_artifacts(int argc, char **argv);
int kiln_cmd_artifact(int argc, char **argv);
int kiln_cmd_cache(int argc, char **argv);
int kiln_cmd_toolcache(int argc, char **argv);
int kiln_cmd_actions(int argc, char **argv);

/* workflow.c */
int kiln_cli_validate(const char *path, char **text, size_t *len);
int kiln_cli_parse(kiln_workflow_t **wf, const char *path, const char *text, size_t len,
                   kiln_diags_t *diags);
int kiln_cli_take_inputs(int *argc, char **argv, kiln_cli_inputs_t *in);
void kiln_cli_inputs_free(kiln_cli_inputs_t *in);
int kiln_cli_check_inputs(const char *path, const char *text, size_t len,
                          const kiln_cli_inputs_t *in);
void kiln_cli_actions_attach(Kiln__Request *req);
int kiln_cli_read_file(const char *path, char **text, size_t *len);

/* source.c: the work tree a workflow file lies in, at HEAD (with dirty:
 * its uncommitted state, recorded as a commit); *out stays NULL for a file
 * outside any work tree. Returns 0 or an exit code, having said why. */
int kiln_cli_source_local(const char *workflow, bool dirty, Kiln__Source **out);
void kiln_cli_source_free(Kiln__Source **src_p);

/* session.c */
int kiln_cli_request_timeout_ms(void);
int kiln_cli_usage_error(const char *cmd, const char *usage, const kiln_opt_t *opts, int rc);
int kiln_cli_interrupt_fd(int extra_fd, int *sigfd_out);
/* The warnings in a submission's answer that kiln_cli_validate did not
 * print (those of remote actions, which only the farm reads; its note on
 * an event the workflow does not list), to stderr. */
void kiln_cli_print_farm_warnings(const char *reply_text);
int kiln_cli_submit_and_follow(kiln_client_t *client, const char *file, const char *text,
                               size_t len, bool live, bool json, int wake_fd, int64_t *run_out,
                               kiln_cli_inputs_t *in);
int kiln_cli_connect(kiln_cli_common_t *c, kiln_client_t **client);
int kiln_cli_call(kiln_client_t *client, Kiln__Request *req, Kiln__Envelope **reply);
int64_t kiln_cli_parse_run(const char *text);
int kiln_cli_print_json_reply(const Kiln__Envelope *reply);
int kiln_cli_query(kiln_cli_common_t *c, Kiln__Request *req, void (*render)(json_t *doc));

/* render.c */
void kiln_render_ms(json_t *v, char *out, size_t cap);
void kiln_render_runs(json_t *runs);
void kiln_render_run_jobs(json_t *run);
void kiln_render_run(json_t *doc);
void kiln_render_workers(json_t *doc);
void kiln_render_stats(json_t *doc);

#endif
