/*
 * broker.c - owns the broker's clients: accepting them, checking their
 * credentials on every request, answering requests, and freeing what they
 * held when they disconnect or die. Never on the data path.
 */
#include "broker.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "paths.h"
#include "proto.h"
#include "shmbus/shmbus.h"

struct reg {
	uint32_t topic_id;
	uint32_t role;
	uint32_t index;
};

struct client {
	int fd;
	pid_t pid;
	uid_t uid;
	gid_t gid;
	uint64_t start_time;
	uint8_t *in;
	size_t in_len, in_cap;
	struct proto_buf out;
	size_t out_off;
	struct reg *regs;
	size_t nregs, capregs;
};

struct client *client_new(int fd, pid_t pid, uid_t uid, gid_t gid)
{
	struct client *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->fd = fd;
	c->pid = pid;
	c->uid = uid;
	c->gid = gid;
	c->start_time = proc_start_time(pid);
	return c;
}

static struct topic *topic_by_id(struct broker *b, uint32_t id)
{
	for (size_t i = 0; i < b->reg.n; i++)
		if (b->reg.topics[i]->id == id)
			return b->reg.topics[i];
	return NULL;
}

static void release_reg(struct broker *b, const struct reg *r)
{
	struct topic *t = topic_by_id(b, r->topic_id);
	if (!t)
		return;
	if (r->role == ROLE_PUB)
		registry_free_pub(t, r->index);
	else
		registry_free_sub(t, r->index);
}

void client_drop(struct broker *b, struct client *c)
{
	for (size_t i = 0; i < c->nregs; i++)
		release_reg(b, &c->regs[i]);
	if (c->fd >= 0)
		close(c->fd);
	free(c->in);
	free(c->regs);
	proto_buf_free(&c->out);
	free(c);
}

