/*
 * decode.c - unpacking a message in one walk over its bytes, by a plan
 * made once per type from its protobuf-c descriptor, into the pieces an
 * allocator gives (arena.c's one block).
 *
 * protobuf_c_message_unpack() reads a message twice: it first records
 * every field it meets (an entry of 32 bytes each), then parses the
 * entries, finding each field number by a search of the descriptor's
 * ranges and choosing what to do by the field's label and type. For the
 * small messages sensors publish that is most of a typed take: an Imu
 * (340 bytes, 9 pieces) took 210 ns to unpack against 40 ns for a decoder
 * written for the Imu alone. A plan holds what such a decoder knows: for
 * every one-byte key (fields 1 to 15 with each wire type) what to do and
 * to which field, and how each field is kept (plain, with a has_ flag, in
 * a oneof, repeated). Then each field is read once, where it is met;
 * arrays are sized from the packed value itself, or for a repeated field
 * sent one element at a time by counting its keys in the rest of the
 * message when its first element is met.
 *
 * It gives exactly what protobuf-c gives, and only where that is simple.
 * A field the descriptor does not know (a newer schema's) is kept as
 * protobuf-c keeps it: an unknown field, its bytes packed again after the
 * known ones. On a singular sub-message given twice (merged), a second
 * member of a oneof (the first one freed), a repeated field given both
 * packed and not, a missing required field, a wire type protobuf-c reads
 * oddly or refuses, a varint or length protobuf-c refuses, more than 64
 * fields in a message, or nesting deeper than DEPTH_MAX, it answers
 * DECODE_FALLBACK: the caller then unpacks with protobuf-c itself, which
 * decides. tests/typed/fuzz_typed_wire.c holds it to that: what it
 * decodes packs back into the bytes protobuf-c's own unpack gives, and it
 * decodes nothing protobuf-c refuses. Written here because protobuf-c has
 * no faster unpack.
 */
#include "internal.h"

#include <limits.h>
#include <string.h>

/* Deeper than this, protobuf-c decides (it has no limit of its own). */
#define DEPTH_MAX 32
/* The fields of a message are remembered as seen in one 64-bit word. */
#define FIELDS_MAX 64

#define WIRE_VARINT PROTOBUF_C_WIRE_TYPE_VARINT
#define WIRE_64BIT PROTOBUF_C_WIRE_TYPE_64BIT
#define WIRE_LEN PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED
#define WIRE_32BIT PROTOBUF_C_WIRE_TYPE_32BIT

/* What to do with a value, from its field's type and its wire type. */
enum op {
	OP_NONE = 0, /* not read here: protobuf-c decides */
	OP_VARINT32, /* int32, uint32, enum: the low 32 bits */
	OP_SINT32,
	OP_VARINT64, /* int64, uint64 */
	OP_SINT64,
	OP_BOOL,
	OP_FIXED32, /* fixed32, sfixed32, float */
	OP_FIXED64, /* fixed64, sfixed64, double */
	OP_STRING,
	OP_BYTES,
	OP_MESSAGE,
	OP_PACKED, /* the length-delimited value of a repeated scalar */
};

/* How a field's value is kept in its message. */
enum kind {
	KIND_PLAIN,    /* no flag beside it (proto3, required, pointers) */
	KIND_HAS,      /* with a has_ flag */
	KIND_ONEOF,    /* in a oneof, whose case says which member is set */
	KIND_REPEATED, /* an array and its count */
};

struct dplan {
	struct plan_head head;
	bool usable;       /* false: every message of the type is protobuf-c's */
	uint64_t required; /* the required fields protobuf-c checks, by index */
	uint8_t kind[FIELDS_MAX];
	uint32_t offset[FIELDS_MAX];     /* of each field's member */
	uint32_t flag_offset[FIELDS_MAX]; /* of its has_ flag, oneof case or count */
	/* A repeated field's elements: their op as they are packed, and their
	 * size in its array. */
	uint8_t elem_op[FIELDS_MAX];
	uint8_t elem_size[FIELDS_MAX];
	/* By a one-byte key (fields 1 to 15, each wire type): the op (OP_NONE
	 * for keys not read here) and the field's index. */
	uint8_t key_op[128];
	uint8_t key_field[128];
	/* The plans of the sub-message fields' types, by field index, as
	 * they are first needed (each set once, to the table's plan). */
	_Atomic(struct dplan *) sub[FIELDS_MAX];
};

