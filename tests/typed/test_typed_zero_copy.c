/*
 * test_typed_zero_copy - large bytes fields written and read in place, and
 * the typed layer's refusals: an image is loaned and filled in shared
 * memory and viewed without copying (the field pointer lies inside the
 * slot); oversized messages are SHMBUS_EMSGSIZE with no loan kept, or
 * grow the topic for a publisher with SHMBUS_PUB_GROW; another
 * type on the topic is SHMBUS_ETYPE; a lapped view is SHMBUS_ELAPPED, and
 * so is a take lapped while it unpacks (never a torn message); an
 * undecodable payload is SHMBUS_EBADMSG; failed allocations are
 * SHMBUS_ENOMEM, and nothing leaks.
 */
#include "harness.h"

#include <CUnit/Basic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shmbus/msgs/image.shmbus.h"
#include "shmbus/msgs/imu.shmbus.h"
#include "shmbus/test/all.shmbus.h"
#include "shmbus/test/legacy.shmbus.h"

#include <sys/wait.h>

#define WAIT_NS 2000000000LL
#define WIDTH 1280u
#define HEIGHT 720u
#define STEP (WIDTH * 3u)
#define FRAME_SIZE ((size_t)STEP * HEIGHT)

static uint8_t pattern(size_t i, uint32_t frame)
{
	return (uint8_t)((i * 31u + frame * 7u) ^ (i >> 11));
}

static void image_init(Shmbus__Msgs__Image *img, Shmbus__Msgs__Header *hdr, int64_t stamp)
{
	shmbus__msgs__header__init(hdr);
	hdr->stamp_ns = stamp;
	hdr->frame_id = (char *)"camera_optical";
	shmbus__msgs__image__init(img);
	img->header = hdr;
	img->width = WIDTH;
	img->height = HEIGHT;
	img->encoding = (char *)"rgb8";
	img->step = STEP;
}

static void open_image_topic(const char *topic, uint32_t max_size, shmbus_pub **pub,
			     shmbus_sub **sub)
{
	struct shmbus_topic_options to;

	shmbus_topic_options_init(&to);
	to.slot_count = 4;
	to.max_message_size = max_size;
	CU_ASSERT_EQUAL_FATAL(shmbus__msgs__image__pub_open(h_suite_bus, topic, &to, NULL, pub),
			      SHMBUS_OK);
	CU_ASSERT_EQUAL_FATAL(shmbus__msgs__image__sub_open(h_suite_bus, topic, NULL, NULL, sub),
			      SHMBUS_OK);
}

static void check_header(const Shmbus__Msgs__Image *img, int64_t stamp)
{
	CU_ASSERT_PTR_NOT_NULL_FATAL(img);
	CU_ASSERT_EQUAL(img->width, WIDTH);
	CU_ASSERT_EQUAL(img->height, HEIGHT);
	CU_ASSERT_EQUAL(img->step, STEP);
	CU_ASSERT_STRING_EQUAL(img->encoding, "rgb8");
	CU_ASSERT_PTR_NOT_NULL_FATAL(img->header);
	CU_ASSERT_EQUAL(img->header->stamp_ns, stamp);
	CU_ASSERT_STRING_EQUAL(img->header->frame_id, "camera_optical");
}

static int frame_matches(const uint8_t *p, size_t n, uint32_t frame)
{
	for (size_t i = 0; i < n; i++) {
		if (p[i] != pattern(i, frame))
			return 0;
	}
	return 1;
}

static void test_image_in_place(void)
{
	Shmbus__Msgs__Image img, *got = NULL;
	Shmbus__Msgs__Header hdr;
	struct shmbus_typed_loan loan;
	struct shmbus_typed_view view;
	struct shmbus_msg_info info;
	shmbus_pub *pub;
	shmbus_sub *sub;
	const uint8_t *slot;
	uint64_t seq;

	open_image_topic("camera/image", (uint32_t)FRAME_SIZE + 4096, &pub, &sub);

	/* Two frames written in place: one read in place, one unpacked. */
	for (uint32_t frame = 1; frame <= 2; frame++) {
		image_init(&img, &hdr, 1000 + frame);
		img.data.data = (uint8_t *)"ignored";
		img.data.len = 7;
		CU_ASSERT_EQUAL_FATAL(shmbus__msgs__image__loan_data(pub, &img, FRAME_SIZE, &loan),
				      SHMBUS_OK);
		CU_ASSERT_PTR_NOT_NULL_FATAL(loan.field);
		CU_ASSERT_EQUAL(loan.field_size, FRAME_SIZE);
		for (size_t i = 0; i < FRAME_SIZE; i++)
			loan.field[i] = pattern(i, frame);
		CU_ASSERT_EQUAL(shmbus__msgs__image__publish_loan(pub, &loan, &seq), SHMBUS_OK);
		CU_ASSERT_PTR_NULL(loan.field);
	}

	CU_ASSERT_EQUAL_FATAL(shmbus__msgs__image__wait(sub, WAIT_NS), SHMBUS_OK);
	CU_ASSERT_EQUAL_FATAL(shmbus__msgs__image__view_data(sub, NULL, &got, &view), SHMBUS_OK);
	check_header(got, 1001);
	CU_ASSERT_EQUAL(got->data.len, 0); /* left in the slot, not copied */
	CU_ASSERT_EQUAL(view.field_size, FRAME_SIZE);
	slot = view.view.data;
	/* The field lies inside the slot: zero copy. */
	CU_ASSERT_TRUE(view.field >= slot);
	CU_ASSERT_TRUE(view.field + view.field_size <= slot + view.view.info.size);
	CU_ASSERT_TRUE(frame_matches(view.field, view.field_size, 1));
	CU_ASSERT_EQUAL(shmbus__msgs__image__view_release(sub, got, NULL, &view), SHMBUS_OK);
	CU_ASSERT_PTR_NULL(view.field);

	/* The in-place layout is ordinary protobuf: a plain take decodes it. */
	CU_ASSERT_EQUAL_FATAL(shmbus__msgs__image__take(sub, NULL, &got, &info), SHMBUS_OK);
	check_header(got, 1002);
	CU_ASSERT_EQUAL_FATAL(got->data.len, FRAME_SIZE);
	CU_ASSERT_TRUE(frame_matches(got->data.data, got->data.len, 2));
	CU_ASSERT_EQUAL(info.seq, seq);
	shmbus__msgs__image__free(got, NULL);

	CU_ASSERT_EQUAL(shmbus__msgs__image__take(sub, NULL, &got, NULL), SHMBUS_EAGAIN);
	CU_ASSERT_PTR_NULL(got);
	shmbus_sub_close(sub);
	shmbus_pub_close(pub);
}

