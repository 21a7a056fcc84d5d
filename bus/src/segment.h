/*
 * segment.h - the bytes of a bus's shared objects (layout in layout.h):
 * sizing and formatting them (the broker), checking a meta object before
 * trusting it (the broker taking topics back; clients at open), making
 * sealed memfds, and mapping what the broker handed a client.
 */
#ifndef SHMBUS_SEGMENT_H
#define SHMBUS_SEGMENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "layout.h"

/* What a topic is made from. */
struct seg_params {
	uint32_t slot_count;       /* rounded up to a power of two */
	uint32_t max_message_size;
	uint32_t history;
	uint32_t flags;
	uint32_t topic_id;
	uint32_t board_line;
	uint32_t creator_uid;
	uint32_t generation;       /* of a successor ring (0: the first) */
	uint64_t base_seq;         /* its first sequence number */
	uint8_t incarnation[SEG_INCARNATION_BYTES];
	const char *topic;
	const char *type_name;     /* "" for untyped */
	const void *schema;
	size_t schema_size;
};

/* The layout a client was told at open (by its broker, over the socket),
 * checked against the objects it maps. Its own copy: never read back from
 * shared memory. */
struct seg_layout {
	uint32_t topic_id;
	uint32_t flags;
	uint32_t slot_count;
	uint32_t slot_size;
	uint32_t max_message_size;
	uint32_t history;
	uint32_t board_line;
	uint32_t generation;
	uint64_t base_seq;
	uint64_t meta_size;
	uint64_t data_size;
	uint64_t schema_size;
	uint8_t incarnation[SEG_INCARNATION_BYTES];
	char name[SEG_TOPIC_MAX];
	char type_name[SEG_TYPE_MAX];
};

/* A mapped topic: pointers into shared memory, and the layout it was
 * opened with. */
struct topic_map {
	const struct meta_header *meta;  /* read-only */
	struct data_header *data;        /* read-only for subscribers */
	struct board_line *wake;         /* this topic's line of the wake board */
	uint8_t *slots;
	size_t meta_size, data_size;
	uint32_t mask;                   /* slot_count - 1 */
	uint32_t slot_size;
	uint32_t max_message_size;
	uint32_t history;
	uint32_t flags;
	bool writable;                   /* data mapped for writing */
	struct seg_layout layout;
};

/* Fill in defaults and bounds; SHMBUS_EINVAL/ELIMIT with a reason in err. */
int seg_params_normalize(struct seg_params *p, char *err, size_t errlen);

size_t seg_meta_size(size_t schema_size);
size_t seg_data_size(const struct seg_params *p);
uint32_t seg_slot_size(uint32_t max_message_size);

/* Write a fresh meta / data object into zeroed memory of the right size;
 * the meta's magic is stored last. */
void seg_meta_format(void *mem, const struct seg_params *p);
void seg_data_format(void *mem, uint64_t base_seq);
/* The same on a data object by its descriptor (only its first page is
 * touched): 0 or -1. */
int seg_data_format_head(int fd, uint64_t base_seq);
void seg_bus_format(void *mem);

/* The layout a meta describes (for the broker's OPEN reply). */
void seg_layout_of(const struct meta_header *m, struct seg_layout *l);

/* Check bytes that claim to be a meta object of `size` bytes before
 * trusting any of them: 0, SHMBUS_EVERSION or SHMBUS_ECORRUPT (reason in
 * err). Pure: reads only within [mem, mem + size), writes only err. */
int seg_meta_check(const void *mem, size_t size, char *err, size_t errlen);

/* The same for a bus page. */
int seg_bus_check(const void *mem, size_t size, char *err, size_t errlen);

/* A memfd of `size` bytes, memory reserved (a full system is an error now,
 * not a SIGBUS later) and sealed against shrinking and growing: -1 with a
 * reason. `name` shows in /proc/PID/fd. */
int seg_memfd(const char *name, size_t size, char *err, size_t errlen);

/* Whether fd is a sealed object of exactly `size` bytes. */
bool seg_fd_sealed(int fd, size_t size);

/* Map a topic a client was handed: meta read-only, data read-write when
 * `writable`; check both against `expect` (sizes, the meta's fields), and
 * find the topic's line of `board`. The fds can be closed afterwards. */
int topic_map_fds(int meta_fd, int data_fd, bool writable, const struct seg_layout *expect,
		  struct board_line *board, struct topic_map *m, char *err, size_t errlen);
void topic_unmap(struct topic_map *m);

/* Map a whole fd (shared), of expect_size bytes (0: whatever it has);
 * populate: fault every page in now. */
int seg_map_fd(int fd, bool writable, bool populate, size_t expect_size, void **mem,
	       char *err, size_t errlen);

static inline struct slot_header *topic_slot(const struct topic_map *m, uint64_t seq)
{
	return (struct slot_header *)(m->slots + (size_t)(seq & m->mask) * m->slot_size);
}

static inline uint8_t *slot_payload(struct slot_header *s)
{
	return (uint8_t *)(s + 1);
}

#endif /* SHMBUS_SEGMENT_H */
