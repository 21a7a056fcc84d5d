/*
 * test_grow.c - a topic grows when a message outgrows it, and nobody loses
 * a message over it: a publisher process whose messages get larger and
 * larger (the topic grows several times under it), a subscriber process
 * that polls and one that sleeps in a wait, each seeing every sequence
 * number exactly once, in order, with intact payloads. Also: a subscriber
 * that had not read the old ring's tail reads it first; a publisher that
 * did not ask to grow gets EMSGSIZE and burns no number; a second
 * publisher follows the growth on its own; growth keeps integrity tags
 * right; `shmbus info` says how often the topic grew; a broker restarted
 * after a growth hands out the grown ring.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

#define SEC 1000000000ll
#define SLOTS 16u
#define FIRST_MAX 256u
#define N_MSGS 3000u
/* How far the publisher may run ahead of the slower subscriber: well
 * inside the ring, so a lost message is the bus's fault, not the load's. */
#define WINDOW 4u

/* Message k's size: small at first, then up a step every 500 messages,
 * to 64 KiB (the topic grows from 256 B about four times). */
static size_t msg_size(uint64_t k)
{
	static const size_t steps[] = { 64, 200, 1000, 5000, 20000, 65536 };
	return steps[(k / 500) % (sizeof(steps) / sizeof(steps[0]))];
}

/* Fill / check message k: its number, then bytes derived from it. */
static void fill(uint8_t *p, uint64_t k, size_t n)
{
	memcpy(p, &k, sizeof(k));
	for (size_t i = sizeof(k); i < n; i++)
		p[i] = (uint8_t)(k * 31 + i);
}

static bool intact(const uint8_t *p, uint64_t k, size_t n)
{
	uint64_t got;
	memcpy(&got, p, sizeof(got));
	if (n != msg_size(k) || got != k)
		return false;
	for (size_t i = sizeof(k); i < n; i++)
		if (p[i] != (uint8_t)(k * 31 + i))
			return false;
	return true;
}

static struct shmbus_topic_options small_topic(void)
{
	struct shmbus_topic_options o;
	shmbus_topic_options_init(&o);
	o.type_name = "test.Growing";
	o.slot_count = SLOTS;
	o.max_message_size = FIRST_MAX;
	return o;
}

struct role_arg {
	const char *bus;
	bool blocking; /* a subscriber that waits rather than polls */
	uint32_t id;   /* which subscriber (for its acks) */
};

/* What each subscriber process reports. */
struct sub_result {
	uint64_t received, lost, bad, out_of_order, last_seq;
	uint32_t max_message_size;
};

/* A subscriber: takes N_MSGS messages, checks each, acks its progress on
 * "grow/ack" so the publisher keeps within WINDOW of it. */
static int subscriber(void *argp, int out)
{
	const struct role_arg *a = argp;
	struct sub_result res = { 0 };
	shmbus_bus *bus = h_connect(a->bus);
	struct shmbus_topic_options o = small_topic();
	struct shmbus_sub_options so;
	shmbus_sub_options_init(&so);
	so.create_if_missing = true;
	shmbus_sub *sub;
	shmbus_pub *ack;
	if (!bus || shmbus_sub_open(bus, "grow/data", &o, &so, &sub) ||
	    shmbus_pub_open(bus, "grow/ack", NULL, NULL, &ack))
		return 1;
	uint32_t hello[2] = { a->id, UINT32_MAX };
	if (shmbus_pub_send(ack, hello, sizeof(hello), NULL))
		return 2;
	uint8_t *buf = malloc(1 << 17);
	uint64_t expect = 0;
	int64_t end = h_now_ns() + 240 * SEC;
	while (res.received + res.lost < N_MSGS && h_now_ns() < end) {
		struct shmbus_msg_info info;
		int rc = shmbus_sub_take(sub, buf, 1 << 17, &info);
		if (rc == SHMBUS_EAGAIN) {
			int w = a->blocking ? shmbus_sub_wait(sub, 10 * SEC) : 0;
			if (w && w != SHMBUS_ETIMEDOUT)
				return 3;
			continue;
		}
		if (rc)
			return 4;
		res.lost += info.lost;
		res.out_of_order += info.seq != expect + info.lost;
		res.bad += !intact(buf, info.seq, info.size);
		expect = info.seq + 1;
		res.received++;
		res.last_seq = info.seq;
		uint32_t msg[2] = { a->id, (uint32_t)info.seq };
		if (shmbus_pub_send(ack, msg, sizeof(msg), NULL))
			return 5;
	}
	struct shmbus_sub_stats st;
	shmbus_sub_stats(sub, &st);
	res.lost = st.lost; /* the subscriber's own count, not our sum */
	res.max_message_size = (uint32_t)shmbus_sub_max_message_size(sub);
	free(buf);
	shmbus_pub_close(ack);
	shmbus_sub_close(sub);
	shmbus_disconnect(bus);
	return write(out, &res, sizeof(res)) == sizeof(res) ? 0 : 6;
}

