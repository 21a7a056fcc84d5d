/*
 * cli.h - what the `shmbus` command's verbs share: the verb table, the
 * global options (--bus before or after the verb), connecting, stopping on
 * SIGINT/SIGTERM, reading numbers and option values, string lists, clocks
 * (now.h), topic names, waiting for a topic to appear, and the schema a
 * topic carries. Every verb goes through these, so each of them behaves
 * the same way.
 */
#ifndef SHMBUS_CLI_H
#define SHMBUS_CLI_H

#include <shmbus/shmbus.h>
#include <stdbool.h>
#include <stdint.h>

#include "now.h"
#include "pbjson.h"

struct cli_verb {
	const char *name;
	const char *summary;
	int (*run)(int argc, char **argv); /* argv[0] is the verb */
};

/* ------------------------------------------------------------- options */

/* The bus named before the verb (`shmbus --bus robot topics`), set by
 * main(); NULL when none was. */
extern const char *cli_global_bus;

/* Removes --bus NAME / --bus=NAME / --help / -h from a verb's argv and
 * returns the bus name (the verb's own, else the global one, else NULL for
 * $SHMBUS_BUS or "default"); *help tells whether help was asked for. */
const char *cli_common_options(int *argc, char **argv, bool *help);
/* A verb's usage text: on stdout when asked for (--help, exit code 0), on
 * stderr after wrong arguments (2). Returns that exit code. */
int cli_usage(bool help, const char *text);

/* The option's value: argv[i + 1] for "-x V" / "--x V" (advancing *i), or
 * the text after '=' for "--x=V"; "" when the value is missing. NULL if
 * argv[*i] is not `name` (or `alt`, which may be NULL). */
const char *cli_opt(int argc, char **argv, int *i, const char *name, const char *alt);

/* Whole-string numbers for option `opt` of `verb`; each prints the error
 * and returns false when s is not one. */
bool cli_u64(const char *verb, const char *opt, const char *s, uint64_t *v);
/* A finite number > 0 (seconds, rates, sizes). */
bool cli_positive(const char *verb, const char *opt, const char *s, double *v);
/* A finite number >= 0. */
bool cli_nonneg(const char *verb, const char *opt, const char *s, double *v);

/* ----------------------------------------------------- bus and signals */

/* Connect. Inspecting verbs pass autostart=false (looking at a bus must
 * not create one); record, play and pub start the broker like any client.
 * Prints the reason and returns NULL on failure. With rc non-NULL, *rc
 * gets the code, and a bus without a broker (SHMBUS_ENOBROKER, autostart
 * off) is left for the caller to report. */
shmbus_bus *cli_connect(const char *bus, const char *verb, bool autostart, int *rc);

/* Prints "shmbus VERB: WHAT: <code text>: <detail>" and returns 1. */
int cli_fail(const char *verb, int rc, const char *what);

/* SIGINT/SIGTERM set the flag cli_stopping() returns (no SA_RESTART, so
 * blocking calls return EINTR); a reader that goes away (echo | head)
 * ends output by EPIPE, quietly. */
void cli_catch_signals(void);
bool cli_stopping(void);
/* Sets the flag as a signal would (a verb that must stop: disk full). */
void cli_request_stop(void);
/* What the handler also does: interrupt this wait (any shmbus_*_interrupt
 * target, or NULL to forget it), so a blocked wait ends at once. */
void cli_interrupt_on_signal(shmbus_sub *sub, shmbus_waitset *ws, shmbus_topic_watch *w);

/* --------------------------------------------------------- string lists */

/* A list of strings it owns (topic names, CSV columns); { 0 } is empty. */
struct cli_strings {
	char **v;
	size_t n, cap;
};
/* Append a copy of s; false when out of memory (the list is unchanged). */
bool cli_strings_add(struct cli_strings *l, const char *s);
void cli_strings_free(struct cli_strings *l);

/* --------------------------------------------------------------- topics */

/* Whether a and b name the same topic ("/imu" and "imu" do). */
bool cli_same_topic(const char *a, const char *b);

/* shmbus_sub_open(); when `wait` is set and the topic does not exist yet,
 * wait for the broker's event that it was created (saying so once on
 * stderr) and open it then, from its first message (SHMBUS_START_FIRST),
 * so nothing published before we got to it is missed. Gives up at a
 * signal or when the monotonic clock passes deadline_ns (SHMBUS_ENOTOPIC
 * then). *appeared (may be NULL) tells whether it was waited for. */
int cli_sub_open(const char *verb, shmbus_bus *bus, const char *topic,
		 const struct shmbus_sub_options *opts, bool wait, int64_t deadline_ns,
		 shmbus_sub **out, bool *appeared);

/* The schema stored with a subscriber's topic, loaded. NULL when the topic
 * has no usable schema, with a note on stderr that says why and ends with
 * `then` (what the caller does instead), unless the topic is untyped. */
pbjson_schema *cli_topic_schema(const char *verb, shmbus_sub *sub, const char *then);

/* --------------------------------------------------------------- verbs */

int cmd_topics(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_type(int argc, char **argv);   /* cmd_type.c */
int cmd_stop(int argc, char **argv);
int cmd_rm(int argc, char **argv);   /* cmd_rm.c */
int cmd_record(int argc, char **argv); /* cmd_record.c */
int cmd_play(int argc, char **argv);   /* cmd_play.c */
int cmd_mcap(int argc, char **argv);   /* cmd_mcap.c */
int cmd_echo(int argc, char **argv);   /* cmd_echo.c */
int cmd_hz(int argc, char **argv);     /* cmd_hz.c */
int cmd_bw(int argc, char **argv);
int cmd_pub(int argc, char **argv);    /* cmd_pub.c */

#endif
