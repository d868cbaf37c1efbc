/* dockeraction.c: a Docker action's phase (runs.using: docker, and
 * `uses: docker://` steps) as a step's host script (see dockeraction.h):
 * its inputs evaluated, runs.args and runs.env evaluated with them, then
 * the image run through the engine (pulled, or built from the action's
 * Dockerfile once per action directory) or natively (native.c) with
 * GitHub's mounts: the workspace at /github/workspace, the job's directory
 * at its own path. */
#include "worker/dockeraction.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "worker/agent_int.h"
#include "worker/container.h"
#include "worker/jobctx.h"
#include "worker/native.h"

#define S_WORDS_MAX 64

int kiln_dockeraction_wrap(kiln_wjob_t *job, const Kiln__StepSpec *st, const json_t *js,
                          const kiln_kv_t *env, const char *apath, const char *wrapper,
                          char *why, size_t cap)
{
    const kiln_container_engine_t *e = &job->agent->engine;
    const char *uses = json_string_value(json_object_get(js, "uses"));
    const char *image = json_string_value(json_object_get(js, "image"));
    const char *entry = json_string_value(json_object_get(js, "script"));
    int rc = -1;
    FILE *f = NULL;
    json_t *inputs = json_object();
    char *words[S_WORDS_MAX], wbuf[4096];
    int n_words = 0;
    /* An image by reference runs natively on a worker whose runtime is
     * native, or that has no engine; a Dockerfile needs an engine. */
    const kiln_native_t *nat = &job->agent->native;
    bool by_ref = image && strncmp(image, "docker://", 9) == 0;
    bool native = by_ref && !nat->why[0] && strcmp(nat->mode, "engine") != 0 &&
                  (strcmp(nat->mode, "native") == 0 || !e->path[0]);
    if (!native && !e->path[0]) {
        snprintf(why, cap, "the Docker action '%s' cannot run on this worker: %s%s%s",
                 uses ? uses : "?", e->why,
                 !by_ref ? "; an action built from a Dockerfile needs an engine" : "",
                 by_ref && nat->why[0] ? "; natively, " : "");
        if (by_ref && nat->why[0])
            strncat(why, nat->why, cap - strlen(why) - 1);
        goto cleanup;
    }
    /* Its args speak of its inputs: the with: values as this step sees them. */
    json_t *with = st->with.len ? json_loadb((const char *)st->with.data, st->with.len, 0, NULL)
                                : NULL;
    const char *k;
    json_t *v;
    json_object_foreach(with, k, v) {
        char *val = NULL, err[400], *plain = json_is_string(v) ? NULL : json_dumps(v, JSON_ENCODE_ANY);
        if (kiln_jobctx_interpolate(job->jx, plain ? plain : json_string_value(v), &val, err,
                                    sizeof err) == 0)
            json_object_set_new(inputs, k, json_string(val ? val : ""));
        free(val);
        free(plain);
    }
    json_decref(with);
    json_t *args = json_array();
    size_t i;
    json_array_foreach(json_object_get(js, "args"), i, v) {
        char *val = NULL, err[400];
        if (kiln_jobctx_interpolate_inputs(job->jx, json_string_value(v), inputs, &val, err,
                                           sizeof err) != 0) {
            snprintf(why, cap, "runs.args: %s", err);
            json_decref(args);
            goto cleanup;
        }
        json_array_append_new(args, json_string(val ? val : ""));
        free(val);
    }
    const char *line = json_string_value(json_object_get(js, "args_line"));
    if (line) {
        char *val = NULL, err[400];
        if (kiln_jobctx_interpolate(job->jx, line, &val, err, sizeof err) != 0 ||
            (n_words = kiln_container_words(val ? val : "", words, S_WORDS_MAX, wbuf, sizeof wbuf)) < 0) {
            snprintf(why, cap, "with.args: %s", n_words < 0 ? "unbalanced quotes or too many words" : err);
            free(val);
            json_decref(args);
            goto cleanup;
        }
        for (int w = 0; w < n_words; w++)
            json_array_append_new(args, json_string(words[w]));
        free(val);
    }
    if (native) {
        rc = kiln_native_docker(job, js, inputs, args, image + 9, entry, wrapper, why, cap);
        json_decref(args);
        goto cleanup;
    }
    if (!(f = kiln_container_script_open(wrapper, why, cap))) {
        json_decref(args);
        goto cleanup;
    }
    fputs("#!/bin/sh\n# kiln-worker: this step runs a Docker action.\nset -e\n", f);
    for (const char *l = e->settings; *l;) {
        size_t n = strcspn(l, "\n");
        const char *eq = memchr(l, '=', n);
        if (eq) {
            char value[1024];
            snprintf(value, sizeof value, "%.*s", (int)(n - (size_t)(eq - l) - 1), eq + 1);
            fprintf(f, "export %.*s=", (int)(eq - l), l);
            kiln_container_quote(f, value);
            fputc('\n', f);
        }
        l += n + (l[n] == '\n');
    }
    fputs("e=", f);
    kiln_container_quote(f, e->path);
    char name[sizeof job->ctr_name + 32];
    snprintf(name, sizeof name, "%s-step%zu", job->ctr_name, job->step);
    fputs("\nn=", f);
    kiln_container_quote(f, name);
    if (strncmp(image, "docker://", 9) == 0) {
        fputs("\nimg=", f);
        kiln_container_quote(f, image + 9);
        fputc('\n', f);
    } else {
        /* A Dockerfile of the action's: built once per action directory
         * (a commit's, for a remote action) and kept by the engine. */
        unsigned long h = 5381;
        for (const char *p = apath; *p; p++)
            h = h * 33 + (unsigned char)*p;
        char tag[64], file[PATH_MAX * 2];
        snprintf(tag, sizeof tag, "localhost/kiln-action-%016lx:1", h);
        snprintf(file, sizeof file, "%s/%s", apath, image);
        fputs("\nimg=", f);
        kiln_container_quote(f, tag);
        fputs("\nif ! \"$e\" image inspect \"$img\" >/dev/null 2>&1; then\n"
              "  echo \"Building the action's image from \"", f);
        kiln_container_quote(f, image);
        fputs("\n  \"$e\" build -q -t \"$img\" -f ", f);
        kiln_container_quote(f, file);
        fputc(' ', f);
        kiln_container_quote(f, apath);
        fputs(" >/dev/null\nfi\n", f);
    }
    fputs("exec \"$e\" run --rm -i --name \"$n\"", f);
    kiln_container_labels(f, job);
    char mount[PATH_MAX * 2 + 32];
    snprintf(mount, sizeof mount, "%s:%s", job->ws.root, job->ws.root);
    fputs(" -v ", f);
    kiln_container_quote(f, mount);
    snprintf(mount, sizeof mount, "%s:/github/workspace", job->ws.ws);
    fputs(" -v ", f);
    kiln_container_quote(f, mount);
    fputs(" -w /github/workspace", f);
    /* The step's environment by name, the image's PATH kept; the workspace
     * where GitHub mounts it for Docker actions. */
    for (size_t j = 0; j < env->n; j++) {
        char key[512];
        kiln_kv_key_copy(env, j, key, sizeof key);
        if (strcmp(key, "PATH") == 0 || strcmp(key, "HOSTNAME") == 0 ||
            strcmp(key, "GITHUB_WORKSPACE") == 0)
            continue;
        fputs(" -e ", f);
        kiln_container_quote(f, key);
    }
    fputs(" -e GITHUB_WORKSPACE=/github/workspace", f);
    json_object_foreach(json_object_get(js, "env"), k, v) {
        char *val = NULL, err[400], kvs[4096];
        if (kiln_jobctx_interpolate_inputs(job->jx, json_string_value(v) ? json_string_value(v) : "",
                                           inputs, &val, err, sizeof err) != 0) {
            snprintf(why, cap, "runs.env.%s: %s", k, err);
            json_decref(args);
            goto cleanup;
        }
        snprintf(kvs, sizeof kvs, "%s=%s", k, val ? val : "");
        free(val);
        fputs(" -e ", f);
        kiln_container_quote(f, kvs);
    }
    if (entry && entry[0]) {
        fputs(" --entrypoint ", f);
        kiln_container_quote(f, entry);
    }
    fputs(" \"$img\"", f);
    json_array_foreach(args, i, v) {
        fputc(' ', f);
        kiln_container_quote(f, json_string_value(v));
    }
    fputc('\n', f);
    json_decref(args);
    job->ctr_maybe = true;
    rc = 0;
cleanup:
    /* A write error is the message only when nothing failed before it. */
    char later[300];
    if (f && kiln_container_script_close(f, wrapper, rc == 0 ? why : later,
                                         rc == 0 ? cap : sizeof later) != 0)
        rc = -1;
    json_decref(inputs);
    return rc;
}
