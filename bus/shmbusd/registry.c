/*
 * registry.c - owns the broker's topics and their shared-memory files.
 */
#include "registry.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "paths.h"
#include "ring.h"
#include "futex.h"
#include "shmbus/shmbus.h"

void registry_init(struct registry *r, const char *bus)
{
	memset(r, 0, sizeof(*r));
	snprintf(r->bus, sizeof(r->bus), "%s", bus);
	r->uid = (unsigned)getuid();
	r->next_id = 1;
}

static int add_topic(struct registry *r, struct topic *t)
{
	if (r->n == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 16;
		struct topic **v = realloc(r->topics, cap * sizeof(*v));
		if (!v)
			return SHMBUS_ENOMEM;
		r->topics = v;
		r->cap = cap;
	}
	r->topics[r->n++] = t;
	if (t->id >= r->next_id)
		r->next_id = t->id + 1;
	return 0;
}

int registry_open_page(struct registry *r, char *err, size_t errlen)
{
	bus_page_shm_name(r->page_name, sizeof(r->page_name), r->uid, r->bus);
	int fd = shm_open(r->page_name, O_RDWR | O_CLOEXEC, 0);
	if (fd >= 0) {
		struct stat st;
		void *p = fstat(fd, &st) == 0 && st.st_size == BUS_PAGE_SIZE && st.st_uid == r->uid
				  ? mmap(NULL, BUS_PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
				  : MAP_FAILED;
		close(fd);
		if (p != MAP_FAILED) {
			struct bus_page *bp = p;
			/* Acquire: pairs with the release store of magic below. */
			if (atomic_load_explicit(&bp->magic, memory_order_acquire) == BUS_MAGIC &&
			    bp->layout_version == BUS_LAYOUT_VERSION) {
				r->page = bp;
				return 0;
			}
			munmap(p, BUS_PAGE_SIZE);
		}
		log_msg("replacing the bus page /dev/shm%s", r->page_name);
		shm_unlink(r->page_name);
	}
	fd = shm_open(r->page_name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 || ftruncate(fd, BUS_PAGE_SIZE) < 0) {
		snprintf(err, errlen, "create /dev/shm%s: %s", r->page_name, strerror(errno));
		if (fd >= 0) {
			close(fd);
			shm_unlink(r->page_name);
		}
		return SHMBUS_ESYS;
	}
	void *p = mmap(NULL, BUS_PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (p == MAP_FAILED) {
		snprintf(err, errlen, "mmap /dev/shm%s: %s", r->page_name, strerror(errno));
		shm_unlink(r->page_name);
		return SHMBUS_ESYS;
	}
	r->page = p;
	r->page->layout_version = BUS_LAYOUT_VERSION;
	/* Release: a client that sees the magic sees the fields above. */
	atomic_store_explicit(&r->page->magic, BUS_MAGIC, memory_order_release);
	return 0;
}

int registry_page_fd(const struct registry *r)
{
	return r->page ? shm_open(r->page_name, O_RDONLY | O_CLOEXEC, 0) : -1;
}

void registry_topics_changed(struct registry *r)
{
	if (!r->page)
		return;
	/* Release: a client that sees the new generation and then asks for
	 * the list gets one that includes the change (the list comes from
	 * the broker, so this orders nothing else; release is for form). */
	atomic_fetch_add_explicit(&r->page->topics_gen, 1, memory_order_release);
	futex_wake_all_shared(&r->page->topics_gen);
}

struct topic *registry_find(struct registry *r, const char *name)
{
	for (size_t i = 0; i < r->n; i++)
		if (topic_names_equal(r->topics[i]->map.seg->topic, name))
			return r->topics[i];
	return NULL;
}

static int map_existing(struct topic *t, char *err, size_t errlen)
{
	int dfd = shm_open(t->data_name, O_RDWR | O_CLOEXEC, 0);
	if (dfd < 0) {
		snprintf(err, errlen, "open %s: %s", t->data_name, strerror(errno));
		return SHMBUS_ESYS;
	}
	int cfd = shm_open(t->ctl_name, O_RDWR | O_CLOEXEC, 0);
	if (cfd < 0) {
		snprintf(err, errlen, "open %s: %s", t->ctl_name, strerror(errno));
		close(dfd);
		return SHMBUS_ESYS;
	}
	int rc = topic_map_fds(dfd, cfd, true, true, &t->map, err, errlen);
	close(dfd);
	close(cfd);
	return rc;
}

void registry_adopt(struct registry *r)
{
	DIR *d = opendir("/dev/shm");
	if (!d)
		return;
	struct dirent *e;
	uint32_t id;
	const char *kind;
	/* Only names that parse exactly as this bus's own are touched:
	 * another bus's files are never ours to judge. */
	while ((e = readdir(d))) {
		if (!shm_name_parse(e->d_name, r->uid, r->bus, &id, &kind) ||
		    strcmp(kind, "data") != 0)
			continue;
		struct topic *t = calloc(1, sizeof(*t));
		if (!t)
			break;
		t->id = id;
		seg_shm_name(t->data_name, sizeof(t->data_name), r->uid, r->bus, t->id, false);
		seg_shm_name(t->ctl_name, sizeof(t->ctl_name), r->uid, r->bus, t->id, true);
		char err[256];
		int rc = map_existing(t, err, sizeof(err));
		if (rc == 0 && t->map.seg->topic_id == t->id && t->map.ctl->topic_id == t->id &&
		    topic_name_valid(t->map.seg->topic) && !registry_find(r, t->map.seg->topic) &&
		    add_topic(r, t) == 0) {
			log_msg("took back topic '%s' (id %u, next sequence number %llu)",
				t->map.seg->topic, t->id,
				(unsigned long long)atomic_load(&t->map.seg->next_seq));
			continue;
		}
		log_msg("removing /dev/shm%s: %s", t->data_name,
			rc ? err : "not a valid topic of this bus");
		topic_unmap(&t->map);
		shm_unlink(t->data_name);
		shm_unlink(t->ctl_name);
		free(t);
	}
	closedir(d);
	/* Control files whose data file is gone. */
	d = opendir("/dev/shm");
	if (!d)
		return;
	while ((e = readdir(d))) {
		if (!shm_name_parse(e->d_name, r->uid, r->bus, &id, &kind) ||
		    strcmp(kind, "ctl") != 0)
			continue;
		bool known = false;
		for (size_t i = 0; i < r->n; i++)
			known |= r->topics[i]->id == id;
		if (!known) {
			char n[300];
			snprintf(n, sizeof(n), "/%s", e->d_name);
			log_msg("removing orphan /dev/shm%s", n);
			shm_unlink(n);
		}
	}
	closedir(d);
}

/* Create one shared-memory file of `size` bytes, memory reserved up front
 * so that a full /dev/shm is an error now, not a SIGBUS later. */
static int create_file(const char *name, size_t size, void **mem, char *err, size_t errlen)
{
	int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 && errno == EEXIST) {
		shm_unlink(name); /* a leftover the adoption pass refused */
		fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	}
	if (fd < 0) {
		snprintf(err, errlen, "create /dev/shm%s: %s", name, strerror(errno));
		return SHMBUS_ESYS;
	}
	int e = posix_fallocate(fd, 0, (off_t)size);
	if (e) {
		snprintf(err, errlen, "reserve %zu bytes in /dev/shm for %s: %s", size, name,
			 strerror(e));
		close(fd);
		shm_unlink(name);
		return e == ENOSPC ? SHMBUS_ENOMEM : SHMBUS_ESYS;
	}
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (p == MAP_FAILED) {
		snprintf(err, errlen, "mmap %s: %s", name, strerror(errno));
		shm_unlink(name);
		return SHMBUS_ESYS;
	}
	*mem = p;
	return 0;
}

int registry_create(struct registry *r, const struct seg_params *p, struct topic **out,
		    char *err, size_t errlen)
{
	struct topic *t = calloc(1, sizeof(*t));
	void *seg = NULL, *ctl = NULL;
	if (!t)
		return SHMBUS_ENOMEM;
	struct seg_params q = *p;
	q.topic_id = t->id = r->next_id;
	seg_shm_name(t->data_name, sizeof(t->data_name), r->uid, r->bus, t->id, false);
	seg_shm_name(t->ctl_name, sizeof(t->ctl_name), r->uid, r->bus, t->id, true);
	size_t ssize = seg_size_for(&q), csize = ctl_size();
	int rc = create_file(t->data_name, ssize, &seg, err, errlen);
	if (rc)
		goto fail;
	rc = create_file(t->ctl_name, csize, &ctl, err, errlen);
	if (rc) {
		munmap(seg, ssize);
		shm_unlink(t->data_name);
		goto fail;
	}
	seg_format(seg, &q);
	ctl_format(ctl, t->id);
	munmap(seg, ssize);
	munmap(ctl, csize);
	rc = map_existing(t, err, errlen);
	if (rc == 0)
		rc = add_topic(r, t);
	if (rc) {
		topic_unmap(&t->map);
		shm_unlink(t->data_name);
		shm_unlink(t->ctl_name);
		goto fail;
	}
	*out = t;
	return 0;
fail:
	free(t);
	return rc;
}

int registry_open_fds(const struct topic *t, bool data_rw, bool ctl_rw, int fds[2], char *err,
		      size_t errlen)
{
	fds[0] = shm_open(t->data_name, (data_rw ? O_RDWR : O_RDONLY) | O_CLOEXEC, 0);
	if (fds[0] < 0) {
		snprintf(err, errlen, "open /dev/shm%s: %s", t->data_name, strerror(errno));
		return SHMBUS_ESYS;
	}
	fds[1] = shm_open(t->ctl_name, (ctl_rw ? O_RDWR : O_RDONLY) | O_CLOEXEC, 0);
	if (fds[1] < 0) {
		snprintf(err, errlen, "open /dev/shm%s: %s", t->ctl_name, strerror(errno));
		close(fds[0]);
		return SHMBUS_ESYS;
	}
	return 0;
}

void registry_note_schema(struct topic *t, const void *schema, size_t size)
{
	struct ctl_header *c = t->map.ctl;
	const uint8_t *b = schema;
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < size; i++) {
		h ^= b[i];
		h *= 0x100000001b3ull;
	}
	uint32_t kept = c->schema_versions < CTL_MAX_SCHEMAS ? c->schema_versions : CTL_MAX_SCHEMAS;
	for (uint32_t i = 0; i < kept; i++)
		if (c->schema_hashes[i] == h)
			return;
	if (kept < CTL_MAX_SCHEMAS)
		c->schema_hashes[kept] = h;
	c->schema_versions++;
}

