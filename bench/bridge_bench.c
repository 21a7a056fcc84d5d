/*
 * bridge_bench.c - shmbus-bridge-bench: latency and throughput through two
 * bridges on one host. Two buses (A and B), a bridge on each (started
 * here), one DDS domain:
 *
 *   latency:    A "bench/ping" -> bridge A -> DDS -> bridge B -> B, and
 *               back the same way on "bench/pong"; one-way = round trip / 2.
 *   throughput: A "bench/bulk" -> B as fast as B takes them, with at most
 *               `window` messages in flight so neither ring laps.
 *   first:      (--first K) K topics "bench/new/N" created on A one after
 *               the other while both bridges run; for each, from the publish
 *               of its first message (right after creating it) to that
 *               message's arrival on B, where a subscriber waits for the
 *               topic to appear. Bridge A's log says how much of it was the
 *               wait for B's reader to match.
 *
 * usage: shmbus-bridge-bench BRIDGE CONFIG.xml DOMAIN SIZE [--reliable] [--first K]
 * Prints one line per measurement.
 */
#include <shmbus/shmbus.h>

#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "now.h"

/* The bridge's stdout (statistics) goes nowhere; its stderr to log_fd when
 * that is not -1. */
static pid_t start_bridge(char *const argv[], int log_fd)
{
	pid_t pid = fork();
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);
		if (null >= 0)
			dup2(null, 1);
		if (log_fd >= 0)
			dup2(log_fd, 2);
		execv(argv[0], argv);
		_exit(127);
	}
	return pid;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

/* Take one message (any) from sub within timeout: true if one came. */
static bool take_one(shmbus_sub *sub, void *buf, size_t cap, int64_t timeout_ns)
{
	int64_t deadline = now_mono_ns() + timeout_ns;
	for (;;) {
		int rc = shmbus_sub_take(sub, buf, cap, NULL);
		if (rc == SHMBUS_OK)
			return true;
		int64_t left = deadline - now_mono_ns();
		if (left <= 0)
			return false;
		shmbus_sub_wait(sub, left);
	}
}

static void print_ms(const char *what, int64_t *v, int n)
{
	qsort(v, (size_t)n, sizeof(int64_t), cmp_i64);
	printf("%s median %.2f ms, p90 %.2f ms, max %.2f ms", what, v[n / 2] / 1e6,
	       v[n * 9 / 10] / 1e6, v[n - 1] / 1e6);
}

/* Values (us, as ms) after `key` on the lines of a bridge's log that name
 * a bench/new topic: how many, and print them. */
static void log_figures(FILE *log, const char *key, const char *what, const char *whose,
			int64_t *v, int k)
{
	int n = 0;
	char line[1024];
	rewind(log);
	while (fgets(line, sizeof(line), log) && n < k) {
		const char *m = strstr(line, key);
		if (m && strstr(line, "bench/new/"))
			v[n++] = strtoll(m + strlen(key), NULL, 10) * 1000;
	}
	if (n) {
		printf("  %s (%s, %d topics):", what, whose, n);
		print_ms("", v, n);
		printf("\n");
	}
}

/* --first: k topics that appear on A while both bridges run. */
static void bench_first(shmbus_bus *a, shmbus_bus *b, const struct shmbus_topic_options *to,
			const uint8_t *buf, uint8_t *in, size_t size, size_t cap, int k,
			const char *mode, FILE *log_a, FILE *log_b)
{
	int64_t *lat = calloc((size_t)k, sizeof(int64_t));
	int got = 0;
	shmbus_topic_watch *watch_b;
	if (!lat || shmbus_topic_watch_open(b, &watch_b) != 0) {
		fprintf(stderr, "cannot watch bus B\n");
		free(lat);
		return;
	}
	for (int i = 0; i < k; i++) {
		char name[64];
		snprintf(name, sizeof(name), "bench/new/%d", i);
		shmbus_pub *p;
		if (shmbus_pub_open(a, name, to, NULL, &p) != 0)
			break;
		int64_t t0 = now_mono_ns(), deadline = t0 + 5000000000ll;
		shmbus_pub_send(p, buf, size, NULL);
		/* As a subscriber on B that waits for the topic to appear (told
		 * by the broker), then takes it from its first message. */
		shmbus_sub *s = NULL;
		struct shmbus_sub_options so;
		shmbus_sub_options_init(&so);
		so.start = SHMBUS_START_FIRST;
		while (!s && now_mono_ns() < deadline) {
			struct shmbus_topic_event ev;
			int rc = shmbus_topic_watch_next(watch_b, &ev);
			if (rc == SHMBUS_EAGAIN)
				shmbus_topic_watch_wait(watch_b, deadline - now_mono_ns());
			else if (rc != 0)
				break;
			else if (ev.kind == SHMBUS_TOPIC_CREATED && strcmp(ev.name, name) == 0 &&
				 shmbus_sub_open(b, name, NULL, &so, &s) != 0)
				s = NULL;
		}
		if (s && take_one(s, in, cap, deadline - now_mono_ns()))
			lat[got++] = now_mono_ns() - t0;
		if (s)
			shmbus_sub_close(s);
		shmbus_pub_close(p);
	}
	shmbus_topic_watch_close(watch_b);
	printf("first message size %zu %s: %d/%d arrived", size, mode, got, k);
	if (got)
		print_ms(",", lat, got);
	printf("\n");
	/* What the bridges log per topic: how long the first messages waited
	 * for the far reader (A), how long making the far bus topic took (B). */
	log_figures(log_a, "matched after ", "of which waiting for the far reader", "bridge A's log",
		    lat, k);
	log_figures(log_b, "bus topic made in ", "of which making the topic on bus B", "bridge B's log",
		    lat, k);
	free(lat);
}

