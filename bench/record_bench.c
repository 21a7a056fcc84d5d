/*
 * record_bench.c - measures `shmbus record` and `shmbus play` as users run
 * them (the real CLI in its own process, on a bus of its own):
 *
 *   bulk    1 MiB messages, no compression, into a file on tmpfs: the
 *           rate the recorder sustains unpaced, and whether it loses
 *           anything when the publisher is paced at --rate-mbs (1 GB/s)
 *   camera  1280x720 RGB frames at 30 Hz (test pattern with sensor noise)
 *           and an IMU at 1 kHz, recorded with zstd: losses, file size
 *   play    a 1 kHz recording played back at --rate 1: how far each
 *           message is from its recorded time offset (p50, p99, max)
 *
 * usage: shmbus-record-bench SHMBUS_CLI [bulk|camera|play|all] [--seconds S]
 *        (SHMBUSD as for any client; files go to /dev/shm)
 */
#include "mcap.h"

#include <shmbus/shmbus.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "now.h"

extern char **environ;

static const char *cli;
static double seconds = 5;
static char bus_name[64];

/* Bench time: a signal that comes in a sleep does not shorten it. */
static void sleep_until(int64_t t)
{
	while (now_sleep_until(t) == EINTR)
		;
}

static pid_t spawn(char *const argv[], const char *out)
{
	posix_spawn_file_actions_t fa;
	pid_t pid;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	int rc = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	return rc ? -1 : pid;
}

static void wait_subscribed(shmbus_bus *bus, const char *topic)
{
	struct shmbus_topic_info ti;
	int64_t end = now_mono_ns() + 10000000000ll;
	while (now_mono_ns() < end) {
		if (shmbus_topic_inspect(bus, topic, &ti, NULL, 0, NULL, NULL, 0, NULL) == 0 &&
		    ti.subscribers > 0)
			return;
		sleep_until(now_mono_ns() + 1000000);
	}
	fprintf(stderr, "the recorder never subscribed to %s\n", topic);
	exit(1);
}

/* Waits until the recorder took everything published (or 10 s). */
static void wait_drained(shmbus_bus *bus, const char *topic)
{
	struct shmbus_topic_info ti;
	struct shmbus_client_info s[2];
	size_t n;
	int64_t end = now_mono_ns() + 10000000000ll;
	while (now_mono_ns() < end) {
		if (shmbus_topic_inspect(bus, topic, &ti, NULL, 0, NULL, s, 2, &n) == 0 && n &&
		    s[0].lag == 0)
			return;
		sleep_until(now_mono_ns() + 1000000);
	}
}

