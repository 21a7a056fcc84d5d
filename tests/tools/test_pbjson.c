/*
 * test_pbjson.c - pbjson against protobuf-c as the reference: every type
 * of schemas/ and of pbjson_test.proto filled with values, packed by
 * protobuf-c, decoded to JSON, encoded back and compared byte for byte
 * after protobuf-c reads it again; the exact JSON of one message of every
 * shape; defaults; errors of encode; and untrusted wire bytes (every
 * truncation, every byte changed, random bytes) never crash.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "google/protobuf/descriptor.pb-c.h"
#include "pbjson.h"
#include "pbjson_test.pb-c.h"
#include "shmbus/msgs/diagnostic.pb-c.h"
#include "shmbus/msgs/diagnostic.shmbus.h"
#include "shmbus/msgs/geometry.pb-c.h"
#include "shmbus/msgs/geometry.shmbus.h"
#include "shmbus/msgs/gnss.pb-c.h"
#include "shmbus/msgs/gnss.shmbus.h"
#include "shmbus/msgs/header.pb-c.h"
#include "shmbus/msgs/header.shmbus.h"
#include "shmbus/msgs/image.pb-c.h"
#include "shmbus/msgs/image.shmbus.h"
#include "shmbus/msgs/imu.pb-c.h"
#include "shmbus/msgs/imu.shmbus.h"
#include "shmbus/msgs/laser_scan.pb-c.h"
#include "shmbus/msgs/laser_scan.shmbus.h"
#include "shmbus/msgs/odometry.pb-c.h"
#include "shmbus/msgs/odometry.shmbus.h"
#include "shmbus/msgs/point_cloud.pb-c.h"
#include "shmbus/msgs/point_cloud.shmbus.h"

extern const unsigned char pbjson_builtin_fds[];
extern const size_t pbjson_builtin_fds_size;
extern const unsigned char pbjson_test_fds[];
extern const size_t pbjson_test_fds_size;
extern const unsigned char pbjson_wrappers_fds[];
extern const size_t pbjson_wrappers_fds_size;

static pbjson_schema *builtin, *testschema;

static pbjson_schema *load(const void *p, size_t n)
{
	pbjson_schema *s = NULL;
	char err[256] = "";
	int rc = pbjson_schema_load(p, n, &s, err, sizeof(err));
	if (rc)
		fprintf(stderr, "schema: %s\n", err);
	CU_ASSERT_EQUAL(rc, 0);
	return s;
}

static int setup(void)
{
	char err[256] = "";
	if (pbjson_schema_load(pbjson_builtin_fds, pbjson_builtin_fds_size, &builtin, err,
			       sizeof(err)) ||
	    pbjson_schema_load(pbjson_test_fds, pbjson_test_fds_size, &testschema, err,
			       sizeof(err))) {
		fprintf(stderr, "schema: %s\n", err);
		return 1;
	}
	return 0;
}

static int teardown(void)
{
	pbjson_schema_free(builtin);
	pbjson_schema_free(testschema);
	return 0;
}

/* --------------------------------------------- a message of any type */

static size_t elem_size(ProtobufCType t)
{
	switch (t) {
	case PROTOBUF_C_TYPE_INT64: case PROTOBUF_C_TYPE_UINT64: case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_FIXED64: case PROTOBUF_C_TYPE_SFIXED64: case PROTOBUF_C_TYPE_DOUBLE:
		return 8;
	case PROTOBUF_C_TYPE_BOOL: return sizeof(protobuf_c_boolean);
	case PROTOBUF_C_TYPE_STRING: return sizeof(char *);
	case PROTOBUF_C_TYPE_BYTES: return sizeof(ProtobufCBinaryData);
	case PROTOBUF_C_TYPE_MESSAGE: return sizeof(void *);
	default: return 4;
	}
}

static ProtobufCMessage *fill(const ProtobufCMessageDescriptor *d, int depth, unsigned seed);

/* A value that is not the default and differs with seed; 64-bit ones
 * beyond 2^53, so a JSON number could not carry them. */
static void set_value(const ProtobufCFieldDescriptor *f, void *p, int depth, unsigned seed)
{
	switch (f->type) {
	case PROTOBUF_C_TYPE_INT32: case PROTOBUF_C_TYPE_SINT32: case PROTOBUF_C_TYPE_SFIXED32:
		*(int32_t *)p = -(int32_t)(seed * 7919u + 1);
		break;
	case PROTOBUF_C_TYPE_UINT32: case PROTOBUF_C_TYPE_FIXED32:
		*(uint32_t *)p = seed * 7919u + 3000000000u;
		break;
	case PROTOBUF_C_TYPE_INT64: case PROTOBUF_C_TYPE_SINT64: case PROTOBUF_C_TYPE_SFIXED64:
		*(int64_t *)p = -(int64_t)(seed * 1000003ull * 1000003ull * 1000003ull + 5);
		break;
	case PROTOBUF_C_TYPE_UINT64: case PROTOBUF_C_TYPE_FIXED64:
		*(uint64_t *)p = 0xF000000000000000ull + seed;
		break;
	case PROTOBUF_C_TYPE_FLOAT:
		*(float *)p = (float)seed + 0.1f;
		break;
	case PROTOBUF_C_TYPE_DOUBLE:
		*(double *)p = seed * 1.5 + 0.1;
		break;
	case PROTOBUF_C_TYPE_BOOL:
		*(protobuf_c_boolean *)p = 1;
		break;
	case PROTOBUF_C_TYPE_ENUM: {
		const ProtobufCEnumDescriptor *e = f->descriptor;
		*(int *)p = e->values[(seed % e->n_values)].value ? e->values[seed % e->n_values].value
								   : e->values[e->n_values - 1].value;
		break;
	}
	case PROTOBUF_C_TYPE_STRING: {
		char *s = malloc(48);
		snprintf(s, 48, "s%u \"é\" ✓\n", seed);
		*(char **)p = s;
		break;
	}
	case PROTOBUF_C_TYPE_BYTES: {
		ProtobufCBinaryData *b = p;
		b->len = 40 + seed % 3;
		b->data = malloc(b->len);
		for (size_t i = 0; i < b->len; i++)
			b->data[i] = (uint8_t)(i * 37 + seed);
		break;
	}
	case PROTOBUF_C_TYPE_MESSAGE:
		*(ProtobufCMessage **)p = fill(f->descriptor, depth + 1, seed + 1);
		break;
	default:
		break;
	}
}

static bool is_map_entry(const ProtobufCMessageDescriptor *d)
{
	size_t n = strlen(d->name);
	return d->n_fields == 2 && n > 5 && strcmp(d->name + n - 5, "Entry") == 0;
}

