/* cmd_run.c: kiln run (a workflow on a private local farm), kiln up (a
 * persistent local farm), kiln submit (to a running farm). */
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

int kiln_cmd_run(int argc, char **argv)
{
    kiln_farm_opts_t fo = {0};
    kiln_opt_list_t aliases = {0}, action_sources = {0};
    fo.label_aliases = &aliases;
    fo.action_sources = &action_sources;
    const char *keep = NULL;
    bool json = false, raw = false, dirty = false;
    int npos = 0, code = KILN_EXIT_INFRA;
    char *text = NULL;
    size_t len = 0;
    kiln_farm_t *farm = NULL;
    kiln_client_t *client = NULL;
    kiln_cli_inputs_t inputs = {0};
    /* --input is taken out of argv before the table (it repeats); the
     * entry documents it in --help. */
    const char *input_doc = NULL;
    if (kiln_cli_take_inputs(&argc, argv, &inputs) != 0)
        return KILN_EXIT_USAGE;
    kiln_opt_t opts[] = {
        {"workers", KILN_OPT_INT, &fo.workers, "number of local workers (number of CPUs)"},
        {"slots", KILN_OPT_INT, &fo.slots, "jobs each worker runs at once (1)"},
        {"labels", KILN_OPT_STRING, &fo.labels, "extra labels for the local workers"},
        {"label-alias", KILN_OPT_LIST, &aliases,
         "PATTERN=LABEL: runs-on PATTERN runs on workers labelled LABEL (repeatable)"},
        {"actions-source", KILN_OPT_LIST, &action_sources,
         "DIR, URL or OWNER=DIR|URL: where uses: OWNER/REPO@REF is fetched from (repeatable, in order)"},
        {"vars", KILN_OPT_STRING, &fo.vars, "JSON file of configuration variables (vars)"},
        {"keep", KILN_OPT_STRING, &keep, "keep the farm's data (history, logs) in DIR"},
        {"json", KILN_OPT_BOOL, &json, "print a JSON summary instead of live output"},
        {"raw", KILN_OPT_BOOL, &raw, "print step output as it came, terminal sequences included"},
        {"input", KILN_OPT_STRING, &input_doc,
         "NAME=VALUE: a workflow_dispatch input (repeatable)"},
        {"event", KILN_OPT_STRING, &inputs.event,
         "the event the run is for: github.event_name (push; workflow_dispatch with --input)"},
        {"dirty", KILN_OPT_BOOL, &dirty,
         "check out the work tree as it is, uncommitted changes included (not HEAD)"},
        {"log-level", KILN_OPT_STRING, &fo.log_level, "daemon log level (info)"},
        {NULL, 0, NULL, NULL},
    };
    int rc = kiln_opts_parse(opts, argc, argv, 2, &npos);
    kiln_follow_set_raw(raw);
    if (rc != 0 || npos != 1) {
        if (rc == 0)
            kiln_error_set("expected one workflow file");
        return kiln_cli_usage_error("run", "WORKFLOW.yml [options]", opts, rc ? rc : -1);
    }
    const char *file = argv[2];
    if (kiln_cli_validate(file, &text, &len) != 0 || kiln_cli_check_inputs(file, text, len, &inputs) != 0) {
        free(text);
        kiln_cli_inputs_free(&inputs);
        return KILN_EXIT_USAGE;
    }
    /* The repository the file is in, at HEAD, is the run's. */
    if ((code = kiln_cli_source_local(file, dirty, &inputs.source)) != 0) {
        free(text);
        kiln_cli_inputs_free(&inputs);
        return code;
    }
    code = KILN_EXIT_INFRA;
    fo.data_dir = keep;
    if (kiln_farm_start(&farm, &fo) != 0) {
        fprintf(stderr, "kiln: cannot start a local farm: %s\n", kiln_error_last());
        free(text);
        kiln_cli_inputs_free(&inputs);
        return KILN_EXIT_INFRA;
    }
    kiln_client_target_t t = {.data_dir = kiln_farm_dir(farm)};
    if (kiln_client_resolve(&t) != 0 || kiln_client_open(&client, &t) != 0) {
        fprintf(stderr, "kiln: cannot connect to the local farm: %s\n", kiln_error_last());
        goto cleanup;
    }
    int sigfd = -1;
    int wake = kiln_cli_interrupt_fd(kiln_farm_coordinator_fd(farm), &sigfd);
    /* Its farm is all the workers there will be. */
    kiln_follow_set_own_farm(kiln_farm_workers(farm));
    code = kiln_cli_submit_and_follow(client, file, text, len, !json, json, wake, NULL, &inputs);
    if (code == KILN_EXIT_INTERRUPTED) {
        const char *what = NULL;
        if (!kiln_farm_alive(farm, &what)) {
            fprintf(stderr, "kiln: %s stopped unexpectedly; see %s/logs\n", what,
                    kiln_farm_dir(farm));
            code = KILN_EXIT_INFRA;
        } else {
            fprintf(stderr, "\nkiln: interrupted; stopping the local farm\n");
        }
    }
    close(wake);
    close(sigfd);
cleanup:
    kiln_client_destroy(&client);
    if (keep && !json)
        printf("farm data kept in %s\n", kiln_farm_dir(farm));
    kiln_farm_stop(&farm, keep != NULL);
    free(text);
    kiln_cli_inputs_free(&inputs);
    return code;
}

