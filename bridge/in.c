/*
 * in.c - DDS -> bus. Reads the announce topic; for each announced bus topic
 * that matches --in (from another bridge), opens a bus publisher with the
 * same type name, schema and layout, and a DDS reader on its Envelope
 * topic. Each envelope is checked (its type is the topic's, its payload is
 * well-formed protobuf and fits, the topic growing for it as the source's
 * did) before its payload is published on the bus,
 * with the publish time it had on the source bus; refused ones are counted
 * as malformed.
 *
 * What never arrives is counted, and shown to the bus's own subscribers as
 * loss: per sending writer, holes in its bridge_seq (lost between bridges),
 * the growth of its src_lost (lost on the source bus), and each refused
 * envelope become sequence numbers skipped on our bus (a loan given back
 * unpublished) just before the next message, so a subscriber here counts
 * received + lost = what was published at the source. A writer that waited
 * for this bridge (peers.c) is counted from its first message; one that
 * was already running when we came is counted from where we joined.
 */
#include "bridge.h"
#include "envelope.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define IN_SOURCES 16 /* sending writers tracked per topic for gaps */
#define IN_BATCH 32
#define IN_CLIENTS_LISTED 256 /* publishers looked at to find our own */
/* Skipped numbers made for one envelope at most: a gap larger than this
 * is counted in full but shown to subscribers only up to it (each mark is
 * a loan and a discard on the bus, ~0.1 us). */
#define IN_MARK_MAX (1u << 24)

struct in_source {
	dds_instance_handle_t writer; /* 0: free */
	uint64_t last_seq;            /* its last bridge_seq seen */
	uint64_t src_lost;            /* its last src_lost seen */
};

struct in_topic {
	char name[256];
	char dds_name[512];
	dds_entity_t reader;
	dds_entity_t cond;
	shmbus_pub *pub;
	size_t max_size;
	bool failed; /* could not be opened: do not retry on every announce */
	bool listed; /* by the bus, at the last look */
	/* What the bus topic is created with, from the announce: kept to
	 * create it again if it goes away under us. */
	struct shmbus_topic_options opts;
	char type_name[256];
	uint8_t *schema;
	struct in_source src[IN_SOURCES];
	bool src_full_reported;
	uint64_t lost_total, rejected_total;
};

struct in_state {
	struct bridge *b;
	struct in_topic topics[BRIDGE_MAX_TOPICS];
	size_t n;
	dds_entity_t waitset, announce_reader, announce_cond;
	struct shmbus_client_info clients[IN_CLIENTS_LISTED];
	size_t recheck_next; /* round robin of the close look */
};

static struct in_topic *find(struct in_state *s, const char *name)
{
	for (size_t i = 0; i < s->n; i++)
		if (bridge_topic_eq(s->topics[i].name, name))
			return &s->topics[i];
	return NULL;
}

/* The bus publisher of t, creating the topic as announced. */
static int open_pub(struct bridge *b, struct in_topic *t)
{
	/* The source topic may grow (its publisher's messages outgrew it):
	 * this side grows too rather than refusing what it carries. */
	struct shmbus_pub_options po;
	shmbus_pub_options_init(&po);
	po.flags = SHMBUS_PUB_GROW;
	int rc = shmbus_pub_open(b->bus, t->name, &t->opts, &po, &t->pub);
	if (rc) {
		bridge_log(b, "publishing '%s' (%s) on the bus: %s: %s", t->name, t->type_name,
			   shmbus_strerror(rc), shmbus_errmsg());
		t->pub = NULL;
		return rc;
	}
	struct shmbus_pub_stats ps;
	shmbus_pub_stats(t->pub, &ps);
	/* Before the first message is published: the out thread must know
	 * this publisher is ours before it can see any of its messages. */
	bridge_own_set(b, shmbus_pub_topic(t->pub), ps.publisher_id);
	t->max_size = shmbus_pub_max_message_size(t->pub);
	return 0;
}

