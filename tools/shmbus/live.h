/*
 * live.h - what the live-topic verbs (echo, hz, bw, pub) share: stopping
 * cleanly on SIGINT/SIGTERM, reading numeric options, and the schema a
 * subscriber's topic carries.
 */
#ifndef SHMBUS_CLI_LIVE_H
#define SHMBUS_CLI_LIVE_H

#include <shmbus/shmbus.h>
#include <stdbool.h>
#include <stdint.h>

#include "pbjson.h"

/* Install SIGINT/SIGTERM handlers that set the flag live_stopping()
 * returns (no SA_RESTART: a blocked wait returns early). */
void live_catch_signals(void);
bool live_stopping(void);

/* Parse a whole-string number for option `opt` of `verb`; prints the
 * error and returns false when it is not one (or not > 0 if positive). */
bool live_u64(const char *verb, const char *opt, const char *s, uint64_t *v);
bool live_seconds(const char *verb, const char *opt, const char *s, double *v);

/* The option's value: argv[i + 1] for "-x V" / "--x V" (advancing *i), or
 * the text after '=' for "--x=V". NULL if argv[*i] is not `name`. */
const char *live_opt(int argc, char **argv, int *i, const char *name, const char *alt);

/* Load the schema stored with the subscriber's topic. NULL when the topic
 * has no usable schema, with a note on stderr saying why and ending with
 * `then` (what the caller does instead), unless the topic is untyped. */
pbjson_schema *live_topic_schema(const char *verb, shmbus_sub *sub, const char *then);

int64_t live_now_ns(void);

/* shmbus_sub_open(), but when `wait` is set and the topic does not exist
 * yet, try again every 50 ms (saying so once on stderr) until it does, a
 * signal arrives (SHMBUS_ENOTOPIC then) or the monotonic clock passes
 * deadline_ns. There is no event for "a topic was created" to wait on. */
int live_sub_open(const char *verb, shmbus_bus *bus, const char *topic,
		  const struct shmbus_sub_options *opts, bool wait, int64_t deadline_ns,
		  shmbus_sub **out);

#endif