/* The publisher: waits for both subscribers' hello, then publishes
 * N_MSGS messages of growing size, never more than WINDOW ahead of the
 * slower subscriber's ack. */
static int publisher(void *argp, int out)
{
	const struct role_arg *a = argp;
	shmbus_bus *bus = h_connect(a->bus);
	struct shmbus_topic_options o = small_topic();
	struct shmbus_pub_options po;
	shmbus_pub_options_init(&po);
	po.flags = SHMBUS_PUB_GROW;
	struct shmbus_sub_options so;
	shmbus_sub_options_init(&so);
	so.create_if_missing = true;
	so.start = SHMBUS_START_FIRST;
	shmbus_pub *pub;
	shmbus_sub *acks;
	if (!bus || shmbus_sub_open(bus, "grow/ack", NULL, &so, &acks) ||
	    shmbus_pub_open(bus, "grow/data", &o, &po, &pub))
		return 1;
	int64_t acked[2] = { -2, -2 }; /* -2: not there yet; -1: there */
	int64_t end = h_now_ns() + 240 * SEC;
	uint64_t k = 0;
	while (k < N_MSGS && h_now_ns() < end) {
		uint32_t m[2];
		while (shmbus_sub_take(acks, m, sizeof(m), NULL) == 0)
			if (m[0] < 2)
				acked[m[0]] = m[1] == UINT32_MAX ? -1 : (int64_t)m[1];
		int64_t low = acked[0] < acked[1] ? acked[0] : acked[1];
		if (low < -1 || (int64_t)k > low + (int64_t)WINDOW) {
			shmbus_sub_wait(acks, SEC);
			continue;
		}
		size_t n = msg_size(k);
		uint8_t *p = malloc(n);
		fill(p, k, n);
		uint64_t seq;
		int rc = shmbus_pub_send(pub, p, n, &seq);
		free(p);
		if (rc || seq != k)
			return 2;
		k++;
	}
	struct shmbus_pub_stats st;
	shmbus_pub_stats(pub, &st);
	uint64_t res[2] = { st.published, st.skipped };
	bool ok = write(out, res, sizeof(res)) == sizeof(res);
	shmbus_pub_close(pub);
	shmbus_sub_close(acks);
	shmbus_disconnect(bus);
	return ok ? 0 : 3;
}

