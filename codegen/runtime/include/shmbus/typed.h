/*
 * shmbus/typed.h - protobuf-c messages on shmbus topics: the runtime of
 * the code protoc-gen-shmbus generates (libshmbus-typed, pkg-config
 * shmbus-typed). A generated `pkg__foo__publish()` is a thin wrapper
 * around shmbus_typed_publish() with Foo's shmbus_typed_type, so a fix
 * here reaches every generated file without regenerating it.
 *
 * Programs normally call the generated functions (codegen/README.md);
 * these are for code that handles many types through their descriptors.
 *
 * Conventions as in shmbus/shmbus.h: 0 (SHMBUS_OK) or a negative SHMBUS_E*
 * code; shmbus_errmsg() has the detail of every failure, the typed
 * layer's own refusals included (a NULL argument is SHMBUS_EINVAL, a
 * handle whose topic has another type SHMBUS_ETYPE). The typed layer adds
 * two meanings: SHMBUS_EBADMSG, a message's bytes do not
 * decode as the type (it is skipped, the next take goes on after it), and
 * SHMBUS_EINVAL for a message that is not an initialised message of the
 * type.
 *
 * libshmbus itself does not need protobuf-c; this library does.
 */
#ifndef SHMBUS_TYPED_H
#define SHMBUS_TYPED_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>
#include <shmbus/shmbus.h>

#if PROTOBUF_C_VERSION_NUMBER < 1003000
#error "shmbus/typed.h needs protobuf-c 1.3 or later"
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ types */

/* shmbus_typed_type.flags */
/* max_size is the type's exact largest encoding (the schema bounds it:
 * no repeated, string, bytes or map field anywhere in it). */
#define SHMBUS_TYPED_BOUNDED 0x1u
/* Unpack from a private copy of the slot, never from shared memory in
 * place: protobuf-c reads packed repeated varint fields twice, and bytes a
 * lapping publisher changed in between could overflow what the first
 * read sized (codegen/README.md). */
#define SHMBUS_TYPED_COPY_FIRST 0x2u
/* A message taken (shmbus_typed_take, shmbus_typed_unpack) with a NULL
 * allocator comes in one block, one malloc instead of one per piece, and
 * is freed with shmbus_typed_free(), which gives the block back at once;
 * protobuf_c_message_free_unpacked() must not free it. protoc-gen-shmbus
 * sets it: the __free it generates calls shmbus_typed_free(). Without it
 * (a type description written before) a NULL allocator means malloc per
 * piece, as protobuf-c does. */
#define SHMBUS_TYPED_ARENA 0x4u

/* What the runtime knows of a message type; protoc-gen-shmbus writes one
 * per type (`pkg__foo__shmbus_type`). */
struct shmbus_typed_type {
	/* sizeof(struct shmbus_typed_type) as the writer compiled it, so
	 * that a later library can tell which fields an older one set. */
	uint32_t size;
	uint32_t flags;                               /* SHMBUS_TYPED_* */
	const ProtobufCMessageDescriptor *descriptor; /* protoc-c's */
	/* Serialized google.protobuf.FileDescriptorSet of the type's file and
	 * its imports: stored with each topic of the type, so tools decode it
	 * without the .proto. */
	const uint8_t *schema;
	size_t schema_size;
	/* With SHMBUS_TYPED_BOUNDED: the most bytes a message of the type
	 * packs into (every field at its widest value). */
	uint32_t max_size;
};

/* The max message size of a topic created for a type that has no bound
 * (it has a repeated, string, bytes or map field), when the caller gives
 * none: a guess that holds a typical small message (an Imu with its frame
 * id and covariances packs into under 400 bytes) so that a thousand such
 * topics cost under 64 MB of shared memory (64 slots of 576 bytes each).
 * A publisher opened without a size grows the topic when a message does
 * not fit (SHMBUS_PUB_GROW; no message is lost), so the guess costs one
 * growth, never an error. Images, point clouds and scans are large by
 * nature: their publishers had better set max_message_size. */
#define SHMBUS_TYPED_DEFAULT_MAX_SIZE 512u

