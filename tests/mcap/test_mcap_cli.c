/*
 * test_mcap_cli - `shmbus record`, `play` and `mcap` on a live bus of the
 * test's own, with real publisher processes sending typed messages
 * (shmbus.msgs.Imu through the generated code): the recording holds every
 * message in order and passes the spec check, `mcap info` counts match,
 * `play` republishes the same content in order with timing scaled by
 * --rate, a recorder killed with SIGKILL leaves a file readable up to its
 * last complete chunk and reported incomplete, `-a` picks up topics
 * created later, and bad input gets clear errors.
 */
#include "harness.h"
#include "mcap.h"
#include "mcap_internal.h"
#include "foxglove_check.h"
#include "spec_check.h"

#include "shmbus/msgs/imu.shmbus.h"

#include <CUnit/Basic.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <zstd.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static const char *cli;
static char dir[] = "/tmp/t-mcap-cli-XXXXXX";

/* Runs head[0] with head's arguments, then args, with stdout/stderr into
 * dir/NAME.out/.err; returns its pid. */
static pid_t spawn_into(const char *name, char *const head[], char *const args[])
{
	char out[256], err[256];
	char *argv[32];
	int n = 0;
	posix_spawn_file_actions_t fa;
	pid_t pid;
	for (int i = 0; head[i] && n < 31; i++)
		argv[n++] = head[i];
	for (int i = 0; args[i] && n < 31; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	snprintf(out, sizeof(out), "%s/%s.out", dir, name);
	snprintf(err, sizeof(err), "%s/%s.err", dir, name);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	posix_spawn_file_actions_addopen(&fa, 2, err, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	int rc = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	return rc == 0 ? pid : -1;
}

/* Runs the shmbus CLI (spawn_into). */
static pid_t spawn_cli(const char *name, char *const args[])
{
	char *head[] = { (char *)cli, NULL };
	return spawn_into(name, head, args);
}

static char *slurp(const char *name, const char *ext)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/%s.%s", dir, name, ext);
	FILE *f = fopen(path, "r");
	if (!f)
		return strdup("");
	char *buf = calloc(1, 1 << 20);
	size_t n = fread(buf, 1, (1 << 20) - 1, f);
	buf[n] = 0;
	fclose(f);
	return buf;
}

/* Waits (bounded) until the CLI's output NAME.EXT holds `text`. */
static bool wait_output(const char *name, const char *ext, const char *text)
{
	int64_t deadline = h_now_ns() + 20000000000ll;
	while (h_now_ns() < deadline) {
		char *o = slurp(name, ext);
		bool found = strstr(o, text) != NULL;
		free(o);
		if (found)
			return true;
		nanosleep(&(struct timespec){ 0, 1000000 }, NULL);
	}
	return false;
}

/* Runs the CLI to completion (bounded): its exit status. */
static int run_cli(const char *name, char *const args[])
{
	pid_t pid = spawn_cli(name, args);
	if (pid < 0)
		return -1;
	return h_reap(pid, 60000);
}

static void path_in_dir(char *buf, size_t len, const char *file)
{
	snprintf(buf, len, "%s/%s", dir, file);
}

/* Topics that carry 1 to 2 kHz here get a ring of a second or more, so
 * that the recorder and the test's own subscribers, slowed by the
 * sanitizers on a loaded machine, keep up (these tests count every
 * message). */
static const struct shmbus_topic_options *big_ring(void)
{
	static struct shmbus_topic_options to;
	shmbus_topic_options_init(&to);
	to.slot_count = 2048;
	to.max_message_size = 512;
	return &to;
}

/* Waits until `topic` has `n` subscribers (the recorder has joined). */
static bool wait_subscribers(shmbus_bus *bus, const char *topic, uint32_t n)
{
	int64_t deadline = h_now_ns() + 20000000000ll;
	struct shmbus_topic_info ti;
	while (h_now_ns() < deadline) {
		if (shmbus_topic_inspect(bus, topic, &ti, NULL, 0, NULL, NULL, 0, NULL) == 0 &&
		    ti.subscribers >= n)
			return true;
		struct timespec ts = { 0, 1000000 };
		nanosleep(&ts, NULL);
	}
	return false;
}

/* Waits until the (only) subscriber of topic has taken `count` messages. */
static bool wait_received_within(shmbus_bus *bus, const char *topic, uint64_t count, int ms)
{
	int64_t deadline = h_now_ns() + (int64_t)ms * 1000000;
	struct shmbus_topic_info ti;
	struct shmbus_client_info subs[4];
	size_t ns = 0;
	while (h_now_ns() < deadline) {
		if (shmbus_topic_inspect(bus, topic, &ti, NULL, 0, NULL, subs, 4, &ns) == 0 &&
		    ns >= 1 && subs[0].count + subs[0].lost >= count)
			return true;
		struct timespec ts = { 0, 1000000 };
		nanosleep(&ts, NULL);
	}
	return false;
}

static bool wait_received(shmbus_bus *bus, const char *topic, uint64_t count)
{
	return wait_received_within(bus, topic, count, 30000);
}

/* One message before the recorder starts, so that its position can be
 * seen: the subscriber shows in the topic's table a moment before its
 * start position is fixed, and messages published in between would be
 * before its start. */
static void publish_marker(shmbus_pub *pub)
{
	Shmbus__Msgs__Imu m = SHMBUS__MSGS__IMU__INIT;
	CU_ASSERT_EQUAL(shmbus__msgs__imu__publish(pub, &m, NULL), 0);
}

/* Waits until the recorder's subscriber is positioned after the marker. */
static bool wait_positioned(shmbus_bus *bus, const char *topic)
{
	int64_t deadline = h_now_ns() + 20000000000ll;
	struct shmbus_topic_info ti;
	struct shmbus_client_info subs[2];
	size_t ns = 0;
	while (h_now_ns() < deadline) {
		if (shmbus_topic_inspect(bus, topic, &ti, NULL, 0, NULL, subs, 2, &ns) == 0 &&
		    ns >= 1 && ti.next_seq > 0 && subs[0].next_seq >= ti.next_seq)
			return true;
		struct timespec ts = { 0, 1000000 };
		nanosleep(&ts, NULL);
	}
	return false;
}

struct pub_job {
	const char *bus;
	const char *topic;
	int n;
	long period_us;
};

/* Child: publishes n Imu messages whose header.stamp_ns is 0..n-1. */
static int publisher(void *arg, int fd)
{
	const struct pub_job *j = arg;
	shmbus_bus *bus;
	shmbus_pub *pub;
	(void)fd;
	if (shmbus_connect(j->bus, NULL, &bus) != 0)
		return 10;
	if (shmbus__msgs__imu__pub_open(bus, j->topic, NULL, NULL, &pub) != 0)
		return 11;
	int64_t next = now_mono_ns();
	for (int i = 0; i < j->n; i++) {
		Shmbus__Msgs__Header h = SHMBUS__MSGS__HEADER__INIT;
		Shmbus__Msgs__Imu m = SHMBUS__MSGS__IMU__INIT;
		h.stamp_ns = i;
		h.frame_id = (char *)"imu_link";
		m.header = &h;
		if (shmbus__msgs__imu__publish(pub, &m, NULL) != 0)
			return 12;
		if (j->period_us) {
			next += (int64_t)j->period_us * 1000;
			now_sleep_until(next);
		}
	}
	shmbus_pub_close(pub);
	shmbus_disconnect(bus);
	return 0;
}

/* Per channel of a recording: stamps must run 0,1,2... with consecutive
 * sequence numbers. Returns messages read, or -1. */
static long check_recording(const char *path, const char *topic, bool *complete, bool gaps)
{
	char err[512];
	mcap_reader *r;
	struct mcap_message m;
	long n = 0;
	uint32_t first_seq = 0;
	if (mcap_reader_open(path, 0, &r, err, sizeof(err)) != 0) {
		fprintf(stderr, "\n%s\n", err);
		return -1;
	}
	*complete = mcap_reader_info(r)->complete;
	int rc;
	while ((rc = mcap_reader_next(r, &m)) == 1) {
		const struct mcap_channel *ch = mcap_reader_channel(r, m.channel_id);
		if (strcmp(ch->topic, topic) != 0)
			continue;
		Shmbus__Msgs__Imu *imu = shmbus__msgs__imu__unpack(NULL, m.size, m.data);
		bool ok = imu && imu->header && strcmp(imu->header->frame_id, "imu_link") == 0;
		if (n == 0 && ok)
			first_seq = m.sequence - (uint32_t)imu->header->stamp_ns;
		/* stamp i went out with sequence number first_seq + i; with gaps
		 * (a lapped recorder) some are missing, never reordered. */
		ok = ok && m.sequence == first_seq + (uint32_t)imu->header->stamp_ns &&
		     (gaps ? imu->header->stamp_ns >= n : imu->header->stamp_ns == n) &&
		     m.log_time == m.publish_time && m.log_time > 0;
		if (ok && gaps)
			n = imu->header->stamp_ns;
		long stamp = imu && imu->header ? (long)imu->header->stamp_ns : -1;
		if (imu)
			shmbus__msgs__imu__free_unpacked(imu, NULL);
		if (!ok) {
			/* A later intact message is a gap (the recorder was lapped:
			 * it counts those lost), not a corrupt one: say which. */
			if (stamp > n)
				fprintf(stderr, "\n%s: %s misses messages %ld..%ld\n", path, topic, n,
					stamp - 1);
			else
				fprintf(stderr, "\n%s: message %ld of %s is not what was published\n",
					path, n, topic);
			mcap_reader_close(r);
			return -1;
		}
		n++;
	}
	mcap_reader_close(r);
	return rc == 0 ? n : -1;
}

/* Every message our reader finds in a file. */
static long count_messages(const char *path)
{
	char err[512];
	mcap_reader *r;
	struct mcap_message m;
	long n = 0;
	if (mcap_reader_open(path, 0, &r, err, sizeof(err)) != 0)
		return -1;
	while (mcap_reader_next(r, &m) == 1)
		n++;
	mcap_reader_close(r);
	return n;
}

static int by_value(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

#define N_MSGS 1500

static void test_record_info_play(void)
{
	const char *bus_name = h_bus_name("mcap");
	shmbus_bus *bus = h_connect(bus_name);
	shmbus_pub *keep[3];
	char file[256];
	CU_ASSERT_PTR_NOT_NULL_FATAL(bus);
	path_in_dir(file, sizeof(file), "live.mcap");
	/* The topics exist before the recorder starts. */
	CU_ASSERT_EQUAL_FATAL(shmbus__msgs__imu__pub_open(bus, "imu/a", big_ring(), NULL, &keep[0]), 0);
	CU_ASSERT_EQUAL_FATAL(shmbus__msgs__imu__pub_open(bus, "imu/b", big_ring(), NULL, &keep[1]), 0);
	CU_ASSERT_EQUAL_FATAL(shmbus__msgs__imu__pub_open(bus, "replay/a", big_ring(), NULL, &keep[2]), 0);
	publish_marker(keep[0]);
	publish_marker(keep[1]);

	char *rec_args[] = { "record", "--bus", (char *)bus_name, "-o", file, "--compression",
			     "lz4", "--chunk-size", "8", "imu/a", "imu/b", NULL };
	pid_t rec = spawn_cli("record", rec_args);
	CU_ASSERT_TRUE_FATAL(rec > 0);
	CU_ASSERT_TRUE(wait_positioned(bus, "imu/a"));
	CU_ASSERT_TRUE(wait_positioned(bus, "imu/b"));

	struct pub_job ja = { bus_name, "imu/a", N_MSGS, 1000 };
	struct pub_job jb = { bus_name, "imu/b", N_MSGS, 700 };
	int fa, fb;
	pid_t pa = h_fork(publisher, &ja, &fa), pb = h_fork(publisher, &jb, &fb);
	CU_ASSERT_EQUAL(h_reap(pa, 30000), 0);
	CU_ASSERT_EQUAL(h_reap(pb, 30000), 0);
	close(fa);
	close(fb);
	CU_ASSERT_TRUE(wait_received(bus, "imu/a", N_MSGS));
	CU_ASSERT_TRUE(wait_received(bus, "imu/b", N_MSGS));
	kill(rec, SIGINT);
	CU_ASSERT_EQUAL(h_reap(rec, 20000), 0);
	char *out = slurp("record", "out");
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "recorded 3000 messages"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "1500 recorded          0 lost"));
	if (!strstr(out, "recorded 3000 messages"))
		fprintf(stderr, "\nrecord said:\n%s\n", out);
	free(out);

	struct spec_result sr;
	int sc = spec_check(file, &sr);
	if (sc)
		fprintf(stderr, "\nspec check: %s\n", sr.why);
	CU_ASSERT_EQUAL(sc, 0);
	CU_ASSERT_EQUAL(sr.messages, 2 * N_MSGS);
	CU_ASSERT_EQUAL(sr.metadata, 1);
	bool complete = false;
	CU_ASSERT_EQUAL(check_recording(file, "imu/a", &complete, false), N_MSGS);
	CU_ASSERT_EQUAL(check_recording(file, "imu/b", &complete, false), N_MSGS);
	CU_ASSERT_TRUE(complete);

	char *info_args[] = { "mcap", "info", file, NULL };
	CU_ASSERT_EQUAL(run_cli("info", info_args), 0);
	out = slurp("info", "out");
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "status:      complete"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "messages:    3000\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "chunks:      "));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "lz4: "));
	const char *line = strstr(out, "  imu/a ");
	CU_ASSERT_TRUE(line && strstr(line, "shmbus.msgs.Imu") &&
		       strstr(line, "1500 msgs") < strchr(line, '\n'));
	free(out);

	char *cat_args[] = { "mcap", "cat", file, "--topics", "imu/b", NULL };
	CU_ASSERT_EQUAL(run_cli("cat", cat_args), 0);
	out = slurp("cat", "out");
	size_t lines = 0;
	for (char *p = out; (p = strchr(p, '\n')); p++)
		lines++;
	CU_ASSERT_EQUAL(lines, N_MSGS);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "{\"topic\":\"imu/b\""));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"frameId\":\"imu_link\""));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"stampNs\":\"1499\""));
	CU_ASSERT_PTR_NULL(strstr(out, "imu/a"));
	free(out);

	/* Play imu/a as replay/a at double speed to a subscriber here. */
	shmbus_sub *sub;
	struct shmbus_sub_options so;
	shmbus_sub_options_init(&so);
	CU_ASSERT_EQUAL_FATAL(shmbus__msgs__imu__sub_open(bus, "replay/a", NULL, &so, &sub), 0);
	char *play_args[] = { "play", "--bus", (char *)bus_name, file, "--rate", "2", "--topics",
			      "imu/a", "--remap", "imu/a:=replay/a", NULL };
	pid_t play = spawn_cli("play", play_args);
	CU_ASSERT_TRUE_FATAL(play > 0);
	mcap_reader *r;
	char err[512];
	CU_ASSERT_EQUAL_FATAL(mcap_reader_open(file, 0, &r, err, sizeof(err)), 0);
	struct mcap_message m;
	uint64_t log0 = 0;
	int64_t pub0 = 0, worst = 0;
	static int64_t errors[N_MSGS];
	long got = 0;
	while (got < N_MSGS && mcap_reader_next(r, &m) == 1) {
		if (strcmp(mcap_reader_channel(r, m.channel_id)->topic, "imu/a") != 0)
			continue;
		Shmbus__Msgs__Imu *imu = NULL;
		struct shmbus_msg_info info;
		int rc = SHMBUS_EAGAIN;
		int64_t deadline = h_now_ns() + 10000000000ll;
		while (rc == SHMBUS_EAGAIN && h_now_ns() < deadline) {
			shmbus__msgs__imu__wait(sub, 100000000);
			rc = shmbus__msgs__imu__take(sub, NULL, &imu, &info);
		}
		if (rc != 0) {
			CU_FAIL("play did not publish everything");
			break;
		}
		CU_ASSERT_EQUAL(info.lost, 0);
		CU_ASSERT_TRUE(imu->header && imu->header->stamp_ns == got);
		shmbus__msgs__imu__free(imu, NULL);
		if (got == 0) {
			log0 = m.log_time;
			pub0 = info.publish_ns;
		}
		/* When the player published it (its own stamp), against when
		 * it was due: half the recorded time since the first. */
		errors[got++] = (info.publish_ns - pub0) - (int64_t)(m.log_time - log0) / 2;
	}
	mcap_reader_close(r);
	CU_ASSERT_EQUAL(got, N_MSGS);
	/* The schedule's start is where most messages put it (the first
	 * message may itself be late); each message's error is its distance
	 * from that. The median error, so that scheduler hiccups on a loaded
	 * machine do not count, while --rate not honoured would (the
	 * recording spans 1.5 s: at rate 1 the median error is ~190 ms). */
	qsort(errors, (size_t)got, sizeof(*errors), by_value);
	int64_t start = got ? errors[got / 2] : 0;
	for (long i = 0; i < got; i++) {
		errors[i] = llabs(errors[i] - start);
		worst = errors[i] > worst ? errors[i] : worst;
	}
	qsort(errors, (size_t)got, sizeof(*errors), by_value);
	int64_t median = got ? errors[got / 2] : 0;
	printf("\n  played %ld messages at --rate 2: timing error median %.3f ms, worst %.3f ms ",
	       got, (double)median / 1e6, (double)worst / 1e6);
	/* Generous, as a loaded machine delays single wake-ups by tens of
	 * milliseconds; BENCHMARKS.md and shmbus-record-bench give the
	 * measured error. */
	CU_ASSERT_TRUE(median < 50000000);
	CU_ASSERT_EQUAL(h_reap(play, 20000), 0);
	out = slurp("play", "out");
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "published 1500 messages"));
	if (got != N_MSGS) {
		char *e = slurp("play", "err");
		fprintf(stderr, "\nplay said:\n%s%s\n", out, e);
		free(e);
	}
	free(out);

	shmbus_sub_close(sub);
	for (int i = 0; i < 3; i++)
		shmbus_pub_close(keep[i]);
	shmbus_disconnect(bus);
	h_stop_bus(bus_name);
}

