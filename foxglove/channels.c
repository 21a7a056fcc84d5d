/*
 * channels.c - the bus side of shmbus-foxglove: which topics are offered
 * (the topic watch, as the broker reports them: no polling), their
 * schemas, and the bus subscribers that read them while clients subscribe,
 * whose event descriptors sit in the event loop. Messages
 * are viewed in place and copied once, into the frame every subscribed
 * client sends; the bus's own losses are counted and reported.
 */
#include "server.h"

#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const unsigned char fox_known_fds[];
extern const size_t fox_known_fds_size;

/* At most this many messages per channel each time its descriptor is
 * readable, so one busy topic cannot hold up the clients' sockets (the
 * descriptor stays readable while messages remain). */
#define DRAIN_BUDGET 256
/* Loss reports to clients: at most one a second per channel. */
#define REPORT_PERIOD_NS 1000000000LL

static bool topic_selected(const struct fox_options *o, const char *topic)
{
	if (o->n_patterns == 0)
		return true;
	/* "/imu" and "imu" name the same topic. */
	while (*topic == '/')
		topic++;
	for (size_t i = 0; i < o->n_patterns; i++) {
		const char *p = o->patterns[i];

		while (*p == '/')
			p++;
		if (fnmatch(p, topic, 0) == 0)
			return true;
	}
	return false;
}

struct fox_channel *fox_channel_find(struct fox_server *s, uint32_t id)
{
	for (struct fox_channel *ch = s->channels; ch; ch = ch->next)
		if (ch->id == id)
			return ch;
	return NULL;
}

struct fox_channel *fox_channel_by_topic(struct fox_server *s, const char *topic)
{
	while (*topic == '/')
		topic++;
	for (struct fox_channel *ch = s->channels; ch; ch = ch->next) {
		const char *t = ch->topic;

		while (*t == '/')
			t++;
		if (strcmp(t, topic) == 0)
			return ch;
	}
	return NULL;
}

static void channel_free(struct fox_channel *ch)
{
	free(ch->topic);
	free(ch->type);
	free(ch->schema);
	free(ch->schema_b64);
	fox_frame_unref(ch->last);
	free(ch);
}

/* A topic appeared: learn its schema (from a subscriber opened for that
 * alone: the schema lives in the topic's segment) and advertise it. */
static void channel_add(struct fox_server *s, const char *topic, const char *type)
{
	struct fox_channel *ch, **tail;
	shmbus_sub *probe;
	const void *schema;
	size_t len = 0;
	int rc;

	if (!topic_selected(&s->opt, topic)) {
		if (s->opt.verbose)
			fox_log("topic '%s' not offered: no --topics pattern matches", topic);
		return;
	}
	if (fox_channel_by_topic(s, topic))
		return;
	if (!type[0]) {
		fox_log("topic '%s' not advertised: untyped (no schema a client could decode)",
			topic);
		return;
	}
	rc = shmbus_sub_open(s->bus, topic, NULL, NULL, &probe);
	if (rc) {
		/* ENOTOPIC: gone again already; the watch reports that too. */
		if (rc != SHMBUS_ENOTOPIC)
			fox_log("topic '%s' not advertised: %s: %s", topic, shmbus_strerror(rc),
				shmbus_errmsg());
		return;
	}
	schema = shmbus_sub_schema(probe, &len);
	if (!schema || !len) {
		fox_log("topic '%s' not advertised: type '%s' has no schema stored with it",
			topic, type);
		shmbus_sub_close(probe);
		return;
	}
	ch = calloc(1, sizeof(*ch));
	if (ch) {
		ch->topic = strdup(shmbus_sub_topic(probe));
		ch->type = strdup(shmbus_sub_type_name(probe));
		ch->schema = malloc(len);
		ch->schema_b64 = pbjson_base64(schema, len);
	}
	if (!ch || !ch->topic || !ch->type || !ch->schema || !ch->schema_b64) {
		fox_log("topic '%s' not advertised: out of memory", topic);
		shmbus_sub_close(probe);
		if (ch)
			channel_free(ch);
		return;
	}
	memcpy(ch->schema, schema, len);
	ch->schema_len = len;
	shmbus_sub_close(probe);
	ch->id = ++s->next_channel_id;
	for (tail = &s->channels; *tail; tail = &(*tail)->next)
		;
	*tail = ch;
	if (s->opt.verbose)
		fox_log("channel %u: '%s' (%s)", ch->id, ch->topic, ch->type);
	fox_send_advertise(s, NULL, ch);
}

