/* container.c: a job's steps in a container, through the engine's CLI
 * (see container.h). The engine is driven from a small host script per
 * step rather than from the worker's loop: starting a container may pull
 * an image for minutes, and the step's own process, with its timeout,
 * cancellation and output handling, is the right place to wait for that.
 * Nothing a workflow writes reaches a shell unquoted: options are split
 * into words here and each word quoted. */
#include "worker/container.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <elf.h>
#include <poll.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/error.h"
#include "common/fs.h"
#include "common/imageref.h"
#include "common/log.h"
#include "worker/agent_int.h"

#define S_WORDS_MAX 64

/* The images the engine ($e) holds, one reference a line, into $f (whole
 * or not at all): what the worker's heartbeat reports of them. */
#define S_IMAGES_SH                                                                               \
    "\"$e\" images --format '{{.Repository}}:{{.Tag}}' >\"$f.tmp\" 2>/dev/null && "               \
    "mv \"$f.tmp\" \"$f\""



void kiln_container_engine_find(kiln_container_engine_t *out, const char *configured,
                                bool allow_privileged)
{
    static const char *const settings[] = {
        "CONTAINERS_CONF", "CONTAINERS_STORAGE_CONF", "CONTAINERS_REGISTRIES_CONF",
        "CONTAINER_HOST", "DOCKER_HOST", "DOCKER_CONFIG", "REGISTRY_AUTH_FILE", "XDG_RUNTIME_DIR"};
    memset(out, 0, sizeof *out);
    out->allow_privileged = allow_privileged;
    if (configured && configured[0]) {
        if (kiln_fs_find_program(configured, out->path, sizeof out->path) != 0) {
            snprintf(out->why, sizeof out->why, "--container-engine %.200s is not an executable "
                                                "program", configured);
            out->path[0] = '\0';
        }
    } else if (kiln_fs_find_program("podman", out->path, sizeof out->path) != 0 &&
               kiln_fs_find_program("docker", out->path, sizeof out->path) != 0) {
        snprintf(out->why, sizeof out->why, "there is neither podman nor docker on this worker's "
                                            "PATH (install podman, or start kiln-worker with "
                                            "--container-engine PATH)");
        out->path[0] = '\0';
    }
    if (out->path[0]) {
        const char *base = strrchr(out->path, '/');
        snprintf(out->name, sizeof out->name, "%s", base ? base + 1 : out->path);
    }
    size_t used = 0;
    for (size_t i = 0; i < sizeof settings / sizeof settings[0]; i++) {
        const char *v = getenv(settings[i]);
        if (v && !strchr(v, '\n') && used < sizeof out->settings) {
            int n = snprintf(out->settings + used, sizeof out->settings - used, "%s=%s\n",
                             settings[i], v);
            if (n > 0 && (size_t)n < sizeof out->settings - used)
                used += (size_t)n;
            else
                out->settings[used] = '\0';
        }
    }
}

/* Splits options as a shell would split words (blanks; '...', "..." and
 * backslashes quote), without any expansion. The count, or -1. */
int kiln_container_words(const char *text, char **words, size_t max, char *buf, size_t cap)
{
    size_t n = 0, o = 0;
    const char *p = text;
    while (*p) {
        while (*p && isspace((unsigned char)*p))
            p++;
        if (!*p)
            break;
        if (n == max)
            return -1;
        words[n++] = buf + o;
        while (*p && !isspace((unsigned char)*p)) {
            char q = 0;
            if (*p == '\'' || *p == '"')
                q = *p++;
            while (*p && (q ? *p != q : !isspace((unsigned char)*p) && *p != '\'' && *p != '"')) {
                if (*p == '\\' && q != '\'' && p[1])
                    p++;
                if (o + 1 >= cap)
                    return -1;
                buf[o++] = *p++;
            }
            if (q) {
                if (*p != q)
                    return -1;
                p++;
            }
        }
        if (o + 1 >= cap)
            return -1;
        buf[o++] = '\0';
    }
    return (int)n;
}

/* Options that give a container more than a job's due: refused unless the
 * worker allows them (--container-allow-privileged). */
static const char *s_privileged(const char *w)
{
    static const char *const flags[] = {"--privileged", "--cap-add", "--device", "--security-opt",
                                        "--pid", "--ipc", "--uts", "--userns", "--network",
                                        "--net", "--volume", "-v", "--mount", "--volumes-from",
                                        "--cgroupns", "--group-add", NULL};
    for (size_t i = 0; flags[i]; i++) {
        size_t n = strlen(flags[i]);
        if (strncmp(w, flags[i], n) == 0 && (w[n] == '\0' || w[n] == '='))
            return flags[i];
    }
    return NULL;
}

static int s_interp(kiln_wjob_t *job, const char *text, const char *field, json_t **out,
                    char *why, size_t cap)
{
    char *v = NULL, err[400];
    if (kiln_jobctx_interpolate(job->jx, text, &v, err, sizeof err) != 0) {
        snprintf(why, cap, "container.%s: %s", field, err);
        return -1;
    }
    *out = json_string(v ? v : "");
    free(v);
    return *out ? 0 : -1;
}

/* One container spec (the job's or a service's) evaluated with the job's
 * contexts and checked against the worker's policy, into *out. */