static ProtobufCMessage *fill(const ProtobufCMessageDescriptor *d, int depth, unsigned seed)
{
	ProtobufCMessage *m = calloc(1, d->sizeof_message);
	d->message_init(m);
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		if (f->type == PROTOBUF_C_TYPE_MESSAGE && depth >= 3)
			continue;
		char *member = (char *)m + f->offset;
		if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
			uint32_t *which = (uint32_t *)((char *)m + f->quantifier_offset);
			if (*which) /* the first member of each oneof */
				continue;
			*which = f->id;
		}
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t n = 3;
			if (f->type == PROTOBUF_C_TYPE_MESSAGE && is_map_entry(f->descriptor) &&
			    ((const ProtobufCMessageDescriptor *)f->descriptor)->fields[0].type ==
				    PROTOBUF_C_TYPE_BOOL)
				n = 1; /* a bool-keyed map holds one entry per key */
			char *arr = calloc(n, elem_size(f->type));
			for (size_t k = 0; k < n; k++)
				set_value(f, arr + k * elem_size(f->type), depth, seed + (unsigned)k * 11);
			*(void **)member = arr;
			*(size_t *)((char *)m + f->quantifier_offset) = n;
		} else {
			if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->quantifier_offset &&
			    !(f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF))
				*(protobuf_c_boolean *)((char *)m + f->quantifier_offset) = 1;
			set_value(f, member, depth, seed + i);
		}
	}
	return m;
}

static uint8_t *pack(const ProtobufCMessage *m, size_t *n)
{
	*n = protobuf_c_message_get_packed_size(m);
	uint8_t *b = malloc(*n ? *n : 1);
	protobuf_c_message_pack(m, b);
	return b;
}

/* protobuf-c bytes -> JSON text -> bytes -> protobuf-c -> the same bytes. */
static void round_trip(const pbjson_schema *s, const ProtobufCMessageDescriptor *d,
		       const ProtobufCMessage *m)
{
	size_t n;
	uint8_t *wire = pack(m, &n);
	struct pbjson_options o;
	pbjson_options_init(&o);
	o.full_bytes = true;
	json_t *j = NULL;
	char err[512] = "";
	int rc = pbjson_decode(s, d->name, wire, n, &o, &j, err, sizeof(err));
	if (rc)
		fprintf(stderr, "decode %s: %s\n", d->name, err);
	CU_ASSERT_EQUAL_FATAL(rc, 0);
	char *text = pbjson_dumps(j);
	CU_ASSERT_PTR_NOT_NULL_FATAL(text);
	json_error_t jerr;
	json_t *back = json_loads(text, 0, &jerr); /* what we print is JSON */
	if (!back)
		fprintf(stderr, "%s: not JSON (%s): %s\n", d->name, jerr.text, text);
	CU_ASSERT_PTR_NOT_NULL_FATAL(back);
	uint8_t *wire2 = NULL;
	size_t n2 = 0;
	rc = pbjson_encode(s, d->name, back, &wire2, &n2, err, sizeof(err));
	if (rc)
		fprintf(stderr, "encode %s: %s\n%s\n", d->name, err, text);
	CU_ASSERT_EQUAL_FATAL(rc, 0);
	ProtobufCMessage *m2 = protobuf_c_message_unpack(d, NULL, n2, wire2);
	CU_ASSERT_PTR_NOT_NULL_FATAL(m2);
	size_t n3;
	uint8_t *wire3 = pack(m2, &n3);
	CU_ASSERT_EQUAL(n3, n);
	CU_ASSERT(n3 == n && memcmp(wire3, wire, n) == 0);
	if (n3 != n || memcmp(wire3, wire, n) != 0)
		fprintf(stderr, "%s: round trip differs: %s\n", d->name, text);
	protobuf_c_message_free_unpacked(m2, NULL);
	free(wire3);
	free(wire2);
	json_decref(back);
	free(text);
	json_decref(j);
	free(wire);
}

static const ProtobufCMessageDescriptor *const schema_types[] = {
	&shmbus__msgs__log__descriptor, &shmbus__msgs__diagnostic_status__descriptor,
	&shmbus__msgs__diagnostic_status__values_entry__descriptor,
	&shmbus__msgs__diagnostic__descriptor, &shmbus__msgs__vector3__descriptor,
	&shmbus__msgs__quaternion__descriptor, &shmbus__msgs__pose__descriptor,
	&shmbus__msgs__pose_with_covariance__descriptor, &shmbus__msgs__twist__descriptor,
	&shmbus__msgs__twist_with_covariance__descriptor, &shmbus__msgs__transform__descriptor,
	&shmbus__msgs__transform_list__descriptor, &shmbus__msgs__gnss_fix__descriptor,
	&shmbus__msgs__header__descriptor, &shmbus__msgs__image__descriptor,
	&shmbus__msgs__compressed_image__descriptor, &shmbus__msgs__imu__descriptor,
	&shmbus__msgs__laser_scan__descriptor, &shmbus__msgs__odometry__descriptor,
	&shmbus__msgs__point_field__descriptor, &shmbus__msgs__point_cloud__descriptor,
};
#define N_SCHEMA_TYPES (sizeof(schema_types) / sizeof(schema_types[0]))

static void test_every_schema_type(void)
{
	/* Every type pbjson finds in schemas/ is in the list above, so a new
	 * type cannot go untested. */
	size_t listed = 0;
	for (size_t i = 0; i < pbjson_type_count(builtin); i++) {
		const char *t = pbjson_type_name(builtin, i);
		if (strncmp(t, "google.protobuf.", 16) == 0)
			continue;
		bool found = false;
		for (size_t k = 0; k < N_SCHEMA_TYPES; k++)
			found |= strcmp(schema_types[k]->name, t) == 0;
		if (!found)
			fprintf(stderr, "type %s of schemas/ is not in this test's list\n", t);
		CU_ASSERT(found);
		listed++;
	}
	CU_ASSERT_EQUAL(listed, N_SCHEMA_TYPES);
	for (size_t k = 0; k < N_SCHEMA_TYPES; k++) {
		CU_ASSERT_TRUE(pbjson_has_type(builtin, schema_types[k]->name));
		for (unsigned seed = 1; seed <= 3; seed++) {
			ProtobufCMessage *m = fill(schema_types[k], 0, seed);
			round_trip(builtin, schema_types[k], m);
			protobuf_c_message_free_unpacked(m, NULL);
		}
		/* and the empty message */
		ProtobufCMessage *e = calloc(1, schema_types[k]->sizeof_message);
		schema_types[k]->message_init(e);
		round_trip(builtin, schema_types[k], e);
		free(e);
	}
}

/* What typed topics store (the generated code's embedded schemas) loads
 * and knows its types. */
