/*
 * test_bus.c - the bus as users run it: a real broker (auto-started), real
 * publisher and subscriber processes, real kill -9. Each test uses a bus of
 * its own and stops it at the end, checking nothing is left in /dev/shm.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define SEC 1000000000ll

static struct shmbus_topic_options topt(const char *type, uint32_t slots, uint32_t max)
{
	struct shmbus_topic_options o;
	shmbus_topic_options_init(&o);
	o.type_name = type;
	o.slot_count = slots;
	o.max_message_size = max;
	return o;
}

static shmbus_bus *child_connect(const char *bus)
{
	struct shmbus_connect_options o;
	shmbus_bus *b = NULL;
	shmbus_connect_options_init(&o);
	o.timeout_ns = 20 * SEC;
	return shmbus_connect(bus, &o, &b) == 0 ? b : NULL;
}

static uint64_t topic_head(shmbus_bus *bus, const char *topic)
{
	struct shmbus_topic_info ti;
	if (shmbus_topic_inspect(bus, topic, &ti, NULL, 0, NULL, NULL, 0, NULL))
		return UINT64_MAX;
	return ti.next_seq;
}

/* ------------------------------------------------ P publishers x S subs */

#define NPUB 4
#define NSUB 4
#define PER_PUB 20000

struct pmsg {
	uint32_t pub;
	uint32_t len;
	uint64_t counter;
	uint8_t body[112];
};

static uint32_t pmsg_fill(struct pmsg *m, uint32_t pub, uint64_t counter)
{
	m->pub = pub;
	m->counter = counter;
	m->len = (uint32_t)(counter % sizeof(m->body));
	for (uint32_t i = 0; i < m->len; i++)
		m->body[i] = (uint8_t)(counter + i * 7 + pub);
	return (uint32_t)offsetof(struct pmsg, body) + m->len;
}

static bool pmsg_ok(const struct pmsg *m, size_t size)
{
	if (size < offsetof(struct pmsg, body) || m->pub >= NPUB ||
	    m->len != m->counter % sizeof(m->body) || size != offsetof(struct pmsg, body) + m->len)
		return false;
	for (uint32_t i = 0; i < m->len; i++)
		if (m->body[i] != (uint8_t)(m->counter + i * 7 + m->pub))
			return false;
	return true;
}

struct role_arg {
	const char *bus;
	uint32_t id;
	int ctl_fd;  /* parent -> child: go / final head */
	int peer_fd; /* the parent's end of that pipe: the child closes it, so
	                that the parent closing its end is seen as EOF */
};

/* First thing in every child: drop the inherited write end of its pipe. */
static void child_start(const struct role_arg *a)
{
	if (a->peer_fd >= 0)
		close(a->peer_fd);
}

struct sub_result {
	uint64_t received, lost, torn, disorder, next_seq, waits;
	int ok;
};

struct pub_result {
	uint64_t published, skipped, superseded;
	int ok;
};

static int pub_child(void *argp, int out)
{
	struct role_arg *a = argp;
	child_start(a);
	struct pub_result res = { 0 };
	shmbus_bus *bus = child_connect(a->bus);
	shmbus_pub *pub = NULL;
	struct shmbus_topic_options o = topt("test.P", 256, sizeof(struct pmsg));
	if (!bus || shmbus_pub_open(bus, "pxs", &o, NULL, &pub))
		return 1;
	char go;
	if (read(a->ctl_fd, &go, 1) != 1)
		return 2;
	for (uint64_t i = 0; i < PER_PUB; i++) {
		struct pmsg m;
		uint32_t n = pmsg_fill(&m, a->id, i);
		int rc;
		if (i % 2) {
			rc = shmbus_pub_send(pub, &m, n, NULL);
		} else {
			void *buf;
			size_t cap;
			rc = shmbus_pub_loan(pub, &buf, &cap);
			if (rc == 0) {
				memcpy(buf, &m, n);
				rc = shmbus_pub_publish(pub, n, NULL);
			}
		}
		if (rc && rc != SHMBUS_ELAPPED)
			return 3;
	}
	struct shmbus_pub_stats st;
	shmbus_pub_stats(pub, &st);
	res.published = st.published;
	res.skipped = st.skipped;
	res.superseded = st.superseded;
	res.ok = 1;
	shmbus_pub_close(pub);
	shmbus_disconnect(bus);
	return write(out, &res, sizeof(res)) == sizeof(res) ? 0 : 4;
}

static int sub_child(void *argp, int out)
{
	struct role_arg *a = argp;
	child_start(a);
	struct sub_result res = { 0 };
	uint64_t last[NPUB], final_head = UINT64_MAX;
	shmbus_bus *bus = child_connect(a->bus);
	shmbus_sub *sub = NULL;
	struct shmbus_sub_options so;
	shmbus_sub_options_init(&so);
	so.create_if_missing = true;
	struct shmbus_topic_options to = topt("test.P", 256, sizeof(struct pmsg));
	if (!bus || shmbus_sub_open(bus, "pxs", &to, &so, &sub))
		return 1;
	char ready = 'r';
	if (write(out, &ready, 1) != 1)
		return 2;
	for (int i = 0; i < NPUB; i++)
		last[i] = UINT64_MAX;
	int64_t deadline = h_now_ns() + 120 * SEC;
	for (;;) {
		struct pmsg m;
		struct shmbus_msg_info info;
		int rc;
		while ((rc = shmbus_sub_take(sub, &m, sizeof(m), &info)) == 0) {
			if (!pmsg_ok(&m, info.size)) {
				res.torn++;
				continue;
			}
			if (last[m.pub] != UINT64_MAX && m.counter <= last[m.pub])
				res.disorder++;
			last[m.pub] = m.counter;
		}
		if (rc != SHMBUS_EAGAIN)
			return 3;
		struct shmbus_sub_stats st;
		shmbus_sub_stats(sub, &st);
		if (final_head == UINT64_MAX) {
			struct pollfd p = { a->ctl_fd, POLLIN, 0 };
			if (poll(&p, 1, 0) == 1 &&
			    read(a->ctl_fd, &final_head, sizeof(final_head)) != sizeof(final_head))
				return 4;
		}
		if (final_head != UINT64_MAX && st.next_seq >= final_head)
			break;
		if (h_now_ns() > deadline)
			return 5;
		shmbus_sub_wait(sub, SEC / 10);
		res.waits++;
	}
	struct shmbus_sub_stats st;
	shmbus_sub_stats(sub, &st);
	res.received = st.received;
	res.lost = st.lost;
	res.next_seq = st.next_seq;
	res.ok = 1;
	shmbus_sub_close(sub);
	shmbus_disconnect(bus);
	return write(out, &res, sizeof(res)) == sizeof(res) ? 0 : 6;
}

