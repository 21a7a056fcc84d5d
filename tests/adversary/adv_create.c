/*
 * adv_create.c - finding 6: subscribe permission does not create topics;
 * creating takes the policy's `create` action, within per-user quotas
 * (`limit WHO topics=N bytes=SIZE`; 64 topics and 256M for a user without
 * a limit line), and only the owner removes a topic (`shmbus rm`).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "adv.h"

/* What the second user asks for: topics prefix0, prefix1, ... of the
 * given size, as a subscriber creating if missing or as a publisher. */
struct ask {
	const char *bus, *prefix;
	int count;
	uint32_t slots, max_size;
	bool as_subscriber;
};

struct ask_result {
	int ok;             /* how many it got */
	int rc;             /* the first failure */
	char why[512];
};

static int asker(void *argp, int out)
{
	const struct ask *a = argp;
	struct ask_result res;
	memset(&res, 0, sizeof(res));
	int rc;
	shmbus_bus *bus = adv_connect(a->bus, NULL, &rc);
	for (int i = 0; bus && i < a->count && res.rc == 0; i++) {
		char topic[64];
		snprintf(topic, sizeof(topic), "%s%d", a->prefix, i);
		struct shmbus_topic_options t;
		shmbus_topic_options_init(&t);
		t.slot_count = a->slots;
		t.max_message_size = a->max_size;
		if (a->as_subscriber) {
			struct shmbus_sub_options so;
			shmbus_sub_options_init(&so);
			so.create_if_missing = true;
			shmbus_sub *sub;
			rc = shmbus_sub_open(bus, topic, &t, &so, &sub);
		} else {
			shmbus_pub *pub;
			rc = shmbus_pub_open(bus, topic, &t, NULL, &pub);
		}
		if (rc) {
			res.rc = rc;
			snprintf(res.why, sizeof(res.why), "%s", shmbus_errmsg());
		} else {
			res.ok++; /* kept open: the topics stay the user's */
		}
	}
	if (!bus)
		res.rc = rc;
	return write(out, &res, sizeof(res)) == sizeof(res) ? 0 : 1;
}

static struct ask_result ask(const struct ask *a)
{
	struct ask_result r = { 0, SHMBUS_EBROKER, "" };
	int fd;
	pid_t pid = adv_fork_as(&adv_other, asker, (void *)a, &fd);
	CU_ASSERT_TRUE(h_read(fd, &r, sizeof(r), 60000));
	CU_ASSERT_EQUAL(h_reap(pid, 20000), 0);
	close(fd);
	return r;
}

static void expect_refused(const struct ask_result *r, int ok, int rc, const char *word)
{
	if (r->ok != ok || r->rc != rc || !strstr(r->why, word))
		printf("\n  got %d topic(s), then %s: %s", r->ok, shmbus_strerror(r->rc), r->why);
	CU_ASSERT_EQUAL(r->ok, ok);
	CU_ASSERT_EQUAL(r->rc, rc);
	CU_ASSERT_PTR_NOT_NULL(strstr(r->why, word));
}

/* Finding 6a: a subscribe-only user created topics of any type, flags and
 * size, squatting names. */
static void test_subscribe_does_not_create(void)
{
	if (adv_skip_without_other())
		return;
	const char *name = h_bus_name("create-sub");
	CU_ASSERT_EQUAL_FATAL(adv_policy_bus(name, "allow user:USER subscribe topic/*\n"), 0);
	struct ask a = { name, "topic/new", 1, 8, 1024, true };
	struct ask_result r = ask(&a);
	expect_refused(&r, 0, SHMBUS_EPERM, "create");
	adv_stop_bus(name);
}

/* Finding 6a: with the create action it may. */
static void test_create_action(void)
{
	if (adv_skip_without_other())
		return;
	const char *name = h_bus_name("create-ok");
	CU_ASSERT_EQUAL_FATAL(adv_policy_bus(name, "allow user:USER create,subscribe topic/*\n"), 0);
	struct ask a = { name, "topic/new", 1, 8, 1024, true };
	struct ask_result r = ask(&a);
	CU_ASSERT_EQUAL(r.rc, 0);
	CU_ASSERT_EQUAL(r.ok, 1);
	adv_stop_bus(name);
}

/* Finding 6b: no quota. A user's limit line caps its topics and bytes. */
static void test_quota(void)
{
	if (adv_skip_without_other())
		return;
	const char *name = h_bus_name("quota");
	CU_ASSERT_EQUAL_FATAL(adv_policy_bus(name, "allow user:USER create,publish quota/*\n"
					      "limit user:USER topics=2 bytes=1M\n"),
			      0);
	struct ask big = { name, "quota/big", 1, 4, 512 * 1024, false }; /* 2 MiB of slots */
	struct ask_result r = ask(&big);
	expect_refused(&r, 0, SHMBUS_ELIMIT, "bytes");
	struct ask three = { name, "quota/small", 3, 8, 1024, false };
	r = ask(&three);
	expect_refused(&r, 2, SHMBUS_ELIMIT, "topics");
	adv_stop_bus(name);
}