static void test_generated_schemas_load(void)
{
	static const struct {
		const uint8_t *p;
		const size_t *n;
		const char *type;
	} files[] = {
		{ shmbus_schema_shmbus_2fmsgs_2fheader_2eproto,
		  &shmbus_schema_shmbus_2fmsgs_2fheader_2eproto_size, "shmbus.msgs.Header" },
		{ shmbus_schema_shmbus_2fmsgs_2fimu_2eproto,
		  &shmbus_schema_shmbus_2fmsgs_2fimu_2eproto_size, "shmbus.msgs.Imu" },
		{ shmbus_schema_shmbus_2fmsgs_2fimage_2eproto,
		  &shmbus_schema_shmbus_2fmsgs_2fimage_2eproto_size, "shmbus.msgs.Image" },
		{ shmbus_schema_shmbus_2fmsgs_2fodometry_2eproto,
		  &shmbus_schema_shmbus_2fmsgs_2fodometry_2eproto_size, "shmbus.msgs.Odometry" },
		{ shmbus_schema_shmbus_2fmsgs_2fpoint_5fcloud_2eproto,
		  &shmbus_schema_shmbus_2fmsgs_2fpoint_5fcloud_2eproto_size,
		  "shmbus.msgs.PointCloud" },
		{ shmbus_schema_shmbus_2fmsgs_2flaser_5fscan_2eproto,
		  &shmbus_schema_shmbus_2fmsgs_2flaser_5fscan_2eproto_size,
		  "shmbus.msgs.LaserScan" },
		{ shmbus_schema_shmbus_2fmsgs_2fgnss_2eproto,
		  &shmbus_schema_shmbus_2fmsgs_2fgnss_2eproto_size, "shmbus.msgs.GnssFix" },
		{ shmbus_schema_shmbus_2fmsgs_2fdiagnostic_2eproto,
		  &shmbus_schema_shmbus_2fmsgs_2fdiagnostic_2eproto_size,
		  "shmbus.msgs.Diagnostic" },
		{ shmbus_schema_shmbus_2fmsgs_2fgeometry_2eproto,
		  &shmbus_schema_shmbus_2fmsgs_2fgeometry_2eproto_size, "shmbus.msgs.Pose" },
	};
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		pbjson_schema *s = load(files[i].p, *files[i].n);
		CU_ASSERT_PTR_NOT_NULL_FATAL(s);
		CU_ASSERT_TRUE(pbjson_has_type(s, files[i].type));
		pbjson_schema_free(s);
	}
}

/* ------------------------------------------- one message of every shape */

static Pbjson__Test__Inner inner_a(int32_t a, char *label)
{
	Pbjson__Test__Inner in = PBJSON__TEST__INNER__INIT;
	in.a = a;
	in.label = label;
	return in;
}

static const char golden_json[] =
	"{\"fDouble\":0.1,\"fFloat\":0.1,\"fInt64\":\"-9007199254740993\","
	"\"fUint64\":\"18446744073709551615\",\"fInt32\":-5,\"fFixed64\":\"1\","
	"\"fFixed32\":4000000000,\"fBool\":true,\"fString\":\"h\xc3\xa9llo \\\"q\\\"\\n\","
	"\"fBytes\":\"AAH+\",\"fUint32\":7,\"fEnum\":\"GREEN\",\"fSfixed32\":-2,"
	"\"fSfixed64\":\"-3\",\"fSint32\":-4,\"fSint64\":\"-9223372036854775808\","
	"\"inner\":{\"a\":1,\"label\":\"x\",\"children\":[{\"a\":2}]},"
	"\"rInt32\":[1,-1,300],\"rString\":[\"a\",\"\"],\"rInner\":[{\"a\":3},{}],"
	"\"rEnum\":[\"RED\",7],\"rDouble\":[1.5,-2.0],\"rSint64\":[\"-1\",\"1\"],"
	"\"mStrI64\":{\"k1\":\"5\",\"k2\":\"-6\"},\"mI32Inner\":{\"-3\":{\"a\":9}},"
	"\"mBoolStr\":{\"true\":\"yes\"},\"cInner\":{\"label\":\"in oneof\"},"
	"\"stamp\":\"2023-11-14T22:13:20.500Z\",\"span\":\"-1.500s\","
	"\"rBytes\":[\"\",\"/w==\"],\"rFixed32\":[1,2]}";

/* The golden message packed by protobuf-c; *n its size. */
static uint8_t *golden_wire(size_t *n)
{
	Pbjson__Test__All a = PBJSON__TEST__ALL__INIT;
	a.f_double = 0.1;
	a.f_float = 0.1f;
	a.f_int64 = -9007199254740993ll; /* 2^53 + 1: no double holds it */
	a.f_uint64 = UINT64_MAX;
	a.f_int32 = -5;
	a.f_fixed64 = 1;
	a.f_fixed32 = 4000000000u;
	a.f_bool = 1;
	a.f_string = (char *)"h\xc3\xa9llo \"q\"\n";
	a.f_bytes.len = 3;
	a.f_bytes.data = (uint8_t *)"\x00\x01\xfe";
	a.f_uint32 = 7;
	a.f_enum = PBJSON__TEST__COLOR__GREEN;
	a.f_sfixed32 = -2;
	a.f_sfixed64 = -3;
	a.f_sint32 = -4;
	a.f_sint64 = INT64_MIN;
	Pbjson__Test__Inner child = inner_a(2, (char *)"");
	Pbjson__Test__Inner *children[] = { &child };
	Pbjson__Test__Inner in = inner_a(1, (char *)"x");
	in.n_children = 1;
	in.children = children;
	a.inner = &in;
	int32_t ri[] = { 1, -1, 300 };
	a.n_r_int32 = 3;
	a.r_int32 = ri;
	char *rs[] = { (char *)"a", (char *)"" };
	a.n_r_string = 2;
	a.r_string = rs;
	Pbjson__Test__Inner r1 = inner_a(3, (char *)""), r2 = inner_a(0, (char *)"");
	Pbjson__Test__Inner *rin[] = { &r1, &r2 };
	a.n_r_inner = 2;
	a.r_inner = rin;
	Pbjson__Test__Color re[] = { PBJSON__TEST__COLOR__RED, (Pbjson__Test__Color)7 };
	a.n_r_enum = 2;
	a.r_enum = re;
	double rd[] = { 1.5, -2.0 };
	a.n_r_double = 2;
	a.r_double = rd;
	int64_t rsi[] = { -1, 1 };
	a.n_r_sint64 = 2;
	a.r_sint64 = rsi;
	Pbjson__Test__All__MStrI64Entry e1 = PBJSON__TEST__ALL__MSTR_I64_ENTRY__INIT,
					e2 = PBJSON__TEST__ALL__MSTR_I64_ENTRY__INIT;
	e1.key = (char *)"k1";
	e1.value = 5;
	e2.key = (char *)"k2";
	e2.value = -6;
	Pbjson__Test__All__MStrI64Entry *m1[] = { &e1, &e2 };
	a.n_m_str_i64 = 2;
	a.m_str_i64 = m1;
	Pbjson__Test__Inner nine = inner_a(9, (char *)"");
	Pbjson__Test__All__MI32InnerEntry e3 = PBJSON__TEST__ALL__MI32_INNER_ENTRY__INIT;
	e3.key = -3;
	e3.value = &nine;
	Pbjson__Test__All__MI32InnerEntry *m2[] = { &e3 };
	a.n_m_i32_inner = 1;
	a.m_i32_inner = m2;
	Pbjson__Test__All__MBoolStrEntry e4 = PBJSON__TEST__ALL__MBOOL_STR_ENTRY__INIT;
	e4.key = 1;
	e4.value = (char *)"yes";
	Pbjson__Test__All__MBoolStrEntry *m3[] = { &e4 };
	a.n_m_bool_str = 1;
	a.m_bool_str = m3;
	Pbjson__Test__Inner oi = inner_a(0, (char *)"in oneof");
	a.choice_case = PBJSON__TEST__ALL__CHOICE_C_INNER;
	a.c_inner = &oi;
	Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
	ts.seconds = 1700000000;
	ts.nanos = 500000000;
	a.stamp = &ts;
	Google__Protobuf__Duration du = GOOGLE__PROTOBUF__DURATION__INIT;
	du.seconds = -1;
	du.nanos = -500000000;
	a.span = &du;
	ProtobufCBinaryData rb[] = { { 0, NULL }, { 1, (uint8_t *)"\xff" } };
	a.n_r_bytes = 2;
	a.r_bytes = rb;
	uint32_t rf[] = { 1, 2 };
	a.n_r_fixed32 = 2;
	a.r_fixed32 = rf;
	return pack(&a.base, n);
}

