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

#define INTEGRITY_NONCE_BYTES 32

/* A topic's tagging key, derived from the bus key, the bus name, the
 * topic's name (as the client asked for it, without the leading '/') and
 * its incarnation (a random id the broker gives it at creation): a message
 * replayed into another bus, topic, or a re-created topic does not
 * verify. */
struct integrity {
	uint8_t subkey[INTEGRITY_KEY_BYTES];
};

/* Read a key file: 64 hex digits (and an optional newline), or 32 raw
 * bytes. Refused if group or others may read it. 0 or SHMBUS_EPERM /
 * SHMBUS_EINVAL / SHMBUS_ESYS with the reason in err. */
int integrity_load_key(const char *path, uint8_t key[INTEGRITY_KEY_BYTES], char *err,
		       size_t errlen);

void integrity_derive(struct integrity *in, const uint8_t key[INTEGRITY_KEY_BYTES],
		      const char *bus, const char *topic, const uint8_t *incarnation,
		      size_t incarnation_len);

/* Tag over publisher id, sequence number, publish time, size and payload. */
void integrity_tag(const struct integrity *in, uint32_t publisher_id, uint64_t seq,
		   int64_t publish_ns, uint32_t size, const void *payload,
		   uint8_t tag[INTEGRITY_TAG_BYTES]);

/* Constant-time check of a tag. */
bool integrity_check(const struct integrity *in, uint32_t publisher_id, uint64_t seq,
		     int64_t publish_ns, uint32_t size, const void *payload,
		     const uint8_t tag[INTEGRITY_TAG_BYTES]);

/* The answer to a broker's challenge: proves the key without showing it. */
void integrity_proof(const uint8_t key[INTEGRITY_KEY_BYTES], const char *bus,
		     const uint8_t nonce[INTEGRITY_NONCE_BYTES], uint8_t proof[INTEGRITY_TAG_BYTES]);
bool integrity_proof_check(const uint8_t key[INTEGRITY_KEY_BYTES], const char *bus,
			   const uint8_t nonce[INTEGRITY_NONCE_BYTES],
			   const uint8_t proof[INTEGRITY_TAG_BYTES]);

/* Random bytes (nonces, incarnations); false if the system has none. */
bool integrity_random(void *buf, size_t n);

#endif
