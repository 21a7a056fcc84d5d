/*
 * test_trust.c - what users of shared memory fear, tried for real:
 * integrity tags catching corrupted and forged messages, key-file rules,
 * and 200 rounds (SHMBUS_TORTURE_ROUNDS=1000 for the long run) of crashes
 * of publishers of a tagged topic: kill -9 at random instants with the
 * broker up and down, deaths between claiming a number and taking its
 * slot, publishers stopped for longer than the stall timeout; while
 * subscribers check order, loss accounting and that nothing stalls.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "adv.h"
#include "layout.h"

static char key_a[64], key_b[64];

/* Usable outside a test (suite setup): reports by return value. */
static bool write_key(char *path, size_t len, const char *tag, const char *hex, mode_t mode)
{
	snprintf(path, len, "/tmp/shmbus-test-key-%s-%d", tag, (int)getpid());
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		return false;
	bool ok = write(fd, hex, strlen(hex)) == (ssize_t)strlen(hex);
	close(fd);
	return ok && chmod(path, mode) == 0;
}

static shmbus_bus *connect_key(const char *bus, const char *key, int *rc, char *why,
			       size_t whylen)
{
	struct shmbus_connect_options o;
	shmbus_bus *b = NULL;
	shmbus_connect_options_init(&o);
	o.key_file = key;
	o.timeout_ns = 20 * SEC;
	*rc = shmbus_connect(bus, &o, &b);
	snprintf(why, whylen, "%s", shmbus_errmsg());
	return b;
}

static struct shmbus_topic_options tagged(void)
{
	struct shmbus_topic_options o;
	shmbus_topic_options_init(&o);
	o.type_name = "test.Tagged";
	o.slot_count = 64;
	o.max_message_size = 256;
	o.flags = SHMBUS_TOPIC_INTEGRITY;
	return o;
}

static void test_key_rules(void)
{
	char loose[64], why[512];
	int rc;
	CU_ASSERT_FATAL(write_key(loose, sizeof(loose), "loose",
				  "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n",
				  0644));
	shmbus_bus *b = connect_key(h_bus_name("keys"), loose, &rc, why, sizeof(why));
	CU_ASSERT_EQUAL(rc, SHMBUS_EPERM);
	CU_ASSERT_PTR_NULL(b);
	CU_ASSERT_PTR_NOT_NULL(strstr(why, "chmod 600"));
	chmod(loose, 0600);
	FILE *f = fopen(loose, "w");
	fputs("not a key", f);
	fclose(f);
	b = connect_key(h_bus_name("keys"), loose, &rc, why, sizeof(why));
	CU_ASSERT_EQUAL(rc, SHMBUS_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(why, "64 hex digits"));
	unlink(loose);
}

