/*
 * test_typed_constructs - a .proto with every construct the typed layer
 * handles (package, import from another directory, Timestamp, nested
 * messages and enums, oneofs, repeated and map fields, C keyword names,
 * two large bytes fields) compiles and round-trips over a real bus, whole
 * and with each large field viewed in place.
 */
#include "harness.h"

#include <CUnit/Basic.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h" /* typed_size_bound(), typed_pack(), typed_decode(): compiled in */

#include "golden.shmbus.h"
#include "nopkg.shmbus.h"
#include "shmbus/msgs/imu.shmbus.h"
#include "shmbus/test/all.shmbus.h"
#include "shmbus/test/bound.shmbus.h"
#include "shmbus/test/common/units.shmbus.h"
#include "shmbus/test/legacy.shmbus.h"

#define WAIT_NS 2000000000LL

typedef Shmbus__Test__All__Everything Everything;
typedef Shmbus__Test__All__Everything__Inner Inner;
typedef Shmbus__Test__All__Everything__Inner__Innermost Innermost;

/* Everything the message holds, kept alive for the whole test. */
static struct {
	Everything e;
	Google__Protobuf__Timestamp stamp;
	Shmbus__Test__Common__Quantity quantity;
	Inner inner, inners[2], choice, by_id_inner;
	Innermost innermost, more[3];
	Innermost *more_p[3];
	Inner *inners_p[2];
	int32_t numbers[5];
	char *names[3];
	Shmbus__Test__All__Colour colours[2];
	Shmbus__Test__All__Everything__CountsEntry counts[2];
	Shmbus__Test__All__Everything__CountsEntry *counts_p[2];
	Shmbus__Test__All__Everything__ByIdEntry by_id[1];
	Shmbus__Test__All__Everything__ByIdEntry *by_id_p[1];
	uint8_t blob[10000], extra[3000];
} f;

static void fill(void)
{
	Everything *e = &f.e;

	shmbus__test__all__everything__init(e);
	google__protobuf__timestamp__init(&f.stamp);
	f.stamp.seconds = 1764000000;
	f.stamp.nanos = 123456789;
	e->stamp = &f.stamp;
	shmbus__test__common__quantity__init(&f.quantity);
	f.quantity.value = 2.5;
	f.quantity.unit = SHMBUS__TEST__COMMON__UNIT__UNIT_METRE;
	e->quantity = &f.quantity;

	shmbus__test__all__everything__inner__innermost__init(&f.innermost);
	f.innermost.depth = -3;
	for (int i = 0; i < 3; i++) {
		shmbus__test__all__everything__inner__innermost__init(&f.more[i]);
		f.more[i].depth = i * 100 - 50;
		f.more_p[i] = &f.more[i];
	}
	shmbus__test__all__everything__inner__init(&f.inner);
	f.inner.label = (char *)"inner";
	f.inner.innermost = &f.innermost;
	f.inner.n_more = 3;
	f.inner.more = f.more_p;
	e->inner = &f.inner;
	e->mode = SHMBUS__TEST__ALL__EVERYTHING__MODE__MODE_FAST;
	e->colour = SHMBUS__TEST__ALL__COLOUR__COLOUR_GREEN;

	shmbus__test__all__everything__inner__init(&f.choice);
	f.choice.label = (char *)"chosen";
	e->choice_case = SHMBUS__TEST__ALL__EVERYTHING__CHOICE_NESTED_CHOICE;
	e->nested_choice = &f.choice;

	for (int i = 0; i < 5; i++)
		f.numbers[i] = (i - 2) * 1000003;
	e->n_numbers = 5;
	e->numbers = f.numbers;
	f.names[0] = (char *)"alpha";
	f.names[1] = (char *)"";
	f.names[2] = (char *)"gamma";
	e->n_names = 3;
	e->names = f.names;
	for (int i = 0; i < 2; i++) {
		shmbus__test__all__everything__inner__init(&f.inners[i]);
		f.inners[i].label = (char *)(i ? "second" : "first");
		f.inners_p[i] = &f.inners[i];
	}
	e->n_inners = 2;
	e->inners = f.inners_p;
	f.colours[0] = SHMBUS__TEST__ALL__COLOUR__COLOUR_RED;
	f.colours[1] = SHMBUS__TEST__ALL__COLOUR__COLOUR_GREEN;
	e->n_colours = 2;
	e->colours = f.colours;
	for (int i = 0; i < 2; i++) {
		shmbus__test__all__everything__counts_entry__init(&f.counts[i]);
		f.counts[i].key = (char *)(i ? "b" : "a");
		f.counts[i].value = i + 41;
		f.counts_p[i] = &f.counts[i];
	}
	e->n_counts = 2;
	e->counts = f.counts_p;
	shmbus__test__all__everything__inner__init(&f.by_id_inner);
	f.by_id_inner.label = (char *)"by id";
	shmbus__test__all__everything__by_id_entry__init(&f.by_id[0]);
	f.by_id[0].key = -7;
	f.by_id[0].value = &f.by_id_inner;
	f.by_id_p[0] = &f.by_id[0];
	e->n_by_id = 1;
	e->by_id = f.by_id_p;

	e->int_ = -12;
	e->default_ = (char *)"keyword";
	e->struct_ = 1;
	e->f64 = 0xfedcba9876543210ull;
	e->sf32 = -5;
	e->ratio = 0.75f;
	e->precise = 1.0 / 3.0;

	for (size_t i = 0; i < sizeof(f.blob); i++)
		f.blob[i] = (uint8_t)(i * 13 + 1);
	for (size_t i = 0; i < sizeof(f.extra); i++)
		f.extra[i] = (uint8_t)(255 - i);
	e->blob.data = f.blob;
	e->blob.len = sizeof(f.blob);
	e->extra.data = f.extra;
	e->extra.len = sizeof(f.extra);
}

