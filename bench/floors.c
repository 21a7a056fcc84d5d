/*
 * floors.c - what the machine itself costs, measured the way the bus cases
 * are: two processes ping-ponging through shared memory we map ourselves,
 * waiting by polling an atomic (polling floor) or in futex wait/wake
 * (blocking floor); memcpy at each size (bandwidth floor); and a minimal
 * lossless single-producer ring (streaming floor).
 *
 * The ping-pong floors move the payload the way a copying bus must: the
 * sender copies it into shared memory and publishes a sequence number with
 * a release store; the receiver sees it with an acquire load and copies
 * the payload out. At 64 B that is one payload line and one flag line
 * crossing between the cores.
 */
#include "bench.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FLOOR_TIMEOUT_NS (10 * (int64_t)1000000000)

/* ---------------------------------------------------- ping-pong floors */

struct shm_pp_flags {
	/* Each word has its own line so that the two writers never share
	 * one. */
	_Alignas(BENCH_CACHE_LINE) _Atomic uint32_t ping; /* initiator's sequence */
	_Alignas(BENCH_CACHE_LINE) _Atomic uint32_t pong; /* echoer's sequence */
};

struct shm_pp {
	struct shm_pp_flags *flags;
	unsigned char *ping_buf, *pong_buf; /* shared */
	size_t map_size, size;
	bool futex;
	unsigned char *priv; /* this process's own buffer */
	uint32_t seq;        /* last sequence number sent or seen */
};

/* Wait until *w != old; spins (polling) or sleeps in the kernel (futex).
 * Bounded: gives up after FLOOR_TIMEOUT_NS so a dead peer cannot hang us. */
static int await_change(_Atomic uint32_t *w, uint32_t old, bool futex, uint32_t *out)
{
	uint32_t v;
	unsigned spins = 0;
	int64_t deadline = 0;

	/* Acquire pairs with the peer's release store of the word: the
	 * payload it copied before is visible once we see the new value. */
	while ((v = atomic_load_explicit(w, memory_order_acquire)) == old) {
		if (futex) {
			if (bench_futex_wait(w, old, 100000000) == 0 || errno != ETIMEDOUT)
				continue;
		} else if (++spins % 4096 != 0) {
			continue;
		}
		if (!deadline)
			deadline = now_mono_ns() + FLOOR_TIMEOUT_NS;
		else if (now_mono_ns() > deadline)
			return -1;
	}
	*out = v;
	return 0;
}

static void announce(_Atomic uint32_t *w, uint32_t v, bool futex)
{
	/* Release: the payload copied before this store travels with it. */
	atomic_store_explicit(w, v, memory_order_release);
	if (futex)
		bench_futex_wake(w, 1);
}

static int shm_pp_setup(void *ctx, int role)
{
	struct shm_pp *c = ctx;

	(void)role;
	c->priv = malloc(c->size);
	if (!c->priv)
		return -1;
	memset(c->priv, 0x5a, c->size);
	c->seq = 0;
	return 0;
}

static void shm_pp_teardown(void *ctx, int role)
{
	struct shm_pp *c = ctx;

	(void)role;
	free(c->priv);
	c->priv = NULL;
}

static int shm_pp_ping(void *ctx, enum bench_cmd cmd)
{
	struct shm_pp *c = ctx;
	uint64_t word = (uint64_t)cmd;
	uint32_t v;

	memcpy(c->priv, &word, sizeof(word));
	memcpy(c->ping_buf, c->priv, c->size);
	announce(&c->flags->ping, ++c->seq, c->futex);
	if (cmd == BENCH_CMD_STOP)
		return 0;
	if (await_change(&c->flags->pong, c->seq - 1, c->futex, &v) != 0)
		return -1;
	memcpy(c->priv, c->pong_buf, c->size);
	return 0;
}

static int shm_pp_echo(void *ctx)
{
	struct shm_pp *c = ctx;
	uint64_t word;
	uint32_t v;

	if (await_change(&c->flags->ping, c->seq, c->futex, &v) != 0)
		return -1;
	c->seq = v;
	memcpy(c->priv, c->ping_buf, c->size);
	memcpy(&word, c->priv, sizeof(word));
	if (word == BENCH_CMD_STOP)
		return BENCH_CMD_STOP;
	memcpy(c->pong_buf, c->priv, c->size);
	announce(&c->flags->pong, v, c->futex);
	return BENCH_CMD_ECHO;
}

