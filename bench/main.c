/*
 * main.c - shmbus-bench: runs every case group in one process tree on two
 * pinned cores, prints the table and writes the TSV (bench/targets turns it
 * into the goal table), and in --smoke mode only checks that each case
 * produced sane numbers.
 *
 *   shmbus-bench [--smoke] [--only SUBSTR[,SUBSTR...]] [--rounds N] [--pass-ms MS]
 *                [--warmup-ms MS] [--cpus A,B] [--tsv PATH] [--broker PATH]
 *                [--cli PATH] [--label TEXT]
 */
#include "bench.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#ifndef BENCH_BUILDTYPE
#define BENCH_BUILDTYPE "unknown"
#endif

/* A group of cases, each in its own file. */
struct bench_group {
	const char *name;
	int (*run)(int stage);     /* one stage of a round (bench.h); returns the
				      number of failed cases */
	const char *(*unavailable)(void); /* NULL: always available */
	int (*begin)(void);        /* before the first round, NULL: nothing */
	void (*end)(void);         /* after the last round */
	bool optional;             /* a failed begin leaves its rows unmeasured
				      (and says so) instead of failing the run */
};

static const struct bench_group groups[] = {
	{"floors", bench_floors_run, NULL, NULL, NULL, false},
	{"ipc", bench_ipc_run, NULL, NULL, NULL, false},
	{"iceoryx", bench_iox_run, bench_iox_unavailable, bench_iox_begin, bench_iox_end, true},
	{"bus", bench_bus_run, bench_bus_unavailable, bench_bus_begin, bench_bus_end, false},
#ifdef BENCH_HAVE_TYPED
	/* After "bus": on its broker, and beside its rows. */
	{"typed", bench_typed_run, bench_bus_unavailable, NULL, NULL, false},
#endif
#ifdef BENCH_FOXGLOVE
	{"foxglove", bench_foxglove_run, bench_foxglove_unavailable, bench_foxglove_begin,
	 bench_foxglove_end, false},
#endif
	/*
	 * Cases from later issues go here, one group and one file each, using
	 * the same drivers (bench_pingpong, bench_stream) so that they stay
	 * comparable with the floors above:
	 *   integrity  - topics created with SHMBUS_TOPIC_INTEGRITY: the cost
	 *                of the BLAKE2b tag per message and per size
	 *   recording  - `shmbus record` as one more subscriber: MCAP write
	 *                rate and what it costs the publisher
	 */
};

static void fmt_num(char *buf, size_t n, double v, int prec)
{
	if (isnan(v))
		snprintf(buf, n, "-");
	else
		snprintf(buf, n, "%.*f", prec, v);
}

static void fmt_size(char *buf, size_t n, uint64_t size)
{
	if (size >= BENCH_MIB && size % BENCH_MIB == 0)
		snprintf(buf, n, "%llu MiB", (unsigned long long)(size / BENCH_MIB));
	else if (size >= BENCH_KIB && size % BENCH_KIB == 0)
		snprintf(buf, n, "%llu KiB", (unsigned long long)(size / BENCH_KIB));
	else
		snprintf(buf, n, "%llu B", (unsigned long long)size);
}

static void machine_line(char *buf, size_t n)
{
	char model[160] = "unknown", line[256], clocksrc[64] = "unknown";
	struct utsname u;
	FILE *f = fopen("/proc/cpuinfo", "r");

	if (f) {
		while (fgets(line, sizeof(line), f)) {
			char *colon = strchr(line, ':');

			if (strncmp(line, "model name", 10) == 0 && colon) {
				snprintf(model, sizeof(model), "%s", colon + 2);
				model[strcspn(model, "\n")] = '\0';
				break;
			}
		}
		fclose(f);
	}
	f = fopen("/sys/devices/system/clocksource/clocksource0/current_clocksource", "r");
	if (f) {
		if (fgets(clocksrc, sizeof(clocksrc), f))
			clocksrc[strcspn(clocksrc, "\n")] = '\0';
		fclose(f);
	}
	if (uname(&u) != 0)
		snprintf(u.release, sizeof(u.release), "unknown");
	snprintf(buf, n,
		 "cpu: %s, %ld online; cores used: %d,%d; kernel: Linux %s %s; clocksource: %s",
		 model, sysconf(_SC_NPROCESSORS_ONLN), bench_cfg.cpu_a, bench_cfg.cpu_b, u.release,
		 u.machine, clocksrc);
}

