/*
 * pack.c - packing a message into the bytes protobuf_c_message_pack()
 * writes, by a plan of its type.
 *
 * protobuf-c decides each field's way from its descriptor every time:
 * label, oneof, presence, wire type, the key's varint. For an Imu that
 * was 111 ns of a typed publish (typed_imu_pack_cpu, BENCHMARKS.md). A
 * plan, made once per type, keeps per field the way it is packed and its
 * key already encoded, so that packing is a loop of stores. The bytes are
 * protobuf-c's own, in the same order (test_typed_constructs and
 * fuzz_typed_wire compare them): fields in descriptor order, proto3
 * fields left out at their zero value, proto2 optional ones by their has_
 * flag (a string or message by its pointer, absent also when it is the
 * default), oneofs by their case, repeated scalars packed where the field
 * says so, then the unknown fields kept from an unpack. A sub-message or a
 * packed field is written behind a one-byte length and moved up in the
 * rare case its length needs more. Written here because protobuf-c has no
 * cheaper way to pack.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

enum pack_way {
	WAY_ALWAYS,   /* proto2 required */
	WAY_ONEOF,    /* when the oneof's case names it */
	WAY_HAS,      /* proto2 optional scalar or bytes: its has_ flag */
	WAY_POINTER,  /* proto2 optional string or message: set, not default */
	WAY_NONZERO,  /* proto3: not at its zero value */
	WAY_EACH,     /* repeated, a key per value */
	WAY_PACKED,   /* repeated scalar, one key and length for all */
};

/* The fields a sensor message is made of, each packed by one case of
 * one switch: proto3 scalars, strings and messages, packed fixed-width
 * arrays. Every other field goes the general way (by its pack_way, then
 * its type). */
enum pack_op {
	OP_GENERAL,
	OP_DOUBLE,  /* proto3 double, left out at 0 (and -0.0) */
	OP_FLOAT,   /* proto3 float, the same */
	OP_BITS64,  /* proto3 fixed64, sfixed64: left out when all bits are 0 */
	OP_BITS32,  /* proto3 fixed32, sfixed32 */
	OP_VARINT64, /* proto3 int64, uint64 */
	OP_UINT32,  /* proto3 uint32 */
	OP_INT32,   /* proto3 int32, enum: a negative one sign-extended */
	OP_BOOL,    /* proto3 bool */
	OP_STRING,  /* proto3 string, left out when NULL or empty */
	OP_MESSAGE, /* proto3 message, left out when NULL */
	OP_PACKED8, /* packed double, fixed64, sfixed64 */
	OP_PACKED4, /* packed float, fixed32, sfixed32 */
};

struct pack_plan;

struct pack_field {
	const ProtobufCFieldDescriptor *f;
	/* A message field's plan, looked up by the first message packed. */
	_Atomic(const struct pack_plan *) sub;
	uint8_t op;
	uint8_t way;
	uint8_t key_len;
	uint8_t key[6]; /* the key's varint: (id << 3) | wire type */
};

struct pack_plan {
	struct plan_head head;
	unsigned n;
	struct pack_field field[];
};

static struct plan_table plans;

static bool is_pointer(ProtobufCType t)
{
	return t == PROTOBUF_C_TYPE_STRING || t == PROTOBUF_C_TYPE_MESSAGE;
}

static unsigned wire_type(ProtobufCType t)
{
	switch (t) {
	case PROTOBUF_C_TYPE_FIXED32:
	case PROTOBUF_C_TYPE_SFIXED32:
	case PROTOBUF_C_TYPE_FLOAT:
		return PROTOBUF_C_WIRE_TYPE_32BIT;
	case PROTOBUF_C_TYPE_FIXED64:
	case PROTOBUF_C_TYPE_SFIXED64:
	case PROTOBUF_C_TYPE_DOUBLE:
		return PROTOBUF_C_WIRE_TYPE_64BIT;
	case PROTOBUF_C_TYPE_STRING:
	case PROTOBUF_C_TYPE_BYTES:
	case PROTOBUF_C_TYPE_MESSAGE:
		return PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED;
	default:
		return PROTOBUF_C_WIRE_TYPE_VARINT;
	}
}

