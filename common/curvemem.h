/* curvemem.h: libzmq's CURVE scratch buffers served from malloc (see
 * curvemem.c for why). */
#ifndef KILN_CURVEMEM_H
#define KILN_CURVEMEM_H

#include <stdbool.h>

/* Whether the process's sodium_allocarray is this module's, i.e. libzmq's
 * CURVE buffers come from malloc rather than from guarded mappings. */
bool kiln_curvemem_active(void);
/* Blocks this module has handed out since the process started. */
unsigned long kiln_curvemem_served(void);

#endif
