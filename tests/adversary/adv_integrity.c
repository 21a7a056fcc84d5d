/*
 * adv_integrity.c - finding 4: integrity tags cannot be replayed or forged
 * without the key. A keyless client that speaks the protocol itself gets
 * nothing it can write; a message copied to another topic, into a new
 * incarnation of its topic, or given another publisher's id fails its tag.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "adv.h"

static char key[128];

static struct shmbus_topic_options tagged(void)
{
	struct shmbus_topic_options o;
	shmbus_topic_options_init(&o);
	o.type_name = "robot.Cmd";
	o.slot_count = 64;
	o.max_message_size = 256;
	o.flags = SHMBUS_TOPIC_INTEGRITY;
	return o;
}

static shmbus_pub *open_tagged(shmbus_bus *bus, const char *topic)
{
	struct shmbus_topic_options o = tagged();
	shmbus_pub *pub = NULL;
	int rc = shmbus_pub_open(bus, topic, &o, NULL, &pub);
	if (rc)
		printf("\n  open '%s': %s: %s", topic, shmbus_strerror(rc), shmbus_errmsg());
	CU_ASSERT_EQUAL_FATAL(rc, 0);
	return pub;
}

static void publish_n(shmbus_pub *pub, const char *prefix, int n)
{
	for (int i = 0; i < n; i++) {
		char m[32];
		snprintf(m, sizeof(m), "%s%d", prefix, i);
		CU_ASSERT_EQUAL(adv_send(pub, m), 0);
	}
}

/* Ask for the topic with the protocol alone, no key proven: refused, or
 * handed only descriptors that cannot write. */
static void expect_nothing_writable(const char *name, const char *topic, bool create)
{
	int fd = hostile_connect(name, false);
	CU_ASSERT_TRUE_FATAL(fd >= 0);
	struct hostile_reply r;
	struct shmbus_topic_options t = tagged();
	struct hostile_open o = { .topic = topic, .role = HOSTILE_PUB, .create = create,
				  .slot_count = t.slot_count, .max_message_size = t.max_message_size,
				  .flags = t.flags, .type_name = t.type_name };
	int rc = hostile_open(fd, &o, &r);
	CU_ASSERT_TRUE(rc == 0 || rc == SHMBUS_EPERM);
	int writable = 0;
	for (int i = 0; rc == 0 && i < r.nfds; i++)
		writable += hostile_fd_writable(r.fds[i]);
	if (writable)
		printf("\n  a keyless client got %d writable descriptor(s) of '%s'", writable, topic);
	CU_ASSERT_EQUAL(writable, 0);
	hostile_reply_close(&r);
	close(fd);
}

/* Finding 4a: keyless publishers got a read-write segment from the broker
 * (only the library refused to use it). */
static void test_keyless_gets_nothing_writable(void)
{
	const char *name = h_bus_name("int-keyless");
	int rc;
	shmbus_bus *bus = adv_connect(name, key, &rc);
	CU_ASSERT_PTR_NOT_NULL_FATAL(bus);
	shmbus_pub *pub = open_tagged(bus, "tagged/a");
	expect_nothing_writable(name, "tagged/a", false);
	expect_nothing_writable(name, "tagged/new", true);
	shmbus_pub_close(pub);
	shmbus_disconnect(bus);
	adv_stop_bus(name);
}

/* Copy the whole data mapping of one topic over another's. */
static void copy_topic_data(const char *from, const char *to)
{
	struct hostile_map a, b;
	CU_ASSERT_TRUE_FATAL(hostile_topic_data(from, &a));
	CU_ASSERT_TRUE_FATAL(hostile_topic_data(to, &b));
	CU_ASSERT_EQUAL(a.len, b.len);
	memcpy(b.addr, a.addr, a.len < b.len ? a.len : b.len);
}

static void expect_all_rejected(struct adv_victim *v, uint64_t n)
{
	struct adv_report r;
	CU_ASSERT_TRUE(adv_victim_report(v, &r, 20000));
	CU_ASSERT_EQUAL(adv_victim_end(v), 0);
	if (r.received)
		printf("\n  the subscriber of '%s' delivered %llu replayed message(s), last '%s'",
		       v->topic, (unsigned long long)r.received, r.last);
	CU_ASSERT_EQUAL(r.received, 0);
	CU_ASSERT_EQUAL(r.rejected, n);
}

/* Finding 4b: messages of robot1/cmd copied into robot2/cmd (same
 * options) verified there: the topic name the tag covers was read from
 * the shared memory the copy had overwritten. */
