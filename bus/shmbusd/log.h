/*
 * log.h - the broker's log: one timestamped line per event, to its log
 * file (rotated: at LOG_MAX_BYTES the file becomes FILE.1 and a new one
 * starts) or to stderr when it runs in a terminal.
 */
#ifndef SHMBUSD_LOG_H
#define SHMBUSD_LOG_H

#include <stdbool.h>
#include <sys/types.h>

#define LOG_MAX_BYTES (1u << 20)

/* Log to `path` from now on (owner-only, whatever the umask): 0 or -1. */
int log_open(const char *path);

void log_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A line caused by a user's request: at most a few per second for each
 * user, the rest counted and reported in one line later, so a user who
 * hammers the broker cannot fill the disk through its log. */
void log_user(uid_t uid, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