static void test_tags_reject_corrupt_and_forged(void)
{
	const char *name = h_bus_name("tags");
	char why[512];
	int rc;
	shmbus_bus *good = connect_key(name, key_a, &rc, why, sizeof(why));
	CU_ASSERT_EQUAL_FATAL(rc, 0);
	shmbus_bus *forger = connect_key(name, key_b, &rc, why, sizeof(why));
	CU_ASSERT_EQUAL_FATAL(rc, 0);
	shmbus_bus *keyless = h_connect(name);
	CU_ASSERT_PTR_NOT_NULL_FATAL(keyless);
	struct shmbus_topic_options o = tagged();
	shmbus_pub *pub, *fpub, *none;
	CU_ASSERT_EQUAL_FATAL(shmbus_pub_open(good, "tagged", &o, NULL, &pub), 0);
	/* Without the key: cannot publish (or subscribe) on a tagged topic. */
	CU_ASSERT_EQUAL(shmbus_pub_open(keyless, "tagged", &o, NULL, &none), SHMBUS_EPERM);
	CU_ASSERT_PTR_NOT_NULL(strstr(shmbus_errmsg(), "integrity"));
	/* With a wrong key it is given nothing to write: the broker asks each
	 * publisher of a tagged topic to prove the key. */
	CU_ASSERT_EQUAL(shmbus_pub_open(forger, "tagged", &o, NULL, &fpub), SHMBUS_EPERM);
	CU_ASSERT_PTR_NOT_NULL(strstr(shmbus_errmsg(), "key"));
	shmbus_sub *sub;
	CU_ASSERT_EQUAL_FATAL(shmbus_sub_open(good, "tagged", NULL, NULL, &sub), 0);

	void *buf;
	size_t cap;
	CU_ASSERT_EQUAL(shmbus_pub_send(pub, "genuine-1", 10, NULL), 0);
	/* A forged tag (a writer that does not hold the key, as a buggy or
	 * hostile one would write it): the slot's header is just before its
	 * payload. */
	CU_ASSERT_EQUAL(shmbus_pub_loan(pub, &buf, &cap), 0);
	memcpy(buf, "forged-1", 9);
	CU_ASSERT_EQUAL(shmbus_pub_publish(pub, 9, NULL), 0);
	((struct slot_header *)buf - 1)->tag[31] ^= 1;
	/* Corrupted after publishing, in place (a buggy publisher). */
	CU_ASSERT_EQUAL(shmbus_pub_loan(pub, &buf, &cap), 0);
	memcpy(buf, "genuine-2", 10);
	CU_ASSERT_EQUAL(shmbus_pub_publish(pub, 10, NULL), 0);
	((char *)buf)[0] = 'X';
	CU_ASSERT_EQUAL(shmbus_pub_send(pub, "genuine-3", 10, NULL), 0);

	char got[32];
	struct shmbus_msg_info info;
	CU_ASSERT_EQUAL(shmbus_sub_take(sub, got, sizeof(got), &info), 0);
	CU_ASSERT_STRING_EQUAL(got, "genuine-1");
	CU_ASSERT_EQUAL(shmbus_sub_take(sub, got, sizeof(got), &info), 0);
	CU_ASSERT_STRING_EQUAL(got, "genuine-3");
	CU_ASSERT_EQUAL(info.lost, 2); /* the forged and the corrupted one */
	CU_ASSERT_EQUAL(shmbus_sub_take(sub, got, sizeof(got), &info), SHMBUS_EAGAIN);
	struct shmbus_sub_stats st;
	shmbus_sub_stats(sub, &st);
	CU_ASSERT_EQUAL(st.rejected, 2);
	CU_ASSERT_EQUAL(st.received, 2);
	CU_ASSERT_EQUAL(st.received + st.lost, 4);
	/* Views check tags too; the publisher id is bound by the tag. */
	CU_ASSERT_EQUAL(shmbus_pub_loan(pub, &buf, &cap), 0);
	memcpy(buf, "forged-2", 9);
	CU_ASSERT_EQUAL(shmbus_pub_publish(pub, 9, NULL), 0);
	atomic_fetch_add(&((struct slot_header *)buf - 1)->publisher_id, 1);
	CU_ASSERT_EQUAL(shmbus_pub_send(pub, "genuine-4", 10, NULL), 0);
	struct shmbus_view v;
	CU_ASSERT_EQUAL(shmbus_sub_view(sub, &v), 0);
	CU_ASSERT_STRING_EQUAL((const char *)v.data, "genuine-4");
	CU_ASSERT_EQUAL(shmbus_sub_release(sub, &v), 0);
	/* `shmbus info` sees the rejections. */
	struct shmbus_topic_info ti;
	struct shmbus_client_info subs[4];
	size_t np, ns;
	CU_ASSERT_EQUAL(shmbus_topic_inspect(good, "tagged", &ti, NULL, 0, &np, subs, 4, &ns), 0);
	CU_ASSERT_EQUAL(ns, 1);
	CU_ASSERT_EQUAL(subs[0].rejected, 3);
	CU_ASSERT_TRUE(ti.flags & SHMBUS_TOPIC_INTEGRITY);
	/* A topic made without tags refuses a publisher that wants them. */
	struct shmbus_topic_options plain = tagged();
	plain.flags = 0;
	shmbus_pub *pp, *pq;
	CU_ASSERT_EQUAL_FATAL(shmbus_pub_open(good, "plain", &plain, NULL, &pp), 0);
	CU_ASSERT_EQUAL(shmbus_pub_open(good, "plain", &o, NULL, &pq), SHMBUS_ELAYOUT);
	shmbus_pub_close(pp);
	shmbus_sub_close(sub);
	shmbus_pub_close(pub);
	shmbus_disconnect(keyless);
	shmbus_disconnect(forger);
	shmbus_disconnect(good);
	h_stop_bus(name);
}

/* ------------------------------------------------------------- torture */

#define T_PUBS 3
#define T_SUBS 2
#define T_ROUNDS 200 /* default; SHMBUS_TORTURE_ROUNDS sets another */
#define T_STALL_NS (SEC / 5)
/* The longest a handed-out sequence number may block a subscriber. */
#define T_STALL_MAX_NS (T_STALL_NS + SEC / 10)

struct tmsg {
	uint64_t counter;
	uint32_t len;
	uint8_t body[100];
};

static uint32_t tmsg_fill(struct tmsg *m, uint64_t c)
{
	m->counter = c;
	m->len = (uint32_t)(c % sizeof(m->body));
	for (uint32_t i = 0; i < m->len; i++)
		m->body[i] = (uint8_t)(c * 13 + i);
	return (uint32_t)offsetof(struct tmsg, body) + m->len;
}

static bool tmsg_ok(const struct tmsg *m, size_t size)
{
	if (size < offsetof(struct tmsg, body) || m->len != m->counter % sizeof(m->body) ||
	    size != offsetof(struct tmsg, body) + m->len)
		return false;
	for (uint32_t i = 0; i < m->len; i++)
		if (m->body[i] != (uint8_t)(m->counter * 13 + i))
			return false;
	return true;
}

struct targ {
	const char *bus;
	int ctl_fd, peer_fd;
};