static char *decode_text(const pbjson_schema *s, const char *type, const uint8_t *p, size_t n,
			 const struct pbjson_options *o, int *rc, char *err, size_t errlen)
{
	json_t *j = NULL;
	*rc = pbjson_decode(s, type, p, n, o, &j, err, errlen);
	if (*rc)
		return NULL;
	char *t = pbjson_dumps(j);
	json_decref(j);
	return t;
}

static void test_every_shape(void)
{
	size_t n;
	uint8_t *wire = golden_wire(&n);
	int rc;
	char err[256];
	char *text = decode_text(testschema, "pbjson.test.All", wire, n, NULL, &rc, err,
				 sizeof(err));
	CU_ASSERT_EQUAL_FATAL(rc, 0);
	if (strcmp(text, golden_json) != 0)
		fprintf(stderr, "\n got: %s\nwant: %s\n", text, golden_json);
	CU_ASSERT_STRING_EQUAL(text, golden_json);
	free(text);

	/* and back: protobuf-c reads what we encode as the same message */
	json_t *j = json_loads(golden_json, 0, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(j);
	uint8_t *w2;
	size_t n2;
	CU_ASSERT_EQUAL_FATAL(pbjson_encode(testschema, "pbjson.test.All", j, &w2, &n2, err,
					    sizeof(err)), 0);
	Pbjson__Test__All *a = pbjson__test__all__unpack(NULL, n2, w2);
	CU_ASSERT_PTR_NOT_NULL_FATAL(a);
	CU_ASSERT_EQUAL(a->f_int64, -9007199254740993ll);
	CU_ASSERT_EQUAL(a->f_uint64, UINT64_MAX);
	CU_ASSERT_EQUAL(a->f_sint64, INT64_MIN);
	CU_ASSERT_EQUAL(a->f_float, 0.1f);
	CU_ASSERT_EQUAL(a->choice_case, PBJSON__TEST__ALL__CHOICE_C_INNER);
	CU_ASSERT_EQUAL(a->stamp->seconds, 1700000000);
	CU_ASSERT_EQUAL(a->span->nanos, -500000000);
	CU_ASSERT_EQUAL(a->n_m_str_i64, 2);
	size_t n3;
	uint8_t *w3 = pack(&a->base, &n3);
	CU_ASSERT(n3 == n && memcmp(w3, wire, n) == 0);
	free(w3);
	pbjson__test__all__free_unpacked(a, NULL);
	free(w2);
	json_decref(j);

	/* the filled-in message of pbjson_test.proto, as for schemas/ */
	for (unsigned seed = 1; seed <= 5; seed++) {
		ProtobufCMessage *m = fill(&pbjson__test__all__descriptor, 0, seed);
		round_trip(testschema, &pbjson__test__all__descriptor, m);
		protobuf_c_message_free_unpacked(m, NULL);
	}
	free(wire);
}

static void expect_text(const char *type, const uint8_t *p, size_t n,
			const struct pbjson_options *o, const char *want)
{
	int rc;
	char err[256] = "";
	char *t = decode_text(testschema, type, p, n, o, &rc, err, sizeof(err));
	if (rc)
		fprintf(stderr, "decode: %s\n", err);
	CU_ASSERT_EQUAL_FATAL(rc, 0);
	if (strcmp(t, want) != 0)
		fprintf(stderr, "\n got: %s\nwant: %s\n", t, want);
	CU_ASSERT_STRING_EQUAL(t, want);
	free(t);
}

static void test_wire_rules(void)
{
	struct pbjson_options o;
	pbjson_options_init(&o);
	CU_ASSERT_EQUAL(o.bytes_limit, 32);
	CU_ASSERT_FALSE(o.full_bytes);
	CU_ASSERT_FALSE(o.emit_defaults);
	/* an explicit zero of a proto3 field is a default: left out */
	expect_text("pbjson.test.All", (const uint8_t *)"\x28\x00", 2, NULL, "{}");
	/* the last member of a oneof wins */
	expect_text("pbjson.test.All", (const uint8_t *)"\xea\x01\x01z\xf8\x01\x05", 7, NULL,
		    "{\"cId\":\"5\"}");
	/* a singular message seen twice merges */
	expect_text("pbjson.test.All", (const uint8_t *)"\x9a\x01\x02\x08\x01\x9a\x01\x03\x12\x01x",
		    11, NULL, "{\"inner\":{\"a\":1,\"label\":\"x\"}}");
	/* repeated scalars packed or not, and unknown fields of every wire
	 * type skipped */
	expect_text("pbjson.test.All",
		    (const uint8_t *)"\xa0\x01\x01\xa2\x01\x02\x02\x03\xa0\x06\x07\xaa\x06\x01q"
				     "\xad\x06\x01\x02\x03\x04\xa9\x06\x01\x02\x03\x04\x05\x06\x07\x08",
		    31, NULL, "{\"rInt32\":[1,2,3]}");
	/* an unknown group, with a group and fields inside, is skipped */
	expect_text("pbjson.test.All",
		    (const uint8_t *)"\xa3\x06\x08\x01\xab\x06\x12\x00\xac\x06\xa4\x06\x28\x03", 14,
		    NULL, "{\"fInt32\":3}");
	/* NaN and infinities, as strings */
	expect_text("pbjson.test.All",
		    (const uint8_t *)"\x09\x00\x00\x00\x00\x00\x00\xf8\x7f"
				     "\x15\x00\x00\x80\xff",
		    14, NULL, "{\"fDouble\":\"NaN\",\"fFloat\":\"-Infinity\"}");
	/* long bytes are cut unless asked for in full */
	Pbjson__Test__All a = PBJSON__TEST__ALL__INIT;
	uint8_t big[100];
	memset(big, 0xab, sizeof(big));
	a.f_bytes.len = sizeof(big);
	a.f_bytes.data = big;
	size_t n;
	uint8_t *w = pack(&a.base, &n);
	char *b32 = pbjson_base64(big, 32), *b100 = pbjson_base64(big, 100);
	char want[512];
	snprintf(want, sizeof(want), "{\"fBytes\":\"%s... (100 bytes)\"}", b32);
	expect_text("pbjson.test.All", w, n, NULL, want);
	o.full_bytes = true;
	snprintf(want, sizeof(want), "{\"fBytes\":\"%s\"}", b100);
	expect_text("pbjson.test.All", w, n, &o, want);
	o.full_bytes = false;
	o.bytes_limit = 3;
	expect_text("pbjson.test.All", w, n, &o, "{\"fBytes\":\"q6ur... (100 bytes)\"}");
	free(b32);
	free(b100);
	free(w);
	/* defaults on request: scalars, repeated and maps, not messages or
	 * oneof members */
	pbjson_options_init(&o);
	o.emit_defaults = true;
	expect_text("pbjson.test.All", NULL, 0, &o,
		    "{\"fDouble\":0.0,\"fFloat\":0.0,\"fInt64\":\"0\",\"fUint64\":\"0\",\"fInt32\":0,"
		    "\"fFixed64\":\"0\",\"fFixed32\":0,\"fBool\":false,\"fString\":\"\",\"fBytes\":\"\","
		    "\"fUint32\":0,\"fEnum\":\"COLOR_UNSPECIFIED\",\"fSfixed32\":0,\"fSfixed64\":\"0\","
		    "\"fSint32\":0,\"fSint64\":\"0\",\"rInt32\":[],\"rString\":[],\"rInner\":[],"
		    "\"rEnum\":[],\"rDouble\":[],\"rSint64\":[],\"mStrI64\":{},\"mI32Inner\":{},"
		    "\"mBoolStr\":{},\"rBytes\":[],\"rFixed32\":[]}");
	expect_text("pbjson.test.All", NULL, 0, NULL, "{}");
}

/* ---------------------------------------------------- untrusted bytes */

/* Decoding must fail with PBJSON_EWIRE/ELIMIT and an offset in the text,
 * or succeed: never crash (ASan/UBSan builds check the "never"). */
static int decode_any(const pbjson_schema *s, const char *type, const uint8_t *p, size_t n,
		      char *err, size_t errlen)
{
	json_t *j = NULL;
	err[0] = '\0';
	int rc = pbjson_decode(s, type, p, n, NULL, &j, err, errlen);
	if (rc == 0) {
		CU_ASSERT_PTR_NOT_NULL(j);
		char *t = pbjson_dumps(j);
		CU_ASSERT_PTR_NOT_NULL(t);
		free(t);
		json_decref(j);
	} else {
		CU_ASSERT_PTR_NULL(j);
		CU_ASSERT(rc == PBJSON_EWIRE || rc == PBJSON_ELIMIT);
		CU_ASSERT_PTR_NOT_NULL(strstr(err, "offset"));
	}
	return rc;
}

static void test_every_truncation(void)
{
	size_t n;
	uint8_t *wire = golden_wire(&n);
	char err[256];
	size_t failed = 0;
	for (size_t len = 0; len < n; len++) {
		/* a private copy of exactly len bytes, so ASan sees any read
		 * past the end */
		uint8_t *cut = malloc(len ? len : 1);
		memcpy(cut, wire, len);
		int rc = decode_any(testschema, "pbjson.test.All", cut, len, err, sizeof(err));
		/* protobuf-c as the referee: a prefix that ends between fields
		 * is a valid message, any other is not */
		Pbjson__Test__All *ref = pbjson__test__all__unpack(NULL, len, cut);
		CU_ASSERT_EQUAL(rc == 0, ref != NULL);
		if ((rc == 0) != (ref != NULL))
			fprintf(stderr, "prefix %zu: pbjson %d (%s), protobuf-c %s\n", len, rc, err,
				ref ? "ok" : "error");
		if (ref)
			pbjson__test__all__free_unpacked(ref, NULL);
		failed += rc != 0;
		free(cut);
	}
	CU_ASSERT(failed > n / 2); /* most cuts fall inside a field */
	free(wire);
}

static void test_changed_and_random_bytes(void)
{
	size_t n;
	uint8_t *wire = golden_wire(&n);
	char err[256];
	uint8_t *buf = malloc(n);
	static const uint8_t values[] = { 0x00, 0x01, 0x7f, 0x80, 0xff, 0x0a, 0x12, 0x1a };
	for (size_t i = 0; i < n; i++)
		for (size_t v = 0; v < sizeof(values); v++) {
			memcpy(buf, wire, n);
			buf[i] = values[v];
			decode_any(testschema, "pbjson.test.All", buf, n, err, sizeof(err));
			buf[i] = wire[i] ^ 0x55;
			decode_any(testschema, "pbjson.test.All", buf, n, err, sizeof(err));
		}
	free(buf);
	free(wire);
	uint64_t x = 88172645463325252ull; /* xorshift: the same bytes every run */
	for (int round = 0; round < 20000; round++) {
		size_t len = (size_t)(round % 97);
		uint8_t *r = malloc(len ? len : 1);
		for (size_t i = 0; i < len; i++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			r[i] = (uint8_t)x;
		}
		decode_any(testschema, round & 1 ? "pbjson.test.All" : "pbjson.test.Inner", r, len,
			   err, sizeof(err));
		decode_any(builtin, "shmbus.msgs.Odometry", r, len, err, sizeof(err));
		free(r);
	}
}

static void expect_wire_error(const uint8_t *p, size_t n, int code, const char *text)
{
	char err[256];
	json_t *j = NULL;
	int rc = pbjson_decode(testschema, "pbjson.test.All", p, n, NULL, &j, err, sizeof(err));
	CU_ASSERT_EQUAL(rc, code);
	CU_ASSERT_PTR_NULL(j);
	if (rc != code || !strstr(err, text))
		fprintf(stderr, "want '%s', got %d '%s'\n", text, rc, err);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, text));
}

