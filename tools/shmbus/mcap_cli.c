/*
 * mcap_cli.c - helpers of the recording verbs (see mcap_cli.h).
 */
#include "mcap_cli.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

volatile sig_atomic_t mcap_cli_stop;

shmbus_bus *mcap_cli_connect(const char *bus_name, const char *verb)
{
	struct shmbus_connect_options o;
	shmbus_bus *bus;
	shmbus_connect_options_init(&o);
	int rc = shmbus_connect(bus_name, &o, &bus);
	if (rc) {
		fprintf(stderr, "shmbus %s: %s: %s\n", verb, shmbus_strerror(rc), shmbus_errmsg());
		return NULL;
	}
	return bus;
}

static int64_t now(clockid_t c)
{
	struct timespec ts;
	clock_gettime(c, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t mcap_cli_monotonic_ns(void)
{
	return now(CLOCK_MONOTONIC);
}

int64_t mcap_cli_realtime_ns(void)
{
	return now(CLOCK_REALTIME);
}

bool mcap_cli_parse_nonneg(const char *s, double *out)
{
	char *end;
	if (!s || !*s)
		return false;
	double v = strtod(s, &end);
	if (*end || !isfinite(v) || v < 0)
		return false;
	*out = v;
	return true;
}

static void on_signal(int sig)
{
	(void)sig;
	mcap_cli_stop = 1;
}

void mcap_cli_catch_signals(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}
