/*
 * bus_cases.c - the bus measured with the same drivers as the floors:
 * ping-pong latency polling with take, polling with zero-copy views, and
 * blocking in shmbus_sub_wait; the same with the sender writing the whole
 * message into its loan (measured as iceoryx is); streaming throughput one
 * to one; fan-out to 1..16 subscribers (latency and rates); four
 * publishers into one topic. The later stages (a slow subscriber, many
 * small topics) are in slow.c and topics.c.
 *
 * The main process connects first (which starts the broker for the bench's
 * own bus), every forked participant connects on its own, and the broker is
 * stopped at the end.
 */
#include "bench.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <shmbus/shmbus.h>

#include "bus_bench.h"

/* The spin budget of the *_spinwait / *_spin cases: longer than a
 * round trip at the sizes where spinning pays. */
#define BUS_SPIN_NS ((int64_t)50000)

static shmbus_bus *main_bus; /* the main process's connection */
static pid_t main_pid;

const char *bench_bus_unavailable(void)
{
	return NULL;
}

static int bus_connect(shmbus_bus **bus)
{
	struct shmbus_connect_options o;

	/* --broker goes through $SHMBUSD (set in bench_bus_run), not
	 * o.broker_path: with the latter, shmbus_connect in 0.1.0 copies the
	 * path onto itself in find_broker() (overlapping snprintf) and finds
	 * no broker. */
	shmbus_connect_options_init(&o);
	return shmbus_connect(bench_cfg.bus_name, &o, bus);
}

/* The main process uses its connection; a forked child makes its own. */
int bench_bus_get(shmbus_bus **bus)
{
	if (getpid() == main_pid) {
		*bus = main_bus;
		return 0;
	}
	return bus_connect(bus);
}

void bench_bus_put(shmbus_bus *bus)
{
	if (bus && bus != main_bus)
		shmbus_disconnect(bus);
}

void bench_bus_report(const char *name, shmbus_bus *bus, const char *what, int rc)
{
	bench_fail(name, "%s: %s%s%s", what, shmbus_strerror(rc), bus ? " - " : "",
		   bus ? shmbus_errmsg() : "");
}

static uint32_t latency_slots(size_t size)
{
	/* One message in flight at a time: a few slots suffice, and 8 MiB
	 * slots are kept to 64 MiB of ring. */
	return size >= BENCH_MIB ? 8 : 64;
}

/* Open a publisher on `pub_topic` and a subscriber on `sub_topic`, either
 * creating them with the given layout (slots 0: the bus's default for the
 * size). */
int bench_bus_open_pair(const char *name, shmbus_bus *bus, const char *pub_topic,
		     const char *sub_topic, size_t size, uint32_t slots, int64_t spin_ns,
		     shmbus_pub **pub, shmbus_sub **sub)
{
	struct shmbus_topic_options t;
	struct shmbus_sub_options so;
	int rc;

	*pub = NULL;
	*sub = NULL;
	shmbus_topic_options_init(&t);
	t.slot_count = slots;
	t.max_message_size = (uint32_t)size;
	if (pub_topic && (rc = shmbus_pub_open(bus, pub_topic, &t, NULL, pub)) != 0) {
		bench_bus_report(name, bus, "shmbus_pub_open", rc);
		return -1;
	}
	if (!sub_topic)
		return 0;
	shmbus_sub_options_init(&so);
	so.create_if_missing = true;
	so.spin_ns = spin_ns;
	if ((rc = shmbus_sub_open(bus, sub_topic, &t, &so, sub)) != 0) {
		bench_bus_report(name, bus, "shmbus_sub_open", rc);
		shmbus_pub_close(*pub);
		*pub = NULL;
		return -1;
	}
	return 0;
}

int bench_bus_child(const char *name, struct bench_barrier *barrier,
		    int (*fn)(void *arg, shmbus_bus *bus, int index), void *arg, int index)
{
	shmbus_bus *bus;
	int rc = bench_bus_get(&bus);

	if (rc != 0) {
		bench_bus_report(name, NULL, "shmbus_connect", rc);
		bench_barrier_break(barrier);
		return -1;
	}
	rc = fn(arg, bus, index);
	bench_bus_put(bus);
	return rc;
}

/* ---------------------------------------------------- ping-pong latency */

enum bus_mode {
	MODE_TAKE,       /* poll shmbus_sub_take, send with shmbus_pub_send */
	MODE_VIEW,       /* poll shmbus_sub_view, reply by loan + publish */
	MODE_WAIT,       /* block in shmbus_sub_wait, then take */
	MODE_WRITE,      /* as MODE_VIEW, the sender writing the whole message
			    into its loan, default topic layout */
	MODE_WAIT_WRITE, /* as MODE_WRITE, blocking in shmbus_sub_wait */
};

/* The sender writes into its loan / the receiver views in place. */
static bool mode_loans(enum bus_mode m)
{
	return m == MODE_VIEW || m == MODE_WRITE || m == MODE_WAIT_WRITE;
}

