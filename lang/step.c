/* step.c: the parser's shared helpers and the walk of steps.
 *
 * Values that GitHub lets a workflow compute are accepted here either as
 * what they are (a boolean, a number) or as a template string, whose
 * expressions are checked for syntax now and evaluated by the planner or
 * the worker later. Anything else is a type error naming the key.
 */
#include "lang/parse_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lang/builtin.h"
#include "lang/expr.h"

/* Derived step names ("Run <first line>") keep this many bytes of script. */
#define S_STEP_NAME_MAX 60

void kiln_parse_error(kiln_parse_t *ctx, const knode_t *at, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    kiln_diags_vadd(ctx->diags, KILN_DIAG_ERROR, at ? at->line : 0, at ? at->col : 0, fmt, ap);
    va_end(ap);
}

void kiln_parse_error_at(kiln_parse_t *ctx, int line, int col, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    kiln_diags_vadd(ctx->diags, KILN_DIAG_ERROR, line, col, fmt, ap);
    va_end(ap);
}

void kiln_parse_warn(kiln_parse_t *ctx, const knode_t *at, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    kiln_diags_vadd(ctx->diags, KILN_DIAG_WARNING, at ? at->line : 0, at ? at->col : 0, fmt, ap);
    va_end(ap);
}

void kiln_parse_type_error(kiln_parse_t *ctx, const knode_t *key, const char *who,
                           const char *what)
{
    const char *name = kiln_yaml_res((knode_t *)key)->value;
    kiln_parse_error(ctx, key, "'%.*s' of %s must be %s", s_q(name), name, who, what);
}

char *kiln_parse_strdup(kiln_parse_t *ctx, const char *text)
{
    char *copy = strdup(text);
    if (!copy)
        ctx->oom = true;
    return copy;
}

char *kiln_parse_string(kiln_parse_t *ctx, const knode_t *key, const knode_t *val,
                        const char *who)
{
    if (val->kind != KILN_YAML_SCALAR) {
        kiln_parse_type_error(ctx, key, who, "a string");
        return NULL;
    }
    return kiln_parse_strdup(ctx, val->value);
}

bool kiln_parse_is_key(const char *name, const char *const *list)
{
    for (size_t i = 0; list[i]; i++)
        if (strcmp(name, list[i]) == 0)
            return true;
    return false;
}

void kiln_parse_template(kiln_parse_t *ctx, const knode_t *at, const char *who,
                         const char *field, const char *text)
{
    char err[512];
    int col = 0;
    if (!kiln_is_template(text))
        return;
    if (kiln_expr_check_template(text, &col, err, sizeof err) != 0)
        kiln_parse_error(ctx, at, "%s: %s: expression error at column %d: %s", who, field, col,
                         err);
}

void kiln_parse_condition(kiln_parse_t *ctx, const knode_t *at, const char *who,
                          const char *text)
{
    char err[512];
    int col = 0;
    if (text && kiln_expr_check_condition(text, &col, err, sizeof err) != 0)
        kiln_parse_error(ctx, at, "%s: if: expression error at column %d: %s", who, col, err);
}

/* A scalar holding ${{ }}: the template string (checked), else NULL. */
static json_t *s_template_value(kiln_parse_t *ctx, const knode_t *key, const knode_t *val,
                                const char *who)
{
    if (val->kind != KILN_YAML_SCALAR || !kiln_is_template(val->value))
        return NULL;
    kiln_parse_template(ctx, val, who, kiln_yaml_res((knode_t *)key)->value, val->value);
    json_t *s = json_string(val->value);
    if (!s)
        ctx->oom = true;
    return s;
}

static void s_set(json_t **out, json_t *v)
{
    json_decref(*out);
    *out = v;
}

void kiln_parse_bool_value(kiln_parse_t *ctx, const knode_t *key, const knode_t *val,
                           const char *who, json_t **out)
{
    bool b;
    json_t *t = s_template_value(ctx, key, val, who);
    if (t)
        s_set(out, t);
    else if (kiln_yaml_bool(val, &b))
        s_set(out, json_boolean(b));
    else
        kiln_parse_type_error(ctx, key, who, "a boolean (true or false) or an expression");
}

