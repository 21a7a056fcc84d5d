/*
 * cmd_record.c - `shmbus record`: an ordinary subscriber that writes the
 * topics it reads into MCAP files (lib/mcap). Each topic becomes a
 * channel whose schema is the topic's FileDescriptorSet; payloads are
 * copied once, from the slot straight into the chunk being built, through
 * a view, and dropped (counted lost) if a publisher overwrote the slot
 * meanwhile. Publishers never wait for it: when it falls behind it is
 * lapped like any subscriber, and says how much it lost, on the terminal
 * and in the file (a Metadata record "shmbus.losses").
 *
 * Topics come from the broker's topic events: one created while recording
 * is opened at its first message (SHMBUS_START_FIRST), so everything its
 * ring still holds is recorded, and what it no longer holds is counted.
 */
#include <errno.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "mcap.h"
#include "recording.h"

struct rtopic {
	char *name;
	shmbus_sub *sub;   /* NULL once the topic was removed */
	struct shmbus_topic_info ti;
	uint16_t channel;  /* in the current file */
	uint64_t lost_file; /* lost count when the current file began */
	uint64_t recorded;
	uint64_t lost;     /* of subscribers closed before (removed topics) */
	uint64_t missed;   /* published before it could be opened, and gone
			      from its ring by then */
};

struct recorder {
	const char *out;
	char path[4096];
	enum mcap_compression compression;
	double split_mib, split_s, duration_s, chunk_kib;
	bool all;
	char **wanted, **excluded; /* names or glob patterns */
	size_t n_wanted, n_excluded;

	shmbus_bus *bus;
	shmbus_waitset *ws;
	shmbus_topic_watch *watch;
	struct rtopic *t;
	size_t n;
	struct cli_strings existing; /* topics that existed when recording began */

	mcap_writer *w;
	int file_index;
	int64_t file_start;
	uint64_t messages, bytes, dropped;
	int failed; /* exit code 1 after a write error */
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: shmbus record [--bus NAME] -o FILE.mcap [TOPIC|PATTERN...] [-a]\n"
		"                     [--exclude PATTERN]... [--compression zstd|lz4|none]\n"
		"                     [--split-size MIB] [--split-duration S] [--duration S]\n"
		"                     [--chunk-size KIB]\n\n"
		"Records topics into an MCAP file (Foxglove, the mcap CLI and rosbag2 read it).\n"
		"  TOPIC|PATTERN...   these topics, or those matching a glob ('*' also matches\n"
		"                     '/'; \"/imu\" and \"imu\" are the same topic), including\n"
		"                     topics created while recording\n"
		"  -a, --all          every topic, including topics created while recording\n"
		"  --exclude PATTERN  not the topics matching PATTERN (repeatable)\n"
		"  --compression      of the chunks (default zstd)\n"
		"  --split-size MIB   start a new file after MIB MiB: FILE_0.mcap, FILE_1.mcap...\n"
		"  --split-duration S start a new file every S seconds\n"
		"  --duration S       stop after S seconds (else at SIGINT/SIGTERM)\n"
		"  --chunk-size KIB   uncompressed bytes per chunk (default 4096): a recorder\n"
		"                     killed loses at most the chunk it was building\n\n"
		"A topic that exists when recording starts is recorded from then on; one\n"
		"created later is recorded from its first message (the broker says when a\n"
		"topic is created; what its ring no longer holds by then is reported as\n"
		"published before it was found).\n\n"
		"Typed topics get a Schema record (encoding \"protobuf\", the topic's\n"
		"FileDescriptorSet, named after its type) and message encoding \"protobuf\";\n"
		"a typed topic whose publisher stored no schema gets no schema and message\n"
		"encoding \"" REC_NOSCHEMA_ENCODING "\"; untyped topics no schema and\n"
		"\"" REC_RAW_ENCODING "\". The type name and layout are channel metadata.\n"
		"Each message record carries the bus sequence number (low 32 bits) and the\n"
		"publish time as log_time and publish_time. At the end it prints how many\n"
		"messages each topic lost, and stores that in the file as Metadata\n"
		"\"shmbus.losses\". Files are created with mode 0666 less the umask. Exit\n"
		"status 1 if the file could not be written (disk full: the file is kept,\n"
		"readable up to the last complete chunk).\n");
}

