/* curvemem.c: the memory libzmq's CURVE code asks libsodium for, from malloc.
 *
 * libzmq 4.3 (as Debian 12 ships it) encrypts and decrypts every CURVE
 * message through a scratch buffer from sodium_allocarray(), released with
 * sodium_free(). libsodium makes each such buffer a fresh mapping with guard
 * pages: mmap, two mprotect, mlock, then munlock and munmap, and the unmap
 * shoots the page out of every core's TLB. Per message that cost about a
 * tenth of the coordinator's CPU with a thousand workers, and stalled the
 * other processes on the machine with the interrupts. The guard pages buy
 * nothing here: the same plaintext sits in an ordinary ZeroMQ message on
 * either side of the scratch buffer.
 *
 * Defining the functions in the program takes libzmq's calls (they go
 * through its PLT) and serves them from malloc, wiping the memory before it
 * is freed as sodium_free() does. Kiln itself never calls sodium_malloc: its
 * secret keys live in fixed buffers that are wiped with sodium_memzero. The
 * object is linked into every program through kiln_curvemem_active(), which
 * transport.c calls.
 */
#include "common/curvemem.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <sodium.h>

/* The size lives in front of the block, padded so the block stays aligned
 * as malloc's own. */
typedef union {
    size_t size;
    max_align_t align;
} s_header_t;

/* Blocks handed out so far, for the tests (relaxed: a count, not a lock). */
static atomic_ulong s_served;

void *sodium_malloc(size_t size)
{
    if (size > SIZE_MAX - sizeof(s_header_t)) {
        errno = ENOMEM;
        return NULL;
    }
    s_header_t *h = malloc(sizeof *h + size);
    if (!h)
        return NULL;
    h->size = size;
    atomic_fetch_add_explicit(&s_served, 1, memory_order_relaxed);
    return h + 1;
}

void *sodium_allocarray(size_t count, size_t size)
{
    if (size && count > SIZE_MAX / size) {
        errno = ENOMEM;
        return NULL;
    }
    return sodium_malloc(count * size);
}

void sodium_free(void *ptr)
{
    if (!ptr)
        return;
    s_header_t *h = (s_header_t *)ptr - 1;
    sodium_memzero(ptr, h->size);
    free(h);
}

bool kiln_curvemem_active(void)
{
    /* What libzmq's call resolves to: ours unless something loaded earlier
     * defines it too. */
    return dlsym(RTLD_DEFAULT, "sodium_allocarray") == (void *)sodium_allocarray;
}

unsigned long kiln_curvemem_served(void)
{
    return atomic_load_explicit(&s_served, memory_order_relaxed);
}
