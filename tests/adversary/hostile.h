/*
 * hostile.h - a hostile client for the adversary tests: it speaks the
 * broker protocol itself (no library good manners), maps every descriptor
 * it is handed as writable as the kernel lets it, finds this process's own
 * shmbus mappings and writes into the writable ones.
 *
 * Everything that knows the protocol, the shared layout or the file names
 * lives in hostile.c, so that when those change only hostile.c does; the
 * tests speak of what a hostile process can do ("claim a sequence number
 * and die", "copy a topic's data over another's"), and where they can,
 * of byte patterns and whole mappings, which any layout has.
 */
#ifndef SHMBUS_TEST_HOSTILE_H
#define SHMBUS_TEST_HOSTILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ------------------------------------------------------------ protocol */

/* Connect to the bus's socket without saying anything: the descriptor, or
 * -1 (errno set). nonblocking: connect() fails with EAGAIN, not waits,
 * when the broker's backlog is full. */
int hostile_connect(const char *bus, bool nonblocking);

#define HOSTILE_MAX_FDS 4

/* One reply frame of the broker. */
struct hostile_reply {
	int status;      /* 0 or a negative SHMBUS_E* */
	char why[512];   /* the reason of a refusal */
	int fds[HOSTILE_MAX_FDS];
	int nfds;
};

void hostile_reply_close(struct hostile_reply *r);

/* Wait up to timeout_ms (0: only look) for a reply frame: 1 read one,
 * 0 the broker closed the connection (EOF or reset), -1 nothing came. */
int hostile_read_reply(int fd, int timeout_ms, struct hostile_reply *r);

/* Send a hello and do not wait for its answer. 0 or -1. */
int hostile_send_hello(int fd);

/* Say hello: 0, the broker's refusal status, or SHMBUS_EBROKER when the
 * connection closed or nothing came within timeout_ms. */
int hostile_hello(int fd, int timeout_ms, struct hostile_reply *r);

enum hostile_role { HOSTILE_PUB, HOSTILE_SUB, HOSTILE_INSPECT };

struct hostile_open {
	const char *topic;
	enum hostile_role role;
	bool create;
	uint32_t slot_count, max_message_size, flags;
	const char *type_name; /* NULL: any */
	const void *schema;
	size_t schema_size;
};

/* Ask for a topic as a client would, without proving anything: the
 * reply's status (its descriptors in r), or SHMBUS_EBROKER when the
 * connection closed or nothing came in 10 s. */
int hostile_open(int fd, const struct hostile_open *o, struct hostile_reply *r);

/* A frame header announcing `claimed` body bytes, then `sent` of them
 * (sent < claimed: a partial frame that never completes). 0 or -1. */
int hostile_send_partial(int fd, uint32_t claimed, size_t sent);

/* A frame that is not a frame (bad magic). 0 or -1. */
int hostile_send_garbage(int fd);

/* Try to change the objects behind a reply's descriptors the ways the
 * kernel might allow: truncate to 0 or grow (either would make others'
 * mappings fault), and reopen a read-only one writable through
 * /proc/self/fd. How many of each succeeded. */
void hostile_upgrades(const struct hostile_reply *r, int *resized, int *reopened);

/* ------------------------------------------------------------ mappings */

struct hostile_map {
	uint8_t *addr;
	size_t len;
	bool writable;
	char path[256];
};

/* Whether the kernel lets this process write through fd: opened for
 * writing, or mappable PROT_WRITE + MAP_SHARED. */
bool hostile_fd_writable(int fd);

/* Map every descriptor of a reply, writable when the descriptor allows
 * it (they then show in hostile_maps too). How many were mapped. */
size_t hostile_map_reply(const struct hostile_reply *r);

/* This process's mappings of shmbus shared objects (of any bus), from
 * /proc/self/maps: how many, up to cap stored in out. */
size_t hostile_maps(struct hostile_map *out, size_t cap);

/* Unmap every shmbus mapping this process has: a forked child drops
 * what it inherited, so that it holds only what it was handed itself. */
void hostile_unmap_all(void);

/* Write every byte of every writable shmbus mapping: with `byte`; with
 * random bytes from *seed; or with `word` (native order) at the start of
 * every 64-byte line and zeros elsewhere (what a table of one line per
 * client, pid first, then reads as "pid `word`, started at time 0").
 * Bytes written. */
size_t hostile_scribble(uint8_t byte);
size_t hostile_scribble_random(uint64_t *seed);
size_t hostile_scribble_lines(uint32_t word);

/* Replace every occurrence of `from` by `to` (n bytes each) in every
 * writable shmbus mapping. How many it replaced. */
size_t hostile_replace(const void *from, const void *to, size_t n);

/* ------------------------------------- what only the layout tells */

/* The writable mapping that holds the messages of `topic` (its data
 * segment). False if this process has none. */
bool hostile_topic_data(const char *topic, struct hostile_map *m);

/* Claim the topic's next sequence number the way a publisher does, and
 * take nothing more: what a publisher killed between its claim and its
 * slot leaves. 0 (number in *seq) or -1. */
int hostile_claim_seq(const char *topic, uint64_t *seq);

/* Overwrite the topic's sequence counter (e.g. rewind it to 0). 0 or -1. */
int hostile_set_counter(const char *topic, uint64_t next);

/* Rewrite the publisher id stored with message `seq`. 0, or -1 if that
 * message is not in the ring. */
int hostile_set_publisher_id(const char *topic, uint64_t seq, uint32_t id);

/* Publish by hand: claim a number, write `len` bytes of payload (no more
 * than the slot holds) but record `size` as the message's size, commit,
 * wake sleepers. 0 (number in *seq, may be NULL) or -1. */
int hostile_publish_raw(const char *topic, const void *payload, size_t len, uint32_t size,
			uint64_t *seq);

/* Recompute every check of a topic's header that needs no key, in every
 * writable data mapping (after hostile_replace rewrote fields). How many
 * headers it resealed. */
size_t hostile_reseal(void);

/* What the bus holds: the topics its broker lists (0 when none runs). */
int hostile_bus_files(const char *bus);

#endif
