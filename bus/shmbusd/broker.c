/*
 * broker.c - owns the broker's clients: admitting them (credentials at
 * accept, per-user limits), answering their requests, bounding what they
 * can make the broker hold, and freeing what they held when they go.
 * Never on the data path.
 */
#include "broker.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "futex.h"
#include "log.h"
#include "paths.h"
#include "ring.h"
#include "shmbus/shmbus.h"

struct reg {
	uint32_t topic_id;
	uint32_t role;
	uint32_t index;
};

/* What a user holds of the broker, for its limits. */
struct user_acct {
	uid_t uid;
	uint32_t connections;
	size_t buffered;
};

struct client {
	int fd;
	pid_t pid;
	uid_t uid;
	gid_t gid;
	uint64_t start_time;
	struct user_acct *user;
	bool hello;           /* said HELLO */
	bool keyed;           /* proved the bus key */
	uint8_t nonce[PROTO_NONCE_BYTES];
	int64_t since_ms;     /* connected, or started its partial request */
	uint8_t *in;
	size_t in_len, in_cap;
	struct proto_buf out;
	size_t out_off;
	int fds[PROTO_MAX_FDS]; /* to go with the queued reply */
	int nfds;
	struct reg *regs;
	size_t nregs, capregs;
	uint32_t page;        /* its current page of counter lines, 0: none */
};

