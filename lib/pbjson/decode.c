/*
 * decode.c - wire bytes to JSON. Two passes: the wire is read into a raw
 * JSON object keyed by json_name (so repeated occurrences of a field merge
 * or append as protobuf says), then finalize() puts the fields in their
 * declared order, leaves out defaults and turns well-known types into
 * their strings. Every read is bounds-checked; errors name the offset.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

struct dctx {
	const pbjson_schema *s;
	struct pbjson_options o;
	const uint8_t *base; /* start of the whole message, for offsets */
	char *err;
	size_t errlen;
};

struct rd {
	const uint8_t *p, *end;
};

static size_t at(const struct dctx *c, const uint8_t *p)
{
	return (size_t)(p - c->base);
}

static int nomem(struct dctx *c)
{
	pj_err(c->err, c->errlen, "out of memory");
	return PBJSON_ENOMEM;
}

static int rd_varint(struct dctx *c, struct rd *r, uint64_t *v, const char *what)
{
	const uint8_t *start = r->p;
	uint64_t x = 0;
	for (int i = 0; i < 10; i++) {
		if (r->p >= r->end) {
			pj_err(c->err, c->errlen, "%s: truncated varint at offset %zu", what,
			       at(c, start));
			return PBJSON_EWIRE;
		}
		uint8_t b = *r->p++;
		if (i == 9 && b > 1)
			break;
		x |= (uint64_t)(b & 0x7f) << (7 * i);
		if (!(b & 0x80)) {
			*v = x;
			return 0;
		}
	}
	pj_err(c->err, c->errlen, "%s: varint longer than 64 bits at offset %zu", what,
	       at(c, start));
	return PBJSON_EWIRE;
}

static int rd_fixed(struct dctx *c, struct rd *r, size_t n, uint64_t *v, const char *what)
{
	if ((size_t)(r->end - r->p) < n) {
		pj_err(c->err, c->errlen, "%s: truncated %zu-byte value at offset %zu", what, n,
		       at(c, r->p));
		return PBJSON_EWIRE;
	}
	uint64_t x = 0;
	for (size_t i = 0; i < n; i++)
		x |= (uint64_t)r->p[i] << (8 * i);
	r->p += n;
	*v = x;
	return 0;
}

/* A length prefix and the bytes it covers. */
static int rd_len(struct dctx *c, struct rd *r, const uint8_t **p, size_t *n, const char *what)
{
	const uint8_t *start = r->p;
	uint64_t len;
	int rc = rd_varint(c, r, &len, what);
	if (rc)
		return rc;
	if (len > (uint64_t)(r->end - r->p)) {
		pj_err(c->err, c->errlen,
		       "%s: length %" PRIu64 " at offset %zu runs past the end (%zu bytes left)",
		       what, len, at(c, start), (size_t)(r->end - r->p));
		return PBJSON_EWIRE;
	}
	*p = r->p;
	*n = (size_t)len;
	r->p += len;
	return 0;
}

static int skip(struct dctx *c, struct rd *r, int wt, uint64_t num, size_t where, int depth);

/* A group (proto2, deprecated): every field up to its end-group key. */
static int skip_group(struct dctx *c, struct rd *r, uint64_t num, size_t where, int depth)
{
	if (depth > PBJSON_MAX_DEPTH) {
		pj_err(c->err, c->errlen, "groups nested deeper than %d at offset %zu",
		       PBJSON_MAX_DEPTH, where);
		return PBJSON_ELIMIT;
	}
	for (;;) {
		const uint8_t *start = r->p;
		uint64_t key;
		if (r->p >= r->end) {
			pj_err(c->err, c->errlen, "group %" PRIu64 " at offset %zu has no end", num,
			       where);
			return PBJSON_EWIRE;
		}
		int rc = rd_varint(c, r, &key, "field key");
		if (rc)
			return rc;
		if ((key & 7) == 4) {
			if (key >> 3 == num)
				return 0;
			pj_err(c->err, c->errlen, "end of group %" PRIu64 " at offset %zu inside group %"
			       PRIu64, key >> 3, at(c, start), num);
			return PBJSON_EWIRE;
		}
		if (key >> 3 == 0) {
			pj_err(c->err, c->errlen, "invalid field number 0 at offset %zu", at(c, start));
			return PBJSON_EWIRE;
		}
		rc = skip(c, r, (int)(key & 7), key >> 3, at(c, start), depth + 1);
		if (rc)
			return rc;
	}
}