static int s_eval_spec(kiln_wjob_t *job, const json_t *spec, json_t **out, char *why, size_t cap)
{
    const kiln_container_engine_t *e = &job->agent->engine;
    json_t *c = json_object(), *v = NULL;
    int rc = -1;
    if (!json_is_object(spec) || !c) {
        snprintf(why, cap, "the container does not decode");
        goto cleanup;
    }
    if (s_interp(job, json_string_value(json_object_get(spec, "image")), "image", &v, why, cap))
        goto cleanup;
    json_object_set_new(c, "image", v);
    const char *image = json_string_value(v);
    if (!image[0]) {
        snprintf(why, cap, "container.image is empty once evaluated");
        goto cleanup;
    }
    const char *opts = json_string_value(json_object_get(spec, "options"));
    if (opts) {
        if (s_interp(job, opts, "options", &v, why, cap))
            goto cleanup;
        json_object_set_new(c, "options", v);
        char *words[S_WORDS_MAX], buf[4096];
        int n = kiln_container_words(json_string_value(v), words, S_WORDS_MAX, buf, sizeof buf);
        if (n < 0) {
            snprintf(why, cap, "container.options: unbalanced quotes or more than %d words",
                     S_WORDS_MAX);
            goto cleanup;
        }
        json_t *list = json_array();
        for (int i = 0; list && i < n; i++) {
            const char *flag = s_privileged(words[i]);
            if (flag && !e->allow_privileged) {
                snprintf(why, cap, "container.options: %s is not allowed on this worker (it gives "
                                   "the container more than a job's own; the worker's "
                                   "--container-allow-privileged allows it)", flag);
                json_decref(list);
                goto cleanup;
            }
            json_array_append_new(list, json_string(words[i]));
        }
        json_object_set_new(c, "option_words", list);
    }
    const char *lists[] = {"volumes", "ports"};
    for (size_t l = 0; l < 2; l++) {
        json_t *in = json_object_get(spec, lists[l]), *outl = json_array(), *item;
        size_t i;
        json_array_foreach(in, i, item) {
            if (s_interp(job, json_string_value(item), lists[l], &v, why, cap)) {
                json_decref(outl);
                goto cleanup;
            }
            /* A volume from the host's file system (not a named volume) is
             * a host mount: the worker's to allow. */
            if (l == 0 && json_string_value(v)[0] == '/' && !e->allow_privileged) {
                snprintf(why, cap, "container.volumes: %s mounts the worker's own files, which "
                                   "this worker does not allow (--container-allow-privileged); "
                                   "a named volume (NAME:/path) is", json_string_value(v));
                json_decref(v);
                json_decref(outl);
                goto cleanup;
            }
            json_array_append_new(outl, v);
        }
        json_object_set_new(c, lists[l], outl);
    }
    json_t *env = json_object(), *ev;
    const char *ek;
    json_object_foreach(json_object_get(spec, "env"), ek, ev) {
        char *text = json_is_string(ev) ? NULL : json_dumps(ev, JSON_ENCODE_ANY);
        int r = s_interp(job, text ? text : json_string_value(ev), "env", &v, why, cap);
        free(text);
        if (r) {
            json_decref(env);
            goto cleanup;
        }
        json_object_set_new(env, ek, v);
    }
    json_object_set_new(c, "env", env);
    json_t *cred = json_object_get(spec, "credentials");
    if (cred) {
        json_t *user = NULL, *pass = NULL;
        if (s_interp(job, json_string_value(json_object_get(cred, "username")), "credentials",
                     &user, why, cap) ||
            s_interp(job, json_string_value(json_object_get(cred, "password")), "credentials",
                     &pass, why, cap)) {
            json_decref(user);
            goto cleanup;
        }
        if (!json_string_value(user)[0] || !json_string_value(pass)[0]) {
            snprintf(why, cap, "credentials need a username and a password (one is empty once "
                               "evaluated)");
            json_decref(user);
            json_decref(pass);
            goto cleanup;
        }
        json_object_set_new(c, "credentials", json_pack("{s:o,s:o}", "username", user,
                                                        "password", pass));
    }
    *out = c;
    c = NULL;
    rc = 0;
cleanup:
    json_decref(c);
    return rc;
}

/* A free TCP port on addr (NULL: every address), or -1. The engine binds
 * it a moment later; what another process takes meanwhile makes the
 * service's start fail, saying so. */
static int s_free_port(const char *addr)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t len = sizeof sa;
    int port = -1;
    if (fd < 0)
        return -1;
    if ((!addr || inet_pton(AF_INET, addr, &sa.sin_addr) == 1) &&
        bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
        port = ntohs(sa.sin_port);
    close(fd);
    return port;
}

/* Services' ports as job.services.<id>.ports (container port -> host
 * port): a port given without a host port gets a free one here, so the
 * mapping is known before the first step's expressions are evaluated. */
