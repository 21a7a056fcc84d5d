/*
 * mcap.h - reading and writing MCAP files, the container robotics tools
 * (Foxglove, the `mcap` CLI, rosbag2) record pub/sub messages in.
 *
 * No C library for MCAP exists, so this is our own implementation, written
 * from the MCAP specification (major version 0): magic, Header, chunked
 * Schema/Channel/Message records compressed with zstd or lz4 (frame format),
 * a MessageIndex per channel after each chunk, DataEnd with the data
 * section's CRC32, and a summary (Schema, Channel, Statistics, ChunkIndex,
 * MetadataIndex records, grouped by opcode, with SummaryOffset records),
 * then Footer and magic.
 *
 * Conventions: functions return 0 or a negative errno value; the text of
 * the last failure is kept in the handle (mcap_writer_error(),
 * mcap_reader_error()) and names the file offset when the file is at fault.
 */
#ifndef SHMBUS_MCAP_H
#define SHMBUS_MCAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum mcap_compression {
	MCAP_COMPRESSION_NONE = 0,
	MCAP_COMPRESSION_LZ4 = 1,
	MCAP_COMPRESSION_ZSTD = 2,
};

/* "none", "lz4", "zstd" -> 0 and *out; anything else -EINVAL. */
int mcap_compression_parse(const char *name, enum mcap_compression *out);
/* The name the spec uses in Chunk records: "", "lz4", "zstd". */
const char *mcap_compression_name(enum mcap_compression c);

/* A string key/value pair (Channel metadata, Metadata records). */
struct mcap_kv {
	const char *key;
	const char *value;
};

/* ---------------------------------------------------------------- writer */

typedef struct mcap_writer mcap_writer;

struct mcap_writer_options {
	enum mcap_compression compression;
	/* A chunk is written once its records reach this many uncompressed
	 * bytes (default 4 MiB). A message larger than that gets a chunk of
	 * its own. */
	size_t chunk_size;
	/* zstd level (default 1: fast enough to keep up with a camera). */
	int zstd_level;
	/* CRC, compress and write chunks on a thread of the writer's own, so
	 * the caller goes on filling the next chunk meanwhile (default false:
	 * all in the caller's thread). */
	bool background;
	const char *profile; /* Header profile (default "") */
	const char *library; /* Header library (default "shmbus-mcap") */
};

void mcap_writer_options_init(struct mcap_writer_options *opts);

/* Create (or truncate) `path` and write magic and Header. On failure
 * *out is NULL and err (may be NULL) gets the reason. */
int mcap_writer_open(const char *path, const struct mcap_writer_options *opts,
		     mcap_writer **out, char *err, size_t errlen);

/* Add a schema (id >= 1) and a channel. They are written into the current
 * chunk, before any message that uses them, so a file cut short still
 * decodes. schema_id 0 means "no schema". */
int mcap_writer_add_schema(mcap_writer *w, const char *name, const char *encoding,
			   const void *data, size_t size, uint16_t *id);
int mcap_writer_add_channel(mcap_writer *w, uint16_t schema_id, const char *topic,
			    const char *message_encoding, const struct mcap_kv *metadata,
			    size_t n_metadata, uint16_t *id);

/* Two-step message write, so a caller can copy the payload straight into
 * the chunk buffer (e.g. from shared memory): begin returns where `size`
 * bytes go; end(keep=false) drops the message (its source was overwritten
 * meanwhile). Writing a full chunk happens in end, and may fail
 * (-ENOSPC...), after which the writer refuses everything but close. */
int mcap_writer_message_begin(mcap_writer *w, uint16_t channel_id, uint32_t sequence,
			      uint64_t log_time, uint64_t publish_time, size_t size, void **data);
int mcap_writer_message_end(mcap_writer *w, bool keep);
int mcap_writer_message(mcap_writer *w, uint16_t channel_id, uint32_t sequence,
			uint64_t log_time, uint64_t publish_time, const void *data, size_t size);

/* A Metadata record (in the data section, outside chunks; indexed in the
 * summary). Ends the current chunk first. */
int mcap_writer_metadata(mcap_writer *w, const char *name, const struct mcap_kv *kv, size_t n);

/* Write the current chunk now. */
int mcap_writer_flush(mcap_writer *w);

/* Bytes in the file so far plus the chunk being built. */
uint64_t mcap_writer_size(mcap_writer *w);
/* Messages accepted, and messages lost because their chunk could not be
 * written (disk full). */
uint64_t mcap_writer_message_count(const mcap_writer *w);
uint64_t mcap_writer_messages_dropped(mcap_writer *w);

/* Finish the file: last chunk, DataEnd, summary, Footer, magic; fsync.
 * Always frees w. After a write error the file is cut back to the last
 * complete chunk and closed as well as the disk allows (with a summary if
 * it fits, else as a file readers recover by scanning). Returns the first
 * error of the writer's life (0 if none); its text goes to err. */