/* Each subscriber has a descriptor of its own (a library thread that
 * sleeps on the topic): closing the subscriber stops that thread before
 * the topic is unmapped. (A wait set's descriptor would serve many
 * topics with one thread, but a subscriber leaving such a set while its
 * thread is awake can have the thread read the unmapped topic.) */
static void close_bus_sub(struct fox_channel *ch)
{
	if (!ch->sub)
		return;
	fox_release_fd(ch->wsi);
	ch->wsi = NULL;
	shmbus_sub_close(ch->sub);
	ch->sub = NULL;
	/* A later first subscriber gets the newest message from the bus. */
	fox_frame_unref(ch->last);
	ch->last = NULL;
	ch->paused = ch->skipping = false;
}

int fox_channel_attach(struct fox_server *s, struct fox_subscription *sub, char *err,
		       size_t errlen)
{
	struct fox_channel *ch = sub->ch;
	struct shmbus_topic_options to;
	struct shmbus_sub_options so;
	int fd, rc;

	if (!ch->sub) {
		shmbus_topic_options_init(&to);
		to.type_name = ch->type;
		shmbus_sub_options_init(&so);
		/* The newest message at once: a camera shows a picture, a
		 * static transform published long ago is known. */
		so.start = SHMBUS_START_LAST;
		so.last_n = 1;
		rc = shmbus_sub_open(s->bus, ch->topic, &to, &so, &ch->sub);
		if (rc) {
			snprintf(err, errlen, "cannot subscribe to '%s': %s: %s", ch->topic,
				 shmbus_strerror(rc), shmbus_errmsg());
			ch->sub = NULL;
			return -1;
		}
		rc = shmbus_sub_fd(ch->sub, &fd);
		if (rc || !(ch->wsi = fox_adopt_fd(s, fd, SRC_CHANNEL, ch))) {
			snprintf(err, errlen, "cannot subscribe to '%s': no event descriptor: %s",
				 ch->topic, rc ? shmbus_errmsg() : "libwebsockets refused it");
			shmbus_sub_close(ch->sub);
			ch->sub = NULL;
			return -1;
		}
	} else {
		if (ch->last) {
			ch->last->refs++; /* the queue's */
			fox_client_queue_data(sub, ch->last);
		}
		if (ch->paused) {
			/* Its other clients are behind; this one is not. */
			ch->paused = false;
			lws_rx_flow_control(ch->wsi, 1);
		}
	}
	sub->ch_next = ch->subs;
	ch->subs = sub;
	return 0;
}

void fox_channel_detach(struct fox_server *s, struct fox_subscription *sub)
{
	struct fox_channel *ch = sub->ch;

	(void)s;
	for (struct fox_subscription **p = &ch->subs; *p; p = &(*p)->ch_next) {
		if (*p == sub) {
			*p = sub->ch_next;
			break;
		}
	}
	if (!ch->subs)
		close_bus_sub(ch);
}

