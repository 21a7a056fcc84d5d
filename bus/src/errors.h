/*
 * errors.h - the calling thread's error text (shmbus_errmsg): every public
 * call clears it on entry and sets it where it fails.
 */
#ifndef SHMBUS_ERRORS_H
#define SHMBUS_ERRORS_H

#include <stddef.h>

#define ERR_TEXT_MAX 512

/* Clear the calling thread's text (the entry of every public call). */
void err_clear(void);

/* Set the calling thread's text. */
void err_set(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Set it and return `code` (for `return err_fail(SHMBUS_E..., "...")`). */
int err_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The calling thread's text. */
const char *err_text(void);

#endif /* SHMBUS_ERRORS_H */
