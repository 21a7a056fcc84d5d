/*
 * test_tools_cli.c - `shmbus echo`, `hz`, `bw` and `pub` on a live bus with
 * real publisher processes: the JSON lines parse and carry the published
 * values, --meta reports losses exactly where they happened, -n and
 * SIGTERM stop cleanly, rates are sane, pub -> typed take and pub -> echo
 * round trip (also for a type only a descriptor set file knows), and bad
 * input exits non-zero with a clear message.
 *
 * argv[1]: pbjson_test.fds (a protoc --descriptor_set_out file).
 */
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "harness.h"
#include "shmbus/msgs/imu.pb-c.h"
#include "shmbus/msgs/imu.shmbus.h"

static const char *fds_path, *protoc_path;
static const char *bus_name;
static shmbus_bus *bus;

/* ----------------------------------------------------------- processes */

/* Children still running: a failed assertion that ends a test early must
 * not leave them behind (suite_clean() kills them). */
static pid_t children[32];

static void track(pid_t pid, bool add)
{
	for (size_t i = 0; i < sizeof(children) / sizeof(children[0]); i++)
		if (children[i] == (add ? 0 : pid)) {
			children[i] = add ? pid : 0;
			return;
		}
}

struct child {
	pid_t pid;
	int fd; /* its stdout */
	char buf[1 << 16];
	size_t n;
};

/* Whether spawn() also puts the child's stderr on the pipe. */
static bool spawn_with_stderr;

/* Start `shmbus ARGS...` (NULL-terminated) with its stdout on a pipe. */
static bool spawn(struct child *c, ...)
{
	const char *argv[32] = { "shmbus" };
	int argc = 1;
	va_list ap;
	va_start(ap, c);
	const char *a;
	while ((a = va_arg(ap, const char *)) && argc < 31)
		argv[argc++] = a;
	va_end(ap);
	argv[argc] = NULL;
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return false;
	fflush(NULL);
	c->pid = fork();
	if (c->pid == 0) {
		dup2(p[1], 1);
		if (spawn_with_stderr)
			dup2(p[1], 2);
		execv(getenv("SHMBUS_CLI"), (char *const *)argv);
		_exit(127);
	}
	close(p[1]);
	c->fd = p[0];
	c->n = 0;
	if (c->pid > 0)
		track(c->pid, true);
	return c->pid > 0;
}

/* The next line of the child's stdout, within timeout_ms. */
static bool read_line(struct child *c, char *line, size_t cap, int timeout_ms)
{
	int64_t deadline = h_now_ns() + (int64_t)timeout_ms * 1000000;
	for (;;) {
		char *nl = memchr(c->buf, '\n', c->n);
		if (nl) {
			size_t len = (size_t)(nl - c->buf);
			if (len >= cap)
				len = cap - 1;
			memcpy(line, c->buf, len);
			line[len] = '\0';
			size_t used = (size_t)(nl - c->buf) + 1;
			memmove(c->buf, c->buf + used, c->n - used);
			c->n -= used;
			return true;
		}
		if (c->n == sizeof(c->buf) || h_now_ns() > deadline)
			return false;
		int left = (int)((deadline - h_now_ns()) / 1000000) + 1;
		if (!h_read(c->fd, c->buf + c->n, 1, left))
			return false;
		c->n++;
	}
}

static int finish(struct child *c, int timeout_ms)
{
	int rc = h_reap(c->pid, timeout_ms);
	track(c->pid, false);
	close(c->fd);
	return rc;
}

/* Wait (bounded) until the topic exists with at least `subs` subscribers
 * and `seq` sequence numbers published. */
static bool wait_topic(const char *topic, uint32_t subs, uint64_t seq)
{
	int64_t deadline = h_now_ns() + 20000000000ll;
	while (h_now_ns() < deadline) {
		struct shmbus_topic_info ti;
		if (shmbus_topic_inspect(bus, topic, &ti, NULL, 0, NULL, NULL, 0, NULL) == 0 &&
		    ti.subscribers >= subs && ti.next_seq >= seq)
			return true;
		nanosleep(&(struct timespec){ 0, 2000000 }, NULL);
	}
	return false;
}

/* ---------------------------------------------------- publisher children */

static volatile sig_atomic_t child_stop;

static void on_term(int sig)
{
	(void)sig;
	child_stop = 1;
}

struct pub_args {
	const char *topic;
	int hz;
	size_t payload; /* 0: typed Imu messages, else raw bytes of this size */
};

static shmbus_bus *child_connect(void)
{
	struct sigaction sa = { .sa_handler = on_term };
	sigaction(SIGTERM, &sa, NULL);
	shmbus_bus *b;
	if (shmbus_connect(bus_name, NULL, &b))
		return NULL;
	return b;
}

/* Publishes until SIGTERM at args->hz: Imu i has stamp_ns i, frame "imu",
 * angular_velocity.x = i / 2, orientation_covariance [i, 0, 1]. */
