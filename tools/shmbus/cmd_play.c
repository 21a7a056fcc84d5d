/*
 * cmd_play.c - `shmbus play`: publishes MCAP recordings back onto a bus
 * with their original relative timing (log_time), scaled by --rate.
 * Several files (a recording split by `record --split-*`) play as one:
 * all are opened before the first message goes out and merged by time,
 * so a file boundary costs nothing. Topics are created as recorded, under
 * their recorded names (ROS style "/imu" too): type name and
 * FileDescriptorSet from the file, sized for the largest recorded message.
 * On a terminal, the keyboard pauses, steps and quits.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "mcap.h"
#include "recording.h"

extern const unsigned char clock_timestamp_fds[];
extern const size_t clock_timestamp_fds_size;

struct ptopic {
	const char *recorded; /* the name in the files */
	const char *name;     /* published as (after --remap) */
	const struct mcap_channel *ch; /* where its type and schema come from */
	mcap_reader *r;
	uint64_t max_size;
	uint32_t slots;
	bool selected;
	shmbus_pub *pub;
	uint64_t published;
};

struct pfile {
	const char *path;
	mcap_reader *r;
	struct mcap_message m; /* the next message, when `have` */
	bool have, done;
	uint32_t *topic_of;    /* by channel id: topic index + 1 */
};

struct remap {
	char *from, *to;
};

struct player {
	double rate, start_s, delay_s, duration_s, clock_hz;
	bool loop;
	char **topics;
	size_t n_topics;
	struct remap *remaps;
	size_t n_remaps;

	struct pfile *f;
	size_t nf;
	struct ptopic *t;
	size_t nt;
	uint64_t t_first, t_last; /* the recordings' log_time range */
	shmbus_bus *bus;
	shmbus_pub *clock;

	bool tty, keys, paused, step, quit, failed;
	struct termios saved;
	int64_t t0;     /* monotonic time of the recording's t_begin */
	uint64_t t_begin, t_end;
	uint64_t total;
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: shmbus play [--bus NAME] FILE.mcap... [--rate X] [--loop] [--start S]\n"
		"                   [--duration S] [--delay S] [--clock[=HZ]] [--topics TOPIC...]\n"
		"                   [--remap FROM:=TO]...\n\n"
		"Publishes recordings with their original timing. Several files (as\n"
		"`record --split-size` writes them) play as one recording, by time.\n"
		"  --rate X        X times as fast (default 1; 0.5 is half speed)\n"
		"  --loop          start over at the end, until SIGINT/SIGTERM\n"
		"  --start S       skip the first S seconds of the recording\n"
		"  --duration S    play S seconds of the recording, then stop\n"
		"  --delay S       wait S seconds after creating the topics before the first\n"
		"                  message (so subscribers can join)\n"
		"  --clock[=HZ]    also publish the recording's time on " REC_CLOCK_TOPIC " as\n"
		"                  google.protobuf.Timestamp, HZ times a second of the\n"
		"                  recording (default 100)\n"
		"  --topics T...   only these recorded topics\n"
		"  --remap A:=B    publish recorded topic A as B (repeatable)\n\n"
		"On a terminal: space pauses and resumes, s (or the right arrow) publishes\n"
		"the next message while paused, q stops.\n\n"
		"Topics are created with the recorded name, type and schema, for messages as\n"
		"large as the largest recorded one; a topic that exists with another type or\n"
		"a smaller max message size is an error. Names as ROS and Foxglove tools\n"
		"write them (\"/imu\") play as they are. Channels of other encodings (ROS 2's\n"
		"cdr, json, ...) are published as they are, their schema and encodings kept\n"
		"with the topic, so `shmbus record` writes them again as they were. A\n"
		"recording cut short (recorder killed, disk full) plays up to its last\n"
		"complete chunk.\n");
}

static const char *meta(const struct mcap_channel *ch, const char *key)
{
	for (size_t i = 0; i < ch->n_metadata; i++)
		if (strcmp(ch->metadata[i].key, key) == 0)
			return ch->metadata[i].value;
	return NULL;
}

/* ---------------------------------------------------------- arguments */

static int parse_remap(struct player *pl, char *v)
{
	char *sep = strstr(v, ":=");
	if (!sep || sep == v || !sep[2]) {
		fprintf(stderr, "shmbus play: --remap needs FROM:=TO\n");
		return 2;
	}
	*sep = 0;
	if (!shmbus_topic_name_valid(sep + 2)) {
		fprintf(stderr, "shmbus play: --remap: '%s' is not a valid topic name\n", sep + 2);
		return 2;
	}
	pl->remaps[pl->n_remaps++] = (struct remap){ v, sep + 2 };
	return 0;
}

