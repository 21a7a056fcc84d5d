/*
 * cmd_mcap.c - `shmbus mcap info|cat|recover FILE`: what a recording
 * holds, its messages as JSON Lines decoded with the schema stored in the
 * file (lib/pbjson), so no .proto is needed, and a file cut short by a
 * crash rewritten whole, so that readers that insist on a summary (as
 * Foxglove's does) take it.
 */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "mcap.h"
#include "recording.h"
#include "pbjson.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: shmbus mcap info FILE.mcap [--check]\n"
		"       shmbus mcap cat FILE.mcap [--topics TOPIC...] [--full]\n"
		"       shmbus mcap recover FILE.mcap [-o OUT.mcap] [--compression zstd|lz4|none]\n\n"
		"info: time range, duration, compression and chunks; per topic its type,\n"
		"      message count, mean rate (messages over the recording's duration) and\n"
		"      message encoding; says \"incomplete\" for a file cut short (recorder\n"
		"      killed, disk full), which is then read up to its last complete chunk.\n"
		"      info reads the summary; --check also reads every chunk and checks\n"
		"      every CRC (exit 1 and the damaged ranges if one does not hold).\n"
		"cat:  one JSON object per message, in file order:\n"
		"      {\"topic\":..., \"_meta\":{\"seq\":..., \"time\":..., \"log_time_ns\":...,\n"
		"       \"publish_time_ns\":..., \"size\":...}, \"msg\":{...}}\n"
		"      \"msg\" is decoded with the file's protobuf schema; payloads without one\n"
		"      print as {\"_base64\": ...}. --full prints bytes fields whole.\n"
		"recover: writes what a file cut short or damaged still holds (every message\n"
		"      of its whole chunks, its schemas, channels and metadata) into a new,\n"
		"      complete and indexed file: OUT.mcap, by default FILE-recovered.mcap\n"
		"      (never over an existing file). A damaged record is skipped up to the\n"
		"      next chunk whose CRC holds (or that an intact summary indexes); each\n"
		"      skipped range is named, and then the exit status is 1.\n"
		"A corrupt file is an error naming the offset (exit status 1).\n");
}

static void iso_time(char *buf, size_t len, uint64_t ns)
{
	time_t s = (time_t)(ns / 1000000000);
	struct tm tm;
	gmtime_r(&s, &tm);
	size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, len - n, ".%09uZ", (unsigned)(ns % 1000000000));
}

static const char *type_of(mcap_reader *r, const struct mcap_channel *ch)
{
	for (size_t i = 0; i < ch->n_metadata; i++)
		if (strcmp(ch->metadata[i].key, REC_KEY_TYPE) == 0 && ch->metadata[i].value[0])
			return ch->metadata[i].value;
	const struct mcap_schema *s = mcap_reader_schema(r, ch->schema_id);
	return s ? s->name : "(untyped)";
}

/* info --check: every chunk read and its CRC checked (a salvaging scan,
 * so that every damaged range is named, not only the first), then the
 * data section's CRC, and the messages against the summary's count. */
static int mcap_check(const char *file, const struct mcap_info *summary, bool info_failed)
{
	mcap_reader *r;
	char err[512];
	uint64_t from, to;
	const char *why;
	int status = 0;
	if (mcap_reader_open(file, MCAP_READ_SALVAGE, &r, err, sizeof(err)) != 0) {
		printf("check:       failed: %s\n", err);
		return 1;
	}
	const struct mcap_info *in = mcap_reader_info(r);
	for (size_t i = 0; mcap_reader_damage(r, i, &from, &to, &why) == 0; i++) {
		printf("check:       damaged: bytes %" PRIu64 "..%" PRIu64 " (%" PRIu64 " bytes): %s\n",
		       from, to, to - from, why);
		status = 1;
	}
	if (status == 0 && summary->complete && in->message_count != summary->message_count) {
		printf("check:       the summary counts %" PRIu64 " messages, the chunks hold %" PRIu64
		       "\n",
		       summary->message_count, in->message_count);
		status = 1;
	}
	mcap_reader_close(r);
	if (status == 0 && summary->complete) {
		if (mcap_reader_open(file, MCAP_READ_SCAN | MCAP_READ_VERIFY_DATA_CRC, &r, err,
				     sizeof(err)) != 0) {
			printf("check:       %s\n", err);
			return 1;
		}
		mcap_reader_close(r);
	}
	if (status == 0 && info_failed) {
		/* What info refused lies outside every chunk (the summary, say). */
		printf("check:       every chunk whole, every chunk CRC holds; the damage info "
		       "reported is outside them\n");
		status = 1;
	}
	if (status)
		printf("             `shmbus mcap recover %s` writes the rest into a whole file\n", file);
	else
		printf("check:       ok: %s, every CRC holds\n",
		       summary->complete ? "every record read" : "every record up to the cut read");
	return status;
}

