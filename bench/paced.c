/*
 * paced.c - a sensor-rate subscriber with the default options: what the
 * adaptive spin (SHMBUS_SPIN_AUTO) does for a 1 kHz stream, and what it
 * costs, next to a subscriber that sleeps at once (spin_ns = 0).
 *
 * The publisher (cpu_a) sleeps between messages on the clock, as a driver
 * does: 64-byte messages at 1 kHz, either one every millisecond (an IMU read
 * on its own interrupt) or eight back to back every 8 ms (an IMU whose
 * samples arrive in USB frames). The subscriber (cpu_b) takes what is there
 * and otherwise waits in shmbus_sub_wait. Per pass, from its first message
 * to the pass's end marker, it counts its voluntary context switches (each
 * one a sleep in the kernel that a wake-up ended) and its CPU time.
 *
 * Rows, per variant V in auto, sleep, burst_auto, burst_sleep:
 *   paced_V        publish-to-take latency (the auto rows' floor is the
 *                  sleeping subscriber's)
 *   paced_V_wakes  kernel sleeps of the subscriber per message
 *   paced_V_cpu    the subscriber's CPU time, % of one core
 *   paced_V_awake  messages taken within 5 us of their publish, %: they
 *                  found the subscriber awake (by default it sleeps until
 *                  just before a steady stream's next message is due, then
 *                  spins: bus/src/wakeplan.h)
 */
#include "bench.h"
#include "bus_bench.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <time.h>

#define PACED_RATE_HZ 1000
#define PACED_MIN_PASS_NS ((int64_t)200000000) /* 200 messages at least */
/* A message taken this soon after its publish found its subscriber awake:
 * a kernel wake-up alone costs more on the machines we measure (the run's
 * floor_futex row). */
#define PACED_AWAKE_NS 5000

struct paced_msg {
	int64_t sent_ns;
	uint32_t pass;
	uint32_t end; /* 1: the pass's last message, not a sample */
};

struct paced_pass {
	uint64_t msgs;    /* samples after the first */
	int64_t wall_ns;  /* from the first sample to the end marker */
	int64_t cpu_ns;   /* the subscriber's CPU time in that span */
	long sleeps;      /* its voluntary context switches in that span */
};

struct paced_shared {
	struct bench_barrier barrier;
	struct paced_pass pass[64];
};

struct paced {
	char name[48];
	char topic[96];
	int burst;      /* messages back to back, every burst ms */
	int64_t spin_ns;
	int npasses;    /* warm-up + measured */
	size_t cap;     /* latency samples per pass */
	struct paced_shared *sh;
	int64_t *lat;   /* [pass][i], shared */
	uint64_t *nlat; /* per pass, shared */
};

static int64_t paced_pass_ns(int p)
{
	int64_t d = p == 0 ? bench_cfg.warmup_ns : bench_cfg.pass_ns;

	return bench_cfg.smoke || d >= PACED_MIN_PASS_NS ? d : PACED_MIN_PASS_NS;
}

static int sleep_until(int64_t t)
{
	struct timespec ts = {.tv_sec = t / 1000000000, .tv_nsec = t % 1000000000};
	int r;

	/* now_mono_ns() is CLOCK_MONOTONIC. */
	while ((r = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL)) == EINTR)
		;
	return r;
}

static int paced_send(struct paced *c, shmbus_bus *bus, shmbus_pub *pub, uint32_t pass,
		      uint32_t end)
{
	struct paced_msg m = {.pass = pass, .end = end};
	int r;

	m.sent_ns = now_mono_ns();
	if ((r = shmbus_pub_send(pub, &m, sizeof(m), NULL)) != 0) {
		bench_bus_report(c->name, bus, "shmbus_pub_send", r);
		return -1;
	}
	return 0;
}

static int paced_publisher(struct paced *c, shmbus_bus *bus)
{
	int64_t period = (int64_t)c->burst * 1000000000 / PACED_RATE_HZ;
	shmbus_pub *pub;
	shmbus_sub *none;
	int rc = -1;

	if (bench_bus_open_pair(c->name, bus, c->topic, NULL, sizeof(struct paced_msg), 0, 0, &pub,
				&none) != 0)
		return -1;
	if (bench_barrier_wait(&c->sh->barrier) != 0)
		goto out;
	for (int p = 0; p < c->npasses; p++) {
		int64_t t0, next;

		if (bench_barrier_wait(&c->sh->barrier) != 0)
			goto out;
		t0 = next = now_mono_ns();
		while (next - t0 < paced_pass_ns(p)) {
			if (sleep_until(next) != 0) {
				bench_fail(c->name, "clock_nanosleep failed");
				goto out;
			}
			for (int i = 0; i < c->burst; i++)
				if (paced_send(c, bus, pub, (uint32_t)p, 0) != 0)
					goto out;
			next += period;
		}
		if (sleep_until(next) != 0 || paced_send(c, bus, pub, (uint32_t)p, 1) != 0 ||
		    bench_barrier_wait(&c->sh->barrier) != 0)
			goto out;
	}
	rc = 0;
out:
	if (rc != 0)
		bench_barrier_break(&c->sh->barrier);
	shmbus_pub_close(pub);
	return rc;
}