/* A normally published image (field written by protobuf-c) is viewed in
 * place too. */
static void test_view_of_packed_image(void)
{
	Shmbus__Msgs__Image img, *got = NULL;
	Shmbus__Msgs__Header hdr;
	struct shmbus_typed_view view;
	shmbus_pub *pub;
	shmbus_sub *sub;
	uint8_t *pixels = malloc(64 * 1024);

	CU_ASSERT_PTR_NOT_NULL_FATAL(pixels);
	for (size_t i = 0; i < 64 * 1024; i++)
		pixels[i] = pattern(i, 9);
	open_image_topic("camera/small", 128 * 1024, &pub, &sub);
	image_init(&img, &hdr, 77);
	img.data.data = pixels;
	img.data.len = 64 * 1024;
	CU_ASSERT_EQUAL(shmbus__msgs__image__publish(pub, &img, NULL), SHMBUS_OK);
	CU_ASSERT_EQUAL_FATAL(shmbus__msgs__image__view_data(sub, NULL, &got, &view), SHMBUS_OK);
	check_header(got, 77);
	CU_ASSERT_EQUAL(view.field_size, 64 * 1024);
	CU_ASSERT_TRUE(view.field >= (const uint8_t *)view.view.data);
	CU_ASSERT_TRUE(view.field + view.field_size <=
		       (const uint8_t *)view.view.data + view.view.info.size);
	CU_ASSERT_EQUAL(memcmp(view.field, pixels, 64 * 1024), 0);
	CU_ASSERT_EQUAL(shmbus__msgs__image__view_release(sub, got, NULL, &view), SHMBUS_OK);
	free(pixels);
	shmbus_sub_close(sub);
	shmbus_pub_close(pub);
}

static void test_too_big(void)
{
	Shmbus__Msgs__Image img, *got = NULL;
	Shmbus__Msgs__Header hdr;
	struct shmbus_typed_loan loan;
	uint8_t big[2048];
	shmbus_pub *pub;
	shmbus_sub *sub;

	memset(big, 0xab, sizeof(big));
	open_image_topic("camera/tiny", 1024, &pub, &sub);
	image_init(&img, &hdr, 5);
	img.data.data = big;
	img.data.len = sizeof(big);
	CU_ASSERT_EQUAL(shmbus__msgs__image__publish(pub, &img, NULL), SHMBUS_EMSGSIZE);
	CU_ASSERT_EQUAL(shmbus__msgs__image__loan_data(pub, &img, sizeof(big), &loan),
			SHMBUS_EMSGSIZE);
	CU_ASSERT_PTR_NULL(loan.field);
	/* No loan was kept: the publisher goes on. */
	img.data.len = 100;
	CU_ASSERT_EQUAL(shmbus__msgs__image__publish(pub, &img, NULL), SHMBUS_OK);
	CU_ASSERT_EQUAL_FATAL(shmbus__msgs__image__take(sub, NULL, &got, NULL), SHMBUS_OK);
	CU_ASSERT_EQUAL(got->data.len, 100);
	shmbus__msgs__image__free(got, NULL);
	CU_ASSERT_EQUAL(shmbus__msgs__image__take(sub, NULL, &got, NULL), SHMBUS_EAGAIN);
	/* An uninitialised message is refused, not packed. */
	{
		Shmbus__Msgs__Image bad;

		memset(&bad, 0, sizeof(bad));
		CU_ASSERT_EQUAL(shmbus__msgs__image__publish(pub, &bad, NULL), SHMBUS_EINVAL);
		CU_ASSERT_PTR_NOT_NULL(strstr(shmbus_errmsg(), "not a shmbus.msgs.Image"));
	}
	shmbus_sub_close(sub);
	shmbus_pub_close(pub);
}

/* Refusing a message too big for the topic costs no sequence number:
 * subscribers count nothing lost, and the next message gets the next
 * number. */
