/* main.c: the `kiln` command: run a workflow on a private farm, run a
 * persistent farm, and talk to a running one. Each subcommand is a
 * function here; the pieces they share live in client.c (the connection),
 * farm.c (local farms) and follow.c (live output and summaries). */
#include <errno.h>
#include <limits.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/client.h"
#include "common/clock.h"
#include "common/config.h"
#include "lang/expr.h"
#include "common/error.h"
#include "cli/farm.h"
#include "cli/follow.h"
#include "common/keys.h"
#include "common/log.h"
#include "lang/parse.h"
#include "lang/rungraph.h"

/* How long a client waits for an answer; KILN_REQUEST_TIMEOUT_MS overrides
 * it (scripts that probe a farm want to give up sooner). A fresh local farm
 * needs a moment before the coordinator answers, hence the longer wait for
 * the first request of `kiln run`. */
#define KILN_REQUEST_TIMEOUT_DEFAULT_MS 15000
#define KILN_FARM_START_TIMEOUT_MS 30000
#define KILN_REQUEST_TIMEOUT_MS s_request_timeout_ms()

static int s_request_timeout_ms(void)
{
    const char *v = getenv("KILN_REQUEST_TIMEOUT_MS");
    int ms = v ? atoi(v) : 0;
    return ms > 0 ? ms : KILN_REQUEST_TIMEOUT_DEFAULT_MS;
}

typedef struct {
    kiln_client_target_t target;
    bool json;
} s_common_t;

#define S_TARGET_OPTS(c)                                                                       \
    {"data-dir", KILN_OPT_STRING, &(c).target.data_dir, "the farm's data directory (~/.kiln)"}, \
        {"coordinator", KILN_OPT_STRING, &(c).target.coordinator,                              \
         "coordinator endpoint (or KILN_COORDINATOR)"},                                        \
        {"server-key", KILN_OPT_STRING, &(c).target.server_key,                                \
         "coordinator public key file (or KILN_SERVER_KEY)"},                                  \
        {"key", KILN_OPT_STRING, &(c).target.key, "client key pair file (or KILN_CLIENT_KEY)"}

static int s_usage_error(const char *cmd, const char *usage, const kiln_opt_t *opts, int rc)
{
    FILE *out = rc == 1 ? stdout : stderr;
    if (rc < 0)
        fprintf(stderr, "kiln %s: %s\n", cmd, kiln_error_last());
    fprintf(out, "usage: kiln %s %s\n\n", cmd, usage);
    kiln_opts_print(out, opts);
    return rc == 1 ? KILN_EXIT_OK : KILN_EXIT_USAGE;
}

/* Reads a workflow file and validates it the way the coordinator will,
 * printing every diagnostic. Returns 0, or KILN_EXIT_USAGE on errors.
 * *text gets the file's contents (caller frees). */
/* The local composite actions of the workflow last read by s_validate:
 * path -> action.yml text. The CLI handles one workflow at a time. */
static json_t *s_actions;

/* The repository a workflow belongs to: the nearest directory above the
 * file holding .git or .github; else the current directory. Local actions
 * (uses: ./path) are found from there, as GitHub does from the checkout. */
static void s_repo_root(const char *workflow, char *out, size_t cap)
{
    char dir[PATH_MAX];
    if (!realpath(workflow, dir)) {
        snprintf(out, cap, ".");
        return;
    }
    for (;;) {
        char *slash = strrchr(dir, '/');
        if (!slash)
            break;
        *slash = '\0';
        const char *d = dir[0] ? dir : "/";
        char probe[PATH_MAX + 16];
        struct stat st;
        snprintf(probe, sizeof probe, "%s/.git", d);
        bool found = stat(probe, &st) == 0;
        snprintf(probe, sizeof probe, "%s/.github", d);
        found = found || (stat(probe, &st) == 0 && S_ISDIR(st.st_mode));
        if (found) {
            snprintf(out, cap, "%s", d);
            return;
        }
        if (!dir[0])
            break;
    }
    snprintf(out, cap, ".");
}

/* A repository file of at most max bytes into files under key; its own
 * local uses are queued. */
static bool s_gather_file(const char *file, const char *key, size_t max, json_t *queue)
{
    FILE *f = fopen(file, "re");
    if (!f)
        return false;
    char *buf = malloc(max + 2);
    size_t n = buf ? fread(buf, 1, max + 1, f) : 0;
    fclose(f);
    if (buf && n <= max) {
        buf[n] = '\0';
        json_object_set_new(s_actions, key, json_stringn(buf, n));
        kiln_workflow_local_uses(buf, n, queue);
    }
    free(buf);
    return true;
}

/* Reads the local actions and called workflows a workflow uses, and those
 * they use in turn. */
static void s_gather_actions(const char *workflow, const char *text, size_t len)
{
    char root[PATH_MAX];
    json_decref(s_actions);
    s_actions = json_object();
    json_t *queue = json_array();
    s_repo_root(workflow, root, sizeof root);
    kiln_workflow_local_uses(text, len, queue);
    for (size_t i = 0; i < json_array_size(queue) && i < KILN_WF_MAX_ACTIONS; i++) {
        json_t *use = json_array_get(queue, i);
        const char *path = json_string_value(json_object_get(use, "path"));
        const char *kind = json_string_value(json_object_get(use, "kind"));
        if (!path || json_object_get(s_actions, path))
            continue;
        char file[PATH_MAX * 2];
        if (strcmp(kind, "workflow") == 0) {
            snprintf(file, sizeof file, "%s/%s", root, path);
            s_gather_file(file, path, KILN_WF_MAX_BYTES, queue);
            continue;
        }
        static const char *names[] = {"action.yml", "action.yaml"};
        for (int k = 0; k < 2; k++) {
            snprintf(file, sizeof file, "%s/%s/%s", root, path, names[k]);
            if (s_gather_file(file, path, KILN_WF_MAX_ACTION_BYTES, queue))
                break;
        }
    }
    json_decref(queue);
}

