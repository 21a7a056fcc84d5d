/*
 * iceoryx.c - iceoryx 2.0 (its C binding) as a peer of the bus, measured
 * with the same drivers and the same work per message:
 *
 *   iox_poll   ping-pong, the sender loans a chunk, writes the whole message
 *              and publishes; the receiver polls take, reads the first word
 *              and releases (peer of bus_poll_write)
 *   iox_wait   the same, the receiver blocked in a wait set (bus_wait_write)
 *   iox_tput   a publisher streaming as fast as it can to one polling
 *              subscriber that copies each message out; losses counted from
 *              a sequence number in the message (bus_tput)
 *
 * Configured as its users do for such traffic (BENCHMARKS.md says why):
 * one mempool per message size with enough chunks that a publisher never
 * runs out, publishers and subscribers that drop the oldest message rather
 * than block (the bus never makes a publisher wait either), no history.
 *
 * Every iceoryx process is a fresh child that joins RouDi's namespace
 * (roudi_enter): the runtime starts a thread and registers the process
 * with RouDi, neither of which the main process may keep. Children end
 * with exit() so that the runtime deregisters (bench_child_exit_cleanly).
 */
#include "bench.h"
#include "roudi.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <iceoryx_binding_c/log.h>
#include <iceoryx_binding_c/publisher.h>
#include <iceoryx_binding_c/runtime.h>
#include <iceoryx_binding_c/subscriber.h>
#include <iceoryx_binding_c/wait_set.h>

#ifndef BENCH_IOX_VERSION
#define BENCH_IOX_VERSION "2.0"
#endif

#define IOX_SERVICE "shmbus-bench"
#define IOX_TIMEOUT_NS (10 * (int64_t)1000000000)
/* Chunks per latency size; spare chunks of a stream size beyond two full
 * queues (a process that just ended may hold its queue until RouDi has
 * cleaned up after it). */
#define IOX_LATENCY_CHUNKS 16u
#define IOX_SPARE_CHUNKS 24u

static char why_not[600];

/* ------------------------------------------------------------- runtime */

/* Register this process with RouDi, once. */
static void iox_runtime(void)
{
	static pid_t registered;
	char name[64];

	if (registered == getpid())
		return;
	snprintf(name, sizeof(name), "shmbus-bench-%d", (int)getpid());
	/* Its warnings and errors only, not a line per registration. */
	iox_set_loglevel(Iceoryx_LogLevel_Warn);
	iox_runtime_init(name);
	registered = getpid();
}

/* A publisher that drops the oldest queued message of a slow subscriber
 * instead of waiting for it, without history. */
static iox_pub_t pub_open(iox_pub_storage_t *st, const char *instance, const char *event)
{
	iox_pub_options_t o;

	iox_pub_options_init(&o);
	o.historyCapacity = 0;
	o.subscriberTooSlowPolicy = ConsumerTooSlowPolicy_DISCARD_OLDEST_DATA;
	return iox_pub_init(st, IOX_SERVICE, instance, event, &o);
}

static iox_sub_t sub_open(iox_sub_storage_t *st, const char *instance, const char *event,
			  uint64_t queue)
{
	iox_sub_options_t o;

	iox_sub_options_init(&o);
	o.queueCapacity = queue;
	o.historyRequest = 0;
	o.queueFullPolicy = QueueFullPolicy_DISCARD_OLDEST_DATA;
	return iox_sub_init(st, IOX_SERVICE, instance, event, &o);
}

/* Wait until RouDi connected the ports: the subscriber (if any) to a
 * publisher, the publisher (if any) to a subscriber. 0 or -1. */
static int await_connected(const char *name, iox_pub_t pub, iox_sub_t sub)
{
	int64_t deadline = now_mono_ns() + IOX_TIMEOUT_NS;

	while ((sub && iox_sub_get_subscription_state(sub) != SubscribeState_SUBSCRIBED) ||
	       (pub && !iox_pub_has_subscribers(pub))) {
		if (now_mono_ns() > deadline) {
			bench_fail(name, "iceoryx ports not connected after %lld s",
				   (long long)(IOX_TIMEOUT_NS / 1000000000));
			return -1;
		}
		usleep(1000);
	}
	return 0;
}

