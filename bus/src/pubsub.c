/*
 * pubsub.c - owns the public publisher, subscriber, wait-set and
 * introspection handles: asking the broker for a topic, mapping what it
 * hands over, and passing calls on to the ring (ring.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client.h"
#include "futex.h"
#include "ring.h"
#include "segment.h"

struct shmbus_pub {
	shmbus_bus *bus;
	struct topic_map map;
	struct ring_writer w;
	struct integrity integ;
	uint32_t topic_id, index;
};

struct shmbus_sub {
	shmbus_bus *bus;
	struct topic_map map;
	struct ring_reader r;
	struct integrity integ;
	uint32_t topic_id, index;
};

void shmbus_topic_options_init(struct shmbus_topic_options *o)
{
	memset(o, 0, sizeof(*o));
	o->slot_count = 64;
	o->max_message_size = 64 * 1024;
	o->history = 0; /* broker default: slot_count / 2 */
}

void shmbus_sub_options_init(struct shmbus_sub_options *o)
{
	memset(o, 0, sizeof(*o));
	o->start = SHMBUS_START_NEW;
	o->create_if_missing = false;
	shmbus_topic_options_init(&o->topic);
}

bool shmbus_topic_name_valid(const char *topic)
{
	return topic_name_valid(topic);
}

static void close_topic(shmbus_bus *bus, uint32_t topic_id, uint32_t role, uint32_t index);

/* Ask the broker for a topic and map it. */
static int open_topic(shmbus_bus *bus, const char *topic, uint32_t role, bool create,
		      const struct shmbus_topic_options *t, struct topic_map *map,
		      struct proto_opened *opened)
{
	struct shmbus_topic_options defaults;
	struct proto_buf b = { 0 };
	struct reply rep;
	char err[256];

	if (!bus || !topic || !map)
		return SHMBUS_EINVAL;
	if (!topic_name_valid(topic)) {
		bus_set_error(bus,
			      "invalid topic name '%s': use 1..200 of [A-Za-z0-9_./-], no leading, "
			      "trailing or double '/'",
			      topic);
		return SHMBUS_ENAME;
	}
	if (!t) {
		shmbus_topic_options_init(&defaults);
		t = &defaults;
	}
	if (t->schema_size && !t->schema)
		return SHMBUS_EINVAL;
	struct proto_open o = {
		.role = role,
		.create = create,
		.slot_count = t->slot_count,
		.max_message_size = t->max_message_size,
		.history = t->history,
		.flags = t->flags,
		.topic = topic,
		.topic_len = (uint32_t)strlen(topic),
		.type_name = t->type_name,
		.type_len = t->type_name ? (uint32_t)strlen(t->type_name) : PROTO_ANY_TYPE,
		.schema = t->schema,
		.schema_len = (uint32_t)t->schema_size,
	};
	if (t->schema_size > SEG_MAX_SCHEMA) {
		bus_set_error(bus, "schema of %zu bytes is above the limit %u", t->schema_size,
			      SEG_MAX_SCHEMA);
		return SHMBUS_ELIMIT;
	}
	size_t f = proto_frame_begin(&b, OP_OPEN, 0);
	proto_encode_open(&b, &o);
	proto_frame_end(&b, f);
	int rc = bus_request(bus, &b, &rep);
	proto_buf_free(&b);
	if (rc)
		return rc;
	if (proto_decode_opened(rep.body, rep.hdr.len, opened) || rep.nfds != 2) {
		bus_set_error(bus, "broker sent a malformed OPEN reply for '%s'", topic);
		reply_free(&rep);
		return SHMBUS_EBROKER;
	}
	rc = topic_map_fds(rep.fds[0], rep.fds[1], role == ROLE_PUB, role != ROLE_INSPECT, map,
			   err, sizeof(err));
	reply_free(&rep);
	if (rc) {
		bus_set_error(bus, "topic '%s': %s", topic, err);
		return rc;
	}
	if (role != ROLE_INSPECT && (map->seg->flags & SHMBUS_TOPIC_INTEGRITY) && !bus->have_key) {
		topic_unmap(map);
		close_topic(bus, opened->topic_id, role, opened->index);
		bus_set_error(bus,
			      "topic '%s' carries integrity tags: set SHMBUS_KEY_FILE (or "
			      "key_file) to the bus key",
			      topic);
		return SHMBUS_EPERM;
	}
	if (role == ROLE_PUB && (t->flags & SHMBUS_TOPIC_INTEGRITY) &&
	    !(map->seg->flags & SHMBUS_TOPIC_INTEGRITY)) {
		topic_unmap(map);
		close_topic(bus, opened->topic_id, role, opened->index);
		bus_set_error(bus, "topic '%s' was created without integrity tags", topic);
		return SHMBUS_ELAYOUT;
	}
	if (strcmp(map->seg->topic, topic) != 0 ||
	    (role == ROLE_PUB && opened->index >= SEG_MAX_PUBS) ||
	    (role == ROLE_SUB && opened->index >= SEG_MAX_SUBS)) {
		bus_set_error(bus, "broker handed over the wrong segment for '%s'", topic);
		topic_unmap(map);
		return SHMBUS_EBROKER;
	}
	return 0;
}

