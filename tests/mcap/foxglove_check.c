/*
 * foxglove_check.c - runs Foxglove's MCAP reader on a file (see
 * foxglove_check.h).
 */
#include "foxglove_check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *node_path, *validator_path;
static int said;

void foxglove_check_setup(const char *node, const char *validator)
{
	node_path = node;
	validator_path = validator;
}

static int unavailable(const char *why, char *out, size_t cap)
{
	snprintf(out, cap, "Foxglove's reader cannot run: %s", why);
	if (getenv("SHMBUS_REQUIRE_FOXGLOVE") && *getenv("SHMBUS_REQUIRE_FOXGLOVE"))
		return 1;
	if (!said++)
		printf("\n  SKIPPED the check with Foxglove's reader: %s ", why);
	return 77;
}

int foxglove_check(const char *path, long messages, char *out, size_t cap)
{
	char modules[600], cmd[1400], want[64];
	out[0] = 0;
	if (!node_path || !*node_path || !validator_path || !*validator_path)
		return unavailable("node was not found when the build was configured", out, cap);
	snprintf(modules, sizeof(modules), "%.500s", validator_path);
	char *slash = strrchr(modules, '/');
	if (slash)
		snprintf(slash, sizeof(modules) - (size_t)(slash - modules), "/node_modules/@mcap/core");
	if (access(modules, R_OK) != 0)
		return unavailable("@mcap/core is not installed (scripts/dev test installs it)", out,
				   cap);
	snprintf(cmd, sizeof(cmd), "'%s' '%s' '%s'", node_path, validator_path, path);
	FILE *p = popen(cmd, "r");
	if (!p)
		return unavailable("popen failed", out, cap);
	if (!fgets(out, (int)cap, p))
		out[0] = 0;
	int st = pclose(p);
	snprintf(want, sizeof(want), "\"indexed_messages\":%ld,", messages);
	if (st != 0 || !strstr(out, "\"ok\":true") || (messages >= 0 && !strstr(out, want)))
		return 1;
	return 0;
}
