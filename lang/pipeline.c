/* pipeline.c: a workflow file (GitHub Actions syntax) read into Kiln's model.
 *
 * Two passes. The first feeds libyaml's event stream into a small tree of
 * our own (s_node_t) rather than using libyaml's document loader, because
 * the loader has no limits: here every node is counted as it arrives, an
 * alias is charged the size of the subtree it stands for (so "billion
 * laughs" is refused after a handful of events, not after expanding), the
 * nesting depth and each scalar's size are bounded, and duplicate keys are
 * caught once per mapping. The second pass walks that tree against the
 * workflow schema and fills kiln_workflow_t, reporting every problem it can
 * find (lint wants all of them) and only giving up on the tree pass's fatal
 * problems (syntax errors, limits) and on allocation failure.
 *
 * After the walk, needs are resolved to job indexes, cycles are named, and a
 * topological order is computed. The model is returned only when no error
 * was reported; warnings (unknown keys) do not stop a run.
 *
 * Nothing here keeps global state, so parsing is safe from several threads.
 */
#include "lang/pipeline.h"

#include "common/error.h"
#include "lang/expr.h"
#include "lang/matrix.h"

#include <yaml.h>

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* One scalar (a run script, an env value) may not exceed this. */
#define S_MAX_SCALAR (256 * 1024)
/* Diagnostics kept per list: garbage input must not grow it without end. */
#define S_MAX_DIAGS 1000
/* Distinct anchor definitions per document; real workflows use a handful,
 * and the cap bounds the cost of alias lookups on hostile input. */
#define S_MAX_ANCHORS 1000
#define S_ANCHOR_BUCKETS 256
/* A message quotes at most this many bytes of any user-supplied text. */
#define S_QUOTE_MAX 80
/* Derived step names ("Run <first line>") keep this many bytes of script. */
#define S_STEP_NAME_MAX 60
/* timeout-minutes above a year is surely a mistake, and the cap keeps the
 * milliseconds far from int64 overflow. */
#define S_MAX_TIMEOUT_MIN (60.0 * 24 * 365)
#define S_DIAG_MSG_MAX 1024

/* ---------------------------------------------------------------------- */
/* Diagnostics */

void kiln_diags_init(kiln_diags_t *self, const char *file)
{
    assert(self);
    memset(self, 0, sizeof *self);
    /* On allocation failure the list still works, naming the file "?". */
    self->file = strdup(file ? file : "");
}

void kiln_diags_free(kiln_diags_t *self)
{
    if (!self)
        return;
    for (size_t i = 0; i < self->n; i++)
        free(self->items[i].message);
    free(self->items);
    free(self->file);
    memset(self, 0, sizeof *self);
}

/* Errors are always counted, so a run is refused even when the list is full
 * or its memory ran out; only the text can be lost. */
__attribute__((format(printf, 5, 0))) static void s_diags_vadd(kiln_diags_t *self,
                                                               kiln_diag_severity_t sev,
                                                               int line, int col,
                                                               const char *fmt, va_list ap)
{
    char msg[S_DIAG_MSG_MAX];
    if (sev == KILN_DIAG_ERROR)
        self->n_errors++;
    if (self->n > S_MAX_DIAGS)
        return;
    if (self->n == S_MAX_DIAGS) {
        snprintf(msg, sizeof msg, "too many problems; only the first %d are listed", S_MAX_DIAGS);
        sev = KILN_DIAG_WARNING;
        line = 0;
        col = 0;
    } else {
        vsnprintf(msg, sizeof msg, fmt, ap);
        /* Messages quote user text (a key may be "a\nb"); a control
         * character would break the one-line-per-problem format. */
        for (char *p = msg; *p; p++)
            if ((unsigned char)*p < 0x20 || *p == 0x7f)
                *p = '?';
    }
    if (self->n == self->cap) {
        size_t cap = self->cap ? self->cap * 2 : 16;
        kiln_diag_t *items = realloc(self->items, cap * sizeof *items);
        if (!items)
            return;
        self->items = items;
        self->cap = cap;
    }
    char *copy = strdup(msg);
    if (!copy)
        return;
    self->items[self->n].severity = sev;
    self->items[self->n].line = line;
    self->items[self->n].col = col;
    self->items[self->n].message = copy;
    self->n++;
}

void kiln_diags_add(kiln_diags_t *self, kiln_diag_severity_t sev, int line, int col,
                    const char *fmt, ...)
{
    assert(self && fmt);
    va_list ap;
    va_start(ap, fmt);
    s_diags_vadd(self, sev, line, col, fmt, ap);
    va_end(ap);
}

char *kiln_diags_format(const kiln_diags_t *self)
{
    assert(self);
    const char *file = self->file ? self->file : "?";
    char *out = NULL;
    size_t total = 1;
    for (size_t i = 0; i < self->n; i++)
        total += strlen(file) + strlen(self->items[i].message) + 48;
    out = malloc(total);
    if (!out)
        return NULL;
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < self->n; i++) {
        const kiln_diag_t *d = &self->items[i];
        const char *sev = d->severity == KILN_DIAG_ERROR ? "error" : "warning";
        int w;
        if (d->line > 0)
            w = snprintf(out + used, total - used, "%s:%d:%d: %s: %s\n", file, d->line, d->col,
                         sev, d->message);
        else
            w = snprintf(out + used, total - used, "%s: %s: %s\n", file, sev, d->message);
        if (w < 0 || (size_t)w >= total - used)
            break; /* cannot happen: total allows for two ints per line */
        used += (size_t)w;
    }
    return out;
}

/* ---------------------------------------------------------------------- */
/* The YAML tree */

typedef enum { S_SCALAR, S_SEQ, S_MAP, S_ALIAS } s_kind_t;

typedef struct s_node {
    s_kind_t kind;
    int line, col;          /* 1-based start */
    char *value;            /* scalar text, NUL-terminated */
    size_t len;
    bool plain;             /* untagged plain scalar: may be a bool or a number */
    struct s_node **items;  /* sequence items; mapping keys and values alternate */
    size_t n, cap;
    struct s_node *target;  /* alias: the anchored node */
    char *anchor;           /* anchor name, registered when the node is complete */
    size_t weight;          /* nodes this stands for with aliases expanded */
    int height;             /* collection levels within (scalar: 0) */
    bool skip;              /* as a mapping key: duplicate or not a scalar */
    struct s_node *next_alloc;
} s_node_t;

typedef struct s_anchor {
    const char *name;       /* borrowed from the node */
    s_node_t *node;
    struct s_anchor *next;
} s_anchor_t;

typedef struct {
    s_node_t *all;          /* every node, for freeing */
    s_node_t *root;
    s_node_t *stack[KILN_WF_MAX_DEPTH];
    int depth;
    size_t n_nodes;         /* counting alias expansions */
    s_anchor_t *anchors[S_ANCHOR_BUCKETS];
    size_t n_anchors;
    int n_docs;
} s_tree_t;

typedef struct {
    s_node_t **need_nodes;  /* where each needs entry was written */
    s_node_t *needs_key;
} s_job_aux_t;

typedef struct {
    kiln_diags_t *diags;
    kiln_workflow_t *wf;
    s_job_aux_t *aux;       /* parallel to wf->jobs */
    size_t n_aux;
    bool oom;
    const json_t *actions;  /* local composite actions: path -> action.yml text */
    const json_t *matrices; /* job id -> evaluated run-time matrix */
} s_ctx_t;

__attribute__((format(printf, 5, 0))) static void s_vdiag(s_ctx_t *ctx, kiln_diag_severity_t sev, int line, int col, const char *fmt,
                    va_list ap)
{
    s_diags_vadd(ctx->diags, sev, line, col, fmt, ap);
}

static void __attribute__((format(printf, 4, 5)))
s_error_at(s_ctx_t *ctx, int line, int col, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    s_vdiag(ctx, KILN_DIAG_ERROR, line, col, fmt, ap);
    va_end(ap);
}

static void __attribute__((format(printf, 3, 4)))
s_error(s_ctx_t *ctx, const s_node_t *at, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    s_vdiag(ctx, KILN_DIAG_ERROR, at ? at->line : 0, at ? at->col : 0, fmt, ap);
    va_end(ap);
}

static void __attribute__((format(printf, 3, 4)))
s_warn(s_ctx_t *ctx, const s_node_t *at, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    s_vdiag(ctx, KILN_DIAG_WARNING, at ? at->line : 0, at ? at->col : 0, fmt, ap);
    va_end(ap);
}

static void s_oom(s_ctx_t *ctx)
{
    ctx->oom = true;
}

/* Length to print of user text in a message ("%.*s"), so one long key
 * cannot push the rest of the message out. */
static int s_q(const char *text)
{
    size_t len = strnlen(text, S_QUOTE_MAX);
    return (int)len;
}

static char *s_strdup(s_ctx_t *ctx, const char *text)
{
    char *copy = strdup(text);
    if (!copy)
        s_oom(ctx);
    return copy;
}

static s_node_t *s_res(s_node_t *node)
{
    return node && node->kind == S_ALIAS ? node->target : node;
}

static const char *s_kind_name(s_kind_t kind)
{
    switch (kind) {
    case S_SCALAR: return "a scalar";
    case S_SEQ: return "a list";
    case S_MAP: return "a mapping";
    default: return "an alias";
    }
}

static s_node_t *s_node_new(s_tree_t *tree, s_kind_t kind, const yaml_mark_t *mark)
{
    s_node_t *node = calloc(1, sizeof *node);
    if (!node)
        return NULL;
    node->kind = kind;
    /* Input is at most KILN_WF_MAX_BYTES, so marks fit an int. */
    node->line = (int)mark->line + 1;
    node->col = (int)mark->column + 1;
    node->weight = 1;
    node->next_alloc = tree->all;
    tree->all = node;
    return node;
}

static void s_tree_free(s_tree_t *tree)
{
    s_node_t *node = tree->all;
    while (node) {
        s_node_t *next = node->next_alloc;
        free(node->value);
        free(node->items);
        free(node->anchor);
        free(node);
        node = next;
    }
    for (size_t b = 0; b < S_ANCHOR_BUCKETS; b++) {
        s_anchor_t *a = tree->anchors[b];
        while (a) {
            s_anchor_t *next = a->next;
            free(a);
            a = next;
        }
    }
    memset(tree, 0, sizeof *tree);
}

static size_t s_hash(const char *text)
{
    size_t h = 2166136261u;
    for (const unsigned char *p = (const unsigned char *)text; *p; p++)
        h = (h ^ *p) * 16777619u;
    return h % S_ANCHOR_BUCKETS;
}

/* A later definition of the same name hides the earlier one (YAML says an
 * alias refers to the most recent anchor), so new entries go first. */
static int s_anchor_put(s_ctx_t *ctx, s_tree_t *tree, s_node_t *node)
{
    if (tree->n_anchors >= S_MAX_ANCHORS) {
        s_error(ctx, node, "too many YAML anchors (the limit is %d)", S_MAX_ANCHORS);
        return -1;
    }
    s_anchor_t *a = malloc(sizeof *a);
    if (!a) {
        s_oom(ctx);
        return -1;
    }
    size_t b = s_hash(node->anchor);
    a->name = node->anchor;
    a->node = node;
    a->next = tree->anchors[b];
    tree->anchors[b] = a;
    tree->n_anchors++;
    return 0;
}

static s_node_t *s_anchor_get(const s_tree_t *tree, const char *name)
{
    for (s_anchor_t *a = tree->anchors[s_hash(name)]; a; a = a->next)
        if (strcmp(a->name, name) == 0)
            return a->node;
    return NULL;
}

/* Charges `cost` nodes against KILN_WF_MAX_NODES. */
static int s_tree_charge(s_ctx_t *ctx, s_tree_t *tree, size_t cost, const yaml_mark_t *mark)
{
    if (cost > (size_t)KILN_WF_MAX_NODES - tree->n_nodes) {
        s_error_at(ctx, (int)mark->line + 1, (int)mark->column + 1,
                   "too many YAML nodes (alias expansion?): the limit is %d", KILN_WF_MAX_NODES);
        return -1;
    }
    tree->n_nodes += cost;
    return 0;
}