static int publisher(void *arg, int result_fd)
{
	const struct pub_args *a = arg;
	shmbus_bus *b = child_connect();
	if (!b)
		return 10;
	shmbus_pub *pub;
	struct shmbus_topic_options to;
	shmbus_topic_options_init(&to);
	int rc = a->payload ? shmbus_pub_open(b, a->topic, &to, NULL, &pub)
			    : shmbus__msgs__imu__pub_open(b, a->topic, NULL, NULL, &pub);
	if (rc)
		return 11;
	uint8_t *raw = a->payload ? calloc(1, a->payload) : NULL;
	int64_t next = now_mono_ns();
	int64_t i = 1;
	for (; !child_stop; i++) {
		if (a->payload) {
			rc = shmbus_pub_send(pub, raw, a->payload, NULL);
		} else {
			Shmbus__Msgs__Imu imu = SHMBUS__MSGS__IMU__INIT;
			Shmbus__Msgs__Header h = SHMBUS__MSGS__HEADER__INIT;
			Shmbus__Msgs__Vector3 av = SHMBUS__MSGS__VECTOR3__INIT;
			double cov[3] = { (double)i, 0, 1 };
			h.stamp_ns = i;
			h.frame_id = (char *)"imu";
			av.x = (double)i / 2;
			imu.header = &h;
			imu.angular_velocity = &av;
			imu.n_orientation_covariance = 3;
			imu.orientation_covariance = cov;
			rc = shmbus__msgs__imu__publish(pub, &imu, NULL);
		}
		if (rc)
			return 12;
		next += 1000000000 / a->hz;
		now_sleep_until(next);
	}
	free(raw);
	shmbus_pub_close(pub);
	shmbus_disconnect(b);
	(void)!write(result_fd, &i, sizeof(i));
	return 0;
}

static pid_t start_publisher(struct pub_args *a, int *fd)
{
	pid_t pid = h_fork(publisher, a, fd);
	CU_ASSERT_FATAL(pid > 0);
	track(pid, true);
	return pid;
}

static void stop_publisher(pid_t pid, int fd)
{
	kill(pid, SIGTERM);
	int64_t sent = 0;
	CU_ASSERT_TRUE(h_read(fd, &sent, sizeof(sent), 20000));
	CU_ASSERT(sent > 0);
	CU_ASSERT_EQUAL(h_reap(pid, 20000), 0);
	track(pid, false);
	close(fd);
}

/* ------------------------------------------------------------------ echo */

static json_t *get(json_t *j, const char *path)
{
	char key[64];
	while (j && *path) {
		size_t n = strcspn(path, ".");
		snprintf(key, sizeof(key), "%.*s", (int)n, path);
		j = json_object_get(j, key);
		path += n + (path[n] == '.');
	}
	return j;
}

static long long stamp_of(json_t *msg)
{
	json_t *s = get(msg, "header.stampNs");
	return json_is_string(s) ? atoll(json_string_value(s)) : -1;
}

