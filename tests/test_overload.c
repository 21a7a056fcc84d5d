/*
 * test_overload.c - a subscriber slower than its publisher keeps getting
 * messages at its own pace: a camera-like publisher (large messages into a
 * small ring) in another process, a subscriber that holds each message in
 * place for longer than the publisher takes to publish one. Most views it
 * starts must stay valid, and received + lost must equal what was
 * published, exactly. The same with a publisher that does not pace itself
 * at all and a subscriber that copies each message out (a view, a copy, a
 * release: what a take does, made visible).
 *
 * The share of valid views is what is asserted, not a rate: it does not
 * depend on how fast this machine is. SHMBUS_LAPPED_OLDEST runs beside as
 * the comparison (printed, not asserted).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define SEC 1000000000ll
#define MSG (256u << 10)
#define SLOTS 16

struct pub_arg {
	const char *bus;
	const char *topic;
	int64_t period_ns; /* 0: as fast as it can */
	int64_t run_ns;
};

/* Publishes MSG-byte messages (a counter in the first 8 bytes, the rest
 * filled from it) for run_ns; says how many it published. */
static int publisher(void *argp, int out)
{
	const struct pub_arg *a = argp;
	shmbus_bus *bus = h_connect(a->bus);
	struct shmbus_topic_options o;
	shmbus_topic_options_init(&o);
	o.slot_count = SLOTS;
	o.max_message_size = MSG;
	shmbus_pub *pub;
	if (!bus || shmbus_pub_open(bus, a->topic, &o, NULL, &pub))
		return 1;
	if (write(out, "r", 1) != 1)
		return 2;
	uint64_t n = 0;
	int64_t next = h_now_ns();
	int64_t end = h_now_ns() + a->run_ns;
	while (h_now_ns() < end) {
		void *buf;
		size_t cap;
		if (shmbus_pub_loan(pub, &buf, &cap))
			return 3;
		uint64_t *w = buf;
		memset(buf, (int)n, MSG); /* a camera writes the whole frame */
		w[0] = n;
		w[MSG / 8 - 1] = n ^ 0x5555555555555555ull;
		if (shmbus_pub_publish(pub, MSG, NULL) == 0)
			n++;
		if (a->period_ns) {
			next += a->period_ns;
			now_sleep_until(next);
		}
	}
	shmbus_pub_send(pub, "end", 4, NULL);
	shmbus_pub_close(pub);
	shmbus_disconnect(bus);
	return write(out, &n, sizeof(n)) == sizeof(n) ? 0 : 4;
}

struct outcome {
	uint64_t started, valid, received, lost, published, torn;
};

/* Views every message until "end": holds each hold_ns (sleeping), or
 * copies it out when hold_ns is 0. */