static int s_ports(kiln_wjob_t *job, json_t *svc, char *why, size_t cap)
{
    json_t *ctx = json_object();
    const char *id;
    json_t *one;
    json_object_foreach(svc, id, one) {
        json_t *ports = json_object_get(one, "ports"), *map = json_object(), *p;
        size_t i;
        json_array_foreach(ports, i, p) {
            char text[256], proto[16] = "";
            snprintf(text, sizeof text, "%s", json_string_value(p));
            char *slash = strchr(text, '/');
            if (slash) {
                snprintf(proto, sizeof proto, "%s", slash);
                *slash = '\0';
            }
            char *parts[3] = {NULL, NULL, NULL};
            int n = 0;
            for (char *q = text; n < 3; n++) {
                parts[n] = q;
                char *c = strchr(q, ':');
                if (!c) {
                    n++;
                    break;
                }
                *c = '\0';
                q = c + 1;
            }
            const char *addr = n == 3 ? parts[0] : NULL;
            const char *host = n == 3 ? parts[1] : n == 2 ? parts[0] : "";
            const char *cport = parts[n - 1];
            if (!cport[0] || strspn(cport, "0123456789-") != strlen(cport)) {
                snprintf(why, cap, "service '%s': ports: '%s' is not [[ADDRESS:]HOST:]PORT",
                         id, json_string_value(p));
                json_decref(map);
                json_decref(ctx);
                return -1;
            }
            char hp[16];
            if (!host[0]) {
                int fp = s_free_port(addr && addr[0] ? addr : NULL);
                if (fp < 0) {
                    snprintf(why, cap, "service '%s': no free port for %s", id, cport);
                    json_decref(map);
                    json_decref(ctx);
                    return -1;
                }
                snprintf(hp, sizeof hp, "%d", fp);
                host = hp;
                char full[300];
                snprintf(full, sizeof full, "%s%s%s:%s%s", addr ? addr : "", addr ? ":" : "",
                         host, cport, proto);
                json_array_set_new(ports, i, json_string(full));
            }
            json_object_set_new(map, cport, json_string(host));
        }
        char cname[sizeof job->ctr_name + 140];
        snprintf(cname, sizeof cname, "%s-%s", job->ctr_name, id);
        json_object_set_new(ctx, id, json_pack("{s:s,s:s,s:o}", "id", cname, "network",
                                               job->ctr ? job->ctr_name : "", "ports", map));
    }
    kiln_jobctx_set_containers(job->jx,
                               job->ctr ? json_pack("{s:s,s:s}", "id", job->ctr_name, "network",
                                                    json_object_size(svc) ? job->ctr_name : "")
                                        : NULL,
                               ctx);
    return 0;
}

int kiln_container_prepare(kiln_wjob_t *job, char *why, size_t cap)
{
    if (job->ctr_ready)
        return 0;
    int rc = -1;
    /* What an earlier try that failed left. */
    json_decref(job->ctr);
    json_decref(job->svc);
    job->ctr = job->svc = NULL;
    /* The job's own container, or the worker's default job image (every
     * job in a fresh root file system: --job-image), or none (services
     * beside a job on the host). */
    json_t *spec = job->a->container.len
                       ? json_loadb((const char *)job->a->container.data, job->a->container.len, 0,
                                    NULL)
                   : job->agent->cfg.job_image && job->agent->cfg.job_image[0]
                       ? json_pack("{s:s}", "image", job->agent->cfg.job_image)
                       : NULL;
    json_t *services = job->a->services.len ? json_loadb((const char *)job->a->services.data,
                                                         job->a->services.len, 0, NULL)
                                            : NULL;
    json_t *svc = json_object();
    if (!svc)
        goto cleanup;
    if (spec && s_eval_spec(job, spec, &job->ctr, why, cap) != 0)
        goto cleanup;
    const char *id;
    json_t *one;
    json_object_foreach(services, id, one) {
        json_t *ev = NULL;
        char inner[600];
        if (s_eval_spec(job, one, &ev, inner, sizeof inner) != 0) {
            snprintf(why, cap, "service '%s': %s", id, inner);
            goto cleanup;
        }
        json_object_set_new(svc, id, ev);
    }
    /* Named by the attempt, so a retried job never meets its predecessor's. */
    char track[300];
    size_t o = 0;
    kiln_job_tracking_id(job, track, sizeof track);
    o = (size_t)snprintf(job->ctr_name, sizeof job->ctr_name, "kiln-");
    for (const char *p = track; *p && o + 1 < sizeof job->ctr_name - 40; p++)
        job->ctr_name[o++] = isalnum((unsigned char)*p) || *p == '_' || *p == '.' ? *p : '-';
    job->ctr_name[o] = '\0';
    if (s_ports(job, svc, why, cap) != 0)
        goto cleanup;
    job->svc = svc;
    svc = NULL;
    if (kiln_native_choose(job, why, cap) != 0)
        goto cleanup;
    job->ctr_ready = true;
    rc = 0;
cleanup:
    json_decref(spec);
    json_decref(services);
    json_decref(svc);
    return rc;
}

void kiln_container_quote(FILE *f, const char *value)
{
    fputc('\'', f);
    for (const char *p = value; *p; p++) {
        if (*p == '\'')
            fputs("'\\''", f);
        else
            fputc(*p, f);
    }
    fputc('\'', f);
}

void kiln_container_host_mounts(FILE *f, const kiln_wjob_t *job, const char *flag)
{
    /* RUNNER_TOOL_CACHE, where setup actions keep what they install; the
     * host's /usr for the JavaScript actions' Node.js (node.h). */
    char mount[PATH_MAX * 2 + 32];
    if (mkdir(job->agent->tool_cache, 0700) != 0 && errno != EEXIST)
        kiln_log_warn("cannot make %s: %s", job->agent->tool_cache, strerror(errno));
    snprintf(mount, sizeof mount, "%s:%s", job->agent->tool_cache, job->agent->tool_cache);
    fputs(flag, f);
    kiln_container_quote(f, mount);
    if (job->agent->node.contained) {
        fputs(flag, f);
        kiln_container_quote(f, "/usr:" KILN_NODE_HOST "/usr:ro");
    }
}