static void test_grow_under_traffic(void)
{
	const char *bus = h_bus_name("grow");
	struct role_arg sa[2] = { { bus, false, 0 }, { bus, true, 1 } }, pa = { bus, false, 0 };
	int sfd[2], pfd;
	pid_t sp[2];
	for (int i = 0; i < 2; i++)
		sp[i] = h_fork(subscriber, &sa[i], &sfd[i]);
	pid_t pp = h_fork(publisher, &pa, &pfd);

	uint64_t pres[2] = { 0, 0 };
	CU_ASSERT_TRUE(h_read(pfd, pres, sizeof(pres), 300000));
	CU_ASSERT_EQUAL(pres[0], N_MSGS);
	CU_ASSERT_EQUAL(pres[1], 0);
	for (int i = 0; i < 2; i++) {
		struct sub_result r = { 0 };
		CU_ASSERT_TRUE(h_read(sfd[i], &r, sizeof(r), 300000));
		printf("\n  %s subscriber: received %llu, lost %llu, bad %llu, out of order %llu, "
		       "topic now %u bytes",
		       i ? "waiting" : "polling", (unsigned long long)r.received,
		       (unsigned long long)r.lost, (unsigned long long)r.bad,
		       (unsigned long long)r.out_of_order, r.max_message_size);
		CU_ASSERT_EQUAL(r.received, N_MSGS);
		CU_ASSERT_EQUAL(r.lost, 0);
		CU_ASSERT_EQUAL(r.bad, 0);
		CU_ASSERT_EQUAL(r.out_of_order, 0);
		CU_ASSERT_EQUAL(r.last_seq, N_MSGS - 1);
		CU_ASSERT_TRUE(r.max_message_size >= 65536);
		CU_ASSERT_EQUAL(h_reap(sp[i], 30000), 0);
		close(sfd[i]);
	}
	CU_ASSERT_EQUAL(h_reap(pp, 30000), 0);
	close(pfd);
	/* What info says: the topic outlives its clients. */
	shmbus_bus *b = h_connect(bus);
	struct shmbus_topic_info ti;
	CU_ASSERT_EQUAL_FATAL(shmbus_topic_inspect(b, "grow/data", &ti, NULL, 0, NULL, NULL, 0,
						   NULL),
			      0);
	CU_ASSERT_TRUE(ti.grown >= 3);
	CU_ASSERT_TRUE(ti.max_message_size >= 65536);
	CU_ASSERT_EQUAL(ti.next_seq, N_MSGS);
	CU_ASSERT_TRUE(ti.ring_base_seq > 0 && ti.ring_base_seq < N_MSGS);
	char out[4096];
	CU_ASSERT_EQUAL(h_run_cli(out, sizeof(out), "info --bus %s grow/data", bus), 0);
	char want[64];
	snprintf(want, sizeof(want), "grown:       %u times", ti.grown);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, want));
	shmbus_disconnect(b);
	h_stop_bus(bus);
}

/* Send message k (its size by msg_size) through pub. */
static int send_k(shmbus_pub *pub, uint64_t k, uint64_t *seq)
{
	static uint8_t buf[1 << 16];
	size_t n = msg_size(k);
	fill(buf, k, n);
	return shmbus_pub_send(pub, buf, n, seq);
}

/* Take one message within 10 s; its rc. */
static int take(shmbus_sub *sub, uint8_t *buf, size_t cap, struct shmbus_msg_info *info)
{
	int rc;
	int64_t end = h_now_ns() + 10 * SEC;
	while ((rc = shmbus_sub_take(sub, buf, cap, info)) == SHMBUS_EAGAIN && h_now_ns() < end)
		shmbus_sub_wait(sub, SEC);
	return rc;
}

/* The old ring's tail is read before the successor; a publisher without
 * SHMBUS_PUB_GROW gets EMSGSIZE (no number burned) and then follows the
 * growth another publisher made; a subscriber that starts after the
 * growth starts in the successor. */
