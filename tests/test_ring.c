/*
 * test_ring.c - the slot ring on its own (threads, no broker): wrap-around,
 * exact loss counts when lapped, views invalidated under the reader,
 * history for late joiners, oversize, loans that outlive a lap, and a
 * many-writer many-reader stress run (also run under ThreadSanitizer).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "ring.h"
#include "segment.h"


/* A topic as a client maps it, with the broker's side a test needs: the
 * meta writable (the publisher table), a wake board of one line, and a
 * page of counter lines. */
static struct meta_header *meta_rw;
static struct board_line board[1];
static struct client_line lines[PAGE_LINES];

static void make_topic(struct topic_map *m, uint32_t slots, uint32_t max)
{
	struct seg_params p = { .slot_count = slots, .max_message_size = max, .topic = "t" };
	struct seg_layout l;
	char err[256];
	CU_ASSERT_FATAL(seg_params_normalize(&p, err, sizeof(err)) == 0);
	int mfd = seg_memfd("meta", seg_meta_size(0), err, sizeof(err));
	int dfd = seg_memfd("data", seg_data_size(&p), err, sizeof(err));
	CU_ASSERT_FATAL(mfd >= 0 && dfd >= 0);
	void *meta, *data;
	CU_ASSERT_FATAL(seg_map_fd(mfd, true, false, 0, &meta, err, sizeof(err)) == 0);
	CU_ASSERT_FATAL(seg_map_fd(dfd, true, false, 0, &data, err, sizeof(err)) == 0);
	seg_meta_format(meta, &p);
	seg_data_format(data, 0);
	munmap(data, seg_data_size(&p));
	if (meta_rw)
		munmap(meta_rw, seg_meta_size(0));
	meta_rw = meta;
	seg_layout_of(meta, &l);
	memset(board, 0, sizeof(board));
	memset(lines, 0, sizeof(lines));
	CU_ASSERT_FATAL(topic_map_fds(mfd, dfd, true, &l, board, m, err, sizeof(err)) == 0);
	close(mfd);
	close(dfd);
}

static int send_u64(struct ring_writer *w, uint64_t v)
{
	void *buf;
	size_t cap;
	int rc = ring_loan(w, &buf, &cap);
	if (rc)
		return rc;
	memcpy(buf, &v, sizeof(v));
	return ring_publish(w, sizeof(v), 0, NULL);
}

static void test_wraparound(void)
{
	struct topic_map m;
	struct ring_writer w;
	struct ring_reader r;
	make_topic(&m, 4, 64);
	ring_writer_init(&w, &m, &lines[0], 0, 7);
	ring_reader_init(&r, &m, &lines[32], ring_start_seq(&m, ring_head(&m), SHMBUS_START_NEW, 0), 0);
	for (uint64_t i = 0; i < 10; i++) {
		uint64_t v = 0;
		struct shmbus_msg_info info;
		CU_ASSERT_EQUAL(ring_take(&r, &v, sizeof(v), &info), SHMBUS_EAGAIN);
		CU_ASSERT_EQUAL(send_u64(&w, i * 3), 0);
		CU_ASSERT_EQUAL(ring_take(&r, &v, sizeof(v), &info), 0);
		CU_ASSERT_EQUAL(v, i * 3);
		CU_ASSERT_EQUAL(info.seq, i);
		CU_ASSERT_EQUAL(info.publisher_id, 7);
		CU_ASSERT_EQUAL(info.lost, 0);
		CU_ASSERT_EQUAL(info.size, sizeof(v));
	}
	CU_ASSERT_EQUAL(r.received, 10);
	CU_ASSERT_EQUAL(r.lost, 0);
	topic_unmap(&m);
}

