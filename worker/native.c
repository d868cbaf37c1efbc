/* native.c: the worker's side of the native container runtime (see
 * native.h). The step's host script only names things: the image, the
 * mounts, the directory; kiln-image does the pulling and the sandboxing
 * inside the step's own process. */
#include "worker/native.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/fs.h"
#include "common/log.h"
#include "worker/agent_int.h"
#include "worker/container.h"
#include "worker/imagestore.h"
#include "worker/jobctx.h"

int kiln_native_find(kiln_native_t *out, const char *mode, const char *work_dir,
                     const char *auth, const char *insecure, const char *mirror,
                     const char *pull, int max_mb)
{
    memset(out, 0, sizeof *out);
    snprintf(out->mode, sizeof out->mode, "%s", mode && mode[0] ? mode : "auto");
    if (strcmp(out->mode, "auto") != 0 && strcmp(out->mode, "engine") != 0 &&
        strcmp(out->mode, "native") != 0) {
        snprintf(out->why, sizeof out->why,
                 "--container-runtime is auto, engine or native, not '%.40s'", mode);
        return -1;
    }
    if (pull && pull[0] && strcmp(pull, "always") != 0 && strcmp(pull, "missing") != 0) {
        snprintf(out->why, sizeof out->why, "--image-pull is missing or always, not '%.40s'",
                 pull);
        return -1;
    }
    if (max_mb < 0) {
        snprintf(out->why, sizeof out->why, "--image-store-max-mb must be positive");
        return -1;
    }
    out->pull_always = pull && strcmp(pull, "always") == 0;
    out->max_mb = max_mb ? max_mb : 20480;
    if (auth && auth[0] && !realpath(auth, out->auth)) {
        snprintf(out->why, sizeof out->why, "--registry-auth %.200s: %s", auth,
                 strerror(errno));
        return -1;
    }
    snprintf(out->insecure, sizeof out->insecure, "%s", insecure ? insecure : "");
    snprintf(out->mirror, sizeof out->mirror, "%s", mirror ? mirror : "");
    snprintf(out->store, sizeof out->store, "%s/images", work_dir);
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    char *slash = n > 0 ? (exe[n] = '\0', strrchr(exe, '/')) : NULL;
    if (slash) {
        *slash = '\0';
        snprintf(out->program, sizeof out->program, "%s/kiln-image", exe);
    }
    char puller[PATH_MAX + 16];
    snprintf(puller, sizeof puller, "%s-pull", out->program);
    if (!out->program[0] || access(out->program, X_OK) != 0 || access(puller, X_OK) != 0)
        snprintf(out->why, sizeof out->why,
                 "kiln-image and kiln-image-pull are not installed beside kiln-worker");
    else if (kiln_fs_find_program("bwrap", out->bwrap, sizeof out->bwrap) != 0)
        snprintf(out->why, sizeof out->why,
                 "bubblewrap (bwrap) is not installed (Debian: apt-get install bubblewrap)");
    return 0;
}

/* Why the native runtime cannot run this job's shape, or NULL. */
static const char *s_unfit(const kiln_wjob_t *job)
{
    if (!job->ctr)
        return "the job's services run beside it on the host";
    if (json_object_size(job->svc))
        return "services need an engine";
    if (json_array_size(json_object_get(job->ctr, "ports")))
        return "port mappings need an engine (natively the job shares the worker's network)";
    if (json_array_size(json_object_get(job->ctr, "option_words")))
        return "container.options are an engine's";
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(job->ctr, "volumes"), i, v) {
        if (json_string_value(v)[0] != '/')
            return "named volumes are an engine's";
    }
    const char *image = json_string_value(json_object_get(job->ctr, "image"));
    if (strncmp(image, "localhost/", 10) == 0)
        return "a localhost/ image is in an engine's own store, not a registry";
    return NULL;
}