static void test_follow(void)
{
	const char *bus = h_bus_name("follow");
	shmbus_bus *b = h_connect(bus);
	struct shmbus_topic_options o = small_topic();
	struct shmbus_pub_options grow;
	shmbus_pub_options_init(&grow);
	grow.flags = SHMBUS_PUB_GROW;
	shmbus_pub *fixed, *growing;
	shmbus_sub *late_reader;
	CU_ASSERT_EQUAL_FATAL(shmbus_pub_open(b, "f", &o, NULL, &fixed), 0);
	CU_ASSERT_EQUAL_FATAL(shmbus_pub_open(b, "f", &o, &grow, &growing), 0);
	CU_ASSERT_EQUAL_FATAL(shmbus_sub_open(b, "f", &o, NULL, &late_reader), 0);

	uint64_t seq = 0;
	for (uint64_t k = 0; k < 10; k++) {
		CU_ASSERT_EQUAL(send_k(fixed, k, &seq), 0);
		CU_ASSERT_EQUAL(seq, k);
	}
	/* Too large for the fixed publisher: refused, nothing burned. */
	static uint8_t big[1 << 16];
	CU_ASSERT_EQUAL(shmbus_pub_send(fixed, big, 4000, NULL), SHMBUS_EMSGSIZE);
	CU_ASSERT_PTR_NOT_NULL(strstr(shmbus_errmsg(), "SHMBUS_PUB_GROW"));
	CU_ASSERT_EQUAL(shmbus_pub_reserve(fixed, 4000), SHMBUS_EMSGSIZE);
	/* The growing one grows it: message 10 at 4000 bytes is seq 10. */
	fill(big, 10, 4000);
	CU_ASSERT_EQUAL(shmbus_pub_send(growing, big, 4000, &seq), 0);
	CU_ASSERT_EQUAL(seq, 10);
	CU_ASSERT_TRUE(shmbus_pub_max_message_size(growing) >= 4000);
	/* The fixed publisher carries on in the successor, and may now send
	 * what it could not before. */
	for (uint64_t k = 11; k < 20; k++) {
		CU_ASSERT_EQUAL(send_k(fixed, k, &seq), 0);
		CU_ASSERT_EQUAL(seq, k);
	}
	CU_ASSERT_TRUE(shmbus_pub_max_message_size(fixed) >= 4000);
	CU_ASSERT_EQUAL(shmbus_pub_reserve(fixed, 4000), 0);

	/* A subscriber opened now starts in the successor. */
	struct shmbus_sub_options first;
	shmbus_sub_options_init(&first);
	first.start = SHMBUS_START_FIRST;
	shmbus_sub *newcomer;
	CU_ASSERT_EQUAL_FATAL(shmbus_sub_open(b, "f", NULL, &first, &newcomer), 0);

	/* The late reader: 0..9 from the old ring, then 10..19, nothing lost. */
	static uint8_t buf[1 << 16];
	struct shmbus_msg_info info;
	for (uint64_t k = 0; k < 20; k++) {
		CU_ASSERT_EQUAL_FATAL(take(late_reader, buf, sizeof(buf), &info), 0);
		CU_ASSERT_EQUAL(info.seq, k);
		CU_ASSERT_EQUAL(info.lost, 0);
		CU_ASSERT_TRUE(k == 10 ? info.size == 4000 && memcmp(buf, big, 4000) == 0
				       : intact(buf, k, info.size));
	}
	CU_ASSERT_EQUAL(shmbus_sub_take(late_reader, buf, sizeof(buf), &info), SHMBUS_EAGAIN);
	/* The newcomer: what the successor's history holds, never before
	 * the seal. */
	CU_ASSERT_EQUAL_FATAL(take(newcomer, buf, sizeof(buf), &info), 0);
	CU_ASSERT_TRUE(info.seq >= 10 && info.seq < 20);
	struct shmbus_sub_stats st;
	shmbus_sub_stats(late_reader, &st);
	CU_ASSERT_EQUAL(st.received, 20);
	CU_ASSERT_EQUAL(st.lost, 0);

	/* Grown past what any ring may hold: a clear EMSGSIZE. */
	CU_ASSERT_EQUAL(shmbus_pub_reserve(growing, (size_t)1 << 30), SHMBUS_EMSGSIZE);
	CU_ASSERT_PTR_NOT_NULL(strstr(shmbus_errmsg(), "limit"));

	shmbus_sub_close(newcomer);
	shmbus_sub_close(late_reader);
	shmbus_pub_close(growing);
	shmbus_pub_close(fixed);
	shmbus_disconnect(b);
	h_stop_bus(bus);
}

/* A publisher opened with SHMBUS_PUB_GROW on an existing smaller topic
 * grows it at once instead of failing with ELAYOUT; without, ELAYOUT. */