/* Finding 6b: a user without a limit line gets 64 topics and 256M. */
static void test_default_quota(void)
{
	if (adv_skip_without_other())
		return;
	const char *name = h_bus_name("quota-def");
	CU_ASSERT_EQUAL_FATAL(adv_policy_bus(name, "allow user:USER create,publish free/*\n"), 0);
	struct ask big = { name, "free/big", 1, 2, 160u << 20, false }; /* 320 MiB */
	struct ask_result r = ask(&big);
	expect_refused(&r, 0, SHMBUS_ELIMIT, "bytes");
	struct ask many = { name, "free/t", 65, 2, 64, false };
	r = ask(&many);
	expect_refused(&r, 64, SHMBUS_ELIMIT, "topics");
	adv_stop_bus(name);
}

/* Finding 6c: there was no way to remove a topic; `shmbus rm` is the
 * owner's. */
static void test_rm(void)
{
	if (adv_skip_without_other())
		return;
	const char *name = h_bus_name("rm");
	char out[4096];
	CU_ASSERT_EQUAL_FATAL(adv_policy_bus(name, "allow user:USER subscribe *\n"), 0);
	shmbus_bus *owner = h_connect(name);
	CU_ASSERT_PTR_NOT_NULL_FATAL(owner);
	shmbus_pub *pub;
	shmbus_sub *sub;
	CU_ASSERT_EQUAL_FATAL(shmbus_pub_open(owner, "doomed/x", NULL, NULL, &pub), 0);
	CU_ASSERT_EQUAL_FATAL(shmbus_sub_open(owner, "doomed/x", NULL, NULL, &sub), 0);
	CU_ASSERT_EQUAL(adv_send(pub, "m-0"), 0);
	CU_ASSERT_EQUAL(adv_send(pub, "m-1"), 0);
	int files = hostile_bus_files(name);
	CU_ASSERT_EQUAL(files, 1);

	/* Another user may not. */
	int fd;
	const char *argv[] = { getenv("SHMBUS_CLI"), "rm", "--bus", name, "doomed/x", NULL };
	pid_t pid = h_spawn(argv, &fd, &adv_other);
	h_read_all(fd, out, sizeof(out), 30000);
	close(fd);
	int st = h_reap(pid, 10000);
	if (st != 1 || !strstr(out, shmbus_strerror(SHMBUS_EPERM)))
		printf("\n  shmbus rm as another user: status %d: %s", st, out);
	CU_ASSERT_EQUAL(st, 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, shmbus_strerror(SHMBUS_EPERM)));
	CU_ASSERT_EQUAL(hostile_bus_files(name), files);

	/* The owner may. */
	st = h_run_cli(out, sizeof(out), "rm --bus %s doomed/x", name);
	if (st)
		printf("\n  shmbus rm as the owner: status %d: %s", st, out);
	CU_ASSERT_EQUAL(st, 0);
	CU_ASSERT_EQUAL(hostile_bus_files(name), 0);
	st = h_run_cli(out, sizeof(out), "topics --bus %s", name);
	if (st)
		printf("\n  shmbus topics after rm: status %d: %s", st, out);
	CU_ASSERT_EQUAL(st, 0);
	CU_ASSERT_PTR_NULL(strstr(out, "doomed/x"));
	CU_ASSERT_EQUAL(adv_send(pub, "m-2"), SHMBUS_ENOTOPIC);
	char buf[16];
	int rc;
	while ((rc = shmbus_sub_take(sub, buf, sizeof(buf), NULL)) == 0)
		;
	CU_ASSERT_EQUAL(rc, SHMBUS_ENOTOPIC);
	shmbus_sub_close(sub);
	shmbus_pub_close(pub);
	shmbus_disconnect(owner);
	adv_stop_bus(name);
}

static int setup(void)
{
	return adv_setup("create", true);
}

static void add(void)
{
	CU_pSuite s = CU_add_suite("adversary: creating topics takes create, quotas, rm", setup,
				   adv_teardown);
	CU_add_test(s, "subscribe permission does not create a topic",
		    test_subscribe_does_not_create);
	CU_add_test(s, "the create action does", test_create_action);
	CU_add_test(s, "a limit line caps a user's topics and bytes", test_quota);
	CU_add_test(s, "a user without a limit line gets 64 topics and 256M", test_default_quota);
	CU_add_test(s, "only the owner removes a topic with shmbus rm", test_rm);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	return adv_exit(h_run("adv_create", add));
}
