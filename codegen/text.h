/*
 * text.h - a growable text buffer for the generator: the plugin builds each
 * output file in one, then hands it to protoc.
 */
#ifndef SHMBUS_CODEGEN_TEXT_H
#define SHMBUS_CODEGEN_TEXT_H

#include <stdbool.h>
#include <stddef.h>

struct text {
	char *buf;
	size_t len;
	size_t cap;
	bool failed; /* an allocation failed: the content is incomplete */
};

void text_init(struct text *t);
void text_free(struct text *t);
/* Append printf-style. Failures are remembered in t->failed. */
void text_printf(struct text *t, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void text_append(struct text *t, const char *s, size_t n);
/* Append tpl with every $key$ replaced by its value; vars holds key, value
 * pairs and ends with NULL. "$$" is a literal '$'. An unknown key is an
 * error (t->failed), so a template typo cannot produce a bad file. */
void text_template(struct text *t, const char *tpl, const char *const *vars);
/* Hand the buffer over (NUL-terminated); t is left empty. NULL if any
 * append failed. */
char *text_take(struct text *t);

#endif
