/*
 * registry.h - the broker's topics and client pages: creating their
 * shared objects, taking them back from the keeper after a restart,
 * handing out publisher and subscriber lines, and removing them.
 *
 * What decides anything lives here, in the broker's own memory (copied
 * into the meta object, which only the broker writes): a topic's name,
 * type, layout, flags and incarnation; who holds which line. Values in
 * objects clients write (next_seq, counters) are only ever shown, never
 * trusted for a decision.
 */
#ifndef SHMBUSD_REGISTRY_H
#define SHMBUSD_REGISTRY_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "keeper.h"
#include "segment.h"

struct topic {
	uint32_t id;
	struct seg_layout layout;   /* name, type, sizes, incarnation */
	uint32_t creator_uid;
	uint32_t grown;             /* successor rings since the broker started */
	int meta_fd, data_fd;
	struct meta_header *meta;   /* read-write (the broker's alone) */
	struct data_header *data;   /* the data's first page, read-write */
};

/* A client's page of counter lines (layout.h struct client_line). */
struct page {
	uint32_t id;
	int fd;
	const struct client_line *lines; /* read-only */
	pid_t pid;
	uint64_t start_time;
	uint64_t used;                   /* bit i: line i is in use */
};

struct registry {
	char bus[65];
	unsigned uid;
	int keeper;                 /* connection to the keeper, -1 if none */
	char self[256];             /* the broker's executable (starts keepers) */
	int page_fd, board_fd;
	struct bus_page *page;      /* read-write */
	struct board_line *board;   /* read-write */
	struct topic **topics;
	size_t n, cap;
	uint32_t next_id;
	struct page **pages;
	size_t n_pages, cap_pages;
	uint32_t next_page_id;
	uint8_t board_used[BUS_MAX_TOPICS / 8];
};

/* Attach to the bus's keeper and take back what it holds, or start fresh
 * (a new bus page and wake board). Logs what it takes back and what it
 * refuses. self NULL: no keeper (for tests and fuzzers). 0, or SHMBUS_E*
 * with a reason. */
int registry_open(struct registry *r, const char *bus, const char *self, char *err,
		  size_t errlen);

/* The keeper went away: start a new one and hand it everything. */
void registry_rekeep(struct registry *r);

/* Unmap everything; with `quit`, tell the keeper to let everything go. */
void registry_close(struct registry *r, bool quit);

/* A topic was created or removed: move the bus page's generation on and
 * wake whoever waits on it. */
void registry_topics_changed(struct registry *r);

struct topic *registry_find(struct registry *r, const char *name);
struct topic *registry_by_id(struct registry *r, uint32_t id);

/* Create a topic; 0 or SHMBUS_E* with a reason in err. */
int registry_create(struct registry *r, struct seg_params *p, struct topic **out, char *err,
		    size_t errlen);

/* Grow a topic so that it carries messages of `size` bytes: a successor
 * ring (at least twice the size), which hands out sequence numbers from
 * where the old one is sealed; every line keeps its index. Clients move
 * over when they reach the seal (OP_REOPEN). 0 or SHMBUS_E* with a
 * reason. */
int registry_grow(struct registry *r, struct topic *t, uint32_t size, char *err,
		  size_t errlen);
/* The bytes of shared memory the successor would take (UINT64_MAX: it
 * cannot be made). */
uint64_t registry_grow_bytes(const struct topic *t, uint32_t size);

/* Remove a topic: seal its ring, mark it removed, wake its sleepers, let
 * its objects go (clients keep their mappings until they close). */
void registry_remove(struct registry *r, struct topic *t);

/* Bytes of shared memory a user's topics take, and how many there are. */
void registry_usage(const struct registry *r, uint32_t uid, uint64_t *topics, uint64_t *bytes);

/* A read-only descriptor of fd (for handing a client what it may only read). */
int registry_ro_fd(int fd);

/* Note the schema a publisher brings; counts distinct ones. */
void registry_note_schema(struct topic *t, const void *schema, size_t size);

/* Pages: a new page for a client (pid), or NULL. */
struct page *registry_new_page(struct registry *r, pid_t pid, uint64_t start_time);
struct page *registry_page(struct registry *r, uint32_t id);
/* A free line of a page, or -1. */
int page_take_line(struct page *pg);
void page_free_line(struct registry *r, struct page *pg, uint32_t line);

/* Take a free publisher / subscriber line for pid, counting into
 * (page, line); -1 if full. */
int registry_claim_pub(struct topic *t, pid_t pid, uint64_t start_time, uint32_t page,
		       uint32_t line, uint32_t *publisher_id);
int registry_claim_sub(struct topic *t, pid_t pid, uint64_t start_time, uint32_t page,
		       uint32_t line);
/* Free a line; a publisher's open loan is given up. */
void registry_free_pub(struct registry *r, struct topic *t, uint32_t index);
void registry_free_sub(struct registry *r, struct topic *t, uint32_t index);

/* Free the lines and pages of processes that no longer exist (pid gone, or
 * reused: start time differs) and that no connected client owns. Returns
 * how many it freed. */
size_t registry_reap(struct registry *r,
		     bool (*owned)(void *ctx, const struct topic *t, bool pub, uint32_t index),
		     void *ctx);

/* Whether a process (pid, start time) is alive. */
bool registry_alive(pid_t pid, uint64_t start_time);

#endif /* SHMBUSD_REGISTRY_H */
