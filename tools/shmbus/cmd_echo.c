/*
 * cmd_echo.c - `shmbus echo TOPIC`: every message of a live topic as one
 * line of JSON, decoded by reflection over the schema stored with the
 * topic (no .proto needed), like `ros2 topic echo` or lcm-spy.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

static const char echo_usage[] =
	"usage: shmbus echo [--bus NAME] TOPIC [-n COUNT] [--once] [--field PATH] [--csv]\n"
	"                   [--meta] [--full] [--defaults] [--last N] [--duration S]\n"
	"                   [--wait]\n"
	"\n"
	"Prints each message published on TOPIC as one JSON object per line (JSON\n"
	"Lines), decoded with the schema stored with the topic: protobuf's JSON mapping\n"
	"(lowerCamelCase names, enums by name, 64-bit integers as strings, bytes as\n"
	"base64, Timestamp/Duration as \"2024-05-01T12:00:00Z\" / \"1.5s\").\n"
	"\n"
	"  -n, --count COUNT  exit after COUNT messages\n"
	"  --once             exit after one message (-n 1)\n"
	"  --field PATH       print only this field of each message, e.g.\n"
	"                     header.stamp_ns or orientation_covariance[0] (.proto or\n"
	"                     JSON names; strings and 64-bit integers without quotes,\n"
	"                     messages and lists as JSON)\n"
	"  --csv              comma-separated values: a heading line naming the numeric\n"
	"                     and boolean fields of the first message (of --field PATH\n"
	"                     if given; nested names joined by '.', list elements by\n"
	"                     index), then one line per message; with --meta, seq and\n"
	"                     publish_ns come first\n"
	"  --meta             wrap each message as {\"_meta\":{...},\"msg\":{...}}, where\n"
	"                     _meta has seq (sequence number), time (publish time, RFC\n"
	"                     3339 UTC), publish_ns (the same in ns since the epoch, as a\n"
	"                     string), publisher (publisher id), size (payload bytes) and\n"
	"                     lost (messages lost just before this one)\n"
	"  --full             print bytes fields whole (default: the first 32 bytes in\n"
	"                     base64, then \"... (N bytes)\")\n"
	"  --defaults         also print fields that hold their default value (always\n"
	"                     so with --field and --csv)\n"
	"  --last N           start with up to N messages still in the ring\n"
	"  --duration S       exit after S seconds\n"
	"  --wait             if the topic does not exist yet, wait for it to be\n"
	"                     created and print it from its first message\n"
	"\n"
	"Untyped topics print {\"_text\":\"...\"} when the payload is printable UTF-8\n"
	"text, else {\"_base64\":\"...\"} (the first 4096 bytes unless --full). A\n"
	"payload that does not decode prints {\"_error\":\"...\",\"_base64\":\"...\"}.\n"
	"Losses are reported on stderr (and in _meta). Stops cleanly on SIGINT or\n"
	"SIGTERM (exit 0); errors exit 1.\n";

static bool printable_utf8(const uint8_t *p, size_t n)
{
	json_t *s = json_stringn((const char *)p, n); /* checks UTF-8 */
	if (!s)
		return false;
	json_decref(s);
	for (size_t i = 0; i < n; i++)
		if (p[i] < 0x20 && p[i] != '\n' && p[i] != '\t' && p[i] != '\r')
			return false;
	return true;
}

/* A payload without a (working) schema: text when it is printable, else
 * base64 of up to `limit` bytes (0: all); with the decoding error if any. */
static json_t *raw_payload(const uint8_t *p, size_t n, size_t limit, const char *error)
{
	json_t *j = json_object();
	if (!j)
		return NULL;
	if (error)
		json_object_set_new(j, "_error", json_string(error));
	if (!error && printable_utf8(p, n)) {
		json_object_set_new(j, "_text", json_stringn((const char *)p, n));
		return j;
	}
	size_t m = limit && n > limit ? limit : n;
	char *b = pbjson_base64(p, m);
	char *s = b ? malloc(strlen(b) + 40) : NULL;
	if (s) {
		strcpy(s, b);
		if (m < n)
			sprintf(s + strlen(s), "... (%zu bytes)", n);
		json_object_set_new(j, "_base64", json_string(s));
	}
	free(b);
	free(s);
	return j;
}

