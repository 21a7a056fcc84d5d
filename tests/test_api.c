/*
 * test_api.c - the public API's promises, each tried for real on a bus of
 * its own: each thread sees its own error text; options structs of an
 * older or newer caller; waits that another thread or a signal handler
 * ends; every blocking path woken by a publish; event-loop descriptors;
 * topic events; where a subscriber starts;
 * ROS-style names; publish times given by the caller; buses whose names
 * are prefixes of each other.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define SEC 1000000000ll

static struct shmbus_topic_options layout(const char *type, uint32_t slots, uint32_t size)
{
	struct shmbus_topic_options o;
	shmbus_topic_options_init(&o);
	o.type_name = type;
	o.slot_count = slots;
	o.max_message_size = size;
	return o;
}

/* Readable within timeout_ms (poll waits for the event itself). */
static bool readable(int fd, int timeout_ms)
{
	struct pollfd p = { fd, POLLIN, 0 };
	int r;
	do
		r = poll(&p, 1, timeout_ms);
	while (r < 0 && errno == EINTR);
	return r == 1 && (p.revents & POLLIN);
}

/* ------------------------------------------------------- errors per thread */

struct err_arg {
	shmbus_bus *bus;
	pthread_barrier_t *after_fail;
	int rc;
	char text[512];
};

static void *fail_type(void *p)
{
	struct err_arg *a = p;
	struct shmbus_topic_options o = layout("test.Other", 8, 64);
	shmbus_pub *pub = NULL;
	a->rc = shmbus_pub_open(a->bus, "typed", &o, NULL, &pub);
	pthread_barrier_wait(a->after_fail); /* both have failed */
	pthread_barrier_wait(a->after_fail); /* ... before either reads */
	snprintf(a->text, sizeof(a->text), "%s", shmbus_errmsg());
	return NULL;
}

static void *fail_missing(void *p)
{
	struct err_arg *a = p;
	shmbus_sub *sub = NULL;
	pthread_barrier_wait(a->after_fail);
	a->rc = shmbus_sub_open(a->bus, "missing/topic", NULL, NULL, &sub);
	pthread_barrier_wait(a->after_fail);
	snprintf(a->text, sizeof(a->text), "%s", shmbus_errmsg());
	return NULL;
}

static void test_errors_per_thread(void)
{
	const char *name = h_bus_name("err");
	shmbus_bus *bus = h_connect(name);
	CU_ASSERT_PTR_NOT_NULL_FATAL(bus);
	struct shmbus_topic_options o = layout("test.Typed", 8, 64);
	shmbus_pub *pub;
	CU_ASSERT_EQUAL_FATAL(shmbus_pub_open(bus, "typed", &o, NULL, &pub), 0);

	/* Two threads fail on one connection, one after the other, and only
	 * then read: each must read its own reason. */
	pthread_barrier_t b;
	pthread_barrier_init(&b, NULL, 2);
	struct err_arg ta = { bus, &b, 0, "" }, tb = { bus, &b, 0, "" };
	pthread_t x, y;
	pthread_create(&x, NULL, fail_type, &ta);
	pthread_create(&y, NULL, fail_missing, &tb);
	pthread_join(x, NULL);
	pthread_join(y, NULL);
	pthread_barrier_destroy(&b);
	CU_ASSERT_EQUAL(ta.rc, SHMBUS_ETYPE);
	CU_ASSERT_EQUAL(tb.rc, SHMBUS_ENOTOPIC);
	CU_ASSERT_PTR_NOT_NULL(strstr(ta.text, "test.Other"));
	CU_ASSERT_PTR_NULL(strstr(ta.text, "missing/topic"));
	CU_ASSERT_PTR_NOT_NULL(strstr(tb.text, "missing/topic"));
	CU_ASSERT_PTR_NULL(strstr(tb.text, "test.Other"));

	/* A call that fails before it reaches the broker says why too, and
	 * a call that succeeds clears the text. */
	shmbus_pub *bad;
	CU_ASSERT_EQUAL(shmbus_pub_open(bus, "a/../b", NULL, NULL, &bad), SHMBUS_ENAME);
	CU_ASSERT_PTR_NOT_NULL(strstr(shmbus_errmsg(), "a/../b"));
	uint64_t v = 1;
	CU_ASSERT_EQUAL(shmbus_pub_send(pub, &v, sizeof(v), NULL), 0);
	CU_ASSERT_STRING_EQUAL(shmbus_errmsg(), "");
	char big[128] = { 0 };
	CU_ASSERT_EQUAL(shmbus_pub_send(pub, big, sizeof(big), NULL), SHMBUS_EMSGSIZE);
	CU_ASSERT_PTR_NOT_NULL(strstr(shmbus_errmsg(), "64"));
	shmbus_pub_close(pub);
	shmbus_disconnect(bus);
	h_stop_bus(name);
}

/* ----------------------------------------------------------- options ABI */

/* What a caller built against an older header passes: the first fields of
 * today's struct only. */
struct sub_options_v0 {
	uint32_t size;
	enum shmbus_start start;
	uint32_t last_n;
};

/* ... and one built against a newer header: one field more. */
struct sub_options_next {
	struct shmbus_sub_options o;
	uint64_t future;
};

