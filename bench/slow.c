/*
 * slow.c - a subscriber slower than its publisher: how many messages it
 * still delivers, and what share of the views it starts stay valid, as the
 * publisher's rate goes from half to a hundred times what the subscriber
 * can take.
 *
 * The subscriber (cpu_b) views each message in place and holds the view for
 * a fixed time (its work on the message), then releases it: the release says
 * whether the view stayed valid. Its capacity is what it completes while
 * never idle (the slow_capacity row, measured). The publisher (cpu_a)
 * publishes at k times the nominal capacity (1 / hold), paced on the clock;
 * it writes the first line of each message (a stamp), so that its rate is
 * the one set at every size, 1 MiB included. Topics have the default
 * layout and the subscriber the default options: what a user gets.
 *
 * Rows per size and k: slow_xK (delivered, i.e. views that stayed valid,
 * per second) and slow_valid_xK (share of the views started that stayed
 * valid, %); per size: slow_capacity.
 */
#include "bench.h"
#include "bus_bench.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

/* How long the subscriber holds each view, per size: long enough that 100x
 * its capacity is a rate the publisher can keep on this machine. */
static int64_t hold_ns(size_t size)
{
	return size >= BENCH_MIB ? 1000000 : 100000;
}

static const char *const factors[] = {"0.5", "1", "2", "5", "10", "20", "50", "100"};
#define NFACTORS (sizeof(factors) / sizeof(factors[0]))

struct slow_pass {
	int64_t t0, t1;                 /* publisher's pass */
	uint64_t published;
	uint64_t started, valid, lost;  /* subscriber's counts in the pass */
	int64_t busy_ns;                /* subscriber: time inside views */
};

struct slow_shared {
	struct bench_barrier barrier;
	/* The pass the publisher has finished (pass + 1). Release by the
	 * publisher, acquire by the subscriber, which then stops counting. */
	_Alignas(BENCH_CACHE_LINE) _Atomic uint32_t done;
	struct slow_pass pass[64];
};

struct slow {
	char name[48];
	char topic[96];
	size_t size;
	double rate;   /* the publisher's, messages per second */
	int64_t hold;  /* ns */
	int npasses;   /* warm-up + measured */
	struct slow_shared *sh;
};

static int64_t pass_ns(int p)
{
	return p == 0 ? bench_cfg.warmup_ns : bench_cfg.pass_ns;
}

static int slow_publisher(struct slow *c, shmbus_bus *bus)
{
	shmbus_pub *pub;
	shmbus_sub *none;
	int64_t period = (int64_t)(1e9 / c->rate);
	int rc = -1;

	if (bench_bus_open_pair(c->name, bus, c->topic, NULL, c->size, 0, 0, &pub, &none) != 0)
		return -1;
	if (bench_barrier_wait(&c->sh->barrier) != 0)
		goto out;
	for (int p = 0; p < c->npasses; p++) {
		int64_t t0, now, next;
		uint64_t n = 0;

		if (bench_barrier_wait(&c->sh->barrier) != 0)
			goto out;
		t0 = now = next = now_mono_ns();
		while (now - t0 < pass_ns(p)) {
			void *buf;
			size_t cap;
			int r;

			while ((now = now_mono_ns()) < next)
				;
			if ((r = shmbus_pub_loan(pub, &buf, &cap)) != 0) {
				bench_bus_report(c->name, bus, "shmbus_pub_loan", r);
				goto out;
			}
			/* The stamp: sequence in the pass and the time. */
			memcpy(buf, &n, sizeof(n));
			memcpy((char *)buf + sizeof(n), &now, sizeof(now));
			if ((r = shmbus_pub_publish(pub, c->size, NULL)) != 0) {
				bench_bus_report(c->name, bus, "shmbus_pub_publish", r);
				goto out;
			}
			n++;
			next += period;
			/* Fallen a period behind (preempted): carry on from now
			 * rather than publish a burst. */
			if (now - next > period)
				next = now;
		}
		c->sh->pass[p].t0 = t0;
		c->sh->pass[p].t1 = now;
		c->sh->pass[p].published = n;
		atomic_store_explicit(&c->sh->done, (uint32_t)p + 1, memory_order_release);
		if (bench_barrier_wait(&c->sh->barrier) != 0)
			goto out;
	}
	rc = 0;
out:
	if (rc != 0)
		bench_barrier_break(&c->sh->barrier);
	shmbus_pub_close(pub);
	return rc;
}