static int pidfd_open_nb(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

static int64_t now_ms(void)
{
	return monotonic_ns() / 1000000;
}

static struct user_acct *user_of(struct broker *b, uid_t uid)
{
	for (size_t i = 0; i < b->n_users; i++)
		if (b->users[i]->uid == uid)
			return b->users[i];
	if (b->n_users == b->cap_users) {
		size_t cap = b->cap_users ? b->cap_users * 2 : 8;
		struct user_acct **v = realloc(b->users, cap * sizeof(*v));
		if (!v)
			return NULL;
		b->users = v;
		b->cap_users = cap;
	}
	struct user_acct *u = calloc(1, sizeof(*u));
	if (!u)
		return NULL;
	u->uid = uid;
	b->users[b->n_users++] = u;
	return u;
}

struct client *client_new(struct broker *b, int fd, pid_t pid, uid_t uid, gid_t gid)
{
	struct client *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->user = user_of(b, uid);
	if (!c->user) {
		free(c);
		return NULL;
	}
	c->user->connections++;
	c->fd = fd;
	c->pid = pid;
	c->uid = uid;
	c->gid = gid;
	c->start_time = proc_start_time(pid);
	c->since_ms = now_ms();
	return c;
}

static void trim_old_rings(struct broker *b, struct topic *t);

/* Free a line the client (pid) holds; never one that has been freed and
 * handed to someone else meanwhile. */
static void release_reg(struct broker *b, const struct reg *r, pid_t pid)
{
	struct topic *t = registry_by_id(&b->reg, r->topic_id);
	if (!t)
		return;
	if (r->role == ROLE_PUB && r->index < SEG_MAX_PUBS &&
	    atomic_load_explicit(&t->meta->pubs[r->index].pid, memory_order_relaxed) == pid)
		registry_free_pub(&b->reg, t, r->index);
	else if (r->role == ROLE_SUB && r->index < SEG_MAX_SUBS &&
		 atomic_load_explicit(&t->meta->subs[r->index].pid, memory_order_relaxed) == pid) {
		registry_free_sub(&b->reg, t, r->index);
		trim_old_rings(b, t); /* it may have been the last one behind */
	}
}

/* A client that went away while its process lives on (it closed its
 * connection, or is still exiting): its lines stay its own until the
 * process is gone, which its pidfd tells at once. */
struct gone_client {
	int pidfd;
	pid_t pid;
	struct reg *regs;
	size_t n;
};

static bool has_exited(int pidfd)
{
	struct pollfd p = { pidfd, POLLIN, 0 };
	return poll(&p, 1, 0) == 1;
}

static void release_all(struct broker *b, pid_t pid, const struct reg *regs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		release_reg(b, &regs[i], pid);
}

static void linger_end(struct broker *b, size_t i)
{
	struct gone_client *l = &b->lingers[i];
	release_all(b, l->pid, l->regs, l->n);
	close(l->pidfd);
	free(l->regs);
	b->lingers[i] = b->lingers[--b->n_lingers];
}

static void drop_queued_fds(struct client *c)
{
	for (int i = 0; i < c->nfds; i++)
		close(c->fds[i]);
	c->nfds = 0;
}

void client_drop(struct broker *b, struct client *c)
{
	/* A client that went away but whose process lives on keeps its lines
	 * (it still maps the topics, its loans are still its own) until the
	 * process is gone: no line is handed to anyone else while its last
	 * holder can still write under it. */
	int pidfd = c->nregs ? pidfd_open_nb(c->pid) : -1;
	if (c->nregs && pidfd >= 0 && !has_exited(pidfd) &&
	    registry_alive(c->pid, c->start_time) && b->n_lingers < b->cap_lingers) {
		b->lingers[b->n_lingers++] = (struct gone_client){ pidfd, c->pid, c->regs, c->nregs };
		c->regs = NULL;
	} else {
		release_all(b, c->pid, c->regs, c->nregs);
		if (pidfd >= 0)
			close(pidfd);
	}
	c->user->connections--;
	c->user->buffered -= c->in_len;
	if (c->fd >= 0)
		close(c->fd);
	drop_queued_fds(c);
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

static void reply_ok(struct proto_buf *out, uint16_t op)
{
	size_t f = proto_frame_begin(out, op, 0);
	proto_frame_end(out, f);
}

/* ------------------------------------------------------------ requests */

static void handle_hello(struct broker *b, struct client *c, struct proto_buf *out, int *fds,
			 int *nfds)
{
	if (!integrity_random(c->nonce, sizeof(c->nonce))) {
		reply_error(out, OP_HELLO, SHMBUS_ESYS, "no random numbers");
		return;
	}
	fds[0] = registry_ro_fd(b->reg.page_fd);
	fds[1] = fds[0] < 0 ? -1 : dup(b->reg.board_fd);
	if (fds[1] < 0) {
		reply_error(out, OP_HELLO, SHMBUS_ESYS, "bus objects: %s", strerror(errno));
		if (fds[0] >= 0)
			close(fds[0]);
		return;
	}
	*nfds = 2;
	c->hello = true;
	size_t f = proto_frame_begin(out, OP_HELLO, 0);
	proto_encode_hello(out, (uint32_t)getpid(), c->nonce);
	proto_frame_end(out, f);
}

static void handle_auth(struct broker *b, struct client *c, const uint8_t *body, size_t len,
			struct proto_buf *out)
{
	if (len != INTEGRITY_TAG_BYTES) {
		reply_error(out, OP_AUTH, SHMBUS_EBROKER, "malformed AUTH request");
		return;
	}
	if (!b->have_key) {
		reply_error(out, OP_AUTH, SHMBUS_EPERM,
			    "the broker of bus '%s' has no key (start shmbusd with --key-file or "
			    "SHMBUS_KEY_FILE)",
			    b->reg.bus);
		return;
	}
	if (!integrity_proof_check(b->key, b->reg.bus, c->nonce, body)) {
		log_user(c->uid, "uid %u (pid %d) failed to prove the bus key", (unsigned)c->uid,
			 (int)c->pid);
		reply_error(out, OP_AUTH, SHMBUS_EPERM,
			    "the key does not match the bus key of bus '%s'", b->reg.bus);
		return;
	}
	c->keyed = true;
	reply_ok(out, OP_AUTH);
}

/* An OPEN request, checked and with NUL-terminated copies of its names. */
struct open_req {
	struct proto_open o;
	char topic[SEG_TOPIC_MAX];
	char type[SEG_TYPE_MAX];
};

static int decode_open(const uint8_t *body, size_t len, struct open_req *q, char *err,
		       size_t errlen)
{
	int rc = proto_decode_open(body, len, &q->o, err, errlen);
	if (rc)
		return rc;
	memcpy(q->topic, q->o.topic, q->o.topic_len);
	q->topic[q->o.topic_len] = '\0';
	q->type[0] = '\0';
	if (q->o.type_name) {
		memcpy(q->type, q->o.type_name, q->o.type_len);
		q->type[q->o.type_len] = '\0';
	}
	if (!topic_name_valid(q->topic)) {
		snprintf(err, errlen, "invalid topic name");
		return SHMBUS_ENAME;
	}
	if (!type_name_valid(q->type)) {
		snprintf(err, errlen, "invalid type name: use up to 255 of [A-Za-z0-9_.]");
		return SHMBUS_EINVAL;
	}
	return 0;
}

static const char *action_text(unsigned action)
{
	return action == POLICY_PUBLISH ? "publish on" : action == POLICY_CREATE ? "create"
										  : "subscribe to";
}

/* 0 if the policy allows; else the reply is written. */
static int check_allowed(struct broker *b, struct client *c, unsigned action, const char *topic,
			 uint16_t op, struct proto_buf *out)
{
	char why[128];
	if (policy_allows(&b->policy, c->uid, c->gid, action, topic, why, sizeof(why)))
		return 0;
	reply_error(out, op, SHMBUS_EPERM, "uid %u may not %s topic '%s' on bus '%s': %s",
		    (unsigned)c->uid, action_text(action), topic, b->reg.bus, why);
	log_user(c->uid, "refused uid %u (pid %d): %s topic '%s'", (unsigned)c->uid,
		 (int)c->pid, action_text(action), topic);
	return -1;
}

/* Create the topic a request asks for, within the user's limits. */
static struct topic *create_topic(struct broker *b, struct client *c, const struct open_req *q,
				  struct proto_buf *out)
{
	char err[256];
	struct topic *t;
	struct seg_params p = {
		.slot_count = q->o.slot_count,
		.max_message_size = q->o.max_message_size,
		.history = q->o.history,
		.flags = q->o.flags,
		.creator_uid = (uint32_t)c->uid,
		.topic = q->topic,
		.type_name = q->type,
		.schema = q->o.schema,
		.schema_size = q->o.schema_len,
	};
	if (check_allowed(b, c, POLICY_CREATE, q->topic, OP_OPEN, out))
		return NULL;
	if ((q->o.flags & SHMBUS_TOPIC_INTEGRITY) && !c->keyed) {
		reply_error(out, OP_OPEN, SHMBUS_EPERM,
			    "topic '%s' would carry integrity tags: prove the bus key first "
			    "(set SHMBUS_KEY_FILE or key_file)",
			    q->topic);
		return NULL;
	}
	int rc = seg_params_normalize(&p, err, sizeof(err));
	struct policy_limits lim;
	uint64_t topics, bytes;
	policy_limits_for(&b->policy, c->uid, c->gid, &lim);
	registry_usage(&b->reg, (uint32_t)c->uid, &topics, &bytes);
	uint64_t want = seg_meta_size(p.schema_size) + (rc ? 0 : seg_data_size(&p));
	if (rc == 0 && topics + 1 > lim.topics) {
		snprintf(err, sizeof(err), "uid %u has %llu topics on this bus, its limit",
			 (unsigned)c->uid, (unsigned long long)topics);
		rc = SHMBUS_ELIMIT;
	} else if (rc == 0 && bytes + want > lim.bytes) {
		snprintf(err, sizeof(err),
			 "uid %u would hold %llu bytes of topics on this bus, above its limit of "
			 "%llu",
			 (unsigned)c->uid, (unsigned long long)(bytes + want),
			 (unsigned long long)lim.bytes);
		rc = SHMBUS_ELIMIT;
	}
	if (rc == 0)
		rc = registry_create(&b->reg, &p, &t, err, sizeof(err));
	if (rc) {
		reply_error(out, OP_OPEN, rc, "cannot create topic '%s': %s", q->topic, err);
		log_user(c->uid, "cannot create topic '%s' for pid %d: %s", q->topic, (int)c->pid,
			 err);
		return NULL;
	}
	registry_note_schema(t, q->o.schema, q->o.schema_len);
	registry_topics_changed(&b->reg);
	log_user(c->uid, "created topic '%s' (id %u, type '%s', %u slots of %u bytes) for pid %d",
		 q->topic, t->id, q->type, t->layout.slot_count, t->layout.max_message_size,
		 (int)c->pid);
	return t;
}

/* The existing topic fits the request (type, size, tags)? Else the reply
 * is written. */
static int check_fits(struct client *c, const struct open_req *q, struct topic *t,
		      struct proto_buf *out)
{
	if (q->o.type_name && strcmp(q->type, t->layout.type_name) != 0) {
		reply_error(out, OP_OPEN, SHMBUS_ETYPE, "topic '%s' has type '%s', not '%s'",
			    t->layout.name,
			    t->layout.type_name[0] ? t->layout.type_name : "(untyped)",
			    q->type[0] ? q->type : "(untyped)");
		return -1;
	}
	if (q->o.role == ROLE_PUB && q->o.max_message_size > t->layout.max_message_size) {
		reply_error(out, OP_OPEN, SHMBUS_ELAYOUT,
			    "topic '%s' holds messages of up to %u bytes; this publisher asks "
			    "for %u",
			    t->layout.name, t->layout.max_message_size, q->o.max_message_size);
		return -1;
	}
	if (q->o.role == ROLE_PUB && (t->layout.flags & SHMBUS_TOPIC_INTEGRITY) && !c->keyed) {
		reply_error(out, OP_OPEN, SHMBUS_EPERM,
			    "topic '%s' carries integrity tags: only a client that proved the bus "
			    "key may publish on it (set SHMBUS_KEY_FILE or key_file)",
			    t->layout.name);
		return -1;
	}
	return 0;
}

/* A line of the client's page for a new handle; *fresh: the page is new
 * (its fd goes with the reply). */
static struct page *line_for(struct broker *b, struct client *c, int *line, bool *fresh)
{
	struct page *pg = c->page ? registry_page(&b->reg, c->page) : NULL;
	*fresh = false;
	if (pg && (*line = page_take_line(pg)) >= 0)
		return pg;
	pg = registry_new_page(&b->reg, c->pid, c->start_time);
	if (!pg)
		return NULL;
	c->page = pg->id;
	*fresh = true;
	*line = page_take_line(pg);
	return pg;
}

static int add_reg(struct client *c, struct reg r)
{
	if (c->nregs == c->capregs) {
		size_t cap = c->capregs ? c->capregs * 2 : 8;
		struct reg *v = realloc(c->regs, cap * sizeof(*v));
		if (!v)
			return -1;
		c->regs = v;
		c->capregs = cap;
	}
	c->regs[c->nregs++] = r;
	return 0;
}

/* The layout an old ring's meta says (the broker's own object, formatted
 * by it): for a REOPEN that hands it out. */
static int old_layout(int meta_fd, struct seg_layout *l, char *err, size_t errlen)
{
	void *m;
	if (seg_map_fd(meta_fd, false, false, 0, &m, err, errlen))
		return -1;
	struct stat st;
	size_t size = fstat(meta_fd, &st) == 0 ? (size_t)st.st_size : 0;
	seg_layout_of(m, l);
	munmap(m, size);
	return 0;
}

/* The ring's objects for a handle: the meta read-only; the data
 * read-write for a publisher, read-only for a subscriber (the kernel, not
 * its good manners, keeps it from writing). 0, or -1 (errno set). */
static int ring_fds(int meta_fd, int data_fd, bool pub, int *fds)
{
	fds[0] = registry_ro_fd(meta_fd);
	fds[1] = fds[0] < 0 ? -1 : pub ? dup(data_fd) : registry_ro_fd(data_fd);
	if (fds[1] >= 0)
		return 0;
	int e = errno;
	if (fds[0] >= 0)
		close(fds[0]);
	errno = e;
	return -1;
}

static void reply_opened(struct proto_buf *out, uint16_t op_code, const struct topic *t,
			 struct proto_opened *op)
{
	op->layout = t->layout; /* REOPEN of an old ring: its own, read below */
	/* Relaxed: a position (a subscriber's start). */
	op->head = atomic_load_explicit(&t->data->next_seq, memory_order_relaxed) & ~DATA_SEALED;
	size_t f = proto_frame_begin(out, op_code, 0);
	proto_encode_opened(out, op);
	proto_frame_end(out, f);
}

/* Register the handle and reply with the topic's layout and objects. */
static void open_reply(struct broker *b, struct client *c, const struct open_req *q,
		       struct topic *t, struct proto_buf *out, int *fds, int *nfds)
{
	struct proto_opened op = { 0 };
	bool fresh;
	int line;
	bool pub = q->o.role == ROLE_PUB;
	struct page *pg = line_for(b, c, &line, &fresh);
	int idx = -1;
	if (pg && add_reg(c, (struct reg){ t->id, q->o.role, 0 }) == 0) {
		idx = pub ? registry_claim_pub(t, c->pid, c->start_time, pg->id, (uint32_t)line,
					       &op.publisher_id)
			  : registry_claim_sub(t, c->pid, c->start_time, pg->id, (uint32_t)line);
		if (idx < 0)
			c->nregs--;
	}
	if (idx < 0) {
		if (pg)
			page_free_line(&b->reg, pg, (uint32_t)line);
		reply_error(out, OP_OPEN, SHMBUS_ELIMIT,
			    pg ? "topic '%s' already has %d %s" : "topic '%s': out of memory",
			    t->layout.name, pub ? SEG_MAX_PUBS : SEG_MAX_SUBS,
			    pub ? "publishers" : "subscribers");
		return;
	}
	struct reg *r = &c->regs[c->nregs - 1];
	r->index = (uint32_t)idx;
	fds[2] = fresh ? dup(pg->fd) : -2;
	if (fds[2] == -1 || ring_fds(t->meta_fd, t->data_fd, pub, fds)) {
		if (fds[2] >= 0)
			close(fds[2]);
		release_reg(b, r, c->pid);
		c->nregs--;
		reply_error(out, OP_OPEN, SHMBUS_ESYS, "topic '%s': %s", t->layout.name,
			    strerror(errno));
		return;
	}
	*nfds = fresh ? 3 : 2;
	op.index = (uint32_t)idx;
	op.page = pg->id;
	op.line = (uint32_t)line;
	op.new_page = fresh;
	reply_opened(out, OP_OPEN, t, &op);
}

/* A line this client holds: by a registration of this connection, or in
 * the topic's table under its pid (opened through an earlier connection). */
static bool holds_line(const struct client *c, const struct topic *t, uint32_t role,
		       uint32_t index)
{
	for (size_t i = 0; i < c->nregs; i++)
		if (c->regs[i].topic_id == t->id && c->regs[i].role == role &&
		    c->regs[i].index == index)
			return true;
	if (role == ROLE_PUB && index < SEG_MAX_PUBS)
		return atomic_load_explicit(&t->meta->pubs[index].pid, memory_order_relaxed) ==
		       c->pid;
	if (role == ROLE_SUB && index < SEG_MAX_SUBS)
		return atomic_load_explicit(&t->meta->subs[index].pid, memory_order_relaxed) ==
		       c->pid;
	return false;
}

/* The ring after the one a handle reached the seal of: for a publisher
 * the topic's ring now; for a subscriber the next one, which may be an
 * old ring still kept (the subscriber has its messages to read). */
static void handle_reopen(struct broker *b, struct client *c, const uint8_t *body, size_t len,
			  struct proto_buf *out, int *fds, int *nfds)
{
	struct proto_reopen q;
	if (proto_decode_reopen(body, len, &q)) {
		reply_error(out, OP_REOPEN, SHMBUS_EBROKER, "malformed REOPEN request");
		return;
	}
	struct topic *t = registry_by_id(&b->reg, q.topic_id);
	if (!t) {
		reply_error(out, OP_REOPEN, SHMBUS_ENOTOPIC, "the topic was removed");
		return;
	}
	if (!holds_line(c, t, q.role, q.index)) {
		reply_error(out, OP_REOPEN, SHMBUS_EINVAL,
			    "REOPEN of a line of '%s' this client does not hold", t->layout.name);
		return;
	}
	trim_old_rings(b, t);
	int meta_fd = t->meta_fd, data_fd = t->data_fd;
	if (q.role == ROLE_SUB)
		registry_ring_after(t, q.generation, &meta_fd, &data_fd);
	struct proto_opened op = { .index = q.index };
	char err[256];
	if (meta_fd != t->meta_fd && old_layout(meta_fd, &op.layout, err, sizeof(err))) {
		reply_error(out, OP_REOPEN, SHMBUS_ESYS, "topic '%s': %s", t->layout.name, err);
		return;
	}
	if (ring_fds(meta_fd, data_fd, q.role == ROLE_PUB, fds)) {
		reply_error(out, OP_REOPEN, SHMBUS_ESYS, "topic '%s': %s", t->layout.name,
			    strerror(errno));
		return;
	}
	*nfds = 2;
	if (meta_fd == t->meta_fd) {
		reply_opened(out, OP_REOPEN, t, &op);
		return;
	}
	size_t f = proto_frame_begin(out, OP_REOPEN, 0);
	proto_encode_opened(out, &op);
	proto_frame_end(out, f);
}

/* A publisher needs larger messages than the topic takes: a successor. */
static void handle_grow(struct broker *b, struct client *c, const uint8_t *body, size_t len,
			struct proto_buf *out, int *fds, int *nfds)
{
	struct proto_grow g;
	char err[256];
	if (proto_decode_grow(body, len, &g)) {
		reply_error(out, OP_GROW, SHMBUS_EBROKER, "malformed GROW request");
		return;
	}
	struct topic *t = registry_by_id(&b->reg, g.topic_id);
	if (!t) {
		reply_error(out, OP_GROW, SHMBUS_ENOTOPIC, "the topic was removed");
		return;
	}
	if (!holds_line(c, t, ROLE_PUB, g.index)) {
		reply_error(out, OP_GROW, SHMBUS_EINVAL,
			    "GROW of '%s' by a client that does not publish on it", t->layout.name);
		return;
	}
	if (g.size > SEG_MAX_MESSAGE) {
		reply_error(out, OP_GROW, SHMBUS_EMSGSIZE,
			    "messages of %u bytes are above the limit %u", g.size, SEG_MAX_MESSAGE);
		return;
	}
	if (g.size > t->layout.max_message_size) {
		struct policy_limits lim;
		uint64_t topics, bytes;
		policy_limits_for(&b->policy, c->uid, c->gid, &lim);
		registry_usage(&b->reg, (uint32_t)c->uid, &topics, &bytes);
		/* The old ring goes once its clients move over; until then both
		 * count. */
		uint64_t more = registry_grow_bytes(t, g.size);
		if (more == UINT64_MAX || bytes + more > lim.bytes) {
			reply_error(out, OP_GROW, SHMBUS_ELIMIT,
				    "growing '%s' would take uid %u above its limit of %llu bytes",
				    t->layout.name, (unsigned)c->uid, (unsigned long long)lim.bytes);
			return;
		}
		uint32_t before = t->layout.max_message_size;
		int rc = registry_grow(&b->reg, t, g.size, err, sizeof(err));
		if (rc) {
			reply_error(out, OP_GROW, rc, "cannot grow topic '%s': %s", t->layout.name,
				    err);
			return;
		}
		log_user(c->uid, "grew topic '%s' from %u to %u bytes (%u slots) for pid %d",
			 t->layout.name, before, t->layout.max_message_size, t->layout.slot_count,
			 (int)c->pid);
	}
	/* Grown now, by this request or another one before it. */
	trim_old_rings(b, t);
	if (ring_fds(t->meta_fd, t->data_fd, true, fds)) {
		reply_error(out, OP_GROW, SHMBUS_ESYS, "topic '%s': %s", t->layout.name,
			    strerror(errno));
		return;
	}
	*nfds = 2;
	struct proto_opened op = { .index = g.index };
	reply_opened(out, OP_GROW, t, &op);
}

static void handle_open(struct broker *b, struct client *c, const uint8_t *body, size_t len,
			struct proto_buf *out, int *fds, int *nfds)
{
	struct open_req q;
	char err[256];
	int rc = decode_open(body, len, &q, err, sizeof(err));
	if (rc) {
		reply_error(out, OP_OPEN, rc, "%s", err);
		return;
	}
	bool pub = q.o.role == ROLE_PUB;
	if (check_allowed(b, c, pub ? POLICY_PUBLISH : POLICY_SUBSCRIBE, q.topic, OP_OPEN, out))
		return;
	struct topic *t = registry_find(&b->reg, q.topic);
	if (!t && !q.o.create) {
		reply_error(out, OP_OPEN, SHMBUS_ENOTOPIC, "topic '%s' does not exist on bus '%s'",
			    q.topic, b->reg.bus);
		return;
	}
	if (!t) {
		t = create_topic(b, c, &q, out);
		if (!t)
			return;
	} else if (check_fits(c, &q, t, out)) {
		return;
	}
	/* A publisher of the same type may bring a newer schema (a field
	 * added): allowed, as protobuf allows it, and counted for info. */
	if (pub && q.o.type_name && q.o.schema_len)
		registry_note_schema(t, q.o.schema, q.o.schema_len);
	open_reply(b, c, &q, t, out, fds, nfds);
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
			release_reg(b, r, c->pid);
			c->regs[i] = c->regs[--c->nregs];
			reply_ok(out, OP_CLOSE);
			return;
		}
	}
	/* Opened through an earlier connection (a broker restart since):
	 * the same process may close it. */
	struct topic *t = registry_by_id(&b->reg, cl.topic_id);
	if (t && cl.role == ROLE_PUB && cl.index < SEG_MAX_PUBS &&
	    atomic_load_explicit(&t->meta->pubs[cl.index].pid, memory_order_relaxed) == c->pid) {
		registry_free_pub(&b->reg, t, cl.index);
		reply_ok(out, OP_CLOSE);
		return;
	}
	if (t && cl.role == ROLE_SUB && cl.index < SEG_MAX_SUBS &&
	    atomic_load_explicit(&t->meta->subs[cl.index].pid, memory_order_relaxed) == c->pid) {
		registry_free_sub(&b->reg, t, cl.index);
		reply_ok(out, OP_CLOSE);
		return;
	}
	reply_error(out, OP_CLOSE, SHMBUS_EINVAL, "CLOSE of something this client did not open");
}

