/*
 * topics.c - many small topics: N IMU topics (type shmbus.msgs.Imu, the
 * default layout, through the generated typed API) created by one publisher
 * process, each given one message, and opened by one subscriber process
 * that takes it, on a bus of their own (a fresh broker each round). Rows,
 * N = 1000 (10 in the smoke test):
 *
 *   imuN_create   time for the publisher to create the N topics
 *   imuN_open     time for the subscriber to open them
 *   imuN_list     time of `shmbus topics` listing them
 *   imuN_shm      shared memory the bus holds for them: the pages of every
 *                 shared-memory file (a /dev/shm file or a memfd) that the
 *                 broker, the publisher or the subscriber holds open or
 *                 mapped, each file counted once
 *   imuN_shmem    the growth of Shmem in /proc/meminfo over the same time
 *                 (the machine's: other processes' use shows in it too)
 *   imuN_broker   the broker's resident memory (VmRSS)
 *
 * Every process involved runs with the soft descriptor limit of a default
 * login (1024), the broker included (the publisher starts it), so a
 * descriptor per topic shows up as a failure with its cause.
 */
#include "bench.h"
#include "bus_bench.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/magic.h>

#include "shmbus/msgs/imu.shmbus.h"

#define TOPICS_FDS 1024

struct topics_shared {
	struct bench_barrier barrier; /* parent, publisher, subscriber */
	int64_t create_ns, open_ns;
	int broker_pid;
	struct shmbus_topic_info info; /* of the first topic */
};

struct topics {
	char bus[64];
	char name[32]; /* row prefix, "imu1000" */
	int n;
	struct topics_shared *sh;
};

