/* trigger.c: on: filters (see trigger.h). */
#include "lang/trigger.h"

#include <stdio.h>
#include <string.h>

/* The pattern's next atom (a character, an escaped one, or a [class]) at
 * p: its end in *next; whether c matches it. */
static bool s_atom(const char *p, const char **next, char c)
{
    if (*p == '\\' && p[1]) {
        *next = p + 2;
        return c == p[1];
    }
    if (*p == '[') {
        const char *q = p + 1;
        bool neg = *q == '!' || *q == '^', hit = false;
        if (neg)
            q++;
        for (bool first = true; *q && (first || *q != ']'); first = false) {
            if (q[1] == '-' && q[2] && q[2] != ']') {
                hit = hit || (c >= q[0] && c <= q[2]);
                q += 3;
            } else {
                hit = hit || c == *q;
                q++;
            }
        }
        if (*q == ']') {
            *next = q + 1;
            return c != '\0' && hit != neg;
        }
        /* No closing bracket: a literal '['. */
    }
    *next = p + 1;
    return c == *p;
}

/* Patterns come from workflow files: a budget of match steps per name
 * keeps one like "*a*a*a*a*a*a*b" from backtracking for ever. */
#define S_GLOB_BUDGET 10000

static bool s_glob(const char *p, const char *s, int depth, long *budget)
{
    if (depth > 64 || --*budget < 0)
        return false;
    while (*p) {
        if (p[0] == '*' && p[1] == '*') {
            while (*p == '*')
                p++;
            /* "**" then "/" also matches no directory at all. */
            if (*p == '/' && s_glob(p + 1, s, depth + 1, budget))
                return true;
            for (const char *t = s;; t++) {
                if (s_glob(p, t, depth + 1, budget))
                    return true;
                if (!*t)
                    return false;
            }
        }
        if (*p == '*') {
            p++;
            for (const char *t = s;; t++) {
                if (s_glob(p, t, depth + 1, budget))
                    return true;
                if (!*t || *t == '/')
                    return false;
            }
        }
        const char *next;
        char q = 0;
        bool hit = s_atom(p, &next, *s);
        if (*next == '?' || *next == '+')
            q = *next++;
        if (q == '?') {
            /* Zero or one of the atom. */
            if (hit && s_glob(next, s + 1, depth + 1, budget))
                return true;
            p = next;
            continue;
        }
        if (!hit)
            return false;
        s++;
        if (q == '+') {
            for (;; s++) {
                if (s_glob(next, s, depth + 1, budget))
                    return true;
                const char *ignored;
                if (!*s || !s_atom(p, &ignored, *s))
                    return false;
            }
        }
        p = next;
    }
    return *s == '\0';
}

bool kiln_trigger_glob(const char *pattern, const char *name)
{
    long budget = S_GLOB_BUDGET;
    return s_glob(pattern, name, 0, &budget);
}

/* The last pattern that matches decides; none: not matched. */
static bool s_list(const json_t *patterns, const char *name)
{
    bool in = false;
    size_t i;
    json_t *p;
    json_array_foreach(patterns, i, p) {
        const char *pat = json_string_value(p);
        if (!pat)
            continue;
        if (pat[0] == '!') {
            if (kiln_trigger_glob(pat + 1, name))
                in = false;
        } else if (kiln_trigger_glob(pat, name)) {
            in = true;
        }
    }
    return in;
}

/* name against a filter and its -ignore form (at most one is written). */
static bool s_name_ok(const json_t *f, const char *filter, const char *name, char *why, size_t cap,
                      const char *what)
{
    char ignore[64];
    snprintf(ignore, sizeof ignore, "%s-ignore", filter);
    const json_t *in = json_object_get(f, filter), *out = json_object_get(f, ignore);
    if (in && !s_list(in, name)) {
        snprintf(why, cap, "%s '%s' is not in its %s", what, name, filter);
        return false;
    }
    if (out && s_list(out, name)) {
        snprintf(why, cap, "%s '%s' is in its %s", what, name, ignore);
        return false;
    }
    return true;
}

static bool s_paths_ok(const json_t *f, const json_t *paths, char *why, size_t cap)
{
    const json_t *in = json_object_get(f, "paths"), *out = json_object_get(f, "paths-ignore");
    size_t i;
    json_t *p;
    if ((!in && !out) || !paths)
        return true;
    json_array_foreach(paths, i, p) {
        const char *path = json_string_value(p);
        if (path && (in ? s_list(in, path) : !s_list(out, path)))
            return true;
    }
    snprintf(why, cap, "%s of the %zu files it changed", in ? "its paths match none" :
             "its paths-ignore matches every one", json_array_size(paths));
    return false;
}

static bool s_listed(const kiln_workflow_t *wf, const char *event)
{
    size_t i;
    json_t *e;
    json_array_foreach(wf->events, i, e) {
        if (strcmp(json_string_value(e), event) == 0)
            return true;
    }
    return false;
}

bool kiln_trigger_match(const kiln_workflow_t *wf, const kiln_trigger_t *ev, char *why,
                        size_t cap)
{
    char reason[512] = "";
    bool ok = true;
    if (!s_listed(wf, ev->event)) {
        snprintf(why, cap, "on: does not take '%s'", ev->event);
        return false;
    }
    const json_t *f = json_object_get(wf->filters, ev->event);
    bool push = strcmp(ev->event, "push") == 0;
    bool pr = strcmp(ev->event, "pull_request") == 0 || strcmp(ev->event, "pull_request_target") == 0;
    if (push && f) {
        const char *ref = ev->ref ? ev->ref : "";
        bool has_b = json_object_get(f, "branches") || json_object_get(f, "branches-ignore");
        bool has_t = json_object_get(f, "tags") || json_object_get(f, "tags-ignore");
        if (strncmp(ref, "refs/heads/", 11) == 0) {
            /* Only tags filtered: branch pushes do not start it. */
            if (!has_b && has_t) {
                snprintf(reason, sizeof reason, "its on.push filters tags only; this is a branch");
                ok = false;
            } else {
                ok = s_name_ok(f, "branches", ref + 11, reason, sizeof reason, "branch") &&
                     s_paths_ok(f, ev->paths, reason, sizeof reason);
            }
        } else if (strncmp(ref, "refs/tags/", 10) == 0) {
            if (has_b && !has_t) {
                snprintf(reason, sizeof reason, "its on.push filters branches only; this is a tag");
                ok = false;
            } else {
                /* paths are not looked at for tags, as on GitHub. */
                ok = s_name_ok(f, "tags", ref + 10, reason, sizeof reason, "tag");
            }
        } else {
            ok = s_paths_ok(f, ev->paths, reason, sizeof reason);
        }
    } else if (pr) {
        const char *action = ev->action && ev->action[0] ? ev->action : "opened";
        const json_t *types = json_object_get(f, "types");
        bool typed = false;
        if (types) {
            size_t i;
            json_t *t;
            json_array_foreach(types, i, t) typed = typed || strcmp(json_string_value(t), action) == 0;
        } else {
            typed = strcmp(action, "opened") == 0 || strcmp(action, "synchronize") == 0 ||
                    strcmp(action, "reopened") == 0;
        }
        if (!typed) {
            snprintf(reason, sizeof reason, "its types do not take '%s'", action);
            ok = false;
        } else if (f) {
            ok = s_name_ok(f, "branches", ev->base_ref ? ev->base_ref : "", reason, sizeof reason,
                           "base branch") &&
                 s_paths_ok(f, ev->paths, reason, sizeof reason);
        }
    }
    if (!ok)
        snprintf(why, cap, "on.%s: %s", ev->event, reason);
    return ok;
}