static void handle_list(struct broker *b, struct client *c, struct proto_buf *out)
{
	char why[128];
	size_t f = proto_frame_begin(out, OP_LIST, 0);
	/* Only what this user may subscribe to: the names of others' topics
	 * are theirs. */
	for (size_t i = 0; i < b->reg.n; i++) {
		struct topic *t = b->reg.topics[i];
		if (policy_allows(&b->policy, c->uid, c->gid, POLICY_SUBSCRIBE, t->layout.name, why,
				  sizeof(why)))
			proto_encode_entry(out, t->id, t->layout.name, t->layout.type_name,
					   t->layout.incarnation);
	}
	proto_frame_end(out, f);
}

/* A client's counters, as its page shows them (its own writing: shown,
 * never trusted for anything). */
static void page_counts(struct broker *b, uint32_t page, uint32_t line, struct proto_client *pc)
{
	struct page *pg = registry_page(&b->reg, page);
	if (!pg || line >= PAGE_LINES)
		return;
	const struct client_line *l = &pg->lines[line];
	/* Relaxed: a snapshot for display. */
	pc->count = atomic_load_explicit(&((struct client_line *)l)->count, memory_order_relaxed);
	pc->lost = atomic_load_explicit(&((struct client_line *)l)->lost, memory_order_relaxed);
	pc->rejected = atomic_load_explicit(&((struct client_line *)l)->rejected,
					    memory_order_relaxed);
	pc->next_seq = atomic_load_explicit(&((struct client_line *)l)->next_seq,
					    memory_order_relaxed);
	pc->waiting = atomic_load_explicit(&((struct client_line *)l)->waiting,
					   memory_order_relaxed) != 0;
}