static void test_kill9_recorder(void)
{
	const char *bus_name = h_bus_name("mcapk");
	shmbus_bus *bus = h_connect(bus_name);
	shmbus_pub *keep;
	char file[256];
	CU_ASSERT_PTR_NOT_NULL_FATAL(bus);
	path_in_dir(file, sizeof(file), "killed.mcap");
	CU_ASSERT_EQUAL_FATAL(shmbus__msgs__imu__pub_open(bus, "k/imu", big_ring(), NULL, &keep), 0);
	publish_marker(keep);
	char *rec_args[] = { "record", "--bus", (char *)bus_name, "-o", file, "--chunk-size", "4",
			     "k/imu", NULL };
	pid_t rec = spawn_cli("record9", rec_args);
	CU_ASSERT_TRUE(wait_positioned(bus, "k/imu"));
	struct pub_job j = { bus_name, "k/imu", 3000, 500 };
	int fd;
	pid_t p = h_fork(publisher, &j, &fd);
	CU_ASSERT_EQUAL(h_reap(p, 30000), 0);
	close(fd);
	CU_ASSERT_TRUE(wait_received(bus, "k/imu", 3000));
	struct shmbus_topic_info ti;
	struct shmbus_client_info subs[2];
	size_t ns = 0;
	CU_ASSERT_EQUAL(shmbus_topic_inspect(bus, "k/imu", &ti, NULL, 0, NULL, subs, 2, &ns), 0);
	uint64_t lost = ns ? subs[0].lost : 0;
	kill(rec, SIGKILL);
	CU_ASSERT_EQUAL(h_reap(rec, 10000), 128 + SIGKILL);

	bool complete = true;
	long last = check_recording(file, "k/imu", &complete, true);
	CU_ASSERT_FALSE(complete);
	/* Everything it took but the chunk being built (4 KiB: ~50 of these
	 * messages); check_recording gives the index of the last one + 1. */
	printf("\n  killed recorder: messages up to %ld of 3000 readable (%llu lost while "
	       "recording) ", last, (unsigned long long)lost);
	CU_ASSERT_TRUE(last >= 3000 - 100 && last < 3000);
	char *info_args[] = { "mcap", "info", file, NULL };
	CU_ASSERT_EQUAL(run_cli("info9", info_args), 0);
	char *out = slurp("info9", "out");
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "status:      incomplete"));
	free(out);

	/* Foxglove's reader refuses the cut file (no summary, no footer)... */
	char line[2048], fixed[256];
	CU_ASSERT_NOT_EQUAL(foxglove_check(file, -1, line, sizeof(line)), 0);
	/* ...and reads the recovered one with every message of its complete
	 * chunks: all that our reader finds in the cut file. */
	long held = count_messages(file);
	path_in_dir(fixed, sizeof(fixed), "killed-recovered.mcap");
	char *rec_fix[] = { "mcap", "recover", file, NULL };
	CU_ASSERT_EQUAL(run_cli("recover9", rec_fix), 0);
	out = slurp("recover9", "out");
	char want[512];
	snprintf(want, sizeof(want), "recovered %ld messages of 1 channels into %s", held, fixed);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, want));
	free(out);
	int fc = foxglove_check(fixed, held, line, sizeof(line));
	if (fc == 1)
		fprintf(stderr, "\n@mcap/core on %s: %s\n", fixed, line);
	CU_ASSERT_NOT_EQUAL(fc, 1);
	struct spec_result sr;
	CU_ASSERT_EQUAL(spec_check(fixed, &sr), 0);
	CU_ASSERT_EQUAL(sr.messages, (uint64_t)held);
	CU_ASSERT_EQUAL(check_recording(fixed, "k/imu", &complete, true), last);
	CU_ASSERT_TRUE(complete);
	printf("\n  recovered %ld messages; Foxglove's reader %s ", held,
	       fc == 0 ? "reads them all" : "did not run");
	/* Never over an existing file. */
	CU_ASSERT_EQUAL(run_cli("recover9b", rec_fix), 1);
	shmbus_pub_close(keep);
	shmbus_disconnect(bus);
	h_stop_bus(bus_name);
}