static void check_fields(const Everything *g, int with_blob, int with_extra)
{
	CU_ASSERT_PTR_NOT_NULL_FATAL(g);
	CU_ASSERT_PTR_NOT_NULL_FATAL(g->stamp);
	CU_ASSERT_EQUAL(g->stamp->seconds, 1764000000);
	CU_ASSERT_EQUAL(g->stamp->nanos, 123456789);
	CU_ASSERT_PTR_NOT_NULL_FATAL(g->quantity);
	CU_ASSERT_EQUAL(g->quantity->unit, SHMBUS__TEST__COMMON__UNIT__UNIT_METRE);
	CU_ASSERT_PTR_NOT_NULL_FATAL(g->inner);
	CU_ASSERT_PTR_NOT_NULL_FATAL(g->inner->innermost);
	CU_ASSERT_EQUAL(g->inner->innermost->depth, -3);
	CU_ASSERT_EQUAL_FATAL(g->inner->n_more, 3);
	CU_ASSERT_EQUAL(g->inner->more[2]->depth, 150);
	CU_ASSERT_EQUAL(g->mode, SHMBUS__TEST__ALL__EVERYTHING__MODE__MODE_FAST);
	CU_ASSERT_EQUAL_FATAL(g->choice_case, SHMBUS__TEST__ALL__EVERYTHING__CHOICE_NESTED_CHOICE);
	CU_ASSERT_STRING_EQUAL(g->nested_choice->label, "chosen");
	CU_ASSERT_EQUAL_FATAL(g->n_numbers, 5);
	CU_ASSERT_EQUAL(g->numbers[0], -2000006);
	CU_ASSERT_EQUAL_FATAL(g->n_names, 3);
	CU_ASSERT_STRING_EQUAL(g->names[1], "");
	CU_ASSERT_STRING_EQUAL(g->names[2], "gamma");
	CU_ASSERT_EQUAL_FATAL(g->n_inners, 2);
	CU_ASSERT_STRING_EQUAL(g->inners[1]->label, "second");
	CU_ASSERT_EQUAL_FATAL(g->n_colours, 2);
	CU_ASSERT_EQUAL(g->colours[0], SHMBUS__TEST__ALL__COLOUR__COLOUR_RED);
	CU_ASSERT_EQUAL_FATAL(g->n_counts, 2);
	CU_ASSERT_STRING_EQUAL(g->counts[1]->key, "b");
	CU_ASSERT_EQUAL(g->counts[1]->value, 42);
	CU_ASSERT_EQUAL_FATAL(g->n_by_id, 1);
	CU_ASSERT_EQUAL(g->by_id[0]->key, -7);
	CU_ASSERT_STRING_EQUAL(g->by_id[0]->value->label, "by id");
	CU_ASSERT_EQUAL(g->int_, -12);
	CU_ASSERT_STRING_EQUAL(g->default_, "keyword");
	CU_ASSERT_TRUE(g->struct_);
	CU_ASSERT_EQUAL(g->f64, 0xfedcba9876543210ull);
	CU_ASSERT_EQUAL(g->sf32, -5);
	CU_ASSERT_EQUAL(g->ratio, 0.75f);
	CU_ASSERT_EQUAL(g->precise, 1.0 / 3.0);
	if (with_blob) {
		CU_ASSERT_EQUAL_FATAL(g->blob.len, sizeof(f.blob));
		CU_ASSERT_EQUAL(memcmp(g->blob.data, f.blob, sizeof(f.blob)), 0);
	} else {
		CU_ASSERT_EQUAL(g->blob.len, 0);
	}
	if (with_extra) {
		CU_ASSERT_EQUAL_FATAL(g->extra.len, sizeof(f.extra));
		CU_ASSERT_EQUAL(memcmp(g->extra.data, f.extra, sizeof(f.extra)), 0);
	} else {
		CU_ASSERT_EQUAL(g->extra.len, 0);
	}
}

static void open_everything(const char *topic, shmbus_pub **pub, shmbus_sub **sub)
{
	struct shmbus_topic_options to;

	shmbus_topic_options_init(&to);
	to.max_message_size = 64 * 1024;
	CU_ASSERT_EQUAL_FATAL(
		shmbus__test__all__everything__pub_open(h_suite_bus, topic, &to, NULL, pub),
		SHMBUS_OK);
	CU_ASSERT_EQUAL_FATAL(
		shmbus__test__all__everything__sub_open(h_suite_bus, topic, NULL, NULL, sub),
		SHMBUS_OK);
}

static int inside(const struct shmbus_typed_view *v)
{
	const uint8_t *slot = v->view.data;

	return v->field >= slot && v->field + v->field_size <= slot + v->view.info.size;
}

static void test_round_trip(void)
{
	shmbus_pub *pub;
	shmbus_sub *sub;
	Everything *g = NULL;

	fill();
	open_everything("all/whole", &pub, &sub);
	CU_ASSERT_EQUAL(shmbus__test__all__everything__publish(pub, &f.e, NULL), SHMBUS_OK);
	CU_ASSERT_EQUAL_FATAL(shmbus__test__all__everything__wait(sub, WAIT_NS), SHMBUS_OK);
	CU_ASSERT_EQUAL_FATAL(shmbus__test__all__everything__take(sub, NULL, &g, NULL), SHMBUS_OK);
	check_fields(g, 1, 1);
	shmbus__test__all__everything__free(g, NULL);

	/* Each oneof member in turn. */
	f.e.choice_case = SHMBUS__TEST__ALL__EVERYTHING__CHOICE_RAW_CHOICE;
	f.e.raw_choice.data = (uint8_t *)"raw";
	f.e.raw_choice.len = 3;
	CU_ASSERT_EQUAL(shmbus__test__all__everything__publish(pub, &f.e, NULL), SHMBUS_OK);
	f.e.choice_case = SHMBUS__TEST__ALL__EVERYTHING__CHOICE_TEXT;
	f.e.text = (char *)"text";
	CU_ASSERT_EQUAL(shmbus__test__all__everything__publish(pub, &f.e, NULL), SHMBUS_OK);
	CU_ASSERT_EQUAL_FATAL(shmbus__test__all__everything__take(sub, NULL, &g, NULL), SHMBUS_OK);
	CU_ASSERT_EQUAL(g->choice_case, SHMBUS__TEST__ALL__EVERYTHING__CHOICE_RAW_CHOICE);
	CU_ASSERT_EQUAL(g->raw_choice.len, 3);
	shmbus__test__all__everything__free(g, NULL);
	CU_ASSERT_EQUAL_FATAL(shmbus__test__all__everything__take(sub, NULL, &g, NULL), SHMBUS_OK);
	CU_ASSERT_EQUAL(g->choice_case, SHMBUS__TEST__ALL__EVERYTHING__CHOICE_TEXT);
	CU_ASSERT_STRING_EQUAL(g->text, "text");
	shmbus__test__all__everything__free(g, NULL);
	shmbus_sub_close(sub);
	shmbus_pub_close(pub);
}

/* Packed normally, blob sits between other fields on the wire: the view
 * has to gather the fields around it. */
static void test_view_in_the_middle(void)
{
	struct shmbus_typed_view view;
	shmbus_pub *pub;
	shmbus_sub *sub;
	Everything *g = NULL;

	fill();
	open_everything("all/middle", &pub, &sub);
	CU_ASSERT_EQUAL(shmbus__test__all__everything__publish(pub, &f.e, NULL), SHMBUS_OK);
	CU_ASSERT_EQUAL(shmbus__test__all__everything__publish(pub, &f.e, NULL), SHMBUS_OK);
	CU_ASSERT_EQUAL_FATAL(shmbus__test__all__everything__view_blob(sub, NULL, &g, &view),
			      SHMBUS_OK);
	check_fields(g, 0, 1);
	CU_ASSERT_EQUAL_FATAL(view.field_size, sizeof(f.blob));
	CU_ASSERT_TRUE(inside(&view));
	CU_ASSERT_EQUAL(memcmp(view.field, f.blob, sizeof(f.blob)), 0);
	CU_ASSERT_EQUAL(shmbus__test__all__everything__view_release(sub, g, NULL, &view),
			SHMBUS_OK);
	CU_ASSERT_EQUAL_FATAL(shmbus__test__all__everything__view_extra(sub, NULL, &g, &view),
			      SHMBUS_OK);
	check_fields(g, 1, 0);
	CU_ASSERT_EQUAL_FATAL(view.field_size, sizeof(f.extra));
	CU_ASSERT_TRUE(inside(&view));
	CU_ASSERT_EQUAL(memcmp(view.field, f.extra, sizeof(f.extra)), 0);
	CU_ASSERT_EQUAL(shmbus__test__all__everything__view_release(sub, g, NULL, &view),
			SHMBUS_OK);
	shmbus_sub_close(sub);
	shmbus_pub_close(pub);
}

