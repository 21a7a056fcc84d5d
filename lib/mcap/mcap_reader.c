/*
 * mcap_reader.c - reads MCAP files, trusting nothing in them: every length
 * is checked against what is left of its record, chunk or file, and every
 * failure names the offset where the file went wrong.
 *
 * Opening takes the fast path when the file ends in magic and a Footer
 * whose summary CRC holds: channels, schemas and counts come from the
 * summary. Otherwise (recorder killed, disk full) the data section is
 * scanned forward, chunk by chunk, up to the last complete record, and the
 * file is reported incomplete. Messages are then read in file order.
 *
 * Memory follows what is read, not what the file claims: a chunk is
 * decompressed whole (and its CRC checked before any of its messages is
 * handed out) only up to MCAP_CHUNK_INMEM; a larger one is streamed
 * record by record, its CRC checked at its end, and a scan that only
 * counts skips message bodies. Channels and schemas are found by id in a
 * table, so loading many costs linear time.
 */
#include "mcap_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

/* A chunk may not claim more than this uncompressed. */
#define MCAP_MAX_CHUNK ((uint64_t)1 << 32)
/* Chunks up to this size are decompressed whole; larger ones streamed. */
#define MCAP_CHUNK_INMEM ((uint64_t)64 << 20)
/* Bytes skipped at a time when a streamed record is not kept. */
#define MCAP_SKIP_STEP 65536

struct rmeta {
	char *name;
	struct mcap_kv *kv;
	size_t n;
};

struct damage {
	uint64_t from, to;
	char *why;
};

struct mcap_reader {
	int fd;
	const uint8_t *base;
	uint64_t size;
	char *path;
	unsigned flags;
	struct mcap_info info;
	char err[320];

	/* Sorted by id whenever handed out (mcap_reader_channels()); appended
	 * while loading, with by-id tables of index + 1 (0: none). */
	struct mcap_schema *schemas;
	size_t n_schemas, cap_schemas;
	struct mcap_channel *channels;
	size_t n_channels, cap_channels;
	uint32_t *schema_at, *channel_at; /* [65536] */
	bool sorted;
	uint64_t *meta_offsets; /* Metadata records, parsed on demand */
	size_t n_meta;
	struct rmeta *meta;

	uint64_t data_start, data_end;
	/* The Chunk offsets the summary's ChunkIndex records give, sorted and
	 * unique: the walk of the data section must land on each in turn, so
	 * a damaged byte that turns a chunk into some other record (skipped,
	 * as the spec says unknown records are) or makes the walk step over
	 * one is an error, not messages silently missing. */
	uint64_t *chunk_offs;
	size_t n_chunk_offs, cap_chunk_offs;
	/* MCAP_READ_SALVAGE: the ranges skipped as damaged, in file order, and
	 * the offsets an intact summary vouches for (chunks, metadata, DataEnd),
	 * sorted: places to resume after damage. */
	struct damage *damage;
	size_t n_damage, cap_damage, next_damage;
	uint64_t *anchors;
	size_t n_anchors;
	/* iteration */
	uint64_t pos;
	size_t next_chunk; /* chunk_offs[next_chunk] is the next one due */
	uint8_t prev_op;   /* of the record before pos */
	uint8_t *chunk; /* the whole chunk, or (streamed) the current record */
	size_t chunk_cap;
	uint64_t chunk_size, chunk_pos;
	uint64_t chunk_off;
	bool in_chunk;
	bool streamed;
	struct mcap_dstream ds;
	uint32_t crc, want_crc; /* streamed: of what was read, and stored */
};

__attribute__((format(printf, 3, 4)))
static int bad(mcap_reader *r, int rc, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(r->err, sizeof(r->err), fmt, ap);
	va_end(ap);
	return rc;
}

/* A bounded view of bytes, with the file offset of its first byte for
 * error messages. */
struct cur {
	const uint8_t *p;
	uint64_t n;
	uint64_t off; /* file offset of p (or of the chunk, for chunk data) */
	const char *what;
};

static bool cur_take(struct cur *c, uint64_t n, const uint8_t **out)
{
	if (n > c->n)
		return false;
	*out = c->p;
	c->p += n;
	c->n -= n;
	c->off += n;
	return true;
}

static bool cur_u16(struct cur *c, uint16_t *v)
{
	const uint8_t *p;
	if (!cur_take(c, 2, &p))
		return false;
	*v = mcap_get16(p);
	return true;
}

static bool cur_u32(struct cur *c, uint32_t *v)
{
	const uint8_t *p;
	if (!cur_take(c, 4, &p))
		return false;
	*v = mcap_get32(p);
	return true;
}

static bool cur_u64(struct cur *c, uint64_t *v)
{
	const uint8_t *p;
	if (!cur_take(c, 8, &p))
		return false;
	*v = mcap_get64(p);
	return true;
}

/* A length-prefixed string as a new NUL-terminated copy. */
static bool cur_str(struct cur *c, char **out)
{
	uint32_t n;
	const uint8_t *p;
	if (!cur_u32(c, &n) || !cur_take(c, n, &p))
		return false;
	char *s = malloc((size_t)n + 1);
	if (!s)
		return false;
	memcpy(s, p, n);
	s[n] = 0;
	*out = s;
	return true;
}

static bool cur_str_into(struct cur *c, char *buf, size_t cap)
{
	uint32_t n;
	const uint8_t *p;
	if (!cur_u32(c, &n) || !cur_take(c, n, &p))
		return false;
	size_t k = n < cap - 1 ? n : cap - 1;
	memcpy(buf, p, k);
	buf[k] = 0;
	return true;
}

static void free_kv(struct mcap_kv *kv, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free((char *)kv[i].key);
		free((char *)kv[i].value);
	}
	free(kv);
}

static bool cur_map_kv(struct cur *c, struct mcap_kv **out, size_t *n_out)
{
	uint32_t len;
	const uint8_t *p;
	if (!cur_u32(c, &len) || !cur_take(c, len, &p))
		return false;
	struct cur m = { p, len, c->off - len, c->what };
	struct mcap_kv *kv = NULL;
	size_t n = 0;
	while (m.n) {
		struct mcap_kv *v = realloc(kv, (n + 1) * sizeof(*v));
		if (!v)
			goto fail;
		kv = v;
		char *k = NULL, *val = NULL;
		if (!cur_str(&m, &k))
			goto fail;
		if (!cur_str(&m, &val)) {
			free(k);
			goto fail;
		}
		kv[n].key = k;
		kv[n].value = val;
		n++;
	}
	*out = kv;
	*n_out = n;
	return true;
fail:
	free_kv(kv, n);
	return false;
}

/* Room for one more entry of an array that grows geometrically. */
static void *grow(void *v, size_t n, size_t *cap, size_t size)
{
	if (n < *cap)
		return v;
	size_t c = *cap ? *cap * 2 : 16;
	void *p = realloc(v, c * size);
	if (p)
		*cap = c;
	return p;
}

static bool tables(mcap_reader *r)
{
	if (!r->schema_at)
		r->schema_at = calloc(65536, sizeof(uint32_t));
	if (!r->channel_at)
		r->channel_at = calloc(65536, sizeof(uint32_t));
	return r->schema_at && r->channel_at;
}