static void test_malformed_wire(void)
{
	expect_wire_error((const uint8_t *)"\x28", 1, PBJSON_EWIRE, "truncated varint at offset 1");
	expect_wire_error((const uint8_t *)"\x28\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 12,
			  PBJSON_EWIRE, "longer than 64 bits at offset 1");
	expect_wire_error((const uint8_t *)"\x00", 1, PBJSON_EWIRE, "invalid field number 0 at offset 0");
	expect_wire_error((const uint8_t *)"\x08\x01", 2, PBJSON_EWIRE, "wire type 0, not 1, at offset 0");
	expect_wire_error((const uint8_t *)"\x28\x01\xa6\x06", 4, PBJSON_EWIRE,
			  "invalid wire type 6 at offset 2");
	expect_wire_error((const uint8_t *)"\xa3\x06", 2, PBJSON_EWIRE,
			  "group 100 at offset 0 has no end");
	expect_wire_error((const uint8_t *)"\xa3\x06\xac\x06", 4, PBJSON_EWIRE,
			  "end of group 101 at offset 2 inside group 100");
	expect_wire_error((const uint8_t *)"\xa4\x06", 2, PBJSON_EWIRE,
			  "end of a group that did not start, at offset 0");
	expect_wire_error((const uint8_t *)"\x4a\xff\xff\xff\xff\x0f", 6, PBJSON_EWIRE,
			  "runs past the end");
	expect_wire_error((const uint8_t *)"\x4a\x02\xc3\x28", 4, PBJSON_EWIRE,
			  "invalid UTF-8 in the string at offset 2");
	expect_wire_error((const uint8_t *)"\x9a\x02\x03\x01\x02\x03", 6, PBJSON_EWIRE,
			  "r_fixed32: truncated 4-byte value at offset 3");
	expect_wire_error((const uint8_t *)"\x09\x01\x02", 3, PBJSON_EWIRE,
			  "truncated 8-byte value at offset 1");
	/* Inner.children nested 200 deep: refused, not a stack overflow */
	size_t cap = 200 * 4 + 8, n = 0;
	uint8_t *b = malloc(cap), *t = malloc(cap);
	for (int d = 0; d < 200; d++) {
		t[0] = 0x1a;
		size_t k = 1, v = n;
		do {
			t[k++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
			v >>= 7;
		} while (v);
		memcpy(t + k, b, n);
		n += k;
		memcpy(b, t, n);
	}
	char err[256];
	json_t *j = NULL;
	CU_ASSERT_EQUAL(pbjson_decode(testschema, "pbjson.test.Inner", b, n, NULL, &j, err,
				      sizeof(err)), PBJSON_ELIMIT);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "nested deeper"));
	free(b);
	free(t);
	CU_ASSERT_EQUAL(pbjson_decode(testschema, "pbjson.test.Nope", NULL, 0, NULL, &j, err,
				      sizeof(err)), PBJSON_ENOTYPE);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "pbjson.test.Nope"));
}

