/*
 * ring.c - owns the hot path: claiming, writing and committing slots, and
 * reading them back with exact loss counts. The slot state machine is drawn
 * in layout.h.
 *
 * Publishing: one atomic add (claim a sequence number), one CAS (own the
 * slot), the writes, one CAS (commit), one load (anyone asleep?). No lock,
 * no system call unless a subscriber sleeps, no allocation.
 * Taking: load the slot state, copy, re-load the state (seqlock). A reader
 * writes nothing shared: only its own counters, in its own page.
 */
#include "ring.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "futex.h"

#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define SB_TSAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define SB_TSAN 1
#endif

#ifdef SB_TSAN
/* The payload copy out of a slot races with a publisher lapping the reader
 * by design: the seqlock re-check afterwards throws such a copy away. Tell
 * ThreadSanitizer so, for that copy only; every other access stays checked. */
void AnnotateIgnoreReadsBegin(const char *file, int line);
void AnnotateIgnoreReadsEnd(const char *file, int line);
#define RACY_COPY_BEGIN() AnnotateIgnoreReadsBegin(__FILE__, __LINE__)
#define RACY_COPY_END() AnnotateIgnoreReadsEnd(__FILE__, __LINE__)
#else
#define RACY_COPY_BEGIN() ((void)0)
#define RACY_COPY_END() ((void)0)
#endif

/* Tries a loan makes beyond one per slot before it gives up while slots
 * are free but other publishers keep claiming past its numbers. */
#define LOAN_MAX_TRIES 4096u
/* A lost wake-up (a client scribbled the wake board) costs at most this. */
#define WAIT_MAX_NAP_NS 200000000ll

void ring_copy_racy(void *dst, const void *src, size_t n)
{
	RACY_COPY_BEGIN();
	memcpy(dst, src, n);
	RACY_COPY_END();
}

uint64_t ring_head(const struct topic_map *m)
{
	/* Relaxed: a position; whatever it says is checked against slot
	 * states, which carry the ordering. */
	return atomic_load_explicit(&m->data->next_seq, memory_order_relaxed) & ~DATA_SEALED;
}

/* Whether the ring ends at or before `seq` (the broker sealed it). */
static bool ring_ends_by(const struct topic_map *m, uint64_t seq)
{
	/* Acquire: pairs with the broker's release store of sealed_at, made
	 * after it sealed next_seq; the meta is the broker's alone. */
	return seq >= atomic_load_explicit(&((struct meta_header *)m->meta)->sealed_at,
					   memory_order_acquire);
}

void ring_wake(const struct topic_map *m)
{
	/* seq_cst: with the seq_cst commit before it, and the subscriber's
	 * seq_cst store to its board line then load of the slot state: either
	 * the subscriber sees our commit or we see its line set (Dekker). */
	if (!atomic_load_explicit(&m->wake->sleeping, memory_order_seq_cst))
		return;
	/* One publisher clears it and makes the call; the epoch moves on
	 * first, so a sleeper that read the old epoch either finds the word
	 * changed or is woken. */
	if (atomic_exchange_explicit(&m->wake->sleeping, 0, memory_order_seq_cst)) {
		atomic_fetch_add_explicit(&m->wake->epoch, 1, memory_order_seq_cst);
		futex_wake_all_shared(&m->wake->epoch);
	}
}

uint32_t ring_announce_sleep(const struct topic_map *m)
{
	/* The epoch first, then the flag. A publisher that clears the flag
	 * after it is set moves the epoch after that, so after this read: the
	 * sleep on this value ends. Read after the store, the epoch could
	 * already carry that publisher's move (a wake-up for an earlier
	 * message, running late) while the flag stays cleared: the sleep
	 * would wait for a wake-up no later commit makes.
	 * seq_cst: the store orders before the caller's slot-state load (see
	 * ring_wake). */
	uint32_t epoch = atomic_load_explicit(&m->wake->epoch, memory_order_seq_cst);
	atomic_store_explicit(&m->wake->sleeping, 1, memory_order_seq_cst);
	return epoch;
}

/* --------------------------------------------------------- other processes */

/* Read /proc/PID/stat: 1 with *start_time and *zombie, 0 if there is no
 * such entry, -1 if it cannot be read (another user's, with hidepid). */
static int read_stat(int pid, uint64_t *start_time, bool *zombie)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -1;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	/* The command name may hold spaces and ')': fields start after the
	 * last ')'. The state is field 3; starttime is field 22. */
	char *p = strrchr(buf, ')');
	if (!p || !p[1] || !p[2])
		return 0;
	*zombie = p[2] == 'Z' || p[2] == 'X';
	p++;
	for (int field = 3; field < 22 && p; field++)
		p = strchr(p + 1, ' ');
	*start_time = p ? strtoull(p + 1, NULL, 10) : 0;
	return 1;
}