static void on_announce(struct in_state *s, const shmbus_bridge_Announce *a)
{
	struct bridge *b = s->b;
	if (a->bridge_id == b->id || !a->topic || !a->dds_topic || !a->type_name)
		return;
	if (!bridge_match(b->in_patterns, b->n_in, a->topic) || find(s, a->topic))
		return;
	if (s->n == BRIDGE_MAX_TOPICS) {
		bridge_log(b, "more than %d topics to take in; '%s' is not bridged",
			   BRIDGE_MAX_TOPICS, a->topic);
		return;
	}
	char expect[512];
	if (!shmbus_topic_name_valid(a->topic) || !bridge_dds_name(a->topic, expect, sizeof(expect)) ||
	    strcmp(expect, a->dds_topic) != 0) {
		bridge_log(b, "ignoring an announce with a bad topic name '%s' / '%s'", a->topic,
			   a->dds_topic);
		atomic_fetch_add_explicit(&b->c.malformed, 1, memory_order_relaxed);
		return;
	}
	struct in_topic *t = &s->topics[s->n++];
	memset(t, 0, sizeof(*t));
	snprintf(t->name, sizeof(t->name), "%s", a->topic);
	snprintf(t->dds_name, sizeof(t->dds_name), "%s", a->dds_topic);
	snprintf(t->type_name, sizeof(t->type_name), "%s", a->type_name);
	t->failed = true;

	struct shmbus_topic_options *o = &t->opts;
	shmbus_topic_options_init(o);
	o->type_name = t->type_name[0] ? t->type_name : NULL;
	if (a->schema._length && (t->schema = malloc(a->schema._length))) {
		memcpy(t->schema, a->schema._buffer, a->schema._length);
		o->schema = t->schema;
		o->schema_size = a->schema._length;
	}
	if (a->max_message_size)
		o->max_message_size = a->max_message_size;
	if (a->slot_count)
		o->slot_count = a->slot_count;
	/* As much history as the source had: a subscriber that waits here
	 * for the topic to appear still finds its first messages. */
	if (a->history)
		o->history = a->history;

	/* The reader before the bus topic: the sending bridge holds the topic
	 * until the reader has matched, and that discovery overlaps making the
	 * bus topic (tens of milliseconds for a large ring). Nothing is taken
	 * from the reader before the bus topic exists. */
	dds_entity_t topic = dds_create_topic(b->participant, &shmbus_bridge_Envelope_desc,
					      t->dds_name, NULL, NULL);
	dds_qos_t *q = bridge_data_qos(b, true);
	bridge_peer_qos_in(q, b, false); /* the writer waits for this reader */
	t->reader = topic < 0 ? topic : dds_create_reader(b->participant, topic, q, NULL);
	dds_delete_qos(q);
	if (t->reader < 0) {
		bridge_log(b, "DDS reader for '%s': %s", t->dds_name, dds_strretcode(t->reader));
		return;
	}
	int64_t t0 = now_mono_ns();
	if (open_pub(b, t) != 0) {
		dds_delete(t->reader); /* no one would take what it keeps */
		return;
	}
	int64_t made_ns = now_mono_ns() - t0;
	t->cond = dds_create_readcondition(t->reader, DDS_ANY_STATE);
	if (t->cond < 0 || dds_waitset_attach(s->waitset, t->cond, (dds_attach_t)t) < 0) {
		bridge_log(b, "DDS waitset for '%s' failed", t->dds_name);
		dds_delete(t->reader);
		shmbus_pub_close(t->pub);
		t->pub = NULL;
		return;
	}
	t->failed = false;
	atomic_fetch_add_explicit(&b->c.topics_in, 1, memory_order_relaxed);
	if (b->verbose)
		bridge_log(b, "in: DDS '%s' -> '%s' (%s), bus topic made in %lld us", t->dds_name,
			   t->name, a->type_name, (long long)made_ns / 1000);
}

