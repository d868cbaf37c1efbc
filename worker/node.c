/* node.c: finding the worker's Node.js and its version (see node.h). The
 * version is asked once, at the worker's start, with the program itself:
 * its path says nothing of what it is. */
#include "worker/node.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdint.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/fs.h"

extern char **environ;


/* The program's ELF interpreter (PT_INTERP) into out, or "" (static). */
static void s_interp(const char *path, char *out, size_t cap)
{
    out[0] = '\0';
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    Elf64_Ehdr eh;
    if (fd < 0)
        return;
    if (read(fd, &eh, sizeof eh) == (ssize_t)sizeof eh && memcmp(eh.e_ident, ELFMAG, SELFMAG) == 0 &&
        eh.e_ident[EI_CLASS] == ELFCLASS64) {
        for (unsigned i = 0; i < eh.e_phnum; i++) {
            Elf64_Phdr ph;
            if (pread(fd, &ph, sizeof ph, (off_t)(eh.e_phoff + (uint64_t)i * eh.e_phentsize)) !=
                (ssize_t)sizeof ph)
                break;
            if (ph.p_type != PT_INTERP || ph.p_filesz == 0 || ph.p_filesz >= cap)
                continue;
            if (pread(fd, out, ph.p_filesz, (off_t)ph.p_offset) != (ssize_t)ph.p_filesz)
                out[0] = '\0';
            else
                out[ph.p_filesz - 1] = '\0';
            break;
        }
    }
    close(fd);
}

static void s_contained(kiln_node_t *n)
{
    char real[PATH_MAX], interp[PATH_MAX], loader[PATH_MAX];
    n->contained = false;
    s_interp(n->path, interp, sizeof interp);
    if (!realpath(n->path, real) || !interp[0] || !realpath(interp, loader) ||
        strncmp(real, "/usr/", 5) != 0 || strncmp(loader, "/usr/", 5) != 0)
        return;
    /* The loader's directory is the host's own library directory (Debian:
     * /usr/lib/x86_64-linux-gnu), then /usr/lib. */
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", loader);
    *strrchr(dir, '/') = '\0';
    snprintf(n->contained_loader, sizeof n->contained_loader, KILN_NODE_HOST "%s", loader);
    snprintf(n->contained_node, sizeof n->contained_node, KILN_NODE_HOST "%s", real);
    snprintf(n->contained_libs, sizeof n->contained_libs,
             KILN_NODE_HOST "%s:" KILN_NODE_HOST "/usr/lib", dir);
    n->contained = true;
}

int kiln_node_probe(kiln_node_t *out, const char *configured)
{
    int rc = -1, fds[2] = {-1, -1};
    pid_t pid = -1;
    posix_spawn_file_actions_t fa;
    bool fa_made = false;
    memset(out, 0, sizeof *out);
    const char *want = configured && configured[0] ? configured : "node";
    char path[PATH_MAX];
    if (kiln_fs_find_program(want, path, sizeof path) != 0) {
        snprintf(out->why, sizeof out->why,
                 configured && configured[0]
                     ? "--node %.200s is not an executable program"
                     : "there is no 'node' on this worker's PATH (install Debian's nodejs, or "
                       "start kiln-worker with --node PATH)%.0s",
                 want);
        return -1;
    }
    if (pipe2(fds, O_CLOEXEC) != 0 || posix_spawn_file_actions_init(&fa) != 0) {
        snprintf(out->why, sizeof out->why, "cannot ask %.200s its version: %s", path,
                 strerror(errno));
        goto cleanup;
    }
    fa_made = true;
    posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO);
    posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    char *argv[] = {path, "--version", NULL};
    int e = posix_spawn(&pid, path, &fa, NULL, argv, environ);
    close(fds[1]);
    fds[1] = -1;
    if (e != 0) {
        pid = -1;
        snprintf(out->why, sizeof out->why, "cannot run %.200s: %s", path, strerror(e));
        goto cleanup;
    }
    char text[64];
    size_t got = 0;
    for (;;) {
        ssize_t n = read(fds[0], text + got, sizeof text - 1 - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
        if (got == sizeof text - 1)
            break;
    }
    text[got] = '\0';
    text[strcspn(text, "\r\n")] = '\0';
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    pid = -1;
    int major = text[0] == 'v' ? atoi(text + 1) : 0;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || major <= 0) {
        snprintf(out->why, sizeof out->why, "%.200s --version printed '%.40s': not a Node.js",
                 path, text);
        goto cleanup;
    }
    snprintf(out->path, sizeof out->path, "%s", path);
    snprintf(out->version, sizeof out->version, "%s", text);
    out->major = major;
    s_contained(out);
    rc = 0;
cleanup:
    if (fa_made)
        posix_spawn_file_actions_destroy(&fa);
    if (fds[0] >= 0)
        close(fds[0]);
    if (fds[1] >= 0)
        close(fds[1]);
    if (pid > 0)
        waitpid(pid, NULL, 0);
    return rc;
}

int kiln_node_using_major(const char *using)
{
    static const struct {
        const char *name;
        int major;
    } known[] = {{"node12", 12}, {"node16", 16}, {"node20", 20}, {"node24", 24}};
    for (size_t i = 0; using && i < sizeof known / sizeof known[0]; i++)
        if (strcmp(using, known[i].name) == 0)
            return known[i].major;
    return 0;
}
