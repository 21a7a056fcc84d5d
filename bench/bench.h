/*
 * bench.h - the benchmark harness shared by every case: clocks, pinning,
 * shared memory between forked processes, a cross-process barrier, sample
 * statistics and the result table.
 *
 * A case measures something and adds rows (bench_row); main.c prints them,
 * writes the TSV and, once every case has run, fills in each row's ratio to
 * its floor. Rows are compared by "cost": nanoseconds for latency rows,
 * nanoseconds per message (1e9 / msgs_per_s) for throughput rows, so a ratio
 * above 1 always means "slower than the floor".
 */
#ifndef SHMBUS_BENCH_H
#define SHMBUS_BENCH_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "now.h"

#define BENCH_KIB ((size_t)1024)
#define BENCH_MIB ((size_t)1024 * 1024)
#define BENCH_CACHE_LINE 64
#define BENCH_MAX_PROCS 32

/* ------------------------------------------------------------- settings */

struct bench_config {
	int passes;            /* measured passes per case and round (1) */
	int rounds;            /* rounds: every case runs once per round */
	int64_t pass_ns;       /* target duration of one pass */
	int64_t warmup_ns;     /* warm-up before the passes */
	uint64_t min_iters;    /* per pass, whatever pass_ns says */
	uint64_t max_iters;    /* per pass */
	int cpu_a, cpu_b;      /* the two cores the processes are pinned to */
	bool smoke;            /* tiny counts; check sanity, do not report */
	const char *only;      /* run only cases whose name contains this */
	const char *bus_name;  /* "bench-<pid>" */
	const char *broker;    /* broker executable, or NULL ($SHMBUSD) */
	const char *cli;       /* the shmbus command, or NULL ($SHMBUS_CLI) */
	/* Slots of the *_write cases' topics; 0: the default layout (what the
	 * goals are about). Set to see what the ring's size does to them. */
	uint32_t write_slots;
};

extern struct bench_config bench_cfg;

/* Times: now_mono_ns() (now.h), CLOCK_MONOTONIC, system-wide, so a time
 * taken in one process can be subtracted from one taken in another. */

/* ---------------------------------------------------- processes, memory */

/* Pin the calling process to one CPU; 0 or -errno. */
int bench_pin(int cpu);

/* Anonymous shared memory that forked children share; zeroed and touched
 * (so page faults are not measured). NULL on failure. */
void *bench_shm_alloc(size_t size);
void bench_shm_free(void *p, size_t size);

/* Fork `n` children; child i pins itself to cpus[i] and runs
 * fn(arg, i), its return value is its exit status (0 success). Pids go to
 * pids[0..n). Returns 0, or -1 (children already started are killed). */
int bench_spawn(int n, const int *cpus, int (*fn)(void *arg, int index), void *arg,
		pid_t *pids);

/* A child ends with _exit(), so that it runs nothing the main process
 * registered. A case whose library must deregister itself at exit (the
 * iceoryx runtime tells RouDi it is gone in a static destructor) sets this
 * in the child, which then ends with exit(). */
extern bool bench_child_exit_cleanly;

/* Run fn(arg) in a forked child and take back into this process the rows
 * it added or extended (samples, rates, values, counts, notes), as if fn
 * had run here. For cases that must not leave state in the main process
 * (a library that starts threads, a mount namespace joined). Returns fn's
 * result, or -1 when the child failed. */
int bench_in_child(const char *name, int (*fn)(void *arg), void *arg);

/* Wait for the children, at most timeout_ns in all, then kill the rest.
 * Returns 0 when every child exited with status 0. */
int bench_reap(int n, pid_t *pids, int64_t timeout_ns);

/* A barrier in shared memory for `parties` processes, built on a futex so
 * that waiting processes sleep (there are more processes than cores). */
struct bench_barrier {
	_Alignas(BENCH_CACHE_LINE) _Atomic uint32_t arrived;
	_Atomic uint32_t generation;
	uint32_t parties;
	_Atomic uint32_t broken; /* set when a party failed: everyone leaves */
};

void bench_barrier_init(struct bench_barrier *b, uint32_t parties);
/* 0, or -1 on timeout (30 s) or when the barrier was broken. */
int bench_barrier_wait(struct bench_barrier *b);
void bench_barrier_break(struct bench_barrier *b);

/* Raw futex calls on a word in MAP_SHARED memory (not FUTEX_PRIVATE: the
 * waiters are in other processes). */
int bench_futex_wait(_Atomic uint32_t *word, uint32_t expected, int64_t timeout_ns);
int bench_futex_wake(_Atomic uint32_t *word, int n);

/* -------------------------------------------------------------- samples */

struct bench_samples {
	int64_t *v;    /* pooled over passes */
	size_t n, cap;
	double pass_median[64]; /* per pass, of the per-pass samples */
	int passes;
};

int bench_samples_init(struct bench_samples *s, size_t cap);
void bench_samples_free(struct bench_samples *s);
/* Close a pass: samples [from, s->n) are its own. */
void bench_samples_end_pass(struct bench_samples *s, size_t from);

