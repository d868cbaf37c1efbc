/* layers.h: image layers applied into a root file system, for the native
 * container runtime.
 *
 * A layer is a tar archive (plain, gzip or zstd) from a registry: it is
 * verified by digest before it gets here, but its paths are still treated
 * as hostile. Every path is resolved inside the root being built (openat2
 * RESOLVE_IN_ROOT), so a symbolic link in one layer (etc -> /etc) can never
 * lead a later entry out of it; ".." components are refused. Whiteouts
 * follow the OCI image spec: ".wh.NAME" removes NAME from the layers below,
 * ".wh..wh..opq" empties its directory of what the layers below put there.
 * A file a layer replaces is unlinked first, so a root built on a hard-link
 * copy of its parent's (kiln_layers_link_copy) never changes the parent.
 */
#ifndef KILN_LAYERS_H
#define KILN_LAYERS_H

#include <stddef.h>
#include <stdint.h>

/* Applies the layer archive at layer onto the tree at root, its regular
 * files' bytes at most max_bytes (0: no bound; a layer is a few megabytes
 * compressed and may expand a thousandfold, so a bomb is refused here
 * rather than by a full disk). bytes: what it wrote. 0, or -1 with why
 * (naming the entry). */
int kiln_layers_apply(const char *root, const char *layer, uint64_t max_bytes, uint64_t *bytes,
                      char *why, size_t cap);

/* Makes dst (which must not exist) a copy of the tree src whose regular
 * files are hard links to src's, directories, links and special files its
 * own. 0, or -1 with why. */
int kiln_layers_link_copy(const char *src, const char *dst, char *why, size_t cap);

#endif