static int stop(pid_t pid, const char *out)
{
	int st;
	kill(pid, SIGINT);
	waitpid(pid, &st, 0);
	FILE *f = fopen(out, "r");
	char line[512];
	while (f && fgets(line, sizeof(line), f))
		printf("    recorder: %s", line);
	if (f)
		fclose(f);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static long file_size(const char *p)
{
	FILE *f = fopen(p, "rb");
	if (!f)
		return -1;
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fclose(f);
	return n;
}

/* 1 MiB messages: unpaced, then paced at `mbs` MB/s. */
static void bench_bulk(shmbus_bus *bus, double mbs)
{
	const size_t size = 1 << 20;
	for (int paced = 0; paced < 2; paced++) {
		char file[128], out[128], topic[32];
		snprintf(topic, sizeof(topic), "bulk%d", paced);
		snprintf(file, sizeof(file), "/dev/shm/record-bench-%d.mcap", (int)getpid());
		snprintf(out, sizeof(out), "/dev/shm/record-bench-%d.out", (int)getpid());
		struct shmbus_topic_options to;
		shmbus_topic_options_init(&to);
		to.max_message_size = (uint32_t)size;
		to.slot_count = 64;
		shmbus_pub *pub;
		if (shmbus_pub_open(bus, topic, &to, NULL, &pub)) {
			fprintf(stderr, "bulk: %s\n", shmbus_errmsg());
			exit(1);
		}
		char *argv[] = { (char *)cli, "record", "--bus", bus_name, "-o", file,
				 "--compression", "none", topic, NULL };
		pid_t rec = spawn(argv, out);
		wait_subscribed(bus, topic);
		uint64_t sent = 0;
		int64_t t0 = now_mono_ns(), end = t0 + (int64_t)(seconds * 1e9);
		int64_t period = paced ? (int64_t)(size / (mbs * 1e6) * 1e9) : 0;
		while (now_mono_ns() < end) {
			void *buf;
			size_t cap;
			if (shmbus_pub_loan(pub, &buf, &cap) != 0)
				continue;
			memset(buf, (int)sent, 64); /* touch it; the rest is as left */
			shmbus_pub_publish(pub, size, NULL);
			sent++;
			if (period)
				sleep_until(t0 + (int64_t)sent * period);
		}
		double dt = (double)(now_mono_ns() - t0) / 1e9;
		wait_drained(bus, topic);
		struct shmbus_topic_info ti;
		struct shmbus_client_info s[2];
		size_t n = 0;
		shmbus_topic_inspect(bus, topic, &ti, NULL, 0, NULL, s, 2, &n);
		uint64_t got = n ? s[0].count : 0, lost = n ? s[0].lost : 0;
		printf("bulk %s: published %" PRIu64 " x 1 MiB in %.2f s (%.0f MB/s); recorded %" PRIu64
		       " (%.0f MB/s), lost %" PRIu64 "\n",
		       paced ? "paced" : "unpaced", sent, dt, (double)sent * size / dt / 1e6, got,
		       (double)got * size / dt / 1e6, lost);
		int rc = stop(rec, out);
		printf("    file %.0f MiB, recorder exit %d\n", (double)file_size(file) / (1 << 20), rc);
		shmbus_pub_close(pub);
		unlink(file);
		unlink(out);
	}
}

static void bench_camera(shmbus_bus *bus)
{
	const uint32_t w = 1280, h = 720;
	const size_t frame = (size_t)w * h * 3;
	char file[128], out[128];
	snprintf(file, sizeof(file), "/dev/shm/record-bench-cam-%d.mcap", (int)getpid());
	snprintf(out, sizeof(out), "/dev/shm/record-bench-cam-%d.out", (int)getpid());
	struct shmbus_topic_options to;
	shmbus_pub *cam, *imu;
	shmbus_topic_options_init(&to);
	to.max_message_size = (uint32_t)frame + 256;
	to.slot_count = 8;
	if (shmbus_pub_open(bus, "camera", &to, NULL, &cam))
		exit(1);
	shmbus_topic_options_init(&to);
	to.max_message_size = 256;
	to.slot_count = 256;
	if (shmbus_pub_open(bus, "imu", &to, NULL, &imu))
		exit(1);
	char *argv[] = { (char *)cli, "record", "--bus", bus_name, "-o", file, "--compression",
			 "zstd", "camera", "imu", NULL };
	pid_t rec = spawn(argv, out);
	wait_subscribed(bus, "camera");
	wait_subscribed(bus, "imu");
	uint32_t seed = 1;
	int64_t t0 = now_mono_ns(), end = t0 + (int64_t)(seconds * 1e9);
	uint64_t frames = 0, samples = 0;
	while (now_mono_ns() < end) {
		int64_t next_frame = t0 + (int64_t)frames * 33333333;
		int64_t next_imu = t0 + (int64_t)samples * 1000000;
		if (next_frame <= next_imu) {
			sleep_until(next_frame);
			void *buf;
			size_t cap;
			if (shmbus_pub_loan(cam, &buf, &cap) == 0) {
				uint8_t *px = buf;
				/* moving pattern plus noise in the low bits, like a sensor */
				for (size_t i = 0; i < frame; i++) {
					seed = seed * 1103515245u + 12345u;
					px[i] = (uint8_t)(((i / 3) % w + frames * 4) ^ (seed >> 29));
				}
				shmbus_pub_publish(cam, frame, NULL);
			}
			frames++;
		} else {
			sleep_until(next_imu);
			uint8_t s[64];
			memset(s, (int)samples, sizeof(s));
			shmbus_pub_send(imu, s, sizeof(s), NULL);
			samples++;
		}
	}
	wait_drained(bus, "camera");
	wait_drained(bus, "imu");
	printf("camera+imu (zstd): published %" PRIu64 " frames of %zu bytes, %" PRIu64
	       " IMU samples in %.1f s\n",
	       frames, frame, samples, seconds);
	int rc = stop(rec, out);
	printf("    file %.1f MiB for %.1f MiB of frames, recorder exit %d\n",
	       (double)file_size(file) / (1 << 20), (double)frames * frame / (1 << 20), rc);
	shmbus_pub_close(cam);
	shmbus_pub_close(imu);
	unlink(file);
	unlink(out);
}

static int cmp64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

static void bench_play(shmbus_bus *bus)
{
	char file[128], out[128];
	snprintf(file, sizeof(file), "/dev/shm/record-bench-play-%d.mcap", (int)getpid());
	snprintf(out, sizeof(out), "/dev/shm/record-bench-play-%d.out", (int)getpid());
	shmbus_pub *pub;
	if (shmbus_pub_open(bus, "play/imu", NULL, NULL, &pub))
		exit(1);
	char *argv[] = { (char *)cli, "record", "--bus", bus_name, "-o", file, "play/imu", NULL };
	pid_t rec = spawn(argv, out);
	wait_subscribed(bus, "play/imu");
	int64_t t0 = now_mono_ns();
	uint64_t n = (uint64_t)(seconds * 1000);
	for (uint64_t i = 0; i < n; i++) {
		sleep_until(t0 + (int64_t)i * 1000000);
		shmbus_pub_send(pub, &i, sizeof(i), NULL);
	}
	wait_drained(bus, "play/imu");
	stop(rec, out);
	shmbus_pub_close(pub);

	/* Play it back to a subscriber here, on another topic. */
	shmbus_sub *sub;
	struct shmbus_sub_options so;
	shmbus_sub_options_init(&so);
	so.create_if_missing = true;
	if (shmbus_sub_open(bus, "play/back", NULL, &so, &sub))
		exit(1);
	char *pargv[] = { (char *)cli, "play", "--bus", bus_name, file, "--remap",
			  "play/imu:=play/back", NULL };
	pid_t player = spawn(pargv, out);
	char err[256];
	mcap_reader *r;
	if (mcap_reader_open(file, 0, &r, err, sizeof(err))) {
		fprintf(stderr, "%s\n", err);
		exit(1);
	}
	int64_t *errs = calloc(n, sizeof(*errs)), recv0 = 0;
	uint64_t log0 = 0, got = 0;
	struct mcap_message m;
	while (got < n && mcap_reader_next(r, &m) == 1) {
		uint64_t v;
		struct shmbus_msg_info info;
		int rc;
		int64_t give_up = now_mono_ns() + 5000000000ll;
		while ((rc = shmbus_sub_take(sub, &v, sizeof(v), &info)) == SHMBUS_EAGAIN &&
		       now_mono_ns() < give_up)
			shmbus_sub_wait(sub, 100000000);
		int64_t t = now_mono_ns();
		if (rc)
			break;
		if (got == 0) {
			recv0 = t;
			log0 = m.log_time;
		}
		errs[got++] = (t - recv0) - (int64_t)(m.log_time - log0);
	}
	mcap_reader_close(r);
	int st;
	waitpid(player, &st, 0);
	/* errs[i]: how much later than the recording says message i arrived,
	 * relative to the first. A constant part is latency (the first
	 * message's own delay); the timing error is the spread around it. */
	qsort(errs, got, sizeof(*errs), cmp64);
	if (got) {
		int64_t median = errs[got / 2];
		for (uint64_t i = 0; i < got; i++)
			errs[i] = errs[i] > median ? errs[i] - median : median - errs[i];
		qsort(errs, got, sizeof(*errs), cmp64);
		printf("play at --rate 1: %" PRIu64 " messages at 1 kHz; offsets vs the recording "
		       "(first message as 0): median %.3f ms; timing error around it: p50 %.3f ms, "
		       "p99 %.3f ms, max %.3f ms\n",
		       got, median / 1e6, errs[got / 2] / 1e6, errs[got * 99 / 100] / 1e6,
		       errs[got - 1] / 1e6);
	}
	free(errs);
	shmbus_sub_close(sub);
	unlink(file);
	unlink(out);
}

int main(int argc, char **argv)
{
	const char *what = "all";
	double mbs = 1000;
	if (argc < 2) {
		fprintf(stderr, "usage: %s SHMBUS_CLI [bulk|camera|play|all] [--seconds S] "
				"[--rate-mbs MBS]\n",
			argv[0]);
		return 2;
	}
	cli = argv[1];
	for (int i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc)
			seconds = atof(argv[++i]);
		else if (strcmp(argv[i], "--rate-mbs") == 0 && i + 1 < argc)
			mbs = atof(argv[++i]);
		else
			what = argv[i];
	}
	snprintf(bus_name, sizeof(bus_name), "record-bench-%d", (int)getpid());
	shmbus_bus *bus;
	struct shmbus_connect_options o;
	shmbus_connect_options_init(&o);
	if (shmbus_connect(bus_name, &o, &bus)) {
		fprintf(stderr, "connect: %s\n", shmbus_errmsg());
		return 1;
	}
	if (!strcmp(what, "bulk") || !strcmp(what, "all"))
		bench_bulk(bus, mbs);
	if (!strcmp(what, "camera") || !strcmp(what, "all"))
		bench_camera(bus);
	if (!strcmp(what, "play") || !strcmp(what, "all"))
		bench_play(bus);
	int broker = shmbus_broker_pid(bus);
	shmbus_disconnect(bus);
	if (broker > 0)
		kill(broker, SIGTERM);
	return 0;
}
