/*
 * adv_rename.c - finding 3: a publisher cannot rename or reshape its
 * topic. A second user allowed to publish only under sandbox/ rewrites,
 * in the shared memory it may write, its topic's name and type into those
 * of the owner's cmd/vel, and its topic's maximum message size into 2 GiB.
 * Name,
 * type and layout must stay what the broker made them: for the broker,
 * the tools, the owner's subscribers, and a broker restarted after a crash.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "adv.h"

static int start_bus(const char *name)
{
	return adv_policy_bus(name, "allow user:USER publish sandbox/*\n");
}

struct attack {
	const char *bus;
	bool reseal;     /* also recompute the header's unkeyed check */
	bool reshape;    /* the max-size attack instead of the rename */
};

struct attack_result {
	int open_rc, sent;
	size_t names, types, sizes, resealed;
	int raw_rc;
};

static struct shmbus_topic_options typed(const char *type, uint32_t max)
{
	struct shmbus_topic_options o;
	shmbus_topic_options_init(&o);
	o.type_name = type;
	o.max_message_size = max;
	o.slot_count = 8;
	return o;
}

/* As the second user: open the sandbox topic as its publisher, rewrite
 * what it can, publish. */
static int attacker(void *argp, int out)
{
	const struct attack *a = argp;
	struct attack_result res;
	memset(&res, 0, sizeof(res));
	int rc;
	shmbus_bus *bus = adv_connect(a->bus, NULL, &rc);
	shmbus_pub *pub = NULL;
	struct shmbus_topic_options o = a->reshape ? typed(NULL, 4099) : typed("sandbox.Msg", 64);
	res.open_rc = bus ? shmbus_pub_open(bus, a->reshape ? "sandbox/big" : "sandbox/x", &o, NULL, &pub)
			  : rc;
	if (res.open_rc == 0 && !a->reshape) {
		res.names = hostile_replace("sandbox/x", "cmd/vel\0\0", 9);
		res.types = hostile_replace("sandbox.Msg", "robot.Twist", 11);
		if (a->reseal)
			res.resealed = hostile_reseal();
		for (int i = 0; i < 5; i++) {
			char m[32];
			snprintf(m, sizeof(m), "hostile-%d", i);
			res.sent += adv_send(pub, m) == 0;
		}
	} else if (res.open_rc == 0) {
		uint32_t from = 4099, to = 0x7fffffff;
		res.sizes = hostile_replace(&from, &to, sizeof(from));
		res.raw_rc = hostile_publish_raw("sandbox/big", "huge", 5, 0x40000000u, NULL);
	}
	shmbus_pub_close(pub);
	shmbus_disconnect(bus);
	return write(out, &res, sizeof(res)) == sizeof(res) ? 0 : 1;
}

static bool run_attack(struct attack *a, struct attack_result *res)
{
	int fd;
	pid_t pid = adv_fork_as(&adv_other, attacker, a, &fd);
	bool ok = h_read(fd, res, sizeof(*res), 30000);
	CU_ASSERT_EQUAL(h_reap(pid, 10000), 0);
	close(fd);
	CU_ASSERT_TRUE(ok);
	CU_ASSERT_EQUAL(res->open_rc, 0);
	printf("\n  the publisher of the sandbox rewrote %zu name(s), %zu type(s), %zu size(s), "
	       "resealed %zu header(s)",
	       res->names, res->types, res->sizes, res->resealed);
	return ok;
}

/* How many lines of `shmbus topics` name the topic, and the type of the
 * last one. */
static int topic_lines(const char *out, const char *topic, char *type, size_t len)
{
	int n = 0;
	for (const char *line = out; line && *line; line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
		char t[256], ty[256];
		if (sscanf(line, "%255s %255s", t, ty) == 2 && strcmp(t, topic) == 0) {
			snprintf(type, len, "%s", ty);
			n++;
		}
	}
	return n;
}

static void expect_topic(const char *name, const char *topic, const char *type)
{
	char out[8192], got[256] = "";
	CU_ASSERT_EQUAL(h_run_cli(out, sizeof(out), "topics --bus %s", name), 0);
	int n = topic_lines(out, topic, got, sizeof(got));
	if (n != 1 || strcmp(got, type) != 0)
		printf("\n  shmbus topics, looking for %s (%s), said:\n%s", topic, type, out);
	CU_ASSERT_EQUAL(n, 1);
	CU_ASSERT_STRING_EQUAL(got, type);
	char want[300];
	snprintf(want, sizeof(want), "type:        %s", type);
	int rc = h_run_cli(out, sizeof(out), "info --bus %s %s", name, topic);
	if (rc || !strstr(out, want))
		printf("\n  shmbus info %s said:\n%s", topic, out);
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, want));
}

