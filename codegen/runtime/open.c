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

int typed_fail_type(const char *fn, const struct shmbus_typed_type *type)
{
	return shmbus_fail(SHMBUS_EINVAL,
			   type ? "%s: the type description is not one protoc-gen-shmbus wrote"
				: "%s: NULL type",
			   fn);
}

int typed_fail_other_type(const char *topic, const char *topic_type,
			  const struct shmbus_typed_type *type)
{
	/* The words of libshmbus's own refusal of a typed open. */
	return shmbus_fail(SHMBUS_ETYPE, "topic '%s' has type '%s', not '%s'", topic,
			   topic_type[0] ? topic_type : "(untyped)", type->descriptor->name);
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
static int open_check(const char *fn, const struct shmbus_typed_type *type)
{
	uint32_t loaded = shmbus_version();

	if (!typed_type_valid(type))
		return typed_fail_type(fn, type);
	if ((loaded >> 16) != SHMBUS_VERSION_MAJOR)
		return shmbus_fail(SHMBUS_EVERSION,
				   "libshmbus-typed was built for libshmbus %d, libshmbus %u.%u "
				   "is loaded",
				   SHMBUS_VERSION_MAJOR, (unsigned)(loaded >> 16),
				   (unsigned)((loaded >> 8) & 255u));
	return SHMBUS_OK;
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

/* The caller's topic options (NULL: defaults) in a struct of this
 * library's header. A caller built against an older header gave fewer
 * bytes: the fields it did not know keep their defaults. One built against
 * a newer header gave more: libshmbus would refuse a field it does not
 * know, and so does this copy rather than drop it unseen. */
static int topic_import(struct shmbus_topic_options *o, const struct shmbus_topic_options *opts)
{
	shmbus_topic_options_init(o);
	if (!opts)
		return SHMBUS_OK;
	if (opts->size < sizeof(opts->size) || opts->size > 65536)
		return shmbus_fail(SHMBUS_EINVAL,
				   "topic options of size %zu: not initialised by "
				   "shmbus_topic_options_init()",
				   (size_t)opts->size);
	for (size_t i = sizeof(*o); i < opts->size; i++)
		if (((const uint8_t *)opts)[i] != 0)
			return shmbus_fail(SHMBUS_EINVAL,
					   "topic options set a field this library "
					   "(%zu bytes of options) does not know",
					   sizeof(*o));
	memcpy(o, opts, opts->size < sizeof(*o) ? opts->size : sizeof(*o));
	o->size = sizeof(*o);
	return SHMBUS_OK;
}

int shmbus_typed_pub_open(shmbus_bus *bus, const char *topic,
			  const struct shmbus_typed_type *type,
			  const struct shmbus_topic_options *topic_opts,
			  const struct shmbus_pub_options *opts, shmbus_pub **out)
{
	struct shmbus_topic_options o;
	bool size_given;
	int rc;

	if (out)
		*out = NULL;
	if ((rc = open_check("shmbus_typed_pub_open", type)) != SHMBUS_OK ||
	    (rc = topic_import(&o, topic_opts)) != SHMBUS_OK)
		return rc;
	size_given = o.max_message_size != 0;
	shmbus_typed_topic_options(type, &o);
	/* The default size of an unbounded type is a guess, not a promise the
	 * caller made: such a publisher grows the topic (SHMBUS_PUB_GROW) for
	 * a message that does not fit instead of refusing it. A caller who
	 * gave a size, or options of a newer header than this library's,
	 * keeps what it asked for. */
	struct shmbus_pub_options po;
	if (!size_given && !(type->flags & SHMBUS_TYPED_BOUNDED) &&
	    (!opts || (opts->size >= sizeof(opts->size) && opts->size <= sizeof(po)))) {
		shmbus_pub_options_init(&po);
		if (opts)
			memcpy(&po, opts, opts->size);
		po.size = sizeof(po);
		po.flags |= SHMBUS_PUB_GROW;
		opts = &po;
	}
	/* With SHMBUS_PUB_GROW, libshmbus grows an existing smaller topic to
	 * the size asked for instead of refusing it. */
	rc = shmbus_pub_open(bus, topic, &o, opts, out);
	if (rc == SHMBUS_ELAYOUT && !size_given && !(type->flags & SHMBUS_TYPED_BOUNDED)) {
		/* The default size of an unbounded type is what a new topic
		 * gets, not a requirement: nothing says this publisher's
		 * messages need it, so an existing topic is taken as it is. */
		o.max_message_size = 0;
		rc = shmbus_pub_open(bus, topic, &o, opts, out);
	}
	return rc;
}

int shmbus_typed_sub_open(shmbus_bus *bus, const char *topic,
			  const struct shmbus_typed_type *type,
			  const struct shmbus_topic_options *topic_opts,
			  const struct shmbus_sub_options *opts, shmbus_sub **out)
{
	struct shmbus_topic_options o;
	int rc;

	if (out)
		*out = NULL;
	if ((rc = open_check("shmbus_typed_sub_open", type)) != SHMBUS_OK ||
	    (rc = topic_import(&o, topic_opts)) != SHMBUS_OK)
		return rc;
	/* Sized as for publishers, should create_if_missing create it. */
	shmbus_typed_topic_options(type, &o);
	return shmbus_sub_open(bus, topic, &o, opts, out);
}
