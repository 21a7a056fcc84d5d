/*
 * pbjson.h - protobuf wire bytes <-> JSON by reflection over a serialized
 * google.protobuf.FileDescriptorSet: what lets the shell tools (echo, pub,
 * mcap cat) show any topic from the schema stored with it, without the
 * .proto files.
 *
 * The JSON follows protobuf's canonical JSON mapping: lowerCamelCase field
 * names (the descriptor's json_name), enums by name (by number when the
 * number has no name), 64-bit integers as strings, bytes as base64,
 * repeated fields as arrays, maps as objects, NaN/Infinity as strings,
 * google.protobuf.Timestamp as an RFC 3339 string,
 * google.protobuf.Duration as "1.5s", the wrappers (Int32Value, ...) as
 * their bare value. Unknown fields and proto2 groups are
 * skipped (encode refuses a group field by name); fields without presence
 * (proto3) that hold their default are left out unless emit_defaults is
 * set.
 *
 * Decoding never trusts its input: malformed wire bytes are an error whose
 * text names the byte offset and the field being read.
 *
 * Every function that can fail returns 0 or a negative PBJSON_E* code and
 * writes a human-readable reason into err (errlen bytes, may be 0).
 */
#ifndef SHMBUS_PBJSON_H
#define SHMBUS_PBJSON_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum pbjson_error {
	PBJSON_OK = 0,
	PBJSON_EINVAL = -1,   /* a NULL or otherwise invalid argument */
	PBJSON_ENOMEM = -2,   /* out of memory */
	PBJSON_ESCHEMA = -3,  /* the descriptor set does not parse or refers to
	                         types it does not define */
	PBJSON_ENOTYPE = -4,  /* no such message type in the schema */
	PBJSON_EWIRE = -5,    /* malformed wire bytes (decode) */
	PBJSON_EJSON = -6,    /* JSON that does not fit the type (encode):
	                         unknown field, wrong value type, bad base64 */
	PBJSON_ELIMIT = -7,   /* nesting deeper than PBJSON_MAX_DEPTH */
};

/* Messages nested deeper than this are refused (stack safety). */
#define PBJSON_MAX_DEPTH 64

/* Text for a PBJSON_E* code; never NULL. */
const char *pbjson_strerror(int err);

typedef struct pbjson_schema pbjson_schema;

/* Parse a serialized FileDescriptorSet (as `protoc --descriptor_set_out
 * --include_imports` writes, and as typed topics store) and index its
 * message and enum types. The bytes are not referenced after return. */
int pbjson_schema_load(const void *fds, size_t len, pbjson_schema **out, char *err,
		       size_t errlen);

void pbjson_schema_free(pbjson_schema *s);

/* Whether `type` (full name, no leading dot: "shmbus.msgs.Imu") is a
 * message type of the schema. */
bool pbjson_has_type(const pbjson_schema *s, const char *type);

/* Number of message types, and the full name of the i-th (sorted by name;
 * map entry types are included). For listing types in --help and errors. */
size_t pbjson_type_count(const pbjson_schema *s);
const char *pbjson_type_name(const pbjson_schema *s, size_t i);

/* A serialized FileDescriptorSet holding only the file that defines `type`
 * and the files it imports, transitively (dependencies first): what a
 * topic of that type should store. *out is malloc'd. */
int pbjson_schema_subset(const pbjson_schema *s, const char *type, uint8_t **out,
			 size_t *len, char *err, size_t errlen);

/* What pbjson_max_encoded_size() returns for a type without a bound; not
 * an error. */
#define PBJSON_UNBOUNDED 1

/* The exact largest encoded size of message type `type` into *bound:
 * every field at its widest value (negative int32 and enum fields take ten
 * bytes), nested messages included, the largest member of each oneof.
 * PBJSON_UNBOUNDED when the type has a repeated, string, bytes or map
 * field anywhere in it, or contains itself; err then names the field (e.g.
 * "shmbus.msgs.Header.frame_id is a string"). The same bound
 * protoc-gen-shmbus writes into generated code as TYPE__SHMBUS_MAX_SIZE. */
int pbjson_max_encoded_size(const pbjson_schema *s, const char *type, uint64_t *bound,
			    char *err, size_t errlen);

struct pbjson_options {
	/* Print every byte of bytes fields. Otherwise fields longer than
	 * bytes_limit print as the base64 of their first bytes_limit bytes
	 * followed by "... (N bytes)" (which pbjson_encode refuses). */
	bool full_bytes;
	size_t bytes_limit;  /* default 32 */
	/* Also print fields that hold their default value and have no
	 * presence (proto3 scalars, repeated fields as [], maps as {}). */
	bool emit_defaults;
};

void pbjson_options_init(struct pbjson_options *o);

/* Decode the wire bytes buf[0..len) of message type `type` into a new JSON
 * object *out (the caller json_decref()s it). o may be NULL: defaults. */
int pbjson_decode(const pbjson_schema *s, const char *type, const uint8_t *buf, size_t len,
		  const struct pbjson_options *o, json_t **out, char *err, size_t errlen);

/* Encode the JSON object `in` as message type `type` into a malloc'd
 * buffer (*out, *len; *out is never NULL on success, even when *len is 0). Accepts the JSON
 * names and the .proto names of fields; integers as numbers or decimal
 * strings; enums by name or number; null as "not set". */
int pbjson_encode(const pbjson_schema *s, const char *type, const json_t *in, uint8_t **out,
		  size_t *len, char *err, size_t errlen);

/* Standard base64 (with padding) of p[0..n), malloc'd; NULL if out of
 * memory. For printing payloads that have no schema. */
char *pbjson_base64(const void *p, size_t n);

/* Serialize j compactly on one line (JSON Lines), with each number as the
 * shortest text that reads back to the same value: jansson's json_dumps
 * prints the double 0.1 as 0.10000000000000001. malloc'd; NULL if out of
 * memory. */
char *pbjson_dumps(const json_t *j);

#endif