static void test_lapped_exact_loss(void)
{
	struct topic_map m;
	struct ring_writer w;
	struct ring_reader r;
	make_topic(&m, 8, 64);
	ring_writer_init(&w, &m, &lines[0], 0, 1);
	ring_reader_init(&r, &m, &lines[32], 0, 0);
	r.oldest_on_lap = true; /* SHMBUS_LAPPED_OLDEST */
	for (uint64_t i = 0; i < 20; i++)
		CU_ASSERT_EQUAL(send_u64(&w, i), 0);
	uint64_t v, expect = 12;
	struct shmbus_msg_info info;
	CU_ASSERT_EQUAL(ring_take(&r, &v, sizeof(v), &info), 0);
	CU_ASSERT_EQUAL(info.lost, 12); /* 0..11 overwritten by 8..19 */
	CU_ASSERT_EQUAL(info.seq, 12);
	CU_ASSERT_EQUAL(v, 12);
	while (ring_take(&r, &v, sizeof(v), &info) == 0) {
		CU_ASSERT_EQUAL(v, ++expect);
		CU_ASSERT_EQUAL(info.lost, 0);
	}
	CU_ASSERT_EQUAL(expect, 19);
	CU_ASSERT_EQUAL(r.received + r.lost, 20);
	CU_ASSERT_EQUAL(lines[32].lost, 12);
	CU_ASSERT_EQUAL(lines[32].count, 8);
	topic_unmap(&m);
}

/* SHMBUS_LAPPED_PACE: a lapped reader resumes behind the newest by what it
 * can hold: with nothing measured yet, at the oldest message; once it has
 * seen the head move by A during a hold, by 2A less than the ring. */
static void test_lapped_pace(void)
{
	struct topic_map m;
	struct ring_writer w;
	struct ring_reader r;
	struct shmbus_view view;
	uint64_t v;
	struct shmbus_msg_info info;
	make_topic(&m, 16, 64);
	ring_writer_init(&w, &m, &lines[0], 0, 1);
	ring_reader_init(&r, &m, &lines[32], 0, 0);
	for (uint64_t i = 0; i < 40; i++)
		CU_ASSERT_EQUAL(send_u64(&w, i), 0);
	/* head 40, ring 16: resume at the oldest, 40 - 16 = 24. */
	CU_ASSERT_EQUAL(ring_take(&r, &v, sizeof(v), &info), 0);
	CU_ASSERT_EQUAL(info.seq, 24);
	CU_ASSERT_EQUAL(info.lost, 24);
	/* In overload now: a view (at lag 15) during which 5 messages are
	 * published is overwritten, and teaches the reader its hold costs 5. */
	CU_ASSERT_EQUAL(ring_view(&r, &view), 0);
	CU_ASSERT_EQUAL(view.info.seq, 25);
	for (uint64_t i = 40; i < 45; i++)
		CU_ASSERT_EQUAL(send_u64(&w, i), 0);
	CU_ASSERT_EQUAL(ring_release(&r, &view), SHMBUS_ELAPPED);
	CU_ASSERT_EQUAL(r.advance, 5);
	/* The next one (26) is gone: lapped, it resumes far enough behind
	 * the newest for two holds: 45 - 1 - (16 - 1 - 10) = 39. */
	CU_ASSERT_EQUAL(ring_take(&r, &v, sizeof(v), &info), 0);
	CU_ASSERT_EQUAL(info.seq, 39);
	CU_ASSERT_EQUAL(info.lost, 13);
	/* A message it could not hold without it being overwritten is
	 * skipped for the newest: 40 at lag 12, + advance 5 > 16, once 7 more
	 * are published. */
	for (uint64_t i = 45; i < 52; i++)
		CU_ASSERT_EQUAL(send_u64(&w, i), 0);
	CU_ASSERT_EQUAL(ring_view(&r, &view), 0);
	CU_ASSERT_EQUAL(view.info.seq, 51);
	CU_ASSERT_EQUAL(view.info.lost, 11);
	CU_ASSERT_EQUAL(ring_release(&r, &view), 0);
	CU_ASSERT_EQUAL(r.received + r.lost, ring_head(&m));
	topic_unmap(&m);
}

