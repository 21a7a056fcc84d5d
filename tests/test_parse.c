/*
 * test_parse.c - parsers of untrusted bytes: broker protocol frames and
 * segment headers. Every truncation and corruption is a clear error, never
 * a crash or an out-of-bounds read (run under ASan in CI). Also: every
 * error code has its own text.
 */
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "proto.h"
#include "segment.h"

static void test_open_roundtrip_and_truncation(void)
{
	struct proto_buf b = { 0 };
	struct proto_open o = {
		.role = ROLE_SUB, .create = 1, .slot_count = 8, .max_message_size = 100,
		.history = 3, .flags = 0, .topic = "cam/front", .topic_len = 9,
		.type_name = "x.Image", .type_len = 7, .schema = "\x01\x02\x03", .schema_len = 3,
	};
	proto_encode_open(&b, &o);
	CU_ASSERT_FALSE(b.failed);
	struct proto_open d;
	char err[256];
	CU_ASSERT_EQUAL(proto_decode_open(b.data, b.len, &d, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(d.role, ROLE_SUB);
	CU_ASSERT_EQUAL(d.max_message_size, 100);
	CU_ASSERT_EQUAL(d.topic_len, 9);
	CU_ASSERT_EQUAL(memcmp(d.topic, "cam/front", 9), 0);
	CU_ASSERT_EQUAL(memcmp(d.type_name, "x.Image", 7), 0);
	CU_ASSERT_EQUAL(d.schema_len, 3);
	/* Every shorter body is refused with a reason, read in a buffer of
	 * exactly that size (ASan catches any overread). */
	for (size_t n = 0; n < b.len; n++) {
		uint8_t *copy = malloc(n ? n : 1);
		memcpy(copy, b.data, n);
		err[0] = '\0';
		CU_ASSERT_NOT_EQUAL(proto_decode_open(copy, n, &d, err, sizeof(err)), 0);
		CU_ASSERT_NOT_EQUAL(err[0], '\0');
		free(copy);
	}
	/* Trailing garbage is refused too. */
	proto_put_u32(&b, 0);
	CU_ASSERT_NOT_EQUAL(proto_decode_open(b.data, b.len, &d, err, sizeof(err)), 0);
	proto_buf_free(&b);
}

static void test_open_bad_fields(void)
{
	struct proto_open o = { .role = 9, .topic = "t", .topic_len = 1,
				.type_len = PROTO_ANY_TYPE };
	struct proto_buf b = { 0 };
	struct proto_open d;
	char err[256];
	proto_encode_open(&b, &o);
	CU_ASSERT_EQUAL(proto_decode_open(b.data, b.len, &d, err, sizeof(err)), SHMBUS_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "role"));
	proto_buf_free(&b);
	/* A NUL inside a name. */
	o = (struct proto_open){ .role = ROLE_PUB, .topic = "a\0b", .topic_len = 3,
				 .type_len = PROTO_ANY_TYPE };
	proto_encode_open(&b, &o);
	CU_ASSERT_EQUAL(proto_decode_open(b.data, b.len, &d, err, sizeof(err)), SHMBUS_ENAME);
	proto_buf_free(&b);
	/* Lengths that claim more than is there (huge schema). */
	uint32_t words[9] = { ROLE_PUB, 0, 0, 0, 0, 0, 1, PROTO_ANY_TYPE, 0xFFFFFFF0u };
	CU_ASSERT_EQUAL(proto_decode_open((uint8_t *)words, sizeof(words), &d, err, sizeof(err)),
			SHMBUS_ELIMIT);
	uint32_t words2[9] = { ROLE_PUB, 0, 0, 0, 0, 0, 200, PROTO_ANY_TYPE, 0 };
	CU_ASSERT_EQUAL(proto_decode_open((uint8_t *)words2, sizeof(words2), &d, err, sizeof(err)),
			SHMBUS_EBROKER);
}

static void test_header_checks(void)
{
	char err[256];
	struct proto_hdr h = { PROTO_MAGIC, PROTO_VERSION, OP_OPEN, 0, 10 };
	CU_ASSERT_EQUAL(proto_check_hdr(&h, err, sizeof(err)), 0);
	h.magic = 0x12345678;
	CU_ASSERT_EQUAL(proto_check_hdr(&h, err, sizeof(err)), SHMBUS_EBROKER);
	h.magic = PROTO_MAGIC;
	h.version = 99;
	CU_ASSERT_EQUAL(proto_check_hdr(&h, err, sizeof(err)), SHMBUS_EVERSION);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "99"));
	h.version = PROTO_VERSION;
	h.len = PROTO_MAX_BODY + 1;
	CU_ASSERT_EQUAL(proto_check_hdr(&h, err, sizeof(err)), SHMBUS_EBROKER);
}