void kiln_parse_minutes_value(kiln_parse_t *ctx, const knode_t *key, const knode_t *val,
                              const char *who, json_t **out)
{
    double minutes;
    json_t *t = s_template_value(ctx, key, val, who);
    if (t) {
        s_set(out, t);
        return;
    }
    if (!kiln_yaml_number(val, &minutes)) {
        kiln_parse_type_error(ctx, key, who, "a number or an expression");
        return;
    }
    if (!(minutes > 0) || minutes > KILN_WF_MAX_TIMEOUT_MIN) {
        kiln_parse_type_error(ctx, key, who,
                              "a number of minutes greater than 0 and at most a year");
        return;
    }
    s_set(out, json_real(minutes));
}

void kiln_parse_count_value(kiln_parse_t *ctx, const knode_t *key, const knode_t *val,
                            const char *who, unsigned lo, unsigned hi, json_t **out)
{
    double n;
    json_t *t = s_template_value(ctx, key, val, who);
    if (t) {
        s_set(out, t);
        return;
    }
    if (!kiln_yaml_number(val, &n) || n != (double)(long long)n || n < lo || n > hi) {
        char want[80];
        snprintf(want, sizeof want, "a whole number from %u to %u, or an expression", lo, hi);
        kiln_parse_type_error(ctx, key, who, want);
        return;
    }
    s_set(out, json_integer((json_int_t)n));
}

void kiln_parse_template_map(kiln_parse_t *ctx, const knode_t *key, knode_t *val,
                             const char *who, const char *what, json_t **out)
{
    const char *field = kiln_yaml_res((knode_t *)key)->value;
    if (val->kind != KILN_YAML_MAP) {
        kiln_parse_type_error(ctx, key, who, what);
        return;
    }
    json_decref(*out);
    if (!(*out = kiln_yaml_json(val)))
        ctx->oom = true;
    for (size_t i = 0; i + 1 < val->n; i += 2) {
        knode_t *v = kiln_yaml_res(val->items[i + 1]);
        if (v->kind == KILN_YAML_SCALAR)
            kiln_parse_template(ctx, v, who, field, v->value);
    }
}

void kiln_env_clear(kiln_env_t *env)
{
    for (size_t i = 0; i < env->n; i++) {
        free(env->items[i].key);
        free(env->items[i].value);
    }
    free(env->items);
    env->items = NULL;
    env->n = 0;
}

void kiln_parse_env(kiln_parse_t *ctx, const knode_t *key, const knode_t *val, const char *who,
                    kiln_env_t *env, char **env_expr)
{
    if (val->kind == KILN_YAML_SCALAR && kiln_is_template(val->value)) {
        /* env: ${{ matrix.env }}: one expression that gives the mapping. */
        kiln_parse_template(ctx, val, who, "env", val->value);
        free(*env_expr);
        *env_expr = kiln_parse_strdup(ctx, val->value);
        return;
    }
    if (val->kind == KILN_YAML_SCALAR && val->plain && val->len == 0)
        return; /* env: with nothing under it */
    if (val->kind != KILN_YAML_MAP) {
        kiln_parse_type_error(ctx, key, who, "a mapping or an expression");
        return;
    }
    size_t n_pairs = val->n / 2;
    if (n_pairs == 0)
        return;
    kiln_env_clear(env);
    env->items = calloc(n_pairs, sizeof *env->items);
    if (!env->items) {
        ctx->oom = true;
        return;
    }
    for (size_t i = 0; i + 1 < val->n && !ctx->oom; i += 2) {
        knode_t *kslot = val->items[i];
        if (kslot->skip)
            continue;
        const char *name = kiln_yaml_res(kslot)->value;
        knode_t *v = kiln_yaml_res(val->items[i + 1]);
        /* The executor builds "NAME=value" strings: an '=' in the name or
         * an empty one would silently become a different variable. */
        if (name[0] == '\0' || strchr(name, '=')) {
            kiln_parse_error(ctx, kslot, "invalid environment variable name '%.*s' in env of %s",
                             s_q(name), name, who);
            continue;
        }
        if (v->kind != KILN_YAML_SCALAR) {
            kiln_parse_error(ctx, kslot, "env '%.*s' of %s must be a string, not %s", s_q(name),
                             name, who, kiln_yaml_kind_name(v->kind));
            continue;
        }
        kiln_parse_template(ctx, v, who, "env", v->value);
        kiln_env_var_t *kv = &env->items[env->n++];
        kv->key = kiln_parse_strdup(ctx, name);
        /* A plain null (FOO:) is the empty string, as GitHub reads it. */
        kv->value = kiln_parse_strdup(ctx, kiln_yaml_null(v) ? "" : v->value);
    }
}

/* Shells GitHub knows by name; anything else needs "{0}" (a template). */
static const char *const s_shells[] = {"bash", "sh", "python", "pwsh", "powershell", "cmd", NULL};

