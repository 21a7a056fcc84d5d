/*
 * test_typed_integrity - typed topics with integrity tags
 * (SHMBUS_TOPIC_INTEGRITY): a frame written in place through the zero-copy
 * loan is tagged when published and viewed in place by a subscriber that
 * checks the tag; typed take works for both unpack paths (in place and
 * from a private copy).
 */
#include "harness.h"
#include "typed_util.h"

#include <CUnit/Basic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "shmbus/msgs/image.shmbus.h"
#include "shmbus/test/all.shmbus.h"

#define WAIT_NS 2000000000LL

/* The bus key, a file of its own (the broker reads $SHMBUS_KEY_FILE when
 * the first connection starts it), written before any test runs. */
static int write_key(const char *dir)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/bus.key", dir);
	f = fopen(path, "w");
	if (!f)
		return -1;
	fputs("00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n", f);
	if (fclose(f) != 0 || chmod(path, 0600) != 0)
		return -1;
	return setenv("SHMBUS_KEY_FILE", path, 1);
}

static void tagged(struct shmbus_topic_options *to, uint32_t max_size)
{
	shmbus_topic_options_init(to);
	to->slot_count = 4;
	to->max_message_size = max_size;
	to->flags = SHMBUS_TOPIC_INTEGRITY;
}

static void test_zero_copy_tagged(void)
{
	struct shmbus_topic_options to;
	Shmbus__Msgs__Header hdr = SHMBUS__MSGS__HEADER__INIT;
	Shmbus__Msgs__Image img = SHMBUS__MSGS__IMAGE__INIT, *got = NULL;
	struct shmbus_typed_loan loan;
	struct shmbus_typed_view view;
	struct shmbus_sub_stats st;
	shmbus_pub *pub;
	shmbus_sub *sub;
	const size_t size = 640 * 480 * 3;

	tagged(&to, (uint32_t)size + 1024);
	CU_ASSERT_EQUAL_FATAL(
		shmbus__msgs__image__pub_open(h_suite_bus, "tagged/image", &to, NULL, &pub),
		SHMBUS_OK);
	CU_ASSERT_EQUAL_FATAL(
		shmbus__msgs__image__sub_open(h_suite_bus, "tagged/image", NULL, NULL, &sub),
		SHMBUS_OK);
	{
		struct shmbus_topic_info ti;
		size_t np = 0, ns = 0;

		CU_ASSERT_EQUAL_FATAL(shmbus_topic_inspect(h_suite_bus, "tagged/image", &ti, NULL, 0,
							   &np, NULL, 0, &ns), SHMBUS_OK);
		CU_ASSERT_TRUE(ti.flags & SHMBUS_TOPIC_INTEGRITY); /* really tagged */
		CU_ASSERT_STRING_EQUAL(ti.type_name, "shmbus.msgs.Image");
	}
	hdr.stamp_ns = 42;
	img.header = &hdr;
	img.width = 640;
	img.height = 480;
	img.encoding = (char *)"rgb8";
	img.step = 640 * 3;
	CU_ASSERT_EQUAL_FATAL(shmbus__msgs__image__loan_data(pub, &img, size, &loan), SHMBUS_OK);
	for (size_t i = 0; i < size; i++)
		loan.field[i] = (uint8_t)(i % 251);
	CU_ASSERT_EQUAL(shmbus__msgs__image__publish_loan(pub, &loan, NULL), SHMBUS_OK);
	CU_ASSERT_EQUAL_FATAL(shmbus__msgs__image__wait(sub, WAIT_NS), SHMBUS_OK);
	CU_ASSERT_EQUAL_FATAL(shmbus__msgs__image__view_data(sub, NULL, &got, &view), SHMBUS_OK);
	CU_ASSERT_EQUAL(got->width, 640);
	CU_ASSERT_EQUAL(got->header->stamp_ns, 42);
	CU_ASSERT_EQUAL_FATAL(view.field_size, size);
	CU_ASSERT_TRUE(view.field >= (const uint8_t *)view.view.data);
	CU_ASSERT_TRUE(view.field + view.field_size <=
		       (const uint8_t *)view.view.data + view.view.info.size);
	CU_ASSERT_EQUAL(view.field[size - 1], (uint8_t)((size - 1) % 251));
	CU_ASSERT_EQUAL(shmbus__msgs__image__view_release(sub, got, NULL, &view), SHMBUS_OK);
	shmbus_sub_stats(sub, &st);
	CU_ASSERT_EQUAL(st.received, 1);
	CU_ASSERT_EQUAL(st.rejected, 0);
	shmbus_sub_close(sub);
	shmbus_pub_close(pub);
}