static void test_pub_sub_processes(void)
{
	const char *name = h_bus_name("pxs");
	shmbus_bus *bus = h_connect(name);
	CU_ASSERT_PTR_NOT_NULL_FATAL(bus);
	pid_t pubs[NPUB], subs[NSUB];
	int pub_out[NPUB], sub_out[NSUB], pub_ctl[NPUB], sub_ctl[NSUB];
	struct role_arg pa[NPUB], sa[NSUB];

	for (int i = 0; i < NSUB; i++) {
		int c[2];
		CU_ASSERT_FATAL(pipe(c) == 0);
		sa[i] = (struct role_arg){ name, (uint32_t)i, c[0], c[1] };
		subs[i] = h_fork(sub_child, &sa[i], &sub_out[i]);
		close(c[0]);
		sub_ctl[i] = c[1];
		char r;
		CU_ASSERT_TRUE(h_read(sub_out[i], &r, 1, 30000));
	}
	for (int i = 0; i < NPUB; i++) {
		int c[2];
		CU_ASSERT_FATAL(pipe(c) == 0);
		pa[i] = (struct role_arg){ name, (uint32_t)i, c[0], c[1] };
		pubs[i] = h_fork(pub_child, &pa[i], &pub_out[i]);
		close(c[0]);
		pub_ctl[i] = c[1];
	}
	for (int i = 0; i < NPUB; i++)
		CU_ASSERT_EQUAL(write(pub_ctl[i], "g", 1), 1);
	uint64_t published = 0, accounted = 0;
	for (int i = 0; i < NPUB; i++) {
		struct pub_result r = { 0 };
		CU_ASSERT_TRUE(h_read(pub_out[i], &r, sizeof(r), 120000));
		CU_ASSERT_EQUAL(h_reap(pubs[i], 10000), 0);
		CU_ASSERT_TRUE(r.ok);
		published += r.published;
		accounted += r.published + r.skipped + r.superseded;
		close(pub_out[i]);
		close(pub_ctl[i]);
	}
	uint64_t head = topic_head(bus, "pxs");
	/* Every sequence number handed out was published, skipped or
	 * superseded: nothing unaccounted for. */
	CU_ASSERT_EQUAL(accounted, head);
	CU_ASSERT_TRUE(published >= (uint64_t)NPUB * PER_PUB - (head - published));
	for (int i = 0; i < NSUB; i++)
		CU_ASSERT_EQUAL(write(sub_ctl[i], &head, sizeof(head)), sizeof(head));
	for (int i = 0; i < NSUB; i++) {
		struct sub_result r = { 0 };
		CU_ASSERT_TRUE(h_read(sub_out[i], &r, sizeof(r), 120000));
		CU_ASSERT_EQUAL(h_reap(subs[i], 10000), 0);
		CU_ASSERT_TRUE(r.ok);
		CU_ASSERT_EQUAL(r.torn, 0);
		CU_ASSERT_EQUAL(r.disorder, 0);
		CU_ASSERT_EQUAL(r.next_seq, head);
		CU_ASSERT_EQUAL(r.received + r.lost, head);
		CU_ASSERT_TRUE(r.received > 0);
		printf("\n  subscriber %d: received %llu, lost %llu, of %llu (%llu waits)", i,
		       (unsigned long long)r.received, (unsigned long long)r.lost,
		       (unsigned long long)head, (unsigned long long)r.waits);
		close(sub_out[i]);
		close(sub_ctl[i]);
	}
	shmbus_disconnect(bus);
	h_stop_bus(name);
}

/* ------------------------------------------------------ blocking waits */

static int pingpong_pub(void *argp, int out)
{
	struct role_arg *a = argp;
	child_start(a);
	shmbus_bus *bus = child_connect(a->bus);
	shmbus_pub *pub = NULL;
	struct shmbus_topic_options o = topt("test.U64", 8, 64);
	if (!bus || shmbus_pub_open(bus, "pp", &o, NULL, &pub))
		return 1;
	char c;
	/* One message per byte from the parent, which sends the next byte only
	 * after its blocking wait returned with the previous message. */
	for (uint64_t i = 0; read(a->ctl_fd, &c, 1) == 1; i++)
		if (shmbus_pub_send(pub, &i, sizeof(i), NULL))
			return 2;
	shmbus_pub_close(pub);
	shmbus_disconnect(bus);
	(void)out;
	return 0;
}

