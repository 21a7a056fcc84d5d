/*
 * segment.c - owns the bytes of a bus's shared objects: sizing,
 * formatting, checking untrusted meta headers, sealed memfds, mapping.
 */
#include "segment.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clock.h"
#include "paths.h"
#include "shmbus/shmbus.h"

#define SEALS (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)

static size_t round_up(size_t v, size_t to)
{
	return (v + to - 1) / to * to;
}

static uint32_t pow2_at_least(uint32_t v)
{
	uint32_t p = 1;
	while (p < v)
		p <<= 1;
	return p;
}

uint32_t seg_slot_size(uint32_t max_message_size)
{
	return (uint32_t)(sizeof(struct slot_header) + round_up(max_message_size, 64));
}

/* The slot count a topic gets when none is asked for: as many slots of its
 * size as SEG_RING_BUDGET holds, within [SEG_MIN_SLOTS, SEG_DEFAULT_SLOTS].
 * Small types get many slots in little memory, large ones few, so that a
 * ring of camera frames stays close to the cache instead of spanning many
 * MiB nobody reads. */
static uint32_t default_slot_count(uint32_t max_message_size)
{
	uint64_t n = SEG_RING_BUDGET / seg_slot_size(max_message_size);
	if (n < SEG_MIN_SLOTS)
		n = SEG_MIN_SLOTS;
	if (n > SEG_DEFAULT_SLOTS)
		n = SEG_DEFAULT_SLOTS;
	return (uint32_t)n;
}

int seg_params_normalize(struct seg_params *p, char *err, size_t errlen)
{
	if (p->max_message_size == 0)
		p->max_message_size = SEG_DEFAULT_MESSAGE;
	if (p->max_message_size > SEG_MAX_MESSAGE) {
		snprintf(err, errlen, "max message size %u is above the limit %u",
			 p->max_message_size, SEG_MAX_MESSAGE);
		return SHMBUS_ELIMIT;
	}
	if (p->slot_count == 0)
		p->slot_count = default_slot_count(p->max_message_size);
	if (p->slot_count < 2)
		p->slot_count = 2;
	if (p->slot_count > SEG_MAX_SLOTS) {
		snprintf(err, errlen, "slot count %u is above the limit %u", p->slot_count,
			 SEG_MAX_SLOTS);
		return SHMBUS_ELIMIT;
	}
	p->slot_count = pow2_at_least(p->slot_count);
	if (p->history == 0 || p->history >= p->slot_count)
		p->history = p->history == 0 ? p->slot_count / 2 : p->slot_count - 1;
	if (p->schema_size > SEG_MAX_SCHEMA) {
		snprintf(err, errlen, "schema of %zu bytes is above the limit %u", p->schema_size,
			 SEG_MAX_SCHEMA);
		return SHMBUS_ELIMIT;
	}
	if (!p->type_name)
		p->type_name = "";
	if (!type_name_valid(p->type_name)) {
		snprintf(err, errlen, "invalid type name: use up to 255 of [A-Za-z0-9_.]");
		return SHMBUS_EINVAL;
	}
	if ((uint64_t)p->slot_count * seg_slot_size(p->max_message_size) > (64ull << 30)) {
		snprintf(err, errlen, "%u slots of %u bytes exceed 64 GiB", p->slot_count,
			 seg_slot_size(p->max_message_size));
		return SHMBUS_ELIMIT;
	}
	return 0;
}

size_t seg_meta_size(size_t schema_size)
{
	return round_up(sizeof(struct meta_header) + schema_size, SHMBUS_PAGE);
}

size_t seg_data_size(const struct seg_params *p)
{
	return DATA_SLOTS_OFFSET + (size_t)p->slot_count * seg_slot_size(p->max_message_size);
}

