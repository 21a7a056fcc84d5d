/*
 * fdwatch.h - event-loop descriptors: an eventfd that a library thread
 * makes readable when one of the things it watches has something, so that
 * epoll, asyncio or libuv can wait on a subscriber, a wait set or a topic
 * watch. The thread sleeps through wait_sources() like any waiter, so
 * publishers pay nothing while nobody sleeps.
 *
 * The thread watches a snapshot (a probe per member: which topic and from
 * which sequence number, or which bus page and generation), never the
 * caller's live handles, which only the caller's thread touches. The caller
 * re-arms it with a new snapshot whenever a take or a next() comes back
 * empty; a probe that changes makes the thread signal once and disarm.
 *
 *   disarmed --rearm(snapshot)--> armed --a probe is ready--> signalled
 *      ^                                                         |
 *      +-----------------(caller drains, re-arms)----------------+
 */
#ifndef SHMBUS_FDWATCH_H
#define SHMBUS_FDWATCH_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "layout.h"
#include "segment.h"
#include "shmbus/shmbus.h"

enum probe_kind { PROBE_TOPIC = 1, PROBE_BUS = 2 };

struct probe {
	enum probe_kind kind;
	/* PROBE_TOPIC: ready when sequence number `seq` of the topic can be
	 * taken or is lost, or stays handed out but unpublished for stall_ns. */
	const struct topic_map *map;
	uint64_t seq;
	int64_t stall_ns;
	int64_t stall_since; /* the watcher's own */
	/* PROBE_BUS: ready when the bus page's generation is not `gen`. */
	const struct bus_page *page;
	uint32_t gen;
};

/* Fills probes[0..*n) for the current state of the owner (caller's
 * thread). */
typedef void (*fdwatch_snapshot_fn)(void *owner, struct probe *probes, size_t *n);

struct fdwatch {
	int efd;
	pthread_t thread;
	/* Futex word: (generation << 2) | ARMED | QUIT. */
	_Atomic uint32_t ctl;
	pthread_mutex_t lock; /* guards probes and n */
	struct probe probes[SHMBUS_WAITSET_MAX];
	size_t n;
	fdwatch_snapshot_fn snapshot;
	void *owner;
};

/* Start the thread, armed with the owner's current snapshot. */
int fdwatch_start(struct fdwatch **out, fdwatch_snapshot_fn snapshot, void *owner);
void fdwatch_stop(struct fdwatch *fw);

/* The owner found nothing: take a new snapshot, drain the eventfd and arm
 * (cheap when nothing changed since the last arm). */
void fdwatch_rearm(struct fdwatch *fw);

/* Probe helpers for the wait protocol. */
bool probe_ready(const struct probe *p, memory_order order);

#endif /* SHMBUS_FDWATCH_H */