static int skip(struct dctx *c, struct rd *r, int wt, uint64_t num, size_t where, int depth)
{
	char what[64];
	snprintf(what, sizeof(what), "unknown field %" PRIu64, num);
	uint64_t v;
	const uint8_t *p;
	size_t n;
	switch (wt) {
	case PJ_WT_VARINT: return rd_varint(c, r, &v, what);
	case PJ_WT_I64: return rd_fixed(c, r, 8, &v, what);
	case PJ_WT_I32: return rd_fixed(c, r, 4, &v, what);
	case PJ_WT_LEN: return rd_len(c, r, &p, &n, what);
	case 3:
		return skip_group(c, r, num, where, depth);
	case 4:
		pj_err(c->err, c->errlen, "%s: end of a group that did not start, at offset %zu",
		       what, where);
		return PBJSON_EWIRE;
	default:
		pj_err(c->err, c->errlen, "invalid wire type %d at offset %zu", wt, where);
		return PBJSON_EWIRE;
	}
}

static bool utf8_valid(const uint8_t *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		uint8_t b = s[i];
		size_t k;
		uint32_t cp;
		if (b < 0x80) {
			i++;
			continue;
		} else if ((b & 0xe0) == 0xc0) {
			k = 1, cp = b & 0x1f;
		} else if ((b & 0xf0) == 0xe0) {
			k = 2, cp = b & 0x0f;
		} else if ((b & 0xf8) == 0xf0) {
			k = 3, cp = b & 0x07;
		} else {
			return false;
		}
		if (n - i <= k)
			return false;
		for (size_t j = 1; j <= k; j++) {
			if ((s[i + j] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + j] & 0x3f);
		}
		if ((k == 1 && cp < 0x80) || (k == 2 && cp < 0x800) || (k == 3 && cp < 0x10000) ||
		    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += k + 1;
	}
	return true;
}

static json_t *real_json(double d)
{
	if (isnan(d))
		return json_string("NaN");
	if (isinf(d))
		return json_string(d > 0 ? "Infinity" : "-Infinity");
	return json_real(d);
}

static json_t *u64_json(uint64_t v)
{
	char buf[24];
	snprintf(buf, sizeof(buf), "%" PRIu64, v);
	return json_string(buf);
}

static json_t *i64_json(int64_t v)
{
	char buf[24];
	snprintf(buf, sizeof(buf), "%" PRId64, v);
	return json_string(buf);
}

/* The JSON of a varint or fixed-width value of field f. */
static json_t *scalar_json(const struct pj_field *f, uint64_t v)
{
	switch (f->type) {
	case PJ_INT32: case PJ_SFIXED32:
		return json_integer((int32_t)(uint32_t)v);
	case PJ_UINT32: case PJ_FIXED32:
		return json_integer((uint32_t)v);
	case PJ_SINT32: {
		uint32_t u = (uint32_t)v;
		return json_integer((int32_t)(u >> 1) ^ -(int32_t)(u & 1));
	}
	case PJ_INT64: case PJ_SFIXED64:
		return i64_json((int64_t)v);
	case PJ_UINT64: case PJ_FIXED64:
		return u64_json(v);
	case PJ_SINT64:
		return i64_json((int64_t)(v >> 1) ^ -(int64_t)(v & 1));
	case PJ_BOOL:
		return json_boolean(v != 0);
	case PJ_ENUM: {
		const char *name = pj_enum_name(f->en, (int32_t)(uint32_t)v);
		return name ? json_string(name) : json_integer((int32_t)(uint32_t)v);
	}
	case PJ_FLOAT: {
		uint32_t u = (uint32_t)v;
		float x;
		memcpy(&x, &u, sizeof(x));
		return real_json(isfinite(x) ? pj_float_to_double(x) : (double)x);
	}
	case PJ_DOUBLE: {
		double x;
		memcpy(&x, &v, sizeof(x));
		return real_json(x);
	}
	default:
		return NULL;
	}
}

static json_t *bytes_json(const struct dctx *c, const uint8_t *p, size_t n)
{
	if (c->o.full_bytes || n <= c->o.bytes_limit) {
		char *b = pj_base64(p, n);
		json_t *j = b ? json_string_nocheck(b) : NULL;
		free(b);
		return j;
	}
	char *b = pj_base64(p, c->o.bytes_limit);
	if (!b)
		return NULL;
	size_t len = strlen(b) + 48;
	char *s = malloc(len);
	json_t *j = NULL;
	if (s) {
		snprintf(s, len, "%s... (%zu bytes)", b, n);
		j = json_string_nocheck(s);
	}
	free(b);
	free(s);
	return j;
}

static int dec_msg(struct dctx *c, const struct pj_msg *m, const uint8_t *p, size_t len,
		   json_t *obj, int depth);

