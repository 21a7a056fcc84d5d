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
#include "segment.h"
#include "shmbus/shmbus.h"
#include "wait.h"
#include "wakeplan.h"

/* A claim found the ring sealed (the topic was removed or grew). */
#define RING_SEALED 1

struct ring_writer {
	const struct topic_map *map;
	struct client_line *line;  /* this publisher's counters (its own page) */
	uint32_t publisher_id;
	uint32_t holder;           /* its publisher line: written into held slots */
	const struct integrity *integ; /* tag every message (NULL: no tags) */
	bool loaned;
	uint64_t loan_seq;
	struct slot_header *loan_slot;
	uint64_t published, skipped, superseded;
};

struct ring_reader {
	const struct topic_map *map;
	struct client_line *line;  /* this subscriber's counters (its own page) */
	uint64_t next;             /* next sequence number to read */
	uint64_t received, lost;
	uint64_t rejected;         /* failed the tag check (also counted lost) */
	const struct integrity *integ; /* check every tag (NULL: no tags) */
	uint64_t last_seq;
	uint64_t pending_lost;     /* lost before the next message delivered */
	uint64_t mirrored;         /* received + lost when last copied to line */
	uint32_t viewing;          /* views handed out and not released */
	bool oldest_on_lap;        /* SHMBUS_LAPPED_OLDEST */
	int64_t spin_ns;           /* a wait's spin budget (spin_auto: learned) */
	bool spin_auto;            /* SHMBUS_SPIN_AUTO: spin_ns follows gap_ns */
	int64_t gap_ns;            /* how long waits took to end, averaged */
	struct wake_plan plan;     /* spin_auto on a periodic stream */
	int64_t stall_ns;          /* skip a handed-out number not ready this long */
	int64_t stall_since;       /* 0: not stalled */
	uint64_t stall_head;       /* numbers below it were handed out by then */
	uint32_t idle_polls;
	/* Pacing a subscriber slower than its publishers (SHMBUS_LAPPED_PACE):
	 * from a lap until it finds nothing new (it caught up), it looks at the
	 * head before each message and skips ahead when the message would be
	 * overwritten while held; `advance` is how far the head moved during
	 * one hold. */
	bool pacing;
	uint64_t advance;
	uint64_t held_head;
};

#define RING_DEFAULT_STALL_NS 1000000000ll

/* SHMBUS_SPIN_AUTO: a wait spins when waits have been ending within
 * SPIN_AUTO_GAP_NS (messages come often), for a few times that, at least
 * SPIN_AUTO_MIN_NS (a reader that always finds the next message waiting
 * learns a gap near 0, yet must still catch the stream once it is level
 * with it) and at most SPIN_AUTO_MAX_NS; when they come more rarely, it
 * sleeps, at once or until just before a steady stream's next message is
 * due (wakeplan.h). */
#define SPIN_AUTO_GAP_NS 25000ll
#define SPIN_AUTO_MIN_NS 5000ll
#define SPIN_AUTO_MAX_NS 50000ll

/* Spin as SHMBUS_SPIN_AUTO does: the budget learned from the waits. */
void ring_reader_spin_auto(struct ring_reader *r);

void ring_writer_init(struct ring_writer *w, const struct topic_map *map,
		      struct client_line *line, uint32_t holder, uint32_t publisher_id);
/* 0, SHMBUS_ESTATE, SHMBUS_EBUSY, or RING_SEALED. */
int ring_loan(struct ring_writer *w, void **buf, size_t *capacity);
/* publish_ns 0: now. */
int ring_publish(struct ring_writer *w, size_t size, int64_t publish_ns, uint64_t *seq);
int ring_discard(struct ring_writer *w);

/* start: first sequence number to read (see ring_start_seq); lost_before:
 * numbers before it the subscriber asked for but cannot have (counted lost
 * and reported with its first message). */
void ring_reader_init(struct ring_reader *r, const struct topic_map *map,
		      struct client_line *line, uint64_t start, uint64_t lost_before);
