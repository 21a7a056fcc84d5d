/*
 * registry.c - owns the broker's topics, client pages, bus page and wake
 * board, and their shared objects (see registry.h, layout.h).
 */
#include "registry.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "futex.h"
#include "integrity.h"
#include "log.h"
#include "paths.h"
#include "ring.h"
#include "shmbus/shmbus.h"

/* ------------------------------------------------------------ plumbing */

static void keep(struct registry *r, uint32_t kind, uint32_t id, int fd, pid_t pid,
		 uint64_t start_time)
{
	struct keep_rec rec = { kind, id, pid, 0, start_time };
	if (r->keeper >= 0 && keeper_put(r->keeper, &rec, fd)) {
		log_msg("lost the keeper; starting a new one");
		registry_rekeep(r);
	}
}

static void unkeep(struct registry *r, uint32_t kind, uint32_t id)
{
	if (r->keeper >= 0 && keeper_drop(r->keeper, kind, id)) {
		log_msg("lost the keeper; starting a new one");
		registry_rekeep(r);
	}
}

/* A sealed memfd, owner-only (so a client handed a read-only descriptor
 * cannot reopen it writable through /proc), mapped read-write. */
static int new_object(const char *what, const char *bus, const char *topic, size_t size,
		      void **mem, char *err, size_t errlen)
{
	char name[256];
	snprintf(name, sizeof(name), "shmbus:%s:%s:%s", bus, topic, what);
	int fd = seg_memfd(name, size, err, errlen);
	if (fd < 0)
		return errno == ENOSPC || errno == ENOMEM ? SHMBUS_ENOMEM : SHMBUS_ESYS;
	int rc = fchmod(fd, 0600) < 0 ? SHMBUS_ESYS : 0;
	if (rc == 0)
		rc = seg_map_fd(fd, true, false, size, mem, err, errlen);
	else
		snprintf(err, errlen, "fchmod: %s", strerror(errno));
	if (rc) {
		close(fd);
		return rc;
	}
	return fd;
}

int registry_ro_fd(int fd)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	return open(path, O_RDONLY | O_CLOEXEC);
}

bool registry_alive(pid_t pid, uint64_t start_time)
{
	return proc_alive(pid, start_time);
}

void registry_topics_changed(struct registry *r)
{
	if (!r->page)
		return;
	/* Release: pairs with the client's acquire load before it asks for
	 * the list (the list itself comes from the broker). */
	atomic_fetch_add_explicit(&r->page->topics_gen, 1, memory_order_release);
	futex_wake_all_shared(&r->page->topics_gen);
}

static int add_ptr(void ***v, size_t *n, size_t *cap, void *p)
{
	if (*n == *cap) {
		size_t c = *cap ? *cap * 2 : 16;
		void **nv = realloc(*v, c * sizeof(*nv));
		if (!nv)
			return SHMBUS_ENOMEM;
		*v = nv;
		*cap = c;
	}
	(*v)[(*n)++] = p;
	return 0;
}

static bool board_take(struct registry *r, uint32_t *line)
{
	for (uint32_t i = 0; i < BUS_MAX_TOPICS; i++)
		if (!(r->board_used[i / 8] & (1u << (i % 8)))) {
			r->board_used[i / 8] |= (uint8_t)(1u << (i % 8));
			*line = i;
			return true;
		}
	return false;
}

static void board_give(struct registry *r, uint32_t line)
{
	r->board_used[line / 8] &= (uint8_t)~(1u << (line % 8));
	/* A fresh line for the next topic: nobody sleeps on it. */
	atomic_store_explicit(&r->board[line].sleeping, 0, memory_order_relaxed);
}

/* -------------------------------------------------------------- topics */

struct topic *registry_find(struct registry *r, const char *name)
{
	for (size_t i = 0; i < r->n; i++)
		if (topic_names_equal(r->topics[i]->layout.name, name))
			return r->topics[i];
	return NULL;
}

struct topic *registry_by_id(struct registry *r, uint32_t id)
{
	for (size_t i = 0; i < r->n; i++)
		if (r->topics[i]->id == id)
			return r->topics[i];
	return NULL;
}

static void old_ring_close(struct old_ring *o)
{
	close(o->meta_fd);
	close(o->data_fd);
}

static void topic_free(struct topic *t)
{
	for (size_t i = 0; i < t->n_old; i++)
		old_ring_close(&t->old[i]);
	if (t->meta)
		munmap(t->meta, t->layout.meta_size);
	if (t->data)
		munmap(t->data, SHMBUS_PAGE);
	if (t->meta_fd >= 0)
		close(t->meta_fd);
	if (t->data_fd >= 0)
		close(t->data_fd);
	free(t);
}

/* Map the data's first page (next_seq, epoch): all the broker touches of
 * a ring until it must release a dead holder's slots. */
