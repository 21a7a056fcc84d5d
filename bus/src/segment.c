/*
 * segment.c - owns the bytes of a topic's shared-memory files: sizing,
 * formatting, checking untrusted headers, mapping.
 */
#include "segment.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "shmbus/shmbus.h"

#define PAGE 4096u

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

/* The slot count a topic gets when none is asked for: as many slots of its
 * size as SEG_RING_BUDGET holds, within [SEG_MIN_SLOTS, SEG_DEFAULT_SLOTS].
 * Small types get many slots in little memory, large ones few, so that a
 * ring of camera frames stays close to the cache instead of spanning many
 * MiB nobody reads. */
static uint32_t default_slot_count(uint32_t max_message_size)
{
	uint64_t slot = sizeof(struct slot_header) + round_up(max_message_size, 64);
	uint64_t n = SEG_RING_BUDGET / slot;
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
	if (p->max_message_size > SEG_MAX_MESSAGE) {
		snprintf(err, errlen, "max message size %u is above the limit %u",
			 p->max_message_size, SEG_MAX_MESSAGE);
		return SHMBUS_ELIMIT;
	}
	if (p->history == 0 || p->history >= p->slot_count)
		p->history = p->history == 0 ? p->slot_count / 2 : p->slot_count - 1;
	if (p->schema_size > SEG_MAX_SCHEMA) {
		snprintf(err, errlen, "schema of %zu bytes is above the limit %u", p->schema_size,
			 SEG_MAX_SCHEMA);
		return SHMBUS_ELIMIT;
	}
	if (!p->type_name)
		p->type_name = "";
	if (strlen(p->type_name) >= SEG_TYPE_MAX) {
		snprintf(err, errlen, "type name longer than %d bytes", SEG_TYPE_MAX - 1);
		return SHMBUS_EINVAL;
	}
	uint64_t slot_size = sizeof(struct slot_header) + round_up(p->max_message_size, 64);
	if ((uint64_t)p->slot_count * slot_size > (64ull << 30)) {
		snprintf(err, errlen, "%u slots of %llu bytes exceed 64 GiB", p->slot_count,
			 (unsigned long long)slot_size);
		return SHMBUS_ELIMIT;
	}
	return 0;
}

static size_t slots_offset_for(size_t schema_size)
{
	return round_up(sizeof(struct seg_header) + schema_size, PAGE);
}

size_t seg_size_for(const struct seg_params *p)
{
	size_t slot_size = sizeof(struct slot_header) + round_up(p->max_message_size, 64);
	return slots_offset_for(p->schema_size) + (size_t)p->slot_count * slot_size;
}

size_t ctl_size(void)
{
	return round_up(sizeof(struct ctl_header), PAGE);
}

static uint64_t header_check_of(const struct seg_header *h)
{
	/* FNV-1a over the immutable fields: everything between magic and
	 * header_check. */
	const uint8_t *b = (const uint8_t *)h + sizeof(h->magic);
	const uint8_t *end = (const uint8_t *)&h->header_check;
	uint64_t x = 0xcbf29ce484222325ull;
	while (b < end) {
		x ^= *b++;
		x *= 0x100000001b3ull;
	}
	return x;
}

void seg_format(void *mem, const struct seg_params *p)
{
	struct seg_header *h = mem;
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	h->layout_version = SEG_LAYOUT_VERSION;
	h->header_size = sizeof(*h);
	h->segment_size = seg_size_for(p);
	h->slot_count = p->slot_count;
	h->slot_size = (uint32_t)(sizeof(struct slot_header) + round_up(p->max_message_size, 64));
	h->max_message_size = p->max_message_size;
	h->history = p->history;
	h->flags = p->flags;
	h->topic_id = p->topic_id;
	h->schema_offset = sizeof(*h);
	h->schema_size = p->schema_size;
	h->slots_offset = slots_offset_for(p->schema_size);
	h->created_ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
	snprintf(h->topic, sizeof(h->topic), "%s", p->topic);
	snprintf(h->type_name, sizeof(h->type_name), "%s", p->type_name);
	if (p->schema_size)
		memcpy((uint8_t *)mem + h->schema_offset, p->schema, p->schema_size);
	h->header_check = header_check_of(h);
	atomic_store_explicit(&h->next_seq, 0, memory_order_relaxed);
	/* Release: a reader that sees the magic sees every field above. */
	atomic_store_explicit(&h->magic, SEG_MAGIC, memory_order_release);
}