static void test_too_big_costs_nothing(void)
{
	Shmbus__Msgs__Image img, *got = NULL;
	Shmbus__Msgs__Header hdr;
	struct shmbus_typed_loan loan;
	struct shmbus_msg_info info;
	struct shmbus_sub_stats st;
	uint8_t big[2048];
	shmbus_pub *pub;
	shmbus_sub *sub;
	uint64_t first, next;

	memset(big, 0xcd, sizeof(big));
	open_image_topic("camera/refused", 1024, &pub, &sub);
	image_init(&img, &hdr, 6);
	CU_ASSERT_EQUAL_FATAL(shmbus__msgs__image__publish(pub, &img, &first), SHMBUS_OK);
	img.data.data = big;
	img.data.len = sizeof(big);
	CU_ASSERT_EQUAL(shmbus__msgs__image__publish(pub, &img, NULL), SHMBUS_EMSGSIZE);
	CU_ASSERT_EQUAL(shmbus__msgs__image__loan_data(pub, &img, sizeof(big), &loan),
			SHMBUS_EMSGSIZE);
	img.data.len = 0;
	CU_ASSERT_EQUAL_FATAL(shmbus__msgs__image__publish(pub, &img, &next), SHMBUS_OK);
	CU_ASSERT_EQUAL(next, first + 1);
	for (int i = 0; i < 2; i++) {
		CU_ASSERT_EQUAL_FATAL(shmbus__msgs__image__take(sub, NULL, &got, &info), SHMBUS_OK);
		CU_ASSERT_EQUAL(info.seq, i ? next : first);
		CU_ASSERT_EQUAL(info.lost, 0);
		shmbus__msgs__image__free(got, NULL);
	}
	shmbus_sub_stats(sub, &st);
	CU_ASSERT_EQUAL(st.lost, 0);
	CU_ASSERT_EQUAL(st.next_seq, next + 1);
	shmbus_sub_close(sub);
	shmbus_pub_close(pub);
}

/* The next message on sub is a packed image with stamp `stamp`, sequence
 * number `seq`, nothing lost before it and `len` bytes of pattern 3. */
static void take_grown(shmbus_sub *sub, uint64_t seq, int64_t stamp, size_t len)
{
	Shmbus__Msgs__Image *got = NULL;
	struct shmbus_msg_info info;

	CU_ASSERT_EQUAL_FATAL(shmbus__msgs__image__wait(sub, WAIT_NS), SHMBUS_OK);
	CU_ASSERT_EQUAL_FATAL(shmbus__msgs__image__take(sub, NULL, &got, &info), SHMBUS_OK);
	CU_ASSERT_EQUAL(info.seq, seq);
	CU_ASSERT_EQUAL(info.lost, 0);
	CU_ASSERT_EQUAL(got->header->stamp_ns, stamp);
	CU_ASSERT_EQUAL(got->data.len, len);
	CU_ASSERT_TRUE(frame_matches(got->data.data, got->data.len, 3));
	shmbus__msgs__image__free(got, NULL);
}

/* A publisher opened with SHMBUS_PUB_GROW grows the topic for a message
 * that does not fit, packed or loaned; a publisher without it is refused
 * (costing no sequence number) until the topic has grown, then follows
 * it. The subscriber follows each growth and loses nothing. */
static void test_grow(void)
{
	Shmbus__Msgs__Image img, *got = NULL;
	Shmbus__Msgs__Header hdr;
	struct shmbus_topic_options to;
	struct shmbus_pub_options po;
	struct shmbus_typed_loan loan;
	struct shmbus_typed_view view;
	struct shmbus_topic_info ti;
	struct shmbus_sub_stats st;
	shmbus_pub *grower, *plain;
	shmbus_sub *sub;
	uint8_t *big = malloc(8192);
	uint64_t seq[4];

	CU_ASSERT_PTR_NOT_NULL_FATAL(big);
	for (size_t i = 0; i < 8192; i++)
		big[i] = pattern(i, 3);
	shmbus_topic_options_init(&to);
	to.slot_count = 4;
	to.max_message_size = 1024;
	shmbus_pub_options_init(&po);
	po.flags = SHMBUS_PUB_GROW;
	CU_ASSERT_EQUAL_FATAL(shmbus__msgs__image__pub_open(h_suite_bus, "camera/grow", &to, &po,
							    &grower),
			      SHMBUS_OK);
	CU_ASSERT_EQUAL_FATAL(shmbus__msgs__image__pub_open(h_suite_bus, "camera/grow", &to, NULL,
							    &plain),
			      SHMBUS_OK);
	CU_ASSERT_EQUAL_FATAL(shmbus__msgs__image__sub_open(h_suite_bus, "camera/grow", NULL, NULL,
							    &sub),
			      SHMBUS_OK);
	image_init(&img, &hdr, 1);
	CU_ASSERT_EQUAL_FATAL(shmbus__msgs__image__publish(grower, &img, &seq[0]), SHMBUS_OK);
	take_grown(sub, seq[0], 1, 0);

	img.data.data = big;
	img.data.len = 2048;
	CU_ASSERT_EQUAL(shmbus__msgs__image__publish(plain, &img, NULL), SHMBUS_EMSGSIZE);
	CU_ASSERT_EQUAL(shmbus_pub_max_message_size(plain), 1024);
	hdr.stamp_ns = 2;
	CU_ASSERT_EQUAL_FATAL(shmbus__msgs__image__publish(grower, &img, &seq[1]), SHMBUS_OK);
	CU_ASSERT_TRUE(shmbus_pub_max_message_size(grower) >=
		       shmbus__msgs__image__get_packed_size(&img));
	take_grown(sub, seq[0] + 1, 2, 2048); /* the refusal cost no number */

	hdr.stamp_ns = 3;
	CU_ASSERT_EQUAL_FATAL(shmbus__msgs__image__loan_data(grower, &img, 8192, &loan), SHMBUS_OK);
	memcpy(loan.field, big, 8192);
	CU_ASSERT_EQUAL_FATAL(shmbus__msgs__image__publish_loan(grower, &loan, &seq[2]), SHMBUS_OK);
	CU_ASSERT_EQUAL(seq[2], seq[1] + 1);
	CU_ASSERT_EQUAL_FATAL(shmbus__msgs__image__wait(sub, WAIT_NS), SHMBUS_OK);
	CU_ASSERT_EQUAL_FATAL(shmbus__msgs__image__view_data(sub, NULL, &got, &view), SHMBUS_OK);
	CU_ASSERT_EQUAL(view.view.info.seq, seq[2]);
	CU_ASSERT_EQUAL(view.view.info.lost, 0);
	CU_ASSERT_EQUAL(got->header->stamp_ns, 3);
	CU_ASSERT_EQUAL(view.field_size, 8192);
	CU_ASSERT_TRUE(frame_matches(view.field, view.field_size, 3));
	CU_ASSERT_EQUAL(shmbus__msgs__image__view_release(sub, got, NULL, &view), SHMBUS_OK);

	/* Grown by another: the plain publisher's message fits now. */
	hdr.stamp_ns = 4;
	CU_ASSERT_EQUAL_FATAL(shmbus__msgs__image__publish(plain, &img, &seq[3]), SHMBUS_OK);
	CU_ASSERT_EQUAL(seq[3], seq[2] + 1);
	take_grown(sub, seq[3], 4, 2048);

	shmbus_sub_stats(sub, &st);
	CU_ASSERT_EQUAL(st.lost, 0);
	CU_ASSERT_EQUAL(st.received, 4);
	CU_ASSERT_EQUAL(shmbus_topic_inspect(h_suite_bus, "camera/grow", &ti, NULL, 0, NULL, NULL,
					     0, NULL),
			SHMBUS_OK);
	CU_ASSERT_EQUAL(ti.grown, 2);
	CU_ASSERT_TRUE(ti.max_message_size >= 8192);
	free(big);
	shmbus_sub_close(sub);
	shmbus_pub_close(plain);
	shmbus_pub_close(grower);
}

