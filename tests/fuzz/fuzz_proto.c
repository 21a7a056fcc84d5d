/*
 * fuzz_proto.c - libFuzzer target: the broker protocol decoders, fed
 * arbitrary bytes as a client (requests) or a broker (replies) could send
 * them.
 */
#include <stdint.h>
#include <string.h>

#include "proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int count(void *ctx, const struct proto_entry *e)
{
	(*(size_t *)ctx) += strlen(e->name) + strlen(e->type_name);
	return 0;
}

static void client(void *ctx, bool pub, const struct proto_client *c)
{
	(*(size_t *)ctx) += pub + c->id;
}

/* Every decoder on the same body. */
static void decode_all(const uint8_t *body, size_t len)
{
	char err[256], name[SEG_TOPIC_MAX];
	struct proto_open o;
	struct proto_opened op;
	struct proto_close c;
	struct proto_info in;
	uint8_t nonce[PROTO_NONCE_BYTES];
	uint32_t pid;
	size_t n = 0;
	if (proto_decode_open(body, len, &o, err, sizeof(err)) == 0) {
		/* Everything it points at must lie inside the body. */
		if (o.topic < (const char *)body || o.topic + o.topic_len > (const char *)body + len)
			__builtin_trap();
	}
	if (proto_decode_opened(body, len, &op) == 0 &&
	    (strlen(op.layout.name) >= sizeof(op.layout.name) || op.line >= PAGE_LINES))
		__builtin_trap();
	proto_decode_close(body, len, &c);
	proto_decode_entries(body, len, count, &n);
	proto_decode_info(body, len, &in, client, &n);
	proto_decode_name(body, len, name, err, sizeof(err));
	proto_decode_hello(body, len, &pid, nonce);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[256];
	struct proto_hdr h;
	if (size >= sizeof(h)) {
		memcpy(&h, data, sizeof(h));
		if (proto_check_hdr(&h, err, sizeof(err)) == 0 && h.len <= size - sizeof(h))
			decode_all(data + sizeof(h), h.len);
	}
	decode_all(data, size);
	return 0;
}