static int parse_args(struct player *pl, int argc, char **argv, const char **files,
		      size_t *nf)
{
	pl->rate = 1.0;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v;
		if ((v = cli_opt(argc, argv, &i, "--rate", NULL))) {
			if (!cli_positive("play", "--rate", v, &pl->rate))
				return 2;
		} else if ((v = cli_opt(argc, argv, &i, "--start", NULL))) {
			if (!cli_nonneg("play", "--start", v, &pl->start_s))
				return 2;
		} else if ((v = cli_opt(argc, argv, &i, "--duration", NULL))) {
			if (!cli_positive("play", "--duration", v, &pl->duration_s))
				return 2;
		} else if ((v = cli_opt(argc, argv, &i, "--delay", NULL))) {
			if (!cli_nonneg("play", "--delay", v, &pl->delay_s))
				return 2;
		} else if (strcmp(a, "--clock") == 0) {
			pl->clock_hz = 100;
		} else if (strncmp(a, "--clock=", 8) == 0) {
			if (!cli_positive("play", "--clock", a + 8, &pl->clock_hz))
				return 2;
		} else if (strcmp(a, "--loop") == 0) {
			pl->loop = true;
		} else if (strcmp(a, "--topics") == 0) {
			while (i + 1 < argc && argv[i + 1][0] != '-')
				pl->topics[pl->n_topics++] = argv[++i];
			if (pl->n_topics == 0) {
				fprintf(stderr, "shmbus play: --topics needs topic names\n");
				return 2;
			}
		} else if ((v = cli_opt(argc, argv, &i, "--remap", NULL))) {
			if (parse_remap(pl, (char *)v))
				return 2;
		} else if (a[0] == '-') {
			fprintf(stderr, "shmbus play: unknown option '%s'\n", a);
			return 2;
		} else {
			files[(*nf)++] = a;
		}
	}
	if (!*nf) {
		fprintf(stderr, "shmbus play: which FILE.mcap?\n");
		return 2;
	}
	return 0;
}

/* -------------------------------------------------------------- files */

/* Opens a file; scanned when a channel lacks the max size metadata
 * `record` writes, so each channel's largest message is known. */
static int open_file(struct pfile *f)
{
	char err[512];
	if (mcap_reader_open(f->path, 0, &f->r, err, sizeof(err)) != 0)
		goto fail;
	const struct mcap_channel *ch;
	size_t n = mcap_reader_channels(f->r, &ch);
	for (size_t i = 0; i < n; i++) {
		if (meta(&ch[i], REC_KEY_MAX_SIZE))
			continue;
		mcap_reader_close(f->r);
		f->r = NULL;
		if (mcap_reader_open(f->path, MCAP_READ_SCAN, &f->r, err, sizeof(err)) != 0)
			goto fail;
		break;
	}
	const struct mcap_info *in = mcap_reader_info(f->r);
	if (!in->complete)
		fprintf(stderr, "shmbus play: %s is incomplete (%s); playing the %" PRIu64
				" messages it holds\n", f->path, in->why_incomplete, in->message_count);
	f->topic_of = calloc(65536, sizeof(*f->topic_of));
	if (!f->topic_of) {
		fprintf(stderr, "shmbus play: out of memory\n");
		return -1;
	}
	return 0;
fail:
	fprintf(stderr, "shmbus play: %s\n", err);
	return -1;
}

static const char *remapped(const struct player *pl, const char *topic)
{
	for (size_t k = 0; k < pl->n_remaps; k++)
		if (cli_same_topic(pl->remaps[k].from, topic))
			return pl->remaps[k].to;
	return topic;
}

/* Whether the channel is what the bus carries natively: protobuf with
 * its schema, or what `record` writes for untyped and schema-less topics.
 * Others travel in an envelope (recording.h). */
static bool native(mcap_reader *r, const struct mcap_channel *ch)
{
	const struct mcap_schema *s = mcap_reader_schema(r, ch->schema_id);
	const char *e = ch->message_encoding;
	if (s)
		return strcmp(s->encoding, "protobuf") == 0 && strcmp(e, "protobuf") == 0;
	return strcmp(e, REC_RAW_ENCODING) == 0 || strcmp(e, REC_NOSCHEMA_ENCODING) == 0;
}