/* Loan a chunk, copy the message into it, publish. 0 or -1. */
static int publish_copy(const char *name, iox_pub_t pub, const void *msg, size_t size)
{
	void *chunk;
	enum iox_AllocationResult r = iox_pub_loan_chunk(pub, &chunk, (uint32_t)size);

	if (r != AllocationResult_SUCCESS) {
		bench_fail(name, "iox_pub_loan_chunk(%zu): allocation result %d", size, (int)r);
		return -1;
	}
	memcpy(chunk, msg, size);
	iox_pub_publish_chunk(pub, chunk);
	return 0;
}

/* ------------------------------------------------------------ ping-pong */

struct iox_pp {
	const char *name;
	size_t size;
	bool wait;
	char instance[64];
	/* Per process (each has its own copy after fork). */
	iox_pub_storage_t pub_st;
	iox_sub_storage_t sub_st;
	iox_ws_storage_t ws_st;
	iox_pub_t pub;
	iox_sub_t sub;
	iox_ws_t ws;
	unsigned char *priv;
};

static void pp_close(struct iox_pp *c)
{
	if (c->ws)
		iox_ws_deinit(c->ws);
	if (c->sub)
		iox_sub_deinit(c->sub);
	if (c->pub)
		iox_pub_deinit(c->pub);
	c->ws = NULL;
	c->sub = NULL;
	c->pub = NULL;
	free(c->priv);
	c->priv = NULL;
}

static int pp_setup(void *ctx, int role)
{
	struct iox_pp *c = ctx;

	c->pub = NULL;
	c->sub = NULL;
	c->ws = NULL;
	c->priv = malloc(c->size);
	if (!c->priv)
		return -1;
	memset(c->priv, 0x5a, c->size);
	iox_runtime();
	/* role 0 publishes "ping" and takes "pong", role 1 the other way. */
	c->pub = pub_open(&c->pub_st, c->instance, role ? "pong" : "ping");
	c->sub = sub_open(&c->sub_st, c->instance, role ? "ping" : "pong", IOX_LATENCY_CHUNKS / 2);
	if (c->wait) {
		c->ws = iox_ws_init(&c->ws_st);
		if (iox_ws_attach_subscriber_state(c->ws, c->sub, SubscriberState_HAS_DATA, 0, NULL) !=
		    WaitSetResult_SUCCESS) {
			bench_fail(c->name, "iox_ws_attach_subscriber_state failed");
			pp_close(c);
			return -1;
		}
	}
	if (await_connected(c->name, c->pub, c->sub) != 0) {
		pp_close(c);
		return -1;
	}
	return 0;
}

static void pp_teardown(void *ctx, int role)
{
	(void)role;
	pp_close(ctx);
}

static int pp_send(struct iox_pp *c, uint64_t cmd)
{
	/* The whole message is written, the command in its first word. */
	memcpy(c->priv, &cmd, sizeof(cmd));
	return publish_copy(c->name, c->pub, c->priv, c->size);
}

/* The next message's command word, or -1. */
static int64_t pp_recv(struct iox_pp *c)
{
	int64_t deadline = 0;
	unsigned spins = 0;

	for (;;) {
		const void *chunk;
		enum iox_ChunkReceiveResult r = iox_sub_take_chunk(c->sub, &chunk);

		if (r == ChunkReceiveResult_SUCCESS) {
			uint64_t cmd;

			memcpy(&cmd, chunk, sizeof(cmd));
			iox_sub_release_chunk(c->sub, chunk);
			return (int64_t)cmd;
		}
		if (r != ChunkReceiveResult_NO_CHUNK_AVAILABLE) {
			bench_fail(c->name, "iox_sub_take_chunk: result %d", (int)r);
			return -1;
		}
		if (c->wait) {
			struct timespec t = {.tv_sec = 0, .tv_nsec = 100000000};
			iox_notification_info_t info[1];
			uint64_t missed = 0;

			iox_ws_timed_wait(c->ws, t, info, 1, &missed);
		} else if (++spins % 4096 != 0) {
			continue;
		}
		if (!deadline) {
			deadline = now_mono_ns() + IOX_TIMEOUT_NS;
		} else if (now_mono_ns() > deadline) {
			bench_fail(c->name, "no message for %lld s",
				   (long long)(IOX_TIMEOUT_NS / 1000000000));
			return -1;
		}
	}
}

static int pp_ping(void *ctx, enum bench_cmd cmd)
{
	struct iox_pp *c = ctx;

	if (pp_send(c, (uint64_t)cmd) != 0)
		return -1;
	if (cmd == BENCH_CMD_STOP)
		return 0;
	return pp_recv(c) == BENCH_CMD_ECHO ? 0 : -1;
}