/* Foxglove's reader must accept the file with `messages` messages. */
static void foxglove_ok(const char *path, long messages)
{
	char line[2048];
	int rc = foxglove_check(path, messages, line, sizeof(line));
	if (rc == 1)
		fprintf(stderr, "\n@mcap/core on %s: %s\n", path, line);
	CU_ASSERT_NOT_EQUAL(rc, 1);
}

static void test_record_all_untyped(void)
{
	const char *bus_name = h_bus_name("mcapa");
	shmbus_bus *bus = h_connect(bus_name);
	char file[256];
	CU_ASSERT_PTR_NOT_NULL_FATAL(bus);
	path_in_dir(file, sizeof(file), "all.mcap");
	char *rec_args[] = { "record", "--bus", (char *)bus_name, "-o", file, "-a",
			     "--compression", "none", NULL };
	/* Recordings are created 0666 less the umask. */
	mode_t old_mask = umask(002);
	pid_t rec = spawn_cli("recall", rec_args);
	umask(old_mask);
	CU_ASSERT_TRUE(wait_output("recall", "out", "recording into "));
	/* Created after the recorder started: its topic event opens it. And a
	 * typed topic whose publisher stored no schema (as README's first
	 * example does). */
	shmbus_pub *pub, *noschema;
	struct shmbus_topic_options to;
	shmbus_topic_options_init(&to);
	to.type_name = "my.Reading";
	CU_ASSERT_EQUAL_FATAL(shmbus_pub_open(bus, "sensors/temp", &to, NULL, &noschema), 0);
	CU_ASSERT_EQUAL(shmbus_pub_send(noschema, "\x08\x05", 2, NULL), 0);
	CU_ASSERT_EQUAL_FATAL(shmbus_pub_open(bus, "raw/x", NULL, NULL, &pub), 0);
	CU_ASSERT_TRUE(wait_subscribers(bus, "raw/x", 1));
	/* The subscriber shows in the topic's table a moment before its
	 * position is fixed: publish until it has taken one. */
	uint64_t warm = 0;
	do {
		CU_ASSERT_EQUAL_FATAL(shmbus_pub_send(pub, "warm", 4, NULL), 0);
		warm++;
	} while (!wait_received_within(bus, "raw/x", 1, 10) && warm < 2000);
	for (int i = 0; i < 10; i++) {
		char msg[32];
		int len = snprintf(msg, sizeof(msg), "hello %d", i);
		CU_ASSERT_EQUAL(shmbus_pub_send(pub, msg, (size_t)len, NULL), 0);
	}
	bool received = wait_received(bus, "raw/x", 11);
	CU_ASSERT_TRUE(received);
	kill(rec, SIGTERM);
	CU_ASSERT_EQUAL(h_reap(rec, 20000), 0);
	if (!received) {
		char *o = slurp("recall", "out"), *e = slurp("recall", "err");
		fprintf(stderr, "\nrecorder said:\n%s%s\n", o, e);
		free(o);
		free(e);
	}
	struct stat st;
	CU_ASSERT_EQUAL(stat(file, &st), 0);
	CU_ASSERT_EQUAL(st.st_mode & 0777, 0664);
	char *info_args[] = { "mcap", "info", file, NULL };
	CU_ASSERT_EQUAL(run_cli("infoall", info_args), 0);
	char *out = slurp("infoall", "out");
	const char *line = strstr(out, "  raw/x ");
	CU_ASSERT_TRUE(line && strstr(line, "(untyped)") && strstr(line, " msgs") &&
		       strstr(line, "x-shmbus-raw"));
	/* From its first message, though it was created after the recorder
	 * started: the broker's event, then SHMBUS_START_FIRST. */
	line = strstr(out, "  sensors/temp ");
	CU_ASSERT_TRUE(line && strstr(line, "my.Reading") && strstr(line, " 1 msgs") &&
		       strstr(line, "x-shmbus-typed-noschema"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "none: "));
	free(out);
	foxglove_ok(file, -1);
	char *cat_args[] = { "mcap", "cat", file, NULL };
	CU_ASSERT_EQUAL(run_cli("catall", cat_args), 0);
	out = slurp("catall", "out");
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"_base64\":\"aGVsbG8gOQ==\"")); /* hello 9 */
	free(out);
	shmbus_pub_close(pub);
	shmbus_pub_close(noschema);
	shmbus_disconnect(bus);
	h_stop_bus(bus_name);
}

/* A recorder lapped while it copies: big messages through a ring of 4
 * slots, published as fast as the test can fill them, so the publisher
 * overwrites slots the recorder is still copying. Every message in the
 * file must be whole (each word of message i is i), and what the recorder
 * reports recorded plus lost must be exactly what was published: a torn
 * copy is dropped and counted lost, once. */
#define TORN_SIZE (256u << 10)
#define TORN_MSGS 3000

static void fill_torn(uint64_t *w, uint64_t i)
{
	for (size_t k = 0; k < TORN_SIZE / 8; k++)
		w[k] = i;
}

static void test_record_torn(void)
{
	const char *bus_name = h_bus_name("mcapt");
	shmbus_bus *bus = h_connect(bus_name);
	shmbus_pub *pub;
	char file[256];
	CU_ASSERT_PTR_NOT_NULL_FATAL(bus);
	path_in_dir(file, sizeof(file), "torn.mcap");
	struct shmbus_topic_options to;
	shmbus_topic_options_init(&to);
	to.slot_count = 4;
	to.max_message_size = TORN_SIZE;
	CU_ASSERT_EQUAL_FATAL(shmbus_pub_open(bus, "torn/big", &to, NULL, &pub), 0);
	void *buf;
	size_t cap;
	/* Message 0 is the marker the recorder's position is seen by. */
	CU_ASSERT_EQUAL_FATAL(shmbus_pub_loan(pub, &buf, &cap), 0);
	fill_torn(buf, 0);
	CU_ASSERT_EQUAL_FATAL(shmbus_pub_publish(pub, TORN_SIZE, NULL), 0);
	char *rec_args[] = { "record", "--bus", (char *)bus_name, "-o", file, "--compression",
			     "none", "torn/big", NULL };
	pid_t rec = spawn_cli("rectorn", rec_args);
	CU_ASSERT_TRUE_FATAL(wait_positioned(bus, "torn/big"));
	for (uint64_t i = 1; i <= TORN_MSGS; i++) {
		CU_ASSERT_EQUAL_FATAL(shmbus_pub_loan(pub, &buf, &cap), 0);
		fill_torn(buf, i);
		CU_ASSERT_EQUAL_FATAL(shmbus_pub_publish(pub, TORN_SIZE, NULL), 0);
	}
	CU_ASSERT_TRUE(wait_received(bus, "torn/big", TORN_MSGS));
	kill(rec, SIGTERM);
	CU_ASSERT_EQUAL(h_reap(rec, 20000), 0);

	char err[512];
	mcap_reader *r;
	struct mcap_message m;
	long whole = 0, torn = 0;
	uint64_t last = 0;
	CU_ASSERT_EQUAL_FATAL(mcap_reader_open(file, 0, &r, err, sizeof(err)), 0);
	int rc;
	while ((rc = mcap_reader_next(r, &m)) == 1) {
		uint64_t first;
		CU_ASSERT_EQUAL_FATAL(m.size, TORN_SIZE);
		memcpy(&first, m.data, 8);
		bool ok = first > last && first <= TORN_MSGS;
		for (size_t k = 1; ok && k < TORN_SIZE / 8; k++) {
			uint64_t w;
			memcpy(&w, (const uint8_t *)m.data + 8 * k, 8);
			ok = w == first;
		}
		if (ok) {
			whole++;
			last = first;
		} else if (torn++ == 0) {
			fprintf(stderr, "\nmessage %ld of %s (sequence %u) is torn\n", whole + torn,
				file, m.sequence);
		}
	}
	CU_ASSERT_EQUAL(rc, 0);
	mcap_reader_close(r);
	CU_ASSERT_EQUAL(torn, 0);

	/* "torn/big   N recorded   M lost": N is what the file holds, and
	 * N + M every message published after the recorder's start. */
	char *out = slurp("rectorn", "out");
	const char *line = strstr(out, "  torn/big ");
	unsigned long long recorded = 0, lost = 0;
	CU_ASSERT_TRUE(line && sscanf(line, " torn/big %llu recorded %llu lost", &recorded,
				      &lost) == 2);
	CU_ASSERT_EQUAL(recorded, (unsigned long long)whole);
	CU_ASSERT_EQUAL(recorded + lost, TORN_MSGS);
	printf("\n  lapped recorder: %llu of %d recorded whole, %llu lost ", recorded, TORN_MSGS,
	       lost);
	free(out);
	shmbus_pub_close(pub);
	shmbus_disconnect(bus);
	h_stop_bus(bus_name);
}