static int64_t cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static long sleeps(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_nvcsw;
}

/* Take pass p's messages until its end marker. 0 or -1. */
static int paced_sub_pass(struct paced *c, shmbus_bus *bus, shmbus_sub *sub, int p)
{
	struct paced_pass *ps = &c->sh->pass[p];
	int64_t *lat = c->lat + (size_t)p * c->cap;
	int64_t t0 = 0, c0 = 0;
	long s0 = 0;
	bool first = true;

	for (;;) {
		struct paced_msg m;
		int r = shmbus_sub_take(sub, &m, sizeof(m), NULL);
		int64_t now = now_mono_ns();

		if (r == SHMBUS_EAGAIN) {
			r = shmbus_sub_wait(sub, BUS_TIMEOUT_NS);
			if (r != 0) {
				bench_bus_report(c->name, bus, "shmbus_sub_wait", r);
				return -1;
			}
			continue;
		}
		if (r != 0) {
			bench_bus_report(c->name, bus, "shmbus_sub_take", r);
			return -1;
		}
		if (m.pass != (uint32_t)p) {
			bench_fail(c->name, "a message of pass %u in pass %d", m.pass, p);
			return -1;
		}
		if (m.end) {
			ps->wall_ns = now - t0;
			ps->cpu_ns = cpu_ns() - c0;
			ps->sleeps = sleeps() - s0;
			return 0;
		}
		if (first) {
			/* The span starts once the subscriber is in step. */
			first = false;
			t0 = now;
			c0 = cpu_ns();
			s0 = sleeps();
			continue;
		}
		if (c->nlat[p] < c->cap)
			lat[c->nlat[p]++] = now - m.sent_ns;
		ps->msgs++;
	}
}

static int paced_subscriber(struct paced *c, shmbus_bus *bus)
{
	shmbus_pub *none;
	shmbus_sub *sub;
	int rc = -1;

	if (bench_bus_open_pair(c->name, bus, NULL, c->topic, sizeof(struct paced_msg), 0,
				c->spin_ns, &none, &sub) != 0)
		return -1;
	if (bench_barrier_wait(&c->sh->barrier) != 0)
		goto out;
	for (int p = 0; p < c->npasses; p++)
		if (bench_barrier_wait(&c->sh->barrier) != 0 || paced_sub_pass(c, bus, sub, p) != 0 ||
		    bench_barrier_wait(&c->sh->barrier) != 0)
			goto out;
	rc = 0;
out:
	if (rc != 0)
		bench_barrier_break(&c->sh->barrier);
	shmbus_sub_close(sub);
	return rc;
}

/* Child 0 subscribes (cpu_b), child 1 publishes (cpu_a). */
static int paced_role(void *arg, shmbus_bus *bus, int index)
{
	struct paced *c = arg;

	return index == 0 ? paced_subscriber(c, bus) : paced_publisher(c, bus);
}

static int paced_child(void *arg, int index)
{
	struct paced *c = arg;

	return bench_bus_child(c->name, &c->sh->barrier, paced_role, c, index);
}

