/*
 * main.c - the `shmbus` command: global options, then one verb per
 * subcommand.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const struct cli_verb verbs[] = {
	{ "topics", "list the topics of a bus", cmd_topics },
	{ "info", "show a topic's layout, publishers and subscribers", cmd_info },
	{ "type", "print a topic's message definition as .proto text", cmd_type },
	{ "echo", "print a topic's messages as JSON lines (or a field, or CSV)", cmd_echo },
	{ "hz", "show a topic's message rate", cmd_hz },
	{ "bw", "show a topic's bandwidth", cmd_bw },
	{ "pub", "publish a message written as JSON or YAML", cmd_pub },
	{ "record", "record topics into MCAP files", cmd_record },
	{ "play", "publish MCAP recordings with their timing", cmd_play },
	{ "mcap", "show, print or recover an MCAP recording", cmd_mcap },
	{ "stop", "stop a bus's broker and wait until it has exited", cmd_stop },
	{ "rm", "remove topics (the bus's own user only)", cmd_rm },
};

static void usage(FILE *f)
{
	fprintf(f, "usage: shmbus [--bus NAME] VERB [ARGS...]\n\nverbs:\n");
	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
		fprintf(f, "  %-8s %s\n", verbs[i].name, verbs[i].summary);
	fprintf(f, "\n`shmbus VERB --help` tells more. The bus is --bus NAME (before or after\n"
		   "the verb), else $SHMBUS_BUS, else 'default'.\n");
}

int main(int argc, char **argv)
{
	int i = 1;
	/* Global options come before the verb. */
	for (; i < argc && argv[i][0] == '-'; i++) {
		const char *v;
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			usage(stdout);
			return 0;
		} else if (strcmp(argv[i], "--version") == 0) {
			printf("shmbus %s\n", SHMBUS_VERSION_STRING);
			return 0;
		} else if ((v = cli_opt(argc, argv, &i, "--bus", NULL))) {
			if (!*v) {
				fprintf(stderr, "shmbus: --bus needs a bus name\n");
				return 2;
			}
			cli_global_bus = v;
		} else {
			fprintf(stderr, "shmbus: unknown option '%s' before the verb\n", argv[i]);
			usage(stderr);
			return 2;
		}
	}
	if (i >= argc) {
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[i], "help") == 0) {
		usage(stdout);
		return 0;
	}
	for (size_t k = 0; k < sizeof(verbs) / sizeof(verbs[0]); k++)
		if (strcmp(argv[i], verbs[k].name) == 0)
			return verbs[k].run(argc - i, argv + i);
	fprintf(stderr, "shmbus: unknown verb '%s'\n", argv[i]);
	usage(stderr);
	return 2;
}
