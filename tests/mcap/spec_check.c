/*
 * spec_check.c - checks an MCAP file against the specification, written
 * apart from lib/mcap's reader so that the two cannot share a mistake:
 * magic at both ends, every record length, chunk CRCs and sizes, every
 * MessageIndex entry pointing at its message, DataEnd's data-section CRC,
 * the footer's summary CRC, summary records grouped by opcode, every
 * SummaryOffset and ChunkIndex pointing at the records it names, and the
 * Statistics counts.
 */
#include "spec_check.h"

#include <lz4frame.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

static const uint8_t magic[8] = { 0x89, 'M', 'C', 'A', 'P', 0x30, '\r', '\n' };

static uint64_t le(const uint8_t *p, int n)
{
	uint64_t v = 0;
	for (int i = n - 1; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

__attribute__((format(printf, 2, 3))) static int no(struct spec_result *res, const char *fmt,
						   ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(res->why, sizeof(res->why), fmt, ap);
	va_end(ap);
	return -1;
}

static uint32_t crc_of(const uint8_t *p, size_t n)
{
	return (uint32_t)crc32(crc32(0, NULL, 0), p, (uInt)n);
}

static uint8_t *inflate_chunk(const char *comp, const uint8_t *in, size_t n, size_t usize)
{
	uint8_t *out = malloc(usize ? usize : 1);
	if (!out)
		return NULL;
	if (strcmp(comp, "") == 0) {
		if (n != usize)
			goto fail;
		memcpy(out, in, n);
	} else if (strcmp(comp, "zstd") == 0) {
		if (ZSTD_decompress(out, usize, in, n) != usize)
			goto fail;
	} else if (strcmp(comp, "lz4") == 0) {
		LZ4F_dctx *d;
		size_t src = n, dst = usize;
		LZ4F_createDecompressionContext(&d, LZ4F_VERSION);
		size_t r = LZ4F_decompress(d, out, &dst, in, &src, NULL);
		LZ4F_freeDecompressionContext(d);
		if (r != 0 || dst != usize || src != n)
			goto fail;
	} else {
		goto fail;
	}
	return out;
fail:
	free(out);
	return NULL;
}

struct chunk_seen {
	uint64_t off, len, mi_start, mi_len, usize, csize;
	char comp[8];
	uint64_t msgs;
};

int spec_check(const char *path, struct spec_result *res)
{
	memset(res, 0, sizeof(*res));
	FILE *f = fopen(path, "rb");
	if (!f)
		return no(res, "cannot open %s", path);
	fseek(f, 0, SEEK_END);
	long sz = ftell(f);
	fseek(f, 0, SEEK_SET);
	uint8_t *b = malloc(sz > 0 ? (size_t)sz : 1);
	size_t n = b ? fread(b, 1, (size_t)sz, f) : 0;
	fclose(f);
	if (!b || n != (size_t)sz) {
		free(b);
		return no(res, "cannot read %s", path);
	}
	int rc = -1;
	struct chunk_seen *chunks = NULL;
	size_t n_chunks = 0;
	uint64_t *per_channel = calloc(65536, sizeof(uint64_t));
	uint8_t *chunk = NULL;

	if (n < 16 + 29 || memcmp(b, magic, 8) != 0 || memcmp(b + n - 8, magic, 8) != 0) {
		no(res, "magic missing at the start or the end");
		goto out;
	}
	if (b[8] != 0x01) {
		no(res, "first record is not a Header");
		goto out;
	}
	uint64_t off = 8, data_end_at = 0;
	bool first = true;
	/* Data section. */
	while (!data_end_at) {
		if (n - off < 9) {
			no(res, "record prefix at %llu past the end", (unsigned long long)off);
			goto out;
		}
		uint8_t op = b[off];
		uint64_t len = le(b + off + 1, 8);
		if (len > n - off - 9) {
			no(res, "record at %llu (op %u) longer than the file", (unsigned long long)off, op);
			goto out;
		}
		const uint8_t *p = b + off + 9;
		if (first != (op == 0x01)) {
			no(res, "Header not first or repeated at %llu", (unsigned long long)off);
			goto out;
		}
		first = false;
		if (op == 0x06) {
			uint64_t usize = le(p + 16, 8);
			uint32_t crc = (uint32_t)le(p + 24, 4);
			uint32_t cl = (uint32_t)le(p + 28, 4);
			if (cl > 4 || 32 + cl + 8 > len) {
				no(res, "chunk at %llu: bad compression field", (unsigned long long)off);
				goto out;
			}
			struct chunk_seen cs = { .off = off, .len = 9 + len, .usize = usize };
			memcpy(cs.comp, p + 32, cl);
			cs.comp[cl] = 0;
			cs.csize = le(p + 32 + cl, 8);
			if (32 + cl + 8 + cs.csize != len) {
				no(res, "chunk at %llu: records length %llu does not end the record",
				   (unsigned long long)off, (unsigned long long)cs.csize);
				goto out;
			}
			free(chunk);
			chunk = inflate_chunk(cs.comp, p + 32 + cl + 8, cs.csize, usize);
			if (!chunk) {
				no(res, "chunk at %llu does not decompress ('%s')", (unsigned long long)off,
				   cs.comp);
				goto out;
			}
			if (crc != crc_of(chunk, usize)) {
				no(res, "chunk at %llu: CRC mismatch", (unsigned long long)off);
				goto out;
			}
			uint64_t t0 = le(p, 8), t1 = le(p + 8, 8), lo = UINT64_MAX, hi = 0;
			for (uint64_t q = 0; q < usize;) {
				if (usize - q < 9 || le(chunk + q + 1, 8) > usize - q - 9) {
					no(res, "chunk at %llu: inner record at %llu cut",
					   (unsigned long long)off, (unsigned long long)q);
					goto out;
				}
				uint8_t iop = chunk[q];
				if (iop != 0x03 && iop != 0x04 && iop != 0x05) {
					no(res, "chunk at %llu: opcode %u inside", (unsigned long long)off, iop);
					goto out;
				}
				if (iop == 0x05) {
					uint64_t t = le(chunk + q + 9 + 6, 8);
					lo = t < lo ? t : lo;
					hi = t > hi ? t : hi;
					cs.msgs++;
					per_channel[le(chunk + q + 9, 2)]++;
				}
				q += 9 + le(chunk + q + 1, 8);
			}
			if (cs.msgs && (lo != t0 || hi != t1)) {
				no(res, "chunk at %llu: time range %llu..%llu, messages say %llu..%llu",
				   (unsigned long long)off, (unsigned long long)t0, (unsigned long long)t1,
				   (unsigned long long)lo, (unsigned long long)hi);
				goto out;
			}
			res->messages += cs.msgs;
			/* MessageIndex records follow; each entry must name a message
			 * of its channel with its log_time. */
			uint64_t m = off + 9 + len;
			cs.mi_start = m;
			uint64_t indexed = 0;
			while (n - m >= 9 && b[m] == 0x07) {
				uint64_t ml = le(b + m + 1, 8);
				if (ml > n - m - 9 || ml < 6 || le(b + m + 11, 4) != ml - 6 ||
				    (ml - 6) % 16) {
					no(res, "message index at %llu malformed", (unsigned long long)m);
					goto out;
				}
				uint16_t ch = (uint16_t)le(b + m + 9, 2);
				for (uint64_t e = 0; e < ml - 6; e += 16) {
					uint64_t t = le(b + m + 15 + e, 8), o = le(b + m + 23 + e, 8);
					if (o + 9 + 22 > usize || chunk[o] != 0x05 ||
					    le(chunk + o + 9, 2) != ch || le(chunk + o + 15, 8) != t) {
						no(res, "message index at %llu: entry %llu points at no "
							"message of channel %u at time %llu",
						   (unsigned long long)m, (unsigned long long)(e / 16), ch,
						   (unsigned long long)t);
						goto out;
					}
					indexed++;
				}
				m += 9 + ml;
			}
			if (indexed != cs.msgs) {
				no(res, "chunk at %llu: %llu messages, %llu indexed", (unsigned long long)off,
				   (unsigned long long)cs.msgs, (unsigned long long)indexed);
				goto out;
			}
			cs.mi_len = m - cs.mi_start;
			struct chunk_seen *v = realloc(chunks, (n_chunks + 1) * sizeof(*v));
			if (!v)
				goto out;
			chunks = v;
			chunks[n_chunks++] = cs;
			off = m;
			continue;
		}
		if (op == 0x05)
			res->messages++;
		if (op == 0x0C)
			res->metadata++;
		if (op == 0x0F) {
			if (len != 4) {
				no(res, "DataEnd at %llu: length %llu", (unsigned long long)off,
				   (unsigned long long)len);
				goto out;
			}
			uint32_t want = (uint32_t)le(p, 4);
			if (want == 0 || want != crc_of(b, off)) {
				no(res, "DataEnd at %llu: data section CRC %08x wrong (or 0)",
				   (unsigned long long)off, want);
				goto out;
			}
			data_end_at = off;
		}
		if (op == 0x02 || op == 0x08 || op == 0x0B || op == 0x0E || op == 0x0D) {
			no(res, "summary-only record op %u at %llu in the data section", op,
			   (unsigned long long)off);
			goto out;
		}
		off += 9 + len;
	}
	res->chunks = n_chunks;

	/* Footer. */
	uint64_t fo = n - 8 - 29;
	if (b[fo] != 0x02 || le(b + fo + 1, 8) != 20) {
		no(res, "no Footer record right before the trailing magic");
		goto out;
	}
	uint64_t ss = le(b + fo + 9, 8), sos = le(b + fo + 17, 8);
	uint32_t scrc = (uint32_t)le(b + fo + 25, 4);
	if (ss != off) {
		no(res, "summary_start %llu, but the data section ends at %llu", (unsigned long long)ss,
		   (unsigned long long)off);
		goto out;
	}
	if (scrc == 0 || scrc != crc_of(b + ss, fo + 25 - ss)) {
		no(res, "summary CRC wrong (or 0)");
		goto out;
	}
	if (sos < ss || sos > fo) {
		no(res, "summary_offset_start %llu out of place", (unsigned long long)sos);
		goto out;
	}
	/* Summary: grouped by opcode; check what each record points at. */
	bool done_op[256] = { false };
	int last_op = -1;
	uint64_t ci_seen = 0, stats = 0;
	uint64_t group_start[256] = { 0 }, group_len[256] = { 0 };
	for (off = ss; off < sos;) {
		if (sos - off < 9 || le(b + off + 1, 8) > sos - off - 9) {
			no(res, "summary record at %llu cut", (unsigned long long)off);
			goto out;
		}
		uint8_t op = b[off];
		uint64_t len = le(b + off + 1, 8);
		const uint8_t *p = b + off + 9;
		if (op != last_op) {
			if (done_op[op]) {
				no(res, "summary records of op %u not grouped", op);
				goto out;
			}
			if (last_op >= 0)
				done_op[last_op] = true;
			last_op = op;
			group_start[op] = off;
		}
		group_len[op] += 9 + len;
		if (op == 0x08) {
			uint64_t co = le(p + 16, 8), cl = le(p + 24, 8);
			uint32_t maplen = (uint32_t)le(p + 32, 4);
			const uint8_t *q = p + 36 + maplen;
			uint64_t mil = le(q, 8);
			uint32_t compl = (uint32_t)le(q + 8, 4);
			uint64_t csize = le(q + 12 + compl, 8), usize = le(q + 20 + compl, 8);
			struct chunk_seen *c = NULL;
			for (size_t i = 0; i < n_chunks; i++)
				if (chunks[i].off == co)
					c = &chunks[i];
			if (!c || c->len != cl || c->mi_len != mil || c->csize != csize ||
			    c->usize != usize || strlen(c->comp) != compl ||
			    memcmp(c->comp, q + 12, compl) != 0) {
				no(res, "chunk index at %llu does not describe the chunk at %llu",
				   (unsigned long long)off, (unsigned long long)co);
				goto out;
			}
			for (uint32_t e = 0; e < maplen; e += 10) {
				uint16_t ch = (uint16_t)le(p + 36 + e, 2);
				uint64_t mo = le(p + 38 + e, 8);
				if (mo < c->mi_start || mo >= c->mi_start + c->mi_len || b[mo] != 0x07 ||
				    le(b + mo + 9, 2) != ch) {
					no(res, "chunk index at %llu: message index offset for channel %u "
						"wrong",
					   (unsigned long long)off, ch);
					goto out;
				}
			}
			ci_seen++;
		}
		if (op == 0x0B) {
			stats++;
			uint64_t mc = le(p, 8);
			uint32_t cc = (uint32_t)le(p + 22, 4);
			uint32_t maplen = (uint32_t)le(p + 42, 4);
			if (mc != res->messages || cc != n_chunks) {
				no(res, "statistics: %llu messages / %u chunks, the file has %llu / %zu",
				   (unsigned long long)mc, cc, (unsigned long long)res->messages, n_chunks);
				goto out;
			}
			for (uint32_t e = 0; e < maplen; e += 10) {
				uint16_t ch = (uint16_t)le(p + 46 + e, 2);
				if (le(p + 48 + e, 8) != per_channel[ch]) {
					no(res, "statistics: channel %u count wrong", ch);
					goto out;
				}
			}
		}
		off += 9 + len;
	}
	if (ci_seen != n_chunks || stats != 1) {
		no(res, "%llu chunk indexes for %zu chunks, %llu statistics records",
		   (unsigned long long)ci_seen, n_chunks, (unsigned long long)stats);
		goto out;
	}
	/* Summary offsets: one per group, pointing at exactly that group. */
	size_t groups = 0, offsets = 0;
	for (int op = 0; op < 256; op++)
		groups += group_len[op] != 0;
	for (off = sos; off < fo; off += 9 + le(b + off + 1, 8)) {
		if (b[off] != 0x0E || le(b + off + 1, 8) != 17) {
			no(res, "record at %llu in the summary offset section is not a SummaryOffset",
			   (unsigned long long)off);
			goto out;
		}
		uint8_t op = b[off + 9];
		if (le(b + off + 10, 8) != group_start[op] || le(b + off + 18, 8) != group_len[op] ||
		    group_len[op] == 0 || b[group_start[op]] != op) {
			no(res, "summary offset at %llu for op %u does not match its group",
			   (unsigned long long)off, op);
			goto out;
		}
		offsets++;
	}
	if (offsets != groups) {
		no(res, "%zu summary groups, %zu summary offsets", groups, offsets);
		goto out;
	}
	rc = 0;
out:
	free(chunk);
	free(chunks);
	free(per_channel);
	free(b);
	return rc;
}