static bool matches(char **patterns, size_t n, const char *name)
{
	const char *canon = name + (*name == '/');
	for (size_t i = 0; i < n; i++) {
		const char *p = patterns[i] + (*patterns[i] == '/');
		if (fnmatch(p, canon, 0) == 0)
			return true;
	}
	return false;
}

static bool is_wanted(const struct recorder *rec, const char *name)
{
	return (rec->all || matches(rec->wanted, rec->n_wanted, name)) &&
	       !matches(rec->excluded, rec->n_excluded, name);
}

static struct rtopic *find(const struct recorder *rec, const char *name)
{
	for (size_t i = 0; i < rec->n; i++)
		if (cli_same_topic(rec->t[i].name, name))
			return &rec->t[i];
	return NULL;
}

static bool existed(const struct recorder *rec, const char *name)
{
	for (size_t i = 0; i < rec->existing.n; i++)
		if (cli_same_topic(rec->existing.v[i], name))
			return true;
	return false;
}

/* ------------------------------------------------------------ the file */

static int add_channel(struct recorder *rec, struct rtopic *t)
{
	const char *type = shmbus_sub_type_name(t->sub);
	size_t schema_size = 0;
	const void *schema = shmbus_sub_schema(t->sub, &schema_size);
	uint16_t schema_id = 0;
	char max_size[24], slots[24], history[24];
	const char *encoding = REC_RAW_ENCODING;
	int rc;

	struct rec_foreign f;
	if (rec_foreign_unwrap(schema, schema_size, &f)) {
		/* A channel `play` brought from another encoding: as it was. */
		if (*f.schema_name &&
		    (rc = mcap_writer_add_schema(rec->w, f.schema_name, f.schema_encoding, f.data,
						 f.size, &schema_id)) != 0)
			return rc;
		encoding = f.message_encoding;
	} else if (type[0] && schema && schema_size) {
		rc = mcap_writer_add_schema(rec->w, type, "protobuf", schema, schema_size,
					    &schema_id);
		if (rc)
			return rc;
		encoding = "protobuf";
	} else if (type[0]) {
		/* MCAP's "protobuf" needs a schema: say what these bytes are. */
		encoding = REC_NOSCHEMA_ENCODING;
	}
	snprintf(max_size, sizeof(max_size), "%u", t->ti.max_message_size);
	snprintf(slots, sizeof(slots), "%u", t->ti.slot_count);
	snprintf(history, sizeof(history), "%u", t->ti.history);
	struct mcap_kv md[] = {
		{ REC_KEY_TYPE, type },
		{ REC_KEY_MAX_SIZE, max_size },
		{ REC_KEY_SLOTS, slots },
		{ REC_KEY_HISTORY, history },
	};
	return mcap_writer_add_channel(rec->w, schema_id, t->name, encoding, md, 4, &t->channel);
}

static void stop_with_write_error(struct recorder *rec)
{
	if (!rec->failed)
		fprintf(stderr, "%sshmbus record: %s\n", isatty(2) ? "\n" : "",
			mcap_writer_error(rec->w));
	rec->failed = 1;
	cli_request_stop();
}

static uint64_t lost_now(const struct rtopic *t)
{
	struct shmbus_sub_stats st = { 0 };
	if (t->sub)
		shmbus_sub_stats(t->sub, &st);
	return t->lost + st.lost;
}

static void file_path(struct recorder *rec)
{
	if (rec->split_mib <= 0 && rec->split_s <= 0) {
		snprintf(rec->path, sizeof(rec->path), "%s", rec->out);
		return;
	}
	size_t n = strlen(rec->out);
	int base = (int)n;
	if (n > 5 && strcmp(rec->out + n - 5, ".mcap") == 0)
		base = (int)n - 5;
	snprintf(rec->path, sizeof(rec->path), "%.*s_%d.mcap", base, rec->out, rec->file_index);
}

