/*
 * keeper.c - owns the keeper process and the broker's side of talking to
 * it (see keeper.h).
 */
#include "keeper.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "paths.h"

enum keep_op {
	KOP_PUT = 1,
	KOP_DROP = 2,
	KOP_DUMP = 3,
	KOP_END = 4,
	KOP_QUIT = 5,
	KOP_OPEN = 6, /* holds everything: listen under the bus's keeper name;
	                 answered with KOP_END once it does */
};

struct keep_msg {
	uint32_t op;
	uint32_t reserved;
	struct keep_rec rec;
};

/* ------------------------------------------------------------- messages */

static int send_msg(int sock, uint32_t op, const struct keep_rec *r, int fd)
{
	struct keep_msg m = { .op = op };
	if (r)
		m.rec = *r;
	struct iovec iov = { &m, sizeof(m) };
	struct msghdr h = { .msg_iov = &iov, .msg_iovlen = 1 };
	union {
		struct cmsghdr c;
		char b[CMSG_SPACE(sizeof(int))];
	} cbuf;
	if (fd >= 0) {
		memset(&cbuf, 0, sizeof(cbuf));
		h.msg_control = cbuf.b;
		h.msg_controllen = sizeof(cbuf.b);
		struct cmsghdr *c = CMSG_FIRSTHDR(&h);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	ssize_t w;
	do
		w = sendmsg(sock, &h, MSG_NOSIGNAL);
	while (w < 0 && errno == EINTR);
	return w == (ssize_t)sizeof(m) ? 0 : -1;
}

/* One message; *fd gets the descriptor that came with it, or -1. 0, or -1
 * on end of stream or error. */
static int recv_msg(int sock, struct keep_msg *m, int *fd)
{
	struct iovec iov = { m, sizeof(*m) };
	struct msghdr h = { .msg_iov = &iov, .msg_iovlen = 1 };
	union {
		struct cmsghdr c;
		char b[CMSG_SPACE(4 * sizeof(int))];
	} cbuf;
	h.msg_control = cbuf.b;
	h.msg_controllen = sizeof(cbuf.b);
	*fd = -1;
	ssize_t r;
	do
		r = recvmsg(sock, &h, MSG_CMSG_CLOEXEC);
	while (r < 0 && errno == EINTR);
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&h); c && r > 0; c = CMSG_NXTHDR(&h, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		int fds[4];
		memcpy(fds, CMSG_DATA(c), (k > 4 ? 4 : k) * sizeof(int));
		for (size_t i = 0; i < k && i < 4; i++) {
			if (*fd < 0)
				*fd = fds[i];
			else
				close(fds[i]);
		}
	}
	if (r != (ssize_t)sizeof(*m)) {
		if (*fd >= 0)
			close(*fd);
		*fd = -1;
		return -1;
	}
	return 0;
}

/* --------------------------------------------------------------- keeper */

struct held {
	struct keep_rec rec;
	int fd;
};

struct store {
	struct held *v;
	size_t n, cap;
};

static void store_drop(struct store *s, uint32_t kind, uint32_t id)
{
	for (size_t i = 0; i < s->n; i++) {
		if (s->v[i].rec.kind == kind && s->v[i].rec.id == id) {
			close(s->v[i].fd);
			s->v[i] = s->v[--s->n];
			return;
		}
	}
}

static void store_put(struct store *s, const struct keep_rec *r, int fd)
{
	store_drop(s, r->kind, r->id); /* a record replaces an older one */
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 64;
		struct held *v = realloc(s->v, cap * sizeof(*v));
		if (!v) {
			log_msg("keeper: out of memory: dropping object %u/%u", r->kind, r->id);
			close(fd);
			return;
		}
		s->v = v;
		s->cap = cap;
	}
	s->v[s->n++] = (struct held){ *r, fd };
}

/* A new keeper listens under "<bus>.kpre" until its broker has handed it
 * everything and says KOP_OPEN; only then under "<bus>.keep" (path), where
 * a broker that starts looks. So a keeper found there holds the whole bus,
 * even if its broker died while handing it over. The two names are of one
 * length, so a bus name that fits a socket path fits both. */
