/*
 * harness.c - shared test plumbing (see harness.h).
 */
#include "harness.h"

#include <CUnit/Basic.h>
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
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
		CU_FAIL("shmbus_connect failed");
		return NULL;
	}
	return bus;
}

int64_t h_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

bool h_wait_exit(pid_t pid, int timeout_ms)
{
	int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pfd < 0)
		return errno == ESRCH; /* already gone */
	struct pollfd p = { pfd, POLLIN, 0 };
	int r;
	do
		r = poll(&p, 1, timeout_ms);
	while (r < 0 && errno == EINTR);
	close(pfd);
	return r == 1;
}

bool h_shm_is_bus_file(const char *entry, const char *bus)
{
	char topics[128], page[128];
	snprintf(topics, sizeof(topics), "shmbus.%u@%s@", (unsigned)getuid(), bus);
	snprintf(page, sizeof(page), "shmbus.%u@%s.bus", (unsigned)getuid(), bus);
	return strncmp(entry, topics, strlen(topics)) == 0 || strcmp(entry, page) == 0;
}

int h_shm_files(const char *bus)
{
	DIR *d = opendir("/dev/shm");
	int n = 0;
	if (!d)
		return 0;
	struct dirent *e;
	while ((e = readdir(d)))
		n += h_shm_is_bus_file(e->d_name, bus);
	closedir(d);
	return n;
}

void h_stop_bus(const char *bus)
{
	struct shmbus_connect_options o;
	shmbus_bus *b;
	shmbus_connect_options_init(&o);
	o.autostart = false;
	if (shmbus_connect(bus, &o, &b) == 0) {
		pid_t pid = shmbus_broker_pid(b);
		shmbus_disconnect(b);
		CU_ASSERT_EQUAL(kill(pid, SIGTERM), 0);
		CU_ASSERT_TRUE(h_wait_exit(pid, 20000));
	}
	CU_ASSERT_EQUAL(h_shm_files(bus), 0);
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
	unsigned failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
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
	FILE *f = popen(cmd, "r");
	if (!f)
		return -1;
	size_t n = fread(out, 1, cap - 1, f);
	out[n] = '\0';
	int st = pclose(f);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}
