/*
 * adv_stall.c - finding 5: a subscriber cannot stall or lock out anyone.
 * A second user allowed only to subscribe writes every byte it can write
 * (zeros, then 0xFF, then random bytes, then "pid 1" at the start of every
 * line) for seconds, while the owner publishes and opens, and another
 * subscriber sleeps in shmbus_sub_wait(sub, -1). A subscriber may write a
 * page of its own and nothing anyone else depends on.
 */
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "adv.h"

#define ROUNDS 2

struct scribble_result {
	int open_rc;
	size_t writable;  /* writable shmbus mappings it had */
	uint64_t bytes;   /* bytes it wrote */
};

static void scribble_for(int64_t ns, int kind, uint64_t *seed, uint64_t *bytes)
{
	int64_t end = h_now_ns() + ns;
	while (h_now_ns() < end) {
		if (kind == 0)
			*bytes += hostile_scribble(0);
		else if (kind == 1)
			*bytes += hostile_scribble(0xff);
		else if (kind == 2)
			*bytes += hostile_scribble_random(seed);
		else
			*bytes += hostile_scribble_lines(1);
		nanosleep(&(struct timespec){ 0, 1000000 }, NULL);
	}
}

/* As the second user: subscribe with the protocol alone, map what the
 * broker hands over, and write all of it. */
static int scribbler(void *argp, int out)
{
	const char *bus = argp;
	struct scribble_result res;
	struct hostile_reply r;
	memset(&res, 0, sizeof(res));
	int fd = hostile_connect(bus, false);
	struct hostile_open o = { .topic = "cmd/vel", .role = HOSTILE_SUB };
	res.open_rc = fd < 0 ? SHMBUS_ENOBROKER : hostile_open(fd, &o, &r);
	if (res.open_rc == 0)
		hostile_map_reply(&r);
	struct hostile_map maps[64];
	size_t n = hostile_maps(maps, 64);
	for (size_t i = 0; i < n && i < 64; i++)
		res.writable += maps[i].writable;
	if (write(out, "r", 1) != 1)
		return 1;
	uint64_t seed = (uint64_t)getpid() * 0x9e3779b97f4a7c15ull + 1;
	for (int round = 0; round < ROUNDS; round++) {
		scribble_for(5 * SEC / 2, 0, &seed, &res.bytes);
		scribble_for(SEC / 2, 1, &seed, &res.bytes);
		scribble_for(SEC / 2, 2, &seed, &res.bytes);
		scribble_for(SEC / 2, 3, &seed, &res.bytes);
	}
	return write(out, &res, sizeof(res)) == sizeof(res) ? 0 : 2;
}

static int start_bus(const char *name)
{
	return adv_policy_bus(name, "allow user:USER subscribe *\n");
}

static struct shmbus_topic_options vel_options(void)
{
	struct shmbus_topic_options o;
	shmbus_topic_options_init(&o);
	o.slot_count = 256;
	o.max_message_size = 64;
	return o;
}

/* The owner opens a new publisher and a new subscriber: 0, or the first
 * failure. */
static int owner_opens(shmbus_bus *bus)
{
	struct shmbus_topic_options o = vel_options();
	shmbus_pub *pub = NULL;
	shmbus_sub *sub = NULL;
	int rc = shmbus_pub_open(bus, "cmd/vel", &o, NULL, &pub);
	if (rc == 0)
		rc = shmbus_sub_open(bus, "cmd/vel", NULL, NULL, &sub);
	if (rc)
		printf("\n  the owner could not open cmd/vel: %s: %s", shmbus_strerror(rc),
		       shmbus_errmsg());
	shmbus_sub_close(sub);
	shmbus_pub_close(pub);
	return rc;
}

/* The victim's line in `shmbus info`: how many lines carry its pid, and
 * the count of the last. */
static int victim_line(shmbus_bus *bus, pid_t pid, uint64_t *received)
{
	struct shmbus_topic_info ti;
	struct shmbus_client_info subs[256];
	size_t ns = 0;
	int n = 0;
	if (shmbus_topic_inspect(bus, "cmd/vel", &ti, NULL, 0, NULL, subs, 256, &ns))
		return -1;
	for (size_t i = 0; i < ns; i++) {
		if (subs[i].pid == pid) {
			*received = subs[i].count;
			n++;
		}
	}
	return n;
}

/* Finding 5: one write clearing the SLEEPING bit left waiters asleep;
 * publisher lines filled by a subscriber locked the owner out, through
 * broker restarts; a zeroed control magic made the restart delete the
 * topic. */
