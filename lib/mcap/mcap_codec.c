/*
 * mcap_codec.c - the byte-level pieces the writer and reader share: the
 * growable buffer, CRC32, and chunk compression with zstd and lz4 (lz4 in
 * its frame format, as the MCAP spec requires).
 *
 * The CRC is ISA-L's (carry-less multiplication, some 30 GB/s here against
 * zlib's 2-5 GB/s): at 1 MiB messages recorded uncompressed, zlib's CRC was
 * the recorder thread's largest cost. zlib still combines two CRCs.
 */
#include "mcap_internal.h"

#include <errno.h>
#include <isa-l/crc.h>
#include <lz4frame.h>
#include <stdio.h>
#include <stdlib.h>
#include <zlib.h>
#include <zstd.h>

int mcap_compression_parse(const char *name, enum mcap_compression *out)
{
	if (strcmp(name, "none") == 0 || strcmp(name, "") == 0)
		*out = MCAP_COMPRESSION_NONE;
	else if (strcmp(name, "lz4") == 0)
		*out = MCAP_COMPRESSION_LZ4;
	else if (strcmp(name, "zstd") == 0)
		*out = MCAP_COMPRESSION_ZSTD;
	else
		return -EINVAL;
	return 0;
}

const char *mcap_compression_name(enum mcap_compression c)
{
	switch (c) {
	case MCAP_COMPRESSION_LZ4:
		return "lz4";
	case MCAP_COMPRESSION_ZSTD:
		return "zstd";
	case MCAP_COMPRESSION_NONE:
		break;
	}
	return "";
}

int mcap_buf_reserve(struct mcap_buf *b, size_t extra)
{
	if (b->failed)
		return -ENOMEM;
	if (extra <= b->cap - b->size)
		return 0;
	if (extra > SIZE_MAX / 2 - b->size) {
		b->failed = 1;
		return -ENOMEM;
	}
	size_t cap = b->cap ? b->cap : 4096;
	while (cap - b->size < extra)
		cap *= 2;
	uint8_t *p = realloc(b->data, cap);
	if (!p) {
		b->failed = 1;
		return -ENOMEM;
	}
	b->data = p;
	b->cap = cap;
	return 0;
}

uint8_t *mcap_buf_grow(struct mcap_buf *b, size_t n)
{
	if (n == 0) /* nothing to place (and maybe no buffer yet) */
		return b->data;
	if (mcap_buf_reserve(b, n))
		return NULL;
	uint8_t *p = b->data + b->size;
	b->size += n;
	return p;
}

void mcap_buf_u8(struct mcap_buf *b, uint8_t v)
{
	uint8_t *p = mcap_buf_grow(b, 1);
	if (p)
		*p = v;
}

void mcap_buf_u16(struct mcap_buf *b, uint16_t v)
{
	uint8_t *p = mcap_buf_grow(b, 2);
	if (p)
		mcap_put16(p, v);
}

void mcap_buf_u32(struct mcap_buf *b, uint32_t v)
{
	uint8_t *p = mcap_buf_grow(b, 4);
	if (p)
		mcap_put32(p, v);
}

void mcap_buf_u64(struct mcap_buf *b, uint64_t v)
{
	uint8_t *p = mcap_buf_grow(b, 8);
	if (p)
		mcap_put64(p, v);
}

void mcap_buf_bytes(struct mcap_buf *b, const void *src, size_t n)
{
	uint8_t *p = mcap_buf_grow(b, n);
	if (p && n)
		memcpy(p, src, n);
}

void mcap_buf_str(struct mcap_buf *b, const char *s)
{
	size_t n = s ? strlen(s) : 0;
	if (n > UINT32_MAX) {
		b->failed = 1;
		return;
	}
	mcap_buf_u32(b, (uint32_t)n);
	mcap_buf_bytes(b, s, n);
}

size_t mcap_buf_record_begin(struct mcap_buf *b, uint8_t op)
{
	mcap_buf_u8(b, op);
	size_t at = b->size;
	mcap_buf_u64(b, 0);
	return at;
}

void mcap_buf_record_end(struct mcap_buf *b, size_t len_at)
{
	if (!b->failed)
		mcap_put64(b->data + len_at, b->size - len_at - 8);
}

void mcap_buf_free(struct mcap_buf *b)
{
	free(b->data);
	*b = (struct mcap_buf){ 0 };
}

uint32_t mcap_crc32(uint32_t crc, const void *p, size_t n)
{
	/* The same CRC-32 (IEEE, reflected, inverted in and out) as zlib's
	 * crc32(), chained the same way; test_mcap_file compares the two. */
	return n ? crc32_gzip_refl(crc, p, n) : crc;
}

uint32_t mcap_crc32_combine(uint32_t crc1, uint32_t crc2, uint64_t len2)
{
	return (uint32_t)crc32_combine(crc1, crc2, (z_off_t)len2);
}