static void test_view_invalidated(void)
{
	struct topic_map m;
	struct ring_writer w;
	struct ring_reader r;
	struct shmbus_view view;
	make_topic(&m, 4, 64);
	ring_writer_init(&w, &m, &lines[0], 0, 1);
	ring_reader_init(&r, &m, &lines[32], 0, 0);
	CU_ASSERT_EQUAL(send_u64(&w, 42), 0);
	CU_ASSERT_EQUAL(ring_view(&r, &view), 0);
	CU_ASSERT_EQUAL(*(const uint64_t *)view.data, 42);
	CU_ASSERT_TRUE(ring_view_valid(&r, &view));
	/* Taking while a view is open is out of order. */
	uint64_t v;
	CU_ASSERT_EQUAL(ring_take(&r, &v, sizeof(v), NULL), SHMBUS_ESTATE);
	for (uint64_t i = 0; i < 4; i++) /* laps slot 0 */
		CU_ASSERT_EQUAL(send_u64(&w, 100 + i), 0);
	CU_ASSERT_FALSE(ring_view_valid(&r, &view));
	CU_ASSERT_EQUAL(ring_release(&r, &view), SHMBUS_ELAPPED);
	CU_ASSERT_EQUAL(r.lost, 1);
	CU_ASSERT_EQUAL(r.received, 0);
	/* seq 1..4 are all still there. */
	for (uint64_t i = 0; i < 4; i++) {
		CU_ASSERT_EQUAL(ring_view(&r, &view), 0);
		CU_ASSERT_EQUAL(view.info.seq, i + 1);
		CU_ASSERT_EQUAL(*(const uint64_t *)view.data, 100 + i);
		CU_ASSERT_EQUAL(ring_release(&r, &view), 0);
	}
	CU_ASSERT_EQUAL(r.received + r.lost, 5);
	topic_unmap(&m);
}

static void test_history(void)
{
	struct topic_map m;
	struct ring_writer w;
	make_topic(&m, 16, 64); /* default history: 8 */
	ring_writer_init(&w, &m, &lines[0], 0, 1);
	CU_ASSERT_EQUAL(ring_start_seq(&m, ring_head(&m), SHMBUS_START_LAST, 5), 0);
	for (uint64_t i = 0; i < 10; i++)
		CU_ASSERT_EQUAL(send_u64(&w, i), 0);
	CU_ASSERT_EQUAL(ring_start_seq(&m, 10, SHMBUS_START_NEW, 5), 10);
	CU_ASSERT_EQUAL(ring_start_seq(&m, 10, SHMBUS_START_LAST, 5), 5);
	CU_ASSERT_EQUAL(ring_start_seq(&m, 10, SHMBUS_START_LAST, 100), 2);
	struct ring_reader r;
	ring_reader_init(&r, &m, &lines[32], ring_start_seq(&m, 10, SHMBUS_START_LAST, 3), 0);
	uint64_t v, n = 0;
	while (ring_take(&r, &v, sizeof(v), NULL) == 0)
		CU_ASSERT_EQUAL(v, 7 + n++);
	CU_ASSERT_EQUAL(n, 3);
	CU_ASSERT_EQUAL(r.lost, 0);
	topic_unmap(&m);
}

static void test_oversize_and_discard(void)
{
	struct topic_map m;
	struct ring_writer w;
	struct ring_reader r;
	void *buf;
	size_t cap;
	make_topic(&m, 4, 100);
	ring_writer_init(&w, &m, &lines[0], 0, 1);
	ring_reader_init(&r, &m, &lines[32], 0, 0);
	CU_ASSERT_EQUAL(ring_loan(&w, &buf, &cap), 0);
	CU_ASSERT_EQUAL(cap, 100);
	CU_ASSERT_EQUAL(ring_loan(&w, &buf, &cap), SHMBUS_ESTATE); /* one loan at a time */
	CU_ASSERT_EQUAL(ring_publish(&w, 101, 0, NULL), SHMBUS_EMSGSIZE);
	CU_ASSERT_TRUE(w.loaned); /* the loan stays open */
	CU_ASSERT_EQUAL(ring_discard(&w), 0);
	CU_ASSERT_EQUAL(ring_publish(&w, 1, 0, NULL), SHMBUS_ESTATE);
	CU_ASSERT_EQUAL(send_u64(&w, 5), 0);
	/* A reader skips the discarded sequence number and counts it. */
	uint64_t v;
	struct shmbus_msg_info info;
	CU_ASSERT_EQUAL(ring_take(&r, &v, sizeof(v), &info), 0);
	CU_ASSERT_EQUAL(info.seq, 1);
	CU_ASSERT_EQUAL(info.lost, 1);
	/* A buffer too small: the message stays next, its size reported. */
	CU_ASSERT_EQUAL(send_u64(&w, 6), 0);
	uint8_t small[4];
	CU_ASSERT_EQUAL(ring_take(&r, small, sizeof(small), &info), SHMBUS_EMSGSIZE);
	CU_ASSERT_EQUAL(info.size, 8);
	CU_ASSERT_EQUAL(ring_take(&r, &v, sizeof(v), &info), 0);
	CU_ASSERT_EQUAL(v, 6);
	topic_unmap(&m);
}