char *kiln_parse_shell(kiln_parse_t *ctx, const knode_t *key, const knode_t *val,
                       const char *who, bool expression_ok)
{
    char *shell = kiln_parse_string(ctx, key, val, who);
    if (!shell)
        return NULL;
    if (kiln_is_template(shell)) {
        if (!expression_ok) {
            kiln_parse_error(ctx, val,
                             "'shell' of %s is an expression: GitHub evaluates shell: only in "
                             "defaults.run (of the workflow or the job) and in composite "
                             "actions; set it there",
                             who);
            free(shell);
            return NULL;
        }
        kiln_parse_template(ctx, val, who, "shell", shell);
        return shell;
    }
    if (!kiln_parse_is_key(shell, s_shells) && !strstr(shell, "{0}")) {
        kiln_parse_error(ctx, val,
                         "unsupported shell '%.*s' in %s (use bash, sh, python, pwsh, or a "
                         "command containing {0})",
                         s_q(shell), shell, who);
        free(shell);
        return NULL;
    }
    if (strcmp(shell, "powershell") == 0 || strcmp(shell, "cmd") == 0)
        kiln_parse_warn(ctx, val,
                        "shell '%s' of %s runs only on Windows; on this farm such a step fails "
                        "unless its if: keeps it from running",
                        shell, who);
    else if (strcmp(shell, "pwsh") == 0)
        kiln_parse_warn(ctx, val,
                        "shell 'pwsh' of %s needs PowerShell on the worker; without it the step "
                        "fails",
                        who);
    return shell;
}

static bool s_id_ok(const char *id)
{
    char c = id[0];
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_'))
        return false;
    for (const char *p = id + 1; *p; p++) {
        c = *p;
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return false;
    }
    return true;
}

bool kiln_parse_check_id(kiln_parse_t *ctx, const knode_t *at, const char *kind, const char *id,
                         const char *where)
{
    if (strlen(id) > KILN_WF_MAX_ID) {
        kiln_parse_error(ctx, at, "%s id '%.*s...' is longer than %d characters%s", kind, s_q(id),
                         id, KILN_WF_MAX_ID, where);
        return false;
    }
    if (!s_id_ok(id)) {
        kiln_parse_error(ctx, at,
                         "invalid %s id '%.*s'%s: an id starts with a letter or '_' and holds "
                         "only letters, digits, '-' and '_'",
                         kind, s_q(id), id, where);
        return false;
    }
    return true;
}

char *kiln_step_derived_name(const char *script)
{
    const char *p = script;
    for (;;) {
        const char *q = p;
        while (*q == ' ' || *q == '\t')
            q++;
        if (*q != '\n' && *q != '\r') {
            p = q;
            break;
        }
        p = q + 1;
    }
    size_t len = strcspn(p, "\r\n");
    while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
        len--;
    bool cut = false;
    if (len > S_STEP_NAME_MAX) {
        len = S_STEP_NAME_MAX;
        /* Do not split a UTF-8 sequence: back up to the start of one. */
        while (len > 0 && ((unsigned char)p[len] & 0xC0) == 0x80)
            len--;
        cut = true;
    }
    size_t size = 4 + len + 3 + 1;
    char *name = malloc(size);
    if (name)
        snprintf(name, size, "Run %.*s%s", (int)len, p, cut ? "..." : "");
    return name;
}

static char *s_derived_name(kiln_parse_t *ctx, const char *script)
{
    char *name = kiln_step_derived_name(script);
    if (!name)
        ctx->oom = true;
    return name;
}

void kiln_step_clear(kiln_step_t *step)
{
    free(step->id);
    free(step->name);
    free(step->run);
    free(step->uses);
    free(step->shell);
    free(step->working_directory);
    free(step->if_expr);
    kiln_env_clear(&step->env);
    free(step->env_expr);
    json_decref(step->timeout);
    json_decref(step->continue_on_error);
    json_decref(step->with);
    json_decref(step->action_inputs);
    json_decref(step->composite_ends);
    free(step->action_path);
    json_decref(step->js_action);
    json_decref(step->composite_begins);
    memset(step, 0, sizeof *step);
}

/* A uses: step that is not a local action must name a built-in one; its
 * with: is checked against the action's inputs, as GitHub warns of
 * unexpected ones. */
