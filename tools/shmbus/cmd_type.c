/*
 * cmd_type.c - `shmbus type TOPIC`: the topic's message definition as
 * .proto text, rebuilt from the FileDescriptorSet stored with the topic
 * (as `ros2 interface show` prints a message), so a user sees what a topic
 * carries without its .proto files. The text is valid input for protoc:
 * the file that defines the type, and with --all the files it imports.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "recording.h"
#include "google/protobuf/descriptor.pb-c.h"

typedef Google__Protobuf__FileDescriptorProto FileProto;
typedef Google__Protobuf__DescriptorProto MsgProto;
typedef Google__Protobuf__FieldDescriptorProto FieldProto;
typedef Google__Protobuf__EnumDescriptorProto EnumProto;

static const char type_usage[] =
	"usage: shmbus type [--bus NAME] TOPIC [--all]\n"
	"\n"
	"Prints the message definition of TOPIC's type as .proto text, from the\n"
	"schema stored with the topic: the file that defines the type (with the\n"
	"comments the schema kept). --all also prints the files it imports, each\n"
	"after a line \"// file: NAME\", dependencies first. Exit 1 if the topic does\n"
	"not exist or has no schema.\n";

/* Where in the file we are printing, as descriptor.proto's field numbers
 * (SourceCodeInfo.Location.path), to find a definition's comments. */
struct printer {
	FILE *f;
	const FileProto *file;
	int32_t path[64];
	size_t depth;
};

static void indent(struct printer *p, int level)
{
	for (int i = 0; i < level; i++)
		fputs("  ", p->f);
}

/* The leading comment of the definition at p->path, as // lines. */
static void comments(struct printer *p, int level)
{
	const Google__Protobuf__SourceCodeInfo *sci = p->file->source_code_info;
	for (size_t i = 0; sci && i < sci->n_location; i++) {
		const Google__Protobuf__SourceCodeInfo__Location *l = sci->location[i];
		if (l->n_path != p->depth || memcmp(l->path, p->path, p->depth * sizeof(int32_t)))
			continue;
		const char *c = l->leading_comments;
		while (c && *c) {
			size_t n = strcspn(c, "\n");
			indent(p, level);
			fprintf(p->f, "//%.*s\n", (int)n, c);
			c += n + (c[n] == '\n');
		}
		return;
	}
}

static void push(struct printer *p, int32_t a, int32_t b)
{
	if (p->depth + 2 <= sizeof(p->path) / sizeof(p->path[0])) {
		p->path[p->depth++] = a;
		p->path[p->depth++] = b;
	}
}

static void pop(struct printer *p)
{
	p->depth = p->depth >= 2 ? p->depth - 2 : 0;
}

static const char *const scalar_names[] = {
	[1] = "double", [2] = "float", [3] = "int64", [4] = "uint64", [5] = "int32",
	[6] = "fixed64", [7] = "fixed32", [8] = "bool", [9] = "string", [10] = "group",
	[11] = "message", [12] = "bytes", [13] = "uint32", [14] = "enum", [15] = "sfixed32",
	[16] = "sfixed64", [17] = "sint32", [18] = "sint64",
};

/* A type reference: relative to the file's package when inside it, else
 * fully qualified (".pkg.Type" always resolves to itself). */
static void type_ref(struct printer *p, const FieldProto *fd)
{
	if (fd->type != GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_MESSAGE &&
	    fd->type != GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_ENUM &&
	    fd->type != GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_GROUP) {
		unsigned t = (unsigned)fd->type;
		fputs(t < sizeof(scalar_names) / sizeof(*scalar_names) && scalar_names[t]
			      ? scalar_names[t] : "bytes", p->f);
		return;
	}
	const char *name = fd->type_name ? fd->type_name : "?";
	const char *pkg = p->file->package;
	size_t n = pkg ? strlen(pkg) : 0;
	if (n && name[0] == '.' && strncmp(name + 1, pkg, n) == 0 && name[n + 1] == '.')
		fputs(name + n + 2, p->f);
	else
		fputs(name, p->f);
}

