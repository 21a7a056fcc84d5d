/*
 * ipc.c - the alternatives a user would otherwise pick: a Unix domain
 * stream socket pair and a pair of pipes, ping-ponged and streamed the same
 * way as the bus. One write() per message and reads that never cross a
 * message boundary, as a message-oriented user would do.
 */
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct fd_link {
	/* fds[role][0] reads, fds[role][1] writes; role 0 initiator or
	 * producer, 1 echoer or consumer. -1 when closed. */
	int fds[2][2];
	size_t size;
	unsigned char *priv;
	size_t off;      /* consumer: bytes of the current message so far */
	uint64_t taken;  /* consumer: whole messages read */
};

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* Keep this role's fds, close the peer's (the fork duplicated them). The
 * two roles never share an fd number. */
static int link_setup(struct fd_link *l, int role)
{
	int *o = l->fds[!role];

	if (o[1] == o[0])
		o[1] = -1;
	close_fd(&o[0]);
	close_fd(&o[1]);
	l->priv = malloc(l->size);
	if (!l->priv)
		return -1;
	memset(l->priv, 0x5a, l->size);
	l->off = 0;
	l->taken = 0;
	return 0;
}

static void link_teardown(struct fd_link *l, int role)
{
	if (l->fds[role][1] == l->fds[role][0])
		l->fds[role][1] = -1;
	close_fd(&l->fds[role][0]);
	close_fd(&l->fds[role][1]);
	free(l->priv);
	l->priv = NULL;
}

static void link_close_all(struct fd_link *l)
{
	for (int r = 0; r < 2; r++) {
		if (l->fds[r][1] == l->fds[r][0])
			l->fds[r][1] = -1;
		close_fd(&l->fds[r][0]);
		close_fd(&l->fds[r][1]);
	}
}