static int map_data_head(struct topic *t, char *err, size_t errlen)
{
	void *p = mmap(NULL, SHMBUS_PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, t->data_fd, 0);
	if (p == MAP_FAILED) {
		snprintf(err, errlen, "mmap of topic data: %s", strerror(errno));
		return SHMBUS_ESYS;
	}
	t->data = p;
	return 0;
}

/* A ring's two objects for the topic described by p, in t: the meta
 * mapped read-write (unformatted), the data formatted from p->base_seq. */
static int make_ring(struct registry *r, const struct seg_params *p, struct topic *t, char *err,
		     size_t errlen)
{
	void *meta = NULL, *data = NULL;
	size_t msize = seg_meta_size(p->schema_size), dsize = seg_data_size(p);
	int fd = new_object("meta", r->bus, p->topic, msize, &meta, err, errlen);
	if (fd < 0)
		return fd;
	t->meta_fd = fd;
	t->meta = meta;
	t->layout.meta_size = msize;
	fd = new_object("data", r->bus, p->topic, dsize, &data, err, errlen);
	if (fd < 0)
		return fd;
	t->data_fd = fd;
	seg_data_format(data, p->base_seq);
	munmap(data, dsize);
	return 0;
}

int registry_create(struct registry *r, struct seg_params *p, struct topic **out, char *err,
		    size_t errlen)
{
	struct topic *t = calloc(1, sizeof(*t));
	if (!t)
		return SHMBUS_ENOMEM;
	t->meta_fd = t->data_fd = -1;
	if (!board_take(r, &p->board_line)) {
		free(t);
		snprintf(err, errlen, "the bus has %u topics, its limit", BUS_MAX_TOPICS);
		return SHMBUS_ELIMIT;
	}
	p->topic_id = t->id = r->next_id;
	if (!integrity_random(p->incarnation, sizeof(p->incarnation))) {
		board_give(r, p->board_line);
		free(t);
		snprintf(err, errlen, "no random numbers for the topic's incarnation");
		return SHMBUS_ESYS;
	}
	int rc = make_ring(r, p, t, err, errlen);
	if (rc) {
		board_give(r, p->board_line);
		topic_free(t);
		return rc;
	}
	seg_meta_format(t->meta, p);
	seg_layout_of(t->meta, &t->layout);
	t->creator_uid = p->creator_uid;
	rc = map_data_head(t, err, errlen);
	if (rc == 0)
		rc = add_ptr((void ***)&r->topics, &r->n, &r->cap, t);
	if (rc) {
		board_give(r, p->board_line);
		topic_free(t);
		return rc;
	}
	r->next_id++;
	keep(r, KEEP_META, t->id, t->meta_fd, 0, 0);
	keep(r, KEEP_DATA, t->id, t->data_fd, 0, 0);
	*out = t;
	return 0;
}

/* The ring as the ring code sees it, mapped read-write whole, for
 * releasing a dead holder's slots. */
static int map_ring(struct registry *r, struct topic *t, struct topic_map *m)
{
	char err[256];
	void *data;
	memset(m, 0, sizeof(*m));
	if (seg_map_fd(t->data_fd, true, false, t->layout.data_size, &data, err, sizeof(err))) {
		log_msg("topic '%s': %s", t->layout.name, err);
		return -1;
	}
	m->meta = t->meta;
	m->data = data;
	m->wake = &r->board[t->layout.board_line];
	m->slots = (uint8_t *)data + DATA_SLOTS_OFFSET;
	m->data_size = t->layout.data_size;
	m->mask = t->layout.slot_count - 1;
	m->slot_size = t->layout.slot_size;
	m->max_message_size = t->layout.max_message_size;
	m->history = t->layout.history;
	m->flags = t->layout.flags;
	m->writable = true;
	return 0;
}

/* Wake a topic's sleepers whatever its board line says (it is the
 * clients', so not to be trusted to be set). */
static void wake_all(struct registry *r, struct topic *t)
{
	struct board_line *l = &r->board[t->layout.board_line];
	atomic_fetch_add_explicit(&l->epoch, 1, memory_order_seq_cst);
	futex_wake_all_shared(&l->epoch);
}

/* The successor ring of t for messages of `size` bytes: at least twice
 * the old maximum. The ring's bytes stay about what they were (at least
 * the default budget): fewer, larger slots, never more than the topic had,
 * never fewer than SEG_MIN_SLOTS; as much history as it had, where it
 * fits. */