uint64_t proc_start_time(int pid)
{
	uint64_t st = 0;
	bool zombie = false;
	return read_stat(pid, &st, &zombie) == 1 && !zombie ? st : 0;
}

bool proc_alive(int pid, uint64_t start_time)
{
	uint64_t st = 0;
	bool zombie = false;
	if (pid <= 0)
		return false;
	switch (read_stat(pid, &st, &zombie)) {
	case 1:
		/* A zombie has exited: its descriptors are closed, it holds
		 * nothing; only its parent has not reaped it. A reused pid is
		 * another process. */
		return !zombie && (start_time == 0 || st == start_time);
	case 0:
		return false;
	default:
		return kill(pid, 0) == 0 || errno == EPERM;
	}
}

bool ring_holder_alive(const struct topic_map *m, uint32_t holder)
{
	const struct meta_pub *p = &m->meta->pubs[holder];
	/* Acquire: pairs with the broker's release store of pid, after the
	 * start time. */
	int32_t pid = atomic_load_explicit(&((struct meta_pub *)p)->pid, memory_order_acquire);
	if (pid <= 0)
		return false; /* a free line: its last holder is gone */
	return proc_alive(pid, atomic_load_explicit(&((struct meta_pub *)p)->start_time,
						    memory_order_relaxed));
}

/* ------------------------------------------------------------ publishing */

void ring_writer_init(struct ring_writer *w, const struct topic_map *map,
		      struct client_line *line, uint32_t holder, uint32_t publisher_id)
{
	memset(w, 0, sizeof(*w));
	w->map = map;
	w->line = line;
	w->publisher_id = publisher_id;
	w->holder = holder;
}

/* Count one outcome, here and in the publisher's line for `shmbus info`.
 * Relaxed: a counter only this publisher writes, read without ordering. */
static void writer_count(uint64_t *local, _Atomic uint64_t *shared)
{
	atomic_store_explicit(shared, ++*local, memory_order_relaxed);
}

/* The state a claim of n installs over `cur`, or 0 if n is lost (a later
 * claim got there first). *alive: the holders this loan found alive
 * already (each look is a read of /proc), a bit per holder. */
static uint64_t claim_over(const struct ring_writer *w, uint64_t cur, uint64_t n,
			   uint64_t *alive)
{
	if (cur != 0 && SLOT_SEQ(cur) >= n)
		return 0;
	if (!(cur & SLOT_OCC))
		return SLOT_HELD(n, w->holder);
	/* Held by an older loan. Its holder is dead (it will never end the
	 * loan; no broker may be running to release it): take the slot over,
	 * so a dead publisher costs one message once, not one per lap. Alive:
	 * skip n, keeping who holds it. */
	uint32_t h = SLOT_HOLDER(cur);
	if (h == w->holder)
		return SLOT_HELD(n, w->holder);
	if (!(*alive & (1ull << h))) {
		if (!ring_holder_alive(w->map, h))
			return SLOT_HELD(n, w->holder);
		*alive |= 1ull << h;
	}
	return SLOT_STATE(n, (cur & SLOT_HOLD_BITS) | SLOT_SKIP);
}

int ring_loan(struct ring_writer *w, void **buf, size_t *capacity)
{
	const struct topic_map *m = w->map;

	if (w->loaned)
		return SHMBUS_ESTATE;
	/* Each try burns one sequence number; a try fails when the slot is
	 * held by another live publisher's loan that has outlived a lap, or
	 * when other publishers claimed past the number first. Give up only
	 * once the slots found held cover the ring: with claims interleaving
	 * (a loaded machine), one publisher's tries need not visit every slot,
	 * so a count of tries alone would refuse while slots are free. A slot
	 * names its holder in 6 bits, so a ring of more than 64 slots is never
	 * all held; LOAN_MAX_TRIES bounds a loan that others keep outrunning. */
	uint32_t slots = m->mask + 1;
	uint64_t held = 0, alive = 0;
	uint64_t all = slots >= 64 ? UINT64_MAX : (1ull << slots) - 1;
	for (uint32_t tries = 0; tries < LOAN_MAX_TRIES + slots; tries++) {
		/* Relaxed: the counter only hands out unique numbers; who owns
		 * the slot is decided by the CAS on its state below. */
		uint64_t n = atomic_fetch_add_explicit(&m->data->next_seq, 1, memory_order_relaxed);
		if (n & DATA_SEALED)
			return RING_SEALED;
		struct slot_header *s = topic_slot(m, n);
		uint64_t cur = atomic_load_explicit(&s->state, memory_order_relaxed);
		for (;;) {
			uint64_t want = claim_over(w, cur, n, &alive);
			if (!want)
				break; /* n is lost */
			/* Acquire: the previous holder's payload writes (released by
			 * its commit) happen before ours. */
			if (!atomic_compare_exchange_weak_explicit(&s->state, &cur, want,
								   memory_order_acquire,
								   memory_order_relaxed))
				continue;
			if (want & SLOT_SKIP) {
				/* held by a live older loan: n skipped */
				if (slots <= 64)
					held |= 1ull << (n & m->mask);
				break;
			}
			/* Release fence: the claim is ordered before the payload
			 * writes, so a reader that saw any of them re-reads a
			 * changed state (seqlock writer side). */
			atomic_thread_fence(memory_order_release);
			w->loaned = true;
			w->loan_seq = n;
			w->loan_slot = s;
			*buf = slot_payload(s);
			*capacity = m->max_message_size;
			return 0;
		}
		writer_count(&w->skipped, &w->line->lost);
		if (held == all)
			break;
	}
	return SHMBUS_EBUSY;
}

