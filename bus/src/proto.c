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
	if (o->role < ROLE_PUB || o->role > ROLE_INSPECT) {
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

void proto_encode_opened(struct proto_buf *b, const struct proto_opened *o)
{
	proto_put_u32(b, o->topic_id);
	proto_put_u32(b, o->index);
	proto_put_u32(b, o->publisher_id);
}

int proto_decode_opened(const uint8_t *body, size_t len, struct proto_opened *o)
{
	struct cur c = { body, len, false };
	o->topic_id = get_u32(&c);
	o->index = get_u32(&c);
	o->publisher_id = get_u32(&c);
	return c.bad || c.left ? SHMBUS_EBROKER : 0;
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

void proto_encode_entry(struct proto_buf *b, uint32_t topic_id, const char *name,
			const char *type_name)
{
	proto_put_u32(b, topic_id);
	proto_put_str(b, name);
	proto_put_str(b, type_name);
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