static int mcap_info(const char *file, bool check)
{
	mcap_reader *r;
	char err[512];
	if (mcap_reader_open(file, 0, &r, err, sizeof(err)) != 0) {
		fprintf(stderr, "shmbus mcap info: %s\n", err);
		if (check) {
			/* Name every damaged range, not only the first. */
			struct mcap_info none = { 0 };
			mcap_check(file, &none, true);
		}
		return 1;
	}
	const struct mcap_info *in = mcap_reader_info(r);
	char t0[64] = "-", t1[64] = "-";
	if (in->message_count) {
		iso_time(t0, sizeof(t0), in->start_time);
		iso_time(t1, sizeof(t1), in->end_time);
	}
	printf("file:        %s (%" PRIu64 " bytes)\n", file, in->file_size);
	if (in->complete)
		printf("status:      complete\n");
	else
		printf("status:      incomplete: %s; read up to offset %" PRIu64 "\n",
		       in->why_incomplete, in->end_offset);
	printf("library:     %s\n", in->library);
	printf("messages:    %" PRIu64 "\n", in->message_count);
	printf("start:       %s (%" PRIu64 " ns)\n", t0, in->message_count ? in->start_time : 0);
	printf("end:         %s (%" PRIu64 " ns)\n", t1, in->message_count ? in->end_time : 0);
	printf("duration:    %.3f s\n",
	       in->message_count ? (double)(in->end_time - in->start_time) / 1e9 : 0.0);
	printf("chunks:      %u", in->chunk_count);
	if (in->chunks_zstd)
		printf(", zstd: %u", in->chunks_zstd);
	if (in->chunks_lz4)
		printf(", lz4: %u", in->chunks_lz4);
	if (in->chunks_none)
		printf(", none: %u", in->chunks_none);
	printf("\n");
	if (in->uncompressed_bytes)
		printf("compression: %.1f MiB stored for %.1f MiB (%.0f%%)\n",
		       (double)in->compressed_bytes / (1 << 20),
		       (double)in->uncompressed_bytes / (1 << 20),
		       100.0 * (double)in->compressed_bytes / (double)in->uncompressed_bytes);
	const struct mcap_channel *ch;
	size_t n = mcap_reader_channels(r, &ch);
	double span = in->message_count ? (double)(in->end_time - in->start_time) / 1e9 : 0;
	printf("topics:      %zu\n", n);
	for (size_t i = 0; i < n; i++) {
		char rate[32] = "-";
		if (span > 0)
			snprintf(rate, sizeof(rate), "%.2f Hz", (double)ch[i].message_count / span);
		printf("  %-40s %-36s %10" PRIu64 " msgs %12s  %s\n", ch[i].topic,
		       type_of(r, &ch[i]), ch[i].message_count, rate, ch[i].message_encoding);
	}
	for (size_t i = 0; i < in->metadata_count; i++) {
		const char *name;
		const struct mcap_kv *kv;
		size_t nkv;
		if (mcap_reader_metadata(r, i, &name, &kv, &nkv) != 0)
			break;
		printf("metadata:    %s\n", name);
		for (size_t k = 0; k < nkv; k++)
			printf("  %-40s %s\n", kv[k].key, kv[k].value);
	}
	int status = check ? mcap_check(file, in, false) : 0;
	mcap_reader_close(r);
	return status;
}

struct cat_channel {
	bool selected;
	bool tried;
	pbjson_schema *schema;
	const char *type;
};

static json_t *raw(const uint8_t *p, size_t n, size_t limit, const char *why)
{
	size_t m = limit && n > limit ? limit : n;
	char *b = pbjson_base64(p, m);
	json_t *j = json_object();
	if (!b || !j) {
		free(b);
		json_decref(j);
		return NULL;
	}
	json_object_set_new(j, "_base64", json_string(b));
	if (m < n)
		json_object_set_new(j, "_size", json_integer((json_int_t)n));
	if (why)
		json_object_set_new(j, "_error", json_string(why));
	free(b);
	return j;
}