/* Loaned, blob is written last, after every other field including extra. */
static void test_loan_with_other_bytes(void)
{
	struct shmbus_typed_loan loan;
	struct shmbus_typed_view view;
	shmbus_pub *pub;
	shmbus_sub *sub;
	Everything *g = NULL;

	fill();
	open_everything("all/loan", &pub, &sub);
	CU_ASSERT_EQUAL_FATAL(shmbus__test__all__everything__loan_blob(pub, &f.e, sizeof(f.blob),
								      &loan), SHMBUS_OK);
	memcpy(loan.field, f.blob, sizeof(f.blob));
	CU_ASSERT_EQUAL(shmbus__test__all__everything__publish_loan(pub, &loan, NULL), SHMBUS_OK);
	CU_ASSERT_EQUAL_FATAL(shmbus__test__all__everything__loan_blob(pub, &f.e, sizeof(f.blob),
								      &loan), SHMBUS_OK);
	memcpy(loan.field, f.blob, sizeof(f.blob));
	CU_ASSERT_EQUAL(shmbus__test__all__everything__publish_loan(pub, &loan, NULL), SHMBUS_OK);

	CU_ASSERT_EQUAL_FATAL(shmbus__test__all__everything__view_blob(sub, NULL, &g, &view),
			      SHMBUS_OK);
	check_fields(g, 0, 1);
	CU_ASSERT_TRUE(inside(&view));
	/* Laid out last: the field ends the message. */
	CU_ASSERT_PTR_EQUAL(view.field + view.field_size,
			    (const uint8_t *)view.view.data + view.view.info.size);
	CU_ASSERT_EQUAL(memcmp(view.field, f.blob, sizeof(f.blob)), 0);
	CU_ASSERT_EQUAL(shmbus__test__all__everything__view_release(sub, g, NULL, &view),
			SHMBUS_OK);
	CU_ASSERT_EQUAL_FATAL(shmbus__test__all__everything__take(sub, NULL, &g, NULL), SHMBUS_OK);
	check_fields(g, 1, 1);
	shmbus__test__all__everything__free(g, NULL);
	shmbus_sub_close(sub);
	shmbus_pub_close(pub);
}

static void test_keyword_type_and_imports(void)
{
	Shmbus__Test__All__Switch sw = SHMBUS__TEST__ALL__SWITCH__INIT, *gs = NULL;
	Shmbus__Test__Common__Quantity qt = SHMBUS__TEST__COMMON__QUANTITY__INIT, *gq = NULL;
	Shmbus__Test__Golden__Sample__Part part = SHMBUS__TEST__GOLDEN__SAMPLE__PART__INIT, *gp = NULL;
	shmbus_pub *pub;
	shmbus_sub *sub;

	sw.case_ = 99;
	CU_ASSERT_EQUAL_FATAL(
		shmbus__test__all__switch__pub_open(h_suite_bus, "switch", NULL, NULL, &pub),
		SHMBUS_OK);
	CU_ASSERT_EQUAL_FATAL(
		shmbus__test__all__switch__sub_open(h_suite_bus, "switch", NULL, NULL, &sub),
		SHMBUS_OK);
	CU_ASSERT_STRING_EQUAL(shmbus_sub_type_name(sub), "shmbus.test.all.switch");
	CU_ASSERT_EQUAL(shmbus__test__all__switch__publish(pub, &sw, NULL), SHMBUS_OK);
	CU_ASSERT_EQUAL_FATAL(shmbus__test__all__switch__take(sub, NULL, &gs, NULL), SHMBUS_OK);
	CU_ASSERT_EQUAL(gs->case_, 99);
	shmbus__test__all__switch__free(gs, NULL);
	shmbus_sub_close(sub);
	shmbus_pub_close(pub);

	qt.value = -1.25;
	CU_ASSERT_EQUAL_FATAL(
		shmbus__test__common__quantity__pub_open(h_suite_bus, "qty", NULL, NULL, &pub),
		SHMBUS_OK);
	CU_ASSERT_EQUAL_FATAL(
		shmbus__test__common__quantity__sub_open(h_suite_bus, "qty", NULL, NULL, &sub),
		SHMBUS_OK);
	CU_ASSERT_EQUAL(shmbus__test__common__quantity__publish(pub, &qt, NULL), SHMBUS_OK);
	CU_ASSERT_EQUAL_FATAL(shmbus__test__common__quantity__take(sub, NULL, &gq, NULL), SHMBUS_OK);
	CU_ASSERT_EQUAL(gq->value, -1.25);
	shmbus__test__common__quantity__free(gq, NULL);
	shmbus_sub_close(sub);
	shmbus_pub_close(pub);

	/* A nested message type is a topic type of its own. */
	part.name = (char *)"nested";
	CU_ASSERT_EQUAL_FATAL(
		shmbus__test__golden__sample__part__pub_open(h_suite_bus, "part", NULL, NULL, &pub),
		SHMBUS_OK);
	CU_ASSERT_EQUAL_FATAL(
		shmbus__test__golden__sample__part__sub_open(h_suite_bus, "part", NULL, NULL, &sub),
		SHMBUS_OK);
	CU_ASSERT_STRING_EQUAL(shmbus_sub_type_name(sub), "shmbus.test.golden.Sample.Part");
	CU_ASSERT_EQUAL(shmbus__test__golden__sample__part__publish(pub, &part, NULL), SHMBUS_OK);
	CU_ASSERT_EQUAL_FATAL(shmbus__test__golden__sample__part__take(sub, NULL, &gp, NULL),
			      SHMBUS_OK);
	CU_ASSERT_STRING_EQUAL(gp->name, "nested");
	shmbus__test__golden__sample__part__free(gp, NULL);
	shmbus_sub_close(sub);
	shmbus_pub_close(pub);
}

/* A file without a package; its enum comes from an enum-only file. */
static void test_no_package(void)
{
	Bare b = BARE__INIT, *got = NULL;
	shmbus_pub *pub;
	shmbus_sub *sub;

	b.level = SHMBUS__TEST__COMMON__LEVEL__LEVEL_HIGH;
	b.note = (char *)"bare";
	CU_ASSERT_EQUAL_FATAL(bare__pub_open(h_suite_bus, "bare", NULL, NULL, &pub), SHMBUS_OK);
	CU_ASSERT_EQUAL_FATAL(bare__sub_open(h_suite_bus, "bare", NULL, NULL, &sub), SHMBUS_OK);
	CU_ASSERT_STRING_EQUAL(shmbus_sub_type_name(sub), "Bare");
	CU_ASSERT_EQUAL(bare__publish(pub, &b, NULL), SHMBUS_OK);
	CU_ASSERT_EQUAL_FATAL(bare__take(sub, NULL, &got, NULL), SHMBUS_OK);
	CU_ASSERT_EQUAL(got->level, SHMBUS__TEST__COMMON__LEVEL__LEVEL_HIGH);
	CU_ASSERT_STRING_EQUAL(got->note, "bare");
	bare__free(got, NULL);
	shmbus_sub_close(sub);
	shmbus_pub_close(pub);
}