#define TEMP_BUF PATH_BUF

static void temp_path(char *buf, size_t len, const char *path)
{
	size_t n = strlen(path);
	size_t keep = n >= 4 ? n - 4 : n; /* path ends in "keep" */
	snprintf(buf, len, "%.*skpre", (int)keep, path);
}

/* Serve one broker until it goes away (0) or says quit (1). */
static int serve(struct store *s, int conn, const char *path, bool *open)
{
	for (;;) {
		struct keep_msg m;
		int fd;
		if (recv_msg(conn, &m, &fd))
			return 0;
		switch (m.op) {
		case KOP_PUT:
			if (fd >= 0)
				store_put(s, &m.rec, fd);
			break;
		case KOP_DROP:
			store_drop(s, m.rec.kind, m.rec.id);
			break;
		case KOP_DUMP:
			for (size_t i = 0; i < s->n; i++)
				if (send_msg(conn, KOP_PUT, &s->v[i].rec, s->v[i].fd))
					return 0;
			if (send_msg(conn, KOP_END, NULL, -1))
				return 0;
			break;
		case KOP_QUIT:
			return 1;
		case KOP_OPEN:
			if (!*open) {
				char tmp[TEMP_BUF];
				temp_path(tmp, sizeof(tmp), path);
				if (rename(tmp, path) == 0)
					*open = true;
				else
					log_msg("keeper: cannot move %s to %s: %s", tmp, path,
						strerror(errno));
			}
			/* The broker waits for this before it serves clients,
			 * so whoever reaches the broker finds the keeper too. */
			if (send_msg(conn, KOP_END, NULL, -1))
				return 0;
			break;
		default:
			break;
		}
		if (fd >= 0 && m.op != KOP_PUT)
			close(fd);
	}
}

static void raise_fd_limit(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

int keeper_main(int listen_fd, const char *path)
{
	struct store s = { 0 };
	bool open = false;

	signal(SIGPIPE, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	signal(SIGINT, SIG_IGN);
	raise_fd_limit();
	int quit = 0;
	while (!quit) {
		struct pollfd p = { listen_fd, POLLIN, 0 };
		int r = poll(&p, 1, KEEP_ORPHAN_S * 1000);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break; /* orphaned: no broker came back */
		int conn = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (conn < 0)
			continue;
		struct ucred cred;
		socklen_t cl = sizeof(cred);
		/* Only the bus's own user: its broker. */
		if (getsockopt(conn, SOL_SOCKET, SO_PEERCRED, &cred, &cl) == 0 &&
		    cred.uid == getuid())
			quit = serve(&s, conn, path, &open);
		close(conn);
	}
	char tmp[TEMP_BUF];
	temp_path(tmp, sizeof(tmp), path);
	unlink(open ? path : tmp);
	for (size_t i = 0; i < s.n; i++)
		close(s.v[i].fd);
	free(s.v);
	return 0;
}

/* --------------------------------------------------------- broker side */

static int connect_to(const char *path)
{
	struct sockaddr_un a;
	if (!sockaddr_for(&a, path))
		return -1;
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0) {
		struct ucred cred;
		socklen_t cl = sizeof(cred);
		/* A socket in our private runtime directory, but still: it must
		 * be our own keeper. */
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) == 0 &&
		    cred.uid == getuid())
			return fd;
		errno = EPERM;
	}
	int e = errno;
	close(fd);
	errno = e;
	return -1;
}

/* Start the keeper (double fork, own session) and wait until it listens:
 * it binds its socket itself, so that connecting peers see its own
 * credentials. */
