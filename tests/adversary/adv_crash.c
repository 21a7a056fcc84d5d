/*
 * adv_crash.c - finding 1: subscribers never write the data segment. A
 * subscriber waiting on a sequence number whose publisher died (holding
 * its loan while no broker ran, or between claiming the number and taking
 * its slot) must skip it once its stall timeout passes, count it lost and
 * go on; today it writes the slot state through a read-only mapping and
 * dies of SIGSEGV.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "adv.h"

#define STALL_NS (SEC / 5)

/* Create the topic (the broker keeps it) without staying its publisher. */
static void create_topic(const char *name, const char *topic)
{
	shmbus_bus *bus = h_connect(name);
	shmbus_pub *pub;
	CU_ASSERT_PTR_NOT_NULL_FATAL(bus);
	CU_ASSERT_EQUAL_FATAL(shmbus_pub_open(bus, topic, NULL, NULL, &pub), 0);
	shmbus_pub_close(pub);
	shmbus_disconnect(bus);
}

/* Publish strings from a new connection (which starts a broker if none
 * runs), "stop" last if asked. */
static void publish_more(const char *name, const char *topic, int n, bool stop)
{
	shmbus_bus *bus = h_connect(name);
	shmbus_pub *pub;
	CU_ASSERT_PTR_NOT_NULL_FATAL(bus);
	CU_ASSERT_EQUAL_FATAL(shmbus_pub_open(bus, topic, NULL, NULL, &pub), 0);
	for (int i = 0; i < n; i++) {
		char m[32];
		snprintf(m, sizeof(m), "n-%d", i);
		CU_ASSERT_EQUAL(adv_send(pub, m), 0);
	}
	if (stop)
		CU_ASSERT_EQUAL(adv_send(pub, "stop"), 0);
	shmbus_pub_close(pub);
	shmbus_disconnect(bus);
}

/* The subscriber outlived the dead publisher by 3 stall timeouts and the
 * second allowed; it then takes what a later publisher sends, having
 * lost exactly the one number. since: when the publisher died, if the
 * subscriber had a reason to wake then (0: it had none). */
static void expect_one_lost(struct adv_victim *v, const char *name, uint64_t before,
			    int64_t since)
{
	bool alive = !h_wait_exit(v->pid, (int)(3 * STALL_NS / 1000000) + 1000);
	CU_ASSERT_TRUE(alive);
	if (alive)
		publish_more(name, v->topic, 3, true);
	struct adv_report r;
	bool reported = adv_victim_report(v, &r, 20000);
	CU_ASSERT_TRUE(reported);
	int st = adv_victim_end(v);
	if (st)
		printf("\n  subscriber exited with status %d", st);
	CU_ASSERT_EQUAL(st, 0);
	if (reported) {
		CU_ASSERT_EQUAL(r.lost, 1);
		CU_ASSERT_EQUAL(r.received, before + 3 + 1);
		CU_ASSERT_STRING_EQUAL(r.last, "stop");
		if (since)
			CU_ASSERT_TRUE(r.first_loss_ns > 0 &&
				       r.first_loss_ns - since <= STALL_NS + SEC);
	}
}

/* Finding 1 (the reproduction): `shmbus hz --wait`, a publisher
 * that published 5 messages and holds a loan, kill -9 of the broker and
 * then of the publisher. hz must outlive 3x its stall timeout (1 s) and
 * count the messages a new publisher sends. */