/* A topic went away: its subscriptions end, clients are told. */
static void channel_remove(struct fox_server *s, const char *topic)
{
	struct fox_channel *ch = fox_channel_by_topic(s, topic);

	if (!ch)
		return;
	for (struct fox_channel **p = &s->channels; *p; p = &(*p)->next) {
		if (*p == ch) {
			*p = ch->next;
			break;
		}
	}
	fox_send_unadvertise(s, ch->id);
	while (ch->subs) {
		struct fox_subscription *sub = ch->subs;

		ch->subs = sub->ch_next;
		fox_client_forget(sub);
	}
	close_bus_sub(ch);
	if (s->opt.verbose || ch->lost)
		fox_log("channel %u '%s' removed: %llu messages received, %llu lost on the bus, "
			"%llu skipped while every client was behind",
			ch->id, ch->topic, (unsigned long long)ch->received,
			(unsigned long long)ch->lost, (unsigned long long)ch->skipped);
	channel_free(ch);
}

void fox_channels_on_watch(struct fox_server *s)
{
	struct shmbus_topic_event ev;
	int rc;

	if (!s->watch)
		return;
	while ((rc = shmbus_topic_watch_next(s->watch, &ev)) == SHMBUS_OK) {
		if (ev.kind == SHMBUS_TOPIC_CREATED)
			channel_add(s, ev.name, ev.type_name);
		else if (ev.kind == SHMBUS_TOPIC_REMOVED)
			channel_remove(s, ev.name);
	}
	if (rc != SHMBUS_EAGAIN) {
		/* Its descriptor would stay readable: stop watching rather than
		 * spin. Channels already offered keep working. */
		fox_log("topic events stopped: %s: %s; new topics will not be advertised",
			shmbus_strerror(rc), shmbus_errmsg());
		fox_release_fd(s->watch_wsi);
		s->watch_wsi = NULL;
	}
}

static void report_losses(struct fox_server *s, struct fox_channel *ch)
{
	int64_t now = now_mono_ns();

	(void)s;
	if (!ch->lost_unreported || now - ch->lost_reported_ns < REPORT_PERIOD_NS)
		return;
	fox_log("channel %u '%s': %llu messages lost on the bus (read too late: the publisher "
		"overwrote them), %llu in all",
		ch->id, ch->topic, (unsigned long long)ch->lost_unreported,
		(unsigned long long)ch->lost);
	for (struct fox_subscription *sub = ch->subs; sub; sub = sub->ch_next) {
		char id[300];

		snprintf(id, sizeof(id), "shmbus.lost.%s", ch->topic);
		fox_send_status(sub->client, 1, id,
				"%s: %llu messages lost on the bus before the server read them "
				"(%llu in all)",
				ch->topic, (unsigned long long)ch->lost_unreported,
				(unsigned long long)ch->lost);
	}
	ch->lost_unreported = 0;
	ch->lost_reported_ns = now;
}

/* messageData: opcode 1, subscription id (patched per client when sent),
 * publish time in ns, payload; integers little-endian. */
static struct fox_frame *frame_from_view(const struct shmbus_view *v)
{
	struct fox_frame *f = fox_frame_new(13 + v->info.size, false);
	unsigned char *p;
	uint64_t t = (uint64_t)v->info.publish_ns;

	if (!f)
		return NULL;
	p = fox_frame_data(f);
	p[0] = 1;
	memset(p + 1, 0, 4);
	for (int i = 0; i < 8; i++)
		p[5 + i] = (unsigned char)(t >> (8 * i));
	memcpy(p + 13, v->data, v->info.size);
	return f;
}

static bool all_behind(const struct fox_channel *ch)
{
	for (const struct fox_subscription *sub = ch->subs; sub; sub = sub->ch_next)
		if (!fox_client_behind(sub->client))
			return false;
	return ch->subs != NULL;
}

void fox_channels_resume(struct fox_client *c)
{
	for (struct fox_subscription *sub = c->subs; sub; sub = sub->next) {
		struct fox_channel *ch = sub->ch;

		if (ch->paused && ch->wsi) {
			ch->paused = false;
			lws_rx_flow_control(ch->wsi, 1);
			if (c->srv->opt.verbose)
				fox_log("channel %u '%s': read again (client %s caught up)", ch->id,
					ch->topic, c->name);
		}
	}
}