static int s_tree_attach(s_ctx_t *ctx, s_tree_t *tree, s_node_t *node)
{
    if (tree->depth == 0) {
        tree->root = node;
        return 0;
    }
    s_node_t *parent = tree->stack[tree->depth - 1];
    if (parent->n == parent->cap) {
        size_t cap = parent->cap ? parent->cap * 2 : 4;
        s_node_t **items = realloc(parent->items, cap * sizeof *items);
        if (!items) {
            s_oom(ctx);
            return -1;
        }
        parent->items = items;
        parent->cap = cap;
    }
    parent->items[parent->n++] = node;
    return 0;
}

static int s_anchor_copy(s_ctx_t *ctx, s_node_t *node, const yaml_char_t *anchor)
{
    if (!anchor)
        return 0;
    node->anchor = s_strdup(ctx, (const char *)anchor);
    return node->anchor ? 0 : -1;
}

static int s_tree_scalar(s_ctx_t *ctx, s_tree_t *tree, const yaml_event_t *ev)
{
    size_t len = ev->data.scalar.length;
    if (len > S_MAX_SCALAR) {
        s_error_at(ctx, (int)ev->start_mark.line + 1, (int)ev->start_mark.column + 1,
                   "a value of %zu bytes is longer than the limit of %d bytes", len, S_MAX_SCALAR);
        return -1;
    }
    if (s_tree_charge(ctx, tree, 1, &ev->start_mark) < 0)
        return -1;
    s_node_t *node = s_node_new(tree, S_SCALAR, &ev->start_mark);
    if (!node) {
        s_oom(ctx);
        return -1;
    }
    node->value = malloc(len + 1);
    if (!node->value) {
        s_oom(ctx);
        return -1;
    }
    memcpy(node->value, ev->data.scalar.value, len);
    node->value[len] = '\0';
    node->len = len;
    /* Untagged plain scalars are the only ones YAML resolves to booleans
     * and numbers; "true" in quotes or !!str true stays a string. */
    node->plain = ev->data.scalar.plain_implicit != 0;
    if (memchr(node->value, '\0', len))
        s_error(ctx, node, "a value contains a NUL character");
    if (s_tree_attach(ctx, tree, node) < 0)
        return -1;
    if (s_anchor_copy(ctx, node, ev->data.scalar.anchor) < 0)
        return -1;
    return node->anchor ? s_anchor_put(ctx, tree, node) : 0;
}

static int s_tree_alias(s_ctx_t *ctx, s_tree_t *tree, const yaml_event_t *ev)
{
    const char *name = (const char *)ev->data.alias.anchor;
    int line = (int)ev->start_mark.line + 1, col = (int)ev->start_mark.column + 1;
    /* Collections are registered when they end, so an alias inside its own
     * anchor (a recursive structure) is unknown here. */
    s_node_t *target = s_anchor_get(tree, name);
    if (!target) {
        s_error_at(ctx, line, col, "alias '*%.*s' refers to no complete anchor", s_q(name), name);
        return -1;
    }
    if (tree->depth + target->height > KILN_WF_MAX_DEPTH) {
        s_error_at(ctx, line, col, "nesting deeper than %d levels", KILN_WF_MAX_DEPTH);
        return -1;
    }
    if (s_tree_charge(ctx, tree, target->weight, &ev->start_mark) < 0)
        return -1;
    s_node_t *node = s_node_new(tree, S_ALIAS, &ev->start_mark);
    if (!node) {
        s_oom(ctx);
        return -1;
    }
    node->target = target;
    node->weight = target->weight;
    node->height = target->height;
    return s_tree_attach(ctx, tree, node);
}

static int s_tree_open(s_ctx_t *ctx, s_tree_t *tree, const yaml_event_t *ev)
{
    bool is_map = ev->type == YAML_MAPPING_START_EVENT;
    if (tree->depth >= KILN_WF_MAX_DEPTH) {
        s_error_at(ctx, (int)ev->start_mark.line + 1, (int)ev->start_mark.column + 1,
                   "nesting deeper than %d levels", KILN_WF_MAX_DEPTH);
        return -1;
    }
    if (s_tree_charge(ctx, tree, 1, &ev->start_mark) < 0)
        return -1;
    s_node_t *node = s_node_new(tree, is_map ? S_MAP : S_SEQ, &ev->start_mark);
    if (!node) {
        s_oom(ctx);
        return -1;
    }
    const yaml_char_t *anchor =
        is_map ? ev->data.mapping_start.anchor : ev->data.sequence_start.anchor;
    if (s_anchor_copy(ctx, node, anchor) < 0)
        return -1;
    if (s_tree_attach(ctx, tree, node) < 0)
        return -1;
    tree->stack[tree->depth++] = node;
    return 0;
}

typedef struct {
    s_node_t *key;          /* resolved */
    size_t pos;             /* index of the key in the mapping */
} s_key_ref_t;

static int s_key_cmp(const void *a, const void *b)
{
    const s_key_ref_t *x = a, *y = b;
    size_t n = x->key->len < y->key->len ? x->key->len : y->key->len;
    int c = memcmp(x->key->value, y->key->value, n);
    if (c != 0)
        return c;
    if (x->key->len != y->key->len)
        return x->key->len < y->key->len ? -1 : 1;
    return x->pos < y->pos ? -1 : x->pos > y->pos;
}

/* Marks keys that are not scalars and every repeat of a key after its first
 * occurrence; the walk skips marked pairs. Sorting keeps a mapping of many
 * keys from costing n^2 comparisons. */
static int s_check_keys(s_ctx_t *ctx, s_node_t *map)
{
    int rc = -1;
    s_key_ref_t *refs = NULL;
    size_t n_pairs = map->n / 2, n_refs = 0;
    if (n_pairs == 0) {
        rc = 0;
        goto cleanup;
    }
    refs = malloc(n_pairs * sizeof *refs);
    if (!refs) {
        s_oom(ctx);
        goto cleanup;
    }
    for (size_t i = 0; i < n_pairs; i++) {
        s_node_t *slot = map->items[2 * i];
        s_node_t *key = s_res(slot);
        if (key->kind != S_SCALAR) {
            s_error(ctx, slot, "a mapping key must be a string, not %s", s_kind_name(key->kind));
            slot->skip = true;
            continue;
        }
        refs[n_refs].key = key;
        refs[n_refs].pos = 2 * i;
        n_refs++;
    }
    qsort(refs, n_refs, sizeof *refs, s_key_cmp);
    for (size_t i = 1; i < n_refs; i++) {
        const s_node_t *a = refs[i - 1].key, *b = refs[i].key;
        if (a->len == b->len && memcmp(a->value, b->value, a->len) == 0) {
            s_node_t *slot = map->items[refs[i].pos];
            s_error(ctx, slot, "duplicate key '%.*s'", s_q(b->value), b->value);
            slot->skip = true;
        }
    }
    rc = 0;
cleanup:
    free(refs);
    return rc;
}

static int s_tree_close(s_ctx_t *ctx, s_tree_t *tree)
{
    assert(tree->depth > 0); /* libyaml pairs start and end events */
    s_node_t *node = tree->stack[--tree->depth];
    size_t weight = 1;
    int height = 0;
    for (size_t i = 0; i < node->n; i++) {
        /* Every child was charged, so the sum stays within the node cap. */
        weight += node->items[i]->weight;
        if (node->items[i]->height > height)
            height = node->items[i]->height;
    }
    node->weight = weight;
    node->height = height + 1;
    if (node->kind == S_MAP && s_check_keys(ctx, node) < 0)
        return -1;
    return node->anchor ? s_anchor_put(ctx, tree, node) : 0;
}

/* Returns 1 at the end of the stream, 0 to go on, -1 on a fatal problem. */
static int s_tree_event(s_ctx_t *ctx, s_tree_t *tree, const yaml_event_t *ev)
{
    switch (ev->type) {
    case YAML_STREAM_END_EVENT:
        return 1;
    case YAML_DOCUMENT_START_EVENT:
        if (++tree->n_docs > 1) {
            s_error_at(ctx, (int)ev->start_mark.line + 1, (int)ev->start_mark.column + 1,
                       "a workflow file holds one YAML document; this starts another");
            return -1;
        }
        return 0;
    case YAML_ALIAS_EVENT:
        return s_tree_alias(ctx, tree, ev);
    case YAML_SCALAR_EVENT:
        return s_tree_scalar(ctx, tree, ev);
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT:
        return s_tree_open(ctx, tree, ev);
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
        return s_tree_close(ctx, tree);
    default:
        return 0;
    }
}

static void s_syntax_error(s_ctx_t *ctx, const yaml_parser_t *parser, const char *text,
                           size_t len)
{
    const char *problem = parser->problem ? parser->problem : "invalid YAML";
    int line = (int)parser->problem_mark.line + 1, col = (int)parser->problem_mark.column + 1;
    if (parser->error == YAML_MEMORY_ERROR) {
        s_oom(ctx);
        return;
    }
    if (parser->error == YAML_READER_ERROR) {
        /* The reader reports a byte offset, not a mark. */
        size_t end = parser->problem_offset < len ? parser->problem_offset : len;
        line = 1;
        col = 1;
        for (size_t i = 0; i < end; i++) {
            if (text[i] == '\n') {
                line++;
                col = 1;
            } else {
                col++;
            }
        }
    }
    if (parser->context)
        s_error_at(ctx, line, col, "YAML syntax error: %s (%s at line %d)", problem,
                   parser->context, (int)parser->context_mark.line + 1);
    else
        s_error_at(ctx, line, col, "YAML syntax error: %s", problem);
}

/* Builds the tree; 0, or -1 after a fatal problem was reported (or OOM). */
static int s_tree_build(s_ctx_t *ctx, s_tree_t *tree, const char *text, size_t len)
{
    int rc = -1;
    yaml_parser_t parser;
    bool ready = false;
    if (!yaml_parser_initialize(&parser)) {
        s_oom(ctx);
        goto cleanup;
    }
    ready = true;
    /* libyaml asserts on a NULL input even when it is empty. */
    yaml_parser_set_input_string(&parser, (const unsigned char *)(text ? text : ""), len);
    for (;;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&parser, &ev)) {
            s_syntax_error(ctx, &parser, text, len);
            goto cleanup;
        }
        int step = s_tree_event(ctx, tree, &ev);
        yaml_event_delete(&ev);
        if (step < 0)
            goto cleanup;
        if (step > 0)
            break;
    }
    rc = 0;
cleanup:
    if (ready)
        yaml_parser_delete(&parser);
    return rc;
}

/* ---------------------------------------------------------------------- */
/* Scalar types */

static bool s_is_bool(const s_node_t *val, bool *out)
{
    static const char *yes[] = {"true", "True", "TRUE"};
    static const char *no[] = {"false", "False", "FALSE"};
    if (val->kind != S_SCALAR || !val->plain)
        return false;
    for (int i = 0; i < 3; i++) {
        if (strcmp(val->value, yes[i]) == 0) {
            *out = true;
            return true;
        }
        if (strcmp(val->value, no[i]) == 0) {
            *out = false;
            return true;
        }
    }
    return false;
}

/* A plain decimal number (YAML int or float). Hex, octal prefixes, .inf and
 * .nan are refused: none is a sensible timeout. strtod follows LC_NUMERIC,
 * which Kiln never changes from "C". */
static bool s_is_number(const s_node_t *val, double *out)
{
    if (val->kind != S_SCALAR || !val->plain || val->len == 0)
        return false;
    if (strpbrk(val->value, "xXoOnNiIpP \t"))
        return false;
    char *end = NULL;
    errno = 0;
    double v = strtod(val->value, &end);
    if (end != val->value + val->len || errno == ERANGE || !isfinite(v))
        return false;
    *out = v;
    return true;
}

/* A YAML value as JSON: plain scalars become booleans, numbers or null
 * where YAML would read them so (matrix values keep their types), anything
 * quoted stays a string. depth is bounded by the parser's own limit. */