static bool mode_waits(enum bus_mode m)
{
	return m == MODE_WAIT || m == MODE_WAIT_WRITE;
}

struct bus_pp {
	const char *name;
	enum bus_mode mode;
	size_t size;
	int64_t spin_ns; /* MODE_WAIT: spin budget before sleeping */
	char topic[2][96]; /* [0] initiator -> echoer, [1] back */
	/* Per process (each has its own copy after fork). */
	shmbus_bus *bus;
	shmbus_pub *pub;
	shmbus_sub *sub;
	unsigned char *priv;
};

static int bus_pp_setup(void *ctx, int role)
{
	struct bus_pp *c = ctx;
	int rc;

	c->pub = NULL;
	c->sub = NULL;
	c->priv = malloc(c->size);
	if (!c->priv)
		return -1;
	memset(c->priv, 0x5a, c->size);
	if ((rc = bench_bus_get(&c->bus)) != 0) {
		bench_bus_report(c->name, NULL, "shmbus_connect", rc);
		free(c->priv);
		return -1;
	}
	if (bench_bus_open_pair(c->name, c->bus, c->topic[role], c->topic[!role], c->size,
		      c->mode == MODE_WRITE || c->mode == MODE_WAIT_WRITE ? bench_cfg.write_slots
									  : latency_slots(c->size),
		      c->spin_ns, &c->pub, &c->sub) != 0) {
		bench_bus_put(c->bus);
		free(c->priv);
		return -1;
	}
	return 0;
}

static void bus_pp_teardown(void *ctx, int role)
{
	struct bus_pp *c = ctx;

	(void)role;
	shmbus_sub_close(c->sub);
	shmbus_pub_close(c->pub);
	bench_bus_put(c->bus);
	free(c->priv);
	c->priv = NULL;
}

static int bus_pp_send(struct bus_pp *c, uint64_t cmd)
{
	int rc;

	if (mode_loans(c->mode)) {
		void *buf;
		size_t cap;

		/* Zero-copy: the message is produced in place; MODE_VIEW writes
		 * only its first word (the command), the write modes all of
		 * it, as a producer filling its loan does. */
		if ((rc = shmbus_pub_loan(c->pub, &buf, &cap)) == 0) {
			if (c->mode != MODE_VIEW) {
				memcpy(c->priv, &cmd, sizeof(cmd));
				memcpy(buf, c->priv, c->size);
			} else {
				memcpy(buf, &cmd, sizeof(cmd));
			}
			rc = shmbus_pub_publish(c->pub, c->size, NULL);
		}
	} else {
		memcpy(c->priv, &cmd, sizeof(cmd));
		rc = shmbus_pub_send(c->pub, c->priv, c->size, NULL);
	}
	if (rc != 0)
		bench_bus_report(c->name, c->bus, "publish", rc);
	return rc ? -1 : 0;
}

/* Wait for the next message and return its command word, or -1. */
static int64_t bus_pp_recv(struct bus_pp *c)
{
	int64_t deadline = 0;
	unsigned spins = 0;
	uint64_t cmd;
	int rc;

	for (;;) {
		if (mode_loans(c->mode)) {
			struct shmbus_view v;

			rc = shmbus_sub_view(c->sub, &v);
			if (rc == 0) {
				memcpy(&cmd, v.data, sizeof(cmd));
				rc = shmbus_sub_release(c->sub, &v);
				if (rc == 0)
					return (int64_t)cmd;
			}
		} else {
			rc = shmbus_sub_take(c->sub, c->priv, c->size, NULL);
			if (rc == 0) {
				memcpy(&cmd, c->priv, sizeof(cmd));
				return (int64_t)cmd;
			}
		}
		if (rc != SHMBUS_EAGAIN) {
			bench_bus_report(c->name, c->bus, "take", rc);
			return -1;
		}
		if (mode_waits(c->mode)) {
			rc = shmbus_sub_wait(c->sub, 100000000);
			if (rc != 0 && rc != SHMBUS_ETIMEDOUT) {
				bench_bus_report(c->name, c->bus, "shmbus_sub_wait", rc);
				return -1;
			}
			if (rc == 0)
				continue;
		} else if (++spins % 4096 != 0) {
			continue;
		}
		if (!deadline) {
			deadline = now_mono_ns() + BUS_TIMEOUT_NS;
		} else if (now_mono_ns() > deadline) {
			bench_fail(c->name, "no message for %lld s",
				   (long long)(BUS_TIMEOUT_NS / 1000000000));
			return -1;
		}
	}
}

static int bus_pp_ping(void *ctx, enum bench_cmd cmd)
{
	struct bus_pp *c = ctx;

	if (bus_pp_send(c, (uint64_t)cmd) != 0)
		return -1;
	if (cmd == BENCH_CMD_STOP)
		return 0;
	return bus_pp_recv(c) == BENCH_CMD_ECHO ? 0 : -1;
}