static struct plan_table plans;

/* What protobuf-c calls packable: every type but strings, bytes and
 * messages; such a repeated field is read packed when its wire type is
 * LENGTH_PREFIXED, whatever the schema says. */
static bool packable(ProtobufCType type)
{
	return type != PROTOBUF_C_TYPE_STRING && type != PROTOBUF_C_TYPE_BYTES &&
	       type != PROTOBUF_C_TYPE_MESSAGE;
}

/* The op of a value of type `type` (not packed) with this wire type. */
static enum op scalar_op(ProtobufCType type, unsigned wire)
{
	switch (type) {
	case PROTOBUF_C_TYPE_ENUM:
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_UINT32:
		return wire == WIRE_VARINT ? OP_VARINT32 : OP_NONE;
	case PROTOBUF_C_TYPE_SINT32:
		return wire == WIRE_VARINT ? OP_SINT32 : OP_NONE;
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_UINT64:
		return wire == WIRE_VARINT ? OP_VARINT64 : OP_NONE;
	case PROTOBUF_C_TYPE_SINT64:
		return wire == WIRE_VARINT ? OP_SINT64 : OP_NONE;
	case PROTOBUF_C_TYPE_BOOL:
		/* protobuf-c reads a bool of any wire type; only varints here. */
		return wire == WIRE_VARINT ? OP_BOOL : OP_NONE;
	case PROTOBUF_C_TYPE_FIXED32:
	case PROTOBUF_C_TYPE_SFIXED32:
	case PROTOBUF_C_TYPE_FLOAT:
		return wire == WIRE_32BIT ? OP_FIXED32 : OP_NONE;
	case PROTOBUF_C_TYPE_FIXED64:
	case PROTOBUF_C_TYPE_SFIXED64:
	case PROTOBUF_C_TYPE_DOUBLE:
		return wire == WIRE_64BIT ? OP_FIXED64 : OP_NONE;
	case PROTOBUF_C_TYPE_STRING:
		return wire == WIRE_LEN ? OP_STRING : OP_NONE;
	case PROTOBUF_C_TYPE_BYTES:
		return wire == WIRE_LEN ? OP_BYTES : OP_NONE;
	case PROTOBUF_C_TYPE_MESSAGE:
		return wire == WIRE_LEN ? OP_MESSAGE : OP_NONE;
	default:
		return OP_NONE;
	}
}

static enum op op_for(const ProtobufCFieldDescriptor *f, unsigned wire)
{
	if (f->label == PROTOBUF_C_LABEL_REPEATED && wire == WIRE_LEN &&
	    ((f->flags & PROTOBUF_C_FIELD_FLAG_PACKED) || packable(f->type)))
		return OP_PACKED;
	return scalar_op(f->type, wire);
}

static enum kind kind_of(const ProtobufCFieldDescriptor *f)
{
	if (f->label == PROTOBUF_C_LABEL_REPEATED)
		return KIND_REPEATED;
	if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
		return KIND_ONEOF;
	/* As protobuf-c: a has_ flag wherever the descriptor gives one,
	 * except for required fields, which it never flags. */
	if (f->label != PROTOBUF_C_LABEL_REQUIRED && f->quantifier_offset)
		return KIND_HAS;
	return KIND_PLAIN;
}

/* A type's fields sorted by number, as the field search needs (protobuf-c
 * generated code sorts them). */
static bool sorted(const ProtobufCMessageDescriptor *desc)
{
	for (unsigned i = 1; i < desc->n_fields; i++)
		if (desc->fields[i - 1].id >= desc->fields[i].id)
			return false;
	return true;
}

static struct dplan *plan_get(const ProtobufCMessageDescriptor *desc)
{
	struct dplan *p = (struct dplan *)(void *)plan_table_find(&plans, desc);

