/*
 * open.c - typed topics: a type's name, schema and size in the topic
 * options, and opening publishers and subscribers with them. The only
 * file of the typed runtime that fills libshmbus options structs.
 */
#include "internal.h"

#include <string.h>

/* The end of the last field the first version of the struct had. */
#define TYPE_SIZE_V1 (offsetof(struct shmbus_typed_type, max_size) + sizeof(uint32_t))

bool typed_type_valid(const struct shmbus_typed_type *type)
{
	return type && type->size >= TYPE_SIZE_V1 && type->descriptor &&
	       type->descriptor->magic == PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC &&
	       (type->schema || type->schema_size == 0);
}

bool typed_pub_has_type(const shmbus_pub *pub, const struct shmbus_typed_type *type)
{
	return strcmp(shmbus_pub_type_name(pub), type->descriptor->name) == 0;
}

bool typed_sub_has_type(const shmbus_sub *sub, const struct shmbus_typed_type *type)
{
	return strcmp(shmbus_sub_type_name(sub), type->descriptor->name) == 0;
}

/* Why a topic of `type` cannot be opened, or SHMBUS_OK. This library
 * calls the libshmbus it was built with; another major version loaded at
 * run time would not keep that API. */
static int open_check(const struct shmbus_typed_type *type)
{
	if (!typed_type_valid(type))
		return SHMBUS_EINVAL;
	return (shmbus_version() >> 16) == SHMBUS_VERSION_MAJOR ? SHMBUS_OK : SHMBUS_EVERSION;
}

void shmbus_typed_topic_options(const struct shmbus_typed_type *type,
				struct shmbus_topic_options *opts)
{
	if (!typed_type_valid(type) || !opts)
		return;
	opts->type_name = type->descriptor->name;
	opts->schema = type->schema;
	opts->schema_size = type->schema_size;
	if (opts->max_message_size != 0)
		return;
	if (type->flags & SHMBUS_TYPED_BOUNDED)
		/* 0 would ask for the bus's default: a type without fields
		 * still gets a topic of its own size. */
		opts->max_message_size = type->max_size ? type->max_size : 1;
	else
		opts->max_message_size = SHMBUS_TYPED_DEFAULT_MAX_SIZE;
}

int shmbus_typed_pub_open(shmbus_bus *bus, const char *topic,
			  const struct shmbus_typed_type *type,
			  const struct shmbus_topic_options *opts, shmbus_pub **out)
{
	struct shmbus_topic_options o;
	bool size_given;
	int rc;

	if (out)
		*out = NULL;
	if ((rc = open_check(type)) != SHMBUS_OK)
		return rc;
	if (opts) {
		o = *opts;
	} else {
		shmbus_topic_options_init(&o);
		o.max_message_size = 0; /* the type's, not the bus's default */
	}
	size_given = o.max_message_size != 0;
	shmbus_typed_topic_options(type, &o);
	rc = shmbus_pub_open(bus, topic, &o, out);
	if (rc == SHMBUS_ELAYOUT && !size_given && !(type->flags & SHMBUS_TYPED_BOUNDED)) {
		/* The default size of an unbounded type is what a new topic
		 * gets, not a requirement: nothing says this publisher's
		 * messages need it, so an existing topic is taken as it is. */
		o.max_message_size = 0;
		rc = shmbus_pub_open(bus, topic, &o, out);
	}
	return rc;
}

int shmbus_typed_sub_open(shmbus_bus *bus, const char *topic,
			  const struct shmbus_typed_type *type,
			  const struct shmbus_sub_options *opts, shmbus_sub **out)
{
	struct shmbus_sub_options o;
	int rc;

	if (out)
		*out = NULL;
	if ((rc = open_check(type)) != SHMBUS_OK)
		return rc;
	if (opts) {
		o = *opts;
	} else {
		shmbus_sub_options_init(&o);
		o.topic.max_message_size = 0; /* the type's, if it creates */
	}
	shmbus_typed_topic_options(type, &o.topic);
	return shmbus_sub_open(bus, topic, &o, out);
}
