/*
 * segment.h - creating, checking and mapping a topic's two shared-memory
 * files (layout in layout.h). Used by the broker (create, take back after a
 * restart) and by clients (map what the broker handed them).
 */
#ifndef SHMBUS_SEGMENT_H
#define SHMBUS_SEGMENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "layout.h"

/* What a topic's layout is made from. */
struct seg_params {
	uint32_t slot_count;       /* rounded up to a power of two */
	uint32_t max_message_size;
	uint32_t history;
	uint32_t flags;
	uint32_t topic_id;
	const char *topic;
	const char *type_name;     /* "" for untyped */
	const void *schema;
	size_t schema_size;
};

/* A mapped topic. */
struct topic_map {
	struct seg_header *seg;
	size_t seg_size;
	struct ctl_header *ctl;
	size_t ctl_size;
	uint8_t *slots;
	uint32_t mask;      /* slot_count - 1 */
	uint32_t slot_size;
	bool writable;      /* data segment mapped for writing */
};

/* Fill in defaults and bounds; SHMBUS_EINVAL/ELIMIT with a reason in err. */
int seg_params_normalize(struct seg_params *p, char *err, size_t errlen);

size_t seg_size_for(const struct seg_params *p);
size_t ctl_size(void);

/* Write a fresh data segment / control area into zeroed memory of the
 * right size; the magic is stored last. */
void seg_format(void *mem, const struct seg_params *p);
void ctl_format(void *mem, uint32_t topic_id);

/* Check bytes that claim to be a data segment of file size `size` before
 * trusting any of them. 0, SHMBUS_EVERSION or SHMBUS_ECORRUPT (reason in
 * err). Reads only within [mem, mem + size). */
int seg_check(const void *mem, size_t size, char *err, size_t errlen);
int ctl_check(const void *mem, size_t size, char *err, size_t errlen);

/* Map the files behind data_fd and ctl_fd and check them; the fds can be
 * closed afterwards. writable / ctl_writable: map read-write. */
int topic_map_fds(int data_fd, int ctl_fd, bool writable, bool ctl_writable,
		  struct topic_map *m, char *err, size_t errlen);
void topic_unmap(struct topic_map *m);

static inline struct slot_header *topic_slot(const struct topic_map *m, uint64_t seq)
{
	return (struct slot_header *)(m->slots + (size_t)(seq & m->mask) * m->slot_size);
}

static inline uint8_t *slot_payload(struct slot_header *s)
{
	return (uint8_t *)(s + 1);
}

/* Names of a bus's files in /dev/shm. '@' cannot occur in a bus name, so
 * no bus's names are a prefix of another's:
 *   "/shmbus.<uid>@<bus>.bus"             the bus page
 *   "/shmbus.<uid>@<bus>@<id>.<kind>"     a topic's files */
int seg_shm_name(char *buf, size_t len, unsigned uid, const char *bus, uint32_t topic_id,
		 bool ctl);
int bus_page_shm_name(char *buf, size_t len, unsigned uid, const char *bus);

/* Parse a /dev/shm directory entry (no leading '/') as a file of bus `bus`
 * of user `uid`: true with *topic_id and kind ("data", "ctl"; "bus" with
 * *topic_id 0 for the bus page) if it is exactly one; false for anything
 * else, including other buses' files. */
bool shm_name_parse(const char *entry, unsigned uid, const char *bus, uint32_t *topic_id,
		    const char **kind);

#endif /* SHMBUS_SEGMENT_H */
