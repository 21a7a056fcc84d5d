/*
 * schema.c - loading a FileDescriptorSet and indexing it: every message
 * and enum type by full name, every field resolved to its type, sorted by
 * number for the decoder. Also the subset of files a type needs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

void pj_err(char *err, size_t errlen, const char *fmt, ...)
{
	if (!err || !errlen)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

const char *pbjson_strerror(int e)
{
	switch (e) {
	case PBJSON_OK: return "success";
	case PBJSON_EINVAL: return "invalid argument";
	case PBJSON_ENOMEM: return "out of memory";
	case PBJSON_ESCHEMA: return "invalid schema";
	case PBJSON_ENOTYPE: return "no such message type";
	case PBJSON_EWIRE: return "malformed protobuf message";
	case PBJSON_EJSON: return "JSON does not fit the message type";
	case PBJSON_ELIMIT: return "message nested too deeply";
	case PBJSON_UNBOUNDED: return "the message type has no largest size";
	default: return "unknown pbjson error";
	}
}

void pbjson_options_init(struct pbjson_options *o)
{
	memset(o, 0, sizeof(*o));
	o->bytes_limit = 32;
}

enum pj_wire pj_wire_type(enum pj_type t)
{
	switch (t) {
	case PJ_DOUBLE: case PJ_FIXED64: case PJ_SFIXED64:
		return PJ_WT_I64;
	case PJ_FLOAT: case PJ_FIXED32: case PJ_SFIXED32:
		return PJ_WT_I32;
	case PJ_STRING: case PJ_BYTES: case PJ_MESSAGE:
		return PJ_WT_LEN;
	default:
		return PJ_WT_VARINT;
	}
}

const char *pj_type_text(enum pj_type t)
{
	static const char *const names[] = {
		[PJ_DOUBLE] = "double", [PJ_FLOAT] = "float", [PJ_INT64] = "int64",
		[PJ_UINT64] = "uint64", [PJ_INT32] = "int32", [PJ_FIXED64] = "fixed64",
		[PJ_FIXED32] = "fixed32", [PJ_BOOL] = "bool", [PJ_STRING] = "string",
		[PJ_GROUP] = "group", [PJ_MESSAGE] = "message", [PJ_BYTES] = "bytes",
		[PJ_UINT32] = "uint32", [PJ_ENUM] = "enum", [PJ_SFIXED32] = "sfixed32",
		[PJ_SFIXED64] = "sfixed64", [PJ_SINT32] = "sint32", [PJ_SINT64] = "sint64",
	};
	return (unsigned)t < sizeof(names) / sizeof(names[0]) && names[t] ? names[t] : "?";
}

static char *join_name(const char *scope, const char *name)
{
	size_t a = strlen(scope), b = strlen(name);
	char *s = malloc(a + b + 2);
	if (!s)
		return NULL;
	memcpy(s, scope, a);
	size_t o = a;
	if (a)
		s[o++] = '.';
	memcpy(s + o, name, b + 1);
	return s;
}

/* lowerCamelCase of a field name, as protoc computes json_name. */
static char *camel(const char *name)
{
	char *s = malloc(strlen(name) + 1), *o = s;
	if (!s)
		return NULL;
	bool up = false;
	for (; *name; name++) {
		if (*name == '_') {
			up = true;
			continue;
		}
		*o++ = up && *name >= 'a' && *name <= 'z' ? (char)(*name - 'a' + 'A') : *name;
		up = false;
	}
	*o = '\0';
	return s;
}

struct loader {
	pbjson_schema *s;
	size_t msg_cap, enum_cap;
	char *err;
	size_t errlen;
};

static int add_enum(struct loader *l, const char *scope,
		    const Google__Protobuf__EnumDescriptorProto *e)
{
	if (!e->name || !*e->name) {
		pj_err(l->err, l->errlen, "an enum in '%s' has no name", scope);
		return PBJSON_ESCHEMA;
	}
	if (l->s->nenums == l->enum_cap) {
		size_t cap = l->enum_cap ? l->enum_cap * 2 : 16;
		struct pj_enum *v = realloc(l->s->enums, cap * sizeof(*v));
		if (!v)
			return PBJSON_ENOMEM;
		l->s->enums = v;
		l->enum_cap = cap;
	}
	struct pj_enum *pe = &l->s->enums[l->s->nenums];
	pe->d = e;
	pe->full_name = join_name(scope, e->name);
	if (!pe->full_name)
		return PBJSON_ENOMEM;
	l->s->nenums++;
	return 0;
}

