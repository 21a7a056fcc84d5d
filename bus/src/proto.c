/*
 * proto.c - encoding and decoding broker protocol frames (see proto.h).
 * Decoders trust nothing: every length is checked against what is left.
 */
#include "proto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layout.h"
#include "shmbus/shmbus.h"

void proto_buf_free(struct proto_buf *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
}

static void put(struct proto_buf *b, const void *p, size_t n)
{
	if (b->failed)
		return;
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->len + n)
			cap *= 2;
		uint8_t *d = realloc(b->data, cap);
		if (!d) {
			b->failed = true;
			return;
		}
		b->data = d;
		b->cap = cap;
	}
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
}

size_t proto_frame_begin(struct proto_buf *b, uint16_t op, int32_t status)
{
	struct proto_hdr h = { PROTO_MAGIC, PROTO_VERSION, op, status, 0 };
	size_t start = b->len;
	put(b, &h, sizeof(h));
	return start;
}

void proto_frame_end(struct proto_buf *b, size_t start)
{
	if (b->failed)
		return;
	uint32_t body = (uint32_t)(b->len - start - sizeof(struct proto_hdr));
	memcpy(b->data + start + offsetof(struct proto_hdr, len), &body, sizeof(body));
}

void proto_put_u32(struct proto_buf *b, uint32_t v)
{
	put(b, &v, sizeof(v));
}

void proto_put_bytes(struct proto_buf *b, const void *p, size_t n)
{
	put(b, p, n);
}

void proto_put_str(struct proto_buf *b, const char *s)
{
	size_t n = strlen(s);
	proto_put_u32(b, (uint32_t)n);
	put(b, s, n);
}

int proto_check_hdr(const struct proto_hdr *h, char *err, size_t errlen)
{
	if (h->magic != PROTO_MAGIC) {
		snprintf(err, errlen, "not a shmbus protocol frame (magic %08x)", h->magic);
		return SHMBUS_EBROKER;
	}
	if (h->version != PROTO_VERSION) {
		snprintf(err, errlen, "protocol version %u, this side speaks %u", h->version,
			 PROTO_VERSION);
		return SHMBUS_EVERSION;
	}
	if (h->len > PROTO_MAX_BODY) {
		snprintf(err, errlen, "frame body of %u bytes exceeds the limit %u", h->len,
			 PROTO_MAX_BODY);
		return SHMBUS_EBROKER;
	}
	return 0;
}

/* A read cursor over an untrusted body. */
struct cur {
	const uint8_t *p;
	size_t left;
	bool bad;
};

static uint32_t get_u32(struct cur *c)
{
	uint32_t v = 0;
	if (c->left < sizeof(v)) {
		c->bad = true;
		return 0;
	}
	memcpy(&v, c->p, sizeof(v));
	c->p += sizeof(v);
	c->left -= sizeof(v);
	return v;
}

static const void *get_bytes(struct cur *c, size_t n)
{
	if (c->bad || c->left < n) {
		c->bad = true;
		return NULL;
	}
	const void *p = c->p;
	c->p += n;
	c->left -= n;
	return p;
}

void proto_encode_open(struct proto_buf *b, const struct proto_open *o)
{
	proto_put_u32(b, o->role);
	proto_put_u32(b, o->create);
	proto_put_u32(b, o->slot_count);
	proto_put_u32(b, o->max_message_size);
	proto_put_u32(b, o->history);
	proto_put_u32(b, o->flags);
	proto_put_u32(b, o->topic_len);
	proto_put_u32(b, o->type_len);
	proto_put_u32(b, o->schema_len);
	put(b, o->topic, o->topic_len);
	if (o->type_len != PROTO_ANY_TYPE)
		put(b, o->type_name, o->type_len);
	put(b, o->schema, o->schema_len);
}

