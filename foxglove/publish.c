/*
 * publish.c - clientPublish: a client advertises a channel (topic,
 * encoding, schema name), and what it sends on it is published on the bus
 * under that type. JSON (what Foxglove's Publish and Teleop panels send)
 * is encoded to protobuf from the schema; protobuf is checked against it.
 * Nothing that does not fit the type reaches the bus, and a topic that
 * has another type refuses the channel; the client gets a status message
 * saying why each time.
 */
#include "server.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct fox_client_channel *find(struct fox_client *c, uint32_t id)
{
	for (struct fox_client_channel *p = c->pubs; p; p = p->next)
		if (p->id == id)
			return p;
	return NULL;
}

static void channel_free(struct fox_client_channel *p)
{
	if (p->pub)
		shmbus_pub_close(p->pub);
	if (p->schema_owned)
		pbjson_schema_free(p->schema);
	free(p->topic);
	free(p->type);
	free(p);
}

static void status_id(char *out, size_t cap, const char *topic)
{
	snprintf(out, cap, "shmbus.publish.%s", topic);
}

/* The schema that says what `type` is: the one the client sent, else the
 * topic's own, else the message types this server knows. */
static int find_schema(struct fox_client *c, const char *topic, const char *type,
		       const char *schema, const char *schema_encoding, bool json,
		       pbjson_schema **out, bool *owned, char *err, size_t errlen)
{
	struct fox_server *s = c->srv;
	struct fox_channel *ch = fox_channel_by_topic(s, topic);

	*owned = false;
	if (!json && schema && schema[0]) {
		size_t n = strlen(schema);
		char *bin;
		int len;

		if (schema_encoding && strcmp(schema_encoding, "protobuf") != 0) {
			snprintf(err, errlen, "schema encoding '%s': only protobuf (a base64 "
					      "FileDescriptorSet) is understood", schema_encoding);
			return -1;
		}
		bin = malloc(n);
		if (!bin) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		len = lws_b64_decode_string_len(schema, (int)n, bin, (int)n);
		if (len <= 0) {
			snprintf(err, errlen, "the schema is not base64");
			free(bin);
			return -1;
		}
		if (pbjson_schema_load(bin, (size_t)len, out, err, errlen) != PBJSON_OK) {
			free(bin);
			return -1;
		}
		free(bin);
		*owned = true;
	} else if (ch && strcmp(ch->type, type) == 0) {
		if (pbjson_schema_load(ch->schema, ch->schema_len, out, err, errlen) != PBJSON_OK)
			return -1;
		*owned = true;
	} else if (pbjson_has_type(s->known, type)) {
		*out = s->known;
	} else {
		snprintf(err, errlen,
			 "unknown type '%s': advertise its schema (encoding protobuf, a base64 "
			 "FileDescriptorSet), or publish to a topic that has this type", type);
		return -1;
	}
	if (!pbjson_has_type(*out, type)) {
		snprintf(err, errlen, "the schema does not define '%s'", type);
		if (*owned)
			pbjson_schema_free(*out);
		*out = NULL;
		return -1;
	}
	return 0;
}

/* Open the bus publisher: an existing topic must have this type; a new
 * one is created with the type and its schema, sized as a typed publisher
 * sizes it (the type's exact bound when its schema has one, else 512 B,
 * never above --publish-max-size). The publisher grows the topic for a
 * larger message, up to --publish-max-size. */
static int open_pub(struct fox_client *c, struct fox_client_channel *p, char *err,
		    size_t errlen)
{
	struct shmbus_topic_options to;
	uint8_t *fds = NULL;
	size_t fds_len = 0;
	int rc;

	if (pbjson_schema_subset(p->schema, p->type, &fds, &fds_len, err, errlen) != PBJSON_OK)
		return -1;
	shmbus_topic_options_init(&to);
	to.type_name = p->type;
	to.schema = fds;
	to.schema_size = fds_len;
	uint64_t bound = 0;
	to.max_message_size = 512; /* the typed default (shmbus/typed.h) */
	if (pbjson_max_encoded_size(p->schema, p->type, &bound, NULL, 0) == PBJSON_OK)
		to.max_message_size = bound ? (uint32_t)bound : 1;
	if (to.max_message_size > c->srv->opt.publish_max_size)
		to.max_message_size = c->srv->opt.publish_max_size;
	struct shmbus_pub_options po;
	shmbus_pub_options_init(&po);
	po.flags = SHMBUS_PUB_GROW;
	rc = shmbus_pub_open(c->srv->bus, p->topic, &to, &po, &p->pub);
	if (rc == SHMBUS_ELAYOUT) {
		/* It exists with smaller messages: publish what fits. */
		struct shmbus_topic_info info;

		if (shmbus_topic_inspect(c->srv->bus, p->topic, &info, NULL, 0, NULL, NULL, 0,
					 NULL) == SHMBUS_OK) {
			to.max_message_size = info.max_message_size;
			rc = shmbus_pub_open(c->srv->bus, p->topic, &to, &po, &p->pub);
		}
	}
	free(fds);
	if (rc) {
		snprintf(err, errlen, "%s: %s", shmbus_strerror(rc), shmbus_errmsg());
		p->pub = NULL;
		return -1;
	}
	return 0;
}