static int bus_pp_echo(void *ctx)
{
	struct bus_pp *c = ctx;
	int64_t cmd = bus_pp_recv(c);

	if (cmd == BENCH_CMD_STOP)
		return BENCH_CMD_STOP;
	if (cmd != BENCH_CMD_ECHO || bus_pp_send(c, BENCH_CMD_ECHO) != 0)
		return -1;
	return BENCH_CMD_ECHO;
}

static const struct bench_pingpong_ops bus_pp_ops = {
	.setup = bus_pp_setup,
	.ping = bus_pp_ping,
	.echo = bus_pp_echo,
	.teardown = bus_pp_teardown,
};

static int run_latency(const char *name, enum bus_mode mode, int64_t spin_ns, size_t size,
		       const char *floor, uint64_t floor_size, const char *peer)
{
	struct bus_pp c = {.name = name, .mode = mode, .size = size, .spin_ns = spin_ns};

	snprintf(c.topic[0], sizeof(c.topic[0]), "bench/%s/%zu/ping", name, size);
	snprintf(c.topic[1], sizeof(c.topic[1]), "bench/%s/%zu/pong", name, size);
	if (bench_pingpong(name, size, &bus_pp_ops, &c, floor, floor_size) != 0)
		return -1;
	if (peer)
		bench_row_set_peer(bench_rows_find(name, size), peer, size);
	if (mode == MODE_WRITE || mode == MODE_WAIT_WRITE) {
		char layout[48] = "default topic layout";

		if (bench_cfg.write_slots)
			snprintf(layout, sizeof(layout), "%u slots (--write-slots)",
				 (unsigned)bench_cfg.write_slots);
		bench_row_note(bench_rows_find(name, size), "%s; %s", layout,
			       mode == MODE_WRITE ? "polling" : "shmbus_sub_wait, spin_ns 0");
	}
	if (spin_ns > 0)
		snprintf(bench_rows_find(name, size)->note, sizeof(((struct bench_row *)0)->note),
			 "shmbus_sub_options.spin_ns = %lld us", (long long)(spin_ns / 1000));
	return 0;
}

/* ---------------------------------------------------------- empty poll */

/* A polling subscriber spends most of its calls finding nothing: what one
 * such take costs, in one process on one core (nothing shared is written
 * and the topic's lines stay in this core's cache). */
#define EMPTY_BATCH 1000

struct empty_poll {
	shmbus_pub *pub;
	shmbus_sub *sub;
};

static int empty_batch(void *ctx)
{
	struct empty_poll *c = ctx;
	uint64_t v;

	for (int k = 0; k < EMPTY_BATCH; k++)
		if (shmbus_sub_take(c->sub, &v, sizeof(v), NULL) != SHMBUS_EAGAIN)
			return -1;
	return 0;
}

static int run_empty_poll(void)
{
	const char *name = "bus_empty_poll_cpu";
	struct empty_poll c = {0};
	struct bench_row *r = NULL;

	if (bench_bus_open_pair(name, main_bus, "bench/empty_poll", "bench/empty_poll", 64,
				bench_bus_latency_slots(64), 0, &c.pub, &c.sub) != 0)
		return -1;
	r = bench_batched(name, 64, empty_batch, &c, EMPTY_BATCH);
	if (r)
		snprintf(r->note, sizeof(r->note),
			 "ns per shmbus_sub_take finding nothing, one process, one core, "
			 "batches of %d", EMPTY_BATCH);
	shmbus_sub_close(c.sub);
	shmbus_pub_close(c.pub);
	return r ? 0 : -1;
}

/* ----------------------------------------------------------- streaming */

struct bus_pub_counts {
	/* Added by each publisher from its shmbus_pub_stats at the end. */
	_Atomic uint64_t published, superseded, skipped;
};

struct bus_stream {
	const char *name;
	char topic[96];
	size_t size;
	uint32_t slots;
	int64_t spin_ns; /* subscribers' spin budget in shmbus_sub_wait */
	struct bus_pub_counts *counts; /* shared */
	/* Per process. */
	shmbus_bus *bus;
	shmbus_pub *pub;
	shmbus_sub *sub;
	unsigned char *priv;
};

static int bs_setup(void *ctx, int role, int index)
{
	struct bus_stream *c = ctx;
	int rc;

	(void)index;
	c->priv = malloc(c->size);
	if (!c->priv)
		return -1;
	memset(c->priv, 0x5a, c->size);
	if ((rc = bench_bus_get(&c->bus)) != 0) {
		bench_bus_report(c->name, NULL, "shmbus_connect", rc);
		free(c->priv);
		return -1;
	}
	if (bench_bus_open_pair(c->name, c->bus, role == 0 ? c->topic : NULL, role == 1 ? c->topic : NULL,
		      c->size, c->slots, c->spin_ns, &c->pub, &c->sub) != 0) {
		bench_bus_put(c->bus);
		free(c->priv);
		return -1;
	}
	return 0;
}