static json_t *s_to_json(s_ctx_t *ctx, s_node_t *node)
{
    node = s_res(node);
    json_t *out = NULL;
    if (!node)
        return json_null();
    switch (node->kind) {
    case S_SCALAR: {
        bool b;
        double d;
        if (node->plain && (node->len == 0 || strcmp(node->value, "null") == 0 ||
                            strcmp(node->value, "~") == 0 || strcmp(node->value, "Null") == 0))
            out = json_null();
        else if (s_is_bool(node, &b))
            out = json_boolean(b);
        else if (s_is_number(node, &d))
            out = (d == (double)(json_int_t)d && !strpbrk(node->value, ".eE"))
                      ? json_integer((json_int_t)d)
                      : json_real(d);
        else
            out = json_stringn(node->value, node->len);
        break;
    }
    case S_SEQ:
        out = json_array();
        for (size_t i = 0; out && i < node->n; i++)
            if (json_array_append_new(out, s_to_json(ctx, node->items[i])) != 0) {
                json_decref(out);
                out = NULL;
            }
        break;
    case S_MAP:
        out = json_object();
        for (size_t i = 0; out && i + 1 < node->n; i += 2) {
            if (node->items[i]->skip)
                continue;
            json_object_set_new(out, s_res(node->items[i])->value,
                                s_to_json(ctx, node->items[i + 1]));
        }
        break;
    default:
        out = json_null();
        break;
    }
    if (!out)
        s_oom(ctx);
    return out;
}

/* ---------------------------------------------------------------------- */
/* Schema walk */

static void s_type_error(s_ctx_t *ctx, s_node_t *key, const char *who, const char *what)
{
    const char *name = s_res(key)->value;
    s_error(ctx, key, "'%.*s' of %s must be %s", s_q(name), name, who, what);
}

/* A copy of scalar `val`'s text, or NULL after a type error (or OOM). */
static char *s_string(s_ctx_t *ctx, s_node_t *key, s_node_t *val, const char *who)
{
    if (val->kind != S_SCALAR) {
        s_type_error(ctx, key, who, "a string");
        return NULL;
    }
    return s_strdup(ctx, val->value);
}

static bool s_shell_ok(const char *shell)
{
    /* "{0}" marks a custom template, as on GitHub: "perl {0}". */
    return strcmp(shell, "bash") == 0 || strcmp(shell, "sh") == 0 ||
           strcmp(shell, "python") == 0 || strstr(shell, "{0}") != NULL;
}

static char *s_shell(s_ctx_t *ctx, s_node_t *key, s_node_t *val, const char *who)
{
    char *shell = s_string(ctx, key, val, who);
    if (shell && !s_shell_ok(shell)) {
        s_error(ctx, val, "unsupported shell '%.*s' in %s (use bash, sh, python or a command "
                "containing {0})", s_q(shell), shell, who);
        free(shell);
        shell = NULL;
    }
    return shell;
}

static void s_bool_key(s_ctx_t *ctx, s_node_t *key, s_node_t *val, const char *who, bool *out)
{
    if (!s_is_bool(val, out))
        s_type_error(ctx, key, who, "a boolean (true or false)");
}

static void s_minutes_key(s_ctx_t *ctx, s_node_t *key, s_node_t *val, const char *who,
                          int64_t *out_ms)
{
    double minutes;
    if (!s_is_number(val, &minutes)) {
        s_type_error(ctx, key, who, "a number");
        return;
    }
    if (!(minutes > 0) || minutes > S_MAX_TIMEOUT_MIN) {
        s_type_error(ctx, key, who, "a number of minutes greater than 0 and at most a year");
        return;
    }
    /* Rounded by hand: llround would pull in libm for one call. */
    int64_t ms = (int64_t)(minutes * 60000.0 + 0.5);
    /* A tiny fraction still means "a timeout", never "none" (0). */
    *out_ms = ms > 0 ? ms : 1;
}

/* A whole number in [lo, hi] for key; false (with an error) otherwise. */
static bool s_count_key(s_ctx_t *ctx, s_node_t *key, s_node_t *val, const char *who, unsigned lo,
                        unsigned hi, unsigned *out)
{
    double n;
    if (!s_is_number(val, &n) || n != (double)(long long)n || n < lo || n > hi) {
        char want[64];
        snprintf(want, sizeof want, "a whole number from %u to %u", lo, hi);
        s_type_error(ctx, key, who, want);
        return false;
    }
    *out = (unsigned)n;
    return true;
}

/* Kiln's own job settings, under `kiln:` so that GitHub's keys stay
 * GitHub's: max-attempts (infrastructure failures) and retry (script
 * failures). */
static void s_walk_kiln(s_ctx_t *ctx, s_node_t *key, s_node_t *val, const char *who,
                        kiln_job_t *job)
{
    char inner[S_QUOTE_MAX + 32];
    if (val->kind != S_MAP) {
        s_type_error(ctx, key, who, "a mapping (max-attempts, retry)");
        return;
    }
    snprintf(inner, sizeof inner, "'kiln' of %s", who);
    for (size_t i = 0; i + 1 < val->n && !ctx->oom; i += 2) {
        s_node_t *kslot = val->items[i];
        if (kslot->skip)
            continue;
        const char *k = s_res(kslot)->value;
        s_node_t *v = s_res(val->items[i + 1]);
        if (strcmp(k, "max-attempts") == 0)
            s_count_key(ctx, kslot, v, inner, 1, KILN_WF_MAX_ATTEMPTS, &job->max_attempts);
        else if (strcmp(k, "retry") == 0)
            s_count_key(ctx, kslot, v, inner, 0, KILN_WF_MAX_ATTEMPTS, &job->retry);
        else
            s_warn(ctx, kslot, "unknown key '%.*s' in %s (known: max-attempts, retry)", s_q(k),
                   k, inner);
    }
}

/* The if: expression as written; a bool or number keeps its text too. */
static char *s_if(s_ctx_t *ctx, s_node_t *key, s_node_t *val, const char *who)
{
    if (val->kind != S_SCALAR) {
        s_type_error(ctx, key, who, "a string");
        return NULL;
    }
    if (val->len == 0)
        return NULL;
    return s_strdup(ctx, val->value);
}

static void s_walk_env(s_ctx_t *ctx, s_node_t *key, s_node_t *val, const char *who,
                       kiln_env_t *env)
{
    if (val->kind != S_MAP) {
        s_type_error(ctx, key, who, "a mapping");
        return;
    }
    size_t n_pairs = val->n / 2;
    if (n_pairs == 0)
        return;
    env->items = calloc(n_pairs, sizeof *env->items);
    if (!env->items) {
        s_oom(ctx);
        return;
    }
    for (size_t i = 0; i + 1 < val->n && !ctx->oom; i += 2) {
        s_node_t *kslot = val->items[i];
        if (kslot->skip)
            continue;
        const char *name = s_res(kslot)->value;
        s_node_t *v = s_res(val->items[i + 1]);
        /* The executor builds "NAME=value" strings: an '=' in the name or
         * an empty one would silently become a different variable. */
        if (name[0] == '\0' || strchr(name, '=')) {
            s_error(ctx, kslot, "invalid environment variable name '%.*s' in env of %s",
                    s_q(name), name, who);
            continue;
        }
        if (v->kind != S_SCALAR) {
            s_error(ctx, kslot, "env '%.*s' of %s must be a string, not %s", s_q(name), name, who,
                    s_kind_name(v->kind));
            continue;
        }
        kiln_kv_t *kv = &env->items[env->n++];
        kv->key = s_strdup(ctx, name);
        kv->value = s_strdup(ctx, v->value);
    }
}

static void s_walk_defaults(s_ctx_t *ctx, s_node_t *key, s_node_t *val, const char *who,
                            char **shell, char **wd)
{
    if (val->kind != S_MAP) {
        s_type_error(ctx, key, who, "a mapping");
        return;
    }
    for (size_t i = 0; i + 1 < val->n && !ctx->oom; i += 2) {
        s_node_t *kslot = val->items[i];
        if (kslot->skip)
            continue;
        const char *name = s_res(kslot)->value;
        s_node_t *v = s_res(val->items[i + 1]);
        if (strcmp(name, "run") != 0) {
            s_warn(ctx, kslot, "unknown key '%.*s' in defaults of %s", s_q(name), name, who);
            continue;
        }
        if (v->kind != S_MAP) {
            s_error(ctx, kslot, "'defaults.run' of %s must be a mapping", who);
            continue;
        }
        for (size_t j = 0; j + 1 < v->n && !ctx->oom; j += 2) {
            s_node_t *rslot = v->items[j];
            if (rslot->skip)
                continue;
            const char *rname = s_res(rslot)->value;
            s_node_t *rv = s_res(v->items[j + 1]);
            if (strcmp(rname, "shell") == 0)
                *shell = s_shell(ctx, rslot, rv, who);
            else if (strcmp(rname, "working-directory") == 0)
                *wd = s_string(ctx, rslot, rv, who);
            else
                s_warn(ctx, rslot, "unknown key '%.*s' in defaults.run of %s", s_q(rname), rname,
                       who);
        }
    }
}

/* A string or a list of strings into a new array; `nodes` (optional) gets
 * where each entry was written, for later messages. */
static void s_string_list(s_ctx_t *ctx, s_node_t *key, s_node_t *val, const char *who,
                          char ***out, size_t *n_out, s_node_t ***nodes)
{
    const char *what = "a string or a list of strings";
    size_t cap = val->kind == S_SEQ ? val->n : 1;
    if (val->kind == S_MAP) {
        s_type_error(ctx, key, who, what);
        return;
    }
    if (cap == 0)
        return;
    *out = calloc(cap, sizeof **out);
    if (nodes)
        *nodes = calloc(cap, sizeof **nodes);
    if (!*out || (nodes && !*nodes)) {
        s_oom(ctx);
        return;
    }
    for (size_t i = 0; i < cap && !ctx->oom; i++) {
        s_node_t *slot = val->kind == S_SEQ ? val->items[i] : val;
        s_node_t *item = s_res(slot);
        if (item->kind != S_SCALAR) {
            const char *name = s_res(key)->value;
            s_error(ctx, slot, "entry %zu of '%.*s' of %s must be a string, not %s", i + 1,
                    s_q(name), name, who, s_kind_name(item->kind));
            continue;
        }
        if (nodes)
            (*nodes)[*n_out] = slot;
        (*out)[(*n_out)++] = s_strdup(ctx, item->value);
    }
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

/* Reports a bad job or step id; true when it is fine. */
static bool s_check_id(s_ctx_t *ctx, s_node_t *at, const char *kind, const char *id,
                       const char *where)
{
    if (strlen(id) > KILN_WF_MAX_ID) {
        s_error(ctx, at, "%s id '%.*s...' is longer than %d characters%s", kind, s_q(id), id,
                KILN_WF_MAX_ID, where);
        return false;
    }
    if (!s_id_ok(id)) {
        s_error(ctx, at, "invalid %s id '%.*s'%s: an id starts with a letter or '_' and holds "
                "only letters, digits, '-' and '_'", kind, s_q(id), id, where);
        return false;
    }
    return true;
}

/* "Run " + the first non-blank line of `script`, trimmed and cut short. */
static char *s_derived_name(s_ctx_t *ctx, const char *script)
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
    if (!name) {
        s_oom(ctx);
        return NULL;
    }
    snprintf(name, size, "Run %.*s%s", (int)len, p, cut ? "..." : "");
    return name;
}

static bool s_is_key(const char *name, const char *const *list)
{
    for (size_t i = 0; list[i]; i++)
        if (strcmp(name, list[i]) == 0)
            return true;
    return false;
}