static void foreign_of(mcap_reader *r, const struct mcap_channel *ch, struct rec_foreign *f)
{
	const struct mcap_schema *s = mcap_reader_schema(r, ch->schema_id);
	*f = (struct rec_foreign){ s ? s->encoding : "", ch->message_encoding, s ? s->name : "",
				   s ? s->data : NULL, s ? s->size : 0 };
}

/* The bus type name of a channel's topic ("" for untyped). */
static const char *type_of(mcap_reader *r, const struct mcap_channel *ch, char *buf, size_t len)
{
	const char *type = meta(ch, REC_KEY_TYPE);
	const struct mcap_schema *s = mcap_reader_schema(r, ch->schema_id);
	if (type && *type)
		return type;
	if (!native(r, ch)) {
		struct rec_foreign f;
		foreign_of(r, ch, &f);
		rec_foreign_type(&f, buf, len);
		return buf;
	}
	return s ? s->name : "";
}

/* The topic a channel is published on, added when new; the same recorded
 * topic in several files is one topic. */
static int topic_for(struct player *pl, struct pfile *f, const struct mcap_channel *ch)
{
	size_t i = 0;
	while (i < pl->nt && strcmp(pl->t[i].recorded, ch->topic) != 0)
		i++;
	if (i == pl->nt) {
		struct ptopic *v = realloc(pl->t, (pl->nt + 1) * sizeof(*v));
		if (!v)
			return -1;
		pl->t = v;
		v[i] = (struct ptopic){ .recorded = ch->topic, .name = remapped(pl, ch->topic),
					.ch = ch, .r = f->r, .selected = pl->n_topics == 0 };
		for (size_t k = 0; k < pl->n_topics; k++)
			v[i].selected |= cli_same_topic(pl->topics[k], ch->topic);
		pl->nt++;
	} else {
		char a[256], b[256];
		const char *now = type_of(f->r, ch, a, sizeof(a));
		const char *before = type_of(pl->t[i].r, pl->t[i].ch, b, sizeof(b));
		if (strcmp(now, before) != 0) {
			fprintf(stderr, "shmbus play: topic '%s' has type '%s' in %s but '%s' "
					"before\n", ch->topic, now, f->path, before);
			return -1;
		}
	}
	struct ptopic *t = &pl->t[i];
	const char *max = meta(ch, REC_KEY_MAX_SIZE), *slots = meta(ch, REC_KEY_SLOTS);
	uint64_t m = max ? strtoull(max, NULL, 10) : 0;
	if (ch->max_message_size > m)
		m = ch->max_message_size;
	if (m > t->max_size)
		t->max_size = m;
	if (slots && strtoul(slots, NULL, 10) > t->slots)
		t->slots = (uint32_t)strtoul(slots, NULL, 10);
	f->topic_of[ch->id] = (uint32_t)i + 1;
	return 0;
}

static int index_topics(struct player *pl)
{
	pl->t_first = UINT64_MAX;
	for (size_t k = 0; k < pl->nf; k++) {
		struct pfile *f = &pl->f[k];
		const struct mcap_channel *ch;
		size_t n = mcap_reader_channels(f->r, &ch);
		for (size_t i = 0; i < n; i++)
			if (topic_for(pl, f, &ch[i]) != 0)
				return -1;
		const struct mcap_info *in = mcap_reader_info(f->r);
		if (in->message_count && in->start_time < pl->t_first)
			pl->t_first = in->start_time;
		if (in->message_count && in->end_time > pl->t_last)
			pl->t_last = in->end_time;
	}
	if (pl->t_first == UINT64_MAX)
		pl->t_first = 0;
	for (size_t k = 0; k < pl->n_topics; k++) {
		bool found = false;
		for (size_t i = 0; i < pl->nt; i++)
			found |= cli_same_topic(pl->topics[k], pl->t[i].recorded);
		if (!found) {
			fprintf(stderr, "shmbus play: the recording has no topic '%s'\n", pl->topics[k]);
			return -1;
		}
	}
	for (size_t i = 0; i < pl->nt; i++) {
		if (pl->t[i].selected && !shmbus_topic_name_valid(pl->t[i].name)) {
			fprintf(stderr, "shmbus play: recorded topic '%s' is not a valid bus topic "
					"name; --remap it\n", pl->t[i].name);
			return -1;
		}
	}
	return 0;
}