/* View, hold, release until the publisher ends pass p. 0 or -1. */
static int slow_view_pass(struct slow *c, shmbus_bus *bus, shmbus_sub *sub, int p)
{
	struct slow_pass *ps = &c->sh->pass[p];
	struct shmbus_sub_stats s0, s1;
	int64_t deadline = now_mono_ns() + pass_ns(p) + BUS_TIMEOUT_NS;

	shmbus_sub_stats(sub, &s0);
	/* Acquire: pairs with the publisher's release store at its pass end. */
	while (atomic_load_explicit(&c->sh->done, memory_order_acquire) < (uint32_t)p + 1) {
		struct shmbus_view v;
		int64_t t0;
		int r = shmbus_sub_view(sub, &v);

		if (r == SHMBUS_EAGAIN) {
			if (atomic_load_explicit(&c->sh->barrier.broken, memory_order_relaxed))
				return -1;
			if (now_mono_ns() > deadline) {
				bench_fail(c->name, "the publisher did not end its pass");
				return -1;
			}
			continue;
		}
		if (r != 0) {
			bench_bus_report(c->name, bus, "shmbus_sub_view", r);
			return -1;
		}
		t0 = now_mono_ns();
		ps->started++;
		bench_spin_ns(c->hold);
		r = shmbus_sub_release(sub, &v);
		ps->busy_ns += now_mono_ns() - t0;
		if (r == 0) {
			ps->valid++;
		} else if (r != SHMBUS_ELAPPED) {
			bench_bus_report(c->name, bus, "shmbus_sub_release", r);
			return -1;
		}
	}
	shmbus_sub_stats(sub, &s1);
	ps->lost = s1.lost - s0.lost;
	return 0;
}

static int slow_subscriber(struct slow *c, shmbus_bus *bus)
{
	shmbus_pub *none;
	shmbus_sub *sub;
	int rc = -1;

	if (bench_bus_open_pair(c->name, bus, NULL, c->topic, c->size, 0, SHMBUS_SPIN_AUTO, &none,
				&sub) != 0)
		return -1;
	if (bench_barrier_wait(&c->sh->barrier) != 0)
		goto out;
	for (int p = 0; p < c->npasses; p++) {
		if (bench_barrier_wait(&c->sh->barrier) != 0 || slow_view_pass(c, bus, sub, p) != 0 ||
		    bench_barrier_wait(&c->sh->barrier) != 0)
			goto out;
	}
	rc = 0;
out:
	if (rc != 0)
		bench_barrier_break(&c->sh->barrier);
	shmbus_sub_close(sub);
	return rc;
}

/* Child 0 subscribes (cpu_b), child 1 publishes (cpu_a). */
static int slow_role(void *arg, shmbus_bus *bus, int index)
{
	struct slow *c = arg;

	return index == 0 ? slow_subscriber(c, bus) : slow_publisher(c, bus);
}

static int slow_child(void *arg, int index)
{
	struct slow *c = arg;

	return bench_bus_child(c->name, &c->sh->barrier, slow_role, c, index);
}

/* Capacity per size: views completed per second of holding them, over the
 * round's points. */
struct slow_capacity {
	uint64_t started;
	int64_t busy_ns;
};

