/*
 * foxglove_check.h - Foxglove's own MCAP reader (@mcap/core, the reference
 * TypeScript library, through tests/mcap/node/validate.mjs) as a check in
 * the tests: a file passes when it reads it as a stream and through its
 * index, with CRCs checked, and both agree.
 */
#ifndef SHMBUS_TEST_FOXGLOVE_CHECK_H
#define SHMBUS_TEST_FOXGLOVE_CHECK_H

#include <stddef.h>

/* Where node and validate.mjs are (main() passes them from meson). */
void foxglove_check_setup(const char *node, const char *validator);

/* 0: @mcap/core read the file with `messages` messages (-1: any number);
 * 1: it refused it or counted otherwise (out gets its JSON line); 77: node
 * or @mcap/core is not installed here, said once on stdout; when
 * $SHMBUS_REQUIRE_FOXGLOVE is set (scripts/dev test sets it after
 * installing them), that is 1 instead: in CI this check never skips. */
int foxglove_check(const char *path, long messages, char *out, size_t cap);

#endif
