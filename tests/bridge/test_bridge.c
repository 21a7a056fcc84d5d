/*
 * test_bridge.c - shmbus-bridge between two buses on this host over DDS
 * (Cyclone, loopback only, a domain id of this run's own). Each test starts
 * two buses ("t-bridge-a-PID", "t-bridge-b-PID"), a bridge process on each,
 * and stops everything at the end. Every wait is for an observable outcome
 * (a message on a bus, a counter on the bridge's statistics line) with a
 * deadline.
 *
 * argv[1]: the shmbus-bridge executable.
 */
#include "envelope.h"
#include "harness.h"

#include <dds/dds.h>
#include <errno.h>
#include <poll.h>
#include <shmbus/msgs/image.shmbus.h>
#include <shmbus/msgs/imu.shmbus.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *g_bridge_exe;
static char g_config[512];
static char *g_config_xml;
static int g_domain_base;
static int g_test_no;

/* Loopback only, unicast discovery to ourselves, datagrams up to 64 KB
 * (loopback's MTU) so an 8 MB frame is ~130 fragments, not ~6000. The
 * discovery tag (this run's pid) keeps runs that share a domain id apart. */
static const char config_fmt[] =
	"<CycloneDDS><Domain id=\"any\">"
	"<General><Interfaces><NetworkInterface name=\"lo\"/></Interfaces>"
	"<AllowMulticast>false</AllowMulticast><MaxMessageSize>65500B</MaxMessageSize></General>"
	"<Discovery><Tag>shmbus-test-bridge-%d</Tag><ParticipantIndex>auto</ParticipantIndex>"
	"<MaxAutoParticipantIndex>20</MaxAutoParticipantIndex>"
	"<Peers><Peer address=\"127.0.0.1\"/></Peers></Discovery>"
	"<Internal><SocketReceiveBufferSize min=\"default\" max=\"16MB\"/></Internal>"
	"</Domain></CycloneDDS>";

/* ------------------------------------------------------------ bridges */

struct bproc {
	pid_t pid;
	int fd;            /* its stdout: the statistics lines */
	char buf[8192];
	size_t len;
	char last[8192];   /* the last complete statistics line */
};

static int next_domain(void)
{
	return g_domain_base + g_test_no++;
}

static bool bridge_start(struct bproc *bp, const char *bus, int domain, const char *const *extra)
{
	char dom[16];
	snprintf(dom, sizeof(dom), "%d", domain);
	const char *argv[32] = { g_bridge_exe, "--bus", bus, "--domain", dom, "--config", g_config,
				 "--stats-ms", "50" };
	size_t n = 9;
	for (size_t i = 0; extra[i] && n < 31; i++)
		argv[n++] = extra[i];
	argv[n] = NULL;
	int p[2];
	if (pipe(p) < 0)
		return false;
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		dup2(p[1], 1);
		close(p[0]);
		close(p[1]);
		execv(g_bridge_exe, (char *const *)argv);
		_exit(127);
	}
	close(p[1]);
	memset(bp, 0, sizeof(*bp));
	bp->pid = pid;
	bp->fd = p[0];
	return pid > 0;
}

/* Value of `key` in the last statistics line, or -1. */
static long long bp_stat(const struct bproc *bp, const char *key)
{
	char pat[64];
	snprintf(pat, sizeof(pat), " %s ", key);
	const char *s = strstr(bp->last, pat);
	return s ? strtoll(s + strlen(pat), NULL, 10) : -1;
}

/* Read statistics lines until `key` is at least min; false at the deadline
 * or if the bridge closed its output (exited). */
static bool bp_wait(struct bproc *bp, const char *key, long long min, int timeout_ms)
{
	int64_t deadline = h_now_ns() + (int64_t)timeout_ms * 1000000;
	while (bp_stat(bp, key) < min) {
		int left = (int)((deadline - h_now_ns()) / 1000000);
		if (left <= 0)
			return false;
		struct pollfd pf = { bp->fd, POLLIN, 0 };
		if (poll(&pf, 1, left) <= 0)
			continue;
		ssize_t r = read(bp->fd, bp->buf + bp->len, sizeof(bp->buf) - bp->len - 1);
		if (r <= 0)
			return false;
		bp->len += (size_t)r;
		bp->buf[bp->len] = '\0';
		char *nl;
		while ((nl = strchr(bp->buf, '\n'))) {
			*nl = '\0';
			if (strncmp(bp->buf, "stats ", 6) == 0)
				snprintf(bp->last, sizeof(bp->last), "%s", bp->buf);
			size_t used = (size_t)(nl + 1 - bp->buf);
			memmove(bp->buf, nl + 1, bp->len - used + 1);
			bp->len -= used;
		}
	}
	return true;
}