static void reply_error(struct proto_buf *out, uint16_t op, int status, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void reply_error(struct proto_buf *out, uint16_t op, int status, const char *fmt, ...)
{
	char msg[768];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	size_t f = proto_frame_begin(out, op, status);
	proto_put_bytes(out, msg, strlen(msg));
	proto_frame_end(out, f);
}


static void handle_open(struct broker *b, struct client *c, const uint8_t *body, size_t len,
			struct proto_buf *out, int fds[2], int *nfds)
{
	struct proto_open o;
	char err[256], topic[SEG_TOPIC_MAX], type[SEG_TYPE_MAX];
	int rc = proto_decode_open(body, len, &o, err, sizeof(err));
	if (rc) {
		reply_error(out, OP_OPEN, rc, "%s", err);
		return;
	}
	memcpy(topic, o.topic, o.topic_len);
	topic[o.topic_len] = '\0';
	if (o.type_name) {
		memcpy(type, o.type_name, o.type_len);
		type[o.type_len] = '\0';
	}
	if (!topic_name_valid(topic)) {
		reply_error(out, OP_OPEN, SHMBUS_ENAME, "invalid topic name '%s'", topic);
		return;
	}
	char why[128];
	unsigned action = o.role == ROLE_PUB ? POLICY_PUBLISH : POLICY_SUBSCRIBE;
	if (!policy_allows(&b->policy, c->uid, c->gid, action, topic, why, sizeof(why))) {
		reply_error(out, OP_OPEN, SHMBUS_EPERM, "uid %u may not %s topic '%s' on bus '%s': %s",
			    (unsigned)c->uid, action == POLICY_PUBLISH ? "publish on" : "subscribe to",
			    topic, b->reg.bus, why);
		return;
	}
	struct topic *t = registry_find(&b->reg, topic);
	if (!t) {
		if (o.role == ROLE_INSPECT || !o.create) {
			reply_error(out, OP_OPEN, SHMBUS_ENOTOPIC,
				    "topic '%s' does not exist on bus '%s'", topic, b->reg.bus);
			return;
		}
		struct seg_params p = {
			.slot_count = o.slot_count,
			.max_message_size = o.max_message_size,
			.history = o.history,
			.flags = o.flags,
			.topic = topic,
			.type_name = o.type_name ? type : "",
			.schema = o.schema,
			.schema_size = o.schema_len,
		};
		rc = seg_params_normalize(&p, err, sizeof(err));
		if (rc == 0)
			rc = registry_create(&b->reg, &p, &t, err, sizeof(err));
		if (rc) {
			reply_error(out, OP_OPEN, rc, "cannot create topic '%s': %s", topic, err);
			log_msg("cannot create topic '%s' for pid %d: %s", topic, (int)c->pid, err);
			return;
		}
		registry_note_schema(t, o.schema, o.schema_len);
		registry_topics_changed(&b->reg);
		log_msg("created topic '%s' (id %u, type '%s', %u slots of %u bytes) for pid %d",
			topic, t->id, t->map.seg->type_name, t->map.seg->slot_count,
			t->map.seg->max_message_size, (int)c->pid);
	} else if (o.type_name && strcmp(type, t->map.seg->type_name) != 0) {
		reply_error(out, OP_OPEN, SHMBUS_ETYPE,
			    "topic '%s' has type '%s', not '%s'", topic,
			    t->map.seg->type_name[0] ? t->map.seg->type_name : "(untyped)",
			    type[0] ? type : "(untyped)");
		return;
	} else if (o.role == ROLE_PUB && o.max_message_size > t->map.seg->max_message_size) {
		reply_error(out, OP_OPEN, SHMBUS_ELAYOUT,
			    "topic '%s' holds messages of up to %u bytes; this publisher asks "
			    "for %u",
			    topic, t->map.seg->max_message_size, o.max_message_size);
		return;
	}

	/* A publisher of the same type may bring a newer schema (a field
	 * added): allowed, as protobuf allows it, and counted for info. */
	if (o.role == ROLE_PUB && o.type_name && o.schema_len)
		registry_note_schema(t, o.schema, o.schema_len);

	struct reg r = { t->id, o.role, 0 };
	uint32_t publisher_id = 0;
	int idx = 0;
	if (o.role != ROLE_INSPECT && c->nregs == c->capregs) {
		size_t cap = c->capregs ? c->capregs * 2 : 8;
		struct reg *v = realloc(c->regs, cap * sizeof(*v));
		if (!v) {
			reply_error(out, OP_OPEN, SHMBUS_ENOMEM, "broker out of memory");
			return;
		}
		c->regs = v;
		c->capregs = cap;
	}
	if (o.role == ROLE_PUB)
		idx = registry_claim_pub(t, c->pid, c->start_time, &publisher_id);
	else if (o.role == ROLE_SUB)
		idx = registry_claim_sub(t, c->pid, c->start_time);
	if (idx < 0) {
		reply_error(out, OP_OPEN, SHMBUS_ELIMIT, "topic '%s' already has %d %s", topic,
			    o.role == ROLE_PUB ? SEG_MAX_PUBS : SEG_MAX_SUBS,
			    o.role == ROLE_PUB ? "publishers" : "subscribers");
		return;
	}
	r.index = (uint32_t)idx;
	/* Subscribers and inspectors get the data read-only: the kernel, not
	 * their good manners, keeps them from writing it. */
	rc = registry_open_fds(t, o.role == ROLE_PUB, o.role != ROLE_INSPECT, fds, err,
			       sizeof(err));
	if (rc) {
		if (o.role != ROLE_INSPECT)
			release_reg(b, &r);
		reply_error(out, OP_OPEN, rc, "topic '%s': %s", topic, err);
		return;
	}
	*nfds = 2;
	if (o.role != ROLE_INSPECT)
		c->regs[c->nregs++] = r;
	struct proto_opened op = { t->id, r.index, publisher_id };
	size_t f = proto_frame_begin(out, OP_OPEN, 0);
	proto_encode_opened(out, &op);
	proto_frame_end(out, f);
}

static void handle_close(struct broker *b, struct client *c, const uint8_t *body, size_t len,
			 struct proto_buf *out)
{
	struct proto_close cl;
	if (proto_decode_close(body, len, &cl)) {
		reply_error(out, OP_CLOSE, SHMBUS_EBROKER, "malformed CLOSE request");
		return;
	}
	for (size_t i = 0; i < c->nregs; i++) {
		struct reg *r = &c->regs[i];
		if (r->topic_id == cl.topic_id && r->role == cl.role && r->index == cl.index) {
			release_reg(b, r);
			c->regs[i] = c->regs[--c->nregs];
			size_t f = proto_frame_begin(out, OP_CLOSE, 0);
			proto_frame_end(out, f);
			return;
		}
	}
	reply_error(out, OP_CLOSE, SHMBUS_EINVAL, "CLOSE of something this client did not open");
}

static void handle_list(struct broker *b, struct proto_buf *out)
{
	size_t f = proto_frame_begin(out, OP_LIST, 0);
	for (size_t i = 0; i < b->reg.n; i++) {
		struct topic *t = b->reg.topics[i];
		proto_encode_entry(out, t->id, t->map.seg->topic, t->map.seg->type_name);
	}
	proto_frame_end(out, f);
}

void broker_handle_frame(struct broker *b, struct client *c, const uint8_t *frame, size_t len,
			 struct proto_buf *out, int fds[2], int *nfds)
{
	struct proto_hdr h;
	const uint8_t *body = frame + sizeof(h);
	size_t blen = len - sizeof(h);

	*nfds = 0;
	memcpy(&h, frame, sizeof(h));
	/* Credentials are checked on every request, not once per connection. */
	if (!policy_admits(&b->policy, c->uid, c->gid)) {
		reply_error(out, h.op, SHMBUS_EPERM,
			    "uid %u may not use bus '%s' of uid %u (%s)", (unsigned)c->uid,
			    b->reg.bus, (unsigned)b->uid,
			    b->policy.n ? "no policy rule admits it" : "no policy: its own user only");
		return;
	}
	switch (h.op) {
	case OP_HELLO: {
		fds[0] = registry_page_fd(&b->reg);
		if (fds[0] < 0) {
			reply_error(out, OP_HELLO, SHMBUS_ESYS, "bus page: %s", strerror(errno));
			break;
		}
		*nfds = 1;
		size_t f = proto_frame_begin(out, OP_HELLO, 0);
		proto_put_u32(out, (uint32_t)getpid());
		proto_frame_end(out, f);
		break;
	}
	case OP_OPEN:
		handle_open(b, c, body, blen, out, fds, nfds);
		break;
	case OP_CLOSE:
		handle_close(b, c, body, blen, out);
		break;
	case OP_LIST:
		handle_list(b, out);
		break;
	default:
		reply_error(out, h.op, SHMBUS_EBROKER, "unknown request %u", h.op);
	}
}

/* ------------------------------------------------------------ event loop */

/* Send what is queued; the first send of a reply carries its fds.
 * Returns false if the client must be dropped. */
static bool client_flush(struct client *c, int fds[2], int *nfds)
{
	while (c->out_off < c->out.len) {
		struct iovec iov = { c->out.data + c->out_off, c->out.len - c->out_off };
		struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
		union {
			struct cmsghdr h;
			char b[CMSG_SPACE(2 * sizeof(int))];
		} cbuf;
		if (*nfds && fds) {
			memset(&cbuf, 0, sizeof(cbuf));
			msg.msg_control = cbuf.b;
			msg.msg_controllen = CMSG_SPACE((size_t)*nfds * sizeof(int));
			struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
			cm->cmsg_level = SOL_SOCKET;
			cm->cmsg_type = SCM_RIGHTS;
			cm->cmsg_len = CMSG_LEN((size_t)*nfds * sizeof(int));
			memcpy(CMSG_DATA(cm), fds, (size_t)*nfds * sizeof(int));
		}
		ssize_t w = sendmsg(c->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN && *nfds == 0)
				return true; /* POLLOUT will resume */
			return false;
		}
		for (int i = 0; i < *nfds; i++)
			close(fds[i]);
		*nfds = 0;
		c->out_off += (size_t)w;
	}
	c->out.len = c->out_off = 0;
	return !c->out.failed;
}

