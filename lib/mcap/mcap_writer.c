/*
 * mcap_writer.c - writes MCAP files: records are gathered in an
 * uncompressed chunk buffer (Schema and Channel records there too, before
 * the messages that use them), and a full chunk goes to the file in one
 * writev: the Chunk record, then one MessageIndex per channel. close()
 * adds DataEnd, the summary (Schema, Channel, Statistics, ChunkIndex,
 * MetadataIndex groups), SummaryOffsets, Footer and magic.
 *
 * A failed write (disk full) cuts the file back to the end of the last
 * complete chunk, so what is on disk is always a valid data section that
 * readers can scan; close() then tries to finish it properly.
 *
 * With opts.background, a full chunk is handed to a writer thread
 * (compression, writev) while the caller fills the next one: up to
 * MCAP_JOBS sealed chunks queue for it, so a slow moment of the disk or
 * the compressor does not stop the caller. The caller waits only when the
 * queue is full. The mutex guards what the thread
 * updates (position, CRC, indexes, counts, the error) and the schema and
 * channel tables it marks written.
 */
#include "mcap_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/uio.h>
#include <unistd.h>

struct wchannel {
	bool written;          /* its record is in the file (not just a chunk) */
	uint64_t count;        /* messages in the file */
	uint64_t chunk_count;  /* messages in the chunk being built */
	struct mcap_buf index; /* this chunk's (log_time, offset) pairs */
	struct mcap_buf record;
};

struct wschema {
	bool written;
	struct mcap_buf record;
};

/* A sealed chunk on its way to the file. */
struct job_channel {
	uint16_t id;
	uint64_t mi_off; /* its MessageIndex record's offset in job.mi */
	uint64_t count;
};

struct job {
	struct mcap_buf records; /* the uncompressed chunk */
	struct mcap_buf mi;      /* MessageIndex records that follow it */
	struct job_channel *chans;
	size_t n_chans, cap_chans;
	uint64_t start, end, msgs;
	uint32_t crc; /* of records */
	size_t schemas_upto, channels_upto; /* written with this chunk */
};

#define MCAP_JOBS 8

struct mcap_writer {
	int fd;
	char *path;
	struct mcap_writer_options opts;
	uint64_t pos;      /* bytes in the file */
	uint32_t data_crc; /* CRC32 of bytes 0..pos */
	int error;         /* first write error; the writer only closes after */
	char err[320];
	char io_err[256];

	struct wschema *schemas; /* [id - 1] */
	size_t n_schemas;
	struct wchannel *channels; /* [id - 1] */
	size_t n_channels;
	uint16_t *chunk_channels; /* channel ids with messages in this chunk */
	size_t n_chunk_channels;

	bool threaded;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool quit;
	struct job jobs[MCAP_JOBS]; /* [head % MCAP_JOBS .. tail % MCAP_JOBS) queued */
	uint64_t head, tail;
	uint64_t accepted; /* messages kept by message_end */
	/* Used by whoever writes chunks (the thread, or the caller). */
	struct mcap_buf packed;
	void *zctx;

	struct mcap_buf chunk; /* uncompressed records of the chunk */
	uint64_t chunk_start, chunk_end, chunk_msgs;
	/* CRC of the chunk's records so far, kept as they are added: the
	 * bytes are still in cache then, and the writer thread has the
	 * write to do. */
	uint32_t chunk_crc;
	size_t pending_at;     /* begin/end: where the open message starts */
	uint16_t pending_channel;
	uint64_t pending_time;
	bool pending;

	uint64_t messages, dropped;
	uint64_t start_time, end_time;
	uint32_t chunk_count, metadata_count;
	struct mcap_buf chunk_indexes; /* serialized ChunkIndex records */
	struct mcap_buf metadata_indexes;
	struct mcap_buf scratch;
};

static void *writer_thread(void *arg);
static void prefault(struct mcap_buf *b, size_t n, int zero);

__attribute__((format(printf, 3, 4)))
static int fail(mcap_writer *w, int rc, const char *fmt, ...)
{
	va_list ap;
	if (w->error) /* w->lock held, or no thread */
		return rc;
	va_start(ap, fmt);
	vsnprintf(w->err, sizeof(w->err), fmt, ap);
	va_end(ap);
	w->error = rc;
	return rc;
}

void mcap_writer_options_init(struct mcap_writer_options *opts)
{
	memset(opts, 0, sizeof(*opts));
	opts->compression = MCAP_COMPRESSION_ZSTD;
	opts->chunk_size = 4u << 20;
	opts->zstd_level = 1;
	opts->library = "shmbus-mcap";
	opts->profile = "";
}

