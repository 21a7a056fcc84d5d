/*
 * shmbus.h - the public API of libshmbus, a shared-memory publish/subscribe
 * bus for one Linux host.
 *
 * Conventions (the same everywhere):
 *  - Every function that can fail returns 0 (SHMBUS_OK) or a negative
 *    SHMBUS_E* code, and lists at its declaration the codes it returns;
 *    shmbus_strerror() turns a code into text, and shmbus_errmsg() gives
 *    the detail of the calling thread's last failure (which topic, which
 *    types, what the broker said). Every call clears that text first.
 *  - Handles are opaque. Options structs begin with a `size` member that
 *    their _init() macro sets to the caller's sizeof; the library reads only
 *    that many bytes and gives later fields their defaults, so a program
 *    built against an older header keeps working with a newer library.
 *    Output structs end in reserved space that later fields take, so their
 *    size does not change.
 *  - Times are nanoseconds in int64_t. A timeout < 0 means "wait forever",
 *    0 means "do not wait".
 *  - A bus connection may be shared by threads. A publisher, subscriber,
 *    wait set or topic watch belongs to one thread at a time, except for
 *    the *_interrupt() functions, which any thread or signal handler may
 *    call.
 *  - Topic names are 1..200 characters of [A-Za-z0-9_./-], segments
 *    separated by '/', optionally starting with '/' as in ROS
 *    ("/camera/image_raw"). "/imu" and "imu" name the same topic; a topic
 *    keeps the spelling it was created with, and listings and recordings
 *    show that spelling.
 *
 * ABI: the soname is libshmbus.so.1; it changes only when an existing
 * function or struct changes incompatibly. New functions go into a new
 * symbol version node of libshmbus.map (SHMBUS_1.1, ...), so a program
 * linked against a newer library fails to load on an older one at once,
 * naming the missing version, instead of failing at a call.
 */
#ifndef SHMBUS_SHMBUS_H
#define SHMBUS_SHMBUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SHMBUS_VERSION_MAJOR 1
#define SHMBUS_VERSION_MINOR 1
#define SHMBUS_VERSION_PATCH 0
#define SHMBUS_VERSION_STRING "1.1.0"

/* Runtime version, (major << 16) | (minor << 8) | patch. Generated code
 * compares it with the SHMBUS_VERSION_* it was compiled against. */
uint32_t shmbus_version(void);

/* ---------------------------------------------------------------- errors */

enum shmbus_error {
	SHMBUS_OK = 0,
	SHMBUS_EINVAL = -1,       /* an argument is invalid */
	SHMBUS_ENOMEM = -2,       /* out of memory (or of /dev/shm space) */
	SHMBUS_EAGAIN = -3,       /* nothing to take yet */
	SHMBUS_ETIMEDOUT = -4,    /* the wait timed out */
	SHMBUS_EMSGSIZE = -5,     /* message larger than the topic's maximum or
	                             the caller's buffer */
	SHMBUS_ETYPE = -6,        /* the topic has another message type */
	SHMBUS_ENOTOPIC = -7,     /* no such topic, or it was removed */
	SHMBUS_ENOBROKER = -8,    /* no broker answers for this bus and none
	                             could be started */
	SHMBUS_EBROKER = -9,      /* the broker broke the protocol or went away
	                             in the middle of a request */
	SHMBUS_EVERSION = -10,    /* incompatible segment layout or protocol */
	SHMBUS_ECORRUPT = -11,    /* a segment header is truncated or corrupt */
	SHMBUS_EPERM = -12,       /* the broker refused: no permission */
	SHMBUS_ELAYOUT = -13,     /* the topic exists with a smaller layout than
	                             asked for (e.g. max message size) */
	SHMBUS_ELIMIT = -14,      /* a table or quota is full (publishers,
	                             subscribers, topics, bytes, wait-set
	                             entries, connections) */
	SHMBUS_ENOTSUP = -15,     /* the kernel lacks a needed feature */
	SHMBUS_EBUSY = -16,       /* every slot is held by an open loan */
	SHMBUS_ESTATE = -17,      /* call out of order (publish without a loan,
	                             release without a view, ...) */
	SHMBUS_ESYS = -18,        /* a system call failed; see shmbus_errmsg() */
	SHMBUS_ELAPPED = -19,     /* the view was overwritten while held: its
	                             data must not be used (counted as lost) */
	SHMBUS_ENAME = -20,       /* a bus or topic name is not valid */
	SHMBUS_EBADMSG = -21,     /* a message's bytes do not decode as its type
	                             (typed layer) */
	SHMBUS_EINTR = -22,       /* the wait was interrupted by
	                             shmbus_*_interrupt() */
};