static const MsgProto *nested_named(const MsgProto *m, const char *type_name)
{
	const char *last = strrchr(type_name, '.');
	for (size_t i = 0; last && i < m->n_nested_type; i++)
		if (strcmp(m->nested_type[i]->name, last + 1) == 0)
			return m->nested_type[i];
	return NULL;
}

static bool proto3(const FileProto *f)
{
	return f->syntax && strcmp(f->syntax, "proto3") == 0;
}

/* Whether json_name is what protoc derives from the name anyway
 * (lowerCamelCase: underscores dropped, the letter after one raised). */
static bool default_json_name(const FieldProto *fd)
{
	const char *n = fd->name, *j = fd->json_name;
	bool up = false;
	for (; *n; n++) {
		if (*n == '_') {
			up = true;
			continue;
		}
		char c = up && *n >= 'a' && *n <= 'z' ? (char)(*n - 'a' + 'A') : *n;
		up = false;
		if (*j++ != c)
			return false;
	}
	return *j == 0;
}

static void print_field(struct printer *p, const MsgProto *m, const FieldProto *fd, int level)
{
	comments(p, level);
	indent(p, level);
	const MsgProto *entry = NULL;
	if (fd->label == GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__LABEL__LABEL_REPEATED &&
	    fd->type_name)
		entry = nested_named(m, fd->type_name);
	if (entry && entry->options && entry->options->map_entry && entry->n_field == 2) {
		fputs("map<", p->f);
		type_ref(p, entry->field[0]);
		fputs(", ", p->f);
		type_ref(p, entry->field[1]);
		fputs("> ", p->f);
	} else {
		if (fd->label == GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__LABEL__LABEL_REPEATED)
			fputs("repeated ", p->f);
		else if (fd->has_proto3_optional && fd->proto3_optional)
			fputs("optional ", p->f);
		else if (!proto3(p->file) && !fd->has_oneof_index)
			fputs(fd->label == GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__LABEL__LABEL_REQUIRED
				      ? "required " : "optional ", p->f);
		type_ref(p, fd);
		fputc(' ', p->f);
	}
	fprintf(p->f, "%s = %d", fd->name, fd->number);
	const char *sep = " [";
	if (fd->default_value) {
		bool quote = fd->type == GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_STRING ||
			     fd->type == GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_BYTES;
		fprintf(p->f, "%sdefault = %s%s%s", sep, quote ? "\"" : "", fd->default_value,
			quote ? "\"" : "");
		sep = ", ";
	}
	if (fd->options && fd->options->has_packed) {
		fprintf(p->f, "%spacked = %s", sep, fd->options->packed ? "true" : "false");
		sep = ", ";
	}
	if (fd->options && fd->options->has_deprecated && fd->options->deprecated) {
		fprintf(p->f, "%sdeprecated = true", sep);
		sep = ", ";
	}
	if (fd->json_name && !default_json_name(fd)) {
		fprintf(p->f, "%sjson_name = \"%s\"", sep, fd->json_name);
		sep = ", ";
	}
	fputs(*sep == ',' ? "];\n" : ";\n", p->f);
}

static void print_enum(struct printer *p, const EnumProto *e, int level)
{
	comments(p, level);
	indent(p, level);
	fprintf(p->f, "enum %s {\n", e->name);
	for (size_t i = 0; i < e->n_value; i++) {
		push(p, 2, (int32_t)i);
		comments(p, level + 1);
		indent(p, level + 1);
		fprintf(p->f, "%s = %d;\n", e->value[i]->name, e->value[i]->number);
		pop(p);
	}
	indent(p, level);
	fputs("}\n", p->f);
}

static void print_reserved(struct printer *p, const MsgProto *m, int level)
{
	for (size_t i = 0; i < m->n_reserved_range; i++) {
		const Google__Protobuf__DescriptorProto__ReservedRange *r = m->reserved_range[i];
		indent(p, level);
		if (r->end - 1 == r->start)
			fprintf(p->f, "reserved %d;\n", r->start);
		else
			fprintf(p->f, "reserved %d to %d;\n", r->start,
				r->end - 1 >= 536870911 ? 536870911 : r->end - 1);
	}
	for (size_t i = 0; i < m->n_reserved_name; i++) {
		indent(p, level);
		fprintf(p->f, "reserved \"%s\";\n", m->reserved_name[i]);
	}
}