FILE *kiln_container_script_open(const char *wrapper, char *why, size_t cap)
{
    int fd = open(wrapper, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0700);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!f) {
        snprintf(why, cap, "cannot write %s: %s", wrapper, strerror(errno));
        if (fd >= 0)
            close(fd);
    }
    return f;
}

int kiln_container_script_close(FILE *f, const char *wrapper, char *why, size_t cap)
{
    bool bad = ferror(f) != 0;
    if (fclose(f) != 0 || bad) {
        snprintf(why, cap, "cannot write %s: %s", wrapper, strerror(errno));
        return -1;
    }
    return 0;
}

void kiln_container_command(FILE *f, const char *const *argv, bool default_shell,
                            const char *script)
{
    if (default_shell) {
        fputs(" sh -c 'if command -v bash >/dev/null 2>&1; then exec bash --noprofile --norc -eo "
              "pipefail \"$0\"; fi; exec sh -e \"$0\"' ",
              f);
        kiln_container_quote(f, script);
        return;
    }
    for (size_t a = 0; argv[a]; a++) {
        fputc(' ', f);
        kiln_container_quote(f, argv[a]);
    }
}


/* " -e 'K=V' -v ... -p ... OPTIONS 'IMAGE'": one container's part of its
 * `run` line. */
static void s_run_args(FILE *f, const json_t *c)
{
    const char *k;
    json_t *v;
    size_t i;
    json_object_foreach(json_object_get(c, "env"), k, v) {
        char kvs[4096];
        snprintf(kvs, sizeof kvs, "%s=%s", k, json_string_value(v));
        fputs(" -e ", f);
        kiln_container_quote(f, kvs);
    }
    json_array_foreach(json_object_get(c, "volumes"), i, v) {
        fputs(" -v ", f);
        kiln_container_quote(f, json_string_value(v));
    }
    json_array_foreach(json_object_get(c, "ports"), i, v) {
        fputs(" -p ", f);
        kiln_container_quote(f, json_string_value(v));
    }
    json_array_foreach(json_object_get(c, "option_words"), i, v) {
        fputc(' ', f);
        kiln_container_quote(f, json_string_value(v));
    }
    fputc(' ', f);
    kiln_container_quote(f, json_string_value(json_object_get(c, "image")));
}

int kiln_container_authfile(kiln_wjob_t *job, const json_t *c, size_t k, char *out,
                            size_t out_cap, char *why, size_t cap)
{
    json_t *cred = json_object_get(c, "credentials");
    out[0] = '\0';
    if (!cred)
        return 0;
    kiln_imageref_t ref;
    if (kiln_imageref_parse(json_string_value(json_object_get(c, "image")), &ref, why, cap) != 0)
        return -1;
    char dir[KILN_WORKSPACE_PATH_MAX + 64];
    snprintf(dir, sizeof dir, "%s/.kiln-auth-%zu", job->ws.cmd, k);
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        snprintf(why, cap, "cannot make %s: %s", dir, strerror(errno));
        return -1;
    }
    char userpass[1024];
    int n = snprintf(userpass, sizeof userpass, "%s:%s",
                     json_string_value(json_object_get(cred, "username")),
                     json_string_value(json_object_get(cred, "password")));
    char b64[1500];
    if (n < 0 || (size_t)n >= sizeof userpass) {
        snprintf(why, cap, "credentials are too long");
        return -1;
    }
    sodium_bin2base64(b64, sizeof b64, (const unsigned char *)userpass, (size_t)n,
                      sodium_base64_VARIANT_ORIGINAL);
    sodium_memzero(userpass, sizeof userpass);
    /* Docker's config.json and podman's auth file read the same shape;
     * Docker names its hub by its old URL. */
    json_t *auths = json_pack("{s:{s:s}}", ref.host, "auth", b64);
    if (auths && strcmp(ref.host, "docker.io") == 0)
        json_object_set_new(auths, "https://index.docker.io/v1/", json_pack("{s:s}", "auth", b64));
    json_t *doc = auths ? json_pack("{s:o}", "auths", auths) : NULL;
    sodium_memzero(b64, sizeof b64);
    snprintf(out, out_cap, "%s/config.json", dir);
    int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    int rc = doc && fd >= 0 && json_dumpfd(doc, fd, JSON_COMPACT) == 0 ? 0 : -1;
    if (fd >= 0 && close(fd) != 0)
        rc = -1;
    json_decref(doc);
    if (rc != 0)
        snprintf(why, cap, "cannot write %s: %s", out, strerror(errno));
    job->ctr_auth = true;
    return rc;
}

/* `"$e" run` for one container, with its credentials' file when it has
 * any (podman: --authfile; docker: its --config directory). */