static void bs_teardown(void *ctx, int role, int index)
{
	struct bus_stream *c = ctx;

	(void)index;
	if (role == 0 && c->pub) {
		struct shmbus_pub_stats st;

		shmbus_pub_stats(c->pub, &st);
		/* Relaxed: read by the parent after this process exited. */
		atomic_fetch_add_explicit(&c->counts->published, st.published, memory_order_relaxed);
		atomic_fetch_add_explicit(&c->counts->superseded, st.superseded,
					  memory_order_relaxed);
		atomic_fetch_add_explicit(&c->counts->skipped, st.skipped, memory_order_relaxed);
	}
	shmbus_sub_close(c->sub);
	shmbus_pub_close(c->pub);
	bench_bus_put(c->bus);
	free(c->priv);
}

static int bs_send(void *ctx, int index)
{
	struct bus_stream *c = ctx;
	int rc = shmbus_pub_send(c->pub, c->priv, c->size, NULL);

	(void)index;
	/* Superseded: our loan was held for a whole lap (we were preempted
	 * while other publishers went round the ring). The bus reports it and
	 * the publisher carries on; the publisher stats count it. */
	if (rc == SHMBUS_ELAPPED)
		return 0;
	if (rc != 0)
		bench_bus_report(c->name, c->bus, "shmbus_pub_send", rc);
	return rc ? -1 : 0;
}

static int bs_try_recv(void *ctx, int index)
{
	struct bus_stream *c = ctx;
	int rc = shmbus_sub_take(c->sub, c->priv, c->size, NULL);

	(void)index;
	if (rc == 0)
		return 1;
	if (rc == SHMBUS_EAGAIN)
		return 0;
	bench_bus_report(c->name, c->bus, "shmbus_sub_take", rc);
	return -1;
}

/* A polling subscriber taking in batches (shmbus_sub_take_many): as many
 * as are there, up to BS_BATCH, per call. Messages of up to BS_CELL bytes
 * (the 64 B stream). */
#define BS_BATCH 64
#define BS_CELL 64

static int bs_try_recv_many(void *ctx, int index)
{
	struct bus_stream *c = ctx;
	static unsigned char cells[BS_BATCH][BS_CELL];
	struct shmbus_msg_info infos[BS_BATCH];
	size_t n;
	int rc = shmbus_sub_take_many(c->sub, cells, BS_CELL, BS_BATCH, infos, &n);

	(void)index;
	if (rc == 0)
		return 1;
	if (rc == SHMBUS_EAGAIN)
		return 0;
	bench_bus_report(c->name, c->bus, "shmbus_sub_take_many", rc);
	return -1;
}

static int bs_wait(void *ctx, int index, int64_t timeout_ns)
{
	struct bus_stream *c = ctx;
	int rc = shmbus_sub_wait(c->sub, timeout_ns);

	(void)index;
	if (rc == 0 || rc == SHMBUS_ETIMEDOUT)
		return 0;
	bench_bus_report(c->name, c->bus, "shmbus_sub_wait", rc);
	return -1;
}

static uint64_t bs_position(void *ctx, int index)
{
	struct bus_stream *c = ctx;
	struct shmbus_sub_stats st;

	(void)index;
	shmbus_sub_stats(c->sub, &st);
	return st.received + st.lost;
}

static uint64_t bs_lost(void *ctx, int index)
{
	struct bus_stream *c = ctx;
	struct shmbus_sub_stats st;

	(void)index;
	shmbus_sub_stats(c->sub, &st);
	return st.lost;
}

static const struct bench_stream_ops bs_poll_ops = {
	.setup = bs_setup,
	.teardown = bs_teardown,
	.send = bs_send,
	.try_recv = bs_try_recv,
	.position = bs_position,
	.lost = bs_lost,
};

static const struct bench_stream_ops bs_batch_ops = {
	.setup = bs_setup,
	.teardown = bs_teardown,
	.send = bs_send,
	.try_recv = bs_try_recv_many,
	.position = bs_position,
	.lost = bs_lost,
};

static const struct bench_stream_ops bs_wait_ops = {
	.setup = bs_setup,
	.teardown = bs_teardown,
	.send = bs_send,
	.try_recv = bs_try_recv,
	.wait = bs_wait,
	.position = bs_position,
	.lost = bs_lost,
};

/* The slot count the bus gave a topic (0 when it cannot be asked). */
static uint32_t topic_slots(const char *topic)
{
	struct shmbus_topic_info info;

	if (shmbus_topic_inspect(main_bus, topic, &info, NULL, 0, NULL, NULL, 0, NULL) != 0)
		return 0;
	return info.slot_count;
}

/* Streams use the topic layout a user gets by default (slot count chosen by
 * the bus for the size), as the goals ask; the ring floor keeps its fixed
 * bench_tput_slots(). */
enum tput_reader { TPUT_POLL, TPUT_SPIN, TPUT_BATCH };

