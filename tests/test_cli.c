/*
 * test_cli.c - `shmbus topics` and `shmbus info` against a live bus: what
 * they print, and their errors and exit codes.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "harness.h"

static void test_topics_and_info(void)
{
	const char *name = h_bus_name("cli");
	char out[8192];
	shmbus_bus *bus = h_connect(name);
	CU_ASSERT_PTR_NOT_NULL_FATAL(bus);
	struct shmbus_topic_options o;
	shmbus_topic_options_init(&o);
	o.type_name = "shmbus.msgs.Imu";
	o.slot_count = 32;
	o.max_message_size = 512;
	shmbus_pub *pub;
	shmbus_sub *sub;
	CU_ASSERT_EQUAL_FATAL(shmbus_pub_open(bus, "imu/front", &o, NULL, &pub), 0);
	CU_ASSERT_EQUAL_FATAL(shmbus_sub_open(bus, "imu/front", NULL, NULL, &sub), 0);
	for (int i = 0; i < 5; i++)
		CU_ASSERT_EQUAL(shmbus_pub_send(pub, "abc", 3, NULL), 0);
	char buf[8];
	CU_ASSERT_EQUAL(shmbus_sub_take(sub, buf, sizeof(buf), NULL), 0);

	CU_ASSERT_EQUAL(h_run_cli(out, sizeof(out), "topics --bus %s", name), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "imu/front"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "shmbus.msgs.Imu"));
	/* name, type, 1 publisher, 1 subscriber, last sequence number 4 */
	char t[64], ty[64];
	unsigned np = 9, ns = 9, last = 9;
	const char *line = strstr(out, "imu/front");
	CU_ASSERT_FATAL(line != NULL);
	CU_ASSERT_EQUAL(sscanf(line, "%63s %63s %u %u %u", t, ty, &np, &ns, &last), 5);
	CU_ASSERT_EQUAL(np, 1);
	CU_ASSERT_EQUAL(ns, 1);
	CU_ASSERT_EQUAL(last, 4);

	CU_ASSERT_EQUAL(h_run_cli(out, sizeof(out), "info imu/front --bus=%s", name), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "32 slots"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "publishers:  1"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "subscribers: 1"));
	char pid[32];
	snprintf(pid, sizeof(pid), " %d ", (int)getpid());
	CU_ASSERT_PTR_NOT_NULL(strstr(out, pid));
	/* The subscriber took 1 of 5: lag 4 in its line. */
	const char *subs = strstr(out, "subscribers: 1");
	CU_ASSERT_FATAL(subs != NULL);
	int spid;
	unsigned slot, recv, lost, lag;
	const char *row = strchr(strchr(subs, '\n') + 1, '\n') + 1;
	CU_ASSERT_EQUAL(sscanf(row, "%d %u %u %u %u", &spid, &slot, &recv, &lost, &lag), 5);
	CU_ASSERT_EQUAL(spid, getpid());
	CU_ASSERT_EQUAL(recv, 1);
	CU_ASSERT_EQUAL(lost, 0);
	CU_ASSERT_EQUAL(lag, 4);

	CU_ASSERT_EQUAL(h_run_cli(out, sizeof(out), "info nosuch --bus %s", name), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "does not exist"));
	CU_ASSERT_EQUAL(h_run_cli(out, sizeof(out), "info --help"), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "usage: shmbus info"));
	CU_ASSERT_EQUAL(h_run_cli(out, sizeof(out), "topics --help"), 0);
	CU_ASSERT_EQUAL(h_run_cli(out, sizeof(out), "frobnicate"), 2);
	shmbus_sub_close(sub);
	shmbus_pub_close(pub);
	pid_t broker = shmbus_broker_pid(bus);
	shmbus_disconnect(bus);
	/* stop returns once the broker has exited and cleaned up. */
	CU_ASSERT_EQUAL(h_run_cli(out, sizeof(out), "stop --bus %s", name), 0);
	CU_ASSERT_TRUE(h_wait_exit(broker, 0));
	CU_ASSERT_TRUE(h_keeper_gone(name, 20000));
	CU_ASSERT_EQUAL(h_run_cli(out, sizeof(out), "stop --bus %s", name), 1);
	/* No broker: a clear error, and inspecting does not start one. */
	CU_ASSERT_EQUAL(h_run_cli(out, sizeof(out), "topics --bus %s", name), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "no broker"));
	CU_ASSERT_EQUAL(h_keeper_pid(name), -1);
}

static void add(void)
{
	CU_pSuite s = CU_add_suite("cli", NULL, NULL);
	CU_add_test(s, "topics and info on a live bus", test_topics_and_info);
}

int main(void)
{
	return h_run("test_cli", add);
}
