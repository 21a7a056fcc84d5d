/*
 * cmd_rm.c - `shmbus rm`: remove topics (the bus's own user only). Their
 * live publishers and subscribers learn it at their next publish, and
 * after taking what was left, as SHMBUS_ENOTOPIC.
 */
#include <stdio.h>

#include "cli.h"

static const char rm_usage[] =
	"usage: shmbus rm [--bus NAME] TOPIC...\n\n"
	"Remove topics. Only the bus's own user may. Their publishers' next\n"
	"publish, and their subscribers once they have taken what was left, fail\n"
	"with 'no such topic, or it was removed'; their memory is freed when the\n"
	"last of them closes it. Exit 0 if every topic was removed.\n";

int cmd_rm(int argc, char **argv)
{
	bool help;
	const char *bus_name = cli_common_options(&argc, argv, &help);
	if (help || argc < 2)
		return cli_usage(help, rm_usage);
	/* Removing on a bus nobody serves has nothing to remove: no autostart. */
	shmbus_bus *bus = cli_connect(bus_name, "rm", false, NULL);
	if (!bus)
		return 1;
	int status = 0;
	for (int i = 1; i < argc; i++) {
		int rc = shmbus_topic_remove(bus, argv[i]);
		if (rc)
			status = cli_fail("rm", rc, argv[i]);
	}
	shmbus_disconnect(bus);
	return status;
}
