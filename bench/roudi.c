/*
 * roudi.c - iceoryx's daemon for the bench: finds `iox-roudi`, writes its
 * memory configuration, starts it, waits until it serves clients, and stops
 * it at the end.
 *
 * iceoryx 2.0 keeps its sockets and lock files in /tmp and its shared
 * memory in /dev/shm under fixed names, so two RouDis on one machine (two
 * engineers' test runs, a user's own) collide. When the bench may create a
 * mount namespace (root), RouDi gets one of its own: a fresh tmpfs on
 * /dev/shm and the bench's run-time directory bound on /tmp. The processes
 * of the iceoryx cases join that namespace (roudi_enter); nothing else of
 * the bench does. Without that right, RouDi runs in the machine's /tmp and
 * /dev/shm, and fails to start (which the bench reports) if another one
 * runs there.
 */
#include "roudi.h"

#include "bench.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define ROUDI_READY "RouDi is ready for clients"
#define ROUDI_START_NS (20 * (int64_t)1000000000)
#define ROUDI_STOP_NS (10 * (int64_t)1000000000)

static pid_t roudi_pid;
static int ns_fd = -1;           /* RouDi's mount namespace, when private */
static char dir[256];            /* our run-time directory */
static char why[512] = "not started";
static const char *where = "";

const char *roudi_why(void)
{
	return why;
}

const char *roudi_where(void)
{
	return where;
}

/* `iox-roudi` from $IOX_ROUDI, else the first on $PATH. */
static int find_roudi(char *out, size_t n)
{
	const char *env = getenv("IOX_ROUDI");
	const char *path = getenv("PATH");

	if (env && *env) {
		snprintf(out, n, "%s", env);
		return access(out, X_OK);
	}
	if (!path || !*path)
		path = "/usr/bin:/bin";
	while (*path) {
		size_t len = strcspn(path, ":");

		if (len > 0 && (size_t)snprintf(out, n, "%.*s/iox-roudi", (int)len, path) < n &&
		    access(out, X_OK) == 0)
			return 0;
		path += len + (path[len] == ':');
	}
	return -1;
}

static int cmp_pool(const void *a, const void *b)
{
	const struct roudi_pool *x = a, *y = b;

	return (x->size > y->size) - (x->size < y->size);
}

/* The TOML file RouDi reads: one segment, pools by increasing size (RouDi
 * requires the order), equal sizes merged. */
static int write_config(const char *path, const struct roudi_pool *in, int n)
{
	struct roudi_pool pools[32];
	int np = 0;
	FILE *f;

	if (n > 32)
		return -1;
	memcpy(pools, in, (size_t)n * sizeof(*in));
	qsort(pools, (size_t)n, sizeof(*pools), cmp_pool);
	for (int i = 0; i < n; i++) {
		if (np > 0 && pools[np - 1].size == pools[i].size)
			pools[np - 1].count += pools[i].count;
		else
			pools[np++] = pools[i];
	}
	f = fopen(path, "w");
	if (!f)
		return -1;
	fprintf(f, "# written by shmbus-bench for its own RouDi\n[general]\nversion = 1\n\n"
		   "[[segment]]\n");
	for (int i = 0; i < np; i++)
		fprintf(f, "\n[[segment.mempool]]\nsize = %llu\ncount = %u\n",
			(unsigned long long)pools[i].size, pools[i].count);
	return fclose(f) == 0 ? 0 : -1;
}

/* In the child that becomes RouDi: a mount namespace of its own where /tmp
 * is our directory and /dev/shm a fresh tmpfs. 0, or -1 (then RouDi uses
 * the machine's). */
