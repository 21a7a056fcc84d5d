/*
 * mcap_internal.h - what the MCAP writer and reader share: record opcodes,
 * little-endian encoding, a growable byte buffer, and chunk compression.
 */
#ifndef SHMBUS_MCAP_INTERNAL_H
#define SHMBUS_MCAP_INTERNAL_H

#include "mcap.h"

#include <stdint.h>
#include <string.h>

#define MCAP_MAGIC "\x89MCAP0\r\n"
#define MCAP_MAGIC_SIZE 8
/* opcode (1) + content length (8) */
#define MCAP_RECORD_PREFIX 9
/* Footer: prefix + summary_start + summary_offset_start + summary_crc */
#define MCAP_FOOTER_SIZE (MCAP_RECORD_PREFIX + 8 + 8 + 4)

enum mcap_op {
	MCAP_OP_HEADER = 0x01,
	MCAP_OP_FOOTER = 0x02,
	MCAP_OP_SCHEMA = 0x03,
	MCAP_OP_CHANNEL = 0x04,
	MCAP_OP_MESSAGE = 0x05,
	MCAP_OP_CHUNK = 0x06,
	MCAP_OP_MESSAGE_INDEX = 0x07,
	MCAP_OP_CHUNK_INDEX = 0x08,
	MCAP_OP_ATTACHMENT = 0x09,
	MCAP_OP_ATTACHMENT_INDEX = 0x0A,
	MCAP_OP_STATISTICS = 0x0B,
	MCAP_OP_METADATA = 0x0C,
	MCAP_OP_METADATA_INDEX = 0x0D,
	MCAP_OP_SUMMARY_OFFSET = 0x0E,
	MCAP_OP_DATA_END = 0x0F,
};

/* Message record content before its data: channel_id, sequence, log_time,
 * publish_time. */
#define MCAP_MESSAGE_FIXED (2 + 4 + 8 + 8)

static inline void mcap_put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static inline void mcap_put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline void mcap_put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint16_t mcap_get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}

static inline uint32_t mcap_get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t mcap_get64(const uint8_t *p)
{
	return (uint64_t)mcap_get32(p) | (uint64_t)mcap_get32(p + 4) << 32;
}

/* A growable byte buffer. On allocation failure `failed` is set and
 * further appends are ignored: check once at the end. */
struct mcap_buf {
	uint8_t *data;
	size_t size, cap;
	int failed;
};

int mcap_buf_reserve(struct mcap_buf *b, size_t extra);
/* Appends n bytes and returns where they go (NULL after a failure). */
uint8_t *mcap_buf_grow(struct mcap_buf *b, size_t n);
void mcap_buf_u8(struct mcap_buf *b, uint8_t v);
void mcap_buf_u16(struct mcap_buf *b, uint16_t v);
void mcap_buf_u32(struct mcap_buf *b, uint32_t v);
void mcap_buf_u64(struct mcap_buf *b, uint64_t v);
void mcap_buf_bytes(struct mcap_buf *b, const void *p, size_t n);
void mcap_buf_str(struct mcap_buf *b, const char *s); /* uint32 length + bytes */
/* Starts a record; returns the offset of its length field for _end. */
size_t mcap_buf_record_begin(struct mcap_buf *b, uint8_t op);
void mcap_buf_record_end(struct mcap_buf *b, size_t len_at);
void mcap_buf_free(struct mcap_buf *b);

/* Chunk compression into *out (reused across calls). *zctx holds a zstd
 * context made on first use; mcap_compress_free() frees it. */
int mcap_compress(enum mcap_compression c, int level, void **zctx, const uint8_t *in, size_t n,
		  struct mcap_buf *out, char *err, size_t errlen);
void mcap_compress_free(void *zctx);
/* Decompress exactly `expect` bytes into out (capacity expect). */
int mcap_decompress(enum mcap_compression c, const uint8_t *in, size_t n, uint8_t *out,
		    size_t expect, char *err, size_t errlen);

/* A chunk decompressed piece by piece, so reading a chunk costs memory
 * for the record being read, not for the whole chunk (a chunk may claim
 * gigabytes that a few kilobytes of zstd expand to). It never gives more
 * than `expect` bytes, and says so if the frame holds more or less. */
struct mcap_dstream {
	enum mcap_compression kind;
	const uint8_t *in;
	size_t n, in_pos;
	uint64_t expect, out_pos;
	void *ctx; /* ZSTD_DCtx or LZ4F_dctx */
	bool frame_done;
};

int mcap_dstream_init(struct mcap_dstream *d, enum mcap_compression kind, const uint8_t *in,
		      size_t n, uint64_t expect, char *err, size_t errlen);
/* Exactly `len` more bytes into out. */
int mcap_dstream_read(struct mcap_dstream *d, uint8_t *out, size_t len, char *err,
		      size_t errlen);
/* After the last byte: whether the frame ended there, input and all. */
int mcap_dstream_finish(struct mcap_dstream *d, char *err, size_t errlen);
void mcap_dstream_free(struct mcap_dstream *d);

uint32_t mcap_crc32(uint32_t crc, const void *p, size_t n);
uint32_t mcap_crc32_combine(uint32_t crc1, uint32_t crc2, uint64_t len2);

#endif
