/*
 * layout.h - the shared-memory layout of a topic: the one contract between
 * every process on a bus (publishers, subscribers, the broker, the tools).
 *
 * A topic is two shared-memory files:
 *
 *   data segment  (publishers map it read-write, subscribers read-only)
 *     page 0..     struct seg_header, then the schema blob
 *     slots_offset slot_count slots of slot_size bytes:
 *                    struct slot_header (one cache line), then the payload
 *
 *   control area  (every client maps it read-write)
 *     struct ctl_header: the futex word and waiter count, then one cache line
 *     per publisher and per subscriber (their counters, for `shmbus info`).
 *
 * Subscribers never write the data segment: what they must write (waiter
 * count, their own position and counters) lives in the control area, so the
 * kernel can map the data read-only for them.
 *
 * Changelog of SEG_LAYOUT_VERSION (bump on any incompatible change):
 *   1  first layout.
 *   2  holder in the slot state; per-subscriber waiting and rejected.
 *   3  futex word carries a SLEEPING bit; no shared waiter count.
 *   4  schema versions seen, in the control area.
 */
#ifndef SHMBUS_LAYOUT_H
#define SHMBUS_LAYOUT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define SHMBUS_CACHE_LINE 64

#define SEG_MAGIC 0x5441445355424d53ull /* "SMBUSDAT" little-endian */
#define CTL_MAGIC 0x4c54435355424d53ull /* "SMBUSCTL" little-endian */
#define SEG_LAYOUT_VERSION 4u
#define FUTEX_SLEEPING 1u

#define SEG_TOPIC_MAX 256 /* bytes, with the NUL */
#define SEG_TYPE_MAX 256
#define SEG_MAX_PUBS 64 /* fits the 6 holder bits of a slot state */
#define SEG_MAX_SUBS 256
#define SEG_MAX_SLOTS (1u << 20)
#define SEG_MAX_MESSAGE (256u << 20) /* 256 MiB */
#define SEG_MAX_SCHEMA (8u << 20)
#define CTL_MAX_SCHEMAS 8
/* Defaults for a topic created without a layout (see seg_params_normalize). */
#define SEG_DEFAULT_MESSAGE 4096u
#define SEG_DEFAULT_SLOTS 64u
#define SEG_MIN_SLOTS 4u
#define SEG_RING_BUDGET (4u << 20)

/*
 * Slot state, one 64-bit word per slot: ((seq + 1) << 8) | holder << 2 |
 * flags, 0 when the slot was never claimed. It is at once the seqlock, the
 * ownership of the slot's payload, and who owns it.
 *
 *              claim (CAS, writer n)          commit (CAS, writer n)
 *   (m, -) ----------------------------> (n, OCC/h) ---------------> (n, -)
 *     |                                     |   another writer k > n found the
 *     |  writer k finds OCC held by an      |   slot held: (k, OCC/h|SKIP); the
 *     |  older writer: burns k              v   holder's commit then fails and
 *     +----------------------------> (k, OCC/h|SKIP) --holder ends--> (k, SKIP)
 *
 * OCC/h: publisher line h of the control area is writing the payload; only
 *      one writer at a time may hold a slot, so a slow writer never has its
 *      slot written under it, and anyone can check whether h is still alive.
 * SKIP: sequence number `seq` will never be published in this slot.
 * A reader looking for n sees: seq < n nothing yet; seq > n lapped;
 * seq == n: committed (read it), OCC (in progress), SKIP (lost).
 * If n stays "nothing yet" or "in progress" past the subscriber's stall
 * timeout, the reader marks n SKIP itself, and releases OCC whose holder
 * is dead (the broker does the same at once when it sees a publisher die).
 */
#define SLOT_OCC 1ull
#define SLOT_SKIP 2ull
#define SLOT_HOLDER_SHIFT 2
#define SLOT_HOLD_BITS 0xFDull /* OCC and the holder */
#define SLOT_SEQ_SHIFT 8
#define SLOT_STATE(seq, bits) ((((uint64_t)(seq) + 1) << SLOT_SEQ_SHIFT) | (bits))
#define SLOT_HELD(seq, holder) \
	SLOT_STATE(seq, SLOT_OCC | ((uint64_t)(holder) << SLOT_HOLDER_SHIFT))
#define SLOT_HOLDER(state) ((uint32_t)(((state) >> SLOT_HOLDER_SHIFT) & 63))
/* Sequence number of a state; UINT64_MAX ("before 0") for a fresh slot. */
#define SLOT_SEQ(state) (((state) >> SLOT_SEQ_SHIFT) - 1)

struct slot_header {
	_Atomic uint64_t state;
	_Atomic uint32_t size;         /* payload bytes */
	_Atomic uint32_t publisher_id;
	_Atomic int64_t publish_ns;    /* CLOCK_REALTIME */
	uint8_t reserved[8];
	uint8_t tag[32];               /* integrity tag, when the topic has one */
};
_Static_assert(sizeof(struct slot_header) == SHMBUS_CACHE_LINE, "slot header is one line");