/* Text for an error code; never NULL (unknown codes get a generic text). */
const char *shmbus_strerror(int err);

/* Detail of the calling thread's last failed shmbus call, e.g. "topic 'imu'
 * has type 'a.Imu', not 'a.Image'"; "" after a call that succeeded. Valid
 * until the thread's next shmbus call. */
const char *shmbus_errmsg(void);

/* For libraries layered on libshmbus (the typed runtime, bindings): make
 * `fmt` the calling thread's error text, as libshmbus does for its own
 * failures, and return `code`. */
int shmbus_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ------------------------------------------------------------ connection */

typedef struct shmbus_bus shmbus_bus;

struct shmbus_connect_options {
	uint32_t size;            /* set by shmbus_connect_options_init() */
	/* Start shmbusd if no broker answers for the bus (default true). */
	bool autostart;
	/* Broker executable for autostart. NULL: $SHMBUSD, then the installed
	 * shmbusd, then "shmbusd" on $PATH. A path given here must be an
	 * executable (SHMBUS_ENOBROKER otherwise); nothing else is tried. */
	const char *broker_path;
	/* How long to wait for a broker to answer (default 5 s). */
	int64_t timeout_ns;
	/* Key for topics with integrity tags (SHMBUS_TOPIC_INTEGRITY): a file
	 * of 64 hex digits or 32 bytes, readable by its owner only. NULL:
	 * $SHMBUS_KEY_FILE, else no key (such topics cannot be opened). */
	const char *key_file;
};

void shmbus_connect_options_init_(struct shmbus_connect_options *opts, size_t size);
#define shmbus_connect_options_init(o) shmbus_connect_options_init_((o), sizeof(*(o)))

/* Connect to the bus `name` (NULL: $SHMBUS_BUS, else "default"). Bus names
 * are 1..64 characters of [A-Za-z0-9_.-], not starting with '.'. opts may
 * be NULL for defaults.
 * Returns SHMBUS_OK, EINVAL, ENAME, ENOMEM, ENOBROKER, EBROKER, EVERSION,
 * EPERM (the broker refused this user, or the key file is readable by
 * others), ELIMIT (too many connections of this user), ESYS. */
int shmbus_connect(const char *name, const struct shmbus_connect_options *opts,
		   shmbus_bus **out);

/* Closes the connection. Publishers, subscribers and topic watches opened
 * through it must be closed first. */
void shmbus_disconnect(shmbus_bus *bus);

const char *shmbus_bus_name(const shmbus_bus *bus);

/* Process id of the broker serving this connection. */
int shmbus_broker_pid(const shmbus_bus *bus);

/* ---------------------------------------------------------------- topics */

/* Topic flags. */
/* Every message carries a keyed BLAKE2b tag over the bus, the topic, the
 * topic's incarnation (a random id its broker gives it at creation), the
 * publisher id, sequence number, time, size and payload; subscribers
 * deliver only messages whose tag checks (others are counted rejected and
 * lost). Publishers must hold the bus key, which the broker checks before
 * it hands them anything writable; subscribers need it to check tags. */
#define SHMBUS_TOPIC_INTEGRITY 0x1u