static int add_schema(mcap_reader *r, const uint8_t *p, uint64_t len, uint64_t off)
{
	struct cur c = { p, len, off, "schema" };
	struct mcap_schema s = { 0 };
	uint32_t dlen;
	const uint8_t *d;
	if (!cur_u16(&c, &s.id) || !cur_str(&c, &s.name) || !cur_str(&c, &s.encoding) ||
	    !cur_u32(&c, &dlen) || !cur_take(&c, dlen, &d)) {
		free(s.name);
		free(s.encoding);
		return bad(r, -EBADMSG, "%s: malformed Schema record at offset %llu", r->path,
			   (unsigned long long)off);
	}
	/* id 0 is invalid and ignored; a repeated id is the same schema. */
	if (s.id == 0 || mcap_reader_schema(r, s.id)) {
		free(s.name);
		free(s.encoding);
		return 0;
	}
	s.data = malloc(dlen ? dlen : 1);
	struct mcap_schema *v = grow(r->schemas, r->n_schemas, &r->cap_schemas, sizeof(*v));
	if (!s.data || !v || !tables(r)) {
		free(s.data);
		free(s.name);
		free(s.encoding);
		if (v)
			r->schemas = v;
		return bad(r, -ENOMEM, "out of memory");
	}
	if (dlen)
		memcpy(s.data, d, dlen);
	s.size = dlen;
	r->schemas = v;
	v[r->n_schemas++] = s;
	r->schema_at[s.id] = (uint32_t)r->n_schemas;
	r->sorted = false;
	return 0;
}

static void free_channel(struct mcap_channel *ch)
{
	free(ch->topic);
	free(ch->message_encoding);
	free_kv(ch->metadata, ch->n_metadata);
}

static int add_channel(mcap_reader *r, const uint8_t *p, uint64_t len, uint64_t off)
{
	struct cur c = { p, len, off, "channel" };
	struct mcap_channel ch = { 0 };
	if (!cur_u16(&c, &ch.id) || !cur_u16(&c, &ch.schema_id) || !cur_str(&c, &ch.topic) ||
	    !cur_str(&c, &ch.message_encoding) || !cur_map_kv(&c, &ch.metadata, &ch.n_metadata)) {
		free_channel(&ch);
		return bad(r, -EBADMSG, "%s: malformed Channel record at offset %llu", r->path,
			   (unsigned long long)off);
	}
	if (mcap_reader_channel(r, ch.id)) {
		free_channel(&ch);
		return 0;
	}
	struct mcap_channel *v = grow(r->channels, r->n_channels, &r->cap_channels, sizeof(*v));
	if (!v || !tables(r)) {
		free_channel(&ch);
		if (v)
			r->channels = v;
		return bad(r, -ENOMEM, "out of memory");
	}
	r->channels = v;
	v[r->n_channels++] = ch;
	r->channel_at[ch.id] = (uint32_t)r->n_channels;
	r->sorted = false;
	return 0;
}

static int by_channel_id(const void *a, const void *b)
{
	return (int)((const struct mcap_channel *)a)->id - (int)((const struct mcap_channel *)b)->id;
}

static int by_schema_id(const void *a, const void *b)
{
	return (int)((const struct mcap_schema *)a)->id - (int)((const struct mcap_schema *)b)->id;
}

/* Sorts both arrays by id and renumbers the tables: O(n log n), once. */
static void sort_tables(mcap_reader *r)
{
	if (r->sorted)
		return;
	if (r->n_channels)
		qsort(r->channels, r->n_channels, sizeof(*r->channels), by_channel_id);
	if (r->n_schemas)
		qsort(r->schemas, r->n_schemas, sizeof(*r->schemas), by_schema_id);
	for (size_t i = 0; i < r->n_channels; i++)
		r->channel_at[r->channels[i].id] = (uint32_t)i + 1;
	for (size_t i = 0; i < r->n_schemas; i++)
		r->schema_at[r->schemas[i].id] = (uint32_t)i + 1;
	r->sorted = true;
}

/* Forgets the channels and schemas added after the first n_channels and
 * n_schemas (the tables are in the order they were added: nothing sorts
 * them while a file is opened). */
static void forget_tables(mcap_reader *r, size_t n_channels, size_t n_schemas)
{
	while (r->n_channels > n_channels) {
		struct mcap_channel *ch = &r->channels[--r->n_channels];
		r->channel_at[ch->id] = 0;
		free_channel(ch);
	}
	while (r->n_schemas > n_schemas) {
		struct mcap_schema *sc = &r->schemas[--r->n_schemas];
		r->schema_at[sc->id] = 0;
		free(sc->name);
		free(sc->encoding);
		free(sc->data);
	}
}

static int add_meta_offset(mcap_reader *r, uint64_t off)
{
	uint64_t *v = realloc(r->meta_offsets, (r->n_meta + 1) * sizeof(*v));
	if (!v)
		return bad(r, -ENOMEM, "out of memory");
	r->meta_offsets = v;
	v[r->n_meta++] = off;
	return 0;
}

/* The record at file offset `off`, bounded by `limit`: 1 and its opcode
 * and content, 0 if it does not fit (cut short). */
static int record_at(const mcap_reader *r, uint64_t off, uint64_t limit, uint8_t *op,
		     const uint8_t **content, uint64_t *len)
{
	if (off > limit || limit - off < MCAP_RECORD_PREFIX)
		return 0;
	uint64_t l = mcap_get64(r->base + off + 1);
	if (l > limit - off - MCAP_RECORD_PREFIX)
		return 0;
	*op = r->base[off];
	*content = r->base + off + MCAP_RECORD_PREFIX;
	*len = l;
	return 1;
}

static int grow_chunk(mcap_reader *r, uint64_t n)
{
	if (n <= r->chunk_cap)
		return 0;
	uint8_t *b = realloc(r->chunk, (size_t)n);
	if (!b)
		return bad(r, -ENOMEM, "%s: chunk at offset %llu: out of memory for %llu bytes",
			   r->path, (unsigned long long)r->chunk_off, (unsigned long long)n);
	r->chunk = b;
	r->chunk_cap = (size_t)n;
	return 0;
}

/* Opens the Chunk record at `off`: decompressed whole and checked when it
 * is small, else set up to be streamed. */
