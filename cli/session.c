/* session.c: finding and calling a farm (targets, timeouts, usage errors)
 * and the submit-and-follow that kiln run and kiln submit --wait share. */
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

int kiln_cli_request_timeout_ms(void)
{
    const char *v = getenv("KILN_REQUEST_TIMEOUT_MS");
    int ms = v ? atoi(v) : 0;
    return ms > 0 ? ms : KILN_REQUEST_TIMEOUT_DEFAULT_MS;
}

int kiln_cli_usage_error(const char *cmd, const char *usage, const kiln_opt_t *opts, int rc)
{
    FILE *out = rc == 1 ? stdout : stderr;
    if (rc < 0)
        fprintf(stderr, "kiln %s: %s\n", cmd, kiln_error_last());
    fprintf(out, "usage: kiln %s %s\n\n", cmd, usage);
    kiln_opts_print(out, opts);
    return rc == 1 ? KILN_EXIT_OK : KILN_EXIT_USAGE;
}

/* An epoll set over SIGINT/SIGTERM (and optionally a pidfd), so that a
 * single fd can wake the follow loop. */
int kiln_cli_interrupt_fd(int extra_fd, int *sigfd_out)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    sigprocmask(SIG_BLOCK, &set, NULL);
    int sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN};
    ev.data.fd = sigfd;
    epoll_ctl(ep, EPOLL_CTL_ADD, sigfd, &ev);
    if (extra_fd >= 0) {
        ev.data.fd = extra_fd;
        epoll_ctl(ep, EPOLL_CTL_ADD, extra_fd, &ev);
    }
    *sigfd_out = sigfd;
    return ep;
}

int kiln_cli_submit_and_follow(kiln_client_t *client, const char *file, const char *text,
                               size_t len, bool live, bool json, int wake_fd, int64_t *run_out,
                               kiln_cli_inputs_t *in)
{
    Kiln__Request req = KILN__REQUEST__INIT;
    Kiln__Envelope *reply = NULL;
    int code = KILN_EXIT_INFRA;
    req.kind = KILN__REQUEST_KIND__REQ_SUBMIT;
    req.inputs = in->ptrs;
    req.n_inputs = in->n;
    req.event = (char *)(in->event ? in->event : "");
    req.source = in->source;
    kiln_cli_actions_attach(&req);
    req.workflow_file = (char *)file;
    req.workflow_yaml.data = (uint8_t *)text;
    req.workflow_yaml.len = len;
    req.follow = live || json || run_out != NULL;
    /* Nothing is shown while it runs: only its end is needed. */
    req.follow_quiet = !live;
    int rc = kiln_client_call(client, &req,
                              getenv("KILN_REQUEST_TIMEOUT_MS") ? KILN_CLI_REQUEST_TIMEOUT_MS
                                                                 : KILN_FARM_START_TIMEOUT_MS,
                              &reply);
    if (rc != 0) {
        fprintf(stderr, "kiln: submit failed: %s\n", kiln_error_last());
        goto cleanup;
    }
    if (reply->reply->code != 0) {
        fprintf(stderr, "%s", reply->reply->error);
        if (reply->reply->error[0] && reply->reply->error[strlen(reply->reply->error) - 1] != '\n')
            fputc('\n', stderr);
        code = reply->reply->code == -2 ? KILN_EXIT_USAGE : KILN_EXIT_INFRA;
        goto cleanup;
    }
    /* Warnings come back too; the same check here printed most of them
     * already: what only the farm could see (remote actions, an --event
     * the workflow's on: does not list) is printed now. */
    kiln_cli_print_farm_warnings(reply->reply->error);
    int64_t run_id = (int64_t)reply->reply->run_id;
    if (run_out)
        *run_out = run_id;
    if (!json)
        printf("run %lld accepted\n", (long long)run_id);
    fflush(stdout);
    char state[64] = "";
    rc = kiln_follow_run(client, run_id, live && !json, NULL, wake_fd, state, sizeof state);
    if (rc == KILN_EAGAIN) {
        code = KILN_EXIT_INTERRUPTED;
        goto cleanup;
    }
    if (rc == KILN_EUNSERVED) {
        char why[KILN_ERROR_MAX];
        snprintf(why, sizeof why, "%s", kiln_error_last());
        fprintf(stderr, "kiln: %s\n", why);
        /* The run is ended, so its record says so too. */
        Kiln__Request cancel = KILN__REQUEST__INIT;
        Kiln__Envelope *answer = NULL;
        cancel.kind = KILN__REQUEST_KIND__REQ_CANCEL;
        cancel.run_id = (uint64_t)run_id;
        if (kiln_client_call(client, &cancel, KILN_CLI_REQUEST_TIMEOUT_MS, &answer) != 0)
            fprintf(stderr, "kiln: cancelling run %lld: %s\n", (long long)run_id,
                    kiln_error_last());
        if (answer)
            kiln__envelope__free_unpacked(answer, NULL);
        goto cleanup;
    }
    if (rc != 0) {
        fprintf(stderr, "kiln: lost the run: %s\n", kiln_error_last());
        goto cleanup;
    }
    code = kiln_follow_summary(client, run_id, json);
cleanup:
    if (reply)
        kiln__envelope__free_unpacked(reply, NULL);
    return code;
}