static void take_announces(struct in_state *s)
{
	void *samples[IN_BATCH] = { NULL };
	dds_sample_info_t infos[IN_BATCH];
	int n = dds_take(s->announce_reader, samples, infos, IN_BATCH, IN_BATCH);
	for (int i = 0; i < n; i++) {
		const shmbus_bridge_Announce *a = samples[i];
		if (infos[i].valid_data)
			on_announce(s, a);
		else if (s->b->verbose && infos[i].instance_state == DDS_IST_NOT_ALIVE_DISPOSED && a->topic)
			/* Its writer is gone too; the bus topic here stays (other
			 * sources may feed it, and it may come back). */
			bridge_log(s->b, "in: '%s' went away at bridge %016llx", a->topic,
				   (unsigned long long)a->bridge_id);
	}
	if (n > 0)
		dds_return_loan(s->announce_reader, samples, n);
}

/* The gap accounting of the writer that sent e, found or started. NULL if
 * IN_SOURCES live writers already feed this topic (not counted then). */
static struct in_source *source_of(struct bridge *b, struct in_topic *t,
				   dds_instance_handle_t writer, const shmbus_bridge_Envelope *e)
{
	for (size_t i = 0; i < IN_SOURCES; i++)
		if (t->src[i].writer == writer)
			return &t->src[i];
	/* A new writer: a free line, or one whose writer is gone. */
	struct in_source *free_slot = NULL;
	for (size_t i = 0; i < IN_SOURCES && !free_slot; i++)
		if (t->src[i].writer == 0 || !bridge_peer_matched(t->reader, t->src[i].writer))
			free_slot = &t->src[i];
	if (!free_slot) {
		if (!t->src_full_reported)
			bridge_log(b, "more than %d writers send '%s': losses of the others are not counted",
				   IN_SOURCES, t->name);
		t->src_full_reported = true;
		return NULL;
	}
	free_slot->writer = writer;
	if (bridge_peer_waited_for(b, t->reader, writer)) {
		free_slot->last_seq = 0;
		free_slot->src_lost = 0;
	} else {
		/* Joined a running stream: count from here. */
		free_slot->last_seq = e->bridge_seq ? e->bridge_seq - 1 : 0;
		free_slot->src_lost = e->src_lost;
	}
	return free_slot;
}

/* What went missing from this writer just before e: counted, and the
 * number of messages our subscribers must see as lost. */
static uint64_t missing_before(struct bridge *b, struct in_topic *t, dds_instance_handle_t writer,
			       const shmbus_bridge_Envelope *e)
{
	struct in_source *src = source_of(b, t, writer, e);
	if (!src)
		return 0;
	uint64_t gap = e->bridge_seq > src->last_seq + 1 ? e->bridge_seq - src->last_seq - 1 : 0;
	uint64_t lost = e->src_lost > src->src_lost ? e->src_lost - src->src_lost : 0;
	if (e->bridge_seq > src->last_seq)
		src->last_seq = e->bridge_seq;
	if (e->src_lost > src->src_lost)
		src->src_lost = e->src_lost;
	if (gap)
		atomic_fetch_add_explicit(&b->c.dds_gaps, gap, memory_order_relaxed);
	if (lost)
		atomic_fetch_add_explicit(&b->c.src_lost, lost, memory_order_relaxed);
	return gap + lost;
}

/* Make our bus's subscribers count n messages lost here: each a sequence
 * number claimed and given back unpublished, which they skip as lost. */
static void mark_lost(struct bridge *b, struct in_topic *t, uint64_t n)
{
	uint64_t done = 0;
	for (; done < n && done < IN_MARK_MAX; done++) {
		void *buf;
		size_t cap;
		if (shmbus_pub_loan(t->pub, &buf, &cap) != 0 || shmbus_pub_discard(t->pub) != 0)
			break;
	}
	atomic_fetch_add_explicit(&b->c.marked_lost, done, memory_order_relaxed);
	if (done < n)
		bridge_log(b, "'%s': %llu message(s) lost, only %llu shown as lost on the bus", t->name,
			   (unsigned long long)n, (unsigned long long)done);
}