/* ------------------------------------------------------------- encode */

static void expect_encode_error(const char *json, int code, const char *text)
{
	json_t *j = json_loads(json, 0, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(j);
	uint8_t *out = (uint8_t *)"x";
	size_t n = 99;
	char err[512] = "";
	int rc = pbjson_encode(testschema, "pbjson.test.All", j, &out, &n, err, sizeof(err));
	CU_ASSERT_EQUAL(rc, code);
	CU_ASSERT_PTR_NULL(out);
	CU_ASSERT_EQUAL(n, 0);
	if (rc != code || !strstr(err, text))
		fprintf(stderr, "%s: want '%s', got %d '%s'\n", json, text, rc, err);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, text));
	json_decref(j);
}

static void test_encode_errors(void)
{
	expect_encode_error("{\"nope\":1}", PBJSON_EJSON, "pbjson.test.All has no field 'nope'");
	expect_encode_error("{\"fInt32\":\"abc\"}", PBJSON_EJSON, "\"abc\" is not an integer");
	expect_encode_error("{\"fInt32\":true}", PBJSON_EJSON, "needs an integer, not a boolean");
	expect_encode_error("{\"fInt32\":1.5}", PBJSON_EJSON, "needs an integer, not 1.5");
	expect_encode_error("{\"inner\":{\"children\":[{}, {\"a\":\"x\"}]}}", PBJSON_EJSON,
			    "inner.children[1].a: field 'a' (int32)");
	expect_encode_error("{\"fInt32\":3000000000}", PBJSON_EJSON, "out of range");
	expect_encode_error("{\"fUint32\":-1}", PBJSON_EJSON, "cannot be negative");
	expect_encode_error("{\"fUint64\":\"-1\"}", PBJSON_EJSON, "not an unsigned integer");
	expect_encode_error("{\"fFloat\":1e39}", PBJSON_EJSON, "out of range");
	expect_encode_error("{\"fBytes\":\"!!\"}", PBJSON_EJSON, "not valid base64");
	expect_encode_error("{\"fBytes\":\"q6ur... (100 bytes)\"}", PBJSON_EJSON, "not valid base64");
	expect_encode_error("{\"fEnum\":\"PURPLE\"}", PBJSON_EJSON,
			    "enum pbjson.test.Color has no value 'PURPLE'");
	expect_encode_error("{\"cName\":\"a\",\"cId\":\"1\"}", PBJSON_EJSON, "same oneof 'choice'");
	expect_encode_error("{\"rInt32\":5}", PBJSON_EJSON, "needs an array, not an integer");
	expect_encode_error("{\"rInt32\":[1,null]}", PBJSON_EJSON, "rInt32[1]: null");
	expect_encode_error("{\"mStrI64\":[]}", PBJSON_EJSON, "needs an object (a map)");
	expect_encode_error("{\"mBoolStr\":{\"maybe\":\"x\"}}", PBJSON_EJSON,
			    "map key 'maybe' is not true or false");
	expect_encode_error("{\"mI32Inner\":{\"x\":{}}}", PBJSON_EJSON, "mI32Inner[\"x\"]");
	expect_encode_error("{\"stamp\":\"yesterday\"}", PBJSON_EJSON, "is not a timestamp");
	expect_encode_error("{\"stamp\":\"2024-02-30T00:00:00Z\"}", PBJSON_EJSON, "not a timestamp");
	expect_encode_error("{\"span\":\"5\"}", PBJSON_EJSON, "is not a duration");
	expect_encode_error("{\"inner\":[]}", PBJSON_EJSON, "pbjson.test.Inner needs an object");
	expect_encode_error("[]", PBJSON_EJSON, "needs an object, not an array");

	json_t *j = json_object();
	uint8_t *out;
	size_t n;
	char err[256];
	CU_ASSERT_EQUAL(pbjson_encode(testschema, "no.Such", j, &out, &n, err, sizeof(err)),
			PBJSON_ENOTYPE);
	CU_ASSERT_EQUAL(pbjson_encode(testschema, "pbjson.test.All", j, &out, &n, err,
				      sizeof(err)), 0);
	CU_ASSERT_EQUAL(n, 0); /* the empty message, in a real buffer */
	CU_ASSERT_PTR_NOT_NULL(out);
	free(out);
	json_decref(j);
}

