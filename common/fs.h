/* fs.h: file-system helpers every program needs.
 *
 * The worker empties and removes job trees, the CLI removes a throwaway
 * farm's data directory, tests remove their scratch directories. One
 * implementation serves them all, so the CLI need not link the worker's
 * library for it.
 */
#ifndef KILN_FS_H
#define KILN_FS_H

/* Removes whatever is at path, a directory tree included (like rm -rf,
 * without following links; directories a step left without write
 * permission are opened up first). A missing path is not an error. Returns
 * 0, or -1 with the message set naming the path. */
int kiln_fs_rmtree(const char *path);

#endif
