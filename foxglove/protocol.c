/*
 * protocol.c - the Foxglove WebSocket protocol's messages (subprotocol
 * foxglove.websocket.v1): what the server says (serverInfo, advertise,
 * unadvertise, status) as JSON, and what clients say, checked field by
 * field (subscribe, unsubscribe, and the clientPublish messages, which
 * publish.c carries out). Every refusal is a status message saying why.
 */
#include "server.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Serialize and queue (or drop silently when out of memory: the client
 * then misses one control message, which is all that can be done). */
static void send_json(struct fox_client *c, json_t *j)
{
	if (!j)
		return;
	fox_client_queue_text(c, json_dumps(j, JSON_COMPACT));
	json_decref(j);
}

void fox_send_server_info(struct fox_client *c)
{
	struct fox_server *s = c->srv;
	json_t *caps = json_array(), *enc = json_array();
	char name[160];

	snprintf(name, sizeof(name), "shmbus-foxglove (bus %s)", shmbus_bus_name(s->bus));
	if (s->opt.client_publish) {
		/* Foxglove's Publish and Teleop panels send JSON; protobuf
		 * suits programs that have the schema. */
		json_array_append_new(caps, json_string("clientPublish"));
		json_array_append_new(enc, json_string("json"));
		json_array_append_new(enc, json_string("protobuf"));
	}
	send_json(c, json_pack("{s:s, s:s, s:o, s:o, s:{s:s, s:s}, s:s}", "op", "serverInfo",
			       "name", name, "capabilities", caps, "supportedEncodings", enc,
			       "metadata", "bus", shmbus_bus_name(s->bus), "shmbus",
			       SHMBUS_VERSION_STRING, "sessionId", s->session_id));
}

static json_t *channel_json(const struct fox_channel *ch)
{
	return json_pack("{s:I, s:s, s:s, s:s, s:s, s:s}", "id", (json_int_t)ch->id, "topic",
			 ch->topic, "encoding", "protobuf", "schemaName", ch->type, "schema",
			 ch->schema_b64, "schemaEncoding", "protobuf");
}

void fox_send_advertise(struct fox_server *s, struct fox_client *only, struct fox_channel *ch)
{
	for (struct fox_client *c = only ? only : s->clients; c; c = only ? NULL : c->next) {
		json_t *list = json_array();

		if (ch) {
			json_array_append_new(list, channel_json(ch));
		} else {
			/* A new client: everything (an empty list too: the
			 * protocol promises at least one advertise). */
			for (struct fox_channel *x = s->channels; x; x = x->next)
				json_array_append_new(list, channel_json(x));
		}
		send_json(c, json_pack("{s:s, s:o}", "op", "advertise", "channels", list));
	}
}

void fox_send_unadvertise(struct fox_server *s, uint32_t channel_id)
{
	for (struct fox_client *c = s->clients; c; c = c->next)
		send_json(c, json_pack("{s:s, s:[I]}", "op", "unadvertise", "channelIds",
				       (json_int_t)channel_id));
}

void fox_send_status(struct fox_client *c, int level, const char *id, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	json_t *j;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	j = json_pack("{s:s, s:i, s:s}", "op", "status", "level", level, "message", msg);
	if (j && id)
		json_object_set_new(j, "id", json_string(id));
	send_json(c, j);
}

/* A uint32 field of a client's object, or false. */
static bool get_u32(const json_t *obj, const char *key, uint32_t *out)
{
	const json_t *v = json_object_get(obj, key);
	json_int_t i;

	if (!json_is_integer(v))
		return false;
	i = json_integer_value(v);
	if (i < 0 || i > (json_int_t)UINT32_MAX)
		return false;
	*out = (uint32_t)i;
	return true;
}

static struct fox_subscription *find_sub(struct fox_client *c, uint32_t id)
{
	for (struct fox_subscription *s = c->subs; s; s = s->next)
		if (s->id == id)
			return s;
	return NULL;
}

static void subscribe_one(struct fox_client *c, const json_t *e)
{
	struct fox_server *s = c->srv;
	struct fox_subscription *sub;
	struct fox_channel *ch;
	uint32_t id, chan;
	char err[512];

	if (!json_is_object(e) || !get_u32(e, "id", &id) || !get_u32(e, "channelId", &chan)) {
		fox_send_status(c, 2, NULL,
				"subscribe: each subscription needs an \"id\" and a \"channelId\" "
				"(unsigned 32-bit integers)");
		return;
	}
	if (find_sub(c, id)) {
		fox_send_status(c, 2, NULL, "subscribe: subscription id %u is already in use", id);
		return;
	}
	ch = fox_channel_find(s, chan);
	if (!ch) {
		fox_send_status(c, 2, NULL, "subscribe: no channel %u (it was never advertised, "
					    "or its topic is gone)", chan);
		return;
	}
	for (struct fox_subscription *x = c->subs; x; x = x->next) {
		if (x->ch == ch) {
			fox_send_status(c, 2, NULL,
					"subscribe: already subscribed to channel %u ('%s') as "
					"subscription %u",
					chan, ch->topic, x->id);
			return;
		}
	}
	sub = calloc(1, sizeof(*sub));
	if (!sub) {
		fox_send_status(c, 2, NULL, "subscribe: out of memory");
		return;
	}
	sub->id = id;
	sub->client = c;
	sub->ch = ch;
	sub->next = c->subs;
	c->subs = sub;
	if (fox_channel_attach(s, sub, err, sizeof(err)) != 0) {
		fox_log("client %s: %s", c->name, err);
		fox_send_status(c, 2, NULL, "%s", err);
		fox_client_forget(sub);
		return;
	}
	if (s->opt.verbose)
		fox_log("client %s subscribed to '%s' (subscription %u)", c->name, ch->topic, id);
}