static const struct bench_pingpong_ops shm_pp_ops = {
	.setup = shm_pp_setup,
	.ping = shm_pp_ping,
	.echo = shm_pp_echo,
	.teardown = shm_pp_teardown,
};

static size_t round_up(size_t n, size_t to)
{
	return (n + to - 1) / to * to;
}

static int run_shm_pingpong(const char *name, size_t size, bool futex)
{
	struct shm_pp c = {.size = size, .futex = futex};
	size_t flags = round_up(sizeof(struct shm_pp_flags), 4096);
	unsigned char *base;
	int rc;

	c.map_size = flags + 2 * round_up(size, 4096);
	base = bench_shm_alloc(c.map_size);
	if (!base) {
		bench_fail(name, "cannot map %zu bytes", c.map_size);
		return -1;
	}
	c.flags = (struct shm_pp_flags *)(void *)base;
	c.ping_buf = base + flags;
	c.pong_buf = c.ping_buf + round_up(size, 4096);
	rc = bench_pingpong(name, size, &shm_pp_ops, &c, NULL, 0);
	bench_shm_free(base, c.map_size);
	return rc;
}

/* The bare cache line: both processes take turns writing one word of one
 * line (odd: the initiator's turn is done, even: the echoer's), with the
 * command in the same line. No payload is copied: this is the least that
 * any hand-over between the two cores can cost. */
struct line_pp {
	struct line_shared {
		_Alignas(BENCH_CACHE_LINE) _Atomic uint32_t word;
		_Atomic uint32_t cmd;
	} *sh;
	bool futex;
	uint32_t seen;
};

static int line_setup(void *ctx, int role)
{
	(void)role;
	((struct line_pp *)ctx)->seen = 0;
	return 0;
}

static void line_teardown(void *ctx, int role)
{
	(void)ctx;
	(void)role;
}

static int line_ping(void *ctx, enum bench_cmd cmd)
{
	struct line_pp *c = ctx;
	uint32_t v;

	/* Relaxed: the release store of the word below carries it. */
	atomic_store_explicit(&c->sh->cmd, (uint32_t)cmd, memory_order_relaxed);
	announce(&c->sh->word, c->seen + 1, c->futex);
	if (cmd == BENCH_CMD_STOP)
		return 0;
	if (await_change(&c->sh->word, c->seen + 1, c->futex, &v) != 0)
		return -1;
	c->seen = v;
	return 0;
}

static int line_echo(void *ctx)
{
	struct line_pp *c = ctx;
	uint32_t v;

	if (await_change(&c->sh->word, c->seen, c->futex, &v) != 0)
		return -1;
	if (atomic_load_explicit(&c->sh->cmd, memory_order_relaxed) == BENCH_CMD_STOP)
		return BENCH_CMD_STOP;
	c->seen = v + 1;
	announce(&c->sh->word, v + 1, c->futex);
	return BENCH_CMD_ECHO;
}

static const struct bench_pingpong_ops line_pp_ops = {
	.setup = line_setup,
	.ping = line_ping,
	.echo = line_echo,
	.teardown = line_teardown,
};

static int run_line_pingpong(const char *name, bool futex)
{
	struct line_pp c = {.futex = futex};
	int rc;

	c.sh = bench_shm_alloc(sizeof(*c.sh));
	if (!c.sh) {
		bench_fail(name, "out of memory");
		return -1;
	}
	rc = bench_pingpong(name, BENCH_CACHE_LINE, &line_pp_ops, &c, NULL, 0);
	if (rc == 0)
		snprintf(bench_rows_find(name, BENCH_CACHE_LINE)->note,
			 sizeof(((struct bench_row *)0)->note), "one shared line, no payload copied");
	bench_shm_free(c.sh, sizeof(*c.sh));
	return rc;
}

/* ------------------------------------------------- seqlock ping-pong */

/* floor_shm_poll with the bus's slot protocol instead of a bare flag, to
 * tell the cost of the protocol from the cost of the bus around it: the
 * writer claims the slot with a CAS on the state word the reader is
 * polling, copies the payload, stores size and time into the same line and
 * commits with a second CAS; the reader checks the state before and after
 * copying (seqlock). One slot per direction. */
struct seq_slot {
	_Alignas(BENCH_CACHE_LINE) _Atomic uint64_t state; /* (seq << 1) | busy */
	_Atomic uint32_t size;
	_Atomic int64_t stamp;
	_Alignas(BENCH_CACHE_LINE) unsigned char payload[];
};