/* A taken message is one block, chained when its structs outgrow the
 * first: 300 empty Inner messages are two wire bytes each and a whole
 * struct unpacked, far more than the first block holds. Freed at once
 * by __free, piece by piece by nothing (ASan and glibc catch a wrong
 * free either way). */
#define MANY 300

static void test_one_block_chained(void)
{
	static Inner many[MANY];
	static Inner *many_p[MANY];
	shmbus_pub *pub;
	shmbus_sub *sub;
	Everything *g = NULL;
	ProtobufCMessage *m = NULL;
	uint8_t *wire;
	size_t size;

	fill();
	for (int i = 0; i < MANY; i++) {
		shmbus__test__all__everything__inner__init(&many[i]);
		many_p[i] = &many[i];
	}
	many[MANY - 1].label = (char *)"last";
	f.e.n_inners = MANY;
	f.e.inners = many_p;
	open_everything("all/one_block", &pub, &sub);
	CU_ASSERT_EQUAL(shmbus__test__all__everything__publish(pub, &f.e, NULL), SHMBUS_OK);
	CU_ASSERT_EQUAL_FATAL(shmbus__test__all__everything__take(sub, NULL, &g, NULL), SHMBUS_OK);
	CU_ASSERT_EQUAL_FATAL(g->n_inners, MANY);
	CU_ASSERT_STRING_EQUAL(g->inners[MANY - 1]->label, "last");
	CU_ASSERT_STRING_EQUAL(g->inners[0]->label, "");
	CU_ASSERT_EQUAL(g->blob.len, sizeof(f.blob));
	shmbus__test__all__everything__free(g, NULL);

	/* shmbus_typed_unpack: the same bytes, the same way. */
	size = shmbus__test__all__everything__get_packed_size(&f.e);
	wire = malloc(size);
	CU_ASSERT_PTR_NOT_NULL_FATAL(wire);
	shmbus__test__all__everything__pack(&f.e, wire);
	CU_ASSERT_EQUAL_FATAL(shmbus_typed_unpack(&shmbus__test__all__everything__shmbus_type, NULL,
						  wire, size, &m),
			      SHMBUS_OK);
	g = (Everything *)m;
	CU_ASSERT_EQUAL_FATAL(g->n_inners, MANY);
	CU_ASSERT_STRING_EQUAL(g->inners[MANY - 1]->label, "last");
	shmbus_typed_free(&shmbus__test__all__everything__shmbus_type, m, NULL);
	/* Bytes that are not an Everything: refused, with the reason. */
	wire[0] = 0xff;
	wire[1] = 0xff;
	CU_ASSERT_EQUAL(shmbus_typed_unpack(&shmbus__test__all__everything__shmbus_type, NULL, wire,
					    size, &m),
			SHMBUS_EBADMSG);
	CU_ASSERT_PTR_NULL(m);
	CU_ASSERT_PTR_NOT_NULL(strstr(shmbus_errmsg(), "do not decode as"));
	free(wire);
	shmbus_sub_close(sub);
	shmbus_pub_close(pub);
	fill();
}

/* A type description without SHMBUS_TYPED_ARENA (as written before the
 * flag) gets malloc per piece for a NULL allocator, so code that frees
 * with protobuf_c_message_free_unpacked() keeps working. */
static void test_legacy_type_pieces(void)
{
	struct shmbus_typed_type legacy = shmbus__test__all__everything__shmbus_type;
	shmbus_pub *pub;
	shmbus_sub *sub;
	ProtobufCMessage *m = NULL;

	legacy.flags &= ~SHMBUS_TYPED_ARENA;
	fill();
	open_everything("all/legacy", &pub, &sub);
	CU_ASSERT_EQUAL(shmbus__test__all__everything__publish(pub, &f.e, NULL), SHMBUS_OK);
	CU_ASSERT_EQUAL(shmbus__test__all__everything__publish(pub, &f.e, NULL), SHMBUS_OK);
	CU_ASSERT_EQUAL_FATAL(shmbus_typed_take(sub, &legacy, NULL, &m, NULL), SHMBUS_OK);
	check_fields((Everything *)m, 1, 1);
	protobuf_c_message_free_unpacked(m, NULL);
	CU_ASSERT_EQUAL_FATAL(shmbus_typed_take(sub, &legacy, NULL, &m, NULL), SHMBUS_OK);
	shmbus_typed_free(&legacy, m, NULL);
	shmbus_sub_close(sub);
	shmbus_pub_close(pub);
}

/* An Imu as a driver fills it: a header with a frame id, both vectors
 * (the same one), the three 3x3 covariances (the same nine values). */
static void imu_fill(Shmbus__Msgs__Imu *imu, Shmbus__Msgs__Header *header,
		     Shmbus__Msgs__Vector3 *v, double *cov)
{
	shmbus__msgs__imu__init(imu);
	shmbus__msgs__header__init(header);
	shmbus__msgs__vector3__init(v);
	header->frame_id = (char *)"imu_link";
	imu->header = header;
	imu->angular_velocity = v;
	imu->linear_acceleration = v;
	imu->n_orientation_covariance = imu->n_angular_velocity_covariance =
		imu->n_linear_acceleration_covariance = 9;
	imu->orientation_covariance = imu->angular_velocity_covariance =
		imu->linear_acceleration_covariance = cov;
}

/* decode.c on its own: its pieces from malloc, kept to be freed after. */
static void *decoded[256];
static size_t n_decoded;

static void *decoded_alloc(void *data, size_t size)
{
	void *p = n_decoded < sizeof(decoded) / sizeof(decoded[0]) ? malloc(size) : NULL;

	(void)data;
	if (p)
		decoded[n_decoded++] = p;
	return p;
}

static void decoded_nofree(void *data, void *p)
{
	(void)data;
	(void)p;
}

static ProtobufCAllocator decoding = { decoded_alloc, decoded_nofree, NULL };

static void decoded_free(void)
{
	while (n_decoded)
		free(decoded[--n_decoded]);
}

/* Two messages of one type pack into the same bytes. */
static void check_same_packed(const ProtobufCMessage *a, const ProtobufCMessage *b)
{
	size_t n = protobuf_c_message_get_packed_size(a);
	uint8_t *pa = malloc(n + 1), *pb = malloc(n + 1);

	CU_ASSERT_PTR_NOT_NULL_FATAL(pa);
	CU_ASSERT_PTR_NOT_NULL_FATAL(pb);
	CU_ASSERT_EQUAL_FATAL(protobuf_c_message_get_packed_size(b), n);
	CU_ASSERT_EQUAL(protobuf_c_message_pack(a, pa), n);
	CU_ASSERT_EQUAL(protobuf_c_message_pack(b, pb), n);
	CU_ASSERT_EQUAL(memcmp(pa, pb, n), 0);
	free(pa);
	free(pb);
}

