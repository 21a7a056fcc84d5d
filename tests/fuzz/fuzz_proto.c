/*
 * fuzz_proto.c - libFuzzer target: the broker protocol decoders, fed
 * arbitrary bytes as a client could send them.
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[256];
	struct proto_hdr h;
	if (size >= sizeof(h)) {
		memcpy(&h, data, sizeof(h));
		if (proto_check_hdr(&h, err, sizeof(err)) == 0 && h.len <= size - sizeof(h)) {
			const uint8_t *body = data + sizeof(h);
			struct proto_open o;
			struct proto_opened op;
			struct proto_close c;
			size_t n = 0;
			switch (h.op) {
			case OP_OPEN:
				if (proto_decode_open(body, h.len, &o, err, sizeof(err)) == 0) {
					/* Everything it points at must lie inside the body. */
					if (o.topic < (const char *)body ||
					    o.topic + o.topic_len > (const char *)body + h.len)
						__builtin_trap();
				}
				break;
			case OP_CLOSE:
				proto_decode_close(body, h.len, &c);
				break;
			case OP_LIST:
				proto_decode_entries(body, h.len, count, &n);
				break;
			default:
				proto_decode_opened(body, h.len, &op);
			}
		}
	}
	/* The decoders on their own, without a header. */
	struct proto_open o;
	proto_decode_open(data, size, &o, err, sizeof(err));
	size_t n = 0;
	proto_decode_entries(data, size, count, &n);
	return 0;
}
