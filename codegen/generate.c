/*
 * generate.c - writes a .proto file's typed layer. For every message type
 * (nested ones too, map entries excepted) the header declares typed
 * publisher/subscriber functions; the source implements them on the public
 * libshmbus API and protobuf-c's reflection, and embeds the schema (a
 * serialized FileDescriptorSet of the file and everything it imports) that
 * is stored with each topic.
 *
 * Files the typed layer cannot represent faithfully are refused with a
 * message (see check_file()).
 */
#include "generate.h"
#include "bound.h"
#include "names.h"
#include "templates.h"
#include "text.h"

#include <shmbus/shmbus.h>

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef SHMBUS_GEN_VERSION
#error "SHMBUS_GEN_VERSION must be defined by the build"
#endif

#define STR_(x) #x
#define STR(x) STR_(x)

typedef Google__Protobuf__FileDescriptorProto FileProto;
typedef Google__Protobuf__DescriptorProto MessageProto;
typedef Google__Protobuf__FieldDescriptorProto FieldProto;

/* The field number protobuf-c's own options (pb_c_file, pb_c_msg,
 * pb_c_field) are registered under. */
#define PROTOBUF_C_OPTION_NUMBER 1019u

/* A large bytes field that can be written and read in place. */
struct zc_field {
	char *fname;   /* lower-case proto name, for function names */
	char *member;  /* protoc-c's struct member */
	uint32_t number;
	bool has_flag; /* protoc-c generates has_<member> for it */
};

struct message {
	char *full;    /* "pkg.Outer.Inner" */
	char *ctype;   /* "Pkg__Outer__Inner" */
	char *lower;   /* "pkg__outer__inner" */
	char *upper;   /* "PKG__OUTER__INNER" */
	struct zc_field *zc;
	size_t n_zc;
	bool copy_first; /* unpack from a private copy, see needs_private_copy() */
	bool bounded;    /* max_size is its exact largest encoding */
	uint64_t max_size;
	char why[256];   /* when not bounded: which field */
};

struct gen {
	const Google__Protobuf__Compiler__CodeGeneratorRequest *req;
	const FileProto *file;
	bool proto3;
	struct message *msgs;
	size_t n_msgs, cap_msgs;
	char *error;
	bool nomem;
};

