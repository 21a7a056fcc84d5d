/*
 * harness.h - what the bus tests share: a bus of their own per test, a
 * broker they can stop and wait for, child processes with results sent
 * back over pipes, and a check that nothing is left behind.
 */
#ifndef SHMBUS_TEST_HARNESS_H
#define SHMBUS_TEST_HARNESS_H

#include <CUnit/CUnit.h>
#include <shmbus/shmbus.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "now.h"

/* A bus name unique to this process and tag: "t-<tag>-<pid>". */
const char *h_bus_name(const char *tag);

/* Connect (auto-starting the broker); NULL on failure, with the reason
 * on stderr and, inside a test, a CU_FAIL. Also for suite set-ups, which
 * return -1 when it fails. */
shmbus_bus *h_connect(const char *bus);

/* The pid of the broker serving the bus now (by its socket, never
 * starting one); 0 if none answers. */
pid_t h_broker_pid(const char *bus);

/* Stop the bus's broker with SIGTERM and wait (pidfd, bounded) until it
 * has exited; then check its keeper let everything go and exited. 0, or
 * -1 with the reason on stderr (for suite clean-ups, which return it). */
int h_bus_stop(const char *bus);

/* h_bus_stop() as an assertion of the running test. */
#define h_stop_bus(bus) CU_ASSERT_EQUAL(h_bus_stop(bus), 0)

/* A suite whose tests share one bus, "t-TAG-PID" (h_bus_name(tag)): its
 * set-up connects (h_suite_bus, starting the broker), its clean-up
 * disconnects and stops the bus (h_bus_stop); either failing fails the
 * program. One such suite per program. NULL if CUnit cannot add it. */
CU_pSuite h_add_bus_suite(const char *suite_name, const char *tag);
extern shmbus_bus *h_suite_bus;

/* Wait until pid (not necessarily our child) exits, at most timeout_ms.
 * True if it did. */
bool h_wait_exit(pid_t pid, int timeout_ms);

/* The pid of the bus's keeper (the process holding its shared objects
 * across broker restarts), or -1 if none listens. */
pid_t h_keeper_pid(const char *bus);

/* Wait until the thread of this process whose id is (or will be) in *tid
 * sits in a blocking system call (futex, futex_waitv, poll, ppoll): by
 * /proc, the one sign that a waiting thread sleeps, not merely is about
 * to. At most timeout_ms; true if it did. */
bool h_thread_asleep(const _Atomic pid_t *tid, int timeout_ms);

/* The pid of the bus's keeper once it listens (a keeper started with a
 * broker takes its name a moment after clients can connect), waiting at
 * most timeout_ms; -1 if none did. */
pid_t h_keeper_listening(const char *bus, int timeout_ms);

/* Wait until the bus's keeper has exited, at most timeout_ms. */
bool h_keeper_gone(const char *bus, int timeout_ms);

/* Fork a child running fn(arg, result_fd); the child writes its result
 * struct to result_fd and exits. */
pid_t h_fork(int (*fn)(void *arg, int result_fd), void *arg, int *result_fd);

/* Read exactly n bytes from fd within timeout_ms. */
bool h_read(int fd, void *buf, size_t n, int timeout_ms);
/* Reap a forked child within timeout_ms (kills it after); its exit code,
 * or -1. */
int h_reap(pid_t pid, int timeout_ms);

/* The monotonic clock (now.h, which this header brings for every test). */
static inline int64_t h_now_ns(void)
{
	return now_mono_ns();
}

/* CPU time the calling thread has used: what a wait cost it. */
static inline int64_t h_thread_cpu_ns(void)
{
	return now_ns(CLOCK_THREAD_CPUTIME_ID);
}

/* Run `$SHMBUS_CLI ARGS` (bounded by timeout(1): 60 s), stdout and stderr
 * into out; returns its exit code, or -1. */
int h_run_cli(char *out, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Run a shell command line, its stdout (as much as fits) into out; its
 * exit code, or -1 (killed, or it could not run). */
int h_shell(char *out, size_t cap, const char *cmd);

/* A second Unix user for the tests that cross users, made with useradd
 * (needs root). False, with nothing made, when it cannot be created. */
struct h_user {
	char name[32];
	uid_t uid;
	gid_t gid;
};
bool h_user_create(struct h_user *u);
void h_user_remove(const struct h_user *u);
/* In a child process: drop every group and become u. False on failure. */
bool h_become(const struct h_user *u);

/* Start argv[0] (a path) with argv as a child process, its stdout and
 * stderr into a pipe whose read end goes to *out_fd (NULL: /dev/null);
 * as user `as` when not NULL. Its pid, or -1. */
pid_t h_spawn(const char *const argv[], int *out_fd, const struct h_user *as);

/* Read what fd gives until EOF or timeout_ms, NUL-terminated; bytes read. */
size_t h_read_all(int fd, char *buf, size_t cap, int timeout_ms);

/* Run the CUnit suites registered by `add`, return the exit code. */
int h_run(const char *name, void (*add)(void));

#endif
