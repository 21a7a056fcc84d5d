/*
 * pipeline_monitor - once a second, per topic: message rate, latency and
 * loss. Latency is publish-to-receive for the camera, the IMU and the lidar
 * (the bus's own cost), and capture-to-result for the processor's
 * FrameStats (the whole pipeline). Loss is the bus's exact per-subscriber
 * count. Images and point clouds are viewed in place: the monitor never
 * copies one.
 *
 *   pipeline_monitor [--bus NAME] [--duration SECONDS]
 */
#include "common.h"

#include <stdio.h>

#include "pipeline.shmbus.h"
#include "foxglove/image.shmbus.h"
#include "foxglove/point_cloud.shmbus.h"
#include "shmbus/msgs/imu.shmbus.h"

struct meter {
	const char *name;
	const char *latency_kind;
	shmbus_sub *sub;
	uint64_t count, total;
	int64_t lat_sum, lat_max;
	uint64_t lost_before; /* the bus's count at the last report */
};

static void note(struct meter *m, int64_t latency)
{
	m->count++;
	m->total++;
	m->lat_sum += latency;
	if (latency > m->lat_max)
		m->lat_max = latency;
}

static void report(struct meter *m, double seconds)
{
	struct shmbus_sub_stats st;

	shmbus_sub_stats(m->sub, &st);
	printf("  %-15s %7.1f Hz  %s latency avg %8.3f ms max %8.3f ms  lost %llu\n", m->name,
	       (double)m->count / seconds, m->latency_kind,
	       m->count ? (double)m->lat_sum / (double)m->count / 1e6 : 0.0,
	       (double)m->lat_max / 1e6, (unsigned long long)(st.lost - m->lost_before));
	m->lost_before = st.lost;
	m->count = 0;
	m->lat_sum = 0;
	m->lat_max = 0;
}

static void drain_lidar(struct meter *lidar)
{
	Foxglove__PointCloud *pc;
	struct shmbus_typed_view view;
	int rc;

	while ((rc = foxglove__point_cloud__view_data(lidar->sub, NULL, &pc, &view)) !=
	       SHMBUS_EAGAIN) {
		if (rc == SHMBUS_OK) {
			int64_t latency = now_real_ns() - view.view.info.publish_ns;

			if (foxglove__point_cloud__view_release(lidar->sub, pc, NULL, &view) ==
			    SHMBUS_OK)
				note(lidar, latency);
		} else if (rc != SHMBUS_ELAPPED && rc != SHMBUS_ECORRUPT && rc != SHMBUS_ENOMEM) {
			break;
		}
	}
}

static void drain(struct meter *cam, struct meter *imu, struct meter *stats)
{
	Foxglove__RawImage *img;
	Shmbus__Msgs__Imu *sample;
	Shmbus__Examples__Pipeline__FrameStats *fs;
	struct shmbus_typed_view view;
	struct shmbus_msg_info info;
	int rc;

	while ((rc = foxglove__raw_image__view_data(cam->sub, NULL, &img, &view)) != SHMBUS_EAGAIN) {
		if (rc == SHMBUS_OK) {
			int64_t latency = now_real_ns() - view.view.info.publish_ns;

			if (foxglove__raw_image__view_release(cam->sub, img, NULL, &view) ==
			    SHMBUS_OK)
				note(cam, latency);
		} else if (rc != SHMBUS_ELAPPED && rc != SHMBUS_EBADMSG && rc != SHMBUS_ENOMEM) {
			break;
		}
	}
	while ((rc = shmbus__msgs__imu__take(imu->sub, NULL, &sample, &info)) != SHMBUS_EAGAIN) {
		if (rc == SHMBUS_OK) {
			note(imu, now_real_ns() - info.publish_ns);
			shmbus__msgs__imu__free(sample, NULL);
		} else if (rc != SHMBUS_ELAPPED && rc != SHMBUS_EBADMSG && rc != SHMBUS_ENOMEM) {
			break;
		}
	}
	while ((rc = shmbus__examples__pipeline__frame_stats__take(stats->sub, NULL, &fs, NULL)) !=
	       SHMBUS_EAGAIN) {
		if (rc == SHMBUS_OK) {
			note(stats, now_real_ns() - (fs->header ? fs->header->stamp_ns : 0));
			shmbus__examples__pipeline__frame_stats__free(fs, NULL);
		} else if (rc != SHMBUS_ELAPPED && rc != SHMBUS_EBADMSG && rc != SHMBUS_ENOMEM) {
			break;
		}
	}
}

