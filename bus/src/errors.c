/*
 * errors.c - owns the text of every error code.
 */
#include "shmbus/shmbus.h"

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
	case SHMBUS_ENOTOPIC: return "no such topic";
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
	}
	return "unknown shmbus error";
}