static void close_topic(shmbus_bus *bus, uint32_t topic_id, uint32_t role, uint32_t index)
{
	struct proto_buf b = { 0 };
	struct reply rep;
	struct proto_close c = { topic_id, role, index };
	size_t f = proto_frame_begin(&b, OP_CLOSE, 0);
	proto_encode_close(&b, &c);
	proto_frame_end(&b, f);
	/* Best effort: if the broker is gone, a restarted one frees our line
	 * when it sees our process has exited. */
	if (bus_request(bus, &b, &rep) == 0)
		reply_free(&rep);
	proto_buf_free(&b);
}

/* ------------------------------------------------------------- publisher */

int shmbus_pub_open(shmbus_bus *bus, const char *topic, const struct shmbus_topic_options *opts,
		    shmbus_pub **out)
{
	struct proto_opened op;
	if (!out)
		return SHMBUS_EINVAL;
	*out = NULL;
	shmbus_pub *p = calloc(1, sizeof(*p));
	if (!p)
		return SHMBUS_ENOMEM;
	int rc = open_topic(bus, topic, ROLE_PUB, true, opts, &p->map, &op);
	if (rc) {
		free(p);
		return rc;
	}
	p->bus = bus;
	p->topic_id = op.topic_id;
	p->index = op.index;
	ring_writer_init(&p->w, &p->map, &p->map.ctl->pubs[op.index], op.publisher_id);
	if (p->map.seg->flags & SHMBUS_TOPIC_INTEGRITY) {
		memcpy(p->integ.key, bus->key, sizeof(p->integ.key));
		p->integ.topic = p->map.seg->topic;
		p->w.integ = &p->integ;
	}
	*out = p;
	return 0;
}

void shmbus_pub_close(shmbus_pub *pub)
{
	if (!pub)
		return;
	if (pub->w.loaned)
		ring_discard(&pub->w);
	close_topic(pub->bus, pub->topic_id, ROLE_PUB, pub->index);
	topic_unmap(&pub->map);
	free(pub);
}

int shmbus_pub_loan(shmbus_pub *pub, void **buf, size_t *capacity)
{
	if (!pub || !buf || !capacity)
		return SHMBUS_EINVAL;
	return ring_loan(&pub->w, buf, capacity);
}

int shmbus_pub_publish(shmbus_pub *pub, size_t size, uint64_t *seq)
{
	if (!pub)
		return SHMBUS_EINVAL;
	return ring_publish(&pub->w, size, seq);
}

int shmbus_pub_discard(shmbus_pub *pub)
{
	if (!pub)
		return SHMBUS_EINVAL;
	return ring_discard(&pub->w);
}

int shmbus_pub_send(shmbus_pub *pub, const void *data, size_t size, uint64_t *seq)
{
	void *buf;
	size_t cap;
	if (!pub || (size && !data))
		return SHMBUS_EINVAL;
	if (size > pub->map.seg->max_message_size)
		return SHMBUS_EMSGSIZE; /* checked before claiming: burns nothing */
	int rc = ring_loan(&pub->w, &buf, &cap);
	if (rc)
		return rc;
	if (size)
		memcpy(buf, data, size);
	return ring_publish(&pub->w, size, seq);
}

void shmbus_pub_stats(const shmbus_pub *pub, struct shmbus_pub_stats *st)
{
	st->published = pub->w.published;
	st->superseded = pub->w.superseded;
	st->skipped = pub->w.skipped;
	st->publisher_id = pub->w.publisher_id;
}

size_t shmbus_pub_max_message_size(const shmbus_pub *pub)
{
	return pub->map.seg->max_message_size;
}

const char *shmbus_pub_type_name(const shmbus_pub *pub)
{
	return pub->map.seg->type_name;
}

