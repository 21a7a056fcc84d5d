/*
 * client.h - a client's connection to its broker (private to libshmbus).
 */
#ifndef SHMBUS_CLIENT_H
#define SHMBUS_CLIENT_H

#include <pthread.h>
#include <stdint.h>

#include "errors.h"
#include "integrity.h"
#include "layout.h"
#include "paths.h"
#include "proto.h"
#include "shmbus/shmbus.h"

struct shmbus_bus {
	pthread_mutex_t lock; /* one request at a time on the socket */
	int fd;
	int broker_pid;
	char name[BUS_NAME_MAX + 1];
	struct shmbus_connect_options opts;
	char broker_path[PATH_BUF]; /* the explicit one, or the one found */
	bool explicit_broker;
	char key_file[PATH_BUF];    /* handed to a broker this client starts */
	/* The bus page (read-only) and wake board (read-write) of the broker
	 * last connected to. A restarted broker normally hands over the same
	 * ones; if not, earlier ones stay mapped until disconnect (a watch may
	 * sleep on a page, handles point into a board). */
	_Atomic(const struct bus_page *) page;
	struct board_line *board;
	uint64_t page_ino, board_ino;
	void *old_maps[16];
	size_t old_sizes[16];
	size_t n_old;
	/* Pages of counter lines the broker gave this connection. */
	struct client_page {
		uint32_t id;
		struct client_line *lines;
	} *cpages;
	size_t n_cpages;
	bool have_key;
	uint8_t key[INTEGRITY_KEY_BYTES];
};

/* The reply to a request. body is owned by the caller (free()). */
struct reply {
	struct proto_hdr hdr;
	uint8_t *body;
	int fds[PROTO_MAX_FDS];
	int nfds;
};

void reply_free(struct reply *r);

/* Send the frame(s) in `req`, wait for one reply. Reconnects once (and
 * restarts the broker if allowed) when the broker went away. On failure
 * the reason is the thread's error text. A reply with a negative status is
 * returned as that status, with the broker's reason as the error text. */
int bus_request(shmbus_bus *bus, const struct proto_buf *req, struct reply *rep);

/* The current bus page (NULL before the first connection succeeded). */
const struct bus_page *bus_page(shmbus_bus *bus);

/* A counter line of one of the connection's pages: fd is the page's
 * descriptor when the broker just handed it over (-1 otherwise). NULL
 * with the error text set if the page is unknown or does not map. */
struct client_line *bus_page_line(shmbus_bus *bus, uint32_t page, uint32_t line, int fd);

/* Copy options of the caller's size over defaults: 0, or SHMBUS_EINVAL if
 * they were not initialised or carry fields this library does not know. */
int options_import(void *dst, size_t lib_size, const void *src, const char *what);

/* Fill caller options of `size` bytes with the defaults in `d`. */
void options_init(void *opts, size_t size, const void *d, size_t lib_size);

#endif /* SHMBUS_CLIENT_H */
