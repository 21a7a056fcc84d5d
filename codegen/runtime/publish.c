/*
 * publish.c - typed publishing: pack.c packs a message (the bytes
 * protobuf-c would write) into a loaned slot, or lays out all but one
 * large bytes field and leaves that field's bytes to the caller to write
 * in place.
 *
 * Every refusal (too big, wrong message, wrong topic) happens before the
 * loan: a loan claims a sequence number, and a number given back
 * unpublished is counted lost by every subscriber.
 */
#include "internal.h"

#include <string.h>

/* Make room for a message of `size` bytes before the loan: a publisher
 * with SHMBUS_PUB_GROW grows the topic; one without learns
 * SHMBUS_EMSGSIZE (shmbus_errmsg() says by how much) while nothing is
 * claimed yet. shmbus_pub_reserve() also looks for a larger ring another
 * publisher grew the topic into, which a message too large for this one
 * may fit. */
static int room(shmbus_pub *pub, size_t size)
{
	return size > shmbus_pub_max_message_size(pub) ? shmbus_pub_reserve(pub, size) : SHMBUS_OK;
}

/* Why a message of `type` may not go to pub (the error text set), or
 * SHMBUS_OK. */
static int check(const char *fn, shmbus_pub *pub, const struct shmbus_typed_type *type,
		 const ProtobufCMessage *msg)
{
	if (!typed_type_valid(type))
		return typed_fail_type(fn, type);
	if (!pub || !msg)
		return shmbus_fail(SHMBUS_EINVAL, "%s: NULL %s", fn, pub ? "message" : "publisher");
	if (msg->descriptor != type->descriptor)
		return shmbus_fail(SHMBUS_EINVAL, "%s: the message is not a %s (%s)", fn,
				   type->descriptor->name,
				   msg->descriptor ? msg->descriptor->name : "not initialised");
	/* A publisher handle of another type would write this message into
	 * a topic that decodes it as something else. */
	if (!typed_pub_has_type(pub, type))
		return typed_fail_other_type(shmbus_pub_topic(pub), shmbus_pub_type_name(pub),
					     type);
	return SHMBUS_OK;
}

/* The loan's ring is never smaller than what room() made sure of. */
static int loan_too_small(shmbus_pub *pub, size_t size, size_t capacity)
{
	(void)shmbus_pub_discard(pub);
	return shmbus_fail(SHMBUS_EMSGSIZE, "a %zu-byte message in a %zu-byte slot of topic '%s'",
			   size, capacity, shmbus_pub_topic(pub));
}

/* A message whose bound is at most this is packed on the stack and then
 * copied into its slot. */
#define STAGE_MAX 2048

/* Loans a slot of pub and publishes the `size` bytes packed at `packed`
 * (NULL: msg is packed straight into the slot). */
static int loan_and_publish(shmbus_pub *pub, const ProtobufCMessage *msg, size_t bound,
			    size_t size, const uint8_t *packed, uint64_t *seq)
{
	size_t capacity;
	void *buf;
	int rc = shmbus_pub_loan(pub, &buf, &capacity);

	if (rc != SHMBUS_OK)
		return rc;
	if (packed) {
		if (size > capacity) /* the topic changed since the check */
			return loan_too_small(pub, size, capacity);
		memcpy(buf, packed, size);
	} else {
		if (bound > capacity) {
			/* The topic changed since the check (or the bound was
			 * not the exact size): what the message really needs
			 * decides. */
			if (!size)
				size = protobuf_c_message_get_packed_size(msg);
			if (size > capacity)
				return loan_too_small(pub, size, capacity);
		}
		typed_prefetch(buf, bound, true);
		size = typed_pack(msg, buf);
	}
	rc = shmbus_pub_publish(pub, size, seq);
	if (rc != SHMBUS_OK)
		(void)shmbus_pub_discard(pub);
	return rc;
}

