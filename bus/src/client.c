/*
 * client.c - owns the connection to the broker: finding it, starting it when
 * none runs (race-free: the broker holds the bus lock, losers exit), and the
 * request/reply exchange with file descriptors passed as SCM_RIGHTS.
 */
#include "client.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "futex.h"

#ifndef SHMBUS_BROKER_INSTALL_PATH
#define SHMBUS_BROKER_INSTALL_PATH "/usr/local/bin/shmbusd"
#endif

void bus_set_error(shmbus_bus *bus, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(bus->errmsg, sizeof(bus->errmsg), fmt, ap);
	va_end(ap);
}

void shmbus_connect_options_init(struct shmbus_connect_options *o)
{
	memset(o, 0, sizeof(*o));
	o->autostart = true;
	o->broker_path = NULL;
	o->timeout_ns = 5000000000ll;
}

const char *shmbus_bus_name(const shmbus_bus *bus)
{
	return bus->name;
}

int shmbus_broker_pid(const shmbus_bus *bus)
{
	return bus->broker_pid;
}

const char *shmbus_errmsg(const shmbus_bus *bus)
{
	return bus ? bus->errmsg : "";
}

void reply_free(struct reply *r)
{
	free(r->body);
	for (int i = 0; i < r->nfds; i++)
		close(r->fds[i]);
	memset(r, 0, sizeof(*r));
}

/* ------------------------------------------------------------ socket I/O */