static enum pack_way way_of(const ProtobufCFieldDescriptor *f)
{
	if (f->label == PROTOBUF_C_LABEL_REQUIRED)
		return WAY_ALWAYS;
	if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
		return WAY_ONEOF;
	if (f->label == PROTOBUF_C_LABEL_OPTIONAL)
		return is_pointer(f->type) ? WAY_POINTER : WAY_HAS;
	if (f->label == PROTOBUF_C_LABEL_NONE)
		return WAY_NONZERO;
	return (f->flags & PROTOBUF_C_FIELD_FLAG_PACKED) ? WAY_PACKED : WAY_EACH;
}

static enum pack_op op_of(const ProtobufCFieldDescriptor *f, enum pack_way way)
{
	if (way == WAY_PACKED) {
		switch (f->type) {
		case PROTOBUF_C_TYPE_DOUBLE:
		case PROTOBUF_C_TYPE_FIXED64:
		case PROTOBUF_C_TYPE_SFIXED64:
			return OP_PACKED8;
		case PROTOBUF_C_TYPE_FLOAT:
		case PROTOBUF_C_TYPE_FIXED32:
		case PROTOBUF_C_TYPE_SFIXED32:
			return OP_PACKED4;
		default:
			return OP_GENERAL;
		}
	}
	if (way != WAY_NONZERO)
		return OP_GENERAL;
	switch (f->type) {
	case PROTOBUF_C_TYPE_DOUBLE:
		return OP_DOUBLE;
	case PROTOBUF_C_TYPE_FLOAT:
		return OP_FLOAT;
	case PROTOBUF_C_TYPE_FIXED64:
	case PROTOBUF_C_TYPE_SFIXED64:
		return OP_BITS64;
	case PROTOBUF_C_TYPE_FIXED32:
	case PROTOBUF_C_TYPE_SFIXED32:
		return OP_BITS32;
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_UINT64:
		return OP_VARINT64;
	case PROTOBUF_C_TYPE_UINT32:
		return OP_UINT32;
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_ENUM:
		return OP_INT32;
	case PROTOBUF_C_TYPE_BOOL:
		return OP_BOOL;
	case PROTOBUF_C_TYPE_STRING:
		return OP_STRING;
	case PROTOBUF_C_TYPE_MESSAGE:
		return OP_MESSAGE;
	default:
		return OP_GENERAL;
	}
}

static const struct pack_plan *plan_get(const ProtobufCMessageDescriptor *desc)
{
	struct pack_plan *p = (struct pack_plan *)(void *)plan_table_find(&plans, desc);

	if (p)
		return p;
	p = malloc(sizeof(*p) + desc->n_fields * sizeof(p->field[0]));
	if (!p)
		return NULL;
	p->head.desc = desc;
	p->n = desc->n_fields;
	for (unsigned i = 0; i < desc->n_fields; i++) {
		struct pack_field *pf = &p->field[i];
		unsigned wt;

		pf->f = &desc->fields[i];
		pf->way = (uint8_t)way_of(pf->f);
		pf->op = (uint8_t)op_of(pf->f, (enum pack_way)pf->way);
		atomic_init(&pf->sub, NULL);
		wt = pf->way == WAY_PACKED ? PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED
					   : wire_type(pf->f->type);
		pf->key_len = (uint8_t)wire_put_varint(pf->key, ((uint64_t)pf->f->id << 3) | wt);
	}
	return (const struct pack_plan *)(void *)plan_table_insert(&plans, &p->head);
}

/* What protobuf-c leaves out of a proto3 field: its zero value. Only the
 * types op_of() gives no case of come here: sint32, sint64, bytes. */
static bool is_zero(ProtobufCType t, const void *p)
{
	switch (t) {
	case PROTOBUF_C_TYPE_SINT64:
		return *(const uint64_t *)p == 0;
	case PROTOBUF_C_TYPE_BYTES:
		return ((const ProtobufCBinaryData *)p)->len == 0;
	default:
		return *(const uint32_t *)p == 0;
	}
}

static size_t pack_by(const struct pack_plan *plan, const ProtobufCMessage *m, uint8_t *out);

/* Writes the `len` bytes at out + 1 behind their varint length at out,
 * moving them up if the length takes more than a byte. */
static size_t prefix(uint8_t *out, size_t len)
{
	uint8_t tmp[10];
	size_t k;

	if (len < 0x80) {
		out[0] = (uint8_t)len;
		return 1 + len;
	}
	k = wire_put_varint(tmp, len);
	memmove(out + k, out + 1, len);
	memcpy(out, tmp, k);
	return k + len;
}

/* The plan of message field pf's type: kept in the field once found
 * (threads that find it empty look it up and store the same plan). */
