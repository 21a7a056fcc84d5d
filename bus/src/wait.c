/*
 * wait.c - owns sleeping: the one wait loop behind every blocking call
 * (see wait.h for the protocol), interrupts, and the fallback for kernels
 * without futex_waitv.
 */
#include "wait.h"

#include <pthread.h>
#include <stdlib.h>

#include "futex.h"
#include "shmbus/shmbus.h"

/* Words one sleep may watch: every wait-set member, the interrupt word and
 * one extra word. */
#define WAIT_MAX_WORDS (SHMBUS_WAITSET_MAX + 2)

static pthread_once_t waitv_once = PTHREAD_ONCE_INIT;
static bool waitv_ok;

static void waitv_probe(void)
{
	const char *off = getenv("SHMBUS_NO_FUTEX_WAITV");
	waitv_ok = !(off && off[0] == '1') && futex_waitv_supported();
}

bool wait_have_waitv(void)
{
	pthread_once(&waitv_once, waitv_probe);
	return waitv_ok;
}

void wait_intr_raise(struct wait_intr *in)
{
	/* seq_cst: the new value is in place before the wake, and a waiter
	 * that compared the old value in futex_waitv either sees this value
	 * (its call returns at once) or is woken. */
	atomic_fetch_add_explicit(&in->requested, 1, memory_order_seq_cst);
	futex_wake_all_shared(&in->requested);
}

/* Consume an interrupt the waiting thread has not seen yet. */
static bool intr_take(struct wait_intr *in)
{
	if (!in)
		return false;
	/* Acquire: pairs with the raise's add (nothing else is published
	 * with it, but the raise happens-before the EINTR it causes). */
	uint32_t r = atomic_load_explicit(&in->requested, memory_order_acquire);
	if (r == in->seen)
		return false;
	in->seen = r;
	return true;
}

static int first_ready(const struct wait_src *src, size_t n, memory_order order)
{
	for (size_t i = 0; i < n; i++)
		if (src[i].ready(src[i].obj, order))
			return (int)i;
	return -1;
}

static void spin_pause(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

/* Spin on one source for up to spin_ns: true if it became ready. */
static bool spin_on(const struct wait_src *s, int64_t spin_ns, int64_t deadline)
{
	int64_t end = monotonic_ns() + spin_ns;
	if (end > deadline)
		end = deadline;
	for (uint32_t i = 1;; i++) {
		if (s->ready(s->obj, memory_order_acquire))
			return true;
		spin_pause();
		if ((i & 63) == 0 && monotonic_ns() >= end)
			return false;
	}
}

/* One sleep on m words. Without futex_waitv: on the first word only, in
 * slices short enough that the others (and the interrupt word) are looked
 * at again soon: a bounded polling sleep, for old kernels only. */
static int sleep_on(_Atomic uint32_t **words, const uint32_t *vals, size_t m, size_t topics,
		    int64_t sleep_ns)
{
	if (wait_have_waitv())
		return futex_waitv_shared(words, vals, m, sleep_ns);
	int64_t slice = topics > 1 ? 1000000 : 50000000;
	if (sleep_ns < 0 || sleep_ns > slice)
		sleep_ns = slice;
	for (size_t i = 1; i < m; i++)
		/* Relaxed: a hint to skip the nap; the caller re-checks. */
		if (atomic_load_explicit(words[i], memory_order_relaxed) != vals[i])
			return 0;
	return futex_wait_shared(words[0], vals[0], sleep_ns);
}

int wait_sources(const struct wait_src *src, size_t n, struct wait_intr *intr,
		 _Atomic uint32_t *extra, uint32_t extra_value, int64_t timeout_ns,
		 int64_t spin_ns, int *which)
{
	_Atomic uint32_t *words[WAIT_MAX_WORDS];
	uint32_t vals[WAIT_MAX_WORDS];
	int64_t deadline = timeout_ns < 0 ? INT64_MAX : monotonic_ns() + timeout_ns;
	bool spun = spin_ns <= 0 || n != 1 || timeout_ns == 0;

	*which = -1;
	if (n > SHMBUS_WAITSET_MAX)
		return SHMBUS_EINVAL;
	for (;;) {
		if (intr_take(intr))
			return SHMBUS_EINTR;
		int k = first_ready(src, n, memory_order_acquire);
		/* Relaxed: the extra word is a private wake-up reason. */
		if (k < 0 && extra && atomic_load_explicit(extra, memory_order_relaxed) != extra_value)
			return SHMBUS_OK;
		if (k < 0 && !spun) {
			spun = true;
			if (spin_on(&src[0], spin_ns, deadline))
				k = 0;
		}
		int64_t nap = -1;
		for (size_t i = 0; k < 0 && i < n; i++) {
			if (src[i].poll && src[i].poll(src[i].obj))
				k = (int)i;
			int64_t t = src[i].nap ? src[i].nap(src[i].obj) : -1;
			if (t >= 0 && (nap < 0 || t < nap))
				nap = t;
		}
		if (k >= 0) {
			*which = k;
			return SHMBUS_OK;
		}
		int64_t now = monotonic_ns();
		if (now >= deadline)
			return SHMBUS_ETIMEDOUT;
		size_t m = 0;
		for (size_t i = 0; i < n; i++) {
			words[m] = src[i].announce(src[i].obj, &vals[m]);
			m++;
		}
		if (extra) {
			words[m] = extra;
			vals[m++] = extra_value;
		}
		if (intr) {
			words[m] = &intr->requested;
			vals[m++] = intr->seen;
		}
		/* seq_cst: after the announcements (see wait.h). */
		k = first_ready(src, n, memory_order_seq_cst);
		if (k >= 0) {
			*which = k;
			return SHMBUS_OK;
		}
		int64_t sleep = deadline == INT64_MAX ? -1 : deadline - now;
		if (nap >= 0 && (sleep < 0 || sleep > nap))
			sleep = nap;
		for (size_t i = 0; i < n; i++)
			if (src[i].sleeping)
				src[i].sleeping(src[i].obj, true);
		int rc = sleep_on(words, vals, m, n, sleep);
		for (size_t i = 0; i < n; i++)
			if (src[i].sleeping)
				src[i].sleeping(src[i].obj, false);
		if (rc < 0 && rc != SHMBUS_ETIMEDOUT)
			return rc;
		/* Woken, timed out or a nap's end: look again (the deadline is
		 * checked after the sources, so a message that arrived at the
		 * last moment is still taken). */
	}
}