/* Sequence numbers handed out on the topic, from `shmbus info`. */
static long long published(const char *name, const char *topic)
{
	char out[8192];
	long long n = -1;
	if (h_run_cli(out, sizeof(out), "info --bus %s %s", name, topic) == 0) {
		const char *p = strstr(out, "published:");
		if (!p || sscanf(p, "published: %lld", &n) != 1)
			n = -1;
	}
	return n;
}

static void rename_attack(bool reseal)
{
	if (adv_skip_without_other())
		return;
	const char *name = h_bus_name(reseal ? "ren-seal" : "ren");
	CU_ASSERT_EQUAL_FATAL(start_bus(name), 0);
	shmbus_bus *owner = h_connect(name);
	CU_ASSERT_PTR_NOT_NULL_FATAL(owner);
	struct shmbus_topic_options vel = typed("robot.Twist", 64);
	struct shmbus_topic_options box = typed("sandbox.Msg", 64);
	shmbus_pub *cmd, *sandbox;
	CU_ASSERT_EQUAL_FATAL(shmbus_pub_open(owner, "cmd/vel", &vel, NULL, &cmd), 0);
	CU_ASSERT_EQUAL_FATAL(shmbus_pub_open(owner, "sandbox/x", &box, NULL, &sandbox), 0);
	shmbus_pub_close(sandbox);
	struct adv_victim v = { .bus = name, .topic = "cmd/vel", .expect = "owner-" };
	CU_ASSERT_TRUE_FATAL(adv_victim_start(&v, NULL));
	CU_ASSERT_EQUAL(adv_send(cmd, "owner-1"), 0);

	struct attack a = { name, reseal, false };
	struct attack_result res;
	run_attack(&a, &res);
	CU_ASSERT_EQUAL(adv_send(cmd, "owner-2"), 0);
	expect_topic(name, "sandbox/x", "sandbox.Msg");
	expect_topic(name, "cmd/vel", "robot.Twist");

	/* A broker that crashes and starts again keeps cmd/vel, its
	 * sequence numbers, and its subscriber. */
	adv_kill_broker(name);
	CU_ASSERT_EQUAL(start_bus(name), 0);
	expect_topic(name, "cmd/vel", "robot.Twist");
	CU_ASSERT_EQUAL(published(name, "cmd/vel"), 2);
	shmbus_bus *again = h_connect(name);
	shmbus_pub *cmd2 = NULL;
	CU_ASSERT_EQUAL(shmbus_pub_open(again, "cmd/vel", &vel, NULL, &cmd2), 0);
	if (cmd2)
		CU_ASSERT_EQUAL(adv_send(cmd2, "owner-3"), 0);
	struct adv_report r;
	CU_ASSERT_TRUE(adv_victim_report(&v, &r, 20000));
	CU_ASSERT_EQUAL(adv_victim_end(&v), 0);
	if (r.foreign || r.received != 3)
		printf("\n  the owner's cmd/vel subscriber took %llu message(s), %llu foreign, last '%s'",
		       (unsigned long long)r.received, (unsigned long long)r.foreign, r.last);
	CU_ASSERT_EQUAL(r.foreign, 0);
	CU_ASSERT_EQUAL(r.received, 3);
	shmbus_pub_close(cmd2);
	shmbus_disconnect(again);
	shmbus_pub_close(cmd);
	shmbus_disconnect(owner);
	adv_stop_bus(name);
}

/* Finding 3: the broker, the tools and a restarted broker read the name
 * and type a publisher rewrote in its shared memory. */
static void test_rename(void)
{
	rename_attack(false);
}

/* Finding 3, as the audit did it: the header's check, which needs no key,
 * recomputed after the rewrite. */
static void test_rename_resealed(void)
{
	rename_attack(true);
}

/* Until the recorder has read everything published, or died (5 s at
 * most): the subscriber positions that `shmbus info` shows. */
