/*
 * fuzz_segment.c - libFuzzer target: segment and control-area header
 * checks, fed arbitrary bytes as a corrupt or hostile /dev/shm file could
 * hold. A header that passes must describe a layout inside the file.
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
	if (seg_check(mem, size, err, sizeof(err)) == 0) {
		const struct seg_header *h = mem;
		uint64_t end = h->slots_offset + (uint64_t)h->slot_count * h->slot_size;
		if (end > size || h->schema_offset + h->schema_size > h->slots_offset ||
		    strlen(h->topic) >= sizeof(h->topic))
			__builtin_trap();
	}
	ctl_check(mem, size, err, sizeof(err));
	free(mem);
	return 0;
}