static void test_open_grows(void)
{
	const char *bus = h_bus_name("opengrow");
	shmbus_bus *b = h_connect(bus);
	struct shmbus_topic_options o = small_topic();
	shmbus_sub *sub;
	CU_ASSERT_EQUAL_FATAL(shmbus_sub_open(b, "cam", &o, &(struct shmbus_sub_options){
		.size = sizeof(struct shmbus_sub_options), .create_if_missing = true }, &sub), 0);
	struct shmbus_topic_options big = small_topic();
	big.max_message_size = 1 << 20;
	shmbus_pub *pub = NULL;
	CU_ASSERT_EQUAL(shmbus_pub_open(b, "cam", &big, NULL, &pub), SHMBUS_ELAYOUT);
	struct shmbus_pub_options grow;
	shmbus_pub_options_init(&grow);
	grow.flags = SHMBUS_PUB_GROW;
	CU_ASSERT_EQUAL_FATAL(shmbus_pub_open(b, "cam", &big, &grow, &pub), 0);
	CU_ASSERT_TRUE(shmbus_pub_max_message_size(pub) >= (1u << 20));
	static uint8_t frame[1 << 20];
	memset(frame, 7, sizeof(frame));
	CU_ASSERT_EQUAL(shmbus_pub_send(pub, frame, sizeof(frame), NULL), 0);
	static uint8_t got[1 << 20];
	struct shmbus_msg_info info;
	CU_ASSERT_EQUAL(take(sub, got, sizeof(got), &info), 0);
	CU_ASSERT_EQUAL(info.seq, 0);
	CU_ASSERT_EQUAL(info.size, sizeof(frame));
	CU_ASSERT_EQUAL(memcmp(got, frame, sizeof(frame)), 0);
	shmbus_pub_close(pub);
	shmbus_sub_close(sub);
	shmbus_disconnect(b);
	h_stop_bus(bus);
}

/* An integrity-tagged topic grows: tags check in the successor, the
 * handles keep their keys. */
