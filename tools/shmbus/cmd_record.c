/*
 * cmd_record.c - `shmbus record`: an ordinary subscriber that writes the
 * topics it reads into MCAP files (lib/mcap). Each topic becomes a
 * channel whose schema is the topic's FileDescriptorSet; payloads are
 * copied once, from the slot straight into the chunk being built, through
 * a view, and dropped (counted lost) if a publisher overwrote the slot
 * meanwhile. Publishers never wait for it: when it falls behind it is
 * lapped like any subscriber, and says how much it lost, on the terminal
 * and in the file (a Metadata record "shmbus.losses").
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "mcap.h"
#include "mcap_cli.h"

struct rtopic {
	char *name;
	shmbus_sub *sub;
	struct shmbus_topic_info ti;
	uint16_t channel;   /* in the current file */
	uint64_t lost_file; /* lost count when the current file began */
	uint64_t recorded;
	bool appeared;     /* created after recording began */
	bool seen;         /* a message was taken */
	uint64_t missed;   /* appeared: published before we could subscribe
			      and gone from its history */
};

struct recorder {
	const char *out;
	char path[4096];
	enum mcap_compression compression;
	double split_mib, split_s, duration_s, chunk_kib;
	bool all;
	char **wanted;
	size_t n_wanted;

	shmbus_bus *bus;
	shmbus_waitset *ws;
	struct rtopic *t;
	size_t n;
	char **existing; /* topics that existed when recording began */
	size_t n_existing;

	mcap_writer *w;
	int file_index;
	int64_t file_start;
	uint64_t messages, bytes, dropped;
	int failed; /* exit code 1 after a write error */
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: shmbus record [--bus NAME] -o FILE.mcap [TOPIC...] [-a]\n"
		"                     [--compression zstd|lz4|none] [--split-size MIB]\n"
		"                     [--split-duration S] [--duration S] [--chunk-size KIB]\n\n"
		"Records topics into an MCAP file (Foxglove, the mcap CLI and rosbag2 read it).\n"
		"  -a, --all          every topic, including topics created while recording\n"
		"                     (the bus is checked for new topics once a second)\n"
		"  TOPIC...           these topics; ones that do not exist yet are picked up\n"
		"                     when they appear\n"
		"  --compression      of the chunks (default zstd)\n"
		"  --split-size MIB   start a new file after MIB MiB: FILE_0.mcap, FILE_1.mcap...\n"
		"  --split-duration S start a new file every S seconds\n"
		"  --duration S       stop after S seconds (else at SIGINT/SIGTERM)\n"
		"  --chunk-size KIB   uncompressed bytes per chunk (default 4096): a recorder\n"
		"                     killed loses at most the chunk it was building\n\n"
		"Typed topics get a Schema record (encoding \"protobuf\", the topic's\n"
		"FileDescriptorSet, named after its type) and message encoding \"protobuf\";\n"
		"untyped topics have no schema (id 0) and message encoding \"" MCAP_RAW_ENCODING
		"\".\n"
		"Each message record carries the bus sequence number (low 32 bits) and the\n"
		"publish time as log_time and publish_time. At the end it prints how many\n"
		"messages each topic lost, and stores that in the file as Metadata\n"
		"\"shmbus.losses\". Exit status 1 if the file could not be written (disk full:\n"
		"the file is kept, readable up to the last complete chunk).\n");
}

static bool is_wanted(const struct recorder *rec, const char *name)
{
	if (rec->all)
		return true;
	for (size_t i = 0; i < rec->n_wanted; i++)
		if (strcmp(rec->wanted[i], name) == 0)
			return true;
	return false;
}

static bool is_open(const struct recorder *rec, const char *name)
{
	for (size_t i = 0; i < rec->n; i++)
		if (strcmp(rec->t[i].name, name) == 0)
			return true;
	return false;
}

static bool existed(const struct recorder *rec, const char *name)
{
	for (size_t i = 0; i < rec->n_existing; i++)
		if (strcmp(rec->existing[i], name) == 0)
			return true;
	return false;
}

