/*
 * layout.h - the shared-memory layout of a bus: the one contract between
 * every process on it (publishers, subscribers, the broker, the tools).
 *
 * The rule that keeps every guarantee true: a process writes only what is
 * its own. So each object below has one class of writer, and the broker
 * hands each client descriptors of exactly the access it needs (read-only
 * descriptors cannot be mapped writable). Every object is a memfd made by
 * the broker and sealed against shrinking and growing, so no holder of a
 * writable descriptor can truncate it under the others' mappings (SIGBUS).
 * A companion process of the broker (the keeper) holds copies of the
 * descriptors, so a restarted broker takes everything back.
 *
 *   per bus
 *     bus page   broker writes; clients read. The topics generation (a
 *                futex word that moves when topics come and go).
 *     wake board clients write. One line per topic: "a subscriber sleeps"
 *                and the wake-up epoch subscribers sleep on (one line, so
 *                a wake-up moves one line between cores, not two).
 *                Scribbled by a hostile client, it costs others a bounded
 *                delay (sleeps are capped), never a message or a hang.
 *   per topic
 *     meta       broker writes; clients read. What the topic is (name,
 *                type, layout, flags, incarnation), its state (open,
 *                removed), who holds which publisher line (pid and start
 *                time: publishers check a slot holder's liveness here when
 *                no broker runs), who subscribes, then the schema.
 *     data       publishers write, subscribers read. The sequence counter,
 *                then the slots.
 *   per client connection
 *     page       that client writes; the broker reads (for `shmbus info`).
 *                One line per publisher or subscriber handle: its counters.
 *
 * Nothing that decides anything for another process is in an object that
 * process cannot trust: a client uses the layout its broker told it at
 * open (and checked against the meta), never a value read back from data.
 *
 * Changelog of SEG_LAYOUT_VERSION (bump on any incompatible change):
 *   1  first layout.
 *   2  holder in the slot state; per-subscriber waiting and rejected.
 *   3  futex word carries a SLEEPING bit; no shared waiter count.
 *   4  schema versions seen, in the control area.
 *   5  the control area is split by writer: meta (broker), wake board
 *      (clients, per bus), pages (per client); the data segment keeps no
 *      name, type or layout; sealed memfds; a ring can be sealed (removed
 *      or grown); tags bind the bus, topic incarnation and publisher.
 *   6  the wake-up epoch moves from the data to the topic's wake-board
 *      line, beside the flag that says someone sleeps.
 */
#ifndef SHMBUS_LAYOUT_H
#define SHMBUS_LAYOUT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define SHMBUS_CACHE_LINE 64
#define SHMBUS_PAGE 4096u

#define META_MAGIC 0x4154454d53554253ull /* "SBUSMETA" little-endian */
#define BUS_MAGIC 0x5355425355424d53ull  /* "SMBUSBUS" little-endian */
#define SEG_LAYOUT_VERSION 6u

#define SEG_TOPIC_MAX 256 /* bytes, with the NUL */
#define SEG_TYPE_MAX 256
#define SEG_MAX_PUBS 64 /* fits the 6 holder bits of a slot state */
#define SEG_MAX_SUBS 256
#define SEG_MAX_SLOTS (1u << 20)
#define SEG_MAX_MESSAGE (256u << 20) /* 256 MiB */
#define SEG_MAX_SCHEMA (8u << 20)
#define SEG_MAX_SCHEMAS 8
#define SEG_INCARNATION_BYTES 16
#define BUS_MAX_TOPICS 65536u /* lines of the wake board */

/* Defaults for a topic created without a layout (see seg_params_normalize). */
#define SEG_DEFAULT_MESSAGE 4096u
#define SEG_DEFAULT_SLOTS 64u
#define SEG_MIN_SLOTS 4u
#define SEG_RING_BUDGET (4u << 20)

/* ---------------------------------------------------------------- slots */

/*
 * Slot state, one 64-bit word per slot: ((seq + 1) << 8) | holder << 2 |
 * flags, 0 when the slot was never claimed. It is at once the seqlock, the
 * ownership of the slot's payload, and who owns it.
 *
 *              claim (CAS, writer n)          commit (CAS, writer n)
 *   (m, -) ----------------------------> (n, OCC/h) ---------------> (n, -)
 *     |                                     |   another writer k > n found the
 *     |  writer k finds OCC held by a live  |   slot held: (k, OCC/h|SKIP); the
 *     |  older writer: burns k              v   holder's commit then fails and
 *     +----------------------------> (k, OCC/h|SKIP) --holder ends--> (k, SKIP)
 *
 * OCC/h: publisher line h is writing the payload; only one writer at a time
 *      may hold a slot, so a slow writer never has its slot written under it.
 * SKIP: sequence number `seq` will never be published in this slot.
 * A writer that finds OCC held by a line whose process is dead (the meta's
 * publisher table and /proc say so) takes the slot over: a dead publisher
 * costs one message, once. The broker releases a dead holder's slots at
 * once when it sees a client go.
 * A reader looking for n sees: seq < n nothing yet; seq > n lapped;
 * seq == n: committed (read it), OCC (in progress), SKIP (lost). Readers
 * never write the slot: a number handed out but not published within a
 * subscriber's stall timeout is skipped by that subscriber alone.
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
	_Atomic int64_t publish_ns;    /* CLOCK_REALTIME, or as the publisher gave it */
	uint8_t reserved[8];
	uint8_t tag[32];               /* integrity tag, when the topic has one */
};
_Static_assert(sizeof(struct slot_header) == SHMBUS_CACHE_LINE, "slot header is one line");

/* ----------------------------------------------------------------- data */

/* The broker sets it in next_seq when it closes the ring (the topic was
 * removed or grew): a claim that returns it claims nothing. */