static int file_open(struct recorder *rec)
{
	struct mcap_writer_options o;
	char err[512];
	mcap_writer_options_init(&o);
	o.compression = rec->compression;
	o.background = true; /* compress and write while taking the next messages */
	if (rec->chunk_kib > 0)
		o.chunk_size = (size_t)(rec->chunk_kib * 1024);
	o.library = "shmbus record " SHMBUS_VERSION_STRING;
	file_path(rec);
	int rc = mcap_writer_open(rec->path, &o, &rec->w, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "shmbus record: %s\n", err);
		return rc;
	}
	rec->file_start = now_mono_ns();
	for (size_t i = 0; i < rec->n; i++) {
		rec->t[i].lost_file = lost_now(&rec->t[i]);
		if (rec->t[i].sub && add_channel(rec, &rec->t[i]) != 0) {
			stop_with_write_error(rec);
			return -EIO;
		}
	}
	return 0;
}

/* Losses go into the file, then the file is finished. */
static void file_close(struct recorder *rec)
{
	char err[512];
	struct mcap_kv *kv = calloc(rec->n + 1, sizeof(*kv));
	char (*vals)[24] = calloc(rec->n + 1, sizeof(*vals));
	if (kv && vals && !rec->failed) {
		for (size_t i = 0; i < rec->n; i++) {
			snprintf(vals[i], sizeof(vals[i]), "%" PRIu64,
				 lost_now(&rec->t[i]) - rec->t[i].lost_file);
			kv[i].key = rec->t[i].name;
			kv[i].value = vals[i];
		}
		mcap_writer_metadata(rec->w, "shmbus.losses", kv, rec->n);
	}
	free(kv);
	free(vals);
	rec->dropped += mcap_writer_messages_dropped(rec->w);
	int rc = mcap_writer_close(rec->w, err, sizeof(err));
	rec->w = NULL;
	if (rc) {
		if (!rec->failed)
			fprintf(stderr, "shmbus record: %s\n", err);
		rec->failed = 1;
	}
}

static bool split_due(const struct recorder *rec, int64_t now)
{
	return (rec->split_mib > 0 &&
		mcap_writer_size(rec->w) >= (uint64_t)(rec->split_mib * (1 << 20))) ||
	       (rec->split_s > 0 && now - rec->file_start >= (int64_t)(rec->split_s * 1e9));
}

/* ------------------------------------------------------------- topics */

/* Opens a wanted topic: from now on if it existed when recording began,
 * else from its first message. */
static int open_topic(struct recorder *rec, const char *name)
{
	struct shmbus_sub_options so;
	shmbus_sub_options_init(&so);
	so.start = existed(rec, name) ? SHMBUS_START_NEW : SHMBUS_START_FIRST;
	/* Everything that can still be had: a recorder keeps what it can. */
	so.lapped = SHMBUS_LAPPED_OLDEST;
	struct rtopic *t = find(rec, name);
	if (!t) {
		if (rec->n >= SHMBUS_WAITSET_MAX - 1) {
			fprintf(stderr, "shmbus record: at most %d topics; not recording '%s'\n",
				SHMBUS_WAITSET_MAX - 1, name);
			return 0;
		}
		struct rtopic *v = realloc(rec->t, (rec->n + 1) * sizeof(*v));
		if (!v)
			return SHMBUS_ENOMEM;
		rec->t = v;
		t = &v[rec->n];
		memset(t, 0, sizeof(*t));
		if (!(t->name = strdup(name)))
			return SHMBUS_ENOMEM;
		rec->n++;
	} else if (t->sub) {
		return 0; /* open already */
	} else {
		so.start = SHMBUS_START_FIRST; /* created again after its removal */
	}
	int rc = shmbus_sub_open(rec->bus, name, NULL, &so, &t->sub);
	if (rc == 0)
		rc = shmbus_topic_inspect(rec->bus, name, &t->ti, NULL, 0, NULL, NULL, 0, NULL);
	if (rc == 0)
		rc = shmbus_waitset_add(rec->ws, t->sub);
	if (rc) {
		shmbus_sub_close(t->sub);
		t->sub = NULL;
		return rc;
	}
	if (so.start == SHMBUS_START_FIRST) {
		/* What the ring no longer held counts lost from the start. */
		struct shmbus_sub_stats st;
		shmbus_sub_stats(t->sub, &st);
		t->missed += st.lost;
	}
	if (add_channel(rec, t) != 0)
		stop_with_write_error(rec);
	return 0;
}