/* What the publisher overwrote while every client was behind: dropped for
 * them (they could not have taken it), not lost by the server. */
static void count_skipped(struct fox_channel *ch, uint64_t n)
{
	ch->skipped += n;
	for (struct fox_subscription *sub = ch->subs; sub; sub = sub->ch_next) {
		struct fox_client *c = sub->client;

		sub->dropped += n;
		c->dropped += n;
		c->dropped_unreported += n;
		c->dropping = true;
	}
}

static void drain(struct fox_server *s, struct fox_channel *ch)
{
	uint64_t lost = 0;

	for (int i = 0; i < DRAIN_BUDGET; i++) {
		struct shmbus_view v;
		struct fox_frame *f;
		int rc;

		/* Copying what every client would drop again is work for
		 * nothing: leave it in the ring until one has room. */
		if (all_behind(ch)) {
			if (!ch->paused) {
				ch->paused = ch->skipping = true;
				lws_rx_flow_control(ch->wsi, 0);
				if (s->opt.verbose)
					fox_log("channel %u '%s': every client is behind; not read "
						"until one catches up", ch->id, ch->topic);
			}
			break;
		}
		rc = shmbus_sub_view(ch->sub, &v);
		if (rc == SHMBUS_EAGAIN || rc == SHMBUS_ENOTOPIC)
			break; /* a removed topic: the watch says so next */
		if (rc) {
			fox_log("channel %u '%s': %s: %s", ch->id, ch->topic, shmbus_strerror(rc),
				shmbus_errmsg());
			break;
		}
		/* The first message after a pause tells what was overwritten
		 * meanwhile. */
		if (ch->skipping) {
			count_skipped(ch, v.info.lost);
			ch->skipping = false;
		} else {
			lost += v.info.lost;
		}
		f = frame_from_view(&v);
		/* The copy is good only if the slot was not overwritten while
		 * it was made (the bus counts it lost otherwise). */
		if (shmbus_sub_release(ch->sub, &v) != SHMBUS_OK || !f) {
			fox_frame_unref(f);
			lost++;
			continue;
		}
		ch->received++;
		for (struct fox_subscription *sub = ch->subs; sub; sub = sub->ch_next) {
			f->refs++;
			fox_client_queue_data(sub, f);
		}
		fox_frame_unref(ch->last);
		ch->last = f; /* our reference */
	}
	ch->lost += lost;
	ch->lost_unreported += lost;
	report_losses(s, ch);
}

void fox_channels_on_channel(struct fox_server *s, struct fox_channel *ch)
{
	drain(s, ch);
}

int fox_channels_start(struct fox_server *s)
{
	char err[256];
	int fd, rc;

	rc = pbjson_schema_load(fox_known_fds, fox_known_fds_size, &s->known, err, sizeof(err));
	if (rc) {
		fox_log("the built-in message types do not load: %s", err);
		return -1;
	}
	rc = shmbus_topic_watch_open(s->bus, &s->watch);
	if (rc == SHMBUS_OK)
		rc = shmbus_topic_watch_fd(s->watch, &fd);
	if (rc) {
		fox_log("cannot watch the bus's topics: %s: %s", shmbus_strerror(rc),
			shmbus_errmsg());
		return -1;
	}
	s->watch_wsi = fox_adopt_fd(s, fd, SRC_WATCH, NULL);
	if (!s->watch_wsi)
		return -1;
	/* The topics that exist now come as the watch's first events. */
	fox_channels_on_watch(s);
	return 0;
}

void fox_channels_stop(struct fox_server *s)
{
	while (s->channels) {
		struct fox_channel *ch = s->channels;

		s->channels = ch->next;
		close_bus_sub(ch);
		channel_free(ch);
	}
	shmbus_topic_watch_close(s->watch);
	s->watch = NULL;
	pbjson_schema_free(s->known);
	s->known = NULL;
}