int kiln_cmd_up(int argc, char **argv)
{
    kiln_farm_opts_t fo = {0};
    kiln_opt_list_t aliases = {0}, action_sources = {0};
    fo.label_aliases = &aliases;
    fo.action_sources = &action_sources;
    int npos = 0;
    kiln_farm_t *farm = NULL;
    static char home_dir[4096];
    fo.listen = "tcp://127.0.0.1:7420";
    kiln_opt_t opts[] = {
        {"workers", KILN_OPT_INT, &fo.workers, "number of local workers (number of CPUs)"},
        {"slots", KILN_OPT_INT, &fo.slots, "jobs each worker runs at once (1)"},
        {"labels", KILN_OPT_STRING, &fo.labels, "extra labels for the local workers"},
        {"label-alias", KILN_OPT_LIST, &aliases,
         "PATTERN=LABEL: runs-on PATTERN runs on workers labelled LABEL (repeatable)"},
        {"actions-source", KILN_OPT_LIST, &action_sources,
         "DIR, URL or OWNER=DIR|URL: where uses: OWNER/REPO@REF is fetched from (repeatable, in order)"},
        {"data-dir", KILN_OPT_STRING, &fo.data_dir, "where the farm keeps its state (~/.kiln)"},
        {"listen", KILN_OPT_STRING, &fo.listen, "coordinator endpoint (tcp://127.0.0.1:7420)"},
        {"vars", KILN_OPT_STRING, &fo.vars, "JSON file of configuration variables (vars)"},
        {"log-level", KILN_OPT_STRING, &fo.log_level, "daemon log level (info)"},
        {NULL, 0, NULL, NULL},
    };
    int rc = kiln_opts_parse(opts, argc, argv, 2, &npos);
    if (rc != 0 || npos != 0)
        return kiln_cli_usage_error("up", "[options]", opts, rc ? rc : -1);
    if (!fo.data_dir)
        fo.data_dir = getenv("KILN_DATA_DIR");
    if (!fo.data_dir && getenv("HOME")) {
        snprintf(home_dir, sizeof home_dir, "%s/.kiln", getenv("HOME"));
        fo.data_dir = home_dir;
    }
    if (!fo.data_dir) {
        fprintf(stderr, "kiln up: no --data-dir and no HOME\n");
        return KILN_EXIT_USAGE;
    }
    int sigfd = -1;
    int wake = kiln_cli_interrupt_fd(-1, &sigfd);
    if (kiln_farm_start(&farm, &fo) != 0) {
        fprintf(stderr, "kiln up: %s\n", kiln_error_last());
        return KILN_EXIT_INFRA;
    }
    const char *dir = kiln_farm_dir(farm);
    printf("kiln farm up\n"
           "  coordinator  %s\n"
           "  server key   %s/keys/server.pub\n"
           "  client key   %s/keys/client.key\n"
           "  logs         %s/logs\n"
           "  workers      %d\n"
           "clients: kiln submit --data-dir %s FILE   (Ctrl-C stops the farm)\n",
           kiln_farm_endpoint(farm), dir, dir, dir,
           fo.workers > 0 ? fo.workers : (int)sysconf(_SC_NPROCESSORS_ONLN), dir);
    fflush(stdout);
    struct epoll_event ev = {.events = EPOLLIN};
    ev.data.fd = kiln_farm_coordinator_fd(farm);
    epoll_ctl(wake, EPOLL_CTL_ADD, ev.data.fd, &ev);
    int code = KILN_EXIT_OK;
    int64_t next_restart = -1;
    for (;;) {
        /* Every worker's pidfd (a restarted worker has a new one; a closed
         * one left the set by itself). */
        int fds[KILN_FARM_MAX_WORKERS];
        int nf = kiln_farm_worker_fds(farm, fds, KILN_FARM_MAX_WORKERS);
        for (int i = 0; i < nf; i++) {
            if (fds[i] < 0)
                continue;
            struct epoll_event wev = {.events = EPOLLIN, .data.fd = fds[i]};
            epoll_ctl(wake, EPOLL_CTL_ADD, fds[i], &wev);
        }
        int timeout = -1;
        if (next_restart >= 0) {
            int64_t left = next_restart - kiln_clock_mono_ms();
            timeout = left > 0 ? (int)left : 0;
        }
        struct epoll_event got = {0};
        int n = epoll_wait(wake, &got, 1, timeout);
        if (n == -1 && errno == EINTR)
            continue;
        if (n == 1 && got.data.fd == sigfd) {
            printf("stopping the farm\n");
            break;
        }
        const char *what = NULL;
        if (!kiln_farm_alive(farm, &what)) {
            fprintf(stderr, "kiln up: %s stopped unexpectedly; see %s/logs\n", what, dir);
            code = KILN_EXIT_INFRA;
            break;
        }
        next_restart = kiln_farm_supervise(farm, kiln_clock_mono_ms());
    }
    kiln_farm_stop(&farm, true);
    close(wake);
    close(sigfd);
    return code;
}