/* ------------------------------------------------------------ subscriber */

int shmbus_sub_open(shmbus_bus *bus, const char *topic, const struct shmbus_sub_options *opts,
		    shmbus_sub **out)
{
	struct shmbus_sub_options defaults;
	struct proto_opened op;
	if (!out)
		return SHMBUS_EINVAL;
	*out = NULL;
	if (!opts) {
		shmbus_sub_options_init(&defaults);
		opts = &defaults;
	}
	if (opts->start != SHMBUS_START_NEW && opts->start != SHMBUS_START_LAST)
		return SHMBUS_EINVAL;
	shmbus_sub *s = calloc(1, sizeof(*s));
	if (!s)
		return SHMBUS_ENOMEM;
	int rc = open_topic(bus, topic, ROLE_SUB, opts->create_if_missing, &opts->topic, &s->map,
			    &op);
	if (rc) {
		free(s);
		return rc;
	}
	s->bus = bus;
	s->topic_id = op.topic_id;
	s->index = op.index;
	ring_reader_init(&s->r, &s->map, &s->map.ctl->subs[op.index],
			 ring_start_seq(&s->map,
					/* Relaxed: set by the broker before it handed
					 * the topic over (see registry_claim_sub). */
					atomic_load_explicit(&s->map.ctl->subs[op.index].next_seq,
							     memory_order_relaxed),
					opts->start, opts->last_n));
	if (s->map.seg->flags & SHMBUS_TOPIC_INTEGRITY) {
		memcpy(s->integ.key, bus->key, sizeof(s->integ.key));
		s->integ.topic = s->map.seg->topic;
		s->r.integ = &s->integ;
	}
	s->r.spin_ns = opts->spin_ns;
	if (opts->stall_timeout_ns > 0)
		s->r.stall_ns = opts->stall_timeout_ns;
	*out = s;
	return 0;
}

void shmbus_sub_close(shmbus_sub *sub)
{
	if (!sub)
		return;
	close_topic(sub->bus, sub->topic_id, ROLE_SUB, sub->index);
	topic_unmap(&sub->map);
	free(sub);
}

int shmbus_sub_take(shmbus_sub *sub, void *buf, size_t capacity, struct shmbus_msg_info *info)
{
	if (!sub || (capacity && !buf))
		return SHMBUS_EINVAL;
	return ring_take(&sub->r, buf, capacity, info);
}

int shmbus_sub_view(shmbus_sub *sub, struct shmbus_view *view)
{
	if (!sub || !view)
		return SHMBUS_EINVAL;
	return ring_view(&sub->r, view);
}

bool shmbus_sub_view_valid(const shmbus_sub *sub, const struct shmbus_view *view)
{
	return sub && view && ring_view_valid(&sub->r, view);
}

int shmbus_sub_release(shmbus_sub *sub, struct shmbus_view *view)
{
	if (!sub || !view)
		return SHMBUS_EINVAL;
	return ring_release(&sub->r, view);
}

int shmbus_sub_wait(shmbus_sub *sub, int64_t timeout_ns)
{
	if (!sub)
		return SHMBUS_EINVAL;
	return ring_wait(&sub->r, timeout_ns);
}

void shmbus_sub_stats(const shmbus_sub *sub, struct shmbus_sub_stats *st)
{
	/* Relaxed: a snapshot for statistics. */
	uint64_t head = atomic_load_explicit(&sub->map.seg->next_seq, memory_order_relaxed);
	st->received = sub->r.received;
	st->lost = sub->r.lost;
	st->last_seq = sub->r.last_seq;
	st->next_seq = sub->r.next;
	st->lag = head > sub->r.next ? head - sub->r.next : 0;
	st->rejected = sub->r.rejected;
}

const char *shmbus_sub_type_name(const shmbus_sub *sub)
{
	return sub->map.seg->type_name;
}

const void *shmbus_sub_schema(const shmbus_sub *sub, size_t *size)
{
	*size = sub->map.seg->schema_size;
	return (const uint8_t *)sub->map.seg + sub->map.seg->schema_offset;
}

size_t shmbus_sub_max_message_size(const shmbus_sub *sub)
{
	return sub->map.seg->max_message_size;
}

/* -------------------------------------------------------------- wait set */

struct shmbus_waitset {
	shmbus_sub *subs[SHMBUS_WAITSET_MAX];
	size_t n;
};

