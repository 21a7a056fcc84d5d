/*
 * cmd_stop.c - `shmbus stop`: stop a bus's broker (which removes the bus's
 * shared memory) and wait until it has exited, for scripts and tests.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cli.h"

static const char stop_usage[] =
	"usage: shmbus stop [--bus NAME]\n\n"
	"Stop the bus's broker with SIGTERM and wait (at most 10 s) until it has\n"
	"exited; it lets the bus's topics go (their memory is freed once the\n"
	"last process that maps them closes them). Running publishers and\n"
	"subscribers keep what they mapped. Exit 0 if the broker is gone.\n";

int cmd_stop(int argc, char **argv)
{
	bool help;
	const char *bus_name = cli_common_options(&argc, argv, &help);
	if (help || argc != 1)
		return cli_usage(help, stop_usage);
	shmbus_bus *bus = cli_connect(bus_name, "stop", false, NULL);
	if (!bus)
		return 1;
	pid_t pid = shmbus_broker_pid(bus);
	shmbus_disconnect(bus);
	/* A pidfd, taken before the signal, tells when exactly this process
	 * is gone (no polling, no pid reuse). */
	int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (kill(pid, SIGTERM) < 0) {
		fprintf(stderr, "shmbus stop: cannot signal broker pid %d: %s\n", (int)pid,
			strerror(errno));
		return 1;
	}
	if (pfd >= 0) {
		struct pollfd p = { pfd, POLLIN, 0 };
		int r;
		do
			r = poll(&p, 1, 10000);
		while (r < 0 && errno == EINTR);
		close(pfd);
		if (r != 1) {
			fprintf(stderr, "shmbus stop: broker pid %d still runs after 10 s\n", (int)pid);
			return 1;
		}
	}
	return 0;
}