static bool bp_alive(const struct bproc *bp)
{
	int st;
	return waitpid(bp->pid, &st, WNOHANG) == 0;
}

/* SIGTERM; the bridge must exit 0 (it closes everything, sanitizers
 * included) within 20 s. */
static void bridge_stop(struct bproc *bp)
{
	if (bp->pid <= 0)
		return;
	kill(bp->pid, SIGTERM);
	CU_ASSERT_EQUAL(h_reap(bp->pid, 20000), 0);
	close(bp->fd);
	bp->pid = 0;
}

static void bridge_kill9(struct bproc *bp)
{
	kill(bp->pid, SIGKILL);
	CU_ASSERT_EQUAL(h_reap(bp->pid, 20000), 128 + SIGKILL);
	close(bp->fd);
	bp->pid = 0;
}

/* ------------------------------------------------------------ buses */

static bool wait_topic(shmbus_bus *bus, const char *topic, int timeout_ms)
{
	int64_t deadline = h_now_ns() + (int64_t)timeout_ms * 1000000;
	struct shmbus_topic_info info;
	while (shmbus_topic_inspect(bus, topic, &info, NULL, 0, NULL, NULL, 0, NULL) != 0) {
		if (h_now_ns() > deadline)
			return false;
		struct timespec ms = { 0, 10000000 };
		nanosleep(&ms, NULL);
	}
	return true;
}

static int publish_imu(shmbus_pub *pub, const char *frame, int64_t stamp, double x)
{
	Shmbus__Msgs__Header h = SHMBUS__MSGS__HEADER__INIT;
	Shmbus__Msgs__Vector3 v = SHMBUS__MSGS__VECTOR3__INIT;
	Shmbus__Msgs__Imu m = SHMBUS__MSGS__IMU__INIT;
	h.frame_id = (char *)frame;
	h.stamp_ns = stamp;
	v.x = x;
	m.header = &h;
	m.angular_velocity = &v;
	return shmbus__msgs__imu__publish(pub, &m, NULL);
}

/* What a test subscriber saw: frames and stamps in arrival order. */
struct seen {
	size_t n;
	char frame[4096][8];
	int64_t stamp[4096];
	double x[4096];
	uint64_t lost;
};

static void take_all(shmbus_sub *sub, struct seen *s)
{
	for (;;) {
		Shmbus__Msgs__Imu *m = NULL;
		struct shmbus_msg_info info;
		int rc = shmbus__msgs__imu__take(sub, NULL, &m, &info);
		if (rc == SHMBUS_EAGAIN)
			return;
		CU_ASSERT_EQUAL_FATAL(rc, SHMBUS_OK);
		s->lost += info.lost;
		if (s->n < 4096 && m->header) {
			snprintf(s->frame[s->n], sizeof(s->frame[0]), "%s", m->header->frame_id);
			s->stamp[s->n] = m->header->stamp_ns;
			s->x[s->n] = m->angular_velocity ? m->angular_velocity->x : -1;
			s->n++;
		}
		shmbus__msgs__imu__free(m, NULL);
	}
}

static size_t count_frame(const struct seen *s, const char *frame)
{
	size_t n = 0;
	for (size_t i = 0; i < s->n; i++)
		n += strcmp(s->frame[i], frame) == 0;
	return n;
}

/* Publish `frame` every 20 ms until sub has seen one (the path through
 * both bridges and DDS is up). */
static size_t g_warm_published;

static bool warm_up(shmbus_pub *pub, shmbus_sub *sub, struct seen *s, const char *frame,
		    int timeout_ms)
{
	int64_t deadline = h_now_ns() + (int64_t)timeout_ms * 1000000;
	while (count_frame(s, frame) == 0) {
		if (h_now_ns() > deadline)
			return false;
		CU_ASSERT_EQUAL(publish_imu(pub, frame, 0, 0), SHMBUS_OK);
		g_warm_published++;
		shmbus_sub_wait(sub, 20000000);
		take_all(sub, s);
	}
	return true;
}

/* ------------------------------------------------------------ tests */

static void open_buses(const char **na, const char **nb, shmbus_bus **a, shmbus_bus **b)
{
	*na = h_bus_name("bridge-a");
	*nb = h_bus_name("bridge-b");
	*a = h_connect(*na);
	*b = h_connect(*nb);
	CU_ASSERT_PTR_NOT_NULL_FATAL(*a);
	CU_ASSERT_PTR_NOT_NULL_FATAL(*b);
}

static void close_buses(const char *na, const char *nb, shmbus_bus *a, shmbus_bus *b)
{
	shmbus_disconnect(a);
	shmbus_disconnect(b);
	h_stop_bus(na);
	h_stop_bus(nb);
}

/* Typed messages published on A arrive on B with the same content, type,
 * schema and layout, all of them, in order. */
