/*
 * record_bench.c - measures `shmbus record` and `shmbus play` as users run
 * them (the real CLI in its own process, on a bus of its own):
 *
 *   floor   plain write() of 4 MiB pieces into a file on the same tmpfs:
 *           what the recorder's bytes cost the kernel alone
 *   bulk    1 MiB messages, no compression, into a file on tmpfs: whether
 *           the recorder loses anything with the publisher paced at
 *           --rate-mbs (2000 MB/s), and what it records offered 4x that
 *   camera  1280x720 RGB frames at 30 Hz (test pattern with sensor noise)
 *           and an IMU at 1 kHz, recorded with zstd: losses, file size
 *   play    a 1 kHz recording played back at --rate 1: how far each
 *           message is from its recorded time offset (p50, p99, max), as
 *           received (rec_play) and as the player stamped it
 *           (rec_play_sent), beside how late a bare 1 kHz sleep loop
 *           wakes meanwhile (rec_sleep_floor)
 *
 * usage: shmbus-record-bench SHMBUS_CLI [floor|bulk|camera|play|all] [--seconds S]
 *        [--rate-mbs MBS] [--only SUBSTR[,SUBSTR...]] [--tsv FILE]
 *        (SHMBUSD as for any client; files go to /dev/shm)
 *
 * --tsv appends one row per case to bench/results/latest.tsv (bench/run
 * does), in its columns: rec_write_floor, rec_bulk, rec_bulk_over,
 * rec_camera, rec_sleep_floor, rec_play_sent, rec_play (their
 * ratio_to_floor: p99 over the sleep floor's p99); --only keeps the cases whose row name contains one
 * of the substrings, as shmbus-bench's --only.
 */
#include "mcap.h"

#include <shmbus/shmbus.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
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
static const char *only;
static FILE *tsv;

/* As shmbus-bench's --only: a comma-separated list of substrings. */
static bool selected(const char *row)
{
	if (!only)
		return true;
	for (const char *p = only; *p;) {
		size_t n = strcspn(p, ",");
		char part[64];
		if (n > 0 && n < sizeof(part)) {
			memcpy(part, p, n);
			part[n] = '\0';
			if (strstr(row, part))
				return true;
		}
		p += n + (p[n] == ',');
	}
	return false;
}

/* One row of latest.tsv: case size_B median_ns p99_ns p999_ns msgs_per_s
 * GB_per_s spread_pct floor_case ratio_to_floor peer_case ratio_to_peer
 * lost_pct value unit; NAN is "-". One pass per case: no spread. */
struct row {
	const char *name;
	size_t size;
	double median_ns, p99_ns, p999_ns, rate, gbs;
	const char *floor;
	double ratio_to_floor, lost_pct, value;
	const char *unit;
};

/* A figure with `decimals` decimals, or "-" for NAN. */
static void put(double v, int decimals)
{
	if (isnan(v))
		fputs("\t-", tsv);
	else
		fprintf(tsv, "\t%.*f", decimals, v);
}

static void tsv_row(const struct row *r)
{
	if (!tsv)
		return;
	fprintf(tsv, "%s\t%zu", r->name, r->size);
	put(r->median_ns, 0);
	put(r->p99_ns, 0);
	put(r->p999_ns, 0);
	put(r->rate, 1);
	put(r->gbs, 4);
	fputs("\t-", tsv); /* spread: one pass */
	fprintf(tsv, "\t%s", r->floor ? r->floor : "-");
	put(r->ratio_to_floor, 3);
	fputs("\t-\t-", tsv); /* no peer */
	put(r->lost_pct, 4);
	put(r->value, 4);
	fprintf(tsv, "\t%s\n", r->unit ? r->unit : "-");
	fflush(tsv);
}

/* The write floor of this run (GB/s), for the bulk rows' ratio. */
static double floor_gbs = NAN;

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

/* What the recorder's bytes cost the kernel alone: write() of one 4 MiB
 * buffer (as the recorder's writer writes its chunks) into a file in the
 * same directory, as many bytes as rec_bulk is offered (`mbs` for the
 * bench's seconds). The same bytes, not the same time: on a virtual
 * machine whose host backs guest memory lazily, tmpfs is several times
 * slower past the first few GB of a file, and memory a file freed is
 * fast again for the next one a while. So the floor is timed on its second
 * pass, after one untimed pass of the same bytes, as the bulk cases after
 * it find memory the floor freed. A pass stops at 4x the bench's seconds
 * and says so (the rate so far is then an upper bound). */