static void test_options_abi(void)
{
	const char *name = h_bus_name("abi");
	shmbus_bus *bus = h_connect(name);
	CU_ASSERT_PTR_NOT_NULL_FATAL(bus);
	shmbus_pub *pub;
	struct shmbus_topic_options o = layout(NULL, 8, 64);
	CU_ASSERT_EQUAL_FATAL(shmbus_pub_open(bus, "abi", &o, NULL, &pub), 0);
	for (uint64_t i = 0; i < 5; i++)
		CU_ASSERT_EQUAL(shmbus_pub_send(pub, &i, sizeof(i), NULL), 0);

	/* Older: its fields are read, the rest take their defaults. */
	struct sub_options_v0 old;
	memset(&old, 0xff, sizeof(old));
	shmbus_sub_options_init_((struct shmbus_sub_options *)&old, sizeof(old));
	CU_ASSERT_EQUAL(old.size, sizeof(old));
	CU_ASSERT_EQUAL(old.start, SHMBUS_START_NEW);
	old.start = SHMBUS_START_LAST;
	old.last_n = 3;
	shmbus_sub *sub;
	CU_ASSERT_EQUAL_FATAL(
		shmbus_sub_open(bus, "abi", NULL, (struct shmbus_sub_options *)&old, &sub), 0);
	uint64_t v;
	struct shmbus_msg_info info;
	CU_ASSERT_EQUAL(shmbus_sub_take(sub, &v, sizeof(v), &info), 0);
	CU_ASSERT_EQUAL(v, 2);
	shmbus_sub_close(sub);

	/* Newer, with the field this library does not know left at zero:
	 * accepted; set: refused, naming the reason. */
	struct sub_options_next next;
	shmbus_sub_options_init_(&next.o, sizeof(next));
	CU_ASSERT_EQUAL(next.o.size, sizeof(next));
	CU_ASSERT_EQUAL(next.future, 0);
	CU_ASSERT_EQUAL_FATAL(shmbus_sub_open(bus, "abi", NULL, &next.o, &sub), 0);
	shmbus_sub_close(sub);
	next.future = 1;
	CU_ASSERT_EQUAL(shmbus_sub_open(bus, "abi", NULL, &next.o, &sub), SHMBUS_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(shmbus_errmsg(), "does not know"));

	/* A negative spin other than SHMBUS_SPIN_AUTO: refused, naming it. */
	struct shmbus_sub_options spin;
	shmbus_sub_options_init(&spin);
	spin.spin_ns = -5;
	CU_ASSERT_EQUAL(shmbus_sub_open(bus, "abi", NULL, &spin, &sub), SHMBUS_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(shmbus_errmsg(), "spin_ns"));

	/* Never initialised: refused with the function to call. */
	struct shmbus_sub_options raw;
	memset(&raw, 0, sizeof(raw));
	CU_ASSERT_EQUAL(shmbus_sub_open(bus, "abi", NULL, &raw, &sub), SHMBUS_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(shmbus_errmsg(), "shmbus_sub_options_init"));
	struct shmbus_topic_options t0;
	memset(&t0, 0, sizeof(t0));
	shmbus_pub *none;
	CU_ASSERT_EQUAL(shmbus_pub_open(bus, "abi2", &t0, NULL, &none), SHMBUS_EINVAL);
	CU_ASSERT_PTR_NULL(none);

	/* The same reading, for a library layered on this one: a copy of the
	 * caller's options over the defaults, refusals and all; and an error
	 * text of its own. */
	struct shmbus_topic_options copy;
	o.history = 5;
	CU_ASSERT_EQUAL(shmbus_topic_options_copy(&copy, &o), 0);
	CU_ASSERT_EQUAL(copy.size, sizeof(copy));
	CU_ASSERT_EQUAL(copy.slot_count, 8);
	CU_ASSERT_EQUAL(copy.history, 5);
	CU_ASSERT_EQUAL(shmbus_topic_options_copy(&copy, NULL), 0);
	CU_ASSERT_EQUAL(copy.slot_count, 0);
	CU_ASSERT_EQUAL(shmbus_topic_options_copy(&copy, &t0), SHMBUS_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(shmbus_errmsg(), "shmbus_topic_options_init"));
	CU_ASSERT_EQUAL(shmbus_fail(SHMBUS_EBADMSG, "message %d of '%s'", 7, "imu"),
			SHMBUS_EBADMSG);
	CU_ASSERT_STRING_EQUAL(shmbus_errmsg(), "message 7 of 'imu'");
	shmbus_pub_close(pub);
	shmbus_disconnect(bus);
	h_stop_bus(name);
}

/* ---------------------------------------------------------- interrupts */

struct waiter {
	shmbus_sub *sub;
	shmbus_waitset *ws;
	shmbus_topic_watch *watch;
	int rc;
	int done[2];
};

static void *wait_forever(void *p)
{
	struct waiter *w = p;
	size_t n;
	shmbus_sub *ready;
	if (w->sub)
		w->rc = shmbus_sub_wait(w->sub, -1);
	else if (w->ws)
		w->rc = shmbus_waitset_wait(w->ws, -1, &ready, 1, &n);
	else
		w->rc = shmbus_topic_watch_wait(w->watch, -1);
	if (write(w->done[1], "x", 1) != 1)
		w->rc = 999;
	return NULL;
}

/* Start a waiter, interrupt it with `kick`, and check it returns EINTR at
 * once (bounded: 20 s on a loaded machine; it returns in microseconds). */
static void interrupted(struct waiter *w, void (*kick)(struct waiter *w))
{
	pthread_t t;
	CU_ASSERT_FATAL(pipe(w->done) == 0);
	w->rc = 0;
	pthread_create(&t, NULL, wait_forever, w);
	/* Still waiting: nothing can wake it but the interrupt. */
	CU_ASSERT_FALSE(readable(w->done[0], 50));
	kick(w);
	CU_ASSERT_TRUE(readable(w->done[0], 20000));
	pthread_join(t, NULL);
	CU_ASSERT_EQUAL(w->rc, SHMBUS_EINTR);
	close(w->done[0]);
	close(w->done[1]);
}

static void kick_sub(struct waiter *w)
{
	shmbus_sub_interrupt(w->sub);
}

static void kick_set(struct waiter *w)
{
	shmbus_waitset_interrupt(w->ws);
}

static void kick_watch(struct waiter *w)
{
	shmbus_topic_watch_interrupt(w->watch);
}

static shmbus_sub *signal_target;

static void on_usr1(int sig)
{
	(void)sig;
	shmbus_sub_interrupt(signal_target); /* async-signal-safe */
}