static void s_walk_step(s_ctx_t *ctx, kiln_job_t *job, size_t index, s_node_t *slot,
                        kiln_step_t *step)
{
    s_node_t *node = s_res(slot);
    char who[2 * S_QUOTE_MAX + 64], job_where[S_QUOTE_MAX + 16];
    snprintf(job_where, sizeof job_where, " in job '%.*s'", s_q(job->id), job->id);
    step->line = slot->line;
    step->col = slot->col;
    if (node->kind != S_MAP) {
        s_error(ctx, slot, "step %zu of job '%.*s' must be a mapping, not %s", index + 1,
                s_q(job->id), job->id, s_kind_name(node->kind));
        return;
    }
    /* First find what names the step, so every message below can say which
     * step it is about. */
    s_node_t *name_v = NULL, *run_v = NULL, *uses_v = NULL;
    for (size_t i = 0; i + 1 < node->n; i += 2) {
        if (node->items[i]->skip)
            continue;
        const char *k = s_res(node->items[i])->value;
        s_node_t *v = s_res(node->items[i + 1]);
        if (v->kind != S_SCALAR)
            continue;
        if (strcmp(k, "name") == 0 && v->len > 0)
            name_v = v;
        else if (strcmp(k, "run") == 0)
            run_v = v;
        else if (strcmp(k, "uses") == 0)
            uses_v = v;
    }
    if (name_v)
        step->name = s_strdup(ctx, name_v->value);
    else if (run_v)
        step->name = s_derived_name(ctx, run_v->value);
    else if (uses_v)
        step->name = s_derived_name(ctx, uses_v->value);
    if (step->name)
        snprintf(who, sizeof who, "step '%.*s' of job '%.*s'", s_q(step->name), step->name,
                 s_q(job->id), job->id);
    else
        snprintf(who, sizeof who, "step %zu of job '%.*s'", index + 1, s_q(job->id), job->id);

    bool has_run = false, has_uses = false;
    for (size_t i = 0; i + 1 < node->n && !ctx->oom; i += 2) {
        s_node_t *kslot = node->items[i];
        if (kslot->skip)
            continue;
        const char *k = s_res(kslot)->value;
        s_node_t *v = s_res(node->items[i + 1]);
        if (strcmp(k, "name") == 0) {
            if (v->kind != S_SCALAR)
                s_type_error(ctx, kslot, who, "a string");
        } else if (strcmp(k, "id") == 0) {
            step->id = s_string(ctx, kslot, v, who);
            if (step->id)
                s_check_id(ctx, v, "step", step->id, job_where);
        } else if (strcmp(k, "run") == 0) {
            has_run = true;
            step->run = s_string(ctx, kslot, v, who);
            if (step->run && step->run[strspn(step->run, " \t\r\n")] == '\0')
                s_error(ctx, kslot, "'run' of %s is empty", who);
        } else if (strcmp(k, "uses") == 0) {
            has_uses = true;
            step->uses = s_string(ctx, kslot, v, who);
        } else if (strcmp(k, "shell") == 0) {
            step->shell = s_shell(ctx, kslot, v, who);
        } else if (strcmp(k, "working-directory") == 0) {
            step->working_directory = s_string(ctx, kslot, v, who);
        } else if (strcmp(k, "env") == 0) {
            s_walk_env(ctx, kslot, v, who, &step->env);
        } else if (strcmp(k, "timeout-minutes") == 0) {
            s_minutes_key(ctx, kslot, v, who, &step->timeout_ms);
        } else if (strcmp(k, "continue-on-error") == 0) {
            s_bool_key(ctx, kslot, v, who, &step->continue_on_error);
        } else if (strcmp(k, "if") == 0) {
            step->if_expr = s_if(ctx, kslot, v, who);
        } else if (strcmp(k, "with") == 0) {
            if (v->kind != S_MAP)
                s_type_error(ctx, kslot, who, "a mapping of inputs");
            else {
                json_decref(step->with);
                step->with = s_to_json(ctx, v);
            }
        } else {
            s_warn(ctx, kslot, "unknown key '%.*s' in %s", s_q(k), k, who);
        }
    }
    if (has_run && has_uses)
        s_error(ctx, slot, "%s has both 'run' and 'uses'; a step needs exactly one", who);
    else if (!has_run && !has_uses)
        s_error(ctx, slot, "%s has neither 'run' nor 'uses'; a step needs exactly one", who);
    else if (has_uses && step->uses && strncmp(step->uses, "./", 2) != 0)
        s_error(ctx, slot,
                "%s uses '%.*s': only local composite actions (uses: ./path) are supported; "
                "no actions are built in yet",
                who, s_q(step->uses), step->uses);
}

static void s_walk_steps(s_ctx_t *ctx, s_node_t *key, s_node_t *val, const char *who,
                         kiln_job_t *job)
{
    if (val->kind != S_SEQ) {
        s_type_error(ctx, key, who, "a list of steps");
        return;
    }
    if (val->n == 0) {
        s_error(ctx, key, "'steps' of %s is empty", who);
        return;
    }
    if (val->n > KILN_WF_MAX_STEPS) {
        s_error(ctx, key, "%s has %zu steps; the limit is %d", who, val->n, KILN_WF_MAX_STEPS);
        return;
    }
    job->steps = calloc(val->n, sizeof *job->steps);
    if (!job->steps) {
        s_oom(ctx);
        return;
    }
    for (size_t i = 0; i < val->n && !ctx->oom; i++) {
        kiln_step_t *step = &job->steps[job->n_steps++];
        s_walk_step(ctx, job, i, val->items[i], step);
    }
    /* Step ids name outputs (steps.<id>.outputs), so they must be unique;
     * n is at most KILN_WF_MAX_STEPS, so the quadratic scan is bounded. */
    for (size_t i = 1; i < job->n_steps; i++) {
        if (!job->steps[i].id)
            continue;
        for (size_t j = 0; j < i; j++) {
            if (job->steps[j].id && strcmp(job->steps[i].id, job->steps[j].id) == 0) {
                s_error_at(ctx, job->steps[i].line, job->steps[i].col,
                           "duplicate step id '%.*s' in %s", s_q(job->steps[i].id),
                           job->steps[i].id, who);
                break;
            }
        }
    }
}

static const char *const s_job_ignored[] = {
    /* Known GitHub keys Kiln does not act on yet: accepted without a warning. */
    "services", "container", "environment", "permissions", "with", "secrets", NULL,
};

/* `concurrency:` as a string (the group) or {group, cancel-in-progress}. */
static void s_walk_concurrency(s_ctx_t *ctx, s_node_t *key, s_node_t *val, const char *who,
                               char **group, bool *cancel)
{
    if (val->kind == S_SCALAR) {
        *group = s_string(ctx, key, val, who);
        return;
    }
    if (val->kind != S_MAP) {
        s_type_error(ctx, key, who, "a group name or a mapping (group, cancel-in-progress)");
        return;
    }
    for (size_t i = 0; i + 1 < val->n && !ctx->oom; i += 2) {
        s_node_t *kslot = val->items[i];
        if (kslot->skip)
            continue;
        const char *k = s_res(kslot)->value;
        s_node_t *v = s_res(val->items[i + 1]);
        if (strcmp(k, "group") == 0)
            *group = s_string(ctx, kslot, v, who);
        else if (strcmp(k, "cancel-in-progress") == 0)
            s_bool_key(ctx, kslot, v, who, cancel);
        else
            s_warn(ctx, kslot, "unknown key '%.*s' in 'concurrency' of %s", s_q(k), k, who);
    }
    if (!*group)
        s_error(ctx, key, "'concurrency' of %s has no group", who);
}

static void s_walk_strategy(s_ctx_t *ctx, s_node_t *key, s_node_t *val, const char *who,
                            kiln_job_t *job)
{
    if (val->kind != S_MAP) {
        s_type_error(ctx, key, who, "a mapping (matrix, fail-fast, max-parallel)");
        return;
    }
    for (size_t i = 0; i + 1 < val->n && !ctx->oom; i += 2) {
        s_node_t *kslot = val->items[i];
        if (kslot->skip)
            continue;
        const char *k = s_res(kslot)->value;
        s_node_t *v = s_res(val->items[i + 1]);
        if (strcmp(k, "matrix") == 0) {
            if (v->kind == S_MAP ||
                (v->kind == S_SCALAR && !v->plain && strstr(v->value, "${{")) ||
                (v->kind == S_SCALAR && strstr(v->value, "${{"))) {
                json_decref(job->matrix);
                job->matrix = s_to_json(ctx, v);
            } else {
                s_type_error(ctx, kslot, who, "a mapping of lists, or an expression");
            }
        } else if (strcmp(k, "fail-fast") == 0) {
            s_bool_key(ctx, kslot, v, who, &job->fail_fast);
        } else if (strcmp(k, "max-parallel") == 0) {
            s_count_key(ctx, kslot, v, who, 1, 256, &job->max_parallel);
        } else {
            s_warn(ctx, kslot, "unknown key '%.*s' in 'strategy' of %s", s_q(k), k, who);
        }
    }
}

static void s_walk_job(s_ctx_t *ctx, s_node_t *key, s_node_t *val, kiln_job_t *job,
                       s_job_aux_t *aux)
{
    char who[S_QUOTE_MAX + 16];
    const char *id = s_res(key)->value;
    job->line = key->line;
    job->col = key->col;
    job->timeout_ms = KILN_WF_DEFAULT_JOB_TIMEOUT_MS;
    job->fail_fast = true;
    job->id = s_strdup(ctx, id);
    if (!job->id)
        return;
    s_check_id(ctx, key, "job", id, "");
    snprintf(who, sizeof who, "job '%.*s'", s_q(id), id);
    if (val->kind != S_MAP) {
        s_error(ctx, key, "job '%.*s' must be a mapping, not %s", s_q(id), id,
                s_kind_name(val->kind));
        return;
    }
    bool has_runs_on = false, has_steps = false;
    s_node_t *uses_v = NULL;
    for (size_t i = 0; i + 1 < val->n && !ctx->oom; i += 2) {
        s_node_t *kslot = val->items[i];
        if (kslot->skip)
            continue;
        const char *k = s_res(kslot)->value;
        s_node_t *v = s_res(val->items[i + 1]);
        if (strcmp(k, "name") == 0) {
            job->name = s_string(ctx, kslot, v, who);
        } else if (strcmp(k, "runs-on") == 0) {
            has_runs_on = true;
            s_string_list(ctx, kslot, v, who, &job->runs_on, &job->n_runs_on, NULL);
            if ((v->kind == S_SEQ && v->n == 0) || (v->kind == S_SCALAR && v->len == 0)) {
                s_error(ctx, kslot, "'runs-on' of %s is empty", who);
                continue;
            }
            for (size_t j = 0; j < job->n_runs_on; j++)
                if (job->runs_on[j] && job->runs_on[j][0] == '\0')
                    s_error(ctx, kslot, "'runs-on' of %s has an empty label", who);
        } else if (strcmp(k, "needs") == 0) {
            aux->needs_key = kslot;
            s_string_list(ctx, kslot, v, who, &job->needs, &job->n_needs, &aux->need_nodes);
        } else if (strcmp(k, "env") == 0) {
            s_walk_env(ctx, kslot, v, who, &job->env);
        } else if (strcmp(k, "timeout-minutes") == 0) {
            s_minutes_key(ctx, kslot, v, who, &job->timeout_ms);
        } else if (strcmp(k, "continue-on-error") == 0) {
            if (v->kind == S_SCALAR && strstr(v->value, "${{"))
                job->continue_on_error_expr = s_strdup(ctx, v->value);
            else
                s_bool_key(ctx, kslot, v, who, &job->continue_on_error);
        } else if (strcmp(k, "steps") == 0) {
            has_steps = true;
            s_walk_steps(ctx, kslot, v, who, job);
        } else if (strcmp(k, "defaults") == 0) {
            s_walk_defaults(ctx, kslot, v, who, &job->shell, &job->working_directory);
        } else if (strcmp(k, "if") == 0) {
            job->if_expr = s_if(ctx, kslot, v, who);
        } else if (strcmp(k, "uses") == 0) {
            uses_v = v;
        } else if (strcmp(k, "kiln") == 0) {
            s_walk_kiln(ctx, kslot, v, who, job);
        } else if (strcmp(k, "strategy") == 0) {
            s_walk_strategy(ctx, kslot, v, who, job);
        } else if (strcmp(k, "outputs") == 0) {
            if (v->kind != S_MAP) {
                s_type_error(ctx, kslot, who, "a mapping of names to values");
            } else {
                json_decref(job->outputs);
                job->outputs = s_to_json(ctx, v);
            }
        } else if (strcmp(k, "concurrency") == 0) {
            s_walk_concurrency(ctx, kslot, v, who, &job->concurrency_group,
                               &job->cancel_in_progress);
        } else if (!s_is_key(k, s_job_ignored)) {
            s_warn(ctx, kslot, "unknown key '%.*s' in %s", s_q(k), k, who);
        }
    }
    if (ctx->oom)
        return;
    if (uses_v) {
        /* A reusable-workflow call has no runs-on or steps of its own, so
         * say what is really missing rather than listing those. */
        const char *target = uses_v->kind == S_SCALAR ? uses_v->value : "?";
        s_error(ctx, key, "job '%.*s' uses '%.*s': reusable workflows are not supported yet",
                s_q(id), id, s_q(target), target);
    } else {
        if (!has_runs_on)
            s_error(ctx, key, "job '%.*s' has no runs-on", s_q(id), id);
        if (!has_steps)
            s_error(ctx, key, "job '%.*s' has no steps", s_q(id), id);
    }
    if (!job->name || job->name[0] == '\0') {
        free(job->name);
        job->name = s_strdup(ctx, id);
    }
}

