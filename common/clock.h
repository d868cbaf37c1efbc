/* clock.h: the two clocks Kiln uses. Monotonic time drives timers, leases
 * and timeouts (immune to wall-clock jumps); wall time is what history rows
 * and users see. Both in milliseconds. */
#ifndef KILN_CLOCK_H
#define KILN_CLOCK_H

#include <stdint.h>

int64_t kiln_clock_mono_ms(void);
int64_t kiln_clock_wall_ms(void);
/* Microsecond monotonic time for latency measurements. */
int64_t kiln_clock_mono_us(void);

#endif
