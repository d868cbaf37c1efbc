/* workflow.c: the workflow the CLI is given, read with the local actions
 * and called workflows it refers to (found from the repository root, as
 * GitHub finds them in the checkout), and checked the way the coordinator
 * will check it, so that a bad file or input is exit 2 before any farm is
 * involved. */
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

/* The files the workflow last read by kiln_cli_validate refers to: path
 * -> text. The CLI handles one workflow at a time. */
static json_t *s_files;

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

/* Local actions and called workflows whose path leads out of the
 * repository through a link: path -> where it leads. */
static json_t *s_refused;

/* A repository file of at most max bytes into files under key; its own
 * local uses are queued. A file that is not inside root once links are
 * resolved is not read: it is refused (s_refused), as "./../x" is. */
static bool s_gather_file(const char *root, const char *file, const char *key, size_t max,
                          json_t *queue)
{
    char real[PATH_MAX], real_root[PATH_MAX];
    if (!realpath(file, real))
        return false;
    size_t rl = realpath(root, real_root) ? strlen(real_root) : 0;
    if (!rl || strncmp(real, real_root, rl) != 0 || (real[rl] != '/' && rl > 1)) {
        json_object_set_new(s_refused, key, json_string(real));
        return true;
    }
    FILE *f = fopen(real, "re");
    if (!f)
        return false;
    char *buf = malloc(max + 2);
    size_t n = buf ? fread(buf, 1, max + 1, f) : 0;
    fclose(f);
    if (buf && n <= max) {
        buf[n] = '\0';
        json_object_set_new(s_files, key, json_stringn(buf, n));
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
    json_decref(s_files);
    s_files = json_object();
    json_decref(s_refused);
    s_refused = json_object();
    json_t *queue = json_array();
    s_repo_root(workflow, root, sizeof root);
    kiln_workflow_local_uses(text, len, queue);
    for (size_t i = 0; i < json_array_size(queue) && i < KILN_WF_MAX_ACTIONS; i++) {
        json_t *use = json_array_get(queue, i);
        const char *path = json_string_value(json_object_get(use, "path"));
        const char *kind = json_string_value(json_object_get(use, "kind"));
        if (!path || json_object_get(s_files, path))
            continue;
        char file[PATH_MAX * 2];
        if (strcmp(kind, "workflow") == 0) {
            snprintf(file, sizeof file, "%s/%s", root, path);
            s_gather_file(root, file, path, KILN_WF_MAX_BYTES, queue);
            continue;
        }
        static const char *names[] = {"action.yml", "action.yaml"};
        /* ./P/x after a checkout with path: P is the repository's x. */
        const char *alt = json_string_value(json_object_get(use, "alt"));
        bool found = false;
        for (int a = 0; a < (alt ? 2 : 1) && !found; a++) {
            for (int k = 0; k < 2 && !found; k++) {
                snprintf(file, sizeof file, "%s/%s/%s", root, a ? alt : path, names[k]);
                found = s_gather_file(root, file, path, KILN_WF_MAX_ACTION_BYTES, queue);
            }
        }
    }
    json_decref(queue);
}

/* Parses a workflow the way the coordinator will, with the files gathered
 * (s_files). */
int kiln_cli_parse(kiln_workflow_t **wf, const char *path, const char *text, size_t len,
                   kiln_diags_t *diags)
{
    kiln_loader_t loader;
    kiln_loader_json(&loader, s_files, false);
    return kiln_workflow_parse(wf, path, text, len, &loader, diags);
}

/* What the last kiln_cli_validate printed, so the farm's answer adds only
 * what it alone could find. */
static char *s_shown;

void kiln_cli_print_farm_warnings(const char *reply_text)
{
    for (const char *line = reply_text; line && *line;) {
        size_t n = strcspn(line, "\n");
        bool seen = false;
        for (const char *p = s_shown; p && !seen && (p = strstr(p, line)) != NULL; p++)
            seen = strncmp(p, line, n) == 0 && (p[n] == '\n' || p[n] == '\0') &&
                   (p == s_shown || p[-1] == '\n');
        if (n && !seen && memmem(line, n, ": warning: ", 11))
            fprintf(stderr, "%.*s\n", (int)n, line);
        line += n;
        line += *line == '\n';
    }
}

int kiln_cli_validate(const char *path, char **text, size_t *len)
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
    const char *out_path;
    json_t *where;
    bool refused = false;
    json_object_foreach(s_refused, out_path, where) {
        /* The line of the first mention, for the message. */
        const char *at = strstr(buf, out_path);
        int line = 1;
        for (const char *p = buf; at && p < at; p++)
            line += *p == '\n';
        fprintf(stderr, "%s:%d: error: uses: ./%s leads to %s, outside the repository: refused\n",
                path, at ? line : 0, out_path, json_string_value(where));
        refused = true;
    }
    if (refused) {
        free(buf);
        goto cleanup;
    }
    int prc = kiln_cli_parse(&wf, path, buf, n, &diags);
    char *report = diags.n ? kiln_diags_format(&diags) : NULL;
    if (report)
        fputs(report, stderr);
    free(s_shown);
    s_shown = report;
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

int kiln_cli_take_inputs(int *argc, char **argv, kiln_cli_inputs_t *in)
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

void kiln_cli_inputs_free(kiln_cli_inputs_t *in)
{
    kiln_cli_source_free(&in->source);
    for (size_t i = 0; i < in->n; i++)
        free(in->text[i]);
    in->n = 0;
}

/* Checks the inputs against the workflow here, so a wrong one is exit 2
 * before any farm is involved. */
int kiln_cli_check_inputs(const char *path, const char *text, size_t len, const kiln_cli_inputs_t *in)
{
    kiln_diags_t diags;
    kiln_workflow_t *wf = NULL;
    json_t *given = json_object(), *typed = NULL;
    int rc = 0;
    kiln_diags_init(&diags, path);
    if (kiln_cli_parse(&wf, path, text, len, &diags) == 0) {
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
 * by s_files, which lives as long as the process's request). */
void kiln_cli_actions_attach(Kiln__Request *req)
{
    static Kiln__KeyValue kv[KILN_WF_MAX_ACTIONS];
    static Kiln__KeyValue *ptrs[KILN_WF_MAX_ACTIONS];
    size_t n = 0;
    const char *path;
    json_t *text;
    json_object_foreach(s_files, path, text) {
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
int kiln_cli_read_file(const char *path, char **text, size_t *len)
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
