/*
 * fuzz_pbjson.c - libFuzzer target: lib/pbjson's schema loader, fed
 * arbitrary bytes as a topic's stored schema (or an MCAP file's) could
 * hold them, then every type it accepts used as the tools use it: the
 * schema subset a topic stores, and decoding bytes (the input itself) as
 * that type. Nothing may crash, hang, leak or read out of bounds.
 */
#include <stdint.h>
#include <stdlib.h>

#include "pbjson.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	pbjson_schema *s;
	char err[256];
	if (pbjson_schema_load(data, size, &s, err, sizeof(err)) != 0)
		return 0;
	struct pbjson_options o;
	pbjson_options_init(&o);
	o.emit_defaults = true;
	size_t n = pbjson_type_count(s);
	for (size_t i = 0; i < n && i < 64; i++) {
		const char *type = pbjson_type_name(s, i);
		if (!pbjson_has_type(s, type))
			__builtin_trap(); /* listed but not found */
		uint8_t *sub = NULL;
		size_t len = 0;
		if (pbjson_schema_subset(s, type, &sub, &len, err, sizeof(err)) == 0) {
			/* What a topic stores must load again, with the type. */
			pbjson_schema *again;
			if (pbjson_schema_load(sub, len, &again, err, sizeof(err)) != 0 ||
			    !pbjson_has_type(again, type))
				__builtin_trap();
			pbjson_schema_free(again);
		}
		free(sub);
		json_t *j = NULL;
		if (pbjson_decode(s, type, data, size, &o, &j, err, sizeof(err)) == 0) {
			/* What decodes encodes back. */
			uint8_t *wire = NULL;
			size_t wlen = 0;
			char *text = pbjson_dumps(j);
			free(text);
			if (pbjson_encode(s, type, j, &wire, &wlen, err, sizeof(err)) == 0)
				free(wire);
		}
		json_decref(j);
	}
	pbjson_schema_free(s);
	return 0;
}