static json_t *meta_json(const struct shmbus_msg_info *info)
{
	char when[48] = "", ns[24];
	time_t t = (time_t)(info->publish_ns / 1000000000);
	struct tm tm;
	if (gmtime_r(&t, &tm)) {
		size_t n = strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
		snprintf(when + n, sizeof(when) - n, ".%09dZ", (int)(info->publish_ns % 1000000000));
	}
	snprintf(ns, sizeof(ns), "%" PRId64, info->publish_ns);
	return json_pack("{s:I,s:s,s:s,s:I,s:I,s:I}", "seq", (json_int_t)info->seq, "time", when,
			 "publish_ns", ns, "publisher", (json_int_t)info->publisher_id, "size",
			 (json_int_t)info->size, "lost", (json_int_t)info->lost);
}

/* ------------------------------------------------------------ --field */

/* Whether a JSON key (lowerCamelCase) is the path segment p[0..n), which
 * may be written as in the .proto (snake_case): '_' and case are ignored. */
static bool key_is(const char *key, const char *p, size_t n)
{
	size_t i = 0;
	for (;;) {
		while (*key == '_')
			key++;
		while (i < n && p[i] == '_')
			i++;
		if (!*key || i == n)
			return !*key && i == n;
		char a = *key, b = p[i];
		if (a >= 'A' && a <= 'Z')
			a = (char)(a - 'A' + 'a');
		if (b >= 'A' && b <= 'Z')
			b = (char)(b - 'A' + 'a');
		if (a != b)
			return false;
		key++;
		i++;
	}
}

/* The value at `path` ("a.b[2].c" or "a.b.2.c") in j; NULL if absent. */
static json_t *field_at(json_t *j, const char *path)
{
	while (j && *path) {
		size_t n = strcspn(path, ".[]");
		if (n == 0) {
			path++; /* a separator */
			continue;
		}
		if (json_is_array(j)) {
			char *end;
			unsigned long k = strtoul(path, &end, 10);
			if (end != path + n)
				return NULL;
			j = json_array_get(j, k);
		} else if (json_is_object(j)) {
			const char *key;
			json_t *v, *found = NULL;
			json_object_foreach(j, key, v)
				if (key_is(key, path, n))
					found = v;
			j = found;
		} else {
			return NULL;
		}
		path += n;
	}
	return j;
}

/* Whether a path is well formed: segments of [A-Za-z0-9_], indexes in []. */
static bool path_valid(const char *p)
{
	if (!*p || *p == '.' || *p == '[')
		return false;
	for (; *p; p++) {
		if (*p == '[') {
			const char *q = p + 1;
			while (*q >= '0' && *q <= '9')
				q++;
			if (q == p + 1 || *q != ']' || (q[1] && q[1] != '.' && q[1] != '['))
				return false;
			p = q;
		} else if (*p == '.') {
			if (!p[1] || p[1] == '.' || p[1] == '[')
				return false;
		} else if (!(*p == '_' || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			     (*p >= '0' && *p <= '9'))) {
			return false;
		}
	}
	return true;
}

/* -------------------------------------------------------------- --csv */

/* A JSON value that a CSV cell can hold as a number: numbers, booleans
 * (0/1), and the strings protobuf's JSON mapping gives 64-bit integers and
 * non-finite doubles. */