int shmbus_waitset_create(shmbus_waitset **out)
{
	if (!out)
		return SHMBUS_EINVAL;
	*out = NULL;
	if (!futex_waitv_supported())
		return SHMBUS_ENOTSUP;
	*out = calloc(1, sizeof(**out));
	return *out ? 0 : SHMBUS_ENOMEM;
}

void shmbus_waitset_destroy(shmbus_waitset *ws)
{
	free(ws);
}

int shmbus_waitset_add(shmbus_waitset *ws, shmbus_sub *sub)
{
	if (!ws || !sub)
		return SHMBUS_EINVAL;
	for (size_t i = 0; i < ws->n; i++)
		if (ws->subs[i] == sub)
			return 0;
	if (ws->n == SHMBUS_WAITSET_MAX)
		return SHMBUS_ELIMIT;
	ws->subs[ws->n++] = sub;
	return 0;
}

int shmbus_waitset_remove(shmbus_waitset *ws, shmbus_sub *sub)
{
	if (!ws || !sub)
		return SHMBUS_EINVAL;
	for (size_t i = 0; i < ws->n; i++) {
		if (ws->subs[i] == sub) {
			ws->subs[i] = ws->subs[--ws->n];
			return 0;
		}
	}
	return SHMBUS_EINVAL;
}

static size_t collect_ready(shmbus_waitset *ws, shmbus_sub **ready, size_t cap)
{
	size_t k = 0;
	for (size_t i = 0; i < ws->n; i++)
		if (ring_ready(&ws->subs[i]->r)) {
			if (k < cap)
				ready[k] = ws->subs[i];
			k++;
		}
	return k;
}

int shmbus_waitset_wait(shmbus_waitset *ws, int64_t timeout_ns, shmbus_sub **ready,
			size_t capacity, size_t *n_ready)
{
	_Atomic uint32_t *words[SHMBUS_WAITSET_MAX];
	uint32_t seen[SHMBUS_WAITSET_MAX];
	int64_t deadline = timeout_ns < 0 ? INT64_MAX : monotonic_ns() + timeout_ns;
	size_t k;

	if (!ws || !n_ready || (capacity && !ready))
		return SHMBUS_EINVAL;
	*n_ready = 0;
	if (ws->n == 0)
		return SHMBUS_EINVAL;
	for (;;) {
		k = collect_ready(ws, ready, capacity);
		if (k)
			break;
		/* Register as a waiter on every topic, then re-check: the same
		 * Dekker pairing as ring_wait() (seq_cst both sides). */
		int64_t nap = -1;
		for (size_t i = 0; i < ws->n; i++) {
			struct ring_reader *r = &ws->subs[i]->r;
			if (ring_unstick(r))
				nap = 0;
			else if (r->stall_since && (nap < 0 || nap > r->stall_ns / 4))
				nap = r->stall_ns / 4; /* wake to check the stall */
		}
		if (nap == 0)
			continue;
		for (size_t i = 0; i < ws->n; i++) {
			words[i] = &ws->subs[i]->map.ctl->futex;
			seen[i] = ring_announce_sleep(&ws->subs[i]->map);
		}
		atomic_thread_fence(memory_order_seq_cst);
		k = collect_ready(ws, ready, capacity);
		int rc = 0;
		if (!k) {
			int64_t now = monotonic_ns();
			int64_t sleep = deadline == INT64_MAX ? -1 : deadline - now;
			if (nap > 0 && (sleep < 0 || sleep > nap))
				sleep = nap;
			for (size_t i = 0; i < ws->n; i++)
				atomic_store_explicit(&ws->subs[i]->r.entry->waiting, 1,
						      memory_order_relaxed);
			rc = now >= deadline ? SHMBUS_ETIMEDOUT
					     : futex_waitv_shared(words, seen, ws->n, sleep);
			for (size_t i = 0; i < ws->n; i++)
				atomic_store_explicit(&ws->subs[i]->r.entry->waiting, 0,
						      memory_order_relaxed);
			if (rc == SHMBUS_ETIMEDOUT && monotonic_ns() < deadline)
				rc = 0; /* only the stall check's nap ended */
		}
		if (k)
			break;
		if (rc == SHMBUS_ETIMEDOUT || rc < 0) {
			k = collect_ready(ws, ready, capacity);
			if (k)
				break;
			return rc;
		}
	}
	*n_ready = k < capacity ? k : capacity;
	return 0;
}

/* --------------------------------------------------------- introspection */