static void test_typed_a_to_b(void)
{
	const char *na, *nb;
	shmbus_bus *a, *b;
	open_buses(&na, &nb, &a, &b);
	int dom = next_domain();
	struct shmbus_topic_options to;
	shmbus_topic_options_init(&to);
	to.slot_count = 128;
	to.max_message_size = 1024;
	shmbus_pub *pub;
	CU_ASSERT_EQUAL_FATAL(shmbus__msgs__imu__pub_open(a, "imu/front", &to, NULL, &pub), SHMBUS_OK);

	struct bproc ba, bb;
	CU_ASSERT_FATAL(bridge_start(&ba, na, dom,
				     (const char *[]){ "--out", "imu/*", "--reliable", NULL }));
	CU_ASSERT_FATAL(bridge_start(&bb, nb, dom,
				     (const char *[]){ "--in", "imu/*", "--reliable", NULL }));
	CU_ASSERT_FATAL(wait_topic(b, "imu/front", 30000));

	shmbus_sub *sub;
	CU_ASSERT_EQUAL_FATAL(shmbus__msgs__imu__sub_open(b, "imu/front", NULL, NULL, &sub), SHMBUS_OK);
	CU_ASSERT_STRING_EQUAL(shmbus_sub_type_name(sub), "shmbus.msgs.Imu");
	size_t schema_size = 0;
	const void *schema = shmbus_sub_schema(sub, &schema_size);
	CU_ASSERT_EQUAL(schema_size, shmbus_schema_shmbus_2fmsgs_2fimu_2eproto_size);
	CU_ASSERT(schema && memcmp(schema, shmbus_schema_shmbus_2fmsgs_2fimu_2eproto,
				   schema_size) == 0);
	CU_ASSERT_EQUAL(shmbus_sub_max_message_size(sub), 1024);
	struct shmbus_topic_info info;
	CU_ASSERT_EQUAL(shmbus_topic_inspect(b, "imu/front", &info, NULL, 0, NULL, NULL, 0, NULL), 0);
	CU_ASSERT_EQUAL(info.slot_count, 128);

	static struct seen s;
	memset(&s, 0, sizeof(s));
	CU_ASSERT_FATAL(warm_up(pub, sub, &s, "warm", 30000));
	size_t first = s.n;
	enum { N = 1000, IN_FLIGHT = 32 };
	int64_t deadline = h_now_ns() + 60000000000ll;
	for (int i = 1; i <= N && h_now_ns() < deadline; i++) {
		CU_ASSERT_EQUAL(publish_imu(pub, "m", i, i * 0.5), SHMBUS_OK);
		take_all(sub, &s);
		/* Stay well within both rings: never more than IN_FLIGHT ahead. */
		while ((size_t)i > count_frame(&s, "m") + IN_FLIGHT && h_now_ns() < deadline) {
			shmbus_sub_wait(sub, 100000000);
			take_all(sub, &s);
		}
	}
	while (count_frame(&s, "m") < N && h_now_ns() < deadline) {
		shmbus_sub_wait(sub, 100000000);
		take_all(sub, &s);
	}
	/* Late warm-ups may still come first; after them, exactly 1..N. */
	size_t k = first;
	while (k < s.n && strcmp(s.frame[k], "warm") == 0)
		k++;
	CU_ASSERT_EQUAL(s.n - k, N);
	int bad = 0;
	for (size_t j = k; j < s.n; j++)
		if (strcmp(s.frame[j], "m") != 0 || s.stamp[j] != (int64_t)(j - k + 1) ||
		    s.x[j] != (double)(j - k + 1) * 0.5)
			bad++;
	CU_ASSERT_EQUAL(bad, 0);
	CU_ASSERT_EQUAL(s.lost, 0);
	CU_ASSERT(bp_wait(&bb, "in", (long long)s.n, 10000));
	CU_ASSERT_EQUAL(bp_stat(&bb, "dds_gaps"), 0);
	CU_ASSERT_EQUAL(bp_stat(&bb, "malformed"), 0);
	CU_ASSERT(bp_wait(&ba, "out", (long long)s.n, 10000));
	CU_ASSERT_EQUAL(bp_stat(&ba, "bus_lost"), 0);

	/* `shmbus echo` on B decodes the bridged topic by the schema it got. */
	const char *cli = getenv("SHMBUS_CLI");
	CU_ASSERT_PTR_NOT_NULL(cli);
	if (cli) {
		char cmd[1024], line[4096] = "";
		snprintf(cmd, sizeof(cmd), "'%s' echo --bus %s imu/front --last 1 -n 1 --duration 20",
			 cli, nb);
		FILE *p = popen(cmd, "r");
		CU_ASSERT_PTR_NOT_NULL_FATAL(p);
		if (!fgets(line, sizeof(line), p))
			line[0] = '\0';
		CU_ASSERT_EQUAL(pclose(p), 0);
		CU_ASSERT_PTR_NOT_NULL(strstr(line, "\"frameId\":\"m\""));
		CU_ASSERT_PTR_NOT_NULL(strstr(line, "\"stampNs\":\"1000\""));
		const char *x = strstr(line, "\"angularVelocity\":{\"x\":");
		CU_ASSERT(x && strtod(x + strlen("\"angularVelocity\":{\"x\":"), NULL) == 500.0);
		if (!x || !strstr(line, "\"stampNs\":\"1000\""))
			fprintf(stderr, "shmbus echo printed: %s\n", line);
	}

	shmbus_sub_close(sub);
	shmbus_pub_close(pub);
	bridge_stop(&ba);
	bridge_stop(&bb);
	close_buses(na, nb, a, b);
}