static void test_cross_topic_replay(void)
{
	const char *name = h_bus_name("int-cross");
	int rc;
	shmbus_bus *bus = adv_connect(name, key, &rc);
	CU_ASSERT_PTR_NOT_NULL_FATAL(bus);
	shmbus_pub *one = open_tagged(bus, "robot1/cmd");
	shmbus_pub *two = open_tagged(bus, "robot2/cmd");
	struct adv_victim v = { .bus = name, .topic = "robot2/cmd", .key_file = key };
	CU_ASSERT_TRUE_FATAL(adv_victim_start(&v, NULL));
	publish_n(one, "robot1-", 5);
	copy_topic_data("robot1/cmd", "robot2/cmd");
	expect_all_rejected(&v, 5);
	shmbus_pub_close(two);
	shmbus_pub_close(one);
	shmbus_disconnect(bus);
	adv_stop_bus(name);
}

/* Finding 4c: the messages of a topic, written into the topic created
 * again with the same options, verified: sequence numbers restart at 0
 * and the tag covers no incarnation of the topic. */
static void test_recreated_topic_replay(void)
{
	const char *name = h_bus_name("int-again");
	int rc;
	shmbus_bus *bus = adv_connect(name, key, &rc);
	CU_ASSERT_PTR_NOT_NULL_FATAL(bus);
	shmbus_pub *pub = open_tagged(bus, "replay/cmd");
	publish_n(pub, "old-", 8);
	struct hostile_map m;
	CU_ASSERT_TRUE_FATAL(hostile_topic_data("replay/cmd", &m));
	uint8_t *snapshot = malloc(m.len);
	size_t len = m.len;
	CU_ASSERT_PTR_NOT_NULL_FATAL(snapshot);
	memcpy(snapshot, m.addr, len);
	shmbus_pub_close(pub);
	shmbus_disconnect(bus);
	h_stop_bus(name); /* SIGTERM: the topic is removed */

	bus = adv_connect(name, key, &rc); /* a new broker */
	CU_ASSERT_PTR_NOT_NULL_FATAL(bus);
	pub = open_tagged(bus, "replay/cmd");
	CU_ASSERT_TRUE_FATAL(hostile_topic_data("replay/cmd", &m));
	memcpy(m.addr, snapshot, len < m.len ? len : m.len);
	free(snapshot);
	struct adv_victim v = { .bus = name, .topic = "replay/cmd", .key_file = key,
				.start_last = true, .last_n = 8 };
	CU_ASSERT_TRUE(adv_victim_start(&v, NULL));
	expect_all_rejected(&v, 8);
	shmbus_pub_close(pub);
	shmbus_disconnect(bus);
	adv_stop_bus(name);
}

/* Finding 4d: a message whose publisher id was rewritten in its slot
 * verified: the tag does not cover the publisher. */
static void test_rewritten_publisher_id(void)
{
	const char *name = h_bus_name("int-id");
	int rc;
	shmbus_bus *bus = adv_connect(name, key, &rc);
	CU_ASSERT_PTR_NOT_NULL_FATAL(bus);
	shmbus_pub *a = open_tagged(bus, "pid/cmd");
	shmbus_pub *b = open_tagged(bus, "pid/cmd");
	struct shmbus_pub_stats sa, sb;
	uint64_t seq;
	CU_ASSERT_EQUAL(shmbus_pub_send(a, "from-a", 7, &seq), 0);
	shmbus_pub_stats(a, &sa);
	shmbus_pub_stats(b, &sb);
	CU_ASSERT_NOT_EQUAL(sa.publisher_id, sb.publisher_id);
	CU_ASSERT_EQUAL(hostile_set_publisher_id("pid/cmd", seq, sb.publisher_id), 0);
	struct adv_victim v = { .bus = name, .topic = "pid/cmd", .key_file = key,
				.start_last = true, .last_n = 1 };
	CU_ASSERT_TRUE(adv_victim_start(&v, NULL));
	expect_all_rejected(&v, 1);
	shmbus_pub_close(b);
	shmbus_pub_close(a);
	shmbus_disconnect(bus);
	adv_stop_bus(name);
}

static int setup(void)
{
	if (adv_setup("integrity", false))
		return 1;
	snprintf(key, sizeof(key), "%s/key", adv_dir());
	int fd = open(key, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	const char *hex = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n";
	bool ok = fd >= 0 && write(fd, hex, strlen(hex)) == (ssize_t)strlen(hex);
	if (fd >= 0)
		close(fd);
	return ok ? 0 : 1;
}

static void add(void)
{
	CU_pSuite s = CU_add_suite("adversary: tags cannot be replayed or forged", setup,
				   adv_teardown);
	CU_add_test(s, "a keyless client gets nothing writable of a tagged topic",
		    test_keyless_gets_nothing_writable);
	CU_add_test(s, "messages copied to another topic are rejected", test_cross_topic_replay);
	CU_add_test(s, "messages replayed into the topic created again are rejected",
		    test_recreated_topic_replay);
	CU_add_test(s, "a message with a rewritten publisher id is rejected",
		    test_rewritten_publisher_id);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	return adv_exit(h_run("adv_integrity", add));
}
