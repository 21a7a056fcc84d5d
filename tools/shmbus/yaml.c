/*
 * yaml.c - reads the command-line part of YAML into JSON values (see
 * yaml.h). Block structure is read line by line by indentation; flow
 * collections and scalars by a small recursive reader over one text.
 * Nothing here trusts its input: every refusal names the line.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "yaml.h"

#define YAML_MAX_DEPTH 64

struct line {
	int no;     /* 1-based, in the text */
	int indent; /* columns of leading spaces */
	char *text; /* after the indentation, comment and trailing space cut */
};

struct yp {
	struct line *l;
	size_t n, i;
	int depth;
	char *err;
	size_t errlen;
	bool failed;
};

__attribute__((format(printf, 3, 4)))
static json_t *fail(struct yp *y, int line, const char *fmt, ...)
{
	if (y->failed)
		return NULL;
	y->failed = true;
	int k = snprintf(y->err, y->errlen, "YAML line %d: ", line);
	if (k < 0 || (size_t)k >= y->errlen)
		return NULL;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(y->err + k, y->errlen - (size_t)k, fmt, ap);
	va_end(ap);
	return NULL;
}

/* ------------------------------------------------------------ scalars */

/* A plain scalar's value by YAML 1.2's core schema. */
static json_t *plain_scalar(const char *s, size_t n)
{
	char buf[64];
	if (n == 0 || (n == 1 && s[0] == '~') || (n == 4 && !memcmp(s, "null", 4)) ||
	    (n == 4 && !memcmp(s, "Null", 4)) || (n == 4 && !memcmp(s, "NULL", 4)))
		return json_null();
	if ((n == 4 && (!memcmp(s, "true", 4) || !memcmp(s, "True", 4) || !memcmp(s, "TRUE", 4))))
		return json_true();
	if ((n == 5 && (!memcmp(s, "false", 5) || !memcmp(s, "False", 5) ||
			!memcmp(s, "FALSE", 5))))
		return json_false();
	if (n < sizeof(buf)) {
		memcpy(buf, s, n);
		buf[n] = 0;
		const char *b = buf + (buf[0] == '+' || buf[0] == '-');
		if (!strcmp(b, ".inf") || !strcmp(b, ".Inf") || !strcmp(b, ".INF"))
			return json_string(buf[0] == '-' ? "-Infinity" : "Infinity");
		if (!strcmp(buf, ".nan") || !strcmp(buf, ".NaN") || !strcmp(buf, ".NAN"))
			return json_string("NaN");
		char *end;
		errno = 0;
		long long v = strtoll(buf, &end, 10);
		if (!*end && end != buf && (buf[0] == '-' || buf[0] == '+' ||
					    (buf[0] >= '0' && buf[0] <= '9'))) {
			/* Beyond int64 (a uint64): the decimal string, which
			 * pbjson takes for integer fields. */
			return errno ? json_stringn(s, n) : json_integer(v);
		}
		double d = strtod(buf, &end);
		if (!*end && end != buf && isfinite(d) && strpbrk(buf, "0123456789") &&
		    !strpbrk(buf, "xXpP") && strcmp(buf, "infinity") && strcmp(buf, "nan"))
			return json_real(d);
	}
	return json_stringn(s, n);
}

/* Appends the UTF-8 form of code point c to out[*k]. */
static void put_utf8(char *out, size_t *k, unsigned c)
{
	if (c < 0x80) {
		out[(*k)++] = (char)c;
	} else if (c < 0x800) {
		out[(*k)++] = (char)(0xc0 | c >> 6);
		out[(*k)++] = (char)(0x80 | (c & 0x3f));
	} else if (c < 0x10000) {
		out[(*k)++] = (char)(0xe0 | c >> 12);
		out[(*k)++] = (char)(0x80 | ((c >> 6) & 0x3f));
		out[(*k)++] = (char)(0x80 | (c & 0x3f));
	} else {
		out[(*k)++] = (char)(0xf0 | c >> 18);
		out[(*k)++] = (char)(0x80 | ((c >> 12) & 0x3f));
		out[(*k)++] = (char)(0x80 | ((c >> 6) & 0x3f));
		out[(*k)++] = (char)(0x80 | (c & 0x3f));
	}
}

