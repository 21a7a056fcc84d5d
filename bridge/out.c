/*
 * out.c - bus -> DDS. Finds the bus topics that match --out, subscribes to
 * each, announces it (type, layout, schema) on the announce topic and sends
 * every message as an Envelope on the topic's DDS writer. Messages that the
 * bridge itself published on the bus (they came from DDS) are skipped: that
 * is what keeps two bridges from echoing each other.
 *
 * A topic that appears while the bridge runs is read from its first message
 * and held on the bus (its ring is the buffer) until the data readers of
 * every bridge that takes it have matched its writer, at most --match-wait:
 * a DDS sample written before a reader matched never reaches that reader.
 * Once a topic is ready, it costs nothing more than before.
 *
 * Topics are found through a topic watch (the broker tells when one is
 * created or removed). A topic that goes away is read to its end, then its
 * writer and announce are withdrawn; if it comes back it is a new topic.
 */
#include "bridge.h"
#include "envelope.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define OUT_PENDING_TICK_NS 1000000 /* how often a held topic checks its readers */
#define OUT_SUBS_LISTED 256 /* subscribers looked at to find our own */
/* Every period: the peer count, the bus's list held against ours, and one
 * topic looked at closely for having been made again under us. The watch
 * tells topics apart by id and name, and a broker that restarted gives ids
 * from 1 again: a topic removed and made again then may bring no event.
 * An inspect costs milliseconds: one at a time. */
#define OUT_RECHECK_NS 500000000

struct out_topic {
	char name[256];
	char dds_name[512];
	shmbus_sub *sub;
	dds_entity_t writer;
	uint8_t *buf;
	size_t cap;
	uint64_t bridge_seq;
	uint64_t src_lost; /* bus losses carried in the envelopes so far */
	/* Until ready, the topic's messages wait in its ring: expect[] are the
	 * bridges whose readers have not all matched our writer yet. */
	bool ready;
	bool listed; /* by the bus, at the last tick */
	int64_t opened_ns, wait_until_ns;
	uint64_t expect[BRIDGE_MAX_PEERS];
	size_t n_expect;
};

struct out_state {
	struct bridge *b;
	struct out_topic topics[BRIDGE_MAX_TOPICS];
	size_t n;
	shmbus_waitset *ws;
	shmbus_topic_watch *watch;
	dds_entity_t announce_writer;
	bool full_reported;
	size_t recheck_next;  /* round robin of the close look */
	struct shmbus_client_info subs[OUT_SUBS_LISTED];
};

static struct out_topic *find(struct out_state *s, const char *name)
{
	for (size_t i = 0; i < s->n; i++)
		if (bridge_topic_eq(s->topics[i].name, name))
			return &s->topics[i];
	return NULL;
}

static void announce(struct out_state *s, const struct out_topic *t)
{
	size_t schema_size = 0;
	const void *schema = shmbus_sub_schema(t->sub, &schema_size);
	shmbus_bridge_Announce a;
	memset(&a, 0, sizeof(a));
	a.topic = (char *)t->name;
	a.bridge_id = s->b->id;
	a.dds_topic = (char *)t->dds_name;
	a.type_name = (char *)shmbus_sub_type_name(t->sub);
	a.max_message_size = (uint32_t)shmbus_sub_max_message_size(t->sub);
	struct shmbus_topic_info info;
	if (shmbus_topic_inspect(s->b->bus, t->name, &info, NULL, 0, NULL, NULL, 0, NULL) == 0) {
		a.slot_count = info.slot_count;
		a.history = info.history;
	}
	a.schema._buffer = (uint8_t *)schema;
	a.schema._length = a.schema._maximum = (uint32_t)schema_size;
	a.schema._release = false;
	int rc = dds_write(s->announce_writer, &a);
	if (rc < 0)
		bridge_log(s->b, "announcing '%s': %s", t->name, dds_strretcode(rc));
}

/* Tell the bridges that took the topic that it went away here. */
static void withdraw(struct out_state *s, const struct out_topic *t)
{
	shmbus_bridge_Announce key;
	memset(&key, 0, sizeof(key));
	key.topic = (char *)t->name;
	key.bridge_id = s->b->id;
	key.dds_topic = key.type_name = "";
	dds_dispose(s->announce_writer, &key);
	dds_unregister_instance(s->announce_writer, &key);
}

/* A topic that appeared while we ran is read from its first message (what
 * its history no longer holds comes as a loss before the first one taken,
 * and travels on like any); one that was there when we started, from now. */
