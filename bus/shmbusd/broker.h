/*
 * broker.h - the broker's event loop: clients on the bus socket, their
 * requests, and noticing when they go away.
 */
#ifndef SHMBUSD_BROKER_H
#define SHMBUSD_BROKER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "integrity.h"
#include "policy.h"
#include "proto.h"
#include "registry.h"

/* A connection that has not said HELLO, or has sent part of a request,
 * within this long is closed. */
#define BROKER_STALL_MS 10000
/* Bytes of requests a user may have buffered in the broker, not yet whole
 * (a request is read in full before it is looked at). */
#define BROKER_USER_BUFFER (2u * (PROTO_MAX_BODY + 4096u))

struct client;
struct user_acct;
struct gone_client;

struct broker {
	struct registry reg;
	int listen_fd;
	int signal_fd;
	uid_t uid;
	struct policy policy; /* empty: the bus's own user only */
	bool have_key;
	uint8_t key[INTEGRITY_KEY_BYTES];
	struct client **clients;
	size_t n, cap;
	struct user_acct **users;
	size_t n_users, cap_users;
	struct gone_client *lingers;      /* gone clients whose process lives on */
	size_t n_lingers, cap_lingers;
	int64_t accept_paused_until; /* ms, after EMFILE */
	bool stop;
};

/* Serve until SIGTERM/SIGINT. listen_fd is bound and listening. */
int broker_run(struct broker *b);

/* Drop every client and what the broker holds of them (not the registry). */
void broker_free(struct broker *b);

/* Handle one request frame (header + body) from a client, appending the
 * reply to `out`; fds to pass, if any, go to fds/nfds (up to
 * PROTO_MAX_FDS). Exposed for the protocol fuzzer and the unit tests. */
void broker_handle_frame(struct broker *b, struct client *c, const uint8_t *frame, size_t len,
			 struct proto_buf *out, int *fds, int *nfds);

/* A client as accept() made it (fd may be -1 for tests and fuzzers). NULL
 * when out of memory. */
struct client *client_new(struct broker *b, int fd, pid_t pid, uid_t uid, gid_t gid);
void client_drop(struct broker *b, struct client *c);

#endif /* SHMBUSD_BROKER_H */
