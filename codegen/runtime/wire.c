/*
 * wire.c - the little of protobuf's wire format the zero-copy fields need
 * beyond protobuf-c: writing a field's key and length in front of bytes
 * the caller fills in, and finding one field among a message's top-level
 * fields. Pure and bounded by the buffer it is given: what it reads may be
 * shared memory that a lapping publisher rewrites meanwhile.
 */
#include "internal.h"

#include <string.h>

/* Beyond this the hardware's stream prefetcher keeps up by itself. */
#define PREFETCH_MAX 4096

void typed_prefetch(const void *p, size_t size, bool for_write)
{
	const char *c = p;

	if (size > PREFETCH_MAX)
		size = PREFETCH_MAX;
	for (size_t off = 0; off < size; off += 64) {
		if (for_write)
			__builtin_prefetch(c + off, 1);
		else
			__builtin_prefetch(c + off, 0);
	}
}

static int get_varint(const uint8_t *p, size_t size, size_t *pos, uint64_t *v)
{
	uint64_t r = 0;

	for (unsigned shift = 0; shift < 64 && *pos < size; shift += 7) {
		uint8_t b = p[(*pos)++];

		r |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			*v = r;
			return 0;
		}
	}
	return -1;
}

/* Where the field that starts at *pos (after its key) ends. */
static int field_end(const uint8_t *p, size_t size, uint64_t key, size_t *pos, uint64_t *len,
		     size_t *end)
{
	switch (key & 7u) {
	case 0: /* varint */
		if (get_varint(p, size, pos, len) != 0)
			return -1;
		*end = *pos;
		return 0;
	case 1: /* 64-bit */
		if (size - *pos < 8)
			return -1;
		*end = *pos + 8;
		return 0;
	case 2: /* length-delimited */
		if (get_varint(p, size, pos, len) != 0 || *len > size - *pos)
			return -1;
		*end = *pos + (size_t)*len;
		return 0;
	case 5: /* 32-bit */
		if (size - *pos < 4)
			return -1;
		*end = *pos + 4;
		return 0;
	default: /* groups: protobuf-c has none */
		return -1;
	}
}

int wire_scan(const uint8_t *p, size_t size, uint32_t number, uint8_t *copy_to,
	      size_t copy_cap, size_t *kept, size_t *n_found, const uint8_t **field,
	      size_t *field_size)
{
	size_t pos = 0;

	*kept = 0;
	*n_found = 0;
	*field = NULL;
	*field_size = 0;
	while (pos < size) {
		size_t start = pos, end;
		uint64_t key, len = 0;

		if (get_varint(p, size, &pos, &key) != 0 ||
		    field_end(p, size, key, &pos, &len, &end) != 0)
			return -1;
		if ((key >> 3) == number && (key & 7u) == 2) {
			*field = p + pos;
			*field_size = (size_t)len;
			(*n_found)++;
		} else {
			if (copy_to) {
				if (end - start > copy_cap - *kept)
					return -1;
				memcpy(copy_to + *kept, p + start, end - start);
			}
			*kept += end - start;
		}
		pos = end;
	}
	return 0;
}
