/*
 * hostile.c - the hostile client (see hostile.h). The one file of the
 * adversary tests that knows the broker protocol (bus/src/proto.h), the
 * shared layout (bus/src/layout.h) and how the bus's shared objects show
 * in /proc/self/maps (memfds named "shmbus:BUS:TOPIC:KIND").
 */
#include "hostile.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "layout.h"
#include "now.h"
#include "paths.h"
#include "proto.h"
#include "shmbus/shmbus.h"

/* ------------------------------------------------------------ protocol */

int hostile_connect(const char *bus, bool nonblocking)
{
	char path[PATH_BUF], err[256];
	if (bus_file(path, sizeof(path), bus, "sock", false, err, sizeof(err))) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return sock_connect(path, nonblocking ? SOCK_NONBLOCK : 0);
}

void hostile_reply_close(struct hostile_reply *r)
{
	for (int i = 0; i < r->nfds; i++)
		close(r->fds[i]);
	r->nfds = 0;
}

/* Read exactly n bytes by deadline, collecting passed descriptors.
 * 1 done, 0 closed, -1 timed out. */
static int read_exact(int fd, void *buf, size_t n, int64_t deadline_ms, struct hostile_reply *r)
{
	uint8_t *p = buf;
	while (n) {
		int64_t left = deadline_ms - now_mono_ns() / 1000000;
		struct pollfd pf = { fd, POLLIN, 0 };
		int pr = poll(&pf, 1, left > 0 ? (int)left : 0);
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr <= 0)
			return -1;
		union {
			struct cmsghdr h;
			char b[CMSG_SPACE(HOSTILE_MAX_FDS * sizeof(int))];
		} cbuf;
		struct iovec iov = { p, n };
		struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf.b,
				      .msg_controllen = sizeof(cbuf.b) };
		ssize_t got = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
		if (got < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (got <= 0)
			return 0;
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
			if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
				continue;
			size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			for (size_t i = 0; i < k; i++) {
				int d;
				memcpy(&d, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
				if (r->nfds < HOSTILE_MAX_FDS)
					r->fds[r->nfds++] = d;
				else
					close(d);
			}
		}
		p += got;
		n -= (size_t)got;
	}
	return 1;
}

int hostile_read_reply(int fd, int timeout_ms, struct hostile_reply *r)
{
	struct proto_hdr h;
	int64_t deadline = now_mono_ns() / 1000000 + timeout_ms;
	memset(r, 0, sizeof(*r));
	int rc = read_exact(fd, &h, sizeof(h), deadline, r);
	if (rc <= 0)
		return rc;
	r->status = h.status;
	if (h.len > 1u << 20)
		return 0; /* not a reply this client would buffer */
	uint8_t *body = malloc(h.len + 1);
	if (!body)
		return 0;
	rc = read_exact(fd, body, h.len, deadline, r);
	if (rc > 0 && h.status < 0) {
		size_t k = h.len < sizeof(r->why) - 1 ? h.len : sizeof(r->why) - 1;
		memcpy(r->why, body, k);
		r->why[k] = '\0';
	}
	free(body);
	return rc;
}