/* A topic created while the recorder cannot run (stopped): once it runs
 * again it opens the topic at its first message, records what the ring
 * still holds, and says exactly how many it missed. */
static void test_record_missed(void)
{
	const char *bus_name = h_bus_name("mcapm");
	shmbus_bus *bus = h_connect(bus_name);
	char file[256];
	CU_ASSERT_PTR_NOT_NULL_FATAL(bus);
	path_in_dir(file, sizeof(file), "missed.mcap");
	char *rec_args[] = { "record", "--bus", (char *)bus_name, "-o", file, "late/*", NULL };
	pid_t rec = spawn_cli("recmissed", rec_args);
	CU_ASSERT_TRUE(wait_output("recmissed", "out", "recording into "));
	kill(rec, SIGSTOP);
	struct shmbus_topic_options to;
	shmbus_topic_options_init(&to);
	to.slot_count = 16;
	to.history = 8;
	shmbus_pub *pub;
	CU_ASSERT_EQUAL_FATAL(shmbus_pub_open(bus, "late/topic", &to, NULL, &pub), 0);
	for (int i = 0; i < 100; i++)
		CU_ASSERT_EQUAL(shmbus_pub_send(pub, &i, sizeof(i), NULL), 0);
	struct shmbus_topic_info ti;
	CU_ASSERT_EQUAL(shmbus_topic_inspect(bus, "late/topic", &ti, NULL, 0, NULL, NULL, 0, NULL),
			0);
	kill(rec, SIGCONT);
	CU_ASSERT_TRUE(wait_received(bus, "late/topic", 100));
	kill(rec, SIGINT);
	CU_ASSERT_EQUAL(h_reap(rec, 20000), 0);
	char *out = slurp("recmissed", "out"), want[128];
	snprintf(want, sizeof(want), "%10u recorded %10u lost (%u of them published before it "
		 "was found)", ti.history, 100 - ti.history, 100 - ti.history);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, want));
	if (!strstr(out, want))
		fprintf(stderr, "\nwanted '%s' in:\n%s\n", want, out);
	free(out);
	/* The last `history` messages: 100 - history .. 99, in order. */
	char err[512];
	mcap_reader *r;
	struct mcap_message m;
	CU_ASSERT_EQUAL_FATAL(mcap_reader_open(file, 0, &r, err, sizeof(err)), 0);
	int want_i = 100 - (int)ti.history, n = 0;
	while (mcap_reader_next(r, &m) == 1) {
		int v;
		memcpy(&v, m.data, sizeof(v));
		CU_ASSERT_EQUAL(v, want_i);
		want_i++;
		n++;
	}
	CU_ASSERT_EQUAL(n, (int)ti.history);
	mcap_reader_close(r);
	shmbus_pub_close(pub);
	shmbus_disconnect(bus);
	h_stop_bus(bus_name);
}

/* record with glob patterns and --exclude: the topics that match, those
 * created while recording too, and none of the excluded. */
static void test_record_patterns(void)
{
	const char *bus_name = h_bus_name("mcapg");
	shmbus_bus *bus = h_connect(bus_name);
	char file[256];
	CU_ASSERT_PTR_NOT_NULL_FATAL(bus);
	path_in_dir(file, sizeof(file), "glob.mcap");
	const char *names[] = { "/cam/left", "cam/right", "/cam/depth", "imu", "/cam/ir/raw" };
	shmbus_pub *pub[5];
	for (int i = 0; i < 3; i++)
		CU_ASSERT_EQUAL_FATAL(shmbus_pub_open(bus, names[i], NULL, NULL, &pub[i]), 0);
	char *rec_args[] = { "record", "--bus", (char *)bus_name, "-o", file, "/cam/*",
			     "--exclude", "cam/depth", "--exclude", "*/raw", NULL };
	pid_t rec = spawn_cli("recglob", rec_args);
	CU_ASSERT_TRUE(wait_output("recglob", "out", "recording into "));
	for (int i = 3; i < 5; i++) /* created while recording */
		CU_ASSERT_EQUAL_FATAL(shmbus_pub_open(bus, names[i], NULL, NULL, &pub[i]), 0);
	for (int i = 0; i < 5; i++)
		CU_ASSERT_EQUAL(shmbus_pub_send(pub[i], "x", 1, NULL), 0);
	CU_ASSERT_TRUE(wait_received(bus, "/cam/left", 1));
	CU_ASSERT_TRUE(wait_received(bus, "cam/right", 1));
	kill(rec, SIGINT);
	CU_ASSERT_EQUAL(h_reap(rec, 20000), 0);
	char *info_args[] = { "mcap", "info", file, NULL };
	CU_ASSERT_EQUAL(run_cli("infoglob", info_args), 0);
	char *out = slurp("infoglob", "out");
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "topics:      2\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "  /cam/left "));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "  cam/right "));
	free(out);
	char *bad[] = { "record", "-o", file, "no good", NULL };
	CU_ASSERT_EQUAL(run_cli("recglobbad", bad), 2);
	for (int i = 0; i < 5; i++)
		shmbus_pub_close(pub[i]);
	shmbus_disconnect(bus);
	h_stop_bus(bus_name);
}

static void test_bad_input(void)
{
	char garbage[256], missing[256];
	path_in_dir(garbage, sizeof(garbage), "garbage.mcap");
	path_in_dir(missing, sizeof(missing), "missing.mcap");
	FILE *f = fopen(garbage, "w");
	fputs("\x89MCAP0\r\n\x01\xff\xff\xff\xff\xff\xff\xff\x7f garbage", f);
	fclose(f);
	char *a1[] = { "record", "imu", NULL };
	CU_ASSERT_EQUAL(run_cli("bad1", a1), 2);
	char *a2[] = { "play", missing, NULL };
	CU_ASSERT_EQUAL(run_cli("bad2", a2), 1);
	char *err = slurp("bad2", "err");
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "No such file"));
	free(err);
	char *a3[] = { "mcap", "info", garbage, NULL };
	CU_ASSERT_EQUAL(run_cli("bad3", a3), 1);
	err = slurp("bad3", "err");
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "offset 8"));
	free(err);
	char *a4[] = { "record", "-o", garbage, "--compression", "brotli", "-a", NULL };
	CU_ASSERT_EQUAL(run_cli("bad4", a4), 2);
	char *a5[] = { "record", "--help", NULL };
	CU_ASSERT_EQUAL(run_cli("help", a5), 0);
	char *out = slurp("help", "out");
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "usage: shmbus record"));
	free(out);
}

/* Cut and damaged copies of a recording through the CLI (built with the
 * sanitizers in that configuration): exit 0 or 1, never a crash. */
/* n Imu messages (stamp i, sequence i, log time 1000 + i) on channel
 * "imu", in chunks of chunk_size bytes. */