static int grow_params(const struct topic *t, uint32_t size, struct seg_params *p, char *err,
		       size_t errlen)
{
	uint32_t want = t->layout.max_message_size * 2;
	*p = (struct seg_params){
		.max_message_size = size > want && size <= SEG_MAX_MESSAGE ? size
				    : want <= SEG_MAX_MESSAGE	       ? want
								       : size,
		.flags = t->layout.flags,
		.topic_id = t->id,
		.board_line = t->layout.board_line,
		.creator_uid = t->creator_uid,
		.generation = t->layout.generation + 1,
		.topic = t->layout.name,
		.type_name = t->layout.type_name,
		.schema = (const uint8_t *)t->meta + sizeof(struct meta_header),
		.schema_size = t->layout.schema_size,
	};
	if (p->max_message_size < size)
		p->max_message_size = size;
	uint64_t bytes = (uint64_t)t->layout.slot_count * t->layout.slot_size;
	if (bytes < SEG_RING_BUDGET)
		bytes = SEG_RING_BUDGET;
	uint64_t slots = bytes / seg_slot_size(p->max_message_size);
	if (slots > t->layout.slot_count)
		slots = t->layout.slot_count;
	p->slot_count = slots < SEG_MIN_SLOTS ? SEG_MIN_SLOTS : (uint32_t)slots;
	p->history = t->layout.history;
	return seg_params_normalize(p, err, errlen);
}

uint64_t registry_grow_bytes(const struct topic *t, uint32_t size)
{
	struct seg_params p;
	char err[8];
	return grow_params(t, size, &p, err, sizeof(err)) ? UINT64_MAX : seg_data_size(&p);
}

int registry_grow(struct registry *r, struct topic *t, uint32_t size, char *err,
		  size_t errlen)
{
	struct topic next = { .id = t->id, .meta_fd = -1, .data_fd = -1 };
	struct seg_params p;
	int rc = grow_params(t, size, &p, err, errlen);
	if (rc)
		return rc;
	/* The same incarnation: the topic is the same one, its numbers go on
	 * (a tag for a number below the seal is never looked for in the
	 * successor), so handles keep their integrity keys. */
	memcpy(p.incarnation, t->layout.incarnation, sizeof(p.incarnation));
	rc = make_ring(r, &p, &next, err, errlen);
	if (rc) {
		if (next.meta)
			munmap(next.meta, next.layout.meta_size);
		if (next.meta_fd >= 0)
			close(next.meta_fd);
		if (next.data_fd >= 0)
			close(next.data_fd);
		return rc;
	}
	/* Seal the old ring: every number below the seal was handed out in
	 * it; the successor hands out the rest. seq_cst: the seal is in place
	 * before anything says where it is. */
	uint64_t s = atomic_fetch_or_explicit(&t->data->next_seq, DATA_SEALED,
					      memory_order_seq_cst) &
		     ~DATA_SEALED;
	p.base_seq = s;
	seg_data_format_head(next.data_fd, s);
	seg_meta_format(next.meta, &p);
	/* The successor carries the topic's tables: every line keeps its
	 * index, so handles move over as they are. */
	struct meta_header *om = t->meta, *nm = next.meta;
	atomic_store_explicit(&nm->last_publisher_id,
			      atomic_load_explicit(&om->last_publisher_id, memory_order_relaxed),
			      memory_order_relaxed);
	/* The successor is not shared yet: relaxed copies, no pairing. */
	for (uint32_t i = 0; i < SEG_MAX_SCHEMAS; i++)
		atomic_store_explicit(
			&nm->schema_hashes[i],
			atomic_load_explicit(&om->schema_hashes[i], memory_order_relaxed),
			memory_order_relaxed);
	atomic_store_explicit(&nm->schema_versions,
			      atomic_load_explicit(&om->schema_versions, memory_order_relaxed),
			      memory_order_relaxed);
	memcpy((void *)nm->pubs, (const void *)om->pubs, sizeof(nm->pubs));
	memcpy((void *)nm->subs, (const void *)om->subs, sizeof(nm->subs));
	/* Release: a reader that sees sealed_at or the state sees the seal. */
	atomic_store_explicit(&om->sealed_at, s, memory_order_release);
	atomic_store_explicit(&om->state, META_GROWN, memory_order_release);
	wake_all(r, t);
	/* From now on the topic is the successor; the old ring stays for the
	 * subscribers behind its seal (the oldest kept goes if all are in
	 * use: its readers then count what they missed as lost). */
	munmap(t->meta, t->layout.meta_size);
	munmap(t->data, SHMBUS_PAGE);
	if (t->n_old == TOPIC_OLD_RINGS) {
		old_ring_close(&t->old[0]);
		memmove(&t->old[0], &t->old[1], (--t->n_old) * sizeof(t->old[0]));
	}
	t->old[t->n_old++] = (struct old_ring){ t->meta_fd, t->data_fd, t->layout.generation, s,
						t->layout.meta_size + t->layout.data_size };
	t->meta = nm;
	t->meta_fd = next.meta_fd;
	t->data_fd = next.data_fd;
	t->grown++;
	seg_layout_of(nm, &t->layout);
	rc = map_data_head(t, err, errlen);
	keep(r, KEEP_META, t->id, t->meta_fd, 0, 0);
	keep(r, KEEP_DATA, t->id, t->data_fd, 0, 0);
	return rc;
}