static bool numeric(const json_t *v)
{
	if (json_is_number(v) || json_is_boolean(v))
		return true;
	if (!json_is_string(v))
		return false;
	const char *s = json_string_value(v);
	if (!strcmp(s, "NaN") || !strcmp(s, "Infinity") || !strcmp(s, "-Infinity"))
		return true;
	char *end;
	errno = 0;
	(void)strtoll(s, &end, 10);
	if (*s && !*end && !errno)
		return true;
	errno = 0;
	(void)strtoull(s, &end, 10);
	return *s && *s != '-' && !*end && !errno;
}

/* Every numeric leaf under j, in order, as a column named prefix.key... */
static bool collect_columns(struct cli_strings *c, json_t *j, char *prefix, size_t len, size_t cap)
{
	if (numeric(j))
		return cli_strings_add(c, len ? prefix : "value");
	if (json_is_object(j)) {
		const char *key;
		json_t *v;
		json_object_foreach(j, key, v) {
			int n = snprintf(prefix + len, cap - len, "%s%s", len ? "." : "", key);
			if (n < 0 || (size_t)n >= cap - len)
				continue; /* too deep to name: left out */
			if (!collect_columns(c, v, prefix, len + (size_t)n, cap))
				return false;
			prefix[len] = 0;
		}
	} else if (json_is_array(j)) {
		for (size_t i = 0; i < json_array_size(j); i++) {
			int n = snprintf(prefix + len, cap - len, "%s%zu", len ? "." : "", i);
			if (n < 0 || (size_t)n >= cap - len)
				continue;
			if (!collect_columns(c, json_array_get(j, i), prefix, len + (size_t)n, cap))
				return false;
			prefix[len] = 0;
		}
	}
	return true;
}

/* One CSV cell: the value, or nothing when the message lacks it. */
static bool put_cell(FILE *f, const json_t *v)
{
	if (json_is_boolean(v))
		return fputc(json_is_true(v) ? '1' : '0', f) != EOF;
	if (json_is_string(v))
		return fputs(json_string_value(v), f) >= 0;
	if (json_is_number(v)) {
		char *t = pbjson_dumps(v);
		bool ok = t && fputs(t, f) >= 0;
		free(t);
		return ok;
	}
	return true;
}

/* ------------------------------------------------------------- output */

struct echo {
	pbjson_schema *schema;
	const char *type;
	struct pbjson_options po;
	bool meta;
	const char *field; /* --field PATH */
	bool csv;
	struct cli_strings cols; /* --csv: from the first message */
	bool heading_done;
};

/* The message as JSON (decoded, or raw with the reason). */
static json_t *message_json(const struct echo *e, const uint8_t *p,
			    const struct shmbus_msg_info *info)
{
	size_t limit = e->po.full_bytes ? 0 : 4096;
	if (!e->schema)
		return raw_payload(p, info->size, limit, NULL);
	json_t *msg = NULL;
	char err[256];
	if (pbjson_decode(e->schema, e->type, p, info->size, &e->po, &msg, err, sizeof(err))) {
		fprintf(stderr, "shmbus echo: message %" PRIu64 " does not decode as %s: %s\n",
			info->seq, e->type, err);
		msg = raw_payload(p, info->size, limit, err);
	}
	return msg;
}

static bool print_csv(struct echo *e, json_t *v, const struct shmbus_msg_info *info)
{
	if (!e->heading_done) {
		char prefix[1024] = "";
		if (e->field)
			snprintf(prefix, sizeof(prefix), "%s", e->field);
		if (!collect_columns(&e->cols, v, prefix, strlen(prefix), sizeof(prefix)))
			return false;
		if (e->meta)
			fputs(e->cols.n ? "seq,publish_ns," : "seq,publish_ns", stdout);
		for (size_t i = 0; i < e->cols.n; i++)
			printf("%s%s", i ? "," : "", e->cols.v[i]);
		putchar('\n');
		e->heading_done = true;
	}
	if (e->meta)
		printf("%" PRIu64 ",%" PRId64 "%s", info->seq, info->publish_ns,
		       e->cols.n ? "," : "");
	size_t skip = e->field ? strlen(e->field) : 0;
	for (size_t i = 0; i < e->cols.n; i++) {
		const char *rel = e->cols.v[i] + skip;
		json_t *cell = e->cols.n == 1 && !*rel ? v : field_at(v, rel);
		if ((i && putchar(',') == EOF) || !put_cell(stdout, cell))
			return false;
	}
	return putchar('\n') != EOF;
}