static void s_walk_jobs(s_ctx_t *ctx, s_node_t *key, s_node_t *val)
{
    kiln_workflow_t *wf = ctx->wf;
    if (val->kind == S_SCALAR && val->plain && val->len == 0) {
        s_error(ctx, key, "'jobs' is empty: a workflow needs at least one job");
        return;
    }
    if (val->kind != S_MAP) {
        s_error(ctx, key, "'jobs' must be a mapping of job ids to jobs, not %s",
                s_kind_name(val->kind));
        return;
    }
    size_t n_pairs = val->n / 2;
    if (n_pairs == 0) {
        s_error(ctx, key, "'jobs' is empty: a workflow needs at least one job");
        return;
    }
    if (n_pairs > KILN_WF_MAX_JOBS) {
        s_error(ctx, key, "the workflow has %zu jobs; the limit is %d", n_pairs, KILN_WF_MAX_JOBS);
        return;
    }
    /* A static matrix is expanded here: the job's YAML is walked once per
     * combination, so every combination is a whole job of its own. */
    kiln_matrix_t *mx = calloc(n_pairs, sizeof *mx);
    char **dyn = calloc(n_pairs, sizeof *dyn); /* run-time matrix expressions */
    size_t total = 0;
    if (!mx || !dyn) {
        free(mx);
        free(dyn);
        s_oom(ctx);
        return;
    }
    for (size_t i = 0, p = 0; i + 1 < val->n && !ctx->oom; i += 2, p++) {
        s_node_t *jv = s_res(val->items[i + 1]);
        s_node_t *mnode = NULL, *mkey = NULL;
        for (size_t a = 0; jv->kind == S_MAP && a + 1 < jv->n; a += 2) {
            s_node_t *sv = s_res(jv->items[a + 1]);
            if (jv->items[a]->skip || strcmp(s_res(jv->items[a])->value, "strategy") != 0 ||
                sv->kind != S_MAP)
                continue;
            for (size_t b = 0; b + 1 < sv->n; b += 2)
                if (!sv->items[b]->skip && strcmp(s_res(sv->items[b])->value, "matrix") == 0) {
                    mkey = sv->items[b];
                    mnode = s_res(sv->items[b + 1]);
                }
        }
        size_t count = 1;
        if (mnode && mnode->kind == S_MAP && !val->items[i]->skip) {
            json_t *m = s_to_json(ctx, mnode);
            char err[512];
            if (m && kiln_matrix_expand(&mx[p], m, s_res(val->items[i])->value, err, sizeof err) == 0)
                count = mx[p].n;
            else if (m)
                s_error(ctx, mkey, "%s", err);
            json_decref(m);
        } else if (mnode && mnode->kind == S_SCALAR && !val->items[i]->skip) {
            /* Computed at run time: a placeholder until the coordinator has
             * evaluated it (then it is given here, and expanded). */
            const json_t *m = json_object_get(ctx->matrices, s_res(val->items[i])->value);
            char err[512];
            if (!strstr(mnode->value, "${{")) {
                s_error(ctx, mkey, "the matrix of job '%.*s' must be a mapping or an expression",
                        s_q(s_res(val->items[i])->value), s_res(val->items[i])->value);
            } else if (m) {
                if (kiln_matrix_expand(&mx[p], m, s_res(val->items[i])->value, err, sizeof err) ==
                    0)
                    count = mx[p].n;
                else
                    s_error(ctx, mkey, "%s", err);
            } else {
                char *expr = strdup(mnode->value);
                if (!expr)
                    s_oom(ctx);
                dyn[p] = expr;
            }
        }
        total += count;
    }
    if (total > KILN_WF_MAX_JOBS) {
        s_error(ctx, key, "the workflow has %zu jobs once its matrices are expanded; the limit is %d",
                total, KILN_WF_MAX_JOBS);
        goto cleanup;
    }
    wf->jobs = calloc(total, sizeof *wf->jobs);
    ctx->aux = calloc(total, sizeof *ctx->aux);
    if (!wf->jobs || !ctx->aux) {
        s_oom(ctx);
        goto cleanup;
    }
    ctx->n_aux = total;
    for (size_t i = 0, p = 0; i + 1 < val->n && !ctx->oom; i += 2, p++) {
        s_node_t *kslot = val->items[i];
        if (kslot->skip)
            continue;
        size_t n = mx[p].n ? mx[p].n : 1;
        for (size_t c = 0; c < n && !ctx->oom; c++) {
            size_t j = wf->n_jobs++;
            kiln_job_t *job = &wf->jobs[j];
            s_walk_job(ctx, kslot, s_res(val->items[i + 1]), job, &ctx->aux[j]);
            if (dyn[p] && job->id) {
                job->matrix_expr = dyn[p];
                dyn[p] = NULL;
            }
            if (!mx[p].n || !job->id)
                continue;
            char *id = kiln_matrix_id(job->id, c);
            /* An explicit name with ${{ }} is evaluated when the run is
             * planned; any other name gets the combination's values. */
            char *name = job->name && strstr(job->name, "${{")
                             ? strdup(job->name)
                             : kiln_matrix_name(job->name ? job->name : job->id, mx[p].combos[c]);
            if (!id || !name) {
                free(id);
                free(name);
                s_oom(ctx);
                break;
            }
            job->origin = job->id;
            job->id = id;
            free(job->name);
            job->name = name;
            job->matrix_combo = json_incref(mx[p].combos[c]);
            job->matrix_index = c;
            job->matrix_total = n;
        }
    }
cleanup:
    for (size_t p = 0; p < n_pairs; p++) {
        kiln_matrix_free(&mx[p]);
        free(dyn[p]);
    }
    free(mx);
    free(dyn);
}

static const char *const s_top_ignored[] = {
    /* Accepted without a warning; triggers and permissions are the
     * submitter's business, not the farm's (yet). */
    "run-name", "permissions", NULL,
};

static const char *const s_input_types[] = {"string", "boolean", "number", "choice",
                                            "environment", NULL};

/* on: is accepted in all its forms; only workflow_dispatch.inputs matters
 * to a farm (kiln run --input name=value). */
static void s_walk_on(s_ctx_t *ctx, s_node_t *key, s_node_t *val)
{
    if (val->kind != S_MAP)
        return;
    for (size_t i = 0; i + 1 < val->n && !ctx->oom; i += 2) {
        if (val->items[i]->skip || strcmp(s_res(val->items[i])->value, "workflow_dispatch") != 0)
            continue;
        s_node_t *wd = s_res(val->items[i + 1]);
        if (wd->kind != S_MAP)
            continue;
        for (size_t j = 0; j + 1 < wd->n; j += 2) {
            if (wd->items[j]->skip || strcmp(s_res(wd->items[j])->value, "inputs") != 0)
                continue;
            s_node_t *ikey = wd->items[j];
            s_node_t *inputs = s_res(wd->items[j + 1]);
            if (inputs->kind != S_MAP) {
                s_type_error(ctx, ikey, "on.workflow_dispatch", "a mapping of inputs");
                continue;
            }
            for (size_t k = 0; k + 1 < inputs->n; k += 2) {
                s_node_t *name = inputs->items[k];
                s_node_t *spec = s_res(inputs->items[k + 1]);
                if (name->skip)
                    continue;
                if (spec->kind != S_MAP) {
                    s_error(ctx, name, "input '%.*s' must be a mapping", s_q(s_res(name)->value),
                            s_res(name)->value);
                    continue;
                }
                for (size_t m = 0; m + 1 < spec->n; m += 2) {
                    const char *sk = s_res(spec->items[m])->value;
                    s_node_t *sv = s_res(spec->items[m + 1]);
                    if (strcmp(sk, "type") == 0 &&
                        (sv->kind != S_SCALAR || !s_is_key(sv->value, s_input_types)))
                        s_error(ctx, spec->items[m],
                                "input '%.*s' has an unknown type (string, boolean, number, "
                                "choice, environment)",
                                s_q(s_res(name)->value), s_res(name)->value);
                }
            }
            json_decref(ctx->wf->inputs);
            ctx->wf->inputs = s_to_json(ctx, inputs);
        }
    }
    (void)key;
}

static void s_walk_workflow(s_ctx_t *ctx, s_node_t *root)
{
    kiln_workflow_t *wf = ctx->wf;
    s_node_t *jobs_key = NULL, *jobs_val = NULL;
    root = s_res(root);
    if (!root || (root->kind == S_SCALAR && root->plain && root->len == 0)) {
        s_error_at(ctx, root ? root->line : 1, root ? root->col : 1, "the workflow is empty");
        return;
    }
    if (root->kind != S_MAP) {
        s_error(ctx, root, "a workflow must be a mapping at the top level, not %s",
                s_kind_name(root->kind));
        return;
    }
    for (size_t i = 0; i + 1 < root->n && !ctx->oom; i += 2) {
        s_node_t *kslot = root->items[i];
        if (kslot->skip)
            continue;
        const char *k = s_res(kslot)->value;
        s_node_t *v = s_res(root->items[i + 1]);
        if (strcmp(k, "name") == 0) {
            char *name = s_string(ctx, kslot, v, "the workflow");
            if (name && name[0]) {
                free(wf->name);
                wf->name = name;
            } else {
                free(name);
            }
        } else if (strcmp(k, "env") == 0) {
            s_walk_env(ctx, kslot, v, "the workflow", &wf->env);
        } else if (strcmp(k, "defaults") == 0) {
            s_walk_defaults(ctx, kslot, v, "the workflow", &wf->shell, &wf->working_directory);
        } else if (strcmp(k, "jobs") == 0) {
            jobs_key = kslot;
            jobs_val = v;
        } else if (strcmp(k, "on") == 0 || strcmp(k, "true") == 0) {
            /* YAML 1.1 reads a bare `on` key as the boolean true. */
            s_walk_on(ctx, kslot, v);
        } else if (strcmp(k, "concurrency") == 0) {
            s_walk_concurrency(ctx, kslot, v, "the workflow", &wf->concurrency_group,
                               &wf->cancel_in_progress);
        } else if (!s_is_key(k, s_top_ignored)) {
            s_warn(ctx, kslot, "unknown key '%.*s' at top level", s_q(k), k);
        }
    }
    if (ctx->oom)
        return;
    if (!jobs_key)
        s_error(ctx, root, "the workflow has no 'jobs'");
    else
        s_walk_jobs(ctx, jobs_key, jobs_val);
}

/* ---------------------------------------------------------------------- */
/* Expressions: every ${{ }} (and every if:) is checked for syntax, known
 * functions and contexts before anything runs. The error names the field and
 * the column within it, at the line of the step or job. */

static void s_check_template(s_ctx_t *ctx, int line, int col, const char *who,
                             const char *field, const char *text)
{
    char err[512];
    int at = 0;
    if (!text || !strstr(text, "${{"))
        return;
    if (kiln_expr_check_template(text, &at, err, sizeof err) != 0)
        s_error_at(ctx, line, col, "%s: %s: expression error at column %d: %s", who, field, at,
                   err);
}

static void s_check_if(s_ctx_t *ctx, int line, int col, const char *who, const char *text)
{
    char err[512];
    int at = 0;
    if (text && kiln_expr_check_condition(text, &at, err, sizeof err) != 0)
        s_error_at(ctx, line, col, "%s: if: expression error at column %d: %s", who, at, err);
}

