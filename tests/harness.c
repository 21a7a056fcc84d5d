/*
 * harness.c - shared test plumbing (see harness.h).
 */
#include "harness.h"

#include <CUnit/Basic.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <poll.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

const char *h_bus_name(const char *tag)
{
	static char names[16][80];
	static int next;
	char *n = names[next++ % 16];
	snprintf(n, sizeof(names[0]), "t-%s-%d", tag, (int)getpid());
	return n;
}

shmbus_bus *h_connect(const char *name)
{
	struct shmbus_connect_options o;
	shmbus_bus *bus = NULL;
	shmbus_connect_options_init(&o);
	o.timeout_ns = 20000000000ll; /* a loaded CI machine starts processes slowly */
	int rc = shmbus_connect(name, &o, &bus);
	if (rc) {
		fprintf(stderr, "connect %s: %s: %s\n", name, shmbus_strerror(rc), shmbus_errmsg());
		/* CUnit records assertions of the running test only. */
		if (CU_get_current_test())
			CU_FAIL("shmbus_connect failed");
		return NULL;
	}
	return bus;
}

/* Without pidfd (Linux before 5.3): look in 1 ms steps, bounded. */
static bool wait_exit_polling(pid_t pid, int timeout_ms)
{
	for (int i = 0; i < timeout_ms; i++) {
		struct timespec ms = { 0, 1000000 };
		if (kill(pid, 0) < 0 && errno == ESRCH)
			return true;
		nanosleep(&ms, NULL);
	}
	return false;
}

bool h_wait_exit(pid_t pid, int timeout_ms)
{
	int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pfd < 0)
		return errno == ESRCH || (errno == ENOSYS && wait_exit_polling(pid, timeout_ms));
	struct pollfd p = { pfd, POLLIN, 0 };
	int r;
	do
		r = poll(&p, 1, timeout_ms);
	while (r < 0 && errno == EINTR);
	close(pfd);
	return r == 1;
}

/* "<runtime dir>/<bus>.<suffix>" as the broker names it. */
static void bus_path(char *buf, size_t len, const char *bus, const char *suffix)
{
	const char *dir = getenv("SHMBUS_RUNTIME_DIR");
	snprintf(buf, len, "%s/%s.%s", dir ? dir : "/tmp", bus, suffix);
}

pid_t h_keeper_pid(const char *bus)
{
	char path[256];
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	bus_path(path, sizeof(path), bus, "keep");
	if (strlen(path) >= sizeof(a.sun_path))
		return -1;
	memcpy(a.sun_path, path, strlen(path) + 1);
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	pid_t pid = -1;
	struct ucred cred;
	socklen_t cl = sizeof(cred);
	/* Connected, not yet accepted: the peer is the listening keeper. */
	if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) == 0)
		pid = cred.pid;
	if (fd >= 0)
		close(fd);
	return pid;
}

static bool thread_asleep(pid_t tid)
{
	char path[64], buf[64] = "";
	snprintf(path, sizeof(path), "/proc/self/task/%d/syscall", (int)tid);
	FILE *f = fopen(path, "r");
	if (!f)
		return false;
	bool got = fgets(buf, sizeof(buf), f) != NULL;
	fclose(f);
	long nr = got ? strtol(buf, NULL, 10) : -1;
	return nr == SYS_futex || nr == 449 /* futex_waitv */ || nr == SYS_ppoll
#ifdef SYS_poll
	       || nr == SYS_poll
#endif
		;
}

bool h_thread_asleep(const _Atomic pid_t *tid, int timeout_ms)
{
	int64_t deadline = h_now_ns() + (int64_t)timeout_ms * 1000000;
	/* Its sleep has no notification: look at it, bounded. */
	while (!(atomic_load(tid) && thread_asleep(atomic_load(tid)))) {
		if (h_now_ns() > deadline)
			return false;
		struct timespec ts = { 0, 1000000 };
		nanosleep(&ts, NULL);
	}
	return true;
}

pid_t h_keeper_listening(const char *bus, int timeout_ms)
{
	int64_t deadline = h_now_ns() + (int64_t)timeout_ms * 1000000;
	pid_t pid;
	/* A new keeper takes the bus's keeper name once its broker has
	 * handed it everything, which may be after a client connected. */
	while ((pid = h_keeper_pid(bus)) <= 0 && h_now_ns() < deadline) {
		struct timespec ts = { 0, 10000000 };
		nanosleep(&ts, NULL);
	}
	return pid;
}

bool h_keeper_gone(const char *bus, int timeout_ms)
{
	char path[256];
	bus_path(path, sizeof(path), bus, "keep");
	int64_t deadline = h_now_ns() + (int64_t)timeout_ms * 1000000;
	/* The keeper removes its socket as it exits. */
	while (access(path, F_OK) == 0) {
		if (h_now_ns() > deadline)
			return false;
		struct timespec ts = { 0, 10000000 };
		nanosleep(&ts, NULL);
	}
	return true;
}