/* What decode.c answers for wire as type (`expect`: SHMBUS_OK, where it
 * must then give what protobuf-c gives, or DECODE_FALLBACK); and a take's
 * unpack (decode.c, else protobuf-c into one block) gives protobuf-c's
 * message, or refuses with it. The decoded message, or NULL, is left in
 * *out until the next call (n_decoded pieces). */
static void check_decode(const struct shmbus_typed_type *type, const uint8_t *wire, size_t size,
			 int expect, ProtobufCMessage **out)
{
	ProtobufCMessage *theirs = protobuf_c_message_unpack(type->descriptor, NULL, size, wire);
	ProtobufCMessage *block = NULL;
	int rc;

	decoded_free();
	*out = NULL;
	rc = typed_decode(type->descriptor, &decoding, wire, size, out);
	CU_ASSERT_EQUAL(rc, expect);
	if (rc == SHMBUS_OK) {
		CU_ASSERT_PTR_NOT_NULL_FATAL(theirs);
		check_same_packed(*out, theirs);
	} else {
		*out = NULL;
	}
	rc = shmbus_typed_unpack(type, NULL, wire, size, &block);
	CU_ASSERT_EQUAL(rc, theirs ? SHMBUS_OK : SHMBUS_EBADMSG);
	if (block && theirs)
		check_same_packed(block, theirs);
	shmbus_typed_free(type, block, NULL);
	protobuf_c_message_free_unpacked(theirs, NULL);
}

static void test_one_walk_decode(void)
{
	const struct shmbus_typed_type *all = &shmbus__test__all__everything__shmbus_type;
	Shmbus__Msgs__Imu imu;
	Shmbus__Msgs__Header header;
	Shmbus__Msgs__Vector3 v;
	Shmbus__Msgs__Quaternion q = SHMBUS__MSGS__QUATERNION__INIT;
	Shmbus__Test__Legacy__Frame frame = SHMBUS__TEST__LEGACY__FRAME__INIT;
	double cov[9];
	ProtobufCMessage *m;
	Everything *g;
	uint8_t *wire, buf[1024];
	size_t size;

	/* Every construct, as protobuf-c packs it: decoded in one walk. */
	fill();
	size = shmbus__test__all__everything__get_packed_size(&f.e);
	wire = malloc(size + 16);
	CU_ASSERT_PTR_NOT_NULL_FATAL(wire);
	shmbus__test__all__everything__pack(&f.e, wire);
	check_decode(all, wire, size, SHMBUS_OK, &m);
	check_fields((Everything *)m, 1, 1);
	check_decode(all, wire, 0, SHMBUS_OK, &m);
	/* Cut short inside its last field: refused by both. */
	check_decode(all, wire, size - 1, DECODE_FALLBACK, &m);

	/* A field this schema does not know (100, varint) is kept as an
	 * unknown field, as protobuf-c keeps it. */
	memcpy(wire + size, "\xa0\x06\x01", 3);
	check_decode(all, wire, size + 3, SHMBUS_OK, &m);
	CU_ASSERT_PTR_NOT_NULL_FATAL(m);
	CU_ASSERT_EQUAL(m->n_unknown_fields, 1);
	free(wire);

	/* Unknown fields of every wire type, in a sub-message too (an Inner
	 * from a newer schema: field 9, length-delimited). */
	static const uint8_t newer[] = {
		0x1a, 0x08, 0x0a, 0x01, 'i', 0x4a, 0x03, 'n', 'e', 'w', /* inner */
		0xa8, 0x06, 0x96, 0x01,                                 /* 101, varint */
		0x90, 0x01, 0x03,                                       /* int */
		0xb1, 0x06, 1, 2, 3, 4, 5, 6, 7, 8,                     /* 102, 64-bit */
		0xbd, 0x06, 1, 2, 3, 4,                                 /* 103, 32-bit */
	};
	check_decode(all, newer, sizeof(newer), SHMBUS_OK, &m);
	g = (Everything *)m;
	CU_ASSERT_PTR_NOT_NULL_FATAL(g);
	CU_ASSERT_EQUAL(g->base.n_unknown_fields, 3);
	CU_ASSERT_EQUAL(g->int_, 3);
	CU_ASSERT_PTR_NOT_NULL_FATAL(g->inner);
	CU_ASSERT_EQUAL(g->inner->base.n_unknown_fields, 1);
	CU_ASSERT_STRING_EQUAL(g->inner->label, "i");
	/* An unknown field of a wire type protobuf-c refuses (a group). */
	static const uint8_t group[] = { 0xa3, 0x06 };
	check_decode(all, group, sizeof(group), DECODE_FALLBACK, &m);

	/* What encoders other than protobuf-c may write, read as protobuf-c
	 * reads it: a repeated int32 one value at a time, around other
	 * fields; a scalar and a string given twice (the last wins); a bool
	 * whose only set bits are in its tenth byte (true). */
	static const uint8_t odd[] = {
		0x50, 0x05,                                     /* numbers */
		0x90, 0x01, 0x03, 0x90, 0x01, 0x04,             /* int */
		0x50, 0x07,                                     /* numbers */
		0x9a, 0x01, 0x01, 'a', 0x9a, 0x01, 0x01, 'b',   /* default */
		0xb0, 0x01, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x02, /* struct */
	};
	check_decode(all, odd, sizeof(odd), SHMBUS_OK, &m);
	g = (Everything *)m;
	CU_ASSERT_PTR_NOT_NULL_FATAL(g);
	CU_ASSERT_EQUAL_FATAL(g->n_numbers, 2);
	CU_ASSERT_EQUAL(g->numbers[0], 5);
	CU_ASSERT_EQUAL(g->numbers[1], 7);
	CU_ASSERT_EQUAL(g->int_, 4);
	CU_ASSERT_STRING_EQUAL(g->default_, "b");
	CU_ASSERT_TRUE(g->struct_);

	/* A sub-message given twice is merged, a oneof set twice keeps the
	 * last, a repeated field given one value at a time and packed too,
	 * or packed twice, is joined: protobuf-c's to do. */
	static const uint8_t twice[] = { 0x0a, 0x02, 0x08, 0x01, 0x0a, 0x02, 0x10, 0x02 };
	static const uint8_t oneof_twice[] = { 0x32, 0x01, 'x', 0x38, 0x05 };
	static const uint8_t mixed[] = { 0x50, 0x05, 0x52, 0x02, 0x01, 0x02 };
	static const uint8_t packed_twice[] = { 0x52, 0x01, 0x01, 0x52, 0x02, 0x02, 0x03 };
	check_decode(all, twice, sizeof(twice), DECODE_FALLBACK, &m);
	check_decode(all, oneof_twice, sizeof(oneof_twice), DECODE_FALLBACK, &m);
	check_decode(all, mixed, sizeof(mixed), DECODE_FALLBACK, &m);
	check_decode(all, packed_twice, sizeof(packed_twice), DECODE_FALLBACK, &m);
	/* Packed bytes holding no whole varint: refused (found by
	 * fuzz_typed_wire). */
	static const uint8_t unterminated[] = { 0x6a, 0x02, 0xff, 0xfd };
	check_decode(all, unterminated, sizeof(unterminated), DECODE_FALLBACK, &m);

	/* An Imu as a driver fills it, with an orientation. */
	imu_fill(&imu, &header, &v, cov);
	header.stamp_ns = 1764000000123456789;
	for (int i = 0; i < 9; i++)
		cov[i] = i * 0.25 - 1;
	v.x = 0.5;
	v.z = 9.81;
	q.w = 1;
	imu.orientation = &q;
	size = shmbus__msgs__imu__pack(&imu, buf);
	check_decode(&shmbus__msgs__imu__shmbus_type, buf, size, SHMBUS_OK, &m);
	CU_ASSERT_PTR_NOT_NULL_FATAL(m);
	CU_ASSERT_STRING_EQUAL(((Shmbus__Msgs__Imu *)m)->header->frame_id, "imu_link");
	CU_ASSERT_EQUAL(((Shmbus__Msgs__Imu *)m)->linear_acceleration_covariance[8], 1.0);

	/* proto2: required fields, a default, has_ flags. Without its
	 * required checksum a Frame is refused by protobuf-c. */
	frame.id = 7;
	frame.checksum.data = (uint8_t *)"\x01\x02";
	frame.checksum.len = 2;
	frame.has_pixels = 1;
	frame.pixels.data = (uint8_t *)"px";
	frame.pixels.len = 2;
	size = shmbus__test__legacy__frame__pack(&frame, buf);
	check_decode(&shmbus__test__legacy__frame__shmbus_type, buf, size, SHMBUS_OK, &m);
	CU_ASSERT_PTR_NOT_NULL_FATAL(m);
	CU_ASSERT_STRING_EQUAL(((Shmbus__Test__Legacy__Frame *)m)->note, "none");
	CU_ASSERT_TRUE(((Shmbus__Test__Legacy__Frame *)m)->has_pixels);
	check_decode(&shmbus__test__legacy__frame__shmbus_type, buf, 2, DECODE_FALLBACK, &m);
	decoded_free();
}