/* Old rings every subscriber of t has passed are let go: the lowest next
 * sequence number of its subscribers, from their lines. A line is the
 * client's to write: a liar only keeps old rings (at most
 * TOPIC_OLD_RINGS) longer than needed. */
static void trim_old_rings(struct broker *b, struct topic *t)
{
	if (t->n_old == 0)
		return;
	uint64_t lowest = UINT64_MAX;
	for (uint32_t i = 0; i < SEG_MAX_SUBS; i++) {
		const struct meta_sub *e = &t->meta->subs[i];
		if (!atomic_load_explicit(&((struct meta_sub *)e)->pid, memory_order_relaxed))
			continue;
		struct proto_client pc = { .next_seq = 0 };
		page_counts(b, atomic_load_explicit(&((struct meta_sub *)e)->page, memory_order_relaxed),
			    atomic_load_explicit(&((struct meta_sub *)e)->line, memory_order_relaxed),
			    &pc);
		if (pc.next_seq < lowest)
			lowest = pc.next_seq;
	}
	registry_trim_old(t, lowest);
}

static void handle_info(struct broker *b, struct client *c, const uint8_t *body, size_t len,
			struct proto_buf *out)
{
	char name[SEG_TOPIC_MAX], err[256];
	if (proto_decode_name(body, len, name, err, sizeof(err))) {
		reply_error(out, OP_INFO, SHMBUS_EBROKER, "%s", err);
		return;
	}
	if (check_allowed(b, c, POLICY_SUBSCRIBE, name, OP_INFO, out))
		return;
	struct topic *t = registry_find(&b->reg, name);
	if (!t) {
		reply_error(out, OP_INFO, SHMBUS_ENOTOPIC, "topic '%s' does not exist on bus '%s'",
			    name, b->reg.bus);
		return;
	}
	struct meta_header *m = t->meta;
	struct proto_info in = { .layout = t->layout };
	in.next_seq = ring_head(&(struct topic_map){ .data = t->data });
	in.broker_bytes = sizeof(*t) + t->layout.meta_size + SHMBUS_PAGE;
	/* Only the count: relaxed (the hashes are not read here). */
	in.schema_versions = atomic_load_explicit(&m->schema_versions, memory_order_relaxed);
	in.grown = t->layout.generation;
	for (uint32_t i = 0; i < SEG_MAX_PUBS; i++)
		in.n_pubs += atomic_load_explicit(&m->pubs[i].pid, memory_order_relaxed) != 0;
	for (uint32_t i = 0; i < SEG_MAX_SUBS; i++)
		in.n_subs += atomic_load_explicit(&m->subs[i].pid, memory_order_relaxed) != 0;
	size_t f = proto_frame_begin(out, OP_INFO, 0);
	proto_encode_info(out, &in);
	for (uint32_t i = 0; i < SEG_MAX_PUBS; i++) {
		struct meta_pub *e = &m->pubs[i];
		struct proto_client pc = { 0 };
		pc.pid = atomic_load_explicit(&e->pid, memory_order_relaxed);
		if (!pc.pid)
			continue;
		pc.id = atomic_load_explicit(&e->publisher_id, memory_order_relaxed);
		page_counts(b, e->page, e->line, &pc);
		pc.next_seq = 0;
		pc.rejected = 0;
		pc.waiting = 0;
		proto_encode_client(out, &pc);
	}
	for (uint32_t i = 0; i < SEG_MAX_SUBS; i++) {
		struct meta_sub *e = &m->subs[i];
		struct proto_client pc = { 0 };
		pc.pid = atomic_load_explicit(&e->pid, memory_order_relaxed);
		if (!pc.pid)
			continue;
		pc.id = i;
		page_counts(b, e->page, e->line, &pc);
		proto_encode_client(out, &pc);
	}
	proto_frame_end(out, f);
}