static void subscribe(const char *name, const char *topic, enum shmbus_lapped lapped,
		      int64_t hold_ns, int64_t period_ns, struct outcome *res)
{
	shmbus_bus *bus = h_connect(name);
	CU_ASSERT_PTR_NOT_NULL_FATAL(bus);
	struct shmbus_topic_options o;
	shmbus_topic_options_init(&o);
	o.slot_count = SLOTS;
	o.max_message_size = MSG;
	struct shmbus_sub_options so;
	shmbus_sub_options_init(&so);
	so.create_if_missing = true;
	so.lapped = lapped;
	shmbus_sub *sub;
	CU_ASSERT_EQUAL_FATAL(shmbus_sub_open(bus, topic, &o, &so, &sub), 0);
	struct pub_arg a = { name, topic, period_ns, 3 * SEC };
	int out;
	pid_t pid = h_fork(publisher, &a, &out);
	char r;
	CU_ASSERT_TRUE_FATAL(h_read(out, &r, 1, 30000));
	uint8_t *copy = malloc(MSG);
	memset(res, 0, sizeof(*res));
	for (bool end = false; !end;) {
		if (shmbus_sub_wait(sub, 30 * SEC) != SHMBUS_OK)
			break;
		struct shmbus_view v;
		while (!end && shmbus_sub_view(sub, &v) == SHMBUS_OK) {
			if (v.info.size == 4) {
				end = true;
				shmbus_sub_release(sub, &v);
				break;
			}
			res->started++;
			uint64_t n;
			if (hold_ns) {
				struct timespec ts = { 0, hold_ns };
				nanosleep(&ts, NULL);
				memcpy(&n, v.data, 8);
			} else {
				memcpy(copy, v.data, MSG);
				memcpy(&n, copy, 8);
			}
			if (shmbus_sub_release(sub, &v) == SHMBUS_OK) {
				res->valid++;
				uint64_t last;
				memcpy(&last, copy + MSG - 8, 8);
				/* A valid copy is whole: its two ends agree. */
				if (!hold_ns && last != (n ^ 0x5555555555555555ull))
					res->torn++;
			}
		}
	}
	free(copy);
	CU_ASSERT_TRUE(h_read(out, &res->published, sizeof(res->published), 60000));
	CU_ASSERT_EQUAL(h_reap(pid, 30000), 0);
	close(out);
	struct shmbus_sub_stats st;
	shmbus_sub_stats(sub, &st);
	res->received = st.received;
	res->lost = st.lost;
	shmbus_sub_close(sub);
	shmbus_disconnect(bus);
}

static void report(const char *what, const struct outcome *r)
{
	printf("\n  %s: %llu published, %llu views started, %llu valid (%.0f %%), received %llu, "
	       "lost %llu",
	       what, (unsigned long long)r->published, (unsigned long long)r->started,
	       (unsigned long long)r->valid, r->started ? 100.0 * (double)r->valid / (double)r->started : 0,
	       (unsigned long long)r->received, (unsigned long long)r->lost);
}

static void check(const struct outcome *r)
{
	/* Exact accounting: every number published (the "end" one too) is
	 * received or lost. */
	CU_ASSERT_EQUAL(r->received + r->lost, r->published + 1);
	CU_ASSERT_EQUAL(r->received, r->valid + 1);
	CU_ASSERT_EQUAL(r->torn, 0);
	CU_ASSERT_TRUE(r->started > 0);
	CU_ASSERT_TRUE(2 * r->valid >= r->started);
}

/* A camera at 1 kHz into 16 slots (a lap every 16 ms), a subscriber that
 * holds each frame 5 ms: well under a lap, yet slower than the camera. */
static void test_slow_viewer(void)
{
	const char *name = h_bus_name("ovl");
	struct outcome pace, oldest;
	subscribe(name, "cam/pace", SHMBUS_LAPPED_PACE, 5000000, 1000000, &pace);
	subscribe(name, "cam/oldest", SHMBUS_LAPPED_OLDEST, 5000000, 1000000, &oldest);
	report("pace", &pace);
	report("oldest (comparison)", &oldest);
	check(&pace);
	h_stop_bus(name);
}

/* A publisher as fast as it can go, a subscriber that copies each
 * message out. */
static void test_copier_unpaced(void)
{
	const char *name = h_bus_name("ovc");
	struct outcome pace, oldest;
	subscribe(name, "raw/pace", SHMBUS_LAPPED_PACE, 0, 0, &pace);
	subscribe(name, "raw/oldest", SHMBUS_LAPPED_OLDEST, 0, 0, &oldest);
	report("pace", &pace);
	report("oldest (comparison)", &oldest);
	check(&pace);
	h_stop_bus(name);
}

static void add(void)
{
	CU_pSuite s = CU_add_suite("overload", NULL, NULL);
	CU_add_test(s, "a viewer slower than its camera keeps most views valid",
		    test_slow_viewer);
	CU_add_test(s, "a copier behind an unpaced publisher keeps most copies valid",
		    test_copier_unpaced);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	return h_run("test_overload", add);
}
