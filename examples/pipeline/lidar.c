/*
 * pipeline_lidar - a simulated 32-beam spinning lidar at 10 Hz on the demo
 * robot, in a room (walls, floor, ceiling, three pillars). It follows the
 * robot's pose (the processor's "pose" topic) and publishes what it sees
 * in its own frame as foxglove.PointCloud (x, y, z, intensity as float32),
 * which Foxglove's 3D panel draws. The 512 KiB of points are written in
 * place in shared memory through the typed zero-copy loan
 * (foxglove__point_cloud__loan_data).
 *
 *   pipeline_lidar [--bus NAME] [--duration SECONDS]
 */
#include "common.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "foxglove/point_cloud.shmbus.h"
#include "foxglove/pose.shmbus.h"

#define MOUNT_HEIGHT 1.0 /* lidar above the floor, m (the processor's tf_static) */
#define MAX_RANGE 30.0

/* The room, in the world frame: the robot starts at the origin heading +x
 * and circles about (0, 3.3). */
static const double room_x[2] = { -8, 8 }, room_y[2] = { -5, 11 }, ceiling = 3;
static const double pillars[][2] = { { 4, 6 }, { -4, 0 }, { -3, 8 } };
#define PILLAR_RADIUS 0.4

struct hit {
	double range;
	float intensity;
};

static void closer(struct hit *h, double t, float intensity)
{
	if (t > 0 && t < h->range) {
		h->range = t;
		h->intensity = intensity;
	}
}

/* The first thing a ray from o along d (world frame, unit length) hits. */
static struct hit cast(const double o[3], const double d[3])
{
	struct hit h = { MAX_RANGE, 0 };

	for (int i = 0; i < 2; i++) {
		if (d[0] != 0)
			closer(&h, (room_x[i] - o[0]) / d[0], 0.5f);
		if (d[1] != 0)
			closer(&h, (room_y[i] - o[1]) / d[1], 0.5f);
	}
	if (d[2] < 0)
		closer(&h, -o[2] / d[2], 0.2f);
	else if (d[2] > 0)
		closer(&h, (ceiling - o[2]) / d[2], 0.3f);
	for (size_t p = 0; p < sizeof(pillars) / sizeof(pillars[0]); p++) {
		double ox = o[0] - pillars[p][0], oy = o[1] - pillars[p][1];
		double a = d[0] * d[0] + d[1] * d[1], b = 2 * (ox * d[0] + oy * d[1]);
		double c = ox * ox + oy * oy - PILLAR_RADIUS * PILLAR_RADIUS;
		double disc = b * b - 4 * a * c;

		if (a > 0 && disc >= 0)
			closer(&h, (-b - sqrt(disc)) / (2 * a), 1.0f);
	}
	return h;
}

static void put_f32(uint8_t *p, float v)
{
	memcpy(p, &v, sizeof(v)); /* the loaned bytes need not be aligned */
}

/* One sweep from the robot at (x, y) facing yaw, into px. */
static void scan(uint8_t *px, double x, double y, double yaw)
{
	const double o[3] = { x, y, MOUNT_HEIGHT };

	for (uint32_t ring = 0; ring < LIDAR_RINGS; ring++) {
		double el = (-15.0 + 30.0 * ring / (LIDAR_RINGS - 1)) * M_PI / 180;

		for (uint32_t col = 0; col < LIDAR_COLUMNS; col++) {
			double az = 2 * M_PI * col / LIDAR_COLUMNS;
			double l[3] = { cos(el) * cos(az), cos(el) * sin(az), sin(el) };
			double w[3] = { cos(yaw) * l[0] - sin(yaw) * l[1],
					sin(yaw) * l[0] + cos(yaw) * l[1], l[2] };
			struct hit h = cast(o, w);
			uint8_t *p = px + (size_t)(ring * LIDAR_COLUMNS + col) * LIDAR_POINT_STRIDE;

			put_f32(p, (float)(l[0] * h.range));
			put_f32(p + 4, (float)(l[1] * h.range));
			put_f32(p + 8, (float)(l[2] * h.range));
			put_f32(p + 12, h.intensity);
		}
	}
}

