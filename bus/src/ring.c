/*
 * ring.c - owns the hot path: claiming, writing and committing slots, and
 * reading them back with exact loss counts. The slot state machine is drawn
 * in layout.h.
 *
 * Publishing: one atomic add (claim a sequence number), one CAS (own the
 * slot), the writes, one CAS (commit), one load (anyone waiting?). No lock,
 * no system call unless a subscriber sleeps, no allocation.
 * Taking: load the slot state, copy, re-load the state (seqlock).
 */
#include "ring.h"

#include <errno.h>
#include <signal.h>
#include <string.h>

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

void ring_copy_racy(void *dst, const void *src, size_t n)
{
	RACY_COPY_BEGIN();
	memcpy(dst, src, n);
	RACY_COPY_END();
}

static void wake_waiters(const struct topic_map *m)
{
	/* seq_cst: with the seq_cst commit before it, and the subscriber's
	 * seq_cst setting of SLEEPING then load of the slot state, either the
	 * subscriber sees our commit or we see it sleeping (Dekker). */
	uint32_t v = atomic_load_explicit(&m->ctl->futex, memory_order_seq_cst);
	if (!(v & FUTEX_SLEEPING))
		return;
	/* New epoch, bit cleared: sleepers on the old value wake, and later
	 * publishers make no call until someone sleeps again. If the CAS
	 * fails, another publisher moved the epoch and made the call. */
	if (atomic_compare_exchange_strong_explicit(&m->ctl->futex, &v,
						    (v + 2) & ~FUTEX_SLEEPING,
						    memory_order_seq_cst, memory_order_relaxed))
		futex_wake_all_shared(&m->ctl->futex);
}

uint32_t ring_announce_sleep(const struct topic_map *m)
{
	uint32_t v = atomic_load_explicit(&m->ctl->futex, memory_order_seq_cst);
	/* seq_cst: the store of SLEEPING orders before the caller's slot-state
	 * load (see wake_waiters). If the bit is set already, someone else's
	 * store serves: a publisher that commits after our load sees it, or
	 * has changed the word and our wait returns at once. */
	while (!(v & FUTEX_SLEEPING) &&
	       !atomic_compare_exchange_weak_explicit(&m->ctl->futex, &v, v | FUTEX_SLEEPING,
						      memory_order_seq_cst, memory_order_seq_cst))
		;
	return v | FUTEX_SLEEPING;
}

/* ------------------------------------------------------------ publishing */

void ring_writer_init(struct ring_writer *w, const struct topic_map *map, struct ctl_pub *entry,
		      uint32_t publisher_id)
{
	memset(w, 0, sizeof(*w));
	w->map = map;
	w->entry = entry;
	w->publisher_id = publisher_id;
	w->holder = (uint32_t)(entry - map->ctl->pubs);
}

/* Count one outcome, here and in the publisher's line for `shmbus info`.
 * Relaxed: a counter only this publisher writes, read without ordering. */
static void writer_count(uint64_t *local, _Atomic uint64_t *shared)
{
	atomic_store_explicit(shared, ++*local, memory_order_relaxed);
}