static int spawn(const char *path, const char *self, char *err, size_t errlen)
{
	int pfd[2];
	if (pipe2(pfd, O_CLOEXEC) < 0) {
		snprintf(err, errlen, "pipe: %s", strerror(errno));
		return -1;
	}
	char fdarg[16];
	snprintf(fdarg, sizeof(fdarg), "%d", pfd[1]);
	pid_t pid = fork();
	if (pid < 0) {
		snprintf(err, errlen, "fork: %s", strerror(errno));
		close(pfd[0]);
		close(pfd[1]);
		return -1;
	}
	if (pid == 0) {
		setsid();
		if (fork() != 0)
			_exit(0);
		fcntl(pfd[1], F_SETFD, 0); /* the ready pipe survives exec */
		execl(self, "shmbusd", "--keeper", path, "--ready-fd", fdarg, (char *)NULL);
		_exit(127);
	}
	close(pfd[1]);
	waitpid(pid, NULL, 0);
	struct pollfd p = { pfd[0], POLLIN, 0 };
	char c = 0;
	int r;
	do
		r = poll(&p, 1, 10000);
	while (r < 0 && errno == EINTR);
	bool ready = r == 1 && read(pfd[0], &c, 1) == 1;
	close(pfd[0]);
	if (!ready) {
		snprintf(err, errlen, "the keeper did not start");
		return -1;
	}
	return 0;
}

int keeper_listen(const char *path, int ready_fd)
{
	struct sockaddr_un a;
	char tmp[TEMP_BUF];
	temp_path(tmp, sizeof(tmp), path);
	if (!sockaddr_for(&a, tmp))
		return -1;
	unlink(tmp); /* a dead keeper's: only the bus's broker starts one */
	int lfd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	mode_t old = umask(0077);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(lfd, 4) < 0) {
		umask(old);
		log_msg("keeper: cannot listen on %s: %s", tmp, strerror(errno));
		if (lfd >= 0)
			close(lfd);
		return -1;
	}
	umask(old);
	if (ready_fd >= 0) {
		ssize_t w = write(ready_fd, "1", 1);
		(void)w;
		close(ready_fd);
	}
	return lfd;
}

int keeper_attach(const char *bus, const char *self, bool *fresh, char *err, size_t errlen)
{
	char path[PATH_BUF];
	if (bus_file(path, sizeof(path), bus, "keep", true, err, errlen))
		return -1;
	int fd = connect_to(path);
	*fresh = false;
	if (fd >= 0)
		return fd;
	if (spawn(path, self, err, errlen))
		return -1;
	*fresh = true;
	char tmp[TEMP_BUF];
	temp_path(tmp, sizeof(tmp), path);
	fd = connect_to(tmp);
	if (fd < 0)
		snprintf(err, errlen, "cannot reach the keeper at %s: %s", tmp, strerror(errno));
	return fd;
}

/* How long a broker waits for its keeper to say it listens: the keeper
 * only renames a socket, so anything near this means it is stuck. */
#define KEEP_OPEN_WAIT_MS 5000

int keeper_open(int kfd)
{
	if (send_msg(kfd, KOP_OPEN, NULL, -1))
		return -1;
	struct pollfd p = { kfd, POLLIN, 0 };
	int r;
	while ((r = poll(&p, 1, KEEP_OPEN_WAIT_MS)) < 0 && errno == EINTR)
		;
	struct keep_msg m;
	int fd;
	if (r <= 0 || recv_msg(kfd, &m, &fd))
		return -1;
	if (fd >= 0)
		close(fd);
	return m.op == KOP_END ? 0 : -1;
}

int keeper_put(int kfd, const struct keep_rec *r, int fd)
{
	return send_msg(kfd, KOP_PUT, r, fd);
}

int keeper_drop(int kfd, uint32_t kind, uint32_t id)
{
	struct keep_rec r = { .kind = kind, .id = id };
	return send_msg(kfd, KOP_DROP, &r, -1);
}

int keeper_quit(int kfd)
{
	return send_msg(kfd, KOP_QUIT, NULL, -1);
}

int keeper_dump(int kfd, void (*fn)(void *ctx, const struct keep_rec *r, int fd), void *ctx)
{
	if (send_msg(kfd, KOP_DUMP, NULL, -1))
		return -1;
	for (;;) {
		struct keep_msg m;
		int fd;
		if (recv_msg(kfd, &m, &fd))
			return -1;
		if (m.op == KOP_END)
			return 0;
		if (m.op == KOP_PUT && fd >= 0)
			fn(ctx, &m.rec, fd);
		else if (fd >= 0)
			close(fd);
	}
}
