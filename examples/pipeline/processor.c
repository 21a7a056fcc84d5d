/*
 * pipeline_processor - subscribes to the camera and the IMU, and for each
 * frame publishes
 *   - FrameStats: the frame's mean intensity (read in place in shared
 *     memory, never copied) and the mean angular velocity of the IMU
 *     samples since the previous frame;
 *   - the robot's pose (foxglove.PoseInFrame in "world"), dead-reckoned
 *     from the IMU's yaw rate at a constant forward speed, and the same as
 *     the world -> base_link transform (foxglove.FrameTransforms on "tf");
 * and, once a second, the transforms fixed on the robot (camera, IMU,
 * lidar) on "tf_static". One wait set blocks on both inputs.
 *
 *   pipeline_processor [--bus NAME] [--duration SECONDS]
 */
#include "common.h"

#include <math.h>
#include <stdio.h>

#include "foxglove/image.shmbus.h"
#include "foxglove/pose.shmbus.h"
#include "foxglove/transform.shmbus.h"
#include "pipeline.shmbus.h"
#include "shmbus/msgs/imu.shmbus.h"

#define SPEED_M_S 1.0

struct imu_window {
	uint32_t n;
	double wx, wy, wz;
};

/* Dead reckoning from the IMU's yaw rate. */
struct odometry {
	double x, y, yaw;
	int64_t last_ns; /* stamp of the last sample integrated */
};

struct outputs {
	shmbus_pub *stats, *pose, *tf, *tf_static;
};

static int open_sub(shmbus_bus *bus, const char *topic, int is_camera, shmbus_sub **out)
{
	struct shmbus_sub_options so;
	struct shmbus_topic_options to;

	shmbus_sub_options_init(&so);
	so.create_if_missing = true; /* the same layout the publisher uses */
	if (is_camera) {
		camera_topic_options(&to);
		return foxglove__raw_image__sub_open(bus, topic, &to, &so, out);
	}
	imu_topic_options(&to);
	return shmbus__msgs__imu__sub_open(bus, topic, &to, &so, out);
}

static int open_outputs(shmbus_bus *bus, struct outputs *o)
{
	struct shmbus_topic_options to;
	int rc;

	stats_topic_options(&to);
	rc = shmbus__examples__pipeline__frame_stats__pub_open(bus, STATS_TOPIC, &to, NULL,
							       &o->stats);
	small_topic_options(&to, 1);
	if (rc == SHMBUS_OK)
		rc = foxglove__pose_in_frame__pub_open(bus, POSE_TOPIC, &to, NULL, &o->pose);
	if (rc == SHMBUS_OK)
		rc = foxglove__frame_transforms__pub_open(bus, TF_TOPIC, &to, NULL, &o->tf);
	if (rc == SHMBUS_OK)
		rc = foxglove__frame_transforms__pub_open(bus, TF_STATIC_TOPIC, &to, NULL,
							  &o->tf_static);
	return rc;
}

static void drain_imu(shmbus_sub *sub, struct imu_window *win, struct odometry *odo)
{
	Shmbus__Msgs__Imu *imu;

	while (shmbus__msgs__imu__take(sub, NULL, &imu, NULL) == SHMBUS_OK) {
		if (imu->angular_velocity) {
			int64_t t = imu->header ? imu->header->stamp_ns : 0;
			double dt = odo->last_ns && t > odo->last_ns ? (double)(t - odo->last_ns) / 1e9
								      : 0;

			win->wx += imu->angular_velocity->x;
			win->wy += imu->angular_velocity->y;
			win->wz += imu->angular_velocity->z;
			odo->yaw += imu->angular_velocity->z * dt;
			odo->x += SPEED_M_S * cos(odo->yaw) * dt;
			odo->y += SPEED_M_S * sin(odo->yaw) * dt;
			odo->last_ns = t;
		}
		win->n++;
		shmbus__msgs__imu__free(imu, NULL);
	}
}

/* Mean over a sparse sample of the pixels, read where the camera wrote
 * them. */
static double mean_intensity(const uint8_t *px, size_t n)
{
	uint64_t sum = 0, count = 0;

	for (size_t i = 0; i < n; i += 97) {
		sum += px[i];
		count++;
	}
	return count ? (double)sum / (double)count : 0;
}

static void yaw_quaternion(Foxglove__Quaternion *q, double yaw)
{
	q->x = 0;
	q->y = 0;
	q->z = sin(yaw / 2);
	q->w = cos(yaw / 2);
}