void ctl_format(void *mem, uint32_t topic_id)
{
	struct ctl_header *c = mem;
	c->layout_version = SEG_LAYOUT_VERSION;
	c->topic_id = topic_id;
	c->max_pubs = SEG_MAX_PUBS;
	c->max_subs = SEG_MAX_SUBS;
	/* Release: pairs with the acquire load of magic in ctl_check. */
	atomic_store_explicit(&c->magic, CTL_MAGIC, memory_order_release);
}

static bool str_terminated(const char *s, size_t cap)
{
	return memchr(s, '\0', cap) != NULL;
}

int seg_check(const void *mem, size_t size, char *err, size_t errlen)
{
	const struct seg_header *h = mem;

	if (size < sizeof(*h)) {
		snprintf(err, errlen, "segment is %zu bytes, smaller than its header (%zu)", size,
			 sizeof(*h));
		return SHMBUS_ECORRUPT;
	}
	/* Acquire: pairs with the release store in seg_format. */
	uint64_t magic = atomic_load_explicit(&((struct seg_header *)h)->magic,
					      memory_order_acquire);
	if (magic != SEG_MAGIC) {
		snprintf(err, errlen, "not a shmbus data segment (magic %016llx)",
			 (unsigned long long)magic);
		return SHMBUS_ECORRUPT;
	}
	if (h->layout_version != SEG_LAYOUT_VERSION) {
		snprintf(err, errlen, "segment layout version %u, this library reads %u",
			 h->layout_version, SEG_LAYOUT_VERSION);
		return SHMBUS_EVERSION;
	}
	if (h->header_size != sizeof(*h) || h->header_check != header_check_of(h)) {
		snprintf(err, errlen, "segment header is corrupt (check mismatch)");
		return SHMBUS_ECORRUPT;
	}
	if (h->slot_count < 2 || h->slot_count > SEG_MAX_SLOTS ||
	    (h->slot_count & (h->slot_count - 1)) || h->max_message_size == 0 ||
	    h->max_message_size > SEG_MAX_MESSAGE ||
	    h->slot_size != sizeof(struct slot_header) + round_up(h->max_message_size, 64) ||
	    h->history >= h->slot_count || h->schema_size > SEG_MAX_SCHEMA ||
	    h->schema_offset != sizeof(*h) ||
	    h->slots_offset != slots_offset_for(h->schema_size) ||
	    !str_terminated(h->topic, sizeof(h->topic)) ||
	    !str_terminated(h->type_name, sizeof(h->type_name))) {
		snprintf(err, errlen, "segment header has impossible layout values");
		return SHMBUS_ECORRUPT;
	}
	uint64_t need = h->slots_offset + (uint64_t)h->slot_count * h->slot_size;
	if (h->segment_size != need || size < need) {
		snprintf(err, errlen, "segment is truncated: %zu bytes, layout needs %llu", size,
			 (unsigned long long)need);
		return SHMBUS_ECORRUPT;
	}
	return 0;
}

int ctl_check(const void *mem, size_t size, char *err, size_t errlen)
{
	const struct ctl_header *c = mem;
	if (size < sizeof(*c)) {
		snprintf(err, errlen, "control area is %zu bytes, needs %zu", size, sizeof(*c));
		return SHMBUS_ECORRUPT;
	}
	/* Acquire: pairs with the release store in ctl_format. */
	uint64_t magic = atomic_load_explicit(&((struct ctl_header *)c)->magic,
					      memory_order_acquire);
	if (magic != CTL_MAGIC) {
		snprintf(err, errlen, "not a shmbus control area");
		return SHMBUS_ECORRUPT;
	}
	if (c->layout_version != SEG_LAYOUT_VERSION) {
		snprintf(err, errlen, "control area layout version %u, this library reads %u",
			 c->layout_version, SEG_LAYOUT_VERSION);
		return SHMBUS_EVERSION;
	}
	if (c->max_pubs != SEG_MAX_PUBS || c->max_subs != SEG_MAX_SUBS) {
		snprintf(err, errlen, "control area has impossible table sizes");
		return SHMBUS_ECORRUPT;
	}
	return 0;
}