/* The bound a publish packs against without sizing: never below what
 * protobuf-c packs, for every construct (strings, bytes, repeated and map
 * fields, oneofs, nested and imported messages, unknown fields). */
static void check_bound(const ProtobufCMessage *m)
{
	size_t exact = protobuf_c_message_get_packed_size(m), bound = typed_size_bound(m);

	CU_ASSERT_TRUE(bound >= exact);
	if (bound < exact)
		fprintf(stderr, "%s: bound %zu < packed %zu\n", m->descriptor->name, bound, exact);
}

/* check() on f.e with every construct (fill()), then each other member
 * of its oneof, then with none and without its default-named string and
 * its inner message; f.e is filled again after. */
static void everything_variants(void (*check)(const ProtobufCMessage *m))
{
	fill();
	check(&f.e.base);
	f.e.choice_case = SHMBUS__TEST__ALL__EVERYTHING__CHOICE_TEXT;
	f.e.text = (char *)"text";
	check(&f.e.base);
	f.e.choice_case = SHMBUS__TEST__ALL__EVERYTHING__CHOICE_RAW_CHOICE;
	f.e.raw_choice.data = f.extra;
	f.e.raw_choice.len = 300;
	check(&f.e.base);
	f.e.choice_case = SHMBUS__TEST__ALL__EVERYTHING__CHOICE__NOT_SET;
	f.e.default_ = NULL;
	f.e.inner = NULL;
	check(&f.e.base);
	fill();
}

/* f.e packed and unpacked as an empty message: every field of it kept as
 * an unknown field. Freed with protobuf_c_message_free_unpacked(). */
static ProtobufCMessage *everything_unknown(void)
{
	size_t size = shmbus__test__all__everything__get_packed_size(&f.e);
	uint8_t *wire = malloc(size);
	ProtobufCMessage *m;

	CU_ASSERT_PTR_NOT_NULL_FATAL(wire);
	shmbus__test__all__everything__pack(&f.e, wire);
	m = protobuf_c_message_unpack(&shmbus__test__bound__empty__descriptor, NULL, size, wire);
	free(wire);
	CU_ASSERT_PTR_NOT_NULL_FATAL(m);
	CU_ASSERT_TRUE(m->n_unknown_fields > 0);
	return m;
}

/* pack.c's packer writes protobuf-c's bytes for m, no more (it is given
 * the exact room and a guard byte after it). */
static void check_pack(const ProtobufCMessage *m)
{
	size_t n = protobuf_c_message_get_packed_size(m), got;
	uint8_t *theirs = malloc(n + 1), *ours = malloc(n + 1);

	CU_ASSERT_PTR_NOT_NULL_FATAL(theirs);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ours);
	CU_ASSERT_EQUAL_FATAL(protobuf_c_message_pack(m, theirs), n);
	ours[n] = 0xa5;
	got = typed_pack(m, ours);
	CU_ASSERT_EQUAL(got, n);
	CU_ASSERT_EQUAL(ours[n], 0xa5);
	CU_ASSERT_TRUE(got == n && memcmp(ours, theirs, n) == 0);
	if (got != n || memcmp(ours, theirs, n) != 0)
		fprintf(stderr, "%s: packed %zu bytes unlike protobuf-c's %zu\n", m->descriptor->name,
			got, n);
	free(theirs);
	free(ours);
}

/* Every construct and value edge the packer has a way for: proto3 zero
 * values left out (-0.0 among them, as protobuf-c), proto2 presence and
 * defaults, oneofs of every kind, packed and unpacked repeated fields
 * with negative values, keys of one to five bytes, lengths of one to
 * three bytes (sub-messages and packed fields moved up), unknown
 * fields. */