/* Give up OCC on the loaned slot: `final` is the state to install if nobody
 * superseded the loan. Returns true if it was installed. */
static bool writer_end_loan(struct ring_writer *w, uint64_t final)
{
	struct slot_header *s = w->loan_slot;
	uint64_t held = SLOT_HELD(w->loan_seq, w->holder);

	w->loaned = false;
	/* seq_cst: release, so a reader whose acquire load of the state
	 * (reader_peek) finds the commit also finds the size, header, tag and
	 * payload written before it; and seq_cst, being the store that
	 * ring_wake()'s load of the wake line must not pass (Dekker with the
	 * waiter's announce, ring_announce_sleep). On x86-64 a weaker order
	 * compiles to the same locked instruction: scripts/mutate says so. */
	if (atomic_compare_exchange_strong_explicit(&s->state, &held, final,
						    memory_order_seq_cst, memory_order_relaxed))
		return true;
	/* A later claim skipped over our held slot: `held` is (k, OCC/h|SKIP).
	 * Only the holder (or whoever finds it dead) clears OCC. seq_cst (so
	 * also release): the next holder's acquire claim sees our writes done. */
	while ((held & SLOT_OCC) && SLOT_HOLDER(held) == w->holder &&
	       !atomic_compare_exchange_weak_explicit(&s->state, &held, held & ~SLOT_HOLD_BITS,
						      memory_order_seq_cst, memory_order_relaxed))
		;
	return false;
}

int ring_publish(struct ring_writer *w, size_t size, int64_t publish_ns, uint64_t *seq)
{
	if (!w->loaned)
		return SHMBUS_ESTATE;
	if (size > w->map->max_message_size)
		return SHMBUS_EMSGSIZE;
	struct slot_header *s = w->loan_slot;
	/* Relaxed: published by the commit CAS (seq_cst, so also release). */
	atomic_store_explicit(&s->size, (uint32_t)size, memory_order_relaxed);
	atomic_store_explicit(&s->publisher_id, w->publisher_id, memory_order_relaxed);
	int64_t now = publish_ns ? publish_ns : stamp_ns();
	atomic_store_explicit(&s->publish_ns, now, memory_order_relaxed);
	uint64_t n = w->loan_seq;
	if (w->integ)
		integrity_tag(w->integ, w->publisher_id, n, now, (uint32_t)size, slot_payload(s),
			      s->tag);
	bool ok = writer_end_loan(w, SLOT_STATE(n, 0));
	if (ok)
		writer_count(&w->published, &w->line->count);
	else
		writer_count(&w->superseded, &w->line->rejected);
	ring_wake(w->map);
	if (!ok)
		return SHMBUS_ELAPPED;
	if (seq)
		*seq = n;
	return 0;
}

int ring_discard(struct ring_writer *w)
{
	if (!w->loaned)
		return SHMBUS_ESTATE;
	writer_end_loan(w, SLOT_STATE(w->loan_seq, SLOT_SKIP));
	ring_wake(w->map);
	return 0;
}

/* Drop OCC from a slot held by a holder that is gone, marking its sequence
 * number skipped. */
static bool release_slot(const struct topic_map *m, struct slot_header *s, uint32_t holder)
{
	uint64_t cur = atomic_load_explicit(&s->state, memory_order_relaxed);
	while ((cur & SLOT_OCC) && SLOT_HOLDER(cur) == holder) {
		uint64_t want = (cur & ~SLOT_HOLD_BITS) | SLOT_SKIP;
		/* seq_cst: a release like a commit (see ring_wake). */
		if (atomic_compare_exchange_weak_explicit(&s->state, &cur, want,
							  memory_order_seq_cst,
							  memory_order_relaxed)) {
			ring_wake(m);
			return true;
		}
	}
	return false;
}