/* 8 MiB camera frames go through whole (DDS fragments them). */
static void test_large_frames(void)
{
	const char *na, *nb;
	shmbus_bus *a, *b;
	open_buses(&na, &nb, &a, &b);
	int dom = next_domain();
	enum { FRAME = 8 << 20, FRAMES = 4 };
	struct shmbus_topic_options to;
	shmbus_topic_options_init(&to);
	to.slot_count = 4;
	to.max_message_size = FRAME + 4096;
	shmbus_pub *pub;
	CU_ASSERT_EQUAL_FATAL(shmbus__msgs__image__pub_open(a, "cam/front", &to, NULL, &pub), SHMBUS_OK);
	struct bproc ba, bb;
	CU_ASSERT_FATAL(bridge_start(&ba, na, dom,
				     (const char *[]){ "--out", "cam/*", "--reliable", NULL }));
	CU_ASSERT_FATAL(bridge_start(&bb, nb, dom,
				     (const char *[]){ "--in", "cam/*", "--reliable", NULL }));
	CU_ASSERT_FATAL(wait_topic(b, "cam/front", 30000));
	shmbus_sub *sub;
	CU_ASSERT_EQUAL_FATAL(shmbus__msgs__image__sub_open(b, "cam/front", NULL, NULL, &sub), SHMBUS_OK);
	CU_ASSERT_EQUAL(shmbus_sub_max_message_size(sub), FRAME + 4096);

	uint8_t *pixels = malloc(FRAME);
	CU_ASSERT_PTR_NOT_NULL_FATAL(pixels);
	Shmbus__Msgs__Header h = SHMBUS__MSGS__HEADER__INIT;
	Shmbus__Msgs__Image img = SHMBUS__MSGS__IMAGE__INIT;
	img.header = &h;
	img.encoding = "mono8";
	/* Warm up with small frames (stamp 0) until one arrives. */
	int64_t deadline = h_now_ns() + 30000000000ll;
	bool up = false;
	while (!up && h_now_ns() < deadline) {
		img.data.len = 16;
		img.data.data = pixels;
		CU_ASSERT_EQUAL(shmbus__msgs__image__publish(pub, &img, NULL), SHMBUS_OK);
		if (shmbus_sub_wait(sub, 20000000) == SHMBUS_OK) {
			Shmbus__Msgs__Image *m;
			while (shmbus__msgs__image__take(sub, NULL, &m, NULL) == SHMBUS_OK) {
				up = true;
				shmbus__msgs__image__free(m, NULL);
			}
		}
	}
	CU_ASSERT_FATAL(up);
	int got = 0;
	for (int f = 1; f <= FRAMES; f++) {
		for (size_t i = 0; i < FRAME; i++)
			pixels[i] = (uint8_t)(i * 7 + (size_t)f * 13 + (i >> 12));
		h.stamp_ns = f;
		img.width = 4096;
		img.height = 2048;
		img.step = 4096;
		img.data.len = FRAME;
		CU_ASSERT_EQUAL(shmbus__msgs__image__publish(pub, &img, NULL), SHMBUS_OK);
		deadline = h_now_ns() + 60000000000ll;
		bool this_one = false;
		while (!this_one && h_now_ns() < deadline) {
			Shmbus__Msgs__Image *m;
			struct shmbus_msg_info info;
			int rc = shmbus__msgs__image__take(sub, NULL, &m, &info);
			if (rc == SHMBUS_EAGAIN) {
				shmbus_sub_wait(sub, 100000000);
				continue;
			}
			CU_ASSERT_EQUAL_FATAL(rc, SHMBUS_OK);
			if (m->header && m->header->stamp_ns == f) {
				this_one = true;
				got++;
				CU_ASSERT_EQUAL(m->data.len, FRAME);
				CU_ASSERT(m->data.len == FRAME && memcmp(m->data.data, pixels, FRAME) == 0);
				CU_ASSERT_EQUAL(m->width, 4096);
				CU_ASSERT_STRING_EQUAL(m->encoding, "mono8");
			}
			shmbus__msgs__image__free(m, NULL);
		}
	}
	CU_ASSERT_EQUAL(got, FRAMES);
	free(pixels);
	shmbus_sub_close(sub);
	shmbus_pub_close(pub);
	bridge_stop(&ba);
	bridge_stop(&bb);
	close_buses(na, nb, a, b);
}