static void s_check_expressions(s_ctx_t *ctx)
{
    const kiln_workflow_t *wf = ctx->wf;
    char who[256];
    for (size_t i = 0; i < wf->n_jobs; i++) {
        const kiln_job_t *job = &wf->jobs[i];
        /* A matrix job's combinations share its text: check it once. */
        if (job->origin && job->matrix_index > 0)
            continue;
        snprintf(who, sizeof who, "job '%.*s'", s_q(job->origin ? job->origin : job->id),
                 job->origin ? job->origin : job->id);
        s_check_if(ctx, job->line, job->col, who, job->if_expr);
        s_check_template(ctx, job->line, job->col, who, "name", job->name);
        s_check_template(ctx, job->line, job->col, who, "concurrency", job->concurrency_group);
        s_check_template(ctx, job->line, job->col, who, "strategy.matrix", job->matrix_expr);
        s_check_template(ctx, job->line, job->col, who, "continue-on-error",
                         job->continue_on_error_expr);
        for (size_t k = 0; k < job->n_runs_on; k++)
            s_check_template(ctx, job->line, job->col, who, "runs-on", job->runs_on[k]);
        for (size_t k = 0; k < job->env.n; k++)
            s_check_template(ctx, job->line, job->col, who, "env", job->env.items[k].value);
        const char *oname;
        json_t *ov;
        json_object_foreach(job->outputs, oname, ov)
            s_check_template(ctx, job->line, job->col, who, "outputs", json_string_value(ov));
        for (size_t st = 0; st < job->n_steps; st++) {
            const kiln_step_t *step = &job->steps[st];
            char swho[600];
            snprintf(swho, sizeof swho, "step '%.*s' of %s", s_q(step->name ? step->name : "?"),
                     step->name ? step->name : "?", who);
            s_check_if(ctx, step->line, step->col, swho, step->if_expr);
            s_check_template(ctx, step->line, step->col, swho, "run", step->run);
            s_check_template(ctx, step->line, step->col, swho, "working-directory",
                             step->working_directory);
            s_check_template(ctx, step->line, step->col, swho, "shell", step->shell);
            for (size_t k = 0; k < step->env.n; k++)
                s_check_template(ctx, step->line, step->col, swho, "env",
                                 step->env.items[k].value);
        }
    }
    for (size_t k = 0; k < wf->env.n; k++)
        s_check_template(ctx, 1, 1, "the workflow", "env", wf->env.items[k].value);
    s_check_template(ctx, 1, 1, "the workflow", "concurrency", wf->concurrency_group);
}

/* ---------------------------------------------------------------------- */
/* needs: resolution, cycles, order */

static int s_job_cmp(const void *a, const void *b)
{
    const kiln_job_t *x = *(const kiln_job_t *const *)a, *y = *(const kiln_job_t *const *)b;
    return strcmp(x->id, y->id);
}

/* Resolves needs to indexes (SIZE_MAX for unknown ones, reported). Ids are
 * looked up in a sorted array: needs lists may be long on hostile input. */
static void s_resolve_needs(s_ctx_t *ctx)
{
    kiln_workflow_t *wf = ctx->wf;
    kiln_job_t **sorted = malloc((wf->n_jobs ? wf->n_jobs : 1) * sizeof *sorted);
    size_t *seen = calloc(wf->n_jobs ? wf->n_jobs : 1, sizeof *seen);
    if (!sorted || !seen) {
        s_oom(ctx);
        goto cleanup;
    }
    for (size_t i = 0; i < wf->n_jobs; i++)
        sorted[i] = &wf->jobs[i];
    qsort(sorted, wf->n_jobs, sizeof *sorted, s_job_cmp);
    for (size_t i = 1; i < wf->n_jobs; i++)
        if (sorted[i]->id && sorted[i - 1]->id && strcmp(sorted[i]->id, sorted[i - 1]->id) == 0)
            s_error_at(ctx, sorted[i]->line, sorted[i]->col,
                       "job id '%.*s' is used twice (a matrix job's combinations are named "
                       "<id>-1, <id>-2, ...)",
                       s_q(sorted[i]->id), sorted[i]->id);
    /* needs naming a matrix job mean all its combinations. */
    for (size_t i = 0; i < wf->n_jobs && !ctx->oom; i++) {
        kiln_job_t *job = &wf->jobs[i];
        size_t extra = 0;
        for (size_t k = 0; k < job->n_needs; k++)
            for (size_t m = 0; m < wf->n_jobs; m++)
                if (wf->jobs[m].origin && strcmp(wf->jobs[m].origin, job->needs[k]) == 0)
                    extra++;
        if (!extra)
            continue;
        size_t cap = job->n_needs + extra;
        char **needs = calloc(cap, sizeof *needs);
        s_node_t **nodes = calloc(cap, sizeof *nodes);
        if (!needs || !nodes) {
            free(needs);
            free(nodes);
            s_oom(ctx);
            break;
        }
        size_t n = 0;
        for (size_t k = 0; k < job->n_needs; k++) {
            bool expanded = false;
            for (size_t m = 0; m < wf->n_jobs; m++) {
                if (!wf->jobs[m].origin || strcmp(wf->jobs[m].origin, job->needs[k]) != 0)
                    continue;
                needs[n] = strdup(wf->jobs[m].id);
                nodes[n++] = ctx->aux[i].need_nodes[k];
                expanded = true;
            }
            if (expanded) {
                free(job->needs[k]);
            } else {
                needs[n] = job->needs[k];
                nodes[n++] = ctx->aux[i].need_nodes[k];
            }
        }
        free(job->needs);
        free(ctx->aux[i].need_nodes);
        job->needs = needs;
        job->n_needs = n;
        ctx->aux[i].need_nodes = nodes;
    }
    for (size_t i = 0; i < wf->n_jobs; i++) {
        kiln_job_t *job = &wf->jobs[i];
        if (job->n_needs == 0)
            continue;
        job->need_idx = malloc(job->n_needs * sizeof *job->need_idx);
        if (!job->need_idx) {
            s_oom(ctx);
            goto cleanup;
        }
        for (size_t k = 0; k < job->n_needs; k++) {
            kiln_job_t probe = {.id = job->needs[k]}, *pp = &probe;
            kiln_job_t **hit = bsearch(&pp, sorted, wf->n_jobs, sizeof *sorted, s_job_cmp);
            s_node_t *at = ctx->aux[i].need_nodes[k];
            job->need_idx[k] = SIZE_MAX;
            if (!hit) {
                s_error(ctx, at, "job '%.*s' needs unknown job '%.*s'", s_q(job->id), job->id,
                        s_q(job->needs[k]), job->needs[k]);
                continue;
            }
            size_t idx = (size_t)(*hit - wf->jobs);
            /* seen[] holds i + 1 for needs already listed by job i. */
            if (seen[idx] == i + 1)
                s_warn(ctx, at, "job '%.*s' lists '%.*s' more than once in needs", s_q(job->id),
                       job->id, s_q(job->needs[k]), job->needs[k]);
            seen[idx] = i + 1;
            job->need_idx[k] = idx;
        }
    }
cleanup:
    free(sorted);
    free(seen);
}

static void s_report_cycle(s_ctx_t *ctx, const size_t *cycle, size_t len)
{
    const kiln_workflow_t *wf = ctx->wf;
    char msg[S_DIAG_MSG_MAX];
    size_t used;
    /* Start at the job first in the file, so the message does not depend
     * on where the search happened to enter the cycle. */
    size_t first = 0;
    for (size_t i = 1; i < len; i++)
        if (cycle[i] < cycle[first])
            first = i;
    used = (size_t)snprintf(msg, sizeof msg, "cycle in needs:");
    for (size_t i = 0; i <= len && used < sizeof msg; i++) {
        const char *id = wf->jobs[cycle[(first + i) % len]].id;
        int w = snprintf(msg + used, sizeof msg - used, "%s%s", i ? " -> " : " ", id);
        if (w < 0)
            break;
        used += (size_t)w;
    }
    /* Point at the entry of the first job's needs that closes the loop. */
    size_t from = cycle[first], to = cycle[(first + 1) % len];
    const kiln_job_t *job = &wf->jobs[from];
    s_node_t *at = NULL;
    for (size_t k = 0; k < job->n_needs && !at; k++)
        if (job->need_idx[k] == to)
            at = ctx->aux[from].need_nodes[k];
    s_error(ctx, at, "%s", msg);
}

/* Iterative depth-first search over needs (no recursion: the chain may be
 * as long as KILN_WF_MAX_JOBS); every back edge is one cycle, reported. */
static void s_find_cycles(s_ctx_t *ctx)
{
    const kiln_workflow_t *wf = ctx->wf;
    size_t n = wf->n_jobs;
    unsigned char *color = calloc(n ? n : 1, 1); /* 0 new, 1 on the path, 2 done */
    size_t *path = malloc((n ? n : 1) * sizeof *path);
    size_t *next = malloc((n ? n : 1) * sizeof *next);   /* next need to follow, per depth */
    size_t *where = malloc((n ? n : 1) * sizeof *where); /* depth of a job on the path */
    if (!color || !path || !next || !where) {
        s_oom(ctx);
        goto cleanup;
    }
    for (size_t root = 0; root < n; root++) {
        if (color[root])
            continue;
        size_t depth = 0;
        path[0] = root;
        next[0] = 0;
        where[root] = 0;
        color[root] = 1;
        depth = 1;
        while (depth > 0) {
            size_t u = path[depth - 1];
            const kiln_job_t *job = &wf->jobs[u];
            if (next[depth - 1] >= job->n_needs) {
                color[u] = 2;
                depth--;
                continue;
            }
            size_t v = job->need_idx[next[depth - 1]++];
            if (v == SIZE_MAX || color[v] == 2)
                continue;
            if (color[v] == 1) {
                s_report_cycle(ctx, path + where[v], depth - where[v]);
                continue;
            }
            color[v] = 1;
            where[v] = depth;
            path[depth] = v;
            next[depth] = 0;
            depth++;
        }
    }
cleanup:
    free(color);
    free(path);
    free(next);
    free(where);
}

/* Kahn's algorithm, always taking the ready job first in the file, so the
 * order is needs-first and otherwise file order. Called only on an acyclic
 * graph with every need resolved. */
static void s_topo(s_ctx_t *ctx)
{
    kiln_workflow_t *wf = ctx->wf;
    size_t n = wf->n_jobs;
    size_t *indeg = calloc(n ? n : 1, sizeof *indeg);
    size_t *dep_start = calloc(n + 1, sizeof *dep_start);
    size_t *deps = NULL, *fill = NULL, n_edges = 0;
    bool *placed = calloc(n ? n : 1, sizeof *placed);
    wf->topo = malloc((n ? n : 1) * sizeof *wf->topo);
    if (!indeg || !dep_start || !placed || !wf->topo) {
        s_oom(ctx);
        goto cleanup;
    }
    for (size_t i = 0; i < n; i++) {
        indeg[i] = wf->jobs[i].n_needs;
        for (size_t k = 0; k < wf->jobs[i].n_needs; k++)
            dep_start[wf->jobs[i].need_idx[k] + 1]++;
        n_edges += wf->jobs[i].n_needs;
    }
    for (size_t i = 0; i < n; i++)
        dep_start[i + 1] += dep_start[i];
    deps = malloc((n_edges ? n_edges : 1) * sizeof *deps);
    fill = calloc(n ? n : 1, sizeof *fill);
    if (!deps || !fill) {
        s_oom(ctx);
        goto cleanup;
    }
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < wf->jobs[i].n_needs; k++) {
            size_t need = wf->jobs[i].need_idx[k];
            deps[dep_start[need] + fill[need]++] = i;
        }
    for (size_t out = 0; out < n; out++) {
        size_t pick = SIZE_MAX;
        for (size_t i = 0; i < n && pick == SIZE_MAX; i++)
            if (!placed[i] && indeg[i] == 0)
                pick = i;
        assert(pick != SIZE_MAX); /* cycles were refused before */
        if (pick == SIZE_MAX)
            break;
        placed[pick] = true;
        wf->topo[out] = pick;
        for (size_t e = dep_start[pick]; e < dep_start[pick + 1]; e++)
            indeg[deps[e]]--;
    }
cleanup:
    free(indeg);
    free(dep_start);
    free(deps);
    free(fill);
    free(placed);
}

/* ---------------------------------------------------------------------- */
/* Public API */

static void s_env_free(kiln_env_t *env)
{
    for (size_t i = 0; i < env->n; i++) {
        free(env->items[i].key);
        free(env->items[i].value);
    }
    free(env->items);
}

static void s_step_free(kiln_step_t *step)
{
    free(step->id);
    free(step->name);
    free(step->run);
    free(step->uses);
    free(step->shell);
    free(step->working_directory);
    free(step->if_expr);
    s_env_free(&step->env);
    json_decref(step->with);
    json_decref(step->action_inputs);
    json_decref(step->composite_ends);
    memset(step, 0, sizeof *step);
}