static int s_run_cmd(FILE *f, kiln_wjob_t *job, const json_t *c, size_t k, char *why,
                     size_t cap)
{
    char auth[KILN_WORKSPACE_PATH_MAX + 80];
    if (kiln_container_authfile(job, c, k, auth, sizeof auth, why, cap) != 0)
        return -1;
    if (!auth[0]) {
        fputs("\n  \"$e\" run", f);
    } else if (strcmp(job->agent->engine.name, "docker") == 0) {
        *strrchr(auth, '/') = '\0';
        fputs("\n  \"$e\" --config ", f);
        kiln_container_quote(f, auth);
        fputs(" run", f);
    } else {
        fputs("\n  \"$e\" run --authfile ", f);
        kiln_container_quote(f, auth);
    }
    return 0;
}

void kiln_container_labels(FILE *f, const kiln_wjob_t *job)
{
    char label[600];
    snprintf(label, sizeof label, "kiln.worker=%s", job->agent->name);
    fputs(" --label ", f);
    kiln_container_quote(f, label);
    snprintf(label, sizeof label, "kiln.job=%s", job->a->job_key);
    fputs(" --label ", f);
    kiln_container_quote(f, label);
}

/* A Go duration ("10s", "1m30s", "500ms") in seconds; -1 if it is not one. */
static double s_duration(const char *text)
{
    double total = 0;
    const char *p = text;
    if (!*p)
        return -1;
    while (*p) {
        char *end;
        double v = strtod(p, &end);
        if (end == p || v < 0)
            return -1;
        if (strncmp(end, "ms", 2) == 0) {
            total += v / 1000;
            end += 2;
        } else if (*end == 's') {
            total += v;
            end++;
        } else if (*end == 'm') {
            total += v * 60;
            end++;
        } else if (*end == 'h') {
            total += v * 3600;
            end++;
        } else if (*end == '\0' && p == text) {
            total += v; /* a bare number: seconds */
        } else {
            return -1;
        }
        p = end;
    }
    return total;
}

/* The value of --NAME in a container's options (--NAME V or --NAME=V). */
static const char *s_option(const json_t *c, const char *name)
{
    json_t *words = json_object_get(c, "option_words");
    size_t n = strlen(name);
    for (size_t i = 0; i < json_array_size(words); i++) {
        const char *w = json_string_value(json_array_get(words, i));
        if (strncmp(w, name, n) != 0)
            continue;
        if (w[n] == '=')
            return w + n + 1;
        if (w[n] == '\0' && i + 1 < json_array_size(words))
            return json_string_value(json_array_get(words, i + 1));
    }
    return NULL;
}

/* The script's wait for one service's health check (none defined: no
 * wait). Checks come every --health-interval (1 s when not given); after
 * --health-start-period, --health-retries (3) failures fail the step. */
static void s_health(FILE *f, const kiln_container_engine_t *e, const char *id,
                     const char *cname, const json_t *svc)
{
    const char *iv = s_option(svc, "--health-interval");
    const char *rt = s_option(svc, "--health-retries");
    const char *sp = s_option(svc, "--health-start-period");
    double interval = iv ? s_duration(iv) : 1;
    double start = sp ? s_duration(sp) : 0;
    long retries = rt ? strtol(rt, NULL, 10) : 3;
    if (interval <= 0)
        interval = 1;
    if (start < 0)
        start = 0;
    if (retries < 1)
        retries = 1;
    long budget = retries + (long)(start / interval + 0.999);
    fputs("  h=0\n  while :; do\n", f);
    if (strcmp(e->name, "docker") == 0) {
        fputs("    st=$(\"$e\" inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{end}}' ",
              f);
        kiln_container_quote(f, cname);
        fputs(")\n    [ -n \"$st\" ] || break\n    if [ \"$st\" = healthy ]; then r=0; "
              "elif [ \"$st\" = unhealthy ]; then r=1; else r=2; fi\n",
              f);
    } else {
        fputs("    if \"$e\" healthcheck run ", f);
        kiln_container_quote(f, cname);
        fputs(" >/dev/null 2>&1; then r=0; else r=$?; fi\n    [ $r != 125 ] || break\n", f);
    }
    fputs("    if [ $r = 0 ]; then echo \"Service \"", f);
    kiln_container_quote(f, id);
    fputs("\" is healthy\"; break; fi\n", f);
    fprintf(f, "    h=$((h + 1))\n    if [ $r = 1 ] && [ $h -ge %ld ]; then\n", budget);
    fputs("      echo \"::error::Service \"", f);
    kiln_container_quote(f, id);
    fprintf(f, "\" is unhealthy after %ld checks %.3g s apart\"; exit 1\n    fi\n", budget,
            interval);
    fprintf(f, "    sleep %.3f\n  done\n", interval);
}

