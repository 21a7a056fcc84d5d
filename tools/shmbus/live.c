/*
 * live.c - helpers of the live-topic verbs (see live.h).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "live.h"

static volatile sig_atomic_t stopping;

static void on_signal(int sig)
{
	(void)sig;
	stopping = 1;
}

void live_catch_signals(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	/* A reader that goes away (echo | head) ends us by EPIPE, quietly. */
	signal(SIGPIPE, SIG_IGN);
}

bool live_stopping(void)
{
	return stopping != 0;
}

bool live_u64(const char *verb, const char *opt, const char *s, uint64_t *v)
{
	char *end;
	errno = 0;
	unsigned long long x = strtoull(s, &end, 10);
	if (!*s || *end || errno || *s == '-') {
		fprintf(stderr, "shmbus %s: %s needs a whole number, not '%s'\n", verb, opt, s);
		return false;
	}
	*v = x;
	return true;
}

bool live_seconds(const char *verb, const char *opt, const char *s, double *v)
{
	char *end;
	errno = 0;
	double x = strtod(s, &end);
	if (!*s || *end || errno || !(x > 0) || x > 1e9) {
		fprintf(stderr, "shmbus %s: %s needs a positive number, not '%s'\n", verb, opt, s);
		return false;
	}
	*v = x;
	return true;
}

const char *live_opt(int argc, char **argv, int *i, const char *name, const char *alt)
{
	const char *a = argv[*i];
	size_t n = strlen(name);
	if (strncmp(a, name, n) == 0 && a[n] == '=')
		return a + n + 1;
	if (strcmp(a, name) == 0 || (alt && strcmp(a, alt) == 0)) {
		if (*i + 1 >= argc)
			return "";
		return argv[++*i];
	}
	return NULL;
}

pbjson_schema *live_topic_schema(const char *verb, shmbus_sub *sub, const char *then)
{
	const char *type = shmbus_sub_type_name(sub);
	if (!*type)
		return NULL;
	size_t size;
	const void *blob = shmbus_sub_schema(sub, &size);
	if (!size) {
		fprintf(stderr, "shmbus %s: topic has type '%s' but no schema: %s\n", verb, type,
			then);
		return NULL;
	}
	pbjson_schema *s;
	char err[256];
	int rc = pbjson_schema_load(blob, size, &s, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "shmbus %s: the topic's schema does not load (%s): %s\n", verb, err,
			then);
		return NULL;
	}
	if (!pbjson_has_type(s, type)) {
		fprintf(stderr, "shmbus %s: the topic's schema does not define its type '%s': %s\n",
			verb, type, then);
		pbjson_schema_free(s);
		return NULL;
	}
	return s;
}

int live_sub_open(const char *verb, shmbus_bus *bus, const char *topic,
		  const struct shmbus_sub_options *opts, bool wait, int64_t deadline_ns,
		  shmbus_sub **out)
{
	bool said = false;
	for (;;) {
		int rc = shmbus_sub_open(bus, topic, NULL, opts, out);
		if (rc != SHMBUS_ENOTOPIC || !wait || live_stopping() || live_now_ns() >= deadline_ns)
			return rc;
		if (!said) {
			fprintf(stderr, "shmbus %s: waiting for topic '%s' to appear\n", verb, topic);
			said = true;
		}
		nanosleep(&(struct timespec){ 0, 50000000 }, NULL);
	}
}

int64_t live_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}
