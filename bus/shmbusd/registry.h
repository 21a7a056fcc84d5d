/*
 * registry.h - the broker's topics: creating their segments, taking them
 * back after a restart, handing out lines of their control tables, and
 * removing their files when the bus stops.
 */
#ifndef SHMBUSD_REGISTRY_H
#define SHMBUSD_REGISTRY_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "segment.h"

struct topic {
	uint32_t id;
	char data_name[96];
	char ctl_name[96];
	struct topic_map map; /* both read-write */
};

struct registry {
	char bus[65];
	unsigned uid;
	struct bus_page *page; /* the bus page (see layout.h), read-write */
	char page_name[96];
	struct topic **topics;
	size_t n, cap;
	uint32_t next_id;
};

void registry_init(struct registry *r, const char *bus);

/* Take back the topics a previous broker of this bus left in /dev/shm;
 * remove files that are not valid topics. Logs what it does. */
void registry_adopt(struct registry *r);

/* Create the bus page, or take back a valid one a previous broker of the
 * bus left (clients may still sleep on it). 0 or SHMBUS_E* with a reason. */
int registry_open_page(struct registry *r, char *err, size_t errlen);

/* A fresh read-only descriptor of the bus page, for a client; -1 if none. */
int registry_page_fd(const struct registry *r);

/* A topic was created or removed: move the bus page's generation on and
 * wake whoever waits on it. */
void registry_topics_changed(struct registry *r);

struct topic *registry_find(struct registry *r, const char *name);

/* Create a topic; 0 or SHMBUS_E* with a reason in err. */
int registry_create(struct registry *r, const struct seg_params *p, struct topic **out,
		    char *err, size_t errlen);

/* Open fresh descriptors for handing a topic over: read-write or
 * read-only for each file. */
int registry_open_fds(const struct topic *t, bool data_rw, bool ctl_rw, int fds[2], char *err,
		      size_t errlen);

/* Note the schema a publisher brings; counts distinct ones. */
void registry_note_schema(struct topic *t, const void *schema, size_t size);

/* Take a free publisher / subscriber line for pid; -1 if full. */
int registry_claim_pub(struct topic *t, pid_t pid, uint64_t start_time, uint32_t *publisher_id);
int registry_claim_sub(struct topic *t, pid_t pid, uint64_t start_time);
/* Free a line; a publisher's open loan is given up. */
void registry_free_pub(struct topic *t, uint32_t index);
void registry_free_sub(struct topic *t, uint32_t index);

/* Free the lines of processes that no longer exist (pid gone, or reused:
 * start time differs). Returns how many were freed. */
size_t registry_reap(struct registry *r, bool (*owned)(void *ctx, const struct topic *t,
						       bool pub, uint32_t index),
		     void *ctx);

/* Unmap and unlink everything. */
void registry_destroy(struct registry *r);

/* Start time of a process (/proc/PID/stat field 22); 0 if it is gone. */
uint64_t proc_start_time(pid_t pid);

#endif /* SHMBUSD_REGISTRY_H */