int proto_decode_open(const uint8_t *body, size_t len, struct proto_open *o, char *err,
		      size_t errlen)
{
	struct cur c = { body, len, false };
	memset(o, 0, sizeof(*o));
	o->role = get_u32(&c);
	o->create = get_u32(&c);
	o->slot_count = get_u32(&c);
	o->max_message_size = get_u32(&c);
	o->history = get_u32(&c);
	o->flags = get_u32(&c);
	o->topic_len = get_u32(&c);
	o->type_len = get_u32(&c);
	o->schema_len = get_u32(&c);
	if (c.bad) {
		snprintf(err, errlen, "OPEN request too short (%zu bytes)", len);
		return SHMBUS_EBROKER;
	}
	if (o->role < ROLE_PUB || o->role > ROLE_SUB) {
		snprintf(err, errlen, "OPEN request with unknown role %u", o->role);
		return SHMBUS_EINVAL;
	}
	if (o->topic_len == 0 || o->topic_len >= SEG_TOPIC_MAX) {
		snprintf(err, errlen, "OPEN request with a topic name of %u bytes", o->topic_len);
		return SHMBUS_ENAME;
	}
	if (o->type_len != PROTO_ANY_TYPE && o->type_len >= SEG_TYPE_MAX) {
		snprintf(err, errlen, "OPEN request with a type name of %u bytes", o->type_len);
		return SHMBUS_EINVAL;
	}
	if (o->schema_len > SEG_MAX_SCHEMA) {
		snprintf(err, errlen, "OPEN request with a schema of %u bytes", o->schema_len);
		return SHMBUS_ELIMIT;
	}
	o->topic = get_bytes(&c, o->topic_len);
	if (o->type_len != PROTO_ANY_TYPE)
		o->type_name = get_bytes(&c, o->type_len);
	o->schema = get_bytes(&c, o->schema_len);
	if (c.bad || c.left != 0) {
		snprintf(err, errlen, "OPEN request lengths do not match its %zu bytes", len);
		return SHMBUS_EBROKER;
	}
	if (memchr(o->topic, '\0', o->topic_len) ||
	    (o->type_name && memchr(o->type_name, '\0', o->type_len))) {
		snprintf(err, errlen, "OPEN request with a NUL inside a name");
		return SHMBUS_ENAME;
	}
	return 0;
}

static uint64_t get_u64(struct cur *c)
{
	uint64_t lo = get_u32(c), hi = get_u32(c);
	return lo | hi << 32;
}

static void put_u64(struct proto_buf *b, uint64_t v)
{
	proto_put_u32(b, (uint32_t)v);
	proto_put_u32(b, (uint32_t)(v >> 32));
}

/* A length-prefixed string of 0..cap-1 bytes without NUL, copied with one. */
static bool get_str(struct cur *c, char *out, size_t cap, bool empty_ok)
{
	uint32_t n = get_u32(c);
	if (c->bad || n >= cap || (n == 0 && !empty_ok))
		return false;
	const void *p = get_bytes(c, n);
	if (!p || memchr(p, '\0', n))
		return false;
	memcpy(out, p, n);
	out[n] = '\0';
	return true;
}

void proto_encode_layout(struct proto_buf *b, const struct seg_layout *l)
{
	proto_put_u32(b, l->topic_id);
	proto_put_u32(b, l->flags);
	proto_put_u32(b, l->slot_count);
	proto_put_u32(b, l->slot_size);
	proto_put_u32(b, l->max_message_size);
	proto_put_u32(b, l->history);
	proto_put_u32(b, l->board_line);
	proto_put_u32(b, l->generation);
	put_u64(b, l->base_seq);
	put_u64(b, l->meta_size);
	put_u64(b, l->data_size);
	put_u64(b, l->schema_size);
	put(b, l->incarnation, sizeof(l->incarnation));
	proto_put_str(b, l->name);
	proto_put_str(b, l->type_name);
}