static void test_interrupts(void)
{
	const char *name = h_bus_name("intr");
	shmbus_bus *bus = h_connect(name);
	CU_ASSERT_PTR_NOT_NULL_FATAL(bus);
	struct shmbus_topic_options o = layout(NULL, 8, 64);
	shmbus_sub *sub;
	struct shmbus_sub_options so;
	shmbus_sub_options_init(&so);
	so.create_if_missing = true;
	CU_ASSERT_EQUAL_FATAL(shmbus_sub_open(bus, "quiet", &o, &so, &sub), 0);

	struct waiter w = { .sub = sub };
	interrupted(&w, kick_sub);

	shmbus_waitset *ws;
	CU_ASSERT_EQUAL_FATAL(shmbus_waitset_create(&ws), 0);
	CU_ASSERT_EQUAL(shmbus_waitset_add(ws, sub), 0);
	struct waiter ww = { .ws = ws };
	interrupted(&ww, kick_set);

	shmbus_topic_watch *watch;
	CU_ASSERT_EQUAL_FATAL(shmbus_topic_watch_open(bus, &watch), 0);
	struct shmbus_topic_event ev;
	while (shmbus_topic_watch_next(watch, &ev) == 0)
		;
	struct waiter wt = { .watch = watch };
	interrupted(&wt, kick_watch);

	/* From a signal handler, on the waiting thread itself. */
	struct sigaction sa = { 0 };
	sa.sa_handler = on_usr1;
	sigemptyset(&sa.sa_mask);
	CU_ASSERT_EQUAL(sigaction(SIGUSR1, &sa, NULL), 0);
	signal_target = sub;
	struct waiter ws2 = { .sub = sub };
	pthread_t t;
	CU_ASSERT_FATAL(pipe(ws2.done) == 0);
	pthread_create(&t, NULL, wait_forever, &ws2);
	CU_ASSERT_FALSE(readable(ws2.done[0], 50));
	pthread_kill(t, SIGUSR1);
	CU_ASSERT_TRUE(readable(ws2.done[0], 20000));
	pthread_join(t, NULL);
	CU_ASSERT_EQUAL(ws2.rc, SHMBUS_EINTR);
	close(ws2.done[0]);
	close(ws2.done[1]);
	signal(SIGUSR1, SIG_DFL);

	/* An interrupt before the wait ends the next wait, once. */
	shmbus_sub_interrupt(sub);
	CU_ASSERT_EQUAL(shmbus_sub_wait(sub, 10 * SEC), SHMBUS_EINTR);
	CU_ASSERT_EQUAL(shmbus_sub_wait(sub, 0), SHMBUS_ETIMEDOUT);

	shmbus_topic_watch_close(watch);
	shmbus_waitset_destroy(ws);
	shmbus_sub_close(sub);
	shmbus_disconnect(bus);
	h_stop_bus(name);
}

/* ------------------------------------------------- event-loop descriptors */

static void drain(shmbus_sub *sub, int *n)
{
	uint64_t v;
	while (shmbus_sub_take(sub, &v, sizeof(v), NULL) == 0)
		(*n)++;
}

/* A timeout too far to add to the clock (INT64_MAX: "as long as it
 * takes") is no overflow (UBSan stops the program on one): a wait with it
 * still returns as soon as there is a message. */
static void test_huge_timeouts(void)
{
	const char *name = h_bus_name("huge");
	shmbus_bus *bus = h_connect(name);
	CU_ASSERT_PTR_NOT_NULL_FATAL(bus);
	struct shmbus_topic_options o = layout(NULL, 16, 64);
	shmbus_pub *pub;
	shmbus_sub *sub;
	CU_ASSERT_EQUAL_FATAL(shmbus_pub_open(bus, "huge", &o, NULL, &pub), 0);
	CU_ASSERT_EQUAL_FATAL(shmbus_sub_open(bus, "huge", NULL, NULL, &sub), 0);
	CU_ASSERT_EQUAL(shmbus_pub_send(pub, "x", 1, NULL), 0);
	CU_ASSERT_EQUAL(shmbus_sub_wait(sub, INT64_MAX), 0);
	CU_ASSERT_EQUAL(shmbus_sub_wait(sub, INT64_MAX - 1), 0);
	shmbus_waitset *ws;
	CU_ASSERT_EQUAL_FATAL(shmbus_waitset_create(&ws), 0);
	CU_ASSERT_EQUAL(shmbus_waitset_add(ws, sub), 0);
	shmbus_sub *ready[1];
	size_t n = 0;
	CU_ASSERT_EQUAL(shmbus_waitset_wait(ws, INT64_MAX, ready, 1, &n), 0);
	CU_ASSERT_EQUAL(n, 1);
	shmbus_waitset_destroy(ws);
	shmbus_sub_close(sub);
	shmbus_pub_close(pub);
	shmbus_disconnect(bus);
	h_stop_bus(name);
}

/* Subscribers leave a wait set whose descriptor's thread sleeps on them,
 * and are closed (their topic unmapped) at once, many times: the thread
 * must never look at a topic its member no longer has (under ASan a look
 * at an unmapped topic is a crash). */
static void test_fd_set_member_leaves(void)
{
	const char *name = h_bus_name("fdleave");
	shmbus_bus *bus = h_connect(name);
	CU_ASSERT_PTR_NOT_NULL_FATAL(bus);
	struct shmbus_topic_options o = layout(NULL, 16, 64);
	shmbus_pub *pub;
	CU_ASSERT_EQUAL_FATAL(shmbus_pub_open(bus, "leave", &o, NULL, &pub), 0);
	shmbus_waitset *ws;
	CU_ASSERT_EQUAL_FATAL(shmbus_waitset_create(&ws), 0);
	int fd;
	CU_ASSERT_EQUAL_FATAL(shmbus_waitset_fd(ws, &fd), 0);
	for (int i = 0; i < 300; i++) {
		shmbus_sub *sub;
		CU_ASSERT_EQUAL_FATAL(shmbus_sub_open(bus, "leave", NULL, NULL, &sub), 0);
		CU_ASSERT_EQUAL_FATAL(shmbus_waitset_add(ws, sub), 0);
		if (i % 2) {
			/* A message wakes the thread while the member leaves. */
			uint32_t v = (uint32_t)i;
			CU_ASSERT_EQUAL(shmbus_pub_send(pub, &v, sizeof(v), NULL), 0);
			CU_ASSERT_EQUAL(shmbus_waitset_remove(ws, sub), 0);
		}
		shmbus_sub_close(sub); /* leaves the set by itself when still in it */
	}
	shmbus_waitset_destroy(ws);
	shmbus_pub_close(pub);
	shmbus_disconnect(bus);
	h_stop_bus(name);
}

/* ------------------------------------------------------- prompt wake-ups */

/* Every blocking path (a subscriber's wait, a wait set's, and poll on
 * either's descriptor), asleep in another thread with a long timeout, ends
 * within WAKE_BOUND_MS of a publish: a liveness bound, generous for a
 * loaded machine, not a latency figure. The library's sleeps also end at
 * a nap of at most 200 ms (a scribbled wake board must cost latency, not
 * liveness), so these cannot tell a lost wake-up from a prompt one;
 * test_ring's waits, without the nap, do. */
#define WAKE_BOUND_MS 10000

enum wake_path { PATH_SUB_WAIT, PATH_WAITSET_WAIT, PATH_SUB_FD, PATH_WAITSET_FD };

struct blocked {
	enum wake_path path;
	shmbus_sub *sub;
	shmbus_waitset *ws;
	int fd;
	pthread_t thread;
	_Atomic pid_t tid;
	sem_t done;
	int rc;
};