static void s_check_builtin(kiln_parse_t *ctx, const knode_t *slot, const char *who,
                            kiln_step_t *step)
{
    char why[256];
    step->builtin = kiln_builtin_for(step->uses, why, sizeof why);
    if (!step->builtin) {
        kiln_uses_ref_t ref;
        if (why[0])
            kiln_parse_error(ctx, slot, "%s uses %s", who, why);
        else if (strncmp(step->uses, "docker://", 9) == 0) {
            /* An image run as the step: with.entrypoint and with.args
             * (one string, split into words as a shell would) are the
             * runner's; the rest of with: its inputs. */
            json_t *ep = json_object_get(step->with, "entrypoint");
            json_t *args = json_object_get(step->with, "args");
            char *ep_text = ep ? kiln_expr_string(ep) : NULL;
            char *args_text = args ? kiln_expr_string(args) : NULL;
            step->builtin = "docker";
            step->js_action = json_pack("{s:s, s:s, s:s?, s:s?, s:s, s:[], s:{}, s:s, s:s, s:s}",
                                        "phase", "main", "image", step->uses, "script", ep_text,
                                        "args_line", args_text, "using", "docker", "args", "env",
                                        "uses", step->uses, "repository", "", "ref", "");
            free(ep_text);
            free(args_text);
            if (!step->js_action)
                ctx->oom = true;
            if (step->with) {
                json_object_del(step->with, "entrypoint");
                json_object_del(step->with, "args");
            } else if (!(step->with = json_object())) {
                ctx->oom = true;
            }
        }
        else if (kiln_uses_remote(step->uses, &ref) != 0)
            kiln_parse_error(ctx, slot,
                             "%s uses '%.*s', which names no action: write owner/repo@ref, "
                             "owner/repo/path@ref, ./path or docker://image",
                             who, s_q(step->uses), step->uses);
        /* else an action of another repository: expanded (or refused, with
         * the reason) once the loader has it (composite.c). */
        return;
    }
    const char *name;
    json_t *v;
    json_object_foreach(step->with, name, v) {
        (void)v;
        if (!kiln_builtin_input_known(step->builtin, name))
            kiln_parse_warn(ctx, slot, "%s: '%.*s' has no input '%.*s' (its inputs: %s)", who,
                            s_q(step->uses), step->uses, s_q(name), name,
                            kiln_builtin_inputs(step->builtin));
    }
}