#define DATA_SEALED (1ull << 63)

struct data_header {
	/* Publishers claim sequence numbers here with one atomic add; alone
	 * on its line so that nothing else bounces with it. */
	_Alignas(SHMBUS_CACHE_LINE) _Atomic uint64_t next_seq;
	uint8_t pad[SHMBUS_CACHE_LINE - sizeof(uint64_t)];
};
/* Slots start at the first page boundary after the header. */
#define DATA_SLOTS_OFFSET SHMBUS_PAGE
_Static_assert(sizeof(struct data_header) <= DATA_SLOTS_OFFSET, "data header fits its page");

/* ----------------------------------------------------------------- meta */

enum meta_state {
	META_OPEN = 1,
	META_REMOVED = 2, /* removed: the ring is sealed, no successor */
	META_GROWN = 3,   /* the ring is sealed; a larger successor carries
	                     the topic on from sealed_at (ask the broker) */
};

/* A publisher line: who holds it (pid 0: free). Written by the broker. */
struct meta_pub {
	_Atomic int32_t pid;
	_Atomic uint32_t publisher_id;
	_Atomic uint64_t start_time;   /* /proc/PID/stat starttime, against pid reuse */
	_Atomic uint32_t page;         /* its counters: client page id and line */
	_Atomic uint32_t line;
};

/* A subscriber: whose, and where its counters are (pid 0: free). */
struct meta_sub {
	_Atomic int32_t pid;
	_Atomic uint32_t page;
	_Atomic uint64_t start_time;
	_Atomic uint32_t line;
	uint32_t reserved;
};

struct meta_header {
	/* Written last by the broker (release); a reader checks it first. */
	_Atomic uint64_t magic;
	uint32_t layout_version;
	uint32_t header_size;      /* sizeof(struct meta_header) */
	uint32_t topic_id;
	uint32_t flags;            /* SHMBUS_TOPIC_* */
	uint8_t incarnation[SEG_INCARNATION_BYTES]; /* random, per creation */
	int64_t created_ns;
	uint32_t slot_count;       /* power of two */
	uint32_t slot_size;        /* header + payload capacity, multiple of 64 */
	uint32_t max_message_size;
	uint32_t history;
	uint32_t board_line;       /* this topic's line of the wake board */
	uint32_t creator_uid;
	uint32_t generation;       /* 0, then +1 for each successor ring */
	uint32_t reserved0;
	uint64_t base_seq;         /* the first sequence number of this ring */
	uint64_t meta_size;        /* bytes of this object */
	uint64_t data_size;        /* bytes of the data object */
	uint64_t schema_offset;
	uint64_t schema_size;
	char name[SEG_TOPIC_MAX];  /* as created ("/imu" or "imu") */
	char type_name[SEG_TYPE_MAX];
	/* FNV-1a of every byte above except magic: a broker that takes the
	 * topic back after a restart checks it. */
	uint64_t header_check;

	/* What changes, written by the broker only. */
	_Alignas(SHMBUS_CACHE_LINE) _Atomic uint32_t state; /* enum meta_state */
	_Atomic uint32_t last_publisher_id;
	_Atomic uint64_t sealed_at;  /* first sequence number not in this ring */
	/* Distinct schemas publishers brought, and the FNV-1a hashes of the
	 * first SEG_MAX_SCHEMAS: the broker stores a hash, then the count with
	 * release; whoever reads the table loads the count with acquire first
	 * (the broker, and the broker that takes the topic over after a
	 * restart; clients learn the count from the topic info reply). */
	_Atomic uint32_t schema_versions;
	uint32_t reserved;
	_Atomic uint64_t schema_hashes[SEG_MAX_SCHEMAS];
	_Alignas(SHMBUS_CACHE_LINE) struct meta_pub pubs[SEG_MAX_PUBS];
	struct meta_sub subs[SEG_MAX_SUBS];
};

/* -------------------------------------------------------- pages, board */

/* A client's counters for one handle; written by that client only. */
struct client_line {
	_Alignas(SHMBUS_CACHE_LINE) _Atomic uint64_t next_seq; /* subscribers: position */
	_Atomic uint64_t count;    /* published / received */
	_Atomic uint64_t lost;     /* subscribers: lost; publishers: skipped */
	_Atomic uint64_t rejected; /* subscribers: failed the integrity check;
	                              publishers: superseded */
	_Atomic uint32_t waiting;  /* subscribers: asleep in a wait */
	uint8_t pad[SHMBUS_CACHE_LINE - 36];
};
_Static_assert(sizeof(struct client_line) == SHMBUS_CACHE_LINE, "one line per handle");
#define PAGE_LINES 64u
#define PAGE_SIZE_BYTES (PAGE_LINES * SHMBUS_CACHE_LINE)

/* The wake board: one line per topic (meta board_line). A subscriber about
 * to sleep sets `sleeping`, reads `epoch` and sleeps on it (futex); a
 * publisher that commits and finds `sleeping` set clears it, moves the
 * epoch on and makes the one wake-up call. Both words on one line: the
 * sleeper's store brings the line to its core with the epoch it reads
 * next, and the publisher's clear with the epoch it moves. */
struct board_line {
	_Alignas(SHMBUS_CACHE_LINE) _Atomic uint32_t sleeping;
	_Atomic uint32_t epoch;
	uint8_t pad[SHMBUS_CACHE_LINE - 2 * sizeof(uint32_t)];
};
#define BOARD_SIZE ((size_t)BUS_MAX_TOPICS * SHMBUS_CACHE_LINE)

/* The bus page, written by its broker only. */
#define BUS_LAYOUT_VERSION 2u
#define BUS_PAGE_SIZE SHMBUS_PAGE

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