int kiln_container_wrap(kiln_wjob_t *job, const kiln_kv_t *env, const char *const *argv,
                        bool default_shell, const char *script, const char *cwd,
                        const char *wrapper, char *why, size_t cap)
{
    if (job->native)
        return kiln_native_wrap(job, argv, default_shell, script, cwd, wrapper, why, cap);
    const kiln_container_engine_t *e = &job->agent->engine;
    FILE *f = kiln_container_script_open(wrapper, why, cap);
    if (!f)
        return -1;
    bool services = json_object_size(job->svc) > 0;
    fputs("#!/bin/sh\n# kiln-worker: this step's containers.\nset -e\n", f);
    for (const char *line = e->settings; *line;) {
        size_t n = strcspn(line, "\n");
        const char *eq = memchr(line, '=', n);
        if (eq) {
            char value[1024];
            snprintf(value, sizeof value, "%.*s", (int)(n - (size_t)(eq - line) - 1), eq + 1);
            fprintf(f, "export %.*s=", (int)(eq - line), line);
            kiln_container_quote(f, value);
            fputc('\n', f);
        }
        line += n + (line[n] == '\n');
    }
    char marker[KILN_WORKSPACE_PATH_MAX + 32];
    snprintf(marker, sizeof marker, "%s/.kiln-containers", job->ws.cmd);
    fputs("e=", f);
    kiln_container_quote(f, e->path);
    fputs("\nn=", f);
    kiln_container_quote(f, job->ctr_name);
    fputs("\nm=", f);
    kiln_container_quote(f, marker);
    /* Once per job, by its first run: step: the services (on the job's own
     * network when the job has a container, which reaches them by name),
     * then the job's container. */
    fputs("\nif [ ! -e \"$m\" ]; then\n", f);
    if (services && job->ctr) {
        fputs("  \"$e\" network create", f);
        kiln_container_labels(f, job);
        fputs(" \"$n\" >/dev/null\n", f);
    }
    const char *id;
    json_t *svc;
    size_t k = 0;
    /* Service ids are identifiers (lang checks them); the script quotes
     * them anyway, and numbers its variables. */
    json_object_foreach(job->svc, id, svc) {
        char cname[sizeof job->ctr_name + 140];
        snprintf(cname, sizeof cname, "%s-%s", job->ctr_name, id);
        fputs("  echo \"Starting service \"", f);
        kiln_container_quote(f, id);
        fputs("\" from the image \"", f);
        kiln_container_quote(f, json_string_value(json_object_get(svc, "image")));
        if (s_run_cmd(f, job, svc, k + 1, why, cap) != 0)
            goto fail;
        fputs(" -d --name ", f);
        kiln_container_quote(f, cname);
        kiln_container_labels(f, job);
        if (job->ctr) {
            fputs(" --network \"$n\" --network-alias ", f);
            kiln_container_quote(f, id);
        }
        s_run_args(f, svc);
        fputs(" >/dev/null\n", f);
        if (job->ctr) {
            fprintf(f, "  ip_%zu=$(\"$e\" inspect -f '{{range .NetworkSettings.Networks}}"
                       "{{.IPAddress}}{{end}}' ", k);
            kiln_container_quote(f, cname);
            fputs(")\n", f);
        }
        k++;
    }
    if (job->ctr) {
        fputs("  echo \"Starting the job's container from the image \"", f);
        kiln_container_quote(f, json_string_value(json_object_get(job->ctr, "image")));
        if (s_run_cmd(f, job, job->ctr, 0, why, cap) != 0)
            goto fail;
        fputs(" -d --name \"$n\"", f);
        kiln_container_labels(f, job);
        if (services)
            fputs(" --network \"$n\"", f);
        k = 0;
        json_object_foreach(job->svc, id, svc) {
            fputs(" --add-host ", f);
            kiln_container_quote(f, id);
            fprintf(f, "\":$ip_%zu\"", k++);
        }
        char mount[PATH_MAX * 2 + 8];
        snprintf(mount, sizeof mount, "%s:%s", job->ws.root, job->ws.root);
        fputs(" -v ", f);
        kiln_container_quote(f, mount);
        /* Remote actions' files, there for composite actions' steps (made
         * now if no action was downloaded yet, so a later download is
         * seen). */
        if (mkdir(job->agent->actions_dir, 0700) != 0 && errno != EEXIST)
            kiln_log_warn("cannot make %s: %s", job->agent->actions_dir, strerror(errno));
        snprintf(mount, sizeof mount, "%s:%s:ro", job->agent->actions_dir,
                 job->agent->actions_dir);
        fputs(" -v ", f);
        kiln_container_quote(f, mount);
        kiln_container_host_mounts(f, job, " -v ");
        fputs(" -w ", f);
        kiln_container_quote(f, job->ws.ws);
        fputs(" --entrypoint tail", f);
        s_run_args(f, job->ctr);
        fputs(" -f /dev/null >/dev/null\n", f);
    }
    /* Services' health checks before the first step, as GitHub waits for
     * them: podman here runs no checks of its own (they need systemd), so
     * the script runs each at its --health-interval; docker runs them and
     * the script reads the state at that interval. */
    json_object_foreach(job->svc, id, svc) {
        char cname[sizeof job->ctr_name + 140];
        snprintf(cname, sizeof cname, "%s-%s", job->ctr_name, id);
        s_health(f, e, id, cname, svc);
    }
    fputs("  : >\"$m\"\nfi\n", f);
    if (!job->ctr) {
        /* Services beside a job on the host: the step runs here. */
        fputs("cd ", f);
        kiln_container_quote(f, cwd);
        fputs("\nexec", f);
        for (size_t a = 0; argv[a]; a++) {
            fputc(' ', f);
            kiln_container_quote(f, argv[a]);
        }
        fputc('\n', f);
        goto done;
    }
    fputs("exec \"$e\" exec -i -w ", f);
    kiln_container_quote(f, cwd);
    /* The step's environment by name: the values come from this script's
     * own environment, never through its text. The image's PATH stays. */
    for (size_t j = 0; j < env->n; j++) {
        char key[512];
        kiln_kv_key_copy(env, j, key, sizeof key);
        if (strcmp(key, "PATH") == 0 || strcmp(key, "HOSTNAME") == 0)
            continue;
        fputs(" -e ", f);
        kiln_container_quote(f, key);
    }
    fputs(" \"$n\"", f);
    /* $GITHUB_PATH's directories before the image's own PATH, as GitHub
     * gives them to a container's steps. */
    char adds[8192];
    if (kiln_jobctx_path_additions(job->jx, adds, sizeof adds) != 0) {
        snprintf(why, cap, "the directories added to PATH are too long for a container step");
        goto fail;
    }
    if (adds[0]) {
        fputs(" /bin/sh -c 'PATH=\"$0:$PATH\" exec \"$@\"' ", f);
        kiln_container_quote(f, adds);
    }
    kiln_container_command(f, argv, default_shell, script);
    fputc('\n', f);
done:
    if (kiln_container_script_close(f, wrapper, why, cap) != 0)
        return -1;
    job->ctr_maybe = true;
    return 0;
fail:
    fclose(f);
    return -1;
}


