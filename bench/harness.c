/*
 * harness.c - what every benchmark case shares: the clock, pinning, shared
 * memory and children, the futex barrier, statistics, the result rows and
 * the generic two-process ping-pong driver.
 */
#include "bench.h"

#include <errno.h>
#include <linux/futex.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct bench_config bench_cfg;
bool bench_child_exit_cleanly;
int bench_round;

const size_t bench_sizes[] = {64, 4 * BENCH_KIB, 64 * BENCH_KIB, BENCH_MIB, 8 * BENCH_MIB};
size_t bench_nsizes = sizeof(bench_sizes) / sizeof(bench_sizes[0]);
const size_t bench_tput_sizes[] = {64, BENCH_MIB, 8 * BENCH_MIB};
size_t bench_ntput_sizes = sizeof(bench_tput_sizes) / sizeof(bench_tput_sizes[0]);

uint32_t bench_tput_slots(size_t size)
{
	/* Enough that a subscriber on the other core keeps up at 64 B; at
	 * 1 MiB, 16 slots are 16 MiB of ring. */
	return size <= 4 * BENCH_KIB ? 256 : 16;
}

int bench_pin(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set) != 0)
		return -errno;
	return 0;
}

void *bench_shm_alloc(size_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	memset(p, 0, size);
	return p;
}

void bench_shm_free(void *p, size_t size)
{
	if (p)
		munmap(p, size);
}

int bench_spawn(int n, const int *cpus, int (*fn)(void *arg, int index), void *arg,
		pid_t *pids)
{
	fflush(stdout);
	fflush(stderr);
	for (int i = 0; i < n; i++) {
		pid_t pid = fork();

		if (pid < 0) {
			for (int j = 0; j < i; j++)
				kill(pids[j], SIGKILL);
			bench_reap(i, pids, 1000000000);
			return -1;
		}
		if (pid == 0) {
			int rc;

			if (bench_pin(cpus[i]) != 0) {
				fprintf(stderr, "bench: cannot pin child to cpu %d\n", cpus[i]);
				_exit(3);
			}
			rc = fn(arg, i);
			fflush(stdout);
			fflush(stderr);
			if (bench_child_exit_cleanly)
				exit(rc == 0 ? 0 : 1);
			/* _exit: the parent's atexit handlers and stdio buffers
			 * belong to the parent. */
			_exit(rc == 0 ? 0 : 1);
		}
		pids[i] = pid;
	}
	return 0;
}

