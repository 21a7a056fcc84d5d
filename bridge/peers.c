/*
 * peers.c - what bridges learn about each other from DDS discovery, through
 * the user data of their readers and writers, so that no handshake topic
 * is needed:
 *
 *   announce reader  "shmbus-bridge in ID" + "\nPATTERN" per --in pattern
 *   data reader      "shmbus-bridge in ID"
 *   data writer      "shmbus-bridge out ID" + "\nID" per bridge it waited for
 *
 * (ID: 16 hex digits.) A sending bridge reads the first from the readers
 * its announce writer matched, to know which bridges will take a new topic;
 * it holds the topic's messages on its bus until the data readers of those
 * bridges (the second) have matched its writer; and it names them in the
 * writer's own user data (the third), so that a receiving bridge knows
 * whether it was waited for (then every message from the first one on was
 * meant for it, and a hole at the start is a loss) or joined late.
 */
#include "bridge.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PEER_TAG_IN "shmbus-bridge in "
#define PEER_TAG_OUT "shmbus-bridge out "
#define PEER_MAX_ENDPOINTS 256 /* matched endpoints looked at per call */

static void set_userdata(dds_qos_t *q, const char *head, uint64_t id, const char *const *lines,
			 const uint64_t *ids, size_t n)
{
	size_t cap = strlen(head) + 17;
	for (size_t i = 0; i < n; i++)
		cap += 1 + (lines ? strlen(lines[i]) : 16);
	char *s = malloc(cap + 1);
	if (!s)
		return; /* no identity: peers treat us as a plain DDS endpoint */
	size_t o = (size_t)snprintf(s, cap + 1, "%s%016" PRIx64, head, id);
	for (size_t i = 0; i < n; i++) {
		if (lines)
			o += (size_t)snprintf(s + o, cap + 1 - o, "\n%s", lines[i]);
		else
			o += (size_t)snprintf(s + o, cap + 1 - o, "\n%016" PRIx64, ids[i]);
	}
	dds_qset_userdata(q, s, o);
	free(s);
}

void bridge_peer_qos_in(dds_qos_t *q, const struct bridge *b, bool with_patterns)
{
	set_userdata(q, PEER_TAG_IN, b->id, b->in_patterns, NULL, with_patterns ? b->n_in : 0);
}

void bridge_peer_qos_out(dds_qos_t *q, const struct bridge *b, const uint64_t *waited, size_t n)
{
	set_userdata(q, PEER_TAG_OUT, b->id, NULL, waited, n);
}

static bool parse_id(const char *s, size_t n, uint64_t *id)
{
	if (n != 16)
		return false;
	uint64_t v = 0;
	for (size_t i = 0; i < 16; i++) {
		char c = s[i];
		int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
		if (d < 0)
			return false;
		v = v << 4 | (uint64_t)d;
	}
	*id = v;
	return true;
}

/* An endpoint's identity: its bridge id, and the rest of its user data
 * (the lines after the first) as a NUL-terminated copy to free. NULL when
 * the endpoint is not a bridge's of that role. */
static char *peer_of(const dds_builtintopic_endpoint_t *ep, const char *tag, uint64_t *id)
{
	void *ud = NULL;
	size_t n = 0;
	if (!ep || !ep->qos || !dds_qget_userdata(ep->qos, &ud, &n) || !ud)
		return NULL;
	const char *u = ud;
	char *s = NULL;
	size_t tl = strlen(tag), head = tl + 16;
	if (n >= head && memcmp(u, tag, tl) == 0 && parse_id(u + tl, 16, id) &&
	    (n == head || u[head] == '\n')) {
		size_t from = n == head ? head : head + 1, rest = n - from;
		/* Embedded NULs: not a bridge's. */
		if (!memchr(u + from, '\0', rest) && (s = malloc(rest + 1))) {
			memcpy(s, u + from, rest);
			s[rest] = '\0';
		}
	}
	dds_free(ud);
	return s;
}

/* Whether a pattern on one of the lines of `lines` takes `topic`. */
static bool lines_match(char *lines, const char *topic)
{
	const char *pat[BRIDGE_MAX_PATTERNS];
	size_t n = 0;
	for (char *p = lines; *p && n < BRIDGE_MAX_PATTERNS;) {
		char *nl = strchr(p, '\n');
		if (nl)
			*nl = '\0';
		pat[n++] = p;
		if (!nl)
			break;
		p = nl + 1;
	}
	return bridge_match(pat, n, topic);
}

static void add_id(uint64_t *ids, size_t cap, size_t *n, uint64_t id)
{
	for (size_t i = 0; i < *n; i++)
		if (ids[i] == id)
			return;
	if (*n < cap)
		ids[(*n)++] = id;
}

size_t bridge_peers_taking(const struct bridge *b, dds_entity_t announce_writer, const char *topic,
			   uint64_t *ids, size_t cap)
{
	dds_instance_handle_t h[PEER_MAX_ENDPOINTS];
	dds_return_t m = dds_get_matched_subscriptions(announce_writer, h, PEER_MAX_ENDPOINTS);
	size_t n = 0;
	for (dds_return_t i = 0; i < m && i < PEER_MAX_ENDPOINTS; i++) {
		dds_builtintopic_endpoint_t *ep = dds_get_matched_subscription_data(announce_writer, h[i]);
		uint64_t id;
		char *lines = peer_of(ep, PEER_TAG_IN, &id);
		if (lines && id != b->id && (!topic || lines_match(lines, topic)))
			add_id(ids, cap, &n, id);
		free(lines);
		if (ep)
			dds_builtintopic_free_endpoint(ep);
	}
	return n;
}

bool bridge_peers_matched(dds_entity_t writer, const uint64_t *ids, size_t n)
{
	uint64_t have[BRIDGE_MAX_PEERS];
	size_t n_have = 0;
	dds_instance_handle_t h[PEER_MAX_ENDPOINTS];
	dds_return_t m = dds_get_matched_subscriptions(writer, h, PEER_MAX_ENDPOINTS);
	for (dds_return_t i = 0; i < m && i < PEER_MAX_ENDPOINTS; i++) {
		dds_builtintopic_endpoint_t *ep = dds_get_matched_subscription_data(writer, h[i]);
		uint64_t id;
		char *rest = peer_of(ep, PEER_TAG_IN, &id);
		if (rest)
			add_id(have, BRIDGE_MAX_PEERS, &n_have, id);
		free(rest);
		if (ep)
			dds_builtintopic_free_endpoint(ep);
	}
	for (size_t i = 0; i < n; i++) {
		bool found = false;
		for (size_t j = 0; j < n_have && !found; j++)
			found = have[j] == ids[i];
		if (!found)
			return false;
	}
	return true;
}

bool bridge_peer_waited_for(const struct bridge *b, dds_entity_t reader, dds_instance_handle_t writer)
{
	dds_builtintopic_endpoint_t *ep = dds_get_matched_publication_data(reader, writer);
	uint64_t id;
	char *lines = peer_of(ep, PEER_TAG_OUT, &id);
	bool found = false;
	for (char *p = lines; p && *p && !found;) {
		char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);
		uint64_t w;
		found = parse_id(p, len, &w) && w == b->id;
		p = nl ? nl + 1 : p + len;
	}
	free(lines);
	if (ep)
		dds_builtintopic_free_endpoint(ep);
	return found;
}

bool bridge_peer_matched(dds_entity_t reader, dds_instance_handle_t writer)
{
	dds_builtintopic_endpoint_t *ep = dds_get_matched_publication_data(reader, writer);
	if (!ep)
		return false;
	dds_builtintopic_free_endpoint(ep);
	return true;
}