static int load_chunk(mcap_reader *r, uint64_t off, const uint8_t *p, uint64_t len)
{
	struct cur c = { p, len, off + MCAP_RECORD_PREFIX, "chunk" };
	uint64_t start, end, usize, csize;
	uint32_t crc;
	char comp[32], why[160] = "";
	const uint8_t *data;
	enum mcap_compression kind;
	if (!cur_u64(&c, &start) || !cur_u64(&c, &end) || !cur_u64(&c, &usize) ||
	    !cur_u32(&c, &crc) || !cur_str_into(&c, comp, sizeof(comp)) || !cur_u64(&c, &csize) ||
	    !cur_take(&c, csize, &data))
		return bad(r, -EBADMSG, "%s: malformed Chunk record at offset %llu", r->path,
			   (unsigned long long)off);
	if (mcap_compression_parse(comp, &kind) || strcmp(comp, "none") == 0)
		return bad(r, -EBADMSG, "%s: chunk at offset %llu: unknown compression '%s'",
			   r->path, (unsigned long long)off, comp);
	if (usize > MCAP_MAX_CHUNK || (kind == MCAP_COMPRESSION_NONE && usize != csize))
		return bad(r, -EBADMSG,
			   "%s: chunk at offset %llu: implausible uncompressed size %llu "
			   "(%llu bytes stored)",
			   r->path, (unsigned long long)off, (unsigned long long)usize,
			   (unsigned long long)csize);
	if (kind == MCAP_COMPRESSION_ZSTD) {
		unsigned long long fs = ZSTD_getFrameContentSize(data, csize);
		if (fs == ZSTD_CONTENTSIZE_ERROR || (fs != ZSTD_CONTENTSIZE_UNKNOWN && fs != usize))
			return bad(r, -EBADMSG,
				   "%s: chunk at offset %llu: zstd frame does not hold the "
				   "%llu bytes the chunk announces",
				   r->path, (unsigned long long)off, (unsigned long long)usize);
	}
	mcap_dstream_free(&r->ds);
	r->chunk_off = off;
	r->chunk_size = usize;
	r->chunk_pos = 0;
	r->streamed = usize > MCAP_CHUNK_INMEM;
	if (r->streamed) {
		int rc = mcap_dstream_init(&r->ds, kind, data, csize, usize, why, sizeof(why));
		r->crc = mcap_crc32(0, NULL, 0);
		r->want_crc = crc;
		return rc ? bad(r, rc, "%s: chunk at offset %llu: %s", r->path,
				(unsigned long long)off, why)
			  : 0;
	}
	int rc = grow_chunk(r, usize);
	if (rc)
		return rc;
	rc = mcap_decompress(kind, data, csize, r->chunk, usize, why, sizeof(why));
	if (rc)
		return bad(r, rc, "%s: chunk at offset %llu does not decompress: %s", r->path,
			   (unsigned long long)off, why);
	if (crc) {
		uint32_t got = mcap_crc32(mcap_crc32(0, NULL, 0), r->chunk, usize);
		if (got != crc)
			return bad(r, -EBADMSG,
				   "%s: chunk at offset %llu: CRC mismatch (stored %08x, data "
				   "%08x)",
				   r->path, (unsigned long long)off, crc, got);
	}
	return 0;
}

/* n bytes of a streamed chunk into dst, adding them to its CRC. */
static int stream_read(mcap_reader *r, uint8_t *dst, size_t n)
{
	char why[160];
	int rc = mcap_dstream_read(&r->ds, dst, n, why, sizeof(why));
	if (rc)
		return bad(r, rc, "%s: chunk at offset %llu does not decompress: %s", r->path,
			   (unsigned long long)r->chunk_off, why);
	r->crc = mcap_crc32(r->crc, dst, n);
	r->chunk_pos += n;
	return 0;
}

/* The end of a streamed chunk: the frame ends here and the CRC holds. */
static int stream_end(mcap_reader *r)
{
	char why[160];
	int rc = mcap_dstream_finish(&r->ds, why, sizeof(why));
	mcap_dstream_free(&r->ds);
	if (rc)
		return bad(r, rc, "%s: chunk at offset %llu does not decompress: %s", r->path,
			   (unsigned long long)r->chunk_off, why);
	if (r->want_crc && r->crc != r->want_crc)
		return bad(r, -EBADMSG,
			   "%s: chunk at offset %llu: CRC mismatch (stored %08x, data %08x)",
			   r->path, (unsigned long long)r->chunk_off, r->want_crc, r->crc);
	return 0;
}

/* The next record of the current chunk: 1 with its opcode and content
 * (a message's body only if `body`: else *len is its full length but
 * only its fixed fields are there), 0 at the chunk's end, or an error. */
static int chunk_record(mcap_reader *r, bool body, uint8_t *op, const uint8_t **content,
			uint64_t *len)
{
	uint64_t left = r->chunk_size - r->chunk_pos, at = r->chunk_pos;
	if (left == 0)
		return r->streamed ? stream_end(r) : 0;
	uint8_t hdr[MCAP_RECORD_PREFIX];
	const uint8_t *h = hdr;
	int rc;
	if (!r->streamed)
		h = r->chunk + r->chunk_pos;
	else if (left >= MCAP_RECORD_PREFIX && (rc = stream_read(r, hdr, sizeof(hdr))) != 0)
		return rc;
	if (left < MCAP_RECORD_PREFIX || mcap_get64(h + 1) > left - MCAP_RECORD_PREFIX)
		return bad(r, -EBADMSG,
			   "%s: chunk at offset %llu: record at byte %llu of its data runs past "
			   "its end",
			   r->path, (unsigned long long)r->chunk_off, (unsigned long long)at);
	*op = h[0];
	*len = mcap_get64(h + 1);
	if (!r->streamed) {
		*content = h + MCAP_RECORD_PREFIX;
		r->chunk_pos += MCAP_RECORD_PREFIX + *len;
		return 1;
	}
	/* Streamed: keep what is needed, read past the rest. */
	uint64_t keep = *len;
	if (*op == MCAP_OP_MESSAGE && !body)
		keep = *len < MCAP_MESSAGE_FIXED ? *len : MCAP_MESSAGE_FIXED;
	else if (*op != MCAP_OP_MESSAGE && *op != MCAP_OP_SCHEMA && *op != MCAP_OP_CHANNEL)
		keep = 0;
	/* The kept bytes, then room to read the skipped ones through. */
	if ((rc = grow_chunk(r, keep + (keep < *len ? MCAP_SKIP_STEP : 0))) != 0 ||
	    (rc = stream_read(r, r->chunk, (size_t)keep)) != 0)
		return rc;
	for (uint64_t skip = *len - keep; skip;) {
		size_t step = skip < MCAP_SKIP_STEP ? (size_t)skip : MCAP_SKIP_STEP;
		if ((rc = stream_read(r, r->chunk + keep, step)) != 0)
			return rc;
		skip -= step;
	}
	*content = r->chunk;
	return 1;
}

/* Message record content -> msg (data pointing into p). */
static int parse_message(mcap_reader *r, const uint8_t *p, uint64_t len, uint64_t off,
			 struct mcap_message *msg)
{
	if (len < MCAP_MESSAGE_FIXED)
		return bad(r, -EBADMSG, "%s: Message record at offset %llu is too short (%llu bytes)",
			   r->path, (unsigned long long)off, (unsigned long long)len);
	msg->channel_id = mcap_get16(p);
	msg->sequence = mcap_get32(p + 2);
	msg->log_time = mcap_get64(p + 6);
	msg->publish_time = mcap_get64(p + 14);
	msg->data = p + MCAP_MESSAGE_FIXED;
	msg->size = (size_t)(len - MCAP_MESSAGE_FIXED);
	msg->offset = off;
	if (!mcap_reader_channel(r, msg->channel_id))
		return bad(r, -EBADMSG, "%s: message at offset %llu is on channel %u, which has no "
				       "Channel record before it",
			   r->path, (unsigned long long)off, msg->channel_id);
	return 0;
}

static void count_message(mcap_reader *r, const struct mcap_message *m)
{
	struct mcap_channel *ch = (struct mcap_channel *)mcap_reader_channel(r, m->channel_id);
	if (!ch)
		return;
	ch->message_count++;
	if (m->size > ch->max_message_size)
		ch->max_message_size = m->size;
	struct mcap_info *in = &r->info;
	if (in->message_count == 0 || m->log_time < in->start_time)
		in->start_time = m->log_time;
	if (in->message_count == 0 || m->log_time > in->end_time)
		in->end_time = m->log_time;
	in->message_count++;
}

/* The next message inside the current chunk: 1, 0 at its end, or an
 * error. Schema and Channel records are registered on the way. Without
 * `body` (counting), a message's data is not read: msg->data is NULL. */