	if (p)
		return p;
	if (!(p = calloc(1, sizeof(*p))))
		return NULL;
	p->head.desc = desc;
	p->usable = desc->n_fields <= FIELDS_MAX && desc->message_init && sorted(desc);
	for (unsigned i = 0; p->usable && i < desc->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &desc->fields[i];

		p->kind[i] = (uint8_t)kind_of(f);
		p->offset[i] = f->offset;
		p->flag_offset[i] = f->quantifier_offset;
		p->elem_op[i] = (uint8_t)(scalar_op(f->type, WIRE_VARINT) != OP_NONE
						  ? scalar_op(f->type, WIRE_VARINT)
					  : scalar_op(f->type, WIRE_64BIT) != OP_NONE
						  ? scalar_op(f->type, WIRE_64BIT)
						  : scalar_op(f->type, WIRE_32BIT));
		p->elem_size[i] = (uint8_t)typed_element_size(f->type);
		if (f->label == PROTOBUF_C_LABEL_REQUIRED && !f->default_value)
			p->required |= UINT64_C(1) << i;
		for (unsigned wire = 0; f->id < 16 && wire < 8; wire++) {
			unsigned key = f->id << 3 | wire;

			p->key_op[key] = (uint8_t)op_for(f, wire);
			p->key_field[key] = (uint8_t)i;
		}
	}
	return (struct dplan *)(void *)plan_table_insert(&plans, &p->head);
}

/* The plan of sub-message field i's type. */
static struct dplan *sub_plan(struct dplan *plan, unsigned i,
			      const ProtobufCFieldDescriptor *field)
{
	/* Acquire/release: the plan's fields are seen as they were made. */
	struct dplan *p = atomic_load_explicit(&plan->sub[i], memory_order_acquire);

	if (!p && (p = plan_get(field->descriptor)))
		atomic_store_explicit(&plan->sub[i], p, memory_order_release);
	return p;
}

/* The descriptor's field with this number (sorted fields), or NULL. */
static const ProtobufCFieldDescriptor *field_find(const ProtobufCMessageDescriptor *desc,
						  uint32_t number)
{
	unsigned lo = 0, hi = desc->n_fields;

	while (lo < hi) {
		unsigned mid = lo + (hi - lo) / 2;

		if (desc->fields[mid].id < number)
			lo = mid + 1;
		else if (desc->fields[mid].id > number)
			hi = mid;
		else
			return &desc->fields[mid];
	}
	return NULL;
}

/* A varint of at most `max` bytes at p, before end: its length, or 0. */
static inline size_t varint_read(const uint8_t *p, const uint8_t *end, size_t max, uint64_t *v)
{
	size_t n = (size_t)(end - p) < max ? (size_t)(end - p) : max;
	uint64_t r = 0;

	if (n && p[0] < 0x80) { /* most lengths and many values */
		*v = p[0];
		return 1;
	}

	for (size_t i = 0; i < n; i++) {
		r |= (uint64_t)(p[i] & 0x7f) << (7 * i);
		if (!(p[i] & 0x80)) {
			*v = r;
			return i + 1;
		}
	}
	return 0;
}

/* A length-delimited value at *at: its bytes (*len of them at *data) as
 * protobuf-c takes them (a length of at most 5 bytes, at most INT_MAX,
 * inside the message); *at moves past it. */
static bool len_read(const uint8_t **at, const uint8_t *end, const uint8_t **data, size_t *len)
{
	uint64_t v;
	size_t n = varint_read(*at, end, 5, &v);

	if (!n || v > INT_MAX || v > (uint64_t)(end - *at) - n)
		return false;
	*data = *at + n;
	*len = (size_t)v;
	*at = *data + *len;
	return true;
}

/* The key at *at: field number and wire type (at most 5 bytes, not field
 * 0); *at moves past it. */
static bool key_read(const uint8_t **at, const uint8_t *end, uint32_t *number, unsigned *wire)
{
	uint64_t v;
	size_t n = varint_read(*at, end, 5, &v);

	if (!n || (v >> 3) == 0)
		return false;
	*number = (uint32_t)(v >> 3);
	*wire = (unsigned)(v & 7);
	*at += n;
	return true;
}

/* Moves *at past a value of this wire type. */
static bool value_skip(const uint8_t **at, const uint8_t *end, unsigned wire)
{
	const uint8_t *data;
	size_t len;
	uint64_t v;

	switch (wire) {
	case WIRE_VARINT:
		if (!(len = varint_read(*at, end, 10, &v)))
			return false;
		*at += len;
		return true;
	case WIRE_64BIT:
	case WIRE_32BIT:
		len = wire == WIRE_64BIT ? 8 : 4;
		if ((size_t)(end - *at) < len)
			return false;
		*at += len;
		return true;
	case WIRE_LEN:
		return len_read(at, end, &data, &len);
	default:
		return false;
	}
}