static int subscribe(struct out_state *s, struct out_topic *t, bool fresh)
{
	struct shmbus_sub_options so;
	shmbus_sub_options_init(&so);
	so.start = fresh ? SHMBUS_START_FIRST : SHMBUS_START_NEW;
	return shmbus_sub_open(s->b->bus, t->name, NULL, &so, &t->sub);
}

static void make_ready(struct out_state *s, struct out_topic *t)
{
	int rc;
	if ((rc = shmbus_waitset_add(s->ws, t->sub)) != 0)
		/* Cannot happen: the waitset holds as many as we have topics. */
		bridge_log(s->b, "waitset: %s", shmbus_strerror(rc));
	t->ready = true;
}

static void open_topic(struct out_state *s, const char *name, bool fresh)
{
	struct bridge *b = s->b;
	if (s->n == BRIDGE_MAX_TOPICS) {
		if (!s->full_reported)
			bridge_log(b, "more than %d topics to send out; '%s' and later ones are not bridged",
				   BRIDGE_MAX_TOPICS, name);
		s->full_reported = true;
		return;
	}
	struct out_topic *t = &s->topics[s->n];
	memset(t, 0, sizeof(*t));
	snprintf(t->name, sizeof(t->name), "%s", name);
	if (!bridge_dds_name(name, t->dds_name, sizeof(t->dds_name)))
		return;
	int rc = subscribe(s, t, fresh);
	if (rc) {
		bridge_log(b, "subscribing to '%s': %s: %s", name, shmbus_strerror(rc),
			   shmbus_errmsg());
		return;
	}
	t->cap = shmbus_sub_max_message_size(t->sub);
	t->buf = malloc(t->cap ? t->cap : 1);
	/* Who will take it, known before the writer exists: the writer names
	 * them (peers.c), and they are what the first message waits for. */
	t->n_expect = bridge_peers_taking(b, s->announce_writer, name, t->expect, BRIDGE_MAX_PEERS);
	dds_entity_t topic = dds_create_topic(b->participant, &shmbus_bridge_Envelope_desc,
					      t->dds_name, NULL, NULL);
	dds_qos_t *q = bridge_data_qos(b, false);
	bridge_peer_qos_out(q, b, t->expect, t->n_expect);
	t->writer = topic < 0 ? topic : dds_create_writer(b->participant, topic, q, NULL);
	dds_delete_qos(q);
	if (!t->buf || t->writer < 0) {
		bridge_log(b, "DDS writer for '%s' (%s): %s", name, t->dds_name,
			   t->buf ? dds_strretcode(t->writer) : "out of memory");
		shmbus_sub_close(t->sub);
		free(t->buf);
		return;
	}
	announce(s, t);
	t->opened_ns = now_mono_ns();
	t->wait_until_ns = t->opened_ns + b->match_wait_ns;
	if (t->n_expect == 0)
		make_ready(s, t);
	s->n++;
	atomic_fetch_add_explicit(&b->c.topics_out, 1, memory_order_relaxed);
	if (b->verbose)
		bridge_log(b, "out: '%s' (%s) -> DDS '%s'%s, %zu bridge(s) take it", name,
			   shmbus_sub_type_name(t->sub), t->dds_name, fresh ? " from its first message" : "",
			   t->n_expect);
}

/* Send what the subscriber has, at most `budget` messages; how many it
 * took, or -1 once the topic was removed and all it held is sent. */