/* Parses a workflow the way the coordinator will, with the files gathered
 * (s_actions). */
static int s_parse(kiln_workflow_t **wf, const char *path, const char *text, size_t len,
                   kiln_diags_t *diags)
{
    kiln_loader_t loader;
    kiln_loader_json(&loader, s_actions);
    return kiln_workflow_parse(wf, path, text, len, &loader, diags);
}

static int s_validate(const char *path, char **text, size_t *len)
{
    kiln_diags_t diags;
    kiln_workflow_t *wf = NULL;
    int rc = KILN_EXIT_USAGE;
    kiln_diags_init(&diags, path);
    *text = NULL;
    FILE *f = fopen(path, "re");
    if (!f) {
        fprintf(stderr, "kiln: cannot open %s: %s\n", path, strerror(errno));
        goto cleanup;
    }
    char *buf = malloc(KILN_WF_MAX_BYTES + 1);
    size_t n = buf ? fread(buf, 1, KILN_WF_MAX_BYTES + 1, f) : 0;
    fclose(f);
    if (!buf) {
        fprintf(stderr, "kiln: out of memory\n");
        goto cleanup;
    }
    if (n > KILN_WF_MAX_BYTES) {
        fprintf(stderr, "%s: error: file is larger than %d bytes\n", path, KILN_WF_MAX_BYTES);
        free(buf);
        goto cleanup;
    }
    buf[n] = '\0';
    s_gather_actions(path, buf, n);
    int prc = s_parse(&wf, path, buf, n, &diags);
    char *report = diags.n ? kiln_diags_format(&diags) : NULL;
    if (report)
        fputs(report, stderr);
    free(report);
    if (prc != 0) {
        free(buf);
        goto cleanup;
    }
    *text = buf;
    *len = n;
    rc = 0;
cleanup:
    kiln_workflow_destroy(&wf);
    kiln_diags_free(&diags);
    return rc;
}

#define KILN_CLI_MAX_INPUTS 100

/* Run inputs: every --input name=value (or --input=name=value) is taken out
 * of argv (options allow one value each) and kept in order. */
typedef struct {
    Kiln__KeyValue kv[KILN_CLI_MAX_INPUTS];
    Kiln__KeyValue *ptrs[KILN_CLI_MAX_INPUTS];
    char *text[KILN_CLI_MAX_INPUTS];
    size_t n;
} s_inputs_t;

static int s_take_inputs(int *argc, char **argv, s_inputs_t *in)
{
    int w = 0;
    for (int i = 0; i < *argc; i++) {
        const char *v = NULL;
        if (strcmp(argv[i], "--input") == 0 && i + 1 < *argc)
            v = argv[++i];
        else if (strncmp(argv[i], "--input=", 8) == 0)
            v = argv[i] + 8;
        if (!v) {
            argv[w++] = argv[i];
            continue;
        }
        const char *eq = strchr(v, '=');
        if (!eq || eq == v || in->n == KILN_CLI_MAX_INPUTS) {
            fprintf(stderr, "kiln: --input takes name=value (at most %d), not '%s'\n",
                    KILN_CLI_MAX_INPUTS, v);
            return -1;
        }
        in->text[in->n] = strndup(v, (size_t)(eq - v));
        kiln__key_value__init(&in->kv[in->n]);
        in->kv[in->n].key = in->text[in->n];
        in->kv[in->n].value = (char *)eq + 1;
        in->ptrs[in->n] = &in->kv[in->n];
        in->n++;
    }
    *argc = w;
    argv[w] = NULL;
    return 0;
}

static void s_inputs_free(s_inputs_t *in)
{
    for (size_t i = 0; i < in->n; i++)
        free(in->text[i]);
    in->n = 0;
}

/* Checks the inputs against the workflow here, so a wrong one is exit 2
 * before any farm is involved. */
static int s_check_inputs(const char *path, const char *text, size_t len, const s_inputs_t *in)
{
    kiln_diags_t diags;
    kiln_workflow_t *wf = NULL;
    json_t *given = json_object(), *typed = NULL;
    int rc = 0;
    kiln_diags_init(&diags, path);
    if (s_parse(&wf, path, text, len, &diags) == 0) {
        json_t *none = json_object();
        for (size_t i = 0; i < in->n; i++)
            json_object_set_new(given, in->kv[i].key, json_string(in->kv[i].value));
        int irc = kiln_workflow_inputs(wf->inputs ? wf->inputs : none,
                                       "on.workflow_dispatch.inputs", given, &typed);
        json_decref(none);
        if (irc != 0) {
            fprintf(stderr, "%s: error: %s\n", path, kiln_error_last());
            rc = KILN_EXIT_USAGE;
        }
    }
    json_decref(typed);
    json_decref(given);
    kiln_workflow_destroy(&wf);
    kiln_diags_free(&diags);
    return rc;
}

/* Adds the gathered local actions to a submission (the strings stay owned
 * by s_actions, which lives as long as the process's request). */
static void s_actions_attach(Kiln__Request *req)
{
    static Kiln__KeyValue kv[KILN_WF_MAX_ACTIONS];
    static Kiln__KeyValue *ptrs[KILN_WF_MAX_ACTIONS];
    size_t n = 0;
    const char *path;
    json_t *text;
    json_object_foreach(s_actions, path, text) {
        if (n == KILN_WF_MAX_ACTIONS)
            break;
        kiln__key_value__init(&kv[n]);
        kv[n].key = (char *)path;
        kv[n].value = (char *)json_string_value(text);
        ptrs[n] = &kv[n];
        n++;
    }
    req->actions = ptrs;
    req->n_actions = n;
}

