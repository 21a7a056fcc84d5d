/*
 * spec_check.h - an MCAP conformance check for the tests (spec_check.c).
 */
#ifndef SHMBUS_TEST_SPEC_CHECK_H
#define SHMBUS_TEST_SPEC_CHECK_H

#include <stdbool.h>
#include <stdint.h>

struct spec_result {
	uint64_t messages;
	uint64_t chunks;
	uint64_t metadata;
	char why[256]; /* what is wrong, when it fails */
};

/* 0 if the file at path is a complete, conforming MCAP file with a
 * summary; -1 and res->why otherwise. */
int spec_check(const char *path, struct spec_result *res);

#endif
