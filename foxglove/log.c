/*
 * log.c - shmbus-foxglove's log: one line per event on stderr, prefixed
 * with the program's name.
 */
#include "server.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

void fox_log(const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	/* One write per line, so lines of a server and its tests never mix. */
	if (getenv("FOX_LOG_TIME"))
		fprintf(stderr, "%.3f shmbus-foxglove: %s\n", (double)now_mono_ns() / 1e9, line);
	else
		fprintf(stderr, "shmbus-foxglove: %s\n", line);
}