/* A removed topic: what it held was taken; its subscriber goes. */
static void close_topic(struct recorder *rec, struct rtopic *t)
{
	struct shmbus_sub_stats st;
	shmbus_sub_stats(t->sub, &st);
	t->lost += st.lost;
	shmbus_waitset_remove(rec->ws, t->sub);
	shmbus_sub_close(t->sub);
	t->sub = NULL;
}

/* Takes what a topic has (bounded, so one busy topic cannot starve the
 * others) into the file. */
static void drain(struct recorder *rec, struct rtopic *t)
{
	for (int i = 0; i < 256 && t->sub && !rec->failed; i++) {
		struct shmbus_view v;
		void *dst;
		int rc = shmbus_sub_view(t->sub, &v);
		if (rc == SHMBUS_ENOTOPIC)
			close_topic(rec, t);
		if (rc != SHMBUS_OK)
			return;
		int64_t ts = v.info.publish_ns > 0 ? v.info.publish_ns : 0;
		rc = mcap_writer_message_begin(rec->w, t->channel, (uint32_t)v.info.seq,
					       (uint64_t)ts, (uint64_t)ts, v.info.size, &dst);
		if (rc) {
			shmbus_sub_release(t->sub, &v);
			stop_with_write_error(rec);
			return;
		}
		memcpy(dst, v.data, v.info.size);
		/* The copy is good only if no publisher lapped us meanwhile:
		 * the release says so after the copy, and counts a lapped view
		 * lost. One check, so a message is either recorded or lost. */
		bool valid = shmbus_sub_release(t->sub, &v) == SHMBUS_OK;
		if (mcap_writer_message_end(rec->w, valid) != 0) {
			stop_with_write_error(rec);
			return;
		}
		if (valid) {
			t->recorded++;
			rec->messages++;
			rec->bytes += v.info.size;
		}
	}
}

/* Topic events: wanted topics that were created are opened. A removed one
 * is closed once what it held is taken (drain sees SHMBUS_ENOTOPIC). */
static void take_events(struct recorder *rec)
{
	struct shmbus_topic_event ev;
	int rc;
	while ((rc = shmbus_topic_watch_next(rec->watch, &ev)) == 0) {
		if (ev.kind != SHMBUS_TOPIC_CREATED || !is_wanted(rec, ev.name))
			continue;
		if ((rc = open_topic(rec, ev.name)) != 0)
			fprintf(stderr, "shmbus record: %s: %s: %s\n", ev.name, shmbus_strerror(rc),
				shmbus_errmsg());
	}
	if (rc != SHMBUS_EAGAIN)
		fprintf(stderr, "shmbus record: topic events: %s: %s\n", shmbus_strerror(rc),
			shmbus_errmsg());
}

static uint64_t total_lost(const struct recorder *rec)
{
	uint64_t lost = 0;
	for (size_t i = 0; i < rec->n; i++)
		lost += lost_now(&rec->t[i]);
	return lost;
}

static void status(struct recorder *rec, int64_t start, int64_t now, uint64_t *last_bytes,
		   int64_t *last_t)
{
	double dt = (double)(now - *last_t) / 1e9;
	double rate = dt > 0 ? (double)(rec->bytes - *last_bytes) / (1 << 20) / dt : 0;
	fprintf(stderr, "\r\033[Krecording %s: %.0f s, %" PRIu64 " msgs, %.1f MiB, %.1f MiB/s, %" PRIu64
			" lost, %zu topics",
		rec->path, (double)(now - start) / 1e9, rec->messages,
		(double)rec->bytes / (1 << 20), rate, total_lost(rec), rec->n);
	*last_bytes = rec->bytes;
	*last_t = now;
}

/* ---------------------------------------------------------- arguments */

