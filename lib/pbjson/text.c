/*
 * text.c - the texts of the JSON mapping that are not JSON's own: base64,
 * RFC 3339 timestamps, "1.5s" durations, shortest float texts, and a
 * one-line serializer that prints numbers the short way.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *pj_base64(const uint8_t *p, size_t n)
{
	char *s = malloc((n + 2) / 3 * 4 + 1), *o = s;
	if (!s)
		return NULL;
	size_t i = 0;
	for (; i + 3 <= n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		*o++ = b64[v >> 18];
		*o++ = b64[(v >> 12) & 63];
		*o++ = b64[(v >> 6) & 63];
		*o++ = b64[v & 63];
	}
	if (n - i == 1) {
		uint32_t v = (uint32_t)p[i] << 16;
		*o++ = b64[v >> 18];
		*o++ = b64[(v >> 12) & 63];
		*o++ = '=';
		*o++ = '=';
	} else if (n - i == 2) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
		*o++ = b64[v >> 18];
		*o++ = b64[(v >> 12) & 63];
		*o++ = b64[(v >> 6) & 63];
		*o++ = '=';
	}
	*o = '\0';
	return s;
}

char *pbjson_base64(const void *p, size_t n)
{
	return pj_base64(p, n);
}

static int b64_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+' || c == '-')
		return 62;
	if (c == '/' || c == '_')
		return 63;
	return -1;
}

/* Standard or URL-safe alphabet, padding optional (the JSON mapping
 * accepts both). */
bool pj_unbase64(const char *s, size_t len, uint8_t **out, size_t *n)
{
	while (len && s[len - 1] == '=')
		len--;
	if (len % 4 == 1)
		return false;
	uint8_t *buf = malloc(len / 4 * 3 + 3), *o = buf;
	if (!buf)
		return false;
	uint32_t acc = 0;
	int bits = 0;
	for (size_t i = 0; i < len; i++) {
		int v = b64_value(s[i]);
		if (v < 0) {
			free(buf);
			return false;
		}
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			*o++ = (uint8_t)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	*out = buf;
	*n = (size_t)(o - buf);
	return true;
}

/* 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59Z, as the mapping allows. */
#define TS_MIN (-62135596800LL)
#define TS_MAX 253402300799LL

static int frac_digits(int32_t nanos, char *buf, size_t len)
{
	if (nanos == 0)
		return snprintf(buf, len, "%s", "");
	if (nanos % 1000000 == 0)
		return snprintf(buf, len, ".%03d", nanos / 1000000);
	if (nanos % 1000 == 0)
		return snprintf(buf, len, ".%06d", nanos / 1000);
	return snprintf(buf, len, ".%09d", nanos);
}

bool pj_format_timestamp(int64_t sec, int32_t nanos, char *buf, size_t len)
{
	if (sec < TS_MIN || sec > TS_MAX || nanos < 0 || nanos > 999999999)
		return false;
	time_t t = (time_t)sec;
	struct tm tm;
	if (!gmtime_r(&t, &tm))
		return false;
	char frac[16];
	frac_digits(nanos, frac, sizeof(frac));
	int n = snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d%sZ", tm.tm_year + 1900,
			 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
	return n > 0 && (size_t)n < len;
}

static bool digits(const char **s, int n, int *v)
{
	*v = 0;
	for (int i = 0; i < n; i++) {
		char c = (*s)[i];
		if (c < '0' || c > '9')
			return false;
		*v = *v * 10 + (c - '0');
	}
	*s += n;
	return true;
}

/* Up to 9 fraction digits after a '.', as nanoseconds. */
static bool parse_frac(const char **s, int32_t *nanos)
{
	*nanos = 0;
	if (**s != '.')
		return true;
	(*s)++;
	int n = 0;
	int32_t v = 0;
	while (**s >= '0' && **s <= '9') {
		if (++n > 9)
			return false;
		v = v * 10 + (**s - '0');
		(*s)++;
	}
	if (n == 0)
		return false;
	for (; n < 9; n++)
		v *= 10;
	*nanos = v;
	return true;
}

bool pj_parse_timestamp(const char *s, int64_t *sec, int32_t *nanos)
{
	int y, mo, d, h, mi, se;
	if (!digits(&s, 4, &y) || *s++ != '-' || !digits(&s, 2, &mo) || *s++ != '-' ||
	    !digits(&s, 2, &d) || (*s != 'T' && *s != 't'))
		return false;
	s++;
	if (!digits(&s, 2, &h) || *s++ != ':' || !digits(&s, 2, &mi) || *s++ != ':' ||
	    !digits(&s, 2, &se) || !parse_frac(&s, nanos))
		return false;
	int off = 0;
	if (*s == 'Z' || *s == 'z') {
		s++;
	} else if (*s == '+' || *s == '-') {
		int sign = *s++ == '-' ? -1 : 1, oh, om;
		if (!digits(&s, 2, &oh) || *s++ != ':' || !digits(&s, 2, &om) || oh > 23 || om > 59)
			return false;
		off = sign * (oh * 3600 + om * 60);
	} else {
		return false;
	}
	if (*s || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 59)
		return false;
	struct tm tm = { .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d,
			 .tm_hour = h, .tm_min = mi, .tm_sec = se };
	time_t t = timegm(&tm);
	struct tm back;
	/* timegm normalises 31 February into March: refuse such dates. */
	if (!gmtime_r(&t, &back) || back.tm_mday != d || back.tm_mon != mo - 1)
		return false;
	*sec = (int64_t)t - off;
	return *sec >= TS_MIN && *sec <= TS_MAX;
}

#define DUR_MAX 315576000000LL /* 10000 years, the mapping's limit */

bool pj_format_duration(int64_t sec, int32_t nanos, char *buf, size_t len)
{
	if (sec < -DUR_MAX || sec > DUR_MAX || nanos < -999999999 || nanos > 999999999 ||
	    (sec > 0 && nanos < 0) || (sec < 0 && nanos > 0))
		return false;
	bool neg = sec < 0 || nanos < 0;
	char frac[16];
	frac_digits(nanos < 0 ? -nanos : nanos, frac, sizeof(frac));
	int n = snprintf(buf, len, "%s%" PRId64 "%ss", neg ? "-" : "", sec < 0 ? -sec : sec, frac);
	return n > 0 && (size_t)n < len;
}

bool pj_parse_duration(const char *s, int64_t *sec, int32_t *nanos)
{
	bool neg = *s == '-';
	if (neg)
		s++;
	if (*s < '0' || *s > '9')
		return false;
	int64_t v = 0;
	while (*s >= '0' && *s <= '9') {
		v = v * 10 + (*s++ - '0');
		if (v > DUR_MAX)
			return false;
	}
	if (!parse_frac(&s, nanos) || *s++ != 's' || *s)
		return false;
	*sec = neg ? -v : v;
	if (neg)
		*nanos = -*nanos;
	return true;
}

double pj_float_to_double(float f)
{
	if (!isfinite(f))
		return (double)f;
	char buf[32];
	for (int p = 6; p <= 9; p++) {
		snprintf(buf, sizeof(buf), "%.*g", p, (double)f);
		if (strtof(buf, NULL) == f)
			return strtod(buf, NULL);
	}
	return (double)f;
}

/* ---------------------------------------------------------- serializer */

struct out {
	char *p;
	size_t n, cap;
	bool fail;
};

static void put(struct out *o, const char *s, size_t n)
{
	if (o->fail)
		return;
	if (o->n + n + 1 > o->cap) {
		size_t cap = o->cap ? o->cap : 256;
		while (o->n + n + 1 > cap)
			cap *= 2;
		char *p = realloc(o->p, cap);
		if (!p) {
			o->fail = true;
			return;
		}
		o->p = p;
		o->cap = cap;
	}
	memcpy(o->p + o->n, s, n);
	o->n += n;
	o->p[o->n] = '\0';
}

static void puts_(struct out *o, const char *s)
{
	put(o, s, strlen(s));
}

static void put_string(struct out *o, const char *s, size_t n)
{
	put(o, "\"", 1);
	size_t run = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x20 && c != '"' && c != '\\') {
			run++;
			continue;
		}
		put(o, s + i - run, run);
		run = 0;
		char esc[8];
		switch (c) {
		case '"': puts_(o, "\\\""); break;
		case '\\': puts_(o, "\\\\"); break;
		case '\n': puts_(o, "\\n"); break;
		case '\r': puts_(o, "\\r"); break;
		case '\t': puts_(o, "\\t"); break;
		default:
			snprintf(esc, sizeof(esc), "\\u%04x", c);
			puts_(o, esc);
		}
	}
	put(o, s + n - run, run);
	put(o, "\"", 1);
}