static int write_full(int fd, const unsigned char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int read_full(int fd, unsigned char *p, size_t n)
{
	while (n > 0) {
		ssize_t r = read(fd, p, n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

/* ------------------------------------------------------------ ping-pong */

static int pp_setup(void *ctx, int role)
{
	return link_setup(ctx, role);
}

static void pp_teardown(void *ctx, int role)
{
	link_teardown(ctx, role);
}

static int pp_ping(void *ctx, enum bench_cmd cmd)
{
	struct fd_link *l = ctx;
	uint64_t word = (uint64_t)cmd;

	memcpy(l->priv, &word, sizeof(word));
	if (write_full(l->fds[0][1], l->priv, l->size) != 0)
		return -1;
	if (cmd == BENCH_CMD_STOP)
		return 0;
	return read_full(l->fds[0][0], l->priv, l->size);
}

static int pp_echo(void *ctx)
{
	struct fd_link *l = ctx;
	uint64_t word;

	if (read_full(l->fds[1][0], l->priv, l->size) != 0)
		return -1;
	memcpy(&word, l->priv, sizeof(word));
	if (word == BENCH_CMD_STOP)
		return BENCH_CMD_STOP;
	if (write_full(l->fds[1][1], l->priv, l->size) != 0)
		return -1;
	return BENCH_CMD_ECHO;
}

static const struct bench_pingpong_ops fd_pp_ops = {
	.setup = pp_setup,
	.ping = pp_ping,
	.echo = pp_echo,
	.teardown = pp_teardown,
};

/* ---------------------------------------------------------- streaming */

static int st_setup(void *ctx, int role, int index)
{
	struct fd_link *l = ctx;

	(void)index;
	if (link_setup(l, role) != 0)
		return -1;
	/* The consumer reads without blocking and sleeps in poll(). */
	if (role == 1 && fcntl(l->fds[1][0], F_SETFL, O_NONBLOCK) != 0)
		return -1;
	return 0;
}

static void st_teardown(void *ctx, int role, int index)
{
	(void)index;
	link_teardown(ctx, role);
}

static int st_send(void *ctx, int index)
{
	struct fd_link *l = ctx;

	(void)index;
	return write_full(l->fds[0][1], l->priv, l->size);
}

static int st_try_recv(void *ctx, int index)
{
	struct fd_link *l = ctx;

	(void)index;
	for (;;) {
		ssize_t r = read(l->fds[1][0], l->priv + l->off, l->size - l->off);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno == EAGAIN)
			return 0;
		if (r <= 0)
			return -1;
		l->off += (size_t)r;
		if (l->off == l->size) {
			l->off = 0;
			l->taken++;
			return 1;
		}
	}
}

static int st_wait(void *ctx, int index, int64_t timeout_ns)
{
	struct fd_link *l = ctx;
	struct pollfd p = {.fd = l->fds[1][0], .events = POLLIN};

	(void)index;
	if (poll(&p, 1, (int)(timeout_ns / 1000000)) < 0 && errno != EINTR)
		return -1;
	return 0;
}

static uint64_t st_position(void *ctx, int index)
{
	(void)index;
	return ((struct fd_link *)ctx)->taken;
}

static const struct bench_stream_ops fd_stream_ops = {
	.setup = st_setup,
	.teardown = st_teardown,
	.send = st_send,
	.try_recv = st_try_recv,
	.wait = st_wait,
	.position = st_position,
};

/* ---------------------------------------------------------------- cases */

static int open_link(struct fd_link *l, bool sock, size_t size)
{
	memset(l, 0, sizeof(*l));
	l->size = size;
	if (sock) {
		int sv[2];

		if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
			return -1;
		l->fds[0][0] = l->fds[0][1] = sv[0];
		l->fds[1][0] = l->fds[1][1] = sv[1];
	} else {
		int a2b[2], b2a[2];

		if (pipe(a2b) != 0)
			return -1;
		if (pipe(b2a) != 0) {
			close(a2b[0]);
			close(a2b[1]);
			return -1;
		}
		l->fds[0][0] = b2a[0];
		l->fds[0][1] = a2b[1];
		l->fds[1][0] = a2b[0];
		l->fds[1][1] = b2a[1];
	}
	return 0;
}

static int run_latency(const char *name, bool sock, size_t size)
{
	struct fd_link l;
	int rc;

	if (open_link(&l, sock, size) != 0) {
		bench_fail(name, "%s", strerror(errno));
		return -1;
	}
	rc = bench_pingpong(name, size, &fd_pp_ops, &l, "floor_futex", size);
	link_close_all(&l);
	return rc;
}

static int run_stream(const char *name, bool sock, size_t size)
{
	struct bench_stream_result res;
	struct fd_link l;
	int rc;

	if (open_link(&l, sock, size) != 0) {
		bench_fail(name, "%s", strerror(errno));
		return -1;
	}
	rc = bench_stream(name, 1, &bench_cfg.cpu_a, 1, &bench_cfg.cpu_b, &fd_stream_ops, &l,
			  &res);
	link_close_all(&l);
	if (rc == 0) {
		struct bench_row *r = bench_row_rates(name, size, res.cons_rate, res.passes);

		bench_row_set_floor(r, "floor_ring_tput", size);
		snprintf(r->note, sizeof(r->note), "lossless (writer blocks)");
	}
	return rc;
}

int bench_ipc_run(int stage)
{
	int failed = 0;

	if (stage >= 0 && (size_t)stage < bench_nsizes) {
		size_t s = bench_sizes[stage];

		if (bench_selected("unix_socket"))
			failed += run_latency("unix_socket", true, s) != 0;
		if (bench_selected("pipe"))
			failed += run_latency("pipe", false, s) != 0;
	} else if (stage >= (int)bench_nsizes && (size_t)stage < bench_nsizes + bench_ntput_sizes) {
		size_t s = bench_tput_sizes[(size_t)stage - bench_nsizes];

		if (bench_selected("unix_tput"))
			failed += run_stream("unix_tput", true, s) != 0;
		if (bench_selected("pipe_tput"))
			failed += run_stream("pipe_tput", false, s) != 0;
	}
	return failed;
}