static void wait_recorder(const char *name, pid_t rec)
{
	int rc;
	shmbus_bus *b = adv_connect(name, NULL, &rc);
	int64_t deadline = h_now_ns() + 5 * SEC;
	while (b && h_now_ns() < deadline && !h_wait_exit(rec, 50)) {
		struct shmbus_topic_info ti;
		struct shmbus_client_info subs[8];
		size_t ns = 0;
		if (shmbus_topic_inspect(b, "sandbox/big", &ti, NULL, 0, NULL, subs, 8, &ns))
			continue;
		bool behind = false;
		for (size_t i = 0; i < ns; i++)
			behind |= subs[i].next_seq < ti.next_seq;
		if (!behind)
			break;
	}
	shmbus_disconnect(b);
}

/* Finding 3, the layout: a live maximum message size raised by a
 * publisher, and a slot claiming 1 GiB, crashed readers that trusted it
 * (`shmbus record` read out of bounds). */
static void test_reshape(void)
{
	if (adv_skip_without_other())
		return;
	const char *name = h_bus_name("reshape");
	char file[256], out[4096];
	CU_ASSERT_EQUAL_FATAL(start_bus(name), 0);
	shmbus_bus *owner = h_connect(name);
	CU_ASSERT_PTR_NOT_NULL_FATAL(owner);
	struct shmbus_topic_options big = typed(NULL, 4099);
	shmbus_pub *pub;
	CU_ASSERT_EQUAL_FATAL(shmbus_pub_open(owner, "sandbox/big", &big, NULL, &pub), 0);
	struct adv_victim taker = { .bus = name, .topic = "sandbox/big", .expect = "ok-" };
	struct adv_victim viewer = taker;
	viewer.view = true;
	CU_ASSERT_TRUE_FATAL(adv_victim_start(&taker, NULL));
	CU_ASSERT_TRUE_FATAL(adv_victim_start(&viewer, NULL));
	snprintf(file, sizeof(file), "%s/reshape.mcap", adv_dir());
	const char *argv[] = { getenv("SHMBUS_CLI"), "record", "--bus", name, "-o", file,
			       "sandbox/big", NULL };
	int rec_out;
	pid_t rec = h_spawn(argv, &rec_out, NULL);
	CU_ASSERT_TRUE(adv_wait_subscribers(name, "sandbox/big", 3, 30000));
	CU_ASSERT_EQUAL(adv_send(pub, "ok-1"), 0);

	struct attack a = { name, false, true };
	struct attack_result res;
	if (run_attack(&a, &res))
		CU_ASSERT_EQUAL(res.raw_rc, 0);
	CU_ASSERT_EQUAL(adv_send(pub, "ok-2"), 0);
	CU_ASSERT_EQUAL(adv_send(pub, "stop"), 0);

	struct adv_victim *vs[] = { &taker, &viewer };
	for (int i = 0; i < 2; i++) {
		struct adv_report r;
		bool ok = adv_victim_report(vs[i], &r, 20000);
		int st = adv_victim_end(vs[i]);
		if (st)
			printf("\n  the %s subscriber exited with status %d", i ? "viewing" : "taking",
			       st);
		CU_ASSERT_TRUE(ok);
		CU_ASSERT_EQUAL(st, 0);
		CU_ASSERT_EQUAL(r.received, 3);
		CU_ASSERT_EQUAL(r.oversize, 0);
		CU_ASSERT_EQUAL(r.foreign, 0);
	}
	wait_recorder(name, rec);
	kill(rec, SIGINT);
	int st = h_reap(rec, 20000);
	h_read_all(rec_out, out, sizeof(out), 1000);
	close(rec_out);
	if (st)
		printf("\n  shmbus record exited with status %d: %s", st, out);
	CU_ASSERT_EQUAL(st, 0);
	CU_ASSERT_EQUAL(h_run_cli(out, sizeof(out), "mcap info %s", file), 0);
	shmbus_pub_close(pub);
	shmbus_disconnect(owner);
	adv_stop_bus(name);
}

struct upgrade_result {
	int pub_rc, sub_rc;
	int pub_resized, pub_reopened, sub_resized, sub_reopened;
	int sub_writable; /* of the topic's own objects (meta, data) */
};

/* As the second user, speaking the protocol: publisher of sandbox/x,
 * subscriber of cmd/vel; try every way to write or resize more. */
