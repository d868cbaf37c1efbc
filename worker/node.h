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
#include <stdbool.h>

typedef struct {
    char path[PATH_MAX]; /* "" when there is none */
    char version[32];    /* as `node --version` printed it: "v20.20.2" */
    int major;           /* 20; 0 when there is none */
    char why[400];       /* when there is none: why, for the steps' message */
    /* The same Node.js as a container's steps start it: the host's /usr
     * mounted read only at KILN_NODE_HOST, the program run through the
     * host's own dynamic loader on the host's libraries, so it runs in any
     * image (GitHub mounts its runner's Node.js likewise). contained is
     * false when the program or its loader is not under /usr. */
    bool contained;
    char contained_loader[PATH_MAX + 16];
    char contained_node[PATH_MAX + 16];
    char contained_libs[PATH_MAX * 2 + 32];
} kiln_node_t;

#define KILN_NODE_HOST "/__kiln/host"

/* Fills out; configured is --node (NULL or "": `node` on PATH). Returns 0
 * when a Node.js was found, -1 with out->why otherwise (not an error for
 * the worker: only JavaScript actions need it). */
int kiln_node_probe(kiln_node_t *out, const char *configured);

/* The Node.js major a runs.using names (node12 -> 12), or 0. */
int kiln_node_using_major(const char *using);

#endif
