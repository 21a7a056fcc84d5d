/*
 * integrity.h - keyed BLAKE2b tags over each message of a topic that has
 * integrity on, so a subscriber detects a torn, corrupted or forged
 * message and never delivers it.
 */
#ifndef SHMBUS_INTEGRITY_H
#define SHMBUS_INTEGRITY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define INTEGRITY_KEY_BYTES 32
#define INTEGRITY_TAG_BYTES 32

struct integrity {
	uint8_t key[INTEGRITY_KEY_BYTES];
	const char *topic; /* part of what is tagged: a message replayed on
	                      another topic does not verify */
};

/* Read a key file: 64 hex digits (and an optional newline), or 32 raw
 * bytes. Refused if group or others may read it. 0 or SHMBUS_EPERM /
 * SHMBUS_EINVAL / SHMBUS_ESYS with the reason in err. */
int integrity_load_key(const char *path, uint8_t key[INTEGRITY_KEY_BYTES], char *err,
		       size_t errlen);

/* Tag over topic, sequence number, publish time, size and payload. */
void integrity_tag(const struct integrity *in, uint64_t seq, int64_t publish_ns, uint32_t size,
		   const void *payload, uint8_t tag[INTEGRITY_TAG_BYTES]);

/* Constant-time check of a tag. */
bool integrity_check(const struct integrity *in, uint64_t seq, int64_t publish_ns, uint32_t size,
		     const void *payload, const uint8_t tag[INTEGRITY_TAG_BYTES]);

#endif
