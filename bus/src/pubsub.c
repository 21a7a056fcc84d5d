/*
 * pubsub.c - owns the public publisher and subscriber handles: asking the
 * broker for a topic, mapping what it hands over, and passing calls on to
 * the ring (ring.c) and the wait loop (wait.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "futex.h"
#include "handles.h"

bool shmbus_topic_name_valid(const char *topic)
{
	return topic && topic_name_valid(topic);
}

static void close_topic(shmbus_bus *bus, uint32_t topic_id, uint32_t role, uint32_t index);

/* Check a topic name and topic options before asking the broker. */
static int check_request(const char *topic, const struct shmbus_topic_options *t)
{
	if (!topic_name_valid(topic))
		return err_fail(SHMBUS_ENAME,
				"invalid topic name '%s': use 1..%d of [A-Za-z0-9_./-] in "
				"'/'-separated segments, an optional leading '/', no empty, '.' or "
				"'..' segment",
				topic, TOPIC_NAME_MAX);
	if (t->type_name && !type_name_valid(t->type_name))
		return err_fail(SHMBUS_EINVAL,
				"invalid type name for topic '%s': use up to 255 of [A-Za-z0-9_.]",
				topic);
	if (t->schema_size && !t->schema)
		return err_fail(SHMBUS_EINVAL, "topic '%s': schema_size without a schema", topic);
	if (t->schema_size > SEG_MAX_SCHEMA)
		return err_fail(SHMBUS_ELIMIT, "schema of %zu bytes is above the limit %u",
				t->schema_size, SEG_MAX_SCHEMA);
	return 0;
}

/* Ask the broker for a topic and map it. t: imported topic options. */
static int open_topic(shmbus_bus *bus, const char *topic, uint32_t role, bool create,
		      const struct shmbus_topic_options *t, struct topic_map *map,
		      struct proto_opened *opened)
{
	struct proto_buf b = { 0 };
	struct reply rep;
	char err[256];