static int pp_echo(void *ctx)
{
	struct iox_pp *c = ctx;
	int64_t cmd = pp_recv(c);

	if (cmd == BENCH_CMD_STOP)
		return BENCH_CMD_STOP;
	if (cmd != BENCH_CMD_ECHO || pp_send(c, BENCH_CMD_ECHO) != 0)
		return -1;
	return BENCH_CMD_ECHO;
}

static const struct bench_pingpong_ops iox_pp_ops = {
	.setup = pp_setup,
	.ping = pp_ping,
	.echo = pp_echo,
	.teardown = pp_teardown,
};

/* In the child bench_in_child made: join RouDi, then the ping-pong. */
static int pp_case(void *arg)
{
	struct iox_pp *c = arg;

	if (roudi_enter() != 0)
		return -1;
	bench_child_exit_cleanly = true;
	if (bench_pingpong(c->name, c->size, &iox_pp_ops, c, c->wait ? "floor_futex" : "floor_shm_poll",
			   c->size) != 0)
		return -1;
	bench_row_note(bench_rows_find(c->name, c->size),
		       "iceoryx %s: loan, write all, publish; take, release; %s", BENCH_IOX_VERSION,
		       c->wait ? "wait set" : "polling");
	return 0;
}

static int run_latency(const char *name, bool wait, size_t size)
{
	struct iox_pp c = {.name = name, .size = size, .wait = wait};

	snprintf(c.instance, sizeof(c.instance), "%s-%zu", name, size);
	return bench_in_child(name, pp_case, &c);
}

/* ----------------------------------------------------------- streaming */

struct iox_stream {
	const char *name;
	size_t size;
	uint64_t queue;
	char instance[64];
	/* Per process. */
	iox_pub_storage_t pub_st;
	iox_sub_storage_t sub_st;
	iox_pub_t pub;
	iox_sub_t sub;
	unsigned char *priv;
	uint64_t seq;      /* producer: next sequence number */
	uint64_t received; /* consumer: messages taken */
	uint64_t next;     /* consumer: one past the last sequence number seen */
};

static int st_setup(void *ctx, int role, int index)
{
	struct iox_stream *c = ctx;

	(void)index;
	c->pub = NULL;
	c->sub = NULL;
	c->seq = c->received = c->next = 0;
	c->priv = malloc(c->size);
	if (!c->priv)
		return -1;
	memset(c->priv, 0x5a, c->size);
	iox_runtime();
	if (role == 0)
		c->pub = pub_open(&c->pub_st, c->instance, "data");
	else
		c->sub = sub_open(&c->sub_st, c->instance, "data", c->queue);
	if (await_connected(c->name, c->pub, c->sub) != 0) {
		if (c->pub)
			iox_pub_deinit(c->pub);
		if (c->sub)
			iox_sub_deinit(c->sub);
		free(c->priv);
		return -1;
	}
	return 0;
}

static void st_teardown(void *ctx, int role, int index)
{
	struct iox_stream *c = ctx;

	(void)role;
	(void)index;
	if (c->pub)
		iox_pub_deinit(c->pub);
	if (c->sub)
		iox_sub_deinit(c->sub);
	free(c->priv);
}

static int st_send(void *ctx, int index)
{
	struct iox_stream *c = ctx;

	(void)index;
	memcpy(c->priv, &c->seq, sizeof(c->seq));
	c->seq++;
	return publish_copy(c->name, c->pub, c->priv, c->size);
}

static int st_try_recv(void *ctx, int index)
{
	struct iox_stream *c = ctx;
	const void *chunk;
	enum iox_ChunkReceiveResult r = iox_sub_take_chunk(c->sub, &chunk);
	uint64_t seq;

	(void)index;
	if (r == ChunkReceiveResult_NO_CHUNK_AVAILABLE)
		return 0;
	if (r != ChunkReceiveResult_SUCCESS) {
		bench_fail(c->name, "iox_sub_take_chunk: result %d", (int)r);
		return -1;
	}
	/* Copied out, as bus_tput's subscriber does with shmbus_sub_take. */
	memcpy(c->priv, chunk, c->size);
	iox_sub_release_chunk(c->sub, chunk);
	memcpy(&seq, c->priv, sizeof(seq));
	if (seq < c->next) {
		bench_fail(c->name, "sequence number %llu after %llu", (unsigned long long)seq,
			   (unsigned long long)c->next);
		return -1;
	}
	c->next = seq + 1;
	c->received++;
	return 1;
}