static void *piece(ProtobufCAllocator *allocator, size_t size)
{
	return allocator->alloc(allocator->allocator_data, size);
}

static int decode_message(struct dplan *plan, ProtobufCAllocator *allocator, const uint8_t *data,
			  size_t size, unsigned depth, ProtobufCMessage **out);

/* A varint scalar (op) of len bytes at p, whose value is v, into dst. */
static void varint_put(enum op op, const uint8_t *p, size_t len, uint64_t v, void *dst)
{
	switch (op) {
	case OP_VARINT32:
		*(uint32_t *)dst = (uint32_t)v;
		break;
	case OP_SINT32:
		*(int32_t *)dst = (int32_t)(((uint32_t)v >> 1) ^ -((uint32_t)v & 1));
		break;
	case OP_SINT64:
		*(int64_t *)dst = (int64_t)((v >> 1) ^ -(v & 1));
		break;
	case OP_BOOL: {
		/* As protobuf-c: true when any 7-bit group is not zero (a
		 * tenth byte's high bits count, though they fall past 64). */
		protobuf_c_boolean b = 0;

		for (size_t i = 0; i < len; i++)
			b |= (p[i] & 0x7f) != 0;
		*(protobuf_c_boolean *)dst = b;
		break;
	}
	default:
		*(uint64_t *)dst = v;
		break;
	}
}

/* The value of op at *at into dst; *at moves past it. false: fall back.
 * Inlined into the walk: a call per field is a good part of its cost. */
static inline __attribute__((always_inline)) bool value_get(enum op op, struct dplan *plan,
							     unsigned i, const uint8_t **at,
							     const uint8_t *end, void *dst,
							     ProtobufCAllocator *allocator,
							     unsigned depth)
{
	const uint8_t *data;
	size_t len;
	uint64_t v;

	switch (op) {
	case OP_FIXED32:
		if (end - *at < 4)
			return false;
		memcpy(dst, *at, 4);
		*at += 4;
		return true;
	case OP_FIXED64:
		if (end - *at < 8)
			return false;
		memcpy(dst, *at, 8);
		*at += 8;
		return true;
	case OP_STRING:
	case OP_BYTES:
	case OP_MESSAGE:
		break;
	default:
		if (!(len = varint_read(*at, end, 10, &v)))
			return false;
		varint_put(op, *at, len, v, dst);
		*at += len;
		return true;
	}
	if (!len_read(at, end, &data, &len))
		return false;
	if (op == OP_STRING) {
		char *s = piece(allocator, len + 1);

		if (!s)
			return false;
		memcpy(s, data, len);
		s[len] = '\0';
		*(char **)dst = s;
	} else if (op == OP_BYTES) {
		ProtobufCBinaryData *bd = dst;

		bd->data = NULL;
		if (len && !(bd->data = piece(allocator, len)))
			return false;
		if (len)
			memcpy(bd->data, data, len);
		bd->len = len;
	} else {
		struct dplan *sub = sub_plan(plan, i, &plan->head.desc->fields[i]);

		if (!sub || decode_message(sub, allocator, data, len, depth + 1,
					   (ProtobufCMessage **)dst) != SHMBUS_OK)
			return false;
	}
	return true;
}

/* A repeated field's count (the size_t protobuf-c keeps beside it), and
 * its array. */
static size_t *count_of(ProtobufCMessage *m, const struct dplan *plan, unsigned i)
{
	return (size_t *)(void *)((uint8_t *)m + plan->flag_offset[i]);
}

static uint8_t **array_of(ProtobufCMessage *m, const struct dplan *plan, unsigned i)
{
	return (uint8_t **)(void *)((uint8_t *)m + plan->offset[i]);
}

/* The elements of a packed value of len bytes at p of field i: counted as
 * protobuf-c counts them (false where it refuses to), and read into
 * array, at most *count of them (then *count: how many were): the bytes
 * may be a slot a publisher overwrites between the count and the reading
 * (take.c finds out after), which must not write past the array. */
