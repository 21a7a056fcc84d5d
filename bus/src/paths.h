/*
 * paths.h - names on the host: valid bus and topic names, the per-user
 * runtime directory and the files a bus keeps there. Shared by the library,
 * the broker and the tools.
 */
#ifndef SHMBUS_PATHS_H
#define SHMBUS_PATHS_H

#include <stdbool.h>
#include <stddef.h>

#define BUS_NAME_MAX 64
#define TOPIC_NAME_MAX 200
#define PATH_BUF 256

bool bus_name_valid(const char *name);
/* 1..200 of [A-Za-z0-9_.-] in '/'-separated segments, an optional leading
 * '/', no empty, "." or ".." segment. */
bool topic_name_valid(const char *name);
/* A topic's identity: its name without the leading '/' ("/imu" and "imu"
 * are one topic). */
const char *topic_name_canon(const char *name);
bool topic_names_equal(const char *a, const char *b);
/* A message type name: "" (untyped) or up to 255 of [A-Za-z0-9_.], so that
 * it can be printed and logged as it is. */
bool type_name_valid(const char *name);

/* The bus name to use: `name`, else $SHMBUS_BUS, else "default". */
const char *bus_name_resolve(const char *name);

/* The per-user runtime directory ($SHMBUS_RUNTIME_DIR, else
 * $XDG_RUNTIME_DIR/shmbus, else /tmp/shmbus-UID), created 0700 if missing
 * and refused unless owned by us with mode 0700. 0 or a negative SHMBUS_E*
 * with a reason in err. */
int runtime_dir(char *buf, size_t len, bool create, char *err, size_t errlen);

/* "<runtime dir>/<bus>.<suffix>", suffix one of sock, lock, pid, log. */
int bus_file(char *buf, size_t len, const char *bus, const char *suffix, bool create, char *err,
	     size_t errlen);

struct sockaddr_un;
/* Fill a Unix socket address; false if the path does not fit. */
bool sockaddr_for(struct sockaddr_un *a, const char *path);
/* A stream socket connected to path, close-on-exec, with the extra socket
 * type flags given (SOCK_NONBLOCK or 0); -1 with errno (ENAMETOOLONG for
 * a path that does not fit). */
int sock_connect(const char *path, int flags);

#endif /* SHMBUS_PATHS_H */