void registry_ring_after(const struct topic *t, uint32_t generation, int *meta_fd,
			 int *data_fd)
{
	*meta_fd = t->meta_fd;
	*data_fd = t->data_fd;
	for (size_t i = 0; i < t->n_old; i++) {
		if (t->old[i].generation == generation + 1) {
			*meta_fd = t->old[i].meta_fd;
			*data_fd = t->old[i].data_fd;
			return;
		}
	}
}

void registry_trim_old(struct topic *t, uint64_t lowest)
{
	size_t k = 0;
	while (k < t->n_old && t->old[k].sealed_at <= lowest)
		old_ring_close(&t->old[k++]);
	if (k) {
		memmove(&t->old[0], &t->old[k], (t->n_old - k) * sizeof(t->old[0]));
		t->n_old -= k;
	}
}

void registry_remove(struct registry *r, struct topic *t)
{
	/* Seal: a claim from now on gets the bit and claims nothing; every
	 * number below the seal was handed out before it and is published,
	 * or skipped by its subscribers' stall timeout. seq_cst: the seal is
	 * in place before sealed_at says where it is. */
	uint64_t s = atomic_fetch_or_explicit(&t->data->next_seq, DATA_SEALED,
					      memory_order_seq_cst) &
		     ~DATA_SEALED;
	/* Release: a reader that sees sealed_at sees the seal. */
	atomic_store_explicit(&t->meta->sealed_at, s, memory_order_release);
	atomic_store_explicit(&t->meta->state, META_REMOVED, memory_order_release);
	wake_all(r, t);
	unkeep(r, KEEP_META, t->id);
	unkeep(r, KEEP_DATA, t->id);
	board_give(r, t->layout.board_line);
	for (size_t i = 0; i < r->n; i++)
		if (r->topics[i] == t) {
			r->topics[i] = r->topics[--r->n];
			break;
		}
	topic_free(t);
	registry_topics_changed(r);
}

void registry_usage(const struct registry *r, uint32_t uid, uint64_t *topics, uint64_t *bytes)
{
	*topics = *bytes = 0;
	for (size_t i = 0; i < r->n; i++)
		if (r->topics[i]->creator_uid == uid) {
			(*topics)++;
			*bytes += r->topics[i]->layout.meta_size + r->topics[i]->layout.data_size;
			for (size_t k = 0; k < r->topics[i]->n_old; k++)
				*bytes += r->topics[i]->old[k].bytes;
		}
}

void registry_note_schema(struct topic *t, const void *schema, size_t size)
{
	struct meta_header *m = t->meta;
	const uint8_t *b = schema;
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < size; i++) {
		h ^= b[i];
		h *= 0x100000001b3ull;
	}
	/* Acquire: pairs with the release below, so the hashes it counts are
	 * there (this broker's, or the one's before a restart). */
	uint32_t seen = atomic_load_explicit(&m->schema_versions, memory_order_acquire);
	uint32_t kept = seen < SEG_MAX_SCHEMAS ? seen : SEG_MAX_SCHEMAS;
	for (uint32_t i = 0; i < kept; i++)
		if (atomic_load_explicit(&m->schema_hashes[i], memory_order_relaxed) == h)
			return;
	if (kept < SEG_MAX_SCHEMAS)
		atomic_store_explicit(&m->schema_hashes[kept], h, memory_order_relaxed);
	/* Release: a reader that sees the new count sees the hash stored above. */
	atomic_store_explicit(&m->schema_versions, seen + 1, memory_order_release);
}

/* --------------------------------------------------------------- pages */

struct page *registry_page(struct registry *r, uint32_t id)
{
	for (size_t i = 0; i < r->n_pages; i++)
		if (r->pages[i]->id == id)
			return r->pages[i];
	return NULL;
}

static int map_page(struct page *pg)
{
	char err[256];
	void *p;
	if (seg_map_fd(pg->fd, false, false, PAGE_SIZE_BYTES, &p, err, sizeof(err))) {
		log_msg("client page %u: %s", pg->id, err);
		return -1;
	}
	pg->lines = p;
	return 0;
}

