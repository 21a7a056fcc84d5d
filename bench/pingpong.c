/*
 * pingpong.c - the two-process ping-pong driver every latency case uses:
 * fork an echoer pinned to the second core, warm up, then time each round
 * trip from the initiator pinned to the first core.
 */
#include "bench.h"

#include <errno.h>
#include <string.h>
#include <sys/types.h>

struct pp_shared {
	struct bench_barrier barrier;
};

struct pp_child_arg {
	const struct bench_pingpong_ops *ops;
	void *ctx;
	struct pp_shared *sh;
};

static int pp_child(void *arg, int index)
{
	struct pp_child_arg *a = arg;
	int rc = 0, cmd;

	(void)index;
	if (a->ops->setup(a->ctx, 1) != 0) {
		bench_barrier_break(&a->sh->barrier);
		return 1;
	}
	if (bench_barrier_wait(&a->sh->barrier) != 0) {
		a->ops->teardown(a->ctx, 1);
		return 1;
	}
	while ((cmd = a->ops->echo(a->ctx)) == BENCH_CMD_ECHO)
		;
	if (cmd != BENCH_CMD_STOP)
		rc = 1;
	a->ops->teardown(a->ctx, 1);
	return rc;
}

int bench_pingpong(const char *name, size_t size, const struct bench_pingpong_ops *ops,
		   void *ctx, const char *floor_name, uint64_t floor_size)
{
	struct pp_shared *sh = bench_shm_alloc(sizeof(*sh));
	struct pp_child_arg arg = {ops, ctx, sh};
	struct bench_samples s;
	pid_t pid;
	int cpu = bench_cfg.cpu_b, rc = -1, setup_done = 0;
	int64_t t0, t1, warm_iters = 0;

	if (!sh || bench_samples_init(&s, (size_t)bench_cfg.passes * bench_cfg.max_iters) != 0) {
		bench_shm_free(sh, sizeof(*sh));
		bench_fail(name, "out of memory");
		return -1;
	}
	bench_barrier_init(&sh->barrier, 2);
	bench_pin(bench_cfg.cpu_a);
	if (bench_spawn(1, &cpu, pp_child, &arg, &pid) != 0) {
		bench_fail(name, "fork: %s", strerror(errno));
		goto out;
	}
	if (ops->setup(ctx, 0) != 0) {
		bench_barrier_break(&sh->barrier);
		bench_fail(name, "setup failed");
		goto stop;
	}
	setup_done = 1;
	if (bench_barrier_wait(&sh->barrier) != 0) {
		bench_fail(name, "the echoer did not start");
		goto stop;
	}

	/* Warm-up: caches, page faults, branch predictors, and the CPU
	 * frequency; its pace sets the iterations per pass. */
	t0 = now_mono_ns();
	do {
		if (ops->ping(ctx, BENCH_CMD_ECHO) != 0) {
			bench_fail(name, "warm-up round trip failed");
			goto stop;
		}
		warm_iters++;
		t1 = now_mono_ns();
	} while (t1 - t0 < bench_cfg.warmup_ns || warm_iters < 3);

	{
		uint64_t iters = bench_iters_for((t1 - t0) / warm_iters);

		for (int p = 0; p < bench_cfg.passes; p++) {
			size_t from = s.n;

			for (uint64_t i = 0; i < iters; i++) {
				int64_t a = now_mono_ns(), b;

				if (ops->ping(ctx, BENCH_CMD_ECHO) != 0) {
					bench_fail(name, "round trip failed");
					goto stop;
				}
				b = now_mono_ns();
				/* One-way = round trip / 2, kept in ns. */
				s.v[s.n++] = (b - a) / 2;
			}
			bench_samples_end_pass(&s, from);
		}
	}
	rc = 0;
stop:
	if (setup_done && ops->ping(ctx, BENCH_CMD_STOP) != 0)
		rc = -1;
	if (bench_reap(1, &pid, 10 * (int64_t)1000000000) != 0) {
		if (rc == 0)
			bench_fail(name, "the echoer failed");
		rc = -1;
	}
	if (setup_done)
		ops->teardown(ctx, 0);
	if (rc == 0) {
		struct bench_row *r = bench_row_latency(name, size, &s);

		bench_row_set_floor(r, floor_name, floor_size);
	}
out:
	bench_samples_free(&s);
	bench_shm_free(sh, sizeof(*sh));
	return rc;
}