static void handle_remove(struct broker *b, struct client *c, const uint8_t *body, size_t len,
			  struct proto_buf *out)
{
	char name[SEG_TOPIC_MAX], err[256];
	if (proto_decode_name(body, len, name, err, sizeof(err))) {
		reply_error(out, OP_REMOVE, SHMBUS_EBROKER, "%s", err);
		return;
	}
	if (c->uid != b->uid) {
		reply_error(out, OP_REMOVE, SHMBUS_EPERM,
			    "only the bus's own user (uid %u) may remove topics; uid %u may not",
			    (unsigned)b->uid, (unsigned)c->uid);
		return;
	}
	struct topic *t = registry_find(&b->reg, name);
	if (!t) {
		reply_error(out, OP_REMOVE, SHMBUS_ENOTOPIC, "topic '%s' does not exist on bus '%s'",
			    name, b->reg.bus);
		return;
	}
	log_msg("removing topic '%s' (id %u) for pid %d", t->layout.name, t->id, (int)c->pid);
	/* Registrations of it go with it (their page lines stay taken until
	 * their clients go: the clients still write them). */
	for (size_t i = 0; i < b->n; i++)
		for (size_t k = b->clients[i]->nregs; k-- > 0;)
			if (b->clients[i]->regs[k].topic_id == t->id)
				b->clients[i]->regs[k] = b->clients[i]->regs[--b->clients[i]->nregs];
	registry_remove(&b->reg, t);
	reply_ok(out, OP_REMOVE);
}