int kiln_native_choose(kiln_wjob_t *job, char *why, size_t cap)
{
    const kiln_native_t *n = &job->agent->native;
    const kiln_container_engine_t *e = &job->agent->engine;
    const char *unfit = s_unfit(job);
    const char *image = job->ctr ? json_string_value(json_object_get(job->ctr, "image")) : NULL;
    job->native = false;
    if (!job->ctr && !json_object_size(job->svc))
        return 0; /* no container (a Docker action's step asks for its name) */
    /* The job's own choice, in its env (GitHub passes the name on as a
     * variable and nothing more, so the workflow still runs there). */
    char *want = NULL, err[300];
    if (kiln_jobctx_interpolate(job->jx, "${{ env.KILN_CONTAINER_RUNTIME }}", &want, err,
                                sizeof err) != 0) {
        snprintf(why, cap, "env.KILN_CONTAINER_RUNTIME: %s", err);
        return -1;
    }
    char mode[8];
    snprintf(mode, sizeof mode, "%s", n->mode);
    if (want && want[0]) {
        if (strcmp(want, "engine") != 0 && strcmp(want, "native") != 0) {
            snprintf(why, cap, "env.KILN_CONTAINER_RUNTIME is engine or native, not '%.40s'",
                     want);
            free(want);
            return -1;
        }
        if (strcmp(n->mode, "auto") != 0 && strcmp(n->mode, want) != 0) {
            snprintf(why, cap, "the job asks for the %s runtime (env.KILN_CONTAINER_RUNTIME) and "
                               "this worker runs containers with its %s runtime only",
                     want, n->mode);
            free(want);
            return -1;
        }
        snprintf(mode, sizeof mode, "%s", want);
    }
    free(want);
    if (strcmp(mode, "engine") != 0 && !unfit && !n->why[0]) {
        job->native = true;
        return 0;
    }
    if (strcmp(mode, "native") == 0) {
        snprintf(why, cap, "the job's container cannot run here: this worker's runtime is "
                           "native, and %s",
                 unfit ? unfit : n->why);
        return -1;
    }
    if (e->path[0])
        return 0;
    if (strcmp(mode, "engine") == 0 || unfit)
        snprintf(why, cap, "the job runs %s%s, and this worker cannot run containers: %s%s%s",
                 image ? "in the container image " : "with services", image ? image : "",
                 e->why, unfit && n->why[0] == '\0' ? "; natively, " : "",
                 unfit && n->why[0] == '\0' ? unfit : "");
    else
        snprintf(why, cap, "the job runs in the container image %s, and this worker cannot run "
                           "containers: %s; natively, %s",
                 image, e->why, n->why);
    return -1;
}

static bool s_name_ok(const char *k)
{
    if (!k[0] || isdigit((unsigned char)k[0]))
        return false;
    for (const char *p = k; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '_')
            return false;
    return true;
}

static void s_opt(FILE *f, const char *flag, const char *value)
{
    fprintf(f, " %s ", flag);
    kiln_container_quote(f, value);
}

/* The kiln-image options every native step shares. */
static void s_common(FILE *f, const kiln_native_t *n, const char *auth)
{
    fputs("exec ", f);
    kiln_container_quote(f, n->program);
    fputs(" run", f);
    s_opt(f, "--store", n->store);
    if (auth && auth[0])
        s_opt(f, "--auth", auth);
    else if (n->auth[0])
        s_opt(f, "--auth", n->auth);
    if (n->insecure[0])
        s_opt(f, "--insecure", n->insecure);
    if (n->mirror[0])
        s_opt(f, "--mirror", n->mirror);
    if (n->pull_always)
        fputs(" --pull always", f);
    fprintf(f, " --max-mb %d", n->max_mb);
    s_opt(f, "--bwrap", n->bwrap);
}