static int add_channel(struct recorder *rec, struct rtopic *t)
{
	const char *type = shmbus_sub_type_name(t->sub);
	size_t schema_size = 0;
	const void *schema = shmbus_sub_schema(t->sub, &schema_size);
	uint16_t schema_id = 0;
	char max_size[24], slots[24], history[24];
	int rc;

	if (type[0] && schema && schema_size) {
		rc = mcap_writer_add_schema(rec->w, type, "protobuf", schema, schema_size,
					    &schema_id);
		if (rc)
			return rc;
	}
	snprintf(max_size, sizeof(max_size), "%u", t->ti.max_message_size);
	snprintf(slots, sizeof(slots), "%u", t->ti.slot_count);
	snprintf(history, sizeof(history), "%u", t->ti.history);
	struct mcap_kv md[] = {
		{ MCAP_KEY_TYPE, type },
		{ MCAP_KEY_MAX_SIZE, max_size },
		{ MCAP_KEY_SLOTS, slots },
		{ MCAP_KEY_HISTORY, history },
	};
	return mcap_writer_add_channel(rec->w, schema_id, t->name,
				       type[0] ? "protobuf" : MCAP_RAW_ENCODING, md, 4,
				       &t->channel);
}

static void stop_with_write_error(struct recorder *rec)
{
	if (!rec->failed)
		fprintf(stderr, "%sshmbus record: %s\n", isatty(2) ? "\n" : "",
			mcap_writer_error(rec->w));
	rec->failed = 1;
	mcap_cli_stop = 1;
}

static int open_topic(struct recorder *rec, const char *name)
{
	struct shmbus_sub_options so;
	struct rtopic t = { 0 };
	int rc;

	shmbus_sub_options_init(&so);
	/* A topic that existed when recording began: from now on. One that
	 * appeared since: everything it still holds, all published after we
	 * began. */
	if (existed(rec, name)) {
		so.start = SHMBUS_START_NEW;
	} else {
		t.appeared = true;
		so.start = SHMBUS_START_LAST;
		so.last_n = UINT32_MAX;
	}
	rc = shmbus_sub_open(rec->bus, name, NULL, &so, &t.sub);
	if (rc)
		return rc;
	rc = shmbus_topic_inspect(rec->bus, name, &t.ti, NULL, 0, NULL, NULL, 0, NULL);
	if (rc) {
		shmbus_sub_close(t.sub);
		return rc;
	}
	struct rtopic *v = realloc(rec->t, (rec->n + 1) * sizeof(*v));
	t.name = strdup(name);
	if (!v || !t.name) {
		free(t.name);
		if (v)
			rec->t = v;
		shmbus_sub_close(t.sub);
		return SHMBUS_ENOMEM;
	}
	rec->t = v;
	if (rec->ws) {
		rc = shmbus_waitset_add(rec->ws, t.sub);
		if (rc) {
			free(t.name);
			shmbus_sub_close(t.sub);
			return rc;
		}
	}
	rec->t[rec->n] = t;
	if (add_channel(rec, &rec->t[rec->n]) != 0)
		stop_with_write_error(rec);
	rec->n++;
	return 0;
}

struct listing {
	struct recorder *rec;
	char **names;
	size_t n;
};

static int collect(void *ctx, const char *topic, const char *type_name)
{
	(void)type_name;
	struct listing *l = ctx;
	char **v = realloc(l->names, (l->n + 1) * sizeof(*v));
	if (!v)
		return SHMBUS_ENOMEM;
	l->names = v;
	if (!(v[l->n] = strdup(topic)))
		return SHMBUS_ENOMEM;
	l->n++;
	return 0;
}