static void test_echo_typed(void)
{
	struct pub_args a = { .topic = "imu/front", .hz = 200 };
	int fd;
	pid_t pp = start_publisher(&a, &fd);
	CU_ASSERT_FATAL(wait_topic("imu/front", 0, 1));

	struct child e;
	CU_ASSERT_FATAL(spawn(&e, "echo", "--bus", bus_name, "imu/front", "-n", "5", NULL));
	char line[8192];
	long long prev = -1;
	int lines = 0;
	while (lines < 5 && read_line(&e, line, sizeof(line), 20000)) {
		json_error_t jerr;
		json_t *j = json_loads(line, 0, &jerr);
		CU_ASSERT_PTR_NOT_NULL_FATAL(j);
		long long i = stamp_of(j);
		CU_ASSERT(i > prev);
		prev = i;
		CU_ASSERT_STRING_EQUAL(json_string_value(get(j, "header.frameId")), "imu");
		CU_ASSERT_DOUBLE_EQUAL(json_number_value(get(j, "angularVelocity.x")), i / 2.0, 1e-9);
		json_t *cov = get(j, "orientationCovariance");
		CU_ASSERT_EQUAL(json_array_size(cov), 3);
		CU_ASSERT_DOUBLE_EQUAL(json_number_value(json_array_get(cov, 0)), (double)i, 1e-9);
		CU_ASSERT_PTR_NULL(get(j, "linearAcceleration")); /* not set: absent */
		json_decref(j);
		lines++;
	}
	CU_ASSERT_EQUAL(lines, 5);
	CU_ASSERT_EQUAL(finish(&e, 20000), 0); /* -n 5: exits by itself */

	/* --meta: stop the echo process while the ring (64 slots) laps it
	 * several times; the first line after it resumes says how many it
	 * lost, and that loss matches the sequence numbers exactly. */
	CU_ASSERT_FATAL(spawn(&e, "echo", "--bus", bus_name, "imu/front", "--meta", NULL));
	CU_ASSERT_FATAL(wait_topic("imu/front", 1, 0));
	CU_ASSERT_TRUE(read_line(&e, line, sizeof(line), 20000));
	json_t *j = json_loads(line, 0, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(j);
	long long last_seq = json_integer_value(get(j, "_meta.seq"));
	json_decref(j);
	kill(e.pid, SIGSTOP);
	struct shmbus_topic_info ti;
	CU_ASSERT_EQUAL_FATAL(shmbus_topic_inspect(bus, "imu/front", &ti, NULL, 0, NULL, NULL, 0,
						   NULL), 0);
	CU_ASSERT_TRUE(wait_topic("imu/front", 1, ti.next_seq + 200));
	kill(e.pid, SIGCONT);
	bool saw_loss = false;
	for (int k = 0; k < 400 && !saw_loss && read_line(&e, line, sizeof(line), 20000); k++) {
		j = json_loads(line, 0, NULL);
		CU_ASSERT_PTR_NOT_NULL_FATAL(j);
		json_t *meta = json_object_get(j, "_meta"), *msg = json_object_get(j, "msg");
		long long seq = json_integer_value(json_object_get(meta, "seq"));
		long long lost = json_integer_value(json_object_get(meta, "lost"));
		CU_ASSERT_EQUAL(seq - lost, last_seq + 1); /* received + lost = published */
		CU_ASSERT_EQUAL(stamp_of(msg), seq + 1);   /* the message is the one at seq */
		CU_ASSERT_TRUE(json_is_string(json_object_get(meta, "time")));
		CU_ASSERT_TRUE(json_is_string(json_object_get(meta, "publish_ns")));
		CU_ASSERT_TRUE(json_is_integer(json_object_get(meta, "publisher")));
		CU_ASSERT(json_integer_value(json_object_get(meta, "size")) > 0);
		saw_loss = lost >= 100;
		last_seq = seq;
		json_decref(j);
	}
	CU_ASSERT_TRUE(saw_loss);
	kill(e.pid, SIGTERM); /* a clean stop: exit 0 */
	CU_ASSERT_EQUAL(finish(&e, 20000), 0);
	stop_publisher(pp, fd);
}

static void test_echo_untyped_and_malformed(void)
{
	shmbus_pub *raw, *typed;
	struct shmbus_topic_options to;
	shmbus_topic_options_init(&to);
	CU_ASSERT_EQUAL_FATAL(shmbus_pub_open(bus, "raw", &to, NULL, &raw), 0);
	shmbus__msgs__imu__topic_type(&to);
	CU_ASSERT_EQUAL_FATAL(shmbus_pub_open(bus, "imu/bad", &to, NULL, &typed), 0);

	/* A subscriber is listed before its position is fixed, so a message
	 * sent once it is listed may fall before its start: --last takes what
	 * the fresh topics hold either way. */
	struct child e, m;
	CU_ASSERT_FATAL(spawn(&e, "echo", "--bus", bus_name, "raw", "-n", "2", "--last", "2",
			      NULL));
	CU_ASSERT_FATAL(spawn(&m, "echo", "--bus", bus_name, "imu/bad", "-n", "1", "--last", "1",
			      NULL));
	CU_ASSERT_FATAL(wait_topic("raw", 1, 0));
	CU_ASSERT_FATAL(wait_topic("imu/bad", 1, 0));
	CU_ASSERT_EQUAL(shmbus_pub_send(raw, "hello world", 11, NULL), 0);
	CU_ASSERT_EQUAL(shmbus_pub_send(raw, "\x00\x01\x02\xff", 4, NULL), 0);
	CU_ASSERT_EQUAL(shmbus_pub_send(typed, "\x0a\xff", 2, NULL), 0);
	char line[4096];
	CU_ASSERT_TRUE(read_line(&e, line, sizeof(line), 20000));
	CU_ASSERT_STRING_EQUAL(line, "{\"_text\":\"hello world\"}");
	CU_ASSERT_TRUE(read_line(&e, line, sizeof(line), 20000));
	CU_ASSERT_STRING_EQUAL(line, "{\"_base64\":\"AAEC/w==\"}");
	CU_ASSERT_EQUAL(finish(&e, 20000), 0);
	/* a payload that does not decode: a line saying why, and the bytes */
	CU_ASSERT_TRUE(read_line(&m, line, sizeof(line), 20000));
	json_t *j = json_loads(line, 0, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(j);
	CU_ASSERT_PTR_NOT_NULL(strstr(json_string_value(json_object_get(j, "_error")), "offset 1"));
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "_base64")), "Cv8=");
	json_decref(j);
	CU_ASSERT_EQUAL(finish(&m, 20000), 0);
	shmbus_pub_close(raw);
	shmbus_pub_close(typed);
}

/* ---------------------------------------------------------------- hz, bw */