int registry_claim_pub(struct topic *t, pid_t pid, uint64_t start_time, uint32_t *publisher_id)
{
	struct ctl_header *c = t->map.ctl;
	for (int i = 0; i < SEG_MAX_PUBS; i++) {
		struct ctl_pub *e = &c->pubs[i];
		if (atomic_load_explicit(&e->pid, memory_order_relaxed) != 0)
			continue;
		uint32_t id = atomic_fetch_add(&c->last_publisher_id, 1) + 1;
		atomic_store_explicit(&e->publisher_id, id, memory_order_relaxed);
		atomic_store_explicit(&e->start_time, start_time, memory_order_relaxed);
		atomic_store_explicit(&e->published, 0, memory_order_relaxed);
		atomic_store_explicit(&e->skipped, 0, memory_order_relaxed);
		atomic_store_explicit(&e->superseded, 0, memory_order_relaxed);
		/* Release: readers of the table see the fields above with the pid. */
		atomic_store_explicit(&e->pid, (int32_t)pid, memory_order_release);
		*publisher_id = id;
		return i;
	}
	return -1;
}

int registry_claim_sub(struct topic *t, pid_t pid, uint64_t start_time)
{
	struct ctl_header *c = t->map.ctl;
	for (int i = 0; i < SEG_MAX_SUBS; i++) {
		struct ctl_sub *e = &c->subs[i];
		if (atomic_load_explicit(&e->pid, memory_order_relaxed) != 0)
			continue;
		atomic_store_explicit(&e->start_time, start_time, memory_order_relaxed);
		atomic_store_explicit(&e->received, 0, memory_order_relaxed);
		atomic_store_explicit(&e->lost, 0, memory_order_relaxed);
		atomic_store_explicit(&e->rejected, 0, memory_order_relaxed);
		atomic_store_explicit(&e->waiting, 0, memory_order_relaxed);
		/* The subscriber starts where the topic is now: fixed together
		 * with its registration, so anything published once it shows in
		 * `shmbus info` is after its start. Relaxed: a position. */
		atomic_store_explicit(&e->next_seq,
				      atomic_load_explicit(&t->map.seg->next_seq, memory_order_relaxed),
				      memory_order_relaxed);
		/* Release: see registry_claim_pub. */
		atomic_store_explicit(&e->pid, (int32_t)pid, memory_order_release);
		return i;
	}
	return -1;
}

