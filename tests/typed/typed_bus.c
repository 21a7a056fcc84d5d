/*
 * typed_bus.c - a private broker per test (see typed_bus.h). The broker is
 * not our child (the library starts it detached), so its exit is awaited
 * through a pidfd.
 */
#include "typed_bus.h"

#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define STOP_TIMEOUT_MS 10000

int test_bus_start(struct test_bus *tb, const char *tag)
{
	struct shmbus_connect_options o;
	int rc;

	snprintf(tb->name, sizeof(tb->name), "t-typed-%s-%ld", tag, (long)getpid());
	shmbus_connect_options_init(&o);
	o.autostart = true;
	tb->bus = NULL;
	rc = shmbus_connect(tb->name, &o, &tb->bus);
	if (rc != SHMBUS_OK)
		fprintf(stderr, "bus %s: %s: %s\n", tb->name, shmbus_strerror(rc), shmbus_errmsg());
	return rc;
}

static int wait_exit(int pid)
{
	int fd = (int)syscall(SYS_pidfd_open, pid, 0);

	if (fd >= 0) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int rc;

		do
			rc = poll(&p, 1, STOP_TIMEOUT_MS);
		while (rc < 0 && errno == EINTR);
		close(fd);
		return rc == 1 ? 0 : -1;
	}
	if (errno == ESRCH)
		return 0; /* already gone */
	/* No pidfd (kernel before 5.3): check in 1 ms steps, bounded. */
	for (int i = 0; i < STOP_TIMEOUT_MS; i++) {
		struct timespec ms = { 0, 1000000 };

		if (kill(pid, 0) < 0 && errno == ESRCH)
			return 0;
		nanosleep(&ms, NULL);
	}
	return -1;
}

static int leftovers(const char *bus)
{
	char prefix[128], page[128];
	DIR *d = opendir("/dev/shm");
	struct dirent *e;
	int n = 0;

	if (!d)
		return 0;
	snprintf(prefix, sizeof(prefix), "shmbus.%u@%s@", (unsigned)getuid(), bus);
	snprintf(page, sizeof(page), "shmbus.%u@%s.bus", (unsigned)getuid(), bus);
	while ((e = readdir(d)) != NULL) {
		if (strncmp(e->d_name, prefix, strlen(prefix)) == 0 || strcmp(e->d_name, page) == 0) {
			fprintf(stderr, "leftover /dev/shm/%s\n", e->d_name);
			n++;
		}
	}
	closedir(d);
	return n;
}

int test_bus_stop(struct test_bus *tb)
{
	int pid, rc = 0;

	if (!tb->bus)
		return -1;
	pid = shmbus_broker_pid(tb->bus);
	shmbus_disconnect(tb->bus);
	tb->bus = NULL;
	if (pid <= 0)
		return -1;
	if (kill(pid, SIGTERM) < 0 && errno != ESRCH)
		return -1;
	if (wait_exit(pid) != 0) {
		fprintf(stderr, "broker %d of bus %s did not exit\n", pid, tb->name);
		kill(pid, SIGKILL);
		rc = -1;
	}
	if (leftovers(tb->name) > 0)
		rc = -1;
	return rc;
}