struct page *registry_new_page(struct registry *r, pid_t pid, uint64_t start_time)
{
	char err[256], what[32];
	void *mem;
	struct page *pg = calloc(1, sizeof(*pg));
	if (!pg)
		return NULL;
	pg->id = r->next_page_id;
	snprintf(what, sizeof(what), "page%u", pg->id);
	pg->fd = new_object(what, r->bus, "client", PAGE_SIZE_BYTES, &mem, err, sizeof(err));
	if (pg->fd < 0) {
		log_msg("cannot create a client page: %s", err);
		free(pg);
		return NULL;
	}
	munmap(mem, PAGE_SIZE_BYTES);
	pg->pid = pid;
	pg->start_time = start_time;
	if (map_page(pg) || add_ptr((void ***)&r->pages, &r->n_pages, &r->cap_pages, pg)) {
		if (pg->lines)
			munmap((void *)pg->lines, PAGE_SIZE_BYTES);
		close(pg->fd);
		free(pg);
		return NULL;
	}
	r->next_page_id++;
	keep(r, KEEP_PAGE, pg->id, pg->fd, pid, start_time);
	return pg;
}

int page_take_line(struct page *pg)
{
	for (uint32_t i = 0; i < PAGE_LINES; i++)
		if (!(pg->used & (1ull << i))) {
			pg->used |= 1ull << i;
			return (int)i;
		}
	return -1;
}

void page_free_line(struct registry *r, struct page *pg, uint32_t line)
{
	(void)r;
	if (line < PAGE_LINES)
		pg->used &= ~(1ull << line);
}

static void page_drop(struct registry *r, size_t i)
{
	struct page *pg = r->pages[i];
	unkeep(r, KEEP_PAGE, pg->id);
	munmap((void *)pg->lines, PAGE_SIZE_BYTES);
	close(pg->fd);
	free(pg);
	r->pages[i] = r->pages[--r->n_pages];
}

/* --------------------------------------------------------------- lines */

int registry_claim_pub(struct topic *t, pid_t pid, uint64_t start_time, uint32_t page,
		       uint32_t line, uint32_t *publisher_id)
{
	struct meta_header *m = t->meta;
	for (int i = 0; i < SEG_MAX_PUBS; i++) {
		struct meta_pub *e = &m->pubs[i];
		if (atomic_load_explicit(&e->pid, memory_order_relaxed) != 0)
			continue;
		uint32_t id = atomic_fetch_add_explicit(&m->last_publisher_id, 1,
							memory_order_relaxed) +
			      1;
		atomic_store_explicit(&e->publisher_id, id, memory_order_relaxed);
		atomic_store_explicit(&e->start_time, start_time, memory_order_relaxed);
		atomic_store_explicit(&e->page, page, memory_order_relaxed);
		atomic_store_explicit(&e->line, line, memory_order_relaxed);
		/* Release: a reader of the table sees the fields above with the
		 * pid (ring_holder_alive). */
		atomic_store_explicit(&e->pid, (int32_t)pid, memory_order_release);
		*publisher_id = id;
		return i;
	}
	return -1;
}

int registry_claim_sub(struct topic *t, pid_t pid, uint64_t start_time, uint32_t page,
		       uint32_t line)
{
	struct meta_header *m = t->meta;
	for (int i = 0; i < SEG_MAX_SUBS; i++) {
		struct meta_sub *e = &m->subs[i];
		if (atomic_load_explicit(&e->pid, memory_order_relaxed) != 0)
			continue;
		atomic_store_explicit(&e->start_time, start_time, memory_order_relaxed);
		atomic_store_explicit(&e->page, page, memory_order_relaxed);
		atomic_store_explicit(&e->line, line, memory_order_relaxed);
		/* Release: see registry_claim_pub. */
		atomic_store_explicit(&e->pid, (int32_t)pid, memory_order_release);
		return i;
	}
	return -1;
}

static void free_page_line(struct registry *r, uint32_t page, uint32_t line)
{
	struct page *pg = registry_page(r, page);
	if (pg)
		page_free_line(r, pg, line);
}

void registry_free_pub(struct registry *r, struct topic *t, uint32_t index)
{
	struct meta_pub *e = &t->meta->pubs[index];
	struct topic_map m;
	/* Before the line is free for reuse: release what its holder held. */
	if (map_ring(r, t, &m) == 0) {
		size_t n = ring_release_holder(&m, index);
		if (n)
			log_msg("topic '%s': released %zu slot(s) publisher %u held when it went "
				"away",
				t->layout.name, n,
				atomic_load_explicit(&e->publisher_id, memory_order_relaxed));
		munmap(m.data, m.data_size);
	}
	free_page_line(r, atomic_load_explicit(&e->page, memory_order_relaxed),
		       atomic_load_explicit(&e->line, memory_order_relaxed));
	atomic_store_explicit(&e->pid, 0, memory_order_release);
}

void registry_free_sub(struct registry *r, struct topic *t, uint32_t index)
{
	struct meta_sub *e = &t->meta->subs[index];
	free_page_line(r, atomic_load_explicit(&e->page, memory_order_relaxed),
		       atomic_load_explicit(&e->line, memory_order_relaxed));
	atomic_store_explicit(&e->pid, 0, memory_order_release);
}

