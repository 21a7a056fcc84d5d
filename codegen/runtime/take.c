/*
 * take.c - typed taking: unpacking a message from its slot, and viewing
 * one large bytes field in place while the other fields are unpacked.
 *
 * The slot may be overwritten by a publisher that laps this subscriber
 * while it is read; the release afterwards tells. Until then a decoding
 * failure may be torn data rather than a bad message, so the release
 * decides which is reported (SHMBUS_ELAPPED before SHMBUS_EBADMSG).
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

/* protobuf-c returns NULL both for a message that does not decode and for
 * a failed allocation; this allocator wrapper tells them apart. */
struct alloc_watch {
	ProtobufCAllocator base;
	ProtobufCAllocator *inner; /* NULL: malloc/free, as protobuf-c */
	bool failed;
};

static void *watch_alloc(void *data, size_t size)
{
	struct alloc_watch *w = data;
	void *p = w->inner ? w->inner->alloc(w->inner->allocator_data, size) : malloc(size);

	if (!p)
		w->failed = true;
	return p;
}

static void watch_free(void *data, void *ptr)
{
	struct alloc_watch *w = data;

	if (w->inner)
		w->inner->free(w->inner->allocator_data, ptr);
	else
		free(ptr);
}

static void watch_init(struct alloc_watch *w, ProtobufCAllocator *inner)
{
	w->base.alloc = watch_alloc;
	w->base.free = watch_free;
	w->base.allocator_data = w;
	w->inner = inner;
	w->failed = false;
}

/* Message `seq` of sub's topic did not decode as `type` (SHMBUS_EBADMSG),
 * or the allocator failed (SHMBUS_ENOMEM): rc says which, and the error
 * text says it in words (SHMBUS_EVERSION keeps the arena's own). Called
 * after the view's release, which would clear it. */
static int unpack_failure(int rc, shmbus_sub *sub, const struct shmbus_typed_type *type,
			  uint64_t seq)
{
	if (rc == SHMBUS_ENOMEM)
		return shmbus_fail(SHMBUS_ENOMEM,
				   "out of memory unpacking message %llu of topic '%s' (skipped)",
				   (unsigned long long)seq, shmbus_sub_topic(sub));
	if (rc == SHMBUS_EBADMSG)
		return shmbus_fail(SHMBUS_EBADMSG,
				   "message %llu of topic '%s' does not decode as %s (skipped)",
				   (unsigned long long)seq, shmbus_sub_topic(sub),
				   type->descriptor->name);
	return rc;
}

/* Whether a message of `type` taken with `allocator` is unpacked into one
 * block (arena.c): the generated code of such a type frees it through
 * shmbus_typed_free(), which knows. */
static bool one_block(const struct shmbus_typed_type *type, const ProtobufCAllocator *allocator)
{
	return !allocator && (type->flags & SHMBUS_TYPED_ARENA);
}

/* Unpacks size bytes at data as type: into one block, or piece by piece
 * through watch. SHMBUS_OK, SHMBUS_EBADMSG or SHMBUS_ENOMEM (or
 * SHMBUS_EVERSION, arena.c). */
static int unpack(const struct shmbus_typed_type *type, struct alloc_watch *watch, size_t size,
		  const uint8_t *data, ProtobufCMessage **out)
{
	if (one_block(type, watch->inner))
		return typed_arena_unpack(type->descriptor, size, data, out);
	*out = protobuf_c_message_unpack(type->descriptor, &watch->base, size, data);
	if (*out)
		return SHMBUS_OK;
	return watch->failed ? SHMBUS_ENOMEM : SHMBUS_EBADMSG;
}

void shmbus_typed_free(const struct shmbus_typed_type *type, ProtobufCMessage *msg,
		       ProtobufCAllocator *allocator)
{
	if (!msg)
		return;
	if (typed_type_valid(type) && one_block(type, allocator))
		typed_arena_free(msg);
	else
		protobuf_c_message_free_unpacked(msg, allocator);
}