static void put_real(struct out *o, double d)
{
	char buf[40];
	if (!isfinite(d)) { /* not valid JSON; jansson never holds these */
		puts_(o, "null");
		return;
	}
	for (int p = 1; p <= 17; p++) {
		snprintf(buf, sizeof(buf), "%.*g", p, d);
		if (strtod(buf, NULL) == d)
			break;
	}
	/* Keep it a real for readers that care ("1" would read back as an
	 * integer). */
	if (!strpbrk(buf, ".eEn"))
		strcat(buf, ".0");
	puts_(o, buf);
}

static void dump(struct out *o, const json_t *j)
{
	char buf[32];
	switch (json_typeof(j)) {
	case JSON_OBJECT: {
		put(o, "{", 1);
		bool first = true;
		const char *k;
		json_t *v;
		json_object_foreach((json_t *)j, k, v) {
			if (!first)
				put(o, ",", 1);
			first = false;
			put_string(o, k, strlen(k));
			put(o, ":", 1);
			dump(o, v);
		}
		put(o, "}", 1);
		break;
	}
	case JSON_ARRAY:
		put(o, "[", 1);
		for (size_t i = 0; i < json_array_size(j); i++) {
			if (i)
				put(o, ",", 1);
			dump(o, json_array_get(j, i));
		}
		put(o, "]", 1);
		break;
	case JSON_STRING:
		put_string(o, json_string_value(j), json_string_length(j));
		break;
	case JSON_INTEGER:
		snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT, json_integer_value(j));
		puts_(o, buf);
		break;
	case JSON_REAL:
		put_real(o, json_real_value(j));
		break;
	case JSON_TRUE:
		puts_(o, "true");
		break;
	case JSON_FALSE:
		puts_(o, "false");
		break;
	case JSON_NULL:
		puts_(o, "null");
		break;
	}
}

char *pbjson_dumps(const json_t *j)
{
	struct out o = { 0 };
	if (!j)
		return NULL;
	dump(&o, j);
	put(&o, "", 0);
	if (o.fail) {
		free(o.p);
		return NULL;
	}
	return o.p;
}
