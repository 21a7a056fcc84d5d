/*
 * test_policy.c - access control: the policy file's parser and its
 * errors, and a second user (created for the test) refused by a bus
 * without a policy and admitted, for exactly what it allows, by one with;
 * admitted through a supplementary group; refused by a bus whose policy
 * names it only to deny it.
 * Creating a user needs root: without it the user part says so and the
 * program exits 77 (skipped) after the parser tests.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

static char dir[128];
static struct h_user other;
static char group[32]; /* a group `other` is a supplementary member of ("": none) */
static bool skipped;

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	fputs(text, f);
	fclose(f);
}

static void expect_policy_error(const char *text, const char *want)
{
	char path[256], cmd[768], out[2048];
	snprintf(path, sizeof(path), "%s/bad.policy", dir);
	write_file(path, text);
	snprintf(cmd, sizeof(cmd), "'%s' --foreground --bus t-badpol-%d --policy '%s' 2>&1",
		 getenv("SHMBUSD"), (int)getpid(), path);
	CU_ASSERT_EQUAL(h_shell(out, sizeof(out), cmd), 1);
	if (!strstr(out, want))
		fprintf(stderr, "\n  policy error was: %s", out);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, want));
}

static void test_parser_errors(void)
{
	expect_policy_error("allow * subscribe camera/*\nallow * pub x\n",
			    "bad.policy:2:9: unknown action 'pub'");
	expect_policy_error("permit * * *\n",
			    "bad.policy:1:1: expected 'allow', 'deny' or 'limit'");
	expect_policy_error("limit * topics=x\n", "bad.policy:1:16: expected a number");
	expect_policy_error("limit * bytes=3X\n", "bad.policy:1:16: unexpected 'X'");
	expect_policy_error("limit * wings=3\n", "bad.policy:1:9: unknown limit 'wings'");
	expect_policy_error("limit *\n", "missing topics=N");
	expect_policy_error("# comment\n\nallow user:no-such-user-xyz * *\n",
			    "bad.policy:3:12: no user 'no-such-user-xyz'");
	expect_policy_error("allow group:nogroup-xyz * *\n", "no group 'nogroup-xyz'");
	expect_policy_error("deny * *\n", "bad.policy:1:9: missing TOPICS");
	expect_policy_error("allow * * a b\n", "bad.policy:1:13: unexpected text");
	expect_policy_error("allow someone * *\n", "expected user:NAME, group:NAME or *");
	/* A good one with comments and numeric ids starts. */
	char path[256], cmd[768], out[2048];
	snprintf(path, sizeof(path), "%s/good.policy", dir);
	write_file(path, "# video people watch the cameras\n"
			 "allow group:0 subscribe camera/*   # trailing comment\n"
			 "deny  *  *  secrets/*\n"
			 "allow user:0 publish,subscribe *\n");
	const char *bus = h_bus_name("goodpol");
	snprintf(cmd, sizeof(cmd), "'%s' --bus %s --policy '%s' 2>&1", getenv("SHMBUSD"), bus,
		 path);
	CU_ASSERT_EQUAL(h_shell(out, sizeof(out), cmd), 0);
	h_stop_bus(bus);
}

/* ----------------------------------------------------- a second user */

struct other_result {
	int connect_plain;  /* connecting to the bus without a policy */
	int connect_policy; /* connecting to the bus with one */
	int sub_allowed, pub_denied, sub_denied, took;
	int connect_group, sub_group, took_group; /* the group's bus */
	int connect_denied;                       /* the bus that only denies it */
	char why_plain[256], why_pub[256], why_sub[256], why_denied[256];
	char data[32], data_group[32];
};

struct other_arg {
	const char *plain_bus, *policy_bus, *group_bus, *deny_bus;
};

/* Subscribes to camera/front from its newest message and takes it. */
static int take_newest(shmbus_bus *bus, char *data, size_t cap, int *took)
{
	struct shmbus_sub_options so;
	shmbus_sub *sub;
	struct shmbus_msg_info info;
	shmbus_sub_options_init(&so);
	so.start = SHMBUS_START_LAST;
	so.last_n = 1;
	int rc = shmbus_sub_open(bus, "camera/front", NULL, &so, &sub);
	if (rc == 0) {
		*took = shmbus_sub_take(sub, data, cap - 1, &info);
		shmbus_sub_close(sub);
	}
	return rc;
}

