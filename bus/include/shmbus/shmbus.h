/*
 * shmbus.h - the public API of libshmbus, a shared-memory publish/subscribe
 * bus for one Linux host.
 *
 * Conventions (the same everywhere):
 *  - Every function that can fail returns 0 (SHMBUS_OK) or a negative
 *    SHMBUS_E* code; shmbus_strerror() turns a code into text, and
 *    shmbus_errmsg() gives the detail of the last failure on a connection
 *    (which topic, which types, what the broker said).
 *  - Handles are opaque. Options structs are initialised by their _init()
 *    function first, so that new fields never break old callers.
 *  - Times are nanoseconds in int64_t. A timeout < 0 means "wait forever",
 *    0 means "do not wait".
 *  - A bus connection may be shared by threads. A publisher, subscriber or
 *    wait set handle belongs to one thread at a time.
 */
#ifndef SHMBUS_SHMBUS_H
#define SHMBUS_SHMBUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SHMBUS_VERSION_MAJOR 0
#define SHMBUS_VERSION_MINOR 1
#define SHMBUS_VERSION_PATCH 0
#define SHMBUS_VERSION_STRING "0.1.0"

/* Runtime version, (major << 16) | (minor << 8) | patch. Generated code
 * compares it with the SHMBUS_VERSION_* it was compiled against. */
uint32_t shmbus_version(void);

/* ---------------------------------------------------------------- errors */

enum shmbus_error {
	SHMBUS_OK = 0,
	SHMBUS_EINVAL = -1,       /* an argument is invalid */
	SHMBUS_ENOMEM = -2,       /* out of memory */
	SHMBUS_EAGAIN = -3,       /* nothing to take yet */
	SHMBUS_ETIMEDOUT = -4,    /* the wait timed out */
	SHMBUS_EMSGSIZE = -5,     /* message larger than the topic's maximum or
	                             the caller's buffer */
	SHMBUS_ETYPE = -6,        /* the topic has another message type */
	SHMBUS_ENOTOPIC = -7,     /* no such topic (and not asked to create it) */
	SHMBUS_ENOBROKER = -8,    /* no broker answers for this bus and none
	                             could be started */
	SHMBUS_EBROKER = -9,      /* the broker broke the protocol or went away
	                             in the middle of a request */
	SHMBUS_EVERSION = -10,    /* incompatible segment layout or protocol */
	SHMBUS_ECORRUPT = -11,    /* a segment header is truncated or corrupt */
	SHMBUS_EPERM = -12,       /* the broker refused: no permission */
	SHMBUS_ELAYOUT = -13,     /* the topic exists with a smaller layout than
	                             asked for (e.g. max message size) */
	SHMBUS_ELIMIT = -14,      /* a table is full (publishers, subscribers,
	                             topics, wait-set entries) */
	SHMBUS_ENOTSUP = -15,     /* the kernel lacks a needed feature
	                             (futex_waitv needs Linux 5.16) */
	SHMBUS_EBUSY = -16,       /* every slot is held by an open loan */
	SHMBUS_ESTATE = -17,      /* call out of order (publish without a loan,
	                             release without a view, ...) */
	SHMBUS_ESYS = -18,        /* a system call failed; see shmbus_errmsg() */
	SHMBUS_ELAPPED = -19,     /* the view was overwritten while held: its
	                             data must not be used (counted as lost) */
	SHMBUS_ENAME = -20,       /* a bus or topic name is not valid */
	SHMBUS_EBADMSG = -21,     /* a message's bytes do not decode as its type
	                             (typed layer) */
};

/* Text for an error code; never NULL (unknown codes get a generic text). */
const char *shmbus_strerror(int err);

/* ------------------------------------------------------------ connection */

typedef struct shmbus_bus shmbus_bus;