/* Publishes until killed; says once it has published its first messages. */
static int torture_pub(void *argp, int out)
{
	struct targ *a = argp;
	if (a->peer_fd >= 0)
		close(a->peer_fd);
	int rc;
	char why[256];
	shmbus_bus *bus = connect_key(a->bus, key_a, &rc, why, sizeof(why));
	struct shmbus_topic_options o = tagged();
	shmbus_pub *pub;
	if (rc) {
		fprintf(stderr, "torture publisher: connect: %s: %s\n", shmbus_strerror(rc), why);
		return 1;
	}
	rc = shmbus_pub_open(bus, "torture", &o, NULL, &pub);
	if (rc) {
		fprintf(stderr, "torture publisher: open: %s: %s\n", shmbus_strerror(rc),
			shmbus_errmsg());
		return 1;
	}
	for (uint64_t c = 0;; c++) {
		struct tmsg m;
		uint32_t n = tmsg_fill(&m, c);
		void *buf;
		size_t cap;
		if (c & 1) {
			rc = shmbus_pub_send(pub, &m, n, NULL);
		} else if ((rc = shmbus_pub_loan(pub, &buf, &cap)) == 0) {
			memcpy(buf, &m, n);
			if ((c & 63) == 0) {
				/* Now and then a long write (a camera filling a
				 * frame): kills land inside loans often. */
				struct timespec hold = { 0, 200000 };
				nanosleep(&hold, NULL);
			}
			rc = shmbus_pub_publish(pub, n, NULL);
		}
		if (rc && rc != SHMBUS_ELAPPED && rc != SHMBUS_EBUSY)
			return 2;
		if (c == 50 && write(out, "r", 1) != 1)
			return 3;
		if ((c & 31) == 0) {
			/* Leave the machine some air: 5 processes on 2 cores. */
			struct timespec pace = { 0, 20000 };
			nanosleep(&pace, NULL);
		}
	}
}

struct tsub_result {
	uint64_t received, lost, rejected, disorder, torn, next_seq;
	int64_t longest_stall_ns;
	int ok;
};

static int torture_sub(void *argp, int out)
{
	struct targ *a = argp;
	if (a->peer_fd >= 0)
		close(a->peer_fd);
	int rc;
	char why[256];
	shmbus_bus *bus = connect_key(a->bus, key_a, &rc, why, sizeof(why));
	struct shmbus_sub_options so;
	shmbus_sub_options_init(&so);
	so.create_if_missing = true;
	struct shmbus_topic_options to = tagged();
	so.stall_timeout_ns = T_STALL_NS;
	shmbus_sub *sub;
	if (rc || shmbus_sub_open(bus, "torture", &to, &so, &sub))
		return 1;
	if (write(out, "r", 1) != 1)
		return 2;
	struct tsub_result res = { 0 };
	uint64_t last[4096];
	memset(last, 0xff, sizeof(last));
	uint64_t final_head = UINT64_MAX;
	/* The number that blocks progress (handed out, all before it taken)
	 * and since when: looked at every 10 ms at most. */
	int64_t progress = h_now_ns();
	uint64_t seen_next = UINT64_MAX;
	for (;;) {
		struct tmsg m;
		struct shmbus_msg_info info;
		while ((rc = shmbus_sub_take(sub, &m, sizeof(m), &info)) == 0) {
			if (!tmsg_ok(&m, info.size)) {
				res.torn++;
				continue;
			}
			uint32_t id = info.publisher_id % 4096;
			if (last[id] != UINT64_MAX && m.counter <= last[id])
				res.disorder++;
			last[id] = m.counter;
		}
		if (rc != SHMBUS_EAGAIN)
			return 3;
		struct shmbus_sub_stats st;
		shmbus_sub_stats(sub, &st);
		int64_t now = h_now_ns();
		if (st.lag == 0) {
			seen_next = UINT64_MAX;
		} else if (st.next_seq != seen_next) {
			seen_next = st.next_seq;
			progress = now;
		} else if (now - progress > res.longest_stall_ns) {
			res.longest_stall_ns = now - progress;
		}
		if (res.longest_stall_ns > 10 * SEC)
			break; /* stalled: report it */
		if (final_head == UINT64_MAX) {
			struct pollfd p = { a->ctl_fd, POLLIN, 0 };
			if (poll(&p, 1, 0) == 1 &&
			    read(a->ctl_fd, &final_head, sizeof(final_head)) != sizeof(final_head))
				return 4;
		}
		if (final_head != UINT64_MAX && st.next_seq >= final_head)
			break;
		shmbus_sub_wait(sub, SEC / 100);
	}
	struct shmbus_sub_stats st;
	shmbus_sub_stats(sub, &st);
	res.received = st.received;
	res.lost = st.lost;
	res.rejected = st.rejected;
	res.next_seq = st.next_seq;
	res.ok = 1;
	shmbus_sub_close(sub);
	shmbus_disconnect(bus);
	return write(out, &res, sizeof(res)) == sizeof(res) ? 0 : 5;
}

