/* yaml.c: the bounded YAML tree (see yaml.h).
 *
 * libyaml's events are fed to a stack of open collections; each node is
 * charged against KILN_YAML_MAX_NODES as it arrives, aliases at the weight
 * of what they stand for. Problems go to the caller's diagnostics; a fatal
 * one stops the build of the tree at once.
 */
#include "lang/yaml.h"

#include <yaml.h>

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"

#define S_ANCHOR_BUCKETS 256

typedef struct {
    kiln_diags_t *diags;
    bool oom;
} s_ctx_t;

__attribute__((format(printf, 4, 5))) static void s_error_at(s_ctx_t *ctx, int line, int col,
                                                             const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    kiln_diags_vadd(ctx->diags, KILN_DIAG_ERROR, line, col, fmt, ap);
    va_end(ap);
}

__attribute__((format(printf, 3, 4))) static void s_error(s_ctx_t *ctx,
                                                          const kiln_yaml_node_t *at,
                                                          const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    kiln_diags_vadd(ctx->diags, KILN_DIAG_ERROR, at ? at->line : 0, at ? at->col : 0, fmt, ap);
    va_end(ap);
}

static void s_oom(s_ctx_t *ctx)
{
    ctx->oom = true;
}

int kiln_yaml_q(const char *text)
{
    return (int)strnlen(text, KILN_YAML_QUOTE_MAX);
}

#define s_q kiln_yaml_q

static char *s_strdup(s_ctx_t *ctx, const char *text)
{
    char *copy = strdup(text);
    if (!copy)
        s_oom(ctx);
    return copy;
}

typedef struct s_anchor {
    const char *name;       /* borrowed from the node */
    kiln_yaml_node_t *node;
    struct s_anchor *next;
} s_anchor_t;

struct kiln_yaml {
    kiln_yaml_node_t *all;          /* every node, for freeing */
    kiln_yaml_node_t *root;
    kiln_yaml_node_t *stack[KILN_YAML_MAX_DEPTH];
    int depth;
    size_t n_nodes;         /* counting alias expansions */
    s_anchor_t *anchors[S_ANCHOR_BUCKETS];
    size_t n_anchors;
    int n_docs;
};

kiln_yaml_node_t *kiln_yaml_res(kiln_yaml_node_t *node)
{
    return node && node->kind == KILN_YAML_ALIAS ? node->target : node;
}

const char *kiln_yaml_kind_name(kiln_yaml_kind_t kind)
{
    switch (kind) {
    case KILN_YAML_SCALAR: return "a scalar";
    case KILN_YAML_SEQ: return "a list";
    case KILN_YAML_MAP: return "a mapping";
    default: return "an alias";
    }
}