static int run_tput(size_t size, enum tput_reader how)
{
	static const char *const names[] = { "bus_tput", "bus_tput_spin", "bus_tput_batch" };
	static const struct bench_stream_ops *const ops[] = { &bs_poll_ops, &bs_wait_ops,
							      &bs_batch_ops };
	bool spin = how == TPUT_SPIN;
	struct bus_stream c = {.name = names[how], .size = size,
			       .slots = 0, .spin_ns = spin ? BUS_SPIN_NS : 0};
	uint32_t slots;
	char name[48];
	struct bench_stream_result res;
	struct bus_pub_counts *counts = bench_shm_alloc(sizeof(*counts));
	struct bench_row *r;

	if (!counts)
		return -1;
	c.counts = counts;
	snprintf(c.topic, sizeof(c.topic), "bench/%s/%zu", c.name, size);
	if (bench_stream(c.name, 1, &bench_cfg.cpu_a, 1, &bench_cfg.cpu_b, ops[how], &c,
			 &res) != 0) {
		bench_shm_free(counts, sizeof(*counts));
		return -1;
	}
	slots = topic_slots(c.topic);
	r = bench_row_rates(c.name, size, res.cons_rate, res.passes);
	bench_row_set_floor(r, "floor_ring_tput", size);
	bench_row_set_peer(r, spin ? "unix_tput" : "iox_tput", size);
	if (spin)
		bench_row_note(r, "delivered; %u slots (default), subscriber in shmbus_sub_wait, "
				  "spin_ns %lld us",
			       slots, (long long)(BUS_SPIN_NS / 1000));
	else if (how == TPUT_BATCH)
		bench_row_note(r, "delivered; %u slots (default), subscriber polls take_many "
				  "(up to %d a call)", slots, BS_BATCH);
	else
		bench_row_note(r, "delivered; %u slots (default), subscriber polls take", slots);
	bench_row_add_counts(r, res.lost, res.received + res.lost, 0, 0);
	snprintf(name, sizeof(name), "%s_pub", c.name);
	r = bench_row_rates(name, size, res.prod_rate, res.passes);
	bench_row_set_floor(r, "floor_ring_tput", size);
	if (!spin)
		bench_row_set_peer(r, "iox_tput_pub", size);
	bench_row_note(r, "publisher's own rate (it never waits)");
	bench_shm_free(counts, sizeof(*counts));
	return 0;
}

static int run_fanout_tput(int nsubs)
{
	struct bus_stream c = {.name = "fanout_tput", .size = 64, .slots = bench_tput_slots(64)};
	struct bench_stream_result res;
	struct bus_pub_counts *counts = bench_shm_alloc(sizeof(*counts));
	int cpus[BENCH_MAX_PROCS];
	char name[48];
	struct bench_row *r;

	for (int i = 0; i < nsubs; i++)
		cpus[i] = bench_cfg.cpu_b;
	if (!counts)
		return -1;
	c.counts = counts;
	snprintf(c.topic, sizeof(c.topic), "bench/fanout/%d", nsubs);
	if (bench_stream(c.name, 1, &bench_cfg.cpu_a, nsubs, cpus, &bs_wait_ops, &c, &res) != 0) {
		bench_shm_free(counts, sizeof(*counts));
		return -1;
	}
	snprintf(name, sizeof(name), "fanout_pub_n%d", nsubs);
	r = bench_row_rates(name, 64, res.prod_rate, res.passes);
	bench_row_set_floor(r, "fanout_pub_n0", 64);
	if (nsubs == 0) {
		snprintf(r->note, sizeof(r->note), "publisher alone, no subscriber");
		bench_shm_free(counts, sizeof(*counts));
		return 0;
	}
	snprintf(r->note, sizeof(r->note), "publisher's rate with %d blocking subscribers", nsubs);
	snprintf(name, sizeof(name), "fanout_sub_n%d", nsubs);
	r = bench_row_rates(name, 64, res.cons_rate, res.passes);
	snprintf(r->note, sizeof(r->note), "delivered per subscriber (mean over subscribers)");
	bench_row_add_counts(r, res.lost, res.received + res.lost, 0, 0);
	bench_shm_free(counts, sizeof(*counts));
	return 0;
}