static void test_blocking_wait(void)
{
	const char *name = h_bus_name("wait");
	shmbus_bus *bus = h_connect(name);
	CU_ASSERT_PTR_NOT_NULL_FATAL(bus);
	struct shmbus_sub_options so;
	shmbus_sub_options_init(&so);
	so.create_if_missing = true;
	struct shmbus_topic_options to = topt("test.U64", 8, 64);
	shmbus_sub *sub;
	CU_ASSERT_EQUAL_FATAL(shmbus_sub_open(bus, "pp", &to, &so, &sub), 0);
	int c[2], out;
	CU_ASSERT_FATAL(pipe(c) == 0);
	struct role_arg a = { name, 0, c[0], c[1] };
	pid_t pid = h_fork(pingpong_pub, &a, &out);
	close(c[0]);
	for (uint64_t i = 0; i < 300; i++) {
		CU_ASSERT_EQUAL(write(c[1], "n", 1), 1);
		int rc = shmbus_sub_wait(sub, 20 * SEC);
		CU_ASSERT_EQUAL(rc, 0);
		if (rc)
			break;
		uint64_t v;
		struct shmbus_msg_info info;
		CU_ASSERT_EQUAL(shmbus_sub_take(sub, &v, sizeof(v), &info), 0);
		CU_ASSERT_EQUAL(v, i);
		CU_ASSERT_EQUAL(info.lost, 0);
	}
	close(c[1]);
	CU_ASSERT_EQUAL(h_reap(pid, 20000), 0);
	close(out);
	/* Nothing more: the wait times out, after at least its timeout. */
	int64_t t0 = h_now_ns();
	CU_ASSERT_EQUAL(shmbus_sub_wait(sub, SEC / 20), SHMBUS_ETIMEDOUT);
	int64_t took = h_now_ns() - t0;
	CU_ASSERT_TRUE(took >= SEC / 20);
	CU_ASSERT_TRUE(took < 20 * SEC);
	CU_ASSERT_EQUAL(shmbus_sub_wait(sub, 0), SHMBUS_ETIMEDOUT);
	struct shmbus_sub_stats st;
	shmbus_sub_stats(sub, &st);
	CU_ASSERT_EQUAL(st.received, 300);
	CU_ASSERT_EQUAL(st.lost, 0);
	CU_ASSERT_EQUAL(st.last_seq, 299);
	shmbus_sub_close(sub);
	shmbus_disconnect(bus);
	h_stop_bus(name);
}

/* ------------------------------------------------------------ wait set */

static int waitset_pub(void *argp, int out)
{
	struct role_arg *a = argp;
	child_start(a);
	shmbus_bus *bus = child_connect(a->bus);
	shmbus_pub *pub = NULL;
	char c;
	if (!bus || shmbus_pub_open(bus, "ws1", NULL, NULL, &pub))
		return 1;
	if (read(a->ctl_fd, &c, 1) != 1)
		return 2;
	int rc = shmbus_pub_send(pub, "x", 1, NULL);
	shmbus_pub_close(pub);
	shmbus_disconnect(bus);
	(void)out;
	return rc ? 3 : 0;
}

static void test_waitset(void)
{
	const char *name = h_bus_name("ws");
	const char *topics[3] = { "ws0", "ws1", "ws2" };
	shmbus_bus *bus = h_connect(name);
	CU_ASSERT_PTR_NOT_NULL_FATAL(bus);
	shmbus_waitset *ws;
	int rc = shmbus_waitset_create(&ws);
	if (rc == SHMBUS_ENOTSUP) {
		printf("\n  SKIPPED: this kernel has no futex_waitv (Linux >= 5.16)");
		shmbus_disconnect(bus);
		h_stop_bus(name);
		return;
	}
	CU_ASSERT_EQUAL_FATAL(rc, 0);
	shmbus_sub *subs[3];
	for (int i = 0; i < 3; i++) {
		struct shmbus_sub_options so;
		shmbus_sub_options_init(&so);
		so.create_if_missing = true;
		CU_ASSERT_EQUAL_FATAL(shmbus_sub_open(bus, topics[i], NULL, &so, &subs[i]), 0);
		CU_ASSERT_EQUAL(shmbus_waitset_add(ws, subs[i]), 0);
	}
	shmbus_sub *ready[3];
	size_t n = 99;
	CU_ASSERT_EQUAL(shmbus_waitset_wait(ws, SEC / 20, ready, 3, &n), SHMBUS_ETIMEDOUT);
	CU_ASSERT_EQUAL(n, 0);
	int c[2], out;
	CU_ASSERT_FATAL(pipe(c) == 0);
	struct role_arg a = { name, 0, c[0], c[1] };
	pid_t pid = h_fork(waitset_pub, &a, &out);
	close(c[0]);
	CU_ASSERT_EQUAL(write(c[1], "g", 1), 1);
	CU_ASSERT_EQUAL(shmbus_waitset_wait(ws, 20 * SEC, ready, 3, &n), 0);
	CU_ASSERT_EQUAL(n, 1);
	CU_ASSERT_PTR_EQUAL(ready[0], subs[1]);
	char buf[8];
	CU_ASSERT_EQUAL(shmbus_sub_take(subs[1], buf, sizeof(buf), NULL), 0);
	CU_ASSERT_EQUAL(h_reap(pid, 20000), 0);
	close(c[1]);
	close(out);
	CU_ASSERT_EQUAL(shmbus_waitset_remove(ws, subs[1]), 0);
	CU_ASSERT_EQUAL(shmbus_waitset_remove(ws, subs[1]), SHMBUS_EINVAL);
	shmbus_waitset_destroy(ws);
	for (int i = 0; i < 3; i++)
		shmbus_sub_close(subs[i]);
	shmbus_disconnect(bus);
	h_stop_bus(name);
}

/* -------------------------------------------------- auto-start race */

#define RACERS 8

static int racer(void *argp, int out)
{
	struct role_arg *a = argp;
	child_start(a);
	char c;
	/* All racers block here until the parent closes the pipe. */
	if (read(a->ctl_fd, &c, 1) != 0)
		return 1;
	shmbus_bus *bus = child_connect(a->bus);
	if (!bus)
		return 2;
	int pid = shmbus_broker_pid(bus);
	shmbus_disconnect(bus);
	return write(out, &pid, sizeof(pid)) == sizeof(pid) ? 0 : 3;
}