static void test_loan_outlives_lap(void)
{
	struct topic_map m;
	struct ring_writer slow, fast, third;
	struct ring_reader r;
	void *buf, *buf2;
	size_t cap;
	make_topic(&m, 2, 64);
	ring_writer_init(&slow, &m, &lines[0], 0, 1);
	ring_writer_init(&fast, &m, &lines[1], 1, 2);
	ring_writer_init(&third, &m, &lines[2], 2, 3);
	ring_reader_init(&r, &m, &lines[32], 0, 0);
	/* All three publishers are alive: their loans are respected. */
	for (int i = 0; i < 3; i++)
		atomic_store(&meta_rw->pubs[i].pid, getpid());
	CU_ASSERT_EQUAL(ring_loan(&slow, &buf, &cap), 0); /* seq 0, slot 0 */
	memset(buf, 0xAA, 64);
	CU_ASSERT_EQUAL(send_u64(&fast, 1), 0); /* seq 1, slot 1 */
	/* seq 2 wants slot 0, still held by the slow loan: it is skipped and
	 * the publisher moves on to seq 3 (slot 1). The slow loan's bytes are
	 * never written under it. */
	CU_ASSERT_EQUAL(send_u64(&fast, 3), 0);
	CU_ASSERT_EQUAL(fast.skipped, 1);
	CU_ASSERT_EQUAL(((uint8_t *)buf)[0], 0xAA);
	/* Both slots held by loans: a third loan finds nothing. */
	CU_ASSERT_EQUAL(ring_loan(&fast, &buf2, &cap), 0);
	CU_ASSERT_EQUAL(ring_loan(&third, &buf2, &cap), SHMBUS_EBUSY);
	CU_ASSERT_EQUAL(ring_discard(&fast), 0);
	/* The slow loan was superseded: publishing it says so. */
	CU_ASSERT_EQUAL(ring_publish(&slow, 8, 0, NULL), SHMBUS_ELAPPED);
	CU_ASSERT_EQUAL(slow.superseded, 1);
	/* The reader gets only intact messages, and counts every other
	 * sequence number as lost. */
	uint64_t v, head = ring_head(&m);
	while (ring_take(&r, &v, sizeof(v), NULL) == 0)
		CU_ASSERT_NOT_EQUAL(v, 0xAAAAAAAAAAAAAAAAull);
	CU_ASSERT_EQUAL(r.next, head);
	CU_ASSERT_EQUAL(r.received + r.lost, head);
	/* The slot is usable again. */
	CU_ASSERT_EQUAL(send_u64(&fast, 9), 0);
	CU_ASSERT_EQUAL(ring_take(&r, &v, sizeof(v), NULL), 0);
	CU_ASSERT_EQUAL(v, 9);
	topic_unmap(&m);
}

static void test_dead_loan_released(void)
{
	struct topic_map m;
	struct ring_writer dead, live;
	struct ring_reader r;
	void *buf;
	size_t cap;
	make_topic(&m, 4, 64);
	ring_writer_init(&dead, &m, &lines[0], 0, 1);
	ring_writer_init(&live, &m, &lines[1], 1, 2);
	ring_reader_init(&r, &m, &lines[32], 0, 0);
	CU_ASSERT_EQUAL(ring_loan(&dead, &buf, &cap), 0); /* and then "dies" */
	CU_ASSERT_EQUAL(send_u64(&live, 1), 0);
	uint64_t v;
	CU_ASSERT_EQUAL(ring_take(&r, &v, sizeof(v), NULL), SHMBUS_EAGAIN); /* seq 0 pending */
	CU_ASSERT_FALSE(ring_ready(&r));
	CU_ASSERT_EQUAL(ring_release_holder(&m, 0), 1);
	CU_ASSERT_TRUE(ring_ready(&r));
	struct shmbus_msg_info info;
	CU_ASSERT_EQUAL(ring_take(&r, &v, sizeof(v), &info), 0);
	CU_ASSERT_EQUAL(v, 1);
	CU_ASSERT_EQUAL(info.lost, 1);
	CU_ASSERT_EQUAL(ring_release_holder(&m, 0), 0); /* only once */
	topic_unmap(&m);
}

static pid_t dead_pid(void)
{
	pid_t pid = fork();
	if (pid == 0)
		_exit(0);
	waitpid(pid, NULL, 0);
	return pid;
}

