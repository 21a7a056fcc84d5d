/*
 * adv_holes.c - finding 8, the smaller holes, one test each: the broker's
 * log under a flood, its pid file's mode, type names that carry control
 * characters, topic listings that leak denied topics, '.' and '..' in
 * topic names, a schema of exactly the limit, a rewound sequence counter.
 */
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "adv.h"

#define STALL_NS (SEC / 5)

/* Connects, sends a frame that is not one, and goes, for 5 s. */
static int hammer(void *argp, int out)
{
	int64_t end = h_now_ns() + 5 * SEC;
	int n = 0;
	while (h_now_ns() < end) {
		int fd = hostile_connect(argp, false);
		if (fd < 0)
			continue;
		hostile_send_garbage(fd);
		struct hostile_reply r;
		hostile_read_reply(fd, 100, &r);
		close(fd);
		n++;
	}
	return write(out, &n, sizeof(n)) == sizeof(n) ? 0 : 1;
}

/* Finding 8: a refused user grew the broker's log by 1.6 MB/s. */
static void test_log_flood(void)
{
	if (adv_skip_without_other())
		return;
	const char *name = h_bus_name("logflood");
	CU_ASSERT_EQUAL_FATAL(adv_policy_bus(name, "allow user:nobody subscribe public/*\n"), 0);
	pid_t pids[2];
	int fds[2], total = 0;
	for (int i = 0; i < 2; i++)
		pids[i] = adv_fork_as(&adv_other, hammer, (void *)name, &fds[i]);
	for (int i = 0; i < 2; i++) {
		int n = 0;
		CU_ASSERT_TRUE(h_read(fds[i], &n, sizeof(n), 60000));
		CU_ASSERT_EQUAL(h_reap(pids[i], 10000), 0);
		close(fds[i]);
		total += n;
	}
	char prefix[128];
	snprintf(prefix, sizeof(prefix), "%s.log", name);
	DIR *d = opendir(adv_dir());
	struct dirent *e;
	long long current = -1, others = 0;
	int files = 0;
	while (d && (e = readdir(d))) {
		if (strncmp(e->d_name, prefix, strlen(prefix)) != 0)
			continue;
		char path[512];
		struct stat st;
		snprintf(path, sizeof(path), "%s/%s", adv_dir(), e->d_name);
		if (stat(path, &st))
			continue;
		files++;
		if (strcmp(e->d_name, prefix) == 0)
			current = st.st_size;
		else
			others += st.st_size;
	}
	if (d)
		closedir(d);
	printf("\n  %d refused connections; log %lld bytes, %d file(s), %lld bytes rotated", total,
	       current, files, others);
	CU_ASSERT_TRUE(current < (1 << 20));
	CU_ASSERT_TRUE(files <= 2);
	CU_ASSERT_TRUE(others <= (1 << 20));
	adv_stop_bus(name);
}

/* Finding 8: the pid file was world-writable under umask 000. */
static void test_pid_file_mode(void)
{
	const char *name = h_bus_name("pidfile");
	char out[2048], path[256];
	struct stat st;
	CU_ASSERT_EQUAL_FATAL(adv_start_broker(name, NULL, 0, 0, out, sizeof(out)), 0);
	snprintf(path, sizeof(path), "%s/%s.pid", adv_dir(), name);
	CU_ASSERT_EQUAL_FATAL(stat(path, &st), 0);
	if ((st.st_mode & 0777) != 0644)
		printf("\n  pid file mode %03o", (unsigned)(st.st_mode & 0777));
	CU_ASSERT_EQUAL(st.st_mode & 0777, 0644);
	adv_stop_bus(name);
}

static const char *const evil_types[] = {
	"evil\x1b[2J\x1b]0;owned\x07.Type", /* clears the screen, retitles it */
	"forged.Type\n2026-01-01T00:00:00.000Z shmbusd[1]: all is well",
	"tab\there",
};

