/*
 * test_typed_bound - a type's largest encoding, and topics sized by it.
 *
 * The bound protoc-gen-shmbus writes (TYPE__SHMBUS_MAX_SIZE) and the one
 * lib/pbjson computes from a stored schema (pbjson_max_encoded_size) must
 * both equal what protobuf-c packs for the worst-case message: every
 * scalar type at its widest value under keys of every width, nested
 * messages, the widest member of a oneof. Types with a string, bytes,
 * repeated or map field anywhere, or that contain themselves, have none.
 * Over a real bus: a typed topic created without a max message size gets
 * the type's (or SHMBUS_TYPED_DEFAULT_MAX_SIZE), and a worst-case message
 * fits it.
 */
#include "harness.h"

#include <CUnit/Basic.h>
#include <pbjson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shmbus/msgs/geometry.shmbus.h"
#include "shmbus/msgs/imu.shmbus.h"
#include "shmbus/test/bound.shmbus.h"

typedef Shmbus__Test__Bound__Scalars Scalars;
typedef Shmbus__Test__Bound__Nested Nested;

static void widest_scalars(Scalars *m)
{
	shmbus__test__bound__scalars__init(m);
	m->i32 = INT32_MIN;  /* negative: sign-extended to ten bytes */
	m->i64 = INT64_MIN;
	m->u32 = UINT32_MAX;
	m->u64 = UINT64_MAX;
	m->s32 = INT32_MIN;  /* zigzag: 0xffffffff, five bytes */
	m->s64 = INT64_MIN;
	m->flag = 1;
	m->sign = SHMBUS__TEST__BOUND__SIGN__SIGN_MINUS;
	m->f32 = 1;
	m->f64 = 1;
	m->sf32 = -1;
	m->sf64 = -1;
	m->ratio = 1.5f;
	m->precise = 2.5;
	m->wide_key = -1;
	m->widest_key = UINT32_MAX;
}

static pbjson_schema *load(const uint8_t *fds, size_t size)
{
	char err[256];
	pbjson_schema *s = NULL;

	if (pbjson_schema_load(fds, size, &s, err, sizeof(err)) != PBJSON_OK)
		fprintf(stderr, "schema: %s\n", err);
	return s;
}

/* The bound from the schema, as `shmbus pub` and `shmbus play` get it. */
static int schema_bound(const uint8_t *fds, size_t size, const char *type, uint64_t *bound,
			char *why, size_t whylen)
{
	pbjson_schema *s = load(fds, size);
	int rc;

	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	rc = pbjson_max_encoded_size(s, type, bound, why, whylen);
	pbjson_schema_free(s);
	return rc;
}

#define BOUND_FDS shmbus_schema_shmbus_2ftest_2fbound_2eproto, \
		  shmbus_schema_shmbus_2ftest_2fbound_2eproto_size

static void test_scalars_exact(void)
{
	Scalars m;
	uint64_t bound = 0;

	widest_scalars(&m);
	CU_ASSERT_EQUAL(shmbus__test__bound__scalars__get_packed_size(&m),
			SHMBUS__TEST__BOUND__SCALARS__SHMBUS_MAX_SIZE);
	CU_ASSERT_EQUAL(schema_bound(BOUND_FDS, "shmbus.test.bound.Scalars", &bound, NULL, 0),
			PBJSON_OK);
	CU_ASSERT_EQUAL(bound, SHMBUS__TEST__BOUND__SCALARS__SHMBUS_MAX_SIZE);
	CU_ASSERT_TRUE(shmbus__test__bound__scalars__shmbus_type.flags & SHMBUS_TYPED_BOUNDED);
	CU_ASSERT_EQUAL(shmbus__test__bound__scalars__shmbus_type.max_size, bound);

	/* Narrower values pack smaller: the bound is the most, not a size. */
	m.i32 = 1;
	m.sign = SHMBUS__TEST__BOUND__SIGN__SIGN_PLUS;
	CU_ASSERT_TRUE(shmbus__test__bound__scalars__get_packed_size(&m) <
		       SHMBUS__TEST__BOUND__SCALARS__SHMBUS_MAX_SIZE);
}

