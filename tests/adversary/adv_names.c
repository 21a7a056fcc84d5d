/*
 * adv_names.c - finding 2: one bus never deletes another's topics. Bus
 * names may contain '.', so the files of bus "X.a" and topic 2 of bus "X"
 * look alike to a broker that matches names by prefix; a broker must
 * remove only files that parse exactly as its own bus's.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "adv.h"

struct live {
	shmbus_bus *bus;
	shmbus_pub *pub;
	shmbus_sub *sub;
};

/* A topic with a publisher and a subscriber that exchanged a message. */
static void live_open(struct live *l, const char *name, const char *topic)
{
	l->bus = h_connect(name);
	CU_ASSERT_PTR_NOT_NULL_FATAL(l->bus);
	CU_ASSERT_EQUAL_FATAL(shmbus_pub_open(l->bus, topic, NULL, NULL, &l->pub), 0);
	CU_ASSERT_EQUAL_FATAL(shmbus_sub_open(l->bus, topic, NULL, NULL, &l->sub), 0);
}

/* Its clients still work: the old ones exchange a message, and a new
 * subscriber can open it (the broker still has its files). */
static void live_check(struct live *l, const char *topic)
{
	char buf[16];
	shmbus_sub *late = NULL;
	CU_ASSERT_EQUAL(adv_send(l->pub, "hello"), 0);
	CU_ASSERT_EQUAL(shmbus_sub_take(l->sub, buf, sizeof(buf), NULL), 0);
	int rc = shmbus_sub_open(l->bus, topic, NULL, NULL, &late);
	if (rc)
		printf("\n  opening '%s' again: %s: %s", topic, shmbus_strerror(rc),
		       shmbus_errmsg());
	CU_ASSERT_EQUAL(rc, 0);
	shmbus_sub_close(late);
}

static void live_close(struct live *l)
{
	shmbus_sub_close(l->sub);
	shmbus_pub_close(l->pub);
	shmbus_disconnect(l->bus);
}

static void bus_named(char *buf, size_t len, const char *base, const char *suffix)
{
	snprintf(buf, len, "%s%s", base, suffix);
}

/* Finding 2: starting the broker of bus X deleted the files of the running
 * buses X.a and X.2. */
static void test_start_keeps_other_buses(void)
{
	char x[80], xa[84], x2[84];
	snprintf(x, sizeof(x), "%s", h_bus_name("nm"));
	bus_named(xa, sizeof(xa), x, ".a");
	bus_named(x2, sizeof(x2), x, ".2");
	struct live a, b;
	live_open(&a, xa, "topic");
	live_open(&b, x2, "topic");
	int files_a = hostile_bus_files(xa), files_2 = hostile_bus_files(x2);
	CU_ASSERT_TRUE(files_a > 0 && files_2 > 0);

	shmbus_bus *bx = h_connect(x); /* starts X's broker */
	CU_ASSERT_PTR_NOT_NULL(bx);
	CU_ASSERT_EQUAL(hostile_bus_files(xa), files_a);
	CU_ASSERT_EQUAL(hostile_bus_files(x2), files_2);
	live_check(&a, "topic");
	live_check(&b, "topic");

	shmbus_disconnect(bx);
	live_close(&a);
	live_close(&b);
	adv_stop_bus(xa);
	adv_stop_bus(x2);
	adv_stop_bus(x);
}

/* Finding 2, the other way round: (re)starting the broker of bus X.2
 * deleted topic 2 of bus X. */
static void test_restart_keeps_topic_2(void)
{
	char x[80], x2[84];
	snprintf(x, sizeof(x), "%s", h_bus_name("nm2"));
	bus_named(x2, sizeof(x2), x, ".2");
	struct live one, two;
	live_open(&one, x, "one"); /* topic 1 */
	live_open(&two, x, "two"); /* topic 2 */
	int files = hostile_bus_files(x);
	CU_ASSERT_TRUE(files > 0);

	shmbus_bus *b2 = h_connect(x2); /* starts X.2's broker */
	CU_ASSERT_PTR_NOT_NULL_FATAL(b2);
	shmbus_disconnect(b2);
	CU_ASSERT_EQUAL(hostile_bus_files(x), files);
	adv_kill_broker(x2);
	b2 = h_connect(x2); /* and again, after a crash */
	CU_ASSERT_PTR_NOT_NULL(b2);
	shmbus_disconnect(b2);
	CU_ASSERT_EQUAL(hostile_bus_files(x), files);
	live_check(&one, "one");
	live_check(&two, "two");

	live_close(&one);
	live_close(&two);
	adv_stop_bus(x2);
	adv_stop_bus(x);
}

static int setup(void)
{
	return adv_setup("names", false);
}

static void add(void)
{
	CU_pSuite s = CU_add_suite("adversary: one bus never deletes another's topics", setup,
				   adv_teardown);
	CU_add_test(s, "starting bus X keeps the topics of X.a and X.2",
		    test_start_keeps_other_buses);
	CU_add_test(s, "restarting bus X.2 keeps topic 2 of X", test_restart_keeps_topic_2);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	return adv_exit(h_run("adv_names", add));
}
