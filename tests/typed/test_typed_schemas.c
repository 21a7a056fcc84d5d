/*
 * test_typed_schemas - every message type of schemas/ goes over a real bus
 * through its generated typed publisher and subscriber and comes back
 * equal; each topic stores the type's full name and a schema that decodes
 * as a FileDescriptorSet holding the type and everything it imports.
 */
#include "harness.h"

#include <CUnit/Basic.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "google/protobuf/descriptor.pb-c.h"
#include "shmbus/msgs/diagnostic.shmbus.h"
#include "shmbus/msgs/geometry.shmbus.h"
#include "shmbus/msgs/gnss.shmbus.h"
#include "shmbus/msgs/header.shmbus.h"
#include "shmbus/msgs/image.shmbus.h"
#include "shmbus/msgs/imu.shmbus.h"
#include "shmbus/msgs/laser_scan.shmbus.h"
#include "shmbus/msgs/odometry.shmbus.h"
#include "shmbus/msgs/point_cloud.shmbus.h"

#define WAIT_NS 2000000000LL

/* Equal messages pack to equal bytes (protobuf-c packs fields in number
 * order and repeated/map entries in their order). */
static void check_same(const ProtobufCMessage *sent, const ProtobufCMessage *got)
{
	size_t n1, n2;
	uint8_t *b1, *b2;

	CU_ASSERT_PTR_NOT_NULL_FATAL(got);
	CU_ASSERT_PTR_EQUAL(got->descriptor, sent->descriptor);
	n1 = protobuf_c_message_get_packed_size(sent);
	n2 = protobuf_c_message_get_packed_size(got);
	CU_ASSERT_EQUAL_FATAL(n1, n2);
	b1 = malloc(n1 + 1);
	b2 = malloc(n2 + 1);
	CU_ASSERT_FATAL(b1 && b2);
	protobuf_c_message_pack(sent, b1);
	protobuf_c_message_pack(got, b2);
	CU_ASSERT_EQUAL(memcmp(b1, b2, n1), 0);
	free(b1);
	free(b2);
}

/* The stored schema: a FileDescriptorSet in dependency order that defines
 * `short_name` in package shmbus.msgs. */
static void check_schema(shmbus_sub *sub, const ProtobufCMessageDescriptor *desc)
{
	Google__Protobuf__FileDescriptorSet *set;
	const void *schema;
	size_t size = 0;
	int found = 0;

	CU_ASSERT_STRING_EQUAL(shmbus_sub_type_name(sub), desc->name);
	schema = shmbus_sub_schema(sub, &size);
	CU_ASSERT_PTR_NOT_NULL_FATAL(schema);
	set = google__protobuf__file_descriptor_set__unpack(NULL, size, schema);
	CU_ASSERT_PTR_NOT_NULL_FATAL(set);
	for (size_t i = 0; i < set->n_file; i++) {
		const Google__Protobuf__FileDescriptorProto *f = set->file[i];

		/* Every import appears before the file importing it. */
		for (size_t d = 0; d < f->n_dependency; d++) {
			int before = 0;

			for (size_t j = 0; j < i; j++)
				before |= strcmp(set->file[j]->name, f->dependency[d]) == 0;
			CU_ASSERT_TRUE(before);
		}
		CU_ASSERT_PTR_NULL(f->source_code_info);
		for (size_t m = 0; m < f->n_message_type; m++) {
			if (strcmp(f->package, desc->package_name) == 0 &&
			    strcmp(f->message_type[m]->name, desc->short_name) == 0)
				found = 1;
		}
	}
	CU_ASSERT_TRUE(found);
	google__protobuf__file_descriptor_set__free_unpacked(set, NULL);
}

