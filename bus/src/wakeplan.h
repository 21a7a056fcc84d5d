/*
 * wakeplan.h - meeting a periodic stream awake. A subscriber with
 * SHMBUS_SPIN_AUTO whose messages come rarely (a 1 kHz IMU) sleeps between
 * them, and a sleeping thread is woken through the kernel: on the VMs we
 * build on that costs the message about 100 us. When the messages' publish
 * stamps say they come at a steady period, the wait instead sleeps on a
 * timeout that ends just before the next one is due, having learned how
 * late such a timeout ends, and spins from there for a short window. The
 * wake-up still happens, but before the message, not after it. A message
 * that comes early still wakes the sleeper as before; one that is not there
 * by the window's end is waited for as before.
 *
 * Pure bookkeeping on numbers it is given (stamps and times in the
 * publish-stamp clock, stamp_ns()), so tests drive it without a clock.
 * Stamps are whatever publishers wrote: any int64_t, in any order, must
 * give a sane answer (at worst no plan) and no overflow.
 */
#ifndef SHMBUS_WAKEPLAN_H
#define SHMBUS_WAKEPLAN_H

#include <stdbool.h>
#include <stdint.h>

/* Intervals in a row within tolerance of the period before a plan is
 * made. */
#define WAKE_PLAN_REGULAR 4
/* Periods shorter than this are not planned: a timed sleep on these VMs
 * ends about 100 us late, and the spin budget covers fast streams. */
#define WAKE_PLAN_MIN_PERIOD_NS 200000ll
/* Longer periods are not planned: sleeping through them costs nothing
 * worth a plan, and it bounds every sum made of stamps. */
#define WAKE_PLAN_MAX_PERIOD_NS 10000000000ll
/* The spin window on each side of the due time: this plus period/128
 * (18 us at 1 kHz), at most WAKE_PLAN_MAX_WINDOW_NS. Wider windows bought
 * little on our VMs, whose timed sleeps end 80-140 us late (BENCHMARKS.md,
 * "Where the misses come from"). */
#define WAKE_PLAN_WINDOW_NS 10000ll
#define WAKE_PLAN_MAX_WINDOW_NS 1000000ll
/* Timed sleeps that end later than this are not planned around. */
#define WAKE_PLAN_MAX_LATE_NS 1000000ll
/* A planned sleep shorter than this is not worth a timer: wait as usual. */
#define WAKE_PLAN_MIN_SLEEP_NS 20000ll

struct wake_plan {
	int64_t last_stamp; /* publish stamp of the last message delivered */
	uint64_t stamps;    /* messages delivered */
	int64_t seen_stamp; /* last_stamp when the previous wait began */
	uint64_t seen;      /* stamps when the previous wait began */
	int64_t period_ns;  /* learned from intervals of one message */
	uint32_t regular;   /* intervals in a row that matched period_ns */
	uint32_t misfits;   /* intervals in a row that did not */
	int64_t candidate_ns; /* what those intervals agree on */
	uint32_t agree;     /* how many of them agree on it */
	int64_t late_ns;    /* how late a timed sleep ends, averaged */
	bool late_known;
};

/* A message with this publish stamp was delivered. */
static inline void wake_plan_note(struct wake_plan *p, int64_t stamp)
{
	p->last_stamp = stamp;
	p->stamps++;
}

/* At the start of a wait, at `now`: learn from what was delivered since
 * the last wait, and say whether to sleep until *wake and then spin until
 * *spin_end rather than wait as usual. */
bool wake_plan_next(struct wake_plan *p, int64_t now, int64_t *wake, int64_t *spin_end);

/* A planned sleep ended by its timeout, late_ns after *wake. */
void wake_plan_woke(struct wake_plan *p, int64_t late_ns);

#endif /* SHMBUS_WAKEPLAN_H */