static void *blocked_main(void *arg)
{
	struct blocked *b = arg;
	shmbus_sub *ready[1];
	size_t n = 0;
	struct pollfd p = { b->fd, POLLIN, 0 };
	atomic_store(&b->tid, gettid());
	switch (b->path) {
	case PATH_SUB_WAIT:
		b->rc = shmbus_sub_wait(b->sub, 60 * SEC);
		break;
	case PATH_WAITSET_WAIT:
		b->rc = shmbus_waitset_wait(b->ws, 60 * SEC, ready, 1, &n);
		if (b->rc == 0 && (n != 1 || ready[0] != b->sub))
			b->rc = SHMBUS_EINVAL;
		break;
	case PATH_SUB_FD:
	case PATH_WAITSET_FD:
		do
			b->rc = poll(&p, 1, 60000);
		while (b->rc < 0 && errno == EINTR);
		b->rc = b->rc == 1 && (p.revents & POLLIN) ? 0 : SHMBUS_ETIMEDOUT;
		break;
	}
	sem_post(&b->done);
	return NULL;
}

static void test_prompt_wakes(void)
{
	const char *name = h_bus_name("wake");
	shmbus_bus *bus = h_connect(name);
	CU_ASSERT_PTR_NOT_NULL_FATAL(bus);
	struct shmbus_topic_options o = layout(NULL, 16, 64);
	shmbus_pub *pub;
	CU_ASSERT_EQUAL_FATAL(shmbus_pub_open(bus, "wake", &o, NULL, &pub), 0);
	int got = 0;
	for (int path = PATH_SUB_WAIT; path <= PATH_WAITSET_FD; path++) {
		struct blocked b = { .path = (enum wake_path)path, .fd = -1 };
		shmbus_sub *other;
		CU_ASSERT_EQUAL_FATAL(shmbus_sub_open(bus, "wake", NULL, NULL, &b.sub), 0);
		/* A wait set of two, the message for the second. */
		struct shmbus_sub_options so;
		shmbus_sub_options_init(&so);
		so.create_if_missing = true;
		CU_ASSERT_EQUAL_FATAL(shmbus_sub_open(bus, "wake-other", &o, &so, &other), 0);
		if (path == PATH_WAITSET_WAIT || path == PATH_WAITSET_FD) {
			CU_ASSERT_EQUAL_FATAL(shmbus_waitset_create(&b.ws), 0);
			CU_ASSERT_EQUAL(shmbus_waitset_add(b.ws, other), 0);
			CU_ASSERT_EQUAL(shmbus_waitset_add(b.ws, b.sub), 0);
		}
		if (path == PATH_SUB_FD)
			CU_ASSERT_EQUAL(shmbus_sub_fd(b.sub, &b.fd), 0);
		if (path == PATH_WAITSET_FD)
			CU_ASSERT_EQUAL(shmbus_waitset_fd(b.ws, &b.fd), 0);
		for (int round = 0; round < 5; round++) {
			sem_init(&b.done, 0, 0);
			atomic_store(&b.tid, 0);
			CU_ASSERT_FATAL(pthread_create(&b.thread, NULL, blocked_main, &b) == 0);
			/* The message comes once the waiter sleeps. */
			CU_ASSERT_TRUE(h_thread_asleep(&b.tid, WAKE_BOUND_MS));
			uint64_t v = (uint64_t)round;
			CU_ASSERT_EQUAL(shmbus_pub_send(pub, &v, sizeof(v), NULL), 0);
			struct timespec until;
			clock_gettime(CLOCK_REALTIME, &until);
			until.tv_sec += WAKE_BOUND_MS / 1000;
			int woke;
			while ((woke = sem_timedwait(&b.done, &until)) != 0 && errno == EINTR)
				;
			CU_ASSERT_EQUAL(woke, 0);
			pthread_join(b.thread, NULL);
			sem_destroy(&b.done);
			CU_ASSERT_EQUAL(b.rc, 0);
			drain(b.sub, &got);
		}
		if (b.ws)
			shmbus_waitset_destroy(b.ws);
		shmbus_sub_close(other);
		shmbus_sub_close(b.sub);
	}
	CU_ASSERT_EQUAL(got, 4 * 5);
	shmbus_pub_close(pub);
	shmbus_disconnect(bus);
	h_stop_bus(name);
}

static void test_sub_fd(void)
{
	const char *name = h_bus_name("fd");
	shmbus_bus *bus = h_connect(name);
	CU_ASSERT_PTR_NOT_NULL_FATAL(bus);
	struct shmbus_topic_options o = layout(NULL, 16, 64);
	shmbus_pub *pub;
	shmbus_sub *sub;
	CU_ASSERT_EQUAL_FATAL(shmbus_pub_open(bus, "ev", &o, NULL, &pub), 0);
	CU_ASSERT_EQUAL_FATAL(shmbus_sub_open(bus, "ev", NULL, NULL, &sub), 0);
	int fd = -1, fd2 = -1;
	CU_ASSERT_EQUAL_FATAL(shmbus_sub_fd(sub, &fd), 0);
	CU_ASSERT_EQUAL(shmbus_sub_fd(sub, &fd2), 0);
	CU_ASSERT_EQUAL(fd, fd2); /* one per subscriber */
	CU_ASSERT_FALSE(readable(fd, 0));
	int got = 0;
	for (int round = 0; round < 50; round++) {
		uint64_t v = (uint64_t)round;
		CU_ASSERT_EQUAL(shmbus_pub_send(pub, &v, sizeof(v), NULL), 0);
		if (round % 3 == 0)
			CU_ASSERT_EQUAL(shmbus_pub_send(pub, &v, sizeof(v), NULL), 0);
		/* Readable because of the message; like a socket, it stays
		 * readable until a take finds nothing. */
		CU_ASSERT_TRUE_FATAL(readable(fd, 20000));
		CU_ASSERT_TRUE(readable(fd, 0));
		drain(sub, &got);
		CU_ASSERT_FALSE(readable(fd, 0));
	}
	CU_ASSERT_EQUAL(got, 50 + 17);

	/* Data that is there before the descriptor exists shows at once. */
	shmbus_sub *late;
	CU_ASSERT_EQUAL_FATAL(shmbus_sub_open(bus, "ev", NULL, NULL, &late), 0);
	uint64_t v = 7;
	CU_ASSERT_EQUAL(shmbus_pub_send(pub, &v, sizeof(v), NULL), 0);
	CU_ASSERT_EQUAL(shmbus_sub_fd(late, &fd2), 0);
	CU_ASSERT_TRUE(readable(fd2, 20000));
	shmbus_sub_close(late);

	/* A wait set's descriptor: readable while any member has data. */
	shmbus_pub *pub2;
	shmbus_sub *sub2;
	CU_ASSERT_EQUAL_FATAL(shmbus_pub_open(bus, "ev2", &o, NULL, &pub2), 0);
	CU_ASSERT_EQUAL_FATAL(shmbus_sub_open(bus, "ev2", NULL, NULL, &sub2), 0);
	shmbus_waitset *ws;
	CU_ASSERT_EQUAL_FATAL(shmbus_waitset_create(&ws), 0);
	CU_ASSERT_EQUAL(shmbus_waitset_add(ws, sub2), 0);
	int wfd;
	CU_ASSERT_EQUAL_FATAL(shmbus_waitset_fd(ws, &wfd), 0);
	/* sub has its own descriptor: it cannot join another's. */
	CU_ASSERT_EQUAL(shmbus_waitset_add(ws, sub), SHMBUS_EINVAL);
	shmbus_sub *sub3;
	CU_ASSERT_EQUAL_FATAL(shmbus_sub_open(bus, "ev", NULL, NULL, &sub3), 0);
	CU_ASSERT_EQUAL(shmbus_waitset_add(ws, sub3), 0);
	CU_ASSERT_FALSE(readable(wfd, 0));
	CU_ASSERT_EQUAL(shmbus_pub_send(pub2, &v, sizeof(v), NULL), 0);
	CU_ASSERT_TRUE(readable(wfd, 20000));
	got = 0;
	drain(sub2, &got);
	CU_ASSERT_EQUAL(got, 1);
	CU_ASSERT_FALSE(readable(wfd, 0));
	CU_ASSERT_EQUAL(shmbus_pub_send(pub, &v, sizeof(v), NULL), 0);
	CU_ASSERT_TRUE(readable(wfd, 20000));
	shmbus_sub *ready[2];
	size_t n = 0;
	CU_ASSERT_EQUAL(shmbus_waitset_wait(ws, 0, ready, 2, &n), 0);
	CU_ASSERT_EQUAL(n, 1);
	CU_ASSERT(n == 1 && ready[0] == sub3);
	drain(sub3, &got);
	CU_ASSERT_FALSE(readable(wfd, 0));

	shmbus_waitset_destroy(ws);
	shmbus_sub_close(sub3);
	shmbus_sub_close(sub2);
	shmbus_pub_close(pub2);
	shmbus_sub_close(sub);
	shmbus_pub_close(pub);
	shmbus_disconnect(bus);
	h_stop_bus(name);
}