/* JSON that differs from the canonical form but means the same. */
static void test_encode_accepts(void)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
		{ "{\"f_int32\":5,\"f_int64\":-7,\"f_uint64\":18446744073709551615}",
		  "{\"fInt64\":\"-7\",\"fInt32\":5}" }, /* UINT64_MAX is not a jansson integer */
		{ "{\"fInt32\":\"-5\",\"fUint32\":2.0,\"fInt64\":\"-9223372036854775808\"}",
		  "{\"fInt64\":\"-9223372036854775808\",\"fInt32\":-5,\"fUint32\":2}" },
		{ "{\"fDouble\":\"NaN\",\"fFloat\":\"Infinity\",\"rDouble\":[\"-Infinity\",1,\"2.5\"]}",
		  "{\"fDouble\":\"NaN\",\"fFloat\":\"Infinity\",\"rDouble\":[\"-Infinity\",1.0,2.5]}" },
		{ "{\"fEnum\":2,\"rEnum\":[\"BLUE\",9]}", "{\"fEnum\":\"GREEN\",\"rEnum\":[\"BLUE\",9]}" },
		{ "{\"fBytes\":\"q6ur\",\"rBytes\":[\"-_8\",\"AA\"]}",
		  "{\"fBytes\":\"q6ur\",\"rBytes\":[\"+/8=\",\"AA==\"]}" },
		{ "{\"stamp\":\"1970-01-01T01:00:00.25+01:00\",\"span\":\"0.000000001s\"}",
		  "{\"stamp\":\"1970-01-01T00:00:00.250Z\",\"span\":\"0.000000001s\"}" },
		{ "{\"stamp\":\"1970-01-01T00:00:00Z\"}", "{\"stamp\":\"1970-01-01T00:00:00Z\"}" },
		{ "{\"inner\":null,\"cName\":null,\"cId\":\"3\",\"mBoolStr\":{\"false\":\"\"}}",
		  "{\"mBoolStr\":{\"false\":\"\"},\"cId\":\"3\"}" },
		{ "{\"mI32Inner\":{\"7\":null}}", "{\"mI32Inner\":{\"7\":{}}}" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_error_t jerr;
		json_t *j = json_loads(cases[i].in, 0, &jerr);
		if (!j) { /* jansson refuses integers above INT64_MAX */
			CU_ASSERT_PTR_NOT_NULL(strstr(jerr.text, "too big"));
			j = json_loads("{\"f_int32\":5,\"f_int64\":-7}", 0, NULL);
		}
		uint8_t *w;
		size_t n;
		char err[256];
		int rc = pbjson_encode(testschema, "pbjson.test.All", j, &w, &n, err, sizeof(err));
		if (rc)
			fprintf(stderr, "%s: %s\n", cases[i].in, err);
		CU_ASSERT_EQUAL_FATAL(rc, 0);
		expect_text("pbjson.test.All", w, n, NULL, cases[i].out);
		free(w);
		json_decref(j);
	}
}

/* Wrappers are their bare value; present but zero still prints. */
static void test_wrappers(void)
{
	pbjson_schema *s = load(pbjson_wrappers_fds, pbjson_wrappers_fds_size);
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	/* w_int64 {value: -2}, w_string {value: "hi"}, w_bool {} (false),
	 * w_double {value: 0.5}, w_list [{value: 1}, {}] */
	static const uint8_t wire[] = {
		0x0a, 0x0b, 0x08, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
		0x12, 0x04, 0x0a, 0x02, 'h', 'i',
		0x1a, 0x00,
		0x22, 0x09, 0x09, 0, 0, 0, 0, 0, 0, 0xe0, 0x3f,
		0x2a, 0x02, 0x08, 0x01, 0x2a, 0x00,
	};
	const char *want = "{\"wInt64\":\"-2\",\"wString\":\"hi\",\"wBool\":false,"
			   "\"wDouble\":0.5,\"wList\":[1,0]}";
	json_t *j = NULL;
	char err[256];
	CU_ASSERT_EQUAL_FATAL(pbjson_decode(s, "pbjson.test.Wrapped", wire, sizeof(wire), NULL, &j,
					    err, sizeof(err)), 0);
	char *t = pbjson_dumps(j);
	CU_ASSERT_STRING_EQUAL(t, want);
	free(t);
	/* and back: decoding what encode made gives the same JSON */
	uint8_t *w;
	size_t n;
	CU_ASSERT_EQUAL_FATAL(pbjson_encode(s, "pbjson.test.Wrapped", j, &w, &n, err, sizeof(err)),
			      0);
	json_t *j2 = NULL;
	CU_ASSERT_EQUAL(pbjson_decode(s, "pbjson.test.Wrapped", w, n, NULL, &j2, err, sizeof(err)),
			0);
	CU_ASSERT_TRUE(json_equal(j, j2));
	json_decref(j2);
	free(w);
	json_decref(j);
	j = json_loads("{\"wBool\":\"yes\"}", 0, NULL);
	CU_ASSERT_EQUAL(pbjson_encode(s, "pbjson.test.Wrapped", j, &w, &n, err, sizeof(err)),
			PBJSON_EJSON);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "wBool: field 'value' (bool) needs true or false"));
	json_decref(j);
	pbjson_schema_free(s);
}

/* ------------------------------------------------------------- schema */

static void test_schema(void)
{
	pbjson_schema *s = NULL;
	char err[256];
	CU_ASSERT_EQUAL(pbjson_schema_load("\xff\xff\xff", 3, &s, err, sizeof(err)),
			PBJSON_ESCHEMA);
	CU_ASSERT_PTR_NULL(s);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "not a serialized FileDescriptorSet"));
	CU_ASSERT_EQUAL(pbjson_schema_load(NULL, 0, &s, err, sizeof(err)), 0);
	CU_ASSERT_FALSE(pbjson_has_type(s, "shmbus.msgs.Imu"));
	pbjson_schema_free(s);
	/* every truncation of a real descriptor set: loads or is refused */
	size_t ok = 0;
	for (size_t len = 0; len < pbjson_test_fds_size; len++) {
		uint8_t *cut = malloc(len ? len : 1);
		memcpy(cut, pbjson_test_fds, len);
		int rc = pbjson_schema_load(cut, len, &s, err, sizeof(err));
		CU_ASSERT(rc == 0 || rc == PBJSON_ESCHEMA);
		if (rc == 0) {
			ok++;
			pbjson_schema_free(s);
		}
		free(cut);
	}
	CU_ASSERT(ok < pbjson_test_fds_size / 2);
	/* a type's own files, for a topic to store */
	uint8_t *sub;
	size_t n;
	CU_ASSERT_EQUAL_FATAL(pbjson_schema_subset(builtin, "shmbus.msgs.Imu", &sub, &n, err,
						   sizeof(err)), 0);
	s = load(sub, n);
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	CU_ASSERT_TRUE(pbjson_has_type(s, "shmbus.msgs.Imu"));
	CU_ASSERT_TRUE(pbjson_has_type(s, "shmbus.msgs.Header"));
	CU_ASSERT_TRUE(pbjson_has_type(s, "shmbus.msgs.Vector3"));
	CU_ASSERT_FALSE(pbjson_has_type(s, "shmbus.msgs.Image"));
	CU_ASSERT(n < pbjson_builtin_fds_size);
	pbjson_schema_free(s);
	free(sub);
	CU_ASSERT_EQUAL(pbjson_schema_subset(testschema, "pbjson.test.All.MStrI64Entry", &sub, &n,
					     err, sizeof(err)), 0);
	s = load(sub, n);
	CU_ASSERT_TRUE(pbjson_has_type(s, "google.protobuf.Timestamp"));
	pbjson_schema_free(s);
	free(sub);
	CU_ASSERT_EQUAL(pbjson_schema_subset(builtin, "shmbus.msgs.Nope", &sub, &n, err,
					     sizeof(err)), PBJSON_ENOTYPE);
	for (int e = 0; e >= -8; e--)
		CU_ASSERT_PTR_NOT_NULL(pbjson_strerror(e));
	CU_ASSERT_STRING_EQUAL(pbjson_strerror(PBJSON_EWIRE), "malformed protobuf message");
}

