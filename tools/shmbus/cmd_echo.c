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
#include "live.h"

static const char echo_usage[] =
	"usage: shmbus echo [--bus NAME] TOPIC [-n COUNT] [--meta] [--full] [--defaults]\n"
	"                   [--last N] [--duration S] [--wait]\n"
	"\n"
	"Prints each message published on TOPIC as one JSON object per line (JSON\n"
	"Lines), decoded with the schema stored with the topic: protobuf's JSON mapping\n"
	"(lowerCamelCase names, enums by name, 64-bit integers as strings, bytes as\n"
	"base64, Timestamp/Duration as \"2024-05-01T12:00:00Z\" / \"1.5s\").\n"
	"\n"
	"  -n, --count COUNT  exit after COUNT messages\n"
	"  --meta             wrap each message as {\"_meta\":{...},\"msg\":{...}}, where\n"
	"                     _meta has seq (sequence number), time (publish time, RFC\n"
	"                     3339 UTC), publish_ns (the same in ns since the epoch, as a\n"
	"                     string), publisher (publisher id), size (payload bytes) and\n"
	"                     lost (messages lost just before this one)\n"
	"  --full             print bytes fields whole (default: the first 32 bytes in\n"
	"                     base64, then \"... (N bytes)\")\n"
	"  --defaults         also print fields that hold their default value\n"
	"  --last N           start with up to N messages still in the ring\n"
	"  --duration S       exit after S seconds\n"
	"  --wait             if the topic does not exist yet, wait for it\n"
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

struct echo {
	pbjson_schema *schema;
	const char *type;
	struct pbjson_options po;
	bool meta;
};

/* One output line; false when it cannot be written (*reader_gone: because
 * the reader closed the pipe, as `shmbus echo T | head -1` does). */
static bool print_message(bool *reader_gone, const struct echo *e, const uint8_t *p,
			  const struct shmbus_msg_info *info)
{
	json_t *msg = NULL;
	size_t limit = e->po.full_bytes ? 0 : 4096;
	if (e->schema) {
		char err[256];
		if (pbjson_decode(e->schema, e->type, p, info->size, &e->po, &msg, err,
				  sizeof(err))) {
			fprintf(stderr, "shmbus echo: message %" PRIu64 " does not decode as %s: %s\n",
				info->seq, e->type, err);
			msg = raw_payload(p, info->size, limit, err);
		}
	} else {
		msg = raw_payload(p, info->size, limit, NULL);
	}
	if (!msg) {
		fprintf(stderr, "shmbus echo: out of memory\n");
		return false;
	}
	json_t *line = msg;
	if (e->meta) {
		line = json_pack("{s:o,s:o}", "_meta", meta_json(info), "msg", msg);
		if (!line) {
			fprintf(stderr, "shmbus echo: out of memory\n");
			return false;
		}
	}
	char *text = pbjson_dumps(line);
	json_decref(line);
	if (!text) {
		fprintf(stderr, "shmbus echo: out of memory\n");
		return false;
	}
	bool ok = puts(text) >= 0 && fflush(stdout) == 0;
	free(text);
	if (!ok && errno == EPIPE)
		*reader_gone = true;
	else if (!ok)
		fprintf(stderr, "shmbus echo: writing: %s\n", strerror(errno));
	return ok;
}

int cmd_echo(int argc, char **argv)
{
	bool help;
	const char *bus_name = cli_common_options(&argc, argv, &help);
	if (help) {
		fputs(echo_usage, stdout);
		return 0;
	}
	const char *topic = NULL;
	uint64_t count = 0, last = 0;
	double duration = 0;
	bool wait = false;
	struct echo e = { 0 };
	pbjson_options_init(&e.po);
	for (int i = 1; i < argc; i++) {
		const char *v;
		if ((v = live_opt(argc, argv, &i, "--count", "-n"))) {
			if (!live_u64("echo", "-n", v, &count))
				return 2;
		} else if ((v = live_opt(argc, argv, &i, "--last", NULL))) {
			if (!live_u64("echo", "--last", v, &last))
				return 2;
		} else if ((v = live_opt(argc, argv, &i, "--duration", NULL))) {
			if (!live_seconds("echo", "--duration", v, &duration))
				return 2;
		} else if (strcmp(argv[i], "--wait") == 0) {
			wait = true;
		} else if (strcmp(argv[i], "--meta") == 0) {
			e.meta = true;
		} else if (strcmp(argv[i], "--full") == 0) {
			e.po.full_bytes = true;
		} else if (strcmp(argv[i], "--defaults") == 0) {
			e.po.emit_defaults = true;
		} else if (argv[i][0] == '-' || topic) {
			fprintf(stderr, "shmbus echo: unexpected argument '%s'\n%s", argv[i],
				echo_usage);
			return 2;
		} else {
			topic = argv[i];
		}
	}
	if (!topic) {
		fputs(echo_usage, stderr);
		return 2;
	}
	live_catch_signals();
	shmbus_bus *bus = cli_connect(bus_name);
	if (!bus)
		return 1;
	struct shmbus_sub_options so;
	shmbus_sub_options_init(&so);
	if (last) {
		so.start = SHMBUS_START_LAST;
		so.last_n = last > UINT32_MAX ? UINT32_MAX : (uint32_t)last;
	}
	int64_t end = duration > 0 ? live_now_ns() + (int64_t)(duration * 1e9) : INT64_MAX;
	shmbus_sub *sub;
	int rc = live_sub_open("echo", bus, topic, &so, wait, end, &sub);
	if (rc == SHMBUS_ENOTOPIC && wait) { /* stopped or out of time while waiting */
		shmbus_disconnect(bus);
		return 0;
	}
	if (rc) {
		cli_fail("echo", rc, bus, topic);
		shmbus_disconnect(bus);
		return 1;
	}
	e.type = shmbus_sub_type_name(sub);
	e.schema = live_topic_schema("echo", sub, "printing raw payloads");
	size_t cap = shmbus_sub_max_message_size(sub);
	uint8_t *buf = malloc(cap ? cap : 1);
	int status = 0;
	if (!buf) {
		fprintf(stderr, "shmbus echo: out of memory for a %zu-byte message\n", cap);
		status = 1;
	}
	uint64_t printed = 0;
	while (!status && !live_stopping() && (!count || printed < count)) {
		int64_t left = end - live_now_ns();
		if (left <= 0)
			break;
		/* Short waits, so a signal or the deadline is noticed promptly. */
		rc = shmbus_sub_wait(sub, left < 200000000 ? left : 200000000);
		if (rc == SHMBUS_ETIMEDOUT)
			continue;
		if (rc) {
			status = cli_fail("echo", rc, bus, topic);
			break;
		}
		struct shmbus_msg_info info;
		while (!live_stopping() && (!count || printed < count)) {
			rc = shmbus_sub_take(sub, buf, cap, &info);
			if (rc == SHMBUS_EAGAIN)
				break;
			if (rc) {
				status = cli_fail("echo", rc, bus, topic);
				break;
			}
			if (info.lost && !e.meta)
				fprintf(stderr, "shmbus echo: lost %" PRIu64
						" messages before sequence number %" PRIu64 "\n",
					info.lost, info.seq);
			bool gone = false;
			if (!print_message(&gone, &e, buf, &info)) {
				status = gone ? 0 : 1; /* a reader that left is not an error */
				goto out;
			}
			printed++;
		}
	}
out:
	free(buf);
	pbjson_schema_free(e.schema);
	shmbus_sub_close(sub);
	shmbus_disconnect(bus);
	return status;
}