int shmbus_typed_unpack(const struct shmbus_typed_type *type, ProtobufCAllocator *allocator,
			const void *data, size_t size, ProtobufCMessage **out)
{
	struct alloc_watch watch;
	int rc;

	if (!out)
		return shmbus_fail(SHMBUS_EINVAL, "shmbus_typed_unpack: NULL out");
	*out = NULL;
	if (!typed_type_valid(type))
		return typed_fail_type("shmbus_typed_unpack", type);
	if (!data && size)
		return shmbus_fail(SHMBUS_EINVAL, "shmbus_typed_unpack: NULL data");
	watch_init(&watch, allocator);
	rc = unpack(type, &watch, size, data, out);
	if (rc == SHMBUS_ENOMEM)
		return shmbus_fail(SHMBUS_ENOMEM, "out of memory unpacking a %s",
				   type->descriptor->name);
	if (rc == SHMBUS_EBADMSG)
		return shmbus_fail(SHMBUS_EBADMSG, "%zu bytes do not decode as %s", size,
				   type->descriptor->name);
	return rc;
}

static int check(const char *fn, shmbus_sub *sub, const struct shmbus_typed_type *type)
{
	if (!typed_type_valid(type))
		return typed_fail_type(fn, type);
	if (!sub)
		return shmbus_fail(SHMBUS_EINVAL, "%s: NULL subscriber", fn);
	if (!typed_sub_has_type(sub, type))
		return typed_fail_other_type(shmbus_sub_topic(sub), shmbus_sub_type_name(sub),
					     type);
	return SHMBUS_OK;
}

/* Unpacks a private copy taken before the release (COPY_FIRST types). */
static int take_copy(shmbus_sub *sub, const struct shmbus_typed_type *type,
		     struct alloc_watch *watch, struct shmbus_view *view, ProtobufCMessage **out)
{
	uint8_t *copy = watch->base.alloc(watch, view->info.size ? view->info.size : 1);
	int rc;

	if (copy)
		memcpy(copy, view->data, view->info.size);
	rc = shmbus_sub_release(sub, view);
	if (!copy)
		return rc == SHMBUS_OK ? unpack_failure(SHMBUS_ENOMEM, sub, type, view->info.seq)
				       : rc;
	if (rc == SHMBUS_OK) {
		rc = unpack(type, watch, view->info.size, copy, out);
		if (rc != SHMBUS_OK)
			rc = unpack_failure(rc, sub, type, view->info.seq);
	}
	watch->base.free(watch, copy);
	return rc;
}

/* Unpacks straight from the slot, then checks it was not overwritten. */
static int take_in_place(shmbus_sub *sub, const struct shmbus_typed_type *type,
			 struct alloc_watch *watch, struct shmbus_view *view,
			 ProtobufCMessage **out)
{
	ProtobufCMessage *m = NULL;
	int unpacked = unpack(type, watch, view->info.size, view->data, &m);
	int rc = shmbus_sub_release(sub, view);

	if (rc != SHMBUS_OK) {
		/* Overwritten while unpacked: whatever came out is torn. */
		shmbus_typed_free(type, m, watch->inner);
		return rc;
	}
	if (unpacked != SHMBUS_OK)
		return unpack_failure(unpacked, sub, type, view->info.seq);
	*out = m;
	return SHMBUS_OK;
}

int shmbus_typed_take(shmbus_sub *sub, const struct shmbus_typed_type *type,
		      ProtobufCAllocator *allocator, ProtobufCMessage **out,
		      struct shmbus_msg_info *info)
{
	struct alloc_watch watch;
	struct shmbus_view view;
	int rc;

	if (!out)
		return shmbus_fail(SHMBUS_EINVAL, "shmbus_typed_take: NULL out");
	*out = NULL;
	if ((rc = check("shmbus_typed_take", sub, type)) != SHMBUS_OK)
		return rc;
	if ((rc = shmbus_sub_view(sub, &view)) != SHMBUS_OK)
		return rc;
	typed_prefetch(view.data, view.info.size, false);
	watch_init(&watch, allocator);
	if (type->flags & SHMBUS_TYPED_COPY_FIRST)
		rc = take_copy(sub, type, &watch, &view, out);
	else
		rc = take_in_place(sub, type, &watch, &view, out);
	if (rc == SHMBUS_OK && info)
		*info = view.info;
	return rc;
}

static void view_clear(struct shmbus_typed_view *view)
{
	view->field = NULL;
	view->field_size = 0;
}