static void write_imu_file(const char *path, int n, size_t chunk_size,
			   enum mcap_compression comp)
{
	mcap_writer *w;
	struct mcap_writer_options o;
	char err[256];
	uint16_t sid, cid;
	mcap_writer_options_init(&o);
	o.chunk_size = chunk_size;
	o.compression = comp;
	CU_ASSERT_EQUAL_FATAL(mcap_writer_open(path, &o, &w, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(mcap_writer_add_schema(w, "shmbus.msgs.Imu", "protobuf",
					       shmbus_schema_shmbus_2fmsgs_2fimu_2eproto,
					       shmbus_schema_shmbus_2fmsgs_2fimu_2eproto_size, &sid), 0);
	CU_ASSERT_EQUAL(mcap_writer_add_channel(w, sid, "imu", "protobuf", NULL, 0, &cid), 0);
	for (int i = 0; i < n; i++) {
		Shmbus__Msgs__Header h = SHMBUS__MSGS__HEADER__INIT;
		Shmbus__Msgs__Imu m = SHMBUS__MSGS__IMU__INIT;
		uint8_t buf[256];
		h.stamp_ns = i;
		m.header = &h;
		size_t len = shmbus__msgs__imu__pack(&m, buf);
		CU_ASSERT_EQUAL(mcap_writer_message(w, cid, (uint32_t)i, 1000u + (uint64_t)i,
						    1000u + (uint64_t)i, buf, len), 0);
	}
	CU_ASSERT_EQUAL(mcap_writer_close(w, err, sizeof(err)), 0);
}

static void test_cli_damaged_files(void)
{
	char src[256], bad[256];
	path_in_dir(src, sizeof(src), "damage-src.mcap");
	path_in_dir(bad, sizeof(bad), "damaged.mcap");
	write_imu_file(src, 200, 2048, MCAP_COMPRESSION_ZSTD);
	FILE *f = fopen(src, "rb");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	uint8_t *b = malloc(1 << 20);
	size_t n = fread(b, 1, 1 << 20, f);
	fclose(f);
	int runs = 0;
	for (size_t at = 0; at < n; at += n / 23 + 1) {
		for (int cut = 0; cut < 2; cut++) {
			f = fopen(bad, "wb");
			if (cut) {
				fwrite(b, 1, at, f);
			} else {
				b[at] ^= 0x5a;
				fwrite(b, 1, n, f);
				b[at] ^= 0x5a;
			}
			fclose(f);
			char *ai[] = { "mcap", "info", bad, NULL };
			char *ac[] = { "mcap", "cat", bad, NULL };
			int r1 = run_cli("dmg-info", ai), r2 = run_cli("dmg-cat", ac);
			CU_ASSERT_TRUE(r1 == 0 || r1 == 1);
			CU_ASSERT_TRUE(r2 == 0 || r2 == 1);
			if (r1 == 1 || r2 == 1) {
				char *e = slurp(r1 == 1 ? "dmg-info" : "dmg-cat", "err");
				CU_ASSERT_TRUE(strstr(e, "offset") || strstr(e, "MCAP"));
				free(e);
			}
			runs++;
		}
	}
	free(b);
	printf("\n  %d damaged files through mcap info and cat ", runs);
}

/* The Chunk records of a file, each with the MessageIndex records after it:
 * [off, end), and which messages it holds (first, count). */
struct chunk_span {
	size_t off, end;
	long first, count;
};

static size_t find_chunks(const uint8_t *b, size_t n, struct chunk_span *out, size_t cap)
{
	size_t k = 0, off = 8;
	long total = 0;
	while (off + 9 <= n && k < cap) {
		uint64_t len;
		memcpy(&len, b + off + 1, 8); /* little-endian host */
		if (b[off] == 0x0F)
			break;
		if (b[off] == 0x06)
			out[k++] = (struct chunk_span){ off, off + 9 + len, total, 0 };
		if (b[off] == 0x07 && k) {
			uint32_t l;
			memcpy(&l, b + off + 11, 4);
			out[k - 1].count += l / 16;
			out[k - 1].end = off + 9 + len;
			total += l / 16;
		}
		off += 9 + len;
	}
	return k;
}

/* A damaged byte costs what it damaged, not the rest of the file: `mcap
 * recover` skips a damaged record and resumes at the next chunk its CRC
 * vouches for (or that the summary indexes), says what it skipped, and
 * writes everything else, exactly and in order, into a complete file. */
static void test_recover_damaged(void)
{
	enum { N = 300 };
	char src[256], bad[256], out[256];
	path_in_dir(src, sizeof(src), "salvage-src.mcap");
	path_in_dir(bad, sizeof(bad), "salvage.mcap");
	path_in_dir(out, sizeof(out), "salvage-out.mcap");
	write_imu_file(src, N, 1024, MCAP_COMPRESSION_ZSTD);
	uint8_t *b = NULL;
	size_t n = 0;
	FILE *f = fopen(src, "rb");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	b = malloc(1 << 20);
	n = fread(b, 1, 1 << 20, f);
	fclose(f);
	struct chunk_span ch[256];
	size_t nch = find_chunks(b, n, ch, 256);
	CU_ASSERT_FATAL(nch >= 8);
	/* info --check: the whole file is ok; a byte outside every chunk (the
	 * Header's library name) only the data section's CRC sees. */
	char *check[] = { "mcap", "info", src, "--check", NULL };
	CU_ASSERT_EQUAL(run_cli("salvage-check", check), 0);
	char *o = slurp("salvage-check", "out");
	CU_ASSERT_PTR_NOT_NULL(strstr(o, "check:       ok: every record read, every CRC holds"));
	free(o);
	b[30] ^= 0x20;
	f = fopen(bad, "wb");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	CU_ASSERT_EQUAL(fwrite(b, 1, n, f), n);
	fclose(f);
	b[30] ^= 0x20;
	check[2] = bad;
	CU_ASSERT_EQUAL(run_cli("salvage-check", check), 1);
	o = slurp("salvage-check", "out");
	CU_ASSERT_PTR_NOT_NULL(strstr(o, "data section CRC mismatch"));
	free(o);
	/* A byte of the summary: info refuses the file, --check finds every
	 * chunk whole and says the damage is elsewhere, and recover writes
	 * all of it. */
	b[n - 60] ^= 0x20;
	f = fopen(bad, "wb");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	CU_ASSERT_EQUAL(fwrite(b, 1, n, f), n);
	fclose(f);
	b[n - 60] ^= 0x20;
	CU_ASSERT_EQUAL(run_cli("salvage-check", check), 1);
	o = slurp("salvage-check", "out");
	CU_ASSERT_PTR_NOT_NULL(strstr(o, "every chunk whole, every chunk CRC holds; the damage"));
	free(o);
	unlink(out);
	char *whole[] = { "mcap", "recover", bad, "-o", out, NULL };
	CU_ASSERT_EQUAL(run_cli("salvage", whole), 0);
	CU_ASSERT_EQUAL(count_messages(out), N);
	size_t k = nch / 2;
	static const char *const what[] = {
		"a flipped byte in a chunk's data", "a damaged chunk opcode",
		"a chunk length past the end of the file",
		"the first chunk, which holds the channel (the summary has it too)",
		"a damaged chunk in a file cut short",
	};
	for (int c = 0; c < 5; c++) {
		struct chunk_span *d = c == 3 ? &ch[0] : &ch[k];
		uint8_t save[8];
		size_t at = d->off + (d->end - d->off) / 3;
		uint8_t old_at = b[at];
		memcpy(save, b + d->off, 8);
		size_t len = n;
		long want = N - d->count;
		if (c == 0 || c == 3 || c == 4)
			b[at] ^= 0x5a;
		else if (c == 1)
			b[d->off] ^= 0x5a;
		else
			memset(b + d->off + 1, 0xee, 7);
		if (c == 4) {
			/* Cut in the middle of the last chunk: it and the summary go. */
			len = (ch[nch - 1].off + ch[nch - 1].end) / 2;
			want -= ch[nch - 1].count;
		}
		f = fopen(bad, "wb");
		CU_ASSERT_PTR_NOT_NULL_FATAL(f);
		CU_ASSERT_EQUAL(fwrite(b, 1, len, f), len);
		fclose(f);
		memcpy(b + d->off, save, 8);
		b[at] = old_at;
		unlink(out);
		char *args[] = { "mcap", "recover", bad, "-o", out, NULL };
		int rc = run_cli("salvage", args);
		char *err = slurp("salvage", "err");
		o = slurp("salvage", "out");
		char skipped[64], rec[512];
		snprintf(skipped, sizeof(skipped), "skipped bytes %zu..", d->off);
		snprintf(rec, sizeof(rec), "recovered %ld messages of 1 channels into %s", want, out);
		/* With the summary intact, how many of its messages were lost. */
		char held[160];
		snprintf(held, sizeof(held), "the file's summary counts %d messages; the skipped "
					     "bytes held %ld of them", N, d->count);
		bool ok = rc == 1 && strstr(err, skipped) && strstr(o, rec) &&
			  (c == 4 ? !strstr(err, "summary counts") : strstr(err, held) != NULL);
		if (!ok)
			fprintf(stderr, "\n%s: exit %d, want %ld messages and '%s'\nstdout: %s\nstderr: %s\n",
				what[c], rc, want, skipped, o, err);
		CU_ASSERT_TRUE(ok);
		free(err);
		free(o);
		/* info --check names the same range. */
		rc = run_cli("salvage-check", check);
		o = slurp("salvage-check", "out");
		snprintf(skipped, sizeof(skipped), "damaged: bytes %zu..", d->off);
		CU_ASSERT_TRUE(rc == 1 && strstr(o, skipped));
		free(o);
		/* What was written: every message outside the damaged chunk (and
		 * the cut), each exactly as written, in order, in a complete file. */
		char e[512];
		mcap_reader *r;
		struct mcap_message m;
		long got = 0, i = 0;
		bool exact = true;
		if (mcap_reader_open(out, 0, &r, e, sizeof(e)) != 0) {
			fprintf(stderr, "\n%s: %s\n", what[c], e);
			CU_FAIL("the recovered file does not open");
			continue;
		}
		CU_ASSERT_TRUE(mcap_reader_info(r)->complete);
		while (mcap_reader_next(r, &m) == 1) {
			if (i == d->first)
				i += d->count;
			Shmbus__Msgs__Imu *imu = shmbus__msgs__imu__unpack(NULL, m.size, m.data);
			exact = exact && imu && imu->header && imu->header->stamp_ns == i &&
				m.sequence == (uint32_t)i && m.log_time == 1000u + (uint64_t)i;
			if (imu)
				shmbus__msgs__imu__free_unpacked(imu, NULL);
			i++;
			got++;
		}
		mcap_reader_close(r);
		CU_ASSERT_TRUE(exact);
		CU_ASSERT_EQUAL(got, want);
		struct spec_result sr;
		CU_ASSERT_EQUAL(spec_check(out, &sr), 0);
		foxglove_ok(out, want);
		printf("\n  %s: %ld of %d recovered ", what[c], got, N);
	}
	free(b);
}

/* A recording split into many files by `record --split-size` plays as
 * one: every message, in order, and the gaps between the last message of
 * one file and the first of the next as recorded, to within 1 ms
 * (measured between the publish times the subscriber receives). Also a
 * ROS-style name ("/imu") all the way. */
static void test_play_split(void)
{
	const char *rec_bus = h_bus_name("split"), *play_bus = h_bus_name("splitplay");
	char base[256];
	shmbus_bus *bus = h_connect(rec_bus), *bus2 = h_connect(play_bus);
	CU_ASSERT_PTR_NOT_NULL_FATAL(bus);
	CU_ASSERT_PTR_NOT_NULL_FATAL(bus2);
	path_in_dir(base, sizeof(base), "split.mcap");
	shmbus_pub *keep;
	CU_ASSERT_EQUAL_FATAL(shmbus__msgs__imu__pub_open(bus, "/imu", big_ring(), NULL, &keep), 0);
	publish_marker(keep);
	char *rec_args[] = { "record", "--bus", (char *)rec_bus, "-o", base, "--split-size",
			     "0.005", "--chunk-size", "1", "/imu", NULL };
	pid_t rec = spawn_cli("recsplit", rec_args);
	CU_ASSERT_TRUE(wait_positioned(bus, "/imu"));
	enum { N = 800 };
	struct pub_job j = { rec_bus, "/imu", N, 1000 };
	int fd;
	pid_t p = h_fork(publisher, &j, &fd);
	CU_ASSERT_EQUAL(h_reap(p, 30000), 0);
	close(fd);
	CU_ASSERT_TRUE(wait_received(bus, "/imu", N));
	kill(rec, SIGINT);
	CU_ASSERT_EQUAL(h_reap(rec, 20000), 0);

	/* The files, and in merged order, each message's file and log time. */
	static char files[64][256];
	int nf = 0;
	for (; nf < 64; nf++) {
		snprintf(files[nf], sizeof(files[nf]), "%s/split_%d.mcap", dir, nf);
		if (access(files[nf], R_OK) != 0)
			break;
	}
	printf("\n  %d files ", nf);
	CU_ASSERT_FATAL(nf >= 3);
	static uint64_t log_time[N];
	static int file_of[N];
	int n = 0;
	for (int k = 0; k < nf; k++) {
		char err[512];
		mcap_reader *r;
		struct mcap_message m;
		CU_ASSERT_EQUAL_FATAL(mcap_reader_open(files[k], 0, &r, err, sizeof(err)), 0);
		while (mcap_reader_next(r, &m) == 1 && n < N) {
			log_time[n] = m.log_time;
			file_of[n++] = k;
		}
		mcap_reader_close(r);
		char line[2048];
		int fc = foxglove_check(files[k], -1, line, sizeof(line));
		if (fc == 1)
			fprintf(stderr, "\n@mcap/core on %s: %s\n", files[k], line);
		CU_ASSERT_NOT_EQUAL(fc, 1);
	}
	CU_ASSERT_EQUAL_FATAL(n, N);

	/* The subscriber is there before the first message goes out. */
	shmbus_pub *topic;
	shmbus_sub *sub;
	CU_ASSERT_EQUAL_FATAL(shmbus__msgs__imu__pub_open(bus2, "/imu", big_ring(), NULL, &topic), 0);
	CU_ASSERT_EQUAL_FATAL(shmbus__msgs__imu__sub_open(bus2, "imu", NULL, NULL, &sub), 0);
	char *play_args[70] = { "play", "--bus", (char *)play_bus };
	int a = 3;
	for (int k = 0; k < nf && a < 69; k++)
		play_args[a++] = files[k];
	pid_t play = spawn_cli("playsplit", play_args);
	static int64_t pub_ns[N];
	int got = 0;
	bool in_order = true;
	while (got < N) {
		Shmbus__Msgs__Imu *imu = NULL;
		struct shmbus_msg_info info;
		int rc = SHMBUS_EAGAIN;
		int64_t deadline = h_now_ns() + 10000000000ll;
		while (rc == SHMBUS_EAGAIN && h_now_ns() < deadline) {
			shmbus__msgs__imu__wait(sub, 100000000);
			rc = shmbus__msgs__imu__take(sub, NULL, &imu, &info);
		}
		if (rc != 0)
			break;
		in_order = in_order && info.lost == 0 && imu->header && imu->header->stamp_ns == got;
		shmbus__msgs__imu__free(imu, NULL);
		pub_ns[got++] = info.publish_ns;
	}
	CU_ASSERT_EQUAL(got, N);
	CU_ASSERT_TRUE(in_order);
	CU_ASSERT_EQUAL(h_reap(play, 20000), 0);
	int64_t worst_boundary = 0;
	static int64_t inner[N], at_boundary[64];
	int n_inner = 0, n_boundary = 0;
	for (int i = 1; i < got; i++) {
		int64_t e = (pub_ns[i] - pub_ns[i - 1]) - (int64_t)(log_time[i] - log_time[i - 1]);
		e = e < 0 ? -e : e;
		if (file_of[i] == file_of[i - 1] && (i + 1 >= got || file_of[i + 1] == file_of[i]))
			inner[n_inner++] = e; /* neither side of the gap touches a boundary */
		if (file_of[i] != file_of[i - 1]) {
			printf("\n  gap into file %d: recorded %.3f ms, played %.3f ms", file_of[i],
			       (double)(log_time[i] - log_time[i - 1]) / 1e6,
			       (double)(pub_ns[i] - pub_ns[i - 1]) / 1e6);
			worst_boundary = e > worst_boundary ? e : worst_boundary;
			at_boundary[n_boundary++] = e;
		}
	}
	qsort(inner, (size_t)n_inner, sizeof(*inner), by_value);
	qsort(at_boundary, (size_t)n_boundary, sizeof(*at_boundary), by_value);
	int64_t p99 = n_inner ? inner[n_inner * 99 / 100] : 0;
	int64_t inner_worst = n_inner ? inner[n_inner - 1] : 0;
	int64_t median = n_boundary ? at_boundary[n_boundary / 2] : 0;
	printf("\n  gap error at %d file boundaries: median %.3f ms, worst %.3f ms; within "
	       "files 99 %% under %.3f ms, worst %.3f ms ", n_boundary, (double)median / 1e6,
	       (double)worst_boundary / 1e6, (double)p99 / 1e6, (double)inner_worst / 1e6);
	/* A boundary must cost nothing: a delay the boundary caused (opening
	 * the next file, re-reading its summary) would show at every one, so
	 * the typical one is held to the recording. Generous, as a loaded
	 * machine delays single wake-ups by tens of milliseconds; the worst
	 * single gap is printed, not asserted (one unlucky wake-up is the
	 * machine's noise, not the player's); BENCHMARKS.md and
	 * shmbus-record-bench give the measured error. */
	CU_ASSERT_TRUE(median < 50000000);
	char *out = slurp("playsplit", "out");
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "published 800 messages"));
	free(out);
	shmbus_sub_close(sub);
	shmbus_pub_close(topic);
	shmbus_pub_close(keep);
	shmbus_disconnect(bus);
	shmbus_disconnect(bus2);
	h_stop_bus(rec_bus);
	h_stop_bus(play_bus);
}

