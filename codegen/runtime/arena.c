/*
 * arena.c - unpacking a message into one block, and freeing it at once.
 *
 * protobuf-c unpacks a message piece by piece through its allocator (an
 * Imu is nine pieces: the message, four sub-messages, a string, three
 * arrays) and frees it piece by piece; with malloc that is most of what a
 * typed take costs. Here the pieces come out of one malloc'd block, laid
 * end to end (more blocks are chained when a message needs more than its
 * first block holds), a piece is never freed on its own, and
 * shmbus_typed_free() gives all the blocks back.
 *
 * The pieces are decode.c's, or protobuf-c's for the bytes decode.c
 * leaves to it. The message is the first allocation of an unpack, so it starts
 * the first block and its block is found from it: a message taken this
 * way must be freed by shmbus_typed_free() (or the generated __free),
 * never by protobuf_c_message_free_unpacked(), which would free its
 * pieces one by one.
 */
#include "internal.h"

#include <stdalign.h>
#include <stddef.h>
#include <stdlib.h>

/* Every piece is aligned as malloc aligns, as protobuf-c expects. */
#define PIECE_ALIGN alignof(max_align_t)
/* Beyond its wire size, what a message's structs usually need: an Imu of
 * 340 wire bytes unpacks into about 560 (its structs are larger than
 * their encodings). A first block this size is small enough for malloc's
 * per-thread cache. */
#define FIRST_SLACK 512u

struct arena_block {
	struct arena_block *next; /* the block chained after this one, or NULL */
	size_t cap;               /* bytes of pieces after the header */
};

/* The pieces start this far into a block. */
#define HEADER_SIZE \
	((sizeof(struct arena_block) + PIECE_ALIGN - 1) / PIECE_ALIGN * PIECE_ALIGN)

struct arena {
	ProtobufCAllocator base;
	struct arena_block *first, *last;
	size_t used;      /* bytes given out of last */
	size_t first_cap; /* what the first block holds */
	bool failed;      /* an allocation failed */
};

static uint8_t *pieces(struct arena_block *b)
{
	return (uint8_t *)b + HEADER_SIZE;
}

static struct arena_block *block_new(size_t cap)
{
	struct arena_block *b;

	if (cap > SIZE_MAX - HEADER_SIZE)
		return NULL;
	b = malloc(HEADER_SIZE + cap);
	if (b) {
		b->next = NULL;
		b->cap = cap;
	}
	return b;
}

static void blocks_free(struct arena_block *b)
{
	while (b) {
		struct arena_block *next = b->next;

		free(b);
		b = next;
	}
}

static void *arena_alloc(void *data, size_t size)
{
	struct arena *a = data;
	size_t need = (size + PIECE_ALIGN - 1) / PIECE_ALIGN * PIECE_ALIGN;
	struct arena_block *b;

	if (need < size) {
		a->failed = true;
		return NULL;
	}
	if (a->last && need <= a->last->cap - a->used) {
		void *p = pieces(a->last) + a->used;

		a->used += need;
		return p;
	}
	/* A new block: the first, or one as large as the first (or the
	 * piece), chained so that shmbus_typed_free() finds it. */
	b = block_new(need > a->first_cap ? need : a->first_cap);
	if (!b) {
		a->failed = true;
		return NULL;
	}
	if (a->last)
		a->last->next = b;
	else
		a->first = b;
	a->last = b;
	a->used = need;
	return pieces(b);
}

/* Pieces go back with their block. */
static void arena_free_piece(void *data, void *ptr)
{
	(void)data;
	(void)ptr;
}

int typed_arena_unpack(const ProtobufCMessageDescriptor *desc, size_t size, const uint8_t *data,
		       ProtobufCMessage **out)
{
	struct arena a = {
		.base = { .alloc = arena_alloc, .free = arena_free_piece },
		.first_cap = size + FIRST_SLACK < size ? size : size + FIRST_SLACK,
	};
	ProtobufCMessage *m;

	a.base.allocator_data = &a;
	*out = NULL;
	/* decode.c first; what it leaves, protobuf-c into a fresh block. */
	if (typed_decode(desc, &a.base, data, size, &m) == SHMBUS_OK) {
		*out = m;
		return SHMBUS_OK;
	}
	blocks_free(a.first);
	a.first = a.last = NULL;
	a.used = 0;
	a.failed = false;
	m = protobuf_c_message_unpack(desc, &a.base, size, data);
	if (m && m == (ProtobufCMessage *)(void *)pieces(a.first)) {
		*out = m;
		return SHMBUS_OK;
	}
	blocks_free(a.first);
	if (m)
		/* A protobuf-c that allocates something before the message:
		 * its block could not be found from it. */
		return shmbus_fail(SHMBUS_EVERSION,
				   "protobuf-c did not allocate the message first: "
				   "cannot unpack %s into one block",
				   desc->name);
	return a.failed ? SHMBUS_ENOMEM : SHMBUS_EBADMSG;
}

void typed_arena_free(ProtobufCMessage *msg)
{
	if (msg)
		blocks_free((struct arena_block *)(void *)((uint8_t *)msg - HEADER_SIZE));
}