/* Where a subscriber starts: `head` is the topic's next sequence number
 * when it was registered (new messages only), or up to last_n before, or
 * as far back as history goes (SHMBUS_START_FIRST). */
uint64_t ring_start_seq(const struct topic_map *map, uint64_t head, enum shmbus_start start,
			uint32_t last_n);
/* Carry on in `next`, the successor of the ring the reader reached the end
 * of (its topic grew): it starts at the seal, where the old ring ended. */
void ring_reader_move(struct ring_reader *r, const struct topic_map *next);
/* 0, SHMBUS_EAGAIN, SHMBUS_EMSGSIZE, SHMBUS_ESTATE, or RING_SEALED (the
 * ring ends here: nothing more will come). */
int ring_take(struct ring_reader *r, void *buf, size_t capacity, struct shmbus_msg_info *info);
/* Up to max messages, message i into buf + i * stride (at most stride
 * bytes), its info in infos[i] (infos may be NULL): 0 with *n_taken >= 1,
 * or what ring_take returns for the first. */
int ring_take_many(struct ring_reader *r, void *buf, size_t stride, size_t max,
		   struct shmbus_msg_info *infos, size_t *n_taken);
int ring_view(struct ring_reader *r, struct shmbus_view *view);
/* Up to max views at once (each released with ring_release). */
int ring_view_many(struct ring_reader *r, struct shmbus_view *views, size_t max,
		   size_t *n_viewed);
bool ring_view_valid(const struct ring_reader *r, const struct shmbus_view *view);
int ring_release(struct ring_reader *r, struct shmbus_view *view);

/* Copy bytes out of a slot that a publisher may be overwriting: the
 * caller validates afterwards (seqlock), so the race is by design. */
void ring_copy_racy(void *dst, const void *src, size_t n);

/* The topic's next sequence number, without the sealed bit. */
uint64_t ring_head(const struct topic_map *m);

/* Whether a take would find something (a message, a loss to report, or the
 * end of a sealed ring). */
bool ring_ready(const struct ring_reader *r);
/* The same for a reader whose next number is `seq` (for a thread that
 * watches on a reader's behalf and must not touch the reader itself). */
bool ring_ready_at(const struct topic_map *m, uint64_t seq, memory_order order);

/* Skip, for this reader alone, the numbers that were handed out at least
 * stall_ns ago and are still not published (their publisher died, is
 * stopped, or holds its loan that long); true if it did. Writes nothing
 * shared. */
bool ring_unstick(struct ring_reader *r);

/* About to sleep on the topic: set its wake-board line and return the
 * epoch to sleep on. Check for messages after it, before the sleep. */
uint32_t ring_announce_sleep(const struct topic_map *map);

/* Wake whoever sleeps on the topic (after a commit, a release, a seal). */
void ring_wake(const struct topic_map *map);

/* The reader as a source for wait_sources() (wait.h). */
void ring_wait_src(struct ring_reader *r, struct wait_src *s);

/* Block until ring_ready, the timeout or an interrupt (intr may be NULL):
 * SHMBUS_OK, ETIMEDOUT, EINTR or ESYS. */
int ring_wait(struct ring_reader *r, int64_t timeout_ns, struct wait_intr *intr);

/* Give up every slot held by publisher line `holder`, which is gone: their
 * sequence numbers become skipped. For the broker, on a read-write map.
 * Returns how many it released. */
size_t ring_release_holder(const struct topic_map *map, uint32_t holder);

/* Whether the process holding publisher line `holder` is alive, by the
 * meta's publisher table (pid and start time) and /proc. */
bool ring_holder_alive(const struct topic_map *map, uint32_t holder);

/* Start time of a process (/proc/PID/stat field 22); 0 if it is gone, a
 * zombie, or cannot be read. */
uint64_t proc_start_time(int pid);
/* Whether process pid is alive and is the one that started at start_time
 * (0: any): the one check of liveness, for the ring and the broker. */
bool proc_alive(int pid, uint64_t start_time);

#endif /* SHMBUS_RING_H */
