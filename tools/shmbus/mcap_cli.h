/*
 * mcap_cli.h - what the recording verbs (record, play, mcap) share:
 * connecting with autostart, clocks, number parsing, a stop flag set by
 * SIGINT/SIGTERM, and the channel metadata keys a recording carries.
 */
#ifndef SHMBUS_MCAP_CLI_H
#define SHMBUS_MCAP_CLI_H

#include <shmbus/shmbus.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

/* Channel metadata written by `record`, read by `play` to recreate the
 * topic as it was (type name, layout). */
#define MCAP_KEY_TYPE "shmbus.type_name"
#define MCAP_KEY_MAX_SIZE "shmbus.max_message_size"
#define MCAP_KEY_SLOTS "shmbus.slot_count"
#define MCAP_KEY_HISTORY "shmbus.history"
/* Message encoding of untyped topics (raw bytes; MCAP asks custom
 * encodings to start with "x-"). */
#define MCAP_RAW_ENCODING "x-shmbus-raw"

/* Connect, starting the broker if none runs (record and play are
 * ordinary clients). Prints the reason and returns NULL on failure. */
shmbus_bus *mcap_cli_connect(const char *bus_name, const char *verb);

int64_t mcap_cli_monotonic_ns(void);
int64_t mcap_cli_realtime_ns(void);

/* A finite number >= 0 (seconds, MiB, rates); false if s is not one. */
bool mcap_cli_parse_nonneg(const char *s, double *out);

/* Installs SIGINT/SIGTERM handlers (no SA_RESTART, so waits return) that
 * set mcap_cli_stop. */
extern volatile sig_atomic_t mcap_cli_stop;
void mcap_cli_catch_signals(void);

#endif