/* Both bridges forward the same topic both ways (the configuration that
 * would loop): each side sees the other's messages exactly once, in
 * order, and never its own back. */
static void test_both_ways_no_loop(void)
{
	const char *na, *nb;
	shmbus_bus *a, *b;
	open_buses(&na, &nb, &a, &b);
	int dom = next_domain();
	shmbus_pub *pa, *pb;
	shmbus_sub *sa, *sb;
	CU_ASSERT_EQUAL_FATAL(shmbus__msgs__imu__pub_open(a, "chat/x", NULL, NULL, &pa), SHMBUS_OK);
	CU_ASSERT_EQUAL_FATAL(shmbus__msgs__imu__pub_open(b, "chat/x", NULL, NULL, &pb), SHMBUS_OK);
	CU_ASSERT_EQUAL_FATAL(shmbus__msgs__imu__sub_open(a, "chat/x", NULL, NULL, &sa), SHMBUS_OK);
	CU_ASSERT_EQUAL_FATAL(shmbus__msgs__imu__sub_open(b, "chat/x", NULL, NULL, &sb), SHMBUS_OK);
	const char *both[] = { "--out", "chat/*", "--in", "chat/*", "--reliable", NULL };
	struct bproc ba, bb;
	CU_ASSERT_FATAL(bridge_start(&ba, na, dom, both));
	CU_ASSERT_FATAL(bridge_start(&bb, nb, dom, both));

	static struct seen s_a, s_b;
	memset(&s_a, 0, sizeof(s_a));
	memset(&s_b, 0, sizeof(s_b));
	g_warm_published = 0;
	CU_ASSERT_FATAL(warm_up(pa, sb, &s_b, "wa", 30000));
	size_t wa_published = g_warm_published;
	CU_ASSERT_FATAL(warm_up(pb, sa, &s_a, "wb", 30000));

	enum { N = 200 };
	int64_t deadline = h_now_ns() + 60000000000ll;
	for (int i = 1; i <= N; i++) {
		CU_ASSERT_EQUAL(publish_imu(pa, "a", i, 0), SHMBUS_OK);
		CU_ASSERT_EQUAL(publish_imu(pb, "b", i, 0), SHMBUS_OK);
		take_all(sa, &s_a);
		take_all(sb, &s_b);
		while (((size_t)i > count_frame(&s_a, "b") + 16 ||
			(size_t)i > count_frame(&s_b, "a") + 16) && h_now_ns() < deadline) {
			shmbus_sub_wait(sa, 10000000);
			take_all(sa, &s_a);
			take_all(sb, &s_b);
		}
	}
	while ((count_frame(&s_a, "b") < N || count_frame(&s_b, "a") < N) &&
	       h_now_ns() < deadline) {
		shmbus_sub_wait(sa, 10000000);
		take_all(sa, &s_a);
		take_all(sb, &s_b);
	}
	CU_ASSERT_EQUAL(count_frame(&s_a, "b"), N);
	CU_ASSERT_EQUAL(count_frame(&s_b, "a"), N);
	/* Fences: each side publishes one after it has everything from the
	 * other. A bridge that echoed would send the echoes before the fence
	 * (they are earlier on its bus, and DDS keeps a writer's order), so
	 * once the other's fence is here, every echo would be here too. */
	CU_ASSERT_EQUAL(publish_imu(pa, "fa", 0, 0), SHMBUS_OK);
	CU_ASSERT_EQUAL(publish_imu(pb, "fb", 0, 0), SHMBUS_OK);
	while ((count_frame(&s_a, "fb") == 0 || count_frame(&s_b, "fa") == 0) &&
	       h_now_ns() < deadline) {
		shmbus_sub_wait(sa, 10000000);
		take_all(sa, &s_a);
		take_all(sb, &s_b);
	}
	CU_ASSERT_EQUAL(count_frame(&s_a, "fb"), 1);
	CU_ASSERT_EQUAL(count_frame(&s_b, "fa"), 1);
	CU_ASSERT_EQUAL(count_frame(&s_a, "a"), N); /* its own, once */
	CU_ASSERT_EQUAL(count_frame(&s_b, "b"), N);
	CU_ASSERT_EQUAL(count_frame(&s_a, "fa"), 1);
	CU_ASSERT_EQUAL(count_frame(&s_b, "fb"), 1);
	/* Each side's messages from the other in order. */
	int64_t last_a = 0, last_b = 0;
	int disorder = 0;
	for (size_t i = 0; i < s_a.n; i++)
		if (strcmp(s_a.frame[i], "b") == 0)
			disorder += s_a.stamp[i] != ++last_b;
	for (size_t i = 0; i < s_b.n; i++)
		if (strcmp(s_b.frame[i], "a") == 0)
			disorder += s_b.stamp[i] != ++last_a;
	CU_ASSERT_EQUAL(disorder, 0);
	/* A bridge sends out only what was published on its own bus (A's
	 * messages, its fence, at most its warm-ups), never what it brought
	 * in: an echo of B's N messages would show here. */
	CU_ASSERT(bp_wait(&ba, "out", N + 1, 10000));
	CU_ASSERT(bp_wait(&bb, "out", N + 1, 10000));
	CU_ASSERT(bp_stat(&ba, "out") <= (long long)(wa_published + N + 1));
	CU_ASSERT(bp_stat(&bb, "out") <= (long long)(g_warm_published - wa_published + N + 1));
	CU_ASSERT_EQUAL(bp_stat(&ba, "malformed"), 0);
	CU_ASSERT_EQUAL(bp_stat(&bb, "malformed"), 0);

	shmbus_sub_close(sa);
	shmbus_sub_close(sb);
	shmbus_pub_close(pa);
	shmbus_pub_close(pb);
	bridge_stop(&ba);
	bridge_stop(&bb);
	close_buses(na, nb, a, b);
}