/* ------------------------------------------------------------ wait sets */

struct sender {
	shmbus_pub *pub;
	int go[2];
};

static void *send_on_go(void *p)
{
	struct sender *s = p;
	char c;
	if (read(s->go[0], &c, 1) == 1) {
		uint64_t v = 42;
		shmbus_pub_send(s->pub, &v, sizeof(v), NULL);
	}
	return NULL;
}

/* Wait sets on three topics, where messages come from another thread. */
static int waitset_round(void *arg, int out)
{
	const char *name = arg;
	shmbus_bus *bus = h_connect(name);
	if (!bus)
		return 1;
	struct shmbus_topic_options o = layout(NULL, 8, 64);
	const char *topics[3] = { "ws/a", "ws/b", "ws/c" };
	shmbus_pub *pubs[3];
	shmbus_sub *subs[3];
	shmbus_waitset *ws;
	if (shmbus_waitset_create(&ws))
		return 2;
	for (int i = 0; i < 3; i++)
		if (shmbus_pub_open(bus, topics[i], &o, NULL, &pubs[i]) ||
		    shmbus_sub_open(bus, topics[i], NULL, NULL, &subs[i]) ||
		    shmbus_waitset_add(ws, subs[i]))
			return 3;
	int result = 0;
	for (int i = 0; i < 3 && !result; i++) {
		struct sender s = { pubs[i], { -1, -1 } };
		pthread_t t;
		if (pipe(s.go))
			return 4;
		pthread_create(&t, NULL, send_on_go, &s);
		shmbus_sub *ready[3];
		size_t n = 9;
		if (shmbus_waitset_wait(ws, 0, ready, 3, &n) != SHMBUS_ETIMEDOUT || n != 0)
			result = 5;
		if (write(s.go[1], "g", 1) != 1)
			result = 6;
		int rc = shmbus_waitset_wait(ws, 30 * SEC, ready, 3, &n);
		if (rc != 0 || n != 1 || ready[0] != subs[i])
			result = 7;
		uint64_t v;
		if (shmbus_sub_take(subs[i], &v, sizeof(v), NULL) || v != 42)
			result = 8;
		pthread_join(t, NULL);
		close(s.go[0]);
		close(s.go[1]);
	}
	shmbus_waitset_destroy(ws);
	for (int i = 0; i < 3; i++) {
		shmbus_sub_close(subs[i]);
		shmbus_pub_close(pubs[i]);
	}
	shmbus_disconnect(bus);
	return write(out, &result, sizeof(result)) == sizeof(result) ? 0 : 9;
}

static int fallback_round(void *arg, int out)
{
	/* Read once, at the first wait: set before anything waits. */
	setenv("SHMBUS_NO_FUTEX_WAITV", "1", 1);
	return waitset_round(arg, out);
}

static void test_waitsets(void)
{
	const char *name = h_bus_name("wset");
	for (int fallback = 0; fallback < 2; fallback++) {
		int fd, result = -1;
		pid_t pid = h_fork(fallback ? fallback_round : waitset_round, (void *)name, &fd);
		CU_ASSERT_TRUE(h_read(fd, &result, sizeof(result), 60000));
		CU_ASSERT_EQUAL(h_reap(pid, 60000), 0);
		close(fd);
		if (result)
			fprintf(stderr, "\n  wait set round (fallback %d): step %d failed\n", fallback,
				result);
		CU_ASSERT_EQUAL(result, 0);
	}
	h_stop_bus(name);
}

/* --------------------------------------------------------- topic events */

static bool next_event(shmbus_topic_watch *w, struct shmbus_topic_event *ev)
{
	int64_t deadline = h_now_ns() + 30 * SEC;
	for (;;) {
		int rc = shmbus_topic_watch_next(w, ev);
		if (rc == 0)
			return true;
		if (rc != SHMBUS_EAGAIN || h_now_ns() > deadline)
			return false;
		rc = shmbus_topic_watch_wait(w, deadline - h_now_ns());
		if (rc && rc != SHMBUS_ETIMEDOUT)
			return false;
	}
}