/* What a topic is: its type and layout. Used to create a topic that does not
 * exist, and to check one that does (type name, max message size). */
struct shmbus_topic_options {
	uint32_t size;            /* set by shmbus_topic_options_init() */
	/* Ring size in messages, rounded up to a power of two. 0 (default):
	 * as many as the bus's byte budget for one ring gives for this
	 * message size, at least 4 and at most 64. */
	uint32_t slot_count;
	/* Largest message in bytes. 0 (default): the type's bound when the
	 * typed layer knows one, else 4 KiB. */
	uint32_t max_message_size;
	/* How many past messages a late joiner may ask for (0: slot_count / 2;
	 * at most slot_count - 1). */
	uint32_t history;
	/* Message type name, e.g. "shmbus.msgs.Imu": 1..255 characters of
	 * [A-Za-z0-9_.]. NULL when opening: accept whatever type the topic
	 * has. NULL when creating: untyped bytes. */
	const char *type_name;
	/* Opaque schema blob stored with the topic (the typed layer stores the
	 * serialized FileDescriptorSet here). May be NULL. */
	const void *schema;
	size_t schema_size;
	uint32_t flags;           /* SHMBUS_TOPIC_* */
};

void shmbus_topic_options_init_(struct shmbus_topic_options *opts, size_t size);
#define shmbus_topic_options_init(o) shmbus_topic_options_init_((o), sizeof(*(o)))

/* For libraries layered on libshmbus that take topic options from their
 * own callers: *dst (this header's struct) gets the defaults, then what
 * src sets, read by src's own size as shmbus_pub_open() does (src NULL:
 * the defaults).
 * Returns SHMBUS_OK, EINVAL (src not initialised, or setting a field this
 * library does not know). */
int shmbus_topic_options_copy(struct shmbus_topic_options *dst,
			      const struct shmbus_topic_options *src);

/* Whether `topic` is a valid topic name (see the conventions above). */
bool shmbus_topic_name_valid(const char *topic);

/* Remove a topic: its shared memory is freed once its last user closes it.
 * Its publishers' next loan or send, and its subscribers' next take once
 * they have taken what it still held, return SHMBUS_ENOTOPIC. Only the bus's
 * own user may remove topics.
 * Returns SHMBUS_OK, EINVAL, ENAME, ENOTOPIC, EPERM, ENOBROKER, EBROKER,
 * ESYS. */
int shmbus_topic_remove(shmbus_bus *bus, const char *topic);

/* ------------------------------------------------------------- publisher */

typedef struct shmbus_pub shmbus_pub;

/* A publisher whose message outgrows the topic asks the broker for a larger
 * ring (the topic's successor): messages from then on go there, and
 * subscribers follow at that sequence number, losing nothing. Without it,
 * a message larger than the topic's maximum is SHMBUS_EMSGSIZE. */
#define SHMBUS_PUB_GROW 0x1u

/* How a publisher behaves (what the topic is: shmbus_topic_options). */
struct shmbus_pub_options {
	uint32_t size;            /* set by shmbus_pub_options_init() */
	uint32_t flags;           /* SHMBUS_PUB_* */
};

void shmbus_pub_options_init_(struct shmbus_pub_options *opts, size_t size);
#define shmbus_pub_options_init(o) shmbus_pub_options_init_((o), sizeof(*(o)))

/* Open a publisher, creating the topic from `topic_opts` when it does not
 * exist (the policy must allow `create` for that, and `publish` in any
 * case). An existing topic must have the same type name (SHMBUS_ETYPE
 * otherwise; a NULL type name accepts any) and, unless the publisher may
 * grow it, a max message size at least the one asked for (SHMBUS_ELAYOUT).
 * topic_opts NULL: untyped, defaults; opts NULL: default behaviour.
 * Returns SHMBUS_OK, EINVAL, ENAME, ENOMEM, ETYPE, ELAYOUT, EPERM, ELIMIT,
 * ENOBROKER, EBROKER, EVERSION, ECORRUPT, ESYS. */