/* Open, publish `msg`, take it back, compare, check the topic's schema. */
#define ROUNDTRIP(lower, ctype, msg)                                                               \
	do {                                                                                       \
		struct shmbus_topic_options to_;                                                   \
		struct shmbus_msg_info info_;                                                      \
		shmbus_pub *pub_ = NULL;                                                           \
		shmbus_sub *sub_ = NULL;                                                           \
		ctype *got_ = NULL;                                                                \
		uint64_t seq_ = 0;                                                                 \
                                                                                                   \
		shmbus_topic_options_init(&to_);                                                   \
		to_.max_message_size = 1 << 20;                                                    \
		CU_ASSERT_EQUAL_FATAL(lower##__pub_open(h_suite_bus, #lower, &to_, NULL, &pub_),   \
				      SHMBUS_OK);                                                  \
		CU_ASSERT_EQUAL_FATAL(lower##__sub_open(h_suite_bus, #lower, NULL, NULL, &sub_),   \
				      SHMBUS_OK);                                                  \
		CU_ASSERT_EQUAL(lower##__publish(pub_, (msg), &seq_), SHMBUS_OK);                  \
		CU_ASSERT_EQUAL(lower##__wait(sub_, WAIT_NS), SHMBUS_OK);                          \
		CU_ASSERT_EQUAL(lower##__take(sub_, NULL, &got_, &info_), SHMBUS_OK);              \
		check_same(&(msg)->base, got_ ? &got_->base : NULL);                               \
		if (got_) {                                                                        \
			CU_ASSERT_EQUAL(info_.seq, seq_);                                          \
			CU_ASSERT_EQUAL(info_.lost, 0);                                            \
		}                                                                                  \
		check_schema(sub_, &lower##__descriptor);                                          \
		lower##__free(got_, NULL);                                                         \
		CU_ASSERT_EQUAL(lower##__take(sub_, NULL, &got_, NULL), SHMBUS_EAGAIN);            \
		shmbus_sub_close(sub_);                                                            \
		shmbus_pub_close(pub_);                                                            \
	} while (0)

static Shmbus__Msgs__Header hdr = SHMBUS__MSGS__HEADER__INIT;
static Shmbus__Msgs__Vector3 v1 = SHMBUS__MSGS__VECTOR3__INIT, v2 = SHMBUS__MSGS__VECTOR3__INIT;
static Shmbus__Msgs__Quaternion q = SHMBUS__MSGS__QUATERNION__INIT;
static Shmbus__Msgs__Pose pose = SHMBUS__MSGS__POSE__INIT;
static Shmbus__Msgs__Twist twist = SHMBUS__MSGS__TWIST__INIT;
static double cov36[36], cov9[9];

static void fill_common(void)
{
	hdr.stamp_ns = 1764000000123456789LL;
	hdr.frame_id = (char *)"base_link";
	v1.x = 1.5;
	v1.y = -2.25;
	v1.z = 9.81;
	v2.x = 0.1;
	v2.y = 0.2;
	v2.z = -0.3;
	q.x = 0;
	q.y = 0;
	q.z = sin(0.5);
	q.w = cos(0.5);
	pose.position = &v1;
	pose.orientation = &q;
	twist.linear = &v1;
	twist.angular = &v2;
	for (int i = 0; i < 36; i++)
		cov36[i] = i % 7 == 0 ? 0.01 * (i + 1) : 0;
	for (int i = 0; i < 9; i++)
		cov9[i] = i % 4 == 0 ? 0.001 : 0;
}

static void test_geometry(void)
{
	Shmbus__Msgs__PoseWithCovariance pwc = SHMBUS__MSGS__POSE_WITH_COVARIANCE__INIT;
	Shmbus__Msgs__TwistWithCovariance twc = SHMBUS__MSGS__TWIST_WITH_COVARIANCE__INIT;
	Shmbus__Msgs__Transform tf[2] = { SHMBUS__MSGS__TRANSFORM__INIT,
					  SHMBUS__MSGS__TRANSFORM__INIT };
	Shmbus__Msgs__Transform *tfs[2] = { &tf[0], &tf[1] };
	Shmbus__Msgs__TransformList list = SHMBUS__MSGS__TRANSFORM_LIST__INIT;

	fill_common();
	ROUNDTRIP(shmbus__msgs__header, Shmbus__Msgs__Header, &hdr);
	ROUNDTRIP(shmbus__msgs__vector3, Shmbus__Msgs__Vector3, &v1);
	ROUNDTRIP(shmbus__msgs__quaternion, Shmbus__Msgs__Quaternion, &q);
	ROUNDTRIP(shmbus__msgs__pose, Shmbus__Msgs__Pose, &pose);
	pwc.pose = &pose;
	pwc.n_covariance = 36;
	pwc.covariance = cov36;
	ROUNDTRIP(shmbus__msgs__pose_with_covariance, Shmbus__Msgs__PoseWithCovariance, &pwc);
	ROUNDTRIP(shmbus__msgs__twist, Shmbus__Msgs__Twist, &twist);
	twc.twist = &twist;
	twc.n_covariance = 36;
	twc.covariance = cov36;
	ROUNDTRIP(shmbus__msgs__twist_with_covariance, Shmbus__Msgs__TwistWithCovariance, &twc);
	for (int i = 0; i < 2; i++) {
		tf[i].header = &hdr;
		tf[i].child_frame_id = (char *)(i ? "camera_link" : "imu_link");
		tf[i].translation = &v2;
		tf[i].rotation = &q;
	}
	ROUNDTRIP(shmbus__msgs__transform, Shmbus__Msgs__Transform, &tf[0]);
	list.n_transforms = 2;
	list.transforms = tfs;
	ROUNDTRIP(shmbus__msgs__transform_list, Shmbus__Msgs__TransformList, &list);
}

static void test_sensors(void)
{
	Shmbus__Msgs__Imu imu = SHMBUS__MSGS__IMU__INIT;
	Shmbus__Msgs__Image img = SHMBUS__MSGS__IMAGE__INIT;
	Shmbus__Msgs__CompressedImage jpg = SHMBUS__MSGS__COMPRESSED_IMAGE__INIT;
	Shmbus__Msgs__PointField pf[4];
	Shmbus__Msgs__PointField *pfs[4];
	Shmbus__Msgs__PointCloud pc = SHMBUS__MSGS__POINT_CLOUD__INIT;
	Shmbus__Msgs__LaserScan scan = SHMBUS__MSGS__LASER_SCAN__INIT;
	static const char *const names[4] = { "x", "y", "z", "intensity" };
	static uint8_t pixels[64 * 48 * 3], points[100 * 16];
	float ranges[360], intensities[360];

	fill_common();
	imu.header = &hdr;
	imu.orientation = &q;
	imu.n_orientation_covariance = 9;
	imu.orientation_covariance = cov9;
	imu.angular_velocity = &v2;
	imu.n_angular_velocity_covariance = 9;
	imu.angular_velocity_covariance = cov9;
	imu.linear_acceleration = &v1;
	ROUNDTRIP(shmbus__msgs__imu, Shmbus__Msgs__Imu, &imu);

	for (size_t i = 0; i < sizeof(pixels); i++)
		pixels[i] = (uint8_t)(i * 7);
	img.header = &hdr;
	img.width = 64;
	img.height = 48;
	img.encoding = (char *)"rgb8";
	img.step = 64 * 3;
	img.data.data = pixels;
	img.data.len = sizeof(pixels);
	ROUNDTRIP(shmbus__msgs__image, Shmbus__Msgs__Image, &img);
	jpg.header = &hdr;
	jpg.format = (char *)"jpeg";
	jpg.data.data = pixels;
	jpg.data.len = 1000;
	ROUNDTRIP(shmbus__msgs__compressed_image, Shmbus__Msgs__CompressedImage, &jpg);

	for (int i = 0; i < 4; i++) {
		shmbus__msgs__point_field__init(&pf[i]);
		pf[i].name = (char *)names[i];
		pf[i].offset = (uint32_t)(4 * i);
		pf[i].datatype = SHMBUS__MSGS__POINT_FIELD__DATATYPE__FLOAT32;
		pf[i].count = 1;
		pfs[i] = &pf[i];
	}
	ROUNDTRIP(shmbus__msgs__point_field, Shmbus__Msgs__PointField, &pf[3]);
	for (size_t i = 0; i < sizeof(points); i++)
		points[i] = (uint8_t)(i ^ 0x5a);
	pc.header = &hdr;
	pc.height = 1;
	pc.width = 100;
	pc.n_fields = 4;
	pc.fields = pfs;
	pc.point_step = 16;
	pc.row_step = 1600;
	pc.is_dense = 1;
	pc.data.data = points;
	pc.data.len = sizeof(points);
	ROUNDTRIP(shmbus__msgs__point_cloud, Shmbus__Msgs__PointCloud, &pc);

	for (int i = 0; i < 360; i++) {
		ranges[i] = 0.5f + (float)i * 0.01f;
		intensities[i] = (float)(i % 50);
	}
	ranges[10] = INFINITY;
	scan.header = &hdr;
	scan.angle_min = -3.14159f;
	scan.angle_max = 3.14159f;
	scan.angle_increment = 6.28318f / 360;
	scan.time_increment = 0.1f / 360;
	scan.scan_time = 0.1f;
	scan.range_min = 0.1f;
	scan.range_max = 30.0f;
	scan.n_ranges = 360;
	scan.ranges = ranges;
	scan.n_intensities = 360;
	scan.intensities = intensities;
	ROUNDTRIP(shmbus__msgs__laser_scan, Shmbus__Msgs__LaserScan, &scan);
}

static void test_navigation_and_logs(void)
{
	Shmbus__Msgs__Odometry odom = SHMBUS__MSGS__ODOMETRY__INIT;
	Shmbus__Msgs__PoseWithCovariance pwc = SHMBUS__MSGS__POSE_WITH_COVARIANCE__INIT;
	Shmbus__Msgs__TwistWithCovariance twc = SHMBUS__MSGS__TWIST_WITH_COVARIANCE__INIT;
	Shmbus__Msgs__GnssFix fix = SHMBUS__MSGS__GNSS_FIX__INIT;
	Shmbus__Msgs__Log log = SHMBUS__MSGS__LOG__INIT;
	Shmbus__Msgs__DiagnosticStatus st = SHMBUS__MSGS__DIAGNOSTIC_STATUS__INIT;
	Shmbus__Msgs__DiagnosticStatus *sts[1] = { &st };
	Shmbus__Msgs__DiagnosticStatus__ValuesEntry kv[2] = {
		SHMBUS__MSGS__DIAGNOSTIC_STATUS__VALUES_ENTRY__INIT,
		SHMBUS__MSGS__DIAGNOSTIC_STATUS__VALUES_ENTRY__INIT,
	};
	Shmbus__Msgs__DiagnosticStatus__ValuesEntry *kvs[2] = { &kv[0], &kv[1] };
	Shmbus__Msgs__Diagnostic diag = SHMBUS__MSGS__DIAGNOSTIC__INIT;

	fill_common();
	pwc.pose = &pose;
	pwc.n_covariance = 36;
	pwc.covariance = cov36;
	twc.twist = &twist;
	odom.header = &hdr;
	odom.child_frame_id = (char *)"base_link";
	odom.pose = &pwc;
	odom.twist = &twc;
	ROUNDTRIP(shmbus__msgs__odometry, Shmbus__Msgs__Odometry, &odom);

	fix.header = &hdr;
	fix.status = SHMBUS__MSGS__GNSS_FIX__STATUS__STATUS_GBAS_FIX;
	fix.service = 1 | 8;
	fix.latitude_deg = 48.137154;
	fix.longitude_deg = 11.576124;
	fix.altitude_m = 519.5;
	fix.n_position_covariance = 9;
	fix.position_covariance = cov9;
	fix.position_covariance_type = SHMBUS__MSGS__GNSS_FIX__COVARIANCE_TYPE__COVARIANCE_DIAGONAL_KNOWN;
	ROUNDTRIP(shmbus__msgs__gnss_fix, Shmbus__Msgs__GnssFix, &fix);

	log.header = &hdr;
	log.level = SHMBUS__MSGS__LOG__LEVEL__WARNING;
	log.name = (char *)"camera_driver";
	log.message = (char *)"frame dropped";
	log.file = (char *)"camera.c";
	log.line = 120;
	ROUNDTRIP(shmbus__msgs__log, Shmbus__Msgs__Log, &log);

	kv[0].key = (char *)"fps";
	kv[0].value = (char *)"29.97";
	kv[1].key = (char *)"temperature_c";
	kv[1].value = (char *)"51";
	st.level = SHMBUS__MSGS__DIAGNOSTIC_STATUS__LEVEL__WARN;
	st.name = (char *)"camera/front: frame rate";
	st.message = (char *)"below 30 Hz";
	st.hardware_id = (char *)"SN-1234";
	st.n_values = 2;
	st.values = kvs;
	ROUNDTRIP(shmbus__msgs__diagnostic_status, Shmbus__Msgs__DiagnosticStatus, &st);
	diag.header = &hdr;
	diag.n_status = 1;
	diag.status = sts;
	ROUNDTRIP(shmbus__msgs__diagnostic, Shmbus__Msgs__Diagnostic, &diag);
}

static void add(void)
{
	CU_pSuite s = h_add_bus_suite("typed_schemas", "schemas");

	CU_add_test(s, "geometry types round trip", test_geometry);
	CU_add_test(s, "sensor types round trip", test_sensors);
	CU_add_test(s, "navigation and log types round trip", test_navigation_and_logs);
}

int main(void)
{
	return h_run("test_typed_schemas", add);
}