static void test_grow_with_integrity(void)
{
	const char *bus = h_bus_name("growkey");
	char key[128];
	snprintf(key, sizeof(key), "/tmp/shmbus-test-key-grow-%d", (int)getpid());
	int fd = open(key, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	const char *hex = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
	CU_ASSERT_FATAL(fd >= 0 && write(fd, hex, strlen(hex)) == (ssize_t)strlen(hex));
	close(fd);
	struct shmbus_connect_options co;
	shmbus_connect_options_init(&co);
	co.key_file = key;
	co.timeout_ns = 20 * SEC;
	shmbus_bus *b = NULL;
	CU_ASSERT_EQUAL_FATAL(shmbus_connect(bus, &co, &b), 0);
	struct shmbus_topic_options o = small_topic();
	o.flags = SHMBUS_TOPIC_INTEGRITY;
	struct shmbus_pub_options grow;
	shmbus_pub_options_init(&grow);
	grow.flags = SHMBUS_PUB_GROW;
	shmbus_pub *pub;
	shmbus_sub *sub;
	CU_ASSERT_EQUAL_FATAL(shmbus_pub_open(b, "tagged", &o, &grow, &pub), 0);
	CU_ASSERT_EQUAL_FATAL(shmbus_sub_open(b, "tagged", &o, NULL, &sub), 0);
	static uint8_t buf[1 << 16];
	struct shmbus_msg_info info;
	for (uint64_t k = 0; k < 3000; k += 250) {
		CU_ASSERT_EQUAL(send_k(pub, k, NULL), 0);
		CU_ASSERT_EQUAL_FATAL(take(sub, buf, sizeof(buf), &info), 0);
		CU_ASSERT_TRUE(intact(buf, k, info.size));
		CU_ASSERT_EQUAL(info.lost, 0);
	}
	struct shmbus_sub_stats st;
	shmbus_sub_stats(sub, &st);
	CU_ASSERT_EQUAL(st.rejected, 0);
	CU_ASSERT_EQUAL(st.received, 12);
	shmbus_sub_close(sub);
	shmbus_pub_close(pub);
	shmbus_disconnect(b);
	h_stop_bus(bus);
	unlink(key);
}

/* A broker killed after a growth: its successor takes the grown ring back
 * from the keeper; old handles grow the topic again through it, and a
 * subscriber of the old broker's days follows both growths. */
static void test_grow_across_restart(void)
{
	const char *bus = h_bus_name("growkill");
	shmbus_bus *b = h_connect(bus);
	struct shmbus_topic_options o = small_topic();
	struct shmbus_pub_options grow;
	shmbus_pub_options_init(&grow);
	grow.flags = SHMBUS_PUB_GROW;
	shmbus_pub *pub;
	shmbus_sub *sub;
	CU_ASSERT_EQUAL_FATAL(shmbus_pub_open(b, "g", &o, &grow, &pub), 0);
	CU_ASSERT_EQUAL_FATAL(shmbus_sub_open(b, "g", &o, NULL, &sub), 0);
	/* 500..: 200 bytes, then 1500..: 5000 bytes (two growths, each after
	 * a different broker). */
	uint64_t ks[] = { 0, 500, 501, 1500, 1501 };
	CU_ASSERT_EQUAL(send_k(pub, ks[0], NULL), 0);
	CU_ASSERT_EQUAL(send_k(pub, ks[1], NULL), 0);
	pid_t broker = shmbus_broker_pid(b);
	CU_ASSERT_FATAL(broker > 0);
	CU_ASSERT_EQUAL(kill(broker, SIGKILL), 0);
	CU_ASSERT_TRUE(h_wait_exit(broker, 20000));
	shmbus_bus *again = h_connect(bus); /* starts the next broker */
	CU_ASSERT_PTR_NOT_NULL_FATAL(again);
	struct shmbus_topic_info ti;
	CU_ASSERT_EQUAL(shmbus_topic_inspect(again, "g", &ti, NULL, 0, NULL, NULL, 0, NULL), 0);
	CU_ASSERT_EQUAL(ti.grown, 0); /* 200 bytes fit in 256 */
	CU_ASSERT_EQUAL(send_k(pub, ks[2], NULL), 0);
	CU_ASSERT_EQUAL(send_k(pub, ks[3], NULL), 0); /* grows through the new broker */
	CU_ASSERT_EQUAL(shmbus_topic_inspect(again, "g", &ti, NULL, 0, NULL, NULL, 0, NULL), 0);
	CU_ASSERT_EQUAL(ti.grown, 1);
	CU_ASSERT_EQUAL(ti.ring_base_seq, 3);
	CU_ASSERT_EQUAL(send_k(pub, ks[4], NULL), 0);
	/* Kill this broker too: the next one hands out the grown ring. */
	broker = shmbus_broker_pid(again);
	CU_ASSERT_EQUAL(kill(broker, SIGKILL), 0);
	CU_ASSERT_TRUE(h_wait_exit(broker, 20000));
	shmbus_disconnect(again);
	again = h_connect(bus);
	CU_ASSERT_PTR_NOT_NULL_FATAL(again);
	struct shmbus_sub_options first;
	shmbus_sub_options_init(&first);
	first.start = SHMBUS_START_FIRST;
	shmbus_sub *late;
	CU_ASSERT_EQUAL_FATAL(shmbus_sub_open(again, "g", NULL, &first, &late), 0);
	CU_ASSERT_TRUE(shmbus_sub_max_message_size(late) >= 5000);

	static uint8_t buf[1 << 16];
	struct shmbus_msg_info info;
	for (size_t i = 0; i < 5; i++) {
		CU_ASSERT_EQUAL_FATAL(take(sub, buf, sizeof(buf), &info), 0);
		CU_ASSERT_EQUAL(info.seq, i);
		CU_ASSERT_EQUAL(info.lost, 0);
		CU_ASSERT_TRUE(intact(buf, ks[i], info.size));
	}
	for (size_t i = 3; i < 5; i++) {
		CU_ASSERT_EQUAL_FATAL(take(late, buf, sizeof(buf), &info), 0);
		CU_ASSERT_EQUAL(info.seq, i);
		CU_ASSERT_TRUE(intact(buf, ks[i], info.size));
	}
	shmbus_sub_close(late);
	shmbus_sub_close(sub);
	shmbus_pub_close(pub);
	shmbus_disconnect(b);
	shmbus_disconnect(again);
	h_stop_bus(bus);
}

static void add(void)
{
	CU_pSuite s = CU_add_suite("grow", NULL, NULL);
	CU_add_test(s, "a topic grows under a publisher and two subscribers, nothing lost",
		    test_grow_under_traffic);
	CU_add_test(s, "old tail first; fixed publishers follow; EMSGSIZE without GROW",
		    test_follow);
	CU_add_test(s, "a growing publisher opens a smaller topic and grows it",
		    test_open_grows);
	CU_add_test(s, "an integrity-tagged topic grows, tags still check", test_grow_with_integrity);
	CU_add_test(s, "growth across broker restarts (kill -9)", test_grow_across_restart);
}

int main(void)
{
	return h_run("test_grow", add);
}
