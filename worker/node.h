/* node.h: the Node.js that runs JavaScript actions' steps on this worker.
 *
 * Found once when the worker starts (the --node path, or `node` on the
 * worker's PATH) and asked its version, so that a step needing a newer
 * Node.js than the worker has, or any when it has none, fails at once
 * with a message naming the action and what the worker has.
 */
#ifndef KILN_NODE_H
#define KILN_NODE_H

#include <limits.h>

typedef struct {
    char path[PATH_MAX]; /* "" when there is none */
    char version[32];    /* as `node --version` printed it: "v20.20.2" */
    int major;           /* 20; 0 when there is none */
    char why[400];       /* when there is none: why, for the steps' message */
} kiln_node_t;

/* Fills out; configured is --node (NULL or "": `node` on PATH). Returns 0
 * when a Node.js was found, -1 with out->why otherwise (not an error for
 * the worker: only JavaScript actions need it). */
int kiln_node_probe(kiln_node_t *out, const char *configured);

/* The Node.js major a runs.using names (node12 -> 12), or 0. */
int kiln_node_using_major(const char *using);

#endif