static int run_contention(int npubs)
{
	struct bus_stream c = {.name = "contention", .size = 64, .slots = bench_tput_slots(64)};
	struct bench_stream_result res;
	struct bus_pub_counts *counts = bench_shm_alloc(sizeof(*counts));
	int cpus[BENCH_MAX_PROCS];
	char name[48];
	struct bench_row *r;

	for (int i = 0; i < npubs; i++)
		cpus[i] = i % 2 ? bench_cfg.cpu_b : bench_cfg.cpu_a;
	if (!counts)
		return -1;
	c.counts = counts;
	snprintf(c.topic, sizeof(c.topic), "bench/contention/%d", npubs);
	if (bench_stream(c.name, npubs, cpus, 1, &bench_cfg.cpu_b, &bs_wait_ops, &c, &res) != 0) {
		bench_shm_free(counts, sizeof(*counts));
		return -1;
	}
	snprintf(name, sizeof(name), "contention_pub%d", npubs);
	r = bench_row_rates(name, 64, res.prod_rate, res.passes);
	bench_row_set_floor(r, "fanout_pub_n0", 64);
	snprintf(r->note, sizeof(r->note), "%d publishers together, 2 per core", npubs);
	bench_row_add_counts(r, 0, 0, atomic_load(&counts->superseded),
			     atomic_load(&counts->skipped));
	snprintf(name, sizeof(name), "contention_sub%d", npubs);
	r = bench_row_rates(name, 64, res.cons_rate, res.passes);
	snprintf(r->note, sizeof(r->note), "delivered to one blocking subscriber");
	bench_row_add_counts(r, res.lost, res.received + res.lost, 0, 0);
	bench_shm_free(counts, sizeof(*counts));
	return 0;
}

/* ----------------------------------------------------- fan-out latency */

/* The publisher (main process, cpu_a) sends one timestamped message and
 * waits until every subscriber (children, all on cpu_b, blocking in
 * shmbus_sub_wait) has taken it; each subscriber records publish-to-take
 * time. Subscribers never lag, so nothing is lost. */

#define FAN_PER_PASS_MAX 20000

struct fan_msg {
	uint64_t cmd; /* BENCH_CMD_ECHO: a sample; BENCH_CMD_STOP: the end */
	int64_t sent_ns;
	uint32_t pass;
};

struct fan_shared {
	struct bench_barrier barrier;
	/* Subscribers add one per message taken (release, after recording);
	 * the publisher waits for the total (acquire). */
	_Alignas(BENCH_CACHE_LINE) _Atomic uint64_t acks;
	uint64_t count[BENCH_MAX_PROCS];
};

struct fan {
	const char *name;
	char topic[96];
	struct fan_shared *sh;
	int64_t *lat;     /* [sub][i], shared */
	uint8_t *pass;    /* [sub][i], shared */
	size_t cap;       /* samples per subscriber */
};

static int fan_sub(void *arg, int index)
{
	struct fan *f = arg;
	shmbus_bus *bus = NULL;
	shmbus_sub *sub = NULL;
	shmbus_pub *none;
	struct fan_msg m;
	int rc;
	uint64_t n = 0;

	if ((rc = bench_bus_get(&bus)) != 0) {
		bench_bus_report(f->name, NULL, "shmbus_connect", rc);
		bench_barrier_break(&f->sh->barrier);
		return -1;
	}
	if (bench_bus_open_pair(f->name, bus, NULL, f->topic, sizeof(m), 64, 0, &none, &sub) != 0) {
		bench_barrier_break(&f->sh->barrier);
		bench_bus_put(bus);
		return -1;
	}
	rc = -1;
	if (bench_barrier_wait(&f->sh->barrier) != 0)
		goto out;
	for (;;) {
		int r = shmbus_sub_take(sub, &m, sizeof(m), NULL);
		int64_t now = now_mono_ns();

		if (r == SHMBUS_EAGAIN) {
			r = shmbus_sub_wait(sub, BUS_TIMEOUT_NS);
			if (r != 0) {
				bench_bus_report(f->name, bus, "shmbus_sub_wait", r);
				goto out;
			}
			continue;
		}
		if (r != 0) {
			bench_bus_report(f->name, bus, "shmbus_sub_take", r);
			goto out;
		}
		if (m.cmd == BENCH_CMD_STOP)
			break;
		if (n < f->cap) {
			f->lat[(size_t)index * f->cap + n] = now - m.sent_ns;
			f->pass[(size_t)index * f->cap + n] = (uint8_t)m.pass;
			n++;
		}
		atomic_fetch_add_explicit(&f->sh->acks, 1, memory_order_release);
	}
	f->sh->count[index] = n;
	rc = 0;
out:
	shmbus_sub_close(sub);
	bench_bus_put(bus);
	return rc;
}

static int fan_publish(struct fan *f, shmbus_pub *pub, uint64_t cmd, uint32_t pass)
{
	struct fan_msg m = {.cmd = cmd, .pass = pass};
	int rc;

	m.sent_ns = now_mono_ns();
	rc = shmbus_pub_send(pub, &m, sizeof(m), NULL);
	if (rc != 0)
		bench_bus_report(f->name, main_bus, "shmbus_pub_send", rc);
	return rc ? -1 : 0;
}

static int fan_await(struct fan *f, uint64_t want)
{
	int64_t deadline = 0;
	unsigned spins = 0;

	/* Acquire pairs with the subscribers' release adds. */
	while (atomic_load_explicit(&f->sh->acks, memory_order_acquire) < want) {
		if (++spins % 1024)
			continue;
		if (!deadline)
			deadline = now_mono_ns() + BUS_TIMEOUT_NS;
		else if (now_mono_ns() > deadline)
			return -1;
	}
	return 0;
}

