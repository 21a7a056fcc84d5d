/*
 * keeper.h - the broker's memory across its own restarts. Every shared
 * object of a bus is a memfd (see layout.h): it has no name, so a broker
 * that dies would leave nothing a new one could find. The keeper is a small
 * process of the bus's user that holds a copy of each descriptor, with what
 * the broker needs to know to take it back (which topic or client it
 * belongs to). A broker that starts asks it for everything; a keeper that
 * dies is started again by its broker and handed everything again.
 *
 *   broker --PUT(record, fd)--> keeper      (a new object)
 *   broker --DROP(kind, id)---> keeper      (an object no longer needed)
 *   broker --DUMP-------------> keeper --PUT...END--> broker
 *   broker --QUIT-------------> keeper      (the bus stops: everything goes)
 *
 * It listens on "<runtime dir>/<bus>.keep" (SOCK_SEQPACKET) once its broker
 * has handed it everything (KOP_OPEN; "<bus>.kpre" until then), talks only to
 * its own user, and exits KEEP_ORPHAN_S seconds after its broker went away
 * if none came back (by then nothing can use what it holds but the clients
 * that still map it, which keep their own references).
 */
#ifndef SHMBUSD_KEEPER_H
#define SHMBUSD_KEEPER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KEEP_ORPHAN_S 300

enum keep_kind {
	KEEP_BUS = 1,   /* the bus page (id 0) */
	KEEP_BOARD = 2, /* the wake board (id 0) */
	KEEP_META = 3,  /* a topic's meta (id: topic id) */
	KEEP_DATA = 4,  /* a topic's data (id: topic id) */
	KEEP_PAGE = 5,  /* a client's page (id: page id; pid, start_time) */
};

struct keep_rec {
	uint32_t kind;
	uint32_t id;
	int32_t pid;
	uint32_t reserved;
	uint64_t start_time;
};

/* Run as the keeper (shmbusd --keeper PATH): listen on PATH, say so on
 * ready_fd, serve until told to quit or orphaned. keeper_listen returns
 * the listening socket or -1; keeper_main the exit status. */
int keeper_listen(const char *path, int ready_fd);
int keeper_main(int listen_fd, const char *path);

/* Broker side: a connection to the bus's keeper, started if none runs.
 * self: the broker's executable (to start the keeper). Returns the fd, or
 * -1 with a reason in err; *fresh tells whether the keeper is new (holds
 * nothing). */
int keeper_attach(const char *bus, const char *self, bool *fresh, char *err, size_t errlen);

/* 0, or -1 when the keeper is gone (the caller attaches a new one). */
int keeper_put(int kfd, const struct keep_rec *r, int fd);
int keeper_drop(int kfd, uint32_t kind, uint32_t id);
int keeper_quit(int kfd);
/* A fresh keeper has been handed everything: from now on a starting broker
 * finds it (before, it listens under a name no broker looks for). Returns
 * once the keeper listens there (0), or -1 when it is gone or did not
 * answer within 5 s. */
int keeper_open(int kfd);

/* Everything the keeper holds: fn(ctx, record, fd) for each (fn owns fd).
 * 0, or -1 when the keeper is gone. */
int keeper_dump(int kfd, void (*fn)(void *ctx, const struct keep_rec *r, int fd), void *ctx);

#endif /* SHMBUSD_KEEPER_H */