struct seq_pp {
	unsigned char *base;
	size_t map_size, size, slot_bytes;
	unsigned char *priv;
	uint64_t seq;
};

static struct seq_slot *seq_slot(struct seq_pp *c, int dir)
{
	return (struct seq_slot *)(void *)(c->base + (size_t)dir * c->slot_bytes);
}

static void seq_write(struct seq_pp *c, int dir, uint64_t seq)
{
	struct seq_slot *s = seq_slot(c, dir);
	uint64_t cur = atomic_load_explicit(&s->state, memory_order_relaxed);

	/* Claim: acquire like the bus's claim CAS (the reader is polling
	 * this very line), then a release fence before the payload writes
	 * (seqlock writer side). */
	while (!atomic_compare_exchange_weak_explicit(&s->state, &cur, (seq << 1) | 1,
						      memory_order_acquire, memory_order_relaxed))
		;
	atomic_thread_fence(memory_order_release);
	memcpy(s->payload, c->priv, c->size);
	/* Relaxed: published by the commit below. */
	atomic_store_explicit(&s->size, (uint32_t)c->size, memory_order_relaxed);
	atomic_store_explicit(&s->stamp, now_mono_ns(), memory_order_relaxed);
	cur = (seq << 1) | 1;
	/* seq_cst commit CAS, as the bus's. */
	atomic_compare_exchange_strong_explicit(&s->state, &cur, seq << 1, memory_order_seq_cst,
						memory_order_relaxed);
}

/* Wait for message `seq` in direction dir and copy it out. */
static int seq_read(struct seq_pp *c, int dir, uint64_t seq)
{
	struct seq_slot *s = seq_slot(c, dir);
	unsigned spins = 0;
	int64_t deadline = 0;

	for (;;) {
		/* Acquire pairs with the commit CAS. */
		uint64_t st = atomic_load_explicit(&s->state, memory_order_acquire);

		if (st == seq << 1) {
			uint32_t n = atomic_load_explicit(&s->size, memory_order_relaxed);

			memcpy(c->priv, s->payload, n <= c->size ? n : c->size);
			atomic_thread_fence(memory_order_acquire);
			if (atomic_load_explicit(&s->state, memory_order_relaxed) == st)
				return 0;
		}
		if (++spins % 4096 == 0) {
			if (!deadline)
				deadline = now_mono_ns() + FLOOR_TIMEOUT_NS;
			else if (now_mono_ns() > deadline)
				return -1;
		}
	}
}

static int seq_setup(void *ctx, int role)
{
	struct seq_pp *c = ctx;

	(void)role;
	c->seq = 0;
	c->priv = malloc(c->size);
	if (!c->priv)
		return -1;
	memset(c->priv, 0, c->size);
	return 0;
}

static void seq_teardown(void *ctx, int role)
{
	struct seq_pp *c = ctx;

	(void)role;
	free(c->priv);
	c->priv = NULL;
}

static int seq_ping(void *ctx, enum bench_cmd cmd)
{
	struct seq_pp *c = ctx;
	uint64_t word = (uint64_t)cmd;

	memcpy(c->priv, &word, sizeof(word));
	seq_write(c, 0, ++c->seq);
	if (cmd == BENCH_CMD_STOP)
		return 0;
	return seq_read(c, 1, c->seq);
}

static int seq_echo(void *ctx)
{
	struct seq_pp *c = ctx;
	uint64_t word;

	if (seq_read(c, 0, ++c->seq) != 0)
		return -1;
	memcpy(&word, c->priv, sizeof(word));
	if (word == BENCH_CMD_STOP)
		return BENCH_CMD_STOP;
	seq_write(c, 1, c->seq);
	return BENCH_CMD_ECHO;
}

static const struct bench_pingpong_ops seq_pp_ops = {
	.setup = seq_setup,
	.ping = seq_ping,
	.echo = seq_echo,
	.teardown = seq_teardown,
};

