/*
 * test_mcap_diskfull - recording onto a full disk: a small tmpfs mounted
 * in a mount namespace of the test's own (so nothing outside sees it, and
 * it goes away with the process). The writer reports ENOSPC as "disk
 * full", the file keeps every complete chunk and still passes the spec
 * check, and `shmbus record` exits 1 with that message, leaving a file
 * `shmbus mcap info` reads. Needs root (mount); otherwise skipped (77).
 */
#include "harness.h"
#include "mcap.h"
#include "spec_check.h"

#include <CUnit/Basic.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static char dir[] = "/tmp/t-mcap-full-XXXXXX";
static const char *cli;

static bool fresh_tmpfs(const char *size)
{
	umount2(dir, MNT_DETACH);
	char opts[64];
	snprintf(opts, sizeof(opts), "size=%s,mode=0700", size);
	return mount("t-mcap-full", dir, "tmpfs", 0, opts) == 0;
}

static void fill(uint8_t *p, size_t n, unsigned k)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(k * 31 + i);
}

static void writer_disk_full(bool background)
{
	char path[256], err[512];
	struct mcap_writer_options o;
	mcap_writer *w;
	uint16_t cid;
	uint8_t buf[10000];
	CU_ASSERT_TRUE_FATAL(fresh_tmpfs("400k"));
	snprintf(path, sizeof(path), "%s/full.mcap", dir);
	mcap_writer_options_init(&o);
	o.compression = MCAP_COMPRESSION_NONE;
	o.chunk_size = 32 * 1024;
	o.background = background;
	CU_ASSERT_EQUAL_FATAL(mcap_writer_open(path, &o, &w, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(mcap_writer_add_channel(w, 0, "raw", "x-shmbus-raw", NULL, 0, &cid), 0);
	unsigned k;
	int rc = 0;
	for (k = 0; k < 1000; k++) {
		fill(buf, sizeof(buf), k);
		rc = mcap_writer_message(w, cid, k, 1000 + k, 1000 + k, buf, sizeof(buf));
		if (rc)
			break;
	}
	/* With the writer thread, the failure shows on the next chunk. */
	for (unsigned extra = 0; background && rc == 0 && extra < 100; extra++) {
		fill(buf, sizeof(buf), ++k);
		rc = mcap_writer_message(w, cid, k, 1000 + k, 1000 + k, buf, sizeof(buf));
	}
	CU_ASSERT_EQUAL(rc, -ENOSPC);
	CU_ASSERT_PTR_NOT_NULL(strstr(mcap_writer_error(w), "disk full"));
	/* After the failure: refused, not silently dropped. */
	CU_ASSERT_EQUAL(mcap_writer_message(w, cid, k, 1, 1, buf, 10), -ENOSPC);
	CU_ASSERT_EQUAL(mcap_writer_close(w, err, sizeof(err)), -ENOSPC);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "No space left"));

	/* The failed chunk was cut off, which made room for the summary. */
	struct spec_result sr;
	int sc = spec_check(path, &sr);
	if (sc)
		fprintf(stderr, "\nspec check: %s\n", sr.why);
	CU_ASSERT_EQUAL(sc, 0);
	mcap_reader *r;
	CU_ASSERT_EQUAL_FATAL(mcap_reader_open(path, MCAP_READ_VERIFY_DATA_CRC, &r, err,
					       sizeof(err)), 0);
	struct mcap_message m;
	unsigned n = 0;
	while (mcap_reader_next(r, &m) == 1) {
		fill(buf, sizeof(buf), n);
		CU_ASSERT_TRUE(m.sequence == n && m.size == sizeof(buf) &&
			       memcmp(m.data, buf, sizeof(buf)) == 0);
		n++;
	}
	mcap_reader_close(r);
	/* Every chunk but the one that did not fit: 3-4 messages a chunk. */
	printf("\n  disk full after %u messages; %u in the file%s ", k + 1, n,
	       background ? " (writer thread)" : "");
	/* Every chunk but the one that did not fit (3-4 messages a chunk);
	 * with the writer thread also those queued behind it (up to 8) by the
	 * time the caller hears of it. They are counted as dropped. */
	CU_ASSERT_TRUE(n > 0 && n + (background ? 4 * 10 : 4) >= k + 1 && n <= k + 1);
}

static void test_writer_disk_full(void)
{
	writer_disk_full(false);
	writer_disk_full(true);
}