static void test_topic_watch(void)
{
	const char *name = h_bus_name("watch");
	shmbus_bus *bus = h_connect(name);
	CU_ASSERT_PTR_NOT_NULL_FATAL(bus);
	struct shmbus_topic_options o = layout("test.Before", 8, 64);
	shmbus_pub *before;
	CU_ASSERT_EQUAL_FATAL(shmbus_pub_open(bus, "/before", &o, NULL, &before), 0);

	shmbus_topic_watch *w;
	CU_ASSERT_EQUAL_FATAL(shmbus_topic_watch_open(bus, &w), 0);
	struct shmbus_topic_event ev;
	/* What exists comes first, as created. */
	CU_ASSERT_EQUAL(shmbus_topic_watch_next(w, &ev), 0);
	CU_ASSERT_EQUAL(ev.kind, SHMBUS_TOPIC_CREATED);
	CU_ASSERT_STRING_EQUAL(ev.name, "/before");
	CU_ASSERT_STRING_EQUAL(ev.type_name, "test.Before");
	CU_ASSERT_EQUAL(shmbus_topic_watch_next(w, &ev), SHMBUS_EAGAIN);
	CU_ASSERT_EQUAL(shmbus_topic_watch_wait(w, 0), SHMBUS_ETIMEDOUT);
	int fd;
	CU_ASSERT_EQUAL_FATAL(shmbus_topic_watch_fd(w, &fd), 0);
	CU_ASSERT_FALSE(readable(fd, 0));

	/* Another process creates a topic: the watch hears of it from the
	 * broker, without polling. */
	char out[4096];
	CU_ASSERT_EQUAL(h_run_cli(out, sizeof(out), "pub --bus %s -n 1 new/topic "
						    "shmbus.msgs.Header '{\"frameId\":\"x\"}'",
				  name),
			0);
	CU_ASSERT_TRUE(readable(fd, 30000));
	CU_ASSERT_TRUE(next_event(w, &ev));
	CU_ASSERT_EQUAL(ev.kind, SHMBUS_TOPIC_CREATED);
	CU_ASSERT_STRING_EQUAL(ev.name, "new/topic");
	CU_ASSERT_STRING_EQUAL(ev.type_name, "shmbus.msgs.Header");
	CU_ASSERT_EQUAL(shmbus_topic_watch_next(w, &ev), SHMBUS_EAGAIN);
	CU_ASSERT_FALSE(readable(fd, 0));

	/* A second watch in a wait set with a subscriber. */
	shmbus_topic_watch *w2;
	CU_ASSERT_EQUAL_FATAL(shmbus_topic_watch_open(bus, &w2), 0);
	while (shmbus_topic_watch_next(w2, &ev) == 0)
		;
	shmbus_sub *sub;
	CU_ASSERT_EQUAL_FATAL(shmbus_sub_open(bus, "/before", NULL, NULL, &sub), 0);
	shmbus_waitset *ws;
	CU_ASSERT_EQUAL_FATAL(shmbus_waitset_create(&ws), 0);
	CU_ASSERT_EQUAL(shmbus_waitset_add(ws, sub), 0);
	CU_ASSERT_EQUAL(shmbus_waitset_add_watch(ws, w2), 0);
	shmbus_sub *ready[2];
	size_t n = 5;
	CU_ASSERT_EQUAL(shmbus_waitset_wait(ws, 0, ready, 2, &n), SHMBUS_ETIMEDOUT);
	shmbus_pub *third;
	CU_ASSERT_EQUAL_FATAL(shmbus_pub_open(bus, "third", &o, NULL, &third), 0);
	CU_ASSERT_EQUAL(shmbus_waitset_wait(ws, 30 * SEC, ready, 2, &n), 0);
	CU_ASSERT_EQUAL(n, 0); /* the watch woke it, not the subscriber */
	CU_ASSERT_EQUAL(shmbus_topic_watch_next(w2, &ev), 0);
	CU_ASSERT_STRING_EQUAL(ev.name, "third");

	shmbus_waitset_destroy(ws);
	shmbus_sub_close(sub);
	shmbus_topic_watch_close(w2);
	shmbus_topic_watch_close(w);
	shmbus_pub_close(third);
	shmbus_pub_close(before);
	shmbus_disconnect(bus);
	h_stop_bus(name);
}

/* A topic removed, its broker killed, and a topic of the same name made by
 * the next broker (which may give it the same id): a watch that slept
 * through all of it still hears that the topic was removed and created,
 * because a topic is known by its incarnation, not only its id and name. */
static void test_watch_across_brokers(void)
{
	const char *name = h_bus_name("watchkill");
	shmbus_bus *bus = h_connect(name);
	CU_ASSERT_PTR_NOT_NULL_FATAL(bus);
	shmbus_topic_watch *w;
	CU_ASSERT_EQUAL_FATAL(shmbus_topic_watch_open(bus, &w), 0);
	struct shmbus_topic_options o = layout("test.T", 8, 64);
	shmbus_pub *pub;
	CU_ASSERT_EQUAL_FATAL(shmbus_pub_open(bus, "t", &o, NULL, &pub), 0);
	struct shmbus_topic_event ev;
	CU_ASSERT_TRUE(next_event(w, &ev));
	CU_ASSERT_EQUAL(ev.kind, SHMBUS_TOPIC_CREATED);
	shmbus_pub_close(pub);
	CU_ASSERT_EQUAL(shmbus_topic_remove(bus, "t"), 0);
	pid_t broker = shmbus_broker_pid(bus);
	CU_ASSERT_EQUAL(kill(broker, SIGKILL), 0);
	CU_ASSERT_TRUE(h_wait_exit(broker, 20000));
	shmbus_bus *again = h_connect(name); /* the next broker */
	CU_ASSERT_PTR_NOT_NULL_FATAL(again);
	CU_ASSERT_EQUAL_FATAL(shmbus_pub_open(again, "t", &o, NULL, &pub), 0);
	/* Removed, then created (in that order), nothing else. */
	CU_ASSERT_TRUE(next_event(w, &ev));
	CU_ASSERT_EQUAL(ev.kind, SHMBUS_TOPIC_REMOVED);
	CU_ASSERT_STRING_EQUAL(ev.name, "t");
	CU_ASSERT_TRUE(next_event(w, &ev));
	CU_ASSERT_EQUAL(ev.kind, SHMBUS_TOPIC_CREATED);
	CU_ASSERT_STRING_EQUAL(ev.name, "t");
	CU_ASSERT_EQUAL(shmbus_topic_watch_next(w, &ev), SHMBUS_EAGAIN);
	shmbus_pub_close(pub);
	shmbus_topic_watch_close(w);
	shmbus_disconnect(again);
	shmbus_disconnect(bus);
	h_stop_bus(name);
}

/* --------------------------------------------- starts, names and times */