/* What else ran on the machine while we measured: CPU time from
 * /proc/stat minus our own (and our reaped children's), and the time the
 * hypervisor gave our virtual CPUs to someone else (steal). */
struct cpu_snap {
	double busy_s, steal_s, ours_s;
	int64_t t_ns;
};

static void cpu_snap(struct cpu_snap *s)
{
	unsigned long long v[10] = {0};
	double hz = (double)sysconf(_SC_CLK_TCK);
	struct rusage self, kids;
	FILE *f = fopen("/proc/stat", "r");

	memset(s, 0, sizeof(*s));
	if (f) {
		if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
			   &v[4], &v[5], &v[6], &v[7]) != 8)
			memset(v, 0, sizeof(v));
		fclose(f);
	}
	s->busy_s = (double)(v[0] + v[1] + v[2] + v[5] + v[6]) / hz;
	s->steal_s = (double)v[7] / hz;
	getrusage(RUSAGE_SELF, &self);
	getrusage(RUSAGE_CHILDREN, &kids);
	s->ours_s = (double)(self.ru_utime.tv_sec + self.ru_stime.tv_sec + kids.ru_utime.tv_sec +
			     kids.ru_stime.tv_sec) +
		    (double)(self.ru_utime.tv_usec + self.ru_stime.tv_usec + kids.ru_utime.tv_usec +
			     kids.ru_stime.tv_usec) / 1e6;
	s->t_ns = now_mono_ns();
}

/* "other processes X % of the CPUs, steal Y %" between two snapshots. */
static double cpu_other_pct(const struct cpu_snap *a, const struct cpu_snap *b, double *steal)
{
	double cpus = (double)sysconf(_SC_NPROCESSORS_ONLN);
	double wall = (double)(b->t_ns - a->t_ns) / 1e9 * cpus;
	double other = (b->busy_s - a->busy_s) - (b->ours_s - a->ours_s);

	*steal = wall > 0 ? (b->steal_s - a->steal_s) / wall * 100 : NAN;
	return wall > 0 ? fmax(other, 0) / wall * 100 : NAN;
}

/* Groups that could not run, and why: printed and written to the TSV, so
 * that their rows read "not measured" rather than missing silently. */
static char unmeasured[8][320];
static int nunmeasured;

static void unmeasured_add(const char *group, const char *why)
{
	if (nunmeasured < 8)
		snprintf(unmeasured[nunmeasured++], sizeof(unmeasured[0]), "group %s: %s", group,
			 why);
}

/* "case@size" of a floor or peer, "-" when none. */
static void fmt_ref(char *buf, size_t n, const char *name, uint64_t size, bool human)
{
	char fs[32];

	if (!name[0]) {
		snprintf(buf, n, "-");
		return;
	}
	if (human)
		fmt_size(fs, sizeof(fs), size);
	else
		snprintf(fs, sizeof(fs), "%llu", (unsigned long long)size);
	snprintf(buf, n, "%s@%s", name, fs);
}

/* A value with its unit: bytes in MB, others as they are. */
static void fmt_value(char *buf, size_t n, const struct bench_row *r)
{
	if (isnan(r->value))
		snprintf(buf, n, "-");
	else if (strcmp(r->unit, "B") == 0)
		snprintf(buf, n, "%.1f MB", r->value / 1e6);
	else
		snprintf(buf, n, "%.1f %s", r->value, r->unit);
}

static void print_table(FILE *out)
{
	static const char head[] = "%-20s %8s %11s %11s %11s %12s %8s %7s %-24s %6s %-24s %6s "
				   "%6s %12s  %s\n";

	fprintf(out, head, "case", "size", "median_ns", "p99_ns", "p999_ns", "msgs/s", "GB/s",
		"spread%", "floor", "ratio", "peer", "ratio", "lost%", "value", "note");
	for (size_t i = 0; i < bench_rows_count(); i++) {
		const struct bench_row *r = bench_rows_get(i);
		char size[32], med[24], p99[24], p999[24], rate[24], gb[24], spread[24];
		char floor[96], ratio[24], peer[96], rpeer[24], lost[24], value[48];

		fmt_size(size, sizeof(size), r->size);
		fmt_num(med, sizeof(med), r->median_ns, r->median_ns < 10 ? 1 : 0);
		fmt_num(p99, sizeof(p99), r->p99_ns, r->p99_ns < 10 ? 1 : 0);
		fmt_num(p999, sizeof(p999), r->p999_ns, r->p999_ns < 10 ? 1 : 0);
		fmt_num(rate, sizeof(rate), r->msgs_per_s, 0);
		fmt_num(gb, sizeof(gb), r->gb_per_s, 3);
		fmt_num(spread, sizeof(spread), r->spread_pct, 1);
		fmt_num(ratio, sizeof(ratio), r->ratio, 2);
		fmt_num(rpeer, sizeof(rpeer), r->ratio_peer, 2);
		fmt_num(lost, sizeof(lost), r->lost_pct, 2);
		fmt_ref(floor, sizeof(floor), r->floor_name, r->floor_size, true);
		fmt_ref(peer, sizeof(peer), r->peer_name, r->peer_size, true);
		fmt_value(value, sizeof(value), r);
		fprintf(out, head, r->name, size, med, p99, p999, rate, gb, spread, floor, ratio, peer,
			rpeer, lost, value, r->note);
	}
}