/* One output line; false when it cannot be written (*reader_gone: because
 * the reader closed the pipe, as `shmbus echo T | head -1` does). */
static bool print_message(bool *reader_gone, struct echo *e, const uint8_t *p,
			  const struct shmbus_msg_info *info)
{
	json_t *msg = message_json(e, p, info);
	if (!msg) {
		fprintf(stderr, "shmbus echo: out of memory\n");
		return false;
	}
	json_t *line = msg;
	bool ok;
	if (e->field || e->csv) {
		json_t *v = e->field ? field_at(msg, e->field) : msg;
		if (!v) {
			fprintf(stderr, "shmbus echo: message %" PRIu64 " has no field '%s'\n",
				info->seq, e->field);
			json_decref(msg);
			return true; /* said on stderr; the next message may have it */
		}
		if (e->csv) {
			ok = print_csv(e, v, info);
		} else if (json_is_string(v)) {
			ok = puts(json_string_value(v)) >= 0;
		} else {
			char *text = pbjson_dumps(v);
			ok = text && puts(text) >= 0;
			free(text);
		}
		json_decref(msg);
	} else {
		if (e->meta && !(line = json_pack("{s:o,s:o}", "_meta", meta_json(info), "msg", msg))) {
			fprintf(stderr, "shmbus echo: out of memory\n");
			return false;
		}
		char *text = pbjson_dumps(line);
		json_decref(line);
		ok = text && puts(text) >= 0;
		free(text);
	}
	ok = ok && fflush(stdout) == 0;
	if (!ok && errno == EPIPE)
		*reader_gone = true;
	else if (!ok)
		fprintf(stderr, "shmbus echo: writing: %s\n", strerror(errno));
	return ok;
}

struct echo_args {
	const char *topic;
	uint64_t count, last;
	double duration;
	bool wait;
};

static int parse_args(int argc, char **argv, struct echo_args *a, struct echo *e)
{
	for (int i = 1; i < argc; i++) {
		const char *v;
		if ((v = cli_opt(argc, argv, &i, "--count", "-n"))) {
			if (!cli_u64("echo", "-n", v, &a->count))
				return 2;
		} else if ((v = cli_opt(argc, argv, &i, "--last", NULL))) {
			if (!cli_u64("echo", "--last", v, &a->last))
				return 2;
		} else if ((v = cli_opt(argc, argv, &i, "--duration", NULL))) {
			if (!cli_positive("echo", "--duration", v, &a->duration))
				return 2;
		} else if ((v = cli_opt(argc, argv, &i, "--field", NULL))) {
			if (!path_valid(v)) {
				fprintf(stderr, "shmbus echo: --field: '%s' is not a field path like "
						"header.stamp_ns or covariance[0]\n", v);
				return 2;
			}
			e->field = v;
		} else if (strcmp(argv[i], "--once") == 0) {
			a->count = 1;
		} else if (strcmp(argv[i], "--csv") == 0) {
			e->csv = true;
		} else if (strcmp(argv[i], "--wait") == 0) {
			a->wait = true;
		} else if (strcmp(argv[i], "--meta") == 0) {
			e->meta = true;
		} else if (strcmp(argv[i], "--full") == 0) {
			e->po.full_bytes = true;
		} else if (strcmp(argv[i], "--defaults") == 0) {
			e->po.emit_defaults = true;
		} else if (argv[i][0] == '-' || a->topic) {
			fprintf(stderr, "shmbus echo: unexpected argument '%s'\n%s", argv[i],
				echo_usage);
			return 2;
		} else {
			a->topic = argv[i];
		}
	}
	if (!a->topic)
		return cli_usage(false, echo_usage);
	/* A field or a column must be there even when it holds its default. */
	if (e->field || e->csv)
		e->po.emit_defaults = true;
	return 0;
}