static int run_seq_pingpong(const char *name, size_t size)
{
	struct seq_pp c = {.size = size};
	int rc;

	c.slot_bytes = round_up(sizeof(struct seq_slot) + size, 4096);
	c.map_size = 2 * c.slot_bytes;
	c.base = bench_shm_alloc(c.map_size);
	if (!c.base) {
		bench_fail(name, "cannot map %zu bytes", c.map_size);
		return -1;
	}
	rc = bench_pingpong(name, size, &seq_pp_ops, &c, "floor_shm_poll", size);
	if (rc == 0)
		snprintf(bench_rows_find(name, size)->note, sizeof(((struct bench_row *)0)->note),
			 "the bus's slot protocol alone: claim CAS, copy, commit CAS");
	bench_shm_free(c.base, c.map_size);
	return rc;
}

/* --------------------------------------------------- one-way wake-up */

/* The floor of fanout_lat: the parent (cpu_a) stamps the time, bumps a
 * futex word and wakes the child (cpu_b), which sleeps in FUTEX_WAIT and
 * records now - stamp; the parent waits for its ack, then leaves it
 * BENCH_WAKE_GAP_NS to fall asleep again. Unlike the ping-pong, the waking
 * side never sleeps, exactly as a publisher streaming to sleepers. */

#define WAKE_PER_PASS_MAX 20000

struct wake_shared {
	struct bench_barrier barrier;
	/* Release/acquire pair: the stamp travels with the word. */
	_Alignas(BENCH_CACHE_LINE) _Atomic uint32_t word;
	_Atomic int64_t stamp;
	_Atomic uint32_t pass; /* pass of this message; UINT32_MAX: stop */
	_Alignas(BENCH_CACHE_LINE) _Atomic uint64_t acks;
	uint64_t count;
};

struct wake {
	struct wake_shared *sh;
	int64_t *lat;
	uint8_t *pass;
	size_t cap;
};

static int wake_child(void *arg, int index)
{
	struct wake *w = arg;
	uint32_t seen = 0, v;
	uint64_t n = 0;

	(void)index;
	if (bench_barrier_wait(&w->sh->barrier) != 0)
		return -1;
	for (;;) {
		int64_t now;
		uint32_t pass;

		if (await_change(&w->sh->word, seen, true, &v) != 0)
			return -1;
		now = now_mono_ns();
		seen = v;
		pass = atomic_load_explicit(&w->sh->pass, memory_order_relaxed);
		if (pass == UINT32_MAX)
			break;
		if (n < w->cap) {
			w->lat[n] = now - atomic_load_explicit(&w->sh->stamp, memory_order_relaxed);
			w->pass[n] = (uint8_t)pass;
			n++;
		}
		/* Release: the sample is written before the ack. */
		atomic_fetch_add_explicit(&w->sh->acks, 1, memory_order_release);
	}
	w->sh->count = n;
	return 0;
}

static int wake_send(struct wake *w, uint32_t pass, uint64_t want_acks)
{
	int64_t deadline = 0;
	unsigned spins = 0;

	/* Relaxed: both are published by the release store of the word. */
	atomic_store_explicit(&w->sh->pass, pass, memory_order_relaxed);
	atomic_store_explicit(&w->sh->stamp, now_mono_ns(), memory_order_relaxed);
	announce(&w->sh->word, atomic_load_explicit(&w->sh->word, memory_order_relaxed) + 1,
		 true);
	if (pass == UINT32_MAX)
		return 0;
	/* Acquire pairs with the child's release add. */
	while (atomic_load_explicit(&w->sh->acks, memory_order_acquire) < want_acks) {
		if (++spins % 1024)
			continue;
		if (!deadline)
			deadline = now_mono_ns() + FLOOR_TIMEOUT_NS;
		else if (now_mono_ns() > deadline)
			return -1;
	}
	return 0;
}

