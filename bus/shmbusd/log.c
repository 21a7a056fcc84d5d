/*
 * log.c - owns the broker's log lines, the log file's rotation and the
 * rate limit on lines users cause.
 */
#include "log.h"

#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define USER_LINES_PER_S 5
#define USER_SLOTS 64

static char log_path[512];

int log_open(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -1;
	fchmod(fd, 0600); /* whatever the umask made it */
	if (dup2(fd, STDERR_FILENO) < 0) {
		close(fd);
		return -1;
	}
	close(fd);
	snprintf(log_path, sizeof(log_path), "%s", path);
	return 0;
}

/* The file grew past its limit: it becomes FILE.1 (replacing an older
 * one), and lines go to a new FILE. */
static void rotate(void)
{
	struct stat st;
	if (!log_path[0] || fstat(STDERR_FILENO, &st) < 0 || st.st_size < LOG_MAX_BYTES)
		return;
	char old[sizeof(log_path) + 2];
	snprintf(old, sizeof(old), "%s.1", log_path);
	rename(log_path, old);
	char path[sizeof(log_path)];
	memcpy(path, log_path, sizeof(path));
	log_open(path);
}

static void vlog(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));

static void vlog(const char *fmt, va_list ap)
{
	char line[1024];
	struct timespec ts;
	struct tm tm;

	rotate();
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	int n = (int)strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
	n += snprintf(line + n, sizeof(line) - (size_t)n, ".%03ldZ shmbusd[%d]: ",
		      ts.tv_nsec / 1000000, (int)getpid());
	vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	fprintf(stderr, "%s\n", line);
}

void log_msg(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vlog(fmt, ap);
	va_end(ap);
}

struct user_budget {
	uid_t uid;
	time_t second;
	unsigned lines;
	unsigned suppressed;
};

void log_user(uid_t uid, const char *fmt, ...)
{
	static struct user_budget slots[USER_SLOTS];
	struct user_budget *b = &slots[uid % USER_SLOTS];
	time_t now = time(NULL);
	if (b->uid != uid || b->second != now) {
		if (b->suppressed)
			log_msg("(%u more lines caused by uid %u suppressed)", b->suppressed,
				(unsigned)b->uid);
		*b = (struct user_budget){ uid, now, 0, 0 };
	}
	if (++b->lines > USER_LINES_PER_S) {
		b->suppressed++;
		return;
	}
	va_list ap;
	va_start(ap, fmt);
	vlog(fmt, ap);
	va_end(ap);
}
