/*
 * main.c - shmbusd: one broker per bus. Takes the bus lock (so exactly one
 * broker serves a bus, however many clients race to start one), listens on
 * the bus socket, takes back from its keeper what a previous broker left,
 * serves, and on SIGTERM/SIGINT lets everything go.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <unistd.h>

#include "broker.h"
#include "keeper.h"
#include "log.h"
#include "paths.h"
#include "shmbus/shmbus.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: shmbusd [--bus NAME] [--foreground] [--policy FILE] [--key-file FILE]\n"
		"               [--log-file FILE]\n"
		"\n"
		"The shmbus broker: owns the topics of one bus and hands their shared memory\n"
		"to clients. Clients start it themselves when none runs.\n"
		"\n"
		"  --bus NAME       the bus to serve (default: $SHMBUS_BUS, else 'default')\n"
		"  --foreground     stay attached to the terminal (default: detach once ready)\n"
		"  --policy FILE    who else may publish, subscribe and create what, and their\n"
		"                   limits (see below); without it, only the bus's own user\n"
		"                   may use the bus\n"
		"  --key-file FILE  the bus key (64 hex digits or 32 bytes, mode 0600;\n"
		"                   default $SHMBUS_KEY_FILE): publishers of topics with\n"
		"                   integrity tags must prove they hold it\n"
		"  --log-file FILE  log there (rotated at 1 MiB; default: the bus's log file\n"
		"                   when detached, stderr in the foreground)\n"
		"  --help           show this help\n"
		"  --version        show the version\n"
		"\n"
		"Files: the socket, lock, pid, log and keeper socket live in the runtime\n"
		"directory ($SHMBUS_RUNTIME_DIR, else $XDG_RUNTIME_DIR/shmbus, else\n"
		"/tmp/shmbus-UID). Topics are sealed memfds; a companion process (the\n"
		"keeper) holds them so a restarted broker takes them back. SIGTERM or SIGINT\n"
		"stop the bus and let them go; its files go too, except the log.\n"
		"\n"
		"Policy file: one rule per line, the first that matches decides, '#' comments:\n"
		"  allow|deny  WHO  ACTIONS  TOPICS\n"
		"  limit       WHO  topics=N bytes=SIZE connections=N\n"
		"  WHO: user:NAME|UID, group:NAME|GID or *; ACTIONS: publish, subscribe,\n"
		"  create, comma-separated, or *; TOPICS: a glob such as camera/* (* crosses\n"
		"  '/'). Users without a limit line get topics=%u bytes=%lluM connections=%u.\n"
		"  e.g.  allow group:video subscribe camera/*\n"
		"        allow user:alice publish,create sandbox/*\n",
		POLICY_DEFAULT_TOPICS, (unsigned long long)(POLICY_DEFAULT_BYTES >> 20),
		POLICY_DEFAULT_CONNECTIONS);
}

static int die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "shmbusd: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	return 1;
}

struct args {
	const char *bus;
	const char *policy;
	const char *key_file;
	const char *log_file;
	bool foreground;
	int ready_fd;
	const char *keeper; /* run as the keeper, listening there */
};