/* Opens the wanted topics that exist and are not open yet. */
static void discover(struct recorder *rec)
{
	struct listing l = { rec, NULL, 0 };
	int rc = shmbus_list_topics(rec->bus, collect, &l);
	if (rc)
		fprintf(stderr, "shmbus record: listing topics: %s: %s\n", shmbus_strerror(rc),
			shmbus_errmsg());
	for (size_t i = 0; i < l.n; i++) {
		if (is_wanted(rec, l.names[i]) && !is_open(rec, l.names[i])) {
			if (rec->n >= SHMBUS_WAITSET_MAX) {
				static bool said;
				if (!said)
					fprintf(stderr, "shmbus record: at most %d topics; not recording "
							"'%s' and later ones\n",
						SHMBUS_WAITSET_MAX, l.names[i]);
				said = true;
			} else if ((rc = open_topic(rec, l.names[i])) != 0) {
				fprintf(stderr, "shmbus record: %s: %s: %s\n", l.names[i],
					shmbus_strerror(rc), shmbus_errmsg());
			}
		}
		free(l.names[i]);
	}
	free(l.names);
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
	rec->file_start = mcap_cli_monotonic_ns();
	for (size_t i = 0; i < rec->n; i++) {
		struct shmbus_sub_stats st;
		shmbus_sub_stats(rec->t[i].sub, &st);
		rec->t[i].lost_file = st.lost;
		if (add_channel(rec, &rec->t[i]) != 0) {
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
	if (kv && vals) {
		for (size_t i = 0; i < rec->n; i++) {
			struct shmbus_sub_stats st;
			shmbus_sub_stats(rec->t[i].sub, &st);
			snprintf(vals[i], sizeof(vals[i]), "%" PRIu64, st.lost - rec->t[i].lost_file);
			kv[i].key = rec->t[i].name;
			kv[i].value = vals[i];
		}
		if (!rec->failed)
			mcap_writer_metadata(rec->w, "shmbus.losses", kv, rec->n);
	}
	free(kv);
	free(vals);
	rec->dropped += mcap_writer_messages_dropped(rec->w);
	uint64_t kept = mcap_writer_message_count(rec->w);
	int rc = mcap_writer_close(rec->w, err, sizeof(err));
	rec->w = NULL;
	if (rc) {
		if (!rec->failed)
			fprintf(stderr, "shmbus record: %s\n", err);
		rec->failed = 1;
	}
	(void)kept;
}

/* Takes what a topic has (bounded, so one busy topic cannot starve the
 * others) into the file. */
static void drain(struct recorder *rec, struct rtopic *t)
{
	for (int i = 0; i < 256 && !rec->failed; i++) {
		struct shmbus_view v;
		void *dst;
		int rc = shmbus_sub_view(t->sub, &v);
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
		/* The copy is good only if no publisher lapped us meanwhile. */
		bool valid = shmbus_sub_view_valid(t->sub, &v);
		shmbus_sub_release(t->sub, &v);
		if (mcap_writer_message_end(rec->w, valid) != 0) {
			stop_with_write_error(rec);
			return;
		}
		if (t->appeared && !t->seen)
			t->missed = v.info.seq - v.info.lost; /* sequence numbers start at 0 */
		t->seen = true;
		if (valid) {
			t->recorded++;
			rec->messages++;
			rec->bytes += v.info.size;
		}
	}
}

static uint64_t total_lost(const struct recorder *rec)
{
	uint64_t lost = 0;
	for (size_t i = 0; i < rec->n; i++) {
		struct shmbus_sub_stats st;
		shmbus_sub_stats(rec->t[i].sub, &st);
		lost += st.lost;
	}
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

static int parse_args(struct recorder *rec, int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *val = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0) {
			if (!val)
				goto missing;
			rec->out = val;
			i++;
		} else if (strcmp(a, "-a") == 0 || strcmp(a, "--all") == 0) {
			rec->all = true;
		} else if (strcmp(a, "--compression") == 0) {
			if (!val)
				goto missing;
			if (mcap_compression_parse(val, &rec->compression) != 0) {
				fprintf(stderr, "shmbus record: --compression: '%s' is not zstd, lz4 or "
						"none\n",
					val);
				return 2;
			}
			i++;
		} else if (strcmp(a, "--split-size") == 0 || strcmp(a, "--split-duration") == 0 ||
			   strcmp(a, "--duration") == 0 || strcmp(a, "--chunk-size") == 0) {
			double v;
			if (!val)
				goto missing;
			if (!mcap_cli_parse_nonneg(val, &v) || v <= 0) {
				fprintf(stderr, "shmbus record: %s: '%s' is not a positive number\n", a,
					val);
				return 2;
			}
			if (a[2] == 'd')
				rec->duration_s = v;
			else if (a[2] == 'c')
				rec->chunk_kib = v;
			else if (strcmp(a, "--split-size") == 0)
				rec->split_mib = v;
			else
				rec->split_s = v;
			i++;
		} else if (a[0] == '-') {
			fprintf(stderr, "shmbus record: unknown option '%s'\n", a);
			return 2;
		} else {
			if (!shmbus_topic_name_valid(a)) {
				fprintf(stderr, "shmbus record: '%s' is not a valid topic name\n", a);
				return 2;
			}
			rec->wanted[rec->n_wanted++] = argv[i];
		}
		continue;
missing:
		fprintf(stderr, "shmbus record: %s needs a value\n", a);
		return 2;
	}
	if (!rec->out) {
		fprintf(stderr, "shmbus record: -o FILE.mcap is required\n");
		return 2;
	}
	if (!rec->all && rec->n_wanted == 0) {
		fprintf(stderr, "shmbus record: name topics, or -a for all of them\n");
		return 2;
	}
	return 0;
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
	if (!rec.wanted)
		return 1;
	int rc = parse_args(&rec, argc, argv);
	if (rc) {
		free(rec.wanted);
		return rc;
	}
	rec.bus = mcap_cli_connect(bus_name, "record");
	if (!rec.bus) {
		free(rec.wanted);
		return 1;
	}
	mcap_cli_catch_signals();
	rc = shmbus_waitset_create(&rec.ws);
	if (rc == SHMBUS_ENOTSUP)
		rec.ws = NULL; /* old kernel: poll the topics in turn */
	else if (rc) {
		cli_fail("record", rc, rec.bus, "wait set");
		goto out;
	}
	{
		struct listing l = { &rec, NULL, 0 };
		shmbus_list_topics(rec.bus, collect, &l);
		rec.existing = l.names;
		rec.n_existing = l.n;
	}
	if (file_open(&rec) != 0) {
		rec.failed = 1;
		goto out;
	}
	discover(&rec);

	bool tty = isatty(2);
	int64_t start = mcap_cli_monotonic_ns(), last_discover = start, last_status = start;
	uint64_t status_bytes = 0;
	shmbus_sub *ready[SHMBUS_WAITSET_MAX];
	while (!mcap_cli_stop) {
		int64_t now = mcap_cli_monotonic_ns();
		if (rec.duration_s > 0 && now - start >= (int64_t)(rec.duration_s * 1e9))
			break;
		if (now - last_discover >= 1000000000) {
			discover(&rec);
			last_discover = now;
		}
		if (tty && now - last_status >= 500000000)
			status(&rec, start, now, &status_bytes, &last_status);
		if ((rec.split_mib > 0 &&
		     mcap_writer_size(rec.w) >= (uint64_t)(rec.split_mib * (1 << 20))) ||
		    (rec.split_s > 0 && now - rec.file_start >= (int64_t)(rec.split_s * 1e9))) {
			file_close(&rec);
			rec.file_index++;
			if (rec.failed || file_open(&rec) != 0) {
				rec.failed = 1;
				break;
			}
		}
		size_t n_ready = 0;
		if (rec.ws && rec.n) {
			rc = shmbus_waitset_wait(rec.ws, 100000000, ready, SHMBUS_WAITSET_MAX,
						 &n_ready);
			(void)rc;
			/* Every topic, not only those reported ready: one that filled
			 * while another was being drained must not wait for the next
			 * wake-up (looking costs one read of a slot header). */
			for (size_t k = 0; k < rec.n; k++)
				drain(&rec, &rec.t[k]);
		} else if (rec.n) {
			shmbus_sub_wait(rec.t[0].sub, 1000000);
			for (size_t k = 0; k < rec.n; k++)
				drain(&rec, &rec.t[k]);
		} else {
			struct timespec ts = { 0, 100000000 };
			nanosleep(&ts, NULL);
		}
	}
	/* What is already published is taken before the file is closed. */
	for (size_t k = 0; k < rec.n && !rec.failed; k++)
		drain(&rec, &rec.t[k]);
	if (tty) {
		status(&rec, start, mcap_cli_monotonic_ns(), &status_bytes, &last_status);
		fputc('\n', stderr);
	}
	file_close(&rec);

	printf("recorded %" PRIu64 " messages (%.1f MiB) into %s%s\n", rec.messages,
	       (double)rec.bytes / (1 << 20), rec.file_index ? "files like " : "", rec.path);
	if (rec.dropped)
		printf("%" PRIu64 " messages taken but not written (the file could not be written)\n",
		       rec.dropped);
	for (size_t k = 0; k < rec.n; k++) {
		struct shmbus_sub_stats st;
		shmbus_sub_stats(rec.t[k].sub, &st);
		printf("  %-40s %10" PRIu64 " recorded %10" PRIu64 " lost", rec.t[k].name,
		       rec.t[k].recorded, st.lost);
		if (rec.t[k].missed)
			printf(" (and %" PRIu64 " published before it was found)", rec.t[k].missed);
		printf("\n");
	}
	for (size_t i = 0; i < rec.n_wanted; i++)
		if (!is_open(&rec, rec.wanted[i]))
			printf("  %-40s never appeared\n", rec.wanted[i]);
out:
	if (rec.ws)
		shmbus_waitset_destroy(rec.ws);
	for (size_t k = 0; k < rec.n; k++) {
		shmbus_sub_close(rec.t[k].sub);
		free(rec.t[k].name);
	}
	free(rec.t);
	for (size_t i = 0; i < rec.n_existing; i++)
		free(rec.existing[i]);
	free(rec.existing);
	shmbus_disconnect(rec.bus);
	free(rec.wanted);
	return rec.failed ? 1 : 0;
}
