/*
 * common.h - what the sensor-pipeline demo's processes share: topic names
 * and layouts (every process opens a topic with the same layout, so
 * whichever starts first creates it), command-line handling, and a stop
 * flag set by SIGINT/SIGTERM.
 */
#ifndef PIPELINE_COMMON_H
#define PIPELINE_COMMON_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include <shmbus/shmbus.h>

#define CAMERA_TOPIC "camera/image"
#define IMU_TOPIC "imu"
#define STATS_TOPIC "pipeline/stats"

#define CAMERA_WIDTH 1280u
#define CAMERA_HEIGHT 720u
#define CAMERA_STEP (CAMERA_WIDTH * 3u) /* rgb8 */
#define CAMERA_FRAME_BYTES ((uint32_t)(CAMERA_STEP * CAMERA_HEIGHT))
#define CAMERA_HZ 30
#define IMU_HZ 1000

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

/* The layouts of the three topics. */
void camera_topic_options(struct shmbus_topic_options *o);
void imu_topic_options(struct shmbus_topic_options *o);
void stats_topic_options(struct shmbus_topic_options *o);

int64_t realtime_ns(void);
int64_t monotonic_ns(void);

/* Sleep until the absolute CLOCK_MONOTONIC time t (returns early on a
 * stop signal). */
void sleep_until(int64_t t);

/* Whether the run should end: a signal, or the duration has passed. */
bool pipeline_done(const struct pipeline_args *args, int64_t start_ns);

#endif