/* 0 to go on, or the exit status (+1) when done (help, version, error). */
static int parse_args(int argc, char **argv, struct args *a)
{
	static const struct option longopts[] = {
		{ "bus", required_argument, NULL, 'b' },
		{ "foreground", no_argument, NULL, 'f' },
		{ "ready-fd", required_argument, NULL, 'r' },
		{ "policy", required_argument, NULL, 'p' },
		{ "key-file", required_argument, NULL, 'k' },
		{ "log-file", required_argument, NULL, 'l' },
		{ "keeper", required_argument, NULL, 'K' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int opt;
	*a = (struct args){ .ready_fd = -1 };
	while ((opt = getopt_long(argc, argv, "b:fh", longopts, NULL)) != -1) {
		switch (opt) {
		case 'b':
			a->bus = optarg;
			break;
		case 'f':
			a->foreground = true;
			break;
		case 'r':
			a->ready_fd = atoi(optarg);
			break;
		case 'p':
			a->policy = optarg;
			break;
		case 'k':
			a->key_file = optarg;
			break;
		case 'l':
			a->log_file = optarg;
			break;
		case 'K':
			a->keeper = optarg;
			break;
		case 'h':
			usage(stdout);
			return 1;
		case 'V':
			printf("shmbusd %s\n", SHMBUS_VERSION_STRING);
			return 1;
		default:
			usage(stderr);
			return 3;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 3;
	}
	return 0;
}

/* Detach, but return only once the broker listens, so that a script can
 * use the bus right after `shmbusd` returns. Returns in the child (the
 * broker to be) with *ready_fd set; exits in the parent. */
static void daemonize(const char *pid_path, int *ready_fd)
{
	int pfd[2];
	if (pipe(pfd) < 0)
		exit(die("pipe: %s", strerror(errno)));
	pid_t pid = fork();
	if (pid < 0)
		exit(die("fork: %s", strerror(errno)));
	if (pid > 0) {
		close(pfd[1]);
		char c;
		ssize_t n = read(pfd[0], &c, 1);
		if (n != 1)
			fprintf(stderr, "shmbusd: the broker did not start; see %.*s.log\n",
				(int)(strlen(pid_path) - 4), pid_path);
		exit(n == 1 ? 0 : 1);
	}
	close(pfd[0]);
	setsid();
	*ready_fd = pfd[1];
	/* Detached: nothing of the caller's stays open (a caller reading our
	 * output would wait forever). */
	int nul = open("/dev/null", O_RDWR);
	if (nul >= 0) {
		dup2(nul, 0);
		dup2(nul, 1);
		dup2(nul, 2);
		if (nul > 2)
			close(nul);
	}
}

/* True if fd is the file that path names now. */
static bool is_path_of(int fd, const char *path)
{
	struct stat a, b;
	return fstat(fd, &a) == 0 && lstat(path, &b) == 0 && a.st_dev == b.st_dev &&
	       a.st_ino == b.st_ino;
}

/* The pid that holds the flock on fd's file, from /proc/locks ("1: FLOCK
 * ADVISORY WRITE PID MAJ:MIN:INODE 0 EOF", device numbers in hex), or 0.
 * The holder may not have written its pid file yet: it does so once it
 * listens. */
static int lock_holder(int fd)
{
	struct stat st;
	FILE *f = fopen("/proc/locks", "r");
	if (!f || fstat(fd, &st) != 0) {
		if (f)
			fclose(f);
		return 0;
	}
	char line[256];
	int pid = 0;
	while (!pid && fgets(line, sizeof(line), f)) {
		char kind[16];
		int p;
		unsigned maj, min;
		unsigned long long ino;
		if (sscanf(line, "%*d: %15s %*s %*s %d %x:%x:%llu", kind, &p, &maj, &min, &ino) == 5 &&
		    strcmp(kind, "FLOCK") == 0 && maj == major(st.st_dev) && min == minor(st.st_dev) &&
		    ino == (unsigned long long)st.st_ino)
			pid = p;
	}
	fclose(f);
	return pid;
}

/* The bus lock, held for the broker's whole life and released by the
 * kernel however it ends. A broker that stops removes the lock file while
 * it still holds the lock, so a broker that locked a file must check that
 * the path still names it: if it was removed between our open and our
 * lock, that lock guards nothing and we try again with the new file. -1
 * when another broker holds it. */
static int take_lock(const char *bus, const char *lock_path, const char *pid_path)
{
	int lock_fd = -1;
	for (int tries = 0; tries < 100; tries++) {
		lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (lock_fd < 0) {
			die("open %s: %s", lock_path, strerror(errno));
			return -1;
		}
		if (flock(lock_fd, LOCK_EX | LOCK_NB) != 0)
			break;
		if (is_path_of(lock_fd, lock_path))
			return lock_fd;
		close(lock_fd); /* removed under us by a broker that stopped */
		lock_fd = -1;
	}
	if (lock_fd < 0) {
		die("cannot lock %s: it keeps being replaced", lock_path);
		return -1;
	}
	char pidbuf[32] = "?";
	int holder = lock_holder(lock_fd);
	FILE *pf;
	if (holder > 0)
		snprintf(pidbuf, sizeof(pidbuf), "%d", holder);
	else if ((pf = fopen(pid_path, "r"))) { /* no /proc: the pid file, if written yet */
		if (!fgets(pidbuf, sizeof(pidbuf), pf))
			snprintf(pidbuf, sizeof(pidbuf), "?");
		pidbuf[strcspn(pidbuf, "\n")] = '\0';
		fclose(pf);
	}
	die("a broker already serves bus '%s' (pid %s)", bus, pidbuf);
	close(lock_fd);
	return -1;
}

/* Listen on the bus socket; only the lock holder touches the path, so
 * removing a stale socket here cannot remove a live broker's. */
static int listen_on(const char *sock_path, bool open_to_others)
{
	unlink(sock_path);
	int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	struct sockaddr_un addr;
	if (!sockaddr_for(&addr, sock_path)) {
		die("socket path %s is too long", sock_path);
		return -1;
	}
	mode_t old = umask(0077);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
	    listen(lfd, 128) < 0) {
		umask(old);
		die("cannot listen on %s: %s", sock_path, strerror(errno));
		return -1;
	}
	umask(old);
	if (open_to_others) {
		/* Others must reach the socket; the broker decides who gets in.
		 * The directory becomes traversable, not listable. */
		char dir[PATH_BUF], err[256];
		if (runtime_dir(dir, sizeof(dir), false, err, sizeof(err)) == 0)
			chmod(dir, 0711);
		chmod(sock_path, 0666);
	}
	return lfd;
}

/* The pid file: readable by all, writable by the broker only, whatever
 * the umask; replaced whole. */
static void write_pid_file(const char *pid_path)
{
	char tmp[PATH_BUF + 8], line[32];
	snprintf(tmp, sizeof(tmp), "%s.new", pid_path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0)
		return;
	fchmod(fd, 0644);
	int n = snprintf(line, sizeof(line), "%d\n", (int)getpid());
	bool ok = write(fd, line, (size_t)n) == n;
	close(fd);
	if (!ok || rename(tmp, pid_path) < 0)
		unlink(tmp);
}

static void raise_fd_limit(void)
{
	struct rlimit rl;
	/* A descriptor per client connection and per shared object held:
	 * as many as the hard limit allows. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static int signals_fd(void)
{
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	return signalfd(-1, &mask, SFD_CLOEXEC);
}

static int run_keeper(const char *path, int ready_fd)
{
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	int fd = keeper_listen(path, ready_fd);
	return fd < 0 ? 1 : keeper_main(fd, path);
}

int main(int argc, char **argv)
{
	struct args a;
	char lock_path[PATH_BUF], sock_path[PATH_BUF], pid_path[PATH_BUF], log_path[PATH_BUF];
	char self[PATH_BUF], err[512];

	int rc = parse_args(argc, argv, &a);
	if (rc)
		return rc - 1;
	if (a.keeper)
		return run_keeper(a.keeper, a.ready_fd);
	const char *bus = bus_name_resolve(a.bus);
	if (!bus_name_valid(bus))
		return die("invalid bus name '%s': use 1..64 of [A-Za-z0-9_.-]", bus);
	ssize_t sl = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (sl <= 0)
		return die("cannot find its own executable: %s", strerror(errno));
	self[sl] = '\0';

	struct broker b = { .uid = getuid() };
	b.policy.owner = getuid();
	/* A bad policy or key stops the broker before it serves anybody. */
	if (a.policy && policy_load(&b.policy, a.policy, getuid(), err, sizeof(err)))
		return die("%s", err);
	const char *key_file = a.key_file ? a.key_file : getenv("SHMBUS_KEY_FILE");
	if (key_file && *key_file) {
		if (integrity_load_key(key_file, b.key, err, sizeof(err)))
			return die("%s", err);
		b.have_key = true;
	}
	if (bus_file(lock_path, sizeof(lock_path), bus, "lock", true, err, sizeof(err)) ||
	    bus_file(sock_path, sizeof(sock_path), bus, "sock", true, err, sizeof(err)) ||
	    bus_file(pid_path, sizeof(pid_path), bus, "pid", true, err, sizeof(err)) ||
	    bus_file(log_path, sizeof(log_path), bus, "log", true, err, sizeof(err)))
		return die("%s", err);

	if (!a.foreground)
		daemonize(pid_path, &a.ready_fd);
	if (a.log_file ? log_open(a.log_file) : !a.foreground ? log_open(log_path) : 0)
		return die("cannot open the log: %s", strerror(errno));
	int lock_fd = take_lock(bus, lock_path, pid_path);
	if (lock_fd < 0)
		return 1;
	raise_fd_limit();
	b.signal_fd = signals_fd();
	if (b.signal_fd < 0)
		return die("signalfd: %s", strerror(errno));
	b.listen_fd = listen_on(sock_path, policy_opens_to_others(&b.policy));
	if (b.listen_fd < 0)
		return 1;
	if (registry_open(&b.reg, bus, self, err, sizeof(err)))
		return die("%s", err);
	write_pid_file(pid_path);
	log_msg("serving bus '%s' on %s (%zu topics taken back; %s; %s)", bus, sock_path, b.reg.n,
		a.policy ? a.policy : "no policy: its own user only",
		b.have_key ? "with the bus key" : "no key");
	if (a.ready_fd >= 0) {
		ssize_t n = write(a.ready_fd, "1", 1);
		(void)n;
		close(a.ready_fd);
	}

	broker_run(&b);

	unlink(sock_path);
	unlink(pid_path);
	registry_close(&b.reg, true);
	policy_free(&b.policy);
	close(b.listen_fd);
	close(b.signal_fd);
	log_msg("bus '%s' stopped", bus);
	/* Removed while still locked: a broker starting now either locked
	 * this file before (and then finds it gone, take_lock) or creates a
	 * new one. The log stays, to be read. */
	unlink(lock_path);
	close(lock_fd);
	return 0;
}