static int add_msg(struct loader *l, const char *scope, bool proto3,
		   const Google__Protobuf__DescriptorProto *d, int depth)
{
	if (!d->name || !*d->name) {
		pj_err(l->err, l->errlen, "a message in '%s' has no name", scope);
		return PBJSON_ESCHEMA;
	}
	if (depth > PBJSON_MAX_DEPTH) {
		pj_err(l->err, l->errlen, "message types nested too deeply in '%s'", scope);
		return PBJSON_ESCHEMA;
	}
	if (l->s->nmsgs == l->msg_cap) {
		size_t cap = l->msg_cap ? l->msg_cap * 2 : 32;
		struct pj_msg *v = realloc(l->s->msgs, cap * sizeof(*v));
		if (!v)
			return PBJSON_ENOMEM;
		l->s->msgs = v;
		l->msg_cap = cap;
	}
	struct pj_msg *m = &l->s->msgs[l->s->nmsgs];
	memset(m, 0, sizeof(*m));
	m->d = d;
	m->proto3 = proto3;
	m->map_entry = d->options && d->options->has_map_entry && d->options->map_entry;
	m->full_name = join_name(scope, d->name);
	if (!m->full_name)
		return PBJSON_ENOMEM;
	l->s->nmsgs++;
	char *full = m->full_name; /* m moves when msgs grows */
	for (size_t i = 0; i < d->n_nested_type; i++) {
		int rc = add_msg(l, full, proto3, d->nested_type[i], depth + 1);
		if (rc)
			return rc;
	}
	for (size_t i = 0; i < d->n_enum_type; i++) {
		int rc = add_enum(l, full, d->enum_type[i]);
		if (rc)
			return rc;
	}
	return 0;
}

static int by_full_name(const void *a, const void *b)
{
	return strcmp(((const struct pj_msg *)a)->full_name, ((const struct pj_msg *)b)->full_name);
}

static int enum_by_full_name(const void *a, const void *b)
{
	return strcmp(((const struct pj_enum *)a)->full_name,
		      ((const struct pj_enum *)b)->full_name);
}

static int by_number(const void *a, const void *b)
{
	uint32_t x = (*(struct pj_field *const *)a)->number;
	uint32_t y = (*(struct pj_field *const *)b)->number;
	return x < y ? -1 : x > y;
}

