/*
 * cmd_pub.c - `shmbus pub TOPIC TYPE JSON`: publish a message written as
 * JSON, encoded by reflection over the type's schema: the topic's own, a
 * descriptor set file, or the schemas/ types built into the tool.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "yaml.h"

extern const unsigned char pbjson_builtin_fds[];
extern const size_t pbjson_builtin_fds_size;

static const char pub_usage[] =
	"usage: shmbus pub [--bus NAME] TOPIC TYPE MESSAGE [-r HZ] [-n COUNT] [--once]\n"
	"                  [--wait-subscribers N] [--descriptor-set FILE] [-q]\n"
	"\n"
	"Publishes MESSAGE as a message of TYPE (full name, e.g. shmbus.msgs.Imu) on\n"
	"TOPIC, creating the topic if needed. MESSAGE is JSON (protobuf's JSON\n"
	"mapping) or YAML as `ros2 topic pub` takes it (\"header: {frame_id: imu}\",\n"
	"or key: value lines); field names as in JSON or in the .proto. MESSAGE '-'\n"
	"reads it from stdin. The type's schema comes from the topic when it exists,\n"
	"else from --descriptor-set FILE (written by `protoc --include_imports\n"
	"--descriptor_set_out=FILE`), else from the shmbus.msgs types built into this\n"
	"tool; a topic it creates stores that schema.\n"
	"\n"
	"  -r, --rate HZ      publish HZ times a second (default: once, then exit)\n"
	"  -n, --count COUNT  publish COUNT times (default 1; with -r, until stopped)\n"
	"  --once             publish once and exit (the default without -r)\n"
	"  --wait-subscribers N  first wait until the topic has N subscribers\n"
	"  --descriptor-set FILE  the schema of TYPE\n"
	"  -q, --quiet        do not print a line per message\n"
	"\n"
	"Stops cleanly on SIGINT/SIGTERM. Starts the bus's broker if none runs.\n";

static uint8_t *read_all(FILE *f, size_t *len)
{
	size_t cap = 4096, n = 0;
	uint8_t *buf = malloc(cap);
	while (buf) {
		n += fread(buf + n, 1, cap - n, f);
		if (n < cap)
			break;
		uint8_t *b = cap < (1u << 30) ? realloc(buf, cap * 2) : NULL;
		if (!b) {
			free(buf);
			return NULL;
		}
		buf = b;
		cap *= 2;
	}
	if (buf && ferror(f)) {
		free(buf);
		return NULL;
	}
	*len = n;
	return buf;
}

static void list_types(const pbjson_schema *s)
{
	fprintf(stderr, "known types:");
	size_t shown = 0;
	for (size_t i = 0; i < pbjson_type_count(s) && shown < 40; i++) {
		const char *t = pbjson_type_name(s, i);
		if (strstr(t, "Entry")) /* map entries are not publishable types */
			continue;
		fprintf(stderr, " %s", t);
		shown++;
	}
	fprintf(stderr, "\n");
}

/* The schema of an existing topic, checking its type. 1: no such topic;
 * 2: the topic has the type but no usable schema. */
static int topic_schema(shmbus_bus *bus, const char *topic, const char *type,
			pbjson_schema **out, uint32_t *max_size)
{
	struct shmbus_sub_options so;
	shmbus_sub_options_init(&so);
	shmbus_sub *sub;
	int rc = shmbus_sub_open(bus, topic, NULL, &so, &sub);
	if (rc == SHMBUS_ENOTOPIC)
		return 1;
	if (rc) {
		cli_fail("pub", rc, topic);
		return -1;
	}
	const char *have = shmbus_sub_type_name(sub);
	*max_size = (uint32_t)shmbus_sub_max_message_size(sub);
	int status = 0;
	if (strcmp(have, type) != 0) {
		fprintf(stderr, "shmbus pub: topic '%s' has type '%s', not '%s'\n", topic,
			*have ? have : "(untyped)", type);
		status = -1;
	} else {
		*out = cli_topic_schema("pub", sub, "using the --descriptor-set or built-in one");
		if (!*out)
			status = 2;
	}
	shmbus_sub_close(sub);
	return status;
}

static pbjson_schema *load_blob(const void *p, size_t n, const char *from)
{
	pbjson_schema *s;
	char err[256];
	if (pbjson_schema_load(p, n, &s, err, sizeof(err))) {
		fprintf(stderr, "shmbus pub: %s: %s\n", from, err);
		return NULL;
	}
	return s;
}

