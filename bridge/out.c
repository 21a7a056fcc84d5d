/*
 * out.c - bus -> DDS. Finds the bus topics that match --out, subscribes to
 * each, announces it (type, layout, schema) on the announce topic and sends
 * every message as an Envelope on the topic's DDS writer. Messages that the
 * bridge itself published on the bus (they came from DDS) are skipped: that
 * is what keeps two bridges from echoing each other.
 */
#include "bridge.h"
#include "envelope.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct out_topic {
	char name[256];
	shmbus_sub *sub;
	dds_entity_t writer;
	uint8_t *buf;
	size_t cap;
	uint64_t bridge_seq;
	uint64_t lost_seen;
};

struct out_state {
	struct bridge *b;
	struct out_topic topics[BRIDGE_MAX_TOPICS];
	size_t n;
	shmbus_waitset *ws; /* NULL: the kernel has no futex_waitv, poll */
	dds_entity_t announce_writer;
	bool full_reported;
};

static int64_t now_mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static bool known(const struct out_state *s, const char *name)
{
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->topics[i].name, name) == 0)
			return true;
	return false;
}

static void announce(struct out_state *s, const struct out_topic *t, const char *dds_name)
{
	size_t schema_size = 0;
	const void *schema = shmbus_sub_schema(t->sub, &schema_size);
	shmbus_bridge_Announce a;
	memset(&a, 0, sizeof(a));
	a.topic = (char *)t->name;
	a.bridge_id = s->b->id;
	a.dds_topic = (char *)dds_name;
	a.type_name = (char *)shmbus_sub_type_name(t->sub);
	a.max_message_size = (uint32_t)shmbus_sub_max_message_size(t->sub);
	struct shmbus_topic_info info;
	a.slot_count = shmbus_topic_inspect(s->b->bus, t->name, &info, NULL, 0, NULL, NULL, 0,
					    NULL) == 0 ? info.slot_count : 0;
	a.schema._buffer = (uint8_t *)schema;
	a.schema._length = a.schema._maximum = (uint32_t)schema_size;
	a.schema._release = false;
	int rc = dds_write(s->announce_writer, &a);
	if (rc < 0)
		bridge_log(s->b, "announcing '%s': %s", t->name, dds_strretcode(rc));
}

static void open_topic(struct out_state *s, const char *name)
{
	struct bridge *b = s->b;
	if (s->n == BRIDGE_MAX_TOPICS) {
		if (!s->full_reported)
			bridge_log(b, "more than %d topics to send out; '%s' and later ones are not bridged",
				   BRIDGE_MAX_TOPICS, name);
		s->full_reported = true;
		return;
	}
	char dds_name[512];
	if (!bridge_dds_name(name, dds_name, sizeof(dds_name)))
		return;
	struct out_topic *t = &s->topics[s->n];
	memset(t, 0, sizeof(*t));
	snprintf(t->name, sizeof(t->name), "%s", name);

	struct shmbus_sub_options so;
	shmbus_sub_options_init(&so);
	so.start = SHMBUS_START_NEW;
	int rc = shmbus_sub_open(b->bus, name, NULL, &so, &t->sub);
	if (rc) {
		bridge_log(b, "subscribing to '%s': %s: %s", name, shmbus_strerror(rc),
			   shmbus_errmsg());
		return;
	}
	t->cap = shmbus_sub_max_message_size(t->sub);
	t->buf = malloc(t->cap ? t->cap : 1);
	dds_entity_t topic = dds_create_topic(b->participant, &shmbus_bridge_Envelope_desc,
					      dds_name, NULL, NULL);
	dds_qos_t *q = bridge_data_qos(b, false);
	t->writer = topic < 0 ? topic : dds_create_writer(b->participant, topic, q, NULL);
	dds_delete_qos(q);
	if (!t->buf || t->writer < 0) {
		bridge_log(b, "DDS writer for '%s' (%s): %s", name, dds_name,
			   t->buf ? dds_strretcode(t->writer) : "out of memory");
		shmbus_sub_close(t->sub);
		free(t->buf);
		return;
	}
	if (s->ws && (rc = shmbus_waitset_add(s->ws, t->sub)) != 0) {
		bridge_log(b, "waitset: %s", shmbus_strerror(rc));
		dds_delete(t->writer);
		shmbus_sub_close(t->sub);
		free(t->buf);
		return;
	}
	announce(s, t, dds_name);
	s->n++;
	atomic_fetch_add_explicit(&b->c.topics_out, 1, memory_order_relaxed);
	if (b->verbose)
		bridge_log(b, "out: '%s' (%s) -> DDS '%s'", name, shmbus_sub_type_name(t->sub), dds_name);
}

static int scan_one(void *ctx, const char *name, const char *type_name)
{
	(void)type_name;
	struct out_state *s = ctx;
	if (bridge_match(s->b->out_patterns, s->b->n_out, name) && !known(s, name))
		open_topic(s, name);
	return 0;
}

/* Send what the subscriber has, at most `budget` messages. */
static void drain(struct out_state *s, struct out_topic *t, int budget)
{
	struct bridge *b = s->b;
	while (budget-- > 0) {
		struct shmbus_msg_info info;
		int rc = shmbus_sub_take(t->sub, t->buf, t->cap, &info);
		if (rc == SHMBUS_EAGAIN)
			break;
		if (rc) {
			/* EMSGSIZE cannot happen: buf is the topic's maximum. */
			bridge_log(b, "taking from '%s': %s", t->name, shmbus_strerror(rc));
			break;
		}
		if (info.lost)
			atomic_fetch_add_explicit(&b->c.bus_lost, info.lost, memory_order_relaxed);
		t->lost_seen += info.lost;
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
		e.lost_before = info.lost;
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
	if (shmbus_waitset_create(&s->ws) != 0) {
		s->ws = NULL;
		bridge_log(b, "no futex_waitv in this kernel: polling the bus every millisecond");
	}
	int64_t next_scan = 0;
	/* The stop flag is set by the main thread; nothing else travels with
	 * it, so relaxed loads suffice (we look again within 100 ms). */
	while (!atomic_load_explicit(&b->stop, memory_order_relaxed)) {
		int64_t now = now_mono();
		if (now >= next_scan) {
			/* New topics are found within 200 ms. */
			shmbus_list_topics(b->bus, scan_one, s);
			next_scan = now + 200000000;
		}
		if (s->ws && s->n) {
			shmbus_sub *ready[BRIDGE_MAX_TOPICS];
			size_t n_ready = 0;
			if (shmbus_waitset_wait(s->ws, 100000000, ready, BRIDGE_MAX_TOPICS, &n_ready) != 0)
				continue;
			for (size_t i = 0; i < n_ready; i++)
				for (size_t j = 0; j < s->n; j++)
					if (s->topics[j].sub == ready[i])
						drain(s, &s->topics[j], 64);
		} else if (s->n) {
			for (size_t j = 0; j < s->n; j++)
				drain(s, &s->topics[j], 64);
			struct timespec ms = { 0, 1000000 };
			nanosleep(&ms, NULL);
		} else {
			struct timespec ms = { 0, 50000000 };
			nanosleep(&ms, NULL);
		}
	}
	for (size_t j = 0; j < s->n; j++) {
		if (s->ws)
			shmbus_waitset_remove(s->ws, s->topics[j].sub);
		shmbus_sub_close(s->topics[j].sub);
		free(s->topics[j].buf);
	}
	if (s->ws)
		shmbus_waitset_destroy(s->ws);
	free(s);
	return NULL;
}
