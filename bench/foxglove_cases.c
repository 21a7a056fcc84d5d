/*
 * foxglove_cases.c - what shmbus-foxglove adds between a publisher and a
 * local Foxglove client, against a direct bus subscriber in the same run:
 *
 *   fox_lat       one-way latency, publish -> server -> WebSocket client
 *   fox_base_lat  the same publisher and message to a subscriber asleep in
 *                 shmbus_sub_wait (its floor)
 *   fox_tput      messages per second delivered to the WebSocket client,
 *                 the publisher sending as fast as it can (the server drops
 *                 what it cannot pass on: counted)
 *   fox_base_tput the same to a subscriber in shmbus_sub_wait (its floor)
 *
 * at 64 B and 1 MiB. The server (found next to this program in the build
 * tree, or $SHMBUS_FOXGLOVE) runs on the bench's bus, pinned to core B with
 * the client or subscriber; the publisher runs on core A. The client is a
 * minimal WebSocket client of our own (the handshake, one subscribe, frame
 * parsing), so that it costs as little as a client can; messages are of a
 * declared protobuf type, bench.Blob { bytes data = 1; }, with the send
 * time and a sequence number at the start of data, published with
 * shmbus_pub_send (copied in whole).
 */
#include "bench.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <shmbus/shmbus.h>

#define FOX_TIMEOUT_NS (10 * (int64_t)1000000000)
#define FOX_PER_PASS_MAX 20000
#define FOX_SUB_ID 7
/* bench.Blob's data field: tag, then its length as a 5-byte varint (a
 * fixed header whatever the size), then send time and sequence number. */
#define FOX_HDR 6
#define FOX_STAMP_AT 8
#define FOX_SEQ_AT 16
/* Which run of a case sent it: a topic keeps its messages from one round
 * to the next, and a new subscriber is first given the newest. */
#define FOX_RUN_AT 24

/* FileDescriptorSet of bench.proto (protoc 3.21's output): package bench;
 * message Blob { bytes data = 1; }, proto3. */
static const unsigned char blob_fds[] = {
	0x0a, 0x38, 0x0a, 0x0b, 'b', 'e', 'n', 'c', 'h', '.', 'p', 'r', 'o', 't', 'o',
	0x12, 0x05, 'b', 'e', 'n', 'c', 'h',
	0x22, 0x1a, 0x0a, 0x04, 'B', 'l', 'o', 'b',
	0x12, 0x12, 0x0a, 0x04, 'd', 'a', 't', 'a', 0x18, 0x01, 0x20, 0x01, 0x28, 0x0c,
	0x52, 0x04, 'd', 'a', 't', 'a',
	0x62, 0x06, 'p', 'r', 'o', 't', 'o', '3',
};

static pid_t server_pid = -1;
static int server_port;
static char server_path[PATH_MAX];

static uint64_t run_id; /* this run of a case */

static const char *json_str(const json_t *obj, const char *key)
{
	const char *s = json_string_value(json_object_get(obj, key));

	return s ? s : "";
}