/* Write every byte of iov at the end of the file (*pos: its size). On
 * failure the file is cut back to where it was, so it never ends in half a
 * record, and w->io_err says why. One writer at a time: the writer thread
 * while a chunk is in flight, else the caller. */
static int write_all(mcap_writer *w, struct iovec *iov, int n, const char *what, uint64_t *pos)
{
	uint64_t start = *pos, total = 0;
	for (int i = 0; i < n; i++)
		total += iov[i].iov_len;
	while (n > 0) {
		ssize_t got = writev(w->fd, iov, n > IOV_MAX ? IOV_MAX : n);
		if (got < 0) {
			if (errno == EINTR)
				continue;
			int e = errno;
			/* Give the partial record's space back (and make the
			 * file end at a record boundary). */
			if (ftruncate(w->fd, (off_t)start) == 0)
				(void)lseek(w->fd, (off_t)start, SEEK_SET);
			*pos = start;
			snprintf(w->io_err, sizeof(w->io_err),
				 "%s: writing %s (%llu bytes at offset %llu): %s%s", w->path, what,
				 (unsigned long long)total, (unsigned long long)start, strerror(e),
				 e == ENOSPC ? " (disk full; the file is kept up to the last "
					       "complete chunk)" : "");
			return -e;
		}
		*pos += (uint64_t)got;
		size_t left = (size_t)got;
		while (n > 0 && left >= iov->iov_len) {
			left -= iov->iov_len;
			iov++;
			n--;
		}
		if (n > 0) {
			iov->iov_base = (char *)iov->iov_base + left;
			iov->iov_len -= left;
		}
	}
	return 0;
}

/* A record written by the caller (no chunk in flight). */
static int write_buf(mcap_writer *w, const struct mcap_buf *b, const char *what)
{
	struct iovec iov = { b->data, b->size };
	int rc;
	pthread_mutex_lock(&w->lock);
	if (b->failed) {
		rc = fail(w, -ENOMEM, "out of memory building %s", what);
	} else if ((rc = write_all(w, &iov, 1, what, &w->pos)) != 0) {
		fail(w, rc, "%s", w->io_err);
	} else {
		w->data_crc = mcap_crc32(w->data_crc, b->data, b->size);
	}
	pthread_mutex_unlock(&w->lock);
	return rc;
}

int mcap_writer_open(const char *path, const struct mcap_writer_options *opts,
		     mcap_writer **out, char *err, size_t errlen)
{
	mcap_writer *w = calloc(1, sizeof(*w));
	*out = NULL;
	if (!w || !(w->path = strdup(path))) {
		free(w);
		snprintf(err ? err : (char[1]){ 0 }, err ? errlen : 1, "out of memory");
		return -ENOMEM;
	}
	if (opts)
		w->opts = *opts;
	else
		mcap_writer_options_init(&w->opts);
	if (!w->opts.chunk_size)
		w->opts.chunk_size = 4u << 20;
	if (!w->opts.library)
		w->opts.library = "shmbus-mcap";
	w->data_crc = mcap_crc32(0, NULL, 0);
	w->chunk_crc = w->data_crc;
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cond, NULL);
	/* 0666 less the umask, as every tool that writes a file */
	w->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
	if (w->fd < 0) {
		int e = errno;
		if (err)
			snprintf(err, errlen, "%s: %s", path, strerror(e));
		free(w->path);
		free(w);
		return -e;
	}
	struct mcap_buf *b = &w->scratch;
	b->size = 0;
	mcap_buf_bytes(b, MCAP_MAGIC, MCAP_MAGIC_SIZE);
	size_t at = mcap_buf_record_begin(b, MCAP_OP_HEADER);
	mcap_buf_str(b, w->opts.profile);
	mcap_buf_str(b, w->opts.library);
	mcap_buf_record_end(b, at);
	int rc = write_buf(w, b, "the header");
	if (rc) {
		if (err)
			snprintf(err, errlen, "%s", w->err);
		close(w->fd);
		unlink(path);
		mcap_buf_free(&w->scratch);
		free(w->path);
		free(w);
		return rc;
	}
	/* Fault the chunk buffers in now: on a busy machine a page fault can
	 * take 50 us, and a chunk's worth of them while recording is a stall
	 * long enough to lose messages. */
	int zero = open("/dev/zero", O_RDONLY | O_CLOEXEC);
	size_t warm = 2 * w->opts.chunk_size;
	prefault(&w->chunk, warm, zero);
	if (w->opts.background) {
		for (int i = 0; i < MCAP_JOBS; i++)
			prefault(&w->jobs[i].records, warm, zero);
		if (w->opts.compression != MCAP_COMPRESSION_NONE)
			prefault(&w->packed, warm + warm / 8 + 65536, zero);
		if (pthread_create(&w->thread, NULL, writer_thread, w) == 0)
			w->threaded = true;
		/* else: write chunks from the caller's thread */
	}
	if (zero >= 0)
		close(zero);
	*out = w;
	return 0;
}

