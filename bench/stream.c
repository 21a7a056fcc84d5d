/*
 * stream.c - the streaming driver every throughput case uses: producers send
 * as fast as they can for a fixed time per pass, consumers take what reaches
 * them, and the rates come from the producers' own clocks and the moment
 * each consumer drained its last message.
 *
 * A pass, for every participant:
 *
 *   start barrier -> producers send for pass_ns, then add their count to
 *   sent_total and bump producers_done -> consumers take until every
 *   producer is done and their position reaches sent_total -> end barrier
 *
 * Pass 0 is the warm-up and is not reported.
 */
#include "bench.h"

#include <math.h>
#include <string.h>

#define STREAM_MAX_PASSES 64
#define STREAM_BATCH 16 /* sends between two looks at the clock */

struct stream_shared {
	struct bench_barrier barrier;
	/* Written by producers once per pass; release pairs with the acquire
	 * loads of consumers deciding whether they have drained. */
	_Alignas(BENCH_CACHE_LINE) _Atomic uint64_t sent_total;
	_Alignas(BENCH_CACHE_LINE) _Atomic uint32_t producers_done;
	/* Per pass and participant; each slot written by its owner only and
	 * read by the parent after every child has exited. */
	int64_t t0[STREAM_MAX_PASSES][BENCH_MAX_PROCS];
	int64_t t1[STREAM_MAX_PASSES][BENCH_MAX_PROCS];
	uint64_t sent[STREAM_MAX_PASSES][BENCH_MAX_PROCS];
	int64_t c_end[STREAM_MAX_PASSES][BENCH_MAX_PROCS];
	uint64_t c_recv[STREAM_MAX_PASSES][BENCH_MAX_PROCS];
	uint64_t c_lost[STREAM_MAX_PASSES][BENCH_MAX_PROCS];
};

struct stream_arg {
	const char *name;
	const struct bench_stream_ops *ops;
	void *ctx;
	struct stream_shared *sh;
	int producers, consumers, npasses;
};

static int64_t pass_duration(int pass)
{
	return pass == 0 ? bench_cfg.warmup_ns : bench_cfg.pass_ns;
}

static int stream_producer(void *arg, int index)
{
	struct stream_arg *a = arg;
	struct stream_shared *sh = a->sh;
	int rc = -1;

	if (a->ops->setup(a->ctx, 0, index) != 0) {
		bench_fail(a->name, "producer %d: setup failed", index);
		bench_barrier_break(&sh->barrier);
		return -1;
	}
	for (int p = 0; p < a->npasses; p++) {
		int64_t t0, t1, dur = pass_duration(p);
		uint64_t n = 0;

		if (bench_barrier_wait(&sh->barrier) != 0)
			goto out;
		t0 = now_mono_ns();
		do {
			for (int k = 0; k < STREAM_BATCH; k++) {
				if (a->ops->send(a->ctx, index) != 0) {
					bench_fail(a->name, "producer %d: send failed", index);
					bench_barrier_break(&sh->barrier);
					goto out;
				}
			}
			n += STREAM_BATCH;
			t1 = now_mono_ns();
		} while (t1 - t0 < dur);
		sh->t0[p][index] = t0;
		sh->t1[p][index] = t1;
		sh->sent[p][index] = n;
		atomic_fetch_add_explicit(&sh->sent_total, n, memory_order_release);
		atomic_fetch_add_explicit(&sh->producers_done, 1, memory_order_release);
		if (bench_barrier_wait(&sh->barrier) != 0)
			goto out;
	}
	rc = 0;
out:
	a->ops->teardown(a->ctx, 0, index);
	return rc;
}

/* Take until every producer of pass p is done and everything they sent
 * was taken or given up. Returns 0 and the time the last message was
 * taken, or -1. */
static int consume_pass(struct stream_arg *a, int index, int p, int64_t *end)
{
	struct stream_shared *sh = a->sh;
	uint32_t all_done = (uint32_t)((p + 1) * a->producers);
	int64_t start = now_mono_ns(), mark = start;
	int64_t deadline = start + pass_duration(p) + 30 * (int64_t)1000000000;
	bool got_since_mark = false;

	for (;;) {
		int r = a->ops->try_recv(a->ctx, index);
		int64_t now;

		if (r == 1) {
			got_since_mark = true;
			continue;
		}
		if (r < 0) {
			bench_fail(a->name, "consumer %d: receive failed", index);
			return -1;
		}
		/* Nothing there: the first such moment after a message is
		 * when the last message so far was taken. */
		now = now_mono_ns();
		if (got_since_mark) {
			mark = now;
			got_since_mark = false;
		}
		/* Acquire pairs with the producers' release adds. */
		if (atomic_load_explicit(&sh->producers_done, memory_order_acquire) >= all_done &&
		    a->ops->position(a->ctx, index) >=
			    atomic_load_explicit(&sh->sent_total, memory_order_acquire))
			break;
		if (now > deadline || atomic_load_explicit(&sh->barrier.broken, memory_order_relaxed)) {
			bench_fail(a->name, "consumer %d: pass %d did not drain", index, p);
			return -1;
		}
		if (a->ops->wait && a->ops->wait(a->ctx, index, 10000000) != 0) {
			bench_fail(a->name, "consumer %d: wait failed", index);
			return -1;
		}
	}
	*end = mark;
	return 0;
}