size_t ring_release_holder(const struct topic_map *m, uint32_t holder)
{
	size_t n = 0;
	for (uint64_t i = 0; i <= m->mask; i++)
		n += release_slot(m, topic_slot(m, i), holder);
	return n;
}

/* ---------------------------------------------------------------- taking */

uint64_t ring_start_seq(const struct topic_map *m, uint64_t head, enum shmbus_start start,
			uint32_t last_n)
{
	if (start == SHMBUS_START_NEW)
		return head;
	if (start == SHMBUS_START_FIRST || last_n > m->history)
		last_n = m->history;
	/* Nothing before the ring's first number is in it (a topic that grew
	 * starts its successor at the seal). */
	uint64_t base = m->layout.base_seq;
	return head > base + last_n ? head - last_n : base;
}

void ring_reader_init(struct ring_reader *r, const struct topic_map *map,
		      struct client_line *line, uint64_t start, uint64_t lost_before)
{
	memset(r, 0, sizeof(*r));
	r->map = map;
	r->line = line;
	r->next = start;
	r->last_seq = UINT64_MAX;
	r->stall_ns = RING_DEFAULT_STALL_NS;
	r->lost = r->pending_lost = lost_before;
	r->mirrored = lost_before;
	/* Relaxed: counters only this subscriber writes. */
	atomic_store_explicit(&line->next_seq, start, memory_order_relaxed);
	atomic_store_explicit(&line->lost, r->lost, memory_order_relaxed);
}

/* The subscriber's line for `shmbus info`: copied when its figures change,
 * once per call (a batch writes it once), never by a poll that finds
 * nothing. Relaxed: counters only this subscriber writes, read without
 * ordering. */
static void ring_reader_mirror(struct ring_reader *r)
{
	if (r->mirrored == r->received + r->lost)
		return;
	r->mirrored = r->received + r->lost;
	atomic_store_explicit(&r->line->next_seq, r->next, memory_order_relaxed);
	atomic_store_explicit(&r->line->count, r->received, memory_order_relaxed);
}

static void reader_lose(struct ring_reader *r, uint64_t to)
{
	r->lost += to - r->next;
	r->pending_lost += to - r->next;
	r->next = to;
	atomic_store_explicit(&r->line->lost, r->lost, memory_order_relaxed);
}

void ring_reader_move(struct ring_reader *r, const struct topic_map *next)
{
	/* The reader reached the end: r->next is at or past the seal, which is
	 * the successor's base unless rings came in between. */
	uint64_t base = next->layout.base_seq;
	/* A reader lapped just as the ring was sealed may have skipped past
	 * the seal, counting as lost numbers that were never messages there
	 * (claims the seal refused): the successor has them. */
	if (r->next > base) {
		uint64_t over = r->next - base;
		r->lost -= over < r->lost ? over : r->lost;
		r->pending_lost -= over < r->pending_lost ? over : r->pending_lost;
		r->next = base;
	}
	r->map = next;
	r->stall_since = 0;
	r->pacing = false;
	r->idle_polls = 0;
	/* A ring in between that the broker no longer had (all it keeps were
	 * in use, or it restarted): what it carried is lost to this reader,
	 * and counted. */
	if (r->next < base)
		reader_lose(r, base);
	atomic_store_explicit(&r->line->lost, r->lost, memory_order_relaxed);
	r->mirrored = UINT64_MAX; /* the position moved: copy it now */
	ring_reader_mirror(r);
}

/* The slot for r->next holds a later sequence number: we were lapped. Jump
 * ahead; everything passed is lost. OLDEST: to the oldest message that can
 * still be there. PACE: behind the newest by as much as this reader can
 * hold without being lapped again, by the head's advance it measured
 * during two holds (nothing measured yet: the oldest, as OLDEST). */
static void reader_lapped(struct ring_reader *r)
{
	const struct topic_map *m = r->map;
	uint64_t ring = (uint64_t)m->mask + 1;
	uint64_t head = ring_head(m);
	uint64_t base = m->layout.base_seq;
	uint64_t target = head > base + ring ? head - ring : base;
	if (!r->oldest_on_lap) {
		uint64_t keep = ring > 1 + 2 * r->advance ? ring - 1 - 2 * r->advance : 0;
		target = head > 1 + keep ? head - 1 - keep : 0;
		r->pacing = true;
	}
	reader_lose(r, target > r->next + 1 ? target : r->next + 1);
}

/* A pacing reader (lapped, and not caught up since), about to hold message
 * n: if the publishers will overwrite it before the hold ends, skip to the
 * oldest one they will not (a message it could not keep is lost either way;
 * that one it can). */