/* Touched from both sides: the kernel's first look at a page of ours can
 * cost as much as our own first touch (on the paravirtualised VM we build
 * on, the first write() of a freshly memset 4 MiB buffer into tmpfs took
 * 10 ms, later ones 1 ms; read() from /dev/zero into it first made the
 * first write 1-1.6 ms), so the kernel fills the buffer (read() from
 * /dev/zero, `zero`; -1: none) and then we do. */
static void prefault(struct mcap_buf *b, size_t n, int zero)
{
	if (mcap_buf_reserve(b, n) == 0) {
		for (size_t at = 0; zero >= 0 && at < b->cap;) {
			ssize_t got = read(zero, b->data + at, b->cap - at);
			if (got <= 0)
				break; /* not needed for correctness */
			at += (size_t)got;
		}
		memset(b->data, 0, b->cap);
	}
	b->failed = 0; /* not fatal: grown later as needed */
}

static void put_map_kv(struct mcap_buf *b, const struct mcap_kv *kv, size_t n)
{
	size_t at = b->size;
	mcap_buf_u32(b, 0);
	for (size_t i = 0; i < n; i++) {
		mcap_buf_str(b, kv[i].key);
		mcap_buf_str(b, kv[i].value);
	}
	if (!b->failed)
		mcap_put32(b->data + at, (uint32_t)(b->size - at - 4));
}

static int current_error(mcap_writer *w)
{
	pthread_mutex_lock(&w->lock);
	int rc = w->error;
	pthread_mutex_unlock(&w->lock);
	return rc;
}

int mcap_writer_add_schema(mcap_writer *w, const char *name, const char *encoding,
			   const void *data, size_t size, uint16_t *id)
{
	int rc = current_error(w);
	if (rc)
		return rc;
	if (w->n_schemas >= UINT16_MAX || size > UINT32_MAX)
		return -EINVAL;
	pthread_mutex_lock(&w->lock); /* the writer thread marks entries written */
	struct wschema *v = realloc(w->schemas, (w->n_schemas + 1) * sizeof(*v));
	if (v)
		w->schemas = v;
	pthread_mutex_unlock(&w->lock);
	if (!v)
		return -ENOMEM;
	struct wschema *s = &v[w->n_schemas];
	memset(s, 0, sizeof(*s));
	uint16_t sid = (uint16_t)(w->n_schemas + 1);
	size_t at = mcap_buf_record_begin(&s->record, MCAP_OP_SCHEMA);
	mcap_buf_u16(&s->record, sid);
	mcap_buf_str(&s->record, name);
	mcap_buf_str(&s->record, encoding);
	mcap_buf_u32(&s->record, (uint32_t)size);
	mcap_buf_bytes(&s->record, data, size);
	mcap_buf_record_end(&s->record, at);
	mcap_buf_bytes(&w->chunk, s->record.data, s->record.size);
	w->chunk_crc = mcap_crc32(w->chunk_crc, s->record.data, s->record.size);
	if (s->record.failed || w->chunk.failed) {
		mcap_buf_free(&s->record);
		return -ENOMEM;
	}
	pthread_mutex_lock(&w->lock);
	w->n_schemas++;
	pthread_mutex_unlock(&w->lock);
	*id = sid;
	return 0;
}