/* Put one decoded value v (a new reference, taken over) into obj. */
static int store(struct dctx *c, const struct pj_msg *m, const struct pj_field *f, json_t *obj,
		 json_t *v)
{
	if (!v)
		return nomem(c);
	if (f->repeated) {
		json_t *arr = json_object_get(obj, f->json_name);
		if (!arr) {
			arr = json_array();
			if (!arr || json_object_set_new(obj, f->json_name, arr)) {
				json_decref(v);
				return nomem(c);
			}
		}
		return json_array_append_new(arr, v) ? nomem(c) : 0;
	}
	if (f->oneof >= 0) /* the last member of a oneof on the wire wins */
		for (size_t i = 0; i < m->nfields; i++)
			if (&m->fields[i] != f && m->fields[i].oneof == f->oneof)
				json_object_del(obj, m->fields[i].json_name);
	return json_object_set_new(obj, f->json_name, v) ? nomem(c) : 0;
}

/* A map key as JSON object key text. */
static int map_key(struct dctx *c, const struct pj_field *kf, json_t *k, char *buf, size_t len)
{
	if (!k) {
		snprintf(buf, len, "%s",
			 kf->type == PJ_STRING ? "" : kf->type == PJ_BOOL ? "false" : "0");
	} else if (json_is_string(k)) {
		if (json_string_length(k) >= len) {
			pj_err(c->err, c->errlen, "map key longer than %zu bytes", len - 1);
			return PBJSON_EWIRE;
		}
		snprintf(buf, len, "%s", json_string_value(k));
	} else if (json_is_integer(k)) {
		snprintf(buf, len, "%" JSON_INTEGER_FORMAT, json_integer_value(k));
	} else {
		snprintf(buf, len, "%s", json_is_true(k) ? "true" : "false");
	}
	return 0;
}

static int dec_map_entry(struct dctx *c, const struct pj_field *f, const uint8_t *p, size_t n,
			 json_t *obj, int depth)
{
	json_t *entry = json_object();
	if (!entry)
		return nomem(c);
	int rc = dec_msg(c, f->msg, p, n, entry, depth + 1);
	const struct pj_field *kf = pj_field_by_number(f->msg, 1);
	const struct pj_field *vf = pj_field_by_number(f->msg, 2);
	char key[4096];
	if (!rc)
		rc = map_key(c, kf, json_object_get(entry, kf->json_name), key, sizeof(key));
	json_t *map = rc ? NULL : json_object_get(obj, f->json_name);
	if (!rc && !map) {
		map = json_object();
		if (!map || json_object_set_new(obj, f->json_name, map))
			rc = nomem(c);
	}
	if (!rc) {
		/* A missing value is the value type's default; finalize()
		 * fills in scalars, an absent message is {}. */
		json_t *v = json_object_get(entry, vf->json_name);
		if (v)
			json_incref(v);
		else if (vf->type == PJ_MESSAGE)
			v = json_object();
		else
			v = json_null();
		if (!v || json_object_set_new(map, key, v))
			rc = nomem(c);
	}
	json_decref(entry);
	return rc;
}

static int dec_packed(struct dctx *c, const struct pj_msg *m, const struct pj_field *f,
		      struct rd *r, json_t *obj)
{
	const uint8_t *p;
	size_t n;
	int rc = rd_len(c, r, &p, &n, f->name);
	if (rc)
		return rc;
	struct rd in = { p, p + n };
	json_t *arr = json_object_get(obj, f->json_name);
	if (!arr) { /* even an empty packed run makes the field present */
		arr = json_array();
		if (!arr || json_object_set_new(obj, f->json_name, arr))
			return nomem(c);
	}
	enum pj_wire wt = pj_wire_type(f->type);
	while (in.p < in.end) {
		uint64_t v;
		if (wt == PJ_WT_VARINT)
			rc = rd_varint(c, &in, &v, f->name);
		else
			rc = rd_fixed(c, &in, wt == PJ_WT_I64 ? 8 : 4, &v, f->name);
		if (rc)
			return rc;
		rc = store(c, m, f, obj, scalar_json(f, v));
		if (rc)
			return rc;
	}
	return 0;
}