static int count_entry(void *ctx, const struct proto_entry *e)
{
	(*(int *)ctx)++;
	CU_ASSERT_TRUE(strlen(e->name) > 0);
	return 0;
}

static void test_entries(void)
{
	struct proto_buf b = { 0 };
	proto_encode_entry(&b, 1, "a", "", NULL);
	size_t first = b.len;
	proto_encode_entry(&b, 7, "/camera/front", "shmbus.msgs.Image", NULL);
	int n = 0;
	CU_ASSERT_EQUAL(proto_decode_entries(b.data, b.len, count_entry, &n), 0);
	CU_ASSERT_EQUAL(n, 2);
	for (size_t k = 1; k < b.len; k++) {
		if (k == first)
			continue; /* a whole first entry: a valid shorter list */
		n = 0;
		CU_ASSERT_EQUAL(proto_decode_entries(b.data, k, count_entry, &n), SHMBUS_EBROKER);
	}
	proto_buf_free(&b);
	/* An empty name, or a NUL inside one, is malformed. */
	proto_encode_entry(&b, 1, "", "", NULL);
	CU_ASSERT_EQUAL(proto_decode_entries(b.data, b.len, count_entry, &n), SHMBUS_EBROKER);
	proto_buf_free(&b);
	proto_encode_entry(&b, 1, "ab", "", NULL);
	b.data[9] = '\0'; /* after the id and the name's length */
	CU_ASSERT_EQUAL(proto_decode_entries(b.data, b.len, count_entry, &n), SHMBUS_EBROKER);
	proto_buf_free(&b);
}

/* A topic's meta as the broker formats it; slots != 0: with that slot
 * count written in after the parameters were checked (a broken broker). */
static uint8_t *make_meta_slots(size_t *size, uint32_t slots)
{
	struct seg_params p = { .slot_count = 4, .max_message_size = 64, .topic = "/imu",
				.type_name = "x.Imu", .schema = "abc", .schema_size = 3 };
	char err[256];
	CU_ASSERT_FATAL(seg_params_normalize(&p, err, sizeof(err)) == 0);
	if (slots)
		p.slot_count = slots;
	*size = seg_meta_size(p.schema_size);
	void *mem = NULL;
	CU_ASSERT_FATAL(posix_memalign(&mem, 4096, *size) == 0);
	memset(mem, 0, *size);
	seg_meta_format(mem, &p);
	return mem;
}

static uint8_t *make_meta(size_t *size)
{
	return make_meta_slots(size, 0);
}

static void test_meta_checks(void)
{
	char err[256];
	size_t size;
	uint8_t *mem = make_meta(&size);
	struct meta_header *h = (struct meta_header *)mem;
	CU_ASSERT_EQUAL(seg_meta_check(mem, size, err, sizeof(err)), 0);
	/* Truncated: at every size below the layout's. */
	for (size_t n = 0; n < size; n += 64)
		CU_ASSERT_EQUAL(seg_meta_check(mem, n, err, sizeof(err)), SHMBUS_ECORRUPT);
	/* Another layout version: a clear version error. */
	h->layout_version = SEG_LAYOUT_VERSION + 1;
	CU_ASSERT_EQUAL(seg_meta_check(mem, size, err, sizeof(err)), SHMBUS_EVERSION);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "this library reads"));
	h->layout_version = SEG_LAYOUT_VERSION;
	/* An old layout's file is refused as such, not misread. */
	h->layout_version = 4;
	CU_ASSERT_EQUAL(seg_meta_check(mem, size, err, sizeof(err)), SHMBUS_EVERSION);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "version 4"));
	h->layout_version = SEG_LAYOUT_VERSION;
	/* Any flipped byte of the fixed header is caught by its check. */
	size_t from = sizeof(h->magic), to = offsetof(struct meta_header, header_check);
	for (size_t i = from; i < to; i += 7) {
		mem[i] ^= 0x5a;
		int rc = seg_meta_check(mem, size, err, sizeof(err));
		CU_ASSERT_TRUE(rc == SHMBUS_ECORRUPT || rc == SHMBUS_EVERSION);
		mem[i] ^= 0x5a;
	}
	CU_ASSERT_EQUAL(seg_meta_check(mem, size, err, sizeof(err)), 0);
	/* What changes (the tables) is not covered by the check. */
	atomic_store(&h->pubs[3].pid, 42);
	CU_ASSERT_EQUAL(seg_meta_check(mem, size, err, sizeof(err)), 0);
	atomic_store(&h->magic, 0);
	CU_ASSERT_EQUAL(seg_meta_check(mem, size, err, sizeof(err)), SHMBUS_ECORRUPT);
	free(mem);
	/* Consistent and checked, yet impossible: a slot count that is not a
	 * power of two (the ring indexes slots with a mask). */
	mem = make_meta_slots(&size, 6);
	CU_ASSERT_EQUAL(seg_meta_check(mem, size, err, sizeof(err)), SHMBUS_ECORRUPT);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "impossible layout"));
	free(mem);
}

