/*
 * pipeline_processor - subscribes to the camera and the IMU, and for each
 * frame publishes FrameStats: the frame's mean intensity (read in place in
 * shared memory, never copied) and the mean angular velocity of the IMU
 * samples since the previous frame. One wait set blocks on both topics.
 *
 *   pipeline_processor [--bus NAME] [--duration SECONDS]
 */
#include "common.h"

#include <stdio.h>

#include "pipeline.shmbus.h"
#include "shmbus/msgs/image.shmbus.h"
#include "shmbus/msgs/imu.shmbus.h"

struct imu_window {
	uint32_t n;
	double wx, wy, wz;
};

static int open_sub(shmbus_bus *bus, const char *topic, int is_camera, shmbus_sub **out)
{
	struct shmbus_sub_options so;
	struct shmbus_topic_options to;

	shmbus_sub_options_init(&so);
	so.create_if_missing = true; /* the same layout the publisher uses */
	if (is_camera) {
		camera_topic_options(&to);
		return shmbus__msgs__image__sub_open(bus, topic, &to, &so, out);
	}
	imu_topic_options(&to);
	return shmbus__msgs__imu__sub_open(bus, topic, &to, &so, out);
}

static void drain_imu(shmbus_sub *sub, struct imu_window *win)
{
	Shmbus__Msgs__Imu *imu;

	while (shmbus__msgs__imu__take(sub, NULL, &imu, NULL) == SHMBUS_OK) {
		if (imu->angular_velocity) {
			win->wx += imu->angular_velocity->x;
			win->wy += imu->angular_velocity->y;
			win->wz += imu->angular_velocity->z;
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

int main(int argc, char **argv)
{
	struct pipeline_args args;
	struct shmbus_topic_options to;
	struct imu_window win = { 0, 0, 0, 0 };
	shmbus_bus *bus;
	shmbus_sub *cam = NULL, *imu = NULL;
	shmbus_pub *out = NULL;
	shmbus_waitset *ws = NULL;
	uint64_t processed = 0, lapped = 0;
	int64_t start;
	int rc;

	pipeline_init(argc, argv, "pipeline_processor", &args);
	bus = pipeline_connect("pipeline_processor", &args);
	stats_topic_options(&to);
	rc = open_sub(bus, CAMERA_TOPIC, 1, &cam);
	if (rc == SHMBUS_OK)
		rc = open_sub(bus, IMU_TOPIC, 0, &imu);
	if (rc == SHMBUS_OK)
		rc = shmbus__examples__pipeline__frame_stats__pub_open(bus, STATS_TOPIC, &to, NULL, &out);
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

	start = monotonic_ns();
	while (!pipeline_done(&args, start)) {
		Shmbus__Msgs__Image *img;
		struct shmbus_typed_view view;

		if (ws) {
			shmbus_sub *ready[2];
			size_t n_ready;

			shmbus_waitset_wait(ws, 100000000, ready, 2, &n_ready);
		} else {
			shmbus__msgs__image__wait(cam, 1000000);
		}
		drain_imu(imu, &win);
		while ((rc = shmbus__msgs__image__view_data(cam, NULL, &img, &view)) != SHMBUS_EAGAIN) {
			Shmbus__Examples__Pipeline__FrameStats st =
				SHMBUS__EXAMPLES__PIPELINE__FRAME_STATS__INIT;
			Shmbus__Msgs__Header hdr = SHMBUS__MSGS__HEADER__INIT;
			Shmbus__Msgs__Vector3 w = SHMBUS__MSGS__VECTOR3__INIT;
			int64_t t0 = monotonic_ns();
			double mean;

			if (rc == SHMBUS_ELAPPED || rc == SHMBUS_EBADMSG || rc == SHMBUS_ENOMEM) {
				lapped += rc == SHMBUS_ELAPPED; /* the message is behind us */
				continue;
			}
			if (rc != SHMBUS_OK)
				break;
			mean = mean_intensity(view.field, view.field_size);
			if (img->header) {
				hdr.stamp_ns = img->header->stamp_ns;
				hdr.frame_id = img->header->frame_id;
			}
			st.header = &hdr;
			st.frame_seq = view.view.info.seq;
			st.mean_intensity = mean;
			st.imu_samples = win.n;
			if (win.n) {
				w.x = win.wx / win.n;
				w.y = win.wy / win.n;
				w.z = win.wz / win.n;
			}
			st.mean_angular_velocity = &w;
			st.processing_ns = monotonic_ns() - t0;
			/* Publish only what was computed from intact pixels; the
			 * header strings live in img until the release. */
			if (!shmbus_sub_view_valid(cam, &view.view)) {
				shmbus__msgs__image__view_release(cam, img, NULL, &view);
				lapped++;
				continue;
			}
			rc = shmbus__examples__pipeline__frame_stats__publish(out, &st, NULL);
			if (shmbus__msgs__image__view_release(cam, img, NULL, &view) == SHMBUS_ELAPPED)
				lapped++;
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
	if (out)
		shmbus_pub_close(out);
	if (imu)
		shmbus_sub_close(imu);
	if (cam)
		shmbus_sub_close(cam);
	shmbus_disconnect(bus);
	return rc == SHMBUS_OK ? 0 : 1;
}
