/*
 * wakeplan.c - when to wake for a periodic stream (see wakeplan.h).
 */
#include "wakeplan.h"

/* Before the first timed sleep has ended: a guess of how late it will. */
#define WAKE_PLAN_LATE_GUESS_NS 100000ll
/* A lateness sample above twice the average (plus this) is a stall of the
 * machine, not the timer's usual delay: counted as that bound. */
#define WAKE_PLAN_LATE_SLACK_NS 50000ll

static int64_t tolerance(int64_t period)
{
	return period / 16 + 20000;
}

static bool fits(int64_t d, int64_t period)
{
	int64_t off = d - period;
	return period > 0 && off <= tolerance(period) && -off <= tolerance(period);
}

/* One interval between two messages delivered one per wait. A stream whose
 * rate changed shows three intervals in a row that agree with each other
 * but not with the period: the period becomes theirs. An interval that
 * agrees with nothing (a publisher woken late, then catching up) leaves
 * the period alone; only a run of them stops the plans. */
static void learn(struct wake_plan *p, int64_t d)
{
	if (fits(d, p->period_ns)) {
		p->period_ns += (d - p->period_ns) / 8;
		if (p->regular < WAKE_PLAN_REGULAR)
			p->regular++;
		p->misfits = 0;
		return;
	}
	if (p->misfits > 0 && fits(d, p->candidate_ns)) {
		p->candidate_ns += (d - p->candidate_ns) / 2;
		if (++p->agree >= 3) {
			p->period_ns = p->candidate_ns;
			p->regular = p->agree;
			p->misfits = 0;
			return;
		}
	} else {
		p->candidate_ns = d;
		p->agree = 1;
	}
	if (p->period_ns == 0 && d > 0)
		p->period_ns = d;
	if (++p->misfits >= WAKE_PLAN_REGULAR)
		p->regular = 0;
}

bool wake_plan_next(struct wake_plan *p, int64_t now, int64_t *wake, int64_t *spin_end)
{
	if (p->stamps != p->seen) {
		/* Several since the last wait (a burst, or a reader that fell
		 * behind): their spacing says nothing of the period. */
		if (p->seen != 0 && p->stamps - p->seen == 1) {
			/* Out of order, or too far apart to plan for: an
			 * interval that fits nothing (-1), so that every sum
			 * learn() makes stays small. */
			int64_t d;
			if (__builtin_sub_overflow(p->last_stamp, p->seen_stamp, &d) || d < 0 ||
			    d > WAKE_PLAN_MAX_PERIOD_NS)
				d = -1;
			learn(p, d);
		}
		p->seen = p->stamps;
		p->seen_stamp = p->last_stamp;
	}
	if (p->regular < WAKE_PLAN_REGULAR || p->misfits > 0 ||
	    p->period_ns < WAKE_PLAN_MIN_PERIOD_NS)
		return false;
	int64_t window = WAKE_PLAN_WINDOW_NS + p->period_ns / 128;
	if (window > WAKE_PLAN_MAX_WINDOW_NS)
		window = WAKE_PLAN_MAX_WINDOW_NS;
	/* Stamps ahead of our clock are not live times (a replay that keeps
	 * a recording's stamps, a publisher's own clock): no plan. Stamps a
	 * period or more behind it make the due time past: no plan either. */
	if (p->last_stamp > now + window || p->last_stamp <= now - p->period_ns)
		return false;
	int64_t due = p->last_stamp + p->period_ns;
	int64_t late = p->late_known ? p->late_ns : WAKE_PLAN_LATE_GUESS_NS;
	int64_t w = due - window - late;
	if (w - now < WAKE_PLAN_MIN_SLEEP_NS)
		return false; /* due too soon, or overdue: wait as usual */
	*wake = w;
	*spin_end = due + window;
	return true;
}

void wake_plan_woke(struct wake_plan *p, int64_t late_ns)
{
	int64_t cap = 2 * (p->late_known ? p->late_ns : WAKE_PLAN_LATE_GUESS_NS) +
		      (p->late_known ? WAKE_PLAN_LATE_SLACK_NS : 0);
	if (cap > WAKE_PLAN_MAX_LATE_NS)
		cap = WAKE_PLAN_MAX_LATE_NS;
	if (late_ns < 0)
		late_ns = 0;
	if (late_ns > cap)
		late_ns = cap;
	if (!p->late_known) {
		p->late_ns = late_ns;
		p->late_known = true;
		return;
	}
	p->late_ns += (late_ns - p->late_ns) / 8;
}