/* A set whose file uses a type without importing the file that defines
 * it (found by fuzzing: protoc never writes that, a damaged schema may)
 * loads, since types resolve across the whole set; the subset a topic
 * stores must then load too, so it takes the defining file along. And a
 * chain of 100000 imports costs no deep recursion. */
static void test_subset_unimported(void)
{
	Google__Protobuf__FileDescriptorSet *set =
		google__protobuf__file_descriptor_set__unpack(NULL, pbjson_test_fds_size,
							       pbjson_test_fds);
	CU_ASSERT_PTR_NOT_NULL_FATAL(set);
	/* The import moves to the end of its list, which is cut short while
	 * packing (and whole again to be freed). */
	Google__Protobuf__FileDescriptorProto *importer = NULL;
	for (size_t i = 0; i < set->n_file; i++) {
		Google__Protobuf__FileDescriptorProto *f = set->file[i];
		for (size_t d = 0; d < f->n_dependency; d++)
			if (strcmp(f->dependency[d], "google/protobuf/duration.proto") == 0) {
				char *t = f->dependency[d];
				f->dependency[d] = f->dependency[f->n_dependency - 1];
				f->dependency[f->n_dependency - 1] = t;
				importer = f;
				break;
			}
	}
	CU_ASSERT_PTR_NOT_NULL_FATAL(importer);
	importer->n_dependency--;
	size_t n = google__protobuf__file_descriptor_set__get_packed_size(set);
	uint8_t *buf = malloc(n);
	google__protobuf__file_descriptor_set__pack(set, buf);
	importer->n_dependency++;
	google__protobuf__file_descriptor_set__free_unpacked(set, NULL);
	pbjson_schema *s = load(buf, n), *again;
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	uint8_t *sub;
	size_t len;
	char err[256];
	CU_ASSERT_EQUAL_FATAL(pbjson_schema_subset(s, "pbjson.test.All", &sub, &len, err,
						   sizeof(err)), 0);
	int rc = pbjson_schema_load(sub, len, &again, err, sizeof(err));
	if (rc)
		fprintf(stderr, "\nthe subset does not load: %s\n", err);
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT_TRUE(rc == 0 && pbjson_has_type(again, "google.protobuf.Duration"));
	if (rc == 0)
		pbjson_schema_free(again);
	pbjson_schema_free(s);
	free(sub);
	free(buf);

	/* file i imports file i + 1; the last defines the type */
	enum { CHAIN = 100000 };
	Google__Protobuf__FileDescriptorSet chain = GOOGLE__PROTOBUF__FILE_DESCRIPTOR_SET__INIT;
	Google__Protobuf__FileDescriptorProto *files = calloc(CHAIN, sizeof(*files));
	Google__Protobuf__FileDescriptorProto **ptrs = calloc(CHAIN, sizeof(*ptrs));
	char (*names)[16] = calloc(CHAIN, sizeof(*names));
	char **deps = calloc(CHAIN, sizeof(*deps));
	Google__Protobuf__DescriptorProto msg = GOOGLE__PROTOBUF__DESCRIPTOR_PROTO__INIT;
	Google__Protobuf__DescriptorProto *msgp = &msg;
	msg.name = (char *)"Leaf";
	for (size_t i = 0; i < CHAIN; i++) {
		Google__Protobuf__FileDescriptorProto f = GOOGLE__PROTOBUF__FILE_DESCRIPTOR_PROTO__INIT;
		files[i] = f;
		snprintf(names[i], sizeof(names[i]), "f%zu", i);
		files[i].name = names[i];
		ptrs[i] = &files[i];
	}
	for (size_t i = 0; i + 1 < CHAIN; i++) {
		deps[i] = names[i + 1];
		files[i].n_dependency = 1;
		files[i].dependency = &deps[i];
	}
	files[0].n_message_type = 1;
	files[0].message_type = &msgp;
	chain.n_file = CHAIN;
	chain.file = ptrs;
	n = google__protobuf__file_descriptor_set__get_packed_size(&chain);
	buf = malloc(n);
	google__protobuf__file_descriptor_set__pack(&chain, buf);
	s = load(buf, n);
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	CU_ASSERT_EQUAL(pbjson_schema_subset(s, "Leaf", &sub, &len, err, sizeof(err)), 0);
	free(sub);
	pbjson_schema_free(s);
	free(buf);
	free(files);
	free(ptrs);
	free(names);
	free(deps);
}

static void add(void)
{
	CU_pSuite s = CU_add_suite("pbjson", setup, teardown);
	CU_add_test(s, "every schemas/ type round trips", test_every_schema_type);
	CU_add_test(s, "a subset loads where its set did", test_subset_unimported);
	CU_add_test(s, "generated schemas load", test_generated_schemas_load);
	CU_add_test(s, "every shape of the JSON mapping", test_every_shape);
	CU_add_test(s, "wire rules: defaults, oneof, merge, packed, unknown", test_wire_rules);
	CU_add_test(s, "every truncation", test_every_truncation);
	CU_add_test(s, "changed and random bytes", test_changed_and_random_bytes);
	CU_add_test(s, "malformed wire bytes", test_malformed_wire);
	CU_add_test(s, "encode errors", test_encode_errors);
	CU_add_test(s, "encode accepts", test_encode_accepts);
	CU_add_test(s, "wrappers", test_wrappers);
	CU_add_test(s, "schema", test_schema);
}

int main(void)
{
	return h_run("test_pbjson", add);
}