void broker_handle_frame(struct broker *b, struct client *c, const uint8_t *frame, size_t len,
			 struct proto_buf *out, int *fds, int *nfds)
{
	struct proto_hdr h;
	const uint8_t *body = frame + sizeof(h);
	size_t blen = len - sizeof(h);

	*nfds = 0;
	memcpy(&h, frame, sizeof(h));
	if (!c->hello && h.op != OP_HELLO) {
		reply_error(out, h.op, SHMBUS_EBROKER, "say HELLO first");
		return;
	}
	switch (h.op) {
	case OP_HELLO:
		handle_hello(b, c, out, fds, nfds);
		break;
	case OP_AUTH:
		handle_auth(b, c, body, blen, out);
		break;
	case OP_OPEN:
		handle_open(b, c, body, blen, out, fds, nfds);
		break;
	case OP_CLOSE:
		handle_close(b, c, body, blen, out);
		break;
	case OP_LIST:
		handle_list(b, c, out);
		break;
	case OP_INFO:
		handle_info(b, c, body, blen, out);
		break;
	case OP_REMOVE:
		handle_remove(b, c, body, blen, out);
		break;
	case OP_GROW:
		handle_grow(b, c, body, blen, out, fds, nfds);
		break;
	case OP_REOPEN:
		handle_reopen(b, c, body, blen, out, fds, nfds);
		break;
	default:
		reply_error(out, h.op, SHMBUS_EBROKER, "unknown request %u", h.op);
	}
}

/* ------------------------------------------------------------ event loop */

