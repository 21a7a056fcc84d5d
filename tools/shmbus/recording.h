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

/* A channel of another encoding (ROS 2's cdr with a ros2msg schema, json,
 * ...) travels through the bus as a topic whose schema blob is this
 * envelope: a magic no FileDescriptorSet starts with (a 0 byte is no
 * protobuf tag), then the schema's encoding, the message encoding and the
 * schema's name, each ending in a 0 byte, then the schema's bytes. `play`
 * wraps, `record` unwraps, so such a recording records again as it was. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define REC_FOREIGN_MAGIC "\0shmbus-mcap-channel\0"
#define REC_FOREIGN_MAGIC_SIZE 21

struct rec_foreign {
	const char *schema_encoding, *message_encoding, *schema_name; /* into the blob */
	const uint8_t *data;
	size_t size;
};

/* The envelope for a channel, malloc'd into *out; false if out of memory. */
bool rec_foreign_wrap(const struct rec_foreign *f, uint8_t **out, size_t *len);
/* Whether blob is an envelope; *f points into it. */
bool rec_foreign_unwrap(const void *blob, size_t len, struct rec_foreign *f);
/* A bus type name for the channel's schema name ("std_msgs/msg/String" ->
 * "std_msgs.msg.String"), or for its encoding when it has no schema. */
void rec_foreign_type(const struct rec_foreign *f, char *buf, size_t len);

#endif