static int drain(struct out_state *s, struct out_topic *t, int budget)
{
	struct bridge *b = s->b;
	int taken = 0;
	for (; taken < budget; taken++) {
		struct shmbus_msg_info info;
		int rc = shmbus_sub_take(t->sub, t->buf, t->cap, &info);
		if (rc == SHMBUS_EMSGSIZE) {
			/* The topic grew past our buffer: the message waits. */
			uint8_t *nb = realloc(t->buf, info.size);
			if (!nb) {
				bridge_log(b, "'%s': no memory for a message of %zu bytes", t->name,
					   info.size);
				break;
			}
			t->buf = nb;
			t->cap = info.size;
			taken--;
			continue;
		}
		if (rc == SHMBUS_EAGAIN)
			break;
		if (rc == SHMBUS_ENOTOPIC)
			return -1;
		if (rc) {
			bridge_log(b, "taking from '%s': %s", t->name, shmbus_strerror(rc));
			break;
		}
		if (info.lost) {
			atomic_fetch_add_explicit(&b->c.bus_lost, info.lost, memory_order_relaxed);
			/* On a topic bridged both ways, the in side marks what it
			 * lost as skipped numbers on this very topic; they cannot
			 * be told from ours, and carrying them would send every
			 * loss back and forth for ever. */
			if (!bridge_own_has(b, t->name))
				t->src_lost += info.lost;
		}
		if (bridge_own_is(b, t->name, info.publisher_id))
			continue; /* it came from DDS: never send it back */
		shmbus_bridge_Envelope e;
		memset(&e, 0, sizeof(e));
		e.type_name = (char *)shmbus_sub_type_name(t->sub);
		e.publish_ns = info.publish_ns;
		e.seq = info.seq;
		e.bridge_seq = ++t->bridge_seq;
		e.source_bus = b->source;
		e.bridge_id = b->id;
		e.publisher_id = info.publisher_id;
		e.src_lost = t->src_lost;
		e.payload._buffer = t->buf;
		e.payload._length = e.payload._maximum = (uint32_t)info.size;
		e.payload._release = false;
		rc = dds_write(t->writer, &e);
		if (rc < 0) {
			atomic_fetch_add_explicit(&b->c.write_failed, 1, memory_order_relaxed);
		} else {
			atomic_fetch_add_explicit(&b->c.out_msgs, 1, memory_order_relaxed);
			atomic_fetch_add_explicit(&b->c.out_bytes, info.size, memory_order_relaxed);
		}
	}
	return taken;
}

/* Held topics whose readers matched, or whose wait ran out, go live.
 * True while some are still held. */
static bool release_ready(struct out_state *s, int64_t now)
{
	struct bridge *b = s->b;
	bool held = false;
	for (size_t i = 0; i < s->n; i++) {
		struct out_topic *t = &s->topics[i];
		if (t->ready)
			continue;
		if (bridge_peers_matched(t->writer, t->expect, t->n_expect)) {
			if (b->verbose)
				bridge_log(b, "out: '%s': the readers of %zu bridge(s) matched after %lld us",
					   t->name, t->n_expect,
					   (long long)(now - t->opened_ns) / 1000);
		} else if (now >= t->wait_until_ns) {
			atomic_fetch_add_explicit(&b->c.match_timeouts, 1, memory_order_relaxed);
			bridge_log(b, "out: '%s': not every bridge that takes it matched within %lld ms; "
				   "sending anyway (they count what they miss)", t->name,
				   (long long)b->match_wait_ns / 1000000);
		} else {
			held = true;
			continue;
		}
		make_ready(s, t);
		drain(s, t, 64);
	}
	return held;
}

/* The topic went away: send what it still holds, then withdraw it. */
static void close_topic(struct out_state *s, size_t i)
{
	struct bridge *b = s->b;
	struct out_topic *t = &s->topics[i];
	if (!t->ready)
		make_ready(s, t);
	while (drain(s, t, 64) == 64)
		;
	shmbus_waitset_remove(s->ws, t->sub);
	shmbus_sub_close(t->sub);
	free(t->buf);
	withdraw(s, t);
	/* Cyclone keeps a deleted reliable writer until its readers have
	 * acknowledged what it sent (or its linger time passes). */
	dds_delete(t->writer);
	if (b->verbose)
		bridge_log(b, "out: '%s' went away after %llu message(s)", t->name,
			   (unsigned long long)t->bridge_seq);
	s->topics[i] = s->topics[--s->n];
	atomic_fetch_sub_explicit(&b->c.topics_out, 1, memory_order_relaxed);
}

/* What the watch says: fresh (it appeared while we run) or found at start. */
static void on_events(struct out_state *s, bool fresh)
{
	struct shmbus_topic_event ev;
	int rc;
	while ((rc = shmbus_topic_watch_next(s->watch, &ev)) == 0) {
		struct out_topic *t = find(s, ev.name);
		if (ev.kind == SHMBUS_TOPIC_REMOVED && t)
			close_topic(s, (size_t)(t - s->topics));
		else if (ev.kind == SHMBUS_TOPIC_CREATED && !t &&
			 bridge_match(s->b->out_patterns, s->b->n_out, ev.name))
			open_topic(s, ev.name, fresh);
	}
	if (rc != SHMBUS_EAGAIN && s->b->verbose)
		bridge_log(s->b, "topic watch: %s: %s", shmbus_strerror(rc), shmbus_errmsg());
}

