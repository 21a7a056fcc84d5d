/*
 * clock.c - owns time: the kernel's clocks, and the cheap real-time clock
 * every published message is stamped with.
 *
 * On the virtual machines we build on, clock_gettime(CLOCK_REALTIME) costs
 * 30-50 ns (kvm-clock), as much as the rest of a 64-byte publish. Where the
 * time-stamp counter is invariant (constant rate, not stopped in sleep
 * states), a thread reads the kernel's clock once per RESYNC_NS and
 * extrapolates between with the counter's measured rate: one rdtsc, one
 * multiplication. Re-anchoring every few milliseconds follows NTP and
 * clock steps; a thread's stamps never go backwards.
 */
#include "clock.h"

#include "now.h"
#include <pthread.h>
#include <stdbool.h>

#if defined(__x86_64__)
#include <cpuid.h>
#include <x86intrin.h>
#define HAVE_TSC 1
/* 64 x 64 -> 128-bit products for the fixed-point rate. */
__extension__ typedef unsigned __int128 u128;
#endif

/* How long a thread extrapolates before it asks the kernel again. */
#define RESYNC_NS 4000000ll
/* The shortest baseline the counter's rate is measured over. */
#define RATE_MIN_NS 2000000ll
/* A kernel clock read that takes longer than this was interrupted: it
 * anchors, but does not measure the rate (ticks: before the rate is known,
 * about 2 us at 5 GHz). */
#define SAMPLE_MAX_NS 2000
#define SAMPLE_MAX_TICKS 10000

int64_t monotonic_ns(void)
{
	return now_mono_ns();
}

int64_t deadline_after(int64_t timeout_ns)
{
	int64_t now = monotonic_ns();
	return timeout_ns < 0 || timeout_ns > INT64_MAX - now ? INT64_MAX : now + timeout_ns;
}

int64_t realtime_ns(void)
{
	return now_real_ns();
}

#ifdef HAVE_TSC

static pthread_once_t tsc_once = PTHREAD_ONCE_INIT;
static bool tsc_ok;

static void tsc_probe(void)
{
	unsigned a, b, c, d;
	/* CPUID 0x80000007 EDX bit 8: invariant TSC. */
	tsc_ok = __get_cpuid(0x80000007, &a, &b, &c, &d) && (d & (1u << 8));
}

/* A thread's anchor: realtime `ns` at counter value `tsc`, and the
 * counter's rate in ns per tick as a 32.32 fixed-point number (0: not
 * measured yet). */
struct tsc_clock {
	uint64_t tsc, rate_tsc;
	int64_t ns, rate_ns, last;
	uint64_t mult, resync_ticks;
};

static __thread struct tsc_clock tclock;

/* Read the kernel's clock between two counter reads; anchor there and,
 * once the baseline is long enough, re-measure the counter's rate over it.
 * A read that took long (the thread was preempted in between) anchors at
 * its end but measures nothing. */
static int64_t tsc_resync(struct tsc_clock *c)
{
	uint64_t t0 = __rdtsc();
	int64_t ns = realtime_ns();
	uint64_t t1 = __rdtsc();
	bool tight = c->mult ? ((u128)(t1 - t0) * c->mult >> 32) < SAMPLE_MAX_NS
			     : t1 - t0 < SAMPLE_MAX_TICKS;
	uint64_t t = tight ? t0 + ((t1 - t0) >> 1) : t1;

	if (!c->rate_tsc || t <= c->rate_tsc || ns < c->rate_ns) {
		/* First call, or the clock was stepped back: measure anew. */
		c->rate_tsc = tight ? t : 0;
		c->rate_ns = ns;
		c->mult = 0;
	} else if (tight && ns - c->rate_ns >= RATE_MIN_NS) {
		c->mult = (uint64_t)(((u128)(uint64_t)(ns - c->rate_ns) << 32) /
				     (t - c->rate_tsc));
		c->resync_ticks = c->mult ? (uint64_t)(((u128)RESYNC_NS << 32) / c->mult)
					  : 0;
		c->rate_tsc = t;
		c->rate_ns = ns;
	}
	c->tsc = t;
	c->ns = ns;
	return ns;
}

int64_t stamp_ns(void)
{
	pthread_once(&tsc_once, tsc_probe);
	if (!tsc_ok)
		return realtime_ns();
	struct tsc_clock *c = &tclock;
	uint64_t dt = __rdtsc() - c->tsc;
	int64_t ns;
	if (c->mult && dt < c->resync_ticks)
		ns = c->ns + (int64_t)(((u128)dt * c->mult) >> 32);
	else
		ns = tsc_resync(c);
	/* Re-anchoring may land below what was extrapolated: hold still
	 * rather than go back. */
	if (ns < c->last)
		ns = c->last;
	c->last = ns;
	return ns;
}

#else

int64_t stamp_ns(void)
{
	return realtime_ns();
}

#endif
