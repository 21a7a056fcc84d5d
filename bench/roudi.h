/*
 * roudi.h - iceoryx's daemon (RouDi) for the bench: started with a memory
 * configuration sized for the bench's messages, in a run-time directory of
 * its own, and stopped at the end (roudi.c).
 */
#ifndef SHMBUS_BENCH_ROUDI_H
#define SHMBUS_BENCH_ROUDI_H

#include <stdint.h>

/* One mempool: `count` chunks of `size` payload bytes (RouDi adds its
 * chunk header). */
struct roudi_pool {
	uint64_t size;
	uint32_t count;
};

/* Start RouDi with these pools (any order, equal sizes merged) and wait
 * until it serves clients. 0, or -1 with the reason in roudi_why(). */
int roudi_start(const struct roudi_pool *pools, int n);

/* Why RouDi is not running ("" while it is). */
const char *roudi_why(void);

/* How RouDi runs, for the notes ("private /tmp and /dev/shm", ...). */
const char *roudi_where(void);

/* Make the calling process see RouDi's files (its sockets and shared
 * memory): join its mount namespace when it has one. Only in a process
 * without threads (a fresh child). 0 or -1. */
int roudi_enter(void);

/* Stop RouDi and remove its run-time directory. */
void roudi_stop(void);

#endif /* SHMBUS_BENCH_ROUDI_H */