static bool packed_count(const struct dplan *plan, unsigned i, const uint8_t *p, size_t len,
			 size_t *count)
{
	size_t n = 0;

	if (plan->elem_op[i] == OP_FIXED32 || plan->elem_op[i] == OP_FIXED64) {
		unsigned shift = plan->elem_op[i] == OP_FIXED64 ? 3 : 2; /* no division */

		if (len & ((1u << shift) - 1))
			return false;
		*count = len >> shift;
		return true;
	}
	for (size_t k = 0; k < len; k++)
		n += !(p[k] & 0x80);
	*count = n;
	return true;
}

static bool packed_get(const struct dplan *plan, unsigned i, const uint8_t *p, size_t len,
		       uint8_t *array, size_t *count)
{
	const uint8_t *end = p + len;
	enum op op = (enum op)plan->elem_op[i];
	size_t room = *count;

	if (op == OP_FIXED32 || op == OP_FIXED64) { /* as on the wire (little-endian) */
		memcpy(array, p, len);
		return true;
	}
	for (; p < end; array += plan->elem_size[i]) {
		uint64_t v;
		size_t n = varint_read(p, end, 10, &v);

		if (!n || room == 0)
			return false;
		room--;
		varint_put(op, p, n, v, array);
		p += n;
	}
	*count -= room;
	return true;
}

/* From the value at *at (its key read: number, of this wire type) to the
 * end of the message, the fields of that number (or, `unknown`, every
 * field desc does not know), the one at *at included. false: a value
 * protobuf-c refuses, or a field of that number with another wire type
 * (an array sent both packed and not). */
static bool rest_count(const ProtobufCMessageDescriptor *desc, const uint8_t *at,
		       const uint8_t *end, uint32_t number, unsigned wire, bool unknown,
		       size_t *count)
{
	size_t n = 1;

	if (!value_skip(&at, end, wire))
		return false;
	while (at < end) {
		uint32_t other;
		unsigned other_wire;

		if (!key_read(&at, end, &other, &other_wire) || !value_skip(&at, end, other_wire))
			return false;
		if (unknown) {
			n += !field_find(desc, other);
		} else if (other == number) {
			if (other_wire != wire)
				return false;
			n++;
		}
	}
	*count = n;
	return true;
}

/* Room for `count` more elements of repeated field i: its array is made
 * at its first value (`room` remembers its size), and a later value must
 * fit it. */
static bool room_for(ProtobufCMessage *m, const struct dplan *plan, unsigned i, size_t count,
		     size_t *room, ProtobufCAllocator *allocator)
{
	uint8_t **array = array_of(m, plan, i);
	size_t size = plan->elem_size[i];

	if (*array)
		return *room - *count_of(m, plan, i) >= count;
	if (count > SIZE_MAX / size || !(*array = piece(allocator, count * size)))
		return false;
	*room = count;
	return true;
}

/* One value of repeated field i (its key read: number, wire, op) at *at. */
static bool element_get(ProtobufCMessage *m, struct dplan *plan, unsigned i, enum op op,
			uint32_t number, unsigned wire, const uint8_t **at, const uint8_t *end,
			size_t *room, ProtobufCAllocator *allocator, unsigned depth)
{
	size_t *n = count_of(m, plan, i), count = 1;

	if (op == OP_PACKED) {
		const uint8_t *data;
		size_t len;

		if (!len_read(at, end, &data, &len) || !packed_count(plan, i, data, len, &count))
			return false;
		if (len == 0)
			return true;
		/* Bytes but no element: an unterminated varint, refused. */
		if (count == 0)
			return false;
		if (!room_for(m, plan, i, count, room, allocator) ||
		    !packed_get(plan, i, data, len, *array_of(m, plan, i) + *n * plan->elem_size[i],
				&count))
			return false;
		*n += count;
		return true;
	}
	if (!*array_of(m, plan, i) &&
	    !rest_count(plan->head.desc, *at, end, number, wire, false, &count))
		return false;
	if (!room_for(m, plan, i, count, room, allocator) ||
	    !value_get(op, plan, i, at, end, *array_of(m, plan, i) + *n * plan->elem_size[i],
		       allocator, depth))
		return false;
	++*n;
	return true;
}

/* A field of a number desc does not know (its key read: number, wire),
 * kept as protobuf-c keeps it: its value's bytes as they are on the wire
 * (a length prefix included), in the message's unknown fields, whose
 * array is made at the first one (room: its size). */