static int brokers_of(const char *bus)
{
	DIR *d = opendir("/proc");
	int n = 0;
	struct dirent *e;
	while (d && (e = readdir(d))) {
		char path[300], cmd[512];
		snprintf(path, sizeof(path), "/proc/%s/cmdline", e->d_name);
		FILE *f = fopen(path, "r");
		if (!f)
			continue;
		size_t k = fread(cmd, 1, sizeof(cmd) - 1, f);
		fclose(f);
		cmd[k] = '\0';
		bool is_broker = strstr(cmd, "shmbusd") != NULL;
		for (size_t i = 0; i + 1 < k; i++)
			if (cmd[i] == '\0')
				cmd[i] = ' ';
		/* Its keeper carries the bus's name too; it is not a broker. */
		if (is_broker && strstr(cmd, bus) && !strstr(cmd, "--keeper"))
			n++;
	}
	if (d)
		closedir(d);
	return n;
}

static void test_autostart_race(void)
{
	const char *name = h_bus_name("race");
	int c[2];
	CU_ASSERT_FATAL(pipe(c) == 0);
	struct role_arg a = { name, 0, c[0], c[1] };
	pid_t pids[RACERS];
	int outs[RACERS];
	for (int i = 0; i < RACERS; i++)
		pids[i] = h_fork(racer, &a, &outs[i]);
	close(c[0]);
	close(c[1]); /* go */
	int broker = 0;
	for (int i = 0; i < RACERS; i++) {
		int pid = 0;
		CU_ASSERT_TRUE(h_read(outs[i], &pid, sizeof(pid), 60000));
		CU_ASSERT_EQUAL(h_reap(pids[i], 10000), 0);
		CU_ASSERT_TRUE(pid > 0);
		if (i == 0)
			broker = pid;
		CU_ASSERT_EQUAL(pid, broker); /* one broker for everybody */
		close(outs[i]);
	}
	/* Brokers that lost the race exit at once; wait for that, bounded. */
	int64_t deadline = h_now_ns() + 20 * SEC;
	while (brokers_of(name) > 1 && h_now_ns() < deadline)
		poll(NULL, 0, 10);
	CU_ASSERT_EQUAL(brokers_of(name), 1);
	h_stop_bus(name);
	CU_ASSERT_EQUAL(brokers_of(name), 0);
}

/* Start bus `name`'s broker (a client connecting does); its pid. */
static int start_broker(const char *name)
{
	shmbus_bus *a = h_connect(name);
	CU_ASSERT_PTR_NOT_NULL_FATAL(a);
	int pid = shmbus_broker_pid(a);
	shmbus_disconnect(a);
	return pid;
}

/* A stopping broker removes its lock file. A broker starting at that
 * moment may have opened the file just before, and lock it just after: it
 * then holds a lock nobody else will ever ask for, while the next broker
 * locks a new file. It must see that and not serve. strace holds the
 * starting broker just before its flock() until we have stopped the old
 * broker and started a new one; killing strace lets it go. */
static void test_lock_file_removed_under_a_starting_broker(void)
{
	const char *name = h_bus_name("relock");
	const char *shmbusd = getenv("SHMBUSD");
	CU_ASSERT_PTR_NOT_NULL_FATAL(shmbusd);
	int old = start_broker(name);

	char err_path[300];
	const char *dir = getenv("SHMBUS_RUNTIME_DIR");
	snprintf(err_path, sizeof(err_path), "%s/%s.late.err", dir ? dir : "/tmp", name);
	pid_t tracer = fork();
	CU_ASSERT_FATAL(tracer >= 0);
	if (tracer == 0) {
		int fd = open(err_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (fd >= 0)
			dup2(fd, 2);
		sigset_t none; /* the test's blocked signals would reach strace */
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		/* Held at flock() for a minute, or until strace is killed. */
		execlp("strace", "strace", "-qq", "-o", "/dev/null", "-e", "trace=flock", "-e",
		       "inject=flock:delay_enter=60000000", shmbusd, "--bus", name, "--foreground",
		       (char *)NULL);
		fprintf(stderr, "cannot run strace (scripts/dev installs it): %s\n", strerror(errno));
		_exit(127);
	}
	/* The late broker is strace's child: wait until it sits in its flock
	 * (the system call /proc shows it in), the lock file open. */
	pid_t late = -1;
	int64_t deadline = h_now_ns() + 20 * SEC;
	while (late < 0 && h_now_ns() < deadline) {
		char path[64];
		snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)tracer, (int)tracer);
		FILE *f = fopen(path, "r");
		int child = 0;
		if (f && fscanf(f, "%d", &child) == 1) {
			snprintf(path, sizeof(path), "/proc/%d/syscall", child);
			FILE *sc = fopen(path, "r");
			long nr = -1;
			if (sc && fscanf(sc, "%ld", &nr) == 1 && nr == SYS_flock)
				late = child;
			if (sc)
				fclose(sc);
		}
		if (f)
			fclose(f);
		if (late < 0)
			poll(NULL, 0, 10);
	}
	CU_ASSERT_FATAL(late > 0);
	CU_ASSERT_EQUAL(h_broker_pid(name), old); /* the late one does not serve yet */

	/* The old broker stops (removing the file the late one opened) and a
	 * new one starts, with a new lock file. */
	CU_ASSERT_EQUAL_FATAL(kill(old, SIGTERM), 0);
	CU_ASSERT_FATAL(h_wait_exit(old, 20000));
	shmbus_bus *c = h_connect(name);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	int now = shmbus_broker_pid(c);
	shmbus_disconnect(c);
	CU_ASSERT(now != old && now != late);

	/* Let the late broker lock the file it opened, which nobody uses any
	 * more: it must find it gone and give way to the new one. */
	kill(tracer, SIGKILL); /* the kernel lets strace's tracee go */
	CU_ASSERT_TRUE(h_wait_exit(tracer, 20000));
	waitpid(tracer, NULL, 0);
	bool gave_way = h_wait_exit(late, 20000);
	CU_ASSERT_TRUE(gave_way);
	if (!gave_way) /* two brokers serve: stop this one, keep the rest going */
		kill(late, SIGKILL);
	char msg[512] = "";
	FILE *f = fopen(err_path, "r");
	size_t k = f ? fread(msg, 1, sizeof(msg) - 1, f) : 0;
	msg[k] = '\0';
	if (f)
		fclose(f);
	CU_ASSERT_PTR_NOT_NULL(strstr(msg, "a broker already serves"));
	CU_ASSERT_EQUAL(brokers_of(name), 1);
	CU_ASSERT_EQUAL(h_broker_pid(name), now);
	unlink(err_path);
	h_stop_bus(name);
}