static void print_message(struct printer *p, const MsgProto *m, int level)
{
	comments(p, level);
	indent(p, level);
	fprintf(p->f, "message %s {\n", m->name);
	for (size_t i = 0; i < m->n_enum_type; i++) {
		push(p, 4, (int32_t)i);
		print_enum(p, m->enum_type[i], level + 1);
		pop(p);
	}
	for (size_t i = 0; i < m->n_nested_type; i++) {
		if (m->nested_type[i]->options && m->nested_type[i]->options->map_entry)
			continue; /* printed as map<K, V> */
		push(p, 3, (int32_t)i);
		print_message(p, m->nested_type[i], level + 1);
		pop(p);
	}
	/* Fields in declaration order; a real oneof's members together where
	 * its first member stands. */
	for (size_t i = 0; i < m->n_field; i++) {
		const FieldProto *fd = m->field[i];
		bool in_oneof = fd->has_oneof_index && !(fd->has_proto3_optional &&
							 fd->proto3_optional);
		if (!in_oneof) {
			push(p, 2, (int32_t)i);
			print_field(p, m, fd, level + 1);
			pop(p);
			continue;
		}
		bool first = true;
		for (size_t k = 0; k < i && first; k++)
			first = !(m->field[k]->has_oneof_index &&
				  m->field[k]->oneof_index == fd->oneof_index);
		if (!first || (size_t)fd->oneof_index >= m->n_oneof_decl)
			continue;
		push(p, 8, fd->oneof_index);
		comments(p, level + 1);
		pop(p);
		indent(p, level + 1);
		fprintf(p->f, "oneof %s {\n", m->oneof_decl[fd->oneof_index]->name);
		for (size_t k = i; k < m->n_field; k++) {
			if (!m->field[k]->has_oneof_index || m->field[k]->oneof_index != fd->oneof_index)
				continue;
			push(p, 2, (int32_t)k);
			print_field(p, m, m->field[k], level + 2);
			pop(p);
		}
		indent(p, level + 1);
		fputs("}\n", p->f);
	}
	print_reserved(p, m, level + 1);
	indent(p, level);
	fputs("}\n", p->f);
}

static void print_file(FILE *f, const FileProto *file)
{
	struct printer p = { .f = f, .file = file };
	fprintf(f, "syntax = \"%s\";\n", proto3(file) ? "proto3" : "proto2");
	if (file->package)
		fprintf(f, "\npackage %s;\n", file->package);
	if (file->n_dependency)
		fputc('\n', f);
	for (size_t i = 0; i < file->n_dependency; i++)
		fprintf(f, "import \"%s\";\n", file->dependency[i]);
	for (size_t i = 0; i < file->n_enum_type; i++) {
		fputc('\n', f);
		push(&p, 5, (int32_t)i);
		print_enum(&p, file->enum_type[i], 0);
		pop(&p);
	}
	for (size_t i = 0; i < file->n_message_type; i++) {
		fputc('\n', f);
		push(&p, 4, (int32_t)i);
		print_message(&p, file->message_type[i], 0);
		pop(&p);
	}
}

/* Whether `m` (full name prefix.m) or a message nested in it is `type`. */
static bool defines(const MsgProto *m, const char *prefix, size_t plen, const char *type)
{
	size_t n = strlen(m->name);
	if (plen && (strncmp(type, prefix, plen) != 0 || type[plen] != '.'))
		return false;
	const char *rest = plen ? type + plen + 1 : type;
	if (strncmp(rest, m->name, n) != 0)
		return false;
	if (rest[n] == 0)
		return true;
	if (rest[n] != '.')
		return false;
	for (size_t i = 0; i < m->n_nested_type; i++)
		if (defines(m->nested_type[i], type, (size_t)(rest - type) + n, type))
			return true;
	return false;
}