/* A quoted scalar starting at *p (the quote); *p moves past its end. */
static json_t *quoted(struct yp *y, int line, const char **p)
{
	char q = **p;
	const char *s = *p + 1;
	size_t cap = strlen(s) + 1, k = 0;
	char *out = malloc(cap);
	if (!out)
		return fail(y, line, "out of memory");
	for (;; s++) {
		if (!*s) {
			free(out);
			return fail(y, line, "the quoted string does not end");
		}
		if (*s == q && q == '\'' && s[1] == '\'') {
			out[k++] = '\'';
			s++;
			continue;
		}
		if (*s == q)
			break;
		if (q == '\'' || *s != '\\') {
			out[k++] = *s;
			continue;
		}
		int digits = 0;
		switch (*++s) {
		case 'n': out[k++] = '\n'; break;
		case 't': out[k++] = '\t'; break;
		case 'r': out[k++] = '\r'; break;
		case 'b': out[k++] = '\b'; break;
		case 'f': out[k++] = '\f'; break;
		case '0': out[k++] = '\0'; break;
		case '"': case '\\': case '/': case ' ': out[k++] = *s; break;
		case 'x': digits = 2; break;
		case 'u': digits = 4; break;
		case 'U': digits = 8; break;
		default:
			free(out);
			return fail(y, line, "unknown escape '\\%c' in a quoted string", *s ? *s : ' ');
		}
		if (digits) {
			char hex[9] = "";
			for (int d = 0; d < digits; d++)
				hex[d] = isxdigit((unsigned char)s[1 + d]) ? s[1 + d] : 'x';
			if (strchr(hex, 'x')) {
				free(out);
				return fail(y, line, "escape '\\%c' needs %d hex digits", *s, digits);
			}
			unsigned c = (unsigned)strtoul(hex, NULL, 16);
			s += digits;
			if (c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) {
				free(out);
				return fail(y, line, "escape names no character (U+%X)", c);
			}
			put_utf8(out, &k, c); /* at most 4 bytes for >= 4 characters */
		}
	}
	*p = s + 1;
	json_t *j = json_stringn(out, k);
	free(out);
	return j ? j : fail(y, line, "a quoted string that is not UTF-8");
}

/* ------------------------------------------------------------- flow */

static void skip_space(const char **p, int *line)
{
	for (;;) {
		while (**p == ' ' || **p == '\t' || **p == '\r' || **p == '\n') {
			if (**p == '\n')
				(*line)++;
			(*p)++;
		}
		if (**p != '#')
			return;
		while (**p && **p != '\n')
			(*p)++;
	}
}

static json_t *flow_value(struct yp *y, const char **p, int *line, bool in_flow);

static bool refused_start(struct yp *y, int line, char c)
{
	if (c == '&' || c == '*')
		fail(y, line, "anchors and aliases are not supported");
	else if (c == '!')
		fail(y, line, "tags are not supported");
	else if (c == '|' || c == '>')
		fail(y, line, "block scalars (| and >) are not supported; use a quoted string");
	else if (c == '@' || c == '`' || c == '%')
		fail(y, line, "'%c' cannot start a value", c);
	else
		return false;
	return true;
}

/* A plain scalar inside a flow collection ends at , ] } or ": ". */
static json_t *flow_plain(const char **p, bool in_flow)
{
	const char *s = *p, *e = s;
	while (*e && *e != '\n') {
		if (in_flow && (*e == ',' || *e == ']' || *e == '}'))
			break;
		if (*e == ':' && (e[1] == ' ' || e[1] == '\n' || e[1] == 0 ||
				  (in_flow && (e[1] == ',' || e[1] == '}' || e[1] == ']'))))
			break;
		if (*e == '#' && e > s && (e[-1] == ' ' || e[-1] == '\t'))
			break;
		e++;
	}
	*p = e;
	while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
		e--;
	return plain_scalar(s, (size_t)(e - s));
}

static json_t *flow_collection(struct yp *y, const char **p, int *line)
{
	bool map = **p == '{';
	char close = map ? '}' : ']';
	json_t *c = map ? json_object() : json_array();
	if (!c)
		return fail(y, *line, "out of memory");
	(*p)++;
	for (;;) {
		skip_space(p, line);
		if (**p == close) {
			(*p)++;
			return c;
		}
		json_t *k = NULL, *v;
		if (map) {
			k = flow_value(y, p, line, true);
			if (k && !json_is_string(k) && !json_is_number(k) && !json_is_boolean(k)) {
				json_decref(k);
				k = fail(y, *line, "a key must be a scalar");
			}
			skip_space(p, line);
			if (k && **p != ':') {
				json_decref(k);
				k = fail(y, *line, "expected ':' after a key in {...}");
			}
			if (!k) {
				json_decref(c);
				return NULL;
			}
			(*p)++;
			skip_space(p, line);
			v = (**p == ',' || **p == '}') ? json_null() : flow_value(y, p, line, true);
		} else {
			v = flow_value(y, p, line, true);
		}
		if (!v) {
			json_decref(k);
			json_decref(c);
			return NULL;
		}
		if (map) {
			char num[32];
			const char *key = num;
			if (json_is_string(k))
				key = json_string_value(k);
			else if (json_is_integer(k))
				snprintf(num, sizeof(num), "%lld", (long long)json_integer_value(k));
			else
				snprintf(num, sizeof(num), "%s", json_is_true(k) ? "true" : "false");
			bool dup = json_object_get(c, key) != NULL;
			if (!dup)
				json_object_set_new(c, key, v);
			else
				json_decref(v);
			if (dup) {
				fail(y, *line, "key '%s' appears twice", key);
				json_decref(k);
				json_decref(c);
				return NULL;
			}
			json_decref(k);
		} else {
			json_array_append_new(c, v);
		}
		skip_space(p, line);
		if (**p == ',') {
			(*p)++;
		} else if (**p != close) {
			json_decref(c);
			return fail(y, *line, "expected ',' or '%c'", close);
		}
	}
}