/* Unpacks every field but `number`. When the field ends the message (as
 * loans lay it out) the rest is unpacked in place; otherwise, or for
 * COPY_FIRST types, the other fields are gathered into a private buffer
 * first. NULL with watch->failed or not. */
static ProtobufCMessage *unpack_rest(const struct shmbus_typed_type *type, uint32_t number,
				     struct alloc_watch *watch, const struct shmbus_typed_view *v,
				     size_t kept, size_t n_found)
{
	const uint8_t *p = v->view.data;
	size_t size = v->view.info.size;
	const uint8_t *field;
	size_t field_size;
	ProtobufCMessage *m = NULL;
	uint8_t *rest;

	if (!(type->flags & SHMBUS_TYPED_COPY_FIRST) &&
	    (n_found == 0 || (n_found == 1 && v->field + v->field_size == p + size)))
		return protobuf_c_message_unpack(type->descriptor, &watch->base, kept, p);
	rest = watch->base.alloc(watch, kept ? kept : 1);
	if (!rest)
		return NULL;
	/* A second walk: what it copies may differ from the first if the
	 * slot is being overwritten; the release will say so. */
	if (wire_scan(p, size, number, rest, kept, &kept, &n_found, &field, &field_size) == 0)
		m = protobuf_c_message_unpack(type->descriptor, &watch->base, kept, rest);
	watch->base.free(watch, rest);
	return m;
}

int shmbus_typed_view_field(shmbus_sub *sub, const struct shmbus_typed_type *type,
			    uint32_t number, ProtobufCAllocator *allocator, ProtobufCMessage **out,
			    struct shmbus_typed_view *view)
{
	struct alloc_watch watch;
	ProtobufCMessage *m = NULL;
	size_t kept, n_found;
	int rc, released;

	if (!out || !view)
		return shmbus_fail(SHMBUS_EINVAL, "shmbus_typed_view_field: NULL %s",
				   out ? "view" : "out");
	*out = NULL;
	view_clear(view);
	if ((rc = check("shmbus_typed_view_field", sub, type)) != SHMBUS_OK)
		return rc;
	if ((rc = shmbus_sub_view(sub, &view->view)) != SHMBUS_OK)
		return rc;
	/* The walk reads the keys up to the field and the fields after it,
	 * not the field's bytes: mostly the message's first lines. */
	typed_prefetch(view->view.data, view->view.info.size < 256 ? view->view.info.size : 256,
		       false);
	watch_init(&watch, allocator);
	if (wire_scan(view->view.data, view->view.info.size, number, NULL, 0, &kept, &n_found,
		      &view->field, &view->field_size) != 0) {
		rc = SHMBUS_EBADMSG;
		goto fail;
	}
	m = unpack_rest(type, number, &watch, view, kept, n_found);
	if (!m) {
		rc = watch.failed ? SHMBUS_ENOMEM : SHMBUS_EBADMSG;
		goto fail;
	}
	if (!shmbus_sub_view_valid(sub, &view->view)) {
		rc = SHMBUS_ELAPPED;
		goto fail;
	}
	*out = m;
	return SHMBUS_OK;
fail:
	if (m)
		protobuf_c_message_free_unpacked(m, allocator);
	uint64_t seq = view->view.info.seq;
	released = shmbus_sub_release(sub, &view->view);
	view_clear(view);
	/* Torn data explains any decoding failure. */
	if (released == SHMBUS_ELAPPED)
		return SHMBUS_ELAPPED;
	if (rc == SHMBUS_ELAPPED)
		return shmbus_fail(SHMBUS_ELAPPED,
				   "message %llu of topic '%s' was overwritten "
				   "while it was read (counted lost)",
				   (unsigned long long)seq, shmbus_sub_topic(sub));
	return unpack_failure(rc, sub, type, seq);
}

int shmbus_typed_view_release(shmbus_sub *sub, ProtobufCMessage *msg,
			      ProtobufCAllocator *allocator, struct shmbus_typed_view *view)
{
	int rc;

	if (!sub || !view)
		return shmbus_fail(SHMBUS_EINVAL, "shmbus_typed_view_release: NULL %s",
				   sub ? "view" : "subscriber");
	rc = shmbus_sub_release(sub, &view->view);
	if (msg)
		protobuf_c_message_free_unpacked(msg, allocator);
	view_clear(view);
	return rc;
}
