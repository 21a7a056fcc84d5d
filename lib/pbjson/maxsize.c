/*
 * maxsize.c - the largest encoded size of a message type of a schema
 * (pbjson_max_encoded_size), so that a tool creating a topic from a
 * stored or built-in schema sizes it as the generated code does. The walk
 * itself is codegen/bound.c, shared with protoc-gen-shmbus.
 */
#include "bound.h"
#include "internal.h"

static const Google__Protobuf__DescriptorProto *find(void *ctx, const char *name)
{
	const struct pj_msg *m = pj_find_msg(ctx, name);

	return m ? m->d : NULL;
}

int pbjson_max_encoded_size(const pbjson_schema *s, const char *type, uint64_t *bound,
			    char *err, size_t errlen)
{
	if (!s || !type || !bound) {
		pj_err(err, errlen, "invalid argument");
		return PBJSON_EINVAL;
	}
	switch (pbbound_max_size(type, find, (void *)s, bound, err, errlen)) {
	case PBBOUND_BOUNDED:
		return PBJSON_OK;
	case PBBOUND_UNBOUNDED:
		return PBJSON_UNBOUNDED;
	case PBBOUND_ENOMEM:
		return PBJSON_ENOMEM;
	default:
		return PBJSON_ENOTYPE;
	}
}