static int send_frame(int fd, struct proto_buf *b)
{
	int rc = b->failed ? -1 : 0;
	for (size_t off = 0; rc == 0 && off < b->len;) {
		/* A nonblocking socket that is full fails here: not waited for. */
		ssize_t w = send(fd, b->data + off, b->len - off, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			rc = -1;
		else
			off += (size_t)w;
	}
	proto_buf_free(b);
	return rc;
}

int hostile_send_hello(int fd)
{
	struct proto_buf b = { 0 };
	size_t f = proto_frame_begin(&b, OP_HELLO, 0);
	proto_put_u32(&b, PROTO_VERSION);
	proto_frame_end(&b, f);
	return send_frame(fd, &b);
}

int hostile_hello(int fd, int timeout_ms, struct hostile_reply *r)
{
	if (hostile_send_hello(fd) < 0)
		return SHMBUS_EBROKER;
	return hostile_read_reply(fd, timeout_ms, r) == 1 ? r->status : SHMBUS_EBROKER;
}

int hostile_open(int fd, const struct hostile_open *o, struct hostile_reply *r)
{
	static const uint32_t role[] = { ROLE_PUB, ROLE_SUB, ROLE_SUB };
	/* The broker answers nothing before HELLO: say it (its objects, the
	 * bus page and the wake board, are mapped like any others). */
	struct hostile_reply hr;
	if (hostile_hello(fd, 10000, &hr) != 0) {
		*r = hr;
		return hr.status ? hr.status : SHMBUS_EBROKER;
	}
	hostile_map_reply(&hr);
	hostile_reply_close(&hr);
	struct proto_open po = {
		.role = role[o->role],
		.create = o->create,
		.slot_count = o->slot_count,
		.max_message_size = o->max_message_size,
		.flags = o->flags,
		.topic = o->topic,
		.topic_len = (uint32_t)strlen(o->topic),
		.type_name = o->type_name,
		.type_len = o->type_name ? (uint32_t)strlen(o->type_name) : PROTO_ANY_TYPE,
		.schema = o->schema,
		.schema_len = (uint32_t)o->schema_size,
	};
	struct proto_buf b = { 0 };
	size_t f = proto_frame_begin(&b, OP_OPEN, 0);
	proto_encode_open(&b, &po);
	proto_frame_end(&b, f);
	memset(r, 0, sizeof(*r));
	if (send_frame(fd, &b) < 0)
		return SHMBUS_EBROKER;
	return hostile_read_reply(fd, 10000, r) == 1 ? r->status : SHMBUS_EBROKER;
}

int hostile_send_partial(int fd, uint32_t claimed, size_t sent)
{
	struct proto_hdr h = { PROTO_MAGIC, PROTO_VERSION, OP_OPEN, 0, claimed };
	struct proto_buf b = { 0 };
	proto_put_bytes(&b, &h, sizeof(h));
	uint8_t zero[4096] = { 0 };
	for (size_t k = 0; k < sent; k += sizeof(zero))
		proto_put_bytes(&b, zero, sent - k < sizeof(zero) ? sent - k : sizeof(zero));
	return send_frame(fd, &b);
}

int hostile_send_garbage(int fd)
{
	struct proto_hdr h = { 0x6b6e756a, 1, OP_HELLO, 0, 0 }; /* "junk" */
	struct proto_buf b = { 0 };
	proto_put_bytes(&b, &h, sizeof(h));
	return send_frame(fd, &b);
}

void hostile_upgrades(const struct hostile_reply *r, int *resized, int *reopened)
{
	*resized = *reopened = 0;
	for (int i = 0; i < r->nfds; i++) {
		struct stat st;
		if (fstat(r->fds[i], &st) < 0)
			continue;
		*resized += ftruncate(r->fds[i], 0) == 0;
		*resized += ftruncate(r->fds[i], st.st_size * 2 + 4096) == 0;
		int fl = fcntl(r->fds[i], F_GETFL);
		if (fl >= 0 && (fl & O_ACCMODE) == O_RDONLY) {
			char path[64];
			snprintf(path, sizeof(path), "/proc/self/fd/%d", r->fds[i]);
			int w = open(path, O_RDWR | O_CLOEXEC);
			if (w >= 0) {
				(*reopened)++;
				close(w);
			}
		}
	}
}

/* ------------------------------------------------------------ mappings */

bool hostile_fd_writable(int fd)
{
	struct stat st;
	int fl = fcntl(fd, F_GETFL);
	if (fl >= 0 && (fl & O_ACCMODE) != O_RDONLY)
		return true;
	if (fstat(fd, &st) < 0 || st.st_size <= 0)
		return false;
	void *p = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		return false;
	munmap(p, (size_t)st.st_size);
	return true;
}

size_t hostile_map_reply(const struct hostile_reply *r)
{
	size_t n = 0;
	for (int i = 0; i < r->nfds; i++) {
		struct stat st;
		if (fstat(r->fds[i], &st) < 0 || st.st_size <= 0)
			continue;
		void *p = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED,
			       r->fds[i], 0);
		if (p == MAP_FAILED)
			p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, r->fds[i], 0);
		n += p != MAP_FAILED;
	}
	return n;
}