static int dec_len_field(struct dctx *c, const struct pj_msg *m, const struct pj_field *f,
			 struct rd *r, json_t *obj, int depth)
{
	const uint8_t *p;
	size_t n;
	int rc = rd_len(c, r, &p, &n, f->name);
	if (rc)
		return rc;
	switch (f->type) {
	case PJ_STRING:
		if (!utf8_valid(p, n)) {
			pj_err(c->err, c->errlen, "field '%s': invalid UTF-8 in the string at offset %zu",
			       f->name, at(c, p));
			return PBJSON_EWIRE;
		}
		return store(c, m, f, obj, json_stringn_nocheck((const char *)p, n));
	case PJ_BYTES:
		return store(c, m, f, obj, bytes_json(c, p, n));
	default:
		break;
	}
	if (f->is_map)
		return dec_map_entry(c, f, p, n, obj, depth);
	json_t *sub = f->repeated ? NULL : json_object_get(obj, f->json_name);
	if (sub && json_is_object(sub)) { /* a singular message seen again merges */
		return dec_msg(c, f->msg, p, n, sub, depth + 1);
	}
	sub = json_object();
	if (!sub)
		return nomem(c);
	rc = dec_msg(c, f->msg, p, n, sub, depth + 1);
	if (rc) {
		json_decref(sub);
		return rc;
	}
	return store(c, m, f, obj, sub);
}

static int dec_msg(struct dctx *c, const struct pj_msg *m, const uint8_t *p, size_t len,
		   json_t *obj, int depth)
{
	if (depth > PBJSON_MAX_DEPTH) {
		pj_err(c->err, c->errlen, "messages nested deeper than %d at offset %zu",
		       PBJSON_MAX_DEPTH, at(c, p));
		return PBJSON_ELIMIT;
	}
	struct rd r = { p, p + len };
	while (r.p < r.end) {
		const uint8_t *start = r.p;
		uint64_t key;
		int rc = rd_varint(c, &r, &key, "field key");
		if (rc)
			return rc;
		uint64_t num = key >> 3;
		int wt = (int)(key & 7);
		if (num == 0 || num > 536870911) {
			pj_err(c->err, c->errlen, "invalid field number %" PRIu64 " at offset %zu",
			       num, at(c, start));
			return PBJSON_EWIRE;
		}
		const struct pj_field *f = pj_field_by_number(m, (uint32_t)num);
		if (!f || f->type == PJ_GROUP) { /* groups are skipped, as unknown */
			rc = skip(c, &r, wt, num, at(c, start), depth);
		} else if (f->repeated && pj_wire_type(f->type) != PJ_WT_LEN && wt == PJ_WT_LEN) {
			rc = dec_packed(c, m, f, &r, obj);
		} else if (wt != (int)pj_wire_type(f->type)) {
			pj_err(c->err, c->errlen,
			       "field '%s' (%s, number %u) has wire type %d, not %d, at offset %zu",
			       f->name, pj_type_text(f->type), f->number, wt,
			       (int)pj_wire_type(f->type), at(c, start));
			return PBJSON_EWIRE;
		} else if (wt == PJ_WT_LEN) {
			rc = dec_len_field(c, m, f, &r, obj, depth);
		} else {
			uint64_t v;
			if (wt == PJ_WT_VARINT)
				rc = rd_varint(c, &r, &v, f->name);
			else
				rc = rd_fixed(c, &r, wt == PJ_WT_I64 ? 8 : 4, &v, f->name);
			if (!rc)
				rc = store(c, m, f, obj, scalar_json(f, v));
		}
		if (rc)
			return rc;
	}
	return 0;
}

/* ------------------------------------------------------------- finalize */

static bool is_default(const struct pj_field *f, const json_t *v)
{
	if (f->repeated)
		return json_is_array(v) ? json_array_size(v) == 0 : json_object_size(v) == 0;
	switch (json_typeof(v)) {
	case JSON_INTEGER: return json_integer_value(v) == 0;
	case JSON_REAL: return json_real_value(v) == 0.0 && !signbit(json_real_value(v));
	case JSON_FALSE: return true;
	case JSON_STRING: {
		const char *s = json_string_value(v);
		if (f->type == PJ_ENUM) {
			const char *zero = pj_enum_name(f->en, 0);
			return zero && strcmp(s, zero) == 0;
		}
		if (f->type == PJ_STRING || f->type == PJ_BYTES)
			return *s == '\0';
		return strcmp(s, "0") == 0; /* 64-bit */
	}
	default:
		return false;
	}
}

static json_t *default_json(const struct pj_field *f)
{
	if (f->is_map)
		return json_object();
	if (f->repeated)
		return json_array();
	switch (f->type) {
	case PJ_STRING: case PJ_BYTES: return json_string("");
	case PJ_BOOL: return json_false();
	case PJ_INT64: case PJ_UINT64: case PJ_SINT64: case PJ_FIXED64: case PJ_SFIXED64:
		return json_string("0");
	case PJ_FLOAT: case PJ_DOUBLE: return json_real(0.0);
	case PJ_ENUM: {
		const char *zero = pj_enum_name(f->en, 0);
		return zero ? json_string(zero) : json_integer(0);
	}
	case PJ_MESSAGE: return json_object();
	default: return json_integer(0);
	}
}