static void test_scribbling_subscriber(void)
{
	if (adv_skip_without_other())
		return;
	const char *name = h_bus_name("stall");
	CU_ASSERT_EQUAL_FATAL(start_bus(name), 0);
	shmbus_bus *owner = h_connect(name);
	CU_ASSERT_PTR_NOT_NULL_FATAL(owner);
	struct shmbus_topic_options o = vel_options();
	shmbus_pub *pub;
	CU_ASSERT_EQUAL_FATAL(shmbus_pub_open(owner, "cmd/vel", &o, NULL, &pub), 0);
	struct adv_victim v = { .bus = name, .topic = "cmd/vel", .forever = true, .expect = "m-" };
	CU_ASSERT_TRUE_FATAL(adv_victim_start(&v, NULL));

	int fd;
	char c;
	pid_t hostile = adv_fork_as(&adv_other, scribbler, (void *)name, &fd);
	CU_ASSERT_TRUE_FATAL(h_read(fd, &c, 1, 30000));
	int sent = 0, send_failures = 0, open_failures = 0;
	int64_t deadline = h_now_ns() + 60 * SEC, next_open = 0;
	for (;;) {
		struct pollfd p = { fd, POLLIN, 0 };
		if (poll(&p, 1, 100) == 1 || h_now_ns() > deadline)
			break;
		char m[32];
		snprintf(m, sizeof(m), "m-%d", sent++);
		send_failures += adv_send(pub, m) != 0;
		if (h_now_ns() >= next_open) {
			open_failures += owner_opens(owner) != 0;
			next_open = h_now_ns() + SEC / 2;
		}
	}
	struct scribble_result res;
	CU_ASSERT_TRUE(h_read(fd, &res, sizeof(res), 5000));
	CU_ASSERT_EQUAL(h_reap(hostile, 10000), 0);
	close(fd);
	CU_ASSERT_EQUAL(res.open_rc, 0);
	printf("\n  the subscriber wrote %llu bytes through %zu writable mapping(s)",
	       (unsigned long long)res.bytes, res.writable);

	for (int i = 0; i < 3; i++) {
		char m[32];
		snprintf(m, sizeof(m), "m-%d", sent++);
		send_failures += adv_send(pub, m) != 0;
	}
	CU_ASSERT_EQUAL(adv_send(pub, "stop"), 0);
	struct adv_report r;
	bool reported = adv_victim_report(&v, &r, 20000);
	CU_ASSERT_TRUE(reported);
	if (reported) {
		printf("\n  the waiting subscriber took %llu of %d, longest wait %.0f ms",
		       (unsigned long long)r.received, sent + 1, (double)r.max_latency_ns / 1e6);
		CU_ASSERT_TRUE(r.max_latency_ns <= 2 * SEC);
		CU_ASSERT_EQUAL(r.received, (uint64_t)sent + 1);
		CU_ASSERT_EQUAL(r.dups, 0);
	}
	CU_ASSERT_EQUAL(send_failures, 0);
	CU_ASSERT_EQUAL(open_failures, 0);
	/* Its line in `shmbus info` is its own, with its own counts. */
	uint64_t count = 0;
	int lines = victim_line(owner, v.pid, &count);
	if (lines != 1 || count != r.received)
		printf("\n  shmbus info shows %d line(s) of the waiting subscriber, count %llu",
		       lines, (unsigned long long)count);
	CU_ASSERT_EQUAL(lines, 1);
	CU_ASSERT_EQUAL(count, r.received);
	CU_ASSERT_EQUAL(owner_opens(owner), 0);

	/* A broker that crashes and starts again keeps the topic and lets
	 * the owner in. */
	adv_kill_broker(name);
	CU_ASSERT_EQUAL(start_bus(name), 0);
	struct shmbus_topic_info ti;
	int rc = shmbus_topic_inspect(owner, "cmd/vel", &ti, NULL, 0, NULL, NULL, 0, NULL);
	if (rc)
		printf("\n  after the restart: %s: %s", shmbus_strerror(rc), shmbus_errmsg());
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT_EQUAL(ti.next_seq, (uint64_t)sent + 1);
	CU_ASSERT_EQUAL(owner_opens(owner), 0);

	adv_victim_end(&v);
	shmbus_pub_close(pub);
	shmbus_disconnect(owner);
	adv_stop_bus(name);
}

static int setup(void)
{
	return adv_setup("stall", true);
}

static void add(void)
{
	CU_pSuite s = CU_add_suite("adversary: a subscriber cannot stall or lock out anyone",
				   setup, adv_teardown);
	CU_add_test(s, "a subscriber writing all it can harms nobody", test_scribbling_subscriber);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	return adv_exit(h_run("adv_stall", add));
}