static bool reader_pace(struct ring_reader *r, uint64_t n)
{
	if (!r->pacing)
		return false;
	uint64_t ring = (uint64_t)r->map->mask + 1;
	uint64_t head = ring_head(r->map);
	r->held_head = head;
	/* No margin fits: a hold has taken a lap or more (a reader preempted
	 * mid-copy on a busy machine measures that once), so even the newest
	 * message would be overwritten before its hold ends. Skipping would
	 * only land on one it could not keep either, and a reader that skips
	 * holds nothing, so the estimate would never come down again: hold
	 * this one and let the estimate decay. */
	if (r->advance + 1 >= ring) {
		r->advance -= r->advance / 8 + 1;
		return false;
	}
	/* Message n is overwritten when number n + ring is claimed: safe if
	 * the head stays at or below it for the hold. */
	if (head <= n || head - n + r->advance <= ring || head - 1 <= n)
		return false;
	/* Skip to the oldest message that the hold fits in front of: as
	 * little lost as may be, and not the newest number, which a publisher
	 * may still be writing. */
	reader_lose(r, head + r->advance - ring);
	return true;
}

/* After a hold (a copy, or a view until its release): how far the head
 * moved, kept as a slowly decaying maximum. */
static void reader_paced(struct ring_reader *r)
{
	if (!r->pacing)
		return;
	uint64_t head = ring_head(r->map);
	uint64_t moved = head > r->held_head ? head - r->held_head : 0;
	uint64_t decayed = r->advance - r->advance / 8;
	r->advance = moved > decayed ? moved : decayed;
}

enum peek { PEEK_NOTHING, PEEK_MESSAGE, PEEK_MOVED, PEEK_END };

/* The slot holds nothing for this number yet: start fetching its payload's
 * first line. When the commit is then seen, that line is on its way or
 * here, so a poll that finds a message pays one cross-core miss, not two in
 * a row (the state's, then the payload's). A hint: it changes nothing that
 * is read, and a payload written after it is fetched again. Only take and
 * view do it: readiness checks (a spinning wait, wait sets, the event-loop
 * descriptor's thread) gained nothing measurable from it, and a wait set's
 * check would pay it for every topic. */
static inline void await_payload(const struct slot_header *s)
{
	__builtin_prefetch(slot_payload((struct slot_header *)s), 0, 3);
}

/* Look at the slot for r->next. PEEK_MESSAGE: *state is its committed
 * state. PEEK_MOVED: r->next moved past lost sequence numbers (look again).
 * PEEK_END: the ring was sealed before r->next. */
static enum peek reader_peek(struct ring_reader *r, uint64_t *state, memory_order order)
{
	struct slot_header *s = topic_slot(r->map, r->next);
	/* Acquire (at least): pairs with the publisher's commit CAS, so the
	 * payload and size read next are the committed ones unless the state
	 * changes under us. */
	uint64_t st = atomic_load_explicit(&s->state, order);
	if (st == 0 || SLOT_SEQ(st) < r->next) {
		await_payload(s);
		return ring_ends_by(r->map, r->next) ? PEEK_END : PEEK_NOTHING;
	}
	if (SLOT_SEQ(st) > r->next) {
		reader_lapped(r);
		return PEEK_MOVED;
	}
	if (st & SLOT_SKIP) {
		reader_lose(r, r->next + 1);
		return PEEK_MOVED;
	}
	if (st & SLOT_OCC)
		return PEEK_NOTHING; /* being written */
	*state = st;
	return PEEK_MESSAGE;
}

static bool state_unchanged(const struct slot_header *s, uint64_t st)
{
	/* Acquire fence: every read of the slot before it is ordered before
	 * the re-load, so an unchanged state means none of them saw a later
	 * writer (seqlock reader side). */
	atomic_thread_fence(memory_order_acquire);
	return atomic_load_explicit(&((struct slot_header *)s)->state, memory_order_relaxed) == st;
}

static void fill_info(struct ring_reader *r, const struct slot_header *s, uint64_t seq,
		      uint32_t size, struct shmbus_msg_info *info)
{
	memset(info, 0, sizeof(*info));
	info->seq = seq;
	/* Relaxed: validated by the state re-check that follows. */
	info->publish_ns = atomic_load_explicit(&((struct slot_header *)s)->publish_ns,
						memory_order_relaxed);
	info->publisher_id = atomic_load_explicit(&((struct slot_header *)s)->publisher_id,
						  memory_order_relaxed);
	info->size = size;
	info->lost = r->pending_lost;
}

/* A message that fails its tag: torn, corrupted or forged. Never
 * delivered; counted as rejected and as lost. */
static void reader_reject(struct ring_reader *r, uint64_t seq)
{
	r->rejected++;
	atomic_store_explicit(&r->line->rejected, r->rejected, memory_order_relaxed);
	reader_lose(r, seq + 1);
}

static void reader_deliver(struct ring_reader *r, uint64_t seq)
{
	r->idle_polls = 0;
	r->received++;
	r->last_seq = seq;
}