static void test_start_first(void)
{
	const char *name = h_bus_name("first");
	shmbus_bus *bus = h_connect(name);
	CU_ASSERT_PTR_NOT_NULL_FATAL(bus);
	struct shmbus_topic_options o = layout(NULL, 16, 64); /* history 8 */
	shmbus_pub *pub;
	CU_ASSERT_EQUAL_FATAL(shmbus_pub_open(bus, "f", &o, NULL, &pub), 0);
	struct shmbus_sub_options so;
	shmbus_sub_options_init(&so);
	so.start = SHMBUS_START_FIRST;
	for (uint64_t i = 0; i < 5; i++)
		CU_ASSERT_EQUAL(shmbus_pub_send(pub, &i, sizeof(i), NULL), 0);
	/* Everything is still there: all of it, nothing lost. */
	shmbus_sub *sub;
	CU_ASSERT_EQUAL_FATAL(shmbus_sub_open(bus, "f", NULL, &so, &sub), 0);
	uint64_t v;
	struct shmbus_msg_info info;
	for (uint64_t i = 0; i < 5; i++) {
		CU_ASSERT_EQUAL(shmbus_sub_take(sub, &v, sizeof(v), &info), 0);
		CU_ASSERT_EQUAL(v, i);
		CU_ASSERT_EQUAL(info.lost, 0);
	}
	shmbus_sub_close(sub);
	/* 25 published, history 8: the first 17 are gone, counted lost. */
	for (uint64_t i = 5; i < 25; i++)
		CU_ASSERT_EQUAL(shmbus_pub_send(pub, &i, sizeof(i), NULL), 0);
	CU_ASSERT_EQUAL_FATAL(shmbus_sub_open(bus, "f", NULL, &so, &sub), 0);
	CU_ASSERT_EQUAL(shmbus_sub_take(sub, &v, sizeof(v), &info), 0);
	CU_ASSERT_EQUAL(v, 17);
	CU_ASSERT_EQUAL(info.seq, 17);
	CU_ASSERT_EQUAL(info.lost, 17);
	struct shmbus_sub_stats st;
	shmbus_sub_stats(sub, &st);
	CU_ASSERT_EQUAL(st.lost, 17);
	CU_ASSERT_EQUAL(st.received, 1);
	shmbus_sub_close(sub);
	shmbus_pub_close(pub);
	shmbus_disconnect(bus);
	h_stop_bus(name);
}

static int count_named(void *ctx, const char *topic, const char *type_name)
{
	(void)type_name;
	if (strcmp(topic, "/camera/image_raw") == 0)
		(*(int *)ctx)++;
	else
		(*(int *)ctx) += 100;
	return 0;
}

static void test_ros_names_and_times(void)
{
	const char *name = h_bus_name("ros");
	shmbus_bus *bus = h_connect(name);
	CU_ASSERT_PTR_NOT_NULL_FATAL(bus);
	struct shmbus_topic_options o = layout("test.Img", 8, 64);
	shmbus_pub *pub, *pub2;
	shmbus_sub *sub;
	CU_ASSERT_EQUAL_FATAL(shmbus_pub_open(bus, "/camera/image_raw", &o, NULL, &pub), 0);
	/* The same topic with or without the leading '/'. */
	CU_ASSERT_EQUAL_FATAL(shmbus_sub_open(bus, "camera/image_raw", NULL, NULL, &sub), 0);
	CU_ASSERT_EQUAL_FATAL(shmbus_pub_open(bus, "camera/image_raw", &o, NULL, &pub2), 0);
	CU_ASSERT_STRING_EQUAL(shmbus_sub_topic(sub), "/camera/image_raw");
	CU_ASSERT_STRING_EQUAL(shmbus_pub_topic(pub2), "/camera/image_raw");
	int n = 0;
	CU_ASSERT_EQUAL(shmbus_list_topics(bus, count_named, &n), 0);
	CU_ASSERT_EQUAL(n, 1);
	/* A publish time given by the caller arrives as given. */
	void *buf;
	size_t cap;
	CU_ASSERT_EQUAL_FATAL(shmbus_pub_loan(pub2, &buf, &cap), 0);
	memcpy(buf, "abc", 3);
	uint64_t seq = 99;
	CU_ASSERT_EQUAL(shmbus_pub_publish_at(pub2, 3, 1234567890123456789ll, &seq), 0);
	CU_ASSERT_EQUAL(seq, 0);
	char got[8];
	struct shmbus_msg_info info;
	CU_ASSERT_EQUAL(shmbus_sub_take(sub, got, sizeof(got), &info), 0);
	CU_ASSERT_EQUAL(info.publish_ns, 1234567890123456789ll);
	CU_ASSERT_EQUAL(info.size, 3);
	int64_t before = h_now_ns();
	(void)before;
	CU_ASSERT_EQUAL(shmbus_pub_send(pub, "d", 1, NULL), 0);
	CU_ASSERT_EQUAL(shmbus_sub_take(sub, got, sizeof(got), &info), 0);
	CU_ASSERT(info.publish_ns > 1600000000ll * SEC); /* now, a real clock */
	shmbus_sub_close(sub);
	shmbus_pub_close(pub2);
	shmbus_pub_close(pub);
	shmbus_disconnect(bus);
	h_stop_bus(name);
}

/* --------------------------------------------------- buses as prefixes */

static void test_bus_name_prefixes(void)
{
	const char *base = h_bus_name("pre");
	char dotted[2][96];
	snprintf(dotted[0], sizeof(dotted[0]), "%s.a", base);
	snprintf(dotted[1], sizeof(dotted[1]), "%s.2", base);
	shmbus_bus *other[2];
	shmbus_pub *pubs[2];
	shmbus_sub *subs[2];
	struct shmbus_topic_options o = layout(NULL, 8, 64);
	for (int i = 0; i < 2; i++) {
		other[i] = h_connect(dotted[i]);
		CU_ASSERT_PTR_NOT_NULL_FATAL(other[i]);
		CU_ASSERT_EQUAL_FATAL(shmbus_pub_open(other[i], "t", &o, NULL, &pubs[i]), 0);
		CU_ASSERT_EQUAL_FATAL(shmbus_sub_open(other[i], "t", NULL, NULL, &subs[i]), 0);
	}
	pid_t keepers[2] = { h_keeper_listening(dotted[0], 10000),
			     h_keeper_listening(dotted[1], 10000) };
	CU_ASSERT(keepers[0] > 0 && keepers[1] > 0 && keepers[0] != keepers[1]);
	/* Starting the broker of the bus whose name is their prefix (it
	 * takes back what it finds of its own) leaves theirs alone. */
	shmbus_bus *b = h_connect(base);
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	pid_t own = h_keeper_listening(base, 10000);
	CU_ASSERT(own > 0 && own != keepers[0] && own != keepers[1]);
	CU_ASSERT_EQUAL(h_keeper_pid(dotted[0]), keepers[0]);
	CU_ASSERT_EQUAL(h_keeper_pid(dotted[1]), keepers[1]);
	for (int i = 0; i < 2; i++) {
		uint64_t v = 5, got = 0;
		CU_ASSERT_EQUAL(shmbus_pub_send(pubs[i], &v, sizeof(v), NULL), 0);
		CU_ASSERT_EQUAL(shmbus_sub_take(subs[i], &got, sizeof(got), NULL), 0);
		CU_ASSERT_EQUAL(got, 5);
		/* And a new client of theirs still finds its topic. */
		shmbus_sub *again;
		CU_ASSERT_EQUAL(shmbus_sub_open(other[i], "t", NULL, NULL, &again), 0);
		shmbus_sub_close(again);
	}
	shmbus_disconnect(b);
	h_stop_bus(base);
	for (int i = 0; i < 2; i++) {
		shmbus_sub_close(subs[i]);
		shmbus_pub_close(pubs[i]);
		shmbus_disconnect(other[i]);
		h_stop_bus(dotted[i]);
	}
}