/* Without a broker: a number handed out but not published within the
 * stall timeout is skipped by the reader alone, whatever the reason (its
 * claimant died before taking its slot, died holding it, or is alive but
 * stopped); the reader writes nothing shared. A publisher that laps onto
 * a slot a dead holder still holds takes it over. */
static void test_stall_recovery(void)
{
	struct topic_map m;
	struct ring_writer w;
	struct ring_reader r;
	void *buf;
	size_t cap;
	uint64_t v;
	struct shmbus_msg_info info;
	make_topic(&m, 8, 64);
	ring_writer_init(&w, &m, &lines[1], 1, 2);
	atomic_store(&meta_rw->pubs[1].pid, getpid());
	ring_reader_init(&r, &m, &lines[32], 0, 0);
	r.stall_ns = 50000000; /* 50 ms */

	/* 1. Claimed, never taken: the claimant died right after its add. */
	atomic_fetch_add(&m.data->next_seq, 1);
	CU_ASSERT_EQUAL(send_u64(&w, 11), 0);
	int64_t t0 = h_now_ns();
	CU_ASSERT_EQUAL(ring_wait(&r, 20000000000ll, NULL), 0);
	CU_ASSERT_TRUE(h_now_ns() - t0 >= r.stall_ns);
	CU_ASSERT_EQUAL(ring_take(&r, &v, sizeof(v), &info), 0);
	CU_ASSERT_EQUAL(v, 11);
	CU_ASSERT_EQUAL(info.lost, 1);

	/* 2. Taken by a holder that died (its line names a dead pid). */
	struct ring_writer dead;
	ring_writer_init(&dead, &m, &lines[0], 0, 1);
	atomic_store(&meta_rw->pubs[0].pid, dead_pid());
	CU_ASSERT_EQUAL(ring_loan(&dead, &buf, &cap), 0);
	uint64_t held = dead.loan_seq;
	CU_ASSERT_EQUAL(send_u64(&w, 12), 0);
	CU_ASSERT_EQUAL(ring_wait(&r, 20000000000ll, NULL), 0);
	CU_ASSERT_EQUAL(ring_take(&r, &v, sizeof(v), &info), 0);
	CU_ASSERT_EQUAL(v, 12);
	CU_ASSERT_EQUAL(info.lost, 1);
	/* The slot still says "held" (the reader did not write it); the next
	 * publisher to reach it takes it over: nothing skipped, ever again. */
	CU_ASSERT_TRUE(atomic_load(&topic_slot(&m, held)->state) & SLOT_OCC);
	for (uint64_t i = 0; i < 32; i++)
		CU_ASSERT_EQUAL(send_u64(&w, 100 + i), 0);
	CU_ASSERT_EQUAL(w.skipped, 0);
	CU_ASSERT_FALSE(atomic_load(&topic_slot(&m, held)->state) & SLOT_OCC);

	/* 3. A live holder that holds its loan past the stall timeout (a
	 * stopped publisher) is skipped too: it cannot stall the reader. The
	 * message it publishes at last is not delivered to a reader that has
	 * moved on; the next lap's publisher skips its slot while it holds
	 * it (it is alive). */
	uint64_t start = ring_head(&m);
	ring_reader_init(&r, &m, &lines[32], start, 0);
	r.stall_ns = 20000000;
	atomic_store(&meta_rw->pubs[0].pid, getpid());
	struct ring_writer live;
	ring_writer_init(&live, &m, &lines[0], 0, 1);
	CU_ASSERT_EQUAL(ring_loan(&live, &buf, &cap), 0);
	CU_ASSERT_EQUAL(send_u64(&w, 13), 0);
	t0 = h_now_ns();
	CU_ASSERT_EQUAL(ring_wait(&r, 20000000000ll, NULL), 0);
	CU_ASSERT_TRUE(h_now_ns() - t0 >= r.stall_ns);
	CU_ASSERT_EQUAL(ring_take(&r, &v, sizeof(v), &info), 0);
	CU_ASSERT_EQUAL(v, 13);
	CU_ASSERT_EQUAL(info.lost, 1);
	for (uint64_t i = 0; i < 8; i++)
		CU_ASSERT_EQUAL(send_u64(&w, 200 + i), 0);
	CU_ASSERT_EQUAL(w.skipped, 1); /* the live holder's slot, once */
	memcpy(buf, &(uint64_t){ 14 }, 8);
	CU_ASSERT_EQUAL(ring_publish(&live, 8, 0, NULL), SHMBUS_ELAPPED);
	while (ring_take(&r, &v, sizeof(v), &info) == 0)
		CU_ASSERT_NOT_EQUAL(v, 14);
	CU_ASSERT_EQUAL(r.next, ring_head(&m));
	CU_ASSERT_EQUAL(r.received + r.lost, ring_head(&m) - start);
	topic_unmap(&m);
}