/* ---------------------------------------------------------- publishers */

/* Room for the largest recorded message: rounded up to a power of two
 * (at least 64 bytes), so a little larger message fits as well. */
static uint32_t size_for(uint64_t largest)
{
	uint64_t m = 64;
	while (m < largest)
		m *= 2;
	return m > UINT32_MAX ? UINT32_MAX : (uint32_t)m;
}

static int open_publishers(struct player *pl)
{
	for (size_t i = 0; i < pl->nt; i++) {
		struct ptopic *t = &pl->t[i];
		if (!t->selected)
			continue;
		struct shmbus_topic_options to;
		shmbus_topic_options_init(&to);
		const struct mcap_schema *s = mcap_reader_schema(t->r, t->ch->schema_id);
		char buf[256];
		uint8_t *envelope = NULL;
		const char *type = type_of(t->r, t->ch, buf, sizeof(buf));
		to.type_name = *type ? type : NULL;
		if (native(t->r, t->ch) && s) {
			to.schema = s->data;
			to.schema_size = s->size;
		} else if (!native(t->r, t->ch)) {
			struct rec_foreign f;
			foreign_of(t->r, t->ch, &f);
			if (!rec_foreign_wrap(&f, &envelope, &to.schema_size)) {
				fprintf(stderr, "shmbus play: out of memory\n");
				return -1;
			}
			to.schema = envelope;
		}
		if (t->max_size > UINT32_MAX) {
			fprintf(stderr, "shmbus play: %s: messages of %" PRIu64 " bytes are too large\n",
				t->recorded, t->max_size);
			return -1;
		}
		to.max_message_size = size_for(t->max_size);
		to.slot_count = t->slots; /* 0: the bus's default */
		int rc = shmbus_pub_open(pl->bus, t->name, &to, NULL, &t->pub);
		free(envelope);
		if (rc)
			return cli_fail("play", rc, t->name);
	}
	if (pl->clock_hz > 0) {
		struct shmbus_topic_options to;
		shmbus_topic_options_init(&to);
		to.type_name = "google.protobuf.Timestamp";
		to.schema = clock_timestamp_fds;
		to.schema_size = clock_timestamp_fds_size;
		int rc = shmbus_pub_open(pl->bus, REC_CLOCK_TOPIC, &to, NULL, &pl->clock);
		if (rc)
			return cli_fail("play", rc, REC_CLOCK_TOPIC);
	}
	return 0;
}

/* google.protobuf.Timestamp {seconds = 1; nanos = 2} for t ns. */
static int publish_clock(struct player *pl, uint64_t t)
{
	uint8_t b[24];
	size_t n = 0;
	uint64_t v[2] = { t / 1000000000, t % 1000000000 };
	for (int f = 0; f < 2; f++) {
		if (!v[f])
			continue;
		b[n++] = (uint8_t)((f + 1) << 3); /* varint field */
		for (uint64_t x = v[f]; ; x >>= 7) {
			b[n++] = (uint8_t)((x & 0x7f) | (x >= 0x80 ? 0x80 : 0));
			if (x < 0x80)
				break;
		}
	}
	int rc = shmbus_pub_send(pl->clock, b, n, NULL);
	return rc ? cli_fail("play", rc, REC_CLOCK_TOPIC) : 0;
}

/* ------------------------------------------------------------ keyboard */

static void keys_on(struct player *pl)
{
	struct termios t;
	pl->keys = pl->tty && isatty(0) && tcgetattr(0, &pl->saved) == 0;
	if (!pl->keys)
		return;
	t = pl->saved;
	t.c_lflag &= (tcflag_t) ~(ICANON | ECHO); /* ISIG stays: Ctrl-C works */
	t.c_cc[VMIN] = 0;
	t.c_cc[VTIME] = 0;
	tcsetattr(0, TCSANOW, &t);
}

static void keys_off(struct player *pl)
{
	if (pl->keys)
		tcsetattr(0, TCSANOW, &pl->saved);
	pl->keys = false;
}

static void say(const struct player *pl, const char *what)
{
	fprintf(stderr, "\r\033[K%s (message %" PRIu64 ")\n", what, pl->total);
}

/* Reads what was typed: space pauses or resumes (the timeline moves on by
 * the time paused), s or the right arrow steps, q quits. */