extern char **environ;

/* Runs argv detached: a grandchild of this process, owned by init, its
 * output nowhere; the worker never waits for it beyond its first fork. It
 * is marked as no job's (KILN_TRACKING_ID), so the sweep of what the
 * ending job left running (agent.c) lets it finish its work. */
void kiln_container_detached(char *const *argv)
{
    size_t n = 0;
    while (environ[n])
        n++;
    char **envp = calloc(n + 2, sizeof *envp);
    if (!envp) {
        kiln_log_warn("cannot run %s: out of memory", argv[0]);
        return;
    }
    static char mark[] = "KILN_TRACKING_ID=kiln-worker:container-cleanup";
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "KILN_TRACKING_ID=", 17) != 0)
            envp[k++] = environ[i];
    envp[k++] = mark;
    envp[k] = NULL;
    pid_t pid = fork();
    if (pid < 0) {
        kiln_log_warn("cannot run %s: %s", argv[0], strerror(errno));
        free(envp);
        return;
    }
    if (pid == 0) {
        setsid();
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        if (fork() == 0) {
            int nul = open("/dev/null", O_RDWR);
            if (nul >= 0) {
                dup2(nul, 0);
                dup2(nul, 1);
                dup2(nul, 2);
            }
            execve(argv[0], argv, envp);
            _exit(127);
        }
        _exit(0);
    }
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
        ;
    free(envp);
}