static pid_t start_pub(const char *bus, int *out)
{
	struct targ a = { bus, -1, -1 };
	pid_t pid = h_fork(torture_pub, &a, out);
	char r;
	if (!h_read(*out, &r, 1, 60000)) {
		int code = h_reap(pid, 1000);
		fprintf(stderr, "publisher %d did not start: exit %d\n", (int)pid, code);
		CU_FAIL("a publisher did not start");
	}
	return pid;
}

/* Opens a publisher; told to, claims a sequence number the way a
 * publisher does and dies before taking its slot. */
static int torture_claimer(void *argp, int out)
{
	struct targ *a = argp;
	close(a->peer_fd);
	int rc;
	char why[256], c;
	uint64_t seq;
	shmbus_bus *bus = connect_key(a->bus, key_a, &rc, why, sizeof(why));
	struct shmbus_topic_options o = tagged();
	shmbus_pub *pub;
	if (rc || shmbus_pub_open(bus, "torture", &o, NULL, &pub))
		return 1;
	if (write(out, "r", 1) != 1 || read(a->ctl_fd, &c, 1) != 1)
		return 2;
	if (hostile_claim_seq("torture", &seq))
		return 3;
	_exit(0);
}

static void signal_all(const pid_t *pids, int n, int sig)
{
	for (int i = 0; i < n; i++)
		kill(pids[i], sig);
}

static void pause_ns(int64_t ns)
{
	struct timespec ts = { ns / SEC, ns % SEC };
	nanosleep(&ts, NULL);
}

/* A random instant: anywhere in a publisher's claim/write/commit cycle. */
static void random_instant(void)
{
	pause_ns((rand() % 2000) * 1000);
}

static void restart_broker(const char *name)
{
	int rc;
	char why[256];
	shmbus_bus *b = connect_key(name, key_a, &rc, why, sizeof(why));
	CU_ASSERT_EQUAL(rc, 0);
	shmbus_disconnect(b);
}

/* A publisher dies between its claim of a number and its slot, while the
 * others are stopped (so nobody laps the number and the subscribers must
 * skip it themselves), with the broker up or down. */
static bool claim_round(const char *name, const pid_t *pubs, bool broker_down)
{
	int c[2], out;
	char r;
	if (pipe(c))
		return false;
	struct targ a = { name, c[0], c[1] };
	pid_t pid = h_fork(torture_claimer, &a, &out);
	close(c[0]);
	bool ok = h_read(out, &r, 1, 60000);
	signal_all(pubs, T_PUBS, SIGSTOP);
	if (broker_down)
		adv_kill_broker(name);
	ok &= write(c[1], "g", 1) == 1;
	ok &= h_reap(pid, 20000) == 0;
	close(c[1]);
	close(out);
	pause_ns(T_STALL_MAX_NS);
	signal_all(pubs, T_PUBS, SIGCONT);
	if (broker_down)
		restart_broker(name);
	return ok;
}

/* KILL_QUIET: with the broker down and the other publishers stopped, so
 * that nobody laps the dead publisher's number either. */
enum round_kind { KILL, KILL_NO_BROKER, KILL_QUIET, CLAIM, CLAIM_NO_BROKER, STOP };

static int torture_rounds(void)
{
	const char *e = getenv("SHMBUS_TORTURE_ROUNDS");
	int n = e ? atoi(e) : 0;
	return n > 0 ? n : T_ROUNDS;
}

