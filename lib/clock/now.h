/*
 * now.h - the kernel's clocks as int64_t nanoseconds, and sleeping until a
 * monotonic time: one spelling of clock_gettime/clock_nanosleep for
 * libshmbus (bus/src/clock.c builds its message stamps on it) and for the
 * programs around it (tools, bridge, Foxglove server, examples, tests,
 * benches). Header only, so it costs a program no library and adds nothing
 * to libshmbus's exported symbols.
 */
#ifndef SHMBUS_NOW_H
#define SHMBUS_NOW_H

#include <stdint.h>
#include <time.h>

static inline int64_t now_ns(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* CLOCK_MONOTONIC: for deadlines, periods and durations. */
static inline int64_t now_mono_ns(void)
{
	return now_ns(CLOCK_MONOTONIC);
}

/* CLOCK_REALTIME: the clock message publish times are in. */
static inline int64_t now_real_ns(void)
{
	return now_ns(CLOCK_REALTIME);
}

/* Sleep until CLOCK_MONOTONIC reaches t (a past t returns at once), so a
 * periodic loop does not drift by the time its work takes. 0, or EINTR when
 * a signal handler ran first: the caller decides whether to sleep again. */
static inline int now_sleep_until(int64_t t)
{
	struct timespec ts = { (time_t)(t / 1000000000), (long)(t % 1000000000) };
	return clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
}

#endif /* SHMBUS_NOW_H */