int ring_loan(struct ring_writer *w, void **buf, size_t *capacity)
{
	const struct topic_map *m = w->map;

	if (w->loaned)
		return SHMBUS_ESTATE;
	/* Each try burns one sequence number; a try fails only when the slot
	 * is held by another publisher's loan that has outlived a lap. */
	for (uint32_t tries = 0; tries <= m->mask + 1; tries++) {
		/* Relaxed: the counter only hands out unique numbers; who owns
		 * the slot is decided by the CAS on its state below. */
		uint64_t n = atomic_fetch_add_explicit(&m->seg->next_seq, 1, memory_order_relaxed);
		struct slot_header *s = topic_slot(m, n);
		uint64_t cur = atomic_load_explicit(&s->state, memory_order_relaxed);
		for (;;) {
			if (cur != 0 && SLOT_SEQ(cur) >= n)
				break; /* a later claim got here first: n is lost */
			/* Held by an older loan: skip n, keeping who holds it. */
			uint64_t want = (cur & SLOT_OCC)
						? SLOT_STATE(n, (cur & SLOT_HOLD_BITS) | SLOT_SKIP)
						: SLOT_HELD(n, w->holder);
			/* Acquire: the previous holder's payload writes (released by
			 * its commit) happen before ours. */
			if (!atomic_compare_exchange_weak_explicit(&s->state, &cur, want,
								   memory_order_acquire,
								   memory_order_relaxed))
				continue;
			if (cur & SLOT_OCC)
				break; /* held by an older loan: n skipped */
			/* Release fence: the claim is ordered before the payload
			 * writes, so a reader that saw any of them re-reads a
			 * changed state (seqlock writer side). */
			atomic_thread_fence(memory_order_release);
			w->loaned = true;
			w->loan_seq = n;
			w->loan_slot = s;
			*buf = slot_payload(s);
			*capacity = m->seg->max_message_size;
			return 0;
		}
		writer_count(&w->skipped, &w->entry->skipped);
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
	/* seq_cst: the commit is the store wake_waiters() orders against. */
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
	if (size > w->map->seg->max_message_size)
		return SHMBUS_EMSGSIZE;
	struct slot_header *s = w->loan_slot;
	/* Relaxed: published by the commit CAS (seq_cst, so also release). */
	atomic_store_explicit(&s->size, (uint32_t)size, memory_order_relaxed);
	atomic_store_explicit(&s->publisher_id, w->publisher_id, memory_order_relaxed);
	int64_t now = publish_ns ? publish_ns : realtime_ns();
	atomic_store_explicit(&s->publish_ns, now, memory_order_relaxed);
	uint64_t n = w->loan_seq;
	if (w->integ)
		integrity_tag(w->integ, n, now, (uint32_t)size, slot_payload(s), s->tag);
	bool ok = writer_end_loan(w, SLOT_STATE(n, 0));
	if (ok)
		writer_count(&w->published, &w->entry->published);
	else
		writer_count(&w->superseded, &w->entry->superseded);
	wake_waiters(w->map);
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
	wake_waiters(w->map);
	return 0;
}

/* Drop OCC from a slot held by a holder that is gone, marking its sequence
 * number skipped. */
static bool release_slot(const struct topic_map *m, struct slot_header *s, uint32_t holder)
{
	uint64_t cur = atomic_load_explicit(&s->state, memory_order_relaxed);
	while ((cur & SLOT_OCC) && SLOT_HOLDER(cur) == holder) {
		uint64_t want = (cur & ~SLOT_HOLD_BITS) | SLOT_SKIP;
		if (atomic_compare_exchange_weak_explicit(&s->state, &cur, want,
							  memory_order_seq_cst,
							  memory_order_relaxed)) {
			wake_waiters(m);
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
	if (start == SHMBUS_START_FIRST || last_n > m->seg->history)
		last_n = m->seg->history;
	return head > last_n ? head - last_n : 0;
}

void ring_reader_init(struct ring_reader *r, const struct topic_map *map, struct ctl_sub *entry,
		      uint64_t start, uint64_t lost_before)
{
	memset(r, 0, sizeof(*r));
	r->map = map;
	r->entry = entry;
	r->next = start;
	r->last_seq = UINT64_MAX;
	r->stall_ns = RING_DEFAULT_STALL_NS;
	r->lost = r->pending_lost = lost_before;
	atomic_store_explicit(&entry->next_seq, start, memory_order_relaxed);
	atomic_store_explicit(&entry->lost, r->lost, memory_order_relaxed);
}

/* The subscriber's line for `shmbus info` is written when its figures
 * change (a delivery, a loss), never by a poll that finds nothing.
 * Relaxed: counters only this subscriber writes, read without ordering. */
static void reader_lose(struct ring_reader *r, uint64_t to)
{
	r->lost += to - r->next;
	r->pending_lost += to - r->next;
	r->next = to;
	atomic_store_explicit(&r->entry->next_seq, r->next, memory_order_relaxed);
	atomic_store_explicit(&r->entry->lost, r->lost, memory_order_relaxed);
}

/* The slot for r->next holds a later sequence number: we were lapped. Jump
 * to the oldest message that can still be there; everything passed is lost. */
static void reader_lapped(struct ring_reader *r)
{
	const struct topic_map *m = r->map;
	uint64_t head = atomic_load_explicit(&m->seg->next_seq, memory_order_relaxed);
	uint64_t oldest = head > (uint64_t)m->mask + 1 ? head - m->mask - 1 : 0;
	reader_lose(r, oldest > r->next + 1 ? oldest : r->next + 1);
}

enum peek { PEEK_NOTHING, PEEK_MESSAGE, PEEK_MOVED };

/* Look at the slot for r->next. PEEK_MESSAGE: *state is its committed
 * state. PEEK_MOVED: r->next moved past lost sequence numbers (look again).
 * order: the load's memory order (acquire, or seq_cst when waiting). */
static enum peek reader_peek(struct ring_reader *r, uint64_t *state, memory_order order)
{
	struct slot_header *s = topic_slot(r->map, r->next);
	/* Acquire (at least): pairs with the publisher's commit CAS, so the
	 * payload and size read next are the committed ones unless the state
	 * changes under us. */
	uint64_t st = atomic_load_explicit(&s->state, order);
	if (st == 0 || SLOT_SEQ(st) < r->next)
		return PEEK_NOTHING;
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
	atomic_store_explicit(&r->entry->rejected, r->rejected, memory_order_relaxed);
	reader_lose(r, seq + 1);
}

static void reader_deliver(struct ring_reader *r, uint64_t seq)
{
	r->idle_polls = 0;
	r->received++;
	r->last_seq = seq;
	r->pending_lost = 0;
	atomic_store_explicit(&r->entry->next_seq, r->next, memory_order_relaxed);
	atomic_store_explicit(&r->entry->received, r->received, memory_order_relaxed);
}

static bool holder_alive(const struct topic_map *m, uint32_t holder)
{
	/* Relaxed: the broker sets pid before handing the topic out. */
	int32_t pid = atomic_load_explicit(&m->ctl->pubs[holder].pid, memory_order_relaxed);
	if (pid <= 0)
		return false;
	return kill(pid, 0) == 0 || errno == EPERM;
}

/* r->next has been handed out to a publisher (it is below the topic's
 * next_seq) but is not readable. Past the stall timeout, skip it: its
 * claimant died before taking the slot, or took it and died (holder gone),
 * or is so slow that waiting longer would stall every subscriber. A live
 * holder writing exactly r->next is waited for. True if the slot changed. */
bool ring_unstick(struct ring_reader *r)
{
	const struct topic_map *m = r->map;
	uint64_t n = r->next;
	/* Relaxed: a hint; the CAS below decides. */
	if (atomic_load_explicit(&m->seg->next_seq, memory_order_relaxed) <= n) {
		r->stall_since = 0;
		return false;
	}
	int64_t now = monotonic_ns();
	if (r->stall_since == 0 || r->stall_seq != n) {
		r->stall_since = now;
		r->stall_seq = n;
		return false;
	}
	if (now - r->stall_since < r->stall_ns)
		return false;
	struct slot_header *s = topic_slot(m, n);
	uint64_t cur = atomic_load_explicit(&s->state, memory_order_relaxed);
	for (;;) {
		bool fresh = cur == 0 || SLOT_SEQ(cur) < n;
		if (!fresh && (SLOT_SEQ(cur) > n || (cur & SLOT_SKIP) || !(cur & SLOT_OCC)))
			return true; /* it moved on by itself */
		bool held = cur & SLOT_OCC;
		bool dead = held && !holder_alive(m, SLOT_HOLDER(cur));
		if (!fresh && !dead)
			return false; /* a live publisher is writing n */
		uint64_t keep = held && !dead ? (cur & SLOT_HOLD_BITS) : 0;
		uint64_t want = SLOT_STATE(n, SLOT_SKIP | keep);
		if (atomic_compare_exchange_weak_explicit(&s->state, &cur, want,
							  memory_order_seq_cst,
							  memory_order_relaxed)) {
			r->stall_since = 0;
			wake_waiters(m);
			return true;
		}
	}
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
 * its slot state in *st, or SHMBUS_EAGAIN when there is none yet. */
static int reader_find(struct ring_reader *r, uint64_t *st)
{
	for (;;) {
		enum peek p = reader_peek(r, st, memory_order_acquire);
		if (p == PEEK_MESSAGE)
			return 0;
		if (p == PEEK_NOTHING && !reader_idle(r))
			return SHMBUS_EAGAIN;
	}
}

int ring_take(struct ring_reader *r, void *buf, size_t capacity, struct shmbus_msg_info *info)
{
	struct shmbus_msg_info tmp;
	if (!info)
		info = &tmp;
	if (r->viewing)
		return SHMBUS_ESTATE;
	for (;;) {
		uint64_t st;
		if (reader_find(r, &st))
			return SHMBUS_EAGAIN;
		uint64_t n = r->next;
		struct slot_header *s = topic_slot(r->map, n);
		uint32_t size = atomic_load_explicit(&s->size, memory_order_relaxed);
		if (size > capacity || size > r->map->seg->max_message_size) {
			if (!state_unchanged(s, st))
				continue; /* overwritten: next peek sees the lap */
			if (size > r->map->seg->max_message_size) {
				/* Only a broken publisher writes this: never deliver. */
				reader_lose(r, n + 1);
				continue;
			}
			info->size = size;
			return SHMBUS_EMSGSIZE;
		}
		uint8_t tag[INTEGRITY_TAG_BYTES];
		ring_copy_racy(buf, slot_payload(s), size);
		if (r->integ)
			ring_copy_racy(tag, s->tag, sizeof(tag));
		fill_info(r, s, n, size, info);
		if (!state_unchanged(s, st))
			continue;
		if (r->integ && !integrity_check(r->integ, n, info->publish_ns, size, buf, tag)) {
			reader_reject(r, n);
			continue;
		}
		r->next = n + 1;
		reader_deliver(r, n);
		return 0;
	}
}

int ring_view(struct ring_reader *r, struct shmbus_view *view)
{
	if (r->viewing)
		return SHMBUS_ESTATE;
	for (;;) {
		uint64_t st;
		if (reader_find(r, &st))
			return SHMBUS_EAGAIN;
		uint64_t n = r->next;
		struct slot_header *s = topic_slot(r->map, n);
		uint32_t size = atomic_load_explicit(&s->size, memory_order_relaxed);
		fill_info(r, s, n, size, &view->info);
		if (!state_unchanged(s, st))
			continue;
		if (size > r->map->seg->max_message_size) {
			reader_lose(r, n + 1);
			continue;
		}
		if (r->integ) {
			/* Checked in place; a lap during the check shows in the
			 * state, and is a loss, not a forgery. */
			uint8_t tag[INTEGRITY_TAG_BYTES];
			ring_copy_racy(tag, s->tag, sizeof(tag));
			bool ok = integrity_check(r->integ, n, view->info.publish_ns, size,
						  slot_payload(s), tag);
			if (!state_unchanged(s, st))
				continue;
			if (!ok) {
				reader_reject(r, n);
				continue;
			}
		}
		view->data = slot_payload(s);
		view->state_ = st;
		r->next = n + 1;
		r->viewing = true;
		return 0;
	}
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
	r->viewing = false;
	view->data = NULL;
	if (valid) {
		reader_deliver(r, view->info.seq);
		return 0;
	}
	r->lost++;
	r->pending_lost = 0;
	atomic_store_explicit(&r->entry->lost, r->lost, memory_order_relaxed);
	return SHMBUS_ELAPPED;
}

bool ring_ready_at(const struct topic_map *m, uint64_t seq, memory_order order)
{
	const struct slot_header *s = topic_slot(m, seq);
	uint64_t st = atomic_load_explicit(&((struct slot_header *)s)->state, order);
	if (st == 0 || SLOT_SEQ(st) < seq)
		return false;
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

static bool src_poll(void *obj)
{
	struct ring_reader *r = obj;
	return ring_unstick(r) && ring_ready(r);
}

static _Atomic uint32_t *src_announce(void *obj, uint32_t *value)
{
	struct ring_reader *r = obj;
	*value = ring_announce_sleep(r->map);
	return &r->map->ctl->futex;
}

static int64_t src_nap(void *obj)
{
	const struct ring_reader *r = obj;
	/* A claimed number not ready yet: wake up to check for a stall (the
	 * claimant may be dead). */
	return r->stall_since ? r->stall_ns / 4 : -1;
}

static void src_sleeping(void *obj, bool on)
{
	struct ring_reader *r = obj;
	/* Relaxed: for `shmbus info` only. */
	atomic_store_explicit(&r->entry->waiting, on, memory_order_relaxed);
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

int ring_wait(struct ring_reader *r, int64_t timeout_ns, struct wait_intr *intr)
{
	struct wait_src s;
	int which;
	ring_wait_src(r, &s);
	return wait_sources(&s, 1, intr, NULL, 0, timeout_ns, r->spin_ns, &which);
}
