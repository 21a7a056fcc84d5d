/*
 * bus_bench.h - what the bus cases (bus_cases.c, slow.c, paced.c, topics.c,
 * typed_cases.c) share:
 * the connection of the process they run in, opening a publisher and a
 * subscriber, and reporting a failed call with the bus's own words.
 */
#ifndef SHMBUS_BUS_BENCH_H
#define SHMBUS_BUS_BENCH_H

#include <stddef.h>
#include <stdint.h>

#include <shmbus/shmbus.h>

#include "bench.h"

/* Generous bound on any one wait of a bus case. */
#define BUS_TIMEOUT_NS (10 * (int64_t)1000000000)

/* The main process's connection to the bench's bus, or a new one in a
 * forked child. 0 or a SHMBUS_E* code. */
int bench_bus_get(shmbus_bus **bus);
void bench_bus_put(shmbus_bus *bus);

/* bench_fail() with the code's name and the bus's error text. */
void bench_bus_report(const char *name, shmbus_bus *bus, const char *what, int rc);

/* Open a publisher on `pub_topic` and/or a subscriber on `sub_topic`
 * (either may be NULL), creating the topic with max_message_size `size`
 * and `slots` slots (0: the bus's default for the size). 0 or -1. */
int bench_bus_open_pair(const char *name, shmbus_bus *bus, const char *pub_topic,
			const char *sub_topic, size_t size, uint32_t slots, int64_t spin_ns,
			shmbus_pub **pub, shmbus_sub **sub);

/* The body of a forked participant of a case: connect, run fn with the
 * connection, disconnect. A failed connect is reported under `name` and
 * breaks `barrier`, so that the other participants stop waiting. fn's
 * result, or -1. */
int bench_bus_child(const char *name, struct bench_barrier *barrier,
		    int (*fn)(void *arg, shmbus_bus *bus, int index), void *arg, int index);

/* The ring size of the latency cases for messages of `size` bytes (also
 * typed_cases.c's). */
uint32_t bench_bus_latency_slots(size_t size);

/* Stop a broker by its pid (SIGTERM, which removes its bus's topics) and
 * wait until it is gone; SIGKILL after 5 s. */
void bench_bus_stop_broker(int pid);

#endif /* SHMBUS_BUS_BENCH_H */