/* Two stuck numbers in a row cost one stall timeout, not two: everything
 * handed out when the stall began is skipped together. */
static void test_stall_batch(void)
{
	struct topic_map m;
	struct ring_writer w;
	struct ring_reader r;
	uint64_t v;
	struct shmbus_msg_info info;
	make_topic(&m, 8, 64);
	ring_writer_init(&w, &m, &lines[1], 1, 2);
	ring_reader_init(&r, &m, &lines[32], 0, 0);
	r.stall_ns = 100000000; /* 100 ms */
	atomic_fetch_add(&m.data->next_seq, 2); /* two claimants died */
	CU_ASSERT_EQUAL(send_u64(&w, 7), 0);
	int64_t t0 = h_now_ns();
	CU_ASSERT_EQUAL(ring_wait(&r, 20000000000ll, NULL), 0);
	int64_t took = h_now_ns() - t0;
	CU_ASSERT_TRUE(took >= r.stall_ns);
	CU_ASSERT_EQUAL(ring_take(&r, &v, sizeof(v), &info), 0);
	CU_ASSERT_EQUAL(v, 7);
	CU_ASSERT_EQUAL(info.lost, 2);
	/* One timeout, plus the nap granularity: well under two. */
	CU_ASSERT_TRUE(took < 2 * r.stall_ns);
	topic_unmap(&m);
}

/* ---------------------------------------------------------------- stress */

#define WRITERS 3
#define READERS 3

struct stress {
	struct topic_map m;
	uint64_t per_writer;
	_Atomic int writers_done;
	int failures;
	pthread_mutex_t lock;
};

struct msg {
	uint32_t writer;
	uint32_t len;
	uint64_t counter;
	uint8_t body[200];
};

static void fill(struct msg *x, uint32_t writer, uint64_t counter)
{
	x->writer = writer;
	x->counter = counter;
	x->len = (uint32_t)(counter % sizeof(x->body));
	for (uint32_t i = 0; i < x->len; i++)
		x->body[i] = (uint8_t)(counter * 31 + i + writer);
}

static bool intact(const struct msg *x, size_t size)
{
	if (size < offsetof(struct msg, body) || x->writer >= WRITERS ||
	    size != offsetof(struct msg, body) + x->len || x->len != x->counter % sizeof(x->body))
		return false;
	for (uint32_t i = 0; i < x->len; i++)
		if (x->body[i] != (uint8_t)(x->counter * 31 + i + x->writer))
			return false;
	return true;
}

struct worker {
	struct stress *s;
	uint32_t id;
	uint64_t received, lost, torn, disorder;
	bool views;
};

static void *writer_main(void *arg)
{
	struct worker *wk = arg;
	struct ring_writer w;
	ring_writer_init(&w, &wk->s->m, &lines[wk->id], wk->id, wk->id + 1);
	for (uint64_t i = 0; i < wk->s->per_writer; i++) {
		void *buf;
		size_t cap;
		struct msg x;
		fill(&x, wk->id, i);
		int rc = ring_loan(&w, &buf, &cap);
		if (rc) {
			wk->torn++; /* a loan must always be found with 3 writers */
			continue;
		}
		memcpy(buf, &x, offsetof(struct msg, body) + x.len);
		rc = ring_publish(&w, offsetof(struct msg, body) + x.len, 0, NULL);
		if (rc && rc != SHMBUS_ELAPPED)
			wk->torn++;
	}
	atomic_fetch_add(&wk->s->writers_done, 1);
	return NULL;
}