int mcap_writer_add_channel(mcap_writer *w, uint16_t schema_id, const char *topic,
			    const char *message_encoding, const struct mcap_kv *metadata,
			    size_t n_metadata, uint16_t *id)
{
	int rc = current_error(w);
	if (rc)
		return rc;
	if (w->n_channels >= UINT16_MAX || schema_id > w->n_schemas)
		return -EINVAL;
	pthread_mutex_lock(&w->lock);
	struct wchannel *v = realloc(w->channels, (w->n_channels + 1) * sizeof(*v));
	if (v)
		w->channels = v;
	pthread_mutex_unlock(&w->lock);
	if (!v)
		return -ENOMEM;
	uint16_t *cc = realloc(w->chunk_channels, (w->n_channels + 1) * sizeof(*cc));
	if (!cc)
		return -ENOMEM;
	w->chunk_channels = cc;
	struct wchannel *c = &v[w->n_channels];
	memset(c, 0, sizeof(*c));
	uint16_t cid = (uint16_t)(w->n_channels + 1);
	size_t at = mcap_buf_record_begin(&c->record, MCAP_OP_CHANNEL);
	mcap_buf_u16(&c->record, cid);
	mcap_buf_u16(&c->record, schema_id);
	mcap_buf_str(&c->record, topic);
	mcap_buf_str(&c->record, message_encoding);
	put_map_kv(&c->record, metadata, n_metadata);
	mcap_buf_record_end(&c->record, at);
	mcap_buf_bytes(&w->chunk, c->record.data, c->record.size);
	w->chunk_crc = mcap_crc32(w->chunk_crc, c->record.data, c->record.size);
	if (c->record.failed || w->chunk.failed) {
		mcap_buf_free(&c->record);
		return -ENOMEM;
	}
	pthread_mutex_lock(&w->lock);
	w->n_channels++;
	pthread_mutex_unlock(&w->lock);
	*id = cid;
	return 0;
}

/* The Chunk record's fields before its compressed records. */
static void chunk_header(mcap_writer *w, const struct job *j, struct mcap_buf *b, uint32_t crc,
			 size_t payload)
{
	const char *comp = mcap_compression_name(w->opts.compression);
	size_t comp_len = strlen(comp);
	uint64_t content = 8 + 8 + 8 + 4 + 4 + comp_len + 8 + payload;
	mcap_buf_u8(b, MCAP_OP_CHUNK);
	mcap_buf_u64(b, content);
	mcap_buf_u64(b, j->start);
	mcap_buf_u64(b, j->end);
	mcap_buf_u64(b, j->records.size);
	mcap_buf_u32(b, crc);
	mcap_buf_str(b, comp);
	mcap_buf_u64(b, payload);
}

/* Writes a sealed chunk: CRC, compression, the Chunk record and its
 * MessageIndex records in one writev, then the bookkeeping. Runs on the
 * writer thread when there is one, touching only the job, the file and
 * (under the lock) the shared state. */
static void write_job(mcap_writer *w, struct job *j, struct mcap_buf *hb)
{
	uint32_t crc = j->crc;
	const uint8_t *packed = NULL;
	const uint8_t *payload = j->records.data;
	size_t payload_size = j->records.size;
	int rc = 0;
	char why[128] = "";
	if (w->opts.compression != MCAP_COMPRESSION_NONE) {
		rc = mcap_compress(w->opts.compression, w->opts.zstd_level, &w->zctx,
				   j->records.data, j->records.size, &w->packed, why, sizeof(why));
		packed = payload = w->packed.data;
		payload_size = w->packed.size;
	}
	hb->size = 0;
	chunk_header(w, j, hb, crc, payload_size);
	size_t header_size = hb->size;
	/* Only the writer of chunks moves pos while a job is in flight. */
	uint64_t chunk_offset = w->pos;
	uint64_t chunk_length = header_size + payload_size;

	struct mcap_buf ci = { 0 };
	size_t ci_at = mcap_buf_record_begin(&ci, MCAP_OP_CHUNK_INDEX);
	mcap_buf_u64(&ci, j->start);
	mcap_buf_u64(&ci, j->end);
	mcap_buf_u64(&ci, chunk_offset);
	mcap_buf_u64(&ci, chunk_length);
	mcap_buf_u32(&ci, (uint32_t)(j->n_chans * 10));
	for (size_t i = 0; i < j->n_chans; i++) {
		mcap_buf_u16(&ci, j->chans[i].id);
		mcap_buf_u64(&ci, chunk_offset + chunk_length + j->chans[i].mi_off);
	}
	mcap_buf_u64(&ci, j->mi.size);
	mcap_buf_str(&ci, mcap_compression_name(w->opts.compression));
	mcap_buf_u64(&ci, payload_size);
	mcap_buf_u64(&ci, j->records.size);
	mcap_buf_record_end(&ci, ci_at);

	pthread_mutex_lock(&w->lock);
	if (w->error) {
		rc = w->error; /* an earlier chunk failed: this one goes too */
	} else if (rc) {
		fail(w, rc, "compressing a chunk: %s", why);
	} else if (hb->failed || ci.failed || j->mi.failed || j->records.failed) {
		rc = fail(w, -ENOMEM, "out of memory building a chunk");
	}
	pthread_mutex_unlock(&w->lock);

	uint32_t data_crc = w->data_crc;
	if (rc == 0) {
		struct iovec iov[3] = {
			{ hb->data, header_size },
			{ (void *)payload, payload_size },
			{ j->mi.data, j->mi.size },
		};
		uint64_t pos = w->pos;
		rc = write_all(w, iov, 3, "a chunk", &pos);
		if (rc == 0) {
			/* The data-section CRC: the header, the records (whose CRC
			 * is known already when stored uncompressed), the indexes. */
			data_crc = mcap_crc32(data_crc, hb->data, header_size);
			if (packed)
				data_crc = mcap_crc32(data_crc, packed, payload_size);
			else
				data_crc = mcap_crc32_combine(data_crc, crc, payload_size);
			data_crc = mcap_crc32(data_crc, j->mi.data, j->mi.size);
		}
		pthread_mutex_lock(&w->lock);
		w->pos = pos;
		if (rc)
			fail(w, rc, "%s", w->io_err);
		pthread_mutex_unlock(&w->lock);
	}

	pthread_mutex_lock(&w->lock);
	if (rc) {
		w->dropped += j->msgs;
	} else {
		w->data_crc = data_crc;
		mcap_buf_bytes(&w->chunk_indexes, ci.data, ci.size);
		w->chunk_count++;
		for (size_t i = 0; i < j->schemas_upto; i++)
			w->schemas[i].written = true;
		for (size_t i = 0; i < j->channels_upto; i++)
			w->channels[i].written = true;
		for (size_t i = 0; i < j->n_chans; i++)
			w->channels[j->chans[i].id - 1].count += j->chans[i].count;
		if (j->msgs) {
			if (w->messages == 0 || j->start < w->start_time)
				w->start_time = j->start;
			if (w->messages == 0 || j->end > w->end_time)
				w->end_time = j->end;
		}
		w->messages += j->msgs;
	}
	pthread_mutex_unlock(&w->lock);
	mcap_buf_free(&ci);
}