static int stream_consumer(void *arg, int index)
{
	struct stream_arg *a = arg;
	struct stream_shared *sh = a->sh;
	int rc = -1;

	if (a->ops->setup(a->ctx, 1, index) != 0) {
		bench_fail(a->name, "consumer %d: setup failed", index);
		bench_barrier_break(&sh->barrier);
		return -1;
	}
	for (int p = 0; p < a->npasses; p++) {
		uint64_t pos0, lost0, pos1, lost1;
		int64_t end;

		if (bench_barrier_wait(&sh->barrier) != 0)
			goto out;
		pos0 = a->ops->position(a->ctx, index);
		lost0 = a->ops->lost ? a->ops->lost(a->ctx, index) : 0;
		if (consume_pass(a, index, p, &end) != 0) {
			bench_barrier_break(&sh->barrier);
			goto out;
		}
		pos1 = a->ops->position(a->ctx, index);
		lost1 = a->ops->lost ? a->ops->lost(a->ctx, index) : 0;
		sh->c_end[p][index] = end;
		sh->c_lost[p][index] = lost1 - lost0;
		sh->c_recv[p][index] = (pos1 - pos0) - (lost1 - lost0);
		if (bench_barrier_wait(&sh->barrier) != 0)
			goto out;
	}
	rc = 0;
out:
	a->ops->teardown(a->ctx, 1, index);
	return rc;
}

int bench_stream(const char *name, int producers, const int *producer_cpus, int consumers,
		 const int *consumer_cpus, const struct bench_stream_ops *ops, void *ctx,
		 struct bench_stream_result *res)
{
	struct stream_shared *sh = bench_shm_alloc(sizeof(*sh));
	struct stream_arg arg = {name, ops, ctx, sh, producers, consumers, bench_cfg.passes + 1};
	pid_t pids[BENCH_MAX_PROCS];
	int rc;

	memset(res, 0, sizeof(*res));
	if (!sh) {
		bench_fail(name, "out of memory");
		return -1;
	}
	if (producers + consumers > BENCH_MAX_PROCS || arg.npasses > STREAM_MAX_PASSES) {
		bench_fail(name, "too many processes or passes");
		bench_shm_free(sh, sizeof(*sh));
		return -1;
	}
	bench_barrier_init(&sh->barrier, (uint32_t)(producers + consumers));
	if (bench_spawn(consumers, consumer_cpus, stream_consumer, &arg, pids) != 0) {
		bench_fail(name, "fork failed");
		bench_shm_free(sh, sizeof(*sh));
		return -1;
	}
	if (bench_spawn(producers, producer_cpus, stream_producer, &arg, pids + consumers) != 0) {
		bench_fail(name, "fork failed");
		bench_barrier_break(&sh->barrier);
		bench_reap(consumers, pids, 10 * (int64_t)1000000000);
		bench_shm_free(sh, sizeof(*sh));
		return -1;
	}
	/* Producer indexes in sh start at 0 like the consumers': the two
	 * roles use separate slots of their own arrays. */
	rc = bench_reap(producers + consumers, pids,
			(int64_t)arg.npasses * (bench_cfg.pass_ns + 30 * (int64_t)1000000000));
	if (rc != 0) {
		bench_fail(name, "a participant failed");
		bench_shm_free(sh, sizeof(*sh));
		return -1;
	}

	res->passes = bench_cfg.passes;
	for (int p = 1; p < arg.npasses; p++) {
		int64_t t0 = INT64_MAX, t1 = INT64_MIN;
		uint64_t sent = 0;
		double pmin = INFINITY, csum = 0, cmin = INFINITY;

		for (int i = 0; i < producers; i++) {
			double dt = (double)(sh->t1[p][i] - sh->t0[p][i]);

			t0 = sh->t0[p][i] < t0 ? sh->t0[p][i] : t0;
			t1 = sh->t1[p][i] > t1 ? sh->t1[p][i] : t1;
			sent += sh->sent[p][i];
			pmin = fmin(pmin, (double)sh->sent[p][i] / dt * 1e9);
		}
		res->prod_rate[p - 1] = (double)sent / (double)(t1 - t0) * 1e9;
		res->prod_rate_min[p - 1] = pmin;
		res->sent += sent;
		for (int i = 0; i < consumers; i++) {
			int64_t dt = sh->c_end[p][i] - t0;
			double rate = dt > 0 ? (double)sh->c_recv[p][i] / (double)dt * 1e9 : 0;

			csum += rate;
			cmin = fmin(cmin, rate);
			res->received += sh->c_recv[p][i];
			res->lost += sh->c_lost[p][i];
		}
		res->cons_rate[p - 1] = consumers ? csum / consumers : NAN;
		res->cons_rate_min[p - 1] = consumers ? cmin : NAN;
	}
	bench_shm_free(sh, sizeof(*sh));
	return 0;
}