static const struct pack_plan *sub_plan(const struct pack_field *pf)
{
	struct pack_field *w = (struct pack_field *)pf;
	const struct pack_plan *p = atomic_load_explicit(&w->sub, memory_order_acquire);

	if (!p && (p = plan_get(pf->f->descriptor)))
		atomic_store_explicit(&w->sub, p, memory_order_release);
	return p;
}

/* Sub-message m of field pf behind its length (NULL: length 0). */
static size_t put_message(const struct pack_field *pf, const ProtobufCMessage *m, uint8_t *out)
{
	if (!m) {
		out[0] = 0;
		return 1;
	}
	return prefix(out, pack_by(sub_plan(pf), m, out + 1));
}

/* A field's key; most are one byte (fields 1 to 15). */
static inline size_t put_key(const struct pack_field *pf, uint8_t *out)
{
	if (pf->key_len == 1)
		out[0] = pf->key[0];
	else
		memcpy(out, pf->key, pf->key_len);
	return pf->key_len;
}

/* A string behind its length (NULL: empty). */
static size_t put_string(const char *s, uint8_t *out)
{
	size_t len = s ? strlen(s) : 0, k = wire_put_varint(out, len);

	if (len)
		memcpy(out + k, s, len);
	return k + len;
}

/* One value of field pf at p, without its key. */
static size_t put_value(const struct pack_field *pf, const void *p, uint8_t *out)
{
	switch (pf->f->type) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_ENUM: /* negative: sign-extended, ten bytes */
		return wire_put_varint(out, (uint64_t)(int64_t) * (const int32_t *)p);
	case PROTOBUF_C_TYPE_SINT32: {
		uint32_t v = *(const uint32_t *)p;

		return wire_put_varint(out, (v << 1) ^ (0u - (v >> 31)));
	}
	case PROTOBUF_C_TYPE_UINT32:
		return wire_put_varint(out, *(const uint32_t *)p);
	case PROTOBUF_C_TYPE_SINT64: {
		uint64_t v = *(const uint64_t *)p;

		return wire_put_varint(out, (v << 1) ^ (0ull - (v >> 63)));
	}
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_UINT64:
		return wire_put_varint(out, *(const uint64_t *)p);
	case PROTOBUF_C_TYPE_FIXED32:
	case PROTOBUF_C_TYPE_SFIXED32:
	case PROTOBUF_C_TYPE_FLOAT:
		memcpy(out, p, 4); /* little-endian hosts only, as the bus */
		return 4;
	case PROTOBUF_C_TYPE_FIXED64:
	case PROTOBUF_C_TYPE_SFIXED64:
	case PROTOBUF_C_TYPE_DOUBLE:
		memcpy(out, p, 8);
		return 8;
	case PROTOBUF_C_TYPE_BOOL:
		out[0] = *(const protobuf_c_boolean *)p ? 1 : 0;
		return 1;
	case PROTOBUF_C_TYPE_STRING:
		return put_string(*(const char *const *)p, out);
	case PROTOBUF_C_TYPE_BYTES: {
		const ProtobufCBinaryData *b = p;
		size_t k = wire_put_varint(out, b->len);

		if (b->len)
			memcpy(out + k, b->data, b->len);
		return k + b->len;
	}
	case PROTOBUF_C_TYPE_MESSAGE:
		return put_message(pf, *(const ProtobufCMessage *const *)p, out);
	}
	return 0;
}

/* A repeated field of `count` values at array. */
static size_t put_repeated(const struct pack_field *pf, const char *array, size_t count,
			   uint8_t *out)
{
	size_t elt = typed_element_size(pf->f->type), n = 0;

	if (pf->way == WAY_PACKED) {
		size_t body = 0;

		n = put_key(pf, out);
		if (pf->op == OP_PACKED8 || pf->op == OP_PACKED4) {
			body = count * elt;
			memcpy(out + n + 1, array, body);
		} else {
			for (size_t i = 0; i < count; i++)
				body += put_value(pf, array + i * elt, out + n + 1 + body);
		}
		return n + prefix(out + n, body);
	}
	for (size_t i = 0; i < count; i++) {
		n += put_key(pf, out + n);
		n += put_value(pf, array + i * elt, out + n);
	}
	return n;
}

/* A field the fast cases of pack_by() do not take: whether to pack it
 * (by its way), then its value by its type. */