/* The calling thread's error text names each of a, b and c. */
static void expect_errmsg(const char *a, const char *b, const char *c)
{
	const char *m = shmbus_errmsg();

	if (!strstr(m, a) || !strstr(m, b) || !strstr(m, c))
		fprintf(stderr, "error text '%s' lacks '%s', '%s' or '%s'\n", m, a, b, c);
	CU_ASSERT_PTR_NOT_NULL(strstr(m, a));
	CU_ASSERT_PTR_NOT_NULL(strstr(m, b));
	CU_ASSERT_PTR_NOT_NULL(strstr(m, c));
}

static void test_type_mismatch(void)
{
	shmbus_pub *pub, *imu_pub = NULL;
	shmbus_sub *sub, *imu_sub = NULL, *raw = NULL;
	Shmbus__Msgs__Imu *imu = NULL;
	Shmbus__Msgs__Image img, *got = NULL;
	Shmbus__Msgs__Header hdr;

	open_image_topic("camera/typed", 4096, &pub, &sub);
	CU_ASSERT_EQUAL(
		shmbus__msgs__imu__pub_open(h_suite_bus, "camera/typed", NULL, NULL, &imu_pub),
		SHMBUS_ETYPE);
	CU_ASSERT_PTR_NULL(imu_pub);
	CU_ASSERT_EQUAL(
		shmbus__msgs__imu__sub_open(h_suite_bus, "camera/typed", NULL, NULL, &imu_sub),
		SHMBUS_ETYPE);
	CU_ASSERT_PTR_NULL(imu_sub);

	/* An untyped subscriber sees the topic's type; typed take checks it. */
	CU_ASSERT_EQUAL_FATAL(shmbus_sub_open(h_suite_bus, "camera/typed", NULL, NULL, &raw),
			      SHMBUS_OK);
	CU_ASSERT_STRING_EQUAL(shmbus_sub_type_name(raw), SHMBUS__MSGS__IMAGE__SHMBUS_TYPE_NAME);
	image_init(&img, &hdr, 3);
	CU_ASSERT_EQUAL(shmbus__msgs__image__publish(pub, &img, NULL), SHMBUS_OK);
	CU_ASSERT_EQUAL(shmbus__msgs__imu__take(raw, NULL, &imu, NULL), SHMBUS_ETYPE);
	/* The runtime's own refusals say why, as libshmbus's do. */
	expect_errmsg("camera/typed", "shmbus.msgs.Image", "shmbus.msgs.Imu");
	/* Publishing an Imu through the Image topic's handle is refused. */
	Shmbus__Msgs__Imu wrong = SHMBUS__MSGS__IMU__INIT;
	struct shmbus_sub_stats before, after;
	shmbus_sub_stats(raw, &before);
	CU_ASSERT_EQUAL(shmbus__msgs__imu__publish(pub, &wrong, NULL), SHMBUS_ETYPE);
	expect_errmsg("camera/typed", "shmbus.msgs.Image", "shmbus.msgs.Imu");
	shmbus_sub_stats(raw, &after);
	CU_ASSERT_EQUAL(after.lag, before.lag); /* nothing claimed */
	CU_ASSERT_EQUAL(shmbus__msgs__image__take(raw, NULL, &got, NULL), SHMBUS_OK);
	check_header(got, 3);
	shmbus__msgs__image__free(got, NULL);
	shmbus_sub_close(raw);
	shmbus_sub_close(sub);
	shmbus_pub_close(pub);
}

