/*
 * encode.c - JSON to wire bytes, the inverse of decode.c: what `shmbus pub`
 * publishes. Every mismatch between the JSON and the type (unknown field,
 * wrong value type, out-of-range number, bad base64, two members of one
 * oneof) is an error naming the path of the value, e.g. "pose.position.x".
 */
#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

struct buf {
	uint8_t *p;
	size_t n, cap;
	bool fail;
};

struct ectx {
	char *err;
	size_t errlen;
	char path[512];
	size_t plen;
};

static void put(struct buf *b, const void *p, size_t n)
{
	if (b->fail || n == 0)
		return;
	if (b->n + n > b->cap) {
		size_t cap = b->cap ? b->cap : 64;
		while (b->n + n > cap)
			cap *= 2;
		uint8_t *q = realloc(b->p, cap);
		if (!q) {
			b->fail = true;
			return;
		}
		b->p = q;
		b->cap = cap;
	}
	memcpy(b->p + b->n, p, n);
	b->n += n;
}

static void put_varint(struct buf *b, uint64_t v)
{
	uint8_t tmp[10];
	size_t n = 0;
	do {
		tmp[n] = (uint8_t)(v & 0x7f);
		v >>= 7;
		if (v)
			tmp[n] |= 0x80;
		n++;
	} while (v);
	put(b, tmp, n);
}

static void put_fixed(struct buf *b, uint64_t v, size_t n)
{
	uint8_t tmp[8];
	for (size_t i = 0; i < n; i++)
		tmp[i] = (uint8_t)(v >> (8 * i));
	put(b, tmp, n);
}

static void put_tag(struct buf *b, uint32_t number, enum pj_wire wt)
{
	put_varint(b, (uint64_t)number << 3 | (uint64_t)wt);
}

static void put_len(struct buf *b, uint32_t number, const struct buf *sub)
{
	put_tag(b, number, PJ_WT_LEN);
	put_varint(b, sub->n);
	put(b, sub->p, sub->n);
	if (sub->fail)
		b->fail = true;
}

/* ----------------------------------------------------------- the path */

/* Append pre, s, post to the path; returns the length to pop back to. */
static size_t push(struct ectx *c, const char *pre, const char *s, const char *post)
{
	size_t old = c->plen;
	int n = snprintf(c->path + c->plen, sizeof(c->path) - c->plen, "%s%s%s", pre, s, post);
	if (n > 0)
		c->plen = c->plen + (size_t)n < sizeof(c->path) ? c->plen + (size_t)n
								 : sizeof(c->path) - 1;
	return old;
}

static size_t push_index(struct ectx *c, size_t i)
{
	char num[24];
	snprintf(num, sizeof(num), "%zu", i);
	return push(c, "[", num, "]");
}

static void pop(struct ectx *c, size_t old)
{
	c->plen = old;
	c->path[old] = '\0';
}

static const char *json_kind(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT: return "an object";
	case JSON_ARRAY: return "an array";
	case JSON_STRING: return "a string";
	case JSON_INTEGER: return "an integer";
	case JSON_REAL: return "a real number";
	case JSON_TRUE: case JSON_FALSE: return "a boolean";
	default: return "null";
	}
}

