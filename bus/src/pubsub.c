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

/* Ask the broker for a topic and map it: *line gets the handle's counter
 * line. t: imported topic options. */
static int open_topic(shmbus_bus *bus, const char *topic, uint32_t role, bool create,
		      const struct shmbus_topic_options *t, struct topic_map *map,
		      struct proto_opened *opened, struct client_line **line)
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
	if (proto_decode_opened(rep.body, rep.hdr.len, opened) ||
	    rep.nfds != (opened->new_page ? 3 : 2) ||
	    !topic_names_equal(opened->layout.name, topic) ||
	    opened->index >= (role == ROLE_PUB ? SEG_MAX_PUBS : SEG_MAX_SUBS)) {
		reply_free(&rep);
		return err_fail(SHMBUS_EBROKER, "broker sent a malformed OPEN reply for '%s'",
				topic);
	}
	/* The layout is the one the broker said, checked against the objects;
	 * from here on the handle uses its own copy of it. */
	rc = topic_map_fds(rep.fds[0], rep.fds[1], role == ROLE_PUB, &opened->layout, bus->board,
			   map, err, sizeof(err));
	if (rc == 0) {
		*line = bus_page_line(bus, opened->page, opened->line,
				      opened->new_page ? rep.fds[2] : -1);
		if (!*line) {
			topic_unmap(map);
			rc = SHMBUS_EBROKER;
		}
	} else {
		err_set("topic '%s': %s", topic, err);
	}
	reply_free(&rep);
	if (rc) {
		close_topic(bus, opened->layout.topic_id, role, opened->index);
		return rc;
	}
	const char *why = NULL;
	if ((map->flags & SHMBUS_TOPIC_INTEGRITY) && !bus->have_key)
		why = "carries integrity tags: set SHMBUS_KEY_FILE (or key_file) to the bus key";
	else if (role == ROLE_PUB && (t->flags & SHMBUS_TOPIC_INTEGRITY) &&
		 !(map->flags & SHMBUS_TOPIC_INTEGRITY))
		why = "was created without integrity tags";
	if (why) {
		rc = (map->flags & SHMBUS_TOPIC_INTEGRITY) ? SHMBUS_EPERM : SHMBUS_ELAYOUT;
		topic_unmap(map);
		close_topic(bus, opened->layout.topic_id, role, opened->index);
		return err_fail(rc, "topic '%s' %s", topic, why);
	}
	return 0;
}

/* A claim or take found the ring sealed: why, as the topic's meta says. */
/* The state the broker set in a ring's meta when it sealed it. */
static uint32_t ring_state(const struct topic_map *m)
{
	/* Acquire: pairs with the broker's release store of the state. */
	return atomic_load_explicit(&((struct meta_header *)m->meta)->state,
				    memory_order_acquire);
}

/* A claim or take found the ring sealed, with no successor: why, as the
 * topic's meta says. */