size_t registry_reap(struct registry *r,
		     bool (*owned)(void *ctx, const struct topic *t, bool pub, uint32_t index),
		     void *ctx)
{
	size_t freed = 0;
	for (size_t k = 0; k < r->n; k++) {
		struct topic *t = r->topics[k];
		struct meta_header *m = t->meta;
		for (uint32_t i = 0; i < SEG_MAX_PUBS; i++) {
			pid_t pid = atomic_load_explicit(&m->pubs[i].pid, memory_order_relaxed);
			if (pid == 0 || owned(ctx, t, true, i) ||
			    registry_alive(pid, atomic_load_explicit(&m->pubs[i].start_time,
								     memory_order_relaxed)))
				continue;
			log_msg("topic '%s': publisher pid %d is gone", t->layout.name, pid);
			registry_free_pub(r, t, i);
			freed++;
		}
		for (uint32_t i = 0; i < SEG_MAX_SUBS; i++) {
			pid_t pid = atomic_load_explicit(&m->subs[i].pid, memory_order_relaxed);
			if (pid == 0 || owned(ctx, t, false, i) ||
			    registry_alive(pid, atomic_load_explicit(&m->subs[i].start_time,
								     memory_order_relaxed)))
				continue;
			log_msg("topic '%s': subscriber pid %d is gone", t->layout.name, pid);
			registry_free_sub(r, t, i);
			freed++;
		}
	}
	for (size_t i = r->n_pages; i-- > 0;) {
		struct page *pg = r->pages[i];
		if (!registry_alive(pg->pid, pg->start_time)) {
			page_drop(r, i);
			freed++;
		}
	}
	return freed;
}

/* -------------------------------------------------- bus page and board */

static int make_bus_objects(struct registry *r, char *err, size_t errlen)
{
	void *mem;
	if (!r->page) {
		int fd = new_object("bus", r->bus, "-", BUS_PAGE_SIZE, &mem, err, errlen);
		if (fd < 0)
			return fd;
		r->page_fd = fd;
		r->page = mem;
		seg_bus_format(mem);
		keep(r, KEEP_BUS, 0, fd, 0, 0);
	}
	if (!r->board) {
		int fd = new_object("board", r->bus, "-", BOARD_SIZE, &mem, err, errlen);
		if (fd < 0)
			return fd;
		r->board_fd = fd;
		r->board = mem;
		keep(r, KEEP_BOARD, 0, fd, 0, 0);
	}
	return 0;
}

/* -------------------------------------------------------- taking back */

struct dumped {
	struct keep_rec rec;
	int fd;
};

struct dump {
	struct dumped *v;
	size_t n, cap;
};

static void collect(void *ctx, const struct keep_rec *rec, int fd)
{
	struct dump *d = ctx;
	if (d->n == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 64;
		struct dumped *v = realloc(d->v, cap * sizeof(*v));
		if (!v) {
			close(fd);
			return;
		}
		d->v = v;
		d->cap = cap;
	}
	d->v[d->n++] = (struct dumped){ *rec, fd };
}

static int take_fd(struct dump *d, uint32_t kind, uint32_t id)
{
	for (size_t i = 0; i < d->n; i++)
		if (d->v[i].rec.kind == kind && d->v[i].rec.id == id && d->v[i].fd >= 0) {
			int fd = d->v[i].fd;
			d->v[i].fd = -1;
			return fd;
		}
	return -1;
}

static void adopt_bus_objects(struct registry *r, struct dump *d)
{
	char err[256];
	void *mem;
	int fd = take_fd(d, KEEP_BUS, 0);
	if (fd >= 0) {
		if (seg_fd_sealed(fd, BUS_PAGE_SIZE) &&
		    seg_map_fd(fd, true, false, BUS_PAGE_SIZE, &mem, err, sizeof(err)) == 0) {
			if (seg_bus_check(mem, BUS_PAGE_SIZE, err, sizeof(err)) == 0) {
				r->page = mem;
				r->page_fd = fd;
			} else {
				munmap(mem, BUS_PAGE_SIZE);
			}
		}
		if (!r->page)
			close(fd);
	}
	fd = take_fd(d, KEEP_BOARD, 0);
	if (fd >= 0) {
		if (seg_fd_sealed(fd, BOARD_SIZE) &&
		    seg_map_fd(fd, true, false, BOARD_SIZE, &mem, err, sizeof(err)) == 0) {
			r->board = mem;
			r->board_fd = fd;
		} else {
			close(fd);
		}
	}
}

/* A topic the keeper held: its meta must check (it is the broker's own
 * writing, but checked once, as anything read back), its data must be
 * sealed at the size the meta says, and nothing may clash with what was
 * already taken back. */
