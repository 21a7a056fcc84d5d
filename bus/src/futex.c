/*
 * futex.c - futex system calls (no libc wrapper exists for them).
 */
#include "futex.h"

#include <errno.h>
#include <linux/futex.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "shmbus/shmbus.h"

#ifndef SYS_futex_waitv
#define SYS_futex_waitv 449
#endif
#ifndef FUTEX_32
#define FUTEX_32 2
#endif

/* The kernel's struct futex_waitv, spelled out for older headers. */
struct sb_futex_waitv {
	uint64_t val;
	uint64_t uaddr;
	uint32_t flags;
	uint32_t reserved;
};

static struct timespec ns_to_ts(int64_t ns)
{
	struct timespec ts = { .tv_sec = ns / 1000000000, .tv_nsec = ns % 1000000000 };
	return ts;
}

/* A wait's system call result: woken, the word had already changed, or a
 * signal all mean "look again" (0). */
static int wait_result(long r)
{
	if (r >= 0)
		return 0;
	switch (errno) {
	case EAGAIN:
	case EINTR:
		return 0;
	case ETIMEDOUT:
		return SHMBUS_ETIMEDOUT;
	case ENOSYS:
		return SHMBUS_ENOTSUP;
	default:
		return SHMBUS_ESYS;
	}
}

int futex_wait_shared(_Atomic uint32_t *word, uint32_t expected, int64_t timeout_ns)
{
	struct timespec ts, *tsp = NULL;
	if (timeout_ns >= 0) {
		ts = ns_to_ts(timeout_ns); /* FUTEX_WAIT takes a relative time */
		tsp = &ts;
	}
	return wait_result(syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT, expected, tsp, NULL, 0));
}

void futex_wake_all_shared(_Atomic uint32_t *word)
{
	syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE, 0x7fffffff, NULL, NULL, 0);
}

int futex_waitv_shared(_Atomic uint32_t *const *words, const uint32_t *expected, size_t n,
		       int64_t timeout_ns)
{
	struct sb_futex_waitv v[128];
	struct timespec ts, *tsp = NULL;

	if (n == 0 || n > 128)
		return SHMBUS_EINVAL;
	memset(v, 0, sizeof(v[0]) * n);
	for (size_t i = 0; i < n; i++) {
		v[i].val = expected[i];
		v[i].uaddr = (uint64_t)(uintptr_t)words[i];
		v[i].flags = FUTEX_32; /* shared: no FUTEX_PRIVATE_FLAG */
	}
	if (timeout_ns >= 0) {
		/* futex_waitv takes an absolute time on the given clock. */
		ts = ns_to_ts(deadline_after(timeout_ns));
		tsp = &ts;
	}
	return wait_result(syscall(SYS_futex_waitv, v, (unsigned)n, 0, tsp, CLOCK_MONOTONIC));
}

int futex_waitv_supported(void)
{
	/* An empty, invalid call: ENOSYS when the kernel lacks it, EINVAL else. */
	long r = syscall(SYS_futex_waitv, NULL, 0u, 0, NULL, CLOCK_MONOTONIC);
	return !(r < 0 && errno == ENOSYS);
}