/* Moves the chunk being built into job j (whose old buffer it takes for
 * the next chunk) with its MessageIndex records. Caller's thread. */
static void seal(mcap_writer *w, struct job *j)
{
	struct mcap_buf spare = j->records;
	j->records = w->chunk;
	w->chunk = spare;
	w->chunk.size = 0;
	w->chunk.failed = 0;
	/* Do not keep a buffer sized for one huge message forever. */
	if (w->chunk.cap > 4 * w->opts.chunk_size + (1u << 20))
		mcap_buf_free(&w->chunk);
	j->mi.size = 0;
	j->mi.failed = 0;
	j->n_chans = 0;
	if (j->cap_chans < w->n_chunk_channels) {
		struct job_channel *v = realloc(j->chans, w->n_channels * sizeof(*v));
		if (!v)
			j->mi.failed = 1; /* reported by write_job */
		else {
			j->chans = v;
			j->cap_chans = w->n_channels;
		}
	}
	for (size_t i = 0; i < w->n_chunk_channels && !j->mi.failed; i++) {
		uint16_t id = w->chunk_channels[i];
		struct wchannel *c = &w->channels[id - 1];
		j->chans[i] = (struct job_channel){ id, j->mi.size, c->chunk_count };
		size_t at = mcap_buf_record_begin(&j->mi, MCAP_OP_MESSAGE_INDEX);
		mcap_buf_u16(&j->mi, id);
		mcap_buf_u32(&j->mi, (uint32_t)c->index.size);
		mcap_buf_bytes(&j->mi, c->index.data, c->index.size);
		mcap_buf_record_end(&j->mi, at);
		j->n_chans++;
	}
	for (size_t i = 0; i < w->n_chunk_channels; i++) {
		struct wchannel *c = &w->channels[w->chunk_channels[i] - 1];
		c->chunk_count = 0;
		c->index.size = 0;
	}
	j->start = w->chunk_start;
	j->crc = w->chunk_crc;
	w->chunk_crc = mcap_crc32(0, NULL, 0);
	j->end = w->chunk_end;
	j->msgs = w->chunk_msgs;
	j->schemas_upto = w->n_schemas;
	j->channels_upto = w->n_channels;
	w->n_chunk_channels = 0;
	w->chunk_msgs = 0;
	w->chunk_start = w->chunk_end = 0;
}