static void test_torture_kill_publishers(void)
{
	static const enum round_kind mix[8] = { KILL, KILL, KILL, KILL_NO_BROKER, KILL_QUIET,
						CLAIM, CLAIM_NO_BROKER, STOP };
	const char *name = h_bus_name("torture");
	int rc, rounds = torture_rounds();
	char why[256];
	shmbus_bus *bus = connect_key(name, key_a, &rc, why, sizeof(why));
	CU_ASSERT_EQUAL_FATAL(rc, 0);
	pid_t subs[T_SUBS], pubs[T_PUBS];
	int sub_out[T_SUBS], sub_ctl[T_SUBS], pub_out[T_PUBS];
	for (int i = 0; i < T_SUBS; i++) {
		int c[2];
		CU_ASSERT_FATAL(pipe(c) == 0);
		struct targ a = { name, c[0], c[1] };
		subs[i] = h_fork(torture_sub, &a, &sub_out[i]);
		close(c[0]);
		sub_ctl[i] = c[1];
		char r;
		CU_ASSERT_TRUE(h_read(sub_out[i], &r, 1, 60000));
	}
	for (int i = 0; i < T_PUBS; i++)
		pubs[i] = start_pub(name, &pub_out[i]);
	srand((unsigned)getpid());
	int killed = 0, kills = 0, down = 0, claims = 0, claimed = 0, stops = 0;
	for (int round = 0; round < rounds; round++) {
		enum round_kind kind = mix[round % 8];
		int k = rand() % T_PUBS;
		switch (kind) {
		case KILL:
		case KILL_NO_BROKER:
		case KILL_QUIET:
			kills++;
			if (kind != KILL) {
				down++;
				adv_kill_broker(name);
			}
			random_instant();
			kill(pubs[k], SIGKILL);
			if (kind == KILL_QUIET)
				signal_all(pubs, T_PUBS, SIGSTOP);
			if (h_reap(pubs[k], 20000) == 128 + SIGKILL)
				killed++;
			close(pub_out[k]);
			if (kind != KILL)
				pause_ns(T_STALL_MAX_NS); /* the subscribers are on their own */
			if (kind == KILL_QUIET)
				signal_all(pubs, T_PUBS, SIGCONT); /* the dead one: ESRCH */
			pubs[k] = start_pub(name, &pub_out[k]); /* starts a broker if none */
			break;
		case CLAIM:
		case CLAIM_NO_BROKER:
			claims++;
			claimed += claim_round(name, pubs, kind == CLAIM_NO_BROKER);
			break;
		case STOP:
			/* Longer than the stall timeout, loans held or not. */
			stops++;
			random_instant();
			signal_all(pubs, T_PUBS, SIGSTOP);
			pause_ns(2 * T_STALL_NS + SEC / 10);
			signal_all(pubs, T_PUBS, SIGCONT);
			break;
		}
	}
	printf("\n  %d rounds: %d kills (%d with the broker down), %d deaths between claim and "
	       "slot, %d stops",
	       rounds, kills, down, claims, stops);
	CU_ASSERT_EQUAL(killed, kills);
	CU_ASSERT_EQUAL(claimed, claims);
	for (int i = 0; i < T_PUBS; i++) {
		kill(pubs[i], SIGKILL);
		h_reap(pubs[i], 20000);
		close(pub_out[i]);
	}
	struct shmbus_topic_info ti;
	CU_ASSERT_EQUAL_FATAL(shmbus_topic_inspect(bus, "torture", &ti, NULL, 0, NULL, NULL, 0,
						   NULL), 0);
	uint64_t head = ti.next_seq;
	for (int i = 0; i < T_SUBS; i++)
		CU_ASSERT_EQUAL(write(sub_ctl[i], &head, sizeof(head)), sizeof(head));
	for (int i = 0; i < T_SUBS; i++) {
		struct tsub_result r = { 0 };
		bool reported = h_read(sub_out[i], &r, sizeof(r), 120000);
		int st = h_reap(subs[i], 20000);
		if (!reported || st)
			printf("\n  subscriber %d died: status %d", i, st);
		CU_ASSERT_TRUE(reported);
		CU_ASSERT_EQUAL(st, 0);
		CU_ASSERT_TRUE(r.ok);
		CU_ASSERT_EQUAL(r.torn, 0);
		CU_ASSERT_EQUAL(r.disorder, 0);
		CU_ASSERT_EQUAL(r.rejected, 0);
		CU_ASSERT_EQUAL(r.next_seq, head);
		CU_ASSERT_EQUAL(r.received + r.lost, head);
		CU_ASSERT_TRUE(r.longest_stall_ns <= T_STALL_MAX_NS);
		if (reported)
			printf("\n  subscriber %d: received %llu lost %llu of %llu, longest stall "
			       "%.1f ms",
			       i, (unsigned long long)r.received, (unsigned long long)r.lost,
			       (unsigned long long)head, (double)r.longest_stall_ns / 1e6);
		close(sub_out[i]);
		close(sub_ctl[i]);
	}
	/* The broker noticed every dead publisher: at once those connected to
	 * it, within its reaping period those of brokers before it. */
	int64_t deadline = h_now_ns() + 10 * SEC;
	while ((rc = shmbus_topic_inspect(bus, "torture", &ti, NULL, 0, NULL, NULL, 0, NULL)) == 0 &&
	       ti.publishers && h_now_ns() < deadline)
		pause_ns(SEC / 20);
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT_EQUAL(ti.publishers, 0);
	shmbus_disconnect(bus);
	h_stop_bus(name);
}

/* ----------------------------- a dead publisher costs once, not forever */

#define ONCE_SLOTS 16

static struct shmbus_topic_options once_topic(void)
{
	struct shmbus_topic_options o;
	shmbus_topic_options_init(&o);
	o.slot_count = ONCE_SLOTS;
	o.max_message_size = 64;
	return o;
}

/* Told to, publishes at 100 Hz for 3 s; says how many it published. */
static int paced_pub(void *argp, int out)
{
	struct targ *a = argp;
	close(a->peer_fd);
	int rc, sent = 0;
	char c;
	shmbus_bus *bus = adv_connect(a->bus, NULL, &rc);
	struct shmbus_topic_options o = once_topic();
	shmbus_pub *pub;
	if (!bus || shmbus_pub_open(bus, "once", &o, NULL, &pub))
		return 1;
	if (write(out, "r", 1) != 1 || read(a->ctl_fd, &c, 1) != 1)
		return 2;
	for (int i = 0; i < 300; i++) {
		sent += adv_send(pub, "m-paced") == 0;
		pause_ns(SEC / 100);
	}
	return write(out, &sent, sizeof(sent)) == sizeof(sent) ? 0 : 3;
}