bool ring_unstick(struct ring_reader *r)
{
	const struct topic_map *m = r->map;
	uint64_t head = ring_head(m);
	if (head <= r->next) {
		r->stall_since = 0;
		return false;
	}
	int64_t now = monotonic_ns();
	/* A stall starts: everything below the head now was handed out by
	 * now, so each of those not published stall_ns later has waited at
	 * least that long: skipped together, one timeout for the batch. */
	if (r->stall_since == 0 || r->next >= r->stall_head) {
		r->stall_since = now;
		r->stall_head = head;
		return false;
	}
	if (now - r->stall_since < r->stall_ns)
		return false;
	bool moved = false;
	while (r->next < r->stall_head && !ring_ready_at(m, r->next, memory_order_acquire)) {
		reader_lose(r, r->next + 1);
		moved = true;
	}
	r->stall_since = 0;
	return moved;
}

/* Called when a take finds nothing: check for a stall now and then (each
 * check reads the publishers' hot counter, so not on every poll). */
static bool reader_idle(struct ring_reader *r)
{
	if (++r->idle_polls < 1024)
		return false;
	r->idle_polls = 0;
	return ring_unstick(r);
}

/* Move r->next to the next committed message, past lost numbers: 0 with
 * its slot state in *st, SHMBUS_EAGAIN when there is none yet, RING_SEALED
 * at the end of a sealed ring. */
static int reader_find(struct ring_reader *r, uint64_t *st)
{
	for (;;) {
		enum peek p = reader_peek(r, st, memory_order_acquire);
		if (p == PEEK_MESSAGE)
			return 0;
		if (p == PEEK_END)
			return RING_SEALED;
		if (p != PEEK_NOTHING)
			continue;
		/* Caught up: pacing was for a reader behind its publishers. */
		r->pacing = false;
		if (!reader_idle(r))
			return SHMBUS_EAGAIN;
	}
}

/* Copy the next message into buf: 0, SHMBUS_EAGAIN, SHMBUS_EMSGSIZE (it
 * stays next; info->size says how large it is) or RING_SEALED. */
static int reader_take(struct ring_reader *r, void *buf, size_t capacity,
		       struct shmbus_msg_info *info)
{
	for (;;) {
		uint64_t st;
		int rc = reader_find(r, &st);
		if (rc)
			return rc;
		uint64_t n = r->next;
		if (reader_pace(r, n))
			continue;
		struct slot_header *s = topic_slot(r->map, n);
		uint32_t size = atomic_load_explicit(&s->size, memory_order_relaxed);
		if (size > capacity || size > r->map->max_message_size) {
			if (!state_unchanged(s, st))
				continue; /* overwritten: next peek sees the lap */
			if (size > r->map->max_message_size) {
				/* Only a broken publisher writes this: never deliver. */
				reader_lose(r, n + 1);
				continue;
			}
			memset(info, 0, sizeof(*info));
			info->size = size;
			return SHMBUS_EMSGSIZE;
		}
		uint8_t tag[INTEGRITY_TAG_BYTES];
		ring_copy_racy(buf, slot_payload(s), size);
		if (r->integ)
			ring_copy_racy(tag, s->tag, sizeof(tag));
		fill_info(r, s, n, size, info);
		bool intact = state_unchanged(s, st);
		reader_paced(r);
		if (!intact)
			continue;
		if (r->integ && !integrity_check(r->integ, info->publisher_id, n, info->publish_ns,
						 size, buf, tag)) {
			reader_reject(r, n);
			continue;
		}
		r->next = n + 1;
		r->pending_lost = 0; /* reported in info */
		reader_deliver(r, n);
		wake_plan_note(&r->plan, info->publish_ns);
		return 0;
	}
}

int ring_take(struct ring_reader *r, void *buf, size_t capacity, struct shmbus_msg_info *info)
{
	struct shmbus_msg_info tmp;
	if (r->viewing)
		return SHMBUS_ESTATE;
	int rc = reader_take(r, buf, capacity, info ? info : &tmp);
	ring_reader_mirror(r);
	return rc;
}

int ring_take_many(struct ring_reader *r, void *buf, size_t stride, size_t max,
		   struct shmbus_msg_info *infos, size_t *n_taken)
{
	struct shmbus_msg_info tmp;
	int rc = 0;
	size_t n = 0;
	*n_taken = 0;
	if (r->viewing)
		return SHMBUS_ESTATE;
	while (n < max) {
		struct shmbus_msg_info *info = infos ? &infos[n] : &tmp;
		rc = reader_take(r, (uint8_t *)buf + n * stride, stride, info);
		if (rc)
			break;
		n++;
	}
	*n_taken = n;
	ring_reader_mirror(r);
	/* What stopped a batch that took something is the next call's
	 * answer (a message too large stays next). */
	return n ? 0 : rc;
}

