/*
 * client.c - owns the connection to the broker: finding it, starting it when
 * none runs (race-free: the broker holds the bus lock, losers exit), and the
 * request/reply exchange with file descriptors passed as SCM_RIGHTS.
 */
#include "client.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "futex.h"
#include "segment.h"

#ifndef SHMBUS_BROKER_INSTALL_PATH
#define SHMBUS_BROKER_INSTALL_PATH "/usr/local/bin/shmbusd"
#endif

void shmbus_connect_options_init_(struct shmbus_connect_options *o, size_t size)
{
	struct shmbus_connect_options d = { .size = sizeof(d), .autostart = true,
					    .timeout_ns = 5000000000ll };
	options_init(o, size, &d, sizeof(d));
}

const char *shmbus_bus_name(const shmbus_bus *bus)
{
	return bus->name;
}

int shmbus_broker_pid(const shmbus_bus *bus)
{
	return bus->broker_pid;
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
			char b[CMSG_SPACE(PROTO_MAX_FDS * sizeof(int))];
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
				int fds[PROTO_MAX_FDS];
				if (k > PROTO_MAX_FDS)
					k = PROTO_MAX_FDS;
				memcpy(fds, CMSG_DATA(c), k * sizeof(int));
				for (size_t i = 0; i < k; i++) {
					if (rep->nfds < PROTO_MAX_FDS)
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
 * SHMBUS_EBROKER / EVERSION / ENOMEM otherwise. The reason is the error text. */
static int lost_connection(shmbus_bus *bus, struct reply *rep)
{
	err_set("lost the broker of bus '%s': %s", bus->name,
		      errno == EAGAIN ? "no answer in time" : strerror(errno));
	reply_free(rep);
	return SHMBUS_ESYS;
}

static int exchange(shmbus_bus *bus, const struct proto_buf *req, struct reply *rep)
{
	char err[256];
	memset(rep, 0, sizeof(*rep));
	/* A broker that refuses a client says why and closes at once: the
	 * reason may be there to read even if the request could not be sent. */
	int wrote = write_all(bus->fd, req->data, req->len);
	if (read_all(bus->fd, &rep->hdr, sizeof(rep->hdr), rep) < 0 ||
	    (wrote < 0 && rep->hdr.status >= 0))
		return lost_connection(bus, rep);
	int rc = proto_check_hdr(&rep->hdr, err, sizeof(err));
	if (rc) {
		err_set("bad reply from the broker of bus '%s': %s", bus->name, err);
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
 * allocate): the explicit one and nothing else, or $SHMBUSD, the installed
 * one, then $PATH. */
static int find_broker(shmbus_bus *bus)
{
	if (bus->explicit_broker) {
		if (executable(bus->broker_path))
			return 0;
		return err_fail(SHMBUS_ENOBROKER,
				"no broker runs for bus '%s' and broker_path %s is not an "
				"executable",
				bus->name, bus->broker_path);
	}
	const char *cands[] = { getenv("SHMBUSD"), SHMBUS_BROKER_INSTALL_PATH };
	for (size_t i = 0; i < sizeof(cands) / sizeof(cands[0]); i++) {
		if (executable(cands[i])) {
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
	return err_fail(SHMBUS_ENOBROKER,
			"no broker runs for bus '%s' and shmbusd was not found (set SHMBUSD, "
			"install shmbus, or put shmbusd on PATH)",
			bus->name);
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
		err_set("%s", err);
		return rc;
	}
	int pfd[2];
	if (pipe2(pfd, O_CLOEXEC) < 0) {
		err_set("pipe: %s", strerror(errno));
		return SHMBUS_ESYS;
	}
	snprintf(fdarg, sizeof(fdarg), "%d", pfd[1]);
	pid_t pid = fork();
	if (pid < 0) {
		err_set("fork: %s", strerror(errno));
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
		char *argv[] = { "shmbusd", "--foreground", "--bus", bus->name, "--ready-fd", fdarg,
				 "--log-file", log, NULL, NULL, NULL };
		if (bus->key_file[0]) {
			argv[8] = "--key-file";
			argv[9] = bus->key_file;
		}
		execv(bus->broker_path, argv);
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

static void keep_old(shmbus_bus *bus, void *p, size_t size)
{
	if (bus->n_old == sizeof(bus->old_maps) / sizeof(bus->old_maps[0])) {
		munmap(bus->old_maps[0], bus->old_sizes[0]);
		memmove(bus->old_maps, bus->old_maps + 1, (bus->n_old - 1) * sizeof(void *));
		memmove(bus->old_sizes, bus->old_sizes + 1, (bus->n_old - 1) * sizeof(size_t));
		bus->n_old--;
	}
	bus->old_maps[bus->n_old] = p;
	bus->old_sizes[bus->n_old++] = size;
}

static uint64_t ino_of(int fd)
{
	struct stat st;
	return fstat(fd, &st) == 0 ? (uint64_t)st.st_ino : 0;
}

/* Map the bus page and wake board the broker handed over, unless they are
 * the ones mapped already (a restarted broker hands over the same). */
static int map_bus_objects(shmbus_bus *bus, int page_fd, int board_fd)
{
	char err[256];
	void *p;
	int rc;
	uint64_t ino = ino_of(page_fd);
	if (ino != bus->page_ino) {
		rc = seg_map_fd(page_fd, false, false, BUS_PAGE_SIZE, &p, err, sizeof(err));
		if (rc == 0 && (rc = seg_bus_check(p, BUS_PAGE_SIZE, err, sizeof(err))) != 0)
			munmap(p, BUS_PAGE_SIZE);
		if (rc)
			return err_fail(rc, "bus page of bus '%s': %s", bus->name, err);
		const struct bus_page *old = atomic_load_explicit(&bus->page, memory_order_relaxed);
		if (old)
			keep_old(bus, (void *)old, BUS_PAGE_SIZE);
		/* Release: a thread that loads the pointer sees the mapping
		 * checked. */
		atomic_store_explicit(&bus->page, p, memory_order_release);
		bus->page_ino = ino;
	}
	ino = ino_of(board_fd);
	if (ino != bus->board_ino) {
		if (!seg_fd_sealed(board_fd, BOARD_SIZE))
			return err_fail(SHMBUS_EBROKER, "broker of bus '%s' sent a bad wake board",
					bus->name);
		rc = seg_map_fd(board_fd, true, false, BOARD_SIZE, &p, err, sizeof(err));
		if (rc)
			return err_fail(rc, "wake board of bus '%s': %s", bus->name, err);
		if (bus->board)
			keep_old(bus, bus->board, BOARD_SIZE);
		bus->board = p;
		bus->board_ino = ino;
	}
	return 0;
}

/* Prove the bus key for the broker's nonce (publishers of tagged topics
 * need it); a broker without a key says so, and such topics then stay
 * closed to this client's publishers. */
static int prove_key(shmbus_bus *bus, const uint8_t *nonce)
{
	struct proto_buf b = { 0 };
	struct reply rep;
	uint8_t proof[INTEGRITY_TAG_BYTES];
	integrity_proof(bus->key, bus->name, nonce, proof);
	size_t f = proto_frame_begin(&b, OP_AUTH, 0);
	proto_put_bytes(&b, proof, sizeof(proof));
	proto_frame_end(&b, f);
	int rc = b.failed ? SHMBUS_ENOMEM : exchange(bus, &b, &rep);
	proto_buf_free(&b);
	if (rc)
		return rc;
	reply_free(&rep); /* refused or not: the broker enforces it at OPEN */
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
	uint32_t pid;
	uint8_t nonce[PROTO_NONCE_BYTES];
	if (rep.hdr.status < 0) {
		err_set("broker of bus '%s' refused: %s", bus->name, (char *)rep.body);
		rc = rep.hdr.status;
	} else if (proto_decode_hello(rep.body, rep.hdr.len, &pid, nonce) || rep.nfds != 2) {
		err_set("broker of bus '%s' sent a malformed HELLO reply", bus->name);
		rc = SHMBUS_EBROKER;
	} else {
		bus->broker_pid = (int)pid;
		rc = map_bus_objects(bus, rep.fds[0], rep.fds[1]);
	}
	reply_free(&rep);
	if (rc == 0 && bus->have_key)
		rc = prove_key(bus, nonce);
	return rc;
}

struct client_line *bus_page_line(shmbus_bus *bus, uint32_t page, uint32_t line, int fd)
{
	char err[256];
	for (size_t i = 0; i < bus->n_cpages; i++)
		if (bus->cpages[i].id == page)
			return line < PAGE_LINES ? &bus->cpages[i].lines[line] : NULL;
	void *p;
	if (fd < 0 || line >= PAGE_LINES) {
		err_set("broker of bus '%s' named a page it did not hand over", bus->name);
		return NULL;
	}
	if (!seg_fd_sealed(fd, PAGE_SIZE_BYTES) ||
	    seg_map_fd(fd, true, false, PAGE_SIZE_BYTES, &p, err, sizeof(err))) {
		err_set("broker of bus '%s' sent a bad client page", bus->name);
		return NULL;
	}
	struct client_page *v = realloc(bus->cpages, (bus->n_cpages + 1) * sizeof(*v));
	if (!v) {
		munmap(p, PAGE_SIZE_BYTES);
		err_set("out of memory");
		return NULL;
	}
	bus->cpages = v;
	bus->cpages[bus->n_cpages++] = (struct client_page){ page, p };
	return &((struct client_line *)p)[line];
}

const struct bus_page *bus_page(shmbus_bus *bus)
{
	/* Acquire: pairs with the release store in map_bus_page. */
	return atomic_load_explicit(&bus->page, memory_order_acquire);
}

/* (Re)establish bus->fd, starting a broker when allowed. */
static int bus_open_socket(shmbus_bus *bus)
{
	char sock[PATH_BUF], err[256];
	int64_t deadline = deadline_after(bus->opts.timeout_ns);
	bool spawned = false;
	int64_t backoff_ns = 1000000;

	int rc = bus_file(sock, sizeof(sock), bus->name, "sock", bus->opts.autostart, err,
			  sizeof(err));
	if (rc == SHMBUS_ENOBROKER) {
		err_set("no broker runs for bus '%s' (%s)", bus->name, err);
		return rc;
	}
	if (rc) {
		err_set("%s", err);
		return rc;
	}
	for (;;) {
		int fd = sock_connect(sock, 0);
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
			err_set("may not connect to bus '%s' (%s): it belongs to uid %u, whose "
				"broker admits other users only with a policy",
				bus->name, sock, owner);
			return SHMBUS_EPERM;
		} else if (errno != ENOENT && errno != ECONNREFUSED) {
			err_set("cannot connect to %s: %s", sock, strerror(errno));
			return SHMBUS_ESYS;
		}
		if (!bus->opts.autostart) {
			err_set("no broker runs for bus '%s' (nothing listens on %s)",
				      bus->name, sock);
			return SHMBUS_ENOBROKER;
		}
		if (monotonic_ns() >= deadline) {
			err_set("no broker answered for bus '%s' within %lld ms (see %.*s.log)",
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
	err_clear();
	if (!out)
		return err_fail(SHMBUS_EINVAL, "shmbus_connect: out is NULL");
	*out = NULL;
	name = bus_name_resolve(name);
	if (!bus_name_valid(name))
		return err_fail(SHMBUS_ENAME,
				"invalid bus name '%s': use 1..64 of [A-Za-z0-9_.-], not starting "
				"with '.'",
				name);
	shmbus_bus *bus = calloc(1, sizeof(*bus));
	if (!bus)
		return SHMBUS_ENOMEM;
	pthread_mutex_init(&bus->lock, NULL);
	bus->fd = -1;
	snprintf(bus->name, sizeof(bus->name), "%s", name);
	shmbus_connect_options_init(&bus->opts);
	int rc = opts ? options_import(&bus->opts, sizeof(bus->opts), opts, "connect") : 0;
	if (rc) {
		shmbus_disconnect(bus);
		return rc;
	}
	if (bus->opts.timeout_ns <= 0)
		bus->opts.timeout_ns = 5000000000ll;
	/* Pointers into the caller's memory are not kept. */
	if (bus->opts.broker_path) {
		if (snprintf(bus->broker_path, sizeof(bus->broker_path), "%s",
			     bus->opts.broker_path) >= (int)sizeof(bus->broker_path)) {
			shmbus_disconnect(bus);
			return err_fail(SHMBUS_EINVAL, "broker_path is too long");
		}
		bus->explicit_broker = true;
	}
	bus->opts.broker_path = NULL;
	const char *key_file = bus->opts.key_file ? bus->opts.key_file : getenv("SHMBUS_KEY_FILE");
	bus->opts.key_file = NULL;
	if (key_file && *key_file) {
		char err[400];
		rc = integrity_load_key(key_file, bus->key, err, sizeof(err));
		if (rc)
			err_set("%s", err);
		bus->have_key = rc == 0;
		/* A broker this client starts gets the same key (an absolute
		 * path: the broker does not run where we do). */
		char *abs = rc == 0 ? realpath(key_file, NULL) : NULL;
		if (abs && strlen(abs) < sizeof(bus->key_file))
			memcpy(bus->key_file, abs, strlen(abs) + 1);
		free(abs);
	}
	if (rc == 0)
		rc = bus_open_socket(bus);
	if (rc) {
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
	const struct bus_page *p = atomic_load_explicit(&bus->page, memory_order_relaxed);
	if (p)
		munmap((void *)p, BUS_PAGE_SIZE);
	if (bus->board)
		munmap(bus->board, BOARD_SIZE);
	for (size_t i = 0; i < bus->n_old; i++)
		munmap(bus->old_maps[i], bus->old_sizes[i]);
	for (size_t i = 0; i < bus->n_cpages; i++)
		munmap(bus->cpages[i].lines, PAGE_SIZE_BYTES);
	free(bus->cpages);
	memset(bus->key, 0, sizeof(bus->key));
	pthread_mutex_destroy(&bus->lock);
	free(bus);
}

int bus_request(shmbus_bus *bus, const struct proto_buf *req, struct reply *rep)
{
	int rc = SHMBUS_EBROKER;
	if (req->failed)
		return err_fail(SHMBUS_ENOMEM, "out of memory building a request");
	pthread_mutex_lock(&bus->lock);
	for (int attempt = 0; attempt < 2; attempt++) {
		if (bus->fd < 0) {
			rc = bus_open_socket(bus);
			if (rc)
				break;
		}
		rc = exchange(bus, req, rep);
		if (rc == 0) {
			err_clear(); /* a lost connection that came back is no error */
			break;
		}
		if (rc != SHMBUS_ESYS)
			break;
		/* The broker went away (restarted, killed): reconnect once. */
		close(bus->fd);
		bus->fd = -1;
		rc = SHMBUS_EBROKER;
	}
	if (rc == SHMBUS_ESYS)
		rc = SHMBUS_EBROKER; /* lost it twice: the reason is in the error text */
	if (rc == 0 && rep->hdr.status < 0) {
		err_set("%s", (char *)rep->body);
		rc = rep->hdr.status;
		reply_free(rep);
	}
	pthread_mutex_unlock(&bus->lock);
	return rc;
}
