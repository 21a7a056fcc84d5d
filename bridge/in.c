/*
 * in.c - DDS -> bus. Reads the announce topic; for each announced bus topic
 * that matches --in (from another bridge), opens a bus publisher with the
 * same type name, schema and layout, and a DDS reader on its Envelope
 * topic. Each envelope is checked (its type is the topic's, its payload fits
 * and is well-formed protobuf) before its payload is published on the bus;
 * refused ones are counted as malformed. Holes in each sending bridge's
 * bridge_seq are counted as DDS losses.
 */
#include "bridge.h"
#include "envelope.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define IN_SOURCES 16 /* sending bridges tracked per topic for gaps */
#define IN_BATCH 32

struct in_topic {
	char name[256];
	char dds_name[512];
	dds_entity_t reader;
	dds_entity_t cond;
	shmbus_pub *pub;
	size_t max_size;
	bool failed; /* could not be opened: do not retry on every announce */
	struct { dds_instance_handle_t writer; uint64_t last; } src[IN_SOURCES];
	size_t n_src;
	uint64_t lost_total, rejected_total;
};

struct in_state {
	struct bridge *b;
	struct in_topic topics[BRIDGE_MAX_TOPICS];
	size_t n;
	dds_entity_t waitset, announce_reader, announce_cond;
};

static int64_t now_mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static struct in_topic *find(struct in_state *s, const char *name)
{
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->topics[i].name, name) == 0)
			return &s->topics[i];
	return NULL;
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
	t->failed = true;

	struct shmbus_topic_options o;
	shmbus_topic_options_init(&o);
	o.type_name = a->type_name[0] ? a->type_name : NULL;
	o.schema = a->schema._length ? a->schema._buffer : NULL;
	o.schema_size = a->schema._length;
	if (a->max_message_size)
		o.max_message_size = a->max_message_size;
	if (a->slot_count)
		o.slot_count = a->slot_count;
	int rc = shmbus_pub_open(b->bus, t->name, &o, NULL, &t->pub);
	if (rc) {
		bridge_log(b, "publishing '%s' (%s) on the bus: %s: %s", t->name, a->type_name,
			   shmbus_strerror(rc), shmbus_errmsg());
		t->pub = NULL;
		return;
	}
	struct shmbus_pub_stats ps;
	shmbus_pub_stats(t->pub, &ps);
	/* Before the first message is published: the out thread must know
	 * this publisher is ours before it can see any of its messages. */
	bridge_own_add(b, t->name, ps.publisher_id);
	t->max_size = shmbus_pub_max_message_size(t->pub);

	dds_entity_t topic = dds_create_topic(b->participant, &shmbus_bridge_Envelope_desc,
					      t->dds_name, NULL, NULL);
	dds_qos_t *q = bridge_data_qos(b, true);
	t->reader = topic < 0 ? topic : dds_create_reader(b->participant, topic, q, NULL);
	dds_delete_qos(q);
	if (t->reader < 0) {
		bridge_log(b, "DDS reader for '%s': %s", t->dds_name, dds_strretcode(t->reader));
		return;
	}
	t->cond = dds_create_readcondition(t->reader, DDS_ANY_STATE);
	if (t->cond < 0 || dds_waitset_attach(s->waitset, t->cond, (dds_attach_t)t) < 0) {
		bridge_log(b, "DDS waitset for '%s' failed", t->dds_name);
		return;
	}
	t->failed = false;
	atomic_fetch_add_explicit(&b->c.topics_in, 1, memory_order_relaxed);
	if (b->verbose)
		bridge_log(b, "in: DDS '%s' -> '%s' (%s)", t->dds_name, t->name, a->type_name);
}

static void take_announces(struct in_state *s)
{
	void *samples[IN_BATCH] = { NULL };
	dds_sample_info_t infos[IN_BATCH];
	int n = dds_take(s->announce_reader, samples, infos, IN_BATCH, IN_BATCH);
	for (int i = 0; i < n; i++)
		if (infos[i].valid_data)
			on_announce(s, samples[i]);
	if (n > 0)
		dds_return_loan(s->announce_reader, samples, n);
}

/* Count holes in the sender's bridge_seq (each sending bridge numbers its
 * envelopes 1, 2, 3... per topic). */
static void track_gaps(struct bridge *b, struct in_topic *t, dds_instance_handle_t writer,
		       uint64_t bridge_seq)
{
	size_t i;
	for (i = 0; i < t->n_src && t->src[i].writer != writer; i++)
		;
	if (i == t->n_src) {
		if (t->n_src == IN_SOURCES)
			return;
		t->n_src++;
		t->src[i].writer = writer;
		t->src[i].last = 0;
		/* A reader that joins late starts where the writer is. */
		if (bridge_seq > 1)
			t->src[i].last = bridge_seq - 1;
	}
	if (bridge_seq > t->src[i].last + 1)
		atomic_fetch_add_explicit(&b->c.dds_gaps, bridge_seq - t->src[i].last - 1,
					  memory_order_relaxed);
	if (bridge_seq > t->src[i].last)
		t->src[i].last = bridge_seq;
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
		const char *type = shmbus_pub_type_name(t->pub);
		const char *why = NULL;
		if (!e->type_name || strcmp(e->type_name, type) != 0)
			why = "type differs from the topic's";
		else if (e->payload._length > t->max_size)
			why = "payload larger than the topic's maximum";
		else if (type[0] && !bridge_wire_ok(e->payload._buffer, e->payload._length))
			why = "payload is not protobuf wire format";
		if (why) {
			uint64_t m = atomic_fetch_add_explicit(&b->c.malformed, 1, memory_order_relaxed);
			if (m < 10 || b->verbose)
				bridge_log(b, "malformed envelope on '%s' from %s: %s", t->name,
					   e->source_bus ? e->source_bus : "?", why);
			continue;
		}
		track_gaps(b, t, infos[i].publication_handle, e->bridge_seq);
		int rc = shmbus_pub_send(t->pub, e->payload._buffer, e->payload._length, NULL);
		if (rc) {
			atomic_fetch_add_explicit(&b->c.publish_failed, 1, memory_order_relaxed);
			continue;
		}
		atomic_fetch_add_explicit(&b->c.in_msgs, 1, memory_order_relaxed);
		atomic_fetch_add_explicit(&b->c.in_bytes, e->payload._length, memory_order_relaxed);
	}
	if (n > 0)
		dds_return_loan(t->reader, samples, n);
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
		int64_t now = now_mono();
		if (now >= next_status) {
			update_status(s);
			next_status = now + 500000000;
		}
	}
	update_status(s);
	for (size_t i = 0; i < s->n; i++)
		if (s->topics[i].pub)
			shmbus_pub_close(s->topics[i].pub);
	/* DDS entities go with the participant (main.c). */
	free(s);
	return NULL;
}