static void test_lapped_view(void)
{
	Shmbus__Msgs__Image img, *got = NULL;
	Shmbus__Msgs__Header hdr;
	struct shmbus_typed_view view;
	shmbus_pub *pub;
	shmbus_sub *sub;
	uint8_t px[256];

	memset(px, 1, sizeof(px));
	open_image_topic("camera/lapped", 4096, &pub, &sub);
	image_init(&img, &hdr, 1);
	img.data.data = px;
	img.data.len = sizeof(px);
	CU_ASSERT_EQUAL(shmbus__msgs__image__publish(pub, &img, NULL), SHMBUS_OK);
	CU_ASSERT_EQUAL_FATAL(shmbus__msgs__image__view_data(sub, NULL, &got, &view), SHMBUS_OK);
	/* Publish a whole ring's worth while the view is held. */
	for (int i = 0; i < 8; i++)
		CU_ASSERT_EQUAL(shmbus__msgs__image__publish(pub, &img, NULL), SHMBUS_OK);
	CU_ASSERT_EQUAL(shmbus__msgs__image__view_release(sub, got, NULL, &view), SHMBUS_ELAPPED);
	shmbus_sub_close(sub);
	shmbus_pub_close(pub);
}

/* A typed take lapped while it unpacks: another process publishes as
 * fast as it can into a ring of 2 slots, so slots are rewritten under the
 * takes. Every message a take hands out must be whole, and a torn one
 * must come back SHMBUS_ELAPPED (never a decoding error): for Image,
 * unpacked in place, and for Everything, whose packed varints make it
 * unpack from a private copy (SHMBUS_TYPED_COPY_FIRST). Message i holds i
 * in every element. */
#define LAP_MSGS 20000
#define LAP_BYTES 65536
#define LAP_NUMBERS 4096
#define LAP_KINDS 100 /* messages 1..100, in turn */
#define LAP_MAX(image) ((image) ? LAP_BYTES + 256 : LAP_NUMBERS * 5 + 64)

struct lap_job {
	char bus[64];
	bool image;
};

/* Packs message i (an Image or an Everything, whose size does not depend
 * on i for i < 128) into a new buffer. */
static uint8_t *lap_pack(bool image, int32_t i, size_t *size)
{
	static uint8_t px[LAP_BYTES];
	static int32_t numbers[LAP_NUMBERS];
	uint8_t *b;
	if (image) {
		Shmbus__Msgs__Image img;
		Shmbus__Msgs__Header hdr;
		image_init(&img, &hdr, i);
		memset(px, (uint8_t)i, sizeof(px));
		img.data.data = px;
		img.data.len = sizeof(px);
		*size = shmbus__msgs__image__get_packed_size(&img);
		if ((b = malloc(*size)) != NULL)
			shmbus__msgs__image__pack(&img, b);
		return b;
	}
	Shmbus__Test__All__Everything e;
	shmbus__test__all__everything__init(&e);
	for (size_t k = 0; k < LAP_NUMBERS; k++)
		numbers[k] = i;
	e.n_numbers = LAP_NUMBERS;
	e.numbers = numbers;
	e.int_ = i;
	*size = shmbus__test__all__everything__get_packed_size(&e);
	if ((b = malloc(*size)) != NULL)
		shmbus__test__all__everything__pack(&e, b);
	return b;
}

/* Publishes message i (an Image or an Everything). */
static int lap_publish(shmbus_pub *pub, bool image, int32_t i)
{
	size_t size;
	uint8_t *b = lap_pack(image, i, &size);
	int rc = b ? shmbus_pub_send(pub, b, size, NULL) : SHMBUS_ENOMEM;
	free(b);
	return rc;
}

/* Floods the topic with messages packed beforehand, so that a publish is
 * one copy into the slot: at that pace a subscriber's own copy or unpack
 * of a slot is overwritten while it reads, often. */
static int lap_publisher(void *arg, int fd)
{
	const struct lap_job *j = arg;
	shmbus_bus *bus;
	shmbus_pub *pub;
	struct shmbus_topic_options to;
	uint8_t *packed[LAP_KINDS];
	size_t size[LAP_KINDS];
	(void)fd;
	for (int k = 0; k < LAP_KINDS; k++)
		if (!(packed[k] = lap_pack(j->image, k + 1, &size[k])))
			return 9;
	if (shmbus_connect(j->bus, NULL, &bus) != SHMBUS_OK)
		return 10;
	shmbus_topic_options_init(&to);
	if (j->image)
		shmbus__msgs__image__topic_type(&to);
	else
		shmbus__test__all__everything__topic_type(&to);
	to.slot_count = 2;
	to.max_message_size = LAP_MAX(j->image);
	if (shmbus_pub_open(bus, "lap", &to, NULL, &pub) != SHMBUS_OK)
		return 11;
	for (int32_t i = 0; i < LAP_MSGS; i++)
		if (shmbus_pub_send(pub, packed[i % LAP_KINDS], size[i % LAP_KINDS], NULL) !=
		    SHMBUS_OK)
			return 12;
	shmbus_pub_close(pub);
	shmbus_disconnect(bus);
	for (int k = 0; k < LAP_KINDS; k++)
		free(packed[k]);
	return 0;
}

/* Whether message m (an Image or an Everything) is whole. */
static bool lap_whole(const void *m, bool image)
{
	if (!m)
		return false;
	if (image) {
		const Shmbus__Msgs__Image *img = m;
		if (!img->header || img->data.len != LAP_BYTES || img->width != WIDTH ||
		    strcmp(img->header->frame_id, "camera_optical") != 0)
			return false;
		for (size_t k = 0; k < LAP_BYTES; k++)
			if (img->data.data[k] != (uint8_t)img->header->stamp_ns)
				return false;
		return true;
	}
	const Shmbus__Test__All__Everything *e = m;
	if (e->n_numbers != LAP_NUMBERS)
		return false;
	for (size_t k = 0; k < LAP_NUMBERS; k++)
		if (e->numbers[k] != e->int_)
			return false;
	return true;
}