/* Read what arrived and answer complete requests, one at a time (a client
 * does not get its next request read until its last reply is sent). */
static bool client_readable(struct broker *b, struct client *c)
{
	if (c->in_cap - c->in_len < 4096) {
		size_t cap = c->in_cap ? c->in_cap * 2 : 8192;
		if (cap > sizeof(struct proto_hdr) + PROTO_MAX_BODY + 8192)
			return false;
		uint8_t *v = realloc(c->in, cap);
		if (!v)
			return false;
		c->in = v;
		c->in_cap = cap;
	}
	ssize_t r = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, MSG_DONTWAIT);
	if (r == 0)
		return false;
	if (r < 0 && errno != EAGAIN && errno != EINTR)
		return false;
	if (r > 0)
		c->in_len += (size_t)r;
	while (c->in_len >= sizeof(struct proto_hdr) && c->out.len == 0) {
		struct proto_hdr h;
		char err[256];
		memcpy(&h, c->in, sizeof(h));
		if (proto_check_hdr(&h, err, sizeof(err))) {
			log_msg("dropping client pid %d: %s", (int)c->pid, err);
			reply_error(&c->out, h.op, SHMBUS_EBROKER, "%s", err);
			int none = 0;
			client_flush(c, NULL, &none);
			return false;
		}
		size_t flen = sizeof(h) + h.len;
		if (c->in_len < flen)
			break;
		int fds[2], nfds = 0;
		broker_handle_frame(b, c, c->in, flen, &c->out, fds, &nfds);
		memmove(c->in, c->in + flen, c->in_len - flen);
		c->in_len -= flen;
		if (!client_flush(c, fds, &nfds)) {
			for (int i = 0; i < nfds; i++)
				close(fds[i]);
			return false;
		}
	}
	return true;
}