static void test_nested_exact(void)
{
	Scalars a, b, big;
	Nested n;
	Shmbus__Test__Bound__Nested__Small small;
	Shmbus__Test__Bound__Empty empty;
	uint64_t bound = 0;
	size_t widest;

	widest_scalars(&a);
	widest_scalars(&b);
	widest_scalars(&big);
	shmbus__test__bound__nested__small__init(&small);
	small.x = 7;
	shmbus__test__bound__empty__init(&empty);
	shmbus__test__bound__nested__init(&n);
	n.a = &a;
	n.b = &b;
	n.small = &small;
	n.empty = &empty;
	n.choice_case = SHMBUS__TEST__BOUND__NESTED__CHOICE_BIG;
	n.big = &big;
	widest = shmbus__test__bound__nested__get_packed_size(&n);
	CU_ASSERT_EQUAL(widest, SHMBUS__TEST__BOUND__NESTED__SHMBUS_MAX_SIZE);
	CU_ASSERT_EQUAL(schema_bound(BOUND_FDS, "shmbus.test.bound.Nested", &bound, NULL, 0),
			PBJSON_OK);
	CU_ASSERT_EQUAL(bound, widest);

	/* The other members of the oneof are narrower. */
	n.choice_case = SHMBUS__TEST__BOUND__NESTED__CHOICE_MIDDLE;
	n.middle = INT64_MIN;
	CU_ASSERT_TRUE(shmbus__test__bound__nested__get_packed_size(&n) < widest);
	n.choice_case = SHMBUS__TEST__BOUND__NESTED__CHOICE_TINY;
	n.tiny = 1;
	CU_ASSERT_TRUE(shmbus__test__bound__nested__get_packed_size(&n) < widest);

	/* A nested type is a topic type of its own, and an empty one packs
	 * into nothing. */
	CU_ASSERT_EQUAL(protobuf_c_message_get_packed_size(&small.base),
			SHMBUS__TEST__BOUND__NESTED__SMALL__SHMBUS_MAX_SIZE);
	CU_ASSERT_EQUAL(SHMBUS__TEST__BOUND__EMPTY__SHMBUS_MAX_SIZE, 0);
	CU_ASSERT_EQUAL(schema_bound(BOUND_FDS, "shmbus.test.bound.Empty", &bound, NULL, 0),
			PBJSON_OK);
	CU_ASSERT_EQUAL(bound, 0);
}

/* The robotics message set: geometry types are bounded, Pose through two
 * nested ones; every message with a header (a frame id) is not. */
static void test_schemas_types(void)
{
	Shmbus__Msgs__Vector3 v = SHMBUS__MSGS__VECTOR3__INIT;
	Shmbus__Msgs__Quaternion q = SHMBUS__MSGS__QUATERNION__INIT;
	Shmbus__Msgs__Pose pose = SHMBUS__MSGS__POSE__INIT;
	uint64_t bound = 0;
	char why[256];

	v.x = v.y = v.z = 1;
	q.x = q.y = q.z = q.w = 1;
	pose.position = &v;
	pose.orientation = &q;
	CU_ASSERT_EQUAL(shmbus__msgs__pose__get_packed_size(&pose), SHMBUS__MSGS__POSE__SHMBUS_MAX_SIZE);
	CU_ASSERT_EQUAL(schema_bound(shmbus_schema_shmbus_2fmsgs_2fgeometry_2eproto,
				     shmbus_schema_shmbus_2fmsgs_2fgeometry_2eproto_size,
				     "shmbus.msgs.Pose", &bound, NULL, 0),
			PBJSON_OK);
	CU_ASSERT_EQUAL(bound, SHMBUS__MSGS__POSE__SHMBUS_MAX_SIZE);
	CU_ASSERT_EQUAL(schema_bound(shmbus_schema_shmbus_2fmsgs_2fimu_2eproto,
				     shmbus_schema_shmbus_2fmsgs_2fimu_2eproto_size,
				     "shmbus.msgs.Imu", &bound, why, sizeof(why)),
			PBJSON_UNBOUNDED);
	CU_ASSERT_FALSE(shmbus__msgs__imu__shmbus_type.flags & SHMBUS_TYPED_BOUNDED);
}

