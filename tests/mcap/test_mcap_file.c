/*
 * test_mcap_file - lib/mcap without a bus: what the writer writes the
 * reader reads back exactly, with every compression; the files pass the
 * spec check (spec_check.c); a file cut at any offset reads up to its last
 * complete chunk and says it is incomplete; a corrupted byte anywhere is
 * an error naming an offset or an incomplete file, never a crash or wrong
 * data (this suite also runs under ASan/UBSan).
 */
#include "mcap.h"
#include "mcap_internal.h"
#include "foxglove_check.h"
#include "spec_check.h"

#include <CUnit/Basic.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

static char dir[] = "/tmp/t-mcap-file-XXXXXX";
static bool validator_said;

struct sent {
	uint16_t channel;
	uint32_t seq;
	uint64_t log_time, publish_time;
	size_t size;
	uint8_t fill;
};

#define N_SENT 300
static struct sent sent[N_SENT];

static int read_file(const char *path, uint8_t **out, size_t *size);

static void fill_payload(uint8_t *p, const struct sent *s)
{
	for (size_t i = 0; i < s->size; i++)
		p[i] = (uint8_t)(s->fill + i * 7 + (i >> 9));
}

static bool payload_ok(const uint8_t *p, const struct sent *s)
{
	for (size_t i = 0; i < s->size; i++)
		if (p[i] != (uint8_t)(s->fill + i * 7 + (i >> 9)))
			return false;
	return true;
}

/* Three channels (typed, typed, untyped); sizes from 0 bytes to larger
 * than a chunk; a metadata record in the middle. */
static int write_file_mode(const char *path, enum mcap_compression comp, size_t chunk_size,
			   bool background)
{
	struct mcap_writer_options o;
	mcap_writer *w;
	char err[256];
	uint16_t s1, c[3];
	static const uint8_t schema[] = { 0x0a, 0x03, 'a', 'b', 'c' };
	struct mcap_kv md[] = { { "k", "v" } };

	mcap_writer_options_init(&o);
	o.compression = comp;
	o.chunk_size = chunk_size;
	o.background = background;
	if (mcap_writer_open(path, &o, &w, err, sizeof(err)) != 0) {
		fprintf(stderr, "open: %s\n", err);
		return -1;
	}
	CU_ASSERT_EQUAL(mcap_writer_add_schema(w, "pkg.Msg", "protobuf", schema, sizeof(schema), &s1), 0);
	CU_ASSERT_EQUAL(mcap_writer_add_channel(w, s1, "a/one", "protobuf", md, 1, &c[0]), 0);
	CU_ASSERT_EQUAL(mcap_writer_add_channel(w, s1, "a/two", "protobuf", NULL, 0, &c[1]), 0);
	CU_ASSERT_EQUAL(mcap_writer_add_channel(w, 0, "raw", "x-shmbus-raw", NULL, 0, &c[2]), 0);
	uint8_t *buf = malloc(300000);
	for (int i = 0; i < N_SENT; i++) {
		struct sent *s = &sent[i];
		s->channel = c[i % 3];
		s->seq = (uint32_t)(i / 3);
		s->log_time = 1700000000000000000ull + (uint64_t)i * 1000;
		s->publish_time = s->log_time - 5;
		s->size = i == 7 ? 0 : (i % 50 == 0 ? 200000 : (size_t)(i * 37 % 3000));
		s->fill = (uint8_t)i;
		fill_payload(buf, s);
		CU_ASSERT_EQUAL(mcap_writer_message(w, s->channel, s->seq, s->log_time,
						    s->publish_time, buf, s->size), 0);
		if (i == N_SENT / 2) {
			struct mcap_kv kv[] = { { "lost/a/one", "0" }, { "lost/raw", "3" } };
			CU_ASSERT_EQUAL(mcap_writer_metadata(w, "shmbus.losses", kv, 2), 0);
		}
	}
	free(buf);
	CU_ASSERT_EQUAL(mcap_writer_message_count(w), N_SENT);
	int rc = mcap_writer_close(w, err, sizeof(err));
	if (rc)
		fprintf(stderr, "close: %s\n", err);
	return rc;
}

static int write_file(const char *path, enum mcap_compression comp, size_t chunk_size)
{
	return write_file_mode(path, comp, chunk_size, false);
}

/* Reads every message; checks each against sent[]. Returns how many were
 * read in order and correct, or -1 on a reader error (err gets it). */
