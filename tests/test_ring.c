/*
 * test_ring.c - the slot ring on its own (threads, no broker): wrap-around,
 * exact loss counts when lapped, views invalidated under the reader,
 * history for late joiners, oversize, loans that outlive a lap, tags that
 * refuse flipped bytes and replays, waits that a message ends at every step
 * of going to sleep, a many-writer many-reader stress run and a torn-read
 * run on a tiny ring (both also run under ThreadSanitizer).
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "harness.h"
#include "ring.h"
#include "segment.h"


/* A topic as a client maps it, with the broker's side a test needs: the
 * meta writable (the publisher table), a wake board of one line, and a
 * page of counter lines. */
static struct meta_header *meta_rw;
static struct board_line board[1];
static struct client_line lines[PAGE_LINES];

/* A ring whose first sequence number is base (a successor's is its
 * predecessor's seal). */
static void make_ring_at(struct topic_map *m, uint32_t slots, uint32_t max, uint64_t base)
{
	struct seg_params p = { .slot_count = slots, .max_message_size = max, .topic = "t",
				.base_seq = base };
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
	seg_data_format(data, base);
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

static void make_topic(struct topic_map *m, uint32_t slots, uint32_t max)
{
	make_ring_at(m, slots, max, 0);
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
	/* Pacing now: a view (at lag 15) during which 5 messages are
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
	/* A message it could not hold without it being overwritten (40 at
	 * lag 12, + advance 5 > 16, once 7 more are published) is skipped for
	 * the oldest one it can hold: 52 + 5 - 16 = 41, one lost. Not the
	 * newest, which would lose ten more and which a publisher may still
	 * be writing. */
	for (uint64_t i = 45; i < 52; i++)
		CU_ASSERT_EQUAL(send_u64(&w, i), 0);
	CU_ASSERT_EQUAL(ring_view(&r, &view), 0);
	CU_ASSERT_EQUAL(view.info.seq, 41);
	CU_ASSERT_EQUAL(view.info.lost, 1);
	CU_ASSERT_EQUAL(ring_release(&r, &view), 0);
	/* The rest are within its reach: it takes them all. */
	for (uint64_t i = 42; i < 52; i++) {
		CU_ASSERT_EQUAL(ring_take(&r, &v, sizeof(v), &info), 0);
		CU_ASSERT_EQUAL(info.seq, i);
		CU_ASSERT_EQUAL(info.lost, 0);
	}
	CU_ASSERT_EQUAL(r.received + r.lost, ring_head(&m));

	/* Half a lap per hold (a subscriber holding a camera frame for two
	 * frame periods in a four-slot ring) leaves a margin: a message about
	 * to be overwritten is skipped for one that stays, every time, rather
	 * than held and lost. */
	r.advance = 8;
	for (uint64_t i = 52; i < 64; i++)
		CU_ASSERT_EQUAL(send_u64(&w, i), 0);
	CU_ASSERT_EQUAL(ring_view(&r, &view), 0);
	CU_ASSERT_EQUAL(view.info.seq, 64 + 8 - 16);
	CU_ASSERT_EQUAL(ring_release(&r, &view), 0);
	while (ring_take(&r, &v, sizeof(v), &info) == 0)
		;
	CU_ASSERT_EQUAL(r.received + r.lost, ring_head(&m));

	/* One hold that took a whole lap (a reader preempted mid-copy)
	 * leaves an estimate no margin fits. Skipping to the newest would land
	 * on the number the publisher is still writing, again at every look
	 * while it writes without pause, and a reader that holds nothing never
	 * learns better: it holds what it has instead, and the estimate comes
	 * down. (The reader caught up above, which ended its pacing: it is
	 * behind again here.) */
	r.pacing = true;
	r.advance = 16;
	for (uint64_t i = 64; i < 72; i++)
		CU_ASSERT_EQUAL(send_u64(&w, i), 0);
	void *buf;
	size_t cap;
	uint64_t got = 0;
	for (uint64_t i = 72; i < 80; i++) {
		CU_ASSERT_EQUAL_FATAL(ring_loan(&w, &buf, &cap), 0); /* i, mid-write */
		if (ring_take(&r, &v, sizeof(v), &info) == 0) {
			got++;
			CU_ASSERT_EQUAL(v, info.seq);
		}
		memcpy(buf, &i, sizeof(i));
		CU_ASSERT_EQUAL(ring_publish(&w, sizeof(i), 0, NULL), 0);
	}
	CU_ASSERT_EQUAL(got, 8);
	CU_ASSERT_TRUE(r.advance < 16);
	CU_ASSERT_EQUAL(r.received + r.lost + (r.next < ring_head(&m) ? ring_head(&m) - r.next : 0),
			ring_head(&m));
	topic_unmap(&m);
}

/* A reader slower than its publisher for good (the publisher puts two
 * messages in the ring while the reader holds one) stays paced for as long
 * as it is behind, not for a fixed number of messages after a lap: left to
 * drift, it would sit at the oldest message again and have each view
 * overwritten while held. It stops pacing once it has caught up. */
static void test_lapped_pace_holds(void)
{
	struct topic_map m;
	struct ring_writer w;
	struct ring_reader r;
	struct shmbus_view view;
	make_topic(&m, 16, 64);
	ring_writer_init(&w, &m, &lines[0], 0, 1);
	ring_reader_init(&r, &m, &lines[32], 0, 0);
	uint64_t sent = 0;
	for (; sent < 40; sent++)
		CU_ASSERT_EQUAL(send_u64(&w, sent), 0);
	uint64_t overwritten = 0;
	for (int i = 0; i < 1000; i++) {
		CU_ASSERT_EQUAL_FATAL(ring_view(&r, &view), 0);
		for (int k = 0; k < 2; k++, sent++)
			CU_ASSERT_EQUAL(send_u64(&w, sent), 0);
		if (ring_release(&r, &view) != 0 && i >= 4)
			overwritten++; /* the first holds teach it what one costs */
	}
	CU_ASSERT_EQUAL(overwritten, 0);
	CU_ASSERT_TRUE(r.pacing);
	/* Caught up: pacing ends, and every number is accounted for. */
	uint64_t v;
	struct shmbus_msg_info info;
	while (ring_take(&r, &v, sizeof(v), &info) == 0)
		CU_ASSERT_EQUAL(v, info.seq);
	CU_ASSERT_FALSE(r.pacing);
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

/* Batches: the same messages, order and losses as one take at a time, a
 * message too large for the batch's cells stops it and stays next, and
 * views of a batch are each checked and released. */
static void test_batches(void)
{
	struct topic_map m;
	struct ring_writer w;
	struct ring_reader r;
	struct shmbus_msg_info info[8];
	uint64_t cell[8];
	size_t n;
	make_topic(&m, 8, 64);
	ring_writer_init(&w, &m, &lines[0], 0, 1);
	ring_reader_init(&r, &m, &lines[32], 0, 0);
	r.oldest_on_lap = true;
	CU_ASSERT_EQUAL(ring_take_many(&r, cell, sizeof(cell[0]), 8, info, &n), SHMBUS_EAGAIN);
	CU_ASSERT_EQUAL(n, 0);
	for (uint64_t i = 0; i < 3; i++)
		CU_ASSERT_EQUAL(send_u64(&w, i), 0);
	CU_ASSERT_EQUAL(ring_take_many(&r, cell, sizeof(cell[0]), 8, info, &n), 0);
	CU_ASSERT_EQUAL(n, 3);
	for (uint64_t i = 0; i < n; i++) {
		CU_ASSERT_EQUAL(cell[i], i);
		CU_ASSERT_EQUAL(info[i].seq, i);
		CU_ASSERT_EQUAL(info[i].lost, 0);
		CU_ASSERT_EQUAL(info[i].size, sizeof(uint64_t));
	}
	/* Its line is written once for the batch, and says all of it. */
	CU_ASSERT_EQUAL(lines[32].count, 3);
	CU_ASSERT_EQUAL(lines[32].next_seq, 3);
	/* Lapped: 3..22 published into 8 slots, 15 gone; a batch of 4 gets
	 * the oldest left with the loss before it, then the next three. */
	for (uint64_t i = 3; i < 23; i++)
		CU_ASSERT_EQUAL(send_u64(&w, i), 0);
	CU_ASSERT_EQUAL(ring_take_many(&r, cell, sizeof(cell[0]), 4, info, &n), 0);
	CU_ASSERT_EQUAL(n, 4);
	CU_ASSERT_EQUAL(info[0].seq, 15);
	CU_ASSERT_EQUAL(info[0].lost, 12);
	for (uint64_t i = 0; i < n; i++) {
		CU_ASSERT_EQUAL(cell[i], 15 + i);
		CU_ASSERT_EQUAL(info[i].seq, 15 + i);
		CU_ASSERT_EQUAL(info[i].lost, i ? 0 : 12);
	}
	/* A skipped number inside a batch shows as the next message's loss. */
	void *buf;
	size_t cap;
	CU_ASSERT_EQUAL(ring_loan(&w, &buf, &cap), 0);
	CU_ASSERT_EQUAL(ring_discard(&w), 0); /* 23 */
	CU_ASSERT_EQUAL(send_u64(&w, 24), 0);
	/* A message larger than a cell: the batch stops before it. */
	CU_ASSERT_EQUAL(ring_loan(&w, &buf, &cap), 0);
	memset(buf, 7, 40);
	CU_ASSERT_EQUAL(ring_publish(&w, 40, 0, NULL), 0); /* 25 */
	CU_ASSERT_EQUAL(send_u64(&w, 26), 0);
	CU_ASSERT_EQUAL(ring_take_many(&r, cell, sizeof(cell[0]), 8, info, &n), 0);
	CU_ASSERT_EQUAL(n, 5); /* 19 20 21 22 24 */
	CU_ASSERT_EQUAL(info[3].seq, 22);
	CU_ASSERT_EQUAL(info[4].seq, 24);
	CU_ASSERT_EQUAL(info[4].lost, 1);
	CU_ASSERT_EQUAL(cell[4], 24);
	CU_ASSERT_EQUAL(ring_take_many(&r, cell, sizeof(cell[0]), 8, info, &n), SHMBUS_EMSGSIZE);
	CU_ASSERT_EQUAL(n, 0);
	CU_ASSERT_EQUAL(info[0].size, 40);
	uint8_t big[2][64];
	CU_ASSERT_EQUAL(ring_take_many(&r, big, sizeof(big[0]), 2, info, &n), 0);
	CU_ASSERT_EQUAL(n, 2);
	CU_ASSERT_EQUAL(info[0].seq, 25);
	CU_ASSERT_EQUAL(info[0].size, 40);
	CU_ASSERT_EQUAL(big[0][39], 7);
	CU_ASSERT_EQUAL(info[1].seq, 26);
	CU_ASSERT_EQUAL(r.received + r.lost, ring_head(&m));
	CU_ASSERT_EQUAL(lines[32].lost, r.lost);
	CU_ASSERT_EQUAL(lines[32].count, r.received);

	/* Views: a batch of three, the oldest overwritten while held. */
	for (uint64_t i = 27; i < 30; i++)
		CU_ASSERT_EQUAL(send_u64(&w, i), 0);
	struct shmbus_view views[4];
	CU_ASSERT_EQUAL(ring_view_many(&r, views, 4, &n), 0);
	CU_ASSERT_EQUAL(n, 3);
	uint64_t v;
	CU_ASSERT_EQUAL(ring_take(&r, &v, sizeof(v), NULL), SHMBUS_ESTATE);
	CU_ASSERT_EQUAL(ring_view_many(&r, views, 4, &n), SHMBUS_ESTATE);
	for (uint64_t i = 30; i < 36; i++) /* 35 takes 27's slot */
		CU_ASSERT_EQUAL(send_u64(&w, i), 0);
	CU_ASSERT_FALSE(ring_view_valid(&r, &views[0]));
	CU_ASSERT_TRUE(ring_view_valid(&r, &views[1]));
	CU_ASSERT_EQUAL(*(const uint64_t *)views[2].data, 29);
	uint64_t lost = r.lost, received = r.received;
	CU_ASSERT_EQUAL(ring_release(&r, &views[0]), SHMBUS_ELAPPED);
	CU_ASSERT_EQUAL(ring_release(&r, &views[0]), SHMBUS_ESTATE); /* twice */
	CU_ASSERT_EQUAL(ring_release(&r, &views[2]), 0);
	CU_ASSERT_EQUAL(ring_release(&r, &views[1]), 0);
	CU_ASSERT_EQUAL(r.lost, lost + 1);
	CU_ASSERT_EQUAL(r.received, received + 2);
	CU_ASSERT_EQUAL(r.last_seq, 29);
	CU_ASSERT_EQUAL(ring_view_many(&r, views, 4, &n), 0);
	CU_ASSERT_EQUAL(n, 4);
	CU_ASSERT_EQUAL(views[0].info.seq, 30);
	for (size_t i = 0; i < n; i++)
		CU_ASSERT_EQUAL(ring_release(&r, &views[i]), 0);
	CU_ASSERT_EQUAL(r.received + r.lost, ring_head(&m) - 2); /* 34 is next */
	CU_ASSERT_EQUAL(lines[32].count, r.received);
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

/* A loan gives up (EBUSY) only when every slot is held by an open loan,
 * not after a fixed number of tries. On a loaded machine the publishers'
 * claims interleave, so one publisher's tries can land on held slots and on
 * numbers other publishers already passed while free slots remain: here
 * half the ring is held by two live loans and the other half carries
 * numbers claimed ahead of this publisher's (as a publisher slowed between
 * taking a number and claiming its slot finds them). */
static void test_loan_busy_only_when_all_held(void)
{
	struct topic_map m;
	struct ring_writer a, h[4];
	void *buf;
	size_t cap;
	make_topic(&m, 8, 64);
	for (uint32_t i = 0; i < 5; i++)
		atomic_store(&meta_rw->pubs[i].pid, getpid());
	ring_writer_init(&a, &m, &lines[0], 0, 1);
	for (uint32_t i = 0; i < 4; i++) {
		ring_writer_init(&h[i], &m, &lines[1 + i], 1 + i, 2 + i);
		CU_ASSERT_EQUAL_FATAL(ring_loan(&h[i], &buf, &cap), 0); /* seq i, slot i */
	}
	/* Slots 4..7 hold numbers 12..15: claimed ahead, committed. */
	for (uint64_t n = 12; n < 16; n++)
		atomic_store(&topic_slot(&m, n)->state, SLOT_STATE(n, 0));
	atomic_store(&m.data->next_seq, 4);
	/* Numbers 4..15 all fail (held, or already passed); 16 on succeed. */
	CU_ASSERT_EQUAL(ring_loan(&a, &buf, &cap), 0);
	CU_ASSERT_EQUAL(a.loan_seq, 20);
	CU_ASSERT_EQUAL(ring_discard(&a), 0);
	/* Every slot held: EBUSY, still. */
	struct ring_writer more[4];
	for (uint32_t i = 0; i < 4; i++) {
		ring_writer_init(&more[i], &m, &lines[5 + i], 5 + i, 6 + i);
		atomic_store(&meta_rw->pubs[5 + i].pid, getpid());
		CU_ASSERT_EQUAL(ring_loan(&more[i], &buf, &cap), 0);
	}
	CU_ASSERT_EQUAL(ring_loan(&a, &buf, &cap), SHMBUS_EBUSY);
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
/* SHMBUS_SPIN_AUTO: waits that find messages coming fast make the reader
 * spin (within its bounds, never 0 even when every wait found one at
 * once); waits that time out after longer than the gap make it sleep at
 * once; polls (timeout 0) teach it nothing. */
static void test_spin_auto(void)
{
	struct topic_map m;
	struct ring_writer w;
	struct ring_reader r;
	uint64_t v;
	struct shmbus_msg_info info;
	make_topic(&m, 64, 64);
	ring_writer_init(&w, &m, &lines[1], 1, 2);
	ring_reader_init(&r, &m, &lines[32], 0, 0);
	ring_reader_spin_auto(&r);
	CU_ASSERT_TRUE(r.spin_ns >= SPIN_AUTO_MIN_NS && r.spin_ns <= SPIN_AUTO_MAX_NS);
	for (int i = 0; i < 40; i++) {
		CU_ASSERT_EQUAL(send_u64(&w, (uint64_t)i), 0);
		CU_ASSERT_EQUAL(ring_wait(&r, 20000000000ll, NULL), 0);
		CU_ASSERT_EQUAL(ring_take(&r, &v, sizeof(v), &info), 0);
	}
	CU_ASSERT_TRUE(r.spin_ns >= SPIN_AUTO_MIN_NS && r.spin_ns <= SPIN_AUTO_MAX_NS);
	/* Nothing comes for 2 ms at a time: a rare stream, sleep at once. */
	for (int i = 0; i < 20; i++)
		CU_ASSERT_EQUAL(ring_wait(&r, 2000000, NULL), SHMBUS_ETIMEDOUT);
	CU_ASSERT_EQUAL(r.spin_ns, 0);
	int64_t gap = r.gap_ns;
	for (int i = 0; i < 20; i++)
		CU_ASSERT_EQUAL(ring_wait(&r, 0, NULL), SHMBUS_ETIMEDOUT);
	CU_ASSERT_EQUAL(r.gap_ns, gap);
	/* Fast again: it learns to spin again. */
	for (int i = 0; i < 40; i++) {
		CU_ASSERT_EQUAL(send_u64(&w, (uint64_t)i), 0);
		CU_ASSERT_EQUAL(ring_wait(&r, 20000000000ll, NULL), 0);
		CU_ASSERT_EQUAL(ring_take(&r, &v, sizeof(v), &info), 0);
	}
	CU_ASSERT_TRUE(r.spin_ns >= SPIN_AUTO_MIN_NS && r.spin_ns <= SPIN_AUTO_MAX_NS);
}

/* ------------------------------------------------- waking for a period */

#define US 1000ll
#define MS 1000000ll

/* A message stamped `stamp` delivered, then a wait starting at `now`:
 * whether it plans a sleep. */
static bool plan_after(struct wake_plan *p, int64_t stamp, int64_t now, int64_t *wake,
		       int64_t *end)
{
	wake_plan_note(p, stamp);
	return wake_plan_next(p, now, wake, end);
}

/* 1 kHz, one message per wait, each wait starting 5 us after its message:
 * the index of the first wait that plans (-1: none in n). */
static int first_plan(struct wake_plan *p, int64_t t0, int64_t period, int n)
{
	int64_t wake, end;
	for (int i = 0; i < n; i++)
		if (plan_after(p, t0 + i * period, t0 + i * period + 5 * US, &wake, &end))
			return i;
	return -1;
}

/* The plan's arithmetic, fed stamps: a steady stream is planned for after a
 * few intervals, its wake-up before the due time by the window and the
 * learned lateness, its spin ending a window after; bursts, replayed or
 * foreign stamps, periods too short and messages taken several per wait
 * are never planned for; a rate change is followed, an outlier is not. */
static void test_wake_plan(void)
{
	const int64_t t0 = 1000000 * MS;
	int64_t wake, end;

	struct wake_plan p = {0};
	int first = first_plan(&p, t0, MS, 20);
	CU_ASSERT_TRUE(first > WAKE_PLAN_REGULAR && first <= WAKE_PLAN_REGULAR + 2);
	int64_t last = t0 + first * MS, now = last + 5 * US;
	CU_ASSERT_TRUE(wake_plan_next(&p, now, &wake, &end));
	int64_t window = WAKE_PLAN_WINDOW_NS + MS / 128;
	/* Before the first timed sleep: lateness guessed at 100 us. */
	CU_ASSERT_EQUAL(wake, last + MS - window - 100 * US);
	CU_ASSERT_EQUAL(end, last + MS + window);
	/* Timed sleeps end 115 us late: the wake-up moves to match. */
	wake_plan_woke(&p, 115 * US);
	CU_ASSERT_TRUE(wake_plan_next(&p, now, &wake, &end));
	CU_ASSERT_EQUAL(wake, last + MS - window - 115 * US);
	/* A stall of the machine (3 ms late) moves it by a bounded step. */
	wake_plan_woke(&p, 3 * MS);
	CU_ASSERT_TRUE(wake_plan_next(&p, now, &wake, &end));
	CU_ASSERT_TRUE(last + MS - window - wake < 115 * US + 30 * US);
	CU_ASSERT_TRUE(last + MS - window - wake > 115 * US);
	/* The due time passed or is too close: no plan. */
	CU_ASSERT_FALSE(wake_plan_next(&p, last + MS, &wake, &end));
	CU_ASSERT_FALSE(wake_plan_next(&p, last + MS - window - 115 * US, &wake, &end));

	/* An outlier (a publisher woken 3 ms late, then catching up) stops
	 * the plans only until an interval fits again; the period stays. */
	int64_t t = last;
	CU_ASSERT_FALSE(plan_after(&p, t + 3 * MS, t + 3 * MS + 5 * US, &wake, &end));
	CU_ASSERT_FALSE(plan_after(&p, t + 3 * MS + 10 * US, t + 3 * MS + 15 * US, &wake, &end));
	CU_ASSERT_TRUE(plan_after(&p, t + 4 * MS, t + 4 * MS + 5 * US, &wake, &end));
	CU_ASSERT_TRUE(end > t + 5 * MS && end < t + 5 * MS + 2 * window);

	/* The rate halves: three intervals that agree make the new period,
	 * and the next one that fits it, a plan. */
	t += 4 * MS;
	int i;
	for (i = 1; i <= 6; i++)
		if (plan_after(&p, t + i * 2 * MS, t + i * 2 * MS + 5 * US, &wake, &end))
			break;
	CU_ASSERT_EQUAL(i, WAKE_PLAN_REGULAR);
	CU_ASSERT_TRUE(end > t + (i + 1) * 2 * MS && end < t + (i + 1) * 2 * MS + 2 * window);

	/* Eight messages 2 us apart every 8 ms, taken one per wait or all
	 * in one: never planned for. */
	struct wake_plan b = {0}, b8 = {0};
	int planned = 0;
	for (int k = 0; k < 50; k++)
		for (int j = 0; j < 8; j++) {
			int64_t st = t0 + k * 8 * MS + j * 2 * US;
			planned += plan_after(&b, st, st + 5 * US, &wake, &end);
			wake_plan_note(&b8, st);
			if (j == 7)
				planned += wake_plan_next(&b8, st + 5 * US, &wake, &end);
		}
	CU_ASSERT_EQUAL(planned, 0);

	/* Stamps ahead of the reader's clock (a publisher's own clock), or a
	 * recording's stamps long past: never planned for. */
	struct wake_plan ahead = {0}, past = {0};
	CU_ASSERT_EQUAL(first_plan(&ahead, t0 + 3600000 * MS, MS, 0), -1);
	planned = 0;
	for (int k = 0; k < 20; k++) {
		planned += plan_after(&ahead, t0 + 3600000 * MS + k * MS, t0 + k * MS, &wake, &end);
		planned += plan_after(&past, t0 - 3600000 * MS + k * MS, t0 + k * MS, &wake, &end);
	}
	CU_ASSERT_EQUAL(planned, 0);

	/* Stamps a publisher made up (the ends of int64_t, backwards, far
	 * apart), and lateness from a stopped machine: never a plan, and no
	 * overflow (UBSan builds would stop here). */
	const int64_t odd[] = {INT64_MAX, INT64_MIN, 0, -1, INT64_MAX - 1, 1, INT64_MIN + 1,
			       t0 + 20000 * MS, t0, t0 - MS};
	const int nodd = (int)(sizeof(odd) / sizeof(odd[0]));
	struct wake_plan h = {0};
	planned = 0;
	for (int k = 0; k < 20 * nodd; k++) {
		planned += plan_after(&h, odd[k % nodd], t0 + k * MS, &wake, &end);
		wake_plan_woke(&h, k % 2 ? INT64_MAX : INT64_MIN);
	}
	CU_ASSERT_EQUAL(planned, 0);
	CU_ASSERT_TRUE(h.late_ns >= 0 && h.late_ns <= WAKE_PLAN_MAX_LATE_NS);
	/* A steady stream after all that is planned for again. */
	CU_ASSERT_TRUE(first_plan(&h, t0 + 100000 * MS, MS, 20) >= 0);

	/* A slow stream (one message in 5 s): the window stops at its
	 * bound, so a stream that stops costs a bounded spin. */
	struct wake_plan slow = {0};
	int k5 = first_plan(&slow, t0, 5000 * MS, 20);
	CU_ASSERT_TRUE(k5 >= 0);
	CU_ASSERT_TRUE(wake_plan_next(&slow, t0 + k5 * 5000 * MS + 5 * US, &wake, &end));
	CU_ASSERT_EQUAL(end, t0 + (k5 + 1) * 5000 * MS + WAKE_PLAN_MAX_WINDOW_NS);

	/* 10 kHz: the spin budget's business, not a timer's. */
	struct wake_plan fast = {0};
	CU_ASSERT_EQUAL(first_plan(&fast, t0, 100 * US, 100), -1);
}

struct late_send {
	struct ring_writer *w;
	struct wait_intr *intr; /* raise it instead of publishing */
	int64_t after_ns;
};

static void *late_send_main(void *arg)
{
	struct late_send *ls = arg;
	struct timespec ts = {ls->after_ns / MS / 1000, ls->after_ns % (1000 * MS)};
	nanosleep(&ts, NULL);
	if (ls->intr)
		wait_intr_raise(ls->intr);
	else
		CU_ASSERT_EQUAL(send_u64(ls->w, 99), 0);
	return NULL;
}

/* A reader whose messages came `period` apart, the next due `due_in` from
 * now (at most a period): its wait sleeps until just before then and spins
 * a window. */
static void plan_reader(struct topic_map *m, struct ring_writer *w, struct ring_reader *r,
			int64_t period, int64_t due_in)
{
	uint64_t v;
	struct shmbus_msg_info info;
	make_topic(m, 64, 64);
	ring_writer_init(w, m, &lines[1], 1, 2);
	ring_reader_init(r, m, &lines[32], 0, 0);
	ring_reader_spin_auto(r);
	/* Waits that end after milliseconds: a rare stream, no spin. */
	CU_ASSERT_EQUAL(ring_wait(r, 2 * MS, NULL), SHMBUS_ETIMEDOUT);
	CU_ASSERT_EQUAL(r->spin_ns, 0);
	int64_t base = stamp_ns() + due_in - 7 * period;
	for (int i = 0; i <= 6; i++) {
		void *buf;
		size_t cap;
		CU_ASSERT_EQUAL(ring_loan(w, &buf, &cap), 0);
		memcpy(buf, &i, sizeof(i));
		CU_ASSERT_EQUAL(ring_publish(w, sizeof(v), base + i * period, NULL), 0);
		CU_ASSERT_EQUAL(ring_take(r, &v, sizeof(v), &info), 0);
		/* A poll: learns the interval, teaches the spin nothing. */
		CU_ASSERT_EQUAL(ring_wait(r, 0, NULL), SHMBUS_ETIMEDOUT);
	}
	CU_ASSERT_EQUAL(r->spin_ns, 0);
	CU_ASSERT_TRUE(r->plan.regular >= WAKE_PLAN_REGULAR);
}

/* Planned waits, for real (threads, the clock): a message that does not
 * come by the window's end is waited for asleep (the wait costs no core)
 * and still ends the wait when it comes; one that comes early, or an
 * interrupt, ends the planned sleep; the caller's timeout holds. Bounds
 * are loose: only a wait that spun to its end, or slept through a
 * message, could fail them. */
static void test_planned_wait(void)
{
	struct topic_map m;
	struct ring_writer w;
	struct ring_reader r;
	uint64_t v;
	struct shmbus_msg_info info;
	pthread_t th;

	/* Nothing comes: the wait sleeps to the due time, spins its window,
	 * sleeps again, and times out when asked. */
	plan_reader(&m, &w, &r, 1000 * MS, 250 * MS);
	CU_ASSERT_FALSE(r.plan.late_known);
	int64_t t = h_now_ns(), cpu = h_thread_cpu_ns();
	CU_ASSERT_EQUAL(ring_wait(&r, 1000 * MS, NULL), SHMBUS_ETIMEDOUT);
	CU_ASSERT_TRUE(h_now_ns() - t >= 1000 * MS);
	CU_ASSERT_TRUE(r.plan.late_known); /* the planned sleep ran out */
	CU_ASSERT_TRUE(h_thread_cpu_ns() - cpu < 100 * MS);

	/* It comes 500 ms late: the wait was asleep again, and wakes for it. */
	plan_reader(&m, &w, &r, 1000 * MS, 100 * MS);
	struct late_send ls = {.w = &w, .after_ns = 600 * MS};
	CU_ASSERT_EQUAL(pthread_create(&th, NULL, late_send_main, &ls), 0);
	cpu = h_thread_cpu_ns();
	CU_ASSERT_EQUAL(ring_wait(&r, 20000 * MS, NULL), 0);
	CU_ASSERT_TRUE(h_thread_cpu_ns() - cpu < 200 * MS);
	CU_ASSERT_EQUAL(ring_take(&r, &v, sizeof(v), &info), 0);
	CU_ASSERT_EQUAL(v, 99);
	pthread_join(th, NULL);

	/* Planned for 5 s from now, it comes at once, or an interrupt does:
	 * either ends the planned sleep (a missed wake-up would sleep until
	 * the plan's time ran out). */
	for (int k = 0; k < 2; k++) {
		struct wait_intr intr = {0};
		plan_reader(&m, &w, &r, 10000 * MS, 5000 * MS);
		ls = (struct late_send){.w = &w, .intr = k ? &intr : NULL, .after_ns = 1 * MS};
		CU_ASSERT_EQUAL(pthread_create(&th, NULL, late_send_main, &ls), 0);
		CU_ASSERT_EQUAL(ring_wait(&r, 20000 * MS, &intr), k ? SHMBUS_EINTR : 0);
		pthread_join(th, NULL);
		CU_ASSERT_FALSE(r.plan.late_known); /* woken, not timed out */
	}
}

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

/* ------------------------------------------------- claims, sizes, seals */

/* A claim that comes late to its slot (its claimant was descheduled between
 * taking the number and the slot) finds a later lap's message there: its
 * number is lost, the newer message stays. */
static void test_late_claim(void)
{
	struct topic_map m;
	struct ring_writer w;
	void *buf;
	size_t cap;
	make_topic(&m, 8, 64);
	ring_writer_init(&w, &m, &lines[0], 0, 1);
	CU_ASSERT_EQUAL(send_u64(&w, 0), 0);
	/* Number 9 committed in slot 1 before number 1 is claimed. */
	atomic_store(&topic_slot(&m, 1)->state, SLOT_STATE(9, 0));
	CU_ASSERT_EQUAL(ring_loan(&w, &buf, &cap), 0);
	CU_ASSERT_EQUAL(w.loan_seq, 2);
	CU_ASSERT_EQUAL(w.skipped, 1);
	CU_ASSERT_EQUAL(atomic_load(&topic_slot(&m, 1)->state), SLOT_STATE(9, 0));
	CU_ASSERT_EQUAL(ring_discard(&w), 0);
	topic_unmap(&m);
}

/* A size over the topic's maximum (only a broken or hostile publisher
 * writes one) is never delivered, by take even into a buffer that would
 * hold it, nor by view: that message is lost, the next one comes. */
static void test_size_over_max(void)
{
	struct topic_map m;
	struct ring_writer w;
	struct ring_reader r, rv;
	struct shmbus_msg_info info;
	struct shmbus_view view;
	uint64_t big[64];
	make_topic(&m, 8, 64);
	ring_writer_init(&w, &m, &lines[0], 0, 1);
	ring_reader_init(&r, &m, &lines[32], 0, 0);
	ring_reader_init(&rv, &m, &lines[33], 0, 0);
	for (uint64_t i = 0; i < 3; i++)
		CU_ASSERT_EQUAL(send_u64(&w, 100 + i), 0);
	CU_ASSERT_FATAL(m.max_message_size + 1 <= sizeof(big));
	atomic_store(&topic_slot(&m, 1)->size, m.max_message_size + 1);
	CU_ASSERT_EQUAL(ring_take(&r, big, sizeof(big), &info), 0);
	CU_ASSERT_EQUAL(big[0], 100);
	CU_ASSERT_EQUAL(ring_take(&r, big, sizeof(big), &info), 0);
	CU_ASSERT_EQUAL(info.seq, 2);
	CU_ASSERT_EQUAL(info.lost, 1);
	CU_ASSERT_EQUAL(big[0], 102);
	CU_ASSERT_EQUAL(ring_view(&rv, &view), 0);
	CU_ASSERT_EQUAL(ring_release(&rv, &view), 0);
	CU_ASSERT_EQUAL(ring_view(&rv, &view), 0);
	CU_ASSERT_EQUAL(view.info.seq, 2);
	CU_ASSERT_EQUAL(view.info.lost, 1);
	CU_ASSERT_EQUAL(ring_release(&rv, &view), 0);
	topic_unmap(&m);
}

/* The broker's seal of a ring whose topic grew, as it makes it: no claim
 * after it, and readers learn where the ring ends. */
static uint64_t seal_ring(struct topic_map *m)
{
	uint64_t at = atomic_fetch_or(&m->data->next_seq, DATA_SEALED) & ~DATA_SEALED;
	atomic_store(&meta_rw->sealed_at, at);
	return at;
}

/* A sealed ring: a claim gets RING_SEALED (the publisher moves to the
 * successor), a reader takes what is there and then learns the ring
 * ended. In a successor that starts later than the seal (a ring in
 * between is gone) the numbers in between are counted lost. */
static void test_sealed_and_successor(void)
{
	struct topic_map m, next;
	struct ring_writer w;
	struct ring_reader r;
	struct shmbus_msg_info info;
	uint64_t v;
	void *buf;
	size_t cap;
	make_topic(&m, 8, 64);
	ring_writer_init(&w, &m, &lines[0], 0, 1);
	ring_reader_init(&r, &m, &lines[32], 0, 0);
	for (uint64_t i = 0; i < 3; i++)
		CU_ASSERT_EQUAL(send_u64(&w, i), 0);
	CU_ASSERT_EQUAL(seal_ring(&m), 3);
	CU_ASSERT_EQUAL(ring_loan(&w, &buf, &cap), RING_SEALED);
	for (uint64_t i = 0; i < 3; i++) {
		CU_ASSERT_EQUAL(ring_take(&r, &v, sizeof(v), &info), 0);
		CU_ASSERT_EQUAL(v, i);
	}
	CU_ASSERT_TRUE(ring_ready(&r)); /* the end is something to take */
	CU_ASSERT_EQUAL(ring_take(&r, &v, sizeof(v), &info), RING_SEALED);
	make_ring_at(&next, 8, 64, 10);
	ring_reader_move(&r, &next);
	CU_ASSERT_EQUAL(r.next, 10);
	CU_ASSERT_EQUAL(r.lost, 7);
	ring_writer_init(&w, &next, &lines[0], 0, 1);
	CU_ASSERT_EQUAL(send_u64(&w, 10), 0);
	CU_ASSERT_EQUAL(ring_take(&r, &v, sizeof(v), &info), 0);
	CU_ASSERT_EQUAL(info.seq, 10);
	CU_ASSERT_EQUAL(info.lost, 7);
	CU_ASSERT_EQUAL(r.received + r.lost, 11);
	topic_unmap(&m);
	topic_unmap(&next);
}

/* ------------------------------------------------------------------ tags */

/* A topic key as a client derives it: bus key, bus, topic, incarnation. */
static void topic_key(struct integrity *in, const char *topic)
{
	static const uint8_t incarnation[16] = { 0x5a, 1, 2, 3 };
	uint8_t key[INTEGRITY_KEY_BYTES];
	for (size_t i = 0; i < sizeof(key); i++)
		key[i] = (uint8_t)(7 * i + 1);
	integrity_derive(in, key, "bus", topic, incarnation, sizeof(incarnation));
}

/* A tagged writer and reader on a fresh topic of 8 slots of 64 bytes. */
static void tagged_topic(struct topic_map *m, struct ring_writer *w, struct ring_reader *r,
			 const struct integrity *in)
{
	make_topic(m, 8, 64);
	ring_writer_init(w, m, &lines[0], 0, 1);
	ring_reader_init(r, m, &lines[32], 0, 0);
	w->integ = in;
	r->integ = in;
}

/* What a client with write access to the data can do: copy a genuine
 * message (everything but the slot state) over another slot. */
static void replay_slot(struct slot_header *to, struct slot_header *from)
{
	uint32_t size = atomic_load(&from->size);
	atomic_store(&to->size, size);
	atomic_store(&to->publisher_id, atomic_load(&from->publisher_id));
	atomic_store(&to->publish_ns, atomic_load(&from->publish_ns));
	memcpy(to->tag, from->tag, sizeof(to->tag));
	memcpy(slot_payload(to), slot_payload(from), size);
}

/* The next message as take or view gets it: its value, or UINT64_MAX when
 * there is none (*seq: its number). */
static uint64_t next_u64(struct ring_reader *r, bool view, uint64_t *seq)
{
	uint64_t v = UINT64_MAX;
	if (view) {
		struct shmbus_view vw;
		if (ring_view(r, &vw) != 0)
			return UINT64_MAX;
		memcpy(&v, vw.data, sizeof(v));
		*seq = vw.info.seq;
		CU_ASSERT_EQUAL(ring_release(r, &vw), 0);
		return v;
	}
	struct shmbus_msg_info info;
	if (ring_take(r, &v, sizeof(v), &info) != 0)
		return UINT64_MAX;
	*seq = info.seq;
	return v;
}

/* One bit flipped in the first, a middle and the last byte of a tag: the
 * message is refused (counted rejected and lost), by take and by view, and
 * the next genuine message is delivered. */
static void test_tag_flips(void)
{
	static const size_t at[] = { 0, INTEGRITY_TAG_BYTES / 2 - 1, INTEGRITY_TAG_BYTES - 1 };
	struct integrity in;
	topic_key(&in, "t");
	for (int view = 0; view < 2; view++) {
		for (size_t i = 0; i < sizeof(at) / sizeof(at[0]); i++) {
			struct topic_map m;
			struct ring_writer w;
			struct ring_reader r;
			uint64_t seq = UINT64_MAX;
			tagged_topic(&m, &w, &r, &in);
			for (uint64_t k = 0; k < 3; k++)
				CU_ASSERT_EQUAL(send_u64(&w, 100 + k), 0);
			topic_slot(&m, 1)->tag[at[i]] ^= 0x10;
			CU_ASSERT_EQUAL(next_u64(&r, view, &seq), 100);
			CU_ASSERT_EQUAL(next_u64(&r, view, &seq), 102);
			CU_ASSERT_EQUAL(seq, 2);
			CU_ASSERT_EQUAL(r.rejected, 1);
			CU_ASSERT_EQUAL(r.received, 2);
			CU_ASSERT_EQUAL(r.lost, 1);
			topic_unmap(&m);
		}
	}
}

/* A genuine tagged message copied whole into the slot of another
 * sequence number, or into another topic (same bus key, same number), does
 * not verify there. */
static void test_tag_replays(void)
{
	struct integrity in_t, in_u;
	topic_key(&in_t, "t");
	topic_key(&in_u, "u");
	for (int view = 0; view < 2; view++) {
		struct topic_map m, m2;
		struct ring_writer w, w2;
		struct ring_reader r, r2;
		uint64_t seq = UINT64_MAX;
		/* Another number: message 0 replayed over message 1. */
		tagged_topic(&m, &w, &r, &in_t);
		CU_ASSERT_EQUAL(send_u64(&w, 100), 0);
		CU_ASSERT_EQUAL(send_u64(&w, 101), 0);
		replay_slot(topic_slot(&m, 1), topic_slot(&m, 0));
		CU_ASSERT_EQUAL(next_u64(&r, view, &seq), 100);
		CU_ASSERT_EQUAL(next_u64(&r, view, &seq), UINT64_MAX);
		CU_ASSERT_EQUAL(r.rejected, 1);
		CU_ASSERT_EQUAL(r.received + r.lost, 2);
		topic_unmap(&m);

		/* Another topic: topic t's message 0 over topic u's. */
		tagged_topic(&m, &w, &r, &in_t);
		CU_ASSERT_EQUAL(send_u64(&w, 100), 0);
		make_topic(&m2, 8, 64);
		ring_writer_init(&w2, &m2, &lines[1], 1, 1);
		ring_reader_init(&r2, &m2, &lines[33], 0, 0);
		w2.integ = r2.integ = &in_u;
		CU_ASSERT_EQUAL(send_u64(&w2, 200), 0);
		CU_ASSERT_EQUAL(send_u64(&w2, 201), 0);
		replay_slot(topic_slot(&m2, 0), topic_slot(&m, 0));
		CU_ASSERT_EQUAL(next_u64(&r2, view, &seq), 201);
		CU_ASSERT_EQUAL(seq, 1);
		CU_ASSERT_EQUAL(r2.rejected, 1);
		CU_ASSERT_EQUAL(next_u64(&r, view, &seq), 100); /* genuine where it was */
		topic_unmap(&m);
		topic_unmap(&m2);
	}
}

/* ---------------------------------------------------------------- wakes */

/* Every wait must end promptly once a message is there, whichever step of
 * going to sleep it arrives at. The waits here have no nap (the library's
 * waits nap at most 200 ms, which would hide a lost wake-up) and a long
 * timeout: a wait that ends only at its deadline, or not within WAKE_BOUND_NS
 * of the message, lost the wake-up. A liveness bound, generous for a loaded
 * machine, not a latency figure. */
#define WAKE_BOUND_NS (10 * 1000000000ll)

enum wake_step {
	WAKE_NONE,
	WAKE_BEFORE_ANNOUNCE, /* between the first look and the announcement */
	WAKE_AFTER_RECHECK,   /* after the look that follows it, before the sleep */
};

/* A reader as a wait source with a hook: the ring's callbacks take the
 * reader (first member) as their object; the hook publishes with w. */
struct hooked {
	struct ring_reader r;
	struct ring_writer w;
	enum wake_step step;
};

static bool hooked_poll(void *obj)
{
	struct hooked *h = obj;
	if (h->step == WAKE_BEFORE_ANNOUNCE) {
		CU_ASSERT_EQUAL(send_u64(&h->w, 7), 0);
		h->step = WAKE_NONE;
	}
	return ring_unstick(&h->r);
}

static void hooked_sleeping(void *obj, bool on)
{
	struct hooked *h = obj;
	if (on && h->step == WAKE_AFTER_RECHECK) {
		CU_ASSERT_EQUAL(send_u64(&h->w, 7), 0);
		h->step = WAKE_NONE;
	}
}

/* n topics (1: a subscriber's wait; 2: a wait set), each a hooked source;
 * the last one's hook publishes at `step`. */
static void hooked_topics(struct topic_map *m, struct hooked *h, struct wait_src *s, size_t n,
			  enum wake_step step)
{
	for (size_t i = 0; i < n; i++) {
		make_topic(&m[i], 8, 64);
		ring_writer_init(&h[i].w, &m[i], &lines[i], (uint32_t)i, (uint32_t)i + 1);
		ring_reader_init(&h[i].r, &m[i], &lines[32 + i], 0, 0);
		h[i].step = i == n - 1 ? step : WAKE_NONE;
		ring_wait_src(&h[i].r, &s[i]);
		s[i].obj = &h[i];
		s[i].poll = hooked_poll;
		s[i].sleeping = hooked_sleeping;
		s[i].nap = NULL; /* no nap: only a wake-up ends the sleep */
	}
	/* make_topic clears the one wake-board line the topics share. */
}

static void wake_at_step(size_t n, enum wake_step step)
{
	struct topic_map m[2];
	struct hooked h[2];
	struct wait_src s[2];
	int which = -1;
	hooked_topics(m, h, s, n, step);
	int64_t t0 = h_now_ns();
	int rc = wait_sources(s, n, NULL, NULL, 0, WAKE_BOUND_NS, 0, &which);
	int64_t took = h_now_ns() - t0;
	CU_ASSERT_EQUAL(rc, SHMBUS_OK);
	CU_ASSERT_EQUAL(which, (int)n - 1);
	/* Ended by the message, not by the deadline. */
	CU_ASSERT_TRUE(took < WAKE_BOUND_NS);
	CU_ASSERT_EQUAL(h[n - 1].step, WAKE_NONE); /* the hook ran */
	for (size_t i = 0; i < n; i++)
		topic_unmap(&m[i]);
}

struct sleeper {
	struct wait_src *s;
	size_t n;
	struct wait_intr intr;
	_Atomic pid_t tid;
	sem_t done;
	int rc, which;
};

static void *sleeper_main(void *arg)
{
	struct sleeper *sl = arg;
	atomic_store(&sl->tid, gettid());
	sl->rc = wait_sources(sl->s, sl->n, &sl->intr, NULL, 0, 3600 * 1000000000ll, 0,
			      &sl->which);
	sem_post(&sl->done);
	return NULL;
}

/* A waiter already asleep in the kernel (another thread, huge timeout) is
 * woken by a publish. */
static void wake_asleep(size_t n)
{
	struct topic_map m[2];
	struct hooked h[2];
	struct wait_src s[2];
	struct sleeper sl = { .s = s, .n = n };
	pthread_t t;
	hooked_topics(m, h, s, n, WAKE_NONE);
	sem_init(&sl.done, 0, 0);
	CU_ASSERT_FATAL(pthread_create(&t, NULL, sleeper_main, &sl) == 0);
	CU_ASSERT_TRUE(h_thread_asleep(&sl.tid, (int)(WAKE_BOUND_NS / 1000000)));
	CU_ASSERT_EQUAL(send_u64(&h[n - 1].w, 7), 0);
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += WAKE_BOUND_NS / 1000000000ll;
	int woke;
	while ((woke = sem_timedwait(&sl.done, &until)) != 0 && errno == EINTR)
		;
	CU_ASSERT_EQUAL(woke, 0);
	if (woke) { /* the wake-up was lost: end the wait another way */
		wait_intr_raise(&sl.intr);
		sem_wait(&sl.done);
	}
	pthread_join(t, NULL);
	CU_ASSERT_EQUAL(sl.rc, SHMBUS_OK);
	CU_ASSERT_EQUAL(sl.which, (int)n - 1);
	sem_destroy(&sl.done);
	for (size_t i = 0; i < n; i++)
		topic_unmap(&m[i]);
}

static void test_wakes(void)
{
	for (size_t n = 1; n <= 2; n++) {
		wake_at_step(n, WAKE_BEFORE_ANNOUNCE);
		wake_at_step(n, WAKE_AFTER_RECHECK);
		wake_asleep(n);
	}
}

/* A waiter and a publisher racing, many times: the publisher publishes the
 * next message as soon as the waiter took the last, so the waiter is
 * often on its way to sleep (announcing, re-checking) as the commit and the
 * publisher's look at the wake line happen. The announcement and the
 * commit are each ordered before the other side's load (Dekker): if either
 * load could pass its store, a message could find no one to wake and a
 * waiter no message, and with no nap that wait would end only at its
 * deadline. */
struct racer {
	struct topic_map m;
	_Atomic uint64_t taken;
	uint64_t rounds, late;
};

static void *racer_waiter(void *arg)
{
	struct racer *x = arg;
	struct ring_reader r;
	struct wait_src s;
	ring_reader_init(&r, &x->m, &lines[32], 0, 0);
	ring_wait_src(&r, &s);
	s.nap = NULL;
	for (uint64_t i = 0; i < x->rounds; i++) {
		uint64_t v;
		int which;
		int64_t t0 = h_now_ns();
		int rc = wait_sources(&s, 1, NULL, NULL, 0, WAKE_BOUND_NS, 0, &which);
		int64_t took = h_now_ns() - t0;
		int taken = rc == SHMBUS_OK ? ring_take(&r, &v, sizeof(v), NULL) : -1;
		if (rc != SHMBUS_OK || took >= WAKE_BOUND_NS || taken != 0 || v != i) {
			/* Say which way it failed: a lost wake-up ends at the
			 * deadline; anything else is another fault. */
			fprintf(stderr,
				"  round %llu: wait %d after %lld ms, take %d, value %llu, "
				"lost %llu\n",
				(unsigned long long)i, rc, (long long)(took / 1000000), taken,
				taken == 0 ? (unsigned long long)v : 0ull,
				(unsigned long long)r.lost);
			x->late++;
			break;
		}
		atomic_store(&x->taken, i + 1);
	}
	atomic_store(&x->taken, UINT64_MAX);
	return NULL;
}

static void test_wake_race(void)
{
	struct racer x = { .rounds = 300000 };
	const char *env = getenv("SHMBUS_STRESS_N");
	if (env)
		x.rounds = strtoull(env, NULL, 10) * 3 / 2;
	make_topic(&x.m, 8, 64);
	struct ring_writer w;
	ring_writer_init(&w, &x.m, &lines[0], 0, 1);
	pthread_t t;
	CU_ASSERT_FATAL(pthread_create(&t, NULL, racer_waiter, &x) == 0);
	for (uint64_t i = 0; i < x.rounds; i++) {
		uint64_t got;
		/* A delay that sweeps the commit across the waiter's way to
		 * sleep, round after round. */
		for (volatile uint32_t k = (uint32_t)(i * 37 % 257); k > 0; k--)
			;
		CU_ASSERT_EQUAL(send_u64(&w, i), 0);
		/* Bounded: the waiter gives up after WAKE_BOUND_NS at most. */
		while ((got = atomic_load(&x.taken)) != i + 1 && got != UINT64_MAX)
			sched_yield();
		if (got == UINT64_MAX)
			break;
	}
	pthread_join(t, NULL);
	CU_ASSERT_EQUAL(x.late, 0);
	CU_ASSERT_EQUAL(atomic_load(&x.taken), UINT64_MAX);
	topic_unmap(&x.m);
}

/* ---------------------------------------------------------------- stress */

#define WRITERS 3
#define READERS 4

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

enum read_mode { READ_TAKE, READ_VIEW, READ_TAKE_MANY, READ_VIEW_MANY };

struct worker {
	struct stress *s;
	uint32_t id;
	uint64_t received, lost, torn, disorder;
	enum read_mode mode;
};

/* One message a reader got: intact and after the last from its writer. */
static void reader_saw(struct worker *wk, uint64_t *last, const struct msg *x, size_t size)
{
	if (!intact(x, size)) {
		wk->torn++;
		return;
	}
	if (last[x->writer] != UINT64_MAX && x->counter <= last[x->writer])
		wk->disorder++;
	last[x->writer] = x->counter;
}

/* Take what there is in the reader's mode: SHMBUS_EAGAIN when nothing,
 * another code on failure. */
static int reader_round(struct worker *wk, struct ring_reader *r, uint64_t *last)
{
	static __thread struct msg cells[8];
	struct shmbus_msg_info infos[8];
	struct shmbus_view views[8];
	size_t n;
	int rc;
	switch (wk->mode) {
	case READ_TAKE:
		rc = ring_take(r, &cells[0], sizeof(cells[0]), &infos[0]);
		if (rc == 0)
			reader_saw(wk, last, &cells[0], infos[0].size);
		return rc;
	case READ_TAKE_MANY:
		rc = ring_take_many(r, cells, sizeof(cells[0]), 8, infos, &n);
		for (size_t i = 0; rc == 0 && i < n; i++)
			reader_saw(wk, last, &cells[i], infos[i].size);
		return rc;
	case READ_VIEW:
	case READ_VIEW_MANY:
		if (wk->mode == READ_VIEW) {
			rc = ring_view(r, &views[0]);
			n = 1;
		} else {
			rc = ring_view_many(r, views, 8, &n);
		}
		for (size_t i = 0; rc == 0 && i < n; i++) {
			size_t len = views[i].info.size < sizeof(cells[i]) ? views[i].info.size
									 : sizeof(cells[i]);
			ring_copy_racy(&cells[i], views[i].data, len);
			/* Overwritten while viewed: counted lost. */
			if (ring_release(r, &views[i]) == 0)
				reader_saw(wk, last, &cells[i], views[i].info.size);
		}
		return rc;
	}
	return SHMBUS_EINVAL;
}

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
		int rc = reader_round(wk, &r, last);
		if (rc == 0)
			continue;
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

/* Happens-before, for ThreadSanitizer to check: a writer that never laps
 * its reader (it waits for the reader's progress, which orders the reader's
 * reads before the writer's next write of a slot) and a reader that views
 * each message and reads its bytes in place, as a subscriber's own code
 * does, unannotated. Only the ring orders the writer's payload before the
 * reader's reads (the commit, and the acquire of the slot state that finds
 * it): with a weaker order there TSan reports the race. */
struct hb {
	struct topic_map m;
	uint64_t n;
	_Atomic uint64_t consumed;
	_Atomic int failed;
};

#define HB_SIZE 256
#define HB_AHEAD 16

static void *hb_writer(void *arg)
{
	struct hb *h = arg;
	struct ring_writer w;
	ring_writer_init(&w, &h->m, &lines[0], 0, 1);
	for (uint64_t i = 0; i < h->n; i++) {
		while (i - atomic_load_explicit(&h->consumed, memory_order_acquire) >= HB_AHEAD)
			sched_yield();
		void *buf;
		size_t cap;
		if (ring_loan(&w, &buf, &cap) != 0 || cap < HB_SIZE) {
			h->failed++;
			break;
		}
		memset(buf, (int)(i & 255), HB_SIZE);
		memcpy(buf, &i, sizeof(i));
		if (ring_publish(&w, HB_SIZE, 0, NULL) != 0) {
			h->failed++;
			break;
		}
	}
	return NULL;
}

static void test_happens_before(void)
{
	struct hb h = { .n = 20000 };
	struct ring_reader r;
	pthread_t t;
	make_topic(&h.m, 64, HB_SIZE);
	ring_reader_init(&r, &h.m, &lines[32], 0, 0);
	CU_ASSERT_FATAL(pthread_create(&t, NULL, hb_writer, &h) == 0);
	uint64_t got = 0, wrong = 0;
	while (got < h.n && !h.failed) {
		struct shmbus_view v;
		int rc = ring_view(&r, &v);
		if (rc == SHMBUS_EAGAIN) {
			ring_wait(&r, 1000000, NULL);
			continue;
		}
		if (rc != 0)
			break;
		const uint8_t *p = v.data;
		uint64_t seq;
		memcpy(&seq, p, sizeof(seq));
		bool ok = seq == got && v.info.size == HB_SIZE;
		for (size_t k = sizeof(seq); ok && k < HB_SIZE; k++)
			ok = p[k] == (uint8_t)(got & 255);
		wrong += !ok;
		/* Never lapped: the writer waits for us. */
		wrong += ring_release(&r, &v) != 0;
		atomic_store_explicit(&h.consumed, ++got, memory_order_release);
	}
	pthread_join(t, NULL);
	CU_ASSERT_EQUAL(h.failed, 0);
	CU_ASSERT_EQUAL(got, h.n);
	CU_ASSERT_EQUAL(wrong, 0);
	CU_ASSERT_EQUAL(r.lost, 0);
	topic_unmap(&h.m);
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
		rw[i] = (struct worker){ .s = &s, .id = i, .mode = (enum read_mode)i };
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
		static const char *const modes[] = { "take", "view", "take_many", "view_many" };
		printf("\n  reader %d (%s): received %llu lost %llu of %llu", i, modes[rw[i].mode],
		       (unsigned long long)rw[i].received, (unsigned long long)rw[i].lost,
		       (unsigned long long)head);
	}
	CU_ASSERT_TRUE(head >= WRITERS * s.per_writer);
	topic_unmap(&s.m);
}

/* ------------------------------------------------------------ torn reads */

/* 4 writers and 4 readers on a ring of 8 slots of 4 KiB: the writers lap
 * the readers all the time, so many copies are overwritten while being
 * made. Every 8 bytes of a message are a function of its writer, counter
 * and position, one-to-one in each, so a copy that mixes two messages
 * never passes; each reader's counts are exact. (That a tear happens at
 * all depends on the scheduler: on two cores it does in every run.) */
#define TORN_WRITERS 4
#define TORN_READERS 4
#define TORN_WORDS 512

static uint64_t torn_word(uint64_t id, size_t i)
{
	return (id + 1) * 0x9e3779b97f4a7c15ull + i;
}

struct torn {
	struct topic_map m;
	uint64_t per_writer;
	_Atomic int writers_done;
};

struct torn_worker {
	struct torn *t;
	uint32_t id;
	uint64_t received, lost, torn, failed;
};

static void *torn_writer(void *arg)
{
	struct torn_worker *wk = arg;
	struct ring_writer w;
	ring_writer_init(&w, &wk->t->m, &lines[wk->id], wk->id, wk->id + 1);
	for (uint64_t c = 0; c < wk->t->per_writer; c++) {
		uint64_t *buf;
		size_t cap;
		if (ring_loan(&w, (void **)&buf, &cap) != 0) {
			wk->failed++;
			continue;
		}
		uint64_t id = c * TORN_WRITERS + wk->id;
		buf[0] = id;
		for (size_t i = 1; i < TORN_WORDS; i++)
			buf[i] = torn_word(id, i);
		int rc = ring_publish(&w, TORN_WORDS * sizeof(uint64_t), 0, NULL);
		if (rc && rc != SHMBUS_ELAPPED)
			wk->failed++;
	}
	atomic_fetch_add(&wk->t->writers_done, 1);
	return NULL;
}

static bool torn_intact(const uint64_t *x, size_t size)
{
	if (size != TORN_WORDS * sizeof(uint64_t))
		return false;
	for (size_t i = 1; i < TORN_WORDS; i++)
		if (x[i] != torn_word(x[0], i))
			return false;
	return true;
}

static void *torn_reader(void *arg)
{
	struct torn_worker *wk = arg;
	struct ring_reader r;
	static __thread uint64_t buf[TORN_WORDS];
	ring_reader_init(&r, &wk->t->m, &lines[32 + wk->id], 0, 0);
	r.oldest_on_lap = true; /* lapped as often as can be */
	for (;;) {
		struct shmbus_msg_info info;
		struct shmbus_view v;
		int rc;
		if (wk->id % 2) {
			rc = ring_view(&r, &v);
			if (rc == 0) {
				ring_copy_racy(buf, v.data, sizeof(buf));
				if (ring_release(&r, &v) == 0 && !torn_intact(buf, v.info.size))
					wk->torn++;
			}
		} else {
			rc = ring_take(&r, buf, sizeof(buf), &info);
			if (rc == 0 && !torn_intact(buf, info.size))
				wk->torn++;
		}
		if (rc == 0)
			continue;
		if (rc != SHMBUS_EAGAIN) {
			wk->failed++;
			break;
		}
		if (atomic_load(&wk->t->writers_done) == TORN_WRITERS &&
		    r.next == ring_head(&wk->t->m))
			break;
		ring_wait(&r, 1000000, NULL);
	}
	wk->received = r.received;
	wk->lost = r.lost;
	return NULL;
}

static void test_torn_reads(void)
{
	struct torn t = { .per_writer = 20000 };
	const char *env = getenv("SHMBUS_STRESS_N");
	if (env)
		t.per_writer = strtoull(env, NULL, 10) / 10;
	make_topic(&t.m, 8, TORN_WORDS * sizeof(uint64_t));
	for (int i = 0; i < TORN_WRITERS; i++) /* all alive: no loan is taken over */
		atomic_store(&meta_rw->pubs[i].pid, getpid());
	pthread_t wt[TORN_WRITERS], rt[TORN_READERS];
	struct torn_worker ww[TORN_WRITERS], rw[TORN_READERS];
	for (uint32_t i = 0; i < TORN_READERS; i++) {
		rw[i] = (struct torn_worker){ .t = &t, .id = i };
		pthread_create(&rt[i], NULL, torn_reader, &rw[i]);
	}
	for (uint32_t i = 0; i < TORN_WRITERS; i++) {
		ww[i] = (struct torn_worker){ .t = &t, .id = i };
		pthread_create(&wt[i], NULL, torn_writer, &ww[i]);
	}
	for (int i = 0; i < TORN_WRITERS; i++) {
		pthread_join(wt[i], NULL);
		CU_ASSERT_EQUAL(ww[i].failed, 0);
	}
	uint64_t head = ring_head(&t.m);
	/* Claims that found a slot held by another loan burn numbers too. */
	CU_ASSERT_TRUE(head >= TORN_WRITERS * t.per_writer);
	for (int i = 0; i < TORN_READERS; i++) {
		pthread_join(rt[i], NULL);
		CU_ASSERT_EQUAL(rw[i].torn, 0);
		CU_ASSERT_EQUAL(rw[i].failed, 0);
		CU_ASSERT_EQUAL(rw[i].received + rw[i].lost, head);
		printf("\n  reader %d (%s): received %llu lost %llu of %llu", i,
		       i % 2 ? "view" : "take", (unsigned long long)rw[i].received,
		       (unsigned long long)rw[i].lost, (unsigned long long)head);
	}
	topic_unmap(&t.m);
}

static void add(void)
{
	CU_pSuite s = CU_add_suite("ring", NULL, NULL);
	CU_add_test(s, "wrap-around", test_wraparound);
	CU_add_test(s, "lapped: exact loss", test_lapped_exact_loss);
	CU_add_test(s, "lapped: a slow reader paces itself", test_lapped_pace);
	CU_add_test(s, "a loan is refused only when every slot is held",
		    test_loan_busy_only_when_all_held);
	CU_add_test(s, "lapped: a reader slower for good stays paced until it catches up",
		    test_lapped_pace_holds);
	CU_add_test(s, "view invalidated while held", test_view_invalidated);
	CU_add_test(s, "batches: take_many and view_many, exact losses", test_batches);
	CU_add_test(s, "history for late joiners", test_history);
	CU_add_test(s, "oversize, discard, small buffer", test_oversize_and_discard);
	CU_add_test(s, "loan that outlives a lap", test_loan_outlives_lap);
	CU_add_test(s, "dead publisher's loan released", test_dead_loan_released);
	CU_add_test(s, "spin: self-tuned from the waits", test_spin_auto);
	CU_add_test(s, "spin: a steady stream's next message planned for", test_wake_plan);
	CU_add_test(s, "spin: a planned wait sleeps, wakes for a message, ends when told",
		    test_planned_wait);
	CU_add_test(s, "stalls: dead claimant, dead holder, stopped holder", test_stall_recovery);
	CU_add_test(s, "stalls: a run of stuck numbers costs one timeout", test_stall_batch);
	CU_add_test(s, "a late claim finds a later lap's message: its number is lost",
		    test_late_claim);
	CU_add_test(s, "a size over the maximum is never delivered", test_size_over_max);
	CU_add_test(s, "a sealed ring ends; its successor carries on, losses counted",
		    test_sealed_and_successor);
	CU_add_test(s, "tags: a flipped first, middle or last byte is refused", test_tag_flips);
	CU_add_test(s, "tags: a replay into another number or topic is refused", test_tag_replays);
	CU_add_test(s, "waits: a message at any step of going to sleep ends the wait",
		    test_wakes);
	CU_add_test(s, "waits: a waiter and a publisher racing, every wait ended by its message",
		    test_wake_race);
	CU_add_test(s, "happens-before: a reader never lapped reads the writer's bytes in place",
		    test_happens_before);
	CU_add_test(s, "stress: 3 writers x 4 readers (take, view, take_many, view_many)",
		    test_stress);
	CU_add_test(s, "torn reads: 4 writers x 4 readers lapping on 8 slots of 4 KiB",
		    test_torn_reads);
}

int main(void)
{
	return h_run("test_ring", add);
}
