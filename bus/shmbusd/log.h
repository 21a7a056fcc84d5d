/*
 * log.h - the broker's log: one timestamped line per event on stderr (the
 * bus's log file when auto-started).
 */
#ifndef SHMBUSD_LOG_H
#define SHMBUSD_LOG_H

void log_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
