/*
 * size_bound.c - an upper bound of the bytes a message packs into, for a
 * fraction of what protobuf-c's exact sizing costs.
 *
 * Publishing must know, before the loan claims a sequence number, that a
 * message fits the slot: a refused message may cost no number. The exact
 * size is a full walk of the message (for an Imu about as long as packing
 * it). Most of a type's fields cannot vary in size beyond a known most
 * (scalars): per type, once, a plan adds those up and lists the few fields
 * that must be looked at (strings, bytes, repeated fields, oneofs and
 * sub-messages: a sub-message of a bounded type still packs the unknown
 * fields it kept from an unpack, so each is bounded on its own). A message
 * whose bound fits the slot is packed straight in; only one whose bound
 * does not is sized exactly (publish.c).
 *
 * Plans live for the life of the process, in a table any thread may fill
 * (plans.c).
 */
#include "internal.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The most a length prefix takes. */
#define PREFIX_MAX 10

/* A type that finds the table full is sized exactly, as before plans. */
struct plan {
	struct plan_head head;
	size_t fixed; /* the most the fields not in dyn pack into together */
	unsigned n_dyn;
	const ProtobufCFieldDescriptor *dyn[]; /* fields measured per message */
};

static struct plan_table plans;

static size_t varint_size(uint64_t v)
{
	size_t n = 1;

	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

static size_t key_size(uint32_t id)
{
	return varint_size((uint64_t)id << 3);
}

/* The most a scalar value packs into; 0 for strings, bytes, messages. */
static size_t scalar_max(ProtobufCType type)
{
	switch (type) {
	case PROTOBUF_C_TYPE_INT32: /* a negative int32 is ten bytes */
	case PROTOBUF_C_TYPE_ENUM:
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_SINT64:
		return 10;
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_UINT32:
		return 5;
	case PROTOBUF_C_TYPE_FIXED32:
	case PROTOBUF_C_TYPE_SFIXED32:
	case PROTOBUF_C_TYPE_FLOAT:
		return 4;
	case PROTOBUF_C_TYPE_FIXED64:
	case PROTOBUF_C_TYPE_SFIXED64:
	case PROTOBUF_C_TYPE_DOUBLE:
		return 8;
	case PROTOBUF_C_TYPE_BOOL:
		return 1;
	default:
		return 0;
	}
}

/* Whether field f goes into its plan's fixed part: a scalar that is
 * neither repeated nor in a oneof; *most is what it packs into at most. */
static bool fixed_part(const ProtobufCFieldDescriptor *f, size_t *most)
{
	if (f->label == PROTOBUF_C_LABEL_REPEATED || (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) ||
	    scalar_max(f->type) == 0)
		return false;
	*most = key_size(f->id) + scalar_max(f->type);
	return true;
}

static struct plan *plan_get(const ProtobufCMessageDescriptor *desc)
{
	struct plan *p = (struct plan *)(void *)plan_table_find(&plans, desc);

	if (p)
		return p;
	p = malloc(sizeof(*p) + desc->n_fields * sizeof(p->dyn[0]));
	if (!p)
		return NULL;
	p->head.desc = desc;
	p->fixed = 0;
	p->n_dyn = 0;
	for (unsigned i = 0; i < desc->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &desc->fields[i];
		size_t most;

		if (fixed_part(f, &most))
			p->fixed += most;
		else
			p->dyn[p->n_dyn++] = f;
	}
	return (struct plan *)(void *)plan_table_insert(&plans, &p->head);
}

/* a + b, or SIZE_MAX past it. */
static size_t sat_add(size_t a, size_t b)
{
	return a > SIZE_MAX - b ? SIZE_MAX : a + b;
}

static size_t sat_mul(size_t a, size_t b)
{
	return b && a > SIZE_MAX / b ? SIZE_MAX : a * b;
}

static size_t bound_of(const ProtobufCMessage *msg);

/* The most one value of field f at p packs into, its key included. */
static size_t value_bound(const ProtobufCFieldDescriptor *f, const void *p)
{
	size_t key = key_size(f->id);

	switch (f->type) {
	case PROTOBUF_C_TYPE_STRING: {
		const char *s = *(char *const *)p;

		return s ? sat_add(key + PREFIX_MAX, strlen(s)) : 0;
	}
	case PROTOBUF_C_TYPE_BYTES:
		return sat_add(key + PREFIX_MAX, ((const ProtobufCBinaryData *)p)->len);
	case PROTOBUF_C_TYPE_MESSAGE: {
		const ProtobufCMessage *m = *(const ProtobufCMessage *const *)p;

		return m ? sat_add(key + PREFIX_MAX, bound_of(m)) : 0;
	}
	default:
		return key + scalar_max(f->type);
	}
}

/* The most field f of msg packs into. */
static size_t field_bound(const ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f)
{
	const char *base = (const char *)msg;
	const void *member = base + f->offset;
	size_t n, total = 0;
	const char *arr;
	size_t elt;

	if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
		if (*(const uint32_t *)(const void *)(base + f->quantifier_offset) != f->id)
			return 0;
		return value_bound(f, member);
	}
	if (f->label != PROTOBUF_C_LABEL_REPEATED)
		return value_bound(f, member);
	n = *(const size_t *)(const void *)(base + f->quantifier_offset);
	if (n == 0)
		return 0;
	if (scalar_max(f->type) != 0)
		/* Packed (one key and prefix) or not (a key each): the more. */
		return sat_add(sat_mul(n, key_size(f->id) + scalar_max(f->type)),
			       key_size(f->id) + PREFIX_MAX);
	arr = *(const char *const *)member;
	elt = f->type == PROTOBUF_C_TYPE_STRING  ? sizeof(char *)
	      : f->type == PROTOBUF_C_TYPE_BYTES ? sizeof(ProtobufCBinaryData)
						 : sizeof(ProtobufCMessage *);
	for (size_t i = 0; i < n; i++)
		total = sat_add(total, value_bound(f, arr + i * elt));
	return total;
}

static size_t bound_of(const ProtobufCMessage *msg)
{
	/* The first message of its type makes the plan (once). */
	struct plan *p = plan_get(msg->descriptor);
	size_t total;

	if (!p)
		return SIZE_MAX;
	total = p->fixed;
	for (unsigned i = 0; i < p->n_dyn; i++)
		total = sat_add(total, field_bound(msg, p->dyn[i]));
	/* protobuf-c packs the unknown fields it kept from an unpack. */
	for (size_t i = 0; i < msg->n_unknown_fields; i++)
		total = sat_add(total, sat_add(5 + PREFIX_MAX, msg->unknown_fields[i].len));
	return total;
}

size_t typed_size_bound(const ProtobufCMessage *msg)
{
	return bound_of(msg);
}