int mcap_compress(enum mcap_compression c, int level, void **zctx, const uint8_t *in, size_t n,
		  struct mcap_buf *out, char *err, size_t errlen)
{
	size_t bound, got;

	out->size = 0;
	switch (c) {
	case MCAP_COMPRESSION_ZSTD:
		/* One context for the writer's life: creating one per chunk
		 * allocates (and faults in) megabytes of tables every time. */
		if (!*zctx && !(*zctx = ZSTD_createCCtx()))
			return -ENOMEM;
		bound = ZSTD_compressBound(n);
		if (mcap_buf_reserve(out, bound))
			return -ENOMEM;
		got = ZSTD_compressCCtx(*zctx, out->data, bound, in, n, level);
		if (ZSTD_isError(got)) {
			snprintf(err, errlen, "zstd: %s", ZSTD_getErrorName(got));
			return -EIO;
		}
		break;
	case MCAP_COMPRESSION_LZ4: {
		LZ4F_preferences_t prefs;
		memset(&prefs, 0, sizeof(prefs));
		prefs.frameInfo.contentSize = n;
		prefs.frameInfo.blockSizeID = LZ4F_max4MB;
		bound = LZ4F_compressFrameBound(n, &prefs);
		if (mcap_buf_reserve(out, bound))
			return -ENOMEM;
		got = LZ4F_compressFrame(out->data, bound, in, n, &prefs);
		if (LZ4F_isError(got)) {
			snprintf(err, errlen, "lz4: %s", LZ4F_getErrorName(got));
			return -EIO;
		}
		break;
	}
	case MCAP_COMPRESSION_NONE:
	default:
		snprintf(err, errlen, "no compression to do");
		return -EINVAL;
	}
	out->size = got;
	return 0;
}

void mcap_compress_free(void *zctx)
{
	ZSTD_freeCCtx(zctx);
}

static int lz4_decompress(const uint8_t *in, size_t n, uint8_t *out, size_t expect, char *err,
			  size_t errlen)
{
	LZ4F_dctx *dctx;
	size_t done_in = 0, done_out = 0, hint = 1;

	if (LZ4F_isError(LZ4F_createDecompressionContext(&dctx, LZ4F_VERSION)))
		return -ENOMEM;
	while (hint != 0) {
		size_t src = n - done_in, dst = expect - done_out;
		if (src == 0) {
			snprintf(err, errlen, "lz4 frame ends early (%zu of %zu bytes)", done_out,
				 expect);
			LZ4F_freeDecompressionContext(dctx);
			return -EBADMSG;
		}
		/* out is NULL for an empty chunk: no offset onto it. */
		uint8_t *at = done_out ? out + done_out : out;
		hint = LZ4F_decompress(dctx, at, &dst, in + done_in, &src, NULL);
		if (LZ4F_isError(hint)) {
			snprintf(err, errlen, "lz4: %s", LZ4F_getErrorName(hint));
			LZ4F_freeDecompressionContext(dctx);
			return -EBADMSG;
		}
		done_in += src;
		done_out += dst;
		if (src == 0 && dst == 0 && hint != 0) {
			/* No progress: the output is full but the frame wants more. */
			snprintf(err, errlen, "lz4 frame holds more than the %zu bytes announced",
				 expect);
			LZ4F_freeDecompressionContext(dctx);
			return -EBADMSG;
		}
	}
	LZ4F_freeDecompressionContext(dctx);
	if (done_out != expect || done_in != n) {
		snprintf(err, errlen, "lz4 frame gives %zu bytes from %zu, expected %zu from %zu",
			 done_out, done_in, expect, n);
		return -EBADMSG;
	}
	return 0;
}

int mcap_decompress(enum mcap_compression c, const uint8_t *in, size_t n, uint8_t *out,
		    size_t expect, char *err, size_t errlen)
{
	switch (c) {
	case MCAP_COMPRESSION_ZSTD: {
		size_t got = ZSTD_decompress(out, expect, in, n);
		if (ZSTD_isError(got)) {
			snprintf(err, errlen, "zstd: %s", ZSTD_getErrorName(got));
			return -EBADMSG;
		}
		if (got != expect) {
			snprintf(err, errlen, "zstd frame gives %zu bytes, expected %zu", got,
				 expect);
			return -EBADMSG;
		}
		return 0;
	}
	case MCAP_COMPRESSION_LZ4:
		return lz4_decompress(in, n, out, expect, err, errlen);
	case MCAP_COMPRESSION_NONE:
	default:
		if (n != expect) {
			snprintf(err, errlen, "%zu bytes, expected %zu", n, expect);
			return -EBADMSG;
		}
		if (n)
			memcpy(out, in, n);
		return 0;
	}
}

/* ------------------------------------------------------------ streams */

