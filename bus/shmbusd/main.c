/*
 * main.c - shmbusd: one broker per bus. Takes the bus lock (so exactly one
 * broker serves a bus, however many clients race to start one), listens on
 * the bus socket, takes back the topics a previous broker left, serves, and
 * on SIGTERM/SIGINT removes everything it created.
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
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "broker.h"
#include "log.h"
#include "paths.h"
#include "shmbus/shmbus.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: shmbusd [--bus NAME] [--foreground] [--policy FILE]\n"
		"\n"
		"The shmbus broker: owns the topics of one bus and hands their shared memory\n"
		"to clients. Clients start it themselves when none runs.\n"
		"\n"
		"  --bus NAME     the bus to serve (default: $SHMBUS_BUS, else 'default')\n"
		"  --foreground   stay attached to the terminal (default: detach once ready)\n"
		"  --policy FILE  who else may publish and subscribe to what (see below);\n"
		"                 without it, only the bus's own user may use the bus\n"
		"  --help         show this help\n"
		"  --version      show the version\n"
		"\n"
		"Files: the socket, lock, pid and log files live in the runtime directory\n"
		"($SHMBUS_RUNTIME_DIR, else $XDG_RUNTIME_DIR/shmbus, else /tmp/shmbus-UID);\n"
		"topics in /dev/shm/shmbus.UID.BUS.*. SIGTERM or SIGINT stop the bus and\n"
		"remove them.\n"
		"\n"
		"Policy file: one rule per line, the first that matches decides, '#' comments:\n"
		"  allow|deny  WHO  ACTIONS  TOPICS\n"
		"  WHO: user:NAME|UID, group:NAME|GID or *; ACTIONS: publish, subscribe,\n"
		"  both comma-separated, or *; TOPICS: a glob such as camera/* (* crosses '/').\n"
		"  e.g.  allow group:video subscribe camera/*\n");
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

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "bus", required_argument, NULL, 'b' },
		{ "foreground", no_argument, NULL, 'f' },
		{ "ready-fd", required_argument, NULL, 'r' },
		{ "policy", required_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	const char *bus_arg = NULL;
	const char *policy_path = NULL;
	bool foreground = false;
	int ready_fd = -1;
	int opt;

	while ((opt = getopt_long(argc, argv, "b:fh", longopts, NULL)) != -1) {
		switch (opt) {
		case 'b':
			bus_arg = optarg;
			break;
		case 'f':
			foreground = true;
			break;
		case 'r':
			ready_fd = atoi(optarg);
			break;
		case 'p':
			policy_path = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("shmbusd %s\n", SHMBUS_VERSION_STRING);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	const char *bus = bus_name_resolve(bus_arg);
	if (!bus_name_valid(bus))
		return die("invalid bus name '%s': use 1..64 of [A-Za-z0-9_.-]", bus);

	char lock_path[PATH_BUF], sock_path[PATH_BUF], pid_path[PATH_BUF], err[512];
	struct policy policy = { .owner = getuid() };
	/* A bad policy stops the broker before it serves anybody. */
	if (policy_path && policy_load(&policy, policy_path, getuid(), err, sizeof(err)))
		return die("%s", err);
	if (bus_file(lock_path, sizeof(lock_path), bus, "lock", true, err, sizeof(err)) ||
	    bus_file(sock_path, sizeof(sock_path), bus, "sock", true, err, sizeof(err)) ||
	    bus_file(pid_path, sizeof(pid_path), bus, "pid", true, err, sizeof(err)))
		return die("%s", err);

	if (!foreground) {
		/* Detach, but return only once the broker listens, so that a
		 * script can use the bus right after `shmbusd` returns. */
		int pfd[2];
		if (pipe(pfd) < 0)
			return die("pipe: %s", strerror(errno));
		pid_t pid = fork();
		if (pid < 0)
			return die("fork: %s", strerror(errno));
		if (pid > 0) {
			close(pfd[1]);
			policy_free(&policy);
			char c;
			ssize_t n = read(pfd[0], &c, 1);
			if (n != 1)
				fprintf(stderr, "shmbusd: the broker did not start; see %.*s.log\n",
					(int)(strlen(pid_path) - 4), pid_path);
			return n == 1 ? 0 : 1;
		}
		close(pfd[0]);
		setsid();
		ready_fd = pfd[1];
		/* Detached: nothing of the caller's stays open (a caller reading
		 * our output would wait forever); the log goes to a file. */
		char log_path[PATH_BUF];
		int nul = open("/dev/null", O_RDWR);
		int lfd = bus_file(log_path, sizeof(log_path), bus, "log", true, err, sizeof(err))
				  ? -1
				  : open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		if (nul >= 0) {
			dup2(nul, 0);
			dup2(nul, 1);
		}
		dup2(lfd >= 0 ? lfd : nul, 2);
	}

	/* One broker per bus: the lock is held for the broker's whole life and
	 * released by the kernel however it ends. */
	int lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (lock_fd < 0)
		return die("open %s: %s", lock_path, strerror(errno));
	if (flock(lock_fd, LOCK_EX | LOCK_NB) < 0) {
		char pidbuf[32] = "?";
		FILE *pf = fopen(pid_path, "r");
		if (pf) {
			if (!fgets(pidbuf, sizeof(pidbuf), pf))
				snprintf(pidbuf, sizeof(pidbuf), "?");
			pidbuf[strcspn(pidbuf, "\n")] = '\0';
			fclose(pf);
		}
		return die("a broker already serves bus '%s' (pid %s)", bus, pidbuf);
	}

	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	int sfd = signalfd(-1, &mask, SFD_CLOEXEC);
	if (sfd < 0)
		return die("signalfd: %s", strerror(errno));

	/* Only the lock holder touches the socket path, so removing a stale
	 * socket here cannot remove a live broker's. */
	unlink(sock_path);
	int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	struct sockaddr_un addr;
	if (!sockaddr_for(&addr, sock_path))
		return die("socket path %s is too long", sock_path);
	mode_t old = umask(0077);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
	    listen(lfd, 128) < 0) {
		umask(old);
		return die("cannot listen on %s: %s", sock_path, strerror(errno));
	}
	umask(old);
	if (policy_opens_to_others(&policy)) {
		/* Others must reach the socket; the broker decides who gets in.
		 * The directory becomes traversable, not listable. */
		char dir[PATH_BUF];
		if (runtime_dir(dir, sizeof(dir), false, err, sizeof(err)) == 0)
			chmod(dir, 0711);
		chmod(sock_path, 0666);
	}

	struct broker b = { .listen_fd = lfd, .signal_fd = sfd, .uid = getuid(), .policy = policy };
	registry_init(&b.reg, bus);
	registry_adopt(&b.reg);
	if (registry_open_page(&b.reg, err, sizeof(err)))
		return die("%s", err);

	FILE *pf = fopen(pid_path, "w");
	if (pf) {
		fprintf(pf, "%d\n", (int)getpid());
		fclose(pf);
	}
	log_msg("serving bus '%s' on %s (%zu topics taken back; %s)", bus, sock_path, b.reg.n,
		policy_path ? policy_path : "no policy: its own user only");
	if (ready_fd >= 0) {
		ssize_t n = write(ready_fd, "1", 1);
		(void)n;
		close(ready_fd);
	}

	broker_run(&b);

	unlink(sock_path);
	unlink(pid_path);
	registry_destroy(&b.reg);
	policy_free(&b.policy);
	close(lfd);
	close(sfd);
	log_msg("bus '%s' stopped", bus);
	/* The lock file stays (removing it would race a starting broker);
	 * the lock itself goes with the process. */
	close(lock_fd);
	return 0;
}
