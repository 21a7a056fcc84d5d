/*
 * names.c - protoc-c's naming rules, restated: a package or message name is
 * split at dots; parts are joined with "__"; types keep CamelCase (with
 * '_'-separated words capitalised), functions and macros turn CamelCase
 * into lower/upper snake case.
 */
#include "names.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum part_style { STYLE_CAMEL, STYLE_LOWER, STYLE_UPPER };

/* Worst case doubles the length (a '_' before every capital) plus "__"
 * per dot. */
static size_t worst_len(const char *s)
{
	return strlen(s) * 3 + 1;
}

static void convert_part(const char *p, size_t n, enum part_style style, char **out)
{
	char *o = *out;
	bool was_upper = true; /* no '_' before a leading capital */
	bool next_upper = true;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		bool is_upper = isupper(c) != 0;

		switch (style) {
		case STYLE_CAMEL:
			if (c == '_') {
				next_upper = true;
			} else {
				*o++ = next_upper ? (char)toupper(c) : (char)c;
				next_upper = false;
			}
			break;
		case STYLE_LOWER:
		case STYLE_UPPER:
			if (is_upper && !was_upper)
				*o++ = '_';
			*o++ = style == STYLE_LOWER ? (char)tolower(c) : (char)toupper(c);
			was_upper = is_upper;
			break;
		}
	}
	*out = o;
}

static char *convert_full(const char *full, enum part_style style)
{
	char *res = malloc(worst_len(full));
	char *o = res;
	const char *p = full;

	if (!res)
		return NULL;
	while (*p) {
		const char *dot = strchr(p, '.');
		size_t n = dot ? (size_t)(dot - p) : strlen(p);

		if (n > 0) {
			if (o != res) {
				*o++ = '_';
				*o++ = '_';
			}
			convert_part(p, n, style, &o);
		}
		p += n;
		if (*p == '.')
			p++;
	}
	*o = '\0';
	return res;
}

char *name_c_type(const char *full_name)
{
	return convert_full(full_name, STYLE_CAMEL);
}

char *name_c_lower(const char *full_name)
{
	return convert_full(full_name, STYLE_LOWER);
}

char *name_c_upper(const char *full_name)
{
	return convert_full(full_name, STYLE_UPPER);
}

/* The list protoc-c appends '_' to (C and C++ keywords). */
static const char *const keywords[] = {
	"and", "and_eq", "asm", "auto", "bitand", "bitor", "bool", "break",
	"case", "catch", "char", "class", "compl", "const", "const_cast",
	"continue", "default", "delete", "do", "double", "dynamic_cast", "else",
	"enum", "explicit", "extern", "false", "float", "for", "friend", "goto",
	"if", "inline", "int", "long", "mutable", "namespace", "new", "not",
	"not_eq", "operator", "or", "or_eq", "private", "protected", "public",
	"register", "reinterpret_cast", "return", "short", "signed", "sizeof",
	"static", "static_cast", "struct", "switch", "template", "this", "throw",
	"true", "try", "typedef", "typeid", "typename", "union", "unsigned",
	"using", "virtual", "void", "volatile", "wchar_t", "while", "xor",
	"xor_eq",
};

char *name_c_field(const char *field_name)
{
	size_t n = strlen(field_name);
	char *res = malloc(n + 2);

	if (!res)
		return NULL;
	for (size_t i = 0; i < n; i++)
		res[i] = (char)tolower((unsigned char)field_name[i]);
	res[n] = '\0';
	for (size_t i = 0; i < sizeof(keywords) / sizeof(keywords[0]); i++) {
		if (strcmp(res, keywords[i]) == 0) {
			res[n] = '_';
			res[n + 1] = '\0';
			break;
		}
	}
	return res;
}

static bool has_suffix(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && strcmp(s + n - m, suffix) == 0;
}

char *name_strip_proto(const char *file_name)
{
	size_t n = strlen(file_name);

	if (has_suffix(file_name, ".protodevel"))
		n -= strlen(".protodevel");
	else if (has_suffix(file_name, ".proto"))
		n -= strlen(".proto");
	return strndup(file_name, n);
}

char *name_file_ident(const char *file_name)
{
	char *res = malloc(strlen(file_name) * 3 + 1);
	char *o = res;

	if (!res)
		return NULL;
	for (const char *p = file_name; *p; p++) {
		unsigned char c = (unsigned char)*p;

		if (isalnum(c)) {
			*o++ = (char)c;
		} else {
			o += sprintf(o, "_%x", c);
		}
	}
	*o = '\0';
	return res;
}
