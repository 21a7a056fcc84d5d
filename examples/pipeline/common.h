/*
 * common.h - what the sensor-pipeline demo's processes share: topic names,
 * frame names and layouts (every process opens a topic with the same
 * layout, so whichever starts first creates it), command-line handling,
 * and a stop flag set by SIGINT/SIGTERM.
 *
 * The camera, the point cloud, the pose and the transforms use the
 * foxglove.* types (schemas/foxglove), so Foxglove's Image and 3D panels
 * draw them, live through shmbus-foxglove or from a recording.
 */
#ifndef PIPELINE_COMMON_H
#define PIPELINE_COMMON_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include <shmbus/shmbus.h>

#include "now.h"

#define CAMERA_TOPIC "camera/image"
#define CALIBRATION_TOPIC "camera/calibration"
#define IMU_TOPIC "imu"
#define STATS_TOPIC "pipeline/stats"
#define LIDAR_TOPIC "lidar/points"
#define POSE_TOPIC "pose"
#define TF_TOPIC "tf"
#define TF_STATIC_TOPIC "tf_static"

/* The frame tree: world -> base_link (the robot, moving), and fixed on the
 * robot camera_optical, imu_link and lidar. */
#define WORLD_FRAME "world"
#define BASE_FRAME "base_link"
#define CAMERA_FRAME "camera_optical"
#define IMU_FRAME "imu_link"
#define LIDAR_FRAME "lidar"

#define CAMERA_WIDTH 1280u
#define CAMERA_HEIGHT 720u
#define CAMERA_STEP (CAMERA_WIDTH * 3u) /* rgb8 */
#define CAMERA_FRAME_BYTES ((uint32_t)(CAMERA_STEP * CAMERA_HEIGHT))
#define CAMERA_HZ 30
#define IMU_HZ 1000
#define LIDAR_HZ 10
#define LIDAR_RINGS 32u
#define LIDAR_COLUMNS 1024u
#define LIDAR_POINT_STRIDE 16u /* x, y, z, intensity: float32 each */
#define LIDAR_CLOUD_BYTES (LIDAR_RINGS * LIDAR_COLUMNS * LIDAR_POINT_STRIDE)

struct pipeline_args {
	const char *bus;    /* --bus NAME (NULL: $SHMBUS_BUS or "default") */
	double duration_s;  /* --duration S (0: until SIGINT/SIGTERM) */
};

/* Set from the signal handler; loops check it. */
extern volatile sig_atomic_t pipeline_stop;

/* Parse --bus and --duration, install the stop handler. Exits on bad use. */
void pipeline_init(int argc, char **argv, const char *prog, struct pipeline_args *args);

/* Connect (starting the broker if needed); prints why and exits on error. */
shmbus_bus *pipeline_connect(const char *prog, const struct pipeline_args *args);

/* The layouts of the topics. */
void camera_topic_options(struct shmbus_topic_options *o);
void imu_topic_options(struct shmbus_topic_options *o);
void stats_topic_options(struct shmbus_topic_options *o);
void lidar_topic_options(struct shmbus_topic_options *o);
/* Small messages (calibration, pose, transforms): `history` past ones for
 * late joiners. */
void small_topic_options(struct shmbus_topic_options *o, uint32_t history);

struct Google__Protobuf__Timestamp;
/* A protobuf Timestamp from ns since the epoch. */
void stamp_from_ns(struct Google__Protobuf__Timestamp *ts, int64_t ns);
int64_t stamp_to_ns(const struct Google__Protobuf__Timestamp *ts);

/* Sleep until the absolute CLOCK_MONOTONIC time t (returns early on a
 * stop signal). */
void sleep_until(int64_t t);

/* Whether the run should end: a signal, or the duration has passed. */
bool pipeline_done(const struct pipeline_args *args, int64_t start_ns);

#endif