int mcap_dstream_init(struct mcap_dstream *d, enum mcap_compression kind, const uint8_t *in,
		      size_t n, uint64_t expect, char *err, size_t errlen)
{
	memset(d, 0, sizeof(*d));
	d->kind = kind;
	d->in = in;
	d->n = n;
	d->expect = expect;
	if (kind == MCAP_COMPRESSION_ZSTD) {
		if (!(d->ctx = ZSTD_createDCtx()))
			goto oom;
	} else if (kind == MCAP_COMPRESSION_LZ4) {
		LZ4F_dctx *c;
		if (LZ4F_isError(LZ4F_createDecompressionContext(&c, LZ4F_VERSION)))
			goto oom;
		d->ctx = c;
	} else if (n != expect) {
		snprintf(err, errlen, "%zu bytes stored, %llu announced", n,
			 (unsigned long long)expect);
		return -EBADMSG;
	}
	return 0;
oom:
	snprintf(err, errlen, "out of memory for a decompressor");
	return -ENOMEM;
}

/* One step of the decompressor into out[0..*len): *len gets what it
 * produced. */
static int dstream_step(struct mcap_dstream *d, uint8_t *out, size_t *len, char *err,
			size_t errlen)
{
	size_t want = *len;
	*len = 0;
	if (d->frame_done) {
		snprintf(err, errlen, "the compressed frame ends after %llu of %llu bytes",
			 (unsigned long long)d->out_pos, (unsigned long long)d->expect);
		return -EBADMSG;
	}
	if (d->kind == MCAP_COMPRESSION_ZSTD) {
		ZSTD_inBuffer ib = { d->in, d->n, d->in_pos };
		ZSTD_outBuffer ob = { out, want, 0 };
		size_t r = ZSTD_decompressStream(d->ctx, &ob, &ib);
		if (ZSTD_isError(r)) {
			snprintf(err, errlen, "zstd: %s", ZSTD_getErrorName(r));
			return -EBADMSG;
		}
		bool stuck = ib.pos == d->in_pos && ob.pos == 0;
		d->in_pos = ib.pos;
		*len = ob.pos;
		d->frame_done = r == 0;
		if (stuck && r != 0) {
			snprintf(err, errlen, "zstd frame ends early (%llu of %llu bytes)",
				 (unsigned long long)d->out_pos, (unsigned long long)d->expect);
			return -EBADMSG;
		}
	} else {
		size_t src = d->n - d->in_pos, dst = want;
		size_t hint = LZ4F_decompress(d->ctx, out, &dst, d->in + d->in_pos, &src, NULL);
		if (LZ4F_isError(hint)) {
			snprintf(err, errlen, "lz4: %s", LZ4F_getErrorName(hint));
			return -EBADMSG;
		}
		d->in_pos += src;
		*len = dst;
		d->frame_done = hint == 0;
		if (src == 0 && dst == 0 && hint != 0) {
			snprintf(err, errlen, "lz4 frame ends early (%llu of %llu bytes)",
				 (unsigned long long)d->out_pos, (unsigned long long)d->expect);
			return -EBADMSG;
		}
	}
	return 0;
}

int mcap_dstream_read(struct mcap_dstream *d, uint8_t *out, size_t len, char *err,
		      size_t errlen)
{
	if (len > d->expect - d->out_pos) {
		snprintf(err, errlen, "reading %zu bytes past the %llu the chunk announces", len,
			 (unsigned long long)d->expect);
		return -EBADMSG;
	}
	if (d->kind == MCAP_COMPRESSION_NONE) {
		memcpy(out, d->in + d->in_pos, len);
		d->in_pos += len;
		d->out_pos += len;
		return 0;
	}
	while (len) {
		size_t step = len;
		int rc = dstream_step(d, out, &step, err, errlen);
		if (rc)
			return rc;
		d->out_pos += step;
		len -= step;
		out += step;
	}
	return 0;
}

int mcap_dstream_finish(struct mcap_dstream *d, char *err, size_t errlen)
{
	if (d->kind == MCAP_COMPRESSION_NONE)
		return 0;
	/* The frame may end only after a last, empty step. */
	uint8_t extra;
	size_t n = 1;
	if (!d->frame_done) {
		int rc = dstream_step(d, &extra, &n, err, errlen);
		if (rc)
			return rc;
		if (n) {
			snprintf(err, errlen, "the compressed frame holds more than the %llu bytes "
					      "announced", (unsigned long long)d->expect);
			return -EBADMSG;
		}
	}
	if (!d->frame_done || d->in_pos != d->n) {
		snprintf(err, errlen, "the compressed frame %s (%zu of %zu bytes read)",
			 d->frame_done ? "is followed by more bytes" : "does not end",
			 d->in_pos, d->n);
		return -EBADMSG;
	}
	return 0;
}

void mcap_dstream_free(struct mcap_dstream *d)
{
	if (d->kind == MCAP_COMPRESSION_ZSTD)
		ZSTD_freeDCtx(d->ctx);
	else if (d->kind == MCAP_COMPRESSION_LZ4 && d->ctx)
		LZ4F_freeDecompressionContext(d->ctx);
	d->ctx = NULL;
}
