/*
 * wait.h - the one way every wait of the library sleeps: a subscriber's
 * wait, a wait set, a topic watch and the event-loop descriptors' threads
 * all hand wait_sources() a list of things that can become ready, each
 * with the futex word it sleeps on, plus an interrupt word of their own.
 *
 * The protocol for each source: check ready; announce the sleep (for a
 * topic: set its SLEEPING bit, so publishers make the wake-up call); check
 * ready again with a seq_cst load (the announcement and this check pair
 * with the publisher's commit and its load of the bit: one of the two sees
 * the other); then sleep on every word at once (futex_waitv), or, on
 * kernels without it, on one word in bounded slices.
 */
#ifndef SHMBUS_WAIT_H
#define SHMBUS_WAIT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct wait_src {
	void *obj;
	/* Whether obj has something now (order: acquire, or seq_cst after
	 * the announcement). */
	bool (*ready)(void *obj, memory_order order);
	/* Before sleeping: make progress that needs no message (a stalled
	 * sequence number's timeout); true if obj became ready. May be NULL. */
	bool (*poll)(void *obj);
	/* Announce the sleep; return the word to sleep on and its value. */
	_Atomic uint32_t *(*announce)(void *obj, uint32_t *value);
	/* Longest sleep obj allows before poll must run again (ns), < 0: no
	 * limit. May be NULL. */
	int64_t (*nap)(void *obj);
	/* Told when the caller starts and stops sleeping (for `shmbus info`).
	 * May be NULL. */
	void (*sleeping)(void *obj, bool on);
};

/* An interrupt word: shmbus_*_interrupt() moves `requested` on; a wait
 * returns SHMBUS_EINTR once for each move it has not seen. */
struct wait_intr {
	_Atomic uint32_t requested;
	uint32_t seen; /* the waiting thread's own */
};

/* Async-signal-safe: an atomic add and a futex wake. */
void wait_intr_raise(struct wait_intr *in);

/* Block until a source is ready (SHMBUS_OK, *which = its index, or -1 when
 * only `extra` changed), the interrupt moved (SHMBUS_EINTR), or the timeout
 * (SHMBUS_ETIMEDOUT). extra (may be NULL): one more word to sleep on while
 * it holds extra_value; a change ends the wait with SHMBUS_OK and *which
 * -1. spin_ns > 0: spin that long first (one source only). */
int wait_sources(const struct wait_src *src, size_t n, struct wait_intr *intr,
		 _Atomic uint32_t *extra, uint32_t extra_value, int64_t timeout_ns,
		 int64_t spin_ns, int *which);

/* Whether futex_waitv is used (false on kernels before 5.16, or when
 * SHMBUS_NO_FUTEX_WAITV=1 is set, so the fallback can be tested). */
bool wait_have_waitv(void);

#endif /* SHMBUS_WAIT_H */