/* Publish until one message (after `since` on the subscriber) arrives. */
static bool flows(shmbus_pub *pub, shmbus_sub *sub, struct seen *s, const char *frame)
{
	return warm_up(pub, sub, s, frame, 30000);
}

/* kill -9 either bridge and start it again: forwarding resumes. */
static void test_kill9_restart(void)
{
	const char *na, *nb;
	shmbus_bus *a, *b;
	open_buses(&na, &nb, &a, &b);
	int dom = next_domain();
	shmbus_pub *pub;
	CU_ASSERT_EQUAL_FATAL(shmbus__msgs__imu__pub_open(a, "k/x", NULL, NULL, &pub), SHMBUS_OK);
	const char *out[] = { "--out", "k/*", NULL };
	const char *in[] = { "--in", "k/*", NULL };
	struct bproc ba, bb;
	CU_ASSERT_FATAL(bridge_start(&ba, na, dom, out));
	CU_ASSERT_FATAL(bridge_start(&bb, nb, dom, in));
	CU_ASSERT_FATAL(wait_topic(b, "k/x", 30000));
	shmbus_sub *sub;
	CU_ASSERT_EQUAL_FATAL(shmbus__msgs__imu__sub_open(b, "k/x", NULL, NULL, &sub), SHMBUS_OK);
	static struct seen s;
	memset(&s, 0, sizeof(s));
	CU_ASSERT_FATAL(flows(pub, sub, &s, "1"));

	bridge_kill9(&bb);
	CU_ASSERT_FATAL(bridge_start(&bb, nb, dom, in));
	CU_ASSERT(flows(pub, sub, &s, "2"));

	bridge_kill9(&ba);
	CU_ASSERT_FATAL(bridge_start(&ba, na, dom, out));
	CU_ASSERT(flows(pub, sub, &s, "3"));
	CU_ASSERT(bp_alive(&ba) && bp_alive(&bb));

	shmbus_sub_close(sub);
	shmbus_pub_close(pub);
	bridge_stop(&ba);
	bridge_stop(&bb);
	close_buses(na, nb, a, b);
}

/* ------------------------------------------------- malformed envelopes */

static int write_envelope(dds_entity_t w, const char *type, const void *payload, size_t n,
			  uint64_t bridge_seq)
{
	shmbus_bridge_Envelope e;
	memset(&e, 0, sizeof(e));
	e.type_name = (char *)type;
	e.seq = bridge_seq;
	e.bridge_seq = bridge_seq;
	e.source_bus = "test:raw";
	e.bridge_id = 42;
	e.payload._buffer = (uint8_t *)payload;
	e.payload._length = e.payload._maximum = (uint32_t)n;
	return dds_write(w, &e);
}

static bool wait_matched(dds_entity_t w, int timeout_ms)
{
	int64_t deadline = h_now_ns() + (int64_t)timeout_ms * 1000000;
	dds_publication_matched_status_t st;
	while (dds_get_publication_matched_status(w, &st) == 0 && st.current_count == 0) {
		if (h_now_ns() > deadline)
			return false;
		struct timespec ms = { 0, 10000000 };
		nanosleep(&ms, NULL);
	}
	return true;
}