/* Reads a file of at most KILN_WF_MAX_BYTES without checking it. */
static int s_read_file(const char *path, char **text, size_t *len)
{
    FILE *f = fopen(path, "re");
    *text = NULL;
    if (!f) {
        fprintf(stderr, "kiln: cannot open %s: %s\n", path, strerror(errno));
        return KILN_EXIT_USAGE;
    }
    char *buf = malloc(KILN_WF_MAX_BYTES + 2);
    size_t n = buf ? fread(buf, 1, KILN_WF_MAX_BYTES + 1, f) : 0;
    fclose(f);
    if (!buf || n > KILN_WF_MAX_BYTES) {
        fprintf(stderr, "%s: error: %s\n", path,
                buf ? "file is larger than the workflow limit" : "out of memory");
        free(buf);
        return KILN_EXIT_USAGE;
    }
    buf[n] = '\0';
    *text = buf;
    *len = n;
    return 0;
}

/* An epoll set over SIGINT/SIGTERM (and optionally a pidfd), so that a
 * single fd can wake the follow loop. */
static int s_interrupt_fd(int extra_fd, int *sigfd_out)
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

static int s_submit_and_follow(kiln_client_t *client, const char *file, const char *text,
                               size_t len, bool live, bool json, int wake_fd, int64_t *run_out,
                               s_inputs_t *in)
{
    Kiln__Request req = KILN__REQUEST__INIT;
    Kiln__Envelope *reply = NULL;
    int code = KILN_EXIT_INFRA;
    req.kind = KILN__REQUEST_KIND__REQ_SUBMIT;
    req.inputs = in->ptrs;
    req.n_inputs = in->n;
    s_actions_attach(&req);
    req.workflow_file = (char *)file;
    req.workflow_yaml.data = (uint8_t *)text;
    req.workflow_yaml.len = len;
    req.follow = live || json || run_out != NULL;
    /* Nothing is shown while it runs: only its end is needed. */
    req.follow_quiet = !live;
    int rc = kiln_client_call(client, &req,
                              getenv("KILN_REQUEST_TIMEOUT_MS") ? KILN_REQUEST_TIMEOUT_MS
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
    /* Warnings come back too; the same check here printed them already. */
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

static int cmd_run(int argc, char **argv)
{
    kiln_farm_opts_t fo = {0};
    const char *keep = NULL;
    bool json = false;
    int npos = 0, code = KILN_EXIT_INFRA;
    char *text = NULL;
    size_t len = 0;
    kiln_farm_t *farm = NULL;
    kiln_client_t *client = NULL;
    s_inputs_t inputs = {0};
    if (s_take_inputs(&argc, argv, &inputs) != 0)
        return KILN_EXIT_USAGE;
    kiln_opt_t opts[] = {
        {"workers", KILN_OPT_INT, &fo.workers, "number of local workers (number of CPUs)"},
        {"slots", KILN_OPT_INT, &fo.slots, "jobs each worker runs at once (1)"},
        {"labels", KILN_OPT_STRING, &fo.labels, "extra labels for the local workers"},
        {"vars", KILN_OPT_STRING, &fo.vars, "JSON file of configuration variables (vars)"},
        {"keep", KILN_OPT_STRING, &keep, "keep the farm's data (history, logs) in DIR"},
        {"json", KILN_OPT_BOOL, &json, "print a JSON summary instead of live output"},
        {"log-level", KILN_OPT_STRING, &fo.log_level, "daemon log level (info)"},
        {NULL, 0, NULL, NULL},
    };
    int rc = kiln_opts_parse(opts, argc, argv, 2, &npos);
    if (rc != 0 || npos != 1) {
        if (rc == 0)
            kiln_error_set("expected one workflow file");
        return s_usage_error("run", "WORKFLOW.yml [options]", opts, rc ? rc : -1);
    }
    const char *file = argv[2];
    if (s_validate(file, &text, &len) != 0 || s_check_inputs(file, text, len, &inputs) != 0) {
        free(text);
        s_inputs_free(&inputs);
        return KILN_EXIT_USAGE;
    }
    fo.data_dir = keep;
    if (kiln_farm_start(&farm, &fo) != 0) {
        fprintf(stderr, "kiln: cannot start a local farm: %s\n", kiln_error_last());
        free(text);
        return KILN_EXIT_INFRA;
    }
    kiln_client_target_t t = {.data_dir = kiln_farm_dir(farm)};
    if (kiln_client_resolve(&t) != 0 || kiln_client_open(&client, &t) != 0) {
        fprintf(stderr, "kiln: cannot connect to the local farm: %s\n", kiln_error_last());
        goto cleanup;
    }
    int sigfd = -1;
    int wake = s_interrupt_fd(kiln_farm_coordinator_fd(farm), &sigfd);
    code = s_submit_and_follow(client, file, text, len, !json, json, wake, NULL, &inputs);
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
    s_inputs_free(&inputs);
    return code;
}

static int cmd_up(int argc, char **argv)
{
    kiln_farm_opts_t fo = {0};
    int npos = 0;
    kiln_farm_t *farm = NULL;
    static char home_dir[4096];
    fo.listen = "tcp://127.0.0.1:7420";
    kiln_opt_t opts[] = {
        {"workers", KILN_OPT_INT, &fo.workers, "number of local workers (number of CPUs)"},
        {"slots", KILN_OPT_INT, &fo.slots, "jobs each worker runs at once (1)"},
        {"labels", KILN_OPT_STRING, &fo.labels, "extra labels for the local workers"},
        {"data-dir", KILN_OPT_STRING, &fo.data_dir, "where the farm keeps its state (~/.kiln)"},
        {"listen", KILN_OPT_STRING, &fo.listen, "coordinator endpoint (tcp://127.0.0.1:7420)"},
        {"vars", KILN_OPT_STRING, &fo.vars, "JSON file of configuration variables (vars)"},
        {"log-level", KILN_OPT_STRING, &fo.log_level, "daemon log level (info)"},
        {NULL, 0, NULL, NULL},
    };
    int rc = kiln_opts_parse(opts, argc, argv, 2, &npos);
    if (rc != 0 || npos != 0)
        return s_usage_error("up", "[options]", opts, rc ? rc : -1);
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
    int wake = s_interrupt_fd(-1, &sigfd);
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
    for (;;) {
        struct epoll_event got;
        int n = epoll_wait(wake, &got, 1, -1);
        if (n == -1 && errno == EINTR)
            continue;
        if (got.data.fd == sigfd) {
            printf("stopping the farm\n");
            break;
        }
        const char *what = NULL;
        if (!kiln_farm_alive(farm, &what)) {
            fprintf(stderr, "kiln up: %s stopped unexpectedly; see %s/logs\n", what, dir);
            code = KILN_EXIT_INFRA;
            break;
        }
    }
    kiln_farm_stop(&farm, true);
    close(wake);
    close(sigfd);
    return code;
}

static int s_connect(s_common_t *c, kiln_client_t **client)
{
    if (kiln_client_resolve(&c->target) != 0 || kiln_client_open(client, &c->target) != 0) {
        fprintf(stderr, "kiln: %s\n", kiln_error_last());
        return KILN_EXIT_USAGE;
    }
    return 0;
}

/* One request, one reply; prints the error on failure. */
static int s_call(kiln_client_t *client, Kiln__Request *req, Kiln__Envelope **reply)
{
    int rc = kiln_client_call(client, req, KILN_REQUEST_TIMEOUT_MS, reply);
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

static int64_t s_parse_run(const char *text)
{
    char *end = NULL;
    long long v = strtoll(text, &end, 10);
    return end && *end == '\0' && v > 0 ? (int64_t)v : -1;
}

static int cmd_submit(int argc, char **argv)
{
    s_common_t c = {0};
    bool wait = false, no_check = false;
    int npos = 0, code;
    char *text = NULL;
    size_t len = 0;
    kiln_client_t *client = NULL;
    s_inputs_t inputs = {0};
    if (s_take_inputs(&argc, argv, &inputs) != 0)
        return KILN_EXIT_USAGE;
    kiln_opt_t opts[] = {
        S_TARGET_OPTS(c),
        {"wait", KILN_OPT_BOOL, &wait, "follow the run and exit with its result"},
        {"no-check", KILN_OPT_BOOL, &no_check,
         "send without checking the file here first (the coordinator checks it)"},
        {"json", KILN_OPT_BOOL, &c.json, "with --wait: print a JSON summary"},
        {NULL, 0, NULL, NULL},
    };
    int rc = kiln_opts_parse(opts, argc, argv, 2, &npos);
    if (rc != 0 || npos != 1) {
        if (rc == 0)
            kiln_error_set("expected one workflow file");
        return s_usage_error("submit", "WORKFLOW.yml [--wait] [options]", opts, rc ? rc : -1);
    }
    if ((code = no_check ? s_read_file(argv[2], &text, &len) : s_validate(argv[2], &text, &len)) !=
            0 ||
        (!no_check && (code = s_check_inputs(argv[2], text, len, &inputs)) != 0)) {
        free(text);
        s_inputs_free(&inputs);
        return code;
    }
    if ((code = s_connect(&c, &client)) != 0) {
        free(text);
        return code;
    }
    if (wait) {
        int sigfd = -1;
        int wake = s_interrupt_fd(-1, &sigfd);
        int64_t run = 0;
        code = s_submit_and_follow(client, argv[2], text, len, !c.json, c.json, wake, &run,
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
        s_actions_attach(&req);
        code = s_call(client, &req, &reply);
        if (code == 0)
            printf("%llu\n", (unsigned long long)reply->reply->run_id);
        if (reply)
            kiln__envelope__free_unpacked(reply, NULL);
    }
    kiln_client_destroy(&client);
    free(text);
    s_inputs_free(&inputs);
    return code;
}

static int s_print_json_reply(const Kiln__Envelope *reply)
{
    json_t *doc = json_loadb((const char *)reply->reply->json.data, reply->reply->json.len, 0, NULL);
    char *text = doc ? json_dumps(doc, JSON_INDENT(2)) : NULL;
    if (text)
        printf("%s\n", text);
    free(text);
    json_decref(doc);
    return 0;
}

static void s_ms_text(json_t *v, char *out, size_t cap)
{
    if (json_is_integer(v))
        snprintf(out, cap, "%.2fs", (double)json_integer_value(v) / 1000.0);
    else
        snprintf(out, cap, "-");
}

static void s_print_runs(json_t *runs)
{
    size_t i;
    json_t *r;
    printf("%-6s  %-10s  %5s  %6s  %9s  %s\n", "RUN", "STATE", "JOBS", "FAILED", "DURATION",
           "WORKFLOW");
    json_array_foreach(runs, i, r) {
        char dur[32];
        s_ms_text(json_object_get(r, "duration_ms"), dur, sizeof dur);
        printf("%-6lld  %-10s  %5lld  %6lld  %9s  %s\n",
               (long long)json_integer_value(json_object_get(r, "id")),
               json_string_value(json_object_get(r, "state")),
               (long long)json_integer_value(json_object_get(r, "jobs")),
               (long long)json_integer_value(json_object_get(r, "failed")), dur,
               json_string_value(json_object_get(r, "name")));
    }
}

static void s_print_run(json_t *run)
{
    size_t i, k;
    json_t *job, *at;
    printf("run %lld  %s  %s  (%s)\n", (long long)json_integer_value(json_object_get(run, "id")),
           json_string_value(json_object_get(run, "name")),
           json_string_value(json_object_get(run, "state")),
           json_string_value(json_object_get(run, "file")));
    printf("\n%-24s  %-11s  %9s  %-14s  %s\n", "JOB", "STATE", "DURATION", "WORKER", "ATTEMPTS");
    json_array_foreach(json_object_get(run, "jobs"), i, job) {
        char dur[32];
        const char *worker = json_string_value(json_object_get(job, "worker"));
        s_ms_text(json_object_get(job, "duration_ms"), dur, sizeof dur);
        printf("%-24s  %-11s  %9s  %-14s  %lld\n", json_string_value(json_object_get(job, "name")),
               json_string_value(json_object_get(job, "state")), dur, worker ? worker : "-",
               (long long)json_integer_value(json_object_get(job, "attempt")));
        json_t *attempts = json_object_get(job, "attempts");
        if (json_array_size(attempts) > 1) {
            json_array_foreach(attempts, k, at) {
                const char *msg = json_string_value(json_object_get(at, "message"));
                printf("    attempt %lld on %s: %s%s%s\n",
                       (long long)json_integer_value(json_object_get(at, "attempt")),
                       json_string_value(json_object_get(at, "worker")),
                       json_string_value(json_object_get(at, "state")), msg ? " - " : "",
                       msg ? msg : "");
            }
        }
    }
}

/* One request, its JSON answer rendered by render (or printed as JSON with
 * --json). The pattern of every query command. */
static int s_query(s_common_t *c, Kiln__Request *req, void (*render)(json_t *doc))
{
    kiln_client_t *client = NULL;
    Kiln__Envelope *reply = NULL;
    int code;
    if ((code = s_connect(c, &client)) != 0)
        return code;
    if ((code = s_call(client, req, &reply)) == 0) {
        json_t *doc = json_loadb((const char *)reply->reply->json.data, reply->reply->json.len, 0,
                                 NULL);
        if (c->json)
            s_print_json_reply(reply);
        else
            render(doc);
        json_decref(doc);
    }
    if (reply)
        kiln__envelope__free_unpacked(reply, NULL);
    kiln_client_destroy(&client);
    return code;
}

static void s_render_run(json_t *doc)
{
    s_print_run(doc);
    kiln_follow_print_extras(doc);
}

static int cmd_status(int argc, char **argv)
{
    s_common_t c = {0};
    int npos = 0;
    kiln_opt_t opts[] = {
        S_TARGET_OPTS(c),
        {"json", KILN_OPT_BOOL, &c.json, "print JSON"},
        {NULL, 0, NULL, NULL},
    };
    int rc = kiln_opts_parse(opts, argc, argv, 2, &npos);
    int64_t run = npos == 1 ? s_parse_run(argv[2]) : 0;
    if (rc != 0 || npos > 1 || run < 0) {
        if (rc == 0)
            kiln_error_set("RUN must be a run number");
        return s_usage_error("status", "[RUN] [options]", opts, rc ? rc : -1);
    }
    Kiln__Request req = KILN__REQUEST__INIT;
    req.kind = KILN__REQUEST_KIND__REQ_STATUS;
    req.run_id = (uint64_t)run;
    req.limit = 20;
    return s_query(&c, &req, run ? s_render_run : s_print_runs);
}

static int cmd_history(int argc, char **argv)
{
    s_common_t c = {0};
    int npos = 0, limit = 20;
    kiln_opt_t opts[] = {
        S_TARGET_OPTS(c),
        {"limit", KILN_OPT_INT, &limit, "how many runs, newest first (20, at most 1000)"},
        {"json", KILN_OPT_BOOL, &c.json, "print JSON"},
        {NULL, 0, NULL, NULL},
    };
    int rc = kiln_opts_parse(opts, argc, argv, 2, &npos);
    if (rc != 0 || npos != 0 || limit < 1 || limit > 1000) {
        if (rc == 0)
            kiln_error_set("--limit must be 1..1000 and no arguments are taken");
        return s_usage_error("history", "[--limit N] [--json] [options]", opts, rc ? rc : -1);
    }
    Kiln__Request req = KILN__REQUEST__INIT;
    req.kind = KILN__REQUEST_KIND__REQ_HISTORY;
    req.limit = (uint32_t)limit;
    return s_query(&c, &req, s_print_runs);
}

/* Whether this job#attempt was seen before (records it if not). */
static bool s_seen_attempt(const char *key)
{
    static char seen[1024][256];
    static size_t n;
    for (size_t i = 0; i < n; i++)
        if (strcmp(seen[i], key) == 0)
            return true;
    if (n < 1024)
        snprintf(seen[n++], sizeof seen[0], "%s", key);
    return false;
}

static int cmd_logs(int argc, char **argv)
{
    s_common_t c = {0};
    bool follow = false;
    int npos = 0, code;
    kiln_client_t *client = NULL;
    Kiln__Envelope *reply = NULL;
    kiln_opt_t opts[] = {
        S_TARGET_OPTS(c),
        {"follow", KILN_OPT_BOOL, &follow, "keep following a running run (also -f)"},
        {NULL, 0, NULL, NULL},
    };
    for (int i = 2; i < argc; i++)
        if (strcmp(argv[i], "-f") == 0)
            argv[i] = "--follow";
    int rc = kiln_opts_parse(opts, argc, argv, 2, &npos);
    int64_t run = npos >= 1 ? s_parse_run(argv[2]) : -1;
    if (rc != 0 || npos < 1 || npos > 2 || run < 0) {
        if (rc == 0)
            kiln_error_set("expected RUN [JOB]");
        return s_usage_error("logs", "RUN [JOB] [-f] [options]", opts, rc ? rc : -1);
    }
    const char *job = npos == 2 ? argv[3] : NULL;
    if ((code = s_connect(&c, &client)) != 0)
        return code;
    Kiln__Request req = KILN__REQUEST__INIT;
    req.kind = KILN__REQUEST_KIND__REQ_LOGS;
    req.run_id = (uint64_t)run;
    req.job_id = (char *)(job ? job : "");
    req.follow = follow;
    if ((code = s_call(client, &req, &reply)) == 0) {
        int sigfd = -1;
        int wake = s_interrupt_fd(-1, &sigfd);
        for (;;) {
            Kiln__Envelope *m = NULL;
            rc = kiln_client_next_event(client, follow ? -1 : KILN_REQUEST_TIMEOUT_MS, wake, &m);
            if (rc != 0) {
                if (rc != KILN_EAGAIN) {
                    fprintf(stderr, "kiln: %s\n", kiln_error_last());
                    code = KILN_EXIT_INFRA;
                }
                break;
            }
            const Kiln__RunEvent *ev = m->event;
            /* Following one job ends with that job. */
            bool end = ev->kind == KILN__EVENT_KIND__EVENT_END ||
                       ev->kind == KILN__EVENT_KIND__EVENT_RUN_FINISHED ||
                       (job && ev->kind == KILN__EVENT_KIND__EVENT_JOB_FINISHED &&
                        strcmp(ev->job_id, job) == 0);
            if (ev->kind == KILN__EVENT_KIND__EVENT_LOG) {
                /* Each attempt's output is kept apart: a header marks where
                 * a retry's output begins. */
                char key[256];
                snprintf(key, sizeof key, "%s#%u", ev->job_id, ev->attempt);
                if (!s_seen_attempt(key) && ev->attempt > 1)
                    printf("%s | --- attempt %u ---\n", ev->job_id, ev->attempt);
                kiln_follow_print_log(ev->job_id, (int)ev->stream, ev->data.data, ev->data.len);
            }
            kiln__envelope__free_unpacked(m, NULL);
            if (end)
                break;
        }
        close(wake);
        close(sigfd);
    }
    if (reply)
        kiln__envelope__free_unpacked(reply, NULL);
    kiln_client_destroy(&client);
    return code;
}

static int cmd_cancel(int argc, char **argv)
{
    s_common_t c = {0};
    int npos = 0, code;
    kiln_client_t *client = NULL;
    Kiln__Envelope *reply = NULL;
    kiln_opt_t opts[] = {S_TARGET_OPTS(c), {NULL, 0, NULL, NULL}};
    int rc = kiln_opts_parse(opts, argc, argv, 2, &npos);
    int64_t run = npos == 1 ? s_parse_run(argv[2]) : -1;
    if (rc != 0 || npos != 1 || run < 0) {
        if (rc == 0)
            kiln_error_set("expected one run number");
        return s_usage_error("cancel", "RUN [options]", opts, rc ? rc : -1);
    }
    if ((code = s_connect(&c, &client)) != 0)
        return code;
    Kiln__Request req = KILN__REQUEST__INIT;
    req.kind = KILN__REQUEST_KIND__REQ_CANCEL;
    req.run_id = (uint64_t)run;
    if ((code = s_call(client, &req, &reply)) == 0)
        printf("run %lld: cancel requested\n", (long long)run);
    if (reply)
        kiln__envelope__free_unpacked(reply, NULL);
    kiln_client_destroy(&client);
    return code;
}

static void s_render_workers(json_t *doc)
{
    size_t i, k;
    json_t *w, *l;
    printf("%-16s  %-10s  %-8s  %s\n", "WORKER", "BUSY", "STATE", "LABELS");
    json_array_foreach(doc, i, w) {
        char busy[32], labels[512] = "";
        size_t o = 0;
        snprintf(busy, sizeof busy, "%lld/%lld",
                 (long long)json_integer_value(json_object_get(w, "busy")),
                 (long long)json_integer_value(json_object_get(w, "slots")));
        json_array_foreach(json_object_get(w, "labels"), k, l) {
            int n = snprintf(labels + o, sizeof labels - o, "%s%s", k ? "," : "",
                             json_string_value(l));
            if (n < 0 || (size_t)n >= sizeof labels - o)
                break;
            o += (size_t)n;
        }
        printf("%-16s  %-10s  %-8s  %s\n", json_string_value(json_object_get(w, "name")),
               busy, json_is_true(json_object_get(w, "draining")) ? "draining" : "ready",
               labels);
    }
}

static int cmd_workers(int argc, char **argv)
{
    s_common_t c = {0};
    int npos = 0;
    kiln_opt_t opts[] = {S_TARGET_OPTS(c), {"json", KILN_OPT_BOOL, &c.json, "print JSON"},
                         {NULL, 0, NULL, NULL}};
    int rc = kiln_opts_parse(opts, argc, argv, 2, &npos);
    if (rc != 0 || npos != 0)
        return s_usage_error("workers", "[--json] [options]", opts, rc ? rc : -1);
    Kiln__Request req = KILN__REQUEST__INIT;
    req.kind = KILN__REQUEST_KIND__REQ_WORKERS;
    return s_query(&c, &req, s_render_workers);
}

static void s_render_stats(json_t *doc)
{
    const char *key;
    json_t *v;
    json_object_foreach(doc, key, v) {
        if (json_is_object(v)) {
            const char *k2;
            json_t *v2;
            json_object_foreach(v, k2, v2) {
                char *t = json_dumps(v2, JSON_ENCODE_ANY);
                printf("%s.%s %s\n", key, k2, t ? t : "?");
                free(t);
            }
        } else {
            char *t = json_dumps(v, JSON_ENCODE_ANY);
            printf("%s %s\n", key, t ? t : "?");
            free(t);
        }
    }
}

static int cmd_stats(int argc, char **argv)
{
    s_common_t c = {0};
    int npos = 0;
    kiln_opt_t opts[] = {S_TARGET_OPTS(c), {"json", KILN_OPT_BOOL, &c.json, "print JSON"},
                         {NULL, 0, NULL, NULL}};
    int rc = kiln_opts_parse(opts, argc, argv, 2, &npos);
    if (rc != 0 || npos != 0)
        return s_usage_error("stats", "[--json] [options]", opts, rc ? rc : -1);
    Kiln__Request req = KILN__REQUEST__INIT;
    req.kind = KILN__REQUEST_KIND__REQ_STATS;
    return s_query(&c, &req, s_render_stats);
}

/* kiln worker drain NAME: the only worker subcommand so far. */
static int cmd_worker(int argc, char **argv)
{
    s_common_t c = {0};
    int npos = 0, code, deadline_s = 0;
    kiln_client_t *client = NULL;
    Kiln__Envelope *reply = NULL;
    kiln_opt_t opts[] = {S_TARGET_OPTS(c),
                         {"deadline", KILN_OPT_INT, &deadline_s,
                          "seconds the worker has before unfinished jobs are handed back "
                          "(default: the worker's drain grace)"},
                         {NULL, 0, NULL, NULL}};
    int rc = kiln_opts_parse(opts, argc, argv, 2, &npos);
    if (rc != 0 || npos != 2 || strcmp(argv[2], "drain") != 0 || deadline_s < 0) {
        if (rc == 0)
            kiln_error_set("expected: drain NAME");
        return s_usage_error("worker", "drain NAME [--deadline SECONDS] [options]", opts,
                             rc ? rc : -1);
    }
    if ((code = s_connect(&c, &client)) != 0)
        return code;
    Kiln__Request req = KILN__REQUEST__INIT;
    req.kind = KILN__REQUEST_KIND__REQ_DRAIN;
    req.worker = argv[3];
    req.deadline_ms = deadline_s ? (uint64_t)(kiln_clock_wall_ms() + deadline_s * 1000LL) : 0;
    if ((code = s_call(client, &req, &reply)) == 0)
        printf("worker %s: draining\n", argv[3]);
    if (reply)
        kiln__envelope__free_unpacked(reply, NULL);
    kiln_client_destroy(&client);
    return code;
}

static int cmd_keygen(int argc, char **argv)
{
    const char *dir = ".";
    int npos = 0;
    kiln_opt_t opts[] = {{"dir", KILN_OPT_STRING, &dir, "where to write the files (.)"},
                         {NULL, 0, NULL, NULL}};
    int rc = kiln_opts_parse(opts, argc, argv, 2, &npos);
    if (rc != 0 || npos != 1) {
        if (rc == 0)
            kiln_error_set("expected one NAME");
        return s_usage_error("keygen", "NAME [--dir DIR]", opts, rc ? rc : -1);
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

static int cmd_lint(int argc, char **argv)
{
    int npos = 0, code = KILN_EXIT_OK;
    kiln_opt_t opts[] = {{NULL, 0, NULL, NULL}};
    int rc = kiln_opts_parse(opts, argc, argv, 2, &npos);
    if (rc != 0 || npos < 1) {
        if (rc == 0)
            kiln_error_set("expected at least one workflow file");
        return s_usage_error("lint", "WORKFLOW.yml...", opts, rc ? rc : -1);
    }
    for (int i = 0; i < npos; i++) {
        char *text = NULL;
        size_t len = 0;
        if (s_validate(argv[2 + i], &text, &len) != 0)
            code = KILN_EXIT_USAGE;
        free(text);
    }
    return code;
}

/* One job of `kiln graph`: its name, id, runs-on and if:. */
static void s_graph_job(const char *name, const char *id, const kiln_plan_job_t *plan,
                        const kiln_job_t *spec)
{
    printf("  %s [%s]", name, id);
    printf(" runs-on: ");
    if (plan && plan->finished) {
        for (size_t k = 0; k < plan->n_labels; k++)
            printf("%s%s", k ? ", " : "", plan->labels[k]);
    } else if (spec->callee) {
        printf("(%s)", spec->uses);
    } else {
        char *text = json_dumps(spec->runs_on, JSON_COMPACT | JSON_ENCODE_ANY);
        const char *shown = json_string_value(spec->runs_on);
        printf("%s", shown ? shown : text ? text : "?");
        free(text);
    }
    if (spec->if_expr)
        printf(" if: %s", spec->if_expr);
    for (size_t k = 0; k < spec->n_needs; k++)
        printf("%s%s", k ? ", " : " <- ", spec->needs[k]);
    printf("\n");
}

/* kiln graph FILE [--dot]: the job graph, matrices expanded where they are
 * known before the run starts, with each job's runs-on and if:. */
static int cmd_graph(int argc, char **argv)
{
    bool dot = false;
    int npos = 0, code = KILN_EXIT_OK;
    char *text = NULL;
    size_t len = 0;
    kiln_opt_t opts[] = {{"dot", KILN_OPT_BOOL, &dot, "print Graphviz dot"},
                         {NULL, 0, NULL, NULL}};
    int rc = kiln_opts_parse(opts, argc, argv, 2, &npos);
    if (rc != 0 || npos != 1) {
        if (rc == 0)
            kiln_error_set("expected one workflow file");
        return s_usage_error("graph", "WORKFLOW.yml [--dot]", opts, rc ? rc : -1);
    }
    if (s_validate(argv[2], &text, &len) != 0)
        return KILN_EXIT_USAGE;
    kiln_diags_t diags;
    kiln_workflow_t *wf = NULL;
    kiln_rungraph_t *g = NULL;
    json_t *none = json_object(), *inputs = NULL;
    kiln_diags_init(&diags, argv[2]);
    if (s_parse(&wf, argv[2], text, len, &diags) != 0 ||
        kiln_workflow_inputs(wf->inputs ? wf->inputs : none, "on.workflow_dispatch.inputs",
                             none, &inputs) != 0)
        inputs = json_object();
    kiln_contexts_t run = {.workflow = wf ? wf->name : "", .actor = "kiln graph",
                           .event_name = "push", .inputs = inputs};
    if (!wf || kiln_rungraph_new(&g, wf, &run) != 0) {
        fprintf(stderr, "kiln: %s\n", kiln_error_last());
        code = KILN_EXIT_INFRA;
        goto cleanup;
    }
    /* The jobs as planned now, by job as written. */
    size_t n = kiln_rungraph_size(g);
    if (dot) {
        printf("digraph \"%s\" {\n  rankdir=LR;\n  node [shape=box];\n", wf->name);
        for (size_t i = 0; i < n; i++)
            printf("  \"%s\" [label=\"%s\"];\n", kiln_rungraph_job(g, i)->id,
                   kiln_rungraph_job(g, i)->name);
        for (size_t t = 0; t < wf->n_jobs; t++) {
            const kiln_job_t *j = &wf->jobs[wf->topo[t]];
            if (j->plan_late)
                printf("  \"%s\" [label=\"%s (matrix computed at run time)\"];\n", j->id,
                       j->name ? j->name : j->id);
        }
        /* An edge from each job of a need to each job of its dependent; a
         * job planned at run time stands as its id. */
        for (size_t t = 0; t < wf->n_jobs; t++) {
            const kiln_job_t *j = &wf->jobs[wf->topo[t]];
            for (size_t k = 0; k < j->n_needs; k++) {
                const kiln_job_t *need = &wf->jobs[j->need_idx[k]];
                for (size_t a = 0; a < n || (need->plan_late && a == 0); a++) {
                    if (!need->plan_late && kiln_rungraph_spec(g, a) != need)
                        continue;
                    const char *from = need->plan_late ? need->id : kiln_rungraph_job(g, a)->id;
                    for (size_t b = 0; b < n || (j->plan_late && b == 0); b++) {
                        if (!j->plan_late && kiln_rungraph_spec(g, b) != j)
                            continue;
                        printf("  \"%s\" -> \"%s\";\n", from,
                               j->plan_late ? j->id : kiln_rungraph_job(g, b)->id);
                        if (j->plan_late)
                            break;
                    }
                    if (need->plan_late)
                        break;
                }
            }
        }
        printf("}\n");
        goto cleanup;
    }
    /* Levels: a job's level is one more than its deepest need's. */
    size_t level[KILN_WF_MAX_JOBS] = {0}, max_level = 0;
    for (size_t t = 0; t < wf->n_jobs; t++) {
        size_t i = wf->topo[t];
        for (size_t k = 0; k < wf->jobs[i].n_needs; k++)
            if (level[wf->jobs[i].need_idx[k]] + 1 > level[i])
                level[i] = level[wf->jobs[i].need_idx[k]] + 1;
        if (level[i] > max_level)
            max_level = level[i];
    }
    printf("%s: %zu jobs\n", wf->name, n);
    for (size_t l = 0; l <= max_level; l++) {
        printf("stage %zu\n", l + 1);
        for (size_t t = 0; t < wf->n_jobs; t++) {
            const kiln_job_t *j = &wf->jobs[wf->topo[t]];
            if (level[wf->topo[t]] != l)
                continue;
            bool any = false;
            for (size_t i = 0; i < n; i++) {
                if (kiln_rungraph_spec(g, i) != j)
                    continue;
                const kiln_plan_job_t *p = kiln_rungraph_job(g, i);
                s_graph_job(p->name, p->id, p, j);
                any = true;
            }
            if (!any) {
                char label[KILN_WF_MAX_ID + 64];
                snprintf(label, sizeof label, "%s (matrix computed at run time)",
                         j->name ? j->name : j->id);
                s_graph_job(label, j->id, NULL, j);
            }
        }
    }
cleanup:
    kiln_rungraph_destroy(&g);
    kiln_workflow_destroy(&wf);
    json_decref(none);
    json_decref(inputs);
    kiln_diags_free(&diags);
    free(text);
    return code;
}

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
        {"run", cmd_run},         {"up", cmd_up},           {"submit", cmd_submit},
        {"status", cmd_status},   {"logs", cmd_logs},       {"history", cmd_history},
        {"cancel", cmd_cancel},   {"workers", cmd_workers}, {"keygen", cmd_keygen},
        {"lint", cmd_lint},       {"stats", cmd_stats},     {"worker", cmd_worker},
        {"graph", cmd_graph},
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