void kiln_pipeline_destroy(kiln_workflow_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    kiln_workflow_t *wf = *self_p;
    for (size_t i = 0; i < wf->n_jobs; i++) {
        kiln_job_t *job = &wf->jobs[i];
        free(job->id);
        free(job->name);
        for (size_t k = 0; k < job->n_runs_on; k++)
            free(job->runs_on[k]);
        free(job->runs_on);
        for (size_t k = 0; k < job->n_needs; k++)
            free(job->needs[k]);
        free(job->needs);
        free(job->need_idx);
        s_env_free(&job->env);
        free(job->shell);
        free(job->working_directory);
        free(job->if_expr);
        for (size_t s = 0; s < job->n_steps; s++)
            s_step_free(&job->steps[s]);
        free(job->steps);
        json_decref(job->matrix);
        json_decref(job->outputs);
        free(job->concurrency_group);
        free(job->origin);
        free(job->matrix_expr);
        free(job->continue_on_error_expr);
        json_decref(job->matrix_combo);
    }
    json_decref(wf->inputs);
    free(wf->concurrency_group);
    free(wf->jobs);
    free(wf->file);
    free(wf->name);
    s_env_free(&wf->env);
    free(wf->shell);
    free(wf->working_directory);
    free(wf->topo);
    free(wf);
    *self_p = NULL;
}

static int s_diag_cmp(const void *a, const void *b)
{
    const kiln_diag_t *x = a, *y = b;
    if (x->line != y->line)
        return x->line < y->line ? -1 : 1;
    if (x->col != y->col)
        return x->col < y->col ? -1 : 1;
    return 0;
}

/* Puts this parse's diagnostics in file order (the walk finds duplicate
 * keys and needs problems out of order) keeping equal positions in the
 * order found, then returns the first error among them, or NULL. */
static const kiln_diag_t *s_diags_sort(kiln_diags_t *diags, size_t from)
{
    size_t n = diags->n - from;
    if (n == 0)
        return NULL; /* items may be NULL: no pointer arithmetic on it */
    kiln_diag_t *items = diags->items + from;
    /* When the list is full its last item says so; it stays last. */
    if (diags->n > S_MAX_DIAGS)
        n--;
    /* Insertion sort: stable, and the list is short and nearly sorted. */
    for (size_t i = 1; i < n; i++) {
        kiln_diag_t d = items[i];
        size_t j = i;
        while (j > 0 && s_diag_cmp(&items[j - 1], &d) > 0) {
            items[j] = items[j - 1];
            j--;
        }
        items[j] = d;
    }
    for (size_t i = 0; i < n; i++)
        if (items[i].severity == KILN_DIAG_ERROR)
            return &items[i];
    return NULL;
}

/* ---------------------------------------------------------------------- */
/* Local composite actions */

__attribute__((format(printf, 5, 6))) static void s_diags_add_raw(s_ctx_t *ctx,
                                                                  kiln_diag_severity_t sev,
                                                                  int line, int col,
                                                                  const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    s_diags_vadd(ctx->diags, sev, line, col, fmt, ap);
    va_end(ap);
}

/* "./a/b/" -> "a/b"; NULL for paths that climb out (".." segments). */
static char *s_action_path(const char *uses)
{
    const char *p = uses + 2;
    char *out = strdup(p);
    if (!out)
        return NULL;
    size_t n = strlen(out);
    while (n && out[n - 1] == '/')
        out[--n] = '\0';
    for (char *seg = out; seg && *seg;) {
        char *slash = strchr(seg, '/');
        size_t len = slash ? (size_t)(slash - seg) : strlen(seg);
        if (len == 2 && seg[0] == '.' && seg[1] == '.') {
            free(out);
            return NULL;
        }
        seg = slash ? slash + 1 : NULL;
    }
    return out;
}

static void s_collect_uses(s_node_t *node, json_t *out, int *bad, int depth)
{
    node = s_res(node);
    if (!node || depth > KILN_WF_MAX_DEPTH)
        return;
    if (node->kind == S_MAP) {
        for (size_t i = 0; i + 1 < node->n; i += 2) {
            s_node_t *k = s_res(node->items[i]), *v = s_res(node->items[i + 1]);
            if (k->kind == S_SCALAR && strcmp(k->value, "uses") == 0 && v->kind == S_SCALAR &&
                strncmp(v->value, "./", 2) == 0) {
                char *path = s_action_path(v->value);
                if (!path) {
                    *bad = 1;
                    continue;
                }
                bool seen = false;
                size_t j;
                json_t *e;
                json_array_foreach(out, j, e) seen = seen || strcmp(json_string_value(e), path) == 0;
                if (!seen)
                    json_array_append_new(out, json_string(path));
                free(path);
            } else {
                s_collect_uses(v, out, bad, depth + 1);
            }
        }
    } else if (node->kind == S_SEQ) {
        for (size_t i = 0; i < node->n; i++)
            s_collect_uses(node->items[i], out, bad, depth + 1);
    }
}

int kiln_pipeline_local_uses(const char *text, size_t len, json_t *out)
{
    kiln_diags_t diags;
    s_ctx_t ctx = {.diags = &diags};
    s_tree_t tree;
    int bad = 0;
    memset(&tree, 0, sizeof tree);
    kiln_diags_init(&diags, "scan");
    if (len <= KILN_WF_MAX_BYTES && s_tree_build(&ctx, &tree, text, len) >= 0)
        s_collect_uses(tree.root, out, &bad, 0);
    s_tree_free(&tree);
    kiln_diags_free(&diags);
    if (bad) {
        kiln_error_set("a local action path climbs out of the repository (..)");
        return KILN_EINVAL;
    }
    return 0;
}

/* Replaces each `uses: ./x` step of every job by the steps of x's
 * action.yml (runs.using: composite), recursively up to
 * KILN_WF_MAX_ACTION_DEPTH. Problems in an action file are reported at the
 * uses: step, quoting the action file's own line. */
static void s_expand_steps(s_ctx_t *ctx, kiln_job_t *job, int depth);

static bool s_expand_one(s_ctx_t *ctx, kiln_job_t *job, const kiln_step_t *uses_step,
                         kiln_step_t **out, size_t *n_out, int depth)
{
    char *path = s_action_path(uses_step->uses);
    const char *text = path ? json_string_value(json_object_get(ctx->actions, path)) : NULL;
    char who[300];
    snprintf(who, sizeof who, "step '%.*s' of job '%.*s'", s_q(uses_step->name), uses_step->name,
             s_q(job->id), job->id);
    if (!path || !text) {
        s_error_at(ctx, uses_step->line, uses_step->col,
                   "%s uses '%.*s': no action.yml or action.yaml found for it", who,
                   s_q(uses_step->uses), uses_step->uses);
        free(path);
        return false;
    }
    if (depth >= KILN_WF_MAX_ACTION_DEPTH) {
        s_error_at(ctx, uses_step->line, uses_step->col,
                   "%s: composite actions nest deeper than %d", who, KILN_WF_MAX_ACTION_DEPTH);
        free(path);
        return false;
    }
    /* The action's own problems go to a list of their own, then are reported
     * at the uses: step with the action file's line. */
    kiln_diags_t adiags, *saved = ctx->diags;
    char afile[600];
    snprintf(afile, sizeof afile, "%s/action.yml", path);
    kiln_diags_init(&adiags, afile);
    ctx->diags = &adiags;
    s_tree_t tree;
    memset(&tree, 0, sizeof tree);
    kiln_job_t tmp = {.id = job->id};
    json_t *inputs = json_object(), *outputs = NULL;
    bool ok = false;
    if (strlen(text) > KILN_WF_MAX_ACTION_BYTES) {
        s_error_at(ctx, 0, 0, "the action is larger than %d bytes", KILN_WF_MAX_ACTION_BYTES);
        goto report;
    }
    if (s_tree_build(ctx, &tree, text, strlen(text)) < 0)
        goto report;
    s_node_t *root = s_res(tree.root), *runs = NULL, *in_spec = NULL, *out_spec = NULL;
    for (size_t i = 0; root && root->kind == S_MAP && i + 1 < root->n; i += 2) {
        const char *k = s_res(root->items[i])->value;
        if (strcmp(k, "runs") == 0)
            runs = s_res(root->items[i + 1]);
        else if (strcmp(k, "inputs") == 0)
            in_spec = s_res(root->items[i + 1]);
        else if (strcmp(k, "outputs") == 0)
            out_spec = s_res(root->items[i + 1]);
    }
    s_node_t *using = NULL, *steps = NULL;
    for (size_t i = 0; runs && runs->kind == S_MAP && i + 1 < runs->n; i += 2) {
        const char *k = s_res(runs->items[i])->value;
        if (strcmp(k, "using") == 0)
            using = s_res(runs->items[i + 1]);
        else if (strcmp(k, "steps") == 0)
            steps = s_res(runs->items[i + 1]);
    }
    if (!using || using->kind != S_SCALAR || strcmp(using->value, "composite") != 0) {
        s_error_at(ctx, runs ? runs->line : 1, runs ? runs->col : 1,
                   "only composite actions (runs.using: composite) can be used");
        goto report;
    }
    if (!steps || steps->kind != S_SEQ || steps->n == 0) {
        s_error_at(ctx, using->line, using->col, "runs.steps must be a non-empty list");
        goto report;
    }
    /* inputs: with: values, else defaults; a required one missing is an error. */
    for (size_t i = 0; in_spec && in_spec->kind == S_MAP && i + 1 < in_spec->n; i += 2) {
        const char *name = s_res(in_spec->items[i])->value;
        s_node_t *spec = s_res(in_spec->items[i + 1]);
        json_t *given = json_object_get(uses_step->with, name);
        json_t *dflt = NULL;
        bool required = false;
        for (size_t k = 0; spec->kind == S_MAP && k + 1 < spec->n; k += 2) {
            const char *sk = s_res(spec->items[k])->value;
            if (strcmp(sk, "default") == 0)
                dflt = s_to_json(ctx, spec->items[k + 1]);
            else if (strcmp(sk, "required") == 0)
                s_is_bool(s_res(spec->items[k + 1]), &required);
        }
        if (given) {
            char *t = kiln_expr_string(given);
            json_object_set_new(inputs, name, json_string(t ? t : ""));
            free(t);
        } else if (dflt && !json_is_null(dflt)) {
            char *t = kiln_expr_string(dflt);
            json_object_set_new(inputs, name, json_string(t ? t : ""));
            free(t);
        } else if (required) {
            s_error_at(ctx, in_spec->items[i]->line, in_spec->items[i]->col,
                       "input '%s' is required and the step gives no with: value for it", name);
        } else {
            json_object_set_new(inputs, name, json_string(""));
        }
        json_decref(dflt);
    }
    const char *wname;
    json_t *wv;
    json_object_foreach(uses_step->with, wname, wv) if (!json_object_get(inputs, wname))
        s_warn(ctx, root, "with: '%s' is not an input of this action", wname);
    if (out_spec && out_spec->kind == S_MAP) {
        outputs = json_object();
        for (size_t i = 0; i + 1 < out_spec->n; i += 2) {
            s_node_t *spec = s_res(out_spec->items[i + 1]);
            for (size_t k = 0; spec->kind == S_MAP && k + 1 < spec->n; k += 2)
                if (strcmp(s_res(spec->items[k])->value, "value") == 0)
                    json_object_set_new(outputs, s_res(out_spec->items[i])->value,
                                        json_string(s_res(spec->items[k + 1])->value));
        }
    }
    tmp.steps = calloc(steps->n, sizeof *tmp.steps);
    if (!tmp.steps) {
        s_oom(ctx);
        goto report;
    }
    for (size_t i = 0; i < steps->n && !ctx->oom; i++) {
        s_walk_step(ctx, &tmp, i, steps->items[i], &tmp.steps[i]);
        tmp.n_steps++;
        if (!tmp.steps[i].shell && tmp.steps[i].run)
            tmp.steps[i].shell = s_strdup(ctx, "bash");
    }
    ok = adiags.n_errors == 0;
    if (ok)
        s_expand_steps(ctx, &tmp, depth + 1);
    ok = adiags.n_errors == 0;
    /* This action's inputs go under whatever nested actions put there. */
    for (size_t i = 0; ok && i < tmp.n_steps; i++) {
        kiln_step_t *st = &tmp.steps[i];
        if (!st->action_inputs)
            st->action_inputs = json_array();
        json_array_insert(st->action_inputs, 0, inputs);
        size_t k;
        json_t *end;
        json_array_foreach(st->composite_ends, k, end) json_object_set_new(
            end, "level", json_integer(json_integer_value(json_object_get(end, "level")) + 1));
    }
report:
    ctx->diags = saved;
    for (size_t i = 0; i < adiags.n; i++)
        s_diags_add_raw(ctx, adiags.items[i].severity, uses_step->line, uses_step->col,
                        "%s uses '%.*s': %s:%d:%d: %s", who, s_q(uses_step->uses),
                        uses_step->uses, afile, adiags.items[i].line, adiags.items[i].col,
                        adiags.items[i].message);
    kiln_diags_free(&adiags);
    s_tree_free(&tree);
    if (ok && tmp.n_steps) {
        /* The action's last step ends it: there its outputs are evaluated
         * (with its own inputs) into steps.<id> of the uses: step. */
        kiln_step_t *last = &tmp.steps[tmp.n_steps - 1];
        if (!last->composite_ends)
            last->composite_ends = json_array();
        json_array_append_new(last->composite_ends,
                              json_pack("{s:s?, s:O, s:i}", "id", uses_step->id, "outputs",
                                        outputs ? outputs : json_object(), "level", 0));
        *out = tmp.steps;
        *n_out = tmp.n_steps;
    } else {
        *out = tmp.steps;
        *n_out = tmp.n_steps;
        ok = false;
    }
    json_decref(inputs);
    json_decref(outputs);
    free(path);
    return ok;
}