/* The newest pose the processor published, if any. */
static void follow_pose(shmbus_sub *sub, double *x, double *y, double *yaw)
{
	Foxglove__PoseInFrame *p;
	int rc;

	while ((rc = foxglove__pose_in_frame__take(sub, NULL, &p, NULL)) != SHMBUS_EAGAIN) {
		if (rc == SHMBUS_ELAPPED || rc == SHMBUS_ECORRUPT || rc == SHMBUS_ENOMEM)
			continue; /* lapped or malformed: the next one will do */
		if (rc != SHMBUS_OK)
			break;
		if (p->pose && p->pose->position && p->pose->orientation) {
			*x = p->pose->position->x;
			*y = p->pose->position->y;
			*yaw = 2 * atan2(p->pose->orientation->z, p->pose->orientation->w);
		}
		foxglove__pose_in_frame__free(p, NULL);
	}
}

static int publish_cloud(shmbus_pub *pub, double x, double y, double yaw)
{
	static const struct { const char *name; uint32_t offset; } names[] = {
		{ "x", 0 }, { "y", 4 }, { "z", 8 }, { "intensity", 12 },
	};
	Foxglove__PackedElementField f[4], *fields[4];
	Foxglove__PointCloud pc = FOXGLOVE__POINT_CLOUD__INIT;
	Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
	struct shmbus_typed_loan loan;
	int rc;

	for (int i = 0; i < 4; i++) {
		foxglove__packed_element_field__init(&f[i]);
		f[i].name = (char *)names[i].name;
		f[i].offset = names[i].offset;
		f[i].type = FOXGLOVE__PACKED_ELEMENT_FIELD__NUMERIC_TYPE__FLOAT32;
		fields[i] = &f[i];
	}
	stamp_from_ns(&ts, now_real_ns());
	pc.timestamp = &ts;
	pc.frame_id = (char *)LIDAR_FRAME;
	pc.point_stride = LIDAR_POINT_STRIDE;
	pc.n_fields = 4;
	pc.fields = fields;
	rc = foxglove__point_cloud__loan_data(pub, &pc, LIDAR_CLOUD_BYTES, &loan);
	if (rc != SHMBUS_OK)
		return rc;
	scan(loan.field, x, y, yaw);
	return foxglove__point_cloud__publish_loan(pub, &loan, NULL);
}

int main(int argc, char **argv)
{
	struct pipeline_args args;
	struct shmbus_topic_options to;
	struct shmbus_sub_options so;
	shmbus_bus *bus;
	shmbus_pub *pub;
	shmbus_sub *pose = NULL;
	uint64_t published = 0, failed = 0;
	int64_t start, next, period = 1000000000 / LIDAR_HZ;
	double x = 0, y = 0, yaw = 0;
	int rc;

	pipeline_init(argc, argv, "pipeline_lidar", &args);
	bus = pipeline_connect("pipeline_lidar", &args);
	lidar_topic_options(&to);
	rc = foxglove__point_cloud__pub_open(bus, LIDAR_TOPIC, &to, NULL, &pub);
	if (rc == SHMBUS_OK) {
		small_topic_options(&to, 1);
		shmbus_sub_options_init(&so);
		so.create_if_missing = true;
		rc = foxglove__pose_in_frame__sub_open(bus, POSE_TOPIC, &to, &so, &pose);
		if (rc != SHMBUS_OK)
			shmbus_pub_close(pub);
	}
	if (rc != SHMBUS_OK) {
		fprintf(stderr, "pipeline_lidar: %s: %s\n", shmbus_strerror(rc), shmbus_errmsg());
		shmbus_disconnect(bus);
		return 1;
	}
	start = next = now_mono_ns();
	while (!pipeline_done(&args, start)) {
		follow_pose(pose, &x, &y, &yaw);
		rc = publish_cloud(pub, x, y, yaw);
		if (rc == SHMBUS_OK) {
			published++;
		} else {
			failed++;
			fprintf(stderr, "pipeline_lidar: %s\n", shmbus_strerror(rc));
		}
		next += period;
		sleep_until(next);
	}
	printf("pipeline_lidar: published %llu clouds (%llu failed)\n",
	       (unsigned long long)published, (unsigned long long)failed);
	shmbus_sub_close(pose);
	shmbus_pub_close(pub);
	shmbus_disconnect(bus);
	return failed ? 1 : 0;
}