static int as_other_user(void *argp, int out)
{
	struct other_arg *a = argp;
	struct other_result res;
	memset(&res, 0, sizeof(res));
	if (!h_become(&other))
		return 1;
	struct shmbus_connect_options o;
	shmbus_connect_options_init(&o);
	o.autostart = false;
	shmbus_bus *bus;
	res.connect_plain = shmbus_connect(a->plain_bus, &o, &bus);
	snprintf(res.why_plain, sizeof(res.why_plain), "%s", shmbus_errmsg());
	if (res.connect_plain == 0)
		shmbus_disconnect(bus);
	res.connect_group = shmbus_connect(a->group_bus, &o, &bus);
	if (res.connect_group == 0) {
		res.sub_group = take_newest(bus, res.data_group, sizeof(res.data_group),
					    &res.took_group);
		shmbus_disconnect(bus);
	}
	res.connect_denied = shmbus_connect(a->deny_bus, &o, &bus);
	snprintf(res.why_denied, sizeof(res.why_denied), "%s", shmbus_errmsg());
	if (res.connect_denied == 0)
		shmbus_disconnect(bus);
	res.connect_policy = shmbus_connect(a->policy_bus, &o, &bus);
	if (res.connect_policy == 0) {
		struct shmbus_sub_options so;
		shmbus_sub_options_init(&so);
		so.start = SHMBUS_START_LAST;
		so.last_n = 1;
		shmbus_sub *sub;
		shmbus_pub *pub;
		res.sub_allowed = take_newest(bus, res.data, sizeof(res.data), &res.took);
		res.pub_denied = shmbus_pub_open(bus, "camera/front", NULL, NULL, &pub);
		snprintf(res.why_pub, sizeof(res.why_pub), "%s", shmbus_errmsg());
		res.sub_denied = shmbus_sub_open(bus, "secrets/plan", NULL, &so, &sub);
		snprintf(res.why_sub, sizeof(res.why_sub), "%s", shmbus_errmsg());
		shmbus_disconnect(bus);
	}
	return write(out, &res, sizeof(res)) == sizeof(res) ? 0 : 2;
}

/* Starts the broker of bus `tag` with the policy `text`; its name. */
static const char *policy_bus_start(const char *tag, const char *text)
{
	char path[256], cmd[768], out[2048];
	snprintf(path, sizeof(path), "%s/%s.policy", dir, tag);
	write_file(path, text);
	const char *bus = h_bus_name(tag);
	snprintf(cmd, sizeof(cmd), "'%s' --bus %s --policy '%s' 2>&1", getenv("SHMBUSD"), bus,
		 path);
	CU_ASSERT_EQUAL(h_shell(out, sizeof(out), cmd), 0);
	return bus;
}