static json_t *flow_value(struct yp *y, const char **p, int *line, bool in_flow)
{
	skip_space(p, line);
	if (refused_start(y, *line, **p))
		return NULL;
	if (**p == '"' || **p == '\'')
		return quoted(y, *line, p);
	if (**p == '{' || **p == '[') {
		if (++y->depth > YAML_MAX_DEPTH)
			return fail(y, *line, "nested deeper than %d", YAML_MAX_DEPTH);
		json_t *c = flow_collection(y, p, line);
		y->depth--;
		return c;
	}
	if (in_flow && (**p == ',' || **p == ']' || **p == '}'))
		return fail(y, *line, "a value is missing before '%c'", **p);
	return flow_plain(p, in_flow);
}

/* A whole text (a line's value, or a document in flow style). */
static json_t *flow_text(struct yp *y, const char *text, int line)
{
	const char *p = text;
	json_t *v = flow_value(y, &p, &line, false);
	if (!v)
		return NULL;
	skip_space(&p, &line);
	if (*p) {
		json_decref(v);
		return fail(y, line, "unexpected '%.20s' after a value", p);
	}
	return v;
}

/* ------------------------------------------------------------ block */

static bool is_dash(const char *t)
{
	return t[0] == '-' && (t[1] == ' ' || t[1] == 0);
}

/* Whether the line is "key: ..." and where its value starts; *key is a new
 * string. */
static bool key_line(struct yp *y, const struct line *l, json_t **key, const char **rest)
{
	const char *t = l->text, *e;
	*key = NULL;
	if (*t == '{' || *t == '[' || is_dash(t))
		return false;
	if (*t == '"' || *t == '\'') {
		e = t;
		bool was_failed = y->failed;
		json_t *k = quoted(y, l->no, &e);
		if (!k) {
			y->failed = was_failed; /* not a key: let the caller say why */
			return false;
		}
		while (*e == ' ')
			e++;
		if (*e != ':' || (e[1] != ' ' && e[1] != 0)) {
			json_decref(k);
			return false;
		}
		*key = k;
	} else {
		for (e = t; *e; e++)
			if (*e == ':' && (e[1] == ' ' || e[1] == 0))
				break;
		if (!*e)
			return false;
		const char *ke = e;
		while (ke > t && ke[-1] == ' ')
			ke--;
		*key = json_stringn(t, (size_t)(ke - t));
		if (!*key)
			return false;
	}
	e++;
	while (*e == ' ')
		e++;
	*rest = e;
	return true;
}

static json_t *block_node(struct yp *y, int indent);

/* The value of a key or dash whose text was empty: the deeper block after
 * it, a sequence at the same indentation (for a key), or null. */
static json_t *nested(struct yp *y, int indent, bool key)
{
	y->i++;
	if (y->i < y->n && (y->l[y->i].indent > indent ||
			    (key && y->l[y->i].indent == indent && is_dash(y->l[y->i].text))))
		return block_node(y, y->l[y->i].indent);
	return json_null();
}

static json_t *block_sequence(struct yp *y, int indent)
{
	json_t *a = json_array();
	if (!a)
		return fail(y, y->l[y->i].no, "out of memory");
	while (y->i < y->n && y->l[y->i].indent == indent && is_dash(y->l[y->i].text)) {
		struct line *l = &y->l[y->i];
		const char *rest = l->text + 1;
		while (*rest == ' ')
			rest++;
		json_t *v;
		if (!*rest) {
			v = nested(y, indent, false);
		} else {
			/* "- key: v" and what follows at its column is one node. */
			l->indent += (int)(rest - l->text);
			l->text = (char *)rest;
			v = block_node(y, l->indent);
		}
		if (!v) {
			json_decref(a);
			return NULL;
		}
		json_array_append_new(a, v);
	}
	return a;
}

