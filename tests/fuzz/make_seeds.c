/*
 * make_seeds.c - writes the fuzz targets' starting inputs (valid ones, made
 * by the project's own encoders and formatters, so they never drift from
 * the formats): make_seeds DIR STAMP creates DIR/{proto,segment,broker,
 * policy}, then STAMP (for the build to know it ran).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "proto.h"
#include "segment.h"

static void put_file(const char *dir, const char *sub, const char *name, const void *data,
		     size_t n)
{
	char path[1024];
	snprintf(path, sizeof(path), "%s/%s", dir, sub);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/%s/%s", dir, sub, name);
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(data, 1, n, f) != n) {
		perror(path);
		exit(1);
	}
	fclose(f);
}

static void frame(struct proto_buf *b, uint16_t op, const void *body, size_t n)
{
	size_t f = proto_frame_begin(b, op, 0);
	proto_put_bytes(b, body, n);
	proto_frame_end(b, f);
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: make_seeds DIR STAMP\n");
		return 2;
	}
	const char *dir = argv[1];
	mkdir(dir, 0755);

	/* A topic's meta, and a bus page. */
	struct seg_params p = { .slot_count = 8, .max_message_size = 256, .topic = "/imu",
				.type_name = "shmbus.msgs.Imu", .schema = "\x0a\x03" "abc",
				.schema_size = 5 };
	char err[256];
	if (seg_params_normalize(&p, err, sizeof(err)))
		return 1;
	size_t msize = seg_meta_size(p.schema_size);
	void *meta = calloc(1, msize);
	seg_meta_format(meta, &p);
	put_file(dir, "segment", "meta.bin", meta, msize);
	static _Alignas(4096) uint8_t page[BUS_PAGE_SIZE];
	seg_bus_format(page);
	put_file(dir, "segment", "bus.bin", page, sizeof(page));

	/* Frames: an OPEN request (the decoders), and a client's session for
	 * the broker: HELLO, OPEN as publisher and subscriber, LIST, INFO,
	 * CLOSE, REMOVE. */
	struct proto_buf b = { 0 };
	struct proto_open o = { .role = ROLE_PUB, .create = 1, .slot_count = 4,
				.max_message_size = 64, .topic = "a/b", .topic_len = 3,
				.type_name = "x.T", .type_len = 3, .schema = "s", .schema_len = 1 };
	size_t f = proto_frame_begin(&b, OP_OPEN, 0);
	proto_encode_open(&b, &o);
	proto_frame_end(&b, f);
	put_file(dir, "proto", "open.bin", b.data, b.len);
	proto_buf_free(&b);
	struct proto_opened op = { .index = 1, .publisher_id = 2, .page = 1, .line = 3 };
	seg_layout_of(meta, &op.layout);
	f = proto_frame_begin(&b, OP_OPEN, 0);
	proto_encode_opened(&b, &op);
	proto_frame_end(&b, f);
	put_file(dir, "proto", "opened.bin", b.data, b.len);
	proto_buf_free(&b);

	uint32_t version = PROTO_VERSION;
	frame(&b, OP_HELLO, &version, sizeof(version));
	f = proto_frame_begin(&b, OP_OPEN, 0);
	proto_encode_open(&b, &o);
	proto_frame_end(&b, f);
	o.role = ROLE_SUB;
	f = proto_frame_begin(&b, OP_OPEN, 0);
	proto_encode_open(&b, &o);
	proto_frame_end(&b, f);
	frame(&b, OP_LIST, NULL, 0);
	f = proto_frame_begin(&b, OP_INFO, 0);
	proto_encode_name(&b, "a/b");
	proto_frame_end(&b, f);
	struct proto_close cl = { 1, ROLE_SUB, 0 };
	f = proto_frame_begin(&b, OP_CLOSE, 0);
	proto_encode_close(&b, &cl);
	proto_frame_end(&b, f);
	f = proto_frame_begin(&b, OP_REMOVE, 0);
	proto_encode_name(&b, "a/b");
	proto_frame_end(&b, f);
	put_file(dir, "broker", "session.bin", b.data, b.len);
	proto_buf_free(&b);

	static const char policy[] = "# a policy\n"
				     "allow group:0 subscribe camera/*\n"
				     "deny * * /secrets/*\n"
				     "allow user:0 publish,create,subscribe *\n"
				     "limit * topics=4 bytes=16M connections=8\n";
	put_file(dir, "policy", "policy.txt", policy, sizeof(policy) - 1);
	free(meta);
	FILE *stamp = fopen(argv[2], "w");
	if (!stamp)
		return 1;
	fclose(stamp);
	return 0;
}
