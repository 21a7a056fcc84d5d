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
#include "spec_check.h"

#include "shmbus/msgs/imu.shmbus.h"

#include <CUnit/Basic.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static const char *cli;
static char dir[] = "/tmp/t-mcap-cli-XXXXXX";

/* Runs the shmbus CLI with stdout/stderr into dir/NAME.out/.err; returns
 * its pid. */
static pid_t spawn_cli(const char *name, char *const args[])
{
	char out[256], err[256];
	char *argv[32];
	int n = 0;
	posix_spawn_file_actions_t fa;
	pid_t pid;
	argv[n++] = (char *)cli;
	for (int i = 0; args[i] && n < 31; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	snprintf(out, sizeof(out), "%s/%s.out", dir, name);
	snprintf(err, sizeof(err), "%s/%s.err", dir, name);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	posix_spawn_file_actions_addopen(&fa, 2, err, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	int rc = posix_spawn(&pid, cli, &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	return rc == 0 ? pid : -1;
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
	struct timespec next;
	clock_gettime(CLOCK_MONOTONIC, &next);
	for (int i = 0; i < j->n; i++) {
		Shmbus__Msgs__Header h = SHMBUS__MSGS__HEADER__INIT;
		Shmbus__Msgs__Imu m = SHMBUS__MSGS__IMU__INIT;
		h.stamp_ns = i;
		h.frame_id = (char *)"imu_link";
		m.header = &h;
		if (shmbus__msgs__imu__publish(pub, &m, NULL) != 0)
			return 12;
		if (j->period_us) {
			next.tv_nsec += j->period_us * 1000;
			while (next.tv_nsec >= 1000000000) {
				next.tv_nsec -= 1000000000;
				next.tv_sec++;
			}
			clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
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
		if (imu)
			shmbus__msgs__imu__free_unpacked(imu, NULL);
		if (!ok) {
			fprintf(stderr, "\n%s: message %ld of %s is not what was published\n", path, n,
				topic);
			mcap_reader_close(r);
			return -1;
		}
		n++;
	}
	mcap_reader_close(r);
	return rc == 0 ? n : -1;
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
	/* The topics exist before the recorder starts, each deep enough to
	 * hold every message of the test: a recorder or subscriber descheduled
	 * for a while on a loaded machine still loses nothing (what is
	 * checked is what the tools do, not how fast this machine is). */
	struct shmbus_topic_options deep;
	shmbus_topic_options_init(&deep);
	deep.slot_count = 2048;
	deep.max_message_size = 1024;
	CU_ASSERT_EQUAL_FATAL(shmbus__msgs__imu__pub_open(bus, "imu/a", &deep, NULL, &keep[0]), 0);
	CU_ASSERT_EQUAL_FATAL(shmbus__msgs__imu__pub_open(bus, "imu/b", &deep, NULL, &keep[1]), 0);
	CU_ASSERT_EQUAL_FATAL(shmbus__msgs__imu__pub_open(bus, "replay/a", &deep, NULL, &keep[2]),
			      0);
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
	if (!strstr(out, "recorded 3000 messages"))
		fprintf(stderr, "\nrecorder said:\n%s%s\n", out, slurp("record", "err"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "recorded 3000 messages"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "1500 recorded          0 lost"));
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
	int64_t recv0 = 0, worst = 0, last_is = 0, last_want = 0;
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
		int64_t now = h_now_ns();
		if (rc != 0) {
			CU_FAIL("play did not publish everything");
			break;
		}
		CU_ASSERT_EQUAL(info.lost, 0);
		CU_ASSERT_TRUE(imu->header && imu->header->stamp_ns == got);
		shmbus__msgs__imu__free(imu, NULL);
		if (got == 0) {
			log0 = m.log_time;
			recv0 = now;
		}
		int64_t want = (int64_t)(m.log_time - log0) / 2, is = now - recv0;
		int64_t e = is > want ? is - want : want - is;
		worst = e > worst ? e : worst;
		last_is = is;
		last_want = want;
		got++;
	}
	mcap_reader_close(r);
	CU_ASSERT_EQUAL(got, N_MSGS);
	printf("\n  played %ld messages at --rate 2: worst timing error %.3f ms ", got,
	       (double)worst / 1e6);
	/* Timing is the benchmark's (shmbus-record-bench measures the error);
	 * here only that play paces at all: a load can make it late, never
	 * early, so the messages cannot arrive in much less than the
	 * recording's span at --rate 2. */
	CU_ASSERT_TRUE(last_is >= last_want / 2);
	CU_ASSERT_EQUAL(h_reap(play, 20000), 0);
	out = slurp("play", "out");
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "published 1500 messages"));
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
	CU_ASSERT_EQUAL_FATAL(shmbus__msgs__imu__pub_open(bus, "k/imu", NULL, NULL, &keep), 0);
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
	shmbus_pub_close(keep);
	shmbus_disconnect(bus);
	h_stop_bus(bus_name);
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
	pid_t rec = spawn_cli("recall", rec_args);
	/* Created after the recorder started: found by its once-a-second poll. */
	shmbus_pub *pub;
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
	char *info_args[] = { "mcap", "info", file, NULL };
	CU_ASSERT_EQUAL(run_cli("infoall", info_args), 0);
	char *out = slurp("infoall", "out");
	const char *line = strstr(out, "  raw/x ");
	CU_ASSERT_TRUE(line && strstr(line, "(untyped)") && strstr(line, " msgs") &&
		       strstr(line, "x-shmbus-raw"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "none: "));
	free(out);
	char *cat_args[] = { "mcap", "cat", file, NULL };
	CU_ASSERT_EQUAL(run_cli("catall", cat_args), 0);
	out = slurp("catall", "out");
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"_base64\":\"aGVsbG8gOQ==\"")); /* hello 9 */
	free(out);
	shmbus_pub_close(pub);
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
static void test_cli_damaged_files(void)
{
	char src[256], bad[256];
	path_in_dir(src, sizeof(src), "damage-src.mcap");
	path_in_dir(bad, sizeof(bad), "damaged.mcap");
	mcap_writer *w;
	struct mcap_writer_options o;
	char err[256];
	uint16_t sid, cid;
	mcap_writer_options_init(&o);
	o.chunk_size = 2048;
	CU_ASSERT_EQUAL_FATAL(mcap_writer_open(src, &o, &w, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(mcap_writer_add_schema(w, "shmbus.msgs.Imu", "protobuf",
					       shmbus_schema_shmbus_2fmsgs_2fimu_2eproto,
					       shmbus_schema_shmbus_2fmsgs_2fimu_2eproto_size, &sid), 0);
	CU_ASSERT_EQUAL(mcap_writer_add_channel(w, sid, "imu", "protobuf", NULL, 0, &cid), 0);
	for (int i = 0; i < 200; i++) {
		Shmbus__Msgs__Header h = SHMBUS__MSGS__HEADER__INIT;
		Shmbus__Msgs__Imu m = SHMBUS__MSGS__IMU__INIT;
		uint8_t buf[256];
		h.stamp_ns = i;
		m.header = &h;
		size_t n = shmbus__msgs__imu__pack(&m, buf);
		CU_ASSERT_EQUAL(mcap_writer_message(w, cid, (uint32_t)i, 1000u + (uint64_t)i,
						    1000u + (uint64_t)i, buf, n), 0);
	}
	CU_ASSERT_EQUAL(mcap_writer_close(w, err, sizeof(err)), 0);
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

static void add(void)
{
	CU_pSuite s = CU_add_suite("mcap_cli", NULL, NULL);
	CU_add_test(s, "record, info, cat, play on a live bus", test_record_info_play);
	CU_add_test(s, "recorder killed with SIGKILL", test_kill9_recorder);
	CU_add_test(s, "record -a picks up a new untyped topic", test_record_all_untyped);
	CU_add_test(s, "bad input", test_bad_input);
	CU_add_test(s, "damaged files through the CLI", test_cli_damaged_files);
}

int main(void)
{
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