struct shmbus_connect_options {
	/* Start shmbusd if no broker answers for the bus (default true). */
	bool autostart;
	/* Broker executable for autostart; NULL: $SHMBUSD, then the installed
	 * shmbusd, then "shmbusd" on $PATH. */
	const char *broker_path;
	/* How long to wait for a broker to answer (default 5 s). */
	int64_t timeout_ns;
	/* Key for topics with integrity tags (SHMBUS_TOPIC_INTEGRITY): a file
	 * of 64 hex digits or 32 bytes, readable by its owner only. NULL:
	 * $SHMBUS_KEY_FILE, else no key (such topics cannot be opened). */
	const char *key_file;
	/* Where shmbus_connect() writes why it failed (the handle that would
	 * hold shmbus_errmsg() does not exist then). May be NULL. */
	char *errbuf;
	size_t errbuf_size;
};

void shmbus_connect_options_init(struct shmbus_connect_options *opts);

/* Connect to the bus `name` (NULL: $SHMBUS_BUS, else "default"). Names are
 * 1..64 characters of [A-Za-z0-9_.-]. opts may be NULL for defaults. */
int shmbus_connect(const char *name, const struct shmbus_connect_options *opts,
		   shmbus_bus **out);

/* Closes the connection. Publishers and subscribers opened through it must
 * be closed first. */
void shmbus_disconnect(shmbus_bus *bus);

const char *shmbus_bus_name(const shmbus_bus *bus);

/* Process id of the broker serving this connection. */
int shmbus_broker_pid(const shmbus_bus *bus);

/* Detail of the last failed call made through `bus` in the calling thread's
 * view of it (e.g. "topic 'imu' has type 'a.Imu', not 'a.Image'"). Empty
 * string when there is none. Valid until the next call on `bus`. */
const char *shmbus_errmsg(const shmbus_bus *bus);

/* ---------------------------------------------------------------- topics */

/* Topic flags. */
/* Every message carries a keyed BLAKE2b tag over topic, sequence number,
 * time, size and payload; subscribers deliver only messages whose tag
 * checks (others are counted rejected and lost). Publishers and
 * subscribers need the bus key (shmbus_connect_options.key_file). */
#define SHMBUS_TOPIC_INTEGRITY 0x1u

struct shmbus_topic_options {
	/* Ring size in messages, rounded up to a power of two (default 64). */
	uint32_t slot_count;
	/* Largest message in bytes (default 64 KiB). */
	uint32_t max_message_size;
	/* How many past messages a late joiner may ask for (default
	 * slot_count / 2; at most slot_count - 1). */
	uint32_t history;
	/* Message type name, e.g. "shmbus.msgs.Imu". NULL when opening: accept
	 * whatever type the topic has. NULL when creating: untyped bytes. */
	const char *type_name;
	/* Opaque schema blob stored with the topic (the typed layer stores the
	 * serialized FileDescriptorSet here). May be NULL. */
	const void *schema;
	size_t schema_size;
	uint32_t flags;
};

void shmbus_topic_options_init(struct shmbus_topic_options *opts);

/* Names of topics are 1..200 characters of [A-Za-z0-9_./-], not starting
 * or ending with '/'. */
bool shmbus_topic_name_valid(const char *topic);

/* ------------------------------------------------------------- publisher */

typedef struct shmbus_pub shmbus_pub;

/* Open a publisher, creating the topic from `opts` when it does not exist.
 * An existing topic must have the same type name (SHMBUS_ETYPE otherwise)
 * and a max message size at least opts->max_message_size (SHMBUS_ELAYOUT).
 * opts may be NULL for an untyped topic with default layout. */
int shmbus_pub_open(shmbus_bus *bus, const char *topic,
		    const struct shmbus_topic_options *opts, shmbus_pub **out);

void shmbus_pub_close(shmbus_pub *pub);

/* Loan the next slot: *buf points into shared memory, *capacity is the
 * topic's max message size. Write the message there, then
 * shmbus_pub_publish() or shmbus_pub_discard(). One loan at a time per
 * publisher. SHMBUS_EBUSY if every slot is held by someone's open loan. */
int shmbus_pub_loan(shmbus_pub *pub, void **buf, size_t *capacity);

/* Publish the loaned slot with `size` bytes. SHMBUS_EMSGSIZE (and the loan
 * stays open) if size > capacity. *seq (may be NULL) receives the
 * message's sequence number. */