size_t hostile_maps(struct hostile_map *out, size_t cap)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	size_t n = 0;
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;
		char perms[8], path[300] = "";
		if (sscanf(line, "%lx-%lx %7s %*s %*s %*s %299s", &lo, &hi, perms, path) < 3 ||
		    !strstr(path, "/memfd:shmbus:"))
			continue;
		if (n < cap) {
			out[n].addr = (uint8_t *)lo;
			out[n].len = hi - lo;
			out[n].writable = perms[1] == 'w';
			snprintf(out[n].path, sizeof(out[n].path), "%s", path);
		}
		n++;
	}
	fclose(f);
	return n;
}

#define MAX_MAPS 256

void hostile_unmap_all(void)
{
	struct hostile_map m[MAX_MAPS];
	size_t n = hostile_maps(m, MAX_MAPS);
	for (size_t i = 0; i < n && i < MAX_MAPS; i++)
		munmap(m[i].addr, m[i].len);
}

static size_t writable_maps(struct hostile_map *m)
{
	size_t n = hostile_maps(m, MAX_MAPS), k = 0;
	if (n > MAX_MAPS)
		n = MAX_MAPS;
	for (size_t i = 0; i < n; i++)
		if (m[i].writable)
			m[k++] = m[i];
	return k;
}

size_t hostile_scribble(uint8_t byte)
{
	struct hostile_map m[MAX_MAPS];
	size_t n = writable_maps(m), bytes = 0;
	for (size_t i = 0; i < n; i++) {
		memset(m[i].addr, byte, m[i].len);
		bytes += m[i].len;
	}
	return bytes;
}

size_t hostile_scribble_random(uint64_t *seed)
{
	struct hostile_map m[MAX_MAPS];
	size_t n = writable_maps(m), bytes = 0;
	for (size_t i = 0; i < n; i++) {
		for (size_t k = 0; k + 8 <= m[i].len; k += 8) {
			/* xorshift64 */
			*seed ^= *seed << 13;
			*seed ^= *seed >> 7;
			*seed ^= *seed << 17;
			memcpy(m[i].addr + k, seed, 8);
		}
		bytes += m[i].len;
	}
	return bytes;
}

size_t hostile_scribble_lines(uint32_t word)
{
	struct hostile_map m[MAX_MAPS];
	size_t n = writable_maps(m), bytes = 0;
	for (size_t i = 0; i < n; i++) {
		memset(m[i].addr, 0, m[i].len);
		for (size_t k = 0; k + 64 <= m[i].len; k += 64)
			memcpy(m[i].addr + k, &word, sizeof(word));
		bytes += m[i].len;
	}
	return bytes;
}

size_t hostile_replace(const void *from, const void *to, size_t n)
{
	struct hostile_map m[MAX_MAPS];
	size_t k = writable_maps(m), count = 0;
	for (size_t i = 0; i < k; i++) {
		uint8_t *p = m[i].addr, *end = m[i].addr + m[i].len;
		while (p + n <= end && (p = memmem(p, (size_t)(end - p), from, n))) {
			memcpy(p, to, n);
			p += n;
			count++;
		}
	}
	return count;
}

/* ------------------------------------- what only the layout tells */

/* A mapping of the topic's object of this kind ("data", "meta"): the memfd
 * is named "shmbus:BUS:TOPIC:KIND". */
static bool object_of(const char *topic, const char *kind, bool writable,
		      struct hostile_map *out)
{
	struct hostile_map m[MAX_MAPS];
	char tail[300];
	snprintf(tail, sizeof(tail), ":%s:%s", topic, kind);
	size_t n = hostile_maps(m, MAX_MAPS);
	for (size_t i = 0; i < n && i < MAX_MAPS; i++) {
		size_t len = strlen(m[i].path), tl = strlen(tail);
		if ((!writable || m[i].writable) && len > tl &&
		    strcmp(m[i].path + len - tl, tail) == 0) {
			*out = m[i];
			return true;
		}
	}
	return false;
}