int kiln_cli_connect(kiln_cli_common_t *c, kiln_client_t **client)
{
    if (kiln_client_resolve(&c->target) != 0 || kiln_client_open(client, &c->target) != 0) {
        fprintf(stderr, "kiln: %s\n", kiln_error_last());
        return KILN_EXIT_USAGE;
    }
    return 0;
}

/* One request, one reply; prints the error on failure. */
int kiln_cli_call(kiln_client_t *client, Kiln__Request *req, Kiln__Envelope **reply)
{
    int rc = kiln_client_call(client, req, KILN_CLI_REQUEST_TIMEOUT_MS, reply);
    if (rc != 0) {
        fprintf(stderr, "kiln: %s\n", kiln_error_last());
        return KILN_EXIT_INFRA;
    }
    if ((*reply)->reply->code != 0) {
        fprintf(stderr, "kiln: %s\n", (*reply)->reply->error);
        return (*reply)->reply->code == -3 || (*reply)->reply->code == -2 ? KILN_EXIT_USAGE
                                                                          : KILN_EXIT_INFRA;
    }
    return 0;
}

int64_t kiln_cli_parse_run(const char *text)
{
    char *end = NULL;
    long long v = strtoll(text, &end, 10);
    return end && *end == '\0' && v > 0 ? (int64_t)v : -1;
}

int kiln_cli_print_json_reply(const Kiln__Envelope *reply)
{
    json_t *doc = json_loadb((const char *)reply->reply->json.data, reply->reply->json.len, 0, NULL);
    char *text = doc ? json_dumps(doc, JSON_INDENT(2)) : NULL;
    if (text)
        printf("%s\n", text);
    free(text);
    json_decref(doc);
    return 0;
}

/* One request, its JSON answer rendered by render (or printed as JSON with
 * --json). The pattern of every query command. */
int kiln_cli_query(kiln_cli_common_t *c, Kiln__Request *req, void (*render)(json_t *doc))
{
    kiln_client_t *client = NULL;
    Kiln__Envelope *reply = NULL;
    int code;
    if ((code = kiln_cli_connect(c, &client)) != 0)
        return code;
    if ((code = kiln_cli_call(client, req, &reply)) == 0) {
        json_t *doc = json_loadb((const char *)reply->reply->json.data, reply->reply->json.len, 0,
                                 NULL);
        if (c->json)
            kiln_cli_print_json_reply(reply);
        else
            render(doc);
        json_decref(doc);
    }
    if (reply)
        kiln__envelope__free_unpacked(reply, NULL);
    kiln_client_destroy(&client);
    return code;
}