/* A broker that finds the bus taken names the broker that holds it, even
 * before that one has written its pid file (it does once it listens):
 * here the file is gone, as it is while a broker starts. */
static void test_second_broker_names_the_first(void)
{
	const char *name = h_bus_name("second");
	const char *shmbusd = getenv("SHMBUSD");
	const char *dir = getenv("SHMBUS_RUNTIME_DIR");
	CU_ASSERT_PTR_NOT_NULL_FATAL(shmbusd);
	CU_ASSERT_PTR_NOT_NULL_FATAL(dir);
	int first = start_broker(name);
	char pid_path[300];
	snprintf(pid_path, sizeof(pid_path), "%s/%s.pid", dir, name);
	CU_ASSERT_EQUAL(unlink(pid_path), 0);

	const char *argv[] = { shmbusd, "--bus", name, "--foreground", NULL };
	int out = -1;
	pid_t second = h_spawn(argv, &out, NULL);
	CU_ASSERT_FATAL(second > 0);
	char msg[512], want[64];
	h_read_all(out, msg, sizeof(msg), 20000);
	close(out);
	CU_ASSERT_NOT_EQUAL(h_reap(second, 20000), 0);
	snprintf(want, sizeof(want), "(pid %d)", first);
	CU_ASSERT_PTR_NOT_NULL(strstr(msg, "a broker already serves"));
	CU_ASSERT_PTR_NOT_NULL(strstr(msg, want));
	if (!strstr(msg, want))
		fprintf(stderr, "want %s in: %s\n", want, msg);
	CU_ASSERT_EQUAL(h_broker_pid(name), first);
	h_stop_bus(name);
}

/* ------------------------------------------- isolation, types, sizes */

static void test_two_buses(void)
{
	const char *na = h_bus_name("busa"), *nb = h_bus_name("busb");
	shmbus_bus *a = h_connect(na), *b = h_connect(nb);
	CU_ASSERT_FATAL(a && b);
	CU_ASSERT_NOT_EQUAL(shmbus_broker_pid(a), shmbus_broker_pid(b));
	struct shmbus_topic_options oa = topt("a.T", 8, 64), ob = topt("b.T", 8, 64);
	shmbus_pub *pa, *pb;
	shmbus_sub *sa, *sb;
	CU_ASSERT_EQUAL_FATAL(shmbus_pub_open(a, "x", &oa, NULL, &pa), 0);
	struct shmbus_sub_options so;
	shmbus_sub_options_init(&so);
	CU_ASSERT_EQUAL(shmbus_sub_open(b, "x", NULL, &so, &sb), SHMBUS_ENOTOPIC);
	CU_ASSERT_PTR_NOT_NULL(strstr(shmbus_errmsg(), "does not exist"));
	CU_ASSERT_EQUAL_FATAL(shmbus_pub_open(b, "x", &ob, NULL, &pb), 0); /* its own type */
	CU_ASSERT_EQUAL_FATAL(shmbus_sub_open(a, "x", NULL, &so, &sa), 0);
	CU_ASSERT_EQUAL_FATAL(shmbus_sub_open(b, "x", NULL, &so, &sb), 0);
	CU_ASSERT_STRING_EQUAL(shmbus_sub_type_name(sa), "a.T");
	CU_ASSERT_STRING_EQUAL(shmbus_sub_type_name(sb), "b.T");
	CU_ASSERT_EQUAL(shmbus_pub_send(pa, "A", 1, NULL), 0);
	char buf[8];
	CU_ASSERT_EQUAL(shmbus_sub_take(sb, buf, sizeof(buf), NULL), SHMBUS_EAGAIN);
	CU_ASSERT_EQUAL(shmbus_sub_take(sa, buf, sizeof(buf), NULL), 0);
	CU_ASSERT_EQUAL(buf[0], 'A');
	shmbus_sub_close(sa);
	shmbus_sub_close(sb);
	shmbus_pub_close(pa);
	shmbus_pub_close(pb);
	shmbus_disconnect(a);
	shmbus_disconnect(b);
	h_stop_bus(na);
	h_stop_bus(nb);
}