static void paced_rows(struct paced *c, const char *variant)
{
	struct bench_samples s = {0};
	double wakes[64], cpu[64], awake[64];
	uint64_t msgs = 0;
	long nsleeps = 0;
	int n = 0;
	char name[48];
	struct bench_row *r;

	if (bench_samples_init(&s, c->cap * (size_t)c->npasses) != 0) {
		bench_fail(c->name, "out of memory");
		return;
	}
	for (int p = 1; p < c->npasses; p++) {
		const struct paced_pass *ps = &c->sh->pass[p];
		size_t from = s.n;

		if (ps->msgs == 0 || ps->wall_ns <= 0)
			continue;
		memcpy(s.v + s.n, c->lat + (size_t)p * c->cap, c->nlat[p] * sizeof(int64_t));
		s.n += c->nlat[p];
		bench_samples_end_pass(&s, from);
		/* The span's messages: the samples after the first, and the
		 * end marker. */
		wakes[n] = (double)ps->sleeps / (double)(ps->msgs + 1);
		cpu[n] = 100.0 * (double)ps->cpu_ns / (double)ps->wall_ns;
		size_t soon = 0;
		for (size_t i = from; i < s.n; i++)
			soon += s.v[i] < PACED_AWAKE_NS;
		awake[n] = s.n > from ? 100.0 * (double)soon / (double)(s.n - from) : 0;
		msgs += ps->msgs + 1;
		nsleeps += ps->sleeps;
		n++;
	}
	if (n == 0) {
		printf("%s: the subscriber saw no pass in this round\n", c->name);
		bench_samples_free(&s);
		return;
	}
	r = bench_row_latency(c->name, 64, &s);
	if (c->spin_ns != 0) {
		snprintf(name, sizeof(name), "paced_%ssleep", c->burst > 1 ? "burst_" : "");
		bench_row_set_floor(r, name, 64);
	}
	bench_row_note(r, "publish to take, 1 kHz%s, subscriber in shmbus_sub_wait, %s",
		       c->burst > 1 ? " in bursts of 8 every 8 ms" : "",
		       c->spin_ns ? "default options (SHMBUS_SPIN_AUTO)" : "spin_ns = 0");
	snprintf(name, sizeof(name), "paced_%s_wakes", variant);
	r = bench_row_values(name, 64, wakes, n, "/msg");
	bench_row_note(r, "the subscriber's sleeps in the kernel per message (voluntary context "
			  "switches; last round %ld for %llu messages)",
		       nsleeps, (unsigned long long)msgs);
	snprintf(name, sizeof(name), "paced_%s_cpu", variant);
	r = bench_row_values(name, 64, cpu, n, "%");
	bench_row_note(r, "the subscriber's CPU time, %% of one core");
	snprintf(name, sizeof(name), "paced_%s_awake", variant);
	r = bench_row_values(name, 64, awake, n, "%");
	bench_row_note(r, "messages taken within %d us of their publish, %% (found the subscriber "
			  "awake: a kernel wake-up alone costs more, floor_futex)",
		       PACED_AWAKE_NS / 1000);
	bench_samples_free(&s);
}

static int run_variant(const char *variant, int burst, int64_t spin_ns)
{
	struct paced c = {.burst = burst, .spin_ns = spin_ns, .npasses = bench_cfg.passes + 1};
	int cpus[2] = {bench_cfg.cpu_b, bench_cfg.cpu_a};
	size_t lat_size, nlat_size;
	pid_t pids[2];
	int rc = -1;

	snprintf(c.name, sizeof(c.name), "paced_%s", variant);
	if (!bench_selected(c.name))
		return 0;
	snprintf(c.topic, sizeof(c.topic), "bench/paced/%s", variant);
	c.cap = (size_t)(paced_pass_ns(1) / (1000000000 / PACED_RATE_HZ)) + 64;
	if (c.cap < (size_t)(paced_pass_ns(0) / (1000000000 / PACED_RATE_HZ)) + 64)
		c.cap = (size_t)(paced_pass_ns(0) / (1000000000 / PACED_RATE_HZ)) + 64;
	lat_size = c.cap * (size_t)c.npasses * sizeof(int64_t);
	nlat_size = (size_t)c.npasses * sizeof(uint64_t);
	c.sh = bench_shm_alloc(sizeof(*c.sh));
	c.lat = bench_shm_alloc(lat_size);
	c.nlat = bench_shm_alloc(nlat_size);
	if (!c.sh || !c.lat || !c.nlat) {
		bench_fail(c.name, "out of memory");
		goto out;
	}
	bench_barrier_init(&c.sh->barrier, 2);
	if (bench_spawn(2, cpus, paced_child, &c, pids) != 0) {
		bench_fail(c.name, "fork failed");
		goto out;
	}
	if (bench_reap(2, pids, (int64_t)c.npasses * (paced_pass_ns(1) + BUS_TIMEOUT_NS)) != 0) {
		bench_fail(c.name, "a participant failed");
		goto out;
	}
	paced_rows(&c, variant);
	rc = 0;
out:
	bench_shm_free(c.sh, sizeof(*c.sh));
	bench_shm_free(c.lat, lat_size);
	bench_shm_free(c.nlat, nlat_size);
	return rc;
}

int bench_paced_run(void)
{
	int failed = 0;

	failed += run_variant("sleep", 1, 0) != 0;
	failed += run_variant("auto", 1, SHMBUS_SPIN_AUTO) != 0;
	failed += run_variant("burst_sleep", 8, 0) != 0;
	failed += run_variant("burst_auto", 8, SHMBUS_SPIN_AUTO) != 0;
	return failed;
}