void registry_free_pub(struct topic *t, uint32_t index)
{
	struct ctl_pub *e = &t->map.ctl->pubs[index];
	/* Before the line is free for reuse: release what this holder held. */
	size_t n = ring_release_holder(&t->map, index);
	if (n)
		log_msg("topic '%s': released %zu slot(s) publisher %u held when it went away",
			t->map.seg->topic, n, atomic_load(&e->publisher_id));
	atomic_store_explicit(&e->pid, 0, memory_order_release);
}

void registry_free_sub(struct topic *t, uint32_t index)
{
	struct ctl_sub *e = &t->map.ctl->subs[index];
	/* A subscriber that died asleep leaves the SLEEPING bit set: the next
	 * publish clears it with one needless wake. Nothing to give back. */
	atomic_store_explicit(&e->waiting, 0, memory_order_relaxed);
	atomic_store_explicit(&e->pid, 0, memory_order_release);
}

uint64_t proc_start_time(pid_t pid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	/* The command name may hold spaces and ')': fields start after the
	 * last ')'. starttime is field 22, the 20th after it. */
	char *p = strrchr(buf, ')');
	if (!p)
		return 0;
	p++;
	for (int field = 3; field < 22 && p; field++) {
		p = strchr(p + 1, ' ');
	}
	return p ? strtoull(p + 1, NULL, 10) : 0;
}

