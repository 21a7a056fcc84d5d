/*
 * policy.c - owns the policy file: a tokenizer and a line grammar with
 * errors that name file, line and column, and the access decisions.
 */
#include "policy.h"

#include <ctype.h>
#include <errno.h>
#include <fnmatch.h>
#include <grp.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_GROUPS 256

struct lexer {
	const char *name;
	const char *p;
	int line;
	const char *line_start;
	char *err;
	size_t errlen;
};

static int fail(struct lexer *lx, const char *at, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(struct lexer *lx, const char *at, const char *fmt, ...)
{
	va_list ap;
	int col = (int)(at - lx->line_start) + 1;
	int n = snprintf(lx->err, lx->errlen, "%s:%d:%d: ", lx->name, lx->line, col);
	if (n > 0 && (size_t)n < lx->errlen) {
		va_start(ap, fmt);
		vsnprintf(lx->err + n, lx->errlen - (size_t)n, fmt, ap);
		va_end(ap);
	}
	return -1;
}

/* The next whitespace-separated token of the current line, or NULL at the
 * end of the line (a comment ends it too). */
static const char *token(struct lexer *lx, size_t *len)
{
	while (*lx->p == ' ' || *lx->p == '\t' || *lx->p == '\r')
		lx->p++;
	if (*lx->p == '\0' || *lx->p == '\n' || *lx->p == '#')
		return NULL;
	const char *start = lx->p;
	while (*lx->p && !isspace((unsigned char)*lx->p) && *lx->p != '#')
		lx->p++;
	*len = (size_t)(lx->p - start);
	return start;
}

static bool tok_is(const char *t, size_t n, const char *word)
{
	return strlen(word) == n && memcmp(t, word, n) == 0;
}

static int parse_id(struct lexer *lx, const char *t, size_t n, bool user, unsigned *id)
{
	char buf[256];
	if (n == 0 || n >= sizeof(buf))
		return fail(lx, t, "empty or too long %s name", user ? "user" : "group");
	memcpy(buf, t, n);
	buf[n] = '\0';
	char *end;
	errno = 0;
	unsigned long v = strtoul(buf, &end, 10);
	if (*end == '\0' && errno == 0 && isdigit((unsigned char)buf[0])) {
		*id = (unsigned)v;
		return 0;
	}
	if (user) {
		struct passwd *pw = getpwnam(buf);
		if (!pw)
			return fail(lx, t, "no user '%s' on this host", buf);
		*id = (unsigned)pw->pw_uid;
	} else {
		struct group *gr = getgrnam(buf);
		if (!gr)
			return fail(lx, t, "no group '%s' on this host", buf);
		*id = (unsigned)gr->gr_gid;
	}
	return 0;
}

/* WHO: 0 = anyone, 1 = user, 2 = group. */
static int parse_who(struct lexer *lx, int *who, unsigned *id)
{
	size_t n;
	const char *t = token(lx, &n);
	if (!t)
		return fail(lx, lx->p, "missing WHO (user:NAME, group:NAME or *)");
	if (tok_is(t, n, "*")) {
		*who = 0;
	} else if (n > 5 && memcmp(t, "user:", 5) == 0) {
		*who = 1;
		if (parse_id(lx, t + 5, n - 5, true, id))
			return -1;
	} else if (n > 6 && memcmp(t, "group:", 6) == 0) {
		*who = 2;
		if (parse_id(lx, t + 6, n - 6, false, id))
			return -1;
	} else {
		return fail(lx, t, "expected user:NAME, group:NAME or *");
	}
	return 0;
}

/* A number with an optional K, M or G suffix (sizes). */
static int parse_amount(struct lexer *lx, const char *t, size_t n, bool size, uint64_t *v)
{
	uint64_t x = 0, mul = 1;
	size_t i = 0;
	if (n == 0)
		return fail(lx, t, "missing number");
	for (; i < n && t[i] >= '0' && t[i] <= '9'; i++) {
		if (x > UINT64_MAX / 10 - 9)
			return fail(lx, t, "number too large");
		x = x * 10 + (uint64_t)(t[i] - '0');
	}
	if (i == 0)
		return fail(lx, t, "expected a number");
	if (size && i + 1 == n && (t[i] == 'K' || t[i] == 'M' || t[i] == 'G')) {
		mul = t[i] == 'K' ? 1ull << 10 : t[i] == 'M' ? 1ull << 20 : 1ull << 30;
		i++;
	}
	if (i != n)
		return fail(lx, t + i, "unexpected '%.*s' after the number", (int)(n - i), t + i);
	if (x > UINT64_MAX / mul)
		return fail(lx, t, "number too large");
	*v = x * mul;
	return 0;
}

static int parse_limit(struct lexer *lx, struct policy_limit *l)
{
	size_t n;
	int who;
	memset(l, 0, sizeof(*l));
	l->line = lx->line;
	l->l = (struct policy_limits){ POLICY_DEFAULT_TOPICS, POLICY_DEFAULT_BYTES,
				       POLICY_DEFAULT_CONNECTIONS };
	if (parse_who(lx, &who, &l->id))
		return -1;
	l->who = who == 0 ? LWHO_ANY : who == 1 ? LWHO_USER : LWHO_GROUP;
	const char *t = token(lx, &n);
	if (!t)
		return fail(lx, lx->p, "missing topics=N, bytes=SIZE or connections=N");
	for (; t; t = token(lx, &n)) {
		const char *eq = memchr(t, '=', n);
		if (!eq)
			return fail(lx, t, "expected topics=N, bytes=SIZE or connections=N");
		size_t k = (size_t)(eq - t), vn = n - k - 1;
		uint64_t *dst = tok_is(t, k, "topics")	    ? &l->l.topics
				: tok_is(t, k, "bytes")	    ? &l->l.bytes
				: tok_is(t, k, "connections") ? &l->l.connections
							      : NULL;
		if (!dst)
			return fail(lx, t, "unknown limit '%.*s' (expected topics, bytes or "
					   "connections)",
				    (int)k, t);
		if (parse_amount(lx, eq + 1, vn, dst == &l->l.bytes, dst))
			return -1;
	}
	return 0;
}

static int parse_rule(struct lexer *lx, struct policy_rule *r)
{
	size_t n;
	int who;
	const char *t = token(lx, &n);
	memset(r, 0, sizeof(*r));
	r->line = lx->line;
	if (tok_is(t, n, "allow"))
		r->allow = true;
	else if (!tok_is(t, n, "deny"))
		return fail(lx, t, "expected 'allow', 'deny' or 'limit'");

	if (parse_who(lx, &who, &r->id))
		return -1;
	r->who = who == 0 ? WHO_ANY : who == 1 ? WHO_USER : WHO_GROUP;

	t = token(lx, &n);
	if (!t)
		return fail(lx, lx->p, "missing ACTIONS (publish, subscribe, create or *)");
	if (tok_is(t, n, "*")) {
		r->actions = POLICY_ALL;
	} else {
		const char *a = t, *end = t + n;
		while (a < end) {
			const char *comma = memchr(a, ',', (size_t)(end - a));
			size_t k = comma ? (size_t)(comma - a) : (size_t)(end - a);
			if (tok_is(a, k, "publish"))
				r->actions |= POLICY_PUBLISH;
			else if (tok_is(a, k, "subscribe"))
				r->actions |= POLICY_SUBSCRIBE;
			else if (tok_is(a, k, "create"))
				r->actions |= POLICY_CREATE;
			else
				return fail(lx, a, "unknown action '%.*s' (expected publish, subscribe, "
						   "create or *)",
					    (int)k, a);
			a += k + (comma ? 1 : 0);
		}
	}

	t = token(lx, &n);
	if (!t)
		return fail(lx, lx->p, "missing TOPICS (a glob such as camera/* or *)");
	if (t[0] == '/' && n > 1) { /* names and globs compare without it */
		t++;
		n--;
	}
	r->pattern = strndup(t, n);
	if (!r->pattern)
		return fail(lx, t, "out of memory");
	const char *extra = token(lx, &n);
	if (extra) {
		free(r->pattern);
		r->pattern = NULL;
		return fail(lx, extra, "unexpected text after the topic pattern");
	}
	return 0;
}

int policy_parse(struct policy *p, const char *name, const char *text, uid_t owner, char *err,
		 size_t errlen)
{
	struct lexer lx = { name, text, 1, text, err, errlen };
	memset(p, 0, sizeof(*p));
	p->owner = owner;
	size_t cap = 0;
	for (;;) {
		size_t n;
		const char *t = token(&lx, &n);
		if (t && tok_is(t, n, "limit")) {
			struct policy_limit l;
			if (parse_limit(&lx, &l)) {
				policy_free(p);
				return -1;
			}
			struct policy_limit *v = realloc(p->limits, (p->n_limits + 1) * sizeof(*v));
			if (!v) {
				policy_free(p);
				return fail(&lx, t, "out of memory");
			}
			p->limits = v;
			p->limits[p->n_limits++] = l;
		} else if (t) {
			lx.p = t; /* parse_rule reads it again */
			if (p->n == cap) {
				cap = cap ? cap * 2 : 8;
				struct policy_rule *v = realloc(p->rules, cap * sizeof(*v));
				if (!v) {
					policy_free(p);
					return fail(&lx, t, "out of memory");
				}
				p->rules = v;
			}
			if (parse_rule(&lx, &p->rules[p->n])) {
				policy_free(p);
				return -1;
			}
			p->n++;
		}
		/* Skip to the next line (past a comment, if any). */
		while (*lx.p && *lx.p != '\n')
			lx.p++;
		if (!*lx.p)
			return 0;
		lx.p++;
		lx.line++;
		lx.line_start = lx.p;
	}
}

int policy_load(struct policy *p, const char *path, uid_t owner, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	char *text = NULL;
	size_t len = 0, cap = 0;
	char buf[4096];
	size_t k;
	while ((k = fread(buf, 1, sizeof(buf), f)) > 0) {
		if (len + k + 1 > cap) {
			cap = (len + k + 1) * 2;
			char *v = realloc(text, cap);
			if (!v) {
				free(text);
				fclose(f);
				snprintf(err, errlen, "%s: out of memory", path);
				return -1;
			}
			text = v;
		}
		memcpy(text + len, buf, k);
		len += k;
	}
	fclose(f);
	if (!text) {
		text = strdup("");
		if (!text)
			return -1;
	}
	text[len] = '\0';
	if (strlen(text) != len) {
		free(text);
		snprintf(err, errlen, "%s: holds a NUL byte", path);
		return -1;
	}
	int rc = policy_parse(p, path, text, owner, err, errlen);
	free(text);
	return rc;
}

void policy_free(struct policy *p)
{
	for (size_t i = 0; i < p->n; i++)
		free(p->rules[i].pattern);
	free(p->rules);
	free(p->limits);
	p->rules = NULL;
	p->limits = NULL;
	p->n = p->n_limits = 0;
}

static bool in_group(uid_t uid, gid_t gid, unsigned want)
{
	if (gid == want)
		return true;
	struct passwd *pw = getpwuid(uid);
	if (!pw)
		return false;
	gid_t groups[MAX_GROUPS];
	int n = MAX_GROUPS;
	if (getgrouplist(pw->pw_name, gid, groups, &n) < 0)
		n = MAX_GROUPS;
	for (int i = 0; i < n; i++)
		if (groups[i] == want)
			return true;
	return false;
}

static bool who_matches(const struct policy_rule *r, uid_t uid, gid_t gid)
{
	switch (r->who) {
	case WHO_ANY:
		return true;
	case WHO_USER:
		return uid == r->id;
	case WHO_GROUP:
		return in_group(uid, gid, r->id);
	}
	return false;
}

bool policy_allows(const struct policy *p, uid_t uid, gid_t gid, unsigned action,
		   const char *topic, char *why, size_t whylen)
{
	if (uid == p->owner)
		return true;
	for (size_t i = 0; i < p->n; i++) {
		const struct policy_rule *r = &p->rules[i];
		if (!(r->actions & action) || !who_matches(r, uid, gid) ||
		    fnmatch(r->pattern, topic[0] == '/' ? topic + 1 : topic, 0) != 0)
			continue;
		if (!r->allow)
			snprintf(why, whylen, "denied by policy rule on line %d", r->line);
		return r->allow;
	}
	snprintf(why, whylen, "no policy rule allows it");
	return false;
}

void policy_limits_for(const struct policy *p, uid_t uid, gid_t gid, struct policy_limits *out)
{
	if (uid == p->owner) {
		*out = (struct policy_limits){ UINT64_MAX, UINT64_MAX, UINT64_MAX };
		return;
	}
	for (size_t i = 0; i < p->n_limits; i++) {
		const struct policy_limit *l = &p->limits[i];
		struct policy_rule who = { .who = l->who == LWHO_ANY    ? WHO_ANY
						  : l->who == LWHO_USER ? WHO_USER
									: WHO_GROUP,
					   .id = l->id };
		if (who_matches(&who, uid, gid)) {
			*out = l->l;
			return;
		}
	}
	*out = (struct policy_limits){ POLICY_DEFAULT_TOPICS, POLICY_DEFAULT_BYTES,
				       POLICY_DEFAULT_CONNECTIONS };
}

bool policy_admits(const struct policy *p, uid_t uid, gid_t gid)
{
	if (uid == p->owner)
		return true;
	for (size_t i = 0; i < p->n; i++)
		if (p->rules[i].allow && who_matches(&p->rules[i], uid, gid))
			return true;
	return false;
}

bool policy_opens_to_others(const struct policy *p)
{
	for (size_t i = 0; i < p->n; i++)
		if (p->rules[i].allow && !(p->rules[i].who == WHO_USER && p->rules[i].id == p->owner))
			return true;
	return false;
}