static void set_error(struct gen *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void set_error(struct gen *g, const char *fmt, ...)
{
	va_list ap;
	char *msg = NULL;

	if (g->error || g->nomem)
		return;
	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	if (!msg)
		g->nomem = true;
	g->error = msg;
}

static char *join_name(const char *prefix, const char *name)
{
	char *s = NULL;

	if (!prefix || !*prefix)
		return strdup(name);
	if (asprintf(&s, "%s.%s", prefix, name) < 0)
		return NULL;
	return s;
}

static const FileProto *find_file(const struct gen *g, const char *name)
{
	for (size_t i = 0; i < g->req->n_proto_file; i++) {
		if (strcmp(g->req->proto_file[i]->name, name) == 0)
			return g->req->proto_file[i];
	}
	return NULL;
}

/* protoc writes type references fully qualified: ".pkg.Name". */
static const char *plain(const char *type_name)
{
	return type_name && type_name[0] == '.' ? type_name + 1 : type_name;
}

static bool has_unknown(const ProtobufCMessage *m, uint32_t number)
{
	if (!m)
		return false;
	for (size_t i = 0; i < m->n_unknown_fields; i++) {
		if (m->unknown_fields[i].tag == number)
			return true;
	}
	return false;
}

/* ------------------------------------------------------------ checking */

static void check_message(struct gen *g, const MessageProto *m, const char *full)
{
	if (m->n_extension > 0) {
		set_error(g, "%s: message %s declares extensions (extend %s); "
			  "protoc-gen-shmbus does not support extensions: protobuf-c "
			  "cannot pack them into the loaned slot. Use a message field "
			  "or google.protobuf.Any instead",
			  g->file->name, full, plain(m->extension[0]->extendee));
		return;
	}
	for (size_t i = 0; i < m->n_field; i++) {
		if (m->field[i]->type == GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_GROUP) {
			set_error(g, "%s: %s.%s is a group; groups are not supported "
				  "(protobuf-c has no support for them): use a nested message",
				  g->file->name, full, m->field[i]->name);
			return;
		}
	}
	for (size_t i = 0; i < m->n_nested_type && !g->error; i++) {
		char *nested = join_name(full, m->nested_type[i]->name);

		if (!nested) {
			g->nomem = true;
			return;
		}
		check_message(g, m->nested_type[i], nested);
		free(nested);
	}
}

/* Refuse what the typed layer cannot carry faithfully. */
static void check_file(struct gen *g)
{
	const FileProto *f = g->file;
	const char *pkg = f->package ? f->package : "";

	if (f->syntax && strcmp(f->syntax, "proto2") != 0 && strcmp(f->syntax, "proto3") != 0) {
		set_error(g, "%s: syntax \"%s\" is not supported (proto2 and proto3 are)",
			  f->name, f->syntax);
		return;
	}
	if (f->n_extension > 0) {
		set_error(g, "%s: the file declares extensions (extend %s); "
			  "protoc-gen-shmbus does not support extensions: protobuf-c "
			  "cannot pack them into the loaned slot. Use a message field "
			  "or google.protobuf.Any instead",
			  f->name, plain(f->extension[0]->extendee));
		return;
	}
	if (f->options && has_unknown(&f->options->base, PROTOBUF_C_OPTION_NUMBER)) {
		set_error(g, "%s: the file sets protobuf-c's file options (pb_c_file); "
			  "they rename or drop generated C code, which protoc-gen-shmbus "
			  "does not follow. Remove them",
			  f->name);
		return;
	}
	for (size_t i = 0; i < f->n_message_type && !g->error; i++) {
		char *full = join_name(pkg, f->message_type[i]->name);

		if (!full) {
			g->nomem = true;
			return;
		}
		check_message(g, f->message_type[i], full);
		free(full);
	}
}

/* ----------------------------------------------------------- messages */

static bool is_zero_copy_candidate(const struct gen *g, const MessageProto *m, const FieldProto *f)
{
	bool in_real_oneof;

	(void)m;
	if (f->type != GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_BYTES)
		return false;
	if (f->label != GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__LABEL__LABEL_OPTIONAL)
		return false; /* repeated: many values; required: always packed */
	in_real_oneof = f->has_oneof_index && !(f->has_proto3_optional && f->proto3_optional);
	(void)g;
	return !in_real_oneof;
}

/* Finds a message type by its full name ("pkg.Outer.Inner", no leading
 * dot) among `msgs`, whose names are `prefix`.NAME (NAME alone when the
 * prefix is empty). */
static const MessageProto *find_message_in(MessageProto *const *msgs, size_t n,
					   const char *prefix, const char *want)
{
	size_t plen = strlen(prefix);
	const char *rest = want;

	if (plen > 0) {
		if (strncmp(want, prefix, plen) != 0 || want[plen] != '.')
			return NULL;
		rest = want + plen + 1;
	}
	for (size_t i = 0; i < n; i++) {
		size_t nlen = strlen(msgs[i]->name);
		const MessageProto *found;
		char *sub_prefix;

		if (strncmp(rest, msgs[i]->name, nlen) != 0)
			continue;
		if (rest[nlen] == '\0')
			return msgs[i];
		if (rest[nlen] != '.')
			continue;
		sub_prefix = join_name(prefix, msgs[i]->name);
		if (!sub_prefix)
			return NULL;
		found = find_message_in(msgs[i]->nested_type, msgs[i]->n_nested_type, sub_prefix,
					want);
		free(sub_prefix);
		if (found)
			return found;
	}
	return NULL;
}

/* A message type of any file protoc passed, by full name without the
 * leading dot (a pbbound_find_fn). */
static const MessageProto *find_message(void *ctx, const char *full_name)
{
	const struct gen *g = ctx;

	for (size_t i = 0; i < g->req->n_proto_file; i++) {
		const FileProto *f = g->req->proto_file[i];
		const MessageProto *m = find_message_in(f->message_type, f->n_message_type,
							f->package ? f->package : "", full_name);

		if (m)
			return m;
	}
	return NULL;
}

static bool is_varint_type(Google__Protobuf__FieldDescriptorProto__Type t)
{
	switch (t) {
	case GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_INT32:
	case GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_INT64:
	case GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_UINT32:
	case GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_UINT64:
	case GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_SINT32:
	case GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_SINT64:
	case GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_ENUM:
		return true;
	default:
		return false;
	}
}

#define MAX_NESTING 64

/* Whether unpacking a message of this type straight from shared memory
 * could go wrong if a lapping publisher rewrote the bytes meanwhile (the
 * view is checked only afterwards). protobuf-c reads a packed repeated
 * varint field twice, counting the elements to size the array, then
 * filling it; changed bytes could hold more elements than were counted and
 * overflow the array. Every other field is read once, with the lengths of
 * the first pass, so torn bytes give wrong values (then discarded as
 * SHMBUS_ELAPPED) but no memory error. Types with such a field, here or in
 * any message they contain, are unpacked from a private copy. */
static bool needs_private_copy(const struct gen *g, const MessageProto *m,
			       const MessageProto **stack, size_t depth)
{
	if (depth >= MAX_NESTING)
		return true; /* too deep to tell: be safe */
	for (size_t i = 0; i < depth; i++) {
		if (stack[i] == m)
			return false; /* already being looked at (a recursive type) */
	}
	stack[depth] = m;
	for (size_t i = 0; i < m->n_field; i++) {
		const FieldProto *f = m->field[i];
		const MessageProto *sub;

		if (f->label == GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__LABEL__LABEL_REPEATED &&
		    is_varint_type(f->type))
			return true;
		if (f->type != GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_MESSAGE)
			continue;
		sub = find_message((void *)g, plain(f->type_name));
		if (!sub || needs_private_copy(g, sub, stack, depth + 1))
			return true; /* a type it cannot find counts as unsafe */
	}
	return false;
}

static void free_message(struct message *m)
{
	free(m->full);
	free(m->ctype);
	free(m->lower);
	free(m->upper);
	for (size_t i = 0; i < m->n_zc; i++) {
		free(m->zc[i].fname);
		free(m->zc[i].member);
	}
	free(m->zc);
}

static void add_message(struct gen *g, const MessageProto *mp, const char *full)
{
	struct message *m;

	if (mp->options && mp->options->has_map_entry && mp->options->map_entry)
		return; /* a map's entry type, not a message of its own */
	if (g->n_msgs == g->cap_msgs) {
		size_t cap = g->cap_msgs ? g->cap_msgs * 2 : 16;
		struct message *p = realloc(g->msgs, cap * sizeof(*p));

		if (!p) {
			g->nomem = true;
			return;
		}
		g->msgs = p;
		g->cap_msgs = cap;
	}
	m = &g->msgs[g->n_msgs++];
	memset(m, 0, sizeof(*m));
	m->full = strdup(full);
	m->ctype = name_c_type(full);
	m->lower = name_c_lower(full);
	m->upper = name_c_upper(full);
	m->zc = calloc(mp->n_field ? mp->n_field : 1, sizeof(*m->zc));
	{
		const MessageProto *stack[MAX_NESTING];

		m->copy_first = needs_private_copy(g, mp, stack, 0);
	}
	if (!m->full || !m->ctype || !m->lower || !m->upper || !m->zc) {
		g->nomem = true;
		return;
	}
	switch (pbbound_max_size(full, find_message, g, &m->max_size, m->why, sizeof(m->why))) {
	case PBBOUND_BOUNDED:
		m->bounded = true;
		break;
	case PBBOUND_UNBOUNDED:
		break;
	case PBBOUND_ENOMEM:
		g->nomem = true;
		return;
	default:
		set_error(g, "%s: cannot size %s: %s", g->file->name, full, m->why);
		return;
	}
	for (size_t i = 0; i < mp->n_field; i++) {
		const FieldProto *f = mp->field[i];
		struct zc_field *z;

		if (!is_zero_copy_candidate(g, mp, f))
			continue;
		z = &m->zc[m->n_zc++];
		z->member = name_c_field(f->name);
		z->fname = strdup(f->name);
		if (!z->member || !z->fname) {
			g->nomem = true;
			return;
		}
		for (char *p = z->fname; *p; p++)
			*p = (char)((*p >= 'A' && *p <= 'Z') ? *p - 'A' + 'a' : *p);
		z->number = (uint32_t)f->number;
		/* protoc-c gives proto2 optional and proto3 `optional` bytes a
		 * has_ flag; plain proto3 bytes are present when non-empty. */
		z->has_flag = !g->proto3 || (f->has_proto3_optional && f->proto3_optional);
	}
}

static void collect_messages(struct gen *g, const MessageProto *mp, const char *prefix)
{
	char *full = join_name(prefix, mp->name);

	if (!full) {
		g->nomem = true;
		return;
	}
	add_message(g, mp, full);
	for (size_t i = 0; i < mp->n_nested_type && !g->nomem; i++)
		collect_messages(g, mp->nested_type[i], full);
	free(full);
}

/* ------------------------------------------------------------- schema */

/* Appends `f` after everything it imports (each file once), the order a
 * FileDescriptorSet reader can build descriptors in. */
static void add_with_imports(struct gen *g, const FileProto *f, FileProto ***set, size_t *n,
			     size_t cap)
{
	for (size_t i = 0; i < *n; i++) {
		if (strcmp((*set)[i]->name, f->name) == 0)
			return;
	}
	for (size_t i = 0; i < f->n_dependency && !g->error && !g->nomem; i++) {
		const FileProto *dep = find_file(g, f->dependency[i]);

		if (!dep) {
			set_error(g, "%s: protoc did not pass the imported file %s",
				  f->name, f->dependency[i]);
			return;
		}
		add_with_imports(g, dep, set, n, cap);
	}
	if (g->error || g->nomem || *n >= cap)
		return;
	(*set)[(*n)++] = (FileProto *)f;
}

/* The serialized FileDescriptorSet of the file and its imports, without
 * source code info (comments and positions are not needed to decode). */
static uint8_t *build_schema(struct gen *g, size_t *size)
{
	Google__Protobuf__FileDescriptorSet set = GOOGLE__PROTOBUF__FILE_DESCRIPTOR_SET__INIT;
	FileProto **files = calloc(g->req->n_proto_file + 1, sizeof(*files));
	FileProto *copies = calloc(g->req->n_proto_file + 1, sizeof(*copies));
	FileProto **stripped = calloc(g->req->n_proto_file + 1, sizeof(*stripped));
	uint8_t *buf = NULL;
	size_t n = 0;

	if (!files || !copies || !stripped) {
		g->nomem = true;
		goto out;
	}
	add_with_imports(g, g->file, &files, &n, g->req->n_proto_file);
	if (g->error || g->nomem)
		goto out;
	for (size_t i = 0; i < n; i++) {
		copies[i] = *files[i];
		copies[i].source_code_info = NULL;
		stripped[i] = &copies[i];
	}
	set.n_file = n;
	set.file = stripped;
	*size = google__protobuf__file_descriptor_set__get_packed_size(&set);
	buf = malloc(*size ? *size : 1);
	if (!buf) {
		g->nomem = true;
		goto out;
	}
	google__protobuf__file_descriptor_set__pack(&set, buf);
out:
	free(files);
	free(copies);
	free(stripped);
	return buf;
}

/* ------------------------------------------------------------ emitting */

static const char banner[] =
	"/* generated by protoc-gen-shmbus " STR(SHMBUS_GEN_VERSION) ". DO NOT EDIT. */\n";

/* A template is an array of lines (C compilers need not accept longer
 * string literals) ending with NULL. */
static void emit(struct text *t, const char *const *tpl, const char *const *vars)
{
	static const char *const none[] = { NULL };

	for (size_t i = 0; tpl[i]; i++)
		text_template(t, tpl[i], vars ? vars : none);
}

static void emit_schema(struct text *t, const char *schema_name, const uint8_t *schema,
			size_t size)
{
	text_printf(t, "\nconst uint8_t %s[%zu] = {", schema_name, size ? size : 1);
	for (size_t i = 0; i < size; i++)
		text_printf(t, "%s0x%02x,", i % 12 == 0 ? "\n\t" : " ", schema[i]);
	if (size == 0)
		text_printf(t, "\n\t0x00,");
	text_printf(t, "\n};\nconst size_t %s_size = %zu;\n", schema_name, size);
}

static char *output_name(const char *stem, const char *suffix)
{
	char *s = NULL;

	if (asprintf(&s, "%s%s", stem, suffix) < 0)
		return NULL;
	return s;
}

/* flags of the type's struct shmbus_typed_type: every type's __free goes
 * through shmbus_typed_free(), so every type may be taken in one block. */
static const char *type_flags(const struct message *m)
{
	if (m->bounded)
		return m->copy_first ? "SHMBUS_TYPED_BOUNDED | SHMBUS_TYPED_COPY_FIRST | "
				       "SHMBUS_TYPED_ARENA"
				     : "SHMBUS_TYPED_BOUNDED | SHMBUS_TYPED_ARENA";
	return m->copy_first ? "SHMBUS_TYPED_COPY_FIRST | SHMBUS_TYPED_ARENA"
			     : "SHMBUS_TYPED_ARENA";
}

static void emit_zc_field(struct gen *g, const struct message *m, const struct zc_field *z,
			  struct text *h, struct text *c)
{
	char number[16], *clear_has = NULL;

	snprintf(number, sizeof(number), "%" PRIu32, z->number);
	if (z->has_flag) {
		if (asprintf(&clear_has, "\trest.has_%s = 0;\n", z->member) < 0)
			clear_has = NULL;
	} else {
		clear_has = strdup("");
	}
	if (!clear_has) {
		g->nomem = true;
		return;
	}
	const char *const vars[] = {
		"full", m->full, "ctype", m->ctype, "lower", m->lower,
		"fname", z->fname, "member", z->member, "number", number,
		"clear_has", clear_has, NULL,
	};
	emit(h, tpl_header_zc_field, vars);
	emit(c, tpl_source_zc_field, vars);
	free(clear_has);
}

static void emit_message(struct gen *g, const struct message *m, const char *schema_name,
			 struct text *h, struct text *c)
{
	char bound[24], *max = NULL;

	snprintf(bound, sizeof(bound), "%" PRIu64, m->max_size);
	if (m->bounded ? asprintf(&max, "%s__SHMBUS_MAX_SIZE", m->upper) < 0
		       : !(max = strdup("0"))) {
		g->nomem = true;
		return;
	}
	const char *const vars[] = {
		"full", m->full, "ctype", m->ctype, "lower", m->lower,
		"upper", m->upper, "schema", schema_name, "flags", type_flags(m),
		"max", max, "bound", bound, "why", m->why, NULL,
	};

	emit(h, tpl_header_message, vars);
	emit(h, m->bounded ? tpl_header_bounded : tpl_header_unbounded, vars);
	emit(h, tpl_header_functions, vars);
	emit(c, tpl_source_message, vars);
	for (size_t j = 0; j < m->n_zc && !g->nomem; j++)
		emit_zc_field(g, m, &m->zc[j], h, c);
	if (m->n_zc > 0) {
		emit(h, tpl_header_zc_message, vars);
		emit(c, tpl_source_zc_message, vars);
	}
	free(max);
}

static void emit_files(struct gen *g, const uint8_t *schema, size_t schema_size,
		       struct generated_file out[2])
{
	struct text h, c;
	char *stem = name_strip_proto(g->file->name);
	char *ident = name_file_ident(g->file->name);
	char *schema_name = NULL;
	char major[16];

	text_init(&h);
	text_init(&c);
	snprintf(major, sizeof(major), "%d", SHMBUS_VERSION_MAJOR);
	if (!stem || !ident || asprintf(&schema_name, "shmbus_schema_%s", ident) < 0) {
		schema_name = NULL;
		g->nomem = true;
		goto out;
	}
	const char *const file_vars[] = {
		"file", g->file->name, "stem", stem, "ident", ident,
		"schema", schema_name, "major", major, NULL,
	};

	text_append(&h, banner, strlen(banner));
	emit(&h, tpl_header_top, file_vars);
	text_append(&c, banner, strlen(banner));
	emit(&c, tpl_source_top, file_vars);
	emit_schema(&c, schema_name, schema, schema_size);
	for (size_t i = 0; i < g->n_msgs && !g->nomem; i++)
		emit_message(g, &g->msgs[i], schema_name, &h, &c);
	emit(&h, tpl_header_bottom, NULL);

	if (h.failed || c.failed) {
		/* A template names an unknown variable, or memory ran out. */
		if (!g->nomem)
			set_error(g, "%s: internal error while writing the output", g->file->name);
		goto out;
	}
	out[0].name = output_name(stem, ".shmbus.h");
	out[0].content = text_take(&h);
	out[1].name = output_name(stem, ".shmbus.c");
	out[1].content = text_take(&c);
	if (!out[0].name || !out[0].content || !out[1].name || !out[1].content)
		g->nomem = true;
out:
	text_free(&h);
	text_free(&c);
	free(stem);
	free(ident);
	free(schema_name);
}

int generate_file(const Google__Protobuf__Compiler__CodeGeneratorRequest *req,
		  const char *file_name, struct generated_file out[2], char **error)
{
	struct gen g;
	uint8_t *schema = NULL;
	size_t schema_size = 0;
	const char *pkg;

	memset(&g, 0, sizeof(g));
	memset(out, 0, 2 * sizeof(*out));
	*error = NULL;
	g.req = req;
	g.file = find_file(&g, file_name);
	if (!g.file) {
		set_error(&g, "%s: protoc did not pass this file's descriptor", file_name);
		goto out;
	}
	g.proto3 = g.file->syntax && strcmp(g.file->syntax, "proto3") == 0;
	pkg = g.file->package ? g.file->package : "";
	check_file(&g);
	for (size_t i = 0; i < g.file->n_message_type && !g.error && !g.nomem; i++)
		collect_messages(&g, g.file->message_type[i], pkg);
	if (!g.error && !g.nomem)
		schema = build_schema(&g, &schema_size);
	if (!g.error && !g.nomem)
		emit_files(&g, schema, schema_size, out);
out:
	for (size_t i = 0; i < g.n_msgs; i++)
		free_message(&g.msgs[i]);
	free(g.msgs);
	free(schema);
	if (g.error || g.nomem) {
		for (int i = 0; i < 2; i++) {
			free(out[i].name);
			free(out[i].content);
			out[i].name = out[i].content = NULL;
		}
		*error = g.error;
		return -1;
	}
	return 0;
}
