/*
 * cmd_play.c - `shmbus play`: publishes an MCAP recording back onto a bus
 * with its original relative timing (log_time), scaled by --rate. Topics
 * are created as recorded: type name and FileDescriptorSet from the file,
 * max message size from the channel's metadata (written by `record`), or
 * from a scan of the file for recordings made by other tools.
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

struct pchannel {
	bool selected;
	const char *topic; /* after --remap */
	shmbus_pub *pub;
	uint64_t published;
};

struct remap {
	char *from, *to;
};

struct player {
	const char *file;
	double rate, start_s;
	bool loop;
	char **topics;
	size_t n_topics;
	struct remap *remaps;
	size_t n_remaps;
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: shmbus play [--bus NAME] FILE.mcap [--rate X] [--loop] [--start S]\n"
		"                   [--topics TOPIC...] [--remap FROM:=TO]...\n\n"
		"Publishes a recording with its original timing.\n"
		"  --rate X        X times as fast (default 1; 0.5 is half speed)\n"
		"  --loop          start over at the end, until SIGINT/SIGTERM\n"
		"  --start S       skip the first S seconds of the recording\n"
		"  --topics T...   only these recorded topics\n"
		"  --remap A:=B    publish recorded topic A as B (repeatable)\n\n"
		"Topics are created with the recorded type and schema; a topic that exists\n"
		"with another type or a smaller max message size is an error. A recording\n"
		"cut short (recorder killed, disk full) plays up to its last complete chunk.\n");
}

static const char *meta(const struct mcap_channel *ch, const char *key)
{
	for (size_t i = 0; i < ch->n_metadata; i++)
		if (strcmp(ch->metadata[i].key, key) == 0)
			return ch->metadata[i].value;
	return NULL;
}

static int parse_args(struct player *pl, int argc, char **argv)
{
	pl->rate = 1.0;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *val = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(a, "--rate") == 0 || strcmp(a, "--start") == 0) {
			double v;
			if (!val || !mcap_cli_parse_nonneg(val, &v) || (a[2] == 'r' && v <= 0)) {
				fprintf(stderr, "shmbus play: %s needs a %s number\n", a,
					a[2] == 'r' ? "positive" : "non-negative");
				return 2;
			}
			if (a[2] == 'r')
				pl->rate = v;
			else
				pl->start_s = v;
			i++;
		} else if (strcmp(a, "--loop") == 0) {
			pl->loop = true;
		} else if (strcmp(a, "--topics") == 0) {
			while (i + 1 < argc && argv[i + 1][0] != '-')
				pl->topics[pl->n_topics++] = argv[++i];
			if (pl->n_topics == 0) {
				fprintf(stderr, "shmbus play: --topics needs topic names\n");
				return 2;
			}
		} else if (strcmp(a, "--remap") == 0) {
			char *sep = val ? strstr(val, ":=") : NULL;
			if (!sep || sep == val || !sep[2]) {
				fprintf(stderr, "shmbus play: --remap needs FROM:=TO\n");
				return 2;
			}
			*sep = 0;
			pl->remaps[pl->n_remaps].from = argv[i + 1];
			pl->remaps[pl->n_remaps++].to = sep + 2;
			if (!shmbus_topic_name_valid(sep + 2)) {
				fprintf(stderr, "shmbus play: --remap: '%s' is not a valid topic name\n",
					sep + 2);
				return 2;
			}
			i++;
		} else if (a[0] == '-') {
			fprintf(stderr, "shmbus play: unknown option '%s'\n", a);
			return 2;
		} else if (!pl->file) {
			pl->file = a;
		} else {
			fprintf(stderr, "shmbus play: one file at a time ('%s')\n", a);
			return 2;
		}
	}
	if (!pl->file) {
		fprintf(stderr, "shmbus play: which FILE.mcap?\n");
		return 2;
	}
	return 0;
}