/* One typed take: its result, and in *whole whether what it gave is. */
static int lap_take(shmbus_sub *sub, bool image, bool *whole)
{
	void *m = NULL;
	int rc = image ? shmbus__msgs__image__take(sub, NULL, (Shmbus__Msgs__Image **)&m, NULL)
		       : shmbus__test__all__everything__take(
				 sub, NULL, (Shmbus__Test__All__Everything **)&m, NULL);
	*whole = lap_whole(m, image);
	if (image)
		shmbus__msgs__image__free(m, NULL);
	else
		shmbus__test__all__everything__free(m, NULL);
	return rc;
}

static void lapped_takes(bool image)
{
	struct shmbus_topic_options to;
	shmbus_pub *keep;
	shmbus_sub *sub;
	struct lap_job job = { .image = image };
	long whole = 0, torn = 0, lapped = 0, other = 0;

	snprintf(job.bus, sizeof(job.bus), "%s", h_bus_name("zc"));
	shmbus_topic_options_init(&to);
	to.slot_count = 2;
	to.max_message_size = LAP_MAX(image);
	CU_ASSERT_EQUAL_FATAL(
		image ? shmbus__msgs__image__pub_open(h_suite_bus, "lap", &to, NULL, &keep)
		      : shmbus__test__all__everything__pub_open(h_suite_bus, "lap", &to, NULL, &keep),
		SHMBUS_OK);
	CU_ASSERT_EQUAL_FATAL(
		image ? shmbus__msgs__image__sub_open(h_suite_bus, "lap", NULL, NULL, &sub)
		      : shmbus__test__all__everything__sub_open(h_suite_bus, "lap", NULL, NULL, &sub),
		SHMBUS_OK);
	int fd;
	pid_t child = h_fork(lap_publisher, &job, &fd);
	CU_ASSERT_FATAL(child > 0);
	int64_t deadline = h_now_ns() + 60 * 1000000000LL;
	bool done = false;
	while (h_now_ns() < deadline) {
		bool ok;
		int rc = lap_take(sub, image, &ok);
		if (rc == SHMBUS_OK) {
			if (ok)
				whole++;
			else if (torn++ == 0)
				fprintf(stderr, "\na torn %s was handed out as good\n",
					image ? "Image" : "Everything");
		} else if (rc == SHMBUS_ELAPPED) {
			lapped++;
		} else if (rc == SHMBUS_EAGAIN) {
			if (done)
				break;
			int st;
			done = waitpid(child, &st, WNOHANG) == child;
			if (done)
				CU_ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
		} else if (other++ == 0) {
			fprintf(stderr, "\ntake: %s: %s\n", shmbus_strerror(rc), shmbus_errmsg());
		}
	}
	if (!done)
		CU_ASSERT_EQUAL(h_reap(child, 30000), 0);
	close(fd);
	printf("\n  %s: %ld whole, %ld lapped while unpacked ", image ? "Image" : "Everything",
	       whole, lapped);
	CU_ASSERT_TRUE(done);
	CU_ASSERT_EQUAL(torn, 0);
	CU_ASSERT_EQUAL(other, 0);
	/* With nobody lapping it, a take is whole (the race above may leave
	 * none whole on a slow machine). */
	bool ok = false;
	CU_ASSERT_EQUAL(lap_publish(keep, image, 7), SHMBUS_OK);
	CU_ASSERT_EQUAL(lap_take(sub, image, &ok), SHMBUS_OK);
	CU_ASSERT_TRUE(ok);
	shmbus_sub_close(sub);
	shmbus_pub_close(keep);
	CU_ASSERT_EQUAL(shmbus_topic_remove(h_suite_bus, "lap"), SHMBUS_OK);
}

static void test_lapped_take(void)
{
	lapped_takes(true);
	lapped_takes(false);
}

static void test_corrupt_payload(void)
{
	struct shmbus_topic_options to;
	Shmbus__Msgs__Image img, *got = NULL;
	Shmbus__Msgs__Header hdr;
	struct shmbus_typed_view view;
	shmbus_pub *pub, *raw;
	shmbus_sub *sub;
	/* Field 2 (width) as a varint that never ends. */
	static const uint8_t garbage[] = { 0x10, 0xff, 0xff, 0xff };

	open_image_topic("camera/corrupt", 4096, &pub, &sub);
	shmbus_topic_options_init(&to);
	shmbus__msgs__image__topic_type(&to);
	to.max_message_size = 4096;
	CU_ASSERT_EQUAL_FATAL(shmbus_pub_open(h_suite_bus, "camera/corrupt", &to, NULL, &raw),
			      SHMBUS_OK);
	CU_ASSERT_EQUAL(shmbus_pub_send(raw, garbage, sizeof(garbage), NULL), SHMBUS_OK);
	CU_ASSERT_EQUAL(shmbus_pub_send(raw, garbage, sizeof(garbage), NULL), SHMBUS_OK);
	image_init(&img, &hdr, 8);
	CU_ASSERT_EQUAL(shmbus__msgs__image__publish(pub, &img, NULL), SHMBUS_OK);
	/* EBADMSG: the message is bad; ECORRUPT would say the segment is. */
	CU_ASSERT_EQUAL(shmbus__msgs__image__take(sub, NULL, &got, NULL), SHMBUS_EBADMSG);
	CU_ASSERT_PTR_NULL(got);
	expect_errmsg("camera/corrupt", "shmbus.msgs.Image", "does not decode");
	CU_ASSERT_EQUAL(shmbus__msgs__image__view_data(sub, NULL, &got, &view), SHMBUS_EBADMSG);
	CU_ASSERT_PTR_NULL(got);
	expect_errmsg("camera/corrupt", "shmbus.msgs.Image", "does not decode");
	/* Skipped, not stuck: the good message after them comes through. */
	CU_ASSERT_EQUAL_FATAL(shmbus__msgs__image__take(sub, NULL, &got, NULL), SHMBUS_OK);
	check_header(got, 8);
	shmbus__msgs__image__free(got, NULL);
	shmbus_pub_close(raw);
	shmbus_sub_close(sub);
	shmbus_pub_close(pub);
}