static int chunk_next(mcap_reader *r, struct mcap_message *msg, bool body)
{
	for (;;) {
		uint64_t at = r->chunk_pos, len = 0;
		uint8_t op = 0;
		const uint8_t *p = NULL;
		int rc = chunk_record(r, body, &op, &p, &len);
		if (rc <= 0)
			return rc;
		switch (op) {
		case MCAP_OP_SCHEMA:
			rc = add_schema(r, p, len, r->chunk_off);
			break;
		case MCAP_OP_CHANNEL:
			rc = add_channel(r, p, len, r->chunk_off);
			break;
		case MCAP_OP_MESSAGE:
			rc = parse_message(r, p, len, r->chunk_off, msg);
			if (rc == 0) {
				if (r->streamed && !body)
					msg->data = NULL;
				return 1;
			}
			break;
		case 0:
		case MCAP_OP_CHUNK:
			return bad(r, -EBADMSG,
				   "%s: chunk at offset %llu: record with opcode 0x%02x at byte %llu "
				   "is not allowed in a chunk",
				   r->path, (unsigned long long)r->chunk_off, op,
				   (unsigned long long)at);
		default:
			break; /* other opcodes: skipped, as the spec asks */
		}
		if (rc)
			return rc;
	}
}

/* Whether the file ends in a Footer and magic; *footer_off if so. */
static bool find_footer(const mcap_reader *r, uint64_t *footer_off)
{
	if (r->size < r->data_start + MCAP_FOOTER_SIZE + MCAP_MAGIC_SIZE)
		return false;
	uint64_t f = r->size - MCAP_MAGIC_SIZE - MCAP_FOOTER_SIZE;
	if (memcmp(r->base + r->size - MCAP_MAGIC_SIZE, MCAP_MAGIC, MCAP_MAGIC_SIZE) != 0 ||
	    r->base[f] != MCAP_OP_FOOTER || mcap_get64(r->base + f + 1) != 20)
		return false;
	*footer_off = f;
	return true;
}

/* CRC of [0, off) against the DataEnd record at off. */
static int check_data_crc(mcap_reader *r, uint64_t off, const uint8_t *p, uint64_t len)
{
	if (len < 4)
		return bad(r, -EBADMSG, "%s: DataEnd record at offset %llu is too short", r->path,
			   (unsigned long long)off);
	uint32_t want = mcap_get32(p);
	if (want == 0)
		return 0;
	uint32_t got = mcap_crc32(mcap_crc32(0, NULL, 0), r->base, off);
	if (got != want)
		return bad(r, -EBADMSG,
			   "%s: data section CRC mismatch (DataEnd at offset %llu says %08x, "
			   "bytes 0..%llu give %08x)",
			   r->path, (unsigned long long)off, want, (unsigned long long)off, got);
	return 0;
}

static int summary_statistics(mcap_reader *r, struct cur *c, uint64_t off)
{
	struct mcap_info *in = &r->info;
	uint16_t ns;
	uint32_t nc, maplen;
	const uint8_t *m;
	if (!cur_u64(c, &in->message_count) || !cur_u16(c, &ns) || !cur_u32(c, &nc) ||
	    !cur_u32(c, &in->attachment_count) || !cur_u32(c, &in->metadata_count) ||
	    !cur_u32(c, &in->chunk_count) || !cur_u64(c, &in->start_time) ||
	    !cur_u64(c, &in->end_time) || !cur_u32(c, &maplen) || !cur_take(c, maplen, &m) ||
	    maplen % 10)
		return bad(r, -EBADMSG, "%s: malformed Statistics record at offset %llu", r->path,
			   (unsigned long long)off);
	for (uint32_t i = 0; i < maplen; i += 10) {
		struct mcap_channel *ch =
			(struct mcap_channel *)mcap_reader_channel(r, mcap_get16(m + i));
		if (ch)
			ch->message_count = mcap_get64(m + i + 2);
	}
	return 0;
}

static int summary_chunk_index(mcap_reader *r, struct cur *c, uint64_t off, uint64_t ss)
{
	struct mcap_info *in = &r->info;
	uint64_t t0, t1, co, cl, mil, csize, usize;
	uint32_t maplen;
	const uint8_t *m;
	char comp[32];
	if (!cur_u64(c, &t0) || !cur_u64(c, &t1) || !cur_u64(c, &co) || !cur_u64(c, &cl) ||
	    !cur_u32(c, &maplen) || !cur_take(c, maplen, &m) || !cur_u64(c, &mil) ||
	    !cur_str_into(c, comp, sizeof(comp)) || !cur_u64(c, &csize) || !cur_u64(c, &usize))
		return bad(r, -EBADMSG, "%s: malformed ChunkIndex record at offset %llu", r->path,
			   (unsigned long long)off);
	if (co < r->data_start || co > ss || cl > ss - co)
		return bad(r, -EBADMSG,
			   "%s: ChunkIndex at offset %llu points outside the data section (chunk "
			   "at %llu, %llu bytes)",
			   r->path, (unsigned long long)off, (unsigned long long)co,
			   (unsigned long long)cl);
	uint64_t *offs = grow(r->chunk_offs, r->n_chunk_offs, &r->cap_chunk_offs, sizeof(*offs));
	if (!offs)
		return bad(r, -ENOMEM, "out of memory");
	r->chunk_offs = offs;
	offs[r->n_chunk_offs++] = co;
	if (strcmp(comp, "zstd") == 0)
		in->chunks_zstd++;
	else if (strcmp(comp, "lz4") == 0)
		in->chunks_lz4++;
	else
		in->chunks_none++;
	in->compressed_bytes += csize;
	in->uncompressed_bytes += usize;
	return 0;
}

static int summary_metadata_index(mcap_reader *r, struct cur *c, uint64_t off, uint64_t ss)
{
	uint64_t mo, ml;
	if (!cur_u64(c, &mo) || !cur_u64(c, &ml))
		return bad(r, -EBADMSG, "%s: malformed MetadataIndex record at offset %llu",
			   r->path, (unsigned long long)off);
	if (mo < r->data_start || mo > ss || ml > ss - mo)
		return bad(r, -EBADMSG,
			   "%s: MetadataIndex at offset %llu points outside the data section",
			   r->path, (unsigned long long)off);
	return add_meta_offset(r, mo);
}

/* The footer's summary position and CRC. 0: *ss.. *end is the summary to
 * read; 1: there is none; < 0: corrupt. */
static int summary_bounds(mcap_reader *r, uint64_t footer_off, uint64_t *ss, uint64_t *end)
{
	const uint8_t *f = r->base + footer_off + MCAP_RECORD_PREFIX;
	uint64_t sos = mcap_get64(f + 8);
	uint32_t crc = mcap_get32(f + 16);
	*ss = mcap_get64(f);
	if (*ss == 0)
		return 1;
	if (*ss < r->data_start || *ss > footer_off || (sos && (sos < *ss || sos > footer_off)))
		return bad(r, -EBADMSG,
			   "%s: footer at offset %llu points at a summary outside the file "
			   "(summary_start %llu, summary_offset_start %llu)",
			   r->path, (unsigned long long)footer_off, (unsigned long long)*ss,
			   (unsigned long long)sos);
	if (crc) {
		uint32_t got = mcap_crc32(mcap_crc32(0, NULL, 0), r->base + *ss,
					  footer_off + MCAP_RECORD_PREFIX + 16 - *ss);
		if (got != crc)
			return bad(r, -EBADMSG,
				   "%s: summary CRC mismatch (footer at offset %llu says %08x, "
				   "summary from offset %llu gives %08x)",
				   r->path, (unsigned long long)footer_off, crc,
				   (unsigned long long)*ss, got);
	}
	*end = sos ? sos : footer_off;
	return 0;
}