static int run_wake_idle(const char *name)
{
	struct wake w = {0};
	size_t per_pass = bench_cfg.smoke ? 50 : WAKE_PER_PASS_MAX;
	struct bench_samples s = {0};
	uint64_t sent = 0;
	int cpu = bench_cfg.cpu_b, rc = -1;
	pid_t pid;

	w.cap = per_pass * (size_t)(bench_cfg.passes + 1);
	w.sh = bench_shm_alloc(sizeof(*w.sh));
	w.lat = bench_shm_alloc(w.cap * sizeof(*w.lat));
	w.pass = bench_shm_alloc(w.cap);
	if (!w.sh || !w.lat || !w.pass || bench_samples_init(&s, w.cap) != 0) {
		bench_fail(name, "out of memory");
		goto out;
	}
	bench_barrier_init(&w.sh->barrier, 2);
	bench_pin(bench_cfg.cpu_a);
	if (bench_spawn(1, &cpu, wake_child, &w, &pid) != 0) {
		bench_fail(name, "fork failed");
		goto out;
	}
	if (bench_barrier_wait(&w.sh->barrier) != 0)
		goto stop;
	for (int p = 0; p <= bench_cfg.passes; p++) {
		int64_t t0 = now_mono_ns(), dur = p ? bench_cfg.pass_ns : bench_cfg.warmup_ns;
		size_t k = 0;

		do {
			if (wake_send(&w, (uint32_t)p, ++sent) != 0) {
				bench_fail(name, "the sleeper stopped answering");
				goto stop;
			}
			bench_spin_ns(BENCH_WAKE_GAP_NS);
		} while (++k < per_pass && (now_mono_ns() - t0 < dur || k < 3));
	}
	rc = 0;
stop:
	wake_send(&w, UINT32_MAX, 0);
	if (bench_reap(1, &pid, FLOOR_TIMEOUT_NS) != 0)
		rc = -1;
	if (rc == 0) {
		struct bench_row *r;

		for (int p = 1; p <= bench_cfg.passes; p++) {
			size_t from = s.n;

			for (uint64_t j = 0; j < w.sh->count; j++)
				if (w.pass[j] == p)
					s.v[s.n++] = w.lat[j];
			bench_samples_end_pass(&s, from);
		}
		r = bench_row_latency(name, BENCH_CACHE_LINE, &s);
		snprintf(r->note, sizeof(r->note),
			 "one-way futex wake of a sleeper by a busy waker, %d us apart",
			 (int)(BENCH_WAKE_GAP_NS / 1000));
	}
out:
	bench_samples_free(&s);
	bench_shm_free(w.sh, sizeof(*w.sh));
	bench_shm_free(w.lat, w.cap * sizeof(*w.lat));
	bench_shm_free(w.pass, w.cap);
	return rc;
}

/* -------------------------------------------------------------- memcpy */

/* Called through a volatile pointer so that the copies cannot be proven
 * useless and removed. */
static void *(*volatile copy_fn)(void *, const void *, size_t) = memcpy;

struct copy_batch {
	unsigned char *src, *dst;
	size_t size, batch;
};

static int copy_batch(void *ctx)
{
	struct copy_batch *c = ctx;

	for (size_t k = 0; k < c->batch; k++)
		copy_fn(c->dst, c->src, c->size);
	return 0;
}

static int run_memcpy(const char *name, size_t size)
{
	struct copy_batch c = {malloc(size), malloc(size), size,
			       size >= 256 * BENCH_KIB ? 1 : 256 * BENCH_KIB / size};
	struct bench_row *r = NULL;

	if (c.src && c.dst) {
		memset(c.src, 0x5a, size);
		memset(c.dst, 0xa5, size);
		r = bench_batched(name, size, copy_batch, &c, c.batch);
	} else {
		bench_fail(name, "out of memory");
	}
	if (r) {
		/* Samples are per batch; the row reports per copy (a 64 B copy
		 * takes about 1 ns) and size / median as bandwidth. */
		r->copy_rate = true;
		if (c.batch > 1)
			snprintf(r->note, sizeof(r->note), "ns per copy, timed in batches of %zu",
				 c.batch);
	}
	free(c.src);
	free(c.dst);
	return r ? 0 : -1;
}

/* ---------------------------------------------------------- ring floor */

struct ring_shared {
	/* Producer's and consumer's counters on lines of their own. */
	_Alignas(BENCH_CACHE_LINE) _Atomic uint64_t head;
	_Alignas(BENCH_CACHE_LINE) _Atomic uint64_t tail;
};

struct ring {
	struct ring_shared *sh;
	unsigned char *slots;
	size_t size, slot_size, map_size;
	uint64_t nslots;
	unsigned char *priv;
	uint64_t head, tail;   /* own counter */
	uint64_t peer;         /* last seen value of the other one */
};

static int ring_setup(void *ctx, int role, int index)
{
	struct ring *r = ctx;

	(void)role;
	(void)index;
	r->priv = malloc(r->size);
	if (!r->priv)
		return -1;
	memset(r->priv, 0x5a, r->size);
	return 0;
}

static void ring_teardown(void *ctx, int role, int index)
{
	struct ring *r = ctx;

	(void)role;
	(void)index;
	free(r->priv);
	r->priv = NULL;
}