/* Send what is queued; the first send of a reply carries its fds.
 * Returns false if the client must be dropped. */
static bool client_flush(struct client *c)
{
	while (c->out_off < c->out.len) {
		struct iovec iov = { c->out.data + c->out_off, c->out.len - c->out_off };
		struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
		union {
			struct cmsghdr h;
			char b[CMSG_SPACE(PROTO_MAX_FDS * sizeof(int))];
		} cbuf;
		if (c->nfds) {
			memset(&cbuf, 0, sizeof(cbuf));
			msg.msg_control = cbuf.b;
			msg.msg_controllen = CMSG_SPACE((size_t)c->nfds * sizeof(int));
			struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
			cm->cmsg_level = SOL_SOCKET;
			cm->cmsg_type = SCM_RIGHTS;
			cm->cmsg_len = CMSG_LEN((size_t)c->nfds * sizeof(int));
			memcpy(CMSG_DATA(cm), c->fds, (size_t)c->nfds * sizeof(int));
		}
		ssize_t w = sendmsg(c->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN; /* POLLOUT will resume */
		}
		drop_queued_fds(c);
		c->out_off += (size_t)w;
	}
	c->out.len = c->out_off = 0;
	return !c->out.failed;
}

/* Room for more input, bounded per user: a user cannot make the broker
 * hold more than BROKER_USER_BUFFER bytes of unfinished requests. */
static bool grow_input(struct client *c, size_t need)
{
	if (c->in_cap >= need)
		return true;
	size_t cap = c->in_cap ? c->in_cap : 4096;
	while (cap < need)
		cap *= 2;
	if (cap > sizeof(struct proto_hdr) + PROTO_MAX_BODY)
		cap = sizeof(struct proto_hdr) + PROTO_MAX_BODY;
	if (cap < need)
		return false;
	uint8_t *v = realloc(c->in, cap);
	if (!v)
		return false;
	c->in = v;
	c->in_cap = cap;
	return true;
}

/* Read what arrived and answer a complete request (one at a time: a client
 * does not get its next request read until its last reply is sent).
 * Returns false if the client must be dropped. */
static bool client_readable(struct broker *b, struct client *c)
{
	for (;;) {
		/* How much this request needs: its header, then its body. */
		size_t need = sizeof(struct proto_hdr);
		if (c->in_len >= need) {
			struct proto_hdr h;
			char err[256];
			memcpy(&h, c->in, sizeof(h));
			if (proto_check_hdr(&h, err, sizeof(err))) {
				log_user(c->uid, "dropping client pid %d: %s", (int)c->pid, err);
				reply_error(&c->out, h.op, SHMBUS_EBROKER, "%s", err);
				client_flush(c);
				return false;
			}
			need += h.len;
		}
		if (c->in_len >= need && c->out.len == 0) {
			broker_handle_frame(b, c, c->in, need, &c->out, c->fds, &c->nfds);
			c->user->buffered -= need;
			memmove(c->in, c->in + need, c->in_len - need);
			c->in_len -= need;
			c->since_ms = now_ms();
			if (!client_flush(c))
				return false;
			continue;
		}
		if (c->in_len >= need)
			return true; /* a reply is still being sent */
		if (c->user->buffered + (need - c->in_len) > BROKER_USER_BUFFER &&
		    c->uid != b->uid) {
			log_user(c->uid, "dropping client pid %d of uid %u: its unfinished requests "
					 "hold too much",
				 (int)c->pid, (unsigned)c->uid);
			return false;
		}
		if (!grow_input(c, need))
			return false;
		ssize_t r = recv(c->fd, c->in + c->in_len, need - c->in_len, MSG_DONTWAIT);
		if (r == 0)
			return false;
		if (r < 0)
			return errno == EAGAIN || errno == EINTR;
		if (c->in_len == 0)
			c->since_ms = now_ms(); /* a request starts */
		c->in_len += (size_t)r;
		c->user->buffered += (size_t)r;
	}
}

/* Refuse a connection with a reason it can read as the reply to its HELLO. */
static void refuse(int fd, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void refuse(int fd, int status, const char *fmt, ...)
{
	char msg[512];
	struct proto_buf out = { 0 };
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	size_t f = proto_frame_begin(&out, OP_HELLO, status);
	proto_put_bytes(&out, msg, strlen(msg));
	proto_frame_end(&out, f);
	if (!out.failed) {
		ssize_t w = send(fd, out.data, out.len, MSG_NOSIGNAL | MSG_DONTWAIT);
		(void)w; /* best effort: the close says the rest */
	}
	proto_buf_free(&out);
	close(fd);
}

static void accept_client(struct broker *b)
{
	int fd = accept4(b->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd < 0) {
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
			/* Out of descriptors: stop accepting for a while rather
			 * than wake up at once, over and over, to the same error. */
			if (b->accept_paused_until == 0)
				log_msg("accept: %s: pausing new connections", strerror(errno));
			b->accept_paused_until = now_ms() + 200;
		}
		return;
	}
	struct ucred cred;
	socklen_t cl = sizeof(cred);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) < 0) {
		close(fd);
		return;
	}
	/* Credentials are checked at once: a user the policy does not admit
	 * gets its reason and nothing else, not even a buffer. */
	if (!policy_admits(&b->policy, cred.uid, cred.gid)) {
		log_user(cred.uid, "refused uid %u (pid %d): not admitted", (unsigned)cred.uid,
			 (int)cred.pid);
		refuse(fd, SHMBUS_EPERM, "uid %u may not use bus '%s' of uid %u (%s)",
		       (unsigned)cred.uid, b->reg.bus, (unsigned)b->uid,
		       b->policy.n ? "no policy rule admits it" : "no policy: its own user only");
		return;
	}
	struct policy_limits lim;
	policy_limits_for(&b->policy, cred.uid, cred.gid, &lim);
	struct user_acct *u = user_of(b, cred.uid);
	if (!u || u->connections + 1 > lim.connections) {
		log_user(cred.uid, "refused uid %u (pid %d): %u connections, its limit",
			 (unsigned)cred.uid, (int)cred.pid, u ? u->connections : 0);
		refuse(fd, SHMBUS_ELIMIT, "uid %u has %u connections to bus '%s', its limit",
		       (unsigned)cred.uid, u ? u->connections : 0, b->reg.bus);
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
	struct client *c = client_new(b, fd, cred.pid, cred.uid, cred.gid);
	if (!c) {
		close(fd);
		return;
	}
	b->clients[b->n++] = c;
}