static int list_one(void *ctx, const char *name, const char *type_name)
{
	(void)type_name;
	struct out_state *s = ctx;
	struct out_topic *t = find(s, name);
	if (t)
		t->listed = true;
	else if (bridge_match(s->b->out_patterns, s->b->n_out, name))
		open_topic(s, name, true); /* one the watch did not tell */
	return 0;
}

/* Now and then: the peers, the list, and the close look at one topic. */
static void tick(struct out_state *s)
{
	uint64_t ids[BRIDGE_MAX_PEERS];
	atomic_store_explicit(&s->b->c.in_peers,
			      bridge_peers_taking(s->b, s->announce_writer, NULL, ids, BRIDGE_MAX_PEERS),
			      memory_order_relaxed);
	size_t known = s->n;
	for (size_t i = 0; i < known; i++)
		s->topics[i].listed = false;
	if (shmbus_list_topics(s->b->bus, list_one, s) != 0)
		return; /* no broker answers: nothing is known to be gone */
	size_t look = known ? s->recheck_next++ % known : SIZE_MAX;
	for (size_t i = known; i-- > 0;) {
		if (!s->topics[i].listed) {
			close_topic(s, i);
		} else if (i == look && !bridge_topic_has_me(s->b->bus, s->topics[i].name, false,
							     s->subs, OUT_SUBS_LISTED)) {
			char name[256]; /* made again under us: the new one from its start */
			snprintf(name, sizeof(name), "%s", s->topics[i].name);
			close_topic(s, i);
			open_topic(s, name, true);
		}
	}
}

void *bridge_out_thread(void *arg)
{
	struct out_state *s = calloc(1, sizeof(*s));
	struct bridge *b = arg;
	if (!s) {
		bridge_log(b, "out of memory");
		atomic_store(&b->stop, true);
		return NULL;
	}
	s->b = b;
	dds_qos_t *q = bridge_announce_qos(false);
	s->announce_writer = dds_create_writer(b->participant, b->announce_topic, q, NULL);
	dds_delete_qos(q);
	if (s->announce_writer < 0) {
		bridge_log(b, "announce writer: %s", dds_strretcode(s->announce_writer));
		atomic_store(&b->stop, true);
		free(s);
		return NULL;
	}
	int rc = shmbus_waitset_create(&s->ws);
	if (rc == 0 && (rc = shmbus_topic_watch_open(b->bus, &s->watch)) == 0)
		rc = shmbus_waitset_add_watch(s->ws, s->watch);
	if (rc) {
		bridge_log(b, "watching the bus: %s: %s", shmbus_strerror(rc), shmbus_errmsg());
		atomic_store(&b->stop, true);
	} else {
		on_events(s, false); /* the topics there are now */
	}
	int64_t next_tick = 0;
	/* The stop flag is set by the main thread; nothing else travels with
	 * it, so relaxed loads suffice (we look again within 100 ms). */
	while (!atomic_load_explicit(&b->stop, memory_order_relaxed)) {
		int64_t now = now_mono_ns();
		if (now >= next_tick) {
			tick(s);
			next_tick = now + OUT_RECHECK_NS;
		}
		/* Held topics are not in the wait set (their messages must
		 * stay where they are): look at them every tick meanwhile. */
		bool held = release_ready(s, now_mono_ns());
		shmbus_sub *ready[BRIDGE_MAX_TOPICS];
		size_t got = 0;
		rc = shmbus_waitset_wait(s->ws, held ? OUT_PENDING_TICK_NS : 100000000, ready,
					 BRIDGE_MAX_TOPICS, &got);
		for (size_t i = 0; rc == 0 && i < got; i++)
			for (size_t j = 0; j < s->n; j++)
				if (s->topics[j].sub == ready[i] && drain(s, &s->topics[j], 64) < 0) {
					close_topic(s, j); /* removed: all of it sent */
					break;
				}
		/* After the drains: ready[] may name a topic an event closes. */
		on_events(s, true);
	}
	for (size_t j = 0; j < s->n; j++) {
		if (s->topics[j].ready)
			shmbus_waitset_remove(s->ws, s->topics[j].sub);
		shmbus_sub_close(s->topics[j].sub);
		free(s->topics[j].buf);
	}
	if (s->watch) {
		shmbus_waitset_remove_watch(s->ws, s->watch);
		shmbus_topic_watch_close(s->watch);
	}
	if (s->ws)
		shmbus_waitset_destroy(s->ws);
	free(s);
	return NULL;
}