int kiln_native_wrap(kiln_wjob_t *job, const char *const *argv, bool default_shell,
                     const char *script, const char *cwd, const char *wrapper, char *why,
                     size_t cap)
{
    const kiln_native_t *n = &job->agent->native;
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(job->ctr, "env"), k, v) {
        if (!s_name_ok(k)) {
            snprintf(why, cap, "container.env: '%.100s' is not a variable name", k);
            return -1;
        }
    }
    FILE *f = kiln_container_script_open(wrapper, why, cap);
    if (!f)
        return -1;
    fputs("#!/bin/sh\n# kiln-worker: this step in the job's native container.\n", f);
    /* container.env gives way to the step's own, as `docker exec -e` does. */
    json_object_foreach(json_object_get(job->ctr, "env"), k, v) {
        fprintf(f, "[ -n \"${%s+x}\" ] || export %s=", k, k);
        kiln_container_quote(f, json_string_value(v));
        fputc('\n', f);
    }
    if (mkdir(job->agent->actions_dir, 0700) != 0 && errno != EEXIST)
        kiln_log_warn("cannot make %s: %s", job->agent->actions_dir, strerror(errno));
    /* The job's own credentials for its image, else the farm's. */
    char auth[KILN_WORKSPACE_PATH_MAX + 80];
    if (kiln_container_authfile(job, job->ctr, 0, auth, sizeof auth, why, cap) != 0) {
        fclose(f);
        return -1;
    }
    s_common(f, n, auth);
    char state[KILN_WORKSPACE_PATH_MAX + 32], mount[PATH_MAX * 2 + 8];
    snprintf(state, sizeof state, "%s/.kiln-native", job->ws.root);
    s_opt(f, "--state", state);
    s_opt(f, "--hold", job->ctr_name);
    snprintf(mount, sizeof mount, "%s:%s", job->ws.root, job->ws.root);
    s_opt(f, "--bind", mount);
    snprintf(mount, sizeof mount, "%s:%s:ro", job->agent->actions_dir, job->agent->actions_dir);
    s_opt(f, "--bind", mount);
    kiln_container_host_mounts(f, job, " --bind ");
    size_t i;
    json_array_foreach(json_object_get(job->ctr, "volumes"), i, v)
        s_opt(f, "--bind", json_string_value(v));
    char adds[8192];
    if (kiln_jobctx_path_additions(job->jx, adds, sizeof adds) != 0) {
        snprintf(why, cap, "the directories added to PATH are too long for a container step");
        fclose(f);
        return -1;
    }
    if (adds[0])
        s_opt(f, "--path-prepend", adds);
    s_opt(f, "--cwd", cwd);
    char host[64];
    snprintf(host, sizeof host, "%s", job->ctr_name);
    s_opt(f, "--hostname", host);
    fputc(' ', f);
    kiln_container_quote(f, json_string_value(json_object_get(job->ctr, "image")));
    fputs(" --", f);
    kiln_container_command(f, argv, default_shell, script);
    fputc('\n', f);
    if (kiln_container_script_close(f, wrapper, why, cap) != 0)
        return -1;
    job->native_used = true;
    return 0;
}

int kiln_native_docker(kiln_wjob_t *job, const json_t *js, json_t *inputs, const json_t *args,
                       const char *image, const char *entry, const char *wrapper, char *why,
                       size_t cap)
{
    const kiln_native_t *n = &job->agent->native;
    char state[KILN_WORKSPACE_PATH_MAX + 64], mount[PATH_MAX * 2 + 32], hold[300];
    snprintf(state, sizeof state, "%s/.kiln-native", job->ws.root);
    if (mkdir(state, 0700) != 0 && errno != EEXIST) {
        snprintf(why, cap, "cannot make %s: %s", state, strerror(errno));
        return -1;
    }
    /* A fresh root per run of the action, as `docker run --rm` gives. */
    snprintf(state, sizeof state, "%s/.kiln-native/step-%zu", job->ws.root, job->step);
    kiln_fs_rmtree(state);
    snprintf(hold, sizeof hold, "%s.step-%zu", job->ctr_name, job->step);
    FILE *f = kiln_container_script_open(wrapper, why, cap);
    if (!f)
        return -1;
    fputs("#!/bin/sh\n# kiln-worker: this step runs a Docker action natively.\n", f);
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(js, "env"), k, v) {
        char *val = NULL, err[400];
        if (!s_name_ok(k)) {
            snprintf(why, cap, "runs.env: '%.100s' is not a variable name", k);
            fclose(f);
            return -1;
        }
        if (kiln_jobctx_interpolate_inputs(job->jx, json_string_value(v) ?: "", inputs, &val,
                                           err, sizeof err) != 0) {
            snprintf(why, cap, "runs.env.%s: %s", k, err);
            fclose(f);
            return -1;
        }
        fprintf(f, "export %s=", k);
        kiln_container_quote(f, val ? val : "");
        fputc('\n', f);
        free(val);
    }
    fputs("export GITHUB_WORKSPACE=/github/workspace\n", f);
    s_common(f, n, NULL);
    s_opt(f, "--state", state);
    s_opt(f, "--hold", hold);
    snprintf(mount, sizeof mount, "%s:%s", job->ws.root, job->ws.root);
    s_opt(f, "--bind", mount);
    snprintf(mount, sizeof mount, "%s:/github/workspace", job->ws.ws);
    s_opt(f, "--bind", mount);
    s_opt(f, "--cwd", "/github/workspace");
    char host[64];
    snprintf(host, sizeof host, "%s", job->ctr_name);
    s_opt(f, "--hostname", host);
    if (entry && entry[0])
        s_opt(f, "--entrypoint", entry);
    fputs(" --image-command ", f);
    kiln_container_quote(f, image);
    fputs(" --", f);
    size_t i;
    json_array_foreach(args, i, v) {
        fputc(' ', f);
        kiln_container_quote(f, json_string_value(v));
    }
    fputc('\n', f);
    if (kiln_container_script_close(f, wrapper, why, cap) != 0)
        return -1;
    job->native_used = true;
    return 0;
}