/* Finding 8: type names were not validated (log forging, escapes in the
 * terminal of whoever runs `shmbus topics`): refused by the library and by
 * the broker, with a reason. */
static void test_type_names(void)
{
	const char *name = h_bus_name("types");
	shmbus_bus *bus = h_connect(name);
	CU_ASSERT_PTR_NOT_NULL_FATAL(bus);
	for (size_t i = 0; i < sizeof(evil_types) / sizeof(evil_types[0]); i++) {
		struct shmbus_topic_options o;
		shmbus_topic_options_init(&o);
		o.type_name = evil_types[i];
		shmbus_pub *pub = NULL;
		char topic[32];
		snprintf(topic, sizeof(topic), "evil/%zu", i);
		int rc = shmbus_pub_open(bus, topic, &o, NULL, &pub);
		CU_ASSERT_EQUAL(rc, SHMBUS_EINVAL);
		CU_ASSERT_PTR_NOT_NULL(strstr(shmbus_errmsg(), "type"));
		shmbus_pub_close(pub);
		/* The broker too, to a client that skips the library. */
		int fd = hostile_connect(name, false);
		struct hostile_reply r;
		struct hostile_open ho = { .topic = topic, .role = HOSTILE_PUB, .create = true,
					   .type_name = evil_types[i] };
		rc = hostile_open(fd, &ho, &r);
		if (rc != SHMBUS_EINVAL)
			printf("\n  the broker answered %s to type name %zu", shmbus_strerror(rc), i);
		CU_ASSERT_EQUAL(rc, SHMBUS_EINVAL);
		CU_ASSERT_PTR_NOT_NULL(strstr(r.why, "type"));
		hostile_reply_close(&r);
		close(fd);
	}
	shmbus_disconnect(bus);
	adv_stop_bus(name);
}

static int collect(void *ctx, const char *topic, const char *type_name)
{
	(void)type_name;
	char *all = ctx;
	size_t n = strlen(all);
	snprintf(all + n, 4096 - n, "%s\n", topic);
	return 0;
}

/* As the second user: the names the broker lists. */
static int list_as_other(void *argp, int out)
{
	char all[4096] = "";
	int rc;
	shmbus_bus *bus = adv_connect(argp, NULL, &rc);
	if (bus)
		rc = shmbus_list_topics(bus, collect, all);
	shmbus_disconnect(bus);
	return write(out, all, sizeof(all)) == sizeof(all) ? 0 : 1;
}

/* Finding 8: `shmbus topics` listed topics the user may not see. */
static void test_topics_listing(void)
{
	if (adv_skip_without_other())
		return;
	const char *name = h_bus_name("listing");
	CU_ASSERT_EQUAL_FATAL(adv_policy_bus(name, "allow user:USER subscribe public/*\n"), 0);
	shmbus_bus *owner = h_connect(name);
	CU_ASSERT_PTR_NOT_NULL_FATAL(owner);
	shmbus_pub *a, *b;
	CU_ASSERT_EQUAL_FATAL(shmbus_pub_open(owner, "public/a", NULL, NULL, &a), 0);
	CU_ASSERT_EQUAL_FATAL(shmbus_pub_open(owner, "secret/b", NULL, NULL, &b), 0);
	char out[4096];
	int fd;
	const char *argv[] = { getenv("SHMBUS_CLI"), "topics", "--bus", name, NULL };
	pid_t pid = h_spawn(argv, &fd, &adv_other);
	h_read_all(fd, out, sizeof(out), 30000);
	close(fd);
	CU_ASSERT_EQUAL(h_reap(pid, 10000), 0);
	if (strstr(out, "secret/b"))
		printf("\n  shmbus topics as another user said:\n%s", out);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "public/a"));
	CU_ASSERT_PTR_NULL(strstr(out, "secret/b"));
	pid = adv_fork_as(&adv_other, list_as_other, (void *)name, &fd);
	CU_ASSERT_TRUE(h_read(fd, out, sizeof(out), 30000));
	CU_ASSERT_EQUAL(h_reap(pid, 10000), 0);
	close(fd);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "public/a"));
	CU_ASSERT_PTR_NULL(strstr(out, "secret/b"));
	shmbus_pub_close(b);
	shmbus_pub_close(a);
	shmbus_disconnect(owner);
	adv_stop_bus(name);
}