static size_t put_general(const struct pack_field *pf, const char *base, uint8_t *out)
{
	const ProtobufCFieldDescriptor *f = pf->f;
	const void *member = base + f->offset;
	const void *q = base + f->quantifier_offset;

	switch ((enum pack_way)pf->way) {
	case WAY_ALWAYS:
		break;
	case WAY_ONEOF:
		if (*(const uint32_t *)q != f->id)
			return 0;
		if (is_pointer(f->type) && (*(const void *const *)member == NULL ||
					    *(const void *const *)member == f->default_value))
			return 0;
		break;
	case WAY_HAS:
		if (!*(const protobuf_c_boolean *)q)
			return 0;
		break;
	case WAY_POINTER:
		if (*(const void *const *)member == NULL ||
		    *(const void *const *)member == f->default_value)
			return 0;
		break;
	case WAY_NONZERO:
		if (is_zero(f->type, member))
			return 0;
		break;
	case WAY_EACH:
	case WAY_PACKED: {
		size_t count = *(const size_t *)q;

		return count ? put_repeated(pf, *(const char *const *)member, count, out) : 0;
	}
	}
	size_t n = put_key(pf, out);
	return n + put_value(pf, member, out + n);
}

static size_t pack_by(const struct pack_plan *plan, const ProtobufCMessage *m, uint8_t *out)
{
	const char *base = (const char *)m;
	size_t n = 0;

	if (!plan) /* the plan table is full */
		return protobuf_c_message_pack(m, out);
	for (unsigned i = 0; i < plan->n; i++) {
		const struct pack_field *pf = &plan->field[i];
		const void *member = base + pf->f->offset;

		switch ((enum pack_op)pf->op) {
		case OP_DOUBLE: {
			double d;

			memcpy(&d, member, 8);
			if (d == 0)
				continue;
			n += put_key(pf, out + n);
			memcpy(out + n, member, 8);
			n += 8;
			continue;
		}
		case OP_FLOAT: {
			float x;

			memcpy(&x, member, 4);
			if (x == 0)
				continue;
			n += put_key(pf, out + n);
			memcpy(out + n, member, 4);
			n += 4;
			continue;
		}
		case OP_BITS64:
			if (*(const uint64_t *)member == 0)
				continue;
			n += put_key(pf, out + n);
			memcpy(out + n, member, 8);
			n += 8;
			continue;
		case OP_BITS32:
			if (*(const uint32_t *)member == 0)
				continue;
			n += put_key(pf, out + n);
			memcpy(out + n, member, 4);
			n += 4;
			continue;
		case OP_VARINT64:
			if (*(const uint64_t *)member == 0)
				continue;
			n += put_key(pf, out + n);
			n += wire_put_varint(out + n, *(const uint64_t *)member);
			continue;
		case OP_UINT32:
			if (*(const uint32_t *)member == 0)
				continue;
			n += put_key(pf, out + n);
			n += wire_put_varint(out + n, *(const uint32_t *)member);
			continue;
		case OP_INT32:
			if (*(const int32_t *)member == 0)
				continue;
			n += put_key(pf, out + n);
			n += wire_put_varint(out + n, (uint64_t)(int64_t) * (const int32_t *)member);
			continue;
		case OP_BOOL:
			if (*(const protobuf_c_boolean *)member == 0)
				continue;
			n += put_key(pf, out + n);
			out[n++] = 1;
			continue;
		case OP_STRING: {
			const char *s = *(const char *const *)member;

			if (!s || !*s)
				continue;
			n += put_key(pf, out + n);
			n += put_string(s, out + n);
			continue;
		}
		case OP_MESSAGE: {
			const ProtobufCMessage *sub = *(const ProtobufCMessage *const *)member;

			if (!sub)
				continue;
			n += put_key(pf, out + n);
			n += put_message(pf, sub, out + n);
			continue;
		}
		case OP_PACKED8:
		case OP_PACKED4:
		case OP_GENERAL:
			n += put_general(pf, base, out + n);
			continue;
		}
	}
	for (size_t i = 0; i < m->n_unknown_fields; i++) {
		const ProtobufCMessageUnknownField *u = &m->unknown_fields[i];

		n += wire_put_varint(out + n, ((uint64_t)u->tag << 3) | u->wire_type);
		if (u->len)
			memcpy(out + n, u->data, u->len);
		n += u->len;
	}
	return n;
}

size_t typed_pack(const ProtobufCMessage *msg, uint8_t *out)
{
	return pack_by(plan_get(msg->descriptor), msg, out);
}
