/*
 * make_mcap_seeds.c - fuzz_mcap's starting inputs, written by lib/mcap's
 * own writer (so they follow the format as we write it): make_mcap_seeds
 * DIR STAMP creates DIR/mcap/ with one small recording per chunk
 * compression, a file cut short (read by scanning), then STAMP.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "mcap.h"

static void fail(const char *what, const char *err)
{
	fprintf(stderr, "make_mcap_seeds: %s: %s\n", what, err);
	exit(1);
}

/* Two channels (one with a schema, one raw), small chunks so there are
 * several, messages of a few sizes, and a Metadata record. */
static void write_seed(const char *path, enum mcap_compression comp)
{
	char err[256];
	struct mcap_writer_options o;
	mcap_writer *w;
	mcap_writer_options_init(&o);
	o.compression = comp;
	o.chunk_size = 512;
	if (mcap_writer_open(path, &o, &w, err, sizeof(err)) != 0)
		fail(path, err);
	static const char schema[] = "\x0a\x09imu.proto"; /* a FileDescriptorSet's start */
	uint16_t sid, typed, raw;
	const struct mcap_kv md[] = { { "shmbus.type", "shmbus.msgs.Imu" },
				      { "shmbus.slots", "64" } };
	if (mcap_writer_add_schema(w, "shmbus.msgs.Imu", "protobuf", schema, sizeof(schema) - 1,
				   &sid) ||
	    mcap_writer_add_channel(w, sid, "imu", "protobuf", md, 2, &typed) ||
	    mcap_writer_add_channel(w, 0, "raw/x", "x-shmbus-raw", NULL, 0, &raw))
		fail(path, mcap_writer_error(w));
	uint8_t payload[300];
	for (size_t i = 0; i < sizeof(payload); i++)
		payload[i] = (uint8_t)(i * 7);
	for (uint32_t i = 0; i < 24; i++) {
		size_t n = (size_t)(i * 37) % sizeof(payload);
		if (mcap_writer_message(w, i % 3 ? typed : raw, i, 1000 + i, 1000 + i, payload, n))
			fail(path, mcap_writer_error(w));
		if (i == 12) {
			const struct mcap_kv lost[] = { { "imu", "0" }, { "raw/x", "2" } };
			if (mcap_writer_metadata(w, "shmbus.losses", lost, 2))
				fail(path, mcap_writer_error(w));
		}
	}
	if (mcap_writer_close(w, err, sizeof(err)) != 0)
		fail(path, err);
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: make_mcap_seeds DIR STAMP\n");
		return 2;
	}
	char dir[1024], path[1100];
	snprintf(dir, sizeof(dir), "%s/mcap", argv[1]);
	mkdir(argv[1], 0755);
	mkdir(dir, 0755);
	static const struct {
		const char *name;
		enum mcap_compression c;
	} seeds[] = { { "none.mcap", MCAP_COMPRESSION_NONE },
		      { "zstd.mcap", MCAP_COMPRESSION_ZSTD },
		      { "lz4.mcap", MCAP_COMPRESSION_LZ4 } };
	for (size_t i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, seeds[i].name);
		write_seed(path, seeds[i].c);
	}
	/* A recording whose writer died: cut inside its data section. */
	snprintf(path, sizeof(path), "%s/none.mcap", dir);
	struct stat st;
	char cut[1100];
	snprintf(cut, sizeof(cut), "%s/cut.mcap", dir);
	if (stat(path, &st) != 0)
		fail(path, "cannot stat");
	FILE *in = fopen(path, "rb"), *out = fopen(cut, "wb");
	if (!in || !out)
		fail(cut, "cannot open");
	size_t keep = (size_t)st.st_size * 2 / 3;
	char *buf = malloc(keep);
	if (!buf || fread(buf, 1, keep, in) != keep || fwrite(buf, 1, keep, out) != keep)
		fail(cut, "cannot copy");
	free(buf);
	fclose(in);
	fclose(out);
	FILE *stamp = fopen(argv[2], "w");
	if (!stamp)
		return 1;
	fclose(stamp);
	return 0;
}