static int private_mounts(int log_fd)
{
	if (unshare(CLONE_NEWNS) != 0)
		return -1;
	/* Private propagation first, or the mounts below would show in the
	 * machine's namespace. */
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
	    mount("shmbus-bench-iox", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777") != 0 ||
	    mount(dir, "/tmp", NULL, MS_BIND, NULL) != 0) {
		/* Half a namespace: do not run RouDi in it. */
		dprintf(log_fd, "private /tmp and /dev/shm for RouDi: mount: %s\n", strerror(errno));
		_exit(125);
	}
	return 0;
}

static void roudi_child(const char *exe, int log_fd, _Atomic int *private_ns)
{
	char cfg[300];
	int null_fd = open("/dev/null", O_RDONLY);

	if (private_mounts(log_fd) == 0) {
		/* Release: pairs with the parent's acquire load, made after
		 * RouDi (exec'd after this store) reported ready. */
		atomic_store_explicit(private_ns, 1, memory_order_release);
		snprintf(cfg, sizeof(cfg), "/tmp/roudi.toml");
	} else {
		snprintf(cfg, sizeof(cfg), "%s/roudi.toml", dir);
	}
	if (null_fd >= 0)
		dup2(null_fd, 0);
	dup2(log_fd, 1);
	dup2(log_fd, 2);
	/* Monitoring off: on a loaded machine a process's keep-alive thread
	 * can starve for RouDi's 1.5 s and RouDi would drop it in the middle
	 * of a case; every bench process deregisters at exit instead. */
	execl(exe, "iox-roudi", "-c", cfg, "-l", "info", "-m", "off", (char *)NULL);
	dprintf(log_fd, "exec %s: %s\n", exe, strerror(errno));
	_exit(127);
}

/* The log's last line, for a reason. */
static void log_tail(char *out, size_t n)
{
	char path[300], buf[4096];
	ssize_t len = 0;
	int fd;

	snprintf(path, sizeof(path), "%s/roudi.log", dir);
	out[0] = '\0';
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return;
	len = pread(fd, buf, sizeof(buf) - 1, 0);
	close(fd);
	if (len <= 0)
		return;
	buf[len] = '\0';
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == ' '))
		buf[--len] = '\0';
	{
		char *last = strrchr(buf, '\n');

		snprintf(out, n, "%.150s", last ? last + 1 : buf);
	}
}

static bool log_says_ready(void)
{
	char path[300], buf[65536];
	ssize_t len;
	int fd;

	snprintf(path, sizeof(path), "%s/roudi.log", dir);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return false;
	len = pread(fd, buf, sizeof(buf) - 1, 0);
	close(fd);
	if (len <= 0)
		return false;
	buf[len] = '\0';
	return strstr(buf, ROUDI_READY) != NULL;
}

static void remove_dir(void)
{
	DIR *d;
	struct dirent *e;

	if (!dir[0])
		return;
	d = opendir(dir);
	if (d) {
		while ((e = readdir(d)) != NULL) {
			if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
				continue;
			unlinkat(dirfd(d), e->d_name, 0);
		}
		closedir(d);
	}
	rmdir(dir);
	dir[0] = '\0';
}