int shmbus_pub_open(shmbus_bus *bus, const char *topic,
		    const struct shmbus_topic_options *topic_opts,
		    const struct shmbus_pub_options *opts, shmbus_pub **out);

void shmbus_pub_close(shmbus_pub *pub);

/* Loan the next slot: *buf points into shared memory, *capacity is the
 * topic's max message size. Write the message there, then
 * shmbus_pub_publish() or shmbus_pub_discard(). One loan at a time per
 * publisher.
 * Returns SHMBUS_OK, EINVAL, ESTATE (a loan is open), EBUSY (every slot is
 * held by someone's open loan), ENOTOPIC (the topic was removed). */
int shmbus_pub_loan(shmbus_pub *pub, void **buf, size_t *capacity);

/* Make sure the topic carries messages of `size` bytes: with
 * SHMBUS_PUB_GROW, grows it when needed (a broker request); without, only
 * checks. Call it before a loan when the message will not fit the current
 * capacity.
 * Returns SHMBUS_OK, EINVAL, ESTATE (a loan is open), EMSGSIZE (too large
 * and not allowed to grow, or above the bus's limit), ENOTOPIC, EPERM,
 * ELIMIT, ENOMEM, ENOBROKER, EBROKER, ESYS. */
int shmbus_pub_reserve(shmbus_pub *pub, size_t size);

/* Publish the loaned slot with `size` bytes. *seq (may be NULL) receives
 * the message's sequence number.
 * Returns SHMBUS_OK, EINVAL, ESTATE (no loan), EMSGSIZE (size > capacity;
 * the loan stays open), ELAPPED (the loan was held so long that another
 * publisher took the slot: not published, counted superseded). */
int shmbus_pub_publish(shmbus_pub *pub, size_t size, uint64_t *seq);

/* As shmbus_pub_publish, with the publish time given by the caller (a player
 * or a bridge keeping a message's original time) instead of now. */
int shmbus_pub_publish_at(shmbus_pub *pub, size_t size, int64_t publish_ns, uint64_t *seq);

/* Give the loan back unpublished (subscribers skip its sequence number).
 * Returns SHMBUS_OK, EINVAL, ESTATE. */
int shmbus_pub_discard(shmbus_pub *pub);

/* Loan, copy `size` bytes from `data`, publish. A message that does not fit
 * costs no sequence number (SHMBUS_EMSGSIZE), unless the publisher may grow
 * the topic. Returns what loan, reserve and publish return. */
int shmbus_pub_send(shmbus_pub *pub, const void *data, size_t size, uint64_t *seq);

struct shmbus_pub_stats {
	uint64_t published;  /* messages committed by this publisher */
	uint64_t superseded; /* loans overwritten before they were published
	                        (the loan was held for a whole lap) */
	uint64_t skipped;    /* sequence numbers given up because their slot
	                        was held by another publisher's long loan */
	uint32_t publisher_id;
	uint32_t reserved_u32_;
	uint64_t reserved_[6];
};

void shmbus_pub_stats(const shmbus_pub *pub, struct shmbus_pub_stats *stats);

/* Largest message the topic takes now. */
size_t shmbus_pub_max_message_size(const shmbus_pub *pub);

/* The topic's type name ("" for untyped) and name, as its broker gave them. */
const char *shmbus_pub_type_name(const shmbus_pub *pub);
const char *shmbus_pub_topic(const shmbus_pub *pub);

/* ------------------------------------------------------------ subscriber */

typedef struct shmbus_sub shmbus_sub;

enum shmbus_start {
	SHMBUS_START_NEW = 0,   /* only messages published after opening (from
	                           the moment the subscriber shows in `shmbus
	                           info`) */
	SHMBUS_START_LAST = 1,  /* the last `last_n` messages, then new ones */
	SHMBUS_START_FIRST = 2, /* from the topic's first message: everything
	                           its history still holds, what it no longer
	                           holds counted lost (a recorder or bridge that
	                           opens a topic it was just told about) */
};

