/*
 * recording.c - the envelope that carries a channel of another encoding
 * through the bus from `play` to `record` (see recording.h).
 */
#include <stdlib.h>
#include <string.h>

#include "recording.h"

bool rec_foreign_wrap(const struct rec_foreign *f, uint8_t **out, size_t *len)
{
	size_t a = strlen(f->schema_encoding) + 1, b = strlen(f->message_encoding) + 1,
	       c = strlen(f->schema_name) + 1;
	*len = REC_FOREIGN_MAGIC_SIZE + a + b + c + f->size;
	uint8_t *p = *out = malloc(*len);
	if (!p)
		return false;
	memcpy(p, REC_FOREIGN_MAGIC, REC_FOREIGN_MAGIC_SIZE);
	p += REC_FOREIGN_MAGIC_SIZE;
	memcpy(p, f->schema_encoding, a);
	memcpy(p + a, f->message_encoding, b);
	memcpy(p + a + b, f->schema_name, c);
	if (f->size)
		memcpy(p + a + b + c, f->data, f->size);
	return true;
}

bool rec_foreign_unwrap(const void *blob, size_t len, struct rec_foreign *f)
{
	const char *p = blob, *end = p + len;
	if (!blob || len < REC_FOREIGN_MAGIC_SIZE ||
	    memcmp(p, REC_FOREIGN_MAGIC, REC_FOREIGN_MAGIC_SIZE) != 0)
		return false;
	p += REC_FOREIGN_MAGIC_SIZE;
	const char **fields[] = { &f->schema_encoding, &f->message_encoding, &f->schema_name };
	for (int i = 0; i < 3; i++) {
		const char *z = memchr(p, 0, (size_t)(end - p));
		if (!z)
			return false;
		*fields[i] = p;
		p = z + 1;
	}
	f->data = (const uint8_t *)p;
	f->size = (size_t)(end - p);
	return true;
}

void rec_foreign_type(const struct rec_foreign *f, char *buf, size_t len)
{
	const char *from = *f->schema_name ? f->schema_name : f->message_encoding;
	size_t k = 0;
	while (*from == '/' || *from == '.')
		from++;
	if (!*f->schema_name && len > 5) {
		memcpy(buf, "mcap.", 5); /* "mcap.json": bytes of that encoding */
		k = 5;
	}
	for (; *from && k + 1 < len && k < 255; from++) {
		char c = *from;
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			  (c >= '0' && c <= '9') || c == '_' || c == '.';
		buf[k++] = ok ? c : (c == '/' || c == ':' ? '.' : '_');
	}
	if (k == 0 && len > 1)
		buf[k++] = '_';
	buf[k] = 0;
}
