/* inputs.c: a run's inputs checked against the inputs a workflow declares
 * (on.workflow_dispatch.inputs for `kiln run --input`, on.workflow_call.inputs
 * for a caller's with:), typed, with defaults filled in, as GitHub does. */
#include "lang/parse.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "lang/expr.h"

/* A value for a boolean input: a boolean, or "true"/"false" as typed on a
 * command line. */
static int s_boolean(const char *name, const json_t *value, json_t **out)
{
    const char *text = json_string_value(value);
    if (json_is_boolean(value)) {
        *out = json_boolean(json_is_true(value));
    } else if (text && (strcmp(text, "true") == 0 || strcmp(text, "false") == 0)) {
        *out = json_boolean(strcmp(text, "true") == 0);
    } else {
        char *shown = kiln_expr_string(value);
        kiln_error_set("input '%s' is a boolean: true or false, not '%s'", name,
                       shown ? shown : "?");
        free(shown);
        return KILN_EINVAL;
    }
    return 0;
}

static int s_number(const char *name, const json_t *value, json_t **out)
{
    const char *text = json_string_value(value);
    if (json_is_number(value)) {
        *out = json_deep_copy(value);
        return 0;
    }
    char *end = NULL;
    double d = text ? strtod(text, &end) : 0;
    if (!text || !end || *end || end == text || !isfinite(d)) {
        char *shown = kiln_expr_string(value);
        kiln_error_set("input '%s' is a number, not '%s'", name, shown ? shown : "?");
        free(shown);
        return KILN_EINVAL;
    }
    *out = d == (double)(json_int_t)d ? json_integer((json_int_t)d) : json_real(d);
    return 0;
}

int kiln_workflow_inputs(const json_t *declared, const char *what, const json_t *given,
                         json_t **out)
{
    json_t *result = json_object();
    const char *name;
    json_t *v, *spec;
    int rc = KILN_EINVAL;
    *out = NULL;
    if (!result) {
        kiln_error_set("out of memory");
        return -1;
    }
    /* Every input given must be declared. */
    json_object_foreach((json_t *)given, name, v) {
        if (!json_object_get(declared, name)) {
            kiln_error_set("input '%s' is not declared under %s", name, what);
            goto cleanup;
        }
    }
    json_object_foreach((json_t *)declared, name, spec) {
        const char *type = json_string_value(json_object_get(spec, "type"));
        json_t *value = json_object_get(given, name);
        json_t *dflt = json_object_get(spec, "default");
        json_t *typed = NULL;
        if (!type)
            type = "string";
        if (!value || json_is_null(value)) {
            if (json_is_true(json_object_get(spec, "required")) && (!dflt || json_is_null(dflt))) {
                kiln_error_set("input '%s' is required", name);
                goto cleanup;
            }
            /* GitHub: an unset input is its default, or the empty value of
             * its type. */
            if (dflt && !json_is_null(dflt))
                value = dflt;
            else if (strcmp(type, "boolean") == 0)
                value = json_false();
            else
                value = NULL;
            if (!value) {
                json_object_set_new(result, name, json_string(""));
                continue;
            }
        }
        if (strcmp(type, "boolean") == 0) {
            if (s_boolean(name, value, &typed) != 0)
                goto cleanup;
        } else if (strcmp(type, "number") == 0) {
            if (s_number(name, value, &typed) != 0)
                goto cleanup;
        } else {
            char *text = kiln_expr_string(value);
            if (!text) {
                kiln_error_set("out of memory");
                rc = -1;
                goto cleanup;
            }
            if (strcmp(type, "choice") == 0) {
                json_t *options = json_object_get(spec, "options");
                size_t i;
                json_t *o;
                bool ok = false;
                json_array_foreach(options, i, o) ok =
                    ok || (json_is_string(o) && strcmp(json_string_value(o), text) == 0);
                if (!ok) {
                    kiln_error_set("input '%s' must be one of its options, not '%s'", name, text);
                    free(text);
                    goto cleanup;
                }
            }
            typed = json_string(text);
            free(text);
        }
        json_object_set_new(result, name, typed);
    }
    *out = result;
    result = NULL;
    rc = 0;
cleanup:
    json_decref(result);
    return rc;
}