static json_t *fin_msg(const struct dctx *c, const struct pj_msg *m, json_t *raw);

static json_t *fin_single(const struct dctx *c, const struct pj_field *f, json_t *v)
{
	if (f->type == PJ_MESSAGE && json_is_object(v))
		return fin_msg(c, f->msg, v);
	if (json_is_null(v)) /* a map value left out on the wire */
		return default_json(f);
	return json_incref(v);
}

static json_t *fin_value(const struct dctx *c, const struct pj_field *f, json_t *v)
{
	if (f->is_map) {
		const struct pj_field *vf = pj_field_by_number(f->msg, 2);
		json_t *out = json_object();
		const char *k;
		json_t *e;
		json_object_foreach(v, k, e) {
			json_t *x = fin_single(c, vf, e);
			if (!out || !x || json_object_set_new(out, k, x)) {
				json_decref(out);
				return NULL;
			}
		}
		return out;
	}
	if (f->repeated) {
		json_t *out = json_array();
		for (size_t i = 0; out && i < json_array_size(v); i++)
			if (json_array_append_new(out, fin_single(c, f, json_array_get(v, i)))) {
				json_decref(out);
				return NULL;
			}
		return out;
	}
	return fin_single(c, f, v);
}

static json_t *fin_wkt(const struct pj_msg *m, json_t *raw)
{
	json_t *js = json_object_get(raw, m->fields[0].number == 1 ? m->fields[0].json_name
								   : m->fields[1].json_name);
	json_t *jn = json_object_get(raw, m->fields[0].number == 2 ? m->fields[0].json_name
								   : m->fields[1].json_name);
	int64_t sec = js && json_is_string(js) ? strtoll(json_string_value(js), NULL, 10) : 0;
	int32_t nanos = jn ? (int32_t)json_integer_value(jn) : 0;
	char buf[64];
	bool ok = m->wkt == PJ_WKT_TIMESTAMP ? pj_format_timestamp(sec, nanos, buf, sizeof(buf))
					     : pj_format_duration(sec, nanos, buf, sizeof(buf));
	return ok ? json_string(buf) : NULL;
}

static json_t *fin_msg(const struct dctx *c, const struct pj_msg *m, json_t *raw)
{
	if (m->wkt == PJ_WKT_WRAPPER) {
		json_t *v = json_object_get(raw, m->fields[0].json_name);
		return v ? fin_single(c, &m->fields[0], v) : default_json(&m->fields[0]);
	}
	if (m->wkt) {
		json_t *s = fin_wkt(m, raw);
		if (s)
			return s;
		/* out of range: print the fields as they are */
	}
	json_t *out = json_object();
	for (size_t i = 0; out && i < m->nfields; i++) {
		const struct pj_field *f = &m->fields[i];
		if (f->type == PJ_GROUP)
			continue;
		json_t *v = json_object_get(raw, f->json_name), *nv;
		if (v) {
			if (!c->o.emit_defaults && !f->presence && is_default(f, v))
				continue;
			nv = fin_value(c, f, v);
		} else if (c->o.emit_defaults && !f->presence) {
			nv = default_json(f);
		} else {
			continue;
		}
		if (!nv || json_object_set_new(out, f->json_name, nv)) {
			json_decref(out);
			return NULL;
		}
	}
	return out;
}

int pbjson_decode(const pbjson_schema *s, const char *type, const uint8_t *buf, size_t len,
		  const struct pbjson_options *o, json_t **out, char *err, size_t errlen)
{
	if (!s || !type || !out || (!buf && len)) {
		pj_err(err, errlen, "invalid argument");
		return PBJSON_EINVAL;
	}
	*out = NULL;
	const struct pj_msg *m = pj_find_msg(s, type);
	if (!m) {
		pj_err(err, errlen, "no message type '%s' in the schema", type);
		return PBJSON_ENOTYPE;
	}
	const uint8_t *bytes = buf ? buf : (const uint8_t *)"";
	struct dctx c = { .s = s, .base = bytes, .err = err, .errlen = errlen };
	if (o)
		c.o = *o;
	else
		pbjson_options_init(&c.o);
	json_t *raw = json_object();
	if (!raw)
		return nomem(&c);
	int rc = dec_msg(&c, m, bytes, len, raw, 0);
	if (!rc) {
		*out = fin_msg(&c, m, raw);
		if (!*out)
			rc = nomem(&c);
	}
	json_decref(raw);
	return rc;
}
