/*
 * pipeline_imu - a simulated IMU at 1 kHz on a robot that drives in circles:
 * a yaw rate about 0.3 rad/s that wavers, and a small vibration. Published
 * as shmbus.msgs.Imu (Foxglove plots any of its fields).
 *
 *   pipeline_imu [--bus NAME] [--duration SECONDS]
 */
#include "common.h"

#include <math.h>
#include <stdio.h>

#include "shmbus/msgs/imu.shmbus.h"

int main(int argc, char **argv)
{
	struct pipeline_args args;
	struct shmbus_topic_options to;
	shmbus_bus *bus;
	shmbus_pub *pub;
	uint64_t published = 0, failed = 0;
	int64_t start, next, period = 1000000000 / IMU_HZ;
	int rc;

	pipeline_init(argc, argv, "pipeline_imu", &args);
	bus = pipeline_connect("pipeline_imu", &args);
	imu_topic_options(&to);
	rc = shmbus__msgs__imu__pub_open(bus, IMU_TOPIC, &to, NULL, &pub);
	if (rc != SHMBUS_OK) {
		fprintf(stderr, "pipeline_imu: %s: %s: %s\n", IMU_TOPIC, shmbus_strerror(rc),
			shmbus_errmsg());
		shmbus_disconnect(bus);
		return 1;
	}
	start = next = now_mono_ns();
	for (uint64_t i = 0; !pipeline_done(&args, start); i++) {
		Shmbus__Msgs__Header hdr = SHMBUS__MSGS__HEADER__INIT;
		Shmbus__Msgs__Imu imu = SHMBUS__MSGS__IMU__INIT;
		Shmbus__Msgs__Vector3 w = SHMBUS__MSGS__VECTOR3__INIT;
		Shmbus__Msgs__Vector3 a = SHMBUS__MSGS__VECTOR3__INIT;
		double t = (double)i / IMU_HZ;

		hdr.stamp_ns = now_real_ns();
		hdr.frame_id = (char *)IMU_FRAME;
		w.z = 0.3 + 0.1 * sin(0.5 * t);            /* rad/s */
		a.x = 0.05 * sin(2 * M_PI * 120 * t);      /* m/s^2, vibration */
		a.z = 9.81;
		imu.header = &hdr;
		imu.angular_velocity = &w;
		imu.linear_acceleration = &a;
		rc = shmbus__msgs__imu__publish(pub, &imu, NULL);
		if (rc == SHMBUS_OK) {
			published++;
		} else {
			failed++;
			fprintf(stderr, "pipeline_imu: %s\n", shmbus_strerror(rc));
		}
		next += period;
		sleep_until(next);
	}
	printf("pipeline_imu: published %llu samples (%llu failed)\n",
	       (unsigned long long)published, (unsigned long long)failed);
	shmbus_pub_close(pub);
	shmbus_disconnect(bus);
	return failed ? 1 : 0;
}