int shmbus_pub_publish(shmbus_pub *pub, size_t size, uint64_t *seq);

/* Give the loan back unpublished (subscribers skip its sequence number). */
int shmbus_pub_discard(shmbus_pub *pub);

/* Loan, copy `size` bytes from `data`, publish. */
int shmbus_pub_send(shmbus_pub *pub, const void *data, size_t size, uint64_t *seq);

struct shmbus_pub_stats {
	uint64_t published;  /* messages committed by this publisher */
	uint64_t superseded; /* loans overwritten before they were published
	                        (the loan was held for a whole lap) */
	uint64_t skipped;    /* sequence numbers given up because their slot
	                        was held by another publisher's long loan */
	uint32_t publisher_id;
};

void shmbus_pub_stats(const shmbus_pub *pub, struct shmbus_pub_stats *stats);

/* Layout of the topic as it is (may be larger than what was asked). */
size_t shmbus_pub_max_message_size(const shmbus_pub *pub);

/* The topic's type name ("" for untyped), as stored. */
const char *shmbus_pub_type_name(const shmbus_pub *pub);

/* ------------------------------------------------------------ subscriber */

typedef struct shmbus_sub shmbus_sub;

enum shmbus_start {
	SHMBUS_START_NEW = 0,  /* only messages published after opening (from the
	                          moment the subscriber shows in `shmbus info`) */
	SHMBUS_START_LAST = 1, /* the last `last_n` messages, then new ones */
};

struct shmbus_sub_options {
	enum shmbus_start start;
	uint32_t last_n;  /* with SHMBUS_START_LAST; capped at the topic's
	                     history */
	int64_t spin_ns;  /* how long a wait spins before it sleeps (default 0) */
	/* A sequence number handed out to a publisher but not published for
	 * this long is skipped (counted lost): its publisher died, or holds
	 * its loan so long that it would stall every subscriber. A live
	 * publisher still writing that very message is waited for. Default 1 s;
	 * with a broker running, a dead publisher is noticed at once. */
	int64_t stall_timeout_ns;
	/* When the topic does not exist: create it from `topic` if
	 * create_if_missing, else fail with SHMBUS_ENOTOPIC. topic.type_name
	 * is checked against an existing topic as for publishers. */
	bool create_if_missing;
	struct shmbus_topic_options topic;
};

void shmbus_sub_options_init(struct shmbus_sub_options *opts);

int shmbus_sub_open(shmbus_bus *bus, const char *topic,
		    const struct shmbus_sub_options *opts, shmbus_sub **out);

void shmbus_sub_close(shmbus_sub *sub);

/* What a taken message was. */
struct shmbus_msg_info {
	uint64_t seq;          /* sequence number on the topic */
	int64_t publish_ns;    /* CLOCK_REALTIME when it was published */
	uint32_t publisher_id; /* id the broker gave its publisher */
	size_t size;           /* payload bytes */
	uint64_t lost;         /* messages lost just before this one */
};

/* Copy the next message into buf. SHMBUS_EAGAIN: nothing new.
 * SHMBUS_EMSGSIZE: buf is too small; info->size says how much is needed
 * and the message stays next. Messages overwritten before they could be
 * read are skipped and counted in info->lost and the stats. info may be
 * NULL. */
int shmbus_sub_take(shmbus_sub *sub, void *buf, size_t capacity,
		    struct shmbus_msg_info *info);

/* A zero-copy view of a message in shared memory. */
struct shmbus_view {
	const void *data;
	struct shmbus_msg_info info;
	uint64_t state_; /* private */
};

/* View the next message in place. The data may be overwritten by a
 * publisher that laps this subscriber: check shmbus_sub_view_valid() after
 * reading, and finish with shmbus_sub_release(). SHMBUS_EAGAIN: nothing. */
int shmbus_sub_view(shmbus_sub *sub, struct shmbus_view *view);

/* Whether everything read from view->data so far is what was published. */
bool shmbus_sub_view_valid(const shmbus_sub *sub, const struct shmbus_view *view);

/* End a view: SHMBUS_OK if it stayed valid (counted received), or
 * SHMBUS_ELAPPED if it was overwritten (counted lost). */