static int write_all(int fd, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Read exactly n bytes; on the first read, collect up to 2 passed fds. */
static int read_all(int fd, void *buf, size_t n, struct reply *rep)
{
	uint8_t *p = buf;
	while (n) {
		union {
			struct cmsghdr h;
			char b[CMSG_SPACE(2 * sizeof(int))];
		} cbuf;
		struct iovec iov = { p, n };
		struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
		if (rep) {
			msg.msg_control = cbuf.b;
			msg.msg_controllen = sizeof(cbuf.b);
		}
		ssize_t r = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (r == 0) {
			errno = ECONNRESET;
			return -1;
		}
		if (rep) {
			for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
				if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
					continue;
				size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
				int fds[2];
				memcpy(fds, CMSG_DATA(c), (k > 2 ? 2 : k) * sizeof(int));
				for (size_t i = 0; i < k && i < 2; i++) {
					if (rep->nfds < 2)
						rep->fds[rep->nfds++] = fds[i];
					else
						close(fds[i]);
				}
			}
		}
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

/* One request and its reply. 0; SHMBUS_ESYS when the connection failed
 * (the broker went away or does not answer: worth reconnecting);
 * SHMBUS_EBROKER / EVERSION / ENOMEM otherwise. The reason is in errmsg. */
static int lost_connection(shmbus_bus *bus, struct reply *rep)
{
	bus_set_error(bus, "lost the broker of bus '%s': %s", bus->name,
		      errno == EAGAIN ? "no answer in time" : strerror(errno));
	reply_free(rep);
	return SHMBUS_ESYS;
}

static int exchange(shmbus_bus *bus, const struct proto_buf *req, struct reply *rep)
{
	char err[256];
	memset(rep, 0, sizeof(*rep));
	if (write_all(bus->fd, req->data, req->len) < 0 ||
	    read_all(bus->fd, &rep->hdr, sizeof(rep->hdr), rep) < 0)
		return lost_connection(bus, rep);
	int rc = proto_check_hdr(&rep->hdr, err, sizeof(err));
	if (rc) {
		bus_set_error(bus, "bad reply from the broker of bus '%s': %s", bus->name, err);
		reply_free(rep);
		return rc;
	}
	rep->body = malloc(rep->hdr.len + 1);
	if (!rep->body) {
		reply_free(rep);
		return SHMBUS_ENOMEM;
	}
	if (read_all(bus->fd, rep->body, rep->hdr.len, NULL) < 0)
		return lost_connection(bus, rep);
	rep->body[rep->hdr.len] = '\0';
	return 0;
}

/* ------------------------------------------------------------ connecting */

static int try_connect(const char *path)
{
	struct sockaddr_un a;
	if (!sockaddr_for(&a, path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

static void set_timeouts(int fd, int64_t ns)
{
	struct timeval tv = { .tv_sec = ns / 1000000000, .tv_usec = (ns % 1000000000) / 1000 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

static bool executable(const char *p)
{
	return p && *p && access(p, X_OK) == 0;
}

/* Pick the broker executable before forking (nothing after fork may
 * allocate): explicit, $SHMBUSD, the installed one, then $PATH. */
static int find_broker(shmbus_bus *bus)
{
	const char *cands[] = { bus->opts.broker_path, getenv("SHMBUSD"),
				SHMBUS_BROKER_INSTALL_PATH };
	for (size_t i = 0; i < sizeof(cands) / sizeof(cands[0]); i++) {
		if (executable(cands[i])) {
			/* The explicit path may be bus->broker_path itself. */
			if (cands[i] != bus->broker_path)
				snprintf(bus->broker_path, sizeof(bus->broker_path), "%s", cands[i]);
			return 0;
		}
	}
	const char *path = getenv("PATH");
	while (path && *path) {
		const char *end = strchr(path, ':');
		size_t n = end ? (size_t)(end - path) : strlen(path);
		char cand[PATH_BUF];
		if (n && snprintf(cand, sizeof(cand), "%.*s/shmbusd", (int)n, path) <
				 (int)sizeof(cand) &&
		    executable(cand)) {
			snprintf(bus->broker_path, sizeof(bus->broker_path), "%s", cand);
			return 0;
		}
		path = end ? end + 1 : NULL;
	}
	bus_set_error(bus,
		      "no broker runs for bus '%s' and shmbusd was not found (set SHMBUSD, "
		      "install shmbus, or put shmbusd on PATH)",
		      bus->name);
	return SHMBUS_ENOBROKER;
}

/* Start a broker as a daemon (double fork, own session) and wait until it
 * says it listens, or exits (another one won the race), or the deadline. */
static int spawn_broker(shmbus_bus *bus, int64_t deadline)
{
	int rc = find_broker(bus);
	if (rc)
		return rc;
	char log[PATH_BUF], err[256], fdarg[16];
	rc = bus_file(log, sizeof(log), bus->name, "log", true, err, sizeof(err));
	if (rc) {
		bus_set_error(bus, "%s", err);
		return rc;
	}
	int pfd[2];
	if (pipe2(pfd, O_CLOEXEC) < 0) {
		bus_set_error(bus, "pipe: %s", strerror(errno));
		return SHMBUS_ESYS;
	}
	snprintf(fdarg, sizeof(fdarg), "%d", pfd[1]);
	pid_t pid = fork();
	if (pid < 0) {
		bus_set_error(bus, "fork: %s", strerror(errno));
		close(pfd[0]);
		close(pfd[1]);
		return SHMBUS_ESYS;
	}
	if (pid == 0) {
		/* Only async-signal-safe calls from here on. */
		setsid();
		if (fork() != 0)
			_exit(0);
		int nul = open("/dev/null", O_RDWR);
		int lfd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
		if (nul >= 0) {
			dup2(nul, 0);
			dup2(nul, 1);
		}
		dup2(lfd >= 0 ? lfd : nul, 2);
		fcntl(pfd[1], F_SETFD, 0); /* the ready pipe survives exec */
		execl(bus->broker_path, "shmbusd", "--foreground", "--bus", bus->name,
		      "--ready-fd", fdarg, (char *)NULL);
		_exit(127);
	}
	close(pfd[1]);
	waitpid(pid, NULL, 0);
	for (;;) {
		int64_t left = deadline - monotonic_ns();
		if (left <= 0)
			break;
		struct pollfd p = { pfd[0], POLLIN, 0 };
		int r = poll(&p, 1, (int)(left / 1000000 + 1));
		if (r < 0 && errno == EINTR)
			continue;
		if (r > 0) {
			char c;
			ssize_t n = read(pfd[0], &c, 1);
			(void)n; /* a byte: ready; EOF: it exited (lost the race) */
		}
		break;
	}
	close(pfd[0]);
	return 0;
}

static int hello(shmbus_bus *bus)
{
	struct proto_buf b = { 0 };
	struct reply rep;
	size_t f = proto_frame_begin(&b, OP_HELLO, 0);
	proto_put_u32(&b, PROTO_VERSION);
	proto_frame_end(&b, f);
	if (b.failed) {
		proto_buf_free(&b);
		return SHMBUS_ENOMEM;
	}
	int rc = exchange(bus, &b, &rep);
	proto_buf_free(&b);
	if (rc == SHMBUS_ESYS)
		return SHMBUS_EBROKER; /* a broker that does not answer HELLO */
	if (rc)
		return rc;
	if (rep.hdr.status < 0) {
		bus_set_error(bus, "broker of bus '%s' refused: %s", bus->name,
			      (char *)rep.body);
		rc = rep.hdr.status;
	} else if (rep.hdr.len != 4) {
		bus_set_error(bus, "broker of bus '%s' sent a malformed HELLO reply", bus->name);
		rc = SHMBUS_EBROKER;
	} else {
		uint32_t pid;
		memcpy(&pid, rep.body, 4);
		bus->broker_pid = (int)pid;
	}
	reply_free(&rep);
	return rc;
}

/* (Re)establish bus->fd, starting a broker when allowed. */
static int bus_open_socket(shmbus_bus *bus)
{
	char sock[PATH_BUF], err[256];
	int64_t deadline = monotonic_ns() + bus->opts.timeout_ns;
	bool spawned = false;
	int64_t backoff_ns = 1000000;

	int rc = bus_file(sock, sizeof(sock), bus->name, "sock", bus->opts.autostart, err,
			  sizeof(err));
	if (rc == SHMBUS_ENOBROKER) {
		bus_set_error(bus, "no broker runs for bus '%s' (%s)", bus->name, err);
		return rc;
	}
	if (rc) {
		bus_set_error(bus, "%s", err);
		return rc;
	}
	for (;;) {
		int fd = try_connect(sock);
		if (fd >= 0) {
			bus->fd = fd;
			set_timeouts(fd, bus->opts.timeout_ns);
			rc = hello(bus);
			if (rc == 0)
				return 0;
			close(fd);
			bus->fd = -1;
			if (rc != SHMBUS_EBROKER)
				return rc;
		} else if (errno == EACCES) {
			struct stat st;
			unsigned owner = stat(sock, &st) == 0 ? (unsigned)st.st_uid : 0;
			bus_set_error(bus,
				      "may not connect to bus '%s' (%s): it belongs to uid %u, whose "
				      "broker admits other users only with a policy",
				      bus->name, sock, owner);
			return SHMBUS_EPERM;
		} else if (errno != ENOENT && errno != ECONNREFUSED) {
			bus_set_error(bus, "cannot connect to %s: %s", sock, strerror(errno));
			return SHMBUS_ESYS;
		}
		if (!bus->opts.autostart) {
			bus_set_error(bus, "no broker runs for bus '%s' (nothing listens on %s)",
				      bus->name, sock);
			return SHMBUS_ENOBROKER;
		}
		if (monotonic_ns() >= deadline) {
			bus_set_error(bus,
				      "no broker answered for bus '%s' within %lld ms (see %.*s.log)",
				      bus->name, (long long)(bus->opts.timeout_ns / 1000000),
				      (int)(strlen(sock) - 5), sock);
			return SHMBUS_ENOBROKER;
		}
		if (!spawned) {
			spawned = true;
			rc = spawn_broker(bus, deadline);
			if (rc)
				return rc;
			continue;
		}
		/* Another client's broker won the start race and is still
		 * getting ready: retry shortly. */
		struct timespec ts = { 0, backoff_ns };
		nanosleep(&ts, NULL);
		if (backoff_ns < 32000000)
			backoff_ns *= 2;
	}
}

int shmbus_connect(const char *name, const struct shmbus_connect_options *opts,
		   shmbus_bus **out)
{
	if (!out)
		return SHMBUS_EINVAL;
	*out = NULL;
	name = bus_name_resolve(name);
	if (!bus_name_valid(name)) {
		if (opts && opts->errbuf && opts->errbuf_size)
			snprintf(opts->errbuf, opts->errbuf_size,
				 "invalid bus name '%s': use 1..64 of [A-Za-z0-9_.-]", name);
		return SHMBUS_ENAME;
	}
	shmbus_bus *bus = calloc(1, sizeof(*bus));
	if (!bus)
		return SHMBUS_ENOMEM;
	pthread_mutex_init(&bus->lock, NULL);
	bus->fd = -1;
	snprintf(bus->name, sizeof(bus->name), "%s", name);
	if (opts)
		bus->opts = *opts;
	else
		shmbus_connect_options_init(&bus->opts);
	if (bus->opts.timeout_ns <= 0)
		bus->opts.timeout_ns = 5000000000ll;
	bus->opts.broker_path = NULL; /* not kept: copied when needed */
	if (opts && opts->broker_path)
		snprintf(bus->broker_path, sizeof(bus->broker_path), "%s", opts->broker_path);
	if (bus->broker_path[0])
		bus->opts.broker_path = bus->broker_path;
	bus->opts.key_file = NULL;
	const char *key_file = opts && opts->key_file ? opts->key_file : getenv("SHMBUS_KEY_FILE");
	int rc = 0;
	if (key_file && *key_file) {
		char err[400];
		rc = integrity_load_key(key_file, bus->key, err, sizeof(err));
		if (rc)
			bus_set_error(bus, "%s", err);
		bus->have_key = rc == 0;
	}
	if (rc == 0)
		rc = bus_open_socket(bus);
	if (rc) {
		if (opts && opts->errbuf && opts->errbuf_size)
			snprintf(opts->errbuf, opts->errbuf_size, "%s", bus->errmsg);
		shmbus_disconnect(bus);
		return rc;
	}
	*out = bus;
	return 0;
}

void shmbus_disconnect(shmbus_bus *bus)
{
	if (!bus)
		return;
	if (bus->fd >= 0)
		close(bus->fd);
	memset(bus->key, 0, sizeof(bus->key));
	pthread_mutex_destroy(&bus->lock);
	free(bus);
}

int bus_request(shmbus_bus *bus, const struct proto_buf *req, struct reply *rep)
{
	int rc = SHMBUS_EBROKER;
	if (req->failed)
		return SHMBUS_ENOMEM;
	pthread_mutex_lock(&bus->lock);
	bus->errmsg[0] = '\0';
	for (int attempt = 0; attempt < 2; attempt++) {
		if (bus->fd < 0) {
			rc = bus_open_socket(bus);
			if (rc)
				break;
		}
		rc = exchange(bus, req, rep);
		if (rc == 0)
			break;
		if (rc != SHMBUS_ESYS)
			break;
		/* The broker went away (restarted, killed): reconnect once. */
		close(bus->fd);
		bus->fd = -1;
		rc = SHMBUS_EBROKER;
	}
	if (rc == SHMBUS_ESYS)
		rc = SHMBUS_EBROKER; /* lost it twice: the reason is in errmsg */
	if (rc == 0 && rep->hdr.status < 0) {
		bus_set_error(bus, "%s", (char *)rep->body);
		rc = rep->hdr.status;
		reply_free(rep);
	}
	pthread_mutex_unlock(&bus->lock);
	return rc;
}