/* View the next message in place: 0, SHMBUS_EAGAIN or RING_SEALED. */
static int reader_view(struct ring_reader *r, struct shmbus_view *view)
{
	for (;;) {
		uint64_t st;
		int rc = reader_find(r, &st);
		if (rc)
			return rc;
		uint64_t n = r->next;
		if (reader_pace(r, n))
			continue;
		struct slot_header *s = topic_slot(r->map, n);
		uint32_t size = atomic_load_explicit(&s->size, memory_order_relaxed);
		fill_info(r, s, n, size, &view->info);
		if (!state_unchanged(s, st))
			continue;
		if (size > r->map->max_message_size) {
			reader_lose(r, n + 1);
			continue;
		}
		if (r->integ) {
			/* Checked in place; a lap during the check shows in the
			 * state, and is a loss, not a forgery. */
			uint8_t tag[INTEGRITY_TAG_BYTES];
			ring_copy_racy(tag, s->tag, sizeof(tag));
			bool ok = integrity_check(r->integ, view->info.publisher_id, n,
						  view->info.publish_ns, size, slot_payload(s), tag);
			if (!state_unchanged(s, st))
				continue;
			if (!ok) {
				reader_reject(r, n);
				continue;
			}
		}
		view->data = slot_payload(s);
		view->state_ = st;
		wake_plan_note(&r->plan, view->info.publish_ns);
		r->next = n + 1;
		/* Reported with this view; the next one counts from here. */
		r->pending_lost = 0;
		r->viewing++;
		return 0;
	}
}

int ring_view(struct ring_reader *r, struct shmbus_view *view)
{
	if (r->viewing)
		return SHMBUS_ESTATE;
	int rc = reader_view(r, view);
	ring_reader_mirror(r);
	return rc;
}

int ring_view_many(struct ring_reader *r, struct shmbus_view *views, size_t max, size_t *n_viewed)
{
	int rc = 0;
	size_t n = 0;
	*n_viewed = 0;
	if (r->viewing)
		return SHMBUS_ESTATE;
	while (n < max && (rc = reader_view(r, &views[n])) == 0)
		n++;
	*n_viewed = n;
	ring_reader_mirror(r);
	return n ? 0 : rc;
}

bool ring_view_valid(const struct ring_reader *r, const struct shmbus_view *view)
{
	if (!view->data)
		return false;
	return state_unchanged(topic_slot(r->map, view->info.seq), view->state_);
}

int ring_release(struct ring_reader *r, struct shmbus_view *view)
{
	if (!r->viewing || !view->data)
		return SHMBUS_ESTATE;
	bool valid = ring_view_valid(r, view);
	r->viewing--;
	view->data = NULL;
	reader_paced(r);
	if (valid) {
		uint64_t last = r->last_seq;
		reader_deliver(r, view->info.seq);
		/* Views of a batch may be released in any order. */
		if (last != UINT64_MAX && last > r->last_seq)
			r->last_seq = last;
		ring_reader_mirror(r);
		return 0;
	}
	r->lost++;
	atomic_store_explicit(&r->line->lost, r->lost, memory_order_relaxed);
	ring_reader_mirror(r);
	return SHMBUS_ELAPPED;
}

bool ring_ready_at(const struct topic_map *m, uint64_t seq, memory_order order)
{
	const struct slot_header *s = topic_slot(m, seq);
	uint64_t st = atomic_load_explicit(&((struct slot_header *)s)->state, order);
	if (st == 0 || SLOT_SEQ(st) < seq)
		return ring_ends_by(m, seq);
	if (SLOT_SEQ(st) > seq || (st & SLOT_SKIP))
		return true;
	return !(st & SLOT_OCC);
}

static bool reader_ready_order(const struct ring_reader *r, memory_order order)
{
	return ring_ready_at(r->map, r->next, order);
}

bool ring_ready(const struct ring_reader *r)
{
	return reader_ready_order(r, memory_order_acquire);
}

/* ---------------------------------------------------------------- waiting */

static bool src_ready(void *obj, memory_order order)
{
	return reader_ready_order(obj, order);
}

/* A wait also ends when the reader skipped stalled numbers: their loss
 * shows at once in the stats, not only with the next message. */
static bool src_poll(void *obj)
{
	return ring_unstick(obj);
}

static _Atomic uint32_t *src_announce(void *obj, uint32_t *value)
{
	struct ring_reader *r = obj;
	*value = ring_announce_sleep(r->map);
	return &r->map->wake->epoch;
}