/* A raw DDS writer (this test) sends envelopes that are wrong in each way
 * the bridge checks: each is refused and counted, none reaches the bus,
 * the bridge keeps running and still forwards good ones. */
static void test_malformed_envelopes(void)
{
	const char *na, *nb;
	shmbus_bus *a, *b;
	open_buses(&na, &nb, &a, &b);
	int dom = next_domain();
	struct bproc bb;
	CU_ASSERT_FATAL(bridge_start(&bb, nb, dom,
				     (const char *[]){ "--in", "bad/*", "--reliable", NULL }));

	dds_entity_t d = dds_create_domain((dds_domainid_t)dom, g_config_xml);
	CU_ASSERT_FATAL(d > 0);
	dds_entity_t pp = dds_create_participant((dds_domainid_t)dom, NULL, NULL);
	CU_ASSERT_FATAL(pp > 0);
	dds_entity_t at = dds_create_topic(pp, &shmbus_bridge_Announce_desc, "shmbus/announce",
					   NULL, NULL);
	dds_qos_t *q = dds_create_qos();
	dds_qset_reliability(q, DDS_RELIABILITY_RELIABLE, DDS_SECS(1));
	dds_qset_durability(q, DDS_DURABILITY_TRANSIENT_LOCAL);
	dds_qset_history(q, DDS_HISTORY_KEEP_LAST, 1);
	dds_entity_t aw = dds_create_writer(pp, at, q, NULL);
	dds_delete_qos(q);
	CU_ASSERT_FATAL(aw > 0);

	shmbus_bridge_Announce an;
	memset(&an, 0, sizeof(an));
	an.topic = "bad/t";
	an.bridge_id = 42;
	an.dds_topic = "shmbus/bad/t";
	an.type_name = "shmbus.msgs.Imu";
	an.max_message_size = 256;
	an.slot_count = 16;
	an.schema._buffer = (uint8_t *)shmbus_schema_shmbus_2fmsgs_2fimu_2eproto;
	an.schema._length = an.schema._maximum =
		(uint32_t)shmbus_schema_shmbus_2fmsgs_2fimu_2eproto_size;
	CU_ASSERT_EQUAL(dds_write(aw, &an), 0);
	/* An announce whose topic is not a valid bus topic name. */
	shmbus_bridge_Announce bad = an;
	bad.topic = "bad/no spaces";
	bad.dds_topic = "shmbus/bad/no_20spaces";
	CU_ASSERT_EQUAL(dds_write(aw, &bad), 0);

	CU_ASSERT_FATAL(wait_topic(b, "bad/t", 30000));
	shmbus_sub *sub;
	CU_ASSERT_EQUAL_FATAL(shmbus__msgs__imu__sub_open(b, "bad/t", NULL, NULL, &sub), SHMBUS_OK);

	dds_entity_t dt = dds_create_topic(pp, &shmbus_bridge_Envelope_desc, "shmbus/bad/t", NULL,
					   NULL);
	q = dds_create_qos();
	dds_qset_reliability(q, DDS_RELIABILITY_RELIABLE, DDS_SECS(1));
	dds_qset_history(q, DDS_HISTORY_KEEP_ALL, 0);
	dds_entity_t dw = dds_create_writer(pp, dt, q, NULL);
	dds_delete_qos(q);
	CU_ASSERT_FATAL(dw > 0);
	CU_ASSERT_FATAL(wait_matched(dw, 30000));

	/* A good Imu, packed by protobuf-c. */
	Shmbus__Msgs__Header h = SHMBUS__MSGS__HEADER__INIT;
	Shmbus__Msgs__Imu m = SHMBUS__MSGS__IMU__INIT;
	h.frame_id = "good";
	h.stamp_ns = 7;
	m.header = &h;
	uint8_t good[64];
	size_t good_n = protobuf_c_message_pack(&m.base, good);
	static const uint8_t garbage[] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
					   0xff, 0xff, 0xff, 0x01 };
	static const uint8_t truncated[] = { 0x0a, 0x40, 0x0a, 0x04 }; /* length past the end */
	static uint8_t big[1000];
	CU_ASSERT_EQUAL(write_envelope(dw, "other.Type", good, good_n, 1), 0);
	CU_ASSERT_EQUAL(write_envelope(dw, "shmbus.msgs.Imu", garbage, sizeof(garbage), 2), 0);
	CU_ASSERT_EQUAL(write_envelope(dw, "shmbus.msgs.Imu", truncated, sizeof(truncated), 3), 0);
	CU_ASSERT_EQUAL(write_envelope(dw, "shmbus.msgs.Imu", big, sizeof(big), 4), 0);
	CU_ASSERT_EQUAL(write_envelope(dw, "shmbus.msgs.Imu", good, good_n, 5), 0);

	/* The good one arrives, and is the first thing on the topic. */
	static struct seen s;
	memset(&s, 0, sizeof(s));
	int64_t deadline = h_now_ns() + 30000000000ll;
	while (s.n == 0 && h_now_ns() < deadline) {
		shmbus_sub_wait(sub, 100000000);
		take_all(sub, &s);
	}
	CU_ASSERT_EQUAL_FATAL(s.n, 1);
	CU_ASSERT_STRING_EQUAL(s.frame[0], "good");
	CU_ASSERT_EQUAL(s.stamp[0], 7);
	/* 1 bad announce + 4 bad envelopes, counted; nothing else. */
	CU_ASSERT(bp_wait(&bb, "malformed", 5, 10000));
	CU_ASSERT(bp_wait(&bb, "in", 1, 10000));
	CU_ASSERT_EQUAL(bp_stat(&bb, "malformed"), 5);
	CU_ASSERT_EQUAL(bp_stat(&bb, "in"), 1);
	CU_ASSERT(bp_alive(&bb));
	/* And it still forwards. */
	h.stamp_ns = 8;
	good_n = protobuf_c_message_pack(&m.base, good);
	CU_ASSERT_EQUAL(write_envelope(dw, "shmbus.msgs.Imu", good, good_n, 6), 0);
	deadline = h_now_ns() + 30000000000ll;
	while (s.n < 2 && h_now_ns() < deadline) {
		shmbus_sub_wait(sub, 100000000);
		take_all(sub, &s);
	}
	CU_ASSERT_EQUAL(s.n, 2);
	CU_ASSERT_EQUAL(s.stamp[1], 8);
	CU_ASSERT(bp_wait(&bb, "in", 2, 10000));
	CU_ASSERT_EQUAL(bp_stat(&bb, "dds_gaps"), 0);

	dds_delete(d);
	shmbus_sub_close(sub);
	bridge_stop(&bb);
	close_buses(na, nb, a, b);
}