static bool unknown_get(ProtobufCMessage *m, const ProtobufCMessageDescriptor *desc,
			uint32_t number, unsigned wire, const uint8_t **at, const uint8_t *end,
			size_t *room, ProtobufCAllocator *allocator)
{
	const uint8_t *value = *at;
	ProtobufCMessageUnknownField *u;
	size_t count;

	if (!m->unknown_fields) {
		if (!rest_count(desc, *at, end, number, wire, true, &count) ||
		    count > SIZE_MAX / sizeof(*u) ||
		    !(m->unknown_fields = piece(allocator, count * sizeof(*u))))
			return false;
		*room = count;
	}
	if (m->n_unknown_fields == *room || !value_skip(at, end, wire))
		return false;
	u = &m->unknown_fields[m->n_unknown_fields];
	u->tag = number;
	u->wire_type = (ProtobufCWireType)wire;
	u->len = (size_t)(*at - value);
	if (!(u->data = piece(allocator, u->len)))
		return false;
	memcpy(u->data, value, u->len);
	m->n_unknown_fields++;
	return true;
}

static int decode_message(struct dplan *plan, ProtobufCAllocator *allocator, const uint8_t *data,
			  size_t size, unsigned depth, ProtobufCMessage **out)
{
	const ProtobufCMessageDescriptor *desc = plan->head.desc;
	const uint8_t *p = data, *end = data + size;
	ProtobufCMessage *m;
	uint64_t seen = 0;
	size_t room[FIELDS_MAX]; /* of each repeated field, once its array is made */
	size_t unknown_room = 0;

	if (depth > DEPTH_MAX || !plan->usable)
		return DECODE_FALLBACK;
	if (!(m = piece(allocator, desc->sizeof_message)))
		return DECODE_FALLBACK;
	desc->message_init(m);
	*out = m;
	while (p < end) {
		unsigned key = *p, wire, i;
		uint32_t number;
		enum op op;
		uint8_t *member;

		if (key < 0x80 && plan->key_op[key]) {
			op = (enum op)plan->key_op[key];
			i = plan->key_field[key];
			number = key >> 3;
			wire = key & 7;
			p++;
		} else {
			const ProtobufCFieldDescriptor *field;

			if (!key_read(&p, end, &number, &wire))
				return DECODE_FALLBACK;
			if (!(field = field_find(desc, number))) {
				if (!unknown_get(m, desc, number, wire, &p, end, &unknown_room,
						 allocator))
					return DECODE_FALLBACK;
				continue;
			}
			if ((op = op_for(field, wire)) == OP_NONE)
				return DECODE_FALLBACK;
			i = (unsigned)(field - desc->fields);
		}
		member = (uint8_t *)m + plan->offset[i];
		switch ((enum kind)plan->kind[i]) {
		case KIND_REPEATED:
			if (!element_get(m, plan, i, op, number, wire, &p, end, &room[i], allocator,
					 depth))
				return DECODE_FALLBACK;
			break;
		case KIND_ONEOF: {
			uint32_t *which = (uint32_t *)(void *)((uint8_t *)m + plan->flag_offset[i]);

			if (*which || !value_get(op, plan, i, &p, end, member, allocator, depth))
				return DECODE_FALLBACK;
			*which = number;
			break;
		}
		default:
			if ((op == OP_MESSAGE && (seen >> i & 1)) ||
			    !value_get(op, plan, i, &p, end, member, allocator, depth))
				return DECODE_FALLBACK;
			seen |= UINT64_C(1) << i;
			if (plan->kind[i] == KIND_HAS)
				*(protobuf_c_boolean *)(void *)((uint8_t *)m + plan->flag_offset[i]) = 1;
			break;
		}
	}
	return (seen & plan->required) == plan->required ? SHMBUS_OK : DECODE_FALLBACK;
}

int typed_decode(const ProtobufCMessageDescriptor *desc, ProtobufCAllocator *allocator,
		 const uint8_t *data, size_t size, ProtobufCMessage **out)
{
	struct dplan *plan = plan_get(desc);

	*out = NULL;
	return plan ? decode_message(plan, allocator, data, size, 0, out) : DECODE_FALLBACK;
}
