/* archive.h: tar + zstd archives of directory trees, packed and unpacked
 * with libarchive, for caches and artifacts.
 *
 * An archive comes from a job (a cache saved by one job is restored into
 * another's workspace) or from a peer, so unpacking trusts nothing in it:
 * a path that is absolute or climbs with "..", a symbolic or hard link
 * that leads out of the target, a device, FIFO or socket, a setuid,
 * setgid or sticky bit, and more entries, bytes or expansion than the
 * limits allow are each refused, naming the entry. The archive is
 * unpacked into a staging directory beside the target and renamed into
 * place only when every entry passed, so a refused archive leaves nothing
 * behind and never writes outside the staging directory.
 *
 * Built as its own library (kiln_archive): only the programs that move
 * caches and artifacts link libarchive.
 */
#ifndef KILN_ARCHIVE_H
#define KILN_ARCHIVE_H

#include <stddef.h>
#include <stdint.h>

/* Bounds on what unpacking an archive may produce; 0 takes the default. */
typedef struct {
    uint64_t max_entries; /* default 1,000,000 */
    uint64_t max_bytes;   /* regular files' bytes, default 16 GiB */
    uint64_t max_ratio;   /* unpacked bytes per archive byte, default 2000 */
} kiln_archive_limits_t;

#define KILN_ARCHIVE_MAX_ENTRIES_DEFAULT 1000000u
#define KILN_ARCHIVE_MAX_BYTES_DEFAULT (16ull << 30)
#define KILN_ARCHIVE_MAX_RATIO_DEFAULT 2000u

typedef struct {
    uint64_t entries;       /* files, directories and links */
    uint64_t bytes;         /* regular files' contents */
    uint64_t archive_bytes; /* the archive file's size */
} kiln_archive_stats_t;

/* Packs the trees under root named by paths (relative to root, without
 * ".."; a directory brings everything under it, links are kept as links)
 * into a tar + zstd file at out (written beside it, then renamed), at
 * zstd level (1-19; 0: 3). Returns 0, or -1 (KILN_EINVAL for a bad path)
 * with the message set. */
int kiln_archive_pack(const char *root, const char *const *paths, size_t n_paths,
                      const char *out, int level, kiln_archive_stats_t *stats);

/* One tree to pack: the file or directory at path (absolute), as the
 * entry name (relative, no "..") and everything under it. */
typedef struct {
    const char *path, *name;
} kiln_archive_item_t;

/* As kiln_archive_pack, for trees from anywhere under names of their own
 * (a cache's paths, named by where they are restored to). */
int kiln_archive_pack_items(const kiln_archive_item_t *items, size_t n_items, const char *out,
                            int level, kiln_archive_stats_t *stats);

/* Unpacks the archive file at path into dest, which must not exist (its
 * parent must). Returns 0; KILN_EINVAL for an archive refused (the
 * message names the entry and why; nothing is left); -1 for another
 * failure. */
int kiln_archive_unpack(const char *path, const char *dest, const kiln_archive_limits_t *limits,
                        kiln_archive_stats_t *stats);

#endif