static kiln_yaml_node_t *s_node_new(kiln_yaml_t *tree, kiln_yaml_kind_t kind, const yaml_mark_t *mark)
{
    kiln_yaml_node_t *node = calloc(1, sizeof *node);
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

static void s_tree_free(kiln_yaml_t *tree)
{
    kiln_yaml_node_t *node = tree->all;
    while (node) {
        kiln_yaml_node_t *next = node->next_alloc;
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
static int s_anchor_put(s_ctx_t *ctx, kiln_yaml_t *tree, kiln_yaml_node_t *node)
{
    if (tree->n_anchors >= KILN_YAML_MAX_ANCHORS) {
        s_error(ctx, node, "too many YAML anchors (the limit is %d)", KILN_YAML_MAX_ANCHORS);
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

static kiln_yaml_node_t *s_anchor_get(const kiln_yaml_t *tree, const char *name)
{
    for (s_anchor_t *a = tree->anchors[s_hash(name)]; a; a = a->next)
        if (strcmp(a->name, name) == 0)
            return a->node;
    return NULL;
}

/* Charges `cost` nodes against KILN_YAML_MAX_NODES. */
static int s_tree_charge(s_ctx_t *ctx, kiln_yaml_t *tree, size_t cost, const yaml_mark_t *mark)
{
    if (cost > (size_t)KILN_YAML_MAX_NODES - tree->n_nodes) {
        s_error_at(ctx, (int)mark->line + 1, (int)mark->column + 1,
                   "too many YAML nodes (alias expansion?): the limit is %d", KILN_YAML_MAX_NODES);
        return -1;
    }
    tree->n_nodes += cost;
    return 0;
}

static int s_tree_attach(s_ctx_t *ctx, kiln_yaml_t *tree, kiln_yaml_node_t *node)
{
    if (tree->depth == 0) {
        tree->root = node;
        return 0;
    }
    kiln_yaml_node_t *parent = tree->stack[tree->depth - 1];
    if (parent->n == parent->cap) {
        size_t cap = parent->cap ? parent->cap * 2 : 4;
        kiln_yaml_node_t **items = realloc(parent->items, cap * sizeof *items);
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

static int s_anchor_copy(s_ctx_t *ctx, kiln_yaml_node_t *node, const yaml_char_t *anchor)
{
    if (!anchor)
        return 0;
    node->anchor = s_strdup(ctx, (const char *)anchor);
    return node->anchor ? 0 : -1;
}

static int s_tree_scalar(s_ctx_t *ctx, kiln_yaml_t *tree, const yaml_event_t *ev)
{
    size_t len = ev->data.scalar.length;
    if (len > KILN_YAML_MAX_SCALAR) {
        s_error_at(ctx, (int)ev->start_mark.line + 1, (int)ev->start_mark.column + 1,
                   "a value of %zu bytes is longer than the limit of %d bytes", len, KILN_YAML_MAX_SCALAR);
        return -1;
    }
    if (s_tree_charge(ctx, tree, 1, &ev->start_mark) < 0)
        return -1;
    kiln_yaml_node_t *node = s_node_new(tree, KILN_YAML_SCALAR, &ev->start_mark);
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

static int s_tree_alias(s_ctx_t *ctx, kiln_yaml_t *tree, const yaml_event_t *ev)
{
    const char *name = (const char *)ev->data.alias.anchor;
    int line = (int)ev->start_mark.line + 1, col = (int)ev->start_mark.column + 1;
    /* Collections are registered when they end, so an alias inside its own
     * anchor (a recursive structure) is unknown here. */
    kiln_yaml_node_t *target = s_anchor_get(tree, name);
    if (!target) {
        s_error_at(ctx, line, col, "alias '*%.*s' refers to no complete anchor", s_q(name), name);
        return -1;
    }
    if (tree->depth + target->height > KILN_YAML_MAX_DEPTH) {
        s_error_at(ctx, line, col, "nesting deeper than %d levels", KILN_YAML_MAX_DEPTH);
        return -1;
    }
    if (s_tree_charge(ctx, tree, target->weight, &ev->start_mark) < 0)
        return -1;
    kiln_yaml_node_t *node = s_node_new(tree, KILN_YAML_ALIAS, &ev->start_mark);
    if (!node) {
        s_oom(ctx);
        return -1;
    }
    node->target = target;
    node->weight = target->weight;
    node->height = target->height;
    return s_tree_attach(ctx, tree, node);
}

static int s_tree_open(s_ctx_t *ctx, kiln_yaml_t *tree, const yaml_event_t *ev)
{
    bool is_map = ev->type == YAML_MAPPING_START_EVENT;
    if (tree->depth >= KILN_YAML_MAX_DEPTH) {
        s_error_at(ctx, (int)ev->start_mark.line + 1, (int)ev->start_mark.column + 1,
                   "nesting deeper than %d levels", KILN_YAML_MAX_DEPTH);
        return -1;
    }
    if (s_tree_charge(ctx, tree, 1, &ev->start_mark) < 0)
        return -1;
    kiln_yaml_node_t *node = s_node_new(tree, is_map ? KILN_YAML_MAP : KILN_YAML_SEQ, &ev->start_mark);
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
    kiln_yaml_node_t *key;          /* resolved */
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
static int s_check_keys(s_ctx_t *ctx, kiln_yaml_node_t *map)
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
        kiln_yaml_node_t *slot = map->items[2 * i];
        kiln_yaml_node_t *key = kiln_yaml_res(slot);
        if (key->kind != KILN_YAML_SCALAR) {
            s_error(ctx, slot, "a mapping key must be a string, not %s", kiln_yaml_kind_name(key->kind));
            slot->skip = true;
            continue;
        }
        refs[n_refs].key = key;
        refs[n_refs].pos = 2 * i;
        n_refs++;
    }
    qsort(refs, n_refs, sizeof *refs, s_key_cmp);
    for (size_t i = 1; i < n_refs; i++) {
        const kiln_yaml_node_t *a = refs[i - 1].key, *b = refs[i].key;
        if (a->len == b->len && memcmp(a->value, b->value, a->len) == 0) {
            kiln_yaml_node_t *slot = map->items[refs[i].pos];
            s_error(ctx, slot, "duplicate key '%.*s'", s_q(b->value), b->value);
            slot->skip = true;
        }
    }
    rc = 0;
cleanup:
    free(refs);
    return rc;
}

static int s_tree_close(s_ctx_t *ctx, kiln_yaml_t *tree)
{
    assert(tree->depth > 0); /* libyaml pairs start and end events */
    kiln_yaml_node_t *node = tree->stack[--tree->depth];
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
    if (node->kind == KILN_YAML_MAP && s_check_keys(ctx, node) < 0)
        return -1;
    return node->anchor ? s_anchor_put(ctx, tree, node) : 0;
}

/* Returns 1 at the end of the stream, 0 to go on, -1 on a fatal problem. */
static int s_tree_event(s_ctx_t *ctx, kiln_yaml_t *tree, const yaml_event_t *ev)
{
    switch (ev->type) {
    case YAML_STREAM_END_EVENT:
        return 1;
    case YAML_DOCUMENT_START_EVENT:
        if (++tree->n_docs > 1) {
            s_error_at(ctx, (int)ev->start_mark.line + 1, (int)ev->start_mark.column + 1,
                       "a workflow or action file holds one YAML document; this starts another");
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
static int s_tree_build(s_ctx_t *ctx, kiln_yaml_t *tree, const char *text, size_t len)
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

bool kiln_yaml_bool(const kiln_yaml_node_t *val, bool *out)
{
    static const char *yes[] = {"true", "True", "TRUE"};
    static const char *no[] = {"false", "False", "FALSE"};
    if (val->kind != KILN_YAML_SCALAR || !val->plain)
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
bool kiln_yaml_number(const kiln_yaml_node_t *val, double *out)
{
    if (val->kind != KILN_YAML_SCALAR || !val->plain || val->len == 0)
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

bool kiln_yaml_null(const kiln_yaml_node_t *node)
{
    return node->kind == KILN_YAML_SCALAR && node->plain &&
           (node->len == 0 || strcmp(node->value, "null") == 0 || strcmp(node->value, "~") == 0 ||
            strcmp(node->value, "Null") == 0 || strcmp(node->value, "NULL") == 0);
}

json_t *kiln_yaml_json(kiln_yaml_node_t *node)
{
    node = kiln_yaml_res(node);
    json_t *out = NULL;
    if (!node)
        return json_null();
    switch (node->kind) {
    case KILN_YAML_SCALAR: {
        bool b;
        double d;
        if (kiln_yaml_null(node))
            out = json_null();
        else if (kiln_yaml_bool(node, &b))
            out = json_boolean(b);
        else if (kiln_yaml_number(node, &d))
            out = (d == (double)(json_int_t)d && !strpbrk(node->value, ".eE"))
                      ? json_integer((json_int_t)d)
                      : json_real(d);
        else
            out = json_stringn(node->value, node->len);
        break;
    }
    case KILN_YAML_SEQ:
        out = json_array();
        for (size_t i = 0; out && i < node->n; i++) {
            json_t *item = kiln_yaml_json(node->items[i]);
            if (!item || json_array_append_new(out, item) != 0) {
                json_decref(out);
                out = NULL;
            }
        }
        break;
    case KILN_YAML_MAP:
        out = json_object();
        for (size_t i = 0; out && i + 1 < node->n; i += 2) {
            if (node->items[i]->skip)
                continue;
            json_t *item = kiln_yaml_json(node->items[i + 1]);
            if (!item ||
                json_object_set_new(out, kiln_yaml_res(node->items[i])->value, item) != 0) {
                json_decref(out);
                out = NULL;
            }
        }
        break;
    default:
        out = json_null();
        break;
    }
    return out;
}

kiln_yaml_node_t *kiln_yaml_get(kiln_yaml_node_t *map, const char *key, kiln_yaml_node_t **key_out)
{
    map = kiln_yaml_res(map);
    if (key_out)
        *key_out = NULL;
    if (!map || map->kind != KILN_YAML_MAP)
        return NULL;
    for (size_t i = 0; i + 1 < map->n; i += 2) {
        if (map->items[i]->skip || strcmp(kiln_yaml_res(map->items[i])->value, key) != 0)
            continue;
        if (key_out)
            *key_out = map->items[i];
        return kiln_yaml_res(map->items[i + 1]);
    }
    return NULL;
}

int kiln_yaml_parse(kiln_yaml_t **out, const char *text, size_t len, kiln_diags_t *diags)
{
    s_ctx_t ctx = {.diags = diags};
    kiln_yaml_t *tree = calloc(1, sizeof *tree);
    *out = NULL;
    if (!tree) {
        kiln_error_set("out of memory");
        return -1;
    }
    if (len > KILN_YAML_MAX_BYTES) {
        s_error_at(&ctx, 0, 0, "the file is %zu bytes; the limit is %d bytes", len,
                   KILN_YAML_MAX_BYTES);
        kiln_yaml_destroy(&tree);
        kiln_error_set("the file is larger than %d bytes", KILN_YAML_MAX_BYTES);
        return KILN_EINVAL;
    }
    int rc = s_tree_build(&ctx, tree, text, len);
    if (ctx.oom) {
        kiln_yaml_destroy(&tree);
        kiln_error_set("out of memory while reading YAML");
        return -1;
    }
    if (rc < 0) {
        kiln_yaml_destroy(&tree);
        kiln_error_set("invalid YAML");
        return KILN_EINVAL;
    }
    *out = tree;
    return 0;
}

void kiln_yaml_destroy(kiln_yaml_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    s_tree_free(*self_p);
    free(*self_p);
    *self_p = NULL;
}

kiln_yaml_node_t *kiln_yaml_root(const kiln_yaml_t *self)
{
    return self ? self->root : NULL;
}