/* Nearest-rank percentile of v[0..n) (sorts v). p in (0, 1]. */
double bench_percentile(int64_t *v, size_t n, double p);
/* (max - min) / median of x[0..n), in percent. */
double bench_spread_pct(const double *x, int n);
double bench_median_of(const double *x, int n);

/* ---------------------------------------------------------------- rows */

/* One row of the report: a case at one size. A case runs once per round
 * (one warm-up, one pass), so that every case's passes are spread over the
 * whole run and cases compared in the same run saw the same machine (on a
 * VM the host moves the virtual CPUs around while we measure). The rows
 * pool what the rounds added; bench_rows_finish() computes the figures. */
struct bench_row {
	char name[48];
	uint64_t size;
	double median_ns, p99_ns, p999_ns; /* NAN when n/a */
	double msgs_per_s, gb_per_s;       /* NAN when n/a */
	double spread_pct;
	char floor_name[48];  /* "" when none */
	uint64_t floor_size;
	double ratio;         /* filled by bench_rows_finish() */
	/* The same thing measured the same way on what a user would pick
	 * instead (iceoryx, a socket); "" when none. */
	char peer_name[48];
	uint64_t peer_size;
	double ratio_peer;    /* filled by bench_rows_finish() */
	double lost_pct;      /* 100 * lost / (received + lost); NAN when n/a */
	/* A row that is neither a latency nor a rate (bytes, a share): its
	 * median over the rounds, and what it counts. */
	double value;
	char unit[16];
	uint64_t samples;     /* how many samples the percentiles came from */
	char note[160];       /* what the case says about itself */
	/* Pooled over rounds. */
	bool is_rate;         /* a throughput row */
	bool is_value;        /* a value row (bench_row_values) */
	bool copy_rate;       /* latency row that also reports size / median */
	double scale;         /* latency samples are per `scale` operations */
	int64_t *acc;
	size_t nacc, capacc;
	double pass_vals[64]; /* per pass: median (latency) or rate */
	int npass;
	uint64_t lost, total, superseded, skipped;
};

/* Find or add the row and pool one round's pass(es) into it. */
struct bench_row *bench_row_latency(const char *name, uint64_t size, struct bench_samples *s);
struct bench_row *bench_row_rates(const char *name, uint64_t size, const double *rates,
				  int passes);
/* One value per round (bytes, a percentage, ...): the row's value is their
 * median. `unit` says what it counts ("B", "%"). */
struct bench_row *bench_row_values(const char *name, uint64_t size, const double *values,
				   int n, const char *unit);