/* The value after `key` in the last line starting with `lead`. */
static bool value_after(const char *out, const char *lead, const char *key, double *v)
{
	const char *last = NULL;
	for (const char *p = out; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		if (strncmp(p, lead, strlen(lead)) == 0)
			last = p;
	if (!last)
		return false;
	const char *k = strstr(last, key);
	const char *eol = strchr(last, '\n');
	if (!k || (eol && k > eol))
		return false;
	return sscanf(k + strlen(key), "%lf", v) == 1;
}

static void test_hz_bw(void)
{
	struct pub_args a = { .topic = "rate", .hz = 100, .payload = 1000 };
	int fd;
	pid_t pp = start_publisher(&a, &fd);
	CU_ASSERT_FATAL(wait_topic("rate", 0, 1));
	static char out[1 << 16];
	CU_ASSERT_EQUAL(h_run_cli(out, sizeof(out), "hz --bus %s rate --duration 3.5", bus_name), 0);
	double rate, mean, mn, mx, sd, lost, win;
	/* Loose sanity only: the machine may be loaded. */
	CU_ASSERT_TRUE(value_after(out, "total: rate", "rate ", &rate));
	CU_ASSERT(rate > 25 && rate < 400);
	CU_ASSERT_TRUE(value_after(out, "total: rate", "period mean ", &mean));
	CU_ASSERT_TRUE(value_after(out, "total: rate", "min ", &mn));
	CU_ASSERT_TRUE(value_after(out, "total: rate", "max ", &mx));
	CU_ASSERT_TRUE(value_after(out, "total: rate", "std dev ", &sd));
	CU_ASSERT_TRUE(value_after(out, "total: rate", "window ", &win));
	CU_ASSERT_TRUE(value_after(out, "total: rate", "lost ", &lost));
	CU_ASSERT(mn <= mean && mean <= mx && sd >= 0 && win >= 2);
	CU_ASSERT(fabs(1000.0 / mean - rate) < 0.01 * rate);
	CU_ASSERT_TRUE(value_after(out, "rate", "rate ", &rate)); /* a line per second */
	if (!value_after(out, "total: rate", "rate ", &rate))
		fprintf(stderr, "hz printed:\n%s\n", out);

	CU_ASSERT_EQUAL(h_run_cli(out, sizeof(out), "bw --bus %s rate -n 150", bus_name), 0);
	double bw, size;
	CU_ASSERT_TRUE(value_after(out, "total: bandwidth", "bandwidth ", &bw));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "kB/s")); /* 100 x 1000 B a second */
	CU_ASSERT(bw > 25 && bw < 400);
	CU_ASSERT_TRUE(value_after(out, "total: bandwidth", "size mean ", &size));
	CU_ASSERT_DOUBLE_EQUAL(size, 1.0, 1e-9);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "min 1.00 kB  max 1.00 kB  window 150"));
	if (!strstr(out, "window 150"))
		fprintf(stderr, "bw printed:\n%s\n", out);
	stop_publisher(pp, fd);
}

/* ------------------------------------------------------------------- pub */

static const char imu_json[] = "{\"header\":{\"stampNs\":\"42\",\"frameId\":\"base\"},"
			       "\"orientationCovariance\":[1.0,2.0,3.0],"
			       "\"angularVelocity\":{\"y\":-1.25}}";

static void expect_line(struct child *e, const char *want)
{
	char line[4096];
	CU_ASSERT_TRUE_FATAL(read_line(e, line, sizeof(line), 20000));
	json_t *a = json_loads(line, 0, NULL), *b = json_loads(want, 0, NULL);
	CU_ASSERT_TRUE(json_equal(a, b));
	if (!json_equal(a, b))
		fprintf(stderr, "\n got: %s\nwant: %s\n", line, want);
	json_decref(a);
	json_decref(b);
}