static bool get_layout(struct cur *c, struct seg_layout *l)
{
	memset(l, 0, sizeof(*l));
	l->topic_id = get_u32(c);
	l->flags = get_u32(c);
	l->slot_count = get_u32(c);
	l->slot_size = get_u32(c);
	l->max_message_size = get_u32(c);
	l->history = get_u32(c);
	l->board_line = get_u32(c);
	l->generation = get_u32(c);
	l->base_seq = get_u64(c);
	l->meta_size = get_u64(c);
	l->data_size = get_u64(c);
	l->schema_size = get_u64(c);
	const void *inc = get_bytes(c, sizeof(l->incarnation));
	if (!inc)
		return false;
	memcpy(l->incarnation, inc, sizeof(l->incarnation));
	if (!get_str(c, l->name, sizeof(l->name), false) ||
	    !get_str(c, l->type_name, sizeof(l->type_name), true))
		return false;
	/* Sizes a client will map: bounded here, checked against the objects
	 * when mapped. */
	return !c->bad && l->slot_count >= 2 && l->slot_count <= SEG_MAX_SLOTS &&
	       (l->slot_count & (l->slot_count - 1)) == 0 && l->max_message_size > 0 &&
	       l->max_message_size <= SEG_MAX_MESSAGE &&
	       l->slot_size == seg_slot_size(l->max_message_size) &&
	       l->history < l->slot_count && l->board_line < BUS_MAX_TOPICS &&
	       l->schema_size <= SEG_MAX_SCHEMA && l->meta_size == seg_meta_size(l->schema_size) &&
	       l->data_size == DATA_SLOTS_OFFSET + (uint64_t)l->slot_count * l->slot_size;
}

void proto_encode_opened(struct proto_buf *b, const struct proto_opened *o)
{
	proto_put_u32(b, o->index);
	proto_put_u32(b, o->publisher_id);
	proto_put_u32(b, o->page);
	proto_put_u32(b, o->line);
	proto_put_u32(b, o->new_page);
	put_u64(b, o->head);
	proto_encode_layout(b, &o->layout);
}

int proto_decode_opened(const uint8_t *body, size_t len, struct proto_opened *o)
{
	struct cur c = { body, len, false };
	o->index = get_u32(&c);
	o->publisher_id = get_u32(&c);
	o->page = get_u32(&c);
	o->line = get_u32(&c);
	o->new_page = get_u32(&c);
	o->head = get_u64(&c);
	if (c.bad || !get_layout(&c, &o->layout) || c.left || o->line >= PAGE_LINES ||
	    o->new_page > 1)
		return SHMBUS_EBROKER;
	return 0;
}

void proto_encode_hello(struct proto_buf *b, uint32_t pid, const uint8_t *nonce)
{
	proto_put_u32(b, pid);
	put(b, nonce, PROTO_NONCE_BYTES);
}

int proto_decode_hello(const uint8_t *body, size_t len, uint32_t *pid, uint8_t *nonce)
{
	struct cur c = { body, len, false };
	*pid = get_u32(&c);
	const void *n = get_bytes(&c, PROTO_NONCE_BYTES);
	if (!n || c.left)
		return SHMBUS_EBROKER;
	memcpy(nonce, n, PROTO_NONCE_BYTES);
	return 0;
}

void proto_encode_name(struct proto_buf *b, const char *name)
{
	proto_put_str(b, name);
}

int proto_decode_name(const uint8_t *body, size_t len, char name[SEG_TOPIC_MAX], char *err,
		      size_t errlen)
{
	struct cur c = { body, len, false };
	if (!get_str(&c, name, SEG_TOPIC_MAX, false) || c.left) {
		snprintf(err, errlen, "malformed topic name in a request of %zu bytes", len);
		return SHMBUS_EBROKER;
	}
	return 0;
}