static void test_second_user(void)
{
	if (skipped) {
		printf("\n  SKIPPED: needs root and useradd to create a second user");
		return;
	}
	char text[512];
	snprintf(text, sizeof(text),
		 "deny  user:%s  *          secrets/*\n"
		 "allow user:%s  subscribe  camera/*\n",
		 other.name, other.name);
	const char *policy_bus = policy_bus_start("withpol", text);
	/* Through a group it is a supplementary member of (its primary group
	 * is another). */
	snprintf(text, sizeof(text), "allow group:%s subscribe camera/*\n", group);
	const char *group_bus = policy_bus_start("grppol", text);
	/* Named only by a deny rule: not admitted at all, though the bus is
	 * open to someone else. */
	snprintf(text, sizeof(text),
		 "deny  user:%s    *          *\n"
		 "allow user:nobody subscribe  *\n",
		 other.name);
	const char *deny_bus = policy_bus_start("denypol", text);
	const char *plain_bus = h_bus_name("nopol");

	shmbus_bus *owner = h_connect(policy_bus), *plain = h_connect(plain_bus);
	shmbus_bus *owner_g = h_connect(group_bus);
	CU_ASSERT_FATAL(owner && plain && owner_g);
	shmbus_pub *pub, *secret, *pub_g;
	CU_ASSERT_EQUAL_FATAL(shmbus_pub_open(owner, "camera/front", NULL, NULL, &pub), 0);
	CU_ASSERT_EQUAL_FATAL(shmbus_pub_open(owner, "secrets/plan", NULL, NULL, &secret), 0);
	CU_ASSERT_EQUAL(shmbus_pub_send(pub, "frame-1", 8, NULL), 0);
	CU_ASSERT_EQUAL_FATAL(shmbus_pub_open(owner_g, "camera/front", NULL, NULL, &pub_g), 0);
	CU_ASSERT_EQUAL(shmbus_pub_send(pub_g, "frame-g", 8, NULL), 0);

	struct other_arg a = { plain_bus, policy_bus, group_bus, deny_bus };
	int fd;
	pid_t pid = h_fork(as_other_user, &a, &fd);
	struct other_result r;
	CU_ASSERT_TRUE_FATAL(h_read(fd, &r, sizeof(r), 30000));
	CU_ASSERT_EQUAL(h_reap(pid, 10000), 0);
	close(fd);
	/* No policy: refused, with a reason. */
	CU_ASSERT_EQUAL(r.connect_plain, SHMBUS_EPERM);
	CU_ASSERT_PTR_NOT_NULL(strstr(r.why_plain, "policy"));
	/* The policy admits it, for what it says only. */
	CU_ASSERT_EQUAL(r.connect_policy, 0);
	CU_ASSERT_EQUAL(r.sub_allowed, 0);
	CU_ASSERT_EQUAL(r.took, 0);
	CU_ASSERT_STRING_EQUAL(r.data, "frame-1");
	CU_ASSERT_EQUAL(r.pub_denied, SHMBUS_EPERM);
	CU_ASSERT_PTR_NOT_NULL(strstr(r.why_pub, "may not publish on topic 'camera/front'"));
	CU_ASSERT_EQUAL(r.sub_denied, SHMBUS_EPERM);
	CU_ASSERT_PTR_NOT_NULL(strstr(r.why_sub, "denied by policy rule on line 1"));
	/* The supplementary group's rule admits it, to read. */
	CU_ASSERT_EQUAL(r.connect_group, 0);
	CU_ASSERT_EQUAL(r.sub_group, 0);
	CU_ASSERT_EQUAL(r.took_group, 0);
	CU_ASSERT_STRING_EQUAL(r.data_group, "frame-g");
	/* Denied everything: refused at the door, with the reason. */
	CU_ASSERT_EQUAL(r.connect_denied, SHMBUS_EPERM);
	CU_ASSERT_PTR_NOT_NULL(strstr(r.why_denied, "policy"));
	shmbus_pub_close(secret);
	shmbus_pub_close(pub);
	shmbus_pub_close(pub_g);
	shmbus_disconnect(owner);
	shmbus_disconnect(owner_g);
	shmbus_disconnect(plain);
	h_stop_bus(policy_bus);
	h_stop_bus(group_bus);
	h_stop_bus(deny_bus);
	h_stop_bus(plain_bus);
}

static int setup(void)
{
	/* The buses of this test live in a directory of their own: the policy
	 * bus opens it to the second user. */
	snprintf(dir, sizeof(dir), "/tmp/shmbus-policy-test-%d", (int)getpid());
	if (mkdir(dir, 0700))
		return 1;
	setenv("SHMBUS_RUNTIME_DIR", dir, 1);
	skipped = !h_user_create(&other);
	if (!skipped) {
		char cmd[256];
		snprintf(group, sizeof(group), "shmbus-g%d", (int)getpid() % 100000);
		snprintf(cmd, sizeof(cmd), "groupadd %s && usermod -a -G %s %s", group, group,
			 other.name);
		if (system(cmd) != 0) {
			fprintf(stderr, "could not make %s a member of a group %s\n", other.name,
				group);
			return 1;
		}
	}
	return 0;
}

static int teardown(void)
{
	char cmd[512];
	if (!skipped)
		h_user_remove(&other);
	if (group[0]) {
		snprintf(cmd, sizeof(cmd), "groupdel %s", group);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove test group %s\n", group);
	}
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : 1;
}

static void add(void)
{
	CU_pSuite s = CU_add_suite("policy", setup, teardown);
	CU_add_test(s, "policy file errors name line and column", test_parser_errors);
	CU_add_test(s, "a second user: refused by default, admitted by policy", test_second_user);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	int rc = h_run("test_policy", add);
	return rc == 0 && skipped ? 77 : rc;
}