/* The bridge's usage errors are clear and exit 2. */
static void test_usage(void)
{
	const char *na = h_bus_name("bridge-a");
	struct bproc bp;
	CU_ASSERT_FATAL(bridge_start(&bp, na, next_domain(), (const char *[]){ NULL }));
	CU_ASSERT_EQUAL(h_reap(bp.pid, 20000), 2);
	close(bp.fd);
	CU_ASSERT_FATAL(bridge_start(&bp, na, next_domain(),
				     (const char *[]){ "--depth", "0", "--out", "x", NULL }));
	CU_ASSERT_EQUAL(h_reap(bp.pid, 20000), 2);
	close(bp.fd);
	/* A later --config wins over the test's: a missing file is an error
	 * (exit 1), not Cyclone's defaults. */
	CU_ASSERT_FATAL(bridge_start(&bp, na, next_domain(),
				     (const char *[]){ "--config", "/nonexistent/dds.xml", "--out", "x",
						       NULL }));
	CU_ASSERT_EQUAL(h_reap(bp.pid, 20000), 1);
	close(bp.fd);
	h_stop_bus(na);
}

static void add(void)
{
	CU_pSuite s = CU_add_suite("bridge", NULL, NULL);
	CU_add_test(s, "usage", test_usage);
	CU_add_test(s, "typed_a_to_b", test_typed_a_to_b);
	CU_add_test(s, "large_frames", test_large_frames);
	CU_add_test(s, "both_ways_no_loop", test_both_ways_no_loop);
	CU_add_test(s, "kill9_restart", test_kill9_restart);
	CU_add_test(s, "malformed_envelopes", test_malformed_envelopes);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: test_bridge SHMBUS_BRIDGE\n");
		return 2;
	}
	g_bridge_exe = argv[1];
	/* Domain ids 1..224, apart for each run (pid) and each test (8). */
	g_domain_base = 1 + (int)(getpid() % 28) * 8;
	const char *dir = getenv("SHMBUS_RUNTIME_DIR");
	if (dir)
		mkdir(dir, 0700);
	snprintf(g_config, sizeof(g_config), "%s/bridge-dds-%d.xml", dir ? dir : "/tmp",
		 (int)getpid());
	static char xml[2048];
	snprintf(xml, sizeof(xml), config_fmt, (int)getpid());
	g_config_xml = xml;
	FILE *f = fopen(g_config, "w");
	if (!f || fputs(xml, f) < 0 || fclose(f) != 0) {
		fprintf(stderr, "test_bridge: writing %s: %s\n", g_config, strerror(errno));
		return 1;
	}
	int rc = h_run("test_bridge", add);
	unlink(g_config);
	return rc;
}