/* ------------------------------------------------- a steady sensor stream */

#define STEADY_N 500

struct steady {
	const char *name;
	int go; /* read end: the subscriber is in place */
};

/* A 1 kHz sensor in its own process: message i carries i, sent on a grid
 * of the monotonic clock, as a driver does. */
static int steady_publisher(void *arg, int out)
{
	struct steady *st = arg;
	char c;
	int result = 0;
	shmbus_bus *bus = h_connect(st->name);
	shmbus_pub *pub = NULL;
	if (!bus || read(st->go, &c, 1) != 1 || shmbus_pub_open(bus, "steady", NULL, NULL, &pub))
		result = 1;
	int64_t t = h_now_ns();
	for (uint64_t i = 0; i < STEADY_N && !result; i++) {
		t += 1000000;
		now_sleep_until(t);
		if (shmbus_pub_send(pub, &i, sizeof(i), NULL))
			result = 2;
	}
	shmbus_pub_close(pub);
	shmbus_disconnect(bus);
	return write(out, &result, sizeof(result)) == sizeof(result) ? 0 : 9;
}

/* A subscriber with the default options on a steady 1 kHz stream from
 * another process: it plans its wake-ups (README, "Latency and waiting"),
 * and still gets every message, in order, none lost, without spending a
 * core on it (a few % here; a wait that spun through the gaps would take
 * nearly all of its time). Nothing here depends on how well the plans
 * work on a loaded machine: only a plan that lost a message or spun
 * through a gap could fail it. */
static void test_steady_stream(void)
{
	const char *name = h_bus_name("steady");
	int go[2], fd, result = -1;
	CU_ASSERT_FATAL(pipe(go) == 0);
	struct steady st = {name, go[0]};
	pid_t pid = h_fork(steady_publisher, &st, &fd);
	close(go[0]);
	shmbus_bus *bus = h_connect(name);
	shmbus_pub *pub = NULL;
	shmbus_sub *sub = NULL;
	CU_ASSERT_FATAL(bus != NULL);
	CU_ASSERT_EQUAL(shmbus_pub_open(bus, "steady", NULL, NULL, &pub), 0);
	CU_ASSERT_EQUAL(shmbus_sub_open(bus, "steady", NULL, NULL, &sub), 0);
	CU_ASSERT_EQUAL(write(go[1], "g", 1), 1);
	uint64_t next = 0;
	int64_t first = 0, cpu = 0;
	while (sub && next < STEADY_N) {
		int rc = shmbus_sub_wait(sub, 10 * SEC);
		CU_ASSERT_EQUAL(rc, 0);
		if (rc)
			break;
		uint64_t v;
		while (shmbus_sub_take(sub, &v, sizeof(v), NULL) == 0) {
			CU_ASSERT_EQUAL(v, next);
			next = v + 1;
			if (v == 0) {
				first = h_now_ns();
				cpu = h_thread_cpu_ns();
			}
		}
	}
	CU_ASSERT_EQUAL(next, STEADY_N);
	int64_t wall = h_now_ns() - first, used = h_thread_cpu_ns() - cpu;
	CU_ASSERT_TRUE(used < wall / 4);
	struct shmbus_sub_stats stats;
	shmbus_sub_stats(sub, &stats);
	CU_ASSERT_EQUAL(stats.lost, 0);
	CU_ASSERT_EQUAL(stats.received, STEADY_N);
	CU_ASSERT_TRUE(h_read(fd, &result, sizeof(result), 60000));
	CU_ASSERT_EQUAL(result, 0);
	CU_ASSERT_EQUAL(h_reap(pid, 60000), 0);
	close(fd);
	close(go[1]);
	shmbus_sub_close(sub);
	shmbus_pub_close(pub);
	shmbus_disconnect(bus);
	h_stop_bus(name);
}

static void add(void)
{
	CU_pSuite s = CU_add_suite("api", NULL, NULL);
	CU_add_test(s, "each thread sees its own error text", test_errors_per_thread);
	CU_add_test(s, "options of an older and a newer caller", test_options_abi);
	CU_add_test(s, "waits end on interrupt, also from a signal handler",
		    test_interrupts);
	CU_add_test(s, "event-loop descriptors: subscriber and wait set", test_sub_fd);
	CU_add_test(s, "a publish ends every blocking wait, asleep in another thread",
		    test_prompt_wakes);
	CU_add_test(s, "members leave a wait set with a descriptor, and close",
		    test_fd_set_member_leaves);
	CU_add_test(s, "timeouts too far to add to the clock", test_huge_timeouts);
	CU_add_test(s, "wait sets, with futex_waitv and without", test_waitsets);
	CU_add_test(s, "topic events: created, through fd and wait set", test_topic_watch);
	CU_add_test(s, "topic events across a killed broker, same name and id",
		    test_watch_across_brokers);
	CU_add_test(s, "SHMBUS_START_FIRST: what history holds, the rest lost",
		    test_start_first);
	CU_add_test(s, "ROS-style names; caller-given publish time", test_ros_names_and_times);
	CU_add_test(s, "bus names that are prefixes of each other", test_bus_name_prefixes);
	CU_add_test(s, "a steady 1 kHz stream: every message, in order, and no core spent",
		    test_steady_stream);
}

int main(void)
{
	return h_run("test_api", add);
}