static void test_type_and_size_errors(void)
{
	const char *name = h_bus_name("types");
	shmbus_bus *bus = h_connect(name);
	CU_ASSERT_PTR_NOT_NULL_FATAL(bus);
	static const uint8_t schema[] = { 1, 2, 3, 4 };
	struct shmbus_topic_options o = topt("shmbus.msgs.Imu", 16, 128);
	o.schema = schema;
	o.schema_size = sizeof(schema);
	shmbus_pub *pub, *other;
	CU_ASSERT_EQUAL_FATAL(shmbus_pub_open(bus, "imu", &o, NULL, &pub), 0);
	struct shmbus_topic_options wrong = topt("shmbus.msgs.Image", 16, 128);
	CU_ASSERT_EQUAL(shmbus_pub_open(bus, "imu", &wrong, NULL, &other), SHMBUS_ETYPE);
	CU_ASSERT_PTR_NOT_NULL(strstr(shmbus_errmsg(), "shmbus.msgs.Imu"));
	CU_ASSERT_PTR_NOT_NULL(strstr(shmbus_errmsg(), "shmbus.msgs.Image"));
	struct shmbus_topic_options want;
	shmbus_topic_options_init(&want);
	want.type_name = "shmbus.msgs.Image";
	shmbus_sub *sub;
	CU_ASSERT_EQUAL(shmbus_sub_open(bus, "imu", &want, NULL, &sub), SHMBUS_ETYPE);
	/* The same type with an evolved schema (a field added): allowed, and
	 * the topic shows it has seen two schema versions. */
	static const uint8_t schema2[] = { 1, 2, 3, 4, 5 };
	struct shmbus_topic_options evolved = o;
	evolved.schema = schema2;
	evolved.schema_size = sizeof(schema2);
	shmbus_pub *p2, *p3;
	CU_ASSERT_EQUAL_FATAL(shmbus_pub_open(bus, "imu", &evolved, NULL, &p2), 0);
	CU_ASSERT_EQUAL_FATAL(shmbus_pub_open(bus, "imu", &o, NULL, &p3), 0);
	struct shmbus_topic_info ti;
	CU_ASSERT_EQUAL(shmbus_topic_inspect(bus, "imu", &ti, NULL, 0, NULL, NULL, 0, NULL), 0);
	CU_ASSERT_EQUAL(ti.schema_versions, 2);
	CU_ASSERT_EQUAL(ti.publishers, 3);
	shmbus_pub_close(p3);
	shmbus_pub_close(p2);
	/* A publisher wanting bigger messages than the topic holds. */
	struct shmbus_topic_options big = topt("shmbus.msgs.Imu", 16, 4096);
	CU_ASSERT_EQUAL(shmbus_pub_open(bus, "imu", &big, NULL, &other), SHMBUS_ELAYOUT);
	CU_ASSERT_PTR_NOT_NULL(strstr(shmbus_errmsg(), "128"));
	/* Any type accepted when none is given; schema as stored. */
	CU_ASSERT_EQUAL_FATAL(shmbus_sub_open(bus, "imu", NULL, NULL, &sub), 0);
	size_t n;
	const uint8_t *s = shmbus_sub_schema(sub, &n);
	CU_ASSERT_EQUAL(n, sizeof(schema));
	CU_ASSERT_EQUAL(memcmp(s, schema, n), 0);
	/* Oversize: an error, nothing published, nothing truncated. */
	uint8_t huge[129] = { 0 };
	CU_ASSERT_EQUAL(shmbus_pub_send(pub, huge, sizeof(huge), NULL), SHMBUS_EMSGSIZE);
	CU_ASSERT_EQUAL(topic_head(bus, "imu"), 0);
	CU_ASSERT_EQUAL(shmbus_pub_send(pub, huge, 128, NULL), 0);
	CU_ASSERT_EQUAL(shmbus_sub_take(sub, huge, sizeof(huge), NULL), 0);
	/* Bad names. */
	CU_ASSERT_EQUAL(shmbus_pub_open(bus, "/bad//name", &o, NULL, &other), SHMBUS_ENAME);
	shmbus_bus *nb;
	CU_ASSERT_EQUAL(shmbus_connect("bad name!", NULL, &nb), SHMBUS_ENAME);
	shmbus_sub_close(sub);
	shmbus_pub_close(pub);
	shmbus_disconnect(bus);
	h_stop_bus(name);
}

/* ------------------------------------------------------ broker crashes */

static void test_broker_killed_and_restarted(void)
{
	const char *name = h_bus_name("restart");
	shmbus_bus *bus = h_connect(name);
	CU_ASSERT_PTR_NOT_NULL_FATAL(bus);
	struct shmbus_topic_options o = topt("test.U64", 16, 64);
	shmbus_pub *pub;
	shmbus_sub *sub;
	CU_ASSERT_EQUAL_FATAL(shmbus_pub_open(bus, "t", &o, NULL, &pub), 0);
	CU_ASSERT_EQUAL_FATAL(shmbus_sub_open(bus, "t", NULL, NULL, &sub), 0);
	pid_t broker = shmbus_broker_pid(bus);
	CU_ASSERT_EQUAL(kill(broker, SIGKILL), 0);
	CU_ASSERT_TRUE(h_wait_exit(broker, 20000));
	/* Without a broker, data keeps flowing. */
	for (uint64_t i = 0; i < 10; i++)
		CU_ASSERT_EQUAL(shmbus_pub_send(pub, &i, sizeof(i), NULL), 0);
	uint64_t v, k = 0;
	while (shmbus_sub_take(sub, &v, sizeof(v), NULL) == 0)
		CU_ASSERT_EQUAL(v, k++);
	CU_ASSERT_EQUAL(k, 10);
	/* A new client starts a new broker, which takes the topic back:
	 * same type, sequence numbers continue. */
	shmbus_bus *bus2 = h_connect(name);
	CU_ASSERT_PTR_NOT_NULL_FATAL(bus2);
	CU_ASSERT_NOT_EQUAL(shmbus_broker_pid(bus2), broker);
	CU_ASSERT_EQUAL(topic_head(bus2, "t"), 10);
	shmbus_pub *pub2;
	struct shmbus_topic_options wrong = topt("other.T", 16, 64);
	CU_ASSERT_EQUAL(shmbus_pub_open(bus2, "t", &wrong, NULL, &pub2), SHMBUS_ETYPE);
	CU_ASSERT_EQUAL_FATAL(shmbus_pub_open(bus2, "t", &o, NULL, &pub2), 0);
	uint64_t seq, x = 77;
	CU_ASSERT_EQUAL(shmbus_pub_send(pub2, &x, sizeof(x), &seq), 0);
	CU_ASSERT_EQUAL(seq, 10);
	CU_ASSERT_EQUAL(shmbus_sub_take(sub, &v, sizeof(v), NULL), 0);
	CU_ASSERT_EQUAL(v, 77);
	/* The old connection reconnects by itself for its next request. */
	shmbus_sub *sub2;
	CU_ASSERT_EQUAL(shmbus_sub_open(bus, "t", NULL, NULL, &sub2), 0);
	shmbus_sub_close(sub2);
	shmbus_pub_close(pub2);
	shmbus_pub_close(pub);
	shmbus_sub_close(sub);
	shmbus_disconnect(bus2);
	shmbus_disconnect(bus);
	h_stop_bus(name);
}

