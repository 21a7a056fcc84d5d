/*
 * harness.h - what the bus tests share: a bus of their own per test, a
 * broker they can stop and wait for, child processes with results sent
 * back over pipes, and a check that nothing is left behind.
 */
#ifndef SHMBUS_TEST_HARNESS_H
#define SHMBUS_TEST_HARNESS_H

#include <CUnit/CUnit.h>
#include <shmbus/shmbus.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* A bus name unique to this process and tag: "t-<tag>-<pid>". */
const char *h_bus_name(const char *tag);

/* Connect (auto-starting the broker); CU_FAIL and NULL on failure. */
shmbus_bus *h_connect(const char *bus);

/* Stop the bus's broker with SIGTERM and wait (pidfd, bounded) until it
 * has exited; then check no /dev/shm file of the bus is left. */
void h_stop_bus(const char *bus);

/* Wait until pid (not necessarily our child) exits, at most timeout_ms.
 * True if it did. */
bool h_wait_exit(pid_t pid, int timeout_ms);

/* Whether a /dev/shm entry is one of the bus's files (its page, or a
 * topic file), by the names segment.h gives them. */
bool h_shm_is_bus_file(const char *entry, const char *bus);

/* Number of /dev/shm files belonging to the bus. */
int h_shm_files(const char *bus);

/* Fork a child running fn(arg, result_fd); the child writes its result
 * struct to result_fd and exits. */
pid_t h_fork(int (*fn)(void *arg, int result_fd), void *arg, int *result_fd);

/* Read exactly n bytes from fd within timeout_ms. */
bool h_read(int fd, void *buf, size_t n, int timeout_ms);
/* Reap a forked child within timeout_ms (kills it after); its exit code,
 * or -1. */
int h_reap(pid_t pid, int timeout_ms);

int64_t h_now_ns(void);

/* Run `$SHMBUS_CLI ARGS` (bounded by timeout(1): 60 s), stdout and stderr
 * into out; returns its exit code, or -1. */
int h_run_cli(char *out, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Run the CUnit suites registered by `add`, return the exit code. */
int h_run(const char *name, void (*add)(void));

#endif