/* What a subscriber that was lapped (the publishers overwrote messages
 * before it took them) does next. */
enum shmbus_lapped {
	/* Resume where the messages it takes will not be overwritten while it
	 * holds or copies them, judged from how long it has been taking: a
	 * subscriber slower than its publisher gets messages at its own pace,
	 * each one valid, the rest counted lost. The default. */
	SHMBUS_LAPPED_PACE = 0,
	/* Resume at the oldest message still in the ring (every message that
	 * can still be had, at the risk of it being overwritten soon). */
	SHMBUS_LAPPED_OLDEST = 1,
};

/* spin_ns value (the default): a wait spins before it sleeps while
 * messages have been coming within about 25 us of each other, for three
 * times that gap (at most 50 us), so a fast stream is taken without a
 * kernel wake-up per message. When they come more rarely but at a steady
 * period (a 1 kHz IMU, a 30 Hz camera: 200 us apart or more, by their
 * publish stamps), shmbus_sub_wait sleeps only until just before the next
 * one is due, allowing for how late its timed sleeps end, and spins from
 * there for a short window (10 us + period/128, at most 1 ms, each side of
 * the due time), so the message finds it awake instead of waiting for a
 * kernel wake-up; a message earlier than that wakes it as usual, one later
 * is waited for asleep. Otherwise it sleeps at once. The subscriber learns all this from
 * its own waits and messages. (Wait sets and the event-loop descriptor
 * sleep at once.) */
#define SHMBUS_SPIN_AUTO (-1)

struct shmbus_sub_options {
	uint32_t size;            /* set by shmbus_sub_options_init() */
	enum shmbus_start start;
	uint32_t last_n;          /* with SHMBUS_START_LAST; capped at the
	                             topic's history */
	/* How long a wait spins before it sleeps: SHMBUS_SPIN_AUTO (default),
	 * 0 (never spin: every wait that finds nothing sleeps), or a time in
	 * ns. Other negative values are SHMBUS_EINVAL. */
	int64_t spin_ns;
	/* A sequence number handed out to a publisher but not published for
	 * this long is skipped (counted lost) by this subscriber: its publisher
	 * died, is stopped, or holds its loan longer than this. Default 1 s;
	 * with a broker running, a dead publisher is noticed at once. */
	int64_t stall_timeout_ns;
	/* When the topic does not exist: create it from the topic options
	 * (needs `create` permission), instead of SHMBUS_ENOTOPIC. */
	bool create_if_missing;
	enum shmbus_lapped lapped;
};

void shmbus_sub_options_init_(struct shmbus_sub_options *opts, size_t size);
#define shmbus_sub_options_init(o) shmbus_sub_options_init_((o), sizeof(*(o)))

/* Open a subscriber. topic_opts: the type expected (checked as for
 * publishers) and the topic to create with create_if_missing; NULL: any
 * type. opts NULL: new messages, defaults.
 * Returns SHMBUS_OK, EINVAL, ENAME, ENOMEM, ENOTOPIC, ETYPE, EPERM, ELIMIT,
 * ENOBROKER, EBROKER, EVERSION, ECORRUPT, ESYS. */
int shmbus_sub_open(shmbus_bus *bus, const char *topic,
		    const struct shmbus_topic_options *topic_opts,
		    const struct shmbus_sub_options *opts, shmbus_sub **out);

void shmbus_sub_close(shmbus_sub *sub);

/* What a taken message was. */
struct shmbus_msg_info {
	uint64_t seq;          /* sequence number on the topic */
	int64_t publish_ns;    /* CLOCK_REALTIME when it was published (or as
	                          its publisher gave it) */
	uint32_t publisher_id; /* id the broker gave its publisher */
	uint32_t reserved_u32_;
	size_t size;           /* payload bytes */
	uint64_t lost;         /* messages lost just before this one */
};

