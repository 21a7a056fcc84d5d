/*
 * adv.c - shared plumbing of the adversary tests (see adv.h).
 */
#include "adv.h"

#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct h_user adv_other;
bool adv_have_other;
static bool skipped;
static char dir[128];

const char *adv_dir(void)
{
	return dir;
}

int adv_setup(const char *tag, bool need_other)
{
	/* In /tmp, not in the build tree: the second user must reach the
	 * socket (a broker with a policy opens the directory to 0711). */
	snprintf(dir, sizeof(dir), "/tmp/shmbus-adv-%s-%d", tag, (int)getpid());
	if (mkdir(dir, 0700) && errno != EEXIST)
		return 1;
	setenv("SHMBUS_RUNTIME_DIR", dir, 1);
	if (need_other)
		adv_have_other = h_user_create(&adv_other);
	return 0;
}

/* Whether pid is a broker (not a reused pid of something else). */
static bool is_broker(pid_t pid)
{
	char path[64], comm[32] = "";
	snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return false;
	bool ok = fgets(comm, sizeof(comm), f) && strncmp(comm, "shmbusd", 7) == 0;
	fclose(f);
	return ok;
}

int adv_teardown(void)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	while (d && (e = readdir(d))) {
		size_t n = strlen(e->d_name);
		if (n < 5 || strcmp(e->d_name + n - 4, ".pid") != 0)
			continue;
		char path[512];
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		FILE *f = fopen(path, "r");
		int pid = 0;
		if (f) {
			if (fscanf(f, "%d", &pid) != 1)
				pid = 0;
			fclose(f);
		}
		if (pid > 0 && is_broker(pid) && kill(pid, SIGTERM) == 0)
			h_wait_exit(pid, 10000);
	}
	if (d)
		closedir(d);
	if (adv_have_other)
		h_user_remove(&adv_other);
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : 1;
}

bool adv_skip_without_other(void)
{
	if (adv_have_other)
		return false;
	printf("\n  SKIPPED: needs root and useradd to create a second user");
	skipped = true;
	return true;
}

int adv_exit(int rc)
{
	return rc == 0 && skipped ? 77 : rc;
}

