/*
 * errors.h - the calling thread's error text (shmbus_errmsg): every public
 * call clears it on entry and sets it where it fails.
 */
#ifndef SHMBUS_ERRORS_H
#define SHMBUS_ERRORS_H

#include <stddef.h>

#define ERR_TEXT_MAX 512

/* Whether the calling thread's text may be non-empty. Initial-exec, so
 * that reading it is one load at a fixed offset from the thread pointer:
 * the default model for a shared library calls __tls_get_addr on every
 * access, and every public call (an empty take too) begins here. One byte
 * of the static TLS space glibc keeps for libraries loaded by dlopen (the
 * Python binding loads libshmbus so). */
extern _Thread_local unsigned char err_dirty __attribute__((tls_model("initial-exec")));

void err_wipe(void);

/* Clear the calling thread's text (the entry of every public call). */
static inline void err_clear(void)
{
	if (__builtin_expect(err_dirty, 0))
		err_wipe();
}

/* Set the calling thread's text. */
void err_set(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Set it and return `code` (for `return err_fail(SHMBUS_E..., "...")`). */
#define err_fail shmbus_fail /* the public one (shmbus.h), for layered libraries too */

/* The calling thread's text. */
const char *err_text(void);

#endif /* SHMBUS_ERRORS_H */