/* Where the robot is: as a pose, and as the transform world -> base_link. */
static int publish_pose(const struct outputs *o, const struct odometry *odo, int64_t stamp)
{
	Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
	Foxglove__Vector3 pos = FOXGLOVE__VECTOR3__INIT;
	Foxglove__Quaternion rot = FOXGLOVE__QUATERNION__INIT;
	Foxglove__Pose pose = FOXGLOVE__POSE__INIT;
	Foxglove__PoseInFrame pif = FOXGLOVE__POSE_IN_FRAME__INIT;
	Foxglove__FrameTransform t = FOXGLOVE__FRAME_TRANSFORM__INIT;
	Foxglove__FrameTransform *list[1] = { &t };
	Foxglove__FrameTransforms tfs = FOXGLOVE__FRAME_TRANSFORMS__INIT;
	int rc;

	stamp_from_ns(&ts, stamp);
	pos.x = odo->x;
	pos.y = odo->y;
	yaw_quaternion(&rot, odo->yaw);
	pose.position = &pos;
	pose.orientation = &rot;
	pif.timestamp = &ts;
	pif.frame_id = (char *)WORLD_FRAME;
	pif.pose = &pose;
	rc = foxglove__pose_in_frame__publish(o->pose, &pif, NULL);
	t.timestamp = &ts;
	t.parent_frame_id = (char *)WORLD_FRAME;
	t.child_frame_id = (char *)BASE_FRAME;
	t.translation = &pos;
	t.rotation = &rot;
	tfs.n_transforms = 1;
	tfs.transforms = list;
	return rc == SHMBUS_OK ? foxglove__frame_transforms__publish(o->tf, &tfs, NULL) : rc;
}

/* The sensors' places on the robot: the camera 0.3 m ahead at 1.2 m
 * looking forward (optical frame: z forward, x right, y down), the IMU at
 * the centre, the lidar on top at 1.0 m. */
static int publish_static(const struct outputs *o, int64_t stamp)
{
	static const struct {
		const char *child;
		double t[3], q[4]; /* x y z, x y z w */
	} mounts[] = {
		{ CAMERA_FRAME, { 0.3, 0, 1.2 }, { -0.5, 0.5, -0.5, 0.5 } },
		{ IMU_FRAME, { 0, 0, 0.2 }, { 0, 0, 0, 1 } },
		{ LIDAR_FRAME, { 0, 0, 1.0 }, { 0, 0, 0, 1 } },
	};
	enum { N = sizeof(mounts) / sizeof(mounts[0]) };
	Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
	Foxglove__Vector3 tr[N];
	Foxglove__Quaternion rot[N];
	Foxglove__FrameTransform t[N], *list[N];
	Foxglove__FrameTransforms tfs = FOXGLOVE__FRAME_TRANSFORMS__INIT;

	stamp_from_ns(&ts, stamp);
	for (int i = 0; i < N; i++) {
		foxglove__vector3__init(&tr[i]);
		foxglove__quaternion__init(&rot[i]);
		foxglove__frame_transform__init(&t[i]);
		tr[i].x = mounts[i].t[0], tr[i].y = mounts[i].t[1], tr[i].z = mounts[i].t[2];
		rot[i].x = mounts[i].q[0], rot[i].y = mounts[i].q[1];
		rot[i].z = mounts[i].q[2], rot[i].w = mounts[i].q[3];
		t[i].timestamp = &ts;
		t[i].parent_frame_id = (char *)BASE_FRAME;
		t[i].child_frame_id = (char *)mounts[i].child;
		t[i].translation = &tr[i];
		t[i].rotation = &rot[i];
		list[i] = &t[i];
	}
	tfs.n_transforms = N;
	tfs.transforms = list;
	return foxglove__frame_transforms__publish(o->tf_static, &tfs, NULL);
}

static int publish_stats(const struct outputs *o, const Foxglove__RawImage *img,
			 const struct shmbus_typed_view *view, double mean,
			 const struct imu_window *win, int64_t t0)
{
	Shmbus__Examples__Pipeline__FrameStats st = SHMBUS__EXAMPLES__PIPELINE__FRAME_STATS__INIT;
	Shmbus__Msgs__Header hdr = SHMBUS__MSGS__HEADER__INIT;
	Shmbus__Msgs__Vector3 w = SHMBUS__MSGS__VECTOR3__INIT;

	hdr.stamp_ns = stamp_to_ns(img->timestamp);
	hdr.frame_id = img->frame_id;
	st.header = &hdr;
	st.frame_seq = view->view.info.seq;
	st.mean_intensity = mean;
	st.imu_samples = win->n;
	if (win->n) {
		w.x = win->wx / win->n;
		w.y = win->wy / win->n;
		w.z = win->wz / win->n;
	}
	st.mean_angular_velocity = &w;
	st.processing_ns = now_mono_ns() - t0;
	return shmbus__examples__pipeline__frame_stats__publish(o->stats, &st, NULL);
}