/* The payload on our bus with the source's publish time. A topic removed
 * under us is made again, once. */
static int publish(struct bridge *b, struct in_topic *t, const shmbus_bridge_Envelope *e)
{
	void *buf;
	size_t cap;
	int rc = shmbus_pub_loan(t->pub, &buf, &cap);
	if (rc == SHMBUS_ENOTOPIC) {
		shmbus_pub_close(t->pub);
		t->pub = NULL;
		if ((rc = open_pub(b, t)) == 0)
			rc = shmbus_pub_loan(t->pub, &buf, &cap);
	}
	if (rc)
		return rc;
	if (e->payload._length > cap) { /* cannot be: checked against max_size */
		shmbus_pub_discard(t->pub);
		return SHMBUS_EMSGSIZE;
	}
	memcpy(buf, e->payload._buffer, e->payload._length);
	return shmbus_pub_publish_at(t->pub, e->payload._length, e->publish_ns, NULL);
}

static void take_envelopes(struct in_state *s, struct in_topic *t)
{
	struct bridge *b = s->b;
	void *samples[IN_BATCH] = { NULL };
	dds_sample_info_t infos[IN_BATCH];
	int n = dds_take(t->reader, samples, infos, IN_BATCH, IN_BATCH);
	for (int i = 0; i < n; i++) {
		if (!infos[i].valid_data)
			continue;
		const shmbus_bridge_Envelope *e = samples[i];
		if (e->bridge_id == b->id)
			continue; /* ours (ignorelocal already drops these) */
		if (!t->pub) { /* its topic went away and could not be made again */
			atomic_fetch_add_explicit(&b->c.publish_failed, 1, memory_order_relaxed);
			continue;
		}
		uint64_t missing = missing_before(b, t, infos[i].publication_handle, e);
		const char *type = shmbus_pub_type_name(t->pub);
		const char *why = NULL;
		if (!e->type_name || strcmp(e->type_name, type) != 0)
			why = "type differs from the topic's";
		else if (type[0] && !bridge_wire_ok(e->payload._buffer, e->payload._length))
			why = "payload is not protobuf wire format";
		else if (e->payload._length > t->max_size &&
			 shmbus_pub_reserve(t->pub, e->payload._length) != SHMBUS_OK)
			why = "payload larger than the topic's maximum, which cannot grow";
		if (why) {
			uint64_t m = atomic_fetch_add_explicit(&b->c.malformed, 1, memory_order_relaxed);
			if (m < 10 || b->verbose)
				bridge_log(b, "malformed envelope on '%s' from %s: %s", t->name,
					   e->source_bus ? e->source_bus : "?", why);
			mark_lost(b, t, missing + 1);
			continue;
		}
		t->max_size = shmbus_pub_max_message_size(t->pub); /* it may have grown */
		if (missing)
			mark_lost(b, t, missing);
		int rc = publish(b, t, e);
		if (rc) {
			atomic_fetch_add_explicit(&b->c.publish_failed, 1, memory_order_relaxed);
			mark_lost(b, t, 1);
			continue;
		}
		atomic_fetch_add_explicit(&b->c.in_msgs, 1, memory_order_relaxed);
		atomic_fetch_add_explicit(&b->c.in_bytes, e->payload._length, memory_order_relaxed);
	}
	if (n > 0)
		dds_return_loan(t->reader, samples, n);
}

static int list_one(void *ctx, const char *name, const char *type_name)
{
	(void)type_name;
	struct in_state *s = ctx;
	struct in_topic *t = find(s, name);
	if (t)
		t->listed = true;
	return 0;
}

/* Bus topics that went away under our publishers (or were made again by
 * someone else) are made again, so what comes in reaches the bus's new
 * subscribers rather than a topic nobody can open any more. Gone: no
 * longer listed; made again: one topic a call looked at closely (an
 * inspect costs milliseconds). */