void kiln_native_remove(kiln_wjob_t *job)
{
    if (!job->native_used)
        return;
    job->native_used = false;
    kiln_imagestore_release(job->agent->native.store, job->ctr_name);
    /* The upper layer may be large (a job's installs): renamed aside at
     * once, so no later attempt meets it, and removed in the background. */
    static unsigned seq;
    char state[KILN_WORKSPACE_PATH_MAX + 32], gone[PATH_MAX + 64];
    snprintf(state, sizeof state, "%s/.kiln-native", job->ws.root);
    /* Out of the job's tree, which is recycled for the next job at once. */
    snprintf(gone, sizeof gone, "%s/.kiln-trash-native-%d-%u", job->agent->cfg.work_dir,
             (int)getpid(), seq++);
    if (rename(state, gone) != 0) {
        if (errno != ENOENT)
            kiln_log_warn("job %s: cannot move %s aside: %s", job->a->job_key, state,
                          strerror(errno));
        return;
    }
    char rm[] = "/bin/rm", rf[] = "-rf";
    char *argv[] = {rm, rf, gone, NULL};
    kiln_container_detached(argv);
}

void kiln_native_sweep(const char *work_dir)
{
    DIR *d = opendir(work_dir);
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL) {
        if (strncmp(de->d_name, ".kiln-trash-native-", 19) != 0)
            continue;
        char path[PATH_MAX + 300];
        snprintf(path, sizeof path, "%s/%s", work_dir, de->d_name);
        char rm[] = "/bin/rm", rf[] = "-rf";
        char *argv[] = {rm, rf, path, NULL};
        kiln_container_detached(argv);
    }
    if (d)
        closedir(d);
}

int kiln_native_check(const kiln_native_t *n, char *report, size_t cap)
{
    if (n->why[0]) {
        snprintf(report, cap, "no: %s", n->why);
        return -1;
    }
    /* bubblewrap itself, in namespaces of its own, on the host's root. */
    pid_t pid = fork();
    if (pid == 0) {
        int nul = open("/dev/null", O_RDWR);
        if (nul >= 0) {
            dup2(nul, 1);
            dup2(nul, 2);
        }
        execl(n->bwrap, n->bwrap, "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev",
              "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--die-with-parent", "true",
              (char *)NULL);
        _exit(127);
    }
    int st = 0;
    while (pid > 0 && waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    if (pid < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        snprintf(report, cap, "no: %s cannot make a sandbox here (exit %d)", n->bwrap,
                 WIFEXITED(st) ? WEXITSTATUS(st) : -1);
        return -1;
    }
    snprintf(report, cap, "yes: %s with %s; images in %s", n->program, n->bwrap, n->store);
    return 0;
}