/* Takes and prints until the count, the deadline or a signal. */
static int echo_loop(struct echo *e, shmbus_sub *sub, const struct echo_args *a, int64_t end)
{
	size_t cap = shmbus_sub_max_message_size(sub);
	uint8_t *buf = malloc(cap ? cap : 1);
	if (!buf) {
		fprintf(stderr, "shmbus echo: out of memory for a %zu-byte message\n", cap);
		return 1;
	}
	int status = 0;
	uint64_t printed = 0;
	cli_interrupt_on_signal(sub, NULL, NULL);
	while (!status && !cli_stopping() && (!a->count || printed < a->count)) {
		struct shmbus_msg_info info;
		int rc = shmbus_sub_take(sub, buf, cap, &info);
		if (rc == SHMBUS_EAGAIN) {
			int64_t left = end - now_mono_ns();
			if (left <= 0)
				break;
			/* -1 (forever) without a deadline: the library's deadline
			 * arithmetic must not see INT64_MAX. */
			rc = shmbus_sub_wait(sub, end == INT64_MAX ? -1 : left);
			if (rc == SHMBUS_ETIMEDOUT || rc == SHMBUS_EINTR)
				continue; /* the loop looks at the clock and the flag */
		} else if (rc == 0) {
			if (info.lost && !e->meta)
				fprintf(stderr, "shmbus echo: lost %" PRIu64
						" messages before sequence number %" PRIu64 "\n",
					info.lost, info.seq);
			bool gone = false;
			if (!print_message(&gone, e, buf, &info))
				status = gone ? -1 : 1; /* a reader that left is not an error */
			printed++;
		}
		if (rc && rc != SHMBUS_EAGAIN)
			status = cli_fail("echo", rc, a->topic);
	}
	cli_interrupt_on_signal(NULL, NULL, NULL);
	free(buf);
	return status < 0 ? 0 : status;
}

int cmd_echo(int argc, char **argv)
{
	bool help;
	const char *bus_name = cli_common_options(&argc, argv, &help);
	if (help)
		return cli_usage(true, echo_usage);
	struct echo_args a = { 0 };
	struct echo e = { 0 };
	pbjson_options_init(&e.po);
	int rc = parse_args(argc, argv, &a, &e);
	if (rc)
		return rc;
	cli_catch_signals();
	shmbus_bus *bus = cli_connect(bus_name, "echo", false, NULL);
	if (!bus)
		return 1;
	struct shmbus_sub_options so;
	shmbus_sub_options_init(&so);
	if (a.last) {
		so.start = SHMBUS_START_LAST;
		so.last_n = a.last > UINT32_MAX ? UINT32_MAX : (uint32_t)a.last;
	}
	int64_t end = a.duration > 0 ? now_mono_ns() + (int64_t)(a.duration * 1e9) : INT64_MAX;
	shmbus_sub *sub;
	rc = cli_sub_open("echo", bus, a.topic, &so, a.wait, end, &sub, NULL);
	if (rc == SHMBUS_ENOTOPIC && a.wait) { /* stopped or out of time while waiting */
		shmbus_disconnect(bus);
		return 0;
	}
	if (rc) {
		cli_fail("echo", rc, a.topic);
		shmbus_disconnect(bus);
		return 1;
	}
	e.type = shmbus_sub_type_name(sub);
	e.schema = cli_topic_schema("echo", sub, "printing raw payloads");
	int status = echo_loop(&e, sub, &a, end);
	cli_strings_free(&e.cols);
	pbjson_schema_free(e.schema);
	shmbus_sub_close(sub);
	shmbus_disconnect(bus);
	return status;
}
