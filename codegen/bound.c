/*
 * bound.c - the largest encoded size of a message type (see bound.h).
 *
 * The walk follows message fields depth first and remembers each type it
 * finished, so a type used in many places is sized once; a type met again
 * while it is still being sized contains itself and has no bound. The
 * first field that makes a type unbounded ends the walk: its name is the
 * answer's reason.
 */
#include "bound.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

typedef Google__Protobuf__DescriptorProto MessageProto;
typedef Google__Protobuf__FieldDescriptorProto FieldProto;

/* Deeper nesting than this is reported unbounded rather than followed
 * (the stack stays small; no real schema comes near it). */
#define MAX_DEPTH 100

struct sized {
	const MessageProto *d;
	bool done;       /* false: being sized, further up the walk */
	uint64_t bound;  /* when done */
};

struct walk {
	pbbound_find_fn find;
	void *ctx;
	struct sized *seen;
	size_t n_seen, cap_seen;
	char *why;
	size_t whylen;
};

static int say(struct walk *w, int result, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int say(struct walk *w, int result, const char *fmt, ...)
{
	va_list ap;

	if (w->why && w->whylen) {
		va_start(ap, fmt);
		vsnprintf(w->why, w->whylen, fmt, ap);
		va_end(ap);
	}
	return result;
}

static uint64_t varint_size(uint64_t v)
{
	uint64_t n = 1;

	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

/* The widest value of a scalar field, without its key; 0 for the types
 * that are not scalars. protobuf-c writes int32 and enums sign-extended
 * to 64 bits, so a negative one takes ten bytes; sint32 is zigzag
 * encoded into 32 bits. */
static uint64_t scalar_max(Google__Protobuf__FieldDescriptorProto__Type t)
{
	switch (t) {
	case GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_INT32:
	case GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_INT64:
	case GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_UINT64:
	case GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_SINT64:
	case GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_ENUM:
		return 10;
	case GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_UINT32:
	case GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_SINT32:
		return 5;
	case GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_BOOL:
		return 1;
	case GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_FIXED32:
	case GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_SFIXED32:
	case GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_FLOAT:
		return 4;
	case GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_FIXED64:
	case GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_SFIXED64:
	case GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_DOUBLE:
		return 8;
	default:
		return 0;
	}
}

static const char *field_name(const FieldProto *f)
{
	return f->name ? f->name : "(unnamed)";
}

/* protoc writes references fully qualified: ".pkg.Name". */
static const char *plain(const char *type_name)
{
	return type_name && type_name[0] == '.' ? type_name + 1 : type_name ? type_name : "";
}

static int message_max(struct walk *w, const char *name, int depth, uint64_t *out);

/* Whether a field by itself leaves its message without a bound. Checked
 * for all of a message's fields before any nested message is followed,
 * so that the reason names the nearest such field. */
static int field_unbounded(struct walk *w, const char *owner, const FieldProto *f)
{
	if (f->has_label && f->label == GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__LABEL__LABEL_REPEATED) {
		const MessageProto *entry =
			f->type == GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_MESSAGE
				? w->find(w->ctx, plain(f->type_name))
				: NULL;
		bool map = entry && entry->options && entry->options->map_entry;

		return say(w, PBBOUND_UNBOUNDED, "%s.%s is %s", owner, field_name(f),
			   map ? "a map" : "repeated");
	}
	switch (f->type) {
	case GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_STRING:
		return say(w, PBBOUND_UNBOUNDED, "%s.%s is a string", owner, field_name(f));
	case GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_BYTES:
		return say(w, PBBOUND_UNBOUNDED, "%s.%s is bytes", owner, field_name(f));
	case GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_GROUP:
		return say(w, PBBOUND_UNBOUNDED, "%s.%s is a group", owner, field_name(f));
	case GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_MESSAGE:
		return PBBOUND_BOUNDED;
	default:
		if (scalar_max(f->type) == 0)
			return say(w, PBBOUND_UNBOUNDED, "%s.%s has an unknown type %d", owner,
				   field_name(f), (int)f->type);
		return PBBOUND_BOUNDED;
	}
}

/* The most a field that passed field_unbounded() adds to its message:
 * key, length, value. */
static int field_max(struct walk *w, const FieldProto *f, int depth, uint64_t *out)
{
	uint64_t key = varint_size((uint64_t)(f->number > 0 ? f->number : 0) << 3);
	uint64_t inner;
	int rc;

	if (f->type != GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_MESSAGE) {
		*out = key + scalar_max(f->type);
		return PBBOUND_BOUNDED;
	}
	rc = message_max(w, plain(f->type_name), depth + 1, &inner);
	if (rc != PBBOUND_BOUNDED)
		return rc;
	*out = key + varint_size(inner) + inner;
	return PBBOUND_BOUNDED;
}

static int remember(struct walk *w, const MessageProto *d, size_t *index)
{
	if (w->n_seen == w->cap_seen) {
		size_t cap = w->cap_seen ? w->cap_seen * 2 : 16;
		struct sized *p = realloc(w->seen, cap * sizeof(*p));

		if (!p)
			return say(w, PBBOUND_ENOMEM, "out of memory");
		w->seen = p;
		w->cap_seen = cap;
	}
	*index = w->n_seen++;
	w->seen[*index] = (struct sized){ .d = d };
	return PBBOUND_BOUNDED;
}

/* Every field that is not in a oneof, and the largest member of each
 * oneof (only one is on the wire). proto3 `optional` fields sit in
 * oneofs of their own, which comes to the same. */
static int fields_max(struct walk *w, const char *name, const MessageProto *d, int depth,
		      uint64_t *out)
{
	uint64_t total = 0, c;
	int rc;

	for (size_t i = 0; i < d->n_field; i++) {
		if ((rc = field_unbounded(w, name, d->field[i])) != PBBOUND_BOUNDED)
			return rc;
	}
	for (size_t i = 0; i < d->n_field; i++) {
		if (d->field[i]->has_oneof_index)
			continue;
		if ((rc = field_max(w, d->field[i], depth, &c)) != PBBOUND_BOUNDED)
			return rc;
		total += c;
		if (total > PBBOUND_LIMIT)
			return say(w, PBBOUND_UNBOUNDED, "%s can be larger than 2 GiB", name);
	}
	for (size_t k = 0; k < d->n_oneof_decl; k++) {
		uint64_t largest = 0;

		for (size_t i = 0; i < d->n_field; i++) {
			if (!d->field[i]->has_oneof_index || (size_t)d->field[i]->oneof_index != k)
				continue;
			if ((rc = field_max(w, d->field[i], depth, &c)) != PBBOUND_BOUNDED)
				return rc;
			if (c > largest)
				largest = c;
		}
		total += largest;
		if (total > PBBOUND_LIMIT)
			return say(w, PBBOUND_UNBOUNDED, "%s can be larger than 2 GiB", name);
	}
	*out = total;
	return PBBOUND_BOUNDED;
}

static int message_max(struct walk *w, const char *name, int depth, uint64_t *out)
{
	const MessageProto *d = w->find(w->ctx, name);
	size_t index = 0;
	int rc;

	if (!d)
		return say(w, PBBOUND_ENOTYPE, "message type '%s' is not in the schema", name);
	for (size_t i = 0; i < w->n_seen; i++) {
		if (w->seen[i].d != d)
			continue;
		if (!w->seen[i].done)
			return say(w, PBBOUND_UNBOUNDED, "%s contains itself", name);
		*out = w->seen[i].bound;
		return PBBOUND_BOUNDED;
	}
	if (depth > MAX_DEPTH)
		return say(w, PBBOUND_UNBOUNDED, "%s is nested more than %d levels deep", name,
			   MAX_DEPTH);
	if ((rc = remember(w, d, &index)) != PBBOUND_BOUNDED)
		return rc;
	if ((rc = fields_max(w, name, d, depth, out)) != PBBOUND_BOUNDED)
		return rc;
	w->seen[index].done = true; /* by index: `seen` moves as it grows */
	w->seen[index].bound = *out;
	return PBBOUND_BOUNDED;
}

int pbbound_max_size(const char *type, pbbound_find_fn find, void *ctx, uint64_t *bound,
		     char *why, size_t whylen)
{
	struct walk w = { .find = find, .ctx = ctx, .why = why, .whylen = whylen };
	int rc;

	if (why && whylen)
		why[0] = '\0';
	*bound = 0;
	rc = message_max(&w, type, 0, bound);
	free(w.seen);
	if (rc != PBBOUND_BOUNDED)
		*bound = 0;
	return rc;
}
