/*
 * futex.h - the few futex calls the bus needs, on shared (not private)
 * futex words, since waiters and wakers live in different processes.
 */
#ifndef SHMBUS_FUTEX_H
#define SHMBUS_FUTEX_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "clock.h"

/* Sleep while *word == expected, at most timeout_ns (< 0: forever).
 * 0 when woken (or the word had changed), SHMBUS_ETIMEDOUT, or
 * SHMBUS_ESYS. Spurious wake-ups return 0: callers re-check. */
int futex_wait_shared(_Atomic uint32_t *word, uint32_t expected, int64_t timeout_ns);

void futex_wake_all_shared(_Atomic uint32_t *word);

/* Sleep on several words at once (futex_waitv, Linux >= 5.16): 0 when one
 * was woken or differed, SHMBUS_ETIMEDOUT, SHMBUS_ENOTSUP if the kernel
 * lacks futex_waitv, SHMBUS_ESYS. At most 128 words. */
int futex_waitv_shared(_Atomic uint32_t *const *words, const uint32_t *expected, size_t n,
		       int64_t timeout_ns);

/* Whether this kernel has futex_waitv. */
int futex_waitv_supported(void);

#endif /* SHMBUS_FUTEX_H */
