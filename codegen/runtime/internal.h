/*
 * internal.h - what the typed runtime's files share: checking a type and
 * a handle against each other, and the top-level wire walk of zero-copy
 * views (wire.c).
 */
#ifndef SHMBUS_TYPED_INTERNAL_H
#define SHMBUS_TYPED_INTERNAL_H

#include <stdbool.h>

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

/* At least as many bytes as protobuf_c_message_pack() writes for msg
 * (size_bound.c); SIZE_MAX when it cannot tell. */
size_t typed_size_bound(const ProtobufCMessage *msg);

/* The varint encoding of v into out (at most 10 bytes); its length. */
size_t wire_put_varint(uint8_t *out, uint64_t v);

/* Walks the top-level fields of a message. The last length-delimited
 * occurrence of `number` is the field's value (*field, *field_size);
 * every other field's bytes are counted in *kept and, with copy_to,
 * copied there (at most copy_cap bytes: the data may change under a
 * lapping publisher between two walks). -1: not valid wire format. */
int wire_scan(const uint8_t *p, size_t size, uint32_t number, uint8_t *copy_to,
	      size_t copy_cap, size_t *kept, size_t *n_found, const uint8_t **field,
	      size_t *field_size);

#endif