/* ---------------------------------------- recordings made by other tools */

#define FOREIGN_T0 1700000000000000000ull

/* A recording as Foxglove's or ROS 2's tools write them: ROS-style topic
 * names, protobuf schemas, no shmbus metadata. /imu: 20 messages 50 ms
 * apart, the largest 200 to 300 bytes; /camera/imu: 6, 100 ms apart. */
static void write_foreign(const char *path)
{
	mcap_writer *w;
	struct mcap_writer_options o;
	char err[256];
	uint16_t sid, imu, cam, rsid, chatter, js;
	mcap_writer_options_init(&o);
	o.library = "a ROS 2 or Foxglove tool";
	CU_ASSERT_EQUAL_FATAL(mcap_writer_open(path, &o, &w, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(mcap_writer_add_schema(w, "shmbus.msgs.Imu", "protobuf",
					       shmbus_schema_shmbus_2fmsgs_2fimu_2eproto,
					       shmbus_schema_shmbus_2fmsgs_2fimu_2eproto_size, &sid), 0);
	CU_ASSERT_EQUAL(mcap_writer_add_channel(w, sid, "/imu", "protobuf", NULL, 0, &imu), 0);
	CU_ASSERT_EQUAL(mcap_writer_add_channel(w, sid, "/camera/imu", "protobuf", NULL, 0, &cam),
			0);
	/* ROS 2's own encoding, and one without a schema */
	static const char msgdef[] = "string data";
	CU_ASSERT_EQUAL(mcap_writer_add_schema(w, "std_msgs/msg/String", "ros2msg", msgdef,
					       sizeof(msgdef) - 1, &rsid), 0);
	CU_ASSERT_EQUAL(mcap_writer_add_channel(w, rsid, "/chatter", "cdr", NULL, 0, &chatter), 0);
	CU_ASSERT_EQUAL(mcap_writer_add_channel(w, 0, "/events", "json", NULL, 0, &js), 0);
	for (int i = 0; i < 20; i++) {
		Shmbus__Msgs__Header h = SHMBUS__MSGS__HEADER__INIT;
		Shmbus__Msgs__Imu m = SHMBUS__MSGS__IMU__INIT;
		double cov[36];
		for (int k = 0; k < 36; k++)
			cov[k] = i + k;
		h.stamp_ns = i;
		h.frame_id = (char *)"imu_link";
		m.header = &h;
		m.n_orientation_covariance = (size_t)(i % 5) * 9;
		m.orientation_covariance = cov;
		uint8_t buf[1024];
		size_t n = shmbus__msgs__imu__pack(&m, buf);
		uint64_t t = FOREIGN_T0 + (uint64_t)i * 50000000;
		CU_ASSERT_EQUAL(mcap_writer_message(w, imu, (uint32_t)i, t, t, buf, n), 0);
		if (i % 2 == 0 && i < 12)
			CU_ASSERT_EQUAL(mcap_writer_message(w, cam, (uint32_t)i, t, t, buf, n), 0);
		if (i % 5 == 0) {
			/* a CDR std_msgs/String "hello i", and a JSON event */
			uint8_t cdr[32] = { 0, 1, 0, 0, 8, 0, 0, 0 };
			int k = snprintf((char *)cdr + 8, 16, "hello %d", i % 10);
			CU_ASSERT_EQUAL(mcap_writer_message(w, chatter, (uint32_t)i, t, t, cdr,
							    (size_t)(8 + k + 1)), 0);
			char json[32];
			k = snprintf(json, sizeof(json), "{\"i\":%d}", i);
			CU_ASSERT_EQUAL(mcap_writer_message(w, js, (uint32_t)i, t, t, json, (size_t)k),
					0);
		}
	}
	CU_ASSERT_EQUAL(mcap_writer_close(w, err, sizeof(err)), 0);
}

struct topic_dump {
	const char *topic;
	char schema_name[64], schema_encoding[32], encoding[64];
	size_t schema_size;
	uint8_t schema[8192];
	int n;
	size_t size[64];
	uint8_t *data[64];
	uint64_t log_time[64];
};

/* What a recording holds on one topic. */
static void dump_topic(const char *path, struct topic_dump *d)
{
	char err[512];
	mcap_reader *r;
	struct mcap_message m;
	CU_ASSERT_EQUAL_FATAL(mcap_reader_open(path, 0, &r, err, sizeof(err)), 0);
	while (mcap_reader_next(r, &m) == 1) {
		const struct mcap_channel *ch = mcap_reader_channel(r, m.channel_id);
		if (strcmp(ch->topic, d->topic) != 0 || d->n == 64)
			continue;
		if (d->n == 0) {
			const struct mcap_schema *s = mcap_reader_schema(r, ch->schema_id);
			snprintf(d->encoding, sizeof(d->encoding), "%s", ch->message_encoding);
			if (s && s->size <= sizeof(d->schema)) {
				snprintf(d->schema_name, sizeof(d->schema_name), "%s", s->name);
				snprintf(d->schema_encoding, sizeof(d->schema_encoding), "%s",
					 s->encoding);
				memcpy(d->schema, s->data, s->size);
				d->schema_size = s->size;
			}
		}
		d->size[d->n] = m.size;
		d->log_time[d->n] = m.log_time;
		d->data[d->n] = malloc(m.size ? m.size : 1);
		memcpy(d->data[d->n++], m.data, m.size);
	}
	mcap_reader_close(r);
}

static void free_dump(struct topic_dump *d)
{
	for (int i = 0; i < d->n; i++)
		free(d->data[i]);
}

/* Same name, schema, encoding and payloads, in the same order. */
static bool same_topic(const struct topic_dump *a, const struct topic_dump *b, int n)
{
	bool same = a->n >= n && b->n == n && !strcmp(a->encoding, b->encoding) &&
		    !strcmp(a->schema_name, b->schema_name) &&
		    !strcmp(a->schema_encoding, b->schema_encoding) &&
		    a->schema_size == b->schema_size &&
		    !memcmp(a->schema, b->schema, a->schema_size);
	for (int i = 0; same && i < n; i++)
		same = a->size[i] == b->size[i] && !memcmp(a->data[i], b->data[i], a->size[i]);
	if (!same)
		fprintf(stderr, "\n%s: %d messages (%s, %s/%s) against %d (%s, %s/%s)\n", a->topic,
			a->n, a->encoding, a->schema_name, a->schema_encoding, b->n, b->encoding,
			b->schema_name, b->schema_encoding);
	return same;
}

/* Plays `file` with `opts` onto a fresh bus while `record -a` records it
 * into `out`; returns the bus name (stopped already). */
static void play_and_record(const char *tag, const char *file, const char *out,
			    char *const opts[], int expect_imu)
{
	const char *bus_name = h_bus_name(tag);
	shmbus_bus *bus = h_connect(bus_name);
	CU_ASSERT_PTR_NOT_NULL_FATAL(bus);
	char recname[64], playname[64];
	snprintf(recname, sizeof(recname), "%s-rec", tag);
	snprintf(playname, sizeof(playname), "%s-play", tag);
	char *rec_args[] = { "record", "--bus", (char *)bus_name, "-o", (char *)out, "-a", NULL };
	pid_t rec = spawn_cli(recname, rec_args);
	CU_ASSERT_TRUE(wait_output(recname, "out", "recording into "));
	char *play_args[16] = { "play", "--bus", (char *)bus_name, (char *)file };
	int a = 4;
	for (int i = 0; opts[i] && a < 15; i++)
		play_args[a++] = opts[i];
	CU_ASSERT_EQUAL(run_cli(playname, play_args), 0);
	CU_ASSERT_TRUE(wait_received(bus, "/imu", (uint64_t)expect_imu));
	struct shmbus_topic_info ti;
	CU_ASSERT_EQUAL(shmbus_topic_inspect(bus, "/imu", &ti, NULL, 0, NULL, NULL, 0, NULL), 0);
	/* Sized for the largest recorded message (3 x 9 covariances: under
	 * 512 bytes), rounded up to a power of two. */
	CU_ASSERT_EQUAL(ti.max_message_size, 512);
	CU_ASSERT_STRING_EQUAL(ti.name, "/imu");
	kill(rec, SIGINT);
	CU_ASSERT_EQUAL(h_reap(rec, 20000), 0);
	shmbus_disconnect(bus);
	h_stop_bus(bus_name);
}

/* A recording made by ROS 2 or Foxglove tools plays under its own names
 * (no --remap) and records again identically: names, schemas, encodings,
 * payloads, order, and the timing. */
static void test_play_foreign(void)
{
	char file[256], again[256];
	path_in_dir(file, sizeof(file), "foreign.mcap");
	path_in_dir(again, sizeof(again), "foreign-again.mcap");
	write_foreign(file);
	char *none[] = { NULL };
	play_and_record("foreign", file, again, none, 20);
	char *out = slurp("foreign-play", "out");
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "published 34 messages"));
	free(out);
	static struct topic_dump a, b, c, d;
	const char *others[] = { "/chatter", "/events" };
	for (int k = 0; k < 2; k++) {
		memset(&a, 0, sizeof(a));
		memset(&b, 0, sizeof(b));
		a.topic = b.topic = others[k];
		dump_topic(file, &a);
		dump_topic(again, &b);
		CU_ASSERT_TRUE(same_topic(&a, &b, 4));
		free_dump(&a);
		free_dump(&b);
	}
	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	a.topic = b.topic = "/imu";
	c.topic = d.topic = "/camera/imu";
	dump_topic(file, &a);
	dump_topic(again, &b);
	dump_topic(file, &c);
	dump_topic(again, &d);
	CU_ASSERT_TRUE(same_topic(&a, &b, 20));
	CU_ASSERT_TRUE(same_topic(&c, &d, 6));
	/* The original spacing, to within the machine's noise. */
	int64_t worst = 0;
	for (int i = 1; i < b.n; i++) {
		int64_t e = (int64_t)(b.log_time[i] - b.log_time[0]) - (int64_t)i * 50000000;
		worst = llabs(e) > worst ? llabs(e) : worst;
	}
	printf("\n  played again: worst offset from the recorded times %.3f ms ",
	       (double)worst / 1e6);
	free_dump(&a);
	free_dump(&b);
	free_dump(&c);
	free_dump(&d);
	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	memset(&c, 0, sizeof(c));
	char line[2048];
	int fc = foxglove_check(again, -1, line, sizeof(line));
	if (fc == 1)
		fprintf(stderr, "\n@mcap/core on %s: %s\n", again, line);
	CU_ASSERT_NOT_EQUAL(fc, 1);

	/* --duration 0.5 --clock=10: the first half second (11 of /imu, 6 of
	 * /camera/imu), and the recording's time on /clock every 100 ms of it
	 * as google.protobuf.Timestamp. */
	path_in_dir(again, sizeof(again), "foreign-clock.mcap");
	char *opts[] = { "--duration", "0.5", "--clock=10", NULL };
	play_and_record("fclock", file, again, opts, 11);
	a.topic = "/imu";
	b.topic = "/camera/imu";
	c.topic = "/clock";
	dump_topic(again, &a);
	dump_topic(again, &b);
	dump_topic(again, &c);
	CU_ASSERT_EQUAL(a.n, 11);
	CU_ASSERT_EQUAL(b.n, 6);
	CU_ASSERT_EQUAL(c.n, 6);
	CU_ASSERT_STRING_EQUAL(c.schema_name, "google.protobuf.Timestamp");
	for (int i = 0; i < c.n; i++) {
		/* seconds (field 1) and nanos (field 2), varints */
		uint64_t v[3] = { 0 };
		for (size_t k = 0; k < c.size[i];) {
			int field = c.data[i][k++] >> 3;
			uint64_t x = 0;
			for (int sh = 0; k < c.size[i]; sh += 7) {
				x |= (uint64_t)(c.data[i][k] & 0x7f) << sh;
				if (!(c.data[i][k++] & 0x80))
					break;
			}
			if (field == 1 || field == 2)
				v[field] = x;
		}
		CU_ASSERT_EQUAL(v[1] * 1000000000 + v[2], FOREIGN_T0 + (uint64_t)i * 100000000);
	}
	free_dump(&a);
	free_dump(&b);
	free_dump(&c);
}