static int parse_args(struct recorder *rec, int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v;
		double x;
		if ((v = cli_opt(argc, argv, &i, "--output", "-o"))) {
			rec->out = v;
		} else if ((v = cli_opt(argc, argv, &i, "--exclude", NULL))) {
			rec->excluded[rec->n_excluded++] = (char *)v;
		} else if ((v = cli_opt(argc, argv, &i, "--compression", NULL))) {
			if (mcap_compression_parse(v, &rec->compression) != 0) {
				fprintf(stderr, "shmbus record: --compression: '%s' is not zstd, lz4 or "
						"none\n", v);
				return 2;
			}
		} else if ((v = cli_opt(argc, argv, &i, "--split-size", NULL))) {
			if (!cli_positive("record", a, v, &rec->split_mib))
				return 2;
		} else if ((v = cli_opt(argc, argv, &i, "--split-duration", NULL))) {
			if (!cli_positive("record", a, v, &rec->split_s))
				return 2;
		} else if ((v = cli_opt(argc, argv, &i, "--duration", NULL))) {
			if (!cli_positive("record", a, v, &rec->duration_s))
				return 2;
		} else if ((v = cli_opt(argc, argv, &i, "--chunk-size", NULL))) {
			if (!cli_positive("record", a, v, &x))
				return 2;
			rec->chunk_kib = x;
		} else if (strcmp(a, "-a") == 0 || strcmp(a, "--all") == 0) {
			rec->all = true;
		} else if (a[0] == '-') {
			fprintf(stderr, "shmbus record: unknown option '%s'\n", a);
			return 2;
		} else if (!strpbrk(a, "*?[") && !shmbus_topic_name_valid(a)) {
			fprintf(stderr, "shmbus record: '%s' is not a valid topic name\n", a);
			return 2;
		} else {
			rec->wanted[rec->n_wanted++] = argv[i];
		}
	}
	if (!rec->out || !*rec->out) {
		fprintf(stderr, "shmbus record: -o FILE.mcap is required\n");
		return 2;
	}
	if (!rec->all && rec->n_wanted == 0) {
		fprintf(stderr, "shmbus record: name topics or patterns, or -a for all of them\n");
		return 2;
	}
	return 0;
}

/* ------------------------------------------------------------ running */

static int collect(void *ctx, const char *topic, const char *type_name)
{
	(void)type_name;
	struct recorder *rec = ctx;
	return cli_strings_add(&rec->existing, topic) ? 0 : SHMBUS_ENOMEM;
}

/* Connects, lists what exists, then watches: a topic created between the
 * list and the watch is not in the list, so it is opened at its first
 * message. */
static int start(struct recorder *rec, const char *bus_name)
{
	int rc;
	if (!(rec->bus = cli_connect(bus_name, "record", true, NULL)))
		return 1;
	if ((rc = shmbus_waitset_create(&rec->ws)) != 0)
		return cli_fail("record", rc, "wait set");
	if ((rc = shmbus_list_topics(rec->bus, collect, rec)) != 0)
		return cli_fail("record", rc, "listing topics");
	if ((rc = shmbus_topic_watch_open(rec->bus, &rec->watch)) != 0 ||
	    (rc = shmbus_waitset_add_watch(rec->ws, rec->watch)) != 0)
		return cli_fail("record", rc, "topic events");
	if (file_open(rec) != 0)
		return 1;
	take_events(rec);
	cli_interrupt_on_signal(NULL, rec->ws, NULL);
	/* From here on no topic is missed: said, for scripts that wait. */
	printf("recording into %s\n", rec->path);
	fflush(stdout);
	return 0;
}

/* The next moment something is due: the end, a split, a status line. */
static int64_t next_due(const struct recorder *rec, int64_t begin, int64_t now, bool tty)
{
	int64_t due = now + (tty ? 500000000 : 1000000000);
	if (rec->duration_s > 0 && begin + (int64_t)(rec->duration_s * 1e9) < due)
		due = begin + (int64_t)(rec->duration_s * 1e9);
	if (rec->split_s > 0 && rec->file_start + (int64_t)(rec->split_s * 1e9) < due)
		due = rec->file_start + (int64_t)(rec->split_s * 1e9);
	return due;
}