/* kiln submit --repo: the coordinator fetches the repository, resolves the
 * ref and starts a run of each workflow named (or of each one whose on:
 * takes the event); their numbers come back together. */
typedef struct {
    const char *repo, *ref, *before, *base, *action;
    int number;
    kiln_opt_list_t workflows;
} s_repo_opts_t;

static int s_submit_repo(kiln_cli_common_t *c, kiln_client_t *client, s_repo_opts_t *ro,
                         kiln_cli_inputs_t *inputs, bool wait)
{
    const char *repo = ro->repo, *ref = ro->ref, *before = ro->before;
    const kiln_opt_list_t *workflows = &ro->workflows;
    Kiln__Request req = KILN__REQUEST__INIT;
    Kiln__Source src = KILN__SOURCE__INIT;
    Kiln__Envelope *reply = NULL;
    char url[PATH_MAX];
    int code = KILN_EXIT_INFRA;
    /* A path is the coordinator's to open: made absolute here. */
    if (!strstr(repo, "://") && !(strchr(repo, ':') && !strchr(repo, '/')) &&
        repo[0] != '/' && realpath(repo, url))
        repo = url;
    src.url = (char *)repo;
    src.ref = (char *)(ref ? ref : "");
    src.before = (char *)(before ? before : "");
    src.base_ref = (char *)(ro->base ? ro->base : "");
    src.action = (char *)(ro->action ? ro->action : "");
    src.number = ro->number > 0 ? (uint32_t)ro->number : 0;
    req.kind = KILN__REQUEST_KIND__REQ_SUBMIT;
    req.source = &src;
    req.workflows = (char **)workflows->items;
    req.n_workflows = workflows->n;
    req.inputs = inputs->ptrs;
    req.n_inputs = inputs->n;
    req.event = (char *)(inputs->event ? inputs->event : "");
    /* Watched from the start, so no event of theirs is missed. */
    req.follow = wait;
    req.follow_quiet = c->json;
    /* The coordinator may fetch for a while before it answers. */
    int rc = kiln_client_call(client, &req, KILN_FARM_START_TIMEOUT_MS, &reply);
    if (rc != 0) {
        fprintf(stderr, "kiln: submit failed: %s\n", kiln_error_last());
        goto cleanup;
    }
    const Kiln__Reply *r = reply->reply;
    if (r->error[0])
        fprintf(stderr, "%s%s", r->error, r->error[strlen(r->error) - 1] == '\n' ? "" : "\n");
    if (r->code != 0) {
        code = r->code == KILN_EINVAL ? KILN_EXIT_USAGE : KILN_EXIT_INFRA;
        goto cleanup;
    }
    if (c->json) {
        printf("{\"runs\": [");
        for (size_t i = 0; i < r->n_run_ids; i++)
            printf("%s{\"run\": %llu, \"file\": \"%s\"}", i ? ", " : "",
                   (unsigned long long)r->run_ids[i], i < r->n_run_files ? r->run_files[i] : "");
        printf("]}\n");
    } else {
        for (size_t i = 0; i < r->n_run_ids; i++)
            printf("run %llu: %s\n", (unsigned long long)r->run_ids[i],
                   i < r->n_run_files ? r->run_files[i] : "");
    }
    fflush(stdout);
    code = KILN_EXIT_OK;
    if (wait) {
        int sigfd = -1;
        int wake = kiln_cli_interrupt_fd(-1, &sigfd);
        /* Each run in turn; the exit code is the worst of theirs. */
        for (size_t i = 0; i < r->n_run_ids; i++) {
            char state[64] = "";
            int frc = kiln_follow_run(client, (int64_t)r->run_ids[i], !c->json, NULL, wake, state,
                                      sizeof state);
            int one = frc == KILN_EAGAIN ? KILN_EXIT_INTERRUPTED
                      : frc != 0         ? KILN_EXIT_INFRA
                                         : kiln_follow_summary(client, (int64_t)r->run_ids[i],
                                                               c->json);
            if (frc != 0 && frc != KILN_EAGAIN)
                fprintf(stderr, "kiln: lost run %llu: %s\n", (unsigned long long)r->run_ids[i],
                        kiln_error_last());
            if (one > code)
                code = one;
            if (frc == KILN_EAGAIN)
                break;
        }
        close(wake);
        close(sigfd);
    }
cleanup:
    if (reply)
        kiln__envelope__free_unpacked(reply, NULL);
    return code;
}

