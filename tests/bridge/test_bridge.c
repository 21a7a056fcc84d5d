/*
 * test_bridge.c - shmbus-bridge between two buses on this host over DDS
 * (Cyclone, loopback only, a domain id of this run's own). Each test starts
 * two buses ("t-bridge-a-PID", "t-bridge-b-PID"), a bridge process on each,
 * and stops everything at the end. Every wait is for an observable outcome
 * (a message on a bus, a counter on the bridge's statistics line) with a
 * deadline.
 *
 * argv[1]: the shmbus-bridge executable; argv[2...]: run only these tests.
 */
#include "envelope.h"
#include "harness.h"

#include <dds/dds.h>
#include <errno.h>
#include <poll.h>
#include <shmbus/msgs/image.shmbus.h>
#include <shmbus/msgs/imu.shmbus.h>
#include <signal.h>
#include <stdarg.h>
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

/* Domain ids stay within 1..192: Cyclone derives its UDP ports from the
 * id (7400 + 250 * id + ...), and ids past 232 give ports above 65535, so
 * discovery silently never happens. Runs that land on the same id are
 * kept apart by their discovery tag. */
static int next_domain(void)
{
	return 1 + (g_domain_base + g_test_no++) % 192;
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

/* Read what the bridge printed within timeout_ms; false at EOF (it exited)
 * or on timeout with nothing read. */
static bool bp_read(struct bproc *bp, int timeout_ms)
{
	struct pollfd pf = { bp->fd, POLLIN, 0 };
	if (poll(&pf, 1, timeout_ms) <= 0)
		return false;
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
	return true;
}

/* Read statistics lines until `key` is at least min; false at the deadline
 * or if the bridge closed its output (exited). */
static bool bp_wait(struct bproc *bp, const char *key, long long min, int timeout_ms)
{
	int64_t deadline = h_now_ns() + (int64_t)timeout_ms * 1000000;
	while (bp_stat(bp, key) < min) {
		int left = (int)((deadline - h_now_ns()) / 1000000);
		if (left <= 0 || (!bp_read(bp, left) && h_now_ns() < deadline))
			return false;
	}
	return true;
}

/* Each "key value" pair of the format is what the last statistics line
 * says; the line is printed when one is not. */
static void bp_expect(const struct bproc *bp, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void bp_expect(const struct bproc *bp, const char *fmt, ...)
{
	char want[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(want, sizeof(want), fmt, ap);
	va_end(ap);
	bool ok = true;
	char *save, *key = strtok_r(want, " ", &save);
	while (key) {
		char *val = strtok_r(NULL, " ", &save);
		long long v = val ? strtoll(val, NULL, 10) : -2;
		CU_ASSERT_EQUAL(bp_stat(bp, key), v);
		if (bp_stat(bp, key) != v) {
			fprintf(stderr, "bridge stat %s: want %lld, got %lld\n", key, v, bp_stat(bp, key));
			ok = false;
		}
		key = strtok_r(NULL, " ", &save);
	}
	if (!ok)
		fprintf(stderr, "  in: %s\n", bp->last);
}

static bool bp_alive(const struct bproc *bp)
{
	int st;
	return waitpid(bp->pid, &st, WNOHANG) == 0;
}

/* SIGTERM; the bridge must exit 0 (it closes everything, sanitizers
 * included) within 20 s. Its output is read to the end meanwhile (a full
 * pipe would block it), so bp->last is its final statistics line. */
static void bridge_stop(struct bproc *bp)
{
	if (bp->pid <= 0)
		return;
	kill(bp->pid, SIGTERM);
	int64_t deadline = h_now_ns() + 20000000000ll;
	while (h_now_ns() < deadline && bp_read(bp, 1000))
		;
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

/* Until the bus has `topic` (the broker's topic events say so). */
static bool wait_topic(shmbus_bus *bus, const char *topic, int timeout_ms)
{
	int64_t deadline = h_now_ns() + (int64_t)timeout_ms * 1000000;
	shmbus_topic_watch *w;
	if (shmbus_topic_watch_open(bus, &w) != 0)
		return false;
	bool found = false;
	while (!found && h_now_ns() < deadline) {
		struct shmbus_topic_event ev;
		int rc = shmbus_topic_watch_next(w, &ev);
		if (rc == SHMBUS_OK)
			found = ev.kind == SHMBUS_TOPIC_CREATED && strcmp(ev.name, topic) == 0;
		else if (rc == SHMBUS_EAGAIN)
			shmbus_topic_watch_wait(w, deadline - h_now_ns());
		else
			break;
	}
	shmbus_topic_watch_close(w);
	return found;
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
	uint64_t lost_at[4096]; /* losses reported up to and with each message */
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
			s->lost_at[s->n] = s->lost;
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

/* Each side publishes one message (fence "fa" on A, "fb" on B), and both
 * are taken where they arrive. A bridge that echoed would send its echoes
 * before the fence (they are earlier on its bus, and DDS keeps a writer's
 * order), so once the other's fence is here, every echo would be too. */
static void fences(shmbus_pub *pa, shmbus_pub *pb, shmbus_sub *sa, shmbus_sub *sb,
		   struct seen *s_a, struct seen *s_b, int64_t deadline)
{
	CU_ASSERT_EQUAL(publish_imu(pa, "fa", 0, 0), SHMBUS_OK);
	CU_ASSERT_EQUAL(publish_imu(pb, "fb", 0, 0), SHMBUS_OK);
	while ((count_frame(s_a, "fb") == 0 || count_frame(s_b, "fa") == 0) &&
	       h_now_ns() < deadline) {
		shmbus_sub_wait(sa, 10000000);
		take_all(sa, s_a);
		take_all(sb, s_b);
	}
	CU_ASSERT_EQUAL(count_frame(s_a, "fb"), 1);
	CU_ASSERT_EQUAL(count_frame(s_b, "fa"), 1);
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

enum { FRAME = 8 << 20 };

/* An 8 MiB mono8 image, frame f: its pixels (a pattern of f) in px. */
struct frame {
	Shmbus__Msgs__Header h;
	Shmbus__Msgs__Image img;
	uint8_t *px;
};

static void frame_init(struct frame *fr)
{
	Shmbus__Msgs__Header h = SHMBUS__MSGS__HEADER__INIT;
	Shmbus__Msgs__Image img = SHMBUS__MSGS__IMAGE__INIT;
	fr->h = h;
	fr->img = img;
	fr->img.header = &fr->h;
	fr->img.encoding = "mono8";
	fr->px = malloc(FRAME);
	CU_ASSERT_PTR_NOT_NULL_FATAL(fr->px);
	fr->img.data.data = fr->px;
}

static int frame_publish(shmbus_pub *pub, struct frame *fr, int f)
{
	for (size_t i = 0; i < FRAME; i++)
		fr->px[i] = (uint8_t)(i * 7 + (size_t)f * 13 + (i >> 12));
	fr->h.stamp_ns = f;
	fr->img.width = 4096;
	fr->img.height = 2048;
	fr->img.step = 4096;
	fr->img.data.len = FRAME;
	return shmbus__msgs__image__publish(pub, &fr->img, NULL);
}

/* The next image on sub, or NULL at the deadline; its losses add to *lost. */
static Shmbus__Msgs__Image *take_image(shmbus_sub *sub, int64_t deadline, uint64_t *lost)
{
	while (h_now_ns() < deadline) {
		Shmbus__Msgs__Image *m;
		struct shmbus_msg_info info;
		int rc = shmbus__msgs__image__take(sub, NULL, &m, &info);
		if (rc == SHMBUS_EAGAIN) {
			shmbus_sub_wait(sub, 100000000);
			continue;
		}
		CU_ASSERT_EQUAL_FATAL(rc, SHMBUS_OK);
		*lost += info.lost;
		return m;
	}
	return NULL;
}

/* Whether m is frame f of fr, whole. */
static bool frame_same(const Shmbus__Msgs__Image *m, const struct frame *fr, int f)
{
	return m->header && m->header->stamp_ns == f && m->data.len == FRAME &&
	       memcmp(m->data.data, fr->px, FRAME) == 0 && m->width == 4096 && m->height == 2048 &&
	       strcmp(m->encoding, "mono8") == 0;
}

/* 8 MiB camera frames go through whole (DDS fragments them). */
static void test_large_frames(void)
{
	const char *na, *nb;
	shmbus_bus *a, *b;
	open_buses(&na, &nb, &a, &b);
	int dom = next_domain();
	enum { FRAMES = 4 };
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

	struct frame fr;
	frame_init(&fr);
	/* Warm up with small frames (stamp 0) until one arrives. */
	int64_t deadline = h_now_ns() + 30000000000ll;
	bool up = false;
	while (!up && h_now_ns() < deadline) {
		fr.img.data.len = 16;
		CU_ASSERT_EQUAL(shmbus__msgs__image__publish(pub, &fr.img, NULL), SHMBUS_OK);
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
	uint64_t lost = 0;
	for (int f = 1; f <= FRAMES; f++) {
		CU_ASSERT_EQUAL(frame_publish(pub, &fr, f), SHMBUS_OK);
		deadline = h_now_ns() + 60000000000ll;
		Shmbus__Msgs__Image *m;
		/* Late warm-ups may come first. */
		while ((m = take_image(sub, deadline, &lost)) && m->header && m->header->stamp_ns == 0)
			shmbus__msgs__image__free(m, NULL);
		CU_ASSERT(m && frame_same(m, &fr, f));
		got += m != NULL;
		if (m)
			shmbus__msgs__image__free(m, NULL);
	}
	CU_ASSERT_EQUAL(got, FRAMES);
	free(fr.px);
	shmbus_sub_close(sub);
	shmbus_pub_close(pub);
	bridge_stop(&ba);
	bridge_stop(&bb);
	close_buses(na, nb, a, b);
}

/* Two buses with one IMU topic each (topic_a on A, topic_b on B), a
 * publisher and a subscriber on each, and a bridge on each forwarding
 * PATTERN both ways, with the path up in both directions. */
struct duo {
	const char *na, *nb;
	shmbus_bus *a, *b;
	shmbus_pub *pa, *pb;
	shmbus_sub *sa, *sb;
	struct bproc ba, bb;
	int dom;
	struct seen s_a, s_b;  /* what arrived on A, on B */
	size_t wa_published;   /* warm-ups published on A */
};

static void duo_start(struct duo *d, const char *topic_a, const char *topic_b, const char *pattern)
{
	open_buses(&d->na, &d->nb, &d->a, &d->b);
	d->dom = next_domain();
	CU_ASSERT_EQUAL_FATAL(shmbus__msgs__imu__pub_open(d->a, topic_a, NULL, NULL, &d->pa), SHMBUS_OK);
	CU_ASSERT_EQUAL_FATAL(shmbus__msgs__imu__pub_open(d->b, topic_b, NULL, NULL, &d->pb), SHMBUS_OK);
	CU_ASSERT_EQUAL_FATAL(shmbus__msgs__imu__sub_open(d->a, topic_a, NULL, NULL, &d->sa), SHMBUS_OK);
	CU_ASSERT_EQUAL_FATAL(shmbus__msgs__imu__sub_open(d->b, topic_b, NULL, NULL, &d->sb), SHMBUS_OK);
	const char *both[] = { "--out", pattern, "--in", pattern, "--reliable", NULL };
	CU_ASSERT_FATAL(bridge_start(&d->ba, d->na, d->dom, both));
	CU_ASSERT_FATAL(bridge_start(&d->bb, d->nb, d->dom, both));
	memset(&d->s_a, 0, sizeof(d->s_a));
	memset(&d->s_b, 0, sizeof(d->s_b));
	g_warm_published = 0;
	CU_ASSERT_FATAL(warm_up(d->pa, d->sb, &d->s_b, "wa", 30000));
	d->wa_published = g_warm_published;
	CU_ASSERT_FATAL(warm_up(d->pb, d->sa, &d->s_a, "wb", 30000));
}

/* After the bridges were stopped. */
static void duo_close(struct duo *d)
{
	shmbus_sub_close(d->sa);
	shmbus_sub_close(d->sb);
	shmbus_pub_close(d->pa);
	shmbus_pub_close(d->pb);
	close_buses(d->na, d->nb, d->a, d->b);
}

/* Both bridges forward the same topic both ways (the configuration that
 * would loop): each side sees the other's messages exactly once, in
 * order, and never its own back. */
static void run_both_ways_no_loop(const char *topic_a, const char *topic_b, const char *pattern)
{
	static struct duo d;
	duo_start(&d, topic_a, topic_b, pattern);
	shmbus_pub *pa = d.pa, *pb = d.pb;
	shmbus_sub *sa = d.sa, *sb = d.sb;
	struct seen *s_a = &d.s_a, *s_b = &d.s_b;
	enum { N = 200 };
	int64_t deadline = h_now_ns() + 60000000000ll;
	for (int i = 1; i <= N; i++) {
		CU_ASSERT_EQUAL(publish_imu(pa, "a", i, 0), SHMBUS_OK);
		CU_ASSERT_EQUAL(publish_imu(pb, "b", i, 0), SHMBUS_OK);
		take_all(sa, s_a);
		take_all(sb, s_b);
		while (((size_t)i > count_frame(s_a, "b") + 16 ||
			(size_t)i > count_frame(s_b, "a") + 16) && h_now_ns() < deadline) {
			shmbus_sub_wait(sa, 10000000);
			take_all(sa, s_a);
			take_all(sb, s_b);
		}
	}
	while ((count_frame(s_a, "b") < N || count_frame(s_b, "a") < N) &&
	       h_now_ns() < deadline) {
		shmbus_sub_wait(sa, 10000000);
		take_all(sa, s_a);
		take_all(sb, s_b);
	}
	CU_ASSERT_EQUAL(count_frame(s_a, "b"), N);
	CU_ASSERT_EQUAL(count_frame(s_b, "a"), N);
	/* Fences, once each side has everything from the other. */
	fences(pa, pb, sa, sb, s_a, s_b, deadline);
	CU_ASSERT_EQUAL(count_frame(s_a, "a"), N); /* its own, once */
	CU_ASSERT_EQUAL(count_frame(s_b, "b"), N);
	CU_ASSERT_EQUAL(count_frame(s_a, "fa"), 1);
	CU_ASSERT_EQUAL(count_frame(s_b, "fb"), 1);
	/* Each side's messages from the other in order. */
	int64_t last_a = 0, last_b = 0;
	int disorder = 0;
	for (size_t i = 0; i < s_a->n; i++)
		if (strcmp(s_a->frame[i], "b") == 0)
			disorder += s_a->stamp[i] != ++last_b;
	for (size_t i = 0; i < s_b->n; i++)
		if (strcmp(s_b->frame[i], "a") == 0)
			disorder += s_b->stamp[i] != ++last_a;
	CU_ASSERT_EQUAL(disorder, 0);
	/* A bridge sends out only what was published on its own bus (A's
	 * messages, its fence, at most its warm-ups), never what it brought
	 * in: an echo of B's N messages would show here. */
	CU_ASSERT(bp_wait(&d.ba, "out", N + 1, 10000));
	CU_ASSERT(bp_wait(&d.bb, "out", N + 1, 10000));
	CU_ASSERT(bp_stat(&d.ba, "out") <= (long long)(d.wa_published + N + 1));
	CU_ASSERT(bp_stat(&d.bb, "out") <= (long long)(g_warm_published - d.wa_published + N + 1));
	CU_ASSERT_EQUAL(bp_stat(&d.ba, "malformed"), 0);
	CU_ASSERT_EQUAL(bp_stat(&d.bb, "malformed"), 0);
	bridge_stop(&d.ba);
	bridge_stop(&d.bb);
	duo_close(&d);
}

static void test_both_ways_no_loop(void)
{
	run_both_ways_no_loop("chat/x", "chat/x", "chat/*");
}

/* The same with ROS-style names, spelled differently on the two buses
 * ("/ros/chat" and "ros/chat" are one topic): one DDS topic carries both,
 * and the loop guard knows the bridge's own publisher under either name. */
static void test_both_ways_ros_names(void)
{
	run_both_ways_no_loop("/ros/chat", "ros/chat", "/ros/*");
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

/* ------------------------------------------- topics that appear later */

/* Two buses, bridge A sending PATTERN out and bridge B taking it in, up
 * and known to each other (A has seen B's announce reader), no topic yet. */
struct pair {
	const char *na, *nb;
	shmbus_bus *a, *b;
	struct bproc ba, bb;
};

static void pair_start(struct pair *p, const char *out, const char *in, bool reliable)
{
	open_buses(&p->na, &p->nb, &p->a, &p->b);
	int dom = next_domain();
	const char *rel = reliable ? "--reliable" : NULL;
	CU_ASSERT_FATAL(bridge_start(&p->ba, p->na, dom, (const char *[]){ "--out", out, rel, NULL }));
	CU_ASSERT_FATAL(bridge_start(&p->bb, p->nb, dom, (const char *[]){ "--in", in, rel, NULL }));
	CU_ASSERT_FATAL(bp_wait(&p->ba, "in_peers", 1, 30000));
}

/* Stop both bridges: their last statistics lines are then final. */
static void pair_stop(struct pair *p)
{
	bridge_stop(&p->ba);
	bridge_stop(&p->bb);
}

/* Stop the bridges, take what B's subscriber still has, close it and the
 * buses: the subscriber's lost count. */
static uint64_t pair_finish(struct pair *p, shmbus_sub *sub, struct seen *s)
{
	pair_stop(p);
	take_all(sub, s);
	struct shmbus_sub_stats st;
	shmbus_sub_stats(sub, &st);
	shmbus_sub_close(sub);
	close_buses(p->na, p->nb, p->a, p->b);
	return st.lost;
}

/* Every counter of both bridges when n messages went from A to B and
 * nothing was lost, refused or late. */
static void expect_clean(const struct pair *p, int n)
{
	bp_expect(&p->ba, "out %d bus_lost 0 write_failed 0 match_timeouts 0 topics_out 1", n);
	bp_expect(&p->bb, "in %d dds_lost 0 dds_rejected 0 dds_gaps 0 src_lost 0 marked_lost 0 "
		  "malformed 0 publish_failed 0 topics_in 1", n);
}

/* IMU topics of `slots` slots whose history is all but one of them. */
static struct shmbus_topic_options imu_ring(uint32_t slots)
{
	struct shmbus_topic_options to;
	shmbus_topic_options_init(&to);
	to.slot_count = slots;
	to.history = slots - 1;
	to.max_message_size = 1024;
	return to;
}

/* Wait for `topic` to appear on bus B and subscribe from its first
 * message, as `shmbus echo --wait` or a recorder does. */
static shmbus_sub *sub_from_start(shmbus_bus *b, const char *topic)
{
	CU_ASSERT_FATAL(wait_topic(b, topic, 30000));
	struct shmbus_sub_options so;
	shmbus_sub_options_init(&so);
	so.start = SHMBUS_START_FIRST;
	shmbus_sub *sub = NULL;
	CU_ASSERT_EQUAL_FATAL(shmbus_sub_open(b, topic, NULL, &so, &sub), SHMBUS_OK);
	return sub;
}

/* The last stamp that arrived; `none` before any. */
static int64_t last_stamp(const struct seen *s, int64_t none)
{
	return s->n ? s->stamp[s->n - 1] : none;
}

/* Messages stamped first..last published on pub, at most `window` ahead of
 * what arrived on sub, then waited for. Best effort: while the last has
 * not come, more are published (a loss at the end shows only before a
 * later message). The next stamp to publish. */
static int64_t stream(shmbus_pub *pub, shmbus_sub *sub, struct seen *s, int64_t first,
		      int64_t last, int64_t window, bool reliable)
{
	int64_t deadline = h_now_ns() + 60000000000ll;
	int64_t i = first;
	for (; i <= last && h_now_ns() < deadline; i++) {
		take_all(sub, s);
		while (i > last_stamp(s, first - 1) + window && h_now_ns() < deadline) {
			/* Best effort may lose what the window waits for. */
			if (shmbus_sub_wait(sub, 20000000) != SHMBUS_OK && !reliable)
				break;
			take_all(sub, s);
		}
		CU_ASSERT_EQUAL(publish_imu(pub, "m", i, (double)i), SHMBUS_OK);
	}
	while (last_stamp(s, first - 1) < last && h_now_ns() < deadline) {
		if (shmbus_sub_wait(sub, 20000000) != SHMBUS_OK && !reliable) {
			CU_ASSERT_EQUAL(publish_imu(pub, "m", i, (double)i), SHMBUS_OK);
			i++;
		}
		take_all(sub, s);
	}
	CU_ASSERT(last_stamp(s, first - 1) >= last);
	return i;
}

/* Every message arrived with what was lost before it accounted exactly:
 * the k-th received, with L reported lost so far, is the (k + L)-th
 * published (stamps count from `first`). Returns the number that failed. */
static int check_accounting(const struct seen *s, int64_t first)
{
	int bad = 0;
	for (size_t j = 0; j < s->n; j++)
		if (s->stamp[j] != first + (int64_t)(j + s->lost_at[j])) {
			if (bad++ < 5)
				fprintf(stderr, "message %zu: stamp %lld, %llu lost before\n", j,
					(long long)s->stamp[j], (unsigned long long)s->lost_at[j]);
		}
	return bad;
}

/* A topic created on A while both bridges run arrives on B from its first
 * message: a burst right after the topic is created (before any DDS reader
 * for it can exist), then a stream. Reliable: all of them, in order, and
 * every counter on both sides exact. Best effort: whatever is lost is
 * counted, and B's subscriber sees each loss just before the next message. */
static void run_new_topic(bool reliable)
{
	struct pair p;
	pair_start(&p, "new/*", "new/*", reliable);
	struct shmbus_topic_options to = imu_ring(256);
	shmbus_pub *pub;
	CU_ASSERT_EQUAL_FATAL(shmbus__msgs__imu__pub_open(p.a, "new/late", &to, NULL, &pub), SHMBUS_OK);
	enum { BURST = 100, N = 1000, IN_FLIGHT = 32 };
	for (int i = 1; i <= BURST; i++)
		CU_ASSERT_EQUAL(publish_imu(pub, "m", i, i), SHMBUS_OK);
	shmbus_sub *sub = sub_from_start(p.b, "new/late");
	struct shmbus_topic_info info;
	CU_ASSERT_EQUAL(shmbus_topic_inspect(p.b, "new/late", &info, NULL, 0, NULL, NULL, 0, NULL), 0);
	CU_ASSERT_EQUAL(info.history, 255);
	static struct seen s;
	memset(&s, 0, sizeof(s));
	int64_t published = stream(pub, sub, &s, BURST + 1, N, IN_FLIGHT, reliable) - 1;
	shmbus_pub_close(pub);
	uint64_t lost = pair_finish(&p, sub, &s); /* and whatever came before B stopped */

	CU_ASSERT_EQUAL(check_accounting(&s, 1), 0);
	CU_ASSERT(s.n > 0 && s.stamp[0] == (int64_t)(1 + s.lost_at[0]));
	bp_expect(&p.bb, "in %zu marked_lost %llu malformed 0 publish_failed 0", s.n,
		  (unsigned long long)lost);
	CU_ASSERT_EQUAL(bp_stat(&p.bb, "dds_gaps") + bp_stat(&p.bb, "src_lost"),
			bp_stat(&p.bb, "marked_lost"));
	CU_ASSERT_EQUAL(bp_stat(&p.ba, "match_timeouts"), 0);
	if (reliable) {
		CU_ASSERT_EQUAL(published, N);
		CU_ASSERT_EQUAL(s.n, N);
		CU_ASSERT_EQUAL(lost, 0);
		if (s.n && s.stamp[0] != 1)
			fprintf(stderr, "new/late: the first message on B is #%lld\n",
				(long long)s.stamp[0]);
		expect_clean(&p, N);
	} else {
		/* Nothing is lost on A's bus (the window keeps within the ring):
		 * all that B misses went missing in DDS, sent and counted there. */
		CU_ASSERT(bp_stat(&p.ba, "out") <= published);
		bp_expect(&p.ba, "bus_lost 0 write_failed 0");
		CU_ASSERT_EQUAL(bp_stat(&p.bb, "src_lost"), 0);
		CU_ASSERT(s.n + lost <= (uint64_t)published);
	}
}

static void test_new_topic_reliable(void)
{
	run_new_topic(true);
}

static void test_new_topic_best_effort(void)
{
	run_new_topic(false);
}

/* A camera topic that appears while both bridges run, with an 8 MiB frame
 * as its very first message: it arrives whole, and so do the next ones. */
static void test_new_topic_large_first(void)
{
	struct pair p;
	pair_start(&p, "cam/*", "cam/*", true);
	enum { FRAMES = 3 };
	struct shmbus_topic_options to;
	shmbus_topic_options_init(&to);
	to.slot_count = 4;
	to.history = 3;
	to.max_message_size = FRAME + 4096;
	shmbus_pub *pub;
	CU_ASSERT_EQUAL_FATAL(shmbus__msgs__image__pub_open(p.a, "cam/late", &to, NULL, &pub), SHMBUS_OK);
	struct frame fr;
	frame_init(&fr);
	CU_ASSERT_EQUAL_FATAL(frame_publish(pub, &fr, 1), SHMBUS_OK);

	shmbus_sub *sub = sub_from_start(p.b, "cam/late");
	CU_ASSERT_EQUAL(shmbus_sub_max_message_size(sub), FRAME + 4096);
	int got = 0;
	uint64_t lost = 0;
	int64_t deadline = h_now_ns() + 60000000000ll;
	for (int f = 1; f <= FRAMES; f++) {
		Shmbus__Msgs__Image *m = take_image(sub, deadline, &lost);
		CU_ASSERT(m && frame_same(m, &fr, f));
		if (!m)
			break;
		shmbus__msgs__image__free(m, NULL);
		got++;
		/* The next frame once this one is here: the 4-slot rings on
		 * both sides never lap. */
		if (f < FRAMES)
			CU_ASSERT_EQUAL(frame_publish(pub, &fr, f + 1), SHMBUS_OK);
	}
	CU_ASSERT_EQUAL(got, FRAMES);
	CU_ASSERT_EQUAL(lost, 0);
	free(fr.px);
	shmbus_sub_close(sub);
	shmbus_pub_close(pub);
	pair_stop(&p);
	close_buses(p.na, p.nb, p.a, p.b);
	expect_clean(&p, FRAMES);
}

/* A topic that grows on the sending bus (its publisher's messages outgrow
 * it, SHMBUS_PUB_GROW): the far topic grows too, and every message
 * arrives whole, none refused as too large. */
static void test_topic_grows(void)
{
	struct pair p;
	pair_start(&p, "grow/*", "grow/*", true);
	struct shmbus_topic_options to;
	shmbus_topic_options_init(&to);
	to.slot_count = 8;
	to.max_message_size = 256;
	struct shmbus_pub_options po;
	shmbus_pub_options_init(&po);
	po.flags = SHMBUS_PUB_GROW;
	shmbus_pub *pub;
	CU_ASSERT_EQUAL_FATAL(shmbus_pub_open(p.a, "grow/raw", &to, &po, &pub), SHMBUS_OK);
	static const size_t sizes[] = { 100, 200, 5000, 5000, 300000, 100 };
	enum { N = sizeof(sizes) / sizeof(sizes[0]) };
	static uint8_t msg[300000], got[300000];
	int64_t deadline = h_now_ns() + 60000000000ll;
	shmbus_sub *sub = NULL;
	uint64_t lost = 0;
	for (size_t k = 0; k < N; k++) {
		for (size_t i = 0; i < sizes[k]; i++)
			msg[i] = (uint8_t)(k * 7 + i);
		CU_ASSERT_EQUAL_FATAL(shmbus_pub_send(pub, msg, sizes[k], NULL), SHMBUS_OK);
		if (!sub)
			sub = sub_from_start(p.b, "grow/raw");
		/* The next message once this one is here. */
		struct shmbus_msg_info info;
		int rc;
		while ((rc = shmbus_sub_take(sub, got, sizeof(got), &info)) == SHMBUS_EAGAIN &&
		       h_now_ns() < deadline)
			shmbus_sub_wait(sub, 100000000);
		CU_ASSERT_EQUAL_FATAL(rc, SHMBUS_OK);
		lost += info.lost;
		CU_ASSERT_EQUAL(info.size, sizes[k]);
		CU_ASSERT_EQUAL(memcmp(got, msg, sizes[k]), 0);
	}
	CU_ASSERT_EQUAL(lost, 0);
	CU_ASSERT_TRUE(shmbus_sub_max_message_size(sub) >= 300000);
	shmbus_sub_close(sub);
	shmbus_pub_close(pub);
	pair_stop(&p);
	close_buses(p.na, p.nb, p.a, p.b);
	expect_clean(&p, N);
}

/* Make topic `name` of bus `bus` go away: `shmbus rm`, as its owner. */
static void topic_go_away(const char *bus, const char *name)
{
	char out[1024];
	int rc = h_run_cli(out, sizeof(out), "rm --bus %s %s", bus, name);
	CU_ASSERT_EQUAL(rc, 0);
	if (rc != 0)
		fprintf(stderr, "shmbus rm: %s\n", out);
}

/* A topic that appears, goes away and comes back (a new topic of the same
 * name and type): both lives arrive on B whole, one after the other, on
 * the same topic there. */
static void test_topic_comes_back(void)
{
	struct pair p;
	pair_start(&p, "back/*", "back/*", true);
	struct shmbus_topic_options to = imu_ring(128);
	enum { LIFE = 100, IN_FLIGHT = 32 };
	static struct seen s;
	memset(&s, 0, sizeof(s));
	shmbus_sub *sub = NULL;
	for (int life = 0; life < 2; life++) {
		shmbus_pub *pub;
		CU_ASSERT_EQUAL_FATAL(shmbus__msgs__imu__pub_open(p.a, "back/x", &to, NULL, &pub), SHMBUS_OK);
		int64_t first = life * LIFE + 1;
		for (int64_t i = first; i < first + IN_FLIGHT; i++)
			CU_ASSERT_EQUAL(publish_imu(pub, "m", i, (double)i), SHMBUS_OK);
		if (!sub)
			sub = sub_from_start(p.b, "back/x");
		stream(pub, sub, &s, first + IN_FLIGHT, first + LIFE - 1, IN_FLIGHT, true);
		shmbus_pub_close(pub);
		if (life == 0) {
			topic_go_away(p.na, "back/x");
			/* The bridge has let it go before it comes back. */
			int64_t deadline = h_now_ns() + 30000000000ll;
			while (bp_stat(&p.ba, "topics_out") != 0 && h_now_ns() < deadline)
				bp_read(&p.ba, 1000);
			CU_ASSERT_EQUAL_FATAL(bp_stat(&p.ba, "topics_out"), 0);
		}
	}
	CU_ASSERT_EQUAL(pair_finish(&p, sub, &s), 0);
	CU_ASSERT_EQUAL(s.n, 2 * LIFE);
	CU_ASSERT_EQUAL(check_accounting(&s, 1), 0);
	expect_clean(&p, 2 * LIFE);
}

/* A ROS-style topic that appears while both bridges run, with patterns
 * spelled with and without the leading '/': it arrives under its own name
 * from its first message, and is the same topic as its name without '/'. */
static void test_ros_name_first_message(void)
{
	struct pair p;
	pair_start(&p, "/camera/*", "camera/*", true);
	struct shmbus_topic_options to = imu_ring(64);
	shmbus_pub *pub;
	CU_ASSERT_EQUAL_FATAL(shmbus__msgs__imu__pub_open(p.a, "/camera/image_raw", &to, NULL, &pub),
			      SHMBUS_OK);
	enum { N = 50 };
	for (int i = 1; i <= N; i++)
		CU_ASSERT_EQUAL(publish_imu(pub, "m", i, i), SHMBUS_OK);
	shmbus_sub *sub = sub_from_start(p.b, "/camera/image_raw");
	CU_ASSERT_STRING_EQUAL(shmbus_sub_topic(sub), "/camera/image_raw");
	CU_ASSERT_STRING_EQUAL(shmbus_sub_type_name(sub), "shmbus.msgs.Imu");
	static struct seen s;
	memset(&s, 0, sizeof(s));
	int64_t deadline = h_now_ns() + 30000000000ll;
	while (s.n < N && h_now_ns() < deadline) {
		shmbus_sub_wait(sub, 100000000);
		take_all(sub, &s);
	}
	CU_ASSERT_EQUAL(s.n, N);
	CU_ASSERT_EQUAL(s.lost, 0);
	CU_ASSERT_EQUAL(check_accounting(&s, 1), 0);
	/* Without the '/', the same topic on B. */
	struct shmbus_topic_info info;
	CU_ASSERT_EQUAL(shmbus_topic_inspect(p.b, "camera/image_raw", &info, NULL, 0, NULL, NULL, 0,
					     NULL), SHMBUS_OK);
	CU_ASSERT_STRING_EQUAL(info.name, "/camera/image_raw");
	CU_ASSERT_EQUAL(info.next_seq, N);
	shmbus_pub_close(pub);
	CU_ASSERT_EQUAL(pair_finish(&p, sub, &s), 0);
	CU_ASSERT_EQUAL(s.n, N);
	expect_clean(&p, N);
}

/* The topic goes away on the receiving bus (its bridge keeps publishing):
 * the bridge makes it again, and what comes next arrives there. */
static void test_far_topic_comes_back(void)
{
	struct pair p;
	pair_start(&p, "far/*", "far/*", true);
	struct shmbus_topic_options to = imu_ring(128);
	shmbus_pub *pub;
	CU_ASSERT_EQUAL_FATAL(shmbus__msgs__imu__pub_open(p.a, "far/x", &to, NULL, &pub), SHMBUS_OK);
	enum { HALF = 100, IN_FLIGHT = 32 };
	static struct seen s1, s2;
	memset(&s1, 0, sizeof(s1));
	memset(&s2, 0, sizeof(s2));
	shmbus_sub *sub = sub_from_start(p.b, "far/x");
	stream(pub, sub, &s1, 1, HALF, IN_FLIGHT, true);
	shmbus_sub_close(sub);
	topic_go_away(p.nb, "far/x");
	sub = sub_from_start(p.b, "far/x");
	struct shmbus_topic_info info;
	CU_ASSERT_EQUAL(shmbus_topic_inspect(p.b, "far/x", &info, NULL, 0, NULL, NULL, 0, NULL), 0);
	CU_ASSERT_EQUAL(info.history, 127);
	CU_ASSERT_EQUAL(info.next_seq, 0);
	stream(pub, sub, &s2, HALF + 1, 2 * HALF, IN_FLIGHT, true);
	shmbus_pub_close(pub);
	CU_ASSERT_EQUAL(pair_finish(&p, sub, &s2), 0);
	CU_ASSERT_EQUAL(s1.n, HALF);
	CU_ASSERT_EQUAL(s2.n, HALF);
	CU_ASSERT_EQUAL(check_accounting(&s1, 1), 0);
	CU_ASSERT_EQUAL(check_accounting(&s2, HALF + 1), 0);
	expect_clean(&p, 2 * HALF);
}

/* ------------------------------------------------- malformed envelopes */

static int write_envelope(dds_entity_t w, const char *type, const void *payload, size_t n,
			  uint64_t bridge_seq, uint64_t src_lost)
{
	shmbus_bridge_Envelope e;
	memset(&e, 0, sizeof(e));
	e.type_name = (char *)type;
	e.seq = bridge_seq;
	e.bridge_seq = bridge_seq;
	e.src_lost = src_lost;
	e.source_bus = "test:raw";
	e.bridge_id = 42;
	e.payload._buffer = (uint8_t *)payload;
	e.payload._length = e.payload._maximum = (uint32_t)n;
	return dds_write(w, &e);
}

/* Until w has matched `readers` readers. */
static bool wait_matched(dds_entity_t w, uint32_t readers, int timeout_ms)
{
	int64_t deadline = h_now_ns() + (int64_t)timeout_ms * 1000000;
	dds_publication_matched_status_t st;
	while (dds_get_publication_matched_status(w, &st) == 0 && st.current_count < readers) {
		if (h_now_ns() > deadline)
			return false;
		struct timespec ms = { 0, 10000000 };
		nanosleep(&ms, NULL);
	}
	return true;
}

/* A DDS writer of this test's own on a bridged topic's Envelopes. */
static dds_entity_t raw_envelope_writer(dds_entity_t pp, const char *dds_topic)
{
	dds_entity_t dt = dds_create_topic(pp, &shmbus_bridge_Envelope_desc, dds_topic, NULL, NULL);
	dds_qos_t *q = dds_create_qos();
	dds_qset_reliability(q, DDS_RELIABILITY_RELIABLE, DDS_SECS(1));
	dds_qset_history(q, DDS_HISTORY_KEEP_ALL, 0);
	dds_entity_t dw = dt < 0 ? dt : dds_create_writer(pp, dt, q, NULL);
	dds_delete_qos(q);
	return dw;
}

static size_t pack_imu(uint8_t *buf, const char *frame, int64_t stamp)
{
	Shmbus__Msgs__Header h = SHMBUS__MSGS__HEADER__INIT;
	Shmbus__Msgs__Imu m = SHMBUS__MSGS__IMU__INIT;
	h.frame_id = (char *)frame;
	h.stamp_ns = stamp;
	m.header = &h;
	return protobuf_c_message_pack(&m.base, buf);
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
	/* One whose DDS topic is not its own name's: taking it would feed
	 * bad/t's envelopes into bad/x. */
	shmbus_bridge_Announce crossed = an;
	crossed.topic = "bad/x";
	CU_ASSERT_EQUAL(dds_write(aw, &crossed), 0);

	CU_ASSERT_FATAL(wait_topic(b, "bad/t", 30000));
	shmbus_sub *sub;
	CU_ASSERT_EQUAL_FATAL(shmbus__msgs__imu__sub_open(b, "bad/t", NULL, NULL, &sub), SHMBUS_OK);

	dds_entity_t dw = raw_envelope_writer(pp, "shmbus/bad/t");
	CU_ASSERT_FATAL(dw > 0);
	CU_ASSERT_FATAL(wait_matched(dw, 1, 30000));

	/* A good Imu, packed by protobuf-c. */
	uint8_t good[64];
	size_t good_n = pack_imu(good, "good", 7);
	static const uint8_t garbage[] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
					   0xff, 0xff, 0xff, 0x01 };
	static const uint8_t truncated[] = { 0x0a, 0x40, 0x0a, 0x04 }; /* length past the end */
	static uint8_t big[1000];
	CU_ASSERT_EQUAL(write_envelope(dw, "other.Type", good, good_n, 1, 0), 0);
	CU_ASSERT_EQUAL(write_envelope(dw, "shmbus.msgs.Imu", garbage, sizeof(garbage), 2, 0), 0);
	CU_ASSERT_EQUAL(write_envelope(dw, "shmbus.msgs.Imu", truncated, sizeof(truncated), 3, 0), 0);
	CU_ASSERT_EQUAL(write_envelope(dw, "shmbus.msgs.Imu", big, sizeof(big), 4, 0), 0);
	CU_ASSERT_EQUAL(write_envelope(dw, "shmbus.msgs.Imu", good, good_n, 5, 0), 0);

	/* The good one arrives, the first message on the topic, after the 4
	 * refused ones counted lost. */
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
	CU_ASSERT_EQUAL(s.lost_at[0], 4);
	/* 2 bad announces + 4 bad envelopes, counted; nothing else. */
	CU_ASSERT(bp_wait(&bb, "malformed", 6, 10000));
	CU_ASSERT(bp_wait(&bb, "in", 1, 10000));
	CU_ASSERT_EQUAL(bp_stat(&bb, "malformed"), 6);
	struct shmbus_topic_info ti;
	CU_ASSERT_EQUAL(shmbus_topic_inspect(b, "bad/x", &ti, NULL, 0, NULL, NULL, 0, NULL),
			SHMBUS_ENOTOPIC);
	CU_ASSERT_EQUAL(bp_stat(&bb, "in"), 1);
	/* The large junk payload was refused before the topic could grow
	 * for it. */
	CU_ASSERT_EQUAL(shmbus_sub_max_message_size(sub), 256);
	CU_ASSERT(bp_alive(&bb));
	/* And it still forwards. */
	good_n = pack_imu(good, "good", 8);
	CU_ASSERT_EQUAL(write_envelope(dw, "shmbus.msgs.Imu", good, good_n, 6, 0), 0);
	/* Envelopes 7 and 8 lost between bridges, 10 messages lost on the
	 * source bus: 12 lost just before the next one. */
	good_n = pack_imu(good, "good", 9);
	CU_ASSERT_EQUAL(write_envelope(dw, "shmbus.msgs.Imu", good, good_n, 9, 10), 0);
	deadline = h_now_ns() + 30000000000ll;
	while (s.n < 3 && h_now_ns() < deadline) {
		shmbus_sub_wait(sub, 100000000);
		take_all(sub, &s);
	}
	CU_ASSERT_EQUAL(s.n, 3);
	CU_ASSERT_EQUAL(s.stamp[1], 8);
	CU_ASSERT_EQUAL(s.lost_at[1], 4);
	CU_ASSERT_EQUAL(s.stamp[2], 9);
	CU_ASSERT_EQUAL(s.lost_at[2], 16);
	CU_ASSERT(bp_wait(&bb, "in", 3, 10000));
	bp_expect(&bb, "in 3 malformed 6 dds_gaps 2 src_lost 10 marked_lost 16 publish_failed 0");

	dds_delete(d);
	shmbus_sub_close(sub);
	bridge_stop(&bb);
	close_buses(na, nb, a, b);
}

/* Two bridges forwarding one topic both ways, and a loss between them:
 * each marks it on its own bus once, and neither sends it back (their out
 * sides see the marks as losses, which must not travel again, or every
 * loss would go back and forth for ever). */
static void test_both_ways_loss_once(void)
{
	static struct duo du;
	duo_start(&du, "duo/x", "duo/x", "duo/*");
	shmbus_pub *pa = du.pa, *pb = du.pb;
	shmbus_sub *sa = du.sa, *sb = du.sb;
	struct seen *s_a = &du.s_a, *s_b = &du.s_b;
	take_all(sa, s_a);
	take_all(sb, s_b);
	uint64_t lost_a = s_a->lost, lost_b = s_b->lost;

	/* A third sender (this test) skips envelopes 2..4. */
	dds_entity_t d = dds_create_domain((dds_domainid_t)du.dom, g_config_xml);
	CU_ASSERT_FATAL(d > 0);
	dds_entity_t pp = dds_create_participant((dds_domainid_t)du.dom, NULL, NULL);
	dds_entity_t dw = raw_envelope_writer(pp, "shmbus/duo/x");
	CU_ASSERT_FATAL(dw > 0);
	CU_ASSERT_FATAL(wait_matched(dw, 2, 30000));
	uint8_t msg[64];
	size_t n = pack_imu(msg, "r", 1);
	CU_ASSERT_EQUAL(write_envelope(dw, "shmbus.msgs.Imu", msg, n, 1, 0), 0);
	n = pack_imu(msg, "r", 5);
	CU_ASSERT_EQUAL(write_envelope(dw, "shmbus.msgs.Imu", msg, n, 5, 0), 0);
	/* Then fences: they reach the other side after anything an echo of
	 * the loss would have sent. */
	int64_t deadline = h_now_ns() + 30000000000ll;
	while ((count_frame(s_a, "r") < 2 || count_frame(s_b, "r") < 2) && h_now_ns() < deadline) {
		shmbus_sub_wait(sa, 10000000);
		take_all(sa, s_a);
		take_all(sb, s_b);
	}
	fences(pa, pb, sa, sb, s_a, s_b, deadline);
	CU_ASSERT_EQUAL(count_frame(s_a, "r"), 2);
	CU_ASSERT_EQUAL(count_frame(s_b, "r"), 2);
	CU_ASSERT_EQUAL(s_a->lost - lost_a, 3);
	CU_ASSERT_EQUAL(s_b->lost - lost_b, 3);
	dds_delete(d);
	bridge_stop(&du.ba);
	bridge_stop(&du.bb);
	bp_expect(&du.ba, "dds_gaps 3 marked_lost 3 src_lost 0 malformed 0");
	bp_expect(&du.bb, "dds_gaps 3 marked_lost 3 src_lost 0 malformed 0");
	duo_close(&du);
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

/* Tests by name; argv[2...] (when given) picks some of them. */
static const struct {
	const char *name;
	void (*fn)(void);
} g_tests[] = {
	{ "usage", test_usage },
	{ "typed_a_to_b", test_typed_a_to_b },
	{ "large_frames", test_large_frames },
	{ "both_ways_no_loop", test_both_ways_no_loop },
	{ "both_ways_ros_names", test_both_ways_ros_names },
	{ "kill9_restart", test_kill9_restart },
	{ "malformed_envelopes", test_malformed_envelopes },
	{ "both_ways_loss_once", test_both_ways_loss_once },
	{ "new_topic_reliable", test_new_topic_reliable },
	{ "new_topic_best_effort", test_new_topic_best_effort },
	{ "new_topic_large_first", test_new_topic_large_first },
	{ "topic_comes_back", test_topic_comes_back },
	{ "topic_grows", test_topic_grows },
	{ "far_topic_comes_back", test_far_topic_comes_back },
	{ "ros_name_first_message", test_ros_name_first_message },
};
static char **g_only;
static int g_n_only;

static void add(void)
{
	CU_pSuite s = CU_add_suite("bridge", NULL, NULL);
	for (size_t i = 0; i < sizeof(g_tests) / sizeof(g_tests[0]); i++) {
		bool pick = g_n_only == 0;
		for (int j = 0; j < g_n_only && !pick; j++)
			pick = strcmp(g_only[j], g_tests[i].name) == 0;
		if (pick)
			CU_add_test(s, g_tests[i].name, g_tests[i].fn);
	}
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: test_bridge SHMBUS_BRIDGE [TEST...]\n");
		return 2;
	}
	g_bridge_exe = argv[1];
	g_only = argv + 2;
	g_n_only = argc - 2;
	/* A run's tests take consecutive ids from a base apart for each run
	 * (pid), 32 apart. */
	g_domain_base = (int)(getpid() % 6) * 32;
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