/* On a terminal: space pauses, s steps one message, space resumes, q
 * quits; driven through a pseudo-terminal as a person would type. */
struct pty_run {
	pid_t pid;
	int fd;
	char out[1 << 16];
	size_t n;
};

static bool pty_start(struct pty_run *p, char *const args[])
{
	char *argv[16] = { (char *)cli };
	int a = 1;
	for (int i = 0; args[i] && a < 15; i++)
		argv[a++] = args[i];
	p->n = 0;
	p->pid = forkpty(&p->fd, NULL, NULL, NULL);
	if (p->pid == 0) {
		execv(cli, argv);
		_exit(127);
	}
	return p->pid > 0;
}

/* Reads the terminal until `text` shows after offset `from` (bounded). */
static bool pty_wait_from(struct pty_run *p, size_t from, const char *text)
{
	int64_t deadline = h_now_ns() + 20000000000ll;
	while (h_now_ns() < deadline) {
		p->out[p->n] = 0;
		if (strstr(p->out + from, text))
			return true;
		struct pollfd pf = { p->fd, POLLIN, 0 };
		if (poll(&pf, 1, 100) == 1) {
			ssize_t r = read(p->fd, p->out + p->n, sizeof(p->out) - 1 - p->n);
			if (r <= 0)
				return false;
			p->n += (size_t)r;
		}
	}
	return false;
}

static bool pty_wait(struct pty_run *p, const char *text)
{
	return pty_wait_from(p, 0, text);
}

/* Takes what the subscriber has now (no waiting): how many. */
static int take_all(shmbus_sub *sub)
{
	int n = 0;
	Shmbus__Msgs__Imu *imu;
	while (shmbus__msgs__imu__take(sub, NULL, &imu, NULL) == 0) {
		shmbus__msgs__imu__free(imu, NULL);
		n++;
	}
	return n;
}

static void test_play_keys(void)
{
	const char *bus_name = h_bus_name("keys");
	shmbus_bus *bus = h_connect(bus_name);
	char file[256];
	CU_ASSERT_PTR_NOT_NULL_FATAL(bus);
	path_in_dir(file, sizeof(file), "keys.mcap");
	write_foreign(file);
	shmbus_pub *topic;
	shmbus_sub *sub;
	CU_ASSERT_EQUAL_FATAL(shmbus__msgs__imu__pub_open(bus, "/imu", NULL, NULL, &topic), 0);
	CU_ASSERT_EQUAL_FATAL(shmbus__msgs__imu__sub_open(bus, "/imu", NULL, NULL, &sub), 0);
	char *args[] = { "play", "--bus", (char *)bus_name, file, "--topics", "/imu", NULL };
	struct pty_run p;
	CU_ASSERT_FATAL(pty_start(&p, args));
	int got = 0;
	while (got == 0 && shmbus__msgs__imu__wait(sub, 10000000000ll) == 0)
		got += take_all(sub);
	CU_ASSERT_EQUAL(write(p.fd, " ", 1), 1);
	CU_ASSERT_TRUE(pty_wait(&p, "paused: space resumes"));
	got += take_all(sub);
	int at_pause = got;
	for (int step = 1; step <= 2; step++) {
		size_t seen = p.n;
		CU_ASSERT_EQUAL(write(p.fd, "s", 1), 1);
		/* the step's own line, after what was read before */
		CU_ASSERT_TRUE(pty_wait_from(&p, seen, "stepped"));
		got += take_all(sub);
		CU_ASSERT_EQUAL(got, at_pause + step); /* one message per step */
	}
	CU_ASSERT_EQUAL(write(p.fd, " ", 1), 1);
	CU_ASSERT_TRUE(pty_wait(&p, "resumed"));
	while (got < 20 && shmbus__msgs__imu__wait(sub, 10000000000ll) == 0)
		got += take_all(sub);
	CU_ASSERT_EQUAL(got, 20);
	CU_ASSERT_TRUE(pty_wait(&p, "published 20 messages"));
	CU_ASSERT_EQUAL(h_reap(p.pid, 20000), 0);
	close(p.fd);
	printf("\n  paused after %d of 20, stepped 2, resumed ", at_pause);

	/* q stops at once. */
	CU_ASSERT_FATAL(pty_start(&p, args));
	got = 0;
	while (got == 0 && shmbus__msgs__imu__wait(sub, 10000000000ll) == 0)
		got += take_all(sub);
	CU_ASSERT_EQUAL(write(p.fd, "q", 1), 1);
	CU_ASSERT_TRUE(pty_wait(&p, "published "));
	CU_ASSERT_EQUAL(h_reap(p.pid, 20000), 0);
	CU_ASSERT_PTR_NULL(strstr(p.out, "published 20 messages"));
	close(p.fd);
	shmbus_sub_close(sub);
	shmbus_pub_close(topic);
	shmbus_disconnect(bus);
	h_stop_bus(bus_name);
}