static int sealed_error(const struct topic_map *m)
{
	return err_fail(SHMBUS_ENOTOPIC, "topic '%s' was %s", m->layout.name,
			ring_state(m) == META_REMOVED ? "removed" : "closed by its broker");
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

/* --------------------------------------------------------- moving rings */

/* A topic map of its own (a handle's map moves when its topic grows). */
static struct topic_map *map_new(void)
{
	struct topic_map *m = calloc(1, sizeof(*m));
	if (!m)
		err_set("out of memory for a topic map");
	return m;
}

static void map_free(struct topic_map *m)
{
	if (m) {
		topic_unmap(m);
		free(m);
	}
}

/* Ask the broker for the topic's ring now (OP_REOPEN) or for a larger one
 * (OP_GROW), for the line (role, index) a handle holds on `cur`'s topic,
 * and map it into *next. The successor must be the same topic, a later
 * generation (so following always ends), with the same incarnation (the
 * handle's integrity key stays right). */
static int ring_request(shmbus_bus *bus, const struct topic_map *cur, uint16_t op, uint32_t role,
			uint32_t index, uint32_t size, struct topic_map **out)
{
	struct proto_buf b = { 0 };
	struct reply rep;
	struct proto_opened o;
	char err[256];
	const struct seg_layout *l = &cur->layout;

	size_t f = proto_frame_begin(&b, op, 0);
	if (op == OP_GROW)
		proto_encode_grow(&b, &(struct proto_grow){ l->topic_id, index, size });
	else
		proto_encode_close(&b, &(struct proto_close){ l->topic_id, role, index });
	proto_frame_end(&b, f);
	int rc = bus_request(bus, &b, &rep);
	proto_buf_free(&b);
	if (rc)
		return rc;
	if (proto_decode_opened(rep.body, rep.hdr.len, &o) || rep.nfds != 2 ||
	    o.layout.topic_id != l->topic_id || strcmp(o.layout.name, l->name) != 0 ||
	    strcmp(o.layout.type_name, l->type_name) != 0 || o.layout.flags != l->flags ||
	    o.layout.generation < l->generation ||
	    memcmp(o.layout.incarnation, l->incarnation, sizeof(l->incarnation)) != 0) {
		reply_free(&rep);
		return err_fail(SHMBUS_EBROKER, "broker sent a malformed reply moving '%s'",
				l->name);
	}
	if (o.layout.generation == l->generation) {
		/* Nothing to move to (GROW: another publisher's growth already
		 * made it large enough, and this is it). */
		reply_free(&rep);
		*out = NULL;
		return 0;
	}
	struct topic_map *m = map_new();
	rc = m ? topic_map_fds(rep.fds[0], rep.fds[1], role == ROLE_PUB, &o.layout, bus->board, m,
			       err, sizeof(err))
	       : SHMBUS_ENOMEM;
	reply_free(&rep);
	if (rc) {
		free(m);
		return rc == SHMBUS_ENOMEM ? rc : err_fail(rc, "topic '%s': %s", l->name, err);
	}
	*out = m;
	return 0;
}

/* A publisher's ring ended, or is too small: carry on in the topic's ring
 * now (op OP_REOPEN) or a larger one (OP_GROW, size). */
static int pub_move(shmbus_pub *pub, uint16_t op, uint32_t size)
{
	struct topic_map *next;
	if (op == OP_REOPEN && ring_state(pub->map) != META_GROWN)
		return sealed_error(pub->map);
	int rc = ring_request(pub->bus, pub->map, op, ROLE_PUB, pub->index, size, &next);
	if (rc || !next)
		return rc;
	/* No loan is open (moves happen before a claim): nothing of ours
	 * is left in the old ring. */
	map_free(pub->map);
	pub->map = next;
	pub->w.map = next;
	return 0;
}

/* A subscriber reached the end of its ring: removed (ENOTOPIC), or grown,
 * and then it carries on in the successor from where the old ring ended. */
static int sub_move(shmbus_sub *sub)
{
	struct topic_map *next;
	if (ring_state(sub->map) != META_GROWN)
		return sealed_error(sub->map);
	if (sub->n_retired == RETIRED_MAX)
		return err_fail(SHMBUS_ELIMIT, "topic '%s' grew more than %d times under one "
				"subscriber", sub->map->layout.name, RETIRED_MAX);
	int rc = ring_request(sub->bus, sub->map, OP_REOPEN, ROLE_SUB, sub->index, 0, &next);
	if (rc)
		return rc;
	if (!next)
		return err_fail(SHMBUS_EBROKER, "broker has no successor for grown topic '%s'",
				sub->map->layout.name);
	sub->retired[sub->n_retired++] = sub->map;
	sub->map = next;
	ring_reader_move(&sub->r, next);
	return 0;
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
	if (p)
		p->map = map_new();
	if (!p || !p->map) {
		free(p);
		return err_fail(SHMBUS_ENOMEM, "out of memory for a publisher");
	}
	/* A publisher that may grow an existing smaller topic takes it at
	 * the size it has, then grows it to the size asked for. */
	uint32_t need = t.max_message_size;
	struct client_line *line;
	rc = open_topic(bus, topic, ROLE_PUB, true, &t, p->map, &op, &line);
	if (rc == SHMBUS_ELAYOUT && (po.flags & SHMBUS_PUB_GROW)) {
		t.max_message_size = 0;
		rc = open_topic(bus, topic, ROLE_PUB, true, &t, p->map, &op, &line);
	}
	if (rc) {
		free(p->map);
		free(p);
		return rc;
	}
	p->bus = bus;
	p->topic_id = op.layout.topic_id;
	p->index = op.index;
	p->flags = po.flags;
	snprintf(p->topic, sizeof(p->topic), "%s", topic);
	ring_writer_init(&p->w, p->map, line, op.index, op.publisher_id);
	if (p->map->flags & SHMBUS_TOPIC_INTEGRITY) {
		/* Bound to this bus, the name as asked, and the incarnation the
		 * broker said: never to anything read from shared memory. */
		integrity_derive(&p->integ, bus->key, bus->name, topic_name_canon(topic),
				 op.layout.incarnation, sizeof(op.layout.incarnation));
		p->w.integ = &p->integ;
	}
	if (need > p->map->max_message_size) {
		rc = shmbus_pub_reserve(p, need);
		if (rc) {
			shmbus_pub_close(p);
			return rc;
		}
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
	map_free(pub->map);
	free(pub);
}

int shmbus_pub_loan(shmbus_pub *pub, void **buf, size_t *capacity)
{
	err_clear();
	if (!pub || !buf || !capacity)
		return err_fail(SHMBUS_EINVAL, "shmbus_pub_loan: NULL argument");
	int rc;
	/* A sealed ring whose topic grew: again in the successor (each one a
	 * later generation, so this ends). */
	while ((rc = ring_loan(&pub->w, buf, capacity)) == RING_SEALED)
		if ((rc = pub_move(pub, OP_REOPEN, 0)) != 0)
			return rc;
	return rc;
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
	/* The ring may have grown under us (another publisher): look at the
	 * topic's newest ring before growing it again. */
	if (ring_state(pub->map) == META_GROWN) {
		int rc = pub_move(pub, OP_REOPEN, 0);
		if (rc)
			return rc;
	}
	if (size <= pub->map->max_message_size)
		return 0;
	if (!(pub->flags & SHMBUS_PUB_GROW) || size > SEG_MAX_MESSAGE)
		return err_fail(SHMBUS_EMSGSIZE,
				"topic '%s' holds messages of up to %u bytes, not %zu%s",
				pub->map->layout.name, pub->map->max_message_size, size,
				size > SEG_MAX_MESSAGE ? " (above the bus's limit)"
						       : ": open the publisher with SHMBUS_PUB_GROW "
							 "to grow it");
	int rc = pub_move(pub, OP_GROW, (uint32_t)size);
	if (rc == 0 && size > pub->map->max_message_size)
		rc = err_fail(SHMBUS_EBROKER, "broker grew '%s' to %u bytes, not %zu",
			      pub->map->layout.name, pub->map->max_message_size, size);
	return rc;
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
	rc = shmbus_pub_loan(pub, &buf, &cap);
	if (rc)
		return rc;
	if (size > cap) {
		/* The ring the loan found is a successor, larger; never smaller
		 * than what reserve saw, but check rather than trust. */
		ring_discard(&pub->w);
		return err_fail(SHMBUS_EMSGSIZE, "topic '%s' holds messages of up to %zu bytes",
				pub->map->layout.name, cap);
	}
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
	return pub->map->max_message_size;
}

const char *shmbus_pub_type_name(const shmbus_pub *pub)
{
	return pub->map->layout.type_name;
}

const char *shmbus_pub_topic(const shmbus_pub *pub)
{
	return pub->map->layout.name;
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
	if (s)
		s->map = map_new();
	if (!s || !s->map) {
		free(s);
		return err_fail(SHMBUS_ENOMEM, "out of memory for a subscriber");
	}
	struct client_line *line;
	rc = open_topic(bus, topic, ROLE_SUB, so.create_if_missing, &t, s->map, &op, &line);
	if (rc) {
		free(s->map);
		free(s);
		return rc;
	}
	s->bus = bus;
	s->topic_id = op.layout.topic_id;
	s->index = op.index;
	/* The head when the broker registered us: anything published once we
	 * show in `shmbus info` is after our start. */
	uint64_t start = ring_start_seq(s->map, op.head, so.start, so.last_n);
	ring_reader_init(&s->r, s->map, line, start, so.start == SHMBUS_START_FIRST ? start : 0);
	s->r.oldest_on_lap = so.lapped == SHMBUS_LAPPED_OLDEST;
	if (s->map->flags & SHMBUS_TOPIC_INTEGRITY) {
		integrity_derive(&s->integ, bus->key, bus->name, topic_name_canon(topic),
				 op.layout.incarnation, sizeof(op.layout.incarnation));
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
	map_free(sub->map);
	for (size_t i = 0; i < sub->n_retired; i++)
		map_free(sub->retired[i]);
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
	int rc;
	while ((rc = ring_take(&sub->r, buf, capacity, info)) == RING_SEALED)
		if ((rc = sub_move(sub)) != 0)
			return rc;
	return rc == SHMBUS_EAGAIN ? sub_nothing(sub) : rc;
}

int shmbus_sub_view(shmbus_sub *sub, struct shmbus_view *view)
{
	err_clear();
	if (!sub || !view)
		return err_fail(SHMBUS_EINVAL, "shmbus_sub_view: NULL argument");
	int rc;
	while ((rc = ring_view(&sub->r, view)) == RING_SEALED)
		if ((rc = sub_move(sub)) != 0)
			return rc;
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
			     .map = sub->map,
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
				sub->map->layout.name);
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
	uint64_t head = ring_head(sub->map);
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
	return sub->map->layout.type_name;
}

const char *shmbus_sub_topic(const shmbus_sub *sub)
{
	return sub->map->layout.name;
}

const void *shmbus_sub_schema(const shmbus_sub *sub, size_t *size)
{
	/* The meta is the broker's alone: its schema is what the topic was
	 * created with. */
	*size = sub->map->layout.schema_size;
	return (const uint8_t *)sub->map->meta + sizeof(struct meta_header);
}

size_t shmbus_sub_max_message_size(const shmbus_sub *sub)
{
	return sub->map->max_message_size;
}

/* --------------------------------------------------------- introspection */

struct inspect_ctx {
	struct shmbus_client_info *pubs, *subs;
	size_t pubs_cap, subs_cap, np, ns;
	uint64_t head;
	uint32_t waiters;
};

static void inspect_client(void *ctx, bool pub, const struct proto_client *c)
{
	struct inspect_ctx *x = ctx;
	struct shmbus_client_info ci;
	memset(&ci, 0, sizeof(ci));
	ci.pid = c->pid;
	ci.id = c->id;
	ci.count = c->count;
	ci.lost = c->lost;
	if (!pub) {
		ci.next_seq = c->next_seq;
		ci.lag = x->head > c->next_seq ? x->head - c->next_seq : 0;
		ci.rejected = c->rejected;
		ci.waiting = c->waiting != 0;
		x->waiters += ci.waiting;
		if (x->subs && x->ns < x->subs_cap)
			x->subs[x->ns] = ci;
		x->ns++;
	} else {
		if (x->pubs && x->np < x->pubs_cap)
			x->pubs[x->np] = ci;
		x->np++;
	}
}

/* A request that is one topic name; the reply in *rep. */
static int name_request(shmbus_bus *bus, uint16_t op, const char *topic, struct reply *rep)
{
	struct proto_buf b = { 0 };
	if (!topic_name_valid(topic))
		return err_fail(SHMBUS_ENAME, "invalid topic name '%s'", topic);
	size_t f = proto_frame_begin(&b, op, 0);
	proto_encode_name(&b, topic);
	proto_frame_end(&b, f);
	int rc = bus_request(bus, &b, rep);
	proto_buf_free(&b);
	return rc;
}

int shmbus_topic_inspect(shmbus_bus *bus, const char *topic, struct shmbus_topic_info *info,
			 struct shmbus_client_info *pubs, size_t pubs_cap, size_t *n_pubs,
			 struct shmbus_client_info *subs, size_t subs_cap, size_t *n_subs)
{
	struct reply rep;
	struct proto_info in;
	err_clear();
	if (!bus || !topic || !info)
		return err_fail(SHMBUS_EINVAL, "shmbus_topic_inspect: NULL argument");
	int rc = name_request(bus, OP_INFO, topic, &rep);
	if (rc)
		return rc;
	struct inspect_ctx x = { pubs, subs, pubs_cap, subs_cap, 0, 0, 0, 0 };
	/* The head comes before the clients in the reply: decode twice is
	 * not needed, the lag is filled from the info once known. */
	memset(&in, 0, sizeof(in));
	rc = proto_decode_info(rep.body, rep.hdr.len, &in, inspect_client, &x);
	reply_free(&rep);
	if (rc)
		return err_fail(SHMBUS_EBROKER, "broker sent a malformed INFO reply for '%s'",
				topic);
	memset(info, 0, sizeof(*info));
	snprintf(info->name, sizeof(info->name), "%s", in.layout.name);
	snprintf(info->type_name, sizeof(info->type_name), "%s", in.layout.type_name);
	info->slot_count = in.layout.slot_count;
	info->slot_size = in.layout.slot_size;
	info->max_message_size = in.layout.max_message_size;
	info->history = in.layout.history;
	info->flags = in.layout.flags;
	info->schema_size = in.layout.schema_size;
	info->segment_size = in.layout.data_size;
	info->next_seq = in.next_seq;
	info->broker_bytes = in.broker_bytes;
	info->schema_versions = in.schema_versions;
	info->grown = in.grown;
	info->ring_base_seq = in.layout.base_seq;
	info->publishers = in.n_pubs;
	info->subscribers = in.n_subs;
	info->waiters = x.waiters;
	size_t ns = subs && x.ns < subs_cap ? x.ns : subs_cap;
	for (size_t i = 0; subs && i < ns; i++)
		subs[i].lag = in.next_seq > subs[i].next_seq ? in.next_seq - subs[i].next_seq : 0;
	if (n_pubs)
		*n_pubs = x.np < pubs_cap ? x.np : pubs_cap;
	if (n_subs)
		*n_subs = ns;
	return 0;
}

int shmbus_topic_remove(shmbus_bus *bus, const char *topic)
{
	struct reply rep;
	err_clear();
	if (!bus || !topic)
		return err_fail(SHMBUS_EINVAL, "shmbus_topic_remove: NULL argument");
	int rc = name_request(bus, OP_REMOVE, topic, &rep);
	if (rc == 0)
		reply_free(&rep);
	return rc;
}