static void read_keys(struct player *pl, int64_t *paused_at)
{
	char c[16];
	ssize_t n = read(0, c, sizeof(c));
	for (ssize_t i = 0; i < n; i++) {
		if (c[i] == ' ') {
			pl->paused = !pl->paused;
			if (pl->paused) {
				*paused_at = now_mono_ns();
				say(pl, "paused: space resumes, s steps, q quits");
			} else {
				pl->t0 += now_mono_ns() - *paused_at;
				say(pl, "resumed");
			}
		} else if (c[i] == 's' || (c[i] == 'C' && i >= 2 && c[i - 1] == '[')) {
			pl->step = pl->paused;
		} else if (c[i] == 'q') {
			pl->quit = true;
		}
	}
}

/* Waits until monotonic time `until` (INT64_MAX: a key), or a key, or a
 * signal. With the keyboard: poll on it; else a precise sleep. */
static void wait_until(struct player *pl, int64_t until)
{
	static int64_t paused_at;
	if (!pl->keys) {
		now_sleep_until(until);
		return;
	}
	int64_t left = until - now_mono_ns();
	if (pl->paused)
		left = INT64_MAX;
	struct timespec ts = { (time_t)(left / 1000000000), (long)(left % 1000000000) };
	struct pollfd p = { 0, POLLIN, 0 };
	if (ppoll(&p, 1, left == INT64_MAX ? NULL : (left > 0 ? &ts : &(struct timespec){ 0 }),
		  NULL) > 0)
		read_keys(pl, &paused_at);
}

/* -------------------------------------------------------------- playing */

/* The file whose next message comes first (by log_time), or NULL. */
static struct pfile *next_file(struct player *pl)
{
	struct pfile *best = NULL;
	for (size_t k = 0; k < pl->nf; k++) {
		struct pfile *f = &pl->f[k];
		if (!f->have && !f->done) {
			int rc = mcap_reader_next(f->r, &f->m);
			f->have = rc == 1;
			f->done = rc != 1;
			if (rc < 0) {
				fprintf(stderr, "%sshmbus play: %s\n", pl->tty ? "\n" : "",
					mcap_reader_error(f->r));
				pl->failed = true;
				return NULL;
			}
		}
		if (f->have && (!best || f->m.log_time < best->m.log_time))
			best = f;
	}
	return best;
}

static int64_t due(const struct player *pl, uint64_t log_time)
{
	uint64_t since = log_time > pl->t_begin ? log_time - pl->t_begin : 0;
	return pl->t0 + (int64_t)((double)since / pl->rate);
}

/* Publishes the clock ticks due before log time `upto`. */
static int clock_upto(struct player *pl, uint64_t upto, uint64_t *next_tick)
{
	if (!pl->clock)
		return 0;
	uint64_t period = (uint64_t)(1e9 / pl->clock_hz);
	while (*next_tick <= upto && !cli_stopping() && !pl->quit) {
		int64_t when = due(pl, *next_tick);
		while (!pl->paused && when > now_mono_ns() && !cli_stopping() && !pl->quit)
			wait_until(pl, when);
		if (pl->paused)
			return 0; /* ticks resume with the messages */
		if (publish_clock(pl, *next_tick) != 0)
			return -1;
		*next_tick += period ? period : 1;
	}
	return 0;
}

static void progress(const struct player *pl, uint64_t at)
{
	double total = pl->t_end > pl->t_begin ? (double)(pl->t_end - pl->t_begin) / 1e9 : 0;
	double now = at > pl->t_begin ? (double)(at - pl->t_begin) / 1e9 : 0;
	fprintf(stderr, "\r\033[K%s %.1f / %.1f s, %" PRIu64 " messages",
		pl->paused ? "paused " : "playing", now, total, pl->total);
}

