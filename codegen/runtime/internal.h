/*
 * internal.h - what the typed runtime's files share: checking a type and
 * a handle against each other, and the top-level wire walk of zero-copy
 * views (wire.c).
 */
#ifndef SHMBUS_TYPED_INTERNAL_H
#define SHMBUS_TYPED_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "shmbus/typed.h"

/* A type description written by a generator that set every field this
 * library reads. */
bool typed_type_valid(const struct shmbus_typed_type *type);

/* Whether the topic behind a handle has the type's name. */
bool typed_pub_has_type(const shmbus_pub *pub, const struct shmbus_typed_type *type);
bool typed_sub_has_type(const shmbus_sub *sub, const struct shmbus_typed_type *type);

/* The runtime's own refusals, with the calling thread's error text set as
 * libshmbus sets it for its own (shmbus_fail): SHMBUS_EINVAL for a type
 * description a generator did not fill (`fn` the public function), and
 * SHMBUS_ETYPE for a handle whose topic has another type. */
int typed_fail_type(const char *fn, const struct shmbus_typed_type *type);
int typed_fail_other_type(const char *topic, const char *topic_type,
			  const struct shmbus_typed_type *type);

/* Ask for the cache lines of p[0..size) at once (up to a few KiB): for
 * reading (a message another core just wrote) or for writing (a slot
 * another core read last). protobuf-c reads and writes a message field by
 * field; without this, each line it reaches is a miss of its own, one
 * after the other, where a memcpy of the same bytes has them all in
 * flight together. */
void typed_prefetch(const void *p, size_t size, bool for_write);

/* Unpacks size bytes at data as desc into one block (arena.c): SHMBUS_OK
 * and *out, SHMBUS_EBADMSG (not a desc), SHMBUS_ENOMEM, or
 * SHMBUS_EVERSION (a protobuf-c that does not allocate the message first;
 * the error text set). */
int typed_arena_unpack(const ProtobufCMessageDescriptor *desc, size_t size, const uint8_t *data,
		       ProtobufCMessage **out);

/* Frees a message from typed_arena_unpack() (NULL: nothing). */
void typed_arena_free(ProtobufCMessage *msg);

/* Plans (plans.c): what is worked out once per message type. A plan
 * starts with a plan_head, is malloc'd, and once in a table lives for the
 * life of the process. */
#define PLAN_SLOTS 256

struct plan_head {
	const ProtobufCMessageDescriptor *desc;
};

/* Filled once per slot by a compare-and-swap, never emptied; zero
 * initialised (a static). */
struct plan_table {
	_Atomic(struct plan_head *) slot[PLAN_SLOTS];
};

/* desc's plan in t, or NULL. */
struct plan_head *plan_table_find(struct plan_table *t, const ProtobufCMessageDescriptor *desc);

/* Puts p in t, or returns the plan another thread put there first for the
 * same type (p is then freed). NULL: the table is full (p freed). */
struct plan_head *plan_table_insert(struct plan_table *t, struct plan_head *p);

/* What typed_decode() answers for bytes it leaves to protobuf-c. */
#define DECODE_FALLBACK 1

/* Unpacks size bytes at data as desc with the pieces from allocator, in
 * one walk by a plan of the type (decode.c), exactly as
 * protobuf_c_message_unpack() would: SHMBUS_OK and *out (the first
 * piece), or DECODE_FALLBACK for bytes it leaves to protobuf-c (including
 * every one protobuf-c refuses); what it allocated is then still the
 * allocator's to free. */
int typed_decode(const ProtobufCMessageDescriptor *desc, ProtobufCAllocator *allocator,
		 const uint8_t *data, size_t size, ProtobufCMessage **out);

/* At least as many bytes as protobuf_c_message_pack() writes for msg
 * (size_bound.c); SIZE_MAX when it cannot tell. */
size_t typed_size_bound(const ProtobufCMessage *msg);

/* The bytes one element of a repeated field of type t takes in its
 * array (decode.c, pack.c). */
static inline size_t typed_element_size(ProtobufCType t)
{
	switch (t) {
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_FIXED64:
	case PROTOBUF_C_TYPE_SFIXED64:
	case PROTOBUF_C_TYPE_DOUBLE:
		return 8;
	case PROTOBUF_C_TYPE_BOOL:
		return sizeof(protobuf_c_boolean);
	case PROTOBUF_C_TYPE_STRING:
	case PROTOBUF_C_TYPE_MESSAGE:
		return sizeof(void *);
	case PROTOBUF_C_TYPE_BYTES:
		return sizeof(ProtobufCBinaryData);
	default:
		return 4;
	}
}

/* Packs msg into out (room for what it packs into: typed_size_bound()
 * bytes will do) as protobuf_c_message_pack() does, the same bytes, by a
 * plan of its type (pack.c); the bytes written. */
size_t typed_pack(const ProtobufCMessage *msg, uint8_t *out);

/* The varint encoding of v into out (at most 10 bytes); its length. */
static inline size_t wire_put_varint(uint8_t *out, uint64_t v)
{
	size_t n = 0;

	while (v >= 0x80) {
		out[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	out[n++] = (uint8_t)v;
	return n;
}

/* Walks the top-level fields of a message. The last length-delimited
 * occurrence of `number` is the field's value (*field, *field_size);
 * every other field's bytes are counted in *kept and, with copy_to,
 * copied there (at most copy_cap bytes: the data may change under a
 * lapping publisher between two walks). -1: not valid wire format. */
int wire_scan(const uint8_t *p, size_t size, uint32_t number, uint8_t *copy_to,
	      size_t copy_cap, size_t *kept, size_t *n_found, const uint8_t **field,
	      size_t *field_size);

#endif
