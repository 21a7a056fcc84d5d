/*
 * yaml.h - the part of YAML that people type on a command line for a
 * message (`shmbus pub imu shmbus.msgs.Imu "header: {frame_id: imu}"`, as
 * `ros2 topic pub` takes it), read into the JSON value pbjson encodes.
 *
 * Read: block mappings (`key: value`, nesting by indentation with spaces),
 * block sequences (`- item`), flow mappings and sequences (`{a: 1, b: [1,
 * 2]}`), plain, 'single-' and "double-quoted" scalars, comments. Plain
 * scalars become null (null, ~, empty), booleans (true/false), integers,
 * floats (.inf, -.inf and .nan become "Infinity", "-Infinity", "NaN" as
 * protobuf's JSON mapping spells them) or strings. Refused, with the line:
 * tabs in indentation, anchors and aliases, tags, block scalars (| and >),
 * several documents, duplicate keys, nesting deeper than 64.
 */
#ifndef SHMBUS_CLI_YAML_H
#define SHMBUS_CLI_YAML_H

#include <jansson.h>
#include <stddef.h>

/* The value of `text`, or NULL with the reason (naming the line) in err. */
json_t *yaml_parse(const char *text, char *err, size_t errlen);

#endif