static bool adopt_topic(struct registry *r, uint32_t id, int meta_fd, int data_fd)
{
	char err[256];
	void *mem;
	struct stat st;
	struct topic *t = calloc(1, sizeof(*t));
	if (!t)
		return false;
	t->id = id;
	t->meta_fd = meta_fd;
	t->data_fd = data_fd;
	if (fstat(meta_fd, &st) < 0 || st.st_size <= 0 ||
	    seg_map_fd(meta_fd, true, false, (size_t)st.st_size, &mem, err, sizeof(err))) {
		snprintf(err, sizeof(err), "meta does not map");
		goto refuse;
	}
	t->meta = mem;
	t->layout.meta_size = (size_t)st.st_size;
	if (seg_meta_check(mem, (size_t)st.st_size, err, sizeof(err)))
		goto refuse;
	seg_layout_of(t->meta, &t->layout);
	t->creator_uid = t->meta->creator_uid;
	if (t->meta->topic_id != id || t->layout.meta_size != (uint64_t)st.st_size ||
	    atomic_load_explicit(&t->meta->state, memory_order_relaxed) != META_OPEN ||
	    !seg_fd_sealed(data_fd, t->layout.data_size)) {
		snprintf(err, sizeof(err), "meta and data do not belong together");
		goto refuse;
	}
	uint32_t b = t->layout.board_line;
	if (registry_find(r, t->layout.name) || (r->board_used[b / 8] & (1u << (b % 8)))) {
		snprintf(err, sizeof(err), "clashes with a topic already taken back");
		goto refuse;
	}
	if (map_data_head(t, err, sizeof(err)) ||
	    add_ptr((void ***)&r->topics, &r->n, &r->cap, t))
		goto refuse;
	r->board_used[b / 8] |= (uint8_t)(1u << (b % 8));
	if (id >= r->next_id)
		r->next_id = id + 1;
	log_msg("took back topic '%s' (id %u, next sequence number %llu)", t->layout.name, id,
		(unsigned long long)(atomic_load_explicit(&t->data->next_seq,
							  memory_order_relaxed) &
				     ~DATA_SEALED));
	return true;
refuse:
	log_msg("not taking back topic %u: %s", id, err);
	if (t->meta)
		munmap(t->meta, t->layout.meta_size);
	close(meta_fd);
	close(data_fd);
	free(t);
	return false;
}

static void adopt_page(struct registry *r, const struct keep_rec *rec, int fd)
{
	struct page *pg = calloc(1, sizeof(*pg));
	if (!pg) {
		close(fd);
		return;
	}
	pg->id = rec->id;
	pg->fd = fd;
	pg->pid = rec->pid;
	pg->start_time = rec->start_time;
	if (!seg_fd_sealed(fd, PAGE_SIZE_BYTES) || !registry_alive(pg->pid, pg->start_time) ||
	    map_page(pg) || add_ptr((void ***)&r->pages, &r->n_pages, &r->cap_pages, pg)) {
		if (pg->lines)
			munmap((void *)pg->lines, PAGE_SIZE_BYTES);
		close(fd);
		free(pg);
		return;
	}
	if (pg->id >= r->next_page_id)
		r->next_page_id = pg->id + 1;
}

/* Lines in use of the pages taken back: as the topics' tables say. */
static void mark_line(struct registry *r, uint32_t page, uint32_t line)
{
	struct page *pg = registry_page(r, page);
	if (pg && line < PAGE_LINES)
		pg->used |= 1ull << line;
}

static void mark_page_lines(struct registry *r)
{
	for (size_t k = 0; k < r->n; k++) {
		struct meta_header *m = r->topics[k]->meta;
		for (uint32_t i = 0; i < SEG_MAX_PUBS; i++)
			if (atomic_load_explicit(&m->pubs[i].pid, memory_order_relaxed))
				mark_line(r, m->pubs[i].page, m->pubs[i].line);
		for (uint32_t i = 0; i < SEG_MAX_SUBS; i++)
			if (atomic_load_explicit(&m->subs[i].pid, memory_order_relaxed))
				mark_line(r, m->subs[i].page, m->subs[i].line);
	}
}