/* Sleep until the monotonic time t (ns), or a signal. */
static void sleep_until(int64_t t)
{
	struct timespec ts = { (time_t)(t / 1000000000), (long)(t % 1000000000) };
	while (!mcap_cli_stop && clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

static int open_publishers(shmbus_bus *bus, mcap_reader *r,
			   struct pchannel *pc)
{
	const struct mcap_channel *ch;
	size_t n = mcap_reader_channels(r, &ch);
	for (size_t i = 0; i < n; i++) {
		if (!pc[i].selected)
			continue;
		struct shmbus_topic_options to;
		const struct mcap_schema *s = mcap_reader_schema(r, ch[i].schema_id);
		const char *type = meta(&ch[i], MCAP_KEY_TYPE);
		const char *max = meta(&ch[i], MCAP_KEY_MAX_SIZE);
		const char *slots = meta(&ch[i], MCAP_KEY_SLOTS);
		shmbus_topic_options_init(&to);
		if (s && strcmp(s->encoding, "protobuf") == 0) {
			to.type_name = s->name;
			to.schema = s->data;
			to.schema_size = s->size;
		}
		if (type && type[0])
			to.type_name = type;
		unsigned long long m = max ? strtoull(max, NULL, 10) : 0;
		if (m < ch[i].max_message_size)
			m = ch[i].max_message_size;
		if (m == 0)
			m = 1;
		if (m > UINT32_MAX) {
			fprintf(stderr, "shmbus play: %s: messages of %llu bytes are too large\n",
				ch[i].topic, m);
			return -1;
		}
		to.max_message_size = (uint32_t)m;
		if (slots && strtoul(slots, NULL, 10) > 0)
			to.slot_count = (uint32_t)strtoul(slots, NULL, 10);
		int rc = shmbus_pub_open(bus, pc[i].topic, &to, NULL, &pc[i].pub);
		if (rc) {
			cli_fail("play", rc, bus, pc[i].topic);
			return -1;
		}
	}
	return 0;
}

static void progress(const char *file, double at, double total, uint64_t n)
{
	fprintf(stderr, "\r\033[Kplaying %s: %.1f / %.1f s, %" PRIu64 " messages", file, at, total,
		n);
}

/* One pass over the file. 0 at its end, 1 when stopped, -1 on error. */
static int play_once(const struct player *pl, mcap_reader *r, struct pchannel *pc,
		     uint64_t *total)
{
	const struct mcap_channel *chans;
	size_t n_chans = mcap_reader_channels(r, &chans);
	const struct mcap_info *in = mcap_reader_info(r);
	uint64_t t0_log = in->start_time + (uint64_t)(pl->start_s * 1e9);
	double span = in->end_time > t0_log ? (double)(in->end_time - t0_log) / 1e9 : 0;
	int64_t t0 = mcap_cli_monotonic_ns(), last_progress = 0;
	bool tty = isatty(2);
	struct mcap_message m;
	int rc;
	mcap_reader_rewind(r);
	while (!mcap_cli_stop && (rc = mcap_reader_next(r, &m)) == 1) {
		const struct mcap_channel *ch = mcap_reader_channel(r, m.channel_id);
		/* Channels were all indexed at open; one only named later (a
		 * foreign file's chunk) has no publisher and is skipped. */
		size_t idx = (size_t)(ch - chans);
		if (idx >= n_chans)
			continue;
		struct pchannel *p = &pc[idx];
		if (!p->selected || m.log_time < t0_log)
			continue;
		int64_t target = t0 + (int64_t)((double)(m.log_time - t0_log) / pl->rate);
		if (target > mcap_cli_monotonic_ns())
			sleep_until(target);
		if (mcap_cli_stop)
			break;
		int prc = shmbus_pub_send(p->pub, m.data, m.size, NULL);
		if (prc) {
			fprintf(stderr, "%sshmbus play: %s: %s\n", tty ? "\n" : "", p->topic,
				shmbus_strerror(prc));
			return -1;
		}
		p->published++;
		(*total)++;
		if (tty) {
			int64_t now = mcap_cli_monotonic_ns();
			if (now - last_progress > 250000000) {
				progress(pl->file, (double)(m.log_time - t0_log) / 1e9, span, *total);
				last_progress = now;
			}
		}
	}
	if (mcap_cli_stop)
		return 1;
	if (rc < 0) {
		fprintf(stderr, "%sshmbus play: %s\n", tty ? "\n" : "", mcap_reader_error(r));
		return -1;
	}
	if (tty)
		progress(pl->file, span, span, *total);
	return 0;
}

int cmd_play(int argc, char **argv)
{
	bool help;
	const char *bus_name = cli_common_options(&argc, argv, &help);
	struct player pl = { 0 };
	if (help) {
		usage(stdout);
		return 0;
	}
	pl.topics = calloc((size_t)argc, sizeof(char *));
	pl.remaps = calloc((size_t)argc, sizeof(*pl.remaps));
	int ret = 1, rc;
	size_t n = 0;
	const struct mcap_channel *ch = NULL;
	mcap_reader *r = NULL;
	struct pchannel *pc = NULL;
	shmbus_bus *bus = NULL;
	char err[512];
	if (!pl.topics || !pl.remaps)
		goto out;
	if ((rc = parse_args(&pl, argc, argv)) != 0) {
		ret = rc;
		goto out;
	}
	if (mcap_reader_open(pl.file, 0, &r, err, sizeof(err)) != 0) {
		fprintf(stderr, "shmbus play: %s\n", err);
		goto out;
	}
	/* Without record's metadata the largest message per channel is found
	 * by reading the file once. */
	n = mcap_reader_channels(r, &ch);
	for (size_t i = 0; i < n; i++) {
		if (!meta(&ch[i], MCAP_KEY_MAX_SIZE)) {
			mcap_reader_close(r);
			if (mcap_reader_open(pl.file, MCAP_READ_SCAN, &r, err, sizeof(err)) != 0) {
				r = NULL;
				fprintf(stderr, "shmbus play: %s\n", err);
				goto out;
			}
			n = mcap_reader_channels(r, &ch);
			break;
		}
	}
	const struct mcap_info *in = mcap_reader_info(r);
	if (!in->complete)
		fprintf(stderr, "shmbus play: %s is incomplete (%s); playing the %" PRIu64
				" messages it holds\n",
			pl.file, in->why_incomplete, in->message_count);
	pc = calloc(n ? n : 1, sizeof(*pc));
	if (!pc)
		goto out;
	for (size_t i = 0; i < n; i++) {
		pc[i].selected = pl.n_topics == 0;
		for (size_t k = 0; k < pl.n_topics; k++)
			if (strcmp(pl.topics[k], ch[i].topic) == 0)
				pc[i].selected = true;
		pc[i].topic = ch[i].topic;
		for (size_t k = 0; k < pl.n_remaps; k++)
			if (strcmp(pl.remaps[k].from, ch[i].topic) == 0)
				pc[i].topic = pl.remaps[k].to;
		if (pc[i].selected && !shmbus_topic_name_valid(pc[i].topic)) {
			fprintf(stderr, "shmbus play: recorded topic '%s' is not a valid bus topic "
					"name; --remap it\n",
				pc[i].topic);
			goto out;
		}
	}
	for (size_t k = 0; k < pl.n_topics; k++) {
		bool found = false;
		for (size_t i = 0; i < n; i++)
			found = found || strcmp(pl.topics[k], ch[i].topic) == 0;
		if (!found) {
			fprintf(stderr, "shmbus play: %s has no topic '%s'\n", pl.file, pl.topics[k]);
			goto out;
		}
	}
	bus = mcap_cli_connect(bus_name, "play");
	if (!bus || open_publishers(bus, r, pc) != 0)
		goto out;
	mcap_cli_catch_signals();
	uint64_t total = 0;
	do {
		rc = play_once(&pl, r, pc, &total);
	} while (rc == 0 && pl.loop && !mcap_cli_stop);
	if (isatty(2))
		fputc('\n', stderr);
	printf("published %" PRIu64 " messages\n", total);
	for (size_t i = 0; i < n; i++)
		if (pc[i].selected)
			printf("  %-40s %10" PRIu64 "\n", pc[i].topic, pc[i].published);
	ret = rc < 0 ? 1 : 0;
out:
	if (pc) {
		for (size_t i = 0; i < n; i++)
			if (pc[i].pub)
				shmbus_pub_close(pc[i].pub);
	}
	free(pc);
	if (bus)
		shmbus_disconnect(bus);
	mcap_reader_close(r);
	free(pl.topics);
	free(pl.remaps);
	return ret;
}