const struct pj_msg *pj_find_msg(const pbjson_schema *s, const char *name)
{
	size_t lo = 0, hi = s->nmsgs;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(name, s->msgs[mid].full_name);
		if (c == 0)
			return &s->msgs[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

static const struct pj_enum *find_enum(const pbjson_schema *s, const char *name)
{
	size_t lo = 0, hi = s->nenums;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(name, s->enums[mid].full_name);
		if (c == 0)
			return &s->enums[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

const struct pj_field *pj_field_by_number(const struct pj_msg *m, uint32_t number)
{
	size_t lo = 0, hi = m->nfields;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		uint32_t n = m->by_number[mid]->number;
		if (n == number)
			return m->by_number[mid];
		if (number < n)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

const struct pj_field *pj_field_by_name(const struct pj_msg *m, const char *name)
{
	for (size_t i = 0; i < m->nfields; i++)
		if (strcmp(m->fields[i].json_name, name) == 0 || strcmp(m->fields[i].name, name) == 0)
			return &m->fields[i];
	return NULL;
}

const char *pj_enum_name(const struct pj_enum *e, int32_t number)
{
	for (size_t i = 0; i < e->d->n_value; i++)
		if (e->d->value[i]->number == number && e->d->value[i]->name)
			return e->d->value[i]->name;
	return NULL;
}

bool pj_enum_number(const struct pj_enum *e, const char *name, int32_t *number)
{
	for (size_t i = 0; i < e->d->n_value; i++)
		if (e->d->value[i]->name && strcmp(e->d->value[i]->name, name) == 0) {
			*number = e->d->value[i]->number;
			return true;
		}
	return false;
}

static bool packable(enum pj_type t)
{
	return t != PJ_STRING && t != PJ_BYTES && t != PJ_MESSAGE && t != PJ_GROUP;
}

static int resolve_fields(struct loader *l, struct pj_msg *m)
{
	const Google__Protobuf__DescriptorProto *d = m->d;
	if (d->n_field == 0)
		return 0;
	m->fields = calloc(d->n_field, sizeof(*m->fields));
	m->by_number = calloc(d->n_field, sizeof(*m->by_number));
	if (!m->fields || !m->by_number)
		return PBJSON_ENOMEM;
	m->nfields = d->n_field;
	for (size_t i = 0; i < d->n_field; i++) {
		const Google__Protobuf__FieldDescriptorProto *fd = d->field[i];
		struct pj_field *f = &m->fields[i];
		m->by_number[i] = f;
		f->oneof = -1;
		if (!fd->name || !*fd->name || !fd->has_number || fd->number <= 0 ||
		    fd->number > 536870911 || !fd->has_type || (int)fd->type < (int)PJ_DOUBLE ||
		    (int)fd->type > (int)PJ_SINT64) {
			pj_err(l->err, l->errlen, "message '%s' has an invalid field (#%zu)",
			       m->full_name, i);
			return PBJSON_ESCHEMA;
		}
		f->name = fd->name;
		f->number = (uint32_t)fd->number;
		f->type = (enum pj_type)fd->type;
		/* A group field (proto2) is kept, so that encode can name it,
		 * but decode skips it like an unknown field. */
		f->json_name = fd->json_name && *fd->json_name ? strdup(fd->json_name) : camel(fd->name);
		if (!f->json_name)
			return PBJSON_ENOMEM;
		f->repeated = fd->has_label &&
			      fd->label == GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__LABEL__LABEL_REPEATED;
		bool synthetic = fd->has_proto3_optional && fd->proto3_optional;
		if (fd->has_oneof_index) {
			if (fd->oneof_index < 0 || (size_t)fd->oneof_index >= d->n_oneof_decl) {
				pj_err(l->err, l->errlen, "field '%s.%s' has a bad oneof index",
				       m->full_name, f->name);
				return PBJSON_ESCHEMA;
			}
			if (!synthetic)
				f->oneof = fd->oneof_index;
		}
		f->presence = !f->repeated && (!m->proto3 || f->type == PJ_MESSAGE ||
					       fd->has_oneof_index);
		f->default_value = fd->default_value;
		if (f->repeated && packable(f->type)) {
			if (fd->options && fd->options->has_packed)
				f->packed = fd->options->packed;
			else
				f->packed = m->proto3;
		}
		if (f->type == PJ_MESSAGE || f->type == PJ_ENUM) {
			const char *tn = fd->type_name;
			if (!tn || tn[0] != '.') {
				pj_err(l->err, l->errlen,
				       "field '%s.%s' has no fully qualified type name",
				       m->full_name, f->name);
				return PBJSON_ESCHEMA;
			}
			if (f->type == PJ_MESSAGE)
				f->msg = pj_find_msg(l->s, tn + 1);
			else
				f->en = find_enum(l->s, tn + 1);
			if (!f->msg && !f->en) {
				pj_err(l->err, l->errlen,
				       "field '%s.%s' has type '%s', which the schema does not define",
				       m->full_name, f->name, tn + 1);
				return PBJSON_ESCHEMA;
			}
			f->is_map = f->repeated && f->msg && f->msg->map_entry;
		}
	}
	qsort(m->by_number, m->nfields, sizeof(*m->by_number), by_number);
	for (size_t i = 1; i < m->nfields; i++)
		if (m->by_number[i]->number == m->by_number[i - 1]->number) {
			pj_err(l->err, l->errlen, "message '%s' has two fields numbered %u",
			       m->full_name, m->by_number[i]->number);
			return PBJSON_ESCHEMA;
		}
	return 0;
}

static bool is_wrapper(const char *name)
{
	static const char *const wrappers[] = {
		"DoubleValue", "FloatValue", "Int64Value", "UInt64Value", "Int32Value",
		"UInt32Value", "BoolValue", "StringValue", "BytesValue",
	};
	if (strncmp(name, "google.protobuf.", 16) != 0)
		return false;
	for (size_t i = 0; i < sizeof(wrappers) / sizeof(wrappers[0]); i++)
		if (strcmp(name + 16, wrappers[i]) == 0)
			return true;
	return false;
}

static int check_map_entry(struct loader *l, const struct pj_msg *m)
{
	const struct pj_field *k = pj_field_by_number(m, 1), *v = pj_field_by_number(m, 2);
	if (m->nfields != 2 || !k || !v || k->repeated || v->repeated || k->type == PJ_MESSAGE ||
	    k->type == PJ_ENUM || k->type == PJ_BYTES || k->type == PJ_FLOAT ||
	    k->type == PJ_DOUBLE) {
		pj_err(l->err, l->errlen, "map entry type '%s' is malformed", m->full_name);
		return PBJSON_ESCHEMA;
	}
	return 0;
}

int pbjson_schema_load(const void *fds, size_t len, pbjson_schema **out, char *err,
		       size_t errlen)
{
	if (!out || (!fds && len)) {
		pj_err(err, errlen, "invalid argument");
		return PBJSON_EINVAL;
	}
	*out = NULL;
	pbjson_schema *s = calloc(1, sizeof(*s));
	if (!s) {
		pj_err(err, errlen, "out of memory");
		return PBJSON_ENOMEM;
	}
	s->fds = google__protobuf__file_descriptor_set__unpack(NULL, len, fds);
	if (!s->fds) {
		free(s);
		pj_err(err, errlen, "the schema (%zu bytes) is not a serialized FileDescriptorSet",
		       len);
		return PBJSON_ESCHEMA;
	}
	struct loader l = { .s = s, .err = err, .errlen = errlen };
	int rc = 0;
	for (size_t i = 0; !rc && i < s->fds->n_file; i++) {
		const Google__Protobuf__FileDescriptorProto *f = s->fds->file[i];
		const char *pkg = f->package ? f->package : "";
		bool proto3 = f->syntax && strcmp(f->syntax, "proto3") == 0;
		for (size_t j = 0; !rc && j < f->n_message_type; j++)
			rc = add_msg(&l, pkg, proto3, f->message_type[j], 0);
		for (size_t j = 0; !rc && j < f->n_enum_type; j++)
			rc = add_enum(&l, pkg, f->enum_type[j]);
	}
	if (!rc) {
		if (s->nmsgs)
			qsort(s->msgs, s->nmsgs, sizeof(*s->msgs), by_full_name);
		if (s->nenums)
			qsort(s->enums, s->nenums, sizeof(*s->enums), enum_by_full_name);
		for (size_t i = 1; !rc && i < s->nmsgs; i++)
			if (strcmp(s->msgs[i].full_name, s->msgs[i - 1].full_name) == 0) {
				pj_err(err, errlen, "type '%s' is defined twice", s->msgs[i].full_name);
				rc = PBJSON_ESCHEMA;
			}
		for (size_t i = 0; !rc && i < s->nenums; i++)
			if (s->enums[i].d->n_value == 0) {
				pj_err(err, errlen, "enum '%s' has no values", s->enums[i].full_name);
				rc = PBJSON_ESCHEMA;
			}
	}
	for (size_t i = 0; !rc && i < s->nmsgs; i++) {
		struct pj_msg *m = &s->msgs[i];
		rc = resolve_fields(&l, m);
		if (strcmp(m->full_name, "google.protobuf.Timestamp") == 0)
			m->wkt = PJ_WKT_TIMESTAMP;
		else if (strcmp(m->full_name, "google.protobuf.Duration") == 0)
			m->wkt = PJ_WKT_DURATION;
		else if (is_wrapper(m->full_name))
			m->wkt = PJ_WKT_WRAPPER;
	}
	for (size_t i = 0; !rc && i < s->nmsgs; i++)
		if (s->msgs[i].map_entry)
			rc = check_map_entry(&l, &s->msgs[i]);
	for (size_t i = 0; !rc && i < s->nmsgs; i++) {
		/* The WKT formatters read seconds (1) and nanos (2), or value
		 * (1): a look-alike of another shape is printed as a message. */
		const struct pj_msg *m = &s->msgs[i];
		const struct pj_field *a = pj_field_by_number(m, 1), *b = pj_field_by_number(m, 2);
		if (m->wkt == PJ_WKT_WRAPPER ? m->nfields != 1 || !a || a->repeated ||
						       a->type == PJ_MESSAGE || a->type == PJ_GROUP
					     : m->wkt && (m->nfields != 2 || !a || !b ||
							  a->type != PJ_INT64 || b->type != PJ_INT32 ||
							  a->repeated || b->repeated))
			s->msgs[i].wkt = PJ_WKT_NONE;
	}
	if (rc) {
		if (rc == PBJSON_ENOMEM)
			pj_err(err, errlen, "out of memory");
		pbjson_schema_free(s);
		return rc;
	}
	*out = s;
	return 0;
}

void pbjson_schema_free(pbjson_schema *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->nmsgs; i++) {
		for (size_t j = 0; j < s->msgs[i].nfields; j++)
			free(s->msgs[i].fields[j].json_name);
		free(s->msgs[i].fields);
		free(s->msgs[i].by_number);
		free(s->msgs[i].full_name);
	}
	for (size_t i = 0; i < s->nenums; i++)
		free(s->enums[i].full_name);
	free(s->msgs);
	free(s->enums);
	if (s->fds)
		google__protobuf__file_descriptor_set__free_unpacked(s->fds, NULL);
	free(s);
}

bool pbjson_has_type(const pbjson_schema *s, const char *type)
{
	return s && type && pj_find_msg(s, type) != NULL;
}

size_t pbjson_type_count(const pbjson_schema *s)
{
	return s ? s->nmsgs : 0;
}

const char *pbjson_type_name(const pbjson_schema *s, size_t i)
{
	return s && i < s->nmsgs ? s->msgs[i].full_name : NULL;
}

/* Whether the file defines `type` at top level or nested. */
static bool defines(const Google__Protobuf__DescriptorProto *d, const char *scope,
		    const char *type)
{
	size_t n = strlen(scope);
	if (strncmp(type, scope, n) != 0)
		return false;
	const char *rest = type + n;
	if (n) {
		if (*rest != '.')
			return false;
		rest++;
	}
	size_t dn = strlen(d->name);
	if (strncmp(rest, d->name, dn) != 0)
		return false;
	if (rest[dn] == '\0')
		return true;
	if (rest[dn] != '.')
		return false;
	char *inner = join_name(scope, d->name);
	bool found = false;
	for (size_t i = 0; inner && !found && i < d->n_nested_type; i++)
		found = defines(d->nested_type[i], inner, type);
	free(inner);
	return found;
}

/* Whether message d (in scope) or one nested in it defines enum `type`. */
static bool defines_enum(const Google__Protobuf__DescriptorProto *d, const char *scope,
			 const char *type)
{
	char *inner = join_name(scope, d->name);
	size_t n = inner ? strlen(inner) : 0;
	bool found = false;
	if (inner && strncmp(type, inner, n) == 0 && type[n] == '.') {
		for (size_t i = 0; !found && i < d->n_enum_type; i++)
			found = strcmp(type + n + 1, d->enum_type[i]->name) == 0;
		for (size_t i = 0; !found && i < d->n_nested_type; i++)
			found = defines_enum(d->nested_type[i], inner, type);
	}
	free(inner);
	return found;
}

/* Whether file f defines the message or enum `type` (full name). */
static bool file_defines(const Google__Protobuf__FileDescriptorProto *f, const char *type)
{
	const char *pkg = f->package ? f->package : "";
	size_t n = strlen(pkg);
	for (size_t j = 0; j < f->n_message_type; j++)
		if (defines(f->message_type[j], pkg, type) ||
		    defines_enum(f->message_type[j], pkg, type))
			return true;
	if (n && (strncmp(type, pkg, n) != 0 || type[n] != '.'))
		return false;
	for (size_t j = 0; j < f->n_enum_type; j++)
		if (strcmp(type + (n ? n + 1 : 0), f->enum_type[j]->name) == 0)
			return true;
	return false;
}

struct file_name {
	const char *name;
	size_t index;
};

static int by_file_name(const void *a, const void *b)
{
	return strcmp(((const struct file_name *)a)->name, ((const struct file_name *)b)->name);
}

/* What a subset is built from: the set's files, found by name in
 * O(log n), and the subset's files in dependency order. */
struct subset {
	const Google__Protobuf__FileDescriptorSet *fds;
	struct file_name *names; /* sorted */
	size_t n_names;
	bool *seen;
	Google__Protobuf__FileDescriptorProto **list;
	size_t n;
	size_t *stack, *next_dep; /* the depth-first walk, without recursion */
};

static long file_index(const struct subset *b, const char *name)
{
	struct file_name key = { name, 0 };
	const struct file_name *f = bsearch(&key, b->names, b->n_names, sizeof(key), by_file_name);
	return f ? (long)f->index : -1;
}

/* Append file i after its dependencies (depth-first, each once). An
 * explicit stack: a chain of imports as long as the set must not overflow
 * ours. */
static void add_with_deps(struct subset *b, size_t i)
{
	size_t depth = 0;
	if (b->seen[i])
		return;
	b->seen[i] = true;
	b->stack[depth] = i;
	b->next_dep[depth++] = 0;
	while (depth) {
		const Google__Protobuf__FileDescriptorProto *f = b->fds->file[b->stack[depth - 1]];
		size_t *d = &b->next_dep[depth - 1];
		if (*d < f->n_dependency) {
			long j = file_index(b, f->dependency[(*d)++]);
			if (j >= 0 && !b->seen[j]) {
				b->seen[j] = true;
				b->stack[depth] = (size_t)j;
				b->next_dep[depth++] = 0;
			}
			continue;
		}
		b->list[b->n++] = b->fds->file[b->stack[--depth]];
	}
}

/* Adds the file that defines each type that message d's fields use. */
static void add_used(struct subset *b, const Google__Protobuf__DescriptorProto *d)
{
	for (size_t i = 0; i < d->n_field; i++) {
		const char *tn = d->field[i]->type_name;
		if (!tn || tn[0] != '.')
			continue;
		for (size_t k = 0; k < b->fds->n_file; k++)
			if (file_defines(b->fds->file[k], tn + 1)) {
				add_with_deps(b, k); /* nothing if it is in already */
				break;
			}
	}
	for (size_t i = 0; i < d->n_nested_type; i++)
		add_used(b, d->nested_type[i]);
}

/* The files `home` needs: its imports, transitively, and, should a file
 * use a type without importing its file (protoc never writes that, a
 * damaged or hand-made set may), that file too, so that the subset loads
 * wherever the whole set did. */
static void collect_files(struct subset *b, size_t home)
{
	add_with_deps(b, home);
	for (size_t k = 0; k < b->n; k++)
		for (size_t j = 0; j < b->list[k]->n_message_type; j++)
			add_used(b, b->list[k]->message_type[j]);
}

int pbjson_schema_subset(const pbjson_schema *s, const char *type, uint8_t **out,
			 size_t *len, char *err, size_t errlen)
{
	if (!s || !type || !out || !len) {
		pj_err(err, errlen, "invalid argument");
		return PBJSON_EINVAL;
	}
	const Google__Protobuf__FileDescriptorSet *fds = s->fds;
	long home = -1;
	for (size_t i = 0; home < 0 && i < fds->n_file; i++) {
		const Google__Protobuf__FileDescriptorProto *f = fds->file[i];
		for (size_t j = 0; home < 0 && j < f->n_message_type; j++)
			if (defines(f->message_type[j], f->package ? f->package : "", type))
				home = (long)i;
	}
	if (home < 0) {
		pj_err(err, errlen, "no message type '%s' in the schema", type);
		return PBJSON_ENOTYPE;
	}
	size_t nf = fds->n_file;
	struct subset b = { .fds = fds, .n_names = 0 };
	b.names = calloc(nf, sizeof(*b.names));
	b.seen = calloc(nf, sizeof(*b.seen));
	b.list = calloc(nf, sizeof(*b.list));
	b.stack = calloc(nf, sizeof(*b.stack));
	b.next_dep = calloc(nf, sizeof(*b.next_dep));
	int rc = PBJSON_ENOMEM;
	if (b.names && b.seen && b.list && b.stack && b.next_dep) {
		for (size_t i = 0; i < nf; i++)
			if (fds->file[i]->name)
				b.names[b.n_names++] = (struct file_name){ fds->file[i]->name, i };
		qsort(b.names, b.n_names, sizeof(*b.names), by_file_name);
		collect_files(&b, (size_t)home);
		Google__Protobuf__FileDescriptorSet sub = GOOGLE__PROTOBUF__FILE_DESCRIPTOR_SET__INIT;
		sub.n_file = b.n;
		sub.file = b.list;
		size_t size = google__protobuf__file_descriptor_set__get_packed_size(&sub);
		uint8_t *buf = malloc(size ? size : 1);
		if (buf) {
			*len = google__protobuf__file_descriptor_set__pack(&sub, buf);
			*out = buf;
			rc = 0;
		}
	}
	if (rc)
		pj_err(err, errlen, "out of memory");
	free(b.names);
	free(b.seen);
	free(b.list);
	free(b.stack);
	free(b.next_dep);
	return rc;
}