/* The soft limit of a default login, whatever ours is. */
static void default_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur > TOPICS_FDS) {
		rl.rlim_cur = TOPICS_FDS;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static void topic_name(char *buf, size_t n, int i)
{
	snprintf(buf, n, "/robot/imu%04d", i);
}

static int topics_publisher(struct topics *c, shmbus_bus *bus)
{
	shmbus_pub **pubs = calloc((size_t)c->n, sizeof(*pubs));
	Shmbus__Msgs__Imu msg = SHMBUS__MSGS__IMU__INIT;
	Shmbus__Msgs__Vector3 w = SHMBUS__MSGS__VECTOR3__INIT, a = SHMBUS__MSGS__VECTOR3__INIT;
	int rc = -1, opened = 0;
	int64_t t0;

	if (!pubs)
		return -1;
	t0 = now_mono_ns();
	for (; opened < c->n; opened++) {
		char topic[64];
		int r;

		topic_name(topic, sizeof(topic), opened);
		r = shmbus__msgs__imu__pub_open(bus, topic, NULL, NULL, &pubs[opened]);
		if (r != 0) {
			bench_bus_report(c->name, bus, "creating the topics", r);
			bench_fail(c->name, "topic %d of %d", opened + 1, c->n);
			goto out;
		}
	}
	c->sh->create_ns = now_mono_ns() - t0;
	w.z = 0.01;
	a.z = 9.81;
	msg.angular_velocity = &w;
	msg.linear_acceleration = &a;
	for (int i = 0; i < c->n; i++) {
		int r = shmbus__msgs__imu__publish(pubs[i], &msg, NULL);

		if (r != 0) {
			bench_bus_report(c->name, bus, "shmbus__msgs__imu__publish", r);
			goto out;
		}
	}
	shmbus_topic_inspect(bus, "/robot/imu0000", &c->sh->info, NULL, 0, NULL, NULL, 0, NULL);
	/* Created; then the subscriber opens, the parent measures, and
	 * everyone lets go. */
	if (bench_barrier_wait(&c->sh->barrier) != 0 || bench_barrier_wait(&c->sh->barrier) != 0 ||
	    bench_barrier_wait(&c->sh->barrier) != 0)
		goto out;
	rc = 0;
out:
	if (rc != 0)
		bench_barrier_break(&c->sh->barrier);
	while (opened-- > 0)
		shmbus_pub_close(pubs[opened]);
	free(pubs);
	return rc;
}

static int topics_subscriber(struct topics *c, shmbus_bus *bus)
{
	shmbus_sub **subs = calloc((size_t)c->n, sizeof(*subs));
	struct shmbus_sub_options so;
	int rc = -1, opened = 0;
	int64_t t0;

	if (!subs)
		return -1;
	shmbus_sub_options_init(&so);
	so.start = SHMBUS_START_LAST; /* the one message published */
	so.last_n = 1;
	if (bench_barrier_wait(&c->sh->barrier) != 0)
		goto out;
	t0 = now_mono_ns();
	for (; opened < c->n; opened++) {
		char topic[64];
		int r;

		topic_name(topic, sizeof(topic), opened);
		r = shmbus__msgs__imu__sub_open(bus, topic, NULL, &so, &subs[opened]);
		if (r != 0) {
			bench_bus_report(c->name, bus, "opening the topics", r);
			bench_fail(c->name, "topic %d of %d", opened + 1, c->n);
			goto out;
		}
	}
	c->sh->open_ns = now_mono_ns() - t0;
	for (int i = 0; i < c->n; i++) {
		Shmbus__Msgs__Imu *m;
		int r = shmbus__msgs__imu__wait(subs[i], BUS_TIMEOUT_NS);

		if (r == 0)
			r = shmbus__msgs__imu__take(subs[i], NULL, &m, NULL);
		if (r != 0) {
			bench_bus_report(c->name, bus, "taking the message of each topic", r);
			goto out;
		}
		shmbus__msgs__imu__free(m, NULL);
	}
	if (bench_barrier_wait(&c->sh->barrier) != 0 || bench_barrier_wait(&c->sh->barrier) != 0)
		goto out;
	rc = 0;
out:
	if (rc != 0)
		bench_barrier_break(&c->sh->barrier);
	while (opened-- > 0)
		shmbus_sub_close(subs[opened]);
	free(subs);
	return rc;
}

/* Child 0 publishes (and starts the bus's broker), child 1 subscribes. */
static int topics_child(void *arg, int index)
{
	struct topics *c = arg;
	shmbus_bus *bus;
	int rc;

	default_fd_limit();
	rc = shmbus_connect(c->bus, NULL, &bus);
	if (rc != 0) {
		bench_bus_report(c->name, NULL, "shmbus_connect", rc);
		bench_barrier_break(&c->sh->barrier);
		return -1;
	}
	/* Known before anything else can fail, so that the parent can stop
	 * the broker whatever happens (read after the first barrier). */
	if (index == 0)
		c->sh->broker_pid = shmbus_broker_pid(bus);
	rc = index == 0 ? topics_publisher(c, bus) : topics_subscriber(c, bus);
	shmbus_disconnect(bus);
	return rc;
}

/* --------------------------------------------------- what the system holds */

struct file_id {
	dev_t dev;
	ino_t ino;
	uint64_t bytes;
};

struct file_set {
	struct file_id *v;
	size_t n, cap;
};

/* Add the file behind `path` (a /proc link) if it is shared memory. */
static void add_if_shm(struct file_set *s, const char *path)
{
	struct statfs fs;
	struct stat st;

	if (stat(path, &st) != 0 || !S_ISREG(st.st_mode) || statfs(path, &fs) != 0 ||
	    (fs.f_type != TMPFS_MAGIC && fs.f_type != HUGETLBFS_MAGIC))
		return;
	for (size_t i = 0; i < s->n; i++)
		if (s->v[i].dev == st.st_dev && s->v[i].ino == st.st_ino)
			return;
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 1024;
		struct file_id *v = realloc(s->v, cap * sizeof(*v));

		if (!v)
			return;
		s->v = v;
		s->cap = cap;
	}
	s->v[s->n++] = (struct file_id){st.st_dev, st.st_ino, (uint64_t)st.st_blocks * 512};
}