static void test_hz_outlives_dead_loan_without_broker(void)
{
	const char *name = h_bus_name("crash-hz");
	char out[4096];
	int fd;
	create_topic(name, "held");
	const char *argv[] = { getenv("SHMBUS_CLI"), "hz", "--bus", name, "--wait", "-n", "8",
			       "held", NULL };
	pid_t hz = h_spawn(argv, &fd, NULL);
	CU_ASSERT_TRUE_FATAL(adv_wait_subscribers(name, "held", 1, 30000));
	struct adv_holder h = { name, "held", NULL, NULL, 5 };
	pid_t holder = adv_holder_start(&h);
	CU_ASSERT_TRUE_FATAL(holder > 0);
	adv_kill_broker(name);
	kill(holder, SIGKILL);
	CU_ASSERT_EQUAL(h_reap(holder, 20000), 128 + SIGKILL);

	bool alive = !h_wait_exit(hz, 3000);
	CU_ASSERT_TRUE(alive);
	if (alive) {
		publish_more(name, "held", 3, false); /* starts a new broker */
		CU_ASSERT_EQUAL(h_reap(hz, 30000), 0); /* -n 8: 5 + 3 received */
	} else {
		int st = h_reap(hz, 1000);
		printf("\n  shmbus hz exited with status %d after the loan holder died", st);
	}
	h_read_all(fd, out, sizeof(out), 1000);
	close(fd);
	if (!strstr(out, "total:"))
		printf("\n  shmbus hz said: %s", out);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "total:"));
	adv_stop_bus(name);
}

/* Finding 1 through the C API: a subscriber asleep in
 * shmbus_sub_wait(sub, -1) behind the dead loan, no broker: it returns
 * within its stall timeout + 1 s, counts exactly 1 lost, and takes what a
 * later publisher sends. */
static void test_waiter_skips_dead_loan_without_broker(void)
{
	const char *name = h_bus_name("crash-api");
	create_topic(name, "held");
	struct adv_victim v = { .bus = name, .topic = "held", .stall_ns = STALL_NS,
				.forever = true };
	CU_ASSERT_TRUE_FATAL(adv_victim_start(&v, NULL));
	struct adv_holder h = { name, "held", NULL, NULL, 5 };
	pid_t holder = adv_holder_start(&h);
	CU_ASSERT_TRUE_FATAL(holder > 0);
	adv_kill_broker(name);
	int64_t killed = h_now_ns();
	kill(holder, SIGKILL);
	CU_ASSERT_EQUAL(h_reap(holder, 20000), 128 + SIGKILL);
	expect_one_lost(&v, name, 5, killed); /* still no broker until it publishes */
	adv_stop_bus(name);
}

/* Claims a number the way a publisher does and dies before taking its
 * slot. */
static int claim_and_die(void *argp, int out)
{
	const char *name = argp;
	int rc;
	uint64_t seq;
	(void)out;
	shmbus_bus *bus = adv_connect(name, NULL, &rc);
	shmbus_pub *pub;
	if (!bus || shmbus_pub_open(bus, "claimed", NULL, NULL, &pub) || adv_send(pub, "m-0") ||
	    adv_send(pub, "m-1"))
		return 1;
	if (hostile_claim_seq("claimed", &seq))
		return 2;
	_exit(0);
}

/* Finding 1 with the broker up: a publisher dies between its claim of a
 * sequence number and its slot. The broker has no slot to release; the
 * subscriber skips the number itself: not killed, exactly 1 lost. */
static void test_waiter_skips_claim_without_slot(void)
{
	const char *name = h_bus_name("crash-claim");
	create_topic(name, "claimed");
	struct adv_victim v = { .bus = name, .topic = "claimed", .stall_ns = STALL_NS,
				.forever = true };
	CU_ASSERT_TRUE_FATAL(adv_victim_start(&v, NULL));
	int fd;
	pid_t pub = h_fork(claim_and_die, (void *)name, &fd);
	CU_ASSERT_EQUAL(h_reap(pub, 20000), 0);
	close(fd);
	/* Nothing committed after the claim: no reason to wake until the
	 * next message, so no deadline for the loss before it. */
	expect_one_lost(&v, name, 2, 0);
	adv_stop_bus(name);
}

static int setup(void)
{
	return adv_setup("crash", false);
}

static void add(void)
{
	CU_pSuite s = CU_add_suite("adversary: subscribers never write the data", setup,
				   adv_teardown);
	CU_add_test(s, "shmbus hz outlives a loan dead without a broker",
		    test_hz_outlives_dead_loan_without_broker);
	CU_add_test(s, "a waiting subscriber skips a loan dead without a broker",
		    test_waiter_skips_dead_loan_without_broker);
	CU_add_test(s, "a subscriber skips a number claimed by a publisher that died",
		    test_waiter_skips_claim_without_slot);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	return adv_exit(h_run("adv_crash", add));
}