static long read_all(const char *path, unsigned flags, bool *complete, char *err, size_t errlen)
{
	mcap_reader *r;
	struct mcap_message m;
	long n = 0;
	int rc = mcap_reader_open(path, flags, &r, err, errlen);
	if (rc)
		return -1;
	*complete = mcap_reader_info(r)->complete;
	while ((rc = mcap_reader_next(r, &m)) == 1) {
		const struct sent *s = &sent[n];
		if (n >= N_SENT || m.channel_id != s->channel || m.sequence != s->seq ||
		    m.log_time != s->log_time || m.publish_time != s->publish_time ||
		    m.size != s->size || !payload_ok(m.data, s)) {
			snprintf(err, errlen, "message %ld differs", n);
			mcap_reader_close(r);
			return -2;
		}
		n++;
	}
	if (rc < 0) {
		snprintf(err, errlen, "%s", mcap_reader_error(r));
		n = -1;
	}
	mcap_reader_close(r);
	return n;
}

/* Foxglove's reader on the file: it must read every message. */
static void independent_check(const char *path, long messages)
{
	char line[2048];
	int rc = foxglove_check(path, messages, line, sizeof(line));
	if (rc == 1)
		fprintf(stderr, "\n@mcap/core on %s: %s\n", path, line);
	CU_ASSERT_NOT_EQUAL(rc, 1);
	if (rc == 0 && !validator_said)
		printf("\n  @mcap/core reads it too ");
	validator_said = true;
}

static void round_trip(enum mcap_compression comp)
{
	char path[256], err[320];
	bool complete = false;
	struct spec_result sr;

	/* The writer thread's file is the same, byte for byte. */
	char bg[256];
	uint8_t *a = NULL, *b = NULL;
	size_t na = 0, nb = 0;
	snprintf(bg, sizeof(bg), "%s/rt-bg-%s.mcap", dir, mcap_compression_name(comp));
	CU_ASSERT_EQUAL_FATAL(write_file_mode(bg, comp, 64 * 1024, true), 0);
	snprintf(path, sizeof(path), "%s/rt-%s.mcap", dir, mcap_compression_name(comp));
	CU_ASSERT_EQUAL_FATAL(write_file(path, comp, 64 * 1024), 0);
	CU_ASSERT_EQUAL_FATAL(read_file(bg, &a, &na), 0);
	CU_ASSERT_EQUAL_FATAL(read_file(path, &b, &nb), 0);
	CU_ASSERT_TRUE(na == nb && memcmp(a, b, na) == 0);
	free(a);
	free(b);
	int sc = spec_check(path, &sr);
	if (sc)
		fprintf(stderr, "\nspec check %s: %s\n", path, sr.why);
	CU_ASSERT_EQUAL(sc, 0);
	CU_ASSERT_EQUAL(sr.messages, N_SENT);
	CU_ASSERT_EQUAL(sr.metadata, 1);
	CU_ASSERT_TRUE(sr.chunks > 3);
	independent_check(path, N_SENT);

	for (unsigned flags = 0; flags < 4; flags++) {
		long n = read_all(path, flags, &complete, err, sizeof(err));
		if (n != N_SENT)
			fprintf(stderr, "\nread %s flags %u: %ld: %s\n", path, flags, n, err);
		CU_ASSERT_EQUAL(n, N_SENT);
		CU_ASSERT_TRUE(complete);
	}

	mcap_reader *r;
	CU_ASSERT_EQUAL_FATAL(mcap_reader_open(path, 0, &r, err, sizeof(err)), 0);
	const struct mcap_info *in = mcap_reader_info(r);
	CU_ASSERT_EQUAL(in->message_count, N_SENT);
	CU_ASSERT_EQUAL(in->start_time, sent[0].log_time);
	CU_ASSERT_EQUAL(in->end_time, sent[N_SENT - 1].log_time);
	CU_ASSERT_EQUAL(in->chunk_count, sr.chunks);
	CU_ASSERT_EQUAL(comp == MCAP_COMPRESSION_ZSTD ? in->chunks_zstd
			: comp == MCAP_COMPRESSION_LZ4 ? in->chunks_lz4 : in->chunks_none,
			sr.chunks);
	const struct mcap_channel *ch;
	CU_ASSERT_EQUAL(mcap_reader_channels(r, &ch), 3);
	CU_ASSERT_STRING_EQUAL(ch[0].topic, "a/one");
	CU_ASSERT_EQUAL(ch[0].message_count, N_SENT / 3);
	CU_ASSERT_EQUAL(ch[0].n_metadata, 1);
	CU_ASSERT_EQUAL(ch[2].schema_id, 0);
	const struct mcap_schema *s = mcap_reader_schema(r, ch[0].schema_id);
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	CU_ASSERT_STRING_EQUAL(s->name, "pkg.Msg");
	CU_ASSERT_STRING_EQUAL(s->encoding, "protobuf");
	CU_ASSERT_EQUAL(s->size, 5);
	const char *name;
	const struct mcap_kv *kv;
	size_t nkv;
	CU_ASSERT_EQUAL(mcap_reader_metadata(r, 0, &name, &kv, &nkv), 0);
	CU_ASSERT_STRING_EQUAL(name, "shmbus.losses");
	CU_ASSERT_EQUAL(nkv, 2);
	CU_ASSERT_STRING_EQUAL(kv[1].value, "3");
	mcap_reader_close(r);
}

