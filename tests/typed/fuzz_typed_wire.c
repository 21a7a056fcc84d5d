/*
 * fuzz_typed_wire.c - libFuzzer target: what a zero-copy view does with a
 * slot's bytes (codegen/runtime/wire.c), fed arbitrary bytes as a
 * misbehaving publisher could write them: find shmbus.msgs.Image.data
 * among the top-level fields, gather the other fields, unpack them and
 * the whole message with protobuf-c. Checks the walk's promises: the
 * field lies inside the bytes, two walks over unchanged bytes agree, and
 * what is gathered never holds the field. And what a take does with them
 * (codegen/runtime/arena.c, decode.c): unpacked into one block as an
 * Image, an Imu, the test schema's Everything (oneofs, maps, strings,
 * packed and unpacked repeated fields, nesting) and a proto2 message with
 * required fields and defaults, the message packs back into the very
 * bytes protobuf-c's own unpack (malloc per piece) gives (and so does
 * pack.c's packer for both), the bytes
 * decode.c takes on itself are exactly those protobuf-c accepts among
 * them, and the block is freed whole.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "shmbus/msgs/image.pb-c.h"
#include "shmbus/msgs/imu.pb-c.h"
#include "shmbus/test/all.pb-c.h"
#include "shmbus/test/legacy.pb-c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define DATA_FIELD 15u /* shmbus.msgs.Image.data */

/* decode.c on its own (typed_arena_unpack() falls back where it cannot):
 * its pieces from malloc, remembered to be freed after. */
static void *pieces_kept[4096];
static size_t n_kept;

static void *counting_alloc(void *data, size_t size)
{
	void *p = n_kept < sizeof(pieces_kept) / sizeof(pieces_kept[0]) ? malloc(size) : NULL;

	(void)data;
	if (p)
		pieces_kept[n_kept++] = p;
	return p;
}

static void counting_nofree(void *data, void *p)
{
	(void)data;
	(void)p;
}

static ProtobufCAllocator counting = {counting_alloc, counting_nofree, NULL};

static void counting_free(void)
{
	while (n_kept)
		free(pieces_kept[--n_kept]);
}

/* One block and malloc per piece decode the same, or both refuse. */
static void same_in_one_block(const ProtobufCMessageDescriptor *desc, const uint8_t *data,
			      size_t size)
{
	ProtobufCMessage *block = NULL, *pieces = protobuf_c_message_unpack(desc, NULL, size, data);
	int rc = typed_arena_unpack(desc, size, data, &block);
	bool accepted = pieces != NULL;

	if ((rc == SHMBUS_OK) != (pieces != NULL) || (rc == SHMBUS_OK) != (block != NULL))
		abort();
	if (block) {
		size_t n = protobuf_c_message_get_packed_size(block);
		uint8_t *a = malloc(n ? n : 1), *b = malloc(n ? n : 1), *c = malloc(n ? n : 1);

		if (!a || !b || !c || protobuf_c_message_get_packed_size(pieces) != n ||
		    protobuf_c_message_pack(block, a) != n || protobuf_c_message_pack(pieces, b) != n ||
		    memcmp(a, b, n) != 0)
			abort();
		/* pack.c packs both as protobuf-c does, byte for byte. */
		if (typed_pack(block, c) != n || memcmp(c, b, n) != 0 ||
		    typed_pack(pieces, c) != n || memcmp(c, b, n) != 0)
			abort();
		free(a);
		free(b);
		free(c);
	}
	typed_arena_free(block);
	protobuf_c_message_free_unpacked(pieces, NULL);
	if (typed_decode(desc, &counting, data, size, &block) == SHMBUS_OK && !accepted)
		abort(); /* decode.c kept bytes protobuf-c refuses */
	counting_free();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t kept, n_found, kept2, n_found2, field_size, field_size2;
	const uint8_t *field, *field2;
	Shmbus__Msgs__Image *m;
	uint8_t *rest;

	same_in_one_block(&shmbus__msgs__image__descriptor, data, size);
	same_in_one_block(&shmbus__msgs__imu__descriptor, data, size);
	same_in_one_block(&shmbus__test__all__everything__descriptor, data, size);
	same_in_one_block(&shmbus__test__legacy__frame__descriptor, data, size);
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