void kiln_container_remove(kiln_wjob_t *job)
{
    kiln_native_remove(job);
    /* Registry credentials go at once, also from a workspace kept. */
    for (size_t k = 0; job->ctr_auth && k <= json_object_size(job->svc); k++) {
        char dir[KILN_WORKSPACE_PATH_MAX + 64];
        snprintf(dir, sizeof dir, "%s/.kiln-auth-%zu", job->ws.cmd, k);
        kiln_fs_rmtree(dir);
    }
    job->ctr_auth = false;
    const kiln_container_engine_t *e = &job->agent->engine;
    if (!job->ctr_maybe || !e->path[0])
        return;
    kiln_log_info("job %s: removing its containers (%s%s)", job->a->job_key, job->ctr_name,
                  json_object_size(job->svc) ? " and its services" : "");
    /* The job's container and its services, then their network; then the
     * images the engine holds now, for the heartbeat (S_IMAGES_SH). */
    char script[] = "e=$1; n=$2; job=$3; w=$4; f=$5; "
                    "ids=$(\"$e\" ps -aq --filter label=kiln.job=\"$job\" --filter label=kiln.worker=\"$w\"); "
                    "[ -z \"$ids\" ] || \"$e\" rm -f $([ \"$(basename \"$e\")\" = podman ] && echo -t 0) "
                    "$ids >/dev/null 2>&1; \"$e\" network rm \"$n\" >/dev/null 2>&1; " S_IMAGES_SH;
    char sh[] = "/bin/sh", c[] = "-c", zero[] = "kiln-container-cleanup";
    char path[PATH_MAX], name[sizeof job->ctr_name], key[512], worker[256], list[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s", e->path);
    snprintf(name, sizeof name, "%s", job->ctr_name);
    snprintf(key, sizeof key, "%s", job->a->job_key);
    snprintf(worker, sizeof worker, "%s", job->agent->name);
    kiln_container_images_path(job->agent->cfg.work_dir, list, sizeof list);
    char *argv[] = {sh, c, script, zero, path, name, key, worker, list, NULL};
    kiln_container_detached(argv);
    job->ctr_maybe = false;
}

void kiln_container_images_path(const char *work_dir, char *out, size_t cap)
{
    snprintf(out, cap, "%s/engine-images.txt", work_dir);
}

void kiln_container_sweep(const kiln_container_engine_t *e, const char *worker,
                          const char *work_dir)
{
    if (!e->path[0])
        return;
    char script[PATH_MAX + 600];
    snprintf(script, sizeof script,
             "e=$0; f=$2; ids=$(\"$0\" ps -aq --filter label=kiln.worker=\"$1\"); "
             "[ -z \"$ids\" ] || \"$0\" rm -f $ids; "
             "nets=$(\"$0\" network ls -q --filter label=kiln.worker=\"$1\"); "
             "[ -z \"$nets\" ] || \"$0\" network rm $nets; " S_IMAGES_SH);
    char sh[] = "/bin/sh", c[] = "-c", path[PATH_MAX], name[256], list[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s", e->path);
    snprintf(name, sizeof name, "%s", worker);
    kiln_container_images_path(work_dir, list, sizeof list);
    char *argv[] = {sh, c, script, path, name, list, NULL};
    kiln_container_detached(argv);
}

/* Whether path is a static ELF executable (no PT_INTERP): one that runs
 * in an empty root file system. */
static bool s_static_elf(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    Elf64_Ehdr eh;
    bool ok = read(fd, &eh, sizeof eh) == (ssize_t)sizeof eh && memcmp(eh.e_ident, ELFMAG, SELFMAG) == 0 &&
              eh.e_ident[EI_CLASS] == ELFCLASS64 && eh.e_phentsize == sizeof(Elf64_Phdr);
    for (unsigned i = 0; ok && i < eh.e_phnum; i++) {
        Elf64_Phdr ph;
        if (pread(fd, &ph, sizeof ph, (off_t)(eh.e_phoff + i * sizeof ph)) != (ssize_t)sizeof ph ||
            ph.p_type == PT_INTERP)
            ok = false;
    }
    close(fd);
    return ok;
}

/* Runs argv with its output (the last of it) in out; waits at most
 * timeout_ms (then kills it). The exit status, or -1. */
static int s_run(char *const *argv, char *out, size_t cap, int timeout_ms)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], 1);
        dup2(fds[1], 2);
        execv(argv[0], argv);
        _exit(127);
    }
    close(fds[1]);
    size_t got = 0;
    out[0] = '\0';
    struct pollfd p = {fds[0], POLLIN, 0};
    int64_t end = kiln_clock_mono_ms() + timeout_ms;
    bool timed_out = false;
    for (;;) {
        int64_t left = end - kiln_clock_mono_ms();
        if (left <= 0) {
            timed_out = true;
            break;
        }
        int r = poll(&p, 1, (int)left);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            timed_out = r == 0;
            break;
        }
        char buf[1024];
        ssize_t n = read(fds[0], buf, sizeof buf);
        if (n <= 0)
            break;
        for (ssize_t k = 0; k < n; k++) {
            if (got + 1 >= cap) { /* keep the end: what says why */
                memmove(out, out + cap / 2, got - cap / 2);
                got -= cap / 2;
            }
            out[got++] = buf[k];
        }
        out[got] = '\0';
    }
    close(fds[0]);
    while (got && isspace((unsigned char)out[got - 1]))
        out[--got] = '\0';
    if (pid < 0)
        return -1;
    if (timed_out)
        kill(pid, SIGKILL);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (timed_out) {
        snprintf(out, cap, "no answer within %d s", timeout_ms / 1000);
        return -1;
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int kiln_container_check(const kiln_container_engine_t *e, char *report, size_t cap)
{
    char out[4096], path[PATH_MAX];
    if (!e->path[0]) {
        snprintf(report, cap, "no: %s", e->why);
        return -1;
    }
    snprintf(path, sizeof path, "%s", e->path);
    char info[] = "info";
    char *argv_info[] = {path, info, NULL};
    if (s_run(argv_info, out, sizeof out, 30000) != 0) {
        snprintf(report, cap, "no: %s info failed: %.600s", e->path, out);
        return -1;
    }
    /* The engine's word is not enough (a runtime may refuse this host's
     * cgroups only when a container starts): one is started, from a root
     * file system holding a static busybox, when the machine has one. */
    if (!s_static_elf("/bin/busybox")) {
        snprintf(report, cap, "probably: %s info works; no container was started (no static "
                              "/bin/busybox here to start one from: install busybox-static)", e->path);
        return 0;
    }
    char root[PATH_MAX];
    const char *tmp = getenv("TMPDIR");
    snprintf(root, sizeof root, "%s/kiln-check-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    if (!mkdtemp(root)) {
        snprintf(report, cap, "no: cannot make a root file system to try: %s", strerror(errno));
        return -1;
    }
    static const char *const dirs[] = {"bin", "proc", "dev", "sys", "run", "tmp", "etc"};
    char p[PATH_MAX + 64];
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", root, dirs[i]);
        mkdir(p, 0755);
    }
    snprintf(p, sizeof p, "%s/bin/busybox", root);
    int rc = -1;
    if (link("/bin/busybox", p) != 0) {
        char *cp[] = {"/bin/cp", "/bin/busybox", p, NULL};
        s_run(cp, out, sizeof out, 10000);
    }
    char run[] = "run", rm[] = "--rm", rootfs[] = "--rootfs", bb[] = "/bin/busybox", tr[] = "true";
    char *argv_run[] = {path, run, rm, rootfs, root, bb, tr, NULL};
    int64_t t0 = kiln_clock_mono_ms();
    if (s_run(argv_run, out, sizeof out, 30000) == 0) {
        snprintf(report, cap, "yes: %s started and removed a container in %lld ms", e->path,
                 (long long)(kiln_clock_mono_ms() - t0));
        rc = 0;
    } else {
        snprintf(report, cap, "no: %s cannot start a container here: %.600s (a containers.conf "
                              "through CONTAINERS_CONF may help: see the README, Container jobs)",
                 e->path, out);
    }
    char *rmr[] = {"/bin/rm", "-rf", root, NULL};
    s_run(rmr, out, sizeof out, 10000);
    return rc;
}
