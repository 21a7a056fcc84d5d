/*
 * clock.h - time for the bus: the kernel's monotonic and real-time clocks,
 * and a cheap real-time clock for stamping every message.
 */
#ifndef SHMBUS_CLOCK_H
#define SHMBUS_CLOCK_H

#include <stdint.h>

/* CLOCK_MONOTONIC / CLOCK_REALTIME in ns (vDSO calls). */
int64_t monotonic_ns(void);
int64_t realtime_ns(void);
/* The monotonic time timeout_ns from now; INT64_MAX for a negative (no)
 * timeout or one too far to add. */
int64_t deadline_after(int64_t timeout_ns);

/* CLOCK_REALTIME in ns, for publish times: from the CPU's time-stamp
 * counter where it is invariant, tied back to the kernel's clock every few
 * milliseconds (within about a microsecond of realtime_ns(), never
 * decreasing in a thread); realtime_ns() elsewhere. */
int64_t stamp_ns(void);

#endif /* SHMBUS_CLOCK_H */
