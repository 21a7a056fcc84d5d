/*
 * options.c - owns the public options structs: their defaults, and reading
 * a caller's struct whatever size its header gave it. Every options struct
 * begins with `uint32_t size`, set by its _init() macro to the caller's
 * sizeof. A caller built against an older header passes fewer bytes: the
 * fields it does not know keep their defaults. A caller built against a
 * newer header passes more: accepted if the fields this library does not
 * know are all zero (their defaults), refused otherwise, so that nothing a
 * caller asked for is silently ignored.
 */
#include <string.h>

#include "client.h"

void options_init(void *opts, size_t size, const void *d, size_t lib_size)
{
	if (!opts || size < sizeof(uint32_t))
		return;
	memset(opts, 0, size);
	memcpy(opts, d, size < lib_size ? size : lib_size);
	uint32_t sz = (uint32_t)size;
	memcpy(opts, &sz, sizeof(sz));
}

int options_import(void *dst, size_t lib_size, const void *src, const char *what)
{
	uint32_t size;
	memcpy(&size, src, sizeof(size));
	if (size < sizeof(uint32_t) || size > 65536)
		return err_fail(SHMBUS_EINVAL,
				"%s options were not initialised (size %u): call "
				"shmbus_%s_options_init() first",
				what, size, what);
	const uint8_t *extra = (const uint8_t *)src + lib_size;
	for (size_t i = lib_size; i < size; i++, extra++)
		if (*extra)
			return err_fail(SHMBUS_EINVAL,
					"%s options set a field at byte %zu that this libshmbus %s "
					"does not know",
					what, i, SHMBUS_VERSION_STRING);
	memcpy(dst, src, size < lib_size ? size : lib_size);
	uint32_t sz = (uint32_t)lib_size;
	memcpy(dst, &sz, sizeof(sz));
	return 0;
}

void shmbus_topic_options_init_(struct shmbus_topic_options *o, size_t size)
{
	/* 0: sized by the bus's defaults and the type (see shmbus.h). */
	struct shmbus_topic_options d = { .size = sizeof(d) };
	options_init(o, size, &d, sizeof(d));
}

void shmbus_pub_options_init_(struct shmbus_pub_options *o, size_t size)
{
	struct shmbus_pub_options d = { .size = sizeof(d) };
	options_init(o, size, &d, sizeof(d));
}

void shmbus_sub_options_init_(struct shmbus_sub_options *o, size_t size)
{
	struct shmbus_sub_options d = {
		.size = sizeof(d),
		.start = SHMBUS_START_NEW,
		.spin_ns = SHMBUS_SPIN_AUTO,
		.lapped = SHMBUS_LAPPED_PACE,
	};
	options_init(o, size, &d, sizeof(d));
}
