/*
 * cli.c - the helpers every verb of the `shmbus` command shares (see
 * cli.h): options, connecting, signals, numbers, string lists, topic names,
 * waiting for a topic, loading a topic's schema.
 */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "recording.h"

const char *cli_global_bus;

const char *cli_common_options(int *argc, char **argv, bool *help)
{
	const char *bus = NULL;
	int out = 1;
	*help = false;
	for (int i = 1; i < *argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
			*help = true;
		else if (strcmp(argv[i], "--bus") == 0 && i + 1 < *argc)
			bus = argv[++i];
		else if (strncmp(argv[i], "--bus=", 6) == 0)
			bus = argv[i] + 6;
		else
			argv[out++] = argv[i];
	}
	*argc = out;
	argv[out] = NULL;
	return bus ? bus : cli_global_bus;
}

int cli_usage(bool help, const char *text)
{
	fputs(text, help ? stdout : stderr);
	return help ? 0 : 2;
}

const char *cli_opt(int argc, char **argv, int *i, const char *name, const char *alt)
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

bool cli_u64(const char *verb, const char *opt, const char *s, uint64_t *v)
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

static bool number(const char *verb, const char *opt, const char *s, double *v, bool zero)
{
	char *end;
	errno = 0;
	double x = strtod(s, &end);
	if (!*s || *end || errno || !isfinite(x) || x < 0 || (!zero && x == 0) || x > 1e12) {
		fprintf(stderr, "shmbus %s: %s needs a %s number, not '%s'\n", verb, opt,
			zero ? "non-negative" : "positive", s);
		return false;
	}
	*v = x;
	return true;
}

bool cli_positive(const char *verb, const char *opt, const char *s, double *v)
{
	return number(verb, opt, s, v, false);
}

bool cli_nonneg(const char *verb, const char *opt, const char *s, double *v)
{
	return number(verb, opt, s, v, true);
}

shmbus_bus *cli_connect(const char *bus_name, const char *verb, bool autostart, int *rcp)
{
	struct shmbus_connect_options o;
	shmbus_bus *bus;
	shmbus_connect_options_init(&o);
	o.autostart = autostart;
	int rc = shmbus_connect(bus_name, &o, &bus);
	if (rcp)
		*rcp = rc;
	if (rc) {
		if (!rcp || rc != SHMBUS_ENOBROKER || autostart)
			fprintf(stderr, "shmbus %s: %s: %s\n", verb, shmbus_strerror(rc),
				shmbus_errmsg());
		return NULL;
	}
	return bus;
}

int cli_fail(const char *verb, int rc, const char *what)
{
	const char *detail = shmbus_errmsg();
	fprintf(stderr, "shmbus %s: %s%s%s%s%s\n", verb, what ? what : "", what ? ": " : "",
		shmbus_strerror(rc), *detail ? ": " : "", detail);
	return 1;
}

/* ------------------------------------------------------------- signals */

static volatile sig_atomic_t stopping;
/* What a signal interrupts; set and cleared by the main thread only, read
 * by the handler (which runs on the main thread too). */
static shmbus_sub *volatile intr_sub;
static shmbus_waitset *volatile intr_ws;
static shmbus_topic_watch *volatile intr_watch;

static void on_signal(int sig)
{
	(void)sig;
	stopping = 1;
	/* The interrupt functions are safe in a signal handler. */
	if (intr_sub)
		shmbus_sub_interrupt(intr_sub);
	if (intr_ws)
		shmbus_waitset_interrupt(intr_ws);
	if (intr_watch)
		shmbus_topic_watch_interrupt(intr_watch);
}

