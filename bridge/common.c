/*
 * common.c - the small pure pieces of the bridge: topic patterns, DDS
 * names, the protobuf wire-format check, QoS, and the table of the bridge's
 * own bus publishers.
 */
#include "bridge.h"

#include <fnmatch.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

const char *bridge_topic_canon(const char *topic)
{
	return topic[0] == '/' ? topic + 1 : topic;
}

bool bridge_topic_eq(const char *a, const char *b)
{
	return strcmp(bridge_topic_canon(a), bridge_topic_canon(b)) == 0;
}

bool bridge_match(const char *const *patterns, size_t n, const char *topic)
{
	/* No FNM_PATHNAME: a '*' also crosses '/', so camera/<star> takes
	 * camera/front/left. A leading '/' does not count on either side:
	 * /camera/<star> and camera/<star> take the same topics. */
	for (size_t i = 0; i < n; i++)
		if (fnmatch(bridge_topic_canon(patterns[i]), bridge_topic_canon(topic), 0) == 0)
			return true;
	return false;
}

bool bridge_dds_name(const char *name, char *out, size_t cap)
{
	const char *topic = bridge_topic_canon(name);
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;
	const char *prefix = "shmbus/";
	for (const char *p = prefix; *p; p++) {
		if (o + 1 >= cap)
			return false;
		out[o++] = *p;
	}
	for (const unsigned char *p = (const unsigned char *)topic; *p; p++) {
		bool plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			     (*p >= '0' && *p <= '9') || *p == '/';
		if (o + (plain ? 1 : 3) >= cap)
			return false;
		if (plain) {
			out[o++] = (char)*p;
		} else {
			out[o++] = '_';
			out[o++] = hex[*p >> 4];
			out[o++] = hex[*p & 15];
		}
	}
	out[o] = '\0';
	return true;
}

static bool read_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
	uint64_t r = 0;
	for (int shift = 0; shift < 64; shift += 7) {
		if (*p >= end)
			return false;
		uint8_t b = *(*p)++;
		r |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			*v = r;
			return true;
		}
	}
	return false; /* more than 10 bytes */
}

bool bridge_wire_ok(const uint8_t *p, size_t n)
{
	const uint8_t *end = p + n;
	while (p < end) {
		uint64_t key, v;
		if (!read_varint(&p, end, &key))
			return false;
		if ((key >> 3) == 0 || (key >> 3) > 536870911u)
			return false;
		switch (key & 7) {
		case 0:
			if (!read_varint(&p, end, &v))
				return false;
			break;
		case 1:
			if ((size_t)(end - p) < 8)
				return false;
			p += 8;
			break;
		case 2:
			if (!read_varint(&p, end, &v) || v > (uint64_t)(end - p))
				return false;
			p += v;
			break;
		case 5:
			if ((size_t)(end - p) < 4)
				return false;
			p += 4;
			break;
		default: /* groups (3, 4) have no place in protobuf-c; 6, 7 are not wire types */
			return false;
		}
	}
	return true;
}

dds_qos_t *bridge_data_qos(const struct bridge *b, bool reader)
{
	dds_qos_t *q = dds_create_qos();
	if (b->reliable)
		/* A writer whose readers do not keep up waits this long, then the
		 * write fails and is counted (write_failed) rather than hanging. */
		dds_qset_reliability(q, DDS_RELIABILITY_RELIABLE, DDS_SECS(1));
	else
		dds_qset_reliability(q, DDS_RELIABILITY_BEST_EFFORT, 0);
	/* Reliable means every message or a counted failure: keep all, so a
	 * writer whose readers lag waits (up to 1 s) instead of replacing
	 * unacknowledged samples. Best effort keeps the last `depth`. */
	if (b->reliable)
		dds_qset_history(q, DDS_HISTORY_KEEP_ALL, 0);
	else
		dds_qset_history(q, DDS_HISTORY_KEEP_LAST, b->depth);
	dds_qset_durability(q, DDS_DURABILITY_VOLATILE);
	/* Keep each writer's samples in the order written. */
	dds_qset_destination_order(q, DDS_DESTINATIONORDER_BY_RECEPTION_TIMESTAMP);
	if (reader)
		/* Our own writers' samples are never ours to take back. */
		dds_qset_ignorelocal(q, DDS_IGNORELOCAL_PARTICIPANT);
	return q;
}

dds_qos_t *bridge_announce_qos(bool reader)
{
	dds_qos_t *q = dds_create_qos();
	dds_qset_reliability(q, DDS_RELIABILITY_RELIABLE, DDS_SECS(1));
	dds_qset_durability(q, DDS_DURABILITY_TRANSIENT_LOCAL);
	dds_qset_history(q, DDS_HISTORY_KEEP_LAST, 1);
	if (reader)
		dds_qset_ignorelocal(q, DDS_IGNORELOCAL_PARTICIPANT);
	return q;
}

void bridge_own_set(struct bridge *b, const char *topic, uint32_t publisher_id)
{
	pthread_mutex_lock(&b->own_lock);
	size_t i = 0;
	while (i < b->n_own && !bridge_topic_eq(b->own[i].topic, topic))
		i++;
	if (i < BRIDGE_MAX_TOPICS) {
		snprintf(b->own[i].topic, sizeof(b->own[0].topic), "%s", topic);
		b->own[i].publisher_id = publisher_id;
		if (i == b->n_own)
			b->n_own++;
	}
	pthread_mutex_unlock(&b->own_lock);
}

/* any_publisher: whether the bridge has any publisher on the topic. */
static bool own_find(struct bridge *b, const char *topic, uint32_t publisher_id, bool any_publisher)
{
	bool found = false;
	pthread_mutex_lock(&b->own_lock);
	for (size_t i = 0; i < b->n_own && !found; i++)
		found = (any_publisher || b->own[i].publisher_id == publisher_id) &&
			bridge_topic_eq(b->own[i].topic, topic);
	pthread_mutex_unlock(&b->own_lock);
	return found;
}

bool bridge_own_is(struct bridge *b, const char *topic, uint32_t publisher_id)
{
	return own_find(b, topic, publisher_id, false);
}

bool bridge_own_has(struct bridge *b, const char *topic)
{
	return own_find(b, topic, 0, true);
}

bool bridge_topic_has_me(shmbus_bus *bus, const char *topic, bool publisher,
			 struct shmbus_client_info *scratch, size_t cap)
{
	struct shmbus_topic_info info;
	size_t n = 0;
	int rc = publisher ? shmbus_topic_inspect(bus, topic, &info, scratch, cap, &n, NULL, 0, NULL)
			   : shmbus_topic_inspect(bus, topic, &info, NULL, 0, NULL, scratch, cap, &n);
	if (rc != 0)
		return rc != SHMBUS_ENOTOPIC; /* no answer: nothing is known to be gone */
	pid_t me = getpid();
	for (size_t i = 0; i < n; i++)
		if (scratch[i].pid == me)
			return true;
	return n >= cap; /* not all of them listed: assume so */
}

void bridge_log(const struct bridge *b, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr, "shmbus-bridge[%s]: %s\n", b->bus_name, line);
}
