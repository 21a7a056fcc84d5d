/*
 * ring.h - the lock-free slot ring: how publishers claim, write and commit
 * slots and how subscribers read them (seqlock), on a mapped topic. Knows
 * nothing of the broker, so it can be tested with threads alone.
 */
#ifndef SHMBUS_RING_H
#define SHMBUS_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "integrity.h"
#include "wait.h"
#include "segment.h"
#include "shmbus/shmbus.h"

struct ring_writer {
	const struct topic_map *map;
	struct ctl_pub *entry;     /* this publisher's line in the control area */
	uint32_t publisher_id;
	uint32_t holder;           /* index of `entry`: written into held slots */
	const struct integrity *integ; /* tag every message (NULL: no tags) */
	bool loaned;
	uint64_t loan_seq;
	struct slot_header *loan_slot;
	uint64_t published, skipped, superseded;
};

struct ring_reader {
	const struct topic_map *map;
	struct ctl_sub *entry;     /* this subscriber's line in the control area */
	uint64_t next;             /* next sequence number to read */
	uint64_t received, lost;
	uint64_t rejected;         /* failed the tag check (also counted lost) */
	const struct integrity *integ; /* check every tag (NULL: no tags) */
	uint64_t last_seq;
	uint64_t pending_lost;     /* lost before the message being viewed */
	bool viewing;
	int64_t spin_ns;
	int64_t stall_ns;          /* skip a claimed number not ready for this long */
	uint64_t stall_seq;
	int64_t stall_since;       /* 0: not stalled */
	uint32_t idle_polls;
};

#define RING_DEFAULT_STALL_NS 1000000000ll

void ring_writer_init(struct ring_writer *w, const struct topic_map *map,
		      struct ctl_pub *entry, uint32_t publisher_id);
int ring_loan(struct ring_writer *w, void **buf, size_t *capacity);
/* publish_ns 0: now. */
int ring_publish(struct ring_writer *w, size_t size, int64_t publish_ns, uint64_t *seq);
int ring_discard(struct ring_writer *w);

/* start: first sequence number to read (see ring_start_seq); lost_before:
 * numbers before it the subscriber asked for but cannot have (counted lost
 * and reported with its first message). */
void ring_reader_init(struct ring_reader *r, const struct topic_map *map,
		      struct ctl_sub *entry, uint64_t start, uint64_t lost_before);
/* Where a subscriber starts: `head` is the topic's next sequence number
 * when it was registered (new messages only), or up to last_n before, or
 * as far back as history goes (SHMBUS_START_FIRST). */
uint64_t ring_start_seq(const struct topic_map *map, uint64_t head, enum shmbus_start start,
			uint32_t last_n);
int ring_take(struct ring_reader *r, void *buf, size_t capacity, struct shmbus_msg_info *info);
int ring_view(struct ring_reader *r, struct shmbus_view *view);
bool ring_view_valid(const struct ring_reader *r, const struct shmbus_view *view);
int ring_release(struct ring_reader *r, struct shmbus_view *view);

/* Copy bytes out of a slot that a publisher may be overwriting: the
 * caller validates afterwards (seqlock), so the race is by design. */
void ring_copy_racy(void *dst, const void *src, size_t n);

/* Whether a take would find something (a message, or a loss to report). */
bool ring_ready(const struct ring_reader *r);
/* The same for a reader whose next number is `seq` (for a thread that
 * watches on a reader's behalf and must not touch the reader itself). */
bool ring_ready_at(const struct topic_map *m, uint64_t seq, memory_order order);

/* Check whether the reader waits for a number whose publisher is gone or
 * too slow, and skip it once past the stall timeout; true if it did. */
bool ring_unstick(struct ring_reader *r);

/* About to sleep on the topic's futex word: set its SLEEPING bit and
 * return the value to sleep on. Check for messages after it, before the
 * sleep. */
uint32_t ring_announce_sleep(const struct topic_map *map);

/* The reader as a source for wait_sources() (wait.h). */
void ring_wait_src(struct ring_reader *r, struct wait_src *s);

/* Block until ring_ready, the timeout or an interrupt (intr may be NULL):
 * SHMBUS_OK, ETIMEDOUT, EINTR or ESYS. */
int ring_wait(struct ring_reader *r, int64_t timeout_ns, struct wait_intr *intr);

/* Give up every slot held by publisher line `holder`, which is gone: their
 * sequence numbers become skipped. Returns how many it released. */
size_t ring_release_holder(const struct topic_map *map, uint32_t holder);

#endif /* SHMBUS_RING_H */