static void test_take_tagged(void)
{
	struct shmbus_topic_options to;
	Shmbus__Test__All__Everything e, *got = NULL;
	Shmbus__Msgs__Image img = SHMBUS__MSGS__IMAGE__INIT, *gimg = NULL;
	int32_t numbers[3] = { -1, 300, 70000 };
	shmbus_pub *pub, *ipub;
	shmbus_sub *sub, *isub;

	/* Everything is unpacked from a private copy (packed varints). */
	shmbus__test__all__everything__init(&e);
	e.n_numbers = 3;
	e.numbers = numbers;
	e.default_ = (char *)"tagged";
	tagged(&to, 4096);
	CU_ASSERT_EQUAL_FATAL(
		shmbus__test__all__everything__pub_open(h_suite_bus, "tagged/all", &to, NULL, &pub),
		SHMBUS_OK);
	CU_ASSERT_EQUAL_FATAL(shmbus__test__all__everything__sub_open(h_suite_bus, "tagged/all",
								      NULL, NULL, &sub),
			      SHMBUS_OK);
	CU_ASSERT_EQUAL(shmbus__test__all__everything__publish(pub, &e, NULL), SHMBUS_OK);
	CU_ASSERT_EQUAL_FATAL(shmbus__test__all__everything__take(sub, NULL, &got, NULL), SHMBUS_OK);
	CU_ASSERT_EQUAL_FATAL(got->n_numbers, 3);
	CU_ASSERT_EQUAL(got->numbers[2], 70000);
	CU_ASSERT_STRING_EQUAL(got->default_, "tagged");
	shmbus__test__all__everything__free(got, NULL);

	/* Image is unpacked in place. */
	CU_ASSERT_EQUAL_FATAL(
		shmbus__msgs__image__pub_open(h_suite_bus, "tagged/small", &to, NULL, &ipub),
		SHMBUS_OK);
	CU_ASSERT_EQUAL_FATAL(
		shmbus__msgs__image__sub_open(h_suite_bus, "tagged/small", NULL, NULL, &isub),
		SHMBUS_OK);
	img.width = 7;
	img.data.data = (uint8_t *)"pixels";
	img.data.len = 6;
	CU_ASSERT_EQUAL(shmbus__msgs__image__publish(ipub, &img, NULL), SHMBUS_OK);
	CU_ASSERT_EQUAL_FATAL(shmbus__msgs__image__take(isub, NULL, &gimg, NULL), SHMBUS_OK);
	CU_ASSERT_EQUAL(gimg->width, 7);
	CU_ASSERT_EQUAL(gimg->data.len, 6);
	shmbus__msgs__image__free(gimg, NULL);
	shmbus_sub_close(isub);
	shmbus_pub_close(ipub);
	shmbus_sub_close(sub);
	shmbus_pub_close(pub);
}

static void add(void)
{
	CU_pSuite s = h_add_bus_suite("typed_integrity", "integrity");

	CU_add_test(s, "zero-copy frame on a tagged topic", test_zero_copy_tagged);
	CU_add_test(s, "typed take on tagged topics", test_take_tagged);
}

int main(void)
{
	char *key_dir = util_mkdtemp();
	int rc;

	if (!key_dir || write_key(key_dir) != 0) {
		fprintf(stderr, "test_typed_integrity: cannot write a key file\n");
		return 1;
	}
	rc = h_run("test_typed_integrity", add);
	util_rmtree(key_dir);
	free(key_dir);
	return rc;
}