/* Every prefix of a valid image and a few thousand random payloads: take
 * and view return OK or EBADMSG, never read outside the slot (ASan
 * builds check that) and never leave the subscriber stuck. */
static void test_malformed_payloads(void)
{
	struct shmbus_topic_options to;
	Shmbus__Msgs__Image img, *got = NULL;
	Shmbus__Msgs__Header hdr;
	struct shmbus_typed_view view;
	shmbus_pub *raw;
	shmbus_sub *sub;
	uint8_t px[64], wire[512], junk[48];
	size_t n;
	unsigned seed = 12345, ok = 0, corrupt = 0;

	shmbus_topic_options_init(&to);
	shmbus__msgs__image__topic_type(&to);
	to.slot_count = 16;
	to.max_message_size = 4096;
	CU_ASSERT_EQUAL_FATAL(shmbus_pub_open(h_suite_bus, "camera/malformed", &to, NULL, &raw),
			      SHMBUS_OK);
	CU_ASSERT_EQUAL_FATAL(
		shmbus__msgs__image__sub_open(h_suite_bus, "camera/malformed", NULL, NULL, &sub),
		SHMBUS_OK);
	memset(px, 7, sizeof(px));
	image_init(&img, &hdr, 11);
	img.data.data = px;
	img.data.len = sizeof(px);
	n = shmbus__msgs__image__get_packed_size(&img);
	CU_ASSERT_FATAL(n <= sizeof(wire));
	shmbus__msgs__image__pack(&img, wire);

	for (unsigned round = 0; round < 2 * (n + 1) + 4000; round++) {
		const uint8_t *payload = wire;
		size_t size;
		int rc;

		if (round < 2 * (n + 1)) {
			size = round / 2; /* each prefix, once for take, once for view */
		} else {
			size = (size_t)(rand_r(&seed) % (int)sizeof(junk));
			for (size_t i = 0; i < size; i++)
				junk[i] = (uint8_t)rand_r(&seed);
			payload = junk;
		}
		CU_ASSERT_EQUAL_FATAL(shmbus_pub_send(raw, payload, size, NULL), SHMBUS_OK);
		if (round % 2) {
			rc = shmbus__msgs__image__take(sub, NULL, &got, NULL);
			if (rc == SHMBUS_OK)
				shmbus__msgs__image__free(got, NULL);
		} else {
			rc = shmbus__msgs__image__view_data(sub, NULL, &got, &view);
			if (rc == SHMBUS_OK) {
				if (view.field) {
					CU_ASSERT_TRUE(view.field >= (const uint8_t *)view.view.data);
					CU_ASSERT_TRUE(view.field + view.field_size <=
						       (const uint8_t *)view.view.data +
							       view.view.info.size);
				}
				CU_ASSERT_EQUAL(shmbus__msgs__image__view_release(sub, got, NULL,
										  &view),
						SHMBUS_OK);
			}
		}
		CU_ASSERT_TRUE(rc == SHMBUS_OK || rc == SHMBUS_EBADMSG);
		ok += rc == SHMBUS_OK;
		corrupt += rc == SHMBUS_EBADMSG;
		/* Consumed either way: nothing is left to take. */
		CU_ASSERT_EQUAL(shmbus__msgs__image__take(sub, NULL, &got, NULL), SHMBUS_EAGAIN);
	}
	/* The whole message decodes, most prefixes and junk do not. */
	CU_ASSERT_TRUE(ok >= 2);
	CU_ASSERT_TRUE(corrupt > 0);
	shmbus_sub_close(sub);
	shmbus_pub_close(raw);
}

/* An allocator that counts and can be told to fail. */
struct counting {
	long live;
	long calls;
	long fail_at; /* fail the call with this index (0-based); -1: never */
};

static void *counting_alloc(void *data, size_t size)
{
	struct counting *c = data;
	void *p;

	if (c->calls++ == c->fail_at)
		return NULL;
	p = malloc(size);
	if (p)
		c->live++;
	return p;
}

static void counting_free(void *data, void *p)
{
	struct counting *c = data;

	if (p)
		c->live--;
	free(p);
}

