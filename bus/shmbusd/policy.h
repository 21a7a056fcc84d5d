/*
 * policy.h - who may publish and subscribe to what on a bus, from the
 * policy file given to `shmbusd --policy FILE`. Without a policy only the
 * bus's own user may use it; the bus's own user may always use it.
 *
 * The file: one rule per line, '#' starts a comment, the first rule that
 * matches a request decides, and a request no rule matches is refused.
 *
 *   allow|deny  WHO  ACTIONS  TOPICS
 *   limit       WHO  topics=N bytes=SIZE connections=N   (any of the three)
 *
 *   WHO      user:NAME, user:UID, group:NAME, group:GID, or * (anyone)
 *   ACTIONS  publish, subscribe, create, comma-separated, or * (all three);
 *            create is needed to make a topic that does not exist (by a
 *            publisher, or a subscriber with create_if_missing)
 *   TOPICS   a shell glob over topic names (fnmatch; a star also matches /;
 *            a leading '/' in the name or the glob is ignored)
 *   SIZE     bytes, with an optional K, M or G suffix
 *
 * e.g.   allow group:video  subscribe          camera/<anything>
 *        deny  *            *                  secrets/<anything>
 *        allow user:alice   publish,create     sandbox/<anything>
 *        limit user:alice   topics=16 bytes=64M
 *
 * The first `limit` line that matches a user applies to it; a user other
 * than the bus's own without one gets POLICY_DEFAULT_*. The bus's own user
 * has no limits and may do anything.
 */
#ifndef SHMBUSD_POLICY_H
#define SHMBUSD_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define POLICY_PUBLISH 1u
#define POLICY_SUBSCRIBE 2u
#define POLICY_CREATE 4u
#define POLICY_ALL (POLICY_PUBLISH | POLICY_SUBSCRIBE | POLICY_CREATE)

#define POLICY_DEFAULT_TOPICS 64u
#define POLICY_DEFAULT_BYTES (256ull << 20)
#define POLICY_DEFAULT_CONNECTIONS 64u

struct policy_rule {
	bool allow;
	enum { WHO_ANY, WHO_USER, WHO_GROUP } who;
	unsigned id;       /* uid or gid */
	unsigned actions;  /* POLICY_* bits */
	char *pattern;
	int line;
};

struct policy_limits {
	uint64_t topics;      /* topics the user created that exist */
	uint64_t bytes;       /* their shared memory */
	uint64_t connections; /* open connections to the broker */
};

struct policy_limit {
	enum { LWHO_ANY, LWHO_USER, LWHO_GROUP } who;
	unsigned id;
	struct policy_limits l;
	int line;
};

struct policy {
	struct policy_rule *rules;
	size_t n;
	struct policy_limit *limits;
	size_t n_limits;
	uid_t owner;
};

/* Parse a policy file. 0, or -1 with "FILE:LINE:COL: reason" in err. */
int policy_load(struct policy *p, const char *path, uid_t owner, char *err, size_t errlen);

/* Parse policy text (for tests and the fuzzer); name is used in errors. */
int policy_parse(struct policy *p, const char *name, const char *text, uid_t owner, char *err,
		 size_t errlen);

void policy_free(struct policy *p);

/* May this client do `action` on `topic`? Fills why on refusal. */
bool policy_allows(const struct policy *p, uid_t uid, gid_t gid, unsigned action,
		   const char *topic, char *why, size_t whylen);

/* The limits that apply to a user (UINT64_MAX: none). */
void policy_limits_for(const struct policy *p, uid_t uid, gid_t gid, struct policy_limits *out);

/* May this client talk to the broker at all (some rule could allow it)? */
bool policy_admits(const struct policy *p, uid_t uid, gid_t gid);

/* Whether any rule allows someone other than the owner (then the socket
 * must be reachable by others). */
bool policy_opens_to_others(const struct policy *p);

#endif
