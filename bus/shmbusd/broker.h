/*
 * broker.h - the broker's event loop: clients on the bus socket, their
 * requests, and noticing when they go away.
 */
#ifndef SHMBUSD_BROKER_H
#define SHMBUSD_BROKER_H

#include <stdbool.h>
#include <sys/types.h>

#include "policy.h"
#include "registry.h"

struct client;

struct broker {
	struct registry reg;
	int listen_fd;
	int signal_fd;
	uid_t uid;
	struct policy policy; /* empty: the bus's own user only */
	struct client **clients;
	size_t n, cap;
	bool stop;
};

/* Serve until SIGTERM/SIGINT. listen_fd is bound and listening. */
int broker_run(struct broker *b);

/* Handle one request frame (header + body) from a client of the given
 * credentials, appending the reply to `out`; fds to pass, if any, go to
 * fds/nfds. Exposed for the protocol fuzzer. */
struct proto_buf;
void broker_handle_frame(struct broker *b, struct client *c, const uint8_t *frame, size_t len,
			 struct proto_buf *out, int fds[2], int *nfds);

struct client *client_new(int fd, pid_t pid, uid_t uid, gid_t gid);
void client_drop(struct broker *b, struct client *c);

#endif /* SHMBUSD_BROKER_H */