static int ring_send(void *ctx, int index)
{
	struct ring *r = ctx;
	int64_t deadline = 0;
	unsigned spins = 0;

	(void)index;
	while (r->head - r->peer == r->nslots) {
		/* Acquire pairs with the consumer's release of tail: it is
		 * done reading the slot we are about to overwrite. */
		r->peer = atomic_load_explicit(&r->sh->tail, memory_order_acquire);
		if (++spins % 4096 == 0) {
			if (!deadline)
				deadline = now_mono_ns() + FLOOR_TIMEOUT_NS;
			else if (now_mono_ns() > deadline)
				return -1;
		}
	}
	memcpy(r->slots + (r->head % r->nslots) * r->slot_size, r->priv, r->size);
	/* Release: the payload is visible before the new head. */
	atomic_store_explicit(&r->sh->head, ++r->head, memory_order_release);
	return 0;
}

static int ring_try_recv(void *ctx, int index)
{
	struct ring *r = ctx;

	(void)index;
	if (r->tail == r->peer) {
		/* Acquire pairs with the producer's release of head. */
		r->peer = atomic_load_explicit(&r->sh->head, memory_order_acquire);
		if (r->tail == r->peer)
			return 0;
	}
	memcpy(r->priv, r->slots + (r->tail % r->nslots) * r->slot_size, r->size);
	/* Release: our reads of the slot are done before the producer may
	 * reuse it. */
	atomic_store_explicit(&r->sh->tail, ++r->tail, memory_order_release);
	return 1;
}

static uint64_t ring_position(void *ctx, int index)
{
	(void)index;
	return ((struct ring *)ctx)->tail;
}

static const struct bench_stream_ops ring_ops = {
	.setup = ring_setup,
	.teardown = ring_teardown,
	.send = ring_send,
	.try_recv = ring_try_recv,
	.position = ring_position,
};

static int run_ring(const char *name, size_t size)
{
	struct ring r = {.size = size, .slot_size = round_up(size, BENCH_CACHE_LINE)};
	size_t hdr = round_up(sizeof(struct ring_shared), 4096);
	struct bench_stream_result res;
	unsigned char *base;
	int rc;

	r.nslots = bench_tput_slots(size);
	r.map_size = hdr + r.nslots * r.slot_size;
	base = bench_shm_alloc(r.map_size);
	if (!base) {
		bench_fail(name, "cannot map %zu bytes", r.map_size);
		return -1;
	}
	r.sh = (struct ring_shared *)(void *)base;
	r.slots = base + hdr;
	rc = bench_stream(name, 1, &bench_cfg.cpu_a, 1, &bench_cfg.cpu_b, &ring_ops, &r, &res);
	if (rc == 0) {
		struct bench_row *row = bench_row_rates(name, size, res.cons_rate, res.passes);

		snprintf(row->note, sizeof(row->note), "%llu slots, lossless (producer waits)",
			 (unsigned long long)r.nslots);
	}
	bench_shm_free(base, r.map_size);
	return rc;
}

int bench_floors_run(int stage)
{
	int failed = 0;

	if (stage == 0) {
		if (bench_selected("floor_line_poll"))
			failed += run_line_pingpong("floor_line_poll", false) != 0;
		if (bench_selected("floor_seqlock_poll"))
			failed += run_seq_pingpong("floor_seqlock_poll", 64) != 0;
		if (bench_selected("floor_line_futex"))
			failed += run_line_pingpong("floor_line_futex", true) != 0;
	}
	if (stage >= 0 && (size_t)stage < bench_nsizes) {
		size_t s = bench_sizes[stage];

		if (bench_selected("floor_shm_poll"))
			failed += run_shm_pingpong("floor_shm_poll", s, false) != 0;
		if (bench_selected("floor_futex"))
			failed += run_shm_pingpong("floor_futex", s, true) != 0;
		if (bench_selected("memcpy"))
			failed += run_memcpy("memcpy", s) != 0;
	} else if (stage >= (int)bench_nsizes && (size_t)stage < bench_nsizes + bench_ntput_sizes) {
		if (bench_selected("floor_ring_tput"))
			failed += run_ring("floor_ring_tput",
					   bench_tput_sizes[(size_t)stage - bench_nsizes]) != 0;
	} else if (stage == BENCH_STAGE_FANOUT) {
		if (bench_selected("floor_wake_idle"))
			failed += run_wake_idle("floor_wake_idle") != 0;
	}
	return failed;
}