/* With MCAP_READ_VERIFY_DATA_CRC: the DataEnd right before the summary,
 * as the spec draws it. 1: not there (let the scan find it). */
static int summary_data_crc(mcap_reader *r, uint64_t ss)
{
	uint64_t de = ss >= MCAP_RECORD_PREFIX + 4 ? ss - MCAP_RECORD_PREFIX - 4 : 0;
	if (de < r->data_start || r->base[de] != MCAP_OP_DATA_END ||
	    mcap_get64(r->base + de + 1) != 4)
		return 1;
	return check_data_crc(r, de, r->base + de + MCAP_RECORD_PREFIX, 4);
}

static int by_offset(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* ChunkIndex records may come in any order, and name a chunk twice. */
static void sort_chunk_offsets(mcap_reader *r)
{
	size_t n = 0;
	if (r->n_chunk_offs)
		qsort(r->chunk_offs, r->n_chunk_offs, sizeof(uint64_t), by_offset);
	for (size_t i = 0; i < r->n_chunk_offs; i++)
		if (n == 0 || r->chunk_offs[i] != r->chunk_offs[n - 1])
			r->chunk_offs[n++] = r->chunk_offs[i];
	r->n_chunk_offs = n;
}

/* Read the summary named by the footer. 0: done; 1: nothing usable there
 * (scan instead); < 0: corrupt. */
static int read_summary(mcap_reader *r, uint64_t footer_off)
{
	uint64_t ss = 0, end = 0;
	int rc = summary_bounds(r, footer_off, &ss, &end);
	bool have_stats = false;
	for (uint64_t off = ss; rc == 0 && off < end;) {
		uint8_t op;
		const uint8_t *p;
		uint64_t len;
		if (!record_at(r, off, end, &op, &p, &len))
			return bad(r, -EBADMSG, "%s: summary record at offset %llu runs past the "
					       "summary's end (%llu)",
				   r->path, (unsigned long long)off, (unsigned long long)end);
		struct cur c = { p, len, off, "summary" };
		if (op == MCAP_OP_SCHEMA)
			rc = add_schema(r, p, len, off);
		else if (op == MCAP_OP_CHANNEL)
			rc = add_channel(r, p, len, off);
		else if (op == MCAP_OP_STATISTICS)
			rc = summary_statistics(r, &c, off);
		else if (op == MCAP_OP_CHUNK_INDEX)
			rc = summary_chunk_index(r, &c, off, ss);
		else if (op == MCAP_OP_METADATA_INDEX)
			rc = summary_metadata_index(r, &c, off, ss);
		have_stats |= op == MCAP_OP_STATISTICS;
		off += MCAP_RECORD_PREFIX + len;
	}
	if (rc)
		return rc;
	if (!have_stats)
		return 1;
	sort_chunk_offsets(r);
	r->data_end = ss;
	if ((r->flags & MCAP_READ_VERIFY_DATA_CRC) && (rc = summary_data_crc(r, ss)) != 0)
		return rc;
	r->info.complete = true;
	return 0;
}

/* A MessageIndex record comes right after a Chunk or another
 * MessageIndex ("a sequence of Message Index records occurs immediately
 * after each chunk", says the spec), and its lengths add up. One anywhere
 * else means the record before it was a Chunk once: with its opcode
 * damaged, the walk would skip it as an unknown record and its messages
 * would be silently missing. */
static int check_message_index(mcap_reader *r, uint8_t prev_op, const uint8_t *p, uint64_t len,
			       uint64_t off)
{
	if (prev_op != MCAP_OP_CHUNK && prev_op != MCAP_OP_MESSAGE_INDEX)
		return bad(r, -EBADMSG,
			   "%s: MessageIndex record at offset %llu follows no Chunk (the record "
			   "before it, opcode 0x%02x, may be a damaged Chunk)",
			   r->path, (unsigned long long)off, prev_op);
	if (len < 6 || mcap_get32(p + 2) != len - 6 || (len - 6) % 16)
		return bad(r, -EBADMSG, "%s: malformed MessageIndex record at offset %llu", r->path,
			   (unsigned long long)off);
	return 0;
}

/* ------------------------------------------------------------- salvage */

/* Whether the Chunk record at off is whole: it decompresses, its CRC holds
 * (and it has one, with `need_crc`), and every record in it parses. Leaves
 * nothing registered. */
static int chunk_whole(mcap_reader *r, uint64_t off, const uint8_t *p, uint64_t len,
		       bool need_crc)
{
	if (need_crc && (len < 28 || mcap_get32(p + 24) == 0))
		return bad(r, -EBADMSG, "%s: chunk at offset %llu has no CRC", r->path,
			   (unsigned long long)off);
	size_t nc = r->n_channels, ns = r->n_schemas;
	struct mcap_message m;
	int rc = load_chunk(r, off, p, len);
	while (rc == 0 && (rc = chunk_next(r, &m, false)) == 1)
		rc = 0;
	forget_tables(r, nc, ns);
	return rc;
}

static bool cur_skip(struct cur *c)
{
	uint32_t n;
	const uint8_t *d;
	return cur_u32(c, &n) && cur_take(c, n, &d);
}

/* Whether a record of the data section outside chunks is one the spec
 * puts there and its fields fill it exactly, so that a damaged length
 * cannot swallow what follows it unseen. */
static bool record_whole(uint8_t op, const uint8_t *p, uint64_t len)
{
	struct cur c = { p, len, 0, "record" };
	uint64_t u;
	uint16_t id;
	const uint8_t *d;
	bool ok;
	switch (op) {
	case MCAP_OP_SCHEMA:
		ok = cur_u16(&c, &id) && cur_skip(&c) && cur_skip(&c) && cur_skip(&c);
		break;
	case MCAP_OP_CHANNEL:
		ok = cur_u16(&c, &id) && cur_u16(&c, &id) && cur_skip(&c) && cur_skip(&c) &&
		     cur_skip(&c);
		break;
	case MCAP_OP_METADATA:
		ok = cur_skip(&c) && cur_skip(&c);
		break;
	case MCAP_OP_ATTACHMENT:
		ok = cur_u64(&c, &u) && cur_u64(&c, &u) && cur_skip(&c) && cur_skip(&c) &&
		     cur_u64(&c, &u) && cur_take(&c, u, &d) && cur_take(&c, 4, &d);
		break;
	case MCAP_OP_CHUNK:
		ok = cur_u64(&c, &u) && cur_u64(&c, &u) && cur_u64(&c, &u) && cur_take(&c, 4, &d) &&
		     cur_skip(&c) && cur_u64(&c, &u) && cur_take(&c, u, &d);
		break;
	case MCAP_OP_MESSAGE:
	case MCAP_OP_MESSAGE_INDEX:
	case MCAP_OP_DATA_END:
		return true; /* checked where they are read */
	default:
		return false;
	}
	return ok && c.n == 0;
}

/* Whether a MessageIndex record starts at off. Only a Chunk or another
 * MessageIndex may come before one. */
static bool index_follows(const mcap_reader *r, uint64_t off)
{
	uint8_t op;
	const uint8_t *p;
	uint64_t len;
	return record_at(r, off, r->size, &op, &p, &len) && op == MCAP_OP_MESSAGE_INDEX;
}

/* The first offset from `start` on where reading can resume after damage:
 * the next one an intact summary indexes; without one, the next Chunk
 * whose CRC holds. (A CRC shows a chunk whole, not that it is a record of
 * the file rather than bytes inside a message, say a recording of MCAP
 * files: only the summary knows, so when there is one, only it is asked.) */
static bool resync(mcap_reader *r, uint64_t start, uint64_t *next)
{
	if (r->info.summary_read) {
		for (size_t i = 0; i < r->n_anchors; i++)
			if (r->anchors[i] >= start) {
				*next = r->anchors[i];
				return true;
			}
		return false;
	}
	for (uint64_t k = start; k < r->size; k++) {
		const uint8_t *q = memchr(r->base + k, MCAP_OP_CHUNK, (size_t)(r->size - k));
		if (!q)
			break;
		k = (uint64_t)(q - r->base);
		uint8_t op;
		const uint8_t *p;
		uint64_t len;
		if (record_at(r, k, r->size, &op, &p, &len) && chunk_whole(r, k, p, len, true) == 0) {
			*next = k;
			return true;
		}
	}
	return false;
}

/* Records [from, to) as skipped, for the reason in r->err. */
static int add_damage(mcap_reader *r, uint64_t from, uint64_t to, const char *why)
{
	struct damage *d = grow(r->damage, r->n_damage, &r->cap_damage, sizeof(*d));
	char *w = strdup(why);
	if (!d || !w) {
		free(w);
		if (d)
			r->damage = d;
		return bad(r, -ENOMEM, "out of memory");
	}
	r->damage = d;
	d[r->n_damage++] = (struct damage){ from, to, w };
	r->info.damaged_ranges++;
	return 0;
}

static int read_summary(mcap_reader *r, uint64_t footer_off);

/* Salvage takes from an intact summary its channels, schemas and message
 * count, and the offsets it indexes as places to resume; the data section
 * is then scanned all the same. A damaged summary gives nothing. */
static int salvage_summary(mcap_reader *r, uint64_t footer_off)
{
	struct mcap_info *in = &r->info;
	/* Only a summary whose CRC vouches for it (the footer stores one). */
	uint32_t crc = mcap_get32(r->base + footer_off + MCAP_RECORD_PREFIX + 16);
	int rc = crc ? read_summary(r, footer_off) : 1;
	if (rc < 0 && rc != -EBADMSG)
		return rc;
	if (rc == 0) {
		size_t n = r->n_chunk_offs + r->n_meta + 1;
		r->anchors = malloc(n * sizeof(*r->anchors));
		if (!r->anchors)
			return bad(r, -ENOMEM, "out of memory");
		n = 0;
		for (size_t i = 0; i < r->n_chunk_offs; i++)
			r->anchors[n++] = r->chunk_offs[i];
		for (size_t i = 0; i < r->n_meta; i++)
			r->anchors[n++] = r->meta_offsets[i];
		uint64_t de = r->data_end - MCAP_RECORD_PREFIX - 4;
		if (r->data_end >= r->data_start + MCAP_RECORD_PREFIX + 4 &&
		    r->base[de] == MCAP_OP_DATA_END)
			r->anchors[n++] = de;
		qsort(r->anchors, n, sizeof(uint64_t), by_offset);
		r->n_anchors = n;
		in->summary_read = true;
		in->summary_messages = in->message_count;
	} else {
		forget_tables(r, 0, 0);
	}
	r->n_chunk_offs = 0;
	r->n_meta = 0;
	r->err[0] = 0;
	in->complete = false;
	return 0;
}

/* Forward scan of the data section: schemas, channels, counts; stops at
 * DataEnd or at the first record that does not fit in the file. With
 * MCAP_READ_SALVAGE a damaged record is skipped (salvage above) instead of
 * failing, and a chunk counts only once it is known whole. */
static int scan(mcap_reader *r, bool footer)
{
	struct mcap_info *in = &r->info;
	bool salvage = r->flags & MCAP_READ_SALVAGE;
	uint64_t off = r->data_start;
	bool data_end = false;
	uint8_t prev_op = MCAP_OP_HEADER;
	for (size_t i = 0; i < r->n_channels; i++)
		r->channels[i].message_count = 0;
	in->message_count = in->chunk_count = in->metadata_count = in->attachment_count = 0;
	in->start_time = in->end_time = 0;
	in->chunks_none = in->chunks_lz4 = in->chunks_zstd = 0;
	in->compressed_bytes = in->uncompressed_bytes = 0;
	r->n_meta = 0;
	while (off < r->size) {
		uint8_t op;
		const uint8_t *p;
		uint64_t len, next;
		int rc = 0;
		if (!record_at(r, off, r->size, &op, &p, &len)) {
			/* A length damaged past the end looks like a file cut short,
			 * unless a whole chunk follows. */
			if (salvage && resync(r, off + 1, &next)) {
				bad(r, -EBADMSG, "%s: the record at offset %llu runs past the end of "
						 "the file (%llu bytes)",
				    r->path, (unsigned long long)off, (unsigned long long)r->size);
				if ((rc = add_damage(r, off, next, r->err)) != 0)
					return rc;
				off = next;
				prev_op = 0;
				continue;
			}
			snprintf(in->why_incomplete, sizeof(in->why_incomplete),
				 "the record at offset %llu is cut short at the end of the file "
				 "(%llu bytes)",
				 (unsigned long long)off, (unsigned long long)r->size);
			break;
		}
		struct mcap_message m;
		if (salvage && op != 0 && !record_whole(op, p, len)) {
			rc = bad(r, -EBADMSG,
				 "%s: record at offset %llu (opcode 0x%02x, %llu bytes) is damaged or "
				 "not one of the data section",
				 r->path, (unsigned long long)off, op, (unsigned long long)len);
			goto checked;
		}
		if (salvage && op != MCAP_OP_CHUNK && op != MCAP_OP_MESSAGE_INDEX &&
		    index_follows(r, off + MCAP_RECORD_PREFIX + len)) {
			rc = bad(r, -EBADMSG,
				 "%s: record at offset %llu (opcode 0x%02x) is followed by a "
				 "MessageIndex: a Chunk whose opcode is damaged",
				 r->path, (unsigned long long)off, op);
			goto checked;
		}
		switch (op) {
		case 0: {
			/* Zeros where a record should start: a file whose tail was
			 * never written (the disk filled or the machine died) - unless
			 * anything non-zero follows. */
			uint64_t k = off;
			while (k < r->size && r->base[k] == 0)
				k++;
			if (k == r->size) {
				snprintf(in->why_incomplete, sizeof(in->why_incomplete),
					 "only zero bytes from offset %llu on", (unsigned long long)off);
				goto done;
			}
			rc = bad(r, -EBADMSG, "%s: invalid record opcode 0 at offset %llu", r->path,
				 (unsigned long long)off);
			break;
		}
		case MCAP_OP_HEADER:
			rc = bad(r, -EBADMSG, "%s: second Header record at offset %llu", r->path,
				 (unsigned long long)off);
			break;
		case MCAP_OP_FOOTER:
			rc = bad(r, -EBADMSG, "%s: Footer at offset %llu before any DataEnd", r->path,
				 (unsigned long long)off);
			break;
		case MCAP_OP_SCHEMA:
			rc = add_schema(r, p, len, off);
			break;
		case MCAP_OP_CHANNEL:
			rc = add_channel(r, p, len, off);
			break;
		case MCAP_OP_MESSAGE:
			rc = parse_message(r, p, len, off, &m);
			if (rc == 0)
				count_message(r, &m);
			break;
		case MCAP_OP_CHUNK:
			/* Salvage counts a chunk only once it is known whole; one
			 * kept in memory is then read again, not decompressed again. */
			if (salvage)
				rc = chunk_whole(r, off, p, len, false);
			if (rc == 0 && salvage && !r->streamed)
				r->chunk_pos = 0;
			else if (rc == 0)
				rc = load_chunk(r, off, p, len);
			while (rc == 0 && (rc = chunk_next(r, &m, false)) == 1) {
				count_message(r, &m);
				rc = 0;
			}
			if (rc == 0) {
				in->chunk_count++;
				in->uncompressed_bytes += r->chunk_size;
				in->compressed_bytes += len;
				const char *comp = (const char *)p + 8 + 8 + 8 + 4 + 4;
				uint32_t cl = mcap_get32(p + 28);
				if (cl == 4 && memcmp(comp, "zstd", 4) == 0)
					in->chunks_zstd++;
				else if (cl == 3 && memcmp(comp, "lz4", 3) == 0)
					in->chunks_lz4++;
				else
					in->chunks_none++;
			}
			break;
		case MCAP_OP_METADATA:
			rc = add_meta_offset(r, off);
			in->metadata_count++;
			break;
		case MCAP_OP_ATTACHMENT:
			in->attachment_count++;
			break;
		case MCAP_OP_MESSAGE_INDEX:
			rc = check_message_index(r, prev_op, p, len, off);
			break;
		case MCAP_OP_DATA_END:
			if ((r->flags & MCAP_READ_VERIFY_DATA_CRC) && !salvage)
				rc = check_data_crc(r, off, p, len);
			data_end = true;
			break;
		default:
			break; /* as the spec asks of records it does not know */
		}
checked:
		if (rc == -EBADMSG && salvage) {
			char why[sizeof(r->err)];
			memcpy(why, r->err, sizeof(why));
			bool more = resync(r, off + 1, &next);
			if ((rc = add_damage(r, off, more ? next : r->size, why)) != 0)
				return rc;
			data_end = false;
			if (!more) {
				snprintf(in->why_incomplete, sizeof(in->why_incomplete),
					 "damaged from offset %llu on, with no whole chunk after it",
					 (unsigned long long)off);
				goto done;
			}
			off = next;
			prev_op = 0;
			continue;
		}
		if (rc)
			return rc;
		if (data_end)
			break;
		prev_op = op;
		off += MCAP_RECORD_PREFIX + len;
	}
	if (!data_end && !in->why_incomplete[0])
		snprintf(in->why_incomplete, sizeof(in->why_incomplete),
			 "the file ends at offset %llu without a DataEnd record",
			 (unsigned long long)off);
done:
	r->data_end = off;
	in->end_offset = off;
	in->complete = data_end && footer;
	if (data_end && !footer)
		snprintf(in->why_incomplete, sizeof(in->why_incomplete),
			 "DataEnd at offset %llu but no footer after it", (unsigned long long)off);
	r->in_chunk = false;
	return 0;
}

int mcap_reader_open(const char *path, unsigned flags, mcap_reader **out, char *err,
		     size_t errlen)
{
	int rc;
	mcap_reader *r = calloc(1, sizeof(*r));
	*out = NULL;
	if (!r || !(r->path = strdup(path))) {
		free(r);
		if (err)
			snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	if (flags & MCAP_READ_SALVAGE)
		flags |= MCAP_READ_SCAN;
	r->flags = flags;
	r->fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (r->fd < 0 || fstat(r->fd, &st) != 0) {
		rc = -errno;
		bad(r, rc, "%s: %s", path, strerror(errno));
		goto fail;
	}
	r->size = (uint64_t)st.st_size;
	r->info.file_size = r->size;
	if (r->size < MCAP_MAGIC_SIZE) {
		rc = bad(r, -EBADMSG, "%s: not an MCAP file: %llu bytes, shorter than the magic",
			 path, (unsigned long long)r->size);
		goto fail;
	}
	r->base = mmap(NULL, r->size, PROT_READ, MAP_PRIVATE, r->fd, 0);
	if (r->base == MAP_FAILED) {
		r->base = NULL;
		rc = -errno;
		bad(r, rc, "%s: mmap: %s", path, strerror(errno));
		goto fail;
	}
	if (memcmp(r->base, MCAP_MAGIC, MCAP_MAGIC_SIZE) != 0) {
		rc = bad(r, -EBADMSG, "%s: not an MCAP file (no MCAP magic at offset 0)", path);
		goto fail;
	}
	uint8_t op;
	const uint8_t *p;
	uint64_t len;
	bool header = record_at(r, MCAP_MAGIC_SIZE, r->size, &op, &p, &len) &&
		      op == MCAP_OP_HEADER;
	bool salvage = flags & MCAP_READ_SALVAGE;
	if (salvage && r->size > MCAP_MAGIC_SIZE + MCAP_RECORD_PREFIX &&
	    r->base[MCAP_MAGIC_SIZE] == MCAP_OP_HEADER) {
		/* Either the Header's length or its fields may be damaged: start
		 * the data section at the earlier end they give. Anything before
		 * the first whole record is then skipped as damage; starting too
		 * late could lose the first chunk, and with it the channels. */
		uint64_t room = r->size - MCAP_MAGIC_SIZE - MCAP_RECORD_PREFIX;
		struct cur h = { r->base + MCAP_MAGIC_SIZE + MCAP_RECORD_PREFIX, room, 0, "header" };
		if (cur_skip(&h) && cur_skip(&h) && (!header || room - h.n < len)) {
			p = r->base + MCAP_MAGIC_SIZE + MCAP_RECORD_PREFIX;
			len = room - h.n;
			header = true;
		}
	}
	if (!header) {
		rc = bad(r, -EBADMSG, "%s: no complete Header record at offset %d", path,
			 MCAP_MAGIC_SIZE);
		goto fail;
	}
	struct cur c = { p, len, MCAP_MAGIC_SIZE, "header" };
	if (!cur_str_into(&c, r->info.profile, sizeof(r->info.profile)) ||
	    !cur_str_into(&c, r->info.library, sizeof(r->info.library))) {
		r->info.profile[0] = r->info.library[0] = 0;
		if (!salvage) {
			rc = bad(r, -EBADMSG, "%s: malformed Header record at offset %d", path,
				 MCAP_MAGIC_SIZE);
			goto fail;
		}
	}
	r->data_start = MCAP_MAGIC_SIZE + MCAP_RECORD_PREFIX + len;

	uint64_t footer_off;
	bool footer = find_footer(r, &footer_off);
	rc = 1;
	if (footer && !(flags & MCAP_READ_SCAN))
		rc = read_summary(r, footer_off);
	else if (footer && (flags & MCAP_READ_SALVAGE) && (rc = salvage_summary(r, footer_off)) == 0)
		rc = 1;
	if (rc < 0)
		goto fail;
	if (rc == 1) {
		/* Forget whatever a partial summary gave; the scan is the truth. */
		r->n_chunk_offs = 0;
		rc = scan(r, footer);
		if (rc < 0)
			goto fail;
	}
	sort_tables(r);
	mcap_reader_rewind(r);
	*out = r;
	return 0;
fail:
	if (err)
		snprintf(err, errlen, "%s", r->err);
	mcap_reader_close(r);
	return rc;
}

void mcap_reader_close(mcap_reader *r)
{
	if (!r)
		return;
	if (r->base)
		munmap((void *)r->base, r->size);
	if (r->fd >= 0)
		close(r->fd);
	for (size_t i = 0; i < r->n_schemas; i++) {
		free(r->schemas[i].name);
		free(r->schemas[i].encoding);
		free(r->schemas[i].data);
	}
	for (size_t i = 0; i < r->n_channels; i++)
		free_channel(&r->channels[i]);
	if (r->meta) {
		for (size_t i = 0; i < r->n_meta; i++) {
			free(r->meta[i].name);
			free_kv(r->meta[i].kv, r->meta[i].n);
		}
	}
	free(r->meta);
	for (size_t i = 0; i < r->n_damage; i++)
		free(r->damage[i].why);
	free(r->damage);
	free(r->anchors);
	free(r->chunk_offs);
	free(r->meta_offsets);
	free(r->schemas);
	free(r->channels);
	free(r->chunk);
	free(r->schema_at);
	free(r->channel_at);
	mcap_dstream_free(&r->ds);
	free(r->path);
	free(r);
}

const struct mcap_info *mcap_reader_info(const mcap_reader *r)
{
	return &r->info;
}

size_t mcap_reader_channels(mcap_reader *r, const struct mcap_channel **out)
{
	sort_tables(r);
	*out = r->channels;
	return r->n_channels;
}

size_t mcap_reader_schemas(mcap_reader *r, const struct mcap_schema **out)
{
	sort_tables(r);
	*out = r->schemas;
	return r->n_schemas;
}

const struct mcap_channel *mcap_reader_channel(const mcap_reader *r, uint16_t id)
{
	uint32_t k = r->channel_at ? r->channel_at[id] : 0;
	return k ? &r->channels[k - 1] : NULL;
}

const struct mcap_schema *mcap_reader_schema(const mcap_reader *r, uint16_t id)
{
	uint32_t k = r->schema_at ? r->schema_at[id] : 0;
	return k ? &r->schemas[k - 1] : NULL;
}

int mcap_reader_metadata(mcap_reader *r, size_t i, const char **name,
			 const struct mcap_kv **kv, size_t *n)
{
	if (i >= r->n_meta)
		return -ENOENT;
	if (!r->meta) {
		r->meta = calloc(r->n_meta, sizeof(*r->meta));
		if (!r->meta)
			return bad(r, -ENOMEM, "out of memory");
	}
	struct rmeta *m = &r->meta[i];
	if (!m->name) {
		uint64_t off = r->meta_offsets[i];
		uint8_t op;
		const uint8_t *p;
		uint64_t len;
		if (!record_at(r, off, r->size, &op, &p, &len) || op != MCAP_OP_METADATA)
			return bad(r, -EBADMSG, "%s: no Metadata record at offset %llu", r->path,
				   (unsigned long long)off);
		struct cur c = { p, len, off, "metadata" };
		char *nm = NULL;
		if (!cur_str(&c, &nm) || !cur_map_kv(&c, &m->kv, &m->n)) {
			free(nm);
			return bad(r, -EBADMSG, "%s: malformed Metadata record at offset %llu",
				   r->path, (unsigned long long)off);
		}
		m->name = nm;
	}
	*name = m->name;
	*kv = m->kv;
	*n = m->n;
	return 0;
}

void mcap_reader_rewind(mcap_reader *r)
{
	r->pos = r->data_start;
	r->in_chunk = false;
	r->next_chunk = 0;
	r->next_damage = 0;
	r->prev_op = MCAP_OP_HEADER;
}

int mcap_reader_damage(const mcap_reader *r, size_t i, uint64_t *from, uint64_t *to,
		       const char **why)
{
	if (i >= r->n_damage)
		return -ENOENT;
	*from = r->damage[i].from;
	*to = r->damage[i].to;
	*why = r->damage[i].why;
	return 0;
}

/* The walk is at a record with opcode op at off (or at the data section's
 * end, off = data_end): it must not have passed an indexed chunk, and the
 * record at an indexed offset must be a Chunk. */
static int check_indexed_chunk(mcap_reader *r, uint64_t off, uint8_t op)
{
	if (r->next_chunk >= r->n_chunk_offs)
		return 0;
	uint64_t want = r->chunk_offs[r->next_chunk];
	if (off > want)
		return bad(r, -EBADMSG,
			   "%s: the summary indexes a Chunk at offset %llu, which the records of "
			   "the data section step over (the record before offset %llu is "
			   "damaged)",
			   r->path, (unsigned long long)want, (unsigned long long)off);
	if (off < want)
		return 0;
	if (op != MCAP_OP_CHUNK)
		return bad(r, -EBADMSG,
			   "%s: the summary indexes a Chunk at offset %llu, but the record there "
			   "has opcode 0x%02x",
			   r->path, (unsigned long long)want, op);
	r->next_chunk++;
	return 0;
}

int mcap_reader_next(mcap_reader *r, struct mcap_message *msg)
{
	for (;;) {
		if (r->in_chunk) {
			int rc = chunk_next(r, msg, true);
			if (rc != 0)
				return rc;
			r->in_chunk = false;
		}
		/* Salvage: what the scan found damaged is passed over. */
		if (r->next_damage < r->n_damage && r->pos >= r->damage[r->next_damage].from) {
			r->pos = r->damage[r->next_damage++].to;
			r->prev_op = 0;
			continue;
		}
		if (r->pos >= r->data_end)
			return check_indexed_chunk(r, r->data_end, 0);
		uint8_t op;
		const uint8_t *p;
		uint64_t len;
		uint64_t off = r->pos;
		if (!record_at(r, off, r->data_end, &op, &p, &len))
			return bad(r, -EBADMSG, "%s: record at offset %llu runs past the data "
					       "section's end (%llu)",
				   r->path, (unsigned long long)off, (unsigned long long)r->data_end);
		r->pos = off + MCAP_RECORD_PREFIX + len;
		uint8_t prev_op = r->prev_op;
		r->prev_op = op;
		int rc = check_indexed_chunk(r, off, op);
		if (rc)
			return rc;
		switch (op) {
		case MCAP_OP_CHUNK:
			rc = load_chunk(r, off, p, len);
			if (rc == 0)
				r->in_chunk = true;
			break;
		case MCAP_OP_MESSAGE:
			rc = parse_message(r, p, len, off, msg);
			if (rc == 0)
				return 1;
			break;
		case MCAP_OP_SCHEMA:
			rc = add_schema(r, p, len, off);
			break;
		case MCAP_OP_CHANNEL:
			rc = add_channel(r, p, len, off);
			break;
		case MCAP_OP_MESSAGE_INDEX:
			rc = check_message_index(r, prev_op, p, len, off);
			break;
		case MCAP_OP_DATA_END:
			r->pos = r->data_end;
			return check_indexed_chunk(r, r->data_end, 0);
		case 0:
		case MCAP_OP_HEADER:
		case MCAP_OP_FOOTER:
			return bad(r, -EBADMSG, "%s: record with opcode 0x%02x at offset %llu in the "
					       "data section",
				   r->path, op, (unsigned long long)off);
		default:
			break;
		}
		if (rc)
			return rc;
	}
}

const char *mcap_reader_error(const mcap_reader *r)
{
	return r->err;
}