/* --------------------------------------------- clients that crash */

static int subscriber_then_hang(void *argp, int out)
{
	struct role_arg *a = argp;
	child_start(a);
	shmbus_bus *bus = child_connect(a->bus);
	shmbus_sub *sub;
	if (!bus || shmbus_sub_open(bus, "crash", NULL, NULL, &sub))
		return 1;
	char r = 'r';
	if (write(out, &r, 1) != 1)
		return 2;
	pause(); /* until killed */
	return 0;
}

static int loan_then_hang(void *argp, int out)
{
	struct role_arg *a = argp;
	child_start(a);
	shmbus_bus *bus = child_connect(a->bus);
	shmbus_pub *pub;
	void *buf;
	size_t cap;
	if (!bus || shmbus_pub_open(bus, "crash", NULL, NULL, &pub) ||
	    shmbus_pub_loan(pub, &buf, &cap))
		return 1;
	char r = 'r';
	if (write(out, &r, 1) != 1)
		return 2;
	pause(); /* killed while holding the loan */
	return 0;
}

static uint32_t subscribers_of(shmbus_bus *bus, const char *topic)
{
	struct shmbus_topic_info ti;
	return shmbus_topic_inspect(bus, topic, &ti, NULL, 0, NULL, NULL, 0, NULL) ? 999
										     : ti.subscribers;
}

static void test_client_crashes(void)
{
	const char *name = h_bus_name("crash");
	shmbus_bus *bus = h_connect(name);
	CU_ASSERT_PTR_NOT_NULL_FATAL(bus);
	shmbus_pub *pub;
	shmbus_sub *sub;
	CU_ASSERT_EQUAL_FATAL(shmbus_pub_open(bus, "crash", NULL, NULL, &pub), 0);
	CU_ASSERT_EQUAL_FATAL(shmbus_sub_open(bus, "crash", NULL, NULL, &sub), 0);
	struct role_arg a = { name, 0, -1, -1 };
	int out;
	char r;

	/* A subscriber killed: the broker frees its line. */
	pid_t pid = h_fork(subscriber_then_hang, &a, &out);
	CU_ASSERT_TRUE(h_read(out, &r, 1, 30000));
	CU_ASSERT_EQUAL(subscribers_of(bus, "crash"), 2);
	kill(pid, SIGKILL);
	CU_ASSERT_EQUAL(h_reap(pid, 20000), 128 + SIGKILL);
	close(out);
	int64_t deadline = h_now_ns() + 20 * SEC;
	while (subscribers_of(bus, "crash") != 1 && h_now_ns() < deadline)
		poll(NULL, 0, 5);
	CU_ASSERT_EQUAL(subscribers_of(bus, "crash"), 1);

	/* A publisher killed holding a loan: the subscriber is not stalled
	 * behind the abandoned sequence number. */
	pid = h_fork(loan_then_hang, &a, &out);
	CU_ASSERT_TRUE(h_read(out, &r, 1, 30000));
	CU_ASSERT_EQUAL(shmbus_pub_send(pub, "after", 6, NULL), 0);
	kill(pid, SIGKILL);
	CU_ASSERT_EQUAL(h_reap(pid, 20000), 128 + SIGKILL);
	close(out);
	CU_ASSERT_EQUAL(shmbus_sub_wait(sub, 20 * SEC), 0);
	char buf[16];
	struct shmbus_msg_info info;
	int rc;
	deadline = h_now_ns() + 20 * SEC;
	while ((rc = shmbus_sub_take(sub, buf, sizeof(buf), &info)) == SHMBUS_EAGAIN &&
	       h_now_ns() < deadline)
		shmbus_sub_wait(sub, SEC);
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT_STRING_EQUAL(buf, "after");
	CU_ASSERT_EQUAL(info.lost, 1);
	shmbus_sub_close(sub);
	shmbus_pub_close(pub);
	shmbus_disconnect(bus);
	h_stop_bus(name);
}

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZER_OWNS_SEGV 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SANITIZER_OWNS_SEGV 1
#endif
#endif

static int write_into_view(void *argp, int out)
{
	struct role_arg *a = argp;
	child_start(a);
	shmbus_bus *bus = child_connect(a->bus);
	shmbus_sub *sub;
	struct shmbus_sub_options so;
	shmbus_sub_options_init(&so);
	so.start = SHMBUS_START_LAST;
	so.last_n = 1;
	if (!bus || shmbus_sub_open(bus, "ro", NULL, &so, &sub))
		return 1;
	struct shmbus_view v;
	if (shmbus_sub_view(sub, &v))
		return 2;
	/* Let the kernel write into the view: EFAULT proves the page is
	 * mapped without write permission (no signal involved). */
	int p[2];
	if (pipe(p) || write(p[1], "X", 1) != 1)
		return 3;
	if (read(p[0], (void *)(uintptr_t)v.data, 1) != -1 || errno != EFAULT)
		return 4;
	char r = 'r';
	if (write(out, &r, 1) != 1)
		return 5;
#ifdef SANITIZER_OWNS_SEGV
	return 0; /* the sanitizer would turn the fault into an abort */
#else
	((volatile char *)(uintptr_t)v.data)[0] = 'X'; /* must fault */
	return 6;
#endif
}

