/*
 * typed_bus.h - a private bus per test: connect with autostart to a bus
 * named after the test and its pid, and at the end stop its broker and
 * check it left nothing behind.
 */
#ifndef SHMBUS_TESTS_TYPED_BUS_H
#define SHMBUS_TESTS_TYPED_BUS_H

#include <shmbus/shmbus.h>

struct test_bus {
	shmbus_bus *bus;
	char name[65];
};

/* Connect to "t-typed-TAG-PID", starting its broker ($SHMBUSD). */
int test_bus_start(struct test_bus *tb, const char *tag);

/* Disconnect, SIGTERM the broker, wait (bounded) until it has exited.
 * Returns 0, or -1 if it did not exit or left /dev/shm files behind. */
int test_bus_stop(struct test_bus *tb);

#endif