static void test_pack(void)
{
	Shmbus__Test__Bound__Scalars sc, sc2;
	Shmbus__Test__Bound__Nested nested;
	Shmbus__Test__Bound__Nested__Small small;
	Shmbus__Test__Bound__Empty empty;
	Shmbus__Test__Legacy__Frame frame = SHMBUS__TEST__LEGACY__FRAME__INIT;
	Shmbus__Msgs__Imu imu;
	Shmbus__Msgs__Header header;
	Shmbus__Msgs__Vector3 v;
	double cov[9];
	int32_t many[40];
	static char long_label[20000];
	ProtobufCMessage *unknown;

	everything_variants(check_pack);
	f.e.choice_case = SHMBUS__TEST__ALL__EVERYTHING__CHOICE_TEXT;
	f.e.text = (char *)""; /* a oneof member is packed even when empty */
	check_pack(&f.e.base);
	f.e.choice_case = SHMBUS__TEST__ALL__EVERYTHING__CHOICE_NUMBER;
	f.e.number = 0;
	check_pack(&f.e.base);
	f.e.number = INT64_MIN;
	check_pack(&f.e.base);
	f.e.choice_case = SHMBUS__TEST__ALL__EVERYTHING__CHOICE_NESTED_CHOICE;
	f.e.nested_choice = NULL; /* a oneof message not set: left out */
	check_pack(&f.e.base);
	f.e.choice_case = SHMBUS__TEST__ALL__EVERYTHING__CHOICE__NOT_SET;
	f.e.ratio = -0.0f; /* zero to protobuf-c: left out */
	f.e.precise = -0.0;
	f.e.struct_ = 0;
	f.e.int_ = INT32_MIN;
	check_pack(&f.e.base);
	/* Lengths of two and three bytes: a sub-message, a string in it,
	 * a packed field. */
	fill();
	memset(long_label, 'x', sizeof(long_label) - 1);
	f.inner.label = long_label;
	for (int i = 0; i < 40; i++)
		many[i] = i % 2 ? -i : i * 1000;
	f.e.numbers = many;
	f.e.n_numbers = 40;
	check_pack(&f.e.base);
	long_label[100] = '\0';
	check_pack(&f.e.base);
	shmbus__test__all__everything__init(&f.e); /* all zero: nothing */
	check_pack(&f.e.base);

	/* Every scalar at its widest, keys of one to five bytes; and at
	 * small values. */
	shmbus__test__bound__scalars__init(&sc);
	sc.i32 = INT32_MIN;
	sc.i64 = INT64_MIN;
	sc.u32 = UINT32_MAX;
	sc.u64 = UINT64_MAX;
	sc.s32 = INT32_MIN;
	sc.s64 = INT64_MIN;
	sc.flag = 1;
	sc.sign = SHMBUS__TEST__BOUND__SIGN__SIGN_MINUS;
	sc.f32 = UINT32_MAX;
	sc.f64 = UINT64_MAX;
	sc.sf32 = -1;
	sc.sf64 = -1;
	sc.ratio = 1.5f;
	sc.precise = -2.5;
	sc.wide_key = -1;
	sc.widest_key = UINT32_MAX;
	check_pack(&sc.base);
	shmbus__test__bound__scalars__init(&sc2);
	sc2.i32 = 1;
	sc2.s32 = -1;
	sc2.s64 = 1;
	sc2.sign = SHMBUS__TEST__BOUND__SIGN__SIGN_PLUS;
	sc2.flag = 2; /* any non-zero: true, one byte 1 */
	sc2.widest_key = 1;
	check_pack(&sc2.base);
	shmbus__test__bound__scalars__init(&sc2); /* every scalar at zero: nothing */
	check_pack(&sc2.base);
	sc2.s32 = 1;
	sc2.s64 = -1;
	check_pack(&sc2.base);
	shmbus__test__bound__nested__init(&nested);
	shmbus__test__bound__nested__small__init(&small);
	shmbus__test__bound__empty__init(&empty);
	small.x = 7;
	nested.a = &sc;
	nested.b = &sc2;
	nested.small = &small;
	nested.empty = &empty; /* set but empty: a key and a zero length */
	nested.choice_case = SHMBUS__TEST__BOUND__NESTED__CHOICE_BIG;
	nested.big = &sc;
	check_pack(&nested.base);
	nested.choice_case = SHMBUS__TEST__BOUND__NESTED__CHOICE_TINY;
	nested.tiny = 0;
	check_pack(&nested.base);
	nested.choice_case = SHMBUS__TEST__BOUND__NESTED__CHOICE_MIDDLE;
	nested.middle = -3;
	check_pack(&nested.base);

	/* proto2: required fields always, optional ones by has_ or pointer,
	 * the default string left out. */
	frame.id = 0;
	check_pack(&frame.base);
	frame.id = 7;
	frame.checksum.data = (uint8_t *)"\x01\x02";
	frame.checksum.len = 2;
	frame.has_pixels = 1;
	frame.pixels.len = 0; /* present though empty */
	check_pack(&frame.base);
	frame.note = (char *)"set";
	check_pack(&frame.base);

	/* An Imu as a driver fills it. */
	imu_fill(&imu, &header, &v, cov);
	for (int i = 0; i < 9; i++)
		cov[i] = i * 0.25 - 1;
	header.stamp_ns = 1764000000123456789;
	check_pack(&imu.base);

	/* Unknown fields, as an unpack keeps them. */
	fill();
	unknown = everything_unknown();
	check_pack(unknown);
	protobuf_c_message_free_unpacked(unknown, NULL);
}

static void test_size_bound(void)
{
	Shmbus__Test__Bound__Scalars sc;
	Shmbus__Msgs__Imu imu;
	Shmbus__Msgs__Header header;
	Shmbus__Msgs__Vector3 v;
	double cov[9] = { 0 };
	ProtobufCMessage *unknown;

	everything_variants(check_bound);

	/* Every field unknown to the type it is unpacked as: kept, packed. */
	unknown = everything_unknown();
	check_bound(unknown);
	protobuf_c_message_free_unpacked(unknown, NULL);

	/* A bounded type: its plan is its exact bound, with no field left to
	 * look at. */
	shmbus__test__bound__scalars__init(&sc);
	CU_ASSERT_EQUAL(typed_size_bound(&sc.base), SHMBUS__TEST__BOUND__SCALARS__SHMBUS_MAX_SIZE);

	/* An Imu as a driver fills it stays under the typed default size, so
	 * its publisher never sizes it first. */
	imu_fill(&imu, &header, &v, cov);
	header.stamp_ns = INT64_MAX;
	check_bound(&imu.base);
	CU_ASSERT_TRUE(typed_size_bound(&imu.base) <= SHMBUS_TYPED_DEFAULT_MAX_SIZE);

	/* A bounded sub-message that came from a newer schema keeps the
	 * fields this one does not know, and packs them: an orientation with
	 * a 300-byte unknown field (field 100, length-delimited) is 300 bytes
	 * past the Quaternion's own bound, which the bound must see. */
	uint8_t q_wire[4 + 300] = { 0xa2, 0x06, 0xac, 0x02 }; /* key 100/LEN, 300 */
	ProtobufCMessage *q = protobuf_c_message_unpack(&shmbus__msgs__quaternion__descriptor, NULL,
						       sizeof(q_wire), q_wire);
	CU_ASSERT_PTR_NOT_NULL_FATAL(q);
	CU_ASSERT_EQUAL(q->n_unknown_fields, 1);
	imu.orientation = (Shmbus__Msgs__Quaternion *)(void *)q;
	check_bound(&imu.base);
	protobuf_c_message_free_unpacked(q, NULL);
}

/* Publishers and subscribers in several threads make the plans of the
 * same types at the same time (the first messages of a process): each
 * gets a plan that bounds its message, and decodes it (ThreadSanitizer
 * checks the tables' atomics: this test is in the concurrency suite). It
 * runs first, while no plan exists. */
#define RACERS 4

struct racer {
	pthread_barrier_t *start;
	const uint8_t *wire, *imu_wire; /* an Everything and an Imu, packed */
	size_t size, imu_size;
	bool ok;
};

/* size bytes at wire unpack as type (decode.c makes the type's plans at
 * its first message, racing other threads here). */