int main(int argc, char **argv)
{
	if (argc < 5) {
		fprintf(stderr, "usage: shmbus-bridge-bench BRIDGE CONFIG.xml DOMAIN SIZE [--reliable] "
				"[--first K]\n");
		return 2;
	}
	const char *exe = argv[1], *config = argv[2], *domain = argv[3];
	size_t size = strtoul(argv[4], NULL, 10);
	const char *rel = NULL;
	int first = 0;
	for (int i = 5; i < argc; i++) {
		if (strcmp(argv[i], "--reliable") == 0) {
			rel = argv[i];
		} else if (strcmp(argv[i], "--first") == 0 && i + 1 < argc) {
			first = atoi(argv[++i]);
		} else {
			fprintf(stderr, "shmbus-bridge-bench: unknown argument '%s'\n", argv[i]);
			return 2;
		}
	}
	char na[64], nb[64];
	snprintf(na, sizeof(na), "bench-bridge-a-%d", (int)getpid());
	snprintf(nb, sizeof(nb), "bench-bridge-b-%d", (int)getpid());
	shmbus_bus *a, *b;
	if (shmbus_connect(na, NULL, &a) || shmbus_connect(nb, NULL, &b)) {
		fprintf(stderr, "cannot connect\n");
		return 1;
	}
	struct shmbus_topic_options to;
	shmbus_topic_options_init(&to);
	to.max_message_size = (uint32_t)(size < 64 ? 64 : size);
	to.slot_count = size > (1u << 20) / 2 ? 16 : 256;
	shmbus_pub *ping, *pong, *bulk;
	if (shmbus_pub_open(a, "bench/ping", &to, NULL, &ping) ||
	    shmbus_pub_open(b, "bench/pong", &to, NULL, &pong) ||
	    shmbus_pub_open(a, "bench/bulk", &to, NULL, &bulk)) {
		fprintf(stderr, "cannot open topics\n");
		return 1;
	}
	char *args_a[] = { (char *)exe, "--bus", na, "--domain", (char *)domain, "--config",
			   (char *)config, "--out", "bench/ping", "--out", "bench/bulk", "--out",
			   "bench/new/*", "--in", "bench/pong", "--verbose", (char *)rel, NULL };
	char *args_b[] = { (char *)exe, "--bus", nb, "--domain", (char *)domain, "--config",
			   (char *)config, "--in", "bench/ping", "--in", "bench/bulk", "--in",
			   "bench/new/*", "--out", "bench/pong", "--verbose", (char *)rel, NULL };
	FILE *log_a = tmpfile(), *log_b = tmpfile();
	pid_t pa = start_bridge(args_a, log_a ? fileno(log_a) : -1);
	pid_t pb = start_bridge(args_b, log_b ? fileno(log_b) : -1);
	struct shmbus_sub_options so;
	shmbus_sub_options_init(&so);
	so.create_if_missing = true;
	shmbus_sub *sping, *spong, *sbulk;
	if (shmbus_sub_open(b, "bench/ping", &to, &so, &sping) ||
	    shmbus_sub_open(a, "bench/pong", &to, &so, &spong) ||
	    shmbus_sub_open(b, "bench/bulk", &to, &so, &sbulk)) {
		fprintf(stderr, "cannot open subscribers\n");
		return 1;
	}
	size_t cap = size < 64 ? 64 : size;
	uint8_t *buf = calloc(1, cap);
	uint8_t *in = malloc(cap);
	/* Warm up: until a ping goes round. */
	int64_t deadline = now_mono_ns() + 30000000000ll;
	bool up = false;
	while (!up && now_mono_ns() < deadline) {
		shmbus_pub_send(ping, buf, size, NULL);
		if (take_one(sping, in, cap, 50000000)) {
			shmbus_pub_send(pong, buf, size, NULL);
			up = take_one(spong, in, cap, 200000000);
		}
	}
	while (shmbus_sub_take(sping, in, cap, NULL) == 0 ||
	       shmbus_sub_take(spong, in, cap, NULL) == 0)
		;
	if (!up) {
		fprintf(stderr, "bridges did not come up\n");
	} else {
		int n = size >= 65536 ? 200 : 2000, got = 0;
		int64_t *rtt = calloc((size_t)n, sizeof(int64_t));
		for (int i = 0; i < n; i++) {
			int64_t t0 = now_mono_ns();
			shmbus_pub_send(ping, buf, size, NULL);
			if (!take_one(sping, in, cap, 2000000000))
				continue;
			shmbus_pub_send(pong, in, size, NULL);
			if (!take_one(spong, in, cap, 2000000000))
				continue;
			rtt[got++] = now_mono_ns() - t0;
		}
		qsort(rtt, (size_t)got, sizeof(int64_t), cmp_i64);
		if (got)
			printf("latency size %zu %s: %d/%d round trips, one-way median %.1f us, p90 %.1f us, p99 %.1f us\n",
			       size, rel ? "reliable" : "best-effort", got, n, rtt[got / 2] / 2000.0,
			       rtt[got * 9 / 10] / 2000.0, rtt[got * 99 / 100] / 2000.0);
		free(rtt);
		if (first > 0 && log_a && log_b)
			bench_first(a, b, &to, buf, in, size, cap, first,
				    rel ? "reliable" : "best-effort", log_a, log_b);

		/* Throughput: as fast as B takes them, window-limited. */
		int64_t window = size >= 65536 ? 8 : 128;
		int64_t sent = 0, recv = 0;
		struct shmbus_sub_stats st0, st1;
		shmbus_sub_stats(sbulk, &st0);
		int64_t t0 = now_mono_ns(), dur = 3000000000ll;
		while (now_mono_ns() - t0 < dur) {
			while (sent - recv < window && now_mono_ns() - t0 < dur) {
				shmbus_pub_send(bulk, buf, size, NULL);
				sent++;
			}
			if (take_one(sbulk, in, cap, 200000000))
				recv++;
			else
				recv = sent; /* lost: do not stall the window */
			while (shmbus_sub_take(sbulk, in, cap, NULL) == 0)
				recv++;
		}
		int64_t t1 = now_mono_ns();
		shmbus_sub_stats(sbulk, &st1);
		double secs = (double)(t1 - t0) / 1e9;
		uint64_t delivered = st1.received - st0.received;
		printf("throughput size %zu %s: %llu msg/s, %.1f MB/s (sent %lld, delivered %llu in %.1f s)\n",
		       size, rel ? "reliable" : "best-effort", (unsigned long long)(delivered / secs),
		       (double)delivered * (double)size / secs / 1e6, (long long)sent,
		       (unsigned long long)delivered, secs);
	}
	kill(pa, SIGTERM);
	kill(pb, SIGTERM);
	waitpid(pa, NULL, 0);
	waitpid(pb, NULL, 0);
	shmbus_sub_close(sping);
	shmbus_sub_close(spong);
	shmbus_sub_close(sbulk);
	shmbus_pub_close(ping);
	shmbus_pub_close(pong);
	shmbus_pub_close(bulk);
	/* The buses are this run's own: stop their brokers. */
	pid_t ka = shmbus_broker_pid(a), kb = shmbus_broker_pid(b);
	shmbus_disconnect(a);
	shmbus_disconnect(b);
	kill(ka, SIGTERM);
	kill(kb, SIGTERM);
	free(buf);
	free(in);
	if (log_a)
		fclose(log_a);
	if (log_b)
		fclose(log_b);
	return up ? 0 : 1;
}