static void bench_floor(double mbs)
{
	const size_t piece = 4u << 20;
	const uint64_t most = (uint64_t)(mbs * 1e6 * seconds);
	char file[128];
	snprintf(file, sizeof(file), "/dev/shm/record-bench-floor-%d", (int)getpid());
	char *buf = malloc(piece);
	if (!buf)
		exit(1);
	memset(buf, 0x5a, piece);
	uint64_t bytes = 0;
	double dt = 0;
	for (int pass = 0; pass < 2; pass++) {
		int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (fd < 0) {
			fprintf(stderr, "floor: %s: %s\n", file, strerror(errno));
			exit(1);
		}
		bytes = 0;
		int64_t t0 = now_mono_ns(), end = t0 + (int64_t)(4 * seconds * 1e9);
		while (now_mono_ns() < end && bytes < most) {
			ssize_t n = write(fd, buf, piece);
			if (n <= 0) {
				fprintf(stderr, "floor: writing %s: %s\n", file, strerror(errno));
				exit(1);
			}
			bytes += (uint64_t)n;
		}
		dt = (double)(now_mono_ns() - t0) / 1e9;
		close(fd);
		unlink(file);
	}
	free(buf);
	floor_gbs = (double)bytes / dt / 1e9;
	printf("write floor: %.0f MiB written with write() of 4 MiB pieces in %.2f s: %.2f GB/s%s\n",
	       (double)bytes / (1 << 20), dt, floor_gbs,
	       bytes < most ? " (stopped short of the bytes rec_bulk is offered)" : "");
	tsv_row(&(struct row){ "rec_write_floor", 1u << 20, NAN, NAN, NAN,
			       (double)bytes / (1 << 20) / dt, floor_gbs, NULL, NAN, NAN, NAN,
			       NULL });
}

/* 1 MiB messages paced at `mbs` MB/s, then at 4x that: whether the
 * recorder keeps up, and what it records when offered more than it can. */
static void bench_bulk(shmbus_bus *bus, double mbs)
{
	const size_t size = 1 << 20;
	for (int over = 0; over < 2; over++) {
		const char *row = over ? "rec_bulk_over" : "rec_bulk";
		if (!selected(row))
			continue;
		double offered = over ? 4 * mbs : mbs;
		char file[128], out[128], topic[32];
		snprintf(topic, sizeof(topic), "bulk%d", over);
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
		int64_t period = (int64_t)(size / (offered * 1e6) * 1e9);
		while (now_mono_ns() < end) {
			void *buf;
			size_t cap;
			if (shmbus_pub_loan(pub, &buf, &cap) != 0)
				continue;
			memset(buf, (int)sent, 64); /* touch it; the rest is as left */
			shmbus_pub_publish(pub, size, NULL);
			sent++;
			sleep_until(t0 + (int64_t)sent * period);
		}
		double dt = (double)(now_mono_ns() - t0) / 1e9;
		wait_drained(bus, topic);
		struct shmbus_topic_info ti;
		struct shmbus_client_info s[2];
		size_t n = 0;
		shmbus_topic_inspect(bus, topic, &ti, NULL, 0, NULL, s, 2, &n);
		uint64_t got = n ? s[0].count : 0, lost = n ? s[0].lost : 0;
		double gbs = (double)got * size / dt / 1e9;
		printf("bulk offered %.0f MB/s: published %" PRIu64 " x 1 MiB in %.2f s (%.0f MB/s); "
		       "recorded %" PRIu64 " (%.0f MB/s), lost %" PRIu64 "\n",
		       offered, sent, dt, (double)sent * size / dt / 1e6, got, gbs * 1e3, lost);
		int rc = stop(rec, out);
		printf("    file %.0f MiB, recorder exit %d\n", (double)file_size(file) / (1 << 20), rc);
		tsv_row(&(struct row){ row, size, NAN, NAN, NAN, (double)got / dt, gbs,
				       isnan(floor_gbs) ? NULL : "rec_write_floor@1048576",
				       gbs > 0 ? floor_gbs / gbs : NAN,
				       got + lost ? 100.0 * (double)lost / (double)(got + lost) : NAN,
				       offered / 1e3, "GB/s offered" });
		shmbus_pub_close(pub);
		unlink(file);
		unlink(out);
	}
}