static void test_round_trip_none(void)
{
	round_trip(MCAP_COMPRESSION_NONE);
}

static void test_round_trip_lz4(void)
{
	round_trip(MCAP_COMPRESSION_LZ4);
}

static void test_round_trip_zstd(void)
{
	round_trip(MCAP_COMPRESSION_ZSTD);
}

static void test_empty_file(void)
{
	char path[256], err[256];
	struct spec_result sr;
	mcap_writer *w;
	mcap_reader *r;
	snprintf(path, sizeof(path), "%s/empty.mcap", dir);
	CU_ASSERT_EQUAL_FATAL(mcap_writer_open(path, NULL, &w, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(mcap_writer_close(w, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(spec_check(path, &sr), 0);
	CU_ASSERT_EQUAL_FATAL(mcap_reader_open(path, MCAP_READ_VERIFY_DATA_CRC, &r, err, sizeof(err)), 0);
	CU_ASSERT_TRUE(mcap_reader_info(r)->complete);
	struct mcap_message m;
	CU_ASSERT_EQUAL(mcap_reader_next(r, &m), 0);
	mcap_reader_close(r);
}

static int read_file(const char *path, uint8_t **out, size_t *size)
{
	struct stat st;
	int fd = open(path, O_RDONLY);
	if (fd < 0 || fstat(fd, &st) != 0)
		return -1;
	*out = malloc((size_t)st.st_size);
	*size = (size_t)st.st_size;
	ssize_t got = read(fd, *out, *size);
	close(fd);
	return got == (ssize_t)*size ? 0 : -1;
}

static void write_bytes(const char *path, const uint8_t *b, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	CU_ASSERT_TRUE_FATAL(fd >= 0);
	CU_ASSERT_EQUAL(write(fd, b, n), (ssize_t)n);
	close(fd);
}

/* Messages stored in chunks that end (with their indexes) at or before
 * `cut`: from the writer's chunk index. */
struct chunk_end {
	uint64_t end;
	long msgs_before; /* messages in this and earlier chunks */
};

static size_t chunk_ends(const uint8_t *b, size_t n, struct chunk_end *out, size_t cap)
{
	/* Walk the data section's top level; sum messages per chunk from the
	 * MessageIndex records after it. */
	size_t k = 0, off = 8;
	long total = 0;
	while (off + 9 <= n && k < cap) {
		uint8_t op = b[off];
		uint64_t len = 0;
		memcpy(&len, b + off + 1, 8); /* little-endian host */
		if (op == 0x0F)
			break;
		if (op == 0x07) {
			uint32_t l;
			memcpy(&l, b + off + 11, 4);
			total += l / 16;
			out[k - 1].msgs_before = total;
			out[k - 1].end = off + 9 + len;
		}
		if (op == 0x06) {
			out[k].end = off + 9 + len;
			out[k].msgs_before = total;
			k++;
		}
		off += 9 + len;
	}
	return k;
}

static void test_truncated_everywhere(void)
{
	char path[256], cut[256], err[320];
	uint8_t *b = NULL;
	size_t n = 0;
	struct chunk_end ends[1024];
	bool complete;
	snprintf(path, sizeof(path), "%s/trunc-src.mcap", dir);
	snprintf(cut, sizeof(cut), "%s/trunc.mcap", dir);
	CU_ASSERT_EQUAL_FATAL(write_file(path, MCAP_COMPRESSION_ZSTD, 16 * 1024), 0);
	CU_ASSERT_EQUAL_FATAL(read_file(path, &b, &n), 0);
	size_t k = chunk_ends(b, n, ends, 1024);
	CU_ASSERT_TRUE(k > 10);
	size_t step = n / 500 + 1, tried = 0, errors = 0, partial = 0;
	for (size_t len = 0; len < n; len += (len < 200 ? 1 : step)) {
		write_bytes(cut, b, len);
		long got = read_all(cut, 0, &complete, err, sizeof(err));
		tried++;
		if (got == -1) {
			/* Only a file cut before its first record may fail. */
			if (len >= 8 + 9 + 40) {
				fprintf(stderr, "\ncut at %zu: %s\n", len, err);
				CU_FAIL("a cut file failed to open");
			}
			CU_ASSERT_PTR_NOT_NULL(strstr(err, "offset") ? err : strstr(err, "MCAP"));
			errors++;
			continue;
		}
		CU_ASSERT_TRUE(got >= 0);
		if (got == -2)
			fprintf(stderr, "\ncut at %zu: %s\n", len, err);
		CU_ASSERT_FALSE(complete);
		long want = 0;
		for (size_t i = 0; i < k; i++)
			if (ends[i].end <= len)
				want = ends[i].msgs_before;
		/* Everything in complete chunks is read; nothing made up. */
		if (got < want)
			fprintf(stderr, "\ncut at %zu: read %ld, %ld in whole chunks\n", len, got, want);
		CU_ASSERT_TRUE(got >= want);
		partial++;
	}
	printf("\n  %zu cuts: %zu errors (before the first record), %zu read as incomplete ",
	       tried, errors, partial);
	unlink(cut);
	free(b);
}

/* Reads a file with MCAP_READ_SALVAGE: every message must be one of
 * sent[], in order (gaps allowed: what was skipped). Returns how many, -1
 * when it does not open or a read fails, -2 on a wrong message. */
static long read_salvaged(const char *path, char *err, size_t errlen)
{
	mcap_reader *r;
	struct mcap_message m;
	long n = 0, j = 0;
	if (mcap_reader_open(path, MCAP_READ_SALVAGE, &r, err, errlen) != 0)
		return -1;
	int rc;
	while ((rc = mcap_reader_next(r, &m)) == 1) {
		while (j < N_SENT && (m.sequence != sent[j].seq || m.channel_id != sent[j].channel))
			j++;
		const struct sent *s = &sent[j];
		if (j == N_SENT || m.log_time != s->log_time || m.publish_time != s->publish_time ||
		    m.size != s->size || !payload_ok(m.data, s)) {
			snprintf(err, errlen, "message %ld is none of those written", n);
			mcap_reader_close(r);
			return -2;
		}
		j++;
		n++;
	}
	if (rc < 0)
		snprintf(err, errlen, "%s", mcap_reader_error(r));
	mcap_reader_close(r);
	return rc < 0 ? -1 : n;
}

static void test_corrupted_everywhere(void)
{
	char path[256], bad[256], err[320];
	uint8_t *b = NULL;
	size_t n = 0;
	bool complete;
	snprintf(path, sizeof(path), "%s/corrupt-src.mcap", dir);
	snprintf(bad, sizeof(bad), "%s/corrupt.mcap", dir);
	for (int comp = 0; comp < 3; comp++) {
		CU_ASSERT_EQUAL_FATAL(write_file(path, (enum mcap_compression)comp, 16 * 1024), 0);
		CU_ASSERT_EQUAL_FATAL(read_file(path, &b, &n), 0);
		size_t step = n / 200 + 1, undetected = 0, wrong = 0, tried = 0;
		struct chunk_end ends[1024];
		size_t k = chunk_ends(b, n, ends, 1024);
		long most = 0, lost_most = 0;
		for (size_t i = 0; i < k; i++)
			if (ends[i].msgs_before - (i ? ends[i - 1].msgs_before : 0) > most)
				most = ends[i].msgs_before - (i ? ends[i - 1].msgs_before : 0);
		for (size_t at = 0; at < n; at += (at < 40 || at > n - 150 ? 1 : step)) {
			for (int v = 0; v < 2; v++) {
				uint8_t old = b[at];
				b[at] = v ? (uint8_t)(old ^ 0x01) : (uint8_t)(old ^ 0xff);
				write_bytes(bad, b, n);
				b[at] = old;
				tried++;
				/* Without the data CRC: no crash, and no wrong message
				 * passed off as good (the chunk CRCs see them; what they
				 * do not cover holds no message). */
				for (unsigned f = 0; f <= MCAP_READ_SCAN; f += MCAP_READ_SCAN) {
					if (read_all(bad, f, &complete, err, sizeof(err)) == -2) {
						fprintf(stderr, "\nflip at %zu (of %zu), flags %u: %s\n",
							at, n, f, err);
						wrong++;
					}
				}
				/* Salvaged: no wrong message either, and one damaged
				 * byte costs at most the messages of one chunk (the
				 * magic and Header aside, without which it is not MCAP). */
				long got = read_salvaged(bad, err, sizeof(err));
				if (got == -2 || (got == -1 && at >= 8 + 9 + 40) ||
				    (got >= 0 && N_SENT - got > most)) {
					fprintf(stderr, "\nflip at %zu (of %zu), salvaged %ld of %d: %s\n",
						at, n, got, N_SENT, got < 0 ? err : "");
					wrong++;
				}
				if (got >= 0 && N_SENT - got > lost_most)
					lost_most = N_SENT - got;
				/* With it: every flipped byte is noticed. */
				got = read_all(bad, MCAP_READ_VERIFY_DATA_CRC, &complete, err,
					       sizeof(err));
				if (got >= 0 && complete) {
					undetected++;
					fprintf(stderr, "\nflip at %zu (of %zu) not detected\n", at, n);
				} else if (got == -1 && !strstr(err, "offset")) {
					fprintf(stderr, "\nflip at %zu: error without an offset: %s\n", at,
						err);
					CU_FAIL("error does not name an offset");
				}
			}
		}
		CU_ASSERT_EQUAL(undetected, 0);
		CU_ASSERT_EQUAL(wrong, 0);
		printf("\n  %s: %zu flipped bytes, all detected; salvaged, at most %ld of %d "
		       "messages lost (the most in one chunk: %ld) ",
		       comp ? mcap_compression_name((enum mcap_compression)comp) : "none", tried,
		       lost_most, N_SENT, most);
		free(b);
	}
	unlink(bad);
}

/* A writer on path with one untyped channel (its id in *cid). */
static mcap_writer *one_channel_writer(const char *path, enum mcap_compression comp,
				       uint16_t *cid)
{
	char err[320];
	struct mcap_writer_options o;
	mcap_writer *w = NULL;
	mcap_writer_options_init(&o);
	o.compression = comp;
	o.chunk_size = 1 << 20;
	CU_ASSERT_EQUAL(mcap_writer_open(path, &o, &w, err, sizeof(err)), 0);
	if (w)
		CU_ASSERT_EQUAL(mcap_writer_add_channel(w, 0, "t", "x", NULL, 0, cid), 0);
	return w;
}

/* The offset of the second top-level Chunk record of a file (the first
 * follows the Header), or n. */
static size_t second_chunk(const uint8_t *b, size_t n)
{
	size_t at = 8 + 9 + (size_t)mcap_get64(b + 9);
	if (at >= n || b[at] != MCAP_OP_CHUNK)
		return n;
	do
		at += 9 + (size_t)mcap_get64(b + at + 1);
	while (at < n && b[at] != MCAP_OP_CHUNK);
	return at < n ? at : n;
}

/* A message may itself hold MCAP bytes (a topic carrying recordings):
 * salvage must never resume inside one. Message 1's payload is a whole
 * Chunk record holding a message "FAKE" on the file's own channel; the
 * chunk that carries it (alone) is damaged before it. In a complete file the
 * summary says where chunks are, so even a fake with a good CRC is passed
 * over; in a file cut short only a CRC can vouch, so one without a CRC is. */
static void salvage_nested(bool fake_crc, bool cut)
{
	char path[256], err[320];
	snprintf(path, sizeof(path), "%s/nested.mcap", dir);
	uint16_t cid = 0;
	mcap_writer *w = one_channel_writer(path, MCAP_COMPRESSION_NONE, &cid);
	CU_ASSERT_PTR_NOT_NULL_FATAL(w);
	/* The fake: a Chunk of one Message record, compression "". */
	struct mcap_buf in = { 0 }, fake = { 0 };
	size_t at = mcap_buf_record_begin(&in, MCAP_OP_MESSAGE);
	mcap_buf_u16(&in, cid);
	mcap_buf_u32(&in, 99);
	mcap_buf_u64(&in, 5);
	mcap_buf_u64(&in, 5);
	mcap_buf_bytes(&in, "FAKE", 4);
	mcap_buf_record_end(&in, at);
	at = mcap_buf_record_begin(&fake, MCAP_OP_CHUNK);
	mcap_buf_u64(&fake, 5);
	mcap_buf_u64(&fake, 5);
	mcap_buf_u64(&fake, in.size);
	mcap_buf_u32(&fake, fake_crc ? mcap_crc32(mcap_crc32(0, NULL, 0), in.data, in.size) : 0);
	mcap_buf_str(&fake, "");
	mcap_buf_u64(&fake, in.size);
	mcap_buf_bytes(&fake, in.data, in.size);
	mcap_buf_record_end(&fake, at);
	CU_ASSERT_EQUAL(mcap_writer_message(w, cid, 0, 1, 1, "first", 5), 0);
	CU_ASSERT_EQUAL(mcap_writer_flush(w), 0);
	CU_ASSERT_EQUAL(mcap_writer_message(w, cid, 1, 2, 2, fake.data, fake.size), 0);
	CU_ASSERT_EQUAL(mcap_writer_flush(w), 0);
	for (uint32_t i = 2; i < 10; i++)
		CU_ASSERT_EQUAL(mcap_writer_message(w, cid, i, i + 1, i + 1, "later", 5), 0);
	CU_ASSERT_EQUAL(mcap_writer_flush(w), 0);
	size_t cut_at = (size_t)mcap_writer_size(w);
	CU_ASSERT_EQUAL(mcap_writer_close(w, err, sizeof(err)), 0);
	mcap_buf_free(&in);
	mcap_buf_free(&fake);

	uint8_t *b = NULL;
	size_t n = 0;
	CU_ASSERT_EQUAL_FATAL(read_file(path, &b, &n), 0);
	/* The second chunk (the first defines the channel) carries the fake;
	 * its CRC field is damaged. */
	size_t second = second_chunk(b, n);
	CU_ASSERT_FATAL(second < n);
	b[second + 9 + 24] ^= 0x01;
	write_bytes(path, b, cut ? cut_at : n);
	free(b);
	mcap_reader *r;
	struct mcap_message m;
	CU_ASSERT_EQUAL_FATAL(mcap_reader_open(path, MCAP_READ_SALVAGE, &r, err, sizeof(err)), 0);
	int got = 0, fakes = 0, rc;
	while ((rc = mcap_reader_next(r, &m)) == 1) {
		fakes += m.size == 4 && memcmp(m.data, "FAKE", 4) == 0;
		got += m.size == 5 && memcmp(m.data, "later", 5) == 0;
	}
	CU_ASSERT_EQUAL(rc, 0);
	if (fakes || got != 8)
		fprintf(stderr, "\nnested chunk (fake %s a CRC, file %s): %d fakes, %d of 8 after\n",
			fake_crc ? "with" : "without", cut ? "cut short" : "complete", fakes, got);
	CU_ASSERT_EQUAL(fakes, 0);
	CU_ASSERT_EQUAL(got, 8);
	CU_ASSERT_EQUAL(mcap_reader_info(r)->damaged_ranges, 1);
	mcap_reader_close(r);
}

/* A Chunk whose opcode is damaged into a Message's reads as a message
 * (channel and sequence from the chunk's start time) unless the
 * MessageIndex records after it give it away. The middle chunk's start
 * time is the channel's id. */
static void salvage_chunk_as_message(void)
{
	char path[256], err[320];
	snprintf(path, sizeof(path), "%s/as-message.mcap", dir);
	uint16_t cid = 0;
	mcap_writer *w = one_channel_writer(path, MCAP_COMPRESSION_ZSTD, &cid);
	CU_ASSERT_PTR_NOT_NULL_FATAL(w);
	for (uint32_t i = 0; i < 3; i++) {
		CU_ASSERT_EQUAL(mcap_writer_message(w, cid, i, i ? cid : 0, 0, "good", 4), 0);
		CU_ASSERT_EQUAL(mcap_writer_flush(w), 0);
	}
	CU_ASSERT_EQUAL(mcap_writer_close(w, err, sizeof(err)), 0);
	uint8_t *b = NULL;
	size_t n = 0;
	CU_ASSERT_EQUAL_FATAL(read_file(path, &b, &n), 0);
	size_t at = second_chunk(b, n);
	CU_ASSERT_FATAL(at < n);
	b[at] = MCAP_OP_MESSAGE;
	write_bytes(path, b, n);
	free(b);
	mcap_reader *r;
	struct mcap_message m;
	CU_ASSERT_EQUAL_FATAL(mcap_reader_open(path, MCAP_READ_SALVAGE, &r, err, sizeof(err)), 0);
	int good = 0, other = 0, rc;
	while ((rc = mcap_reader_next(r, &m)) == 1) {
		if (m.size == 4 && memcmp(m.data, "good", 4) == 0)
			good++;
		else
			other++;
	}
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT_EQUAL(good, 2);
	CU_ASSERT_EQUAL(other, 0);
	mcap_reader_close(r);
}

static void test_salvage_nested(void)
{
	salvage_nested(true, false);
	salvage_nested(false, true);
	salvage_chunk_as_message();
}

static void test_not_mcap(void)
{
	char path[256], err[320] = "";
	mcap_reader *r;
	snprintf(path, sizeof(path), "%s/garbage.mcap", dir);
	write_bytes(path, (const uint8_t *)"hello, world, this is not an mcap file", 38);
	CU_ASSERT_EQUAL(mcap_reader_open(path, 0, &r, err, sizeof(err)), -EBADMSG);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "not an MCAP file"));
	CU_ASSERT_NOT_EQUAL(mcap_reader_open("/nonexistent/x.mcap", 0, &r, err, sizeof(err)), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "No such file"));
}

/* A chunk larger than the reader keeps in memory whole (64 MiB) is
 * streamed: its message still reads back exactly, and a damaged byte in
 * it is still caught by the chunk's CRC. */
static void test_large_chunk_streamed(void)
{
	static const enum mcap_compression comps[] = { MCAP_COMPRESSION_NONE,
						       MCAP_COMPRESSION_LZ4,
						       MCAP_COMPRESSION_ZSTD };
	const size_t big = (size_t)80 << 20;
	uint8_t *buf = malloc(big);
	CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
	for (size_t i = 0; i < big; i++)
		buf[i] = (uint8_t)(i * 7 + (i >> 13));
	for (size_t k = 0; k < 3; k++) {
		char path[256], err[320] = "";
		snprintf(path, sizeof(path), "%s/big-%zu.mcap", dir, k);
		struct mcap_writer_options o;
		mcap_writer *w;
		uint16_t cid;
		mcap_writer_options_init(&o);
		o.compression = comps[k];
		CU_ASSERT_EQUAL_FATAL(mcap_writer_open(path, &o, &w, err, sizeof(err)), 0);
		CU_ASSERT_EQUAL(mcap_writer_add_channel(w, 0, "big", "x", NULL, 0, &cid), 0);
		CU_ASSERT_EQUAL(mcap_writer_message(w, cid, 1, 10, 10, "small", 5), 0);
		CU_ASSERT_EQUAL(mcap_writer_message(w, cid, 2, 11, 11, buf, big), 0);
		CU_ASSERT_EQUAL(mcap_writer_message(w, cid, 3, 12, 12, "after", 5), 0);
		CU_ASSERT_EQUAL(mcap_writer_close(w, err, sizeof(err)), 0);
		for (unsigned flags = 0; flags <= MCAP_READ_SCAN; flags += MCAP_READ_SCAN) {
			mcap_reader *r;
			struct mcap_message m;
			CU_ASSERT_EQUAL_FATAL(mcap_reader_open(path, flags, &r, err, sizeof(err)), 0);
			CU_ASSERT_EQUAL(mcap_reader_info(r)->message_count, 3);
			const struct mcap_channel *ch;
			CU_ASSERT_EQUAL(mcap_reader_channels(r, &ch), 1);
			if (flags & MCAP_READ_SCAN)
				CU_ASSERT_EQUAL(ch[0].max_message_size, big);
			int n = 0;
			while (mcap_reader_next(r, &m) == 1) {
				n++;
				bool ok = m.sequence == 2 ? m.size == big && !memcmp(m.data, buf, big)
							  : m.size == 5;
				CU_ASSERT_TRUE(ok);
			}
			CU_ASSERT_EQUAL(n, 3);
			mcap_reader_close(r);
		}
		if (comps[k] != MCAP_COMPRESSION_NONE)
			continue;
		/* A flipped byte in the middle of the big message: caught. */
		uint8_t *file = NULL;
		size_t size = 0;
		CU_ASSERT_EQUAL_FATAL(read_file(path, &file, &size), 0);
		file[size / 2] ^= 0x10;
		write_bytes(path, file, size);
		free(file);
		mcap_reader *r;
		struct mcap_message m;
		CU_ASSERT_EQUAL_FATAL(mcap_reader_open(path, 0, &r, err, sizeof(err)), 0);
		int rc;
		while ((rc = mcap_reader_next(r, &m)) == 1)
			;
		CU_ASSERT_EQUAL(rc, -EBADMSG);
		CU_ASSERT_PTR_NOT_NULL(strstr(mcap_reader_error(r), "CRC mismatch"));
		mcap_reader_close(r);
		/* Salvaged: what follows the damaged chunk (the first message
		 * shares its chunk and goes with it), and the damage named. */
		CU_ASSERT_EQUAL_FATAL(mcap_reader_open(path, MCAP_READ_SALVAGE, &r, err, sizeof(err)), 0);
		unsigned seen = 0;
		while ((rc = mcap_reader_next(r, &m)) == 1)
			seen |= 1u << m.sequence;
		CU_ASSERT_EQUAL(rc, 0);
		CU_ASSERT_EQUAL(seen, 1u << 3);
		CU_ASSERT_EQUAL(mcap_reader_info(r)->damaged_ranges, 1);
		uint64_t from = 0, to = 0;
		const char *why = "";
		CU_ASSERT_EQUAL(mcap_reader_damage(r, 0, &from, &to, &why), 0);
		CU_ASSERT_TRUE(from < size / 2 && to > size / 2);
		CU_ASSERT_PTR_NOT_NULL(strstr(why, "CRC mismatch"));
		mcap_reader_close(r);
	}
	free(buf);
}

/* The writer's CRC (ISA-L) is the one MCAP readers check, zlib's: equal
 * on every length (the vector code has 16, 64 and 256-byte steps, so
 * lengths and starts around those), every alignment, and chained from any
 * earlier CRC the way the writer chains them, message by message. */
static void test_crc_is_zlibs(void)
{
	enum { MAX = 70000 };
	uint8_t *buf = malloc(MAX + 64);
	CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
	uint32_t seed = 12345;
	for (size_t i = 0; i < MAX + 64; i++) {
		seed = seed * 1103515245u + 12345u;
		buf[i] = (uint8_t)(seed >> 23);
	}
	unsigned bad = 0, checked = 0;
	CU_ASSERT_EQUAL(mcap_crc32(0, NULL, 0), (uint32_t)crc32(0, NULL, 0));
	for (size_t len = 0; len < MAX; len += len < 600 ? 1 : len < 5000 ? 61 : 4093) {
		for (size_t align = 0; align < 64; align += len < 600 ? 13 : 1) {
			uint32_t prev = (uint32_t)(len * 2654435761u + align);
			uint32_t mine = mcap_crc32(prev, buf + align, len);
			uint32_t zlibs = (uint32_t)crc32(prev, buf + align, (uInt)len);
			bad += mine != zlibs;
			checked++;
		}
	}
	/* A chunk's CRC as the writer keeps it: piece by piece. */
	uint32_t whole = (uint32_t)crc32(0, buf, MAX), pieces = 0;
	for (size_t at = 0, step = 1; at < MAX; at += step, step = step * 3 + 1)
		pieces = mcap_crc32(pieces, buf + at, at + step > MAX ? MAX - at : step);
	CU_ASSERT_EQUAL(pieces, whole);
	CU_ASSERT_EQUAL(bad, 0);
	CU_ASSERT(checked > 8000); /* the loops ran */
	free(buf);
}

static bool quick;

static void add(void)
{
	CU_pSuite s = CU_add_suite("mcap_file", NULL, NULL);
	CU_add_test(s, "the CRC is zlib's", test_crc_is_zlibs);
	CU_add_test(s, "round trip, no compression", test_round_trip_none);
	CU_add_test(s, "round trip, lz4", test_round_trip_lz4);
	CU_add_test(s, "round trip, zstd", test_round_trip_zstd);
	if (quick) /* the writer thread under ThreadSanitizer */
		return;
	CU_add_test(s, "empty file", test_empty_file);
	CU_add_test(s, "not an MCAP file", test_not_mcap);
	CU_add_test(s, "truncated at every offset", test_truncated_everywhere);
	CU_add_test(s, "corrupted at every offset", test_corrupted_everywhere);
	CU_add_test(s, "salvage reads no message out of what is not one", test_salvage_nested);
	CU_add_test(s, "a chunk too large to keep whole is streamed", test_large_chunk_streamed);
}

int main(int argc, char **argv)
{
	foxglove_check_setup(argc > 1 ? argv[1] : NULL, argc > 2 ? argv[2] : NULL);
	quick = argc > 3 && strcmp(argv[3], "quick") == 0;
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	add();
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	unsigned failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
	CU_cleanup_registry();
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
	return failed ? 1 : 0;
}
