/*
 * text.c - the generator's growable text buffer. Out-of-memory is sticky:
 * once an append fails the buffer refuses to hand out its content, so the
 * plugin reports an error instead of writing a truncated file.
 */
#include "text.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void text_init(struct text *t)
{
	t->buf = NULL;
	t->len = 0;
	t->cap = 0;
	t->failed = false;
}

void text_free(struct text *t)
{
	free(t->buf);
	text_init(t);
}

static bool reserve(struct text *t, size_t extra)
{
	size_t want, cap;
	char *p;

	if (t->failed)
		return false;
	if (extra > (size_t)-1 / 2 - t->len) {
		t->failed = true;
		return false;
	}
	want = t->len + extra + 1;
	if (want <= t->cap)
		return true;
	cap = t->cap ? t->cap : 256;
	while (cap < want)
		cap *= 2;
	p = realloc(t->buf, cap);
	if (!p) {
		t->failed = true;
		return false;
	}
	t->buf = p;
	t->cap = cap;
	return true;
}

void text_append(struct text *t, const char *s, size_t n)
{
	if (!reserve(t, n))
		return;
	memcpy(t->buf + t->len, s, n);
	t->len += n;
	t->buf[t->len] = '\0';
}

void text_printf(struct text *t, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0) {
		t->failed = true;
		return;
	}
	if (!reserve(t, (size_t)n))
		return;
	va_start(ap, fmt);
	vsnprintf(t->buf + t->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	t->len += (size_t)n;
}

char *text_take(struct text *t)
{
	char *s;

	if (t->failed) {
		text_free(t);
		return NULL;
	}
	if (!reserve(t, 0)) {
		text_free(t);
		return NULL;
	}
	t->buf[t->len] = '\0';
	s = t->buf;
	text_init(t);
	return s;
}

static const char *lookup(const char *const *vars, const char *key, size_t n)
{
	for (size_t i = 0; vars[i]; i += 2) {
		if (strlen(vars[i]) == n && memcmp(vars[i], key, n) == 0)
			return vars[i + 1];
	}
	return NULL;
}

void text_template(struct text *t, const char *tpl, const char *const *vars)
{
	const char *p = tpl;

	while (*p) {
		const char *d = strchr(p, '$');
		const char *end, *val;

		if (!d) {
			text_append(t, p, strlen(p));
			return;
		}
		text_append(t, p, (size_t)(d - p));
		end = strchr(d + 1, '$');
		if (!end) {
			t->failed = true;
			return;
		}
		if (end == d + 1) {
			text_append(t, "$", 1);
		} else {
			val = lookup(vars, d + 1, (size_t)(end - d - 1));
			if (!val) {
				t->failed = true;
				return;
			}
			text_append(t, val, strlen(val));
		}
		p = end + 1;
	}
}
