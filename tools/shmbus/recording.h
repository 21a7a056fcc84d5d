/*
 * recording.h - how `shmbus record` describes a topic in an MCAP file and
 * `shmbus play` reads it back: channel metadata keys and the message
 * encodings of topics that are not protobuf with a schema.
 */
#ifndef SHMBUS_CLI_RECORDING_H
#define SHMBUS_CLI_RECORDING_H

/* Channel metadata written by `record`, read by `play` to recreate the
 * topic as it was (type name, layout). */
#define REC_KEY_TYPE "shmbus.type_name"
#define REC_KEY_MAX_SIZE "shmbus.max_message_size"
#define REC_KEY_SLOTS "shmbus.slot_count"
#define REC_KEY_HISTORY "shmbus.history"

/* Message encodings of topics that carry no protobuf schema (MCAP asks
 * custom encodings to start with "x-"): untyped bytes, and a typed topic
 * whose publisher stored no schema (the bytes are its type, named in the
 * channel's metadata, but nothing in the file says how to decode them). */
#define REC_RAW_ENCODING "x-shmbus-raw"
#define REC_NOSCHEMA_ENCODING "x-shmbus-typed-noschema"

/* The recording's time on a topic (`play --clock`): a message of this
 * type (shmbus.msgs.Time, seconds and nanoseconds) at the given rate. */
#define REC_CLOCK_TOPIC "/clock"

#endif