/* Copy the next message into buf. Messages overwritten before they could
 * be read are skipped and counted in info->lost and the stats. info may be
 * NULL.
 * Returns SHMBUS_OK, EINVAL, EAGAIN (nothing new), EMSGSIZE (buf is too
 * small: info->size says how much is needed and the message stays next),
 * ESTATE (a view is open), ENOTOPIC (the topic was removed and everything
 * it held has been taken). */
int shmbus_sub_take(shmbus_sub *sub, void *buf, size_t capacity,
		    struct shmbus_msg_info *info);

/* Take up to `max` messages at once: message i is copied to buf + i *
 * stride (at most stride bytes) and described in infos[i] (infos may be
 * NULL); *n_taken says how many. The same messages, losses and order as
 * that many shmbus_sub_take calls, for less per message (one call, the
 * subscriber's counters written once). A batch stops early at the first
 * message that does not fit in stride: it stays next, and the next call
 * returns SHMBUS_EMSGSIZE for it.
 * Returns SHMBUS_OK (*n_taken >= 1), EINVAL, EAGAIN (nothing new, *n_taken
 * 0), EMSGSIZE (the next message is larger than stride: infos[0].size says
 * how large, if infos is not NULL), ESTATE (a view is open), ENOTOPIC. */
int shmbus_sub_take_many(shmbus_sub *sub, void *buf, size_t stride, size_t max,
			 struct shmbus_msg_info *infos, size_t *n_taken);

/* A zero-copy view of a message in shared memory. */
struct shmbus_view {
	const void *data;
	struct shmbus_msg_info info;
	uint64_t state_; /* private */
};

/* View the next message in place. The data may be overwritten by a
 * publisher that laps this subscriber: check shmbus_sub_view_valid() after
 * reading, and finish with shmbus_sub_release().
 * Returns SHMBUS_OK, EINVAL, EAGAIN, ESTATE (a view is open), ENOTOPIC. */
int shmbus_sub_view(shmbus_sub *sub, struct shmbus_view *view);

/* View up to `max` messages in place at once: views[0..*n_viewed), oldest
 * first, each as shmbus_sub_view gives one (views[i].info.lost counts the
 * messages lost just before it). Check each with shmbus_sub_view_valid
 * after reading it, and end each with shmbus_sub_release; no take or view
 * until all are released. Holding many views longer makes it likelier that
 * a publisher overwrites the oldest.
 * Returns SHMBUS_OK (*n_viewed >= 1), EINVAL, EAGAIN (*n_viewed 0), ESTATE
 * (a view is open), ENOTOPIC. */
int shmbus_sub_view_many(shmbus_sub *sub, struct shmbus_view *views, size_t max,
			 size_t *n_viewed);

/* Whether everything read from view->data so far is what was published. */
bool shmbus_sub_view_valid(const shmbus_sub *sub, const struct shmbus_view *view);

/* End a view: SHMBUS_OK if it stayed valid (counted received), ELAPPED if
 * it was overwritten (counted lost), EINVAL, ESTATE (no view open, or this
 * one was released already). */
int shmbus_sub_release(shmbus_sub *sub, struct shmbus_view *view);

/* Block until a message can be taken or the timeout passes. Spins for the
 * options' spin_ns first. It also returns (SHMBUS_OK) when it skipped
 * numbers that stalled past the stall timeout, so that their loss shows in
 * the stats at once; a take may then find nothing (SHMBUS_EAGAIN).
 * Returns SHMBUS_OK, EINVAL, ETIMEDOUT, EINTR (shmbus_sub_interrupt),
 * ESYS. */
int shmbus_sub_wait(shmbus_sub *sub, int64_t timeout_ns);

/* Make the subscriber's wait in progress (or its next one) return
 * SHMBUS_EINTR at once. Safe from any thread and from a signal handler. */
void shmbus_sub_interrupt(shmbus_sub *sub);

