/*
 * client.h - a client's connection to its broker (private to libshmbus).
 */
#ifndef SHMBUS_CLIENT_H
#define SHMBUS_CLIENT_H

#include <pthread.h>
#include <stdint.h>

#include "integrity.h"
#include "paths.h"
#include "proto.h"
#include "shmbus/shmbus.h"

struct shmbus_bus {
	pthread_mutex_t lock; /* one request at a time on the socket */
	int fd;
	int broker_pid;
	char name[BUS_NAME_MAX + 1];
	struct shmbus_connect_options opts;
	char broker_path[PATH_BUF];
	char errmsg[512];
	bool have_key;
	uint8_t key[INTEGRITY_KEY_BYTES];
};

/* The reply to a request. body is owned by the caller (free()). */
struct reply {
	struct proto_hdr hdr;
	uint8_t *body;
	int fds[2];
	int nfds;
};

void reply_free(struct reply *r);

/* Send the frame(s) in `req`, wait for one reply. Reconnects once (and
 * restarts the broker if allowed) when the broker went away. On failure
 * the reason is in bus->errmsg. A reply with a negative status is returned
 * as that status, with the broker's reason copied to bus->errmsg. */
int bus_request(shmbus_bus *bus, const struct proto_buf *req, struct reply *rep);

void bus_set_error(shmbus_bus *bus, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif /* SHMBUS_CLIENT_H */
