/*
 * typed_util.h - helpers shared by the typed-layer and codegen tests:
 * running protoc and the plugin, temporary directories, comparing texts.
 * (Buses and brokers: tests/harness.h.)
 */
#ifndef SHMBUS_TESTS_TYPED_UTIL_H
#define SHMBUS_TESTS_TYPED_UTIL_H

#include <stddef.h>

/* Run argv[0] (searched in $PATH) with stdin from stdin_path (NULL:
 * /dev/null) and stdout/stderr to files in dir; returns the exit status
 * (-1 if it could not run or was killed). *err_text (may be NULL) gets the
 * stderr text, malloc'd. */
int util_run(char *const argv[], const char *stdin_path, const char *dir, char **err_text);

/* Whole file, NUL-terminated, malloc'd; NULL if unreadable. */
char *util_read_file(const char *path, size_t *size);

/* mkdtemp under $TMPDIR or /tmp; malloc'd path. */
char *util_mkdtemp(void);
/* rm -r of a directory made by util_mkdtemp. */
void util_rmtree(const char *path);

/* Compare two texts line by line; returns 0 if equal, else fills msg with
 * the first differing line of each. */
int util_diff(const char *a, const char *b, char *msg, size_t msg_size);

#endif