/* Finding 8: topic names with '.' or '..' segments were accepted. */
static void test_dot_segments(void)
{
	static const char *const names[] = { "a/../b", "./a", "a/.", "..", "a/./b" };
	const char *name = h_bus_name("dots");
	shmbus_bus *bus = h_connect(name);
	CU_ASSERT_PTR_NOT_NULL_FATAL(bus);
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		shmbus_pub *pub = NULL;
		CU_ASSERT_FALSE(shmbus_topic_name_valid(names[i]));
		int rc = shmbus_pub_open(bus, names[i], NULL, NULL, &pub);
		if (rc != SHMBUS_ENAME)
			printf("\n  '%s': %s", names[i], shmbus_strerror(rc));
		CU_ASSERT_EQUAL(rc, SHMBUS_ENAME);
		shmbus_pub_close(pub);
		int fd = hostile_connect(name, false);
		struct hostile_reply r;
		struct hostile_open ho = { .topic = names[i], .role = HOSTILE_PUB, .create = true };
		rc = hostile_open(fd, &ho, &r);
		if (rc != SHMBUS_ENAME)
			printf("\n  the broker answered '%s': %s", names[i], shmbus_strerror(rc));
		CU_ASSERT_EQUAL(rc, SHMBUS_ENAME);
		hostile_reply_close(&r);
		close(fd);
	}
	shmbus_disconnect(bus);
	adv_stop_bus(name);
}

/* Finding 8: a schema of exactly the 8 MiB limit reset the connection. */
static void test_schema_at_limit(void)
{
	const char *name = h_bus_name("schema");
	shmbus_bus *bus = h_connect(name);
	CU_ASSERT_PTR_NOT_NULL_FATAL(bus);
	size_t size = 8u << 20;
	uint8_t *schema = malloc(size);
	CU_ASSERT_PTR_NOT_NULL_FATAL(schema);
	memset(schema, 0x5a, size);
	struct shmbus_topic_options o;
	shmbus_topic_options_init(&o);
	o.type_name = "big.Schema";
	o.schema = schema;
	o.schema_size = size;
	shmbus_pub *pub = NULL;
	int rc = shmbus_pub_open(bus, "schema/big", &o, NULL, &pub);
	if (rc)
		printf("\n  %s: %s", shmbus_strerror(rc), shmbus_errmsg());
	CU_ASSERT_EQUAL(rc, 0);
	shmbus_sub *sub = NULL;
	if (rc == 0 && shmbus_sub_open(bus, "schema/big", NULL, NULL, &sub) == 0) {
		size_t got = 0;
		const void *s = shmbus_sub_schema(sub, &got);
		CU_ASSERT_EQUAL(got, size);
		CU_ASSERT_TRUE(got == size && memcmp(s, schema, size) == 0);
	}
	free(schema);
	shmbus_sub_close(sub);
	shmbus_pub_close(pub);
	shmbus_disconnect(bus);
	adv_stop_bus(name);
}

/* Publishes, rewinds the topic's counter to 0, publishes, rewinds again. */
static int rewinder(void *argp, int out)
{
	int rc;
	shmbus_bus *bus = adv_connect(argp, NULL, &rc);
	shmbus_pub *pub;
	if (!bus || shmbus_pub_open(bus, "rewound", NULL, NULL, &pub))
		return 1;
	int bad = hostile_set_counter("rewound", 0) != 0;
	for (int i = 0; i < 5; i++) {
		char m[32];
		snprintf(m, sizeof(m), "h-%d", i);
		adv_send(pub, m); /* may fail: its problem */
	}
	bad += hostile_set_counter("rewound", 0) != 0;
	return write(out, &bad, sizeof(bad)) == sizeof(bad) ? 0 : 2;
}