static void *reader_main(void *arg)
{
	struct worker *wk = arg;
	struct ring_reader r;
	uint64_t last[WRITERS];
	ring_reader_init(&r, &wk->s->m, &lines[32 + wk->id], 0, 0);
	for (int i = 0; i < WRITERS; i++)
		last[i] = UINT64_MAX;
	for (;;) {
		struct msg x;
		struct shmbus_msg_info info;
		int rc;
		if (wk->views) {
			struct shmbus_view v;
			rc = ring_view(&r, &v);
			if (rc == 0) {
				size_t n = v.info.size < sizeof(x) ? v.info.size : sizeof(x);
				ring_copy_racy(&x, v.data, n);
				if (ring_release(&r, &v) == SHMBUS_ELAPPED)
					continue; /* overwritten while viewed: counted lost */
				info = v.info;
				if (!intact(&x, info.size)) {
					wk->torn++;
					continue;
				}
				if (last[x.writer] != UINT64_MAX && x.counter <= last[x.writer])
					wk->disorder++;
				last[x.writer] = x.counter;
				continue;
			}
		} else {
			rc = ring_take(&r, &x, sizeof(x), &info);
			if (rc == 0) {
				if (!intact(&x, info.size)) {
					wk->torn++;
					continue;
				}
				if (last[x.writer] != UINT64_MAX && x.counter <= last[x.writer])
					wk->disorder++;
				last[x.writer] = x.counter;
				continue;
			}
		}
		if (rc != SHMBUS_EAGAIN) {
			wk->torn++;
			break;
		}
		if (atomic_load(&wk->s->writers_done) == WRITERS &&
		    r.next == ring_head(&wk->s->m))
			break;
		ring_wait(&r, 1000000, NULL);
	}
	wk->received = r.received;
	wk->lost = r.lost;
	return NULL;
}

static void test_stress(void)
{
	struct stress s = { .per_writer = 200000 };
	const char *env = getenv("SHMBUS_STRESS_N");
	if (env)
		s.per_writer = strtoull(env, NULL, 10);
	make_topic(&s.m, 64, sizeof(struct msg));
	for (int i = 0; i < WRITERS; i++) /* all alive: no loan is taken over */
		atomic_store(&meta_rw->pubs[i].pid, getpid());
	pthread_t wt[WRITERS], rt[READERS];
	struct worker ww[WRITERS], rw[READERS];
	for (uint32_t i = 0; i < READERS; i++) {
		rw[i] = (struct worker){ .s = &s, .id = i, .views = i == READERS - 1 };
		pthread_create(&rt[i], NULL, reader_main, &rw[i]);
	}
	for (uint32_t i = 0; i < WRITERS; i++) {
		ww[i] = (struct worker){ .s = &s, .id = i };
		pthread_create(&wt[i], NULL, writer_main, &ww[i]);
	}
	for (int i = 0; i < WRITERS; i++) {
		pthread_join(wt[i], NULL);
		CU_ASSERT_EQUAL(ww[i].torn, 0);
	}
	uint64_t head = ring_head(&s.m);
	for (int i = 0; i < READERS; i++) {
		pthread_join(rt[i], NULL);
		CU_ASSERT_EQUAL(rw[i].torn, 0);
		CU_ASSERT_EQUAL(rw[i].disorder, 0);
		CU_ASSERT_EQUAL(rw[i].received + rw[i].lost, head);
		CU_ASSERT_TRUE(rw[i].received > 0);
		printf("\n  reader %d: received %llu lost %llu of %llu%s", i,
		       (unsigned long long)rw[i].received, (unsigned long long)rw[i].lost,
		       (unsigned long long)head, rw[i].views ? " (views)" : "");
	}
	CU_ASSERT_TRUE(head >= WRITERS * s.per_writer);
	topic_unmap(&s.m);
}

static void add(void)
{
	CU_pSuite s = CU_add_suite("ring", NULL, NULL);
	CU_add_test(s, "wrap-around", test_wraparound);
	CU_add_test(s, "lapped: exact loss", test_lapped_exact_loss);
	CU_add_test(s, "lapped: a slow reader paces itself", test_lapped_pace);
	CU_add_test(s, "view invalidated while held", test_view_invalidated);
	CU_add_test(s, "history for late joiners", test_history);
	CU_add_test(s, "oversize, discard, small buffer", test_oversize_and_discard);
	CU_add_test(s, "loan that outlives a lap", test_loan_outlives_lap);
	CU_add_test(s, "dead publisher's loan released", test_dead_loan_released);
	CU_add_test(s, "stalls: dead claimant, dead holder, stopped holder", test_stall_recovery);
	CU_add_test(s, "stalls: a run of stuck numbers costs one timeout", test_stall_batch);
	CU_add_test(s, "stress: 3 writers x 3 readers", test_stress);
}

int main(void)
{
	return h_run("test_ring", add);
}