int mcap_writer_close(mcap_writer *w, char *err, size_t errlen);

const char *mcap_writer_error(mcap_writer *w);

/* ---------------------------------------------------------------- reader */

typedef struct mcap_reader mcap_reader;

struct mcap_schema {
	uint16_t id;
	char *name;
	char *encoding;
	uint8_t *data;
	size_t size;
};

struct mcap_channel {
	uint16_t id;
	uint16_t schema_id;
	char *topic;
	char *message_encoding;
	struct mcap_kv *metadata;
	size_t n_metadata;
	uint64_t message_count;     /* from Statistics, or counted by a scan */
	size_t max_message_size;    /* only known after a scan (0 otherwise) */
};

struct mcap_message {
	uint16_t channel_id;
	uint32_t sequence;
	uint64_t log_time;
	uint64_t publish_time;
	const uint8_t *data; /* valid until the next mcap_reader_next() */
	size_t size;
	uint64_t offset;     /* file offset of its record or of its chunk */
};

struct mcap_info {
	bool complete;        /* footer, summary and CRCs found; false: the
			       * file was cut short and was read by scanning */
	uint64_t end_offset;  /* incomplete: where the last complete record ends */
	char why_incomplete[160];
	char profile[64];
	char library[128];
	uint64_t message_count;
	uint64_t start_time, end_time; /* log_time range; 0 when no messages */
	uint32_t chunk_count;
	uint32_t metadata_count;
	uint32_t attachment_count;
	uint32_t chunks_none, chunks_lz4, chunks_zstd;
	uint64_t file_size;
	uint64_t uncompressed_bytes, compressed_bytes; /* of chunk records */
	/* MCAP_READ_SALVAGE only: */
	uint32_t damaged_ranges;   /* parts of the data section skipped as damaged */
	bool summary_read;         /* the file's summary was intact... */
	uint64_t summary_messages; /* ...and counts this many messages */
};

/* Flags of mcap_reader_open. */
#define MCAP_READ_VERIFY_DATA_CRC 0x1u /* check DataEnd's data-section CRC */
#define MCAP_READ_SCAN 0x2u            /* ignore the summary; count by scanning
					* (gives max_message_size per channel) */
#define MCAP_READ_SALVAGE 0x4u         /* scan, and skip what is damaged instead of
					* failing (for recovery; the data CRC is
					* not checked): see mcap_reader_damage() */

/* Open and index a file: the summary when the footer is intact, else a
 * forward scan up to the last complete record (info->complete = false). A
 * file that is not MCAP, or corrupt where it can be read, fails with
 * -EBADMSG (or -EIO, -ENOMEM ...), err naming the offset. */
int mcap_reader_open(const char *path, unsigned flags, mcap_reader **out, char *err,
		     size_t errlen);
void mcap_reader_close(mcap_reader *r);

const struct mcap_info *mcap_reader_info(const mcap_reader *r);
/* Channels and schemas, sorted by id. Pointers into them (also those the
 * lookups below return) stay valid until the next call of these two or of
 * mcap_reader_next() (which may meet new ones in a file cut short). */
size_t mcap_reader_channels(mcap_reader *r, const struct mcap_channel **out);
size_t mcap_reader_schemas(mcap_reader *r, const struct mcap_schema **out);
const struct mcap_channel *mcap_reader_channel(const mcap_reader *r, uint16_t id);
const struct mcap_schema *mcap_reader_schema(const mcap_reader *r, uint16_t id);
/* Metadata records: name and pairs of the i-th one (i < metadata_count). */
int mcap_reader_metadata(mcap_reader *r, size_t i, const char **name,
			 const struct mcap_kv **kv, size_t *n);

/* With MCAP_READ_SALVAGE, a damaged record does not fail the reader: it is
 * skipped with everything up to the next place reading can resume with
 * confidence, a Chunk whose CRC holds (one without a CRC cannot be told
 * from noise) or a record the file's summary indexes, when the summary's
 * own CRC holds (then its channels and schemas are known even if the
 * chunk that defined them is lost). The i-th such range [*from, *to) of
 * the file, in file order, and why it was skipped: 0, or -ENOENT. */
int mcap_reader_damage(const mcap_reader *r, size_t i, uint64_t *from, uint64_t *to,
		       const char **why);
/* Messages in file order: 1 and *msg, 0 at the end, or a negative errno
 * with mcap_reader_error() naming the offset. */
int mcap_reader_next(mcap_reader *r, struct mcap_message *msg);
/* Start over from the first message. */
void mcap_reader_rewind(mcap_reader *r);

const char *mcap_reader_error(const mcap_reader *r);

#endif