bool hostile_topic_data(const char *topic, struct hostile_map *out)
{
	return object_of(topic, "data", true, out);
}

/* The layout the topic's meta says (the meta is the broker's: readable). */
static const struct meta_header *meta_of(const char *topic)
{
	struct hostile_map m;
	if (!object_of(topic, "meta", false, &m) || m.len < sizeof(struct meta_header))
		return NULL;
	return (const struct meta_header *)m.addr;
}

static struct slot_header *slot_of(const struct hostile_map *m, const struct meta_header *h,
				   uint64_t seq)
{
	return (struct slot_header *)(m->addr + DATA_SLOTS_OFFSET +
				      (size_t)(seq & (h->slot_count - 1)) * h->slot_size);
}

static _Atomic uint64_t *counter_of(const struct hostile_map *m)
{
	return &((struct data_header *)m->addr)->next_seq;
}

int hostile_claim_seq(const char *topic, uint64_t *seq)
{
	struct hostile_map m;
	if (!hostile_topic_data(topic, &m))
		return -1;
	*seq = atomic_fetch_add(counter_of(&m), 1);
	return 0;
}

int hostile_set_counter(const char *topic, uint64_t next)
{
	struct hostile_map m;
	if (!hostile_topic_data(topic, &m))
		return -1;
	atomic_store(counter_of(&m), next);
	return 0;
}

int hostile_set_publisher_id(const char *topic, uint64_t seq, uint32_t id)
{
	struct hostile_map m;
	const struct meta_header *h = meta_of(topic);
	if (!h || !hostile_topic_data(topic, &m))
		return -1;
	struct slot_header *s = slot_of(&m, h, seq);
	if (SLOT_SEQ(atomic_load(&s->state)) != seq)
		return -1;
	atomic_store(&s->publisher_id, id);
	return 0;
}

int hostile_publish_raw(const char *topic, const void *payload, size_t len, uint32_t size,
			uint64_t *seq)
{
	struct hostile_map m;
	const struct meta_header *h = meta_of(topic);
	if (!h || !hostile_topic_data(topic, &m))
		return -1;
	struct data_header *d = (struct data_header *)m.addr;
	uint64_t n = atomic_fetch_add(&d->next_seq, 1);
	struct slot_header *s = slot_of(&m, h, n);
	size_t room = h->slot_size - sizeof(*s);
	memcpy(s + 1, payload, len < room ? len : room);
	atomic_store(&s->size, size);
	atomic_store(&s->publish_ns, now_real_ns());
	atomic_store(&s->state, SLOT_STATE(n, 0));
	/* Wake every sleeper whatever the board says: its epoch is on the
	 * topic's line of the wake board ("shmbus:BUS:-:board"). */
	struct hostile_map board;
	if (object_of("-", "board", true, &board) &&
	    (size_t)(h->board_line + 1) * sizeof(struct board_line) <= board.len) {
		struct board_line *l = (struct board_line *)board.addr + h->board_line;
		atomic_fetch_add(&l->epoch, 1);
		syscall(SYS_futex, &l->epoch, FUTEX_WAKE, INT32_MAX, NULL, NULL, 0);
	}
	if (seq)
		*seq = n;
	return 0;
}

size_t hostile_reseal(void)
{
	/* The layout keeps no header a client can write: nothing a writer
	 * could reseal after rewriting it. */
	return 0;
}

static int count_topic(void *ctx, const char *topic, const char *type_name)
{
	(void)topic;
	(void)type_name;
	(*(int *)ctx)++;
	return 0;
}

int hostile_bus_files(const char *bus)
{
	/* Topics are memfds its keeper holds, named by nothing another bus
	 * could match: what the bus holds is what its broker lists. */
	struct shmbus_connect_options o;
	shmbus_bus *b;
	int n = 0;
	shmbus_connect_options_init(&o);
	o.autostart = false;
	if (shmbus_connect(bus, &o, &b))
		return 0;
	shmbus_list_topics(b, count_topic, &n);
	shmbus_disconnect(b);
	return n;
}