static void test_unbounded(void)
{
	static const struct {
		const char *type, *why;
		const struct shmbus_typed_type *generated;
	} cases[] = {
		{ "shmbus.test.bound.WithString", "WithString.name is a string",
		  &shmbus__test__bound__with_string__shmbus_type },
		{ "shmbus.test.bound.WithRepeated", "WithRepeated.samples is repeated",
		  &shmbus__test__bound__with_repeated__shmbus_type },
		{ "shmbus.test.bound.WithMap", "WithMap.counts is a map",
		  &shmbus__test__bound__with_map__shmbus_type },
		{ "shmbus.test.bound.Outer", "WithBytes.data is bytes",
		  &shmbus__test__bound__outer__shmbus_type },
		{ "shmbus.test.bound.Node", "Node contains itself",
		  &shmbus__test__bound__node__shmbus_type },
	};
	pbjson_schema *s = load(BOUND_FDS);
	uint64_t bound = 1;
	char why[256];

	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		CU_ASSERT_EQUAL(pbjson_max_encoded_size(s, cases[i].type, &bound, why, sizeof(why)),
				PBJSON_UNBOUNDED);
		CU_ASSERT_PTR_NOT_NULL(strstr(why, cases[i].why));
		if (!strstr(why, cases[i].why))
			fprintf(stderr, "%s: '%s'\n", cases[i].type, why);
		CU_ASSERT_FALSE(cases[i].generated->flags & SHMBUS_TYPED_BOUNDED);
	}
	CU_ASSERT_EQUAL(pbjson_max_encoded_size(s, "shmbus.test.bound.Nope", &bound, why,
						sizeof(why)),
			PBJSON_ENOTYPE);
	CU_ASSERT_EQUAL(pbjson_max_encoded_size(s, NULL, &bound, why, sizeof(why)), PBJSON_EINVAL);
	pbjson_schema_free(s);
}

/* ------------------------------------------------------------ on a bus */

static size_t opened_size(const struct shmbus_typed_type *type, const char *topic,
			  const struct shmbus_topic_options *topic_opts,
			  const struct shmbus_pub_options *opts, int *rc)
{
	shmbus_pub *pub = NULL;
	size_t size = 0;

	*rc = shmbus_typed_pub_open(h_suite_bus, topic, type, topic_opts, opts, &pub);
	if (*rc == SHMBUS_OK) {
		size = shmbus_pub_max_message_size(pub);
		shmbus_pub_close(pub);
	}
	return size;
}

