/*
 * fuzz_segment.c - libFuzzer target: the topic meta and bus page checks,
 * fed arbitrary bytes as a corrupt object could hold. A meta that passes
 * must describe a layout whose parts lie where it says.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "segment.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[256];
	/* Page-aligned copy, as a mapping would be. */
	void *mem = NULL;
	size_t cap = size ? (size + 4095) / 4096 * 4096 : 4096;
	if (posix_memalign(&mem, 4096, cap))
		return 0;
	memcpy(mem, data, size);
	if (seg_meta_check(mem, size, err, sizeof(err)) == 0) {
		const struct meta_header *h = mem;
		if (h->meta_size > size || h->schema_offset + h->schema_size > h->meta_size ||
		    strlen(h->name) >= sizeof(h->name) ||
		    h->data_size != DATA_SLOTS_OFFSET + (uint64_t)h->slot_count * h->slot_size)
			__builtin_trap();
		struct seg_layout l;
		seg_layout_of(h, &l);
		if (l.slot_count != h->slot_count)
			__builtin_trap();
	}
	seg_bus_check(mem, size, err, sizeof(err));
	free(mem);
	return 0;
}