static void *writer_thread(void *arg)
{
	mcap_writer *w = arg;
	struct mcap_buf hb = { 0 };
	pthread_mutex_lock(&w->lock);
	for (;;) {
		while (w->head == w->tail && !w->quit)
			pthread_cond_wait(&w->cond, &w->lock);
		if (w->head == w->tail)
			break;
		struct job *j = &w->jobs[w->head % MCAP_JOBS];
		pthread_mutex_unlock(&w->lock);
		write_job(w, j, &hb);
		pthread_mutex_lock(&w->lock);
		w->head++;
		pthread_cond_broadcast(&w->cond);
	}
	pthread_mutex_unlock(&w->lock);
	mcap_buf_free(&hb);
	return NULL;
}

/* Until the writer thread has nothing in flight. */
static void wait_idle(mcap_writer *w)
{
	pthread_mutex_lock(&w->lock);
	while (w->head != w->tail)
		pthread_cond_wait(&w->cond, &w->lock);
	pthread_mutex_unlock(&w->lock);
}

/* Hands the chunk being built to the file (or to the writer thread). */
static int end_chunk(mcap_writer *w)
{
	int rc = current_error(w);
	if (rc)
		return rc;
	if (w->chunk.size == 0)
		return 0;
	if (!w->threaded) {
		seal(w, &w->jobs[0]);
		write_job(w, &w->jobs[0], &w->scratch);
		return current_error(w);
	}
	pthread_mutex_lock(&w->lock);
	while (w->tail - w->head == MCAP_JOBS)
		pthread_cond_wait(&w->cond, &w->lock);
	rc = w->error;
	if (rc == 0) {
		/* The thread does not touch jobs outside [head, tail). */
		seal(w, &w->jobs[w->tail % MCAP_JOBS]);
		w->tail++;
		pthread_cond_broadcast(&w->cond);
	}
	pthread_mutex_unlock(&w->lock);
	return rc;
}

int mcap_writer_flush(mcap_writer *w)
{
	if (w->pending)
		return -EBUSY;
	int rc = end_chunk(w);
	if (w->threaded)
		wait_idle(w);
	return rc ? rc : current_error(w);
}

int mcap_writer_message_begin(mcap_writer *w, uint16_t channel_id, uint32_t sequence,
			      uint64_t log_time, uint64_t publish_time, size_t size, void **data)
{
	int rc = current_error(w);
	if (rc)
		return rc;
	if (w->pending)
		return -EBUSY;
	if (channel_id == 0 || channel_id > w->n_channels)
		return -EINVAL;
	size_t at = w->chunk.size;
	uint8_t *p = mcap_buf_grow(&w->chunk, MCAP_RECORD_PREFIX + MCAP_MESSAGE_FIXED + size);
	if (!p) {
		w->chunk.failed = 0;
		return -ENOMEM;
	}
	p[0] = MCAP_OP_MESSAGE;
	mcap_put64(p + 1, MCAP_MESSAGE_FIXED + size);
	mcap_put16(p + 9, channel_id);
	mcap_put32(p + 11, sequence);
	mcap_put64(p + 15, log_time);
	mcap_put64(p + 23, publish_time);
	*data = p + MCAP_RECORD_PREFIX + MCAP_MESSAGE_FIXED;
	w->pending = true;
	w->pending_at = at;
	w->pending_channel = channel_id;
	w->pending_time = log_time;
	return 0;
}

int mcap_writer_message_end(mcap_writer *w, bool keep)
{
	if (!w->pending)
		return -EINVAL;
	w->pending = false;
	if (!keep) {
		w->chunk.size = w->pending_at;
		return 0;
	}
	struct wchannel *c = &w->channels[w->pending_channel - 1];
	if (c->chunk_count == 0 && c->index.size == 0)
		w->chunk_channels[w->n_chunk_channels++] = w->pending_channel;
	uint8_t *e = mcap_buf_grow(&c->index, 16);
	if (!e) {
		c->index.failed = 0;
		w->chunk.size = w->pending_at;
		return -ENOMEM;
	}
	mcap_put64(e, w->pending_time);
	mcap_put64(e + 8, w->pending_at);
	c->chunk_count++;
	if (w->chunk_msgs == 0 || w->pending_time < w->chunk_start)
		w->chunk_start = w->pending_time;
	if (w->chunk_msgs == 0 || w->pending_time > w->chunk_end)
		w->chunk_end = w->pending_time;
	w->chunk_msgs++;
	w->accepted++;
	w->chunk_crc = mcap_crc32(w->chunk_crc, w->chunk.data + w->pending_at,
				  w->chunk.size - w->pending_at);
	if (w->chunk.size >= w->opts.chunk_size)
		return end_chunk(w);
	return 0;
}