static void test_pub(void)
{
	static char out[8192];
	/* a new topic: the built-in schema of shmbus.msgs.Imu */
	CU_ASSERT_EQUAL(h_run_cli(out, sizeof(out), "pub --bus %s pose shmbus.msgs.Imu '%s'",
				bus_name, imu_json), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "published #1 (sequence number 0"));
	/* protobuf-c, through the generated code, reads what pub wrote */
	struct shmbus_sub_options so;
	shmbus_sub_options_init(&so);
	so.start = SHMBUS_START_LAST;
	so.last_n = 1;
	shmbus_sub *sub;
	CU_ASSERT_EQUAL_FATAL(shmbus__msgs__imu__sub_open(bus, "pose", NULL, &so, &sub), 0);
	Shmbus__Msgs__Imu *imu = NULL;
	CU_ASSERT_EQUAL_FATAL(shmbus__msgs__imu__take(sub, NULL, &imu, NULL), 0);
	CU_ASSERT_EQUAL(imu->header->stamp_ns, 42);
	CU_ASSERT_STRING_EQUAL(imu->header->frame_id, "base");
	CU_ASSERT_EQUAL(imu->angular_velocity->y, -1.25);
	CU_ASSERT_EQUAL(imu->n_orientation_covariance, 3);
	CU_ASSERT_EQUAL(imu->orientation_covariance[2], 3.0);
	CU_ASSERT_PTR_NULL(imu->linear_acceleration);
	shmbus__msgs__imu__free(imu, NULL);
	shmbus_sub_close(sub);

	/* echo gives back the JSON that was published; its first line (from
	 * the ring's history) also says its position is fixed, so the next
	 * three cannot fall before it */
	struct child e;
	CU_ASSERT_FATAL(spawn(&e, "echo", "--bus", bus_name, "pose", "--last", "1", "-n", "4", NULL));
	expect_line(&e, imu_json);
	CU_ASSERT_EQUAL(h_run_cli(out, sizeof(out), "pub --bus %s pose shmbus.msgs.Imu '%s' -r 50 -n 3 -q",
				bus_name, imu_json), 0);
	CU_ASSERT_STRING_EQUAL(out, "");
	for (int i = 0; i < 3; i++)
		expect_line(&e, imu_json);
	CU_ASSERT_EQUAL(finish(&e, 20000), 0);

	/* a type only a descriptor set file knows: the topic stores the
	 * schema, so echo decodes it with nothing but the bus */
	const char *all = "{\"fInt64\":\"-5\",\"fEnum\":\"BLUE\",\"mStrI64\":{\"a\":\"1\"},"
			  "\"cName\":\"x\",\"stamp\":\"2024-01-02T03:04:05Z\"}";
	CU_ASSERT_EQUAL(h_run_cli(out, sizeof(out), "pub --bus %s test/all pbjson.test.All '%s' "
				"--descriptor-set '%s'", bus_name, all, fds_path), 0);
	CU_ASSERT_FATAL(spawn(&e, "echo", "--bus", bus_name, "test/all", "--last", "1", "-n", "1",
			      NULL));
	expect_line(&e, all);
	CU_ASSERT_EQUAL(finish(&e, 20000), 0);
	/* ...and pub finds it on the topic without the file */
	CU_ASSERT_EQUAL(h_run_cli(out, sizeof(out), "pub --bus %s test/all pbjson.test.All '{}' -q",
				bus_name), 0);
	CU_ASSERT_EQUAL(h_run_cli(out, sizeof(out), "echo --bus %s test/all --last 1 -n 1 --defaults",
				bus_name), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"fEnum\":\"COLOR_UNSPECIFIED\""));
}

/* Topics `shmbus pub` creates cost what the type carries: a type with
 * only scalar fields gets its exact bound (Vector3: three doubles, 27 B)
 * and, from the ring's byte budget, the most slots; a type with a string
 * the typed default (512 B); a topic made small grows for a larger
 * message. */
static void test_pub_sizes_topics(void)
{
	static char out[8192];
	struct shmbus_topic_info ti;
	CU_ASSERT_EQUAL(h_run_cli(out, sizeof(out), "pub --bus %s small/vec shmbus.msgs.Vector3 "
				"'{\"x\": 1}' -q", bus_name), 0);
	CU_ASSERT_EQUAL_FATAL(shmbus_topic_inspect(bus, "small/vec", &ti, NULL, 0, NULL, NULL, 0,
						   NULL), 0);
	CU_ASSERT_EQUAL(ti.max_message_size, 27);
	CU_ASSERT_TRUE(ti.slot_size <= 256);
	CU_ASSERT_TRUE(ti.slot_count * ti.slot_size <= 64 * 1024);
	CU_ASSERT_EQUAL(h_run_cli(out, sizeof(out), "pub --bus %s small/imu shmbus.msgs.Imu '{}' -q",
				bus_name), 0);
	CU_ASSERT_EQUAL_FATAL(shmbus_topic_inspect(bus, "small/imu", &ti, NULL, 0, NULL, NULL, 0,
						   NULL), 0);
	CU_ASSERT_EQUAL(ti.max_message_size, 512); /* the typed default */
	/* A Header whose frame id does not fit the 512 B (the message from
	 * stdin): the topic grows. */
	char path[] = "/tmp/shmbus-pub-big-XXXXXX";
	int fd = mkstemp(path);
	CU_ASSERT_FATAL(fd >= 0);
	FILE *f = fdopen(fd, "w");
	fputs("{\"header\": {\"frameId\": \"", f);
	for (int i = 0; i < 5000; i++)
		fputc('f', f);
	fputs("\"}}", f);
	fclose(f);
	CU_ASSERT_EQUAL(h_run_cli(out, sizeof(out), "pub --bus %s small/imu shmbus.msgs.Imu - -q < %s",
				bus_name, path), 0);
	unlink(path);
	CU_ASSERT_EQUAL_FATAL(shmbus_topic_inspect(bus, "small/imu", &ti, NULL, 0, NULL, NULL, 0,
						   NULL), 0);
	CU_ASSERT_TRUE(ti.max_message_size >= 5000);
	CU_ASSERT_EQUAL(ti.grown, 1);
}

