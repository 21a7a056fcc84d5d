/*
 * errors.c - owns the text of every error code, and each thread's text of
 * its last failure (thread-local, as a connection may be shared by threads
 * and each must see its own reason).
 */
#include "errors.h"

#include <stdarg.h>
#include <stdio.h>

#include "shmbus/shmbus.h"

static _Thread_local char err_buf[ERR_TEXT_MAX];
_Thread_local unsigned char err_dirty __attribute__((tls_model("initial-exec")));

void err_wipe(void)
{
	err_buf[0] = '\0';
	err_dirty = 0;
}

static void err_vset(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));

static void err_vset(const char *fmt, va_list ap)
{
	vsnprintf(err_buf, sizeof(err_buf), fmt, ap);
	err_dirty = 1;
}

void err_set(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	err_vset(fmt, ap);
	va_end(ap);
}

int shmbus_fail(int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	err_vset(fmt, ap);
	va_end(ap);
	return code;
}

const char *err_text(void)
{
	return err_buf;
}

const char *shmbus_errmsg(void)
{
	return err_buf;
}

uint32_t shmbus_version(void)
{
	return (SHMBUS_VERSION_MAJOR << 16) | (SHMBUS_VERSION_MINOR << 8) | SHMBUS_VERSION_PATCH;
}

const char *shmbus_strerror(int err)
{
	switch (err) {
	case SHMBUS_OK: return "success";
	case SHMBUS_EINVAL: return "invalid argument";
	case SHMBUS_ENOMEM: return "out of memory";
	case SHMBUS_EAGAIN: return "no message yet";
	case SHMBUS_ETIMEDOUT: return "timed out";
	case SHMBUS_EMSGSIZE: return "message too large";
	case SHMBUS_ETYPE: return "topic has another message type";
	case SHMBUS_ENOTOPIC: return "no such topic, or it was removed";
	case SHMBUS_ENOBROKER: return "no broker for this bus";
	case SHMBUS_EBROKER: return "broker protocol error";
	case SHMBUS_EVERSION: return "incompatible version";
	case SHMBUS_ECORRUPT: return "corrupt or truncated segment";
	case SHMBUS_EPERM: return "permission denied";
	case SHMBUS_ELAYOUT: return "topic layout too small for the request";
	case SHMBUS_ELIMIT: return "limit reached";
	case SHMBUS_ENOTSUP: return "not supported by this kernel";
	case SHMBUS_EBUSY: return "every slot is held by an open loan";
	case SHMBUS_ESTATE: return "call out of order";
	case SHMBUS_ESYS: return "system call failed";
	case SHMBUS_ELAPPED: return "message overwritten before it was used";
	case SHMBUS_ENAME: return "invalid bus or topic name";
	case SHMBUS_EBADMSG: return "message does not decode as its type";
	case SHMBUS_EINTR: return "wait interrupted";
	}
	return "unknown shmbus error";
}