static json_t *block_mapping(struct yp *y, int indent)
{
	json_t *m = json_object();
	if (!m)
		return fail(y, y->l[y->i].no, "out of memory");
	while (y->i < y->n && y->l[y->i].indent == indent) {
		const struct line *l = &y->l[y->i];
		json_t *key, *v;
		const char *rest;
		if (!key_line(y, l, &key, &rest)) {
			json_decref(m);
			return fail(y, l->no, "expected 'key: value', not '%.40s'", l->text);
		}
		const char *k = json_string_value(key);
		if (json_object_get(m, k)) {
			fail(y, l->no, "key '%s' appears twice", k);
			json_decref(key);
			json_decref(m);
			return NULL;
		}
		if (!*rest) {
			v = nested(y, indent, true);
		} else {
			v = flow_text(y, rest, l->no);
			y->i++;
			if (v && y->i < y->n && y->l[y->i].indent > indent) {
				json_decref(v);
				v = fail(y, y->l[y->i].no, "unexpected indentation after a value");
			}
		}
		if (!v) {
			json_decref(key);
			json_decref(m);
			return NULL;
		}
		json_object_set_new(m, k, v);
		json_decref(key);
	}
	return m;
}

static json_t *block_node(struct yp *y, int indent)
{
	if (++y->depth > YAML_MAX_DEPTH)
		return fail(y, y->l[y->i].no, "nested deeper than %d", YAML_MAX_DEPTH);
	const struct line *l = &y->l[y->i];
	json_t *v, *key;
	const char *rest;
	if (is_dash(l->text)) {
		v = block_sequence(y, indent);
	} else if (key_line(y, l, &key, &rest)) {
		json_decref(key);
		v = block_mapping(y, indent);
	} else {
		v = flow_text(y, l->text, l->no);
		y->i++;
		if (v && y->i < y->n && y->l[y->i].indent > indent) {
			json_decref(v);
			v = fail(y, y->l[y->i].no, "unexpected indentation (a {...} or [...] on "
						   "several lines is read only as the whole text)");
		}
	}
	y->depth--;
	return v;
}

/* Cuts a comment (a '#' at the start or after a space, outside quotes)
 * and trailing spaces. */
static void cut_comment(char *s)
{
	char q = 0;
	for (char *p = s; *p; p++) {
		if (q) {
			if (*p == q && q == '"' && p[-1] == '\\')
				continue;
			if (*p == q)
				q = 0;
		} else if (*p == '"' || *p == '\'') {
			if (p == s || strchr(" ,[{:", p[-1]))
				q = *p;
		} else if (*p == '#' && (p == s || p[-1] == ' ' || p[-1] == '\t')) {
			*p = 0;
			break;
		}
	}
	size_t n = strlen(s);
	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
		s[--n] = 0;
}

/* The text's non-blank lines; *copy holds their bytes. */
static bool split_lines(struct yp *y, const char *text, char **copy)
{
	*copy = strdup(text);
	if (!*copy || !(y->l = calloc(strlen(text) / 2 + 2, sizeof(*y->l)))) {
		fail(y, 1, "out of memory");
		return false;
	}
	int no = 0;
	for (char *s = *copy; s;) {
		char *nl = strchr(s, '\n');
		if (nl)
			*nl = 0;
		no++;
		int ind = 0;
		while (s[ind] == ' ')
			ind++;
		if (s[ind] == '\t') {
			fail(y, no, "tabs cannot indent YAML; use spaces");
			return false;
		}
		cut_comment(s + ind);
		if (!strcmp(s, "---") || !strncmp(s, "--- ", 4) || !strcmp(s, "...")) {
			if (y->n || !strcmp(s, "...")) {
				fail(y, no, "several documents are not supported");
				return false;
			}
		} else if (s[ind]) {
			y->l[y->n++] = (struct line){ no, ind, s + ind };
		}
		s = nl ? nl + 1 : NULL;
	}
	return true;
}

json_t *yaml_parse(const char *text, char *err, size_t errlen)
{
	struct yp y = { .err = err, .errlen = errlen };
	char *copy = NULL;
	json_t *v = NULL;
	if (errlen)
		err[0] = 0;
	const char *t = text;
	while (*t == ' ' || *t == '\n' || *t == '\t' || *t == '\r')
		t++;
	if (*t == '{' || *t == '[') {
		/* A document in flow style may span lines. */
		int line = 1;
		for (const char *p = text; p < t; p++)
			line += *p == '\n';
		v = flow_text(&y, t, line);
	} else if (split_lines(&y, text, &copy)) {
		if (!y.n)
			v = json_null();
		else if ((v = block_node(&y, y.l[0].indent)) && y.i < y.n) {
			json_decref(v);
			v = fail(&y, y.l[y.i].no, "'%.40s' is outside the structure above it",
				 y.l[y.i].text);
		}
	}
	free(y.l);
	free(copy);
	return v;
}