/* echo --field, --once, --csv on the message test_pub published last */
static void test_echo_field_csv(void)
{
	static char out[8192];
#define ECHO(...) h_run_cli(out, sizeof(out), "echo --bus %s pose --last 1 --once " __VA_ARGS__)
	CU_ASSERT_EQUAL(ECHO("--field header.frame_id", bus_name), 0);
	CU_ASSERT_STRING_EQUAL(out, "base\n");
	CU_ASSERT_EQUAL(ECHO("--field header.stampNs", bus_name), 0);
	CU_ASSERT_STRING_EQUAL(out, "42\n");
	CU_ASSERT_EQUAL(ECHO("--field 'orientation_covariance[2]'", bus_name), 0);
	CU_ASSERT_STRING_EQUAL(out, "3.0\n");
	CU_ASSERT_EQUAL(ECHO("--field angular_velocity", bus_name), 0);
	CU_ASSERT_STRING_EQUAL(out, "{\"x\":0.0,\"y\":-1.25,\"z\":0.0}\n");
	CU_ASSERT_EQUAL(ECHO("--csv --field angular_velocity", bus_name), 0);
	CU_ASSERT_STRING_EQUAL(out, "angular_velocity.x,angular_velocity.y,angular_velocity.z\n"
				    "0.0,-1.25,0.0\n");
	CU_ASSERT_EQUAL(ECHO("--csv", bus_name), 0);
	/* every numeric field of the message, nested names joined by '.' */
	const char *nl = strchr(out, '\n');
	CU_ASSERT_FATAL(nl != NULL);
	CU_ASSERT_EQUAL(strncmp(out, "header.stampNs,", 15), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, ",angularVelocity.y,"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, ",orientationCovariance.2"));
	CU_ASSERT_PTR_NULL(strstr(out, "frameId")); /* strings are not numbers */
	CU_ASSERT_EQUAL(strncmp(nl + 1, "42,", 3), 0);
	CU_ASSERT_EQUAL(ECHO("--csv --meta --field header.stamp_ns", bus_name), 0);
	CU_ASSERT_EQUAL(strncmp(out, "seq,publish_ns,header.stamp_ns\n", 31), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, ",42\n"));
	/* a field the message lacks: said on stderr, nothing printed */
	CU_ASSERT_EQUAL(ECHO("--field header.nothing", bus_name), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "has no field 'header.nothing'"));
	CU_ASSERT_EQUAL(ECHO("--field 'a..b'", bus_name), 2);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "is not a field path"));
#undef ECHO
}

/* `shmbus type`: the topic's definition as .proto text that protoc takes
 * back, for Imu (imports) and for a type with maps, oneofs, enums,
 * well-known types and nesting. */
static void test_type(void)
{
	static char out[1 << 16];
	CU_ASSERT_EQUAL(h_run_cli(out, sizeof(out), "type --bus %s pose", bus_name), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "package shmbus.msgs;"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "import \"shmbus/msgs/header.proto\";"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "message Imu {"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "repeated double orientation_covariance = "));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "Header header = 1;"));
	const char *topics[] = { "pose", "test/all" };
	for (int t = 0; t < 2; t++) {
		char dir[] = "/tmp/t-type-XXXXXX", cmd[1024];
		CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
		CU_ASSERT_EQUAL(h_run_cli(out, sizeof(out), "type --bus %s %s --all", bus_name,
					  topics[t]), 0);
		/* Each "// file: NAME" section into dir/NAME. */
		char *main_file = NULL;
		FILE *f = NULL;
		for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
			if (strncmp(line, "// file: ", 9) == 0) {
				if (f)
					fclose(f);
				snprintf(cmd, sizeof(cmd), "mkdir -p \"$(dirname '%s/%s')\"", dir,
					 line + 9);
				CU_ASSERT_EQUAL(system(cmd), 0);
				snprintf(cmd, sizeof(cmd), "%s/%s", dir, line + 9);
				f = fopen(cmd, "w");
				main_file = line + 9;
				continue;
			}
			if (f)
				fprintf(f, "%s\n", line);
		}
		if (f)
			fclose(f);
		CU_ASSERT_PTR_NOT_NULL_FATAL(main_file);
		snprintf(cmd, sizeof(cmd), "'%s' --proto_path='%s' --descriptor_set_out=/dev/null "
			 "'%s' 2>&1", protoc_path, dir, main_file);
		int rc = system(cmd);
		if (rc != 0)
			fprintf(stderr, "\nprotoc refused the text of %s (%s)\n", topics[t], cmd);
		CU_ASSERT_EQUAL(rc, 0);
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		CU_ASSERT_EQUAL(system(cmd), 0);
	}
	CU_ASSERT_EQUAL(h_run_cli(out, sizeof(out), "type --bus %s test/all", bus_name), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "map<"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "oneof "));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "enum "));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "google.protobuf.Timestamp"));
	CU_ASSERT_EQUAL(h_run_cli(out, sizeof(out), "type --bus %s raw", bus_name), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "untyped"));
	CU_ASSERT_EQUAL(h_run_cli(out, sizeof(out), "type --bus %s nosuch", bus_name), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "nosuch"));
}

