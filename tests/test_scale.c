/*
 * test_scale.c - a bus with many topics: a thousand topics, each with a
 * publisher in this process and a subscriber in another, every process
 * (broker, keeper, clients, the CLI) started under the default soft
 * descriptor limit of 1024. Each subscriber gets its topic's message; the
 * CLI lists them all; the broker's memory per topic is what `info` says
 * and stays small (it maps a topic's header, never its ring).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "harness.h"

#define SEC 1000000000ll
#define N_TOPICS 1000

static struct shmbus_topic_options imu_class(void)
{
	struct shmbus_topic_options o;
	shmbus_topic_options_init(&o);
	o.type_name = "test.ImuClass";
	o.max_message_size = 340; /* what an shmbus.msgs.Imu packs into at most */
	return o;
}

static void topic_name(char *buf, size_t len, int i)
{
	snprintf(buf, len, "robot/sensor%03d/imu", i);
}

/* Opens a subscriber on every topic, says so, then takes one message from
 * each (waiting for it); reports how many arrived intact. */
static int subscribers(void *arg, int out)
{
	const char *bus_name = arg;
	shmbus_bus *bus = h_connect(bus_name);
	if (!bus)
		return 1;
	static shmbus_sub *subs[N_TOPICS];
	struct shmbus_topic_options o = imu_class();
	struct shmbus_sub_options so;
	shmbus_sub_options_init(&so);
	so.create_if_missing = true;
	for (int i = 0; i < N_TOPICS; i++) {
		char name[64];
		topic_name(name, sizeof(name), i);
		if (shmbus_sub_open(bus, name, &o, &so, &subs[i])) {
			fprintf(stderr, "subscriber %d: %s\n", i, shmbus_errmsg());
			return 2;
		}
	}
	uint32_t ready = 0;
	if (write(out, &ready, sizeof(ready)) != sizeof(ready))
		return 3;
	uint32_t got = 0;
	for (int i = 0; i < N_TOPICS; i++) {
		int32_t v = -1;
		int64_t end = h_now_ns() + 60 * SEC;
		int rc;
		while ((rc = shmbus_sub_take(subs[i], &v, sizeof(v), NULL)) == SHMBUS_EAGAIN &&
		       h_now_ns() < end)
			shmbus_sub_wait(subs[i], SEC);
		got += rc == 0 && v == i;
	}
	for (int i = 0; i < N_TOPICS; i++)
		shmbus_sub_close(subs[i]);
	shmbus_disconnect(bus);
	return write(out, &got, sizeof(got)) == sizeof(got) ? 0 : 4;
}

static void test_thousand_topics(void)
{
	struct rlimit rl, low;
	CU_ASSERT_EQUAL_FATAL(getrlimit(RLIMIT_NOFILE, &rl), 0);
	low = rl;
	low.rlim_cur = 1024; /* the default soft limit; the hard one as it is */
	CU_ASSERT_EQUAL_FATAL(setrlimit(RLIMIT_NOFILE, &low), 0);
	const char *bus = h_bus_name("scale");
	/* Every process from here on (the broker this connect starts, its
	 * keeper, the children, the CLI) inherits the soft limit of 1024. */
	shmbus_bus *b = h_connect(bus);
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);

	int sfd;
	int64_t t0 = h_now_ns();
	pid_t sp = h_fork(subscribers, (void *)bus, &sfd);
	uint32_t ready = 1, got = 0, sent = 0;
	CU_ASSERT_TRUE_FATAL(h_read(sfd, &ready, sizeof(ready), 120000));
	int64_t t1 = h_now_ns();
	/* This process publishes: a publisher on every topic, its number on
	 * each. */
	static shmbus_pub *pubs[N_TOPICS];
	struct shmbus_topic_options o = imu_class();
	for (int i = 0; i < N_TOPICS; i++) {
		char name[64];
		topic_name(name, sizeof(name), i);
		int rc = shmbus_pub_open(b, name, &o, NULL, &pubs[i]);
		if (rc) {
			fprintf(stderr, "\npublisher %d: %s\n", i, shmbus_errmsg());
			CU_FAIL_FATAL("cannot open a publisher");
		}
		int32_t v = i;
		sent += shmbus_pub_send(pubs[i], &v, sizeof(v), NULL) == 0;
	}
	int64_t t2 = h_now_ns();
	CU_ASSERT_TRUE(h_read(sfd, &got, sizeof(got), 120000));
	CU_ASSERT_EQUAL(sent, N_TOPICS);
	CU_ASSERT_EQUAL(got, N_TOPICS);
	CU_ASSERT_EQUAL(h_reap(sp, 60000), 0);

	/* The CLI lists them all, and info on one shows its publisher. */
	static char out[1 << 17];
	CU_ASSERT_EQUAL(h_run_cli(out, sizeof(out), "topics --bus %s", bus), 0);
	size_t lines = 0;
	for (const char *p = out; (p = strstr(p, "robot/sensor")); p++)
		lines++;
	CU_ASSERT_EQUAL(lines, N_TOPICS);
	struct shmbus_topic_info ti;
	CU_ASSERT_EQUAL(shmbus_topic_inspect(b, "robot/sensor999/imu", &ti, NULL, 0, NULL, NULL, 0,
					     NULL),
			0);
	CU_ASSERT_EQUAL(ti.publishers, 1);
	CU_ASSERT_EQUAL(ti.next_seq, 1);
	/* What the broker keeps per topic: the struct, the meta, one page of
	 * the ring; never the ring. */
	CU_ASSERT_TRUE(ti.broker_bytes < 64 * 1024);
	CU_ASSERT_TRUE(ti.broker_bytes < ti.segment_size);
	printf("\n  %d topics: subscribers opened in %.2f s, publishers opened and sent in "
	       "%.2f s; ring %llu bytes, broker %llu bytes per topic",
	       N_TOPICS, (double)(t1 - t0) / SEC, (double)(t2 - t1) / SEC,
	       (unsigned long long)ti.segment_size, (unsigned long long)ti.broker_bytes);

	close(sfd);
	for (int i = 0; i < N_TOPICS; i++)
		shmbus_pub_close(pubs[i]);
	shmbus_disconnect(b);
	h_stop_bus(bus);
	setrlimit(RLIMIT_NOFILE, &rl);
}

static void add(void)
{
	CU_pSuite s = CU_add_suite("scale", NULL, NULL);
	CU_add_test(s, "a thousand topics under ulimit -n 1024", test_thousand_topics);
}

int main(void)
{
	return h_run("test_scale", add);
}
