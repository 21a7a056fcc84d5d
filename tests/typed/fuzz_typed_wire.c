/*
 * fuzz_typed_wire.c - libFuzzer target: what a zero-copy view does with a
 * slot's bytes (codegen/runtime/wire.c), fed arbitrary bytes as a
 * misbehaving publisher could write them: find shmbus.msgs.Image.data
 * among the top-level fields, gather the other fields, unpack them and
 * the whole message with protobuf-c. Checks the walk's promises: the
 * field lies inside the bytes, two walks over unchanged bytes agree, and
 * what is gathered never holds the field.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "shmbus/msgs/image.pb-c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define DATA_FIELD 15u /* shmbus.msgs.Image.data */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t kept, n_found, kept2, n_found2, field_size, field_size2;
	const uint8_t *field, *field2;
	Shmbus__Msgs__Image *m;
	uint8_t *rest;

	m = shmbus__msgs__image__unpack(NULL, size, data);
	if (m)
		shmbus__msgs__image__free_unpacked(m, NULL);
	if (wire_scan(data, size, DATA_FIELD, NULL, 0, &kept, &n_found, &field, &field_size) != 0)
		return 0;
	if (kept > size || (n_found > 0) != (field != NULL) ||
	    (field && (field < data || field_size > size || field + field_size > data + size)))
		abort();
	rest = malloc(kept ? kept : 1);
	if (!rest)
		return 0;
	if (wire_scan(data, size, DATA_FIELD, rest, kept, &kept2, &n_found2, &field2,
		      &field_size2) != 0 ||
	    kept2 != kept || n_found2 != n_found || field2 != field || field_size2 != field_size)
		abort();
	m = shmbus__msgs__image__unpack(NULL, kept, rest);
	if (m) {
		if (m->data.len != 0)
			abort();
		shmbus__msgs__image__free_unpacked(m, NULL);
	}
	free(rest);
	return 0;
}