/* One pass over the recording. 0 at its end, 1 when stopped, -1 on error. */
static int play_once(struct player *pl)
{
	int64_t last_progress = 0;
	uint64_t next_tick = pl->t_begin;
	for (size_t k = 0; k < pl->nf; k++) {
		mcap_reader_rewind(pl->f[k].r);
		pl->f[k].have = pl->f[k].done = false;
	}
	pl->t0 = now_mono_ns();
	struct pfile *f;
	while (!cli_stopping() && !pl->quit && !pl->failed && (f = next_file(pl))) {
		struct mcap_message *m = &f->m;
		if (m->log_time > pl->t_end)
			break;
		f->have = false;
		uint32_t ti = f->topic_of[m->channel_id];
		struct ptopic *t = ti ? &pl->t[ti - 1] : NULL;
		if (!t || !t->selected || m->log_time < pl->t_begin)
			continue;
		if (clock_upto(pl, m->log_time, &next_tick) != 0)
			return -1;
		/* Paused: only a step lets the message go. */
		while ((pl->paused && !pl->step) ||
		       (!pl->paused && due(pl, m->log_time) > now_mono_ns())) {
			if (cli_stopping() || pl->quit)
				return 1;
			wait_until(pl, due(pl, m->log_time));
		}
		int rc = shmbus_pub_send(t->pub, m->data, m->size, NULL);
		if (rc) {
			fprintf(stderr, "%s", pl->tty ? "\n" : "");
			cli_fail("play", rc, t->name);
			return -1;
		}
		t->published++;
		pl->total++;
		if (pl->step) {
			pl->step = false;
			/* The paused timeline continues from this message. */
			say(pl, "stepped");
		}
		if (pl->tty && now_mono_ns() - last_progress > 250000000) {
			progress(pl, m->log_time);
			last_progress = now_mono_ns();
		}
	}
	if (pl->failed)
		return -1;
	if (cli_stopping() || pl->quit)
		return 1;
	if (pl->tty)
		progress(pl, pl->t_end);
	return 0;
}

static void report(const struct player *pl)
{
	if (pl->tty)
		fputc('\n', stderr);
	printf("published %" PRIu64 " messages\n", pl->total);
	for (size_t i = 0; i < pl->nt; i++)
		if (pl->t[i].selected)
			printf("  %-40s %10" PRIu64 "\n", pl->t[i].name, pl->t[i].published);
}

static void player_free(struct player *pl)
{
	keys_off(pl);
	for (size_t i = 0; i < pl->nt; i++)
		if (pl->t[i].pub)
			shmbus_pub_close(pl->t[i].pub);
	if (pl->clock)
		shmbus_pub_close(pl->clock);
	free(pl->t);
	for (size_t k = 0; k < pl->nf; k++) {
		mcap_reader_close(pl->f[k].r);
		free(pl->f[k].topic_of);
	}
	free(pl->f);
	if (pl->bus)
		shmbus_disconnect(pl->bus);
	free(pl->topics);
	free(pl->remaps);
}

static int run(struct player *pl, const char *bus_name)
{
	for (size_t k = 0; k < pl->nf; k++)
		if (open_file(&pl->f[k]) != 0)
			return 1;
	if (index_topics(pl) != 0)
		return 1;
	pl->t_begin = pl->t_first + (uint64_t)(pl->start_s * 1e9);
	pl->t_end = pl->duration_s > 0 ? pl->t_begin + (uint64_t)(pl->duration_s * 1e9)
				       : pl->t_last;
	if (!(pl->bus = cli_connect(bus_name, "play", true, NULL)) || open_publishers(pl) != 0)
		return 1;
	cli_catch_signals();
	/* Wake up when asked, not up to 50 us later (the default slack). */
	prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
	pl->tty = isatty(2);
	keys_on(pl);
	if (pl->delay_s > 0) {
		int64_t start = now_mono_ns() + (int64_t)(pl->delay_s * 1e9);
		while (!cli_stopping() && !pl->quit && now_mono_ns() < start)
			wait_until(pl, start);
	}
	int rc;
	do
		rc = play_once(pl);
	while (rc == 0 && pl->loop && !cli_stopping());
	keys_off(pl);
	report(pl);
	return rc < 0 ? 1 : 0;
}

int cmd_play(int argc, char **argv)
{
	bool help;
	const char *bus_name = cli_common_options(&argc, argv, &help);
	if (help) {
		usage(stdout);
		return 0;
	}
	struct player pl = { 0 };
	const char **files = calloc((size_t)argc, sizeof(char *));
	pl.topics = calloc((size_t)argc, sizeof(char *));
	pl.remaps = calloc((size_t)argc, sizeof(*pl.remaps));
	int rc = files && pl.topics && pl.remaps ? 0 : 1;
	if (rc == 0)
		rc = parse_args(&pl, argc, argv, files, &pl.nf);
	if (rc == 0 && !(pl.f = calloc(pl.nf, sizeof(*pl.f))))
		rc = 1;
	for (size_t k = 0; rc == 0 && k < pl.nf; k++)
		pl.f[k].path = files[k];
	if (rc == 0)
		rc = run(&pl, bus_name);
	free(files);
	player_free(&pl);
	return rc;
}