int roudi_start(const struct roudi_pool *pools, int n)
{
	char exe[512], path[300], tail[200];
	const char *tmp = getenv("TMPDIR");
	_Atomic int *private_ns = bench_shm_alloc(sizeof(*private_ns));
	int64_t deadline;
	int log_fd;

	if (!private_ns) {
		snprintf(why, sizeof(why), "out of memory");
		return -1;
	}
	if (find_roudi(exe, sizeof(exe)) != 0) {
		snprintf(why, sizeof(why),
			 "iox-roudi not found on PATH (Debian package iceoryx; or set IOX_ROUDI)");
		goto fail;
	}
	snprintf(dir, sizeof(dir), "%s/shmbus-bench-roudi.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(dir)) {
		snprintf(why, sizeof(why), "mkdtemp %s: %s", dir, strerror(errno));
		dir[0] = '\0';
		goto fail;
	}
	snprintf(path, sizeof(path), "%s/roudi.toml", dir);
	if (write_config(path, pools, n) != 0) {
		snprintf(why, sizeof(why), "cannot write %s", path);
		goto fail;
	}
	snprintf(path, sizeof(path), "%s/roudi.log", dir);
	log_fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (log_fd < 0) {
		snprintf(why, sizeof(why), "cannot write %s: %s", path, strerror(errno));
		goto fail;
	}
	fflush(stdout);
	fflush(stderr);
	roudi_pid = fork();
	if (roudi_pid == 0)
		roudi_child(exe, log_fd, private_ns);
	close(log_fd);
	if (roudi_pid < 0) {
		snprintf(why, sizeof(why), "fork: %s", strerror(errno));
		roudi_pid = 0;
		goto fail;
	}
	deadline = now_mono_ns() + ROUDI_START_NS;
	while (!log_says_ready()) {
		int status;

		if (waitpid(roudi_pid, &status, WNOHANG) == roudi_pid) {
			roudi_pid = 0;
			log_tail(tail, sizeof(tail));
			snprintf(why, sizeof(why), "%.200s did not start (%s%d): %.200s", exe,
				 WIFEXITED(status) ? "exit " : "signal ",
				 WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status),
				 tail[0] ? tail : "no output");
			goto fail;
		}
		if (now_mono_ns() > deadline) {
			snprintf(why, sizeof(why), "%.200s did not report ready within %lld s", exe,
				 (long long)(ROUDI_START_NS / 1000000000));
			roudi_stop();
			goto fail_freed;
		}
		usleep(10000);
	}
	/* Acquire: pairs with the child's release store above. */
	if (atomic_load_explicit(private_ns, memory_order_acquire)) {
		snprintf(path, sizeof(path), "/proc/%d/ns/mnt", (int)roudi_pid);
		ns_fd = open(path, O_RDONLY | O_CLOEXEC);
		if (ns_fd < 0) {
			snprintf(why, sizeof(why), "open %s: %s", path, strerror(errno));
			roudi_stop();
			goto fail_freed;
		}
		where = "its own mount namespace: private /dev/shm, /tmp bound to the bench's "
			"run-time directory";
	} else {
		where = "the machine's /tmp and /dev/shm (no right to a mount namespace)";
	}
	bench_shm_free(private_ns, sizeof(*private_ns));
	why[0] = '\0';
	return 0;
fail:
	remove_dir();
fail_freed:
	bench_shm_free(private_ns, sizeof(*private_ns));
	return -1;
}

int roudi_enter(void)
{
	if (ns_fd < 0)
		return 0;
	if (setns(ns_fd, CLONE_NEWNS) != 0) {
		bench_fail("iceoryx", "setns into RouDi's mount namespace: %s", strerror(errno));
		return -1;
	}
	return 0;
}

void roudi_stop(void)
{
	if (roudi_pid > 0) {
		int64_t deadline = now_mono_ns() + ROUDI_STOP_NS;

		/* In its own namespace, nothing of RouDi outlives it: SIGKILL,
		 * so that its shutdown cannot signal the pid of a process it
		 * still counts as registered (one that crashed), which may be
		 * someone else's by now. In the machine's namespace, SIGINT:
		 * its orderly shutdown removes its files. */
		kill(roudi_pid, ns_fd >= 0 ? SIGKILL : SIGINT);
		while (waitpid(roudi_pid, NULL, WNOHANG) != roudi_pid) {
			if (now_mono_ns() > deadline) {
				fprintf(stderr, "bench: RouDi %d did not stop; killing it\n",
					(int)roudi_pid);
				kill(roudi_pid, SIGKILL);
				waitpid(roudi_pid, NULL, 0);
				break;
			}
			usleep(10000);
		}
		roudi_pid = 0;
	}
	if (ns_fd >= 0)
		close(ns_fd);
	ns_fd = -1;
	remove_dir();
	if (!why[0])
		snprintf(why, sizeof(why), "stopped");
}
