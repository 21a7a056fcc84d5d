/*
 * bound.h - the largest encoded size a message type can have, from its
 * descriptor protos (google/protobuf/descriptor.proto as protoc-c compiles
 * it). One implementation for everything that sizes a topic from a type:
 * protoc-gen-shmbus writes the bound into the generated code, lib/pbjson
 * computes it from a topic's stored FileDescriptorSet
 * (pbjson_max_encoded_size).
 *
 * A type is bounded when no field anywhere in it, nested messages
 * included, is repeated (maps are), a string, bytes or a group, and no
 * message type contains itself. Its bound is exact: what protobuf-c packs
 * for the message with every field present at its widest value (int32 and
 * enum fields negative: ten bytes; the largest member of each oneof).
 */
#ifndef SHMBUS_CODEGEN_BOUND_H
#define SHMBUS_CODEGEN_BOUND_H

#include <stddef.h>
#include <stdint.h>

#include "google/protobuf/descriptor.pb-c.h"

/* What pbbound_max_size() found. */
enum pbbound_result {
	PBBOUND_BOUNDED = 0,   /* *bound is the exact maximum */
	PBBOUND_UNBOUNDED = 1, /* no bound; why names the field */
	PBBOUND_ENOTYPE = -1,  /* the type, or a message type a field refers
	                          to, is not known to find(); why names it */
	PBBOUND_ENOMEM = -2,
};

/* Bounds larger than this are reported unbounded: protobuf messages are
 * limited to 2 GiB, and no topic holds one. */
#define PBBOUND_LIMIT ((uint64_t)INT32_MAX)

/* Looks a message type up by its full name, without a leading dot
 * ("pkg.Outer.Inner"); NULL if unknown. */
typedef const Google__Protobuf__DescriptorProto *(*pbbound_find_fn)(void *ctx,
								    const char *full_name);

/* The exact maximum encoded size of message type `type` (full name, no
 * leading dot) into *bound. why (whylen bytes, may be 0) gets the reason
 * when the result is not PBBOUND_BOUNDED, e.g. "shmbus.msgs.Header.frame_id
 * is a string". */
int pbbound_max_size(const char *type, pbbound_find_fn find, void *ctx, uint64_t *bound,
		     char *why, size_t whylen);

#endif