int main(int argc, char **argv)
{
	struct pipeline_args args;
	struct shmbus_sub_options so;
	struct meter cam = { "camera/image", "publish->take  ", NULL, 0, 0, 0, 0, 0 };
	struct meter imu = { "imu", "publish->take  ", NULL, 0, 0, 0, 0, 0 };
	struct meter stats = { "pipeline/stats", "capture->result", NULL, 0, 0, 0, 0, 0 };
	struct meter lidar = { "lidar/points", "publish->take  ", NULL, 0, 0, 0, 0, 0 };
	struct shmbus_topic_options to;
	shmbus_waitset *ws = NULL;
	shmbus_bus *bus;
	int64_t start, last;
	int rc;

	pipeline_init(argc, argv, "pipeline_monitor", &args);
	bus = pipeline_connect("pipeline_monitor", &args);
	shmbus_sub_options_init(&so);
	so.create_if_missing = true;
	camera_topic_options(&to);
	rc = foxglove__raw_image__sub_open(bus, CAMERA_TOPIC, &to, &so, &cam.sub);
	if (rc == SHMBUS_OK) {
		imu_topic_options(&to);
		rc = shmbus__msgs__imu__sub_open(bus, IMU_TOPIC, &to, &so, &imu.sub);
	}
	if (rc == SHMBUS_OK) {
		stats_topic_options(&to);
		rc = shmbus__examples__pipeline__frame_stats__sub_open(bus, STATS_TOPIC, &to, &so,
								       &stats.sub);
	}
	if (rc == SHMBUS_OK) {
		lidar_topic_options(&to);
		rc = foxglove__point_cloud__sub_open(bus, LIDAR_TOPIC, &to, &so, &lidar.sub);
	}
	if (rc != SHMBUS_OK) {
		fprintf(stderr, "pipeline_monitor: %s: %s\n", shmbus_strerror(rc), shmbus_errmsg());
		goto out;
	}
	if (shmbus_waitset_create(&ws) == SHMBUS_OK &&
	    (shmbus_waitset_add(ws, cam.sub) != SHMBUS_OK ||
	     shmbus_waitset_add(ws, imu.sub) != SHMBUS_OK ||
	     shmbus_waitset_add(ws, stats.sub) != SHMBUS_OK ||
	     shmbus_waitset_add(ws, lidar.sub) != SHMBUS_OK)) {
		shmbus_waitset_destroy(ws);
		ws = NULL;
	}
	printf("pipeline_monitor: bus %s, broker pid %d\n", shmbus_bus_name(bus),
	       shmbus_broker_pid(bus));
	fflush(stdout);
	start = last = now_mono_ns();
	while (!pipeline_done(&args, start)) {
		int64_t now;

		if (ws) {
			shmbus_sub *ready[4];
			size_t n_ready;

			shmbus_waitset_wait(ws, 100000000, ready, 4, &n_ready);
		} else {
			shmbus__msgs__imu__wait(imu.sub, 100000000);
		}
		drain(&cam, &imu, &stats);
		drain_lidar(&lidar);
		now = now_mono_ns();
		if (now - last >= 1000000000) {
			double s = (double)(now - last) / 1e9;

			printf("t=%5.1f s\n", (double)(now - start) / 1e9);
			report(&cam, s);
			report(&imu, s);
			report(&stats, s);
			report(&lidar, s);
			fflush(stdout);
			last = now;
		}
	}
	printf("pipeline_monitor: received %llu frames, %llu IMU samples, %llu results, "
	       "%llu point clouds\n",
	       (unsigned long long)cam.total, (unsigned long long)imu.total,
	       (unsigned long long)stats.total, (unsigned long long)lidar.total);
	rc = SHMBUS_OK;
out:
	if (ws)
		shmbus_waitset_destroy(ws);
	if (lidar.sub)
		shmbus_sub_close(lidar.sub);
	if (stats.sub)
		shmbus_sub_close(stats.sub);
	if (imu.sub)
		shmbus_sub_close(imu.sub);
	if (cam.sub)
		shmbus_sub_close(cam.sub);
	shmbus_disconnect(bus);
	return rc == SHMBUS_OK ? 0 : 1;
}