/* A message whose bound is at most STAGE_MAX is packed on the stack
 * before the loan and copied into its slot. A packer writes a message a
 * field at a time, and each line of a slot that the subscriber's core
 * read last is a wait of its own for that line, even after a prefetch for
 * writing: an Imu packed into its slot took 1.15 us ping-pong against
 * 0.44 us untyped; packed on the stack and copied, as the untyped send
 * does, 0.89-0.91 us (`shmbus-bench --only typed_imu_take,typed_imu_raw`,
 * BENCHMARKS.md). Packed before the loan, the slot is held (and the
 * header line a subscriber polls is written twice) only for the copy. A
 * larger message is packed in place, its first lines asked for ahead. */
int shmbus_typed_publish(shmbus_pub *pub, const struct shmbus_typed_type *type,
			 const ProtobufCMessage *msg, uint64_t *seq)
{
	uint8_t stage[STAGE_MAX];
	size_t bound, size = 0;
	int rc = check("shmbus_typed_publish", pub, type, msg);

	if (rc != SHMBUS_OK)
		return rc;
	/* A message whose bound fits is packed without being sized first;
	 * only one that may not fit is sized exactly, before the loan. */
	bound = typed_size_bound(msg);
	if (bound <= STAGE_MAX) {
		size = typed_pack(msg, stage);
		if ((rc = room(pub, size)) != SHMBUS_OK)
			return rc;
		return loan_and_publish(pub, msg, bound, size, stage, seq);
	}
	if (bound > shmbus_pub_max_message_size(pub)) {
		size = protobuf_c_message_get_packed_size(msg);
		if ((rc = room(pub, size)) != SHMBUS_OK)
			return rc;
		bound = size;
	}
	return loan_and_publish(pub, msg, bound, size, NULL, seq);
}

static void loan_clear(struct shmbus_typed_loan *loan)
{
	loan->field = NULL;
	loan->field_size = 0;
	loan->size_ = 0;
}

int shmbus_typed_loan_field(shmbus_pub *pub, const struct shmbus_typed_type *type,
			    const ProtobufCMessage *rest, uint32_t number, size_t field_size,
			    struct shmbus_typed_loan *loan)
{
	uint8_t key[10], len[10];
	size_t head, n_key, n_len, capacity, total;
	uint8_t *p;
	void *buf;
	int rc;

	if (!loan)
		return shmbus_fail(SHMBUS_EINVAL, "shmbus_typed_loan_field: NULL loan");
	loan_clear(loan);
	if ((rc = check("shmbus_typed_loan_field", pub, type, rest)) != SHMBUS_OK)
		return rc;
	if (number == 0 || number > 536870911u)
		return shmbus_fail(SHMBUS_EINVAL, "%u is not a protobuf field number", number);
	head = protobuf_c_message_get_packed_size(rest);
	n_key = wire_put_varint(key, (uint64_t)number << 3 | 2u);
	n_len = wire_put_varint(len, (uint64_t)field_size);
	if (field_size > SIZE_MAX - head - n_key - n_len)
		return shmbus_fail(SHMBUS_EMSGSIZE, "a field of %zu bytes", field_size);
	total = head + n_key + n_len + field_size;
	if ((rc = room(pub, total)) != SHMBUS_OK)
		return rc;
	rc = shmbus_pub_loan(pub, &buf, &capacity);
	if (rc != SHMBUS_OK)
		return rc;
	if (total > capacity)
		return loan_too_small(pub, total, capacity);
	p = buf;
	typed_prefetch(p, head + n_key + n_len, true);
	protobuf_c_message_pack(rest, p);
	memcpy(p + head, key, n_key);
	memcpy(p + head + n_key, len, n_len);
	loan->field = p + head + n_key + n_len;
	loan->field_size = field_size;
	loan->size_ = total;
	return SHMBUS_OK;
}

int shmbus_typed_publish_loan(shmbus_pub *pub, struct shmbus_typed_loan *loan, uint64_t *seq)
{
	int rc;

	if (!pub || !loan || !loan->field)
		return shmbus_fail(SHMBUS_EINVAL, "shmbus_typed_publish_loan: %s",
				   pub ? "no loan" : "NULL publisher");
	rc = shmbus_pub_publish(pub, loan->size_, seq);
	if (rc != SHMBUS_OK)
		(void)shmbus_pub_discard(pub);
	loan_clear(loan);
	return rc;
}
