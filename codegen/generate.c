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
#include "names.h"
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

/* Finds a message type by its fully qualified name (".pkg.Outer.Inner")
 * among `msgs`, whose names are `prefix`.NAME. */
static const MessageProto *find_message_in(MessageProto *const *msgs, size_t n,
					   const char *prefix, const char *want)
{
	size_t plen = strlen(prefix);

	if (strncmp(want, prefix, plen) != 0 || want[plen] != '.')
		return NULL;
	for (size_t i = 0; i < n; i++) {
		const char *rest = want + plen + 1;
		size_t nlen = strlen(msgs[i]->name);

		if (strncmp(rest, msgs[i]->name, nlen) != 0)
			continue;
		if (rest[nlen] == '\0')
			return msgs[i];
		if (rest[nlen] == '.') {
			char *sub_prefix = NULL;
			const MessageProto *found;

			if (asprintf(&sub_prefix, "%s.%s", prefix, msgs[i]->name) < 0)
				return NULL;
			found = find_message_in(msgs[i]->nested_type, msgs[i]->n_nested_type,
						sub_prefix, want);
			free(sub_prefix);
			if (found)
				return found;
		}
	}
	return NULL;
}

static const MessageProto *find_message(const struct gen *g, const char *type_name)
{
	for (size_t i = 0; i < g->req->n_proto_file; i++) {
		const FileProto *f = g->req->proto_file[i];
		const char *pkg = f->package ? f->package : "";
		char *prefix = NULL;
		const MessageProto *m;

		if (asprintf(&prefix, "%s%s", *pkg ? "." : "", pkg) < 0)
			return NULL;
		m = find_message_in(f->message_type, f->n_message_type, prefix, type_name);
		free(prefix);
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
		sub = find_message(g, f->type_name);
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

static const char *const header_top[] = {
	"/* source: $file$ */\n",
	"/*\n",
	" * Typed shmbus publishers and subscribers for the messages of $file$,\n",
	" * on top of protoc-c's $stem$.pb-c.h. Every function returns SHMBUS_OK or\n",
	" * a negative SHMBUS_E* code (shmbus_strerror() gives its text).\n",
	" */\n",
	"#ifndef SHMBUS_GEN_$ident$_INCLUDED\n",
	"#define SHMBUS_GEN_$ident$_INCLUDED\n",
	"\n",
	"#include <stddef.h>\n",
	"#include <stdint.h>\n",
	"\n",
	"#include <protobuf-c/protobuf-c.h>\n",
	"#include <shmbus/shmbus.h>\n",
	"\n",
	"#include \"$stem$.pb-c.h\"\n",
	"\n",
	"#if SHMBUS_VERSION_MAJOR != $major$\n",
	"#error \"$stem$.shmbus.h was generated for libshmbus $major$.x: regenerate it with this libshmbus' protoc-gen-shmbus\"\n",
	"#endif\n",
	"\n",
	"#ifdef __cplusplus\n",
	"extern \"C\" {\n",
	"#endif\n",
	"\n",
	"#ifndef SHMBUS_TYPED_TYPES_DEFINED\n",
	"#define SHMBUS_TYPED_TYPES_DEFINED\n",
	"/* A loaned message whose large bytes field is written in place. */\n",
	"struct shmbus_typed_loan {\n",
	"\tuint8_t *field;    /* where the field's bytes go, in shared memory */\n",
	"\tsize_t field_size; /* how many bytes the field has (as asked) */\n",
	"\tsize_t size_;      /* private: the whole message's wire size */\n",
	"};\n",
	"\n",
	"/* A message viewed in place: field points at its large bytes field\n",
	" * inside the topic's slot, valid until the view is released. */\n",
	"struct shmbus_typed_view {\n",
	"\tconst uint8_t *field;\n",
	"\tsize_t field_size;\n",
	"\tstruct shmbus_view view; /* the bus view: view.info has seq, time, loss */\n",
	"};\n",
	"#endif\n",
	"\n",
	"/* Serialized google.protobuf.FileDescriptorSet of $file$ and its\n",
	" * imports: the schema stored with every topic of these types. */\n",
	"extern const uint8_t $schema$[];\n",
	"extern const size_t $schema$_size;\n",
	NULL,
};

static const char *const header_message[] = {
	"\n",
	"/* ---- $full$ */\n",
	"\n",
	"#define $upper$__SHMBUS_TYPE_NAME \"$full$\"\n",
	"\n",
	"/* Set opts->type_name and opts->schema to $full$'s; nothing else. */\n",
	"void $lower$__topic_type(struct shmbus_topic_options *opts);\n",
	"\n",
	"/* Open a publisher of $full$ on `topic`, creating the topic from opts\n",
	" * (NULL: default layout) when missing. SHMBUS_ETYPE if the topic has\n",
	" * another type. */\n",
	"int $lower$__pub_open(shmbus_bus *bus, const char *topic,\n",
	"\t\tconst struct shmbus_topic_options *opts, shmbus_pub **out);\n",
	"\n",
	"/* Pack msg straight into a loaned slot and publish it. SHMBUS_EMSGSIZE\n",
	" * (nothing published) if it is larger than the topic's max message\n",
	" * size; SHMBUS_EINVAL if msg is not an initialised $full$. */\n",
	"int $lower$__publish(shmbus_pub *pub, const $ctype$ *msg, uint64_t *seq);\n",
	"\n",
	"/* Open a subscriber of $full$ (opts NULL: defaults). With\n",
	" * opts->create_if_missing the topic is created with this type. */\n",
	"int $lower$__sub_open(shmbus_bus *bus, const char *topic,\n",
	"\t\tconst struct shmbus_sub_options *opts, shmbus_sub **out);\n",
	"\n",
	"/* Take the next message, unpacked with allocator (NULL: malloc); free\n",
	" * it with $lower$__free(). SHMBUS_EAGAIN: nothing new. SHMBUS_ELAPPED:\n",
	" * it was overwritten while read (counted lost). SHMBUS_ECORRUPT: it does\n",
	" * not decode as $full$ (skipped). SHMBUS_ETYPE: sub is not a\n",
	" * $full$ subscriber. info (may be NULL) gets seq, time and loss. */\n",
	"int $lower$__take(shmbus_sub *sub, ProtobufCAllocator *allocator, $ctype$ **msg,\n",
	"\t\tstruct shmbus_msg_info *info);\n",
	"\n",
	"/* Free a message from $lower$__take() with the same allocator. */\n",
	"void $lower$__free($ctype$ *msg, ProtobufCAllocator *allocator);\n",
	"\n",
	"/* Block until a message can be taken: SHMBUS_OK or SHMBUS_ETIMEDOUT. */\n",
	"int $lower$__wait(shmbus_sub *sub, int64_t timeout_ns);\n",
	NULL,
};

static const char *const header_zc_field[] = {
	"\n",
	"/* Zero-copy $fname$: loan a slot holding msg's other fields followed by\n",
	" * a $fname$ of `size` bytes; write those bytes at loan->field (shared\n",
	" * memory), then $lower$__publish_loan() or shmbus_pub_discard().\n",
	" * msg->$member$ is ignored. SHMBUS_EMSGSIZE (no loan held) if the\n",
	" * message would not fit the topic's max message size. */\n",
	"int $lower$__loan_$fname$(shmbus_pub *pub, const $ctype$ *msg, size_t size,\n",
	"\t\tstruct shmbus_typed_loan *loan);\n",
	"\n",
	"/* View the next message in place: *msg gets every field but $fname$\n",
	" * (left empty); view->field and view->field_size give $fname$'s bytes\n",
	" * inside the slot, not copied (NULL, 0 when absent). Read them, then\n",
	" * $lower$__view_release(): what was read is intact only if that returns\n",
	" * SHMBUS_OK. Errors as $lower$__take(); on error no view is held. */\n",
	"int $lower$__view_$fname$(shmbus_sub *sub, ProtobufCAllocator *allocator,\n",
	"\t\t$ctype$ **msg, struct shmbus_typed_view *view);\n",
	NULL,
};

static const char *const header_zc_message[] = {
	"\n",
	"/* Publish a message loaned by a $lower$__loan_*() function. */\n",
	"int $lower$__publish_loan(shmbus_pub *pub, struct shmbus_typed_loan *loan,\n",
	"\t\tuint64_t *seq);\n",
	"\n",
	"/* End a view from a $lower$__view_*() function and free msg (with the\n",
	" * allocator it was viewed with). SHMBUS_OK if the data stayed intact,\n",
	" * SHMBUS_ELAPPED if a publisher overwrote it meanwhile (discard what\n",
	" * you computed from it; it is counted lost). */\n",
	"int $lower$__view_release(shmbus_sub *sub, $ctype$ *msg,\n",
	"\t\tProtobufCAllocator *allocator, struct shmbus_typed_view *view);\n",
	NULL,
};

static const char *const header_bottom[] = {
	"\n",
	"#ifdef __cplusplus\n",
	"}\n",
	"#endif\n",
	"\n",
	"#endif\n",
	NULL,
};

static const char *const source_top[] = {
	"/* source: $file$ */\n",
	"#include \"$stem$.shmbus.h\"\n",
	"\n",
	"#include <stdlib.h>\n",
	"#include <string.h>\n",
	"\n",
	"#if PROTOBUF_C_VERSION_NUMBER < 1003000\n",
	"#error \"$stem$.shmbus.c needs protobuf-c 1.3 or later\"\n",
	"#endif\n",
	NULL,
};

/* Helpers every generated source uses. Guarded so that a unity build,
 * which pastes several generated sources together, defines them once. */
static const char *const source_core[] = {
	"\n",
	"#ifndef SHMBUS_GEN_CORE_HELPERS\n",
	"#define SHMBUS_GEN_CORE_HELPERS\n",
	"/* protobuf-c returns NULL both for a message that does not decode and\n",
	" * for a failed allocation; this allocator wrapper tells them apart. */\n",
	"struct shmbus_gen_alloc_watch {\n",
	"\tProtobufCAllocator base;\n",
	"\tProtobufCAllocator *inner; /* NULL: malloc/free, as protobuf-c */\n",
	"\tint failed;\n",
	"};\n",
	"\n",
	"static void *shmbus_gen_watch_alloc(void *data, size_t size)\n",
	"{\n",
	"\tstruct shmbus_gen_alloc_watch *w = data;\n",
	"\tvoid *p = w->inner ? w->inner->alloc(w->inner->allocator_data, size) : malloc(size);\n",
	"\n",
	"\tif (!p)\n",
	"\t\tw->failed = 1;\n",
	"\treturn p;\n",
	"}\n",
	"\n",
	"static void shmbus_gen_watch_free(void *data, void *ptr)\n",
	"{\n",
	"\tstruct shmbus_gen_alloc_watch *w = data;\n",
	"\n",
	"\tif (w->inner)\n",
	"\t\tw->inner->free(w->inner->allocator_data, ptr);\n",
	"\telse\n",
	"\t\tfree(ptr);\n",
	"}\n",
	"\n",
	"static void shmbus_gen_watch_init(struct shmbus_gen_alloc_watch *w, ProtobufCAllocator *inner)\n",
	"{\n",
	"\tw->base.alloc = shmbus_gen_watch_alloc;\n",
	"\tw->base.free = shmbus_gen_watch_free;\n",
	"\tw->base.allocator_data = w;\n",
	"\tw->inner = inner;\n",
	"\tw->failed = 0;\n",
	"}\n",
	"\n",
	"/* The library loaded at run time must speak the layout compiled in. */\n",
	"static int shmbus_gen_version_ok(void)\n",
	"{\n",
	"\treturn (shmbus_version() >> 16) == SHMBUS_VERSION_MAJOR;\n",
	"}\n",
	"\n",
	"static int shmbus_gen_pub_open(shmbus_bus *bus, const char *topic,\n",
	"\t\tconst struct shmbus_topic_options *opts, const char *type_name,\n",
	"\t\tconst uint8_t *schema, size_t schema_size, shmbus_pub **out)\n",
	"{\n",
	"\tstruct shmbus_topic_options o;\n",
	"\n",
	"\tif (!shmbus_gen_version_ok())\n",
	"\t\treturn SHMBUS_EVERSION;\n",
	"\tif (opts)\n",
	"\t\to = *opts;\n",
	"\telse\n",
	"\t\tshmbus_topic_options_init(&o);\n",
	"\to.type_name = type_name;\n",
	"\to.schema = schema;\n",
	"\to.schema_size = schema_size;\n",
	"\treturn shmbus_pub_open(bus, topic, &o, out);\n",
	"}\n",
	"\n",
	"static int shmbus_gen_sub_open(shmbus_bus *bus, const char *topic,\n",
	"\t\tconst struct shmbus_sub_options *opts, const char *type_name,\n",
	"\t\tconst uint8_t *schema, size_t schema_size, shmbus_sub **out)\n",
	"{\n",
	"\tstruct shmbus_sub_options o;\n",
	"\n",
	"\tif (!shmbus_gen_version_ok())\n",
	"\t\treturn SHMBUS_EVERSION;\n",
	"\tif (opts)\n",
	"\t\to = *opts;\n",
	"\telse\n",
	"\t\tshmbus_sub_options_init(&o);\n",
	"\to.topic.type_name = type_name;\n",
	"\to.topic.schema = schema;\n",
	"\to.topic.schema_size = schema_size;\n",
	"\treturn shmbus_sub_open(bus, topic, &o, out);\n",
	"}\n",
	"\n",
	"/* Packs straight into the slot: no intermediate buffer. */\n",
	"static int shmbus_gen_publish(shmbus_pub *pub, const ProtobufCMessage *msg, uint64_t *seq)\n",
	"{\n",
	"\tsize_t size = protobuf_c_message_get_packed_size(msg);\n",
	"\tsize_t capacity;\n",
	"\tvoid *buf;\n",
	"\tint rc;\n",
	"\n",
	"\trc = shmbus_pub_loan(pub, &buf, &capacity);\n",
	"\tif (rc != SHMBUS_OK)\n",
	"\t\treturn rc;\n",
	"\tif (size > capacity) {\n",
	"\t\t(void)shmbus_pub_discard(pub);\n",
	"\t\treturn SHMBUS_EMSGSIZE;\n",
	"\t}\n",
	"\trc = shmbus_pub_publish(pub, protobuf_c_message_pack(msg, buf), seq);\n",
	"\tif (rc != SHMBUS_OK)\n",
	"\t\t(void)shmbus_pub_discard(pub);\n",
	"\treturn rc;\n",
	"}\n",
	"\n",
	"static int shmbus_gen_type_ok(const shmbus_sub *sub, const ProtobufCMessageDescriptor *desc)\n",
	"{\n",
	"\treturn strcmp(shmbus_sub_type_name(sub), desc->name) == 0;\n",
	"}\n",
	"\n",
	"/* Unpacks from the view in place; or, for types protobuf-c cannot safely\n",
	" * read from bytes that may change underneath it (copy_first: see\n",
	" * protoc-gen-shmbus), from a private copy taken before the release. */\n",
	"static int shmbus_gen_take(shmbus_sub *sub, const ProtobufCMessageDescriptor *desc,\n",
	"\t\tint copy_first, ProtobufCAllocator *allocator, ProtobufCMessage **out,\n",
	"\t\tstruct shmbus_msg_info *info)\n",
	"{\n",
	"\tstruct shmbus_gen_alloc_watch watch;\n",
	"\tstruct shmbus_view view;\n",
	"\tProtobufCMessage *m;\n",
	"\tint rc;\n",
	"\n",
	"\t*out = NULL;\n",
	"\tif (!sub)\n",
	"\t\treturn SHMBUS_EINVAL;\n",
	"\tif (!shmbus_gen_type_ok(sub, desc))\n",
	"\t\treturn SHMBUS_ETYPE;\n",
	"\trc = shmbus_sub_view(sub, &view);\n",
	"\tif (rc != SHMBUS_OK)\n",
	"\t\treturn rc;\n",
	"\tshmbus_gen_watch_init(&watch, allocator);\n",
	"\tif (copy_first) {\n",
	"\t\tuint8_t *copy = watch.base.alloc(&watch, view.info.size ? view.info.size : 1);\n",
	"\n",
	"\t\tif (copy)\n",
	"\t\t\tmemcpy(copy, view.data, view.info.size);\n",
	"\t\trc = shmbus_sub_release(sub, &view);\n",
	"\t\tif (!copy)\n",
	"\t\t\treturn rc == SHMBUS_OK ? SHMBUS_ENOMEM : rc;\n",
	"\t\tif (rc != SHMBUS_OK) {\n",
	"\t\t\twatch.base.free(&watch, copy);\n",
	"\t\t\treturn rc;\n",
	"\t\t}\n",
	"\t\tm = protobuf_c_message_unpack(desc, &watch.base, view.info.size, copy);\n",
	"\t\twatch.base.free(&watch, copy);\n",
	"\t} else {\n",
	"\t\tm = protobuf_c_message_unpack(desc, &watch.base, view.info.size, view.data);\n",
	"\t\trc = shmbus_sub_release(sub, &view);\n",
	"\t\tif (rc != SHMBUS_OK) {\n",
	"\t\t\t/* Overwritten while unpacked: whatever came out is torn. */\n",
	"\t\t\tif (m)\n",
	"\t\t\t\tprotobuf_c_message_free_unpacked(m, allocator);\n",
	"\t\t\treturn rc;\n",
	"\t\t}\n",
	"\t}\n",
	"\tif (!m)\n",
	"\t\treturn watch.failed ? SHMBUS_ENOMEM : SHMBUS_ECORRUPT;\n",
	"\tif (info)\n",
	"\t\t*info = view.info;\n",
	"\t*out = m;\n",
	"\treturn SHMBUS_OK;\n",
	"}\n",
	"#endif\n",
	NULL,
};

/* Helpers for the zero-copy fields, emitted only where a file has one. */
static const char *const source_zc[] = {
	"\n",
	"#ifndef SHMBUS_GEN_ZERO_COPY_HELPERS\n",
	"#define SHMBUS_GEN_ZERO_COPY_HELPERS\n",
	"static size_t shmbus_gen_put_varint(uint8_t *out, uint64_t v)\n",
	"{\n",
	"\tsize_t n = 0;\n",
	"\n",
	"\twhile (v >= 0x80) {\n",
	"\t\tout[n++] = (uint8_t)(v | 0x80);\n",
	"\t\tv >>= 7;\n",
	"\t}\n",
	"\tout[n++] = (uint8_t)v;\n",
	"\treturn n;\n",
	"}\n",
	"\n",
	"static int shmbus_gen_get_varint(const uint8_t *p, size_t size, size_t *pos, uint64_t *v)\n",
	"{\n",
	"\tuint64_t r = 0;\n",
	"\n",
	"\tfor (unsigned shift = 0; shift < 64 && *pos < size; shift += 7) {\n",
	"\t\tuint8_t b = p[(*pos)++];\n",
	"\n",
	"\t\tr |= (uint64_t)(b & 0x7f) << shift;\n",
	"\t\tif (!(b & 0x80)) {\n",
	"\t\t\t*v = r;\n",
	"\t\t\treturn 0;\n",
	"\t\t}\n",
	"\t}\n",
	"\treturn -1;\n",
	"}\n",
	"\n",
	"/* Lays out the other fields (rest), then field `number`'s key and\n",
	" * length, and leaves its bytes to the caller: valid wire format, since\n",
	" * rest does not contain the field and fields may come in any order. */\n",
	"static int shmbus_gen_loan_field(shmbus_pub *pub, const ProtobufCMessage *rest,\n",
	"\t\tuint32_t number, size_t field_size, struct shmbus_typed_loan *loan)\n",
	"{\n",
	"\tuint8_t key[10], len[10];\n",
	"\tsize_t head = protobuf_c_message_get_packed_size(rest);\n",
	"\tsize_t n_key = shmbus_gen_put_varint(key, (uint64_t)number << 3 | 2u);\n",
	"\tsize_t n_len = shmbus_gen_put_varint(len, (uint64_t)field_size);\n",
	"\tsize_t capacity, total;\n",
	"\tuint8_t *p;\n",
	"\tvoid *buf;\n",
	"\tint rc;\n",
	"\n",
	"\tloan->field = NULL;\n",
	"\tloan->field_size = 0;\n",
	"\tloan->size_ = 0;\n",
	"\tif (field_size > SIZE_MAX - head - n_key - n_len)\n",
	"\t\treturn SHMBUS_EMSGSIZE;\n",
	"\ttotal = head + n_key + n_len + field_size;\n",
	"\trc = shmbus_pub_loan(pub, &buf, &capacity);\n",
	"\tif (rc != SHMBUS_OK)\n",
	"\t\treturn rc;\n",
	"\tif (total > capacity) {\n",
	"\t\t(void)shmbus_pub_discard(pub);\n",
	"\t\treturn SHMBUS_EMSGSIZE;\n",
	"\t}\n",
	"\tp = buf;\n",
	"\tprotobuf_c_message_pack(rest, p);\n",
	"\tmemcpy(p + head, key, n_key);\n",
	"\tmemcpy(p + head + n_key, len, n_len);\n",
	"\tloan->field = p + head + n_key + n_len;\n",
	"\tloan->field_size = field_size;\n",
	"\tloan->size_ = total;\n",
	"\treturn SHMBUS_OK;\n",
	"}\n",
	"\n",
	"static int shmbus_gen_publish_loan(shmbus_pub *pub, struct shmbus_typed_loan *loan,\n",
	"\t\tuint64_t *seq)\n",
	"{\n",
	"\tint rc;\n",
	"\n",
	"\tif (!loan || !loan->field)\n",
	"\t\treturn SHMBUS_EINVAL;\n",
	"\trc = shmbus_pub_publish(pub, loan->size_, seq);\n",
	"\tif (rc != SHMBUS_OK)\n",
	"\t\t(void)shmbus_pub_discard(pub);\n",
	"\tloan->field = NULL;\n",
	"\tloan->field_size = 0;\n",
	"\tloan->size_ = 0;\n",
	"\treturn rc;\n",
	"}\n",
	"\n",
	"/* Walks the top-level fields of a message. The last length-delimited\n",
	" * occurrence of `number` is the field's value (*field, *field_size);\n",
	" * every other field's bytes are counted in *kept and, with copy_to,\n",
	" * copied there (at most copy_cap bytes: the data may change under a\n",
	" * lapping publisher between two walks). -1: not valid wire format. */\n",
	"static int shmbus_gen_scan(const uint8_t *p, size_t size, uint32_t number,\n",
	"\t\tuint8_t *copy_to, size_t copy_cap, size_t *kept, size_t *n_found,\n",
	"\t\tconst uint8_t **field, size_t *field_size)\n",
	"{\n",
	"\tsize_t pos = 0;\n",
	"\n",
	"\t*kept = 0;\n",
	"\t*n_found = 0;\n",
	"\t*field = NULL;\n",
	"\t*field_size = 0;\n",
	"\twhile (pos < size) {\n",
	"\t\tsize_t start = pos, end;\n",
	"\t\tuint64_t key, len = 0;\n",
	"\n",
	"\t\tif (shmbus_gen_get_varint(p, size, &pos, &key) != 0)\n",
	"\t\t\treturn -1;\n",
	"\t\tswitch (key & 7u) {\n",
	"\t\tcase 0: /* varint */\n",
	"\t\t\tif (shmbus_gen_get_varint(p, size, &pos, &len) != 0)\n",
	"\t\t\t\treturn -1;\n",
	"\t\t\tend = pos;\n",
	"\t\t\tbreak;\n",
	"\t\tcase 1: /* 64-bit */\n",
	"\t\t\tif (size - pos < 8)\n",
	"\t\t\t\treturn -1;\n",
	"\t\t\tend = pos + 8;\n",
	"\t\t\tbreak;\n",
	"\t\tcase 2: /* length-delimited */\n",
	"\t\t\tif (shmbus_gen_get_varint(p, size, &pos, &len) != 0 || len > size - pos)\n",
	"\t\t\t\treturn -1;\n",
	"\t\t\tend = pos + (size_t)len;\n",
	"\t\t\tbreak;\n",
	"\t\tcase 5: /* 32-bit */\n",
	"\t\t\tif (size - pos < 4)\n",
	"\t\t\t\treturn -1;\n",
	"\t\t\tend = pos + 4;\n",
	"\t\t\tbreak;\n",
	"\t\tdefault: /* groups: protobuf-c has none */\n",
	"\t\t\treturn -1;\n",
	"\t\t}\n",
	"\t\tif ((key >> 3) == number && (key & 7u) == 2) {\n",
	"\t\t\t*field = p + pos;\n",
	"\t\t\t*field_size = (size_t)len;\n",
	"\t\t\t(*n_found)++;\n",
	"\t\t} else {\n",
	"\t\t\tif (copy_to) {\n",
	"\t\t\t\tif (end - start > copy_cap - *kept)\n",
	"\t\t\t\t\treturn -1;\n",
	"\t\t\t\tmemcpy(copy_to + *kept, p + start, end - start);\n",
	"\t\t\t}\n",
	"\t\t\t*kept += end - start;\n",
	"\t\t}\n",
	"\t\tpos = end;\n",
	"\t}\n",
	"\treturn 0;\n",
	"}\n",
	"\n",
	"/* Unpacks every field but `number`, which stays in the slot. When the\n",
	" * field is the message's end (as the loan functions lay it out) the rest\n",
	" * is unpacked in place; otherwise (or with copy_first, as for take) the\n",
	" * other fields are gathered into a private buffer first. */\n",
	"static int shmbus_gen_view_field(shmbus_sub *sub, const ProtobufCMessageDescriptor *desc,\n",
	"\t\tuint32_t number, int copy_first, ProtobufCAllocator *allocator,\n",
	"\t\tProtobufCMessage **out, struct shmbus_typed_view *view)\n",
	"{\n",
	"\tstruct shmbus_gen_alloc_watch watch;\n",
	"\tProtobufCMessage *m = NULL;\n",
	"\tsize_t size, kept, n_found;\n",
	"\tconst uint8_t *p;\n",
	"\tint rc, released;\n",
	"\n",
	"\t*out = NULL;\n",
	"\tif (!sub || !view)\n",
	"\t\treturn SHMBUS_EINVAL;\n",
	"\tview->field = NULL;\n",
	"\tview->field_size = 0;\n",
	"\tif (!shmbus_gen_type_ok(sub, desc))\n",
	"\t\treturn SHMBUS_ETYPE;\n",
	"\trc = shmbus_sub_view(sub, &view->view);\n",
	"\tif (rc != SHMBUS_OK)\n",
	"\t\treturn rc;\n",
	"\tp = view->view.data;\n",
	"\tsize = view->view.info.size;\n",
	"\tshmbus_gen_watch_init(&watch, allocator);\n",
	"\tif (shmbus_gen_scan(p, size, number, NULL, 0, &kept, &n_found, &view->field,\n",
	"\t\t\t&view->field_size) != 0) {\n",
	"\t\trc = SHMBUS_ECORRUPT;\n",
	"\t\tgoto fail;\n",
	"\t}\n",
	"\tif (!copy_first &&\n",
	"\t    (n_found == 0 || (n_found == 1 && view->field + view->field_size == p + size))) {\n",
	"\t\tm = protobuf_c_message_unpack(desc, &watch.base, kept, p);\n",
	"\t} else {\n",
	"\t\tuint8_t *rest = watch.base.alloc(&watch, kept ? kept : 1);\n",
	"\n",
	"\t\tif (!rest) {\n",
	"\t\t\trc = SHMBUS_ENOMEM;\n",
	"\t\t\tgoto fail;\n",
	"\t\t}\n",
	"\t\tif (shmbus_gen_scan(p, size, number, rest, kept, &kept, &n_found, &view->field,\n",
	"\t\t\t\t&view->field_size) == 0)\n",
	"\t\t\tm = protobuf_c_message_unpack(desc, &watch.base, kept, rest);\n",
	"\t\twatch.base.free(&watch, rest);\n",
	"\t}\n",
	"\tif (!m) {\n",
	"\t\trc = watch.failed ? SHMBUS_ENOMEM : SHMBUS_ECORRUPT;\n",
	"\t\tgoto fail;\n",
	"\t}\n",
	"\tif (!shmbus_sub_view_valid(sub, &view->view)) {\n",
	"\t\trc = SHMBUS_ELAPPED;\n",
	"\t\tgoto fail;\n",
	"\t}\n",
	"\t*out = m;\n",
	"\treturn SHMBUS_OK;\n",
	"fail:\n",
	"\tif (m)\n",
	"\t\tprotobuf_c_message_free_unpacked(m, allocator);\n",
	"\treleased = shmbus_sub_release(sub, &view->view);\n",
	"\tview->field = NULL;\n",
	"\tview->field_size = 0;\n",
	"\t/* Torn data explains any decoding failure. */\n",
	"\treturn released == SHMBUS_ELAPPED ? SHMBUS_ELAPPED : rc;\n",
	"}\n",
	"\n",
	"static int shmbus_gen_view_release(shmbus_sub *sub, ProtobufCMessage *msg,\n",
	"\t\tProtobufCAllocator *allocator, struct shmbus_typed_view *view)\n",
	"{\n",
	"\tint rc;\n",
	"\n",
	"\tif (!sub || !view)\n",
	"\t\treturn SHMBUS_EINVAL;\n",
	"\trc = shmbus_sub_release(sub, &view->view);\n",
	"\tif (msg)\n",
	"\t\tprotobuf_c_message_free_unpacked(msg, allocator);\n",
	"\tview->field = NULL;\n",
	"\tview->field_size = 0;\n",
	"\treturn rc;\n",
	"}\n",
	"#endif\n",
	NULL,
};

static const char *const source_message[] = {
	"\n",
	"/* ---- $full$ */\n",
	"\n",
	"void $lower$__topic_type(struct shmbus_topic_options *opts)\n",
	"{\n",
	"\topts->type_name = $upper$__SHMBUS_TYPE_NAME;\n",
	"\topts->schema = $schema$;\n",
	"\topts->schema_size = sizeof($schema$);\n",
	"}\n",
	"\n",
	"int $lower$__pub_open(shmbus_bus *bus, const char *topic,\n",
	"\t\tconst struct shmbus_topic_options *opts, shmbus_pub **out)\n",
	"{\n",
	"\treturn shmbus_gen_pub_open(bus, topic, opts, $upper$__SHMBUS_TYPE_NAME,\n",
	"\t\t\t$schema$, sizeof($schema$), out);\n",
	"}\n",
	"\n",
	"int $lower$__publish(shmbus_pub *pub, const $ctype$ *msg, uint64_t *seq)\n",
	"{\n",
	"\tif (!msg || msg->base.descriptor != &$lower$__descriptor)\n",
	"\t\treturn SHMBUS_EINVAL;\n",
	"\treturn shmbus_gen_publish(pub, &msg->base, seq);\n",
	"}\n",
	"\n",
	"int $lower$__sub_open(shmbus_bus *bus, const char *topic,\n",
	"\t\tconst struct shmbus_sub_options *opts, shmbus_sub **out)\n",
	"{\n",
	"\treturn shmbus_gen_sub_open(bus, topic, opts, $upper$__SHMBUS_TYPE_NAME,\n",
	"\t\t\t$schema$, sizeof($schema$), out);\n",
	"}\n",
	"\n",
	"int $lower$__take(shmbus_sub *sub, ProtobufCAllocator *allocator, $ctype$ **msg,\n",
	"\t\tstruct shmbus_msg_info *info)\n",
	"{\n",
	"\tProtobufCMessage *m = NULL;\n",
	"\tint rc;\n",
	"\n",
	"\tif (!msg)\n",
	"\t\treturn SHMBUS_EINVAL;\n",
	"\trc = shmbus_gen_take(sub, &$lower$__descriptor, $copy$, allocator, &m, info);\n",
	"\t*msg = ($ctype$ *)m;\n",
	"\treturn rc;\n",
	"}\n",
	"\n",
	"void $lower$__free($ctype$ *msg, ProtobufCAllocator *allocator)\n",
	"{\n",
	"\tif (msg)\n",
	"\t\tprotobuf_c_message_free_unpacked(&msg->base, allocator);\n",
	"}\n",
	"\n",
	"int $lower$__wait(shmbus_sub *sub, int64_t timeout_ns)\n",
	"{\n",
	"\treturn shmbus_sub_wait(sub, timeout_ns);\n",
	"}\n",
	NULL,
};

static const char *const source_zc_field[] = {
	"\n",
	"int $lower$__loan_$fname$(shmbus_pub *pub, const $ctype$ *msg, size_t size,\n",
	"\t\tstruct shmbus_typed_loan *loan)\n",
	"{\n",
	"\t$ctype$ rest;\n",
	"\n",
	"\tif (!msg || !loan || msg->base.descriptor != &$lower$__descriptor)\n",
	"\t\treturn SHMBUS_EINVAL;\n",
	"\trest = *msg;\n",
	"\trest.$member$.len = 0;\n",
	"\trest.$member$.data = NULL;\n",
	"$clear_has$",
	"\treturn shmbus_gen_loan_field(pub, &rest.base, $number$u, size, loan);\n",
	"}\n",
	"\n",
	"int $lower$__view_$fname$(shmbus_sub *sub, ProtobufCAllocator *allocator,\n",
	"\t\t$ctype$ **msg, struct shmbus_typed_view *view)\n",
	"{\n",
	"\tProtobufCMessage *m = NULL;\n",
	"\tint rc;\n",
	"\n",
	"\tif (!msg)\n",
	"\t\treturn SHMBUS_EINVAL;\n",
	"\trc = shmbus_gen_view_field(sub, &$lower$__descriptor, $number$u, $copy$, allocator,\n",
	"\t\t\t&m, view);\n",
	"\t*msg = ($ctype$ *)m;\n",
	"\treturn rc;\n",
	"}\n",
	NULL,
};

static const char *const source_zc_message[] = {
	"\n",
	"int $lower$__publish_loan(shmbus_pub *pub, struct shmbus_typed_loan *loan,\n",
	"\t\tuint64_t *seq)\n",
	"{\n",
	"\treturn shmbus_gen_publish_loan(pub, loan, seq);\n",
	"}\n",
	"\n",
	"int $lower$__view_release(shmbus_sub *sub, $ctype$ *msg,\n",
	"\t\tProtobufCAllocator *allocator, struct shmbus_typed_view *view)\n",
	"{\n",
	"\treturn shmbus_gen_view_release(sub, msg ? &msg->base : NULL, allocator, view);\n",
	"}\n",
	NULL,
};

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

static void emit_files(struct gen *g, const uint8_t *schema, size_t schema_size,
		       struct generated_file out[2])
{
	struct text h, c;
	char *stem = name_strip_proto(g->file->name);
	char *ident = name_file_ident(g->file->name);
	char *schema_name = NULL;
	char major[16];
	bool any_zc = false;

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
	emit(&h, header_top, file_vars);
	text_append(&c, banner, strlen(banner));
	emit(&c, source_top, file_vars);
	emit_schema(&c, schema_name, schema, schema_size);
	emit(&c, source_core, file_vars);
	for (size_t i = 0; i < g->n_msgs; i++)
		any_zc = any_zc || g->msgs[i].n_zc > 0;
	if (any_zc)
		emit(&c, source_zc, file_vars);

	for (size_t i = 0; i < g->n_msgs; i++) {
		const struct message *m = &g->msgs[i];
		const char *copy = m->copy_first ? "1" : "0";
		const char *const vars[] = {
			"full", m->full, "ctype", m->ctype, "lower", m->lower,
			"upper", m->upper, "schema", schema_name, "copy", copy, NULL,
		};

		emit(&h, header_message, vars);
		emit(&c, source_message, vars);
		for (size_t j = 0; j < m->n_zc; j++) {
			const struct zc_field *z = &m->zc[j];
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
				goto out;
			}
			const char *const zvars[] = {
				"full", m->full, "ctype", m->ctype, "lower", m->lower,
				"fname", z->fname, "member", z->member, "number", number,
				"clear_has", clear_has, "copy", copy, NULL,
			};
			emit(&h, header_zc_field, zvars);
			emit(&c, source_zc_field, zvars);
			free(clear_has);
		}
		if (m->n_zc > 0) {
			emit(&h, header_zc_message, vars);
			emit(&c, source_zc_message, vars);
		}
	}
	emit(&h, header_bottom, NULL);

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