static void test_record_disk_full(void)
{
	char path[256];
	const char *bus_name = h_bus_name("mcapfull");
	CU_ASSERT_TRUE_FATAL(fresh_tmpfs("1m"));
	snprintf(path, sizeof(path), "%s/rec.mcap", dir);
	shmbus_bus *bus = h_connect(bus_name);
	CU_ASSERT_PTR_NOT_NULL_FATAL(bus);
	struct shmbus_topic_options to;
	shmbus_topic_options_init(&to);
	to.max_message_size = 4096;
	to.slot_count = 1024;
	shmbus_pub *pub;
	CU_ASSERT_EQUAL_FATAL(shmbus_pub_open(bus, "full/raw", &to, NULL, &pub), 0);

	char errpath[300];
	snprintf(errpath, sizeof(errpath), "%s.err", dir);
	char *argv[] = { (char *)cli, "record", "--bus", (char *)bus_name, "-o", path,
			 "--compression", "none", "--chunk-size", "64", "full/raw", NULL };
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 2, errpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	pid_t rec;
	CU_ASSERT_EQUAL_FATAL(posix_spawn(&rec, cli, &fa, NULL, argv, environ), 0);
	posix_spawn_file_actions_destroy(&fa);

	/* Publish until the recorder gives up (1 MiB holds ~1000 of these). */
	struct shmbus_topic_info ti;
	int64_t deadline = h_now_ns() + 30000000000ll;
	while (h_now_ns() < deadline &&
	       (shmbus_topic_inspect(bus, "full/raw", &ti, NULL, 0, NULL, NULL, 0, NULL) != 0 ||
		ti.subscribers == 0)) {
		struct timespec ts = { 0, 1000000 };
		nanosleep(&ts, NULL);
	}
	uint8_t msg[1000];
	int status = -1;
	for (unsigned i = 0; i < 100000 && h_now_ns() < deadline; i++) {
		fill(msg, sizeof(msg), i);
		shmbus_pub_send(pub, msg, sizeof(msg), NULL);
		if (waitpid(rec, &status, WNOHANG) == rec)
			break;
		struct timespec ts = { 0, 100000 };
		nanosleep(&ts, NULL);
	}
	if (status == -1) {
		kill(rec, SIGKILL);
		waitpid(rec, &status, 0);
	}
	CU_ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 1);
	FILE *f = fopen(errpath, "r");
	char text[4096] = "";
	if (f) {
		size_t n = fread(text, 1, sizeof(text) - 1, f);
		text[n] = 0;
		fclose(f);
	}
	unlink(errpath);
	CU_ASSERT_PTR_NOT_NULL(strstr(text, "disk full"));

	mcap_reader *r;
	char err[512];
	CU_ASSERT_EQUAL_FATAL(mcap_reader_open(path, 0, &r, err, sizeof(err)), 0);
	struct mcap_message m;
	long n = 0;
	while (mcap_reader_next(r, &m) == 1) {
		fill(msg, sizeof(msg), m.sequence);
		CU_ASSERT_TRUE(m.size == sizeof(msg) && memcmp(m.data, msg, sizeof(msg)) == 0);
		n++;
	}
	printf("\n  record on a full disk: exit 1, %ld messages kept, file %s ", n,
	       mcap_reader_info(r)->complete ? "complete" : "incomplete");
	CU_ASSERT_TRUE(n > 500);
	mcap_reader_close(r);
	shmbus_pub_close(pub);
	shmbus_disconnect(bus);
	h_stop_bus(bus_name);
}

static void add(void)
{
	CU_pSuite s = CU_add_suite("mcap_diskfull", NULL, NULL);
	CU_add_test(s, "writer on a full disk", test_writer_disk_full);
	CU_add_test(s, "shmbus record on a full disk", test_record_disk_full);
}

int main(void)
{
	cli = getenv("SHMBUS_CLI");
	if (geteuid() != 0) {
		printf("skipped: mounting a small tmpfs to fill needs root\n");
		return 77;
	}
	if (!cli) {
		printf("skipped: SHMBUS_CLI is not set (run through meson test)\n");
		return 77;
	}
	/* A private mount namespace: the tmpfs is ours alone. */
	if (unshare(CLONE_NEWNS) != 0 || mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) {
		printf("skipped: no mount namespace here (%s)\n", strerror(errno));
		return 77;
	}
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	if (!fresh_tmpfs("400k")) {
		printf("skipped: cannot mount a tmpfs (%s)\n", strerror(errno));
		rmdir(dir);
		return 77;
	}
	int rc = h_run("test_mcap_diskfull", add);
	umount2(dir, MNT_DETACH);
	rmdir(dir);
	return rc;
}