static bool alive(pid_t pid, uint64_t start_time)
{
	if (pid <= 0)
		return false;
	uint64_t st = proc_start_time(pid);
	if (st)
		return start_time == 0 || st == start_time;
	return kill(pid, 0) == 0 || errno == EPERM;
}

size_t registry_reap(struct registry *r,
		     bool (*owned)(void *ctx, const struct topic *t, bool pub, uint32_t index),
		     void *ctx)
{
	size_t freed = 0;
	for (size_t k = 0; k < r->n; k++) {
		struct topic *t = r->topics[k];
		struct ctl_header *c = t->map.ctl;
		for (uint32_t i = 0; i < SEG_MAX_PUBS; i++) {
			pid_t pid = atomic_load_explicit(&c->pubs[i].pid, memory_order_acquire);
			if (pid == 0 || owned(ctx, t, true, i) ||
			    alive(pid, atomic_load(&c->pubs[i].start_time)))
				continue;
			log_msg("topic '%s': publisher pid %d is gone", t->map.seg->topic, pid);
			registry_free_pub(t, i);
			freed++;
		}
		for (uint32_t i = 0; i < SEG_MAX_SUBS; i++) {
			pid_t pid = atomic_load_explicit(&c->subs[i].pid, memory_order_acquire);
			if (pid == 0 || owned(ctx, t, false, i) ||
			    alive(pid, atomic_load(&c->subs[i].start_time)))
				continue;
			log_msg("topic '%s': subscriber pid %d is gone", t->map.seg->topic, pid);
			registry_free_sub(t, i);
			freed++;
		}
	}
	return freed;
}

void registry_destroy(struct registry *r)
{
	/* Watchers wake, ask for the list, and learn the bus is gone. */
	registry_topics_changed(r);
	if (r->page) {
		munmap(r->page, BUS_PAGE_SIZE);
		shm_unlink(r->page_name);
	}
	for (size_t i = 0; i < r->n; i++) {
		struct topic *t = r->topics[i];
		topic_unmap(&t->map);
		shm_unlink(t->data_name);
		shm_unlink(t->ctl_name);
		free(t);
	}
	free(r->topics);
	memset(r, 0, sizeof(*r));
}