void fox_publish_advertise(struct fox_client *c, uint32_t id, const char *topic,
			   const char *encoding, const char *schema_name, const char *schema,
			   const char *schema_encoding)
{
	struct fox_client_channel *p;
	char err[512], sid[300];
	bool json = strcmp(encoding, "json") == 0;

	status_id(sid, sizeof(sid), topic);
	if (find(c, id)) {
		fox_send_status(c, 2, sid, "advertise: client channel %u is already in use", id);
		return;
	}
	if (!json && strcmp(encoding, "protobuf") != 0) {
		fox_send_status(c, 2, sid, "advertise '%s': encoding '%s' is not supported (json "
					   "or protobuf)", topic, encoding);
		return;
	}
	if (!shmbus_topic_name_valid(topic)) {
		fox_send_status(c, 2, sid, "advertise: '%s' is not a valid topic name (1..200 of "
					   "[A-Za-z0-9_./-], segments separated by '/')", topic);
		return;
	}
	p = calloc(1, sizeof(*p));
	if (!p || !(p->topic = strdup(topic)) || !(p->type = strdup(schema_name))) {
		fox_send_status(c, 2, sid, "advertise '%s': out of memory", topic);
		if (p)
			channel_free(p);
		return;
	}
	p->id = id;
	p->json = json;
	if (find_schema(c, topic, schema_name, schema, schema_encoding, json, &p->schema,
			&p->schema_owned, err, sizeof(err)) != 0 ||
	    open_pub(c, p, err, sizeof(err)) != 0) {
		fox_log("client %s may not publish on '%s' as %s: %s", c->name, topic, schema_name,
			err);
		fox_send_status(c, 2, sid, "cannot publish on '%s' as %s: %s", topic, schema_name,
				err);
		channel_free(p);
		return;
	}
	p->next = c->pubs;
	c->pubs = p;
	fox_log("client %s publishes on '%s' (%s, %s)", c->name, topic, schema_name, encoding);
}

void fox_publish_unadvertise(struct fox_client *c, uint32_t id)
{
	for (struct fox_client_channel **pp = &c->pubs; *pp; pp = &(*pp)->next) {
		struct fox_client_channel *p = *pp;

		if (p->id == id) {
			*pp = p->next;
			fox_log("client %s stopped publishing on '%s': %llu published, %llu refused",
				c->name, p->topic, (unsigned long long)p->published,
				(unsigned long long)p->refused);
			channel_free(p);
			return;
		}
	}
	fox_send_status(c, 1, NULL, "unadvertise: no client channel %u", id);
}

/* JSON to protobuf wire bytes (*out malloc'd), or protobuf checked in
 * place (*out NULL). */
static int encode(struct fox_client_channel *p, const unsigned char *in, size_t n,
		  uint8_t **out, size_t *len, char *err, size_t errlen)
{
	json_error_t jerr;
	json_t *j = NULL;
	int rc;

	*out = NULL;
	if (!p->json) {
		rc = pbjson_decode(p->schema, p->type, in, n, NULL, &j, err, errlen);
		json_decref(j);
		return rc == PBJSON_OK ? 0 : -1;
	}
	j = json_loadb((const char *)in, n, 0, &jerr);
	if (!j) {
		snprintf(err, errlen, "not JSON: %s", jerr.text);
		return -1;
	}
	rc = pbjson_encode(p->schema, p->type, j, out, len, err, errlen);
	json_decref(j);
	return rc == PBJSON_OK ? 0 : -1;
}

void fox_publish_data(struct fox_client *c, uint32_t id, const unsigned char *data, size_t n)
{
	struct fox_client_channel *p = find(c, id);
	uint8_t *wire;
	size_t len = n;
	char err[512], sid[300];
	int rc;

	if (!p) {
		fox_send_status(c, 2, NULL, "message on client channel %u, which was not "
					    "advertised (or was refused)", id);
		return;
	}
	status_id(sid, sizeof(sid), p->topic);
	if (encode(p, data, n, &wire, &len, err, sizeof(err)) != 0) {
		p->refused++;
		fox_send_status(c, 2, sid, "not published on '%s': not a valid %s: %s", p->topic,
				p->type, err);
		return;
	}
	if (len > c->srv->opt.publish_max_size && len > shmbus_pub_max_message_size(p->pub)) {
		free(wire);
		p->refused++;
		fox_send_status(c, 2, sid, "not published on '%s': %zu bytes, above the server's "
					   "--publish-max-size %u", p->topic, len,
				c->srv->opt.publish_max_size);
		return;
	}
	rc = shmbus_pub_send(p->pub, wire ? wire : data, len, NULL);
	free(wire);
	if (rc) {
		p->refused++;
		if (rc == SHMBUS_EMSGSIZE)
			fox_send_status(c, 2, sid, "not published on '%s': %zu bytes, the topic "
						   "takes at most %zu", p->topic, len,
					shmbus_pub_max_message_size(p->pub));
		else
			fox_send_status(c, 2, sid, "not published on '%s': %s: %s", p->topic,
					shmbus_strerror(rc), shmbus_errmsg());
		return;
	}
	p->published++;
}

void fox_publish_close_all(struct fox_client *c)
{
	while (c->pubs) {
		struct fox_client_channel *p = c->pubs;

		c->pubs = p->next;
		channel_free(p);
	}
}