static int mcap_cat(const char *file, char **topics, size_t n_topics, bool full)
{
	mcap_reader *r;
	char err[512];
	int ret = 1;
	if (mcap_reader_open(file, 0, &r, err, sizeof(err)) != 0) {
		fprintf(stderr, "shmbus mcap cat: %s\n", err);
		return 1;
	}
	/* By channel id: a cut-short file may name channels only inside its
	 * chunks, so the reader's table can grow while reading. */
	struct cat_channel *cc = calloc(65536, sizeof(*cc));
	struct pbjson_options po;
	pbjson_options_init(&po);
	po.full_bytes = full;
	if (!cc)
		goto out;
	if (!mcap_reader_info(r)->complete)
		fprintf(stderr, "shmbus mcap cat: %s is incomplete (%s)\n", file,
			mcap_reader_info(r)->why_incomplete);
	struct mcap_message m;
	int rc;
	while ((rc = mcap_reader_next(r, &m)) == 1) {
		const struct mcap_channel *c = mcap_reader_channel(r, m.channel_id);
		struct cat_channel *x = &cc[m.channel_id];
		if (!x->tried) {
			const struct mcap_schema *s = mcap_reader_schema(r, c->schema_id);
			x->tried = true;
			x->selected = n_topics == 0;
			for (size_t k = 0; k < n_topics; k++)
				x->selected |= strcmp(topics[k], c->topic) == 0;
			if (x->selected && s && strcmp(s->encoding, "protobuf") == 0 &&
			    strcmp(c->message_encoding, "protobuf") == 0) {
				if (pbjson_schema_load(s->data, s->size, &x->schema, err, sizeof(err)))
					fprintf(stderr, "shmbus mcap cat: %s: schema %s does not load: %s\n",
						c->topic, s->name, err);
				else
					x->type = s->name;
			}
		}
		if (!x->selected)
			continue;
		json_t *msg = NULL;
		if (x->schema) {
			if (pbjson_decode(x->schema, x->type, m.data, m.size, &po, &msg, err,
					  sizeof(err)) != 0)
				msg = raw(m.data, m.size, full ? 0 : 4096, err);
		} else {
			msg = raw(m.data, m.size, full ? 0 : 4096, NULL);
		}
		char when[64], lt[24], pt[24];
		iso_time(when, sizeof(when), m.log_time);
		snprintf(lt, sizeof(lt), "%" PRIu64, m.log_time);
		snprintf(pt, sizeof(pt), "%" PRIu64, m.publish_time);
		json_t *line = json_pack("{s:s,s:{s:I,s:s,s:s,s:s,s:I},s:o}", "topic", c->topic,
					 "_meta", "seq", (json_int_t)m.sequence, "time", when,
					 "log_time_ns", lt, "publish_time_ns", pt, "size",
					 (json_int_t)m.size, "msg", msg ? msg : json_null());
		char *text = line ? pbjson_dumps(line) : NULL;
		json_decref(line);
		if (!text) {
			fprintf(stderr, "shmbus mcap cat: out of memory\n");
			goto out;
		}
		bool ok = puts(text) >= 0;
		free(text);
		if (!ok)
			goto out;
	}
	if (fflush(stdout) != 0)
		goto out;
	if (rc < 0) {
		fprintf(stderr, "shmbus mcap cat: %s\n", mcap_reader_error(r));
		goto out;
	}
	ret = 0;
out:
	if (cc)
		for (size_t i = 0; i < 65536; i++)
			pbjson_schema_free(cc[i].schema);
	free(cc);
	mcap_reader_close(r);
	return ret;
}

/* The output's id of each input schema and channel (0: not written yet). */
struct id_map {
	uint16_t schema[65536];
	uint16_t channel[65536];
};

static int copy_channel(mcap_reader *r, mcap_writer *w, struct id_map *m, uint16_t id,
			size_t *copied)
{
	const struct mcap_channel *ch = mcap_reader_channel(r, id);
	const struct mcap_schema *s = mcap_reader_schema(r, ch->schema_id);
	int rc = 0;
	if (s && !m->schema[s->id])
		rc = mcap_writer_add_schema(w, s->name, s->encoding, s->data, s->size,
					    &m->schema[s->id]);
	if (rc == 0)
		rc = mcap_writer_add_channel(w, s ? m->schema[s->id] : 0, ch->topic,
					     ch->message_encoding, ch->metadata, ch->n_metadata,
					     &m->channel[id]);
	*copied += rc == 0;
	return rc;
}

static int copy_metadata(mcap_reader *r, mcap_writer *w)
{
	for (size_t i = 0; i < mcap_reader_info(r)->metadata_count; i++) {
		const char *name;
		const struct mcap_kv *kv;
		size_t n;
		int rc = mcap_reader_metadata(r, i, &name, &kv, &n);
		if (rc == 0)
			rc = mcap_writer_metadata(w, name, kv, n);
		if (rc)
			return rc;
	}
	return 0;
}