struct seg_header {
	/* Written last by the creator (release); a reader checks it first. */
	_Atomic uint64_t magic;
	uint32_t layout_version;
	uint32_t header_size;     /* sizeof(struct seg_header) */
	uint64_t segment_size;    /* bytes the file must have */
	uint32_t slot_count;      /* power of two */
	uint32_t slot_size;       /* header + payload capacity, multiple of 64 */
	uint32_t max_message_size;
	uint32_t history;
	uint32_t flags;
	uint32_t topic_id;
	uint64_t schema_offset;
	uint64_t schema_size;
	uint64_t slots_offset;    /* page aligned */
	int64_t created_ns;
	char topic[SEG_TOPIC_MAX];
	char type_name[SEG_TYPE_MAX];
	/* FNV-1a of every byte above except magic: catches a corrupt header. */
	uint64_t header_check;
	/* Publishers claim sequence numbers here with one atomic add; alone on
	 * its cache line so that nothing else bounces with it. */
	_Alignas(SHMBUS_CACHE_LINE) _Atomic uint64_t next_seq;
	uint8_t pad_next_seq[SHMBUS_CACHE_LINE - sizeof(uint64_t)];
};

struct ctl_pub {
	_Alignas(SHMBUS_CACHE_LINE) _Atomic int32_t pid;          /* 0: free. Set by the broker. */
	_Atomic uint32_t publisher_id;
	_Atomic uint64_t start_time;  /* /proc/PID/stat starttime, against pid reuse */
	_Atomic uint64_t published;
	_Atomic uint64_t skipped;
	_Atomic uint64_t superseded;
	uint8_t pad[SHMBUS_CACHE_LINE - 40];
};
_Static_assert(sizeof(struct ctl_pub) == SHMBUS_CACHE_LINE, "one line per publisher");

struct ctl_sub {
	_Alignas(SHMBUS_CACHE_LINE) _Atomic int32_t pid;
	/* Non-zero while this subscriber sleeps in a wait (for `shmbus info`;
	 * written by the subscriber only, on its own line). */
	_Atomic uint32_t waiting;
	_Atomic uint64_t start_time;
	_Atomic uint64_t next_seq;
	_Atomic uint64_t received;
	_Atomic uint64_t lost;
	_Atomic uint64_t rejected; /* failed the integrity check */
	uint8_t pad[SHMBUS_CACHE_LINE - 48];
};
_Static_assert(sizeof(struct ctl_sub) == SHMBUS_CACHE_LINE, "one line per subscriber");

struct ctl_header {
	_Atomic uint64_t magic;
	uint32_t layout_version;
	uint32_t topic_id;
	uint32_t max_pubs;
	uint32_t max_subs;
	/* Publisher ids handed out so far on this topic (broker only). */
	_Atomic uint32_t last_publisher_id;
	/* Schemas its publishers brought: the same type may evolve (a field
	 * added), as protobuf allows. Distinct FNV-1a hashes, the first
	 * CTL_MAX_SCHEMAS kept; written by the broker only. */
	uint32_t schema_versions;
	uint64_t schema_hashes[CTL_MAX_SCHEMAS];
	/* The futex word subscribers sleep on: (epoch << 1) | SLEEPING. A
	 * subscriber about to sleep sets SLEEPING; a publisher that commits
	 * and finds it set moves the epoch on, clears it and makes the one
	 * wake-up call. So a publisher makes the system call only when someone
	 * sleeps, once per sleep rather than once per message; and a
	 * subscriber that died asleep costs one needless wake, not one per
	 * message forever. */
	_Alignas(SHMBUS_CACHE_LINE) _Atomic uint32_t futex;
	uint8_t pad_futex[SHMBUS_CACHE_LINE - 4];
	struct ctl_pub pubs[SEG_MAX_PUBS];
	struct ctl_sub subs[SEG_MAX_SUBS];
};

/*
 * The bus page: one per bus, written by its broker only and mapped
 * read-only by every client (handed over with the HELLO reply). A client
 * waiting for topics to come and go sleeps on topics_gen.
 */
#define BUS_MAGIC 0x5355425355424d53ull /* "SMBUSBUS" little-endian */
#define BUS_LAYOUT_VERSION 1u
#define BUS_PAGE_SIZE 4096u

struct bus_page {
	/* Written last by the broker that formats the page (release). */
	_Atomic uint64_t magic;
	uint32_t layout_version;
	uint32_t reserved;
	/* Moves on (+1) whenever a topic is created or removed; the broker
	 * then wakes every sleeper on it (futex). */
	_Alignas(SHMBUS_CACHE_LINE) _Atomic uint32_t topics_gen;
};
_Static_assert(sizeof(struct bus_page) <= BUS_PAGE_SIZE, "bus page fits a page");

#endif /* SHMBUS_LAYOUT_H */