static void accept_client(struct broker *b)
{
	int fd = accept4(b->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd < 0)
		return;
	struct ucred cred;
	socklen_t cl = sizeof(cred);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) < 0) {
		close(fd);
		return;
	}
	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 16;
		struct client **v = realloc(b->clients, cap * sizeof(*v));
		if (!v) {
			close(fd);
			return;
		}
		b->clients = v;
		b->cap = cap;
	}
	struct client *c = client_new(fd, cred.pid, cred.uid, cred.gid);
	if (!c) {
		close(fd);
		return;
	}
	b->clients[b->n++] = c;
}

static bool owned_by_client(void *ctx, const struct topic *t, bool pub, uint32_t index)
{
	struct broker *b = ctx;
	for (size_t i = 0; i < b->n; i++) {
		struct client *c = b->clients[i];
		for (size_t k = 0; k < c->nregs; k++)
			if (c->regs[k].topic_id == t->id && c->regs[k].index == index &&
			    (c->regs[k].role == ROLE_PUB) == pub)
				return true;
	}
	return false;
}

int broker_run(struct broker *b)
{
	struct pollfd *pfd = NULL;
	size_t pcap = 0;
	int64_t last_reap = 0;

	while (!b->stop) {
		if (pcap < b->n + 2) {
			pcap = (b->n + 2) * 2;
			struct pollfd *v = realloc(pfd, pcap * sizeof(*v));
			if (!v) {
				log_msg("out of memory");
				break;
			}
			pfd = v;
		}
		pfd[0] = (struct pollfd){ b->listen_fd, POLLIN, 0 };
		pfd[1] = (struct pollfd){ b->signal_fd, POLLIN, 0 };
		for (size_t i = 0; i < b->n; i++) {
			struct client *c = b->clients[i];
			pfd[i + 2] = (struct pollfd){ c->fd, c->out.len ? POLLOUT : POLLIN, 0 };
		}
		size_t nclients = b->n;
		int r = poll(pfd, nclients + 2, 1000);
		if (r < 0 && errno != EINTR) {
			log_msg("poll: %s", strerror(errno));
			break;
		}
		if (r > 0 && (pfd[1].revents & POLLIN)) {
			struct signalfd_siginfo si;
			if (read(b->signal_fd, &si, sizeof(si)) == sizeof(si))
				log_msg("signal %u: stopping", si.ssi_signo);
			b->stop = true;
			break;
		}
		for (size_t i = nclients; i-- > 0;) {
			struct client *c = b->clients[i];
			short re = pfd[i + 2].revents;
			bool keep = true;
			if (re & POLLOUT) {
				int none = 0;
				keep = client_flush(c, NULL, &none);
				/* Requests that arrived meanwhile wait in c->in. */
				if (keep && c->in_len)
					keep = client_readable(b, c);
			} else if (re & (POLLIN | POLLHUP | POLLERR)) {
				keep = client_readable(b, c);
			}
			if (!keep) {
				client_drop(b, c);
				b->clients[i] = b->clients[--b->n];
			}
		}
		if (r > 0 && (pfd[0].revents & POLLIN))
			accept_client(b);
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		int64_t now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
		if (now - last_reap >= 1000) {
			last_reap = now;
			registry_reap(&b->reg, owned_by_client, b);
		}
	}
	free(pfd);
	for (size_t i = 0; i < b->n; i++)
		client_drop(b, b->clients[i]);
	free(b->clients);
	b->clients = NULL;
	b->n = b->cap = 0;
	return 0;
}