static void reopen_gone(struct in_state *s)
{
	struct bridge *b = s->b;
	for (size_t i = 0; i < s->n; i++)
		s->topics[i].listed = false;
	if (shmbus_list_topics(b->bus, list_one, s) != 0)
		return; /* no broker answers: nothing is known to be gone */
	size_t look = s->n ? s->recheck_next++ % s->n : 0;
	for (size_t i = 0; i < s->n; i++) {
		struct in_topic *t = &s->topics[i];
		if (t->failed || (t->pub && t->listed &&
				  (i != look || bridge_topic_has_me(b->bus, t->name, true, s->clients,
								    IN_CLIENTS_LISTED))))
			continue;
		if (t->pub) {
			shmbus_pub_close(t->pub);
			t->pub = NULL;
		}
		if (open_pub(b, t) == 0 && b->verbose)
			bridge_log(b, "in: '%s' went away on the bus: made it again", t->name);
	}
}

static void update_status(struct in_state *s)
{
	uint64_t lost = 0, rejected = 0;
	for (size_t i = 0; i < s->n; i++) {
		struct in_topic *t = &s->topics[i];
		if (t->failed)
			continue;
		dds_sample_lost_status_t l;
		dds_sample_rejected_status_t r;
		if (dds_get_sample_lost_status(t->reader, &l) == 0)
			t->lost_total = l.total_count;
		if (dds_get_sample_rejected_status(t->reader, &r) == 0)
			t->rejected_total = r.total_count;
		lost += t->lost_total;
		rejected += t->rejected_total;
	}
	atomic_store_explicit(&s->b->c.dds_lost, lost, memory_order_relaxed);
	atomic_store_explicit(&s->b->c.dds_rejected, rejected, memory_order_relaxed);
}

void *bridge_in_thread(void *arg)
{
	struct bridge *b = arg;
	struct in_state *s = calloc(1, sizeof(*s));
	if (!s) {
		bridge_log(b, "out of memory");
		atomic_store(&b->stop, true);
		return NULL;
	}
	s->b = b;
	dds_qos_t *q = bridge_announce_qos(true);
	/* Tells sending bridges which topics we take (peers.c). */
	bridge_peer_qos_in(q, b, true);
	s->announce_reader = dds_create_reader(b->participant, b->announce_topic, q, NULL);
	dds_delete_qos(q);
	s->waitset = dds_create_waitset(b->participant);
	s->announce_cond = s->announce_reader < 0 ? s->announce_reader :
			   dds_create_readcondition(s->announce_reader, DDS_ANY_STATE);
	if (s->announce_reader < 0 || s->waitset < 0 || s->announce_cond < 0 ||
	    dds_waitset_attach(s->waitset, s->announce_cond, 0) < 0) {
		bridge_log(b, "announce reader: %s", dds_strretcode(s->announce_reader));
		atomic_store(&b->stop, true);
		free(s);
		return NULL;
	}
	int64_t next_status = 0;
	while (!atomic_load_explicit(&b->stop, memory_order_relaxed)) {
		dds_attach_t ready[BRIDGE_MAX_TOPICS + 1];
		int n = dds_waitset_wait(s->waitset, ready, BRIDGE_MAX_TOPICS + 1, DDS_MSECS(100));
		for (int i = 0; i < n && i < BRIDGE_MAX_TOPICS + 1; i++) {
			if (ready[i] == 0)
				take_announces(s);
			else
				take_envelopes(s, (struct in_topic *)ready[i]);
		}
		int64_t now = now_mono_ns();
		if (now >= next_status) {
			update_status(s);
			reopen_gone(s);
			next_status = now + 500000000;
		}
	}
	update_status(s);
	for (size_t i = 0; i < s->n; i++) {
		if (s->topics[i].pub)
			shmbus_pub_close(s->topics[i].pub);
		free(s->topics[i].schema);
	}
	/* DDS entities go with the participant (main.c). */
	free(s);
	return NULL;
}