int mcap_writer_message(mcap_writer *w, uint16_t channel_id, uint32_t sequence,
			uint64_t log_time, uint64_t publish_time, const void *data, size_t size)
{
	void *dst;
	int rc = mcap_writer_message_begin(w, channel_id, sequence, log_time, publish_time, size,
					   &dst);
	if (rc)
		return rc;
	if (size)
		memcpy(dst, data, size);
	return mcap_writer_message_end(w, true);
}

int mcap_writer_metadata(mcap_writer *w, const char *name, const struct mcap_kv *kv, size_t n)
{
	int rc = mcap_writer_flush(w);
	if (rc)
		return rc;
	struct mcap_buf *b = &w->scratch;
	b->size = 0;
	size_t at = mcap_buf_record_begin(b, MCAP_OP_METADATA);
	mcap_buf_str(b, name);
	put_map_kv(b, kv, n);
	mcap_buf_record_end(b, at);
	uint64_t offset = w->pos;
	size_t len = b->size;
	rc = write_buf(w, b, "a metadata record");
	if (rc)
		return rc;
	struct mcap_buf *mi = &w->metadata_indexes;
	at = mcap_buf_record_begin(mi, MCAP_OP_METADATA_INDEX);
	mcap_buf_u64(mi, offset);
	mcap_buf_u64(mi, len);
	mcap_buf_str(mi, name);
	mcap_buf_record_end(mi, at);
	w->metadata_count++;
	return 0;
}

uint64_t mcap_writer_size(mcap_writer *w)
{
	pthread_mutex_lock(&w->lock);
	uint64_t n = w->pos;
	for (uint64_t i = w->head; i < w->tail; i++)
		n += w->jobs[i % MCAP_JOBS].records.size;
	pthread_mutex_unlock(&w->lock);
	return n + w->chunk.size;
}

uint64_t mcap_writer_message_count(const mcap_writer *w)
{
	return w->accepted;
}

uint64_t mcap_writer_messages_dropped(mcap_writer *w)
{
	pthread_mutex_lock(&w->lock);
	uint64_t n = w->dropped;
	pthread_mutex_unlock(&w->lock);
	return n;
}

const char *mcap_writer_error(mcap_writer *w)
{
	/* The text is set once, with the error code, under the lock. */
	pthread_mutex_lock(&w->lock);
	const char *e = w->err;
	pthread_mutex_unlock(&w->lock);
	return e;
}

/* One group of summary records with the same opcode, and its offset
 * record. */
static void group_mark(struct mcap_buf *offs, uint8_t op, uint64_t start, uint64_t end)
{
	if (end == start)
		return;
	size_t at = mcap_buf_record_begin(offs, MCAP_OP_SUMMARY_OFFSET);
	mcap_buf_u8(offs, op);
	mcap_buf_u64(offs, start);
	mcap_buf_u64(offs, end - start);
	mcap_buf_record_end(offs, at);
}