int bench_reap(int n, pid_t *pids, int64_t timeout_ns)
{
	int64_t deadline = now_mono_ns() + timeout_ns;
	int failed = 0, left = n;
	bool done[BENCH_MAX_PROCS] = {false};

	while (left > 0) {
		for (int i = 0; i < n; i++) {
			int status;
			pid_t r;

			if (done[i])
				continue;
			r = waitpid(pids[i], &status, WNOHANG);
			if (r == 0)
				continue;
			done[i] = true;
			left--;
			if (r < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
				failed++;
		}
		if (left == 0)
			break;
		if (now_mono_ns() > deadline) {
			for (int i = 0; i < n; i++) {
				if (!done[i]) {
					kill(pids[i], SIGKILL);
					waitpid(pids[i], NULL, 0);
					failed++;
				}
			}
			break;
		}
		usleep(1000);
	}
	return failed ? -1 : 0;
}

int bench_futex_wait(_Atomic uint32_t *word, uint32_t expected, int64_t timeout_ns)
{
	struct timespec ts = {
		.tv_sec = (time_t)(timeout_ns / 1000000000),
		.tv_nsec = (long)(timeout_ns % 1000000000),
	};

	return (int)syscall(SYS_futex, word, FUTEX_WAIT, expected, timeout_ns < 0 ? NULL : &ts,
			    NULL, 0);
}

int bench_futex_wake(_Atomic uint32_t *word, int n)
{
	return (int)syscall(SYS_futex, word, FUTEX_WAKE, n, NULL, NULL, 0);
}

void bench_barrier_init(struct bench_barrier *b, uint32_t parties)
{
	atomic_store_explicit(&b->arrived, 0, memory_order_relaxed);
	atomic_store_explicit(&b->generation, 0, memory_order_relaxed);
	atomic_store_explicit(&b->broken, 0, memory_order_relaxed);
	b->parties = parties;
}

void bench_barrier_break(struct bench_barrier *b)
{
	atomic_store_explicit(&b->broken, 1, memory_order_relaxed);
	/* Bump the generation so that sleepers wake and see `broken`. */
	atomic_fetch_add_explicit(&b->generation, 1, memory_order_release);
	bench_futex_wake(&b->generation, INT32_MAX);
}

int bench_barrier_wait(struct bench_barrier *b)
{
	/* Acquire: what the previous generation's parties wrote before they
	 * arrived is visible once we see the generation move. */
	uint32_t gen = atomic_load_explicit(&b->generation, memory_order_acquire);
	int64_t deadline = now_mono_ns() + 30 * (int64_t)1000000000;

	if (atomic_load_explicit(&b->broken, memory_order_relaxed))
		return -1;
	/* acq_rel: publishes our writes to the last arriver and, for the last
	 * one, takes everyone else's. */
	if (atomic_fetch_add_explicit(&b->arrived, 1, memory_order_acq_rel) + 1 == b->parties) {
		atomic_store_explicit(&b->arrived, 0, memory_order_relaxed);
		/* Release pairs with the acquire loads of the waiters below. */
		atomic_fetch_add_explicit(&b->generation, 1, memory_order_release);
		bench_futex_wake(&b->generation, INT32_MAX);
		return 0;
	}
	while (atomic_load_explicit(&b->generation, memory_order_acquire) == gen) {
		if (now_mono_ns() > deadline) {
			bench_barrier_break(b);
			return -1;
		}
		bench_futex_wait(&b->generation, gen, 100000000);
	}
	return atomic_load_explicit(&b->broken, memory_order_relaxed) ? -1 : 0;
}

/* ---------------------------------------------------------- statistics */

int bench_samples_init(struct bench_samples *s, size_t cap)
{
	memset(s, 0, sizeof(*s));
	s->v = malloc(cap * sizeof(*s->v));
	if (!s->v)
		return -1;
	s->cap = cap;
	return 0;
}

void bench_samples_free(struct bench_samples *s)
{
	free(s->v);
	s->v = NULL;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

double bench_percentile(int64_t *v, size_t n, double p)
{
	size_t rank;

	if (n == 0)
		return NAN;
	qsort(v, n, sizeof(*v), cmp_i64);
	rank = (size_t)ceil(p * (double)n);
	if (rank < 1)
		rank = 1;
	if (rank > n)
		rank = n;
	return (double)v[rank - 1];
}

double bench_median_of(const double *x, int n)
{
	double tmp[64];

	if (n <= 0 || n > 64)
		return NAN;
	memcpy(tmp, x, (size_t)n * sizeof(*x));
	qsort(tmp, (size_t)n, sizeof(*tmp), cmp_double);
	return n % 2 ? tmp[n / 2] : (tmp[n / 2 - 1] + tmp[n / 2]) / 2;
}

double bench_spread_pct(const double *x, int n)
{
	double lo = INFINITY, hi = -INFINITY, med = bench_median_of(x, n);

	if (n <= 0 || !(med > 0))
		return NAN;
	for (int i = 0; i < n; i++) {
		lo = fmin(lo, x[i]);
		hi = fmax(hi, x[i]);
	}
	return (hi - lo) / med * 100;
}

void bench_samples_end_pass(struct bench_samples *s, size_t from)
{
	size_t n = s->n - from;
	int64_t *tmp;

	if (s->passes >= 64)
		return;
	s->pass_median[s->passes] = NAN;
	if (n > 0 && (tmp = malloc(n * sizeof(*tmp))) != NULL) {
		memcpy(tmp, s->v + from, n * sizeof(*tmp));
		s->pass_median[s->passes] = bench_percentile(tmp, n, 0.5);
		free(tmp);
	}
	s->passes++;
}

uint64_t bench_iters_for(int64_t ns_per_iter)
{
	uint64_t n = ns_per_iter > 0 ? (uint64_t)(bench_cfg.pass_ns / ns_per_iter) : 0;

	if (n < bench_cfg.min_iters)
		n = bench_cfg.min_iters;
	if (n > bench_cfg.max_iters)
		n = bench_cfg.max_iters;
	return n;
}

struct bench_row *bench_batched(const char *name, size_t size, int (*batch)(void *ctx),
				void *ctx, size_t scale)
{
	struct bench_samples s;
	struct bench_row *r = NULL;
	int64_t t0, t1, warm = 0;
	uint64_t iters;

	if (bench_samples_init(&s, (size_t)bench_cfg.passes * bench_cfg.max_iters) != 0) {
		bench_fail(name, "out of memory");
		return NULL;
	}
	bench_pin(bench_cfg.cpu_a);
	t0 = now_mono_ns();
	do {
		if (batch(ctx) != 0)
			goto out;
		warm++;
		t1 = now_mono_ns();
	} while (t1 - t0 < bench_cfg.warmup_ns || warm < 3);
	iters = bench_iters_for((t1 - t0) / warm);
	for (int p = 0; p < bench_cfg.passes; p++) {
		size_t from = s.n;

		for (uint64_t i = 0; i < iters; i++) {
			int64_t a = now_mono_ns();

			if (batch(ctx) != 0)
				goto out;
			s.v[s.n++] = now_mono_ns() - a; /* per batch */
		}
		bench_samples_end_pass(&s, from);
	}
	if (s.n > 0) {
		r = bench_row_latency(name, size, &s);
		r->scale = (double)scale;
	}
out:
	bench_samples_free(&s);
	return r;
}

/* ----------------------------------------------------------------- rows */

static struct bench_row *rows;
static size_t nrows, caprows;

static struct bench_row *row_get(const char *name, uint64_t size)
{
	struct bench_row *r;

	for (size_t i = 0; i < nrows; i++)
		if (rows[i].size == size && strcmp(rows[i].name, name) == 0)
			return &rows[i];
	if (nrows == caprows) {
		size_t cap = caprows ? caprows * 2 : 64;
		struct bench_row *n = realloc(rows, cap * sizeof(*n));

		if (!n) {
			fprintf(stderr, "bench: out of memory\n");
			exit(1);
		}
		rows = n;
		caprows = cap;
	}
	r = &rows[nrows++];
	memset(r, 0, sizeof(*r));
	snprintf(r->name, sizeof(r->name), "%s", name);
	r->size = size;
	r->scale = 1;
	r->median_ns = r->p99_ns = r->p999_ns = NAN;
	r->msgs_per_s = r->gb_per_s = r->spread_pct = r->ratio = NAN;
	r->ratio_peer = r->lost_pct = r->value = NAN;
	return r;
}

void bench_row_set_peer(struct bench_row *r, const char *peer_name, uint64_t peer_size)
{
	snprintf(r->peer_name, sizeof(r->peer_name), "%s", peer_name);
	r->peer_size = peer_size;
}

void bench_row_note(struct bench_row *r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(r->note, sizeof(r->note), fmt, ap);
	va_end(ap);
}

void bench_row_set_floor(struct bench_row *r, const char *floor_name, uint64_t floor_size)
{
	if (!floor_name)
		return;
	snprintf(r->floor_name, sizeof(r->floor_name), "%s", floor_name);
	r->floor_size = floor_size;
}

struct bench_row *bench_row_latency(const char *name, uint64_t size, struct bench_samples *s)
{
	struct bench_row *r = row_get(name, size);

	if (r->nacc + s->n > r->capacc) {
		size_t cap = (r->nacc + s->n) * 2;
		int64_t *n = realloc(r->acc, cap * sizeof(*n));

		if (!n) {
			fprintf(stderr, "bench: out of memory\n");
			exit(1);
		}
		r->acc = n;
		r->capacc = cap;
	}
	if (s->n > 0)
		memcpy(r->acc + r->nacc, s->v, s->n * sizeof(*s->v));
	r->nacc += s->n;
	for (int p = 0; p < s->passes && r->npass < 64; p++)
		r->pass_vals[r->npass++] = s->pass_median[p];
	return r;
}

static struct bench_row *row_pool(const char *name, uint64_t size, const double *vals, int n)
{
	struct bench_row *r = row_get(name, size);

	for (int p = 0; p < n && r->npass < 64; p++)
		r->pass_vals[r->npass++] = vals[p];
	return r;
}

struct bench_row *bench_row_rates(const char *name, uint64_t size, const double *rates,
				  int passes)
{
	struct bench_row *r = row_pool(name, size, rates, passes);

	r->is_rate = true;
	return r;
}

struct bench_row *bench_row_values(const char *name, uint64_t size, const double *values,
				   int n, const char *unit)
{
	struct bench_row *r = row_pool(name, size, values, n);

	r->is_value = true;
	snprintf(r->unit, sizeof(r->unit), "%s", unit);
	return r;
}

void bench_row_add_counts(struct bench_row *r, uint64_t lost, uint64_t total,
			  uint64_t superseded, uint64_t skipped)
{
	r->lost += lost;
	r->total += total;
	r->superseded += superseded;
	r->skipped += skipped;
}

size_t bench_rows_count(void)
{
	return nrows;
}

struct bench_row *bench_rows_get(size_t i)
{
	return i < nrows ? &rows[i] : NULL;
}

struct bench_row *bench_rows_find(const char *name, uint64_t size)
{
	for (size_t i = 0; i < nrows; i++)
		if (rows[i].size == size && strcmp(rows[i].name, name) == 0)
			return &rows[i];
	return NULL;
}

/* Cost of a row: latency when it has one, else time per message. */
static double row_cost(const struct bench_row *r)
{
	if (!isnan(r->median_ns))
		return r->median_ns;
	if (r->msgs_per_s > 0)
		return 1e9 / r->msgs_per_s;
	return NAN;
}

static void row_figures(struct bench_row *r)
{
	size_t len;

	if (r->is_value) {
		r->value = bench_median_of(r->pass_vals, r->npass);
		r->spread_pct = bench_spread_pct(r->pass_vals, r->npass);
		r->samples = (uint64_t)r->npass;
	} else if (r->is_rate) {
		r->msgs_per_s = bench_median_of(r->pass_vals, r->npass);
		r->gb_per_s = r->msgs_per_s * (double)r->size / 1e9;
		r->spread_pct = bench_spread_pct(r->pass_vals, r->npass);
		r->samples = (uint64_t)r->npass;
	} else if (r->nacc > 0) {
		r->median_ns = bench_percentile(r->acc, r->nacc, 0.5) / r->scale;
		r->p99_ns = bench_percentile(r->acc, r->nacc, 0.99) / r->scale;
		r->p999_ns = bench_percentile(r->acc, r->nacc, 0.999) / r->scale;
		r->spread_pct = bench_spread_pct(r->pass_vals, r->npass);
		r->samples = r->nacc;
		if (r->copy_rate && r->median_ns > 0) {
			r->msgs_per_s = 1e9 / r->median_ns;
			r->gb_per_s = (double)r->size / r->median_ns;
		}
	}
	if (r->total > 0)
		r->lost_pct = 100.0 * (double)r->lost / (double)r->total;
	len = strlen(r->note);
	if (r->total > 0)
		len += (size_t)snprintf(r->note + len, len < sizeof(r->note) ? sizeof(r->note) - len : 0,
				"%slost %llu of %llu (%.2f %%)", len ? "; " : "",
				(unsigned long long)r->lost, (unsigned long long)r->total,
				100.0 * (double)r->lost / (double)r->total);
	if ((r->superseded || r->skipped) && len < sizeof(r->note))
		snprintf(r->note + len, sizeof(r->note) - len, "%ssuperseded %llu, skipped %llu",
			 len ? "; " : "", (unsigned long long)r->superseded,
			 (unsigned long long)r->skipped);
}

/* cost(r) / cost(the row `name` at `size`); NAN when there is none. */
static double ratio_to(const struct bench_row *r, const char *name, uint64_t size)
{
	const struct bench_row *o = name[0] ? bench_rows_find(name, size) : NULL;

	return o && row_cost(o) > 0 ? row_cost(r) / row_cost(o) : NAN;
}

void bench_rows_finish(void)
{
	for (size_t i = 0; i < nrows; i++)
		row_figures(&rows[i]);
	for (size_t i = 0; i < nrows; i++) {
		rows[i].ratio = ratio_to(&rows[i], rows[i].floor_name, rows[i].floor_size);
		rows[i].ratio_peer = ratio_to(&rows[i], rows[i].peer_name, rows[i].peer_size);
	}
}

void bench_rows_free(void)
{
	for (size_t i = 0; i < nrows; i++)
		free(rows[i].acc);
	free(rows);
	rows = NULL;
	nrows = caprows = 0;
}

/* ------------------------------------------------------ a case in a child */

#define CHILD_MAX_ROWS 16

/* What a child added to one row, shipped back through shared memory. */
struct child_row {
	char name[48], floor_name[48], peer_name[48], note[160], unit[16];
	uint64_t size, floor_size, peer_size;
	bool is_rate, is_value, copy_rate;
	double scale;
	size_t acc_from, nacc; /* new samples, in child_export.samples */
	int npass;
	double pass_vals[64];
	uint64_t lost, total, superseded, skipped;
};

struct child_export {
	int rc, nrows;
	bool overflow;
	struct child_row rows[CHILD_MAX_ROWS];
	size_t nsamples, cap;
	int64_t samples[];
};

/* A row as it was before the child ran: what it adds is the difference. */
struct row_mark {
	size_t nacc;
	int npass;
	uint64_t lost, total, superseded, skipped;
};

static void child_export_rows(struct child_export *x, const struct row_mark *old, size_t nold)
{
	for (size_t i = 0; i < nrows; i++) {
		const struct bench_row *r = &rows[i];
		struct row_mark m = {0};
		struct child_row *c;

		if (i < nold)
			m = old[i];
		if (i < nold && r->nacc == m.nacc && r->npass == m.npass && r->total == m.total &&
		    r->superseded == m.superseded && r->skipped == m.skipped)
			continue;
		if (x->nrows == CHILD_MAX_ROWS || x->nsamples + (r->nacc - m.nacc) > x->cap) {
			x->overflow = true;
			return;
		}
		c = &x->rows[x->nrows++];
		memcpy(c->name, r->name, sizeof(c->name));
		memcpy(c->floor_name, r->floor_name, sizeof(c->floor_name));
		memcpy(c->peer_name, r->peer_name, sizeof(c->peer_name));
		memcpy(c->note, r->note, sizeof(c->note));
		memcpy(c->unit, r->unit, sizeof(c->unit));
		c->size = r->size;
		c->floor_size = r->floor_size;
		c->peer_size = r->peer_size;
		c->is_rate = r->is_rate;
		c->is_value = r->is_value;
		c->copy_rate = r->copy_rate;
		c->scale = r->scale;
		c->acc_from = x->nsamples;
		c->nacc = r->nacc - m.nacc;
		if (c->nacc > 0)
			memcpy(x->samples + x->nsamples, r->acc + m.nacc, c->nacc * sizeof(int64_t));
		x->nsamples += c->nacc;
		c->npass = r->npass - m.npass;
		memcpy(c->pass_vals, r->pass_vals + m.npass, (size_t)c->npass * sizeof(double));
		c->lost = r->lost - m.lost;
		c->total = r->total - m.total;
		c->superseded = r->superseded - m.superseded;
		c->skipped = r->skipped - m.skipped;
	}
}

static void child_import_rows(const struct child_export *x)
{
	for (int i = 0; i < x->nrows; i++) {
		const struct child_row *c = &x->rows[i];
		struct bench_samples s = {.v = (int64_t *)x->samples + c->acc_from, .n = c->nacc};
		struct bench_row *r;

		/* bench_row_latency pools the samples (no pass medians: those
		 * travel in pass_vals). */
		r = bench_row_latency(c->name, c->size, &s);
		for (int p = 0; p < c->npass && r->npass < 64; p++)
			r->pass_vals[r->npass++] = c->pass_vals[p];
		r->is_rate = c->is_rate;
		r->is_value = c->is_value;
		r->copy_rate = c->copy_rate;
		r->scale = c->scale;
		if (c->unit[0])
			memcpy(r->unit, c->unit, sizeof(r->unit));
		if (c->floor_name[0])
			bench_row_set_floor(r, c->floor_name, c->floor_size);
		if (c->peer_name[0])
			bench_row_set_peer(r, c->peer_name, c->peer_size);
		if (c->note[0])
			memcpy(r->note, c->note, sizeof(r->note));
		bench_row_add_counts(r, c->lost, c->total, c->superseded, c->skipped);
	}
}

struct in_child_arg {
	int (*fn)(void *arg);
	void *arg;
	struct child_export *x;
};

static int in_child_main(void *argp, int index)
{
	struct in_child_arg *a = argp;
	struct row_mark *old = calloc(nrows + 1, sizeof(*old));
	size_t nold = nrows;

	(void)index;
	if (!old)
		return -1;
	for (size_t i = 0; i < nold; i++)
		old[i] = (struct row_mark){rows[i].nacc, rows[i].npass, rows[i].lost,
					   rows[i].total, rows[i].superseded, rows[i].skipped};
	a->x->rc = a->fn(a->arg);
	child_export_rows(a->x, old, nold);
	free(old);
	return 0;
}

int bench_in_child(const char *name, int (*fn)(void *arg), void *arg)
{
	size_t cap = (size_t)bench_cfg.passes * bench_cfg.max_iters * 2 + 1024;
	size_t bytes = sizeof(struct child_export) + cap * sizeof(int64_t);
	struct child_export *x = bench_shm_alloc(bytes);
	struct in_child_arg a = {fn, arg, x};
	int cpu = bench_cfg.cpu_a, rc;
	pid_t pid;

	if (!x) {
		bench_fail(name, "out of memory");
		return -1;
	}
	x->cap = cap;
	x->rc = -1;
	if (bench_spawn(1, &cpu, in_child_main, &a, &pid) != 0) {
		bench_fail(name, "fork: %s", strerror(errno));
		bench_shm_free(x, bytes);
		return -1;
	}
	rc = bench_reap(1, &pid, (int64_t)(bench_cfg.passes + 1) *
					 (bench_cfg.pass_ns + 60 * (int64_t)1000000000));
	if (rc != 0) {
		bench_fail(name, "the child running the case failed");
	} else if (x->overflow) {
		bench_fail(name, "the case added more rows or samples than a child can hand back");
		rc = -1;
	} else {
		child_import_rows(x);
		rc = x->rc;
	}
	bench_shm_free(x, bytes);
	return rc;
}

void bench_fail(const char *case_name, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "bench: %s: ", case_name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

void bench_spin_ns(int64_t ns)
{
	int64_t end = now_mono_ns() + ns;

	while (now_mono_ns() < end)
		;
}

bool bench_selected(const char *name)
{
	const char *p = bench_cfg.only;

	if (!p)
		return true;
	/* A comma-separated list of substrings. */
	while (*p) {
		size_t n = strcspn(p, ",");
		char part[64];

		if (n > 0 && n < sizeof(part)) {
			memcpy(part, p, n);
			part[n] = '\0';
			if (strstr(name, part))
				return true;
		}
		p += n + (p[n] == ',');
	}
	return false;
}