/* Every entry of /proc/PID/<sub> (fd or map_files). */
static void scan_links(struct file_set *s, int pid, const char *sub)
{
	char dir[64], path[320];
	DIR *d;
	struct dirent *e;

	snprintf(dir, sizeof(dir), "/proc/%d/%s", pid, sub);
	d = opendir(dir);
	if (!d)
		return;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		add_if_shm(s, path);
	}
	closedir(d);
}

static uint64_t shm_held(const int *pids, int n, size_t *files)
{
	struct file_set s = {0};
	uint64_t bytes = 0;

	for (int i = 0; i < n; i++) {
		if (pids[i] <= 0)
			continue;
		scan_links(&s, pids[i], "fd");
		/* Mapped and closed (needs CAP_SYS_ADMIN; without it the
		 * open files still count). */
		scan_links(&s, pids[i], "map_files");
	}
	for (size_t i = 0; i < s.n; i++)
		bytes += s.v[i].bytes;
	*files = s.n;
	free(s.v);
	return bytes;
}

/* A "Key:   N kB" line of a /proc file, in bytes; -1 when absent. */
static double proc_kb(const char *path, const char *key)
{
	char line[256];
	size_t len = strlen(key);
	double v = -1;
	FILE *f = fopen(path, "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, key, len) == 0 && line[len] == ':') {
			v = atof(line + len + 1) * 1024;
			break;
		}
	fclose(f);
	return v;
}

/* Run `shmbus topics --bus BUS`; its wall time, or -1. *lines gets the
 * number of lines it printed. */
