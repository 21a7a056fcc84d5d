/*
 * cli.h - what the `shmbus` command's verbs share: the verb table entry,
 * connecting with --bus, and printing errors.
 */
#ifndef SHMBUS_CLI_H
#define SHMBUS_CLI_H

#include <shmbus/shmbus.h>
#include <stdbool.h>

struct cli_verb {
	const char *name;
	const char *summary;
	int (*run)(int argc, char **argv); /* argv[0] is the verb */
};

/* Parse the --bus NAME / --bus=NAME / --help options common to all verbs,
 * removing them from argv. Returns the bus name (NULL: default) and sets
 * *help. */
const char *cli_common_options(int *argc, char **argv, bool *help);

/* Connect without starting a broker: inspecting a bus must not create one.
 * Prints the reason and returns NULL on failure. */
shmbus_bus *cli_connect(const char *bus);

int cli_fail(const char *verb, int rc, shmbus_bus *bus, const char *what);

int cmd_topics(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_stop(int argc, char **argv);
int cmd_rm(int argc, char **argv);   /* cmd_rm.c */
int cmd_record(int argc, char **argv); /* cmd_record.c */
int cmd_play(int argc, char **argv);   /* cmd_play.c */
int cmd_mcap(int argc, char **argv);   /* cmd_mcap.c */
int cmd_echo(int argc, char **argv); /* cmd_echo.c */
int cmd_hz(int argc, char **argv);   /* cmd_hz.c */
int cmd_bw(int argc, char **argv);
int cmd_pub(int argc, char **argv);  /* cmd_pub.c */

#endif