static int run_fanout_latency(int nsubs)
{
	struct fan f = {.name = "fanout_lat"};
	int cpus[BENCH_MAX_PROCS];
	pid_t pids[BENCH_MAX_PROCS];
	size_t per_pass = bench_cfg.smoke ? 50 : FAN_PER_PASS_MAX;
	size_t lat_size, pass_size;
	shmbus_pub *pub = NULL;
	shmbus_sub *none;
	struct bench_samples s = {0};
	uint64_t sent = 0;
	int rc = -1;
	char name[48];

	f.cap = per_pass * (size_t)(bench_cfg.passes + 1);
	lat_size = (size_t)nsubs * f.cap * sizeof(int64_t);
	pass_size = (size_t)nsubs * f.cap;
	snprintf(f.topic, sizeof(f.topic), "bench/fanout-lat/%d", nsubs);
	f.sh = bench_shm_alloc(sizeof(*f.sh));
	f.lat = bench_shm_alloc(lat_size);
	f.pass = bench_shm_alloc(pass_size);
	if (!f.sh || !f.lat || !f.pass ||
	    bench_samples_init(&s, (size_t)nsubs * f.cap) != 0) {
		bench_fail(f.name, "out of memory");
		goto out_free;
	}
	bench_barrier_init(&f.sh->barrier, (uint32_t)nsubs + 1);
	for (int i = 0; i < nsubs; i++)
		cpus[i] = bench_cfg.cpu_b;
	bench_pin(bench_cfg.cpu_a);
	if (bench_bus_open_pair(f.name, main_bus, f.topic, NULL, sizeof(struct fan_msg), 64, 0, &pub, &none))
		goto out_free;
	if (bench_spawn(nsubs, cpus, fan_sub, &f, pids) != 0) {
		bench_fail(f.name, "fork failed");
		goto close;
	}
	if (bench_barrier_wait(&f.sh->barrier) != 0) {
		bench_fail(f.name, "a subscriber did not start");
		goto stop;
	}
	for (int p = 0; p <= bench_cfg.passes; p++) {
		int64_t t0 = now_mono_ns();
		int64_t dur = p == 0 ? bench_cfg.warmup_ns : bench_cfg.pass_ns;
		size_t k = 0;

		do {
			if (fan_publish(&f, pub, BENCH_CMD_ECHO, (uint32_t)p) != 0)
				goto stop;
			sent++;
			if (fan_await(&f, sent * (uint64_t)nsubs) != 0) {
				bench_fail(f.name, "subscribers stopped taking");
				goto stop;
			}
			/* Give the subscribers time to fall asleep again, so
			 * that every sample includes a wake-up. */
			bench_spin_ns(BENCH_WAKE_GAP_NS);
		} while (++k < per_pass && (now_mono_ns() - t0 < dur || k < 3));
	}
	rc = 0;
stop:
	if (fan_publish(&f, pub, BENCH_CMD_STOP, 0) != 0)
		rc = -1;
	if (bench_reap(nsubs, pids, BUS_TIMEOUT_NS) != 0) {
		if (rc == 0)
			bench_fail(f.name, "a subscriber failed");
		rc = -1;
	}
	if (rc == 0) {
		/* Pool the measured passes over all subscribers. */
		for (int p = 1; p <= bench_cfg.passes; p++) {
			size_t from = s.n;

			for (int i = 0; i < nsubs; i++)
				for (uint64_t j = 0; j < f.sh->count[i]; j++)
					if (f.pass[(size_t)i * f.cap + j] == p)
						s.v[s.n++] = f.lat[(size_t)i * f.cap + j];
			bench_samples_end_pass(&s, from);
		}
		snprintf(name, sizeof(name), "fanout_lat_n%d", nsubs);
		{
			struct bench_row *r = bench_row_latency(name, 64, &s);

			bench_row_set_floor(r, "floor_wake_idle", 64);
			snprintf(r->note, sizeof(r->note),
				 "publish to take, %d subscribers asleep in shmbus_sub_wait "
				 "on one core, pooled",
				 nsubs);
		}
	}
close:
	shmbus_pub_close(pub);
out_free:
	bench_samples_free(&s);
	bench_shm_free(f.sh, sizeof(*f.sh));
	bench_shm_free(f.lat, lat_size);
	bench_shm_free(f.pass, pass_size);
	return rc;
}

/* ---------------------------------------------------------------- run */

void bench_bus_stop_broker(int pid)
{
	int64_t deadline;

	if (pid <= 0)
		return;
	if (kill(pid, SIGTERM) != 0)
		return;
	deadline = now_mono_ns() + 5 * (int64_t)1000000000;
	while (now_mono_ns() < deadline) {
		/* Reap it if it is our child; otherwise watch it go. */
		if (waitpid(pid, NULL, WNOHANG) == pid)
			return;
		if (kill(pid, 0) != 0 && errno == ESRCH)
			return;
		usleep(2000);
	}
	fprintf(stderr, "bench: broker %d did not exit on SIGTERM; killing it\n", pid);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, WNOHANG);
}