static int64_t time_list(const char *cli, const char *bus, long *lines)
{
	int p[2];
	pid_t pid;
	int64_t t0 = now_mono_ns();
	int status;
	char buf[65536];
	ssize_t r;

	*lines = 0;
	if (pipe(p) != 0)
		return -1;
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0) {
		close(p[0]);
		close(p[1]);
		return -1;
	}
	if (pid == 0) {
		dup2(p[1], 1);
		close(p[0]);
		close(p[1]);
		default_fd_limit();
		execl(cli, "shmbus", "topics", "--bus", bus, (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	while ((r = read(p[0], buf, sizeof(buf))) > 0 || (r < 0 && errno == EINTR))
		for (ssize_t i = 0; i < r; i++)
			*lines += buf[i] == '\n';
	close(p[0]);
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return -1;
	return now_mono_ns() - t0;
}

/* ------------------------------------------------------------------ rows */

static void add_time_row(const char *prefix, const char *what, int64_t ns, const char *note)
{
	struct bench_samples s = {.v = &ns, .n = 1, .pass_median = {(double)ns}, .passes = 1};
	char name[48];

	snprintf(name, sizeof(name), "%s_%s", prefix, what);
	bench_row_note(bench_row_latency(name, 0, &s), "%s", note);
}

static void add_value_row(const char *prefix, const char *what, double v, const char *unit,
			  const char *note)
{
	char name[48];

	snprintf(name, sizeof(name), "%s_%s", prefix, what);
	bench_row_note(bench_row_values(name, 0, &v, 1, unit), "%s", note);
}

/* Measure while the topics are open; the parent's part of the round. */
static void topics_measure(struct topics *c, const pid_t *kids, double shmem0)
{
	const char *cli = bench_cfg.cli ? bench_cfg.cli : getenv("SHMBUS_CLI");
	int pids[3] = {c->sh->broker_pid, (int)kids[0], (int)kids[1]};
	char path[64], note[160];
	size_t files;
	uint64_t held = shm_held(pids, 3, &files);
	double shmem1 = proc_kb("/proc/meminfo", "Shmem");
	double rss, rss_shmem;
	long lines;
	int64_t list_ns;

	snprintf(note, sizeof(note), "%zu shared-memory files, each once; a topic: %u slots of "
				     "%u B, %llu B of ring",
		 files, c->sh->info.slot_count, c->sh->info.max_message_size,
		 (unsigned long long)c->sh->info.segment_size);
	add_value_row(c->name, "shm", (double)held, "B", note);
	if (shmem0 >= 0 && shmem1 >= 0)
		add_value_row(c->name, "shmem", shmem1 - shmem0, "B",
			      "growth of Shmem in /proc/meminfo (the whole machine's)");
	snprintf(path, sizeof(path), "/proc/%d/status", c->sh->broker_pid);
	rss = proc_kb(path, "VmRSS");
	rss_shmem = proc_kb(path, "RssShmem");
	if (rss >= 0) {
		snprintf(note, sizeof(note), "broker VmRSS, of which shared memory (RssShmem) %.1f MB",
			 rss_shmem / 1e6);
		add_value_row(c->name, "broker", rss, "B", note);
	} else {
		bench_fail(c->name, "cannot read the broker's %s", path);
	}
	if (!cli) {
		if (bench_round == 0)
			printf("%s_list: not measured (no shmbus command: --cli or $SHMBUS_CLI)\n",
			       c->name);
		return;
	}
	list_ns = time_list(cli, c->bus, &lines);
	if (list_ns < 0 || lines < c->n) {
		bench_fail(c->name, "`%s topics --bus %s` failed or listed %ld lines for %d topics",
			   cli, c->bus, lines, c->n);
		return;
	}
	snprintf(note, sizeof(note), "`shmbus topics` listing them (%ld lines)", lines);
	add_time_row(c->name, "list", list_ns, note);
}

int bench_topics_run(void)
{
	struct topics c = {.n = bench_cfg.smoke ? 10 : 1000};
	int cpus[2] = {bench_cfg.cpu_a, bench_cfg.cpu_b};
	pid_t pids[2];
	double shmem0;
	int rc = -1;

	snprintf(c.name, sizeof(c.name), "imu%d", c.n);
	if (!bench_selected(c.name))
		return 0;
	snprintf(c.bus, sizeof(c.bus), "%s-imu%d", bench_cfg.bus_name, bench_round);
	c.sh = bench_shm_alloc(sizeof(*c.sh));
	if (!c.sh) {
		bench_fail(c.name, "out of memory");
		return 1;
	}
	bench_barrier_init(&c.sh->barrier, 3);
	shmem0 = proc_kb("/proc/meminfo", "Shmem");
	if (bench_spawn(2, cpus, topics_child, &c, pids) != 0) {
		bench_fail(c.name, "fork failed");
		goto out;
	}
	/* Created, then opened: measure with everything open. */
	if (bench_barrier_wait(&c.sh->barrier) != 0 || bench_barrier_wait(&c.sh->barrier) != 0) {
		bench_barrier_break(&c.sh->barrier);
	} else {
		topics_measure(&c, pids, shmem0);
		if (bench_barrier_wait(&c.sh->barrier) == 0)
			rc = 0;
	}
	if (bench_reap(2, pids, BUS_TIMEOUT_NS) != 0) {
		bench_fail(c.name, "the publisher or the subscriber failed");
		rc = -1;
	}
	if (rc == 0) {
		char note[160];

		snprintf(note, sizeof(note), "one publisher process creating %d topics of "
					     "shmbus.msgs.Imu, default layout",
			 c.n);
		add_time_row(c.name, "create", c.sh->create_ns, note);
		snprintf(note, sizeof(note), "one subscriber process opening the %d topics", c.n);
		add_time_row(c.name, "open", c.sh->open_ns, note);
	}
	/* SIGTERM: the broker removes what it created. */
	bench_bus_stop_broker(c.sh->broker_pid);
out:
	bench_shm_free(c.sh, sizeof(*c.sh));
	return rc != 0;
}