static uint64_t header_check_of(const struct meta_header *h)
{
	/* FNV-1a over the fields that never change: everything between
	 * magic and header_check. */
	const uint8_t *b = (const uint8_t *)h + sizeof(h->magic);
	const uint8_t *end = (const uint8_t *)&h->header_check;
	uint64_t x = 0xcbf29ce484222325ull;
	while (b < end) {
		x ^= *b++;
		x *= 0x100000001b3ull;
	}
	return x;
}

void seg_meta_format(void *mem, const struct seg_params *p)
{
	struct meta_header *h = mem;

	h->layout_version = SEG_LAYOUT_VERSION;
	h->header_size = sizeof(*h);
	h->topic_id = p->topic_id;
	h->flags = p->flags;
	memcpy(h->incarnation, p->incarnation, sizeof(h->incarnation));
	h->created_ns = realtime_ns();
	h->slot_count = p->slot_count;
	h->slot_size = seg_slot_size(p->max_message_size);
	h->max_message_size = p->max_message_size;
	h->history = p->history;
	h->board_line = p->board_line;
	h->creator_uid = p->creator_uid;
	h->generation = p->generation;
	h->base_seq = p->base_seq;
	h->meta_size = seg_meta_size(p->schema_size);
	h->data_size = seg_data_size(p);
	h->schema_offset = sizeof(*h);
	h->schema_size = p->schema_size;
	snprintf(h->name, sizeof(h->name), "%s", p->topic);
	snprintf(h->type_name, sizeof(h->type_name), "%s", p->type_name);
	if (p->schema_size)
		memcpy((uint8_t *)mem + h->schema_offset, p->schema, p->schema_size);
	h->header_check = header_check_of(h);
	atomic_store_explicit(&h->state, META_OPEN, memory_order_relaxed);
	atomic_store_explicit(&h->sealed_at, UINT64_MAX, memory_order_relaxed);
	/* Release: a reader that sees the magic sees every field above. */
	atomic_store_explicit(&h->magic, META_MAGIC, memory_order_release);
}

void seg_data_format(void *mem, uint64_t base_seq)
{
	struct data_header *d = mem;
	/* Relaxed: nobody else has the object yet. */
	atomic_store_explicit(&d->next_seq, base_seq, memory_order_relaxed);
}

