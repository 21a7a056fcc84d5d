/*
 * integrity.c - owns message tags (libsodium's keyed BLAKE2b) and the key
 * file rules.
 */
#include "integrity.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shmbus/shmbus.h"

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int integrity_load_key(const char *path, uint8_t key[INTEGRITY_KEY_BYTES], char *err,
		       size_t errlen)
{
	uint8_t buf[130];
	struct stat st;
	if (sodium_init() < 0) {
		snprintf(err, errlen, "libsodium failed to initialise");
		return SHMBUS_ESYS;
	}
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "key file %s: %s", path, strerror(errno));
		return errno == EACCES ? SHMBUS_EPERM : SHMBUS_ESYS;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "key file %s is not a regular file", path);
		close(fd);
		return SHMBUS_EINVAL;
	}
	if (st.st_mode & 077) {
		snprintf(err, errlen,
			 "key file %s may be read by group or others (mode %03o): chmod 600 it",
			 path, (unsigned)(st.st_mode & 0777));
		close(fd);
		return SHMBUS_EPERM;
	}
	ssize_t n = read(fd, buf, sizeof(buf));
	close(fd);
	if (n == INTEGRITY_KEY_BYTES) {
		memcpy(key, buf, INTEGRITY_KEY_BYTES);
		sodium_memzero(buf, sizeof(buf));
		return 0;
	}
	size_t len = n > 0 ? (size_t)n : 0;
	while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
		len--;
	if (len == 2 * INTEGRITY_KEY_BYTES) {
		bool ok = true;
		for (size_t i = 0; i < INTEGRITY_KEY_BYTES; i++) {
			int hi = hexval(buf[2 * i]), lo = hexval(buf[2 * i + 1]);
			ok &= hi >= 0 && lo >= 0;
			key[i] = (uint8_t)((hi << 4) | (lo & 15));
		}
		sodium_memzero(buf, sizeof(buf));
		if (ok)
			return 0;
	}
	snprintf(err, errlen, "key file %s must hold 64 hex digits or 32 bytes", path);
	return SHMBUS_EINVAL;
}

/* Domain-separated keyed hash: the label, then each part with its length,
 * so no two different inputs hash the same bytes. */
static void hash_part(crypto_generichash_state *st, const void *p, size_t n)
{
	uint8_t len[4] = { (uint8_t)n, (uint8_t)(n >> 8), (uint8_t)(n >> 16), (uint8_t)(n >> 24) };
	crypto_generichash_update(st, len, sizeof(len));
	crypto_generichash_update(st, p, n);
}

void integrity_derive(struct integrity *in, const uint8_t key[INTEGRITY_KEY_BYTES],
		      const char *bus, const char *topic, const uint8_t *incarnation,
		      size_t incarnation_len)
{
	static const char label[] = "shmbus topic key v1";
	crypto_generichash_state st;
	crypto_generichash_init(&st, key, INTEGRITY_KEY_BYTES, sizeof(in->subkey));
	hash_part(&st, label, sizeof(label) - 1);
	hash_part(&st, bus, strlen(bus));
	hash_part(&st, topic, strlen(topic));
	hash_part(&st, incarnation, incarnation_len);
	crypto_generichash_final(&st, in->subkey, sizeof(in->subkey));
}

void integrity_tag(const struct integrity *in, uint32_t publisher_id, uint64_t seq,
		   int64_t publish_ns, uint32_t size, const void *payload,
		   uint8_t tag[INTEGRITY_TAG_BYTES])
{
	crypto_generichash_state st;
	uint8_t fixed[24];
	/* Little-endian fixed fields. */
	for (int i = 0; i < 4; i++) {
		fixed[i] = (uint8_t)(publisher_id >> (8 * i));
		fixed[20 + i] = (uint8_t)(size >> (8 * i));
	}
	for (int i = 0; i < 8; i++) {
		fixed[4 + i] = (uint8_t)(seq >> (8 * i));
		fixed[12 + i] = (uint8_t)((uint64_t)publish_ns >> (8 * i));
	}
	crypto_generichash_init(&st, in->subkey, sizeof(in->subkey), INTEGRITY_TAG_BYTES);
	crypto_generichash_update(&st, fixed, sizeof(fixed));
	crypto_generichash_update(&st, payload, size);
	crypto_generichash_final(&st, tag, INTEGRITY_TAG_BYTES);
}

bool integrity_check(const struct integrity *in, uint32_t publisher_id, uint64_t seq,
		     int64_t publish_ns, uint32_t size, const void *payload,
		     const uint8_t tag[INTEGRITY_TAG_BYTES])
{
	uint8_t want[INTEGRITY_TAG_BYTES];
	integrity_tag(in, publisher_id, seq, publish_ns, size, payload, want);
	return sodium_memcmp(want, tag, INTEGRITY_TAG_BYTES) == 0;
}

void integrity_proof(const uint8_t key[INTEGRITY_KEY_BYTES], const char *bus,
		     const uint8_t nonce[INTEGRITY_NONCE_BYTES], uint8_t proof[INTEGRITY_TAG_BYTES])
{
	static const char label[] = "shmbus key proof v1";
	crypto_generichash_state st;
	crypto_generichash_init(&st, key, INTEGRITY_KEY_BYTES, INTEGRITY_TAG_BYTES);
	hash_part(&st, label, sizeof(label) - 1);
	hash_part(&st, bus, strlen(bus));
	hash_part(&st, nonce, INTEGRITY_NONCE_BYTES);
	crypto_generichash_final(&st, proof, INTEGRITY_TAG_BYTES);
}

bool integrity_proof_check(const uint8_t key[INTEGRITY_KEY_BYTES], const char *bus,
			   const uint8_t nonce[INTEGRITY_NONCE_BYTES],
			   const uint8_t proof[INTEGRITY_TAG_BYTES])
{
	uint8_t want[INTEGRITY_TAG_BYTES];
	integrity_proof(key, bus, nonce, want);
	return sodium_memcmp(want, proof, INTEGRITY_TAG_BYTES) == 0;
}

bool integrity_random(void *buf, size_t n)
{
	if (sodium_init() < 0)
		return false;
	randombytes_buf(buf, n);
	return true;
}