static int upgrader(void *argp, int out)
{
	const char *bus = argp;
	struct upgrade_result res;
	struct hostile_reply r;
	memset(&res, 0, sizeof(res));
	int fd = hostile_connect(bus, false);
	struct hostile_open o = { .topic = "sandbox/x", .role = HOSTILE_PUB };
	res.pub_rc = fd < 0 ? SHMBUS_ENOBROKER : hostile_open(fd, &o, &r);
	if (res.pub_rc == 0) {
		hostile_upgrades(&r, &res.pub_resized, &res.pub_reopened);
		hostile_reply_close(&r);
	}
	o = (struct hostile_open){ .topic = "cmd/vel", .role = HOSTILE_SUB };
	res.sub_rc = fd < 0 ? SHMBUS_ENOBROKER : hostile_open(fd, &o, &r);
	if (res.sub_rc == 0) {
		for (int i = 0; i < 2 && i < r.nfds; i++)
			res.sub_writable += hostile_fd_writable(r.fds[i]);
		hostile_upgrades(&r, &res.sub_resized, &res.sub_reopened);
		hostile_reply_close(&r);
	}
	return write(out, &res, sizeof(res)) == sizeof(res) ? 0 : 1;
}

/* The kernel, not good manners: a publisher cannot truncate or grow its
 * topic's memory under the others' mappings (which would kill them with
 * SIGBUS); a subscriber cannot write what it reads, not by mapping it, by
 * reopening it writable, nor by resizing it. */
static void test_no_upgrades(void)
{
	if (adv_skip_without_other())
		return;
	const char *name = h_bus_name("upgrade");
	CU_ASSERT_EQUAL_FATAL(adv_policy_bus(name, "allow user:USER publish sandbox/*\n"
						   "allow user:USER subscribe cmd/*\n"),
			      0);
	shmbus_bus *owner = h_connect(name);
	CU_ASSERT_PTR_NOT_NULL_FATAL(owner);
	struct shmbus_topic_options vel = typed("robot.Twist", 64);
	shmbus_pub *cmd, *box;
	CU_ASSERT_EQUAL_FATAL(shmbus_pub_open(owner, "cmd/vel", &vel, NULL, &cmd), 0);
	CU_ASSERT_EQUAL_FATAL(shmbus_pub_open(owner, "sandbox/x", &vel, NULL, &box), 0);
	struct adv_victim v = { .bus = name, .topic = "cmd/vel", .expect = "owner-" };
	CU_ASSERT_TRUE_FATAL(adv_victim_start(&v, NULL));
	int fd;
	struct upgrade_result res;
	pid_t pid = adv_fork_as(&adv_other, upgrader, (void *)name, &fd);
	CU_ASSERT_TRUE(h_read(fd, &res, sizeof(res), 30000));
	CU_ASSERT_EQUAL(h_reap(pid, 10000), 0);
	close(fd);
	printf("\n  publisher: resized %d, reopened %d; subscriber: %d writable, resized %d, "
	       "reopened %d",
	       res.pub_resized, res.pub_reopened, res.sub_writable, res.sub_resized,
	       res.sub_reopened);
	CU_ASSERT_EQUAL(res.pub_rc, 0);
	CU_ASSERT_EQUAL(res.sub_rc, 0);
	CU_ASSERT_EQUAL(res.pub_resized, 0);
	CU_ASSERT_EQUAL(res.pub_reopened, 0);
	CU_ASSERT_EQUAL(res.sub_writable, 0);
	CU_ASSERT_EQUAL(res.sub_resized, 0);
	CU_ASSERT_EQUAL(res.sub_reopened, 0);
	/* And everyone carries on. */
	CU_ASSERT_EQUAL(adv_send(cmd, "owner-1"), 0);
	CU_ASSERT_EQUAL(adv_send(box, "owner-2"), 0);
	CU_ASSERT_EQUAL(adv_send(cmd, "stop"), 0);
	struct adv_report r;
	CU_ASSERT_TRUE(adv_victim_report(&v, &r, 20000));
	CU_ASSERT_EQUAL(adv_victim_end(&v), 0);
	CU_ASSERT_EQUAL(r.received, 2);
	shmbus_pub_close(box);
	shmbus_pub_close(cmd);
	shmbus_disconnect(owner);
	adv_stop_bus(name);
}

static int setup(void)
{
	return adv_setup("rename", true);
}

static void add(void)
{
	CU_pSuite s = CU_add_suite("adversary: a publisher cannot rename or reshape its topic",
				   setup, adv_teardown);
	CU_add_test(s, "a rewritten topic name and type change nothing", test_rename);
	CU_add_test(s, "... nor with the header check recomputed", test_rename_resealed);
	CU_add_test(s, "a raised maximum size and a huge slot crash no reader", test_reshape);
	CU_add_test(s, "no client can resize, or reopen writable, what it was handed",
		    test_no_upgrades);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	return adv_exit(h_run("adv_rename", add));
}