int adv_start_broker(const char *bus, const char *policy, int nofile, int mask, char *out,
		     size_t cap)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/%s.policy", dir, bus);
	if (policy) {
		FILE *f = fopen(path, "w");
		if (!f)
			return -1;
		fputs(policy, f);
		fclose(f);
	}
	int fd;
	fflush(NULL);
	int p[2];
	if (pipe(p) < 0)
		return -1;
	pid_t pid = fork();
	if (pid == 0) {
		close(p[0]);
		dup2(p[1], 1);
		dup2(p[1], 2);
		close(p[1]);
		if (nofile > 0) {
			struct rlimit rl = { (rlim_t)nofile, (rlim_t)nofile };
			setrlimit(RLIMIT_NOFILE, &rl);
		}
		if (mask >= 0)
			umask((mode_t)mask);
		const char *bin = getenv("SHMBUSD");
		if (policy)
			execl(bin, "shmbusd", "--bus", bus, "--policy", path, (char *)NULL);
		else
			execl(bin, "shmbusd", "--bus", bus, (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	fd = p[0];
	/* It returns once the broker serves; the broker keeps no copy of
	 * the pipe (its output goes to its log). */
	h_read_all(fd, out, cap, 30000);
	close(fd);
	return h_reap(pid, 30000);
}

int adv_policy_bus(const char *bus, const char *text)
{
	char policy[1024] = "", out[2048];
	for (const char *p = text; *p;) {
		const char *u = strstr(p, "USER");
		size_t n = u ? (size_t)(u - p) : strlen(p);
		size_t at = strlen(policy);
		snprintf(policy + at, sizeof(policy) - at, "%.*s%s", (int)n, p,
			 u ? adv_other.name : "");
		p += n + (u ? 4 : 0);
	}
	int rc = adv_start_broker(bus, policy, 0, -1, out, sizeof(out));
	if (rc)
		printf("\n  shmbusd refused to start: %s", out);
	return rc;
}

void adv_kill_broker(const char *bus)
{
	pid_t pid = h_broker_pid(bus);
	CU_ASSERT_TRUE_FATAL(pid > 0);
	kill(pid, SIGKILL);
	CU_ASSERT_TRUE(h_wait_exit(pid, 20000));
}

void adv_stop_bus(const char *bus)
{
	int rc;
	shmbus_bus *b = adv_connect(bus, NULL, &rc);
	if (b)
		shmbus_disconnect(b);
	h_stop_bus(bus);
}

shmbus_bus *adv_connect(const char *bus, const char *key_file, int *rc)
{
	struct shmbus_connect_options o;
	shmbus_bus *b = NULL;
	shmbus_connect_options_init(&o);
	o.key_file = key_file;
	o.timeout_ns = 20 * SEC;
	*rc = shmbus_connect(bus, &o, &b);
	return b;
}

struct as_arg {
	const struct h_user *as;
	int (*fn)(void *arg, int out);
	void *arg;
};

static int run_as(void *argp, int out)
{
	struct as_arg *a = argp;
	/* What the test process had mapped is not this child's to use. */
	hostile_unmap_all();
	if (a->as && !h_become(a->as))
		return 126;
	return a->fn(a->arg, out);
}

pid_t adv_fork_as(const struct h_user *as, int (*fn)(void *arg, int out), void *arg, int *out)
{
	struct as_arg a = { as, fn, arg };
	return h_fork(run_as, &a, out);
}

bool adv_wait_subscribers(const char *bus, const char *topic, unsigned n, int timeout_ms)
{
	int rc;
	shmbus_bus *b = adv_connect(bus, NULL, &rc);
	if (!b)
		return false;
	int64_t deadline = h_now_ns() + (int64_t)timeout_ms * 1000000;
	bool ok = false;
	while (!ok && h_now_ns() < deadline) {
		struct shmbus_topic_info ti;
		ok = shmbus_topic_inspect(b, topic, &ti, NULL, 0, NULL, NULL, 0, NULL) == 0 &&
		     ti.subscribers >= n;
		if (!ok)
			nanosleep(&(struct timespec){ 0, 10000000 }, NULL);
	}
	shmbus_disconnect(b);
	return ok;
}

int adv_send(shmbus_pub *pub, const char *text)
{
	return shmbus_pub_send(pub, text, strlen(text) + 1, NULL);
}

/* ---------------------------------------------------------------- holder */

static int holder_main(void *argp, int out)
{
	const struct adv_holder *h = argp;
	int rc;
	shmbus_bus *bus = adv_connect(h->bus, h->key_file, &rc);
	shmbus_pub *pub;
	if (!bus || shmbus_pub_open(bus, h->topic, h->topic_opts, NULL, &pub))
		return 1;
	for (int i = 0; i < h->publish; i++) {
		char m[32];
		snprintf(m, sizeof(m), "m-%d", i);
		if (adv_send(pub, m))
			return 2;
	}
	void *buf;
	size_t cap;
	if (shmbus_pub_loan(pub, &buf, &cap) || write(out, "l", 1) != 1)
		return 3;
	for (;;)
		pause();
}

pid_t adv_holder_start(const struct adv_holder *h)
{
	int out;
	char c;
	pid_t pid = h_fork(holder_main, (void *)h, &out);
	bool ok = h_read(out, &c, 1, 30000);
	close(out);
	if (!ok) {
		fprintf(stderr, "\n  loan holder exited: %d", h_reap(pid, 5000));
		return -1;
	}
	return pid;
}

/* ---------------------------------------------------------------- victim */

/* One delivered message: bookkeeping. True if it was "stop". */
static bool victim_saw(const struct adv_victim *v, struct adv_report *r,
		       const struct shmbus_msg_info *info, const void *data, uint64_t *last_seq)
{
	if (*last_seq != UINT64_MAX && info->seq <= *last_seq)
		r->dups++;
	*last_seq = info->seq;
	int64_t lat = now_real_ns() - info->publish_ns;
	if (lat > r->max_latency_ns)
		r->max_latency_ns = lat;
	size_t k = info->size < sizeof(r->last) - 1 ? info->size : sizeof(r->last) - 1;
	memcpy(r->last, data, k);
	r->last[k] = '\0';
	bool stop = strcmp(r->last, "stop") == 0;
	if (v->expect && !stop && strncmp(r->last, v->expect, strlen(v->expect)) != 0)
		r->foreign++;
	return stop;
}

/* Take (or view) what there is. True when "stop" came. */
static bool victim_drain(struct adv_victim *v, shmbus_sub *sub, struct adv_report *r, uint8_t **buf,
			 size_t *cap, uint64_t *last_seq)
{
	bool stop = false;
	for (;;) {
		struct shmbus_msg_info info;
		if (v->view) {
			struct shmbus_view view;
			if (shmbus_sub_view(sub, &view))
				break;
			/* A consumer reads what it is given: every byte. */
			const volatile uint8_t *p = view.data;
			uint8_t sum = 0;
			for (size_t i = 0; i < view.info.size; i++)
				sum ^= p[i];
			(void)sum;
			stop |= victim_saw(v, r, &view.info, view.data, last_seq);
			shmbus_sub_release(sub, &view);
			continue;
		}
		int rc = shmbus_sub_take(sub, *buf, *cap, &info);
		if (rc == SHMBUS_EMSGSIZE) {
			/* What a subscriber does: grow to the size asked, within
			 * the topic's maximum. */
			if (info.size > shmbus_sub_max_message_size(sub)) {
				r->oversize++;
				return true;
			}
			uint8_t *nb = realloc(*buf, info.size);
			if (!nb)
				return true;
			*buf = nb;
			*cap = info.size;
			continue;
		}
		if (rc)
			break;
		stop |= victim_saw(v, r, &info, *buf, last_seq);
	}
	return stop;
}

static int victim_main(void *argp, int out)
{
	struct adv_victim *v = argp;
	struct adv_report r;
	memset(&r, 0, sizeof(r));
	close(v->peer); /* so that the test's end reads as EOF here */
	int rc;
	shmbus_bus *bus = adv_connect(v->bus, v->key_file, &rc);
	shmbus_sub *sub = NULL;
	if (bus) {
		struct shmbus_sub_options so;
		shmbus_sub_options_init(&so);
		so.stall_timeout_ns = v->stall_ns;
		if (v->start_last) {
			so.start = SHMBUS_START_LAST;
			so.last_n = v->last_n;
		}
		rc = shmbus_sub_open(bus, v->topic, NULL, &so, &sub);
	}
	r.open_rc = rc;
	if (rc) {
		if (write(out, "e", 1) != 1 || write(out, &r, sizeof(r)) != sizeof(r))
			return 2;
		return 1;
	}
	if (write(out, "r", 1) != 1)
		return 2;
	size_t cap = shmbus_sub_max_message_size(sub);
	uint8_t *buf = malloc(cap);
	uint64_t last_seq = UINT64_MAX;
	for (bool stop = false; !stop && buf;) {
		shmbus_sub_wait(sub, v->forever ? -1 : SEC / 50);
		stop = victim_drain(v, sub, &r, &buf, &cap, &last_seq);
		struct shmbus_sub_stats st;
		shmbus_sub_stats(sub, &st);
		if (st.lost && !r.first_loss_ns)
			r.first_loss_ns = h_now_ns();
		r.received = st.received;
		r.lost = st.lost;
		r.rejected = st.rejected;
		struct pollfd p = { v->ctl, POLLIN, 0 };
		char c;
		if (!v->forever && poll(&p, 1, 0) == 1 && read(v->ctl, &c, 1) == 1) {
			/* Asked to report: what was published before the request is
			 * there to take; take it first. */
			victim_drain(v, sub, &r, &buf, &cap, &last_seq);
			shmbus_sub_stats(sub, &st);
			r.received = st.received;
			r.lost = st.lost;
			r.rejected = st.rejected;
			stop = true;
		}
	}
	free(buf);
	if (write(out, &r, sizeof(r)) != sizeof(r))
		return 3;
	/* Stay subscribed (for `shmbus info`) until let go. */
	char c;
	while (read(v->ctl, &c, 1) > 0 && c != 'q')
		;
	shmbus_sub_close(sub);
	shmbus_disconnect(bus);
	return 0;
}

bool adv_victim_start(struct adv_victim *v, struct adv_report *r)
{
	int c[2];
	if (pipe(c) < 0)
		return false;
	struct adv_victim child = *v;
	child.ctl = c[0];
	child.peer = c[1];
	v->pid = adv_fork_as(v->as, victim_main, &child, &v->out);
	close(c[0]);
	v->ctl = c[1];
	char ready = 0;
	if (!h_read(v->out, &ready, 1, 30000))
		return false;
	if (ready == 'r')
		return true;
	struct adv_report tmp;
	if (h_read(v->out, r ? r : &tmp, sizeof(tmp), 5000) && r)
		fprintf(stderr, "\n  victim could not subscribe to %s: %s", v->topic,
			shmbus_strerror(r->open_rc));
	return false;
}

bool adv_victim_report(struct adv_victim *v, struct adv_report *r, int timeout_ms)
{
	memset(r, 0, sizeof(*r));
	if (!v->forever && write(v->ctl, "s", 1) != 1)
		return false;
	return h_read(v->out, r, sizeof(*r), timeout_ms);
}

int adv_victim_end(struct adv_victim *v)
{
	if (write(v->ctl, "q", 1) != 1) {
		/* It is gone already: its status tells how. */
	}
	close(v->ctl);
	int st = h_reap(v->pid, 10000);
	close(v->out);
	return st;
}