static void test_every_error_has_text(void)
{
	const char *unknown = shmbus_strerror(-12345);
	for (int e = 0; e >= SHMBUS_EBADMSG; e--) {
		const char *s = shmbus_strerror(e);
		CU_ASSERT_PTR_NOT_NULL_FATAL(s);
		CU_ASSERT_STRING_NOT_EQUAL(s, unknown);
		for (int f = 0; f > e; f--)
			CU_ASSERT_STRING_NOT_EQUAL(s, shmbus_strerror(f));
	}
	CU_ASSERT_EQUAL(shmbus_version() >> 16, SHMBUS_VERSION_MAJOR);
}

static void test_names_valid(void)
{
	CU_ASSERT_TRUE(shmbus_topic_name_valid("camera/front/image_raw"));
	CU_ASSERT_TRUE(shmbus_topic_name_valid("imu"));
	/* ROS style: one leading '/'. */
	CU_ASSERT_TRUE(shmbus_topic_name_valid("/camera/image_raw"));
	CU_ASSERT_TRUE(shmbus_topic_name_valid("/imu"));
	CU_ASSERT_TRUE(shmbus_topic_name_valid("a.b/..c/d.."));
	CU_ASSERT_FALSE(shmbus_topic_name_valid(""));
	CU_ASSERT_FALSE(shmbus_topic_name_valid("/"));
	CU_ASSERT_FALSE(shmbus_topic_name_valid("//abs"));
	CU_ASSERT_FALSE(shmbus_topic_name_valid("trail/"));
	CU_ASSERT_FALSE(shmbus_topic_name_valid("a//b"));
	CU_ASSERT_FALSE(shmbus_topic_name_valid("sp ace"));
	CU_ASSERT_FALSE(shmbus_topic_name_valid(NULL));
	/* "." and ".." are not segments. */
	CU_ASSERT_FALSE(shmbus_topic_name_valid("a/../b"));
	CU_ASSERT_FALSE(shmbus_topic_name_valid("./a"));
	CU_ASSERT_FALSE(shmbus_topic_name_valid("a/."));
	CU_ASSERT_FALSE(shmbus_topic_name_valid("/.."));
	char longest[202];
	memset(longest, 'x', 200);
	longest[200] = '\0';
	CU_ASSERT_TRUE(shmbus_topic_name_valid(longest));
	longest[200] = 'x';
	longest[201] = '\0';
	CU_ASSERT_FALSE(shmbus_topic_name_valid(longest));
}

static void add(void)
{
	CU_pSuite s = CU_add_suite("parse", NULL, NULL);
	CU_add_test(s, "OPEN round trip, every truncation", test_open_roundtrip_and_truncation);
	CU_add_test(s, "OPEN with bad fields", test_open_bad_fields);
	CU_add_test(s, "frame header checks", test_header_checks);
	CU_add_test(s, "topic name lists", test_entries);
	CU_add_test(s, "topic meta: version, truncation, corruption", test_meta_checks);
	CU_add_test(s, "every error code has its own text", test_every_error_has_text);
	CU_add_test(s, "topic names", test_names_valid);
}

int main(void)
{
	return h_run("test_parse", add);
}