static void test_topic_from_type(void)
{
	struct shmbus_topic_options to;
	shmbus_pub *pub;
	shmbus_sub *sub;
	Scalars m, *got = NULL;
	int rc;

	/* Bounded: the exact bound, and the worst case fits it. */
	CU_ASSERT_EQUAL_FATAL(shmbus__test__bound__scalars__pub_open(h_suite_bus, "b/scalars", NULL,
								     NULL, &pub), SHMBUS_OK);
	CU_ASSERT_EQUAL(shmbus_pub_max_message_size(pub),
			SHMBUS__TEST__BOUND__SCALARS__SHMBUS_MAX_SIZE);
	CU_ASSERT_EQUAL_FATAL(shmbus__test__bound__scalars__sub_open(h_suite_bus, "b/scalars", NULL,
								     NULL, &sub), SHMBUS_OK);
	widest_scalars(&m);
	CU_ASSERT_EQUAL(shmbus__test__bound__scalars__publish(pub, &m, NULL), SHMBUS_OK);
	CU_ASSERT_EQUAL_FATAL(shmbus__test__bound__scalars__take(sub, NULL, &got, NULL), SHMBUS_OK);
	CU_ASSERT_EQUAL(got->widest_key, UINT32_MAX);
	CU_ASSERT_EQUAL(got->i64, INT64_MIN);
	shmbus__test__bound__scalars__free(got, NULL);
	shmbus_sub_close(sub);
	shmbus_pub_close(pub);

	/* A type without fields still gets a topic (of one byte, not the
	 * bus's default). */
	CU_ASSERT_EQUAL(opened_size(&shmbus__test__bound__empty__shmbus_type, "b/empty", NULL, NULL,
				    &rc),
			1);
	CU_ASSERT_EQUAL(rc, SHMBUS_OK);

	/* Unbounded: the typed layer's default. */
	CU_ASSERT_EQUAL(opened_size(&shmbus__test__bound__with_string__shmbus_type, "b/string",
				    NULL, NULL, &rc),
			SHMBUS_TYPED_DEFAULT_MAX_SIZE);
	CU_ASSERT_EQUAL(rc, SHMBUS_OK);

	/* Asked for: as asked; 0 in the options means the type's. */
	shmbus_topic_options_init(&to);
	to.max_message_size = 1000;
	CU_ASSERT_EQUAL(
		opened_size(&shmbus__test__bound__scalars__shmbus_type, "b/asked", &to, NULL, &rc),
		1000);
	to.max_message_size = 0;
	CU_ASSERT_EQUAL(opened_size(&shmbus__test__bound__nested__shmbus_type, "b/zero", &to, NULL,
				    &rc),
			SHMBUS__TEST__BOUND__NESTED__SHMBUS_MAX_SIZE);

	/* A subscriber that creates the topic sizes it the same way. */
	{
		struct shmbus_sub_options so;

		shmbus_sub_options_init(&so);
		so.create_if_missing = true;
		CU_ASSERT_EQUAL_FATAL(shmbus__test__bound__nested__sub_open(h_suite_bus, "b/by-sub",
									    NULL, &so, &sub),
				      SHMBUS_OK);
		CU_ASSERT_EQUAL(shmbus_sub_max_message_size(sub),
				SHMBUS__TEST__BOUND__NESTED__SHMBUS_MAX_SIZE);
		shmbus_sub_close(sub);
	}
}

/* A topic of `type` made by an untyped publisher (kept open, so that the
 * topic stays) with a max message size of `size`. */
static shmbus_pub *small_topic(const struct shmbus_typed_type *type, const char *topic,
			       uint32_t size)
{
	struct shmbus_topic_options to;
	shmbus_pub *keep = NULL;

	shmbus_topic_options_init(&to);
	to.max_message_size = size;
	shmbus_typed_topic_options(type, &to);
	CU_ASSERT_EQUAL(shmbus_pub_open(h_suite_bus, topic, &to, NULL, &keep), SHMBUS_OK);
	return keep;
}

/* A topic that exists already, smaller than the type's size: a bounded
 * type needs its bound (a message could not fit otherwise); a publisher of
 * an unbounded type opened without a size has SHMBUS_PUB_GROW implied, so
 * the topic grows to the default (and later to any larger message). */
static void test_existing_smaller_topic(void)
{
	shmbus_pub *keep;
	int rc;

	keep = small_topic(&shmbus__test__bound__with_string__shmbus_type, "small/string", 64);
	CU_ASSERT_PTR_NOT_NULL_FATAL(keep);
	CU_ASSERT_EQUAL(opened_size(&shmbus__test__bound__with_string__shmbus_type, "small/string",
				    NULL, NULL, &rc),
			SHMBUS_TYPED_DEFAULT_MAX_SIZE);
	CU_ASSERT_EQUAL(rc, SHMBUS_OK);
	shmbus_pub_close(keep);

	keep = small_topic(&shmbus__test__bound__scalars__shmbus_type, "small/scalars", 100);
	CU_ASSERT_PTR_NOT_NULL_FATAL(keep);
	opened_size(&shmbus__test__bound__scalars__shmbus_type, "small/scalars", NULL, NULL,
		    &rc);
	CU_ASSERT_EQUAL(rc, SHMBUS_ELAYOUT);
	shmbus_pub_close(keep);
}

/* A publisher that may grow the topic takes an existing smaller topic of
 * a bounded type and grows it to the type's bound. */