static void close_outputs(struct outputs *o)
{
	shmbus_pub *all[] = { o->stats, o->pose, o->tf, o->tf_static };

	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		if (all[i])
			shmbus_pub_close(all[i]);
}

int main(int argc, char **argv)
{
	struct pipeline_args args;
	struct imu_window win = { 0, 0, 0, 0 };
	struct odometry odo = { 0, 0, 0, 0 };
	struct outputs out = { NULL, NULL, NULL, NULL };
	shmbus_bus *bus;
	shmbus_sub *cam = NULL, *imu = NULL;
	shmbus_waitset *ws = NULL;
	uint64_t processed = 0, lapped = 0;
	int64_t start, static_due = 0;
	int rc;

	pipeline_init(argc, argv, "pipeline_processor", &args);
	bus = pipeline_connect("pipeline_processor", &args);
	rc = open_sub(bus, CAMERA_TOPIC, 1, &cam);
	if (rc == SHMBUS_OK)
		rc = open_sub(bus, IMU_TOPIC, 0, &imu);
	if (rc == SHMBUS_OK)
		rc = open_outputs(bus, &out);
	if (rc != SHMBUS_OK) {
		fprintf(stderr, "pipeline_processor: %s: %s\n", shmbus_strerror(rc),
			shmbus_errmsg());
		goto out;
	}
	/* Without futex_waitv (Linux < 5.16), wait on the camera alone. */
	if (shmbus_waitset_create(&ws) == SHMBUS_OK &&
	    (shmbus_waitset_add(ws, cam) != SHMBUS_OK || shmbus_waitset_add(ws, imu) != SHMBUS_OK)) {
		shmbus_waitset_destroy(ws);
		ws = NULL;
	}

	start = now_mono_ns();
	while (!pipeline_done(&args, start)) {
		Foxglove__RawImage *img;
		struct shmbus_typed_view view;

		if (ws) {
			shmbus_sub *ready[2];
			size_t n_ready;

			shmbus_waitset_wait(ws, 100000000, ready, 2, &n_ready);
		} else {
			foxglove__raw_image__wait(cam, 1000000);
		}
		drain_imu(imu, &win, &odo);
		if (now_mono_ns() >= static_due) {
			publish_static(&out, now_real_ns());
			static_due = now_mono_ns() + 1000000000;
		}
		while ((rc = foxglove__raw_image__view_data(cam, NULL, &img, &view)) != SHMBUS_EAGAIN) {
			int64_t t0 = now_mono_ns();
			double mean;
			bool intact;

			if (rc == SHMBUS_ELAPPED || rc == SHMBUS_EBADMSG || rc == SHMBUS_ENOMEM) {
				lapped += rc == SHMBUS_ELAPPED; /* the message is behind us */
				continue;
			}
			if (rc != SHMBUS_OK)
				break;
			mean = mean_intensity(view.field, view.field_size);
			/* Publish only what was computed from intact pixels; the
			 * frame's strings live in img until the release. */
			intact = shmbus_sub_view_valid(cam, &view.view);
			if (intact) {
				rc = publish_stats(&out, img, &view, mean, &win, t0);
				if (rc == SHMBUS_OK)
					rc = publish_pose(&out, &odo, stamp_to_ns(img->timestamp));
			}
			if (foxglove__raw_image__view_release(cam, img, NULL, &view) ==
				    SHMBUS_ELAPPED ||
			    !intact) {
				lapped++;
				continue;
			}
			if (rc == SHMBUS_OK)
				processed++;
			win = (struct imu_window){ 0, 0, 0, 0 };
		}
	}
	printf("pipeline_processor: %llu frames processed, %llu lapped while read\n",
	       (unsigned long long)processed, (unsigned long long)lapped);
	rc = SHMBUS_OK;
out:
	if (ws)
		shmbus_waitset_destroy(ws);
	close_outputs(&out);
	if (imu)
		shmbus_sub_close(imu);
	if (cam)
		shmbus_sub_close(cam);
	shmbus_disconnect(bus);
	return rc == SHMBUS_OK ? 0 : 1;
}