static int mcap_recover(const char *file, const char *out, enum mcap_compression comp)
{
	char err[512], def[4096];
	if (!out) {
		size_t n = strlen(file);
		int base = n > 5 && strcmp(file + n - 5, ".mcap") == 0 ? (int)n - 5 : (int)n;
		snprintf(def, sizeof(def), "%.*s-recovered.mcap", base, file);
		out = def;
	}
	struct stat st;
	if (stat(out, &st) == 0) {
		fprintf(stderr, "shmbus mcap recover: %s exists; name another with -o\n", out);
		return 1;
	}
	mcap_reader *r;
	if (mcap_reader_open(file, MCAP_READ_SALVAGE, &r, err, sizeof(err)) != 0) {
		fprintf(stderr, "shmbus mcap recover: %s\n", err);
		return 1;
	}
	struct mcap_writer_options o;
	mcap_writer_options_init(&o);
	o.compression = comp;
	o.library = "shmbus mcap recover " SHMBUS_VERSION_STRING;
	mcap_writer *w;
	struct id_map *m = calloc(1, sizeof(*m));
	if (!m || mcap_writer_open(out, &o, &w, err, sizeof(err)) != 0) {
		fprintf(stderr, "shmbus mcap recover: %s\n", m ? err : "out of memory");
		free(m);
		mcap_reader_close(r);
		return 1;
	}
	struct mcap_message msg;
	uint64_t n = 0;
	size_t channels = 0;
	int rc, wrc = 0;
	while (wrc == 0 && (rc = mcap_reader_next(r, &msg)) == 1) {
		if (!m->channel[msg.channel_id])
			wrc = copy_channel(r, w, m, msg.channel_id, &channels);
		if (wrc == 0)
			wrc = mcap_writer_message(w, m->channel[msg.channel_id], msg.sequence,
						  msg.log_time, msg.publish_time, msg.data, msg.size);
		n++;
	}
	if (wrc == 0)
		wrc = copy_metadata(r, w);
	int crc = mcap_writer_close(w, err, sizeof(err));
	int status = 0;
	if (wrc || crc) {
		fprintf(stderr, "shmbus mcap recover: writing %s: %s\n", out,
			crc ? err : strerror(-wrc));
		status = 1;
	} else {
		const struct mcap_info *in = mcap_reader_info(r);
		printf("recovered %" PRIu64 " messages of %zu channels into %s\n", n, channels,
		       out);
		if (!in->complete)
			printf("the input was cut short: %s\n", in->why_incomplete);
		uint64_t from, to;
		const char *why;
		for (size_t i = 0; mcap_reader_damage(r, i, &from, &to, &why) == 0; i++)
			fprintf(stderr, "shmbus mcap recover: skipped bytes %" PRIu64 "..%" PRIu64
					" (%" PRIu64 " bytes): %s\n",
				from, to, to - from, why);
		if (in->damaged_ranges) {
			if (in->summary_read && in->summary_messages >= n)
				fprintf(stderr, "shmbus mcap recover: the file's summary counts %" PRIu64
						" messages; the skipped bytes held %" PRIu64 " of them\n",
					in->summary_messages, in->summary_messages - n);
			status = 1;
		}
		if (rc < 0) {
			fprintf(stderr, "shmbus mcap recover: stopped early: %s\n",
				mcap_reader_error(r));
			status = 1;
		}
	}
	free(m);
	mcap_reader_close(r);
	return status;
}

int cmd_mcap(int argc, char **argv)
{
	bool help;
	(void)cli_common_options(&argc, argv, &help);
	if (help) {
		usage(stdout);
		return 0;
	}
	if (argc < 3) {
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[1], "info") == 0) {
		bool check = argc == 4 && strcmp(argv[3], "--check") == 0;
		if (argc != 3 && !check) {
			usage(stderr);
			return 2;
		}
		return mcap_info(argv[2], check);
	}
	if (strcmp(argv[1], "cat") == 0) {
		char **topics = calloc((size_t)argc, sizeof(char *));
		size_t nt = 0;
		bool full = false;
		if (!topics)
			return 1;
		for (int i = 3; i < argc; i++) {
			if (strcmp(argv[i], "--topics") == 0) {
				while (i + 1 < argc && argv[i + 1][0] != '-')
					topics[nt++] = argv[++i];
			} else if (strcmp(argv[i], "--full") == 0) {
				full = true;
			} else {
				fprintf(stderr, "shmbus mcap cat: unexpected argument '%s'\n", argv[i]);
				free(topics);
				return 2;
			}
		}
		int rc = mcap_cat(argv[2], topics, nt, full);
		free(topics);
		return rc;
	}
	if (strcmp(argv[1], "recover") == 0) {
		const char *out = NULL;
		enum mcap_compression comp = MCAP_COMPRESSION_ZSTD;
		for (int i = 3; i < argc; i++) {
			const char *v;
			if ((v = cli_opt(argc, argv, &i, "--output", "-o")) && *v) {
				out = v;
			} else if ((v = cli_opt(argc, argv, &i, "--compression", NULL)) &&
				   mcap_compression_parse(v, &comp) == 0) {
				continue;
			} else {
				fprintf(stderr, "shmbus mcap recover: bad argument '%s'\n", argv[i]);
				return 2;
			}
		}
		return mcap_recover(argv[2], out, comp);
	}
	fprintf(stderr, "shmbus mcap: unknown subcommand '%s' (info, cat or recover)\n", argv[1]);
	return 2;
}