/* Messages taken or given up: everything up to the last one seen. */
static uint64_t st_position(void *ctx, int index)
{
	(void)index;
	return ((struct iox_stream *)ctx)->next;
}

static uint64_t st_lost(void *ctx, int index)
{
	struct iox_stream *c = ctx;

	(void)index;
	return c->next - c->received;
}

static const struct bench_stream_ops iox_stream_ops = {
	.setup = st_setup,
	.teardown = st_teardown,
	.send = st_send,
	.try_recv = st_try_recv,
	.position = st_position,
	.lost = st_lost,
};

static int st_case(void *arg)
{
	struct iox_stream *c = arg;
	struct bench_stream_result res;
	struct bench_row *r;

	if (roudi_enter() != 0)
		return -1;
	bench_child_exit_cleanly = true;
	if (bench_stream(c->name, 1, &bench_cfg.cpu_a, 1, &bench_cfg.cpu_b, &iox_stream_ops, c,
			 &res) != 0)
		return -1;
	r = bench_row_rates(c->name, c->size, res.cons_rate, res.passes);
	bench_row_set_floor(r, "floor_ring_tput", c->size);
	bench_row_note(r, "delivered; iceoryx %s, subscriber queue %llu, polls take and copies out",
		       BENCH_IOX_VERSION, (unsigned long long)c->queue);
	bench_row_add_counts(r, res.lost, res.received + res.lost, 0, 0);
	r = bench_row_rates("iox_tput_pub", c->size, res.prod_rate, res.passes);
	bench_row_set_floor(r, "floor_ring_tput", c->size);
	bench_row_note(r, "publisher's own rate (it never waits)");
	return 0;
}

/* A subscriber queue as deep as the ring floor's ring at the stream sizes
 * (bench_tput_slots: 256 at 64 B, which is also iceoryx's default and
 * maximum; 16 at 1 MiB, where a user sizes it to the mempool). */
static uint64_t stream_queue(size_t size)
{
	return bench_tput_slots(size);
}

static int run_stream(size_t size)
{
	struct iox_stream c = {.name = "iox_tput", .size = size, .queue = stream_queue(size)};

	snprintf(c.instance, sizeof(c.instance), "tput-%zu", size);
	return bench_in_child(c.name, st_case, &c);
}

/* ---------------------------------------------------------------- group */

const char *bench_iox_unavailable(void)
{
	return why_not[0] ? why_not : NULL;
}

int bench_iox_begin(void)
{
	struct roudi_pool pools[16];
	int n = 0;

	/* Latency: one message in flight each way, a few more for the
	 * runtime of a process that just ended. Streams: the subscriber's
	 * queue full, the publisher's loans, and as many again. */
	for (size_t i = 0; i < bench_nsizes && n < 16; i++)
		pools[n++] = (struct roudi_pool){bench_sizes[i], IOX_LATENCY_CHUNKS};
	for (size_t i = 0; i < bench_ntput_sizes && n < 16; i++)
		pools[n++] = (struct roudi_pool){bench_tput_sizes[i],
						 (uint32_t)stream_queue(bench_tput_sizes[i]) * 2 +
							 IOX_SPARE_CHUNKS};
	if (roudi_start(pools, n) != 0) {
		snprintf(why_not, sizeof(why_not), "not measured: %s", roudi_why());
		printf("iceoryx: %s\n", why_not);
		return -1;
	}
	printf("iceoryx %s: RouDi in %s\n", BENCH_IOX_VERSION, roudi_where());
	return 0;
}

void bench_iox_end(void)
{
	roudi_stop();
}

int bench_iox_run(int stage)
{
	int failed = 0;

	if (stage >= 0 && (size_t)stage < bench_nsizes) {
		size_t s = bench_sizes[stage];

		if (bench_selected("iox_poll"))
			failed += run_latency("iox_poll", false, s) != 0;
		if (bench_selected("iox_wait"))
			failed += run_latency("iox_wait", true, s) != 0;
	} else if (stage >= (int)bench_nsizes && (size_t)stage < bench_nsizes + bench_ntput_sizes) {
		size_t s = bench_tput_sizes[(size_t)stage - bench_nsizes];

		if (bench_selected("iox_tput"))
			failed += run_stream(s) != 0;
	}
	return failed;
}