struct list_ctx {
	int (*fn)(void *ctx, const char *topic);
	void *ctx;
};

int shmbus_list_topics(shmbus_bus *bus, int (*fn)(void *ctx, const char *topic), void *ctx)
{
	struct proto_buf b = { 0 };
	struct reply rep;
	if (!bus || !fn)
		return SHMBUS_EINVAL;
	size_t f = proto_frame_begin(&b, OP_LIST, 0);
	proto_frame_end(&b, f);
	int rc = bus_request(bus, &b, &rep);
	proto_buf_free(&b);
	if (rc)
		return rc;
	rc = proto_decode_names(rep.body, rep.hdr.len, fn, ctx);
	if (rc == SHMBUS_EBROKER)
		bus_set_error(bus, "broker sent a malformed topic list");
	reply_free(&rep);
	return rc;
}

static void client_from_pub(const struct ctl_pub *e, struct shmbus_client_info *ci)
{
	memset(ci, 0, sizeof(*ci));
	/* Relaxed: a snapshot for display. */
	ci->pid = atomic_load_explicit(&((struct ctl_pub *)e)->pid, memory_order_relaxed);
	ci->id = atomic_load_explicit(&((struct ctl_pub *)e)->publisher_id, memory_order_relaxed);
	ci->count = atomic_load_explicit(&((struct ctl_pub *)e)->published, memory_order_relaxed);
	ci->lost = atomic_load_explicit(&((struct ctl_pub *)e)->skipped, memory_order_relaxed);
}

int shmbus_topic_inspect(shmbus_bus *bus, const char *topic, struct shmbus_topic_info *info,
			 struct shmbus_client_info *pubs, size_t pubs_cap, size_t *n_pubs,
			 struct shmbus_client_info *subs, size_t subs_cap, size_t *n_subs)
{
	struct topic_map m;
	struct proto_opened op;
	if (!info)
		return SHMBUS_EINVAL;
	int rc = open_topic(bus, topic, ROLE_INSPECT, false, NULL, &m, &op);
	if (rc)
		return rc;
	const struct seg_header *h = m.seg;
	memset(info, 0, sizeof(*info));
	snprintf(info->name, sizeof(info->name), "%s", h->topic);
	snprintf(info->type_name, sizeof(info->type_name), "%s", h->type_name);
	info->slot_count = h->slot_count;
	info->slot_size = h->slot_size;
	info->max_message_size = h->max_message_size;
	info->history = h->history;
	info->flags = h->flags;
	info->schema_size = h->schema_size;
	info->segment_size = h->segment_size;
	/* Relaxed: snapshots for display. */
	info->next_seq = atomic_load_explicit(&m.seg->next_seq, memory_order_relaxed);
	info->schema_versions = m.ctl->schema_versions;
	size_t np = 0, ns = 0;
	for (size_t i = 0; i < SEG_MAX_PUBS; i++) {
		struct shmbus_client_info ci;
		client_from_pub(&m.ctl->pubs[i], &ci);
		if (ci.pid == 0)
			continue;
		if (pubs && np < pubs_cap)
			pubs[np] = ci;
		np++;
	}
	for (size_t i = 0; i < SEG_MAX_SUBS; i++) {
		struct ctl_sub *e = &m.ctl->subs[i];
		struct shmbus_client_info ci = { 0 };
		ci.pid = atomic_load_explicit(&e->pid, memory_order_relaxed);
		if (ci.pid == 0)
			continue;
		ci.id = (uint32_t)i;
		ci.count = atomic_load_explicit(&e->received, memory_order_relaxed);
		ci.lost = atomic_load_explicit(&e->lost, memory_order_relaxed);
		ci.rejected = atomic_load_explicit(&e->rejected, memory_order_relaxed);
		ci.next_seq = atomic_load_explicit(&e->next_seq, memory_order_relaxed);
		ci.lag = info->next_seq > ci.next_seq ? info->next_seq - ci.next_seq : 0;
		info->waiters += atomic_load_explicit(&e->waiting, memory_order_relaxed) != 0;
		if (subs && ns < subs_cap)
			subs[ns] = ci;
		ns++;
	}
	info->publishers = (uint32_t)np;
	info->subscribers = (uint32_t)ns;
	if (n_pubs)
		*n_pubs = np < pubs_cap ? np : pubs_cap;
	if (n_subs)
		*n_subs = ns < subs_cap ? ns : subs_cap;
	topic_unmap(&m);
	return 0;
}
