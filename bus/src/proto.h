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
#include "segment.h"

#define PROTO_MAGIC 0x31504253u /* "SBP1" */
#define PROTO_VERSION 3u
/* The largest body: an OPEN with the largest schema and names. */
#define PROTO_MAX_BODY (SEG_MAX_SCHEMA + 4096u)
/* The largest request a client may have in flight before the broker has
 * heard anything of it but its header: any other size is refused at once. */
#define PROTO_MAX_FDS 4

enum proto_op {
	OP_HELLO = 1,  /* u32 version -> u32 broker pid, nonce; fds: bus page,
	                  wake board */
	OP_OPEN = 2,   /* struct proto_open -> struct proto_opened; fds: meta,
	                  data, and the client's page when new */
	OP_CLOSE = 3,  /* struct proto_close -> status */
	OP_LIST = 4,   /* -> struct proto_entry for each topic */
	OP_AUTH = 5,   /* proof of the bus key for the HELLO nonce -> status */
	OP_INFO = 6,   /* topic name -> struct proto_info */
	OP_REMOVE = 7, /* topic name -> status */
	OP_GROW = 8,   /* struct proto_grow -> struct proto_opened (no new page)
	                  + fds: meta, data of the larger successor ring */
	OP_REOPEN = 9, /* struct proto_close (a line the client holds) ->
	                  struct proto_opened + fds of the topic's ring now */
};

enum proto_role { ROLE_PUB = 1, ROLE_SUB = 2 };

struct proto_hdr {
	uint32_t magic;
	uint16_t version;
	uint16_t op;
	int32_t status;
	uint32_t len;
};

#define PROTO_ANY_TYPE UINT32_MAX
#define PROTO_NONCE_BYTES 32

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
	uint32_t index;        /* publisher line, or subscriber table entry */
	uint32_t publisher_id; /* publishers only */
	uint32_t page;         /* the client's page holding its counters */
	uint32_t line;         /* and the line in it */
	uint32_t new_page;     /* 1: the page's fd comes with this reply */
	uint64_t head;         /* the topic's next sequence number when the
	                          handle was registered (a subscriber's start) */
	struct seg_layout layout;
};

struct proto_close {
	uint32_t topic_id;
	uint32_t role;
	uint32_t index;
};

struct proto_grow {
	uint32_t topic_id;
	uint32_t index;    /* the publisher line asking */
	uint32_t size;     /* the message size it needs */
};

/* What INFO answers: the topic, then its publishers and subscribers. */
struct proto_info {
	struct seg_layout layout;
	uint64_t next_seq;
	uint64_t broker_bytes;
	uint32_t schema_versions;
	uint32_t grown;
	uint32_t n_pubs, n_subs;
};

struct proto_client {
	int32_t pid;
	uint32_t id;
	uint64_t count, lost, next_seq, rejected;
	uint32_t waiting;
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

void proto_encode_layout(struct proto_buf *b, const struct seg_layout *l);

/* HELLO reply: broker pid and the nonce a key proof answers. */
void proto_encode_hello(struct proto_buf *b, uint32_t pid, const uint8_t *nonce);
int proto_decode_hello(const uint8_t *body, size_t len, uint32_t *pid, uint8_t *nonce);

/* A request that is one name (INFO, REMOVE): 0, or SHMBUS_ENAME /
 * SHMBUS_EBROKER with a reason. name gets a NUL-terminated copy. */
void proto_encode_name(struct proto_buf *b, const char *name);
int proto_decode_name(const uint8_t *body, size_t len, char name[SEG_TOPIC_MAX], char *err,
		      size_t errlen);

/* INFO reply: the info, then n_pubs + n_subs clients. Calls fn for each
 * client (pub: true for publishers). */
void proto_encode_info(struct proto_buf *b, const struct proto_info *in);
void proto_encode_client(struct proto_buf *b, const struct proto_client *c);
int proto_decode_info(const uint8_t *body, size_t len, struct proto_info *in,
		      void (*fn)(void *ctx, bool pub, const struct proto_client *c), void *ctx);
void proto_encode_close(struct proto_buf *b, const struct proto_close *c);
int proto_decode_close(const uint8_t *body, size_t len, struct proto_close *c);
void proto_encode_grow(struct proto_buf *b, const struct proto_grow *g);
int proto_decode_grow(const uint8_t *body, size_t len, struct proto_grow *g);

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