/* A file descriptor for event loops (epoll, poll, asyncio, libuv): readable
 * while the subscriber has something to take, like a socket. After it
 * polls readable, take until SHMBUS_EAGAIN; that makes it non-readable
 * until the next message. It costs publishers nothing while nobody waits
 * (a library thread sleeps on the topic for it). Owned by the subscriber:
 * do not close it; it stays valid until shmbus_sub_close().
 * Returns SHMBUS_OK, EINVAL, ENOMEM, ESYS. */
int shmbus_sub_fd(shmbus_sub *sub, int *fd);

struct shmbus_sub_stats {
	uint64_t received; /* messages delivered */
	uint64_t lost;     /* sequence numbers passed without delivery */
	uint64_t last_seq; /* sequence number of the last delivered message,
	                      UINT64_MAX before the first */
	uint64_t next_seq; /* the next sequence number this subscriber reads */
	uint64_t lag;      /* messages published but not yet taken */
	uint64_t rejected; /* failed the integrity check: never delivered,
	                      also counted in lost */
	uint64_t reserved_[6];
};

void shmbus_sub_stats(const shmbus_sub *sub, struct shmbus_sub_stats *stats);

/* The topic's type name ("" for untyped), name and schema blob, as its
 * broker gave them. */
const char *shmbus_sub_type_name(const shmbus_sub *sub);
const char *shmbus_sub_topic(const shmbus_sub *sub);
const void *shmbus_sub_schema(const shmbus_sub *sub, size_t *size);
size_t shmbus_sub_max_message_size(const shmbus_sub *sub);

/* -------------------------------------------------------------- wait set */

typedef struct shmbus_waitset shmbus_waitset;
typedef struct shmbus_topic_watch shmbus_topic_watch;

#define SHMBUS_WAITSET_MAX 128

/* A wait set blocks on many subscribers (and topic watches) at once: one
 * futex_waitv call on Linux >= 5.16, a bounded polling sleep before.
 * Returns SHMBUS_OK, EINVAL, ENOMEM. */
int shmbus_waitset_create(shmbus_waitset **out);
void shmbus_waitset_destroy(shmbus_waitset *ws);
/* Returns SHMBUS_OK, EINVAL, ELIMIT (SHMBUS_WAITSET_MAX members). */
int shmbus_waitset_add(shmbus_waitset *ws, shmbus_sub *sub);
int shmbus_waitset_add_watch(shmbus_waitset *ws, shmbus_topic_watch *watch);
/* Returns SHMBUS_OK, EINVAL (not a member). */
int shmbus_waitset_remove(shmbus_waitset *ws, shmbus_sub *sub);
int shmbus_waitset_remove_watch(shmbus_waitset *ws, shmbus_topic_watch *watch);

/* Block until at least one member has something (a subscriber a message, a
 * watch an event) or the timeout passes. The subscribers that have
 * messages are stored in ready[0..*n_ready) (up to capacity); a watch with
 * events shows only in shmbus_topic_watch_next(), so *n_ready may be 0
 * after SHMBUS_OK when only a watch woke the set.
 * Returns SHMBUS_OK, EINVAL, ETIMEDOUT, EINTR, ESYS. */
int shmbus_waitset_wait(shmbus_waitset *ws, int64_t timeout_ns, shmbus_sub **ready,
			size_t capacity, size_t *n_ready);

/* As shmbus_sub_interrupt, for a wait set. */
void shmbus_waitset_interrupt(shmbus_waitset *ws);

/* An event-loop descriptor for the whole set: readable while any member has
 * something to take (see shmbus_sub_fd). Owned by the set.
 * Returns SHMBUS_OK, EINVAL, ENOMEM, ESYS. */
int shmbus_waitset_fd(shmbus_waitset *ws, int *fd);

/* ---------------------------------------------------------- topic events */

enum shmbus_topic_event_kind {
	SHMBUS_TOPIC_CREATED = 1,
	SHMBUS_TOPIC_REMOVED = 2,
};