static int write_tsv(const char *path, const char *machine, const char *load, const char *label,
		     int64_t started)
{
	FILE *f = fopen(path, "w");
	char when[64];
	time_t t = (time_t)(started / 1000000000);
	struct tm tm;

	if (!f) {
		fprintf(stderr, "bench: cannot write %s: %s\n", path, strerror(errno));
		return -1;
	}
	gmtime_r(&t, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	fprintf(f, "# shmbus-bench results, %s%s%s\n", when, label ? ", " : "", label ? label : "");
	fprintf(f, "# machine: %s\n", machine);
	fprintf(f, "# load: %s\n", load);
	for (int i = 0; i < nunmeasured; i++)
		fprintf(f, "# not measured: %s\n", unmeasured[i]);
	fprintf(f, "# build: %s, %s; %d rounds, each case once per round: %lld ms warm-up, "
		   "one %lld ms pass\n",
		BENCH_BUILDTYPE, __VERSION__, bench_cfg.rounds,
		(long long)(bench_cfg.warmup_ns / 1000000), (long long)(bench_cfg.pass_ns / 1000000));
	fprintf(f, "# latency = one-way = round trip / 2; ratio_to_floor = cost / floor cost "
		   "(cost: median_ns, or 1e9 / msgs_per_s); ratio_to_peer = cost / peer cost "
		   "(the peer: what a user would pick instead, measured the same way); "
		   "spread_pct = (max - min) / median of the per-pass medians, rates or values "
		   "(one pass per round); lost_pct = lost / (received + lost); value: the median "
		   "of one figure per round, in unit\n");
	fprintf(f, "case\tsize_B\tmedian_ns\tp99_ns\tp999_ns\tmsgs_per_s\tGB_per_s\tspread_pct\t"
		   "floor_case\tratio_to_floor\tpeer_case\tratio_to_peer\tlost_pct\tvalue\tunit\n");
	for (size_t i = 0; i < bench_rows_count(); i++) {
		const struct bench_row *r = bench_rows_get(i);
		char med[24], p99[24], p999[24], rate[24], gb[24], spread[24], ratio[24];
		char floor[96], peer[96], rpeer[24], lost[24], value[32];

		fmt_num(med, sizeof(med), r->median_ns, r->median_ns < 100 ? 2 : 0);
		fmt_num(p99, sizeof(p99), r->p99_ns, r->p99_ns < 100 ? 2 : 0);
		fmt_num(p999, sizeof(p999), r->p999_ns, r->p999_ns < 100 ? 2 : 0);
		fmt_num(rate, sizeof(rate), r->msgs_per_s, 0);
		fmt_num(gb, sizeof(gb), r->gb_per_s, 4);
		fmt_num(spread, sizeof(spread), r->spread_pct, 1);
		fmt_num(ratio, sizeof(ratio), r->ratio, 3);
		fmt_num(rpeer, sizeof(rpeer), r->ratio_peer, 3);
		fmt_num(lost, sizeof(lost), r->lost_pct, 4);
		fmt_num(value, sizeof(value), r->value, 2);
		fmt_ref(floor, sizeof(floor), r->floor_name, r->floor_size, false);
		fmt_ref(peer, sizeof(peer), r->peer_name, r->peer_size, false);
		fprintf(f, "%s\t%llu\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
			r->name, (unsigned long long)r->size, med, p99, p999, rate, gb, spread, floor,
			ratio, peer, rpeer, lost, value, r->unit[0] ? r->unit : "-");
	}
	for (size_t i = 0; i < bench_rows_count(); i++) {
		const struct bench_row *r = bench_rows_get(i);

		if (r->note[0])
			fprintf(f, "# note %s@%llu: %s\n", r->name, (unsigned long long)r->size,
				r->note);
	}
	if (fclose(f) != 0)
		return -1;
	return 0;
}

/* Smoke mode: every row must hold finite, positive, ordered numbers. */
static int check_sane(void)
{
	int bad = 0;

	for (size_t i = 0; i < bench_rows_count(); i++) {
		const struct bench_row *r = bench_rows_get(i);
		bool ok;

		if (r->is_value)
			ok = isfinite(r->value) && r->value >= 0;
		else if (!isnan(r->median_ns))
			ok = isfinite(r->median_ns) && r->median_ns > 0 && isfinite(r->p999_ns) &&
			     r->median_ns <= r->p99_ns && r->p99_ns <= r->p999_ns;
		else
			/* Nothing delivered is sane only when the row's own
			 * counts say every message was lost. */
			ok = isfinite(r->msgs_per_s) &&
			     (r->msgs_per_s > 0 ||
			      (r->msgs_per_s == 0 && r->total > 0 && r->lost == r->total));
		if (!ok) {
			fprintf(stderr, "bench: insane numbers in %s@%llu\n", r->name,
				(unsigned long long)r->size);
			bad++;
		}
	}
	return bad;
}

static void usage(FILE *out)
{
	fprintf(out, "usage: shmbus-bench [--smoke] [--only SUBSTR] [--rounds N] [--pass-ms MS]\n"
		     "                    [--warmup-ms MS] [--cpus A,B] [--tsv PATH]\n"
		     "                    [--broker PATH] [--cli PATH] [--label TEXT]\n"
		     "                    [--write-slots N]\n");
}

static int pick_cpus(const char *spec)
{
	cpu_set_t set;
	int n = 0, found[2] = {-1, -1};

	if (spec) {
		if (sscanf(spec, "%d,%d", &bench_cfg.cpu_a, &bench_cfg.cpu_b) != 2)
			return -1;
		return 0;
	}
	if (sched_getaffinity(0, sizeof(set), &set) != 0)
		return -1;
	for (int c = 0; c < CPU_SETSIZE && n < 2; c++)
		if (CPU_ISSET(c, &set))
			found[n++] = c;
	if (n == 0)
		return -1;
	bench_cfg.cpu_a = found[0];
	/* One CPU only: both processes share it (the header says so). */
	bench_cfg.cpu_b = n == 2 ? found[1] : found[0];
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"smoke", no_argument, NULL, 's'},   {"only", required_argument, NULL, 'o'},
		{"rounds", required_argument, NULL, 'p'}, {"passes", required_argument, NULL, 'p'},
		{"pass-ms", required_argument, NULL, 'm'},
		{"warmup-ms", required_argument, NULL, 'w'}, {"cpus", required_argument, NULL, 'c'},
		{"tsv", required_argument, NULL, 't'}, {"broker", required_argument, NULL, 'b'},
		{"label", required_argument, NULL, 'l'}, {"help", no_argument, NULL, 'h'},
		{"cli", required_argument, NULL, 'C'},
		{"write-slots", required_argument, NULL, 'W'},
		{NULL, 0, NULL, 0},
	};
	const char *tsv = NULL, *cpus = NULL, *label = NULL;
	char bus_name[64], machine[512], load[256];
	struct cpu_snap before_wait, before, after;
	double other_before, other_during, steal_before, steal_during;
	int failed = 0, c;
	int64_t started = 0;

	bench_cfg = (struct bench_config){
		.passes = 1, .rounds = 5, .pass_ns = 200000000, .warmup_ns = 100000000,
		.min_iters = 200, .max_iters = 200000,
	};
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			bench_cfg.smoke = true;
			bench_cfg.rounds = 2;
			while (bench_nsizes > 1 && bench_sizes[bench_nsizes - 1] > BENCH_MIB)
				bench_nsizes--;
			while (bench_ntput_sizes > 1 &&
			       bench_tput_sizes[bench_ntput_sizes - 1] > BENCH_MIB)
				bench_ntput_sizes--;
			bench_cfg.pass_ns = 3000000;
			bench_cfg.warmup_ns = 1000000;
			bench_cfg.min_iters = 3;
			bench_cfg.max_iters = 200;
			break;
		case 'o': bench_cfg.only = optarg; break;
		case 'p': bench_cfg.rounds = atoi(optarg); break;
		case 'm': bench_cfg.pass_ns = atoll(optarg) * 1000000; break;
		case 'w': bench_cfg.warmup_ns = atoll(optarg) * 1000000; break;
		case 'c': cpus = optarg; break;
		case 't': tsv = optarg; break;
		case 'b': bench_cfg.broker = optarg; break;
		case 'C': bench_cfg.cli = optarg; break;
		case 'l': label = optarg; break;
		case 'W': bench_cfg.write_slots = (uint32_t)atoi(optarg); break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc || bench_cfg.rounds < 1 || bench_cfg.rounds > 63 ||
	    bench_cfg.pass_ns <= 0 || bench_cfg.warmup_ns < 0) {
		usage(stderr);
		return 2;
	}
	if (pick_cpus(cpus) != 0) {
		fprintf(stderr, "bench: no usable CPUs\n");
		return 2;
	}
	/* A peer that died must show up as a failed write, not kill us. */
	signal(SIGPIPE, SIG_IGN);
	snprintf(bus_name, sizeof(bus_name), "bench-%ld", (long)getpid());
	bench_cfg.bus_name = bus_name;
	started = now_real_ns();
	machine_line(machine, sizeof(machine));
	printf("shmbus-bench: %s\n", machine);
	/* A second of the machine alone, to say how quiet it was. */
	cpu_snap(&before_wait);
	if (!bench_cfg.smoke)
		usleep(1000000);
	cpu_snap(&before);
	other_before = cpu_other_pct(&before_wait, &before, &steal_before);
	printf("build: %s; %d rounds, each case once per round: %lld ms warm-up, one %lld ms "
	       "pass%s\n\n",
	       BENCH_BUILDTYPE, bench_cfg.rounds, (long long)(bench_cfg.warmup_ns / 1000000),
	       (long long)(bench_cfg.pass_ns / 1000000), bench_cfg.smoke ? " (smoke)" : "");
	fflush(stdout);

	{
		enum { NGROUPS = sizeof(groups) / sizeof(groups[0]) };
		bool on[NGROUPS];

		for (size_t g = 0; g < NGROUPS; g++) {
			const char *why = groups[g].unavailable ? groups[g].unavailable() : NULL;

			on[g] = !why;
			if (on[g] && groups[g].begin && groups[g].begin() != 0) {
				on[g] = false;
				why = groups[g].unavailable ? groups[g].unavailable() : NULL;
				if (!groups[g].optional || !why)
					failed++;
			}
			if (!on[g])
				unmeasured_add(groups[g].name, why ? why : "it failed to start");
		}
		static const int later[] = {BENCH_STAGE_FANOUT, BENCH_STAGE_SLOW,
					    BENCH_STAGE_TOPICS};
		int nstages = (int)(bench_nsizes + bench_ntput_sizes);

		/* Round r runs every case once: pass r of each case. Within a
		 * round, stage by stage, every group's cases of that stage, so
		 * that a bus case follows its floors and peers within seconds. */
		for (int r = 0; r < bench_cfg.rounds; r++) {
			bench_round = r;
			fprintf(stderr, "round %d/%d\n", r + 1, bench_cfg.rounds);
			for (int st = 0; st < nstages + 3; st++)
				for (size_t g = 0; g < NGROUPS; g++)
					if (on[g])
						failed += groups[g].run(st < nstages
									? st
									: later[st - nstages]);
		}
		/* Last begun, first ended: a later group may lean on an
		 * earlier one (the Foxglove server on the bus group's broker,
		 * which it would start anew if the bus ended first). */
		for (size_t g = NGROUPS; g-- > 0;)
			if (on[g] && groups[g].end)
				groups[g].end();
		failed += bench_bus_check_gone() != 0;
	}
	cpu_snap(&after);
	other_during = cpu_other_pct(&before, &after, &steal_during);
	snprintf(load, sizeof(load),
		 "other processes used %.1f %% of the CPUs during the run (%.1f %% in the second "
		 "before); steal %.1f %%",
		 other_during, other_before, steal_during);
	bench_rows_finish();
	print_table(stdout);
	for (int i = 0; i < nunmeasured; i++)
		printf("\nNOT MEASURED: %s", unmeasured[i]);
	printf("\nload: %s\n", load);
	if (other_during > 5)
		printf("WARNING: other processes were busy during the run; the figures are not "
		       "trustworthy\n");
	if (tsv && write_tsv(tsv, machine, load, label, started) != 0)
		failed++;
	if (bench_cfg.smoke)
		failed += check_sane();
	printf("\n%zu rows, %d failed\n", bench_rows_count(), failed);
	bench_rows_free();
	return failed ? 1 : 0;
}