static bool reg_is(const struct reg *r, const struct topic *t, bool pub, uint32_t index)
{
	return r->topic_id == t->id && r->index == index && (r->role == ROLE_PUB) == pub;
}

static bool owned_by_client(void *ctx, const struct topic *t, bool pub, uint32_t index)
{
	struct broker *b = ctx;
	for (size_t i = 0; i < b->n; i++)
		for (size_t k = 0; k < b->clients[i]->nregs; k++)
			if (reg_is(&b->clients[i]->regs[k], t, pub, index))
				return true;
	for (size_t i = 0; i < b->n_lingers; i++)
		for (size_t k = 0; k < b->lingers[i].n; k++)
			if (reg_is(&b->lingers[i].regs[k], t, pub, index))
				return true;
	return false;
}

/* A client that has not said HELLO, or left a request half sent, for
 * BROKER_STALL_MS is gone for our purposes. */
static bool stalled(const struct client *c, int64_t now)
{
	return (!c->hello || c->in_len) && now - c->since_ms > BROKER_STALL_MS;
}

static void serve_clients(struct broker *b, const struct pollfd *pfd, size_t nclients)
{
	int64_t now = now_ms();
	for (size_t i = nclients; i-- > 0;) {
		struct client *c = b->clients[i];
		short re = pfd[i].revents;
		bool keep = true;
		if (re & POLLOUT) {
			keep = client_flush(c);
			/* Requests that arrived meanwhile wait in c->in. */
			if (keep && c->out.len == 0)
				keep = client_readable(b, c);
		} else if (re & (POLLIN | POLLHUP | POLLERR)) {
			keep = client_readable(b, c);
		}
		if (keep && stalled(c, now)) {
			log_user(c->uid, "dropping client pid %d: nothing whole from it in %d s",
				 (int)c->pid, BROKER_STALL_MS / 1000);
			keep = false;
		}
		if (!keep) {
			client_drop(b, c);
			b->clients[i] = b->clients[--b->n];
		}
	}
}

int broker_run(struct broker *b)
{
	struct pollfd *pfd = NULL;
	size_t pcap = 0;
	int64_t last_reap = 0;

	b->cap_lingers = 4096;
	b->lingers = calloc(b->cap_lingers, sizeof(*b->lingers));
	if (!b->lingers)
		b->cap_lingers = 0;
	while (!b->stop) {
		if (pcap < b->n + b->n_lingers + 3) {
			pcap = (b->n + b->n_lingers + 3) * 2;
			struct pollfd *v = realloc(pfd, pcap * sizeof(*v));
			if (!v) {
				log_msg("out of memory");
				break;
			}
			pfd = v;
		}
		int64_t now = now_ms();
		bool accepting = now >= b->accept_paused_until;
		if (accepting)
			b->accept_paused_until = 0;
		size_t nclients = b->n;
		for (size_t i = 0; i < nclients; i++) {
			struct client *c = b->clients[i];
			pfd[i] = (struct pollfd){ c->fd, c->out.len ? POLLOUT : POLLIN, 0 };
		}
		pfd[nclients] = (struct pollfd){ b->signal_fd, POLLIN, 0 };
		pfd[nclients + 1] = (struct pollfd){ b->reg.keeper, POLLIN, 0 };
		pfd[nclients + 2] = (struct pollfd){ accepting ? b->listen_fd : -1, POLLIN, 0 };
		size_t nl = b->n_lingers;
		for (size_t i = 0; i < nl; i++)
			pfd[nclients + 3 + i] = (struct pollfd){ b->lingers[i].pidfd, POLLIN, 0 };
		int r = poll(pfd, nclients + 3 + nl, accepting ? 1000 : 200);
		if (r < 0 && errno != EINTR) {
			log_msg("poll: %s", strerror(errno));
			break;
		}
		if (r > 0 && (pfd[nclients].revents & POLLIN)) {
			struct signalfd_siginfo si;
			if (read(b->signal_fd, &si, sizeof(si)) == sizeof(si))
				log_msg("signal %u: stopping", si.ssi_signo);
			b->stop = true;
			break;
		}
		if (r > 0 && pfd[nclients + 1].revents) {
			log_msg("the keeper went away; starting a new one");
			registry_rekeep(&b->reg);
		}
		for (size_t i = nl; r > 0 && i-- > 0;)
			if (pfd[nclients + 3 + i].revents)
				linger_end(b, i);
		serve_clients(b, pfd, nclients);
		if (r > 0 && (pfd[nclients + 2].revents & POLLIN))
			accept_client(b);
		now = now_ms();
		if (now - last_reap >= 1000) {
			last_reap = now;
			registry_reap(&b->reg, owned_by_client, b);
		}
	}
	free(pfd);
	broker_free(b);
	return 0;
}

void broker_free(struct broker *b)
{
	for (size_t i = 0; i < b->n; i++)
		client_drop(b, b->clients[i]);
	while (b->n_lingers)
		linger_end(b, b->n_lingers - 1);
	for (size_t i = 0; i < b->n_users; i++)
		free(b->users[i]);
	free(b->clients);
	free(b->users);
	free(b->lingers);
	b->lingers = NULL;
	b->clients = NULL;
	b->users = NULL;
	b->n = b->cap = b->n_users = b->cap_users = b->cap_lingers = 0;
}