void kiln_parse_step(kiln_parse_t *ctx, const char *job_id, size_t index, knode_t *slot,
                     kiln_step_t *step)
{
    knode_t *node = kiln_yaml_res(slot);
    char who[KILN_PARSE_WHO_MAX], job_where[KILN_YAML_QUOTE_MAX + 16];
    snprintf(job_where, sizeof job_where, " in job '%.*s'", s_q(job_id), job_id);
    step->line = slot->line;
    step->col = slot->col;
    if (node->kind != KILN_YAML_MAP) {
        kiln_parse_error(ctx, slot, "step %zu of job '%.*s' must be a mapping, not %s", index + 1,
                         s_q(job_id), job_id, kiln_yaml_kind_name(node->kind));
        return;
    }
    /* First find what names the step, so every message below can say which
     * step it is about. */
    knode_t *name_v = kiln_yaml_get(node, "name", NULL), *run_v = kiln_yaml_get(node, "run", NULL),
            *uses_v = kiln_yaml_get(node, "uses", NULL);
    if (name_v && name_v->kind == KILN_YAML_SCALAR && name_v->len > 0)
        step->name = kiln_parse_strdup(ctx, name_v->value);
    else if (run_v && run_v->kind == KILN_YAML_SCALAR) {
        step->name = s_derived_name(ctx, run_v->value);
        step->name_derived = true;
    } else if (uses_v && uses_v->kind == KILN_YAML_SCALAR)
        step->name = s_derived_name(ctx, uses_v->value);
    if (step->name)
        snprintf(who, sizeof who, "step '%.*s' of job '%.*s'", s_q(step->name), step->name,
                 s_q(job_id), job_id);
    else
        snprintf(who, sizeof who, "step %zu of job '%.*s'", index + 1, s_q(job_id), job_id);

    bool has_run = false, has_uses = false;
    for (size_t i = 0; i + 1 < node->n && !ctx->oom; i += 2) {
        knode_t *kslot = node->items[i];
        if (kslot->skip)
            continue;
        const char *k = kiln_yaml_res(kslot)->value;
        knode_t *v = kiln_yaml_res(node->items[i + 1]);
        if (strcmp(k, "name") == 0) {
            if (v->kind != KILN_YAML_SCALAR)
                kiln_parse_type_error(ctx, kslot, who, "a string");
            else
                kiln_parse_template(ctx, v, who, "name", v->value);
        } else if (strcmp(k, "id") == 0) {
            step->id = kiln_parse_string(ctx, kslot, v, who);
            if (step->id)
                kiln_parse_check_id(ctx, v, "step", step->id, job_where);
        } else if (strcmp(k, "run") == 0) {
            has_run = true;
            step->run = kiln_parse_string(ctx, kslot, v, who);
            if (step->run && step->run[strspn(step->run, " \t\r\n")] == '\0')
                kiln_parse_error(ctx, kslot, "'run' of %s is empty", who);
            kiln_parse_template(ctx, v, who, "run", step->run);
        } else if (strcmp(k, "uses") == 0) {
            has_uses = true;
            step->uses = kiln_parse_string(ctx, kslot, v, who);
        } else if (strcmp(k, "shell") == 0) {
            step->shell = kiln_parse_shell(ctx, kslot, v, who, ctx->in_action);
        } else if (strcmp(k, "working-directory") == 0) {
            step->working_directory = kiln_parse_string(ctx, kslot, v, who);
            kiln_parse_template(ctx, v, who, "working-directory", step->working_directory);
        } else if (strcmp(k, "env") == 0) {
            kiln_parse_env(ctx, kslot, v, who, &step->env, &step->env_expr);
        } else if (strcmp(k, "timeout-minutes") == 0) {
            kiln_parse_minutes_value(ctx, kslot, v, who, &step->timeout);
        } else if (strcmp(k, "continue-on-error") == 0) {
            kiln_parse_bool_value(ctx, kslot, v, who, &step->continue_on_error);
        } else if (strcmp(k, "if") == 0) {
            if (v->kind != KILN_YAML_SCALAR)
                kiln_parse_type_error(ctx, kslot, who, "a string");
            else if (v->len > 0) {
                step->if_expr = kiln_parse_strdup(ctx, v->value);
                kiln_parse_condition(ctx, v, who, step->if_expr);
            }
        } else if (strcmp(k, "with") == 0) {
            kiln_parse_template_map(ctx, kslot, v, who, "a mapping of inputs", &step->with);
        } else {
            kiln_parse_warn(ctx, kslot, "unknown key '%.*s' in %s", s_q(k), k, who);
        }
    }
    if (has_run && has_uses)
        kiln_parse_error(ctx, slot, "%s has both 'run' and 'uses'; a step needs exactly one",
                         who);
    else if (!has_run && !has_uses)
        kiln_parse_error(ctx, slot, "%s has neither 'run' nor 'uses'; a step needs exactly one",
                         who);
    else if (has_uses && step->uses && strncmp(step->uses, "./", 2) != 0)
        s_check_builtin(ctx, slot, who, step);
}

void kiln_parse_steps(kiln_parse_t *ctx, const knode_t *key, knode_t *val, const char *who,
                      const char *job_id, kiln_step_t **steps, size_t *n_steps)
{
    if (val->kind != KILN_YAML_SEQ) {
        kiln_parse_type_error(ctx, key, who, "a list of steps");
        return;
    }
    if (val->n == 0) {
        kiln_parse_error(ctx, key, "'steps' of %s is empty", who);
        return;
    }
    if (val->n > KILN_WF_MAX_STEPS) {
        kiln_parse_error(ctx, key, "%s has %zu steps; the limit is %d", who, val->n,
                         KILN_WF_MAX_STEPS);
        return;
    }
    *steps = calloc(val->n, sizeof **steps);
    if (!*steps) {
        ctx->oom = true;
        return;
    }
    for (size_t i = 0; i < val->n && !ctx->oom; i++) {
        kiln_step_t *step = &(*steps)[(*n_steps)++];
        kiln_parse_step(ctx, job_id, i, val->items[i], step);
    }
    /* Step ids name outputs (steps.<id>.outputs), so they must be unique;
     * n is at most KILN_WF_MAX_STEPS, so the quadratic scan is bounded. */
    for (size_t i = 1; i < *n_steps; i++) {
        const kiln_step_t *a = &(*steps)[i];
        if (!a->id)
            continue;
        for (size_t j = 0; j < i; j++) {
            if ((*steps)[j].id && strcmp(a->id, (*steps)[j].id) == 0) {
                kiln_parse_error_at(ctx, a->line, a->col, "duplicate step id '%.*s' in %s",
                                    s_q(a->id), a->id, who);
                break;
            }
        }
    }
}