/* Messages the recorder took from `topic`, and lost. */
static void taken(shmbus_bus *bus, const char *topic, uint64_t *got, uint64_t *lost)
{
	struct shmbus_topic_info ti;
	struct shmbus_client_info s[2];
	size_t n = 0;
	shmbus_topic_inspect(bus, topic, &ti, NULL, 0, NULL, s, 2, &n);
	*got = n ? s[0].count : 0;
	*lost = n ? s[0].lost : 0;
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
	double dt = (double)(now_mono_ns() - t0) / 1e9;
	wait_drained(bus, "camera");
	wait_drained(bus, "imu");
	uint64_t cam_got, cam_lost, imu_got, imu_lost;
	taken(bus, "camera", &cam_got, &cam_lost);
	taken(bus, "imu", &imu_got, &imu_lost);
	printf("camera+imu (zstd): published %" PRIu64 " frames of %zu bytes, %" PRIu64
	       " IMU samples in %.1f s; recorded %" PRIu64 " frames (%" PRIu64 " lost), %" PRIu64
	       " samples (%" PRIu64 " lost)\n",
	       frames, frame, samples, dt, cam_got, cam_lost, imu_got, imu_lost);
	int rc = stop(rec, out);
	long bytes = file_size(file);
	printf("    file %.1f MiB for %.1f MiB of frames, recorder exit %d\n",
	       (double)bytes / (1 << 20), (double)frames * frame / (1 << 20), rc);
	/* Loss of both topics together: lossless means none of either. */
	uint64_t all = cam_got + cam_lost + imu_got + imu_lost;
	tsv_row(&(struct row){ "rec_camera", frame, NAN, NAN, NAN, (double)cam_got / dt,
			       (double)cam_got * frame / dt / 1e9, NULL, NAN,
			       all ? 100.0 * (double)(cam_lost + imu_lost) / (double)all : NAN,
			       (double)bytes, "B" });
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

/* errs[0..n) become their distances from their median, sorted; returns
 * the median. */
static int64_t spread(int64_t *errs, uint64_t n)
{
	qsort(errs, n, sizeof(*errs), cmp64);
	int64_t median = errs[n / 2];
	for (uint64_t i = 0; i < n; i++)
		errs[i] = errs[i] > median ? errs[i] - median : median - errs[i];
	qsort(errs, n, sizeof(*errs), cmp64);
	return median;
}

/* The machine's own sleep: a thread that sleeps to each point of a 1 kHz
 * grid of its own (clock_nanosleep, TIMER_ABSTIME, as the player sleeps)
 * while the playback runs. How late each wake
 * was is the floor under the player's timing error: on a VM an idle vCPU
 * can be woken milliseconds late, whoever sleeps. */
struct sleep_floor {
	pthread_t thread;
	int64_t start;
	uint64_t n;
	int64_t *late;
};

static void *sleep_floor_run(void *arg)
{
	struct sleep_floor *f = arg;
	for (uint64_t i = 0; i < f->n; i++) {
		int64_t due = f->start + (int64_t)i * 1000000;
		sleep_until(due);
		f->late[i] = now_mono_ns() - due;
	}
	return NULL;
}

/* The latency columns of a timing error: p50, p99, p99.9 of errs[0..n)
 * (sorted distances from their median). */
static void error_row(const char *name, const int64_t *errs, uint64_t n, const char *floor,
		      double ratio, double lost_pct)
{
	tsv_row(&(struct row){ name, sizeof(uint64_t), (double)errs[n / 2],
			       (double)errs[n * 99 / 100], (double)errs[n * 999 / 1000], NAN, NAN,
			       floor, ratio, lost_pct, NAN, NULL });
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
	struct sleep_floor fl = { .start = now_mono_ns() + 500000, .n = n };
	fl.late = calloc(n, sizeof(*fl.late));
	if (!fl.late || pthread_create(&fl.thread, NULL, sleep_floor_run, &fl) != 0) {
		fprintf(stderr, "the sleep floor's thread: %s\n", strerror(errno));
		exit(1);
	}
	char err[256];
	mcap_reader *r;
	if (mcap_reader_open(file, 0, &r, err, sizeof(err))) {
		fprintf(stderr, "%s\n", err);
		exit(1);
	}
	int64_t *errs = calloc(n, sizeof(*errs)), recv0 = 0;
	int64_t *perrs = calloc(n, sizeof(*perrs)), sent0 = 0;
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
			sent0 = info.publish_ns;
			log0 = m.log_time;
		}
		perrs[got] = (info.publish_ns - sent0) - (int64_t)(m.log_time - log0);
		errs[got++] = (t - recv0) - (int64_t)(m.log_time - log0);
	}
	mcap_reader_close(r);
	int st;
	waitpid(player, &st, 0);
	pthread_join(fl.thread, NULL);
	uint64_t short_of = n - got; /* never arrived (or the file was short) */
	/* errs[i]: how much later than the recording says message i arrived,
	 * relative to the first (perrs[i]: was stamped by the player). A
	 * constant part is latency (the first message's own delay); the
	 * timing error is the spread around it. */
	if (got) {
		int64_t median = spread(errs, got);
		spread(perrs, got);
		spread(fl.late, n);
		printf("play at --rate 1: %" PRIu64 " messages at 1 kHz; offsets vs the recording "
		       "(first message as 0): median %.3f ms; timing error around it: p50 %.3f ms, "
		       "p99 %.3f ms, max %.3f ms\n",
		       got, median / 1e6, errs[got / 2] / 1e6, errs[got * 99 / 100] / 1e6,
		       errs[got - 1] / 1e6);
		printf("  of which the player's own publish stamps: p50 %.3f ms, p99 %.3f ms, "
		       "max %.3f ms\n",
		       perrs[got / 2] / 1e6, perrs[got * 99 / 100] / 1e6, perrs[got - 1] / 1e6);
		printf("  a bare 1 kHz clock_nanosleep loop meanwhile, its wake-ups: p50 %.3f ms, "
		       "p99 %.3f ms, max %.3f ms\n",
		       fl.late[n / 2] / 1e6, fl.late[n * 99 / 100] / 1e6, fl.late[n - 1] / 1e6);
		error_row("rec_sleep_floor", fl.late, n, NULL, NAN, NAN);
		double p99_floor = (double)fl.late[n * 99 / 100];
		error_row("rec_play_sent", perrs, got, "rec_sleep_floor",
			  p99_floor > 0 ? (double)perrs[got * 99 / 100] / p99_floor : NAN, NAN);
		error_row("rec_play", errs, got, "rec_sleep_floor",
			  p99_floor > 0 ? (double)errs[got * 99 / 100] / p99_floor : NAN,
			  100.0 * (double)short_of / (double)n);
	}
	free(errs);
	free(perrs);
	free(fl.late);
	shmbus_sub_close(sub);
	unlink(file);
	unlink(out);
}