void bench_row_set_floor(struct bench_row *r, const char *floor_name, uint64_t floor_size);
void bench_row_set_peer(struct bench_row *r, const char *peer_name, uint64_t peer_size);
/* Replace the row's note (printf-style). */
void bench_row_note(struct bench_row *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Accumulate loss counts of a round into the row's note. */
void bench_row_add_counts(struct bench_row *r, uint64_t lost, uint64_t total,
			  uint64_t superseded, uint64_t skipped);

size_t bench_rows_count(void);
struct bench_row *bench_rows_get(size_t i);
struct bench_row *bench_rows_find(const char *name, uint64_t size);
void bench_rows_finish(void);
void bench_rows_free(void);

/* Each case reports failures through this, then returns -1. */
void bench_fail(const char *case_name, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* --------------------------------------------------------------- cases */

/* Iterations for one pass, from the cost of one iteration seen in warm-up. */
uint64_t bench_iters_for(int64_t ns_per_iter);

/* A generic two-process ping-pong: the parent (initiator, cpu_a) sends
 * `size` bytes and waits for the echo from the child (echoer, cpu_b). The
 * round trip is timed per sample; one-way latency = round trip / 2. */
enum bench_cmd { BENCH_CMD_ECHO = 1, BENCH_CMD_STOP = 2 };

struct bench_pingpong_ops {
	/* In each process after fork; role 0 initiator, 1 echoer. 0 or -1. */
	int (*setup)(void *ctx, int role);
	/* Initiator: send a message of the case's size carrying cmd; with
	 * BENCH_CMD_ECHO also wait for the reply. 0 or -1. */
	int (*ping)(void *ctx, enum bench_cmd cmd);
	/* Echoer: wait for a message; reply to ECHO. Returns BENCH_CMD_ECHO,
	 * BENCH_CMD_STOP, or -1. */
	int (*echo)(void *ctx);
	void (*teardown)(void *ctx, int role);
};

/* Runs warm-up and passes, adds a latency row `name` at `size` with the
 * given floor. 0 or -1. */
int bench_pingpong(const char *name, size_t size, const struct bench_pingpong_ops *ops,
		   void *ctx, const char *floor_name, uint64_t floor_size);

/* Work in one process on core A: batch(ctx) runs a batch of operations
 * (0, or -1 when one failed), timed per batch after a warm-up; adds a
 * latency row `name` at `size` reporting ns per operation (scale:
 * operations per batch). The row, or NULL on failure. */
struct bench_row *bench_batched(const char *name, size_t size, int (*batch)(void *ctx),
				void *ctx, size_t scale);

/* A generic streaming run: `producers` processes send as fast as they can
 * for pass_ns, `consumers` processes take what reaches them. Each
 * participant is a child pinned to its cpu; the parent only waits. */
struct bench_stream_ops {
	/* In each child after fork; role 0 producer, 1 consumer. 0 or -1. */
	int (*setup)(void *ctx, int role, int index);
	void (*teardown)(void *ctx, int role, int index);
	/* Producer: send one message. 0 or -1. */
	int (*send)(void *ctx, int index);
	/* Consumer: take one message without blocking: 1 taken, 0 nothing
	 * there now, -1 error. */
	int (*try_recv)(void *ctx, int index);
	/* Consumer: sleep until a message may be there or timeout_ns passes;
	 * NULL to poll. 0 or -1. */
	int (*wait)(void *ctx, int index, int64_t timeout_ns);
	/* Consumer: messages taken or given up so far (received + lost). */
	uint64_t (*position)(void *ctx, int index);
	/* Consumer: messages lost so far; NULL for lossless transports. */
	uint64_t (*lost)(void *ctx, int index);
};

struct bench_stream_result {
	int passes;
	double prod_rate[64];     /* all producers together, msgs/s */
	double prod_rate_min[64]; /* the slowest producer */
	double cons_rate[64];     /* delivered per consumer (mean), msgs/s */
	double cons_rate_min[64]; /* the slowest consumer */
	uint64_t sent, received, lost; /* over all passes and consumers */
};

int bench_stream(const char *name, int producers, const int *producer_cpus, int consumers,
		 const int *consumer_cpus, const struct bench_stream_ops *ops, void *ctx,
		 struct bench_stream_result *res);

/* One-way wake-up cases (floor_wake_idle, fanout_lat): the sender waits
 * this long after the receivers took the last message, so that they are
 * asleep again and every sample includes a wake-up. */
#define BENCH_WAKE_GAP_NS 20000
/* Spin (on the caller's own core) for ns. */
void bench_spin_ns(int64_t ns);

/* The payload sizes of the latency cases (the smoke test stops at 1 MiB:
 * first-touch page faults of 8 MiB slots under a sanitizer cost seconds). */
extern const size_t bench_sizes[];
extern size_t bench_nsizes;
/* The payload sizes of the throughput cases (--smoke: up to 1 MiB), and
 * the ring size they use (the same for the bus and the floors). */
extern const size_t bench_tput_sizes[];
extern size_t bench_ntput_sizes;
uint32_t bench_tput_slots(size_t size);

/* Case groups (floors.c, ipc.c, bus_cases.c, iceoryx.c). A round runs in
 * stages so that each bus case runs right after the floors and peers it is
 * compared with (the VM's host may move the virtual CPUs between two cases
 * far apart in time): stage i < bench_nsizes: the latency cases at
 * bench_sizes[i] (stage 0 also the cache-line floors); then one stage per
 * throughput size; then the stages below. Each returns the number of
 * failed cases. */
#define BENCH_STAGE_FANOUT 1000
#define BENCH_STAGE_SLOW 1001   /* a slow subscriber vs its publisher */
#define BENCH_STAGE_TOPICS 1002 /* many small topics: memory and time */
int bench_floors_run(int stage);
int bench_ipc_run(int stage);
int bench_bus_run(int stage);
/* NULL when the group can run, else why not (printed, its rows are then
 * missing: not measured). */
const char *bench_bus_unavailable(void);
/* Connect (which starts the bench's own broker) before the first round;
 * disconnect and stop the broker after the last. */
int bench_bus_begin(void);
void bench_bus_end(void);
/* After every group ended: 0 when no broker serves the bench's bus (none
 * was left behind, or started again by a later group's client), else -1
 * with the reason on stderr. */
int bench_bus_check_gone(void);
/* The bus's later stages (slow.c, paced.c, topics.c), called by bench_bus_run. */
int bench_slow_run(void);
int bench_paced_run(void);
int bench_topics_run(void);

/* iceoryx (iceoryx.c and roudi.c, or iceoryx_none.c): begin starts its
 * RouDi, end stops it. */
int bench_iox_run(int stage);
const char *bench_iox_unavailable(void);
int bench_iox_begin(void);
void bench_iox_end(void);

/* protoc-gen-shmbus generated code against the same bytes untyped
 * (typed_cases.c), on the bus group's broker. Its Imu rows are at the size
 * the bench's Imu packs into (checked when it runs). */
int bench_typed_run(int stage);
#define BENCH_TYPED_IMU 340

/* The round being run (0-based), for cases that do their own rounds. */
extern int bench_round;

/* shmbus-foxglove (foxglove_cases.c): when the server was built, started
 * on the bench's bus before the first round and stopped after the last. */
int bench_foxglove_run(int stage);
const char *bench_foxglove_unavailable(void);
int bench_foxglove_begin(void);
void bench_foxglove_end(void);

/* Whether a case named `name` is selected by --only. */
bool bench_selected(const char *name);

#endif /* SHMBUS_BENCH_H */