static void test_allocator(void)
{
	struct counting c = { 0, 0, -1 };
	ProtobufCAllocator a = { counting_alloc, counting_free, &c };
	Shmbus__Msgs__Image img, *got = NULL;
	Shmbus__Msgs__Header hdr;
	struct shmbus_typed_view view;
	shmbus_pub *pub;
	shmbus_sub *sub;
	int rc;

	open_image_topic("camera/alloc", 4096, &pub, &sub);
	image_init(&img, &hdr, 4);
	CU_ASSERT_EQUAL(shmbus__msgs__image__publish(pub, &img, NULL), SHMBUS_OK);
	CU_ASSERT_EQUAL_FATAL(shmbus__msgs__image__take(sub, &a, &got, NULL), SHMBUS_OK);
	CU_ASSERT_TRUE(c.live > 0);
	check_header(got, 4);
	shmbus__msgs__image__free(got, &a);
	CU_ASSERT_EQUAL(c.live, 0);

	/* Every allocation of an unpack failing in turn: ENOMEM, no leak. */
	for (long k = 0; k < 8; k++) {
		c.calls = 0;
		c.fail_at = k;
		CU_ASSERT_EQUAL(shmbus__msgs__image__publish(pub, &img, NULL), SHMBUS_OK);
		rc = shmbus__msgs__image__take(sub, &a, &got, NULL);
		if (rc == SHMBUS_OK) {
			/* Fewer allocations than k: nothing failed. */
			CU_ASSERT_TRUE(c.calls <= k);
			shmbus__msgs__image__free(got, &a);
		} else {
			CU_ASSERT_EQUAL(rc, SHMBUS_ENOMEM);
			CU_ASSERT_PTR_NULL(got);
		}
		CU_ASSERT_EQUAL(c.live, 0);
		CU_ASSERT_EQUAL(shmbus__msgs__image__publish(pub, &img, NULL), SHMBUS_OK);
		c.calls = 0;
		rc = shmbus__msgs__image__view_data(sub, &a, &got, &view);
		if (rc == SHMBUS_OK) {
			CU_ASSERT_EQUAL(shmbus__msgs__image__view_release(sub, got, &a, &view),
					SHMBUS_OK);
		} else {
			CU_ASSERT_EQUAL(rc, SHMBUS_ENOMEM);
		}
		CU_ASSERT_EQUAL(c.live, 0);
	}
	shmbus_sub_close(sub);
	shmbus_pub_close(pub);
}

/* proto2: an optional bytes field has a has_ flag the loan must clear, and
 * a required bytes field next to it is still packed. */
static void test_proto2_has_flag(void)
{
	Shmbus__Test__Legacy__Frame f, *got = NULL;
	struct shmbus_topic_options to;
	struct shmbus_typed_loan loan;
	struct shmbus_typed_view view;
	shmbus_pub *pub;
	shmbus_sub *sub;

	shmbus_topic_options_init(&to);
	to.max_message_size = 4096;
	CU_ASSERT_EQUAL_FATAL(
		shmbus__test__legacy__frame__pub_open(h_suite_bus, "legacy", &to, NULL, &pub),
		SHMBUS_OK);
	CU_ASSERT_EQUAL_FATAL(
		shmbus__test__legacy__frame__sub_open(h_suite_bus, "legacy", NULL, NULL, &sub),
		SHMBUS_OK);
	shmbus__test__legacy__frame__init(&f);
	f.id = 42;
	f.checksum.data = (uint8_t *)"sum";
	f.checksum.len = 3;
	f.has_pixels = 1;
	f.pixels.data = (uint8_t *)"stale";
	f.pixels.len = 5;
	CU_ASSERT_EQUAL_FATAL(shmbus__test__legacy__frame__loan_pixels(pub, &f, 300, &loan),
			      SHMBUS_OK);
	memset(loan.field, 0x5a, 300);
	CU_ASSERT_EQUAL(shmbus__test__legacy__frame__publish_loan(pub, &loan, NULL), SHMBUS_OK);
	CU_ASSERT_EQUAL_FATAL(shmbus__test__legacy__frame__take(sub, NULL, &got, NULL), SHMBUS_OK);
	CU_ASSERT_EQUAL(got->id, 42);
	CU_ASSERT_TRUE(got->has_pixels);
	CU_ASSERT_EQUAL(got->pixels.len, 300); /* once, the loaned one */
	CU_ASSERT_EQUAL(got->pixels.data[299], 0x5a);
	CU_ASSERT_EQUAL(got->checksum.len, 3);
	shmbus__test__legacy__frame__free(got, NULL);

	CU_ASSERT_EQUAL_FATAL(shmbus__test__legacy__frame__loan_pixels(pub, &f, 10, &loan),
			      SHMBUS_OK);
	memset(loan.field, 0x11, 10);
	CU_ASSERT_EQUAL(shmbus__test__legacy__frame__publish_loan(pub, &loan, NULL), SHMBUS_OK);
	CU_ASSERT_EQUAL_FATAL(shmbus__test__legacy__frame__view_pixels(sub, NULL, &got, &view),
			      SHMBUS_OK);
	CU_ASSERT_EQUAL(got->id, 42);
	CU_ASSERT_FALSE(got->has_pixels);
	CU_ASSERT_EQUAL(view.field_size, 10);
	CU_ASSERT_EQUAL(view.field[9], 0x11);
	CU_ASSERT_EQUAL(shmbus__test__legacy__frame__view_release(sub, got, NULL, &view),
			SHMBUS_OK);
	shmbus_sub_close(sub);
	shmbus_pub_close(pub);
}

static void add(void)
{
	CU_pSuite s = h_add_bus_suite("typed_zero_copy", "zc");

	CU_add_test(s, "1280x720 image loaned and viewed in place", test_image_in_place);
	CU_add_test(s, "packed image viewed in place", test_view_of_packed_image);
	CU_add_test(s, "oversized message is EMSGSIZE, loan discarded", test_too_big);
	CU_add_test(s, "a refused message costs no sequence number", test_too_big_costs_nothing);
	CU_add_test(s, "SHMBUS_PUB_GROW grows the topic for a larger message", test_grow);
	CU_add_test(s, "another type is ETYPE", test_type_mismatch);
	CU_add_test(s, "lapped view is ELAPPED", test_lapped_view);
	CU_add_test(s, "a take lapped while it unpacks is ELAPPED, never torn", test_lapped_take);
	CU_add_test(s, "undecodable payload is EBADMSG and skipped", test_corrupt_payload);
	CU_add_test(s, "malformed and truncated payloads", test_malformed_payloads);
	CU_add_test(s, "caller's allocator, failures are ENOMEM", test_allocator);
	CU_add_test(s, "proto2 optional bytes in place", test_proto2_has_flag);
}

int main(void)
{
	return h_run("test_typed_zero_copy", add);
}