pid_t h_broker_pid(const char *bus)
{
	struct shmbus_connect_options o;
	shmbus_bus *b;
	shmbus_connect_options_init(&o);
	o.autostart = false;
	if (shmbus_connect(bus, &o, &b))
		return 0;
	pid_t pid = shmbus_broker_pid(b);
	shmbus_disconnect(b);
	return pid;
}

int h_bus_stop(const char *bus)
{
	int rc = 0;
	pid_t pid = h_broker_pid(bus);
	if (pid > 0) {
		if (kill(pid, SIGTERM) != 0) {
			fprintf(stderr, "bus %s: cannot signal broker %d: %s\n", bus, (int)pid,
				strerror(errno));
			rc = -1;
		} else if (!h_wait_exit(pid, 20000)) {
			fprintf(stderr, "bus %s: broker %d did not exit on SIGTERM\n", bus, (int)pid);
			kill(pid, SIGKILL);
			rc = -1;
		} else {
			/* A broker that stopped takes its files with it (the log
			 * stays, to be read). */
			static const char *const gone[] = { "sock", "pid", "lock" };
			for (size_t i = 0; i < sizeof(gone) / sizeof(gone[0]); i++) {
				char path[256];
				bus_path(path, sizeof(path), bus, gone[i]);
				if (access(path, F_OK) == 0) {
					fprintf(stderr, "bus %s: %s left behind\n", bus, path);
					rc = -1;
				}
			}
		}
	}
	/* The broker let everything go: its keeper is gone with what it held. */
	if (!h_keeper_gone(bus, 20000)) {
		fprintf(stderr, "bus %s: its keeper did not exit\n", bus);
		rc = -1;
	}
	return rc;
}

shmbus_bus *h_suite_bus;
static const char *suite_bus_tag;

static int suite_bus_init(void)
{
	h_suite_bus = h_connect(h_bus_name(suite_bus_tag));
	return h_suite_bus ? 0 : -1;
}

static int suite_bus_clean(void)
{
	if (h_suite_bus)
		shmbus_disconnect(h_suite_bus);
	h_suite_bus = NULL;
	return h_bus_stop(h_bus_name(suite_bus_tag));
}

CU_pSuite h_add_bus_suite(const char *suite_name, const char *tag)
{
	suite_bus_tag = tag;
	return CU_add_suite(suite_name, suite_bus_init, suite_bus_clean);
}

pid_t h_fork(int (*fn)(void *arg, int result_fd), void *arg, int *result_fd)
{
	int p[2];
	if (pipe(p) < 0)
		return -1;
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		close(p[0]);
		int rc = fn(arg, p[1]);
		_exit(rc);
	}
	close(p[1]);
	*result_fd = p[0];
	return pid;
}

bool h_read(int fd, void *buf, size_t n, int timeout_ms)
{
	uint8_t *b = buf;
	int64_t deadline = h_now_ns() + (int64_t)timeout_ms * 1000000;
	while (n) {
		int left = (int)((deadline - h_now_ns()) / 1000000);
		if (left <= 0)
			return false;
		struct pollfd p = { fd, POLLIN, 0 };
		if (poll(&p, 1, left) <= 0)
			continue;
		ssize_t r = read(fd, b, n);
		if (r <= 0)
			return false;
		b += r;
		n -= (size_t)r;
	}
	return true;
}