int main(int argc, char **argv)
{
	const char *what = "all";
	double mbs = 2000;
	if (argc < 2) {
		fprintf(stderr, "usage: %s SHMBUS_CLI [floor|bulk|camera|play|all] [--seconds S] "
				"[--rate-mbs MBS] [--only SUBSTR[,SUBSTR...]] [--tsv FILE]\n",
			argv[0]);
		return 2;
	}
	cli = argv[1];
	for (int i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc)
			seconds = atof(argv[++i]);
		else if (strcmp(argv[i], "--rate-mbs") == 0 && i + 1 < argc)
			mbs = atof(argv[++i]);
		else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc)
			only = argv[++i];
		else if (strcmp(argv[i], "--tsv") == 0 && i + 1 < argc) {
			if (!(tsv = fopen(argv[++i], "a"))) {
				fprintf(stderr, "%s: %s\n", argv[i], strerror(errno));
				return 1;
			}
		} else
			what = argv[i];
	}
	if (!(seconds > 0) || !(mbs > 0)) {
		fprintf(stderr, "--seconds and --rate-mbs must be positive\n");
		return 2;
	}
	bool all = !strcmp(what, "all");
	snprintf(bus_name, sizeof(bus_name), "record-bench-%d", (int)getpid());
	shmbus_bus *bus;
	struct shmbus_connect_options o;
	shmbus_connect_options_init(&o);
	if (shmbus_connect(bus_name, &o, &bus)) {
		fprintf(stderr, "connect: %s\n", shmbus_errmsg());
		return 1;
	}
	if (tsv) {
		/* Not the idle share shmbus-bench measures: these cases keep
		 * both CPUs busy themselves. The load average says what else ran. */
		char load[64] = "?";
		FILE *f = fopen("/proc/loadavg", "r");
		if (f && fgets(load, sizeof(load), f))
			load[strcspn(load, " ")] = '\0';
		if (f)
			fclose(f);
		fprintf(tsv, "# recording: shmbus-record-bench, files in /dev/shm, %.1f s per case, "
			     "one pass each; rec_bulk offered %.0f MB/s of 1 MiB messages, "
			     "rec_bulk_over 4x that; rec_play*, rec_sleep_floor: timing error in the latency "
			     "columns, ratio of p99s; "
			     "load average (1 min) at its start %s\n",
			seconds, mbs, load);
	}
	/* The floor first: the bulk rows give their ratio to it. */
	if ((all || !strcmp(what, "floor") || !strcmp(what, "bulk")) && selected("rec_write_floor"))
		bench_floor(mbs);
	if (all || !strcmp(what, "bulk"))
		bench_bulk(bus, mbs);
	if ((all || !strcmp(what, "camera")) && selected("rec_camera"))
		bench_camera(bus);
	if ((all || !strcmp(what, "play")) && selected("rec_play"))
		bench_play(bus);
	int broker = shmbus_broker_pid(bus);
	shmbus_disconnect(bus);
	if (broker > 0)
		kill(broker, SIGTERM);
	if (tsv)
		fclose(tsv);
	return 0;
}
