/*
 * paths.c - owns naming rules, where a bus's files live on the host, and
 * reaching its socket.
 */
#include "paths.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "layout.h"
#include "shmbus/shmbus.h"

static bool name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '-' || c == '.';
}

bool bus_name_valid(const char *name)
{
	if (!name || !*name || strlen(name) > BUS_NAME_MAX || name[0] == '.')
		return false;
	for (const char *p = name; *p; p++)
		if (!name_char(*p))
			return false;
	return true;
}

bool topic_name_valid(const char *name)
{
	size_t n = name ? strlen(name) : 0;
	if (n == 0 || n > TOPIC_NAME_MAX)
		return false;
	/* One optional leading '/' (ROS style), then segments of name
	 * characters separated by single '/'; "." and ".." are not segments
	 * (they read as paths to somewhere else). */
	const char *p = name[0] == '/' ? name + 1 : name;
	if (*p == '\0')
		return false;
	while (*p) {
		const char *seg = p;
		while (*p && *p != '/') {
			if (!name_char(*p))
				return false;
			p++;
		}
		size_t len = (size_t)(p - seg);
		if (len == 0 || (len == 1 && seg[0] == '.') ||
		    (len == 2 && seg[0] == '.' && seg[1] == '.'))
			return false;
		if (*p == '/' && *++p == '\0')
			return false; /* trailing '/' */
	}
	return true;
}

const char *topic_name_canon(const char *name)
{
	return name[0] == '/' ? name + 1 : name;
}

bool topic_names_equal(const char *a, const char *b)
{
	return strcmp(topic_name_canon(a), topic_name_canon(b)) == 0;
}

bool type_name_valid(const char *name)
{
	size_t n = strlen(name);
	if (n >= 256)
		return false;
	for (const char *p = name; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '_' || *p == '.'))
			return false;
	return true;
}

const char *bus_name_resolve(const char *name)
{
	if (name && *name)
		return name;
	const char *env = getenv("SHMBUS_BUS");
	return env && *env ? env : "default";
}

int runtime_dir(char *buf, size_t len, bool create, char *err, size_t errlen)
{
	const char *env = getenv("SHMBUS_RUNTIME_DIR");
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	int n;
	struct stat st;

	if (env && *env)
		n = snprintf(buf, len, "%s", env);
	else if (xdg && *xdg && stat(xdg, &st) == 0 && S_ISDIR(st.st_mode))
		n = snprintf(buf, len, "%s/shmbus", xdg);
	else
		n = snprintf(buf, len, "/tmp/shmbus-%u", (unsigned)getuid());
	if (n < 0 || (size_t)n >= len) {
		snprintf(err, errlen, "runtime directory path is too long");
		return SHMBUS_ENAME;
	}
	if (create && mkdir(buf, 0700) < 0 && errno != EEXIST && errno != EACCES) {
		snprintf(err, errlen, "cannot create runtime directory %s: %s", buf,
			 strerror(errno));
		return SHMBUS_ESYS;
	}
	if (lstat(buf, &st) < 0) {
		snprintf(err, errlen, "runtime directory %s: %s", buf, strerror(errno));
		return errno == ENOENT ? SHMBUS_ENOBROKER : SHMBUS_ESYS;
	}
	/* Nobody else may write it (or they could swap the socket). The
	 * default place must be our own; a place named by SHMBUS_RUNTIME_DIR
	 * may be another user's bus, opened to us by its broker's policy. */
	bool ours = st.st_uid == getuid();
	if (!S_ISDIR(st.st_mode) || (st.st_mode & 022) || (!ours && !(env && *env))) {
		snprintf(err, errlen,
			 "runtime directory %s must be a directory owned by uid %u that no one "
			 "else may write (it is uid %u, mode %03o)",
			 buf, (unsigned)getuid(), (unsigned)st.st_uid, (unsigned)(st.st_mode & 0777));
		return SHMBUS_EPERM;
	}
	return 0;
}

int bus_file(char *buf, size_t len, const char *bus, const char *suffix, bool create, char *err,
	     size_t errlen)
{
	char dir[PATH_BUF];
	int rc = runtime_dir(dir, sizeof(dir), create, err, errlen);
	if (rc)
		return rc;
	int n = snprintf(buf, len, "%s/%s.%s", dir, bus, suffix);
	if (n < 0 || (size_t)n >= len) {
		snprintf(err, errlen, "path for bus '%s' is too long", bus);
		return SHMBUS_ENAME;
	}
	return 0;
}

bool sockaddr_for(struct sockaddr_un *a, const char *path)
{
	size_t n = strlen(path);
	memset(a, 0, sizeof(*a));
	a->sun_family = AF_UNIX;
	if (n >= sizeof(a->sun_path))
		return false;
	memcpy(a->sun_path, path, n + 1);
	return true;
}

int sock_connect(const char *path, int flags)
{
	struct sockaddr_un a;
	if (!sockaddr_for(&a, path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | flags, 0);
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