static pbjson_schema *file_schema(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		fprintf(stderr, "shmbus pub: %s: %s\n", path, strerror(errno));
		return NULL;
	}
	size_t n;
	uint8_t *blob = read_all(f, &n);
	fclose(f);
	if (!blob) {
		fprintf(stderr, "shmbus pub: %s: cannot read it\n", path);
		return NULL;
	}
	pbjson_schema *s = load_blob(blob, n, path);
	free(blob);
	return s;
}

/* MESSAGE as JSON, else as YAML (which JSON-looking text is not
 * reported as: its JSON error says more). */
static json_t *parse_message(const char *arg)
{
	json_error_t jerr;
	size_t len = 0;
	char *text = NULL;
	if (strcmp(arg, "-") == 0) {
		text = (char *)read_all(stdin, &len);
		char *t = text ? realloc(text, len + 1) : NULL;
		if (!t) {
			free(text);
			fprintf(stderr, "shmbus pub: cannot read the message from stdin\n");
			return NULL;
		}
		text = t;
		text[len] = 0;
		arg = text;
	}
	json_t *j = json_loads(arg, JSON_REJECT_DUPLICATES, &jerr);
	if (!j) {
		const char *t = arg + strspn(arg, " \t\r\n");
		char yerr[256];
		if (t[0] == '[' || (t[0] == '{' && t[1 + strspn(t + 1, " \t\r\n")] == '"'))
			fprintf(stderr, "shmbus pub: bad JSON at line %d, column %d (character %d): "
					"%s\n", jerr.line, jerr.column, jerr.position, jerr.text);
		else if (!(j = yaml_parse(arg, yerr, sizeof(yerr))))
			fprintf(stderr, "shmbus pub: the message is neither JSON nor YAML: %s\n", yerr);
	}
	free(text);
	return j;
}

struct pub_args {
	const char *topic, *type, *json, *fds_path;
	double rate;
	uint64_t count, wait_subs;
	bool quiet;
};

static int parse_args(int argc, char **argv, struct pub_args *a)
{
	const char *pos[3];
	int npos = 0;
	bool once = false;
	for (int i = 1; i < argc; i++) {
		const char *v;
		if ((v = cli_opt(argc, argv, &i, "--rate", "-r"))) {
			if (!cli_positive("pub", "-r", v, &a->rate))
				return 2;
		} else if ((v = cli_opt(argc, argv, &i, "--count", "-n"))) {
			if (!cli_u64("pub", "-n", v, &a->count))
				return 2;
		} else if ((v = cli_opt(argc, argv, &i, "--wait-subscribers", NULL))) {
			if (!cli_u64("pub", "--wait-subscribers", v, &a->wait_subs))
				return 2;
		} else if (strcmp(argv[i], "--once") == 0) {
			once = true;
		} else if ((v = cli_opt(argc, argv, &i, "--descriptor-set", NULL))) {
			a->fds_path = v;
		} else if (strcmp(argv[i], "-q") == 0 || strcmp(argv[i], "--quiet") == 0) {
			a->quiet = true;
		} else if ((argv[i][0] == '-' && argv[i][1] != '\0') || npos == 3) {
			fprintf(stderr, "shmbus pub: unexpected argument '%s'\n%s", argv[i], pub_usage);
			return 2;
		} else {
			pos[npos++] = argv[i];
		}
	}
	if (npos != 3)
		return cli_usage(false, pub_usage);
	a->topic = pos[0];
	a->type = pos[1];
	a->json = pos[2];
	if (once && (a->count > 1 || a->rate > 0)) {
		fprintf(stderr, "shmbus pub: --once publishes one message: not with -n or -r\n");
		return 2;
	}
	if (!a->count)
		a->count = a->rate > 0 ? UINT64_MAX : 1;
	return 0;
}

/* Until the topic has n subscribers (the broker's count, asked every 10
 * ms: no event tells of a subscriber joining), or a signal. */
static int wait_subscribers(shmbus_bus *bus, const char *topic, uint64_t n, bool quiet)
{
	bool said = false;
	while (!cli_stopping()) {
		struct shmbus_topic_info ti;
		int rc = shmbus_topic_inspect(bus, topic, &ti, NULL, 0, NULL, NULL, 0, NULL);
		if (rc)
			return cli_fail("pub", rc, topic);
		if (ti.subscribers >= n)
			return 0;
		if (!said && !quiet)
			fprintf(stderr, "shmbus pub: waiting for %" PRIu64 " subscriber%s of '%s' "
					"(%u now)\n", n, n == 1 ? "" : "s", topic, ti.subscribers);
		said = true;
		nanosleep(&(struct timespec){ 0, 10000000 }, NULL);
	}
	return 0;
}