	if (!bus || !topic || !map)
		return err_fail(SHMBUS_EINVAL, "open: bus, topic or handle is NULL");
	int rc = check_request(topic, t);
	if (rc)
		return rc;
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
	size_t f = proto_frame_begin(&b, OP_OPEN, 0);
	proto_encode_open(&b, &o);
	proto_frame_end(&b, f);
	rc = bus_request(bus, &b, &rep);
	proto_buf_free(&b);
	if (rc)
		return rc;
	if (proto_decode_opened(rep.body, rep.hdr.len, opened) || rep.nfds != 2) {
		reply_free(&rep);
		return err_fail(SHMBUS_EBROKER, "broker sent a malformed OPEN reply for '%s'",
				topic);
	}
	rc = topic_map_fds(rep.fds[0], rep.fds[1], role == ROLE_PUB, role != ROLE_INSPECT, map,
			   err, sizeof(err));
	reply_free(&rep);
	if (rc)
		return err_fail(rc, "topic '%s': %s", topic, err);
	if (role != ROLE_INSPECT && (map->seg->flags & SHMBUS_TOPIC_INTEGRITY) && !bus->have_key) {
		topic_unmap(map);
		close_topic(bus, opened->topic_id, role, opened->index);
		return err_fail(SHMBUS_EPERM,
				"topic '%s' carries integrity tags: set SHMBUS_KEY_FILE (or "
				"key_file) to the bus key",
				topic);
	}
	if (role == ROLE_PUB && (t->flags & SHMBUS_TOPIC_INTEGRITY) &&
	    !(map->seg->flags & SHMBUS_TOPIC_INTEGRITY)) {
		topic_unmap(map);
		close_topic(bus, opened->topic_id, role, opened->index);
		return err_fail(SHMBUS_ELAYOUT, "topic '%s' was created without integrity tags",
				topic);
	}
	if (!topic_names_equal(map->seg->topic, topic) ||
	    (role == ROLE_PUB && opened->index >= SEG_MAX_PUBS) ||
	    (role == ROLE_SUB && opened->index >= SEG_MAX_SUBS)) {
		topic_unmap(map);
		return err_fail(SHMBUS_EBROKER, "broker handed over the wrong segment for '%s'",
				topic);
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

/* The caller's topic options (may be NULL) over the defaults. */
static int import_topic(struct shmbus_topic_options *t, const struct shmbus_topic_options *src)
{
	shmbus_topic_options_init(t);
	return src ? options_import(t, sizeof(*t), src, "topic") : 0;
}

/* ------------------------------------------------------------- publisher */

int shmbus_pub_open(shmbus_bus *bus, const char *topic,
		    const struct shmbus_topic_options *topic_opts,
		    const struct shmbus_pub_options *opts, shmbus_pub **out)
{
	struct shmbus_pub_options po;
	struct shmbus_topic_options t;
	struct proto_opened op;

	err_clear();
	if (!out)
		return err_fail(SHMBUS_EINVAL, "shmbus_pub_open: out is NULL");
	*out = NULL;
	shmbus_pub_options_init(&po);
	int rc = opts ? options_import(&po, sizeof(po), opts, "pub") : 0;
	if (rc == 0)
		rc = import_topic(&t, topic_opts);
	if (rc)
		return rc;
	shmbus_pub *p = calloc(1, sizeof(*p));
	if (!p)
		return err_fail(SHMBUS_ENOMEM, "out of memory for a publisher");
	rc = open_topic(bus, topic, ROLE_PUB, true, &t, &p->map, &op);
	if (rc) {
		free(p);
		return rc;
	}
	p->bus = bus;
	p->topic_id = op.topic_id;
	p->index = op.index;
	p->flags = po.flags;
	ring_writer_init(&p->w, &p->map, &p->map.ctl->pubs[op.index], op.publisher_id);
	if (p->map.seg->flags & SHMBUS_TOPIC_INTEGRITY) {
		memcpy(p->integ.key, bus->key, sizeof(p->integ.key));
		p->integ.topic = topic_name_canon(p->map.seg->topic);
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
	err_clear();
	if (!pub || !buf || !capacity)
		return err_fail(SHMBUS_EINVAL, "shmbus_pub_loan: NULL argument");
	return ring_loan(&pub->w, buf, capacity);
}

int shmbus_pub_publish_at(shmbus_pub *pub, size_t size, int64_t publish_ns, uint64_t *seq)
{
	err_clear();
	if (!pub)
		return err_fail(SHMBUS_EINVAL, "shmbus_pub_publish: pub is NULL");
	return ring_publish(&pub->w, size, publish_ns, seq);
}

int shmbus_pub_publish(shmbus_pub *pub, size_t size, uint64_t *seq)
{
	return shmbus_pub_publish_at(pub, size, 0, seq);
}

int shmbus_pub_discard(shmbus_pub *pub)
{
	err_clear();
	if (!pub)
		return err_fail(SHMBUS_EINVAL, "shmbus_pub_discard: pub is NULL");
	return ring_discard(&pub->w);
}

int shmbus_pub_reserve(shmbus_pub *pub, size_t size)
{
	err_clear();
	if (!pub)
		return err_fail(SHMBUS_EINVAL, "shmbus_pub_reserve: pub is NULL");
	if (pub->w.loaned)
		return err_fail(SHMBUS_ESTATE, "shmbus_pub_reserve: a loan is open");
	if (size <= pub->map.seg->max_message_size)
		return 0;
	return err_fail(SHMBUS_EMSGSIZE, "topic '%s' holds messages of up to %u bytes, not %zu",
			pub->map.seg->topic, pub->map.seg->max_message_size, size);
}

int shmbus_pub_send(shmbus_pub *pub, const void *data, size_t size, uint64_t *seq)
{
	void *buf;
	size_t cap;
	err_clear();
	if (!pub || (size && !data))
		return err_fail(SHMBUS_EINVAL, "shmbus_pub_send: NULL argument");
	/* Checked before claiming: a message that does not fit burns nothing. */
	int rc = shmbus_pub_reserve(pub, size);
	if (rc)
		return rc;
	rc = ring_loan(&pub->w, &buf, &cap);
	if (rc)
		return rc;
	if (size)
		memcpy(buf, data, size);
	return ring_publish(&pub->w, size, 0, seq);
}

void shmbus_pub_stats(const shmbus_pub *pub, struct shmbus_pub_stats *st)
{
	memset(st, 0, sizeof(*st));
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

const char *shmbus_pub_topic(const shmbus_pub *pub)
{
	return pub->map.seg->topic;
}

/* ------------------------------------------------------------ subscriber */

int shmbus_sub_open(shmbus_bus *bus, const char *topic,
		    const struct shmbus_topic_options *topic_opts,
		    const struct shmbus_sub_options *opts, shmbus_sub **out)
{
	struct shmbus_sub_options so;
	struct shmbus_topic_options t;
	struct proto_opened op;

	err_clear();
	if (!out)
		return err_fail(SHMBUS_EINVAL, "shmbus_sub_open: out is NULL");
	*out = NULL;
	shmbus_sub_options_init(&so);
	int rc = opts ? options_import(&so, sizeof(so), opts, "sub") : 0;
	if (rc == 0)
		rc = import_topic(&t, topic_opts);
	if (rc)
		return rc;
	if (so.start != SHMBUS_START_NEW && so.start != SHMBUS_START_LAST &&
	    so.start != SHMBUS_START_FIRST)
		return err_fail(SHMBUS_EINVAL, "sub options: unknown start %d", (int)so.start);
	if (so.lapped != SHMBUS_LAPPED_PACE && so.lapped != SHMBUS_LAPPED_OLDEST)
		return err_fail(SHMBUS_EINVAL, "sub options: unknown lapped policy %d",
				(int)so.lapped);
	shmbus_sub *s = calloc(1, sizeof(*s));
	if (!s)
		return err_fail(SHMBUS_ENOMEM, "out of memory for a subscriber");
	rc = open_topic(bus, topic, ROLE_SUB, so.create_if_missing, &t, &s->map, &op);
	if (rc) {
		free(s);
		return rc;
	}
	s->bus = bus;
	s->topic_id = op.topic_id;
	s->index = op.index;
	/* Relaxed: set by the broker before it handed the topic over (see
	 * registry_claim_sub). */
	uint64_t head = atomic_load_explicit(&s->map.ctl->subs[op.index].next_seq,
					     memory_order_relaxed);
	uint64_t start = ring_start_seq(&s->map, head, so.start, so.last_n);
	ring_reader_init(&s->r, &s->map, &s->map.ctl->subs[op.index], start,
			 so.start == SHMBUS_START_FIRST ? start : 0);
	if (s->map.seg->flags & SHMBUS_TOPIC_INTEGRITY) {
		memcpy(s->integ.key, bus->key, sizeof(s->integ.key));
		s->integ.topic = topic_name_canon(s->map.seg->topic);
		s->r.integ = &s->integ;
	}
	s->r.spin_ns = so.spin_ns > 0 ? so.spin_ns : 0;
	if (so.stall_timeout_ns > 0)
		s->r.stall_ns = so.stall_timeout_ns;
	*out = s;
	return 0;
}

void shmbus_sub_close(shmbus_sub *sub)
{
	if (!sub)
		return;
	if (sub->fd_set)
		shmbus_waitset_remove(sub->fd_set, sub);
	fdwatch_stop(sub->own_fw);
	close_topic(sub->bus, sub->topic_id, ROLE_SUB, sub->index);
	topic_unmap(&sub->map);
	free(sub);
}

/* A take or view found nothing: an event descriptor's thread watches from
 * here on. */
static int sub_nothing(shmbus_sub *sub)
{
	if (sub->fw)
		fdwatch_rearm(sub->fw);
	return SHMBUS_EAGAIN;
}

int shmbus_sub_take(shmbus_sub *sub, void *buf, size_t capacity, struct shmbus_msg_info *info)
{
	err_clear();
	if (!sub || (capacity && !buf))
		return err_fail(SHMBUS_EINVAL, "shmbus_sub_take: NULL argument");
	int rc = ring_take(&sub->r, buf, capacity, info);
	return rc == SHMBUS_EAGAIN ? sub_nothing(sub) : rc;
}

int shmbus_sub_view(shmbus_sub *sub, struct shmbus_view *view)
{
	err_clear();
	if (!sub || !view)
		return err_fail(SHMBUS_EINVAL, "shmbus_sub_view: NULL argument");
	int rc = ring_view(&sub->r, view);
	return rc == SHMBUS_EAGAIN ? sub_nothing(sub) : rc;
}

bool shmbus_sub_view_valid(const shmbus_sub *sub, const struct shmbus_view *view)
{
	return sub && view && ring_view_valid(&sub->r, view);
}

int shmbus_sub_release(shmbus_sub *sub, struct shmbus_view *view)
{
	err_clear();
	if (!sub || !view)
		return err_fail(SHMBUS_EINVAL, "shmbus_sub_release: NULL argument");
	return ring_release(&sub->r, view);
}

int shmbus_sub_wait(shmbus_sub *sub, int64_t timeout_ns)
{
	err_clear();
	if (!sub)
		return err_fail(SHMBUS_EINVAL, "shmbus_sub_wait: sub is NULL");
	return ring_wait(&sub->r, timeout_ns, &sub->intr);
}

void shmbus_sub_interrupt(shmbus_sub *sub)
{
	if (sub)
		wait_intr_raise(&sub->intr);
}

void sub_probe(const shmbus_sub *sub, struct probe *p)
{
	*p = (struct probe){ .kind = PROBE_TOPIC,
			     .map = &sub->map,
			     .seq = sub->r.next,
			     .stall_ns = sub->r.stall_ns };
}

static void sub_snapshot(void *owner, struct probe *probes, size_t *n)
{
	sub_probe(owner, &probes[0]);
	*n = 1;
}

int shmbus_sub_fd(shmbus_sub *sub, int *fd)
{
	err_clear();
	if (!sub || !fd)
		return err_fail(SHMBUS_EINVAL, "shmbus_sub_fd: NULL argument");
	if (sub->fd_set)
		return err_fail(SHMBUS_EINVAL,
				"subscriber of '%s' belongs to a wait set with a descriptor: use "
				"that one",
				sub->map.seg->topic);
	if (!sub->own_fw) {
		int rc = fdwatch_start(&sub->own_fw, sub_snapshot, sub);
		if (rc)
			return rc;
		sub->fw = sub->own_fw;
	}
	*fd = sub->own_fw->efd;
	return 0;
}

void shmbus_sub_stats(const shmbus_sub *sub, struct shmbus_sub_stats *st)
{
	/* Relaxed: a snapshot for statistics. */
	uint64_t head = atomic_load_explicit(&sub->map.seg->next_seq, memory_order_relaxed);
	memset(st, 0, sizeof(*st));
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

const char *shmbus_sub_topic(const shmbus_sub *sub)
{
	return sub->map.seg->topic;
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

/* --------------------------------------------------------- introspection */

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
	struct shmbus_topic_options any;
	err_clear();
	if (!info)
		return err_fail(SHMBUS_EINVAL, "shmbus_topic_inspect: info is NULL");
	shmbus_topic_options_init(&any);
	int rc = open_topic(bus, topic, ROLE_INSPECT, false, &any, &m, &op);
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
		ci.waiting = atomic_load_explicit(&e->waiting, memory_order_relaxed) != 0;
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