/* pub with YAML (as `ros2 topic pub` takes it), --once, and
 * --wait-subscribers. */
static void test_pub_yaml(void)
{
	static char out[8192];
	struct child e;
	/* block style over several lines, .proto names */
	CU_ASSERT_EQUAL(h_run_cli(out, sizeof(out), "pub --bus %s ypose shmbus.msgs.Imu --once "
				  "'header:\n  stamp_ns: 42   # a comment\n  frame_id: \"base\"\n"
				  "orientation_covariance:\n  - 1\n  - 2.0\n  - 3\n"
				  "angular_velocity: {y: -1.25}'", bus_name), 0);
	CU_ASSERT_FATAL(spawn(&e, "echo", "--bus", bus_name, "ypose", "--last", "1", "--once",
			      NULL));
	expect_line(&e, imu_json);
	CU_ASSERT_EQUAL(finish(&e, 20000), 0);
	/* flow style on one line */
	CU_ASSERT_EQUAL(h_run_cli(out, sizeof(out), "pub --bus %s ypose shmbus.msgs.Imu -q "
				  "'{header: {stamp_ns: 42, frame_id: base}, "
				  "orientation_covariance: [1, 2, 3], angular_velocity: {y: -1.25}}'",
				  bus_name), 0);
	CU_ASSERT_FATAL(spawn(&e, "echo", "--bus", bus_name, "ypose", "--last", "1", "--once",
			      NULL));
	expect_line(&e, imu_json);
	CU_ASSERT_EQUAL(finish(&e, 20000), 0);
	CU_ASSERT_EQUAL(h_run_cli(out, sizeof(out), "pub --bus %s ypose shmbus.msgs.Imu "
				  "'header: [1, 2'", bus_name), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "neither JSON nor YAML: YAML line 1"));
	CU_ASSERT_EQUAL(h_run_cli(out, sizeof(out), "pub --bus %s ypose shmbus.msgs.Imu "
				  "'a: 1\n\tb: 2'", bus_name), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "YAML line 2: tabs"));
	CU_ASSERT_EQUAL(h_run_cli(out, sizeof(out), "pub --bus %s ypose shmbus.msgs.Imu --once "
				  "-r 5 '{}'", bus_name), 2);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "--once publishes one message"));

	/* --wait-subscribers 1: nothing goes out until echo has subscribed */
	struct child p;
	CU_ASSERT_FATAL(spawn(&p, "pub", "--bus", bus_name, "wsub", "shmbus.msgs.Imu", imu_json,
			      "--wait-subscribers", "1", NULL));
	CU_ASSERT_FATAL(wait_topic("wsub", 0, 0));
	struct shmbus_topic_info ti;
	CU_ASSERT_EQUAL(shmbus_topic_inspect(bus, "wsub", &ti, NULL, 0, NULL, NULL, 0, NULL), 0);
	CU_ASSERT_EQUAL(ti.next_seq, 0);
	CU_ASSERT_FATAL(spawn(&e, "echo", "--bus", bus_name, "wsub", "--once", NULL));
	expect_line(&e, imu_json);
	CU_ASSERT_EQUAL(finish(&e, 20000), 0);
	CU_ASSERT_EQUAL(finish(&p, 20000), 0);
}

/* echo --wait: started before its topic exists, it prints the topic's
 * first message (opened at the broker's event, from the first message),
 * with no --last needed. */
static void test_wait(void)
{
	struct child e;
	spawn_with_stderr = true;
	CU_ASSERT_FATAL(spawn(&e, "echo", "--bus", bus_name, "later", "--wait", "-n", "1", NULL));
	spawn_with_stderr = false;
	static char out[4096];
	char line[256];
	/* It says it waits once it watches the broker's topic events. */
	CU_ASSERT_TRUE(read_line(&e, line, sizeof(line), 20000));
	CU_ASSERT_PTR_NOT_NULL(strstr(line, "waiting for topic 'later' to appear"));
	CU_ASSERT_EQUAL(h_run_cli(out, sizeof(out), "pub --bus %s later shmbus.msgs.Imu '%s'",
				bus_name, imu_json), 0);
	expect_line(&e, imu_json);
	CU_ASSERT_EQUAL(finish(&e, 20000), 0);
	/* out of time while waiting: a clean exit */
	CU_ASSERT_EQUAL(h_run_cli(out, sizeof(out), "hz --bus %s never --wait --duration 0.3",
				bus_name), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "waiting for topic 'never'"));
}

/* ---------------------------------------------------------------- errors */

static void expect_fail(int code, const char *text, const char *args)
{
	static char out[16384];
	int rc = h_run_cli(out, sizeof(out), "%s", args);
	CU_ASSERT_EQUAL(rc, code);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, text));
	if (rc != code || !strstr(out, text))
		fprintf(stderr, "shmbus %s: exit %d, want %d and '%s' in:\n%s\n", args, rc, code, text,
			out);
}