static int map_fd(int fd, int prot, void **mem, size_t *size, char *err, size_t errlen)
{
	struct stat st;
	if (fstat(fd, &st) < 0) {
		snprintf(err, errlen, "fstat: %s", strerror(errno));
		return SHMBUS_ESYS;
	}
	if (st.st_size <= 0) {
		snprintf(err, errlen, "shared-memory file is empty");
		return SHMBUS_ECORRUPT;
	}
	/* Populated now: a topic's first lap must not pay a page fault per
	 * page of every slot in every process (several us each on a VM). */
	void *p = mmap(NULL, (size_t)st.st_size, prot, MAP_SHARED | MAP_POPULATE, fd, 0);
	if (p == MAP_FAILED) {
		snprintf(err, errlen, "mmap of %lld bytes: %s", (long long)st.st_size,
			 strerror(errno));
		return errno == ENOMEM ? SHMBUS_ENOMEM : SHMBUS_ESYS;
	}
	*mem = p;
	*size = (size_t)st.st_size;
	return 0;
}

int topic_map_fds(int data_fd, int ctl_fd, bool writable, bool ctl_writable,
		  struct topic_map *m, char *err, size_t errlen)
{
	void *seg, *ctl;
	size_t seg_size, csize;
	int rc;

	memset(m, 0, sizeof(*m));
	rc = map_fd(data_fd, writable ? PROT_READ | PROT_WRITE : PROT_READ, &seg, &seg_size, err,
		    errlen);
	if (rc)
		return rc;
	rc = seg_check(seg, seg_size, err, errlen);
	if (rc) {
		munmap(seg, seg_size);
		return rc;
	}
	rc = map_fd(ctl_fd, ctl_writable ? PROT_READ | PROT_WRITE : PROT_READ, &ctl, &csize, err,
		    errlen);
	if (rc) {
		munmap(seg, seg_size);
		return rc;
	}
	rc = ctl_check(ctl, csize, err, errlen);
	if (rc) {
		munmap(seg, seg_size);
		munmap(ctl, csize);
		return rc;
	}
	m->seg = seg;
	m->seg_size = seg_size;
	m->ctl = ctl;
	m->ctl_size = csize;
	m->slots = (uint8_t *)seg + m->seg->slots_offset;
	m->mask = m->seg->slot_count - 1;
	m->slot_size = m->seg->slot_size;
	m->writable = writable;
	return 0;
}

void topic_unmap(struct topic_map *m)
{
	if (m->seg)
		munmap(m->seg, m->seg_size);
	if (m->ctl)
		munmap(m->ctl, m->ctl_size);
	memset(m, 0, sizeof(*m));
}

int seg_shm_name(char *buf, size_t len, unsigned uid, const char *bus, uint32_t topic_id,
		 bool ctl)
{
	int n = snprintf(buf, len, "/shmbus.%u@%s@%u.%s", uid, bus, topic_id, ctl ? "ctl" : "data");
	return (n < 0 || (size_t)n >= len) ? SHMBUS_ENAME : 0;
}

int bus_page_shm_name(char *buf, size_t len, unsigned uid, const char *bus)
{
	int n = snprintf(buf, len, "/shmbus.%u@%s.bus", uid, bus);
	return (n < 0 || (size_t)n >= len) ? SHMBUS_ENAME : 0;
}

/* Decimal digits without a sign or leading zero, fitting 32 bits. */
static bool parse_u32(const char *p, const char **end, uint32_t *v)
{
	uint64_t x = 0;
	const char *q = p;
	while (*q >= '0' && *q <= '9' && q - p < 10)
		x = x * 10 + (uint64_t)(*q++ - '0');
	if (q == p || (*p == '0' && q - p > 1) || x > UINT32_MAX)
		return false;
	*end = q;
	*v = (uint32_t)x;
	return true;
}

bool shm_name_parse(const char *entry, unsigned uid, const char *bus, uint32_t *topic_id,
		    const char **kind)
{
	char prefix[128];
	int n = snprintf(prefix, sizeof(prefix), "shmbus.%u@%s", uid, bus);
	if (n < 0 || (size_t)n >= sizeof(prefix) || strncmp(entry, prefix, (size_t)n) != 0)
		return false;
	const char *p = entry + n;
	if (strcmp(p, ".bus") == 0) {
		*topic_id = 0;
		*kind = "bus";
		return true;
	}
	if (*p++ != '@' || !parse_u32(p, &p, topic_id) || *topic_id == 0)
		return false;
	if (strcmp(p, ".data") == 0)
		*kind = "data";
	else if (strcmp(p, ".ctl") == 0)
		*kind = "ctl";
	else
		return false;
	return true;
}