static int64_t rd64(const unsigned char *p)
{
	int64_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

/* ------------------------------------------------- a WebSocket client */

struct ws {
	int fd;
	unsigned char *buf;
	size_t off, len, cap; /* unparsed bytes: buf[off, len) */
	/* The payload of the last complete frame, inside buf. */
	const unsigned char *msg;
	size_t msg_len;
	int opcode;
	size_t consumed;
};

static int ws_send_text(struct ws *w, const char *text)
{
	size_t n = strlen(text), h = 0;
	unsigned char hdr[14], mask[4] = { 0x12, 0x34, 0x56, 0x78 };
	unsigned char *out;
	ssize_t r;

	hdr[h++] = 0x81;
	if (n < 126) {
		hdr[h++] = (unsigned char)(0x80 | n);
	} else {
		hdr[h++] = 0x80 | 126;
		hdr[h++] = (unsigned char)(n >> 8);
		hdr[h++] = (unsigned char)n;
	}
	memcpy(hdr + h, mask, 4);
	h += 4;
	out = malloc(h + n);
	if (!out)
		return -1;
	memcpy(out, hdr, h);
	for (size_t i = 0; i < n; i++)
		out[h + i] = (unsigned char)text[i] ^ mask[i % 4];
	r = send(w->fd, out, h + n, MSG_NOSIGNAL);
	free(out);
	return r == (ssize_t)(h + n) ? 0 : -1;
}

/* A complete frame at buf + off: 1 (msg, msg_len, opcode set), 0 not
 * yet. */
static int ws_parse(struct ws *w)
{
	size_t need = 2, n, have = w->len - w->off;
	const unsigned char *p = w->buf + w->off;

	if (have < need)
		return 0;
	n = p[1] & 0x7f;
	if (n == 126) {
		need += 2;
		if (have < need)
			return 0;
		n = (size_t)p[2] << 8 | p[3];
	} else if (n == 127) {
		need += 8;
		if (have < need)
			return 0;
		n = 0;
		for (int i = 0; i < 8; i++)
			n = n << 8 | p[2 + i];
	}
	if (have < need + n)
		return 0;
	w->opcode = p[0] & 0x0f;
	w->msg = p + need;
	w->msg_len = n;
	w->consumed = need + n;
	return 1;
}

/* Room to read into: move what is left to the front (once per buffer's
 * worth, not per frame), and grow for a frame larger than the buffer. */
static int ws_room(struct ws *w)
{
	if (w->off && (w->off > w->cap / 2 || w->cap - w->len < 65536)) {
		memmove(w->buf, w->buf + w->off, w->len - w->off);
		w->len -= w->off;
		w->off = 0;
	}
	if (w->cap - w->len < 65536) {
		size_t cap = w->cap * 2;
		unsigned char *b = realloc(w->buf, cap);

		if (!b)
			return -1;
		w->buf = b;
		w->cap = cap;
	}
	return 0;
}

/* Drop the frame returned last, then return the next one: 1 a frame, 0
 * none yet (non-blocking), -1 error. */
static int ws_next(struct ws *w, bool block)
{
	w->off += w->consumed;
	w->consumed = 0;
	for (;;) {
		ssize_t r;

		if (ws_parse(w))
			return 1;
		if (ws_room(w) != 0)
			return -1;
		r = recv(w->fd, w->buf + w->len, w->cap - w->len, block ? 0 : MSG_DONTWAIT);
		if (r > 0) {
			w->len += (size_t)r;
			continue;
		}
		if (r < 0 && !block && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (r < 0 && errno == EINTR)
			continue;
		return -1;
	}
}

/* The next text frame's JSON (blocking). */
static json_t *ws_next_json(struct ws *w)
{
	while (ws_next(w, true) == 1)
		if (w->opcode == 1)
			return json_loadb((const char *)w->msg, w->msg_len, 0, NULL);
	return NULL;
}

/* Connect, find the topic's channel, subscribe, and wait until the server
 * has handled the subscription (it answers an unsubscribe of an unknown
 * id with a status, in order). */
static int ws_open(struct ws *w, const char *topic)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)server_port) };
	char req[512];
	long chan = -1;
	int one = 1;

	memset(w, 0, sizeof(*w));
	w->cap = 1 << 20;
	w->buf = malloc(w->cap);
	w->fd = socket(AF_INET, SOCK_STREAM, 0);
	if (!w->buf || w->fd < 0)
		return -1;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(w->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(w->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
		return -1;
	snprintf(req, sizeof(req),
		 "GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
		 "Connection: Upgrade\r\nSec-WebSocket-Key: c2htYnVzLWJlbmNoLWtleQ==\r\n"
		 "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: foxglove.websocket.v1\r\n\r\n",
		 server_port);
	if (send(w->fd, req, strlen(req), MSG_NOSIGNAL) != (ssize_t)strlen(req))
		return -1;
	/* The 101 response, up to its blank line. */
	for (;;) {
		ssize_t r = recv(w->fd, w->buf + w->len, w->cap - w->len - 1, 0);
		char *end;

		if (r <= 0)
			return -1;
		w->len += (size_t)r;
		w->buf[w->len] = 0;
		end = strstr((char *)w->buf, "\r\n\r\n");
		if (!end)
			continue;
		if (strncmp((char *)w->buf, "HTTP/1.1 101", 12) != 0)
			return -1;
		w->off = (size_t)(end + 4 - (char *)w->buf);
		break;
	}
	while (chan < 0) {
		json_t *j = ws_next_json(w), *ch;
		size_t i;

		if (!j)
			return -1;
		if (strcmp(json_str(j, "op"), "advertise") == 0)
			json_array_foreach(json_object_get(j, "channels"), i, ch)
				if (strcmp(json_str(ch, "topic"), topic) == 0)
					chan = (long)json_integer_value(json_object_get(ch, "id"));
		json_decref(j);
	}
	snprintf(req, sizeof(req),
		 "{\"op\":\"subscribe\",\"subscriptions\":[{\"id\":%d,\"channelId\":%ld}]}", FOX_SUB_ID,
		 chan);
	if (ws_send_text(w, req) != 0 ||
	    ws_send_text(w, "{\"op\":\"unsubscribe\",\"subscriptionIds\":[4000000000]}") != 0)
		return -1;
	for (;;) {
		json_t *j = ws_next_json(w);
		bool status;

		if (!j)
			return -1;
		status = strcmp(json_str(j, "op"), "status") == 0;
		json_decref(j);
		if (status)
			return 0;
	}
}

static void ws_close(struct ws *w)
{
	if (w->fd >= 0)
		close(w->fd);
	free(w->buf);
	w->buf = NULL;
}

/* The next messageData's payload (skipping anything else). */
static int ws_next_data(struct ws *w, bool block, const unsigned char **payload, size_t *n)
{
	for (;;) {
		int r = ws_next(w, block);

		if (r != 1)
			return r;
		if (w->opcode == 2 && w->msg_len >= 13 + FOX_RUN_AT + 8 && w->msg[0] == 1 &&
		    (uint64_t)rd64(w->msg + 13 + FOX_RUN_AT) == run_id) {
			*payload = w->msg + 13;
			*n = w->msg_len - 13;
			return 1;
		}
	}
}

/* --------------------------------------------------------- the server */

static bool find_server(void)
{
	const char *env = getenv("SHMBUS_FOXGLOVE");
	char exe[PATH_MAX];
	ssize_t n;

	if (env) {
		snprintf(server_path, sizeof(server_path), "%s", env);
		return access(server_path, X_OK) == 0;
	}
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return false;
	exe[n] = 0;
	*strrchr(exe, '/') = 0; /* build/bench */
	if (strlen(exe) + sizeof("/../foxglove/shmbus-foxglove") > sizeof(server_path))
		return false;
	snprintf(server_path, sizeof(server_path), "%.*s/../foxglove/shmbus-foxglove",
		 (int)(sizeof(server_path) - sizeof("/../foxglove/shmbus-foxglove")), exe);
	return access(server_path, X_OK) == 0;
}

const char *bench_foxglove_unavailable(void)
{
	return find_server() ? NULL : "shmbus-foxglove is not built (libwebsockets missing)";
}

int bench_foxglove_begin(void)
{
	int out[2];
	char line[512], *port;
	FILE *f;

	if (pipe(out) != 0)
		return -1;
	server_pid = fork();
	if (server_pid == 0) {
		int null = open("/dev/null", O_WRONLY);

		/* With the client (core B): the publisher has core A to itself,
		 * as a camera driver would, and the server's copy of a message
		 * is not preempted by the publisher overwriting it. */
		bench_pin(bench_cfg.cpu_b);
		dup2(out[1], 1);
		if (null >= 0)
			dup2(null, 2);
		close(out[0]);
		execl(server_path, server_path, "--bus", bench_cfg.bus_name, "--port", "0",
		      (char *)NULL);
		_exit(127);
	}
	close(out[1]);
	f = fdopen(out[0], "r");
	if (server_pid < 0 || !f || !fgets(line, sizeof(line), f) ||
	    !(port = strstr(line, "listening on ws://")) || !(port = strrchr(port, ':'))) {
		bench_fail("foxglove", "%s did not start", server_path);
		if (f)
			fclose(f);
		return -1;
	}
	server_port = atoi(port + 1);
	fclose(f);
	return 0;
}

void bench_foxglove_end(void)
{
	if (server_pid > 0) {
		kill(server_pid, SIGTERM);
		waitpid(server_pid, NULL, 0);
	}
	server_pid = -1;
}

/* ---------------------------------------------------------- the cases */

/* The bench topics: bench.Blob messages of `size` bytes in `slots`. */
static void blob_topic(struct shmbus_topic_options *t, size_t size, uint32_t slots)
{
	shmbus_topic_options_init(t);
	t->slot_count = slots;
	t->max_message_size = (uint32_t)size;
	t->type_name = "bench.Blob";
	t->schema = blob_fds;
	t->schema_size = sizeof(blob_fds);
}

static int open_pub(const char *topic, size_t size, uint32_t slots, shmbus_bus **bus,
		    shmbus_pub **pub)
{
	struct shmbus_topic_options t;

	blob_topic(&t, size, slots);
	if (shmbus_connect(bench_cfg.bus_name, NULL, bus) != 0)
		return -1;
	if (shmbus_pub_open(*bus, topic, &t, NULL, pub) != 0) {
		shmbus_disconnect(*bus);
		return -1;
	}
	return 0;
}

/* A bench.Blob of `size` bytes, copied in whole (as a camera's frame is
 * written whole): header, send time, sequence number, run, then filler.
 * Writing only the header would let the publisher lap the ring far faster
 * than any real one and overwrite every message while the server copies
 * it. */
static int publish(shmbus_pub *pub, size_t size, uint64_t seq)
{
	static unsigned char *msg;
	static size_t msg_size;
	size_t len = size - FOX_HDR;
	int64_t now;

	if (msg_size < size) {
		free(msg);
		msg = malloc(size);
		if (!msg)
			return -1;
		msg_size = size;
		memset(msg, 0x5a, size);
	}
	msg[0] = 0x0a;
	for (int i = 0; i < 5; i++)
		msg[1 + i] = (unsigned char)((len >> (7 * i)) & 0x7f) | (i < 4 ? 0x80 : 0);
	memcpy(msg + FOX_SEQ_AT, &seq, sizeof(seq));
	memcpy(msg + FOX_RUN_AT, &run_id, sizeof(run_id));
	now = now_mono_ns();
	memcpy(msg + FOX_STAMP_AT, &now, sizeof(now));
	return shmbus_pub_send(pub, msg, size, NULL) == 0 ? 0 : -1;
}

/* A receiver for either path: the WebSocket client or a bus subscriber. */
struct rx {
	bool ws_path;
	struct ws w;
	shmbus_bus *bus;
	shmbus_sub *sub;
	uint64_t received, next_seq;
};

static int rx_open(struct rx *r, bool ws_path, const char *topic, size_t size, uint32_t slots)
{
	struct shmbus_topic_options t;
	struct shmbus_sub_options so;

	memset(r, 0, sizeof(*r));
	r->ws_path = ws_path;
	r->w.fd = -1;
	if (ws_path)
		return ws_open(&r->w, topic);
	blob_topic(&t, size, slots);
	shmbus_sub_options_init(&so);
	so.create_if_missing = true;
	so.spin_ns = 0;
	if (shmbus_connect(bench_cfg.bus_name, NULL, &r->bus) != 0)
		return -1;
	return shmbus_sub_open(r->bus, topic, &t, &so, &r->sub) == 0 ? 0 : -1;
}

static void rx_close(struct rx *r)
{
	if (r->ws_path) {
		ws_close(&r->w);
		return;
	}
	shmbus_sub_close(r->sub);
	shmbus_disconnect(r->bus);
}

/* One message: 1 (its send time and sequence number), 0 none (when not
 * blocking), -1 error. The bus path views in place and reads only the
 * header, as a zero-copy subscriber would. */
static int rx_one(struct rx *r, bool block, int64_t *sent, uint64_t *seq)
{
	const unsigned char *p;
	size_t n;

	if (r->ws_path) {
		int rc = ws_next_data(&r->w, block, &p, &n);

		if (rc != 1)
			return rc;
		*sent = rd64(p + FOX_STAMP_AT);
		memcpy(seq, p + FOX_SEQ_AT, sizeof(*seq));
	} else {
		struct shmbus_view v;
		int rc;

		while ((rc = shmbus_sub_view(r->sub, &v)) == SHMBUS_EAGAIN) {
			if (!block)
				return 0;
			if ((rc = shmbus_sub_wait(r->sub, FOX_TIMEOUT_NS)) != 0)
				return -1;
		}
		if (rc != 0)
			return -1;
		*sent = rd64((const unsigned char *)v.data + FOX_STAMP_AT);
		memcpy(seq, (const unsigned char *)v.data + FOX_SEQ_AT, sizeof(*seq));
		rc = (uint64_t)rd64((const unsigned char *)v.data + FOX_RUN_AT) == run_id;
		if (shmbus_sub_release(r->sub, &v) != 0 || !rc)
			return rx_one(r, block, sent, seq); /* overwritten or old: the next */
	}
	r->received++;
	r->next_seq = *seq + 1;
	return 1;
}

/* ----------------------------------------------------- one-way latency */

struct lat_shared {
	struct bench_barrier barrier;
	/* The receiver adds one per message (release, after recording) and
	 * wakes the publisher, which sleeps on it (acquire): core A is idle
	 * between messages. */
	_Alignas(BENCH_CACHE_LINE) _Atomic uint32_t acks;
	uint64_t count;
};

struct lat {
	const char *name;
	bool ws_path;
	char topic[96];
	size_t size;
	struct lat_shared *sh;
	int64_t *lat;
	uint8_t *pass;
	size_t cap;
};

static int lat_receiver(void *arg, int index)
{
	struct lat *l = arg;
	struct rx r;
	uint64_t n = 0;
	int rc = -1;

	(void)index;
	if (rx_open(&r, l->ws_path, l->topic, l->size, 8) != 0) {
		bench_fail(l->name, "cannot open the receiver");
		bench_barrier_break(&l->sh->barrier);
		rx_close(&r);
		return -1;
	}
	if (bench_barrier_wait(&l->sh->barrier) != 0)
		goto out;
	for (;;) {
		int64_t sent, now;
		uint64_t seq;

		if (rx_one(&r, true, &sent, &seq) != 1) {
			bench_fail(l->name, "receive failed");
			goto out;
		}
		now = now_mono_ns();
		if (seq == UINT64_MAX)
			break; /* the end */
		if (n < l->cap) {
			l->lat[n] = now - sent;
			l->pass[n] = (uint8_t)(seq >> 48);
			n++;
		}
		atomic_fetch_add_explicit(&l->sh->acks, 1, memory_order_release);
		bench_futex_wake(&l->sh->acks, 1);
	}
	l->sh->count = n;
	rc = 0;
out:
	rx_close(&r);
	return rc;
}

static int lat_await(struct lat *l, uint32_t want)
{
	int64_t deadline = now_mono_ns() + FOX_TIMEOUT_NS;
	uint32_t v;

	/* Acquire pairs with the receiver's release add. */
	while ((v = atomic_load_explicit(&l->sh->acks, memory_order_acquire)) < want) {
		if (now_mono_ns() > deadline)
			return -1;
		bench_futex_wait(&l->sh->acks, v, FOX_TIMEOUT_NS);
	}
	return 0;
}

static int run_latency(bool ws_path, size_t size)
{
	struct lat l = { .name = ws_path ? "fox_lat" : "fox_base_lat", .ws_path = ws_path,
			 .size = size };
	size_t per_pass = bench_cfg.smoke ? 20 : FOX_PER_PASS_MAX;
	struct bench_samples s = { 0 };
	shmbus_bus *bus = NULL;
	shmbus_pub *pub = NULL;
	uint32_t sent = 0;
	pid_t pid;
	int rc = -1;

	run_id = (uint64_t)now_mono_ns();
	l.cap = per_pass * (size_t)(bench_cfg.passes + 1);
	snprintf(l.topic, sizeof(l.topic), "bench/%s/%zu", l.name, size);
	l.sh = bench_shm_alloc(sizeof(*l.sh));
	l.lat = bench_shm_alloc(l.cap * sizeof(int64_t));
	l.pass = bench_shm_alloc(l.cap);
	if (!l.sh || !l.lat || !l.pass || bench_samples_init(&s, l.cap) != 0 ||
	    open_pub(l.topic, size, 8, &bus, &pub) != 0) {
		bench_fail(l.name, "setup failed");
		goto out;
	}
	bench_barrier_init(&l.sh->barrier, 2);
	bench_pin(bench_cfg.cpu_a);
	if (bench_spawn(1, &bench_cfg.cpu_b, lat_receiver, &l, &pid) != 0) {
		bench_fail(l.name, "fork failed");
		goto out;
	}
	if (bench_barrier_wait(&l.sh->barrier) != 0)
		goto stop;
	for (int p = 0; p <= bench_cfg.passes; p++) {
		int64_t t0 = now_mono_ns(), dur = p == 0 ? bench_cfg.warmup_ns : bench_cfg.pass_ns;
		size_t k = 0;

		do {
			if (publish(pub, size, (uint64_t)p << 48 | sent) != 0 ||
			    lat_await(&l, ++sent) != 0) {
				bench_fail(l.name, "no answer to message %u", sent);
				goto stop;
			}
			/* Let every process fall asleep again: each sample
			 * includes the wake-ups, as a camera frame's would. */
			bench_spin_ns(BENCH_WAKE_GAP_NS);
		} while (++k < per_pass && (now_mono_ns() - t0 < dur || k < 3));
	}
	rc = 0;
stop:
	if (publish(pub, size, UINT64_MAX) != 0)
		rc = -1;
	if (bench_reap(1, &pid, FOX_TIMEOUT_NS) != 0)
		rc = -1;
	if (rc == 0) {
		for (int p = 1; p <= bench_cfg.passes; p++) {
			size_t from = s.n;

			for (uint64_t j = 0; j < l.sh->count; j++)
				if (l.pass[j] == p)
					s.v[s.n++] = l.lat[j];
			bench_samples_end_pass(&s, from);
		}
		struct bench_row *r = bench_row_latency(l.name, size, &s);

		if (ws_path) {
			bench_row_set_floor(r, "fox_base_lat", size);
			snprintf(r->note, sizeof(r->note),
				 "publish -> shmbus-foxglove -> WebSocket client, one way");
		} else {
			snprintf(r->note, sizeof(r->note),
				 "publish -> subscriber in shmbus_sub_wait, one way, same publisher");
		}
	}
out:
	if (pub)
		shmbus_pub_close(pub);
	if (bus)
		shmbus_disconnect(bus);
	bench_samples_free(&s);
	bench_shm_free(l.sh, sizeof(*l.sh));
	bench_shm_free(l.lat, l.cap * sizeof(int64_t));
	bench_shm_free(l.pass, l.cap);
	return rc;
}

/* ---------------------------------------------------------- throughput */

struct tput {
	const char *name;
	bool ws_path;
	char topic[96];
	size_t size;
	uint32_t slots;
	/* Per process after fork. */
	shmbus_bus *bus;
	shmbus_pub *pub;
	struct rx r;
	uint64_t seq;
};

static int tput_setup(void *ctx, int role, int index)
{
	struct tput *t = ctx;

	(void)index;
	if (role == 0)
		return open_pub(t->topic, t->size, t->slots, &t->bus, &t->pub);
	return rx_open(&t->r, t->ws_path, t->topic, t->size, t->slots);
}

static void tput_teardown(void *ctx, int role, int index)
{
	struct tput *t = ctx;

	(void)index;
	if (role == 0) {
		shmbus_pub_close(t->pub);
		shmbus_disconnect(t->bus);
	} else {
		rx_close(&t->r);
	}
}

static int tput_send(void *ctx, int index)
{
	struct tput *t = ctx;

	(void)index;
	return publish(t->pub, t->size, t->seq++);
}

static int tput_try_recv(void *ctx, int index)
{
	struct tput *t = ctx;
	int64_t sent;
	uint64_t seq;

	(void)index;
	return rx_one(&t->r, false, &sent, &seq);
}

static int tput_wait(void *ctx, int index, int64_t timeout_ns)
{
	struct tput *t = ctx;
	struct pollfd pfd;

	(void)index;
	if (!t->r.ws_path) {
		int rc = shmbus_sub_wait(t->r.sub, timeout_ns);

		return rc == 0 || rc == SHMBUS_ETIMEDOUT ? 0 : -1;
	}
	pfd.fd = t->r.w.fd;
	pfd.events = POLLIN;
	return poll(&pfd, 1, (int)(timeout_ns / 1000000)) < 0 && errno != EINTR ? -1 : 0;
}

/* Every sequence number passed: received or dropped on the way. */
static uint64_t tput_position(void *ctx, int index)
{
	struct tput *t = ctx;

	(void)index;
	return t->r.next_seq;
}

static uint64_t tput_lost(void *ctx, int index)
{
	struct tput *t = ctx;

	(void)index;
	return t->r.next_seq - t->r.received;
}

static const struct bench_stream_ops tput_ops = {
	.setup = tput_setup,
	.teardown = tput_teardown,
	.send = tput_send,
	.try_recv = tput_try_recv,
	.wait = tput_wait,
	.position = tput_position,
	.lost = tput_lost,
};

static int run_tput(bool ws_path, size_t size)
{
	struct tput t = { .name = ws_path ? "fox_tput" : "fox_base_tput", .ws_path = ws_path,
			  .size = size, .slots = bench_tput_slots(size) };
	struct bench_stream_result res;
	struct bench_row *r;

	run_id = (uint64_t)now_mono_ns();
	snprintf(t.topic, sizeof(t.topic), "bench/%s/%zu", t.name, size);
	/* The topic must exist (and be advertised) before the client looks. */
	if (open_pub(t.topic, size, t.slots, &t.bus, &t.pub) != 0) {
		bench_fail(t.name, "cannot create the topic");
		return -1;
	}
	shmbus_pub_close(t.pub);
	shmbus_disconnect(t.bus);
	if (bench_stream(t.name, 1, &bench_cfg.cpu_a, 1, &bench_cfg.cpu_b, &tput_ops, &t, &res) != 0)
		return -1;
	r = bench_row_rates(t.name, size, res.cons_rate, res.passes);
	bench_row_add_counts(r, res.lost, res.received + res.lost, 0, 0);
	if (ws_path) {
		bench_row_set_floor(r, "fox_base_tput", size);
		snprintf(r->note, sizeof(r->note), "delivered to the WebSocket client; publisher "
						   "unpaced, %u slots", t.slots);
	} else {
		snprintf(r->note, sizeof(r->note), "delivered to a subscriber in shmbus_sub_wait; "
						   "%u slots", t.slots);
	}
	return 0;
}

int bench_foxglove_run(int stage)
{
	int failed = 0;

	if (stage >= 0 && (size_t)stage < bench_nsizes) {
		size_t s = bench_sizes[stage];

		if (s != 64 && s != BENCH_MIB)
			return 0;
		if (bench_selected("fox_base_lat"))
			failed += run_latency(false, s) != 0;
		if (bench_selected("fox_lat"))
			failed += run_latency(true, s) != 0;
	} else if (stage >= (int)bench_nsizes && (size_t)stage < bench_nsizes + bench_ntput_sizes) {
		size_t s = bench_tput_sizes[(size_t)stage - bench_nsizes];

		if (bench_selected("fox_base_tput"))
			failed += run_tput(false, s) != 0;
		if (bench_selected("fox_tput"))
			failed += run_tput(true, s) != 0;
	}
	return failed;
}