struct shmbus_topic_event {
	enum shmbus_topic_event_kind kind;
	char name[256];       /* as the topic was created */
	char type_name[256];  /* "" for untyped */
	uint64_t reserved_[4];
};

/* Watch the bus's topics come and go, as the broker reports them (no
 * polling). The first events are one SHMBUS_TOPIC_CREATED per topic that
 * exists when the watch opens (and that this user may subscribe to).
 * Returns SHMBUS_OK, EINVAL, ENOMEM, ENOBROKER, EBROKER, ESYS. */
int shmbus_topic_watch_open(shmbus_bus *bus, shmbus_topic_watch **out);
void shmbus_topic_watch_close(shmbus_topic_watch *watch);

/* The next event.
 * Returns SHMBUS_OK, EINVAL, EAGAIN (none now), ENOMEM, ENOBROKER, EBROKER,
 * ESYS (asking the broker for the new list failed). */
int shmbus_topic_watch_next(shmbus_topic_watch *watch, struct shmbus_topic_event *ev);

/* Block until an event can be had or the timeout passes.
 * Returns SHMBUS_OK, EINVAL, ETIMEDOUT, EINTR, ESYS. */
int shmbus_topic_watch_wait(shmbus_topic_watch *watch, int64_t timeout_ns);
void shmbus_topic_watch_interrupt(shmbus_topic_watch *watch);

/* Readable while an event can be had; _next() returning SHMBUS_EAGAIN makes
 * it non-readable until the next one. Owned by the watch.
 * Returns SHMBUS_OK, EINVAL, ENOMEM, ESYS. */
int shmbus_topic_watch_fd(shmbus_topic_watch *watch, int *fd);

/* --------------------------------------------------------- introspection */

/* What `shmbus topics` and `shmbus info` show. */
struct shmbus_topic_info {
	char name[256];
	char type_name[256];
	uint32_t slot_count;
	uint32_t slot_size;
	uint32_t max_message_size;
	uint32_t history;
	uint32_t flags;
	uint32_t publishers;
	uint32_t subscribers;
	uint32_t waiters;         /* subscribers asleep in a wait right now */
	uint32_t schema_versions; /* distinct schemas its publishers brought
	                             (a type that evolved shows more than 1) */
	uint32_t grown;           /* how often the topic grew (successor
	                             rings) */
	uint64_t schema_size;
	uint64_t segment_size;    /* bytes of shared memory of its ring */
	uint64_t next_seq;        /* sequence numbers handed out so far */
	uint64_t broker_bytes;    /* memory the broker keeps for the topic */
	uint64_t ring_base_seq;   /* the first sequence number of its ring
	                             now (0 until it grew) */
	uint64_t reserved_[7];
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
	bool waiting;       /* subscribers: asleep in a wait right now */
	uint64_t reserved_[4];
};

/* List the topics this user may subscribe to: calls fn for each until it
 * returns non-zero (which is returned).
 * Returns SHMBUS_OK, EINVAL, ENOMEM, ENOBROKER, EBROKER, ESYS. */
int shmbus_list_topics(shmbus_bus *bus,
		       int (*fn)(void *ctx, const char *topic, const char *type_name),
		       void *ctx);

/* A topic's layout and its publishers and subscribers, as the broker knows
 * them. pubs/subs may be NULL; *n_pubs / *n_subs get the counts stored (up
 * to the cap).
 * Returns SHMBUS_OK, EINVAL, ENAME, ENOTOPIC, EPERM, ENOMEM, ENOBROKER,
 * EBROKER, ESYS. */
int shmbus_topic_inspect(shmbus_bus *bus, const char *topic, struct shmbus_topic_info *info,
			 struct shmbus_client_info *pubs, size_t pubs_cap, size_t *n_pubs,
			 struct shmbus_client_info *subs, size_t subs_cap, size_t *n_subs);

#ifdef __cplusplus
}
#endif

#endif /* SHMBUS_SHMBUS_H */