void proto_encode_info(struct proto_buf *b, const struct proto_info *in)
{
	proto_encode_layout(b, &in->layout);
	put_u64(b, in->next_seq);
	put_u64(b, in->broker_bytes);
	proto_put_u32(b, in->schema_versions);
	proto_put_u32(b, in->grown);
	proto_put_u32(b, in->n_pubs);
	proto_put_u32(b, in->n_subs);
}

void proto_encode_client(struct proto_buf *b, const struct proto_client *cl)
{
	proto_put_u32(b, (uint32_t)cl->pid);
	proto_put_u32(b, cl->id);
	put_u64(b, cl->count);
	put_u64(b, cl->lost);
	put_u64(b, cl->next_seq);
	put_u64(b, cl->rejected);
	proto_put_u32(b, cl->waiting);
}

int proto_decode_info(const uint8_t *body, size_t len, struct proto_info *in,
		      void (*fn)(void *ctx, bool pub, const struct proto_client *c), void *ctx)
{
	struct cur c = { body, len, false };
	if (!get_layout(&c, &in->layout))
		return SHMBUS_EBROKER;
	in->next_seq = get_u64(&c);
	in->broker_bytes = get_u64(&c);
	in->schema_versions = get_u32(&c);
	in->grown = get_u32(&c);
	in->n_pubs = get_u32(&c);
	in->n_subs = get_u32(&c);
	if (c.bad || in->n_pubs > SEG_MAX_PUBS || in->n_subs > SEG_MAX_SUBS)
		return SHMBUS_EBROKER;
	for (uint32_t i = 0; i < in->n_pubs + in->n_subs; i++) {
		struct proto_client cl;
		cl.pid = (int32_t)get_u32(&c);
		cl.id = get_u32(&c);
		cl.count = get_u64(&c);
		cl.lost = get_u64(&c);
		cl.next_seq = get_u64(&c);
		cl.rejected = get_u64(&c);
		cl.waiting = get_u32(&c);
		if (c.bad)
			return SHMBUS_EBROKER;
		fn(ctx, i < in->n_pubs, &cl);
	}
	return c.left ? SHMBUS_EBROKER : 0;
}

void proto_encode_close(struct proto_buf *b, const struct proto_close *cl)
{
	proto_put_u32(b, cl->topic_id);
	proto_put_u32(b, cl->role);
	proto_put_u32(b, cl->index);
}

int proto_decode_close(const uint8_t *body, size_t len, struct proto_close *cl)
{
	struct cur c = { body, len, false };
	cl->topic_id = get_u32(&c);
	cl->role = get_u32(&c);
	cl->index = get_u32(&c);
	return c.bad || c.left ? SHMBUS_EBROKER : 0;
}

void proto_encode_grow(struct proto_buf *b, const struct proto_grow *g)
{
	proto_put_u32(b, g->topic_id);
	proto_put_u32(b, g->index);
	proto_put_u32(b, g->size);
}

int proto_decode_grow(const uint8_t *body, size_t len, struct proto_grow *g)
{
	struct cur c = { body, len, false };
	g->topic_id = get_u32(&c);
	g->index = get_u32(&c);
	g->size = get_u32(&c);
	return c.bad || c.left ? SHMBUS_EBROKER : 0;
}

void proto_encode_entry(struct proto_buf *b, uint32_t topic_id, const char *name,
			const char *type_name)
{
	proto_put_u32(b, topic_id);
	proto_put_str(b, name);
	proto_put_str(b, type_name);
}


int proto_decode_entries(const uint8_t *body, size_t len,
			 int (*fn)(void *ctx, const struct proto_entry *e), void *ctx)
{
	struct cur c = { body, len, false };
	struct proto_entry e;
	while (c.left) {
		e.topic_id = get_u32(&c);
		if (!get_str(&c, e.name, sizeof(e.name), false) ||
		    !get_str(&c, e.type_name, sizeof(e.type_name), true))
			return SHMBUS_EBROKER;
		int rc = fn(ctx, &e);
		if (rc)
			return rc;
	}
	return 0;
}