/* A loan held by a publisher that died while no broker ran: one lost
 * number, not one per lap of the ring for as long as the broker is away. */
static void test_dead_loan_costs_once(void)
{
	const char *name = h_bus_name("once");
	shmbus_bus *bus = h_connect(name);
	CU_ASSERT_PTR_NOT_NULL_FATAL(bus);
	struct shmbus_topic_options o = once_topic();
	struct adv_victim v = { .bus = name, .topic = "once", .expect = "m-" };
	struct adv_holder h = { name, "once", NULL, &o, 0 };
	int c[2], out, sent = 0;
	char r;
	shmbus_pub *create;
	CU_ASSERT_EQUAL_FATAL(shmbus_pub_open(bus, "once", &o, NULL, &create), 0);
	CU_ASSERT_TRUE_FATAL(adv_victim_start(&v, NULL));
	pid_t holder = adv_holder_start(&h);
	CU_ASSERT_TRUE_FATAL(holder > 0);
	CU_ASSERT_FATAL(pipe(c) == 0);
	struct targ a = { name, c[0], c[1] };
	pid_t pub = h_fork(paced_pub, &a, &out);
	close(c[0]);
	CU_ASSERT_TRUE_FATAL(h_read(out, &r, 1, 30000));

	adv_kill_broker(name);
	kill(holder, SIGKILL);
	CU_ASSERT_EQUAL(h_reap(holder, 20000), 128 + SIGKILL);
	CU_ASSERT_EQUAL(write(c[1], "g", 1), 1);
	CU_ASSERT_TRUE(h_read(out, &sent, sizeof(sent), 60000));
	CU_ASSERT_EQUAL(h_reap(pub, 20000), 0);
	close(out);
	close(c[1]);
	struct adv_report rep;
	CU_ASSERT_TRUE(adv_victim_report(&v, &rep, 20000));
	CU_ASSERT_EQUAL(adv_victim_end(&v), 0);
	printf("\n  %d published over %d laps of %d slots: received %llu, lost %llu", sent,
	       sent / ONCE_SLOTS, ONCE_SLOTS, (unsigned long long)rep.received,
	       (unsigned long long)rep.lost);
	CU_ASSERT_EQUAL(sent, 300);
	CU_ASSERT_EQUAL(rep.received, (uint64_t)sent);
	CU_ASSERT_TRUE(rep.lost <= 1);
	shmbus_pub_close(create);
	shmbus_disconnect(bus);
	adv_stop_bus(name);
}

/* ------------------------------------------------- the keeper */

static int count_topic(void *ctx, const char *topic, const char *type_name)
{
	(void)type_name;
	(void)topic;
	(*(int *)ctx)++;
	return 0;
}

/* Wait (bounded) until the bus has a keeper other than `old`. */
static pid_t new_keeper(const char *bus, pid_t old)
{
	int64_t deadline = h_now_ns() + 20 * SEC;
	pid_t k;
	while ((k = h_keeper_pid(bus)) <= 0 || k == old) {
		if (h_now_ns() > deadline)
			return -1;
		struct timespec ts = { 0, 5000000 };
		nanosleep(&ts, NULL);
	}
	return k;
}

/* Topics are memfds: a broker that dies keeps nothing by name. Its keeper
 * holds them; a keeper killed is started again by its broker and handed
 * everything; a broker killed after that is replaced by one that takes the
 * topics back from the new keeper, while publishers and subscribers carry
 * on in between. */