static void test_errors(void)
{
	char a[1024];
#define ARGS(...) (snprintf(a, sizeof(a), __VA_ARGS__), a)
	expect_fail(0, "usage: shmbus echo", "echo --help");
	expect_fail(0, "_meta", "echo --help");
	expect_fail(0, "usage: shmbus hz", "hz --help");
	expect_fail(0, "usage: shmbus bw", "bw --help");
	expect_fail(0, "usage: shmbus pub", "pub --help");
	expect_fail(2, "usage: shmbus echo", "echo");
	expect_fail(2, "usage: shmbus pub", ARGS("pub --bus %s onlytopic", bus_name));
	expect_fail(2, "-n needs a whole number, not 'abc'", ARGS("hz --bus %s rate -n abc", bus_name));
	expect_fail(2, "unexpected argument '--frob'", ARGS("echo --bus %s x --frob", bus_name));
	expect_fail(1, "nosuch", ARGS("echo --bus %s nosuch -n 1", bus_name));
	expect_fail(1, "nosuch", ARGS("hz --bus %s nosuch --duration 1", bus_name));
	expect_fail(1, "no broker", ARGS("echo --bus %s-none x -n 1", bus_name));
	expect_fail(1, "unknown type 'shmbus.msgs.Nope'",
		    ARGS("pub --bus %s fresh shmbus.msgs.Nope '{}'", bus_name));
	expect_fail(1, "shmbus.msgs.Imu", ARGS("pub --bus %s fresh shmbus.msgs.Nope '{}'", bus_name));
	expect_fail(1, "bad JSON at line 1, column 10",
		    ARGS("pub --bus %s fresh shmbus.msgs.Imu '{\"header\":'", bus_name));
	expect_fail(1, "shmbus.msgs.Imu has no field 'bogus'",
		    ARGS("pub --bus %s fresh shmbus.msgs.Imu '{\"bogus\":1}'", bus_name));
	expect_fail(1, "header.stampNs: field 'stamp_ns' (int64) needs an integer, not a boolean",
		    ARGS("pub --bus %s fresh shmbus.msgs.Imu '{\"header\":{\"stampNs\":true}}'",
			 bus_name));
	expect_fail(1, "topic 'pose' has type 'shmbus.msgs.Imu', not 'shmbus.msgs.Image'",
		    ARGS("pub --bus %s pose shmbus.msgs.Image '{}'", bus_name));
	expect_fail(1, "/nonexistent.fds",
		    ARGS("pub --bus %s fresh x.Y '{}' --descriptor-set /nonexistent.fds", bus_name));
	/* none of the failed pubs created the topic */
	struct shmbus_topic_info ti;
	CU_ASSERT_EQUAL(shmbus_topic_inspect(bus, "fresh", &ti, NULL, 0, NULL, NULL, 0, NULL),
			SHMBUS_ENOTOPIC);
#undef ARGS
}

static int suite_init(void)
{
	bus_name = h_bus_name("tools");
	struct shmbus_connect_options o;
	shmbus_connect_options_init(&o);
	o.timeout_ns = 20000000000ll;
	return shmbus_connect(bus_name, &o, &bus) ? 1 : 0;
}

static int suite_clean(void)
{
	for (size_t i = 0; i < sizeof(children) / sizeof(children[0]); i++)
		if (children[i]) {
			kill(children[i], SIGKILL);
			waitpid(children[i], NULL, 0);
		}
	if (bus) { /* a test ended early: stop the broker here */
		pid_t broker = shmbus_broker_pid(bus);
		shmbus_disconnect(bus);
		kill(broker, SIGTERM);
		h_wait_exit(broker, 20000);
	}
	return 0;
}

static void test_stop_bus(void)
{
	shmbus_disconnect(bus);
	bus = NULL;
	h_stop_bus(bus_name);
}

static void add(void)
{
	CU_pSuite s = CU_add_suite("tools_cli", suite_init, suite_clean);
	CU_add_test(s, "echo a typed topic; --meta losses; -n and SIGTERM", test_echo_typed);
	CU_add_test(s, "echo untyped and malformed payloads", test_echo_untyped_and_malformed);
	CU_add_test(s, "hz and bw of a 100 Hz publisher", test_hz_bw);
	CU_add_test(s, "pub from JSON, read back typed and by echo", test_pub);
	CU_add_test(s, "pub sizes a new topic from its type, grows it for a larger message",
		    test_pub_sizes_topics);
	CU_add_test(s, "echo --field, --once, --csv", test_echo_field_csv);
	CU_add_test(s, "type prints .proto that protoc takes", test_type);
	CU_add_test(s, "pub YAML, --once, --wait-subscribers", test_pub_yaml);
	CU_add_test(s, "echo --wait for a topic", test_wait);
	CU_add_test(s, "errors", test_errors);
	CU_add_test(s, "stop the bus, nothing left", test_stop_bus);
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: test_tools_cli PBJSON_TEST_FDS PROTOC\n");
		return 2;
	}
	fds_path = argv[1];
	protoc_path = argv[2];
	return h_run("test_tools_cli", add);
}