/* ---------------------------------------------------------------- topics */

/* Set opts->type_name and opts->schema to the type's. A max_message_size
 * of 0 becomes the type's: max_size for a bounded type (at least 1), else
 * SHMBUS_TYPED_DEFAULT_MAX_SIZE. Nothing else changes. */
void shmbus_typed_topic_options(const struct shmbus_typed_type *type,
				struct shmbus_topic_options *opts);

/* Open a publisher of `type` on `topic`, creating the topic from
 * topic_opts (NULL: defaults) when it does not exist, its max message
 * size from the type when topic_opts gives 0 (shmbus_typed_topic_options).
 * An existing topic must have the type (SHMBUS_ETYPE) and, when
 * topic_opts asks for a size or the type is bounded, room for that size:
 * SHMBUS_ELAYOUT, unless opts has SHMBUS_PUB_GROW, which grows the topic
 * to it. A publisher of an unbounded type opened without a size has
 * SHMBUS_PUB_GROW implied: a topic smaller than the default grows to it,
 * and any larger message grows the topic. opts: as shmbus_pub_open()
 * (NULL: defaults). SHMBUS_EVERSION if the libshmbus loaded is not the one this
 * library was built for; SHMBUS_EINVAL for options not initialised by
 * their _init() macro. Otherwise as shmbus_pub_open(). */
int shmbus_typed_pub_open(shmbus_bus *bus, const char *topic,
			  const struct shmbus_typed_type *type,
			  const struct shmbus_topic_options *topic_opts,
			  const struct shmbus_pub_options *opts, shmbus_pub **out);

/* Open a subscriber of `type` (topic_opts, opts NULL: defaults). With
 * opts->create_if_missing the topic is created from topic_opts for the
 * type, sized as for publishers. SHMBUS_ETYPE if the topic has another
 * type; SHMBUS_EVERSION and SHMBUS_EINVAL as for publishers. Otherwise as
 * shmbus_sub_open(). */
int shmbus_typed_sub_open(shmbus_bus *bus, const char *topic,
			  const struct shmbus_typed_type *type,
			  const struct shmbus_topic_options *topic_opts,
			  const struct shmbus_sub_options *opts, shmbus_sub **out);

/* ------------------------------------------------------------- publishing */

/* Pack msg straight into a loaned slot and publish it. A message that
 * packs into more than the topic's max message size first grows the
 * topic when pub has SHMBUS_PUB_GROW (shmbus_pub_reserve()). Refused
 * before anything is claimed, so that subscribers count nothing lost:
 * SHMBUS_EMSGSIZE if it does not fit and pub may not grow the topic,
 * SHMBUS_EINVAL if msg is NULL or not a message of `type`, SHMBUS_ETYPE
 * if pub's topic has another type. Otherwise as shmbus_pub_reserve(),
 * shmbus_pub_loan() and shmbus_pub_publish(); seq may be NULL. */
int shmbus_typed_publish(shmbus_pub *pub, const struct shmbus_typed_type *type,
			 const ProtobufCMessage *msg, uint64_t *seq);

/* A loaned message whose large bytes field is written in place. */
struct shmbus_typed_loan {
	uint8_t *field;    /* where the field's bytes go, in shared memory */
	size_t field_size; /* how many bytes the field has (as asked) */
	size_t size_;      /* private: the whole message's wire size */
};

/* Loan a slot holding `rest` (a message of `type` whose bytes field
 * `number` is empty) followed by field `number`'s key and the length
 * field_size: the slot holds ordinary protobuf, fields may come in any
 * order. Write field_size bytes at loan->field, then
 * shmbus_typed_publish_loan() or shmbus_pub_discard(). The topic grows,
 * and refusals come, as for shmbus_typed_publish(): before anything is
 * claimed (loan->field NULL). */
int shmbus_typed_loan_field(shmbus_pub *pub, const struct shmbus_typed_type *type,
			    const ProtobufCMessage *rest, uint32_t number, size_t field_size,
			    struct shmbus_typed_loan *loan);