static void test_keeper(void)
{
	const char *name = h_bus_name("keeper");
	shmbus_bus *bus = h_connect(name);
	CU_ASSERT_PTR_NOT_NULL_FATAL(bus);
	struct shmbus_topic_options o = tagged();
	o.flags = 0;
	shmbus_pub *pub;
	shmbus_sub *sub;
	CU_ASSERT_EQUAL_FATAL(shmbus_pub_open(bus, "kept", &o, NULL, &pub), 0);
	CU_ASSERT_EQUAL_FATAL(shmbus_sub_open(bus, "kept", NULL, NULL, &sub), 0);
	CU_ASSERT_EQUAL(shmbus_pub_send(pub, "one", 4, NULL), 0);
	pid_t keeper = h_keeper_listening(name, 10000), broker = shmbus_broker_pid(bus);
	CU_ASSERT_FATAL(keeper > 0 && keeper != broker);

	CU_ASSERT_EQUAL(kill(keeper, SIGKILL), 0);
	CU_ASSERT_TRUE(h_wait_exit(keeper, 20000));
	pid_t keeper2 = new_keeper(name, keeper);
	CU_ASSERT_FATAL(keeper2 > 0);
	/* The new keeper listens before its broker has handed it anything;
	 * the broker hands everything over in one go before it serves the
	 * next request, so an answer from it means the keeper holds it all. */
	int handed = 0;
	CU_ASSERT_EQUAL(shmbus_list_topics(bus, count_topic, &handed), 0);
	CU_ASSERT_EQUAL(handed, 1);
	CU_ASSERT_EQUAL(kill(broker, SIGKILL), 0);
	CU_ASSERT_TRUE(h_wait_exit(broker, 20000));
	/* No broker: the data path does not care. */
	CU_ASSERT_EQUAL(shmbus_pub_send(pub, "two", 4, NULL), 0);
	char got[8];
	CU_ASSERT_EQUAL(shmbus_sub_take(sub, got, sizeof(got), NULL), 0);
	CU_ASSERT_STRING_EQUAL(got, "one");
	CU_ASSERT_EQUAL(shmbus_sub_take(sub, got, sizeof(got), NULL), 0);
	CU_ASSERT_STRING_EQUAL(got, "two");

	/* A new broker (started by this connect) takes it all back. */
	shmbus_bus *again = h_connect(name);
	CU_ASSERT_PTR_NOT_NULL_FATAL(again);
	CU_ASSERT_NOT_EQUAL(shmbus_broker_pid(again), broker);
	CU_ASSERT_EQUAL(h_keeper_pid(name), keeper2);
	int n = 0;
	CU_ASSERT_EQUAL(shmbus_list_topics(again, count_topic, &n), 0);
	CU_ASSERT_EQUAL(n, 1);
	struct shmbus_sub_options so;
	shmbus_sub_options_init(&so);
	so.start = SHMBUS_START_FIRST;
	shmbus_sub *late;
	CU_ASSERT_EQUAL_FATAL(shmbus_sub_open(again, "kept", NULL, &so, &late), 0);
	struct shmbus_msg_info info;
	CU_ASSERT_EQUAL(shmbus_sub_take(late, got, sizeof(got), &info), 0);
	CU_ASSERT_STRING_EQUAL(got, "one");
	CU_ASSERT_EQUAL(info.seq, 0);
	CU_ASSERT_EQUAL(shmbus_sub_take(late, got, sizeof(got), &info), 0);
	CU_ASSERT_STRING_EQUAL(got, "two");
	/* And the old handles are the new broker's too: it shows them, and
	 * closes them for the process that opened them. */
	struct shmbus_topic_info ti;
	CU_ASSERT_EQUAL(shmbus_topic_inspect(again, "kept", &ti, NULL, 0, NULL, NULL, 0, NULL), 0);
	CU_ASSERT_EQUAL(ti.publishers, 1);
	CU_ASSERT_EQUAL(ti.subscribers, 2);
	CU_ASSERT_EQUAL(ti.next_seq, 2);
	shmbus_sub_close(late);
	shmbus_sub_close(sub);
	shmbus_pub_close(pub);
	CU_ASSERT_EQUAL(shmbus_topic_inspect(again, "kept", &ti, NULL, 0, NULL, NULL, 0, NULL), 0);
	CU_ASSERT_EQUAL(ti.publishers, 0);
	CU_ASSERT_EQUAL(ti.subscribers, 0);
	shmbus_disconnect(again);
	shmbus_disconnect(bus);
	h_stop_bus(name);
}

/* ------------------------------------- broker and subscriber kill -9 */

/* Deep enough (about 1.6 s of traffic) that a loaded machine does not
 * lap the test's subscriber: this test is about kills, not lapping. */
static struct shmbus_topic_options stream_topic(void)
{
	struct shmbus_topic_options o = tagged();
	o.slot_count = 8192;
	return o;
}

static int stream_pub(void *argp, int out)
{
	struct targ *a = argp;
	if (a->peer_fd >= 0)
		close(a->peer_fd);
	int rc;
	char why[256];
	shmbus_bus *bus = connect_key(a->bus, key_a, &rc, why, sizeof(why));
	struct shmbus_topic_options o = stream_topic();
	shmbus_pub *pub;
	if (rc || shmbus_pub_open(bus, "stream", &o, NULL, &pub))
		return 1;
	if (write(out, "r", 1) != 1)
		return 2;
	for (uint64_t c = 0;; c++) {
		if (shmbus_pub_send(pub, &c, sizeof(c), NULL))
			return 3;
		struct timespec pace = { 0, 200000 };
		nanosleep(&pace, NULL);
	}
}

static int idle_sub(void *argp, int out)
{
	struct targ *a = argp;
	int rc;
	char why[256];
	shmbus_bus *bus = connect_key(a->bus, key_a, &rc, why, sizeof(why));
	shmbus_sub *sub;
	if (rc || shmbus_sub_open(bus, "stream", NULL, NULL, &sub))
		return 1;
	if (write(out, "r", 1) != 1)
		return 2;
	for (;;) { /* waits in the futex most of the time: killed there */
		uint64_t v;
		shmbus_sub_wait(sub, -1);
		while (shmbus_sub_take(sub, &v, sizeof(v), NULL) == 0)
			;
	}
}