static int broker_pid;

int bench_bus_begin(void)
{
	int rc;

	main_pid = getpid();
	if (bench_cfg.broker && setenv("SHMBUSD", bench_cfg.broker, 1) != 0) {
		bench_fail("bus", "setenv: %s", strerror(errno));
		return -1;
	}
	if ((rc = bus_connect(&main_bus)) != 0) {
		bench_fail("bus", "shmbus_connect(%s): %s (set SHMBUSD or --broker)",
			   bench_cfg.bus_name, shmbus_strerror(rc));
		return -1;
	}
	broker_pid = shmbus_broker_pid(main_bus);
	return 0;
}

void bench_bus_end(void)
{
	if (!main_bus)
		return;
	shmbus_disconnect(main_bus);
	main_bus = NULL;
	bench_bus_stop_broker(broker_pid);
}

int bench_bus_check_gone(void)
{
	struct shmbus_connect_options o;
	shmbus_bus *bus;
	int rc;

	if (!main_pid)
		return 0; /* the bus group did not run */
	shmbus_connect_options_init(&o);
	o.autostart = false;
	rc = shmbus_connect(bench_cfg.bus_name, &o, &bus);
	if (rc == SHMBUS_ENOBROKER)
		return 0;
	if (rc == 0) {
		fprintf(stderr, "bench: a broker (pid %d) still serves bus '%s' after the run\n",
			shmbus_broker_pid(bus), bench_cfg.bus_name);
		bench_bus_stop_broker(shmbus_broker_pid(bus));
		shmbus_disconnect(bus);
	} else {
		fprintf(stderr, "bench: asking whether bus '%s' is gone: %s\n", bench_cfg.bus_name,
			shmbus_strerror(rc));
	}
	return -1;
}

int bench_bus_run(int stage)
{
	static const int fanouts[] = {1, 2, 4, 8, 16};
	int failed = 0;

	if (stage >= 0 && (size_t)stage < bench_nsizes) {
		size_t s = bench_sizes[stage];

		if (bench_selected("bus_poll_take"))
			failed += run_latency("bus_poll_take", MODE_TAKE, 0, s, "floor_shm_poll", s,
					      NULL) != 0;
		if (bench_selected("bus_poll_view"))
			failed += run_latency("bus_poll_view", MODE_VIEW, 0, s, "bus_poll_view", 64,
					      NULL) != 0;
		if (bench_selected("bus_poll_write"))
			failed += run_latency("bus_poll_write", MODE_WRITE, 0, s, "floor_shm_poll", s,
					      "iox_poll") != 0;
		if (bench_selected("bus_spinwait"))
			failed += run_latency("bus_spinwait", MODE_WAIT, BUS_SPIN_NS, s,
					      "floor_shm_poll", s, NULL) != 0;
		if (bench_selected("bus_wait_write"))
			failed += run_latency("bus_wait_write", MODE_WAIT_WRITE, 0, s, "floor_futex",
					      s, "iox_wait") != 0;
		if (bench_selected("bus_wait"))
			failed += run_latency("bus_wait", MODE_WAIT, 0, s, "floor_futex", s,
					      "unix_socket") != 0;
		if (stage == 0 && bench_selected("bus_empty_poll_cpu"))
			failed += run_empty_poll() != 0;
	} else if (stage >= (int)bench_nsizes && (size_t)stage < bench_nsizes + bench_ntput_sizes) {
		size_t s = bench_tput_sizes[(size_t)stage - bench_nsizes];

		if (bench_selected("bus_tput"))
			failed += run_tput(s, TPUT_POLL) != 0;
		if (bench_selected("bus_tput_spin"))
			failed += run_tput(s, TPUT_SPIN) != 0;
		if (s <= BS_CELL && bench_selected("bus_tput_batch"))
			failed += run_tput(s, TPUT_BATCH) != 0;
	} else if (stage == BENCH_STAGE_FANOUT) {
		/* The publisher alone: the rate the fan-out rows are compared
		 * with. */
		if (bench_selected("fanout_tput"))
			failed += run_fanout_tput(0) != 0;
		for (size_t i = 0; i < sizeof(fanouts) / sizeof(fanouts[0]); i++) {
			if (bench_selected("fanout_lat"))
				failed += run_fanout_latency(fanouts[i]) != 0;
			if (bench_selected("fanout_tput"))
				failed += run_fanout_tput(fanouts[i]) != 0;
		}
		if (bench_selected("contention"))
			failed += run_contention(4) != 0;
	} else if (stage == BENCH_STAGE_SLOW) {
		failed += bench_slow_run();
		failed += bench_paced_run();
	} else if (stage == BENCH_STAGE_TOPICS) {
		failed += bench_topics_run();
	}
	return failed;
}

/* ------------------------------------------------ for the other groups */

uint32_t bench_bus_latency_slots(size_t size)
{
	return latency_slots(size);
}