static void unsubscribe_one(struct fox_client *c, const json_t *e)
{
	struct fox_subscription *sub;
	json_int_t id;

	if (!json_is_integer(e)) {
		fox_send_status(c, 2, NULL, "unsubscribe: subscription ids are integers");
		return;
	}
	id = json_integer_value(e);
	sub = id >= 0 && id <= (json_int_t)UINT32_MAX ? find_sub(c, (uint32_t)id) : NULL;
	if (!sub) {
		fox_send_status(c, 1, NULL, "unsubscribe: no subscription %lld",
				(long long)id);
		return;
	}
	if (c->srv->opt.verbose)
		fox_log("client %s unsubscribed from '%s' (subscription %u)", c->name,
			sub->ch->topic, sub->id);
	fox_channel_detach(c->srv, sub);
	fox_client_forget(sub);
}

static const char *get_str(const json_t *obj, const char *key)
{
	return json_string_value(json_object_get(obj, key));
}

static void client_advertise_one(struct fox_client *c, const json_t *e)
{
	uint32_t id;
	const char *topic = get_str(e, "topic"), *enc = get_str(e, "encoding");
	const char *name = get_str(e, "schemaName");

	if (!json_is_object(e) || !get_u32(e, "id", &id) || !topic || !enc || !name) {
		fox_send_status(c, 2, NULL, "advertise: each channel needs \"id\", \"topic\", "
					    "\"encoding\" and \"schemaName\"");
		return;
	}
	fox_publish_advertise(c, id, topic, enc, name, get_str(e, "schema"),
			      get_str(e, "schemaEncoding"));
}

/* Each element of obj[key] (an array) goes to fn. */
static void for_each(struct fox_client *c, const json_t *obj, const char *op, const char *key,
		     void (*fn)(struct fox_client *c, const json_t *e))
{
	const json_t *list = json_object_get(obj, key);
	size_t i;
	json_t *e;

	if (!json_is_array(list)) {
		fox_send_status(c, 2, NULL, "%s: \"%s\" must be an array", op, key);
		return;
	}
	json_array_foreach(list, i, e)
		fn(c, e);
}

static void client_unadvertise_one(struct fox_client *c, const json_t *e)
{
	json_int_t id = json_is_integer(e) ? json_integer_value(e) : -1;

	if (id < 0 || id > (json_int_t)UINT32_MAX) {
		fox_send_status(c, 2, NULL, "unadvertise: channel ids are unsigned integers");
		return;
	}
	fox_publish_unadvertise(c, (uint32_t)id);
}

static void on_text(struct fox_client *c, const unsigned char *p, size_t n)
{
	static const char *const unsupported[] = {
		"getParameters", "setParameters", "subscribeParameterUpdates",
		"unsubscribeParameterUpdates", "subscribeConnectionGraph",
		"unsubscribeConnectionGraph", "fetchAsset",
	};
	json_error_t jerr;
	json_t *j = json_loadb((const char *)p, n, 0, &jerr);
	const char *op = get_str(j, "op");

	if (!json_is_object(j) || !op) {
		fox_send_status(c, 2, NULL, "a text message must be a JSON object with an \"op\"%s%s",
				j ? "" : ": ", j ? "" : jerr.text);
		json_decref(j);
		return;
	}
	if (strcmp(op, "subscribe") == 0) {
		for_each(c, j, op, "subscriptions", subscribe_one);
	} else if (strcmp(op, "unsubscribe") == 0) {
		for_each(c, j, op, "subscriptionIds", unsubscribe_one);
	} else if (strcmp(op, "advertise") == 0 || strcmp(op, "unadvertise") == 0) {
		if (!c->srv->opt.client_publish)
			fox_send_status(c, 2, NULL, "%s: this server does not take messages from "
						    "clients (started with --no-client-publish)", op);
		else if (op[0] == 'a')
			for_each(c, j, op, "channels", client_advertise_one);
		else
			for_each(c, j, op, "channelIds", client_unadvertise_one);
	} else {
		bool known = false;

		for (size_t i = 0; i < sizeof(unsupported) / sizeof(unsupported[0]); i++)
			known |= strcmp(op, unsupported[i]) == 0;
		fox_send_status(c, 2, NULL, "%s: %s", op,
				known ? "not offered by this server (see its capabilities)"
				      : "unknown operation");
	}
	json_decref(j);
}

void fox_on_client_message(struct fox_client *c, const unsigned char *p, size_t n, bool binary)
{
	uint32_t id;

	if (!binary) {
		on_text(c, p, n);
		return;
	}
	/* Client Message Data: opcode 1, channel id (little-endian), payload. */
	if (n < 5 || p[0] != 1) {
		fox_send_status(c, 2, NULL, "binary message with opcode %u and %zu bytes: only "
					    "client message data (opcode 1) is taken",
				n ? p[0] : 0u, n);
		return;
	}
	if (!c->srv->opt.client_publish) {
		fox_send_status(c, 2, NULL, "this server does not take messages from clients "
					    "(started with --no-client-publish)");
		return;
	}
	id = (uint32_t)p[1] | (uint32_t)p[2] << 8 | (uint32_t)p[3] << 16 | (uint32_t)p[4] << 24;
	fox_publish_data(c, id, p + 5, n - 5);
}