/* Runs the CLI and gives its peak resident memory in KiB. */
/* `test_mcap_cli --peak-rss PROG ARG...`: runs PROG and says on stderr
 * "peak-rss N", its peak resident KiB, then exits with its status. A
 * process keeps its largest resident size across execve, so a CLI the
 * test spawned itself would report the test's own peak: it is measured
 * from this fresh, small process instead. */
static int peak_rss_main(char **argv)
{
	pid_t pid = fork();
	if (pid == 0) {
		execv(argv[0], argv);
		_exit(127);
	}
	int st;
	struct rusage ru;
	if (pid < 0 || wait4(pid, &st, 0, &ru) != pid)
		return 126;
	fprintf(stderr, "peak-rss %ld\n", ru.ru_maxrss);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Runs the CLI to completion (bounded): its exit status, and in *max_kib
 * its peak resident size (-1 if not known). */
static int run_cli_rss(const char *name, char *const args[], long *max_kib)
{
	char self[4096];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	*max_kib = -1;
	if (n <= 0)
		return -1;
	self[n] = 0;
	char *head[] = { self, "--peak-rss", (char *)cli, NULL };
	pid_t pid = spawn_into(name, head, args);
	int rc = pid < 0 ? -1 : h_reap(pid, 60000);
	char *e = slurp(name, "err");
	const char *at = strstr(e, "peak-rss ");
	if (at)
		*max_kib = strtol(at + 9, NULL, 10);
	free(e);
	return rc;
}

static void write_buf_file(const char *path, const struct mcap_buf *b)
{
	FILE *f = fopen(path, "wb");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	CU_ASSERT_EQUAL(fwrite(b->data, 1, b->size, f), b->size);
	fclose(f);
}

static void put_header(struct mcap_buf *b)
{
	mcap_buf_bytes(b, "\x89MCAP0\r\n", 8);
	size_t at = mcap_buf_record_begin(b, 0x01);
	mcap_buf_str(b, "");
	mcap_buf_str(b, "test");
	mcap_buf_record_end(b, at);
}

static void put_channel(struct mcap_buf *b, uint16_t id)
{
	char topic[32];
	snprintf(topic, sizeof(topic), "t/%u", id);
	size_t at = mcap_buf_record_begin(b, 0x04);
	mcap_buf_u16(b, id);
	mcap_buf_u16(b, 0);
	mcap_buf_str(b, topic);
	mcap_buf_str(b, "x-test");
	mcap_buf_u32(b, 0);
	mcap_buf_record_end(b, at);
}

/* A 1 GiB chunk (a channel and one message of zeros) that zstd stores in
 * tens of kilobytes, in a file cut before its end: `mcap info` must count
 * it without holding the gigabyte. */
static void test_chunk_bomb(void)
{
	const uint64_t usize = (uint64_t)1 << 30;
	struct mcap_buf recs = { 0 }, file = { 0 };
	put_channel(&recs, 1);
	size_t body = usize - recs.size - MCAP_RECORD_PREFIX - MCAP_MESSAGE_FIXED;
	mcap_buf_u8(&recs, 0x05);
	mcap_buf_u64(&recs, MCAP_MESSAGE_FIXED + body);
	mcap_buf_u16(&recs, 1);
	mcap_buf_u32(&recs, 0);
	mcap_buf_u64(&recs, 1000);
	mcap_buf_u64(&recs, 1000);
	CU_ASSERT_FATAL(!recs.failed);

	ZSTD_CCtx *z = ZSTD_createCCtx();
	ZSTD_CCtx_setPledgedSrcSize(z, usize);
	size_t cap = ZSTD_compressBound(1 << 20) + (1 << 20);
	uint8_t *out = malloc(cap), *zeros = calloc(1, 1 << 20);
	struct mcap_buf packed = { 0 };
	ZSTD_inBuffer in = { recs.data, recs.size, 0 };
	for (uint64_t left = body + 1; left;) {
		ZSTD_outBuffer o = { out, cap, 0 };
		ZSTD_EndDirective end = ZSTD_e_continue;
		if (in.pos == in.size) {
			size_t n = left - 1 < (1 << 20) ? (size_t)(left - 1) : (1 << 20);
			in = (ZSTD_inBuffer){ zeros, n, 0 };
			left -= n;
			if (left == 1) {
				end = ZSTD_e_end;
				left = 0;
			}
		}
		size_t r;
		do {
			o.pos = 0;
			r = ZSTD_compressStream2(z, &o, &in, end);
			CU_ASSERT_FATAL(!ZSTD_isError(r));
			mcap_buf_bytes(&packed, out, o.pos);
		} while (end == ZSTD_e_end ? r != 0 : in.pos < in.size);
	}
	ZSTD_freeCCtx(z);
	free(out);
	free(zeros);

	put_header(&file);
	size_t at = mcap_buf_record_begin(&file, 0x06);
	mcap_buf_u64(&file, 1000);
	mcap_buf_u64(&file, 1000);
	mcap_buf_u64(&file, usize);
	mcap_buf_u32(&file, 0); /* no CRC */
	mcap_buf_str(&file, "zstd");
	mcap_buf_u64(&file, packed.size);
	mcap_buf_bytes(&file, packed.data, packed.size);
	mcap_buf_record_end(&file, at);
	CU_ASSERT_FATAL(!file.failed && !packed.failed);
	char path[256];
	path_in_dir(path, sizeof(path), "bomb.mcap");
	write_buf_file(path, &file);
	printf("\n  a %zu-byte file holding a 1 GiB chunk", file.size);
	mcap_buf_free(&recs);
	mcap_buf_free(&packed);
	mcap_buf_free(&file);

	long kib = 0;
	char *args[] = { "mcap", "info", path, NULL };
	CU_ASSERT_EQUAL(run_cli_rss("bomb", args, &kib), 0);
	char *o = slurp("bomb", "out");
	CU_ASSERT_PTR_NOT_NULL(strstr(o, "messages:    1\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(o, "status:      incomplete"));
	free(o);
	printf(": mcap info peaked at %ld MiB resident ", kib / 1024);
	CU_ASSERT_TRUE(kib > 0 && kib < 256 * 1024);
}

/* 65535 channels in descending id order: loading them costs linear time
 * (the test's timeout catches a quadratic reader). */
static void test_many_channels(void)
{
	struct mcap_buf b = { 0 };
	put_header(&b);
	for (uint32_t id = 65535; id >= 1; id--)
		put_channel(&b, (uint16_t)id);
	size_t at = mcap_buf_record_begin(&b, 0x05);
	mcap_buf_u16(&b, 1);
	mcap_buf_u32(&b, 7);
	mcap_buf_u64(&b, 5);
	mcap_buf_u64(&b, 5);
	mcap_buf_bytes(&b, "hi", 2);
	mcap_buf_record_end(&b, at);
	CU_ASSERT_FATAL(!b.failed);
	char path[256];
	path_in_dir(path, sizeof(path), "many.mcap");
	write_buf_file(path, &b);
	mcap_buf_free(&b);
	int64_t t0 = h_now_ns();
	char *args[] = { "mcap", "info", path, NULL };
	CU_ASSERT_EQUAL(run_cli("many", args), 0);
	char *o = slurp("many", "out");
	CU_ASSERT_PTR_NOT_NULL(strstr(o, "topics:      65535\n"));
	/* listed by id: t/1 first, with its one message */
	const char *first = strstr(o, "  t/1 ");
	CU_ASSERT_TRUE(first && first < strstr(o, "  t/2 ") && strstr(first, " 1 msgs"));
	free(o);
	printf("\n  65535 channels read in %.2f s ", (double)(h_now_ns() - t0) / 1e9);
}

static void add(void)
{
	CU_pSuite s = CU_add_suite("mcap_cli", NULL, NULL);
	CU_add_test(s, "record, info, cat, play on a live bus", test_record_info_play);
	CU_add_test(s, "recorder killed with SIGKILL", test_kill9_recorder);
	CU_add_test(s, "record -a picks up a new untyped topic", test_record_all_untyped);
	CU_add_test(s, "a lapped recorder writes no torn message", test_record_torn);
	CU_add_test(s, "record globs and --exclude", test_record_patterns);
	CU_add_test(s, "record says what a late topic missed", test_record_missed);
	CU_add_test(s, "bad input", test_bad_input);
	CU_add_test(s, "damaged files through the CLI", test_cli_damaged_files);
	CU_add_test(s, "recover skips what is damaged and keeps the rest", test_recover_damaged);
	CU_add_test(s, "a 1 GiB chunk in a small file", test_chunk_bomb);
	CU_add_test(s, "a split recording plays as one", test_play_split);
	CU_add_test(s, "a ROS 2 / Foxglove recording plays and records again", test_play_foreign);
	CU_add_test(s, "keys on a terminal: pause, step, resume, quit", test_play_keys);
	CU_add_test(s, "65535 channels", test_many_channels);
}

int main(int argc, char **argv)
{
	if (argc > 2 && strcmp(argv[1], "--peak-rss") == 0)
		return peak_rss_main(argv + 2);
	foxglove_check_setup(argc > 1 ? argv[1] : NULL, argc > 2 ? argv[2] : NULL);
	cli = getenv("SHMBUS_CLI");
	if (!cli) {
		fprintf(stderr, "SHMBUS_CLI is not set (run through meson test)\n");
		return 77;
	}
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	int rc = h_run("test_mcap_cli", add);
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
	return rc;
}