int seg_data_format_head(int fd, uint64_t base_seq)
{
	void *p = mmap(NULL, DATA_SLOTS_OFFSET, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		return -1;
	seg_data_format(p, base_seq);
	munmap(p, DATA_SLOTS_OFFSET);
	return 0;
}

void seg_bus_format(void *mem)
{
	struct bus_page *b = mem;
	b->layout_version = BUS_LAYOUT_VERSION;
	/* Release: a client that sees the magic sees the version. */
	atomic_store_explicit(&b->magic, BUS_MAGIC, memory_order_release);
}

void seg_layout_of(const struct meta_header *m, struct seg_layout *l)
{
	memset(l, 0, sizeof(*l));
	l->topic_id = m->topic_id;
	l->flags = m->flags;
	l->slot_count = m->slot_count;
	l->slot_size = m->slot_size;
	l->max_message_size = m->max_message_size;
	l->history = m->history;
	l->board_line = m->board_line;
	l->generation = m->generation;
	l->base_seq = m->base_seq;
	l->meta_size = m->meta_size;
	l->data_size = m->data_size;
	l->schema_size = m->schema_size;
	memcpy(l->incarnation, m->incarnation, sizeof(l->incarnation));
	memcpy(l->name, m->name, sizeof(l->name));
	memcpy(l->type_name, m->type_name, sizeof(l->type_name));
}

static bool str_in(const char *s, size_t cap)
{
	return memchr(s, '\0', cap) != NULL;
}

int seg_meta_check(const void *mem, size_t size, char *err, size_t errlen)
{
	const struct meta_header *h = mem;

	if (size < sizeof(*h)) {
		snprintf(err, errlen, "meta is %zu bytes, smaller than its header (%zu)", size,
			 sizeof(*h));
		return SHMBUS_ECORRUPT;
	}
	/* Acquire: pairs with the release store in seg_meta_format. */
	uint64_t magic = atomic_load_explicit(&((struct meta_header *)h)->magic,
					      memory_order_acquire);
	if (magic != META_MAGIC) {
		snprintf(err, errlen, "not a shmbus topic (magic %016llx)",
			 (unsigned long long)magic);
		return SHMBUS_ECORRUPT;
	}
	if (h->layout_version != SEG_LAYOUT_VERSION) {
		snprintf(err, errlen, "topic layout version %u, this library reads %u",
			 h->layout_version, SEG_LAYOUT_VERSION);
		return SHMBUS_EVERSION;
	}
	if (h->header_size != sizeof(*h) || h->header_check != header_check_of(h)) {
		snprintf(err, errlen, "topic header is corrupt (check mismatch)");
		return SHMBUS_ECORRUPT;
	}
	if (h->slot_count < 2 || h->slot_count > SEG_MAX_SLOTS ||
	    (h->slot_count & (h->slot_count - 1)) || h->max_message_size == 0 ||
	    h->max_message_size > SEG_MAX_MESSAGE ||
	    h->slot_size != seg_slot_size(h->max_message_size) || h->history >= h->slot_count ||
	    h->schema_size > SEG_MAX_SCHEMA || h->schema_offset != sizeof(*h) ||
	    h->meta_size != seg_meta_size(h->schema_size) || h->board_line >= BUS_MAX_TOPICS ||
	    h->data_size != DATA_SLOTS_OFFSET + (uint64_t)h->slot_count * h->slot_size ||
	    !str_in(h->name, sizeof(h->name)) || !str_in(h->type_name, sizeof(h->type_name)) ||
	    !topic_name_valid(h->name) || !type_name_valid(h->type_name)) {
		snprintf(err, errlen, "topic header has impossible layout values");
		return SHMBUS_ECORRUPT;
	}
	if (size < h->meta_size) {
		snprintf(err, errlen, "meta is truncated: %zu bytes, layout needs %llu", size,
			 (unsigned long long)h->meta_size);
		return SHMBUS_ECORRUPT;
	}
	return 0;
}

int seg_bus_check(const void *mem, size_t size, char *err, size_t errlen)
{
	const struct bus_page *b = mem;
	if (size < sizeof(*b)) {
		snprintf(err, errlen, "bus page is %zu bytes, needs %zu", size, sizeof(*b));
		return SHMBUS_ECORRUPT;
	}
	/* Acquire: pairs with the release store in seg_bus_format. */
	if (atomic_load_explicit(&((struct bus_page *)b)->magic, memory_order_acquire) !=
	    BUS_MAGIC) {
		snprintf(err, errlen, "not a shmbus bus page");
		return SHMBUS_ECORRUPT;
	}
	if (b->layout_version != BUS_LAYOUT_VERSION) {
		snprintf(err, errlen, "bus page layout version %u, this library reads %u",
			 b->layout_version, BUS_LAYOUT_VERSION);
		return SHMBUS_EVERSION;
	}
	return 0;
}

int seg_memfd(const char *name, size_t size, char *err, size_t errlen)
{
	int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0) {
		snprintf(err, errlen, "memfd_create: %s", strerror(errno));
		return -1;
	}
	int e = ftruncate(fd, (off_t)size) < 0 ? errno : posix_fallocate(fd, 0, (off_t)size);
	if (e == 0 && fcntl(fd, F_ADD_SEALS, SEALS) < 0)
		e = errno;
	if (e) {
		snprintf(err, errlen, "reserve %zu bytes of shared memory for %s: %s", size, name,
			 strerror(e));
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

bool seg_fd_sealed(int fd, size_t size)
{
	struct stat st;
	int seals = fcntl(fd, F_GET_SEALS);
	return seals >= 0 && (seals & SEALS) == SEALS && fstat(fd, &st) == 0 &&
	       (uint64_t)st.st_size == size;
}

int seg_map_fd(int fd, bool writable, bool populate, size_t expect_size, void **mem,
	       char *err, size_t errlen)
{
	struct stat st;
	if (fstat(fd, &st) < 0) {
		snprintf(err, errlen, "fstat: %s", strerror(errno));
		return SHMBUS_ESYS;
	}
	if (st.st_size <= 0 || (expect_size && (uint64_t)st.st_size != expect_size)) {
		snprintf(err, errlen, "shared object is %lld bytes, expected %zu",
			 (long long)st.st_size, expect_size);
		return SHMBUS_ECORRUPT;
	}
	void *p = mmap(NULL, (size_t)st.st_size, writable ? PROT_READ | PROT_WRITE : PROT_READ,
		       MAP_SHARED | (populate ? MAP_POPULATE : 0), fd, 0);
	if (p == MAP_FAILED) {
		snprintf(err, errlen, "mmap of %lld bytes: %s", (long long)st.st_size,
			 strerror(errno));
		return errno == ENOMEM ? SHMBUS_ENOMEM : SHMBUS_ESYS;
	}
	*mem = p;
	return 0;
}

/* The meta says what the broker said at open. */
static bool meta_matches(const struct meta_header *h, const struct seg_layout *l)
{
	return h->topic_id == l->topic_id && h->flags == l->flags &&
	       h->slot_count == l->slot_count && h->slot_size == l->slot_size &&
	       h->max_message_size == l->max_message_size && h->history == l->history &&
	       h->board_line == l->board_line && h->generation == l->generation &&
	       h->base_seq == l->base_seq && h->meta_size == l->meta_size &&
	       h->data_size == l->data_size && h->schema_size == l->schema_size &&
	       memcmp(h->incarnation, l->incarnation, sizeof(l->incarnation)) == 0 &&
	       strcmp(h->name, l->name) == 0 && strcmp(h->type_name, l->type_name) == 0;
}

int topic_map_fds(int meta_fd, int data_fd, bool writable, const struct seg_layout *expect,
		  struct board_line *board, struct topic_map *m, char *err, size_t errlen)
{
	void *meta = NULL, *data = NULL;
	int rc;

	memset(m, 0, sizeof(*m));
	if (!seg_fd_sealed(data_fd, expect->data_size)) {
		snprintf(err, errlen, "the topic's data object is not sealed at %llu bytes",
			 (unsigned long long)expect->data_size);
		return SHMBUS_ECORRUPT;
	}
	rc = seg_map_fd(meta_fd, false, false, expect->meta_size, &meta, err, errlen);
	if (rc)
		return rc;
	rc = seg_meta_check(meta, expect->meta_size, err, errlen);
	if (rc == 0 && !meta_matches(meta, expect)) {
		snprintf(err, errlen, "the topic's meta does not match what its broker said");
		rc = SHMBUS_ECORRUPT;
	}
	/* Populated now: a topic's first lap must not pay a page fault per
	 * page of every slot in every process (several us each on a VM). */
	if (rc == 0)
		rc = seg_map_fd(data_fd, writable, true, expect->data_size, &data, err, errlen);
	if (rc) {
		munmap(meta, expect->meta_size);
		return rc;
	}
	m->meta = meta;
	m->data = data;
	m->wake = &board[expect->board_line];
	m->slots = (uint8_t *)data + DATA_SLOTS_OFFSET;
	m->meta_size = expect->meta_size;
	m->data_size = expect->data_size;
	m->mask = expect->slot_count - 1;
	m->slot_size = expect->slot_size;
	m->max_message_size = expect->max_message_size;
	m->history = expect->history;
	m->flags = expect->flags;
	m->writable = writable;
	m->layout = *expect;
	return 0;
}

void topic_unmap(struct topic_map *m)
{
	if (m->meta)
		munmap((void *)m->meta, m->meta_size);
	if (m->data)
		munmap(m->data, m->data_size);
	memset(m, 0, sizeof(*m));
}
