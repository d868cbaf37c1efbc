/* image_main.c: kiln-image, the native container runtime's program. The
 * worker's step scripts run `kiln-image run`, so a pull happens inside the
 * step (its log, timeout and cancellation) and the step's command replaces
 * it in the sandbox; `pull`, `list` and `gc` are there to warm, inspect or
 * trim a worker's store by hand. */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/fs.h"
#include "worker/image.h"
#include "worker/imagestore.h"

#define S_BINDS_MAX 64
#define S_ARGS_MAX 256

static void s_usage(FILE *f)
{
    fputs("usage: kiln-image pull  --store DIR [registry options] IMAGE\n"
          "       kiln-image run   --store DIR [registry options] --state DIR --hold NAME\n"
          "                        [--bind SRC:DST[:ro]]... [--cwd DIR] [--hostname NAME]\n"
          "                        [--bwrap PATH] [--path-prepend DIR:...]\n"
          "                        [--entrypoint PROGRAM] [--image-command] IMAGE -- [ARG...]\n"
          "       kiln-image list  --store DIR\n"
          "       kiln-image gc    --store DIR --max-mb N\n"
          "registry options: --auth FILE (Docker-style auths), --insecure HOST,...,\n"
          "  --mirror [HOST=]URL,... (HOST docker.io when not given), --pull missing|always,\n"
          "  --max-mb N (store quota)\n",
          f);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        s_usage(stderr);
        return 2;
    }
    const char *verb = argv[1];
    kiln_image_opts_t o = {0};
    const char *state = NULL, *hold = NULL, *cwd = "/", *hostname = "kiln", *bwrap = NULL;
    const char *path_prepend = NULL, *entrypoint = NULL;
    bool image_command = false;
    const char *binds[S_BINDS_MAX];
    size_t n_binds = 0;
    static const struct option longs[] = {
        {"store", required_argument, 0, 's'},    {"auth", required_argument, 0, 'a'},
        {"insecure", required_argument, 0, 'i'}, {"mirror", required_argument, 0, 'm'},
        {"pull", required_argument, 0, 'p'},     {"max-mb", required_argument, 0, 'q'},
        {"state", required_argument, 0, 't'},    {"hold", required_argument, 0, 'h'},
        {"bind", required_argument, 0, 'b'},     {"cwd", required_argument, 0, 'c'},
        {"hostname", required_argument, 0, 'n'}, {"bwrap", required_argument, 0, 'w'},
        {"path-prepend", required_argument, 0, 'P'},
        {"entrypoint", required_argument, 0, 'E'},
        {"image-command", no_argument, 0, 'I'},
        {"help", no_argument, 0, 'H'},           {0, 0, 0, 0},
    };
    optind = 2;
    int c;
    while ((c = getopt_long(argc, argv, "+", longs, NULL)) != -1) {
        switch (c) {
        case 's': o.store = optarg; break;
        case 'a': o.registry.auth_file = optarg; break;
        case 'i': o.registry.insecure = optarg; break;
        case 'm': o.registry.mirror = optarg; break;
        case 'p':
            if (strcmp(optarg, "always") != 0 && strcmp(optarg, "missing") != 0) {
                fprintf(stderr, "kiln-image: --pull is missing or always, not '%s'\n", optarg);
                return 2;
            }
            o.pull_always = strcmp(optarg, "always") == 0;
            break;
        case 'q': o.max_bytes = (uint64_t)strtoull(optarg, NULL, 10) << 20; break;
        case 't': state = optarg; break;
        case 'h': hold = optarg; break;
        case 'b':
            if (n_binds == S_BINDS_MAX) {
                fprintf(stderr, "kiln-image: more than %d mounts\n", S_BINDS_MAX);
                return 2;
            }
            binds[n_binds++] = optarg;
            break;
        case 'c': cwd = optarg; break;
        case 'n': hostname = optarg; break;
        case 'w': bwrap = optarg; break;
        case 'P': path_prepend = optarg; break;
        case 'E': entrypoint = optarg; break;
        case 'I': image_command = true; break;
        case 'H': s_usage(stdout); return 0;
        default: s_usage(stderr); return 2;
        }
    }
    if (!o.store) {
        fprintf(stderr, "kiln-image: --store is required\n");
        return 2;
    }
    /* Pulls are kiln-image-pull's, installed beside this program. */
    char self[4096], pull[4200] = "kiln-image-pull";
    ssize_t sl = readlink("/proc/self/exe", self, sizeof self - 1);
    if (sl > 0) {
        self[sl] = '\0';
        char *slash = strrchr(self, '/');
        if (slash) {
            *slash = '\0';
            snprintf(pull, sizeof pull, "%s/kiln-image-pull", self);
        }
    }
    o.pull_program = pull;
    char why[1200];
    if (strcmp(verb, "list") == 0) {
        char **refs;
        size_t n;
        kiln_imagestore_list(o.store, &refs, &n);
        for (size_t i = 0; i < n; i++)
            printf("%s\n", refs[i]);
        kiln_imagestore_list_free(refs, n);
        return 0;
    }
    if (strcmp(verb, "gc") == 0) {
        int evicted = 0;
        if (!o.max_bytes) {
            fprintf(stderr, "kiln-image: gc needs --max-mb\n");
            return 2;
        }
        if (kiln_imagestore_gc(o.store, o.max_bytes, &evicted, why, sizeof why) != 0) {
            fprintf(stderr, "kiln-image: %s\n", why);
            return 1;
        }
        printf("%d images evicted\n", evicted);
        return 0;
    }
    if ((strcmp(verb, "pull") != 0 && strcmp(verb, "run") != 0) || optind >= argc) {
        s_usage(stderr);
        return 2;
    }
    const char *image = argv[optind++];
    bool run = strcmp(verb, "run") == 0;
    if (run && (!state || !hold || optind >= argc || strcmp(argv[optind], "--") != 0 ||
                (optind + 1 >= argc && !image_command))) {
        fprintf(stderr, "kiln-image: run needs --state, --hold, IMAGE, -- and a command (or "
                        "--image-command)\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    char rootfs[4200];
    json_t *env = NULL;
    if (kiln_image_ensure(&o, image, run ? hold : NULL, rootfs, sizeof rootfs, &env, stdout,
                          why, sizeof why) != 0) {
        /* A workflow command, so the step's annotation says why. */
        printf("::error title=container image::%s\n", why);
        return 1;
    }
    if (!run) {
        json_decref(env);
        return 0;
    }
    char found[4096];
    if (!bwrap) {
        if (kiln_fs_find_program("bwrap", found, sizeof found) != 0) {
            printf("::error title=container image::bubblewrap (bwrap) is not installed on "
                   "this worker\n");
            json_decref(env);
            return 1;
        }
        bwrap = found;
    }
    /* With --image-command, Docker's rule: the entrypoint (the image's, or
     * --entrypoint's), then the arguments given, or the image's Cmd when
     * none are and the entrypoint is the image's. */
    char **cmd = argv + optind + 1;
    char *built[S_ARGS_MAX + 1];
    if (image_command) {
        size_t n = 0;
        json_t *ep = json_object_get(env, "entrypoint"), *ic = json_object_get(env, "cmd");
        size_t i;
        json_t *w;
        if (entrypoint)
            built[n++] = (char *)entrypoint;
        else
            json_array_foreach(ep, i, w) if (n < S_ARGS_MAX) built[n++] = (char *)json_string_value(w);
        if (*cmd) {
            for (char **a = cmd; *a && n < S_ARGS_MAX; a++)
                built[n++] = *a;
        } else if (!entrypoint) {
            json_array_foreach(ic, i, w) if (n < S_ARGS_MAX) built[n++] = (char *)json_string_value(w);
        }
        if (n == 0 || n == S_ARGS_MAX) {
            printf("::error title=container::the image %s gives no command to run%s\n", image,
                   n ? " (or too long a one)" : "");
            json_decref(env);
            return 1;
        }
        built[n] = NULL;
        cmd = built;
    }
    fflush(stdout);
    kiln_image_run_t r = {
        .rootfs = rootfs, .state = state, .bwrap = bwrap, .cwd = cwd, .hostname = hostname,
        .binds = binds, .n_binds = n_binds, .env = json_object_get(env, "env"), .argv = cmd,
        .path_prepend = path_prepend,
    };
    kiln_image_exec(&r, why, sizeof why);
    printf("::error title=container::%s\n", why);
    json_decref(env);
    return 1;
}