static int64_t src_nap(void *obj)
{
	const struct ring_reader *r = obj;
	/* A handed-out number not ready yet: wake up to check for a stall.
	 * And never sleep longer than WAIT_MAX_NAP_NS: the wake board is
	 * writable by every client, so a wake-up can be lost to a scribbler;
	 * that must cost bounded latency, not liveness. */
	int64_t nap = r->stall_since ? r->stall_ns / 4 : WAIT_MAX_NAP_NS;
	return nap < WAIT_MAX_NAP_NS ? nap : WAIT_MAX_NAP_NS;
}

static void src_sleeping(void *obj, bool on)
{
	struct ring_reader *r = obj;
	ring_reader_mirror(r);
	/* Relaxed: for `shmbus info` only. */
	atomic_store_explicit(&r->line->waiting, on, memory_order_relaxed);
}

void ring_wait_src(struct ring_reader *r, struct wait_src *s)
{
	*s = (struct wait_src){ .obj = r,
				.ready = src_ready,
				.poll = src_poll,
				.announce = src_announce,
				.nap = src_nap,
				.sleeping = src_sleeping };
}

void ring_reader_spin_auto(struct ring_reader *r)
{
	r->spin_auto = true;
	/* Until waits say otherwise: a short spin, so a fast stream is
	 * caught at once and a slow one costs little to learn. */
	r->gap_ns = SPIN_AUTO_GAP_NS / 4;
	r->spin_ns = 3 * r->gap_ns;
}

/* SHMBUS_SPIN_AUTO: learn from a wait that ended after `took` ns. A wait
 * that ended with something to take tells how long messages take to come
 * (a slept one includes the wake-up, which only errs towards sleeping); a
 * timed-out one that they did not come that long. The budget is three
 * times the average gap while that is short, 0 (sleep at once) when not:
 * spinning for rare messages would cost a core, sleeping for frequent ones
 * a kernel wake-up (and a publisher's system call) per message. */
static void spin_learn(struct ring_reader *r, int rc, int64_t took, int64_t timeout_ns)
{
	if (rc == SHMBUS_ETIMEDOUT) {
		if (timeout_ns < SPIN_AUTO_GAP_NS)
			return; /* a poll, not a wait: it says nothing */
	} else if (rc != SHMBUS_OK) {
		return;
	}
	r->gap_ns += (took - r->gap_ns) / 4;
	if (r->gap_ns > SPIN_AUTO_GAP_NS)
		r->spin_ns = 0;
	else if (3 * r->gap_ns > SPIN_AUTO_MAX_NS)
		r->spin_ns = SPIN_AUTO_MAX_NS;
	else if (3 * r->gap_ns < SPIN_AUTO_MIN_NS)
		r->spin_ns = SPIN_AUTO_MIN_NS;
	else
		r->spin_ns = 3 * r->gap_ns;
}

/* SHMBUS_SPIN_AUTO on a stream too rare to spin for: when its messages come
 * at a steady period, sleep until just before the next is due, then spin
 * for it (wakeplan.h); otherwise sleep at once. A message that comes while
 * the planned sleep lasts wakes it as any other. */
static int wait_planned(struct ring_reader *r, struct wait_src *s, int64_t t0, int64_t timeout_ns,
			struct wait_intr *intr)
{
	int64_t wake, spin_end;
	int which;
	bool plan = wake_plan_next(&r->plan, t0, &wake, &spin_end);
	if (!plan || r->spin_ns != 0 || timeout_ns == 0 ||
	    (timeout_ns > 0 && wake - t0 >= timeout_ns))
		return wait_sources(s, 1, intr, NULL, 0, timeout_ns, r->spin_ns, &which);
	int rc = wait_sources(s, 1, intr, NULL, 0, wake - t0, 0, &which);
	int64_t t1 = stamp_ns();
	if (rc != SHMBUS_ETIMEDOUT) {
		/* Woken by the message (or told to stop). After the planned
		 * time, the timed sleep was at least that late: learning only
		 * from sleeps that ran out would miss the late ones. */
		if (t1 > wake)
			wake_plan_woke(&r->plan, t1 - wake);
		return rc;
	}
	wake_plan_woke(&r->plan, t1 - wake);
	int64_t took = t1 - t0;
	int64_t left = timeout_ns < 0 ? -1 : timeout_ns > took ? timeout_ns - took : 0;
	return wait_sources(s, 1, intr, NULL, 0, left, spin_end > t1 ? spin_end - t1 : 0, &which);
}

int ring_wait(struct ring_reader *r, int64_t timeout_ns, struct wait_intr *intr)
{
	struct wait_src s;
	int which;
	ring_wait_src(r, &s);
	if (!r->spin_auto)
		return wait_sources(&s, 1, intr, NULL, 0, timeout_ns, r->spin_ns, &which);
	int64_t t0 = stamp_ns();
	int rc = wait_planned(r, &s, t0, timeout_ns, intr);
	spin_learn(r, rc, stamp_ns() - t0, timeout_ns);
	return rc;
}