int kiln_cmd_submit(int argc, char **argv)
{
    kiln_cli_common_t c = {0};
    bool wait = false, no_check = false, raw = false, dirty = false;
    s_repo_opts_t ro = {0};
    int npos = 0, code;
    char *text = NULL;
    size_t len = 0;
    kiln_client_t *client = NULL;
    kiln_cli_inputs_t inputs = {0};
    /* --input is taken out of argv before the table (it repeats); the
     * entry documents it in --help. */
    const char *input_doc = NULL;
    if (kiln_cli_take_inputs(&argc, argv, &inputs) != 0)
        return KILN_EXIT_USAGE;
    kiln_opt_t opts[] = {
        KILN_CLI_TARGET_OPTS(c),
        {"wait", KILN_OPT_BOOL, &wait, "follow the run and exit with its result"},
        {"no-check", KILN_OPT_BOOL, &no_check,
         "send without checking the file here first (the coordinator checks it)"},
        {"json", KILN_OPT_BOOL, &c.json,
         "print JSON: the run's record with --wait, {\"run\": N} without"},
        {"raw", KILN_OPT_BOOL, &raw, "with --wait: print step output as it came, terminal sequences included"},
        {"input", KILN_OPT_STRING, &input_doc,
         "NAME=VALUE: a workflow_dispatch input (repeatable)"},
        {"event", KILN_OPT_STRING, &inputs.event,
         "the event the run is for: github.event_name (push; workflow_dispatch with --input)"},
        {"dirty", KILN_OPT_BOOL, &dirty,
         "check out the file's work tree as it is, uncommitted changes included"},
        {"repo", KILN_OPT_STRING, &ro.repo,
         "URL: run the repository's workflows (a path, file://, git://, http(s)://, ssh)"},
        {"ref", KILN_OPT_STRING, &ro.ref, "with --repo: the branch, tag or commit (HEAD)"},
        {"workflow", KILN_OPT_LIST, &ro.workflows,
         "with --repo: PATH of a workflow in the repository to run (repeatable; default: every "
         "one under .github/workflows whose on: takes the event)"},
        {"before", KILN_OPT_STRING, &ro.before,
         "with --repo: the commit the ref was at before this push (github.event.before)"},
        {"base", KILN_OPT_STRING, &ro.base,
         "with --repo and --event pull_request: the pull request's base branch (--ref is its head)"},
        {"pr", KILN_OPT_INT, &ro.number, "with --base: the pull request's number (1)"},
        {"action", KILN_OPT_STRING, &ro.action,
         "with --base: the pull request's activity type (opened; synchronize, reopened, ...)"},
        {NULL, 0, NULL, NULL},
    };
    int rc = kiln_opts_parse(opts, argc, argv, 2, &npos);
    kiln_follow_set_raw(raw);
    if (rc != 0 || npos != (ro.repo ? 0 : 1)) {
        if (rc == 0)
            kiln_error_set(ro.repo ? "--repo takes no workflow file: name one with --workflow PATH"
                                : "expected one workflow file (or --repo URL)");
        return kiln_cli_usage_error("submit", "WORKFLOW.yml [--wait] [options] | --repo URL [--ref REF] [--workflow PATH]...", opts, rc ? rc : -1);
    }
    if (!ro.repo && (ro.ref || ro.workflows.n || ro.before || ro.base || ro.number || ro.action)) {
        fprintf(stderr, "kiln submit: --ref, --workflow, --before, --base, --pr and --action go "
                        "with --repo\n");
        kiln_cli_inputs_free(&inputs);
        return KILN_EXIT_USAGE;
    }
    if (ro.repo) {
        if ((code = kiln_cli_connect(&c, &client)) == 0)
            code = s_submit_repo(&c, client, &ro, &inputs, wait);
        kiln_client_destroy(&client);
        kiln_cli_inputs_free(&inputs);
        return code;
    }
    if ((code = no_check ? kiln_cli_read_file(argv[2], &text, &len) : kiln_cli_validate(argv[2], &text, &len)) !=
            0 ||
        (!no_check && (code = kiln_cli_check_inputs(argv[2], text, len, &inputs)) != 0) ||
        (code = kiln_cli_source_local(argv[2], dirty, &inputs.source)) != 0) {
        free(text);
        kiln_cli_inputs_free(&inputs);
        return code;
    }
    if ((code = kiln_cli_connect(&c, &client)) != 0) {
        free(text);
        kiln_cli_inputs_free(&inputs);
        return code;
    }
    if (wait) {
        int sigfd = -1;
        int wake = kiln_cli_interrupt_fd(-1, &sigfd);
        int64_t run = 0;
        code = kiln_cli_submit_and_follow(client, argv[2], text, len, !c.json, c.json, wake, &run,
                                   &inputs);
        close(wake);
        close(sigfd);
    } else {
        Kiln__Request req = KILN__REQUEST__INIT;
        Kiln__Envelope *reply = NULL;
        req.kind = KILN__REQUEST_KIND__REQ_SUBMIT;
        req.workflow_file = argv[2];
        req.workflow_yaml.data = (uint8_t *)text;
        req.workflow_yaml.len = len;
        req.inputs = inputs.ptrs;
        req.n_inputs = inputs.n;
        req.event = (char *)(inputs.event ? inputs.event : "");
        req.source = inputs.source;
        kiln_cli_actions_attach(&req);
        code = kiln_cli_call(client, &req, &reply);
        if (code == 0)
            kiln_cli_print_farm_warnings(reply->reply->error);
        if (code == 0 && c.json)
            printf("{\"run\": %llu, \"state\": \"accepted\"}\n",
                   (unsigned long long)reply->reply->run_id);
        else if (code == 0)
            printf("%llu\n", (unsigned long long)reply->reply->run_id);
        if (reply)
            kiln__envelope__free_unpacked(reply, NULL);
    }
    kiln_client_destroy(&client);
    free(text);
    kiln_cli_inputs_free(&inputs);
    return code;
}