static void test_subscriber_cannot_write(void)
{
	const char *name = h_bus_name("ro");
	shmbus_bus *bus = h_connect(name);
	CU_ASSERT_PTR_NOT_NULL_FATAL(bus);
	shmbus_pub *pub;
	CU_ASSERT_EQUAL_FATAL(shmbus_pub_open(bus, "ro", NULL, NULL, &pub), 0);
	CU_ASSERT_EQUAL(shmbus_pub_send(pub, "intact", 7, NULL), 0);
	struct role_arg a = { name, 0, -1, -1 };
	int out;
	char r;
	pid_t pid = h_fork(write_into_view, &a, &out);
	CU_ASSERT_TRUE(h_read(out, &r, 1, 30000));
#ifdef SANITIZER_OWNS_SEGV
	CU_ASSERT_EQUAL(h_reap(pid, 20000), 0);
#else
	CU_ASSERT_EQUAL(h_reap(pid, 20000), 128 + SIGSEGV);
#endif
	close(out);
	struct shmbus_sub_options so;
	shmbus_sub_options_init(&so);
	so.start = SHMBUS_START_LAST;
	so.last_n = 1;
	shmbus_sub *sub;
	char buf[16];
	CU_ASSERT_EQUAL_FATAL(shmbus_sub_open(bus, "ro", NULL, &so, &sub), 0);
	CU_ASSERT_EQUAL(shmbus_sub_take(sub, buf, sizeof(buf), NULL), 0);
	CU_ASSERT_STRING_EQUAL(buf, "intact");
	shmbus_sub_close(sub);
	shmbus_pub_close(pub);
	shmbus_disconnect(bus);
	h_stop_bus(name);
}

static void test_no_broker_no_autostart(void)
{
	struct shmbus_connect_options o;
	shmbus_bus *bus = NULL;
	shmbus_connect_options_init(&o);
	o.autostart = false;
	CU_ASSERT_EQUAL(shmbus_connect(h_bus_name("none"), &o, &bus), SHMBUS_ENOBROKER);
	CU_ASSERT_PTR_NOT_NULL(strstr(shmbus_errmsg(), "no broker"));
	/* An explicit broker path that is not an executable is a clear error
	 * naming it, whatever else is installed or on $SHMBUSD and $PATH:
	 * nothing else is tried in its place. */
	o.autostart = true;
	o.broker_path = "/nonexistent/shmbusd";
	o.timeout_ns = 20 * SEC;
	CU_ASSERT_EQUAL(shmbus_connect(h_bus_name("none2"), &o, &bus), SHMBUS_ENOBROKER);
	CU_ASSERT_PTR_NULL(bus);
	CU_ASSERT_PTR_NOT_NULL(strstr(shmbus_errmsg(), "/nonexistent/shmbusd"));
	CU_ASSERT_EQUAL(h_keeper_pid(h_bus_name("none2")), -1);
	/* Without one, and none to be found, the error says where it looked. */
	char *saved = getenv("SHMBUSD") ? strdup(getenv("SHMBUSD")) : NULL;
	char *path = getenv("PATH") ? strdup(getenv("PATH")) : NULL;
	CU_ASSERT_PTR_NOT_NULL_FATAL(saved);
	unsetenv("SHMBUSD");
	setenv("PATH", "/nonexistent", 1);
	o.broker_path = NULL;
	int rc = shmbus_connect(h_bus_name("none3"), &o, &bus);
	if (access("/usr/local/bin/shmbusd", X_OK) != 0) {
		CU_ASSERT_EQUAL(rc, SHMBUS_ENOBROKER);
		CU_ASSERT_PTR_NOT_NULL(strstr(shmbus_errmsg(), "SHMBUSD"));
	} else if (rc == 0) {
		/* An installed broker is the documented last resort. */
		shmbus_disconnect(bus);
		h_stop_bus(h_bus_name("none3"));
	}
	/* An explicit broker path is used as given. */
	o.broker_path = saved;
	shmbus_bus *byp = NULL;
	CU_ASSERT_EQUAL(shmbus_connect(h_bus_name("bypath"), &o, &byp), 0);
	if (byp) {
		CU_ASSERT(shmbus_broker_pid(byp) > 0);
		shmbus_disconnect(byp);
		h_stop_bus(h_bus_name("bypath"));
	}
	setenv("SHMBUSD", saved, 1);
	if (path)
		setenv("PATH", path, 1);
	free(saved);
	free(path);
}

static void add(void)
{
	CU_pSuite s = CU_add_suite("bus", NULL, NULL);
	CU_add_test(s, "4 publishers x 4 subscribers, in processes", test_pub_sub_processes);
	CU_add_test(s, "blocking wait wakes per message, times out", test_blocking_wait);
	CU_add_test(s, "wait set over several topics", test_waitset);
	CU_add_test(s, "broker auto-start raced by 8 clients", test_autostart_race);
	CU_add_test(s, "a broker that locked a removed lock file gives way",
		    test_lock_file_removed_under_a_starting_broker);
	CU_add_test(s, "a second broker names the one that serves",
		    test_second_broker_names_the_first);
	CU_add_test(s, "two buses side by side", test_two_buses);
	CU_add_test(s, "type mismatch, layout, oversize, names", test_type_and_size_errors);
	CU_add_test(s, "broker kill -9 and restart", test_broker_killed_and_restarted);
	CU_add_test(s, "subscriber and loaning publisher kill -9", test_client_crashes);
	CU_add_test(s, "subscriber cannot write the data", test_subscriber_cannot_write);
	CU_add_test(s, "no broker: clear errors", test_no_broker_no_autostart);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	return h_run("test_bus", add);
}