static int bad(struct ectx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int bad(struct ectx *c, const char *fmt, ...)
{
	char what[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	pj_err(c->err, c->errlen, "%s%s%s", c->path, c->plen ? ": " : "", what);
	return PBJSON_EJSON;
}

static int wrong(struct ectx *c, const struct pj_field *f, const json_t *v, const char *want)
{
	return bad(c, "field '%s' (%s) needs %s, not %s", f->name, pj_type_text(f->type), want,
		   json_kind(v));
}

/* --------------------------------------------------------------- values */

static int to_i64(struct ectx *c, const struct pj_field *f, const json_t *v, int64_t min,
		  int64_t max, int64_t *out)
{
	int64_t x;
	if (json_is_integer(v)) {
		x = json_integer_value(v);
	} else if (json_is_real(v)) {
		double d = json_real_value(v);
		if (d != floor(d) || d < -9223372036854775808.0 || d >= 9223372036854775808.0)
			return bad(c, "field '%s' (%s) needs an integer, not %g", f->name,
				   pj_type_text(f->type), d);
		x = (int64_t)d;
	} else if (json_is_string(v)) {
		const char *s = json_string_value(v);
		char *end;
		errno = 0;
		long long ll = strtoll(s, &end, 10);
		if (!*s || *end || errno)
			return bad(c, "field '%s' (%s): \"%s\" is not an integer", f->name,
				   pj_type_text(f->type), s);
		x = ll;
	} else {
		return wrong(c, f, v, "an integer");
	}
	if (x < min || x > max)
		return bad(c, "field '%s' (%s): %" PRId64 " is out of range", f->name,
			   pj_type_text(f->type), x);
	*out = x;
	return 0;
}

static int to_u64(struct ectx *c, const struct pj_field *f, const json_t *v, uint64_t max,
		  uint64_t *out)
{
	uint64_t x;
	if (json_is_integer(v)) {
		if (json_integer_value(v) < 0)
			return bad(c, "field '%s' (%s) cannot be negative", f->name,
				   pj_type_text(f->type));
		x = (uint64_t)json_integer_value(v);
	} else if (json_is_real(v)) {
		double d = json_real_value(v);
		if (d != floor(d) || d < 0 || d >= 18446744073709551616.0)
			return bad(c, "field '%s' (%s) needs an unsigned integer, not %g", f->name,
				   pj_type_text(f->type), d);
		x = (uint64_t)d;
	} else if (json_is_string(v)) {
		const char *s = json_string_value(v);
		char *end;
		errno = 0;
		unsigned long long ull = strtoull(s, &end, 10);
		if (!*s || *s == '-' || *end || errno)
			return bad(c, "field '%s' (%s): \"%s\" is not an unsigned integer", f->name,
				   pj_type_text(f->type), s);
		x = ull;
	} else {
		return wrong(c, f, v, "an unsigned integer");
	}
	if (x > max)
		return bad(c, "field '%s' (%s): %" PRIu64 " is out of range", f->name,
			   pj_type_text(f->type), x);
	*out = x;
	return 0;
}

static int to_double(struct ectx *c, const struct pj_field *f, const json_t *v, double *out)
{
	if (json_is_number(v)) {
		*out = json_number_value(v);
	} else if (json_is_string(v)) {
		const char *s = json_string_value(v);
		char *end;
		if (strcmp(s, "NaN") == 0) {
			*out = NAN;
		} else if (strcmp(s, "Infinity") == 0) {
			*out = INFINITY;
		} else if (strcmp(s, "-Infinity") == 0) {
			*out = -INFINITY;
		} else {
			*out = strtod(s, &end);
			if (!*s || *end || !isfinite(*out))
				return bad(c, "field '%s' (%s): \"%s\" is not a number", f->name,
					   pj_type_text(f->type), s);
		}
	} else {
		return wrong(c, f, v, "a number");
	}
	if (f->type == PJ_FLOAT && isfinite(*out) && fabs(*out) > FLT_MAX)
		return bad(c, "field '%s' (float): %g is out of range", f->name, *out);
	return 0;
}

static int enc_msg(struct ectx *c, const struct pj_msg *m, const json_t *obj, struct buf *b,
		   int depth);

/* One value of field f, without its key (the caller writes the key, or
 * packs several values under one). */
static int enc_value(struct ectx *c, const struct pj_field *f, const json_t *v, struct buf *b,
		     int depth)
{
	int64_t i;
	uint64_t u;
	double d;
	int rc = 0;
	switch (f->type) {
	case PJ_INT32:
		if (!(rc = to_i64(c, f, v, INT32_MIN, INT32_MAX, &i)))
			put_varint(b, (uint64_t)i); /* negative: sign-extended, 10 bytes */
		break;
	case PJ_SINT32:
		if (!(rc = to_i64(c, f, v, INT32_MIN, INT32_MAX, &i)))
			put_varint(b, (uint32_t)(((uint32_t)i << 1) ^ (uint32_t)(i < 0 ? -1 : 0)));
		break;
	case PJ_SFIXED32:
		if (!(rc = to_i64(c, f, v, INT32_MIN, INT32_MAX, &i)))
			put_fixed(b, (uint32_t)i, 4);
		break;
	case PJ_INT64:
		if (!(rc = to_i64(c, f, v, INT64_MIN, INT64_MAX, &i)))
			put_varint(b, (uint64_t)i);
		break;
	case PJ_SINT64:
		if (!(rc = to_i64(c, f, v, INT64_MIN, INT64_MAX, &i)))
			put_varint(b, ((uint64_t)i << 1) ^ (uint64_t)(i < 0 ? -1 : 0));
		break;
	case PJ_SFIXED64:
		if (!(rc = to_i64(c, f, v, INT64_MIN, INT64_MAX, &i)))
			put_fixed(b, (uint64_t)i, 8);
		break;
	case PJ_UINT32:
		if (!(rc = to_u64(c, f, v, UINT32_MAX, &u)))
			put_varint(b, u);
		break;
	case PJ_FIXED32:
		if (!(rc = to_u64(c, f, v, UINT32_MAX, &u)))
			put_fixed(b, u, 4);
		break;
	case PJ_UINT64:
		if (!(rc = to_u64(c, f, v, UINT64_MAX, &u)))
			put_varint(b, u);
		break;
	case PJ_FIXED64:
		if (!(rc = to_u64(c, f, v, UINT64_MAX, &u)))
			put_fixed(b, u, 8);
		break;
	case PJ_BOOL:
		if (!json_is_boolean(v))
			return wrong(c, f, v, "true or false");
		put_varint(b, json_is_true(v));
		break;
	case PJ_FLOAT: {
		if ((rc = to_double(c, f, v, &d)))
			break;
		float x = (float)d;
		uint32_t bits;
		memcpy(&bits, &x, sizeof(bits));
		put_fixed(b, bits, 4);
		break;
	}
	case PJ_DOUBLE:
		if ((rc = to_double(c, f, v, &d)))
			break;
		memcpy(&u, &d, sizeof(u));
		put_fixed(b, u, 8);
		break;
	case PJ_ENUM: {
		int32_t n;
		if (json_is_string(v)) {
			if (!pj_enum_number(f->en, json_string_value(v), &n))
				return bad(c, "field '%s': enum %s has no value '%s'", f->name,
					   f->en->full_name, json_string_value(v));
		} else if (json_is_integer(v)) {
			if ((rc = to_i64(c, f, v, INT32_MIN, INT32_MAX, &i)))
				break;
			n = (int32_t)i;
		} else {
			return wrong(c, f, v, "an enum value name or number");
		}
		put_varint(b, (uint64_t)(int64_t)n);
		break;
	}
	case PJ_STRING:
		if (!json_is_string(v))
			return wrong(c, f, v, "a string");
		put_varint(b, json_string_length(v));
		put(b, json_string_value(v), json_string_length(v));
		break;
	case PJ_BYTES: {
		if (!json_is_string(v))
			return wrong(c, f, v, "a base64 string");
		uint8_t *raw;
		size_t n;
		if (!pj_unbase64(json_string_value(v), json_string_length(v), &raw, &n))
			return bad(c, "field '%s' (bytes): not valid base64", f->name);
		put_varint(b, n);
		put(b, raw, n);
		free(raw);
		break;
	}
	case PJ_MESSAGE: {
		struct buf sub = { 0 };
		rc = enc_msg(c, f->msg, v, &sub, depth + 1);
		if (!rc) {
			put_varint(b, sub.n);
			put(b, sub.p, sub.n);
			b->fail |= sub.fail;
		}
		free(sub.p);
		break;
	}
	default:
		return bad(c, "field '%s' has an unsupported type", f->name);
	}
	return rc;
}

/* The key for a map entry: JSON object keys are strings; the key field's
 * type says how to read them. */
static int enc_map_key(struct ectx *c, const struct pj_field *kf, const char *k, struct buf *b)
{
	json_t *kv;
	if (kf->type == PJ_STRING)
		kv = json_string(k);
	else if (kf->type == PJ_BOOL && (strcmp(k, "true") == 0 || strcmp(k, "false") == 0))
		kv = json_boolean(strcmp(k, "true") == 0);
	else if (kf->type == PJ_BOOL)
		return bad(c, "map key '%s' is not true or false", k);
	else
		kv = json_string(k); /* integers from their decimal text */
	if (!kv) {
		pj_err(c->err, c->errlen, "out of memory");
		return PBJSON_ENOMEM;
	}
	put_tag(b, 1, pj_wire_type(kf->type));
	int rc = enc_value(c, kf, kv, b, 0);
	json_decref(kv);
	return rc;
}

static int enc_map(struct ectx *c, const struct pj_field *f, const json_t *v, struct buf *b,
		   int depth)
{
	if (!json_is_object(v))
		return wrong(c, f, v, "an object (a map)");
	const struct pj_field *kf = pj_field_by_number(f->msg, 1);
	const struct pj_field *vf = pj_field_by_number(f->msg, 2);
	const char *k;
	json_t *e;
	int rc = 0;
	json_object_foreach((json_t *)v, k, e) {
		size_t old = push(c, "[\"", k, "\"]");
		struct buf entry = { 0 };
		rc = enc_map_key(c, kf, k, &entry);
		if (!rc && !json_is_null(e)) {
			put_tag(&entry, 2, pj_wire_type(vf->type));
			rc = enc_value(c, vf, e, &entry, depth + 1);
		}
		if (!rc)
			put_len(b, f->number, &entry);
		free(entry.p);
		pop(c, old);
		if (rc)
			break;
	}
	return rc;
}

static int enc_field(struct ectx *c, const struct pj_field *f, const json_t *v, struct buf *b,
		     int depth)
{
	if (f->is_map)
		return enc_map(c, f, v, b, depth);
	if (!f->repeated) {
		put_tag(b, f->number, pj_wire_type(f->type));
		return enc_value(c, f, v, b, depth);
	}
	if (!json_is_array(v))
		return wrong(c, f, v, "an array");
	struct buf packed = { 0 };
	int rc = 0;
	for (size_t i = 0; !rc && i < json_array_size(v); i++) {
		const json_t *e = json_array_get(v, i);
		size_t old = push_index(c, i);
		if (json_is_null(e)) {
			rc = bad(c, "null in repeated field '%s'", f->name);
		} else if (f->packed) {
			rc = enc_value(c, f, e, &packed, depth);
		} else {
			put_tag(b, f->number, pj_wire_type(f->type));
			rc = enc_value(c, f, e, b, depth);
		}
		pop(c, old);
	}
	if (!rc && f->packed && packed.n)
		put_len(b, f->number, &packed);
	free(packed.p);
	return rc;
}

static int enc_wkt(struct ectx *c, const struct pj_msg *m, const json_t *v, struct buf *b)
{
	int64_t sec;
	int32_t nanos;
	const char *s = json_string_value(v);
	bool ok = m->wkt == PJ_WKT_TIMESTAMP ? pj_parse_timestamp(s, &sec, &nanos)
					     : pj_parse_duration(s, &sec, &nanos);
	if (!ok)
		return bad(c, "\"%s\" is not a %s", s,
			   m->wkt == PJ_WKT_TIMESTAMP ? "timestamp (RFC 3339, e.g. "
							"\"2024-05-01T12:00:00.5Z\")"
						      : "duration (e.g. \"1.5s\")");
	if (sec) {
		put_tag(b, 1, PJ_WT_VARINT);
		put_varint(b, (uint64_t)sec);
	}
	if (nanos) {
		put_tag(b, 2, PJ_WT_VARINT);
		put_varint(b, (uint64_t)(int64_t)nanos);
	}
	return 0;
}

static int enc_msg(struct ectx *c, const struct pj_msg *m, const json_t *obj, struct buf *b,
		   int depth)
{
	if (depth > PBJSON_MAX_DEPTH) {
		bad(c, "nested deeper than %d", PBJSON_MAX_DEPTH);
		return PBJSON_ELIMIT;
	}
	if (m->wkt == PJ_WKT_WRAPPER) { /* the bare value of field 1 */
		put_tag(b, 1, pj_wire_type(m->fields[0].type));
		return enc_value(c, &m->fields[0], obj, b, depth);
	}
	if (m->wkt && json_is_string(obj))
		return enc_wkt(c, m, obj, b);
	if (!json_is_object(obj))
		return bad(c, "%s needs an object, not %s", m->full_name, json_kind(obj));
	size_t noneof = m->d->n_oneof_decl;
	const char **oneof_seen = noneof ? calloc(noneof, sizeof(*oneof_seen)) : NULL;
	if (noneof && !oneof_seen) {
		pj_err(c->err, c->errlen, "out of memory");
		return PBJSON_ENOMEM;
	}
	const char *k;
	json_t *v;
	int rc = 0;
	json_object_foreach((json_t *)obj, k, v) {
		const struct pj_field *f = pj_field_by_name(m, k);
		if (!f) {
			char names[256] = "";
			size_t n = 0;
			for (size_t i = 0; i < m->nfields && n < sizeof(names); i++) {
				int w = snprintf(names + n, sizeof(names) - n, "%s%s", i ? ", " : "",
						 m->fields[i].json_name);
				n += w > 0 ? (size_t)w : 0;
			}
			rc = bad(c, "%s has no field '%s' (fields: %s)", m->full_name, k,
				 m->nfields ? names : "none");
			break;
		}
		if (json_is_null(v))
			continue;
		if (f->oneof >= 0) {
			if (oneof_seen[f->oneof]) {
				rc = bad(c, "'%s' and '%s' are both set, but they are in the same "
					    "oneof '%s'",
					 oneof_seen[f->oneof], f->json_name,
					 m->d->oneof_decl[f->oneof]->name);
				break;
			}
			oneof_seen[f->oneof] = f->json_name;
		}
		size_t old = push(c, c->plen ? "." : "", f->json_name, "");
		rc = enc_field(c, f, v, b, depth);
		if (rc)
			break;
		pop(c, old);
	}
	free(oneof_seen);
	return rc;
}

int pbjson_encode(const pbjson_schema *s, const char *type, const json_t *in, uint8_t **out,
		  size_t *len, char *err, size_t errlen)
{
	if (!s || !type || !in || !out || !len) {
		pj_err(err, errlen, "invalid argument");
		return PBJSON_EINVAL;
	}
	*out = NULL;
	*len = 0;
	const struct pj_msg *m = pj_find_msg(s, type);
	if (!m) {
		pj_err(err, errlen, "no message type '%s' in the schema", type);
		return PBJSON_ENOTYPE;
	}
	struct ectx c = { .err = err, .errlen = errlen };
	struct buf b = { 0 };
	int rc = enc_msg(&c, m, in, &b, 0);
	if (!rc && !b.p) /* the empty message: still a buffer, never NULL */
		b.p = malloc(1);
	if (!rc && (b.fail || !b.p)) {
		pj_err(err, errlen, "out of memory");
		rc = PBJSON_ENOMEM;
	}
	if (rc) {
		free(b.p);
		return rc;
	}
	*out = b.p;
	*len = b.n;
	return 0;
}
