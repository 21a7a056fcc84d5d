/*
 * bridge.h - what the parts of shmbus-bridge share: the options, the
 * counters the statistics line prints, and the table of publishers the
 * bridge itself opened on the bus (so it never sends their messages out
 * again).
 *
 * Threads: the out thread (bus -> DDS, out.c) owns the bus subscribers and
 * the DDS writers; the in thread (DDS -> bus, in.c) owns the DDS readers and
 * the bus publishers; the main thread (main.c) prints statistics and stops
 * both. They share only the counters (atomics) and the own-publisher table
 * (a mutex).
 */
#ifndef SHMBUS_BRIDGE_H
#define SHMBUS_BRIDGE_H

#include <dds/dds.h>
#include <pthread.h>
#include <shmbus/shmbus.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "now.h"

#define BRIDGE_MAX_PATTERNS 64
#define BRIDGE_MAX_TOPICS 128 /* shmbus waitsets hold 128 subscribers */
#define BRIDGE_MAX_PEERS 32   /* bridges a new topic's writer waits for */

struct bridge_counters {
	/* Written by one thread, read by the statistics line: relaxed is
	 * enough, nothing else is published through them. */
	_Atomic uint64_t out_msgs, out_bytes;
	_Atomic uint64_t in_msgs, in_bytes;
	_Atomic uint64_t bus_lost;      /* lapped on our bus before we sent them */
	_Atomic uint64_t write_failed;  /* dds_write refused or timed out */
	_Atomic uint64_t match_timeouts; /* new topics sent before every bridge
	                                    that takes them had matched */
	_Atomic uint64_t dds_lost;      /* DDS SAMPLE_LOST, summed over readers */
	_Atomic uint64_t dds_rejected;  /* DDS SAMPLE_REJECTED, summed */
	_Atomic uint64_t dds_gaps;      /* holes in bridge_seq: lost between bridges */
	_Atomic uint64_t src_lost;      /* lost on the source bus, as senders report */
	_Atomic uint64_t marked_lost;   /* sequence numbers skipped on our bus so
	                                   its subscribers count what never came */
	_Atomic uint64_t malformed;     /* envelopes refused (never published) */
	_Atomic uint64_t publish_failed; /* bus refused an envelope's payload */
	_Atomic uint64_t topics_out, topics_in; /* bridged now */
	_Atomic uint64_t in_peers;      /* other bridges that take topics in */
};

struct bridge {
	const char *bus_name;
	shmbus_bus *bus;
	const char *out_patterns[BRIDGE_MAX_PATTERNS];
	size_t n_out;
	const char *in_patterns[BRIDGE_MAX_PATTERNS];
	size_t n_in;
	bool reliable;
	int32_t depth;
	int64_t match_wait_ns; /* how long a new topic waits for far readers */
	bool verbose;

	dds_entity_t participant;
	dds_entity_t announce_topic;
	uint64_t id;          /* this bridge process, random */
	char source[160];     /* "host:bus" */

	atomic_bool stop;
	struct bridge_counters c;

	/* Publishers the in thread opened: (topic, publisher id). */
	pthread_mutex_t own_lock;
	struct { char topic[256]; uint32_t publisher_id; } own[BRIDGE_MAX_TOPICS];
	size_t n_own;
};

/* A topic's name without the leading '/' a ROS-style name may have: "/imu"
 * and "imu" are the same bus topic. */
const char *bridge_topic_canon(const char *topic);
bool bridge_topic_eq(const char *a, const char *b);

/* glob match of a bus topic name against the --out or --in patterns (a
 * leading '/' counts on neither side). */
bool bridge_match(const char *const *patterns, size_t n, const char *topic);

/* DDS topic name carrying a bus topic: "shmbus/" + the canonical name with
 * every byte outside [A-Za-z0-9/] written as _XX (hex). false if too long. */
bool bridge_dds_name(const char *topic, char *out, size_t cap);

/* Whether bytes are well-formed protobuf wire format at the top level:
 * valid keys and wire types, lengths within the buffer. */
bool bridge_wire_ok(const uint8_t *p, size_t n);

/* QoS of the data topics (reliability and depth from the options). */
dds_qos_t *bridge_data_qos(const struct bridge *b, bool reader);
/* QoS of the announce topic: reliable, transient-local, last per key. */
dds_qos_t *bridge_announce_qos(bool reader);

/* The bridge's publisher on `topic` is now this one. */
void bridge_own_set(struct bridge *b, const char *topic, uint32_t publisher_id);
bool bridge_own_is(struct bridge *b, const char *topic, uint32_t publisher_id);
/* Whether the bridge publishes on `topic` itself (it is bridged both ways). */
bool bridge_own_has(struct bridge *b, const char *topic);

/* Whether this process has a publisher (else a subscriber) on what the bus
 * now has under `topic`: false once the topic is gone, or was made again
 * since ours was opened. scratch holds cap entries. */
bool bridge_topic_has_me(shmbus_bus *bus, const char *topic, bool publisher,
			 struct shmbus_client_info *scratch, size_t cap);

/* Identities in DDS user data (peers.c). */
void bridge_peer_qos_in(dds_qos_t *q, const struct bridge *b, bool with_patterns);
void bridge_peer_qos_out(dds_qos_t *q, const struct bridge *b, const uint64_t *waited, size_t n);
/* Other bridges whose --in patterns take `topic` (all of them when topic
 * is NULL), from the readers announce_writer matched: up to cap ids. */
size_t bridge_peers_taking(const struct bridge *b, dds_entity_t announce_writer, const char *topic,
			   uint64_t *ids, size_t cap);
/* Whether each bridge in ids[0..n) has a data reader matched with writer. */
bool bridge_peers_matched(dds_entity_t writer, const uint64_t *ids, size_t n);
/* Whether the matched writer (a publication handle of reader) names this
 * bridge among those it waited for before its first message. */
bool bridge_peer_waited_for(const struct bridge *b, dds_entity_t reader, dds_instance_handle_t writer);
/* Whether the writer is still matched with reader. */
bool bridge_peer_matched(dds_entity_t reader, dds_instance_handle_t writer);

void *bridge_out_thread(void *arg);
void *bridge_in_thread(void *arg);

void bridge_log(const struct bridge *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif
