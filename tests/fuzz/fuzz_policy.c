/*
 * fuzz_policy.c - libFuzzer target: the policy file parser, fed arbitrary
 * text as a mistyped or hostile policy file could hold. A policy that
 * parses must answer every question without crashing.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1), err[512];
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0'; /* policy_load refuses files with a NUL: so do we */
	struct policy p;
	if (policy_parse(&p, "fuzz.policy", text, 0, err, sizeof(err)) == 0) {
		char why[128];
		struct policy_limits l;
		policy_allows(&p, 1000, 1000, POLICY_PUBLISH, "/camera/front", why, sizeof(why));
		policy_allows(&p, 0, 0, POLICY_CREATE, "a", why, sizeof(why));
		policy_admits(&p, 1000, 1000);
		policy_opens_to_others(&p);
		policy_limits_for(&p, 1000, 1000, &l);
		policy_free(&p);
	}
	free(text);
	return 0;
}