/* Take n more messages in order, with no gap; false on a stall. */
static bool take_in_order(shmbus_sub *sub, int n, uint64_t *last)
{
	for (int i = 0; i < n;) {
		uint64_t v;
		struct shmbus_msg_info info;
		if (shmbus_sub_wait(sub, 10 * SEC))
			return false;
		while (i < n && shmbus_sub_take(sub, &v, sizeof(v), &info) == 0) {
			CU_ASSERT_TRUE(*last == UINT64_MAX || v == *last + 1);
			CU_ASSERT_EQUAL(info.lost, 0);
			*last = v;
			i++;
		}
	}
	return true;
}

static void test_kills_under_traffic(void)
{
	const char *name = h_bus_name("traffic");
	int rc;
	char why[256], r;
	shmbus_bus *bus = connect_key(name, key_a, &rc, why, sizeof(why));
	CU_ASSERT_EQUAL_FATAL(rc, 0);
	struct shmbus_sub_options so;
	shmbus_sub_options_init(&so);
	so.create_if_missing = true;
	struct shmbus_topic_options to = stream_topic();
	shmbus_sub *sub;
	CU_ASSERT_EQUAL_FATAL(shmbus_sub_open(bus, "stream", &to, &so, &sub), 0);
	struct targ a = { name, -1, -1 };
	int pout, sout;
	pid_t pub = h_fork(stream_pub, &a, &pout);
	CU_ASSERT_TRUE_FATAL(h_read(pout, &r, 1, 30000));
	pid_t other = h_fork(idle_sub, &a, &sout);
	CU_ASSERT_TRUE_FATAL(h_read(sout, &r, 1, 30000));
	uint64_t last = UINT64_MAX;
	CU_ASSERT_TRUE(take_in_order(sub, 300, &last));

	/* A subscriber killed asleep: nobody notices but the broker. */
	kill(other, SIGKILL);
	CU_ASSERT_EQUAL(h_reap(other, 20000), 128 + SIGKILL);
	CU_ASSERT_TRUE(take_in_order(sub, 300, &last));

	/* The broker killed: the stream goes on. */
	pid_t broker = shmbus_broker_pid(bus);
	kill(broker, SIGKILL);
	CU_ASSERT_TRUE(h_wait_exit(broker, 20000));
	CU_ASSERT_TRUE(take_in_order(sub, 300, &last));
	/* A new broker takes the topic back, new subscribers join. */
	shmbus_bus *late = connect_key(name, key_a, &rc, why, sizeof(why));
	CU_ASSERT_EQUAL_FATAL(rc, 0);
	shmbus_sub *sub2;
	CU_ASSERT_EQUAL_FATAL(shmbus_sub_open(late, "stream", NULL, NULL, &sub2), 0);
	uint64_t last2 = UINT64_MAX;
	CU_ASSERT_TRUE(take_in_order(sub2, 300, &last2));
	CU_ASSERT_TRUE(take_in_order(sub, 300, &last));
	/* The dead subscriber's line and waits were given back. */
	struct shmbus_topic_info ti;
	CU_ASSERT_EQUAL(shmbus_topic_inspect(late, "stream", &ti, NULL, 0, NULL, NULL, 0, NULL), 0);
	CU_ASSERT_EQUAL(ti.subscribers, 2);
	kill(pub, SIGKILL);
	h_reap(pub, 20000);
	close(pout);
	close(sout);
	shmbus_sub_close(sub2);
	shmbus_sub_close(sub);
	shmbus_disconnect(late);
	shmbus_disconnect(bus);
	h_stop_bus(name);
}

static int setup(void)
{
	bool ok = write_key(key_a, sizeof(key_a), "a",
			    "4c6f72656d20697073756d20646f6c6f722073697420616d65742c20636f6e73\n",
			    0600);
	ok &= write_key(key_b, sizeof(key_b), "b",
			"0f0e0d0c0b0a09080706050403020100f0e0d0c0b0a090807060504030201000\n",
			0600);
	return ok ? 0 : 1;
}

static int teardown(void)
{
	unlink(key_a);
	unlink(key_b);
	return 0;
}

static void add(void)
{
	CU_pSuite s = CU_add_suite("trust", setup, teardown);
	CU_add_test(s, "key file rules", test_key_rules);
	CU_add_test(s, "tags reject corrupted and forged messages", test_tags_reject_corrupt_and_forged);
	CU_add_test(s, "torture: publishers killed, stopped, dead between claim and slot",
		    test_torture_kill_publishers);
	CU_add_test(s, "a dead publisher costs a bounded number of messages once",
		    test_dead_loan_costs_once);
	CU_add_test(s, "the keeper: topics survive broker and keeper kill -9", test_keeper);
	CU_add_test(s, "subscriber and broker kill -9 under traffic", test_kills_under_traffic);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	return h_run("test_trust", add);
}
