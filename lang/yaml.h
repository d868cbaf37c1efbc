/* yaml.h: a YAML document read into a small bounded tree.
 *
 * libyaml's own document loader has no limits, so workflows, action files
 * and called workflows are read through its event stream into this tree
 * instead: every node is counted as it arrives, an alias is charged the size
 * of the subtree it stands for (a "billion laughs" document is refused after
 * a handful of events, not after expanding), nesting and each scalar's size
 * are bounded, one document per file, and duplicate or non-scalar mapping
 * keys are reported once per mapping and marked `skip`.
 *
 * The tree is plain data that callers walk: a mapping's items alternate key
 * and value; an alias node points at its target (kiln_yaml_res resolves
 * it). It belongs to the kiln_yaml_t and lives until kiln_yaml_destroy.
 */
#ifndef KILN_YAML_H
#define KILN_YAML_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "lang/diag.h"

#define KILN_YAML_MAX_BYTES (1024 * 1024)
#define KILN_YAML_MAX_DEPTH 64
#define KILN_YAML_MAX_NODES 100000   /* alias expansions count */
#define KILN_YAML_MAX_SCALAR (256 * 1024)
#define KILN_YAML_MAX_ANCHORS 1000
/* A message quotes at most this many bytes of any user-supplied text. */
#define KILN_YAML_QUOTE_MAX 80

typedef enum { KILN_YAML_SCALAR, KILN_YAML_SEQ, KILN_YAML_MAP, KILN_YAML_ALIAS } kiln_yaml_kind_t;

typedef struct kiln_yaml_node {
    kiln_yaml_kind_t kind;
    int line, col;          /* 1-based start */
    char *value;            /* scalar text, NUL-terminated */
    size_t len;
    bool plain;             /* untagged plain scalar: may be a bool, number or null */
    struct kiln_yaml_node **items; /* sequence items; mapping keys and values alternate */
    size_t n, cap;
    struct kiln_yaml_node *target; /* alias: the anchored node */
    char *anchor;           /* anchor name, registered when the node is complete */
    size_t weight;          /* nodes this stands for with aliases expanded */
    int height;             /* collection levels within (scalar: 0) */
    bool skip;              /* as a mapping key: duplicate or not a scalar */
    struct kiln_yaml_node *next_alloc;
} kiln_yaml_node_t;

typedef struct kiln_yaml kiln_yaml_t;

/* Reads text (len bytes, need not be NUL-terminated). Problems go to diags
 * (duplicate keys are errors that do not stop the tree). Returns 0 and the
 * tree; KILN_EINVAL after a fatal problem (syntax, a limit), with the tree
 * NULL; -1 when out of memory. */
int kiln_yaml_parse(kiln_yaml_t **out, const char *text, size_t len, kiln_diags_t *diags);
void kiln_yaml_destroy(kiln_yaml_t **self_p);
/* The document's root node (NULL for an empty stream). Borrowed. */
kiln_yaml_node_t *kiln_yaml_root(const kiln_yaml_t *self);

/* An alias's target, any other node itself. */
kiln_yaml_node_t *kiln_yaml_res(kiln_yaml_node_t *node);
/* "a scalar", "a list", "a mapping". */
const char *kiln_yaml_kind_name(kiln_yaml_kind_t kind);
/* Length to print of user text in a message ("%.*s"), so one long key
 * cannot push the rest of the message out. */
int kiln_yaml_q(const char *text);
/* A plain true/false (any YAML 1.1 case form GitHub accepts). */
bool kiln_yaml_bool(const kiln_yaml_node_t *node, bool *out);
/* A plain decimal number (no hex, octal, .inf or .nan). */
bool kiln_yaml_number(const kiln_yaml_node_t *node, double *out);
/* Whether a plain scalar is YAML's null ("", ~, null, Null). */
bool kiln_yaml_null(const kiln_yaml_node_t *node);
/* The value as JSON: plain scalars become booleans, numbers or null where
 * YAML reads them so, anything quoted stays a string; aliases expanded,
 * skipped keys left out. NULL when out of memory. */
json_t *kiln_yaml_json(kiln_yaml_node_t *node);
/* The value of key in mapping `map` (resolved), or NULL; *key_out (may be
 * NULL) gets the key's node, for positions. */
kiln_yaml_node_t *kiln_yaml_get(kiln_yaml_node_t *map, const char *key,
                                kiln_yaml_node_t **key_out);

#endif