/* DataEnd, summary, summary offsets, footer, magic: one buffer, one write. */
static int write_tail(mcap_writer *w)
{
	struct mcap_buf t = { 0 }, offs = { 0 };
	size_t at = mcap_buf_record_begin(&t, MCAP_OP_DATA_END);
	mcap_buf_u32(&t, w->data_crc);
	mcap_buf_record_end(&t, at);

	uint64_t summary_start = w->pos + t.size, g;
	size_t sum_at = t.size;
	g = w->pos + t.size;
	for (size_t i = 0; i < w->n_schemas; i++)
		if (w->schemas[i].written)
			mcap_buf_bytes(&t, w->schemas[i].record.data, w->schemas[i].record.size);
	group_mark(&offs, MCAP_OP_SCHEMA, g, w->pos + t.size);
	g = w->pos + t.size;
	uint32_t n_channels = 0;
	uint16_t n_schemas = 0;
	for (size_t i = 0; i < w->n_schemas; i++)
		n_schemas += w->schemas[i].written;
	for (size_t i = 0; i < w->n_channels; i++) {
		if (!w->channels[i].written)
			continue;
		mcap_buf_bytes(&t, w->channels[i].record.data, w->channels[i].record.size);
		n_channels++;
	}
	group_mark(&offs, MCAP_OP_CHANNEL, g, w->pos + t.size);

	g = w->pos + t.size;
	at = mcap_buf_record_begin(&t, MCAP_OP_STATISTICS);
	mcap_buf_u64(&t, w->messages);
	mcap_buf_u16(&t, n_schemas);
	mcap_buf_u32(&t, n_channels);
	mcap_buf_u32(&t, 0); /* attachments */
	mcap_buf_u32(&t, w->metadata_count);
	mcap_buf_u32(&t, w->chunk_count);
	mcap_buf_u64(&t, w->messages ? w->start_time : 0);
	mcap_buf_u64(&t, w->messages ? w->end_time : 0);
	mcap_buf_u32(&t, n_channels * 10);
	for (size_t i = 0; i < w->n_channels; i++) {
		if (!w->channels[i].written)
			continue;
		mcap_buf_u16(&t, (uint16_t)(i + 1));
		mcap_buf_u64(&t, w->channels[i].count);
	}
	mcap_buf_record_end(&t, at);
	group_mark(&offs, MCAP_OP_STATISTICS, g, w->pos + t.size);

	g = w->pos + t.size;
	mcap_buf_bytes(&t, w->chunk_indexes.data, w->chunk_indexes.size);
	group_mark(&offs, MCAP_OP_CHUNK_INDEX, g, w->pos + t.size);
	g = w->pos + t.size;
	mcap_buf_bytes(&t, w->metadata_indexes.data, w->metadata_indexes.size);
	group_mark(&offs, MCAP_OP_METADATA_INDEX, g, w->pos + t.size);

	uint64_t summary_offset_start = w->pos + t.size;
	mcap_buf_bytes(&t, offs.data, offs.size);
	mcap_buf_free(&offs);

	/* The summary CRC runs from the summary's first byte through the
	 * footer's summary_offset_start field. */
	mcap_buf_u8(&t, MCAP_OP_FOOTER);
	mcap_buf_u64(&t, 20); /* known now: the CRC covers it */
	mcap_buf_u64(&t, summary_start);
	mcap_buf_u64(&t, summary_offset_start);
	uint32_t crc = t.failed ? 0
				: mcap_crc32(mcap_crc32(0, NULL, 0), t.data + sum_at,
					     t.size - sum_at);
	mcap_buf_u32(&t, crc);
	mcap_buf_bytes(&t, MCAP_MAGIC, MCAP_MAGIC_SIZE);

	if (t.failed) {
		mcap_buf_free(&t);
		return fail(w, -ENOMEM, "out of memory building the summary");
	}
	struct iovec iov = { t.data, t.size };
	int rc = write_all(w, &iov, 1, "the summary", &w->pos);
	if (rc)
		fail(w, rc, "%s", w->io_err);
	mcap_buf_free(&t);
	return rc;
}

int mcap_writer_close(mcap_writer *w, char *err, size_t errlen)
{
	if (!w)
		return 0;
	if (w->pending)
		mcap_writer_message_end(w, false);
	mcap_writer_flush(w);
	if (w->threaded) {
		pthread_mutex_lock(&w->lock);
		w->quit = true;
		pthread_cond_broadcast(&w->cond);
		pthread_mutex_unlock(&w->lock);
		pthread_join(w->thread, NULL);
	}
	/* From here on this thread is the only one. */
	if (w->error)
		w->dropped += w->chunk_msgs; /* the chunk never sealed */
	/* Even after an error the data section is whole (write_all cut off
	 * any partial chunk); try to give it its summary. If even that does
	 * not fit, write_all cuts it off again and readers scan the file. */
	int first = w->error;
	write_tail(w);
	if (fsync(w->fd) != 0 && errno != EINVAL && errno != EROFS)
		fail(w, -errno, "%s: fsync: %s", w->path, strerror(errno));
	if (close(w->fd) != 0 && !w->error)
		fail(w, -errno, "%s: close: %s", w->path, strerror(errno));
	int rc = first ? first : w->error;
	if (err && errlen)
		snprintf(err, errlen, "%s", rc ? w->err : "");
	for (size_t i = 0; i < w->n_schemas; i++)
		mcap_buf_free(&w->schemas[i].record);
	for (size_t i = 0; i < w->n_channels; i++) {
		mcap_buf_free(&w->channels[i].record);
		mcap_buf_free(&w->channels[i].index);
	}
	free(w->schemas);
	free(w->channels);
	free(w->chunk_channels);
	mcap_buf_free(&w->chunk);
	mcap_buf_free(&w->chunk_indexes);
	mcap_buf_free(&w->metadata_indexes);
	mcap_buf_free(&w->scratch);
	mcap_buf_free(&w->packed);
	mcap_compress_free(w->zctx);
	for (int i = 0; i < MCAP_JOBS; i++) {
		mcap_buf_free(&w->jobs[i].records);
		mcap_buf_free(&w->jobs[i].mi);
		free(w->jobs[i].chans);
	}
	pthread_mutex_destroy(&w->lock);
	pthread_cond_destroy(&w->cond);
	free(w->path);
	free(w);
	return rc;
}