/* Finding 8 (suspected): a publisher that rewinds the sequence counter.
 * No subscriber may crash, hang past its stall timeout + 1 s, or deliver
 * a sequence number twice. */
static void test_rewound_counter(void)
{
	const char *name = h_bus_name("rewind");
	shmbus_bus *bus = h_connect(name);
	CU_ASSERT_PTR_NOT_NULL_FATAL(bus);
	shmbus_pub *pub;
	CU_ASSERT_EQUAL_FATAL(shmbus_pub_open(bus, "rewound", NULL, NULL, &pub), 0);
	struct adv_victim waiter = { .bus = name, .topic = "rewound", .stall_ns = STALL_NS,
				     .forever = true };
	struct adv_victim poller = { .bus = name, .topic = "rewound", .stall_ns = STALL_NS };
	CU_ASSERT_TRUE_FATAL(adv_victim_start(&waiter, NULL));
	CU_ASSERT_TRUE_FATAL(adv_victim_start(&poller, NULL));
	/* More than a lap of the ring, so the rewound numbers are all in
	 * slots that hold later ones. */
	for (int i = 0; i < 200; i++)
		CU_ASSERT_EQUAL(adv_send(pub, "m"), 0);
	int fd, bad = -1;
	pid_t pid = h_fork(rewinder, (void *)name, &fd);
	CU_ASSERT_TRUE(h_read(fd, &bad, sizeof(bad), 30000));
	CU_ASSERT_EQUAL(h_reap(pid, 10000), 0);
	CU_ASSERT_EQUAL(bad, 0);
	close(fd);
	for (int i = 0; i < 5; i++)
		adv_send(pub, "m"); /* the rewind may cost this publisher numbers */
	int rc;
	for (int tries = 0; (rc = adv_send(pub, "stop")) == SHMBUS_EBUSY && tries < 10; tries++)
		;
	CU_ASSERT_EQUAL(rc, 0);
	struct adv_victim *vs[] = { &waiter, &poller };
	for (int i = 0; i < 2; i++) {
		struct adv_report r;
		bool ok = adv_victim_report(vs[i], &r, (int)((STALL_NS + SEC) / 1000000));
		int st = adv_victim_end(vs[i]);
		printf("\n  %s: status %d, %s, received %llu, lost %llu, delivered twice %llu",
		       i ? "poller" : "waiter", st, ok ? "reported" : "no report",
		       (unsigned long long)r.received, (unsigned long long)r.lost,
		       (unsigned long long)r.dups);
		CU_ASSERT_TRUE(ok);
		CU_ASSERT_EQUAL(st, 0);
		CU_ASSERT_EQUAL(r.dups, 0);
		CU_ASSERT_STRING_EQUAL(r.last, "stop");
	}
	shmbus_pub_close(pub);
	shmbus_disconnect(bus);
	adv_stop_bus(name);
}

static int setup(void)
{
	return adv_setup("holes", true);
}

static void add(void)
{
	CU_pSuite s = CU_add_suite("adversary: the smaller holes", setup, adv_teardown);
	CU_add_test(s, "a refused user's flood leaves the log bounded", test_log_flood);
	CU_add_test(s, "the pid file is 0644 under umask 000", test_pid_file_mode);
	CU_add_test(s, "type names with control characters are refused", test_type_names);
	CU_add_test(s, "shmbus topics lists only what the user may subscribe to",
		    test_topics_listing);
	CU_add_test(s, "topic names with . or .. segments are refused", test_dot_segments);
	CU_add_test(s, "a schema of exactly 8 MiB creates the topic", test_schema_at_limit);
	CU_add_test(s, "a rewound sequence counter harms no subscriber", test_rewound_counter);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	return adv_exit(h_run("adv_holes", add));
}
