/*
 * handles.h - what the public publisher and subscriber handles hold
 * (private to libshmbus; shared by pubsub.c, waitset.c and watch.c).
 */
#ifndef SHMBUS_HANDLES_H
#define SHMBUS_HANDLES_H

#include "client.h"
#include "fdwatch.h"
#include "ring.h"
#include "segment.h"
#include "wait.h"

/* Rings a subscriber moved away from (its topic grew): kept mapped until
 * it closes, as an event descriptor's thread may still watch one and its
 * schema pointer points into one. Each growth at least doubles the
 * message size, so a topic grows fewer times than this. */
#define RETIRED_MAX 32

struct shmbus_pub {
	shmbus_bus *bus;
	struct topic_map *map;     /* the ring it publishes into now */
	struct ring_writer w;
	struct integrity integ;
	uint32_t topic_id, index;
	uint32_t flags; /* SHMBUS_PUB_* */
	char topic[SEG_TOPIC_MAX]; /* as the caller asked for it */
};

struct shmbus_sub {
	shmbus_bus *bus;
	struct topic_map *map;     /* the ring it reads now */
	struct topic_map *retired[RETIRED_MAX];
	size_t n_retired;
	struct ring_reader r;
	struct integrity integ;
	uint32_t topic_id, index;
	struct wait_intr intr;
	/* The event descriptor's thread to re-arm when a take finds nothing:
	 * the subscriber's own (own_fw) or its wait set's. */
	struct fdwatch *fw;
	struct fdwatch *own_fw;
	struct shmbus_waitset *fd_set; /* the fd-enabled set it belongs to */
};

struct known_topic {
	uint32_t id;
	char name[SEG_TOPIC_MAX];
	char type_name[SEG_TYPE_MAX];
};

struct shmbus_topic_watch {
	shmbus_bus *bus;
	/* What the last list was taken against: the bus page and its
	 * generation then. A different page (a new broker) or generation
	 * means the list must be asked for again. */
	const struct bus_page *page;
	uint32_t gen;
	bool listed;
	struct known_topic *known;
	size_t n_known, cap_known;
	struct shmbus_topic_event *queue; /* events not handed out yet */
	size_t q_head, q_len, q_cap;
	struct wait_intr intr;
	struct fdwatch *fw, *own_fw;
	struct shmbus_waitset *fd_set;
};

/* A subscriber's / watch's probe for an event descriptor (fdwatch.h). */
void sub_probe(const shmbus_sub *sub, struct probe *p);
void watch_probe(const shmbus_topic_watch *w, struct probe *p);

/* A watch as a source for wait_sources(). */
void watch_wait_src(shmbus_topic_watch *w, struct wait_src *s);

#endif /* SHMBUS_HANDLES_H */