static int run_point(size_t size, const char *k, struct slow_capacity *cap)
{
	struct slow c = {.size = size, .hold = hold_ns(size), .npasses = bench_cfg.passes + 1};
	int cpus[2] = {bench_cfg.cpu_b, bench_cfg.cpu_a};
	double delivered[64], share[64];
	int ndelivered = 0, nshare = 0;
	uint64_t started = 0, valid = 0, lost = 0, published = 0;
	double pub_rate = 0;
	char name[48];
	pid_t pids[2];
	struct bench_row *r;

	c.rate = atof(k) * 1e9 / (double)c.hold;
	snprintf(c.name, sizeof(c.name), "slow_x%s", k);
	snprintf(c.topic, sizeof(c.topic), "bench/slow/%zu/x%s", size, k);
	for (char *p = c.topic; *p; p++)
		if (*p == '.')
			*p = 'p';
	c.sh = bench_shm_alloc(sizeof(*c.sh));
	if (!c.sh) {
		bench_fail(c.name, "out of memory");
		return -1;
	}
	bench_barrier_init(&c.sh->barrier, 2);
	if (bench_spawn(2, cpus, slow_child, &c, pids) != 0) {
		bench_fail(c.name, "fork failed");
		bench_shm_free(c.sh, sizeof(*c.sh));
		return -1;
	}
	if (bench_reap(2, pids, (int64_t)c.npasses * (bench_cfg.pass_ns + BUS_TIMEOUT_NS)) != 0) {
		bench_fail(c.name, "a participant failed");
		bench_shm_free(c.sh, sizeof(*c.sh));
		return -1;
	}
	for (int p = 1; p < c.npasses; p++) {
		const struct slow_pass *ps = &c.sh->pass[p];
		double dt = (double)(ps->t1 - ps->t0) / 1e9;

		/* A pass in which the subscriber neither started a view nor
		 * lost a message did not run (not scheduled in a smoke test's
		 * few ms): it has no figure. */
		if (ps->started == 0 && ps->lost == 0)
			continue;
		delivered[ndelivered++] = dt > 0 ? (double)ps->valid / dt : 0;
		if (ps->started)
			share[nshare++] = 100.0 * (double)ps->valid / (double)ps->started;
		pub_rate += dt > 0 ? (double)ps->published / dt / (c.npasses - 1) : 0;
		started += ps->started;
		valid += ps->valid;
		lost += ps->lost;
		published += ps->published;
		cap->started += ps->started;
		cap->busy_ns += ps->busy_ns;
	}
	bench_shm_free(c.sh, sizeof(*c.sh));
	if (ndelivered == 0) {
		printf("%s@%zu: the subscriber saw no message in this round's pass\n", c.name, size);
		return 0;
	}
	r = bench_row_rates(c.name, size, delivered, ndelivered);
	bench_row_note(r, "views valid per second; publisher %.0f/s (%s x 1/hold, hold %lld us), "
			  "default layout",
		       pub_rate, k, (long long)(c.hold / 1000));
	/* Everything published in the passes was either delivered or lost
	 * (a view overwritten while held counts lost). */
	bench_row_add_counts(r, lost, valid + lost, 0, 0);
	if (nshare == 0)
		return 0;
	snprintf(name, sizeof(name), "slow_valid_x%s", k);
	r = bench_row_values(name, size, share, nshare, "%");
	bench_row_note(r, "views that stayed valid, of views started (last round: %llu of %llu; "
			  "%llu published)",
		       (unsigned long long)valid, (unsigned long long)started,
		       (unsigned long long)published);
	return 0;
}

int bench_slow_run(void)
{
	int failed = 0;

	if (!bench_selected("slow_"))
		return 0;
	for (size_t i = 0; i < bench_ntput_sizes; i++) {
		size_t size = bench_tput_sizes[i];
		struct slow_capacity cap = {0};
		double rate;
		struct bench_row *r;

		/* 100x a 1 ms hold of 8 MiB would be 800 GB/s of publishing. */
		if (size > BENCH_MIB)
			continue;
		for (size_t k = 0; k < NFACTORS; k++)
			failed += run_point(size, factors[k], &cap) != 0;
		if (cap.busy_ns <= 0)
			continue;
		rate = (double)cap.started / ((double)cap.busy_ns / 1e9);
		r = bench_row_rates("slow_capacity", size, &rate, 1);
		bench_row_note(r, "views the subscriber completes per second of holding them "
				  "(hold %lld us each)",
			       (long long)(hold_ns(size) / 1000));
	}
	return failed;
}