int h_reap(pid_t pid, int timeout_ms)
{
	int st;
	if (!h_wait_exit(pid, timeout_ms)) {
		kill(pid, SIGKILL);
		waitpid(pid, &st, 0);
		return -1;
	}
	if (waitpid(pid, &st, 0) != pid)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

int h_run(const char *name, void (*add)(void))
{
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	add();
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	/* A suite whose set-up or clean-up failed (no broker, files left
	 * behind) fails the program too. */
	unsigned failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed() +
			  CU_get_number_of_suites_failed();
	unsigned run = CU_get_number_of_tests_run();
	CU_cleanup_registry();
	fprintf(stderr, "%s: %u tests run, %s\n", name, run, failed ? "FAILED" : "ok");
	return failed || run == 0 ? 1 : 0;
}

int h_run_cli(char *out, size_t cap, const char *fmt, ...)
{
	char args[2048], cmd[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(args, sizeof(args), fmt, ap);
	va_end(ap);
	snprintf(cmd, sizeof(cmd), "timeout -k 5 60 '%s' %s 2>&1", getenv("SHMBUS_CLI"), args);
	return h_shell(out, cap, cmd);
}

int h_shell(char *out, size_t cap, const char *cmd)
{
	FILE *f = popen(cmd, "r");
	if (!f)
		return -1;
	size_t n = fread(out, 1, cap - 1, f);
	out[n] = '\0';
	int st = pclose(f);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

bool h_user_create(struct h_user *u)
{
	char cmd[256];
	memset(u, 0, sizeof(*u));
	if (getuid() != 0)
		return false;
	snprintf(u->name, sizeof(u->name), "shmbus-t%d", (int)getpid() % 100000);
	snprintf(cmd, sizeof(cmd), "useradd -M -N -s /usr/sbin/nologin %s >/dev/null 2>&1",
		 u->name);
	if (system(cmd) != 0)
		return false;
	struct passwd *pw = getpwnam(u->name);
	if (!pw) {
		h_user_remove(u);
		return false;
	}
	u->uid = pw->pw_uid;
	u->gid = pw->pw_gid;
	return true;
}

void h_user_remove(const struct h_user *u)
{
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "userdel %s >/dev/null 2>&1", u->name);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove test user %s\n", u->name);
}

bool h_become(const struct h_user *u)
{
	return setgroups(0, NULL) == 0 && setgid(u->gid) == 0 && setuid(u->uid) == 0;
}

/* A program run as another user must be reachable by that user, and the
 * build tree may not be (a clone in a 0700 directory, as mktemp -d makes
 * it): such programs run from a copy in a directory of their own under
 * /tmp (0755), with the libraries of $LD_LIBRARY_PATH copied beside them.
 * Made once per test process, removed at its exit. */
static char stage_dir[64];
static pid_t stage_owner; /* a forked child's exit leaves the copy alone */

static bool copy_file(const char *from, const char *dir, const char *name)
{
	char to[512];
	snprintf(to, sizeof(to), "%s/%s", dir, name);
	int in = open(from, O_RDONLY | O_CLOEXEC);
	int out = in < 0 ? -1 : open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
	char buf[65536];
	ssize_t n = 0;
	while (out >= 0 && (n = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, (size_t)n) != n) {
			n = -1;
			break;
		}
	bool ok = in >= 0 && out >= 0 && n == 0 && fchmod(out, 0755) == 0;
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	return ok;
}

static void stage_remove(void)
{
	if (getpid() != stage_owner)
		return;
	DIR *d = opendir(stage_dir);
	struct dirent *e;
	char path[512];
	while (d && (e = readdir(d)))
		if (e->d_name[0] != '.') {
			snprintf(path, sizeof(path), "%s/%s", stage_dir, e->d_name);
			unlink(path);
		}
	if (d)
		closedir(d);
	rmdir(stage_dir);
}

/* The copy of program `path` another user can run, or NULL. */
static const char *stage_program(const char *path)
{
	static char copy[576];
	if (!stage_dir[0]) {
		snprintf(stage_dir, sizeof(stage_dir), "/tmp/shmbus-h-%d", (int)getpid());
		if (mkdir(stage_dir, 0755) && errno != EEXIST)
			return NULL;
		chmod(stage_dir, 0755); /* whatever the umask */
		stage_owner = getpid();
		atexit(stage_remove);
		const char *lib = getenv("LD_LIBRARY_PATH");
		char dirs[4096];
		snprintf(dirs, sizeof(dirs), "%s", lib ? lib : "");
		for (char *save, *dir = strtok_r(dirs, ":", &save); dir;
		     dir = strtok_r(NULL, ":", &save)) {
			DIR *d = opendir(dir);
			struct dirent *e;
			char from[512];
			while (d && (e = readdir(d)))
				if (strstr(e->d_name, ".so")) {
					snprintf(from, sizeof(from), "%s/%s", dir, e->d_name);
					copy_file(from, stage_dir, e->d_name);
				}
			if (d)
				closedir(d);
		}
	}
	const char *base = strrchr(path, '/');
	base = base ? base + 1 : path;
	if (!copy_file(path, stage_dir, base))
		return NULL;
	snprintf(copy, sizeof(copy), "%s/%s", stage_dir, base);
	return copy;
}

pid_t h_spawn(const char *const argv[], int *out_fd, const struct h_user *as)
{
	const char *prog = argv[0];
	if (as && !(prog = stage_program(argv[0])))
		return -1;
	int p[2] = { -1, -1 };
	if (out_fd && pipe2(p, O_CLOEXEC) < 0)
		return -1;
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		int nul = open("/dev/null", O_RDWR);
		dup2(nul, 0);
		dup2(out_fd ? p[1] : nul, 1);
		dup2(out_fd ? p[1] : nul, 2);
		if (as && (setenv("LD_LIBRARY_PATH", stage_dir, 1) || !h_become(as)))
			_exit(126);
		execv(prog, (char *const *)argv);
		_exit(127);
	}
	if (out_fd) {
		close(p[1]);
		*out_fd = p[0];
	}
	return pid;
}

size_t h_read_all(int fd, char *buf, size_t cap, int timeout_ms)
{
	size_t n = 0;
	int64_t deadline = h_now_ns() + (int64_t)timeout_ms * 1000000;
	while (n + 1 < cap) {
		int left = (int)((deadline - h_now_ns()) / 1000000);
		struct pollfd p = { fd, POLLIN, 0 };
		if (left <= 0 || poll(&p, 1, left) <= 0)
			break;
		ssize_t r = read(fd, buf + n, cap - 1 - n);
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	buf[n] = '\0';
	return n;
}