static void test_existing_smaller_grows(void)
{
	struct shmbus_pub_options po;
	struct shmbus_topic_info ti;
	shmbus_pub *keep;
	int rc;

	keep = small_topic(&shmbus__test__bound__scalars__shmbus_type, "grow/scalars", 100);
	CU_ASSERT_PTR_NOT_NULL_FATAL(keep);
	shmbus_pub_options_init(&po);
	po.flags = SHMBUS_PUB_GROW;
	CU_ASSERT_TRUE(opened_size(&shmbus__test__bound__scalars__shmbus_type, "grow/scalars",
				   NULL, &po, &rc) >= SHMBUS__TEST__BOUND__SCALARS__SHMBUS_MAX_SIZE);
	CU_ASSERT_EQUAL(rc, SHMBUS_OK);
	CU_ASSERT_EQUAL(shmbus_topic_inspect(h_suite_bus, "grow/scalars", &ti, NULL, 0, NULL, NULL,
					     0, NULL),
			SHMBUS_OK);
	CU_ASSERT_EQUAL(ti.grown, 1);
	shmbus_pub_close(keep);
}

/* Topic options from a header of another version: an older one's (fewer
 * bytes) keep the later fields' defaults; a newer one's extra fields are
 * accepted while zero (their defaults) and refused when set, never
 * dropped unseen; an uninitialised struct is refused. */
static void test_options_of_another_size(void)
{
	struct {
		struct shmbus_topic_options o;
		uint64_t later_field;
	} newer;
	struct shmbus_topic_options older;
	shmbus_sub *sub;
	int rc;

	shmbus_topic_options_init_(&newer.o, sizeof(newer));
	CU_ASSERT_EQUAL(newer.o.size, sizeof(newer));
	newer.later_field = 0;
	CU_ASSERT_EQUAL(opened_size(&shmbus__test__bound__scalars__shmbus_type, "size/newer",
				    &newer.o, NULL, &rc),
			SHMBUS__TEST__BOUND__SCALARS__SHMBUS_MAX_SIZE);
	CU_ASSERT_EQUAL(rc, SHMBUS_OK);
	newer.later_field = 1;
	opened_size(&shmbus__test__bound__scalars__shmbus_type, "size/newer2", &newer.o, NULL, &rc);
	CU_ASSERT_EQUAL(rc, SHMBUS_EINVAL);

	/* An older header that ended before max_message_size: the type's. */
	memset(&older, 0xff, sizeof(older));
	shmbus_topic_options_init_(&older, offsetof(struct shmbus_topic_options, max_message_size));
	CU_ASSERT_EQUAL(opened_size(&shmbus__test__bound__nested__shmbus_type, "size/older",
				    &older, NULL, &rc),
			SHMBUS__TEST__BOUND__NESTED__SHMBUS_MAX_SIZE);
	CU_ASSERT_EQUAL(rc, SHMBUS_OK);

	memset(&older, 0, sizeof(older));
	opened_size(&shmbus__test__bound__scalars__shmbus_type, "size/none", &older, NULL, &rc);
	CU_ASSERT_EQUAL(rc, SHMBUS_EINVAL);
	CU_ASSERT_EQUAL(shmbus__test__bound__scalars__sub_open(h_suite_bus, "size/none", &older,
							       NULL, &sub),
			SHMBUS_EINVAL);
	CU_ASSERT_PTR_NULL(sub);
}

static void add(void)
{
	CU_pSuite s = CU_add_suite("bound", NULL, NULL);

	CU_add_test(s, "scalars: exact bound, every width", test_scalars_exact);
	CU_add_test(s, "nested messages and a oneof", test_nested_exact);
	CU_add_test(s, "the robotics message set", test_schemas_types);
	CU_add_test(s, "unbounded types say why", test_unbounded);
	s = h_add_bus_suite("bound_topics", "bound");
	CU_add_test(s, "topics sized from the type", test_topic_from_type);
	CU_add_test(s, "an existing smaller topic", test_existing_smaller_topic);
	CU_add_test(s, "an existing smaller topic grown", test_existing_smaller_grows);
	CU_add_test(s, "topic options of another header's size", test_options_of_another_size);
}

int main(void)
{
	return h_run("test_typed_bound", add);
}