static const FileProto *defining_file(const Google__Protobuf__FileDescriptorSet *set,
				      const char *type)
{
	for (size_t i = 0; i < set->n_file; i++) {
		const FileProto *f = set->file[i];
		const char *pkg = f->package ? f->package : "";
		for (size_t k = 0; k < f->n_message_type; k++)
			if (defines(f->message_type[k], pkg, strlen(pkg), type))
				return f;
	}
	return NULL;
}

/* The index of the file called `name` in the set, or n_file. */
static size_t file_index(const Google__Protobuf__FileDescriptorSet *set, const char *name)
{
	size_t i = 0;
	while (i < set->n_file && strcmp(set->file[i]->name, name) != 0)
		i++;
	return i;
}

/* The files `f` imports, transitively, dependencies first, each once. */
static void print_deps(const Google__Protobuf__FileDescriptorSet *set, const FileProto *f,
		       bool *done)
{
	for (size_t i = 0; i < f->n_dependency; i++) {
		size_t k = file_index(set, f->dependency[i]);
		if (k == set->n_file || done[k])
			continue;
		done[k] = true;
		const FileProto *d = set->file[k];
		print_deps(set, d, done);
		printf("// file: %s\n", d->name);
		print_file(stdout, d);
		putchar('\n');
	}
}

static int print_type(const char *topic, const char *type, const void *blob, size_t size,
		      bool all)
{
	Google__Protobuf__FileDescriptorSet *set =
		google__protobuf__file_descriptor_set__unpack(NULL, size, blob);
	if (!set) {
		fprintf(stderr, "shmbus type: %s: its schema is not a FileDescriptorSet\n", topic);
		return 1;
	}
	const FileProto *f = defining_file(set, type);
	int rc = 0;
	if (!f) {
		fprintf(stderr, "shmbus type: %s: its schema does not define its type '%s'\n", topic,
			type);
		rc = 1;
	} else {
		if (all) {
			bool *done = calloc(set->n_file, sizeof(bool)); /* by index */
			if (done)
				print_deps(set, f, done);
			free(done);
			printf("// file: %s\n", f->name);
		}
		printf("// %s (topic %s)\n", type, topic);
		print_file(stdout, f);
	}
	google__protobuf__file_descriptor_set__free_unpacked(set, NULL);
	return rc;
}

int cmd_type(int argc, char **argv)
{
	bool help, all = false;
	const char *bus_name = cli_common_options(&argc, argv, &help);
	const char *topic = NULL;
	for (int i = 1; i < argc && !help; i++) {
		if (strcmp(argv[i], "--all") == 0) {
			all = true;
		} else if (argv[i][0] == '-' || topic) {
			fprintf(stderr, "shmbus type: unexpected argument '%s'\n%s", argv[i], type_usage);
			return 2;
		} else {
			topic = argv[i];
		}
	}
	if (help || !topic)
		return cli_usage(help, type_usage);
	shmbus_bus *bus = cli_connect(bus_name, "type", false, NULL);
	if (!bus)
		return 1;
	shmbus_sub *sub;
	int rc = shmbus_sub_open(bus, topic, NULL, NULL, &sub);
	if (rc) {
		cli_fail("type", rc, topic);
		shmbus_disconnect(bus);
		return 1;
	}
	const char *type = shmbus_sub_type_name(sub);
	size_t size;
	const void *blob = shmbus_sub_schema(sub, &size);
	int status = 1;
	struct rec_foreign fc;
	if (size && rec_foreign_unwrap(blob, size, &fc)) {
		/* Played from a recording of another encoding: its own text. */
		printf("// %s (%s schema; messages %s; topic %s)\n%.*s\n", fc.schema_name,
		       fc.schema_encoding, fc.message_encoding, topic, (int)fc.size,
		       (const char *)fc.data);
		status = 0;
	} else if (!*type)
		fprintf(stderr, "shmbus type: %s is untyped (raw bytes): no definition\n", topic);
	else if (!size)
		fprintf(stderr, "shmbus type: %s has type '%s' but its publisher stored no "
				"schema\n", topic, type);
	else
		status = print_type(topic, type, blob, size, all);
	shmbus_sub_close(sub);
	shmbus_disconnect(bus);
	return status;
}