static void s_step_free(kiln_step_t *step);

static void s_expand_steps(s_ctx_t *ctx, kiln_job_t *job, int depth)
{
    bool any = false;
    for (size_t i = 0; i < job->n_steps; i++)
        any = any || (job->steps[i].uses && strncmp(job->steps[i].uses, "./", 2) == 0);
    if (!any)
        return;
    size_t cap = job->n_steps, n = 0;
    kiln_step_t *steps = calloc(cap, sizeof *steps);
    if (!steps) {
        s_oom(ctx);
        return;
    }
    for (size_t i = 0; i < job->n_steps && !ctx->oom; i++) {
        kiln_step_t *st = &job->steps[i];
        if (!st->uses || strncmp(st->uses, "./", 2) != 0) {
            steps[n++] = *st;
            memset(st, 0, sizeof *st);
            continue;
        }
        kiln_step_t *inner = NULL;
        size_t n_inner = 0;
        bool ok = s_expand_one(ctx, job, st, &inner, &n_inner, depth);
        if (!ok || n + n_inner + (job->n_steps - i) > KILN_WF_MAX_STEPS) {
            if (ok)
                s_error_at(ctx, st->line, st->col, "job '%.*s' has more than %d steps once its "
                           "actions are expanded", s_q(job->id), job->id, KILN_WF_MAX_STEPS);
            for (size_t k = 0; k < n_inner; k++)
                s_step_free(&inner[k]);
            free(inner);
            steps[n++] = *st; /* keep it, so the model stays whole for the error path */
            memset(st, 0, sizeof *st);
            continue;
        }
        kiln_step_t *grown = realloc(steps, (cap + n_inner) * sizeof *steps);
        if (!grown) {
            for (size_t k = 0; k < n_inner; k++)
                s_step_free(&inner[k]);
            free(inner);
            s_oom(ctx);
            break;
        }
        steps = grown;
        cap += n_inner;
        for (size_t k = 0; k < n_inner; k++)
            steps[n++] = inner[k];
        free(inner);
        s_step_free(st);
    }
    for (size_t i = 0; i < job->n_steps; i++)
        s_step_free(&job->steps[i]);
    free(job->steps);
    job->steps = steps;
    job->n_steps = n;
}

int kiln_pipeline_parse(kiln_workflow_t **out, const char *file, const char *text, size_t len,
                        kiln_diags_t *diags)
{
    return kiln_pipeline_parse_with(out, file, text, len, NULL, diags);
}

int kiln_pipeline_parse_with(kiln_workflow_t **out, const char *file, const char *text, size_t len,
                             const json_t *actions, kiln_diags_t *diags)
{
    return kiln_pipeline_parse_planned(out, file, text, len, actions, NULL, diags);
}

int kiln_pipeline_parse_planned(kiln_workflow_t **out, const char *file, const char *text,
                                size_t len, const json_t *actions, const json_t *matrices,
                                kiln_diags_t *diags)
{
    assert(out && file && diags && (text || len == 0));
    int rc = KILN_EINVAL;
    s_tree_t tree;
    s_ctx_t ctx = {.diags = diags, .actions = actions, .matrices = matrices};
    size_t first_diag = diags->n, errors_before = diags->n_errors;
    memset(&tree, 0, sizeof tree);
    *out = NULL;

    ctx.wf = calloc(1, sizeof *ctx.wf);
    if (!ctx.wf) {
        s_oom(&ctx);
        goto report;
    }
    ctx.wf->file = s_strdup(&ctx, file);
    const char *base = strrchr(file, '/');
    ctx.wf->name = s_strdup(&ctx, base && base[1] ? base + 1 : file);
    if (ctx.oom)
        goto report;
    if (len > KILN_WF_MAX_BYTES) {
        s_error_at(&ctx, 0, 0, "the workflow is %zu bytes; the limit is %d bytes", len,
                   KILN_WF_MAX_BYTES);
        goto report;
    }
    if (s_tree_build(&ctx, &tree, text, len) < 0)
        goto report;
    s_walk_workflow(&ctx, tree.root);
    if (ctx.oom)
        goto report;
    for (size_t i = 0; i < ctx.wf->n_jobs; i++) {
        kiln_job_t *job = &ctx.wf->jobs[i];
        /* Store the effective defaults so the executor need not know where
         * they came from. */
        if (!job->shell && ctx.wf->shell)
            job->shell = s_strdup(&ctx, ctx.wf->shell);
        if (!job->working_directory && ctx.wf->working_directory)
            job->working_directory = s_strdup(&ctx, ctx.wf->working_directory);
        s_expand_steps(&ctx, job, 0);
    }
    if (!ctx.oom)
        s_resolve_needs(&ctx);
    if (!ctx.oom)
        s_find_cycles(&ctx);
    if (!ctx.oom)
        s_check_expressions(&ctx);
    if (!ctx.oom && diags->n_errors == errors_before)
        s_topo(&ctx);

report:
    if (ctx.oom) {
        kiln_error_set("%s: out of memory while reading the workflow", file);
        rc = KILN_ERROR;
        goto cleanup;
    }
    if (diags->n_errors > errors_before) {
        const kiln_diag_t *first = s_diags_sort(diags, first_diag);
        if (!first)
            kiln_error_set("%s: invalid workflow", file); /* its text was lost to OOM */
        else if (first->line > 0)
            kiln_error_set("%s:%d:%d: %s", file, first->line, first->col, first->message);
        else
            kiln_error_set("%s: %s", file, first->message);
        rc = KILN_EINVAL;
        goto cleanup;
    }
    s_diags_sort(diags, first_diag);
    *out = ctx.wf;
    ctx.wf = NULL;
    rc = 0;
cleanup:
    for (size_t i = 0; i < ctx.n_aux; i++)
        free(ctx.aux[i].need_nodes);
    free(ctx.aux);
    s_tree_free(&tree);
    kiln_pipeline_destroy(&ctx.wf);
    return rc;
}

int kiln_pipeline_load(kiln_workflow_t **out, const char *path, kiln_diags_t *diags)
{
    assert(out && path && diags);
    int rc = KILN_ERROR;
    int fd = -1;
    /* One byte more than the limit tells "too big" from "exactly the limit"
     * without trusting st_size (pipes, files that grow while read). */
    size_t cap = (size_t)KILN_WF_MAX_BYTES + 1, len = 0;
    char *text = NULL;
    *out = NULL;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
        int err = errno;
        rc = err == ENOENT ? KILN_ENOTFOUND : KILN_ERROR;
        kiln_error_set("%s: cannot open the workflow: %s", path, strerror(err));
        kiln_diags_add(diags, KILN_DIAG_ERROR, 0, 0, "cannot open the workflow: %s",
                       strerror(err));
        goto cleanup;
    }
    text = malloc(cap);
    if (!text) {
        kiln_error_set("%s: out of memory", path);
        goto cleanup;
    }
    while (len < cap) {
        ssize_t got = read(fd, text + len, cap - len);
        if (got == -1 && errno == EINTR)
            continue;
        if (got == -1) {
            int err = errno;
            kiln_error_set("%s: cannot read the workflow: %s", path, strerror(err));
            kiln_diags_add(diags, KILN_DIAG_ERROR, 0, 0, "cannot read the workflow: %s",
                           strerror(err));
            goto cleanup;
        }
        if (got == 0)
            break;
        len += (size_t)got;
    }
    if (len > KILN_WF_MAX_BYTES) {
        kiln_error_set("%s: the workflow is larger than the limit of %d bytes", path,
                       KILN_WF_MAX_BYTES);
        kiln_diags_add(diags, KILN_DIAG_ERROR, 0, 0, "the workflow is larger than the limit of "
                       "%d bytes", KILN_WF_MAX_BYTES);
        rc = KILN_ETOOBIG;
        goto cleanup;
    }
    rc = kiln_pipeline_parse(out, path, text, len, diags);
cleanup:
    if (fd != -1)
        close(fd);
    free(text);
    return rc;
}

long kiln_pipeline_find_job(const kiln_workflow_t *self, const char *id)
{
    assert(self && id);
    for (size_t i = 0; i < self->n_jobs; i++)
        if (strcmp(self->jobs[i].id, id) == 0)
            return (long)i;
    return -1;
}

int kiln_pipeline_inputs(const kiln_workflow_t *self, const json_t *given, json_t **out)
{
    json_t *result = json_object();
    const char *name;
    json_t *v;
    int rc = KILN_EINVAL;
    *out = NULL;
    if (!result) {
        kiln_error_set("out of memory");
        return -1;
    }
    /* Every input given must be declared. */
    json_object_foreach((json_t *)given, name, v) {
        if (!self->inputs || !json_object_get(self->inputs, name)) {
            kiln_error_set("input '%s' is not declared under on.workflow_dispatch.inputs", name);
            goto cleanup;
        }
    }
    json_t *spec;
    json_object_foreach(self->inputs, name, spec) {
        const char *type = json_string_value(json_object_get(spec, "type"));
        json_t *value = json_object_get(given, name);
        json_t *dflt = json_object_get(spec, "default");
        const char *text = json_string_value(value);
        if (!type)
            type = "string";
        if (!text) {
            if (json_is_true(json_object_get(spec, "required")) && (!dflt || json_is_null(dflt))) {
                kiln_error_set("input '%s' is required", name);
                goto cleanup;
            }
            /* GitHub: an unset input is its default, or the empty value. */
            if (dflt && !json_is_null(dflt))
                json_object_set(result, name, dflt);
            else if (strcmp(type, "boolean") == 0)
                json_object_set_new(result, name, json_false());
            else
                json_object_set_new(result, name, json_string(""));
            continue;
        }
        if (strcmp(type, "boolean") == 0) {
            if (strcmp(text, "true") != 0 && strcmp(text, "false") != 0) {
                kiln_error_set("input '%s' is a boolean: true or false, not '%s'", name, text);
                goto cleanup;
            }
            json_object_set_new(result, name, json_boolean(strcmp(text, "true") == 0));
        } else if (strcmp(type, "number") == 0) {
            char *end = NULL;
            double d = strtod(text, &end);
            if (!end || *end || end == text || !isfinite(d)) {
                kiln_error_set("input '%s' is a number, not '%s'", name, text);
                goto cleanup;
            }
            json_object_set_new(result, name, d == (double)(json_int_t)d
                                                  ? json_integer((json_int_t)d)
                                                  : json_real(d));
        } else if (strcmp(type, "choice") == 0) {
            json_t *options = json_object_get(spec, "options");
            size_t i;
            json_t *o;
            bool ok = false;
            json_array_foreach(options, i, o) ok = ok || (json_is_string(o) &&
                                                          strcmp(json_string_value(o), text) == 0);
            if (!ok) {
                kiln_error_set("input '%s' must be one of its options, not '%s'", name, text);
                goto cleanup;
            }
            json_object_set_new(result, name, json_string(text));
        } else {
            json_object_set_new(result, name, json_string(text));
        }
    }
    *out = result;
    result = NULL;
    rc = 0;
cleanup:
    json_decref(result);
    return rc;
}