static int publish_loop(shmbus_pub *pub, const struct pub_args *a,
			const uint8_t *msg, size_t len)
{
	int64_t next = now_mono_ns();
	int64_t period = a->rate > 0 ? (int64_t)(1e9 / a->rate) : 0;
	for (uint64_t i = 0; i < a->count && !cli_stopping(); i++) {
		if (i && period) {
			next += period;
			while (now_sleep_until(next) == EINTR)
				if (cli_stopping())
					return 0;
		}
		uint64_t seq;
		int rc = shmbus_pub_send(pub, msg, len, &seq);
		if (rc)
			return cli_fail("pub", rc, a->topic);
		if (!a->quiet) {
			printf("published #%" PRIu64 " (sequence number %" PRIu64 ", %zu bytes)\n",
			       i + 1, seq, len);
			fflush(stdout);
		}
	}
	return 0;
}

int cmd_pub(int argc, char **argv)
{
	bool help;
	const char *bus_name = cli_common_options(&argc, argv, &help);
	if (help)
		return cli_usage(true, pub_usage);
	struct pub_args a = { 0 };
	int rc = parse_args(argc, argv, &a);
	if (rc)
		return rc;
	json_t *j = parse_message(a.json);
	if (!j)
		return 1;
	cli_catch_signals();
	shmbus_bus *bus = cli_connect(bus_name, "pub", true, NULL);
	if (!bus) {
		json_decref(j);
		return 1;
	}
	pbjson_schema *s = NULL;
	uint32_t topic_max = 0;
	int status = topic_schema(bus, a.topic, a.type, &s, &topic_max);
	if (status == 1 || status == 2) { /* a new topic, or one without a schema */
		status = 0;
		s = a.fds_path ? file_schema(a.fds_path)
			       : load_blob(pbjson_builtin_fds, pbjson_builtin_fds_size,
					   "built-in schemas");
		if (!s)
			status = -1;
		else if (!pbjson_has_type(s, a.type)) {
			fprintf(stderr, "shmbus pub: unknown type '%s'%s%s\n", a.type,
				a.fds_path ? " in " : "", a.fds_path ? a.fds_path : "");
			list_types(s);
			status = -1;
		}
	}
	uint8_t *msg = NULL, *schema_blob = NULL;
	size_t len = 0, schema_len = 0;
	char err[512];
	if (!status && pbjson_encode(s, a.type, j, &msg, &len, err, sizeof(err))) {
		fprintf(stderr, "shmbus pub: %s\n", err);
		status = -1;
	}
	if (!status && !topic_max &&
	    pbjson_schema_subset(s, a.type, &schema_blob, &schema_len, err, sizeof(err))) {
		fprintf(stderr, "shmbus pub: %s\n", err);
		status = -1;
	}
	shmbus_pub *pub = NULL;
	if (!status) {
		struct shmbus_topic_options to;
		shmbus_topic_options_init(&to);
		to.type_name = a.type;
		to.schema = schema_blob;
		to.schema_size = schema_len;
		/* A new topic is sized as a typed publisher sizes it: to the
		 * type's exact bound when its schema has one, else 512 B (the
		 * generated code's default); never below this message. An
		 * existing topic keeps its size, and grows (without loss) if
		 * this message does not fit. */
		to.max_message_size = topic_max;
		if (!topic_max) {
			uint64_t bound = 0;
			to.max_message_size = 512; /* the typed default (shmbus/typed.h) */
			if (pbjson_max_encoded_size(s, a.type, &bound, NULL, 0) == 0)
				to.max_message_size = bound ? (uint32_t)bound : 1;
			if (len > to.max_message_size)
				to.max_message_size = (uint32_t)len;
		}
		struct shmbus_pub_options po;
		shmbus_pub_options_init(&po);
		po.flags = SHMBUS_PUB_GROW;
		rc = shmbus_pub_open(bus, a.topic, &to, &po, &pub);
		if (rc) {
			cli_fail("pub", rc, a.topic);
			status = -1;
		}
	}
	if (!status && a.wait_subs && wait_subscribers(bus, a.topic, a.wait_subs, a.quiet))
		status = -1;
	if (!status && publish_loop(pub, &a, msg, len))
		status = -1;
	if (pub)
		shmbus_pub_close(pub);
	free(msg);
	free(schema_blob);
	pbjson_schema_free(s);
	json_decref(j);
	shmbus_disconnect(bus);
	return status ? 1 : 0;
}