int shmbus_sub_release(shmbus_sub *sub, struct shmbus_view *view);

/* Block until a message can be taken or the timeout passes: SHMBUS_OK or
 * SHMBUS_ETIMEDOUT. Spins for the options' spin_ns first. */
int shmbus_sub_wait(shmbus_sub *sub, int64_t timeout_ns);

struct shmbus_sub_stats {
	uint64_t received; /* messages delivered */
	uint64_t lost;     /* sequence numbers passed without delivery */
	uint64_t last_seq; /* sequence number of the last delivered message,
	                      UINT64_MAX before the first */
	uint64_t next_seq; /* the next sequence number this subscriber reads */
	uint64_t lag;      /* messages published but not yet taken */
	uint64_t rejected; /* failed the integrity check: never delivered,
	                      also counted in lost */
};

void shmbus_sub_stats(const shmbus_sub *sub, struct shmbus_sub_stats *stats);

/* The topic's type name ("" for untyped) and schema blob, as stored. */
const char *shmbus_sub_type_name(const shmbus_sub *sub);
const void *shmbus_sub_schema(const shmbus_sub *sub, size_t *size);
size_t shmbus_sub_max_message_size(const shmbus_sub *sub);

/* -------------------------------------------------------------- wait set */

typedef struct shmbus_waitset shmbus_waitset;

#define SHMBUS_WAITSET_MAX 128

/* SHMBUS_ENOTSUP on kernels without futex_waitv (before 5.16). */
int shmbus_waitset_create(shmbus_waitset **out);
void shmbus_waitset_destroy(shmbus_waitset *ws);
int shmbus_waitset_add(shmbus_waitset *ws, shmbus_sub *sub);
int shmbus_waitset_remove(shmbus_waitset *ws, shmbus_sub *sub);

/* Block until at least one subscriber has a message or the timeout passes.
 * The ready ones are stored in ready[0..*n_ready) (up to capacity).
 * SHMBUS_OK or SHMBUS_ETIMEDOUT. */
int shmbus_waitset_wait(shmbus_waitset *ws, int64_t timeout_ns, shmbus_sub **ready,
			size_t capacity, size_t *n_ready);

/* --------------------------------------------------------- introspection */

/* What `shmbus topics` and `shmbus info` show, read from the live segments. */
struct shmbus_topic_info {
	char name[256];
	char type_name[256];
	uint32_t slot_count;
	uint32_t slot_size;
	uint32_t max_message_size;
	uint32_t history;
	uint32_t flags;
	uint64_t schema_size;
	uint64_t segment_size;
	uint64_t next_seq; /* sequence numbers claimed so far */
	uint32_t publishers;
	uint32_t subscribers;
	uint32_t waiters;   /* subscribers asleep in a wait right now */
	uint32_t schema_versions; /* distinct schemas its publishers brought
	                             (a type that evolved shows more than 1) */
};

struct shmbus_client_info {
	int pid;
	uint32_t id;        /* publisher id, or subscriber slot */
	uint64_t count;     /* published / received */
	uint64_t lost;      /* subscribers: lost; publishers: skipped */
	uint64_t next_seq;  /* subscribers: position */
	uint64_t lag;       /* subscribers: next_seq of topic - position */
	uint64_t rejected;  /* subscribers: messages that failed the integrity
	                       check (never delivered) */
};

/* List topic names: calls fn for each until it returns non-zero. */
int shmbus_list_topics(shmbus_bus *bus,
		       int (*fn)(void *ctx, const char *topic), void *ctx);

/* Read a topic's header and its publisher/subscriber tables. pubs/subs
 * may be NULL; *n_pubs / *n_subs get the counts stored (up to the cap). */
int shmbus_topic_inspect(shmbus_bus *bus, const char *topic, struct shmbus_topic_info *info,
			 struct shmbus_client_info *pubs, size_t pubs_cap, size_t *n_pubs,
			 struct shmbus_client_info *subs, size_t subs_cap, size_t *n_subs);

#ifdef __cplusplus
}
#endif

#endif /* SHMBUS_SHMBUS_H */
