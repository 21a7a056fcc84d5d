/*
 * main.c - the `shmbus` command: dispatches to one verb per subcommand.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const struct cli_verb verbs[] = {
	{ "topics", "list the topics of a bus", cmd_topics },
	{ "info", "show a topic's layout, publishers and subscribers", cmd_info },
	{ "stop", "stop a bus's broker and wait until it has exited", cmd_stop },
	{ "rm", "remove topics (the bus's own user only)", cmd_rm },
	{ "record", "record topics into an MCAP file", cmd_record },
	{ "play", "publish an MCAP recording with its timing", cmd_play },
	{ "mcap", "show (info) or print (cat) an MCAP recording", cmd_mcap },
	{ "echo", "print a topic's messages as JSON lines", cmd_echo },
	{ "hz", "show a topic's message rate", cmd_hz },
	{ "bw", "show a topic's bandwidth", cmd_bw },
	{ "pub", "publish a message written as JSON", cmd_pub },
};

static void usage(FILE *f)
{
	fprintf(f, "usage: shmbus VERB [--bus NAME] [ARGS...]\n\nverbs:\n");
	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
		fprintf(f, "  %-8s %s\n", verbs[i].name, verbs[i].summary);
	fprintf(f, "\n`shmbus VERB --help` tells more. The bus is --bus NAME, else $SHMBUS_BUS,\n"
		   "else 'default'.\n");
}

const char *cli_common_options(int *argc, char **argv, bool *help)
{
	const char *bus = NULL;
	int out = 1;
	*help = false;
	for (int i = 1; i < *argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			*help = true;
		} else if (strcmp(argv[i], "--bus") == 0 && i + 1 < *argc) {
			bus = argv[++i];
		} else if (strncmp(argv[i], "--bus=", 6) == 0) {
			bus = argv[i] + 6;
		} else {
			argv[out++] = argv[i];
		}
	}
	*argc = out;
	argv[out] = NULL;
	return bus;
}

shmbus_bus *cli_connect(const char *bus_name)
{
	struct shmbus_connect_options o;
	shmbus_bus *bus;
	shmbus_connect_options_init(&o);
	o.autostart = false;
	int rc = shmbus_connect(bus_name, &o, &bus);
	if (rc) {
		fprintf(stderr, "shmbus: %s: %s\n", shmbus_strerror(rc), shmbus_errmsg());
		return NULL;
	}
	return bus;
}

int cli_fail(const char *verb, int rc, shmbus_bus *bus, const char *what)
{
	const char *detail = bus ? shmbus_errmsg() : "";
	fprintf(stderr, "shmbus %s: %s%s%s%s%s\n", verb, what ? what : "", what ? ": " : "",
		shmbus_strerror(rc), *detail ? ": " : "", detail);
	return 1;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return 0;
	}
	if (strcmp(argv[1], "--version") == 0) {
		printf("shmbus %s\n", SHMBUS_VERSION_STRING);
		return 0;
	}
	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
		if (strcmp(argv[1], verbs[i].name) == 0)
			return verbs[i].run(argc - 1, argv + 1);
	fprintf(stderr, "shmbus: unknown verb '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}