static void adopt(struct registry *r, struct dump *d)
{
	adopt_bus_objects(r, d);
	for (size_t i = 0; i < d->n; i++) {
		struct dumped *e = &d->v[i];
		if (e->fd < 0)
			continue;
		if (e->rec.kind == KEEP_META) {
			int meta = e->fd;
			e->fd = -1;
			int data = take_fd(d, KEEP_DATA, e->rec.id);
			if (data < 0 || !adopt_topic(r, e->rec.id, meta, data)) {
				if (data < 0)
					close(meta);
				unkeep(r, KEEP_META, e->rec.id);
				unkeep(r, KEEP_DATA, e->rec.id);
			}
		} else if (e->rec.kind == KEEP_PAGE) {
			int fd = e->fd;
			e->fd = -1;
			adopt_page(r, &e->rec, fd);
			if (!registry_page(r, e->rec.id))
				unkeep(r, KEEP_PAGE, e->rec.id);
		}
	}
	for (size_t i = 0; i < d->n; i++)
		if (d->v[i].fd >= 0) { /* data without meta, or a second copy */
			unkeep(r, d->v[i].rec.kind, d->v[i].rec.id);
			close(d->v[i].fd);
		}
	mark_page_lines(r);
}

int registry_open(struct registry *r, const char *bus, const char *self, char *err,
		  size_t errlen)
{
	memset(r, 0, sizeof(*r));
	snprintf(r->bus, sizeof(r->bus), "%s", bus);
	snprintf(r->self, sizeof(r->self), "%s", self ? self : "");
	r->uid = (unsigned)getuid();
	r->next_id = 1;
	r->next_page_id = 1;
	r->page_fd = r->board_fd = -1;
	r->keeper = -1;
	bool fresh = true;
	if (self) {
		r->keeper = keeper_attach(bus, self, &fresh, err, errlen);
		if (r->keeper < 0)
			return SHMBUS_ESYS;
	}
	if (!fresh) {
		struct dump d = { 0 };
		if (keeper_dump(r->keeper, collect, &d) == 0)
			adopt(r, &d);
		else
			log_msg("the keeper went away while handing things back");
		free(d.v);
	}
	int rc = make_bus_objects(r, err, errlen);
	/* A fresh keeper holds the bus's objects now: where brokers look. */
	if (rc == 0 && fresh && r->keeper >= 0 && keeper_open(r->keeper)) {
		log_msg("the keeper went away as it started");
		close(r->keeper);
		r->keeper = -1;
	}
	return rc;
}

void registry_rekeep(struct registry *r)
{
	char err[256];
	bool fresh;
	if (!r->self[0])
		return;
	if (r->keeper >= 0)
		close(r->keeper);
	r->keeper = keeper_attach(r->bus, r->self, &fresh, err, sizeof(err));
	if (r->keeper < 0) {
		log_msg("cannot start a keeper: %s (a broker restart would lose the topics)", err);
		return;
	}
	struct keep_rec rec = { 0 };
	int fail = 0;
	rec.kind = KEEP_BUS;
	if (r->page_fd >= 0)
		fail |= keeper_put(r->keeper, &rec, r->page_fd);
	rec.kind = KEEP_BOARD;
	if (r->board_fd >= 0)
		fail |= keeper_put(r->keeper, &rec, r->board_fd);
	for (size_t i = 0; i < r->n; i++) {
		struct topic *t = r->topics[i];
		rec = (struct keep_rec){ .kind = KEEP_META, .id = t->id };
		fail |= keeper_put(r->keeper, &rec, t->meta_fd);
		rec.kind = KEEP_DATA;
		fail |= keeper_put(r->keeper, &rec, t->data_fd);
	}
	for (size_t i = 0; i < r->n_pages; i++) {
		struct page *pg = r->pages[i];
		rec = (struct keep_rec){ KEEP_PAGE, pg->id, pg->pid, 0, pg->start_time };
		fail |= keeper_put(r->keeper, &rec, pg->fd);
	}
	if (fresh)
		fail |= keeper_open(r->keeper);
	if (fail) {
		log_msg("the new keeper went away too");
		close(r->keeper);
		r->keeper = -1;
	}
}

void registry_close(struct registry *r, bool quit)
{
	/* Watchers wake, ask for the list, and learn the bus is gone. */
	if (quit)
		registry_topics_changed(r);
	for (size_t i = 0; i < r->n; i++) {
		if (quit) {
			atomic_store_explicit(&r->topics[i]->meta->state, META_REMOVED,
					      memory_order_release);
			wake_all(r, r->topics[i]);
		}
		topic_free(r->topics[i]);
	}
	free(r->topics);
	for (size_t i = 0; i < r->n_pages; i++) {
		munmap((void *)r->pages[i]->lines, PAGE_SIZE_BYTES);
		close(r->pages[i]->fd);
		free(r->pages[i]);
	}
	free(r->pages);
	if (r->page)
		munmap(r->page, BUS_PAGE_SIZE);
	if (r->board)
		munmap(r->board, BOARD_SIZE);
	if (r->page_fd >= 0)
		close(r->page_fd);
	if (r->board_fd >= 0)
		close(r->board_fd);
	if (r->keeper >= 0) {
		if (quit)
			keeper_quit(r->keeper);
		close(r->keeper);
	}
	memset(r, 0, sizeof(*r));
}