static bool decodes(const struct shmbus_typed_type *type, const uint8_t *wire, size_t size)
{
	ProtobufCMessage *m = NULL;
	bool ok = shmbus_typed_unpack(type, NULL, wire, size, &m) == SHMBUS_OK;

	shmbus_typed_free(type, m, NULL);
	return ok;
}

/* typed_pack() gives protobuf-c's bytes for m (a thread's own check). */
static bool packs(const ProtobufCMessage *m)
{
	size_t n = protobuf_c_message_get_packed_size(m);
	uint8_t *a = malloc(n + 1), *b = malloc(n + 1);
	bool same = a && b && protobuf_c_message_pack(m, a) == n && typed_pack(m, b) == n &&
		    memcmp(a, b, n) == 0;

	free(a);
	free(b);
	return same;
}

static void *race_bounds(void *arg)
{
	struct racer *r = arg;
	Shmbus__Test__Bound__Nested n;
	Shmbus__Test__Bound__Scalars a;
	Shmbus__Msgs__Imu imu;
	Shmbus__Msgs__Header header;

	shmbus__test__bound__scalars__init(&a);
	shmbus__test__bound__nested__init(&n);
	n.a = &a;
	shmbus__msgs__imu__init(&imu);
	shmbus__msgs__header__init(&header);
	header.frame_id = (char *)"imu_link";
	imu.header = &header;
	pthread_barrier_wait(r->start);
	r->ok = typed_size_bound(&imu.base) >= protobuf_c_message_get_packed_size(&imu.base) &&
		typed_size_bound(&n.base) >= protobuf_c_message_get_packed_size(&n.base) &&
		typed_size_bound(&f.e.base) >= protobuf_c_message_get_packed_size(&f.e.base) &&
		typed_size_bound(&a.base) == SHMBUS__TEST__BOUND__SCALARS__SHMBUS_MAX_SIZE &&
		decodes(&shmbus__test__all__everything__shmbus_type, r->wire, r->size) &&
		decodes(&shmbus__msgs__imu__shmbus_type, r->imu_wire, r->imu_size) &&
		packs(&f.e.base) && packs(&imu.base) && packs(&n.base);
	return NULL;
}

static void test_bound_plans_race(void)
{
	pthread_barrier_t start;
	pthread_t t[RACERS];
	struct racer r[RACERS];
	Shmbus__Msgs__Imu imu;
	Shmbus__Msgs__Header header;
	Shmbus__Msgs__Vector3 v;
	double cov[9] = { 0 };
	uint8_t imu_wire[1024], *wire;
	size_t size, imu_size;

	fill();
	size = shmbus__test__all__everything__get_packed_size(&f.e);
	wire = malloc(size);
	CU_ASSERT_PTR_NOT_NULL_FATAL(wire);
	shmbus__test__all__everything__pack(&f.e, wire);
	imu_fill(&imu, &header, &v, cov);
	imu_size = shmbus__msgs__imu__pack(&imu, imu_wire);
	CU_ASSERT_EQUAL_FATAL(pthread_barrier_init(&start, NULL, RACERS), 0);
	for (int i = 0; i < RACERS; i++) {
		r[i].start = &start;
		r[i].wire = wire;
		r[i].size = size;
		r[i].imu_wire = imu_wire;
		r[i].imu_size = imu_size;
		r[i].ok = false;
		CU_ASSERT_EQUAL_FATAL(pthread_create(&t[i], NULL, race_bounds, &r[i]), 0);
	}
	for (int i = 0; i < RACERS; i++) {
		pthread_join(t[i], NULL);
		CU_ASSERT_TRUE(r[i].ok);
	}
	pthread_barrier_destroy(&start);
	free(wire);
}

/* A message that fits its topic exactly, though its bound does not: it is
 * sized exactly and published, not refused. */
static void test_fits_exactly(void)
{
	struct shmbus_topic_options to;
	shmbus_pub *pub;
	shmbus_sub *sub;
	Everything *g = NULL;
	struct shmbus_msg_info info;
	uint64_t first = 0, seq = 0;

	fill();
	shmbus_topic_options_init(&to);
	to.max_message_size = (uint32_t)shmbus__test__all__everything__get_packed_size(&f.e);
	CU_ASSERT_TRUE_FATAL(typed_size_bound(&f.e.base) > to.max_message_size);
	CU_ASSERT_EQUAL_FATAL(shmbus__test__all__everything__pub_open(h_suite_bus, "all/exact", &to,
								      NULL, &pub),
			      SHMBUS_OK);
	CU_ASSERT_EQUAL_FATAL(shmbus__test__all__everything__sub_open(h_suite_bus, "all/exact", NULL,
								      NULL, &sub),
			      SHMBUS_OK);
	CU_ASSERT_EQUAL(shmbus__test__all__everything__publish(pub, &f.e, &first), SHMBUS_OK);
	CU_ASSERT_EQUAL_FATAL(shmbus__test__all__everything__take(sub, NULL, &g, NULL), SHMBUS_OK);
	check_fields(g, 1, 1);
	shmbus__test__all__everything__free(g, NULL);
	/* One byte more does not fit: refused before a number is claimed. */
	f.e.default_ = (char *)"keyword+";
	CU_ASSERT_EQUAL(shmbus__test__all__everything__publish(pub, &f.e, NULL), SHMBUS_EMSGSIZE);
	f.e.default_ = (char *)"keyword";
	CU_ASSERT_EQUAL(shmbus__test__all__everything__publish(pub, &f.e, &seq), SHMBUS_OK);
	CU_ASSERT_EQUAL_FATAL(shmbus__test__all__everything__take(sub, NULL, &g, &info), SHMBUS_OK);
	check_fields(g, 1, 1);
	shmbus__test__all__everything__free(g, NULL);
	CU_ASSERT_EQUAL(seq, first + 1);
	CU_ASSERT_EQUAL(info.lost, 0);
	shmbus_sub_close(sub);
	shmbus_pub_close(pub);
}

static void add(void)
{
	CU_pSuite s = h_add_bus_suite("typed_constructs", "constructs");

	CU_add_test(s, "size, packing and decoding plans made by racing threads",
		    test_bound_plans_race);

	CU_add_test(s, "every construct round-trips", test_round_trip);
	CU_add_test(s, "view of a field in the middle", test_view_in_the_middle);
	CU_add_test(s, "loan next to another bytes field", test_loan_with_other_bytes);
	CU_add_test(s, "keyword type, imported and nested types", test_keyword_type_and_imports);
	CU_add_test(s, "no package, enum-only import", test_no_package);
	CU_add_test(s, "taken in one block, chained blocks", test_one_block_chained);
	CU_add_test(s, "a type without the arena flag: pieces", test_legacy_type_pieces);
	CU_add_test(s, "the size bound covers every construct", test_size_bound);
	CU_add_test(s, "packed by plan as protobuf-c packs", test_pack);
	CU_add_test(s, "one walk decodes as protobuf-c, else leaves it to it", test_one_walk_decode);
	CU_add_test(s, "a message that fits exactly, its bound not", test_fits_exactly);
}

int main(void)
{
	return h_run("test_typed_constructs", add);
}