/* Publish a loan from shmbus_typed_loan_field(); the loan is over either
 * way (on failure it is discarded). SHMBUS_EINVAL without a loan;
 * otherwise as shmbus_pub_publish(). */
int shmbus_typed_publish_loan(shmbus_pub *pub, struct shmbus_typed_loan *loan, uint64_t *seq);

/* ----------------------------------------------------------------- taking */

/* Take the next message, unpacked with allocator (NULL: malloc, in one
 * block when the type has SHMBUS_TYPED_ARENA); free it with
 * shmbus_typed_free() and the same type and allocator.
 * SHMBUS_EAGAIN: nothing new. SHMBUS_ELAPPED: it was overwritten while
 * read (counted lost). SHMBUS_EBADMSG: it does not decode as the type;
 * SHMBUS_ENOMEM: the allocator failed (either way the message is
 * skipped). SHMBUS_ETYPE: sub's topic has another type. SHMBUS_EINVAL: a
 * NULL argument; otherwise as shmbus_sub_view() (SHMBUS_ESTATE while a
 * view is open, SHMBUS_ENOTOPIC). info (may be NULL) gets seq, time and
 * loss. *out is NULL unless SHMBUS_OK. */
int shmbus_typed_take(shmbus_sub *sub, const struct shmbus_typed_type *type,
		      ProtobufCAllocator *allocator, ProtobufCMessage **out,
		      struct shmbus_msg_info *info);

/* Unpack size bytes at data (say, taken with shmbus_sub_take) as the way
 * shmbus_typed_take() unpacks them: allocator NULL means malloc, in one
 * block for a SHMBUS_TYPED_ARENA type. Free *out with shmbus_typed_free().
 * SHMBUS_EBADMSG: the bytes do not decode as the type; SHMBUS_ENOMEM;
 * SHMBUS_EINVAL: a NULL argument or a type description protoc-gen-shmbus
 * did not write. *out is NULL unless SHMBUS_OK. */
int shmbus_typed_unpack(const struct shmbus_typed_type *type, ProtobufCAllocator *allocator,
			const void *data, size_t size, ProtobufCMessage **out);

/* Free a message from shmbus_typed_take() or shmbus_typed_unpack() (NULL:
 * nothing) with the type and allocator it was taken with: one block at
 * once, or protobuf_c_message_free_unpacked() piece by piece. */
void shmbus_typed_free(const struct shmbus_typed_type *type, ProtobufCMessage *msg,
		       ProtobufCAllocator *allocator);

/* A message viewed in place: field points at its large bytes field
 * inside the topic's slot, valid until the view is released. */
struct shmbus_typed_view {
	const uint8_t *field;
	size_t field_size;
	struct shmbus_view view; /* the bus view: view.info has seq, time, loss */
};

/* View the next message in place: *out gets every field but bytes field
 * `number` (left empty), unpacked with allocator piece by piece (NULL:
 * malloc, whatever the type's flags; shmbus_typed_view_release() frees
 * it); view->field and view->field_size give that
 * field's bytes inside the slot, not copied (NULL, 0 when absent). Read
 * them, then shmbus_typed_view_release(): what was read is intact only if
 * that returns SHMBUS_OK. Errors as shmbus_typed_take(); on error no view
 * is held. */
int shmbus_typed_view_field(shmbus_sub *sub, const struct shmbus_typed_type *type,
			    uint32_t number, ProtobufCAllocator *allocator, ProtobufCMessage **out,
			    struct shmbus_typed_view *view);

/* End a view and free msg (may be NULL) with the allocator it was viewed
 * with. SHMBUS_OK if the data stayed intact, SHMBUS_ELAPPED if a publisher
 * overwrote it meanwhile (discard what you computed from it; it is
 * counted lost); SHMBUS_EINVAL (NULL sub or view) or SHMBUS_ESTATE (no
 * view open) as shmbus_sub_release(). */
int shmbus_typed_view_release(shmbus_sub *sub, ProtobufCMessage *msg,
			      ProtobufCAllocator *allocator, struct shmbus_typed_view *view);

#ifdef __cplusplus
}
#endif

#endif /* SHMBUS_TYPED_H */
