/*
 * proto.h - the broker protocol: frames between clients and shmbusd on the
 * bus's Unix stream socket. Encoders and decoders are pure functions over
 * bytes, so the broker's parser of untrusted input can be fuzzed alone.
 *
 * Every frame: struct proto_hdr, then `len` body bytes. A reply carries the
 * request's op, a status (0 or a negative SHMBUS_E*), and on failure a
 * human-readable reason as its body. An OPEN reply that succeeds carries two
 * file descriptors (data segment, control area) as SCM_RIGHTS.
 */
#ifndef SHMBUS_PROTO_H
#define SHMBUS_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "layout.h"

#define PROTO_MAGIC 0x31504253u /* "SBP1" */
#define PROTO_VERSION 2u
#define PROTO_MAX_BODY (SEG_MAX_SCHEMA + 4096u)

enum proto_op {
	OP_HELLO = 1, /* u32 version -> u32 broker pid + the bus page's fd */
	OP_OPEN = 2,  /* struct proto_open -> struct proto_opened + 2 fds */
	OP_CLOSE = 3, /* struct proto_close -> status */
	OP_LIST = 4,  /* -> struct proto_entry for each topic */
};

enum proto_role { ROLE_PUB = 1, ROLE_SUB = 2, ROLE_INSPECT = 3 };

struct proto_hdr {
	uint32_t magic;
	uint16_t version;
	uint16_t op;
	int32_t status;
	uint32_t len;
};

#define PROTO_ANY_TYPE UINT32_MAX

struct proto_open {
	uint32_t role;
	uint32_t create;
	uint32_t slot_count;
	uint32_t max_message_size;
	uint32_t history;
	uint32_t flags;
	const char *topic; /* not NUL-terminated in the frame: see lengths */
	uint32_t topic_len;
	const char *type_name;
	uint32_t type_len; /* PROTO_ANY_TYPE: accept the topic's type */
	const void *schema;
	uint32_t schema_len;
};

struct proto_opened {
	uint32_t topic_id;
	uint32_t index;        /* the client's line in the control area */
	uint32_t publisher_id; /* publishers only */
};

struct proto_close {
	uint32_t topic_id;
	uint32_t role;
	uint32_t index;
};

/* A growable output buffer. */
struct proto_buf {
	uint8_t *data;
	size_t len, cap;
	bool failed; /* an allocation failed: the buffer is unusable */
};

void proto_buf_free(struct proto_buf *b);
/* Start a frame; proto_frame_end() fills in its length. */
size_t proto_frame_begin(struct proto_buf *b, uint16_t op, int32_t status);
void proto_frame_end(struct proto_buf *b, size_t start);
void proto_put_u32(struct proto_buf *b, uint32_t v);
void proto_put_bytes(struct proto_buf *b, const void *p, size_t n);
/* u32 length, then the bytes. */
void proto_put_str(struct proto_buf *b, const char *s);

/* Check a header: 0, or SHMBUS_EBROKER / SHMBUS_EVERSION with a reason. */
int proto_check_hdr(const struct proto_hdr *h, char *err, size_t errlen);

void proto_encode_open(struct proto_buf *b, const struct proto_open *o);
int proto_decode_open(const uint8_t *body, size_t len, struct proto_open *o, char *err,
		      size_t errlen);
void proto_encode_opened(struct proto_buf *b, const struct proto_opened *o);
int proto_decode_opened(const uint8_t *body, size_t len, struct proto_opened *o);
void proto_encode_close(struct proto_buf *b, const struct proto_close *c);
int proto_decode_close(const uint8_t *body, size_t len, struct proto_close *c);

/* One topic of a LIST reply. */
struct proto_entry {
	uint32_t topic_id;
	char name[SEG_TOPIC_MAX];     /* as created */
	char type_name[SEG_TYPE_MAX]; /* "" for untyped */
};

void proto_encode_entry(struct proto_buf *b, uint32_t topic_id, const char *name,
			const char *type_name);
/* LIST reply body: a sequence of entries. Calls fn for each until it
 * returns non-zero (returned); SHMBUS_EBROKER if the body is malformed. */
int proto_decode_entries(const uint8_t *body, size_t len,
			 int (*fn)(void *ctx, const struct proto_entry *e), void *ctx);

#endif /* SHMBUS_PROTO_H */