void cli_catch_signals(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

bool cli_stopping(void)
{
	return stopping != 0;
}

void cli_request_stop(void)
{
	stopping = 1;
}

void cli_interrupt_on_signal(shmbus_sub *sub, shmbus_waitset *ws, shmbus_topic_watch *w)
{
	intr_sub = sub;
	intr_ws = ws;
	intr_watch = w;
	/* A signal that came before the target was set still ends its wait. */
	if (stopping)
		on_signal(0);
}

/* --------------------------------------------------------- string lists */

bool cli_strings_add(struct cli_strings *l, const char *s)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		char **v = realloc(l->v, cap * sizeof(*v));
		if (!v)
			return false;
		l->v = v;
		l->cap = cap;
	}
	if (!(l->v[l->n] = strdup(s)))
		return false;
	l->n++;
	return true;
}

void cli_strings_free(struct cli_strings *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	*l = (struct cli_strings){ 0 };
}

/* --------------------------------------------------------------- topics */

bool cli_same_topic(const char *a, const char *b)
{
	return strcmp(a + (*a == '/'), b + (*b == '/')) == 0;
}

/* Waits for the event that `topic` was created: 0, or SHMBUS_ENOTOPIC when
 * stopped or out of time, or another error. */
static int wait_created(const char *verb, shmbus_topic_watch *w, const char *topic,
			int64_t deadline_ns)
{
	bool said = false;
	for (;;) {
		struct shmbus_topic_event ev;
		int rc = shmbus_topic_watch_next(w, &ev);
		if (rc == 0 && ev.kind == SHMBUS_TOPIC_CREATED && cli_same_topic(ev.name, topic))
			return 0;
		if (rc == 0)
			continue;
		if (rc != SHMBUS_EAGAIN)
			return rc;
		if (!said) {
			fprintf(stderr, "shmbus %s: waiting for topic '%s' to appear\n", verb, topic);
			said = true;
		}
		int64_t left = deadline_ns - now_mono_ns();
		if (cli_stopping() || left <= 0)
			return SHMBUS_ENOTOPIC;
		rc = shmbus_topic_watch_wait(w, deadline_ns == INT64_MAX ? -1 : left);
		if (rc == SHMBUS_EINTR || rc == SHMBUS_ETIMEDOUT)
			continue; /* the loop looks at the flag and the clock */
		if (rc)
			return rc;
	}
}

int cli_sub_open(const char *verb, shmbus_bus *bus, const char *topic,
		 const struct shmbus_sub_options *opts, bool wait, int64_t deadline_ns,
		 shmbus_sub **out, bool *appeared)
{
	if (appeared)
		*appeared = false;
	int rc = shmbus_sub_open(bus, topic, NULL, opts, out);
	if (rc != SHMBUS_ENOTOPIC || !wait)
		return rc;
	/* The watch's first events are the topics that exist now: one created
	 * between the open above and the watch shows there too. */
	shmbus_topic_watch *w;
	rc = shmbus_topic_watch_open(bus, &w);
	if (rc)
		return rc;
	cli_interrupt_on_signal(NULL, NULL, w);
	rc = wait_created(verb, w, topic, deadline_ns);
	cli_interrupt_on_signal(NULL, NULL, NULL);
	shmbus_topic_watch_close(w);
	if (rc)
		return rc;
	struct shmbus_sub_options so;
	shmbus_sub_options_init(&so);
	if (opts)
		so = *opts;
	/* It is new: everything it holds was published after we began. */
	so.start = SHMBUS_START_FIRST;
	if (appeared)
		*appeared = true;
	return shmbus_sub_open(bus, topic, NULL, &so, out);
}

pbjson_schema *cli_topic_schema(const char *verb, shmbus_sub *sub, const char *then)
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
	struct rec_foreign f;
	if (rec_foreign_unwrap(blob, size, &f)) {
		fprintf(stderr, "shmbus %s: the topic carries %s messages (schema '%s', %s), "
				"played from a recording: %s\n", verb, f.message_encoding,
			f.schema_name, *f.schema_encoding ? f.schema_encoding : "none", then);
		return NULL;
	}
	if (pbjson_schema_load(blob, size, &s, err, sizeof(err))) {
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