static void record_loop(struct recorder *rec)
{
	bool tty = isatty(2);
	int64_t begin = now_mono_ns(), last_status = begin;
	uint64_t status_bytes = 0;
	shmbus_sub *ready[SHMBUS_WAITSET_MAX];
	while (!cli_stopping()) {
		int64_t now = now_mono_ns();
		if (rec->duration_s > 0 && now - begin >= (int64_t)(rec->duration_s * 1e9))
			break;
		if (tty && now - last_status >= 500000000)
			status(rec, begin, now, &status_bytes, &last_status);
		if (split_due(rec, now)) {
			file_close(rec);
			rec->file_index++;
			if (rec->failed || file_open(rec) != 0) {
				rec->failed = 1;
				break;
			}
		}
		size_t n_ready = 0;
		int rc = shmbus_waitset_wait(rec->ws, next_due(rec, begin, now, tty) - now, ready,
					     SHMBUS_WAITSET_MAX, &n_ready);
		if (rc && rc != SHMBUS_ETIMEDOUT && rc != SHMBUS_EINTR) {
			cli_fail("record", rc, "waiting");
			rec->failed = 1;
			break;
		}
		take_events(rec);
		/* Every topic, not only those reported ready: one that filled
		 * while another was being drained must not wait for the next
		 * wake-up (looking costs one read of a slot header). */
		for (size_t k = 0; k < rec->n; k++)
			drain(rec, &rec->t[k]);
	}
	/* What is already published is taken before the file is closed. */
	take_events(rec);
	for (size_t k = 0; k < rec->n && !rec->failed; k++)
		drain(rec, &rec->t[k]);
	if (tty) {
		status(rec, begin, now_mono_ns(), &status_bytes, &last_status);
		fputc('\n', stderr);
	}
}

static void report(const struct recorder *rec)
{
	printf("recorded %" PRIu64 " messages (%.1f MiB) into %s%s\n", rec->messages,
	       (double)rec->bytes / (1 << 20), rec->file_index ? "files up to " : "", rec->path);
	if (rec->dropped)
		printf("%" PRIu64 " messages taken but not written (the file could not be written)\n",
		       rec->dropped);
	for (size_t k = 0; k < rec->n; k++) {
		const struct rtopic *t = &rec->t[k];
		printf("  %-40s %10" PRIu64 " recorded %10" PRIu64 " lost", t->name, t->recorded,
		       lost_now(t));
		if (t->missed)
			printf(" (%" PRIu64 " of them published before it was found)", t->missed);
		printf("\n");
	}
	for (size_t i = 0; i < rec->n_wanted; i++)
		if (!strpbrk(rec->wanted[i], "*?[") && !find(rec, rec->wanted[i]))
			printf("  %-40s never appeared\n", rec->wanted[i]);
}

static void finish(struct recorder *rec)
{
	cli_interrupt_on_signal(NULL, NULL, NULL);
	for (size_t k = 0; k < rec->n; k++) {
		if (rec->t[k].sub)
			shmbus_sub_close(rec->t[k].sub);
		free(rec->t[k].name);
	}
	shmbus_topic_watch_close(rec->watch);
	if (rec->ws)
		shmbus_waitset_destroy(rec->ws);
	free(rec->t);
	cli_strings_free(&rec->existing);
	if (rec->bus)
		shmbus_disconnect(rec->bus);
	free(rec->wanted);
	free(rec->excluded);
}

int cmd_record(int argc, char **argv)
{
	bool help;
	const char *bus_name = cli_common_options(&argc, argv, &help);
	struct recorder rec = { .compression = MCAP_COMPRESSION_ZSTD };
	if (help) {
		usage(stdout);
		return 0;
	}
	rec.wanted = calloc((size_t)argc, sizeof(char *));
	rec.excluded = calloc((size_t)argc, sizeof(char *));
	int rc = rec.wanted && rec.excluded ? parse_args(&rec, argc, argv) : 1;
	if (rc == 0) {
		cli_catch_signals();
		rc = start(&rec, bus_name);
		if (rc == 0 && rec.w) {
			record_loop(&rec);
			file_close(&rec);
			report(&rec);
		}
		if (rec.w) /* start failed after the file was opened */
			file_close(&rec);
		rc = rc ? rc : rec.failed;
	}
	finish(&rec);
	return rc;
}
